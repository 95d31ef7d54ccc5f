package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/snap-backup/snap/index"
	"github.com/snap-backup/snap/repo"
	"github.com/snap-backup/snap/repo/local"
	"github.com/snap-backup/snap/snapshot"
)

// Helpers shared by the end-to-end tests: generating trees with every kind
// of file, describing them completely (content and metadata), and
// comparing two descriptions.

// randBytes returns n pseudo-random (incompressible) bytes from seed.
func randBytes(seed uint64, n int) []byte {
	b := make([]byte, n)
	r := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), byte(seed >> 16), byte(seed >> 24), 1})
	_, _ = r.Read(b)
	return b
}

// writeRandom writes n pseudo-random bytes to path.
func writeRandom(t *testing.T, path string, seed uint64, n int) {
	t.Helper()
	writeFile(t, path, randBytes(seed, n))
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// Names that are not valid UTF-8, and some that are but are not ASCII.
const (
	nameLatin1  = "caf\xe9-latin1"
	nameInvalid = "bad-\xff\xfe-name"
	nameUnicode = "日本語-Ünïcödé-😀.txt"
)

// chunkMin and chunkMax are the bounds new repositories use.
const (
	chunkMin = 512 << 10
	chunkMax = 8 << 20
)

// genTree fills dir with every kind of entry snap must restore exactly:
// files of 0, 1, chunk-bound and odd sizes, empty and nested directories,
// symlinks (relative, absolute, dangling), hard links, a sparse file, a
// FIFO, a socket, device nodes, setuid/setgid/sticky modes, foreign owners,
// nanosecond times, xattrs (user.* and, on a symlink, a FIFO and a device,
// trusted.*), unicode and non-UTF-8 names.
func genTree(t *testing.T, dir string) {
	t.Helper()
	w := func(rel string, data []byte) { writeFile(t, filepath.Join(dir, rel), data) }
	p := func(rel string) string { return filepath.Join(dir, rel) }
	w("empty", nil)
	w("one", []byte{'x'})
	writeRandom(t, p("chunk-min"), 1, chunkMin)
	writeRandom(t, p("chunk-max"), 2, chunkMax)
	writeRandom(t, p("chunk-max-plus-one"), 3, chunkMax+1)
	writeRandom(t, p("odd"), 4, 1234567)
	w("text.txt", bytes.Repeat([]byte("compressible text, "), 5000))
	w("sub/deeper/file.txt", []byte("deep"))
	w("sub/file.bin", randBytes(5, 3000))
	w(nameUnicode, []byte("unicode"))
	w(nameLatin1, []byte("latin1"))
	w(nameInvalid+"/inner", []byte("inside a non-UTF-8 directory"))
	must(t, os.MkdirAll(p("emptydir"), 0o755))
	must(t, os.MkdirAll(p("nested-empty/a/b"), 0o755))

	must(t, os.Symlink("sub/deeper/file.txt", p("link-rel")))
	must(t, os.Symlink("/nonexistent/target", p("link-abs")))
	must(t, os.Symlink("../../outside", p("sub/link-up")))
	must(t, os.Symlink(nameInvalid, p("link-to-invalid")))

	w("hl-a", []byte("hard linked"))
	must(t, os.Link(p("hl-a"), p("sub/hl-b")))
	must(t, os.Link(p("hl-a"), p(nameInvalid+"/hl-c")))

	// Sparse: 32 MiB with three small islands of data.
	f, err := os.Create(p("sparse"))
	must(t, err)
	for _, off := range []int64{0, 16 << 20, 32<<20 - 4096} {
		_, err := f.WriteAt(randBytes(uint64(off), 4096), off)
		must(t, err)
	}
	must(t, f.Close())

	must(t, unix.Mkfifo(p("fifo"), 0o640))
	must(t, unix.Mknod(p("chardev"), unix.S_IFCHR|0o620, int(unix.Mkdev(1, 3))))
	must(t, unix.Mknod(p("blockdev"), unix.S_IFBLK|0o600, int(unix.Mkdev(7, 200))))
	l, err := net.Listen("unix", p("socket"))
	must(t, err)
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()

	w("setuid", []byte("#!/bin/sh\n"))
	must(t, unix.Chmod(p("setuid"), 0o4755))
	must(t, os.MkdirAll(p("setgid-dir"), 0o755))
	must(t, unix.Chmod(p("setgid-dir"), 0o2775))
	must(t, os.MkdirAll(p("sticky-dir"), 0o755))
	must(t, unix.Chmod(p("sticky-dir"), 0o1777))
	w("private", []byte("secret"))
	must(t, unix.Chmod(p("private"), 0o600))
	w("no-perms", []byte("none"))
	must(t, unix.Chmod(p("no-perms"), 0))

	w("owned", []byte("someone else's"))
	must(t, os.Lchown(p("owned"), 1234, 5678))
	must(t, os.Lchown(p("sub/deeper"), 4321, 8765))
	must(t, os.Lchown(p("link-rel"), 2222, 3333))
	must(t, os.Lchown(p("fifo"), 99, 98))

	w("xattr-file", []byte("with attributes"))
	must(t, unix.Setxattr(p("xattr-file"), "user.comment", []byte("hello"), 0))
	must(t, unix.Setxattr(p("xattr-file"), "user.binary", []byte{0, 1, 2, 255}, 0))
	must(t, unix.Setxattr(p("sub"), "user.dir", []byte("on a directory"), 0))
	// Symlinks and special files carry attributes too (SELinux labels on
	// every one); user.* is not allowed on them, trusted.* is (as root).
	must(t, unix.Lsetxattr(p("link-rel"), "trusted.label", []byte("on a symlink"), 0))
	must(t, unix.Lsetxattr(p("fifo"), "trusted.label", []byte("on a fifo"), 0))
	must(t, unix.Lsetxattr(p("chardev"), "trusted.label", []byte("on a device"), 0))
	// Hard links between symlinks and between FIFOs.
	must(t, unix.Linkat(unix.AT_FDCWD, p("link-rel"), unix.AT_FDCWD, p("link-rel-hl"), 0))
	must(t, unix.Link(p("fifo"), p("fifo-hl")))

	// Nanosecond times on everything, deepest first so that setting a
	// child's time does not disturb its parent's afterwards.
	var paths []string
	must(t, filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		paths = append(paths, path)
		return err
	}))
	sort.Slice(paths, func(i, j int) bool { return len(paths[i]) > len(paths[j]) })
	for i, path := range paths {
		ns := int64(1600000000)*1e9 + int64(i)*1e9 + 123456789 + int64(i)
		ts := []unix.Timespec{unix.NsecToTimespec(ns - 5e9), unix.NsecToTimespec(ns)}
		must(t, unix.UtimesNanoAt(unix.AT_FDCWD, path, ts, unix.AT_SYMLINK_NOFOLLOW))
	}
}

// entry is everything compared about one path.
type entry struct {
	Type   string
	Mode   uint32
	UID    uint32
	GID    uint32
	Size   int64
	MTime  int64
	Rdev   uint64
	Link   string
	Xattrs string
	Hash   string
	inode  uint64 // for hard link groups; not compared directly
	blocks int64
}

// same compares everything but the inode and the allocation.
func (e entry) same(o entry) bool {
	e.inode, e.blocks, o.inode, o.blocks = 0, 0, 0, 0
	return e == o
}

// describe returns every entry below dir (relative paths; "." is dir).
func describe(t *testing.T, dir string) map[string]entry {
	t.Helper()
	out := map[string]entry{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		var st unix.Stat_t
		if err := unix.Lstat(path, &st); err != nil {
			return err
		}
		e := entry{Mode: st.Mode & 0o7777, UID: st.Uid, GID: st.Gid, MTime: st.Mtim.Nano(), inode: st.Ino, blocks: st.Blocks}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFREG:
			e.Type, e.Size = "file", st.Size
			e.Hash = hashFile(t, path)
		case unix.S_IFDIR:
			e.Type = "dir"
		case unix.S_IFLNK:
			e.Type = "symlink"
			e.Link, _ = os.Readlink(path)
		case unix.S_IFCHR:
			e.Type, e.Rdev = "chardev", st.Rdev
		case unix.S_IFBLK:
			e.Type, e.Rdev = "blockdev", st.Rdev
		case unix.S_IFIFO:
			e.Type = "fifo"
		case unix.S_IFSOCK:
			e.Type = "socket"
		}
		e.Xattrs = userXattrs(path)
		out[rel] = e
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func hashFile(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// userXattrs describes the user.* and trusted.* attributes of path.
func userXattrs(path string) string {
	buf := make([]byte, 4096)
	n, err := unix.Llistxattr(path, buf)
	if err != nil {
		return "error: " + err.Error()
	}
	var parts []string
	for _, name := range strings.Split(string(buf[:n]), "\x00") {
		if !strings.HasPrefix(name, "user.") && !strings.HasPrefix(name, "trusted.") {
			continue
		}
		val := make([]byte, 4096)
		m, err := unix.Lgetxattr(path, name, val)
		if err != nil {
			return "error: " + err.Error()
		}
		parts = append(parts, fmt.Sprintf("%s=%x", name, val[:m]))
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}

// compareTrees fails the test for every difference between two
// descriptions, including hard link groups (paths sharing an inode in want
// must share one in got, and only those).
func compareEntries(t *testing.T, what string, want, got map[string]entry) {
	t.Helper()
	for p, w := range want {
		g, ok := got[p]
		if !ok {
			t.Errorf("%s: %q missing", what, p)
			continue
		}
		if !w.same(g) {
			t.Errorf("%s: %q differs:\n want %+v\n got  %+v", what, p, w, g)
		}
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			t.Errorf("%s: unexpected %q", what, p)
		}
	}
	group := func(m map[string]entry) map[string]string {
		byInode := map[uint64][]string{}
		for p, e := range m {
			if e.Type != "dir" {
				byInode[e.inode] = append(byInode[e.inode], p)
			}
		}
		out := map[string]string{}
		for _, ps := range byInode {
			sort.Strings(ps)
			for _, p := range ps {
				out[p] = strings.Join(ps, "|")
			}
		}
		return out
	}
	wg, gg := group(want), group(got)
	for p, w := range wg {
		if gg[p] != w {
			t.Errorf("%s: hard link group of %q is %q, want %q", what, p, gg[p], w)
		}
	}
}

// entryBlocks returns a path's allocated 512-byte blocks.
func entryBlocks(t *testing.T, path string) int64 {
	t.Helper()
	var st unix.Stat_t
	must(t, unix.Lstat(path, &st))
	return st.Blocks
}

// summary is the JSON line `snap create --json` prints last.
type summary struct {
	SnapshotID    string `json:"snapshot_id"`
	Files         int64  `json:"files"`
	Bytes         int64  `json:"bytes"`
	ReadBytes     int64  `json:"read_bytes"`
	AddedBytes    int64  `json:"added_bytes"`
	AddedRawBytes int64  `json:"added_raw_bytes"`
	AddedBlobs    int64  `json:"added_blobs"`
	Errors        int64  `json:"errors"`
}

// create runs `snap create --json` and returns its summary.
func (tr *testRepo) create(args ...string) summary {
	tr.t.Helper()
	res := tr.mustRun(append([]string{"create", "--json"}, args...)...)
	return parseSummary(tr.t, res.stdout)
}

func parseSummary(t *testing.T, stdout string) summary {
	t.Helper()
	var s summary
	for _, line := range strings.Split(strings.TrimSpace(stdout), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil && m["type"] == "summary" {
			must(t, json.Unmarshal([]byte(line), &s))
			return s
		}
	}
	t.Fatalf("no summary in %q", stdout)
	return s
}

// listJSON returns `snap list --json` with extra arguments.
func (tr *testRepo) listJSON(args ...string) []snapshotJSON {
	tr.t.Helper()
	res := tr.mustRun(append([]string{"list", "--json"}, args...)...)
	var out []snapshotJSON
	if err := json.Unmarshal([]byte(res.stdout), &out); err != nil {
		tr.t.Fatalf("list --json: %v\n%s", err, res.stdout)
	}
	return out
}

// blobCounts opens the repository in-process (with a private cache) and
// counts the indexed data and tree blobs.
func (tr *testRepo) blobCounts() (data, tree int) {
	tr.t.Helper()
	ctx := context.Background()
	r := tr.openInProcess()
	defer r.Close()
	ix, err := index.Open(ctx, r, tr.t.TempDir(), index.Options{})
	must(tr.t, err)
	defer ix.Close()
	must(tr.t, ix.Blobs(func(l index.Location) error {
		if l.Entry.Type == repo.DataBlob {
			data++
		} else {
			tree++
		}
		return nil
	}))
	return data, tree
}

// dirSize sums the sizes of the files below dir.
func dirSize(t *testing.T, dir string) int64 {
	t.Helper()
	var n int64
	must(t, filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			fi, err := d.Info()
			if err != nil {
				return err
			}
			n += fi.Size()
		}
		return nil
	}))
	return n
}

// oneLine checks that a failing command printed exactly one line, starting
// with "snap: ", on stderr, and returns it.
func oneLine(t *testing.T, res result) string {
	t.Helper()
	lines := strings.Split(strings.TrimRight(res.stderr, "\n"), "\n")
	var errs []string
	for _, l := range lines {
		if !strings.HasPrefix(l, "warning: ") && !strings.HasPrefix(l, "error: ") {
			errs = append(errs, l)
		}
	}
	if len(errs) != 1 || !strings.HasPrefix(errs[0], "snap: ") {
		t.Errorf("want one error line starting with 'snap: ', got %q", res.stderr)
		return res.stderr
	}
	return errs[0]
}

// openInProcess opens the test repository in this process.
func (tr *testRepo) openInProcess() *repo.Repository {
	tr.t.Helper()
	be, err := local.Open(tr.repo)
	must(tr.t, err)
	r, err := repo.Open(context.Background(), be, "test-password", repo.Options{})
	must(tr.t, err)
	return r
}

// storeAgain stores the repository's only snapshot once more, in-process,
// as edit changes it, and removes the original document unless keepOld:
// a repository written otherwise than by this snap's commands (crafted,
// older, or by a run killed half-way).
func (tr *testRepo) storeAgain(edit func(*snapshot.Snapshot), keepOld bool) {
	tr.t.Helper()
	ctx := context.Background()
	r := tr.openInProcess()
	defer r.Close()
	be := r.Backend()
	sns, errs, err := snapshot.NewLoader(r, tr.t.TempDir()).List(ctx)
	if err != nil || len(errs) > 0 || len(sns) != 1 {
		tr.t.Fatalf("list in-process: %v %v %d snapshots, want 1", err, errs, len(sns))
	}
	next := *sns[0]
	edit(&next) // with the stored ID still there, for snapshot.Origin
	next.ID = repo.ID{}
	must(tr.t, snapshot.Save(ctx, r, &next))
	if !keepOld {
		must(tr.t, be.Remove(ctx, repo.Handle{Type: repo.SnapshotFile, Name: sns[0].ID.String()}))
	}
}
