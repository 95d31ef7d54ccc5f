// Package limit bounds how many requests run against a backend at once:
// the --connections setting. Behaviour by wrapping: the limit applies to
// whatever backend it wraps, and nothing above it needs to know.
package limit

import (
	"context"

	"github.com/snap-backup/snap/repo"
)

// Backend lets at most n Save, Load, Stat and Remove calls run at once;
// others wait their turn (or for their context to end). List is not
// limited: it is paged metadata, and its callback may itself use the
// backend.
//
// Every method is written out (no embedding), so that a method added to
// repo.Backend fails to compile here until someone decides how it is
// limited.
type Backend struct {
	be  repo.Backend
	sem chan struct{}
}

var _ repo.Backend = (*Backend)(nil)

// New wraps be with a limit of n requests in flight (n < 1 means 1).
func New(be repo.Backend, n int) *Backend {
	return &Backend{be: be, sem: make(chan struct{}, max(n, 1))}
}

// Unwrap returns the wrapped backend.
func (b *Backend) Unwrap() repo.Backend { return b.be }

// Location names the wrapped backend.
func (b *Backend) Location() string { return b.be.Location() }

// List passes through, unlimited.
func (b *Backend) List(ctx context.Context, t repo.FileType, fn func(name string, size int64) error) error {
	return b.be.List(ctx, t, fn)
}

// Close closes the wrapped backend.
func (b *Backend) Close() error { return b.be.Close() }

// Connections returns the limit.
func (b *Backend) Connections() int { return cap(b.sem) }

func (b *Backend) acquire(ctx context.Context) error {
	select {
	case b.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (b *Backend) release() { <-b.sem }

// Save waits for a free connection, then saves.
func (b *Backend) Save(ctx context.Context, h repo.Handle, data []byte) error {
	if err := b.acquire(ctx); err != nil {
		return err
	}
	defer b.release()
	return b.be.Save(ctx, h, data)
}

// Load waits for a free connection, then loads.
func (b *Backend) Load(ctx context.Context, h repo.Handle, offset, length int64) ([]byte, error) {
	if err := b.acquire(ctx); err != nil {
		return nil, err
	}
	defer b.release()
	return b.be.Load(ctx, h, offset, length)
}

// Stat waits for a free connection, then stats.
func (b *Backend) Stat(ctx context.Context, h repo.Handle) (int64, error) {
	if err := b.acquire(ctx); err != nil {
		return 0, err
	}
	defer b.release()
	return b.be.Stat(ctx, h)
}

// Remove waits for a free connection, then removes.
func (b *Backend) Remove(ctx context.Context, h repo.Handle) error {
	if err := b.acquire(ctx); err != nil {
		return err
	}
	defer b.release()
	return b.be.Remove(ctx, h)
}
