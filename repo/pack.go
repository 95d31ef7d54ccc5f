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
// compression, possibly against base blobs (a delta, see below). The
// trailer is seal(trailer plaintext):
//
//	"SNPK" ‖ uint8 version (1 or 2) ‖ uint32 n ‖ n × blob entry ‖ bases
//
// and a blob entry (BlobEntrySize bytes) is
//
//	uint8 type ‖ uint8 compression ‖ [32]byte id ‖ uint32 offset ‖
//	uint32 length ‖ uint32 raw length
//
// Compression 2 (version 2 only) marks a delta: a data blob compressed
// with zstd using the concatenated plaintexts of its base blobs as a raw
// content dictionary. Its bases are listed in the bases section, for each
// delta entry in entry order: uint8 k (1..MaxBases) ‖ k × [32]byte base
// ID. The section is empty in version 1, which writers use when a pack
// holds no delta (and readers reject version 2 without one, so that the
// encoding stays canonical).
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
	blobRaw   = 0
	blobZstd  = 1
	blobDelta = 2
)

// MaxBases bounds the base blobs of one delta, and MaxDeltaDict the sum of
// their plaintext sizes: what a reader holds in memory to open one delta.
const (
	MaxBases     = 8
	MaxDeltaDict = 16 << 20
)

// MaxBlobSize bounds a blob's plaintext (a huge directory's tree is the
// largest blob there is).
const MaxBlobSize = 256 << 20

// MaxDataBlobSize bounds a data blob's plaintext: the largest chunk a
// repository may configure (chunk.MaxChunkSize). A reader refuses a larger
// one: a restore holds a blob per worker, and crafted blobs of 256 MiB,
// which compress to almost nothing, took it to gigabytes (found by an
// exploratory test).
const MaxDataBlobSize = 64 << 20

// MaxSize is the largest plaintext a reader accepts for a blob of type t.
func (t BlobType) MaxSize() int {
	if t == DataBlob {
		return MaxDataBlobSize
	}
	return MaxBlobSize
}

// BlobEntrySize is the encoded size of a BlobEntry.
const BlobEntrySize = 1 + 1 + 32 + 4 + 4 + 4

const (
	packMagic       = "SNPK"
	packVersion     = 1
	packVersionBase = 2 // with a bases section
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
	// Bases are set for a delta: the data blobs whose plaintexts,
	// concatenated in this order, are the zstd dictionary the blob was
	// compressed with (Compressed is then true). A reader opens a delta
	// with full (non-delta) copies of its bases.
	Bases []ID
}

// Delta reports whether the blob is stored against base blobs.
func (e BlobEntry) Delta() bool { return len(e.Bases) > 0 }

// Equal reports whether two entries are the same.
func (e BlobEntry) Equal(o BlobEntry) bool {
	return e.Type == o.Type && e.Compressed == o.Compressed && e.ID == o.ID && e.Offset == o.Offset &&
		e.Length == o.Length && e.RawLength == o.RawLength && slices.Equal(e.Bases, o.Bases)
}

// AppendBinary appends the entry's fixed-size encoding; a delta's bases go
// in the bases section (AppendBases).
func (e BlobEntry) AppendBinary(b []byte) []byte {
	comp := byte(blobRaw)
	switch {
	case e.Delta():
		comp = blobDelta
	case e.Compressed:
		comp = blobZstd
	}
	b = append(b, byte(e.Type), comp)
	b = append(b, e.ID[:]...)
	b = binary.LittleEndian.AppendUint32(b, e.Offset)
	b = binary.LittleEndian.AppendUint32(b, e.Length)
	return binary.LittleEndian.AppendUint32(b, e.RawLength)
}

// DecodeBlobEntry decodes one entry from the first BlobEntrySize bytes of b
// and checks the fields that can be checked alone. delta reports a delta,
// whose bases the caller reads from the bases section (ReadBases); a
// reader of a version without that section must reject it.
func DecodeBlobEntry(b []byte) (e BlobEntry, delta bool, err error) {
	if len(b) < BlobEntrySize {
		return BlobEntry{}, false, errors.New("blob entry truncated")
	}
	e = BlobEntry{Type: BlobType(b[0])}
	if e.Type != DataBlob && e.Type != TreeBlob {
		return e, false, fmt.Errorf("unknown blob type %d", b[0])
	}
	switch b[1] {
	case blobRaw:
	case blobZstd:
		e.Compressed = true
	case blobDelta:
		if e.Type != DataBlob {
			return e, false, fmt.Errorf("a %s blob cannot be a delta", e.Type)
		}
		e.Compressed, delta = true, true
	default:
		return e, false, fmt.Errorf("unknown compression %d", b[1])
	}
	copy(e.ID[:], b[2:34])
	e.Offset = binary.LittleEndian.Uint32(b[34:])
	e.Length = binary.LittleEndian.Uint32(b[38:])
	e.RawLength = binary.LittleEndian.Uint32(b[42:])
	if e.Length < Overhead {
		return e, false, fmt.Errorf("blob %s: length %d is shorter than the encryption overhead", e.ID.Short(), e.Length)
	}
	if limit := e.Type.MaxSize(); int64(e.RawLength) > int64(limit) {
		largest := "the largest tree"
		if e.Type == DataBlob {
			largest = "the largest chunk"
		}
		return e, false, fmt.Errorf("%s blob %s: raw length %d exceeds %d, %s", e.Type, e.ID.Short(), e.RawLength, limit, largest)
	}
	if !e.Compressed && e.RawLength != e.Length-Overhead {
		return e, false, fmt.Errorf("blob %s: raw length %d does not match stored length %d", e.ID.Short(), e.RawLength, e.Length)
	}
	// A blob is stored compressed only when that makes it smaller, so no
	// stored blob is longer than its plaintext plus the overhead; this also
	// bounds what a reader allocates for it.
	if e.Compressed && int64(e.Length) > int64(e.RawLength)+Overhead {
		return e, false, fmt.Errorf("blob %s: stored length %d exceeds raw length %d plus overhead", e.ID.Short(), e.Length, e.RawLength)
	}
	return e, delta, nil
}

// AppendBases appends the bases section for ents: the bases of each delta,
// in entry order.
func AppendBases(b []byte, ents []BlobEntry) []byte {
	for _, e := range ents {
		if e.Delta() {
			b = append(b, byte(len(e.Bases)))
			for _, id := range e.Bases {
				b = append(b, id[:]...)
			}
		}
	}
	return b
}

// basesSize is the size of the bases section for ents.
func basesSize(ents []BlobEntry) int {
	n := 0
	for _, e := range ents {
		if e.Delta() {
			n += 1 + 32*len(e.Bases)
		}
	}
	return n
}

// ReadBases reads a bases section from b into the entries that delta marks
// and returns what follows it. It checks each list: 1 to MaxBases distinct
// IDs, none the delta's own.
func ReadBases(b []byte, ents []BlobEntry, delta []bool) ([]byte, error) {
	for i := range ents {
		if !delta[i] {
			continue
		}
		if len(b) < 1 {
			return nil, errors.New("bases section truncated")
		}
		k := int(b[0])
		if k < 1 || k > MaxBases {
			return nil, fmt.Errorf("blob %s: %d bases (1 to %d allowed)", ents[i].ID.Short(), k, MaxBases)
		}
		if len(b) < 1+32*k {
			return nil, errors.New("bases section truncated")
		}
		bases := make([]ID, k)
		for j := range bases {
			copy(bases[j][:], b[1+32*j:])
			if bases[j] == ents[i].ID || slices.Contains(bases[:j], bases[j]) {
				return nil, fmt.Errorf("blob %s: base %s is the blob itself or listed twice", ents[i].ID.Short(), bases[j].Short())
			}
		}
		ents[i].Bases = bases
		b = b[1+32*k:]
	}
	return b, nil
}

// PackBuilder collects sealed blobs for one pack, one after the other in
// one buffer. It is not safe for concurrent use; the caller serialises Add,
// Repository.AddBlob and Repository.FinishPack.
type PackBuilder struct {
	buf  []byte      // the sealed blobs, in the order they were added
	ents []BlobEntry // Offset is into buf until FinishPack lays the pack out
	// listed is the size of the trailer's entries and bases so far.
	listed int
}

// MaxPackBlobs is how many blobs a writer puts in one pack at most. A pack
// of small files' blobs is mostly its trailer: cut by the blobs' bytes
// alone, a first backup of a million tiny files wrote packs of 450,000
// blobs and 37 MB (a 16 MiB pack size), each held whole in memory while
// it was built and listed by one index segment that every reader then
// held whole (index.segmentBlobs). Readers take packs of any count.
const MaxPackBlobs = 1 << 16

// add appends e, whose sealed bytes are already in buf.
func (p *PackBuilder) add(e BlobEntry) {
	p.ents = append(p.ents, e)
	p.listed += BlobEntrySize
	if e.Delta() {
		p.listed += 1 + 32*len(e.Bases)
	}
}

// Add appends one sealed blob (from Repository.SealBlob, or copied from
// another pack).
func (p *PackBuilder) Add(t BlobType, id ID, sealed SealedBlob) {
	off := len(p.buf)
	p.buf = append(p.buf, sealed.Data...)
	p.add(BlobEntry{Type: t, Compressed: sealed.Compressed, ID: id, Offset: uint32(off),
		Length: uint32(len(sealed.Data)), RawLength: uint32(sealed.RawLength)})
}

// Size is the size of the pack so far: the blobs added and their entries
// in the trailer.
func (p *PackBuilder) Size() int { return len(p.buf) + p.listed }

// Fits reports whether a blob of the given plaintext or compressed size
// still fits in a pack of packSize bytes, with its entry. An empty pack
// takes any blob.
func (p *PackBuilder) Fits(payload, packSize int) bool {
	return len(p.ents) == 0 || len(p.ents) < MaxPackBlobs && p.Size()+payload+Overhead+BlobEntrySize <= packSize
}

// Full reports whether the pack is as large as packSize, or holds
// MaxPackBlobs blobs: it is finished, and the next blob starts another.
func (p *PackBuilder) Full(packSize int) bool {
	return p.Size() >= packSize || len(p.ents) >= MaxPackBlobs
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
	trailer := make([]byte, 0, packHeaderSize+len(p.ents)*BlobEntrySize+basesSize(p.ents))
	trailer = append(trailer, packMagic...)
	trailer = append(trailer, packVersion)
	if slices.ContainsFunc(p.ents, BlobEntry.Delta) {
		trailer[len(trailer)-1] = packVersionBase
	}
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
	trailer = AppendBases(trailer, ents)
	start := len(data)
	data = r.sealer.seal(data, trailer)
	data = binary.LittleEndian.AppendUint32(data, uint32(len(data)-start))
	r.ReleasePack(p.buf)
	p.buf, p.ents, p.listed = nil, nil, 0
	return Hash(data), data, ents
}

// PackFileSize is the size of the pack file that FinishPack writes for
// ents: their sealed blobs, the sealed trailer listing them, and its
// length. A pack file of another size holds blobs ents does not list.
func PackFileSize(ents []BlobEntry) int64 {
	n := int64(Overhead + packHeaderSize + len(ents)*BlobEntrySize + basesSize(ents) + 4)
	for _, e := range ents {
		n += int64(e.Length)
	}
	return n
}

// smallPack is the size under which a pack is laid out in a buffer of its
// own rather than in one of the pack buffers, which would be touched (and
// kept) for a few KiB.
const smallPack = 1 << 20

// NewSmallPack returns a builder for a pack of about n bytes of payload,
// such as SaveDictionary's pack of one blob, that does not take one of the
// pack buffers.
func NewSmallPack(n int) *PackBuilder {
	return &PackBuilder{buf: make([]byte, 0, n+Overhead)}
}

// packBuffers is how many pack buffers ReleasePack keeps for reuse: one for
// a pack being filled, one being laid out, and two being uploaded.
const packBuffers = 4

// packBuffer returns an empty buffer with room for at least n bytes, from
// the buffers ReleasePack gave back when there is one. Packs are built and
// laid out in such buffers, so a long run does not allocate (and collect)
// a pack's worth of memory for every pack.
func (r *Repository) packBuffer(n int) []byte {
	if n > 0 && n < smallPack {
		return make([]byte, 0, n) // a pack of one dictionary, or a few trees
	}
	select {
	case b := <-r.packBufs:
		if cap(b) >= n {
			return b[:0]
		}
	default:
	}
	return alignedBuffer(max(n, r.cfg.PackSize+packSlack), r.opts.HugePages)
}

// alignedBuffer returns an empty buffer of capacity n that starts on a
// 4096-byte boundary, so that the local backend can write the pack from it
// with O_DIRECT (repo/local/directio.go) rather than through the page cache.
//
// With hugePages its whole 2 MiB pages are advised for transparent huge
// pages (where the system's THP mode is madvise): a pack buffer is filled
// from end to end for every pack and kept for the run (packBuffers), so
// huge pages save its 4 KiB faults and TLB misses without the risk that
// khugepaged fills, as huge pages, memory the runtime has handed back
// (docs/design.md, "Huge pages for the pack buffers").
func alignedBuffer(n int, hugePages bool) []byte {
	const align = 4096
	b := make([]byte, n+align)
	if hugePages {
		adviseHugePages(b)
	}
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
	if cap(data) < r.cfg.PackSize {
		return // a small pack's: a later pack would outgrow it
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

// CompressDelta returns the zstd compression of plaintext against dict, the
// concatenated plaintexts of base blobs, written to scratch, when it is
// smaller than plaintext; ok is false otherwise. It also returns scratch,
// grown as needed.
func (r *Repository) CompressDelta(plaintext, dict []byte, level Compression, scratch []byte) (payload []byte, ok bool, newScratch []byte) {
	comp, ok := r.comp.compressDelta(scratch[:0], plaintext, dict, level)
	if ok {
		return comp, true, comp
	}
	return nil, false, scratch
}

// AddBlob encrypts a payload from CompressBlob (or, with bases, from
// CompressDelta) into the pack and returns its size there.
func (r *Repository) AddBlob(p *PackBuilder, t BlobType, id ID, payload []byte, compressed bool, rawLength int, bases []ID) int {
	r.startPack(p, t)
	off := len(p.buf)
	p.buf = r.sealer.seal(p.buf, payload)
	p.add(BlobEntry{Type: t, Compressed: compressed, ID: id, Offset: uint32(off),
		Length: uint32(len(p.buf) - off), RawLength: uint32(rawLength), Bases: bases})
	return len(p.buf) - off
}

// CopyBlob adds a blob as it is sealed in another pack of this repository
// (e, its entry there, and sealed, its bytes), unchanged: the same
// compression, and for a delta the same bases. A sealed blob does not
// depend on its pack or its place in it. The caller has verified it
// (Index.VerifyBlob); it returns the blob's size in the pack.
func (r *Repository) CopyBlob(p *PackBuilder, e BlobEntry, sealed []byte) int {
	r.startPack(p, e.Type)
	e.Offset = uint32(len(p.buf))
	e.Length = uint32(len(sealed))
	p.buf = append(p.buf, sealed...)
	p.add(e)
	return len(sealed)
}

// startPack gives an empty builder its buffer.
func (r *Repository) startPack(p *PackBuilder, t BlobType) {
	if p.buf != nil {
		return
	}
	if t == TreeBlob {
		// Trees fill a pack only in runs over many directories: start
		// small and grow (most runs write a few MiB of them at most).
		p.buf = make([]byte, 0, 1<<20)
	} else {
		p.buf = r.packBuffer(0)
	}
}

// Authentic reports whether a sealed blob (e, its entry) decrypts: its
// bytes are as its writer sealed them. It does not decompress it, so it
// needs no bases for a delta, and it does not check the ID.
func (r *Repository) Authentic(e BlobEntry, sealed []byte) error {
	if len(sealed) != int(e.Length) {
		return corrupt(fmt.Sprintf("%s blob %s", e.Type, e.ID), "read %d bytes, want %d", len(sealed), e.Length)
	}
	if _, err := r.sealer.open(nil, sealed); err != nil {
		return corrupt(fmt.Sprintf("%s blob %s", e.Type, e.ID), "%v", err)
	}
	return nil
}

// OpenBlob decrypts and decompresses a sealed blob read from a pack,
// appending the plaintext to dst. It does not check the ID; callers that
// know the ID key do (see index.Index.LoadBlob). A delta needs its
// dictionary: see OpenDelta.
func (r *Repository) OpenBlob(packID ID, e BlobEntry, sealed []byte, dst []byte) ([]byte, error) {
	return r.OpenDelta(packID, e, sealed, nil, dst)
}

// OpenDelta is OpenBlob for any blob: dict is the concatenated plaintext of
// a delta's bases (verified by the caller), and nil for other blobs.
func (r *Repository) OpenDelta(packID ID, e BlobEntry, sealed, dict []byte, dst []byte) ([]byte, error) {
	obj := fmt.Sprintf("%s blob %s in pack %s", e.Type, e.ID, packID)
	if len(sealed) != int(e.Length) {
		return nil, corrupt(obj, "read %d bytes, want %d", len(sealed), e.Length)
	}
	if e.Delta() != (dict != nil) {
		return nil, fmt.Errorf("%s: opened with %d bytes of dictionary for %d bases", obj, len(dict), len(e.Bases))
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
	var out []byte
	if dict != nil {
		out, err = r.comp.decompressDelta(dst, payload, dict, int(e.RawLength))
	} else {
		out, err = r.comp.decompress(dst, payload, int(e.RawLength))
	}
	if err != nil {
		return nil, corrupt(obj, "%v", err)
	}
	return out, nil
}

// LoadBlob reads one blob from its pack and opens it. A delta needs its
// dictionary: see LoadDelta.
func (r *Repository) LoadBlob(ctx context.Context, packID ID, e BlobEntry, dst []byte) ([]byte, error) {
	return r.LoadDelta(ctx, packID, e, nil, dst)
}

// LoadDelta is LoadBlob for any blob, with OpenDelta's dict.
func (r *Repository) LoadDelta(ctx context.Context, packID ID, e BlobEntry, dict, dst []byte) ([]byte, error) {
	h := Handle{Type: PackFile, Name: packID.String()}
	sealed, err := r.be.Load(ctx, h, int64(e.Offset), int64(e.Length))
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return nil, corrupt(fmt.Sprintf("%s blob %s in pack %s", e.Type, e.ID, packID), "the pack ends before the blob (truncated?)")
	}
	if err != nil {
		return nil, fmt.Errorf("load %s blob %s: %w", e.Type, e.ID, err)
	}
	return r.OpenDelta(packID, e, sealed, dict, dst)
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
	version := plain[4]
	if version != packVersion && version != packVersionBase {
		return nil, fmt.Errorf("unsupported pack version %d", plain[4])
	}
	n := binary.LittleEndian.Uint32(plain[5:])
	rest := int64(len(plain) - packHeaderSize)
	if n > maxTrailerBlobs || int64(n)*BlobEntrySize > rest || version == packVersion && int64(n)*BlobEntrySize != rest {
		return nil, fmt.Errorf("%d entries do not match %d bytes", n, len(plain)-packHeaderSize)
	}
	ents := make([]BlobEntry, 0, n)
	delta := make([]bool, 0, n)
	var end int64
	for i := range int(n) {
		e, d, err := DecodeBlobEntry(plain[packHeaderSize+i*BlobEntrySize:])
		if err != nil {
			return nil, fmt.Errorf("entry %d: %w", i, err)
		}
		if d && version == packVersion {
			return nil, fmt.Errorf("entry %d: a delta in a pack of version %d", i, version)
		}
		if int64(e.Offset) < end || int64(e.Offset)+int64(e.Length) > blobsEnd {
			return nil, fmt.Errorf("entry %d: blob at %d+%d overlaps or lies outside the blob area", i, e.Offset, e.Length)
		}
		end = int64(e.Offset) + int64(e.Length)
		ents = append(ents, e)
		delta = append(delta, d)
	}
	left, err := ReadBases(plain[packHeaderSize+int(n)*BlobEntrySize:], ents, delta)
	if err != nil {
		return nil, err
	}
	if len(left) != 0 {
		return nil, fmt.Errorf("%d bytes after the entries", len(left))
	}
	if version == packVersionBase && !slices.ContainsFunc(ents, BlobEntry.Delta) {
		return nil, errors.New("version 2 without a delta")
	}
	return ents, nil
}

// SortEntries orders entries by offset, as they lie in the pack.
func SortEntries(ents []BlobEntry) {
	slices.SortFunc(ents, func(a, b BlobEntry) int { return int(a.Offset) - int(b.Offset) })
}
