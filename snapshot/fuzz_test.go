package snapshot

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/snap-backup/snap/repo"
	"github.com/snap-backup/snap/sources"
)

func seedTrees() []*Tree {
	return []*Tree{
		{},
		{Nodes: []Node{
			{Meta: sources.Meta{Name: "a", Type: sources.TypeFile, Mode: 0o4755, UID: 1000, GID: 100, User: "u", Group: "g", Size: 3,
				MTime: 1700000000123456789, ATime: -5, CTime: 1, Inode: 99, Device: 2049, Links: 2,
				Xattrs: []sources.Xattr{{Name: "user.x", Value: []byte{0, 1, 2}}}}, Content: []repo.ID{{1}, {2}}},
			{Meta: sources.Meta{Name: "b", Type: sources.TypeDir, Mode: 0o1777}, Subtree: repo.ID{3}},
			{Meta: sources.Meta{Name: "c\xff\xfe", Type: sources.TypeSymlink, LinkTarget: "../../etc/passwd", Size: 16}},
			{Meta: sources.Meta{Name: "d", Type: sources.TypeCharDev, Rdev: 0x103, Mode: 0o666}},
			{Meta: sources.Meta{Name: "e", Type: sources.TypeFIFO, Mode: 0o600}},
			{Meta: sources.Meta{Name: "f", Type: sources.TypeFile}},
			{Meta: sources.Meta{Name: "z", Type: sources.TypeSocket}},
			{Meta: sources.Meta{Name: "日本", Type: sources.TypeDev, Rdev: 0x801}},
		}},
	}
}

func TestTreeRoundTrip(t *testing.T) {
	for i, tr := range seedTrees() {
		got, err := DecodeTree(tr.Encode())
		if err != nil {
			t.Fatalf("tree %d: %v", i, err)
		}
		if len(tr.Nodes) == 0 {
			tr.Nodes = []Node{}
		}
		if !reflect.DeepEqual(got, tr) {
			t.Fatalf("tree %d does not round-trip:\n%+v\n%+v", i, got, tr)
		}
	}
}

// TestTreeRejectsHostileNames checks that DecodeTree refuses every name
// that could leave the directory or confuse the restorer, and orderings
// that break the binary search.
func TestTreeRejectsHostileNames(t *testing.T) {
	file := func(name string) Node { return Node{Meta: sources.Meta{Name: name, Type: sources.TypeFile}} }
	for name, nodes := range map[string][]Node{
		"dotdot":    {file("../x")},
		"parent":    {file("..")},
		"dot":       {file(".")},
		"absolute":  {file("/etc/x")},
		"slash":     {file("a/b")},
		"empty":     {file("")},
		"nul":       {file("a\x00b")},
		"duplicate": {file("a"), file("a")},
		"unsorted":  {file("b"), file("a")},
		"bad mode":  {{Meta: sources.Meta{Name: "a", Type: sources.TypeFile, Mode: 0o170000}}},
		"bad type":  {{Meta: sources.Meta{Name: "a", Type: 99}}},
		"type zero": {{Meta: sources.Meta{Name: "a"}}},
		// Extended attribute names Linux cannot hold: check passed them
		// and restore failed to set them.
		"xattr nul":   {{Meta: sources.Meta{Name: "a", Type: sources.TypeFile, Xattrs: []sources.Xattr{{Name: "user.a\x00b"}}}}},
		"xattr empty": {{Meta: sources.Meta{Name: "a", Type: sources.TypeFile, Xattrs: []sources.Xattr{{Name: ""}}}}},
		"xattr long":  {{Meta: sources.Meta{Name: "a", Type: sources.TypeFile, Xattrs: []sources.Xattr{{Name: "user." + strings.Repeat("x", 251)}}}}},
	} {
		if _, err := DecodeTree((&Tree{Nodes: nodes}).Encode()); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func FuzzTree(f *testing.F) {
	for _, tr := range seedTrees() {
		f.Add(tr.Encode())
	}
	f.Add([]byte("SNTR\x01\xff\xff\xff\xff\xff\xff\xff\xff\x7f"))
	f.Fuzz(func(t *testing.T, b []byte) {
		tr, err := DecodeTree(b)
		if err != nil {
			return
		}
		for i, n := range tr.Nodes {
			if !sources.ValidName(n.Name) || (i > 0 && tr.Nodes[i-1].Name >= n.Name) || n.Mode > 0o7777 {
				t.Fatalf("accepted node %d %q (mode %o)", i, n.Name, n.Mode)
			}
			for _, x := range n.Xattrs {
				if x.Name == "" || len(x.Name) > 255 || strings.IndexByte(x.Name, 0) >= 0 {
					t.Fatalf("accepted node %d %q's extended attribute %q", i, n.Name, x.Name)
				}
			}
		}
		// decode(encode(x)) == x. Varints may have been written
		// non-minimally, so compare decoded values, not bytes.
		again, err := DecodeTree(tr.Encode())
		if err != nil {
			t.Fatalf("re-encoded tree does not decode: %v", err)
		}
		if !reflect.DeepEqual(again, tr) {
			t.Fatalf("tree does not round-trip:\n%+v\n%+v", tr, again)
		}
	})
}

func seedSnapshots() []*Snapshot {
	parent := repo.ID{7}
	return []*Snapshot{
		{Time: time.Date(2026, 11, 20, 3, 0, 0, 123, time.UTC), Host: "db1", Tags: []string{}, Paths: []string{"/srv"}, Tree: repo.ID{1}},
		{Time: time.Date(2025, 1, 2, 3, 4, 5, 0, time.FixedZone("x", 3600)), Host: "h", Username: "root", Tags: []string{"a", "b"},
			Paths: []string{"/a", "/b"}, Tree: repo.ID{2}, Parent: &parent, Program: "snap dev",
			Summary: Summary{Files: 3, Dirs: 1, Bytes: 10, ReadBytes: 5, AddedBytes: 4, AddedRaw: 5, AddedBlobs: 1, Errors: 1,
				Start: time.Unix(1700000000, 0).UTC(), End: time.Unix(1700000001, 0).UTC()},
			Sources: []Source{{Path: "/db/pg.sql", Kind: "postgres", URL: "postgres://h/db", Tool: "pg_dump", Version: "16", Size: 10}}},
	}
}

func FuzzSnapshot(f *testing.F) {
	for _, sn := range seedSnapshots() {
		b, err := json.Marshal(sn)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"tree":"0000000000000000000000000000000000000000000000000000000000000000"}`))
	f.Add([]byte(`{"tree":"zz","time":"not a time"}`))
	// Members this snap does not know, kept on a round trip (unknown.go).
	f.Add([]byte(`{"tree":"` + strings.Repeat("ab", 32) + `","future":[1,{"a":null}],"summary":{"files":1,"later":"x"},"sources":[{"path":"/p","kind":"sqlite","size":1,"new":true}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		sn, err := Decode(b)
		if err != nil {
			return
		}
		if sn.Tree.IsZero() {
			t.Fatal("accepted a snapshot without a tree")
		}
		// decode(encode(x)) == x.
		enc, err := json.Marshal(sn)
		if err != nil {
			// Times outside what JSON can carry are refused on save, not here.
			return
		}
		again, err := Decode(enc)
		if err != nil {
			t.Fatalf("re-encoded snapshot does not decode: %v\n%s", err, enc)
		}
		if !reflect.DeepEqual(normTime(again), normTime(sn)) {
			t.Fatalf("snapshot does not round-trip:\n%+v\n%+v", sn, again)
		}
	})
}

// normTime makes times comparable with DeepEqual (the location pointer of
// a parsed time differs between parses), and an empty list of sources
// equal to none (the field is omitted when empty).
func normTime(sn *Snapshot) *Snapshot {
	c := *sn
	if len(c.Sources) == 0 {
		c.Sources = nil
	}
	c.Time = c.Time.UTC()
	c.Summary.Start, c.Summary.End = c.Summary.Start.UTC(), c.Summary.End.UTC()
	return &c
}

// TestDecodeRefusesAbsurdCounts: a summary count no create can write
// (negative, or past an exbibyte) makes the document corrupt: list showed
// "-9223372036854775808 B" and stats' totals overflowed (found by an
// exploratory test with a crafted document).
func TestDecodeRefusesAbsurdCounts(t *testing.T) {
	tree := strings.Repeat("ab", 32)
	for _, summary := range []string{`{"bytes":-1}`, `{"files":-9223372036854775808}`, `{"added_bytes":9223372036854775807}`} {
		if _, err := Decode([]byte(`{"tree":"` + tree + `","summary":` + summary + `}`)); err == nil || !strings.Contains(err.Error(), "out of range") {
			t.Errorf("summary %s: %v, want an error", summary, err)
		}
	}
	if _, err := Decode([]byte(`{"tree":"` + tree + `","summary":{"bytes":1099511627776}}`)); err != nil {
		t.Errorf("a snapshot of a TiB: %v", err)
	}
}
