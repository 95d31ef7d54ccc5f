package index

import (
	"context"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/snap-backup/snap/repo"
)

// TestConfirmJudgesEachBlob: a blob whose cache entry is damaged reads as
// cache damage; another blob whose pack is damaged in the repository is
// repository damage still, after that verdict (one verdict for the whole
// run called it cache damage, and a writer then reused the damaged blob;
// found by a review). Both keep their kind for what decides by it.
func TestConfirmJudgesEachBlob(t *testing.T) {
	ix, _, dir := newTestIndex(t)
	ctx := context.Background()
	w := NewWriter(ix, WriterOptions{})
	x, y := randomBlob(1, 5<<20), randomBlob(2, 5<<20)
	xid, yid := blobID(ix, x), blobID(ix, y)
	if _, err := w.Save(ctx, repo.DataBlob, xid, x); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	w = NewWriter(ix, WriterOptions{})
	if _, err := w.Save(ctx, repo.DataBlob, yid, y); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	xloc, _ := ix.Lookup(repo.DataBlob, xid)
	yloc, _ := ix.Lookup(repo.DataBlob, yid)
	if xloc.Pack == yloc.Pack {
		t.Fatal("one pack")
	}
	// X: its offset in the cache moved. Y: a byte of its pack flipped.
	if err := ix.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bBlobs)
		c := b.Cursor()
		for k, v := c.Seek(xid[:]); k != nil && repo.ID(k[:32]) == xid; k, v = c.Next() {
			nv := append([]byte(nil), v...)
			binary.BigEndian.PutUint32(nv[1:], binary.BigEndian.Uint32(nv[1:])+16)
			return b.Put(append([]byte(nil), k...), nv)
		}
		return errors.New("x not found")
	}); err != nil {
		t.Fatal(err)
	}
	ypath := filepath.Join(dir, "repo", "data", yloc.Pack.String()[:2], yloc.Pack.String())
	data, err := os.ReadFile(ypath)
	if err != nil {
		t.Fatal(err)
	}
	data[int(yloc.Entry.Offset)+100] ^= 1
	if err := os.Chmod(ypath, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(ypath, data, 0o644); err != nil {
		t.Fatal(err)
	}

	_, err = ix.LoadBlob(ctx, repo.DataBlob, xid, nil)
	if !errors.Is(err, ErrCacheDamaged) || !isDamage(err) {
		t.Errorf("x, its cache entry damaged: %v", err)
	}
	_, err = ix.LoadBlob(ctx, repo.DataBlob, yid, nil)
	if errors.Is(err, ErrCacheDamaged) || !isDamage(err) {
		t.Errorf("y, its pack damaged: %v", err)
	}
	if NewWriter(ix, WriterOptions{}).Reusable(ctx, repo.DataBlob, yid) {
		t.Errorf("y, damaged, taken as reusable")
	}
	if _, err := os.Stat(filepath.Join(dir, "cache", damagedMarker)); err != nil {
		t.Errorf("the cache is not marked: %v", err)
	}
}
