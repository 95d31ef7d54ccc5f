package snapshot

import (
	"errors"
	"testing"

	"github.com/snap-backup/snap/repo"
)

// TestCopyPathError: a copy's error names the file by its path in the
// snapshot, built name by name on the way out of the walk ("tmp: t-s3:
// src: f" before; found by an exploratory test), and keeps its cause.
func TestCopyPathError(t *testing.T) {
	cause := repo.ErrNotFound
	err := inPath("tmp", inPath("src", inPath("f", cause)))
	if err.Error() != "/tmp/src/f: "+cause.Error() || !errors.Is(err, repo.ErrNotFound) {
		t.Errorf("%v (is ErrNotFound: %v)", err, errors.Is(err, repo.ErrNotFound))
	}
}
