package sources

import (
	"bytes"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// writeSparse writes a file of size bytes whose data are extents of random
// bytes at 4 KiB-aligned offsets, and one extent of zeros written out (data
// that reads as a hole would); the rest are holes. It returns the file's
// bytes.
func writeSparse(t *testing.T, p string, rng *rand.Rand, size int64, extents int) []byte {
	t.Helper()
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	want := make([]byte, size)
	for i := range extents {
		off := rng.Int64N(size-1<<20) &^ 4095
		b := make([]byte, 1+rng.IntN(300<<10))
		if i > 0 {
			for j := range b {
				b[j] = byte(rng.Uint32())
			}
		}
		if _, err := f.WriteAt(b, off); err != nil {
			t.Fatal(err)
		}
		copy(want[off:], b)
	}
	return want
}

// TestSparse: a Sparse reads a sparse file's bytes exactly, at any offset
// and length (past the end too), and a file without holes gets none.
func TestSparse(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "sparse")
	rng := rand.New(rand.NewPCG(1, 2))
	const size = 24<<20 + 12345
	want := writeSparse(t, p, rng, size, 12)
	f, err := OpenFile(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	s := OpenSparse(f, &st)
	if s == nil {
		if st.Blocks*512 >= st.Size {
			t.Skipf("the file system of %s keeps no holes", dir)
		}
		t.Fatalf("no Sparse for a file of %d bytes in %d blocks", st.Size, st.Blocks)
	}

	buf := make([]byte, 3<<20)
	for i := range 600 {
		off := rng.Int64N(size + 100)
		n := rng.IntN(len(buf))
		if i%4 == 0 {
			n = rng.IntN(5000)
		}
		got, gerr := s.ReadAt(buf[:n], off)
		wn, werr := f.ReadAt(make([]byte, n), off)
		if got != wn || (gerr == nil) != (werr == nil) {
			t.Fatalf("ReadAt(%d bytes at %d) = %d, %v; the file's = %d, %v", n, off, got, gerr, wn, werr)
		}
		if off < size && !bytes.Equal(buf[:got], want[off:off+int64(got)]) {
			t.Fatalf("ReadAt(%d bytes at %d): other bytes", n, off)
		}
		if got < n && gerr != io.EOF {
			t.Fatalf("ReadAt(%d bytes at %d) = %d short without io.EOF: %v", n, off, got, gerr)
		}
	}

	dense := filepath.Join(dir, "dense")
	if err := os.WriteFile(dense, want, 0o644); err != nil {
		t.Fatal(err)
	}
	g, err := OpenFile(dense)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if st, err := g.Stat(); err != nil || OpenSparse(g, &st) != nil {
		t.Fatalf("a file written out in full gets a Sparse (%v)", err)
	}
}
