package repo_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/snap-backup/snap/repo"
	"github.com/snap-backup/snap/repo/counting"
	"github.com/snap-backup/snap/repo/limit"
	"github.com/snap-backup/snap/repo/local"
	"github.com/snap-backup/snap/repo/retry"
)

// TestAsThroughWrappers: optional interfaces of a backend stay reachable
// through the wrappers composed around it.
func TestAsThroughWrappers(t *testing.T) {
	be, err := local.Create(filepath.Join(t.TempDir(), "r"))
	if err != nil {
		t.Fatal(err)
	}
	wrapped := retry.New(limit.New(counting.New(be), 2), retry.Options{})
	p, ok := repo.As[repo.Preflighter](wrapped)
	if !ok {
		t.Fatal("the local backend's Preflighter is not found through the wrappers")
	}
	if _, err := p.Preflight(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, ok := repo.As[*limit.Backend](wrapped); !ok {
		t.Error("a wrapper in the middle is not found")
	}
	if _, ok := repo.As[repo.Preflighter](counting.New(nil)); ok {
		t.Error("found a Preflighter where there is none")
	}
}
