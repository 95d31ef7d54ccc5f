package index

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"github.com/snap-backup/snap/repo"
)

// packCache keeps whole tree packs in the local cache directory, so that
// reading trees — ls, the parent snapshot of an incremental create, the
// directory walk of restore and copy — costs no requests once their packs
// are here. The writer puts tree blobs and data blobs in separate packs,
// so a tree pack holds nothing but trees (a few percent of a repository).
//
// A pack is immutable and named by the hash of its bytes: a cached copy is
// checked against its name when it is stored and never goes stale. Blobs
// read from it are still decrypted, authenticated and checked against
// their IDs, and a copy that fails is dropped and the blob read from the
// repository instead. Packs that leave the index (pruned) are removed from
// the cache when the index is opened.
type packCache struct {
	dir     string
	maxSize int64 // larger packs are read by range, not cached

	loading packLocks // one download per pack at a time
}

func newPackCache(dir string, maxSize int64) *packCache {
	return &packCache{dir: dir, maxSize: maxSize}
}

// packLocks lets one goroutine at a time download a pack, so that
// workers that need the same pack wait for the first one's download
// instead of making their own (the pack cache, hotPacks).
type packLocks struct {
	mu sync.Mutex
	m  map[repo.ID]*sync.Mutex
}

// lock takes pack's lock and returns what releases it.
func (l *packLocks) lock(pack repo.ID) (unlock func()) {
	l.mu.Lock()
	if l.m == nil {
		l.m = map[repo.ID]*sync.Mutex{}
	}
	m := l.m[pack]
	if m == nil {
		m = &sync.Mutex{}
		l.m[pack] = m
	}
	l.mu.Unlock()
	m.Lock()
	return m.Unlock
}

// loadWholePack downloads a pack whole and checks it against its name.
func loadWholePack(ctx context.Context, r *repo.Repository, pack repo.ID) ([]byte, error) {
	h := repo.Handle{Type: repo.PackFile, Name: pack.String()}
	data, err := r.Backend().Load(ctx, h, 0, 0)
	if err != nil {
		return nil, err
	}
	if repo.Hash(data) != pack {
		return nil, &repo.CorruptError{Object: h.String(), Reason: "content does not match its name"}
	}
	return data, nil
}

func (c *packCache) path(id repo.ID) string {
	s := id.String()
	return filepath.Join(c.dir, s[:2], s)
}

// errNotCached says the pack is not cacheable; the caller reads by range.
var errNotCached = errors.New("pack not cacheable")

// sealedBlob returns the blob's stored bytes from the cached pack,
// downloading the whole pack first when it is not cached yet.
func (c *packCache) sealedBlob(ctx context.Context, r *repo.Repository, pack repo.ID, size int64, e repo.BlobEntry) ([]byte, error) {
	if b, err := c.readCached(pack, e); err == nil {
		return b, nil
	}
	if size <= 0 || size > c.maxSize {
		return nil, errNotCached
	}
	defer c.loading.lock(pack)()
	if b, err := c.readCached(pack, e); err == nil {
		return b, nil // another goroutine fetched it meanwhile
	}
	data, err := loadWholePack(ctx, r, pack)
	if err != nil {
		return nil, err
	}
	c.store(pack, data)
	end := int64(e.Offset) + int64(e.Length)
	if end > int64(len(data)) {
		return nil, &repo.CorruptError{Object: repo.Handle{Type: repo.PackFile, Name: pack.String()}.String(), Reason: fmt.Sprintf("blob %s at %d+%d lies beyond the pack's %d bytes", e.ID.Short(), e.Offset, e.Length, len(data))}
	}
	return data[e.Offset:end], nil
}

func (c *packCache) readCached(pack repo.ID, e repo.BlobEntry) ([]byte, error) {
	f, err := os.Open(c.path(pack))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b := make([]byte, e.Length)
	if _, err := f.ReadAt(b, int64(e.Offset)); err != nil {
		return nil, err
	}
	return b, nil
}

// store writes the pack into the cache (temp file, rename). Failing to
// cache is not an error: the next read downloads again.
func (c *packCache) store(pack repo.ID, data []byte) {
	p := c.path(pack)
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return
	}
	var rnd [8]byte
	_, _ = rand.Read(rnd[:])
	tmp := p + ".tmp-" + hex.EncodeToString(rnd[:])
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		_ = os.Remove(tmp)
		return
	}
	if err := os.Rename(tmp, p); err != nil {
		_ = os.Remove(tmp)
	}
}

// drop removes a cached pack that failed a check.
func (c *packCache) drop(pack repo.ID) { _ = os.Remove(c.path(pack)) }

// prune removes cached packs that live says are gone from the index, and
// temporary files left by an interrupted store.
func (c *packCache) prune(live func(repo.ID) bool) {
	_ = filepath.WalkDir(c.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		id, perr := repo.ParseID(d.Name())
		if perr != nil || !live(id) {
			_ = os.Remove(p)
		}
		return nil
	})
}
