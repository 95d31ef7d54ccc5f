package repo

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"unsafe"
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

// PackBuilder collects sealed blobs for one pack, one after the other in
// one buffer. It is not safe for concurrent use; the caller serialises Add,
// Repository.AddBlob and Repository.FinishPack.
type PackBuilder struct {
	buf  []byte      // the sealed blobs, in the order they were added
	ents []BlobEntry // Offset is into buf until FinishPack lays the pack out
}

// Add appends one sealed blob (from Repository.SealBlob, or copied from
// another pack).
func (p *PackBuilder) Add(t BlobType, id ID, sealed SealedBlob) {
	p.ents = append(p.ents, BlobEntry{Type: t, Compressed: sealed.Compressed, ID: id, Offset: uint32(len(p.buf)),
		Length: uint32(len(sealed.Data)), RawLength: uint32(sealed.RawLength)})
	p.buf = append(p.buf, sealed.Data...)
}

// Size is the number of blob bytes added so far.
func (p *PackBuilder) Size() int { return len(p.buf) }

// Fits reports whether a blob of the given plaintext or compressed size
// still fits in a pack of packSize bytes. An empty pack takes any blob.
func (p *PackBuilder) Fits(payload, packSize int) bool {
	return len(p.ents) == 0 || len(p.buf)+payload+Overhead <= packSize
}

// Len is the number of blobs added so far.
func (p *PackBuilder) Len() int { return len(p.ents) }

// FinishPack shuffles the blobs, lays out the pack and returns its bytes,
// its ID (the hash of the bytes) and its entries in file order. Once the
// bytes are stored, ReleasePack gives them back for the next pack. The
// builder is empty afterwards.
func (r *Repository) FinishPack(p *PackBuilder) (ID, []byte, []BlobEntry) {
	order := rand.Perm(len(p.ents))
	ents := make([]BlobEntry, 0, len(p.ents))
	trailer := make([]byte, 0, packHeaderSize+len(p.ents)*BlobEntrySize)
	trailer = append(trailer, packMagic...)
	trailer = append(trailer, packVersion)
	trailer = binary.LittleEndian.AppendUint32(trailer, uint32(len(p.ents)))
	data := r.packBuffer(len(p.buf) + cap(trailer) + Overhead + 4)
	for _, i := range order {
		e := p.ents[i]
		blob := p.buf[e.Offset : e.Offset+e.Length]
		e.Offset = uint32(len(data))
		data = append(data, blob...)
		ents = append(ents, e)
		trailer = e.AppendBinary(trailer)
	}
	start := len(data)
	data = r.sealer.seal(data, trailer)
	data = binary.LittleEndian.AppendUint32(data, uint32(len(data)-start))
	r.ReleasePack(p.buf)
	p.buf, p.ents = nil, nil
	return Hash(data), data, ents
}

// packBuffers is how many pack buffers ReleasePack keeps for reuse: one for
// a pack being filled, one being laid out, and two being uploaded.
const packBuffers = 4

// packBuffer returns an empty buffer with room for at least n bytes, from
// the buffers ReleasePack gave back when there is one. Packs are built and
// laid out in such buffers, so a long run does not allocate (and collect)
// a pack's worth of memory for every pack.
func (r *Repository) packBuffer(n int) []byte {
	select {
	case b := <-r.packBufs:
		if cap(b) >= n {
			return b[:0]
		}
	default:
	}
	return alignedBuffer(max(n, r.cfg.PackSize+packSlack))
}

// alignedBuffer returns an empty buffer of capacity n that starts on a
// 4096-byte boundary, so that the local backend can write the pack from it
// with O_DIRECT (repo/local/directio.go) rather than through the page cache.
func alignedBuffer(n int) []byte {
	const align = 4096
	b := make([]byte, n+align)
	off := int(-uintptr(unsafe.Pointer(unsafe.SliceData(b))) & (align - 1))
	return b[off : off : off+n]
}

// packSlack is the room a pack buffer has beyond the pack size: a pack is
// closed before a blob that would not fit (see PackBuilder.Fits), so only
// the trailer needs it.
const packSlack = 64 << 10

// DropPackBuffers forgets the buffers kept for reuse, so that the memory
// serves what comes next (an index update, say) once the last pack of a
// run is stored.
func (r *Repository) DropPackBuffers() {
	for {
		select {
		case <-r.packBufs:
		default:
			return
		}
	}
}

// ReleasePack gives back the bytes FinishPack returned, once they are
// stored and nothing refers to them any more.
func (r *Repository) ReleasePack(data []byte) {
	if cap(data) == 0 {
		return
	}
	select {
	case r.packBufs <- data[:0]:
	default: // enough kept
	}
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
	payload, ok, buf := r.CompressBlob(plaintext, level, buf)
	out := r.sealer.seal(make([]byte, 0, len(payload)+Overhead), payload)
	return SealedBlob{Data: out, Compressed: ok, RawLength: len(plaintext)}, buf
}

// CompressBlob returns what is stored of plaintext before encryption: its
// zstd compression, written to scratch, when that is smaller, else
// plaintext itself. It also returns scratch, grown as needed, for the
// caller to use again.
func (r *Repository) CompressBlob(plaintext []byte, level Compression, scratch []byte) (payload []byte, compressed bool, newScratch []byte) {
	comp, ok := r.comp.compress(scratch[:0], plaintext, level)
	if ok {
		return comp, true, comp
	}
	return plaintext, false, scratch
}

// AddBlob encrypts a payload from CompressBlob into the pack and returns
// its size there.
func (r *Repository) AddBlob(p *PackBuilder, t BlobType, id ID, payload []byte, compressed bool, rawLength int) int {
	if p.buf == nil {
		if t == TreeBlob {
			// Trees fill a pack only in runs over many directories: start
			// small and grow (most runs write a few MiB of them at most).
			p.buf = make([]byte, 0, 1<<20)
		} else {
			p.buf = r.packBuffer(0)
		}
	}
	off := len(p.buf)
	p.buf = r.sealer.seal(p.buf, payload)
	p.ents = append(p.ents, BlobEntry{Type: t, Compressed: compressed, ID: id, Offset: uint32(off),
		Length: uint32(len(p.buf) - off), RawLength: uint32(rawLength)})
	return len(p.buf) - off
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
