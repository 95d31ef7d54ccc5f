package snapshot

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/snap-backup/snap/repo"
	"github.com/snap-backup/snap/sources"
)

// TestTargetFull: a write, a create or a close that meets ENOSPC or EDQUOT
// is a full target, which stops the restore; an extended attribute that
// meets ENOSPC is not (ext4: the attribute does not fit its inode's or
// block's room), nor is any other error. (A review found a 6000-byte
// attribute stopping a restore into an almost empty disk.)
func TestTargetFull(t *testing.T) {
	for _, c := range []struct {
		err  error
		full bool
	}{
		{&os.PathError{Op: "write", Path: "f", Err: unix.ENOSPC}, true},
		{fmt.Errorf("create f: %w", &os.PathError{Op: "openat", Path: "f", Err: unix.EDQUOT}), true},
		{&sources.XattrError{Name: "user.big", Err: unix.ENOSPC}, false},
		{fmt.Errorf("metadata: %w", &sources.XattrError{Name: "user.big", Err: unix.ENOSPC}), false},
		{&os.PathError{Op: "mkdirat", Path: "d", Err: unix.EROFS}, true},
		{&os.PathError{Op: "write", Path: "f", Err: unix.EIO}, false},
	} {
		if _, full := targetFull(c.err); full != c.full {
			t.Errorf("targetFull(%v) = %v, want %v", c.err, full, c.full)
		}
	}
}

// unreachable is a repository whose server is gone: every load fails as
// the retry wrapper fails once it gives up (in-process: a server cannot
// be made to vanish on cue inside a unit test; the S3 tests and an
// exploratory test with MinIO killed cover the real one).
type unreachable struct{}

func (unreachable) LoadBlob(context.Context, repo.BlobType, repo.ID, []byte) ([]byte, error) {
	return nil, fmt.Errorf("load pack: dial tcp 127.0.0.1:9000: connection refused: %w (gave up after 10 attempts)", repo.ErrTransient)
}

// TestRestoreStopsWhenTheRepositoryStopsAnswering: once three packs in a
// row could not be fetched, the restore stops with one error, instead of
// an error per file while each waits out its retries (200 errors over two
// minutes with an S3 server killed). One pack that cannot be fetched
// fails only its files (TestS3RestorePrefetch).
func TestRestoreStopsWhenTheRepositoryStopsAnswering(t *testing.T) {
	p := newPipelineRepo(t)
	src := t.TempDir()
	// 48 MiB of random bytes: blobs in several packs, for the restore
	// takes the repository for gone only when packs after packs fail.
	writeRandomMiBs(t, src, 48, 11)
	sn := p.create([]string{src}, ArchiveOptions{})
	failed, err := p.restoreFrom(t, sn, src, unreachable{})
	reported := len(failed)
	if err == nil || !strings.Contains(err.Error(), "the repository stopped answering and the restore stopped") || !strings.Contains(err.Error(), "--overwrite if-changed") {
		t.Fatalf("restore from an unreachable repository: %v", err)
	}
	// The files of the first packs to fail are named, one by one; then
	// the restore stops instead of naming every file.
	if reported > 40 {
		t.Errorf("%d errors reported one by one before the restore stopped, of 48 files", reported)
	}
}

// writeRandomMiBs writes n files f00, f01, … of 1 MiB of random bytes
// each (from seed) into dir: a file a blob, packs of several files.
func writeRandomMiBs(t *testing.T, dir string, n int, seed uint64) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, seed+1))
	for i := range n {
		b := make([]byte, 1<<20)
		for j := range b {
			b[j] = byte(rng.Uint32())
		}
		writeFile(t, filepath.Join(dir, fmt.Sprintf("f%02d", i)), b, 0o644)
	}
}

// restoreFrom restores src of sn into a new directory, its blobs read from
// blobs, and returns the paths it reported failed and the restore's error.
func (p *pipelineRepo) restoreFrom(t *testing.T, sn *Snapshot, src string, blobs BlobLoader) ([]string, error) {
	t.Helper()
	node, err := FindNode(context.Background(), p.ix, sn.Tree, src)
	if err != nil {
		t.Fatal(err)
	}
	tg, err := sources.OpenTarget(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer tg.Close()
	var failed []string
	var mu sync.Mutex // Report is called by the workers at once
	_, err = NewRestorer(p.ix, tg, RestoreOptions{Blobs: blobs, Report: func(ev Event) {
		if ev.Kind == EventError {
			mu.Lock()
			failed = append(failed, ev.Path)
			mu.Unlock()
		}
	}}).Restore(context.Background(), src, node)
	return failed, err
}

// unreachableCounted is unreachable, counting the loads, each of which
// takes a moment to fail (as the retries take minutes): the workers'
// loads overlap, as they do on a frozen server.
type unreachableCounted struct{ loads *atomic.Int64 }

func (u unreachableCounted) LoadBlob(ctx context.Context, t repo.BlobType, id repo.ID, dst []byte) ([]byte, error) {
	u.loads.Add(1)
	time.Sleep(100 * time.Millisecond)
	return unreachable{}.LoadBlob(ctx, t, id, dst)
}

// TestRestoreOfOneLargeFileFromAnUnreachableRepository: the parts of a
// file that has failed are not fetched: each waited out its retries, and a
// 1 GB file from a frozen S3 server took 16 minutes to fail (found by an
// exploratory test; many small files stop after three packs, above). The
// file is reported, and the restore ends at once.
func TestRestoreOfOneLargeFileFromAnUnreachableRepository(t *testing.T) {
	p := newPipelineRepo(t)
	src := t.TempDir()
	rng := rand.New(rand.NewPCG(13, 14))
	b := make([]byte, 48<<20)
	for j := range b {
		b[j] = byte(rng.Uint32())
	}
	writeFile(t, filepath.Join(src, "big"), b, 0o644)
	sn := p.create([]string{src}, ArchiveOptions{})
	big, err := FindNode(context.Background(), p.ix, sn.Tree, filepath.Join(src, "big"))
	if err != nil {
		t.Fatal(err)
	}
	var loads atomic.Int64
	failed, err := p.restoreFrom(t, sn, src, unreachableCounted{&loads})
	if err == nil && len(failed) != 1 {
		t.Fatalf("restore of one large file from an unreachable repository: %v, files reported %v", err, failed)
	}
	// Each part stops at its first failed load: one load per part means
	// every part was started.
	if n, parts := loads.Load(), (len(big.Content)+partChunks-1)/partChunks; n >= int64(parts) {
		t.Errorf("%d loads for the file's %d parts: the parts of a failed file were still fetched", n, parts)
	}
}

// halfFetched serves the blobs of the packs in local from the index, as a
// pack fetcher serves the packs it fetched before the server went away,
// without counting an answer; every other blob fails as an unreachable
// repository's.
type halfFetched struct {
	ix    BlobLoader
	local func(repo.ID) bool
}

func (h halfFetched) LoadBlob(ctx context.Context, t repo.BlobType, id repo.ID, dst []byte) ([]byte, error) {
	if h.local(id) {
		return h.ix.LoadBlob(ctx, t, id, dst)
	}
	return unreachable{}.LoadBlob(ctx, t, id, dst)
}

func (halfFetched) Answers() uint64 { return 0 }

// TestRestoreStopsDespiteFetchedPacks: blobs of packs fetched before the
// server went away do not count as answers: the restore still stops once
// three packs in a row got none. They reset the count, and a restore from
// a killed S3 server took five minutes to give up (found by an exploratory
// test).
func TestRestoreStopsDespiteFetchedPacks(t *testing.T) {
	p := newPipelineRepo(t)
	src := t.TempDir()
	writeRandomMiBs(t, src, 96, 13)
	sn := p.create([]string{src}, ArchiveOptions{})
	// Every other pack, in the files' order, was fetched; the others are
	// on a server that is gone, and the restore meets them in turn.
	var order []repo.ID
	for i := range 96 {
		node, err := FindNode(context.Background(), p.ix, sn.Tree, filepath.Join(src, fmt.Sprintf("f%02d", i)))
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range node.Content {
			if loc, _ := p.ix.Lookup(repo.DataBlob, id); !slices.Contains(order, loc.Pack) {
				order = append(order, loc.Pack)
			}
		}
	}
	if len(order) < 6 {
		t.Fatalf("%d packs: the test needs three to fail between fetched ones", len(order))
	}
	fetched := map[repo.ID]bool{}
	for i, id := range order {
		fetched[id] = i%2 == 0
	}
	local := func(id repo.ID) bool {
		loc, ok := p.ix.Lookup(repo.DataBlob, id)
		return ok && fetched[loc.Pack]
	}
	failed, err := p.restoreFrom(t, sn, src, halfFetched{ix: p.ix, local: local})
	if err == nil || !strings.Contains(err.Error(), "the repository stopped answering and the restore stopped") {
		t.Fatalf("restore with some packs fetched before the server went away: %v (%d files failed)", err, len(failed))
	}
}
