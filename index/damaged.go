package index

import (
	"errors"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/snap-backup/snap/repo"
)

// damagedCopies are the stored copies of blobs that this Index found
// damaged when it read them: the pack's bytes failed authentication or did
// not hash to the blob's ID, or the pack was gone. Lookups pass them over,
// so that a reader takes another copy when there is one, and a writer,
// finding none, stores the blob anew instead of deduplicating against the
// damaged copy (found by an exploratory test: after bit rot in the packs,
// a create reported the parent's root tree corrupt, then saved a snapshot
// whose root was that very tree, and exited 0). What one process learns
// is not written anywhere: 'snap check --read-data' finds the damage for
// good, and repair moves it out.
type damagedCopies struct {
	any   atomic.Bool // set once the first copy is added: lookups skip the lock until then
	mu    sync.Mutex
	found map[damagedKey]error
	order []DamagedCopy
}

type damagedKey struct {
	pack repo.ID
	t    repo.BlobType
	id   repo.ID
}

// DamagedCopy is one copy of a blob found damaged (Index.Damaged).
type DamagedCopy struct {
	Pack repo.ID
	Type repo.BlobType
	ID   repo.ID
	Err  error
}

// isDamage reports whether err, from reading a blob's copy, says that copy
// is damaged, rather than that the read failed (a network error, a
// cancelled context), which says nothing about the bytes.
func isDamage(err error) bool {
	var ce *repo.CorruptError
	return errors.As(err, &ce) || errors.Is(err, repo.ErrNotFound)
}

// add records loc's copy as damaged by err; false when it already was.
func (d *damagedCopies) add(loc Location, err error) bool {
	k := damagedKey{loc.Pack, loc.Entry.Type, loc.Entry.ID}
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.found[k]; ok {
		return false
	}
	if d.found == nil {
		d.found = map[damagedKey]error{}
	}
	d.found[k] = err
	d.order = append(d.order, DamagedCopy{Pack: loc.Pack, Type: loc.Entry.Type, ID: loc.Entry.ID, Err: err})
	d.any.Store(true)
	return true
}

// confirmed replaces the error recorded for loc's copy with err, which
// says why it did not read (the cache's damage, not the pack's).
func (d *damagedCopies) confirmed(loc Location, err error) {
	k := damagedKey{loc.Pack, loc.Entry.Type, loc.Entry.ID}
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.found[k]; !ok {
		return
	}
	d.found[k] = err
	for i := range d.order {
		if d.order[i].Pack == loc.Pack && d.order[i].Type == loc.Entry.Type && d.order[i].ID == loc.Entry.ID {
			d.order[i].Err = err
		}
	}
}

// blobErr returns the error of the first damaged copy found of blob
// (t, id), or nil.
func (d *damagedCopies) blobErr(t repo.BlobType, id repo.ID) error {
	if !d.any.Load() {
		return nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, c := range d.order {
		if c.Type == t && c.ID == id {
			return c.Err
		}
	}
	return nil
}

// has reports whether the copy of blob (t, id) in pack was found damaged.
func (d *damagedCopies) has(pack repo.ID, t repo.BlobType, id repo.ID) bool {
	if !d.any.Load() {
		return false
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	_, ok := d.found[damagedKey{pack, t, id}]
	return ok
}

// Damaged returns the copies of blobs this Index found damaged, in the
// order found: a create that met one must say so, since the repository
// needs a check and a repair whatever it stored anew.
func (ix *Index) Damaged() []DamagedCopy {
	ix.damaged.mu.Lock()
	defer ix.damaged.mu.Unlock()
	return slices.Clone(ix.damaged.order)
}
