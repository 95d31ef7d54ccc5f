package sources

import (
	"errors"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// Beneath opens what a backup reads below its backed-up directories (its
// roots) without following a symlink on the way from the root, in any
// component, not only the last (O_NOFOLLOW's). A directory that someone
// swapped for a symlink after the walk listed it (rm -r dir; ln -s /etc
// dir) would otherwise be followed by the opens of its entries, which go
// by path, and the backup of a tree another user can write would store
// root's files (/etc/shadow) or another file system (past
// --one-file-system) under that user's names.
//
// Each root is opened once (following a symlink the admin named as the
// root itself), and everything below it with openat2(RESOLVE_NO_SYMLINKS |
// RESOLVE_BENEATH) relative to that descriptor: a symlink anywhere in the
// rest of the path fails the open (ELOOP), which the caller reports as an
// entry replaced since it was listed. A kernel without openat2 (before
// 5.6), and paths of PATH_MAX bytes or more, are opened as before.
//
// A nil *Beneath opens by path, as ReadDirNames and OpenFile do.
type Beneath struct {
	mu      sync.RWMutex
	roots   map[string]int // root path (cleaned, as the walk joins it) → O_PATH descriptor
	noOpen2 bool           // openat2 is not there: ENOSYS once
}

// NewBeneath returns a Beneath without roots; Close releases them.
func NewBeneath() *Beneath { return &Beneath{roots: map[string]int{}} }

// AddRoot opens directory path as a root. A root that cannot be opened is
// left out: what is below it is opened by path.
func (b *Beneath) AddRoot(path string) {
	fd, err := openPath(unix.AT_FDCWD, path)
	if err != nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if old, ok := b.roots[path]; ok {
		unix.Close(old)
	}
	b.roots[path] = fd
}

// Close releases the roots' descriptors.
func (b *Beneath) Close() {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for p, fd := range b.roots {
		unix.Close(fd)
		delete(b.roots, p)
	}
}

// ErrSymlinkOnPath is what an open below a root meets when a component of
// the path is a symlink now: the entry or a directory above it was
// replaced since the walk listed it.
var ErrSymlinkOnPath = errors.New("replaced by a symlink since it was listed (here or in a directory above it), which a backup does not follow")

// open opens path with flags: relative to the root it lies below, without
// following a symlink, when there is one; else by path.
func (b *Beneath) open(path string, flags int) (int, error) {
	if b != nil && len(path) < unix.PathMax {
		b.mu.RLock()
		fd, rel, ok := b.below(path)
		no2 := b.noOpen2
		b.mu.RUnlock()
		if ok && !no2 {
			how := &unix.OpenHow{Flags: uint64(flags), Resolve: unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_BENEATH}
			for {
				nfd, err := unix.Openat2(fd, rel, how)
				switch err {
				case unix.EINTR:
					continue
				case unix.ENOSYS:
					b.mu.Lock()
					b.noOpen2 = true
					b.mu.Unlock()
				case unix.ELOOP, unix.EXDEV:
					return -1, ErrSymlinkOnPath
				default:
					return nfd, err
				}
				break
			}
		}
	}
	var fd int
	err := shortPath(path, func(p string) (err error) {
		fd, err = openRetry(p, flags)
		return err
	})
	return fd, err
}

// below finds the root path is or lies below: the descriptor and the rest
// of the path ("." for the root itself, which was opened as the admin
// named it, through a symlink when asked). The caller holds mu.
func (b *Beneath) below(path string) (fd int, rel string, ok bool) {
	if fd, ok := b.roots[path]; ok {
		return fd, ".", true
	}
	for dir := path; ; {
		i := strings.LastIndexByte(dir, '/')
		if i < 0 {
			return 0, "", false
		}
		dir = dir[:i]
		root := dir
		if root == "" {
			root = "/"
		}
		if fd, ok := b.roots[root]; ok {
			return fd, strings.TrimPrefix(path[len(dir):], "/"), true
		}
		if dir == "" {
			return 0, "", false
		}
	}
}
