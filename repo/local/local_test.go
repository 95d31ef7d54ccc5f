package local

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/snap-backup/snap/repo"
)

func newBackend(t *testing.T) (*Backend, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "repo")
	be, err := Create(dir)
	if err != nil {
		t.Fatal(err)
	}
	return be, dir
}

// allFiles lists every non-directory below dir.
func allFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			out = append(out, strings.TrimPrefix(p, dir+"/"))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

func TestCreateRefusesNonEmpty(t *testing.T) {
	dir := t.TempDir()
	if _, err := Create(filepath.Join(dir, "new", "deeper")); err != nil {
		t.Fatalf("new directory: %v", err)
	}
	empty := filepath.Join(dir, "empty")
	if err := os.Mkdir(empty, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := Create(empty); err != nil {
		t.Fatalf("empty directory: %v", err)
	}
	full := filepath.Join(dir, "full")
	if err := os.MkdirAll(full, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(full, ".hidden"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Create(full); !errors.Is(err, repo.ErrExists) {
		t.Fatalf("non-empty directory: %v, want ErrExists", err)
	}
	if got := allFiles(t, full); len(got) != 1 {
		t.Fatalf("Create touched a non-empty directory: %v", got)
	}
	// A repository is non-empty too.
	if _, err := Create(empty); !errors.Is(err, repo.ErrExists) {
		t.Fatalf("existing repository: %v, want ErrExists", err)
	}
	if _, err := Open(filepath.Join(dir, "nothing")); !errors.Is(err, repo.ErrNoRepository) {
		t.Fatalf("Open of a missing repository: %v, want ErrNoRepository", err)
	}
}

func TestSaveLoadListRemove(t *testing.T) {
	be, dir := newBackend(t)
	ctx := context.Background()
	data := []byte("0123456789")
	h := repo.Handle{Type: repo.PackFile, Name: repo.Hash(data).String()}
	if err := be.Save(ctx, h, data); err != nil {
		t.Fatal(err)
	}
	// Immutable: a second Save of the name keeps the first content.
	if err := be.Save(ctx, h, []byte("other")); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		off, n int64
		want   string
	}{{0, 0, "0123456789"}, {3, 4, "3456"}, {9, 1, "9"}, {10, 0, ""}} {
		got, err := be.Load(ctx, h, c.off, c.n)
		if err != nil || string(got) != c.want {
			t.Errorf("Load(%d, %d) = %q, %v; want %q", c.off, c.n, got, err, c.want)
		}
	}
	for _, c := range [][2]int64{{5, 6}, {11, 0}, {-1, 2}, {0, -1}} {
		if got, err := be.Load(ctx, h, c[0], c[1]); err == nil {
			t.Errorf("Load(%d, %d) = %q: a range past the end must fail", c[0], c[1], got)
		}
	}
	if n, err := be.Stat(ctx, h); err != nil || n != 10 {
		t.Errorf("Stat = %d, %v", n, err)
	}
	missing := repo.Handle{Type: repo.IndexFile, Name: strings.Repeat("ab", 32)}
	if _, err := be.Load(ctx, missing, 0, 0); !errors.Is(err, repo.ErrNotFound) {
		t.Errorf("Load of a missing file: %v", err)
	}
	if _, err := be.Stat(ctx, missing); !errors.Is(err, repo.ErrNotFound) {
		t.Errorf("Stat of a missing file: %v", err)
	}
	if err := be.Remove(ctx, missing); !errors.Is(err, repo.ErrNotFound) {
		t.Errorf("Remove of a missing file: %v", err)
	}
	// Names that could escape the directory are refused.
	for _, name := range []string{"../../etc/passwd", "", "a", "AB", "ab/cd", strings.Repeat("a", 129)} {
		if err := be.Save(ctx, repo.Handle{Type: repo.IndexFile, Name: name}, data); err == nil {
			t.Errorf("Save accepted name %q", name)
		}
	}
	// Temporary files and foreign names are not listed.
	for _, name := range []string{tempPrefix + "0011", "README", "ABCD"} {
		if err := os.WriteFile(filepath.Join(dir, "data", h.Name[:2], name), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	var listed []string
	if err := be.List(ctx, repo.PackFile, func(name string, size int64) error {
		listed = append(listed, name)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(listed) != 1 || listed[0] != h.Name {
		t.Errorf("List = %v, want only %s", listed, h.Name)
	}
	if err := be.Remove(ctx, h); err != nil {
		t.Fatal(err)
	}
	if _, err := be.Stat(ctx, h); !errors.Is(err, repo.ErrNotFound) {
		t.Errorf("Stat after Remove: %v", err)
	}
}

// asUser runs fn on a locked OS thread whose file system identity is an
// unprivileged user, so that permission checks apply although the tests run
// as root. The thread is discarded afterwards.
func asUser(t *testing.T, uid int, fn func()) {
	t.Helper()
	if os.Geteuid() != 0 {
		fn()
		return
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread() // never unlocked: the thread exits with the goroutine
		if err := unix.Setfsgid(uid); err != nil {
			t.Error(err)
			return
		}
		if err := unix.Setfsuid(uid); err != nil {
			t.Error(err)
			return
		}
		fn()
	}()
	<-done
}

// TestSaveReadOnlyDirectory: a Save that cannot write fails with an error
// naming the file and leaves nothing behind.
func TestSaveReadOnlyDirectory(t *testing.T) {
	be, dir := newBackend(t)
	if err := os.Chmod(filepath.Join(dir, "index"), 0o555); err != nil {
		t.Fatal(err)
	}
	// The unprivileged user may walk to the directories, and write into
	// snapshots/ (the control) but not into index/.
	for _, d := range []string{filepath.Dir(filepath.Dir(dir)), filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(filepath.Join(dir, "snapshots"), 0o777); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(filepath.Join(dir, "index"), 0o700) })
	data := []byte("segment")
	h := repo.Handle{Type: repo.IndexFile, Name: repo.Hash(data).String()}
	var err error
	asUser(t, 65534, func() { err = be.Save(context.Background(), repo.Handle{Type: repo.SnapshotFile, Name: h.Name}, data) })
	if err != nil {
		t.Fatalf("control: Save as the unprivileged user into a writable directory: %v", err)
	}
	if err := be.Remove(context.Background(), repo.Handle{Type: repo.SnapshotFile, Name: h.Name}); err != nil {
		t.Fatal(err)
	}
	asUser(t, 65534, func() { err = be.Save(context.Background(), h, data) })
	if err == nil {
		t.Fatal("Save into a read-only directory succeeded")
	}
	if !strings.Contains(err.Error(), h.String()) || !errors.Is(err, fs.ErrPermission) {
		t.Errorf("error %q does not name %s or say permission denied", err, h)
	}
	if got := allFiles(t, dir); len(got) != 0 {
		t.Errorf("files left behind: %v", got)
	}
}

// TestSaveWriteErrorRemovesTemp makes the write itself fail after the
// temporary file exists (a file size limit, as a full disk would): the
// temporary file is removed and the final name never appears.
func TestSaveWriteErrorRemovesTemp(t *testing.T) {
	be, dir := newBackend(t)
	var old unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_FSIZE, &old); err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("x"), 1<<20)
	h := repo.Handle{Type: repo.PackFile, Name: repo.Hash(data).String()}
	// Go ignores SIGXFSZ unless asked for it, so the write returns EFBIG.
	// The limit is the process's: the test log that 'go test' appends to
	// (its cache's record of files opened) must stay under it, so it is
	// well above that log's size and still below the pack's.
	if err := unix.Setrlimit(unix.RLIMIT_FSIZE, &unix.Rlimit{Cur: 512 << 10, Max: old.Max}); err != nil {
		t.Fatal(err)
	}
	err := be.Save(context.Background(), h, data)
	if rerr := unix.Setrlimit(unix.RLIMIT_FSIZE, &old); rerr != nil {
		t.Fatal(rerr)
	}
	if err == nil {
		t.Fatal("Save beyond the file size limit succeeded")
	}
	if !errors.Is(err, unix.EFBIG) || !strings.Contains(err.Error(), h.String()) {
		t.Errorf("error %q does not name %s or say file too large", err, h)
	}
	if got := allFiles(t, dir); len(got) != 0 {
		t.Errorf("files left behind: %v", got)
	}
	// The same Save works once the limit is gone.
	if err := be.Save(context.Background(), h, data); err != nil {
		t.Fatal(err)
	}
	if got := allFiles(t, dir); len(got) != 1 {
		t.Errorf("files after a good Save: %v", got)
	}
}

// TestSaveConcurrentSameName: racing writers of one content-named file all
// succeed and leave exactly one complete file.
func TestSaveConcurrentSameName(t *testing.T) {
	be, dir := newBackend(t)
	data := bytes.Repeat([]byte("y"), 256<<10)
	h := repo.Handle{Type: repo.SnapshotFile, Name: repo.Hash(data).String()}
	errs := make(chan error, 8)
	for range 8 {
		go func() { errs <- be.Save(context.Background(), h, data) }()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if got := allFiles(t, dir); len(got) != 1 {
		t.Fatalf("files: %v", got)
	}
	got, err := be.Load(context.Background(), h, 0, 0)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("content differs: %v", err)
	}
}

// TestOpenSkipsHugeKeyFile: a key file larger than any real one is not
// read into memory; the repository still opens with a good key.
func TestOpenSkipsHugeKeyFile(t *testing.T) {
	be, dir := newBackend(t)
	ctx := context.Background()
	kdf := repo.KDFParams{Time: 1, MemoryKiB: 64, Threads: 1}
	ch := repo.ChunkerParams{Polynomial: 0x3DA3358B4DC173, MinSize: 512 << 10, MaxSize: 8 << 20, AverageBits: 20}
	if _, err := repo.Init(ctx, be, "pw", kdf, ch, repo.Options{}); err != nil {
		t.Fatal(err)
	}
	huge := bytes.Repeat([]byte("{"), 8<<20)
	if err := be.Save(ctx, repo.Handle{Type: repo.KeyFile, Name: repo.Hash(huge).String()}, huge); err != nil {
		t.Fatal(err)
	}
	if _, err := repo.Open(ctx, be, "pw", repo.Options{}); err != nil {
		t.Fatalf("open with a huge junk key file beside the real one: %v", err)
	}
	_, err := repo.Open(ctx, be, "wrong", repo.Options{})
	if !errors.Is(err, repo.ErrWrongPassword) || !strings.Contains(err.Error(), "size limit") {
		t.Fatalf("wrong password: %v", err)
	}
	_ = dir
}

// A huge file planted in the repository (here a sparse terabyte) is
// reported as corrupt, not allocated: reading it whole would end the
// process with "out of memory" and a stack trace.
func TestLoadRefusesHugeFile(t *testing.T) {
	be, dir := newBackend(t)
	name := strings.Repeat("ab", 32)
	p := filepath.Join(dir, "snapshots", name)
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(1 << 40); err != nil {
		f.Close()
		t.Skipf("cannot make a sparse terabyte here: %v", err)
	}
	f.Close()
	_, err = be.Load(context.Background(), repo.Handle{Type: repo.SnapshotFile, Name: name}, 0, 0)
	if !errors.Is(err, repo.ErrCorrupt) || !strings.Contains(err.Error(), "snapshots/"+name) {
		t.Fatalf("load of a 1 TiB file: %v", err)
	}
}

// TestNonRegularObjects: a symlink under an object's name (to a file, or a
// data/xx directory moved to another disk) is followed and reads like the
// file. Anything else there (a directory, a FIFO, a dangling symlink)
// fails the listing and the read, naming it, and is never "not found"
// (prune would take a snapshot for absent and delete its data); the FIFO
// does not block.
func TestNonRegularObjects(t *testing.T) {
	be, dir := newBackend(t)
	ctx := context.Background()
	elsewhere := t.TempDir()
	data := []byte("snapshot document")
	linked := repo.Hash(data).String()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(filepath.Join(elsewhere, "doc"), data, 0o600))
	snaps := filepath.Join(dir, string(repo.SnapshotFile))
	must(os.Symlink(filepath.Join(elsewhere, "doc"), filepath.Join(snaps, linked)))
	list := func() (map[string]int64, error) {
		listed := map[string]int64{}
		err := be.List(ctx, repo.SnapshotFile, func(name string, size int64) error { listed[name] = size; return nil })
		return listed, err
	}
	if listed, err := list(); err != nil || len(listed) != 1 || listed[linked] != int64(len(data)) {
		t.Errorf("listing with a symlinked document: %v, %v", listed, err)
	}
	if got, err := be.Load(ctx, repo.Handle{Type: repo.SnapshotFile, Name: linked}, 0, 0); err != nil || string(got) != string(data) {
		t.Errorf("Load through a symlink: %q, %v", got, err)
	}

	bad := strings.Repeat("d1", 32)
	p := filepath.Join(snaps, bad)
	for _, c := range []struct {
		what string
		make func() error
	}{
		{"a directory", func() error { return os.Mkdir(p, 0o700) }},
		{"a FIFO", func() error { return unix.Mkfifo(p, 0o600) }},
		{"does not exist", func() error { return os.Symlink(filepath.Join(elsewhere, "gone"), p) }},
	} {
		must(c.make())
		if _, err := list(); !errors.Is(err, ErrNotRegular) || !strings.Contains(err.Error(), "snapshots/"+bad) || !strings.Contains(err.Error(), c.what) {
			t.Errorf("listing with %s under an object name: %v", c.what, err)
		}
		h := repo.Handle{Type: repo.SnapshotFile, Name: bad}
		if _, err := be.Load(ctx, h, 0, 0); !errors.Is(err, ErrNotRegular) || errors.Is(err, repo.ErrNotFound) {
			t.Errorf("Load of %s: %v, want ErrNotRegular and not ErrNotFound", c.what, err)
		}
		if _, err := be.Stat(ctx, h); !errors.Is(err, ErrNotRegular) || errors.Is(err, repo.ErrNotFound) {
			t.Errorf("Stat of %s: %v, want ErrNotRegular and not ErrNotFound", c.what, err)
		}
		must(os.Remove(p))
	}

	// A data/xx directory that is a symlink to a directory elsewhere.
	pack := []byte("pack bytes")
	ph := repo.Handle{Type: repo.PackFile, Name: repo.Hash(pack).String()}
	moved := filepath.Join(elsewhere, "data-xx")
	must(os.Mkdir(moved, 0o700))
	must(os.WriteFile(filepath.Join(moved, ph.Name), pack, 0o600))
	sub := filepath.Join(dir, string(repo.PackFile), ph.Name[:2])
	must(os.RemoveAll(sub))
	must(os.Symlink(moved, sub))
	found := false
	must(be.List(ctx, repo.PackFile, func(name string, size int64) error {
		found = found || (name == ph.Name && size == int64(len(pack)))
		return nil
	}))
	if !found {
		t.Error("a pack in a symlinked data/xx directory is not listed")
	}
	if got, err := be.Load(ctx, ph, 2, 3); err != nil || string(got) != "ck " {
		t.Errorf("Load of a pack in a symlinked directory: %q, %v", got, err)
	}
}

// TestListMisplacedPack: a pack in a data/xx directory other than its
// name's is named with the move that puts it right, or as a second copy,
// rather than listed as a pack no read can find (check and repair went
// round in a loop) or left out (a copy held its space unseen).
func TestListMisplacedPack(t *testing.T) {
	be, dir := newBackend(t)
	ctx := context.Background()
	pack := []byte("pack bytes")
	h := repo.Handle{Type: repo.PackFile, Name: repo.Hash(pack).String()}
	if err := be.Save(ctx, h, pack); err != nil {
		t.Fatal(err)
	}
	right, _ := be.path(h)
	other := "00"
	if h.Name[:2] == other {
		other = "01"
	}
	wrong := filepath.Join(dir, string(repo.PackFile), other, h.Name)
	if err := os.MkdirAll(filepath.Dir(wrong), 0o700); err != nil {
		t.Fatal(err)
	}
	list := func() error {
		return be.List(ctx, repo.PackFile, func(string, int64) error { return nil })
	}
	if err := os.Link(right, wrong); err != nil {
		t.Fatal(err)
	}
	if err := list(); err == nil || !strings.Contains(err.Error(), wrong+" is a second copy of "+right) {
		t.Errorf("listing with a second copy: %v", err)
	}
	if err := os.Remove(right); err != nil {
		t.Fatal(err)
	}
	if err := list(); err == nil || !strings.Contains(err.Error(), "mv "+wrong+" "+right) {
		t.Errorf("listing with a misplaced pack: %v", err)
	}
	if err := os.Rename(wrong, right); err != nil {
		t.Fatal(err)
	}
	if err := list(); err != nil {
		t.Errorf("listing after the move: %v", err)
	}
}

// TestListMissingTypeDirectory: a repository without its index/ (or
// snapshots/) directory is damaged, never listed as empty (prune would
// delete what they refer to); the error says how to repair it.
func TestListMissingTypeDirectory(t *testing.T) {
	be, dir := newBackend(t)
	if err := os.Remove(filepath.Join(dir, string(repo.IndexFile))); err != nil {
		t.Fatal(err)
	}
	err := be.List(context.Background(), repo.IndexFile, func(string, int64) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "no index/ directory") || !strings.Contains(err.Error(), "repair index --from-packs") {
		t.Errorf("List of a missing index/: %v", err)
	}
}

// TestOpenAndCreateOnAFile: a repository location that is a regular file is
// "no repository" for Open, and a clear refusal for Create.
func TestOpenAndCreateOnAFile(t *testing.T) {
	f := filepath.Join(t.TempDir(), "afile")
	if err := os.WriteFile(f, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(f); !errors.Is(err, repo.ErrNoRepository) || !strings.Contains(err.Error(), "is a file") {
		t.Errorf("Open of a file: %v", err)
	}
	if _, err := Create(f); err == nil || !strings.Contains(err.Error(), "is a file, not a directory") {
		t.Errorf("Create on a file: %v", err)
	}
	// Below a file: what to do, not the bare ENOTDIR.
	if _, err := Create(filepath.Join(f, "repo")); err == nil || !strings.Contains(err.Error(), "a directory on the way to it is a file: give a path whose parents are directories") {
		t.Errorf("Create below a file: %v", err)
	}
}

// TestCreateErrorSaysWhatToDo: the usual causes of a failed init name
// the fix.
func TestCreateErrorSaysWhatToDo(t *testing.T) {
	for err, want := range map[error]string{
		syscall.EACCES: "may not write there: choose a directory it may write to",
		syscall.ENOSPC: "the file system is full",
		syscall.EIO:    "create repository /srv/r: mkdir /srv/r: input/output error",
	} {
		got := createError("/srv/r", &os.PathError{Op: "mkdir", Path: "/srv/r", Err: err}).Error()
		if !strings.Contains(got, want) || !strings.HasPrefix(got, "create repository /srv/r: mkdir /srv/r: ") {
			t.Errorf("%v: %s", err, got)
		}
	}
}

// TestOutOfDescriptorsIsTransient: a file that cannot be opened because
// the process ran out of descriptors is no damage: the error is transient
// (retried; then "not answered", no verdict), and says what to raise
// (check called such files damaged; found by an exploratory test).
func TestOutOfDescriptorsIsTransient(t *testing.T) {
	b, _ := newBackend(t)
	for _, errno := range []syscall.Errno{syscall.EMFILE, syscall.ENFILE} {
		err := b.shown(&fs.PathError{Op: "open", Path: "data/00/00", Err: errno})
		if !errors.Is(err, repo.ErrTransient) || !errors.Is(err, errno) || !strings.Contains(err.Error(), "ulimit -n") {
			t.Errorf("%v: %v", errno, err)
		}
	}
	if err := b.shown(&fs.PathError{Op: "open", Path: "data/00/00", Err: syscall.EIO}); errors.Is(err, repo.ErrTransient) {
		t.Errorf("EIO made transient: %v", err)
	}
}
