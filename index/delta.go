package index

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"sync"

	bolt "go.etcd.io/bbolt"

	"github.com/snap-backup/snap/repo"
)

// Deltas. A data blob may be stored compressed against base blobs (see
// repo.BlobEntry.Bases): the archiver does that for a chunk of a changed
// file or dump, with the previous version's chunks that covered the same
// bytes as bases. The rules that keep every delta readable:
//
//   - A delta is opened with full (non-delta) copies of its bases, so no
//     chain is longer than one step and no cycle can form, whatever
//     concurrent writers stored.
//   - A writer uses as bases only blobs with a full copy in a live pack,
//     and relies on those packs as on any blob it reuses (invariant 9:
//     they are confirmed before the snapshot is saved); a delta counts as
//     stored (Writer.Known) only while its bases have such a copy.
//   - Prune keeps, for every used delta, a full copy of each of its bases.

// baseCacheBytes bounds the plaintexts of bases kept for reuse: the
// changed chunks of a dump have neighbouring, mostly shared bases, and a
// restore of a delta reads its bases, which its neighbours need too.
const baseCacheBytes = 8 << 20

// fullCopy returns a location of data blob id that is not a delta: a live
// one when there is one, else (unless live is set) one in a marked pack,
// which still exists and can be read.
func (ix *Index) fullCopy(id repo.ID, live bool) (Location, bool) {
	var loc Location
	var ok bool
	_ = ix.db.View(func(tx *bolt.Tx) error {
		loc, ok = ix.lookupFunc(tx, repo.DataBlob, id, func(e repo.BlobEntry) bool { return !e.Delta() })
		return nil
	})
	ix.touched()
	if !ok || live && loc.Status != PackLive {
		return Location{}, false
	}
	return loc, true
}

// HasFullCopy reports whether data blob id has a copy in a live pack that
// is not a delta: a copy deltas can be taken against.
func (ix *Index) HasFullCopy(id repo.ID) bool {
	_, ok := ix.fullCopy(id, true)
	return ok
}

// baseDict appends the plaintexts of bases, in order, to dst: the
// dictionary of a delta. With live set (a writer about to rely on them) only
// copies in live packs count, and the packs are returned.
func (ix *Index) baseDict(ctx context.Context, bases []repo.ID, live bool, dst []byte) ([]byte, []repo.ID, error) {
	if len(bases) == 0 || len(bases) > repo.MaxBases {
		return nil, nil, fmt.Errorf("%d bases (1 to %d allowed)", len(bases), repo.MaxBases)
	}
	locs := make([]Location, len(bases))
	packs := make([]repo.ID, len(bases))
	var total int64
	for i, id := range bases {
		l, ok := ix.fullCopy(id, live)
		if !ok {
			if derr := ix.damaged.blobErr(repo.DataBlob, id); derr != nil {
				// Passed over as damaged: say so, not "not indexed"
				// (found by a re-test).
				return nil, nil, fmt.Errorf("base %s: its full copy is damaged: %w", id, derr)
			}
			return nil, nil, fmt.Errorf("base of the delta: no full copy is indexed: %w", ix.notIndexedError(repo.DataBlob, id))
		}
		locs[i], packs[i] = l, l.Pack
		total += int64(l.Entry.RawLength)
	}
	if total > repo.MaxDeltaDict {
		return nil, nil, fmt.Errorf("bases of %d bytes exceed %d", total, repo.MaxDeltaDict)
	}
	if dst == nil || cap(dst)-len(dst) < int(total) {
		dst = append(make([]byte, 0, len(dst)+int(total)), dst...)
	}
	for i, l := range locs {
		if b, ok := ix.bases.get(bases[i]); ok {
			dst = append(dst, b...)
			if f := ix.basesFrom(ctx); f != nil {
				f.BaseCached(bases[i])
			}
			continue
		}
		start := len(dst)
		var err error
		if f := ix.basesFrom(ctx); f != nil {
			dst, err = f.LoadBase(ctx, l, dst)
		} else {
			dst, err = ix.loadBaseCopy(ctx, l, dst)
		}
		if err != nil {
			return nil, nil, fmt.Errorf("base %s: %w", bases[i].Short(), err)
		}
		ix.bases.put(bases[i], dst[start:])
	}
	return dst, packs, nil
}

// ReadBasesFrom returns ctx with the fetcher f attached: the reads made
// under it (a restore's, a dump's) read the full copies of bases that the
// cache does not hold through f (planned with PackPlan.AddBases), where
// others go by range. A value of the context, not of the index: two reads
// of one index at once (restore --db reads a dump through once while its
// loading waits) each keep to their own fetcher, which the other may
// close.
func ReadBasesFrom(ctx context.Context, f *PackFetcher) context.Context {
	return context.WithValue(ctx, basesFromKey{}, f)
}

type basesFromKey struct{}

// basesFrom returns the fetcher that ctx reads bases through, if any.
func (ix *Index) basesFrom(ctx context.Context) *PackFetcher {
	if f, ok := ctx.Value(basesFromKey{}).(*PackFetcher); ok && f.ix == ix {
		return f
	}
	return nil
}

// LoadBase returns the plaintext of data blob id, verified, from a full
// copy (the copy a delta is opened with), through the cache of recently
// used bases, which a delta just opened has filled.
func (ix *Index) LoadBase(ctx context.Context, id repo.ID) ([]byte, error) {
	if b, ok := ix.bases.get(id); ok {
		return b, nil
	}
	plain, _, err := ix.baseDict(ctx, []repo.ID{id}, false, nil)
	return plain, err
}

// PrimeBase puts plain in the cache of bases as the plaintext of data blob
// id, so that a delta against it is written (Writer.SaveDelta) without
// reading it from the repository. The caller has hashed plain with this
// repository's ID key to id: the cache holds verified plaintexts only.
func (ix *Index) PrimeBase(id repo.ID, plain []byte) { ix.bases.put(id, plain) }

// deltaDict returns the dictionary to open the delta at loc with: the
// plaintexts of its bases.
func (ix *Index) deltaDict(ctx context.Context, loc Location) ([]byte, error) {
	if len(loc.Entry.Bases) == 1 {
		// A small file's delta against a dictionary (repo/dict.go): its one
		// base is almost always cached, and the cached plaintext (verified
		// when it was read, never written to) serves as the dictionary
		// as it is, without copying it for every small file.
		if dict, ok := ix.bases.get(loc.Entry.Bases[0]); ok {
			if f := ix.basesFrom(ctx); f != nil {
				f.BaseCached(loc.Entry.Bases[0])
			}
			return dict, nil
		}
	}
	dict, _, err := ix.baseDict(ctx, loc.Entry.Bases, false, nil)
	if err != nil {
		var ce *repo.CorruptError
		if errors.As(err, &ce) {
			return nil, err
		}
		return nil, fmt.Errorf("data blob %s in pack %s (a delta): %w", loc.Entry.ID, loc.Pack, err)
	}
	return dict, nil
}

// loadDelta reads and verifies a delta.
func (ix *Index) loadDelta(ctx context.Context, loc Location, dst []byte) ([]byte, error) {
	dict, err := ix.deltaDict(ctx, loc)
	if err != nil {
		return nil, err
	}
	out, err := ix.r.LoadDelta(ctx, loc.Pack, loc.Entry, dict, dst)
	if err != nil {
		return nil, err
	}
	if err := ix.VerifyBlob(loc.Pack, loc.Entry, out[len(dst):]); err != nil {
		return nil, err
	}
	return out, nil
}

// ReadBaseCacheBytes is the base cache of commands that read much stored
// as deltas (check --read-data, dump, copy, prune's repacks): a dump's
// chunks are small (tens of KiB), its deltas' bases are spread over the
// previous dumps, and at baseCacheBytes a check read most bases again for
// every delta, one request each (22,240 requests for a repository of 13.7
// MiB on S3; found by an exploratory test).
const ReadBaseCacheBytes = 64 << 20

// baseCache keeps the plaintexts of recently used bases, at most max bytes
// (baseCacheBytes when 0), the least recently used going first.
type baseCache struct {
	max   int
	mu    sync.Mutex
	size  int
	lru   list.List // of *baseEntry, most recent first
	items map[repo.ID]*list.Element
}

type baseEntry struct {
	id    repo.ID
	plain []byte
}

func (c *baseCache) get(id repo.ID) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.items[id]
	if !ok {
		return nil, false
	}
	c.lru.MoveToFront(el)
	return el.Value.(*baseEntry).plain, true
}

// BasesCached reports whether the plaintexts of every base of ids are in
// the cache of bases: a delta against them needs no read.
func (ix *Index) BasesCached(ids []repo.ID) bool {
	for _, id := range ids {
		if _, ok := ix.bases.get(id); !ok {
			return false
		}
	}
	return true
}

func (c *baseCache) limit() int {
	if c.max > 0 {
		return c.max
	}
	return baseCacheBytes
}

func (c *baseCache) put(id repo.ID, plain []byte) {
	if len(plain) > c.limit()/4 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.items == nil {
		c.items = map[repo.ID]*list.Element{}
	}
	if _, ok := c.items[id]; ok {
		return
	}
	c.items[id] = c.lru.PushFront(&baseEntry{id: id, plain: append([]byte(nil), plain...)})
	c.size += len(plain)
	for c.size > c.limit() {
		el := c.lru.Back()
		be := el.Value.(*baseEntry)
		c.lru.Remove(el)
		delete(c.items, be.id)
		c.size -= len(be.plain)
	}
}
