package snapshot

import (
	"sort"
	"sync"

	"github.com/snap-backup/snap/index"
	"github.com/snap-backup/snap/repo"
)

// Deltas against the previous version of a file.
//
// A database dump changes at scattered places: pgbench's random updates
// move one row in every ~100 KB of a table, so almost every chunk of the
// new dump differs from the old one by a row, and chunk-level
// deduplication stores almost all of it again. A chunk that is new but has
// an earlier version (a changed file or stream whose path the parent
// snapshot has) is therefore also compressed against the parent's chunks
// that covered the same bytes, and stored as a delta when that is smaller
// (index.Writer.SaveDelta; the format is repo.BlobEntry.Bases).
//
// Which parent chunks covered the same bytes: the parent's chunk sizes give
// their offsets in the old version. Where the new version has grown or
// shrunk before a chunk, offsets shift; every chunk of the new version
// that is found unchanged anchors the two versions at its offset (its
// parent offset minus its new offset is the shift from there on). A new
// chunk at offset off of n bytes gets the parent chunks overlapping
// [off+shift, off+shift+n). (A window wider by n/4 on each side made the
// deltas of dataset 3 no smaller and their dictionaries larger: 4 % more
// bytes added, 40 % more CPU.)

// maxDeltaDict bounds the plaintext of a delta's bases, which the writer
// and every reader of the delta hold in memory; chunks of dumps are 16 to
// 256 KiB, of files 0.5 to 8 MiB.
const maxDeltaDict = 2 << 20

// parentChunks maps a file's previous version (its content in the parent
// snapshot) to byte offsets, for choosing the bases of new chunks. It is
// used by the goroutine that chunks the file and by the save workers.
type parentChunks struct {
	ix  *index.Index
	ids []repo.ID

	once  sync.Once
	ok    bool
	ends  []int64     // end offset of each chunk in the old version
	bases [][]repo.ID // what stands for each chunk as a base: itself, or a delta's bases
	sizes map[repo.ID]int64
	pos   map[repo.ID]int // index of each chunk that occurs once

	mu       sync.Mutex
	anchored bool        // the parent is loaded: unchanged chunks become anchors at once
	seen     []seenChunk // unchanged chunks seen before
	anchors  []anchor    // sorted by newOff
}

type anchor struct{ newOff, oldOff int64 }

type seenChunk struct {
	newOff int64
	id     repo.ID
}

func newParentChunks(ix *index.Index, ids []repo.ID) *parentChunks {
	return &parentChunks{ix: ix, ids: ids}
}

// load looks up the parent's chunks once, when the first new chunk needs
// bases (an unchanged file needs none). A chunk the index no longer knows
// in a live pack ends the mapping: without its size the offsets after it
// are unknown.
func (pc *parentChunks) load() bool {
	pc.once.Do(func() {
		pc.ends = make([]int64, len(pc.ids))
		pc.bases = make([][]repo.ID, len(pc.ids))
		pc.sizes = map[repo.ID]int64{}
		pc.pos = make(map[repo.ID]int, len(pc.ids))
		var off int64
		for i, id := range pc.ids {
			loc, ok := pc.ix.Lookup(repo.DataBlob, id)
			if !ok || loc.Status != index.PackLive {
				return
			}
			off += int64(loc.Entry.RawLength)
			pc.ends[i] = off
			pc.sizes[id] = int64(loc.Entry.RawLength)
			if loc.Entry.Delta() {
				// A delta cannot be a base; its own bases stand in for it.
				for _, b := range loc.Entry.Bases {
					if bl, ok := pc.ix.Lookup(repo.DataBlob, b); ok {
						pc.sizes[b] = int64(bl.Entry.RawLength)
					}
				}
				pc.bases[i] = loc.Entry.Bases
			} else {
				pc.bases[i] = []repo.ID{id}
			}
			if _, dup := pc.pos[id]; dup {
				pc.pos[id] = -1 // occurs twice: no anchor
			} else {
				pc.pos[id] = i
			}
		}
		pc.ok = true
	})
	return pc.ok
}

// unchanged records that the chunk at newOff is one of the parent's. Until
// a new chunk needs bases, it only remembers the last maxSeen of them.
func (pc *parentChunks) unchanged(newOff int64, id repo.ID) {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	if pc.anchored {
		pc.anchorLocked(newOff, id)
		return
	}
	if len(pc.seen) == maxSeen {
		pc.seen = append(pc.seen[:0], pc.seen[maxSeen/2:]...)
	}
	pc.seen = append(pc.seen, seenChunk{newOff, id})
}

// maxSeen bounds the unchanged chunks remembered before the parent is
// loaded: chunks are saved nearly in order, so a new chunk needs only
// the recent ones.
const maxSeen = 1024

// anchorLocked adds the anchor of an unchanged chunk: its first byte is
// the parent chunk's.
func (pc *parentChunks) anchorLocked(newOff int64, id repo.ID) {
	pc.anchorAtLocked(newOff, id, 0)
}

// anchorAtLocked adds the anchor of byte at of the parent's chunk id, found
// at newOff in the new version, unless id occurs in the parent other than
// once.
func (pc *parentChunks) anchorAtLocked(newOff int64, id repo.ID, at int) {
	i, ok := pc.pos[id]
	if !ok || i < 0 {
		return
	}
	pc.addAnchorLocked(anchor{newOff, pc.ends[i] - pc.sizes[id] + int64(at)})
}

// located records that the new version's byte at newOff is byte baseAt of
// base, one of the parent's chunks (index.DeltaLocator): an anchor where
// no chunk is unchanged. A dump whose rows were updated all over (one in
// a hundred: an UPDATE moves the row to the table's end) changes every
// chunk, and the offsets drift by the rows moved away; without anchors
// the bases were taken at the new offset, further from the old bytes with
// every megabyte, and beyond a few MB found none of them: the second dump
// stored 80 % of the first again (found by an exploratory test). A base
// that stands in for a chunk that was a delta has no offset in the old
// version known here, and is passed over.
func (pc *parentChunks) located(newOff int64, base repo.ID, baseAt int) {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	pc.anchorAtLocked(newOff, base, baseAt)
}

// addAnchorLocked adds an anchor, unless the anchor before it says the
// same.
func (pc *parentChunks) addAnchorLocked(a anchor) {
	newOff := a.newOff
	j := sort.Search(len(pc.anchors), func(j int) bool { return pc.anchors[j].newOff >= newOff })
	if j > 0 && pc.anchors[j-1].oldOff-pc.anchors[j-1].newOff == a.oldOff-a.newOff {
		return
	}
	if j < len(pc.anchors) && pc.anchors[j].newOff == newOff {
		return
	}
	pc.anchors = append(pc.anchors, anchor{})
	copy(pc.anchors[j+1:], pc.anchors[j:])
	pc.anchors[j] = a
}

// basesFor returns the bases for a new chunk of n bytes at offset off: the
// parent's chunks around the same bytes of the old version, nearest first
// when they do not all fit in maxDeltaDict and repo.MaxBases, in file
// order; and whether any of them stands in for a chunk of the parent that
// is itself a delta (index.Writer.SaveDelta then asks more of the delta).
func (pc *parentChunks) basesFor(off int64, n int) ([]repo.ID, bool) {
	if !pc.load() || len(pc.ids) == 0 {
		return nil, false
	}
	var shift int64
	pc.mu.Lock()
	if !pc.anchored {
		pc.anchored = true
		for _, c := range pc.seen {
			pc.anchorLocked(c.newOff, c.id)
		}
		pc.seen = nil
	}
	if j := sort.Search(len(pc.anchors), func(j int) bool { return pc.anchors[j].newOff > off }); j > 0 {
		a := pc.anchors[j-1]
		shift = a.oldOff - a.newOff
	}
	pc.mu.Unlock()
	lo, hi := off+shift, off+shift+int64(n)
	first := sort.Search(len(pc.ends), func(i int) bool { return pc.ends[i] > lo })
	last := first // one past the last chunk overlapping [lo, hi)
	for last < len(pc.ends) && pc.ends[last]-pc.sizes[pc.ids[last]] < hi {
		last++
	}
	if first >= last {
		return nil, false
	}
	// Take chunks from the one at the new chunk's start outwards while
	// they fit.
	mid := sort.Search(len(pc.ends), func(i int) bool { return pc.ends[i] > off+shift })
	mid = min(max(mid, first), last-1)
	from, to := mid, mid+1
	var out []repo.ID
	var size int64
	take := func(i int) bool {
		var add []repo.ID
		var s int64
		for _, b := range pc.bases[i] {
			if !containsID(out, b) && !containsID(add, b) {
				add = append(add, b)
				s += pc.sizes[b]
			}
		}
		if len(out)+len(add) > repo.MaxBases || size+s > maxDeltaDict {
			return false
		}
		out, size = append(out, add...), size+s
		return true
	}
	if !take(mid) {
		return nil, false
	}
	for from > first || to < last {
		grew := false
		if to < last && take(to) {
			to++
			grew = true
		}
		if from > first && take(from-1) {
			from--
			grew = true
		}
		if !grew {
			break
		}
	}
	// File order: the dictionary then reads like the old version.
	order := map[repo.ID]int{}
	inherited := false
	for i := from; i < to; i++ {
		inherited = inherited || pc.inherited(i)
		for _, b := range pc.bases[i] {
			if _, ok := order[b]; !ok {
				order[b] = i
			}
		}
	}
	sort.SliceStable(out, func(a, b int) bool { return order[out[a]] < order[out[b]] })
	return out, inherited
}

// inherited reports whether the parent's chunk i is a delta: its bases,
// older versions, stand in for it.
func (pc *parentChunks) inherited(i int) bool {
	return len(pc.bases[i]) != 1 || pc.bases[i][0] != pc.ids[i]
}

func containsID(ids []repo.ID, id repo.ID) bool {
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	return false
}
