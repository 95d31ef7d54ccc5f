package sources

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
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
	// created: OpenTarget made the directory; RootDir's Dir says so, and
	// a restore of a directory gives it that directory's metadata.
	created bool
	// The owner new files get, and the process's umask (-1 when unknown),
	// for CreateFile.
	euid, egid, umask int
	// groups are the process's groups (not run as root): a restore gives
	// a file its recorded group when it is one of them, as cp -p does.
	groups map[uint32]bool
	// leaveOut are directories (device and inode) a restore never writes
	// into, each with what it is (LeaveOut).
	leaveOut map[[2]uint64]string
	// isRepository, when set, tells a directory that holds a backup
	// repository, which a restore leaves alone too (LeaveRepositories).
	isRepository func(path string) bool
}

// LeaveRepositories makes the restore leave alone every existing directory
// for which isRepository says it holds a backup repository: a snapshot of
// a /srv with a repository, restored over a /srv with another, replaced
// that one's config, and it could no longer be read (found by a re-test).
// A repository the snapshot holds where none is now is restored.
func (t *Target) LeaveRepositories(isRepository func(path string) bool) {
	t.isRepository = isRepository
}

// LeaveOut sets directories, by device and inode, that the restore leaves
// alone: the repository it reads and its cache, which the target may lie
// above. Mkdir of an existing directory that is one of them fails with a
// *LeftOutError. Call it before the restore starts.
func (t *Target) LeaveOut(dirs map[[2]uint64]string) { t.leaveOut = dirs }

// LeftOutError is a directory of the snapshot that the restore would have
// written onto one that LeaveOut named.
type LeftOutError struct{ What, Fix string }

func (e *LeftOutError) Error() string {
	msg := "it is " + e.What + ": left as it is, with what the snapshot holds below it"
	if e.Fix != "" {
		msg += "; " + e.Fix
	}
	return msg
}

// ownGroup reports whether a restore not run as root can give an entry
// the recorded group gid, which it then does (root restores owners whole).
func (t *Target) ownGroup(gid uint32) bool { return !t.asRoot && t.groups[gid] }

// processGroups returns the effective and supplementary groups of the
// process.
func processGroups() map[uint32]bool {
	groups := map[uint32]bool{uint32(os.Getegid()): true}
	if gs, err := unix.Getgroups(); err == nil {
		for _, g := range gs {
			groups[uint32(g)] = true
		}
	}
	return groups
}

// OpenTarget creates dir if needed and opens it as the restore root. The
// directories leading to it are made as 'mkdir -p' makes them (0777 less
// the umask), the directory itself 0700 until the restore gives it its
// metadata: all of them were 0700, and a service restored in place could
// no longer reach its files (found by an exploratory test).
func OpenTarget(dir string) (*Target, error) {
	created := false
	err := os.MkdirAll(filepath.Dir(dir), 0o777)
	if err == nil {
		err = os.Mkdir(dir, 0o700)
		created = err == nil
		if errors.Is(err, fs.ErrExist) {
			if fi, serr := os.Stat(dir); serr == nil && fi.IsDir() {
				err = nil
			}
		}
	}
	if err != nil {
		if to, lerr := os.Readlink(dir); lerr == nil {
			// MkdirAll says only "file exists" for a dangling symlink.
			return nil, fmt.Errorf("restore target %s is a symlink to %s, which is not a directory: create that directory, or give another --target", dir, to)
		}
		if errors.Is(err, unix.EROFS) {
			// As a restore into an existing directory there says.
			return nil, fmt.Errorf("restore target %s is on a read-only file system (%w): remount it read-write, or restore elsewhere", dir, err)
		}
		return nil, fmt.Errorf("restore target %s: %w", dir, err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("restore target %s: %w", dir, err)
	}
	t := &Target{root: root, dir: dir, asRoot: os.Geteuid() == 0, created: created, euid: os.Geteuid(), egid: os.Getegid(), umask: readUmask()}
	if !t.asRoot {
		t.groups = processGroups()
	}
	return t, nil
}

// readUmask returns the process's umask from /proc (Linux 4.7 and later),
// or -1. Reading it with umask(2) would mean setting it, for a moment, for
// every thread of the process.
func readUmask() int {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "Umask:"); ok {
			if m, err := strconv.ParseUint(strings.TrimSpace(v), 8, 32); err == nil {
				return int(m)
			}
		}
	}
	return -1
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
		return fmt.Errorf("%s: %w", path.Join(t.dir, rel), errDirInTheWay)
	}
	return t.root.Remove(rel)
}

// LstatDir looks at rel in the target without making anything: whether
// there is an entry, and whether it is a directory.
func (t *Target) LstatDir(rel string) (isDir, exists bool, err error) {
	fi, err := t.root.Lstat(rel)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ENOTDIR) {
		return false, false, nil
	}
	if err != nil {
		return false, false, err
	}
	return fi.IsDir(), true, nil
}

// Link makes rel a hard link to the already restored file oldRel.
func (t *Target) Link(oldRel, rel string) error {
	if err := t.clear(rel); err != nil {
		return err
	}
	return t.root.Link(oldRel, rel)
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
