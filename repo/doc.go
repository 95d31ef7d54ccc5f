// Package repo is the repository: its config, keys and encryption, the pack
// format, locks, and atomic object storage on a Backend.
//
// Vocabulary:
//   - Backend: where files live (a local directory, an S3 bucket). It stores
//     whole immutable files by Handle and nothing else.
//   - Object: a small encrypted file (config, snapshot, index segment, lock)
//     named by the BLAKE3-256 of its stored bytes.
//   - Blob: one encrypted, optionally compressed chunk of file content (data)
//     or one directory listing (tree), stored inside a pack.
//   - Pack: a file in data/ holding blobs followed by an encrypted trailer
//     that lists them (see pack.go and docs/format.md).
//   - Key: the master key (encryption key and ID key), wrapped in key files
//     by keys derived from passwords with argon2id.
//
// repo knows nothing of indexes, trees or snapshots; the packages above it
// decide what blobs mean. Every decoder here treats repository bytes as
// hostile: sizes are bounded before allocation and failures are errors that
// name the object.
package repo
