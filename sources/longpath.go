package sources

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// shortPath runs fn with a name for path that system calls accept, and
// returns fn's error. Every call that takes a path refuses one of PATH_MAX
// (4096) bytes or more with ENAMETOOLONG, however short its components, and
// the entries of a deep enough tree have such paths.
//
// A shorter path, every path of an ordinary tree, goes to fn as it is: the
// check costs no system call. A longer one is reached in pieces (see
// longPath), for a few system calls more. fn must not keep p, may run
// several system calls on it, and returns their errors as the system gave
// them (an Errno, naming no path); so does shortPath, for the caller to
// report with path, not with the name fn got.
func shortPath(path string, fn func(p string) error) error {
	if len(path) < unix.PathMax {
		return fn(path)
	}
	return longPath(path, fn)
}

// longPath is shortPath for a path of PATH_MAX bytes or more. Its
// directory part, cut at slashes into runs of whole components each
// shorter than PATH_MAX, is opened one run at a time, each from the
// descriptor of the one before (openat, O_PATH: nothing is read, only
// looked up), and fn gets /proc/self/fd/<descriptor>/<last component>. The
// link in /proc leads to the directory itself, not through its long name,
// so fn's call looks up the last component as it would have at the end of
// the whole path: not followed by lstat, readlink, llistxattr or an
// O_NOFOLLOW open; followed with a trailing slash, which stays on it. The
// components before it are followed where they are symlinks, as in any
// lookup.
func longPath(path string, fn func(p string) error) error {
	i := strings.LastIndexByte(strings.TrimRight(path, "/"), '/')
	if i < 0 {
		return fn(path) // one component: too long for any file system
	}
	dir, last := path[:i+1], path[i+1:]
	fd := unix.AT_FDCWD
	for dir != "" {
		piece := dir
		if len(piece) >= unix.PathMax {
			j := strings.LastIndexByte(dir[:unix.PathMax-1], '/')
			if j < 0 {
				closeDirFd(fd)
				return unix.ENAMETOOLONG // a component longer than any file system allows
			}
			piece = dir[:j+1]
		}
		next, err := openPath(fd, piece)
		closeDirFd(fd)
		if err != nil {
			return err
		}
		fd = next
		// "a//b" cut after its first slash leaves "/b", which openat
		// would take from the root.
		dir = strings.TrimLeft(dir[len(piece):], "/")
	}
	defer closeDirFd(fd)
	proc := "/proc/self/fd/" + strconv.Itoa(fd)
	err := fn(proc + "/" + last)
	if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
		// Not "no such file" when it is /proc that is missing: the
		// walker leaves out vanished entries without a word.
		var st unix.Stat_t
		if unix.Stat(proc, &st) != nil {
			return errNoProc
		}
	}
	return err
}

// errNoProc is longPath's error when /proc, through which it reaches a
// long path, is not mounted.
var errNoProc = fmt.Errorf("%w (a path of %d bytes or more is reached through /proc/self/fd, and /proc is not mounted)", unix.ENAMETOOLONG, unix.PathMax)

// openPath opens directory name below dirfd for lookups only, repeated
// when a signal interrupts it.
func openPath(dirfd int, name string) (int, error) {
	for {
		fd, err := unix.Openat(dirfd, name, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != unix.EINTR {
			return fd, err
		}
	}
}

func closeDirFd(fd int) {
	if fd != unix.AT_FDCWD {
		unix.Close(fd)
	}
}
