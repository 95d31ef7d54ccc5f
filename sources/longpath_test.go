package sources

import (
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// deepDirs creates below root a chain of directories whose path is longer
// than PATH_MAX (which os.MkdirAll cannot: it goes by path) and returns the
// descriptor of the deepest, open, and its path. Every directory of the
// chain but the last holds a symlink "hop" to the next one.
func deepDirs(t *testing.T, root string) (int, string) {
	t.Helper()
	fd, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	p := root
	for i := 0; len(p) < unix.PathMax+500; i++ {
		name := fmt.Sprintf("d%02d-%s", i, strings.Repeat("x", 120))
		if err := unix.Mkdirat(fd, name, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := unix.Symlinkat(name, fd, "hop"); err != nil {
			t.Fatal(err)
		}
		next, err := unix.Openat(fd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		unix.Close(fd)
		if err != nil {
			t.Fatal(err)
		}
		fd, p = next, p+"/"+name
	}
	t.Cleanup(func() { unix.Close(fd) })
	return fd, p
}

// TestLongPaths: metadata, links, attributes, listings and file contents
// of entries whose paths are longer than PATH_MAX are read as those of
// short paths are: a final symlink not followed (but followed with a
// trailing slash), symlinks and doubled slashes on the way taken as any
// path lookup takes them, and errors naming the path given, not the name
// it was reached by.
func TestLongPaths(t *testing.T) {
	root := t.TempDir()
	fd, deep := deepDirs(t, root)
	f, err := unix.Openat(fd, "f", unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, 0o640)
	if err != nil {
		t.Fatal(err)
	}
	unix.Write(f, []byte("deep content"))
	xattrs := unix.Fsetxattr(f, "user.deep", []byte("below PATH_MAX"), 0) == nil
	unix.Close(f)
	for _, err := range []error{
		unix.Symlinkat("f", fd, "link"),
		unix.Mkdirat(fd, "empty", 0o700),
		unix.Symlinkat("empty", fd, "dirlink"),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}

	r := NewReader()
	// hopped, hoppedLast: the same directory with a symlink for one
	// component on the way, in the first piece of the path and as the
	// last component of the last. doubled: every slash doubled, so that a
	// piece may end between two of them.
	i := strings.Index(deep[len(root)+1:], "/") + len(root) + 1
	hopped := root + "/hop" + deep[i:]
	hoppedLast := filepath.Dir(deep) + "/hop"
	doubled := strings.ReplaceAll(deep, "/", "//")
	for _, dir := range []string{deep, hopped, hoppedLast, doubled} {
		m, err := r.Lstat(dir+"/f", "f")
		if err != nil || m.Type != TypeFile || m.Size != 12 || m.Mode != 0o640 {
			t.Fatalf("Lstat of a file %d bytes deep: %+v, %v", len(dir), m, err)
		}
		if want := []Xattr{{Name: "user.deep", Value: []byte("below PATH_MAX")}}; xattrs && !slices.EqualFunc(m.Xattrs, want, xattrEqual) {
			t.Errorf("attributes %v, want %v", m.Xattrs, want)
		}
		if m, err := r.Lstat(dir+"/link", "link"); err != nil || m.Type != TypeSymlink || m.LinkTarget != "f" {
			t.Errorf("Lstat of a symlink: %+v, %v", m, err)
		}
		if m, err := r.Lstat(dir+"/dirlink", "dirlink"); err != nil || m.Type != TypeSymlink {
			t.Errorf("Lstat of a symlink to a directory: %+v, %v", m, err)
		}
		if m, err := r.Lstat(dir+"/dirlink/", "dirlink"); err != nil || m.Type != TypeDir || m.Mode != 0o700 {
			t.Errorf("Lstat of a symlink to a directory, with a trailing slash: %+v, %v", m, err)
		}
		names, err := ReadDirNames(dir, nil)
		if want := []string{"dirlink", "empty", "f", "link"}; err != nil || !slices.Equal(names, want) {
			t.Errorf("ReadDirNames: %q, %v; want %q", names, err, want)
		}
		if names, err := ReadDirNames(dir+"/dirlink/", nil); err != nil || len(names) != 0 {
			t.Errorf("ReadDirNames through a symlink: %q, %v", names, err)
		}
		sf, err := OpenFile(dir + "/f")
		if err != nil {
			t.Fatal(err)
		}
		if b, err := io.ReadAll(sf); err != nil || string(b) != "deep content" {
			t.Errorf("read %q, %v", b, err)
		}
		if err := sf.Close(); err != nil {
			t.Error(err)
		}
	}

	var pe *PathError
	for _, c := range []struct {
		path string
		err  error
		fn   func(string) error
	}{
		{deep + "/missing", unix.ENOENT, func(p string) error { _, err := r.Lstat(p, "x"); return err }},
		{root + "/nope" + deep[i:] + "/f", unix.ENOENT, func(p string) error { _, err := r.Lstat(p, "x"); return err }},
		{deep + "/f/", unix.ENOTDIR, func(p string) error { _, err := r.Lstat(p, "x"); return err }},
		{deep + "/link", unix.ELOOP, func(p string) error { _, err := OpenFile(p); return err }},
		{deep + "/f", unix.ENOTDIR, func(p string) error { _, err := ReadDirNames(p, nil); return err }},
		{deep + "/" + strings.Repeat("n", 300), unix.ENAMETOOLONG, func(p string) error { _, err := r.Lstat(p, "x"); return err }},
	} {
		err := c.fn(c.path)
		if !errors.As(err, &pe) || pe.Path != c.path || !errors.Is(err, c.err) || strings.Contains(err.Error(), "/proc/") {
			t.Errorf("%s: %v, want %v naming the path", filepath.Base(c.path), err, c.err)
		}
	}
}
