package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// Why the tools are not started by the harness itself: on Linux a child's
// ru_maxrss starts at the high-water RSS of the address space it was
// started from. Go starts children with vfork (CLONE_VM), so every child
// of the harness inherits the harness's own peak (about 140 MB once the
// datasets are built) as a floor, and every tool would report at least
// that. The harness therefore starts each tool through a copy of itself in
// spawn mode, a fresh process of a few MB, which starts the tool, waits
// for it and reports its rusage on file descriptor 3.

const spawnArg = "-spawn-measured"

// spawnMain is the spawn mode: args is the tool's command line. It writes
// "pid N" once the tool runs, then "done WALL_NS UTIME_NS STIME_NS
// MAXRSS_KB", and exits with the tool's exit code.
func spawnMain(args []string) int {
	report := os.NewFile(3, "report")
	if len(args) == 0 || report == nil {
		fmt.Fprintln(os.Stderr, "snap-bench: spawn mode needs a command and file descriptor 3")
		return 2
	}
	// The tool must not inherit the report pipe: a process it leaves
	// behind would hold it open, and the harness would wait for that.
	syscall.CloseOnExec(3)
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(os.Stderr, "snap-bench: %v\n", err)
		return 127
	}
	fmt.Fprintf(report, "pid %d\n", cmd.Process.Pid)
	err := cmd.Wait()
	wall := time.Since(start)
	var ru syscall.Rusage
	if r, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		ru = *r
	}
	fmt.Fprintf(report, "done %d %d %d %d\n", wall.Nanoseconds(), ru.Utime.Nano(), ru.Stime.Nano(), ru.Maxrss)
	report.Close()
	if ee := (*exec.ExitError)(nil); errors.As(err, &ee) {
		if code := ee.ExitCode(); code >= 0 {
			return code
		}
		return 128 // killed by a signal
	}
	return 0
}

// spawnReport reads what spawn mode writes: the tool's pid (sent on pid as
// soon as it is known; closed at the end), then its measurement.
func spawnReport(r *os.File, pid chan<- int) (measurement, error) {
	defer close(pid)
	var m measurement
	sc := bufio.NewScanner(r)
	var got bool
	for sc.Scan() {
		var p int
		var wall, user, sys, rssKB int64
		if _, err := fmt.Sscanf(sc.Text(), "pid %d", &p); err == nil {
			pid <- p
		} else if _, err := fmt.Sscanf(sc.Text(), "done %d %d %d %d", &wall, &user, &sys, &rssKB); err == nil {
			m.Wall, m.User, m.Sys, m.MaxRSS = time.Duration(wall), time.Duration(user), time.Duration(sys), rssKB<<10
			got = true
		}
	}
	if !got {
		return m, errors.New("the spawned tool reported no measurement")
	}
	return m, nil
}
