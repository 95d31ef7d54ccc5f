package index

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/snap-backup/snap/repo"
)

// Prune reclaims space in two phases, so that backups never wait for it
// (docs/design.md, "Prune"):
//
//   - Mark: packs no snapshot needs, and packs mostly unused (whose live
//     blobs are first copied into new packs), are listed as marked in new
//     index segments that supersede the ones listing them. Nothing is
//     deleted; every client's cache learns of the marks on its next sync,
//     and a create that relied on a marked pack copies the blobs it needs.
//   - Delete: a later prune deletes packs that have stayed marked for the
//     delete delay, once no lock taken before the mark (plus MarkGrace)
//     remains, after checking them again against every snapshot that
//     exists by then: a marked pack holding a blob a snapshot still needs
//     is made live again instead.
//
// An instant prune holds the exclusive lock, so nothing else runs; it
// deletes at once what it would otherwise mark.
//
// Write order, in every mode: new packs durable → new segments durable →
// pack deletions → deletion of superseded segments. A crash at any point
// leaves a repository in which every snapshot is complete; what it leaves
// behind (unindexed packs, superseded segments) the next prune removes.

// MarkGrace is added to a mark's time before it is compared with the start
// of a lock: it covers the time to write the marking segments and clock
// differences between hosts.
const MarkGrace = 10 * time.Minute

// TempGrace is how old a temporary file must be before prune removes it.
const TempGrace = 15 * time.Minute

// DefaultDeleteDelay is how long a pack stays marked before a prune may
// delete it, unless --delete-delay says otherwise. A nightly prune deletes
// what the previous night's prune marked.
const DefaultDeleteDelay = 12 * time.Hour

// smallPackShare and smallPackCount: when more than smallPackCount live
// packs are each smaller than 1/smallPackShare of the pack size, prune
// repacks them together. Every create leaves a small pack or two (what its
// last minutes wrote); a nightly create with little change makes hundreds
// a year, each one more object to list, check and fetch. A merge leaves at
// most one small pack per blob type (the last it filled), which the next
// copies again: less than a quarter pack per type besides the new ones.
const (
	smallPackShare = 4
	smallPackCount = 32
	smallPackBytes = 8 // pack sizes a prune merges at most
)

// compactSmall and compactCount: when more than compactCount effective
// segments list fewer than compactSmall blobs each, prune merges them.
const (
	compactSmall = 4096
	compactCount = 32
)

// PruneOptions tune Prune.
type PruneOptions struct {
	// Indexed, when set, is the repack's WriterOptions.Indexed.
	Indexed func(packs []repo.ID)
	// MaxUnusedPercent is how much of the packs' space may stay unused
	// after the prune (in partly used packs); beyond it, the emptiest
	// packs are repacked. 100 never repacks.
	MaxUnusedPercent float64
	// DeleteDelay is how long a pack stays marked before it is deleted.
	DeleteDelay time.Duration
	// Instant deletes at once instead of marking. The caller must hold
	// the exclusive lock.
	Instant bool
	// Discard names packs a failed run of the caller wrote and indexed (a
	// create that found the disk full): those no snapshot uses are
	// deleted at once, as Instant deletes, and the rest of the plan is
	// as without it. Marked with the delay, they held the room a failed
	// backup took until a prune 12 hours later, so the next night's
	// create met the same full disk (found by an exploratory test). The
	// caller must hold the exclusive lock: a run that read their segment
	// could rely on them, and with it none runs.
	Discard map[repo.ID]bool
	// Repack names packs whose used blobs are copied into new packs
	// whatever their unused share: a pack whose bytes no longer match
	// its name while every blob in it is intact (check --read-data says
	// which) is replaced so, without losing a blob. An ID may be a
	// unique prefix; one that names no live pack is an error.
	Repack []string
	// NoMerge leaves small packs as they are (mergeSmall): for a job's
	// prune after its create found the disk full, where Discard may be
	// empty (the create's packs were not indexed, and are gone already)
	// and a merge writes before it deletes (found by an exploratory test).
	NoMerge bool
	// DryRun computes the plan and changes nothing.
	DryRun bool
	// Lock is the caller's lock: ignored when looking at other locks,
	// and verified before anything is deleted.
	Lock *repo.Lock
	// Used returns every blob that a snapshot refers to. Prune calls it
	// once, after it has listed the packs, the locks and the index (the
	// order its safety argument needs); it must sync the cache first.
	Used        func(ctx context.Context) (BlobSet, error)
	Compression repo.Compression
	Log         func(string)
	// BeforeWrite, when set, is called with the plan once it is made,
	// before the prune writes or deletes anything (not for a dry run):
	// the caller may make room for the packs the repack writes. writes
	// says whether the plan writes anything (packs or index segments):
	// one that only deletes needs no room.
	BeforeWrite func(st *PruneStats, writes bool)
	// Progress, when set, is told where the prune is: at the start of
	// each step, after each pack or segment the step counts, and after
	// each upload of a repack.
	// It is called one call at a time, not always from Prune's goroutine,
	// and must return quickly.
	Progress func(PruneProgress)
}

// PruneProgress is where a prune is: the step, and in it Done of Total
// (0: the step counts nothing) of Unit, and Bytes of TotalBytes (0: none).
type PruneProgress struct {
	Step              string // "listing packs", "finding used blobs", "reading the index", "planning", "repacking", "writing the index", "deleting", "deleting old index segments"
	Unit              string // "packs" or "segments"; "" when the step counts nothing
	Done, Total       int
	Bytes, TotalBytes int64
}

// PruneStats says what Prune did (or, with DryRun, would do).
type PruneStats struct {
	DryRun  bool `json:"dry_run"`
	Instant bool `json:"instant"`
	// Repository size (data/ and index/) before and after.
	BeforeBytes int64 `json:"before_bytes"`
	AfterBytes  int64 `json:"after_bytes"`

	Packs       int   `json:"packs"`        // indexed packs at the start
	UsedBlobs   int   `json:"used_blobs"`   // blobs snapshots refer to
	UsedBytes   int64 `json:"used_bytes"`   // their stored size
	UnusedBytes int64 `json:"unused_bytes"` // stored bytes no snapshot needs, in live packs, at the start

	DeletedPacks []repo.ID `json:"deleted_packs"` // marked packs (or, instant, unused ones) deleted
	DeletedBytes int64     `json:"deleted_bytes"`
	// DiscardedPacks are packs of PruneOptions.Discard deleted at once.
	DiscardedPacks []repo.ID `json:"discarded_packs,omitempty"`
	DiscardedBytes int64     `json:"discarded_bytes,omitempty"`
	OrphanPacks    []repo.ID `json:"orphan_packs"` // unindexed packs (left by interrupted runs) deleted
	OrphanBytes    int64     `json:"orphan_bytes"`
	OrphansKept    int       `json:"orphans_kept"` // unindexed packs left because another snap process runs
	// Temporary files (half-written packs and the like) that interrupted
	// runs left in a local repository, removed.
	TempFiles int   `json:"temp_files"`
	TempBytes int64 `json:"temp_bytes"`

	RepackedPacks int `json:"repacked_packs"` // partly used packs whose live blobs were copied
	// SmallPacks of RepackedPacks were repacked for being small, to merge
	// them (smallPackCount).
	SmallPacks  int   `json:"small_packs"`
	CopiedBlobs int   `json:"copied_blobs"`
	CopiedBytes int64 `json:"copied_bytes"`

	MarkedPacks []repo.ID `json:"marked_packs"` // newly marked for deletion by a later prune
	MarkedBytes int64     `json:"marked_bytes"`
	MarkedDue   time.Time `json:"marked_due,omitzero"` // when the delete delay of the new marks ends
	// MarkDelay is the delete delay MarkedDue counts: this prune's. A
	// later prune waits its own delay from the mark.
	MarkDelay    time.Duration `json:"-"`
	RescuedPacks []repo.ID     `json:"rescued_packs"` // marked packs a snapshot needs again, made live
	MissingPacks []repo.ID     `json:"missing_packs"` // indexed but absent from data/, and not needed: dropped from the index

	// Packs that stay marked: the delete delay has not passed, or a lock
	// older than their mark is still held.
	PendingPacks int       `json:"pending_packs"`
	PendingBytes int64     `json:"pending_bytes"`
	PendingUntil time.Time `json:"pending_until,omitzero"` // when the delay of the newest mark ends
	BlockedBy    string    `json:"blocked_by,omitempty"`   // the lock that keeps marked packs

	SegmentsWritten int `json:"segments_written"`
	SegmentsRemoved int `json:"segments_removed"`

	// Packs a repack found damaged blobs in: their intact blobs were
	// copied, and they stay, live, with the damaged ones (DamagedError).
	DamagedPacks []repo.ID `json:"damaged_packs,omitempty"`
	DamagedBlobs int       `json:"damaged_blobs,omitempty"`
}

// DamagedError is a prune that finished but left packs in place because
// blobs it was to copy out of them are damaged (PruneStats.DamagedPacks).
type DamagedError struct {
	Packs []repo.ID
	Blobs int
	First string // the first damaged blob and what is wrong with it
}

func (e *DamagedError) Error() string {
	what := fmt.Sprintf("pack %s holds", e.Packs[0])
	if len(e.Packs) > 1 {
		var ids []string
		for _, id := range e.Packs {
			ids = append(ids, id.String())
		}
		what = fmt.Sprintf("%d packs (%s) hold", len(e.Packs), strings.Join(ids, ", "))
	}
	blobs := "damaged blobs"
	if e.Blobs == 1 {
		blobs = "a damaged blob"
	}
	return fmt.Sprintf("%s %s (%d; first: %s): the intact blobs were copied into new packs and the damaged ones stay where they are, "+
		"so moving the damaged packs out of data/ now loses only them: do that, run 'snap repair index --from-packs', then 'snap create' the affected paths again ('snap check --read-data' names the snapshots)",
		what, blobs, e.Blobs, e.First)
}

type packAction int

const (
	actKeep    packAction = iota
	actMark               // newly marked
	actRescue             // marked, needed again: back to live
	actDelete             // deleted (marked and due, or unused with Instant or Discard)
	actPending            // stays marked
	actDrop               // indexed but missing: dropped from the index
)

type prunePack struct {
	id       repo.ID
	size     int64
	status   PackStatus
	markedAt int64
	blobs    []repo.BlobEntry
	segs     []repo.ID // effective segments listing the pack
	fresh    bool      // listed only by segments newer than the snapshot list
	missing  bool
	conflict bool // listed with different statuses

	rawUsed   int64            // stored bytes of used blobs (counting duplicates)
	keep      []repo.BlobEntry // used blobs this pack is chosen to hold
	usedBytes int64
	repack    bool
	action    packAction
	// relisted: the pack stays, but its index entry lists fewer blobs
	// (a repack left only its damaged ones in it).
	relisted bool
}

func (p *prunePack) live() bool { return p.status == PackLive || p.action == actRescue }

func (p *prunePack) blobBytes() int64 {
	var n int64
	for _, e := range p.blobs {
		n += int64(e.Length)
	}
	return n
}

// blobLoc is where the plan finds a blob: the i-th entry of a pack's
// listing (16 bytes: with the entry itself, 80, the plan of a million
// blobs held a gigabyte of them).
type blobLoc struct {
	pack *prunePack
	i    int
}

func (l blobLoc) e() repo.BlobEntry { return l.pack.blobs[l.i] }

type locks struct {
	others  int       // live locks of other processes
	oldest  time.Time // earliest start among them
	unknown bool      // a lock without a start time, or unreadable: treated as older than any mark
	holder  string    // the oldest lock, for messages
	// stale are the locks of processes taken for dead (not refreshed for
	// repo.LockStaleAge, or of a process gone on this host), which the
	// prune disregards and removes before it deletes anything.
	stale []repo.LockEntry
}

// Prune runs one prune (see the comment at the top of this file). The
// caller holds a prune lock, or the exclusive lock when o.Instant.
func Prune(ctx context.Context, ix *Index, o PruneOptions) (*PruneStats, error) {
	r := ix.r
	if o.Log == nil {
		o.Log = func(string) {}
	}
	if o.Progress == nil {
		o.Progress = func(PruneProgress) {}
	}
	now := r.Now()
	st := &PruneStats{DryRun: o.DryRun, Instant: o.Instant}
	if len(o.Discard) > 0 && !o.Instant && (o.Lock == nil || !o.Lock.Info().Exclusive) {
		return nil, errors.New("prune: discarding a failed run's packs needs the exclusive lock")
	}

	// 1. The packs in data/, before anything else: a pack a running
	// create uploads later is not in this list, so it cannot be taken for
	// an orphan.
	o.Progress(PruneProgress{Step: "listing packs"})
	disk := map[repo.ID]int64{}
	if err := r.Backend().List(ctx, repo.PackFile, func(name string, size int64) error {
		if id, err := repo.ParseID(name); err == nil {
			disk[id] = size
		}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("list packs: %w", err)
	}
	// So are the temporary files: one a run writes later is not listed.
	var temps []repo.TempFile
	if tl, ok := repo.As[repo.TempLister](r.Backend()); ok {
		var err error
		if temps, err = tl.ListTemps(ctx); err != nil {
			return nil, err
		}
	}
	before, err := repoSize(ctx, r)
	if err != nil {
		return nil, err
	}
	st.BeforeBytes = before

	// 2. The locks of other processes: a create that may still commit a
	// snapshot holds one.
	lk, err := otherLocks(ctx, r, o.Lock)
	if err != nil {
		return nil, err
	}
	// The stale ones go now, before the index is read: a holder alive
	// after all finds its lock gone before its next index segment, and
	// every segment it wrote while it held the lock is read below. Removed
	// at the end of the plan instead, a create that came back meanwhile
	// wrote a segment the plan had not read, saved its snapshot and
	// released its lock, and the prune deleted the packs that segment
	// names as left by an interrupted run (found by a review, reproduced).
	// A dry run removes nothing, and plans as if they were gone.
	if !o.DryRun {
		if err := removeStaleLocks(ctx, r, o, lk.stale); err != nil {
			return nil, err
		}
	}

	// 3. The segments that exist before the snapshots are listed: packs of
	// segments written later belong to runs whose snapshots may not be in
	// the list, so they are left alone.
	early, err := r.ListIDs(ctx, repo.IndexFile)
	if err != nil {
		return nil, fmt.Errorf("list index: %w", err)
	}
	earlySet := map[repo.ID]bool{}
	for _, id := range early {
		earlySet[id] = true
	}

	// 4. Every blob a snapshot refers to.
	o.Progress(PruneProgress{Step: "finding used blobs"})
	used, err := o.Used(ctx)
	if err != nil {
		return nil, err
	}

	// 5. The index, read from the repository. Every segment a listed
	// snapshot depends on was durable before the snapshot was.
	o.Progress(PruneProgress{Step: "reading the index"})
	ss, err := ReadSegments(ctx, r)
	if err != nil {
		return nil, err
	}
	if len(ss.Unreadable) > 0 {
		var names []string
		for id, e := range ss.Unreadable {
			names = append(names, fmt.Sprintf("index/%s (%v)", id.Short(), e))
		}
		sort.Strings(names)
		return nil, fmt.Errorf("cannot prune: %d index segments are unreadable: %s; run 'snap check', then 'snap repair index --from-packs'", len(names), strings.Join(names, ", "))
	}

	pl := &planner{o: o, now: now, st: st, ss: ss, disk: disk, used: used, lk: lk}
	// Temporary files listed before the locks were: with no other process
	// running (or the exclusive lock held) none of them can still be
	// written, since every writer takes its lock before it writes. Two
	// kinds of write come before a lock or without one, the lock file's
	// own (written, then checked against the others) and 'snap key add';
	// both take milliseconds, so files younger than TempGrace stay. Those
	// of data/, index/ and snapshots/ go at once: on a full disk, the
	// packs a killed create was writing (tens of MB) stayed through the
	// prune meant to free space (found by an exploratory test).
	if o.Instant || lk.others == 0 {
		for _, t := range temps {
			if now.Sub(t.ModTime) < TempGrace && !writtenUnderLock(t.Name) {
				continue
			}
			pl.temps = append(pl.temps, t)
			st.TempFiles++
			st.TempBytes += t.Size
		}
	}
	o.Progress(PruneProgress{Step: "planning"})
	if err := pl.plan(ctx, ix, earlySet); err != nil {
		return nil, err
	}
	if o.DryRun {
		pl.predictAfter()
		return st, nil
	}
	if o.BeforeWrite != nil {
		o.BeforeWrite(st, st.RepackedPacks > 0 || len(pl.newSegs) > 0)
	}
	if err := pl.execute(ctx, ix); err != nil {
		return st, err
	}
	after, err := repoSize(ctx, r)
	if err != nil {
		return st, err
	}
	st.AfterBytes = after
	if len(st.DamagedPacks) > 0 {
		return st, &DamagedError{Packs: st.DamagedPacks, Blobs: st.DamagedBlobs, First: pl.damagedFirst}
	}
	return st, nil
}

// writtenUnderLock reports whether a temporary file named so (relative to
// the repository) is one only a process holding a lock writes.
func writtenUnderLock(name string) bool {
	for _, dir := range []string{"data/", "index/", "snapshots/"} {
		if strings.HasPrefix(name, dir) {
			return true
		}
	}
	return false
}

func repoSize(ctx context.Context, r *repo.Repository) (int64, error) {
	var n int64
	for _, t := range []repo.FileType{repo.PackFile, repo.IndexFile} {
		if err := r.Backend().List(ctx, t, func(_ string, size int64) error {
			n += size
			return nil
		}); err != nil {
			return 0, fmt.Errorf("list %s: %w", t, err)
		}
	}
	return n, nil
}

func otherLocks(ctx context.Context, r *repo.Repository, own *repo.Lock) (locks, error) {
	var lk locks
	all, err := r.ListLocks(ctx)
	if err != nil {
		return lk, fmt.Errorf("list locks: %w", err)
	}
	ownName := ""
	if own != nil {
		ownName = own.Name()
	}
	for _, e := range all {
		if e.Name == ownName {
			continue
		}
		if e.Err == nil && e.Stale {
			lk.stale = append(lk.stale, e)
			continue
		}
		lk.others++
		if e.Err != nil {
			lk.unknown = true
			lk.holder = fmt.Sprintf("unreadable lock %s (run 'snap unlock --all' if no other snap runs)", e.Name[:8])
			continue
		}
		li := e.Info
		desc := fmt.Sprintf("%s lock of pid %d on %s (snap %s) since %s", li.Kind(), li.PID, li.Host, li.Command, li.Since().Local().Format(time.DateTime))
		if li.Created.IsZero() {
			lk.unknown = true
			lk.holder = desc
			continue
		}
		if lk.oldest.IsZero() || li.Created.Before(lk.oldest) {
			lk.oldest = li.Created
			if !lk.unknown {
				lk.holder = desc
			}
		}
	}
	return lk, nil
}

// removeStaleLocks removes the locks the plan disregards as stale, before
// the index is read. The plan treats their holders as dead, and may
// delete the packs such a holder uploaded and has not indexed yet; should
// the holder be alive after all (a machine that slept for half an hour, a
// process in another PID namespace under the same host name), it finds
// its lock gone before it writes an index segment or commits a snapshot,
// and stops without either. The locks are listed again afterwards: a
// holder that refreshed its lock in between is alive, and then nothing is
// deleted.
func removeStaleLocks(ctx context.Context, r *repo.Repository, o PruneOptions, stale []repo.LockEntry) error {
	if len(stale) == 0 {
		return nil
	}
	for _, l := range stale {
		short := l.Name[:min(8, len(l.Name))]
		if err := r.RemoveLock(ctx, l.Name); err != nil && !errors.Is(err, repo.ErrNotFound) {
			return fmt.Errorf("remove stale lock %s: %w; nothing was deleted", short, err)
		}
		o.Log(l.Info.StaleRemoved())
	}
	all, err := r.ListLocks(ctx)
	if err != nil {
		return fmt.Errorf("list locks: %w", err)
	}
	// A holder that is alive after all has refreshed its lock: a new
	// file with its host, pid and start. A process that merely started
	// meanwhile is no reason to stop (it takes part in the protocol as
	// any create during a prune does); counting it as one failed busy
	// repositories' prunes for nothing (a test of four hosts writing).
	for _, e := range all {
		if e.Err != nil || e.Stale || o.Lock != nil && e.Name == o.Lock.Name() {
			continue
		}
		for _, l := range stale {
			if e.Info.SameHolder(l.Info) {
				return fmt.Errorf("a snap process taken for gone refreshed its lock while the prune was planned (%s lock of pid %d on %s, snap %s); nothing was deleted: run prune again",
					e.Info.Kind(), e.Info.PID, e.Info.Host, e.Info.Command)
			}
		}
	}
	return nil
}

// due reports whether a pack marked at markedAt may be deleted now.
func (pl *planner) due(markedAt int64) bool {
	mark := time.Unix(markedAt, 0)
	if pl.now.Sub(mark) < pl.o.DeleteDelay {
		return false
	}
	if pl.lk.others == 0 {
		return true
	}
	return !pl.lk.unknown && pl.lk.oldest.After(mark.Add(MarkGrace))
}

type planner struct {
	o    PruneOptions
	now  time.Time
	st   *PruneStats
	ss   *SegmentSet
	disk map[repo.ID]int64
	used BlobSet
	lk   locks

	packs   map[repo.ID]*prunePack
	order   []*prunePack // packs sorted by ID
	orphans []repo.ID
	// keptOrphans are the unindexed packs left in data/ because another
	// snap process runs (it may still index them).
	keptOrphans map[repo.ID]bool
	temps       []repo.TempFile
	newSegs     []newSegment
	// damagedFirst describes the first blob a repack found damaged.
	damagedFirst string
}

type newSegment struct {
	seg *Segment
}

func (pl *planner) plan(ctx context.Context, ix *Index, early map[repo.ID]bool) error {
	eff := pl.ss.Effective()
	pl.packs = map[repo.ID]*prunePack{}
	for _, sid := range eff {
		for _, p := range pl.ss.Segments[sid].Packs {
			pp := pl.packs[p.ID]
			if pp == nil {
				pp = &prunePack{id: p.ID, size: p.Size, status: p.Status, markedAt: p.MarkedAt, blobs: p.Blobs, fresh: !early[sid]}
				pl.packs[p.ID] = pp
				pl.order = append(pl.order, pp)
			} else {
				if pp.status != p.Status {
					pp.conflict, pp.status, pp.markedAt = true, PackLive, 0
				} else if p.Status == PackMarked {
					pp.markedAt = max(pp.markedAt, p.MarkedAt)
				}
				pp.fresh = pp.fresh && !early[sid]
			}
			pp.segs = append(pp.segs, sid)
		}
	}
	slices.SortFunc(pl.order, func(a, b *prunePack) int { return compareIDs(a.id, b.id) })
	pl.st.Packs = len(pl.order)

	// Indexed packs missing from the listing: written since (by a
	// concurrent create), or really missing.
	for _, pp := range pl.order {
		if _, ok := pl.disk[pp.id]; ok {
			continue
		}
		_, err := ix.r.Backend().Stat(ctx, repo.Handle{Type: repo.PackFile, Name: pp.id.String()})
		if errors.Is(err, repo.ErrNotFound) {
			pp.missing = true
		} else if err != nil {
			return fmt.Errorf("stat pack %s: %w", pp.id, err)
		}
	}

	// The bases of every stored copy of a used delta are used too, and
	// must keep a full copy: deltas are opened with full copies of their
	// bases (see delta.go). Taking the bases of every copy, whichever copy
	// ends up kept, errs on the side of keeping.
	//
	// A delta copy with a base that has no full copy left (its pack was
	// damaged and moved out) cannot be read. When its blob has a readable
	// copy as well (a later run stored it again), that copy holds the blob
	// and the delta's lost bases are not asked for: they would make every
	// prune fail with "snapshots refer to blobs that no pack holds" while
	// every snapshot restores. Such a delta holds nothing (below).
	//
	// Only blobs stored as deltas somewhere, and their bases, matter here:
	// the maps hold those alone, not every blob of the repository.
	withDeltas := map[BlobRef]bool{}
	for _, pp := range pl.order {
		for _, e := range pp.blobs {
			if e.Delta() {
				withDeltas[BlobRef{e.Type, e.ID}] = true
				for _, b := range e.Bases {
					withDeltas[BlobRef{repo.DataBlob, b}] = true
				}
			}
		}
	}
	hasFull := map[BlobRef]bool{}
	for _, pp := range pl.order {
		if pp.missing || len(withDeltas) == 0 {
			continue
		}
		for _, e := range pp.blobs {
			if k := (BlobRef{e.Type, e.ID}); !e.Delta() && withDeltas[k] {
				hasFull[k] = true
			}
		}
	}
	unreadable := func(e repo.BlobEntry) bool {
		return e.Delta() && slices.ContainsFunc(e.Bases, func(b repo.ID) bool { return !hasFull[BlobRef{repo.DataBlob, b}] })
	}
	// Blobs with a copy that can be read: whole, or a delta whose bases
	// all have full copies. An unreadable delta of such a blob holds
	// nothing and asks for nothing.
	readable := map[BlobRef]bool{}
	for _, pp := range pl.order {
		if pp.missing || len(withDeltas) == 0 {
			continue
		}
		for _, e := range pp.blobs {
			if k := (BlobRef{e.Type, e.ID}); withDeltas[k] && !unreadable(e) {
				readable[k] = true
			}
		}
	}
	needFull := map[BlobRef]bool{}
	for _, pp := range pl.order {
		for _, e := range pp.blobs {
			k := BlobRef{e.Type, e.ID}
			if _, ok := pl.used[k]; !ok || !e.Delta() || readable[k] && unreadable(e) {
				continue
			}
			for _, b := range e.Bases {
				pl.used.Add(repo.DataBlob, b)
				needFull[BlobRef{repo.DataBlob, b}] = true
			}
		}
	}

	// Where each used blob is stored (a base: where a full copy is).
	locs := make(map[BlobRef][]blobLoc, len(pl.used)) // (sized: growing it left 300 MB of garbage for a million blobs)
	// standIns are the delta copies of blobs needed whole (bases), which
	// hold nothing (a base needs a full copy) but read when the full copy
	// does not: confirmDropped keeps one when the full copy it would rely
	// on is damaged. A marked pack holding such a copy was deleted unread,
	// and with it the only copy that read (found by a re-test).
	standIns := map[BlobRef][]blobLoc{}
	for _, pp := range pl.order {
		if pp.missing {
			continue
		}
		for i, e := range pp.blobs {
			k := BlobRef{e.Type, e.ID}
			if _, ok := pl.used[k]; !ok {
				continue
			}
			switch {
			case !(e.Delta() && needFull[k]) && !(readable[k] && unreadable(e)):
				locs[k] = append(locs[k], blobLoc{pp, i})
			case e.Delta() && needFull[k] && !unreadable(e):
				standIns[k] = append(standIns[k], blobLoc{pp, i})
			}
		}
	}
	var lost []string
	for k := range pl.used {
		if len(locs[k]) == 0 {
			lost = append(lost, fmt.Sprintf("%s blob %s", k.Type, k.ID))
		}
	}
	if len(lost) > 0 {
		sort.Strings(lost)
		if len(lost) > 5 {
			lost = append(lost[:5], fmt.Sprintf("and %d more", len(lost)-5))
		}
		return fmt.Errorf("cannot prune: snapshots refer to blobs that no pack holds (%s); nothing was changed; run 'snap check' to see which snapshots are affected; "+
			"'snap repair index --from-packs' if the packs exist, 'snap create' the affected paths again where their data still exists, and 'snap forget' the snapshots whose data is gone", strings.Join(lost, ", "))
	}
	pl.st.UsedBlobs = len(pl.used)

	// A used blob stored only in marked packs: the pack goes back to live
	// (a create committed a snapshot using it after the mark).
	for _, ls := range locs {
		if slices.ContainsFunc(ls, func(l blobLoc) bool { return l.pack.live() }) {
			continue
		}
		ls[0].pack.action = actRescue
	}
	// Each used blob is held by one live pack: the one whose used share is
	// largest, so that duplicates (a crashed repack, a rescue) empty the
	// emptier pack.
	for _, ls := range locs {
		for _, l := range ls {
			if l.pack.live() {
				l.pack.rawUsed += int64(l.e().Length)
			}
		}
	}
	// The blobs stored twice, for confirmDropped: the live copies, the
	// one kept first, then the copies in marked packs, then the stand-ins.
	held := map[BlobRef][]blobLoc{}
	for k, ls := range locs {
		best := ls[0]
		if len(ls) > 1 || len(standIns[k]) > 0 {
			var live, marked []blobLoc
			for _, l := range ls {
				if l.pack.live() {
					live = append(live, l)
				} else {
					marked = append(marked, l)
				}
			}
			slices.SortFunc(live, func(a, b blobLoc) int {
				switch {
				case betterHolder(a.pack, b.pack):
					return -1
				case betterHolder(b.pack, a.pack):
					return 1
				}
				return 0
			})
			best = live[0]
			held[k] = append(append(live, marked...), standIns[k]...)
		}
		e := best.e()
		if best.pack.keep == nil {
			// Most packs keep most of their blobs: room for all at once
			// (growing 72-byte entries one by one made 370 MB of garbage
			// for a million blobs).
			best.pack.keep = make([]repo.BlobEntry, 0, len(best.pack.blobs))
		}
		best.pack.keep = append(best.pack.keep, e)
		best.pack.usedBytes += int64(e.Length)
		pl.st.UsedBytes += int64(e.Length)
	}

	// Decide per pack.
	forced, err := pl.forcedRepacks()
	if err != nil {
		return err
	}
	var partial []*prunePack
	var totalUsed, unused int64
	for _, pp := range pl.order {
		if forced[pp] { // live, indexed before the snapshot list, on disk (forcedRepacks)
			pl.repack(pp)
			pl.st.UnusedBytes += pp.blobBytes() - pp.usedBytes
			totalUsed += pp.usedBytes // the copies stay in use
			continue
		}
		switch {
		case pp.missing:
			pp.action = actDrop
			continue
		case !pp.live():
			if pl.o.Instant || pl.o.Discard[pp.id] || pl.due(pp.markedAt) {
				pp.action = actDelete
			} else {
				pp.action = actPending
			}
			continue
		case pp.fresh:
			continue
		}
		totalUsed += pp.usedBytes
		un := pp.blobBytes() - pp.usedBytes
		pl.st.UnusedBytes += un
		switch {
		case pp.usedBytes == 0:
			pp.action = pl.retire(pp)
		case un > 0:
			partial = append(partial, pp)
			unused += un
		}
	}
	// Unused space may stay while it is at most MaxUnusedPercent of the
	// packs' space (used + unused) after the prune.
	allowed := int64(math.MaxInt64)
	if p := pl.o.MaxUnusedPercent; p < 100 {
		allowed = int64(float64(totalUsed) * p / (100 - p))
	}
	slices.SortStableFunc(partial, func(a, b *prunePack) int {
		ra := float64(a.blobBytes()-a.usedBytes) / float64(max(a.size, 1))
		rb := float64(b.blobBytes()-b.usedBytes) / float64(max(b.size, 1))
		switch {
		case ra > rb:
			return -1
		case ra < rb:
			return 1
		}
		return 0
	})
	for _, pp := range partial {
		if unused <= allowed {
			break
		}
		pl.repack(pp)
		unused -= pp.blobBytes() - pp.usedBytes
	}
	if pl.o.MaxUnusedPercent < 100 && !pl.o.Instant && len(pl.o.Discard) == 0 && !pl.o.NoMerge {
		pl.mergeSmall(int64(ix.r.Config().PackSize), mergeBudget(ix.r.Backend()))
	}
	if err := pl.confirmDropped(ctx, ix, held); err != nil {
		return err
	}

	// Unindexed packs: left by interrupted runs, unless a run that is
	// still going uploaded them and has not written their segment yet.
	pl.keptOrphans = map[repo.ID]bool{}
	for id, size := range pl.disk {
		if _, ok := pl.packs[id]; ok {
			continue
		}
		if pl.o.Instant || pl.lk.others == 0 {
			pl.orphans = append(pl.orphans, id)
			pl.st.OrphanPacks = append(pl.st.OrphanPacks, id)
			pl.st.OrphanBytes += size
		} else {
			pl.st.OrphansKept++
			pl.keptOrphans[id] = true
		}
	}
	slices.SortFunc(pl.orphans, compareIDs)
	slices.SortFunc(pl.st.OrphanPacks, compareIDs)

	pl.tally()
	pl.planSegments()
	return nil
}

// tally fills the stats of what the plan does with each pack.
func (pl *planner) tally() {
	st := pl.st
	st.DeletedPacks, st.DeletedBytes, st.MarkedPacks, st.MarkedBytes, st.MarkedDue = nil, 0, nil, 0, time.Time{}
	st.DiscardedPacks, st.DiscardedBytes = nil, 0
	st.RescuedPacks, st.MissingPacks, st.PendingPacks, st.PendingBytes, st.PendingUntil, st.BlockedBy = nil, nil, 0, 0, time.Time{}, ""
	for _, pp := range pl.order {
		switch pp.action {
		case actDelete:
			if pl.o.Discard[pp.id] && !pl.o.Instant {
				pl.st.DiscardedPacks = append(pl.st.DiscardedPacks, pp.id)
				pl.st.DiscardedBytes += pl.sizeOf(pp)
				break
			}
			pl.st.DeletedPacks = append(pl.st.DeletedPacks, pp.id)
			pl.st.DeletedBytes += pl.sizeOf(pp)
		case actMark:
			pl.st.MarkedPacks = append(pl.st.MarkedPacks, pp.id)
			pl.st.MarkedBytes += pp.size
			pl.st.MarkedDue, pl.st.MarkDelay = pl.now.Add(pl.o.DeleteDelay), pl.o.DeleteDelay
		case actRescue:
			pl.st.RescuedPacks = append(pl.st.RescuedPacks, pp.id)
		case actDrop:
			pl.st.MissingPacks = append(pl.st.MissingPacks, pp.id)
		case actPending:
			pl.st.PendingPacks++
			pl.st.PendingBytes += pp.size
			if until := time.Unix(pp.markedAt, 0).Add(pl.o.DeleteDelay); until.After(pl.st.PendingUntil) {
				pl.st.PendingUntil = until
			}
			if pl.now.Sub(time.Unix(pp.markedAt, 0)) >= pl.o.DeleteDelay {
				pl.st.BlockedBy = pl.lk.holder
			}
		}
	}
}

// betterHolder reports whether a should hold a used blob rather than b.
func betterHolder(a, b *prunePack) bool {
	ra := float64(a.rawUsed) / float64(max(a.size, 1))
	rb := float64(b.rawUsed) / float64(max(b.size, 1))
	if ra != rb {
		return ra > rb
	}
	return compareIDs(a.id, b.id) < 0
}

// goes reports whether the plan takes pp's copies of blobs away: it is
// marked, deleted (a marked pack that is due among them), or repacked
// (which copies only the blobs it holds).
func (pp *prunePack) goes() bool {
	return pp.repack || pp.action == actMark || pp.action == actDelete
}

// confirmDropped reads, for each blob stored twice (held: its live copies,
// the one the plan keeps first, then those in marked packs) whose other
// copy is in a pack the plan takes away, the copy that is kept: keeping
// one copy lets the others go. Prune kept the fuller pack's copy unread
// and, when bit rot had struck it, deleted the only intact one (found by
// an exploratory test); and it deleted a marked pack whose blobs a repack
// had copied without reading the copies again, so one that rotted during
// the delete delay lost the intact original. A kept copy that is damaged
// is named in a warning, and an intact copy in a pack that goes is kept
// with it instead (the pack stays, its repack copies the blob too, or a
// marked pack is live again); when none reads, every copy stays. Blobs
// whose other copies stay where they are are not read: a duplicate in a
// partly used pack was read again on every prune (found by a review), nor
// those whose kept copy a repack reads anyway (copyBlobs, which takes an
// intact copy from a marked pack itself: salvage).
//
// The kept copies are read from the repository, not the cache's copy of
// a tree pack, and a pack at a time: one holding many of them (a
// repack's output, once the packs it emptied are due) in one request.
// Reads run a few at once; one that fails without saying the copy is
// damaged (a lost connection) stops the prune before it changes anything.
func (pl *planner) confirmDropped(ctx context.Context, ix *Index, held map[BlobRef][]blobLoc) error {
	var dups []BlobRef
	for k, ls := range held {
		if slices.ContainsFunc(ls[1:], func(l blobLoc) bool { return l.pack.goes() && (l.pack.live() || !ls[0].pack.repack) }) {
			dups = append(dups, k)
		}
	}
	if len(dups) == 0 {
		return nil
	}
	sort.Slice(dups, func(i, j int) bool { return compareIDs(dups[i].ID, dups[j].ID) < 0 })

	// Round one: each kept copy, pack by pack.
	kept := map[*prunePack][]int{}
	for i, k := range dups {
		p := held[k][0].pack
		kept[p] = append(kept[p], i)
	}
	first := make([]error, len(dups)) // errKnownDamaged: passed over
	errs := make([]error, len(dups))
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	for pp, is := range kept {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			var data []byte
			var want int64 // the bytes of the kept copies in pp
			for _, i := range is {
				want += int64(held[dups[i]][0].e().Length)
			}
			if (len(is) >= 16 || 2*want >= pp.size) && pp.size <= wholePackRead {
				var err error
				data, err = ix.r.Backend().Load(ctx, repo.Handle{Type: repo.PackFile, Name: pp.id.String()}, 0, 0)
				if err != nil && !errors.Is(err, repo.ErrNotFound) {
					errs[is[0]] = fmt.Errorf("cannot prune: reading pack %s, which holds the kept copies of blobs stored twice: %w; nothing was changed", pp.id, err)
					return
				}
				if err != nil {
					for _, i := range is {
						first[i] = err
					}
					return
				}
			}
			for _, i := range is {
				l := held[dups[i]][0]
				if ix.damaged.has(pp.id, l.e().Type, l.e().ID) {
					first[i] = errKnownDamaged
					continue
				}
				first[i] = readCopy(ctx, ix, pp.id, l.e(), data)
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}

	// Round two: for each kept copy that did not read, the first other
	// copy that does, or none.
	intact := make([]int, len(dups)) // -1: none reads
	notes := make([][]string, len(dups))
	for i, k := range dups {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			intact[i] = -1
			for j, l := range held[k] {
				var err error
				switch {
				case j == 0 && first[i] == errKnownDamaged:
					continue
				case j == 0:
					err = first[i]
				case ix.damaged.has(l.pack.id, l.e().Type, l.e().ID):
					continue
				default:
					err = readCopy(ctx, ix, l.pack.id, l.e(), nil)
				}
				if err == nil {
					intact[i] = j
					return
				}
				if !isDamage(err) {
					errs[i] = fmt.Errorf("cannot prune: reading the copy of %s blob %s in pack %s, which is stored twice, to keep an intact one: %w; nothing was changed", k.Type, k.ID, l.pack.id, err)
					return
				}
				ix.damaged.add(Location{Pack: l.pack.id, Status: l.pack.status, Entry: l.e()}, err)
				notes[i] = append(notes[i], fmt.Sprintf("pack %s: its copy of %s blob %s is damaged (%v); prune keeps another: run 'snap check --read-data'", l.pack.id, k.Type, k.ID, err))
			}
			notes[i] = append(notes[i], fmt.Sprintf("%s blob %s: none of its %d copies reads intact; all of them stay: run 'snap check --read-data'", k.Type, k.ID, len(held[k])))
		}()
	}
	wg.Wait()
	for i, k := range dups {
		if errs[i] != nil {
			return errs[i]
		}
		for _, n := range notes[i] {
			pl.o.Log(n)
		}
		ls := held[k]
		switch j := intact[i]; {
		case j == 0:
			// The copy kept reads: the others may go.
		case j > 0:
			if !ls[j].pack.live() {
				pl.o.Log(fmt.Sprintf("pack %s, marked for deletion, holds the intact copy of %s blob %s: it is live again", ls[j].pack.id, k.Type, k.ID))
			}
			pl.keepCopy(ls[j])
			if !ls[j].e().Delta() || ls[0].e().Delta() {
				// (A delta standing in for a base keeps the damaged
				// full copy listed: bases must have one.)
				pl.dropKept(ls[0])
			}
		default:
			for _, l := range ls[1:] {
				pl.keepCopy(l)
			}
		}
	}
	return nil
}

// wholePackRead is the largest pack confirmDropped reads whole (eight at
// once: 512 MiB at most); larger ones, which a repository made with a
// large --pack-size has, are read blob by blob.
const wholePackRead = 64 << 20

// errKnownDamaged stands for a copy found damaged before this prune read
// it (Index.damaged): it is passed over, as the index's loads pass it.
var errKnownDamaged = errors.New("known to be damaged")

// readCopy reads and verifies the blob e of pack id from the repository,
// from data when it holds the whole pack, or a read of its own (a tree is
// not taken from the cache's copy of its pack: prune lets other copies go
// on the strength of this read, and the cache's copy would outlive a
// repository copy that rotted).
func readCopy(ctx context.Context, ix *Index, id repo.ID, e repo.BlobEntry, data []byte) error {
	var sealed []byte
	if data != nil {
		end := int64(e.Offset) + int64(e.Length)
		if end > int64(len(data)) {
			return &repo.CorruptError{Object: fmt.Sprintf("%s blob %s in pack %s", e.Type, e.ID, id), Reason: fmt.Sprintf("lies beyond the end of the pack (%d bytes)", len(data))}
		}
		sealed = data[e.Offset:end]
	}
	var dict []byte
	if e.Delta() {
		var err error
		if dict, _, err = ix.baseDict(ctx, e.Bases, false, nil); errors.Is(err, ErrBlobNotIndexed) {
			// A base with no full copy left (its pack moved out as
			// damaged): this copy does not read, which is no reason to
			// stop the prune (a review found a repack failing for good).
			return &repo.CorruptError{Object: fmt.Sprintf("%s blob %s in pack %s", e.Type, e.ID, id), Reason: "a base of the delta cannot be read: " + err.Error()}
		} else if err != nil {
			return err
		}
	}
	var plain []byte
	var err error
	if sealed != nil {
		plain, err = ix.r.OpenDelta(id, e, sealed, dict, nil)
	} else {
		plain, err = ix.r.LoadDelta(ctx, id, e, dict, nil)
	}
	if err != nil {
		return err
	}
	return ix.VerifyBlob(id, e, plain)
}

// keepCopy keeps the copy at l, which the plan was to take away with its
// pack: a repack copies it too, a pack to be marked stays live, and a
// marked pack due for deletion is live again.
func (pl *planner) keepCopy(l blobLoc) {
	pp := l.pack
	if !pp.goes() && (pp.live() || pp.missing) {
		return // it stays where it is
	}
	// (A marked pack that is not due yet is made live too: it said "live
	// again" and stayed marked, and its due twin went; found by a review.)
	e := l.e()
	pp.keep = append(pp.keep, e)
	pp.usedBytes += int64(e.Length)
	switch {
	case pp.repack:
		pl.st.CopiedBlobs++
		pl.st.CopiedBytes += int64(e.Length)
	case pp.status != PackLive:
		pp.action = actRescue
	default:
		pp.action = actKeep
	}
}

// dropKept takes the damaged copy at l off what its pack holds, now that
// an intact copy elsewhere is kept: its repack no longer tries to copy it
// and ends with an error that calls the blob lost.
func (pl *planner) dropKept(l blobLoc) {
	pp, e := l.pack, l.e()
	i := slices.IndexFunc(pp.keep, func(k repo.BlobEntry) bool { return k.Type == e.Type && k.ID == e.ID })
	if i < 0 {
		return
	}
	pp.keep = slices.Delete(pp.keep, i, i+1)
	pp.usedBytes -= int64(e.Length)
	if pp.repack {
		pl.st.CopiedBlobs--
		pl.st.CopiedBytes -= int64(e.Length)
	}
}

// retire is what happens to a live pack no longer needed.
func (pl *planner) retire(pp *prunePack) packAction {
	if pl.o.Instant || pl.o.Discard[pp.id] {
		return actDelete
	}
	return actMark
}

func (pl *planner) sizeOf(pp *prunePack) int64 {
	if s, ok := pl.disk[pp.id]; ok {
		return s
	}
	return pp.size
}

// planSegments decides which segments are rewritten: every effective
// segment listing a pack whose entry changes, together with every other
// segment listing one of the same packs (so that each pack ends up listed
// by exactly one effective segment, and no cache's view depends on the
// order it reads segments in), plus small segments when there are many.
func (pl *planner) planSegments() {
	eff := pl.ss.Effective()
	parent := map[repo.ID]repo.ID{}
	var find func(repo.ID) repo.ID
	find = func(x repo.ID) repo.ID {
		p, ok := parent[x]
		if !ok || p == x {
			return x
		}
		root := find(p)
		parent[x] = root
		return root
	}
	union := func(a, b repo.ID) {
		ra, rb := find(a), find(b)
		if ra != rb {
			parent[ra] = rb
		}
	}
	for _, id := range eff {
		parent[id] = id
	}
	affected := map[repo.ID]bool{}
	for _, pp := range pl.order {
		for _, s := range pp.segs[1:] {
			union(pp.segs[0], s)
		}
		if pp.action != actKeep && pp.action != actPending || pp.conflict || pp.relisted || len(pp.segs) > 1 {
			affected[pp.segs[0]] = true
		}
	}
	var small []repo.ID
	for _, id := range eff {
		n := 0
		fresh := false
		for _, p := range pl.ss.Segments[id].Packs {
			n += len(p.Blobs)
			if pp := pl.packs[p.ID]; pp != nil && pp.fresh {
				fresh = true
			}
		}
		if n < compactSmall && !fresh {
			small = append(small, id)
		}
	}
	if len(small) > compactCount {
		for _, id := range small {
			affected[id] = true
		}
	}
	comps := map[repo.ID][]repo.ID{}
	for _, id := range eff {
		root := find(id)
		comps[root] = append(comps[root], id)
	}
	roots := make([]repo.ID, 0, len(comps))
	for root, members := range comps {
		hit := false
		for _, m := range members {
			hit = hit || affected[m]
		}
		if hit {
			roots = append(roots, root)
		}
	}
	slices.SortFunc(roots, compareIDs)

	markedAt := pl.now.Unix()
	cur := &Segment{}
	var curOld []repo.ID
	blobs := 0
	flush := func() {
		if len(curOld) == 0 {
			return
		}
		cur.Supersedes = append(curOld, pl.ss.closure(curOld)...)
		pl.newSegs = append(pl.newSegs, newSegment{seg: cur})
		cur, curOld, blobs = &Segment{}, nil, 0
	}
	for _, root := range roots {
		members := comps[root]
		slices.SortFunc(members, compareIDs)
		seen := map[repo.ID]bool{}
		for _, sid := range members {
			curOld = append(curOld, sid)
			for _, p := range pl.ss.Segments[sid].Packs {
				if seen[p.ID] {
					continue
				}
				seen[p.ID] = true
				pp := pl.packs[p.ID]
				np := Pack{ID: pp.id, Size: pp.size, Status: pp.status, MarkedAt: pp.markedAt, Blobs: pp.blobs}
				switch pp.action {
				case actDelete, actDrop:
					continue
				case actMark:
					np.Status, np.MarkedAt = PackMarked, markedAt
				case actRescue:
					np.Status, np.MarkedAt = PackLive, 0
				}
				cur.Packs = append(cur.Packs, np)
				blobs += len(np.Blobs)
			}
		}
		if blobs >= segmentTarget {
			flush()
		}
	}
	flush()
}

// predictAfter fills AfterBytes for a dry run: copies are added, deleted
// packs go (marking frees nothing yet).
func (pl *planner) predictAfter() {
	pl.st.AfterBytes = pl.st.BeforeBytes - pl.st.DeletedBytes - pl.st.DiscardedBytes - pl.st.OrphanBytes + pl.st.CopiedBytes
}

// execute carries out the plan in the safe order: copies, segments,
// deletions.
func (pl *planner) execute(ctx context.Context, ix *Index) error {
	r := ix.r
	// Temporary files of killed runs first: they are garbage whatever
	// happens next, and on a full disk their room is what lets the new
	// segments be written. One that cannot be removed is reported, and
	// does not stop the prune (nor every prune after it).
	if tl, ok := repo.As[repo.TempLister](r.Backend()); ok {
		for _, t := range pl.temps {
			if err := tl.RemoveTemp(ctx, t.Name); err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				pl.o.Log(err.Error())
				pl.st.TempFiles--
				pl.st.TempBytes -= t.Size
			}
		}
	}
	// New packs with the live blobs of repacked packs, and their segments.
	if pl.st.RepackedPacks > 0 {
		// The count is of the packs read, the bytes of the copies
		// uploaded: under --limit-upload the uploads take the time, and
		// the last ones go on after every pack is read.
		pr := PruneProgress{Step: "repacking", Unit: "packs", Total: pl.st.RepackedPacks}
		for _, pp := range pl.order {
			if pp.repack {
				for _, e := range pp.keep {
					pr.TotalBytes += int64(e.Length)
				}
			}
		}
		var prMu sync.Mutex // uploads report from their own goroutines
		report := func(f func()) {
			prMu.Lock()
			defer prMu.Unlock()
			f()
			pl.o.Progress(pr)
		}
		report(func() {})
		w := NewWriter(ix, WriterOptions{Compression: pl.o.Compression, Abort: ctx, Indexed: pl.o.Indexed,
			Uploaded: func(n int64) { report(func() { pr.Bytes += n }) }})
		for _, pp := range pl.order {
			if !pp.repack {
				continue
			}
			damaged, err := copyBlobs(ctx, ix, w, pp, pl.o.Log)
			if err != nil {
				return err
			}
			if damaged, err = pl.salvage(ctx, ix, w, pp, damaged); err != nil {
				return err
			}
			report(func() { pr.Done++ })
			if len(damaged) > 0 {
				// The pack stays, live, listing only what could not be
				// copied: the snapshots that use those blobs are no
				// worse off, and the copies hold the rest, also for
				// later prunes, which would otherwise let the pack
				// hold them again and delete the copies.
				pp.action, pp.repack, pp.relisted = actKeep, false, true
				pp.blobs = nil
				for _, d := range damaged {
					pp.blobs = append(pp.blobs, d.e)
					pl.o.Log(fmt.Sprintf("pack %s: %s; it stays in the pack", pp.id, d.why))
				}
				// In file order, as a segment must list them.
				slices.SortFunc(pp.blobs, func(a, b repo.BlobEntry) int { return cmp.Compare(a.Offset, b.Offset) })
				pl.st.DamagedPacks = append(pl.st.DamagedPacks, pp.id)
				pl.st.DamagedBlobs += len(damaged)
				if pl.damagedFirst == "" {
					pl.damagedFirst = damaged[0].why
				}
			}
		}
		if err := w.Flush(ctx); err != nil {
			return fmt.Errorf("repack: %w; nothing was deleted", err)
		}
		// The repacked packs' segments, which the summary left out (it
		// counted one where index/ had two new files; found by an
		// exploratory test).
		pl.st.SegmentsWritten += int(w.Stats().Segments)
		if len(pl.st.DamagedPacks) > 0 {
			st := w.Stats()
			pl.st.CopiedBlobs, pl.st.CopiedBytes = int(st.Blobs), st.StoredBytes
			pl.tally()
			pl.newSegs = nil
			pl.planSegments()
		}
	}
	// New segments: marks, rescues, and the index without deleted packs.
	if err := pl.verifyLock(ctx); err != nil {
		return err
	}
	pl.dateMarks(r.Now())
	written := map[repo.ID]*Segment{}
	for i, ns := range pl.newSegs {
		pl.o.Progress(PruneProgress{Step: "writing the index", Unit: "segments", Done: i, Total: len(pl.newSegs)})
		id, err := r.SaveObject(ctx, repo.IndexFile, ns.seg.Encode())
		if err != nil {
			return fmt.Errorf("write index segment: %w; nothing was deleted", err)
		}
		written[id] = ns.seg
		pl.st.SegmentsWritten++
	}
	if _, err := ix.Sync(ctx, pl.o.Log); err != nil {
		return err
	}
	// Deletions: packs no effective segment lists any more.
	if err := pl.verifyLock(ctx); err != nil {
		return err
	}
	var del []repo.ID
	for _, pp := range pl.order {
		if pp.action == actDelete {
			del = append(del, pp.id)
		}
	}
	del = append(del, pl.orphans...)
	// By the wall clock (Round(0) drops the monotonic reading, which
	// stops while the machine sleeps).
	checked := time.Now().Round(0)
	for i, id := range del {
		pl.o.Progress(PruneProgress{Step: "deleting", Unit: "packs", Done: i, Total: len(del)})
		// Again every minute: a prune paused past the stale age (a
		// machine that slept) may have lost its lock to a process that
		// then indexed what this plan deletes (found by a review).
		// Stopping here leaves the index consistent: the segments
		// without these packs are written, and the rest are orphans.
		if now := time.Now().Round(0); now.Sub(checked) > time.Minute {
			if err := pl.verifyLock(ctx); err != nil {
				return fmt.Errorf("%w (%d of %d packs deleted)", err, i, len(del))
			}
			checked = now
		}
		err := r.Backend().Remove(ctx, repo.Handle{Type: repo.PackFile, Name: id.String()})
		if err != nil && !errors.Is(err, repo.ErrNotFound) {
			return fmt.Errorf("delete pack %s: %w", id, err)
		}
	}
	// Superseded segments, each after the ones it supersedes.
	all := &SegmentSet{Segments: map[repo.ID]*Segment{}}
	for id, seg := range pl.ss.Segments {
		all.Segments[id] = seg
	}
	for id, seg := range written {
		all.Segments[id] = seg
	}
	old := slices.DeleteFunc(all.deletionOrder(), func(id repo.ID) bool {
		// A superseded segment that lists an unindexed pack left in
		// data/ (by a prune killed while deleting) stays until that
		// pack goes: it tells the caches of other hosts that the pack
		// was dropped from the index on purpose. Deleted, a cache that
		// had missed the prunes between found the pack in data/ listed
		// by no segment it knew replaced, and warned that an index
		// segment had disappeared (found by an exploratory test on S3).
		return slices.ContainsFunc(all.Segments[id].Packs, func(p Pack) bool { return pl.keptOrphans[p.ID] })
	})
	for i, id := range old {
		pl.o.Progress(PruneProgress{Step: "deleting old index segments", Unit: "segments", Done: i, Total: len(old)})
		err := r.Backend().Remove(ctx, repo.Handle{Type: repo.IndexFile, Name: id.String()})
		if err != nil && !errors.Is(err, repo.ErrNotFound) {
			return fmt.Errorf("delete superseded index segment %s: %w", id, err)
		}
		pl.st.SegmentsRemoved++
	}
	_, err := ix.Sync(ctx, pl.o.Log)
	return err
}

// dateMarks gives the packs this prune marks the time their segments are
// written, now, rather than the time the prune started: the safety argument
// (docs/design.md) takes a backup that started more than MarkGrace after a
// mark to have read an index that shows it, and walking the snapshots and
// repacking may take far longer than MarkGrace.
func (pl *planner) dateMarks(now time.Time) {
	for _, ns := range pl.newSegs {
		for i := range ns.seg.Packs {
			if pl.packs[ns.seg.Packs[i].ID].action == actMark {
				ns.seg.Packs[i].MarkedAt = now.Unix()
			}
		}
	}
	if len(pl.st.MarkedPacks) > 0 {
		pl.st.MarkedDue = now.Add(pl.o.DeleteDelay) // MarkDelay: tally
	}
}

func (pl *planner) verifyLock(ctx context.Context) error {
	if pl.o.Lock == nil {
		return nil
	}
	return pl.o.Lock.Verify(ctx)
}

// copyBlobs reads a pack once, verifies the blobs it is chosen to hold,
// and copies them, sealed as they are, to the writer. A blob that fails
// its verification (damaged, or a delta whose base is damaged or gone) is
// not copied: it is described in damaged, and the pack must stay.
func copyBlobs(ctx context.Context, ix *Index, w *Writer, pp *prunePack, log func(string)) (damaged []damagedBlob, _ error) {
	r := ix.r
	data, err := r.Backend().Load(ctx, repo.Handle{Type: repo.PackFile, Name: pp.id.String()}, 0, 0)
	if err != nil {
		return nil, fmt.Errorf("repack: read pack %s: %w; nothing was deleted", pp.id, err)
	}
	for _, e := range pp.keep {
		end := int64(e.Offset) + int64(e.Length)
		if end > int64(len(data)) {
			damaged = append(damaged, damagedBlob{e, fmt.Sprintf("%s blob %s lies beyond the end of the pack (%d bytes)", e.Type, e.ID, len(data))})
			continue
		}
		var dict []byte
		if e.Delta() {
			// Its bases are read to verify it; it is copied as a delta
			// (Writer.Copy), and this prune keeps full copies of them.
			if dict, _, err = ix.baseDict(ctx, e.Bases, false, nil); err != nil {
				if !isDamage(err) && !errors.Is(err, ErrBlobNotIndexed) {
					return nil, fmt.Errorf("repack: data blob %s (a delta) in pack %s: %w; nothing was deleted", e.ID, pp.id, err)
				}
				// Its base is damaged or gone, not the delta: copied once
				// its own bytes prove authentic, it reads again when the
				// base is stored anew (Index.IsBase); left in a pack
				// that is to be moved out, it was lost.
				if aerr := r.Authentic(e, data[e.Offset:end]); aerr != nil {
					damaged = append(damaged, damagedBlob{e, aerr.Error()})
					continue
				}
				log(fmt.Sprintf("pack %s: data blob %s (a delta) copied as it is, unverified: its base cannot be read (%v)", pp.id, e.ID, err))
				if _, err := w.Copy(ctx, e, data[e.Offset:end]); err != nil {
					return nil, fmt.Errorf("repack: %w", err)
				}
				continue
			}
		}
		plain, err := r.OpenDelta(pp.id, e, data[e.Offset:end], dict, nil)
		if err == nil {
			err = ix.VerifyBlob(pp.id, e, plain)
		}
		if err != nil {
			damaged = append(damaged, damagedBlob{e, err.Error()})
			continue
		}
		if _, err := w.Copy(ctx, e, data[e.Offset:end]); err != nil {
			return nil, fmt.Errorf("repack: %w", err)
		}
	}
	return damaged, nil
}

// salvage returns the blobs of pp found damaged that no other pack holds
// intact. A pack that stays (it is not marked, deleted or repacked) with
// an intact copy holds the blob already: the repack ended with an error
// that called it lost, and the pack stayed listed for it. A pack marked
// for deletion with an intact copy has it copied into the new packs: the
// plan weighs only live copies, so the intact one stayed marked, and a
// later prune deleted it (found by an exploratory test: bit rot in the
// kept copy of a blob stored twice, then 'prune --repack' as check
// advised).
func (pl *planner) salvage(ctx context.Context, ix *Index, w *Writer, pp *prunePack, damaged []damagedBlob) ([]damagedBlob, error) {
	var still []damagedBlob
	for _, d := range damaged {
		saved, err := pl.heldIntact(ctx, ix, pp, d)
		if err == nil && !saved {
			saved, err = pl.copyFromMarked(ctx, ix, w, pp, d)
		}
		if err != nil {
			return nil, err
		}
		if !saved {
			still = append(still, d)
		}
	}
	return still, nil
}

// twins calls fn with each other pack's copy of the blob d, in the packs
// that stay (stays) or in those marked for deletion, until fn says done.
func (pl *planner) twins(pp *prunePack, d damagedBlob, stays bool, fn func(twin *prunePack, e repo.BlobEntry) (done bool, err error)) (bool, error) {
	for _, twin := range pl.order {
		if twin == pp || twin.missing || twin.live() != stays || stays && twin.goes() {
			continue
		}
		i := slices.IndexFunc(twin.blobs, func(e repo.BlobEntry) bool { return e.Type == d.e.Type && e.ID == d.e.ID })
		if i < 0 {
			continue
		}
		if done, err := fn(twin, twin.blobs[i]); done || err != nil {
			return done, err
		}
	}
	return false, nil
}

// heldIntact reports whether a pack that stays holds the damaged blob d
// of pp intact: then nothing is copied, and the plan's count of copies
// drops it.
func (pl *planner) heldIntact(ctx context.Context, ix *Index, pp *prunePack, d damagedBlob) (bool, error) {
	return pl.twins(pp, d, true, func(twin *prunePack, e repo.BlobEntry) (bool, error) {
		err := readCopy(ctx, ix, twin.id, e, nil)
		if err != nil && !isDamage(err) {
			return false, fmt.Errorf("repack: reading the copy of %s blob %s in pack %s: %w", d.e.Type, d.e.ID, twin.id, err)
		}
		if err != nil {
			return false, nil
		}
		pl.st.CopiedBlobs-- // planned, not copied
		pl.st.CopiedBytes -= int64(d.e.Length)
		pl.o.Log(fmt.Sprintf("pack %s: its copy of %s blob %s is damaged (%s); pack %s holds an intact copy, which stays", pp.id, d.e.Type, d.e.ID, d.why, twin.id))
		return true, nil
	})
}

// copyFromMarked copies an intact copy of the damaged blob d of pp from a
// pack marked for deletion, when one holds it, and reports whether it did.
func (pl *planner) copyFromMarked(ctx context.Context, ix *Index, w *Writer, pp *prunePack, d damagedBlob) (bool, error) {
	return pl.twins(pp, d, false, func(twin *prunePack, e repo.BlobEntry) (bool, error) {
		bad, err := copyBlobs(ctx, ix, w, &prunePack{id: twin.id, keep: []repo.BlobEntry{e}}, func(string) {})
		switch {
		case err != nil && !isDamage(err):
			return false, err
		case err != nil || len(bad) > 0:
			return false, nil
		}
		pl.o.Log(fmt.Sprintf("pack %s: its copy of %s blob %s is damaged (%s); the intact copy in pack %s, marked for deletion, was copied instead", pp.id, d.e.Type, d.e.ID, d.why, twin.id))
		return true, nil
	})
}

type damagedBlob struct {
	e   repo.BlobEntry
	why string
}

// repack plans pp's used blobs to be copied into new packs and pp to go.
func (pl *planner) repack(pp *prunePack) {
	pp.repack = true
	pp.action = pl.retire(pp)
	pl.st.RepackedPacks++
	pl.st.CopiedBlobs += len(pp.keep)
	pl.st.CopiedBytes += pp.usedBytes
}

// mergeSmall repacks the live packs smaller than a quarter of packSize
// that stay as they are, when there are more than smallPackCount of them
// (smallPackShare), the smallest first and at most smallPackBytes of
// them, and within budget (mergeBudget; -1 for none): the first prune of a
// repository of years of nightly packs copies them over several nights,
// not all at once. Fresh packs (indexed after
// the snapshot list) cannot be judged, and unused, marked or missing ones
// are dealt with already. Not with Instant or Discard (Prune's caller):
// those free space on a full disk, where a merge writes before it deletes
// (found by a review). Nor a pack whose file holds more than its index
// lists: a repack left damaged blobs there, which a merge would try, and
// fail, to copy every night.
func (pl *planner) mergeSmall(packSize, budget int64) {
	var small []*prunePack
	for _, pp := range pl.order {
		if pp.action == actKeep && !pp.repack && pp.live() && !pp.missing && !pp.fresh && pp.usedBytes > 0 &&
			pl.sizeOf(pp) < packSize/smallPackShare && pl.sizeOf(pp) == repo.PackFileSize(pp.blobs) &&
			// A pack cut at its count is full, however small its bytes
			// (with a large pack size, merged it would be cut so again,
			// every night; found by a review).
			len(pp.blobs) < repo.MaxPackBlobs {
			small = append(small, pp)
		}
	}
	if len(small) <= smallPackCount {
		return
	}
	slices.SortStableFunc(small, func(a, b *prunePack) int { return cmp.Compare(pl.sizeOf(a), pl.sizeOf(b)) })
	var bytes int64
	var chosen []*prunePack
	for _, pp := range small {
		if bytes += pl.sizeOf(pp); bytes > smallPackBytes*packSize && len(chosen) > smallPackCount || budget >= 0 && bytes > budget {
			break
		}
		chosen = append(chosen, pp)
	}
	if len(chosen) < 2 {
		// One small pack copied is one small pack again, and a marked
		// copy held for the delay (found by a review).
		return
	}
	for _, pp := range chosen {
		pl.repack(pp)
		pl.st.SmallPacks++
	}
}

// mergeBudget is how many bytes of small packs a prune may merge on the
// repository's storage (-1: no limit known, as on S3). The merged packs'
// space comes back only when their marks run out, 12 hours later by
// default, so the merge must leave room for the backups meanwhile: at
// least a tenth of the storage (up to mergeMargin) and twice the merge,
// besides a released
// space reserve's room. A merge that took the last 13 MiB of 14 made the
// next backup fail, and one that did not fit failed the prune, which then
// deleted nothing (found by an exploratory test).
func mergeBudget(be repo.Backend) int64 {
	sr, ok := repo.As[repo.SpaceReserver](be)
	if !ok {
		return -1
	}
	free, err1 := sr.Free()
	capacity, err2 := sr.Capacity()
	room, _, err3 := sr.ReserveRoom()
	if err1 != nil || err2 != nil || err3 != nil {
		return 0
	}
	avail := int64(free) - int64(room)
	// A tenth of the storage, but no more than 4 GiB: a 10 TB disk with
	// 900 GB free would never merge again (found by a review).
	margin := min(int64(capacity/10), mergeMargin)
	return max(0, min(avail-margin, avail/3))
}

// mergeMargin caps the free space a merge must leave beside itself.
const mergeMargin = 4 << 30

// forcedRepacks resolves PruneOptions.Repack to the packs it names.
func (pl *planner) forcedRepacks() (map[*prunePack]bool, error) {
	out := map[*prunePack]bool{}
	for _, prefix := range pl.o.Repack {
		if prefix == "" {
			return nil, errors.New("--repack: give a pack ID (or a unique prefix of one)")
		}
		var found *prunePack
		for _, pp := range pl.order {
			if !strings.HasPrefix(pp.id.String(), strings.ToLower(prefix)) {
				continue
			}
			if found != nil {
				return nil, fmt.Errorf("--repack %s: more than one pack has an ID starting so; give more of it", prefix)
			}
			found = pp
		}
		if found == nil || !found.live() || found.missing {
			return nil, fmt.Errorf("--repack %s: no pack in use has that ID (see 'snap check --read-data')", prefix)
		}
		if found.fresh {
			return nil, fmt.Errorf("--repack %s: the pack was indexed after this prune listed the snapshots (a backup is writing); run the prune again", prefix)
		}
		out[found] = true
	}
	return out, nil
}
