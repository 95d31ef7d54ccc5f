package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/urfave/cli/v2"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/snap-backup/snap/index"
	"github.com/snap-backup/snap/repo"
	"github.com/snap-backup/snap/snapshot"
)

// TestProgressWithStreams: with a command's output beside the files, the
// totals (the files') are never "known": no percentage that ends past
// 100 %.
func TestProgressWithStreams(t *testing.T) {
	tr := newTestRepo(t)
	src := filepath.Join(tr.dir, "src")
	writeFile(t, filepath.Join(src, "small"), []byte("x"))
	res := tr.runEnv([]string{"SNAP_PROGRESS_INTERVAL=1ms"}, nil, "create", "--json", src, "--command", "out.txt", "--", "sh", "-c", "head -c 3000000 /dev/zero; sleep 0.2")
	if res.code != 0 {
		t.Fatalf("create with a command: %d %s", res.code, res.stderr)
	}
	n := 0
	for _, l := range jsonLines(t, res.stdout) {
		if l["type"] != "progress" {
			continue
		}
		n++
		if l["total_known"] != false || l["percent"] != nil {
			t.Errorf("progress of a create with a command: %v", l)
		}
	}
	if n == 0 {
		t.Error("no progress line")
	}
}

func TestCreateRestoreJSONLines(t *testing.T) {
	tr := newTestRepo(t)
	src := filepath.Join(tr.dir, "src")
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<18) // 4 MiB
	writeFile(t, filepath.Join(src, "big"), big)
	writeFile(t, filepath.Join(src, "small"), []byte("x"))
	fast := []string{"SNAP_PROGRESS_INTERVAL=1ms"}

	res := tr.runEnv(fast, nil, "create", "--json", "--tag", "t", src)
	if res.code != 0 {
		t.Fatalf("create: %d %s", res.code, res.stderr)
	}
	if res.stderr != "" {
		t.Errorf("stderr not empty with --json: %q", res.stderr)
	}
	lines := jsonLines(t, res.stdout)
	last := lines[len(lines)-1]
	if last["type"] != "summary" {
		t.Fatalf("last line is not the summary: %v", last)
	}
	hasKeys(t, "create summary", last, "snapshot_id", "short_id", "parent", "time", "host", "tags", "paths", "files", "dirs", "bytes",
		"read_bytes", "added_bytes", "added_raw_bytes", "added_blobs", "errors", "duration_seconds", "sources")
	if last["files"] != 2.0 || last["bytes"] != float64(len(big)+1) {
		t.Errorf("summary counts: %v", last)
	}
	var progress []map[string]any
	if lines[0]["type"] != "preflight" {
		t.Errorf("first line: %v", lines[0])
	}
	hasKeys(t, "preflight", lines[0], "repository", "writable", "free_bytes", "min_free_bytes")
	for _, l := range lines[1 : len(lines)-1] {
		if l["type"] != "progress" {
			t.Errorf("unexpected line %v", l)
			continue
		}
		progress = append(progress, l)
		hasKeys(t, "progress", l, "action", "elapsed_seconds", "files_done", "files_total", "bytes_done", "bytes_total", "total_known",
			"bytes_read", "bytes_added", "bytes_per_second", "errors")
		if l["action"] != "create" {
			t.Errorf("action %v", l["action"])
		}
	}
	if len(progress) == 0 {
		t.Error("no progress line with SNAP_PROGRESS_INTERVAL=1ms")
	}

	target := filepath.Join(tr.dir, "out")
	res = tr.runEnv(fast, nil, "restore", "latest", "--target", target, "--json", "--verbose")
	if res.code != 0 {
		t.Fatalf("restore: %d %s", res.code, res.stderr)
	}
	lines = jsonLines(t, res.stdout)
	last = lines[len(lines)-1]
	hasKeys(t, "restore summary", last, "snapshot_id", "short_id", "path", "target", "files", "dirs", "bytes", "errors", "duration_seconds")
	if last["type"] != "summary" || last["files"] != 2.0 {
		t.Errorf("restore summary: %v", last)
	}
	files := 0
	for _, l := range lines {
		if l["type"] == "file" {
			files++
			hasKeys(t, "file line", l, "action", "path", "bytes")
			// Where the file went, in full, as create's lines name
			// where it came from.
			if p, _ := l["path"].(string); p != filepath.Join(target, src, "big") && p != filepath.Join(target, src, "small") {
				t.Errorf("restore file line path %q, want it under %s", p, filepath.Join(target, src))
			}
		}
	}
	if files != 2 {
		t.Errorf("%d file lines with --verbose, want 2", files)
	}

	// A failure: the error is the last line on stdout, with its exit code.
	res = tr.run("create", "--json", filepath.Join(tr.dir, "nothing-here"))
	lines = jsonLines(t, res.stdout)
	if res.code != exitFatal || len(lines) != 1 || lines[0]["type"] != "error" || lines[0]["exit_code"] != 1.0 {
		t.Errorf("failed create: %d %v", res.code, lines)
	}
	// Listing commands keep stdout a single document; messages go to stderr.
	res = tr.run("list", "--json", "--repo", filepath.Join(tr.dir, "nothing-here"))
	if res.stdout != "" || !strings.Contains(res.stderr, `"type":"error"`) {
		t.Errorf("failed list: stdout %q stderr %q", res.stdout, res.stderr)
	}
}

func TestProgressOnlyOnATerminal(t *testing.T) {
	tr := newTestRepo(t)
	src := filepath.Join(tr.dir, "src")
	writeFile(t, filepath.Join(src, "big"), bytes.Repeat([]byte("abcdefgh"), 1<<19))
	fast := []string{"SNAP_PROGRESS_INTERVAL=1ms"}
	res := tr.runEnv(fast, nil, "create", src)
	if strings.Contains(res.stderr, "\r") || strings.Contains(res.stderr, "ETA") {
		t.Errorf("progress written without a terminal: %q", res.stderr)
	}
	// script(1) gives snap a terminal.
	scriptBin, err := exec.LookPath("script")
	if err != nil {
		t.Fatal("script(1) is missing (util-linux/bsdutils)")
	}
	cmd := exec.Command(scriptBin, "-qec", snapBin+" create --force "+src, "/dev/null")
	cmd.Env = append(append(baseEnv(), tr.env...), fast...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("create on a terminal: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "\r[") || !strings.Contains(string(out), " files, ") || !strings.Contains(string(out), "/s") {
		t.Errorf("no progress bar on a terminal:\n%q", out)
	}
	// A dumb terminal (Emacs' shell) shows escapes as text: no bar
	// there (found by an exploratory test: "^[[K" on every redraw).
	cmd = exec.Command(scriptBin, "-qec", snapBin+" create --force "+src, "/dev/null")
	cmd.Env = append(append(append(baseEnv(), tr.env...), fast...), "TERM=dumb")
	out, err = cmd.CombinedOutput()
	if err != nil || strings.Contains(string(out), "\x1b[K") || strings.Contains(string(out), "\r[") || !strings.Contains(string(out), "snapshot") {
		t.Errorf("create on a dumb terminal: %v\n%q", err, out)
	}
}

// TestJournalFormat runs snap with stderr connected to a pipe that
// JOURNAL_STREAM names, as systemd does for a service whose output goes
// to the journal.
func TestJournalFormat(t *testing.T) {
	tr := newTestRepo(t)
	// run starts snap with stderr on a new pipe; stream gives the value of
	// JOURNAL_STREAM from the pipe's device and inode.
	run := func(stream func(dev, ino uint64) string, args ...string) string {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		var st unix.Stat_t
		if err := unix.Fstat(int(w.Fd()), &st); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(snapBin, args...)
		cmd.Env = append(append(baseEnv(), tr.env...), "JOURNAL_STREAM="+stream(uint64(st.Dev), st.Ino))
		cmd.Stderr = w
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		w.Close()
		got, _ := io.ReadAll(r)
		_ = cmd.Wait()
		return string(got)
	}
	same := func(dev, ino uint64) string { return fmt.Sprintf("%d:%d", dev, ino) }
	other := func(dev, ino uint64) string { return fmt.Sprintf("%d:%d", dev, ino+1) }
	missing := filepath.Join(tr.dir, "none")
	if got := run(same, "list", "--repo", missing); !strings.HasPrefix(got, "<3>snap: ") || strings.Count(got, "\n") != 1 {
		t.Errorf("error under the journal: %q", got)
	}
	// Warnings and errors of a running command carry their priorities.
	src := filepath.Join(tr.dir, "src")
	writeFile(t, filepath.Join(src, "f"), []byte("x"))
	if got := run(same, "create", "--verbose", src); !strings.Contains(got, "<6>saved "+src+"/f\n") {
		t.Errorf("verbose detail under the journal: %q", got)
	}
	// A JOURNAL_STREAM that names another stream (inherited, or stderr
	// redirected) is ignored.
	if got := run(other, "list", "--repo", missing); !strings.HasPrefix(got, "snap: ") {
		t.Errorf("error with a foreign JOURNAL_STREAM: %q", got)
	}
}

func TestLogHandlerFormats(t *testing.T) {
	var mu sync.Mutex
	for _, tc := range []struct {
		format logFormat
		want   string
	}{
		{logText, "error: cannot read /x\nwarning: two lines\n"},
		{logJournal, "<3>cannot read /x\n<4>two lines\n<6>detail\n"},
		{logJSON, `{"job":"j","message":"cannot read /x","path":"/x","type":"error"}` + "\n" + `{"job":"j","message":"two\nlines","type":"warning"}` + "\n" +
			`{"job":"j","message":"detail","type":"info"}` + "\n"},
	} {
		var buf bytes.Buffer
		h := &logHandler{mu: &mu, w: &buf, format: tc.format, level: slog.LevelInfo, fields: func() map[string]any { return map[string]any{"job": "j"} }}
		if tc.format == logText {
			h.level = slog.LevelWarn
		}
		l := slog.New(h)
		l.Error("cannot read /x", "path", "/x")
		l.Warn("two\nlines")
		l.Info("detail")
		l.Debug("hidden")
		if buf.String() != tc.want {
			t.Errorf("format %d:\n got %q\nwant %q", tc.format, buf.String(), tc.want)
		}
	}
}

func TestStatsAndDiff(t *testing.T) {
	tr := newTestRepo(t)
	tr.env = append(tr.env, "LC_ALL=C.UTF-8") // the arrows below are "→"
	src := filepath.Join(tr.dir, "src")
	writeFile(t, filepath.Join(src, "keep.txt"), []byte("unchanged"))
	writeFile(t, filepath.Join(src, "edit.txt"), []byte("before"))
	writeFile(t, filepath.Join(src, "gone.txt"), []byte("removed later"))
	writeFile(t, filepath.Join(src, "same", "deep", "file"), []byte("identical subtree"))
	writeFile(t, filepath.Join(src, "kind"), []byte("a file that becomes a directory"))
	must(t, os.Symlink("target-before", filepath.Join(src, "link")))
	tr.mustRun("create", "--host", "h1", src)
	// A symlink pointed elsewhere is modified, but not a modified file
	// with bytes (found by an exploratory test).
	must(t, os.Remove(filepath.Join(src, "link")))
	must(t, os.Symlink("target-after!", filepath.Join(src, "link")))
	writeFile(t, filepath.Join(src, "edit.txt"), []byte("after the edit"))
	os.Remove(filepath.Join(src, "gone.txt"))
	writeFile(t, filepath.Join(src, "new", "a"), []byte("new file"))
	os.Remove(filepath.Join(src, "kind"))
	writeFile(t, filepath.Join(src, "kind", "inside"), []byte("12345"))
	tr.mustRun("create", "--host", "h1", src)
	tr.mustRun("create", "--host", "h2", src)

	res := tr.mustRun("diff", "--json", "--host", "h1", "latest")
	var d struct {
		A, B    diffSnapJSON
		Changes []diffChangeJSON
		Summary diffSummary
	}
	if err := json.Unmarshal([]byte(res.stdout), &d); err != nil {
		t.Fatalf("%v\n%s", err, res.stdout)
	}
	var got []string
	for _, c := range d.Changes {
		s := c.Change + " " + strings.TrimPrefix(c.Path, src)
		if c.OldSize != nil {
			s += fmt.Sprintf(" old=%d", *c.OldSize)
		}
		if c.NewSize != nil {
			s += fmt.Sprintf(" new=%d", *c.NewSize)
		}
		if c.Old != nil && c.Old.Target != "" {
			s += " " + c.Old.Target + "->" + c.New.Target
		}
		// Each side as its snapshot holds it: the one that has the entry.
		if (c.Old != nil) != (c.Change != "added") || (c.New != nil) != (c.Change != "removed") ||
			c.New != nil && (c.New.Mode == "" || c.New.MTime.IsZero() || c.New.UID != uint32(os.Getuid())) {
			t.Errorf("%s: old %+v, new %+v", s, c.Old, c.New)
		}
		got = append(got, s)
	}
	want := []string{"modified /edit.txt old=6 new=14", "removed /gone.txt old=13", "type /kind old=31", "added /kind/inside new=5",
		"modified /link target-before->target-after!", "added /new", "added /new/a new=8"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("changes:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	s := d.Summary
	// The file that became a directory counts as a removed file (31 B)
	// and an added directory, besides the type change.
	if s.AddedFiles != 2 || s.AddedDirs != 2 || s.AddedBytes != 13 || s.RemovedFiles != 2 || s.RemovedBytes != 13+31 || s.ModifiedFiles != 1 || s.ModifiedOldBytes != 6 || s.ModifiedNewBytes != 14 || s.ModifiedOther != 1 || s.TypeChanged != 1 {
		t.Errorf("summary %+v", s)
	}
	// The same snapshots' trees: no change at all.
	res = tr.mustRun("diff", "--json", "--host", "h1", "latest", d.B.ID)
	if !strings.Contains(res.stdout, `"changes": []`) {
		t.Errorf("diff of a snapshot with itself:\n%s", res.stdout)
	}
	res = tr.mustRun("diff", d.A.ShortID, d.B.ShortID)
	for _, line := range []string{"M    " + src + "/edit.txt  (6 B → 14 B)", "-    " + src + "/gone.txt  (13 B)", "T    " + src + "/kind  (file → dir)", "+    " + src + "/new/a  (8 B)",
		"added:    2 files, 2 dirs, 0 others, 13 B", "modified: 1 file, 6 B before, 14 B after; 1 other"} {
		if !strings.Contains(res.stdout, line+"\n") {
			t.Errorf("human diff lacks %q:\n%s", line, res.stdout)
		}
	}
	// A snapshot taken with --force records no parent: diff compares it
	// with the previous snapshot of its host and paths, and says so; the
	// first snapshot of h2 has none.
	writeFile(t, filepath.Join(src, "forced"), []byte("x"))
	tr.mustRun("create", "--host", "h1", "--force", src)
	res = tr.mustRun("diff", "--host", "h1", "latest")
	if !strings.Contains(res.stderr, "records no parent (taken with --force, say): comparing it with "+d.B.ShortID) || !strings.Contains(res.stdout, "+    "+src+"/forced") {
		t.Errorf("diff of a forced snapshot:\n%s%s", res.stdout, res.stderr)
	}
	// It said "records no parent (taken with --force, say)" (found by an
	// exploratory test).
	if res := tr.run("diff", "--host", "h2", "latest"); res.code != exitUsage || !strings.Contains(res.stderr, "is the first of its host and paths: there is nothing earlier to compare it with; give two snapshots") || strings.Contains(res.stderr, "--force") {
		t.Errorf("diff of a first snapshot: exit %d\n%s", res.code, res.stderr)
	}

	res = tr.mustRun("stats", "--json")
	var st statsJSON
	if err := json.Unmarshal([]byte(res.stdout), &st); err != nil {
		t.Fatalf("%v\n%s", err, res.stdout)
	}
	if st.Snapshots != 4 || len(st.Hosts) != 2 || st.Hosts[0].Host != "h1" || st.Hosts[0].Snapshots != 3 || st.Hosts[1].Snapshots != 1 {
		t.Errorf("snapshots per host: %+v", st.Hosts)
	}
	if st.Packs == 0 || st.DataBlobs.Count == 0 || st.TreeBlobs.Count == 0 || st.Files["snapshots"].Count != 4 || st.TotalBytes < st.PackBytes {
		t.Errorf("counts: %+v", st)
	}
	// Raw size counts every snapshot; the data is stored once.
	var raw int64
	for _, h := range st.Hosts {
		raw += h.RawBytes
	}
	if st.RawBytes != raw || st.RawBytes <= st.DataBlobs.RawBytes || st.DedupRatio <= 1 {
		t.Errorf("raw %d, data %d, ratio %v", st.RawBytes, st.DataBlobs.RawBytes, st.DedupRatio)
	}
	if st.FreeSpace == nil || st.FreeSpace.TotalBytes == 0 || st.FreeSpace.AvailableBytes > st.FreeSpace.TotalBytes {
		t.Errorf("free space: %+v", st.FreeSpace)
	}
	// The space reserve, which the size leaves out, is told (found by an
	// exploratory test: du and stats disagreed by 64 MiB).
	var reserve int64
	if files, _ := filepath.Glob(filepath.Join(tr.repo, "reserve.*")); len(files) == 1 {
		if fi, err := os.Stat(files[0]); err == nil {
			reserve = fi.Size()
		}
	}
	if st.ReserveBytes != reserve {
		t.Errorf("reserve_bytes %d, the reserve file holds %d", st.ReserveBytes, reserve)
	}
	res = tr.mustRun("stats")
	if reserve > 0 && !strings.Contains(res.stdout, "space reserve:") {
		t.Errorf("stats does not tell the reserve:\n%s", res.stdout)
	}
	for _, want := range []string{"deduplicated size:", "raw size:", "snapshots per host:", "free space:"} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("stats lacks %q:\n%s", want, res.stdout)
		}
	}
	// A change of metadata alone says what changed (found by an
	// exploratory test: "U" alone).
	must(t, os.Chmod(filepath.Join(src, "keep.txt"), 0o600))
	must(t, os.Chtimes(filepath.Join(src, "keep.txt"), time.Unix(1e9, 0), time.Unix(1e9, 0)))
	tr.mustRun("create", "--host", "h3", src)
	must(t, os.Chmod(filepath.Join(src, "keep.txt"), 0o640))
	tr.mustRun("create", "--host", "h3", src)
	if res := tr.mustRun("diff", "--metadata", "--host", "h3", "latest"); !strings.Contains(res.stdout, "U    "+src+"/keep.txt  (mode 0600 → 0640)\n") {
		t.Errorf("diff --metadata:\n%s", res.stdout)
	}
	// In the C locale, "->" (found by an exploratory test: "→" showed
	// as bytes).
	for _, locale := range [][]string{{"LC_ALL=", "LC_CTYPE=", "LANG=C"}, {"LC_ALL=POSIX"}, {"LC_ALL=", "LC_CTYPE=", "LANG="}} {
		if res := tr.runEnv(locale, nil, "diff", "--metadata", "--host", "h3", "latest"); !strings.Contains(res.stdout, "U    "+src+"/keep.txt  (mode 0600 -> 0640)\n") {
			t.Errorf("diff --metadata with %v:\n%s%s", locale, res.stdout, res.stderr)
		}
	}
	if res := tr.mustRun("diff", "--json", "--metadata", "--host", "h3", "latest"); !strings.Contains(res.stdout, `"metadata": [`+"\n"+`        "mode"`) {
		t.Errorf("diff --json --metadata:\n%s", res.stdout)
	}
	// Contents and mode changed together: --metadata shows the mode too.
	writeFile(t, filepath.Join(src, "keep.txt"), []byte("new contents"))
	must(t, os.Chmod(filepath.Join(src, "keep.txt"), 0o600))
	tr.mustRun("create", "--host", "h3", src)
	if res := tr.mustRun("diff", "--metadata", "--host", "h3", "latest"); !strings.Contains(res.stdout, "M    "+src+"/keep.txt  (") || !strings.Contains(res.stdout, "; mode 0640 → 0600)\n") {
		t.Errorf("diff --metadata of a file whose contents and mode changed:\n%s", res.stdout)
	}
	if res := tr.mustRun("diff", "--host", "h3", "latest"); strings.Contains(res.stdout, "mode 0640") {
		t.Errorf("diff without --metadata shows the mode:\n%s", res.stdout)
	}
	// A symlink pointed elsewhere shows where.
	must(t, os.Symlink("tgt1", filepath.Join(src, "link2")))
	tr.mustRun("create", "--host", "h3", src)
	must(t, os.Remove(filepath.Join(src, "link2")))
	must(t, os.Symlink("tgt2", filepath.Join(src, "link2")))
	tr.mustRun("create", "--host", "h3", src)
	if res := tr.mustRun("diff", "--host", "h3", "latest"); !strings.Contains(res.stdout, "M    "+src+"/link2  (tgt1 → tgt2)\n") {
		t.Errorf("diff of a symlink pointed elsewhere:\n%s", res.stdout)
	}
}

func TestCompletionAndMan(t *testing.T) {
	tr := newUninitRepo(t)
	bash := filepath.Join(tr.dir, "snap.bash")
	writeFile(t, bash, []byte(tr.mustRun("completion", "bash").stdout))
	// Complete as bash would, for a few command lines.
	script := `source "$1"
complete_line() { COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _snap; echo "${COMPREPLY[*]}"; }
complete_line snap cre
complete_line snap schedule ""
complete_line snap --repo /x create --exclude-c
complete_line snap completion ""
complete_line "$2" --config "$3" run ""
complete_line "$2" --config "$3" schedule install ""
complete_line snap restore latest --overwrite if
complete_line snap create --compression ""
complete_line snap backup --exclude-c
complete_line "$2" --config = "$3" run ""
complete_line "$2" "--config=$3" run ""
`
	cfg := filepath.Join(tr.dir, "snap.toml")
	writeFile(t, cfg, []byte("repository = \"/r\"\n[jobs.web]\npaths = [\"/srv\"]\nschedule = \"daily\"\n[jobs.mail]\npaths = [\"/var/mail\"]\n"))
	out, err := exec.Command("bash", "-c", script, "bash", bash, snapBin, cfg).CombinedOutput()
	if err != nil {
		t.Fatalf("bash: %v\n%s", err, out)
	}
	// schedule install: jobs with a schedule; backup: create's alias.
	// --config=FILE, as bash splits it at "=" and as one word.
	want := "create\ninstall list remove\n--exclude-caches\nbash zsh fish\nweb mail\nweb\nif-changed\noff fastest default better\n--exclude-caches\nweb mail\nweb mail\n"
	if string(out) != want {
		t.Errorf("bash completion:\n%s\nwant:\n%s", out, want)
	}

	zsh := filepath.Join(tr.dir, "_snap")
	writeFile(t, zsh, []byte(tr.mustRun("completion", "zsh").stdout))
	if out, err := exec.Command("zsh", "-n", zsh).CombinedOutput(); err != nil {
		t.Errorf("zsh -n: %v\n%s", err, out)
	}
	// Run the function with stand-ins for zsh's completion helpers.
	zscript := `compdef() { :; }
_describe() { local -a a; a=("${(@P)${@[-1]}}"); print -l -- "${a[@]%%:*}"; }
compadd() { if [[ $1 == -a ]]; then print -l -- "${(@P)${@[-1]}}"; else print -l -- "$@"; fi; }
_files() { print FILES; }
source "$1"
words=(snap sch); CURRENT=2; _snap
words=(snap schedule install --no); CURRENT=4; _snap | grep -- --no-enable
words=(snap restore latest --overwrite ""); CURRENT=5; _snap
words=(snap restore latest --target ""); CURRENT=5; _snap
`
	out, err = exec.Command("zsh", "-c", zscript, "zsh", zsh).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "schedule\n") || !strings.Contains(string(out), "--no-enable\n") || !strings.Contains(string(out), "always\nif-changed\nnever\n") || !strings.HasSuffix(string(out), "FILES\n") {
		t.Errorf("zsh completion: %v\n%s", err, out)
	}

	fish := filepath.Join(tr.dir, "snap.fish")
	writeFile(t, fish, []byte(tr.mustRun("completion", "fish").stdout))
	// Job names come from the --config on the line (snap runs from PATH);
	// descriptions carry no placeholder quotes.
	fishCmd := exec.Command("fish", "-c", `source $argv[1]; complete -C"snap sche"; complete -C"snap schedule re"; complete -C"snap create --exc"; complete -C"snap restore latest --overwrite "; complete -C"snap --config $argv[2] run "; complete -C"snap backup --exclude-c"; complete -C"snap --limit-up"; complete -C"snap run --config=$argv[2] "`, fish, cfg)
	fishCmd.Env = append(os.Environ(), "PATH="+filepath.Dir(snapBin)+":"+os.Getenv("PATH"))
	out, err = fishCmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "schedule\t") || !strings.Contains(string(out), "remove\t") || !strings.Contains(string(out), "--exclude\t") || !strings.Contains(string(out), "if-changed") ||
		strings.Count(string(out), "web\n") != 2 || !strings.Contains(string(out), "--exclude-caches\t") || strings.Contains(string(out), "`") {
		t.Errorf("fish completion: %v\n%s", err, out)
	}

	if res := tr.run("completion", "tcsh"); res.code != exitUsage {
		t.Errorf("unknown shell: exit %d", res.code)
	}

	man := tr.mustRun("man").stdout
	// Each command with its synopsis and description (the library left
	// both out; found by an exploratory test).
	for _, want := range []string{".TH snap 1", "EXIT STATUS", "schedule", "install", "--one-file-system", "SNAP_REPOSITORY",
		`\fBsnap list\fP [OPTIONS] [PERIOD | SNAPSHOT...]`, `\fBsnap schedule install\fP [OPTIONS]`, "Lists snapshots, oldest first"} {
		if !strings.Contains(man, want) {
			t.Errorf("man page lacks %q", want)
		}
	}
	// Every variable a flag reads is in its ENVIRONMENT section, and the
	// page is ASCII (groff in the C locale drops other characters).
	envSection := man
	if i := strings.Index(man, "ENVIRONMENT"); i >= 0 {
		envSection = man[i:]
		if j := strings.Index(envSection, "FILES"); j >= 0 {
			envSection = envSection[:j]
		}
	}
	var walk func(cmds []*cli.Command, flags []cli.Flag)
	walk = func(cmds []*cli.Command, flags []cli.Flag) {
		for _, f := range flags {
			if ev, ok := f.(interface{ GetEnvVars() []string }); ok {
				for _, v := range ev.GetEnvVars() {
					if !strings.Contains(envSection, strings.ReplaceAll(v, "_", "\\_")) && !strings.Contains(envSection, v) {
						t.Errorf("man page lacks the variable %s", v)
					}
				}
			}
		}
		for _, c := range cmds {
			walk(c.Subcommands, c.Flags)
		}
	}
	walk(commands(newEnv()), globalFlags(true))
	for i, r := range man {
		if r > 127 {
			t.Errorf("man page has %q at %d", r, i)
			break
		}
	}
	// groff (from groff-base, which man needs) finds no problem in it.
	if path, err := exec.LookPath("groff"); err == nil {
		manFile := filepath.Join(tr.dir, "snap.1")
		writeFile(t, manFile, []byte(man))
		if out, err := exec.Command(path, "-k", "-man", "-Tutf8", "-z", "-ww", manFile).CombinedOutput(); err != nil || len(out) > 0 {
			t.Errorf("groff: %v\n%s", err, out)
		}
	}
}

// A warning about a file names the file in the text output too (the
// path attribute shows only in JSON).
func TestWarningNamesPath(t *testing.T) {
	var buf bytes.Buffer
	e := &env{stdout: &buf, stderr: &buf, getenv: func(string) string { return "" }, now: time.Now}
	u := &ui{mu: &sync.Mutex{}, out: &buf, err: &buf}
	u.initLog(e)
	p := newProgress(e, u, "create", func() {})
	p.event(snapshot.Event{Kind: snapshot.EventWarning, Path: "/srv/app/log", Err: errors.New("file changed while it was read")})
	if got := buf.String(); !strings.Contains(got, "/srv/app/log: file changed while it was read") {
		t.Errorf("warning: %q", got)
	}
}

// TestControlCharactersEscaped: a host and a file name with an escape
// sequence (as a crafted or careless repository has them) are shown
// escaped in list, ls, find, forget, restore --verbose and error lines,
// never sent raw to the terminal. (create refuses such a tag; list shows
// tags through the same escaping as hosts.)
func TestControlCharactersEscaped(t *testing.T) {
	t.Parallel()
	tr := newTestRepo(t)
	src := filepath.Join(tr.dir, "src")
	evil := "a\x1b[2Jb\x9bc"
	writeFile(t, filepath.Join(src, evil), []byte("x"))
	if res := tr.run("create", "--tag", "t\x1b[31m", src); res.code != exitUsage || strings.ContainsRune(res.stderr, 0x1b) {
		t.Errorf("create with a tag holding an escape sequence: exit %d: %q", res.code, res.stderr)
	}
	// create refuses such a host now; a repository written otherwise
	// (crafted, or by an older snap) may hold one: the snapshot is stored
	// again here, in-process, with that host.
	if res := tr.run("create", "--host", "h\x1b]0;x\x07", src); res.code != exitUsage || strings.ContainsRune(res.stderr, 0x1b) {
		t.Errorf("create with a host holding an escape sequence: exit %d: %q", res.code, res.stderr)
	}
	tr.mustRun("create", src)
	tr.storeAgain(func(sn *snapshot.Snapshot) { sn.Host = "h\x1b]0;x\x07" }, false)
	target := filepath.Join(tr.dir, "target")
	for _, args := range [][]string{
		{"list"},
		{"ls", "-l", "latest"},
		{"find", "a*"},
		{"forget", "--keep-last", "1", "--dry-run"},
		{"restore", "latest", "--target", target, "-v"},
		{"restore", "latest:" + filepath.Join(src, evil, "nothing"), "--target", target},
	} {
		res := tr.run(args...)
		out := res.stdout + res.stderr
		if strings.ContainsAny(out, "\x1b\x07") || strings.ContainsRune(out, 0x9b) {
			t.Errorf("snap %s printed a raw control character:\n%q", strings.Join(args, " "), out)
		}
	}
}

// TestFinalWarningUnderJournal: the last line of a run that saved its
// snapshot without some files carries the journal's warning priority,
// so that 'journalctl -p warning' shows it.
func TestFinalWarningUnderJournal(t *testing.T) {
	var buf bytes.Buffer
	e := &env{stdout: &buf, stderr: &buf, getenv: func(string) string { return "" }, now: time.Now, journal: true}
	printError(e, []string{"snap", "create"}, "create", errors.New("snapshot 1a2b3c4d saved, but 1 file(s) could not be read"), exitPartial)
	if got := buf.String(); got != "<4>warning: snapshot 1a2b3c4d saved, but 1 file(s) could not be read\n" {
		t.Errorf("got %q", got)
	}
}

// TestQuietShowsResults: --quiet hides headings, summaries and notices,
// not what a listing command was asked for; find, diff, stats, key list
// and forget --dry-run printed nothing with it, and config check hid its
// warnings.
func TestQuietShowsResults(t *testing.T) {
	t.Parallel()
	tr := newTestRepo(t)
	src := filepath.Join(tr.dir, "src")
	writeFile(t, filepath.Join(src, "needle"), []byte("1"))
	tr.mustRun("create", src)
	writeFile(t, filepath.Join(src, "needle"), []byte("22"))
	tr.mustRun("create", src)
	cfg := tr.writeConfig(`[jobs.app]
paths = ["` + src + `"]
`)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"find", "needle"}, "needle"},
		{[]string{"diff", "latest"}, "M    " + filepath.Join(src, "needle")},
		{[]string{"stats"}, "deduplicated size:"},
		{[]string{"key", "list"}, "t=1 m="},
		{[]string{"forget", "--keep-last", "1", "--dry-run"}, "remove"},
		{[]string{"config", "check", "--config", cfg}, "warning: jobs.app: no schedule"},
	} {
		run := tr.run
		if c.args[0] == "config" {
			run = func(args ...string) result { return tr.runConfig(nil, args...) }
		}
		res := run(append([]string{"-q"}, c.args...)...)
		if res.code != 0 || !strings.Contains(res.stdout, c.want) {
			t.Errorf("snap -q %s: exit %d, want %q in:\n%s%s", strings.Join(c.args, " "), res.code, c.want, res.stdout, res.stderr)
		}
	}
	if res := tr.run("-q", "diff", "latest"); strings.Contains(res.stdout, "comparing") || strings.Contains(res.stdout, "modified:") {
		t.Errorf("diff -q prints its heading or summary:\n%s", res.stdout)
	}
	// Nor do the other listings print their headings (found by an
	// exploratory test).
	for _, c := range []struct {
		args    []string
		heading string
	}{
		{[]string{"key", "list"}, "Created"},
		{[]string{"forget", "--keep-last", "1", "--dry-run"}, "policy"},
		{[]string{"config", "jobs", "--config", cfg}, "Schedule"},
		{[]string{"schedule", "list", "--dir", filepath.Join(tr.dir, "units"), "--config", cfg}, "Schedule"},
	} {
		if res := tr.runConfig(tr.env, append([]string{"-q"}, c.args...)...); res.code != 0 || strings.Contains(res.stdout, c.heading) {
			t.Errorf("snap -q %s: exit %d, a heading in:\n%s%s", strings.Join(c.args, " "), res.code, res.stdout, res.stderr)
		}
	}
	// list -q: one row per snapshot, no header, no count.
	if res := tr.mustRun("-q", "list"); strings.Count(res.stdout, "\n") != 2 || strings.Contains(res.stdout, "Host") || strings.Contains(res.stdout, "snapshots") {
		t.Errorf("list -q:\n%s", res.stdout)
	}
}

// TestListTableWithByteFF: a backed-up path holding the byte 0xff (not
// UTF-8) is written \xff in list's table, whose columns stay aligned: the
// table (text/tabwriter) took the byte for its escape and gave up aligning
// every row after it (found by a compatibility test).
func TestListTableWithByteFF(t *testing.T) {
	t.Parallel()
	tr := newTestRepo(t)
	src := filepath.Join(tr.dir, "a\xff")
	writeFile(t, filepath.Join(src, "f"), []byte("x"))
	tr.mustRun("create", src)
	res := tr.mustRun("list")
	if strings.IndexByte(res.stdout, 0xff) >= 0 || !strings.Contains(res.stdout, `a\xff`) {
		t.Errorf("list with a path holding 0xff:\n%q", res.stdout)
	}
	lines := strings.Split(res.stdout, "\n")
	if strings.Index(lines[0], "Size")+len("Size") != strings.Index(lines[1], "1 B")+len("1 B") { // sizes right-aligned
		t.Errorf("columns not aligned:\n%s", res.stdout)
	}
}

// TestVersionJSONAndExtraArguments: --version with --json prints a JSON
// document (it printed the text line), before or after it; help stays
// text. Commands that take no arguments refuse them (exit 2): 'snap man
// extra' printed the page and exited 0 (found by an exploratory test).
func TestVersionJSONAndExtraArguments(t *testing.T) {
	t.Parallel()
	tr := newUninitRepo(t)
	if res := tr.mustRun("--version"); !strings.HasPrefix(res.stdout, "snap version ") {
		t.Errorf("--version: %q", res.stdout)
	}
	for _, args := range [][]string{{"--json", "--version"}, {"--version", "--json"}, {"-V", "--json"}} {
		res := tr.mustRun(args...)
		var doc map[string]any
		if err := json.Unmarshal([]byte(res.stdout), &doc); err != nil || len(doc) != 1 || doc["version"] == "" || doc["version"] == nil {
			t.Errorf("%v: %v %q", args, err, res.stdout)
		}
	}
	cfg := tr.writeConfig("[jobs.a]\npaths = [\"/srv\"]\n")
	for _, args := range [][]string{{"man", "extra"}, {"config", "jobs", "extra", "--config", cfg}, {"schedule", "list", "extra", "--dir", tr.dir, "--config", cfg}} {
		res := tr.runConfig(nil, args...)
		if res.code != exitUsage || res.stdout != "" || !strings.Contains(res.stderr, "takes no arguments") {
			t.Errorf("%v: exit %d\n%s%s", args, res.code, res.stdout, res.stderr)
		}
	}
}

// TestPruneSizeReason: a prune whose repository grew says why: its marks
// when it wrote index files, other processes' data when it wrote none (an
// exploratory test read "the index files now record the marks" of a prune
// that marked nothing while a backup uploaded).
func TestPruneSizeReason(t *testing.T) {
	for _, tc := range []struct {
		st   index.PruneStats
		want string
	}{
		{index.PruneStats{BeforeBytes: 100, AfterBytes: 150}, "other snap processes stored data meanwhile"},
		{index.PruneStats{BeforeBytes: 100, AfterBytes: 101, SegmentsWritten: 1}, "the index files now record the marks"},
		// The size before counts unindexed packs too: the header says so.
		{index.PruneStats{BeforeBytes: 100, AfterBytes: 50, Packs: 3, OrphanPacks: []repo.ID{{1}}, OrphansKept: 1}, "in 3 indexed packs, 2 unindexed packs and the index"},
	} {
		var buf bytes.Buffer
		e := &env{stdout: &buf, stderr: &buf, getenv: func(string) string { return "" }, now: time.Now}
		u := &ui{mu: &sync.Mutex{}, out: &buf, err: &buf}
		u.initLog(e)
		reportPrune(u, &tc.st)
		if !strings.Contains(buf.String(), tc.want) {
			t.Errorf("prune %+v reports:\n%s\nwant %q", tc.st, buf.String(), tc.want)
		}
	}
}

// TestStatsSelection: stats of chosen snapshots (arguments or filters)
// sizes what they hold and what only they hold, which forgetting them
// frees (stats could not be narrowed; found by an exploratory test).
func TestStatsSelection(t *testing.T) {
	t.Parallel()
	tr := newTestRepo(t)
	shared := randomBytes(7, 300<<10)
	for _, host := range []string{"h1", "h2"} {
		src := filepath.Join(tr.dir, host)
		writeFile(t, filepath.Join(src, "shared"), shared)
		writeFile(t, filepath.Join(src, "own"), randomBytes(uint64(len(host)+int(host[1])), 200<<10))
		tr.mustRun("create", "--host", host, src)
	}
	var st statsJSON
	res := tr.mustRun("stats", "--json", "--host", "h1")
	if err := json.Unmarshal([]byte(res.stdout), &st); err != nil || st.Selection == nil {
		t.Fatalf("stats --json --host h1: %v\n%s", err, res.stdout)
	}
	sel := st.Selection
	// The shared file's 300 KiB are held by both; the own file's 200 KiB
	// by h1 alone (random bytes: stored about as large).
	if sel.Snapshots != 1 || sel.RawBytes != 500<<10 || sel.Blobs.RawBytes < 500<<10 || sel.ExclusiveBlobs.RawBytes < 200<<10 || sel.ExclusiveBlobs.RawBytes > 250<<10 {
		t.Errorf("selection %+v", *sel)
	}
	if res := tr.mustRun("stats", "latest", "--host", "h2"); !strings.Contains(res.stdout, "selected:          1 snapshot, 500.0 KiB raw") || !strings.Contains(res.stdout, "only they hold:") {
		t.Errorf("stats latest --host h2:\n%s", res.stdout)
	}
	if res := tr.run("stats", "--host", "nope"); res.code != exitFatal || !strings.Contains(res.stderr, `no snapshot has host "nope"`) {
		t.Errorf("stats --host nope: exit %d: %s", res.code, res.stderr)
	}
	if res := tr.mustRun("stats", "--json"); strings.Contains(res.stdout, `"selection"`) {
		t.Errorf("stats without a selection has one:\n%s", res.stdout)
	}
	// A file grown since: the later snapshot's chunk may be a delta
	// against the earlier one's, whose base it then needs; forgetting
	// the earlier snapshot frees little (it said the whole file; found by
	// a re-test).
	grow := filepath.Join(tr.dir, "h3")
	data := randomBytes(11, 200000)
	writeFile(t, filepath.Join(grow, "b"), data)
	first := tr.createID("--host", "h3", grow)
	writeFile(t, filepath.Join(grow, "b"), append(data, randomBytes(12, 50000)...))
	tr.mustRun("create", "--host", "h3", grow)
	st = statsJSON{}
	if err := json.Unmarshal([]byte(tr.mustRun("stats", "--json", first).stdout), &st); err != nil || st.Selection == nil {
		t.Fatalf("stats --json %s: %v", first[:8], err)
	}
	before := packBytes(t, tr)
	tr.mustRun("forget", first)
	tr.mustRun("prune", "--instant", "--max-unused", "0")
	if freed, said := before-packBytes(t, tr), st.Selection.ExclusiveBlobs.StoredBytes; said > freed+4096 {
		t.Errorf("stats said forgetting %s frees %d bytes; a prune freed %d", first[:8], said, freed)
	}
}

// packBytes is the size of the repository's packs, as stats tells it.
func packBytes(t *testing.T, tr *testRepo) int64 {
	var st statsJSON
	if err := json.Unmarshal([]byte(tr.mustRun("stats", "--json").stdout), &st); err != nil {
		t.Fatal(err)
	}
	return st.PackBytes
}

// TestJSONArrayIsJSONDoc: the streamed document of ls and find is byte for
// byte the one jsonDoc writes, with the array first, in the middle or last
// among the keys, empty or not, and strings that look like its key.
func TestJSONArrayIsJSONDoc(t *testing.T) {
	elems := []any{map[string]any{"path": "/a\n  \"nodes\": [", "size": 1}, nodeJSON{Path: "<b>&", Name: "b\xff"}, []int{}}
	for _, key := range []string{"a", "nodes", "zz"} {
		for _, n := range []int{0, 1, len(elems)} {
			before := map[string]any{}
			after := map[string]any{"m": "x", "y": map[string]any{"nodes": []int{1}}, "0": nil}
			full := map[string]any{key: elems[:n]}
			if n == 0 {
				full[key] = []any{}
			}
			for k, v := range after {
				full[k] = v
				if k < key {
					before[k] = v
				}
			}
			var want, got bytes.Buffer
			if err := (&ui{out: &want}).jsonDoc(full); err != nil {
				t.Fatal(err)
			}
			doc := (&ui{out: &got}).jsonArray(key)
			if err := doc.Begin(before); err != nil {
				t.Fatal(err)
			}
			for _, e := range elems[:n] {
				if err := doc.Add(e); err != nil {
					t.Fatal(err)
				}
			}
			if err := doc.End(after); err != nil {
				t.Fatal(err)
			}
			if got.String() != want.String() {
				t.Errorf("key %s, %d elements:\n%s\nwant\n%s", key, n, got.String(), want.String())
			}
		}
	}
}

// TestJSONArrayNested: an element whose own array is written in pieces
// (find's matches of one snapshot) is byte for byte jsonDoc's too, with
// fields before and after the inner array, and the inner array empty.
func TestJSONArrayNested(t *testing.T) {
	type elem struct {
		Head  string `json:"head"`
		Nodes []any  `json:"nodes"`
		Error string `json:"error,omitempty"`
	}
	inner := []any{nodeJSON{Path: "/x\n      \"nodes\": ["}, map[string]int{"a": 1}, []int{}}
	for _, n := range []int{0, 1, len(inner)} {
		elems := []elem{{Head: "one", Nodes: inner[:n]}, {Head: "two", Nodes: inner[:n], Error: "stopped"}}
		for i := range elems {
			if elems[i].Nodes == nil {
				elems[i].Nodes = []any{}
			}
		}
		var want, got bytes.Buffer
		if err := (&ui{out: &want}).jsonDoc(map[string]any{"a": 1, "matches": elems, "z": 2}); err != nil {
			t.Fatal(err)
		}
		doc := (&ui{out: &got}).jsonArray("matches")
		if err := doc.Begin(map[string]any{"a": 1}); err != nil {
			t.Fatal(err)
		}
		for _, e := range elems {
			empty := e
			empty.Nodes = []any{}
			in, err := doc.Open(empty, "nodes")
			if err != nil {
				t.Fatal(err)
			}
			for _, v := range e.Nodes {
				if err := in.Add(v); err != nil {
					t.Fatal(err)
				}
			}
			if err := in.Close(empty); err != nil {
				t.Fatal(err)
			}
		}
		if err := doc.End(map[string]any{"z": 2}); err != nil {
			t.Fatal(err)
		}
		if got.String() != want.String() {
			t.Errorf("%d inner elements:\n%s\nwant\n%s", n, got.String(), want.String())
		}
	}
}

// TestRawC1BytesEscaped: a byte 0x80–0x9f outside a UTF-8 character (a
// file name not in UTF-8) is a C1 control to a terminal outside UTF-8
// (0x9b is ESC [): ls's paths and the log's messages escape it, and leave
// other bytes as they were (found by a red-team test).
func TestRawC1BytesEscaped(t *testing.T) {
	name := "a\x9b31mRED\x9b0m"
	if got := listedPath(name); strings.ContainsRune(got, 0x9b) || strings.Contains(got, "\x9b") || !strings.Contains(got, `\x9b`) {
		t.Errorf("listedPath(%q) = %q", name, got)
	}
	if got := escapeControls("file " + name + " caf\xe9 \u00e9"); strings.Contains(got, "\x9b") || !strings.Contains(got, `\x9b31mRED\x9b0m`) || !strings.Contains(got, "caf\xe9 \u00e9") {
		t.Errorf("escapeControls = %q", got)
	}
	if got := listedPath("caf\xe9"); got != "caf\xe9" {
		t.Errorf("listedPath of a Latin-1 name without C1 bytes = %q", got)
	}
}
