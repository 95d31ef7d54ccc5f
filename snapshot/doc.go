// Package snapshot turns sources into trees and snapshots and back.
//
// Vocabulary:
//   - Node: one directory entry: metadata (sources.Meta) plus content (the
//     IDs of a file's data blobs) or a subtree (a directory's tree blob).
//   - Tree: a directory listing, nodes sorted by name, stored as one tree
//     blob; equal directories have equal IDs and are stored once.
//   - Snapshot: a document in snapshots/ naming a root tree with time,
//     host, tags, paths, parent and summary.
//   - Archiver: builds a snapshot from paths and streams (create).
//   - Restorer: writes a tree back into a directory (restore).
//   - Parent: the previous snapshot of the same host and paths; files whose
//     size, mtime, ctime and inode match its nodes are not read again.
package snapshot
