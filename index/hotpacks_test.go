package index

import (
	"testing"

	"github.com/snap-backup/snap/repo"
)

// TestHotPacksDue: a pack is fetched whole once its ranged reads cost a
// quarter of its size in requests, and no fewer than hotPackReads; a pack
// too large, or dropped after a failed check, never.
func TestHotPacksDue(t *testing.T) {
	h := newHotPacks()
	firstDue := func(pack repo.ID, size int64) int {
		for n := 1; n <= 100; n++ {
			if h.due(pack, size) {
				return n
			}
		}
		return 0
	}
	for _, c := range []struct {
		size int64
		want int
	}{{1 << 20, hotPackReads}, {4 << 20, hotPackReads}, {16 << 20, 8}, {64 << 20, 32}, {hotPackMax + 1, 0}} {
		pack := repo.Hash([]byte{byte(c.size >> 20), 1})
		if got := firstDue(pack, c.size); got != c.want {
			t.Errorf("pack of %d bytes: due at read %d, want %d", c.size, got, c.want)
		}
	}
	pack := repo.Hash([]byte("dropped"))
	h.drop(pack)
	if got := firstDue(pack, 1<<20); got != 0 {
		t.Errorf("dropped pack: due at read %d", got)
	}
}
