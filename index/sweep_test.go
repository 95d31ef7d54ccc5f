package index

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/snap-backup/snap/repo"
)

// TestSweepFetchDirs: a fetch directory of a process that is gone, or one
// unchanged for a week, is removed when the next fetcher starts; those of
// live processes (this one's, init's) and recent ones of unknown owner
// stay.
func TestSweepFetchDirs(t *testing.T) {
	dir := t.TempDir()
	mk := func(name string, age time.Duration) string {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Join(p, "sub"), 0o700); err != nil {
			t.Fatal(err)
		}
		if age > 0 {
			old := time.Now().Add(-age)
			if err := os.Chtimes(p, old, old); err != nil {
				t.Fatal(err)
			}
		}
		return p
	}
	gone := []string{mk("fetch-999999999-a", 2*time.Hour), mk("fetch-b", 8*24*time.Hour)}
	// A gone process's directory changed within the hour may be another
	// PID namespace's live one.
	kept := []string{mk(fmt.Sprintf("fetch-%d-c", os.Getpid()), 2*time.Hour), mk("fetch-1-d", 2*time.Hour), mk("fetch-e", time.Hour), mk("other", 30*24*time.Hour),
		mk("fetch-999999998-f", 0)}
	sweepFetchDirs(dir)
	for _, p := range gone {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("%s is still there", filepath.Base(p))
		}
	}
	for _, p := range kept {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s was removed", filepath.Base(p))
		}
	}
}

// TestWorthFetching: a pack is fetched whole for a quarter of its bytes,
// or for so many reads that their requests cost more than the bytes not
// needed; a few small reads of a large pack go by range.
func TestWorthFetching(t *testing.T) {
	const mib = 1 << 20
	for _, c := range []struct {
		size, need int64
		reads      int
		want       bool
	}{
		{16 * mib, 4 * mib, 1, true},    // a quarter
		{16 * mib, 1 * mib, 5, false},   // a few blobs
		{16 * mib, 2 * mib, 244, true},  // a prune's merged pack, restored blob by blob (the exploratory test's)
		{16 * mib, 1 << 20, 30, false},  // 29 more requests cost less than the 15 MiB not needed
		{16 * mib, 1 << 20, 31, true},   // 30 cost as much
		{100 * mib, 1 << 20, 50, false}, // a larger pack needs more
	} {
		if got := worthFetching(c.size, c.need, c.reads); got != c.want {
			t.Errorf("worthFetching(%d, %d, %d) = %v, want %v", c.size, c.need, c.reads, got, c.want)
		}
	}
}

// TestBlobMapTrim: pairs of blobs the repository no longer holds are
// removed, and the file is written anew, smaller (it only grew: found by
// an exploratory test); the pairs kept are still there.
func TestBlobMapTrim(t *testing.T) {
	path := filepath.Join(t.TempDir(), "copy.db")
	m, err := OpenBlobMap(path)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	pairs := map[repo.ID]repo.ID{}
	for i := range 20000 {
		var k, v repo.ID
		binary.BigEndian.PutUint32(k[:], uint32(i))
		binary.BigEndian.PutUint32(v[:], uint32(i)+1)
		pairs[k] = v
	}
	if err := m.Put(pairs); err != nil {
		t.Fatal(err)
	}
	before, _ := os.Stat(path)
	removed, err := m.Trim(func(id repo.ID) bool { return binary.BigEndian.Uint32(id[:])%10 == 0 })
	if err != nil || removed != 18000 || m.Len() != 2000 {
		t.Fatalf("trim: removed %d, %v; %d left", removed, err, m.Len())
	}
	after, _ := os.Stat(path)
	if after.Size() >= before.Size()/2 {
		t.Errorf("file %d bytes after the trim, %d before", after.Size(), before.Size())
	}
	var k repo.ID
	binary.BigEndian.PutUint32(k[:], 10)
	if v, ok := m.Get(k); !ok || binary.BigEndian.Uint32(v[:]) != 11 {
		t.Errorf("a kept pair: %v %v", v, ok)
	}
	binary.BigEndian.PutUint32(k[:], 11)
	if _, ok := m.Get(k); ok {
		t.Errorf("a removed pair is still there")
	}
}
