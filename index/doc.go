// Package index knows where every blob lives.
//
// Vocabulary:
//   - Segment: an immutable encrypted file in index/ listing packs and their
//     blobs (see segment.go for the format). Segments are the repository's
//     index; a segment may supersede older ones (prune and repair write such
//     segments), and may mark packs as going away.
//   - Cache: a bbolt file in the local cache directory mapping blob IDs to
//     their pack locations. It is never the only copy: Sync brings it up to
//     date from new segments, Rebuild recreates it from segments or pack
//     trailers.
//   - Writer: the path by which new blobs enter the repository. It dedups,
//     seals, fills packs, uploads them, and only then writes the segment
//     that names them and adds them to the cache (data → index, never the
//     other way round).
package index
