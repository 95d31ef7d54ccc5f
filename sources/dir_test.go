package sources

import (
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestCreateFileMeta: restored files end with the recorded owner and mode
// whether CreateFile could give them at once (a plain mode the umask leaves
// alone, the creator's owner) or SetMeta has to change them: a mode the
// umask would mask, a setuid bit, another owner, and a directory whose
// set-group-ID bit gives new files its group.
func TestCreateFileMeta(t *testing.T) {
	dir, tg, root := openTestRoot(t)
	euid, egid := os.Geteuid(), os.Getegid()
	cases := []struct {
		name   string
		uid    int
		gid    int
		mode   uint32
		setgid bool // create it in a set-group-ID directory of another group
		fast   bool // created with its final owner and mode
	}{
		{"plain", euid, egid, 0o644, false, true},
		{"read-only", euid, egid, 0o444, false, true},
		{"masked by the umask", euid, egid, 0o666, false, tg.umask&0o022 == 0},
		{"setuid", euid, egid, 0o4755, false, false},
		{"other owner", 65534, 65534, 0o640, false, euid != 0},
		{"in a setgid directory", euid, egid, 0o640, true, euid != 0},
	}
	for _, c := range cases {
		d := root
		if c.setgid {
			if euid != 0 {
				continue // needs a group to give the directory
			}
			sub, err := root.Mkdir("sgid")
			if err != nil {
				t.Fatal(err)
			}
			defer sub.Close()
			p := filepath.Join(dir, "sgid")
			if err := os.Chown(p, 0, 65534); err != nil {
				t.Fatal(err)
			}
			if err := unix.Chmod(p, 0o2755); err != nil {
				t.Fatal(err)
			}
			if d, err = root.Mkdir("sgid"); err != nil { // opened again: now it has the bit
				t.Fatal(err)
			}
			defer d.Close()
		}
		m := Meta{Name: c.name, Type: TypeFile, Mode: c.mode, UID: uint32(c.uid), GID: uint32(c.gid), MTime: 1e18}
		f, err := d.CreateFile(c.name, m)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if f.created != c.fast {
			t.Errorf("%s: created with final owner and mode = %v, want %v", c.name, f.created, c.fast)
		}
		if err := f.WriteAt([]byte("data"), 0); err != nil {
			t.Fatal(err)
		}
		if err := f.SetMeta(m); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		var st unix.Stat_t
		p := filepath.Join(dir, c.name)
		if c.setgid {
			p = filepath.Join(dir, "sgid", c.name)
		}
		if err := unix.Stat(p, &st); err != nil {
			t.Fatal(err)
		}
		if st.Mode&0o7777 != c.mode {
			t.Errorf("%s: mode %o, want %o", c.name, st.Mode&0o7777, c.mode)
		}
		if euid == 0 && (int(st.Uid) != c.uid || int(st.Gid) != c.gid) {
			t.Errorf("%s: owner %d:%d, want %d:%d", c.name, st.Uid, st.Gid, c.uid, c.gid)
		}
	}
}

// TestMkdirReadOnlyExisting: restoring again into a restore left a
// read-only directory (its recorded mode, 0555); a restore not run as
// root makes it writable for its owner while it works in it, and the
// directory's metadata, set at the end, puts the mode back. (Run as root,
// the test plays a user who owns the directory: the kernel lets root write
// anyway, so it checks the modes rather than a refused write.)
func TestMkdirReadOnlyExisting(t *testing.T) {
	dir := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.Mkdir(filepath.Join(dir, "ro"), 0o555))
	must(os.Chmod(filepath.Join(dir, "ro"), 0o555))
	tg, err := OpenTarget(dir)
	must(err)
	defer tg.Close()
	tg.asRoot = false
	root, err := tg.RootDir()
	must(err)
	defer root.Close()
	d, err := root.Mkdir("ro")
	must(err)
	defer d.Close()
	var st unix.Stat_t
	must(unix.Stat(filepath.Join(dir, "ro"), &st))
	if st.Mode&0o777 != 0o755 {
		t.Errorf("while restoring into it: mode %o, want 755", st.Mode&0o777)
	}
	must(d.SetOwnMeta(Meta{Type: TypeDir, Mode: 0o555, MTime: 1}))
	must(unix.Stat(filepath.Join(dir, "ro"), &st))
	if st.Mode&0o777 != 0o555 {
		t.Errorf("after its metadata: mode %o, want 555", st.Mode&0o777)
	}
}

// TestMknodDeviceNumbers: a device node gets the number stat recorded
// (major 259, minor 0x12345 spans both halves of Linux's encoding); one
// past 32 bits, which only a crafted repository holds, is refused rather
// than cut short into another device's number.
func TestMknodDeviceNumbers(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mknod of a device node needs root")
	}
	dir, _, root := openTestRoot(t)
	dev := unix.Mkdev(259, 0x12345)
	if err := root.Mknod("blk", Meta{Type: TypeDev, Mode: 0o600, Rdev: dev}); err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(dir, "blk"), &st); err != nil {
		t.Fatal(err)
	}
	if st.Rdev != dev || st.Mode&unix.S_IFMT != unix.S_IFBLK {
		t.Errorf("rdev %#x mode %o, want %#x, a block device", st.Rdev, st.Mode, dev)
	}
	err := root.Mknod("big", Meta{Type: TypeCharDev, Mode: 0o600, Rdev: 1<<32 | 5})
	if err == nil || !strings.Contains(err.Error(), "does not fit") {
		t.Errorf("a 33-bit device number: %v, want an error", err)
	}
	if _, err := os.Lstat(filepath.Join(dir, "big")); !os.IsNotExist(err) {
		t.Errorf("a node was made for a 33-bit device number: %v", err)
	}
}

// openTestRoot opens a new temporary directory as a restore target and
// returns it with the target and its root Dir, closed when the test ends.
func openTestRoot(t *testing.T) (string, *Target, *Dir) {
	t.Helper()
	dir := t.TempDir()
	tg, err := OpenTarget(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tg.Close() })
	root, err := tg.RootDir()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { root.Close() })
	return dir, tg, root
}

// TestJoinErrors: failed metadata calls are named and listed on one line,
// and each stays visible to errors.Is.
func TestJoinErrors(t *testing.T) {
	if err := joinErrors([]error{nil, step("chmod", nil)}); err != nil {
		t.Errorf("no failure: %v", err)
	}
	err := joinErrors([]error{step("chown", unix.EPERM), nil, step("set times", unix.EPERM)})
	if err == nil || err.Error() != "chown: operation not permitted; set times: operation not permitted" || !errors.Is(err, unix.EPERM) {
		t.Errorf("two failures: %v", err)
	}
}

// TestOpenTargetDanglingSymlink: a target that is a symlink to nothing
// says so, not only "file exists".
func TestOpenTargetDanglingSymlink(t *testing.T) {
	link := filepath.Join(t.TempDir(), "t")
	if err := os.Symlink("/nonexistent/x", link); err != nil {
		t.Fatal(err)
	}
	_, err := OpenTarget(link)
	if err == nil || !strings.Contains(err.Error(), "is a symlink to /nonexistent/x, which is not a directory") {
		t.Errorf("dangling symlink as target: %v", err)
	}
}

// TestACLNotSetKeepsGroupToItsEntry: on a file system without ACLs
// (ramfs), an entry whose access ACL cannot be set gets group bits of the
// owning group's entry limited by the mask, not the mask itself: group::r--
// with mask rwx came back as group write (found by an exploratory test).
// The ACL's failure is still reported.
func TestACLNotSetKeepsGroupToItsEntry(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounts a ramfs: needs root")
	}
	mnt := t.TempDir()
	if err := unix.Mount("ramfs", mnt, "ramfs", 0, ""); err != nil {
		t.Skipf("no ramfs here: %v", err)
	}
	t.Cleanup(func() { _ = unix.Unmount(mnt, unix.MNT_DETACH) })
	// user::rw-, user:1000:rwx, group::r--, mask::rwx, other::r--
	acl := []byte{2, 0, 0, 0}
	for _, e := range [][3]uint32{{0x01, 6, 0xffffffff}, {0x02, 7, 1000}, {0x04, 4, 0xffffffff}, {0x10, 7, 0xffffffff}, {0x20, 4, 0xffffffff}} {
		acl = binary.LittleEndian.AppendUint16(acl, uint16(e[0]))
		acl = binary.LittleEndian.AppendUint16(acl, uint16(e[1]))
		acl = binary.LittleEndian.AppendUint32(acl, e[2])
	}
	xattrs := []Xattr{{Name: aclAccess, Value: acl}}
	tg, err := OpenTarget(mnt)
	if err != nil {
		t.Fatal(err)
	}
	defer tg.Close()
	root, err := tg.RootDir()
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	file := Meta{Type: TypeFile, Mode: 0o674, Xattrs: xattrs, MTime: 1}
	f, err := root.CreateFile("f", file)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.SetMeta(file); err == nil || !strings.Contains(err.Error(), aclAccess) {
		t.Errorf("SetMeta on ramfs: %v, want the ACL's error", err)
	}
	f.Close()
	fifo := Meta{Type: TypeFIFO, Mode: 0o674, Xattrs: xattrs, MTime: 1}
	if err := root.Mknod("p", fifo); err != nil {
		t.Fatal(err)
	}
	if err := root.SetMeta("p", fifo); err == nil {
		t.Error("SetMeta of a FIFO on ramfs: no error about its ACL")
	}
	for _, name := range []string{"f", "p"} {
		var st unix.Stat_t
		if err := unix.Lstat(filepath.Join(mnt, name), &st); err != nil {
			t.Fatal(err)
		}
		if st.Mode&0o777 != 0o644 {
			t.Errorf("%s: mode %o, want 644 (group r--, the owning group's entry)", name, st.Mode&0o777)
		}
	}
	// An ACL that cannot be read leaves the group nothing.
	for _, bad := range [][]byte{nil, {2, 0, 0}, {1, 0, 0, 0}, acl[:len(acl)-1]} {
		if got := withoutACL(0o674, []Xattr{{Name: aclAccess, Value: bad}}); got != 0o604 {
			t.Errorf("withoutACL with ACL %x: %o, want 604", bad, got)
		}
	}
}

// TestImmutableFileNamed: replacing a file chattr +i made immutable fails
// saying so and how to lift it ("operation not permitted" alone did not).
func TestImmutableFileNamed(t *testing.T) {
	dir, _, root := openTestRoot(t)
	p := filepath.Join(dir, "f")
	if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	fd, err := unix.Open(p, unix.O_RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if err := unix.IoctlSetPointerInt(fd, unix.FS_IOC_SETFLAGS, fsImmutableFlag); err != nil {
		t.Skipf("chattr +i needs root and a file system with inode flags: %v", err)
	}
	defer unix.IoctlSetPointerInt(fd, unix.FS_IOC_SETFLAGS, 0)
	_, err = root.CreateFile("f", Meta{Type: TypeFile, Mode: 0o644})
	if err == nil || !strings.Contains(err.Error(), "it is immutable or append-only ('lsattr' shows it, 'chattr -i -a' lifts it)") {
		t.Fatalf("replacing an immutable file: %v", err)
	}
}

// TestImmutableDirAsRecorded: a directory chattr +i made immutable that is
// already as recorded is left so, without an error (a restore over it
// failed on chown, chmod and times it did not need, and so did every run
// again); one that differs is named with the flag.
func TestImmutableDirAsRecorded(t *testing.T) {
	dir, _, root := openTestRoot(t)
	d, err := root.Mkdir("d")
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	mtime := time.Date(2020, 1, 2, 3, 4, 5, 6, time.UTC).UnixNano()
	m := Meta{Name: "d", Type: TypeDir, Mode: 0o750, UID: uint32(os.Getuid()), GID: uint32(os.Getgid()), MTime: mtime}
	if err := d.SetOwnMeta(m); err != nil {
		t.Fatal(err)
	}
	fd, err := unix.Open(filepath.Join(dir, "d"), unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if err := unix.IoctlSetPointerInt(fd, unix.FS_IOC_SETFLAGS, fsImmutableFlag); err != nil {
		t.Skipf("chattr +i needs root and a file system with inode flags: %v", err)
	}
	defer unix.IoctlSetPointerInt(fd, unix.FS_IOC_SETFLAGS, 0)
	if err := d.SetOwnMeta(m); err != nil {
		t.Errorf("an immutable directory already as recorded: %v", err)
	}
	m.Mode = 0o700
	if err := d.SetOwnMeta(m); err == nil || !strings.Contains(err.Error(), "it is immutable or append-only, so its owner, mode and times cannot be set") {
		t.Errorf("an immutable directory whose mode differs: %v", err)
	}
}
