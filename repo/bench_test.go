package repo

import (
	"bytes"
	"io"
	"math/rand/v2"
	"os"
	"testing"
)

// Stage benchmarks: the per-core speed of compression and encryption, which
// `make bench` (cmd/snap-bench) reports next to the end-to-end figures.
// They run on the file named by SNAP_BENCH_DATA when set (the benchmark
// harness passes a sample of its large-file dataset), else on generated
// data that is half random, half text. Blobs are 1 MiB, the average chunk.

const (
	benchDataSize = 64 << 20
	benchBlobSize = 1 << 20
)

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
			block := make([]byte, benchBlobSize)
			for i := range block {
				block[i] = byte(rng.Uint32())
			}
			buf.Write(block)
			continue
		}
		for n := 0; n < benchBlobSize; {
			k, _ := buf.WriteString(words[rng.IntN(len(words))])
			sep := byte(' ')
			if rng.IntN(8) == 0 {
				sep = '\n'
			}
			buf.WriteByte(sep)
			n += k + 1
		}
	}
	return buf.Bytes()[:benchDataSize]
}

func blobs(data []byte) [][]byte {
	var out [][]byte
	for off := 0; off < len(data); off += benchBlobSize {
		out = append(out, data[off:min(off+benchBlobSize, len(data))])
	}
	return out
}

func benchRepo(b *testing.B) *Repository {
	b.Helper()
	mk, err := NewMasterKey()
	if err != nil {
		b.Fatal(err)
	}
	r, err := newRepository(nil, mk, Options{})
	if err != nil {
		b.Fatal(err)
	}
	return r
}

// BenchmarkZstdFastest measures compression at the default level.
func BenchmarkZstdFastest(b *testing.B) {
	data := benchData(b)
	r := benchRepo(b)
	buf := make([]byte, 0, benchBlobSize+benchBlobSize/8)
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for range b.N {
		for _, blob := range blobs(data) {
			buf, _ = r.comp.compress(buf[:0], blob, CompressionFastest)
		}
	}
}

// BenchmarkAESGCM measures AES-256-GCM sealing of 1 MiB units.
func BenchmarkAESGCM(b *testing.B) {
	data := benchData(b)
	r := benchRepo(b)
	buf := make([]byte, 0, benchBlobSize+Overhead)
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for range b.N {
		for _, blob := range blobs(data) {
			buf = r.sealer.seal(buf[:0], blob)
		}
	}
}

// BenchmarkSealBlob measures what a save worker does per blob: compress
// when that helps, then encrypt. Throughput counts plaintext bytes.
func BenchmarkSealBlob(b *testing.B) {
	data := benchData(b)
	r := benchRepo(b)
	// Buffers as the index writer keeps them: a compression scratch with
	// room for a blob, and a pack buffer that sealed blobs are appended to.
	scratch := make([]byte, 0, benchBlobSize+benchBlobSize/128+1024)
	pack := make([]byte, 0, 16<<20)
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for range b.N {
		for _, blob := range blobs(data) {
			var payload []byte
			payload, _, scratch = r.CompressBlob(blob, CompressionFastest, scratch)
			if len(pack)+len(payload)+Overhead > cap(pack) {
				pack = pack[:0]
			}
			pack = r.sealer.seal(pack, payload)
		}
	}
}

// BenchmarkOpenBlob measures what restore does per blob: decrypt, then
// decompress. Throughput counts plaintext bytes.
func BenchmarkOpenBlob(b *testing.B) {
	data := benchData(b)
	r := benchRepo(b)
	var sealed []SealedBlob
	for _, blob := range blobs(data) {
		s, _ := r.SealBlob(blob, CompressionFastest, nil)
		sealed = append(sealed, s)
	}
	var dst []byte
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for range b.N {
		for _, s := range sealed {
			e := BlobEntry{Type: DataBlob, Compressed: s.Compressed, Length: uint32(len(s.Data)), RawLength: uint32(s.RawLength)}
			var err error
			if dst, err = r.OpenBlob(ID{}, e, s.Data, dst[:0]); err != nil {
				b.Fatal(err)
			}
		}
	}
}
