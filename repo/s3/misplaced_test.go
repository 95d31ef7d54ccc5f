package s3

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/snap-backup/snap/repo"
	"github.com/snap-backup/snap/repo/s3/s3test"
)

// TestListMisplacedPack: a pack object under another data/xx/ prefix than
// its name's fails the listing, naming it and where it belongs, or as a
// second copy; left out, 'repair index --from-packs' dropped its blobs
// (found by an exploratory test).
func TestListMisplacedPack(t *testing.T) {
	srv := s3test.Start(t)
	srv.SetEnv(t)
	ctx := context.Background()
	cfg, err := ParseLocation(srv.Location("misplaced", "r"+time.Now().Format("150405.000000")), func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	b, err := Create(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	data := []byte("pack bytes")
	h := repo.Handle{Type: repo.PackFile, Name: repo.Hash(data).String()}
	if err := b.Save(ctx, h, data); err != nil {
		t.Fatal(err)
	}
	right, _ := b.key(h)
	other := "00"
	if h.Name[:2] == other {
		other = "01"
	}
	wrong := strings.Replace(right, "/data/"+h.Name[:2]+"/", "/data/"+other+"/", 1)
	if _, err := b.client.PutObject(ctx, cfg.Bucket, wrong, bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	list := func() error { return b.List(ctx, repo.PackFile, func(string, int64) error { return nil }) }
	if err := list(); err == nil || !strings.Contains(err.Error(), wrong+" in bucket misplaced is a second copy of "+right) {
		t.Errorf("listing with a second copy: %v", err)
	}
	if err := b.client.RemoveObject(ctx, cfg.Bucket, right, minio.RemoveObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := list(); err == nil || !strings.Contains(err.Error(), "aws s3 mv s3://misplaced/"+wrong+" s3://misplaced/"+right) {
		t.Errorf("listing with a misplaced pack: %v", err)
	}
}
