package index_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/snap-backup/snap/chunk"
	"github.com/snap-backup/snap/index"
	"github.com/snap-backup/snap/repo"
	"github.com/snap-backup/snap/repo/local"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type fixture struct {
	t   *testing.T
	dir string
	clk *clock
	r   *repo.Repository
	ix  *index.Index
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{t: t, dir: t.TempDir(), clk: &clock{t: time.Date(2026, 11, 20, 3, 0, 0, 0, time.UTC)}}
	be, err := local.Create(f.dir + "/repo")
	if err != nil {
		t.Fatal(err)
	}
	f.r, err = repo.Init(context.Background(), be, "pw", repo.KDFParams{Time: 1, MemoryKiB: 8 << 10, Threads: 1},
		repo.ChunkerParams{Polynomial: 0x3DA3358B4DC173, MinSize: 512 << 10, MaxSize: 8 << 20, AverageBits: 20}, repo.Options{Host: "alpha", Now: f.clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	f.ix, err = index.Open(context.Background(), f.r, f.dir+"/cache", index.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.ix.Close(); f.r.Close() })
	return f
}

// writePack stores n random data blobs in one new pack and returns them.
func (f *fixture) writePack(n int) []index.BlobRef {
	f.t.Helper()
	w := index.NewWriter(f.ix, index.WriterOptions{})
	h := chunk.NewHasher(f.r.IDKey())
	var refs []index.BlobRef
	for range n {
		b := make([]byte, 20000)
		for i := range b {
			b[i] = byte(rand.Uint32())
		}
		id := repo.ID(h.Sum(b))
		if _, err := w.Save(context.Background(), repo.DataBlob, id, b); err != nil {
			f.t.Fatal(err)
		}
		refs = append(refs, index.BlobRef{Type: repo.DataBlob, ID: id})
	}
	if err := w.Flush(context.Background()); err != nil {
		f.t.Fatal(err)
	}
	return refs
}

func (f *fixture) packOf(ref index.BlobRef) index.Location {
	f.t.Helper()
	loc, ok := f.ix.Lookup(ref.Type, ref.ID)
	if !ok {
		f.t.Fatalf("blob %s is not indexed", ref.ID.Short())
	}
	return loc
}

// readsFresh checks that every blob of refs reads through a new index of
// the repository (a new cache, built from the segments), and names when.
func (f *fixture) readsFresh(refs []index.BlobRef, when string) {
	f.t.Helper()
	ctx := context.Background()
	fresh, err := index.Open(ctx, f.r, f.t.TempDir(), index.Options{})
	if err != nil {
		f.t.Fatal(err)
	}
	defer fresh.Close()
	for _, ref := range refs {
		if _, err := fresh.LoadBlob(ctx, ref.Type, ref.ID, nil); err != nil {
			f.t.Errorf("%s: %v", when, err)
		}
	}
}

// readData is check --read-data's problems with the repository.
func (f *fixture) readData() []index.Problem {
	f.t.Helper()
	ctx := context.Background()
	c, err := index.NewChecker(ctx, f.r)
	if err != nil {
		f.t.Fatal(err)
	}
	if err := c.ReadData(ctx, c.PackSizes(), 2, nil); err != nil {
		f.t.Fatal(err)
	}
	c.SettleDamaged()
	return c.Problems()
}

// twoCopies stores blobs x and y twice: in a pack with an unused blob
// beside them, and in one of their own. It returns x and y, which
// snapshots use.
func (f *fixture) twoCopies() []index.BlobRef {
	x, y, unused := f.full(noise(30000)), f.full(bytes.Repeat([]byte("y"), 30000)), f.full(noise(40000)[10000:])
	f.writeRaw([]rawBlob{x, y, unused})
	f.writeRaw([]rawBlob{x, y})
	return []index.BlobRef{{Type: repo.DataBlob, ID: x.id}, {Type: repo.DataBlob, ID: y.id}}
}

func (f *fixture) packExists(id repo.ID) bool {
	_, err := f.r.Backend().Stat(context.Background(), repo.Handle{Type: repo.PackFile, Name: id.String()})
	return err == nil
}

func (f *fixture) prune(o index.PruneOptions, used ...[]index.BlobRef) *index.PruneStats {
	f.t.Helper()
	st, err := f.tryPrune(o, used...)
	if err != nil {
		f.t.Fatalf("prune: %v", err)
	}
	return st
}

func (f *fixture) tryPrune(o index.PruneOptions, used ...[]index.BlobRef) (*index.PruneStats, error) {
	set := index.BlobSet{}
	for _, refs := range used {
		for _, r := range refs {
			set[r] = struct{}{}
		}
	}
	o.Used = func(ctx context.Context) (index.BlobSet, error) { return set, nil }
	return index.Prune(context.Background(), f.ix, o)
}

func TestPruneMarksThenDeletesAfterDelayAndOlderLocks(t *testing.T) {
	f := newFixture(t)
	gone, kept := f.writePack(3), f.writePack(3)
	a := f.packOf(gone[0]).Pack
	o := index.PruneOptions{DeleteDelay: 5 * time.Minute}

	st := f.prune(o, kept)
	if len(st.MarkedPacks) != 1 || st.MarkedPacks[0] != a || len(st.DeletedPacks) != 0 {
		t.Fatalf("first prune: marked %v deleted %v", st.MarkedPacks, st.DeletedPacks)
	}
	if !f.packExists(a) || f.packOf(gone[0]).Status != index.PackMarked {
		t.Fatal("marking must keep the pack and record the mark in the index")
	}
	w := index.NewWriter(f.ix, index.WriterOptions{})
	if w.Known(gone[0].Type, gone[0].ID) {
		t.Fatal("a writer must not reuse a blob of a marked pack")
	}
	known := make([]bool, 2)
	if w.KnownEach(gone[0].Type, []repo.ID{gone[0].ID, kept[0].ID}, known); known[0] || !known[1] {
		t.Fatalf("KnownEach of a blob of a marked pack and of a live one = %v", known)
	}
	markTime := f.clk.Now()

	// Within the delay: the pack waits.
	f.clk.Advance(3 * time.Minute)
	if st := f.prune(o, kept); st.PendingPacks != 1 || len(st.DeletedPacks) != 0 {
		t.Fatalf("prune within the delay: pending %d deleted %v", st.PendingPacks, st.DeletedPacks)
	}
	// After the delay, a backup that started right after the mark (within
	// MarkGrace) and still runs keeps the pack.
	other, err := repo.Open(context.Background(), mustOpenBackend(t, f.dir+"/repo"), "pw", repo.Options{Host: "beta", Now: func() time.Time { return markTime.Add(time.Minute) }})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	l, err := other.Lock(context.Background(), repo.LockOptions{Command: "create"})
	if err != nil {
		t.Fatal(err)
	}
	f.clk.Advance(3 * time.Minute)
	st = f.prune(o, kept)
	if st.PendingPacks != 1 || len(st.DeletedPacks) != 0 || !strings.Contains(st.BlockedBy, "on beta (snap create)") {
		t.Fatalf("prune beside an older backup: pending %d deleted %v blocked by %q", st.PendingPacks, st.DeletedPacks, st.BlockedBy)
	}
	l.Unlock()
	// A backup that started after the mark (and its grace) does not.
	f.clk.Advance(index.MarkGrace)
	late, err := repo.Open(context.Background(), mustOpenBackend(t, f.dir+"/repo"), "pw", repo.Options{Host: "beta", Now: f.clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer late.Close()
	l2, err := late.Lock(context.Background(), repo.LockOptions{Command: "create"})
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Unlock()
	st = f.prune(o, kept)
	if len(st.DeletedPacks) != 1 || st.DeletedPacks[0] != a || f.packExists(a) {
		t.Fatalf("due pack not deleted: %+v", st)
	}
	if _, ok := f.ix.Lookup(gone[0].Type, gone[0].ID); ok {
		t.Fatal("deleted pack still indexed")
	}
	for _, r := range kept {
		if _, err := f.ix.LoadBlob(context.Background(), r.Type, r.ID, nil); err != nil {
			t.Fatalf("kept blob: %v", err)
		}
	}
}

func mustOpenBackend(t *testing.T, dir string) repo.Backend {
	be, err := local.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	return be
}

// A snapshot committed after the mark uses a blob of the marked pack: the
// next prune makes the pack live again instead of deleting it.
func TestPruneRescuesMarkedPackUsedAgain(t *testing.T) {
	f := newFixture(t)
	refs := f.writePack(3)
	a := f.packOf(refs[0]).Pack
	f.prune(index.PruneOptions{})
	if f.packOf(refs[0]).Status != index.PackMarked {
		t.Fatal("not marked")
	}
	st := f.prune(index.PruneOptions{MaxUnusedPercent: 100}, refs[1:2])
	if len(st.RescuedPacks) != 1 || st.RescuedPacks[0] != a || len(st.DeletedPacks) != 0 {
		t.Fatalf("rescue: %+v", st)
	}
	if !f.packExists(a) || f.packOf(refs[1]).Status != index.PackLive {
		t.Fatal("rescued pack must exist and be live")
	}
	// The unused rest of it is a candidate again, like any live pack.
	st = f.prune(index.PruneOptions{MaxUnusedPercent: 5}, refs[1:2])
	if st.RepackedPacks != 1 || len(st.MarkedPacks) != 1 {
		t.Fatalf("after rescue: %+v", st)
	}
}

func TestPruneRepacksPartlyUsedPacks(t *testing.T) {
	f := newFixture(t)
	refs := f.writePack(4)
	a := f.packOf(refs[0]).Pack
	full := f.writePack(4)
	// 3 of 8 blobs unused: 37.5% of the pack space, beyond 30%.
	st := f.prune(index.PruneOptions{MaxUnusedPercent: 30, Instant: true}, refs[:1], full)
	if st.RepackedPacks != 1 || st.CopiedBlobs != 1 || len(st.DeletedPacks) != 1 || st.DeletedPacks[0] != a {
		t.Fatalf("repack: %+v", st)
	}
	if f.packExists(a) || f.packOf(refs[0]).Pack == a {
		t.Fatal("repacked pack still there")
	}
	if _, err := f.ix.LoadBlob(context.Background(), refs[0].Type, refs[0].ID, nil); err != nil {
		t.Fatal(err)
	}
	// Within the allowance nothing is repacked.
	refs = f.writePack(4)
	if st := f.prune(index.PruneOptions{MaxUnusedPercent: 100, Instant: true}, refs[:1], full); st.RepackedPacks != 0 {
		t.Fatalf("repacked within the allowance: %+v", st)
	}
}

func TestPruneRefusesWhenABlobIsMissing(t *testing.T) {
	f := newFixture(t)
	refs := f.writePack(2)
	missing := index.BlobRef{Type: repo.TreeBlob, ID: repo.ID{1, 2, 3}}
	_, err := f.tryPrune(index.PruneOptions{Instant: true}, refs[:1], []index.BlobRef{missing})
	if err == nil || !strings.Contains(err.Error(), "no pack holds") {
		t.Fatalf("prune with a missing blob: %v", err)
	}
	if !f.packExists(f.packOf(refs[1]).Pack) {
		t.Fatal("a failed prune deleted data")
	}
}

func TestPruneRemovesOrphansOnlyWhenNothingRuns(t *testing.T) {
	f := newFixture(t)
	kept := f.writePack(1)
	// An uploaded pack whose segment was never written (a killed backup).
	var pb repo.PackBuilder
	b := []byte("orphan blob")
	sealed, _ := f.r.SealBlob(b, repo.CompressionOff, nil)
	pb.Add(repo.DataBlob, repo.ID(chunk.NewHasher(f.r.IDKey()).Sum(b)), sealed)
	id, data, _ := f.r.FinishPack(&pb)
	if err := f.r.Backend().Save(context.Background(), repo.Handle{Type: repo.PackFile, Name: id.String()}, data); err != nil {
		t.Fatal(err)
	}
	// Another process holds a lock: it may be the one uploading.
	other, err := repo.Open(context.Background(), mustOpenBackend(t, f.dir+"/repo"), "pw", repo.Options{Host: "beta", Now: f.clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	l, err := other.Lock(context.Background(), repo.LockOptions{Command: "create"})
	if err != nil {
		t.Fatal(err)
	}
	if st := f.prune(index.PruneOptions{}, kept); st.OrphansKept != 1 || len(st.OrphanPacks) != 0 || !f.packExists(id) {
		t.Fatalf("orphan removed while another process runs: %+v", st)
	}
	l.Unlock()
	if st := f.prune(index.PruneOptions{}, kept); len(st.OrphanPacks) != 1 || f.packExists(id) {
		t.Fatalf("orphan kept when nothing runs: %+v", st)
	}
}

// Leftovers of an interrupted prune (a superseded segment still present)
// and a pack listed by two segments with different statuses are cleaned
// up, and the index stays whole.
func TestPruneCleansIndexLeftovers(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	refs := f.writePack(2)
	loc := f.packOf(refs[0])
	ss, err := index.ReadSegments(ctx, f.r)
	if err != nil {
		t.Fatal(err)
	}
	var oldID repo.ID
	var old *index.Segment
	for id, s := range ss.Segments {
		oldID, old = id, s
	}
	// A second segment listing the same pack as marked, superseding nothing:
	// caches would disagree depending on the order they read the two in.
	conflict := &index.Segment{Packs: []index.Pack{old.Packs[0]}}
	conflict.Packs[0].Status, conflict.Packs[0].MarkedAt = index.PackMarked, f.clk.Now().Unix()
	if _, err := f.r.SaveObject(ctx, repo.IndexFile, conflict.Encode()); err != nil {
		t.Fatal(err)
	}
	// And a segment that supersedes a copy of the original, which an
	// interrupted prune left behind.
	stale := &index.Segment{Packs: old.Packs, Supersedes: []repo.ID{{9}}}
	staleID, err := f.r.SaveObject(ctx, repo.IndexFile, stale.Encode())
	if err != nil {
		t.Fatal(err)
	}
	newer := &index.Segment{Packs: nil, Supersedes: []repo.ID{staleID}}
	if _, err := f.r.SaveObject(ctx, repo.IndexFile, newer.Encode()); err != nil {
		t.Fatal(err)
	}
	if _, err := f.ix.Sync(ctx, nil); err != nil {
		t.Fatal(err)
	}
	st := f.prune(index.PruneOptions{}, refs)
	if st.SegmentsRemoved < 3 || len(st.DeletedPacks)+len(st.MarkedPacks) != 0 {
		t.Fatalf("cleanup: %+v", st)
	}
	ss, err = index.ReadSegments(ctx, f.r)
	if err != nil {
		t.Fatal(err)
	}
	listings := 0
	for _, id := range ss.Effective() {
		for _, p := range ss.Segments[id].Packs {
			if p.ID == loc.Pack {
				listings++
				if p.Status != index.PackLive {
					t.Errorf("pack listed with status %d", p.Status)
				}
			}
		}
	}
	if listings != 1 || len(ss.SupersededBy()) != 0 {
		t.Fatalf("pack listed %d times; %d superseded segments left", listings, len(ss.SupersededBy()))
	}
	if _, err := os.Stat(f.dir + "/repo/index/" + oldID.String()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the rewritten segment is still there: %v", err)
	}
	for _, r := range refs {
		if _, err := f.ix.LoadBlob(ctx, r.Type, r.ID, nil); err != nil {
			t.Fatal(err)
		}
	}
}

func TestPruneDryRunChangesNothing(t *testing.T) {
	f := newFixture(t)
	f.writePack(2)
	before, _ := os.ReadDir(f.dir + "/repo/index")
	st := f.prune(index.PruneOptions{DryRun: true, Instant: true})
	after, _ := os.ReadDir(f.dir + "/repo/index")
	if len(st.DeletedPacks) != 1 || st.AfterBytes >= st.BeforeBytes || len(before) != len(after) {
		t.Fatalf("dry run: %+v", st)
	}
	if !f.packExists(st.DeletedPacks[0]) {
		t.Fatal("dry run deleted a pack")
	}
}

// A mark takes effect when its segment is written, not when the prune
// started: a prune whose tree walk takes longer than MarkGrace must not
// date its marks so early that a backup which started during the walk —
// whose cache never saw the marks — counts as having started after them.
func TestPruneDatesMarksWhenTheyAreWritten(t *testing.T) {
	f := newFixture(t)
	gone, kept := f.writePack(3), f.writePack(3)
	a := f.packOf(gone[0]).Pack
	start := f.clk.Now()
	var backup *repo.Lock
	o := index.PruneOptions{DeleteDelay: 5 * time.Minute}
	o.Used = func(ctx context.Context) (index.BlobSet, error) {
		// The walk of a large repository takes 30 minutes; 20 minutes in,
		// a backup starts on another host and reads the index, in which
		// the pack is still live.
		other, err := repo.Open(ctx, mustOpenBackend(t, f.dir+"/repo"), "pw",
			repo.Options{Host: "beta", Now: func() time.Time { return start.Add(20 * time.Minute) }})
		if err != nil {
			return nil, err
		}
		t.Cleanup(func() { other.Close() })
		if backup, err = other.Lock(ctx, repo.LockOptions{Command: "create"}); err != nil {
			return nil, err
		}
		f.clk.Advance(30 * time.Minute)
		set := index.BlobSet{}
		for _, r := range kept {
			set[r] = struct{}{}
		}
		return set, nil
	}
	st, err := index.Prune(context.Background(), f.ix, o)
	if err != nil {
		t.Fatal(err)
	}
	defer backup.Unlock()
	if len(st.MarkedPacks) != 1 || st.MarkedPacks[0] != a {
		t.Fatalf("marked %v", st.MarkedPacks)
	}
	if due := f.clk.Now().Add(o.DeleteDelay); !st.MarkedDue.Equal(due) {
		t.Errorf("marked due %v, want %v (the time the marks were written plus the delay)", st.MarkedDue, due)
	}
	// After the delay the backup still runs: it may rely on the pack.
	f.clk.Advance(o.DeleteDelay + time.Minute)
	st = f.prune(o, kept)
	if len(st.DeletedPacks) != 0 || !f.packExists(a) || st.PendingPacks != 1 {
		t.Fatalf("pack deleted under a backup that started before its mark was written: %+v", st)
	}
}

// TestWriterVerifyAndWithdraw: a writer whose Verify fails writes no index
// segment; Withdraw removes the segments no check confirmed after they
// were written (the repository did not answer), and leaves those it did:
// a prune reads them, and other runs may have reused their blobs.
func TestWriterVerifyAndWithdraw(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	lost := errors.New("lock removed")
	noAnswer := errors.New("no answer")
	var answers []error // what Verify says, call by call (nil once they run out)
	w, save := scriptedWriter(t, f, &answers)
	count := func() int {
		segs, err := f.r.ListIDs(ctx, repo.IndexFile)
		if err != nil {
			t.Fatal(err)
		}
		return len(segs)
	}
	save(1)
	if err := w.Flush(ctx); err != nil { // checked before and after: confirmed
		t.Fatal(err)
	}
	answers = []error{nil, noAnswer} // written, then not confirmed
	save(2)
	if err := w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if n := count(); n != 2 {
		t.Fatalf("%d segments after two flushes, want 2", n)
	}
	answers = []error{lost}
	save(3)
	if err := w.Flush(ctx); !errors.Is(err, lost) {
		t.Fatalf("flush with a failing Verify: %v", err)
	}
	if n := count(); n != 2 {
		t.Fatalf("%d segments after a failed Verify, want still 2", n)
	}
	if err := w.Withdraw(ctx); err != nil {
		t.Fatal(err)
	}
	if n := count(); n != 1 {
		t.Fatalf("%d segments after Withdraw, want the confirmed one", n)
	}
}

// TestDamagedCacheRebuilt: a cache file whose pages are garbage (or cut
// short) makes bbolt panic or fault; Open rebuilds it instead, and a cache
// marked damaged by a failed run is rebuilt by the next Open.
func TestDamagedCacheRebuilt(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	refs := f.writePack(3)
	cache := f.dir + "/cache"
	f.ix.Close()
	good, err := os.ReadFile(cache + "/index.db")
	if err != nil {
		t.Fatal(err)
	}
	damage := map[string][]byte{
		"garbage pages": append(slices.Clone(good[:8192]), bytes.Repeat([]byte{0xA5}, len(good)-8192)...),
		"cut short":     good[:len(good)/2],
	}
	for what, b := range damage {
		if err := os.WriteFile(cache+"/index.db", b, 0o600); err != nil {
			t.Fatal(err)
		}
		var logs []string
		ix, err := index.Open(ctx, f.r, cache, index.Options{Log: func(m string) { logs = append(logs, m) }})
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if _, ok := ix.Lookup(refs[0].Type, refs[0].ID); !ok {
			t.Errorf("%s: the rebuilt cache lacks a blob", what)
		}
		ix.Close()
		if what == "garbage pages" && !strings.Contains(strings.Join(logs, "\n"), "rebuilding") {
			t.Errorf("%s: nothing said the cache was rebuilt: %q", what, logs)
		}
	}
	if err := index.MarkDamaged(cache); err != nil {
		t.Fatal(err)
	}
	var logs []string
	ix, err := index.Open(ctx, f.r, cache, index.Options{Log: func(m string) { logs = append(logs, m) }})
	if err != nil {
		t.Fatal(err)
	}
	ix.Close()
	if !strings.Contains(strings.Join(logs, "\n"), "may be damaged") {
		t.Errorf("a cache marked damaged was not rebuilt: %q", logs)
	}
	if _, err := os.Stat(cache + "/index.db.damaged"); !os.IsNotExist(err) {
		t.Errorf("the marker stays: %v", err)
	}
}

// TestPruneStaleHolderComesBack: prune removes the locks it takes for
// stale before it reads the index (removed after the plan, a create that
// came back meanwhile wrote a segment the plan had not read, and the
// prune deleted the packs it names; found by a review); a holder that
// refreshed its lock between the listing and the removal (alive after
// all) stops it, and a process that merely started does not (it counted
// as one, and failed busy repositories' prunes for nothing).
func TestPruneStaleHolderComesBack(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	kept := f.writePack(1)
	plant := func(li repo.LockInfo) repo.ID {
		t.Helper()
		plain, err := json.Marshal(li)
		if err != nil {
			t.Fatal(err)
		}
		id, err := f.r.SaveObject(ctx, repo.LockFile, plain)
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	old := f.clk.Now().Add(-40 * time.Minute)
	stale := repo.LockInfo{Time: old, Created: old, Host: "beta", PID: 4242, Command: "create"}

	plant(stale)
	_, err := f.tryPrune(index.PruneOptions{BeforeWrite: func(*index.PruneStats, bool) {
		now := f.clk.Now()
		plant(repo.LockInfo{Time: now, Created: now, Host: "gamma", PID: 7, Command: "create"})
	}}, kept)
	if err != nil {
		t.Fatalf("prune with a create started after its plan: %v", err)
	}
	dry := false
	used := func(context.Context) (index.BlobSet, error) {
		// The index is read after this: the stale lock must be gone.
		locks, err := f.r.ListLocks(ctx)
		for _, l := range locks {
			if l.Info.Host == "beta" && !dry {
				t.Errorf("the stale lock is still there when the index is read")
			}
		}
		return index.BlobSet{}, err
	}
	plant(stale)
	if _, err := index.Prune(ctx, f.ix, index.PruneOptions{Used: used}); err != nil {
		t.Fatal(err)
	}
	plant(stale)
	dry = true
	if _, err := index.Prune(ctx, f.ix, index.PruneOptions{Used: used, DryRun: true}); err != nil {
		t.Fatal(err)
	}
	dry = false
	if locks, err := f.r.ListLocks(ctx); err != nil || !slices.ContainsFunc(locks, func(l repo.LockEntry) bool { return l.Info.Host == "beta" }) {
		t.Errorf("a dry run must remove no stale lock: %+v, %v", locks, err)
	}

	// Refreshed by its holder between the prune's listing and removal.
	be, err := local.Open(f.dir + "/repo")
	if err != nil {
		t.Fatal(err)
	}
	hook := &lockRemoveHook{Backend: be, before: func(name string) {
		back := stale
		back.Time = f.clk.Now()
		plant(back)
		if err := f.r.RemoveLock(ctx, name); err != nil {
			t.Error(err)
		}
	}}
	r2, err := repo.Open(ctx, hook, "pw", repo.Options{Host: "alpha", Now: f.clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	ix2, err := index.Open(ctx, r2, f.dir+"/cache2", index.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ix2.Close()
	_, err = index.Prune(ctx, ix2, index.PruneOptions{Used: used})
	if err == nil || !strings.Contains(err.Error(), "refreshed its lock while the prune was planned (shared lock of pid 4242 on beta") {
		t.Fatalf("prune with a stale holder back: %v", err)
	}
}

// lockRemoveHook runs before before the first removal of a lock file
// through it: another process acting at that moment.
type lockRemoveHook struct {
	repo.Backend
	once   sync.Once
	before func(name string)
}

func (b *lockRemoveHook) Remove(ctx context.Context, h repo.Handle) error {
	if h.Type == repo.LockFile {
		b.once.Do(func() { b.before(h.Name) })
	}
	return b.Backend.Remove(ctx, h)
}

// TestPruneKeepsTheSegmentOfKeptOrphans: a prune --instant killed while it
// deleted packs left a pack in data/ that its new segment (N1) dropped, and
// the segment that listed it (SA), superseded. A prune beside another snap
// process keeps the pack (that process may be indexing it) and must keep
// SA with it: it deleted SA, a later prune replaced N1, and a host whose
// cache knew SA but none of the prunes found SA gone, its pack in data/,
// and nothing saying it was replaced, and warned "index segment …
// disappeared … run repair index --from-packs" over garbage (found by an
// exploratory test on S3).
func TestPruneKeepsTheSegmentOfKeptOrphans(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	garbage := f.writePack(1)
	live := f.writePack(1)
	hostA, err := index.Open(ctx, f.r, f.dir+"/cacheA", index.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer hostA.Close()
	if _, err := hostA.Sync(ctx, nil); err != nil {
		t.Fatal(err)
	}
	ss, err := index.ReadSegments(ctx, f.r)
	if err != nil {
		t.Fatal(err)
	}
	garbagePack, livePack := f.packOf(garbage[0]).Pack, f.packOf(live[0]).Pack
	var sa, sb repo.ID
	var livePacks []index.Pack
	for id, s := range ss.Segments {
		if s.Packs[0].ID == garbagePack {
			sa = id
		} else {
			sb, livePacks = id, s.Packs
		}
	}
	// The killed prune --instant: N1 holds the live pack alone and
	// supersedes both; the garbage pack and SA were not deleted yet.
	if _, err := f.r.SaveObject(ctx, repo.IndexFile, (&index.Segment{Packs: livePacks, Supersedes: []repo.ID{sa, sb}}).Encode()); err != nil {
		t.Fatal(err)
	}
	other, err := repo.Open(ctx, mustOpenBackend(t, f.dir+"/repo"), "pw", repo.Options{Host: "beta", Now: f.clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	l, err := other.Lock(ctx, repo.LockOptions{Command: "create"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Unlock()
	if st := f.prune(index.PruneOptions{}, live); st.OrphansKept != 1 || !f.packExists(garbagePack) {
		t.Fatalf("the first prune beside a backup: %+v", st)
	}
	// A later prune (the live pack now unused: marked) replaces N1.
	if st := f.prune(index.PruneOptions{}); len(st.MarkedPacks) != 1 || st.MarkedPacks[0] != livePack {
		t.Fatalf("the second prune beside a backup: %+v", st)
	}
	var warnings []string
	if _, err := hostA.Sync(ctx, func(m string) { warnings = append(warnings, m) }); err != nil {
		t.Fatal(err)
	}
	if len(warnings) > 0 {
		t.Errorf("host A's cache, after the prunes it missed: %q", warnings)
	}
	// Once nothing else runs, the pack goes, and its segment after it.
	l.Unlock()
	if st := f.prune(index.PruneOptions{}); len(st.OrphanPacks) != 1 || f.packExists(garbagePack) {
		t.Fatalf("the prune once nothing else runs: %+v", st)
	}
	if _, err := f.r.Backend().Stat(ctx, repo.Handle{Type: repo.IndexFile, Name: sa.String()}); err == nil {
		t.Error("the segment of the deleted orphan is still there")
	}
}

// TestPruneDiscardsAFailedRunsPacks: packs named by Discard that no
// snapshot uses are deleted at once, a marked one too; one a snapshot
// uses stays, and so does every other unused pack, marked with the delay
// as always. Without the exclusive lock, Discard is refused.
func TestPruneDiscardsAFailedRunsPacks(t *testing.T) {
	f := newFixture(t)
	old, failed, reused, marked := f.writePack(2), f.writePack(2), f.writePack(2), f.writePack(2)
	o := index.PruneOptions{DeleteDelay: time.Hour, MaxUnusedPercent: 100}
	// An earlier prune marked one of the failed run's packs.
	if st := f.prune(o, old, failed, reused); len(st.MarkedPacks) != 1 {
		t.Fatalf("first prune marked %v", st.MarkedPacks)
	}
	pFailed, pReused, pMarked, pOld := f.packOf(failed[0]).Pack, f.packOf(reused[0]).Pack, f.packOf(marked[0]).Pack, f.packOf(old[0]).Pack
	o.Discard = map[repo.ID]bool{pFailed: true, pReused: true, pMarked: true}
	if _, err := f.tryPrune(o, reused); err == nil || !strings.Contains(err.Error(), "exclusive lock") {
		t.Fatalf("Discard without the exclusive lock: %v", err)
	}
	l, err := f.r.Lock(context.Background(), repo.LockOptions{Exclusive: true, Command: "run"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Unlock()
	o.Lock = l
	st := f.prune(o, reused)
	slices.SortFunc(st.DiscardedPacks, func(a, b repo.ID) int { return bytes.Compare(a[:], b[:]) })
	want := []repo.ID{pFailed, pMarked}
	slices.SortFunc(want, func(a, b repo.ID) int { return bytes.Compare(a[:], b[:]) })
	if !slices.Equal(st.DiscardedPacks, want) || len(st.DeletedPacks) != 0 || len(st.MarkedPacks) != 1 || st.MarkedPacks[0] != pOld {
		t.Fatalf("discarded %v (want %v), deleted %v, marked %v (want %v)", st.DiscardedPacks, want, st.DeletedPacks, st.MarkedPacks, pOld)
	}
	if f.packExists(pFailed) || f.packExists(pMarked) || !f.packExists(pReused) || !f.packExists(pOld) {
		t.Fatal("the wrong packs were deleted")
	}
	if _, err := f.ix.LoadBlob(context.Background(), reused[0].Type, reused[0].ID, nil); err != nil {
		t.Fatalf("a used blob of a pack named by Discard: %v", err)
	}
}

// storedButFailed is a backend whose segment saves store the segment and
// then fail as a full disk does after the rename (the directory's fsync):
// the segment is in place, and the writer is told it failed.
type storedButFailed struct{ repo.Backend }

func (b storedButFailed) Save(ctx context.Context, h repo.Handle, data []byte) error {
	if err := b.Backend.Save(ctx, h, data); err != nil || h.Type != repo.IndexFile {
		return err
	}
	return fmt.Errorf("%w: sync index: %w", repo.ErrNotDurable, syscall.ENOSPC)
}

// flushFailed writes one blob through a writer on a local repository
// wrapped by wrap, whose Flush must fail as on a full disk, and returns
// the repository and the writer.
func flushFailed(t *testing.T, wrap func(repo.Backend) repo.Backend) (*repo.Repository, *index.Writer) {
	t.Helper()
	dir := t.TempDir()
	be, err := local.Create(dir + "/repo")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	r, err := repo.Init(ctx, wrap(be), "pw", repo.KDFParams{Time: 1, MemoryKiB: 8 << 10, Threads: 1},
		repo.ChunkerParams{Polynomial: 0x3DA3358B4DC173, MinSize: 512 << 10, MaxSize: 8 << 20, AverageBits: 20}, repo.Options{Host: "alpha"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	ix, err := index.Open(ctx, r, dir+"/cache", index.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ix.Close() })
	w := index.NewWriter(ix, index.WriterOptions{})
	b := bytes.Repeat([]byte{7}, 1000)
	if _, err := w.Save(ctx, repo.DataBlob, repo.ID(chunk.NewHasher(r.IDKey()).Sum(b)), b); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(ctx); err == nil || !repo.DiskFull(err) {
		t.Fatalf("flush whose segment write failed: %v", err)
	}
	return r, w
}

// TestDropPendingLeavesTriedPacks: a writer that failed for lack of room
// deletes the packs no segment write named, but not those of a segment
// write that failed: that write may have stored the segment all the same,
// which then lists them (deleting them lost blobs a later create deduped
// against; found by a review).
func TestDropPendingLeavesTriedPacks(t *testing.T) {
	r, w := flushFailed(t, func(be repo.Backend) repo.Backend { return storedButFailed{be} })
	ctx := context.Background()
	if n, _ := w.DropPending(ctx); n != 0 {
		t.Errorf("DropPending deleted %d packs a stored segment lists", n)
	}
	packs, err := r.ListIDs(ctx, repo.PackFile)
	if err != nil || len(packs) != 1 {
		t.Fatalf("packs after DropPending: %v %v", packs, err)
	}
	if segs, err := r.ListIDs(ctx, repo.IndexFile); err != nil || len(segs) != 1 {
		t.Fatalf("segments: %v %v", segs, err)
	}
}

// segmentDiskFull is a local backend whose segment saves fail as a full
// disk does before the rename: nothing is stored.
type segmentDiskFull struct{ repo.Backend }

func (b segmentDiskFull) Unwrap() repo.Backend { return b.Backend }

func (b segmentDiskFull) Save(ctx context.Context, h repo.Handle, data []byte) error {
	if h.Type == repo.IndexFile {
		return fmt.Errorf("save %s: write: %w", h, syscall.ENOSPC)
	}
	return b.Backend.Save(ctx, h, data)
}

// TestDropPendingAfterSegmentNotStored: on a local repository, a segment
// write that failed for lack of room stored nothing, so its packs go with
// the others (they stayed, holding the room of a full disk; found by an
// exploratory test).
func TestDropPendingAfterSegmentNotStored(t *testing.T) {
	r, w := flushFailed(t, func(be repo.Backend) repo.Backend { return segmentDiskFull{be} })
	ctx := context.Background()
	if n, _ := w.DropPending(ctx); n != 1 {
		t.Errorf("DropPending deleted %d packs, want the one no segment lists", n)
	}
	if packs, err := r.ListIDs(ctx, repo.PackFile); err != nil || len(packs) != 0 {
		t.Fatalf("packs after DropPending: %v %v", packs, err)
	}
}

// TestPruneKeepsTheIntactCopyOfADuplicate: a blob stored twice (a crashed
// repack leaves that) is kept in the fuller pack, and the other copy goes
// with its pack. When the fuller pack's copy is damaged (bit rot), prune
// reads it, finds the damage, keeps the intact copy, and says so: it kept
// the damaged one unread and deleted the only intact copy (found by an
// exploratory test).
func TestPruneKeepsTheIntactCopyOfADuplicate(t *testing.T) {
	f := newFixture(t)
	x, y, unused := f.full(noise(30000)), f.full(bytes.Repeat([]byte("y"), 30000)), f.full(noise(40000)[10000:])
	f.writeRaw([]rawBlob{x, y, unused}) // pack A: x and y used, one blob unused
	a := f.packOf(index.BlobRef{Type: repo.DataBlob, ID: x.id}).Pack
	f.writeRaw([]rawBlob{x, y}) // pack B: a second copy of both, all used
	var b repo.ID
	_ = f.ix.Packs(func(p index.PackInfo) error {
		if p.ID != a {
			b = p.ID
		}
		return nil
	})
	flipByte(t, f.dir+"/repo/data/"+b.String()[:2]+"/"+b.String(), 20) // in B's copy of x
	used := []index.BlobRef{{Type: repo.DataBlob, ID: x.id}, {Type: repo.DataBlob, ID: y.id}}
	var logged []string
	st := f.prune(index.PruneOptions{Instant: true, MaxUnusedPercent: 100, Log: func(m string) { logged = append(logged, m) }}, used)
	if slices.Contains(st.DeletedPacks, a) || !f.packExists(a) {
		t.Fatalf("prune deleted pack A, which holds the only intact copy of x: %+v", st)
	}
	if !slices.ContainsFunc(logged, func(m string) bool { return strings.Contains(m, "is damaged") && strings.Contains(m, b.String()) }) {
		t.Errorf("no word of the damaged copy: %q", logged)
	}
	// A fresh index reads both blobs.
	f.readsFresh(used, "after the prune")
	// Duplicates whose other copy stays (in a partly used pack a prune
	// leaves as it is) are not read: they were, on every prune.
	k := newFixture(t)
	kx, ky, kz, ku := k.full(noise(30000)), k.full(bytes.Repeat([]byte("y"), 30000)), k.full(bytes.Repeat([]byte("z"), 30000)), k.full(noise(40000)[10000:])
	k.writeRaw([]rawBlob{kx, ky, kz, ku}) // x, y, z used, u not
	k.writeRaw([]rawBlob{kx, ky})
	reads := 0 // a read of the damaged copy is logged
	logged = nil
	kUsed := []index.BlobRef{{Type: repo.DataBlob, ID: kx.id}, {Type: repo.DataBlob, ID: ky.id}, {Type: repo.DataBlob, ID: kz.id}}
	// Damage B's copy of x: a read of it would be logged.
	var kb repo.ID
	ka := k.packOf(index.BlobRef{Type: repo.DataBlob, ID: kz.id}).Pack
	_ = k.ix.Packs(func(p index.PackInfo) error {
		if p.ID != ka {
			kb = p.ID
		}
		return nil
	})
	flipByte(t, k.dir+"/repo/data/"+kb.String()[:2]+"/"+kb.String(), 20)
	st = k.prune(index.PruneOptions{MaxUnusedPercent: 100, Log: func(m string) { reads++; logged = append(logged, m) }}, kUsed)
	if reads != 0 || len(st.MarkedPacks) != 0 || len(st.DeletedPacks) != 0 {
		t.Errorf("a prune that drops no copy read duplicates or dropped a pack: %q, %+v", logged, st)
	}
	// Intact duplicates: the fuller pack keeps them, the other goes.
	g := newFixture(t)
	x, y, unused = g.full(noise(30000)), g.full(bytes.Repeat([]byte("y"), 30000)), g.full(noise(40000)[10000:])
	g.writeRaw([]rawBlob{x, y, unused})
	a = g.packOf(index.BlobRef{Type: repo.DataBlob, ID: x.id}).Pack
	g.writeRaw([]rawBlob{x, y})
	used = []index.BlobRef{{Type: repo.DataBlob, ID: x.id}, {Type: repo.DataBlob, ID: y.id}}
	st = g.prune(index.PruneOptions{Instant: true}, used)
	if len(st.DeletedPacks) != 1 || st.DeletedPacks[0] != a {
		t.Errorf("intact duplicates: deleted %v, want A %s", st.DeletedPacks, a)
	}
}

// flipByte changes the byte at off of the file at path (bit rot).
func flipByte(t *testing.T, path string, off int) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	data[off] ^= 0x55
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestPruneMergesSmallPacks: more than 32 small packs in use are repacked
// into one, whose blobs all still load; the old packs are marked, and
// deleted by a prune after the delay. 32 stay, and so do any number with
// --max-unused 100 (never repack), --instant (freeing space on a full
// disk, where a merge writes before it deletes) or NoMerge (a job's prune
// after its create found the disk full).
func TestPruneMergesSmallPacks(t *testing.T) {
	f := newFixture(t)
	var used []index.BlobRef
	for range 32 {
		used = append(used, f.writePack(2)...)
	}
	if st := f.prune(index.PruneOptions{MaxUnusedPercent: 5, DeleteDelay: time.Hour}, used); st.RepackedPacks != 0 || st.SmallPacks != 0 {
		t.Fatalf("32 small packs repacked: %+v", st)
	}
	used = append(used, f.writePack(2)...)
	for _, o := range []index.PruneOptions{{MaxUnusedPercent: 100, DeleteDelay: time.Hour}, {MaxUnusedPercent: 5, Instant: true},
		{MaxUnusedPercent: 5, DeleteDelay: time.Hour, NoMerge: true}} {
		if st := f.prune(o, used); st.RepackedPacks != 0 {
			t.Fatalf("%+v repacked: %+v", o, st)
		}
	}
	old := map[repo.ID]bool{}
	for _, r := range used {
		old[f.packOf(r).Pack] = true
	}
	if st := f.prune(index.PruneOptions{MaxUnusedPercent: 5, DeleteDelay: time.Hour, DryRun: true}, used); st.RepackedPacks != 33 || st.SmallPacks != 33 {
		t.Fatalf("dry run of 33 small packs: %+v", st)
	}
	st := f.prune(index.PruneOptions{MaxUnusedPercent: 5, DeleteDelay: time.Hour}, used)
	if st.RepackedPacks != 33 || st.SmallPacks != 33 || st.CopiedBlobs != 66 || len(st.MarkedPacks) != 33 || len(st.DeletedPacks) != 0 {
		t.Fatalf("33 small packs: %+v", st)
	}
	after := map[repo.ID]bool{}
	for _, r := range used {
		p := f.packOf(r).Pack
		if old[p] {
			t.Fatalf("blob %s still in an old pack", r.ID.Short())
		}
		after[p] = true
		if _, err := f.ix.LoadBlob(context.Background(), r.Type, r.ID, nil); err != nil {
			t.Fatal(err)
		}
	}
	if len(after) != 1 {
		t.Fatalf("merged into %d packs, want 1", len(after))
	}
	f.clk.Advance(2 * time.Hour)
	if st := f.prune(index.PruneOptions{MaxUnusedPercent: 5, DeleteDelay: time.Hour}, used); len(st.DeletedPacks) != 33 || st.RepackedPacks != 0 {
		t.Fatalf("the prune after the delay: %+v", st)
	}
	for p := range old {
		if f.packExists(p) {
			t.Fatalf("merged pack %s still there", p.Short())
		}
	}
	for _, r := range used {
		if _, err := f.ix.LoadBlob(context.Background(), r.Type, r.ID, nil); err != nil {
			t.Fatal(err)
		}
	}
}

// failingIndexLoads fails every load of an index segment as a store that
// stopped answering does (retried, then given up), and counts them.
type failingIndexLoads struct {
	repo.Backend
	loads int
}

func (b *failingIndexLoads) Load(ctx context.Context, h repo.Handle, offset, length int64) ([]byte, error) {
	if h.Type == repo.IndexFile {
		b.loads++
		return nil, fmt.Errorf("load %s: %w", h, repo.ErrTransient)
	}
	return b.Backend.Load(ctx, h, offset, length)
}

// TestReadSegmentsStopsWithoutAnswer: a store that does not answer ends
// the read of the segments with one error, after one segment: not every
// segment called unreadable, with advice to repair, after a round of
// retries each (found by an exploratory test on S3).
func TestReadSegmentsStopsWithoutAnswer(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.writePack(1)
	f.writePack(1)
	be := &failingIndexLoads{Backend: mustOpenBackend(t, f.dir+"/repo")}
	r, err := repo.Open(ctx, be, "pw", repo.Options{Host: "alpha", Now: f.clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ss, err := index.ReadSegments(ctx, r)
	if !errors.Is(err, repo.ErrTransient) || ss != nil || be.loads != 1 {
		t.Fatalf("ReadSegments without answers: %v, %v, %d loads", ss, err, be.loads)
	}
}

// TestWithdrawKeepsLaterConfirmed: a segment whose post-write check got
// no answer is confirmed by the next successful check (the lock existed
// after the segment was whole), and Withdraw leaves it (it removed it;
// found by a review).
func TestWithdrawKeepsLaterConfirmed(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	noAnswer := errors.New("no answer")
	var answers []error
	w, saveBlob := scriptedWriter(t, f, &answers)
	save := func(seed byte) {
		saveBlob(seed)
		if err := w.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	answers = []error{nil, noAnswer} // S1 written, post-check unanswered
	save(1)
	answers = []error{nil, nil} // S2: pre-check finds the lock: S1 was whole while the lock stood
	save(2)
	if err := w.Withdraw(ctx); err != nil {
		t.Fatal(err)
	}
	segs, _ := f.r.ListIDs(ctx, repo.IndexFile)
	if len(segs) != 2 {
		t.Fatalf("%d segments after Withdraw, want 2 (S1 was confirmed by S2's pre-write check)", len(segs))
	}
}

// failingPackLoads fails every load from a pack as a store that stopped
// answering does, and counts them.
type failingPackLoads struct {
	repo.Backend
	mu    sync.Mutex
	loads int
	down  atomic.Bool // every load fails: the store is gone
}

func (b *failingPackLoads) Load(ctx context.Context, h repo.Handle, offset, length int64) ([]byte, error) {
	if h.Type == repo.PackFile {
		b.mu.Lock()
		b.loads++
		b.mu.Unlock()
		return nil, fmt.Errorf("load %s: %w", h, repo.ErrTransient)
	}
	if b.down.Load() {
		return nil, fmt.Errorf("load %s: %w", h, repo.ErrTransient)
	}
	return b.Backend.Load(ctx, h, offset, length)
}

// TestCheckPacksStopsWithoutAnswer: a store that does not answer while
// check reads the packs' trailers stops the check with one error, not a
// damaged pack each with advice to move it out (found by an exploratory
// test on S3).
func TestCheckPacksStopsWithoutAnswer(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	for range 8 {
		f.writePack(1)
	}
	be := &failingPackLoads{Backend: mustOpenBackend(t, f.dir+"/repo")}
	r, err := repo.Open(ctx, be, "pw", repo.Options{Host: "alpha", Now: f.clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ck, err := index.NewChecker(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	// The packs fail while the config reads: the store answers, and the
	// first few are problems of their own (objects the server fails);
	// then pack after pack failing is a store that stopped answering
	// (throttling, a storage node down), not a minute of retries each.
	err = ck.CheckPacks(ctx, 1)
	if err == nil || !strings.Contains(err.Error(), "stopped answering") || ck.ProblemCount() != 3 || be.loads != 4 {
		t.Fatalf("CheckPacks with every pack failing: %v, %d problems, %d loads", err, ck.ProblemCount(), be.loads)
	}
	for _, p := range ck.Problems() {
		if p.Kind != "unanswered_pack" {
			t.Errorf("problem %s: %s", p.Kind, p.Message)
		}
	}
	ck, err = index.NewChecker(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	be.down.Store(true)
	be.loads = 0
	err = ck.CheckPacks(ctx, 2)
	if err == nil || !strings.Contains(err.Error(), "stopped answering") || ck.ProblemCount() != 0 || be.loads > 4 {
		t.Fatalf("CheckPacks without answers: %v, %d problems, %d loads", err, ck.ProblemCount(), be.loads)
	}
}

// scriptedWriter is a Writer whose lock check (Verify) answers from
// *answers, call by call (nil once they run out), and a function that
// saves a blob of 1000 bytes of seed through it.
func scriptedWriter(t *testing.T, f *fixture, answers *[]error) (*index.Writer, func(seed byte)) {
	t.Helper()
	w := index.NewWriter(f.ix, index.WriterOptions{Verify: func(context.Context) error {
		if len(*answers) == 0 {
			return nil
		}
		err := (*answers)[0]
		*answers = (*answers)[1:]
		return err
	}})
	save := func(seed byte) {
		b := bytes.Repeat([]byte{seed}, 1000)
		if _, err := w.Save(context.Background(), repo.DataBlob, repo.ID(chunk.NewHasher(f.r.IDKey()).Sum(b)), b); err != nil {
			t.Fatal(err)
		}
	}
	return w, save
}

// TestRepackSalvagesFromMarkedTwin: a blob stored twice, one copy kept
// live and the other's pack marked; bit rot then damages the live copy.
// A repack of the live pack (what check advises) finds the damage and
// copies the intact copy out of the marked pack, so the prune that deletes
// the marked pack loses nothing: it kept the damaged copy alone, and the
// only intact one went with the marked pack (found by an exploratory test).
// TestRepackOfDamagedCopyWithLiveTwin: the repack of a pack whose copy of
// a blob is damaged, while a pack that stays holds it intact, called the
// blob lost ("moving the damaged packs out loses only them") and kept the
// pack listed for it. The intact copy holds it: the repack ends cleanly.
func TestRepackOfDamagedCopyWithLiveTwin(t *testing.T) {
	f := newFixture(t)
	x, y, z, unused := f.full(noise(30000)), f.full(bytes.Repeat([]byte("y"), 30000)), f.full(bytes.Repeat([]byte("z"), 30000)), f.full(noise(40000)[10000:])
	f.writeRaw([]rawBlob{x, y, unused})
	f.writeRaw([]rawBlob{x, z})
	used := []index.BlobRef{{Type: repo.DataBlob, ID: x.id}, {Type: repo.DataBlob, ID: y.id}, {Type: repo.DataBlob, ID: z.id}}
	damaged := f.packOf(index.BlobRef{Type: repo.DataBlob, ID: z.id}).Pack
	var at index.Location
	if err := f.ix.Blobs(func(l index.Location) error {
		if l.Pack == damaged && l.Entry.ID == x.id {
			at = l
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if at.Pack != damaged {
		t.Fatalf("x is not in z's pack %s", damaged)
	}
	flipByte(t, f.dir+"/repo/data/"+damaged.String()[:2]+"/"+damaged.String(), int(at.Entry.Offset+at.Entry.Length/2))
	if ps := f.readData(); len(ps) != 1 || ps[0].Kind != "damaged_pack" ||
		!strings.Contains(ps[0].Repair, "every damaged blob in it has an intact copy in another pack, so no snapshot lost data: run 'snap prune --repack "+damaged.Short()) {
		t.Errorf("check's problems: %+v", ps)
	}
	var logged []string
	st, err := f.tryPrune(index.PruneOptions{MaxUnusedPercent: 100, DeleteDelay: time.Hour, Repack: []string{damaged.String()}, Log: func(m string) { logged = append(logged, m) }}, used)
	if err != nil {
		t.Fatalf("repack of a pack whose damaged blob another pack holds intact: %v", err)
	}
	if !slices.Equal(st.MarkedPacks, []repo.ID{damaged}) || len(st.DamagedPacks) != 0 {
		t.Errorf("marked %v, damaged %v; want %s marked", st.MarkedPacks, st.DamagedPacks, damaged)
	}
	// Only z was copied (x was counted too; found by a review).
	if st.CopiedBlobs != 1 {
		t.Errorf("%d blobs (%d bytes) counted as copied, want 1", st.CopiedBlobs, st.CopiedBytes)
	}
	if !slices.ContainsFunc(logged, func(m string) bool { return strings.Contains(m, "holds an intact copy, which stays") }) {
		t.Errorf("no word of the intact copy: %q", logged)
	}
	f.prune(index.PruneOptions{MaxUnusedPercent: 100, Instant: true, Log: func(string) {}}, used)
	if f.packExists(damaged) {
		t.Errorf("the damaged pack %s is still there", damaged)
	}
	f.readsFresh(used, "after the repack and an instant prune")
}

// TestDuePruneKeepsMarkedTwinOfDamagedCopy: a blob stored twice, one
// copy kept and the other's pack marked; the kept copy rots during the
// delete delay. The prune that finds the mark due read nothing and deleted
// the marked pack, the only intact copy (found by an exploratory test).
// Now it reads the kept copy first and makes the marked pack live again.
func TestDuePruneKeepsMarkedTwinOfDamagedCopy(t *testing.T) {
	f := newFixture(t)
	used := f.twoCopies()
	o := index.PruneOptions{MaxUnusedPercent: 100, DeleteDelay: time.Hour}
	st := f.prune(o, used)
	if len(st.MarkedPacks) != 1 {
		t.Fatalf("the first prune marked %v, want one of the two packs", st.MarkedPacks)
	}
	marked := st.MarkedPacks[0]
	live := f.packOf(used[0])
	f.clk.Advance(o.DeleteDelay + time.Minute)

	// Intact: the due prune reads the kept copies and deletes the mark.
	if st := f.prune(index.PruneOptions{MaxUnusedPercent: 100, DeleteDelay: time.Hour, DryRun: true}, used); len(st.DeletedPacks) != 1 || st.DeletedPacks[0] != marked {
		t.Fatalf("a dry run with intact copies deletes %v, want %s", st.DeletedPacks, marked)
	}

	flipByte(t, f.dir+"/repo/data/"+live.Pack.String()[:2]+"/"+live.Pack.String(), int(live.Entry.Offset+live.Entry.Length/2))
	// check --read-data says nothing was lost, and where the copy is.
	if ps := f.readData(); len(ps) != 1 || ps[0].Kind != "damaged_pack" ||
		!strings.Contains(ps[0].Repair, "every damaged blob in it has an intact copy in another pack (1 only in packs marked for deletion), so no snapshot lost data: run 'snap prune --repack "+live.Pack.Short()) {
		t.Errorf("check's problems: %+v", ps)
	}

	var logged []string
	o.Log = func(m string) { logged = append(logged, m) }
	st = f.prune(o, used)
	if len(st.DeletedPacks) != 0 || !slices.Equal(st.RescuedPacks, []repo.ID{marked}) {
		t.Fatalf("the due prune deleted %v and rescued %v; want %s rescued, nothing deleted", st.DeletedPacks, st.RescuedPacks, marked)
	}
	if !slices.ContainsFunc(logged, func(m string) bool {
		return strings.Contains(m, live.Pack.String()) && strings.Contains(m, "is damaged")
	}) || !slices.ContainsFunc(logged, func(m string) bool {
		return strings.Contains(m, "pack "+marked.String()+", marked for deletion, holds the intact copy") && strings.Contains(m, "live again")
	}) {
		t.Errorf("no word of the damage and the rescue: %q", logged)
	}
	if !f.packExists(marked) {
		t.Fatalf("the pack holding the intact copy of x is gone")
	}
	f.readsFresh(used, "after the due prune")

	// Later prunes keep it while the kept copy stays damaged, and a
	// repack of the damaged pack, as check advises, ends it cleanly.
	f.clk.Advance(o.DeleteDelay + time.Minute)
	f.prune(index.PruneOptions{MaxUnusedPercent: 100, DeleteDelay: time.Hour, Log: func(string) {}}, used)
	f.clk.Advance(o.DeleteDelay + time.Minute)
	f.prune(index.PruneOptions{MaxUnusedPercent: 100, DeleteDelay: time.Hour, Log: func(string) {}}, used)
	if !f.packExists(marked) {
		t.Fatalf("a later prune deleted the pack holding the intact copy of x")
	}
	f.readsFresh(used, "after later prunes")
	if _, err := f.tryPrune(index.PruneOptions{MaxUnusedPercent: 100, DeleteDelay: time.Hour, Repack: []string{live.Pack.String()}, Log: func(string) {}}, used); err != nil {
		t.Errorf("repack of the damaged pack, whose damaged blob has an intact copy: %v", err)
	}
	f.prune(index.PruneOptions{MaxUnusedPercent: 0, Instant: true, Log: func(string) {}}, used)
	if f.packExists(live.Pack) {
		t.Errorf("the damaged pack %s is still there after its repack and an instant prune", live.Pack)
	}
	f.readsFresh(used, "after the repack and an instant prune")
}

func TestRepackSalvagesFromMarkedTwin(t *testing.T) {
	f := newFixture(t)
	used := f.twoCopies()
	st := f.prune(index.PruneOptions{MaxUnusedPercent: 100, DeleteDelay: time.Hour}, used)
	if len(st.MarkedPacks) != 1 {
		t.Fatalf("the first prune marked %v, want one of the two packs", st.MarkedPacks)
	}
	marked := st.MarkedPacks[0]
	live := f.packOf(used[0])
	if live.Pack == marked || live.Status != index.PackLive {
		t.Fatalf("x is at %+v", live)
	}
	flipByte(t, f.dir+"/repo/data/"+live.Pack.String()[:2]+"/"+live.Pack.String(), int(live.Entry.Offset+live.Entry.Length/2))
	var logged []string
	log := func(m string) { logged = append(logged, m) }
	if _, err := f.tryPrune(index.PruneOptions{MaxUnusedPercent: 100, DeleteDelay: time.Hour, Repack: []string{live.Pack.String()}, Log: log}, used); err != nil {
		t.Fatalf("repack of the pack whose copy of x is damaged: %v", err)
	}
	if !slices.ContainsFunc(logged, func(m string) bool {
		return strings.Contains(m, "is damaged") && strings.Contains(m, "the intact copy in pack "+marked.String()+", marked for deletion, was copied instead")
	}) {
		t.Errorf("no word of the salvage: %q", logged)
	}
	f.prune(index.PruneOptions{MaxUnusedPercent: 100, Instant: true}, used)
	if f.packExists(marked) {
		t.Errorf("the marked pack %s is still there", marked)
	}
	f.readsFresh(used, "after the prunes")
}
