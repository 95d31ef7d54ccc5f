package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/snap-backup/snap/index"
	"github.com/snap-backup/snap/repo"
)

// TestPruneRemovesTempFiles: half-written files of runs killed with
// kill -9 (a pack's temporary file, a reserve fill's) are removed by a
// prune that sees no other snap process, kept while one runs (it may be
// writing them), and never confused with data: every snapshot restores.
func TestPruneRemovesTempFiles(t *testing.T) {
	t.Parallel()
	tr := newTestRepo(t)
	src := filepath.Join(tr.dir, "src")
	writeRandom(t, filepath.Join(src, "f"), 5, 1<<20)
	tr.create(src)
	want := describe(t, src)
	temps := []string{
		filepath.Join(tr.repo, "data", "ab", ".tmp-0123456789abcdef"),
		filepath.Join(tr.repo, "index", ".tmp-fedcba9876543210"),
		filepath.Join(tr.repo, ".tmp-reserve-0011223344556677"),
	}
	old := time.Now().Add(-time.Hour)
	for _, p := range temps {
		must(t, os.WriteFile(p, make([]byte, 100_000), 0o600))
		must(t, os.Chtimes(p, old, old))
	}
	// A fresh one may be a lock being taken or a key being added (both
	// write before, or without, a lock): it stays.
	fresh := filepath.Join(tr.repo, "keys", ".tmp-aaaabbbbccccdddd")
	must(t, os.WriteFile(fresh, []byte("k"), 0o600))
	// A fresh one in data/ is a killed create's pack, which only a
	// process holding a lock writes: it goes at once (it stayed for 15
	// minutes, through the prune meant to free a full disk; found by an
	// exploratory test).
	freshPack := filepath.Join(tr.repo, "data", "cd", ".tmp-9999888877776666")
	must(t, os.MkdirAll(filepath.Dir(freshPack), 0o700))
	must(t, os.WriteFile(freshPack, make([]byte, 50_000), 0o600))
	temps = append(temps, freshPack)
	if res := tr.mustRun("check"); !strings.Contains(res.stdout, "note: 5 temporary files (341.8 KiB)") {
		t.Errorf("check does not mention the temporary files:\n%s", res.stdout)
	}
	prune := func(args ...string) map[string]any {
		t.Helper()
		res := tr.mustRun(append([]string{"prune", "--json"}, args...)...)
		lines := strings.Split(strings.TrimSpace(res.stdout), "\n")
		var st map[string]any
		must(t, json.Unmarshal([]byte(lines[len(lines)-1]), &st))
		return st
	}
	// Another process runs: its temporary files may be in the making.
	host, _ := os.Hostname()
	lock := tr.plantLock(repo.LockInfo{Time: time.Now(), Created: time.Now(), Host: host, PID: os.Getpid(), Command: "create"})
	if st := prune(); st["temp_files"] != 0.0 {
		t.Errorf("prune beside a running create removed %v temporary files", st["temp_files"])
	}
	for _, p := range temps {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
	must(t, os.Remove(filepath.Join(tr.repo, "locks", lock)))
	if st := prune("--dry-run"); st["temp_files"] != 4.0 || st["temp_bytes"] != 350_000.0 {
		t.Errorf("prune --dry-run: temp_files %v, temp_bytes %v; want 4, 350000", st["temp_files"], st["temp_bytes"])
	}
	if st := prune(); st["temp_files"] != 4.0 {
		t.Errorf("prune: temp_files %v, want 4", st["temp_files"])
	}
	for _, p := range temps {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s is still there: %v", p, err)
		}
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Errorf("a temporary file younger than %v went: %v", index.TempGrace, err)
	}
	tr.mustRun("check", "--read-data")
	target := filepath.Join(tr.dir, "target")
	tr.mustRun("restore", "latest", "--target", target)
	compareEntries(t, "restore after prune removed temporary files", want, describe(t, filepath.Join(target, src)))
}
