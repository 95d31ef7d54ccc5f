package main

import (
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/snap-backup/snap/repo"
	"github.com/snap-backup/snap/snapshot"
	"github.com/snap-backup/snap/sources"
)

// The paths of a create, checked before anything is read: the walk of
// each saves what the admin asked for, and never the repository itself.

// unreachableInner refuses a path given inside another given path that
// the walk of the outer one, which saves it, would not save as asked: a
// symlink on the way (the walk saves a symlink as one), the path itself a
// symlink to follow (given with a trailing slash), or a directory on the
// way that an --exclude leaves out, that a tag file empties
// (--exclude-if-present, --exclude-caches) or that is another file
// system's under --one-file-system. Such a path was left out without a
// word (found by an exploratory test: "create vl vl/mysql/" saved the
// link, not the database; the tags and -x by a re-test).
func unreachableInner(paths []string, o snapshot.ArchiveOptions, origin string) error {
	dirBuf := make([]byte, sources.DirBufSize)
	// Each path's absolute form once, and the given paths by it: the
	// outer paths of a path are found among its ancestors, not by
	// comparing every pair (6,000 paths took 52 s that way).
	abs := make([]string, len(paths))
	given := map[string]string{}
	for i, p := range paths {
		a, err := filepath.Abs(p)
		if err != nil {
			return err
		}
		abs[i] = a
		if _, ok := given[a]; !ok {
			given[a] = p
		}
	}
	for i, p := range paths {
		inner := abs[i]
		follow := snapshot.FollowsLink(p)
		for outer := filepath.Dir(inner); ; outer = filepath.Dir(outer) {
			if q, ok := given[outer]; ok && outer != inner {
				if err := nestedReachable(p, q, inner, outer, follow, o, origin, dirBuf); err != nil {
					return err
				}
			}
			if filepath.Dir(outer) == outer {
				break
			}
		}
	}
	return nil
}

// nestedReachable checks one path p (absolute: inner) given inside another
// given path q (outer): see unreachableInner.
func nestedReachable(p, q, inner, outer string, follow bool, o snapshot.ArchiveOptions, origin string, dirBuf []byte) error {
	refuse := func(why string) error {
		return usagef("path %s lies inside %s, whose backup saves it, but %s; give it in a snapshot of its own, or remove it from %s; no snapshot was saved", sources.DisplayPath(p), sources.DisplayPath(q), why, origin)
	}
	for c := inner; ; c = filepath.Dir(c) {
		var st, up unix.Stat_t
		if sources.Lstat(c, &st) != nil {
			break // missing: said by the check of each path
		}
		link := st.Mode&unix.S_IFMT == unix.S_IFLNK
		switch {
		case c == outer && link && !snapshot.FollowsLink(q):
			// The outer path is a symlink given as one: its backup
			// is the link alone (found by an exploratory test:
			// "create link link/sub" saved an empty link/sub).
			return refuse(sprintf("%s is a symlink, which that backup saves as one, not what it points to (%s/ would follow it)", q, q))
		case c == outer:
		case c == inner && link && follow:
			return refuse(sprintf("%s is a symlink, which that backup saves as one, not what it points to", c))
		case c != inner && link:
			return refuse(sprintf("%s on the way is a symlink, which that backup saves as one, not what it points to", c))
		case c != inner && sources.MatchAny(o.Excludes, c):
			return refuse(sprintf("an --exclude leaves out %s on the way", c))
		case c != inner && o.OneFileSystem && unix.Stat(filepath.Dir(c), &up) == nil && up.Dev != st.Dev:
			return refuse(sprintf("%s on the way is another file system's, which --one-file-system leaves empty", c))
		}
		// The directories that list the way, the outer one too:
		// a tag file in one saves it with its tags alone. Listed only
		// when tag files are asked for: 'snap create /home /home/*'
		// listed /home once for each of its entries.
		if dir := filepath.Dir(c); c != outer && (len(o.ExcludeIfPresent) > 0 || o.ExcludeCaches) {
			if names, err := sources.ReadDirNames(dir, dirBuf); err == nil {
				if tags := sources.TagFiles(dir, names, o.ExcludeIfPresent, o.ExcludeCaches); tags != nil {
					return refuse(sprintf("%s on the way holds %s, so that backup saves it with that alone", dir, strings.Join(tags, ", ")))
				}
			}
		}
		if c == outer {
			break
		}
	}
	return nil
}

// leaveOut returns the directories a create into s leaves out of its walk
// (ArchiveOptions.LeaveOut): the repository, when it is a local
// directory, and its cache here. A path given that is one of them, or lies
// inside one, is refused: a repository is backed up into another with
// 'snap copy'.
func (s *session) leaveOut(paths []string, origin string) (map[[2]uint64]string, error) {
	const (
		repoWhy  = "the repository this snapshot goes into"
		cacheWhy = "snap's cache of the repository this snapshot goes into"
	)
	dirs := s.ownDirs(repoWhy, cacheWhy)
	for _, p := range paths {
		abs, err := filepath.Abs(p)
		if err != nil {
			return nil, err
		}
		// Where the path is: absolute ("." inside the repository went
		// through), the directories above it resolved as the kernel
		// follows them, and itself when it is a symlink to follow ("ldata/"
		// into the repository went through; both found by a re-test).
		follow := snapshot.FollowsLink(p)
		real := abs
		if follow {
			real, _ = filepath.EvalSymlinks(abs)
		} else if dir, err := filepath.EvalSymlinks(filepath.Dir(abs)); err == nil {
			real = filepath.Join(dir, filepath.Base(abs))
		}
		for q := real; q != ""; q = filepath.Dir(q) {
			if k, ok := dirKey(q, q != real || follow); ok && dirs[k] != "" {
				fix := "back up a repository into another with 'snap copy'"
				if dirs[k] == cacheWhy {
					fix = "a cache is rebuilt from the repository, and needs no backup"
				}
				return nil, usagef("path %s: %s is %s; %s, and remove the path from %s; no snapshot was saved", sources.DisplayPath(p), sources.DisplayPath(q), dirs[k], fix, origin)
			}
			if q == filepath.Dir(q) {
				break
			}
		}
	}
	return dirs, nil
}

// ownDirs returns the directories of s, by device and inode, each with
// what it is: the repository's, when it is a local directory (repoWhy), and
// its cache here (cacheWhy). Neither may be written by what the session
// reads or restores.
func (s *session) ownDirs(repoWhy, cacheWhy string) map[[2]uint64]string {
	dirs := map[[2]uint64]string{}
	add := func(p, why string) {
		if k, ok := dirKey(p, true); ok {
			dirs[k] = why
		}
	}
	if !isRemote(s.location) {
		root := strings.TrimPrefix(s.location, "local:")
		add(root, repoWhy)
		// Its directories moved to another disk and linked or bind
		// mounted (data/, a data/xx): the walk may meet them there, not
		// below the repository (found by a re-test).
		for _, t := range repo.FileTypes {
			if t != repo.ConfigFile {
				add(filepath.Join(root, string(t)), repoWhy)
			}
		}
		entries, _ := os.ReadDir(root)
		for _, e := range entries {
			if e.Type()&os.ModeSymlink != 0 {
				add(filepath.Join(root, e.Name()), repoWhy)
			}
		}
		// Every pack directory: one may be bind mounted from another
		// disk, where a restore above it wrote over its packs (found by
		// a re-test).
		data := filepath.Join(root, string(repo.PackFile))
		entries, _ = os.ReadDir(data)
		for _, e := range entries {
			add(filepath.Join(data, e.Name()), repoWhy)
		}
	}
	add(s.cache, cacheWhy)
	// Beside it, which key opened each repository (keyHintPath).
	add(filepath.Join(filepath.Dir(s.cache), "key-hints"), cacheWhy)
	return dirs
}

// dirKey returns the device and inode of the directory p (followed when it
// is a symlink and follow is set), and whether p is one.
func dirKey(p string, follow bool) ([2]uint64, bool) {
	var st unix.Stat_t
	err := sources.Lstat(p, &st)
	if follow {
		err = unix.Stat(p, &st)
	}
	return [2]uint64{uint64(st.Dev), st.Ino}, err == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR
}
