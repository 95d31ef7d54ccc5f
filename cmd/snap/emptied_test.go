package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestEmptiedDirectoryWarns: a backed-up directory that comes back empty
// where an earlier snapshot held entries (the mount point of a disk that
// is not mounted) is saved, but the create exits 3 naming it, night after
// night while it stays empty; --allow-emptied takes the warning away; a
// job's forget and prune wait, so that the last snapshots with the data
// are not forgotten for the empty ones (found by an exploratory test:
// keep-last 2 and two nights without the disk lost them).
func TestEmptiedDirectoryWarns(t *testing.T) {
	tr := newTestRepo(t)
	mnt := filepath.Join(tr.dir, "mnt")
	writeFile(t, filepath.Join(mnt, "a"), []byte("a"))
	writeFile(t, filepath.Join(mnt, "b"), []byte("b"))
	tr.mustRun("create", mnt)
	for _, name := range []string{"a", "b"} {
		if err := os.Remove(filepath.Join(mnt, name)); err != nil {
			t.Fatal(err)
		}
	}
	for night := 1; night <= 2; night++ {
		res := tr.run("create", mnt)
		if res.code != exitPartial || !strings.Contains(res.stderr, mnt+" is empty, where snapshot ") || !strings.Contains(res.stderr, "held 2 entries: is a disk not mounted there?") || !strings.Contains(res.stderr, "came back empty") {
			t.Fatalf("create of the emptied directory, night %d: exit %d\n%s", night, res.code, res.stderr)
		}
	}
	if n := len(tr.listJSON()); n != 3 {
		t.Fatalf("%d snapshots, want 3: the empty ones are saved", n)
	}
	// --force reads every file anew: the check does not depend on it.
	if res := tr.run("create", "--force", mnt); res.code != exitPartial || !strings.Contains(res.stderr, "is a disk not mounted there?") {
		t.Errorf("create --force of the emptied directory: exit %d\n%s", res.code, res.stderr)
	}
	if res := tr.run("create", "--allow-emptied", mnt); res.code != 0 || strings.Contains(res.stderr, "is empty") {
		t.Errorf("create --allow-emptied: exit %d\n%s", res.code, res.stderr)
	}
	// One run with --allow-emptied acknowledges the emptying: the next
	// nights' runs without it do not look past that snapshot (they warned
	// forever after a directory rightly emptied), and list shows it.
	if res := tr.run("create", mnt); res.code != 0 || strings.Contains(res.stderr, "is empty") {
		t.Errorf("create after an --allow-emptied run: exit %d\n%s", res.code, res.stderr)
	}
	if sns := tr.listJSON(); !sns[len(sns)-2].AllowEmptied || sns[len(sns)-1].AllowEmptied {
		t.Errorf("list --json: allow_emptied %v, %v; want true, false", sns[len(sns)-2].AllowEmptied, sns[len(sns)-1].AllowEmptied)
	}
	// A directory emptied by --exclude is what was asked for: no warning.
	writeFile(t, filepath.Join(mnt, "a"), []byte("a"))
	tr.mustRun("create", mnt)
	if res := tr.run("create", "--exclude", "a", mnt); res.code != 0 || strings.Contains(res.stderr, "is empty") {
		t.Errorf("create with every entry excluded: exit %d\n%s", res.code, res.stderr)
	}
	must(t, os.Remove(filepath.Join(mnt, "a")))

	// A job with keep last = 1 on another disk: while the directory is
	// empty its runs save the empty snapshots, exit 3 and skip forget and
	// prune; the run that finds the data again forgets them.
	disk := filepath.Join(tr.dir, "disk")
	writeFile(t, filepath.Join(disk, "a"), []byte("a"))
	cfg := tr.writeConfig(`[jobs.data]
paths = ["` + disk + `"]
keep = { last = 1, prune = true }
`)
	jobSnapshots := func() int { return len(tr.listJSON("--path", disk)) }
	if res := tr.runConfig(nil, "run", "--config", cfg); res.code != 0 {
		t.Fatalf("first run: exit %d\n%s", res.code, res.stderr)
	}
	if err := os.Remove(filepath.Join(disk, "a")); err != nil {
		t.Fatal(err)
	}
	for night := 1; night <= 2; night++ {
		res := tr.runConfig(nil, "run", "--config", cfg, "--metrics-dir", tr.dir)
		if res.code != exitPartial || !strings.Contains(res.stderr, "forget skipped: a source that held data came back empty or unreadable") || !strings.Contains(res.stderr, "prune skipped") ||
			!strings.Contains(res.stderr, "1 job found a source that held data empty or unreadable") {
			t.Fatalf("run of the emptied job, night %d: exit %d\n%s%s", night, res.code, res.stdout, res.stderr)
		}
		// Not a success for monitoring: the alert on the last success
		// must fire while the disk stays away.
		if prom, err := os.ReadFile(filepath.Join(tr.dir, "snap-data.prom")); err != nil || !strings.Contains(string(prom), `snap_job_success{snap_job="data"} 0`) {
			t.Errorf("metrics after night %d without the disk (%v):\n%s", night, err, prom)
		}
		if n := jobSnapshots(); n != 1+night {
			t.Fatalf("%d snapshots of the job after night %d without the disk, want %d: none forgotten", n, night, 1+night)
		}
	}
	// The job object tells an emptied directory from unreadable files
	// (both "partial").
	res := tr.runConfig(nil, "run", "--json", "--config", cfg)
	for _, l := range jsonLines(t, res.stdout) {
		if l["type"] == "job" && (l["status"] != "partial" || l["emptied"] != true) {
			t.Errorf("run --json of the emptied job: %v", l)
		}
		// Counted as failed, as the metrics and the exit code have it.
		if l["type"] == "summary" && l["action"] == "run" && (l["succeeded"] != 0.0 || l["failed"] != 1.0) {
			t.Errorf("run --json summary of the emptied job: %v", l)
		}
	}
	writeFile(t, filepath.Join(disk, "a"), []byte("a"))
	if res := tr.runConfig(nil, "run", "--config", cfg); res.code != 0 {
		t.Fatalf("run with the directory full again: exit %d\n%s%s", res.code, res.stdout, res.stderr)
	}
	if n := jobSnapshots(); n != 1 {
		t.Errorf("%d snapshots of the job after the run with data, want 1 (keep last 1)", n)
	}
	// allow_emptied: a spool that empties is no warning, and retention runs.
	must(t, os.Remove(filepath.Join(disk, "a")))
	cfg = tr.writeConfig(`[jobs.data]
paths = ["` + disk + `"]
allow_emptied = true
keep = { last = 1, prune = true }
`)
	if res := tr.runConfig(nil, "run", "--config", cfg); res.code != 0 || strings.Contains(res.stderr, "is empty") {
		t.Fatalf("run with allow_emptied: exit %d\n%s%s", res.code, res.stdout, res.stderr)
	}
	if n := jobSnapshots(); n != 1 {
		t.Errorf("%d snapshots of the job after the run with allow_emptied, want 1 (keep last 1)", n)
	}
}

// TestPostHookFailureNotHiddenByPartial: a post hook that fails after a
// create that saved its snapshot with a warning (exit 3) makes it exit 1,
// with both said. The exit 3 hid the hook's failure, and a job counted the
// run as a success (found by an exploratory test).
func TestPostHookFailureNotHiddenByPartial(t *testing.T) {
	tr := newTestRepo(t)
	mnt := filepath.Join(tr.dir, "mnt")
	writeFile(t, filepath.Join(mnt, "a"), []byte("a"))
	tr.mustRun("create", mnt)
	if err := os.Remove(filepath.Join(mnt, "a")); err != nil {
		t.Fatal(err)
	}
	res := tr.run("create", mnt, "--post", "exit 7", "--json")
	if res.code != exitFatal || !strings.Contains(res.stdout, `"exit_code":1`) || !strings.Contains(res.stdout, "came back empty") ||
		!strings.Contains(res.stdout, `; and a post hook failed: post hook \"exit 7\" failed (exit status 7)`) {
		t.Errorf("create of the emptied directory with a failing post hook: exit %d\n%s%s", res.code, res.stdout, res.stderr)
	}
	// A job: failed, not partial, and its forget waits for the emptied
	// directory as ever.
	job := filepath.Join(tr.dir, "job")
	writeFile(t, filepath.Join(job, "a"), []byte("a"))
	cfg := tr.writeConfig(`[jobs.app]
paths = ["` + job + `"]
post = ["test -e ` + filepath.Join(job, "a") + ` || exit 7"]
keep = { last = 1 }
`)
	tr.runConfig(nil, "run", "--config", cfg)
	if err := os.Remove(filepath.Join(job, "a")); err != nil {
		t.Fatal(err)
	}
	res = tr.runConfig(nil, "run", "--json", "--config", cfg)
	if res.code != exitFatal || !strings.Contains(res.stdout, `"type":"job","job":"app","status":"failed"`) || !strings.Contains(res.stdout, `"emptied":true`) ||
		!strings.Contains(res.stdout, "forget skipped") {
		t.Errorf("run of the emptied job with a failing post hook: exit %d\n%s%s", res.code, res.stdout, res.stderr)
	}
}

// TestEmptiedCommandWarns: a command that exits 0 without writing, where
// an earlier snapshot held its output (a dump behind a wrapper that hides
// its failure), is saved empty with a warning and exit 3, night after
// night, and a job's forget waits: with a notice alone, keep last 2 and
// two such nights forgot the last good dump while the job's metrics said
// success (found by an exploratory test).
func TestEmptiedCommandWarns(t *testing.T) {
	tr := newTestRepo(t)
	src := filepath.Join(tr.dir, "dump-source")
	writeFile(t, src, []byte("the dump"))
	cfg := tr.writeConfig(`[jobs.db]
commands = [{ name = "dump.txt", command = ["cat", "` + src + `"] }]
keep = { last = 1, prune = true }
`)
	if res := tr.runConfig(nil, "run", "--config", cfg); res.code != 0 {
		t.Fatalf("first run: exit %d\n%s", res.code, res.stderr)
	}
	writeFile(t, src, nil)
	for night := 1; night <= 2; night++ {
		res := tr.runConfig(nil, "run", "--config", cfg, "--metrics-dir", tr.dir)
		if res.code != exitPartial || !strings.Contains(res.stderr, "/dump.txt: the command wrote nothing, where snapshot ") ||
			!strings.Contains(res.stderr, "held 8 B: did it fail without saying so?") || !strings.Contains(res.stderr, "forget skipped") {
			t.Fatalf("run of the emptied command, night %d: exit %d\n%s", night, res.code, res.stderr)
		}
		if prom, err := os.ReadFile(filepath.Join(tr.dir, "snap-db.prom")); err != nil || !strings.Contains(string(prom), `snap_job_success{snap_job="db"} 0`) {
			t.Errorf("metrics after night %d (%v):\n%s", night, err, prom)
		}
		if n := len(tr.listJSON("--path", "/dump.txt")); n != 1+night {
			t.Fatalf("%d snapshots after night %d of an empty dump, want %d: none forgotten", n, night, 1+night)
		}
	}
	// A command with nothing to say some nights: allow_emptied.
	if res := tr.run("create", "--allow-emptied", "--command", "dump.txt", "--", "cat", src); res.code != 0 || strings.Contains(res.stderr, "wrote nothing, where") {
		t.Errorf("create --allow-emptied: exit %d\n%s", res.code, res.stderr)
	}
	writeFile(t, src, []byte("the dump again"))
	if res := tr.runConfig(nil, "run", "--config", cfg); res.code != 0 {
		t.Fatalf("run with output again: exit %d\n%s", res.code, res.stderr)
	}
	// The job's keep last 1, and the create above, which is no job's.
	if n := len(tr.listJSON("--path", "/dump.txt")); n != 2 {
		t.Errorf("%d snapshots after the run with output again, want 2 (the job's keep last 1, and the create's)", n)
	}
}

// TestUnlistedDirectoryHoldsRetention: a subdirectory that this user can
// no longer list is saved empty (exit 3 for the unreadable entry); where
// an earlier snapshot held its entries, the run also says they are not in
// this snapshot, and a job's forget waits: after keep-last nights its
// files were gone from the repository while the job's metrics said
// success (found by an exploratory test).
func TestUnlistedDirectoryHoldsRetention(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run snap as a user who can be denied a directory")
	}
	const uid = 65534 // nobody
	tr, runAs := newUserRepo(t, uid)
	data := filepath.Join(tr.dir, "data")
	sub := filepath.Join(data, "sub")
	writeFile(t, filepath.Join(sub, "s"), []byte("in sub"))
	writeFile(t, filepath.Join(data, "top"), []byte("top"))
	for _, p := range []string{data, sub} {
		must(t, os.Chown(p, uid, uid))
		must(t, os.Chmod(p, 0o755))
	}
	for _, p := range []string{filepath.Join(sub, "s"), filepath.Join(data, "top")} {
		must(t, os.Chown(p, uid, uid))
		must(t, os.Chmod(p, 0o644))
	}
	if res := runAs("create", data); res.code != 0 {
		t.Fatalf("first create: exit %d\n%s", res.code, res.stderr)
	}
	must(t, os.Chmod(sub, 0))
	for night := 1; night <= 2; night++ {
		res := runAs("create", data)
		if res.code != exitPartial || !strings.Contains(res.stderr, sub+" could not be listed and is saved empty, where snapshot ") ||
			!strings.Contains(res.stderr, "held 1 entry: its files are not in this snapshot") {
			t.Fatalf("create with the unlisted directory, night %d: exit %d\n%s", night, res.code, res.stderr)
		}
	}
	must(t, os.Chmod(sub, 0o755))
	if res := runAs("create", data); res.code != 0 || strings.Contains(res.stderr, "could not be listed") {
		t.Errorf("create with the directory readable again: exit %d\n%s", res.code, res.stderr)
	}
	// A file likewise (it was left out night after night, exit 3, while
	// retention forgot its last copy; found by an exploratory test).
	top := filepath.Join(data, "top")
	must(t, os.Chmod(top, 0))
	for night := 1; night <= 2; night++ {
		res := runAs("create", data)
		if res.code != exitPartial || !strings.Contains(res.stderr, top+" (3 B) could not be read and is not in this snapshot, where snapshot ") {
			t.Fatalf("create with the unreadable file, night %d: exit %d\n%s", night, res.code, res.stderr)
		}
	}
	must(t, os.Chmod(top, 0o644))
	if res := runAs("create", data); res.code != 0 || strings.Contains(res.stderr, "could not be read") {
		t.Errorf("create with the file readable again: exit %d\n%s", res.code, res.stderr)
	}
	// The last snapshot taken with --allow-emptied, which held the file,
	// is looked in before the look-back stops there (it stopped before,
	// and the job's retention ran; found by a re-test).
	if res := runAs("create", "--allow-emptied", data); res.code != 0 {
		t.Fatalf("create --allow-emptied: exit %d\n%s", res.code, res.stderr)
	}
	must(t, os.Chmod(top, 0))
	if res := runAs("create", data); res.code != exitPartial || !strings.Contains(res.stderr, top+" (3 B) could not be read and is not in this snapshot, where snapshot ") {
		t.Errorf("create with the file unreadable after an --allow-emptied run: exit %d\n%s", res.code, res.stderr)
	}
	must(t, os.Chmod(top, 0o644))
	// One that never read holds nothing: no earlier snapshot held it.
	never := filepath.Join(data, "never")
	writeFile(t, never, []byte("secret"))
	must(t, os.Chmod(never, 0))
	if res := runAs("create", data); res.code != exitPartial || strings.Contains(res.stderr, "is not in this snapshot") {
		t.Errorf("create with a file that never read: exit %d\n%s", res.code, res.stderr)
	}
}

// TestUnreadableBeyondTheFirstHundredHolds: a backup not run as root of a
// tree where many entries never read (another user's files) still notices
// the one that could be read last night. Only the first 100 entries of a
// run were looked up, and the 101st file's last copy went to keep-last
// while the run looked like its usual exit 3 (found by an exploratory
// test). Thousands of such warnings show as 20 and a count.
func TestUnreadableBeyondTheFirstHundredHolds(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run snap as a user who can be denied a file")
	}
	const uid = 65534 // nobody
	tr, runAs := newUserRepo(t, uid)
	data := filepath.Join(tr.dir, "data")
	// "a-…" sort and walk before "z-key", and never read.
	for i := range 150 {
		p := filepath.Join(data, "a-others", fmt.Sprintf("f%03d", i))
		writeFile(t, p, []byte("not ours"))
		must(t, os.Chmod(p, 0))
	}
	key := filepath.Join(data, "z-key")
	writeFile(t, key, []byte("ours"))
	var many []string
	for i := range 30 {
		p := filepath.Join(data, "z-many", fmt.Sprintf("m%02d", i))
		writeFile(t, p, []byte("ours too"))
		many = append(many, p)
	}
	must(t, filepath.WalkDir(data, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || !strings.Contains(p, "a-others") {
			return os.Chown(p, uid, uid)
		}
		return nil
	}))
	if res := runAs("create", data); res.code != exitPartial || strings.Contains(res.stderr, "is not in this snapshot") {
		t.Fatalf("first create: exit %d\n%s", res.code, res.stderr)
	}
	must(t, os.Chmod(key, 0))
	res := runAs("create", data)
	if res.code != exitPartial || !strings.Contains(res.stderr, key+" (4 B) could not be read and is not in this snapshot, where snapshot ") {
		t.Fatalf("create with the newly unreadable file after 150 that never read: exit %d\n%s", res.code, res.stderr)
	}
	if strings.Contains(res.stderr, "f000 could not be read and is not in this snapshot") {
		t.Errorf("a file that never read held retention:\n%s", res.stderr)
	}
	must(t, os.Chmod(key, 0o644))
	for _, p := range many {
		must(t, os.Chmod(p, 0))
	}
	// With a command's output that came back empty too: its warning is
	// shown, not counted among the entries (found by a review).
	dumpSrc := filepath.Join(tr.dir, "dump-source")
	writeFile(t, dumpSrc, []byte("the dump"))
	must(t, os.Chmod(dumpSrc, 0o644))
	withDump := func() result { return runAs("create", data, "--command", "dump.txt", "--", "cat", dumpSrc) }
	if res := withDump(); res.code != exitPartial || !strings.Contains(res.stderr, "and 10 more entries that an earlier snapshot held could not be read or listed") {
		t.Fatalf("create with 30 newly unreadable files: exit %d\n%s", res.code, res.stderr)
	}
	writeFile(t, dumpSrc, nil)
	res = withDump()
	if res.code != exitPartial || strings.Count(res.stderr, "is not in this snapshot, where snapshot ") != maxEmptiedShown ||
		!strings.Contains(res.stderr, "and 10 more entries that an earlier snapshot held could not be read or listed") ||
		!strings.Contains(res.stderr, "/dump.txt: the command wrote nothing, where snapshot ") {
		t.Errorf("create with 30 unreadable files and an empty dump: exit %d\n%s", res.code, res.stderr)
	}
}
