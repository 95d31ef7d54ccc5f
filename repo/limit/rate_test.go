package limit

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/snap-backup/snap/repo"
	"github.com/snap-backup/snap/repo/local"
)

// fakeClock is a pacer's clock whose sleeps move it on.
type fakeClock struct {
	t      time.Time
	slept  []time.Duration
	cancel bool
}

func (c *fakeClock) now() time.Time { return c.t }

func (c *fakeClock) sleep(ctx context.Context, d time.Duration) error {
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
		if err := p.take(ctx, 500); err != nil {
			t.Fatal(err)
		}
	}
	if want := []time.Duration{500 * time.Millisecond, 500 * time.Millisecond}; len(c.slept) != 2 || c.slept[0] != want[0] || c.slept[1] != want[1] {
		t.Errorf("three requests of 500 bytes at 1000 B/s waited %v, want %v", c.slept, want)
	}
	c.t = c.t.Add(10 * time.Second) // idle: no credit
	c.slept = nil
	_ = p.take(ctx, 1000)
	_ = p.take(ctx, 0)
	if len(c.slept) != 1 || c.slept[0] != time.Second {
		t.Errorf("after an idle spell: waited %v, want [1s]", c.slept)
	}
	c.slept = nil
	p.charge(2000) // a download of 2000 bytes, counted after it
	_ = p.take(ctx, 0)
	if len(c.slept) != 1 || c.slept[0] != 2*time.Second {
		t.Errorf("after a download of 2000 bytes: waited %v, want [2s]", c.slept)
	}
	if newPacer(0) != nil {
		t.Error("a rate of 0 is no limit")
	}
	var none *pacer
	if err := none.take(ctx, 1<<30); err != nil {
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
	r := NewRated(be, 400_000, 400_000)
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
	_ = p.take(ctx, 3600) // books the next hour
	ctx2, cancel := context.WithCancel(ctx)
	cancel()
	if err := p.take(ctx2, 1); err != context.Canceled {
		t.Errorf("a cancelled wait: %v", err)
	}
}
