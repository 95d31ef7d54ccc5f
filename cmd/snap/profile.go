package main

import (
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
	"syscall"

	"github.com/snap-backup/snap/sources/safepath"
)

// startProfiles writes the profiles that the environment asks for, for
// performance work (see docs/benchmarks.md): SNAP_CPUPROFILE names a file
// for a CPU profile of the whole run, SNAP_MEMPROFILE one for a heap profile
// taken at the end, SNAP_TRACE one for an execution trace (go tool trace:
// where goroutines wait). The returned function finishes them.
func startProfiles(getenv func(string) string) (stop func()) {
	var stops []func()
	if p := getenv("SNAP_CPUPROFILE"); p != "" {
		f, err := createOwnFile(p)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "snap: SNAP_CPUPROFILE: %v\n", err)
		} else {
			stops = append(stops, func() { pprof.StopCPUProfile(); f.Close() })
		}
	}
	if p := getenv("SNAP_TRACE"); p != "" {
		f, err := createOwnFile(p)
		if err == nil {
			err = trace.Start(f)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "snap: SNAP_TRACE: %v\n", err)
		} else {
			stops = append(stops, func() { trace.Stop(); f.Close() })
		}
	}
	if p := getenv("SNAP_MEMPROFILE"); p != "" {
		runtime.MemProfileRate = 64 << 10
		stops = append(stops, func() {
			runtime.GC() // the profile counts allocations up to the last collection
			f, err := createOwnFile(p)
			if err == nil {
				err = pprof.Lookup("allocs").WriteTo(f, 0)
				f.Close()
			}
			if err != nil {
				fmt.Fprintf(os.Stderr, "snap: SNAP_MEMPROFILE: %v\n", err)
			}
		})
	}
	return func() {
		for _, s := range stops {
			s()
		}
	}
}

// createOwnFile creates the file at path, or empties it, for a profile
// that a variable of the environment names. Root run with a user's
// environment (su without -) must not write through that user's links:
// a path another user could redirect is refused (package safepath), the
// last part is not followed if it is a link, and a file found there must
// be this user's (or root's), a regular one with no other names, and a
// profile or trace already (red-team tests had root's own files, as
// /etc/shadow would be, overwritten by naming them).
func createOwnFile(path string) (*os.File, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	file, trusted, err := safepath.Resolve(abs)
	if err != nil {
		return nil, err
	}
	if dir := filepath.Dir(file); !trusted && safepath.State(dir) == safepath.Others {
		return nil, fmt.Errorf("%s is in %s, which another user may write (%s): name a file in a directory only you or root may change", path, dir, safepath.WhoWrites(dir))
	}
	// Not opened at all unless a regular file: opening a device can act
	// (a watchdog arms, a terminal becomes the controlling one; a review).
	if fi, err := os.Lstat(file); err == nil && !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	// Made new (O_EXCL), or else an existing file that is a profile
	// already: a red-team test emptied /proc/sys files (which say they
	// are empty) and overwrote rotated logs through these variables.
	created := true
	f, err := os.OpenFile(file, os.O_RDWR|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0o600)
	if errors.Is(err, fs.ErrExist) {
		created = false
		f, err = os.OpenFile(file, os.O_RDWR|syscall.O_NOFOLLOW|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
	}
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err == nil {
		st, _ := fi.Sys().(*syscall.Stat_t)
		switch {
		case !fi.Mode().IsRegular():
			err = fmt.Errorf("%s is not a regular file", path)
		case !safepath.IsOurs(fi):
			err = fmt.Errorf("%s belongs to another user (uid %d): name a file of yours", path, st.Uid)
		case st != nil && st.Nlink > 1:
			err = fmt.Errorf("%s has other names (hard links): name a new file", path)
		case created:
			// New, and so empty: this run's.
		case !holdsProfile(f):
			err = fmt.Errorf("%s exists and holds no profile or trace: name a new file, or remove it", path)
		default:
			err = f.Truncate(0)
		}
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// traceHeader begins an execution trace ("go 1.26 trace" and NULs); a
// go.work file begins "go 1.26" too (a review).
var traceHeader = regexp.MustCompile(`^go 1\.\d+ trace\x00`)

// holdsProfile reports whether f begins as an execution trace does or a
// profile: gzip, as pprof writes them, holding a protocol
// buffer of a profile's fields, not any gzip file (a rotated log).
func holdsProfile(f *os.File) bool {
	head := make([]byte, 16)
	n, _ := f.ReadAt(head, 0)
	if traceHeader.Match(head[:n]) {
		return true
	}
	zr, err := gzip.NewReader(io.NewSectionReader(f, 0, 1<<20))
	if err != nil {
		return false
	}
	buf := make([]byte, 4096)
	n, err = io.ReadFull(zr, buf)
	return profileFields(buf[:n], err != nil)
}

// profileFields reports whether b begins as pprof's Profile message does:
// each field a number of its (1 to 14), a varint or bytes, for as far as
// b goes or eight fields. whole: b is all of it, and its last field must
// end where b does (a few words of a log pass for a field otherwise).
func profileFields(b []byte, whole bool) bool {
	if len(b) == 0 {
		return false
	}
	for range 8 {
		if len(b) == 0 {
			return true
		}
		tag, n := binary.Uvarint(b)
		if n <= 0 || tag>>3 < 1 || tag>>3 > 14 {
			return false
		}
		b = b[n:]
		switch tag & 7 {
		case 0:
			if _, n = binary.Uvarint(b); n <= 0 {
				return !whole && len(b) < binary.MaxVarintLen64 // cut by the window
			}
			b = b[n:]
		case 2:
			size, n := binary.Uvarint(b)
			if n <= 0 {
				return !whole && len(b) < binary.MaxVarintLen64
			}
			if size > uint64(len(b)-n) {
				return !whole // goes on past the window
			}
			b = b[n+int(size):]
		default:
			return false
		}
	}
	return true
}
