package chunk

import (
	"bytes"
	"io"
	"math/rand/v2"
	"os"
	"testing"
)

// Stage benchmarks: the per-core speed of chunking and hashing, which
// `make bench` (cmd/snap-bench) reports next to the end-to-end figures.
// They run on the file named by SNAP_BENCH_DATA when set (the benchmark
// harness passes a sample of its large-file dataset), else on generated
// data that is half random, half text.

const benchDataSize = 64 << 20

func benchData(b *testing.B) []byte {
	b.Helper()
	if p := os.Getenv("SNAP_BENCH_DATA"); p != "" {
		f, err := os.Open(p)
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		data, err := io.ReadAll(io.LimitReader(f, benchDataSize))
		if err != nil {
			b.Fatal(err)
		}
		return data
	}
	rng := rand.New(rand.NewPCG(1, 2))
	var buf bytes.Buffer
	words := []string{"backup", "snapshot", "chunk", "index", "pack", "tree", "blob", "restore", "the", "of", "and"}
	for buf.Len() < benchDataSize {
		if rng.IntN(2) == 0 {
			block := make([]byte, 1<<20)
			for i := range block {
				block[i] = byte(rng.Uint32())
			}
			buf.Write(block)
			continue
		}
		for n := 0; n < 1<<20; {
			w := words[rng.IntN(len(words))]
			k, _ := buf.WriteString(w)
			n += k
			if rng.IntN(8) == 0 {
				buf.WriteByte('\n')
			} else {
				buf.WriteByte(' ')
			}
			n++
		}
	}
	return buf.Bytes()[:benchDataSize]
}

func benchParams(b *testing.B) Params {
	b.Helper()
	p, err := NewParams()
	if err != nil {
		b.Fatal(err)
	}
	return p
}

// BenchmarkChunker measures content-defined chunking with the default file
// bounds (512 KiB min, 1 MiB average, 8 MiB max).
func BenchmarkChunker(b *testing.B) {
	data := benchData(b)
	p := benchParams(b)
	buf := make([]byte, 0, p.MaxSize)
	c := New(bytes.NewReader(data), p)
	benchCut(b, data, c, buf)
}

// cutter is what benchCut drives: a Chunker or a StreamChunker.
type cutter interface {
	Reset(io.Reader)
	Next([]byte) ([]byte, error)
}

// benchCut cuts data with c, once per iteration, into buf.
func benchCut(b *testing.B, data []byte, c cutter, buf []byte) {
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for range b.N {
		c.Reset(bytes.NewReader(data))
		for {
			_, err := c.Next(buf)
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkBLAKE3 measures keyed BLAKE3-256 over 1 MiB chunks.
func BenchmarkBLAKE3(b *testing.B) {
	data := benchData(b)
	h := NewHasher([KeySize]byte{1, 2, 3})
	const chunkSize = 1 << 20
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for range b.N {
		for off := 0; off < len(data); off += chunkSize {
			h.Sum(data[off:min(off+chunkSize, len(data))])
		}
	}
}

// BenchmarkCutFinder measures finding the cut points of the default file
// bounds without copying the chunks, as Parallel's scouts do for a large
// file.
func BenchmarkCutFinder(b *testing.B) {
	data := benchData(b)
	f := NewCutFinder(benchParams(b))
	ra := bytes.NewReader(data)
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for range b.N {
		if err := f.Find(ra, 0, int64(len(data)), func(int64) bool { return true }); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkNewCutFinder measures making a finder's tables, which every
// scout of every large file does.
func BenchmarkNewCutFinder(b *testing.B) {
	p := benchParams(b)
	for range b.N {
		NewCutFinder(p)
	}
}

// BenchmarkStreamChunker measures cutting a stream (standard input, a
// dump) with the stream bounds (16 KiB min, 48 KiB average, 256 KiB max),
// as one goroutine does for every stream a create saves.
func BenchmarkStreamChunker(b *testing.B) {
	data := benchData(b)
	p := benchParams(b).StreamParams()
	buf := make([]byte, 0, p.MaxSize)
	c := NewStreamChunker(p)
	benchCut(b, data, c, buf)
}

// BenchmarkChunkerStreamBounds is restic/chunker with the stream bounds,
// what StreamChunker replaced for streams.
func BenchmarkChunkerStreamBounds(b *testing.B) {
	data := benchData(b)
	p := benchParams(b).StreamParams()
	buf := make([]byte, 0, p.MaxSize)
	c := New(bytes.NewReader(data), p)
	benchCut(b, data, c, buf)
}
