package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/zeebo/blake3"
)

// lockJob keeps two runs of one job from overlapping: a run started by
// hand while the timer's is still going would run its pre hooks (stopping
// the application again), and the first run's post hooks would start the
// application while the second still reads it, saving an inconsistent
// snapshot. The repository's lock does not see this (creates share it).
//
// The lock is an flock(2) on a file in the cache directory, named by the
// job and the config file, so the kernel drops it when the process ends,
// however it ends (kill -9 included): no stale job locks. The file keeps
// the holder's process ID and start time, for the message of the run
// that finds it taken. It is never removed: removing a lock file lets a
// third run lock a new file while the second holds the old one.
func lockJob(e *env, cacheDir, configPath, job string) (release func(), err error) {
	base, err := cacheBase(e, cacheDir)
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(base, "jobs")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("job lock: %w", err)
	}
	sum := blake3.Sum256([]byte(configPath + "\x00" + job))
	path := filepath.Join(dir, fmt.Sprintf("%s-%x.lock", jobFileName(job), sum[:6]))
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("job lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		holder := make([]byte, 200)
		n, _ := f.ReadAt(holder, 0)
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			by := strings.TrimSpace(string(holder[:n]))
			if by == "" {
				by = "another snap process"
			}
			return nil, &codedError{code: exitLocked, msg: fmt.Sprintf("job %s is already running (%s; lock %s): this run did not start it, nor its hooks; "+
				"wait for that run to end, or stop it", job, by, path)}
		}
		return nil, fmt.Errorf("job lock %s: %w", path, err)
	}
	// Who holds it, for the message above; the lock works without it.
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt(fmt.Appendf(nil, "pid %d, started %s", os.Getpid(), time.Now().Format("2006-01-02 15:04:05")), 0)
	}
	return func() { f.Close() }, nil
}

// jobFileName is a job's name as part of a file name: names the config
// accepts are safe (jobNameRE); any other byte becomes '_'.
func jobFileName(job string) string {
	return strings.Map(func(r rune) rune {
		if r == '-' || r == '_' || r == '.' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' {
			return r
		}
		return '_'
	}, job)
}
