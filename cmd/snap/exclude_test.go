package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/snap-backup/snap/sources"
)

// excludeTree makes a tree with a cache directory (a CACHEDIR.TAG with
// its signature), a directory tagged .nobackup, a CACHEDIR.TAG without
// the signature (not a cache), a large file and a log file, and an
// exclude file that names *.log.
func excludeTree(t *testing.T, dir string) (src, exFile string) {
	src = filepath.Join(dir, "src")
	writeFile(t, filepath.Join(src, "app", "cache", sources.CacheDirTag), []byte(sources.CacheDirSignature+"\n# made by app\n"))
	writeFile(t, filepath.Join(src, "app", "cache", "sub", "blob"), []byte("cached"))
	writeFile(t, filepath.Join(src, "app", "data", "small"), []byte("kept"))
	writeFile(t, filepath.Join(src, "app", "data", "big"), make([]byte, 2<<20))
	writeFile(t, filepath.Join(src, "app", "data", "app.log"), []byte("log"))
	writeFile(t, filepath.Join(src, "skip", ".nobackup"), nil)
	writeFile(t, filepath.Join(src, "skip", "inner", "file"), []byte("skipped"))
	writeFile(t, filepath.Join(src, "notcache", sources.CacheDirTag), []byte("no signature here"))
	writeFile(t, filepath.Join(src, "notcache", "file"), []byte("kept"))
	exFile = filepath.Join(dir, "excludes")
	writeFile(t, exFile, []byte("# logs are shipped elsewhere\n\n   *.log   \n"))
	return src, exFile
}

// snapshotPaths lists the paths of the latest snapshot below src,
// relative to it.
func (tr *testRepo) snapshotPaths(src string) []string {
	tr.t.Helper()
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(tr.mustRun("ls", "latest", src).stdout), "\n") {
		if rel, ok := strings.CutPrefix(l, src+"/"); ok {
			out = append(out, rel)
		}
	}
	return out
}

var excludedTreeWant = []string{
	"app", "app/cache", "app/cache/" + sources.CacheDirTag, "app/data", "app/data/small",
	"notcache", "notcache/" + sources.CacheDirTag, "notcache/file", "skip", "skip/.nobackup",
}

// TestCreateExcludeOptions: --exclude-caches and --exclude-if-present keep
// a tagged directory with its tag file only, --exclude-larger-than leaves
// out large files, --exclude-file reads globs (comments, blank lines and
// spaces ignored); bad values exit 2 naming the flag.
func TestCreateExcludeOptions(t *testing.T) {
	t.Parallel()
	tr := newTestRepo(t)
	src, exFile := excludeTree(t, tr.dir)
	tr.mustRun("create", src, "--exclude-caches", "--exclude-if-present", ".nobackup", "--exclude-larger-than", "1MiB", "--exclude-file", exFile)
	if got := tr.snapshotPaths(src); !slices.Equal(got, excludedTreeWant) {
		t.Errorf("snapshot holds\n%q\nwant\n%q", got, excludedTreeWant)
	}
	// Without the options everything is saved.
	tr.mustRun("create", src)
	if got := tr.snapshotPaths(src); len(got) != len(excludedTreeWant)+6 {
		t.Errorf("without exclusions the snapshot holds %d entries, want %d: %q", len(got), len(excludedTreeWant)+6, got)
	}
	for _, c := range []struct {
		args []string
		frag string
	}{
		{[]string{"--exclude-file", filepath.Join(tr.dir, "missing")}, "exclude file"},
		{[]string{"--exclude-file="}, "name is empty"},
		{[]string{"--exclude-if-present", "a/b"}, "exclude-if-present"},
		{[]string{"--exclude-larger-than", "big"}, "--exclude-larger-than"},
		{[]string{"--exclude-larger-than", "0"}, "every file"},
		{[]string{"--exclude-larger-than", "NaN"}, "--exclude-larger-than"},
		{[]string{"--exclude-larger-than", "1e30"}, "--exclude-larger-than"},
	} {
		res := tr.run(append([]string{"create", src}, c.args...)...)
		if res.code != exitUsage || !strings.Contains(res.stderr, c.frag) {
			t.Errorf("create %v: exit %d, %s", c.args, res.code, res.stderr)
		}
	}
	bad := filepath.Join(tr.dir, "bad-excludes")
	writeFile(t, bad, []byte("ok\n[\n"))
	if res := tr.run("create", src, "--exclude-file", bad); res.code != exitUsage || !strings.Contains(res.stderr, bad+":2") {
		t.Errorf("a bad glob in an exclude file: exit %d, %s", res.code, res.stderr)
	}
}

// TestJobExcludeOptions: the job keys exclude_file (relative to the config
// file), exclude_if_present, exclude_caches and exclude_larger_than do
// what the flags do; config check reports a missing exclude file.
func TestJobExcludeOptions(t *testing.T) {
	t.Parallel()
	tr := newTestRepo(t)
	src, exFile := excludeTree(t, tr.dir)
	cfg := tr.writeConfig(`[jobs.app]
paths = ["` + src + `"]
exclude_file = ["` + filepath.Base(exFile) + `"]
exclude_if_present = [".nobackup"]
exclude_caches = true
exclude_larger_than = "1MiB"
`)
	if res := tr.runConfig(nil, "run", "--config", cfg); res.code != 0 {
		t.Fatalf("run: exit %d\n%s%s", res.code, res.stdout, res.stderr)
	}
	if got := tr.snapshotPaths(src); !slices.Equal(got, excludedTreeWant) {
		t.Errorf("job snapshot holds\n%q\nwant\n%q", got, excludedTreeWant)
	}
	if err := os.Remove(exFile); err != nil {
		t.Fatal(err)
	}
	res := tr.runConfig(nil, "config", "check", "--config", cfg)
	if res.code != exitUsage || !strings.Contains(res.stderr+res.stdout, "exclude_file") {
		t.Errorf("config check with a missing exclude file: exit %d\n%s%s", res.code, res.stdout, res.stderr)
	}
}

// TestCreateNestedPaths: a path given inside another is saved by the walk
// of the outer one, whatever the excludes say (as one given alone); one
// that walk would not reach as asked is refused (exit 2): a symlink to
// follow, or one on the way, or an excluded directory on the way. Each
// was left out without a word (found by an exploratory test).
func TestCreateNestedPaths(t *testing.T) {
	t.Parallel()
	tr := newTestRepo(t)
	src := filepath.Join(tr.dir, "src")
	writeFile(t, filepath.Join(src, "a", "b", "f"), []byte("f"))
	writeFile(t, filepath.Join(src, "big"), make([]byte, 4096))
	writeFile(t, filepath.Join(tr.dir, "elsewhere", "ibdata"), []byte("database"))
	must(t, os.Symlink(filepath.Join(tr.dir, "elsewhere"), filepath.Join(src, "mysql")))
	tr.mustRun("create", src, "--exclude", "b", "--exclude-larger-than", "1KiB", filepath.Join(src, "a", "b"), filepath.Join(src, "big"))
	if got := tr.snapshotPaths(src); !slices.Equal(got, []string{"a", "a/b", "a/b/f", "big", "mysql"}) {
		t.Errorf("named inside the backed-up src: %v", got)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{src, src + "/mysql/"}, "/mysql is a symlink, which that backup saves as one"},
		{[]string{src, src + "/mysql/ibdata"}, "/mysql on the way is a symlink"},
		// The outer path a symlink itself (found by an exploratory test).
		{[]string{src + "/mysql", src + "/mysql/ibdata"}, "/mysql is a symlink, which that backup saves as one, not what it points to (" + src + "/mysql/ would follow it)"},
		{[]string{src, "--exclude", "b", src + "/a/b/f"}, "an --exclude leaves out " + src + "/a/b on the way"},
		// A tag file on the way (found by a re-test).
		{[]string{src, "--exclude-if-present", "a", src + "/a/b"}, src + " on the way holds a, so that backup saves it with that alone"},
		{[]string{src, "--exclude-if-present", "b", src + "/a/b/f"}, src + "/a on the way holds b"},
	} {
		res := tr.run(append([]string{"create"}, c.args...)...)
		if res.code != exitUsage || !strings.Contains(res.stderr, c.want) || !strings.Contains(res.stderr, "no snapshot was saved") {
			t.Errorf("create %v: exit %d: %s", c.args, res.code, res.stderr)
		}
	}
	// Alone, the symlink given with a slash is followed.
	tr.mustRun("create", src+"/mysql/")
	if got := tr.snapshotPaths(src + "/mysql"); !slices.Equal(got, []string{"ibdata"}) {
		t.Errorf("src/mysql/ alone: %v", got)
	}
}
