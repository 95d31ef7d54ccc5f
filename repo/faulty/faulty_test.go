package faulty_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/snap-backup/snap/repo"
	"github.com/snap-backup/snap/repo/backendtest"
	"github.com/snap-backup/snap/repo/counting"
	"github.com/snap-backup/snap/repo/faulty"
	"github.com/snap-backup/snap/repo/limit"
	"github.com/snap-backup/snap/repo/local"
	"github.com/snap-backup/snap/repo/retry"
)

func fastRetry() retry.Options {
	return retry.Options{MaxAttempts: 30, Initial: time.Microsecond, Max: time.Millisecond}
}

func newLocal(t *testing.T) repo.Backend {
	be, err := local.Create(filepath.Join(t.TempDir(), "repo"))
	if err != nil {
		t.Fatal(err)
	}
	return be
}

// TestConformanceWithRetry: a backend where a third of the requests fail,
// break off or are delayed still keeps every promise of repo.Backend once
// the retry wrapper is around it.
func TestConformanceWithRetry(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	var injected faulty.Stats
	backendtest.Run(t, func(t *testing.T) repo.Backend {
		seed++
		f := faulty.New(newLocal(t), faulty.Options{FailRate: 0.2, TruncateRate: 0.1, DelayRate: 0.1, Delay: time.Millisecond, Seed: seed})
		t.Cleanup(func() {
			st := f.Stats()
			injected.Failed += st.Failed
			injected.Lost += st.Lost
			injected.Truncated += st.Truncated
		})
		return limit.New(retry.New(f, fastRetry()), 4)
	}, backendtest.Options{})
	t.Logf("injected faults: %+v", injected)
}

// TestFaultsReachCallerWithoutRetry: the faults are real — without the
// retry wrapper they surface as transient errors.
func TestFaultsReachCallerWithoutRetry(t *testing.T) {
	f := faulty.New(newLocal(t), faulty.Options{FailRate: 1})
	err := f.Save(context.Background(), repo.Handle{Type: repo.LockFile, Name: "abcd"}, []byte("x"))
	if !retry.Retryable(context.Background(), err) {
		t.Fatalf("injected failure %v is not retryable", err)
	}
}

// TestCountingConformance: the counting wrapper is transparent.
func TestCountingConformance(t *testing.T) {
	backendtest.Run(t, func(t *testing.T) repo.Backend { return counting.New(newLocal(t)) }, backendtest.Options{})
}
