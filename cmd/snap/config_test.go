package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/snap-backup/snap/snapshot"
)

// issueExample is the config file of the jobs-config issue, verbatim.
const issueExample = `repository = "/srv/backup/repo"
password_file = "/etc/snap/password"

[jobs.app]
paths = ["/srv/app/data"]
exclude = ["*.tmp"]
databases = ["postgres://app@localhost/app"]
tags = ["app"]
schedule = "*-*-* 03:00:00"
pre = ["systemctl stop app"]
post = ["systemctl start app"]

[jobs.app.keep]
last = 7
daily = 7
monthly = 12
prune = true
`

func TestConfigIssueExample(t *testing.T) {
	cfg, problems, err := parseConfig("/etc/snap/snap.toml", issueExample)
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	if len(problems) != 0 {
		t.Fatalf("problems: %v", problems)
	}
	if len(cfg.Jobs) != 1 {
		t.Fatalf("jobs: %d", len(cfg.Jobs))
	}
	j := cfg.Jobs[0]
	want := &Job{Name: "app", Line: 4, Repository: "/srv/backup/repo", PasswordFile: "/etc/snap/password",
		Paths: []string{"/srv/app/data"}, Exclude: []string{"*.tmp"}, Databases: []string{"postgres://app@localhost/app"},
		Tags: []string{"app"}, Schedule: []string{"*-*-* 03:00:00"}, RandomDelay: defaultRandomDelay, HookTimeout: defaultHookTimeout, DumpConcurrency: snapshot.DefaultStreams,
		Pre: []string{"systemctl stop app"}, Post: []string{"systemctl start app"},
		Keep: Keep{Last: 7, Daily: 7, Monthly: 12, Prune: true}}
	if !reflect.DeepEqual(j, want) {
		t.Errorf("job:\n got %+v\nwant %+v", j, want)
	}
	if got := jobSteps(j); strings.Join(got, ",") != "create,forget,prune" {
		t.Errorf("steps %v", got)
	}
}

func TestConfigEveryKey(t *testing.T) {
	doc := `repository = "/r"
password_command = "pass show snap"
cache_dir = "cache"
host = "web1"
compression = "better"

[jobs.db]
repository = "/other"
password_file = "pw"
paths = ["/var/lib/x"]
databases = ["mysql://root@127.0.0.1:3306/test", "sqlite:///var/lib/app.db"]
one_file_system = true
sequential_read = true
compression = "off"
schedule = ["Mon..Fri 02:00", "Sat 06:00"]
random_delay = "90s"
check = "5%"
min_free = "10GiB"
commands = [{ name = "redis.rdb", command = ["redis-cli", "--rdb", "-"] }, { name = "/etc.tar", command = "tar -C /etc -c ." }]
keep = { last = 3, hourly = 1, weekly = 2, yearly = 1, within = "1y6m", tags = ["keep"], max_unused = "10%", delete_delay = "2d" }

[jobs.files]
paths = "/home"
check = true
`
	cfg, problems, err := parseConfig("/etc/snap/snap.toml", doc)
	if err != nil || len(problems) != 0 {
		t.Fatalf("err %v, problems %v", err, problems)
	}
	if cfg.CacheDir != "cache" || cfg.resolveRelative(cfg.CacheDir) != "/etc/snap/cache" {
		t.Errorf("cache_dir %q", cfg.CacheDir)
	}
	db, files := cfg.Jobs[0], cfg.Jobs[1]
	if db.Name != "db" || files.Name != "files" {
		t.Fatalf("order: %s, %s", db.Name, files.Name)
	}
	if db.Repository != "/other" || db.PasswordFile != "pw" || db.PasswordCommand != "" || db.Host != "web1" || db.Compression != "off" ||
		!db.OneFileSystem || !db.SequentialRead || db.RandomDelay != 90*time.Second || len(db.Schedule) != 2 || db.Check == nil || db.Check.ReadDataSubset != "5%" {
		t.Errorf("db job: %+v", db)
	}
	if db.MinFree != 10<<30 || len(db.Commands) != 2 || db.Commands[0].Name != "redis.rdb" || strings.Join(db.Commands[1].Argv, "|") != "/bin/sh|-c|tar -C /etc -c ." {
		t.Errorf("db min_free/commands: %d %+v", db.MinFree, db.Commands)
	}
	if k := db.Keep; k.Last != 3 || k.Hourly != 1 || k.Weekly != 2 || k.Yearly != 1 || k.Within != "1y6m" || k.MaxUnused != "10%" || k.DeleteDelay != "2d" || len(k.Tags) != 1 {
		t.Errorf("db keep: %+v", k)
	}
	if files.Repository != "/r" || files.PasswordCommand != "pass show snap" || files.Compression != "better" || files.Check == nil || files.Check.ReadDataSubset != "" {
		t.Errorf("files job: %+v", files)
	}
	if files.Keep.Any() || strings.Join(jobSteps(files), ",") != "create,check" {
		t.Errorf("files steps: %v", jobSteps(files))
	}
}

// TestConfigProblemsHaveLines checks that every problem of a broken file
// is reported at once, each with the line it is on.
func TestConfigProblemsHaveLines(t *testing.T) {
	doc := `repository = "/r"
pasword_file = "x"                 # 2: misspelt

[jobs.a]
paths = ["relative/path"]          # 5: not absolute
exclude = ["[unclosed"]            # 6: bad glob
tags = ["a,b"]                     # 7: comma
one_file_system = "yes"            # 8: not a boolean
compression = "maximal"            # 9
schedule = ""                      # 10
random_delay = "soon"              # 11
check = "200%"                     # 12
databases = [
  "postgres://u@h/db",
  "ftp://nope",                    # 13 (the key's line)
]

[jobs.a.keep]
last = -2                          # 19
daily = "seven"                    # 20
within = "6 months"                # 21
colour = "blue"                    # 22
tags = ["keep", ""]                # 23: an empty tag

[jobs."bad name!"]                  # 25
paths = ["/x"]

[jobs.empty]                       # 28: nothing to back up
keep.prune = true                  # 29: prune without policy

[jobs.twice]
databases = ["sqlite:///srv/app.db"]
commands = [{ name = "db/sqlite/app.sql", command = "echo" }, { name = "same", command = "echo 1" }, { name = "same", command = "echo 2" }] # 33: stored as the dump; twice the same

[jobs.rel]
databases = ["sqlite://app.db"]    # 36: relative to where the timer runs

[jobs.typed]
paths = 5                          # 39: the type, not "nothing to back up" on 38
`
	_, problems, err := parseConfig("/c.toml", doc)
	if err == nil {
		t.Fatal("no error")
	}
	want := map[int]string{
		2: "unknown key at the top level; did you mean \"password_file\"", 5: "not an absolute path", 6: "pattern", 7: "without commas",
		8: "must be true or false", 9: "compression", 10: "empty or multi-line schedule", 11: "random_delay",
		12: "data subset", 13: "ftp://nope", 19: "whole number", 20: "whole number", 21: "duration",
		22: "unknown key in [jobs.a.keep]", 23: "a tag is a non-empty word", 25: "job name", 28: "nothing to back up", 29: "prune = true without a policy",
		33: "both be stored as /db/sqlite/app.sql; two sources would both be stored as /same", 36: "relative to the current directory",
		39: "must be an array of strings, not an integer",
	}
	got := map[int]string{}
	for _, p := range problems {
		if p.Severity != "error" {
			continue
		}
		got[p.Line] += p.String() + "\n"
	}
	for line, frag := range want {
		if !strings.Contains(got[line], frag) {
			t.Errorf("line %d: want a problem containing %q, got %q", line, frag, got[line])
		}
	}
	for line, msgs := range got {
		if _, ok := want[line]; !ok {
			t.Errorf("unexpected problem on line %d: %s", line, msgs)
		}
	}
	if !strings.HasPrefix(problems[0].String(), "/c.toml:2: ") {
		t.Errorf("format: %s", problems[0])
	}
}

func TestConfigSyntaxErrorLine(t *testing.T) {
	doc := "repository = \"/r\"\n\n[jobs.a]\npaths = [\"/x\"\nexclude = 3\n"
	_, problems, err := parseConfig("/c.toml", doc)
	if err == nil || len(problems) != 1 {
		t.Fatalf("err %v, problems %v", err, problems)
	}
	if p := problems[0]; p.Line != 5 || !strings.Contains(p.Message, "TOML syntax") || !strings.Contains(p.Message, "in the value of jobs.a.paths") {
		t.Errorf("problem %+v", p)
	}
}

// A table header cut short is named on its own line, not the next one.
func TestConfigUnclosedHeaderLine(t *testing.T) {
	for _, doc := range []string{
		"repository = \"/r\"\n\n[jobs.a\npaths = [\"/x\"]\n",
		"repository = \"/r\"\n\n[[jobs\npaths = [\"/x\"]\n",
	} {
		_, problems, err := parseConfig("/c.toml", doc)
		if err == nil || len(problems) != 1 || problems[0].Line != 3 {
			t.Errorf("%q: err %v, problems %+v, want one on line 3", doc, err, problems)
		}
	}
}

func TestTOMLKeyLines(t *testing.T) {
	doc := `# comment
a = 1
"quoted key" = 'x'
b.c = """
multi
line = not a key
"""
arr = [
  1, # comment ]
  "two]",
  { inner = 1 },
]
[t1]
x = 2000-01-01 00:00:00  # a date with a space
[ t1 . "sub part" ]
y = { z = [1, 2], w = "}" }
after = true
[[arrtab]]
k = 1
[[arrtab]]
k = 2
`
	lines := tomlKeyLines(doc)
	for key, want := range map[string]int{
		"a": 2, `"quoted key"`: 3, "b": 4, "b.c": 4, "arr": 8, "t1": 13, "t1.x": 14, `t1."sub part"`: 15,
		`t1."sub part".y`: 16, `t1."sub part".y.z`: 16, `t1."sub part".y.w`: 16, `t1."sub part".after`: 17, "arrtab": 18, "arrtab.k": 19,
	} {
		if lines[key] != want {
			t.Errorf("%s: line %d, want %d", key, lines[key], want)
		}
	}
	if _, ok := lines["line"]; ok {
		t.Error("a line inside a multi-line string was taken for a key")
	}
}

func TestConfigEnvironmentChecks(t *testing.T) {
	dir := t.TempDir()
	pw := filepath.Join(dir, "pw")
	if err := os.WriteFile(pw, []byte("x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "snap.toml")
	doc := `repository = "` + filepath.Join(dir, "norepo") + `"
password_file = "pw"

[jobs.a]
paths = ["` + dir + `", "/nonexistent/snap-test-path"]
schedule = ["daily", "every blue moon"]
databases = ["sqlite:///nonexistent/snap-test.db"]

[jobs.b]
paths = ["` + dir + `"]
repository = "` + filepath.Join(dir, "jobrepo") + `"
password_file = "pw"

[jobs.c]
paths = ["` + dir + `"]
repository = "` + filepath.Join(dir, "other") + `"

[jobs.d]
paths = ["` + dir + `"]
repository = "` + filepath.Join(dir, "damaged") + `"
`
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	// A directory of other files is no place for 'snap init' (it refuses).
	if err := os.MkdirAll(filepath.Join(dir, "other", "files"), 0o700); err != nil {
		t.Fatal(err)
	}
	// A repository that lost its config is damaged, as a run says, not
	// a place for 'snap init' (found by an exploratory test).
	if err := os.MkdirAll(filepath.Join(dir, "damaged", "snapshots"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "damaged", "snapshots", strings.Repeat("ab", 32)), []byte("k"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, problems, err := loadConfig(path)
	if err != nil || len(problems) != 0 {
		t.Fatalf("%v %v", err, problems)
	}
	calendar := func(s string) error {
		if s == "daily" {
			return nil
		}
		return os.ErrInvalid
	}
	var got []string
	for _, p := range cfg.checkEnvironment(calendar) {
		got = append(got, p.String())
	}
	all := strings.Join(got, "\n")
	for _, frag := range []string{
		":2: warning: password_file: " + pw + " is readable by others",
		":1: repository: no repository at " + filepath.Join(dir, "norepo"),
		":5: jobs.a.paths: /nonexistent/snap-test-path: no such file",
		":6: jobs.a.schedule: \"every blue moon\" is not a systemd calendar expression",
		":7: jobs.a.databases: sqlite:///nonexistent/snap-test.db: no such file",
		// A scheduled dump with no timeout could hold its timer for ever.
		":4: warning: jobs.a: no timeout: a dump blocked on a table lock",
		// A job's own repository: 'snap init --config' would make the
		// top-level one.
		":11: jobs.b.repository: no repository at " + filepath.Join(dir, "jobrepo") + ": if it is on a disk that is not mounted, mount it; to create a new repository there, run 'snap init -r " + filepath.Join(dir, "jobrepo") + " --password-file " + pw + "'",
		":16: jobs.c.repository: no repository at " + filepath.Join(dir, "other") + ": a directory that holds other files but no repository",
		":20: jobs.d.repository: " + filepath.Join(dir, "damaged") + " holds a repository's snapshots/ but no config file: the repository is damaged",
	} {
		if !strings.Contains(all, frag) {
			t.Errorf("missing %q in\n%s", frag, all)
		}
	}
	if strings.Contains(all, `"daily" is not`) {
		t.Errorf("valid schedule reported:\n%s", all)
	}
}

func TestSystemdCalendar(t *testing.T) {
	cal := systemdCalendar()
	if cal == nil {
		t.Fatal("systemd-analyze is not installed (.ci/run installs the systemd package)")
	}
	for _, ok := range []string{"daily", "*-*-* 03:00:00", "Mon..Fri 02:30"} {
		if err := cal(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	if err := cal("at three"); err == nil {
		t.Error("invalid expression accepted")
	}
	// Checked first in one run, the wrong one among them one by one.
	cal = systemdCalendar("daily", "at three", "weekly", "daily")
	for expr, valid := range map[string]bool{"daily": true, "weekly": true, "at three": false, "Sat 06:00": true, "every blue moon": false} {
		if err := cal(expr); (err == nil) != valid {
			t.Errorf("batch-primed %q: %v", expr, err)
		}
	}
}

func TestJobSnapshots(t *testing.T) {
	mk := func(host string, paths, tags []string, sources ...string) *snapshot.Snapshot {
		sn := &snapshot.Snapshot{Host: host, Paths: paths, Tags: tags, Job: "nightly"}
		for _, s := range sources {
			sn.Sources = append(sn.Sources, snapshot.Source{Path: s})
		}
		return sn
	}
	sns := []*snapshot.Snapshot{
		mk("h", []string{"/a", "/b"}, []string{"app", "x"}),       // 0: the job's
		mk("h", []string{"/a", "/b"}, []string{"x"}),              // 1: lacks a tag
		mk("other", []string{"/a", "/b"}, []string{"app"}),        // 2: other host
		mk("h", []string{"/a"}, []string{"app"}),                  // 3: fewer paths
		mk("h", []string{"/a", "/b", "/c"}, []string{"app"}),      // 4: more paths
		mk("h", []string{"/a", "/b"}, []string{"app"}, "/db/x"),   // 5: a dump the job does not take
		mk("h", []string{"/a", "/b"}, []string{"app", "nightly"}), // 6: the job's
		mk("h", []string{"/a", "/b"}, []string{"app"}),            // 7: by hand, or another job's
		mk("h", []string{"/a", "/b"}, []string{"app"}),            // 8: another job's
	}
	sns[7].Job, sns[8].Job = "", "weekly"
	got := jobSnapshots(sns, "nightly", "h", []string{"/b/", "/a"}, []string{"app"}, nil)
	if len(got) != 2 || got[0] != sns[0] || got[1] != sns[6] {
		t.Errorf("got %d snapshots: %v", len(got), got)
	}
	if got := jobSnapshots(sns, "nightly", "h", []string{"/a", "/b"}, []string{"app"}, []string{"/db/x"}); len(got) != 1 || got[0] != sns[5] {
		t.Errorf("with sources: %v", got)
	}
}

// TestConfigPathsIgnoreRelativeXDG: a relative XDG_CONFIG_HOME is ignored,
// as the XDG spec says (a timer would resolve it against /).
func TestConfigPathsIgnoreRelativeXDG(t *testing.T) {
	env := map[string]string{"XDG_CONFIG_HOME": "xdg", "HOME": "/home/u"}
	got := configPaths(func(k string) string { return env[k] })
	if want := []string{"/home/u/.config/snap/snap.toml", "/etc/snap/snap.toml"}; !slices.Equal(got, want) {
		t.Errorf("relative XDG_CONFIG_HOME: %v, want %v", got, want)
	}
	env["XDG_CONFIG_HOME"] = "/x"
	if got := configPaths(func(k string) string { return env[k] }); got[0] != "/x/snap/snap.toml" {
		t.Errorf("absolute XDG_CONFIG_HOME: %v", got)
	}
	// Without HOME, the account's home from the password database.
	if got, home := configPaths(func(string) string { return "" }), passwdHome(); home != "" && home != "/" && got[0] != filepath.Join(home, ".config", "snap", "snap.toml") {
		t.Errorf("without HOME: %v (home %s)", got, home)
	}
}

// TestConfigMessages: a job name's message states the whole rule, a
// quoted number is shown quoted, and a job named twice runs once.
func TestConfigMessages(t *testing.T) {
	_, _, err := parseConfig("snap.toml", "[jobs.\"-x\"]\npaths = [\"/srv\"]\n")
	if err == nil || !strings.Contains(err.Error(), "starting with a letter, digit or '_'") {
		t.Errorf("job -x: %v", err)
	}
	_, _, err = parseConfig("snap.toml", "[jobs.a]\npaths = [\"/srv\"]\nkeep = {last = \"7\"}\n")
	if err == nil || !strings.Contains(err.Error(), `not "7"`) {
		t.Errorf("last = \"7\": %v", err)
	}
	_, _, err = parseConfig("snap.toml", "[jobs.a]\npaths = [\"/srv\"]\nhook_timeout = \"soon\"\nrandom_delay = \"-1s\"\n")
	if err == nil || !strings.Contains(err.Error(), `"soon": give a duration such as "10m" or "2h", or "0s" for no limit`) ||
		!strings.Contains(err.Error(), `"-1s": give a duration such as "10m", "1h" or "0s"`) {
		t.Errorf("bad durations: %v", err)
	}
	// Days, which keep.within takes, are said to be hours here.
	_, _, err = parseConfig("snap.toml", "[jobs.a]\npaths = [\"/srv\"]\ntimeout = \"1d\"\n")
	if err == nil || !strings.Contains(err.Error(), `jobs.a.timeout: "1d": days are written in hours here ("48h" for 2 days)`) {
		t.Errorf("timeout = 1d: %v", err)
	}
	// A bare number is no duration: the message says to quote one.
	_, _, err = parseConfig("snap.toml", "[jobs.a]\npaths = [\"/srv\"]\ntimeout = 90\n")
	if err == nil || !strings.Contains(err.Error(), `jobs.a.timeout: 90 is not a quoted duration: give one such as`) {
		t.Errorf("timeout = 90: %v", err)
	}
	cfg, _, err := parseConfig("snap.toml", "repository = \"/r\"\npassword_file = \"/p\"\n[jobs.a]\npaths = [\"/srv\"]\n")
	if err != nil {
		t.Fatal(err)
	}
	if jobs, err := selectJobs(cfg, []string{"a", "a"}, nil); err != nil || len(jobs) != 1 {
		t.Errorf("run a a: %d jobs, %v", len(jobs), err)
	}
	// The parser's own words for a table or key written twice name no fix.
	for doc, want := range map[string]string{
		"[jobs.a]\npaths = [\"/a\"]\n[jobs.a]\npaths = [\"/b\"]\n": "[jobs.a] is written twice; give one of them another name, or merge the two",
		"[jobs.a]\npaths = [\"/a\"]\npaths = [\"/b\"]\n":           "jobs.a.paths is set twice; keep one",
		// Too large is not "not a whole number"; refused values are not
		// also "no policy".
		"[jobs.a]\npaths = [\"/a\"]\nkeep = { daily = 99999999999 }\n": "99999999999 is more snapshots than snap counts",
	} {
		_, _, err := parseConfig("snap.toml", doc)
		if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "no policy") {
			t.Errorf("%q: %v; want %q", doc, err, want)
		}
	}
	// keep.tags "x,y" keeps snapshots with both tags: a job tagged x and y
	// is kept by it (the warning took the rule for one tag).
	for rule, warn := range map[string]bool{"x,y": false, "x": false, "x,z": true} {
		_, problems, _ := parseConfig("snap.toml", "[jobs.a]\npaths = [\"/a\"]\ntags = [\"x\", \"y\"]\nkeep = { tags = [\""+rule+"\"] }\n")
		got := strings.Contains(fmt.Sprint(problems), "names none of the job's tags")
		if got != warn {
			t.Errorf("keep.tags [%q] on a job tagged x and y: warning %v, want %v (%v)", rule, got, warn, problems)
		}
	}
	// An empty [jobs] table is as good as none.
	if _, problems, _ := parseConfig("snap.toml", "[jobs]\n"); len(problems) != 1 || !strings.Contains(problems[0].Message, "no jobs") {
		t.Errorf("[jobs] without jobs: %v", problems)
	}
	// A run's error line lists the first problems in the file's order.
	_, _, err = parseConfig("snap.toml", "[jobs.a]\npaths = [\"/a\"]\nkeep = { daily = -1, weekly = -2, monthly = -3, yearly = -4 }\n")
	if msg := fmt.Sprint(err); !strings.Contains(msg, "5 problems in the config, the first 3: snap.toml:1: ") || !strings.Contains(msg, "(see 'snap config check' for all)") ||
		strings.Count(msg, "snap.toml:") != 3 {
		t.Errorf("four problems in one line: %s", msg)
	}
}

// TestConfigWritableByOthers: a config file another user could change is
// refused by root (its hooks and commands would run as root: cron refuses
// such crontabs too), in config check and in snap run, and a warning for
// any other user; a password file that is a directory is one error,
// without the advice to chmod it. Root run with a user's environment (su
// without -: a red-team test) finds the config under that user's
// $XDG_CONFIG_HOME, and refuses it too.
func TestConfigWritableByOthers(t *testing.T) {
	tr := newTestRepo(t)
	app := filepath.Join(tr.dir, "app")
	writeFile(t, filepath.Join(app, "f"), []byte("x"))
	cfg := tr.writeConfig(`[jobs.app]
paths = ["` + app + `"]
`)
	must(t, os.Chmod(cfg, 0o666))
	if _, why, _ := readConfigFile(cfg); !strings.Contains(why, "it is writable by others (mode 0666): chmod go-w "+cfg) {
		t.Errorf("world-writable config: %q", why)
	}
	must(t, os.Chmod(cfg, 0o600))
	if _, why, _ := readConfigFile(cfg); why != "" {
		t.Errorf("config only its owner can write: %q", why)
	}
	dirMode, err := os.Stat(filepath.Dir(cfg))
	must(t, err)
	must(t, os.Chmod(filepath.Dir(cfg), 0o777))
	if _, why, _ := readConfigFile(cfg); !strings.Contains(why, "which others can write") {
		t.Errorf("config in a directory others can write: %q", why)
	}
	must(t, os.Chmod(filepath.Dir(cfg), dirMode.Mode().Perm()))
	if os.Geteuid() != 0 {
		t.Skip("the rest needs root")
	}
	must(t, os.Chmod(cfg, 0o666))
	res := tr.runConfig(nil, "config", "check", "--config", cfg)
	if res.code != 2 || !strings.Contains(res.stdout+res.stderr, "root does not read it: it is writable by others (mode 0666)") {
		t.Errorf("config check of a world-writable config, as root: exit %d\n%s%s", res.code, res.stdout, res.stderr)
	}
	res = tr.runConfig(nil, "run", "--config", cfg)
	if res.code != 2 || !strings.Contains(res.stderr, "root does not read it: it is writable by others") || strings.Contains(res.stdout, "snapshot") {
		t.Errorf("run with a world-writable config, as root: exit %d\n%s%s", res.code, res.stdout, res.stderr)
	}
	must(t, os.Chmod(cfg, 0o600))
	if res := tr.runConfig(nil, "run", "--config", cfg); res.code != 0 || strings.Contains(res.stderr, "another user") {
		t.Errorf("run with a config only root can write: exit %d\n%s", res.code, res.stderr)
	}
	must(t, os.Chown(cfg, 65534, 65534))
	if res := tr.runConfig(nil, "run", "--config", cfg); res.code != 2 || !strings.Contains(res.stderr, "it belongs to user 65534: chown root "+cfg) {
		t.Errorf("run with another user's config, as root: exit %d\n%s", res.code, res.stderr)
	}
	must(t, os.Chown(cfg, 0, 0))
	// What cannot be judged is refused: a config gone between finding
	// and reading it (a red-team test's rename race), a FIFO (no hang).
	gone := filepath.Join(filepath.Dir(cfg), "gone.toml")
	if _, why, _ := readConfigFile(gone); !strings.Contains(why, "it cannot be judged") {
		t.Errorf("a config that is not there: %q", why)
	}
	fifo := filepath.Join(filepath.Dir(cfg), "fifo.toml")
	must(t, syscall.Mkfifo(fifo, 0o600))
	if res := tr.runConfig(nil, "run", "--config", fifo); res.code != 2 || !strings.Contains(res.stderr, "it is not a regular file") {
		t.Errorf("run with a FIFO for the config, as root: exit %d\n%s", res.code, res.stderr)
	}

	// su without -: the user's $XDG_CONFIG_HOME, in the user's home,
	// holds a config of root's own (the user can rename it away).
	home := filepath.Join(tr.dir, "home")
	must(t, os.MkdirAll(filepath.Join(home, ".config", "snap"), 0o755))
	data, err := os.ReadFile(cfg)
	must(t, err)
	writeFile(t, filepath.Join(home, ".config", "snap", "snap.toml"), data)
	must(t, os.Chown(home, 65534, 65534))
	res = tr.runConfig([]string{"XDG_CONFIG_HOME=" + filepath.Join(home, ".config")}, "run")
	if res.code != 2 || !strings.Contains(res.stderr, "root does not read it: "+filepath.Join(home, ".config")+" lies in "+home+", which another user may write (owner uid 65534") {
		t.Errorf("run as root with a user's XDG_CONFIG_HOME: exit %d\n%s", res.code, res.stderr)
	}

	// Any other user is warned, and the job runs.
	tr2, runAs := newUserRepo(t, 65534)
	app2 := filepath.Join(tr2.dir, "app")
	writeFile(t, filepath.Join(app2, "f"), []byte("x"))
	must(t, os.Chmod(app2, 0o755))
	cfg2 := tr2.writeConfig(`[jobs.app]
paths = ["` + app2 + `"]
`)
	must(t, os.Chown(cfg2, 65534, 65534))
	must(t, os.Chown(filepath.Join(tr2.dir, "password"), 65534, 65534))
	must(t, os.Chmod(cfg2, 0o666))
	res = runAs("run", "--config", cfg2)
	if res.code != 0 || !strings.Contains(res.stderr, "warning: "+cfg2+": another user could change this config, whose hooks and commands run as you: it is writable by others (mode 0666)") {
		t.Errorf("run with a world-writable config, as another user: exit %d\n%s", res.code, res.stderr)
	}

	dir := t.TempDir()
	path := filepath.Join(dir, "snap.toml")
	writeFile(t, path, []byte("repository = \""+tr.repo+"\"\npassword_file = \""+dir+"\"\n"))
	must(t, os.Chmod(path, 0o600))
	c, _, err := loadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range c.checkEnvironment(nil) {
		got = append(got, p.String())
	}
	if all := strings.Join(got, "\n"); !strings.Contains(all, "is not a regular file") || strings.Contains(all, "chmod") {
		t.Errorf("password_file that is a directory:\n%s", all)
	}
}

// TestConfigEmptyRepository: repository = "" is named on its own line,
// not only as a job without a repository (found by an exploratory test).
func TestConfigEmptyRepository(t *testing.T) {
	_, problems, err := parseConfig("/c.toml", "repository = \"\"\n[jobs.a]\npaths = [\"/x\"]\nrepository = \" \"\n")
	if err == nil {
		t.Fatal("no error")
	}
	lines := map[int]bool{}
	for _, p := range problems {
		if p.Severity == "error" && strings.Contains(p.String(), "repository: empty: give a directory or an s3: URL") {
			lines[p.Line] = true
		}
	}
	if !lines[1] || !lines[4] {
		t.Errorf("empty repository keys not named on lines 1 and 4: %v", problems)
	}
}

// TestConfigJobsNamesJSON: --names with --json prints a JSON document, the
// file and the names, not the plain lines of --names alone (found by an
// exploratory test); --scheduled still filters them.
func TestConfigJobsNamesJSON(t *testing.T) {
	t.Parallel()
	tr := newUninitRepo(t)
	cfg := tr.writeConfig("[jobs.app]\npaths = [\"/srv\"]\nschedule = \"daily\"\n\n[jobs.b]\npaths = [\"/srv\"]\n")
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"config", "jobs", "--names", "--json", "--config", cfg}, []string{"app", "b"}},
		{[]string{"config", "jobs", "--names", "--scheduled", "--json", "--config", cfg}, []string{"app"}},
	} {
		res := tr.runConfig(nil, tc.args...)
		var doc struct {
			File  string
			Names []string
		}
		if err := json.Unmarshal([]byte(res.stdout), &doc); err != nil || res.code != 0 || doc.File != cfg || !slices.Equal(doc.Names, tc.want) {
			t.Errorf("%v: exit %d, %v: %+v\n%s%s", tc.args, res.code, err, doc, res.stdout, res.stderr)
		}
	}
	// A config without jobs: an empty array, not null.
	empty := filepath.Join(tr.dir, "empty.toml")
	writeFile(t, empty, []byte("repository = \"/r\"\n[jobs.a]\npaths = [\"/srv\"]\n"))
	res := tr.runConfig(nil, "config", "jobs", "--names", "--scheduled", "--json", "--config", empty)
	if res.code != 0 || !strings.Contains(res.stdout, `"names": []`) {
		t.Errorf("no scheduled job: exit %d\n%s%s", res.code, res.stdout, res.stderr)
	}
}

// TestConfigCommandEntries: a bad entry of commands is named (several may
// sit on one line, and gave identical messages), in the config's words
// (name = …), not the command line's ("commands backup.sql"); found by an
// exploratory test.
func TestConfigCommandEntries(t *testing.T) {
	_, problems, _ := parseConfig("/c.toml", "repository = \"/r\"\n[jobs.a]\npaths = [\"/srv\"]\ncommands = [{ name = \".\", command = \"echo\" }, { name = \"/\", command = \"echo\" }, { command = \"echo\" }]\n")
	var msgs []string
	for _, p := range problems {
		msgs = append(msgs, p.String())
	}
	want := []string{
		`/c.toml:4: jobs.a.commands: entry 1 (name = "."): names no file to store the output as: give a file name, e.g. name = "backup.sql"`,
		`/c.toml:4: jobs.a.commands: entry 2 (name = "/"): names no file to store the output as: give a file name, e.g. name = "backup.sql"`,
		`/c.toml:4: jobs.a.commands: entry 3: a command needs name (the file to store its output as) and command (a string for /bin/sh, or an array)`,
	}
	if !slices.Equal(msgs, want) {
		t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(msgs, "\n"), strings.Join(want, "\n"))
	}
	_, _, err := parseConfig("/c.toml", "repository = \"/r\"\n[jobs.a]\npaths = [\"/srv\"]\ncommands = [{ name = \"a\", command = \"echo\" }, \"echo\"]\n")
	if err == nil || !strings.Contains(err.Error(), "entry 2 is a string: each command is a table") {
		t.Errorf("a string among the commands: %v", err)
	}
}

// TestConfigEmptyKeep: keep = {} (or an empty [jobs.NAME.keep]) is no
// policy, an error as a keep of max_unused or delete_delay alone is; it
// passed, and the job forgot nothing (found by an exploratory test).
func TestConfigEmptyKeep(t *testing.T) {
	for _, keep := range []string{"keep = {}\n", "[jobs.a.keep]\n", "[jobs.a.keep]\nmax_unused = \"5%\"\n", "keep = { delete_delay = \"1d\" }\n"} {
		_, problems, err := parseConfig("/c.toml", "repository = \"/r\"\n[jobs.a]\npaths = [\"/srv\"]\n"+keep)
		if err == nil || len(problems) != 1 || problems[0].Key != "jobs.a.keep" || !strings.Contains(problems[0].Message, "no policy: give at least one of last, hourly") {
			t.Errorf("%q: %v %v", keep, err, problems)
		}
	}
}

// TestConfigDatabasePasswordWarning: a password in a database URL is
// warned about while others may read the config file, and not once the
// file is private (it said "chmod 600" to a file that was; found by an
// exploratory test).
func TestConfigDatabasePasswordWarning(t *testing.T) {
	path := filepath.Join(t.TempDir(), "snap.toml")
	doc := "repository = \"/srv/backup\"\n\n[jobs.db]\ndatabases = [\"postgres://app:secret@db/app\"]\n"
	for mode, warned := range map[os.FileMode]bool{0o644: true, 0o600: false} {
		must(t, os.WriteFile(path, []byte(doc), mode))
		must(t, os.Chmod(path, mode))
		_, problems, err := loadConfig(path)
		if err != nil {
			t.Fatal(err)
		}
		got := false
		for _, p := range problems {
			got = got || strings.Contains(p.Message, "the password is written in the config file, which others may read: chmod 600 "+path)
		}
		if got != warned {
			t.Errorf("mode %04o: warned %v, want %v: %v", mode, got, warned, problems)
		}
	}
}

// TestConfigNoFollowOnErrors: a problem is said once, not again as its
// consequences: a repository key of the wrong type is not also "no
// repository" for every job, nor is a refused job name also a job
// without a schedule (found by an exploratory test).
func TestConfigNoFollowOnErrors(t *testing.T) {
	path := filepath.Join(t.TempDir(), "snap.toml")
	must(t, os.WriteFile(path, []byte("repository = 5\n\n[jobs.\"my job\"]\npaths = [\"/srv\"]\n"), 0o600))
	_, problems, err := loadConfig(path)
	if err == nil {
		t.Fatal("config with errors accepted")
	}
	var msgs []string
	for _, p := range problems {
		msgs = append(msgs, p.Message)
	}
	all := strings.Join(msgs, "\n")
	if len(problems) != 2 || !strings.Contains(all, "must be a string") || !strings.Contains(all, `job name "my job"`) {
		t.Errorf("problems:\n%s", all)
	}
}

// TestConfigUnexpandedPaths: a path that starts with ~ or a variable is
// refused (taken relative to the config file's directory, "~/repo" made a
// repository in /etc/snap/~/repo; found by an exploratory test); one that
// holds a variable further on is taken as written, and said so ("no
// repository at /etc/snap/$HOME/repo" did not say why).
func TestConfigUnexpandedPaths(t *testing.T) {
	path := filepath.Join(t.TempDir(), "snap.toml")
	must(t, os.WriteFile(path, []byte("repository = \"$HOME/repo\"\npassword_file = \"~/pw\"\ncache_dir = \"/var/$USER/cache\"\n\n[jobs.a]\npaths = [\"${HOME}/x\"]\n"), 0o600))
	_, problems, _ := loadConfig(path)
	var msgs []string
	for _, p := range problems {
		msgs = append(msgs, p.String())
	}
	all := strings.Join(msgs, "\n")
	for _, want := range []string{`repository: "$HOME/repo": the config file expands no variables and no ~; write the full path`, `password_file: "~/pw": the config file expands`, `warning: cache_dir: "/var/$USER/cache" is taken as written`, `"${HOME}/x" is not an absolute path (the config file expands no variables and no ~)`} {
		if !strings.Contains(all, want) {
			t.Errorf("missing %q in\n%s", want, all)
		}
	}
}

// TestConfigPathVariableWarned: a job path holding a variable, which the
// config file does not expand, is warned of, as other paths are (found by
// a docs walkthrough).
func TestConfigPathVariableWarned(t *testing.T) {
	_, problems, err := parseConfig("/c.toml", `repository = "/r"
[jobs.a]
paths = ["/srv/$HOME/data"]
`)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, p := range problems {
		found = found || p.Severity == "warning" && strings.Contains(p.String(), `"/srv/$HOME/data" is taken as written`)
	}
	if !found {
		t.Errorf("no warning: %v", problems)
	}
}

// TestConfigKeyOfTheOtherTable: retention keys written among a job's keys,
// and a job key written after [jobs.NAME.keep] (which TOML gives to that
// table), are named as such with where they belong; "did you mean" had
// offered "pre" for prune and "host" for last (found by an exploratory
// test).
func TestConfigKeyOfTheOtherTable(t *testing.T) {
	doc := `[jobs.a]
repository = "/r"
paths = ["/srv"]
prune = true
last = 3

[jobs.a.keep]
daily = 7
schedule = "daily"
`
	_, problems, err := parseConfig("/c.toml", doc)
	if err == nil {
		t.Fatal("no error")
	}
	want := map[int]string{
		4: "prune is a key of the job's retention: move it into the job's keep table (under [jobs.a.keep], or inside keep = { … } where the job has that line)",
		5: "last is a key of the job's retention",
		9: "schedule is a key of the job, but TOML puts it in [jobs.a.keep], the table above it: move it above [jobs.a.keep]",
	}
	got := map[int]string{}
	for _, p := range problems {
		if p.Severity == "error" {
			got[p.Line] += p.String()
		}
	}
	for line, frag := range want {
		if !strings.Contains(got[line], frag) || strings.Contains(got[line], "did you mean") {
			t.Errorf("line %d: want %q, got %q", line, frag, got[line])
		}
	}
	if len(got) != len(want) {
		t.Errorf("problems: %v", got)
	}
}

// TestConfigProblemsOneLine: a path in the config holding a newline is
// shown escaped, so each problem stays on one line: it spread over two,
// which a script reading FILE:LINE: took for two problems (found by an
// exploratory test).
func TestConfigProblemsOneLine(t *testing.T) {
	tr := newTestRepo(t)
	cfg := tr.writeConfig(`[jobs.nl]
paths = ["/nonexistent/x\nfake: line"]
`)
	res := tr.runConfig(nil, "config", "check", "--config", cfg)
	if res.code != exitUsage || !strings.Contains(res.stdout+res.stderr, `jobs.nl.paths: /nonexistent/x\nfake: line: no such file or directory`) {
		t.Errorf("config check of a path with a newline: exit %d\n%s%s", res.code, res.stdout, res.stderr)
	}
	for _, l := range strings.Split(strings.TrimSpace(res.stdout+res.stderr), "\n") {
		if strings.HasPrefix(l, "fake") {
			t.Errorf("a problem spread over two lines:\n%s%s", res.stdout, res.stderr)
		}
	}
}

// TestTimerS3Credentials: config check (and schedule install) warn when a
// repository on S3 would find no credentials under a timer: the shell's
// variables that the check itself has are not the units' (found by an
// exploratory test: config check said OK, every night's run failed).
func TestTimerS3Credentials(t *testing.T) {
	dir := t.TempDir()
	envFile, shared := filepath.Join(dir, "env"), filepath.Join(dir, "credentials")
	shell := func(k string) string { return map[string]string{"AWS_ACCESS_KEY_ID": "key"}[k] }
	none := func(string) string { return "" }
	if msg := timerS3Credentials(shell, envFile, shared); !strings.Contains(msg, "come from this shell's environment alone") || !strings.Contains(msg, "put AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in "+envFile) {
		t.Errorf("credentials in the shell only: %q", msg)
	}
	if msg := timerS3Credentials(none, envFile, shared); !strings.Contains(msg, "no S3 credentials in "+envFile) {
		t.Errorf("no credentials anywhere: %q", msg)
	}
	writeFile(t, shared, []byte("[default]\naws_access_key_id = key\naws_secret_access_key = secret\n"))
	if msg := timerS3Credentials(none, envFile, shared); msg != "" {
		t.Errorf("credentials in the shared credentials file: %q", msg)
	}
	must(t, os.Remove(shared))
	writeFile(t, envFile, []byte("# S3\nAWS_ACCESS_KEY_ID=key\nAWS_SECRET_ACCESS_KEY=secret\n"))
	if msg := timerS3Credentials(none, envFile, shared); msg != "" {
		t.Errorf("credentials in the units' environment file: %q", msg)
	}
}

// TestConfigCommandNameWithNUL: a commands name holding a NUL made a
// snapshot whose tree no command could read (found by an exploratory
// test): config check refuses it.
func TestConfigCommandNameWithNUL(t *testing.T) {
	_, problems, err := parseConfig("/c.toml", `repository = "/r"
[jobs.a]
commands = [ { name = "meta/a\u0000b.txt", command = "echo hi" } ]
`)
	if err == nil || !strings.Contains(err.Error(), "a file name holds no NUL character") {
		t.Errorf("config with a NUL in a command's name: %v, %v", err, problems)
	}
}
