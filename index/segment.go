package index

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/snap-backup/snap/repo"
)

// Segment file plaintext (integers little endian):
//
//	"SNIX" ‖ uint8 version (1 or 2)
//	uint32 s ‖ s × [32]byte          superseded segment IDs
//	uint32 p ‖ p × pack
//
// pack:
//
//	[32]byte pack ID ‖ uint64 pack size ‖ uint8 status ‖ int64 marked-at
//	(Unix seconds, 0 when live) ‖ uint32 b ‖ b × blob entry (repo.BlobEntry)
//	‖ bases (version 2: the pack trailer's bases section for these entries)
//
// Writers use version 1 when no pack holds a delta, and readers reject
// version 2 without one: the encoding stays canonical.
//
// Status is PackLive or PackMarked. A marked pack is going away: prune
// deletes it once it has stayed marked long enough and nothing refers to
// it; a writer must not reuse blobs from it.

// PackStatus says whether a pack may be relied on.
type PackStatus uint8

// Pack statuses.
const (
	PackLive   PackStatus = 0
	PackMarked PackStatus = 1
)

// Pack is one pack as a segment lists it.
type Pack struct {
	ID       repo.ID
	Size     int64
	Status   PackStatus
	MarkedAt int64 // Unix seconds when Status is PackMarked
	Blobs    []repo.BlobEntry
}

// Segment is the decoded content of one index file.
type Segment struct {
	Supersedes []repo.ID
	Packs      []Pack
}

const (
	segMagic       = "SNIX"
	segVersion     = 1
	segVersionBase = 2 // with bases sections
	packFixed      = 32 + 8 + 1 + 8 + 4
)

// Encode returns the segment's plaintext.
func (s *Segment) Encode() []byte {
	n := 5 + 4 + 32*len(s.Supersedes) + 4
	version := byte(segVersion)
	for _, p := range s.Packs {
		n += packFixed + len(p.Blobs)*repo.BlobEntrySize
		for _, e := range p.Blobs {
			if e.Delta() {
				version = segVersionBase
				n += 1 + 32*len(e.Bases)
			}
		}
	}
	b := make([]byte, 0, n)
	b = append(b, segMagic...)
	b = append(b, version)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(s.Supersedes)))
	for _, id := range s.Supersedes {
		b = append(b, id[:]...)
	}
	b = binary.LittleEndian.AppendUint32(b, uint32(len(s.Packs)))
	for _, p := range s.Packs {
		b = append(b, p.ID[:]...)
		b = binary.LittleEndian.AppendUint64(b, uint64(p.Size))
		b = append(b, byte(p.Status))
		b = binary.LittleEndian.AppendUint64(b, uint64(p.MarkedAt))
		b = binary.LittleEndian.AppendUint32(b, uint32(len(p.Blobs)))
		for _, e := range p.Blobs {
			b = e.AppendBinary(b)
		}
		if version == segVersionBase {
			b = repo.AppendBases(b, p.Blobs)
		}
	}
	return b
}

// decoder reads fixed-size fields and remembers the first error.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) take(n int) []byte {
	if d.err != nil {
		return nil
	}
	if n < 0 || n > len(d.b) {
		d.err = errors.New("truncated")
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) u8() uint8 {
	if v := d.take(1); v != nil {
		return v[0]
	}
	return 0
}

func (d *decoder) u32() uint32 {
	if v := d.take(4); v != nil {
		return binary.LittleEndian.Uint32(v)
	}
	return 0
}

func (d *decoder) u64() uint64 {
	if v := d.take(8); v != nil {
		return binary.LittleEndian.Uint64(v)
	}
	return 0
}

// count reads a uint32 count of items of at least size bytes each and
// checks that they can fit in what is left, so a hostile count cannot make
// us allocate.
func (d *decoder) count(size int) int {
	n := int(d.u32())
	if d.err == nil && n > len(d.b)/size {
		d.err = fmt.Errorf("count %d exceeds the remaining %d bytes", n, len(d.b))
	}
	return n
}

// DecodeSegment parses and validates a segment's plaintext.
func DecodeSegment(b []byte) (*Segment, error) {
	if len(b) < 5 || string(b[:4]) != segMagic {
		return nil, errors.New("index segment: bad magic")
	}
	version := b[4]
	if version != segVersion && version != segVersionBase {
		return nil, fmt.Errorf("index segment: unsupported version %d", b[4])
	}
	d := &decoder{b: b[5:]}
	s := &Segment{}
	ns := d.count(32)
	if d.err == nil && ns > 0 {
		s.Supersedes = make([]repo.ID, ns)
		for i := range s.Supersedes {
			copy(s.Supersedes[i][:], d.take(32))
		}
	}
	np := d.count(packFixed)
	if d.err == nil && np > 0 {
		s.Packs = make([]Pack, 0, np)
	}
	for i := 0; i < np && d.err == nil; i++ {
		var p Pack
		copy(p.ID[:], d.take(32))
		p.Size = int64(d.u64())
		p.Status = PackStatus(d.u8())
		p.MarkedAt = int64(d.u64())
		nb := d.count(repo.BlobEntrySize)
		if d.err != nil {
			break
		}
		if p.Size < 0 || p.Size > 1<<40 {
			return nil, fmt.Errorf("index segment: pack %s: size %d out of range", p.ID.Short(), p.Size)
		}
		if p.Status != PackLive && p.Status != PackMarked {
			return nil, fmt.Errorf("index segment: pack %s: unknown status %d", p.ID.Short(), p.Status)
		}
		p.Blobs = make([]repo.BlobEntry, nb)
		delta := make([]bool, nb)
		var end int64
		for j := range p.Blobs {
			e, dl, err := repo.DecodeBlobEntry(d.take(repo.BlobEntrySize))
			if err != nil {
				return nil, fmt.Errorf("index segment: pack %s: %w", p.ID.Short(), err)
			}
			if dl && version == segVersion {
				return nil, fmt.Errorf("index segment: pack %s: blob %s: a delta in a segment of version %d", p.ID.Short(), e.ID.Short(), version)
			}
			delta[j] = dl
			if int64(e.Offset) < end || int64(e.Offset)+int64(e.Length) > p.Size {
				return nil, fmt.Errorf("index segment: pack %s: blob %s at %d+%d overlaps or lies outside the pack", p.ID.Short(), e.ID.Short(), e.Offset, e.Length)
			}
			end = int64(e.Offset) + int64(e.Length)
			p.Blobs[j] = e
		}
		if version == segVersionBase && d.err == nil {
			rest, err := repo.ReadBases(d.b, p.Blobs, delta)
			if err != nil {
				return nil, fmt.Errorf("index segment: pack %s: %w", p.ID.Short(), err)
			}
			d.b = rest
		}
		s.Packs = append(s.Packs, p)
	}
	if d.err != nil {
		return nil, fmt.Errorf("index segment: %w", d.err)
	}
	if version == segVersionBase && !slices.ContainsFunc(s.Packs, func(p Pack) bool { return slices.ContainsFunc(p.Blobs, repo.BlobEntry.Delta) }) {
		return nil, errors.New("index segment: version 2 without a delta")
	}
	if len(d.b) != 0 {
		return nil, fmt.Errorf("index segment: %d trailing bytes", len(d.b))
	}
	return s, nil
}
