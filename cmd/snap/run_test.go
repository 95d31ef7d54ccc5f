package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/snap-backup/snap/repo"
)

// jsonLines parses one JSON object per line and fails on anything else.
func jsonLines(t *testing.T, out string) []map[string]any {
	t.Helper()
	var objs []map[string]any
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("not a JSON line: %q: %v", sc.Text(), err)
		}
		if _, ok := m["type"].(string); !ok {
			t.Fatalf("JSON line without a type: %q", sc.Text())
		}
		objs = append(objs, m)
	}
	return objs
}

// lastJSONLine is the summary line of a JSON-lines output: the last line
// of type "summary" (a failed command adds its error after it), else the
// last line.
func lastJSONLine(out string) []byte {
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.Contains(lines[i], `"type":"summary"`) {
			return []byte(lines[i])
		}
	}
	return []byte(lines[len(lines)-1])
}

func hasKeys(t *testing.T, what string, m map[string]any, keys ...string) {
	t.Helper()
	for _, k := range keys {
		if _, ok := m[k]; !ok {
			t.Errorf("%s lacks %q: %v", what, k, m)
		}
	}
}

func TestRunJobs(t *testing.T) {
	tr := newTestRepo(t)
	app, db := filepath.Join(tr.dir, "app"), filepath.Join(tr.dir, "db")
	writeFile(t, filepath.Join(app, "data.txt"), []byte("application data"))
	writeFile(t, filepath.Join(app, "scratch.tmp"), []byte("excluded"))
	writeFile(t, filepath.Join(db, "dump.sql"), []byte("create table t;"))
	cfg := tr.writeConfig(`[jobs.app]
paths = ["` + app + `"]
exclude = ["*.tmp"]
tags = ["app", "nightly"]
host = "apphost"

[jobs.db]
paths = ["` + db + `"]
compression = "better"
`)
	// All jobs, with the repository and password taken from the config.
	res := tr.runConfig(nil, "run", "--config", cfg)
	if res.code != 0 {
		t.Fatalf("run: exit %d\n%s\n%s", res.code, res.stdout, res.stderr)
	}
	if !strings.Contains(res.stdout, "== job app: ok") || !strings.Contains(res.stdout, "== job db: ok") || !strings.Contains(res.stdout, "2 of 2 jobs succeeded") {
		t.Errorf("run output:\n%s", res.stdout)
	}
	// Other commands find the repository through the default config file.
	writeFile(t, filepath.Join(tr.dir, "xdg", "snap", "snap.toml"), []byte(`repository = "`+tr.repo+`"
password_file = "`+filepath.Join(tr.dir, "password")+`"
cache_dir = "`+tr.cache+`"
`))
	res = tr.runConfig(nil, "list", "--json")
	var list []snapshotJSON
	if err := json.Unmarshal([]byte(res.stdout), &list); err != nil || res.code != 0 {
		t.Fatalf("list through the default config: %v %d %s", err, res.code, res.stderr)
	}
	if len(list) != 2 || list[0].Host != "apphost" || strings.Join(list[0].Tags, ",") != "app,nightly" {
		t.Fatalf("snapshots: %+v", list)
	}
	res = tr.runConfig(nil, "ls", "--json", list[0].ID)
	if strings.Contains(res.stdout, "scratch.tmp") || !strings.Contains(res.stdout, "data.txt") {
		t.Errorf("exclude not applied:\n%s", res.stdout)
	}

	// One job by name, JSON lines.
	res = tr.runConfig(nil, "run", "db", "--json", "--config", cfg)
	if res.code != 0 {
		t.Fatalf("run db: %d %s", res.code, res.stderr)
	}
	lines := jsonLines(t, res.stdout)
	types := []string{}
	for _, l := range lines {
		types = append(types, l["type"].(string))
	}
	if strings.Join(types, ",") != "job_start,preflight,summary,job,summary" {
		t.Fatalf("line types %v\n%s", types, res.stdout)
	}
	if lines[0]["job"] != "db" || lines[2]["job"] != "db" || lines[2]["step"] != "create" {
		t.Errorf("job and step fields: %v / %v", lines[0], lines[2])
	}
	hasKeys(t, "job line", lines[3], "job", "status", "exit_code", "snapshot_id", "steps", "duration_seconds")
	final := lines[4]
	hasKeys(t, "run summary", final, "action", "jobs", "succeeded", "failed", "exit_code", "duration_seconds")
	if _, ok := final["job"]; ok || final["succeeded"] != 1.0 || final["exit_code"] != 0.0 {
		t.Errorf("run summary: %v", final)
	}

	// Unknown job: a usage error that lists the jobs.
	if res := tr.runConfig(nil, "run", "nope", "--config", cfg); res.code != exitUsage || !strings.Contains(res.stderr, "app, db") {
		t.Errorf("unknown job: %d %s", res.code, res.stderr)
	}

	// --job selects a job's snapshots: 'latest' of a job, not the newest
	// of any (found by an exploratory test: there was no way to say it
	// but the job's paths).
	res = tr.runConfig(nil, "list", "--job", "app", "--json")
	if err := json.Unmarshal([]byte(res.stdout), &list); err != nil || len(list) != 1 || list[0].Host != "apphost" {
		t.Errorf("list --job app: %v %s %s", err, res.stdout, res.stderr)
	}
	if res := tr.runConfig(nil, "ls", "--job", "app", "latest"); res.code != 0 || !strings.Contains(res.stdout, "data.txt") {
		t.Errorf("ls --job app latest: exit %d\n%s%s", res.code, res.stdout, res.stderr)
	}
	res = tr.runConfig(nil, "list", "--job", "nightly")
	if res.code != 0 || !strings.Contains(res.stderr, `no snapshot was taken by job "nightly" (jobs: app, db)`) {
		t.Errorf("list --job of no job: exit %d\n%s", res.code, res.stderr)
	}
}

// TestRunJobNamedHelp: jobs named like the library's help command ("h",
// "help") run, by name and after "--"; they used to print run's help and
// exit 0 without backing anything up.
func TestRunJobNamedHelp(t *testing.T) {
	tr := newTestRepo(t)
	app := filepath.Join(tr.dir, "app")
	writeFile(t, filepath.Join(app, "data.txt"), []byte("application data"))
	cfg := tr.writeConfig(`[jobs.h]
paths = ["` + app + `"]
[jobs.help]
paths = ["` + app + `"]
`)
	for _, args := range [][]string{{"run", "h", "--config", cfg}, {"run", "help", "--config", cfg}, {"run", "--config", cfg, "--", "h"}} {
		res := tr.runConfig(nil, args...)
		if res.code != 0 || !strings.Contains(res.stdout, ": ok in") {
			t.Errorf("snap %v: exit %d\n%s%s", args, res.code, res.stdout, res.stderr)
		}
	}
	// find takes "help" as a pattern too.
	if res := tr.mustRun("find", "help"); strings.Contains(res.stdout, "USAGE") {
		t.Errorf("find help printed help:\n%s", res.stdout)
	}
}

func TestRunFailedJobDoesNotStopOthers(t *testing.T) {
	tr := newTestRepo(t)
	src := filepath.Join(tr.dir, "src")
	writeFile(t, filepath.Join(src, "f"), []byte("x"))
	cfg := tr.writeConfig(`[jobs.gone]
paths = ["` + filepath.Join(tr.dir, "missing") + `"]

[jobs.ok]
paths = ["` + src + `"]
`)
	res := tr.runConfig(nil, "run", "--config", cfg, "--json")
	if res.code != exitFatal {
		t.Fatalf("exit %d, want %d\n%s%s", res.code, exitFatal, res.stdout, res.stderr)
	}
	lines := jsonLines(t, res.stdout)
	var jobs []map[string]any
	for _, l := range lines {
		if l["type"] == "job" {
			jobs = append(jobs, l)
		}
	}
	if len(jobs) != 2 || jobs[0]["status"] != "failed" || jobs[1]["status"] != "ok" {
		t.Fatalf("jobs: %v", jobs)
	}
	if !strings.Contains(jobs[0]["error"].(string), "missing") {
		t.Errorf("error does not name the path: %v", jobs[0]["error"])
	}
	last := lines[len(lines)-1]
	if last["type"] != "error" || last["exit_code"] != 1.0 || last["final"] != true {
		t.Errorf("last line: %v", last)
	}
	// The wrong password of a job's repository gives that failure's code.
	cfg2 := filepath.Join(tr.dir, "wrong.toml")
	writeFile(t, filepath.Join(tr.dir, "wrongpw"), []byte("nope\n"))
	writeFile(t, cfg2, []byte(`repository = "`+tr.repo+`"
password_file = "wrongpw"

[jobs.ok]
paths = ["`+src+`"]
`))
	if res := tr.runConfig(nil, "run", "--config", cfg2); res.code != exitWrongPass {
		t.Errorf("wrong password: exit %d %s", res.code, res.stderr)
	}
}

func TestConfigCheckCommand(t *testing.T) {
	tr := newTestRepo(t)
	src := filepath.Join(tr.dir, "src")
	writeFile(t, filepath.Join(src, "f"), []byte("x"))
	cfg := tr.writeConfig(`[jobs.app]
paths = ["` + src + `"]
schedule = "daily"
keep = { last = 3 }
`)
	res := tr.runConfig(nil, "config", "check", "--config", cfg)
	if res.code != 0 || !strings.Contains(res.stdout, "OK, 1 job(s) (app)") {
		t.Errorf("check of a good file: %d\n%s%s", res.code, res.stdout, res.stderr)
	}
	bad := filepath.Join(tr.dir, "bad.toml")
	writeFile(t, bad, []byte("repository = \""+tr.repo+"\"\n[jobs.x]\npaths = [\"/nonexistent-snap-path\"]\nschedule = \"sometimes\"\nkeep.lats = 3\n"))
	res = tr.runConfig(nil, "config", "check", "--config", bad, "--json")
	if res.code != exitUsage {
		t.Errorf("exit %d", res.code)
	}
	var out configCheckJSON
	if err := json.Unmarshal([]byte(res.stdout), &out); err != nil {
		t.Fatalf("%v\n%s", err, res.stdout)
	}
	lines := map[int]bool{}
	for _, p := range out.Problems {
		if p.Severity == "error" {
			lines[p.Line] = true
		}
	}
	if out.Valid || !lines[3] || !lines[4] || !lines[5] {
		t.Errorf("problems: %+v", out.Problems)
	}
	res = tr.runConfig(nil, "config", "jobs", "--names", "--config", cfg)
	if strings.TrimSpace(res.stdout) != "app" {
		t.Errorf("jobs --names: %q", res.stdout)
	}
	// A command's program that is not there, and a command's output that
	// would go inside a backed-up path (the run refused it), are errors
	// of the check already.
	cmds := tr.writeConfig(`[jobs.missing]
paths = ["` + src + `"]
commands = [{ name = "a.out", command = ["/nonexistent/bin/tool", "x"] }, { name = "b.out", command = "nonexistent-tool | gzip" }]

[jobs.inside]
paths = ["` + src + `"]
commands = [{ name = "` + strings.TrimPrefix(src, "/") + `/f.out", command = ["echo"] }, { name = "` + strings.TrimPrefix(src, "/") + `/g.out", command = ["echo"] }]

[jobs.parent]
paths = ["` + src + `"]
commands = [{ name = "` + strings.TrimPrefix(filepath.Dir(src), "/") + `", command = ["echo"] }]
`)
	res = tr.runConfig(nil, "config", "check", "--config", cmds)
	if res.code != exitUsage || !strings.Contains(res.stderr+res.stdout, "a.out: program /nonexistent/bin/tool not found") ||
		strings.Contains(res.stderr+res.stdout, "b.out") || !strings.Contains(res.stderr+res.stdout, "jobs.inside: the dump or command output "+src+"/f.out and the backed-up path "+src+" would overlap") ||
		!strings.Contains(res.stderr+res.stdout, "; the dump or command output "+src+"/g.out and the backed-up path "+src+" would overlap") ||
		!strings.Contains(res.stderr+res.stdout, "jobs.parent: the dump or command output "+filepath.Dir(src)+" and the backed-up path "+src+" would overlap") {
		t.Errorf("config check of commands: exit %d\n%s%s", res.code, res.stdout, res.stderr)
	}
	// Every command that reads the config exits 2 on one with errors, or
	// on a config file that is missing (exit codes, docs/usage.md).
	for _, args := range [][]string{{"run"}, {"config", "jobs"}, {"schedule", "list", "--dir", filepath.Join(tr.dir, "units")}} {
		for _, file := range []string{bad, filepath.Join(tr.dir, "missing.toml")} {
			res := tr.runConfig(nil, append(args, "--config", file)...)
			if res.code != exitUsage || !strings.Contains(res.stderr, filepath.Base(file)) {
				t.Errorf("%v --config %s: exit %d\n%s", args, filepath.Base(file), res.code, res.stderr)
			}
		}
	}
	// config check --json judges a missing file in its document too.
	res = tr.runConfig(nil, "config", "check", "--json", "--config", filepath.Join(tr.dir, "missing.toml"))
	var missing struct {
		Valid    bool
		Errors   int
		Problems []Problem
	}
	if err := json.Unmarshal([]byte(res.stdout), &missing); err != nil || res.code != exitUsage || missing.Valid || missing.Errors != 1 ||
		len(missing.Problems) != 1 || !strings.Contains(missing.Problems[0].Message, "missing.toml") {
		t.Errorf("config check --json of a missing file: exit %d, %v\n%s", res.code, err, res.stdout)
	}
}

// TestRunInterrupted stops a run in the middle of a create, as systemd
// does with SIGTERM: the run must not exit 0, and says so last.
func TestRunInterrupted(t *testing.T) {
	tr := newTestRepo(t)
	src := filepath.Join(tr.dir, "src")
	writeFile(t, filepath.Join(src, "small"), []byte("x"))
	// An endless stream keeps the create busy (a sparse file no longer
	// does: its holes are not read).
	cfg := tr.writeConfig(`[jobs.big]
paths = ["` + src + `"]
commands = [{ name = "endless", command = ["yes"] }]

[jobs.later]
paths = ["` + src + `/small"]
`)
	cmd := exec.Command(snapBin, "run", "--json", "--config", cfg)
	cmd.Env = append(baseEnv(), tr.configEnv("SNAP_PROGRESS_INTERVAL=20ms")...)
	pipe, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Stop the create once it reports progress.
	var stdout bytes.Buffer
	sc := bufio.NewScanner(pipe)
	signalled := false
	for sc.Scan() {
		stdout.Write(append(sc.Bytes(), '\n'))
		if !signalled && strings.Contains(sc.Text(), `"type":"progress"`) {
			if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			signalled = true
		}
	}
	err = cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != exitInterrupted {
		t.Fatalf("exit: %v, want %d\n%s", err, exitInterrupted, stdout.String())
	}
	lines := jsonLines(t, stdout.String())
	last := lines[len(lines)-1]
	if last["type"] != "error" || last["exit_code"] != float64(exitInterrupted) || !strings.Contains(last["message"].(string), "consistent") {
		t.Errorf("last line: %v", last)
	}
	var summary map[string]any
	for _, l := range lines {
		if l["type"] == "summary" && l["action"] == "run" {
			summary = l
		}
	}
	jobs, _ := summary["jobs"].([]any)
	if len(jobs) != 2 || jobs[0].(map[string]any)["status"] != "interrupted" || jobs[1].(map[string]any)["status"] != "skipped" ||
		summary["failed"] != 1.0 || summary["skipped"] != 1.0 {
		t.Errorf("run summary: %v", summary)
	}
	// Nothing was saved, and the next run works.
	if res := tr.runConfig(nil, "run", "later", "--config", cfg); res.code != 0 {
		t.Errorf("run after the interrupt: %d %s", res.code, res.stderr)
	}
}

// TestRunDatabaseAndHooks runs a job with a SQLite database (dumped by the
// real sqlite3) and pre/post hooks, then one whose pre hook fails.
func TestRunDatabaseAndHooks(t *testing.T) {
	if _, err := exec.LookPath("sqlite3"); err != nil {
		t.Fatal("sqlite3 is not installed (.ci/run installs it)")
	}
	tr := newTestRepo(t)
	src := filepath.Join(tr.dir, "src")
	writeFile(t, filepath.Join(src, "f"), []byte("x"))
	db := filepath.Join(tr.dir, "app.db")
	if out, err := exec.Command("sqlite3", db, "create table t(v text); insert into t values ('from the job');").CombinedOutput(); err != nil {
		t.Fatalf("sqlite3: %v %s", err, out)
	}
	marks := filepath.Join(tr.dir, "marks")
	cfg := tr.writeConfig(`[jobs.app]
paths = ["` + src + `"]
databases = ["sqlite://` + db + `"]
tags = ["app"]
pre = ["echo pre $SNAP_TAGS >> ` + marks + `"]
post = ["echo post $SNAP_STATUS $SNAP_SNAPSHOT_ID >> ` + marks + `"]
min_free = "1K"
commands = [{ name = "/cmd/out.txt", command = "echo from a command" }, { name = "argv.txt", command = ["printf", "%s", "argv"] }]

[jobs.broken]
paths = ["` + src + `"]
pre = ["exit 7"]
post = ["echo post-broken $SNAP_STATUS >> ` + marks + `"]
`)
	res := tr.runConfig(nil, "run", "app", "--config", cfg, "--json")
	if res.code != 0 {
		t.Fatalf("run: %d\n%s\n%s", res.code, res.stdout, res.stderr)
	}
	var id string
	for _, l := range jsonLines(t, res.stdout) {
		if l["type"] == "job" {
			id = l["snapshot_id"].(string)
		}
	}
	res = tr.runConfig(nil, "dump", "--config", cfg, id, "/db/sqlite/app.sql")
	if !strings.Contains(res.stdout, "from the job") {
		t.Errorf("dump of the database: %d %q %s", res.code, res.stdout, res.stderr)
	}
	for path, want := range map[string]string{"/cmd/out.txt": "from a command\n", "/argv.txt": "argv"} {
		if res := tr.runConfig(nil, "dump", "--config", cfg, id, path); res.stdout != want {
			t.Errorf("dump %s: %q, want %q (%s)", path, res.stdout, want, res.stderr)
		}
	}
	res = tr.runConfig(nil, "run", "broken", "--config", cfg)
	if res.code != exitFatal {
		t.Errorf("failing pre hook: exit %d\n%s", res.code, res.stderr)
	}
	b, _ := os.ReadFile(marks)
	want := "pre app\npost success " + id + "\npost-broken failure\n"
	if string(b) != want {
		t.Errorf("hooks ran:\n%s\nwant:\n%s", b, want)
	}
}

// TestRunForgetPruneCheck runs a job with every step: its keep policy
// forgets only the job's own snapshots, prune runs, and check reads data.
func TestRunForgetPruneCheck(t *testing.T) {
	tr := newTestRepo(t)
	src := filepath.Join(tr.dir, "src")
	other := filepath.Join(tr.dir, "other")
	writeFile(t, filepath.Join(other, "f"), []byte("not the job's"))
	cfg := tr.writeConfig(`[jobs.app]
paths = ["` + src + `"]
tags = ["app"]
check = "100%"

[jobs.app.keep]
last = 2
prune = true
delete_delay = "0"
`)
	// Snapshots of the same paths by hand, without the job's tag and with
	// it, and one of other paths with it: the job's policy must leave them
	// all alone (only snapshots that carry the job's name are its own).
	writeFile(t, filepath.Join(src, "data"), []byte("generation 0"))
	tr.mustRun("create", src)
	tr.mustRun("create", "--tag", "app", src)
	tr.mustRun("create", "--tag", "app", other)
	for i := 1; i <= 3; i++ {
		writeFile(t, filepath.Join(src, "data"), bytes.Repeat([]byte{byte(i)}, 200<<10))
		res := tr.runConfig(nil, "run", "--config", cfg, "--json")
		if res.code != 0 {
			t.Fatalf("run %d: exit %d\n%s\n%s", i, res.code, res.stdout, res.stderr)
		}
		var steps []string
		for _, l := range jsonLines(t, res.stdout) {
			if l["type"] == "summary" && l["step"] != nil {
				steps = append(steps, l["step"].(string))
			}
			if l["type"] == "summary" && l["step"] == "forget" {
				want := 0.0
				if i == 3 {
					want = 1
				}
				if l["removed"] != want || l["kept"] != float64(min(i, 2)) {
					t.Errorf("run %d: forget removed %v, kept %v", i, l["removed"], l["kept"])
				}
			}
			if l["type"] == "summary" && l["step"] == "check" && (l["ok"] != true || l["read_packs"] == 0.0) {
				t.Errorf("run %d: check %v", i, l)
			}
		}
		if strings.Join(steps, ",") != "create,forget,prune,check" {
			t.Errorf("run %d: step summaries %v", i, steps)
		}
	}
	var list []snapshotJSON
	if err := json.Unmarshal([]byte(tr.mustRun("list", "--json").stdout), &list); err != nil {
		t.Fatal(err)
	}
	var mine, others int
	for _, sn := range list {
		if sn.Job == "app" {
			if len(sn.Tags) != 1 || sn.Tags[0] != "app" || sn.Paths[0] != src {
				t.Errorf("job snapshot %s: tags %v, paths %v", sn.ShortID, sn.Tags, sn.Paths)
			}
			mine++
		} else {
			others++
		}
	}
	if mine != 2 || others != 3 {
		t.Errorf("after three runs with keep.last = 2: %d of the job's snapshots, %d others; want 2 and 3", mine, others)
	}
	// Human output of a full run.
	res := tr.runConfig(nil, "run", "--config", cfg)
	for _, want := range []string{"== job app: create, forget, prune, check", "forget (last 2): removed 1 snapshot, kept 2", "no errors found", "== job app: ok"} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("run output lacks %q:\n%s", want, res.stdout)
		}
	}
}

// TestRunForgetKeepsNone: a policy that would keep none of the job's
// snapshots (a tag in keep.tags that the job's snapshots lack) makes the
// run fail and forget nothing; it used to remove every snapshot of the job,
// the one just saved among them, and report the job "ok". config check
// warns of such a policy, and of within = "0d", which the run refuses (an
// error would stop every job of the file).
func TestRunForgetKeepsNone(t *testing.T) {
	tr := newTestRepo(t)
	src := filepath.Join(tr.dir, "src")
	writeFile(t, filepath.Join(src, "data"), []byte("x"))
	cfg := tr.writeConfig(`[jobs.app]
paths = ["` + src + `"]
tags = ["app"]
keep = { tags = ["monthly"], prune = true }
`)
	res := tr.runConfig(nil, "config", "check", "--config", cfg)
	if res.code != 0 || !strings.Contains(res.stdout+res.stderr, "keep.tags is the whole policy and names none of the job's tags") {
		t.Errorf("config check: exit %d\n%s%s", res.code, res.stdout, res.stderr)
	}
	for i := range 2 {
		res = tr.runConfig(nil, "run", "--config", cfg)
		want := fmt.Sprintf("forget: the keep policy (tag monthly) keeps none of the job's %s; refusing to forget", plural(i+1, "snapshot", "snapshots"))
		if res.code != exitFatal || !strings.Contains(res.stderr+res.stdout, want) {
			t.Errorf("run %d: exit %d, want %q\n%s%s", i, res.code, want, res.stdout, res.stderr)
		}
	}
	if n := strings.Count(tr.mustRun("list").stdout, "app"); n != 2 {
		t.Errorf("%d snapshots of the job left, want both:\n%s", n, tr.mustRun("list").stdout)
	}
	// With one tagged by hand, the policy keeps that one, and would remove
	// the snapshot each run saves: refused too (it removed it, night after
	// night, and reported the job ok).
	tr.mustRun("tag", "--add", "monthly", "latest")
	res = tr.runConfig(nil, "run", "--config", cfg)
	if res.code != exitFatal || !strings.Contains(res.stdout+res.stderr, "would remove the snapshot this run just saved") {
		t.Errorf("run with a tagged snapshot: exit %d\n%s%s", res.code, res.stdout, res.stderr)
	}
	if n := strings.Count(tr.mustRun("list").stdout, "app"); n != 3 {
		t.Errorf("%d snapshots of the job left, want all 3", n)
	}
	cfg = tr.writeConfig(`[jobs.app]
paths = ["` + src + `"]
keep = { within = "0d" }
`)
	if res = tr.runConfig(nil, "config", "check", "--config", cfg); res.code != 0 || !strings.Contains(res.stdout+res.stderr, `warning: jobs.app.keep.within: "0d" keeps nothing, and 'snap run' refuses to forget with it`) {
		t.Errorf("config check of within = 0d: exit %d\n%s%s", res.code, res.stdout, res.stderr)
	}
	// Beside another rule too, as config check says: it was taken as
	// absent, and the run forgot by the other rule (found by an
	// exploratory test).
	cfg = tr.writeConfig(`[jobs.app]
paths = ["` + src + `"]
keep = { last = 1, within = "0d" }
`)
	before := len(tr.listJSON())
	res = tr.runConfig(nil, "run", "--config", cfg)
	if res.code != exitFatal || !strings.Contains(res.stdout+res.stderr, `job app failed: forget: keep.within "0d" keeps nothing: give a span such as "30d" or "1y6m"; refusing to forget`) {
		t.Errorf("run with last = 1 and within = 0d: exit %d\n%s%s", res.code, res.stdout, res.stderr)
	}
	if n := len(tr.listJSON()); n != before+1 {
		t.Errorf("%d snapshots after the run, want %d: nothing forgotten", n, before+1)
	}
}

// TestPostHooksRunOnEarlyFailures: post hooks run whatever happened, also
// when the repository cannot be opened or a path is missing (an unmounted
// disk): exactly the failures a monitoring ping in a post hook must report.
func TestPostHooksRunOnEarlyFailures(t *testing.T) {
	tr := newTestRepo(t)
	log := filepath.Join(tr.dir, "hooks.log")
	post := `post = ["echo \"$SNAP_STATUS $SNAP_EXIT_CODE\" >> ` + log + `; echo posted"]`
	cfg := tr.writeConfig(`[jobs.norepo]
repository = "` + filepath.Join(tr.dir, "none") + `"
paths = ["` + tr.dir + `"]
` + post + `

[jobs.nopath]
paths = ["` + filepath.Join(tr.dir, "missing") + `"]
` + post + "\n")
	res := tr.runConfig(nil, "run", "--config", cfg)
	if res.code == 0 {
		t.Fatalf("run: exit 0\n%s", res.stdout)
	}
	got, err := os.ReadFile(log)
	if err != nil {
		t.Fatalf("no post hook ran: %v\n%s", err, res.stderr)
	}
	if lines := strings.Split(strings.TrimSpace(string(got)), "\n"); len(lines) != 2 || !strings.HasPrefix(lines[0], "failure ") || !strings.HasPrefix(lines[1], "failure ") {
		t.Errorf("post hooks wrote %q, want two failures", got)
	}
	// In JSON, the failure to open the repository is the create step's,
	// and so are the post hook's lines (the job listed no steps, and
	// those lines had no step).
	res = tr.runConfig(nil, "run", "--config", cfg, "--json", "norepo")
	hookLines := 0
	for _, l := range jsonLines(t, res.stdout) {
		if l["type"] == "job" {
			steps, _ := l["steps"].([]any)
			if len(steps) != 1 || steps[0].(map[string]any)["step"] != "create" || steps[0].(map[string]any)["status"] != "failed" {
				t.Errorf("job summary of a job whose repository is missing: steps %v", l["steps"])
			}
		}
		if l["type"] == "stderr" {
			hookLines++
			if l["step"] != "create" {
				t.Errorf("a post hook's line without its step: %v", l)
			}
		}
	}
	if hookLines == 0 {
		t.Errorf("no line of the post hook in:\n%s", res.stdout)
	}
	must(t, os.Remove(log))
	res = tr.run("create", filepath.Join(tr.dir, "missing"), "--post", `echo "$SNAP_STATUS $SNAP_EXIT_CODE" >> `+log)
	if got, _ := os.ReadFile(log); res.code != 1 || string(got) != "failure 1\n" {
		t.Errorf("create of a missing path: exit %d, post hook wrote %q\n%s", res.code, got, res.stderr)
	}
}

// TestRunPostHookFailureKeepsRetention: a post hook that fails after the
// snapshot was saved (a monitoring ping whose server is down) fails the
// job, but its forget still runs: retention must not stop with the ping.
func TestRunPostHookFailureKeepsRetention(t *testing.T) {
	tr := newTestRepo(t)
	src := filepath.Join(tr.dir, "src")
	writeFile(t, filepath.Join(src, "f"), []byte("x"))
	cfg := tr.writeConfig(`[jobs.app]
paths = ["` + src + `"]
post = ["exit 7"]
keep = { last = 1 }
`)
	for i := range 3 {
		writeFile(t, filepath.Join(src, "f"), []byte{byte(i)})
		res := tr.runConfig(nil, "run", "--config", cfg, "--json")
		if res.code != exitFatal {
			t.Fatalf("run %d: exit %d, want 1\n%s", i, res.code, res.stderr)
		}
		var job map[string]any
		for _, l := range jsonLines(t, res.stdout) {
			if l["type"] == "job" {
				job = l
			}
		}
		steps, _ := job["steps"].([]any)
		if job["status"] != "failed" || len(steps) != 2 || steps[1].(map[string]any)["status"] != "ok" {
			t.Errorf("run %d: job %v", i, job)
		}
	}
	var list []snapshotJSON
	must(t, json.Unmarshal([]byte(tr.mustRun("list", "--json").stdout), &list))
	if len(list) != 1 {
		t.Errorf("%d snapshots after three runs with keep.last = 1", len(list))
	}
}

// TestRunFinallySeesTheWholeJob: a job's post hooks run right after its
// create and see the create's outcome; its finally commands run after the
// check and see the job's: a check that finds damage is a failure there
// (a monitoring ping in a post hook said success; found by an exploratory
// test). A finally command that fails fails a job that succeeded.
func TestRunFinallySeesTheWholeJob(t *testing.T) {
	tr := newTestRepo(t)
	src := filepath.Join(tr.dir, "src")
	writeFile(t, filepath.Join(src, "f"), randomBytes(5, 300<<10))
	tr.mustRun("create", src)
	pack := largestPack(t, tr.repo)
	data, err := os.ReadFile(pack)
	must(t, err)
	data[len(data)/2] ^= 0xff
	must(t, os.Chmod(pack, 0o644))
	must(t, os.WriteFile(pack, data, 0o644))

	log := filepath.Join(tr.dir, "hooks.log")
	writeFile(t, filepath.Join(src, "g"), []byte("new"))
	cfg := tr.writeConfig(`[jobs.app]
paths = ["` + src + `"]
post = ['echo "post $SNAP_HOOK $SNAP_STATUS $SNAP_EXIT_CODE" >> ` + log + `']
finally = ['echo "finally $SNAP_HOOK $SNAP_STATUS $SNAP_EXIT_CODE $SNAP_JOB ${SNAP_SNAPSHOT_ID:+saved} $SNAP_ERROR" >> ` + log + `']
check = "100%"
`)
	res := tr.runConfig(nil, "run", "--config", cfg)
	got, err := os.ReadFile(log)
	must(t, err)
	lines := strings.Split(strings.TrimSpace(string(got)), "\n")
	if res.code != exitFatal || len(lines) != 2 || lines[0] != "post post success 0" ||
		!strings.HasPrefix(lines[1], "finally finally failure 1 app saved check: ") {
		t.Errorf("a job whose check found damage: exit %d, hooks:\n%s\n%s", res.code, got, res.stderr)
	}

	// The check passing, a finally command that fails fails the job.
	must(t, os.Remove(log))
	cfg = tr.writeConfig(`[jobs.app]
paths = ["` + src + `"]
finally = ['echo "finally $SNAP_STATUS $SNAP_EXIT_CODE" >> ` + log + `', "exit 4", 'echo second >> ` + log + `']
`)
	res = tr.runConfig(nil, "run", "--config", cfg, "--json")
	got, err = os.ReadFile(log)
	must(t, err)
	var job map[string]any
	for _, l := range jsonLines(t, res.stdout) {
		if l["type"] == "job" {
			job = l
		}
	}
	if res.code != exitFatal || string(got) != "finally success 0\nsecond\n" || job["status"] != "failed" || !strings.Contains(fmt.Sprint(job["error"]), `finally hook "exit 4"`) {
		t.Errorf("a finally command that fails: exit %d, job %v, hooks:\n%s\n%s", res.code, job, got, res.stderr)
	}
}

// TestRunErrorNamesStoppedJob: an interrupted run names the job that was
// running, not one of the jobs skipped after it.
func TestRunErrorNamesStoppedJob(t *testing.T) {
	err := runError([]jobResult{
		{Job: "files", Status: statusOK},
		{Job: "hangpost", Status: statusFailed, ExitCode: exitInterrupted},
		{Job: "after", Status: statusSkipped, ExitCode: exitInterrupted},
	})
	if err == nil || !strings.Contains(err.Error(), "job hangpost stopped") || exitCode(err) != exitInterrupted {
		t.Fatalf("interrupted run: %v (exit %d), want job hangpost named and exit %d", err, exitCode(err), exitInterrupted)
	}
}

// TestHookTimeout: a pre hook that hangs is stopped after --hook-timeout
// (with the process it started), the create fails with a message naming
// the flag, nothing is saved, and the post hooks still run; a job's
// hook_timeout does the same for snap run.
func TestHookTimeout(t *testing.T) {
	t.Parallel()
	tr := newTestRepo(t)
	src := filepath.Join(tr.dir, "src")
	writeFile(t, filepath.Join(src, "f"), []byte("x"))
	child := filepath.Join(tr.dir, "child.pid")
	post := filepath.Join(tr.dir, "post")
	start := time.Now()
	res := tr.run("create", src, "--hook-timeout", "1s", "--pre", "sleep 60 & echo $! > "+child+"; wait", "--post", "echo $SNAP_STATUS > "+post)
	if res.code != 1 || !strings.Contains(res.stderr, "did not finish within 1s") || !strings.Contains(res.stderr, "--hook-timeout") {
		t.Fatalf("hanging pre hook: exit %d, want 1 and a message naming --hook-timeout\n%s", res.code, res.stderr)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("the hook was stopped after %s", d)
	}
	if b, _ := os.ReadFile(post); strings.TrimSpace(string(b)) != "failure" {
		t.Errorf("post hook after the timeout saw status %q", b)
	}
	if b, err := os.ReadFile(child); err == nil {
		pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
		alive := func() bool { // not gone, and not a zombie waiting for init
			stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
			return err == nil && !strings.Contains(string(stat), ") Z ")
		}
		for i := 0; i < 50 && pid > 0 && alive(); i++ {
			time.Sleep(100 * time.Millisecond)
		}
		if pid > 0 && alive() {
			t.Errorf("the hook's child %d still runs", pid)
		}
	}
	if out := tr.mustRun("list", "--json").stdout; strings.Contains(out, `"short_id"`) {
		t.Errorf("a snapshot was saved:\n%s", out)
	}
	// A hook that starts something in the background without redirecting
	// its output has finished: snap waits a few seconds for the output,
	// then goes on, without calling it stopped (it is not).
	// That is snap's warning, not a line of the hook's (it was shown as
	// "pre hook: (snap: …)", and as hook output in JSON).
	res = tr.run("create", src, "--hook-timeout", "1s", "--pre", "sleep 30 &")
	if res.code != 0 || strings.Contains(res.stderr, "did not finish") || !strings.Contains(res.stderr, "warning: pre hook \"sleep 30 &\" exited, but a process it started kept its output open; snap waited") {
		t.Errorf("a pre hook that left a process holding its output: exit %d\n%s", res.code, res.stderr)
	}
	cfg := tr.writeConfig(`[jobs.app]
paths = ["` + src + `"]
pre = ["sleep 60"]
hook_timeout = "1s"
`)
	res = tr.runConfig(nil, "run", "app", "--config", cfg)
	if res.code != 1 || !strings.Contains(res.stderr+res.stdout, "did not finish within 1s") {
		t.Fatalf("snap run with hook_timeout: exit %d\n%s%s", res.code, res.stdout, res.stderr)
	}
}

// TestRunJobRepository: a relative repository in the config is relative to
// the config file's directory (a timer runs in /); SNAP_REPOSITORY left in
// the shell does not send a job elsewhere; --repo on the command line
// does, with a warning.
func TestRunJobRepository(t *testing.T) {
	tr := newTestRepo(t)
	other := newTestRepo(t)
	src := filepath.Join(tr.dir, "src")
	writeFile(t, filepath.Join(src, "a"), []byte("a"))
	writeFile(t, filepath.Join(tr.dir, "password"), []byte("test-password\n"))
	path := filepath.Join(tr.dir, "snap.toml")
	writeFile(t, path, []byte("repository = \"repo\"\npassword_file = \"password\"\ncache_dir = \"cache\"\n\n[jobs.app]\npaths = [\""+src+"\"]\n"))
	if res := tr.runConfig([]string{"SNAP_REPOSITORY=" + other.repo}, "run", "--config", path); res.code != 0 {
		t.Fatalf("run with a relative repository and SNAP_REPOSITORY set: exit %d\n%s", res.code, res.stderr)
	}
	if n, m := tr.snapshotCount(), other.snapshotCount(); n != 1 || m != 0 {
		t.Fatalf("snapshots in the job's repository %d, in SNAP_REPOSITORY's %d; want 1 and 0", n, m)
	}
	// Nor do password variables left in the shell replace the job's
	// password file (a plain "wrong password" before).
	wrong := filepath.Join(tr.dir, "wrong-password")
	writeFile(t, wrong, []byte("not it\n"))
	for _, env := range [][]string{{"SNAP_PASSWORD_FILE=" + wrong}, {"SNAP_PASSWORD=not it"}, {"SNAP_PASSWORD_COMMAND=echo not it"}} {
		if res := tr.runConfig(env, "run", "--config", path); res.code != 0 {
			t.Errorf("run with %v left in the environment: exit %d\n%s", env, res.code, res.stderr)
		}
	}
	if res := tr.runConfig(nil, "run", "--config", path, "--password-file", wrong); res.code != exitWrongPass {
		t.Errorf("run --password-file (the command line wins): exit %d, want %d", res.code, exitWrongPass)
	}
	// --repo on the command line counts even when SNAP_REPOSITORY says
	// the same.
	metrics := filepath.Join(tr.dir, "metrics")
	must(t, os.MkdirAll(metrics, 0o755))
	res := tr.runConfig([]string{"SNAP_PASSWORD=test-password", "SNAP_REPOSITORY=" + other.repo, "SNAP_METRICS_DIR=" + metrics}, "run", "--config", path, "--repo", other.repo)
	if res.code != 0 || !strings.Contains(res.stderr, "(--repo), not the config's "+filepath.Join(tr.dir, "repo")) {
		t.Fatalf("run --repo: exit %d\n%s", res.code, res.stderr)
	}
	if n := other.snapshotCount(); n != 1 {
		t.Errorf("run --repo stored %d snapshots there, want 1", n)
	}
	// Its success is not the job's: no metrics (they said the job's
	// backup was fresh; found by an exploratory test).
	if _, err := os.Stat(filepath.Join(metrics, "snap-app.prom")); err == nil || !strings.Contains(res.stderr, "metrics not written: this run went to another repository") {
		t.Errorf("run --repo wrote the job's metrics (%v):\n%s", err, res.stderr)
	}
}

// TestRunBadExcludeFileIsUsageError: a job whose exclude file holds what
// snap does not take fails with exit 2, as create with the same file does.
func TestRunBadExcludeFileIsUsageError(t *testing.T) {
	tr := newTestRepo(t)
	app := filepath.Join(tr.dir, "app")
	writeFile(t, filepath.Join(app, "f"), []byte("x"))
	ex := filepath.Join(tr.dir, "excludes")
	writeFile(t, ex, []byte("!keep.tmp\n"))
	cfg := tr.writeConfig(`[jobs.a]
paths = ["` + app + `"]
exclude_file = ["` + ex + `"]
`)
	if res := tr.runConfig(nil, "run", "--config", cfg); res.code != exitUsage || !strings.Contains(res.stderr, "negation") {
		t.Errorf("run with a bad exclude file: exit %d, want %d\n%s", res.code, exitUsage, res.stderr)
	}
	if res := tr.run("create", "--exclude-file", ex, app); res.code != exitUsage {
		t.Errorf("create with a bad exclude file: exit %d, want %d", res.code, exitUsage)
	}
}

// TestRunBrokenJobFailsAlone: errors inside one job fail that job (exit 2),
// and the others run: a mistake in a job added today stopped every job's
// backup tonight. An error in the file's own keys still stops the run.
func TestRunBrokenJobFailsAlone(t *testing.T) {
	tr := newTestRepo(t)
	src := filepath.Join(tr.dir, "src")
	writeFile(t, filepath.Join(src, "f"), []byte("x"))
	cfg := tr.writeConfig(`[jobs.good]
paths = ["` + src + `"]

[jobs.bad]
paths = ["` + src + `"]
keep = { daily = -1 }

[jobs."-x"]
paths = ["` + src + `"]

[jobs.""]
paths = ["` + src + `"]
`)
	res := tr.runConfig(nil, "run", "--config", cfg, "--json")
	if res.code != exitUsage || tr.snapshotCount() != 1 {
		t.Fatalf("run with two broken jobs: exit %d, %d snapshots; want 2 and the good job's one\n%s%s", res.code, tr.snapshotCount(), res.stdout, res.stderr)
	}
	status := map[string]any{}
	started := map[string]bool{}
	for _, l := range jsonLines(t, res.stdout) {
		switch l["type"] {
		case "job":
			status[l["job"].(string)] = l["status"]
		case "job_start":
			started[l["job"].(string)] = true
		}
	}
	if status["good"] != "ok" || status["bad"] != "failed" || status["-x"] != "failed" || status[`""`] != "failed" {
		t.Errorf("job statuses %v", status)
	}
	// Every job's lines begin with job_start, a broken job's too (found
	// by an exploratory test).
	for job := range status {
		if !started[job] {
			t.Errorf("no job_start for job %s", job)
		}
	}
	for _, line := range strings.Split(res.stdout, "\n") {
		if !strings.Contains(line, `"type":"summary"`) && strings.Count(line, `"job":`) > 1 { // Go's decoder takes the last of two
			t.Errorf("a key written twice: %s", line)
		}
	}
	// Running the good job alone works, with a warning about the other.
	res = tr.runConfig(nil, "run", "--config", cfg, "good")
	if res.code != 0 || !strings.Contains(res.stderr, "the config has errors in job bad, which this run leaves out") {
		t.Errorf("run good: exit %d\n%s", res.code, res.stderr)
	}
	if res = tr.runConfig(nil, "run", "--config", cfg, "bad"); res.code != exitUsage || !strings.Contains(res.stderr+res.stdout, "jobs.bad.keep.daily") {
		t.Errorf("run bad: exit %d\n%s%s", res.code, res.stdout, res.stderr)
	}
	// An error in the file's own keys stops every job; so does one of its
	// settings written below a job's table, which TOML gives the job.
	before := tr.snapshotCount()
	for _, doc := range []string{"compresion = \"fastest\"\n\n[jobs.good]\npaths = [\"" + src + "\"]\n",
		"[jobs.good]\npaths = [\"" + src + "\"]\nlimit_upload = \"1MiB\"\n"} {
		cfg = tr.writeConfig(doc)
		if res = tr.runConfig(nil, "run", "--config", cfg); res.code != exitUsage || tr.snapshotCount() != before {
			t.Errorf("run with an error of the whole file: exit %d, %d snapshots\n%s", res.code, tr.snapshotCount(), res.stderr)
		}
	}
	if !strings.Contains(res.stderr, "a setting of the whole file, but TOML puts it in [jobs.good]") {
		t.Errorf("limit_upload below [jobs.good]: %s", res.stderr)
	}
}

// TestRunSameJobTwice: a run of a job started while another run of it is
// still going (by hand, during the timer's) fails at once with exit 11,
// runs neither pre nor post hooks (the first run's post hooks would
// restart the application under the second's dumps), and saves nothing;
// the next run after the first has ended works. Another job runs.
func TestRunSameJobTwice(t *testing.T) {
	t.Parallel()
	tr := newTestRepo(t)
	src := filepath.Join(tr.dir, "src")
	writeFile(t, filepath.Join(src, "f"), []byte("x"))
	hookLog, goOn := filepath.Join(tr.dir, "hooks.log"), filepath.Join(tr.dir, "go")
	cfg := tr.writeConfig(`[jobs.app]
paths = ["` + src + `"]
pre = ["echo pre >> ` + hookLog + `; while [ ! -e ` + goOn + ` ]; do sleep 0.05; done"]
post = ["echo post $SNAP_JOB >> ` + hookLog + `"]

[jobs.other]
paths = ["` + src + `"]
`)
	first := exec.Command(snapBin, "run", "app", "--config", cfg)
	first.Env = append(baseEnv(), tr.configEnv()...)
	var out bytes.Buffer
	first.Stdout, first.Stderr = &out, &out
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	for i := 0; ; i++ { // until the first run is in its pre hook
		if b, _ := os.ReadFile(hookLog); string(b) == "pre\n" {
			break
		}
		if i == 600 {
			_ = first.Process.Kill()
			t.Fatalf("the first run's pre hook did not start:\n%s", out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Another cache directory is the same job: the lock is not kept there.
	// The refused run leaves the job's metrics to the run that goes on.
	metrics := filepath.Join(tr.dir, "metrics")
	must(t, os.Mkdir(metrics, 0o755))
	res := tr.runConfig([]string{"SNAP_CACHE_DIR=" + filepath.Join(tr.dir, "othercache")}, "run", "--json", "--metrics-dir", metrics, "app", "other", "--config", cfg)
	if _, err := os.Stat(filepath.Join(metrics, "snap-app.prom")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the refused run wrote the running job's metrics: %v", err)
	}
	if _, err := os.Stat(filepath.Join(metrics, "snap-other.prom")); err != nil {
		t.Errorf("the other job's metrics: %v", err)
	}
	if res.code != exitLocked || !strings.Contains(res.stdout, "job app is already running (pid "+strconv.Itoa(first.Process.Pid)) {
		t.Errorf("second run: exit %d, want %d and the first run's pid\n%s%s", res.code, exitLocked, res.stdout, res.stderr)
	}
	for _, l := range jsonLines(t, res.stdout) {
		if l["type"] == "job" && l["job"] == "app" && (l["status"] != "failed" || l["exit_code"] != float64(exitLocked)) {
			t.Errorf("job app of the second run: %v", l)
		}
		if l["type"] == "job" && l["job"] == "other" && l["status"] != "ok" {
			t.Errorf("job other of the second run: %v", l)
		}
	}
	if b, _ := os.ReadFile(hookLog); string(b) != "pre\n" {
		t.Errorf("hooks while the first run held the job: %q", b)
	}
	writeFile(t, goOn, nil)
	if err := first.Wait(); err != nil {
		t.Fatalf("first run: %v\n%s", err, out.String())
	}
	if res := tr.runConfig(nil, "run", "app", "--config", cfg); res.code != 0 {
		t.Errorf("a run after the first ended: exit %d\n%s", res.code, res.stderr)
	}
	if b, _ := os.ReadFile(hookLog); string(b) != "pre\npost app\npre\npost app\n" {
		t.Errorf("hook log: %q", b)
	}
}

// TestRunJobTimeout: a job's timeout stops a run that hangs (a dump
// waiting on a lock, a password command that never answers): the job
// fails with exit 1 and says so, saves nothing, its post hooks run, and
// the next job runs.
func TestRunJobTimeout(t *testing.T) {
	t.Parallel()
	tr := newTestRepo(t)
	src := filepath.Join(tr.dir, "src")
	writeFile(t, filepath.Join(src, "f"), []byte("x"))
	post := filepath.Join(tr.dir, "post")
	cfg := tr.writeConfig(`[jobs.dump]
paths = ["` + src + `"]
commands = [{ name = "slow.dump", command = "echo begin; sleep 60; echo end" }]
timeout = "1s"
post = ["echo $SNAP_STATUS >> ` + post + `"]

[jobs.password]
paths = ["` + src + `"]
password_command = "sleep 60"
timeout = "1s"
post = ["echo $SNAP_STATUS >> ` + post + `"]

[jobs.fine]
paths = ["` + src + `"]
timeout = "1m"

[jobs.slowpost]
paths = ["` + src + `"]
timeout = "1s"
post = ["sleep 2; exit 1"]
`)
	start := time.Now()
	res := tr.runConfig(nil, "run", "--json", "--config", cfg)
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("the run took %s", d)
	}
	if res.code != exitFatal {
		t.Errorf("exit %d, want %d\n%s%s", res.code, exitFatal, res.stdout, res.stderr)
	}
	status := map[string]string{}
	for _, l := range jsonLines(t, res.stdout) {
		if l["type"] == "job" {
			status[l["job"].(string)] = l["status"].(string)
			switch l["job"] {
			case "dump", "password":
				if l["exit_code"] != float64(exitFatal) || !strings.Contains(l["error"].(string), "did not finish within 1s (the job's timeout) and was stopped") {
					t.Errorf("job %v: %v", l["job"], l)
				}
				// What it waited for is named (it was not; found by an
				// exploratory test).
				if l["job"] == "password" && !strings.Contains(l["error"].(string), `and was stopped waiting for the password command "sleep 60";`) {
					t.Errorf("job password: the password command is not named: %v", l["error"])
				}
				// So is the dump (a dump waiting on a table lock was not).
				if l["job"] == "dump" && !strings.Contains(l["error"].(string), "and was stopped waiting for /slow.dump from sh;") {
					t.Errorf("job dump: the command is not named: %v", l["error"])
				}
			case "slowpost":
				// The snapshot was saved before the timeout; its post hook
				// then failed, which is the job's error, not the timeout
				// that passed while the hook ran (found in review).
				if e, _ := l["error"].(string); !strings.Contains(e, "a post hook failed") || strings.Contains(e, "did not finish within") {
					t.Errorf("job slowpost: %v", l)
				}
			}
		}
	}
	if status["dump"] != "failed" || status["password"] != "failed" || status["fine"] != "ok" || status["slowpost"] != "failed" {
		t.Errorf("statuses %v", status)
	}
	if n := tr.snapshotCount(); n != 2 {
		t.Errorf("%d snapshots, want the fine job's and slowpost's", n)
	}
	if b, _ := os.ReadFile(post); string(b) != "failure\nfailure\n" {
		t.Errorf("post hooks saw %q; want a failure (not an interruption) from each job that timed out", b)
	}
	if res := tr.runConfig(nil, "config", "check", "--config", tr.writeConfig("[jobs.x]\npaths = [\"/tmp\"]\ntimeout = \"1d\"\n")); res.code != exitUsage || !strings.Contains(res.stderr+res.stdout, "jobs.x.timeout") {
		t.Errorf("timeout = 1d: exit %d\n%s%s", res.code, res.stdout, res.stderr)
	}
}

// TestRunJobTimeoutInPostHook: post hooks run to their end past the job's
// timeout, but the job fails (exit 1) naming the hook that ran past it,
// and its later steps are skipped for the timeout. It was "ok" without a
// keep policy, and with one its forget was blamed ("did not finish within
// 2s", 0 s; found by an exploratory test).
func TestRunJobTimeoutInPostHook(t *testing.T) {
	t.Parallel()
	tr := newTestRepo(t)
	src := filepath.Join(tr.dir, "src")
	writeFile(t, filepath.Join(src, "f"), []byte("x"))
	done := filepath.Join(tr.dir, "done")
	cfg := tr.writeConfig(`[jobs.nokeep]
paths = ["` + src + `"]
timeout = "1s"
post = ["sleep 2; echo $SNAP_JOB >> ` + done + `"]

[jobs.withkeep]
paths = ["` + src + `"]
timeout = "1s"
post = ["sleep 2; echo $SNAP_JOB >> ` + done + `"]
keep = { last = 5, prune = true }
`)
	res := tr.runConfig(nil, "run", "--json", "--config", cfg)
	if res.code != exitFatal {
		t.Errorf("exit %d, want %d\n%s%s", res.code, exitFatal, res.stdout, res.stderr)
	}
	jobs := 0
	for _, l := range jsonLines(t, res.stdout) {
		if l["type"] != "job" {
			continue
		}
		jobs++
		steps, _ := l["steps"].([]any)
		if l["status"] != statusFailed || l["exit_code"] != float64(exitFatal) || len(steps) == 0 {
			t.Errorf("job %v: %v", l["job"], l)
			continue
		}
		create := steps[0].(map[string]any)
		if e, _ := create["error"].(string); create["status"] != statusFailed || !strings.Contains(e, "was saved, but post hook \"sleep 2; echo") ||
			!strings.Contains(e, "was still running when the job's timeout (1s) passed") {
			t.Errorf("job %v: create step %v", l["job"], create)
		}
		for _, st := range steps[1:] {
			st := st.(map[string]any)
			if st["status"] != statusSkipped || st["error"] != "skipped: the job's timeout (1s) had passed" {
				t.Errorf("job %v: step %v", l["job"], st)
			}
		}
	}
	if jobs != 2 {
		t.Errorf("%d job lines, want 2\n%s", jobs, res.stdout)
	}
	if b, _ := os.ReadFile(done); string(b) != "nokeep\nwithkeep\n" {
		t.Errorf("post hooks that ran to their end: %q", b)
	}
	if n := tr.snapshotCount(); n != 2 {
		t.Errorf("%d snapshots, want 2", n)
	}
}

// TestHangupIsAnInterrupt: SIGHUP (the SSH connection of an admin running
// a backup by hand drops) stops a create as SIGTERM does: the post hook
// runs, so the application the pre hook stopped starts again, and the lock
// goes. It killed snap outright before (exit 129, no post hook, the lock
// left; found by an exploratory test).
func TestHangupIsAnInterrupt(t *testing.T) {
	t.Parallel()
	tr := newTestRepo(t)
	src := filepath.Join(tr.dir, "src")
	writeFile(t, filepath.Join(src, "small"), []byte("x"))
	hooks := filepath.Join(tr.dir, "hooks.log")
	// An endless stream (yes) keeps the create busy.
	cmd := exec.Command(snapBin, "create", src, "--pre", "echo stopped-app >> "+hooks, "--post", "echo started-app >> "+hooks, "--command", "endless", "--", "yes")
	cmd.Env = append(baseEnv(), tr.env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	must(t, cmd.Start())
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if b, _ := os.ReadFile(hooks); strings.Contains(string(b), "stopped-app") {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("the pre hook did not run: %s", stderr.String())
		}
	}
	time.Sleep(300 * time.Millisecond) // into the create
	must(t, cmd.Process.Signal(syscall.SIGHUP))
	err := cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != exitInterrupted {
		t.Fatalf("exit after SIGHUP: %v, want %d\n%s", err, exitInterrupted, stderr.String())
	}
	if b, _ := os.ReadFile(hooks); string(b) != "stopped-app\nstarted-app\n" {
		t.Errorf("hooks after SIGHUP: %q", b)
	}
	if locks, _ := os.ReadDir(filepath.Join(tr.repo, "locks")); len(locks) != 0 {
		t.Errorf("%d locks left after SIGHUP", len(locks))
	}
}

// TestRunInterruptedWhileOpening: Ctrl-C while a job waits for the index
// cache another snap process holds ends it as interrupted, saying so
// (it said "list index: context canceled").
func TestRunInterruptedWhileOpening(t *testing.T) {
	t.Parallel()
	tr := newTestRepo(t)
	src := filepath.Join(tr.dir, "src")
	writeFile(t, filepath.Join(src, "f"), []byte("x"))
	tr.mustRun("create", src) // makes the cache
	dbs, _ := filepath.Glob(filepath.Join(tr.cache, "*", "index.db"))
	if len(dbs) != 1 {
		t.Fatalf("index caches: %v", dbs)
	}
	f, err := os.OpenFile(dbs[0], os.O_RDWR, 0)
	must(t, err)
	defer f.Close()
	must(t, syscall.Flock(int(f.Fd()), syscall.LOCK_EX)) // as another snap's bbolt holds it
	cfg := tr.writeConfig(`[jobs.app]
paths = ["` + src + `"]
`) // its cache_dir is tr.cache
	cmd := exec.Command(snapBin, "run", "app", "--config", cfg)
	cmd.Env = append(baseEnv(), tr.configEnv()...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	must(t, cmd.Start())
	time.Sleep(1 * time.Second) // waiting for the cache (3 s)
	must(t, cmd.Process.Signal(os.Interrupt))
	err = cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != exitInterrupted || !strings.Contains(stderr.String(), "stopped while opening the repository; nothing was changed") {
		t.Errorf("interrupted while waiting for the cache: %v\n%s", err, stderr.String())
	}
}

// TestRunPruneStepYieldsToAnotherPrune: a job's prune step that finds
// another prune under way (another job or host of the repository) is
// skipped, and the job does not fail for it: it failed with exit 11 and
// paged for backups that had gone well (found by an exploratory test).
func TestRunPruneStepYieldsToAnotherPrune(t *testing.T) {
	tr := newTestRepo(t)
	src := filepath.Join(tr.dir, "src")
	writeFile(t, filepath.Join(src, "a"), []byte("a"))
	cfg := tr.writeConfig(`[jobs.app]
paths = ["` + src + `"]
keep = { last = 1, prune = true }
`)
	tr.plantLock(repo.LockInfo{Time: time.Now(), Created: time.Now(), Prune: true, Host: "db1", PID: 4242, Command: "run nightly"})
	res := tr.runConfig(nil, "run", "--json", "--config", cfg)
	if res.code != 0 {
		t.Fatalf("run beside another prune: exit %d\n%s%s", res.code, res.stdout, res.stderr)
	}
	if !strings.Contains(res.stdout, `"step":"prune","status":"skipped","error":"prune skipped: another prune is running (pid 4242 on host db1`) {
		t.Errorf("the prune step is not reported skipped:\n%s", res.stdout)
	}
	if !strings.Contains(res.stdout, `"step":"forget","status":"ok"`) {
		t.Errorf("the forget step did not run:\n%s", res.stdout)
	}
}

// TestForgetInstantPruneBesideABackup: 'forget --prune --instant' while a
// backup holds its lock forgets, and then fails (exit 11) saying the
// forget stands and the prune did not run: it said only "repository is
// locked", and with -q nothing of the snapshots gone (found by an
// exploratory test).
func TestForgetInstantPruneBesideABackup(t *testing.T) {
	tr := newTestRepo(t)
	src := filepath.Join(tr.dir, "src")
	for _, s := range []string{"a", "b", "c"} {
		writeFile(t, filepath.Join(src, "f"), []byte(s))
		tr.mustRun("create", src)
	}
	tr.plantLock(repo.LockInfo{Time: time.Now(), Created: time.Now(), Host: "web1", PID: 4343, Command: "create"})
	res := tr.run("forget", "--keep-last", "1", "--prune", "--instant", "-q")
	if res.code != exitLocked || !strings.Contains(res.stderr, "this forget removed 2 snapshots, and they stay removed; the prune did not run: ") ||
		!strings.Contains(res.stderr, "pid 4343") {
		t.Errorf("forget --prune --instant beside a backup: exit %d\n%s%s", res.code, res.stdout, res.stderr)
	}
	if n := len(tr.listJSON()); n != 1 {
		t.Errorf("%d snapshots left, want 1", n)
	}
}

// TestForgetPruneYieldsToAnotherPrune: 'forget --prune' beside another
// prune does as a job does: the forget stands, the prune is skipped with
// a warning, exit 0; a dry run needs no prune lock. It exited 11 after the
// snapshots were gone (found by an exploratory test).
func TestForgetPruneYieldsToAnotherPrune(t *testing.T) {
	tr := newTestRepo(t)
	src := filepath.Join(tr.dir, "src")
	for _, s := range []string{"a", "b", "c"} {
		writeFile(t, filepath.Join(src, "f"), []byte(s))
		tr.mustRun("create", src)
	}
	tr.plantLock(repo.LockInfo{Time: time.Now(), Created: time.Now(), Prune: true, Host: "db1", PID: 4242, Command: "prune"})
	res := tr.run("forget", "-n", "--keep-last", "1", "--prune")
	if res.code != 0 || !strings.Contains(res.stdout, "would remove 2 snapshots") {
		t.Errorf("forget -n --prune beside another prune: exit %d\n%s%s", res.code, res.stdout, res.stderr)
	}
	res = tr.run("forget", "--keep-last", "2", "--prune", "-q")
	if res.code != 0 || !strings.Contains(res.stderr, "prune skipped: another prune is running (pid 4242 on host db1") {
		t.Errorf("forget --prune beside another prune: exit %d\n%s%s", res.code, res.stdout, res.stderr)
	}
	res = tr.run("forget", "--keep-last", "1", "--prune", "--json")
	if res.code != 0 || !strings.Contains(res.stdout, `"prune_skipped": "prune skipped: another prune is running`) {
		t.Errorf("forget --prune --json beside another prune: exit %d\n%s%s", res.code, res.stdout, res.stderr)
	}
	if n := len(tr.listJSON()); n != 1 {
		t.Errorf("%d snapshots left, want 1", n)
	}
}

// TestHookRunsSnap: a hook may run snap itself (usage.md): with the
// password from the config's password_file, the hook gets
// SNAP_PASSWORD_FILE beside SNAP_REPOSITORY; it got only the latter, and
// its snap found no password (found by an exploratory test).
func TestHookRunsSnap(t *testing.T) {
	t.Parallel()
	tr := newTestRepo(t)
	src := filepath.Join(tr.dir, "src")
	writeFile(t, filepath.Join(src, "f"), []byte("x"))
	listed := filepath.Join(tr.dir, "listed")
	cfg := tr.writeConfig(`[jobs.app]
paths = ["` + src + `"]
post = ["` + snapBin + ` list --json > ` + listed + `"]
`)
	if res := tr.runConfig(nil, "run", "app", "--config", cfg); res.code != 0 {
		t.Fatalf("run with a post hook running snap: exit %d\n%s%s", res.code, res.stdout, res.stderr)
	}
	if b, err := os.ReadFile(listed); err != nil || !strings.Contains(string(b), `"job": "app"`) {
		t.Errorf("the hook's snap list: %v\n%s", err, b)
	}
}

// TestHookPasswordSource: a hook gets exactly the password source the run
// used. With the config's password_command, a SNAP_PASSWORD or
// SNAP_PASSWORD_FILE left in the shell was passed on to the hooks beside
// it, and snap takes those first: the hook's snap failed with a wrong
// password (found by an exploratory test).
func TestHookPasswordSource(t *testing.T) {
	t.Parallel()
	tr := newTestRepo(t)
	src := filepath.Join(tr.dir, "src")
	writeFile(t, filepath.Join(src, "f"), []byte("x"))
	pw := filepath.Join(tr.dir, "password")
	writeFile(t, pw, []byte("test-password\n"))
	wrong := filepath.Join(tr.dir, "wrong-password")
	writeFile(t, wrong, []byte("not it\n"))
	seen := filepath.Join(tr.dir, "seen")
	hook := `env | grep ^SNAP_PASSWORD | sort > ` + seen + ` && ` + snapBin + ` list --json >/dev/null`
	for _, c := range []struct {
		source string // the config's password key
		env    []string
		want   string // the hook's SNAP_PASSWORD* variables
	}{
		{`password_command = "cat ` + pw + `"`, []string{"SNAP_PASSWORD=not it"}, "SNAP_PASSWORD_COMMAND=cat " + pw},
		{`password_command = "cat ` + pw + `"`, []string{"SNAP_PASSWORD_FILE=" + wrong}, "SNAP_PASSWORD_COMMAND=cat " + pw},
		{`password_file = "` + pw + `"`, []string{"SNAP_PASSWORD=not it", "SNAP_PASSWORD_COMMAND=echo not it"}, "SNAP_PASSWORD_FILE=" + pw},
	} {
		cfg := filepath.Join(tr.dir, "snap.toml")
		writeFile(t, cfg, []byte("repository = \""+tr.repo+"\"\n"+c.source+"\ncache_dir = \"cache\"\n\n[jobs.app]\npaths = [\""+src+"\"]\npost = ['"+hook+"']\n"))
		if res := tr.runConfig(c.env, "run", "--config", cfg); res.code != 0 {
			t.Errorf("%s with %v left in the environment: exit %d\n%s", c.source, c.env, res.code, res.stderr)
		}
		if b, _ := os.ReadFile(seen); strings.TrimSpace(string(b)) != c.want {
			t.Errorf("%s with %v: the hook's password variables:\n%s\nwant %s", c.source, c.env, b, c.want)
		}
	}
	// snap create with --password-command, SNAP_PASSWORD set beside it.
	res := tr.runEnv([]string{"SNAP_PASSWORD=not it"}, nil, "create", src, "--password-command", "cat "+pw, "--post", hook)
	if b, _ := os.ReadFile(seen); res.code != 0 || strings.TrimSpace(string(b)) != "SNAP_PASSWORD_COMMAND=cat "+pw {
		t.Errorf("create --password-command with SNAP_PASSWORD set: exit %d, the hook's password variables:\n%s\n%s", res.code, b, res.stderr)
	}
}

// TestHookOutputInOrder: a hook's lines on standard output and error come
// out in the order it wrote them (read from two pipes at once, they were
// mixed up, differently on each run; found by an exploratory test).
func TestHookOutputInOrder(t *testing.T) {
	t.Parallel()
	tr := newTestRepo(t)
	src := filepath.Join(tr.dir, "src")
	writeFile(t, filepath.Join(src, "f"), []byte("x"))
	var hook strings.Builder
	var want []string
	for i := 1; i <= 40; i++ {
		to := ""
		if i%2 == 0 {
			to = " >&2"
		}
		fmt.Fprintf(&hook, "echo line%d%s; ", i, to)
		want = append(want, fmt.Sprintf("line%d", i))
	}
	for _, args := range [][]string{{"create", src, "--pre", hook.String()}, {"create", "--json", src, "--pre", hook.String()}} {
		res := tr.mustRun(args...)
		got := regexp.MustCompile(`line\d+`).FindAllString(res.stdout+res.stderr, -1)
		if !slices.Equal(got, want) {
			t.Errorf("%v: hook lines %v", args[:2], got)
		}
	}
}

// TestRunBrokenJobFirstError: the error a broken job's run names as "the
// first" is the first in the file, as config check lists them: it named
// one of a later line (found by an exploratory test).
func TestRunBrokenJobFirstError(t *testing.T) {
	t.Parallel()
	tr := newTestRepo(t)
	cfg := tr.writeConfig(`[jobs.wrongtype]
paths = ["/tmp"]
keep = { last = "7" }
hook_timeout = 30
`)
	res := tr.runConfig(nil, "run", "--config", cfg)
	if res.code != exitUsage || !strings.Contains(res.stderr, "the first: "+cfg+":7: jobs.wrongtype.keep") {
		t.Errorf("exit %d, want %d and the error of line 7 first\n%s", res.code, exitUsage, res.stderr)
	}
}

// TestRunCheckSubsetRotates: a job's check n/t reads the next group at
// each run, whatever the schedule, so t runs read every pack once; a new
// cache starts again at n. A fixed "1/7" read the same seventh every night
// (found by an exploratory test), and going by the day number left groups
// unread for jobs that skip days (found by a review).
func TestRunCheckSubsetRotates(t *testing.T) {
	t.Parallel()
	tr := newTestRepo(t)
	src := filepath.Join(tr.dir, "src")
	writeFile(t, filepath.Join(src, "f"), []byte("x"))
	cfg := tr.writeConfig(`[jobs.app]
paths = ["` + src + `"]
check = "2/3"
`)
	var got []string
	for range 4 {
		res := tr.runConfig(nil, "run", "--json", "--config", cfg)
		if res.code != 0 {
			t.Fatalf("run: exit %d\n%s", res.code, res.stderr)
		}
		m := regexp.MustCompile(`"read_data_subset":"(\d/3)"`).FindStringSubmatch(res.stdout)
		if m == nil {
			t.Fatalf("no subset in the check's result:\n%s", res.stdout)
		}
		got = append(got, m[1])
	}
	if strings.Join(got, " ") != "2/3 3/3 1/3 2/3" {
		t.Errorf("groups read by four runs: %v, want 2/3 3/3 1/3 2/3", got)
	}
	files, _ := filepath.Glob(filepath.Join(tr.dir, "cache", "jobs", "app-*.check"))
	if len(files) != 1 {
		t.Fatalf("rotation files: %v", files)
	}
	must(t, os.Remove(files[0]))
	if res := tr.runConfig(nil, "run", "--json", "--config", cfg); !strings.Contains(res.stdout, `"read_data_subset":"2/3"`) {
		t.Errorf("a run without the rotation file: exit %d\n%s", res.code, res.stdout)
	}
}

// TestRunCommandPipelineFails: a job's command given as a string with a
// pipeline runs with pipefail, so "dump | gzip" whose dump fails fails the
// job and saves no snapshot (under /bin/sh, dash, the pipeline's status
// was gzip's: the snapshot was saved holding a gzip of nothing; found by
// an exploratory test). A command that succeeds without writing a byte is
// saved, with a notice (--command too).
func TestRunCommandPipelineFails(t *testing.T) {
	tr := newTestRepo(t)
	cfg := tr.writeConfig(`[jobs.pipe]
commands = [{ name = "dump.sql.gz", command = "sh -c 'echo pg_dump: error: no such database >&2; exit 3' | gzip" }]

[jobs.empty]
commands = [{ name = "empty.txt", command = ["true"] }]

[jobs.fine]
commands = [{ name = "data.txt", command = "echo data | cat" }]
`)
	// bash runs no startup file: $BASH_ENV would run first, and add
	// its output to the dump (found in review).
	benv := filepath.Join(tr.dir, "benv.sh")
	writeFile(t, benv, []byte("echo from BASH_ENV\n"))
	res := tr.runConfig([]string{"BASH_ENV=" + benv}, "run", "--config", cfg, "pipe")
	// The error names the command as written, not the shell that ran it.
	if res.code != exitFatal || !strings.Contains(res.stderr, "dump.sql.gz") || !strings.Contains(res.stderr, "exit status 3") || !strings.Contains(res.stderr, "no such database") ||
		!strings.Contains(res.stderr, `command "sh -c 'echo pg_dump: error: no such database >&2; exit 3' | gzip" failed`) {
		t.Errorf("a pipeline whose first program fails: exit %d\n%s", res.code, res.stderr)
	}
	if n := tr.snapshotCount(); n != 0 {
		t.Errorf("%d snapshots saved", n)
	}
	res = tr.runConfig(nil, "run", "--config", cfg, "empty")
	if res.code != 0 || !strings.Contains(res.stderr, "empty.txt: (snap: the command succeeded but wrote nothing") {
		t.Errorf("a command that writes nothing: exit %d\n%s", res.code, res.stderr)
	}
	res = tr.run("create", "--json", "--command", "nothing.out", "--", "true")
	if res.code != 0 || !strings.Contains(res.stdout, `"message":"the command succeeded but wrote nothing`) {
		t.Errorf("--command writing nothing, --json: exit %d\n%s%s", res.code, res.stdout, res.stderr)
	}
	if n := tr.snapshotCount(); n != 2 {
		t.Errorf("%d snapshots saved, want 2", n)
	}
	if res := tr.runConfig([]string{"BASH_ENV=" + benv}, "run", "--config", cfg, "fine"); res.code != 0 {
		t.Fatalf("a pipeline that works: exit %d\n%s", res.code, res.stderr)
	}
	if got := tr.mustRun("dump", "latest", "/data.txt").stdout; got != "data\n" {
		t.Errorf("a pipeline's output: %q, want %q", got, "data\n")
	}
}

// TestHookGetsCacheAndLimits: a hook's snap is told the repository and so
// reads no config: the run's cache directory and rate limits (the config's
// here) come in the hook's environment, so that a post hook 'snap copy'
// uses them (it built a second cache in ~/.cache; found by an exploratory
// test).
func TestHookGetsCacheAndLimits(t *testing.T) {
	tr := newTestRepo(t)
	src := filepath.Join(tr.dir, "src")
	writeFile(t, filepath.Join(src, "f"), []byte("x"))
	out := filepath.Join(tr.dir, "hook.env")
	cfg := tr.writeConfig(`limit_upload = "5MiB"

[jobs.app]
paths = ["` + src + `"]
post = ["env | grep -E '^SNAP_(CACHE_DIR|LIMIT_UPLOAD|LIMIT_DOWNLOAD)=' | sort > ` + out + `"]
`)
	if res := tr.runConfig(nil, "--config", cfg, "run", "app"); res.code != 0 {
		t.Fatalf("run: exit %d\n%s", res.code, res.stderr)
	}
	b, err := os.ReadFile(out)
	must(t, err)
	if want := "SNAP_CACHE_DIR=" + filepath.Join(tr.dir, "cache") + "\nSNAP_LIMIT_UPLOAD=5242880\n"; string(b) != want {
		t.Errorf("hook environment:\n%s\nwant:\n%s", b, want)
	}
}

// TestRunDumpConcurrency: a job's dumps and commands run at most
// dump_concurrency at once (a thousand at once took 2.2 GB; found by an
// exploratory test), starting in the order given; when one fails,
// those not started never run, and no snapshot is saved.
func TestRunDumpConcurrency(t *testing.T) {
	t.Parallel()
	tr := newTestRepo(t)
	log := filepath.Join(tr.dir, "log")
	cmds := func(names ...string) string {
		var b strings.Builder
		for i, n := range names {
			if i > 0 {
				b.WriteString(", ")
			}
			// Each says when it starts and ends, and overlaps the others
			// for a while.
			fmt.Fprintf(&b, `{ name = "%s", command = "echo start >> %s; sleep 0.3; echo end >> %s; echo %s" }`, n, log, log, n)
		}
		return b.String()
	}
	cfg := tr.writeConfig(`[jobs.two]
dump_concurrency = 2
commands = [` + cmds("f", "e", "d", "c", "b", "a") + `]

[jobs.one]
dump_concurrency = 1
commands = [{ name = "c2", command = "echo c2 >> ` + log + `; exit 7" }, ` + cmds("a2", "b2") + `]

[jobs.default]
commands = [` + cmds("1", "2", "3", "4", "5", "6") + `]
`)
	most := func() int {
		b, err := os.ReadFile(log)
		must(t, err)
		must(t, os.Remove(log))
		n, top := 0, 0
		for _, l := range strings.Fields(string(b)) {
			switch l {
			case "start":
				n++
			case "end":
				n--
			}
			top = max(top, n)
		}
		return top
	}
	tr.mustRun("run", "--config", cfg, "two")
	if n := most(); n != 2 {
		t.Errorf("dump_concurrency = 2: %d commands ran at once", n)
	}
	for _, n := range []string{"a", "f"} {
		if got := tr.mustRun("dump", "latest", "/"+n).stdout; got != n+"\n" {
			t.Errorf("command %s stored %q", n, got)
		}
	}
	tr.mustRun("run", "--config", cfg, "default")
	if n := most(); n < 2 || n > 4 {
		t.Errorf("by default %d commands ran at once, want at most 4", n)
	}
	// One at a time, in the order given: c2 fails first, and a2 and b2
	// never start.
	res := tr.runConfig(nil, "run", "--config", cfg, "one")
	if b, _ := os.ReadFile(log); res.code != exitFatal || string(b) != "c2\n" || !strings.Contains(res.stderr, "exit status 7") {
		t.Errorf("a failing command with dump_concurrency = 1: exit %d, log %q\n%s", res.code, b, res.stderr)
	}
	if n := tr.snapshotCount(); n != 2 {
		t.Errorf("%d snapshots, want 2", n)
	}
	// Bad values are named.
	res = tr.run("create", "--dump-concurrency", "0", "--command", "x", "--", "true")
	if res.code != exitUsage || !strings.Contains(res.stderr, "--dump-concurrency 0") {
		t.Errorf("--dump-concurrency 0: exit %d\n%s", res.code, res.stderr)
	}
	_, problems, _ := parseConfig("/c.toml", "repository = \"/r\"\n[jobs.a]\npaths = [\"/srv\"]\ndump_concurrency = 0\n")
	if len(problems) != 1 || !strings.Contains(problems[0].String(), "jobs.a.dump_concurrency: must be how many dumps and commands may run at once (1 to 1048576), not 0") {
		t.Errorf("dump_concurrency = 0: %v", problems)
	}
}

// TestRunTimeoutInPreHookNamesIt: a job stopped by its timeout while a pre
// hook runs names that hook (the message named nothing it waited for;
// found by an exploratory test).
func TestRunTimeoutInPreHookNamesIt(t *testing.T) {
	tr := newTestRepo(t)
	src := filepath.Join(tr.dir, "src")
	writeFile(t, filepath.Join(src, "f"), []byte("x"))
	cfg := tr.writeConfig(`[jobs.app]
paths = ["` + src + `"]
pre = ["sleep 30"]
timeout = "1s"
`)
	res := tr.runConfig(nil, "run", "--config", cfg)
	if res.code != exitFatal || !strings.Contains(res.stderr, `was stopped waiting for pre hook "sleep 30"`) || tr.snapshotCount() != 0 {
		t.Errorf("a job's timeout in a pre hook: exit %d\n%s", res.code, res.stderr)
	}
}

// TestRunJobTagsOnceEach: a tag a job lists twice is recorded once, as
// create --tag records it (found by an exploratory test).
func TestRunJobTagsOnceEach(t *testing.T) {
	tr := newTestRepo(t)
	src := filepath.Join(tr.dir, "src")
	writeFile(t, filepath.Join(src, "f"), []byte("x"))
	cfg := tr.writeConfig(`[jobs.app]
paths = ["` + src + `"]
tags = ["n", "m", "n"]
`)
	tr.runConfig(nil, "run", "--config", cfg)
	list := tr.listJSON()
	if len(list) != 1 || !slices.Equal(list[0].Tags, []string{"n", "m"}) {
		t.Errorf("snapshots: %+v", list)
	}
}

// TestPreHookMakesWhatIsBackedUp: a job's paths and SQLite file that its
// pre hook makes (a ZFS or btrfs snapshot, a copy taken with sqlite3's
// .backup) are looked at after the hook ran: the job failed every night,
// before its pre hook ran, and config check called them errors (found by
// an exploratory test). Missing after the hooks, the run fails naming
// that.
func TestPreHookMakesWhatIsBackedUp(t *testing.T) {
	tr := newTestRepo(t)
	live := filepath.Join(tr.dir, "live.db")
	if out, err := exec.Command("sqlite3", live, "CREATE TABLE t(a); INSERT INTO t VALUES (42);").CombinedOutput(); err != nil {
		t.Fatalf("sqlite3: %v\n%s", err, out)
	}
	made := filepath.Join(tr.dir, "made")
	cp := filepath.Join(tr.dir, "copy.db")
	cfg := tr.writeConfig(`[jobs.made]
paths = ["` + made + `"]
databases = ["sqlite://` + cp + `"]
pre = ["mkdir -p ` + made + ` && echo x > ` + made + `/dump.txt && sqlite3 ` + live + ` \".backup ` + cp + `\""]
post = ["rm -rf ` + made + ` ` + cp + `"]

[jobs.never]
paths = ["` + made + `"]
pre = ["true"]
`)
	res := tr.runConfig(nil, "config", "check", "--config", cfg)
	if res.code != 0 || !strings.Contains(res.stdout, "a pre hook must make it, or the job fails") {
		t.Errorf("config check of paths a pre hook makes: exit %d\n%s%s", res.code, res.stdout, res.stderr)
	}
	if res := tr.runConfig(nil, "run", "--config", cfg, "made"); res.code != 0 {
		t.Fatalf("run of a job whose pre hook makes its path and database file: exit %d\n%s", res.code, res.stderr)
	}
	if _, err := os.Stat(made); !os.IsNotExist(err) {
		t.Errorf("the post hook did not run: %v", err)
	}
	if got := tr.runConfig(nil, "dump", "--config", cfg, "latest", filepath.Join(made, "dump.txt")).stdout; got != "x\n" {
		t.Errorf("the file the pre hook made: %q", got)
	}
	res = tr.runConfig(nil, "run", "--config", cfg, "never")
	if res.code != 1 || !strings.Contains(res.stderr, "path "+made+" (after the pre hooks ran): no such file or directory") {
		t.Errorf("run of a job whose path no hook makes: exit %d\n%s", res.code, res.stderr)
	}
}

// TestConfigCheckWarnsOfRelativePrograms: a hook or a command whose
// program is a relative path is looked for from where snap is started (/
// under the timer): a run by hand from the config's directory worked and
// the timer's failed (found by an exploratory test).
func TestConfigCheckWarnsOfRelativePrograms(t *testing.T) {
	tr := newTestRepo(t)
	cfg := tr.writeConfig(`[jobs.rel]
paths = ["` + tr.dir + `"]
commands = [{ name = "g.txt", command = ["./gen.sh"] }, { name = "h.txt", command = "bin/gen | gzip" }]
pre = ["./gen.sh --quiet", "/usr/bin/true", "echo ok"]
`)
	res := tr.runConfig(nil, "config", "check", "--config", cfg)
	for _, want := range []string{`"./gen.sh --quiet": ./gen.sh is a relative path`, "g.txt: ./gen.sh is a relative path", "h.txt: bin/gen is a relative path"} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("config check does not say %q:\n%s", want, res.stdout)
		}
	}
	if strings.Count(res.stdout, "relative path") != 3 {
		t.Errorf("config check warns of programs given from /:\n%s", res.stdout)
	}
}
