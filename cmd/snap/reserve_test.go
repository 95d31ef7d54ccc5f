package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/snap-backup/snap/index"
	"github.com/snap-backup/snap/repo"
)

// smallFS mounts a tmpfs of the given size under the test's directory: a
// real file system that fills up. Mounting needs root (CI runs as root);
// elsewhere the test cannot run here, and says so.
func smallFS(t *testing.T, dir, size string) string {
	t.Helper()
	mnt := filepath.Join(dir, "fs")
	must(t, os.MkdirAll(mnt, 0o700))
	mountOrSkip(t, "tmpfs", mnt, "tmpfs", 0, "size="+size+",mode=0700", "a small file system")
	return mnt
}

// mountOrSkip mounts source on target (unmounted when the test ends).
// Mounting needs root (CI runs as root): without CAP_SYS_ADMIN the test
// cannot run here, and says so; any other failure fails it.
func mountOrSkip(t *testing.T, source, target, fstype string, flags uintptr, data, what string) {
	t.Helper()
	if err := unix.Mount(source, target, fstype, flags, data); err != nil {
		if errors.Is(err, unix.EPERM) {
			t.Skipf("mounting %s needs CAP_SYS_ADMIN (root outside a container): %v", what, err)
		}
		t.Fatalf("mount %s: %v", what, err)
	}
	t.Cleanup(func() { _ = unix.Unmount(target, unix.MNT_DETACH) })
}

// newUninitRepoOnSmallFS is newUninitRepo with the repository on a tmpfs
// of the given size (smallFS), whose mount point it also returns.
func newUninitRepoOnSmallFS(t *testing.T, size string) (*testRepo, string) {
	t.Helper()
	tr := newUninitRepo(t)
	mnt := smallFS(t, tr.dir, size)
	tr.repo = filepath.Join(mnt, "repo")
	tr.env[0] = "SNAP_REPOSITORY=" + tr.repo // newUninitRepo put it first
	return tr, mnt
}

// fillUp writes a file until the file system is full.
func fillUp(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	must(t, err)
	defer f.Close()
	buf := make([]byte, 64<<10)
	for {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("fill the file system: %v", err)
			}
			return
		}
	}
}

// fillUpTo fills the file system until about free bytes are left.
func fillUpTo(t *testing.T, path string, free uint64) {
	t.Helper()
	var st unix.Statfs_t
	must(t, unix.Statfs(filepath.Dir(path), &st))
	avail := st.Bavail * uint64(st.Bsize)
	if avail <= free {
		return
	}
	f, err := os.Create(path)
	must(t, err)
	defer f.Close()
	buf := make([]byte, 64<<10)
	for left := avail - free; left > 0; {
		n := min(left, uint64(len(buf)))
		if _, err := f.Write(buf[:n]); err != nil {
			t.Fatalf("fill the file system: %v", err)
		}
		left -= n
	}
}

// TestSpaceReserve: on a full disk a create fails with a message saying
// what to do, and earlier snapshots stay intact; forget and prune run on
// the space reserve that init set aside; prune puts the reserve back once
// it has freed room; without a reserve, forget cannot even take its lock.
func TestSpaceReserve(t *testing.T) {
	t.Parallel()
	tr, mnt := newUninitRepoOnSmallFS(t, "24m")
	tr.mustRun("init", "--kdf-memory", "8", "--kdf-time", "1", "--reserve", "4MiB")
	reserve := filepath.Join(tr.repo, "reserve.4194304")
	if fi, err := os.Stat(reserve); err != nil || fi.Size() != 4<<20 {
		t.Fatalf("init --reserve 4MiB: %v %v", fi, err)
	}
	src := filepath.Join(tr.dir, "src")
	writeRandom(t, filepath.Join(src, "a"), 1, 6<<20)
	tr.create(src)
	must(t, os.Remove(filepath.Join(src, "a")))
	writeRandom(t, filepath.Join(src, "b"), 2, 6<<20)
	last := tr.create(src)
	want := describe(t, src)

	fillUp(t, filepath.Join(mnt, "filler"))
	writeRandom(t, filepath.Join(src, "c"), 3, 1<<20)
	res := tr.run("create", src)
	if res.code == 0 || !strings.Contains(res.stderr, "disk is full") || !strings.Contains(res.stderr, "snap forget") {
		t.Fatalf("create on a full disk: exit %d\n%s", res.code, res.stderr)
	}
	// Said once (the pre-flight's advice was given again by create's).
	if n := strings.Count(res.stderr, "disk is full"); n != 1 {
		t.Errorf("the advice is given %d times:\n%s", n, res.stderr)
	}
	if n := len(tr.listJSON()); n != 2 {
		t.Fatalf("%d snapshots after a create on a full disk, want 2", n)
	}

	// A dry run frees nothing, so it leaves the reserve alone.
	for _, args := range [][]string{{"forget", "--keep-last", "1", "--dry-run"}, {"prune", "--dry-run"}} {
		if res := tr.run(args...); res.code == 0 || !strings.Contains(res.stderr, "disk is full") {
			t.Errorf("%v on a full disk: exit %d\n%s", args, res.code, res.stderr)
		}
	}
	if fi, err := os.Stat(reserve); err != nil || fi.Size() != 4<<20 {
		t.Fatalf("after dry runs the reserve is %v %v, want it untouched", fi, err)
	}
	// Reading needs no space, only its lock does: the advice is
	// --no-lock, and with it a restore and a check run.
	early := filepath.Join(tr.dir, "early")
	if res := tr.run("restore", "latest", "--target", early); res.code == 0 || !strings.Contains(res.stderr, "so restore cannot write its lock: add --no-lock") {
		t.Errorf("restore on a full disk: exit %d, want the advice to add --no-lock\n%s", res.code, res.stderr)
	}
	tr.mustRun("restore", "latest", "--target", early, "--no-lock")
	tr.mustRun("check", "--no-lock")
	res = tr.mustRun("forget", "--keep-last", "1")
	if !strings.Contains(res.stderr, "released its 4.0 MiB space reserve so that forget can run") {
		t.Errorf("forget on a full disk did not say it used the reserve:\n%s", res.stderr)
	}
	tr.mustRun("prune", "--instant", "--max-unused", "100")
	if fi, err := os.Stat(reserve); err != nil || fi.Size() != 4<<20 {
		t.Errorf("after prune freed 6 MiB the reserve is %v %v, want 4 MiB again", fi, err)
	}
	sns := tr.listJSON()
	if len(sns) != 1 || sns[0].ID != last.SnapshotID {
		t.Fatalf("snapshots after forget and prune: %+v", sns)
	}
	tr.mustRun("check", "--read-data")
	target := filepath.Join(tr.dir, "target")
	tr.mustRun("restore", "latest", "--target", target, "--exclude", "c")
	got := describe(t, filepath.Join(target, src))
	delete(got, "c")
	delete(want, "c")
	compareEntries(t, "restore after forget and prune on a full disk", want, got)

	// Without a reserve, a full disk leaves forget no room for its lock.
	tr2, mnt2 := newUninitRepoOnSmallFS(t, "8m")
	tr2.mustRun("init", "--kdf-memory", "8", "--kdf-time", "1", "--reserve", "0")
	tr2.create(src)
	fillUp(t, filepath.Join(mnt2, "filler"))
	res = tr2.run("forget", "--keep-last", "1")
	if res.code == 0 || !strings.Contains(res.stderr, "no space reserve is left") || !strings.Contains(res.stderr, "outside the repository") {
		t.Errorf("forget on a full disk without a reserve: exit %d\n%s", res.code, res.stderr)
	}
	// A create that runs out of room while it stores data says what to do.
	must(t, os.Remove(filepath.Join(mnt2, "filler")))
	fillUpTo(t, filepath.Join(mnt2, "filler"), 512<<10)
	writeRandom(t, filepath.Join(src, "big"), 4, 2<<20)
	res = tr2.run("create", src)
	if res.code == 0 || !strings.Contains(res.stderr, "no space left") || !strings.Contains(res.stderr, "snap forget") {
		t.Errorf("create that fills the disk: exit %d\n%s", res.code, res.stderr)
	}
	// Room for the lock but not for a document: tag and key add say that
	// the disk is full and what to do, and that nothing changed (they
	// said only "no space left on device"; found by an exploratory test).
	must(t, os.Remove(filepath.Join(mnt2, "filler")))
	must(t, os.WriteFile(filepath.Join(mnt2, "page"), make([]byte, 4096), 0o600))
	fillUp(t, filepath.Join(mnt2, "filler"))
	must(t, os.Remove(filepath.Join(mnt2, "page")))
	for _, c := range []struct {
		args []string
		said string
	}{
		{[]string{"tag", "latest", "--add", "x"}, "keeps its tags"},
		// key add takes no lock: the disk full to the last page.
		{[]string{"key", "add", "--new-password-command", "echo other-password", "--kdf-memory", "8", "--kdf-time", "1"}, "the keys are as they were"},
	} {
		if c.args[0] == "key" {
			fillUp(t, filepath.Join(mnt2, "last"))
		}
		res = tr2.run(c.args...)
		if res.code == 0 || !strings.Contains(res.stderr, "the repository's disk is full") || !strings.Contains(res.stderr, "snap forget") || !strings.Contains(res.stderr, c.said) {
			t.Errorf("%v on a full disk: exit %d\n%s", c.args, res.code, res.stderr)
		}
	}
}

// TestCacheDiskFull: a cache whose disk is full is no reason for a restore
// (or a list, a create) to fail: the run builds a temporary cache elsewhere
// and says why, and a cache file cut short by the full disk is removed, not
// left for the next run to call damaged. Before, every command but check
// failed with "open index cache …: no space left on device".
func TestCacheDiskFull(t *testing.T) {
	t.Parallel()
	tr := newTestRepo(t)
	src := filepath.Join(tr.dir, "src")
	writeFile(t, filepath.Join(src, "f"), []byte("contents"))
	tr.mustRun("create", src)
	full := smallFS(t, tr.dir, "256k")
	fillUp(t, filepath.Join(full, "filler"))
	env := []string{"SNAP_CACHE_DIR=" + filepath.Join(full, "cache")}
	for _, args := range [][]string{{"ls", "latest"}, {"restore", "latest", "--target", filepath.Join(tr.dir, "out")}, {"create", src}} {
		res := tr.runEnv(env, nil, args...)
		if res.code != 0 || !strings.Contains(res.stderr, "no space left on its disk: using a temporary one") {
			t.Errorf("%s with the cache's disk full: exit %d\n%s", args[0], res.code, res.stderr)
		}
	}
	if b, err := os.ReadFile(filepath.Join(tr.dir, "out", src, "f")); err != nil || string(b) != "contents" {
		t.Errorf("restored: %q, %v", b, err)
	}
	must(t, os.Remove(filepath.Join(full, "filler")))
	res := tr.runEnv(env, nil, "list")
	if res.code != 0 || strings.Contains(res.stderr, "damaged") || strings.Contains(res.stderr, "temporary") {
		t.Errorf("list once there is room again: exit %d\n%s", res.code, res.stderr)
	}
}

// TestRestoreTargetFull: a restore into a disk that fills up stops at the
// first file that does not fit, with one error naming the target and what
// to do (it printed an error for every later file, and a summary that
// looked like success); after space is freed, a restore with --overwrite
// if-changed completes it exactly.
func TestRestoreTargetFull(t *testing.T) {
	t.Parallel()
	tr := newTestRepo(t)
	src := filepath.Join(tr.dir, "src")
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range 40 {
		b := make([]byte, 100<<10)
		for j := range b {
			b[j] = byte(rng.Uint32())
		}
		writeFile(t, filepath.Join(src, fmt.Sprintf("f%02d", i)), b)
	}
	tr.mustRun("create", src)
	target := smallFS(t, tr.dir, "2m")
	res := tr.run("restore", "latest", "--target", target)
	if res.code != exitFatal || strings.Count(res.stderr, "no space left") != 1 || !strings.Contains(res.stderr, "restore target "+target+" is full") {
		t.Errorf("restore into a full disk: exit %d, want 1 and one error\n%s", res.code, res.stderr)
	}
	// The files left partly written are the one the error names and as
	// many more as it counts (it undercounted them: found by an
	// exploratory test).
	partly := 0
	for i := range 40 {
		name := fmt.Sprintf("f%02d", i)
		got, err := os.ReadFile(filepath.Join(target, src, name))
		if want, _ := os.ReadFile(filepath.Join(src, name)); err == nil && !bytes.Equal(got, want) {
			partly++
		}
	}
	counted := 0
	if m := regexp.MustCompile(`(\d+) files? more left partly written`).FindStringSubmatch(res.stderr); m != nil {
		counted, _ = strconv.Atoi(m[1])
	}
	if partly != counted+1 {
		t.Errorf("%d files partly written, the error names one and counts %d more:\n%s", partly, counted, res.stderr)
	}
	must(t, unix.Mount("", target, "", unix.MS_REMOUNT, "size=16m"))
	tr.mustRun("restore", "latest", "--target", target, "--overwrite", "if-changed")
	if out, err := exec.Command("diff", "-r", src, filepath.Join(target, src)).CombinedOutput(); err != nil {
		t.Errorf("after the second restore: %v\n%s", err, out)
	}
}

// TestRestoreTargetReadOnly: a restore into a read-only file system stops
// at the first entry, with one error saying so and what to do; it printed
// an error for every entry (found by an exploratory test).
func TestRestoreTargetReadOnly(t *testing.T) {
	t.Parallel()
	tr := newTestRepo(t)
	src := filepath.Join(tr.dir, "src")
	for i := range 30 {
		writeFile(t, filepath.Join(src, fmt.Sprintf("d%02d", i), "f"), []byte("x"))
	}
	tr.mustRun("create", src)
	target := smallFS(t, tr.dir, "2m")
	// Restored once, then read-only: the directories are there, and each
	// file failed on its own.
	tr.mustRun("restore", "latest", "--target", target)
	must(t, unix.Mount("", target, "", unix.MS_REMOUNT|unix.MS_RDONLY, ""))
	res := tr.run("restore", "latest", "--target", target)
	if res.code != exitFatal || strings.Count(res.stderr, "read-only file system") != 2 || !strings.Contains(res.stderr, "restore target "+target+" is on a read-only file system") || !strings.Contains(res.stderr, "remount it read-write") {
		t.Errorf("restore into a read-only file system: exit %d, want 1 and one error\n%s", res.code, res.stderr)
	}
	// A target to be made there says the same (found by a re-test).
	res = tr.run("restore", "latest", "--target", filepath.Join(target, "new"))
	if res.code != exitFatal || !strings.Contains(res.stderr, "is on a read-only file system") || !strings.Contains(res.stderr, "remount it read-write") {
		t.Errorf("restore into a new directory on a read-only file system: exit %d\n%s", res.code, res.stderr)
	}
}

// TestPruneRepackNearlyFullDisk: a prune whose repack does not fit in what
// is free releases the space reserve first. It was released only below a
// quarter of its size, so a prune with a little more free failed every
// night ("no space left on device"), while on a completely full disk the
// same prune worked.
func TestPruneRepackNearlyFullDisk(t *testing.T) {
	t.Parallel()
	tr, mnt := newUninitRepoOnSmallFS(t, "40m")
	tr.mustRun("init", "--kdf-memory", "8", "--kdf-time", "1", "--reserve", "4MiB")
	src := filepath.Join(tr.dir, "src")
	writeRandom(t, filepath.Join(src, "a"), 1, 3<<20)
	writeRandom(t, filepath.Join(src, "b"), 2, 2<<20)
	tr.create(src)
	must(t, os.Remove(filepath.Join(src, "a")))
	tr.create(src)
	want := describe(t, src)
	tr.mustRun("forget", "--keep-last", "1")
	// More free than a quarter of the reserve, less than the repack of b
	// (which fits with the reserve's room).
	fillUpTo(t, filepath.Join(mnt, "filler"), 1536<<10)
	res := tr.run("prune", "--instant", "--max-unused", "0")
	if res.code != 0 || !strings.Contains(res.stderr, "released its 4.0 MiB space reserve so that prune can run") {
		t.Fatalf("prune whose repack needs the reserve: exit %d\n%s", res.code, res.stderr)
	}
	tr.mustRun("check", "--read-data")
	target := filepath.Join(tr.dir, "target")
	tr.mustRun("restore", "latest", "--target", target)
	compareEntries(t, "restore after the repack", want, describe(t, filepath.Join(target, src)))
}

// TestRunJobLockOnReadOnlyCache: a job whose lock file cannot be made (its
// cache is on a read-only file system) still runs, with a warning, as its
// index cache does with a temporary one: a backup must not stop for want
// of its lock (found in review).
func TestRunJobLockOnReadOnlyCache(t *testing.T) {
	t.Parallel()
	tr := newTestRepo(t)
	src := filepath.Join(tr.dir, "src")
	writeFile(t, filepath.Join(src, "f"), []byte("x"))
	full := smallFS(t, tr.dir, "256k")
	must(t, unix.Mount("", full, "", unix.MS_REMOUNT|unix.MS_RDONLY, ""))
	cfg := tr.writeConfig(`[jobs.app]
paths = ["` + src + `"]
`)
	res := tr.runConfig([]string{"SNAP_CACHE_DIR=" + filepath.Join(full, "cache"), "XDG_RUNTIME_DIR="}, "run", "--config", cfg)
	if res.code != 0 || tr.snapshotCount() != 1 {
		t.Errorf("run with a read-only cache: exit %d, %d snapshots\n%s", res.code, tr.snapshotCount(), res.stderr)
	}
}

// TestCacheDirectoryCannotBeMade: a cache directory that cannot even be
// created for want of room (no inode left) gives a temporary cache too
// (found in review: only a full disk under an existing directory did).
func TestCacheDirectoryCannotBeMade(t *testing.T) {
	t.Parallel()
	tr := newTestRepo(t)
	src := filepath.Join(tr.dir, "src")
	writeFile(t, filepath.Join(src, "f"), []byte("contents"))
	tr.mustRun("create", src)
	full := smallFS(t, tr.dir, "1m,nr_inodes=16")
	for i := 0; ; i++ {
		f, err := os.Create(filepath.Join(full, fmt.Sprint(i)))
		if err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			break
		}
		f.Close()
	}
	res := tr.runEnv([]string{"SNAP_CACHE_DIR=" + filepath.Join(full, "cache")}, nil, "ls", "latest")
	if res.code != 0 || !strings.Contains(res.stderr, "no space left on its disk: using a temporary one") {
		t.Errorf("ls with a cache directory that cannot be made: exit %d\n%s", res.code, res.stderr)
	}
}

// TestCacheDiskFillsDuringCreate: the cache's disk filling up while a
// create adds its segments to the cache is named as that disk, never as
// the repository's (whose advice, forget and prune, would delete backups
// for nothing); no snapshot is saved and the repository stays consistent
// (found by a re-test).
func TestCacheDiskFillsDuringCreate(t *testing.T) {
	t.Parallel()
	tr := newTestRepo(t)
	src := filepath.Join(tr.dir, "src")
	writeFile(t, filepath.Join(src, "first"), []byte("x"))
	full := smallFS(t, tr.dir, "2m")
	env := []string{"SNAP_CACHE_DIR=" + filepath.Join(full, "cache")}
	if res := tr.runEnv(env, nil, "create", src); res.code != 0 {
		t.Fatalf("first create: exit %d\n%s", res.code, res.stderr)
	}
	for i := range 3000 {
		writeFile(t, filepath.Join(src, "many", fmt.Sprint(i)), fmt.Appendf(nil, "file %d", i))
	}
	fillUp(t, filepath.Join(full, "filler"))
	res := tr.runEnv(env, nil, "create", src)
	if res.code == 0 {
		t.Fatalf("the cache took the new segment on a full disk (bbolt had room in its file): the test shows nothing\n%s", res.stderr)
	}
	if !strings.Contains(res.stderr, "the disk of the index cache is full (not the repository's)") || strings.Contains(res.stderr, "snap forget") {
		t.Errorf("create with the cache's disk filling: exit %d\n%s", res.code, res.stderr)
	}
	tr.mustRun("check")
}

// TestReserveHint: a prune whose space reserve does not fit again says it
// only marked packs only when it did mark some and deleted none (it said
// so after marking none: found by an exploratory test).
func TestReserveHint(t *testing.T) {
	id := repo.ID{1}
	for _, c := range []struct {
		st      *index.PruneStats
		instant bool
		hint    bool
	}{
		{&index.PruneStats{MarkedPacks: []repo.ID{id}}, false, true},
		{&index.PruneStats{}, false, false},
		{&index.PruneStats{MarkedPacks: []repo.ID{id}, DeletedPacks: []repo.ID{id}}, false, false},
		{&index.PruneStats{MarkedPacks: []repo.ID{id}}, true, false},
		{nil, false, false},
	} {
		if got := reserveHint(c.st, c.instant) != ""; got != c.hint {
			t.Errorf("reserveHint(%+v, instant %v): hint %v, want %v", c.st, c.instant, got, c.hint)
		}
	}
}

// TestReserveOnASmallFileSystem: a repository on a file system too small
// for its reserve (20 MiB, the default 64 MiB reserve) is told to take a
// smaller one, not to forget and prune (which cannot make room for it),
// and a job's run says so once, not at each step (found by an
// exploratory test: three times, with that advice).
func TestReserveOnASmallFileSystem(t *testing.T) {
	tr, _ := newUninitRepoOnSmallFS(t, "20m")
	res := tr.mustRun("init", "--kdf-memory", "8", "--kdf-time", "1")
	if !strings.Contains(res.stderr, "give it a smaller one") || !strings.Contains(res.stderr, "touch reserve.1048576") {
		t.Errorf("init on a 20 MiB file system:\n%s", res.stderr)
	}
	src := filepath.Join(tr.dir, "src")
	writeFile(t, filepath.Join(src, "a"), []byte("a"))
	cfg := tr.writeConfig(`[jobs.app]
paths = ["` + src + `"]
keep = { last = 1, prune = true }

[jobs.other]
paths = ["` + src + `/a"]
keep = { last = 1, prune = true }
`)
	res = tr.runConfig(nil, "run", "--config", cfg)
	if res.code != 0 || strings.Count(res.stderr, "space reserve is not in place") != 1 || strings.Contains(res.stderr, "snap forget") {
		t.Errorf("run on a 20 MiB file system: exit %d, want the reserve's warning once for both jobs, without forget and prune as advice\n%s", res.code, res.stderr)
	}
}

// TestSpaceReserveRoomKept: a forget, and a prune that writes nothing,
// leave the space reserve in place on a nearly full disk; once a prune has
// released it, a create does not write into its room (it fails as on a
// full disk and says what is kept), so the forget and prune after it can
// still run. Before, the reserve went at every forget on such a disk and
// stayed released, and the next night's create filled its room (found by
// an exploratory test, over three nights of one job).
func TestSpaceReserveRoomKept(t *testing.T) {
	t.Parallel()
	tr, mnt := newUninitRepoOnSmallFS(t, "48m")
	tr.mustRun("init", "--kdf-memory", "8", "--kdf-time", "1", "--reserve", "8MiB")
	reserve := filepath.Join(tr.repo, "reserve.8388608")
	held := func() int64 {
		fi, err := os.Stat(reserve)
		must(t, err)
		return fi.Size()
	}
	src := filepath.Join(tr.dir, "src")
	writeRandom(t, filepath.Join(src, "a"), 1, 3<<20)
	tr.create(src)
	must(t, os.Remove(filepath.Join(src, "a")))
	writeRandom(t, filepath.Join(src, "b"), 2, 1<<20)
	tr.create(src)
	fillUpTo(t, filepath.Join(mnt, "filler"), 1<<20)

	// Nothing to forget, nothing to prune, and a forget that only
	// deletes: none of them needs the reserve.
	tr.mustRun("forget", "--keep-last", "5")
	tr.mustRun("prune")
	tr.mustRun("forget", "--keep-last", "1")
	if n := held(); n != 8<<20 {
		t.Fatalf("after a forget and a prune that wrote nothing the reserve holds %d bytes, want all 8 MiB", n)
	}
	// This prune marks a's pack: it writes a segment, with less than a
	// quarter of the reserve free.
	res := tr.mustRun("prune")
	if !strings.Contains(res.stderr, "released its 8.0 MiB space reserve so that prune can run") || held() != 0 {
		t.Fatalf("a prune that writes on a nearly full disk did not release the reserve (%d bytes held):\n%s", held(), res.stderr)
	}

	// The create may not take the reserve's room: it stops as on a full
	// disk, and the room is there for the cleanup.
	writeRandom(t, filepath.Join(src, "c"), 3, 4<<20)
	res = tr.run("create", src)
	if res.code != exitFatal || !strings.Contains(res.stderr, "of which the 8.0 MiB of the released space reserve are kept for forget and prune") ||
		!strings.Contains(res.stdout+res.stderr, "8.0 MiB are kept for forget and prune") || !strings.Contains(res.stderr, "snap forget") {
		t.Fatalf("create into the room of a released reserve: exit %d\n%s", res.code, res.stderr)
	}
	if n := len(tr.listJSON()); n != 1 {
		t.Fatalf("%d snapshots after the refused create, want 1", n)
	}
	var st unix.Statfs_t
	must(t, unix.Statfs(mnt, &st))
	if free := st.Bavail * uint64(st.Bsize); free < 8<<20 {
		t.Fatalf("the refused create left %d bytes free, less than the reserve's room", free)
	}
	// Something else takes part of the room: a create has nothing to
	// store into, and says so before it reads anything.
	fillUpTo(t, filepath.Join(mnt, "other"), 4<<20)
	res = tr.run("create", src)
	if res.code != exitFatal || !strings.Contains(res.stderr, "all of it kept for forget and prune while the space reserve (8.0 MiB) is released") ||
		!strings.Contains(res.stderr, "nothing was read") || !strings.Contains(res.stdout+res.stderr, "all of it kept for forget and prune (the space reserve is released") {
		t.Fatalf("create with less free than the reserve's room: exit %d\n%s%s", res.code, res.stdout, res.stderr)
	}
	tr.mustRun("forget", "--keep-last", "1")
	tr.mustRun("prune", "--instant", "--max-unused", "100")
	tr.mustRun("check", "--read-data")
}

// TestRunPrunesAfterFullDiskCreate: a job whose create fails on a full
// disk still runs its prune, which deletes what an earlier night marked
// and what the failed create uploaded; its forget stays skipped, and the
// job fails with the create's error. Every step after a failed create was
// skipped, so a job on a nearly full disk stayed stuck until an admin came.
func TestRunPrunesAfterFullDiskCreate(t *testing.T) {
	t.Parallel()
	tr, mnt := newUninitRepoOnSmallFS(t, "48m")
	tr.mustRun("init", "--kdf-memory", "8", "--kdf-time", "1", "--reserve", "4MiB")
	src := filepath.Join(tr.dir, "src")
	cfg := tr.writeConfig(`[jobs.app]
paths = ["` + src + `"]
keep = { last = 1, prune = true, delete_delay = "0" }
`)
	night := func(i int) result {
		for _, n := range []string{"a", "b", "c"} {
			os.Remove(filepath.Join(src, n))
		}
		writeRandom(t, filepath.Join(src, string(rune('a'+i))), uint64(i+1), 6<<20)
		return tr.runConfig(nil, "run", "--json", "--config", cfg)
	}
	for i := range 2 {
		if res := night(i); res.code != 0 {
			t.Fatalf("night %d: exit %d\n%s", i, res.code, res.stderr)
		}
	}
	// Night 2's prune marked night 1's pack; the disk then fills.
	fillUpTo(t, filepath.Join(mnt, "filler"), 2<<20)
	var before unix.Statfs_t
	must(t, unix.Statfs(mnt, &before))
	res := night(2)
	var job struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Steps  []struct {
			Step, Status string
		} `json:"steps"`
	}
	for _, line := range strings.Split(res.stdout, "\n") {
		if strings.Contains(line, `"type":"job"`) {
			must(t, json.Unmarshal([]byte(line), &job))
		}
	}
	steps := fmt.Sprint(job.Steps)
	if res.code != exitFatal || job.Status != "failed" || !strings.Contains(job.Error, "create") || !strings.Contains(job.Error, "disk") ||
		steps != "[{create failed} {forget skipped} {prune ok}]" {
		t.Fatalf("night 3 on a full disk: exit %d, %s %q %s\n%s", res.code, job.Status, job.Error, steps, res.stderr)
	}
	var after unix.Statfs_t
	must(t, unix.Statfs(mnt, &after))
	if freed := int64(after.Bavail-before.Bavail) * after.Bsize; freed < 5<<20 {
		t.Errorf("the prune after the failed create freed %d bytes, want night 1's pack (6 MiB)", freed)
	}
	if n := len(tr.listJSON()); n != 1 {
		t.Errorf("%d snapshots, want night 2's", n)
	}
	tr.mustRun("check", "--read-data")
}

// TestRunDiscardsFailedCreatesPacks: what a create that found the disk
// full stored is deleted by the end of its run, not marked for the next
// night: the packs it had not indexed by the create itself, those it had
// (here the dictionary pack for small files, indexed at once) by the job's
// prune, under the exclusive lock. Marked with the 12-hour delay, they
// held the room, and the next night's create met the same full disk
// (found by an exploratory test). With another snap process running, the
// prune marks them as before and says so.
func TestRunDiscardsFailedCreatesPacks(t *testing.T) {
	t.Parallel()
	tr, mnt := newUninitRepoOnSmallFS(t, "40m")
	tr.mustRun("init", "--kdf-memory", "8", "--kdf-time", "1", "--reserve", "4MiB")
	src := filepath.Join(tr.dir, "src")
	// Small files of shared text (a dictionary is built from them and
	// stored at once), and, a while later, a command's output of more
	// than the disk holds.
	words := strings.Fields("request served handler func log Printf error return http ResponseWriter context value status write header json encode decode user session")
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 400 {
		var b strings.Builder
		for range 320 {
			b.WriteString(words[rng.IntN(len(words))])
			b.WriteByte(' ')
		}
		writeFile(t, filepath.Join(src, "a", fmt.Sprintf("f%03d.go", i)), []byte(b.String()))
	}
	big := filepath.Join(tr.dir, "big")
	writeRandom(t, big, 7, 48<<20)
	cfg := tr.writeConfig(`[jobs.app]
paths = ["` + src + `"]
commands = [{ name = "big", command = "sleep 2; cat ` + big + `" }]
keep = { last = 1, prune = true }
`)
	free := func() int64 {
		var st unix.Statfs_t
		must(t, unix.Statfs(mnt, &st))
		return int64(st.Bavail) * st.Bsize
	}
	discarded := func(out string) []string {
		for _, line := range strings.Split(out, "\n") {
			if !strings.Contains(line, `"step":"prune"`) || !strings.Contains(line, `"type":"summary"`) {
				continue
			}
			var sum struct {
				Discarded []string `json:"discarded_packs"`
				Marked    []string `json:"marked_packs"`
			}
			must(t, json.Unmarshal([]byte(line), &sum))
			if len(sum.Marked) > 0 {
				t.Errorf("the prune after the failed create marked %d packs: %s", len(sum.Marked), line)
			}
			return sum.Discarded
		}
		t.Fatalf("no prune summary:\n%s", out)
		return nil
	}
	before := free()
	res := tr.runConfig(nil, "run", "--json", "--config", cfg)
	if res.code != exitFatal || !strings.Contains(res.stdout, "no space left") {
		t.Fatalf("create on a full disk: exit %d\n%s%s", res.code, res.stdout, res.stderr)
	}
	if d := discarded(res.stdout); len(d) == 0 {
		t.Errorf("the prune deleted none of the failed create's indexed packs:\n%s", res.stdout)
	}
	// The index and the lock-free repository take some room of their
	// own; the failed create's packs (tens of MiB) are gone.
	if lost := before - free(); lost > 1<<20 {
		t.Errorf("the failed run left %d bytes behind", lost)
	}
	tr.mustRun("check", "--read-data")

	// With another process's lock (a backup on another host), they are
	// marked, and the warning says why and what deletes them.
	tr.plantLock(repo.LockInfo{Time: time.Now(), Created: time.Now(), Host: "db1", PID: 4242, Command: "create"})
	res = tr.runConfig(nil, "run", "--config", cfg)
	if res.code != exitFatal || !strings.Contains(res.stderr, "indexed are not deleted now: another snap process runs (pid 4242 on host db1)") {
		t.Fatalf("beside another process: exit %d\n%s", res.code, res.stderr)
	}
	must(t, os.Truncate(big, 1<<20))
	tr.mustRun("unlock", "--all")
	if res := tr.runConfig(nil, "run", "--config", cfg); res.code != 0 {
		t.Fatalf("the next night, with room: exit %d\n%s", res.code, res.stderr)
	}
	tr.mustRun("check", "--read-data")
}

// TestPruneMergeLeavesRoom: on a nearly full disk, prune merges no more
// small packs than leaves room for the backups until the merged packs'
// marks run out: a merge that took 13 MiB of the last 14 made the next
// create fail (found by an exploratory test). And a job's prune after its
// create found the disk full merges none.
func TestPruneMergeLeavesRoom(t *testing.T) {
	t.Parallel()
	tr, mnt := newUninitRepoOnSmallFS(t, "40m")
	tr.mustRun("init", "--kdf-memory", "8", "--kdf-time", "1", "--reserve", "4MiB")
	src := filepath.Join(tr.dir, "src")
	for i := range 40 {
		writeRandom(t, filepath.Join(src, fmt.Sprintf("r%d", i)), uint64(i), 250_000)
		tr.mustRun("create", "-q", src)
	}
	fillUpTo(t, filepath.Join(mnt, "filler"), 14<<20)
	res := tr.mustRun("prune", "--json")
	var st struct {
		SmallPacks  int   `json:"small_packs"`
		CopiedBytes int64 `json:"copied_bytes"`
	}
	must(t, json.Unmarshal(lastJSONLine(res.stdout), &st))
	if st.CopiedBytes > 5<<20 {
		t.Errorf("the prune merged %d small packs, %d bytes, with 14 MiB free", st.SmallPacks, st.CopiedBytes)
	}
	writeRandom(t, filepath.Join(src, "big"), 99, 4_000_000)
	if res := tr.run("create", src); res.code != 0 {
		t.Errorf("the create after the prune: exit %d\n%s", res.code, res.stderr)
	}
}

// TestCopyCacheDiskFull: the cache's disk filling up under a copy (its map
// of copied blobs cannot grow) is named as the cache's disk: not the
// target's, whose snapshots the advice said to forget, and whose packs sent
// so far were deleted (found by an exploratory test).
func TestCopyCacheDiskFull(t *testing.T) {
	t.Parallel()
	tr := newTestRepo(t)
	src := filepath.Join(tr.dir, "src")
	writeFile(t, filepath.Join(src, "first"), []byte("x"))
	tr.mustRun("create", src)
	target := filepath.Join(tr.dir, "target")
	tr.runEnv([]string{"SNAP_REPOSITORY=" + target}, nil, "init", "--kdf-memory", "8", "--kdf-time", "1")
	full := smallFS(t, tr.dir, "3m")
	env := []string{"SNAP_CACHE_DIR=" + filepath.Join(full, "cache")}
	if res := tr.runEnv(env, nil, "copy", "--to", target); res.code != 0 {
		t.Fatalf("first copy: exit %d\n%s", res.code, res.stderr)
	}
	for i := range 6000 {
		writeFile(t, filepath.Join(src, "many", fmt.Sprint(i)), fmt.Appendf(nil, "file %d of many", i))
	}
	tr.mustRun("create", src) // with the test's own cache
	fillUp(t, filepath.Join(full, "filler"))
	res := tr.runEnv(env, nil, "copy", "--to", target)
	if res.code == 0 {
		t.Fatalf("the copy's map took 6000 blobs on a full disk: the test shows nothing\n%s", res.stderr)
	}
	if !strings.Contains(res.stderr, "the disk of the index cache is full (not the repository's)") || strings.Contains(res.stderr, "snap forget") ||
		strings.Contains(res.stderr, "were deleted") || strings.Contains(res.stderr, "target's disk is full") {
		t.Errorf("copy with the cache's disk filling: exit %d\n%s", res.code, res.stderr)
	}
	tr.runEnv([]string{"SNAP_REPOSITORY=" + target}, nil, "check")
	if res := tr.run("copy", "--to", target); res.code != 0 { // with a cache on a disk with room
		t.Errorf("copy again: exit %d\n%s", res.code, res.stderr)
	}
}
