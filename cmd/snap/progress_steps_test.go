package main

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/snap-backup/snap/index"
)

// TestStepProgressOnATerminal: check --read-data, copy and prune keep a
// status line with their step on a terminal (they printed nothing until
// they ended, so a long one looked hung; found by an exploratory test),
// and write none without a terminal, with --json or with --quiet.
func TestStepProgressOnATerminal(t *testing.T) {
	scriptBin, err := exec.LookPath("script")
	if err != nil {
		t.Fatal("script(1) is missing (util-linux/bsdutils)")
	}
	tr := newTestRepo(t)
	src := filepath.Join(tr.dir, "src")
	writeFile(t, filepath.Join(src, "a"), randomBytes(1, 1<<20))
	writeFile(t, filepath.Join(src, "b"), randomBytes(2, 1<<20))
	tr.mustRun("create", src)
	must(t, os.Remove(filepath.Join(src, "b")))
	tr.mustRun("create", src)
	dst := filepath.Join(tr.dir, "dst")
	tr.mustRun("init", "--repo", dst, "--kdf-memory", "8", "--kdf-time", "1")
	fast := []string{"SNAP_PROGRESS_INTERVAL=1ms"}
	onTerminal := func(args string) string {
		t.Helper()
		cmd := exec.Command(scriptBin, "-qec", snapBin+" "+args, "/dev/null")
		cmd.Env = append(append(baseEnv(), tr.env...), fast...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s on a terminal: %v\n%q", args, err, out)
		}
		return string(out)
	}

	// Without a terminal, with --json and with -q: no status line.
	if res := tr.runEnv(fast, nil, "check", "--read-data"); res.code != 0 || strings.Contains(res.stderr, "\r") {
		t.Errorf("check without a terminal: exit %d: %q", res.code, res.stderr)
	}
	for _, args := range []string{"check --read-data --json", "check --read-data -q", "prune --dry-run --json", "prune --dry-run -q"} {
		if out := onTerminal(args); strings.Contains(out, "\r[") {
			t.Errorf("%s on a terminal: %q", args, out)
		}
	}

	// The rate limits make each step last a second or so, long enough
	// to be drawn. The forget leaves half of the first snapshot's pack
	// unused, which prune --max-unused 0 repacks.
	for _, tc := range []struct {
		args, want, summary string
	}{
		{"check --read-data --limit-download 8MiB", `\r\[0:\d\d\] +\d+\.\d% reading \d/3 packs, `, "no errors found"},
		{"copy --to " + dst + " --limit-upload 1MiB", `\r\[0:\d\d\] copying \d/2 snapshots`, "copied 2 snapshots to "},
		{"forget --keep-last 1", "", ""},
		{"prune --instant --max-unused 0 --limit-upload 1MiB", `\r\[0:\d\d\] +\d+\.\d% repacking \d/1 packs, `, "repacked 1 pack: "},
	} {
		out := onTerminal(tc.args)
		if tc.want == "" {
			continue
		}
		if !regexp.MustCompile(tc.want).MatchString(out) || !strings.Contains(out, tc.summary) {
			t.Errorf("%s on a terminal: want a status line matching %q and the summary %q:\n%q", tc.args, tc.want, tc.summary, out)
		}
		// The last line drawn is erased before the summary.
		before := out[:strings.Index(out, tc.summary)]
		if !strings.Contains(before[strings.LastIndex(before, "\r["):], "\r\x1b[K") {
			t.Errorf("%s: status line not erased before the summary:\n%q", tc.args, out)
		}
	}
}

// TestPruneOutcomeAfterStatusLineBug: a bug in prune's status line stops
// the prune; a prune that finished all the same reports its stats and says
// it finished, not "prune stopped … the next prune finishes the work",
// which sent the admin to redo done work (found in a code review).
func TestPruneOutcomeAfterStatusLineBug(t *testing.T) {
	bug := errors.New("internal error: injected")
	done := &index.PruneStats{DeletedBytes: 3 << 20}

	st, err := pruneOutcome(done, nil, bug)
	if st != done || err == nil || !strings.Contains(err.Error(), "the prune finished, but its status line failed: internal error: injected") {
		t.Errorf("finished prune: stats %v, error %v", st, err)
	}
	st, err = pruneOutcome(done, context.Canceled, bug)
	if st != nil || err == nil || !strings.HasPrefix(err.Error(), "prune stopped; the repository is consistent") {
		t.Errorf("stopped prune: stats %v, error %v", st, err)
	}
	if st, err := pruneOutcome(done, nil, nil); st != done || err != nil {
		t.Errorf("no bug: stats %v, error %v", st, err)
	}
}
