package index

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync"

	bolt "go.etcd.io/bbolt"

	"github.com/snap-backup/snap/repo"
)

// ErrCacheDamaged is the error of a read that failed because this host's
// index cache disagrees with the repository's own index: a bit flipped on
// the cache's disk sent a restore to the wrong bytes of a pack, or lost a
// blob's entry. bbolt keeps no checksums, so such damage shows only when a
// read fails; a restore then reported repository damage ("data the
// repository lost"), which 'snap check' (it reads the segments, not the
// cache) did not find, and every later restore failed the same way (found
// by an exploratory test).
var ErrCacheDamaged = errors.New("this host's index cache is damaged, not the repository")

// cacheVerdict is whether the cache was found to disagree with the
// repository's index, decided once per Index at the first read that found
// a blob missing or damaged (confirm).
type cacheVerdict struct {
	once    sync.Once
	damaged bool
}

// confirm returns err, the failure of a read of blob (t, id) at loc (nil:
// the cache lists no copy), or ErrCacheDamaged when the repository's index
// shows that the cache is wrong about that blob. The cache is then marked
// (MarkDamaged): the next run rebuilds it.
func (ix *Index) confirm(ctx context.Context, t repo.BlobType, id repo.ID, loc *Location, err error) error {
	if ctx.Err() != nil {
		return err
	}
	ix.verdict.once.Do(func() {
		ix.verdict.damaged = ix.cacheDisagrees(ctx, t, id, loc)
		if ix.verdict.damaged && ix.tempDir == "" {
			_ = MarkDamaged(filepath.Dir(ix.path))
		}
	})
	if !ix.verdict.damaged {
		return err
	}
	// Not err's advice, which is for a damaged repository.
	what := "lost its entry, which the repository's index has"
	if loc != nil {
		what = fmt.Sprintf("places it in pack %s where the repository's index does not", loc.Pack.Short())
	}
	return fmt.Errorf("%s blob %s: %w (the cache %s): the next command rebuilds it from the repository, or 'snap repair index' now; then run this again", t, id, ErrCacheDamaged, what)
}

// cacheDisagrees reports whether the repository's index segments hold an
// entry for blob (t, id) other than the cache's: for a copy the cache
// places at loc, the segment that lists loc's pack (its owner) is read
// and must list the blob as the cache does; for a blob the cache does not
// list, the segments the cache knows are read until one lists it. A
// segment that cannot be read is no verdict (a prune may have superseded
// it meanwhile).
func (ix *Index) cacheDisagrees(ctx context.Context, t repo.BlobType, id repo.ID, loc *Location) bool {
	if loc != nil {
		owner, ok := ix.packOwner(loc.Pack)
		if !ok {
			return false
		}
		seg, err := ix.readSegment(ctx, owner)
		if err != nil {
			return false
		}
		i := slices.IndexFunc(seg.Packs, func(p Pack) bool { return p.ID == loc.Pack })
		if i < 0 {
			return true // the cache's owner does not list the pack
		}
		j := slices.IndexFunc(seg.Packs[i].Blobs, func(e repo.BlobEntry) bool { return e.Type == t && e.ID == id })
		return j < 0 || !sameEntry(seg.Packs[i].Blobs[j], loc.Entry)
	}
	for _, sid := range ix.knownSegments() {
		seg, err := ix.readSegment(ctx, sid)
		if err != nil {
			if ctx.Err() != nil {
				return false
			}
			continue
		}
		for _, p := range seg.Packs {
			if slices.ContainsFunc(p.Blobs, func(e repo.BlobEntry) bool { return e.Type == t && e.ID == id }) {
				return true
			}
		}
	}
	return false
}

// sameEntry reports whether two entries of one blob place and describe it
// alike.
func sameEntry(a, b repo.BlobEntry) bool {
	return a.Offset == b.Offset && a.Length == b.Length && a.RawLength == b.RawLength &&
		a.Compressed == b.Compressed && a.Delta() == b.Delta() && slices.Equal(a.Bases, b.Bases)
}

// packOwner returns the segment the cache says lists pack id.
func (ix *Index) packOwner(id repo.ID) (repo.ID, bool) {
	var owner repo.ID
	ok := false
	_ = ix.db.View(func(tx *bolt.Tx) error {
		if rec, good := decodePackRec(tx.Bucket(bPacks).Get(id[:])); good {
			owner, ok = rec.owner, true
		}
		return nil
	})
	return owner, ok
}

// knownSegments lists the segments the cache holds.
func (ix *Index) knownSegments() []repo.ID {
	var ids []repo.ID
	_ = ix.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bSegments).ForEach(func(k, _ []byte) error {
			if len(k) == len(repo.ID{}) {
				ids = append(ids, repo.ID(k))
			}
			return nil
		})
	})
	return ids
}

// readSegment reads and decodes segment id from the repository.
func (ix *Index) readSegment(ctx context.Context, id repo.ID) (*Segment, error) {
	plain, err := ix.r.LoadObject(ctx, repo.IndexFile, id)
	if err != nil {
		return nil, err
	}
	return DecodeSegment(plain)
}
