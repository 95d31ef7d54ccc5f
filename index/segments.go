package index

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"slices"

	"github.com/snap-backup/snap/repo"
)

// BlobRef names a blob by type and ID.
type BlobRef struct {
	Type repo.BlobType
	ID   repo.ID
}

// BlobSet is a set of blobs.
type BlobSet map[BlobRef]struct{}

// Add puts a blob in the set and reports whether it was new.
func (s BlobSet) Add(t repo.BlobType, id repo.ID) bool {
	k := BlobRef{t, id}
	if _, ok := s[k]; ok {
		return false
	}
	s[k] = struct{}{}
	return true
}

// SegmentSet is the repository's index as the segment files in index/ say,
// read directly (not through the cache). Prune and check decide from it.
type SegmentSet struct {
	Segments map[repo.ID]*Segment
	// Unreadable lists segments that could not be read or decoded.
	Unreadable map[repo.ID]error
}

// ReadSegments reads and decodes every segment in the repository. A
// segment that vanishes while it is read is skipped; one that cannot be
// read or decoded is recorded in Unreadable. A store that does not answer
// (retried, then given up) or a segment this user may not read ends it
// with that one error, as it ends a sync: neither is damage, and each
// further segment would cost another round of retries (prune, check and
// repair spent a minute a segment on a server gone, and called every one
// unreadable, with advice to repair; found by an exploratory test).
func ReadSegments(ctx context.Context, r *repo.Repository) (*SegmentSet, error) {
	ids, err := r.ListIDs(ctx, repo.IndexFile)
	if err != nil {
		return nil, fmt.Errorf("list index: %w", err)
	}
	ss := &SegmentSet{Segments: map[repo.ID]*Segment{}, Unreadable: map[repo.ID]error{}}
	for _, id := range ids {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		plain, err := r.LoadObject(ctx, repo.IndexFile, id)
		if err != nil {
			if errors.Is(err, repo.ErrNotFound) {
				continue
			}
			if errors.Is(err, repo.ErrTransient) || errors.Is(err, fs.ErrPermission) {
				return nil, fmt.Errorf("read index segment %s: %w", id, err)
			}
			ss.Unreadable[id] = err
			continue
		}
		seg, err := DecodeSegment(plain)
		if err != nil {
			ss.Unreadable[id] = &repo.CorruptError{Object: "index/" + id.String(), Reason: err.Error()}
			continue
		}
		ss.Segments[id] = seg
	}
	return ss, nil
}

// SupersededBy maps each existing segment that another existing segment
// supersedes to the segments superseding it.
func (ss *SegmentSet) SupersededBy() map[repo.ID][]repo.ID {
	out := map[repo.ID][]repo.ID{}
	for id, seg := range ss.Segments {
		for _, old := range seg.Supersedes {
			if old == id {
				continue
			}
			if _, ok := ss.Segments[old]; ok {
				out[old] = append(out[old], id)
			}
		}
	}
	return out
}

// Effective returns the segments no existing segment supersedes, sorted:
// those every cache reads.
func (ss *SegmentSet) Effective() []repo.ID {
	sup := ss.SupersededBy()
	var out []repo.ID
	for id := range ss.Segments {
		if _, ok := sup[id]; !ok {
			out = append(out, id)
		}
	}
	slices.SortFunc(out, compareIDs)
	return out
}

// closure returns the existing segments that the given ones supersede,
// directly or through other existing segments.
func (ss *SegmentSet) closure(ids []repo.ID) []repo.ID {
	seen := map[repo.ID]bool{}
	var out []repo.ID
	var visit func(id repo.ID)
	visit = func(id repo.ID) {
		seg, ok := ss.Segments[id]
		if !ok {
			return
		}
		for _, old := range seg.Supersedes {
			if _, exists := ss.Segments[old]; !exists || seen[old] {
				continue
			}
			seen[old] = true
			out = append(out, old)
			visit(old)
		}
	}
	for _, id := range ids {
		seen[id] = true
	}
	for _, id := range ids {
		visit(id)
	}
	return out
}

// deletionOrder returns the superseded segments in an order that is safe to
// delete them in: a segment comes after every segment it supersedes, so at
// no moment does a segment that was superseded lose all its superseders
// while it still exists.
func (ss *SegmentSet) deletionOrder() []repo.ID {
	sup := ss.SupersededBy()
	height := map[repo.ID]int{}
	var h func(id repo.ID, depth int) int
	h = func(id repo.ID, depth int) int {
		if v, ok := height[id]; ok {
			return v
		}
		if depth > len(ss.Segments) { // a cycle in hostile data
			return 0
		}
		best := 0
		for _, old := range ss.Segments[id].Supersedes {
			if _, ok := ss.Segments[old]; ok && old != id {
				best = max(best, h(old, depth+1)+1)
			}
		}
		height[id] = best
		return best
	}
	var out []repo.ID
	for id := range sup {
		h(id, 0)
		out = append(out, id)
	}
	slices.SortFunc(out, func(a, b repo.ID) int {
		if height[a] != height[b] {
			return height[a] - height[b]
		}
		return compareIDs(a, b)
	})
	return out
}

func compareIDs(a, b repo.ID) int {
	for i := range a {
		if a[i] != b[i] {
			return int(a[i]) - int(b[i])
		}
	}
	return 0
}
