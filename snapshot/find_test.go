package snapshot

import (
	"context"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"testing"
)

// TestFinderSkipsSharedDirectories: a second snapshot's directories that
// are the same tree at the same path as in the first, and held no match
// there, are not read again; what changed is, and matches are found in
// both.
func TestFinderSkipsSharedDirectories(t *testing.T) {
	p := newPipelineRepo(t)
	src := filepath.Join(p.dir, "src")
	for _, d := range []string{"same/sub", "changing"} {
		if err := os.MkdirAll(filepath.Join(src, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 50 {
		writeFile(t, filepath.Join(src, "same", "sub", string(rune('a'+i%26))+string(rune('a'+i/26))), []byte{byte(i)}, 0o644)
	}
	writeFile(t, filepath.Join(src, "changing", "app.conf"), []byte("v1"), 0o644)
	sn1 := p.create([]string{src}, ArchiveOptions{})
	writeFile(t, filepath.Join(src, "changing", "app.conf"), []byte("version 2"), 0o644)
	sn2 := p.create([]string{src}, ArchiveOptions{})

	visited := map[string]int{}
	f := NewFinder(p.ix, func(np string, n *Node) bool {
		visited[np]++
		return path.Base(np) == "app.conf"
	}, func(string) bool { return true })
	ctx := context.Background()
	for i, sn := range []*Snapshot{sn1, sn2} {
		found, err := f.Find(ctx, sn.Tree)
		if err != nil {
			t.Fatal(err)
		}
		if len(found) != 1 || found[0].Node.Size != []uint64{2, 9}[i] || found[0].Node.Content != nil {
			t.Fatalf("snapshot %d: found %+v", i+1, found)
		}
	}
	shared := filepath.Join(src, "same", "sub", "aa")
	if visited[shared] != 1 {
		t.Errorf("an entry of an unchanged directory was tested %d times, want once", visited[shared])
	}
	if c := filepath.Join(src, "changing", "app.conf"); visited[c] != 2 {
		t.Errorf("the changed file was tested %d times, want twice", visited[c])
	}
}

// TestFinderRemembersBoundedPaths: past maxFinderDirs directory paths a
// Finder numbers new ones -1, which it neither remembers nor looks up: a
// crafted tree of 2^depth paths took a find past any memory (found by a
// hostile-repository test).
func TestFinderRemembersBoundedPaths(t *testing.T) {
	f := NewFinder(nil, func(string, *Node) bool { return false }, func(string) bool { return true })
	for i := range maxFinderDirs {
		if n := f.number(0, strconv.Itoa(i)); n != i+1 {
			t.Fatalf("path %d numbered %d", i, n)
		}
	}
	if n := f.number(0, "one more"); n != -1 {
		t.Errorf("a path past the bound is numbered %d, want -1", n)
	}
	if n := f.number(-1, "below"); n != -1 {
		t.Errorf("a path below an unnumbered one is numbered %d, want -1", n)
	}
	if n := f.number(0, "7"); n != 8 {
		t.Errorf("a path numbered before is numbered %d, want 8", n)
	}
}
