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

// openDir opens the directory that holds h's file and returns it with the
// file's name, for the calls that write or remove (Save, Remove, the
// preflight): they then work relative to it (openat, renameat, unlinkat).
//
// The directories inside the repository (keys/, data/, data/xx/, …) are
// opened without following a symlink unless it is a trusted one: owned by
// the user snap runs as, or by root (an admin who moved data/xx to another
// disk and linked it). A user who may write the repository directory but
// not this user's files (a shared repository, a backup account's) could
// otherwise plant a symlink that leads this user's writes anywhere: root's
// new packs landed in a directory of the attacker's choosing, given to the
// repository's owner (found by an exploratory test: a file in
// /etc/cron.daily that the attacker then owned). The repository's own path
// is the admin's and is followed.
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
// slash-separated path inside it) as openDir does.
func (b *Backend) openRel(rel string) (*os.File, error) {
	fd, err := unix.Open(b.dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: b.dir, Err: err}
	}
	at := b.dir
	for _, name := range strings.Split(rel, "/") {
		if name == "." || name == "" {
			continue
		}
		at = filepath.Join(at, name)
		next, err := openDirAt(fd, name, at)
		unix.Close(fd)
		if err != nil {
			return nil, err
		}
		fd = next
	}
	return os.NewFile(uintptr(fd), at), nil
}

// openDirAt opens the directory name in dir (path is its path, for
// messages), following it only when it is a symlink owned by this user or
// root. The symlink is read through a descriptor of the link itself
// (O_PATH), so that it cannot be swapped for another between the check of
// its owner and its use.
func openDirAt(dir int, name, path string) (int, error) {
	fd, err := unix.Openat(dir, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err == nil || !errors.Is(err, unix.ELOOP) && !errors.Is(err, unix.ENOTDIR) {
		if err != nil {
			return -1, &os.PathError{Op: "open", Path: path, Err: err}
		}
		return fd, nil
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
	buf := make([]byte, unix.PathMax)
	n, err := unix.Readlinkat(link, "", buf)
	if err != nil {
		return -1, &os.PathError{Op: "readlink", Path: path, Err: err}
	}
	fd, err = unix.Openat(dir, string(buf[:n]), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, &os.PathError{Op: "open", Path: path, Err: err}
	}
	return fd, nil
}
