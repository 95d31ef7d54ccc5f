package chunk

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/restic/chunker"
)

// chunkerCuts is the reference: the cuts of one Chunker started at from,
// as end offsets, without the end of the data.
func chunkerCuts(t testing.TB, data []byte, from int, p Params) []int64 {
	t.Helper()
	var cuts []int64
	pos := int64(from)
	c := New(bytes.NewReader(data[from:]), p)
	for {
		b, err := c.Next(nil)
		if err != nil {
			break
		}
		pos += int64(len(b))
		if pos < int64(len(data)) {
			cuts = append(cuts, pos)
		}
	}
	return cuts
}

func finderCuts(t testing.TB, data []byte, from int, p Params) []int64 {
	t.Helper()
	var cuts []int64
	err := NewCutFinder(p).Find(bytes.NewReader(data), int64(from), int64(len(data)), func(c int64) bool {
		cuts = append(cuts, c)
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	return cuts
}

// testBounds are the chunker bounds the cutters are held to
// restic/chunker's cuts with: small bounds, the smallest allowed (a cut
// may fall at every position), a few more, and the stream bounds.
func testBounds(t testing.TB) []Params {
	t.Helper()
	base := smallParams(t)
	return []Params{
		base,
		{Polynomial: base.Polynomial, MinSize: 64, MaxSize: 64, AverageBits: 8},
		{Polynomial: base.Polynomial, MinSize: 64, MaxSize: 300, AverageBits: 8},
		{Polynomial: base.Polynomial, MinSize: 100, MaxSize: 5000, AverageBits: 10},
		base.StreamParams(),
	}
}

func sameCuts(t testing.TB, got, want []int64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d cuts, want %d (got %v…, want %v…)", len(got), len(want), got[:min(len(got), 5)], want[:min(len(want), 5)])
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("cut %d at %d, want %d", i, got[i], want[i])
		}
	}
}

// The finder cuts where restic/chunker does: every kind of data, chunks
// that end on a split point, at the maximum size, or at the data's end,
// bounds from the smallest allowed (64 bytes, the window) to the default,
// and a start anywhere.
func TestCutFinderCutsLikeChunker(t *testing.T) {
	def, err := NewParams()
	if err != nil {
		t.Fatal(err)
	}
	params := testBounds(t)
	for _, kind := range []string{"random", "text", "zeros", "const", "mixed"} {
		for _, p := range params {
			for _, size := range []int{0, 63, 64, 65, 1000, 70000, 600<<10 + 3} {
				data := testData(kind, size, uint64(size)+1)
				for _, from := range []int{0, min(1, size), size / 3} {
					t.Run(fmt.Sprintf("%s/min=%d,max=%d,bits=%d/size=%d/from=%d", kind, p.MinSize, p.MaxSize, p.AverageBits, size, from), func(t *testing.T) {
						sameCuts(t, finderCuts(t, data, from, p), chunkerCuts(t, data, from, p))
					})
				}
			}
		}
		// The default file bounds over several blocks of the finder's reads.
		data := testData(kind, 24<<20, 9)
		t.Run(kind+"/default", func(t *testing.T) {
			sameCuts(t, finderCuts(t, data, 0, def), chunkerCuts(t, data, 0, def))
		})
	}
}

// The tables, made from eight entries by linearity, are those restic/chunker
// makes entry by entry (its out and mod tables, from the same polynomial
// arithmetic).
func TestCutFinderTables(t *testing.T) {
	for range 3 {
		p, err := NewParams()
		if err != nil {
			t.Fatal(err)
		}
		f := NewCutFinder(p)
		pol := chunker.Pol(p.Polynomial)
		for b := range 256 {
			h := chunker.Pol(b).Mod(pol)
			for range windowSize - 1 {
				h = (h << 8).Mod(pol)
			}
			mod := (chunker.Pol(b) << 53).Mod(pol) | chunker.Pol(b)<<53
			if f.out[b] != uint64(h) || f.mod[b] != uint64(mod) {
				t.Fatalf("polynomial %x, byte %d: out %x mod %x, want %x and %x", p.Polynomial, b, f.out[b], f.mod[b], h, mod)
			}
		}
	}
}

// Stopping early stops at the cut yield refused; a file shorter than the
// size given is an error, not cuts made up past its end.
func TestCutFinderStopAndShortFile(t *testing.T) {
	p := smallParams(t)
	data := testData("random", 1<<20, 2)
	want := chunkerCuts(t, data, 0, p)
	var got []int64
	err := NewCutFinder(p).Find(bytes.NewReader(data), 0, int64(len(data)), func(c int64) bool {
		got = append(got, c)
		return len(got) < 3
	})
	if err != nil || len(got) != 3 {
		t.Fatalf("Find: %v after %d cuts, want nil after 3", err, len(got))
	}
	sameCuts(t, got, want[:3])

	err = NewCutFinder(p).Find(bytes.NewReader(data[:500<<10]), 0, int64(len(data)), func(int64) bool { return true })
	if !errors.Is(err, errShort) {
		t.Fatalf("Find over a shrunken file: %v, want %v", err, errShort)
	}
}

// FuzzCutFinder holds the finder to restic/chunker's cuts, and the
// FileChunker to its chunks, on any data, bounds and start.
func FuzzCutFinder(f *testing.F) {
	f.Add([]byte("hello, world"), uint16(64), uint16(64), uint8(8), uint16(0), int16(0))
	f.Add(bytes.Repeat([]byte{0}, 5000), uint16(64), uint16(200), uint8(8), uint16(7), int16(-300))
	f.Add(testData("mixed", 20000, 1), uint16(100), uint16(3000), uint8(9), uint16(50), int16(1000))
	pol := smallParams(f).Polynomial
	f.Fuzz(func(t *testing.T, data []byte, minSize, maxSize uint16, bits uint8, from uint16, listed int16) {
		p := Params{Polynomial: pol, MinSize: max(uint(minSize), 64), AverageBits: 8 + int(bits%12)}
		p.MaxSize = p.MinSize + uint(maxSize)
		start := int(from) % (len(data) + 1)
		sameCuts(t, finderCuts(t, data, start, p), chunkerCuts(t, data, start, p))
		if start < len(data) {
			// The size as listed may be off: the file grew or shrank
			// since; the chunks are still a chunker's over what is there.
			size := max(int64(len(data))+int64(listed), int64(start))
			got := fileChunks(t, bytes.NewReader(data), size, int64(start), p)
			sameChunks(t, got, sequential(t, data[start:], p))
		}
	})
}
