package snapshot

import (
	"context"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/snap-backup/snap/chunk"
	"github.com/snap-backup/snap/index"
	"github.com/snap-backup/snap/repo"
	"github.com/snap-backup/snap/repo/local"
)

func rescueFixture(t *testing.T) (*index.Index, repo.ID) {
	t.Helper()
	dir := t.TempDir()
	be, err := local.Create(dir + "/repo")
	if err != nil {
		t.Fatal(err)
	}
	r, err := repo.Init(context.Background(), be, "pw", repo.KDFParams{Time: 1, MemoryKiB: 8 << 10, Threads: 1},
		repo.ChunkerParams{Polynomial: 0x3DA3358B4DC173, MinSize: 512 << 10, MaxSize: 8 << 20, AverageBits: 20}, repo.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ix, err := index.Open(context.Background(), r, dir+"/cache", index.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ix.Close(); r.Close() })
	plain := []byte("a blob that an earlier backup stored")
	id := repo.ID(chunk.NewHasher(r.IDKey()).Sum(plain))
	w := index.NewWriter(ix, index.WriterOptions{})
	if _, err := w.Save(context.Background(), repo.DataBlob, id, plain); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	return ix, id
}

func pruneNothingUsed(t *testing.T, ix *index.Index, instant bool) {
	t.Helper()
	_, err := index.Prune(context.Background(), ix, index.PruneOptions{Instant: instant,
		Used: func(context.Context) (index.BlobSet, error) { return index.BlobSet{}, nil }})
	if err != nil {
		t.Fatal(err)
	}
}

// A backup reused a blob; a prune then marked its pack. Before the
// snapshot is saved, confirmReused copies the blob into a live pack
// (invariant 9), so the next prune may delete the marked pack.
func TestConfirmReusedRescuesFromMarkedPack(t *testing.T) {
	ix, id := rescueFixture(t)
	w := index.NewWriter(ix, index.WriterOptions{})
	if !w.Known(repo.DataBlob, id) {
		t.Fatal("blob not known")
	}
	old, _ := ix.Lookup(repo.DataBlob, id)
	pruneNothingUsed(t, ix, false) // another host's prune marks the pack
	if ix.Has(repo.DataBlob, id) {
		t.Fatal("the pack should be marked")
	}
	if err := confirmReused(context.Background(), ix, w); err != nil {
		t.Fatal(err)
	}
	loc, ok := ix.Lookup(repo.DataBlob, id)
	if !ok || loc.Status != index.PackLive || loc.Pack == old.Pack {
		t.Fatalf("blob not rescued into a live pack: %+v", loc)
	}
	if _, err := ix.LoadBlob(context.Background(), repo.DataBlob, id, nil); err != nil {
		t.Fatal(err)
	}
}

// If the pack is gone altogether (something bypassed the protocol), the
// backup fails instead of saving a snapshot that refers to it.
func TestConfirmReusedFailsWhenPackIsGone(t *testing.T) {
	ix, id := rescueFixture(t)
	w := index.NewWriter(ix, index.WriterOptions{})
	w.Known(repo.DataBlob, id)
	pruneNothingUsed(t, ix, true)
	err := confirmReused(context.Background(), ix, w)
	if err == nil || !strings.Contains(err.Error(), "no longer in the index") {
		t.Fatalf("confirmReused after the pack was deleted: %v", err)
	}
}

// A backup's own packs need the same check: a prune may mark them before
// the snapshot that uses them exists (nothing refers to them yet), and if
// the backup's lock then went stale (a suspended machine) a later prune
// may delete them. The backup must not save a snapshot then.
func TestConfirmReusedChecksPacksTheRunWrote(t *testing.T) {
	ix, _ := rescueFixture(t)
	w := index.NewWriter(ix, index.WriterOptions{})
	plain := []byte("a blob this backup stores itself")
	h := ix.Hasher()
	id := repo.ID(h.Sum(plain))
	ix.PutHasher(h)
	if _, err := w.Save(context.Background(), repo.DataBlob, id, plain); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	pruneNothingUsed(t, ix, true)
	err := confirmReused(context.Background(), ix, w)
	if err == nil || !strings.Contains(err.Error(), "no longer in the index") {
		t.Fatalf("confirmReused after the run's own pack was deleted: %v", err)
	}
}

// A marked pack the run relied on can also hold a delta that no snapshot
// uses, whose base an earlier prune removed (the delta stayed, in a pack
// too much used to repack). The run cannot have reused it (a delta is
// reused only while each base has a full copy in a live pack), so the
// rescue passes it over: loading it failed every backup that met such a
// pack, with an error that read as damage (found by an exploratory test).
func TestConfirmReusedPassesOverDeltaWithoutBase(t *testing.T) {
	ix, _ := rescueFixture(t)
	ctx := context.Background()
	hash := func(b []byte) repo.ID {
		h := ix.Hasher()
		defer ix.PutHasher(h)
		return repo.ID(h.Sum(b))
	}
	rng := rand.New(rand.NewPCG(1, 2))
	randomBytes := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	base := randomBytes(200 << 10)
	changed := append([]byte(nil), base...)
	copy(changed[1000:], "a few bytes changed")
	used := randomBytes(4 << 20)
	baseID, deltaID, usedID := hash(base), hash(changed), hash(used)
	w := index.NewWriter(ix, index.WriterOptions{})
	if _, err := w.Save(ctx, repo.DataBlob, baseID, base); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(ctx); err != nil { // the base's pack
		t.Fatal(err)
	}
	w = index.NewWriter(ix, index.WriterOptions{Compression: repo.CompressionFastest}) // deltas need compression
	if _, err := w.Save(ctx, repo.DataBlob, usedID, used); err != nil {
		t.Fatal(err)
	}
	if _, err := w.SaveDelta(ctx, deltaID, changed, []repo.ID{baseID}, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(ctx); err != nil { // the used blob's pack, with the delta
		t.Fatal(err)
	}
	if loc, _ := ix.Lookup(repo.DataBlob, deltaID); !loc.Entry.Delta() {
		t.Fatalf("the changed blob was not stored as a delta: %+v", loc)
	}
	// A prune that keeps only the used blob deletes the base's pack and
	// leaves the other, barely unused, as it is.
	if _, err := index.Prune(ctx, ix, index.PruneOptions{Instant: true, MaxUnusedPercent: 50,
		Used: func(context.Context) (index.BlobSet, error) {
			return index.BlobSet{index.BlobRef{Type: repo.DataBlob, ID: usedID}: struct{}{}}, nil
		}}); err != nil {
		t.Fatal(err)
	}
	if _, ok := ix.Lookup(repo.DataBlob, baseID); ok {
		t.Fatal("the base is still indexed")
	}
	if _, ok := ix.Lookup(repo.DataBlob, deltaID); !ok {
		t.Fatal("the unused delta is no longer indexed: the fixture does not hold what it should")
	}
	// The run is another process: nothing of the base in its memory.
	ix, err := index.Open(ctx, ix.Repository(), t.TempDir(), index.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	run := index.NewWriter(ix, index.WriterOptions{})
	if !run.Known(repo.DataBlob, usedID) {
		t.Fatal("the used blob is not known")
	}
	if run.Known(repo.DataBlob, deltaID) {
		t.Fatal("a delta without its base counts as known")
	}
	pruneNothingUsed(t, ix, false) // marks the pack the run relies on
	if err := confirmReused(ctx, ix, run); err != nil {
		t.Fatalf("confirmReused: %v", err)
	}
	if loc, ok := ix.Lookup(repo.DataBlob, usedID); !ok || loc.Status != index.PackLive {
		t.Fatalf("the used blob was not rescued: %+v", loc)
	}
}
