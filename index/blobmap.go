package index

import (
	"errors"
	"fmt"
	"os"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/snap-backup/snap/repo"
)

// BlobMap remembers, in a bbolt file of the local cache, which blob of
// another repository holds the same plaintext as a blob of this one. Blob
// IDs are keyed per repository, so the same chunk has different IDs in
// two repositories, and finding its ID in the other one means reading
// and hashing it. snap copy keeps the pairs it has established here, so
// that copying the next snapshot reads only the chunks that are new.
//
// Entries are hints: a user of the map checks that the other repository
// still holds the blob before relying on it. Only pairs whose plaintext
// was actually hashed are ever stored.
type BlobMap struct {
	db   *bolt.DB
	path string
}

var bPairs = []byte("pairs")

// OpenBlobMap opens (or creates) the map at path. A map in use by another
// process gives an error after a few seconds.
func OpenBlobMap(path string) (*BlobMap, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 3 * time.Second})
	if errors.Is(err, bolt.ErrTimeout) {
		return nil, fmt.Errorf("blob map %s is in use by another snap process", path)
	}
	if err != nil {
		return nil, fmt.Errorf("open blob map %s: %w", path, err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(bPairs)
		return err
	}); err != nil {
		db.Close()
		return nil, err
	}
	return &BlobMap{db: db, path: path}, nil
}

// Get returns the other repository's ID for a blob of this one.
func (m *BlobMap) Get(id repo.ID) (other repo.ID, ok bool) {
	_ = m.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bPairs).Get(id[:]); len(v) == len(other) {
			copy(other[:], v)
			ok = true
		}
		return nil
	})
	return other, ok
}

// Put stores pairs (this repository's ID → the other's) in one
// transaction.
func (m *BlobMap) Put(pairs map[repo.ID]repo.ID) error {
	if len(pairs) == 0 {
		return nil
	}
	return m.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bPairs)
		for k, v := range pairs {
			if err := b.Put(k[:], v[:]); err != nil {
				return err
			}
		}
		return nil
	})
}

// Len returns how many pairs the map holds.
func (m *BlobMap) Len() int { return bucketLen(m.db, bPairs) }

// Trim removes the pairs of blobs keep refuses (this repository holds them
// no more), and writes the file anew, compact: a pair was never removed,
// and bbolt files never shrink, so a nightly copy from a repository whose
// prunes drop what it copied doubled the map's size again and again (16
// MiB for 3,000 blobs after 16 rounds; found by an exploratory test). The
// map is a cache of hints: a failure leaves it as it was, or, past the
// rename, gone.
func (m *BlobMap) Trim(keep func(repo.ID) bool) (removed int, err error) {
	err = m.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bPairs)
		var drop [][]byte
		if err := b.ForEach(func(k, _ []byte) error {
			if len(k) != len(repo.ID{}) || !keep(repo.ID(k)) {
				drop = append(drop, append([]byte(nil), k...))
			}
			return nil
		}); err != nil {
			return err
		}
		for _, k := range drop {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		removed = len(drop)
		return nil
	})
	if err != nil || removed == 0 {
		return removed, err
	}
	tmp := m.path + ".compact"
	_ = os.Remove(tmp)
	dst, err := bolt.Open(tmp, 0o600, nil)
	if err != nil {
		return removed, err
	}
	if err := bolt.Compact(dst, m.db, 64<<20); err != nil {
		dst.Close()
		_ = os.Remove(tmp)
		return removed, err
	}
	if err := dst.Close(); err != nil {
		_ = os.Remove(tmp)
		return removed, err
	}
	if err := m.db.Close(); err != nil {
		_ = os.Remove(tmp)
		return removed, err
	}
	if err := os.Rename(tmp, m.path); err != nil {
		_ = os.Remove(tmp)
	}
	db, err := bolt.Open(m.path, 0o600, &bolt.Options{Timeout: 3 * time.Second})
	if err != nil {
		return removed, fmt.Errorf("open blob map %s: %w", m.path, err)
	}
	m.db = db
	return removed, nil
}

// Close closes the file.
func (m *BlobMap) Close() error { return m.db.Close() }
