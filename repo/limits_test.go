package repo_test

import (
	"strings"
	"testing"

	"github.com/snap-backup/snap/chunk"
	"github.com/snap-backup/snap/repo"
)

// TestDataBlobLimit: an index entry of a data blob larger than the largest
// chunk a repository may configure is refused (crafted blobs of 256 MiB,
// which compress to almost nothing, took a restore to gigabytes; found by
// an exploratory test); a tree blob may be larger.
func TestDataBlobLimit(t *testing.T) {
	if chunk.MaxChunkSize != repo.MaxDataBlobSize {
		t.Fatalf("chunk.MaxChunkSize %d, repo.MaxDataBlobSize %d: no chunk may exceed what readers accept", chunk.MaxChunkSize, repo.MaxDataBlobSize)
	}
	for _, c := range []struct {
		typ  repo.BlobType
		raw  uint32
		fail bool
	}{
		{repo.DataBlob, repo.MaxDataBlobSize, false},
		{repo.DataBlob, repo.MaxDataBlobSize + 1, true},
		{repo.TreeBlob, repo.MaxDataBlobSize + 1, false},
	} {
		e := repo.BlobEntry{Type: c.typ, Compressed: true, Length: 1000, RawLength: c.raw}
		_, _, err := repo.DecodeBlobEntry(e.AppendBinary(nil))
		if (err != nil) != c.fail || c.fail && !strings.Contains(err.Error(), "the largest chunk") {
			t.Errorf("%v blob of %d bytes: %v", c.typ, c.raw, err)
		}
	}
}
