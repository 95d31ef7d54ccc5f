package local

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/snap-backup/snap/sources"
)

// perms are the modes and owner of the files and directories the backend
// creates. By default a repository is private to its owner (0600 and
// 0700). A repository a group shares says so by its own modes and group:
// the group bits of the repository directory at init, and of the config
// file after that, are given to every file and directory written (read, or
// read and write), with that group, so that a pack written by one member
// can be read by the others. A file whose group cannot be made the
// repository's (its writer is not a member) stays private: group bits for
// the writer's own primary group would open the repository to whoever
// else is in it. When root writes into a repository another user owns
// (sudo snap create), what it writes is given to that owner: root-owned
// 0600 files would lock the owner out of their own repository.
type perms struct {
	file, dir fs.FileMode
	uid       int // -1: as created (root gives files to the repository's owner)
	gid       int // the repository's group, when shared or when root writes; -1 otherwise
}

var private = perms{file: 0o600, dir: 0o700, uid: -1, gid: -1}

// shared reports whether the group has access.
func (p perms) shared() bool { return p.file&0o060 != 0 }

// permsLike returns the perms for a repository whose config file (or, at
// init, whose directory) is fi.
func permsLike(fi fs.FileInfo) perms {
	p := private
	m := fi.Mode().Perm()
	// Shared only when made so: group-readable and closed to others
	// (0750, 0770, a config of 0640 or 0660), or set-group-ID. A
	// directory made with the usual umask (0755) is not an invitation
	// to the creator's primary group, and a FAT mount's fixed 0755 must
	// not make snap chmod what the file system refuses to change.
	if m&0o040 != 0 && (m&0o007 == 0 || fi.Mode()&fs.ModeSetgid != 0) {
		p.file |= 0o040
		p.dir |= 0o050
		if m&0o020 != 0 {
			p.file |= 0o020
			p.dir |= 0o020
		}
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return private
	}
	if p.shared() {
		p.gid = int(st.Gid)
	}
	if os.Geteuid() == 0 && st.Uid != 0 {
		p.uid, p.gid = int(st.Uid), int(st.Gid)
	}
	return p
}

// apply gives a file or directory the backend just created its owner and
// mode. The mode is set explicitly: the process's umask has masked the one
// asked for at creation.
func (p perms) apply(f *os.File, dir bool) error {
	if p == private {
		return nil
	}
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	if p.uid >= 0 && (int(st.Uid) != p.uid || int(st.Gid) != p.gid) {
		if err := f.Chown(p.uid, p.gid); err != nil {
			return err
		}
	} else if p.gid >= 0 && int(st.Gid) != p.gid {
		if f.Chown(-1, p.gid) != nil {
			return nil // not a member of the repository's group: stays private
		}
	}
	if !p.shared() {
		return nil
	}
	mode := p.file
	if dir {
		// A directory made in a setgid one inherits the bit, which
		// gives what is made in it the shared group: keep it.
		mode = p.dir | fi.Mode()&fs.ModeSetgid
	}
	if fi.Mode()&(fs.ModePerm|fs.ModeSetgid) == mode {
		return nil
	}
	if err := f.Chmod(mode); err != nil && !errors.Is(err, fs.ErrPermission) {
		return err
	} // refused (a file system without modes): the file stays private
	return nil
}

// applyDir is apply for the directory rel below the repository directory
// root (init's own directories), reached from root's descriptor without
// following a symlink at any step: root initialising a repository in a
// directory a user owns must not chown whatever that user put a symlink to
// in place of a directory, nor, by swapping a directory above the
// repository for a link, another repository's directories (found by a
// review: a path opened again for each directory was swapped mid-init).
func (p perms) applyDir(root *os.File, rel string) error {
	if p == private {
		return nil
	}
	fd := int(root.Fd())
	for _, name := range strings.Split(rel, "/") {
		next, err := unix.Openat(fd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if fd != int(root.Fd()) {
			unix.Close(fd)
		}
		if err != nil {
			return &fs.PathError{Op: "open", Path: filepath.Join(root.Name(), rel), Err: err}
		}
		fd = next
	}
	f := os.NewFile(uintptr(fd), filepath.Join(root.Name(), rel))
	defer f.Close()
	return p.apply(f, true)
}

// accessError explains a permission error on path: who owns what snap
// could not read or write, and who snap runs as. A repository written
// partly by another user (root, through sudo, before snap gave root's
// files to the repository's owner) fails this way, and must not be taken
// for a damaged one: no repair is needed, only the right user or access.
func accessError(path string, err error) error {
	return explainAccess(path, err, false)
}

// accessErrorIn is accessError for an operation on path's directory
// (removing path needs write access to it, not to path).
func accessErrorIn(path string, err error) error {
	return explainAccess(path, err, true)
}

func explainAccess(path string, err error, inDir bool) error {
	if !errors.Is(err, fs.ErrPermission) {
		return err
	}
	owner := ""
	if !inDir {
		owner = ownerAndMode(path)
	}
	// target is what owner describes: the directory, when the path itself
	// cannot be stat'ed (a file not created yet). Its owner was looked
	// up on the missing file, and the owner running snap was told to run
	// snap as the owner (found by an exploratory test).
	target := path
	if owner == "" {
		target = filepath.Dir(path)
		owner = "its directory " + target + " cannot be searched"
		if d := ownerAndMode(target); d != "" {
			owner = "its directory is " + d
		}
	}
	if errors.Is(err, syscall.EPERM) {
		// Not the mode (that is EACCES): an immutable or append-only
		// attribute, or a security module.
		return fmt.Errorf("%w: %s; the kernel refuses this whatever the mode: is it immutable or append-only (lsattr -d %s; chattr -i or -a to clear it), or denied by a security module (AppArmor, SELinux)?",
			err, owner, target)
	}
	if st, serr := os.Lstat(target); serr == nil {
		if sys, ok := st.Sys().(*syscall.Stat_t); ok && int(sys.Uid) == os.Geteuid() {
			// The user is the owner: its mode is what stands in the way,
			// and running as the owner is no advice.
			return fmt.Errorf("%w: %s, and snap runs as that user: its mode denies its own owner access; give it back with chmod u+rwX %s (a repository's files are the owner's to read and write)",
				err, owner, target)
		}
	}
	return fmt.Errorf("%w: %s, and snap runs as %s; run snap as the user that owns the repository, or give this user access to its files (chown -R, or a group: see 'Permissions' in the user guide)",
		err, owner, userName(uint32(os.Geteuid())))
}

// ownerAndMode describes path for accessError ("owned by root (uid 0),
// mode -rw-------"), or "" when it cannot be stat'ed.
func ownerAndMode(path string) string {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return ""
	}
	// As ls -l shows it: Go's FileMode.String writes a set-group-ID
	// directory as "dgrwxr-x---" (found by an exploratory test).
	return fmt.Sprintf("owned by %s, mode %s", userName(st.Uid), sources.FromStat(path, &st).ModeString())
}

// userName names a user ID for messages: "backup (uid 34)".
func userName(uid uint32) string {
	id := strconv.FormatUint(uint64(uid), 10)
	if u, err := user.LookupId(id); err == nil {
		return u.Username + " (uid " + id + ")"
	}
	return "uid " + id
}
