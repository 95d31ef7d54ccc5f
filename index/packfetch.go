package index

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/snap-backup/snap/repo"
)

// PackFetcher serves data blobs from whole packs, each fetched with one
// request into a temporary directory, for a read that needs most of the
// blobs of the packs it touches — a restore from a remote repository,
// where a ranged request per blob would cost one round trip per small
// file. The plan (which reads of each pack's blobs are coming, in what
// order) decides which packs are worth fetching whole, the order in which
// they are fetched, and when a fetched pack can be deleted; blobs of other
// packs are read by range as usual. Every blob is still authenticated and
// checked against its ID.
//
// Packs are fetched ahead of need: FetchOptions.Ahead goroutines fetch
// the chosen packs in the plan's order while the caller reads. Three
// bounds hold:
//   - at most Ahead fetches run at once, counting those a read starts
//     (the connection limit: prefetching keeps it busy, never more);
//   - at most MaxLive packs are on disk or being fetched; prefetching
//     stops short of it by Ahead (at most half of it), keeping room for
//     packs reads need before the prefetchers get to them, since reads
//     follow the plan's order only roughly;
//   - at most 2×Ahead fetched packs wait for their first read, so that
//     prefetching stays close to where the reads are and leaves the rest
//     of MaxLive to packs being read.
//
// Each pack is fetched once: a read of a pack being fetched waits for that
// fetch, a read of a pack not reached yet fetches it at once, and a read
// that finds no room on disk reads its blob by range rather than wait for
// room that only later reads would free.
type PackFetcher struct {
	ix      *Index
	dir     string
	answers atomic.Uint64 // Answers
	maxLive int           // packs on disk (or being fetched) at once
	ahead   int           // prefetching goroutines, each with one request in flight
	// slots bounds the fetches in flight, prefetched or not, to ahead
	// (nil: no bound). A channel's waiters are served in turn, so a fetch
	// a read waits for goes before the prefetchers' next ones.
	slots chan struct{}

	ctx    context.Context // every fetch's; Close cancels it
	cancel context.CancelFunc
	stop   func() bool    // unregisters the wake-up on cancellation
	wg     sync.WaitGroup // running fetches and prefetchers

	// gone, under mu, is the context of the downloads (a child of ctx):
	// once fetchGoneAfter fetches in a row failed for want of an answer
	// (unanswered counts them), it is cancelled with their error, and the
	// fetches under way and queued fail at once rather than each wait out
	// a round of retries. An answer (a blob read by range) makes a new one.
	gone       context.Context
	goneCancel context.CancelCauseFunc
	unanswered int

	mu    sync.Mutex
	room  *sync.Cond // broadcast when a pack leaves the disk, a fetch ends, or ctx ends
	packs map[repo.ID]*fetchedPack
	// bases are the planned base reads not made yet, with their packs:
	// the first read of each (LoadBase), or the cache's answer for it
	// (BaseCached), counts as the planned one; any other goes by range.
	// A pack kept for a read that never came held its place on disk and
	// stalled prefetching, and a second read counted its pack down
	// twice (found by a review).
	bases  map[repo.ID]repo.ID
	order  []repo.ID // the packs to fetch whole, first needed first
	next   int       // the first entry of order the prefetchers have not looked at
	live   int       // packs on disk or being fetched
	unread int       // packs the prefetchers claimed that no read has touched yet
	closed bool      // Close was called: no fetch starts any more
}

// packState is where a chosen pack is; f.mu guards it.
type packState int

const (
	packQueued   packState = iota // not fetched yet
	packFetching                  // a fetch is running; done is closed when it ends
	packOnDisk                    // at path
	packByRange                   // its planned reads are done, or its copy was unusable: read by range
	packFailed                    // the fetch failed: reads of its blobs fail with err
)

type fetchedPack struct {
	state     packState
	unread    bool          // claimed by a prefetcher, not touched by a read yet
	remaining int           // planned reads still to come
	path      string        // with packOnDisk
	done      chan struct{} // with packFetching
	err       error         // with packFailed
}

// PackPlan counts, per pack, the data blob reads a caller is about to make
// and the bytes they need, and remembers the order in which the packs are
// first needed.
type PackPlan struct {
	reads map[repo.ID]int
	bytes map[repo.ID]int64
	order []repo.ID
	bases map[repo.ID]repo.ID // the bases planned, each once, with the pack of the copy planned
}

// NewPackPlan returns an empty plan.
func NewPackPlan() *PackPlan {
	return &PackPlan{reads: map[repo.ID]int{}, bytes: map[repo.ID]int64{}, bases: map[repo.ID]repo.ID{}}
}

// AddBases records, for a data blob stored as a delta, the reads of the
// full copies of its bases not planned yet: read through the fetcher
// (index.ReadBasesFrom), a dump's bases, spread over its earlier
// versions' packs, come from those packs fetched whole instead of one
// request each.
func (p *PackPlan) AddBases(ix *Index, id repo.ID) {
	loc, ok := ix.Lookup(repo.DataBlob, id)
	if !ok || !loc.Entry.Delta() {
		return
	}
	for _, b := range loc.Entry.Bases {
		if _, ok := p.bases[b]; ok {
			continue
		}
		l, ok := ix.fullCopy(b, false)
		if !ok {
			continue // the read reports it
		}
		p.bases[b] = l.Pack
		p.add(l)
	}
}

// Add records a coming read of a data blob; reads should be added in the
// order they will be made, as far as the caller knows it. Blobs the index
// does not know are left to the read itself to report. A delta is planned
// like any blob (its bases, mostly one dictionary shared by many small
// files, are read through the index and its cache of bases).
func (p *PackPlan) Add(ix *Index, id repo.ID) {
	loc, ok := ix.Lookup(repo.DataBlob, id)
	if !ok {
		return
	}
	p.add(loc)
}

func (p *PackPlan) add(loc Location) {
	if p.reads[loc.Pack] == 0 {
		p.order = append(p.order, loc.Pack)
	}
	p.reads[loc.Pack]++
	p.bytes[loc.Pack] += int64(loc.Entry.Length)
}

// sweepFetchDirs removes what fetchers of processes that were killed left
// in dir: a fetch-PID-* directory whose process is gone and that has not
// changed for an hour, or any fetch-* not changed for a week (a live
// fetcher adds and removes packs all the time). The hour is for a cache
// that processes of another PID namespace share (containers), whose PIDs
// this one cannot see (found by a review). Close removes a fetcher's own; a copy killed again and again on a
// flaky link left up to 1 GiB each time, which nothing removed (found by an
// exploratory test).
func sweepFetchDirs(dir string) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		name := e.Name()
		rest, ok := strings.CutPrefix(name, "fetch-")
		if !ok || !e.IsDir() {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			continue
		}
		idle := time.Since(fi.ModTime())
		gone := idle > 7*24*time.Hour
		if pidText, _, ok := strings.Cut(rest, "-"); ok && idle > time.Hour {
			if pid, err := strconv.Atoi(pidText); err == nil && pid > 0 && pid != os.Getpid() {
				gone = gone || errors.Is(unix.Kill(pid, 0), unix.ESRCH)
			}
		}
		if gone {
			_ = os.RemoveAll(filepath.Join(dir, name))
		}
	}
}

// FetchOptions tune a PackFetcher.
type FetchOptions struct {
	// Ahead is how many packs are fetched at once ahead of need: the
	// connection limit, so that prefetching keeps every connection busy
	// and never more. 0 fetches a pack only when a read first needs it.
	Ahead int
	// MaxLive bounds the packs on local disk at once (16 MiB each by
	// default); 0 means 64. Beyond it, blobs are read by range.
	MaxLive int
}

// rangedReadCost is what one more request costs, counted in bytes of a
// whole pack's download: a round trip to a remote store (some 25–50 ms)
// in which 10–20 MB/s move about 512 KiB.
const rangedReadCost = 512 << 10

// worthFetching reports whether a pack of size bytes is better fetched
// whole than read by range for reads blobs of needBytes in all: when the
// reads need a quarter of it, or when their requests cost more than the
// bytes of it they do not need. The quarter alone left a pack that a prune
// had filled with many snapshots' blobs to hundreds of ranged requests,
// 244 for one pack in a restore and one per blob in a copy, 95 times
// restic's requests (found by an exploratory test).
func worthFetching(size, needBytes int64, reads int) bool {
	return needBytes*4 >= size || int64(reads-1)*rangedReadCost >= size-needBytes
}

// NewPackFetcher prepares to serve the plan's reads, fetching whole the
// packs of which the plan needs at least a quarter, or so many blobs that
// their requests would cost more (worthFetching), into a new directory
// under dir, and starts fetching them ahead of need. Fetches run under
// ctx; Close stops them and removes the directory.
func (ix *Index) NewPackFetcher(ctx context.Context, dir string, plan *PackPlan, o FetchOptions) (*PackFetcher, error) {
	sweepFetchDirs(dir)
	tmp, err := os.MkdirTemp(dir, fmt.Sprintf("fetch-%d-", os.Getpid()))
	if err != nil {
		return nil, fmt.Errorf("temporary directory for packs: %w", err)
	}
	if o.MaxLive < 1 {
		o.MaxLive = 64
	}
	f := &PackFetcher{ix: ix, dir: tmp, maxLive: o.MaxLive, ahead: max(o.Ahead, 0), packs: map[repo.ID]*fetchedPack{}, bases: maps.Clone(plan.bases)}
	if f.ahead > 0 {
		f.slots = make(chan struct{}, f.ahead)
	}
	f.room = sync.NewCond(&f.mu)
	f.ctx, f.cancel = context.WithCancel(ctx)
	f.gone, f.goneCancel = context.WithCancelCause(f.ctx)
	f.stop = context.AfterFunc(f.ctx, func() {
		f.mu.Lock()
		f.room.Broadcast()
		f.mu.Unlock()
	})
	for _, id := range plan.order {
		size, ok := ix.packSize(id)
		if ok && size > 0 && worthFetching(size, plan.bytes[id], plan.reads[id]) {
			f.packs[id] = &fetchedPack{remaining: plan.reads[id]}
			f.order = append(f.order, id)
		}
	}
	for range min(f.ahead, len(f.order)) {
		f.wg.Add(1)
		go f.prefetch()
	}
	return f, nil
}

// Close stops the fetches, waits for them and removes the fetched packs.
// Reads still running, or made after Close, fail or go by range.
func (f *PackFetcher) Close() error {
	f.mu.Lock()
	f.closed = true // no fetch starts once Close waits for them
	f.mu.Unlock()
	f.cancel()
	f.wg.Wait()
	f.stop()
	return os.RemoveAll(f.dir)
}

// LoadBlob reads and verifies a blob, from its fetched pack when the plan
// chose to fetch it, and appends the plaintext to dst. A blob of a pack
// whose fetch failed fails with that error.
func (f *PackFetcher) LoadBlob(ctx context.Context, t repo.BlobType, id repo.ID, dst []byte) ([]byte, error) {
	loc, ok := f.ix.Lookup(t, id)
	if !ok {
		return f.ix.LoadBlob(ctx, t, id, dst) // reports the missing blob
	}
	if t != repo.DataBlob {
		return f.byRange(ctx, loc, dst) // not planned
	}
	return f.loadAt(ctx, loc, dst)
}

// takeBase reports whether a read of base id is the planned one (the
// first), and returns its pack's state when the plan fetches it whole.
func (f *PackFetcher) takeBase(id repo.ID) (*fetchedPack, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	pack, ok := f.bases[id]
	if !ok {
		return nil, false
	}
	delete(f.bases, id)
	return f.packs[pack], true
}

// LoadBase reads the full copy of base at loc: through its fetched pack
// when this is the read the plan counted, by range otherwise.
func (f *PackFetcher) LoadBase(ctx context.Context, loc Location, dst []byte) ([]byte, error) {
	if _, planned := f.takeBase(loc.Entry.ID); !planned {
		return f.byRange(ctx, loc, dst)
	}
	return f.loadAt(ctx, loc, dst)
}

// BaseCached counts the planned read of base id as made: the cache of
// bases answered it.
func (f *PackFetcher) BaseCached(id repo.ID) {
	p, planned := f.takeBase(id)
	if !planned || p == nil {
		return
	}
	f.mu.Lock()
	f.touch(p)
	f.mu.Unlock()
	f.done(p)
}

// loadAt is LoadBlob of the data blob at loc.
func (f *PackFetcher) loadAt(ctx context.Context, loc Location, dst []byte) ([]byte, error) {
	t, id := loc.Entry.Type, loc.Entry.ID
	f.mu.Lock()
	p := f.packs[loc.Pack]
	f.mu.Unlock()
	if p == nil {
		return f.byRange(ctx, loc, dst)
	}
	defer f.done(p)
	path, err := f.await(ctx, loc.Pack, p)
	if err != nil {
		if ctx.Err() != nil {
			return nil, err
		}
		if isDamage(err) {
			// The pack is gone or damaged: another copy of the blob may
			// read (LoadBlobAt records this one and looks).
			return f.byRange(ctx, loc, dst)
		}
		return nil, fmt.Errorf("load %s blob %s: %w", t, id, err) // as a read by range names it
	}
	if path == "" {
		return f.byRange(ctx, loc, dst)
	}
	out, err := f.readFrom(ctx, path, loc, dst)
	if err != nil {
		// A bad local copy (or one deleted by reads beyond the plan) must
		// not fail the read: the repository decides.
		return f.byRange(ctx, loc, dst)
	}
	return out, nil
}

// byRange reads a blob from the repository, counting the answer.
func (f *PackFetcher) byRange(ctx context.Context, loc Location, dst []byte) ([]byte, error) {
	out, err := f.ix.LoadBlobAt(ctx, loc, dst)
	if err == nil {
		f.answered()
	}
	return out, err
}

// fetchGoneAfter is how many fetches in a row must fail for want of an
// answer before the fetcher takes the repository for gone: as many as the
// restorer's unreachableAfter (snapshot/restorer.go), which then stops the
// restore. A read that had started the fetch of its pack after those began
// waited out a retry round of its own, and a restore from a killed S3
// server took two rounds instead of one in some runs (found by a re-test).
const fetchGoneAfter = 3

// answered records an answer of the repository: the count of fetches
// that got none starts again, and downloads get a live context again.
func (f *PackFetcher) answered() {
	f.answers.Add(1)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.unanswered = 0
	if f.gone.Err() != nil && f.ctx.Err() == nil {
		f.gone, f.goneCancel = context.WithCancelCause(f.ctx)
	}
}

// Answers counts the repository's answers: packs fetched and blobs read
// by range. A blob read from a pack fetched earlier is not one (the
// restorer tells a repository that stopped answering by them).
func (f *PackFetcher) Answers() uint64 { return f.answers.Load() }

// await returns the path of the pack's local copy, fetching it now when
// the prefetchers have not got to it and there is room, or waiting for
// the fetch under way; "" means read by range.
func (f *PackFetcher) await(ctx context.Context, id repo.ID, p *fetchedPack) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.touch(p)
	if p.state == packQueued {
		if f.closed {
			return "", context.Canceled
		}
		if p.remaining <= 0 || f.live >= f.maxLive {
			// A read beyond the plan, or no room: by range, rather than
			// wait for reads that may come after this one.
			return "", nil
		}
		f.start(id, p)
	}
	for p.state == packFetching {
		done := p.done
		f.mu.Unlock()
		select {
		case <-done:
		case <-ctx.Done():
		}
		f.mu.Lock()
		if err := ctx.Err(); err != nil {
			return "", err
		}
	}
	switch p.state {
	case packOnDisk:
		return p.path, nil
	case packFailed:
		return "", p.err
	}
	return "", nil
}

// start claims a queued pack for a fetch in a goroutine of its own, so
// that a read that stops waiting does not stop the fetch other reads wait
// for. Called with f.mu held.
func (f *PackFetcher) start(id repo.ID, p *fetchedPack) {
	f.claim(p)
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		f.fetch(id, p)
	}()
}

// claim marks a queued pack as being fetched. Called with f.mu held.
func (f *PackFetcher) claim(p *fetchedPack) {
	p.state, p.done = packFetching, make(chan struct{})
	f.live++
}

// touch records that a read reached the pack: it no longer counts as
// fetched ahead. Called with f.mu held.
func (f *PackFetcher) touch(p *fetchedPack) {
	if p.unread {
		p.unread = false
		f.unread--
		f.room.Broadcast()
	}
}

// prefetch fetches the queued packs in the plan's order, one at a time,
// while there is room for them and the fetcher is open.
func (f *PackFetcher) prefetch() {
	defer f.wg.Done()
	for {
		f.mu.Lock()
		for f.ctx.Err() == nil && f.next < len(f.order) && (f.live >= f.window() || f.unread >= 2*f.ahead) {
			f.room.Wait()
		}
		var id repo.ID
		var p *fetchedPack
		for f.ctx.Err() == nil && p == nil && f.next < len(f.order) {
			id = f.order[f.next]
			f.next++
			if q := f.packs[id]; q.state == packQueued && q.remaining > 0 {
				p = q
			}
		}
		if p == nil {
			f.mu.Unlock()
			return
		}
		f.claim(p)
		p.unread = true
		f.unread++
		f.mu.Unlock()
		f.fetch(id, p)
	}
}

// window is how many packs may be on disk before prefetching waits: the
// rest of maxLive is kept for packs reads need before the prefetchers get
// to them.
func (f *PackFetcher) window() int { return f.maxLive - min(f.ahead, f.maxLive/2) }

// fetch downloads a claimed pack and records how it went: on disk, to be
// read by range (its bytes do not match its name, so each blob's own
// check decides; or the local copy could not be written), or failed (the
// request failed, after the retries of the backend's retry wrapper).
//
// The download runs through repo.Catch: fetch runs in goroutines of the
// fetcher's own, and a panic there must still close p.done (reads wait on
// it) and becomes the error of the reads that needed the pack.
func (f *PackFetcher) fetch(id repo.ID, p *fetchedPack) {
	var path string
	err := repo.Catch(func() (err error) {
		path, err = f.download(id)
		return err
	})
	if err == nil || errors.Is(err, repo.ErrCorrupt) || errors.Is(err, errLocalCopy) {
		f.answered() // the repository answered, whatever it sent
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if errors.Is(err, repo.ErrTransient) && f.ctx.Err() == nil {
		if f.unanswered++; f.unanswered == fetchGoneAfter {
			// The cause is the error of the fetches given up on; it
			// wraps err, and so ErrTransient, for the restorer.
			f.goneCancel(fmt.Errorf("%d packs in a row could not be fetched, the last: %w", fetchGoneAfter, err))
		}
	}
	switch {
	case err == nil && p.remaining > 0:
		p.state, p.path = packOnDisk, path
	case err == nil: // its planned reads went by range meanwhile
		_ = os.Remove(path)
		p.state = packByRange
	case errors.Is(err, repo.ErrCorrupt) || errors.Is(err, errLocalCopy):
		p.state = packByRange
	default:
		// The backend's error names the pack.
		p.state, p.err = packFailed, fmt.Errorf("fetching the blob's pack failed: %w", err)
	}
	if p.state != packOnDisk {
		f.live--
		f.touch(p) // nothing on disk waits for its reads
	}
	close(p.done)
	f.room.Broadcast()
}

// errLocalCopy marks a failure to write a fetched pack to local disk.
var errLocalCopy = errors.New("local copy")

// download fetches a pack, checks it against its name and writes it into
// the fetcher's directory.
func (f *PackFetcher) download(id repo.ID) (string, error) {
	f.mu.Lock()
	ctx := f.gone
	f.mu.Unlock()
	// A fetcher that gave up on the repository: its error, not the
	// cancellation's, unless the fetcher itself was closed.
	goneErr := func(err error) error {
		if f.ctx.Err() == nil && ctx.Err() != nil {
			return context.Cause(ctx)
		}
		return err
	}
	if f.slots != nil {
		select {
		case f.slots <- struct{}{}:
			defer func() { <-f.slots }()
		case <-ctx.Done():
			return "", goneErr(ctx.Err())
		}
	}
	if ctx.Err() != nil {
		return "", goneErr(ctx.Err())
	}
	h := repo.Handle{Type: repo.PackFile, Name: id.String()}
	data, err := f.ix.r.Backend().Load(ctx, h, 0, 0)
	if err != nil {
		return "", goneErr(err)
	}
	if repo.Hash(data) != id {
		return "", &repo.CorruptError{Object: h.String(), Reason: "content does not match its name"}
	}
	path := filepath.Join(f.dir, id.String())
	if err := os.WriteFile(path, data, 0o600); err != nil {
		_ = os.Remove(path)
		return "", fmt.Errorf("%w: %w", errLocalCopy, err)
	}
	return path, nil
}

func (f *PackFetcher) readFrom(ctx context.Context, path string, loc Location, dst []byte) ([]byte, error) {
	var dict []byte
	if loc.Entry.Delta() {
		var err error
		if dict, err = f.ix.deltaDict(ctx, loc); err != nil {
			return nil, err
		}
	}
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	sealed := make([]byte, loc.Entry.Length)
	if _, err := fh.ReadAt(sealed, int64(loc.Entry.Offset)); err != nil {
		return nil, err
	}
	out, err := f.ix.r.OpenDelta(loc.Pack, loc.Entry, sealed, dict, dst)
	if err != nil {
		return nil, err
	}
	if err := f.ix.VerifyBlob(loc.Pack, loc.Entry, out[len(dst):]); err != nil {
		return nil, err
	}
	return out, nil
}

// done counts one read of the pack's blobs, however it was served; the
// pack's file goes once no planned read remains, and reads beyond the plan
// go by range.
func (f *PackFetcher) done(p *fetchedPack) {
	f.mu.Lock()
	defer f.mu.Unlock()
	p.remaining--
	if p.remaining > 0 || p.state != packOnDisk {
		return
	}
	_ = os.Remove(p.path)
	p.state, p.path = packByRange, ""
	f.live--
	f.room.Broadcast()
}
