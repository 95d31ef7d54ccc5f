package index

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"slices"

	bolt "go.etcd.io/bbolt"

	"github.com/snap-backup/snap/repo"
)

// SyncStats says what Sync did.
type SyncStats struct {
	Added   int // segments read and added
	Removed int // segments dropped (superseded or gone)
}

// Sync brings the cache up to date with the repository's index/ directory:
// new segments are read and added, superseded ones and ones that vanished
// are dropped. The result does not depend on the order segments are read
// in: a superseded segment is recorded as such, whenever it is seen.
func (ix *Index) Sync(ctx context.Context, log func(string)) (SyncStats, error) {
	var total SyncStats
	for attempt := 0; ; attempt++ {
		last := attempt == 2
		st, vanished, err := ix.syncOnce(ctx, log, last, false)
		total.Added += st.Added
		total.Removed += st.Removed
		// A segment that vanished between listing and reading, or that
		// the listing missed, was superseded by a prune, whose new
		// segment a second listing finds: a listing that runs while
		// files are added and removed may miss both.
		if err != nil || !vanished || last {
			return total, err
		}
	}
}

// syncOnce lists index/ and brings the cache up to date with what it
// finds. vanished says the listing may have raced with a prune: a segment
// disappeared between the listing and its reading, or a segment the cache
// knows is missing from the listing; the caller lists again. Only with
// last are known segments missing from the listing dropped.
//
// rebuilt says the cache was emptied because it followed another copy of
// the repository, so that this happens at most once.
func (ix *Index) syncOnce(ctx context.Context, log func(string), last, rebuilt bool) (st SyncStats, vanished bool, err error) {
	if log == nil {
		log = func(string) {}
	}
	remote, err := ix.r.ListIDs(ctx, repo.IndexFile)
	if err != nil {
		return st, false, fmt.Errorf("list index: %w", err)
	}
	inRepo := make(map[repo.ID]bool, len(remote))
	for _, id := range remote {
		inRepo[id] = true
	}
	known, superseded, err := ix.segmentSets()
	if err != nil {
		return st, false, err
	}
	// A segment that cannot be read is an error only if no segment
	// supersedes it: 'snap repair index --from-packs' leaves a damaged
	// segment in place and writes one that supersedes it, which may be
	// read before or after it.
	type failedSeg struct {
		id  repo.ID
		err error
	}
	var failed []failedSeg
	// orphanedSuperseded: the repository has a segment the cache holds
	// replaced, but not the segment that replaced it. A prune between
	// writing its segment and deleting the old ones shows both.
	orphanedSuperseded := false
	for _, id := range remote {
		by, isSup := superseded[id]
		if isSup && by != (repo.ID{}) && !inRepo[by] {
			orphanedSuperseded = true
		}
		if known[id] || isSup {
			continue
		}
		if err := ctx.Err(); err != nil {
			return st, false, err
		}
		plain, err := ix.r.LoadObject(ctx, repo.IndexFile, id)
		if errors.Is(err, repo.ErrNotFound) {
			vanished = true // removed by a concurrent prune after being superseded
			continue
		}
		if errors.Is(err, fs.ErrPermission) {
			// Not damage: the segment is there for its owner to read,
			// and a repair would replace it with what this user can see.
			return st, false, fmt.Errorf("read index segment %s: %w", id, err)
		}
		if errors.Is(err, repo.ErrTransient) {
			// The store did not answer (retried, then given up): not
			// damage, and the next segment would cost another round of
			// retries. One error ends the sync, without advice to repair
			// what is whole (found by an exploratory test: a prune ran
			// 14 minutes against a server gone, one minute a segment).
			return st, false, fmt.Errorf("read index segment %s: %w", id, err)
		}
		if err != nil {
			failed = append(failed, failedSeg{id, fmt.Errorf("read index segment %s: %w (run 'snap repair index --from-packs' if it stays)", id, err)})
			continue
		}
		seg, err := DecodeSegment(plain)
		if err != nil {
			failed = append(failed, failedSeg{id, &repo.CorruptError{Object: "index/" + id.String(),
				Reason: err.Error() + " (run 'snap repair index --from-packs')"}})
			continue
		}
		if err := ix.AddSegment(id, seg); err != nil {
			return st, false, err
		}
		st.Added++
	}
	for _, f := range failed {
		if ix.KnowsSegment(f.id) {
			continue
		}
		if !ix.readOnly {
			return st, false, f.err
		}
		// Not recorded as known: the next Sync tries it again, and a
		// writer's fails on it.
		ix.unreadSegments.Store(true)
		log(fmt.Sprintf("%v; its blobs are left out of this command's index, so what needs them fails", f.err))
	}
	// Segments the cache has but the repository lost without a successor
	// the cache knows of.
	var inData map[repo.ID]bool // packs in data/, listed when first needed
	for id := range known {
		if inRepo[id] {
			continue
		}
		isSup := false
		_ = ix.db.View(func(tx *bolt.Tx) error {
			isSup = tx.Bucket(bSuperseded).Get(id[:]) != nil
			return nil
		})
		if !isSup {
			if !last {
				vanished = true // list again before believing it
				continue
			}
			if orphanedSuperseded && !rebuilt {
				// A segment the cache replaced is here, and one the cache
				// replaced it with is gone: this repository is another
				// copy of the one the cache follows (rsync'd, or restored
				// from a backup of itself; the ID is the same). Skipping
				// what the cache holds replaced would leave the copy's
				// blobs out of the index.
				log("the index cache does not match this repository (a copy of it, or an older state restored from a backup): rebuilding the cache")
				if err := ix.Reset(); err != nil {
					return st, false, err
				}
				return ix.syncOnce(ctx, log, last, true)
			}
			// A cache that missed several prunes knows neither the
			// segments that replaced this one nor their successors'
			// claim to supersede it. Its packs tell: those no current
			// segment lists are lost to the index only if they are still
			// in data/ (a prune deletes a pack before its segment).
			if inData == nil {
				inData = map[repo.ID]bool{}
				if err := ix.r.Backend().List(ctx, repo.PackFile, func(name string, _ int64) error {
					if pid, err := repo.ParseID(name); err == nil {
						inData[pid] = true
					}
					return nil
				}); err != nil {
					return st, false, fmt.Errorf("list packs: %w", err)
				}
			}
			if n := ix.ownedPacksIn(id, inData); n > 0 {
				verb := "packs are"
				if n == 1 {
					verb = "pack is"
				}
				log(fmt.Sprintf("index segment %s disappeared from the repository without a replacement; %d of its %s in data/ but no longer indexed (run 'snap repair index --from-packs' to recover them from the packs)", id, n, verb))
			}
		}
		if err := ix.db.Update(func(tx *bolt.Tx) error { return dropSegment(tx, id, nil) }); err != nil {
			return st, false, err
		}
		st.Removed++
	}
	return st, vanished, ix.sweepDead(ctx)
}

// segmentSets returns the segments the cache has read, and maps each one it
// holds replaced to the segment that (last) replaced it (the zero ID in
// caches that did not record it).
func (ix *Index) segmentSets() (known map[repo.ID]bool, superseded map[repo.ID]repo.ID, err error) {
	known, superseded = map[repo.ID]bool{}, map[repo.ID]repo.ID{}
	// A segment that was being added when a run ended is dropped: Sync then
	// adds it again if the repository still has it. (Not one that
	// AddSegment is adding right now: it holds the lock.)
	ix.adding.Lock()
	defer ix.adding.Unlock()
	var partial []byte
	_ = ix.db.View(func(tx *bolt.Tx) error {
		partial = bytes.Clone(tx.Bucket(bMeta).Get(metaAdding))
		return nil
	})
	if partial != nil {
		err = ix.db.Update(func(tx *bolt.Tx) error {
			v := tx.Bucket(bMeta).Get(metaAdding)
			if len(v) != 32 {
				return nil
			}
			if err := dropSegment(tx, repo.ID(v), nil); err != nil {
				return err
			}
			return tx.Bucket(bMeta).Delete(metaAdding)
		})
		if err != nil {
			return nil, nil, err
		}
	}
	err = ix.db.View(func(tx *bolt.Tx) error {
		if err := tx.Bucket(bSegments).ForEach(func(k, v []byte) error {
			if len(k) == 32 {
				known[repo.ID(k)] = true
			}
			return nil
		}); err != nil {
			return err
		}
		return tx.Bucket(bSuperseded).ForEach(func(k, v []byte) error {
			if len(k) == 32 {
				var by repo.ID
				if len(v) == 32 {
					by = repo.ID(v)
				}
				superseded[repo.ID(k)] = by
			}
			return nil
		})
	})
	return known, superseded, err
}

// KnowsSegment reports whether the cache has read the segment.
func (ix *Index) KnowsSegment(id repo.ID) bool {
	var ok bool
	_ = ix.db.View(func(tx *bolt.Tx) error {
		ok = tx.Bucket(bSegments).Get(id[:]) != nil && !bytes.Equal(tx.Bucket(bMeta).Get(metaAdding), id[:]) ||
			tx.Bucket(bSuperseded).Get(id[:]) != nil
		return nil
	})
	return ok
}

// addBatch bounds the blob entries that one transaction of AddSegment
// writes. A bbolt transaction keeps every page it changes in memory until it
// commits, and blob IDs are random, so nearly every entry lands on another
// page: a segment of 65536 blobs added at once to a large cache would hold
// most of the cache in memory.
const addBatch = 2048

// metaAdding names, in the meta bucket, a segment whose blobs are being
// added. Until the last batch is in, the segment counts as unknown: Sync
// adds it again (entries are simply written twice), or drops its packs if
// it vanished from the repository meanwhile.
var metaAdding = []byte("adding")

// AddSegment records a segment that is durable in the repository: first
// the segments it supersedes are dropped and its packs recorded, then its
// blobs are added in batches of at most addBatch, in ID order. A pack
// listed again takes the new segment's status.
func (ix *Index) AddSegment(id repo.ID, seg *Segment) error {
	ix.adding.Lock()
	defer ix.adding.Unlock()
	type blobEnt struct {
		e   repo.BlobEntry
		seq uint32
	}
	var all []blobEnt
	for _, p := range seg.Packs {
		for _, e := range p.Blobs {
			all = append(all, blobEnt{e: e})
		}
	}
	// A small cache takes the segment in one transaction: its pages fit in
	// memory anyway, and every commit costs two fsyncs.
	batchSize := addBatch
	_ = ix.db.View(func(tx *bolt.Tx) error {
		if !ix.pages.large(tx.Size()) {
			batchSize = max(len(all), 1)
		}
		return nil
	})
	superseded := false
	for start := 0; start == 0 || start < len(all); start += batchSize {
		batch := all[start:min(start+batchSize, len(all))]
		last := start+batchSize >= len(all)
		err := ix.db.Update(func(tx *bolt.Tx) error {
			meta := tx.Bucket(bMeta)
			if start == 0 {
				if tx.Bucket(bSuperseded).Get(id[:]) != nil {
					superseded = true
					return nil
				}
				seqs, err := addPacks(tx, id, seg)
				if err != nil {
					return err
				}
				i := 0
				for pi, p := range seg.Packs {
					for range p.Blobs {
						all[i].seq = seqs[pi]
						i++
					}
				}
				slices.SortFunc(all, func(a, b blobEnt) int { return bytes.Compare(a.e.ID[:], b.e.ID[:]) })
				if !last {
					if err := meta.Put(metaAdding, id[:]); err != nil {
						return err
					}
				}
			}
			blobs, bases := tx.Bucket(bBlobs), tx.Bucket(bBases)
			for i, b := range batch {
				if err := blobs.Put(blobKey(b.e.ID, b.e.Type, b.seq), encodeBlobVal(b.e)); err != nil {
					return err
				}
				for _, base := range b.e.Bases {
					if err := bases.Put(binary.BigEndian.AppendUint32(base[:], b.seq), nil); err != nil {
						return err
					}
				}
				if i%releaseEvery == releaseEvery-1 {
					ix.releaseIn(tx)
				}
			}
			if last && start > 0 {
				return meta.Delete(metaAdding)
			}
			return nil
		})
		if err != nil || superseded {
			return err
		}
		ix.releasePages()
	}
	return nil
}

// addPacks drops the segments seg supersedes, records its packs (a new
// sequence number for each pack not known yet) and the segment itself, and
// returns the packs' sequence numbers.
func addPacks(tx *bolt.Tx, id repo.ID, seg *Segment) ([]uint32, error) {
	for _, old := range seg.Supersedes {
		if err := dropSegment(tx, old, &id); err != nil {
			return nil, err
		}
	}
	packs, seqs, meta := tx.Bucket(bPacks), tx.Bucket(bSeqs), tx.Bucket(bMeta)
	nextSeq := uint32(1)
	if v := meta.Get([]byte("nextseq")); len(v) == 4 {
		nextSeq = binary.BigEndian.Uint32(v)
	}
	list := make([]byte, 0, 32*len(seg.Packs))
	out := make([]uint32, len(seg.Packs))
	for i, p := range seg.Packs {
		list = append(list, p.ID[:]...)
		rec, exists := decodePackRec(packs.Get(p.ID[:]))
		if !exists {
			rec.seq = nextSeq
			nextSeq++
			if err := seqs.Put(binary.BigEndian.AppendUint32(nil, rec.seq), p.ID[:]); err != nil {
				return nil, err
			}
		}
		rec.size, rec.status, rec.markedAt, rec.owner = p.Size, p.Status, p.MarkedAt, id
		if err := packs.Put(p.ID[:], rec.encode()); err != nil {
			return nil, err
		}
		out[i] = rec.seq
	}
	if err := meta.Put([]byte("nextseq"), binary.BigEndian.AppendUint32(nil, nextSeq)); err != nil {
		return nil, err
	}
	return out, tx.Bucket(bSegments).Put(id[:], list)
}

// ownedPacksIn counts the packs that segment id lists and no other known
// segment does (the segment owns their records) and that are in inData.
func (ix *Index) ownedPacksIn(id repo.ID, inData map[repo.ID]bool) int {
	n := 0
	_ = ix.db.View(func(tx *bolt.Tx) error {
		list, packs := tx.Bucket(bSegments).Get(id[:]), tx.Bucket(bPacks)
		for i := 0; i+32 <= len(list); i += 32 {
			rec, ok := decodePackRec(packs.Get(list[i : i+32]))
			if ok && rec.owner == id && inData[repo.ID(list[i:i+32])] {
				n++
			}
		}
		return nil
	})
	return n
}

// dropSegment removes a segment's contribution: the packs it owns (those
// no later segment listed again). Their blob entries stay behind, dead:
// lookups ignore entries whose pack sequence number no longer resolves, and
// sequence numbers are never reused. With supersededBy the segment is
// remembered, with the segment that replaced it, so that it is never added
// again.
func dropSegment(tx *bolt.Tx, id repo.ID, supersededBy *repo.ID) error {
	segs, packs, seqs, meta := tx.Bucket(bSegments), tx.Bucket(bPacks), tx.Bucket(bSeqs), tx.Bucket(bMeta)
	if supersededBy != nil {
		// Which segment replaced it: a copy of the repository that has
		// this one but not its successor is not the repository the cache
		// follows (syncOnce).
		if err := tx.Bucket(bSuperseded).Put(id[:], supersededBy[:]); err != nil {
			return err
		}
	}
	list := segs.Get(id[:])
	if list == nil {
		return nil
	}
	list = bytes.Clone(list)
	dead, _ := metaUint(meta, metaDeadPacks)
	for i := 0; i+32 <= len(list); i += 32 {
		pid := list[i : i+32]
		rec, ok := decodePackRec(packs.Get(pid))
		if !ok || rec.owner != id {
			continue
		}
		if err := packs.Delete(pid); err != nil {
			return err
		}
		if err := seqs.Delete(binary.BigEndian.AppendUint32(nil, rec.seq)); err != nil {
			return err
		}
		dead++
	}
	if err := meta.Put(metaDeadPacks, binary.BigEndian.AppendUint64(nil, dead)); err != nil {
		return err
	}
	return segs.Delete(id[:])
}
