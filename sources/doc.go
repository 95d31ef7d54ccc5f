// Package sources is what snap reads and where it writes back: the file
// system (metadata, directory listings, excludes, and the confined restore
// target), standard input, command output and database dumps.
//
// It knows nothing of the repository. The snapshot package turns what it
// reads into trees and hands restored content back to it.
package sources
