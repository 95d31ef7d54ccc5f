package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCreateLeavesOutRepository: a create of a directory that holds the
// repository it writes to, and that repository's cache, leaves both out
// (a nightly backup of / held the repository, and each night a copy of the
// night before); a path inside the repository is refused (exit 2).
func TestCreateLeavesOutRepository(t *testing.T) {
	tr := newTestRepo(t)
	writeFile(t, filepath.Join(tr.dir, "app", "data"), []byte("application data"))
	res := tr.mustRun("create", tr.dir)
	for _, want := range []string{"left out " + tr.repo + ": the repository this snapshot goes into", "left out " + tr.cache + "/"} {
		if !strings.Contains(res.stderr, want) {
			t.Errorf("create's notices lack %q:\n%s", want, res.stderr)
		}
	}
	ls := tr.mustRun("ls", "latest", tr.dir).stdout
	if !strings.Contains(ls, filepath.Join(tr.dir, "app", "data")) {
		t.Fatalf("the snapshot lacks the application's data:\n%s", ls)
	}
	for _, left := range []string{tr.repo + "/", tr.cache + "/"} {
		if strings.Contains(ls, left) {
			t.Errorf("the snapshot holds %s:\n%s", left, ls)
		}
	}
	// Through a symlink to the directory above, and a bind of the
	// repository under another name (the same directory): still left out.
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(tr.dir, link); err != nil {
		t.Fatal(err)
	}
	if res := tr.mustRun("create", link+"/"); !strings.Contains(res.stderr, "left out "+link+"/repo") {
		t.Errorf("through a symlink: %s", res.stderr)
	}
	for _, p := range []string{tr.repo, filepath.Join(tr.repo, "data"), filepath.Join(link, "repo", "keys")} {
		res := tr.run("create", p)
		if res.code != exitUsage || !strings.Contains(res.stderr, "is the repository this snapshot goes into; back up a repository into another with 'snap copy'") {
			t.Errorf("create %s: exit %d, %s", p, res.code, res.stderr)
		}
	}
	if res := tr.run("-q", "create", tr.dir); strings.Contains(res.stderr, "left out") {
		t.Errorf("-q shows the notice: %s", res.stderr)
	}
	// Relative paths from inside the repository, and a symlink into it
	// given with a trailing slash, are refused too; a cache path says
	// what a cache is (found by a re-test).
	inData := *tr
	inData.wrap = []string{"sh", "-c", `cd "$0" && exec "$@"`, filepath.Join(tr.repo, "data")}
	must(t, os.Symlink(filepath.Join(tr.repo, "data"), filepath.Join(tr.dir, "ldata")))
	for _, c := range []struct {
		r    *testRepo
		path string
	}{{&inData, "."}, {&inData, "00/.."}, {tr, filepath.Join(tr.dir, "ldata") + "/"}} {
		if res := c.r.run("create", c.path); res.code != exitUsage || !strings.Contains(res.stderr, "is the repository this snapshot goes into") {
			t.Errorf("create %s: exit %d, %s", c.path, res.code, res.stderr)
		}
	}
	caches, _ := filepath.Glob(filepath.Join(tr.cache, "*"))
	if res := tr.run("create", caches[0]); res.code != exitUsage || !strings.Contains(res.stderr, "a cache is rebuilt from the repository") {
		t.Errorf("create of the cache: exit %d, %s", res.code, res.stderr)
	}
	// data/ moved to another disk and linked: left out where the walk
	// meets it.
	moved := filepath.Join(tr.dir, "disk2", "data")
	must(t, os.MkdirAll(filepath.Dir(moved), 0o700))
	must(t, os.Rename(filepath.Join(tr.repo, "data"), moved))
	must(t, os.Symlink(moved, filepath.Join(tr.repo, "data")))
	if res := tr.mustRun("create", filepath.Join(tr.dir, "disk2")); !strings.Contains(res.stderr, "left out "+moved+": the repository") {
		t.Errorf("create of the disk data/ was moved to: %s", res.stderr)
	}
}
