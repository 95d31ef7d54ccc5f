package sources

import (
	"io"
	"os"
	"slices"

	"golang.org/x/sys/unix"
)

// ReadDirNames returns the names in directory path, sorted bytewise. buf
// is room for reading the entries, which a caller listing many directories
// passes again and again (nil: ReadDirNames allocates its own). path may
// be longer than PATH_MAX (shortPath).
//
// It reads the directory through a bare descriptor rather than an os.File,
// which costs an epoll registration (refused for a directory) and some
// four fcntl calls per directory (strace of a no-change create of the Go
// source tree, 1,374 directories: 5,498 fcntl calls before, 202 after),
// and a no-change run does little else.
func ReadDirNames(path string, buf []byte) ([]string, error) {
	return (*Beneath)(nil).ReadDirNames(path, buf)
}

// ReadDirNames is the package's ReadDirNames for a directory below b's
// roots: no symlink is followed on the way (Beneath), nor the directory
// itself if it is one now.
func (b *Beneath) ReadDirNames(path string, buf []byte) ([]string, error) {
	l, err := b.OpenListing(path)
	if err != nil {
		return nil, err
	}
	names, err := l.Names(buf)
	if cerr := l.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	return names, nil
}

// Listing is a directory open for listing. Its entries are looked at
// relative to its descriptor (Reader.LstatIn), not by path: a directory
// swapped for a symlink after it was opened, or one above it, cannot lend
// another directory's entries' metadata to the backup, and the kernel
// looks up one component per entry instead of the whole path. The one who
// opens a Listing closes it.
type Listing struct {
	fd   int
	path string
}

// OpenListing opens directory path for listing, below b's roots as
// ReadDirNames does.
func (b *Beneath) OpenListing(path string) (*Listing, error) {
	// O_NOATIME, as for files: reading a directory's entries set its
	// access time, which clean-up tools that expire directories by it
	// read as use (found by an exploratory test).
	flags := unix.O_RDONLY | unix.O_DIRECTORY | unix.O_CLOEXEC | unix.O_NOATIME
	if b != nil {
		flags |= unix.O_NOFOLLOW // a listed directory swapped for a symlink
	}
	fd, err := b.open(path, flags)
	if err == unix.EPERM {
		// O_NOATIME is only allowed to the directory's owner (and root).
		flags &^= unix.O_NOATIME
		fd, err = b.open(path, flags)
	}
	if err != nil {
		return nil, &PathError{Op: "open", Path: path, Err: err}
	}
	return &Listing{fd: fd, path: path}, nil
}

// Names returns the names in the directory, sorted bytewise; buf is room
// for reading the entries, as for ReadDirNames.
func (l *Listing) Names(buf []byte) ([]string, error) {
	if len(buf) < DirBufSize {
		buf = make([]byte, DirBufSize)
	}
	var names []string
	for {
		n, err := unix.Getdents(l.fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, &PathError{Op: "read directory", Path: l.path, Err: err}
		}
		if n <= 0 {
			break
		}
		_, _, names = unix.ParseDirent(buf[:n], -1, names) // skips . and ..
	}
	slices.Sort(names)
	return names, nil
}

// Path is the directory's path, as it was opened.
func (l *Listing) Path() string { return l.path }

// Close releases the descriptor.
func (l *Listing) Close() error { return closeFd(l.fd, l.path) }

// DirBufSize is the room ReadDirNames reads entries into (it allocates
// that much when given less): some 300 names of a typical length per
// system call.
const DirBufSize = 8 << 10

func unwrapPathErr(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}

// OpenFile opens a regular file for reading without following a symlink
// that replaced it since it was listed, and without updating its access
// time where the caller may do that. Nor does it wait on a named pipe that
// replaced the file (O_NONBLOCK: opening a pipe for reading would wait for
// a writer, and the backup with it, for ever; the caller's fstat then
// finds it is no regular file), or make a terminal the process's
// controlling one. Reads of a regular file do not heed O_NONBLOCK. path
// may be longer than PATH_MAX (shortPath).
func OpenFile(path string) (*SourceFile, error) {
	return (*Beneath)(nil).OpenFile(path)
}

// OpenFile is the package's OpenFile for a file below b's roots: no
// symlink is followed on the way (Beneath).
func (b *Beneath) OpenFile(path string) (*SourceFile, error) {
	flags := unix.O_RDONLY | unix.O_NOFOLLOW | unix.O_CLOEXEC | unix.O_NOATIME | unix.O_NONBLOCK | unix.O_NOCTTY
	fd, err := b.open(path, flags)
	if err == unix.EPERM {
		// O_NOATIME is only allowed to the file's owner.
		flags &^= unix.O_NOATIME
		fd, err = b.open(path, flags)
	}
	if err == unix.EAGAIN {
		// A write lease on the file (a file server's, for a client's
		// exclusive lock): without O_NONBLOCK the open breaks it and
		// waits, as an open without it always did.
		fd, err = b.open(path, flags&^unix.O_NONBLOCK)
	}
	if err != nil {
		return nil, &PathError{Op: "open", Path: path, Err: err}
	}
	return &SourceFile{fd: fd, name: path}, nil
}

// SourceFile is a file being backed up, opened by OpenFile: a bare
// descriptor read with read(2) and pread(2), like the restore side's Dir
// and File. An *os.File costs more per file than a small file's whole
// read: os.NewFile asks the kernel for the descriptor's flags (fcntl) and
// registers a cleanup, and every read and the close go through the
// poller's reference counting; a backup of the Go source tree (11,478
// files) spent 1.4 % of its CPU in os.NewFile alone. The one who opens a
// SourceFile closes it; nothing closes a lost one.
type SourceFile struct {
	fd   int
	name string
}

// again reports whether a read that failed with err is worth repeating:
// after EINTR, and after the read's first EAGAIN, which a file system that
// heeds O_NONBLOCK for regular files could return (the local ones ignore
// it), once the flag is cleared. cleared is the read's own: the scouts and
// the reader of a large file read it at once, so the file keeps no state
// of it, and clearing the flag twice does no harm.
func (f *SourceFile) again(err error, cleared *bool) bool {
	switch {
	case err == unix.EINTR:
		return true
	case err == unix.EAGAIN && !*cleared:
		*cleared = true
		return unix.SetNonblock(f.fd, false) == nil
	}
	return false
}

// Read reads up to len(b) bytes from the file's offset; at the end of the
// file it returns 0, io.EOF.
func (f *SourceFile) Read(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	cleared := false
	for {
		n, err := unix.Read(f.fd, b)
		switch {
		case err != nil && f.again(err, &cleared):
			continue
		case err != nil:
			return 0, err
		case n == 0:
			return 0, io.EOF
		}
		return n, nil
	}
}

// ReadAt reads len(b) bytes at off, as io.ReaderAt asks: fewer only at the
// end of the file (with io.EOF) or with an error.
func (f *SourceFile) ReadAt(b []byte, off int64) (int, error) {
	if off < 0 {
		return 0, unix.EINVAL
	}
	total, cleared := 0, false
	for total < len(b) {
		n, err := unix.Pread(f.fd, b[total:], off+int64(total))
		switch {
		case err != nil && f.again(err, &cleared):
			continue
		case err != nil:
			return total, err
		case n == 0:
			return total, io.EOF
		}
		total += n
	}
	return total, nil
}

// Stat returns the metadata of the open file.
func (f *SourceFile) Stat() (unix.Stat_t, error) {
	var st unix.Stat_t
	for {
		err := unix.Fstat(f.fd, &st)
		if err != unix.EINTR {
			return st, err
		}
	}
}

// OnPseudoFS reports whether the open file lies on a kernel file system
// whose files state a size that means nothing (procfs, sysfs, debugfs,
// securityfs, tracefs, configfs, cgroupfs): /proc/cpuinfo says 0 bytes,
// a sysfs attribute 4096, whatever they hold.
func (f *SourceFile) OnPseudoFS() bool {
	var st unix.Statfs_t
	if unix.Fstatfs(f.fd, &st) != nil {
		return false
	}
	switch st.Type {
	case unix.PROC_SUPER_MAGIC, unix.SYSFS_MAGIC, unix.DEBUGFS_MAGIC, unix.SECURITYFS_MAGIC, unix.TRACEFS_MAGIC,
		unix.CGROUP_SUPER_MAGIC, unix.CGROUP2_SUPER_MAGIC, 0x62656570: // configfs
		return true
	}
	return false
}

// Close closes the descriptor, once. Like os.File it does not retry on
// EINTR: on Linux the descriptor is released whatever close returns.
func (f *SourceFile) Close() error {
	if f.fd < 0 {
		return &PathError{Op: "close", Path: f.name, Err: unix.EBADF}
	}
	fd := f.fd
	f.fd = -1
	return closeFd(fd, f.name)
}

// openRetry is open(2), repeated when a signal interrupts it (a FUSE or
// network file system can be slow to open).
func openRetry(path string, flags int) (int, error) {
	for {
		fd, err := unix.Open(path, flags, 0)
		if err != unix.EINTR {
			return fd, err
		}
	}
}
