package limit_test

import (
	"context"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/snap-backup/snap/repo"
	"github.com/snap-backup/snap/repo/faulty"
	"github.com/snap-backup/snap/repo/limit"
	"github.com/snap-backup/snap/repo/local"
)

// gauge records the most requests in flight at once.
type gauge struct {
	repo.Backend
	now, peak atomic.Int64
}

func (g *gauge) Stat(ctx context.Context, h repo.Handle) (int64, error) {
	n := g.now.Add(1)
	for {
		p := g.peak.Load()
		if n <= p || g.peak.CompareAndSwap(p, n) {
			break
		}
	}
	defer g.now.Add(-1)
	return g.Backend.Stat(ctx, h)
}

func TestLimit(t *testing.T) {
	be, err := local.Create(filepath.Join(t.TempDir(), "r"))
	if err != nil {
		t.Fatal(err)
	}
	// Every request takes a few milliseconds, so they overlap.
	slow := faulty.New(be, faulty.Options{DelayRate: 1, Delay: 5 * time.Millisecond})
	g := &gauge{Backend: slow}
	lb := limit.New(g, 3)
	var wg sync.WaitGroup
	for range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _ = lb.Stat(context.Background(), repo.Handle{Type: repo.ConfigFile})
		}()
	}
	wg.Wait()
	if p := g.peak.Load(); p > 3 || p < 2 {
		t.Errorf("peak of %d requests in flight with a limit of 3", p)
	}
	// A request waiting for a connection gives up with its context.
	hold := &blocking{Backend: be, release: make(chan struct{})}
	one := limit.New(hold, 1)
	done := make(chan struct{})
	go func() { _, _ = one.Stat(context.Background(), repo.Handle{Type: repo.ConfigFile}); close(done) }()
	for hold.entered.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := one.Stat(ctx, repo.Handle{Type: repo.ConfigFile}); err != context.DeadlineExceeded {
		t.Errorf("waiting request: %v, want the context's error", err)
	}
	close(hold.release)
	<-done
}

// blocking holds every Stat until release is closed.
type blocking struct {
	repo.Backend
	entered atomic.Int64
	release chan struct{}
}

func (b *blocking) Stat(ctx context.Context, h repo.Handle) (int64, error) {
	b.entered.Add(1)
	<-b.release
	return 0, nil
}
