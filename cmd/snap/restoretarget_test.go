package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRestoreRefusesRepositoryTargets: a restore never writes into a
// repository. Into another repository it replaced config and keys with the
// snapshot's files, and that repository could no longer be read; into the
// one it reads, or its cache, it left its files there (found by an
// exploratory test).
func TestRestoreRefusesRepositoryTargets(t *testing.T) {
	tr := newTestRepo(t)
	src := filepath.Join(tr.dir, "src")
	writeFile(t, filepath.Join(src, "config"), []byte("the snapshot's config"))
	writeFile(t, filepath.Join(src, "keys", "k"), []byte("a key"))
	tr.mustRun("create", src)

	other := &testRepo{t: t, dir: tr.dir, repo: filepath.Join(tr.dir, "other"), cache: tr.cache}
	other.env = []string{"SNAP_REPOSITORY=" + other.repo, "SNAP_PASSWORD=other", "SNAP_CACHE_DIR=" + other.cache}
	other.mustRun("init", "--kdf-memory", "8", "--kdf-time", "1", "--reserve", "0")
	otherConfig, err := os.ReadFile(filepath.Join(other.repo, "config"))
	if err != nil {
		t.Fatal(err)
	}
	// The repository's own cache: the directory beside key-hints.
	caches, _ := filepath.Glob(filepath.Join(tr.cache, "*", "index.db"))
	if len(caches) != 1 {
		t.Fatalf("caches: %v", caches)
	}
	cacheOfRepo := filepath.Dir(caches[0])
	for _, c := range []struct{ target, want string }{
		{tr.repo, tr.repo + " is the repository this restore reads, which a restore into it would damage: give another --target"},
		{filepath.Join(tr.repo, "restored"), tr.repo + " is the repository this restore reads"},
		{cacheOfRepo, cacheOfRepo + " is snap's cache of the repository this restore reads, which"},
		{other.repo, other.repo + " holds a backup repository (a config file and key files), whose files a restore into it would replace or mix with the snapshot's: restore into another directory"},
		{filepath.Join(other.repo, "new", "dir"), other.repo + " holds a backup repository"},
	} {
		res := tr.run("restore", "latest:"+src, "--target", c.target)
		if res.code != exitUsage || !strings.Contains(res.stderr, "--target "+c.target+": "+c.want) {
			t.Errorf("restore into %s: exit %d, want %d with %q:\n%s", c.target, res.code, exitUsage, c.want, res.stderr)
		}
	}
	if got, _ := os.ReadFile(filepath.Join(other.repo, "config")); !bytes.Equal(got, otherConfig) {
		t.Errorf("the other repository's config was written")
	}
	if _, err := os.Stat(filepath.Join(other.repo, "new")); err == nil {
		t.Errorf("a directory was made inside the other repository")
	}
	other.mustRun("check")
	tr.mustRun("check")

	// A target above the repository: refused only when what the restore
	// selects holds the repository's path there.
	out := filepath.Join(tr.dir, "out")
	moved := &testRepo{t: t, dir: tr.dir, repo: filepath.Join(out, "repo"), cache: tr.cache}
	moved.env = []string{"SNAP_REPOSITORY=" + moved.repo, "SNAP_PASSWORD=test-password", "SNAP_CACHE_DIR=" + moved.cache}
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tr.repo, moved.repo); err != nil {
		t.Fatal(err)
	}
	tree := filepath.Join(tr.dir, "tree")
	writeFile(t, filepath.Join(tree, "repo", "config"), []byte("x"))
	writeFile(t, filepath.Join(tree, "app"), []byte("y"))
	moved.mustRun("create", tree)
	config, err := os.ReadFile(filepath.Join(moved.repo, "config"))
	if err != nil {
		t.Fatal(err)
	}
	// By --include of what lies below it, too, and with --repo relative
	// (both wrote over the repository's config; found by a review).
	for _, args := range [][]string{
		{"restore", "latest:" + tree, "--target", out},
		{"restore", "latest:" + tree, "--target", out, "--include", "config"},
		{"--repo", "out/repo", "restore", "latest:" + tree, "--target", out},
	} {
		moved.workDir = tr.dir
		res := moved.run(args...)
		if want := "error: restore " + moved.repo + ": it is the repository this restore reads: left as it is, with what the snapshot holds below it"; res.code != exitFatal || !strings.Contains(res.stderr, want) {
			t.Errorf("%v above the repository: exit %d, want %d with %q:\n%s", args, res.code, exitFatal, want, res.stderr)
		}
		if got, _ := os.ReadFile(filepath.Join(moved.repo, "config")); !bytes.Equal(got, config) {
			t.Fatalf("%v wrote the repository's config", args)
		}
	}
	moved.mustRun("restore", "latest:"+tree, "--target", out, "--exclude", tree+"/repo")
	moved.mustRun("restore", "latest:"+tree, "--target", out, "--include", tree+"/app")
	if b, err := os.ReadFile(filepath.Join(out, "app")); err != nil || string(b) != "y" {
		t.Errorf("app restored above the repository: %q, %v", b, err)
	}
	moved.mustRun("check")

	// A home directory restored in place, the repository and the cache
	// inside it: the create left them out, and the restore goes through
	// (it was refused for the cache's directory; found by a review).
	moved.workDir = ""
	moved.mustRun("create", tr.dir)
	moved.mustRun("restore", "latest:"+tr.dir, "--target", tr.dir)
	moved.mustRun("check")
}
