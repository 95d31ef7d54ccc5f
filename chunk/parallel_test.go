package chunk

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"sync/atomic"
	"testing"
)

// smallParams cut about every 4 KiB (1 KiB minimum, 16 KiB maximum), so
// that a test file of a few MB spans many regions of 64 KiB.
func smallParams(t testing.TB) Params {
	t.Helper()
	p, err := NewParams()
	if err != nil {
		t.Fatal(err)
	}
	p.MinSize, p.MaxSize, p.AverageBits = 1<<10, 16<<10, 12
	return p
}

// drain returns every chunk next gives until io.EOF.
func drain(t *testing.T, next func([]byte) ([]byte, error)) [][]byte {
	t.Helper()
	var out [][]byte
	for {
		b, err := next(nil)
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, bytes.Clone(b))
	}
}

// sequential is the reference: one Chunker over all of data.
func sequential(t *testing.T, data []byte, p Params) [][]byte {
	t.Helper()
	return drain(t, New(bytes.NewReader(data), p).Next)
}

func parallel(t *testing.T, ra io.ReaderAt, size int64, p Params, o ParallelOptions) [][]byte {
	t.Helper()
	c := NewParallel(context.Background(), ra, size, p, o)
	defer c.Close()
	return drain(t, c.Next)
}

func sameChunks(t *testing.T, got, want [][]byte) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d chunks, want %d", len(got), len(want))
	}
	for i := range got {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("chunk %d: %d bytes, want %d bytes (or different content)", i, len(got[i]), len(want[i]))
		}
	}
}

// testData is size bytes of one kind: random, text (few distinct words,
// so split points are dense where the text repeats), zeros (every window
// hashes to zero: a cut every MinSize, in step with the region starts),
// const (0xAA: no split point at all, a cut every MaxSize, which chunkers
// started at region starts never meet), or a mix of them in 100 KiB runs.
func testData(kind string, size int, seed uint64) []byte {
	rng := rand.New(rand.NewPCG(seed, 7))
	data := make([]byte, 0, size)
	words := []string{"pack", "tree", "blob", "index", "the", "of"}
	for len(data) < size {
		k := kind
		if kind == "mixed" {
			k = []string{"random", "text", "zeros", "const"}[rng.IntN(4)]
		}
		run := min(size-len(data), 100<<10)
		switch k {
		case "random":
			for range run {
				data = append(data, byte(rng.Uint32()))
			}
		case "text":
			for n := 0; n < run; {
				w := words[rng.IntN(len(words))]
				data = append(data, w...)
				data = append(data, ' ')
				n += len(w) + 1
			}
		case "zeros":
			data = append(data, make([]byte, run)...)
		case "const":
			data = append(data, bytes.Repeat([]byte{0xAA}, run)...)
		}
	}
	return data[:size]
}

// The chunks equal one chunker's, whatever the data, the file size against
// the region size, the number of scouts and how far they run ahead.
func TestParallelCutsLikeOneChunker(t *testing.T) {
	p := smallParams(t)
	for _, kind := range []string{"random", "text", "zeros", "const", "mixed"} {
		for _, size := range []int{0, 1, 5000, 64 << 10, 200<<10 + 17, 3<<20 + 5} {
			data := testData(kind, size, uint64(size))
			want := sequential(t, data, p)
			for _, o := range []ParallelOptions{
				{Region: 64 << 10, Scouts: 1, Ahead: 1},
				{Region: 64 << 10, Scouts: 2},
				{Region: 100 << 10, Scouts: 3, Ahead: 8},
			} {
				t.Run(fmt.Sprintf("%s/%d/region=%d,scouts=%d,ahead=%d", kind, size, o.Region, o.Scouts, o.Ahead), func(t *testing.T) {
					sameChunks(t, parallel(t, bytes.NewReader(data), int64(len(data)), p, o), want)
				})
			}
		}
	}
}

// counting counts the bytes read through it.
type counting struct {
	io.ReaderAt
	n atomic.Int64
}

func (c *counting) ReadAt(b []byte, off int64) (int, error) {
	n, err := c.ReaderAt.ReadAt(b, off)
	c.n.Add(int64(n))
	return n, err
}

// Where split points line up, the reader hashes little: the scouts do the
// hashing, and the file is read about twice: once by the reader, and by
// the scouts all but the first MinSize-64 bytes of each chunk, plus what
// their reads take in past a cut (with these small bounds, most of it).
func TestParallelSpreadsTheWork(t *testing.T) {
	p := smallParams(t)
	data := testData("random", 16<<20, 1)
	ra := &counting{ReaderAt: bytes.NewReader(data)}
	c := NewParallel(context.Background(), ra, int64(len(data)), p, ParallelOptions{Region: 2 << 20})
	defer c.Close()
	n := len(drain(t, c.Next))
	t.Logf("%d chunks; the reader hashed %d of %d bytes, read %d", n, c.hashed, len(data), ra.n.Load())
	if c.hashed > int64(len(data))/5 {
		t.Errorf("the reader hashed %d of %d bytes, want few (the first region and the seams)", c.hashed, len(data))
	}
	if r := ra.n.Load(); r > int64(len(data))*26/10 {
		t.Errorf("read %d bytes for a %d-byte file", r, len(data))
	}
}

// A file that grew after its size was taken is chunked to its new end,
// as one chunker would; one that shrank ends early, its bytes intact.
func TestParallelFileChangedSize(t *testing.T) {
	p := smallParams(t)
	data := testData("mixed", 2<<20, 3)
	o := ParallelOptions{Region: 128 << 10}
	t.Run("grew", func(t *testing.T) {
		got := parallel(t, bytes.NewReader(data), int64(len(data))-300<<10, p, o)
		sameChunks(t, got, sequential(t, data, p))
	})
	t.Run("shrank", func(t *testing.T) {
		short := data[:len(data)-300<<10]
		got := parallel(t, bytes.NewReader(short), int64(len(data)), p, o)
		if !bytes.Equal(bytes.Join(got, nil), short) {
			t.Fatal("the chunks do not add up to the file's bytes")
		}
	})
}

// panicAt panics on a read at exactly one offset: a scout's first read of
// its region, MinSize-64 bytes after its start, where it starts hashing
// (the reader reads from cut points).
type panicAt struct {
	io.ReaderAt
	off int64
}

func (r panicAt) ReadAt(b []byte, off int64) (int, error) {
	if off == r.off {
		panic("injected: scout read")
	}
	return r.ReaderAt.ReadAt(b, off)
}

// A scout that panics (recovered by the caller's Go function) leaves its
// region to the reader: the chunks are still right, and nothing hangs,
// even when every scout has died.
func TestParallelScoutPanic(t *testing.T) {
	p := smallParams(t)
	data := testData("random", 2<<20, 4)
	want := sequential(t, data, p)
	var recovered atomic.Int32
	goRecover := func(f func()) {
		go func() {
			defer func() {
				if recover() != nil {
					recovered.Add(1)
				}
			}()
			f()
		}()
	}
	for _, scouts := range []int{1, 2} {
		t.Run(fmt.Sprintf("scouts=%d", scouts), func(t *testing.T) {
			recovered.Store(0)
			ra := panicAt{ReaderAt: bytes.NewReader(data), off: 3*128<<10 + int64(p.MinSize) - windowSize}
			got := parallel(t, ra, int64(len(data)), p, ParallelOptions{Region: 128 << 10, Scouts: scouts, Go: goRecover})
			sameChunks(t, got, want)
			if recovered.Load() != 1 {
				t.Errorf("%d scouts panicked, want 1", recovered.Load())
			}
		})
	}
}

// Close while scouts are still at work returns once they stopped; a
// cancelled context ends a wait of Next, and the chunk cut before the
// failed wait is not lost (the chunks returned are a prefix of the file).
func TestParallelCloseAndCancel(t *testing.T) {
	p := smallParams(t)
	data := testData("random", 4<<20, 5)
	c := NewParallel(context.Background(), bytes.NewReader(data), int64(len(data)), p, ParallelOptions{Region: 64 << 10})
	if _, err := c.Next(nil); err != nil {
		t.Fatal(err)
	}
	c.Close()

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	c = NewParallel(ctx, bytes.NewReader(data), int64(len(data)), p, ParallelOptions{Region: 64 << 10})
	defer c.Close()
	var got []byte
	for {
		b, err := c.Next(nil)
		if err == context.Canceled {
			break
		}
		if err != nil {
			t.Fatalf("Next: %v, want context.Canceled once the reader reaches region 1", err)
		}
		got = append(got, b...)
	}
	if len(got) < 64<<10 || !bytes.Equal(got, data[:len(got)]) || int64(len(got)) != c.pos {
		t.Fatalf("before the cancellation: %d bytes returned, position %d; want a prefix of the file through region 0", len(got), c.pos)
	}
}
