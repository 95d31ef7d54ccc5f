package snapshot

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/snap-backup/snap/repo"
)

// TestDecodeRefusesCostlyDocuments: a document within the size limit
// whose values would take far more memory decoded is refused: 16 MiB of
// "sources":[{},{},…] took 1.5 GB (found by a hostile-repository test). A
// document of the most paths a create writes is decoded.
func TestDecodeRefusesCostlyDocuments(t *testing.T) {
	tree := strings.Repeat("ab", 32)
	for name, member := range map[string]string{
		"sources": `"sources":[` + strings.Repeat(`{},`, 5<<20) + `{}]`,
		"tags":    `"tags":[` + strings.Repeat(`"a",`, 3<<20) + `"a"]`,
		"unknown": `"future":"` + strings.Repeat("<", 8<<20) + `"`,
		"members": strings.TrimSuffix(strings.Repeat(`"k":0,`, 200000), ","),
	} {
		doc := `{"time":"2026-12-07T00:00:00Z","host":"h","tree":"` + tree + `",` + member + `}`
		if _, err := Decode([]byte(doc)); err == nil || !strings.Contains(err.Error(), "more than any snap writes") {
			t.Errorf("%s: %v", name, err)
		}
	}
	paths := make([]string, 300000)
	for i := range paths {
		paths[i] = fmt.Sprintf("/srv/data/customers/%08d/uploads/2026", i)
	}
	b, err := json.Marshal(paths)
	if err != nil {
		t.Fatal(err)
	}
	doc := `{"time":"2026-12-07T00:00:00Z","host":"h","tree":"` + tree + `","paths":` + string(b) + `}`
	if sn, err := Decode([]byte(doc)); err != nil || len(sn.Paths) != len(paths) {
		t.Errorf("a document of %d paths (%d bytes): %v", len(paths), len(doc), err)
	}
}

// TestSaveRefusesWhatDecodeRefuses: a document decode would refuse is not
// written: 800,000 short paths were saved and then unreadable (found by a
// review).
func TestSaveRefusesWhatDecodeRefuses(t *testing.T) {
	sn := &Snapshot{Tree: repo.ID{1}, Time: time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC), Host: "h"}
	for i := range 1000000 {
		sn.Paths = append(sn.Paths, fmt.Sprintf("/%d", i))
	}
	err := save(context.Background(), sn, func(context.Context, repo.FileType, []byte) (repo.ID, error) {
		t.Fatal("saved")
		return repo.ID{}, nil
	})
	if err == nil || !strings.Contains(err.Error(), "give fewer paths") {
		t.Errorf("save of a million short paths: %v", err)
	}
}

// TestDecodedCostSkipsStrings: the '{', ':' and ',' inside strings (paths
// with colons, a tag "a,b") are no values.
func TestDecodedCostSkipsStrings(t *testing.T) {
	plain := []byte(`{"paths":["/srv/2026-12-07T03:00:00,{x}","/a\"{:,"]}`)
	if got, want := decodedCost(plain), int64(len(plain))+200+200+32+32; got != want {
		t.Errorf("cost %d, want %d", got, want)
	}
}

// TestPathsFit: a create checks its paths before it reads anything: 9,500
// long paths were read whole and then failed at the object limit (found
// by a re-test).
func TestPathsFit(t *testing.T) {
	long := make([]string, 9000)
	for i := range long {
		long[i] = fmt.Sprintf("/srv/%04d/%s", i, strings.Repeat("d", 2000))
	}
	if err := PathsFit(long); err == nil || !strings.Contains(err.Error(), "give fewer paths") {
		t.Errorf("9,000 paths of 2 KB: %v", err)
	}
	if err := PathsFit(long[:1000]); err != nil {
		t.Errorf("1,000 paths of 2 KB: %v", err)
	}
}
