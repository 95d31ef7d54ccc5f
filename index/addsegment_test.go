package index

import (
	"context"
	"errors"
	"math"
	"os"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/snap-backup/snap/repo"
)

// bigSegment returns a segment of n fake blobs in packs of 16; the packs
// need not exist for the cache.
func bigSegment(seed uint64, n int) *Segment {
	seg := &Segment{}
	b := randomBlob(seed, 64*n)
	for i := 0; i < n; i += 16 {
		p := Pack{Status: PackLive}
		copy(p.ID[:], b[64*i+32:])
		off := uint32(0)
		for j := i; j < min(i+16, n); j++ {
			e := repo.BlobEntry{Type: repo.DataBlob, Compressed: true, Offset: off, Length: 1000, RawLength: 2000}
			copy(e.ID[:], b[64*j:])
			off += e.Length
			p.Blobs = append(p.Blobs, e)
		}
		p.Size = int64(off) + 100
		seg.Packs = append(seg.Packs, p)
	}
	return seg
}

func countFound(ix *Index, seg *Segment) int {
	n := 0
	for _, p := range seg.Packs {
		for _, e := range p.Blobs {
			if ix.Has(e.Type, e.ID) {
				n++
			}
		}
	}
	return n
}

// TestAddSegmentInBatches adds a segment larger than one batch: every blob
// is found, and the segment is known.
func TestAddSegmentInBatches(t *testing.T) {
	ix, r, _ := newTestIndex(t)
	ix.pages.min, ix.pages.budget = 1, 0 // every cache counts as large: batches, and page releases
	ctx := context.Background()
	seg := bigSegment(1, 2*addBatch+100)
	id, err := r.SaveObject(ctx, repo.IndexFile, seg.Encode())
	if err != nil {
		t.Fatal(err)
	}
	if err := ix.AddSegment(id, seg); err != nil {
		t.Fatal(err)
	}
	if n := countFound(ix, seg); n != 2*addBatch+100 {
		t.Fatalf("found %d blobs", n)
	}
	if !ix.KnowsSegment(id) {
		t.Fatal("segment not known")
	}
}

// markAdding makes the cache look as if a run ended while adding id.
func markAdding(t *testing.T, ix *Index, id repo.ID) {
	t.Helper()
	if err := ix.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bMeta).Put(metaAdding, id[:]) }); err != nil {
		t.Fatal(err)
	}
}

// TestPartlyAddedSegment: a segment whose adding was interrupted is added
// again by the next Sync when the repository has it, and its packs are
// forgotten when it has gone meanwhile (a prune superseded it): no blob
// may then look stored.
func TestPartlyAddedSegment(t *testing.T) {
	ix, r, _ := newTestIndex(t)
	ix.pages.min = 1
	ctx := context.Background()
	seg := bigSegment(2, addBatch+10)
	id, err := r.SaveObject(ctx, repo.IndexFile, seg.Encode())
	if err != nil {
		t.Fatal(err)
	}
	// Only the first batch made it into the cache.
	part := &Segment{Packs: seg.Packs[:addBatch/16]}
	if err := ix.AddSegment(id, part); err != nil {
		t.Fatal(err)
	}
	markAdding(t, ix, id)
	if ix.KnowsSegment(id) {
		t.Fatal("a partly added segment counts as known")
	}
	if _, err := ix.Sync(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if n := countFound(ix, seg); n != addBatch+10 {
		t.Fatalf("after sync found %d of %d blobs", n, addBatch+10)
	}

	// The same, but the segment is gone from the repository.
	gone := bigSegment(3, 100)
	gid := repo.ID{1, 2, 3}
	if err := ix.AddSegment(gid, gone); err != nil {
		t.Fatal(err)
	}
	markAdding(t, ix, gid)
	if _, err := ix.Sync(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if n := countFound(ix, gone); n != 0 {
		t.Fatalf("%d blobs of a vanished, partly added segment still look stored", n)
	}
	if n := countFound(ix, seg); n != addBatch+10 {
		t.Fatalf("found %d of %d blobs of the complete segment", n, addBatch+10)
	}
}

// TestConcurrentAddSegments: the writer adds segments from its upload
// goroutines, possibly two at once. A segment must never count as known
// while some of its blobs are still missing from the cache: a run that
// ended then would leave those blobs unindexed for good.
func TestConcurrentAddSegments(t *testing.T) {
	ix, r, _ := newTestIndex(t)
	ix.pages.min = 1
	ctx := context.Background()
	segs := []*Segment{bigSegment(4, 3*addBatch), bigSegment(5, 3*addBatch)}
	ids := make([]repo.ID, len(segs))
	for i, seg := range segs {
		id, err := r.SaveObject(ctx, repo.IndexFile, seg.Encode())
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = id
	}
	done := make(chan error, len(segs))
	for i := range segs {
		go func() { done <- ix.AddSegment(ids[i], segs[i]) }()
	}
	finished := 0
	for finished < len(segs) {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
			finished++
		default:
		}
		for i, seg := range segs {
			// Blobs are only ever added: if the segment was known before
			// the count and blobs are missing at the count, they were
			// missing while it was known.
			if ix.KnowsSegment(ids[i]) {
				if n := countFound(ix, seg); n != 3*addBatch {
					t.Fatalf("segment %d counts as known with %d of %d blobs in the cache", i, n, 3*addBatch)
				}
			}
		}
	}
}

// addBigSegment adds bigSegment(seed, n) to ix and returns its blob IDs.
func addBigSegment(t testing.TB, ix *Index, seed uint64, n int) []repo.ID {
	t.Helper()
	seg := bigSegment(seed, n)
	if err := ix.AddSegment(repo.ID{1}, seg); err != nil {
		t.Fatal(err)
	}
	var ids []repo.ID
	for _, p := range seg.Packs {
		for _, e := range p.Blobs {
			ids = append(ids, e.ID)
		}
	}
	return ids
}

// TestLookupEach: LookupEach answers as Lookup does for every blob of a list
// longer than one of its transactions, unknown blobs and repeats included.
func TestLookupEach(t *testing.T) {
	ix, _, _ := newTestIndex(t)
	ix.pages.min, ix.pages.budget = 1, 0 // pages are released during the lookups too
	ids := addBigSegment(t, ix, 7, 2500)
	ids = append(ids, repo.ID{0xee}, ids[0], repo.ID{})
	// Each index once, in any order (the IDs' order within a batch).
	locs, found := make([]Location, len(ids)), make([]bool, len(ids))
	called := make([]bool, len(ids))
	calls := 0
	ix.LookupEach(repo.DataBlob, ids, func(i int, loc Location, ok bool) {
		if called[i] {
			t.Fatalf("index %d called twice", i)
		}
		called[i], locs[i], found[i] = true, loc, ok
		calls++
	})
	if calls != len(ids) {
		t.Fatalf("%d calls for %d blobs", calls, len(ids))
	}
	for i, id := range ids {
		want, wantOK := ix.Lookup(repo.DataBlob, id)
		if found[i] != wantOK || found[i] && (locs[i].Pack != want.Pack || locs[i].Status != want.Status || locs[i].Entry.ID != id || locs[i].Entry.Offset != want.Entry.Offset) {
			t.Fatalf("blob %d: LookupEach %v %+v, Lookup %v %+v", i, found[i], locs[i], wantOK, want)
		}
	}
	if found[len(ids)-3] || !found[len(ids)-2] || found[len(ids)-1] {
		t.Fatalf("unknown or repeated blobs: found %v", found[len(ids)-3:])
	}
	// Tree blobs of the same IDs are not data blobs.
	ix.LookupEach(repo.TreeBlob, ids[:3], func(i int, _ Location, ok bool) {
		if ok {
			t.Fatalf("data blob %d found as a tree", i)
		}
	})
}

// BenchmarkLookup looks up the blobs of 12,000 files (as a no-change
// create of dataset 1 does), one transaction each or with LookupEach.
func BenchmarkLookup(b *testing.B) {
	ix, _, _ := newTestIndex(b)
	ids := addBigSegment(b, ix, 3, 12000)
	b.Run("each", func(b *testing.B) {
		for b.Loop() {
			for _, id := range ids {
				if _, ok := ix.Lookup(repo.DataBlob, id); !ok {
					b.Fatal("not found")
				}
			}
		}
	})
	b.Run("batched", func(b *testing.B) {
		for b.Loop() {
			ix.LookupEach(repo.DataBlob, ids, func(_ int, _ Location, ok bool) {
				if !ok {
					b.Fatal("not found")
				}
			})
		}
	})
}

// TestPagesReleasedAboveBudget: the cache's pages are released every
// releaseEvery lookups only while the process's resident memory is above
// the budget; below it they stay mapped (a release costs more than the
// memory it gives back then). Without /proc every time, as before.
func TestPagesReleasedAboveBudget(t *testing.T) {
	var p pageReleaser
	p.budget = 1 << 62
	count := func() int {
		n := 0
		for range 4 * releaseEvery {
			if p.due() {
				n++
			}
		}
		return n
	}
	if _, err := os.Stat("/proc/self/statm"); err != nil {
		t.Skip("no /proc here")
	}
	if n := count(); n != 0 {
		t.Errorf("released %d times below the budget", n)
	}
	if r, f := p.resident(); r <= 0 || r == math.MaxInt64 || f <= 0 || f > r {
		t.Errorf("resident memory %d, file-backed %d", r, f)
	}
	// The rule, on numbers (the test's own memory cannot be set): above
	// the budget pages go; with the heap alone above it, only when the
	// file-backed memory is over the floor and half the heap (releasing
	// them gave back little and made every lookup fault).
	const mib = 1 << 20
	for _, c := range []struct {
		resident, file int64
		want           bool
	}{
		{100 * mib, 40 * mib, false},  // under the budget
		{150 * mib, 50 * mib, true},   // heap 100 MiB: under the budget, the map goes
		{300 * mib, 60 * mib, false},  // heap 240 MiB: 60 MiB within the floor
		{300 * mib, 100 * mib, false}, // heap 200 MiB: within half of it
		{400 * mib, 140 * mib, true},  // heap 260 MiB: over both
	} {
		if got := releaseNow(c.resident, c.file, 120*mib, 64*mib); got != c.want {
			t.Errorf("resident %d MiB, file-backed %d MiB: release %v, want %v", c.resident/mib, c.file/mib, got, c.want)
		}
	}
}

// TestNotIndexedNamesOtherType: a blob asked for as a tree that the index
// lists as data (a crafted or damaged tree) is said to be so, not "not in
// the index" alone (found by an exploratory test).
func TestNotIndexedNamesOtherType(t *testing.T) {
	ix, _, _ := newTestIndex(t)
	ids := addBigSegment(t, ix, 3, 10)
	_, err := ix.LoadBlob(context.Background(), repo.TreeBlob, ids[0], nil)
	if !errors.Is(err, ErrBlobNotIndexed) || !strings.Contains(err.Error(), "the index lists it as a data blob") {
		t.Errorf("tree blob that is data: %v", err)
	}
	_, err = ix.LoadBlob(context.Background(), repo.TreeBlob, repo.ID{0xee}, nil)
	if !errors.Is(err, ErrBlobNotIndexed) || strings.Contains(err.Error(), "lists it as") {
		t.Errorf("unknown blob: %v", err)
	}
}
