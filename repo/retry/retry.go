// Package retry repeats backend requests that failed for a reason that may
// go away (errors marked repo.ErrTransient: 5xx answers, timeouts, reset
// connections), with exponential backoff and jitter. Anything else fails
// at once, so a denied access or a missing bucket gives its one-line error
// without a minute of pointless waiting.
//
// Repeating is safe because every request is idempotent under the
// Backend contract: Save of an existing name stores the same bytes (or
// leaves the config alone), Load, Stat and List read, and a Remove
// repeated after it took effect finds the file gone.
package retry

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/snap-backup/snap/repo"
)

// Options tune the backoff. Zero values take the defaults, which wait
// about a minute in total over 10 attempts before giving up.
type Options struct {
	MaxAttempts int           // including the first; default 10
	Initial     time.Duration // first wait; default 250ms
	Max         time.Duration // longest wait; default 15s
	// MaxElapsed ends the retries of one request once this much time has
	// passed since its first attempt; default 3 minutes. Failures that
	// come at once take the attempts; ones that each wait out a timeout
	// (a server that stopped answering: a minute each) would otherwise
	// hold a request for ten minutes and more.
	MaxElapsed time.Duration
	// Log is told about each retry (the command line shows these with
	// --verbose).
	Log func(msg string)
	// Sleep waits d or until ctx ends; tests pass a fast one.
	Sleep func(ctx context.Context, d time.Duration) error
}

// Backend retries the transient failures of the backend it wraps. Every
// method is written out, so that a method added to repo.Backend fails to
// compile here until someone decides how it is retried.
type Backend struct {
	be repo.Backend
	o  Options
}

var _ repo.Backend = (*Backend)(nil)

// New wraps be.
func New(be repo.Backend, o Options) *Backend {
	if o.MaxAttempts < 1 {
		o.MaxAttempts = 10
	}
	if o.Initial <= 0 {
		o.Initial = 250 * time.Millisecond
	}
	if o.Max <= 0 {
		o.Max = 15 * time.Second
	}
	if o.MaxElapsed <= 0 {
		o.MaxElapsed = 3 * time.Minute
	}
	if o.Log == nil {
		o.Log = func(string) {}
	}
	if o.Sleep == nil {
		o.Sleep = sleep
	}
	return &Backend{be: be, o: o}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Retryable is the one place that decides whether a failed request is
// repeated: only failures the backend marked transient, and only while
// the caller still wants the answer.
func Retryable(ctx context.Context, err error) bool {
	return err != nil && ctx.Err() == nil && errors.Is(err, repo.ErrTransient)
}

// backoff is the wait before attempt n+1 (n ≥ 1): Initial·2^(n-1), capped
// at Max, with ±25% jitter so that many clients do not retry in step.
func (b *Backend) backoff(n int) time.Duration {
	d := b.o.Initial << min(n-1, 20)
	if d > b.o.Max || d <= 0 {
		d = b.o.Max
	}
	return time.Duration(float64(d) * (0.75 + rand.Float64()/2))
}

// do runs f until it succeeds, fails permanently, or runs out of attempts.
func (b *Backend) do(ctx context.Context, op string, h fmt.Stringer, f func() error) error {
	start := time.Now()
	for attempt := 1; ; attempt++ {
		err := f()
		if !Retryable(ctx, err) {
			return err
		}
		if attempt >= b.o.MaxAttempts {
			return fmt.Errorf("%w (gave up after %d attempts)", err, attempt)
		}
		d := b.backoff(attempt)
		if elapsed := time.Since(start); elapsed+d > b.o.MaxElapsed {
			return fmt.Errorf("%w (gave up after %d attempts in %s)", err, attempt, elapsed.Round(time.Second))
		}
		b.o.Log(fmt.Sprintf("%s %s failed (%v); retrying in %s (attempt %d of %d)", op, h, err, d.Round(time.Millisecond), attempt+1, b.o.MaxAttempts))
		if err := b.o.Sleep(ctx, d); err != nil {
			return err
		}
	}
}

// Do runs f as a backend made by New with o runs a request: until it
// succeeds, fails permanently, or runs out of attempts. It is for the
// requests made before there is a backend to wrap: 'snap init' preparing
// an S3 bucket failed at once on a refused connection that every other
// command rides out (found by an exploratory test). what names the
// object in the log lines.
func Do(ctx context.Context, o Options, op, what string, f func() error) error {
	return New(nil, o).do(ctx, op, label(what), f)
}

// label names what Do works on.
type label string

func (l label) String() string { return string(l) }

// Unwrap returns the wrapped backend.
func (b *Backend) Unwrap() repo.Backend { return b.be }

// Location names the wrapped backend.
func (b *Backend) Location() string { return b.be.Location() }

// Save retries the upload.
func (b *Backend) Save(ctx context.Context, h repo.Handle, data []byte) error {
	return b.do(ctx, "save", h, func() error { return b.be.Save(ctx, h, data) })
}

// Load retries the download. A ranged load that returns fewer bytes than
// asked without an error (a misbehaving server or proxy) counts as a
// transient failure too.
func (b *Backend) Load(ctx context.Context, h repo.Handle, offset, length int64) ([]byte, error) {
	var data []byte
	err := b.do(ctx, "load", h, func() error {
		var err error
		data, err = b.be.Load(ctx, h, offset, length)
		if err == nil && length > 0 && int64(len(data)) != length {
			err = repo.Transient(fmt.Errorf("load %s at %d+%d: got %d bytes", h, offset, length, len(data)))
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return data, nil
}

// Stat retries.
func (b *Backend) Stat(ctx context.Context, h repo.Handle) (int64, error) {
	var size int64
	err := b.do(ctx, "stat", h, func() error {
		var err error
		size, err = b.be.Stat(ctx, h)
		return err
	})
	return size, err
}

// fnError carries an error of List's callback through do, which must not
// retry it.
type fnError struct{ err error }

func (e *fnError) Error() string { return e.err.Error() }

type typeName repo.FileType

func (t typeName) String() string { return string(t) + "/" }

// List restarts a listing that broke off, calling fn only for names it
// has not been given yet: fn still sees each file once.
func (b *Backend) List(ctx context.Context, t repo.FileType, fn func(name string, size int64) error) error {
	seen := map[string]bool{}
	err := b.do(ctx, "list", typeName(t), func() error {
		return b.be.List(ctx, t, func(name string, size int64) error {
			if seen[name] {
				return nil
			}
			seen[name] = true
			if err := fn(name, size); err != nil {
				return &fnError{err}
			}
			return nil
		})
	})
	var fe *fnError
	if errors.As(err, &fe) {
		return fe.err
	}
	return err
}

// Remove retries. When an earlier attempt took effect but its answer was
// lost, the repeated one reports ErrNotFound, as if another process had
// removed the file; callers already treat that as done.
func (b *Backend) Remove(ctx context.Context, h repo.Handle) error {
	return b.do(ctx, "remove", h, func() error { return b.be.Remove(ctx, h) })
}

// Close closes the wrapped backend.
func (b *Backend) Close() error { return b.be.Close() }
