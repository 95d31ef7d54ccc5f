package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/snap-backup/snap/repo"
	"github.com/snap-backup/snap/repo/local"
)

// TestExitCodeEach checks every documented exit code with a real cause,
// and that each failure is one line on stderr.
func TestExitCodeEach(t *testing.T) {
	t.Parallel()
	tr := newTestRepo(t)
	src := filepath.Join(tr.dir, "src")
	writeFile(t, filepath.Join(src, "f"), []byte("content"))

	if res := tr.run("create", src); res.code != exitOK {
		t.Fatalf("create: exit %d, %s", res.code, res.stderr)
	}
	for name, c := range map[string]struct {
		env  []string
		args []string
		code int
		frag string
	}{
		"no such snapshot":    {nil, []string{"restore", "abcdef12", "--target", filepath.Join(tr.dir, "x")}, exitFatal, "no snapshot with ID abcdef12"},
		"missing source":      {nil, []string{"create", filepath.Join(tr.dir, "nope")}, exitFatal, "nope"},
		"usage":               {nil, []string{"restore", "latest"}, exitUsage, "--target"},
		"unknown flag":        {nil, []string{"list", "--bogus"}, exitUsage, "bogus"},
		"no repository":       {[]string{"SNAP_REPOSITORY=" + filepath.Join(tr.dir, "nothing")}, []string{"list"}, exitNoRepo, "snap init"},
		"not a repository":    {[]string{"SNAP_REPOSITORY=" + src}, []string{"create", src}, exitNoRepo, src},
		"wrong password":      {[]string{"SNAP_PASSWORD=wrong"}, []string{"list"}, exitWrongPass, "wrong password"},
		"wrong password file": {[]string{"SNAP_PASSWORD=", "SNAP_PASSWORD_FILE=" + filepath.Join(src, "f")}, []string{"ls", "latest"}, exitWrongPass, "wrong password"},
	} {
		res := tr.runEnv(c.env, nil, c.args...)
		if res.code != c.code {
			t.Errorf("%s: exit %d, want %d (%s)", name, res.code, c.code, res.stderr)
			continue
		}
		if line := oneLine(t, res); !strings.Contains(line, c.frag) {
			t.Errorf("%s: %q does not mention %q", name, line, c.frag)
		}
	}
}

// TestExitCodeLocked: a live exclusive lock held by another process makes
// create and restore exit 11, naming the holder's host, pid and start time.
func TestExitCodeLocked(t *testing.T) {
	t.Parallel()
	tr := newTestRepo(t)
	src := filepath.Join(tr.dir, "src")
	writeFile(t, filepath.Join(src, "f"), []byte("content"))
	tr.create(src)

	// This test process is the other process: it holds the lock.
	be, err := local.Open(tr.repo)
	must(t, err)
	r, err := repo.Open(context.Background(), be, "test-password", repo.Options{Host: "lock-holder-host"})
	must(t, err)
	defer r.Close()
	lock, err := r.Lock(context.Background(), repo.LockOptions{Exclusive: true, Command: "prune"})
	must(t, err)
	since := lock.Info().Time.Local().Format(time.DateTime)
	for _, args := range [][]string{{"create", src}, {"restore", "latest", "--target", filepath.Join(tr.dir, "out")}, {"dump", "latest", filepath.Join(src, "f")}} {
		res := tr.run(args...)
		if res.code != exitLocked {
			t.Errorf("%s while locked: exit %d, want %d (%s)", args[0], res.code, exitLocked, res.stderr)
			continue
		}
		line := oneLine(t, res)
		t.Logf("%s: %s", args[0], line)
		for _, frag := range []string{"locked", "exclusive", "lock-holder-host", "pid " + strconv.Itoa(os.Getpid()), since} {
			if !strings.Contains(line, frag) {
				t.Errorf("%s: %q does not mention %q", args[0], line, frag)
			}
		}
	}
	// Reading without a lock still works.
	tr.mustRun("list")
	must(t, lock.Unlock())
	tr.mustRun("create", src)
	if locks, _ := os.ReadDir(filepath.Join(tr.repo, "locks")); len(locks) != 0 {
		t.Errorf("locks left after the runs: %d", len(locks))
	}
}

// TestExitCodeUnreadable runs snap as an unprivileged user (tests run as
// root, which reads everything): an unreadable file and an unreadable
// directory are reported and skipped, the snapshot is saved, exit code 3.
func TestExitCodeUnreadable(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("needs root to run snap as another user")
	}
	tr, runAs := newUserRepo(t, 65534) // nobody
	src := filepath.Join(tr.dir, "src")
	writeFile(t, filepath.Join(src, "readable"), []byte("fine"))
	writeFile(t, filepath.Join(src, "secret"), []byte("root only"))
	must(t, os.Chmod(filepath.Join(src, "secret"), 0o600))
	writeFile(t, filepath.Join(src, "closed", "inner"), []byte("root only"))
	must(t, os.Chmod(filepath.Join(src, "closed"), 0o700))
	must(t, os.Chmod(src, 0o755))
	res := runAs("create", src)
	if res.code != exitPartial {
		t.Fatalf("create with unreadable files: exit %d, want %d\n%s", res.code, exitPartial, res.stderr)
	}
	t.Logf("create as nobody:\n%s%s", res.stdout, res.stderr)
	if !strings.Contains(res.stderr, "closed: permission denied (saved as an empty directory, with its own owner, mode and times)") {
		t.Errorf("the unlistable directory's error does not say it was saved empty:\n%s", res.stderr)
	}
	if !strings.Contains(res.stdout, "snapshot ") {
		t.Errorf("no snapshot ID printed: %q", res.stdout)
	}
	for _, frag := range []string{filepath.Join(src, "secret"), filepath.Join(src, "closed"), "permission denied", "2 file(s) could not be read"} {
		if !strings.Contains(res.stderr, frag) {
			t.Errorf("stderr does not mention %q:\n%s", frag, res.stderr)
		}
	}
	for _, l := range strings.Split(strings.TrimSpace(res.stderr), "\n") {
		if !strings.HasPrefix(l, "error: ") && !strings.HasPrefix(l, "warning: ") {
			t.Errorf("unexpected stderr line %q", l)
		}
	}
	res = runAs("ls", "latest")
	if res.code != 0 || !strings.Contains(res.stdout, "readable") || strings.Contains(res.stdout, "secret") {
		t.Errorf("the saved snapshot: exit %d\n%s", res.code, res.stdout)
	}
	// The directory it could not list is there, empty, with its mode:
	// left out, a restore did not make it (found by an exploratory test).
	res = runAs("ls", "-l", "latest", src)
	if !regexp.MustCompile(`(?m)^drwx------ .*/closed$`).MatchString(res.stdout) || strings.Contains(res.stdout, "inner") {
		t.Errorf("the unlistable directory in the snapshot: exit %d\n%s", res.code, res.stdout)
	}
	res = runAs("list", "--json")
	if res.code != 0 || !strings.Contains(res.stdout, `"errors": 2`) {
		t.Errorf("list --json does not record 2 errors: %s", res.stdout)
	}
	// A backed-up path the user cannot read at all is no partial backup
	// that monitoring takes for a success: the run fails, as for a
	// missing path, and nothing is saved.
	for _, p := range []string{filepath.Join(src, "closed"), filepath.Join(src, "secret")} {
		if res := runAs("create", filepath.Join(src, "readable"), p); res.code != exitFatal || !strings.Contains(res.stderr, "path "+p+": this user cannot read it") {
			t.Errorf("create of an unreadable path %s: exit %d\n%s", p, res.code, res.stderr)
		}
	}
	if res := runAs("list", "--json"); strings.Count(res.stdout, `"short_id"`) != 1 {
		t.Errorf("snapshots after the refused creates:\n%s", res.stdout)
	}
}

// TestExitCodeInterrupted sends SIGINT while create reads a big file: exit
// 130 with a message saying the repository is consistent, no snapshot and
// no lock left behind, earlier snapshots intact, the next create fine.
func TestExitCodeInterrupted(t *testing.T) {
	t.Parallel()
	tr := newTestRepo(t)
	src := filepath.Join(tr.dir, "src")
	writeFile(t, filepath.Join(src, "small"), []byte("earlier"))
	first := tr.create(src)
	want := describe(t, src)
	big := filepath.Join(src, "big")

	packs := func() int {
		n := 0
		_ = filepath.WalkDir(filepath.Join(tr.repo, "data"), func(p string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				n++
			}
			return nil
		})
		return n
	}
	interrupted := false
	for attempt := 0; attempt < 3 && !interrupted; attempt++ {
		writeRandom(t, big, uint64(200+attempt), 100_000_000)
		before := packs()
		cmd := exec.Command(snapBin, "create", src)
		cmd.Env = append(baseEnv(), tr.env...)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		must(t, cmd.Start())
		// Interrupt once the first new pack (or its temporary file) exists:
		// the run is then busy uploading.
		deadline := time.Now().Add(30 * time.Second)
		for packs() == before && time.Now().Before(deadline) {
			time.Sleep(2 * time.Millisecond)
		}
		must(t, cmd.Process.Signal(os.Interrupt))
		err := cmd.Wait()
		var ee *exec.ExitError
		if err == nil {
			t.Logf("attempt %d: create finished before the signal; trying again", attempt)
			continue
		}
		if !errors.As(err, &ee) || ee.ExitCode() != exitInterrupted {
			t.Fatalf("interrupted create: %v, want exit %d\n%s", err, exitInterrupted, stderr.String())
		}
		interrupted = true
		res := result{stdout: stdout.String(), stderr: stderr.String(), code: ee.ExitCode()}
		line := oneLine(t, res)
		t.Logf("interrupted: %s", line)
		for _, frag := range []string{"interrupted", "no snapshot was saved", "repository is consistent"} {
			if !strings.Contains(line, frag) {
				t.Errorf("message %q does not say %q", line, frag)
			}
		}
		if strings.Contains(res.stderr, "goroutine ") {
			t.Errorf("stack trace: %s", res.stderr)
		}
	}
	if !interrupted {
		t.Fatal("could not interrupt a create in 3 attempts")
	}
	if locks, _ := os.ReadDir(filepath.Join(tr.repo, "locks")); len(locks) != 0 {
		t.Errorf("interrupted create left %d lock(s)", len(locks))
	}
	sns := tr.listJSON()
	if len(sns) != 1 || sns[0].ID != first.SnapshotID {
		t.Fatalf("snapshots after the interrupt: %+v", sns)
	}
	target := filepath.Join(tr.dir, "earlier")
	tr.mustRun("restore", first.SnapshotID, "--target", target)
	compareEntries(t, "earlier snapshot after an interrupt", want, describe(t, filepath.Join(target, src)))

	next := tr.create(src)
	want = describe(t, src)
	target = filepath.Join(tr.dir, "next")
	tr.mustRun("restore", next.SnapshotID, "--target", target)
	compareEntries(t, "create after an interrupt", want, describe(t, filepath.Join(target, src)))
}

// TestInitRefusesNonEmpty: init never writes into a directory that holds
// anything, including an existing repository.
func TestInitRefusesNonEmpty(t *testing.T) {
	t.Parallel()
	tr := newUninitRepo(t)
	writeFile(t, filepath.Join(tr.repo, "precious"), []byte("keep"))
	res := tr.run("init", "--kdf-memory", "8", "--kdf-time", "1")
	if res.code != exitFatal || !strings.Contains(oneLine(t, res), "not empty") {
		t.Errorf("init in a non-empty directory: exit %d, %q", res.code, res.stderr)
	}
	if entries, _ := os.ReadDir(tr.repo); len(entries) != 1 {
		t.Errorf("init wrote into the non-empty directory: %d entries", len(entries))
	}
	tr2 := newTestRepo(t)
	res = tr2.run("init", "--kdf-memory", "8", "--kdf-time", "1")
	if res.code == 0 || !strings.Contains(res.stderr, "a repository is there already") {
		t.Errorf("init over an existing repository: exit %d, %q", res.code, res.stderr)
	}
	tr2.mustRun("list")
}

// TestInitThroughSymlink: init follows a symlink the admin made to the
// repository's directory, as every other command does (it failed with
// "not a directory"); a link to nothing names its target (found by an
// exploratory test).
func TestInitThroughSymlink(t *testing.T) {
	t.Parallel()
	tr := newUninitRepo(t)
	real := filepath.Join(tr.dir, "disk", "backup")
	must(t, os.MkdirAll(real, 0o700))
	must(t, os.Symlink(real, tr.repo))
	tr.mustRun("init", "--kdf-memory", "8", "--kdf-time", "1")
	if _, err := os.Stat(filepath.Join(real, "config")); err != nil {
		t.Fatalf("no repository in the link's directory: %v", err)
	}
	tr.mustRun("create", tr.dir+"/disk")
	tr.mustRun("check")

	dangling := newUninitRepo(t)
	must(t, os.Symlink(filepath.Join(dangling.dir, "nowhere"), dangling.repo))
	res := dangling.run("init", "--kdf-memory", "8", "--kdf-time", "1")
	if res.code != exitFatal || !strings.Contains(oneLine(t, res), "which does not exist: create that directory") {
		t.Errorf("init through a dangling link: exit %d, %q", res.code, res.stderr)
	}

	// A ~ the shell did not expand made ./~/x.
	res = dangling.run("init", "--repo", "~/x", "--kdf-memory", "8", "--kdf-time", "1")
	if res.code != exitUsage || !strings.Contains(oneLine(t, res), "the ~ was not expanded") {
		t.Errorf("init --repo '~/x': exit %d, %q", res.code, res.stderr)
	}
}

// newUserRepo makes a repository that the user uid owns and has
// initialised, and returns it with a runner of snap as that user. The
// test runs as root; tr.dir and the directories above it are opened to
// everyone, so that the user reaches what the test puts there.
func newUserRepo(t *testing.T, uid uint32) (*testRepo, func(args ...string) result) {
	t.Helper()
	tr := newUninitRepo(t)
	for d := tr.dir; d != "/" && d != os.TempDir(); d = filepath.Dir(d) {
		must(t, os.Chmod(d, 0o755)) // t.TempDir and its parent are 0700
	}
	for _, d := range []string{tr.repo, tr.cache} {
		must(t, os.MkdirAll(d, 0o700))
		must(t, os.Chown(d, int(uid), int(uid)))
	}
	runAs := runAsUser(t, tr, uid)
	if res := runAs("init", "--kdf-memory", "8", "--kdf-time", "1"); res.code != 0 {
		t.Fatalf("init as uid %d: %d %s", uid, res.code, res.stderr)
	}
	return tr, runAs
}

// runAsUser returns a runner of snap as the user uid, with tr's
// environment and HOME in tr's cache directory. The caller makes the
// directories that user needs accessible.
func runAsUser(t *testing.T, tr *testRepo, uid uint32) func(args ...string) result {
	t.Helper()
	return runAsUserEnv(t, tr, uid, append(append(baseEnv(), tr.env...), "HOME="+tr.cache))
}

// runAsUserEnv is runAsUser with the whole environment of snap given.
func runAsUserEnv(t *testing.T, tr *testRepo, uid uint32, env []string) func(args ...string) result {
	t.Helper()
	return runAsCredential(t, tr, syscall.Credential{Uid: uid, Gid: uid}, env)
}

// runAsCredential is runAsUserEnv with the user's groups given.
func runAsCredential(t *testing.T, tr *testRepo, cred syscall.Credential, env []string) func(args ...string) result {
	t.Helper()
	// The shared test binary lives in a private directory: use a copy.
	bin := filepath.Join(tr.dir, "snap")
	data, err := os.ReadFile(snapBin)
	must(t, err)
	must(t, os.WriteFile(bin, data, 0o755))
	runAs := func(args ...string) result {
		var stdout, stderr bytes.Buffer
		var err error
		for try := 0; ; try++ {
			cmd := exec.Command(bin, args...)
			cmd.Env = env
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &cred}
			stdout.Reset()
			stderr.Reset()
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err = cmd.Run()
			// A process forked by a parallel test may still hold the copy
			// open for writing, until it execs (Go issue 22315): the
			// kernel refuses to run the copy meanwhile.
			if !errors.Is(err, syscall.ETXTBSY) || try == 50 {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		var ee *exec.ExitError
		res := result{stdout: stdout.String(), stderr: stderr.String()}
		if errors.As(err, &ee) {
			res.code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return res
	}
	return runAs
}

// TestRestoreDropsSetuidOfOthers: a restore not run as root makes the
// files its own, so a setuid or setgid bit recorded for another owner is
// dropped: kept, anyone could run root's setuid program as the user who
// restored it (found by an exploratory test). Run as root, the owner and
// the bits come back.
func TestRestoreDropsSetuidOfOthers(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("needs root to run snap as another user")
	}
	tr, runAs := newUserRepo(t, 65534)
	src := filepath.Join(tr.dir, "src")
	writeFile(t, filepath.Join(src, "prog"), []byte("#!/bin/sh\nid\n"))
	must(t, os.Chmod(filepath.Join(src, "prog"), 0o755|os.ModeSetuid|os.ModeSetgid)) // root's
	must(t, os.Chmod(src, 0o755))
	if res := runAs("create", src); res.code != 0 {
		t.Fatalf("create as nobody: %d %s", res.code, res.stderr)
	}
	target := filepath.Join(tr.dir, "target")
	must(t, os.MkdirAll(target, 0o755))
	must(t, os.Chown(target, 65534, 65534))
	if res := runAs("restore", "latest", "--target", target); res.code != 0 {
		t.Fatalf("restore as nobody: %d %s", res.code, res.stderr)
	}
	fi, err := os.Stat(filepath.Join(target, src, "prog"))
	if err != nil || fi.Mode()&(os.ModeSetuid|os.ModeSetgid) != 0 || fi.Mode().Perm() != 0o755 {
		t.Errorf("restored by nobody: %v, %v; want 0755 without setuid and setgid", fi.Mode(), err)
	}
	asRoot := filepath.Join(tr.dir, "asroot")
	if res := tr.runEnv([]string{"SNAP_CACHE_DIR=" + filepath.Join(tr.dir, "rootcache")}, nil, "restore", "latest", "--target", asRoot); res.code != 0 {
		t.Fatalf("restore as root: %d %s", res.code, res.stderr)
	}
	if fi, err := os.Stat(filepath.Join(asRoot, src, "prog")); err != nil || fi.Mode()&(os.ModeSetuid|os.ModeSetgid) != os.ModeSetuid|os.ModeSetgid {
		t.Errorf("restored by root: %v, %v; want setuid and setgid kept", fi.Mode(), err)
	}
}

// TestRestoreKeepsGroupsOfTheUser: a restore not run as root gives an
// entry its recorded group when the user is a member of it, with its
// set-group-ID bit, as cp -p does; a group project restored by one of its
// members came back in the user's own group, locked to the others (found
// by an exploratory test). A group the user is not in is not given.
func TestRestoreKeepsGroupsOfTheUser(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("needs root to run snap as another user")
	}
	const uid, team, other = 65534, 4242, 4243
	tr, _ := newUserRepo(t, uid)
	runAs := runAsCredential(t, tr, syscall.Credential{Uid: uid, Gid: uid, Groups: []uint32{team}}, append(append(baseEnv(), tr.env...), "HOME="+tr.cache))
	src := filepath.Join(tr.dir, "proj")
	writeFile(t, filepath.Join(src, "sub", "notes"), []byte("shared"))
	writeFile(t, filepath.Join(src, "tool"), []byte("#!/bin/sh\n"))
	writeFile(t, filepath.Join(src, "elsewhere"), []byte("x"))
	must(t, os.MkdirAll(filepath.Join(src, "otherdir"), 0o755))
	must(t, os.Symlink("notes", filepath.Join(src, "sub", "link")))
	for _, e := range []struct {
		name string
		gid  int
		mode os.FileMode
	}{
		{"", team, 0o770 | os.ModeSetgid}, {"sub", team, 0o770 | os.ModeSetgid}, {"sub/notes", team, 0o640},
		{"tool", team, 0o750 | os.ModeSetgid}, {"elsewhere", other, 0o750 | os.ModeSetgid}, {"otherdir", other, 0o775 | os.ModeSetgid},
	} {
		p := filepath.Join(src, e.name)
		must(t, os.Chown(p, uid, e.gid))
		must(t, os.Chmod(p, e.mode))
	}
	must(t, os.Lchown(filepath.Join(src, "sub", "link"), uid, team))
	if res := runAs("create", src); res.code != 0 {
		t.Fatalf("create: %d %s", res.code, res.stderr)
	}
	target := filepath.Join(tr.dir, "target")
	must(t, os.MkdirAll(target, 0o755))
	must(t, os.Chown(target, uid, uid))
	if res := runAs("restore", "latest", "--target", target); res.code != 0 {
		t.Fatalf("restore: %d %s", res.code, res.stderr)
	}
	for _, e := range []struct {
		name string
		gid  uint32
		mode os.FileMode
	}{
		{"", team, 0o770 | os.ModeSetgid | os.ModeDir}, {"sub", team, 0o770 | os.ModeSetgid | os.ModeDir}, {"sub/notes", team, 0o640},
		{"sub/link", team, 0o777 | os.ModeSymlink}, {"tool", team, 0o750 | os.ModeSetgid}, {"elsewhere", uid, 0o750},
		// A directory that did not get its group loses the bit that
		// would pass the user's group on (cp -rp drops it too).
		{"otherdir", uid, 0o775 | os.ModeDir},
	} {
		fi, err := os.Lstat(filepath.Join(target, src, e.name))
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if st.Uid != uid || st.Gid != e.gid || fi.Mode()&(os.ModeType|os.ModePerm|os.ModeSetgid) != e.mode {
			t.Errorf("%s restored as %d:%d %v, want %d:%d %v", e.name, st.Uid, st.Gid, fi.Mode(), uid, e.gid, e.mode)
		}
	}
}

// TestScheduleInstallSystemAsUser: a user who is not root asking for
// system units gets told to add --user, not a permission error on a
// temporary file in /etc/systemd/system (found by an exploratory test).
func TestScheduleInstallSystemAsUser(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("needs root to run snap as another user")
	}
	tr, runAs := newUserRepo(t, 65534)
	cfg := tr.writeConfig("[jobs.app]\npaths = [\"/tmp\"]\nschedule = \"daily\"\n")
	must(t, os.Chmod(cfg, 0o644))
	res := runAs("schedule", "install", "--config", cfg)
	if res.code != exitUsage || !strings.Contains(res.stderr, "add --user for units of your own") {
		t.Errorf("schedule install as nobody: exit %d\n%s", res.code, res.stderr)
	}
}

// TestRestoreIfChangedOverOthersFiles: a restore not run as root, with
// --overwrite if-changed, over a shared directory where another user's
// file is already as recorded, changes nothing and succeeds; it failed
// with "chmod: operation not permitted" (found by an exploratory test).
func TestRestoreIfChangedOverOthersFiles(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("needs root to run snap as another user")
	}
	tr, runAs := newUserRepo(t, 65534)
	src := filepath.Join(tr.dir, "src")
	writeFile(t, filepath.Join(src, "roots"), []byte("root's file"))
	must(t, os.Chmod(src, 0o755))
	if res := runAs("create", src); res.code != 0 {
		t.Fatalf("create as nobody: %d %s", res.code, res.stderr)
	}
	target := filepath.Join(tr.dir, "shared")
	if res := tr.runEnv([]string{"SNAP_CACHE_DIR=" + filepath.Join(tr.dir, "rootcache")}, nil, "restore", "latest", "--target", target); res.code != 0 {
		t.Fatalf("restore as root: %d %s", res.code, res.stderr)
	}
	for d := filepath.Join(target, src); ; d = filepath.Dir(d) {
		must(t, os.Chown(d, 65534, 65534)) // the directories nobody's, the file root's
		if d == target {
			break
		}
	}
	if res := runAs("restore", "latest", "--target", target, "--overwrite", "if-changed"); res.code != 0 {
		t.Errorf("restore --overwrite if-changed as nobody over root's unchanged file: exit %d\n%s", res.code, res.stderr)
	}
}

// TestRestoreAgainIntoUnreadableDirs: a restore not run as root, run
// again into the same target (the resume the docs advise after an
// interrupted restore), gets into the directories the first one gave
// their recorded modes without the read bit (0000, 0300) and puts the
// modes back; it failed with "open …: permission denied" (found by an
// exploratory test).
func TestRestoreAgainIntoUnreadableDirs(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("needs root to run snap as another user")
	}
	tr, runAs := newUserRepo(t, 65534)
	src := filepath.Join(tr.dir, "src")
	modes := map[string]os.FileMode{"d000": 0, "d300": 0o300, "d100": 0o100}
	for name, mode := range modes {
		writeFile(t, filepath.Join(src, name, "in"), []byte(name))
		must(t, os.Chmod(filepath.Join(src, name), mode))
	}
	must(t, os.Chmod(src, 0o755))
	// Root's create, with a cache of root's own: nobody's is refused.
	if res := tr.runEnv([]string{"SNAP_CACHE_DIR=" + filepath.Join(tr.dir, "rootcache")}, nil, "create", src); res.code != 0 {
		t.Fatalf("create: %d %s", res.code, res.stderr)
	}
	target := filepath.Join(tr.dir, "target")
	must(t, os.MkdirAll(target, 0o755))
	must(t, os.Chown(target, 65534, 65534))
	for _, overwrite := range []string{"always", "always", "if-changed"} {
		if res := runAs("restore", "latest", "--target", target, "--overwrite", overwrite); res.code != 0 {
			t.Fatalf("restore --overwrite %s as nobody: exit %d\n%s", overwrite, res.code, res.stderr)
		}
		for name, mode := range modes {
			fi, err := os.Stat(filepath.Join(target, src, name))
			if err != nil || fi.Mode().Perm() != mode {
				t.Errorf("after restore --overwrite %s: %s: %v %v, want mode %o", overwrite, name, fi.Mode(), err, mode)
			}
		}
	}
	for name := range modes {
		if got, err := os.ReadFile(filepath.Join(target, src, name, "in")); err != nil || string(got) != name {
			t.Errorf("%s/in: %q %v", name, got, err)
		}
	}
}

// TestOwnFileUnreadable: a repository file its own user cannot read (mode
// 000) is explained as its mode, with the chmod that gives it back; the
// advice was to run snap as the owner, which it was (found by an
// exploratory test).
func TestOwnFileUnreadable(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("needs root to run snap as another user")
	}
	tr, runAs := newUserRepo(t, 65534)
	src := filepath.Join(tr.dir, "src")
	writeFile(t, filepath.Join(src, "f"), randomBytes(51, 100<<10))
	must(t, os.Chmod(src, 0o755))
	must(t, os.Chmod(filepath.Join(src, "f"), 0o644))
	if res := runAs("create", src); res.code != 0 {
		t.Fatalf("create as nobody: %d %s", res.code, res.stderr)
	}
	p := largestPack(t, tr.repo)
	must(t, os.Chmod(p, 0))
	res := runAs("check", "--read-data")
	if res.code == 0 || !strings.Contains(res.stderr, "chmod u+rwX "+p) || strings.Contains(res.stderr, "run snap as the user that owns") {
		t.Errorf("check of a pack its owner cannot read: exit %d\n%s", res.code, res.stderr)
	}
}

// TestFileGrowingWhileRead: a file that grows without end while it is read
// (extended by 256 MiB every 10 ms, faster than anything reads it) is read
// up to the size it had when it was opened, with a warning; the create
// read it for ever before (found by an exploratory test).
func TestFileGrowingWhileRead(t *testing.T) {
	t.Parallel()
	tr := newTestRepo(t)
	src := filepath.Join(tr.dir, "src")
	writeFile(t, filepath.Join(src, "small"), []byte("x"))
	f, err := os.Create(filepath.Join(src, "grows"))
	must(t, err)
	defer f.Close()
	size := int64(256 << 20)
	must(t, f.Truncate(size))
	stop := make(chan struct{})
	grown := make(chan struct{})
	go func() {
		defer close(grown)
		for {
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
				size += 256 << 20
				if f.Truncate(size) != nil {
					return
				}
			}
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, snapBin, "create", "--json", src)
	cmd.Env = append(baseEnv(), tr.env...)
	out, err := cmd.CombinedOutput()
	close(stop)
	<-grown
	if ctx.Err() != nil {
		t.Fatalf("the create of a growing file did not end within 2 minutes")
	}
	if err != nil || !strings.Contains(string(out), "file grew while it was read") || !strings.Contains(string(out), "if it was rewritten too, they may mix") {
		t.Fatalf("create of a growing file: %v\n%.2000s", err, out)
	}
}
