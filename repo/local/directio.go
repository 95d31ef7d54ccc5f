package local

import (
	"errors"
	"os"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Pack files are written with O_DIRECT: from snap's buffer straight to the
// device, without a copy into the page cache. On the machines measured
// (docs/benchmarks.md) writing 1 GiB of 16 MiB files through the page
// cache cost 2.6 s of CPU (the kernel's copy into freshly allocated cache
// pages, then writeback at fsync) and O_DIRECT 0.07 s; for a large backup
// that is a quarter of all the CPU it uses. Data packs are not read again
// soon (a restore reads them, much later), so bypassing the cache loses
// nothing; small files (trees, index segments, snapshots, which the next
// run reads) stay buffered.
const (
	// directAlign is the alignment O_DIRECT asks of buffer addresses,
	// lengths and file offsets: the device's logical block size, which is
	// 512 or 4096 bytes; 4096 satisfies both.
	directAlign = 4096
	// directMin is the smallest file written with O_DIRECT.
	directMin = 4 << 20
)

// directIO remembers whether the file system refused O_DIRECT (tmpfs
// before Linux 6.6, some FUSE and network file systems), so that a
// backend asks only once.
type directIO struct {
	refused atomic.Bool
}

// use reports whether data should be written with O_DIRECT.
func (d *directIO) use(data []byte) bool {
	return len(data) >= directMin && !d.refused.Load() && aligned(data)
}

// aligned reports whether b starts at an address O_DIRECT accepts.
func aligned(b []byte) bool {
	return len(b) > 0 && uintptr(unsafe.Pointer(unsafe.SliceData(b)))%directAlign == 0
}

// open creates the file name in the directory dir (p is its path, for
// messages), with O_DIRECT when direct is set and the file system takes it.
// It returns whether the file is open for direct writes. O_EXCL: a name
// that exists, a symlink included, is not written through.
func (d *directIO) open(dir *os.File, name, p string, direct bool) (*os.File, bool, error) {
	const flags = unix.O_WRONLY | unix.O_CREAT | unix.O_EXCL | unix.O_NOFOLLOW | unix.O_CLOEXEC
	if direct {
		fd, err := unix.Openat(int(dir.Fd()), name, flags|unix.O_DIRECT, 0o600)
		if err == nil {
			return os.NewFile(uintptr(fd), p), true, nil
		}
		if !errors.Is(err, unix.EINVAL) {
			return nil, false, &os.PathError{Op: "open", Path: p, Err: err}
		}
		d.refused.Store(true)
		// Some file systems (ramfs) create the file before they refuse
		// O_DIRECT: the name is this call's own (a random temporary
		// one), and O_EXCL below would fail on it (found by a review).
		_ = unix.Unlinkat(int(dir.Fd()), name, 0)
	}
	fd, err := unix.Openat(int(dir.Fd()), name, flags, 0o600)
	if err != nil {
		return nil, false, &os.PathError{Op: "open", Path: p, Err: err}
	}
	return os.NewFile(uintptr(fd), p), false, nil
}

// write writes data to the new, empty file f. With direct set (f was
// opened with O_DIRECT) it writes the aligned part of data directly and
// the rest, less than a block, through the page cache; the caller's fsync
// makes both durable. A file system that accepts O_DIRECT at open but not
// at write gets the whole file through the page cache.
func (d *directIO) write(f *os.File, data []byte, direct bool) error {
	if direct {
		n := len(data) &^ (directAlign - 1)
		_, err := f.Write(data[:n])
		switch {
		case err == nil:
			data = data[n:]
		case errors.Is(err, unix.EINVAL):
			d.refused.Store(true)
			if _, err := f.Seek(0, 0); err != nil {
				return err
			}
		default:
			return err
		}
		if err := clearDirect(f); err != nil {
			return err
		}
	}
	_, err := f.Write(data)
	return err
}

// clearDirect turns O_DIRECT off for f, for a write that is not aligned.
func clearDirect(f *os.File) error {
	fd := int(f.Fd())
	flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
	if err != nil {
		return err
	}
	_, err = unix.FcntlInt(uintptr(fd), unix.F_SETFL, flags&^unix.O_DIRECT)
	return err
}
