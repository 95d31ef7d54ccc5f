package main

import (
	"bytes"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// TestConcurrentCreates runs three creates into one repository at once,
// two sharing a cache directory and one with its own, and then a restore
// of each: several writers may use one repository at the same time.
func TestConcurrentCreates(t *testing.T) {
	t.Parallel()
	tr := newTestRepo(t)
	var srcs []string
	for i := range 3 {
		src := filepath.Join(tr.dir, fmt.Sprintf("src%d", i))
		writeRandom(t, filepath.Join(src, "own"), uint64(i), 3_000_000)
		// Shared content, so that the writers race to store the same blobs.
		writeRandom(t, filepath.Join(src, "shared"), 99, 5_000_000)
		srcs = append(srcs, src)
	}
	var wg sync.WaitGroup
	results := make([]result, 3)
	for i, src := range srcs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := exec.Command(snapBin, "create", "--json", src)
			cmd.Env = append(baseEnv(), tr.env...)
			if i == 2 {
				cmd.Env = append(cmd.Env, "SNAP_CACHE_DIR="+filepath.Join(tr.dir, "other-cache"))
			}
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			results[i] = result{stdout: stdout.String(), stderr: stderr.String()}
			if err != nil {
				results[i].code = -1
			}
		}()
	}
	wg.Wait()
	for i, res := range results {
		if res.code != 0 || strings.Contains(res.stderr, "panic") {
			t.Fatalf("create %d: %q", i, res.stderr)
		}
	}
	if n := len(tr.listJSON()); n != 3 {
		t.Fatalf("%d snapshots, want 3", n)
	}
	for i, res := range results {
		id := parseSummary(t, res.stdout).SnapshotID
		target := filepath.Join(tr.dir, fmt.Sprintf("out%d", i))
		tr.mustRun("restore", id, "--target", target)
		compareEntries(t, "concurrent create "+fmt.Sprint(i), describe(t, srcs[i]), describe(t, filepath.Join(target, srcs[i])))
	}
	// A fourth run adds nothing new: every blob is indexed once the caches
	// are synced.
	s := tr.create("--force", srcs[0])
	if s.AddedRawBytes > 64<<10 {
		t.Errorf("create after the concurrent runs added %d bytes", s.AddedRawBytes)
	}
}
