package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/snap-backup/snap/repo"
)

// TestConcurrentCreates runs three creates into one repository at once,
// two sharing a cache directory and one with its own, and then a restore
// of each: several writers may use one repository at the same time.
func TestConcurrentCreates(t *testing.T) {
	t.Parallel()
	tr := newTestRepo(t)
	var srcs []string
	for i := range 3 {
		src := filepath.Join(tr.dir, fmt.Sprintf("src%d", i))
		writeRandom(t, filepath.Join(src, "own"), uint64(i), 3_000_000)
		// Shared content, so that the writers race to store the same blobs.
		writeRandom(t, filepath.Join(src, "shared"), 99, 5_000_000)
		srcs = append(srcs, src)
	}
	var wg sync.WaitGroup
	results := make([]result, 3)
	for i, src := range srcs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := exec.Command(snapBin, "create", "--json", src)
			cmd.Env = append(baseEnv(), tr.env...)
			if i == 2 {
				cmd.Env = append(cmd.Env, "SNAP_CACHE_DIR="+filepath.Join(tr.dir, "other-cache"))
			}
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			results[i] = result{stdout: stdout.String(), stderr: stderr.String()}
			if err != nil {
				results[i].code = -1
			}
		}()
	}
	wg.Wait()
	for i, res := range results {
		if res.code != 0 || strings.Contains(res.stderr, "panic") {
			t.Fatalf("create %d: %q", i, res.stderr)
		}
	}
	if n := len(tr.listJSON()); n != 3 {
		t.Fatalf("%d snapshots, want 3", n)
	}
	for i, res := range results {
		id := parseSummary(t, res.stdout).SnapshotID
		target := filepath.Join(tr.dir, fmt.Sprintf("out%d", i))
		tr.mustRun("restore", id, "--target", target)
		compareEntries(t, "concurrent create "+fmt.Sprint(i), describe(t, srcs[i]), describe(t, filepath.Join(target, srcs[i])))
	}
	// A fourth run adds nothing new: every blob is indexed once the caches
	// are synced.
	s := tr.create("--force", srcs[0])
	if s.AddedRawBytes > 64<<10 {
		t.Errorf("create after the concurrent runs added %d bytes", s.AddedRawBytes)
	}
}

// packThief is a backend whose first read of a pack of the repository in
// dir removes that repository's lock files and the pack itself before
// answering: a prune that took a paused copy's lock for stale and
// repacked what it was reading.
type packThief struct {
	repo.Backend
	dir  string
	done *atomic.Bool
}

func (b *packThief) Load(ctx context.Context, h repo.Handle, offset, length int64) ([]byte, error) {
	if h.Type == repo.PackFile && strings.HasPrefix(b.Location(), b.dir) && b.done.CompareAndSwap(false, true) {
		locks, _ := filepath.Glob(filepath.Join(b.dir, "locks", "*"))
		for _, l := range locks {
			_ = os.Remove(l)
		}
		_ = os.Rename(filepath.Join(b.dir, "data", h.Name[:2], h.Name), filepath.Join(b.dir, "moved-"+h.Name))
	}
	return b.Backend.Load(ctx, h, offset, length)
}

// TestCopySourceLockLost: a pack gone from the source while the copy's
// lock there was taken for stale is not damage: the copy stops, saying why
// and to run it again (it warned that intact snapshots could not be read
// and sent to check --read-data; found by an exploratory test).
func TestCopySourceLockLost(t *testing.T) {
	tr := newTestRepo(t)
	src := filepath.Join(tr.dir, "src")
	writeFile(t, filepath.Join(src, "big"), randomBytes(9, 3<<20))
	tr.mustRun("create", src)
	target := filepath.Join(tr.dir, "target")
	tr.runEnv([]string{"SNAP_REPOSITORY=" + target}, nil, "init", "--kdf-memory", "8", "--kdf-time", "1")
	var done atomic.Bool
	hooks := &backendHooks{wrap: func(be repo.Backend) repo.Backend { return &packThief{Backend: be, dir: tr.repo, done: &done} }}
	res := tr.runIn(hooks, "copy", "--to", target)
	if res.code != exitFatal || !strings.Contains(res.stderr, "this run's lock on the source was removed") || strings.Contains(res.stderr, "check --read-data") {
		t.Errorf("copy whose source lock was lost while a pack went: exit %d\n%s", res.code, res.stderr)
	}
}

// TestCopyNamesSource: an error of the source's is named as the source's,
// as the target's are (a lock error and its 'snap unlock' read as if of
// either; found by an exploratory test).
func TestCopyNamesSource(t *testing.T) {
	tr := newTestRepo(t)
	missing := filepath.Join(tr.dir, "nosuch")
	res := tr.run("copy", "--repo", missing, "--to", tr.repo)
	if res.code != exitNoRepo || !strings.Contains(res.stderr, "snap: source "+missing+": ") {
		t.Errorf("copy from a missing source: exit %d\n%s", res.code, res.stderr)
	}
}

// otherCopyFirst is a backend whose first pack saved into the repository
// at dir first runs another copy to completion: a copy run by hand while
// the nightly one is under way.
type otherCopyFirst struct {
	repo.Backend
	dir   string
	once  *sync.Once
	other func()
}

func (b *otherCopyFirst) Save(ctx context.Context, h repo.Handle, data []byte) error {
	if h.Type == repo.PackFile && b.Location() == b.dir {
		b.once.Do(b.other)
	}
	return b.Backend.Save(ctx, h, data)
}

// TestConcurrentCopiesStoreEachSnapshotOnce: a copy of every snapshot
// while another copy of only the latest runs into the same target leaves
// the latest in the target once. A copy's document names its parent's
// copy, so the two runs' documents differed and the target held the
// latest twice (found by an exploratory test): the run that comes second
// to a snapshot now finds the other's document before saving its own.
func TestConcurrentCopiesStoreEachSnapshotOnce(t *testing.T) {
	clearSnapEnv(t)
	tr := newTestRepo(t)
	src := filepath.Join(tr.dir, "src")
	for i := range 3 {
		writeRandom(t, filepath.Join(src, fmt.Sprint(i)), uint64(i), 300_000)
		tr.mustRun("create", src)
	}
	target := filepath.Join(tr.dir, "target")
	tr.runEnv([]string{"SNAP_REPOSITORY=" + target}, nil, "init", "--kdf-memory", "8", "--kdf-time", "1")
	var other result
	hooks := &backendHooks{wrap: func(be repo.Backend) repo.Backend {
		return &otherCopyFirst{Backend: be, dir: target, once: &sync.Once{}, other: func() {
			other = tr.runEnv([]string{"SNAP_CACHE_DIR=" + filepath.Join(tr.dir, "other-cache")}, nil, "copy", "--to", target, "latest")
		}}
	}}
	res := tr.runIn(hooks, "copy", "--to", target)
	if other.code != 0 || !strings.Contains(other.stdout+other.stderr, "copied snapshot") {
		t.Fatalf("the copy of the latest alone: exit %d\n%s%s", other.code, other.stdout, other.stderr)
	}
	if res.code != 0 || !strings.Contains(res.stdout+res.stderr, "copied 2 snapshots") {
		t.Errorf("the copy of all: exit %d\n%s%s", res.code, res.stdout, res.stderr)
	}
	if got := len(tr.listJSON("--repo", target)); got != 3 {
		t.Errorf("the target holds %d snapshots, want 3", got)
	}
}
