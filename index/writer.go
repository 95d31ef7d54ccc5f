package index

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/snap-backup/snap/repo"
)

// segmentPacks is how many durable packs a Writer collects before it writes
// an index segment for them. Smaller means a crashed run leaves fewer
// unindexed packs for the next run to upload again; larger means fewer,
// bigger segments.
const segmentPacks = 64

// segmentBlobs is how many blobs the packs of one segment may hold before
// it is written with fewer than segmentPacks packs: packs of small files
// hold tens of thousands each, and a first backup of a million of them
// wrote one segment of 1.4 M blobs, which every reader then held whole
// (a sync of it took 841 MB; found by an exploratory test). repair writes
// segments of this size too.
const segmentBlobs = 1 << 17

// WriterOptions tune a Writer.
type WriterOptions struct {
	Compression repo.Compression
	// Connections bounds the packs being uploaded at once.
	Connections int
	// Added, when set, is called after each new blob is sealed with its
	// plaintext and stored sizes (for progress reports). It may be called
	// from several goroutines at once.
	Added func(rawBytes, storedBytes int64)
	// Uploaded, when set, is called after each pack is uploaded with the
	// stored size of its blobs (as Added counted them; the pack's trailer
	// not counted), for progress reports of what was sent. It may be
	// called from several goroutines at once.
	Uploaded func(storedBytes int64)
	// Verify, when set, runs before each index segment is written; an
	// error stops the write (create checks that its lock is still held:
	// a process that took it for stale and removed it may have deleted
	// the packs the segment would name).
	Verify func(ctx context.Context) error
	// Indexed, when set, is told the packs of each index segment the
	// writer wrote, once it is durable: what a run that fails has left
	// in the index (snap run deletes a failed create's packs when it
	// found the disk full). It may be called from several goroutines at
	// once.
	Indexed func(packs []repo.ID)
	// Abort, when set, is the command's own context: when it ends (Ctrl-C,
	// SIGTERM) the uploads under way stop too. Uploads otherwise outlive
	// the context of the Save that filled their pack (see upload), and one
	// stuck on a server that stopped answering would hold the exit for as
	// long as its retries last. Every writer that saves from more than one
	// goroutine should have one: without it, a Save waits for an upload
	// slot however its own context ends (upload says why).
	Abort context.Context
}

// WriterStats counts what a Writer added to the repository.
type WriterStats struct {
	Blobs       int64 // new blobs
	RawBytes    int64 // their plaintext size
	StoredBytes int64 // their size in packs, after compression and encryption
	Packs       int64
	Segments    int64 // index segments written
}

type blobKeyT struct {
	t  repo.BlobType
	id repo.ID
}

// Writer adds blobs to the repository. Its write order is the repository's
// consistency guarantee: a pack is uploaded and durable before the index
// segment naming it is written, and the segment is durable before its blobs
// enter the local cache. Only then can a snapshot refer to them. Save may be
// called from many goroutines.
type Writer struct {
	ix   *Index
	r    *repo.Repository
	opts WriterOptions

	mu      sync.Mutex
	inRun   map[blobKeyT]struct{}               // blobs saved by this writer and not yet in the cache
	packers map[repo.BlobType]*repo.PackBuilder // open packs, one per blob type
	pending []Pack                              // durable packs not yet in a segment
	// tried are the packs of segment writes that failed: such a write
	// may have stored the segment all the same (a directory fsync that
	// failed after the rename, a removal after a lost lock that failed,
	// a store that kept what it was sent before the answer was lost), so
	// an index may list them (DropPending leaves them). Not those of a
	// local write the full disk failed before its rename
	// (segmentNotStored).
	tried  map[repo.ID]bool
	reused map[repo.ID]struct{} // packs this run relies on: of blobs it reused, and its own once indexed
	// unconfirmed are the index segments this writer wrote that no check
	// of the lock confirmed afterwards (the repository did not answer):
	// Withdraw takes them back when the lock turns out lost.
	unconfirmed []repo.ID
	err         error // first upload or segment error; sticky
	// failed ends when an upload fails (fail): the uploads in flight stop.
	failed context.Context
	fail   context.CancelFunc

	uploads sync.WaitGroup
	sem     chan struct{}
	scratch chan []byte // compression buffers for Save: see getScratch

	blobs, raw, stored, packs atomic.Int64
	segments                  atomic.Int64 // index segments written
}

// NewWriter returns a writer adding to ix's repository.
func NewWriter(ix *Index, o WriterOptions) *Writer {
	if o.Connections < 1 {
		o.Connections = 2
	}
	w := &Writer{ix: ix, r: ix.r, opts: o, inRun: map[blobKeyT]struct{}{}, packers: map[repo.BlobType]*repo.PackBuilder{},
		reused: map[repo.ID]struct{}{}, sem: make(chan struct{}, o.Connections)}
	w.failed, w.fail = context.WithCancel(context.Background())
	w.scratch = make(chan []byte, runtime.GOMAXPROCS(0))
	return w
}

// Known reports whether the blob is already stored in a live pack or was
// saved by this writer, and records the packs it relies on: the blob's,
// and for a delta those of full copies of its bases (a delta whose bases
// have no such copy counts as not stored).
func (w *Writer) Known(t repo.BlobType, id repo.ID) bool {
	w.mu.Lock()
	_, ok := w.inRun[blobKeyT{t, id}]
	w.mu.Unlock()
	if ok {
		return true
	}
	loc, ok := w.ix.Lookup(t, id)
	if !ok {
		return false
	}
	packs, ok := w.usable(loc, nil, nil)
	if ok {
		w.relyOn(packs...)
	}
	return ok
}

// Reusable is Known for a blob the caller holds the plaintext of, about
// to be stored unless it is known. Once this process has found a stored
// copy damaged (Index.Damaged), the repository is known to be damaged, and
// the copy a known blob would rely on is read and verified first: one
// that is damaged too is stored anew (the read records it, and Known then
// passes it over). Until then nothing is read: a copy is trusted, as
// 'snap check --read-data' is what proves it.
func (w *Writer) Reusable(ctx context.Context, t repo.BlobType, id repo.ID) bool {
	if !w.Known(t, id) {
		return false
	}
	if !w.ix.damaged.any.Load() {
		return true
	}
	w.mu.Lock()
	_, saved := w.inRun[blobKeyT{t, id}]
	w.mu.Unlock()
	if saved {
		return true
	}
	if _, err := w.ix.LoadBlob(ctx, t, id, nil); err != nil && isDamage(err) {
		return w.Known(t, id) // another copy read well, or none is left
	}
	return true
}

// KnownEach sets known[i] to what Known(t, ids[i]) would return, for every
// i, with the blobs looked up a batch at a time in one index transaction
// each (Index.LookupEach): the archiver checks a directory's unchanged
// files at once. Memory beyond known stays one batch's, however long ids
// is (a directory of large unchanged files has millions of chunks). Like
// Known it records the packs of every blob it finds usable, also of a
// file that another of its blobs keeps from being reused; the commit
// then confirms a pack more than it needs to, never one fewer.
func (w *Writer) KnownEach(t repo.BlobType, ids []repo.ID, known []bool) {
	rely := map[repo.ID]struct{}{}  // the blobs share few packs
	bases := map[repo.ID]baseCopy{} // and small files one dictionary
	var look []repo.ID              // of the batch, not saved in this run
	var at []int                    // their indexes in ids
	var locs []Location
	var found []bool
	var packs []repo.ID
	for start := 0; start < len(ids); start += lookupBatch {
		end := min(start+lookupBatch, len(ids))
		look, at = look[:0], at[:0]
		w.mu.Lock()
		for i := start; i < end; i++ {
			if _, known[i] = w.inRun[blobKeyT{t, ids[i]}]; !known[i] {
				look, at = append(look, ids[i]), append(at, i)
			}
		}
		w.mu.Unlock()
		locs, found = slices.Grow(locs[:0], len(look))[:len(look)], slices.Grow(found[:0], len(look))[:len(look)]
		w.ix.LookupEach(t, look, func(j int, loc Location, ok bool) { locs[j], found[j] = loc, ok })
		// Bases are looked up after LookupEach's transaction ends: a
		// second read transaction in the same goroutine would wait
		// forever behind a writer waiting for the first.
		for j, i := range at {
			if found[j] {
				packs, known[i] = w.usable(locs[j], packs[:0], bases)
				for _, p := range packs {
					rely[p] = struct{}{}
				}
			}
		}
	}
	w.mu.Lock()
	maps.Copy(w.reused, rely)
	w.mu.Unlock()
}

// usable reports whether the blob at loc can be reused: its pack is live
// and, for a delta, every base has a full copy in a live pack. It returns
// packs with the packs the blob relies on appended when it can. seen, when
// not nil, keeps the bases already looked up.
func (w *Writer) usable(loc Location, packs []repo.ID, seen map[repo.ID]baseCopy) ([]repo.ID, bool) {
	if loc.Status != PackLive {
		return packs, false
	}
	n := len(packs)
	packs = append(packs, loc.Pack)
	for _, b := range loc.Entry.Bases {
		c, ok := seen[b]
		if !ok {
			l, live := w.ix.fullCopy(b, true)
			c = baseCopy{pack: l.Pack, ok: live}
			if seen != nil {
				seen[b] = c
			}
		}
		if !c.ok {
			return packs[:n], false
		}
		packs = append(packs, c.pack)
	}
	return packs, true
}

// baseCopy is where a base has a full copy in a live pack, if it has one.
type baseCopy struct {
	pack repo.ID
	ok   bool
}

// relyOn records packs this run relies on (those of blobs it reused, and
// its own once indexed), which the commit confirms: a prune may have
// marked them.
func (w *Writer) relyOn(packs ...repo.ID) {
	w.mu.Lock()
	for _, p := range packs {
		w.reused[p] = struct{}{}
	}
	w.mu.Unlock()
}

// Save stores the blob unless it is already known. It returns whether the
// blob was new. Compression and encryption run in the calling goroutine, so
// callers get parallelism by calling Save from several goroutines. The blob
// is durable only after Flush.
func (w *Writer) Save(ctx context.Context, t repo.BlobType, id repo.ID, plain []byte) (bool, error) {
	if w.Reusable(ctx, t, id) {
		return false, nil
	}
	return w.add(ctx, t, id, plain, nil, false, nil, nil)
}

// SaveWhole is Save for a data blob that must have a full copy, a base
// deltas are to be taken against: it is stored unless a full copy is in a
// live pack, also when a delta of it is (which Save takes as stored).
func (w *Writer) SaveWhole(ctx context.Context, id repo.ID, plain []byte) (bool, error) {
	if w.ix.HasFullCopy(id) {
		return false, nil
	}
	return w.add(ctx, repo.DataBlob, id, plain, nil, false, nil, nil)
}

// SaveDelta is Save for a data blob that may resemble the plaintexts of
// bases (the chunks of an earlier version of the same file that covered
// the same bytes): unless compression is off, it is also compressed
// against them, and stored as a delta when that is smaller. Bases without
// a full copy in a live pack are not used; reading them costs a lookup
// and, unless cached, a blob read each.
//
// inherited says that some of the bases stand in for a chunk of the
// earlier version that is a delta itself, so they are older versions
// still (deltas are never taken against deltas). Every version after
// them drifts further from them, and a delta against them grows night
// after night: such a delta is stored only when it takes at most
// 1/inheritedShare of the blob compressed alone; otherwise the blob is
// stored whole, and the next version's deltas are taken against it.
//
// locator, when set, is told where the bases hold bytes of plain (see
// DeltaLocator), whether or not the blob is stored as a delta.
func (w *Writer) SaveDelta(ctx context.Context, id repo.ID, plain []byte, bases []repo.ID, inherited bool, locator DeltaLocator) (bool, error) {
	if w.Reusable(ctx, repo.DataBlob, id) {
		return false, nil
	}
	return w.add(ctx, repo.DataBlob, id, plain, bases, inherited, nil, locator)
}

// DeltaLocator is told that byte at of a blob given to SaveDelta is byte
// baseAt of its base base: where the old version of its content lies,
// which the caller may use to choose the bases of the next blobs (an
// anchor, snapshot/delta.go).
type DeltaLocator func(at int, base repo.ID, baseAt int)

// locateProbe is how many bytes of a blob are looked for in its bases, at
// a few places, until one is found there once: rows of a dump are longer
// than the bytes a row's change leaves alike around it, and unique.
const locateProbe = 64

// locate finds where in dict, the bases of lens bytes each concatenated,
// a piece of plain lies, and tells it to f.
func locate(plain, dict []byte, bases []repo.ID, lens []int, f DeltaLocator) {
	for _, at := range []int{0, len(plain) / 4, len(plain) / 2, 3 * len(plain) / 4} {
		if at+locateProbe > len(plain) {
			break
		}
		probe := plain[at : at+locateProbe]
		i := bytes.Index(dict, probe)
		if i < 0 || bytes.Contains(dict[i+1:], probe) {
			continue // not there, or not once
		}
		for j, n := range lens {
			if i < n {
				f(at, bases[j], i)
				return
			}
			i -= n
		}
		return
	}
}

// inheritedShare: see SaveDelta. Measured on 40 versions of a dump-like
// stream, one in 1,300 rows updated between versions, the last three
// kept (docs/design.md, "Deltas that drift").
const inheritedShare = 4

// SaveWithDictionary is Save for a small data blob (a whole small file)
// that may share content with d, a dictionary stored by SaveDictionary: it
// is compressed against d alone and stored as a delta with d's blob as its
// base when that saves more than the base costs in the trailer and the
// index (repo.OneBaseOverhead); otherwise it is saved as by Save.
func (w *Writer) SaveWithDictionary(ctx context.Context, id repo.ID, plain []byte, d *repo.Dictionary) (bool, error) {
	if w.Reusable(ctx, repo.DataBlob, id) {
		return false, nil
	}
	return w.add(ctx, repo.DataBlob, id, plain, nil, false, d, nil)
}

// SaveDictionary stores plain, the content of a compression dictionary, as
// data blob id in a pack of its own, and returns once that pack and its
// index segment are durable and the blob is in the local index: from then
// on it is a base like any other, with a full copy in a live pack, which
// deltas (SaveWithDictionary) may rely on. When the blob already has a
// full copy in a live pack, that pack is relied on instead.
func (w *Writer) SaveDictionary(ctx context.Context, id repo.ID, plain []byte) error {
	if loc, ok := w.ix.fullCopy(id, true); ok {
		w.relyOn(loc.Pack)
		return nil
	}
	payload, compressed, _ := w.r.CompressBlob(plain, w.opts.Compression, nil)
	p := repo.NewSmallPack(len(payload))
	stored := w.r.AddBlob(p, repo.DataBlob, id, payload, compressed, len(plain), nil)
	pk, err := w.uploadPack(ctx, p)
	if err != nil {
		return fmt.Errorf("dictionary: %w", err)
	}
	if err := w.saveSegment(ctx, []Pack{pk}); err != nil {
		return fmt.Errorf("write index segment of dictionary pack %s: %w", pk.ID.Short(), err)
	}
	w.relyOn(pk.ID)
	w.counted(len(plain), stored)
	return nil
}

func (w *Writer) add(ctx context.Context, t repo.BlobType, id repo.ID, plain []byte, bases []repo.ID, inherited bool, dict *repo.Dictionary, locator DeltaLocator) (bool, error) {
	if limit := t.MaxSize(); len(plain) > limit {
		// Readers refuse it, and the index segment that would list it.
		return false, fmt.Errorf("%s blob %s of %d bytes exceeds the %d-byte limit of such a blob", t, id.Short(), len(plain), limit)
	}
	if fresh, err := w.claim(t, id); !fresh {
		return false, err
	}

	if (dict != nil || len(bases) > 0) && w.ix.IsBase(id) {
		// Deltas already stored need a full copy of it: its own was
		// lost (IsBase).
		dict, bases = nil, nil
	}
	// Compression runs in parallel in the callers; encryption appends to
	// the pack, under the lock (it is some ten times faster).
	level := w.opts.Compression
	scratch := w.getScratch(len(plain))
	// used are the bases of the blob as stored: none unless it is stored
	// as a delta.
	var payload, delta []byte
	var compressed bool
	var used []repo.ID
	if dict != nil && dict.ID != id && level != repo.CompressionOff {
		// Compressed once, against the dictionary: on small files that
		// wins almost always, and compressing alone as well to compare
		// would double the cost.
		var ok bool
		payload, ok, scratch = w.r.CompressWithDictionary(dict, plain, scratch)
		if ok && len(payload)+repo.OneBaseOverhead < len(plain) {
			compressed, used = true, []repo.ID{dict.ID}
		} else {
			payload = nil
		}
	}
	if payload == nil {
		payload, compressed, scratch = w.r.CompressBlob(plain, level, scratch)
	}
	if len(bases) > 0 && level != repo.CompressionOff {
		var usable []repo.ID
		limit := len(payload)
		if inherited {
			limit /= inheritedShare
		}
		delta, usable = w.compressDelta(ctx, plain, bases, level, limit, locator)
		if delta != nil {
			payload, compressed, used = delta, true, usable
		}
	}
	stored, full := w.place(t, len(payload), func(p *repo.PackBuilder) int {
		return w.r.AddBlob(p, t, id, payload, compressed, len(plain), used)
	})
	if delta != nil {
		w.putScratch(delta)
	}
	w.putScratch(scratch)
	w.counted(len(plain), stored)
	return true, w.uploadAll(ctx, full)
}

// Copy adds a blob as it is sealed in another pack (e, its entry there;
// sealed, its bytes), unchanged, even when the index already has it,
// skipping it only when this writer saved it before. Prune uses it to
// copy the blobs of packs it repacks, after verifying them: compressed
// again they could only grow. A delta stays a delta with the same bases
// (prune keeps their full copies), where stored whole it would take its
// chunk's whole compressed size, a hundred times a delta's, and the
// blobs of a repository written at a higher compression level keep it.
func (w *Writer) Copy(ctx context.Context, e repo.BlobEntry, sealed []byte) (bool, error) {
	if fresh, err := w.claim(e.Type, e.ID); !fresh {
		return false, err
	}
	stored, full := w.place(e.Type, len(sealed)-repo.Overhead, func(p *repo.PackBuilder) int {
		return w.r.CopyBlob(p, e, sealed)
	})
	w.counted(int(e.RawLength), stored)
	return true, w.uploadAll(ctx, full)
}

// claim reports whether the blob is new to this writer, and records it;
// after an upload failed it returns that error.
func (w *Writer) claim(t repo.BlobType, id repo.ID) (bool, error) {
	k := blobKeyT{t, id}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return false, w.err
	}
	if _, ok := w.inRun[k]; ok {
		return false, nil
	}
	w.inRun[k] = struct{}{}
	return true, nil
}

// place puts one blob of n bytes before sealing into the open pack of its
// type, under the lock (put seals or copies it in and returns its size
// there), and returns that size and the packs now full, for the caller to
// upload (uploadAll) once it has let go of its buffers.
func (w *Writer) place(t repo.BlobType, n int, put func(p *repo.PackBuilder) int) (int, []*repo.PackBuilder) {
	packSize := w.r.Config().PackSize
	var full []*repo.PackBuilder
	w.mu.Lock()
	defer w.mu.Unlock()
	p := w.packers[t]
	if p != nil && !p.Fits(n, packSize) {
		// Close the pack rather than let it outgrow the pack size (and
		// its buffer): only a blob larger than a whole pack does.
		full = append(full, p)
		p = nil
	}
	if p == nil {
		p = &repo.PackBuilder{}
		w.packers[t] = p
	}
	stored := put(p)
	if p.Full(packSize) {
		full = append(full, p)
		delete(w.packers, t)
	}
	return stored, full
}

func (w *Writer) uploadAll(ctx context.Context, full []*repo.PackBuilder) error {
	for _, f := range full {
		if err := w.upload(ctx, f); err != nil {
			return err
		}
	}
	return nil
}

// compressDelta compresses plain against the bases that have a full copy
// in a live pack and returns the result when it is smaller than limit
// bytes, with the bases it used; nil otherwise. The bases' packs are
// recorded as relied on.
func (w *Writer) compressDelta(ctx context.Context, plain []byte, bases []repo.ID, level repo.Compression, limit int, f DeltaLocator) ([]byte, []repo.ID) {
	usable := make([]repo.ID, 0, len(bases))
	lens := make([]int, 0, len(bases))
	for _, b := range bases {
		if l, ok := w.ix.fullCopy(b, true); ok {
			usable = append(usable, b)
			lens = append(lens, int(l.Entry.RawLength))
		}
	}
	if len(usable) == 0 {
		return nil, nil
	}
	dict, packs, err := w.ix.baseDict(ctx, usable, true, w.getScratch(0))
	if err != nil {
		return nil, nil // unreadable bases only cost the saving; the blob is stored whole
	}
	if f != nil {
		locate(plain, dict, usable, lens, f)
	}
	out, ok, scratch := w.r.CompressDelta(plain, dict, level, w.getScratch(len(plain)))
	w.putScratch(dict)
	if !ok || len(out) >= limit {
		w.putScratch(scratch)
		return nil, nil
	}
	w.relyOn(packs...)
	return out, usable
}

// counted counts one new blob of raw plaintext bytes, stored bytes in its
// pack.
func (w *Writer) counted(raw, stored int) {
	w.blobs.Add(1)
	w.raw.Add(int64(raw))
	w.stored.Add(int64(stored))
	if w.opts.Added != nil {
		w.opts.Added(int64(raw), int64(stored))
	}
}

// getScratch returns a compression buffer with room for the compression of
// n bytes, which may be a little longer than n; putScratch gives it back.
// They are kept in a short free list rather than a sync.Pool, which every
// garbage collection empties.
func (w *Writer) getScratch(n int) []byte {
	var b []byte
	select {
	case b = <-w.scratch:
	default:
	}
	if need := n + n/128 + 1024; cap(b) < need {
		b = make([]byte, 0, need)
	}
	return b
}

func (w *Writer) putScratch(b []byte) {
	select {
	case w.scratch <- b[:0]:
	default:
	}
}

// upload finishes a pack and stores it in the background, waiting while
// Connections uploads are already running.
//
// The pack's blobs are already known to the writer (inRun): a pack not
// stored must fail the writer for good, or a later snapshot would refer
// to blobs that are nowhere. So the wait for a slot does not end with the
// caller's context, which a sibling's failure may cancel (a copy's fetch
// cancels its workers when one source blob is damaged, and goes on with
// the next snapshot): only a failed upload or the run's Abort ends it, and
// either makes the writer's error sticky.
func (w *Writer) upload(ctx context.Context, p *repo.PackBuilder) error {
	var abort <-chan struct{}
	if w.opts.Abort != nil {
		abort = w.opts.Abort.Done()
	}
	select {
	case w.sem <- struct{}{}:
	case <-w.failed.Done():
		w.mu.Lock()
		defer w.mu.Unlock()
		return w.err
	case <-abort:
		w.mu.Lock()
		defer w.mu.Unlock()
		if w.err == nil {
			w.err = context.Cause(w.opts.Abort) // stopped: nothing more to say
			w.fail()
		}
		return w.err
	}
	// After a failed upload no other starts: a store that is gone would
	// make each go through its own retries, minutes apiece.
	w.mu.Lock()
	err := w.err
	w.mu.Unlock()
	if err != nil {
		<-w.sem
		return err
	}
	w.uploads.Add(1)
	// The upload outlives the Save call that filled the pack, whose context
	// may end as soon as that call returns (the archiver cancels its
	// workers' context when the walk is done). Flush waits for the upload
	// and reports its error; a cancelled run stops at Flush's segment write.
	// The first upload that fails ends the others (failed), as does
	// the caller's Abort.
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stopFailed := context.AfterFunc(w.failed, cancel)
	stop := func() bool { return true }
	if w.opts.Abort != nil {
		stop = context.AfterFunc(w.opts.Abort, cancel)
	}
	go func() {
		defer w.uploads.Done()
		defer func() { <-w.sem }()
		defer cancel()
		defer stopFailed()
		defer stop()
		// A panic (a bug) is the writer's error like a failed upload, set
		// before Flush can see the upload done: no segment or snapshot
		// will refer to the pack.
		if err := repo.Catch(func() error { w.store(ctx, p); return nil }); err != nil {
			w.mu.Lock()
			if w.err == nil {
				w.err = fmt.Errorf("upload pack: %w", err)
				w.fail()
			}
			w.mu.Unlock()
		}
	}()
	return nil
}

// store finishes a pack, uploads it and, every segmentPacks packs, writes
// their index segment. An upload failure becomes the writer's error.
func (w *Writer) store(ctx context.Context, p *repo.PackBuilder) {
	pk, err := w.uploadPack(ctx, p)
	w.mu.Lock()
	if err != nil {
		if w.err == nil {
			w.err = err
			w.fail() // the other uploads in flight end
		}
		w.mu.Unlock()
		return
	}
	w.pending = append(w.pending, pk)
	var batch []Pack
	if len(w.pending) >= segmentPacks || pendingBlobs(w.pending) >= segmentBlobs {
		batch, w.pending = w.pending, nil
	}
	w.mu.Unlock()
	if batch != nil {
		w.writeSegment(ctx, batch)
	}
}

// uploadPack finishes a pack and saves it, and gives its buffer back.
func (w *Writer) uploadPack(ctx context.Context, p *repo.PackBuilder) (Pack, error) {
	id, data, ents := w.r.FinishPack(p)
	err := w.r.Backend().Save(ctx, repo.Handle{Type: repo.PackFile, Name: id.String()}, data)
	if err == nil && w.ix.packs != nil && len(ents) > 0 && ents[0].Type == repo.TreeBlob {
		w.ix.packs.store(id, data) // the next run reads these trees as its parent
	}
	size := int64(len(data))
	w.r.ReleasePack(data)
	if err != nil {
		return Pack{}, fmt.Errorf("upload pack %s: %w", id.Short(), err)
	}
	w.packs.Add(1)
	if w.opts.Uploaded != nil {
		var n int64
		for _, e := range ents {
			n += int64(e.Length)
		}
		w.opts.Uploaded(n)
	}
	return Pack{ID: id, Size: size, Status: PackLive, Blobs: ents}, nil
}

// writeSegment writes the index segment for durable packs, then adds them
// to the cache and forgets them from inRun (the cache answers for them now).
func (w *Writer) writeSegment(ctx context.Context, packs []Pack) {
	err := w.saveSegment(ctx, packs)
	w.mu.Lock()
	defer w.mu.Unlock()
	if err != nil {
		if w.err == nil {
			w.err = fmt.Errorf("write index segment: %w", err)
			w.fail() // the run has failed: the uploads in flight end
		}
		var ce *CacheError
		if !errors.As(err, &ce) {
			// Keep the packs pending: the failed run's SaveProgress
			// retries their segment (Flush returns the error).
			w.pending = append(w.pending, packs...)
			if w.tried == nil {
				w.tried = map[repo.ID]bool{}
			}
			for _, p := range packs {
				w.tried[p.ID] = w.tried[p.ID] || !segmentNotStored(w.r.Backend(), err)
			}
		}
		// (Only the local cache failed: the segment is in the
		// repository, and its packs are indexed. Pending, they were
		// indexed again, and DropPending deleted them from under it
		// when the cache's disk was full.)
		return
	}
	for _, p := range packs {
		for _, e := range p.Blobs {
			delete(w.inRun, blobKeyT{e.Type, e.ID})
		}
		// A prune may mark the run's own packs too (no snapshot refers
		// to them yet), so they are confirmed like reused ones.
		w.reused[p.ID] = struct{}{}
	}
}

// segmentNotStored reports whether err, from a segment's save, says that
// the segment is surely not in the repository: a local store writes it to
// a temporary file and renames that into place, and a full disk fails the
// write before the rename (the one error after it is ErrNotDurable). Its
// packs may then go (DropPending): kept as "tried", a create that failed
// there left them taking the room of a full disk (found by an exploratory
// test). An error from S3 may come after the object was stored.
func segmentNotStored(be repo.Backend, err error) bool {
	return repo.OnLocalDisk(be) && repo.DiskFull(err) && !errors.Is(err, repo.ErrNotDurable)
}

// saveSegment writes the index segment for durable packs and adds it to
// the cache.
func (w *Writer) saveSegment(ctx context.Context, packs []Pack) error {
	if err := w.VerifyLock(ctx); err != nil {
		return err
	}
	seg := &Segment{Packs: packs}
	id, err := w.r.SaveObject(ctx, repo.IndexFile, seg.Encode())
	if err != nil {
		return err
	}
	w.segments.Add(1)
	if w.opts.Verify != nil {
		// Again once it is written: an upload held back by
		// --limit-upload (or a process frozen) wrote it minutes after the
		// check above, after a prune that took the run for dead had
		// deleted the packs it names (found by a re-test). A lock found
		// removed stays removed, so a lock still there now was there all
		// along.
		//
		// A check that could not tell (the repository did not answer)
		// leaves the segment as written: the lock was there before the
		// write, a process may have read the segment since, and the
		// run's next check (before its snapshot) decides.
		switch err := w.VerifyLock(ctx); {
		case errors.Is(err, repo.ErrLockLost):
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			defer cancel()
			_ = w.r.Backend().Remove(rctx, repo.Handle{Type: repo.IndexFile, Name: id.String()})
			return err
		case err != nil:
			w.mu.Lock()
			w.unconfirmed = append(w.unconfirmed, id)
			w.mu.Unlock()
		}
	}
	if w.opts.Indexed != nil {
		ids := make([]repo.ID, len(packs))
		for i, p := range packs {
			ids[i] = p.ID
		}
		w.opts.Indexed(ids)
	}
	if err := w.ix.AddSegment(id, seg); err != nil {
		return &CacheError{Path: w.ix.path, Err: err}
	}
	return nil
}

// CacheError is a failed write to the local index cache, not to the
// repository: a full disk there is the cache's disk, whose remedy is not
// the repository's (forget and prune would delete backups for nothing).
type CacheError struct {
	Path string
	Err  error
}

func (e *CacheError) Error() string { return fmt.Sprintf("index cache %s: %v", e.Path, e.Err) }
func (e *CacheError) Unwrap() error { return e.Err }

// CacheFailure reports whether err is a failed write to the local index
// cache: a CacheError, or a write to the cache's database file that
// reached the caller as the file's own error (prune's updates of the cache
// were blamed on the repository's disk; found by a re-test). The create's
// cleanup after a full disk and snap's advice both ask it, so that the
// two agree (found by a review).
//
// The cache's other files count too: copy's map of copied blobs
// (copy-ID.db) and the packs a fetcher keeps (fetch-*/): a full cache disk
// under a copy was blamed on the target's, whose packs were deleted and
// whose snapshots the advice said to forget (found by an exploratory
// test).
func CacheFailure(err error) bool {
	var ce *CacheError
	var pe *fs.PathError
	if errors.As(err, &ce) {
		return true
	}
	if !errors.As(err, &pe) {
		return false
	}
	base, parent := filepath.Base(pe.Path), filepath.Base(filepath.Dir(pe.Path))
	return strings.HasPrefix(base, "index.db") || strings.HasPrefix(base, "copy-") && strings.HasSuffix(base, ".db") ||
		strings.HasPrefix(base, "fetch-") || strings.HasPrefix(parent, "fetch-")
}

// VerifyLock runs WriterOptions.Verify (nil without one). When the lock is
// found there, every segment written before the check is confirmed: the
// lock stood after it was whole (a segment whose own check got no answer
// was withdrawn all the same; found by a review). Create and copy check
// through it before they save the snapshot document.
func (w *Writer) VerifyLock(ctx context.Context) error {
	if w.opts.Verify == nil {
		return nil
	}
	w.mu.Lock()
	n := len(w.unconfirmed) // written before the check
	w.mu.Unlock()
	err := w.opts.Verify(ctx)
	if err == nil && n > 0 {
		w.mu.Lock()
		w.unconfirmed = w.unconfirmed[min(n, len(w.unconfirmed)):] // (Committed may have emptied it meanwhile)
		w.mu.Unlock()
	}
	return err
}

// Committed marks the index segments written so far as referred to by a
// saved snapshot: Withdraw leaves them (a copy of several snapshots
// commits one at a time).
func (w *Writer) Committed() {
	w.mu.Lock()
	w.unconfirmed = nil
	w.mu.Unlock()
}

// Withdraw removes the index segments this writer wrote without a check
// of the lock confirming them, for a run that found its lock gone before
// it could commit: such a segment may have been written after a prune
// that took the run for dead read the index, and that prune may have
// deleted the packs it names; left in place it would make later runs
// reuse blobs that no longer exist. The packs they name become unindexed
// packs, which prune removes. A segment the lock was confirmed after
// stays: the lock was there when it was written whole, and a prune
// removes the stale locks before it reads the index, so every such
// segment was read by any prune that took the run for dead. Taking those
// back too left other runs that had reused their blobs, with snapshots
// saved, unable to restore until 'snap repair index --from-packs' (found
// by a review, reproduced). Best effort: it returns the first error.
func (w *Writer) Withdraw(ctx context.Context) error {
	w.mu.Lock()
	ids := w.unconfirmed
	w.unconfirmed = nil
	w.mu.Unlock()
	var first error
	for _, id := range ids {
		err := w.r.Backend().Remove(ctx, repo.Handle{Type: repo.IndexFile, Name: id.String()})
		if err != nil && !errors.Is(err, repo.ErrNotFound) && first == nil {
			first = err
		}
	}
	return first
}

// Flush closes the open packs, waits for every upload and writes the index
// segment for what is pending. When it returns nil, every blob saved so far
// is durable and indexed. The writer stays usable.
func (w *Writer) Flush(ctx context.Context) error {
	w.mu.Lock()
	var open []*repo.PackBuilder
	for t, p := range w.packers {
		if p.Len() > 0 {
			open = append(open, p)
		}
		delete(w.packers, t)
	}
	w.mu.Unlock()
	for _, p := range open {
		if err := w.upload(ctx, p); err != nil {
			if ctx.Err() == nil {
				w.uploads.Wait() // an earlier failure: the rest are ending (fail)
			}
			return err
		}
	}
	w.uploads.Wait()
	// No pack is being built or stored: their buffers would only sit idle
	// while the index is updated, which can then use the memory instead.
	w.r.DropPackBuffers()
	for len(w.scratch) > 0 {
		<-w.scratch
	}
	w.mu.Lock()
	err := w.err
	var batch []Pack
	if err == nil {
		// After a failure the durable packs stay pending, for the
		// failed run's SaveProgress to index.
		batch, w.pending = w.pending, nil
	}
	w.mu.Unlock()
	if err != nil {
		return err
	}
	if len(batch) > 0 {
		w.writeSegment(ctx, batch)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// SaveProgress is for a run that failed or was stopped: it waits for the
// uploads under way (the run's cancellation ends them) and writes the index
// segment for the packs that became durable and have none yet, so that the
// next run reuses their blobs instead of uploading them again (up to
// segmentPacks packs, 1 GiB, per interruption). It writes nothing else:
// open packs are dropped. Blobs it indexes are unreferenced until a later
// snapshot uses them, and prune removes them if none does.
func (w *Writer) SaveProgress(ctx context.Context) error {
	w.uploads.Wait()
	w.mu.Lock()
	batch := w.pending
	w.pending = nil
	w.mu.Unlock()
	if len(batch) == 0 {
		return nil
	}
	w.writeSegment(ctx, batch)
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.pending) > 0 {
		return w.err // writeSegment put the batch back: its segment failed
	}
	return nil
}

// DropPending is SaveProgress's opposite, for a run that failed for lack
// of room: it waits for the uploads under way and deletes the durable
// packs that no segment write of this writer has named, so that the room
// they take is free again. No other process can rely on them (no index
// lists them), and no snapshot refers to them. A pack named by a segment
// write that failed is left, as that write may have stored the segment
// all the same (tried; not one of a local write a full disk failed before
// its rename, segmentNotStored): prune deletes it, marked or unindexed as
// it turns out. It returns how many it deleted and their size; a pack it could not
// delete is left to prune too. The writer is not used after it.
func (w *Writer) DropPending(ctx context.Context) (int, int64) {
	w.uploads.Wait()
	w.mu.Lock()
	batch := w.pending
	w.pending = nil
	tried := w.tried
	w.mu.Unlock()
	n, size := 0, int64(0)
	for _, p := range batch {
		if tried[p.ID] {
			continue
		}
		if err := w.r.Backend().Remove(ctx, repo.Handle{Type: repo.PackFile, Name: p.ID.String()}); err == nil {
			n++
			size += p.Size
		}
	}
	return n, size
}

// ReusedPacks returns the packs holding blobs this run relied on: blobs it
// reused, and the packs it wrote itself. Before committing a snapshot, its
// creator syncs the index and checks that none of them has been marked for
// deletion since.
func (w *Writer) ReusedPacks() []repo.ID {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]repo.ID, 0, len(w.reused))
	for id := range w.reused {
		out = append(out, id)
	}
	return out
}

// Stats returns what the writer has added so far.
func (w *Writer) Stats() WriterStats {
	return WriterStats{Blobs: w.blobs.Load(), RawBytes: w.raw.Load(), StoredBytes: w.stored.Load(), Packs: w.packs.Load(), Segments: w.segments.Load()}
}

// pendingBlobs counts the blobs of packs.
func pendingBlobs(packs []Pack) int {
	n := 0
	for _, p := range packs {
		n += len(p.Blobs)
	}
	return n
}
