package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// writeConfig writes a jobs config for the test repository and returns
// its path. jobs is TOML appended after the repository settings.
func (tr *testRepo) writeConfig(jobs string) string {
	tr.t.Helper()
	pw := filepath.Join(tr.dir, "password")
	if err := os.WriteFile(pw, []byte("test-password\n"), 0o600); err != nil {
		tr.t.Fatal(err)
	}
	path := filepath.Join(tr.dir, "snap.toml")
	doc := "repository = \"" + tr.repo + "\"\npassword_file = \"password\"\ncache_dir = \"cache\"\n\n" + jobs
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		tr.t.Fatal(err)
	}
	return path
}

// configEnv is an environment in which only the config file says where
// the repository is and how to open it.
func (tr *testRepo) configEnv(extra ...string) []string {
	return append([]string{"XDG_CONFIG_HOME=" + filepath.Join(tr.dir, "xdg"), "HOME=" + tr.dir}, extra...)
}

// runConfig runs snap with configEnv and without the test repository's
// SNAP_ variables.
func (tr *testRepo) runConfig(extraEnv []string, args ...string) result {
	tr.t.Helper()
	saved := tr.env
	tr.env = nil
	defer func() { tr.env = saved }()
	return tr.runEnv(append(tr.configEnv(), extraEnv...), nil, args...)
}

func verifyUnits(t *testing.T, paths ...string) {
	t.Helper()
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Fatal("systemd-analyze is not installed (.ci/run installs the systemd package)")
	}
	out, err := exec.Command(sa, append([]string{"verify"}, paths...)...).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
}

func TestUnitFiles(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin dir", "snap")
	writeFile(t, bin, []byte("#!/bin/sh\n"))
	if err := os.Chmod(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	job := &Job{Name: "app", Schedule: []string{"*-*-* 03:00:00", "Sat 06:00"}, RandomDelay: 10 * time.Minute, Repository: "/mnt/backup/100%/repo",
		Databases: []string{"postgres://postgres@127.0.0.1/app", "mysql://root@localhost/shop", "postgres:///other"}}
	// A config path with a newline stays one line in the units' comments.
	for _, user := range []bool{false, true} {
		spec := unitSpec{Job: job, Binary: bin, Config: "/etc/snap/100%/new\nline/snap.toml", User: user}
		svc, tmr := serviceUnit(spec), timerUnit(spec)
		for _, want := range []string{"Type=oneshot", `ExecStart="` + bin + `" run app --config "/etc/snap/100%%/new\nline/snap.toml"`, "Nice=19", "IOSchedulingClass=best-effort", "IOSchedulingPriority=7", "KillMode=mixed", "EnvironmentFile=-%E/snap/env",
			// A run made up for at boot waits for the repository's mount
			// (suggested by an exploratory test).
			"RequiresMountsFor=/mnt/backup/100%%/repo"} {
			if !strings.Contains(svc, want+"\n") {
				t.Errorf("service lacks %q:\n%s", want, svc)
			}
		}
		// A run made up for at boot waits for the database servers
		// (system units only: a user manager does not see them).
		if strings.Contains(svc, "After=postgresql.service mariadb.service mysql.service\n") == user {
			t.Errorf("user=%v: database servers: %s", user, svc)
		}
		if strings.Contains(svc, "network-online") == user {
			t.Errorf("user=%v: network-online.target: %s", user, svc)
		}
		for _, want := range []string{"OnCalendar=*-*-* 03:00:00", "OnCalendar=Sat 06:00", "Persistent=true", "RandomizedDelaySec=600", "WantedBy=timers.target"} {
			if !strings.Contains(tmr, want+"\n") {
				t.Errorf("timer lacks %q:\n%s", want, tmr)
			}
		}
		if strings.Contains(strings.ToLower(svc+tmr), "password=") || strings.Contains(svc+tmr, "SNAP_PASSWORD") {
			t.Errorf("a unit mentions a password")
		}
		udir := filepath.Join(dir, "units", map[bool]string{true: "user", false: "system"}[user])
		if err := os.MkdirAll(udir, 0o755); err != nil {
			t.Fatal(err)
		}
		s, tm := filepath.Join(udir, serviceName("app")), filepath.Join(udir, timerName("app"))
		writeFile(t, s, []byte(svc))
		writeFile(t, tm, []byte(tmr))
		verifyUnits(t, s, tm)
	}
	// An S3 repository, or a path a unit cannot hold as one word: none.
	for _, loc := range []string{"s3:https://h/b/r", "/mnt/my backups/repo", ""} {
		j := *job
		j.Repository = loc
		if svc := serviceUnit(unitSpec{Job: &j, Binary: bin, Config: "/etc/snap/snap.toml"}); strings.Contains(svc, "RequiresMountsFor") {
			t.Errorf("repository %q: %s", loc, svc)
		}
	}
}

// Paths with a carriage return or a byte that is not UTF-8 are written so
// that systemd reads them back: the units pass verify (a \r ended the
// ExecStart= line, a Latin-1 byte made systemd drop it; found by an
// exploratory test). A sub-second random_delay is kept, in milliseconds.
func TestUnitFilesOddPaths(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "caf\xe9", "snap")
	writeFile(t, bin, []byte("#!/bin/sh\n"))
	if err := os.Chmod(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	job := &Job{Name: "app", Schedule: []string{"daily"}, RandomDelay: 1500 * time.Millisecond, Repository: "/mnt/caf\xe9/repo"}
	spec := unitSpec{Job: job, Binary: bin, Config: "/etc/snap/cr\rx/caf\xe9.toml", User: true, Dir: "/srv/units"}
	svc, tmr := serviceUnit(spec), timerUnit(spec)
	for _, want := range []string{
		`ExecStart="` + filepath.Join(dir, `caf\xe9`, "snap") + `" run app --config "/etc/snap/cr\rx/caf\xe9.toml"` + "\n",
		// The command that writes them again names the same place.
		"run this again:\n#   snap schedule install --user --dir /srv/units --config FILE-ABOVE app\n",
	} {
		if !strings.Contains(svc, want) {
			t.Errorf("service lacks %q:\n%s", want, svc)
		}
	}
	if strings.Contains(svc, "RequiresMountsFor") || !utf8.ValidString(svc) {
		t.Errorf("service:\n%q", svc)
	}
	if !strings.Contains(tmr, "RandomizedDelaySec=1500ms\n") {
		t.Errorf("timer:\n%s", tmr)
	}
	s, tm := filepath.Join(dir, serviceName("app")), filepath.Join(dir, timerName("app"))
	writeFile(t, s, []byte(svc))
	writeFile(t, tm, []byte(tmr))
	verifyUnits(t, s, tm)
	// Comments are not what makes units outdated.
	edited := strings.Replace(svc, "# Change the job", "\n; Change the job", 1)
	edited = strings.ReplaceAll(strings.Replace(edited, "Nice=19", "Nice=19  ", 1), "\n", "\r\n")
	if unitSettings(svc) != unitSettings(edited) || unitSettings(svc) == unitSettings(strings.Replace(svc, "Nice=19", "Nice=5", 1)) {
		t.Error("unitSettings")
	}
}

func TestExecLineQuoting(t *testing.T) {
	got := execLine("/usr/bin/snap", "run", "a", "--config", `/etc/my "snap"/x $HOME;`)
	want := `/usr/bin/snap run a --config "/etc/my \"snap\"/x $$HOME;"`
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

func TestScheduleInstallListRemove(t *testing.T) {
	tr := newTestRepo(t)
	src := filepath.Join(tr.dir, "src")
	writeFile(t, filepath.Join(src, "f"), []byte("x"))
	cfg := tr.writeConfig(`[jobs.app]
paths = ["` + src + `"]
schedule = "*-*-* 03:00:00"
random_delay = "5m"

[jobs.manual]
paths = ["` + src + `"]
`)
	units := filepath.Join(tr.dir, "units")
	res := tr.runConfig(nil, "schedule", "install", "--config", cfg, "--dir", units)
	if res.code != 0 {
		t.Fatalf("install: %d %s %s", res.code, res.stdout, res.stderr)
	}
	if !strings.Contains(res.stderr, "job manual has no schedule; skipped") {
		t.Errorf("no notice for the unscheduled job: %s", res.stderr)
	}
	svc, tmr := filepath.Join(units, "snap-app.service"), filepath.Join(units, "snap-app.timer")
	verifyUnits(t, svc, tmr)
	b, _ := os.ReadFile(svc)
	if !strings.Contains(string(b), "ExecStart="+snapBin+" run app --config "+cfg+"\n") {
		t.Errorf("ExecStart:\n%s", b)
	}
	if _, err := os.Stat(filepath.Join(units, "snap-manual.timer")); err == nil {
		t.Error("unit written for a job without schedule")
	}
	// Naming a job without a schedule is an error.
	if res := tr.runConfig(nil, "schedule", "install", "manual", "--config", cfg, "--dir", units); res.code != exitUsage {
		t.Errorf("install of an unscheduled job: exit %d %s", res.code, res.stderr)
	}
	// A timer an admin wrote stops the install before anything is written:
	// no service of snap's left beside it.
	other := filepath.Join(tr.dir, "units-other")
	writeFile(t, filepath.Join(other, "snap-app.timer"), []byte("[Timer]\nOnCalendar=hourly\n"))
	if res := tr.runConfig(nil, "schedule", "install", "--config", cfg, "--dir", other); res.code == 0 || !strings.Contains(res.stderr, "not written by snap") {
		t.Errorf("install over a foreign timer: exit %d %s", res.code, res.stderr)
	}
	if _, err := os.Stat(filepath.Join(other, "snap-app.service")); err == nil {
		t.Error("the service was written although the timer was refused")
	}

	res = tr.runConfig(nil, "schedule", "list", "--dir", units, "--config", cfg, "--json")
	var list struct {
		Units []unitJSON `json:"units"`
	}
	if err := json.Unmarshal([]byte(res.stdout), &list); err != nil || res.code != 0 {
		t.Fatalf("list --json: %v %d\n%s%s", err, res.code, res.stdout, res.stderr)
	}
	if len(list.Units) != 1 || list.Units[0].Job != "app" || !list.Units[0].Installed || list.Units[0].Schedule[0] != "*-*-* 03:00:00" ||
		list.Units[0].Outdated || list.Units[0].NotInConfig {
		t.Errorf("list: %+v", list.Units)
	}
	// A schedule changed in the config after install: the timer still
	// fires at the old time, and list says so.
	config, _ := os.ReadFile(cfg)
	writeFile(t, cfg, []byte(strings.Replace(string(config), "03:00:00", "04:00:00", 1)))
	res = tr.runConfig(nil, "schedule", "list", "--dir", units, "--config", cfg)
	if res.code != 0 || !strings.Contains(res.stdout, "installed; outdated") || !strings.Contains(res.stderr, "job app: the installed units differ from what the config gives now: 'snap schedule install --dir "+units+" --config "+cfg+" app'") {
		t.Errorf("list after a schedule change: exit %d\n%s%s", res.code, res.stdout, res.stderr)
	}
	// The job removed from the config: its timer would go on running it.
	writeFile(t, cfg, []byte(strings.Replace(string(config), "[jobs.app]", "[jobs.web]", 1)))
	res = tr.runConfig(nil, "schedule", "list", "--dir", units, "--config", cfg, "--json")
	list.Units = nil
	if err := json.Unmarshal([]byte(res.stdout), &list); err != nil || len(list.Units) != 2 || !list.Units[0].NotInConfig || list.Units[1].Job != "web" || list.Units[1].Installed {
		t.Errorf("list --json after removing the job: %v %+v\n%s", err, list.Units, res.stderr)
	}
	// So does install, run again after the job was removed: only list
	// said so, and the admin took the timer for gone (found by an
	// exploratory test).
	res = tr.runConfig(nil, "schedule", "install", "--dir", units, "--config", cfg)
	if res.code != 0 || !strings.Contains(res.stderr, "job app: its units are installed but the config has no such scheduled job; its timer still runs it: 'snap schedule remove --dir "+units+" --config "+cfg+" app'") {
		t.Errorf("install after removing the job: exit %d\n%s%s", res.code, res.stdout, res.stderr)
	}
	must(t, os.Remove(filepath.Join(units, "snap-web.service")))
	must(t, os.Remove(filepath.Join(units, "snap-web.timer")))
	writeFile(t, cfg, config)

	// Another config file with a job of the same name: its install used
	// to take the first one's units without a word (found by an
	// exploratory test); it is refused, list names the config the units
	// came from, and --force (a config file that moved) replaces them.
	cfg2 := filepath.Join(tr.dir, "other", "snap.toml")
	writeFile(t, cfg2, config)
	if res := tr.runConfig(nil, "schedule", "install", "--config", cfg2, "--dir", units); res.code == 0 || !strings.Contains(res.stderr, "was written from another config file, "+cfg) {
		t.Errorf("install of a job of the same name from another config: exit %d %s", res.code, res.stderr)
	}
	if b, _ := os.ReadFile(svc); !strings.Contains(string(b), "--config "+cfg+"\n") {
		t.Errorf("the refused install changed the units:\n%s", b)
	}
	res = tr.runConfig(nil, "schedule", "list", "--dir", units, "--config", cfg2)
	if res.code != 0 || !strings.Contains(res.stdout, "installed; from "+cfg) || !strings.Contains(res.stderr, "job app: its units were written from another config file, "+cfg) {
		t.Errorf("list from the other config: exit %d\n%s%s", res.code, res.stdout, res.stderr)
	}
	tr.runConfig(nil, "schedule", "install", "--config", cfg2, "--dir", units, "--force")
	if b, _ := os.ReadFile(svc); !strings.Contains(string(b), "--config "+cfg2+"\n") {
		t.Errorf("install --force from the other config:\n%s", b)
	}
	tr.runConfig(nil, "schedule", "install", "--config", cfg, "--dir", units, "--force")
	// The same config through a symlinked directory is the same config.
	link := filepath.Join(tr.dir, "linked")
	must(t, os.Symlink(filepath.Dir(cfg), link))
	if res := tr.runConfig(nil, "schedule", "install", "--config", filepath.Join(link, filepath.Base(cfg)), "--dir", units); res.code != 0 {
		t.Errorf("install from the same config through a symlink: exit %d %s", res.code, res.stderr)
	}
	tr.runConfig(nil, "schedule", "install", "--config", cfg, "--dir", units)
	// Nor does remove with the other config remove them (it did).
	if res := tr.runConfig(nil, "schedule", "remove", "app", "--config", cfg2, "--dir", units); res.code != exitUsage || !strings.Contains(res.stderr, "were written from another config file, "+cfg) {
		t.Errorf("remove with another config: exit %d %s", res.code, res.stderr)
	}
	if _, err := os.Stat(svc); err != nil {
		t.Errorf("the refused remove removed the units: %v", err)
	}

	// A unit snap did not write is never replaced or removed.
	writeFile(t, filepath.Join(units, "snap-other.timer"), []byte("[Timer]\nOnCalendar=daily\n"))
	if res := tr.runConfig(nil, "schedule", "remove", "other", "--dir", units); res.code == 0 {
		t.Error("removed a unit snap did not write")
	}
	tr.runConfig(nil, "schedule", "remove", "app", "--dir", units)
	for _, p := range []string{svc, tmr} {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("%s still exists", p)
		}
	}
}

// TestScheduleSystemctl checks the systemctl calls of install and remove.
// systemd is not PID 1 in this test environment, so systemctl is replaced
// by a script that records its arguments (the unit files themselves are
// checked by systemd-analyze above).
func TestScheduleSystemctl(t *testing.T) {
	tr := newTestRepo(t)
	src := filepath.Join(tr.dir, "src")
	writeFile(t, filepath.Join(src, "f"), []byte("x"))
	cfg := tr.writeConfig(`[jobs.app]
paths = ["` + src + `"]
schedule = "daily"
`)
	fake := filepath.Join(tr.dir, "fakebin")
	record := filepath.Join(tr.dir, "systemctl.log")
	writeFile(t, filepath.Join(fake, "systemctl"), []byte(`#!/bin/sh
case "$*" in
*"show snap-app.timer"*) printf 'UnitFileState=enabled\nActiveState=active\nNextElapseUSecRealtime=Mon 2026-11-23 00:04:12 UTC\nLastTriggerUSec=Sun 2026-11-22 00:02:01 UTC\n'; exit 0 ;;
*"show snap-app.service"*) printf 'Result=exit-code\nExecMainStatus=3\nExecMainExitTimestamp=Sun 2026-11-22 00:09:30 UTC\n'; exit 0 ;;
esac
echo "$*" >> `+record+"\n"))
	if err := os.Chmod(filepath.Join(fake, "systemctl"), 0o755); err != nil {
		t.Fatal(err)
	}
	path := "PATH=" + fake + ":" + os.Getenv("PATH")
	res := tr.runConfig([]string{path}, "schedule", "install", "--user", "--config", cfg)
	if res.code != 0 {
		t.Fatalf("install: %d %s", res.code, res.stderr)
	}
	if _, err := os.Stat(filepath.Join(tr.dir, "xdg", "systemd", "user", "snap-app.timer")); err != nil {
		t.Errorf("user unit not in $XDG_CONFIG_HOME/systemd/user: %v", err)
	}
	// A user unit's own comment names the edit command that works for it.
	if b, err := os.ReadFile(filepath.Join(tr.dir, "xdg", "systemd", "user", "snap-app.service")); err != nil || !strings.Contains(string(b), "'systemctl --user edit snap-app.service'") {
		t.Errorf("user service's edit hint: %v\n%s", err, b)
	}
	res = tr.runConfig([]string{path}, "schedule", "list", "--user", "--json")
	var list struct {
		Units []unitJSON `json:"units"`
	}
	if err := json.Unmarshal([]byte(res.stdout), &list); err != nil || len(list.Units) != 1 {
		t.Fatalf("list: %v %s %s", err, res.stdout, res.stderr)
	}
	u := list.Units[0]
	if u.Enabled != "enabled" || u.Active != "active" || u.NextRun != "Mon 2026-11-23 00:04:12 UTC" || u.LastResult != "exit-code" || u.LastStatus == nil || *u.LastStatus != 3 {
		t.Errorf("state from systemctl: %+v", u)
	}
	res = tr.runConfig([]string{path}, "schedule", "list", "--user")
	if !strings.Contains(res.stdout, "enabled, active") || !strings.Contains(res.stdout, "exit-code (exit 3)") {
		t.Errorf("list:\n%s", res.stdout)
	}
	tr.runConfig([]string{path}, "schedule", "remove", "--user", "app")
	b, _ := os.ReadFile(record)
	want := "--user daemon-reload\n--user enable --now snap-app.timer\n--user disable --now snap-app.timer\n--user daemon-reload\n"
	if string(b) != want {
		t.Errorf("systemctl calls:\n%s\nwant:\n%s", b, want)
	}
}

// TestUserUnitsOfSystemConfig: --user units by someone other than root
// are refused for the system's config when the search found it (they would
// run root's jobs as the user and fail every night), and allowed when
// --config names it, for root, and for any other config.
func TestUserUnitsOfSystemConfig(t *testing.T) {
	getenv := func(k string) string { return map[string]string{"HOME": "/home/u"}[k] }
	err := userUnitsOfSystemConfig(true, "", systemConfig, 1000, getenv)
	if exitCode(err) != exitUsage || !strings.Contains(err.Error(), "/home/u/.config/snap/snap.toml") || !strings.Contains(err.Error(), "--config "+systemConfig) {
		t.Errorf("found system config, --user, not root: %v", err)
	}
	for _, c := range []struct {
		user            bool
		explicit, found string
		euid            int
	}{
		{false, "", systemConfig, 1000},
		{true, systemConfig, systemConfig, 1000},
		{true, "", systemConfig, 0},
		{true, "", "/home/u/.config/snap/snap.toml", 1000},
	} {
		if err := userUnitsOfSystemConfig(c.user, c.explicit, c.found, c.euid, getenv); err != nil {
			t.Errorf("%+v: %v", c, err)
		}
	}
}

// TestJobErrorLeavesTheRestUsable: an error in one job (a misspelt key in
// a job added today) leaves that job out, with a warning, of what list and
// restore read from the config; they failed with the config error, so a
// restore at night failed for a new job's typo. An error in the file's own
// keys still fails them (found by an exploratory test).
func TestJobErrorLeavesTheRestUsable(t *testing.T) {
	tr := newTestRepo(t)
	src := filepath.Join(tr.dir, "src")
	writeFile(t, filepath.Join(src, "f"), []byte("data"))
	tr.mustRun("create", src)
	cfg := tr.writeConfig("[jobs.good]\npaths = [\"" + src + "\"]\nschedule = \"daily\"\n\n[jobs.broken]\npaths = [\"" + src + "\"]\nexclud = [\"x\"]\n")
	for _, args := range [][]string{
		{"list"},
		{"restore", "latest", "--target", filepath.Join(tr.dir, "out")},
	} {
		res := tr.runConfig(nil, append(args, "--config", cfg)...)
		if res.code != 0 || !strings.Contains(res.stderr, "job broken is left out") || !strings.Contains(res.stderr, "exclud") {
			t.Errorf("%s with an error in one job: exit %d\n%s%s", args, res.code, res.stdout, res.stderr)
		}
	}
	sameTree(t, src, filepath.Join(tr.dir, "out", src))

	top := tr.writeConfig("cache_dri = \"x\"\n[jobs.good]\npaths = [\"" + src + "\"]\n")
	if res := tr.runConfig(nil, "list", "--config", top); res.code != exitUsage {
		t.Errorf("list with an error in the file's own keys: exit %d\n%s", res.code, res.stderr)
	}
}

// TestConfigWithoutTopLevelRepository: a config whose jobs name their own
// repositories but that has none at the top says so, not only "use --repo
// or set SNAP_REPOSITORY" (found by an exploratory test).
func TestConfigWithoutTopLevelRepository(t *testing.T) {
	tr := newTestRepo(t)
	cfg := filepath.Join(tr.dir, "jobs.toml")
	writeFile(t, cfg, []byte("[jobs.a]\nrepository = \""+tr.repo+"\"\npaths = [\"/srv\"]\n"))
	res := tr.runConfig(nil, "list", "--config", cfg)
	if res.code != exitUsage || !strings.Contains(res.stderr, cfg+" has no top-level repository") {
		t.Errorf("list with a config of job repositories only: exit %d\n%s", res.code, res.stderr)
	}
}

// TestScheduleSystemctlFails: when systemctl fails (no systemd running, a
// container), install still reports the units it wrote in its JSON and
// exits 1, and remove, which deleted the files but could not stop the
// timer, exits 1 too, naming what to run (it exited 0 with warnings; found
// by an exploratory test).
func TestScheduleSystemctlFails(t *testing.T) {
	t.Parallel()
	tr := newTestRepo(t)
	cfg := tr.writeConfig(`[jobs.app]
paths = ["` + tr.dir + `"]
schedule = ["daily"]
`)
	fake := filepath.Join(tr.dir, "fakebin")
	writeFile(t, filepath.Join(fake, "systemctl"), []byte("#!/bin/sh\necho 'System has not been booted with systemd as init system (PID 1).' >&2\nexit 1\n"))
	must(t, os.Chmod(filepath.Join(fake, "systemctl"), 0o755))
	path := "PATH=" + fake + ":" + os.Getenv("PATH")
	res := tr.runConfig([]string{path}, "schedule", "install", "--user", "--json", "--config", cfg)
	var doc struct {
		Enabled bool
		Units   []struct{ Job, Service, Timer string }
	}
	if err := json.Unmarshal([]byte(res.stdout), &doc); res.code != exitFatal || err != nil || doc.Enabled || len(doc.Units) != 1 || doc.Units[0].Job != "app" {
		t.Errorf("install --json with a failing systemctl: exit %d, %v\n%s%s", res.code, err, res.stdout, res.stderr)
	}
	if !strings.Contains(res.stderr, "the units are written, enable them with") {
		t.Errorf("install's error does not say the units are written: %s", res.stderr)
	}
	res = tr.runConfig([]string{path}, "schedule", "remove", "--user", "app")
	if res.code != exitFatal || !strings.Contains(res.stderr, "systemd may still run the timer: run systemctl --user disable --now snap-app.timer") {
		t.Errorf("remove with a failing systemctl: exit %d\n%s", res.code, res.stderr)
	}
	if _, err := os.Stat(filepath.Join(tr.dir, "xdg", "systemd", "user", "snap-app.timer")); err == nil {
		t.Error("remove left the timer's file")
	}
}

// TestScheduleListJSONWarnings: with --json, the warnings about units that
// no longer match the config go to standard error as JSON lines, with the
// fix, as every listing command's warnings do; they were dropped, leaving
// only the document's flags (found by an exploratory test).
func TestScheduleListJSONWarnings(t *testing.T) {
	t.Parallel()
	tr := newTestRepo(t)
	src := filepath.Join(tr.dir, "src")
	writeFile(t, filepath.Join(src, "f"), []byte("x"))
	cfg := tr.writeConfig("[jobs.app]\npaths = [\"" + src + "\"]\nschedule = \"daily\"\n\n[jobs.b]\npaths = [\"" + src + "\"]\nschedule = \"weekly\"\n")
	units := filepath.Join(tr.dir, "units")
	if res := tr.runConfig(nil, "schedule", "install", "--config", cfg, "--dir", units); res.code != 0 {
		t.Fatalf("install: %d %s", res.code, res.stderr)
	}
	// app's schedule changes; b leaves the config.
	tr.writeConfig("[jobs.app]\npaths = [\"" + src + "\"]\nschedule = \"hourly\"\n")
	res := tr.runConfig(nil, "schedule", "list", "--dir", units, "--config", cfg, "--json")
	if res.code != 0 || !json.Valid([]byte(res.stdout)) {
		t.Fatalf("list --json: exit %d\n%s%s", res.code, res.stdout, res.stderr)
	}
	want := map[string]string{
		"app": "snap schedule install --dir " + units + " --config " + cfg + " app",
		"b":   "snap schedule remove --dir " + units + " --config " + cfg + " b",
	}
	lines := strings.Split(strings.TrimSpace(res.stderr), "\n")
	for _, line := range lines {
		var w struct{ Type, Message string }
		if err := json.Unmarshal([]byte(line), &w); err != nil || w.Type != "warning" {
			t.Errorf("stderr line is not a JSON warning: %v %q", err, line)
			continue
		}
		for job, fix := range want {
			if strings.HasPrefix(w.Message, "job "+job+": ") && strings.Contains(w.Message, fix) {
				delete(want, job)
			}
		}
	}
	if len(want) > 0 {
		t.Errorf("no JSON warning for %v on stderr:\n%s", want, res.stderr)
	}
}

// TestInvalidScheduleIsConfigError: a schedule systemd-analyze refuses is
// an error of the config in every command about its jobs (exit 2), as in
// config check. config jobs listed such a job, schedule install of another
// job installed that one, and schedule install of all failed with exit 1
// (found by an exploratory test).
func TestInvalidScheduleIsConfigError(t *testing.T) {
	t.Parallel()
	tr := newTestRepo(t)
	src := filepath.Join(tr.dir, "src")
	writeFile(t, filepath.Join(src, "f"), []byte("x"))
	cfg := tr.writeConfig(`[jobs.s1]
paths = ["` + src + `"]
schedule = "every night"

[jobs.s2]
paths = ["` + src + `"]
schedule = "daily"
`)
	units := filepath.Join(tr.dir, "units")
	for _, args := range [][]string{
		{"config", "check"},
		{"config", "jobs"},
		{"config", "jobs", "--names"},
		{"schedule", "install", "--dir", units},
		{"schedule", "install", "--dir", units, "s2"},
	} {
		res := tr.runConfig(nil, append(args, "--config", cfg)...)
		if res.code != exitUsage || !strings.Contains(res.stderr+res.stdout, `:7: jobs.s1.schedule: "every night" is not a systemd calendar expression`) {
			t.Errorf("%v: exit %d, want %d and the line of the schedule\n%s%s", args, res.code, exitUsage, res.stdout, res.stderr)
		}
	}
	if _, err := os.Stat(units); !os.IsNotExist(err) {
		t.Errorf("units were written for a config with errors: %v", err)
	}
	// Valid to systemd, and never firing: a date gone by, February 30.
	// The timer would never run the job, and the check said nothing
	// (found by an exploratory test).
	cfg = tr.writeConfig(`[jobs.s1]
paths = ["` + src + `"]
schedule = "2020-01-01 03:00"

[jobs.s2]
paths = ["` + src + `"]
schedule = ["daily", "*-02-30 03:00"]
`)
	res := tr.runConfig(nil, "config", "check", "--config", cfg)
	for _, want := range []string{`:7: jobs.s1.schedule: "2020-01-01 03:00" never fires (systemd-analyze calendar: next elapse never), so the timer would never run the job`, `:11: jobs.s2.schedule: "*-02-30 03:00" never fires`} {
		if res.code != exitUsage || !strings.Contains(res.stderr+res.stdout, want) {
			t.Errorf("config check of schedules that never fire: exit %d, want %q\n%s%s", res.code, want, res.stdout, res.stderr)
		}
	}
	if strings.Contains(res.stderr+res.stdout, `"daily" never`) {
		t.Errorf("daily reported:\n%s%s", res.stdout, res.stderr)
	}
}

// TestLingerMissing: a user without lingering is named where logind is
// installed, also when no user has lingering yet (logind makes the
// directory then; the warning was never given on such a machine), and
// not where logind is not installed or the user has lingering.
func TestLingerMissing(t *testing.T) {
	dir := t.TempDir()
	linger := filepath.Join(dir, "linger")
	logind := filepath.Join(dir, "systemd-logind")
	if got := lingerMissingIn(linger, []string{logind}, "backup"); got != "" {
		t.Errorf("no logind: %q", got)
	}
	writeFile(t, logind, []byte("#!"))
	if got := lingerMissingIn(linger, []string{logind}, "backup"); got != "backup" {
		t.Errorf("logind, no linger directory: %q", got)
	}
	writeFile(t, filepath.Join(linger, "other"), nil)
	if got := lingerMissingIn(linger, []string{"/nonexistent"}, "backup"); got != "backup" {
		t.Errorf("another user lingers: %q", got)
	}
	writeFile(t, filepath.Join(linger, "backup"), nil)
	if got := lingerMissingIn(linger, []string{logind}, "backup"); got != "" {
		t.Errorf("the user lingers: %q", got)
	}
}

// TestEnvFileOpenToOthers: the file the units read their environment from
// (S3 keys, SNAP_PASSWORD) is warned about by config check and schedule
// install while other users may open it, as a readable password file is.
func TestEnvFileOpenToOthers(t *testing.T) {
	tr := newTestRepo(t)
	src := filepath.Join(tr.dir, "src")
	writeFile(t, filepath.Join(src, "f"), []byte("x"))
	cfg := tr.writeConfig(`[jobs.app]
paths = ["` + src + `"]
schedule = "daily"
`)
	envFile := filepath.Join(tr.dir, "xdg", "snap", "env") // configEnv's XDG_CONFIG_HOME
	writeFile(t, envFile, []byte("AWS_SECRET_ACCESS_KEY=secret\n"))
	must(t, os.Chmod(envFile, 0o640))
	want := envFile + ": warning: the timers' units read this file (S3 keys, SNAP_PASSWORD), and other users may open it (mode 0640): chmod 600 " + envFile
	units := filepath.Join(tr.dir, "units")
	for _, args := range [][]string{{"config", "check"}, {"schedule", "install", "--user", "--dir", units, "--force"}} {
		res := tr.runConfig(nil, append(args, "--config", cfg)...)
		if res.code != 0 || !strings.Contains(res.stdout+res.stderr, want[strings.Index(want, "the timers'"):]) {
			t.Errorf("%v with the env file at 0640: exit %d\n%s%s", args, res.code, res.stdout, res.stderr)
		}
		must(t, os.Chmod(envFile, 0o600))
		if res := tr.runConfig(nil, append(args, "--config", cfg)...); strings.Contains(res.stdout+res.stderr, "other users may open it") {
			t.Errorf("%v with the env file at 0600 warns: %s%s", args, res.stdout, res.stderr)
		}
		must(t, os.Chmod(envFile, 0o640))
	}
	if res := tr.runConfig(nil, "config", "check", "--config", cfg); !strings.Contains(res.stdout+res.stderr, want) {
		t.Errorf("config check's problem line: %s%s", res.stdout, res.stderr)
	}
	// Worse: one another user could change (the jobs would run what it
	// sets: PATH, SNAP_PASSWORD_COMMAND), judged as the config file is.
	if os.Geteuid() != 0 {
		t.Skip("giving the file to another user needs root")
	}
	must(t, os.Chmod(envFile, 0o600))
	must(t, os.Chown(envFile, 65534, 65534))
	if res := tr.runConfig(nil, "config", "check", "--config", cfg); !strings.Contains(res.stdout+res.stderr, "and another user could change it: it belongs to user 65534") {
		t.Errorf("config check of an env file of another user's: %s%s", res.stdout, res.stderr)
	}
	// Root installs no unit that would load it (found by an exploratory
	// test: a warning, and exit 0).
	res := tr.runConfig(nil, "schedule", "install", "--user", "--dir", filepath.Join(tr.dir, "units2"), "--config", cfg)
	if res.code != exitUsage || !strings.Contains(res.stderr, "it belongs to user 65534") || !strings.Contains(res.stderr, "no unit was written") {
		t.Errorf("schedule install by root with an env file of another user's: exit %d\n%s", res.code, res.stderr)
	}
	if _, err := os.Stat(filepath.Join(tr.dir, "units2", serviceName("app"))); err == nil {
		t.Error("the unit was written")
	}
}

// TestBinaryExposed: a snap binary another user could change is named, as
// a config file would be; root's schedule install refuses it (a root unit
// ran a world-writable snap; found by an exploratory test).
func TestBinaryExposed(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "snap")
	writeFile(t, bin, []byte("#!/bin/sh\n"))
	must(t, os.Chmod(bin, 0o755))
	if why := binaryExposed(bin); why != "" {
		t.Errorf("a binary of ours at 0755: %s", why)
	}
	must(t, os.Chmod(bin, 0o777))
	if why := binaryExposed(bin); !strings.Contains(why, "writable by others (mode 0777)") {
		t.Errorf("a binary at 0777: %q", why)
	}
	must(t, os.Chmod(bin, 0o755))
	must(t, os.Chmod(dir, 0o777))
	if why := binaryExposed(bin); !strings.Contains(why, "which others can write") {
		t.Errorf("a binary in a directory at 0777: %q", why)
	}
}

// TestScheduleInstallWarnsOfFaults: a job that 'config check' finds
// fault with is installed (a disk may be mounted by night), with a
// warning that names the first fault (found by an exploratory test).
func TestScheduleInstallWarnsOfFaults(t *testing.T) {
	tr := newTestRepo(t)
	missing := filepath.Join(tr.dir, "not-there")
	cfg := tr.writeConfig(`[jobs.app]
paths = ["` + missing + `"]
schedule = "daily"
`)
	units := filepath.Join(tr.dir, "units")
	res := tr.runConfig(nil, "schedule", "install", "--user", "--dir", units, "--config", cfg)
	if res.code != 0 || !strings.Contains(res.stderr, "1 problem would fail these jobs if run now (the first: ") || !strings.Contains(res.stderr, missing) ||
		!strings.Contains(res.stderr, "; snap config check --config '"+cfg+"' lists them") {
		t.Errorf("schedule install of a job with a missing path: exit %d\n%s", res.code, res.stderr)
	}
	if _, err := os.Stat(filepath.Join(units, serviceName("app"))); err != nil {
		t.Error(err)
	}
}

// TestForgetJobPolicy: 'snap forget --job NAME' without --keep-* applies
// the job's keep policy to the job's snapshots alone, in the job's own
// repository ('snap list --job' finds it there too), with --dry-run as a
// preview; a job without a policy is refused (found by an exploratory
// test: the policy had to be copied into flags).
func TestForgetJobPolicy(t *testing.T) {
	tr := newTestRepo(t)
	src := filepath.Join(tr.dir, "src")
	writeFile(t, filepath.Join(src, "f"), []byte("x"))
	cfg := tr.writeConfig(`[jobs.files]
paths = ["` + src + `"]
[jobs.other]
paths = ["` + src + `"]
`)
	// The jobs name the repository; the file's own keys do not.
	doc, err := os.ReadFile(cfg)
	must(t, err)
	doc = []byte(strings.Replace(string(doc), "repository = \""+tr.repo+"\"\n", "", 1))
	doc = []byte(strings.ReplaceAll(string(doc), "paths = [", "repository = \""+tr.repo+"\"\npaths = ["))
	must(t, os.WriteFile(cfg, doc, 0o600))
	for range 3 {
		tr.runConfig(nil, "run", "--config", cfg, "files")
	}
	tr.runConfig(nil, "run", "--config", cfg, "other")
	if res := tr.runConfig(nil, "forget", "--config", cfg, "--job", "files", "-n"); res.code != exitUsage || !strings.Contains(res.stderr, "job files has no keep policy") {
		t.Fatalf("forget --job of a job without a policy: exit %d\n%s", res.code, res.stderr)
	}
	doc = []byte(strings.Replace(string(doc), "[jobs.other]", "[jobs.files.keep]\nlast = 1\n\n[jobs.other]", 1))
	must(t, os.WriteFile(cfg, doc, 0o600))
	res := tr.runConfig(nil, "forget", "--config", cfg, "--job", "files", "--dry-run")
	if res.code != 0 || !strings.Contains(res.stdout, "would remove 2 snapshots, kept 1") || !strings.Contains(res.stderr, "job files: its keep policy (last 1) applies to its 3 snapshots") {
		t.Fatalf("forget --job files --dry-run: exit %d\n%s%s", res.code, res.stdout, res.stderr)
	}
	// SNAP_REPOSITORY left in the shell does not send the job's policy
	// elsewhere, as it does not send 'snap run' (found by a review).
	elsewhere := []string{"SNAP_REPOSITORY=" + filepath.Join(tr.dir, "off-site")}
	if res := tr.runConfig(elsewhere, "forget", "--config", cfg, "--job", "files"); res.code != 0 || !strings.Contains(res.stdout, "removed 2 snapshots, kept 1") {
		t.Fatalf("forget --job files with SNAP_REPOSITORY set: exit %d\n%s%s", res.code, res.stdout, res.stderr)
	}
	if res := tr.runConfig(nil, "list", "--config", cfg, "--job", "files"); res.code != 0 || !strings.Contains(res.stdout, "1 snapshot") {
		t.Errorf("list --job files after its forget: exit %d\n%s%s", res.code, res.stdout, res.stderr)
	}
	if res := tr.runConfig(nil, "list", "--config", cfg, "--job", "other"); res.code != 0 || !strings.Contains(res.stdout, "1 snapshot") {
		t.Errorf("list --job other: exit %d\n%s%s", res.code, res.stdout, res.stderr)
	}
}

// TestJobFilterKeepsThePasswordVariable: --job of a job that only
// inherits the file's repository and password leaves the settings as
// without it: SNAP_PASSWORD wins over the file's password_file (found by a
// review: 'list --job app' took the file's).
func TestJobFilterKeepsThePasswordVariable(t *testing.T) {
	tr := newTestRepo(t)
	src := filepath.Join(tr.dir, "src")
	writeFile(t, filepath.Join(src, "f"), []byte("x"))
	cfg := tr.writeConfig(`[jobs.app]
paths = ["` + src + `"]
`)
	tr.runConfig(nil, "run", "--config", cfg, "app")
	writeFile(t, filepath.Join(tr.dir, "password"), []byte("wrong\n"))
	env := []string{"SNAP_PASSWORD=test-password"}
	for _, args := range [][]string{{"list"}, {"list", "--job", "app"}} {
		if res := tr.runConfig(env, append(args, "--config", cfg)...); res.code != 0 || !strings.Contains(res.stdout, "1 snapshot") {
			t.Errorf("%v with SNAP_PASSWORD and a wrong password_file: exit %d\n%s%s", args, res.code, res.stdout, res.stderr)
		}
	}
}

// TestWrongPasswordOfAJob: a wrong password from a job's own password_file
// names that key, not the file's top-level one (found by an exploratory
// test).
func TestWrongPasswordOfAJob(t *testing.T) {
	tr := newTestRepo(t)
	src := filepath.Join(tr.dir, "src")
	writeFile(t, filepath.Join(src, "f"), []byte("x"))
	wrong := filepath.Join(tr.dir, "wrong")
	writeFile(t, wrong, []byte("not-the-password\n"))
	must(t, os.Chmod(wrong, 0o600))
	cfg := tr.writeConfig(`[jobs.app]
password_file = "` + wrong + `"
paths = ["` + src + `"]
`)
	res := tr.runConfig(nil, "run", "--config", cfg, "app")
	if res.code != exitWrongPass || !strings.Contains(res.stderr, "which the config's jobs.app.password_file names") {
		t.Errorf("run with a job's wrong password file: exit %d\n%s", res.code, res.stderr)
	}
}

// TestScheduleWarnsOfShellS3Credentials: installing the units of a job on
// S3 whose credentials are in the shell's variables alone says that the
// timer's runs will find none (it installed them without a word, and every
// night's run failed; found by a re-test).
func TestScheduleWarnsOfShellS3Credentials(t *testing.T) {
	if f := accountCredentialsFile(); f != "" {
		if _, err := os.Stat(f); err == nil {
			t.Skipf("%s exists: the timer's runs would find credentials there", f)
		}
	}
	tr := newTestRepo(t)
	src := filepath.Join(tr.dir, "src")
	writeFile(t, filepath.Join(src, "f"), []byte("x"))
	cfg := tr.writeConfig(`[jobs.app]
paths = ["` + src + `"]
repository = "s3:http://127.0.0.1:1/bucket/app"
schedule = "*-*-* 03:00:00"
`)
	units := filepath.Join(tr.dir, "units")
	res := tr.runConfig([]string{"AWS_ACCESS_KEY_ID=key", "AWS_SECRET_ACCESS_KEY=secret"}, "schedule", "install", "--user", "--config", cfg, "--dir", units)
	if res.code != 0 || !strings.Contains(res.stderr, "the S3 credentials come from this shell's environment alone") {
		t.Errorf("install of an S3 job with credentials in the shell: exit %d\n%s", res.code, res.stderr)
	}
}

// TestJobFiltersOfTwoRepositories: --job a --job b of jobs that keep their
// snapshots in different repositories is refused, naming both (the file's
// repository was opened, which holds neither's); jobs of one repository
// are listed together.
func TestJobFiltersOfTwoRepositories(t *testing.T) {
	tr := newTestRepo(t)
	other := newTestRepo(t)
	src := filepath.Join(tr.dir, "src")
	writeFile(t, filepath.Join(src, "f"), []byte("x"))
	cfg := tr.writeConfig(`[jobs.a]
paths = ["` + src + `"]

[jobs.b]
repository = "` + other.repo + `"
paths = ["` + src + `"]

[jobs.c]
paths = ["` + src + `"]
tags = ["c"]
`)
	for _, job := range []string{"a", "b", "c"} {
		if res := tr.runConfig(nil, "run", "--config", cfg, job); res.code != 0 {
			t.Fatalf("run %s: exit %d\n%s", job, res.code, res.stderr)
		}
	}
	res := tr.runConfig(nil, "list", "--config", cfg, "--job", "a", "--job", "b")
	if res.code != exitUsage || !strings.Contains(res.stderr, "--job a and --job b keep their snapshots in different repositories ("+tr.repo+", "+other.repo+")") {
		t.Errorf("list --job a --job b of two repositories: exit %d\n%s", res.code, res.stderr)
	}
	if res := tr.runConfig(nil, "list", "--config", cfg, "--job", "a", "--job", "c"); res.code != 0 || !strings.Contains(res.stdout, "2 snapshots") {
		t.Errorf("list --job a --job c of one repository: exit %d\n%s%s", res.code, res.stdout, res.stderr)
	}
}
