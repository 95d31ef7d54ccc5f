package local

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/snap-backup/snap/repo"
)

// TestUnmountedAbove: a repository below an fstab mount point that is not
// mounted is told apart from one that is absent (found by an exploratory
// test: "run 'snap init'" to an admin whose backup disk was not mounted).
func TestUnmountedAbove(t *testing.T) {
	const fstab = `# /etc/fstab
UUID=1 / ext4 defaults 0 1
UUID=2 /mnt/backup ext4 defaults 0 2
UUID=3 /mnt/backup/deep xfs defaults 0 2
UUID=4 /mnt/with\040space ext4 defaults 0 2
UUID=5 none swap sw 0 0
UUID=6 /mnt/removable ext4 noauto,nofail 0 2
UUID=7 /srv ext4 defaults 0 2
`
	const mountinfo = `22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
30 22 254:1 / /mnt/backup rw,relatime shared:2 - ext4 /dev/vdb rw
31 22 0:40 / /srv/inner rw,relatime shared:3 - tmpfs tmpfs rw
`
	for _, tc := range []struct{ abs, want string }{
		{"/mnt/backup/repo", ""},                      // mounted
		{"/mnt/backup/deep/repo", "/mnt/backup/deep"}, // the deepest, not mounted
		{"/mnt/backup/deeper/repo", ""},               // not below deep
		{"/mnt/with space/repo", "/mnt/with space"},   // escaped
		{"/mnt/with space", "/mnt/with space"},        // the mount point itself
		{"/mnt/removable/repo", "/mnt/removable"},     // noauto: a removable disk
		{"/srv/repo", "/srv"},                         // not mounted
		{"/srv/inner/repo", ""},                       // a mount deeper than /srv holds it
		{"/opt/repo", ""},                             // on /
	} {
		if got := unmountedAbove(tc.abs, fstab, mountinfo); got != tc.want {
			t.Errorf("unmountedAbove(%q) = %q, want %q", tc.abs, got, tc.want)
		}
	}
	if got := unescapeMount(`a\040b\\c\0`); got != `a b\\c\0` {
		t.Errorf("unescapeMount: %q", got)
	}
}

// TestOpenNoRepositoryHint: Open of an empty or missing directory names
// both causes, a disk not mounted first.
func TestOpenNoRepositoryHint(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ path, want string }{
		{dir, "an empty directory: if the repository is on a disk that is not mounted, mount it; to create a new repository there, run 'snap init'"},
		{filepath.Join(dir, "missing"), "it does not exist: if the repository is on a disk that is not mounted, mount it"},
	} {
		_, err := Open(tc.path)
		if !errors.Is(err, repo.ErrNoRepository) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Open(%s): %v, want ErrNoRepository and %q", tc.path, err, tc.want)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "notes"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	// Not a place for 'snap init', which refuses it: no such advice.
	if _, err := Open(dir); err == nil || !strings.Contains(err.Error(), "a directory that holds other files but no repository") || strings.Contains(err.Error(), "run 'snap init'") {
		t.Errorf("Open of a directory of other files: %v", err)
	}
	if _, err := Open(filepath.Join(dir, "notes", "repo")); !errors.Is(err, repo.ErrNoRepository) || !strings.Contains(err.Error(), "a path below a file") {
		t.Errorf("Open of a path below a file: %v", err)
	}
}

// TestResolveExisting: a repository path through a symlink to a mount
// point is judged by where the link leads, as far as the path exists.
func TestResolveExisting(t *testing.T) {
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	point := filepath.Join(dir, "mnt", "backup")
	if err := os.MkdirAll(point, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(point, filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	if got := resolveExisting(filepath.Join(dir, "link", "repo", "x")); got != filepath.Join(point, "repo", "x") {
		t.Errorf("resolveExisting through a link = %s", got)
	}
	if got := resolveExisting("/nonexistent-root-dir/a"); got != "/nonexistent-root-dir/a" {
		t.Errorf("resolveExisting of a missing path = %s", got)
	}
}
