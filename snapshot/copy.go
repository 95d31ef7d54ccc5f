package snapshot

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/snap-backup/snap/index"
	"github.com/snap-backup/snap/repo"
	"github.com/snap-backup/snap/sources"
)

// Copying a snapshot to another repository.
//
// The two repositories have different master keys, so the same plaintext
// has different blob IDs in each (IDs are keyed hashes), and every stored
// byte is encrypted under a different key. A copy therefore cannot move
// packs: it reads each data blob from the source (verified against its
// source ID), hashes the plaintext with the target's ID key, and saves it
// through the target's Writer, which skips blobs the target already has.
// Chunk boundaries stay as the source cut them: re-chunking with the
// target's polynomial would mean reading every byte of every copied file,
// while keeping them lets a pair map (index.BlobMap, in the local cache)
// answer "which target blob holds this source chunk" without reading it
// again. Trees are rewritten bottom-up with the target's IDs, re-hashed and
// saved. The order of writes is that of create: data and trees, then the
// index segments (Writer.Flush), a check that no reused pack was marked for
// deletion meanwhile, then the snapshot document.
//
// The copied document keeps time, host, tags, paths, sources and summary,
// and records the source snapshot's origin in Original, so that copying
// again (or copying back) recognises it and copies nothing.

// Origin is the snapshot a copy came from, or the snapshot itself.
func Origin(sn *Snapshot) repo.ID {
	if sn.Original != nil {
		return *sn.Original
	}
	return sn.ID
}

// CopyOptions tune a Copier.
type CopyOptions struct {
	Writer index.WriterOptions
	// Workers blobs are read from the source at once.
	Workers int
	// Map remembers source → target data blob pairs across runs; may be
	// nil. Its entries are hints: a pair is used only while the target
	// still holds its blob in a live pack (Writer.Known), so it is safe to
	// record a pair as soon as the blob is saved.
	Map *index.BlobMap
	// FetchDir, when set, is where packs of a remote source that a batch
	// mostly needs are fetched whole (see index.PackFetcher) instead of
	// one request per blob.
	FetchDir string
	// FetchAhead is how many of those packs are fetched at once ahead of
	// need (the source's connection limit); 0 fetches each when first
	// needed.
	FetchAhead int
	// Lock is the lock on the target, verified before each index segment
	// and before each snapshot document is saved (as CreateOptions.Lock):
	// a copy whose lock was taken for stale and removed must not index
	// packs a prune may have deleted, nor commit a snapshot.
	Lock *repo.Lock
	// Read, when set, is told the plaintext size of each data blob read
	// from the source, from several goroutines at once: a status line
	// that counted only the bytes sent stood still while a copy read
	// data the target had already.
	Read func(n int64)
	// CopiedMeanwhile, when set, is asked just before a document is
	// saved whether the target got a copy of origin since the run looked
	// (another copy run's), and returns its ID. A copy's document names
	// its parent's copy, so two runs that copy different snapshots of one
	// source at once (all of them, and only the latest) wrote two
	// documents for the latest and the target held it twice (found by an
	// exploratory test). The check leaves the window of one listing.
	CopiedMeanwhile func(ctx context.Context, origin repo.ID) (repo.ID, bool, error)
}

// CopiedMeanwhileError is Copy's answer for a snapshot that another run
// copied into the target while this one did (CopyOptions.CopiedMeanwhile):
// its data is in the target, and its document is that run's, Target.
type CopiedMeanwhileError struct{ Target repo.ID }

func (e *CopiedMeanwhileError) Error() string {
	return fmt.Sprintf("another copy run saved it in the target as %s meanwhile", e.Target.Short())
}

// countRead counts a data blob of n bytes read from the source.
func (c *Copier) countRead(n int) {
	c.readBlobs.Add(1)
	c.readBytes.Add(int64(n))
	if c.opts.Read != nil {
		c.opts.Read(int64(n))
	}
}

// CopyStats count what a copy did.
type CopyStats struct {
	ReadBlobs int64 // data blobs read from the source
	ReadBytes int64 // their plaintext size
	// Replaced counts snapshot documents the target held damaged under
	// the copy's name, written anew.
	Replaced int64
	index.WriterStats
}

// fetchBatch is how many missing blobs are collected before they are
// fetched, which bounds the memory a copy of a huge snapshot needs.
const fetchBatch = 4096

// Copier copies snapshots from one repository into another. One Copier
// serves a whole run, so subtrees shared by several snapshots are
// rewritten once.
type Copier struct {
	src, dst *index.Index
	w        *index.Writer
	opts     CopyOptions

	mu        sync.Mutex
	trees     map[repo.ID]repo.ID // source tree → target tree, this run
	collected map[repo.ID]bool    // source trees whose missing blobs were fetched
	data      map[repo.ID]repo.ID // source → target data blob, when there is no Map
	// dict is the target's copy of the dictionary of the snapshot being
	// copied (copyDictionary), with the source blob it stands for; nil
	// when the snapshot has none or the target compresses nothing.
	dict    *repo.Dictionary
	dictSrc repo.ID
	// estimated holds the trees and data blobs Estimate has counted.
	estimated map[repo.ID]bool

	readBlobs, readBytes, replaced atomic.Int64
}

// NewCopier prepares copies from src's repository to dst's.
func NewCopier(src, dst *index.Index, o CopyOptions) *Copier {
	if o.Workers < 1 {
		o.Workers = 8
	}
	if o.Lock != nil {
		o.Writer.Verify = o.Lock.Verify
	}
	return &Copier{src: src, dst: dst, w: index.NewWriter(dst, o.Writer), opts: o,
		trees: map[repo.ID]repo.ID{}, collected: map[repo.ID]bool{}, data: map[repo.ID]repo.ID{}}
}

// Stats returns what the copier has done so far.
func (c *Copier) Stats() CopyStats {
	return CopyStats{ReadBlobs: c.readBlobs.Load(), ReadBytes: c.readBytes.Load(), Replaced: c.replaced.Load(), WriterStats: c.w.Stats()}
}

// Copy copies one snapshot and returns the target's document. parent is
// the target snapshot standing for sn's parent, if it was copied. The
// caller holds a shared lock on both repositories.
//
// It works in three passes over the snapshot's trees (which come from the
// local tree cache on a remote source): find the data blobs whose target
// ID is unknown, read those from the source, Workers at once, and save
// them in the target; then rewrite the trees with target IDs.
func (c *Copier) Copy(ctx context.Context, sn *Snapshot, parent *repo.ID) (_ *Snapshot, err error) {
	if c.opts.Lock != nil {
		// A copy that failed because its lock was removed takes back the
		// index segments it wrote since the last snapshot it saved that no
		// check of the lock confirmed, as a create does: a prune that took
		// it for dead may have deleted the packs they name, and the copy
		// run again reused them (found by a re-test).
		defer func() {
			if err == nil {
				return
			}
			vctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), withdrawTimeout)
			defer cancel()
			if !errors.Is(c.opts.Lock.Verify(vctx), repo.ErrLockLost) {
				return // as in Create: only a lock known to be gone
			}
			if werr := c.w.Withdraw(vctx); werr != nil {
				err = fmt.Errorf("%w; removing this copy's index segments failed too (%v): run 'snap check'", err, werr)
			}
		}()
	}
	// A failed or stopped copy, in whichever step (collect fetches full
	// batches itself; Flush waits for the last packs), indexes the packs
	// it made durable. Deferred after the withdrawal above, it runs
	// before it.
	defer func() {
		if err != nil {
			err = saveProgress(ctx, c.w, err)
		}
	}()
	dict, err := c.copyDictionary(ctx, sn)
	if err != nil {
		return nil, err
	}
	missing := map[repo.ID]bool{}
	if err := c.collect(ctx, sn.Tree, 0, missing); err != nil {
		return nil, err
	}
	if err := c.fetch(ctx, missing); err != nil {
		return nil, err
	}
	root, err := c.copyTree(ctx, sn.Tree)
	if err != nil {
		return nil, err
	}
	if err := c.w.Flush(ctx); err != nil {
		return nil, err
	}
	if err := confirmReused(ctx, c.dst, c.w); err != nil {
		return nil, err
	}
	origin := Origin(sn)
	out := *sn
	out.Tree, out.Parent, out.Original, out.ID = root, parent, &origin, repo.ID{}
	out.Dictionary = dict
	// Members a newer snap wrote may name blobs of the source, which the
	// target does not hold under those IDs (the caller warns).
	out.DropUnknown()
	if c.opts.Lock != nil {
		if err := c.w.VerifyLock(ctx); err != nil { // (it confirms the segments written)
			return nil, err
		}
	}
	if c.opts.CopiedMeanwhile != nil {
		id, ok, err := c.opts.CopiedMeanwhile(ctx, origin)
		if err != nil {
			return nil, err
		}
		if ok {
			c.w.Committed() // that document stands, and may use what this run indexed
			return nil, &CopiedMeanwhileError{Target: id}
		}
	}
	replaced, err := SaveCopy(ctx, c.dst.Repository(), &out)
	if err != nil {
		return nil, err
	}
	if replaced {
		c.replaced.Add(1)
	}
	// (A copy's document is named by its content: taken back, it could be
	// one another host's copy of the same snapshot saved at that moment,
	// which the copy run again stores anew.)
	kerr := keptLock(ctx, c.opts.Lock, c.dst.Repository(), out.ID)
	if kerr != nil && !errors.Is(kerr, ErrLockUnchecked) {
		return nil, kerr
	}
	c.w.Committed() // the segments so far are this snapshot's now (the document stands)
	if kerr != nil {
		return nil, fmt.Errorf("copy of snapshot %s: %w", sn.ID.Short(), kerr)
	}
	return &out, nil
}

// SourceError is a copy's failure to read from the source repository (a
// missing pack, a corrupt blob), as opposed to one of the target: the
// snapshot cannot be copied, but others may be.
type SourceError struct{ Err error }

func (e *SourceError) Error() string { return e.Err.Error() }
func (e *SourceError) Unwrap() error { return e.Err }

// known returns the target ID of a source data blob when it is known and
// the target holds it in a live pack.
func (c *Copier) known(sid repo.ID) (repo.ID, bool) {
	var tid repo.ID
	var ok bool
	if c.opts.Map != nil {
		tid, ok = c.opts.Map.Get(sid)
	} else {
		c.mu.Lock()
		tid, ok = c.data[sid]
		c.mu.Unlock()
	}
	return tid, ok && c.w.Known(repo.DataBlob, tid)
}

// collect adds to missing the data blobs below tree id, depth levels
// below the root, whose target ID is not known, fetching them whenever a
// batch is full.
func (c *Copier) collect(ctx context.Context, id repo.ID, depth int, missing map[repo.ID]bool) error {
	skip := func(id repo.ID) bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		_, done := c.trees[id]
		return done || c.collected[id]
	}
	done := func(id repo.ID) {
		c.mu.Lock()
		c.collected[id] = true
		c.mu.Unlock()
	}
	return c.walkFiles(ctx, id, depth, 0, skip, done, func(n *Node) error {
		for _, sid := range n.Content {
			if _, ok := c.known(sid); !ok {
				missing[sid] = true
			}
		}
		if len(missing) >= fetchBatch {
			return c.fetch(ctx, missing)
		}
		return nil
	})
}

// walkFiles calls file for each file below the source tree id (depth
// levels below the root), skipping the trees skip reports and calling done
// for each tree once its files are handled: the walk of Copy's first pass
// and of Estimate. A tree that cannot be loaded is a SourceError; errors
// below a directory name its path, file's own errors are returned as they
// are.
func (c *Copier) walkFiles(ctx context.Context, id repo.ID, depth int, held int64, skip func(repo.ID) bool, done func(repo.ID), file func(*Node) error) error {
	if skip(id) {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	t, held, err := loadTreeOnPath(ctx, c.src, id, depth, held)
	if err != nil {
		return &SourceError{err}
	}
	for i := range t.Nodes {
		n := &t.Nodes[i]
		switch n.Type {
		case sources.TypeDir:
			if err := c.walkFiles(ctx, n.Subtree, depth+1, held, skip, done, file); err != nil {
				return inPath(n.Name, err)
			}
		case sources.TypeFile:
			if err := file(n); err != nil {
				return err
			}
		}
	}
	done(id)
	return nil
}

// fetch reads the missing blobs from the source, Workers at once, saves
// them in the target and records their pairs; it empties missing.
func (c *Copier) fetch(ctx context.Context, missing map[repo.ID]bool) error {
	if len(missing) == 0 {
		return nil
	}
	// Each blob looked up once, for the bases, the order and the copy.
	order := make([]repo.ID, 0, len(missing))
	where := make(map[repo.ID]index.Location, len(missing))
	for sid := range missing {
		order = append(order, sid)
		where[sid], _ = c.src.Lookup(repo.DataBlob, sid) // (not found: a zero location, no delta)
	}
	if err := c.copyBases(ctx, where); err != nil {
		return err
	}
	// In the order of the source's packs, planned and read alike: the
	// map's own order, a new one for each pass, had the fetcher hold
	// many packs at once, each needed again later.
	slices.SortFunc(order, func(a, b repo.ID) int {
		la, lb := where[a], where[b]
		if n := bytes.Compare(la.Pack[:], lb.Pack[:]); n != 0 {
			return n
		}
		return cmp.Compare(la.Entry.Offset, lb.Entry.Offset)
	})
	var src BlobLoader = c.src
	if c.opts.FetchDir != "" {
		plan := index.NewPackPlan()
		for _, sid := range order {
			plan.Add(c.src, sid)
			plan.AddBases(c.src, sid) // read through the fetcher (below)
		}
		f, err := c.src.NewPackFetcher(ctx, c.opts.FetchDir, plan, index.FetchOptions{Ahead: c.opts.FetchAhead})
		if err != nil {
			return &SourceError{err}
		}
		defer f.Close()
		src = f
		ctx = index.ReadBasesFrom(ctx, f)
	}
	ids := make(chan repo.ID)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		pairs    = map[repo.ID]repo.ID{}
		firstErr error
	)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for range c.opts.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for sid := range ids {
				var tid repo.ID
				err := repo.Catch(func() (err error) {
					tid, err = c.copyBlob(ctx, src, sid, where[sid])
					return err
				})
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = err
					cancel()
				}
				if err == nil {
					pairs[sid] = tid
				}
				mu.Unlock()
			}
		}()
	}
feed:
	for _, sid := range order {
		select {
		case ids <- sid:
		case <-ctx.Done():
			break feed
		}
	}
	close(ids)
	wg.Wait()
	clear(missing)
	if c.opts.Map != nil {
		if err := c.opts.Map.Put(pairs); err != nil && firstErr == nil {
			firstErr = fmt.Errorf("record copied blobs in the local cache: %w", err)
		}
	} else {
		c.mu.Lock()
		for k, v := range pairs {
			c.data[k] = v
		}
		c.mu.Unlock()
	}
	return firstErr
}

// copyBlob reads one data blob from the source (verified against its
// source ID), hashes it with the target's key and saves it in the target
// unless the target has it. loc is where the source's index has it (the
// zero Location when it has not: the read then says so).
//
// A blob the source stores as a delta is stored as one in the target too,
// against the target's copies of its bases where the target holds them
// (an earlier snapshot copied before, oldest first; the dictionary of
// small files, copied first; nothing is read from the target for it): a changed chunk of a dump stored whole took
// its whole compressed size, and a copy of a series of dumps came out
// 2.65 times the size of its source (36.4 MB against 96.4).
func (c *Copier) copyBlob(ctx context.Context, src BlobLoader, sid repo.ID, loc index.Location) (repo.ID, error) {
	plain, err := src.LoadBlob(ctx, repo.DataBlob, sid, nil)
	if err != nil {
		return repo.ID{}, &SourceError{err}
	}
	c.countRead(len(plain))
	tid := c.targetID(plain)
	var bases []repo.ID
	if loc.Entry.Delta() {
		bases = loc.Entry.Bases
	}
	c.mu.Lock()
	dict, dictSrc := c.dict, c.dictSrc
	c.mu.Unlock()
	switch {
	case dict != nil && len(bases) == 1 && bases[0] == dictSrc:
		_, err = c.w.SaveWithDictionary(ctx, tid, plain, dict)
	case len(bases) > 0:
		// The bases' plaintexts come from the source, where opening the
		// delta has just read them, rather than from the target, which
		// may be a remote store: hashed with the target's key they name
		// the target's copies, which SaveDelta uses when the target holds
		// them whole in live packs.
		tbases := make([]repo.ID, 0, len(bases))
		for _, b := range bases {
			if tb, _, err := c.primeBase(ctx, b); err == nil {
				tbases = append(tbases, tb)
			} // else a base fewer; without any, the blob is stored whole
		}
		_, err = c.w.SaveDelta(ctx, tid, plain, tbases, false, nil) // as the source decided
	default:
		_, err = c.w.Save(ctx, repo.DataBlob, tid, plain)
	}
	if err != nil {
		return repo.ID{}, err
	}
	return tid, nil
}

// targetID is the ID of a blob of this plaintext in the target.
func (c *Copier) targetID(plain []byte) repo.ID {
	h := c.dst.Hasher()
	defer c.dst.PutHasher(h)
	return repo.ID(h.Sum(plain))
}

// primeBase reads base b from the source (from its cache of bases when a
// delta just opened it) and puts it in the target's cache of bases under
// its target ID, so that deltas against it are written without reading
// the target, which may be a remote store. It returns that ID and the
// plaintext.
func (c *Copier) primeBase(ctx context.Context, b repo.ID) (repo.ID, []byte, error) {
	plain, err := c.src.LoadBase(ctx, b)
	if err != nil {
		return repo.ID{}, nil, err
	}
	tid := c.targetID(plain)
	c.dst.PrimeBase(tid, plain)
	return tid, plain, nil
}

// copyBases copies into the target, whole, the bases of the deltas among
// the missing blobs (where: their locations in the source) that the
// target lacks, and flushes them into the index, so that the deltas are
// stored as deltas against them (Writer.SaveDelta uses only indexed full
// copies). A base is often in no snapshot being copied: the
// chunks of a dump's first version stay in the source for the deltas of
// the later ones after that version is forgotten, and a copy without them
// stored every later version's changed chunks whole, for good (3.9 times
// the source's size; found by a re-test).
func (c *Copier) copyBases(ctx context.Context, where map[repo.ID]index.Location) error {
	var need []repo.ID
	seen := map[repo.ID]bool{}
	for _, loc := range where {
		if !loc.Entry.Delta() {
			continue
		}
		for _, b := range loc.Entry.Bases {
			if seen[b] {
				continue
			}
			seen[b] = true
			// Known counts a delta as present; a base must be whole.
			if tb, ok := c.known(b); !ok || !c.dst.HasFullCopy(tb) {
				need = append(need, b)
			}
		}
	}
	if len(need) == 0 {
		return nil
	}
	pairs := make(map[repo.ID]repo.ID, len(need))
	for _, b := range need {
		tid, plain, err := c.primeBase(ctx, b)
		if err != nil {
			continue // the deltas are stored whole instead
		}
		c.countRead(len(plain))
		if _, err := c.w.SaveWhole(ctx, tid, plain); err != nil {
			return err
		}
		pairs[b] = tid
	}
	if err := c.w.Flush(ctx); err != nil {
		return err
	}
	if c.opts.Map != nil {
		return c.opts.Map.Put(pairs)
	}
	c.mu.Lock()
	maps.Copy(c.data, pairs)
	c.mu.Unlock()
	return nil
}

// copyDictionary copies the dictionary of small files that sn names into
// the target, unless compression is off there, and makes it the one the
// copies of sn's small files are compressed against; it returns the
// target's ID of it for the copied document (nil: none). A dictionary the
// source no longer holds, or one larger than snap builds, is left out: the
// small files are then stored alone.
func (c *Copier) copyDictionary(ctx context.Context, sn *Snapshot) (*repo.ID, error) {
	c.mu.Lock()
	prev, prevSrc := c.dict, c.dictSrc
	c.dict = nil
	c.mu.Unlock()
	level := c.opts.Writer.Compression
	if sn.Dictionary == nil || level == repo.CompressionOff {
		return nil, nil
	}
	sid := *sn.Dictionary
	if prev != nil && prevSrc == sid && c.w.Known(repo.DataBlob, prev.ID) {
		// The snapshot before had it too (a host's runs take their
		// dictionary over): the target holds it already.
		c.mu.Lock()
		c.dict, c.dictSrc = prev, prevSrc
		c.mu.Unlock()
		return &prev.ID, nil
	}
	loc, ok := c.src.Lookup(repo.DataBlob, sid)
	if !ok || loc.Entry.Delta() || loc.Entry.RawLength > 4*dictSize {
		return nil, nil
	}
	plain, err := c.src.LoadBlob(ctx, repo.DataBlob, sid, nil)
	if err != nil {
		return nil, &SourceError{fmt.Errorf("dictionary of snapshot %s: %w", sn.ID.Short(), err)}
	}
	c.countRead(len(plain)) // as the dry run counts it (Estimate)
	tid := c.targetID(plain)
	if err := c.w.SaveDictionary(ctx, tid, plain); err != nil {
		return nil, err
	}
	dict, err := c.dst.Repository().NewDictionary(tid, plain, level)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.dict, c.dictSrc = dict, sid
	c.mu.Unlock()
	return &tid, nil
}

// copyTree rewrites a source tree, and everything below it, with target
// IDs, and returns the target tree's ID. Every data blob's target ID is
// known by now (fetch); one that is not any more (a prune marked its pack
// meanwhile) is copied again here.
func (c *Copier) copyTree(ctx context.Context, id repo.ID) (repo.ID, error) {
	c.mu.Lock()
	tid, ok := c.trees[id]
	c.mu.Unlock()
	if ok {
		return tid, nil
	}
	if err := ctx.Err(); err != nil {
		return repo.ID{}, err
	}
	t, err := LoadTree(ctx, c.src, id)
	if err != nil {
		return repo.ID{}, &SourceError{err}
	}
	for i := range t.Nodes {
		n := &t.Nodes[i]
		switch n.Type {
		case sources.TypeDir:
			if n.Subtree, err = c.copyTree(ctx, n.Subtree); err != nil {
				return repo.ID{}, inPath(n.Name, err)
			}
		case sources.TypeFile:
			content := make([]repo.ID, len(n.Content))
			for j, sid := range n.Content {
				tid, ok := c.known(sid)
				if !ok {
					loc, _ := c.src.Lookup(repo.DataBlob, sid)
					if tid, err = c.copyBlob(ctx, c.src, sid, loc); err != nil {
						return repo.ID{}, inPath(n.Name, err)
					}
				}
				content[j] = tid
			}
			n.Content = content
		}
	}
	plain := t.Encode()
	tid = c.targetID(plain)
	if _, err := c.w.Save(ctx, repo.TreeBlob, tid, plain); err != nil {
		return repo.ID{}, err
	}
	c.mu.Lock()
	c.trees[id] = tid
	c.mu.Unlock()
	return tid, nil
}

// CopyEstimate is what copying snapshots would read from the source.
type CopyEstimate struct {
	Blobs int64 // data blobs whose copy in the target is not known
	Bytes int64 // their plaintext size
}

// Estimate walks sn's trees as Copy does and counts the data blobs Copy
// would read from the source, leaving out those an earlier Estimate of
// this Copier counted (a dry run of several snapshots). It reads trees
// only, and saves nothing. It is an upper bound: a blob the target holds
// without a recorded pair (stored there by another copy or a backup) is
// read, found there, and not sent. The blobs counted are remembered for
// the run: about 50 bytes each.
func (c *Copier) Estimate(ctx context.Context, sn *Snapshot) (CopyEstimate, error) {
	if c.estimated == nil {
		c.estimated = map[repo.ID]bool{}
	}
	var est CopyEstimate
	skip := func(id repo.ID) bool { return c.estimated[id] }
	done := func(id repo.ID) { c.estimated[id] = true }
	err := c.walkFiles(ctx, sn.Tree, 0, 0, skip, done, func(n *Node) error {
		for _, sid := range n.Content {
			if c.estimated[sid] {
				continue
			}
			c.estimated[sid] = true
			if _, ok := c.known(sid); ok {
				continue
			}
			loc, ok := c.src.Lookup(repo.DataBlob, sid)
			if !ok {
				return inPath(n.Name, &SourceError{c.src.NotIndexedError(ctx, repo.DataBlob, sid)})
			}
			est.Blobs++
			est.Bytes += int64(loc.Entry.RawLength)
			c.estimateBases(loc, &est)
		}
		return nil
	})
	// The dictionary the copy reads for the snapshot's small files
	// (copyDictionary), when the target lacks it.
	if sn.Dictionary != nil && !c.estimated[*sn.Dictionary] {
		c.estimated[*sn.Dictionary] = true
		if loc, ok := c.src.Lookup(repo.DataBlob, *sn.Dictionary); ok {
			if _, known := c.known(*sn.Dictionary); !known {
				est.Blobs++
				est.Bytes += int64(loc.Entry.RawLength)
			}
		}
	}
	return est, err
}

// estimateBases adds to est the bases of the delta at loc that the copy
// reads to store them whole in the target (copyBases), and theirs: bases
// are often in no snapshot copied, and the dry run's "at most" was
// exceeded by half (found by an exploratory test).
func (c *Copier) estimateBases(loc index.Location, est *CopyEstimate) {
	if !loc.Entry.Delta() {
		return
	}
	for _, b := range loc.Entry.Bases {
		if c.estimated[b] {
			continue
		}
		c.estimated[b] = true
		if tb, ok := c.known(b); ok && c.dst.HasFullCopy(tb) {
			continue
		}
		bl, ok := c.src.Lookup(repo.DataBlob, b)
		if !ok {
			continue
		}
		est.Blobs++
		est.Bytes += int64(bl.Entry.RawLength)
		c.estimateBases(bl, est)
	}
}

// copyPathError is an error of copy with the path in the snapshot it
// happened at, built up name by name on the way out of the tree walk.
type copyPathError struct {
	path string // without the leading slash
	err  error
}

func (e *copyPathError) Error() string { return "/" + e.path + ": " + e.err.Error() }
func (e *copyPathError) Unwrap() error { return e.err }

// inPath puts name in front of the path of err (a path joined with "/":
// names joined with ": " read "tmp: t-s3: src: f").
func inPath(name string, err error) error {
	if pe, ok := err.(*copyPathError); ok {
		return &copyPathError{path: name + "/" + pe.path, err: pe.err}
	}
	return &copyPathError{path: name, err: err}
}
