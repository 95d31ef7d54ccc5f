package main

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"
)

// measurement is what one run of a tool cost: wall time, CPU time and
// peak resident set size, the latter two from the wait4 rusage of the tool
// (taken by spawn mode, so that the harness's own size does not count).
type measurement struct {
	Wall   time.Duration
	User   time.Duration
	Sys    time.Duration
	MaxRSS int64 // bytes
	// PeakAnon and PeakFile are the largest anonymous and file-backed
	// resident sizes seen while sampling /proc every 10 ms: the file part
	// is mapped page cache (the binary, snap's index cache file).
	PeakAnon, PeakFile int64
}

func (m measurement) cpu() time.Duration { return m.User + m.Sys }

// cmdSpec is one command to run and measure.
type cmdSpec struct {
	name  string
	args  []string
	env   []string // added to the environment
	dir   string
	stdin string // file fed on standard input, if any
	log   string // file receiving stdout and stderr
}

// run executes the command and measures it (through spawn mode: see
// spawn.go). A non-zero exit is an error that quotes the end of the log.
func run(c cmdSpec) (measurement, error) {
	self, err := os.Executable()
	if err != nil {
		return measurement{}, err
	}
	cmd := exec.Command(self, append([]string{spawnArg, c.name}, c.args...)...)
	cmd.Env = append(os.Environ(), c.env...)
	cmd.Dir = c.dir
	if c.stdin != "" {
		f, err := os.Open(c.stdin)
		if err != nil {
			return measurement{}, err
		}
		defer f.Close()
		cmd.Stdin = f
	}
	var out io.Writer = io.Discard
	if c.log != "" {
		if err := os.MkdirAll(filepath.Dir(c.log), 0o755); err != nil {
			return measurement{}, err
		}
		f, err := os.OpenFile(c.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return measurement{}, err
		}
		defer f.Close()
		fmt.Fprintf(f, "$ %s %q\n", c.name, c.args)
		out = f
	}
	cmd.Stdout, cmd.Stderr = out, out
	rd, wr, err := os.Pipe()
	if err != nil {
		return measurement{}, err
	}
	defer rd.Close()
	cmd.ExtraFiles = []*os.File{wr} // file descriptor 3 of the spawner
	// Write back what the previous run (or the dataset's making) left
	// dirty, so that its writeback does not run, on the same two cores,
	// during this one (ds1's creates took 1.3 to 3.1 s, with the same CPU
	// time, when they followed the writing of dataset 2).
	syscall.Sync()
	if err := cmd.Start(); err != nil {
		wr.Close()
		return measurement{}, fmt.Errorf("%s: %w", c.name, err)
	}
	wr.Close()
	pids := make(chan int, 1)
	var reported measurement
	var reportErr error
	reportDone := make(chan struct{})
	go func() {
		defer close(reportDone)
		reported, reportErr = spawnReport(rd, pids)
	}()
	// Sample the tool's resident set every 10 ms while it runs.
	var peakAnon, peakFile int64
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		pid, ok := <-pids
		if !ok {
			return
		}
		status := fmt.Sprintf("/proc/%d/status", pid)
		for {
			select {
			case <-reportDone:
				return
			case <-time.After(10 * time.Millisecond):
			}
			anon, file := rssSample(status)
			peakAnon, peakFile = max(peakAnon, anon), max(peakFile, file)
		}
	}()
	err = cmd.Wait()
	<-reportDone
	<-sampled
	m := reported
	m.PeakAnon, m.PeakFile = peakAnon, peakFile
	if err == nil {
		err = reportErr
	}
	if err != nil {
		return m, fmt.Errorf("%s %v: %w%s", filepath.Base(c.name), c.args, err, logTail(c.log))
	}
	return m, nil
}

func logTail(path string) string {
	if path == "" {
		return ""
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	if len(b) > 600 {
		b = b[len(b)-600:]
	}
	return "; log " + path + " ends with: " + string(b)
}

// median returns the run with the median wall time (the lower middle one
// for an even count). The peak RSS reported is the largest of all runs.
func median(ms []measurement) measurement {
	if len(ms) == 0 {
		return measurement{}
	}
	s := append([]measurement(nil), ms...)
	sort.Slice(s, func(i, j int) bool { return s[i].Wall < s[j].Wall })
	m := s[(len(s)-1)/2]
	for _, x := range ms {
		m.MaxRSS = max(m.MaxRSS, x.MaxRSS)
	}
	return m
}

// dirSize is the total size of the regular files below dir.
func dirSize(dir string) int64 {
	var n int64
	_ = filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			n += fi.Size()
		}
		return nil
	})
	return n
}

// rssSample reads RssAnon and RssFile (bytes) from a /proc status file.
func rssSample(path string) (anon, file int64) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		var kb int64
		if _, err := fmt.Sscanf(l, "RssAnon: %d kB", &kb); err == nil {
			anon = kb << 10
		} else if _, err := fmt.Sscanf(l, "RssFile: %d kB", &kb); err == nil {
			file = kb << 10
		}
	}
	return anon, file
}
