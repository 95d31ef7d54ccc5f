package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/snap-backup/snap/snapshot"
	"github.com/snap-backup/snap/sources/safepath"
)

// Metrics for Prometheus's node exporter (its textfile collector reads
// every *.prom file of one directory): 'snap run' writes one file per job,
// snap-JOB.prom, after the job, so that each job's timer rewrites its own
// file and never another job's. docs/usage.md lists the metrics.

// metricsFile is where the job's metrics go in dir.
func metricsFile(dir, job string) string { return filepath.Join(dir, "snap-"+job+".prom") }

// lastSuccessMetric is the one value carried over from the job's previous
// file: the time of its last successful run, which a failed run must not
// forget (an alert on its age is what catches a job failing night after
// night).
const lastSuccessMetric = "snap_job_last_success_timestamp_seconds"

// writeJobMetrics writes the metrics of one job's run, atomically (a
// collector never reads half a file): to a temporary file in dir, synced,
// then renamed over the job's file. sn is the snapshot the run saved, or
// nil.
func writeJobMetrics(dir, setting string, res jobResult, sn *snapshot.Snapshot, end time.Time) error {
	path := metricsFile(dir, res.Job)
	// The directory may be another user's (node_exporter's, in its home
	// /var/lib/prometheus), but no link of another user's on the way to it
	// is followed (a red-team test's link in a user's directory, given in
	// that user's SNAP_METRICS_DIR, had root write into /etc/cron.d), and
	// the file is written in the directory opened, by its descriptor:
	// whatever its path names by then.
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	real, _, err := safepath.Resolve(abs)
	if err != nil {
		return fmt.Errorf("metrics directory %s: %w (change %s)", dir, err, setting)
	}
	d, err := openDirNoLinks(real)
	if err != nil {
		if fi, serr := os.Stat(dir); serr != nil {
			return fmt.Errorf("metrics directory %s does not exist: create it, or change %s", dir, setting)
		} else if !fi.IsDir() {
			return fmt.Errorf("metrics directory %s is a file, not a directory: move it away and create the directory, or change %s", dir, setting)
		}
		return fmt.Errorf("metrics directory %s: %w", dir, unwrapOS(err))
	}
	defer d.Close()
	lastSuccess := previousMetric(d, filepath.Base(path), lastSuccessMetric)
	// A snapshot without some unreadable files is a success; one with a
	// backed-up directory emptied is not: an alert on the last success
	// must fire while a disk stays unmounted.
	ok := res.Status == statusOK || res.Status == statusPartial && !res.Emptied
	if ok {
		lastSuccess = float64(end.UnixMilli()) / 1000
	}
	var b bytes.Buffer
	// Not "job": Prometheus sets that label to the scrape job (node
	// exporter's) and renames a "job" of the file to "exported_job". Job
	// names are [A-Za-z0-9_.-]: nothing to escape.
	label := fmt.Sprintf("{snap_job=%q}", res.Job)
	metric := func(name, help string, v float64) {
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s gauge\n%s%s %s\n", name, help, name, name, label, strconv.FormatFloat(v, 'f', -1, 64))
	}
	success := 0.0
	if ok {
		success = 1
	}
	metric("snap_job_success", "1 when the job's last run succeeded (a snapshot without some unreadable files counts; one with a backed-up directory emptied does not), else 0.", success)
	metric("snap_job_exit_code", "Exit code of the job's last run (docs/usage.md, Exit codes).", float64(res.ExitCode))
	metric("snap_job_last_run_timestamp_seconds", "When the job's last run ended, in seconds since the epoch.", float64(end.UnixMilli())/1000)
	metric(lastSuccessMetric, "When the job last ran successfully, in seconds since the epoch (0: never).", lastSuccess)
	metric("snap_job_duration_seconds", "How long the job's last run took.", res.DurationSeconds)
	if sn != nil {
		metric("snap_job_snapshot_timestamp_seconds", "Time of the snapshot the last run saved.", float64(sn.Time.UnixMilli())/1000)
		metric("snap_job_snapshot_files", "Files in the snapshot the last run saved.", float64(sn.Summary.Files))
		metric("snap_job_snapshot_bytes", "Size of the files in the snapshot the last run saved.", float64(sn.Summary.Bytes))
		metric("snap_job_added_bytes", "Bytes the last run added to the repository, after compression.", float64(sn.Summary.AddedBytes))
		metric("snap_job_unreadable_files", "Files the last run could not read and left out of its snapshot.", float64(sn.Summary.Errors))
	}
	if err := writeFileAtomicIn(d, filepath.Base(path), b.Bytes(), 0o644); err != nil {
		return fmt.Errorf("%s: %w", path, unwrapOS(err))
	}
	return nil
}

// previousMetric reads one metric's value from a file written by
// writeJobMetrics (0 when there is none).
func previousMetric(dir *os.File, file, name string) float64 {
	// Not through a link, not a FIFO (it hung a red-team test's run):
	// only a file of the directory's.
	fd, err := unix.Openat(int(dir.Fd()), file, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0
	}
	f := os.NewFile(uintptr(fd), file)
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return 0
	}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, name+"{"); ok {
			if _, val, ok := strings.Cut(rest, "} "); ok {
				if v, err := strconv.ParseFloat(val, 64); err == nil {
					return v
				}
			}
		}
	}
	return 0
}
