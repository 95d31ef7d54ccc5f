package limit

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/snap-backup/snap/repo"
	"github.com/snap-backup/snap/repo/local"
)

// fakeClock is a pacer's clock whose sleeps move it on.
type fakeClock struct {
	t     time.Time
	slept []time.Duration
}

func (c *fakeClock) now() time.Time { return c.t }

func (c *fakeClock) sleep(ctx context.Context, _ <-chan struct{}, d time.Duration) error {
	c.slept = append(c.slept, d)
	c.t = c.t.Add(d)
	return ctx.Err()
}

// TestPacer: requests of n bytes at r bytes per second start n/r apart;
// time that passed without requests is not saved up for a burst; a
// download's bytes, charged after it, hold back the next one.
func TestPacer(t *testing.T) {
	c := &fakeClock{t: time.Unix(1000, 0)}
	p := newPacer(1000) // 1000 bytes per second
	p.now, p.sleep = c.now, c.sleep
	ctx := context.Background()
	for range 3 {
		if err := p.take(ctx, nil, 500); err != nil {
			t.Fatal(err)
		}
	}
	if want := []time.Duration{500 * time.Millisecond, 500 * time.Millisecond}; len(c.slept) != 2 || c.slept[0] != want[0] || c.slept[1] != want[1] {
		t.Errorf("three requests of 500 bytes at 1000 B/s waited %v, want %v", c.slept, want)
	}
	c.t = c.t.Add(10 * time.Second) // idle: no credit
	c.slept = nil
	_ = p.take(ctx, nil, 1000)
	_ = p.take(ctx, nil, 0)
	if len(c.slept) != 1 || c.slept[0] != time.Second {
		t.Errorf("after an idle spell: waited %v, want [1s]", c.slept)
	}
	c.slept = nil
	p.charge(2000) // a download of 2000 bytes, counted after it
	_ = p.take(ctx, nil, 0)
	if len(c.slept) != 1 || c.slept[0] != 2*time.Second {
		t.Errorf("after a download of 2000 bytes: waited %v, want [2s]", c.slept)
	}
	if newPacer(0) != nil {
		t.Error("a rate of 0 is no limit")
	}
	var none *pacer
	if err := none.take(ctx, nil, 1<<30); err != nil {
		t.Error(err)
	}
	none.charge(1 << 30)
}

// TestRatedBackend: data goes through unchanged, and a real clock sees the
// rate kept: 4 saves of 50 kB at 400 kB/s take at least 3 × 125 ms.
func TestRatedBackend(t *testing.T) {
	be, err := local.Create(filepath.Join(t.TempDir(), "r"))
	if err != nil {
		t.Fatal(err)
	}
	r := NewRated(be, 400_000, 400_000, nil)
	ctx := context.Background()
	data := bytes.Repeat([]byte("x"), 50_000)
	start := time.Now()
	for i := range 4 {
		h := repo.Handle{Type: repo.SnapshotFile, Name: repo.Hash([]byte{byte(i)}).String()}
		if err := r.Save(ctx, h, data); err != nil {
			t.Fatal(err)
		}
		got, err := r.Load(ctx, h, 0, 0)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("load: %v", err)
		}
	}
	if d := time.Since(start); d < 375*time.Millisecond {
		t.Errorf("4 saves of 50 kB at 400 kB/s took %v, want at least 375ms", d)
	}
	// A request waiting its turn ends with its context.
	p := newPacer(1)
	_ = p.take(ctx, nil, 3600) // books the next hour
	ctx2, cancel := context.WithCancel(ctx)
	cancel()
	if err := p.take(ctx2, nil, 1); err != context.Canceled {
		t.Errorf("a cancelled wait: %v", err)
	}
}

// TestRatedStop: a closed stop ends a wait whose context never ends (an
// index writer's upload), with ErrStopped and nothing sent; lock files
// never wait behind paced data, though their bytes count.
func TestRatedStop(t *testing.T) {
	be, err := local.Create(filepath.Join(t.TempDir(), "r"))
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	r := NewRated(be, 1000, 1000, stop)
	ctx := context.Background()
	first := repo.Handle{Type: repo.PackFile, Name: repo.Hash([]byte("a")).String()}
	if err := r.Save(ctx, first, make([]byte, 3_600_000)); err != nil { // books the next hour
		t.Fatal(err)
	}
	// A lock refresh goes out at once.
	lock := repo.Handle{Type: repo.LockFile, Name: repo.Hash([]byte("l")).String()}
	start := time.Now()
	if err := r.Save(ctx, lock, []byte("lock")); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Load(ctx, lock, 0, 0); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("a lock save behind an hour of paced data took %v", d)
	}
	second := repo.Handle{Type: repo.PackFile, Name: repo.Hash([]byte("b")).String()}
	done := make(chan error, 1)
	go func() { done <- r.Save(ctx, second, []byte("pack")) }()
	time.Sleep(50 * time.Millisecond)
	close(stop)
	select {
	case err := <-done:
		if !errors.Is(err, ErrStopped) {
			t.Errorf("a save waiting for its turn when stopped: %v, want ErrStopped", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("closing stop did not end a paced save's wait")
	}
	if _, err := be.Stat(ctx, second); err == nil {
		t.Error("a save stopped while waiting reached the backend")
	}
	// Once stopped, an index segment (what a stopped run writes on its way
	// out) goes at once.
	seg := repo.Handle{Type: repo.IndexFile, Name: repo.Hash([]byte("s")).String()}
	if err := r.Save(ctx, seg, []byte("segment")); err != nil {
		t.Errorf("an index segment saved after stop: %v", err)
	}
	if _, err := r.Load(ctx, first, 0, 3_600_000); err != nil { // the first goes at once and books an hour
		t.Fatal(err)
	}
	if _, err := r.Load(ctx, first, 0, 10); !errors.Is(err, ErrStopped) {
		t.Errorf("a load that must wait, after stop: %v, want ErrStopped", err)
	}
}

// TestRatedLoadBooksLength: a range load books its length before it
// starts, so parallel range loads cannot burst past the rate.
func TestRatedLoadBooksLength(t *testing.T) {
	c := &fakeClock{t: time.Unix(1000, 0)}
	be, err := local.Create(filepath.Join(t.TempDir(), "r"))
	if err != nil {
		t.Fatal(err)
	}
	r := NewRated(be, 0, 1000, nil)
	r.down.now, r.down.sleep = c.now, c.sleep
	ctx := context.Background()
	h := repo.Handle{Type: repo.PackFile, Name: repo.Hash([]byte("p")).String()}
	if err := be.Save(ctx, h, make([]byte, 4000)); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := r.Load(ctx, h, 0, 2000); err != nil {
			t.Fatal(err)
		}
	}
	if len(c.slept) != 2 || c.slept[0] != 2*time.Second || c.slept[1] != 2*time.Second {
		t.Errorf("three range loads of 2000 bytes at 1000 B/s waited %v, want [2s 2s]", c.slept)
	}
}

// TestPacerGivesBackAbandoned: a wait given up (Ctrl-C, or the request's
// own context) takes its booking back, and is a context.Canceled; a pack
// loaded whole books a pack's size up front and settles after.
func TestPacerGivesBackAbandoned(t *testing.T) {
	now := time.Unix(1000, 0)
	p := newPacer(1000)
	p.now = func() time.Time { return now }
	p.sleep = func(ctx context.Context, stop <-chan struct{}, d time.Duration) error { return ErrStopped }
	ctx := context.Background()
	_ = p.take(ctx, nil, 5000) // starts now, holds the next 5 s
	if err := p.take(ctx, nil, 7000); !errors.Is(err, context.Canceled) {
		t.Errorf("an abandoned wait: %v, want a context.Canceled", err)
	}
	if want := now.Add(5 * time.Second); !p.next.Equal(want) {
		t.Errorf("after an abandoned wait the next request may start at %v, want %v", p.next.Sub(now), want.Sub(now))
	}
	p.charge(-10_000) // more given back than booked: not before now
	if !p.next.Equal(now) {
		t.Errorf("a refund moved the next start to %v before now", now.Sub(p.next))
	}

	c := &fakeClock{t: time.Unix(1000, 0)}
	be, err := local.Create(filepath.Join(t.TempDir(), "r"))
	if err != nil {
		t.Fatal(err)
	}
	r := NewRated(be, 0, 1<<20, nil) // 1 MiB/s
	r.down.now, r.down.sleep = c.now, c.sleep
	h := repo.Handle{Type: repo.PackFile, Name: repo.Hash([]byte("p")).String()}
	if err := be.Save(ctx, h, make([]byte, 1<<20)); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := r.Load(ctx, h, 0, 0); err != nil {
			t.Fatal(err)
		}
	}
	// The first booked 16 s, got 1 MiB and gave 15 s back: the second waited 1 s.
	if len(c.slept) != 1 || c.slept[0] != time.Second {
		t.Errorf("two whole loads of a 1 MiB pack at 1 MiB/s waited %v, want [1s]", c.slept)
	}
}
