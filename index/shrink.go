package index

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"

	"github.com/snap-backup/snap/repo"
)

// bbolt never makes its file smaller: pages freed by deletions are reused
// by later writes, but the file keeps the size it once needed, and pages
// that lost most of their entries stay allocated (bbolt merges a page only
// below a quarter full). After sweepDead has removed the entries of many
// dropped packs, or a repair has emptied and refilled the cache, the file
// may be several times what its entries need.
//
// A cache filled by Sync uses about fillRatio of its pages' bytes (keys
// are random, so pages split half full and fill up again). The file is
// rewritten when it is shrinkRatio times what its entries need at that
// fill, and at least shrinkMin bytes more.
const (
	fillRatio   = 0.7
	shrinkRatio = 1.5
	shrinkMin   = 16 << 20
)

// leafElementSize is what bbolt adds to each key and value in a leaf page.
const leafElementSize = 16

// compactSuffix names the new file while shrink writes it, next to the
// cache (removed by the next shrink if a run is killed meanwhile).
const compactSuffix = ".compact"

// copyBatch is the bytes of keys and values shrink copies per transaction:
// the new file's pages stay in memory until it commits. Measured on a
// 64 MB cache of 526,000 entries (half of them dead before a sweep):
// 4 MiB batches took 1.6 s and 40 MB more memory, 256 KiB 0.48 s and
// none; bbolt's Compact, one 16 MiB transaction after another, 1.9 s.
const copyBatch = 256 << 10

// Shrink rewrites the cache file compactly when it is much larger
// than its entries need (see shrinkRatio): a copy in a new file, made
// durable, then renamed over the cache, whose lock this process holds
// throughout. A failure (a full disk) leaves the cache as it was, with a
// notice.
//
// What the entries need: the pages in use (the file less its free pages),
// or, after a sweep, what the entries it kept take (metaSwept), which is
// less when the sweep left pages mostly empty. Measuring it otherwise would
// read every page.
//
// It must run while no other goroutine uses ix: Open calls it before it
// returns, repair after rebuilding the cache.
func (ix *Index) Shrink(log func(string)) {
	if ix.tempDir != "" { // a private copy, removed at Close
		return
	}
	var size, others int64
	var kept uint64
	var swept bool
	_ = ix.db.View(func(tx *bolt.Tx) error {
		size = tx.Size()
		kept, swept = metaUint(tx.Bucket(bMeta), metaSwept)
		if swept {
			// The small buckets (packs, seqs, segments: a few hundred
			// bytes a pack) as they are; reading them is cheap.
			for _, name := range allBuckets {
				if b := tx.Bucket(name); b != nil && !bytes.Equal(name, bBlobs) && !bytes.Equal(name, bBases) {
					bs := b.Stats()
					others += int64(bs.BranchAlloc + bs.LeafAlloc)
				}
			}
		}
		return nil
	})
	st := ix.db.Stats()
	need := size - int64(st.FreePageN+st.PendingPageN)*int64(ix.db.Info().PageSize)
	if swept {
		need = min(need, int64(float64(kept)/fillRatio)+others)
	}
	// Read once (entries added later make it wrong), unless the shrink is
	// put off for want of room.
	forget := func() {
		if swept {
			_ = ix.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bMeta).Delete(metaSwept) })
		}
	}
	if float64(size) < shrinkRatio*float64(need) || size-need < shrinkMin {
		forget()
		return
	}
	// The copy needs room for what the entries need, beside the cache:
	// on a disk with less, every command would fill it and fail (found
	// in review). The shrink waits for the room.
	var fs unix.Statfs_t
	if err := unix.Statfs(filepath.Dir(ix.path), &fs); err != nil || int64(fs.Bavail)*fs.Bsize < need+need/4+shrinkMin {
		return
	}
	forget()
	if err := ix.shrink(); err != nil {
		log(fmt.Sprintf("index cache %s: could not make it smaller (%v); it stays as it was", ix.path, err))
	}
}

// shrink copies the cache into a new file and puts that in its place.
func (ix *Index) shrink() error {
	tmp := ix.path + compactSuffix
	_ = os.Remove(tmp)
	// NoSync while copying: the file is made durable once, before the
	// rename, and is nothing until then.
	dst, err := bolt.Open(tmp, 0o600, &bolt.Options{NoSync: true, Timeout: time.Second})
	if err != nil {
		return err
	}
	// bbolt grows a file 16 MiB at a time: the copy would end up to
	// 16 MiB larger than its pages.
	alloc := dst.AllocSize
	dst.AllocSize = 1 << 20
	// A damaged page of the cache that only the copy reads faults or
	// panics in bbolt: an error here, with the copy removed.
	err = repo.Catch(func() error { return ix.copyTo(dst) })
	if err == nil {
		err = dst.Sync()
	}
	if err == nil {
		err = os.Rename(tmp, ix.path)
	}
	if err != nil {
		return errors.Join(err, dst.Close(), os.Remove(tmp))
	}
	dst.NoSync, dst.AllocSize = false, alloc
	if d, err := os.Open(filepath.Dir(ix.path)); err == nil {
		_ = d.Sync() // the rename: without it a crash may bring back the old file, which is as good
		d.Close()
	}
	old := ix.db
	ix.db = dst
	return old.Close()
}

// copyTo copies every bucket of the cache into dst, with its pages full
// (keys arrive in order), copyBatch bytes per transaction. Both files'
// pages are dropped from the process after each batch (pages.go): bbolt's
// own Compact maps the whole of both, and a create that shrank its cache
// on the way peaked 65 MB higher.
func (ix *Index) copyTo(dst *bolt.DB) error {
	for _, name := range allBuckets {
		var from []byte // the first key of the next batch; nil: the first key
		for first := true; first || from != nil; first = false {
			err := dst.Update(func(dtx *bolt.Tx) error {
				db, err := dtx.CreateBucketIfNotExists(name)
				if err != nil {
					return err
				}
				db.FillPercent = 1.0
				return ix.db.View(func(tx *bolt.Tx) error {
					defer ix.releaseIn(tx)
					b := tx.Bucket(name)
					if b == nil {
						from = nil
						return nil
					}
					c := b.Cursor()
					k, v := c.First()
					if from != nil {
						k, v = c.Seek(from)
					}
					// Put keeps the slices until the commit, after
					// this transaction (and its map) is gone: copies.
					for n := 0; k != nil && n < copyBatch; k, v = c.Next() {
						if err := db.Put(bytes.Clone(k), bytes.Clone(v)); err != nil {
							return err
						}
						n += len(k) + len(v)
					}
					from = bytes.Clone(k)
					return nil
				})
			})
			if err != nil {
				return err
			}
			dropMap(dst)
		}
	}
	return nil
}

// dropMap drops the pages of db's whole map from the process.
func dropMap(db *bolt.DB) {
	_ = db.View(func(tx *bolt.Tx) error {
		dontNeed(db, tx.Size())
		return nil
	})
}

// openCache opens the cache file at path, waiting up to timeout for
// another process's lock. A process that waited while another shrank the
// file holds the lock of the file it opened, which is no longer the cache
// (renamed over): it opens the file now at the path instead, until the
// file it holds is the one there.
func openCache(path string, timeout time.Duration) (*bolt.DB, error) {
	for attempt := 0; ; attempt++ {
		var f *os.File
		db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: timeout, OpenFile: func(name string, flag int, perm os.FileMode) (*os.File, error) {
			var err error
			f, err = os.OpenFile(name, flag, perm)
			return f, err
		}})
		if err != nil {
			return db, err
		}
		held, herr := f.Stat()
		there, terr := os.Stat(path)
		if herr == nil && terr == nil && os.SameFile(held, there) {
			return db, nil
		}
		db.Close()
		if attempt == 10 {
			// Renamed over again and again: as if the lock were never
			// released (Open then makes a private copy).
			return nil, bolt.ErrTimeout
		}
	}
}
