package main

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/snap-backup/snap/repo"
)

// TestDamagedIndexCacheIsNotRepositoryDamage: a bit flipped in this
// host's index cache (bbolt keeps no checksums) sent a restore to the
// wrong bytes of a pack, or lost a blob's entry: the restore reported data
// the repository lost, 'snap check' (which reads the segments) found
// nothing, and every later restore failed the same way. The repository's
// own index now decides: the restore says the cache is damaged, the next
// command rebuilds it, and the restore then works (found by an
// exploratory test).
func TestDamagedIndexCacheIsNotRepositoryDamage(t *testing.T) {
	for _, damage := range []string{"offset", "key"} {
		t.Run(damage, func(t *testing.T) {
			tr := newTestRepo(t)
			src := filepath.Join(tr.dir, "src")
			writeFile(t, filepath.Join(src, "a"), randomBytes(11, 200<<10))
			writeFile(t, filepath.Join(src, "b"), randomBytes(12, 300<<10))
			tr.mustRun("create", src)
			dbs, _ := filepath.Glob(filepath.Join(tr.cache, "*", "index.db"))
			if len(dbs) != 1 {
				t.Fatalf("index caches: %v", dbs)
			}
			damageCache(t, dbs[0], damage)

			res := tr.run("restore", "latest", "--target", filepath.Join(tr.dir, "r1"))
			if res.code != exitFatal || !strings.Contains(res.stderr, "this host's index cache is damaged") || strings.Contains(res.stderr, "the repository lost") ||
				strings.Contains(res.stderr, "the repository is damaged") {
				t.Fatalf("restore with a damaged cache: exit %d\n%s", res.code, res.stderr)
			}
			tr.mustRun("check")
			tr.mustRun("restore", "latest", "--target", filepath.Join(tr.dir, "r2"))
			for _, name := range []string{"a", "b"} {
				want, _ := os.ReadFile(filepath.Join(src, name))
				got, err := os.ReadFile(filepath.Join(tr.dir, "r2", src, name))
				if err != nil || string(got) != string(want) {
					t.Errorf("%s restored after the cache was rebuilt: %d bytes, %v", name, len(got), err)
				}
			}
		})
	}
}

// damageCache changes every data blob's entry in the cache file at path:
// its offset in the pack ("offset"), or its ID's first byte ("key"), as a
// flipped bit would.
func damageCache(t *testing.T, path, damage string) {
	t.Helper()
	damageCacheOf(t, path, damage, nil)
}

// cachedDataKeys returns the keys of the data blob entries in the cache
// file at path.
func cachedDataKeys(t *testing.T, path string) map[string]bool {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	must(t, err)
	defer db.Close()
	keys := map[string]bool{}
	must(t, db.View(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte("blobs")).ForEach(func(k, _ []byte) error {
			if len(k) == 37 && repo.BlobType(k[32]) == repo.DataBlob {
				keys[string(k)] = true
			}
			return nil
		})
	}))
	return keys
}

// damageCacheOf is damageCache of the entries whose keys only holds
// (all when nil).
func damageCacheOf(t *testing.T, path, damage string, only map[string]bool) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	must(t, err)
	defer db.Close()
	must(t, db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("blobs"))
		type kv struct{ k, v []byte }
		var data []kv
		must(t, b.ForEach(func(k, v []byte) error {
			if len(k) == 37 && repo.BlobType(k[32]) == repo.DataBlob && (only == nil || only[string(k)]) {
				data = append(data, kv{append([]byte{}, k...), append([]byte{}, v...)})
			}
			return nil
		}))
		if len(data) == 0 {
			t.Fatal("no data blobs in the cache")
		}
		for _, e := range data {
			switch damage {
			case "offset":
				binary.BigEndian.PutUint32(e.v[1:], binary.BigEndian.Uint32(e.v[1:])+16)
				must(t, b.Put(e.k, e.v))
			case "key":
				must(t, b.Delete(e.k))
				e.k[0] ^= 0x80
				must(t, b.Put(e.k, e.v))
			}
		}
		return nil
	}))
}

// TestDamagedCacheAndRepositoryInOneRun: a create that reads through a
// damaged cache stores anew what it could not read, warns of the cache and
// exits 0 (it failed as repository damage); a restore that meets both the
// cache's damage and the repository's says the repository is damaged (a
// summary that named the cache alone hid it); a copy that meets the
// cache's damage says so, not that the source is damaged (found by a
// re-test).
func TestDamagedCacheAndRepositoryInOneRun(t *testing.T) {
	tr := newTestRepo(t)
	src := filepath.Join(tr.dir, "src")
	writeFile(t, filepath.Join(src, "a"), randomBytes(31, 200<<10))
	tr.mustRun("create", src)
	dbs, _ := filepath.Glob(filepath.Join(tr.cache, "*", "index.db"))
	first := cachedDataKeys(t, dbs[0])
	packs := map[string]bool{}
	filepath.WalkDir(filepath.Join(tr.repo, "data"), func(p string, d os.DirEntry, err error) error {
		packs[p] = true
		return nil
	})
	writeFile(t, filepath.Join(src, "b"), randomBytes(32, 200<<10))
	tr.mustRun("create", src)
	var second string
	filepath.WalkDir(filepath.Join(tr.repo, "data"), func(p string, d os.DirEntry, err error) error {
		if fi, _ := d.Info(); d.Type().IsRegular() && !packs[p] && fi.Size() > 100<<10 {
			second = p
		}
		return nil
	})
	damageCacheOf(t, dbs[0], "offset", first) // a's entries
	data, err := os.ReadFile(second)          // b's pack
	must(t, err)
	data[len(data)/3] ^= 1
	must(t, os.Chmod(second, 0o644))
	must(t, os.WriteFile(second, data, 0o644))

	res := tr.run("restore", "latest", "--target", filepath.Join(tr.dir, "r1"))
	if res.code != exitFatal || !strings.Contains(res.stderr, "1 of them for this host's damaged index cache") || !strings.Contains(res.stderr, "the repository is damaged") {
		t.Errorf("restore with the cache and a pack damaged: exit %d\n%s", res.code, res.stderr)
	}

	// The cache rebuilt, damaged again; the pack put right.
	data[len(data)/3] ^= 1
	must(t, os.WriteFile(second, data, 0o644))
	tr.mustRun("ls", "latest") // rebuilds the cache marked by the restore
	dbs, _ = filepath.Glob(filepath.Join(tr.cache, "*", "index.db"))
	damageCache(t, dbs[0], "offset")
	writeFile(t, filepath.Join(src, "a"), append(randomBytes(31, 200<<10), 'x')) // read against its old version
	res = tr.run("create", src)
	if res.code != 0 || !strings.Contains(res.stderr, "this host's index cache is damaged, not the repository") || strings.Contains(res.stderr, "the repository holds damaged data") {
		t.Errorf("create through a damaged cache: exit %d\n%s", res.code, res.stderr)
	}
	tr.mustRun("check", "--read-data")

	tr.mustRun("ls", "latest")
	dbs, _ = filepath.Glob(filepath.Join(tr.cache, "*", "index.db"))
	damageCache(t, dbs[0], "offset")
	target := newTestRepo(t)
	res = tr.run("copy", "--to", target.repo)
	if res.code != exitFatal || !strings.Contains(res.stderr, "this host's index cache of the source is damaged, not the source") {
		t.Errorf("copy through a damaged cache: exit %d\n%s", res.code, res.stderr)
	}
}

// TestOutOfDescriptorsFailsTheCreate: files a create cannot open because
// the process ran out of descriptors are not skipped as unreadable (a job
// took that snapshot for partial, and its retention went on): the create
// fails naming the limit, and saves nothing (found by exploratory tests).
// How many descriptors a create needs depends on what the test process
// inherited and on how many files it reads at once, so the limit comes
// down step by step, every file changed each time so that each create
// reads them all: every create saves all of them, until the first that
// fails, at a source file. (Lower still, opening the repository fails,
// after a minute of retries: no limit is taken below that first failure.)
func TestOutOfDescriptorsFailsTheCreate(t *testing.T) {
	tr := newTestRepo(t)
	src := filepath.Join(tr.dir, "src")
	var files []string
	for i := range 200 {
		files = append(files, filepath.Join(src, fmt.Sprintf("f%03d", i)))
		writeFile(t, files[i], []byte{byte(i)})
	}
	saved := 0
	for limit := 64; limit >= 8; limit-- {
		mtime := time.Now().Add(time.Duration(limit) * time.Minute)
		for _, f := range files {
			must(t, os.Chtimes(f, mtime, mtime))
		}
		tr.wrap = []string{"sh", "-c", fmt.Sprintf(`ulimit -n %d && exec "$@"`, limit), "sh"}
		res := tr.run("create", src)
		tr.wrap = nil
		if res.code == 0 {
			saved++
			if n := tr.snapshotCount(); n != saved {
				t.Fatalf("ulimit -n %d: %d snapshots, want %d", limit, n, saved)
			}
			continue
		}
		if res.code != exitFatal || !strings.Contains(res.stderr, "the files snap cannot open would be missing") || !strings.Contains(res.stderr, "snap ran out of file descriptors") || strings.Contains(res.stderr, "give the backup read access") {
			t.Fatalf("ulimit -n %d: create exit %d\n%s", limit, res.code, res.stderr)
		}
		if n := tr.snapshotCount(); n != saved {
			t.Fatalf("ulimit -n %d: the failed create left %d snapshots, want %d", limit, n, saved)
		}
		if saved == 0 {
			t.Fatal("no create succeeded")
		}
		out := tr.mustRun("ls", "latest").stdout
		if n := strings.Count(out, "/f"); n != 200 {
			t.Errorf("the last snapshot saved holds %d files, want 200", n)
		}
		return
	}
	t.Error("no limit made the create fail")
}
