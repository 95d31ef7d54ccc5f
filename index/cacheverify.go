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

// CacheDamagedError is a read's failure (Err) that the repository's index
// explains as damage of this host's cache. It unwraps to both Err and
// ErrCacheDamaged: whatever decides by the kind of a failure (a writer
// that must not reuse a blob that did not read, prune, the restorer's
// count of damaged files) still sees it, and messages can say the cache.
type CacheDamagedError struct {
	Type repo.BlobType
	ID   repo.ID
	Err  error
	what string // how the cache is wrong
}

func (e *CacheDamagedError) Error() string {
	return fmt.Sprintf("%s blob %s: %v (the cache %s): the next command rebuilds it from the repository, or 'snap repair index' now; then run this again", e.Type, e.ID, ErrCacheDamaged, e.what)
}

func (e *CacheDamagedError) Unwrap() []error { return []error{ErrCacheDamaged, e.Err} }

// cacheVerdicts remembers what confirm learnt: the segments it read, and
// whether it scanned them all for a blob the cache does not list.
type cacheVerdicts struct {
	// scan is held while the segments are scanned for a missing blob:
	// the reads that miss meanwhile wait for its verdict (they took
	// "scanned, nothing found" while it ran; found by a test).
	scan     sync.Mutex
	mu       sync.Mutex
	segments map[repo.ID]*Segment // read, by ID; nil where the read failed
	scanned  bool                 // a blob missing from the cache was looked for in every segment
	damaged  bool                 // some blob showed the cache damaged
	marked   bool                 // and the cache was marked for its rebuild
}

// maxVerdictSegments bounds the segments confirm keeps decoded.
const maxVerdictSegments = 16

// confirm returns err, the failure of a read of blob (t, id) at loc (nil:
// the cache lists no copy), or a *CacheDamagedError when the repository's
// index shows that the cache is wrong about that blob, and then marks the
// cache (MarkDamaged): the next run rebuilds it. Each blob is judged on
// its own: one entry found damaged says nothing of another blob's failure.
func (ix *Index) confirm(ctx context.Context, t repo.BlobType, id repo.ID, loc *Location, err error) error {
	if ctx.Err() != nil {
		return err
	}
	what, ok := ix.cacheDisagrees(ctx, t, id, loc)
	if !ok {
		return err
	}
	v := &ix.verdicts
	v.mu.Lock()
	first := !v.marked
	v.damaged, v.marked = true, true
	v.mu.Unlock()
	if first && ix.tempDir == "" {
		_ = MarkDamaged(filepath.Dir(ix.path))
	}
	return &CacheDamagedError{Type: t, ID: id, Err: err, what: what}
}

// cacheDisagrees reports whether the repository's index segments hold an
// entry for blob (t, id) other than the cache's, and how the cache is
// wrong. For a copy the cache places at loc, the segment that lists loc's
// pack (its owner) is read, and must list the blob as the cache does. For
// a blob the cache does not list, the segments the cache knows are read
// until one lists it, once per Index (a blob genuinely lost would cost a
// read of the whole index each time): not when a segment could not be
// read at sync, which explains the blob's absence. A segment that cannot
// be read now is no verdict (a prune may have superseded it meanwhile).
func (ix *Index) cacheDisagrees(ctx context.Context, t repo.BlobType, id repo.ID, loc *Location) (string, bool) {
	if loc != nil {
		rec, ok := ix.packRecord(loc.Pack)
		if !ok {
			return "", false
		}
		seg := ix.verdictSegment(ctx, rec.owner) // the segment that lists the pack
		if seg == nil {
			return "", false
		}
		what := fmt.Sprintf("places it in pack %s where the repository's index does not", loc.Pack.Short())
		i := slices.IndexFunc(seg.Packs, func(p Pack) bool { return p.ID == loc.Pack })
		if i < 0 {
			return what, true // the cache's owner does not list the pack
		}
		j := slices.IndexFunc(seg.Packs[i].Blobs, func(e repo.BlobEntry) bool { return e.Type == t && e.ID == id })
		return what, j < 0 || !sameEntry(seg.Packs[i].Blobs[j], loc.Entry)
	}
	v := &ix.verdicts
	v.scan.Lock()
	defer v.scan.Unlock()
	v.mu.Lock()
	scanned, damaged := v.scanned, v.damaged
	v.scanned = true
	v.mu.Unlock()
	if damaged {
		// Found damaged for another blob: it is rebuilt, and the next
		// run tells whether this one is lost.
		return "is damaged (found for another blob) and may have lost this one's entry", true
	}
	if scanned || ix.unreadSegments.Load() {
		return "", false
	}
	for _, sid := range ix.knownSegments() {
		if ctx.Err() != nil {
			return "", false
		}
		seg, err := ix.readSegment(ctx, sid)
		if err != nil {
			continue
		}
		for _, p := range seg.Packs {
			if slices.ContainsFunc(p.Blobs, func(e repo.BlobEntry) bool { return e.Type == t && e.ID == id }) {
				v.mu.Lock()
				v.damaged = true // before the waiting reads look (confirm marks the cache)
				v.mu.Unlock()
				return "lost its entry, which the repository's index has", true
			}
		}
	}
	return "", false
}

// verdictSegment returns segment id as the repository holds it, read once
// (nil when it cannot be read).
func (ix *Index) verdictSegment(ctx context.Context, id repo.ID) *Segment {
	v := &ix.verdicts
	v.mu.Lock()
	seg, ok := v.segments[id]
	v.mu.Unlock()
	if ok {
		return seg
	}
	seg, err := ix.readSegment(ctx, id)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		seg = nil
	}
	v.mu.Lock()
	if v.segments == nil || len(v.segments) >= maxVerdictSegments {
		v.segments = map[repo.ID]*Segment{}
	}
	v.segments[id] = seg
	v.mu.Unlock()
	return seg
}

// sameEntry reports whether two entries of one blob place and describe it
// alike.
func sameEntry(a, b repo.BlobEntry) bool {
	return a.Offset == b.Offset && a.Length == b.Length && a.RawLength == b.RawLength &&
		a.Compressed == b.Compressed && a.Delta() == b.Delta() && slices.Equal(a.Bases, b.Bases)
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
