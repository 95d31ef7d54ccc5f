package local_test

import (
	"path/filepath"
	"testing"

	"github.com/snap-backup/snap/repo"
	"github.com/snap-backup/snap/repo/backendtest"
	"github.com/snap-backup/snap/repo/local"
)

func TestConformance(t *testing.T) {
	backendtest.Run(t, func(t *testing.T) repo.Backend {
		be, err := local.Create(filepath.Join(t.TempDir(), "repo"))
		if err != nil {
			t.Fatal(err)
		}
		return be
	}, backendtest.Options{})
}
