package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/snap-backup/snap/index"
	"github.com/snap-backup/snap/repo"
)

// 'snap run' opens a job's session without a lock and takes the lock each
// step needs. Prune's safety argument needs a backup to read the index
// after it took its lock (docs/design.md): segments written between the
// open and the lock — a prune's marks, say — must be in the cache once the
// lock is held.
func TestRelockReadsTheIndexUnderTheLock(t *testing.T) {
	clearSnapEnv(t)
	tr := newTestRepo(t)
	writeFile(t, filepath.Join(tr.dir, "a", "f"), []byte("first"))
	tr.mustRun("create", filepath.Join(tr.dir, "a"))
	vars := map[string]string{}
	for _, kv := range tr.env {
		k, v, _ := strings.Cut(kv, "=")
		vars[k] = v
	}
	var out bytes.Buffer
	e := &env{stdin: bytes.NewReader(nil), stdout: &out, stderr: &out, getenv: func(k string) string { return vars[k] }, now: time.Now}
	u := &ui{mu: &sync.Mutex{}, out: &out, err: &out}
	u.initLog(e)
	ctx := context.Background()
	st := repoSettings{location: tr.repo, cacheDir: tr.cache}
	s, err := openSessionAt(ctx, e, u, st, noLock, "run test", &index.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()

	// Another process writes new index segments meanwhile.
	writeFile(t, filepath.Join(tr.dir, "b", "f"), []byte("second"))
	tr.mustRun("create", filepath.Join(tr.dir, "b"))

	if err := s.relock(ctx, sharedLock); err != nil {
		t.Fatal(err)
	}
	ids, err := s.r.ListIDs(ctx, repo.IndexFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		if !s.ix.KnowsSegment(id) {
			t.Fatalf("index segment %s, written before the lock was taken, is not in the cache", id.Short())
		}
	}
}

// TestCacheFollowsCopyOfRepository: a copy of the repository (rsync'd to
// a USB disk, or the repository restored from a backup of itself) has the
// same ID, and so the same cache, as the original. After a prune of the
// original replaced index segments, the copy's older segments are read
// again, not skipped as replaced: its snapshots restore and prune works.
func TestCacheFollowsCopyOfRepository(t *testing.T) {
	tr := newTestRepo(t)
	src := filepath.Join(tr.dir, "src")
	writeRandom(t, filepath.Join(src, "x"), 1, 3<<20)
	first := tr.createID(src)
	writeRandom(t, filepath.Join(src, "y"), 2, 3<<20)
	tr.createID(src)
	usb := filepath.Join(tr.dir, "usb")
	copyDir(t, tr.repo, usb)
	must(t, os.Remove(filepath.Join(src, "x")))
	tr.createID(src)
	tr.mustRun("forget", "--keep-last", "1")
	tr.mustRun("prune", "--instant")

	res := tr.runEnv([]string{"SNAP_REPOSITORY=" + usb}, nil, "restore", first, "--target", filepath.Join(tr.dir, "r"))
	if res.code != 0 || !strings.Contains(res.stderr, "does not match this repository") {
		t.Fatalf("restore from the copy with the original's cache: exit %d\n%s", res.code, res.stderr)
	}
	if res := tr.runEnv([]string{"SNAP_REPOSITORY=" + usb}, nil, "prune"); res.code != 0 {
		t.Errorf("prune of the copy: exit %d\n%s", res.code, res.stderr)
	}
	// And back: the original opens with the cache the copy left.
	if res := tr.run("restore", "latest", "--target", filepath.Join(tr.dir, "r2")); res.code != 0 {
		t.Errorf("restore from the original again: exit %d\n%s", res.code, res.stderr)
	}
}
