package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// inode returns the inode of p itself (a symlink's own).
func inode(t *testing.T, p string) uint64 {
	t.Helper()
	var st unix.Stat_t
	must(t, unix.Lstat(p, &st))
	return st.Ino
}

// TestRestoreIfChangedKeepsSpecialEntries: a restore not run as root,
// with --overwrite if-changed, over entries already as the snapshot
// records them leaves them alone: a device node (which it cannot make
// again: it was removed, and then its mknod failed), another user's
// symlink and FIFO in a shared sticky directory (which it may not remove),
// and that directory (whose mode it may not set). And a device node it
// cannot make is refused before the file the target has at its name is
// removed (found by an exploratory test).
func TestRestoreIfChangedKeepsSpecialEntries(t *testing.T) {
	t.Parallel()
	tr, runAs := newUserRepo(t, 65534)
	src := filepath.Join(tr.dir, "src")
	sticky := filepath.Join(src, "sticky")
	must(t, os.MkdirAll(sticky, 0o755))
	must(t, os.Chmod(sticky, 0o1777))
	must(t, unix.Mknod(filepath.Join(src, "null"), unix.S_IFCHR|0o644, int(unix.Mkdev(1, 3))))
	must(t, os.Symlink("elsewhere", filepath.Join(sticky, "l")))
	must(t, unix.Mkfifo(filepath.Join(sticky, "p"), 0o644))
	must(t, os.Lchown(filepath.Join(sticky, "l"), 12345, 12345))
	must(t, os.Lchown(filepath.Join(sticky, "p"), 12345, 12345))
	writeFile(t, filepath.Join(src, "f"), []byte("file"))
	if res := runAs("create", src); res.code != 0 {
		t.Fatalf("create as nobody: exit %d\n%s", res.code, res.stderr)
	}

	// Root restores; the user restores again over it.
	target := filepath.Join(tr.dir, "target")
	must(t, os.Mkdir(target, 0o755))
	rootCache := filepath.Join(tr.dir, "root-cache")
	if res := tr.run("restore", "latest:"+src, "--target", target, "--cache-dir", rootCache); res.code != 0 {
		t.Fatalf("restore as root: exit %d\n%s", res.code, res.stderr)
	}
	must(t, os.Chown(target, 65534, 65534))
	before := map[string]uint64{}
	for _, name := range []string{"null", "sticky/l", "sticky/p"} {
		before[name] = inode(t, filepath.Join(target, name))
	}
	res := runAs("restore", "latest:"+src, "--target", target, "--overwrite", "if-changed")
	if res.code != 0 {
		t.Errorf("restore --overwrite if-changed as nobody over what is as recorded: exit %d\n%s", res.code, res.stderr)
	}
	for name, ino := range before {
		if got := inode(t, filepath.Join(target, name)); got != ino {
			t.Errorf("%s was made again (inode %d, was %d)", name, got, ino)
		}
	}

	// A file where the snapshot has a device node the user cannot make:
	// it stays.
	mine := filepath.Join(tr.dir, "mine")
	must(t, os.Mkdir(mine, 0o755))
	writeFile(t, filepath.Join(mine, "null"), []byte("precious"))
	must(t, os.Chown(mine, 65534, 65534))
	must(t, os.Chown(filepath.Join(mine, "null"), 65534, 65534))
	res = runAs("restore", "latest:"+src, "--target", mine, "--include", "null", "--overwrite", "always")
	if res.code == 0 || !strings.Contains(res.stderr, "device nodes are made by root only") {
		t.Errorf("restore of a device node as nobody: exit %d\n%s", res.code, res.stderr)
	}
	if b, err := os.ReadFile(filepath.Join(mine, "null")); err != nil || string(b) != "precious" {
		t.Errorf("the user's file where the snapshot has a device node: %q, %v", b, err)
	}
}

// TestRestoreNeverWithIncludeMakesOnlyTheWay: --overwrite never with
// --include makes the directories leading to what it selects, as the other
// modes do, not every directory the walk passes (each was made, empty).
func TestRestoreNeverWithIncludeMakesOnlyTheWay(t *testing.T) {
	t.Parallel()
	tr := newTestRepo(t)
	src := filepath.Join(tr.dir, "src")
	writeFile(t, filepath.Join(src, "top", "a", "b", "c", "f"), []byte("f"))
	writeFile(t, filepath.Join(src, "top", "x", "y"), []byte("y"))
	writeFile(t, filepath.Join(src, "top", "keep"), []byte("keep"))
	tr.mustRun("create", src)
	for _, mode := range []string{"never", "always", "if-changed"} {
		target := filepath.Join(tr.dir, "target-"+mode)
		tr.mustRun("restore", "latest", "--target", target, "--include", "keep", "--overwrite", mode)
		var made []string
		must(t, filepath.Walk(filepath.Join(target, src), func(p string, fi os.FileInfo, err error) error {
			if err == nil {
				made = append(made, strings.TrimPrefix(p, filepath.Join(target, src)))
			}
			return err
		}))
		if got := strings.Join(made, " "); got != " /top /top/keep" {
			t.Errorf("--overwrite %s --include keep made %s", mode, got)
		}
	}
}

// TestRestoreSaysHardLinkSplit: a name of a hard link group that cannot
// be linked to the group's first name (a directory is in that one's way)
// is restored as a copy of its own, and a warning says so (nothing did).
func TestRestoreSaysHardLinkSplit(t *testing.T) {
	t.Parallel()
	tr := newTestRepo(t)
	src := filepath.Join(tr.dir, "src")
	// In one directory, whose entries one walker restores in order: h1
	// is the group's first name.
	writeFile(t, filepath.Join(src, "h1"), []byte("linked"))
	must(t, os.Link(filepath.Join(src, "h1"), filepath.Join(src, "h2")))
	tr.mustRun("create", src)
	target := filepath.Join(tr.dir, "target")
	writeFile(t, filepath.Join(target, src, "h1", "in-the-way"), []byte("x"))
	res := tr.run("restore", "latest", "--target", target)
	if res.code == 0 || !strings.Contains(res.stderr, "restored as a copy of its own, not as a hard link to "+filepath.Join(target, src, "h1")) {
		t.Errorf("restore with the first name of a group blocked: exit %d\n%s", res.code, res.stderr)
	}
	if b, err := os.ReadFile(filepath.Join(target, src, "h2")); err != nil || string(b) != "linked" {
		t.Errorf("the other name: %q, %v", b, err)
	}
}

// TestRestoreDeviceInUserNamespace: root in a user namespace has
// CAP_MKNOD and may not make device nodes all the same: the restore
// refuses such a node before the file the target has at its name is
// removed (it was removed, and then mknod failed; found by a review).
func TestRestoreDeviceInUserNamespace(t *testing.T) {
	t.Parallel()
	if err := exec.Command("unshare", "-r", "true").Run(); err != nil {
		t.Skipf("no user namespaces here (unshare -r: %v)", err)
	}
	tr := newTestRepo(t)
	src := filepath.Join(tr.dir, "src")
	must(t, os.MkdirAll(src, 0o755))
	must(t, unix.Mknod(filepath.Join(src, "null"), unix.S_IFCHR|0o644, int(unix.Mkdev(1, 3))))
	tr.mustRun("create", src)
	target := filepath.Join(tr.dir, "target")
	writeFile(t, filepath.Join(target, "null"), []byte("precious"))
	tr.wrap = []string{"unshare", "-r"}
	res := tr.run("restore", "latest:"+src, "--target", target)
	tr.wrap = nil
	if res.code == 0 || !strings.Contains(res.stderr, "this root may not make device nodes") {
		t.Errorf("restore of a device node in a user namespace: exit %d\n%s", res.code, res.stderr)
	}
	if b, err := os.ReadFile(filepath.Join(target, "null")); err != nil || string(b) != "precious" {
		t.Errorf("the file where the snapshot has a device node: %q, %v", b, err)
	}
}
