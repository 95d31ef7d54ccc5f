package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/snap-backup/snap/index"
	"github.com/snap-backup/snap/repo"
	"github.com/snap-backup/snap/snapshot"
)

// TestCreateStoresDamagedBlobsAnew: a create that finds stored blobs
// damaged (bit rot in a pack) stores them anew rather than deduplicating
// against the damaged copies, saves the snapshot, and fails naming the
// damage; later processes read the new copies, so the older snapshot,
// whose trees they are too, restores again. Found by an exploratory test:
// the create warned that the parent's root tree was corrupt, saved a
// snapshot whose root was that same tree, and exited 0, night after night,
// while retention forgot the good snapshots.
func TestCreateStoresDamagedBlobsAnew(t *testing.T) {
	tr := newTestRepo(t)
	src := filepath.Join(tr.dir, "src")
	writeFile(t, filepath.Join(src, "a", "f"), []byte("first file"))
	writeFile(t, filepath.Join(src, "b", "g"), randomBytes(5, 200<<10))
	first := tr.createID(src)
	damaged := tr.damageBlobs(repo.TreeBlob)

	res := tr.run("create", src)
	if res.code != exitFatal || !strings.Contains(res.stderr, "saved, but the repository holds damaged data: tree blob ") ||
		!strings.Contains(res.stderr, "is corrupt") || !strings.Contains(res.stderr, "run 'snap check --read-data'") {
		t.Fatalf("create over damaged trees: exit %d\n%s", res.code, res.stderr)
	}
	if strings.Count(res.stderr, "unreadable, reading all files") != 1 {
		t.Errorf("the unreadable parent is not warned about once:\n%s", res.stderr)
	}
	if n := tr.snapshotCount(); n != 2 {
		t.Fatalf("%d snapshots, want 2", n)
	}
	target := filepath.Join(tr.dir, "restored")
	if res := tr.run("restore", "latest", "--target", target); res.code != 0 {
		t.Fatalf("restore after the trees were stored anew: exit %d\n%s", res.code, res.stderr)
	}
	compareTrees(t, readTree(t, src), readTree(t, filepath.Join(target, src)))
	// Until the damaged packs are moved out, every create that meets them
	// says so; check names them.
	if res := tr.run("create", src); res.code != exitFatal || !strings.Contains(res.stderr, "holds damaged data") {
		t.Errorf("create with the damaged packs still there: exit %d\n%s", res.code, res.stderr)
	}
	if res := tr.run("check", "--read-data"); res.code != exitFatal {
		t.Errorf("check --read-data of the damaged pack: exit %d\n%s", res.code, res.stdout+res.stderr)
	}
	// The documented repair: move them out, index from the packs, forget
	// what still needs them (the first snapshot's root: the directories
	// leading to src had other times then), prune; all is well again.
	for _, p := range damaged {
		must(t, os.Rename(p, filepath.Join(tr.dir, filepath.Base(p))))
	}
	if res := tr.run("repair", "index", "--from-packs"); res.code != exitFatal || !strings.Contains(res.stderr, "no longer holds 1 pack") {
		t.Errorf("repair index --from-packs without the damaged pack: exit %d\n%s", res.code, res.stderr)
	}
	res = tr.run("check")
	if res.code != exitFatal || !strings.Contains(res.stdout+res.stderr, first[:8]) {
		t.Errorf("check after the repair names only the first snapshot? exit %d\n%s", res.code, res.stdout+res.stderr)
	}
	tr.mustRun("forget", first)
	tr.mustRun("prune")
	tr.mustRun("create", src)
	tr.mustRun("check", "--read-data")

	// Damaged data too: once the create has met the damaged parent tree,
	// it reads back each chunk before relying on it, and stores the
	// damaged ones anew (it relied on them unread; found by a re-test).
	writeFile(t, filepath.Join(src, "c", "h"), randomBytes(6, 300<<10))
	tr.mustRun("create", src)
	tr.damageBlobs(repo.TreeBlob)
	tr.damageBlobs(repo.DataBlob)
	if res := tr.run("create", src); res.code != exitFatal || !strings.Contains(res.stderr, "holds damaged data") {
		t.Fatalf("create over damaged trees and data: exit %d\n%s", res.code, res.stderr)
	}
	target = filepath.Join(tr.dir, "restored-data")
	if res := tr.run("restore", "latest", "--target", target); res.code != 0 {
		t.Fatalf("restore after trees and data were stored anew: exit %d\n%s", res.code, res.stderr)
	}
	compareTrees(t, readTree(t, src), readTree(t, filepath.Join(target, src)))
}

// damageBlobs flips a byte in the middle of every stored blob of the
// given type, and returns the packs it damaged.
func (tr *testRepo) damageBlobs(bt repo.BlobType) []string {
	tr.t.Helper()
	return tr.damageSomeBlobs(bt, -1)
}

// damageSomeBlobs is damageBlobs for the first n blobs the index lists
// (all when n < 0).
func (tr *testRepo) damageSomeBlobs(bt repo.BlobType, n int) []string {
	tr.t.Helper()
	return tr.damageBlobsWhere(func(e repo.BlobEntry) bool { return e.Type == bt }, n)
}

// openIndexInProcess opens the repository and an index of it in a new
// cache in this process; done closes both.
func (tr *testRepo) openIndexInProcess() (ix *index.Index, done func()) {
	tr.t.Helper()
	r := tr.openInProcess()
	ix, err := index.Open(context.Background(), r, tr.t.TempDir(), index.Options{})
	if err != nil {
		r.Close()
		tr.t.Fatal(err)
	}
	return ix, func() { ix.Close(); r.Close() }
}

// damageTreeAt flips a byte in the middle of the stored listing of the
// directory at path (absolute, as recorded) in the snapshot whose root
// tree is root.
func (tr *testRepo) damageTreeAt(root repo.ID, path string) {
	tr.t.Helper()
	ix, done := tr.openIndexInProcess()
	defer done()
	id := root
	for _, name := range strings.Split(strings.Trim(path, "/"), "/") {
		t, err := snapshot.LoadTree(context.Background(), ix, id)
		must(tr.t, err)
		n, ok := t.Find(name)
		if !ok {
			tr.t.Fatalf("no %s in the snapshot's %s", name, path)
		}
		id = n.Subtree
	}
	tr.damageBlobsWhere(func(e repo.BlobEntry) bool { return e.ID == id }, 1)
}

// damageBlobsWhere flips a byte in the middle of the first n stored blobs
// (all when n < 0) that match, and returns the packs it damaged.
func (tr *testRepo) damageBlobsWhere(match func(repo.BlobEntry) bool, n int) []string {
	tr.t.Helper()
	ix, done := tr.openIndexInProcess()
	defer done()
	var packs []string
	must(tr.t, ix.Blobs(func(l index.Location) error {
		if !match(l.Entry) || n == 0 {
			return nil
		}
		n--
		p := filepath.Join(tr.repo, "data", l.Pack.String()[:2], l.Pack.String())
		f, err := os.OpenFile(p, os.O_RDWR, 0)
		if err != nil {
			return err
		}
		defer f.Close()
		b := []byte{0}
		off := int64(l.Entry.Offset + l.Entry.Length/2)
		if _, err := f.ReadAt(b, off); err != nil {
			return err
		}
		b[0] ^= 0xff
		_, err = f.WriteAt(b, off)
		if !slices.Contains(packs, p) {
			packs = append(packs, p)
		}
		return err
	}))
	if len(packs) == 0 {
		tr.t.Fatal("no blob to damage")
	}
	return packs
}

// TestRestoreGoesOnPastDamagedFiles: damaged data in one file does not stop
// a restore: every other file is restored, the summary says what was
// restored (JSON too, with the damaged count), and the error counts the
// damaged files and says the rest was restored (it said a restore with
// --exclude of them would restore the rest, with no summary; found by an
// exploratory test).
func TestRestoreGoesOnPastDamagedFiles(t *testing.T) {
	tr := newTestRepo(t)
	src := filepath.Join(tr.dir, "src")
	for i := range 12 {
		writeFile(t, filepath.Join(src, fmt.Sprintf("f%02d", i)), randomBytes(uint64(40+i), 200<<10))
	}
	tr.mustRun("create", src)
	tr.damageSomeBlobs(repo.DataBlob, 1)
	for _, json := range []bool{false, true} {
		target := filepath.Join(tr.dir, fmt.Sprintf("out-%v", json))
		args := []string{"restore", "latest", "--target", target}
		if json {
			args = append(args, "--json")
		}
		res := tr.run(args...)
		out := res.stdout + res.stderr // with --json, the error object follows the summary
		if res.code != exitFatal || !strings.Contains(out, "1 file could not be restored whole for data the repository lost") ||
			!strings.Contains(out, "every other entry was restored") || !strings.Contains(out, "'snap check --read-data' names") ||
			!strings.Contains(out, "restore "+filepath.Join(target, src)) {
			t.Errorf("restore with one damaged file (json %v): exit %d\nstdout %s\nstderr %s", json, res.code, res.stdout, res.stderr)
		}
		if json {
			if !strings.Contains(res.stdout, `"type":"summary"`) || !strings.Contains(res.stdout, `"files":11,`) || !strings.Contains(res.stdout, `"errors":1,`) || !strings.Contains(res.stdout, `"damaged":1,`) {
				t.Errorf("restore --json with one damaged file: no summary counting it:\n%s", res.stdout)
			}
		} else if !strings.Contains(res.stdout, "restored part of snapshot") || !strings.Contains(res.stdout, "11 files") {
			t.Errorf("restore with one damaged file: no summary line:\n%s", res.stdout)
		}
		whole := 0
		for i := range 12 {
			got, err := os.ReadFile(filepath.Join(target, src, fmt.Sprintf("f%02d", i)))
			if err == nil && bytes.Equal(got, randomBytes(uint64(40+i), 200<<10)) {
				whole++
			}
		}
		if whole != 11 {
			t.Errorf("json %v: %d of 12 files restored whole, want 11", json, whole)
		}
	}
}

// TestRestoreDataNotIndexedIsNotCalledLost: a pack that exists but no
// index segment lists (a segment lost) makes a restore fail for its
// files, and the error says the index does not list their data and how
// to index it again, not that the repository lost it; after that repair
// the same restore finishes (found by an exploratory test).
func TestRestoreDataNotIndexedIsNotCalledLost(t *testing.T) {
	tr := newTestRepo(t)
	src := filepath.Join(tr.dir, "src")
	writeFile(t, filepath.Join(src, "big"), randomBytes(77, 900<<10))
	writeFile(t, filepath.Join(src, "small"), []byte("small"))
	tr.mustRun("create", src)
	pack := largestPack(t, tr.repo)
	aside := filepath.Join(tr.dir, "pack")
	must(t, os.Rename(pack, aside))
	tr.run("repair", "index", "--from-packs") // fails: the pack the index lists is gone; its blobs are dropped
	must(t, os.Rename(aside, pack))
	target := filepath.Join(tr.dir, "out")
	res := tr.run("restore", "latest", "--target", target)
	if res.code != exitFatal || !strings.Contains(res.stderr, "for data the index does not list") || strings.Contains(res.stderr, "the repository lost") ||
		!strings.Contains(res.stderr, "'snap repair index --from-packs'") {
		t.Fatalf("restore of data not indexed: exit %d\n%s", res.code, res.stderr)
	}
	tr.mustRun("repair", "index", "--from-packs")
	tr.mustRun("restore", "latest", "--target", target, "--overwrite", "if-changed")
	if got, err := os.ReadFile(filepath.Join(target, src, "big")); err != nil || !bytes.Equal(got, randomBytes(77, 900<<10)) {
		t.Errorf("restored after the repair: %v", err)
	}
}
