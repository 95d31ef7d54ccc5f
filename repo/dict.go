package repo

import (
	"container/heap"
	"encoding/binary"
	"fmt"
	"runtime"

	"github.com/klauspost/compress/zstd"
)

// Dictionaries for small blobs.
//
// zstd compresses each blob on its own, and a small file has little
// context: the licence header, package clause and imports that thousands of
// source files share are paid for in every one of them. A raw dictionary of
// the content small files share, stored once as a data blob, gives each of
// them that context: small blobs compressed against it are deltas with the
// dictionary blob as their one base (BlobEntry.Bases), so readers, check
// and prune handle them as they handle every delta. On the Go source tree
// (make bench's dataset 1) a 64 KiB dictionary built from 256 files makes
// the files under 512 KiB 6 % smaller after the 66 bytes each delta costs
// in its pack trailer and index segment (docs/design.md, "Dictionaries for
// small files").

// shingleLen is the length of the substrings BuildDictionary counts: long
// enough that a shared one is more than a common word, and the minimum
// match zstd's fast levels take from a dictionary is shorter.
const shingleLen = 8

// shingleBits sizes BuildDictionary's table of substring counts (2^20
// entries of 4 bytes). The substrings are not stored: two that share an
// entry add up, which blurs the scores of rare pieces but not of those
// shared by many samples, the ones worth picking. Whether a dictionary
// pays is measured, not assumed (Worth).
const shingleBits = 20

func shingleHash(b []byte) uint32 {
	return uint32((binary.LittleEndian.Uint64(b) * 0x9E3779B97F4A7C15) >> (64 - shingleBits))
}

// dictSegment is the unit BuildDictionary picks: 128 bytes of one sample,
// starting every 64 bytes. Shorter segments fit the shared pieces more
// tightly; longer ones keep more of their context. 128 was the best of 64,
// 128 and 256 on dataset 1.
const dictSegment = 128

// BuildDictionary returns a raw zstd dictionary of at most size bytes made
// of the pieces of the samples whose 8-byte substrings occur in the most
// samples: a simplified form of zstd's COVER trainer, which takes tens of
// milliseconds instead of seconds. It picks 128-byte segments greedily by
// the number of other samples that share each of their substrings, counting
// a substring only for the first segment that holds it, and puts the best
// last (zstd codes nearer matches in fewer bits). It returns nil when
// nothing recurs.
func BuildDictionary(samples [][]byte, size int) []byte {
	if len(samples) > 1<<16-1 {
		samples = samples[:1<<16-1] // the per-entry sample tags are 16 bits
	}
	counts := make([]uint16, 1<<shingleBits)
	seenIn := make([]uint16, 1<<shingleBits) // the last sample (1-based) that counted the entry
	for i, s := range samples {
		tag := uint16(i + 1)
		for p := 0; p+shingleLen <= len(s); p++ {
			h := shingleHash(s[p:])
			if seenIn[h] != tag {
				seenIn[h] = tag
				counts[h]++
			}
		}
	}
	// A substring in one sample is worth nothing; in k samples, k-1
	// blobs that can refer to the dictionary instead.
	score := func(b []byte) int64 {
		var t int64
		for p := 0; p+shingleLen <= len(b); p++ {
			if c := counts[shingleHash(b[p:])]; c > 1 {
				t += int64(c - 1)
			}
		}
		return t
	}
	var segs segmentHeap
	for i, s := range samples {
		for off := 0; off+dictSegment <= len(s); off += dictSegment / 2 {
			if sc := score(s[off : off+dictSegment]); sc > 0 {
				segs = append(segs, dictSegmentScore{i, off, sc})
			}
		}
	}
	heap.Init(&segs)
	var picked [][]byte
	for len(segs) > 0 && (len(picked)+1)*dictSegment <= size {
		top := segs[0]
		b := samples[top.sample][top.off : top.off+dictSegment]
		// Scores only fall as segments are picked: re-score the best and
		// take it only if it is still the best (lazy greedy).
		sc := score(b)
		if sc == 0 {
			heap.Pop(&segs)
			continue
		}
		if sc < top.score {
			segs[0].score = sc
			heap.Fix(&segs, 0)
			continue
		}
		heap.Pop(&segs)
		picked = append(picked, b)
		for p := 0; p+shingleLen <= len(b); p++ {
			counts[shingleHash(b[p:])] = 0
		}
	}
	if len(picked) == 0 {
		return nil
	}
	out := make([]byte, 0, len(picked)*dictSegment)
	for i := len(picked) - 1; i >= 0; i-- {
		out = append(out, picked[i]...)
	}
	return out
}

type dictSegmentScore struct {
	sample, off int
	score       int64
}

// segmentHeap is a max-heap of segments by score; ties go to the earlier
// segment, so that the dictionary depends only on the samples.
type segmentHeap []dictSegmentScore

func (h segmentHeap) Len() int { return len(h) }
func (h segmentHeap) Less(i, j int) bool {
	if h[i].score != h[j].score {
		return h[i].score > h[j].score
	}
	if h[i].sample != h[j].sample {
		return h[i].sample < h[j].sample
	}
	return h[i].off < h[j].off
}
func (h segmentHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *segmentHeap) Push(x any)   { *h = append(*h, x.(dictSegmentScore)) }
func (h *segmentHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// dictWindow is the window of a dictionary's encoder: the blobs it is used
// for are under 512 KiB (one chunk) and the dictionary 64 KiB.
const dictWindow = 1 << 20

// Dictionary compresses blobs against a raw dictionary stored as data blob
// ID. Its encoder indexes the dictionary once per encoder state and keeps
// the tables (a delta's encoder indexes its bases afresh for every blob),
// so a blob costs little more than compressing it alone.
type Dictionary struct {
	ID    ID
	enc   *zstd.Encoder
	level Compression
}

// NewDictionary prepares to compress against plain, the plaintext of data
// blob id, at the given level.
func (r *Repository) NewDictionary(id ID, plain []byte, level Compression) (*Dictionary, error) {
	if level == CompressionOff || len(plain) == 0 {
		return nil, fmt.Errorf("a dictionary needs compression and content")
	}
	// Dictionary ID 0 is not written to the frames: readers take the
	// dictionary from the blob's base, as for every delta.
	// Lower memory: each state's history is then the window plus a block
	// (1.1 MiB) rather than twice the window.
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(level.zstdLevel()), zstd.WithEncoderConcurrency(runtime.GOMAXPROCS(0)),
		zstd.WithWindowSize(dictWindow), zstd.WithZeroFrames(true), zstd.WithEncoderCRC(false), zstd.WithLowerEncoderMem(true),
		zstd.WithAllLitEntropyCompression(true), zstd.WithEncoderDictRaw(0, plain))
	if err != nil {
		return nil, err
	}
	return &Dictionary{ID: id, enc: enc, level: level}, nil
}

// CompressWithDictionary returns the zstd compression of plaintext against
// d, written to scratch, when it is smaller than plaintext; ok is false
// otherwise. It also returns scratch, grown as needed. The result is a
// delta with d.ID as its one base.
func (r *Repository) CompressWithDictionary(d *Dictionary, plaintext, scratch []byte) (payload []byte, ok bool, newScratch []byte) {
	if len(plaintext) < 64 {
		return nil, false, scratch
	}
	out := d.enc.EncodeAll(plaintext, scratch[:0])
	if len(out) >= len(plaintext) {
		return nil, false, out
	}
	return out, true, out
}

// Worth reports whether compressing samples (up to 64 of them, spread
// over the list) against d saves at least 5 % of what they take compressed
// alone at the same level, counting the base's cost (OneBaseOverhead) for
// each (Pays). The samples must not be those d was built from: data with
// nothing in common (compressed or encrypted files) gives a dictionary of
// chance pieces of its samples, which would only cost CPU and its blob.
func (r *Repository) Worth(d *Dictionary, samples [][]byte) bool {
	step := max(len(samples)/64, 1)
	var alone, with int
	for i := 0; i < len(samples); i += step {
		a, w := r.DictionaryGain(d, samples[i])
		alone, with = alone+a, with+w
	}
	return Pays(alone, with)
}

// DictionaryGain returns what plaintext takes compressed alone (itself when
// that does not shrink it) and against d, with the base's cost.
func (r *Repository) DictionaryGain(d *Dictionary, plaintext []byte) (alone, with int) {
	payload, _, scratch := r.CompressBlob(plaintext, d.level, nil)
	alone = len(payload)
	if out, ok, _ := r.CompressWithDictionary(d, plaintext, scratch); ok {
		return alone, len(out) + OneBaseOverhead
	}
	return alone, len(plaintext) + OneBaseOverhead
}

// Pays reports whether blobs that take alone bytes compressed on their own
// and with against a dictionary are at least 5 % smaller with it.
func Pays(alone, with int) bool { return alone > 0 && with <= alone*95/100 }

// OneBaseOverhead is what a delta with one base costs beyond its payload:
// the base count and ID in the pack trailer and again in the index segment.
const OneBaseOverhead = 2 * (1 + len(ID{}))
