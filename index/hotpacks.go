package index

import (
	"context"
	"slices"
	"sync"

	"github.com/snap-backup/snap/repo"
)

// hotPacks fetches whole, into memory, the packs of a remote repository
// that many delta bases are read from without a plan: the changed chunks
// of a dump are stored as deltas of the previous version's chunks at the
// same place, which lie one after another in a few packs, and each was
// read by a ranged request of its own (an incremental create of a dump on
// S3 made 139 ranged GETs of one 3.9 MiB pack; found by an exploratory
// test). Which chunks changed is known only once they are read, so the
// reads are counted per pack, and a pack is fetched once they have cost
// in requests a quarter of its size (at least hotPackReads reads): a dump
// that changed one row still makes one small request.
//
// Reads through a PackFetcher (restore, dump, copy: planned) do not come
// here.
type hotPacks struct {
	mu      sync.Mutex
	reads   map[repo.ID]int // ranged reads of bases per pack; -1: not to fetch
	held    []hotPack       // fetched, the most recently used last
	loading packLocks       // one download per pack at a time
}

type hotPack struct {
	id   repo.ID
	data []byte
}

const (
	// hotPackReads is the fewest ranged reads of a pack's bases before it
	// is fetched whole.
	hotPackReads = 3
	// hotPacksHeld packs are kept in memory: the save workers work on
	// neighbouring chunks of a stream, whose bases are in one or two.
	hotPacksHeld = 2
	// hotPackMax is the largest pack fetched (four default packs): larger
	// ones, of a repository made with a large pack size, go by range.
	hotPackMax = 64 << 20
)

func newHotPacks() *hotPacks {
	return &hotPacks{reads: map[repo.ID]int{}}
}

// sealed returns the stored bytes of blob e from pack, when the pack is
// held.
func (h *hotPacks) sealed(pack repo.ID, e repo.BlobEntry) ([]byte, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for i, p := range h.held {
		if p.id != pack {
			continue
		}
		h.held = append(slices.Delete(h.held, i, i+1), p) // most recently used
		end := int64(e.Offset) + int64(e.Length)
		if end > int64(len(p.data)) {
			return nil, false // the index says otherwise: the ranged read tells
		}
		return p.data[e.Offset:end], true
	}
	return nil, false
}

// due counts a read of a base from pack, of size bytes, and reports
// whether the pack is now to be fetched whole.
func (h *hotPacks) due(pack repo.ID, size int64) bool {
	if size <= 0 || size > hotPackMax {
		return false
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	n := h.reads[pack]
	if n < 0 {
		return false
	}
	n++
	h.reads[pack] = n
	return n >= hotPackReads && int64(n)*rangedReadCost*4 >= size
}

// fetch downloads pack whole, checks it against its name and holds it;
// one download per pack at a time. A pack that cannot be fetched is not
// tried again: its reads go by range, which decide what is wrong.
func (h *hotPacks) fetch(ctx context.Context, r *repo.Repository, pack repo.ID) bool {
	defer h.loading.lock(pack)()
	if h.holds(pack) {
		return true // another worker fetched it meanwhile
	}
	data, err := loadWholePack(ctx, r, pack)
	h.mu.Lock()
	defer h.mu.Unlock()
	if err != nil {
		h.reads[pack] = -1
		return false
	}
	if len(h.held) == hotPacksHeld {
		h.held = slices.Delete(h.held, 0, 1)
	}
	h.held = append(h.held, hotPack{id: pack, data: data})
	return true
}

func (h *hotPacks) holds(pack repo.ID) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.ContainsFunc(h.held, func(p hotPack) bool { return p.id == pack })
}

// drop forgets a held pack a blob of which failed its check (the bytes
// matched the pack's name, so the index is wrong about it): the reads of
// the pack go by range from now on.
func (h *hotPacks) drop(pack repo.ID) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.held = slices.DeleteFunc(h.held, func(p hotPack) bool { return p.id == pack })
	h.reads[pack] = -1
}

// loadBaseCopy reads the full copy of a base at loc: from a pack held
// whole, or, once the pack's reads are due (hotPacks), from the pack
// fetched whole now, else by range (LoadBlobAt, which also decides what a
// failed read means).
func (ix *Index) loadBaseCopy(ctx context.Context, loc Location, dst []byte) ([]byte, error) {
	if ix.hot == nil || loc.Entry.Delta() {
		return ix.LoadBlobAt(ctx, loc, dst)
	}
	sealed, ok := ix.hot.sealed(loc.Pack, loc.Entry)
	if !ok {
		if size, _ := ix.packSize(loc.Pack); ix.hot.due(loc.Pack, size) && ix.hot.fetch(ctx, ix.r, loc.Pack) {
			sealed, ok = ix.hot.sealed(loc.Pack, loc.Entry)
		}
	}
	if ok {
		out, err := ix.r.OpenBlob(loc.Pack, loc.Entry, sealed, dst)
		if err == nil {
			err = ix.VerifyBlob(loc.Pack, loc.Entry, out[len(dst):])
		}
		if err == nil {
			return out, nil
		}
		ix.hot.drop(loc.Pack)
	}
	return ix.LoadBlobAt(ctx, loc, dst)
}
