package main

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/snap-backup/snap/repo"
	"github.com/snap-backup/snap/repo/retry"
)

// goneAfter is a repository whose server stops answering once saves packs
// were saved or loads pack reads made (a negative count: from the start):
// from then on every request but a lock's fails as a network error does,
// which the retry wrapper repeats and then gives up.
type goneAfter struct {
	repo.Backend
	saves, loads *atomic.Int64
}

var errRefused = repo.Transient(errors.New("dial tcp 127.0.0.1:7070: connect: connection refused"))

func (g goneAfter) gone() bool { return g.saves.Load() < 0 || g.loads.Load() < 0 }

func (g goneAfter) Save(ctx context.Context, h repo.Handle, data []byte) error {
	if h.Type == repo.PackFile && g.saves.Add(-1) < 0 || g.gone() && h.Type != repo.LockFile {
		return errRefused
	}
	return g.Backend.Save(ctx, h, data)
}

func (g goneAfter) Load(ctx context.Context, h repo.Handle, off, n int64) ([]byte, error) {
	if h.Type == repo.PackFile && g.loads.Add(-1) < 0 || g.gone() && h.Type != repo.LockFile {
		return nil, errRefused
	}
	return g.Backend.Load(ctx, h, off, n)
}

func (g goneAfter) List(ctx context.Context, t repo.FileType, fn func(string, int64) error) error {
	if g.gone() && t != repo.LockFile {
		return errRefused
	}
	return g.Backend.List(ctx, t, fn)
}

func (g goneAfter) Unwrap() repo.Backend { return g.Backend }

// TestGaveUpNoteOnlyWithStoredPacks: the note that a run's stored packs
// are not indexed is added when the run stored packs before the repository
// stopped answering, not when it stored none (the server was gone before
// the create opened the repository), nor when a copy's source stopped
// answering (the target indexed what it got); both were found by an
// exploratory test against a killed S3 server.
func TestGaveUpNoteOnlyWithStoredPacks(t *testing.T) {
	t.Parallel()
	tr := newTestRepo(t)
	src := filepath.Join(tr.dir, "src")
	for i := range 8 {
		writeFile(t, filepath.Join(src, string(rune('a'+i))), randomBytes(uint64(i), 6<<20))
	}
	const note = "any packs this run stored before that are not indexed"
	hooks := func(saves, loads int64, only string) *backendHooks {
		g := goneAfter{saves: &atomic.Int64{}, loads: &atomic.Int64{}}
		g.saves.Store(saves)
		g.loads.Store(loads)
		return &backendHooks{retry: retry.Options{MaxAttempts: 2, Initial: time.Millisecond, Max: time.Millisecond},
			wrap: func(be repo.Backend) repo.Backend {
				if only != "" && be.Location() != only {
					return be
				}
				g.Backend = be
				return g
			}}
	}
	// Gone from the start: nothing stored, no note.
	res := tr.runIn(hooks(-1, 1<<20, ""), "create", src)
	if res.code == 0 || !strings.Contains(res.stderr, "connection refused") || strings.Contains(res.stderr, note) {
		t.Errorf("create against a server gone from the start: exit %d\n%s", res.code, res.stderr)
	}
	// Gone after a pack: the note.
	res = tr.runIn(hooks(1, 1<<20, ""), "create", src)
	if res.code == 0 || !strings.Contains(res.stderr, note) {
		t.Errorf("create against a server gone after one pack: exit %d\n%s", res.code, res.stderr)
	}
	// A copy whose source goes away: the target indexed what it got.
	tr.mustRun("create", src)
	dst := filepath.Join(tr.dir, "dst")
	tr.mustRun("init", "--repo", dst, "--kdf-memory", "8", "--kdf-time", "1")
	res = tr.runIn(hooks(1<<20, 30, tr.repo), "copy", "--to", dst)
	if res.code == 0 || strings.Contains(res.stderr, note) {
		t.Errorf("copy whose source stopped answering: exit %d\n%s", res.code, res.stderr)
	}
}
