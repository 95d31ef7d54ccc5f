package retry_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/snap-backup/snap/repo"
	"github.com/snap-backup/snap/repo/faulty"
	"github.com/snap-backup/snap/repo/local"
	"github.com/snap-backup/snap/repo/retry"
)

// flaky fails its first n calls of every method with err.
type flaky struct {
	repo.Backend
	n, calls int
	err      error
}

func (f *flaky) Stat(ctx context.Context, h repo.Handle) (int64, error) {
	f.calls++
	if f.calls <= f.n {
		return 0, f.err
	}
	return f.Backend.Stat(ctx, h)
}

func newLocal(t *testing.T) repo.Backend {
	be, err := local.Create(filepath.Join(t.TempDir(), "r"))
	if err != nil {
		t.Fatal(err)
	}
	return be
}

func TestRetriesTransientOnly(t *testing.T) {
	ctx := context.Background()
	h := repo.Handle{Type: repo.LockFile, Name: repo.Hash([]byte("x")).String()}
	var waits []time.Duration
	o := retry.Options{MaxAttempts: 5, Initial: 10 * time.Millisecond, Max: 40 * time.Millisecond,
		Sleep: func(_ context.Context, d time.Duration) error { waits = append(waits, d); return nil }}
	be := newLocal(t)
	if err := be.Save(ctx, h, []byte("x")); err != nil {
		t.Fatal(err)
	}

	f := &flaky{Backend: be, n: 3, err: repo.Transient(errors.New("503 slow down"))}
	if _, err := retry.New(f, o).Stat(ctx, h); err != nil || f.calls != 4 {
		t.Fatalf("3 transient failures: err %v after %d calls", err, f.calls)
	}
	// Exponential, capped, with ±25% jitter.
	for i, want := range []time.Duration{10, 20, 40} {
		want *= time.Millisecond
		if waits[i] < want*3/4 || waits[i] > want*5/4 {
			t.Errorf("wait %d = %s, want about %s", i, waits[i], want)
		}
	}

	f = &flaky{Backend: be, n: 100, err: repo.Transient(errors.New("503 slow down"))}
	_, err := retry.New(f, o).Stat(ctx, h)
	if f.calls != 5 || err == nil || !strings.Contains(err.Error(), "gave up after 5 attempts") {
		t.Errorf("endless transient failures: %v after %d calls", err, f.calls)
	}

	f = &flaky{Backend: be, n: 100, err: fmt.Errorf("access denied")}
	if _, err := retry.New(f, o).Stat(ctx, h); f.calls != 1 || err == nil {
		t.Errorf("permanent failure retried: %v after %d calls", err, f.calls)
	}
	f = &flaky{Backend: be, n: 100, err: repo.Transient(errors.New("reset"))}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := retry.New(f, o).Stat(cctx, h); f.calls != 1 || err == nil {
		t.Errorf("retried after the caller gave up: %v after %d calls", err, f.calls)
	}
}

// TestListOnce: a listing that breaks off and is restarted still gives
// every name exactly once.
func TestListOnce(t *testing.T) {
	ctx := context.Background()
	be := newLocal(t)
	want := map[string]bool{}
	for i := range 50 {
		data := []byte(fmt.Sprint(i))
		h := repo.Handle{Type: repo.IndexFile, Name: repo.Hash(data).String()}
		want[h.Name] = true
		if err := be.Save(ctx, h, data); err != nil {
			t.Fatal(err)
		}
	}
	f := faulty.New(be, faulty.Options{FailRate: 0.7, Seed: 1})
	rb := retry.New(f, retry.Options{MaxAttempts: 100, Initial: time.Microsecond, Max: time.Microsecond})
	seen := map[string]int{}
	if err := rb.List(ctx, repo.IndexFile, func(name string, size int64) error { seen[name]++; return nil }); err != nil {
		t.Fatal(err)
	}
	for n := range want {
		if seen[n] != 1 {
			t.Errorf("%s listed %d times", n[:8], seen[n])
		}
	}
	if len(seen) != len(want) || f.Stats().Failed == 0 {
		t.Errorf("listed %d names of %d; %d listings broke off", len(seen), len(want), f.Stats().Failed)
	}
	// The callback's own error is not retried.
	stop := errors.New("stop")
	calls := 0
	if err := rb.List(ctx, repo.IndexFile, func(string, int64) error { calls++; return stop }); !errors.Is(err, stop) || calls != 1 {
		t.Errorf("callback error: %v after %d calls", err, calls)
	}
}

// slowFail fails every Stat after waiting, as a request that waits out a
// timeout does.
type slowFail struct {
	repo.Backend
	wait  time.Duration
	calls int
}

func (s *slowFail) Stat(ctx context.Context, h repo.Handle) (int64, error) {
	s.calls++
	time.Sleep(s.wait)
	return 0, repo.Transient(errors.New("i/o timeout"))
}

// TestRetriesBoundedInTime: failures that each take a while (timeouts)
// are retried for MaxElapsed, not for every attempt.
func TestRetriesBoundedInTime(t *testing.T) {
	s := &slowFail{Backend: newLocal(t), wait: 60 * time.Millisecond}
	o := retry.Options{MaxAttempts: 10, Initial: time.Millisecond, Max: time.Millisecond, MaxElapsed: 200 * time.Millisecond}
	start := time.Now()
	_, err := retry.New(s, o).Stat(context.Background(), repo.Handle{Type: repo.LockFile, Name: repo.Hash([]byte("x")).String()})
	if err == nil || !strings.Contains(err.Error(), "gave up after") || s.calls >= 10 || time.Since(start) > 2*time.Second {
		t.Errorf("slow failures: %v after %d calls and %v", err, s.calls, time.Since(start))
	}
}
