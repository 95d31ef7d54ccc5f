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

// Reset empties the cache; the next Sync reads every segment again.
func (ix *Index) Reset() error { return ix.reset(nil) }

// reset empties every bucket of the cache but keep.
func (ix *Index) reset(keep []byte) error {
	return ix.db.Update(func(tx *bolt.Tx) error {
		for _, b := range allBuckets {
			if bytes.Equal(b, keep) {
				continue
			}
			if err := tx.DeleteBucket(b); err != nil {
				return err
			}
			if _, err := tx.CreateBucket(b); err != nil {
				return err
			}
		}
		return tx.Bucket(bMeta).Put([]byte("version"), []byte(cacheVersion))
	})
}

// Dead entries: dropSegment leaves the blob (and base) entries of the packs
// it drops in place, since finding them means reading the whole blobs
// bucket. sweepDead removes them once the dropped packs number at least
// sweepMin and half the live ones: the cache then holds at most about
// half again as many entries as it needs (a third of them dead). It used to wait for 1,000 dropped
// packs, and more than the live ones, and then read every segment of the
// repository again; a repository pruned every week kept its dead entries
// for good, and its cache grew to four times its fresh size (140 MB
// against 34; found by an exploratory test).
const sweepMin = 32

// metaSwept, in the meta bucket, is what the entries the last sweep kept
// take in their pages, until the next Open reads it (Shrink): the
// sweep may run at the end of a command, and its pages stay allocated.
var metaSwept = []byte("swept")

// metaDeadPacks, in the meta bucket, counts the packs dropSegment dropped
// whose entries no sweep has removed yet.
var metaDeadPacks = []byte("deadpacks")

// metaUint reads the uint64 at key of the meta bucket (ok false when it
// has none).
func metaUint(meta *bolt.Bucket, key []byte) (n uint64, ok bool) {
	if v := meta.Get(key); len(v) == 8 {
		return binary.BigEndian.Uint64(v), true
	}
	return 0, false
}

// sweepBatch is the number of keys sweepDead reads per write transaction:
// the pages a transaction changes stay in memory until it commits (on a
// 526,000-entry cache, 50,000 took 12 MB more and no less time).
const sweepBatch = 10000

// sweepDead removes the blob and base entries whose pack the cache no
// longer holds, when dropped packs have left enough of them (see
// sweepMin). It reads only the cache, never the repository.
func (ix *Index) sweepDead(ctx context.Context) error {
	var dead, live uint64
	_ = ix.db.View(func(tx *bolt.Tx) error {
		dead, _ = metaUint(tx.Bucket(bMeta), metaDeadPacks)
		if dead >= sweepMin { // counting the packs reads the whole bucket
			live = uint64(tx.Bucket(bPacks).Stats().KeyN)
		}
		return nil
	})
	if dead < sweepMin || 2*dead < live {
		return nil
	}
	// Both buckets' keys end in the pack's sequence number, which
	// resolves in seqs while the pack is held, and is never reused.
	var kept int64
	for _, b := range [][]byte{bBlobs, bBases} {
		n, err := ix.sweepBucket(ctx, b)
		if err != nil {
			return err
		}
		kept += n
	}
	return ix.db.Update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bMeta)
		if err := meta.Put(metaSwept, binary.BigEndian.AppendUint64(nil, uint64(kept))); err != nil {
			return err
		}
		// Less those swept: packs dropped meanwhile (a segment added
		// by another goroutine) left entries the sweep may have missed.
		now, _ := metaUint(meta, metaDeadPacks)
		return meta.Put(metaDeadPacks, binary.BigEndian.AppendUint64(nil, now-min(now, dead)))
	})
}

// sweepBucket deletes the keys of bucket name whose last four bytes are a
// sequence number the seqs bucket no longer has, sweepBatch keys per
// transaction, and returns the bytes the entries it kept take in their
// pages. An interrupted sweep leaves the cache correct: the next one
// starts again.
func (ix *Index) sweepBucket(ctx context.Context, name []byte) (kept int64, err error) {
	var from []byte // the first key of the next batch; nil: the first key
	for {
		if err := ctx.Err(); err != nil {
			return kept, err
		}
		done := false
		err := ix.db.Update(func(tx *bolt.Tx) error {
			b, seqs := tx.Bucket(name), tx.Bucket(bSeqs)
			var gone [][]byte
			c := b.Cursor()
			k, v := c.First()
			if from != nil {
				k, v = c.Seek(from)
			}
			for n := 0; k != nil && n < sweepBatch; n++ {
				if len(k) >= 4 && seqs.Get(k[len(k)-4:]) == nil {
					gone = append(gone, bytes.Clone(k))
				} else {
					kept += int64(len(k) + len(v) + leafElementSize)
				}
				k, v = c.Next()
			}
			from, done = bytes.Clone(k), k == nil
			// Deleted after the walk: a cursor that deletes as it goes
			// may skip the key after each one it deletes.
			for _, k := range gone {
				if err := b.Delete(k); err != nil {
					return err
				}
			}
			return nil
		})
		ix.releasePages()
		if err != nil || done {
			return kept, err
		}
	}
}

// RepairStats says what RebuildFromPacks found.
type RepairStats struct {
	Packs      int
	Blobs      int
	Unreadable []string  // packs whose trailer could not be read, with the reason
	FromIndex  []string  // of those, the ones indexed as an old segment listed them
	Truncated  []repo.ID // of those, the packs shorter than listed: only the blobs left were kept
	Segments   int       // segments written
	Removed    int       // old segments removed (the new ones supersede them)
	// Missing are the packs the local index listed as live that the
	// repository no longer holds (deleted by hand, lost with a disk):
	// their blobs are no longer indexed, and nothing else would say so.
	Missing []repo.ID
	// LostBlobs counts, for a pack of Missing, the blobs the index listed
	// in it that no pack indexed now holds (absent: not known, as for a
	// pack only the local cache listed).
	LostBlobs map[repo.ID]int
	// Replaced are the packs the index listed that are gone but whose
	// every blob another pack holds (a repack copied them out before the
	// pack was moved out or deleted): nothing was lost with them.
	Replaced []repo.ID
	// KeptDamaged are the packs a repack kept for their damaged blobs
	// alone (PruneStats.DamagedPacks), indexed as it listed them.
	KeptDamaged []repo.ID
}

// segmentTarget is the number of blobs per segment that repair writes, as
// a Writer does (segmentBlobs).
const segmentTarget = segmentBlobs

// RebuildFromPacks recreates the repository's index from the pack trailers:
// it writes new segments listing every readable pack, the last of which
// supersedes every segment that existed when it started, removes those
// old segments, and then rebuilds the cache. The caller must hold the
// exclusive lock.
//
// Why remove them here rather than leave them to prune: the old segments
// include the unreadable ones repair is run for, and prune refuses to run
// while any segment is unreadable, so they stayed, and check kept
// reporting them, until someone deleted them by hand. Once the final
// segment is durable every old one is superseded, and with the exclusive
// lock no create or prune can depend on one.
func (ix *Index) RebuildFromPacks(ctx context.Context, log func(string)) (RepairStats, error) {
	var st RepairStats
	// The old segments: superseded and removed at the end, and meanwhile
	// the fallback for a pack whose trailer cannot be read but which a
	// readable one lists (its blobs are verified by their IDs when read,
	// as every blob is), and at the end what tells which packs are gone.
	old, err := ix.r.ListIDs(ctx, repo.IndexFile)
	if err != nil {
		return st, err
	}
	// Read on first use (when a trailer fails, and at the end) into
	// oldSet, and listed: the packs they list, a later segment's entry
	// over an earlier one's.
	var oldSet *SegmentSet
	var listed map[repo.ID]Pack
	readOld := func() error {
		if oldSet != nil {
			return nil
		}
		ss, err := ReadSegments(ctx, ix.r)
		if err != nil {
			return err
		}
		oldSet, listed = &SegmentSet{Segments: map[repo.ID]*Segment{}}, map[repo.ID]Pack{}
		for _, id := range old { // not the segments this repair wrote meanwhile
			if seg, ok := ss.Segments[id]; ok {
				oldSet.Segments[id] = seg
				for _, p := range seg.Packs {
					listed[p.ID] = p
				}
			}
		}
		return nil
	}
	type packFile struct {
		id   repo.ID
		size int64
	}
	var packs []packFile
	err = ix.r.Backend().List(ctx, repo.PackFile, func(name string, size int64) error {
		if id, err := repo.ParseID(name); err == nil {
			packs = append(packs, packFile{id, size})
		}
		return nil
	})
	if err != nil {
		return st, err
	}
	var seg Segment
	blobs := 0
	flush := func(final bool) error {
		if final {
			seg.Supersedes = old
		}
		if len(seg.Packs) == 0 && !final {
			return nil
		}
		if _, err := ix.r.SaveObject(ctx, repo.IndexFile, seg.Encode()); err != nil {
			return err
		}
		st.Segments++
		seg, blobs = Segment{}, 0
		return nil
	}
	for _, p := range packs {
		if err := ctx.Err(); err != nil {
			return st, err
		}
		ents, err := ix.r.LoadTrailer(ctx, p.id, p.size)
		if errors.Is(err, fs.ErrPermission) {
			// A pack this user may not read is not a damaged one: left
			// out, its blobs would be dropped from the index. Stop as an
			// interruption would; the segments written so far list
			// packs that are there, and the old ones stay.
			return st, fmt.Errorf("repair needs to read every pack: %s: %w", packPath(p.id), err)
		}
		if err != nil {
			if err := readOld(); err != nil {
				return st, err
			}
			lp, ok := listed[p.id]
			switch {
			case ok && lp.Size == p.size:
				st.FromIndex = append(st.FromIndex, fmt.Sprintf("%s: %v", packPath(p.id), err))
				ents = lp.Blobs
			case ok && p.size < lp.Size:
				// Cut short (a copy or a disk that failed part-way): the
				// blobs that lie wholly in what is left may be intact, and
				// are kept as the old index listed them; the others are
				// lost. Dropping them all lost every snapshot's files that
				// the pack's first part still held.
				ents = nil
				for _, e := range lp.Blobs {
					if int64(e.Offset)+int64(e.Length) <= p.size {
						ents = append(ents, e)
					}
				}
				msg := fmt.Sprintf("%s: %v; it was cut short (%d bytes, the old index listed %d), and %d of its %d blobs lie in what is left", packPath(p.id), err, p.size, lp.Size, len(ents), len(lp.Blobs))
				if len(ents) == 0 {
					st.Unreadable = append(st.Unreadable, msg+" (none)")
					continue
				}
				st.FromIndex = append(st.FromIndex, msg)
				st.Truncated = append(st.Truncated, p.id)
			case ok:
				// Bytes added after its end: its trailer at the old end
				// says where its blobs are (authenticated, as any
				// trailer). The pack is indexed at its old size, so that
				// check still says to repack it.
				old, terr := ix.r.LoadTrailer(ctx, p.id, lp.Size)
				if terr != nil {
					st.Unreadable = append(st.Unreadable, fmt.Sprintf("%s: %v; it is %d bytes, larger than the %d the old index listed, whose trailer there cannot be read either (%v)", packPath(p.id), err, p.size, lp.Size, terr))
					continue
				}
				st.FromIndex = append(st.FromIndex, fmt.Sprintf("%s: %v; bytes were added after its end (it has %d, the old index listed %d), and its trailer there lists %d blobs: 'snap prune --repack %s' rewrites them", packPath(p.id), err, p.size, lp.Size, len(old), p.id.Short()))
				ents = old
				p.size = lp.Size
			default:
				st.Unreadable = append(st.Unreadable, fmt.Sprintf("%s: %v; no index lists it", packPath(p.id), err))
				continue
			}
		}
		if err == nil {
			// A pack a repack kept for its damaged blobs is listed with
			// those alone: its intact blobs have copies elsewhere, and
			// listed whole again it could be chosen to hold them, and
			// the copies deleted, before it is moved out (found by a
			// re-test). No other writer lists a pack of the size it has
			// with fewer blobs than its trailer.
			if err := readOld(); err != nil {
				return st, err
			}
			if lp, ok := listed[p.id]; ok && lp.Size == p.size && len(lp.Blobs) < len(ents) && subsetOf(lp.Blobs, ents) {
				ents = lp.Blobs
				st.KeptDamaged = append(st.KeptDamaged, p.id)
			}
		}
		seg.Packs = append(seg.Packs, Pack{ID: p.id, Size: p.size, Status: PackLive, Blobs: ents})
		st.Packs++
		st.Blobs += len(ents)
		blobs += len(ents)
		if blobs >= segmentTarget {
			if err := flush(false); err != nil {
				return st, err
			}
		}
	}
	if err := flush(true); err != nil {
		return st, err
	}
	// Before the old segments are removed and the cache is reset: the
	// packs either listed as live that are gone. The old segments say it
	// where the cache is empty (a repair on a new machine, or with another
	// --cache-dir: it said nothing, exit 0, and removed the segments that
	// told; found by an exploratory test); the cache where a damaged old
	// segment no longer can.
	there := make(map[repo.ID]bool, len(packs))
	for _, p := range packs {
		there[p.id] = true
	}
	missing := func(id repo.ID) {
		if !there[id] {
			there[id] = true // named once
			st.Missing = append(st.Missing, id)
		}
	}
	if err := readOld(); err != nil {
		return st, err
	}
	for _, id := range oldSet.Effective() {
		for _, p := range oldSet.Segments[id].Packs {
			if p.Status == PackLive {
				missing(p.ID)
			}
		}
	}
	// The cache speaks only for the segments the repository still has:
	// one that is ahead of it (a repository put back from a backup, after
	// more creates) lists packs this repository never had, which are not
	// lost (found by an exploratory test: three packs "lost", and check
	// then clean).
	inRepo := make(map[repo.ID]bool, len(old))
	for _, id := range old {
		inRepo[id] = true
	}
	if err := ix.Packs(func(pi PackInfo) error {
		if pi.Status == PackLive && inRepo[pi.Segment] {
			missing(pi.ID)
		}
		return nil
	}); err != nil {
		return st, err
	}
	slices.SortFunc(st.Missing, compareIDs)
	for _, id := range old {
		err := ix.r.Backend().Remove(ctx, repo.Handle{Type: repo.IndexFile, Name: id.String()})
		if err != nil && !errors.Is(err, repo.ErrNotFound) {
			return st, fmt.Errorf("remove superseded index segment %s: %w", id, err)
		}
		st.Removed++
	}
	// What each gone pack held, as its old segment listed it: told apart
	// once the new index is in the cache, the pack whose blobs all lie in
	// other packs from the one that took blobs with it.
	held := make(map[repo.ID][]repo.BlobEntry, len(st.Missing))
	for _, id := range st.Missing {
		if lp, ok := listed[id]; ok && len(lp.Blobs) > 0 {
			held[id] = lp.Blobs
		}
	}
	if err := ix.Reset(); err != nil {
		return st, err
	}
	if _, err = ix.Sync(ctx, log); err != nil {
		return st, err
	}
	gone := st.Missing[:0:0]
	for _, id := range st.Missing {
		blobs, ok := held[id]
		if !ok {
			gone = append(gone, id)
			continue
		}
		lost := 0
		for _, e := range blobs {
			if !ix.Has(e.Type, e.ID) {
				lost++
			}
		}
		if lost == 0 {
			st.Replaced = append(st.Replaced, id)
			continue
		}
		if st.LostBlobs == nil {
			st.LostBlobs = map[repo.ID]int{}
		}
		st.LostBlobs[id] = lost
		gone = append(gone, id)
	}
	st.Missing = gone
	return st, nil
}

// subsetOf reports whether every entry of a is in b (the same blob at the
// same place).
func subsetOf(a, b []repo.BlobEntry) bool {
	type at struct {
		t              repo.BlobType
		id             repo.ID
		offset, length uint32
	}
	in := make(map[at]bool, len(b))
	for _, e := range b {
		in[at{e.Type, e.ID, e.Offset, e.Length}] = true
	}
	for _, e := range a {
		if !in[at{e.Type, e.ID, e.Offset, e.Length}] {
			return false
		}
	}
	return true
}

// packPath is where pack id lies in the repository, as messages name it
// ("data/2c/2c25…"; "data/2c25…" sent the admin looking for no such file).
func packPath(id repo.ID) string {
	return repo.Handle{Type: repo.PackFile, Name: id.String()}.String()
}
