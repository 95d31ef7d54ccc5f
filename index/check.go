package index

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"sync"

	"github.com/snap-backup/snap/chunk"
	"github.com/snap-backup/snap/repo"
	"github.com/snap-backup/snap/repo/retry"
)

// Problem is one thing check found wrong, with the repair that applies.
type Problem struct {
	Kind    string `json:"kind"`   // e.g. "missing_pack", "trailer_mismatch", "damaged_pack", "snapshot"
	Object  string `json:"object"` // the repository object: "data/3f/3f2a…", "index/…", "snapshots/…"
	Message string `json:"message"`
	Repair  string `json:"repair"`
	pack    repo.ID
	settle  bool // a missing pack whose repair SettleMissing words
	kept    bool // a pack a repack kept for its damaged blobs alone
}

// Repairs named by check's problems.
const (
	RepairFromPacks = "run 'snap repair index --from-packs' to rebuild the index from the pack files"
	RepairDamaged   = "the pack is damaged: move it out of data/ (on S3, the object out of the repository's prefix), run 'snap repair index --from-packs', then 'snap create' the affected paths again " +
		"(their data is stored anew and the older snapshots become whole again); if the data no longer exists, 'snap forget' the affected snapshots and run 'snap prune' " +
		"(prune refuses while a snapshot refers to a blob no pack holds)"
)

// RepairDamagedTree is the repair for a pack with a damaged tree blob: a
// backup made again does not make a snapshot's old trees again, so the
// snapshots that need it stay incomplete; what they still hold is restored
// first (the files of the other directories read as before).
const RepairDamagedTree = "a directory listing (tree) in the pack is damaged: first restore what the affected snapshots still hold that you need " +
	"('snap restore SNAPSHOT:PATH' of the parts outside the damaged directory, or with --exclude it; 'snap check' names them once the pack is gone), " +
	"then move the pack out of data/, run 'snap repair index --from-packs' and 'snap create' the paths again (new snapshots; the old ones stay incomplete), " +
	"and 'snap forget' the affected snapshots and run 'snap prune' (prune refuses while a snapshot refers to a blob no pack holds)"

// Checker verifies the repository's index and packs. It reads the segments
// directly, so it works when the local cache cannot be built, and it keeps
// its own map of where every blob is (memory grows with the number of
// blobs, as for prune).
type Checker struct {
	r       *repo.Repository
	hashers sync.Pool

	ss    *SegmentSet
	disk  map[repo.ID]int64
	packs map[repo.ID]Pack // effective listing of each indexed pack
	// locs says where the index lists each blob, as a place: the pack's
	// number in packIDs (high half) and the blob's in that pack's Blobs
	// (low half); more holds the further places of a blob listed more
	// than once (an interrupted repack, two backups at once). A slice of
	// Locations per blob took 250 MB of a check's 354 MB heap for a
	// million blobs (locations builds them on demand).
	locs    map[BlobRef]uint64
	more    map[BlobRef][]uint64
	packIDs []repo.ID

	mu       sync.Mutex
	problems []Problem
	notes    []string
	damaged  map[packBlob]bool // blobs that failed to read back, by pack
	read     map[repo.ID]bool  // packs read whole (ReadData), for SettleDamaged
	gone     map[repo.ID]bool  // indexed packs that are missing or unreadable
	// needed holds, per missing pack, the blobs a snapshot needed that no
	// other pack holds (available), for SettleMissing.
	needed map[repo.ID]map[BlobRef]bool
	// unindexed counts the packs in data/ that no segment lists.
	unindexed int
	// unverified counts deltas read whose bases could not be read, so
	// their content could not be checked (see readPack).
	unverified int
	// unverifiedCopies are those deltas, which SettleDamaged may not
	// count as intact copies (a review found it advising a repack that
	// failed, and saying no data was lost where a blob was).
	unverifiedCopies map[packBlob]bool

	// isBase are the blobs that deltas of the packs ReadData reads name
	// as bases.
	isBase map[repo.ID]bool
	// bases keeps the verified plaintexts of recently used delta bases:
	// the small files of a run are deltas of one dictionary, which would
	// otherwise be read again for each of them.
	bases baseCache
	// treePacks keeps whole tree packs read from the repository, when
	// ReadTreePacksWhole asked for it (see there).
	treePacks      baseCache
	wholeTreePacks bool

	// denied is the first permission error: an object this user may not
	// read is not damaged, and check reports it as the one error.
	denied error
	// unanswered is the first pack the repository gave no answer for,
	// its retries given up: not damage, and the reading stops there.
	unanswered error
	// failedPacks are the packs the repository failed every request
	// for while it answered others (unanswered_pack): one problem each,
	// and read-data does not wait for their retries again.
	failedPacks map[repo.ID]bool

	ReadPacks int
	ReadBytes int64
}

// treePackCacheBytes bounds the whole tree packs a check keeps: four of
// the default size, with room to spare (baseCache keeps none larger than a
// quarter of it).
const treePackCacheBytes = 4 * (repo.DefaultPackSize + repo.DefaultPackSize/4)

// ReadTreePacksWhole makes the check read a tree pack whole the first time
// it needs a tree of it, and each further tree of that pack from those
// bytes, rather than ask for each tree by its range: on S3 that is a
// request per directory, one after another (3,000 directories took 3,037
// requests and nearly two minutes at a 30 ms round trip; found by an
// exploratory test). Every tree is still verified from the repository's
// bytes, never from the local tree pack cache. For a remote repository.
func (c *Checker) ReadTreePacksWhole() {
	c.wholeTreePacks = true
	c.treePacks.max = treePackCacheBytes
}

// treeFromWholePack reads the tree blob at l from its pack read whole
// (ReadTreePacksWhole); ok is false for a pack too large to keep, or of a
// size the listing did not give, which is read by range instead.
func (c *Checker) treeFromWholePack(ctx context.Context, l Location) (plain []byte, ok bool, err error) {
	pack, ok := c.treePacks.get(l.Pack)
	if !ok {
		size := c.disk[l.Pack]
		if size <= 0 || size > int64(c.treePacks.limit()/4) {
			return nil, false, nil
		}
		b, err := c.r.Backend().Load(ctx, repo.Handle{Type: repo.PackFile, Name: l.Pack.String()}, 0, 0)
		if err != nil {
			return nil, true, fmt.Errorf("load %s blob %s: %w", l.Entry.Type, l.Entry.ID, err)
		}
		c.treePacks.put(l.Pack, b)
		pack = b
	}
	end := int64(l.Entry.Offset) + int64(l.Entry.Length)
	if end > int64(len(pack)) {
		return nil, true, &repo.CorruptError{Object: fmt.Sprintf("%s blob %s in pack %s", l.Entry.Type, l.Entry.ID, l.Pack), Reason: "the pack ends before the blob (truncated?)"}
	}
	plain, err = c.r.OpenBlob(l.Pack, l.Entry, pack[l.Entry.Offset:end], nil)
	return plain, true, err
}

// UnindexedPacks is the number of packs in the repository that no index
// segment lists.
func (c *Checker) UnindexedPacks() int { return c.unindexed }

// accessDenied records err when it is a permission error and says so.
func (c *Checker) accessDenied(err error) bool {
	if !errors.Is(err, fs.ErrPermission) {
		return false
	}
	c.mu.Lock()
	if c.denied == nil {
		c.denied = err
	}
	c.mu.Unlock()
	return true
}

// maxFailedPacks is how many packs the repository may fail (while it
// answers other requests) before check takes it for a repository that
// stopped answering.
const maxFailedPacks = 3

// noAnswer handles err, a read of pack id, when it is a failure the
// repository's retries gave up on, and reports whether it was one (the
// caller is done with the pack; Unanswered says whether the check stops).
// When the repository still answers (its config reads), the failure is the
// pack's alone: an object a server fails every request for (HTTP 500 for
// a rotten object on MinIO or Ceph) stopped every check there, advising to
// run it again, and the packs after it were never read (found by an
// exploratory test). That pack is then a problem of its own
// (unanswered_pack), and the check goes on, up to maxFailedPacks of them.
func (c *Checker) noAnswer(ctx context.Context, id repo.ID, err error) bool {
	if !errors.Is(err, repo.ErrTransient) {
		return false
	}
	// One try, past the retries: a server that is gone must not cost a
	// second minute of them (found by a review).
	probe := c.r.Backend()
	if rb, ok := repo.As[*retry.Backend](probe); ok {
		probe = rb.Unwrap()
	}
	if _, perr := probe.Load(ctx, repo.Handle{Type: repo.ConfigFile}, 0, 0); perr != nil {
		c.stopAt(fmt.Errorf("pack %s: %w", id, err))
		return true
	}
	c.mu.Lock()
	if c.failedPacks == nil {
		c.failedPacks = map[repo.ID]bool{}
	}
	again := c.failedPacks[id]
	c.failedPacks[id] = true
	failed := len(c.failedPacks)
	c.mu.Unlock()
	switch {
	case again:
	case failed > maxFailedPacks:
		// Pack after pack: throttling or a storage node down, not
		// objects damaged one by one; each cost a minute of retries.
		c.stopAt(fmt.Errorf("pack %s and %d before it: %w", id, failed-1, err))
	default:
		c.addPack(Problem{Kind: "unanswered_pack", Object: packObject(id), pack: id,
			Message: fmt.Sprintf("pack %s: the repository answered other requests, but not this pack's: %v", id, err),
			Repair:  "run the check again; if this pack fails again, the object is damaged on the server: have it looked at there, or " + RepairDamaged})
	}
	return true
}

// failed reports whether pack id is an unanswered_pack (noAnswer).
func (c *Checker) failed(id repo.ID) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.failedPacks[id]
}

// stopAt records err as the first read the repository gave no answer
// for (Unanswered): the check stops.
func (c *Checker) stopAt(err error) {
	c.mu.Lock()
	if c.unanswered == nil {
		c.unanswered = err
	}
	c.mu.Unlock()
}

// Unanswered returns the error of the first pack CheckPacks or ReadData
// got no answer for, if any (its retries given up: the repository stopped
// answering). They stopped there; the packs not read are no verdict.
func (c *Checker) Unanswered() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.unanswered
}

// FailedPacks returns how many packs the repository failed every retry
// for while it answered others (unanswered_pack problems).
func (c *Checker) FailedPacks() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.failedPacks)
}

// Denied returns the first permission error check met, if any: the check
// could not read the whole repository, and its findings are no verdict.
func (c *Checker) Denied() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.denied
}

// NewChecker reads the index and lists the packs.
func NewChecker(ctx context.Context, r *repo.Repository) (*Checker, error) {
	c := &Checker{r: r, disk: map[repo.ID]int64{}, packs: map[repo.ID]Pack{}, locs: map[BlobRef]uint64{}, more: map[BlobRef][]uint64{}, damaged: map[packBlob]bool{}, gone: map[repo.ID]bool{}, needed: map[repo.ID]map[BlobRef]bool{}}
	c.bases.max = ReadBaseCacheBytes
	key := r.IDKey()
	c.hashers.New = func() any { return chunk.NewHasher(key) }
	ss, err := ReadSegments(ctx, r)
	if err != nil {
		return nil, err
	}
	c.ss = ss
	for id, e := range ss.Unreadable {
		c.add(Problem{Kind: "unreadable_segment", Object: "index/" + id.String(), Message: fmt.Sprintf("index segment %s cannot be read: %v", id, e), Repair: RepairFromPacks})
	}
	err = r.Backend().List(ctx, repo.PackFile, func(name string, size int64) error {
		if id, err := repo.ParseID(name); err == nil {
			c.disk[id] = size
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list packs: %w", err)
	}
	for _, sid := range ss.Effective() {
		for _, p := range ss.Segments[sid].Packs {
			if _, ok := c.packs[p.ID]; ok {
				continue
			}
			c.packs[p.ID] = p
			pi := uint64(len(c.packIDs)) << 32
			c.packIDs = append(c.packIDs, p.ID)
			for bi, e := range p.Blobs {
				k := BlobRef{e.Type, e.ID}
				if _, ok := c.locs[k]; ok {
					c.more[k] = append(c.more[k], pi|uint64(bi))
				} else {
					c.locs[k] = pi | uint64(bi)
				}
			}
		}
	}
	if n := len(ss.SupersededBy()); n > 0 {
		// Both a prune and 'repair index --from-packs' write the new
		// segments before they remove the ones they replace.
		what, them := fmt.Sprintf("%d superseded index segments are", n), "them"
		if n == 1 {
			what, them = "1 superseded index segment is", "it"
		}
		c.note(fmt.Sprintf("%s still present (left by an interrupted prune or 'snap repair index --from-packs'); the next 'snap prune' removes %s", what, them))
	}
	unindexed := 0
	for id := range c.disk {
		if _, ok := c.packs[id]; !ok {
			unindexed++
		}
	}
	if unindexed > 0 {
		what := fmt.Sprintf("%d packs are", unindexed)
		if unindexed == 1 {
			what = "1 pack is"
		}
		c.unindexed = unindexed
		if len(ss.Unreadable) > 0 {
			// They may be the packs the unreadable segments list: not
			// leftovers to remove, but data to index again.
			c.note(fmt.Sprintf("%s not indexed: the index segments that cannot be read may list them; 'snap repair index --from-packs' indexes them again", what))
		} else {
			// Or listed by a segment that was lost, or that an older snap
			// could not read and left out of its repair: with blobs
			// missing, they are data to index again, not leftovers.
			c.note(fmt.Sprintf("%s not indexed: left by interrupted runs, being written by a running backup, or listed by an index segment that was lost; if check reports snapshots that miss blobs, run 'snap repair index --from-packs' before any forget or prune; otherwise 'snap prune' removes them", what))
		}
	}
	return c, nil
}

func (c *Checker) add(p Problem) {
	c.mu.Lock()
	c.problems = append(c.problems, p)
	c.mu.Unlock()
}

// addPack adds a problem about a pack's bytes. A pack marked for deletion
// gets a note instead: no snapshot needed it when it was marked, and a
// prune deletes it once its delete delay has passed; a snapshot that uses
// one of its blobs since is reported by its own check (Available).
func (c *Checker) addPack(p Problem) {
	if c.packs[p.pack].Status != PackLive {
		c.note(fmt.Sprintf("%s (marked for deletion: a prune deletes it once its delete delay has passed)", p.Message))
		return
	}
	c.add(p)
}

func (c *Checker) note(s string) {
	c.mu.Lock()
	c.notes = append(c.notes, s)
	c.mu.Unlock()
}

// Problems returns what was found wrong so far.
func (c *Checker) Problems() []Problem {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.problems)
}

// ProblemCount is the number of problems found so far.
func (c *Checker) ProblemCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.problems)
}

// AddProblem records a problem found by the caller (the snapshot walk).
func (c *Checker) AddProblem(p Problem) { c.add(p) }

// Notes returns remarks that are not errors.
func (c *Checker) Notes() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.notes)
}

// PackCount and BlobCount say how much the index lists.
func (c *Checker) PackCount() int { return len(c.packs) }

// BlobCount is the number of distinct blobs the index lists.
func (c *Checker) BlobCount() int { return len(c.locs) }

// SegmentCount is the number of index segments read.
func (c *Checker) SegmentCount() int { return len(c.ss.Segments) + len(c.ss.Unreadable) }

// PackSizes returns the indexed packs that exist, with their sizes, sorted
// by ID: the candidates for reading data.
func (c *Checker) PackSizes() []PackSize {
	var out []PackSize
	for id := range c.packs {
		if size, ok := c.disk[id]; ok && !c.gone[id] {
			out = append(out, PackSize{ID: id, Size: size})
		}
	}
	slices.SortFunc(out, func(a, b PackSize) int { return compareIDs(a.ID, b.ID) })
	return out
}

type packBlob struct {
	pack repo.ID
	blob BlobRef
}

// PackSize is a pack and its size.
type PackSize struct {
	ID   repo.ID
	Size int64
}

func packObject(id repo.ID) string {
	return repo.Handle{Type: repo.PackFile, Name: id.String()}.String()
}

// CheckPacks checks that every indexed pack exists with the size the
// index gives, and that its trailer lists the same blobs as the index.
func (c *Checker) CheckPacks(ctx context.Context, workers int) error {
	// A repository that stops answering stops the check, as it stops
	// ReadData: each trailer after it would wait out its retries and be
	// called damaged, with the advice to move the pack out (found by an
	// exploratory test against an S3 server that went down).
	outer := ctx
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ids := make([]repo.ID, 0, len(c.packs))
	for id := range c.packs {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, compareIDs)
	err := forEach(ctx, ids, workers, func(id repo.ID) {
		p := c.packs[id]
		size, ok := c.disk[id]
		if !ok {
			c.markGone(id)
			if p.Status != PackLive {
				// Deleted from outside (a bucket's lifecycle rule, an
				// admin's clean-up) after a prune marked it: an error
				// whose "snapshots affected" list never came (found by
				// an exploratory test). A snapshot that uses one of its
				// blobs since is reported by its own check (Available).
				c.note(fmt.Sprintf("pack %s, marked for deletion, is missing from the repository: no snapshot needed it when it was marked, and the next prune drops it from the index", id))
				return
			}
			c.add(Problem{Kind: "missing_pack", Object: packObject(id), pack: id, settle: true,
				Message: fmt.Sprintf("pack %s is listed in the index but missing from the repository (%s)", id, count(len(p.Blobs), "blob")),
				Repair:  "its blobs are lost unless another pack holds them (the snapshots that need them are listed below); run 'snap repair index --from-packs' to drop it from the index"})
			return
		}
		if size < p.Size {
			// Its trailer, at the end, is gone with the rest: one problem,
			// with the advice that keeps what is left (not a second one
			// about the trailer, whose advice read otherwise).
			c.addPack(Problem{Kind: "pack_size", Object: packObject(id), pack: id,
				Message: fmt.Sprintf("pack %s has %d bytes, the index says %d", id, size, p.Size), Repair: c.repairFor(id)})
			// The blobs past its end are lost: the snapshots that need
			// them are named as for a missing pack. Only --read-data
			// named them (found by an exploratory test).
			c.mu.Lock()
			for _, e := range p.Blobs {
				if int64(e.Offset)+int64(e.Length) > size {
					c.damaged[packBlob{id, BlobRef{e.Type, e.ID}}] = true
				}
			}
			c.mu.Unlock()
			return
		}
		if size > p.Size {
			// Bytes added after its end (an append by mistake, a copy
			// tool): the pack's own bytes may all be there. Moving it out,
			// as for damage, lost every blob it held (found by an
			// exploratory test); its trailer at the old end tells.
			if ents, err := c.r.LoadTrailer(ctx, id, p.Size); err == nil && compareEntries(p.Blobs, ents) == "" {
				c.addPack(Problem{Kind: "pack_size", Object: packObject(id), pack: id,
					Message: fmt.Sprintf("pack %s has %d bytes, the index says %d: bytes were added after its end", id, size, p.Size),
					Repair:  fmt.Sprintf("its own bytes end with the trailer the index has, so its blobs are likely intact (each is verified when read; 'snap check --read-data' proves it): keep it, and run 'snap prune --repack %s', which writes its blobs into a new pack and deletes this one", id.Short())})
				return
			}
		}
		if size != p.Size {
			c.addPack(Problem{Kind: "pack_size", Object: packObject(id), pack: id,
				Message: fmt.Sprintf("pack %s has %d bytes, the index says %d", id, size, p.Size), Repair: RepairDamaged})
		}
		ents, err := c.r.LoadTrailer(ctx, id, size)
		if err != nil {
			if ctx.Err() != nil || c.accessDenied(err) {
				return
			}
			if c.noAnswer(ctx, id, err) {
				if c.Unanswered() != nil {
					cancel()
				}
				return
			}
			if errors.Is(err, repo.ErrNotFound) {
				c.markGone(id)
				c.add(Problem{Kind: "missing_pack", Object: packObject(id), pack: id, Message: fmt.Sprintf("pack %s vanished while being checked", id), Repair: RepairFromPacks})
				return
			}
			c.addPack(Problem{Kind: "unreadable_trailer", Object: packObject(id), pack: id, Message: fmt.Sprintf("pack %s: %v", id, err),
				Repair: "the index still lists its blobs, and each is verified when read: run 'snap check --read-data' to see whether they are intact; if they are, keep the pack (moving it out loses them); otherwise " + RepairDamaged})
			return
		}
		if why := compareEntries(p.Blobs, ents); why != "" {
			if len(p.Blobs) < len(ents) && subsetOf(p.Blobs, ents) {
				// A repack kept it for its damaged blobs alone (prune's
				// DamagedError): the rest have copies elsewhere, and a
				// repair must not list them here again.
				c.addPack(Problem{Kind: "damaged_pack", Object: packObject(id), pack: id,
					Message: fmt.Sprintf("pack %s was kept by a repack for %s (of the %d in it; the others were copied into sound packs)", id, count(len(p.Blobs), "damaged blob"), len(ents)),
					Repair:  RepairDamaged, kept: true})
				return
			}
			c.addPack(Problem{Kind: "trailer_mismatch", Object: packObject(id), pack: id,
				Message: fmt.Sprintf("pack %s: the index and the pack's trailer disagree: %s", id, why), Repair: RepairFromPacks})
		}
	})
	if u := c.Unanswered(); u != nil && outer.Err() == nil {
		return fmt.Errorf("check stopped: the repository stopped answering (%w); no answer is not damage: run check again once the repository answers", u)
	}
	return err
}

func (c *Checker) markGone(id repo.ID) {
	c.mu.Lock()
	c.gone[id] = true
	c.mu.Unlock()
}

// compareEntries says how two blob lists differ ("" when they agree).
func compareEntries(index, trailer []repo.BlobEntry) string {
	a, b := slices.Clone(index), slices.Clone(trailer)
	repo.SortEntries(a)
	repo.SortEntries(b)
	if len(a) != len(b) {
		return fmt.Sprintf("the index lists %d blobs, the trailer %d", len(a), len(b))
	}
	for i := range a {
		if !a[i].Equal(b[i]) {
			return fmt.Sprintf("blob at offset %d: index has %s %s (%d bytes, %d before compression), trailer has %s %s (%d bytes, %d before compression)",
				a[i].Offset, a[i].Type, a[i].ID.Short(), a[i].Length, a[i].RawLength, b[i].Type, b[i].ID.Short(), b[i].Length, b[i].RawLength)
		}
	}
	return ""
}

// ReadData reads the given packs whole: the file must hash to its name,
// and every blob the index lists in it must decrypt and hash to its ID.
// progress (may be nil) is called with each pack once it is read (or found
// unreadable), from the workers' goroutines, one call at a time.
func (c *Checker) ReadData(ctx context.Context, packs []PackSize, workers int, progress func(PackSize)) error {
	var mu sync.Mutex
	defer func() {
		if c.unverified > 0 {
			c.note(fmt.Sprintf("%d delta blobs could not be verified because a base of theirs cannot be read; a snapshot that uses one is reported as an error, the others (deltas no snapshot uses, whose bases prune removed or that are damaged) go when prune repacks their packs", c.unverified))
		}
	}()
	// A repository that stops answering stops the reading: each pack
	// after it would wait out its retries (a minute each), and be called
	// damaged, with the advice to move it out of data/ (found by an
	// exploratory test against an S3 server that went down).
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Packs without deltas first, and the bases among their blobs kept as
	// they are verified (readPack): the deltas read after them find their
	// bases in the cache instead of reading each one again by range.
	c.isBase = map[repo.ID]bool{}
	defer func() { c.isBase = nil }() // one entry per base: not kept past the read
	hasDelta := map[repo.ID]bool{}
	for _, ps := range packs {
		for _, e := range c.packs[ps.ID].Blobs {
			if e.Delta() {
				hasDelta[ps.ID] = true
				for _, b := range e.Bases {
					c.isBase[b] = true
				}
			}
		}
	}
	// Then the packs that hold the most bases: deltas are taken against
	// earlier versions, whose packs hold bases and fewer deltas.
	provides := map[repo.ID]int{}
	for _, ps := range packs {
		for _, e := range c.packs[ps.ID].Blobs {
			if !e.Delta() && c.isBase[e.ID] {
				provides[ps.ID]++
			}
		}
	}
	packs = slices.Clone(packs)
	slices.SortStableFunc(packs, func(a, b PackSize) int {
		return cmp.Or(falseFirst(hasDelta[a.ID], hasDelta[b.ID]), cmp.Compare(provides[b.ID], provides[a.ID]))
	})
	err := forEach(rctx, packs, workers, func(ps PackSize) {
		c.readPack(rctx, ps.ID)
		if c.Unanswered() != nil {
			cancel()
		}
		if progress != nil {
			mu.Lock()
			progress(ps)
			mu.Unlock()
		}
	})
	if ctx.Err() == nil && c.Unanswered() != nil {
		return nil // Unanswered tells
	}
	return err
}

// falseFirst orders false before true: what holds no delta before what
// does.
func falseFirst(a, b bool) int {
	switch {
	case a == b:
		return 0
	case b:
		return -1
	}
	return 1
}

func (c *Checker) readPack(ctx context.Context, id repo.ID) {
	h := repo.Handle{Type: repo.PackFile, Name: id.String()}
	if c.failed(id) {
		return // unanswered_pack already
	}
	data, err := c.r.Backend().Load(ctx, h, 0, 0)
	if err != nil {
		if ctx.Err() != nil || c.accessDenied(err) {
			return
		}
		if c.noAnswer(ctx, id, err) {
			return
		}
		if errors.Is(err, repo.ErrNotFound) {
			c.markGone(id)
		}
		c.addPack(Problem{Kind: "unreadable_pack", Object: h.String(), pack: id, Message: fmt.Sprintf("pack %s cannot be read: %v", id, err), Repair: RepairDamaged})
		return
	}
	c.mu.Lock()
	c.ReadPacks++
	c.ReadBytes += int64(len(data))
	if c.read == nil {
		c.read = map[repo.ID]bool{}
	}
	c.read[id] = true
	c.mu.Unlock()
	var reasons []string
	if repo.Hash(data) != id {
		reasons = append(reasons, "its content does not match its name")
	}
	bad := 0
	badTree := false // a damaged tree stops prune's walk, and so the repack
	var first string
	hs := c.hashers.Get().(*chunk.Hasher)
	defer c.hashers.Put(hs)
	// Whole blobs first: a delta's base in the same pack is then cached.
	blobs := slices.Clone(c.packs[id].Blobs)
	slices.SortStableFunc(blobs, func(a, b repo.BlobEntry) int { return falseFirst(a.Delta(), b.Delta()) })
	for _, e := range blobs {
		end := int64(e.Offset) + int64(e.Length)
		var err error
		if end > int64(len(data)) {
			err = fmt.Errorf("lies beyond the end of the pack")
		} else {
			var plain, dict []byte
			if e.Delta() {
				// A base that cannot be read says nothing about this
				// pack: prune keeps the bases of the deltas snapshots
				// use, so a delta no snapshot uses may have lost its
				// base in a pack kept for its other blobs. A snapshot
				// that uses the delta is reported by its own check
				// (Available), and the pack is not called damaged.
				if dict, err = c.deltaDict(ctx, e); err != nil {
					c.mu.Lock()
					c.unverified++
					if c.unverifiedCopies == nil {
						c.unverifiedCopies = map[packBlob]bool{}
					}
					c.unverifiedCopies[packBlob{id, BlobRef{e.Type, e.ID}}] = true
					c.mu.Unlock()
					continue
				}
			}
			if err == nil {
				plain, err = c.r.OpenDelta(id, e, data[e.Offset:end], dict, nil)
			}
			if err == nil && repo.ID(hs.Sum(plain)) != e.ID {
				err = errors.New("content does not match its ID")
			}
			if err == nil && !e.Delta() && e.Type == repo.DataBlob && c.isBase[e.ID] {
				c.bases.put(e.ID, plain) // verified: a base of deltas still to read
			}
		}
		if err != nil {
			bad++
			badTree = badTree || e.Type == repo.TreeBlob
			if first == "" {
				first = fmt.Sprintf("%s blob %s: %v", e.Type, e.ID, err)
			}
			c.mu.Lock()
			c.damaged[packBlob{id, BlobRef{e.Type, e.ID}}] = true
			c.mu.Unlock()
		}
	}
	if bad > 0 {
		verb := "are"
		if bad == 1 {
			verb = "is"
		}
		reasons = append(reasons, fmt.Sprintf("%d of its %d blobs %s damaged (first: %s)", bad, len(c.packs[id].Blobs), verb, first))
	}
	switch {
	case len(reasons) == 0:
	case bad == 0 && c.packs[id].Status == PackLive:
		// Bytes outside the indexed blobs changed (the trailer, say):
		// moving the pack out, the repair for a damaged one, would lose
		// blobs that are intact. This problem says all there is to say
		// about the pack, so the others about its bytes (its size, its
		// trailer) go.
		c.mu.Lock()
		c.problems = slices.DeleteFunc(c.problems, func(p Problem) bool { return p.pack == id && p.Kind != "missing_pack" })
		c.mu.Unlock()
		c.add(Problem{Kind: "damaged_pack", Object: h.String(), pack: id,
			Message: fmt.Sprintf("pack %s: %s, but all %d blobs the index lists in it are intact", id, joinReasons(reasons), len(c.packs[id].Blobs)),
			Repair:  fmt.Sprintf("keep the pack (its snapshots restore); run 'snap prune --repack %s' to copy its blobs into a sound pack, which the prune after it deletes", id.Short())})
	case bad == len(c.packs[id].Blobs) && c.confirmKept(id, reasons):
		// The read confirms what the pack's problem above says.
	case bad < len(c.packs[id].Blobs) && !badTree && c.packs[id].Status == PackLive && c.disk[id] >= c.packs[id].Size:
		// Some blobs are intact, and moving the pack out would lose
		// them too: older snapshots need them (found by an exploratory
		// test: one flipped byte cost eleven snapshots 415 blobs each).
		c.addPack(Problem{Kind: "damaged_pack", Object: h.String(), pack: id, Message: fmt.Sprintf("pack %s: %s", id, joinReasons(reasons)),
			Repair: fmt.Sprintf("first run 'snap prune --repack %s': it copies the pack's intact blobs into new packs and leaves only the damaged ones in it (moving it out now would lose the intact ones too); then %s", id.Short(), RepairDamaged)})
	case badTree:
		c.addPack(Problem{Kind: "damaged_pack", Object: h.String(), pack: id, Message: fmt.Sprintf("pack %s: %s", id, joinReasons(reasons)), Repair: RepairDamagedTree})
	default:
		c.addPack(Problem{Kind: "damaged_pack", Object: h.String(), pack: id, Message: fmt.Sprintf("pack %s: %s", id, joinReasons(reasons)), Repair: c.repairFor(id)})
	}
}

// confirmKept adds what reading the pack found to its problem as a pack a
// repack kept for its damaged blobs, when it has one: the pack was listed
// twice, once per finding (found by an exploratory test).
func (c *Checker) confirmKept(id repo.ID, reasons []string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	i := slices.IndexFunc(c.problems, func(p Problem) bool { return p.pack == id && p.kept })
	if i < 0 {
		return false
	}
	c.problems[i].Message += "; reading it confirms that: " + joinReasons(reasons)
	return true
}

// repairFor is the repair for a damaged pack: one cut short is left in
// place, as what is left may hold intact blobs that moving it out would
// lose; any other is moved out (RepairDamaged).
func (c *Checker) repairFor(id repo.ID) string {
	if size, ok := c.disk[id]; ok && size < c.packs[id].Size {
		return "the pack was cut short: leave it in place and run 'snap repair index --from-packs' (it keeps the blobs that lie wholly in what is left), " +
			"then 'snap create' the affected paths again (the lost data is stored anew and the older snapshots become whole again; 'snap forget' the snapshots whose data no longer exists, which 'snap check' then still names), then 'snap prune --repack " + id.Short() + "' to copy the kept blobs out of it"
	}
	return RepairDamaged
}

func joinReasons(rs []string) string {
	out := rs[0]
	for _, r := range rs[1:] {
		out += "; " + r
	}
	return out
}

// RawLength returns the length of an indexed blob's plaintext.
func (c *Checker) RawLength(t repo.BlobType, id repo.ID) (int64, bool) {
	x, ok := c.locs[BlobRef{t, id}]
	if !ok {
		return 0, false
	}
	// Every copy of a blob holds the same plaintext: any place tells.
	return int64(c.packs[c.packIDs[x>>32]].Blobs[uint32(x)].RawLength), true
}

// present reports whether the pack id is in the repository, not found
// missing or unreadable since. The caller holds c.mu.
func (c *Checker) present(id repo.ID) bool {
	_, ok := c.disk[id]
	return ok && !c.gone[id]
}

// locations lists where the index lists the blob k, live packs first.
func (c *Checker) locations(k BlobRef) []Location {
	first, ok := c.locs[k]
	if !ok {
		return nil
	}
	more := c.more[k]
	ls := make([]Location, 0, 1+len(more))
	for _, x := range append([]uint64{first}, more...) {
		id := c.packIDs[x>>32]
		p := c.packs[id]
		ls = append(ls, Location{Pack: id, Status: p.Status, Entry: p.Blobs[uint32(x)]})
	}
	slices.SortStableFunc(ls, func(a, b Location) int { return int(a.Status) - int(b.Status) })
	return ls
}

// Available reports why a blob cannot be read: nil when some pack that
// exists holds it and, as far as data was read, holds it intact (and, for
// a delta, full copies of its bases are available).
func (c *Checker) Available(t repo.BlobType, id repo.ID) error {
	return c.available(t, id, false)
}

func (c *Checker) available(t repo.BlobType, id repo.ID, full bool) error {
	ls := c.locations(BlobRef{t, id})
	if len(ls) == 0 {
		return fmt.Errorf("%s blob %s is not in the index", t, id)
	}
	c.mu.Lock()
	damaged := false
	var baseErr error
	for _, l := range ls {
		if full && l.Entry.Delta() {
			continue
		}
		if c.damaged[packBlob{l.Pack, BlobRef{t, id}}] {
			damaged = true
			continue
		}
		if !c.present(l.Pack) {
			continue
		}
		if !l.Entry.Delta() {
			c.mu.Unlock()
			return nil
		}
		c.mu.Unlock()
		err := c.basesAvailable(l.Entry)
		if err == nil {
			return nil
		}
		baseErr = err
		c.mu.Lock()
	}
	defer c.mu.Unlock()
	// Every copy failed: those in missing packs were needed (also when
	// another copy is damaged, which the error names).
	for _, l := range ls {
		if c.present(l.Pack) || full && l.Entry.Delta() {
			continue
		}
		if c.needed[l.Pack] == nil {
			c.needed[l.Pack] = map[BlobRef]bool{}
		}
		c.needed[l.Pack][BlobRef{t, id}] = true
	}
	if full && baseErr == nil && !damaged && !slices.ContainsFunc(ls, func(l Location) bool { return !l.Entry.Delta() }) {
		return fmt.Errorf("%s blob %s, a base of a delta, has no full copy", t, id)
	}
	if baseErr != nil {
		return baseErr
	}
	if damaged {
		return fmt.Errorf("%s blob %s is damaged in pack %s", t, id, ls[0].Pack.Short())
	}
	return fmt.Errorf("%s blob %s is only in missing pack %s", t, id, ls[0].Pack.Short())
}

// SettleMissing, called once every snapshot was checked (Available),
// says for each pack missing from the repository whether its loss cost
// any snapshot data: "the snapshots affected are listed below" came with
// no list when none needed its blobs, or another pack held them all (found
// by an exploratory test). unread counts what the check could not read
// and so cannot tell the needs of: snapshot documents, and directory
// listings (what is below them).
func (c *Checker) SettleMissing(unread int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, p := range c.problems {
		if p.Kind != "missing_pack" || !p.settle {
			continue
		}
		blobs := c.packs[p.pack].Blobs
		elsewhere := 0
		for _, e := range blobs {
			k := BlobRef{e.Type, e.ID}
			if slices.ContainsFunc(c.locations(k), func(l Location) bool { return c.otherSound(l, p.pack, k) }) {
				elsewhere++
			}
		}
		drop := "run 'snap repair index --from-packs' to drop it from the index"
		switch n := len(c.needed[p.pack]); {
		case n > 0:
			p.Repair = fmt.Sprintf("%s that snapshots need %s lost with it (the snapshots are listed below); %s, then 'snap create' the affected paths again", count(n, "blob"), isAre(n), drop)
		case elsewhere == len(blobs):
			p.Repair = "every blob it held is in another pack: nothing was lost with it; " + drop
		case unread > 0:
			// A listing that could not be read hides what is below it
			// (found by a review: a backup's tree and data packs both
			// gone said "no backup lost data" of the data pack).
			p.Repair = fmt.Sprintf("no snapshot the check could read whole needs the %s of it no other pack holds, but the snapshots named below could not be read whole and may need them; %s, then 'snap create' the affected paths again", count(len(blobs)-elsewhere, "blob"), drop)
		default:
			p.Repair = fmt.Sprintf("no snapshot needs the %s of it no other pack holds, so no backup lost data with it; run 'snap prune', which drops it from the index, before the next backup, which would take those blobs as stored and not store them again", count(len(blobs)-elsewhere, "blob"))
		}
		c.problems[i] = p
	}
}

// otherSound reports whether the copy at l of blob k is in another pack
// than pack, one that is there and not found damaged. The caller holds
// c.mu.
func (c *Checker) otherSound(l Location, pack repo.ID, k BlobRef) bool {
	return l.Pack != pack && c.present(l.Pack) && !c.damaged[packBlob{l.Pack, k}]
}

// SettleDamaged, called once the packs were read (ReadData), words the
// repair of a damaged pack whose every damaged blob another pack holds
// intact, as the check read it: nothing was lost, and 'snap prune
// --repack' leaves no blob behind. The advice was to move the pack out and
// back up again, and it did not say that an intact copy was in a pack
// marked for deletion, which the next due prune would delete (found by an
// exploratory test).
func (c *Checker) SettleDamaged() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, p := range c.problems {
		pk, ok := c.packs[p.pack]
		if p.Kind != "damaged_pack" || !ok || pk.Status != PackLive || c.disk[p.pack] < pk.Size {
			continue
		}
		bad, inMarked, whole := 0, 0, true
		for _, e := range pk.Blobs {
			k := BlobRef{e.Type, e.ID}
			if !c.damaged[packBlob{p.pack, k}] {
				continue
			}
			bad++
			// locations lists live copies first.
			ls := c.locations(k)
			j := slices.IndexFunc(ls, func(l Location) bool {
				// (A delta does not stand for a full copy, which a base
				// needs: the repack kept the damaged one, and the
				// advice did not end the error; found by a re-test.)
				return c.otherSound(l, p.pack, k) && c.read[l.Pack] && !c.unverifiedCopies[packBlob{l.Pack, k}] &&
					(!l.Entry.Delta() || e.Delta())
			})
			switch {
			case j < 0:
				whole = false
			case ls[j].Status != PackLive:
				inMarked++
			}
		}
		if bad == 0 || !whole {
			continue
		}
		if inMarked == 0 {
			p.Repair = fmt.Sprintf("every damaged blob in it has an intact copy in another pack, so no snapshot lost data: run 'snap prune --repack %s', which copies its intact blobs into new packs and leaves it to a later prune to delete", p.pack.Short())
		} else {
			p.Repair = fmt.Sprintf("every damaged blob in it has an intact copy in another pack (%d only in packs marked for deletion), so no snapshot lost data: run 'snap prune --repack %s' now, which copies its intact blobs and the marked packs' copies of its damaged ones into new packs and leaves it to a later prune to delete", inMarked, p.pack.Short())
		}
		c.problems[i] = p
	}
}

// count is "1 blob", "2 blobs".
func count(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

func isAre(n int) string {
	if n == 1 {
		return "was"
	}
	return "were"
}

// basesAvailable reports why a delta's bases cannot be read, or nil.
func (c *Checker) basesAvailable(e repo.BlobEntry) error {
	for _, b := range e.Bases {
		if err := c.available(repo.DataBlob, b, true); err != nil {
			return fmt.Errorf("data blob %s is a delta whose base cannot be read: %w", e.ID, err)
		}
	}
	return nil
}

// deltaDict reads full copies of a delta's bases: its dictionary.
func (c *Checker) deltaDict(ctx context.Context, e repo.BlobEntry) ([]byte, error) {
	dict := []byte{}
	for _, b := range e.Bases {
		plain, ok := c.bases.get(b)
		if !ok {
			var err error
			if plain, err = c.loadBlob(ctx, repo.DataBlob, b, true); err != nil {
				return nil, fmt.Errorf("base %s: %w", b.Short(), err)
			}
			c.bases.put(b, plain)
		}
		if len(dict)+len(plain) > repo.MaxDeltaDict {
			return nil, fmt.Errorf("bases exceed %d bytes", repo.MaxDeltaDict)
		}
		dict = append(dict, plain...)
	}
	return dict, nil
}

// LoadBlob reads and verifies a blob from the first location that works.
func (c *Checker) LoadBlob(ctx context.Context, t repo.BlobType, id repo.ID) ([]byte, error) {
	return c.loadBlob(ctx, t, id, false)
}

// loadBlob is LoadBlob, from a full copy when full is set (a base).
func (c *Checker) loadBlob(ctx context.Context, t repo.BlobType, id repo.ID, full bool) ([]byte, error) {
	ls := c.locations(BlobRef{t, id})
	if len(ls) == 0 {
		return nil, fmt.Errorf("%s blob %s is not in the index", t, id)
	}
	var firstErr error
	for _, l := range ls {
		if full && l.Entry.Delta() {
			continue
		}
		var dict []byte
		var err error
		if l.Entry.Delta() {
			dict, err = c.deltaDict(ctx, l.Entry)
		}
		var plain []byte
		own := false // err is about this location's bytes, not a base's
		if err == nil && c.failed(l.Pack) {
			// Its retries were given up once (unanswered_pack): asking
			// again cost the walk of the snapshots another round of them
			// (a minute against a real server) for the same answer.
			err = fmt.Errorf("%s blob %s is in pack %s, which the repository did not answer for", t, id, l.Pack.Short())
		} else if err == nil {
			whole := false
			if c.wholeTreePacks && t == repo.TreeBlob && !l.Entry.Delta() {
				plain, whole, err = c.treeFromWholePack(ctx, l)
			}
			if !whole {
				plain, err = c.r.LoadDelta(ctx, l.Pack, l.Entry, dict, nil)
			}
			own = true
		}
		if err == nil {
			hs := c.hashers.Get().(*chunk.Hasher)
			ok := repo.ID(hs.Sum(plain)) == id
			c.hashers.Put(hs)
			if ok {
				return plain, nil
			}
			err = &repo.CorruptError{Object: fmt.Sprintf("%s blob %s in pack %s", t, id, l.Pack), Reason: "content does not match its ID"}
		}
		var ce *repo.CorruptError
		if own && errors.As(err, &ce) {
			// Read and found damaged (a delta's base, say, in a pack a
			// --read-data-subset did not read): the snapshots that need
			// it are told (Available).
			c.mu.Lock()
			c.damaged[packBlob{l.Pack, BlobRef{t, id}}] = true
			c.mu.Unlock()
		}
		if firstErr == nil {
			firstErr = err
		}
	}
	if firstErr == nil {
		firstErr = fmt.Errorf("%s blob %s, a base of a delta, has no full copy", t, id)
	}
	return nil, firstErr
}

// Confirm drops pack problems that a concurrent prune explains: packs that
// the index, read again, no longer lists.
func (c *Checker) Confirm(ctx context.Context) error {
	c.mu.Lock()
	suspect := false
	for _, p := range c.problems {
		if !p.pack.IsZero() {
			suspect = true
		}
	}
	c.mu.Unlock()
	if !suspect {
		return nil
	}
	ss, err := ReadSegments(ctx, c.r)
	if err != nil {
		return err
	}
	listed := map[repo.ID]bool{}
	for _, sid := range ss.Effective() {
		for _, p := range ss.Segments[sid].Packs {
			listed[p.ID] = true
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	kept := c.problems[:0]
	for _, p := range c.problems {
		if !p.pack.IsZero() && !listed[p.pack] {
			continue // deleted by a prune that ran meanwhile
		}
		kept = append(kept, p)
	}
	c.problems = kept
	return nil
}

// forEach runs fn on every item with a bounded number of goroutines. A
// panic in fn (a bug) stops handing out items and is returned as a
// *repo.PanicError.
func forEach[T any](ctx context.Context, items []T, workers int, fn func(T)) error {
	if workers < 1 {
		workers = 1
	}
	ch := make(chan T)
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		bug  error
		stop = make(chan struct{})
	)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := repo.Catch(func() error {
				for it := range ch {
					if ctx.Err() != nil {
						// Stopped: the dispatcher's select may still have
						// handed this one over (it flaked a test that
						// counts the requests after a stop: 9 in 200).
						continue
					}
					fn(it)
				}
				return nil
			})
			if err != nil {
				mu.Lock()
				if bug == nil {
					bug = err
					close(stop)
				}
				mu.Unlock()
			}
		}()
	}
	var err error
loop:
	for _, it := range items {
		select {
		case ch <- it:
		case <-ctx.Done():
			err = ctx.Err()
			break loop
		case <-stop:
			break loop
		}
	}
	close(ch)
	wg.Wait()
	if bug != nil {
		return bug
	}
	return err
}
