package main

import (
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// posixACL encodes a POSIX ACL as Linux stores it in the
// system.posix_acl_* extended attributes (version 2, then entries of tag,
// permissions and ID), so the test needs no setfacl.
func posixACL(entries ...[3]uint32) []byte {
	b := binary.LittleEndian.AppendUint32(nil, 2)
	for _, e := range entries {
		b = binary.LittleEndian.AppendUint16(b, uint16(e[0]))
		b = binary.LittleEndian.AppendUint16(b, uint16(e[1]))
		b = binary.LittleEndian.AppendUint32(b, e[2])
	}
	return b
}

// TestRestoreDoesNotInheritACLs: entries restored into a directory with a
// default ACL (a second restore over a first, a target the admin gave one)
// get the ACLs and modes of the snapshot, not the inherited ones, which
// would give a user access the original never gave.
func TestRestoreDoesNotInheritACLs(t *testing.T) {
	t.Parallel()
	const (
		userObj, user, groupObj, mask, other = 0x01, 0x02, 0x04, 0x10, 0x20
		none                                 = 0xffffffff
	)
	defaultACL := posixACL([3]uint32{userObj, 7, none}, [3]uint32{user, 7, 1234}, [3]uint32{groupObj, 5, none}, [3]uint32{mask, 7, none}, [3]uint32{other, 0, none})
	tr := newTestRepo(t)
	src := filepath.Join(tr.dir, "src")
	writeFile(t, filepath.Join(src, "d", "plain"), []byte("a"))
	must(t, os.Chmod(filepath.Join(src, "d", "plain"), 0o640))
	must(t, os.MkdirAll(filepath.Join(src, "d", "sub"), 0o750))
	must(t, unix.Mkfifo(filepath.Join(src, "d", "fifo"), 0o600))
	if err := unix.Setxattr(filepath.Join(src, "d"), "system.posix_acl_default", defaultACL, 0); err != nil {
		if errors.Is(err, unix.EOPNOTSUPP) {
			t.Skipf("no POSIX ACLs on this file system: %v", err)
		}
		t.Fatal(err)
	}
	tr.mustRun("create", src)
	target := filepath.Join(tr.dir, "target")
	// Twice: the second restore writes into d as the first left it, with
	// its default ACL; and into a target that has one of its own.
	tr.mustRun("restore", "latest", "--target", target)
	tr.mustRun("restore", "latest", "--target", target)
	other2 := filepath.Join(tr.dir, "target2")
	must(t, os.MkdirAll(other2, 0o700))
	must(t, unix.Setxattr(other2, "system.posix_acl_default", defaultACL, 0))
	tr.mustRun("restore", "latest", "--target", other2)
	for _, root := range []string{target, other2} {
		d := filepath.Join(root, src, "d")
		for _, c := range []struct {
			name string
			mode os.FileMode
		}{{"plain", 0o640}, {"sub", 0o750}, {"fifo", 0o600}} {
			p := filepath.Join(d, c.name)
			if _, err := unix.Lgetxattr(p, "system.posix_acl_access", nil); !errors.Is(err, unix.ENODATA) {
				t.Errorf("%s has an access ACL the snapshot does not have (%v)", p, err)
			}
			fi, err := os.Lstat(p)
			must(t, err)
			if fi.Mode().Perm() != c.mode {
				t.Errorf("%s has mode %v, want %v", p, fi.Mode().Perm(), c.mode)
			}
		}
		if _, err := unix.Getxattr(filepath.Join(d, "sub"), "system.posix_acl_default", nil); !errors.Is(err, unix.ENODATA) {
			t.Errorf("%s/sub has a default ACL the snapshot does not have (%v)", d, err)
		}
		if got, err := getxattr(d, "system.posix_acl_default"); err != nil || string(got) != string(defaultACL) {
			t.Errorf("%s lost its own default ACL: %v", d, err)
		}
	}

	// snap dump as tar: GNU tar --acls sets the ACLs again.
	untar := filepath.Join(tr.dir, "untar")
	must(t, os.MkdirAll(untar, 0o700))
	dump := exec.Command(snapBin, "dump", "latest", src)
	dump.Env = append(baseEnv(), tr.env...)
	tarx := exec.Command("tar", "--xattrs", "--xattrs-include=*", "--acls", "-xpf", "-", "-C", untar)
	pipe, err := dump.StdoutPipe()
	must(t, err)
	tarx.Stdin = pipe
	must(t, dump.Start())
	if out, err := tarx.CombinedOutput(); err != nil {
		t.Fatalf("tar: %v\n%s", err, out)
	}
	must(t, dump.Wait())
	if got, err := getxattr(filepath.Join(untar, "d"), "system.posix_acl_default"); err != nil || string(got) != string(defaultACL) {
		t.Errorf("tar --acls did not restore d's default ACL from snap dump: %x, %v", got, err)
	}
}

func TestACLText(t *testing.T) {
	acl := posixACL([3]uint32{0x01, 6, 0xffffffff}, [3]uint32{0x02, 5, 1000}, [3]uint32{0x04, 4, 0xffffffff},
		[3]uint32{0x08, 7, 50}, [3]uint32{0x10, 7, 0xffffffff}, [3]uint32{0x20, 0, 0xffffffff})
	if got, ok := aclText(acl); !ok || got != "user::rw-,user:1000:r-x,group::r--,group:50:rwx,mask::rwx,other::---" {
		t.Errorf("aclText = %q, %v", got, ok)
	}
	for _, bad := range [][]byte{nil, {2, 0, 0, 0}, acl[:len(acl)-1], posixACL([3]uint32{0x40, 7, 0}), posixACL([3]uint32{0x01, 8, 0}), append([]byte{3, 0, 0, 0}, acl[4:]...)} {
		if got, ok := aclText(bad); ok {
			t.Errorf("aclText(%x) = %q, want no ACL", bad, got)
		}
	}
}

// FuzzACLText: the bytes come from the repository.
func FuzzACLText(f *testing.F) {
	f.Add(posixACL([3]uint32{0x01, 7, 0xffffffff}, [3]uint32{0x20, 0, 0xffffffff}))
	f.Add([]byte{2, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		if text, ok := aclText(b); ok && (text == "" || strings.ContainsAny(text, "\n\x00")) {
			t.Fatalf("aclText(%x) = %q", b, text)
		}
	})
}

func getxattr(path, name string) ([]byte, error) {
	buf := make([]byte, 4096)
	n, err := unix.Getxattr(path, name, buf)
	if err != nil {
		return nil, err
	}
	return buf[:n], nil
}

// TestRestoreInPlaceDropsDirectoryACLs: a directory restored over one
// that is there already (a rollback in place) loses the ACLs and extended
// attributes granted since the backup, as a file does; the directory
// kept an access granted since, and a default ACL that passed it on to
// new files (found by an exploratory test).
func TestRestoreInPlaceDropsDirectoryACLs(t *testing.T) {
	t.Parallel()
	const (
		userObj, user, groupObj, mask, other = 0x01, 0x02, 0x04, 0x10, 0x20
		none                                 = 0xffffffff
	)
	acl := posixACL([3]uint32{userObj, 7, none}, [3]uint32{user, 7, 1234}, [3]uint32{groupObj, 5, none}, [3]uint32{mask, 7, none}, [3]uint32{other, 0, none})
	tr := newTestRepo(t)
	src := filepath.Join(tr.dir, "src")
	writeFile(t, filepath.Join(src, "secret", "data"), []byte("s"))
	must(t, os.Chmod(filepath.Join(src, "secret"), 0o750))
	tr.mustRun("create", src)
	target := filepath.Join(tr.dir, "target")
	tr.mustRun("restore", "latest:"+src, "--target", target)
	dir := filepath.Join(target, "secret")
	for _, name := range []string{"system.posix_acl_access", "system.posix_acl_default"} {
		if err := unix.Setxattr(dir, name, acl, 0); err != nil {
			if errors.Is(err, unix.EOPNOTSUPP) {
				t.Skipf("no POSIX ACLs on this file system: %v", err)
			}
			t.Fatal(err)
		}
	}
	must(t, unix.Setxattr(dir, "user.granted", []byte("since"), 0))
	for _, overwrite := range []string{"always", "if-changed"} {
		tr.mustRun("restore", "latest:"+src, "--target", target, "--overwrite", overwrite)
		for _, name := range []string{"system.posix_acl_access", "system.posix_acl_default", "user.granted"} {
			if _, err := unix.Getxattr(dir, name, nil); !errors.Is(err, unix.ENODATA) {
				t.Errorf("--overwrite %s: %s keeps %s, which the snapshot does not have (%v)", overwrite, dir, name, err)
			}
		}
		fi, err := os.Stat(dir)
		must(t, err)
		if fi.Mode().Perm() != 0o750 {
			t.Errorf("--overwrite %s: %s has mode %v", overwrite, dir, fi.Mode().Perm())
		}
		must(t, unix.Setxattr(dir, "user.granted", []byte("since"), 0))
	}
}
