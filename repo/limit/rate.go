package limit

import (
	"context"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/snap-backup/snap/repo"
)

// Rated keeps the bytes a backend sends (Save) and receives (Load) under a
// rate each: --limit-upload and --limit-download, for a repository at the
// other end of a link the backup must not fill (an office line to an
// off-site bucket). Stat, List and Remove move next to nothing and pass
// through.
//
// Each request takes its bytes' share of the link's time: a request of n
// bytes at r bytes per second holds the next one back by n/r seconds. A
// request is not slowed down while it runs (a pack goes out at the link's
// speed), so over a few requests the average stays at or below the rate.
type Rated struct {
	be       repo.Backend
	up, down *pacer // nil: no limit that way
	// stop ends every wait for the rate: the command's cancellation.
	// Requests reach Save with contexts that outlive it on purpose (an
	// index writer's pack upload must not be torn half-way), but nothing
	// has been sent while a request waits for its turn, so giving the
	// wait up on Ctrl-C is always safe.
	stop <-chan struct{}
}

var _ repo.Backend = (*Rated)(nil)

// NewRated wraps be with an upload and a download rate in bytes per second
// (0: no limit that way). A closed stop (nil: never) ends all waiting
// with ErrStopped.
func NewRated(be repo.Backend, upload, download uint64, stop <-chan struct{}) *Rated {
	return &Rated{be: be, up: newPacer(upload), down: newPacer(download), stop: stop}
}

// ErrStopped is the error of a request that was waiting for its turn
// when the command was interrupted. It is a context.Canceled, which is
// how the rest of snap recognises an interrupted run.
var ErrStopped = fmt.Errorf("interrupted while waiting for the rate limit: %w", context.Canceled)

// stopped reports whether the command was interrupted.
func (b *Rated) stopped() bool {
	select {
	case <-b.stop:
		return true
	default:
		return false
	}
}

// Unwrap returns the wrapped backend.
func (b *Rated) Unwrap() repo.Backend { return b.be }

// Location names the wrapped backend.
func (b *Rated) Location() string { return b.be.Location() }

// Save waits for the upload rate's turn, then saves. Lock files never
// wait: they are tiny, and a lock refresh stuck behind minutes of paced
// packs would let the lock go stale under the run that holds it. Nor does
// an index segment once the command was interrupted, or one written out of
// turn (repo.OutOfTurn): it is what a stopped or failed run writes on its
// way out so that the next run reuses the packs already uploaded
// (index.Writer.SaveProgress), and waiting would mean giving up. Their
// bytes still count.
func (b *Rated) Save(ctx context.Context, h repo.Handle, data []byte) error {
	if h.Type == repo.LockFile || h.Type == repo.IndexFile && (b.stopped() || repo.IsOutOfTurn(ctx)) {
		b.up.charge(len(data))
	} else if err := b.up.take(ctx, b.stop, len(data)); err != nil {
		return err
	}
	return b.be.Save(ctx, h, data)
}

// Load waits for the download rate's turn, then loads. A range load books
// its length before it starts. A whole-file load's size is not known
// before its bytes are in: a pack books the usual pack size up front (so
// that the restorer's parallel pack fetches cannot burst past the rate)
// and the difference is settled after it; other files (snapshots, index
// segments) are charged after. Lock files never wait (see Save).
func (b *Rated) Load(ctx context.Context, h repo.Handle, offset, length int64) ([]byte, error) {
	if b.down == nil {
		return b.be.Load(ctx, h, offset, length)
	}
	if h.Type == repo.LockFile {
		data, err := b.be.Load(ctx, h, offset, length)
		b.down.charge(len(data))
		return data, err
	}
	booked := 0
	switch {
	case length > 0:
		booked = int(min(length, math.MaxInt32))
	case h.Type == repo.PackFile:
		booked = repo.DefaultPackSize
	}
	if err := b.down.take(ctx, b.stop, booked); err != nil {
		return nil, err
	}
	data, err := b.be.Load(ctx, h, offset, length)
	if length <= 0 {
		b.down.charge(len(data) - booked)
	}
	return data, err
}

// Stat passes through.
func (b *Rated) Stat(ctx context.Context, h repo.Handle) (int64, error) { return b.be.Stat(ctx, h) }

// List passes through.
func (b *Rated) List(ctx context.Context, t repo.FileType, fn func(name string, size int64) error) error {
	return b.be.List(ctx, t, fn)
}

// Remove passes through.
func (b *Rated) Remove(ctx context.Context, h repo.Handle) error { return b.be.Remove(ctx, h) }

// Close closes the wrapped backend.
func (b *Rated) Close() error { return b.be.Close() }

// pacer hands out the link's time: next is when the next request may
// start.
type pacer struct {
	rate  float64 // bytes per second
	mu    sync.Mutex
	next  time.Time
	now   func() time.Time
	sleep func(ctx context.Context, stop <-chan struct{}, d time.Duration) error
}

func newPacer(rate uint64) *pacer {
	if rate == 0 {
		return nil
	}
	return &pacer{rate: float64(rate), now: time.Now, sleep: sleepCtx}
}

// take waits until a request may start and books n bytes for it. The
// wait ends early when ctx ends or stop is closed; the booking is then
// taken back, as nothing was sent.
func (p *pacer) take(ctx context.Context, stop <-chan struct{}, n int) error {
	if p == nil {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	p.mu.Lock()
	now := p.now()
	start := p.next
	if start.Before(now) {
		start = now
	}
	d := p.duration(n)
	p.next = start.Add(d)
	p.mu.Unlock()
	if wait := start.Sub(now); wait > 0 {
		if err := p.sleep(ctx, stop, wait); err != nil {
			p.mu.Lock()
			p.next = p.next.Add(-d)
			p.mu.Unlock()
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return err
		}
	}
	return nil
}

// charge books n bytes that a request has moved already; a negative n
// gives back what a request booked but did not move (never time before
// now: idle time is not saved up).
func (p *pacer) charge(n int) {
	if p == nil {
		return
	}
	p.mu.Lock()
	now := p.now()
	if p.next.Before(now) {
		p.next = now
	}
	p.next = p.next.Add(p.duration(n))
	if p.next.Before(now) {
		p.next = now
	}
	p.mu.Unlock()
}

func (p *pacer) duration(n int) time.Duration {
	return time.Duration(float64(n) / p.rate * float64(time.Second))
}

func sleepCtx(ctx context.Context, stop <-chan struct{}, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-stop:
		return ErrStopped
	}
}
