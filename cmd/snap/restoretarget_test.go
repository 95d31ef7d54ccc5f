package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
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
	moved.mustRun("restore", "latest:"+tr.dir, "--target", tr.dir, "--exclude", other.repo) // another repository: left alone
	moved.mustRun("check")
}

// TestRestoreLeavesOtherRepositoriesAlone: a snapshot of a /srv holding a
// repository, restored over a /srv holding another, leaves that one alone
// with an error, and restores the rest. It replaced the other's config,
// which could then not be read (found by a re-test). Where no repository
// is now, the snapshot's is restored.
func TestRestoreLeavesOtherRepositoriesAlone(t *testing.T) {
	tr := newTestRepo(t)
	h2 := filepath.Join(tr.dir, "h2", "srv")
	writeFile(t, filepath.Join(h2, "app", "f"), []byte("app"))
	writeFile(t, filepath.Join(h2, "backup", "config"), []byte("another repository's config"))
	writeFile(t, filepath.Join(h2, "backup", "keys", strings.Repeat("ab", 32)), []byte("a key"))
	tr.mustRun("create", h2)

	y := filepath.Join(tr.dir, "y", "srv")
	other := &testRepo{t: t, dir: tr.dir, repo: filepath.Join(y, "backup"), cache: tr.cache}
	other.env = []string{"SNAP_REPOSITORY=" + other.repo, "SNAP_PASSWORD=other", "SNAP_CACHE_DIR=" + other.cache}
	other.mustRun("init", "--kdf-memory", "8", "--kdf-time", "1", "--reserve", "0")
	config, err := os.ReadFile(filepath.Join(other.repo, "config"))
	must(t, err)
	res := tr.run("restore", "latest:"+h2, "--target", y)
	if want := "error: restore " + other.repo + ": it is a backup repository (a config file and key files): left as it is, with what the snapshot holds below it; to put the snapshot's copy in its place, restore that directory elsewhere and move it there"; res.code != exitFatal || !strings.Contains(res.stderr, want) {
		t.Errorf("restore over another repository: exit %d, want %q:\n%s", res.code, want, res.stderr)
	}
	if got, _ := os.ReadFile(filepath.Join(other.repo, "config")); !bytes.Equal(got, config) {
		t.Errorf("the other repository's config was written")
	}
	if b, err := os.ReadFile(filepath.Join(y, "app", "f")); err != nil || string(b) != "app" {
		t.Errorf("the rest was not restored: %q, %v", b, err)
	}
	other.mustRun("check")
	// None there now: restored.
	fresh := filepath.Join(tr.dir, "fresh")
	tr.mustRun("restore", "latest:"+h2, "--target", fresh)
	if b, err := os.ReadFile(filepath.Join(fresh, "backup", "config")); err != nil || string(b) != "another repository's config" {
		t.Errorf("a repository where none is: %q, %v", b, err)
	}
}

// TestRestoreLeavesBindMountedPackDirAlone: a pack directory bind mounted
// from another disk is the repository's too: a restore above the disk's
// directory leaves it alone. It wrote over a pack (found by a re-test).
func TestRestoreLeavesBindMountedPackDirAlone(t *testing.T) {
	tr := newTestRepo(t)
	src := filepath.Join(tr.dir, "src")
	writeFile(t, filepath.Join(src, "f"), []byte("x"))
	tr.mustRun("create", src)
	packs, err := filepath.Glob(filepath.Join(tr.repo, "data", "*", "*"))
	must(t, err)
	pack := packs[0]
	sub := filepath.Dir(pack)
	disk := filepath.Join(tr.dir, "disk", filepath.Base(sub))
	must(t, os.MkdirAll(filepath.Dir(disk), 0o700))
	must(t, os.Rename(sub, disk))
	must(t, os.Mkdir(sub, 0o700))
	mountOrSkip(t, disk, sub, "", unix.MS_BIND, "", "a bind mount")
	before, err := os.ReadFile(pack)
	must(t, err)
	// A snapshot of a tree that holds disk/xx/<pack>, restored above it.
	q := filepath.Join(tr.dir, "q")
	writeFile(t, filepath.Join(q, "disk", filepath.Base(sub), filepath.Base(pack)), []byte("garbage"))
	tr.mustRun("create", q)
	res := tr.run("restore", "latest:"+q, "--target", tr.dir)
	if want := "error: restore " + disk + ": it is the repository this restore reads"; res.code != exitFatal || !strings.Contains(res.stderr, want) {
		t.Errorf("restore above a bind-mounted pack directory: exit %d, want %q:\n%s", res.code, want, res.stderr)
	}
	if after, _ := os.ReadFile(pack); !bytes.Equal(after, before) {
		t.Fatalf("the pack was written")
	}
	tr.mustRun("check", "--read-data")
}
