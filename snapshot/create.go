package snapshot

import (
	"context"
	"errors"
	"fmt"
	"os/user"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/snap-backup/snap/index"
	"github.com/snap-backup/snap/repo"
	"github.com/snap-backup/snap/sources"
)

// CreateOptions describe one create run.
type CreateOptions struct {
	Paths   []string // local paths; made absolute and clean
	Streams []Stream
	Tags    []string
	Host    string
	Time    time.Time // the snapshot's time; zero means now
	// Parent overrides the automatic parent (FindParent: the newest
	// snapshot of the same host, paths and tags). NoParent reads every
	// file.
	Parent   *Snapshot
	NoParent bool
	// OwnTrees, when set, tells the root trees of snapshots that this
	// machine's cache saw saved: the automatic parent is the newest of
	// those. Files unchanged since the parent are not read, and the
	// parent's content is taken for theirs, so a document that another
	// writer of the repository saved, with this host's name and paths and
	// a file's content swapped, lent that content to every later snapshot
	// (found by a red-team test). Nil trusts every snapshot of the host:
	// a cache that recorded none (a new machine, a new cache).
	OwnTrees func(tree repo.ID) bool
	Archive  ArchiveOptions
	Writer   index.WriterOptions
	Program  string
	Job      string // the config-file job taking the snapshot, if any
	// AllowEmptied is recorded in the snapshot (Snapshot.AllowEmptied).
	AllowEmptied bool
	// Lock is the caller's lock, verified before each index segment and
	// right before the snapshot document is saved: if another process
	// removed it, taking it for stale (a machine that slept, refreshes
	// that failed), a prune may have deleted data this run relies on, so
	// no snapshot is saved and the run's unconfirmed segments are
	// withdrawn (Writer.Withdraw).
	Lock *repo.Lock
}

// snapshotTime is the time a create dates its snapshot with: the one
// given (--time), else the run's start, as restic and borg date theirs:
// dated by its end, a nightly job that ended sometimes before midnight
// and sometimes after made two snapshots of one day and none of the next
// for --keep-daily, and --at 03:00 missed the run the 03:00 timer
// started (found by an exploratory test).
func snapshotTime(given, start time.Time) time.Time {
	if given.IsZero() {
		return start
	}
	return given
}

// FollowsLink reports whether the path p, as given to a create, names what
// a symlink there points to: "link/" or "link/.", as for lstat, tar and
// rsync.
func FollowsLink(p string) bool { return strings.HasSuffix(p, "/") || strings.HasSuffix(p, "/.") }

// Create makes a snapshot: it archives the inputs, flushes every pack and
// index segment, checks that no pack it relied on has been marked for
// deletion meanwhile, and only then saves the snapshot document (data →
// index → snapshot). The caller holds a shared lock.
func Create(ctx context.Context, ix *index.Index, loader *Loader, o CreateOptions) (_ *Snapshot, err error) {
	r := ix.Repository()
	start := time.Now()
	paths := make([]string, 0, len(o.Paths))
	follow := map[string]bool{}
	for _, p := range o.Paths {
		abs, err := filepath.Abs(p)
		if err != nil {
			return nil, err
		}
		abs = filepath.Clean(abs)
		paths = append(paths, abs)
		// "link/" (or "link/.") names the directory a symlink points to,
		// as for lstat and for tar and rsync: its contents are saved, under
		// the link's path. Clean drops the slash, which saved only the
		// link (an empty backup of /var/lib/mysql/ on another disk).
		if abs != "/" && FollowsLink(p) {
			follow[abs] = true
		}
	}
	slices.Sort(paths)
	paths = slices.Compact(paths)
	if len(paths) == 0 && len(o.Streams) == 0 {
		return nil, fmt.Errorf("nothing to back up: give paths or stream sources")
	}
	var sns []*Snapshot
	if !o.NoParent && (o.Parent == nil && len(paths) > 0 || len(o.Streams) > 0) {
		var err error
		if sns, _, err = loader.List(ctx); err != nil {
			return nil, err
		}
	}
	streams := slices.Clone(o.Streams)
	if !o.NoParent {
		for i := range streams {
			streams[i].parent = previousDump(ctx, ix, sns, o.Host, streams[i].Path)
		}
	}
	root, err := buildVTree(paths, follow, streams)
	if err != nil {
		return nil, err
	}

	parent := o.Parent
	if parent == nil && !o.NoParent {
		// The parent is the newest of the snapshots dated at or before
		// this one: a create back-dated with --time took a newer one,
		// and 'snap diff' showed its changes backwards (found by an
		// exploratory test); restic's backup --time chooses so too. The
		// previous dump and the dictionary are compression aids only,
		// taken from the newest whatever its date.
		older := TakenBy(sns, snapshotTime(o.Time, start))
		want := make([]string, 0, len(streams))
		for _, st := range streams {
			src := st.Source
			src.Path = st.Path
			want = append(want, StreamKey(src))
		}
		slices.Sort(want)
		if len(paths) > 0 {
			parent = FindParent(ownOnly(older, o.OwnTrees), o.Host, paths, o.Tags, want)
			if other := FindParent(older, o.Host, paths, o.Tags, want); other != nil && (parent == nil || other.Tree != parent.Tree) {
				o.Archive.Report(Event{Kind: EventWarning, Err: fmt.Errorf("snapshot %s of this host and paths was not saved through this cache (another machine with this host name, or a document someone else wrote): its files are read again, not taken from it", other.ID.Short())})
			}
		} else {
			parent = findStreamsParent(older, o.Host, want)
		}
	}
	var parentTree *Tree
	// Only files are compared with the parent's tree (streams find their
	// previous version with previousDump): a snapshot of streams alone
	// records its parent for diff, and reads nothing of it.
	if parent != nil && len(paths) > 0 {
		parentTree, err = LoadTree(ctx, ix, parent.Tree)
		if errors.Is(err, index.ErrBlobNotIndexed) {
			// A snapshot saved after this run synced its index (another
			// run of the job that ended meanwhile, with a cache of its
			// own): its segments are in the repository by now.
			if _, serr := ix.Sync(ctx, nil); serr == nil {
				parentTree, err = LoadTree(ctx, ix, parent.Tree)
			}
		}
		if err != nil {
			// Its trees are lost to the index, or damaged: this
			// snapshot is whole, the older ones may not be (a deleted
			// index segment went unnoticed by a nightly create; found
			// by an exploratory test).
			o.Archive.Report(Event{Kind: EventWarning, Err: fmt.Errorf("parent snapshot %s unreadable, reading all files: %w; this snapshot is complete, but run 'snap check': snapshots before it may be damaged", parent.ID.Short(), err)})
			parent, parentTree = nil, nil
		}
	}

	wo := o.Writer
	if o.Lock != nil {
		wo.Verify = o.Lock.Verify
	}
	w := index.NewWriter(ix, wo)
	saved := false // the snapshot document stands: its segments stay
	if o.Lock != nil {
		// A run that failed because its lock was removed (a segment
		// write or the commit found it gone) takes back the index
		// segments no check of the lock confirmed: a prune that took it
		// for dead may have deleted the packs they name.
		defer func() {
			if err == nil || saved {
				return
			}
			// Bounded: after a store that stopped answering, the
			// run is over already, and each request would retry for
			// minutes.
			vctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), withdrawTimeout)
			defer cancel()
			// Only a lock known to be gone: a repository that did not
			// answer (the server went away, the usual cause of the
			// failure) says nothing about the lock, and a run that read
			// these segments may rely on their packs (found by an
			// exploratory test: every outage withdrew them, and said
			// "failed too: run 'snap check'").
			if !errors.Is(o.Lock.Verify(vctx), repo.ErrLockLost) {
				return
			}
			if werr := w.Withdraw(vctx); werr != nil {
				err = fmt.Errorf("%w; removing this run's index segments failed too (%v): run 'snap check'", err, werr)
			}
		}()
	}
	// A failed or stopped run, whichever step it fails in, indexes the
	// packs it made durable. Deferred after the withdrawal above, it runs
	// before it.
	defer func() {
		if err != nil {
			err = saveProgress(ctx, w, err)
		}
	}()
	a, err := newArchiver(ix, w, o.Archive)
	if err != nil {
		return nil, err
	}
	a.dict = newDictionaries(ctx, ix, w, o.Writer.Compression, func(err error) { a.opts.Report(Event{Kind: EventWarning, Err: err}) })
	if dict := previousDictionary(parent, sns, o.Host); dict != nil {
		if err := a.dict.reuse(ctx, *dict); err != nil {
			a.opts.Report(Event{Kind: EventWarning, Err: fmt.Errorf("%w; building a new one", err)})
		}
	}
	// Uploads run in the background with runCtx: it lives until Flush is done.
	runCtx, cancelRun := context.WithCancel(ctx)
	defer cancelRun()
	tree, err := a.run(runCtx, cancelRun, root, parentTree)
	a.dict.wait() // it stores the dictionary with w: not after Flush
	if err != nil {
		return nil, err
	}
	// Stopped here, the run was waiting for its last packs to go up
	// (under --limit-upload that is most of a run): those that made it
	// are indexed on the way out, as above.
	if err := w.Flush(ctx); err != nil {
		return nil, err
	}
	if err := confirmReused(ctx, ix, w); err != nil {
		return nil, err
	}

	now := time.Now()
	sn := &Snapshot{Time: snapshotTime(o.Time, start), Host: o.Host, Tags: o.Tags, Paths: paths, Tree: tree, Program: o.Program, Job: o.Job, AllowEmptied: o.AllowEmptied}
	if sn.Tags == nil {
		sn.Tags = []string{}
	}
	if u, err := user.Current(); err == nil {
		sn.Username = u.Username
	}
	if parent != nil {
		pid := parent.ID
		sn.Parent = &pid
	}
	sn.Dictionary = a.dict.id()
	for i := range streams {
		s := streams[i].Source // its Size was set by the archiver
		s.Path = streams[i].Path
		sn.Sources = append(sn.Sources, s)
	}
	ws := w.Stats()
	sn.Summary = Summary{Files: a.nFiles.Load(), Dirs: a.nDirs.Load(), Bytes: a.nBytes.Load(), ReadBytes: a.nRead.Load(),
		AddedBytes: ws.StoredBytes, AddedRaw: ws.RawBytes, AddedBlobs: ws.Blobs, Errors: a.nErrors.Load(), Start: start, End: now}
	if o.Lock != nil {
		if err := w.VerifyLock(ctx); err != nil { // (it confirms the segments written)
			return nil, err // unconfirmed segments are withdrawn above
		}
	}
	serr := Save(ctx, r, sn)
	if serr != nil && errors.Is(serr, repo.ErrTransient) && ctx.Err() == nil && !sn.ID.IsZero() {
		// An attempt may have reached the store before its answer was
		// lost: "no snapshot was saved" was said of a snapshot that list
		// then showed (found by an exploratory test). As a saved one, it
		// is taken back when the lock is found lost (keptLock), and the
		// segments are then withdrawn; otherwise they stay.
		if err := keptLock(ctx, o.Lock, r, sn.ID); err != nil && !errors.Is(err, ErrLockUnchecked) {
			return nil, err
		}
		return nil, &SaveUnknownError{ID: sn.ID, Err: serr}
	}
	if serr != nil && !errors.Is(serr, repo.ErrNotDurable) {
		return nil, serr
	}
	// A document in place but not made durable is checked as a durable
	// one: kept, its segments must stay (they were withdrawn beside it
	// when the lock was found lost afterwards; found by a review).
	if err := keptLock(ctx, o.Lock, r, sn.ID); err != nil {
		if errors.Is(err, ErrLockUnchecked) {
			saved = true
			return sn, err // saved all the same
		}
		return nil, err // the document is taken back, unconfirmed segments withdrawn above
	}
	saved = true
	if serr != nil {
		return sn, serr // saved all the same, not durable
	}
	return sn, nil
}

// previousDictionary returns the dictionary for small files that the run
// takes over (dictionary.go): its parent's, else that of the newest
// snapshot of the host that has one.
func previousDictionary(parent *Snapshot, sns []*Snapshot, host string) *repo.ID {
	if parent != nil && parent.Dictionary != nil {
		return parent.Dictionary
	}
	if sn := newestOfHost(sns, host, func(sn *Snapshot) bool { return sn.Dictionary != nil }); sn != nil {
		return sn.Dictionary
	}
	return nil
}

// findStreamsParent returns the parent of a snapshot of streams alone (a
// job of database dumps): the host's newest snapshot without paths that
// holds the same streams (StreamKeys).
func findStreamsParent(sns []*Snapshot, host string, streams []string) *Snapshot {
	return newestOfHost(sns, host, func(sn *Snapshot) bool {
		return len(sn.Paths) == 0 && slices.Equal(StreamKeys(sn.Sources), streams)
	})
}

// previousDump returns the node of the stream at path in the newest
// snapshot of host that has that stream, or nil: its chunks are what a new
// dump's changed chunks are compressed against (delta.go), and its times
// are kept when the new dump has the same bytes (saveStream). The node is
// the loaded tree's: read only. A stream's previous
// dump may be in another snapshot than the file parent: one nightly job per
// database, say, each with its own snapshots.
func previousDump(ctx context.Context, ix *index.Index, sns []*Snapshot, host, path string) *Node {
	sn := newestOfHost(sns, host, func(sn *Snapshot) bool {
		return slices.ContainsFunc(sn.Sources, func(s Source) bool { return s.Path == path })
	})
	if sn == nil {
		return nil
	}
	t, err := LoadTree(ctx, ix, sn.Tree)
	comps := strings.Split(strings.TrimPrefix(path, "/"), "/")
	for j, c := range comps {
		if err != nil {
			return nil
		}
		n, ok := t.Find(c)
		switch {
		case !ok:
			return nil
		case j == len(comps)-1:
			if n.Type == sources.TypeFile {
				return n
			}
			return nil
		case n.Type != sources.TypeDir:
			return nil
		}
		t, err = LoadTree(ctx, ix, n.Subtree)
	}
	return nil
}

// keptLock verifies, once the snapshot document id is written, that the
// run still holds lock (nil: none to check), and takes the document back
// when not: the write may have waited (on --limit-upload, a frozen process)
// past the check before it, while a prune that took the run for dead
// deleted the packs the snapshot needs (found by a re-test). A lock found
// removed stays removed, so one still there was there all along.
//
// A check that could not tell (the repository stopped answering) keeps
// the document, and says so (ErrLockUnchecked): the check before the
// write found the lock, and taking back a backup for want of an answer
// lost a night's snapshot to every outage at that moment.
func keptLock(ctx context.Context, lock *repo.Lock, r *repo.Repository, id repo.ID) error {
	if lock == nil {
		return nil
	}
	// Not cut short by Ctrl-C just after the write: "could not be
	// checked" would be said of a lock that is there. The removal below
	// has the same bound.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), withdrawTimeout)
	defer cancel()
	err := lock.Verify(wctx)
	if err == nil {
		return nil
	}
	// Unanswered, the lock is kept for held while another process could
	// not yet take it for stale: it was written less than half the stale
	// age ago. Past that, a prune may have removed it and deleted what
	// the snapshot needs (found by a review), and the document goes as
	// for a lost lock.
	if !errors.Is(err, repo.ErrLockLost) && r.Now().Sub(lock.WrittenAt()) < repo.LockStaleAge/2 {
		return fmt.Errorf("%w (%v): once the repository answers, run 'snap check'", ErrLockUnchecked, err)
	}
	if rerr := r.Backend().Remove(wctx, repo.Handle{Type: repo.SnapshotFile, Name: id.String()}); rerr != nil && !errors.Is(rerr, repo.ErrNotFound) {
		return fmt.Errorf("%w; the snapshot document %s written meanwhile could not be taken back (%v): remove it with 'snap forget %s'", err, id.Short(), rerr, id)
	}
	return err
}

// SaveUnknownError is a snapshot document whose save failed after its
// retries for want of an answer: an attempt may have reached the
// repository, or not.
type SaveUnknownError struct {
	ID  repo.ID
	Err error
}

func (e *SaveUnknownError) Error() string {
	return fmt.Sprintf("saving snapshot %s failed (%v), but an attempt may have reached the repository before the answer was lost: whether it was saved is unknown; 'snap list' shows it if it was, otherwise run the backup again (its data is reused)", e.ID.Short(), e.Err)
}

func (e *SaveUnknownError) Unwrap() error { return e.Err }

// ErrLockUnchecked is the error of a create or copy whose snapshot
// document is written but whose lock could not be checked afterwards
// (keptLock): the snapshot stands.
var ErrLockUnchecked = errors.New("the snapshot was saved, but whether this run still held its lock could not be checked")

// withdrawTimeout bounds the check of a failed run's lock and the removal
// of its segments when the lock is gone.
const withdrawTimeout = 30 * time.Second

// progressTimeout bounds the index segment written for a stopped run's
// durable packs: a stopped run should end promptly, even on a slow store.
const progressTimeout = 15 * time.Second

// saveProgress indexes the packs a failed or stopped run made durable
// (index.Writer.SaveProgress), so that the next run does not upload them
// again. Not after a bug, whose state is not trusted; a failure here costs
// only that reuse. After a full repository disk it deletes them instead
// (index.Writer.DropPending): room matters more then than reuse (not when
// it was the index cache's disk that was full).
//
// It returns runErr, with what it deleted added.
func saveProgress(ctx context.Context, w *index.Writer, runErr error) error {
	var bug *repo.PanicError
	if errors.As(runErr, &bug) {
		return runErr
	}
	ctx, cancel := context.WithTimeout(repo.OutOfTurn(context.WithoutCancel(ctx)), progressTimeout)
	defer cancel()
	if repo.DiskFull(runErr) && !index.CacheFailure(runErr) {
		// Indexed, they would hold the room until a prune had marked
		// them and waited out its delay, and the next run would meet
		// the same full disk; unindexed, nothing can rely on them.
		if n, size := w.DropPending(ctx); n > 0 {
			what, verb := fmt.Sprintf("the %d packs", n), "were"
			if n == 1 {
				what, verb = "the pack", "was"
			}
			amount := fmt.Sprintf("%.1f MiB", float64(size)/(1<<20))
			if size < 1<<20 {
				amount = fmt.Sprintf("%d KiB", (size+1023)/1024) // "0.0 MiB" read as nothing
			}
			return fmt.Errorf("%w (%s this run stored and had not indexed, %s, %s deleted: the room is free again)", runErr, what, amount, verb)
		}
		return runErr
	}
	_ = w.SaveProgress(ctx)
	return runErr
}

// confirmReused syncs the index and makes sure that every pack this run
// relies on — holding a blob it reused, or written by it — is still live: a
// prune that ran meanwhile may have marked it for deletion (invariant 9).
func confirmReused(ctx context.Context, ix *index.Index, w *index.Writer) error {
	reused := w.ReusedPacks()
	if len(reused) == 0 {
		return nil
	}
	if _, err := ix.Sync(ctx, nil); err != nil {
		return err
	}
	var gone []repo.ID
	for _, id := range reused {
		if st, ok := ix.PackStatus(id); !ok || st != index.PackLive {
			gone = append(gone, id)
		}
	}
	if len(gone) == 0 {
		return nil
	}
	return rescue(ctx, ix, w, gone)
}

// rescue copies the blobs of packs that were marked for deletion while this
// run relied on them into new packs, so the snapshot never refers to data
// that prune may delete. Marked packs still exist (prune deletes them only
// in a later run), so their blobs can still be read.
func rescue(ctx context.Context, ix *index.Index, w *index.Writer, packs []repo.ID) error {
	want := map[repo.ID]bool{}
	for _, p := range packs {
		want[p] = true
	}
	var locs []index.Location
	found := map[repo.ID]bool{}
	if err := ix.Blobs(func(l index.Location) error {
		if want[l.Pack] {
			locs = append(locs, l)
			found[l.Pack] = true
		}
		return nil
	}); err != nil {
		return err
	}
	for _, p := range packs {
		if !found[p] {
			// Deleted, not just marked: the prune protocol never does this
			// to a running backup, so something bypassed it (an instant
			// prune after 'snap unlock --all'?). Never save a snapshot that
			// may refer to it.
			return fmt.Errorf("pack %s, which this backup relies on, is no longer in the index; run the backup again", p.Short())
		}
	}
	for _, l := range locs {
		if ix.Has(l.Entry.Type, l.Entry.ID) {
			continue // also stored in a live pack
		}
		plain, err := ix.LoadBlobAt(ctx, l, nil)
		if err != nil && l.Entry.Delta() && errors.Is(err, index.ErrBlobNotIndexed) {
			// A delta whose base no pack holds any more: one that no
			// snapshot uses, whose base an earlier prune removed. This
			// run cannot rely on it: a delta is reused only while each
			// base has a full copy in a live pack (Writer.Known), and no
			// prune deletes a pack a running backup may rely on. It
			// failed every backup that met such a pack, as damage (found
			// by an exploratory test).
			continue
		}
		if err != nil {
			return fmt.Errorf("rescue blob from pack %s marked for deletion: %w", l.Pack.Short(), err)
		}
		if _, err := w.Save(ctx, l.Entry.Type, l.Entry.ID, plain); err != nil {
			return err
		}
	}
	return w.Flush(ctx)
}

// ownOnly returns the snapshots of sns whose root tree own tells, all of
// them when own is nil (CreateOptions.OwnTrees).
func ownOnly(sns []*Snapshot, own func(repo.ID) bool) []*Snapshot {
	if own == nil {
		return sns
	}
	var out []*Snapshot
	for _, sn := range sns {
		if own(sn.Tree) {
			out = append(out, sn)
		}
	}
	return out
}
