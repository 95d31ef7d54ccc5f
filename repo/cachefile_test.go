package repo

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestReadCacheFile: a cache file is read only when it is a regular file
// within the limit: a FIFO (which hung snap beyond Ctrl-C), a file too
// large (which took all memory), a symlink are errors, at once.
func TestReadCacheFile(t *testing.T) {
	dir := t.TempDir()
	ok := filepath.Join(dir, "ok")
	if err := os.WriteFile(ok, []byte("sealed"), 0o600); err != nil {
		t.Fatal(err)
	}
	if b, err := ReadCacheFile(ok, 100); err != nil || string(b) != "sealed" {
		t.Errorf("a regular file: %q, %v", b, err)
	}
	big := filepath.Join(dir, "big")
	if err := os.WriteFile(big, nil, 0o600); err != nil || os.Truncate(big, 1<<40) != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(ok, link); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{big, fifo, link, filepath.Join(dir, "missing")} {
		done := make(chan error, 1)
		go func() { _, err := ReadCacheFile(p, 100); done <- err }()
		select {
		case err := <-done:
			if err == nil {
				t.Errorf("%s: read", p)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: the read waits", p)
		}
	}
}
