package main

import (
	"bytes"
	"context"
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
