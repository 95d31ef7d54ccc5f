package chunk

import (
	"errors"
	"io"

	"github.com/restic/chunker"
)

// windowSize is the rolling hash's window, as restic/chunker has it.
const windowSize = 64

// CutFinder finds the cut points a Chunker with the same Params makes,
// without returning (or copying) the chunks. Parallel's scouts only need
// the cut points; restic/chunker copies every byte into the chunk it
// returns and reads the first MinSize-64 bytes of each chunk that it never
// hashes. The finder reads with ReadAt from MinSize-64 bytes after a cut
// on (the bytes it hashes, and what its last block takes in past the
// cut), and hashes them in place: on dataset 2 of make bench it finds the
// cuts in about half the CPU time. Chunker (restic/chunker) stays the
// definition of the cuts, and cuts streams and, with --sequential-read,
// files; the tests and a fuzz test hold the two to the same cuts.
//
// Why skipping is exact: restic/chunker's hash is a Rabin fingerprint of
// the last 64 bytes (a polynomial over GF(2) reduced mod the repository's
// polynomial), and a chunk may only end at MinSize bytes or more. After a
// cut the chunker empties its window, skips MinSize-64 bytes, and hashes
// from there: when it may first cut, its window holds exactly 64 bytes of
// the file, and from then on its digest is the fingerprint of the 64 bytes
// before the candidate cut, which is all the finder computes.
type CutFinder struct {
	min, max int64
	mask     uint64
	out      [256]uint64 // out[b]: the fingerprint of b followed by 63 zero bytes, to slide b out
	mod      [256]uint64 // mod[t]: reduces the 8 bits t above the degree (as restic/chunker's tables)
	block    int         // bytes read at once
	buf      []byte      // windowSize bytes of history, then a block read from the file
}

// The finder reads an eighth of the average distance between split
// points at once, between these bounds: the bytes read past a cut are
// read again for the next chunk (about 4 % of them with the default
// bounds), and a block stays in the L2 cache while it is hashed.
const (
	minCutBlock = 4 << 10
	maxCutBlock = 256 << 10
)

// polShift is the shift that takes a digest's 8 bits above the degree: a
// repository polynomial has degree 53 (Params.Validate).
const polShift = 53 - 8

// NewCutFinder returns a finder for p, which must have passed Validate:
// the skip after a cut assumes MinSize >= windowSize.
func NewCutFinder(p Params) *CutFinder {
	f := &CutFinder{min: int64(p.MinSize), max: int64(p.MaxSize), mask: 1<<uint(p.AverageBits) - 1}
	// Both tables are linear in b over GF(2) (XOR is addition): compute
	// them for the eight one-bit bytes, and every other entry as the XOR
	// of the entries of its bits, one more bit at a time.
	pol := chunker.Pol(p.Polynomial)
	for i := range 8 {
		b := chunker.Pol(1) << i
		// The fingerprint of one byte b followed by windowSize-1 zeros.
		h := b.Mod(pol)
		for range windowSize - 1 {
			h = (h << 8).Mod(pol)
		}
		f.out[b] = uint64(h)
		f.mod[b] = uint64((b << 53).Mod(pol) | b<<53)
	}
	for b := 3; b < 256; b++ {
		if low := b & -b; low != b {
			f.out[b] = f.out[low] ^ f.out[b^low]
			f.mod[b] = f.mod[low] ^ f.mod[b^low]
		}
	}
	f.block = min(max(1<<uint(p.AverageBits)/8, minCutBlock), maxCutBlock)
	f.buf = make([]byte, windowSize+f.block)
	return f
}

// errShort is returned when ra ends before size: the file shrank.
var errShort = errors.New("file ends before its size")

// Find calls yield with each cut that a Chunker started at offset from of
// ra makes before offset size, in order, while yield returns true. A cut
// is the end offset of a chunk; the end of the data (size) is not a cut.
func (f *CutFinder) Find(ra io.ReaderAt, from, size int64, yield func(cut int64) bool) error {
	for start := from; ; {
		cut, err := f.next(ra, start, size)
		if err != nil || cut < 0 {
			return err
		}
		if !yield(cut) {
			return nil
		}
		start = cut
	}
}

// next returns the cut that ends the chunk starting at start, or -1 when
// the chunk runs to size.
func (f *CutFinder) next(ra io.ReaderAt, start, size int64) (int64, error) {
	// Candidate cuts c lie in [first, last]: a chunk has at least min
	// bytes, at most max, and a cut at size is the end, not a cut.
	first, last := start+f.min, min(start+f.max, size-1)
	if first > last {
		return -1, nil
	}
	// Feeding the byte at p makes c = p+1 a candidate. The window of the
	// first candidate starts at w; the history before it is zeros, which
	// slide out as zero.
	w := first - windowSize
	clear(f.buf[:windowSize])
	lo := 2*windowSize - 1 // the first candidate's last byte, in f.buf
	for p := w; p < last; {
		n := int(min(int64(f.block), last-p))
		if m, err := ra.ReadAt(f.buf[windowSize:windowSize+n], p); m < n {
			if err == nil || err == io.EOF {
				err = errShort
			}
			return -1, err
		}
		if i := f.scan(f.buf, lo, windowSize+n); i >= 0 {
			return p + int64(i-windowSize) + 1, nil
		}
		p += int64(n)
		copy(f.buf[:windowSize], f.buf[n:n+windowSize])
		lo = windowSize
	}
	if last == start+f.max {
		return last, nil
	}
	return -1, nil
}

// lanes is how many stretches of a block scan hashes at once. Each byte's
// digest depends on the previous one through a table lookup, so one
// stretch keeps a core waiting on its cache; four independent ones keep
// it busy (with the skipped bytes and no copies, 1.7–1.9 times
// restic/chunker's throughput here; eight lanes were slower).
const lanes = 4

// scan returns the index of the first byte in buf[lo:hi] after which
// the fingerprint of the windowSize bytes ending there has no bits in the
// mask, or -1. buf[lo-windowSize+1:lo] must hold the bytes before lo;
// buf[lo-windowSize] is only slid out, so it may hold anything (next puts
// a zero there, a StreamChunker the byte before).
func (f *CutFinder) scan(buf []byte, lo, hi int) int {
	buf = buf[:hi]
	part := (hi - lo) / lanes
	if part < 4*windowSize { // too short to pay for warming up lanes
		return f.scanLane(buf, lo, hi)
	}
	out, mod, mask := &f.out, &f.mod, f.mask
	s1, s2, s3 := lo+part, lo+2*part, lo+3*part
	d0, d1, d2, d3 := f.warm(buf, lo), f.warm(buf, s1), f.warm(buf, s2), f.warm(buf, s3)
	h1, h2, h3 := -1, -1, -1
	for k := range part {
		i0, i1, i2, i3 := lo+k, s1+k, s2+k, s3+k
		d0 ^= out[buf[i0-windowSize]]
		d1 ^= out[buf[i1-windowSize]]
		d2 ^= out[buf[i2-windowSize]]
		d3 ^= out[buf[i3-windowSize]]
		d0 = (d0<<8 | uint64(buf[i0])) ^ mod[uint8(d0>>polShift)]
		d1 = (d1<<8 | uint64(buf[i1])) ^ mod[uint8(d1>>polShift)]
		d2 = (d2<<8 | uint64(buf[i2])) ^ mod[uint8(d2>>polShift)]
		d3 = (d3<<8 | uint64(buf[i3])) ^ mod[uint8(d3>>polShift)]
		if d0&mask == 0 {
			return i0 // the first lane's first hit comes before all others
		}
		if d1&mask == 0 && h1 < 0 {
			h1 = i1
		}
		if d2&mask == 0 && h2 < 0 {
			h2 = i2
		}
		if d3&mask == 0 && h3 < 0 {
			h3 = i3
		}
	}
	for _, h := range [...]int{h1, h2, h3} {
		if h >= 0 {
			return h
		}
	}
	return f.scanLane(buf, s3+part, hi) // the few bytes the lanes left over
}

// warm returns the fingerprint of the windowSize bytes before i: hashed
// into an empty window, nothing slides out.
func (f *CutFinder) warm(buf []byte, i int) uint64 {
	var d uint64
	for _, b := range buf[i-windowSize : i] {
		d = (d<<8 | uint64(b)) ^ f.mod[uint8(d>>polShift)]
	}
	return d
}

// scanLane is scan over one stretch.
func (f *CutFinder) scanLane(buf []byte, lo, hi int) int {
	if lo >= hi {
		return -1
	}
	d, mask := f.warm(buf, lo), f.mask
	for i := lo; i < hi; i++ {
		d ^= f.out[buf[i-windowSize]]
		d = (d<<8 | uint64(buf[i])) ^ f.mod[uint8(d>>polShift)]
		if d&mask == 0 {
			return i
		}
	}
	return -1
}
