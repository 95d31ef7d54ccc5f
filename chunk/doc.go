// Package chunk splits byte streams into content-defined chunks and names
// them with keyed BLAKE3-256 IDs.
//
// Vocabulary:
//   - Params: the chunker polynomial and the size bounds, stored in the
//     repository config so that every client cuts the same data the same way.
//   - Chunk: a run of bytes whose end is a split point, that is a position
//     where the rolling Rabin fingerprint of the last 64 bytes has its low
//     AverageBits bits zero, or where the chunk reached MaxSize, or the end
//     of the stream. No chunk but the last is shorter than MinSize.
//   - ID: keyed BLAKE3-256 of a chunk's plaintext. The key is part of the
//     repository's master key, so IDs reveal nothing to someone without it.
//
// The package knows nothing of repositories; callers convert the [32]byte
// IDs into their own ID type.
package chunk
