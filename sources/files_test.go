package sources

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

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

// TestReadDirNames: every name, sorted bytewise, without . and .., also
// when the entries take many reads of the buffer; a missing directory and
// a file give errors that name the path.
func TestReadDirNames(t *testing.T) {
	dir := t.TempDir()
	var want []string
	for i := range 700 {
		// Long names: 700 of them take some 14 reads of an 8 KiB buffer.
		name := fmt.Sprintf("%03d-%s", (i*7919)%1000, strings.Repeat("n", 150))
		if i%50 == 0 {
			if err := os.Mkdir(filepath.Join(dir, name), 0o755); err != nil {
				t.Fatal(err)
			}
		} else if err := os.WriteFile(filepath.Join(dir, name), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		want = append(want, name)
	}
	slices.Sort(want)
	for _, buf := range [][]byte{nil, make([]byte, DirBufSize), make([]byte, 64<<10)} {
		got, err := ReadDirNames(dir, buf)
		if err != nil || !slices.Equal(got, want) {
			t.Fatalf("buffer of %d: %d names (want %d), %v", len(buf), len(got), len(want), err)
		}
	}
	if got, err := ReadDirNames(t.TempDir(), nil); err != nil || len(got) != 0 {
		t.Fatalf("empty directory: %q, %v", got, err)
	}
	var pe *PathError
	missing := filepath.Join(dir, "missing")
	if _, err := ReadDirNames(missing, nil); !errors.As(err, &pe) || pe.Path != missing || !IsNotExist(err) {
		t.Fatalf("missing directory: %v", err)
	}
	file := filepath.Join(dir, want[1])
	if _, err := ReadDirNames(file, nil); !errors.As(err, &pe) || pe.Path != file || !errors.Is(err, unix.ENOTDIR) {
		t.Fatalf("a file: %v", err)
	}
}

// TestOpenFileDoesNotWaitOnPipe: a named pipe where a file was listed is
// opened at once (no writer needed) and its fstat says it is a pipe, the
// archiver's cue to report that it is no longer a regular file.
func TestOpenFileDoesNotWaitOnPipe(t *testing.T) {
	p := filepath.Join(t.TempDir(), "fifo")
	if err := unix.Mkfifo(p, 0o644); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	type result struct {
		f   *SourceFile
		err error
	}
	done := make(chan result, 1)
	go func() { f, err := OpenFile(p); done <- result{f, err} }()
	select {
	case r := <-done:
		if r.err != nil {
			t.Fatal(r.err)
		}
		defer r.f.Close()
		st, err := r.f.Stat()
		if err != nil || st.Mode&unix.S_IFMT != unix.S_IFIFO {
			t.Fatalf("Stat: mode %o, %v", st.Mode, err)
		}
	case <-time.After(5 * time.Second):
		// Unblock the open so the test process can end.
		if w, err := os.OpenFile(p, os.O_WRONLY, 0); err == nil {
			w.Close()
		}
		t.Fatal("OpenFile waited for a writer on a named pipe")
	}
}

// TestOpenFileBreaksWriteLease: a file under a write lease (a file
// server's, for a client's exclusive lock) is opened as an open without
// O_NONBLOCK opens it: the lease is broken and the open waits for its
// holder to let go, rather than failing with EAGAIN.
func TestOpenFileBreaksWriteLease(t *testing.T) {
	p := filepath.Join(t.TempDir(), "leased")
	if err := os.WriteFile(p, []byte("data"), 0o644); err != nil {
		t.Fatal(err)
	}
	holder, err := unix.Open(p, unix.O_WRONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(holder)
	if _, err := unix.FcntlInt(uintptr(holder), unix.F_SETLEASE, unix.F_WRLCK); err != nil {
		t.Skipf("no write lease here: %v", err)
	}
	// The holder gives the lease up a moment after the open has begun,
	// as a file server does once its client has flushed.
	go func() {
		time.Sleep(200 * time.Millisecond)
		unix.FcntlInt(uintptr(holder), unix.F_SETLEASE, unix.F_UNLCK)
	}()
	start := time.Now()
	f, err := OpenFile(p)
	if err != nil {
		t.Fatalf("OpenFile of a leased file: %v", err)
	}
	defer f.Close()
	if waited := time.Since(start); waited < 100*time.Millisecond {
		t.Fatalf("OpenFile returned after %v, before the lease was given up", waited)
	}
	if got, err := io.ReadAll(f); err != nil || string(got) != "data" {
		t.Fatalf("read %q, %v", got, err)
	}
}

// TestSourceFileReadsPastEAGAIN: a read that meets EAGAIN (a descriptor
// that heeds O_NONBLOCK: a named pipe here, some FUSE file systems for
// regular files) clears the flag and waits for the data, rather than
// failing the file.
func TestSourceFileReadsPastEAGAIN(t *testing.T) {
	p := filepath.Join(t.TempDir(), "fifo")
	if err := unix.Mkfifo(p, 0o644); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	f, err := OpenFile(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w, err := os.OpenFile(p, os.O_WRONLY, 0) // a reader is there: no wait
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	go func() {
		time.Sleep(100 * time.Millisecond)
		w.Write([]byte("late"))
	}()
	buf := make([]byte, 16)
	n, err := f.Read(buf)
	if err != nil || string(buf[:n]) != "late" {
		t.Fatalf("Read: %q, %v", buf[:n], err)
	}
}

// TestListingKeepsAtime: listing a directory for a backup leaves its
// access time as it was (O_NOATIME), as reading a file does; clean-up
// tools that expire directories by it read a backup as use (found by an
// exploratory test).
func TestListingKeepsAtime(t *testing.T) {
	dir := t.TempDir()
	old := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
	atime := func(p string) time.Time {
		var st unix.Stat_t
		if err := unix.Stat(p, &st); err != nil {
			t.Fatal(err)
		}
		return time.Unix(st.Atim.Unix())
	}
	mk := func(name string) string {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Join(p, "entry"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, old, time.Now()); err != nil {
			t.Fatal(err)
		}
		return p
	}
	control, listed := mk("control"), mk("listed")
	if _, err := os.ReadDir(control); err != nil {
		t.Fatal(err)
	}
	if atime(control).Equal(old) {
		t.Skip("this file system does not update access times (noatime): the test shows nothing")
	}
	if _, err := ReadDirNames(listed, nil); err != nil {
		t.Fatal(err)
	}
	if got := atime(listed); !got.Equal(old) {
		t.Errorf("listing set the directory's access time to %v", got)
	}
}
