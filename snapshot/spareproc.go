package snapshot

import (
	"os"
	"runtime"
	"sync"
)

// spareProc gives the Go scheduler one P more than it had while a large
// file is read on every core (chunk.Parallel), and takes it back after.
//
// Why: such a file keeps every core busy with cutting, hashing and
// compressing, and its packs are written at the same pace, with O_DIRECT
// writes and fsyncs that block for milliseconds. A thread blocked in a
// system call keeps its P until the runtime's sysmon takes it back, and
// sysmon, which sleeps up to 10 ms when little happens, takes it late:
// meanwhile the core has nothing to run (iowait). A spare P runs the
// pipeline's goroutines on that core. Measured on dataset 2 (one 2 GiB
// file, docs/benchmarks.md): iowait from 0.65 to 0.11 core-seconds, 3 %
// less time. It is not held for the whole run: with many small files the
// extra P made dataset 1's create 14 % slower (more threads than cores,
// handing work between them).
//
// A GOMAXPROCS set in the environment is the user's cap and is left
// alone. Otherwise the last holder hands GOMAXPROCS back to the runtime's
// default (runtime.SetDefaultGOMAXPROCS), which also resumes its automatic
// updates (a changed CPU limit of the cgroup) that setting it had stopped.
//
// GOMAXPROCS is the process's, so the count is too: two archivers (or
// two large files) share one spare P.
type spareProc struct {
	mu     sync.Mutex
	n      int  // holders
	raised bool // the first holder raised GOMAXPROCS (no GOMAXPROCS in the environment)
}

// spare is the process's one spareProc, as GOMAXPROCS is the process's.
var spare spareProc

// hold adds the spare P for one more holder.
func (s *spareProc) hold() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.n == 0 {
		s.raised = os.Getenv("GOMAXPROCS") == ""
		if s.raised {
			runtime.GOMAXPROCS(runtime.GOMAXPROCS(0) + 1)
		}
	}
	s.n++
}

// release ends one holder's hold; the last one gives GOMAXPROCS back. A
// release without a hold does nothing.
func (s *spareProc) release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.n == 0 {
		return
	}
	s.n--
	if s.n == 0 && s.raised {
		runtime.SetDefaultGOMAXPROCS()
	}
}
