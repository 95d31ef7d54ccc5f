package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestDeepPaths: a tree whose paths grow past PATH_MAX (4096 bytes) is
// backed up whole (exit 0, nothing skipped) and restored exactly: at every
// depth, on both sides of the limit, contents, types, modes, times, link
// targets, hard links and extended attributes. An incremental run over it
// reads no file again. The deepest directory given as the path to back up
// is saved too, with the directories leading to it.
func TestDeepPaths(t *testing.T) {
	t.Parallel()
	tr := newTestRepo(t)
	src := filepath.Join(tr.dir, "src")
	must(t, os.Mkdir(src, 0o755))
	deep, xattrs := genDeepTree(t, src)
	if !xattrs {
		t.Log("no user xattrs on this file system: checking the tree without them")
	}
	want := describeAt(t, src)
	files := 0
	for _, e := range want {
		if e.Type == "file" {
			files++
		}
	}

	sum := tr.create(src)
	if sum.Files != int64(files) || sum.Errors != 0 {
		t.Fatalf("summary: %d files, %d errors; want %d files, 0 errors", sum.Files, sum.Errors, files)
	}
	compareEntries(t, "source after create", want, describeAt(t, src))

	target := filepath.Join(tr.dir, "restore")
	tr.mustRun("restore", "latest", "--target", target)
	compareEntries(t, "restore", want, describeAt(t, target+src))

	sum = tr.create(src)
	if sum.Files != int64(files) || sum.Errors != 0 || sum.ReadBytes != 0 {
		t.Errorf("incremental summary: %d files, %d errors, %d bytes read; want %d files, 0 errors, 0 bytes", sum.Files, sum.Errors, sum.ReadBytes, files)
	}

	// The directories above the deepest one keep their own metadata
	// (rather than the made-up kind of directories that do not exist).
	sum = tr.create(deep)
	if sum.Files != 3 || sum.Errors != 0 {
		t.Errorf("summary of the deepest directory: %d files, %d errors; want 3 files, 0 errors", sum.Files, sum.Errors)
	}
	target = filepath.Join(tr.dir, "restore-deepest")
	tr.mustRun("restore", "latest", "--target", target)
	rel, _ := filepath.Rel(src, deep)
	wantDeep := map[string]entry{}
	for p, e := range want {
		if p == "." || strings.HasPrefix(rel+"/", p+"/") || strings.HasPrefix(p, rel+"/") {
			wantDeep[p] = e
		}
	}
	compareEntries(t, "restore of the deepest directory", wantDeep, describeAt(t, target+src))
}

// genDeepTree fills dir with a chain of directories whose paths end well
// past PATH_MAX, each holding a file, and at the bottom a file, a symlink,
// an empty directory, two hard links, and (where the file system takes
// them, which it reports) user.* attributes on a file and a directory. It
// goes by descriptors: os.MkdirAll and os.WriteFile go by path. It
// returns the path of the deepest directory.
func genDeepTree(t *testing.T, dir string) (deep string, xattrs bool) {
	t.Helper()
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	must(t, err)
	defer func() { unix.Close(fd) }()
	write := func(name, content string) int {
		f, err := unix.Openat(fd, name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, 0o644)
		must(t, err)
		if n, err := unix.Write(f, []byte(content)); err != nil || n != len(content) {
			t.Fatalf("write %s: %d, %v", name, n, err)
		}
		return f
	}
	p := dir
	for i := 0; len(p) < unix.PathMax+1000; i++ {
		unix.Close(write("f", fmt.Sprintf("level %d, %d bytes deep\n", i, len(p))))
		name := fmt.Sprintf("d%02d-%s", i, strings.Repeat("x", 120))
		must(t, unix.Mkdirat(fd, name, 0o755))
		next, err := unix.Openat(fd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		must(t, err)
		unix.Close(fd)
		fd, p = next, p+"/"+name
	}
	f := write("deepfile", "hello deep\n")
	xattrs = unix.Fsetxattr(f, "user.comment", []byte("past PATH_MAX"), 0) == nil
	unix.Close(f)
	must(t, unix.Symlinkat("deepfile", fd, "deeplink"))
	must(t, unix.Mkdirat(fd, "empty", 0o750))
	unix.Close(write("hl-a", "two names\n"))
	must(t, unix.Linkat(fd, "hl-a", fd, "hl-b", 0))
	if xattrs {
		d, err := unix.Openat(fd, "empty", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		must(t, err)
		must(t, unix.Fsetxattr(d, "user.dir", []byte("on a deep directory"), 0))
		unix.Close(d)
	}
	return p, xattrs
}

// describeAt is describe for trees with paths of any length: it goes by
// descriptors, and takes only regular files, directories and symlinks.
func describeAt(t *testing.T, dir string) map[string]entry {
	t.Helper()
	out := map[string]entry{}
	var walk func(parent int, name, rel string)
	walk = func(parent int, name, rel string) {
		var st unix.Stat_t
		must(t, unix.Fstatat(parent, name, &st, unix.AT_SYMLINK_NOFOLLOW))
		e := entry{Mode: st.Mode & 0o7777, UID: st.Uid, GID: st.Gid, MTime: st.Mtim.Nano(), inode: st.Ino, blocks: st.Blocks}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFLNK:
			e.Type = "symlink"
			buf := make([]byte, unix.PathMax)
			n, err := unix.Readlinkat(parent, name, buf)
			must(t, err)
			e.Link = string(buf[:n])
			out[rel] = e
			return
		case unix.S_IFREG:
			e.Type, e.Size = "file", st.Size
		case unix.S_IFDIR:
			e.Type = "dir"
		default:
			t.Fatalf("%s: unexpected mode %o", rel, st.Mode)
		}
		fd, err := unix.Openat(parent, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		must(t, err)
		f := os.NewFile(uintptr(fd), rel)
		defer f.Close()
		e.Xattrs = fdXattrs(t, fd)
		if e.Type == "file" {
			h := sha256.New()
			_, err := io.Copy(h, f)
			must(t, err)
			e.Hash = hex.EncodeToString(h.Sum(nil))
			out[rel] = e
			return
		}
		out[rel] = e
		names, err := f.Readdirnames(-1)
		must(t, err)
		for _, n := range names {
			walk(fd, n, filepath.Join(rel, n))
		}
	}
	walk(unix.AT_FDCWD, dir, ".")
	return out
}

// fdXattrs is userXattrs of an open file or directory.
func fdXattrs(t *testing.T, fd int) string {
	t.Helper()
	buf := make([]byte, 4096)
	n, err := unix.Flistxattr(fd, buf)
	must(t, err)
	var parts []string
	for _, name := range strings.Split(string(buf[:n]), "\x00") {
		if !strings.HasPrefix(name, "user.") && !strings.HasPrefix(name, "trusted.") {
			continue
		}
		val := make([]byte, 4096)
		m, err := unix.Fgetxattr(fd, name, val)
		must(t, err)
		parts = append(parts, fmt.Sprintf("%s=%x", name, val[:m]))
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}
