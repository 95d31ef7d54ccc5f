package safepath

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestResolveTarget: a restore's target path is followed only where no
// other user could have put or changed what it names (red-team tests:
// root's restore replaced a root-owned database through a link another
// user put behind root's own link, and made files in any directory through
// a link in a user's directory above the target). As root.
func TestResolveTarget(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to give files to another user")
	}
	const nobody = 65534
	top := t.TempDir()
	p := func(s string) string { return filepath.Join(top, s) }
	mk := func(dir string, mode os.FileMode, uid int) {
		t.Helper()
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(dir, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(dir, uid, uid); err != nil {
			t.Fatal(err)
		}
	}
	link := func(target, name string, uid int) {
		t.Helper()
		if err := os.Symlink(target, name); err != nil {
			t.Fatal(err)
		}
		if err := os.Lchown(name, uid, uid); err != nil {
			t.Fatal(err)
		}
	}
	mk(p("victims"), 0o700, 0)
	mk(p("app"), 0o755, nobody) // an application's data directory
	mk(p("home"), 0o755, nobody)
	mk(p("srv"), 0o755, 0)
	mk(p("shared"), os.ModeSticky|0o777, 0) // sticky, open to everyone
	mk(p("srv/data"), 0o755, 0)
	link(p("victims/other.db"), p("app/evil.db"), nobody)
	link(p("app/evil.db"), p("srv/evil.db"), 0) // root's link, to the user's
	link(p("app/app.db"), p("srv/app.db"), 0)   // root's link into the app's directory
	link(p("victims"), p("home/app"), nobody)   // the user's link above the target
	link(p("srv/data"), p("srv/datalink"), 0)   // root's link to root's directory
	for _, c := range []struct {
		path, file string
		trusted    bool
		refused    string
	}{
		{path: p("srv/data/x.db"), file: p("srv/data/x.db"), trusted: true},
		{path: p("srv/datalink/x.db"), file: p("srv/data/x.db"), trusted: true},
		{path: p("srv/new/sub/x.db"), file: p("srv/new/sub/x.db"), trusted: true},
		{path: p("app/app.db"), file: p("app/app.db")},
		{path: p("srv/app.db"), file: p("app/app.db")},
		{path: p("shared/x.db"), file: p("shared/x.db")},
		{path: p("srv/evil.db"), refused: "symbolic link of another user's"},
		{path: p("app/evil.db"), refused: "symbolic link of another user's"},
		{path: p("home/app/x.db"), refused: "which another user may write (owner uid 65534, mode 0755)"},
		{path: p("app/new/x.db"), refused: "would be made in"},
	} {
		file, trusted, err := Resolve(c.path)
		switch {
		case c.refused != "" && (err == nil || !strings.Contains(err.Error(), c.refused)):
			t.Errorf("%s: %q, %v; want refused (%s)", c.path, file, err, c.refused)
		case c.refused == "" && (err != nil || file != c.file || trusted != c.trusted):
			t.Errorf("%s: %q, trusted %v, %v; want %q, trusted %v", c.path, file, trusted, err, c.file, c.trusted)
		}
	}
}

// TestPrivateDirRefusesOthersTMPDIR: a $TMPDIR another user may write is
// passed over for the private load (a red-team test's user swapped the new
// directory for a link there), and the directory made is root's, 0700.
func TestPrivateDirRefusesOthersTMPDIR(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to give a directory to another user")
	}
	theirs := filepath.Join(t.TempDir(), "tmp")
	if err := os.Mkdir(theirs, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(theirs, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	t.Setenv("TMPDIR", theirs)
	work, err := PrivateDir("snap-test-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(work)
	fi, err := os.Lstat(work)
	if err != nil || strings.HasPrefix(work, theirs) || !fi.IsDir() || fi.Mode().Perm() != 0o700 || !IsOurs(fi) {
		t.Errorf("private directory %s (%v, %v)", work, fi.Mode(), err)
	}
}

// TestOthersMayWrite: write permission for everyone, or for a group with
// another member, lets others write; for a group of the owner's alone (a
// user private group, as root's group is) it does not.
func TestOthersMayWrite(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to give a file another group")
	}
	f := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(f, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		mode os.FileMode
		gid  int
		want bool
	}{
		{0o644, 0, false},
		{0o664, 0, false},     // root's own group
		{0o664, 65534, true},  // nogroup: another name, other members
		{0o646, 0, true},      // everyone
		{0o644, 65534, false}, // the group may only read
	} {
		if err := os.Chown(f, 0, c.gid); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(f, c.mode); err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if got := OthersMayWrite(fi, f); got != c.want {
			t.Errorf("mode %04o, group %d: %v, want %v", c.mode, c.gid, got, c.want)
		}
	}
	// An access ACL giving another user write (setfacl -m u:nobody:rw),
	// in the kernel's xattr form: the group bits are its mask (a red-team
	// test's config, 0660 root:root with the ACL, passed for root's own).
	if err := os.Chown(f, 0, 0); err != nil {
		t.Fatal(err)
	}
	acl := []byte{2, 0, 0, 0} // version
	for _, e := range []struct {
		tag, perm uint16
		id        uint32
	}{{0x01, 6, 0xffffffff}, {0x02, 6, 65534}, {0x04, 4, 0xffffffff}, {0x10, 6, 0xffffffff}, {0x20, 4, 0xffffffff}} {
		acl = binary.LittleEndian.AppendUint16(acl, e.tag)
		acl = binary.LittleEndian.AppendUint16(acl, e.perm)
		acl = binary.LittleEndian.AppendUint32(acl, e.id)
	}
	if err := unix.Setxattr(f, "system.posix_acl_access", acl, 0); err != nil {
		t.Skipf("no ACLs here: %v", err)
	}
	fi, err := os.Stat(f)
	if err != nil {
		t.Fatal(err)
	}
	if !OthersMayWrite(fi, f) || !HasACL(f) {
		t.Errorf("mode %04o with an ACL giving another user write: not others'", fi.Mode().Perm())
	}
}
