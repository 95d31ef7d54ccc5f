package index

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/snap-backup/snap/chunk"
	"github.com/snap-backup/snap/repo"
	"github.com/snap-backup/snap/repo/local"
)

func newTestIndex(t testing.TB) (*Index, *repo.Repository, string) {
	t.Helper()
	ix, r, dir, _ := newTestIndexOn(t, nil)
	return ix, r, dir
}

// newTestIndexOn is newTestIndex on a local repository whose backend wrap
// (when not nil) wraps; it also returns the local backend itself.
func newTestIndexOn(t testing.TB, wrap func(repo.Backend) repo.Backend) (*Index, *repo.Repository, string, repo.Backend) {
	t.Helper()
	dir := t.TempDir()
	lbe, err := local.Create(filepath.Join(dir, "repo"))
	if err != nil {
		t.Fatal(err)
	}
	be := repo.Backend(lbe)
	if wrap != nil {
		be = wrap(lbe)
	}
	p, err := chunk.NewParams()
	if err != nil {
		t.Fatal(err)
	}
	r, err := repo.Init(context.Background(), be, "pw", repo.KDFParams{Time: 1, MemoryKiB: 64, Threads: 1},
		repo.ChunkerParams{Polynomial: p.Polynomial, MinSize: p.MinSize, MaxSize: p.MaxSize, AverageBits: p.AverageBits}, repo.Options{Host: "t"})
	if err != nil {
		t.Fatal(err)
	}
	ix, err := Open(context.Background(), r, filepath.Join(dir, "cache"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ix.Close() })
	return ix, r, dir, lbe
}

func blobID(ix *Index, plain []byte) repo.ID {
	h := ix.Hasher()
	defer ix.PutHasher(h)
	return repo.ID(h.Sum(plain))
}

func randomBlob(seed uint64, n int) []byte {
	b := make([]byte, n)
	_, _ = rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8)}).Read(b)
	return b
}

// TestWriterUploadOutlivesSaveContext is a regression test: a pack filled
// by a Save whose context ends right after the call (as the archiver's
// worker context does when the walk finishes) must still be uploaded.
func TestWriterUploadOutlivesSaveContext(t *testing.T) {
	ix, r, _ := newTestIndex(t)
	w := NewWriter(ix, WriterOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	var ids []repo.ID
	for i := range 3 { // the third 6 MiB blob does not fit in the 16 MiB pack: its Save uploads the first pack
		plain := randomBlob(uint64(i), 6<<20)
		id := blobID(ix, plain)
		ids = append(ids, id)
		if _, err := w.Save(ctx, repo.DataBlob, id, plain); err != nil {
			t.Fatal(err)
		}
	}
	cancel()
	if err := w.Flush(context.Background()); err != nil {
		t.Fatalf("Flush after the Save context ended: %v", err)
	}
	if st := w.Stats(); st.Packs != 2 || st.Blobs != 3 {
		t.Errorf("stats %+v, want 2 packs of 3 blobs", st)
	}
	for i, id := range ids {
		got, err := ix.LoadBlob(context.Background(), repo.DataBlob, id, nil)
		if err != nil || !bytes.Equal(got, randomBlob(uint64(i), 6<<20)) {
			t.Fatalf("blob %d: %v", i, err)
		}
	}
	_ = r
}

// TestSyncDamagedSegment: a damaged segment stops Sync with an error naming
// it, unless another segment supersedes it, in whatever order they are
// listed (repair --from-packs leaves the damaged one in place).
func TestSyncDamagedSegment(t *testing.T) {
	ix, r, dir := newTestIndex(t)
	ctx := context.Background()
	w := NewWriter(ix, WriterOptions{})
	plain := []byte("some data")
	id := blobID(ix, plain)
	if _, err := w.Save(ctx, repo.DataBlob, id, plain); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	segs, err := r.ListIDs(ctx, repo.IndexFile)
	if err != nil || len(segs) != 1 {
		t.Fatalf("segments: %v %v", segs, err)
	}
	damaged := segs[0]
	seg, err := DecodeSegment(mustLoad(t, r, damaged))
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "repo", "index", damaged.String())
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 1
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	fresh := func() (*Index, error) {
		return Open(ctx, r, t.TempDir(), Options{})
	}
	if _, err := fresh(); err == nil || !errors.Is(err, repo.ErrCorrupt) || !strings.Contains(err.Error(), damaged.String()) {
		t.Fatalf("sync with a damaged segment: %v", err)
	}
	// A segment superseding it, as repair writes.
	if _, err := r.SaveObject(ctx, repo.IndexFile, (&Segment{Supersedes: []repo.ID{damaged}, Packs: seg.Packs}).Encode()); err != nil {
		t.Fatal(err)
	}
	// The listing order follows the (random) IDs, so runs of this test
	// see the superseding segment before or after the damaged one.
	ix2, err := fresh()
	if err != nil {
		t.Fatalf("sync with a superseded damaged segment: %v", err)
	}
	got, err := ix2.LoadBlob(ctx, repo.DataBlob, id, nil)
	ix2.Close()
	if err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("blob after repair: %v", err)
	}
}

func mustLoad(t *testing.T, r *repo.Repository, id repo.ID) []byte {
	t.Helper()
	b, err := r.LoadObject(context.Background(), repo.IndexFile, id)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// listHider answers the next List of index/ with nothing, as a listing
// that races with a prune can: the segment the prune wrote is past the
// listing's position when it appears, and the one it replaced is deleted
// before the listing reaches it.
type listHider struct {
	repo.Backend
	hide bool
}

func (b *listHider) List(ctx context.Context, t repo.FileType, fn func(string, int64) error) error {
	if t == repo.IndexFile && b.hide {
		b.hide = false
		return nil
	}
	return b.Backend.List(ctx, t, fn)
}

// A segment missing from one listing is not dropped at once: the listing
// may have raced with the prune that replaced it, and the next listing
// shows the replacement.
func TestSyncRelistsBeforeDroppingASegment(t *testing.T) {
	dir := t.TempDir()
	lbe, err := local.Create(filepath.Join(dir, "repo"))
	if err != nil {
		t.Fatal(err)
	}
	be := &listHider{Backend: lbe}
	p, _ := chunk.NewParams()
	r, err := repo.Init(context.Background(), be, "pw", repo.KDFParams{Time: 1, MemoryKiB: 64, Threads: 1},
		repo.ChunkerParams{Polynomial: p.Polynomial, MinSize: p.MinSize, MaxSize: p.MaxSize, AverageBits: p.AverageBits}, repo.Options{Host: "t"})
	if err != nil {
		t.Fatal(err)
	}
	ix, err := Open(context.Background(), r, filepath.Join(dir, "cache"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	ctx := context.Background()
	seg := bigSegment(7, 32)
	old, err := r.SaveObject(ctx, repo.IndexFile, seg.Encode())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ix.Sync(ctx, nil); err != nil {
		t.Fatal(err)
	}
	// A prune replaces the segment and deletes the old one.
	repl := &Segment{Supersedes: []repo.ID{old}, Packs: seg.Packs}
	if _, err := r.SaveObject(ctx, repo.IndexFile, repl.Encode()); err != nil {
		t.Fatal(err)
	}
	if err := lbe.Remove(ctx, repo.Handle{Type: repo.IndexFile, Name: old.String()}); err != nil {
		t.Fatal(err)
	}
	be.hide = true
	var logged []string
	if _, err := ix.Sync(ctx, func(m string) { logged = append(logged, m) }); err != nil {
		t.Fatal(err)
	}
	if n := countFound(ix, seg); n != 32 || len(logged) > 0 {
		t.Fatalf("after a listing that missed both segments: %d of 32 blobs indexed; logged %q", n, logged)
	}
}

// hangingPacks is a backend whose pack uploads hang until their context
// ends, as on a server that stopped answering.
type hangingPacks struct{ repo.Backend }

func (h hangingPacks) Save(ctx context.Context, hd repo.Handle, data []byte) error {
	if hd.Type == repo.PackFile {
		<-ctx.Done()
		return ctx.Err()
	}
	return h.Backend.Save(ctx, hd, data)
}

// TestWriterAbortStopsUploads: the command's own context ending (Ctrl-C)
// stops the uploads under way, which otherwise outlive the Save that
// filled their pack: Flush returns at once with the error, not after the
// retries of a server that does not answer.
func TestWriterAbortStopsUploads(t *testing.T) {
	ix, _, _, _ := newTestIndexOn(t, func(be repo.Backend) repo.Backend { return hangingPacks{be} })
	ctx := context.Background()
	abort, cancel := context.WithCancel(ctx)
	w := NewWriter(ix, WriterOptions{Abort: abort})
	for i := range 3 { // the third blob starts the first pack's upload
		plain := randomBlob(uint64(i), 6<<20)
		if _, err := w.Save(ctx, repo.DataBlob, blobID(ix, plain), plain); err != nil {
			t.Fatal(err)
		}
	}
	cancel()
	done := make(chan error, 1)
	go func() { done <- w.Flush(ctx) }()
	select {
	case err := <-done:
		if err == nil {
			t.Error("Flush after the abort: no error")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Flush still waits for an upload after the abort")
	}
}

// firstPackFails is a backend on which the first pack upload fails (after
// the retries a dead server costs) and every other one hangs until its
// context ends; it counts the pack uploads started.
type firstPackFails struct {
	repo.Backend
	started *atomic.Int32
}

func (f firstPackFails) Save(ctx context.Context, hd repo.Handle, data []byte) error {
	if hd.Type != repo.PackFile {
		return f.Backend.Save(ctx, hd, data)
	}
	if f.started.Add(1) == 1 {
		time.Sleep(200 * time.Millisecond) // the others are under way
		return errors.New("gave up after 10 attempts")
	}
	<-ctx.Done()
	return ctx.Err()
}

// TestWriterFirstFailureEndsUploads: once an upload fails, the uploads
// in flight end and no new one starts. Each would otherwise go through
// its own retries against a store that is gone: minutes per pack.
func TestWriterFirstFailureEndsUploads(t *testing.T) {
	started := &atomic.Int32{}
	ix, _, _, _ := newTestIndexOn(t, func(be repo.Backend) repo.Backend { return firstPackFails{be, started} })
	ctx := context.Background()
	w := NewWriter(ix, WriterOptions{Connections: 2})
	done := make(chan error, 1)
	go func() {
		for i := range 40 { // some 15 packs
			plain := randomBlob(uint64(i), 6<<20)
			if _, err := w.Save(ctx, repo.DataBlob, blobID(ix, plain), plain); err != nil {
				_ = w.SaveProgress(ctx) // as a failed create does: it waits for the uploads
				done <- err
				return
			}
		}
		done <- w.Flush(ctx)
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "gave up after 10 attempts") {
			t.Errorf("the run ended with %v, want the failed upload's error", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the run still waits for uploads after one failed")
	}
	if n := started.Load(); n > 3 {
		t.Errorf("%d pack uploads started, want at most the 2 connections' and one waiting for a slot", n)
	}
}

// packsFailFrom is a backend on which pack uploads fail once failing is
// set (a run stopped while its last pack waited for its turn under
// --limit-upload).
type packsFailFrom struct {
	repo.Backend
	failing *atomic.Bool
}

func (f packsFailFrom) Save(ctx context.Context, hd repo.Handle, data []byte) error {
	if hd.Type == repo.PackFile && f.failing.Load() {
		return context.Canceled
	}
	return f.Backend.Save(ctx, hd, data)
}

// TestFlushAfterFailedUploadKeepsDurablePacks: a Flush whose last upload
// fails must leave the packs already durable for SaveProgress to index.
// It took them and returned the error, so a stopped create on S3 with
// --limit-upload indexed none of the packs it had uploaded, and the next
// run uploaded them again (found by an exploratory test).
func TestFlushAfterFailedUploadKeepsDurablePacks(t *testing.T) {
	failing := &atomic.Bool{}
	ix, r, _, _ := newTestIndexOn(t, func(be repo.Backend) repo.Backend { return packsFailFrom{be, failing} })
	ctx := context.Background()
	w := NewWriter(ix, WriterOptions{Connections: 1})
	var ids []repo.ID
	for i := range 8 { // two packs uploaded, one open
		plain := randomBlob(uint64(i), 6<<20)
		ids = append(ids, blobID(ix, plain))
		if _, err := w.Save(ctx, repo.DataBlob, ids[i], plain); err != nil {
			t.Fatal(err)
		}
	}
	w.uploads.Wait()
	failing.Store(true)
	if err := w.Flush(ctx); err == nil {
		t.Fatal("no error from the failed upload")
	}
	if err := w.SaveProgress(ctx); err != nil {
		t.Fatalf("SaveProgress: %v", err)
	}
	segments := 0
	if err := r.Backend().List(ctx, repo.IndexFile, func(string, int64) error { segments++; return nil }); err != nil {
		t.Fatal(err)
	}
	if _, ok := ix.Lookup(repo.DataBlob, ids[0]); segments != 1 || !ok {
		t.Errorf("after SaveProgress: %d segments, first blob indexed %v; want the durable packs indexed", segments, ok)
	}
}

// TestCancelledSaveKeepsPack: a Save whose context is cancelled (a copy
// cancels its fetch workers when one source blob is damaged, then goes on
// with the next snapshot) and that fills a pack must still store the pack:
// its blobs are known to the writer by then. It used to be dropped about
// half the time (the wait for an upload slot also ended with the
// context), and a later snapshot referred to blobs that were nowhere.
func TestCancelledSaveKeepsPack(t *testing.T) {
	for range 10 {
		ix, _, _ := newTestIndex(t)
		w := NewWriter(ix, WriterOptions{})
		var ids []repo.ID
		save := func(ctx context.Context, seed uint64) error {
			plain := randomBlob(seed, 6<<20)
			id := blobID(ix, plain)
			ids = append(ids, id)
			_, err := w.Save(ctx, repo.DataBlob, id, plain)
			return err
		}
		for i := range 2 {
			if err := save(context.Background(), uint64(i)); err != nil {
				t.Fatal(err)
			}
		}
		cancelled, cancel := context.WithCancel(context.Background())
		cancel()
		_ = save(cancelled, 9) // fills the pack, which goes up now
		if err := w.Flush(context.Background()); err != nil {
			t.Fatalf("flush: %v", err)
		}
		for i, id := range ids {
			if _, ok := ix.Lookup(repo.DataBlob, id); !ok && w.Known(repo.DataBlob, id) {
				t.Fatalf("blob %d: the writer says it is known, and no index lists it", i)
			}
		}
	}
}

// failingIndexLoads fails every load of an index segment with a transient
// error, as a store that stopped answering does once the retries give up.
type failingIndexLoads struct {
	repo.Backend
	on    atomic.Bool
	loads atomic.Int32
}

func (f *failingIndexLoads) Load(ctx context.Context, h repo.Handle, off, n int64) ([]byte, error) {
	if f.on.Load() && h.Type == repo.IndexFile {
		f.loads.Add(1)
		return nil, fmt.Errorf("%w: connection refused (gave up after 10 attempts)", repo.ErrTransient)
	}
	return f.Backend.Load(ctx, h, off, n)
}

// TestSyncStopsAtAStoreThatDoesNotAnswer: a segment the store does not
// deliver (retried, then given up) ends the sync with that error at once,
// also for a reading command, and without advice to repair the index: each
// further segment cost another minute of retries (a prune ran 14 minutes
// against a server gone), and the advice sent an admin to rewrite a whole
// index over a network outage (found by an exploratory test).
func TestSyncStopsAtAStoreThatDoesNotAnswer(t *testing.T) {
	var fl *failingIndexLoads
	_, r, dir, _ := newTestIndexOn(t, func(be repo.Backend) repo.Backend {
		fl = &failingIndexLoads{Backend: be}
		return fl
	})
	ctx := context.Background()
	for i := range 3 { // three segments
		ix, err := Open(ctx, r, filepath.Join(dir, "cache-w"), Options{})
		if err != nil {
			t.Fatal(err)
		}
		w := NewWriter(ix, WriterOptions{})
		plain := randomBlob(uint64(100+i), 1000)
		if _, err := w.Save(ctx, repo.DataBlob, blobID(ix, plain), plain); err != nil {
			t.Fatal(err)
		}
		if err := w.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		ix.Close()
	}
	fl.on.Store(true)
	var logged []string
	ix, err := Open(ctx, r, filepath.Join(dir, "cache-r"), Options{ReadOnly: true, Log: func(s string) { logged = append(logged, s) }})
	if err == nil {
		_, err = ix.Sync(ctx, nil)
		ix.Close()
	}
	if err == nil || !errors.Is(err, repo.ErrTransient) || strings.Contains(err.Error(), "repair") {
		t.Errorf("sync against a store that does not answer: %v", err)
	}
	if n := fl.loads.Load(); n != 1 {
		t.Errorf("%d segment loads, want 1: the sync went on after the store stopped answering", n)
	}
	for _, l := range logged {
		if strings.Contains(l, "repair") {
			t.Errorf("advice to repair: %s", l)
		}
	}
}

// TestCompactionDoesNotRecurse: a fresh cache that reads a segment before
// the segment replacing it (a killed prune leaves both) drops the first
// one's packs as dead entries; with 1,000 or more of them, and more than
// the live ones, the cache used to be rebuilt from the segments, and the
// rebuild's own sync read them in the same order and rebuilt again, for
// ever (a prune after 1,000 snapshots were forgotten hung, and then every
// command on the repository; found by an exploratory test). The dead
// entries are now swept from the cache alone (sweepDead).
func TestCompactionDoesNotRecurse(t *testing.T) {
	_, r, dir := newTestIndex(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pack := func(i int) Pack {
		var id repo.ID
		binary.LittleEndian.PutUint64(id[:], uint64(i)+1)
		var bid repo.ID
		binary.LittleEndian.PutUint64(bid[8:], uint64(i)+1)
		return Pack{ID: id, Size: 100, Blobs: []repo.BlobEntry{{Type: repo.DataBlob, ID: bid, Offset: 0, Length: 60, RawLength: 32}}}
	}
	old := &Segment{}
	for i := range 1100 {
		old.Packs = append(old.Packs, pack(i))
	}
	oldID, err := r.SaveObject(ctx, repo.IndexFile, old.Encode())
	if err != nil {
		t.Fatal(err)
	}
	// The replacing segment must come after the old one in the listing.
	var newID repo.ID
	for n := 1; ; n++ {
		seg := &Segment{Supersedes: []repo.ID{oldID}}
		for i := range n {
			seg.Packs = append(seg.Packs, pack(i))
		}
		b := seg.Encode()
		if id := repo.Hash(b); compareIDs(id, oldID) > 0 {
			newID, err = r.SaveObject(ctx, repo.IndexFile, b)
			if err != nil {
				t.Fatal(err)
			}
			break
		}
	}
	ix, err := Open(ctx, r, filepath.Join(dir, "fresh-cache"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	if _, err := ix.Sync(ctx, nil); err != nil {
		t.Fatalf("sync: %v", err)
	}
	if !ix.KnowsSegment(newID) {
		t.Error("the replacing segment is not in the cache")
	}
	var dead uint64
	_ = ix.db.View(func(tx *bolt.Tx) error {
		dead, _ = metaUint(tx.Bucket(bMeta), metaDeadPacks)
		return nil
	})
	if dead >= 1000 {
		t.Errorf("%d dead pack entries left after the sync", dead)
	}
}

// TestRemoveStaleCopies: a private copy of the cache that a killed process
// left is removed when a cache is next opened; one in use (its file
// locked) and one just made are not.
func TestRemoveStaleCopies(t *testing.T) {
	dir := t.TempDir()
	old := time.Now().Add(-2 * time.Minute)
	mk := func(name string, open bool) *bolt.DB {
		d := filepath.Join(dir, name)
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
		db, err := bolt.Open(filepath.Join(d, "index.db"), 0o600, nil)
		if err != nil {
			t.Fatal(err)
		}
		if !open {
			db.Close()
			db = nil
		}
		if name != "tmp-index-new" {
			if err := os.Chtimes(d, old, old); err != nil {
				t.Fatal(err)
			}
		}
		return db
	}
	mk("tmp-index-stale", false)
	live := mk("tmp-index-live", true)
	defer live.Close()
	mk("tmp-index-new", false)
	removeStaleCopies(dir)
	for name, want := range map[string]bool{"tmp-index-stale": false, "tmp-index-live": true, "tmp-index-new": true} {
		if _, err := os.Stat(filepath.Join(dir, name)); (err == nil) != want {
			t.Errorf("%s: exists %v, want %v", name, err == nil, want)
		}
	}
}

// TestWriterCutsSegmentsByBlobs: packs of small blobs get a segment once
// they hold segmentBlobs blobs, not only every segmentPacks packs: a first
// backup of a million small files wrote one segment of 1.4 M blobs, which
// every sync then held whole (found by an exploratory test).
func TestWriterCutsSegmentsByBlobs(t *testing.T) {
	ix, _, dir := newTestIndex(t)
	ctx := context.Background()
	w := NewWriter(ix, WriterOptions{})
	plain := randomBlob(7, 300) // incompressible: some 45,000 in a pack
	for i := range 2*segmentBlobs + 10000 {
		binary.LittleEndian.PutUint64(plain, uint64(i))
		if _, err := w.Save(ctx, repo.DataBlob, blobID(ix, plain), plain); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	segs, err := os.ReadDir(filepath.Join(dir, "repo", "index"))
	if err != nil {
		t.Fatal(err)
	}
	if st := w.Stats(); len(segs) < 2 || st.Packs >= segmentPacks {
		t.Errorf("%d blobs in %d packs: %d segments, want one per %d blobs", st.Blobs, st.Packs, len(segs), segmentBlobs)
	}
}
