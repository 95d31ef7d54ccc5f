package sources

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// A restore of a SQLite file writes, as root often, at a path whose parts
// other users may control: an application's data directory is its user's,
// and so may be a link on the way. Red-team tests had root's restore
// replace a root-owned database through a link an application's user put
// in its own directory behind root's link, and create files in any
// directory through a link in a user's home directory above the target.
// resolveTarget walks the path as the kernel would, part by part, and
// follows a link, or goes on below a directory, only where no other user
// can have put or changed it.

// maxLinks bounds the links resolveTarget follows (the kernel's is 40).
const maxLinks = 40

// resolveTarget returns the file that path names, with every link
// followed, and whether its directory is one only this user (or root) may
// change. It refuses a path on which another user could change what it
// names before the restore is done: a link of another user's or in a
// directory another user may write, a directory another user may write
// above the file's own, or a directory still to be made in one.
func resolveTarget(path string) (file string, dirTrusted bool, err error) {
	if !filepath.IsAbs(path) {
		return "", false, fmt.Errorf("%s is not an absolute path", path)
	}
	rest := strings.Split(strings.Trim(filepath.Clean(path), "/"), "/")
	cur := "/"
	links := 0
	for len(rest) > 0 {
		part := rest[0]
		rest = rest[1:]
		if part == "" || part == "." {
			continue
		}
		if part == ".." {
			cur = filepath.Dir(cur)
			continue
		}
		next := filepath.Join(cur, part)
		last := len(rest) == 0
		state := dirState(cur)
		fi, err := os.Lstat(next)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			if !last && state != dirOurs {
				return "", false, fmt.Errorf("%s does not exist, and would be made in %s, which another user may write: make it first", next, cur)
			}
			if last {
				return next, state == dirOurs, nil
			}
			// Made by the restore, in a directory of ours: so is all
			// below it.
			return filepath.Join(append([]string{next}, rest...)...), true, nil
		case err != nil:
			return "", false, err
		}
		if state == dirOthers && !last {
			return "", false, fmt.Errorf("%s lies in %s, which another user may write (%s) and so replace it: restore somewhere only root writes, then move the file", next, cur, whoWrites(cur))
		}
		mine := isOurs(fi)
		if fi.Mode()&fs.ModeSymlink != 0 {
			// Ours, where no one else can change it (in a sticky
			// directory others cannot touch our names).
			if !mine || state == dirOthers {
				return "", false, fmt.Errorf("%s is a symbolic link of another user's (uid %d), or in a directory others may write, which could point anywhere: restore into the file it should point to with --to", next, ownerOf(next))
			}
			if links++; links > maxLinks {
				return "", false, fmt.Errorf("%s: too many levels of symbolic links", path)
			}
			target, err := os.Readlink(next)
			if err != nil {
				return "", false, err
			}
			if filepath.IsAbs(target) {
				cur = "/"
			}
			rest = append(strings.Split(strings.Trim(target, "/"), "/"), rest...)
			continue
		}
		if last {
			return next, state == dirOurs, nil
		}
		if state == dirSticky && !mine {
			return "", false, fmt.Errorf("%s belongs to another user (uid %d) in %s, which others may write: restore somewhere only root writes, then move the file", next, ownerOf(next), cur)
		}
		if !fi.IsDir() {
			return "", false, fmt.Errorf("%s is not a directory", next)
		}
		cur = next
	}
	return "", false, fmt.Errorf("%s names no file", path)
}

// dirKind is who may change the names in a directory.
type dirKind uint8

const (
	dirOurs   dirKind = iota // only this user or root
	dirSticky                // others may add names, not change ours (the sticky bit)
	dirOthers                // another user may add, rename and remove names
)

// dirState says who may change the names in dir: another user when it is
// theirs, or open to a group or everyone (a group's member need not be
// root), the sticky bit keeping them off names that are not theirs.
func dirState(dir string) dirKind {
	fi, err := os.Stat(dir)
	if err != nil {
		return dirOthers
	}
	if !isOurs(fi) {
		return dirOthers
	}
	if fi.Mode().Perm()&0o022 == 0 {
		return dirOurs
	}
	if fi.Mode()&fs.ModeSticky != 0 {
		return dirSticky
	}
	return dirOthers
}

// isOurs reports whether fi belongs to this user or root.
func isOurs(fi fs.FileInfo) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && (int(st.Uid) == os.Geteuid() || st.Uid == 0)
}

// whoWrites describes the owner and mode of dir, for messages.
func whoWrites(dir string) string {
	fi, err := os.Stat(dir)
	if err != nil {
		return err.Error()
	}
	mode := uint32(fi.Mode().Perm())
	if fi.Mode()&fs.ModeSticky != 0 {
		mode |= 0o1000
	}
	return fmt.Sprintf("owner uid %d, mode %04o", ownerOf(dir), mode)
}

// privateDir makes a directory of this user's alone, for a load that must
// not happen where others may change names: in $TMPDIR, else /var/tmp or
// /tmp, the first one that no other user may rename it out of (a red-team
// test's $TMPDIR was a user's, who swapped the new directory for a link
// and had root load into a root-owned database).
func privateDir() (string, error) {
	for _, base := range []string{os.TempDir(), "/var/tmp", "/tmp"} {
		file, _, err := resolveTarget(filepath.Join(base, "probe"))
		if err != nil {
			continue
		}
		parent := filepath.Dir(file)
		if dirState(parent) == dirOthers {
			continue
		}
		work, err := os.MkdirTemp(parent, "snap-sqlite-restore-")
		if err != nil {
			continue
		}
		if fi, err := os.Lstat(work); err != nil || !fi.IsDir() || !isOurs(fi) || fi.Mode().Perm() != 0o700 {
			continue
		}
		return work, nil
	}
	return "", errors.New("$TMPDIR, /var/tmp and /tmp may all be changed by another user; set TMPDIR to a directory only root writes")
}

// ownerOf returns the user ID that owns path (-1 when unknown).
func ownerOf(path string) int {
	if fi, err := os.Lstat(path); err == nil {
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			return int(st.Uid)
		}
	}
	return -1
}
