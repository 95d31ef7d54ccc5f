// Package faulty is a backend wrapper for tests that makes a fraction of
// requests go wrong the way a network and a busy object store do:
//
//   - fail: the request fails with a transient error. For Save and Remove
//     half of these failures happen after the request took effect (the
//     answer was lost), which is what makes retries interesting.
//   - truncate: a Load breaks off mid-body: part of the data and a
//     transient error, as when a connection is reset; a Save breaks off
//     mid-upload and stores nothing (a server never keeps a partial PUT).
//   - delay: the request is held up before it runs.
//
// Faults are transient by construction: under the retry wrapper every run
// either succeeds or fails with a clear error, and the repository stays
// consistent. Without it, the faults reach the caller.
package faulty

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/snap-backup/snap/repo"
)

// Options say how often things go wrong. Rates are fractions of requests
// (0 to 1) and apply independently.
type Options struct {
	FailRate     float64
	TruncateRate float64
	DelayRate    float64
	Delay        time.Duration // longest delay; each is uniform in [0, Delay]
	Seed         uint64        // for a reproducible sequence of faults
	// Types limits faults to these file types (all when empty).
	Types []repo.FileType
}

// Stats counts the faults injected.
type Stats struct {
	Failed, Lost, Truncated, Delayed int64
}

// ErrInjected is the cause of every injected failure.
var ErrInjected = fmt.Errorf("injected fault")

// Backend injects faults into the backend it wraps.
type Backend struct {
	be repo.Backend
	o  Options

	mu  sync.Mutex // guards rnd
	rnd *rand.Rand

	failed, lost, truncated, delayed atomic.Int64
}

var _ repo.Backend = (*Backend)(nil)

// New wraps be.
func New(be repo.Backend, o Options) *Backend {
	return &Backend{be: be, o: o, rnd: rand.New(rand.NewPCG(o.Seed, o.Seed^0x9e3779b97f4a7c15))}
}

// Stats returns the faults injected so far.
func (b *Backend) Stats() Stats {
	return Stats{Failed: b.failed.Load(), Lost: b.lost.Load(), Truncated: b.truncated.Load(), Delayed: b.delayed.Load()}
}

func (b *Backend) roll(rate float64) bool {
	if rate <= 0 {
		return false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.rnd.Float64() < rate
}

func (b *Backend) applies(t repo.FileType) bool {
	if len(b.o.Types) == 0 {
		return true
	}
	for _, x := range b.o.Types {
		if x == t {
			return true
		}
	}
	return false
}

// before runs ahead of each request: it may delay it, and reports whether
// it should fail.
func (b *Backend) before(ctx context.Context, t repo.FileType) (fail bool, err error) {
	if !b.applies(t) {
		return false, nil
	}
	if b.roll(b.o.DelayRate) && b.o.Delay > 0 {
		b.delayed.Add(1)
		b.mu.Lock()
		d := time.Duration(b.rnd.Int64N(int64(b.o.Delay) + 1))
		b.mu.Unlock()
		tm := time.NewTimer(d)
		select {
		case <-tm.C:
		case <-ctx.Done():
			tm.Stop()
			return false, ctx.Err()
		}
	}
	return b.roll(b.o.FailRate), nil
}

func injected(op string, h fmt.Stringer, what string) error {
	return repo.Transient(fmt.Errorf("%s %s: %w (%s)", op, h, ErrInjected, what))
}

// Unwrap returns the wrapped backend.
func (b *Backend) Unwrap() repo.Backend { return b.be }

// Location names the wrapped backend.
func (b *Backend) Location() string { return b.be.Location() }

// Save may fail before or after storing, break off, or be delayed.
func (b *Backend) Save(ctx context.Context, h repo.Handle, data []byte) error {
	fail, err := b.before(ctx, h.Type)
	if err != nil {
		return err
	}
	if b.applies(h.Type) && b.roll(b.o.TruncateRate) {
		b.truncated.Add(1)
		return injected("save", h, "upload broke off")
	}
	if fail && b.roll(0.5) {
		b.failed.Add(1)
		return injected("save", h, "request failed")
	}
	if err := b.be.Save(ctx, h, data); err != nil {
		return err
	}
	if fail {
		b.lost.Add(1)
		return injected("save", h, "stored, but the answer was lost")
	}
	return nil
}

// Load may fail, return part of the data with an error, or be delayed.
func (b *Backend) Load(ctx context.Context, h repo.Handle, offset, length int64) ([]byte, error) {
	fail, err := b.before(ctx, h.Type)
	if err != nil {
		return nil, err
	}
	if fail {
		b.failed.Add(1)
		return nil, injected("load", h, "request failed")
	}
	data, err := b.be.Load(ctx, h, offset, length)
	if err == nil && len(data) > 0 && b.applies(h.Type) && b.roll(b.o.TruncateRate) {
		b.truncated.Add(1)
		b.mu.Lock()
		n := b.rnd.IntN(len(data))
		b.mu.Unlock()
		return data[:n], injected("load", h, fmt.Sprintf("connection reset after %d of %d bytes", n, len(data)))
	}
	return data, err
}

// Stat may fail or be delayed.
func (b *Backend) Stat(ctx context.Context, h repo.Handle) (int64, error) {
	fail, err := b.before(ctx, h.Type)
	if err != nil {
		return 0, err
	}
	if fail {
		b.failed.Add(1)
		return 0, injected("stat", h, "request failed")
	}
	return b.be.Stat(ctx, h)
}

type typeName repo.FileType

func (t typeName) String() string { return string(t) + "/" }

// List may fail before it starts or part way through, or be delayed.
func (b *Backend) List(ctx context.Context, t repo.FileType, fn func(name string, size int64) error) error {
	fail, err := b.before(ctx, t)
	if err != nil {
		return err
	}
	if !fail {
		return b.be.List(ctx, t, fn)
	}
	b.failed.Add(1)
	b.mu.Lock()
	cut := b.rnd.IntN(4) // break off after this many names
	b.mu.Unlock()
	n := 0
	err = b.be.List(ctx, t, func(name string, size int64) error {
		if n == cut {
			return injected("list", typeName(t), "listing broke off")
		}
		n++
		return fn(name, size)
	})
	if err == nil {
		return injected("list", typeName(t), "listing broke off at the end")
	}
	return err
}

// Remove may fail before or after removing, or be delayed.
func (b *Backend) Remove(ctx context.Context, h repo.Handle) error {
	fail, err := b.before(ctx, h.Type)
	if err != nil {
		return err
	}
	if fail && b.roll(0.5) {
		b.failed.Add(1)
		return injected("remove", h, "request failed")
	}
	if err := b.be.Remove(ctx, h); err != nil {
		return err
	}
	if fail {
		b.lost.Add(1)
		return injected("remove", h, "removed, but the answer was lost")
	}
	return nil
}

// Close closes the wrapped backend.
func (b *Backend) Close() error { return b.be.Close() }
