package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBigFileDedup backs up a 140 MB file (large enough to be cut with
// scouts, chunk.Parallel): it restores byte for byte, a second run adds no
// data blob (with and without reading the file, and read with one chunker
// by --sequential-read: the same chunks), and changing one byte adds about
// one chunk.
func TestBigFileDedup(t *testing.T) {
	t.Parallel()
	tr := newTestRepo(t)
	src := filepath.Join(tr.dir, "src")
	big := filepath.Join(src, "big")
	const size = 140_000_000
	writeRandom(t, big, 100, size)
	writeFile(t, filepath.Join(src, "small"), []byte("small file"))
	origHash := hashFile(t, big)
	dataDir := filepath.Join(tr.repo, "data")

	s1 := tr.create(src)
	if s1.ReadBytes != size+10 || s1.Bytes != size+10 {
		t.Errorf("first create read %d of %d bytes, want %d", s1.ReadBytes, s1.Bytes, size+10)
	}
	d1, _ := tr.blobCounts()
	size1 := dirSize(t, dataDir)
	if d1 < size/chunkMax || d1 > size/chunkMin+1 {
		t.Errorf("%d data blobs for 140 MB; chunks must be 512 KiB .. 8 MiB", d1)
	}

	// Unchanged: nothing is read, no data blob is added, the repository
	// grows by a few tree blobs at most.
	s2 := tr.create(src)
	d2, _ := tr.blobCounts()
	if s2.ReadBytes != 0 || d2 != d1 {
		t.Errorf("unchanged second create: read %d bytes, data blobs %d -> %d", s2.ReadBytes, d1, d2)
	}
	// --force reads everything again and still adds no data blob; read
	// in order by one chunker, the file is cut exactly where the scouts
	// cut it.
	s3 := tr.create("--force", "--sequential-read", src)
	d3, _ := tr.blobCounts()
	if s3.ReadBytes != size+10 || d3 != d1 {
		t.Errorf("create --force --sequential-read: read %d bytes, data blobs %d -> %d", s3.ReadBytes, d1, d3)
	}
	if grew := dirSize(t, dataDir) - size1; grew > 64<<10 {
		t.Errorf("two unchanged creates grew data/ by %d bytes", grew)
	}

	// One byte changed in the middle: about one chunk is new.
	f, err := os.OpenFile(big, os.O_RDWR, 0)
	must(t, err)
	_, err = f.WriteAt([]byte{0x5a ^ randBytes(100, size/2+1)[size/2]}, size/2)
	must(t, err)
	must(t, f.Close())
	before := dirSize(t, dataDir)
	s4 := tr.create(src)
	d4, _ := tr.blobCounts()
	grew := dirSize(t, dataDir) - before
	t.Logf("one byte changed: %d new data blobs, %d bytes added (summary %d), data/ grew %d bytes", d4-d1, s4.AddedRawBytes, s4.AddedBytes, grew)
	if d4-d1 < 1 || d4-d1 > 2 {
		t.Errorf("one changed byte added %d data blobs, want 1 or 2", d4-d1)
	}
	if s4.AddedBytes > 2*chunkMax+64<<10 || grew > 2*chunkMax+64<<10 {
		t.Errorf("one changed byte added %d bytes (data/ grew %d), want at most two chunks", s4.AddedBytes, grew)
	}

	// Both versions restore byte for byte with their metadata.
	want := describe(t, src)
	target := filepath.Join(tr.dir, "new")
	tr.mustRun("restore", "latest", "--target", target)
	compareEntries(t, "restore of the changed file", want, describe(t, filepath.Join(target, src)))
	target = filepath.Join(tr.dir, "old")
	tr.mustRun("restore", s1.SnapshotID, "--target", target)
	if got := hashFile(t, filepath.Join(target, big)); got != origHash {
		t.Errorf("first snapshot restores a different file")
	}
}

// TestCopyChunkerParams: a repository made with --copy-chunker-params-from
// cuts files as the source does, so that a backup made into it finds the
// chunks copied there from the source (3-2-1: nightly copies to a second
// repository, and now and then a backup straight into it); one made
// without the flag stores the data again.
func TestCopyChunkerParams(t *testing.T) {
	t.Parallel()
	tr := newTestRepo(t)
	src := filepath.Join(tr.dir, "src")
	writeRandom(t, filepath.Join(src, "big"), 7, 20_000_000)
	tr.mustRun("create", src)
	added := map[string]int64{}
	for _, name := range []string{"shared", "own"} {
		dst := filepath.Join(tr.dir, name)
		args := []string{"init", "--repo", dst, "--kdf-memory", "8", "--kdf-time", "1"}
		if name == "shared" {
			args = append(args, "--copy-chunker-params-from", tr.repo)
		}
		tr.mustRun(args...)
		tr.mustRun("copy", "--to", dst)
		res := tr.mustRun("create", "--repo", dst, "--json", "--force", src)
		added[name] = parseSummary(t, res.stdout).AddedBytes
	}
	if added["shared"] > 1<<20 || added["own"] < 10_000_000 {
		t.Errorf("a backup after a copy added %d bytes with the source's chunker parameters and %d without; want next to nothing and the whole file", added["shared"], added["own"])
	}
	res := tr.runEnv([]string{"SNAP_FROM_PASSWORD=wrong"}, nil, "init", "--repo", filepath.Join(tr.dir, "third"), "--copy-chunker-params-from", tr.repo)
	if res.code != exitWrongPass || !strings.Contains(res.stderr, "--copy-chunker-params-from "+tr.repo) {
		t.Errorf("init with the wrong password for the source: exit %d: %s", res.code, res.stderr)
	}
	if _, err := os.Stat(filepath.Join(tr.dir, "third")); err == nil {
		t.Error("a failed init left its repository directory")
	}
}
