package main

import (
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/zeebo/blake3"

	"github.com/snap-backup/snap/sources/safepath"
)

// jobFileName names the files of one job of one config file on this host
// (its lock, its check rotation): the job's name and a hash of the host,
// the config file's path (symlinks resolved) and the job. The host is in
// it: a home directory shared over NFS by several machines must not make
// one machine's run of a job wait for another's.
func jobFileName(configPath, job string) string {
	if p, err := filepath.EvalSymlinks(configPath); err == nil {
		configPath = p // one file reached by two paths is one config
	}
	host, _ := os.Hostname()
	sum := blake3.Sum256([]byte(host + "\x00" + configPath + "\x00" + job))
	// The job's name is one the config accepts (jobNameRE: a job with
	// errors does not run), safe in a file name.
	return fmt.Sprintf("%s-%x", job, sum[:6])
}

// lockJob keeps two runs of one job from overlapping: a run started by
// hand while the timer's is still going would run its pre hooks (stopping
// the application again), and the first run's post hooks would start the
// application while the second still reads it, saving an inconsistent
// snapshot. The repository's lock does not see this (creates share it).
//
// The lock is an flock(2) on a file named by the job and the config file
// (symlinks resolved), in a directory of the user's (jobLockDirs) that
// does not change with --cache-dir or the environment, else in the cache
// directory. The kernel drops it when the process ends, however it ends
// (kill -9 included): no stale job locks. The file keeps
// the holder's process ID and start time, for the message of the run
// that finds it taken. It is never removed: removing a lock file lets a
// third run lock a new file while the second holds the old one.
//
// Where no lock file can be made (a cache on a read-only disk, or another
// user's: cases the index cache gets past with a temporary one), the job
// runs unlocked, with a warning: a backup must not stop for want of its
// lock.
func lockJob(e *env, u *ui, cacheDir, configPath, job string) (release func(), err error) {
	name := jobFileName(configPath, job) + ".lock"
	uid := os.Geteuid()
	dirs := jobLockDirs(uid, e.getenv, passwdHome)
	if base, err := cacheBase(e, cacheDir); err == nil {
		dirs = append(dirs, filepath.Join(base, "jobs"))
	}
	var f *os.File
	var path string
	var failed []string
	for _, dir := range dirs {
		path = filepath.Join(dir, name)
		if err = os.MkdirAll(dir, 0o700); err == nil {
			// O_NOFOLLOW: the file is truncated, maybe by root.
			f, err = os.OpenFile(path, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW, 0o600)
		}
		if err == nil {
			break
		}
		failed = append(failed, err.Error())
	}
	if f == nil {
		u.warnf("job %s: no lock against a second run of it at the same time: %s", job, noJobLockReason(uid, failed))
		return func() {}, nil
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		holder := make([]byte, 200)
		n, _ := f.ReadAt(holder, 0)
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			by := escapeControls(strings.TrimSpace(string(holder[:n])))
			if by == "" {
				by = "another snap process"
			}
			return nil, &codedError{code: exitLocked, msg: fmt.Sprintf("job %s is already running (%s; lock %s): this run did not start it, nor its hooks; "+
				"wait for that run to end, or stop it", job, by, path)}
		}
		// A file system without flock (ENOLCK): as for a lock file that
		// cannot be made.
		u.warnf("job %s: no lock against a second run of it at the same time (lock %s: %v)", job, path, err)
		return func() {}, nil
	}
	// Who holds it, for the message above; the lock works without it.
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt(fmt.Appendf(nil, "pid %d, started %s", os.Getpid(), time.Now().Format("2006-01-02 15:04:05")), 0)
	}
	return func() { f.Close() }, nil
}

// noJobLockReason says why no job lock could be made, given the errors of
// the places tried (none: this user has no place for one, as the account
// nobody, without a home directory, a login session or HOME), and the
// fix. The cache directory comes last in those places, and is the one a
// user can always choose.
func noJobLockReason(uid int, failed []string) string {
	fix := "set cache_dir in the config, SNAP_CACHE_DIR or --cache-dir to a directory this user may write"
	if uid == 0 {
		fix = "run it where root may write /run/snap, or " + fix
	}
	if len(failed) == 0 {
		return fmt.Sprintf("this user has no directory to keep one in (no home directory of its own, no /run/user/%d, "+
			"no XDG_RUNTIME_DIR, and no cache directory: neither XDG_CACHE_HOME nor HOME is set); %s", uid, fix)
	}
	return fmt.Sprintf("%s; %s", strings.Join(failed, "; "), fix)
}

// jobLockDirs are the directories for this user's job locks, best first,
// each the same for a timer's run and one by hand (the cache directory,
// which --cache-dir and the environment change, comes after them):
// /run/snap/jobs for root (no other user can plant anything in /run);
// else ~/.cache/snap/jobs in the home directory the password database
// gives (not $HOME), when that is this user's: it is there whether or not
// the user has a login session; else /run/user/UID/snap/jobs when that
// directory is this user's (logind makes it for a session only: a cron run
// and a run by hand over SSH would lock in different places, and two runs
// of one job that did not see each other ran their hooks interleaved;
// found by an exploratory test and a review); else
// $XDG_RUNTIME_DIR/snap/jobs.
func jobLockDirs(uid int, getenv func(string) string, home func() string) []string {
	if uid == 0 {
		return []string{"/run/snap/jobs"}
	}
	var dirs []string
	if h := home(); filepath.IsAbs(h) && ownedPrivately(h, uid) {
		dirs = append(dirs, filepath.Join(h, ".cache", "snap", "jobs"))
	}
	if run := fmt.Sprintf("/run/user/%d", uid); ownedPrivately(run, uid) {
		dirs = append(dirs, filepath.Join(run, "snap", "jobs"))
	}
	if rt := xdgDir(getenv, "XDG_RUNTIME_DIR"); rt != "" {
		dirs = append(dirs, filepath.Join(rt, "snap", "jobs"))
	}
	return dirs
}

// ownedPrivately reports whether dir is a directory of uid's that no other
// user may write to (group write for uid's private group alone counts as
// uid's, as everywhere: safepath.OthersMayWrite).
func ownedPrivately(dir string, uid int) bool {
	fi, err := os.Stat(dir)
	if err != nil || !fi.IsDir() {
		return false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && int(st.Uid) == uid && !safepath.OthersMayWrite(fi, dir)
}

// passwdHome is the user's home directory as the password database names
// it, "" when it cannot be told.
func passwdHome() string {
	u, err := user.Current()
	if err != nil {
		return ""
	}
	return u.HomeDir
}
