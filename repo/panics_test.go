package repo_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/snap-backup/snap/repo"
	"github.com/snap-backup/snap/repo/local"
)

func TestCatch(t *testing.T) {
	if err := repo.Catch(func() error { return nil }); err != nil {
		t.Fatalf("nil: %v", err)
	}
	want := errors.New("plain")
	if err := repo.Catch(func() error { return want }); err != want {
		t.Fatalf("an error passes through: got %v", err)
	}
	err := repo.Catch(func() error {
		var m map[string]int
		m["x"] = 1 // a runtime error, as a bug would cause
		return nil
	})
	var pe *repo.PanicError
	if !errors.As(err, &pe) {
		t.Fatalf("got %v (%T), want a *repo.PanicError", err, err)
	}
	if !strings.HasPrefix(err.Error(), "internal error: assignment to entry in nil map") || strings.Contains(err.Error(), "\n") {
		t.Errorf("message %q: want one line naming the panic", err)
	}
	if !strings.Contains(string(pe.Stack), "TestCatch") {
		t.Errorf("the stack does not show where the panic happened:\n%s", pe.Stack)
	}
	// A panic whose value is an error is not that error: a bug is never
	// taken for, say, a cancellation.
	err = repo.Catch(func() error { panic(context.Canceled) })
	if errors.Is(err, context.Canceled) || !errors.As(err, &pe) {
		t.Errorf("panic(context.Canceled) became %v", err)
	}
}

// A refresh that panics (here in the clock the repository was given)
// counts as a failed refresh: the lock stays where it was, and the panic
// is reported by Verify and Unlock rather than ending the process.
func TestLockRefreshPanic(t *testing.T) {
	c := &clock{t: time.Date(2026, 11, 20, 3, 0, 0, 0, time.UTC)}
	var broken atomic.Bool // set while the refresh runs
	now := func() time.Time {
		if broken.Load() {
			panic("injected: clock")
		}
		return c.Now()
	}
	ctx := context.Background()
	be, err := local.Create(t.TempDir() + "/repo")
	if err != nil {
		t.Fatal(err)
	}
	r, err := repo.Init(ctx, be, "pw", repo.KDFParams{Time: 1, MemoryKiB: 8 << 10, Threads: 1},
		repo.ChunkerParams{Polynomial: 0x3DA3358B4DC173, MinSize: 512 << 10, MaxSize: 8 << 20, AverageBits: 20}, repo.Options{Host: "alpha", Now: now})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	l, err := r.Lock(ctx, repo.LockOptions{Command: "create"})
	if err != nil {
		t.Fatal(err)
	}
	name := l.Name()
	broken.Store(true)
	l.RefreshNow()
	broken.Store(false)
	if l.Name() != name {
		t.Fatalf("the lock moved from %s to %s in a refresh that panicked", name, l.Name())
	}
	locks, err := r.ListLocks(ctx)
	if err != nil || len(locks) != 1 || locks[0].Name != name {
		t.Fatalf("locks after the panicking refresh: %+v, %v", locks, err)
	}
	var pe *repo.PanicError
	if err := l.Verify(ctx); !errors.As(err, &pe) {
		t.Fatalf("Verify: %v, want the refresh's panic", err)
	}
	if err := l.Unlock(); !errors.As(err, &pe) {
		t.Fatalf("Unlock: %v, want the refresh's panic", err)
	}
	if locks, err := r.ListLocks(ctx); err != nil || len(locks) != 0 {
		t.Fatalf("locks after Unlock: %+v, %v", locks, err)
	}
}
