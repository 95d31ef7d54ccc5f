package main

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestLimitUpload: --limit-upload keeps a create's uploads at the rate (1
// MiB of new data at 1 MiB/s: the requests after the pack wait their
// turn, so the run takes a second at least) and restores the data intact;
// SNAP_LIMIT_DOWNLOAD is read; bad values exit 2 naming the flag.
func TestLimitUpload(t *testing.T) {
	t.Parallel()
	tr := newTestRepo(t)
	src := filepath.Join(tr.dir, "src")
	writeRandom(t, filepath.Join(src, "r"), 7, 1<<20)
	start := time.Now()
	tr.mustRun("create", src, "--limit-upload", "1MiB")
	if d := time.Since(start); d < 900*time.Millisecond {
		t.Errorf("1 MiB at --limit-upload 1MiB took %v, want about a second or more", d)
	}
	target := filepath.Join(tr.dir, "target")
	if res := tr.runEnv([]string{"SNAP_LIMIT_DOWNLOAD=64MiB"}, nil, "restore", "latest", "--target", target); res.code != 0 {
		t.Fatalf("restore with SNAP_LIMIT_DOWNLOAD: exit %d, %s", res.code, res.stderr)
	}
	if hashFile(t, filepath.Join(target, src, "r")) != hashFile(t, filepath.Join(src, "r")) {
		t.Error("restored file differs")
	}
	for _, args := range [][]string{{"list", "--limit-upload", "fast"}, {"list", "--limit-download", "100"}} {
		if res := tr.run(args...); res.code != exitUsage || !strings.Contains(res.stderr, "--limit-") {
			t.Errorf("%v: exit %d, %s", args, res.code, res.stderr)
		}
	}
	if res := tr.runEnv([]string{"SNAP_LIMIT_UPLOAD=0"}, nil, "list"); res.code != exitUsage {
		t.Errorf("SNAP_LIMIT_UPLOAD=0: exit %d, %s", res.code, res.stderr)
	}
	// The config's limit_upload applies to its jobs; a bad one is reported.
	writeRandom(t, filepath.Join(src, "r2"), 8, 1<<20)
	cfg := tr.writeConfig(`limit_upload = "1MiB"

[jobs.app]
paths = ["` + src + `"]
`)
	start = time.Now()
	if res := tr.runConfig(nil, "run", "--config", cfg); res.code != 0 {
		t.Fatalf("run: exit %d\n%s%s", res.code, res.stdout, res.stderr)
	}
	if d := time.Since(start); d < 900*time.Millisecond {
		t.Errorf("a job with limit_upload = 1MiB sent 1 MiB in %v", d)
	}
	bad := tr.writeConfig("limit_upload = \"10\"\n[jobs.app]\npaths = [\"" + src + "\"]\n")
	if res := tr.runConfig(nil, "config", "check", "--config", bad); res.code != exitUsage || !strings.Contains(res.stdout+res.stderr, "limit_upload") {
		t.Errorf("config check of limit_upload = 10: exit %d\n%s%s", res.code, res.stdout, res.stderr)
	}
}
