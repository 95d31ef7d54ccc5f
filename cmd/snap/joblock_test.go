package main

import (
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestJobLockDirs: a user without logind's /run/user/UID (a service
// account run from cron and by hand) gets its job locks in its home
// directory from the password database, ahead of XDG_RUNTIME_DIR and the
// cache directory, which vary with the environment and --cache-dir: two
// runs of one job that differed in them did not see each other's lock
// (found by an exploratory test). The directories are made here and given
// to another uid (the test runs as root); the uid has no /run/user.
func TestJobLockDirs(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("gives directories to another user: needs root")
	}
	const uid = 54321
	dir := t.TempDir()
	home := filepath.Join(dir, "home")
	shared := filepath.Join(dir, "shared")
	rt := filepath.Join(dir, "rt")
	for _, d := range []struct {
		path string
		mode os.FileMode
	}{{home, 0o755}, {shared, 0o775}, {rt, 0o700}} {
		must(t, os.Mkdir(d.path, d.mode))
		must(t, os.Chmod(d.path, d.mode))
		must(t, os.Chown(d.path, uid, uid))
	}
	getenv := func(rtDir string) func(string) string {
		return func(k string) string {
			if k == "XDG_RUNTIME_DIR" {
				return rtDir
			}
			return ""
		}
	}
	for _, tc := range []struct {
		name, home, rt string
		want           []string
	}{
		{"home first, the runtime dir after", home, rt, []string{filepath.Join(home, ".cache/snap/jobs"), filepath.Join(rt, "snap/jobs")}},
		{"without XDG_RUNTIME_DIR the same first place", home, "", []string{filepath.Join(home, ".cache/snap/jobs")}},
		{"a home others may write to is passed over", shared, rt, []string{filepath.Join(rt, "snap/jobs")}},
		{"a home of another user is passed over", dir, rt, []string{filepath.Join(rt, "snap/jobs")}},
		{"no home (/nonexistent)", "/nonexistent", "", nil},
	} {
		got := jobLockDirs(uid, getenv(tc.rt), func() string { return tc.home })
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
	if got := jobLockDirs(0, getenv(rt), func() string { return home }); !slices.Equal(got, []string{"/run/snap/jobs"}) {
		t.Errorf("root: %q", got)
	}
}

// TestJobLockWarningNamesTheFix: an account with no place for its job
// lock (nobody: no home directory, login session or HOME) is told so and
// how to give it one; the warning said "()" and "give the cache directory
// room", for a cache directory there was not (found by an exploratory
// test). One whose places cannot be written names them.
func TestJobLockWarningNamesTheFix(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("runs snap as nobody: needs root")
	}
	const uid = 65534
	home := func() string {
		u, err := user.LookupId("65534")
		if err != nil {
			return ""
		}
		return u.HomeDir
	}
	if dirs := jobLockDirs(uid, func(string) string { return "" }, home); len(dirs) > 0 {
		t.Skipf("nobody has places for its job locks here: %q", dirs)
	}
	tr := newUninitRepo(t)
	for d := tr.dir; d != "/" && d != os.TempDir(); d = filepath.Dir(d) {
		must(t, os.Chmod(d, 0o755)) // t.TempDir and its parent are 0700
	}
	cfg := filepath.Join(tr.dir, "snap.toml")
	writeFile(t, cfg, []byte("repository = \""+tr.repo+"\"\npassword_command = \"echo x\"\n[jobs.n]\npaths = [\""+tr.dir+"\"]\n"))
	for _, tc := range []struct {
		env  []string
		want string
	}{
		{[]string{"PATH=/usr/bin:/bin"}, "warning: job n: no lock against a second run of it at the same time: this user has no directory to keep one in (no home directory of its own, no /run/user/65534, no XDG_RUNTIME_DIR, and no cache directory: neither XDG_CACHE_HOME nor HOME is set); set cache_dir in the config, SNAP_CACHE_DIR or --cache-dir to a directory this user may write\n"},
		{[]string{"PATH=/usr/bin:/bin", "HOME=" + tr.dir}, "warning: job n: no lock against a second run of it at the same time: mkdir " + filepath.Join(tr.dir, ".cache") + ": permission denied; set cache_dir in the config, SNAP_CACHE_DIR or --cache-dir to a directory this user may write\n"},
	} {
		res := runAsUserEnv(t, tr, uid, tc.env)("run", "--config", cfg)
		if !strings.Contains(res.stderr, tc.want) {
			t.Errorf("run as nobody with %q: exit %d, want %q\n%s", tc.env, res.code, tc.want, res.stderr)
		}
	}
}
