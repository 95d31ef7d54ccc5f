package sources

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"path"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Dir is an open directory inside a restore target. Its methods create and
// change entries by name relative to the open descriptor, so that restoring
// a file costs no path lookup. That is as safe as going through the
// target's os.Root: a name is checked to be a single path component,
// directories are opened with O_NOFOLLOW|O_DIRECTORY, and files are created
// with O_EXCL|O_NOFOLLOW, so no symlink (planted by a hostile tree, or there
// before) is ever followed. A Dir may be used from several goroutines; the
// caller closes it once nothing uses it any more.
//
// Dir and File hold raw descriptors rather than os.Files: an os.File
// registers its descriptor with the runtime's poller, which costs system
// calls per file and buys nothing for regular files and directories.
type Dir struct {
	fd int
	// parent and name place the directory in the target, for messages:
	// a directory keeps its own name only, so that the open directories
	// of a deep restore hold memory in proportion to their depth, not to
	// the square of it (see path).
	parent *Dir
	name   string
	t      *Target
	// setgid: the directory has the set-group-ID bit, so files created in
	// it get its group rather than the creator's (and subdirectories the
	// bit).
	setgid bool
	// created: Mkdir made the directory (it was not in the target).
	created bool
	// defaultACL: the directory has a default ACL, which every entry
	// created in it inherits (and a directory inherits it as its own
	// default too). A restored entry must have the ACLs of the snapshot,
	// not those of wherever it is restored to: see dropInheritedACLs.
	defaultACL bool
	// inherited: Mkdir made the directory in one with a default ACL.
	inherited bool
	// lent: the directory was in the target, read-only or unreadable for
	// its owner, and Mkdir made it theirs to write into for the restore;
	// lentMode is the mode it had, which RestoreMode puts back.
	lent     bool
	lentMode uint32
	// replacedLink is the target of the symlink Mkdir found at the
	// directory's name and replaced ("" for none).
	replacedLink string
}

// ReplacedSymlink returns the target of the symlink that Mkdir replaced
// with the directory, or "".
func (d *Dir) ReplacedSymlink() string { return d.replacedLink }

// Created reports whether the restore made the directory.
func (d *Dir) Created() bool { return d.created }

// RestoreMode gives a directory that was already in the target the mode
// it had, if Mkdir made it writable for the restore: for a directory
// whose recorded metadata is not applied.
func (d *Dir) RestoreMode() error {
	if !d.lent {
		return nil
	}
	if err := unix.Fchmod(d.fd, d.lentMode); err != nil {
		return &PathError{Op: "chmod", Path: d.path(""), Err: err}
	}
	return nil
}

// RootDir opens the target directory itself.
func (t *Target) RootDir() (*Dir, error) {
	f, err := t.root.Open(".")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fd, err := unix.Dup(int(f.Fd()))
	if err != nil {
		return nil, &PathError{Op: "open", Path: t.dir, Err: err}
	}
	unix.CloseOnExec(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, &PathError{Op: "stat", Path: t.dir, Err: err}
	}
	return &Dir{fd: fd, t: t, setgid: st.Mode&unix.S_ISGID != 0, created: t.created, defaultACL: hasDefaultACL(fd)}, nil
}

// Close closes the directory.
func (d *Dir) Close() error { return closeFd(d.fd, d.path("")) }

func closeFd(fd int, name string) error {
	if err := unix.Close(fd); err != nil {
		return &PathError{Op: "close", Path: name, Err: err}
	}
	return nil
}

// path returns the path of the entry name in d, built from d's parents.
func (d *Dir) path(name string) string {
	names := []string{name}
	for ; d.parent != nil; d = d.parent {
		names = append(names, d.name)
	}
	names = append(names, d.t.dir)
	slices.Reverse(names)
	return path.Join(names...)
}

func (d *Dir) check(name string) error {
	if !ValidName(name) {
		return fmt.Errorf("%s: invalid name %q", d.path(""), name)
	}
	return nil
}

// Lstat returns the metadata of the entry name, without following a
// symlink, and whether there is one.
func (d *Dir) Lstat(name string) (st unix.Stat_t, exists bool, err error) {
	if err := d.check(name); err != nil {
		return st, false, err
	}
	err = unix.Fstatat(d.fd, name, &st, unix.AT_SYMLINK_NOFOLLOW)
	if errors.Is(err, unix.ENOENT) {
		return st, false, nil
	}
	if err != nil {
		return st, false, &PathError{Op: "lstat", Path: d.path(name), Err: err}
	}
	return st, true, nil
}

// RefreshFile looks at the entry name for restore --overwrite if-changed:
// when it is a regular file of m's size and modification time, it gets m's
// metadata again (owner as root, mode, extended attributes, with those m
// does not have removed, and times) and RefreshFile reports kept. Anything
// else (missing, another type, another size or time, a file it cannot
// open) is not kept, and the caller writes the entry anew. The file is
// opened with O_NOFOLLOW and changed only through that descriptor, after
// an fstat of it: a symlink put in its place is never followed.
// same, when set, must accept the file's inode (restore checks that a
// kept name of a hard link group is the group's inode); it runs before
// anything is changed. A file with more than one link is never changed:
// its other names may lie outside the restore target (a hard link planted
// in the target to /etc/shadow), and changing the inode's owner, mode or
// extended attributes would change that file too. It is kept only when it
// has m's metadata already (a restore that is resumed), and otherwise
// written anew, which gives the name an inode of its own; a hard link
// group of the snapshot is then linked again from its first member.
// A file another user owns is likewise kept only when it has m's metadata
// already: its bytes are that user's to have written.
func (d *Dir) RefreshFile(name string, m Meta, same func(ino uint64) bool) (kept bool, err error) {
	if err := d.check(name); err != nil {
		return false, err
	}
	fd, err := unix.Openat(d.fd, name, openToLook, 0)
	if errors.Is(err, unix.EACCES) && !d.t.asRoot {
		return d.unreadableKept(name, m, same), nil
	}
	if err != nil {
		return false, nil // missing, a symlink (ELOOP), unreadable: written anew
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return false, &PathError{Op: "stat", Path: d.path(name), Err: err}
	}
	if !mayKeep(&st, m, same) {
		return false, nil
	}
	if st.Nlink > 1 {
		return hasMeta(&st, d.ownership(m), m, fdXattrs(fd)), nil
	}
	if hasMeta(&st, d.ownership(m), m, fdXattrs(fd)) {
		// Nothing to change: nothing is written, which a restore not run
		// as root may not do to another user's file in a shared
		// directory (its chmod failed the restore, the mode being right).
		return true, nil
	}
	if int(st.Uid) != d.t.euid {
		// Another user's file, whose bytes that user may have written to
		// the snapshot's size and modification time: given the snapshot's
		// owner, mode and extended attributes, a file planted so in a
		// target the user may write became a root-owned setuid program,
		// or one with file capabilities, of that user's making (found by
		// an exploratory test). Only a file of the restore's own (written
		// by a restore that was stopped) has its metadata mended.
		return false, nil
	}
	if err := removeOtherXattrs(fd, m.Xattrs); err != nil {
		return false, fmt.Errorf("set metadata of %s: %w", d.path(name), err)
	}
	return true, setFdMeta(fd, d.path(name), d.t.asRoot, d.ownership(m), true, m)
}

// SpecialAsRecorded reports whether the entry name is the symlink, FIFO,
// socket or device node m records, with m's metadata: the same kind, with
// its target or device number, one link, the mode, the owners a restore
// sets (hasMeta), the modification time and the extended attributes.
// restore --overwrite if-changed leaves such an entry alone. It is looked
// at through an O_PATH descriptor of the entry itself (never through a
// symlink, never opening a FIFO or a device). A symlink is kept only
// without extended attributes, recorded or present: its own can only be
// read by path.
func (d *Dir) SpecialAsRecorded(name string, m Meta) bool {
	if d.check(name) != nil {
		return false
	}
	fd, err := unix.Openat(d.fd, name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return false
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if unix.Fstat(fd, &st) != nil || FromStat(name, &st).Type != m.Type || st.Nlink != 1 || nanos(st.Mtim) != m.MTime {
		return false
	}
	var xattrs []Xattr
	switch m.Type {
	case TypeSymlink:
		target, err := readlinkWith(func(buf []byte) (int, error) { return unix.Readlinkat(fd, "", buf) })
		if err != nil || target != m.LinkTarget || len(m.Xattrs) > 0 {
			return false
		}
		if n, err := unix.Llistxattr(d.path(name), nil); err != nil && !errors.Is(err, unix.ENOTSUP) || n > 0 {
			return false
		}
	case TypeDev, TypeCharDev, TypeFIFO, TypeSocket:
		if (m.Type == TypeDev || m.Type == TypeCharDev) && st.Rdev != m.Rdev {
			return false
		}
		// The descriptor's /proc link leads to exactly its inode (as in
		// setPathXattrs).
		p := "/proc/self/fd/" + strconv.Itoa(fd)
		xattrs = collectXattrs(
			func(buf []byte) (int, error) { return unix.Listxattr(p, buf) },
			func(name string, buf []byte) (int, error) { return unix.Getxattr(p, name, buf) })
	default:
		return false
	}
	return hasMeta(&st, d.ownership(m), m, xattrs)
}

// mayKeep reports whether the file st may stand for m's contents, as
// RefreshFile and unreadableKept judge them: a regular file of m's size
// and modification time, at an inode same accepts, and not hard linked to
// another name where the snapshot has a file of its own: kept, the two
// stayed one file, and a write to either changed both (found by an
// exploratory test, and for files the restore may not open by a review).
func mayKeep(st *unix.Stat_t, m Meta, same func(ino uint64) bool) bool {
	return st.Mode&unix.S_IFMT == unix.S_IFREG && uint64(st.Size) == m.Size && nanos(st.Mtim) == m.MTime &&
		(same == nil || same(st.Ino)) && !(st.Nlink > 1 && m.Links < 2)
}

// openToLook opens an entry already in the target to look at it: never
// through a symlink, never blocking on a FIFO, never as a controlling
// terminal.
const openToLook = unix.O_RDONLY | unix.O_NOFOLLOW | unix.O_NONBLOCK | unix.O_NOCTTY | unix.O_CLOEXEC

// HasHoles reports whether the regular file name has a hole before its
// end, as the kernel tells (SEEK_HOLE): not by its blocks, fewer than its
// size on a compressing file system, or for a small file kept inline,
// which would have been written again every run (found by a review). A
// file it cannot open is judged by its blocks.
func (d *Dir) HasHoles(name string) bool {
	if d.check(name) != nil {
		return false
	}
	var st unix.Stat_t
	if unix.Fstatat(d.fd, name, &st, unix.AT_SYMLINK_NOFOLLOW) != nil || st.Mode&unix.S_IFMT != unix.S_IFREG || st.Size == 0 {
		return false
	}
	fd, err := unix.Openat(d.fd, name, openToLook, 0)
	if err != nil {
		return st.Blocks*512 < st.Size
	}
	defer unix.Close(fd)
	off, err := unix.Seek(fd, 0, unix.SEEK_HOLE)
	return err == nil && off < st.Size
}

// hasMeta reports whether a file whose fstat is st and whose extended
// attributes are xattrs (sorted by name) has the mode, the owners that own
// says a restore sets, and the extended attributes of m.
func hasMeta(st *unix.Stat_t, own ownership, m Meta, xattrs []Xattr) bool {
	if st.Mode&0o7777 != m.Mode&0o7777 || own == ownBoth && st.Uid != m.UID || own != ownNone && st.Gid != m.GID {
		return false
	}
	want := slices.Clone(m.Xattrs)
	slices.SortFunc(want, func(a, b Xattr) int { return strings.Compare(a.Name, b.Name) })
	return slices.EqualFunc(xattrs, want, func(a, b Xattr) bool { return a.Name == b.Name && bytes.Equal(a.Value, b.Value) })
}

// unreadableKept is RefreshFile for a file the restore's user may not open
// (mode 000, 0200: a restore not run as root made it so): it is kept when
// it is as m records it, contents (size and time), owners, mode and
// extended attributes, and written anew otherwise. Every run of a restore
// with --overwrite if-changed wrote every such file again (found by an
// exploratory test). It is looked at through an O_PATH descriptor, which
// needs no permission on the file and changes nothing.
func (d *Dir) unreadableKept(name string, m Meta, same func(ino uint64) bool) bool {
	fd, err := unix.Openat(d.fd, name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return false
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if unix.Fstat(fd, &st) != nil || !mayKeep(&st, m, same) {
		return false
	}
	// The descriptor's /proc link leads to exactly its inode (as in
	// setPathXattrs); O_PATH descriptors have no flistxattr.
	// Reading a user.* attribute needs read permission, which the file
	// denies: one that cannot be read is not known to be as recorded (it
	// was left out, and a file with stray attributes was kept; found by
	// a review).
	p := "/proc/self/fd/" + strconv.Itoa(fd)
	unread := false
	xattrs := collectXattrs(
		func(buf []byte) (int, error) { return unix.Listxattr(p, buf) },
		func(name string, buf []byte) (int, error) {
			n, err := unix.Getxattr(p, name, buf)
			if err != nil {
				unread = true
			}
			return n, err
		})
	return !unread && hasMeta(&st, d.ownership(m), m, xattrs)
}

// removeOtherXattrs removes the extended attributes of the open file fd
// that keep does not list. Namespaces a process without root may not
// write (trusted.*, security.*) are left when it may not.
func removeOtherXattrs(fd int, keep []Xattr) error {
	size, err := unix.Flistxattr(fd, nil)
	if err != nil || size == 0 {
		return nil // no attributes, or a file system without them
	}
	buf := make([]byte, size)
	size, err = unix.Flistxattr(fd, buf)
	if err != nil {
		return nil
	}
	var errs []error
	for _, name := range splitNul(buf[:size]) {
		if name == "security.selinux" || slices.ContainsFunc(keep, func(x Xattr) bool { return x.Name == name }) {
			// An SELinux label is the system policy's, not the
			// snapshot's: removing it would leave the file unlabelled
			// (and the policy may refuse it, EACCES).
			continue
		}
		if err := unix.Fremovexattr(fd, name); err != nil && !errors.Is(err, unix.EPERM) && !errors.Is(err, unix.ENODATA) {
			errs = append(errs, fmt.Errorf("remove xattr %s: %w", name, err))
		}
	}
	return joinErrors(errs)
}

// errDirInTheWay is clear's error for a directory where a file, symlink
// or special file is to be restored; the caller names the path.
var errDirInTheWay = errors.New("a directory is in the way: move it away, or restore into another target")

// clear removes whatever non-directory is at name, so that a file or
// symlink that was there before is replaced rather than written through.
func (d *Dir) clear(name string) error {
	var st unix.Stat_t
	err := unix.Fstatat(d.fd, name, &st, unix.AT_SYMLINK_NOFOLLOW)
	if errors.Is(err, unix.ENOENT) {
		return nil
	}
	if err != nil {
		return &PathError{Op: "lstat", Path: d.path(name), Err: err}
	}
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		return errDirInTheWay
	}
	if err := unix.Unlinkat(d.fd, name, 0); err != nil {
		if errors.Is(err, unix.EPERM) {
			if why := unremovable(d.fd, name, st.Mode&unix.S_IFMT == unix.S_IFREG); why != "" {
				err = fmt.Errorf("%w: %s", err, why)
			}
		}
		return &PathError{Op: "remove", Path: d.path(name), Err: err}
	}
	return nil
}

// The inode flags of chattr's +i and +a (linux/fs.h), which x/sys lacks.
const (
	fsImmutableFlag = 0x10
	fsAppendFlag    = 0x20
)

// unremovable says which inode flag made removing name from the directory
// dirfd fail with EPERM, or "": "operation not permitted" alone, from a
// restore run as root, did not say that the file was immutable (found by
// an exploratory test). Only a regular file is opened to be asked (a
// device's open may act on the device).
func unremovable(dirfd int, name string, regular bool) string {
	if flagged(dirfd) {
		return "its directory is immutable or append-only ('lsattr -d' shows it, 'chattr -i -a' lifts it)"
	}
	if !regular {
		return ""
	}
	fd, err := unix.Openat(dirfd, name, openToLook, 0)
	if err != nil {
		return ""
	}
	defer unix.Close(fd)
	if flagged(fd) {
		return "it is immutable or append-only ('lsattr' shows it, 'chattr -i -a' lifts it)"
	}
	return ""
}

// flagged reports whether the file open as fd is immutable or append-only,
// which refuses every change of its metadata, even to root.
func flagged(fd int) bool {
	f, err := unix.IoctlGetUint32(fd, unix.FS_IOC_GETFLAGS)
	return err == nil && f&(fsImmutableFlag|fsAppendFlag) != 0
}

// retry runs op, and once more after clearing name when op found
// something there.
func (d *Dir) retry(name string, op func() error) error {
	err := op()
	if !errors.Is(err, unix.EEXIST) {
		return err
	}
	if err := d.clear(name); err != nil {
		return err
	}
	return op()
}

// Mkdir creates (or accepts an existing) directory name, mode 0700 until its
// metadata is set, and opens it.
func (d *Dir) Mkdir(name string) (*Dir, error) {
	if err := d.check(name); err != nil {
		return nil, err
	}
	err := unix.Mkdirat(d.fd, name, 0o700)
	setgid := d.setgid // a new directory inherits the bit
	created := err == nil
	replaced := ""
	if errors.Is(err, unix.EEXIST) {
		var st unix.Stat_t
		if serr := unix.Fstatat(d.fd, name, &st, unix.AT_SYMLINK_NOFOLLOW); serr == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR {
			if what := d.t.leaveOut[[2]uint64{uint64(st.Dev), st.Ino}]; what != "" {
				return nil, &PathError{Op: "restore", Path: d.path(name), Err: &LeftOutError{What: what}}
			}
			if d.t.isRepository != nil && d.t.isRepository(d.path(name)) {
				return nil, &PathError{Op: "restore", Path: d.path(name), Err: &LeftOutError{What: "a backup repository (a config file and key files)",
					Fix: "to put the snapshot's copy in its place, restore that directory elsewhere and move it there"}}
			}
			err, setgid = nil, st.Mode&unix.S_ISGID != 0
		} else {
			if serr == nil && st.Mode&unix.S_IFMT == unix.S_IFLNK {
				replaced = readlinkAt(d.fd, name)
			}
			if err = d.clear(name); err == nil {
				err = unix.Mkdirat(d.fd, name, 0o700)
				created = err == nil
			}
		}
	}
	if err != nil {
		return nil, &PathError{Op: "mkdir", Path: d.path(name), Err: err}
	}
	fd, err := unix.Openat(d.fd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	lent, lentMode := false, uint32(0)
	if errors.Is(err, unix.EACCES) && !d.t.asRoot {
		fd, lentMode, err = d.openLent(name)
		lent = err == nil
	}
	if err != nil {
		return nil, &PathError{Op: "open", Path: d.path(name), Err: err}
	}
	var st unix.Stat_t
	if !lent && !d.t.asRoot && unix.Fstat(fd, &st) == nil && int(st.Uid) == d.t.euid && st.Mode&0o700 != 0o700 {
		// A directory an earlier restore left read-only (its recorded
		// mode, 0555 say) is ours to write into again until its metadata
		// is set at the end: without root, replacing its files failed
		// with "permission denied". Changed through the descriptor opened
		// with O_NOFOLLOW: a symlink swapped in by name is not followed.
		if unix.Fchmod(fd, st.Mode&0o7777|0o700) == nil {
			lent, lentMode = true, st.Mode&0o7777
		}
	}
	return &Dir{fd: fd, parent: d, name: name, t: d.t, setgid: setgid, created: created, lent: lent, lentMode: lentMode,
		defaultACL: hasDefaultACL(fd), inherited: created && d.defaultACL, replacedLink: replaced}, nil
}

// readlinkAt returns the target of the symlink name in dirfd ("?" when it
// cannot be read).
func readlinkAt(dirfd int, name string) string {
	target, err := readlinkWith(func(buf []byte) (int, error) { return unix.Readlinkat(dirfd, name, buf) })
	if err != nil {
		return "?"
	}
	return target
}

// openLent opens a directory of the user's own that they may not read (an
// earlier restore gave it its recorded mode, 0000 or 0300 say), after
// making it readable and writable for them until its metadata is set, as
// Mkdir does for a read-only one: without root, a second restore into the
// same target failed there with "permission denied" (found by an
// exploratory test). The directory is opened with O_PATH, which needs no
// permission, and changed and opened again through that descriptor, so a
// symlink swapped in by name is never followed. It returns the mode to
// give back.
func (d *Dir) openLent(name string) (fd int, mode uint32, err error) {
	pfd, err := unix.Openat(d.fd, name, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, 0, err
	}
	defer unix.Close(pfd)
	var st unix.Stat_t
	if err := unix.Fstat(pfd, &st); err != nil || int(st.Uid) != d.t.euid {
		return -1, 0, unix.EACCES // another user's: theirs to open
	}
	// fchmod does not take an O_PATH descriptor; its /proc link names
	// the same directory.
	self := "/proc/self/fd/" + strconv.Itoa(pfd)
	if err := unix.Chmod(self, st.Mode&0o7777|0o700); err != nil {
		return -1, 0, unix.EACCES
	}
	fd, err = unix.Open(self, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		_ = unix.Chmod(self, st.Mode&0o7777)
		return -1, 0, err
	}
	return fd, st.Mode & 0o7777, nil
}

// File is a regular file being restored.
type File struct {
	fd     int
	name   string
	asRoot bool
	own    ownership // which of the recorded owners SetMeta sets
	// created: the file was created with m's owner and mode, so SetMeta
	// need not change them.
	created bool
	// inherited: the file was created in a directory with a default ACL.
	inherited bool
}

// CreateFile creates (or replaces) the regular file name for writing, to
// get metadata m when SetMeta is called. Usually the file is created
// private (0600) and gets its owner and mode from SetMeta. When it would be
// created with m's owner anyway (the creator's user and group, or not
// root) and m's mode is plain permission bits that the umask leaves alone,
// it is created with that mode at once: two system calls fewer per file,
// each of which would change the inode, and never more access than the
// file ends up with.
func (d *Dir) CreateFile(name string, m Meta) (*File, error) {
	if err := d.check(name); err != nil {
		return nil, err
	}
	t := d.t
	mode := uint32(0o600)
	// The file is created the process's user's, in its group (or the
	// directory's, when it is set-group-ID): owned says that those are
	// the owners the restore gives it, or all of them it may give.
	own := d.ownership(m)
	inOwnGroup := int(m.GID) == t.egid && !d.setgid
	owned := own == ownNone || own == ownGroup && inOwnGroup || own == ownBoth && int(m.UID) == t.euid && inOwnGroup
	// In a directory with a default ACL the umask does not apply, the
	// ACL does: such a file gets its mode from SetMeta.
	// Nor does one with extended attributes that its mode denies its
	// owner the write permission for: setting a user.* attribute needs
	// it, root's override aside (a read-only file's attributes were not
	// restored by its own user; found by an exploratory test).
	created := owned && t.umask >= 0 && m.Mode&^0o777 == 0 && m.Mode&uint32(t.umask) == 0 && !d.defaultACL &&
		(len(m.Xattrs) == 0 || m.Mode&0o200 != 0 || t.asRoot)
	if created {
		mode = m.Mode
	}
	var fd int
	err := d.retry(name, func() error {
		var err error
		fd, err = unix.Openat(d.fd, name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, mode)
		return err
	})
	if err != nil {
		return nil, &PathError{Op: "create", Path: d.path(name), Err: unwrapPathErr(err)}
	}
	return &File{fd: fd, name: d.path(name), asRoot: t.asRoot, own: own, created: created, inherited: d.defaultACL}, nil
}

// WriteAt writes all of b at offset off.
func (f *File) WriteAt(b []byte, off int64) error {
	for len(b) > 0 {
		n, err := unix.Pwrite(f.fd, b, off)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return &PathError{Op: "write", Path: f.name, Err: err}
		}
		if n == 0 {
			return &PathError{Op: "write", Path: f.name, Err: io.ErrShortWrite}
		}
		b, off = b[n:], off+int64(n)
	}
	return nil
}

// StartWriteback asks the kernel to start writing bytes [off, off+n) of
// the file to disk, without waiting for it (sync_file_range). Together with
// DropWritten it keeps a large restore from filling the page cache: the
// pages it dirtied are written back and freed as it goes, so it neither
// evicts what the machine had cached nor pays for fresh pages all the way
// (on a VM that hands unused memory back to its host, a fresh page costs a
// fault in the hypervisor: writing 2 GiB took 2–6 s of kernel time instead
// of 0.7 s with the pages recycled). Where it is not supported or not
// allowed, it does nothing. On overlayfs it does little: it acts on the
// overlay's own page cache, which is empty, not on the file's.
func (f *File) StartWriteback(off, n int64) error {
	return f.writeback(off, n, unix.SYNC_FILE_RANGE_WRITE, false)
}

// DropWritten waits until bytes [off, off+n) of the file are on disk and
// drops them from the page cache. An I/O error of the write-back is
// returned: the bytes did not reach the disk.
func (f *File) DropWritten(off, n int64) error {
	return f.writeback(off, n, unix.SYNC_FILE_RANGE_WAIT_BEFORE|unix.SYNC_FILE_RANGE_WRITE|unix.SYNC_FILE_RANGE_WAIT_AFTER, true)
}

func (f *File) writeback(off, n int64, flags int, drop bool) error {
	err := unix.SyncFileRange(f.fd, off, n, flags)
	for err == unix.EINTR {
		err = unix.SyncFileRange(f.fd, off, n, flags)
	}
	switch err {
	case nil:
	case unix.EIO, unix.ENOSPC, unix.EDQUOT, unix.EROFS:
		return &PathError{Op: "write", Path: f.name, Err: err} // the bytes did not reach the disk
	default:
		// Not supported here (EINVAL, ENOSYS, ESPIPE), or refused by a
		// seccomp filter (EPERM): write-behind is an optimisation, and
		// the pages just stay cached.
		return nil
	}
	if drop {
		_ = unix.Fadvise(f.fd, off, n, unix.FADV_DONTNEED) // advice only
	}
	return nil
}

// Truncate sets the file's size.
func (f *File) Truncate(size int64) error {
	if err := unix.Ftruncate(f.fd, size); err != nil {
		return &PathError{Op: "truncate", Path: f.name, Err: err}
	}
	return nil
}

// SetMeta applies ownership (as root), extended attributes, mode and
// times.
func (f *File) SetMeta(m Meta) error {
	if f.inherited {
		if err := dropInheritedACLs(func(name string) error { return unix.Fremovexattr(f.fd, name) }, false, m.Xattrs); err != nil {
			return fmt.Errorf("set metadata of %s: %w", f.name, err)
		}
	}
	own := f.own
	if f.created {
		own = ownNone
	}
	return setFdMeta(f.fd, f.name, f.asRoot, own, !f.created, m)
}

// Close closes the file.
func (f *File) Close() error { return closeFd(f.fd, f.name) }

// Symlink creates name as a symlink with the given target text. The text
// is stored as is; nothing in a restore follows it.
func (d *Dir) Symlink(target, name string) error {
	if err := d.check(name); err != nil {
		return err
	}
	err := d.retry(name, func() error { return unix.Symlinkat(target, d.fd, name) })
	if err != nil {
		return &PathError{Op: "symlink", Path: d.path(name), Err: unwrapPathErr(err)}
	}
	return nil
}

// CanMakeDevices reports whether this process may make device nodes in d:
// it makes one (the null device's numbers) under a name of its own and
// removes it. Root in a user namespace has CAP_MKNOD and is refused all
// the same (EPERM); only a try tells. Any other answer than EPERM is a yes:
// the real mknod then says what is wrong.
func (d *Dir) CanMakeDevices() bool {
	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	name := ".snap-mknod-" + hex.EncodeToString(rnd[:])
	err := unix.Mknodat(d.fd, name, unix.S_IFCHR|0o600, int(unix.Mkdev(1, 3)))
	if err == nil {
		_ = unix.Unlinkat(d.fd, name, 0)
	}
	return !errors.Is(err, unix.EPERM)
}

// Mknod creates a device node, FIFO or socket placeholder.
func (d *Dir) Mknod(name string, m Meta) error {
	if err := d.check(name); err != nil {
		return err
	}
	mode, err := nodeMode(m)
	if err != nil {
		return fmt.Errorf("mknod %s: %w", d.path(name), err)
	}
	err = d.retry(name, func() error { return unix.Mknodat(d.fd, name, mode, int(m.Rdev)) })
	if err != nil {
		return &PathError{Op: "mknod", Path: d.path(name), Err: unwrapPathErr(err)}
	}
	return nil
}

func nodeMode(m Meta) (uint32, error) {
	mode := m.Mode & 0o7777
	// Linux passes mknod a 32-bit device number (12 bits of major, 20 of
	// minor, in the encoding stat gives): a larger one, which only a
	// repository not written by snap on Linux holds, would be cut short
	// into another device's number.
	if (m.Type == TypeDev || m.Type == TypeCharDev) && m.Rdev > math.MaxUint32 {
		return 0, fmt.Errorf("device number %#x does not fit Linux's 32-bit device numbers", m.Rdev)
	}
	switch m.Type {
	case TypeDev:
		return mode | unix.S_IFBLK, nil
	case TypeCharDev:
		return mode | unix.S_IFCHR, nil
	case TypeFIFO:
		return mode | unix.S_IFIFO, nil
	case TypeSocket:
		return mode | unix.S_IFSOCK, nil
	}
	return 0, errors.New("not a special file")
}

// SetMeta applies ownership (as root), mode and times to the symlink or
// special file name, without following it. Regular files and directories
// get theirs through their descriptors (SetFileMeta, SetOwnMeta).
func (d *Dir) SetMeta(name string, m Meta) error {
	if err := d.check(name); err != nil {
		return err
	}
	var errs []error
	if m.Type == TypeSymlink {
		// Calls that take AT_SYMLINK_NOFOLLOW change the link itself; a
		// symlink has no mode of its own.
		errs = append(errs, chown(d.fd, name, d.ownership(m), m, unix.AT_SYMLINK_NOFOLLOW))
		if len(m.Xattrs) > 0 {
			errs = append(errs, d.setPathXattrs(name, m)...)
		}
		ts := []unix.Timespec{unix.NsecToTimespec(atime(m)), unix.NsecToTimespec(m.MTime)}
		errs = append(errs, step("set times", unix.UtimesNanoAt(d.fd, name, ts, unix.AT_SYMLINK_NOFOLLOW)))
	} else {
		errs = d.setSpecialMeta(name, m)
	}
	if err := joinErrors(errs); err != nil {
		return fmt.Errorf("set metadata of %s: %w", d.path(name), err)
	}
	return nil
}

// setSpecialMeta sets the metadata of the FIFO, device node or socket
// name through an O_PATH descriptor of the entry itself: fchmodat by name
// would follow a symlink put in its place since it was created (Linux
// has no fchmodat that does not follow before 6.6), and a FIFO or a
// device must not be opened for reading or writing. The descriptor's
// /proc link leads to exactly that inode, which fstat checks is still of
// the kind restored.
func (d *Dir) setSpecialMeta(name string, m Meta) []error {
	fd, err := unix.Openat(d.fd, name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return []error{err}
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return []error{err}
	}
	if FromStat(name, &st).Type != m.Type {
		return []error{fmt.Errorf("replaced by another kind of entry while it was restored")}
	}
	p := "/proc/self/fd/" + strconv.Itoa(fd)
	var errs []error
	errs = append(errs, chown(fd, "", d.ownership(m), m, unix.AT_EMPTY_PATH))
	if d.defaultACL {
		errs = append(errs, dropInheritedACLs(func(name string) error { return unix.Removexattr(p, name) }, false, m.Xattrs))
	}
	errs = append(errs, step("chmod", unix.Chmod(p, m.Mode&0o7777)))
	if len(m.Xattrs) > 0 {
		xerrs := setXattrs(m.Xattrs, d.t.asRoot, func(n string, v []byte) error { return unix.Setxattr(p, n, v, 0) })
		errs = append(errs, xerrs...)
		if aclNotSet(xerrs) {
			errs = append(errs, step("chmod", unix.Chmod(p, withoutACL(m.Mode&0o7777, m.Xattrs))))
		}
	}
	ts := []unix.Timespec{unix.NsecToTimespec(atime(m)), unix.NsecToTimespec(m.MTime)}
	errs = append(errs, step("set times", unix.UtimesNano(p, ts)))
	return errs
}

// setPathXattrs sets the extended attributes of the symlink or special
// file name. There is no fsetxattr for them (a FIFO or a device must not
// be opened), and a path would follow symlinks in the directories above:
// an O_PATH descriptor of the entry itself names it through /proc, whose
// link leads to exactly that inode.
func (d *Dir) setPathXattrs(name string, m Meta) []error {
	fd, err := unix.Openat(d.fd, name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return []error{fmt.Errorf("xattrs: %w", err)}
	}
	defer unix.Close(fd)
	p := "/proc/self/fd/" + strconv.Itoa(fd)
	return setXattrs(m.Xattrs, d.t.asRoot, func(n string, v []byte) error { return unix.Setxattr(p, n, v, 0) })
}

// SetOwnMeta applies the directory's own metadata (after its contents are
// written: writing into a directory changes its mtime). A directory that
// was there already loses the extended attributes the snapshot does not
// record, as a kept file does: an ACL granted since the backup (and its
// default, which new files inherit) stayed after a rollback in place
// (found by an exploratory test).
func (d *Dir) SetOwnMeta(m Meta) error {
	var st unix.Stat_t
	if !d.created && !d.inherited && unix.Fstat(d.fd, &st) == nil && nanos(st.Mtim) == m.MTime && hasMeta(&st, d.ownership(m), m, fdXattrs(d.fd)) {
		// As recorded already (nothing was written into it): nothing is
		// set, which a restore not run as root may not do to another
		// user's directory, a shared sticky one say (its chmod failed
		// the restore, the mode being right; found by an exploratory
		// test).
		return nil
	}
	if d.inherited {
		if err := dropInheritedACLs(func(name string) error { return unix.Fremovexattr(d.fd, name) }, true, m.Xattrs); err != nil {
			return fmt.Errorf("set metadata of %s: %w", d.path(""), err)
		}
	}
	if !d.created {
		if err := removeOtherXattrs(d.fd, m.Xattrs); err != nil {
			return fmt.Errorf("set metadata of %s: %w", d.path(""), err)
		}
	}
	return setFdMeta(d.fd, d.path(""), d.t.asRoot, d.ownership(m), true, m)
}

// The extended attributes that hold POSIX ACLs.
const (
	aclAccess  = "system.posix_acl_access"
	aclDefault = "system.posix_acl_default"
)

// hasDefaultACL reports whether the directory fd has a default ACL.
func hasDefaultACL(fd int) bool {
	n, err := unix.Fgetxattr(fd, aclDefault, nil)
	return err == nil && n > 0
}

// dropInheritedACLs removes (with remove: through a descriptor, or a
// special file's /proc path) from a new entry the ACLs it inherited from
// its directory's default ACL that the snapshot does not record (keep): a file restored into a directory with a default ACL (a second
// restore over a first, a target the admin gave one) would otherwise give
// access its original never gave. A directory inherits the default ACL as
// its own default too. The mode is set after this (the access ACL's mask
// stood for the group bits).
func dropInheritedACLs(remove func(name string) error, dir bool, keep []Xattr) error {
	names := []string{aclAccess}
	if dir {
		names = append(names, aclDefault)
	}
	for _, name := range names {
		if slices.ContainsFunc(keep, func(x Xattr) bool { return x.Name == name }) {
			continue // set from the snapshot
		}
		err := remove(name)
		if err != nil && !errors.Is(err, unix.ENODATA) && !errors.Is(err, unix.EOPNOTSUPP) {
			return fmt.Errorf("remove inherited ACL %s: %w", name, err)
		}
	}
	return nil
}

// ownership says which of an entry's recorded owners a restore sets.
type ownership int

const (
	ownNone  ownership = iota // the restoring user's, as created
	ownBoth                   // user and group (as root)
	ownGroup                  // the group only: not root, and one of the process's groups
)

// ownership is what a restore sets of m's owners on an entry of d.
func (d *Dir) ownership(m Meta) ownership {
	switch {
	case d.t.asRoot:
		return ownBoth
	case d.t.ownGroup(m.GID):
		return ownGroup
	}
	return ownNone
}

// chown sets the owners own says of m on name in the directory dirfd, or
// on dirfd itself with name "" and AT_EMPTY_PATH in flags (any descriptor,
// an O_PATH one of an entry that must not be opened included).
func chown(dirfd int, name string, own ownership, m Meta, flags int) error {
	switch own {
	case ownBoth:
		return step("chown", unix.Fchownat(dirfd, name, int(m.UID), int(m.GID), flags))
	case ownGroup:
		return step("chgrp", unix.Fchownat(dirfd, name, -1, int(m.GID), flags))
	}
	return nil
}

// setFdMeta applies ownership (as own says), extended attributes, mode
// (when chmod is set) and times through a descriptor. Ownership comes
// before mode, because chown clears setuid and setgid bits.
func setFdMeta(fd int, name string, asRoot bool, own ownership, chmod bool, m Meta) error {
	if flagged(fd) {
		// Nothing can be set: one already as recorded is left so (a
		// restore over an immutable directory failed, and every run again
		// the same way, with nothing to change; found by an exploratory
		// test), any other is named with the flag.
		if metaAsRecorded(fd, own, chmod, m) {
			return nil
		}
		return fmt.Errorf("set metadata of %s: it is immutable or append-only, so its owner, mode and times cannot be set ('lsattr -d' shows it, 'chattr -i -a' lifts it)", name)
	}
	var errs []error
	errs = append(errs, chown(fd, "", own, m, unix.AT_EMPTY_PATH))
	xerrs := setXattrs(m.Xattrs, asRoot, func(n string, v []byte) error { return unix.Fsetxattr(fd, n, v, 0) })
	errs = append(errs, xerrs...)
	if noACL := aclNotSet(xerrs); chmod || noACL {
		mode := safeMode(fd, m)
		if noACL {
			mode = withoutACL(mode, m.Xattrs)
		}
		errs = append(errs, step("chmod", unix.Fchmod(fd, mode)))
	}
	errs = append(errs, step("set times", futimens(fd, atime(m), m.MTime)))
	if err := joinErrors(errs); err != nil {
		return fmt.Errorf("set metadata of %s: %w", name, err)
	}
	return nil
}

// safeMode is the mode to give a restored file: the recorded one, less a
// set-user-ID bit when the file does not belong to the recorded owner, and
// a set-group-ID bit when not to the recorded group (a restore not run as
// root makes its files its own). Kept, they let anyone run the program as
// whoever restored it: root's setuid copy of a shell, restored by alice
// into a directory others can read, ran as alice (found by an exploratory
// test). cp -p and tar -x drop them so too. A directory's set-group-ID bit
// passes its group on to new entries: kept on a directory that did not get
// that group, it passed on the restoring user's (cp -rp drops it too;
// found by an exploratory test).
func safeMode(fd int, m Meta) uint32 {
	mode := m.Mode & 0o7777
	if mode&(unix.S_ISUID|unix.S_ISGID) == 0 {
		return mode
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return mode &^ (unix.S_ISUID | unix.S_ISGID)
	}
	if st.Uid != m.UID && m.Type != TypeDir { // a directory's means nothing
		mode &^= unix.S_ISUID
	}
	if st.Gid != m.GID {
		mode &^= unix.S_ISGID
	}
	return mode
}

// setXattrs sets the extended attributes with set and returns what
// failed. Only a restore not run as root skips, silently, the namespaces
// it may never write (trusted.*, security.*: EPERM). Anything else that
// fails is reported, a file system without extended attributes (ENOTSUP)
// included: ACLs and SELinux labels are attributes, and an admin must hear
// that they were not restored.
func setXattrs(xs []Xattr, asRoot bool, set func(name string, value []byte) error) []error {
	var errs []error
	for _, x := range xs {
		err := set(x.Name, x.Value)
		if err == nil || !asRoot && errors.Is(err, unix.EPERM) && (strings.HasPrefix(x.Name, "trusted.") || strings.HasPrefix(x.Name, "security.")) {
			continue
		}
		errs = append(errs, &XattrError{Name: x.Name, Err: err})
	}
	return errs
}

// aclNotSet reports whether errs, from setXattrs, hold the access ACL's.
func aclNotSet(errs []error) bool {
	for _, err := range errs {
		var xe *XattrError
		if errors.As(err, &xe) && xe.Name == aclAccess {
			return true
		}
	}
	return false
}

// withoutACL is the mode for an entry whose access ACL (among xs) could not
// be set, a file system without ACLs say. With an ACL, a mode's group
// bits are the ACL's mask, the most that named users and groups get, not
// what the owning group gets: given alone, they gave the owning group the
// mask (group::r-- with mask rwx came back as group write; found by an
// exploratory test). They become the owning group's entry limited by the
// mask, so that no one gets more than the ACL gave (named users and groups
// get nothing, and the error says the ACL was not set); an ACL that cannot
// be read leaves the group nothing.
func withoutACL(mode uint32, xs []Xattr) uint32 {
	mode &^= 0o070
	for _, x := range xs {
		if x.Name == aclAccess {
			if g, ok := aclOwningGroup(x.Value); ok {
				mode |= g << 3
			}
		}
	}
	return mode
}

// aclOwningGroup reads from a POSIX ACL as Linux stores it (ParseACL) the
// permissions of the owning group limited by the mask.
func aclOwningGroup(acl []byte) (uint32, bool) {
	entries, ok := ParseACL(acl)
	if !ok {
		return 0, false
	}
	group, limit, found := uint32(0), uint32(7), false
	for _, e := range entries {
		switch e.Tag {
		case ACLGroupObj:
			group, found = uint32(e.Perm), true
		case ACLMask:
			limit = uint32(e.Perm)
		}
	}
	return group & limit, found
}

// XattrError is an extended attribute that could not be set. Its ENOSPC
// (ext4: the attribute does not fit the inode's or block's room) says
// nothing about the file system's free space.
type XattrError struct {
	Name string
	Err  error
}

func (e *XattrError) Error() string { return fmt.Sprintf("xattr %s: %v", e.Name, e.Err) }
func (e *XattrError) Unwrap() error { return e.Err }

// atime is the access time to restore: the recorded one, or the
// modification time when none was recorded.
func atime(m Meta) int64 {
	if m.ATime != 0 {
		return m.ATime
	}
	return m.MTime
}

// step names the metadata call that failed, so that a message says which
// of several did ("chown: operation not permitted; set times: …").
func step(op string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", op, err)
}

// errorList is several errors as one, on one line, each still found by
// errors.Is and errors.As.
type errorList []error

func (l errorList) Error() string {
	msgs := make([]string, len(l))
	for i, err := range l {
		msgs[i] = err.Error()
	}
	return strings.Join(msgs, "; ")
}

func (l errorList) Unwrap() []error { return l }

// joinErrors returns the errors of errs that are not nil as one, or nil.
func joinErrors(errs []error) error {
	var out errorList
	for _, err := range errs {
		if err != nil {
			out = append(out, err)
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// metaAsRecorded reports whether the file open as fd already has what
// setFdMeta would give it of m: the owners own says, the mode (when
// chmod), the modification time and the recorded extended attributes.
func metaAsRecorded(fd int, own ownership, chmod bool, m Meta) bool {
	var st unix.Stat_t
	if unix.Fstat(fd, &st) != nil {
		return false
	}
	switch {
	case own == ownBoth && (st.Uid != m.UID || st.Gid != m.GID), own == ownGroup && st.Gid != m.GID:
		return false
	case chmod && st.Mode&0o7777 != safeMode(fd, m):
		return false
	case st.Mtim.Nano() != m.MTime:
		return false
	}
	for _, x := range m.Xattrs {
		v := make([]byte, len(x.Value)+1) // one more: a longer value does not fit, and differs
		n, err := unix.Fgetxattr(fd, x.Name, v)
		if err != nil || !bytes.Equal(v[:n], x.Value) {
			return false
		}
	}
	return true
}
