package chunk

import (
	"context"
	"errors"
	"io"
	"sort"
	"sync"
)

// Parallel cuts a large file exactly as one Chunker would, with the
// rolling hash spread over several goroutines: one chunker is a single
// core's work (about 1.8 ms per MB here with restic/chunker, 1 ms with a
// CutFinder), and on a two-core machine it left a core idle whenever the
// save workers ran out of chunks.
//
// Why the cuts are the same: a chunker's state right after a cut depends
// only on where the cut is (Chunker.reset: an empty window, MinSize bytes
// to skip). So a chunker started afresh at any offset B makes, from the
// first cut it shares with the sequential chunker onwards, exactly the
// sequential chunker's cuts. Scouts start such chunkers (CutFinders,
// which find the same cuts without copying chunks) at the starts of fixed
// regions of the file (every Region bytes) and record each region's cuts
// up to the first one in the next region. Next, the reader, keeps
// the one sequential position: from a position that is one of a region's
// recorded cuts (or the region's start) it follows that region's cuts,
// reading each chunk with ReadAt and hashing nothing; elsewhere (the file's
// first region, and the seam where it arrives in a new region between two
// of that region's cuts) it hashes with a FileChunker of its own until one
// of its cuts is a recorded one. Two greedy cut sequences over the same split
// points meet within a chunk or two; data whose split points never line up
// (long runs of one byte value, cut every MaxSize from different origins)
// is hashed by the reader, as without scouts, and the scouts' work for it
// is wasted.
//
// The file must not change while it is read; if it does, the chunks are
// still exactly the bytes read, in order (a chunk read short at a shrunken
// end is the last), only the cut points may differ from a sequential run,
// which costs deduplication, never correctness. Bytes beyond size (a file
// that grew) are chunked by the reader's own chunker, to the end.
type Parallel struct {
	ctx     context.Context
	ra      io.ReaderAt
	size    int64
	p       Params
	o       ParallelOptions
	stop    chan struct{}
	wg      sync.WaitGroup
	once    sync.Once
	pos     int64        // the sequential position: the end of the last chunk returned
	cuts    []int64      // recorded cuts to follow from pos, ascending, all > pos
	own     *FileChunker // the reader's chunker, made on first use
	hashing bool         // own is cutting from pos (else cuts are followed)
	hashed  int64        // bytes the reader hashed itself (for tests)
	err     error        // returned by the next call (a wait that failed after a chunk was cut)
	eof     bool
	mu      sync.Mutex
	room    *sync.Cond // signalled when limit grows or the scouts stop
	next    int        // the next region a scout takes
	limit   int        // regions below limit may be scouted
	live    int        // scouts running
	regs    []*region  // regs[j] for j >= 1; regs[0] is unused
}

// region is one scouted region: its cuts, ready when done is closed.
type region struct {
	done chan struct{}
	cuts []int64 // the region's start, then every cut after it up to the first at or past the next region's start
	ok   bool    // false when the scout failed (a read error, a panic): the reader hashes instead
}

// ParallelOptions tune Parallel; zero values take the defaults.
type ParallelOptions struct {
	Region int64 // bytes per scouted region (default 64 MiB)
	Scouts int   // scout goroutines (default 2)
	Ahead  int   // regions scouted ahead of the reader (default 4)
	// Go starts a scout goroutine (default: the go statement). Callers pass
	// their own to recover panics: a scout that panics leaves its region
	// unscouted (the reader hashes it), never a reader waiting.
	Go func(func())
}

// Defaults of ParallelOptions, and the smallest file worth scouting: with
// fewer than two regions there is nothing to do in parallel.
const (
	DefaultRegion     = 64 << 20
	DefaultScouts     = 2
	DefaultAhead      = 4
	ParallelMinRegion = 2
)

// ParallelRegion is the region size Parallel uses for bounds p when asked
// for region (0: DefaultRegion): a region must hold several of the
// largest chunks, for the seams to be rare. A file shorter than
// ParallelMinRegion of them is not worth scouting.
func ParallelRegion(p Params, region int64) int64 {
	if region <= 0 {
		region = DefaultRegion
	}
	if region < int64(p.MaxSize) {
		region = 4 * int64(p.MaxSize)
	}
	return region
}

// NewParallel returns a chunker for the first size bytes of ra (and
// whatever follows them by the time the reader gets there). It starts the
// scouts at once; Close stops them. ctx ends the waits of Next.
func NewParallel(ctx context.Context, ra io.ReaderAt, size int64, p Params, o ParallelOptions) *Parallel {
	o.Region = ParallelRegion(p, o.Region)
	if o.Scouts <= 0 {
		o.Scouts = DefaultScouts
	}
	if o.Ahead <= 0 {
		o.Ahead = DefaultAhead
	}
	if o.Go == nil {
		o.Go = func(f func()) { go f() }
	}
	n := int((size + o.Region - 1) / o.Region)
	c := &Parallel{ctx: ctx, ra: ra, size: size, p: p, o: o, stop: make(chan struct{}), next: 1, limit: 1 + o.Ahead, regs: make([]*region, max(n, 1))}
	c.room = sync.NewCond(&c.mu)
	for j := 1; j < n; j++ {
		c.regs[j] = &region{done: make(chan struct{})}
	}
	c.live = min(o.Scouts, n-1)
	for range c.live {
		c.wg.Add(1)
		c.o.Go(func() {
			defer c.wg.Done()
			defer c.scoutExit()
			c.scout()
		})
	}
	return c
}

// scoutExit runs as a scout ends, however it ends (a panic included): the
// last one to go gives up the regions nobody took, so that the reader
// hashes them instead of waiting.
func (c *Parallel) scoutExit() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.live--
	if c.live > 0 {
		return
	}
	for ; c.next < len(c.regs); c.next++ {
		close(c.regs[c.next].done)
	}
}

// Close stops the scouts and waits for them. It does not close ra.
func (c *Parallel) Close() {
	c.once.Do(func() {
		c.mu.Lock()
		close(c.stop)
		c.room.Broadcast()
		c.mu.Unlock()
	})
	c.wg.Wait()
}

// scout takes regions in order, while they are within Ahead regions of
// the reader, and records their cuts.
func (c *Parallel) scout() {
	f := NewCutFinder(c.p)
	for {
		c.mu.Lock()
		for !c.stopped() && c.next < len(c.regs) && c.next >= c.limit {
			c.room.Wait()
		}
		if c.stopped() || c.next >= len(c.regs) {
			c.mu.Unlock()
			return
		}
		j := c.next
		c.next++
		c.mu.Unlock()
		c.scoutRegion(j, f)
	}
}

func (c *Parallel) stopped() bool {
	select {
	case <-c.stop:
		return true
	default:
		return false
	}
}

// scoutRegion records region j's cuts. Its deferred close runs even when
// the finder panics, so the reader never waits for a region that will
// not come.
func (c *Parallel) scoutRegion(j int, f *CutFinder) {
	r := c.regs[j]
	defer close(r.done)
	start := int64(j) * c.o.Region
	end := min(start+c.o.Region, c.size)
	r.cuts = append(r.cuts, start)
	err := f.Find(c.ra, start, c.size, func(cut int64) bool {
		r.cuts = append(r.cuts, cut)
		return cut < end && !c.stopped()
	})
	// A read error (the file shrank) or a stop leaves the region to the
	// reader; a scout that stopped early has not reached the end.
	last := r.cuts[len(r.cuts)-1]
	r.ok = err == nil && (last >= end || !c.stopped())
}

// Next returns the next chunk, in buf when it has room, like Chunker.Next.
func (c *Parallel) Next(buf []byte) ([]byte, error) {
	if c.err != nil {
		return nil, c.err
	}
	if c.eof {
		return nil, io.EOF
	}
	if len(c.cuts) == 0 && !c.hashing {
		cuts, err := c.follow(c.pos)
		if err != nil {
			return nil, err
		}
		c.cuts = cuts
		if len(cuts) == 0 {
			if c.own == nil {
				c.own = NewFileChunker(c.p)
			}
			c.own.Reset(c.ra, c.size, c.pos)
			c.hashing = true
		}
	}
	if c.hashing {
		data, err := c.own.Next(buf)
		if err == io.EOF {
			c.eof = true
		}
		if err != nil {
			return nil, err
		}
		c.pos += int64(len(data))
		c.hashed += int64(len(data))
		if c.pos < c.size {
			// A cut: from here the chunker may meet a region's cuts. An
			// error (cancelled, closed) must not lose the chunk in hand:
			// it is returned by the next call.
			cuts, err := c.follow(c.pos)
			if err != nil {
				c.err = err
			} else if len(cuts) > 0 {
				c.hashing, c.cuts = false, cuts
			}
		}
		return data, nil
	}
	n := int(c.cuts[0] - c.pos)
	c.cuts = c.cuts[1:]
	data, last, err := readChunk(c.ra, buf, c.pos, n)
	c.pos += int64(len(data))
	if last { // the file shrank: what was read is its last chunk
		c.cuts, c.eof = nil, true
	}
	return data, err
}

// follow returns the recorded cuts after pos when pos is a sync point of
// its region: the region's start or one of its recorded cuts. It waits for
// the region's scout, and lets the scouts move on.
func (c *Parallel) follow(pos int64) ([]int64, error) {
	j := int(pos / c.o.Region)
	if j == 0 || j >= len(c.regs) {
		return nil, nil
	}
	c.mu.Lock()
	if l := j + 1 + c.o.Ahead; l > c.limit {
		c.limit = l
		c.room.Broadcast()
	}
	c.mu.Unlock()
	r := c.regs[j]
	select {
	case <-r.done:
	case <-c.ctx.Done():
		return nil, c.ctx.Err()
	case <-c.stop:
		return nil, errors.New("chunker closed")
	}
	if !r.ok {
		return nil, nil
	}
	i := sort.Search(len(r.cuts), func(i int) bool { return r.cuts[i] >= pos })
	if i == len(r.cuts) || r.cuts[i] != pos {
		return nil, nil
	}
	return r.cuts[i+1:], nil
}
