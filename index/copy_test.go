package index

import (
	"context"
	"strings"
	"testing"

	"github.com/snap-backup/snap/repo"
)

// TestPruneInFlightIsNotACopy: a cache that missed two prunes syncs while
// a third is between writing its segment and deleting the one it
// replaces. The listing shows a segment the cache holds as replaced, but
// also the segment that replaced it: a prune at work, not another copy of
// the repository, and the cache is not rebuilt. (Found in review.)
func TestPruneInFlightIsNotACopy(t *testing.T) {
	ix, r, _, lbe := newTestIndexOn(t, nil)
	ctx := context.Background()
	save := func(s *Segment) repo.ID {
		t.Helper()
		id, err := r.SaveObject(ctx, repo.IndexFile, s.Encode())
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	remove := func(id repo.ID) {
		t.Helper()
		if err := lbe.Remove(ctx, repo.Handle{Type: repo.IndexFile, Name: id.String()}); err != nil {
			t.Fatal(err)
		}
	}
	seg := bigSegment(7, 32)
	x := save(seg)
	if _, err := ix.Sync(ctx, nil); err != nil {
		t.Fatal(err)
	}
	n2 := save(&Segment{Supersedes: []repo.ID{x}, Packs: seg.Packs}) // two prunes the cache misses
	remove(x)
	n3 := save(&Segment{Supersedes: []repo.ID{n2}, Packs: seg.Packs})
	remove(n2)
	save(&Segment{Supersedes: []repo.ID{n3}, Packs: seg.Packs}) // a third, n3 not deleted yet
	var logged []string
	if _, err := ix.Sync(ctx, func(m string) { logged = append(logged, m) }); err != nil {
		t.Fatal(err)
	}
	for _, m := range logged {
		if strings.Contains(m, "does not match this repository") {
			t.Errorf("a prune at work taken for another copy: %q", m)
		}
	}
	if countFound(ix, seg) == 0 {
		t.Error("the segments' blobs are not found after the sync")
	}
}
