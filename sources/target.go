package sources

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Target is a directory that restored files are written into. Every
// operation goes through an os.Root, so no path, symlink or hard link taken
// from a repository can make snap write outside the directory.
type Target struct {
	root   *os.Root
	dir    string
	asRoot bool // running as root: restore ownership
}

// OpenTarget creates dir if needed and opens it as the restore root.
func OpenTarget(dir string) (*Target, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("restore target %s: %w", dir, err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("restore target %s: %w", dir, err)
	}
	return &Target{root: root, dir: dir, asRoot: os.Geteuid() == 0}, nil
}

// Close releases the target.
func (t *Target) Close() error { return t.root.Close() }

// Dir returns the target directory.
func (t *Target) Dir() string { return t.dir }

// ValidName reports whether a name from a tree may be used as one path
// component: not empty, not "." or "..", and without '/' or NUL.
func ValidName(name string) bool {
	return name != "" && name != "." && name != ".." && !strings.ContainsAny(name, "/\x00")
}

// clear removes whatever non-directory is at rel, so that a pre-existing
// file or symlink is replaced rather than written through.
func (t *Target) clear(rel string) error {
	fi, err := t.root.Lstat(rel)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.IsDir() {
		return fmt.Errorf("%s: a directory is in the way", path.Join(t.dir, rel))
	}
	return t.root.Remove(rel)
}

// Mkdir creates directory rel (mode 0700 until SetMeta), accepting an
// existing directory.
func (t *Target) Mkdir(rel string) error {
	if rel == "." || rel == "" {
		return nil
	}
	fi, err := t.root.Lstat(rel)
	if err == nil && fi.IsDir() {
		return nil
	}
	if err == nil {
		if err := t.root.Remove(rel); err != nil {
			return err
		}
	}
	return t.root.Mkdir(rel, 0o700)
}

// CreateFile creates (or replaces) the regular file rel for writing.
func (t *Target) CreateFile(rel string) (*os.File, error) {
	if err := t.clear(rel); err != nil {
		return nil, err
	}
	return t.root.OpenFile(rel, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
}

// Symlink creates rel as a symlink with the given target text. The text is
// stored as is; since every later operation goes through the root, a link
// pointing outside the target is never followed by the restore.
func (t *Target) Symlink(target, rel string) error {
	if err := t.clear(rel); err != nil {
		return err
	}
	return t.root.Symlink(target, rel)
}

// Link makes rel a hard link to the already restored file oldRel.
func (t *Target) Link(oldRel, rel string) error {
	if err := t.clear(rel); err != nil {
		return err
	}
	return t.root.Link(oldRel, rel)
}

// Mknod creates a device node, FIFO or socket placeholder.
func (t *Target) Mknod(rel string, m Meta) error {
	if err := t.clear(rel); err != nil {
		return err
	}
	mode := m.Mode & 0o7777
	switch m.Type {
	case TypeDev:
		mode |= unix.S_IFBLK
	case TypeCharDev:
		mode |= unix.S_IFCHR
	case TypeFIFO:
		mode |= unix.S_IFIFO
	case TypeSocket:
		mode |= unix.S_IFSOCK
	default:
		return fmt.Errorf("mknod %s: not a special file", rel)
	}
	return t.withParent(rel, func(dirfd int, name string) error {
		return unix.Mknodat(dirfd, name, mode, int(m.Rdev))
	})
}

// withParent opens rel's parent directory through the root and calls fn
// with its descriptor and rel's last component.
func (t *Target) withParent(rel string, fn func(dirfd int, name string) error) error {
	dir, name := path.Split(rel)
	if dir == "" {
		dir = "."
	}
	d, err := t.root.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return fn(int(d.Fd()), name)
}

// SetMeta applies ownership (as root), extended attributes, mode and times
// to the entry at rel. Regular files are better served by SetFileMeta on
// their open descriptor.
func (t *Target) SetMeta(rel string, m Meta) error {
	if m.Type == TypeSymlink || m.Type == TypeDev || m.Type == TypeCharDev || m.Type == TypeFIFO || m.Type == TypeSocket {
		return t.withParent(rel, func(dirfd int, name string) error {
			var errs []error
			if t.asRoot {
				errs = append(errs, unix.Fchownat(dirfd, name, int(m.UID), int(m.GID), unix.AT_SYMLINK_NOFOLLOW))
			}
			if m.Type != TypeSymlink {
				errs = append(errs, unix.Fchmodat(dirfd, name, m.Mode&0o7777, 0))
			}
			ts := []unix.Timespec{unix.NsecToTimespec(m.ATime), unix.NsecToTimespec(m.MTime)}
			errs = append(errs, unix.UtimesNanoAt(dirfd, name, ts, unix.AT_SYMLINK_NOFOLLOW))
			if err := errors.Join(errs...); err != nil {
				return fmt.Errorf("set metadata of %s: %w", rel, err)
			}
			return nil
		})
	}
	f, err := t.root.OpenFile(rel, os.O_RDONLY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	return SetFileMeta(f, m)
}

// SetFileMeta applies ownership (as root), extended attributes, mode and
// times through an open descriptor. Ownership comes before mode, because
// chown clears setuid and setgid bits.
func SetFileMeta(f *os.File, m Meta) error {
	fd := int(f.Fd())
	var errs []error
	if os.Geteuid() == 0 {
		errs = append(errs, unix.Fchown(fd, int(m.UID), int(m.GID)))
	}
	for _, x := range m.Xattrs {
		if err := unix.Fsetxattr(fd, x.Name, x.Value, 0); err != nil && !errors.Is(err, unix.ENOTSUP) && !errors.Is(err, unix.EPERM) {
			errs = append(errs, fmt.Errorf("xattr %s: %w", x.Name, err))
		}
	}
	errs = append(errs, unix.Fchmod(fd, m.Mode&0o7777))
	errs = append(errs, futimens(fd, m.ATime, m.MTime))
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("set metadata of %s: %w", f.Name(), err)
	}
	return nil
}

// futimens sets a descriptor's times with nanosecond precision
// (utimensat with a NULL path, which x/sys/unix does not expose).
func futimens(fd int, atime, mtime int64) error {
	ts := [2]unix.Timespec{unix.NsecToTimespec(atime), unix.NsecToTimespec(mtime)}
	_, _, e := unix.Syscall6(unix.SYS_UTIMENSAT, uintptr(fd), 0, uintptr(unsafe.Pointer(&ts[0])), 0, 0, 0)
	if e != 0 {
		return e
	}
	return nil
}

// Root exposes the confined root for reads in tests and verification.
func (t *Target) Root() *os.Root { return t.root }
