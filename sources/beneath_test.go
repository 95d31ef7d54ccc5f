package sources

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// TestBeneathFollowsNoSwappedSymlink: a directory of a backed-up tree that
// is swapped for a symlink after it was listed (rm -r d; ln -s /etc d) is
// not followed by the opens of its entries, which go by path, nor listed;
// a root named as a symlink is followed, as the admin asked (found by an
// exploratory test: /etc/shadow was saved under a user's directory).
func TestBeneathFollowsNoSwappedSymlink(t *testing.T) {
	dir := t.TempDir()
	outside := filepath.Join(dir, "outside")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(outside, "sub"), 0o755))
	must(os.WriteFile(filepath.Join(outside, "secret"), []byte("secret"), 0o600))
	root := filepath.Join(dir, "root")
	must(os.MkdirAll(filepath.Join(root, "d"), 0o755))
	must(os.WriteFile(filepath.Join(root, "d", "secret"), []byte("mine"), 0o644))
	must(os.WriteFile(filepath.Join(root, "plain"), []byte("plain"), 0o644))
	link := filepath.Join(dir, "link")
	must(os.Symlink(root, link))

	b := NewBeneath()
	defer b.Close()
	b.AddRoot(link) // named by the admin: followed
	f, err := b.OpenFile(filepath.Join(link, "d", "secret"))
	if err != nil {
		t.Fatalf("a file below a root named as a symlink: %v", err)
	}
	f.Close()

	must(os.RemoveAll(filepath.Join(root, "d")))
	must(os.Symlink(outside, filepath.Join(root, "d")))
	if _, err := b.OpenFile(filepath.Join(link, "d", "secret")); !errors.Is(err, ErrSymlinkOnPath) {
		t.Errorf("open through a swapped-in symlink: %v, want ErrSymlinkOnPath", err)
	}
	// The directory itself is a symlink now: O_DIRECTORY|O_NOFOLLOW says
	// it is not a directory.
	if names, err := b.ReadDirNames(filepath.Join(link, "d"), nil); err == nil {
		t.Errorf("listed a directory swapped for a symlink: %q", names)
	}
	if _, err := b.ReadDirNames(filepath.Join(link, "d", "sub"), nil); !errors.Is(err, ErrSymlinkOnPath) {
		t.Errorf("list below a swapped-in symlink: %v, want ErrSymlinkOnPath", err)
	}
	if f, err := b.OpenFile(filepath.Join(link, "plain")); err != nil {
		t.Errorf("a file beside it: %v", err)
	} else {
		f.Close()
	}
	// Without roots (a nil Beneath, the package's functions), as before.
	if f, err := OpenFile(filepath.Join(link, "d", "secret")); err != nil {
		t.Errorf("plain open: %v", err)
	} else {
		f.Close()
	}
}
