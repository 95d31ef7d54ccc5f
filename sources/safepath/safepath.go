// Package safepath decides whether another user could change what a path
// names before snap is done with it, and resolves the path by the same
// rule. snap often runs as root, at paths whose parts other users control:
// an application's data directory is its user's, a home directory above a
// restore target or a cache is the user's, and so may be a link on the
// way. Red-team tests had root's restore replace a root-owned database
// through a link an application's user put in its own directory behind
// root's link, and create files in any directory through a link in a
// user's home directory above the target; root run with a user's
// environment wrote its cache and profiles through that user's links.
// Resolve walks a path as the kernel would, part by part, and follows a
// link, or goes on below a directory, only where no other user can have
// put or changed it.
//
// The repository's own directory is walked by descriptors instead
// (repo/local's openDirAt), by the same rule for links.
package safepath

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
)

// maxLinks bounds the links Resolve follows (the kernel's is 40).
const maxLinks = 40

// Resolve returns the file that path names, with every link
// followed, and whether its directory is one only this user (or root) may
// change. It refuses a path on which another user could change what it
// names before the caller is done with it: a link of another user's or in a
// directory another user may write, a directory another user may write
// above the file's own, or a directory still to be made in one.
func Resolve(path string) (file string, dirTrusted bool, err error) {
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
		state := State(cur)
		fi, err := os.Lstat(next)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			if !last && state != Ours {
				return "", false, fmt.Errorf("%s does not exist, and would be made in %s, which another user may write: make it first", next, cur)
			}
			if last {
				return next, state == Ours, nil
			}
			// Made by the caller, in a directory of ours: so is all
			// below it.
			return filepath.Join(append([]string{next}, rest...)...), true, nil
		case err != nil:
			return "", false, err
		}
		if state == Others && !last {
			return "", false, fmt.Errorf("%s lies in %s, which another user may write (%s) and so replace it: choose a path only this user or root may change", next, cur, WhoWrites(cur))
		}
		mine := IsOurs(fi)
		if fi.Mode()&fs.ModeSymlink != 0 {
			// Ours, where no one else can change it (in a sticky
			// directory others cannot touch our names).
			switch {
			case !mine:
				return "", false, fmt.Errorf("%s is a symbolic link of another user's (uid %d), which could point anywhere: name what it should point to instead", next, OwnerOf(next))
			case state == Others:
				return "", false, fmt.Errorf("%s is a symbolic link in %s, which another user may write (%s) and so replace it with one pointing anywhere: name what it should point to instead", next, cur, WhoWrites(cur))
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
			return next, state == Ours, nil
		}
		if state == Sticky && !mine {
			return "", false, fmt.Errorf("%s belongs to another user (uid %d) in %s, which others may write: choose a path only this user or root may change", next, OwnerOf(next), cur)
		}
		if !fi.IsDir() {
			return "", false, fmt.Errorf("%s is not a directory", next)
		}
		cur = next
	}
	return "", false, fmt.Errorf("%s names no file", path)
}

// Kind is who may change the names in a directory.
type Kind uint8

const (
	Ours   Kind = iota // only this user or root
	Sticky             // others may add names, not change ours (the sticky bit)
	Others             // another user may add, rename and remove names
)

// State says who may change the names in dir: another user when it is
// theirs, or open to everyone or to a group with another member (who need
// not be root), the sticky bit keeping them off names that are not theirs.
func State(dir string) Kind {
	fi, err := os.Stat(dir)
	if err != nil {
		return Others
	}
	if !IsOurs(fi) {
		return Others
	}
	if !OthersMayWrite(fi, dir) {
		return Ours
	}
	if fi.Mode()&fs.ModeSticky != 0 {
		return Sticky
	}
	return Others
}

// OthersMayWrite reports whether users other than fi's owner may write
// it: it is open to everyone, or to a group with another member. A group
// of its owner's alone does not count: with the user private groups of
// Debian and Ubuntu, a umask of 002 makes a user's directories (~/.cache
// made by another program) group-writable to that user's group only, and
// Debian's OpenSSH accepts such a ~/.ssh for the same reason. With an
// access ACL the group bits are the ACL's mask, the most any named user
// or group may get: write in them counts as others' (a red-team test gave
// another user write on root's config by an ACL). path is fi's, followed
// (a directory's path, or /proc/self/fd/N of an open file).
func OthersMayWrite(fi fs.FileInfo, path string) bool {
	perm := fi.Mode().Perm()
	if perm&0o002 != 0 {
		return true
	}
	if perm&0o020 == 0 {
		return false
	}
	if HasACL(path) {
		return true
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	return !ok || !ownersAlone(st.Gid, st.Uid)
}

// HasACL reports whether the file at path (followed) has an access ACL
// beyond its mode bits.
func HasACL(path string) bool {
	n, err := unix.Getxattr(path, "system.posix_acl_access", nil)
	return err == nil && n > 0
}

// ownersAlone reports whether the group gid has the user uid as its only
// member, by the system's files: it bears the user's name, no other
// account has it as its primary group, and it lists no member but the
// user. Accounts that only a directory service knows cannot be counted,
// so a group that /etc/group does not hold counts as shared.
func ownersAlone(gid, uid uint32) bool {
	u, err := user.LookupId(strconv.FormatUint(uint64(uid), 10))
	if err != nil {
		return false
	}
	g, err := user.LookupGroupId(strconv.FormatUint(uint64(gid), 10))
	if err != nil || g.Name != u.Username {
		return false
	}
	groups, err := os.ReadFile("/etc/group")
	if err != nil {
		return false
	}
	listed := false
	for _, line := range strings.Split(string(groups), "\n") {
		f := strings.Split(line, ":") // name:password:gid:members
		if len(f) != 4 || f[2] != g.Gid {
			continue
		}
		listed = true
		for _, m := range strings.Split(f[3], ",") {
			if m != "" && m != u.Username {
				return false
			}
		}
	}
	passwd, err := os.ReadFile("/etc/passwd")
	if !listed || err != nil {
		return false
	}
	for _, line := range strings.Split(string(passwd), "\n") {
		f := strings.Split(line, ":") // name:password:uid:gid:...
		if len(f) >= 4 && f[3] == g.Gid && f[2] != u.Uid {
			return false
		}
	}
	return true
}

// IsOurs reports whether fi belongs to this user or root.
func IsOurs(fi fs.FileInfo) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && (int(st.Uid) == os.Geteuid() || st.Uid == 0)
}

// WhoWrites describes the owner and mode of dir, for messages.
func WhoWrites(dir string) string {
	fi, err := os.Stat(dir)
	if err != nil {
		return err.Error()
	}
	mode := uint32(fi.Mode().Perm())
	if fi.Mode()&fs.ModeSticky != 0 {
		mode |= 0o1000
	}
	return fmt.Sprintf("owner uid %d, mode %04o", OwnerOf(dir), mode)
}

// PrivateDir makes a directory of this user's alone, named prefix and a
// random suffix, for work that must not happen where others may change
// names: in $TMPDIR, else /var/tmp or
// /tmp, the first one that no other user may rename it out of (a red-team
// test's $TMPDIR was a user's, who swapped the new directory for a link
// and had root load into a root-owned database).
func PrivateDir(prefix string) (string, error) {
	return PrivateDirWhere(prefix, nil)
}

// PrivateDirWhere is PrivateDir, passing over a place whose path usable
// refuses (nil: any).
func PrivateDirWhere(prefix string, usable func(path string) bool) (string, error) {
	for _, base := range []string{os.TempDir(), "/var/tmp", "/tmp"} {
		file, _, err := Resolve(filepath.Join(base, "probe"))
		if err != nil {
			continue
		}
		parent := filepath.Dir(file)
		if State(parent) == Others {
			continue
		}
		work, err := os.MkdirTemp(parent, prefix)
		if err != nil {
			continue
		}
		if fi, err := os.Lstat(work); err != nil || !fi.IsDir() || !IsOurs(fi) || fi.Mode().Perm() != 0o700 {
			continue
		}
		if usable != nil && !usable(work) {
			os.Remove(work)
			continue
		}
		return work, nil
	}
	return "", errors.New("$TMPDIR, /var/tmp and /tmp may all be changed by another user (or cannot be used); set TMPDIR to a directory only root writes")
}

// OwnerOf returns the user ID that owns path (-1 when unknown).
func OwnerOf(path string) int {
	if fi, err := os.Lstat(path); err == nil {
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			return int(st.Uid)
		}
	}
	return -1
}
