package snapshot

import (
	"fmt"
	"os"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/snap-backup/snap/sources"
)

// TestTargetFull: a write, a create or a close that meets ENOSPC or EDQUOT
// is a full target, which stops the restore; an extended attribute that
// meets ENOSPC is not (ext4: the attribute does not fit its inode's or
// block's room), nor is any other error. (A review found a 6000-byte
// attribute stopping a restore into an almost empty disk.)
func TestTargetFull(t *testing.T) {
	for _, c := range []struct {
		err  error
		full bool
	}{
		{&os.PathError{Op: "write", Path: "f", Err: unix.ENOSPC}, true},
		{fmt.Errorf("create f: %w", &os.PathError{Op: "openat", Path: "f", Err: unix.EDQUOT}), true},
		{&sources.XattrError{Name: "user.big", Err: unix.ENOSPC}, false},
		{fmt.Errorf("metadata: %w", &sources.XattrError{Name: "user.big", Err: unix.ENOSPC}), false},
		{&os.PathError{Op: "mkdirat", Path: "d", Err: unix.EROFS}, true},
		{&os.PathError{Op: "write", Path: "f", Err: unix.EIO}, false},
	} {
		if _, full := targetFull(c.err); full != c.full {
			t.Errorf("targetFull(%v) = %v, want %v", c.err, full, c.full)
		}
	}
}
