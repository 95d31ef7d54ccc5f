package repo

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
)

// Pack file layout (all integers little endian):
//
//	blob 0 ‖ blob 1 ‖ … ‖ blob n-1 ‖ trailer ‖ uint32 len(trailer)
//
// Each blob is seal(payload), where payload is the plaintext or its zstd
// compression. The trailer is seal(trailer plaintext):
//
//	"SNPK" ‖ uint8 version (1) ‖ uint32 n ‖ n × blob entry
//
// and a blob entry (BlobEntrySize bytes) is
//
//	uint8 type ‖ uint8 compression ‖ [32]byte id ‖ uint32 offset ‖
//	uint32 length ‖ uint32 raw length
//
// Entries are in file order, blobs do not overlap and lie before the
// trailer. Blob order is shuffled when the pack is written, so that file
// order inside a pack tells nothing about the source tree.

// BlobType says what a blob holds.
type BlobType uint8

// Blob types.
const (
	DataBlob BlobType = 1
	TreeBlob BlobType = 2
)

func (t BlobType) String() string {
	switch t {
	case DataBlob:
		return "data"
	case TreeBlob:
		return "tree"
	}
	return fmt.Sprintf("blobtype(%d)", uint8(t))
}

// Compression flags of a blob entry.
const (
	blobRaw  = 0
	blobZstd = 1
)

// MaxBlobSize bounds a blob's plaintext (a huge directory's tree is the
// largest blob there is).
const MaxBlobSize = 256 << 20

// BlobEntrySize is the encoded size of a BlobEntry.
const BlobEntrySize = 1 + 1 + 32 + 4 + 4 + 4

const (
	packMagic       = "SNPK"
	packVersion     = 1
	packHeaderSize  = 4 + 1 + 4
	maxTrailerBlobs = 1 << 22
)

// BlobEntry locates one blob inside its pack.
type BlobEntry struct {
	Type       BlobType
	Compressed bool
	ID         ID
	Offset     uint32 // of the sealed blob in the pack
	Length     uint32 // of the sealed blob
	RawLength  uint32 // of the plaintext
}

// AppendBinary appends the entry's encoding.
func (e BlobEntry) AppendBinary(b []byte) []byte {
	comp := byte(blobRaw)
	if e.Compressed {
		comp = blobZstd
	}
	b = append(b, byte(e.Type), comp)
	b = append(b, e.ID[:]...)
	b = binary.LittleEndian.AppendUint32(b, e.Offset)
	b = binary.LittleEndian.AppendUint32(b, e.Length)
	return binary.LittleEndian.AppendUint32(b, e.RawLength)
}

// DecodeBlobEntry decodes one entry from the first BlobEntrySize bytes of b
// and checks the fields that can be checked alone.
func DecodeBlobEntry(b []byte) (BlobEntry, error) {
	if len(b) < BlobEntrySize {
		return BlobEntry{}, errors.New("blob entry truncated")
	}
	e := BlobEntry{Type: BlobType(b[0])}
	if e.Type != DataBlob && e.Type != TreeBlob {
		return e, fmt.Errorf("unknown blob type %d", b[0])
	}
	switch b[1] {
	case blobRaw:
	case blobZstd:
		e.Compressed = true
	default:
		return e, fmt.Errorf("unknown compression %d", b[1])
	}
	copy(e.ID[:], b[2:34])
	e.Offset = binary.LittleEndian.Uint32(b[34:])
	e.Length = binary.LittleEndian.Uint32(b[38:])
	e.RawLength = binary.LittleEndian.Uint32(b[42:])
	if e.Length < Overhead {
		return e, fmt.Errorf("blob %s: length %d is shorter than the encryption overhead", e.ID.Short(), e.Length)
	}
	if e.RawLength > MaxBlobSize {
		return e, fmt.Errorf("blob %s: raw length %d exceeds %d", e.ID.Short(), e.RawLength, MaxBlobSize)
	}
	if !e.Compressed && e.RawLength != e.Length-Overhead {
		return e, fmt.Errorf("blob %s: raw length %d does not match stored length %d", e.ID.Short(), e.RawLength, e.Length)
	}
	// A blob is stored compressed only when that makes it smaller, so no
	// stored blob is longer than its plaintext plus the overhead; this also
	// bounds what a reader allocates for it.
	if e.Compressed && int64(e.Length) > int64(e.RawLength)+Overhead {
		return e, fmt.Errorf("blob %s: stored length %d exceeds raw length %d plus overhead", e.ID.Short(), e.Length, e.RawLength)
	}
	return e, nil
}

// PackBuilder collects sealed blobs for one pack. It is not safe for
// concurrent use; the caller serialises Add and Finish.
type PackBuilder struct {
	blobs [][]byte
	ents  []BlobEntry
	size  int
}

// Add appends one sealed blob (from Repository.SealBlob).
func (p *PackBuilder) Add(t BlobType, id ID, sealed SealedBlob) {
	p.blobs = append(p.blobs, sealed.Data)
	p.ents = append(p.ents, BlobEntry{Type: t, Compressed: sealed.Compressed, ID: id, Length: uint32(len(sealed.Data)), RawLength: uint32(sealed.RawLength)})
	p.size += len(sealed.Data)
}

// Size is the number of blob bytes added so far.
func (p *PackBuilder) Size() int { return p.size }

// Len is the number of blobs added so far.
func (p *PackBuilder) Len() int { return len(p.ents) }

// Finish shuffles the blobs, lays out the pack and returns its bytes, its
// ID (the hash of the bytes) and its entries in file order.
func (r *Repository) FinishPack(p *PackBuilder) (ID, []byte, []BlobEntry) {
	order := rand.Perm(len(p.ents))
	ents := make([]BlobEntry, 0, len(p.ents))
	trailer := make([]byte, 0, packHeaderSize+len(p.ents)*BlobEntrySize)
	trailer = append(trailer, packMagic...)
	trailer = append(trailer, packVersion)
	trailer = binary.LittleEndian.AppendUint32(trailer, uint32(len(p.ents)))
	data := make([]byte, 0, p.size+len(trailer)+len(p.ents)*BlobEntrySize+Overhead+4)
	for _, i := range order {
		e := p.ents[i]
		e.Offset = uint32(len(data))
		data = append(data, p.blobs[i]...)
		ents = append(ents, e)
		trailer = e.AppendBinary(trailer)
	}
	start := len(data)
	data = r.sealer.seal(data, trailer)
	data = binary.LittleEndian.AppendUint32(data, uint32(len(data)-start))
	return Hash(data), data, ents
}

// SealedBlob is a blob ready to be added to a pack.
type SealedBlob struct {
	Data       []byte
	Compressed bool
	RawLength  int
}

// SealBlob compresses (when that helps) and encrypts plaintext. buf is
// scratch space for the compressed form and may be nil.
func (r *Repository) SealBlob(plaintext []byte, level Compression, buf []byte) (SealedBlob, []byte) {
	payload := plaintext
	comp, ok := r.comp.compress(buf[:0], plaintext, level)
	if ok {
		payload = comp
	}
	out := r.sealer.seal(make([]byte, 0, len(payload)+Overhead), payload)
	return SealedBlob{Data: out, Compressed: ok, RawLength: len(plaintext)}, comp
}

// OpenBlob decrypts and decompresses a sealed blob read from a pack,
// appending the plaintext to dst. It does not check the ID; callers that
// know the ID key do (see index.Index.LoadBlob).
func (r *Repository) OpenBlob(packID ID, e BlobEntry, sealed []byte, dst []byte) ([]byte, error) {
	obj := fmt.Sprintf("%s blob %s in pack %s", e.Type, e.ID, packID)
	if len(sealed) != int(e.Length) {
		return nil, corrupt(obj, "read %d bytes, want %d", len(sealed), e.Length)
	}
	if !e.Compressed {
		out, err := r.sealer.open(dst, sealed)
		if err != nil {
			return nil, corrupt(obj, "%v", err)
		}
		return out, nil
	}
	payload, err := r.sealer.open(nil, sealed)
	if err != nil {
		return nil, corrupt(obj, "%v", err)
	}
	out, err := r.comp.decompress(dst, payload, int(e.RawLength))
	if err != nil {
		return nil, corrupt(obj, "%v", err)
	}
	return out, nil
}

// LoadBlob reads one blob from its pack and opens it.
func (r *Repository) LoadBlob(ctx context.Context, packID ID, e BlobEntry, dst []byte) ([]byte, error) {
	h := Handle{Type: PackFile, Name: packID.String()}
	sealed, err := r.be.Load(ctx, h, int64(e.Offset), int64(e.Length))
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return nil, corrupt(fmt.Sprintf("%s blob %s in pack %s", e.Type, e.ID, packID), "the pack ends before the blob (truncated?)")
	}
	if err != nil {
		return nil, fmt.Errorf("load %s blob %s: %w", e.Type, e.ID, err)
	}
	return r.OpenBlob(packID, e, sealed, dst)
}

// trailerGuess is how much of a pack's end LoadTrailer reads at first,
// enough for the trailers of all but unusual packs in one request.
const trailerGuess = 32 << 10

// LoadTrailer reads and decodes the trailer of a pack of the given size.
func (r *Repository) LoadTrailer(ctx context.Context, packID ID, size int64) ([]BlobEntry, error) {
	h := Handle{Type: PackFile, Name: packID.String()}
	if size < 4+Overhead+packHeaderSize {
		return nil, corrupt(h.String(), "pack of %d bytes is too small to hold a trailer", size)
	}
	n := min(size, trailerGuess)
	tail, err := r.be.Load(ctx, h, size-n, n)
	if err != nil {
		return nil, fmt.Errorf("load trailer: %w", err)
	}
	tlen := int64(binary.LittleEndian.Uint32(tail[len(tail)-4:]))
	if tlen < Overhead+packHeaderSize || tlen > size-4 || tlen > Overhead+packHeaderSize+maxTrailerBlobs*BlobEntrySize {
		return nil, corrupt(h.String(), "trailer length %d does not fit a pack of %d bytes", tlen, size)
	}
	var sealed []byte
	if tlen+4 <= n {
		sealed = tail[int64(len(tail))-4-tlen : len(tail)-4]
	} else {
		sealed, err = r.be.Load(ctx, h, size-4-tlen, tlen)
		if err != nil {
			return nil, fmt.Errorf("load trailer: %w", err)
		}
	}
	return r.ParseTrailer(packID, sealed, size-4-tlen)
}

// ParseTrailer decrypts a sealed trailer and decodes its entries. blobsEnd
// is the offset where the trailer starts: every blob must end before it.
func (r *Repository) ParseTrailer(packID ID, sealed []byte, blobsEnd int64) ([]BlobEntry, error) {
	obj := Handle{Type: PackFile, Name: packID.String()}.String()
	plain, err := r.sealer.open(nil, sealed)
	if err != nil {
		return nil, corrupt(obj, "trailer: %v", err)
	}
	ents, err := DecodeTrailer(plain, blobsEnd)
	if err != nil {
		return nil, corrupt(obj, "trailer: %v", err)
	}
	return ents, nil
}

// DecodeTrailer decodes a trailer's plaintext and checks that the entries
// are in order, do not overlap and end before blobsEnd.
func DecodeTrailer(plain []byte, blobsEnd int64) ([]BlobEntry, error) {
	if len(plain) < packHeaderSize || string(plain[:4]) != packMagic {
		return nil, errors.New("bad magic")
	}
	if plain[4] != packVersion {
		return nil, fmt.Errorf("unsupported pack version %d", plain[4])
	}
	n := binary.LittleEndian.Uint32(plain[5:])
	if n > maxTrailerBlobs || int64(len(plain)-packHeaderSize) != int64(n)*BlobEntrySize {
		return nil, fmt.Errorf("%d entries do not match %d bytes", n, len(plain)-packHeaderSize)
	}
	ents := make([]BlobEntry, 0, n)
	var end int64
	for i := range int(n) {
		e, err := DecodeBlobEntry(plain[packHeaderSize+i*BlobEntrySize:])
		if err != nil {
			return nil, fmt.Errorf("entry %d: %w", i, err)
		}
		if int64(e.Offset) < end || int64(e.Offset)+int64(e.Length) > blobsEnd {
			return nil, fmt.Errorf("entry %d: blob at %d+%d overlaps or lies outside the blob area", i, e.Offset, e.Length)
		}
		end = int64(e.Offset) + int64(e.Length)
		ents = append(ents, e)
	}
	return ents, nil
}

// SortEntries orders entries by offset, as they lie in the pack.
func SortEntries(ents []BlobEntry) {
	slices.SortFunc(ents, func(a, b BlobEntry) int { return int(a.Offset) - int(b.Offset) })
}
