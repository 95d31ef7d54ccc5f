package main

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"

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
	db, err := bolt.Open(path, 0o600, nil)
	must(t, err)
	defer db.Close()
	must(t, db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("blobs"))
		type kv struct{ k, v []byte }
		var data []kv
		must(t, b.ForEach(func(k, v []byte) error {
			if len(k) == 37 && repo.BlobType(k[32]) == repo.DataBlob {
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
