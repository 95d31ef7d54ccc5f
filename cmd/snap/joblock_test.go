package main

import (
	"os"
	"path/filepath"
	"slices"
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
