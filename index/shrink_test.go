package index

import (
	"context"
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/snap-backup/snap/repo"
)

// syntheticPack is a pack entry with n data blobs whose IDs derive from
// the pack number i.
func syntheticPack(i, n int) Pack {
	var id repo.ID
	binary.LittleEndian.PutUint64(id[:], uint64(i)+1)
	p := Pack{ID: id, Size: int64(n) * 100}
	for j := range n {
		var bid repo.ID
		binary.LittleEndian.PutUint64(bid[:], uint64(i)<<32|uint64(j))
		binary.LittleEndian.PutUint64(bid[24:], ^uint64(j)) // spread over the key space
		p.Blobs = append(p.Blobs, repo.BlobEntry{Type: repo.DataBlob, ID: bid, Offset: uint32(j) * 100, Length: 60, RawLength: 32})
	}
	return p
}

func bucketKeys(t *testing.T, ix *Index, name []byte) int {
	t.Helper()
	n := 0
	_ = ix.db.View(func(tx *bolt.Tx) error {
		n = tx.Bucket(name).Stats().KeyN
		return nil
	})
	return n
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// TestSweepAndShrink: the blob entries of packs a later segment dropped
// are removed by the sync that drops them, once they are many (they stayed
// until 1,000 packs were dropped, and the cache grew to four times its
// fresh size; found by an exploratory test), and the next Open rewrites
// the file that the sweep left mostly empty. What stays is found as
// before.
func TestSweepAndShrink(t *testing.T) {
	ix, r, dir := newTestIndex(t)
	ctx := context.Background()
	old, kept := &Segment{}, &Segment{}
	for i := range 40 {
		old.Packs = append(old.Packs, syntheticPack(i, 5000))
	}
	for i := 40; i < 50; i++ {
		kept.Packs = append(kept.Packs, syntheticPack(i, 1000))
	}
	oldID, err := r.SaveObject(ctx, repo.IndexFile, old.Encode())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.SaveObject(ctx, repo.IndexFile, kept.Encode()); err != nil {
		t.Fatal(err)
	}
	if _, err := ix.Sync(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if n := bucketKeys(t, ix, bBlobs); n != 210000 {
		t.Fatalf("%d blob entries, want 210000", n)
	}
	path := filepath.Join(dir, "cache", "index.db")
	full := fileSize(t, path)

	// A prune's segment: the old packs are gone.
	if _, err := r.SaveObject(ctx, repo.IndexFile, (&Segment{Supersedes: []repo.ID{oldID}}).Encode()); err != nil {
		t.Fatal(err)
	}
	if _, err := ix.Sync(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if n := bucketKeys(t, ix, bBlobs); n != 10000 {
		t.Errorf("%d blob entries after the sync that dropped 40 packs, want the 10000 left", n)
	}
	ix.Close()

	var logged []string
	ix, err = Open(ctx, r, filepath.Join(dir, "cache"), Options{Log: func(m string) { logged = append(logged, m) }})
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	if len(logged) > 0 {
		t.Errorf("notices: %q", logged)
	}
	if small := fileSize(t, path); small > full/4 {
		t.Errorf("the cache file is %d bytes after the sweep, %d before: not made smaller", small, full)
	}
	if _, err := os.Stat(path + compactSuffix); err == nil {
		t.Error("the copy's file was left behind")
	}
	for i, want := range map[int]bool{3: false, 45: true} {
		p := syntheticPack(i, 1000)
		for _, e := range p.Blobs[:10] {
			loc, ok := ix.Lookup(repo.DataBlob, e.ID)
			if ok != want || ok && (loc.Pack != p.ID || loc.Entry.Offset != e.Offset) {
				t.Fatalf("pack %d blob %s: found %v (%+v), want %v", i, e.ID, ok, loc, want)
			}
		}
	}
	// It goes on working: a new segment is added and found.
	added := &Segment{Packs: []Pack{syntheticPack(60, 10)}}
	if _, err := r.SaveObject(ctx, repo.IndexFile, added.Encode()); err != nil {
		t.Fatal(err)
	}
	if _, err := ix.Sync(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if !ix.Has(repo.DataBlob, added.Packs[0].Blobs[3].ID) {
		t.Error("a blob added after the shrink is not found")
	}
}

// TestOpenAfterShrink: a process that waited for the cache's lock while
// another shrank it (renaming a new file over the one it had opened) opens
// the new file, not the old one, whose writes would be lost.
func TestOpenAfterShrink(t *testing.T) {
	ix, _, dir := newTestIndex(t)
	path := filepath.Join(dir, "cache", "index.db")
	opened := make(chan *bolt.DB)
	go func() {
		db, err := openCache(path, 10*time.Second)
		if err != nil {
			t.Error(err)
		}
		opened <- db
	}()
	time.Sleep(200 * time.Millisecond) // the goroutine waits for the lock
	if err := ix.shrink(); err != nil {
		t.Fatal(err)
	}
	ix.Close()
	db := <-opened
	if db == nil {
		return
	}
	if err := db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bMeta).Put([]byte("test"), []byte("x")) }); err != nil {
		t.Fatal(err)
	}
	db.Close()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	_ = db.View(func(tx *bolt.Tx) error {
		if tx.Bucket(bMeta).Get([]byte("test")) == nil {
			t.Error("the waiting process wrote to the file the shrink replaced")
		}
		return nil
	})
}

// TestOpenRemovesLeftCopy: the copy a shrink killed halfway left is removed
// by the next Open, which holds the cache's lock.
func TestOpenRemovesLeftCopy(t *testing.T) {
	ix, r, dir := newTestIndex(t)
	ix.Close()
	path := filepath.Join(dir, "cache", "index.db")
	if err := os.WriteFile(path+compactSuffix, []byte("left by kill -9"), 0o600); err != nil {
		t.Fatal(err)
	}
	ix, err := Open(context.Background(), r, filepath.Join(dir, "cache"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	if _, err := os.Stat(path + compactSuffix); err == nil {
		t.Error("the copy a killed shrink left is still there")
	}
}
