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
}
