package local

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"

	"github.com/snap-backup/snap/repo"
)

var _ repo.Preflighter = (*Backend)(nil)

// Preflight creates, syncs and removes a temporary file (which List never
// shows) in one pack directory and in the index and snapshot directories,
// and returns the space statfs reports as available to unprivileged users.
func (b *Backend) Preflight(ctx context.Context) (uint64, error) {
	var rnd [9]byte
	_, _ = rand.Read(rnd[:])
	for _, d := range []string{
		filepath.Join(b.dir, string(repo.PackFile), hex.EncodeToString(rnd[:1])),
		filepath.Join(b.dir, string(repo.IndexFile)),
		filepath.Join(b.dir, string(repo.SnapshotFile)),
	} {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		p := filepath.Join(d, tempPrefix+"preflight-"+hex.EncodeToString(rnd[1:]))
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return 0, fmt.Errorf("repository %s is not writable: %w", b.dir, err)
		}
		_, err = f.Write([]byte{0})
		if err == nil {
			err = f.Sync()
		}
		cerr := f.Close()
		_ = os.Remove(p)
		if err == nil {
			err = cerr
		}
		if err != nil {
			return 0, fmt.Errorf("repository %s is not writable: %w", b.dir, err)
		}
	}
	return b.Free()
}
