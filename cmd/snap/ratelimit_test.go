package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
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
	if res := tr.runEnv([]string{"SNAP_LIMIT_UPLOAD=fast"}, nil, "list"); res.code != exitUsage || !strings.Contains(res.stderr, "SNAP_LIMIT_UPLOAD") {
		t.Errorf("SNAP_LIMIT_UPLOAD=fast: exit %d, %s (want the variable named)", res.code, res.stderr)
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
	// "off" on the command line lifts the config's limit: 3 MiB more goes
	// out well before the 3 s the limit would take.
	writeRandom(t, filepath.Join(src, "r3"), 10, 3<<20)
	start = time.Now()
	if res := tr.runConfig(nil, "run", "--config", cfg, "--limit-upload", "off"); res.code != 0 {
		t.Fatalf("run --limit-upload off: exit %d\n%s%s", res.code, res.stdout, res.stderr)
	}
	if d := time.Since(start); d > 2500*time.Millisecond {
		t.Errorf("--limit-upload off under limit_upload = 1MiB: 3 MiB took %v", d)
	}
	bad := tr.writeConfig("limit_upload = \"10\"\n[jobs.app]\npaths = [\"" + src + "\"]\n")
	if res := tr.runConfig(nil, "config", "check", "--config", bad); res.code != exitUsage || !strings.Contains(res.stdout+res.stderr, "limit_upload") {
		t.Errorf("config check of limit_upload = 10: exit %d\n%s%s", res.code, res.stdout, res.stderr)
	}
}

// TestLimitUploadInterrupt: Ctrl-C stops a create whose uploads wait for
// --limit-upload (20 MB at 1 MiB/s would take 20 s) within seconds, with
// exit 130, no snapshot and no lock left.
func TestLimitUploadInterrupt(t *testing.T) {
	t.Parallel()
	tr := newTestRepo(t)
	src := filepath.Join(tr.dir, "src")
	writeRandom(t, filepath.Join(src, "r"), 9, 20_000_000)
	cmd := exec.Command(snapBin, "create", src, "--limit-upload", "1MiB")
	cmd.Env = append(baseEnv(), tr.env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	must(t, cmd.Start())
	time.Sleep(1500 * time.Millisecond)
	must(t, cmd.Process.Signal(os.Interrupt))
	start := time.Now()
	err := cmd.Wait()
	if d := time.Since(start); d > 8*time.Second {
		t.Errorf("a paced create took %v to stop after SIGINT", d)
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != exitInterrupted {
		t.Fatalf("interrupted paced create: %v, want exit %d\n%s", err, exitInterrupted, stderr.String())
	}
	if locks, _ := os.ReadDir(filepath.Join(tr.repo, "locks")); len(locks) != 0 {
		t.Errorf("interrupted create left %d lock(s)", len(locks))
	}
	if sns := tr.listJSON(); len(sns) != 0 {
		t.Errorf("snapshots after the interrupt: %+v", sns)
	}
}

func TestParseRate(t *testing.T) {
	for in, want := range map[string]uint64{"5MiB": 5 << 20, "5MiB/s": 5 << 20, " 800K/S ": 800 << 10, "off": 0, "OFF": 0, "0": 0, "off/s": 0, "0/s": 0, "1KiB": 1024} {
		if got, err := parseRate(in); err != nil || got != want {
			t.Errorf("parseRate(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "/s", "100", "1023", "fast", "-5M", "5M/min", "NaN"} {
		if _, err := parseRate(in); err == nil {
			t.Errorf("parseRate(%q): no error", in)
		}
	}
}

// TestLimitUploadFailedDump: a dump that fails under --limit-upload ends
// the create at once, and the packs it uploaded are indexed for the next
// run. The segment that indexes them waited behind the time those packs
// had booked on the link until its timeout (15 s), so the post hooks came
// late and the packs went unindexed (found by an exploratory test).
func TestLimitUploadFailedDump(t *testing.T) {
	t.Parallel()
	tr := newTestRepo(t)
	data := filepath.Join(tr.dir, "dump")
	writeRandom(t, data, 11, 20_000_000)
	start := time.Now()
	res := tr.run("create", "--limit-upload", "1MiB", "--command", "app.out", "--", "sh", "-c", "cat "+data+"; echo dump-broke >&2; exit 1")
	if res.code != exitFatal || !strings.Contains(res.stderr, "dump-broke") {
		t.Fatalf("failed paced dump: exit %d\n%s", res.code, res.stderr)
	}
	if d := time.Since(start); d > 8*time.Second {
		t.Errorf("a failed paced dump took %v to end", d)
	}
	// The packs it uploaded are indexed: the same dump, now whole, adds
	// next to nothing.
	sum, res := tr.createJSON(nil, nil, "--command", "app.out", "--", "cat", data)
	if sum == nil {
		t.Fatalf("create: exit %d\n%s", res.code, res.stderr)
	}
	if added, _ := sum["added_bytes"].(float64); added > 4_000_000 {
		t.Errorf("the dump again added %.0f bytes: the failed run's packs were not indexed", added)
	}
}
