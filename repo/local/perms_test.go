package local

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestApplyDirFollowsNoSymlink: root initialising a repository in a
// directory a user owns chowns init's directories to that user; one the
// user replaced by a symlink (to /etc, say) is refused, and what it leads
// to keeps its owner.
func TestApplyDirFollowsNoSymlink(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to chown")
	}
	root := t.TempDir()
	victim := filepath.Join(t.TempDir(), "victim")
	if err := os.Mkdir(victim, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(root, "data"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(victim, filepath.Join(root, "data", "00")); err != nil {
		t.Fatal(err)
	}
	p := perms{file: 0o600, dir: 0o700, uid: 65534, gid: 65534}
	rootDir, err := os.Open(root)
	if err != nil {
		t.Fatal(err)
	}
	defer rootDir.Close()
	if err := p.applyDir(rootDir, "data/00"); err == nil {
		t.Error("applyDir followed a symlink")
	}
	fi, err := os.Stat(victim)
	if err != nil {
		t.Fatal(err)
	}
	if st := fi.Sys().(*syscall.Stat_t); st.Uid != 0 {
		t.Errorf("the symlink's target was given to uid %d", st.Uid)
	}
	if err := p.applyDir(rootDir, "data"); err != nil {
		t.Fatal(err)
	}
	fi, _ = os.Stat(filepath.Join(root, "data"))
	if st := fi.Sys().(*syscall.Stat_t); st.Uid != 65534 {
		t.Errorf("data/ is owned by uid %d, want 65534", st.Uid)
	}
}

// TestOwnerAndModeAsLs: a permission error shows the mode as ls -l does;
// Go's FileMode.String wrote the set-group-ID directory of a shared
// repository as "dgrwxr-x---" where ls shows "drwxr-s---".
func TestOwnerAndModeAsLs(t *testing.T) {
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o750|os.ModeSetgid); err != nil {
		t.Fatal(err)
	}
	if got := ownerAndMode(dir); !strings.HasSuffix(got, "mode drwxr-s---") {
		t.Errorf("ownerAndMode of a 2750 directory: %q", got)
	}
}

// TestExplainAccessOfFileNotYetMade: a temporary file that could not be
// created is explained by its directory, whose owner this user is: the
// advice is the directory's mode, not "run snap as the user that owns the
// repository" (that user was already running it; found by an exploratory
// test). EPERM, which no mode gives, points at the file attributes.
func TestExplainAccessOfFileNotYetMade(t *testing.T) {
	dir := t.TempDir() // this user's
	missing := filepath.Join(dir, ".tmp-1234")
	err := explainAccess(missing, &fs.PathError{Op: "open", Path: missing, Err: syscall.EACCES}, false)
	if want := "its mode denies its own owner access; give it back with chmod u+rwX " + dir + " "; !strings.Contains(err.Error(), want) {
		t.Errorf("EACCES: %v, want %q", err, want)
	}
	err = explainAccess(missing, &fs.PathError{Op: "open", Path: missing, Err: syscall.EPERM}, false)
	if want := "the kernel refuses this whatever the mode: is it immutable or append-only (lsattr -d " + dir + ";"; !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "run snap as") {
		t.Errorf("EPERM: %v, want %q", err, want)
	}
}
