package local

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/snap-backup/snap/repo"
)

var _ repo.Preflighter = (*Backend)(nil)

// Preflight creates, syncs and removes a temporary file (which List never
// shows) in one pack directory and in the index and snapshot directories,
// and returns the space statfs reports as available to unprivileged users.
func (b *Backend) Preflight(ctx context.Context) (uint64, error) {
	var rnd [9]byte
	_, _ = rand.Read(rnd[:])
	for _, rel := range []string{
		string(repo.PackFile) + "/" + hex.EncodeToString(rnd[:1]),
		string(repo.IndexFile),
		string(repo.SnapshotFile),
	} {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		t, _, _ := strings.Cut(rel, "/")
		if _, err := os.Stat(b.sys(filepath.Join(b.dir, t))); errors.Is(err, fs.ErrNotExist) { // missing, or a link to nothing
			return 0, b.missingDir(repo.FileType(t))
		}
		if err := b.tryWrite(rel, tempPrefix+"preflight-"+hex.EncodeToString(rnd[1:])); err != nil {
			return 0, fmt.Errorf("repository %s is not writable: %w", b.dir, err)
		}
	}
	return b.Free()
}

// tryWrite writes, syncs and removes one byte in a file name in the
// repository's directory rel, opened as Save opens it (openRel).
func (b *Backend) tryWrite(rel, name string) error {
	dir, err := b.openRel(rel)
	if err != nil {
		return err
	}
	defer dir.Close()
	p := filepath.Join(dir.Name(), name)
	fd, err := unix.Openat(int(dir.Fd()), name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return &os.PathError{Op: "open", Path: p, Err: err}
	}
	f := os.NewFile(uintptr(fd), p)
	_, err = f.Write([]byte{0})
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	_ = unix.Unlinkat(int(dir.Fd()), name, 0)
	return err
}
