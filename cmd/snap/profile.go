package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
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
// be this user's (or root's), a regular one with no other names, and
// empty or a profile already (a red-team test had root's own files, as
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
	f, err := os.OpenFile(file, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0o600)
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
		case fi.Size() > 0 && !holdsProfile(f):
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

// holdsProfile reports whether f begins as a profile (gzip, as pprof
// writes them) or an execution trace ("go 1.N trace") does.
func holdsProfile(f *os.File) bool {
	head := make([]byte, 5)
	n, _ := f.ReadAt(head, 0)
	head = head[:n]
	return bytes.HasPrefix(head, []byte{0x1f, 0x8b}) || bytes.HasPrefix(head, []byte("go 1."))
}
