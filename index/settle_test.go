package index

import (
	"strings"
	"testing"

	"github.com/snap-backup/snap/repo"
)

// TestSettleMissingDeltaCopyOfBase: a base (read for a full copy) whose
// full copy is damaged and whose only other copy, a delta, was in a
// missing pack: the delta could never have served as a base, so the
// missing pack is not charged with a blob snapshots needed (found by a
// review).
func TestSettleMissingDeltaCopyOfBase(t *testing.T) {
	var p, m, b, x repo.ID
	p[0], m[0], b[0], x[0] = 1, 2, 3, 4
	full := repo.BlobEntry{Type: repo.DataBlob, ID: b, Length: 100, RawLength: 68}
	delta := repo.BlobEntry{Type: repo.DataBlob, ID: b, Compressed: true, Length: 50, RawLength: 68, Bases: []repo.ID{x}}
	ref := BlobRef{repo.DataBlob, b}
	c := &Checker{
		disk:    map[repo.ID]int64{p: 1000},
		packs:   map[repo.ID]Pack{p: {ID: p, Blobs: []repo.BlobEntry{full}}, m: {ID: m, Blobs: []repo.BlobEntry{delta}}},
		locs:    map[BlobRef]uint64{ref: 0},
		more:    map[BlobRef][]uint64{ref: {1 << 32}},
		packIDs: []repo.ID{p, m},
		damaged: map[packBlob]bool{{p, ref}: true},
		gone:    map[repo.ID]bool{},
		needed:  map[repo.ID]map[BlobRef]bool{},
	}
	if err := c.available(repo.DataBlob, b, true); err == nil {
		t.Fatal("a base with its full copy damaged is available")
	}
	c.problems = []Problem{{Kind: "missing_pack", pack: m, settle: true}}
	c.SettleMissing(0)
	if len(c.needed[m]) > 0 || strings.Contains(c.problems[0].Repair, "lost with it") {
		t.Errorf("the missing pack is charged with a delta copy that could not serve as a base: %v, %s", c.needed[m], c.problems[0].Repair)
	}
}
