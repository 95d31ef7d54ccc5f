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

// TestSparseTruncatedWhileRead: a file truncated into its trailing hole
// while it is read reads short at its new end, as a file without holes
// does; it was read as zeros up to its size at open, and stored so.
func TestSparseTruncatedWhileRead(t *testing.T) {
	p := filepath.Join(t.TempDir(), "image")
	data := bytes.Repeat([]byte("data"), 1<<18) // 1 MiB
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(p, 24<<20); err != nil {
		t.Fatal(err)
	}
	s := openSparse(t, p)
	buf := make([]byte, 2<<20)
	if n, err := s.ReadAt(buf, 8<<20); n != len(buf) || err != nil {
		t.Fatalf("ReadAt in the hole = %d, %v", n, err)
	}
	if err := os.Truncate(p, 4<<20); err != nil {
		t.Fatal(err)
	}
	// 8 MiB was asked about before the truncation: the answer is kept.
	if n, err := s.ReadAt(buf, 8<<20); n != 0 || err != io.EOF {
		t.Errorf("ReadAt past the new end = %d, %v; want 0, EOF", n, err)
	}
	if n, err := s.ReadAt(buf, 3<<20); n != 1<<20 || err != io.EOF {
		t.Errorf("ReadAt across the new end = %d, %v; want %d, EOF", n, err, 1<<20)
	}
	if n, err := s.ReadAt(buf, 0); n != len(buf) || err != nil || !bytes.Equal(buf[:len(data)], data) {
		t.Errorf("ReadAt at 0 = %d, %v", n, err)
	}
}

// TestSparseTruncatedIntoInnerHole: the same for a hole that is not at the
// end: data, a hole, data; truncated into the hole after a read there.
func TestSparseTruncatedIntoInnerHole(t *testing.T) {
	p := filepath.Join(t.TempDir(), "image")
	data := bytes.Repeat([]byte("data"), 1<<18) // 1 MiB
	f0, err := os.Create(p)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(err)
	_, err = f0.WriteAt(data, 0)
	must(err)
	_, err = f0.WriteAt(data, 40<<20)
	must(err)
	must(f0.Close())
	s := openSparse(t, p)
	buf := make([]byte, 2<<20)
	if n, err := s.ReadAt(buf, 8<<20); n != len(buf) || err != nil {
		t.Fatalf("ReadAt in the hole = %d, %v", n, err)
	}
	must(os.Truncate(p, 4<<20))
	if n, err := s.ReadAt(buf, 8<<20); n != 0 || err != io.EOF {
		t.Errorf("ReadAt past the new end = %d, %v; want 0, EOF", n, err)
	}
}

// openSparse opens the sparse file p for a test (closed at its end), which
// is skipped on a file system that keeps no holes.
func openSparse(t *testing.T, p string) *Sparse {
	t.Helper()
	f, err := OpenFile(p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	s := OpenSparse(f, &st)
	if s == nil {
		t.Skip("the file system keeps no holes")
	}
	return s
}
