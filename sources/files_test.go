package sources

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// TestSourceFile: a SourceFile reads like an *os.File (io.Reader and
// io.ReaderAt with their end-of-file rules), stats the open file, closes
// once, and OpenFile refuses a symlink and names the path in its errors.
func TestSourceFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	want := bytes.Repeat([]byte("0123456789"), 1000)
	if err := os.WriteFile(p, want, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := OpenFile(p)
	if err != nil {
		t.Fatal(err)
	}
	st, err := f.Stat()
	if err != nil || st.Size != int64(len(want)) || st.Mode&unix.S_IFMT != unix.S_IFREG {
		t.Fatalf("Stat: size %d mode %o, %v", st.Size, st.Mode, err)
	}

	// io.Reader: the whole content, then 0, io.EOF.
	got, err := io.ReadAll(io.Reader(f))
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("ReadAll: %d bytes, %v", len(got), err)
	}
	if n, err := f.Read(make([]byte, 10)); n != 0 || err != io.EOF {
		t.Fatalf("Read at the end: %d, %v", n, err)
	}

	// io.ReaderAt: a full read inside, a short one with io.EOF across the
	// end, nothing with io.EOF past it.
	buf := make([]byte, 100)
	if n, err := f.ReadAt(buf, 10); n != 100 || err != nil || !bytes.Equal(buf, want[10:110]) {
		t.Fatalf("ReadAt inside: %d, %v", n, err)
	}
	if n, err := f.ReadAt(buf, int64(len(want)-30)); n != 30 || err != io.EOF || !bytes.Equal(buf[:30], want[len(want)-30:]) {
		t.Fatalf("ReadAt across the end: %d, %v", n, err)
	}
	if n, err := f.ReadAt(buf, int64(len(want)+5)); n != 0 || err != io.EOF {
		t.Fatalf("ReadAt past the end: %d, %v", n, err)
	}
	if _, err := f.ReadAt(buf, -1); err == nil {
		t.Fatal("ReadAt at a negative offset succeeded")
	}

	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	var pe *PathError
	if err := f.Close(); !errors.As(err, &pe) || pe.Path != p || !errors.Is(err, unix.EBADF) {
		t.Fatalf("second Close: %v", err)
	}

	link := filepath.Join(dir, "link")
	if err := os.Symlink(p, link); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenFile(link); !errors.As(err, &pe) || pe.Path != link || !errors.Is(err, unix.ELOOP) {
		t.Fatalf("OpenFile of a symlink: %v", err)
	}
	if _, err := OpenFile(filepath.Join(dir, "missing")); !errors.Is(err, unix.ENOENT) {
		t.Fatalf("OpenFile of a missing file: %v", err)
	}
}
