package local

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/snap-backup/snap/repo"
)

// Writes and removals (Save, Remove, the preflight, the space reserve,
// temporary files) never go by path. They start from root, the repository
// directory opened once when the backend was opened, and open each
// directory inside it with O_NOFOLLOW, working relative to it (openat,
// renameat, unlinkat):
//
//   - A user who may write the repository directory but not this user's
//     files (a shared repository, a backup account's) could otherwise plant
//     a symlink that leads this user's writes anywhere: root's new packs
//     landed in a directory of the attacker's choosing, given to the
//     repository's owner (found by an exploratory test: a file in
//     /etc/cron.daily that the attacker then owned).
//   - The repository's own path is looked up once: one that its parent's
//     owner swaps for a symlink afterwards (alice owns ~alice, where root
//     writes ~alice/repo) cannot redirect the rest of the run (found by a
//     review).
//
// A symlinked directory is followed only when the link is owned by the
// user snap runs as or by root (an admin who moved data/xx to another disk
// and linked it), and the path it holds is resolved the same way, one
// component at a time: a link of another user's further along (in a
// directory on that disk that others may write) is refused too (found by a
// re-test). Reads (Load, List, Stat) still follow any symlink: what they
// read is authenticated, and a link an admin made must keep working.

// maxLinks bounds the trusted symlinks followed for one directory, as the
// kernel bounds them (ELOOP).
const maxLinks = 40

// openRoot opens the repository directory for the writes to start from.
func openRoot(abs string) (*os.File, error) {
	fd, err := unix.Open(abs, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: abs, Err: err}
	}
	return os.NewFile(uintptr(fd), abs), nil
}

// openDir opens the directory that holds h's file and returns it with the
// file's name.
func (b *Backend) openDir(h repo.Handle) (*os.File, string, error) {
	p, err := b.path(h)
	if err != nil {
		return nil, "", err
	}
	rel, err := filepath.Rel(b.dir, filepath.Dir(p))
	if err != nil {
		return nil, "", err
	}
	d, err := b.openRel(rel)
	if err != nil {
		return nil, "", err
	}
	return d, filepath.Base(p), nil
}

// openRel opens the directory rel ("." for the repository itself, or a
// slash-separated path inside it), readable (for fsync and listing); the
// directories on the way are opened O_PATH, which needs no read permission.
func (b *Backend) openRel(rel string) (*os.File, error) {
	links := 0
	fd, err := walkDirs(int(b.root.Fd()), rel, b.dir, unix.O_RDONLY, &links)
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), filepath.Join(b.dir, rel)), nil
}

// walkDirs opens the directory rel (slash-separated, relative to the
// directory start) with flags, one component at a time by openDirAt's
// rule, the ones on the way O_PATH; path is start's path, for messages.
// start itself stays open.
func walkDirs(start int, rel, path string, flags int, links *int) (int, error) {
	var names []string
	for _, n := range strings.Split(filepath.ToSlash(rel), "/") {
		if n != "." && n != "" {
			names = append(names, n)
		}
	}
	if len(names) == 0 {
		fd, err := unix.Openat(start, ".", flags|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return -1, &os.PathError{Op: "open", Path: path, Err: err}
		}
		return fd, nil
	}
	cur := start
	for i, name := range names {
		path = filepath.Join(path, name)
		f := unix.O_PATH
		if i == len(names)-1 {
			f = flags
		}
		next, err := openDirAt(cur, name, path, f, links)
		if cur != start {
			unix.Close(cur)
		}
		if err != nil {
			return -1, err
		}
		cur = next
	}
	return cur, nil
}

// openDirAt opens the directory name in dir (path is its path, for
// messages) with flags (O_PATH or O_RDONLY), following it only when it is
// a symlink owned by this user or root; links counts the symlinks followed.
// The link is read through a descriptor of the link itself (O_PATH), so
// that it cannot be swapped between the check of its owner and its use.
func openDirAt(dir int, name, path string, flags int, links *int) (int, error) {
	fd, err := unix.Openat(dir, name, flags|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err == nil {
		return fd, nil
	}
	if !errors.Is(err, unix.ELOOP) && !errors.Is(err, unix.ENOTDIR) {
		return -1, &os.PathError{Op: "open", Path: path, Err: err}
	}
	link, err := unix.Openat(dir, name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(link)
	var st unix.Stat_t
	if err := unix.Fstat(link, &st); err != nil {
		return -1, &os.PathError{Op: "stat", Path: path, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFLNK {
		return -1, &os.PathError{Op: "open", Path: path, Err: unix.ENOTDIR}
	}
	if me := os.Geteuid(); int(st.Uid) != me && st.Uid != 0 {
		return -1, fmt.Errorf("%s is a symlink owned by uid %d, neither this user (uid %d) nor root: snap does not follow it for writes, "+
			"as another user could lead them out of the repository; if the link is yours, give it to this user (chown -h) or replace it with the directory", path, st.Uid, me)
	}
	if *links++; *links > maxLinks {
		return -1, &os.PathError{Op: "open", Path: path, Err: unix.ELOOP}
	}
	buf := make([]byte, unix.PathMax)
	n, err := unix.Readlinkat(link, "", buf)
	if err != nil {
		return -1, &os.PathError{Op: "readlink", Path: path, Err: err}
	}
	target := string(buf[:n])
	// The target, one component at a time, from the link's directory (or
	// from / for an absolute one), by the same rule.
	start := dir
	if filepath.IsAbs(target) {
		if start, err = unix.Open("/", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0); err != nil {
			return -1, &os.PathError{Op: "open", Path: "/", Err: err}
		}
		defer unix.Close(start)
	}
	return walkDirs(start, target, path+" -> "+target, flags, links)
}
