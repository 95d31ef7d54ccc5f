package sources

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
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

// TestLstatInStaysInTheListedDirectory: the entries of a listed directory
// are looked at in that directory even when it is swapped for a symlink
// after it was opened (the metadata of /etc/shadow, its link targets and
// attributes, are not lent to a user's entries of the same names), and
// LstatIn reads what Lstat reads by path.
func TestLstatInStaysInTheListedDirectory(t *testing.T) {
	dir := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	d := filepath.Join(dir, "d")
	outside := filepath.Join(dir, "outside")
	must(os.MkdirAll(d, 0o755))
	must(os.MkdirAll(outside, 0o755))
	must(os.WriteFile(filepath.Join(d, "f"), []byte("mine"), 0o644))
	must(os.Symlink("mine", filepath.Join(d, "l")))
	must(os.WriteFile(filepath.Join(outside, "f"), []byte("someone else's, longer"), 0o600))
	must(os.Symlink("theirs", filepath.Join(outside, "l")))
	xattrs := unix.Setxattr(filepath.Join(d, "f"), "user.mine", []byte("1"), 0) == nil

	r := NewReader()
	l, err := NewBeneath().OpenListing(d)
	must(err)
	defer l.Close()
	byPath, err := r.Lstat(filepath.Join(d, "f"), "f")
	must(err)
	in, err := r.LstatIn(l, "f", nil)
	must(err)
	if in.Size != byPath.Size || in.Inode != byPath.Inode || in.Mode != byPath.Mode || len(in.Xattrs) != len(byPath.Xattrs) {
		t.Errorf("LstatIn %+v, Lstat %+v", in, byPath)
	}
	if xattrs && (len(in.Xattrs) != 1 || in.Xattrs[0].Name != "user.mine") {
		t.Errorf("attributes %v, want user.mine", in.Xattrs)
	}

	must(os.Rename(d, filepath.Join(dir, "moved")))
	must(os.Symlink(outside, d))
	f, err := r.LstatIn(l, "f", nil)
	must(err)
	if f.Size != 4 || f.Mode&0o777 != 0o644 {
		t.Errorf("after the swap: size %d mode %o, want the listed directory's file (4, 644)", f.Size, f.Mode&0o777)
	}
	if xattrs && len(f.Xattrs) != 1 {
		t.Errorf("after the swap: attributes %v, want the listed file's", f.Xattrs)
	}
	link, err := r.LstatIn(l, "l", nil)
	must(err)
	if link.LinkTarget != "mine" {
		t.Errorf("after the swap: link target %q, want mine", link.LinkTarget)
	}
	if _, err := r.LstatIn(l, "gone", nil); !IsNotExist(err) {
		t.Errorf("a vanished entry: %v, want not-exist", err)
	}
}
