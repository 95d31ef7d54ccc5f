package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/snap-backup/snap/index"
	"github.com/snap-backup/snap/repo"
	"github.com/snap-backup/snap/snapshot"
	"github.com/snap-backup/snap/sources"
)

func runCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:      "run",
		Usage:     "run jobs of the config file: create, forget, prune, check",
		ArgsUsage: "[JOB]...",
		Description: "Runs the named jobs (all jobs when none is named) one after the other. For each job: create a\n" +
			"snapshot of its sources; then, when it has a keep policy, forget the job's snapshots the policy\n" +
			"does not keep; then prune when keep.prune is set; then check when check is set. A step that fails\n" +
			"ends its job (a failed create never leads to a forget; a post hook failing after the snapshot\n" +
			"was saved fails the job but not its later steps) and snap goes on with the next job.\n" +
			"The exit code is 0 when every job succeeded, 3 when snapshots were saved without some\n" +
			"unreadable files, otherwise the code of the failed job (1 when several failed differently).\n" +
			"With --metrics-dir (or the config's metrics_dir), each job's outcome is written as Prometheus\n" +
			"metrics to DIR/snap-JOB.prom, for node_exporter's textfile collector.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "metrics-dir", Usage: "write each job's metrics for Prometheus (node_exporter textfile collector) to `DIR`/snap-JOB.prom (env SNAP_METRICS_DIR)", EnvVars: []string{"SNAP_METRICS_DIR"}},
		},
		Action: func(c *cli.Context) error {
			cfg, problems, err := openConfig(c, e)
			broken := map[string]Problem{}
			if err != nil {
				// Errors inside some jobs fail those jobs only; one in
				// the file's own keys (or its syntax) fails the run.
				byJob, whole := jobErrors(problems)
				if cfg == nil || whole || len(byJob) == 0 {
					if cfg != nil {
						configFailedMetrics(c, e, cfg, err)
					}
					return err
				}
				broken = byJob
			}
			jobs, err := selectJobs(cfg, c.Args().Slice(), broken)
			if err != nil {
				return err
			}
			for _, name := range slices.Sorted(maps.Keys(broken)) {
				if !hasJob(jobs, name) {
					newUI(c, e).warnf("the config has errors in job %s, which this run leaves out (see 'snap config check')", escapeControls(name))
				}
			}
			return runJobs(c, e, cfg, jobs, broken)
		},
	}
}

// hasJob reports whether jobs holds the job named key (jobKey).
func hasJob(jobs []*Job, key string) bool {
	return slices.ContainsFunc(jobs, func(j *Job) bool { return jobKey(j.Name) == key })
}

// selectJobs returns the named jobs, or all of them. A job with errors
// (broken) that the config could not make a Job of at all is one by its
// name alone, so that it is reported as failed, not left out.
func selectJobs(cfg *Config, names []string, broken map[string]Problem) ([]*Job, error) {
	all := cfg.Jobs
	for _, name := range slices.Sorted(maps.Keys(broken)) {
		if !hasJob(all, name) {
			all = append(all, &Job{Name: name})
		}
	}
	if len(all) == 0 {
		return nil, usagef("%s has no jobs: add a [jobs.NAME] table", cfg.Path)
	}
	if len(names) == 0 {
		return all, nil
	}
	var out []*Job
	for _, n := range names {
		var found *Job
		for _, j := range all {
			if j.Name == n {
				found = j
			}
		}
		if found == nil {
			var known []string
			for _, j := range all {
				known = append(known, j.Name)
			}
			return nil, usagef("no job %q in %s (jobs: %s)", n, cfg.Path, strings.Join(known, ", "))
		}
		if !slices.Contains(out, found) { // a job named twice runs once
			out = append(out, found)
		}
	}
	return out, nil
}

// Job and step outcomes, as the JSON output spells them.
const (
	statusOK          = "ok"
	statusPartial     = "partial" // saved, but some files were unreadable
	statusFailed      = "failed"
	statusSkipped     = "skipped" // an earlier step failed
	statusInterrupted = "interrupted"
)

// stepResult is the documented JSON form of one step of a job.
type stepResult struct {
	Step            string  `json:"step"`
	Status          string  `json:"status"`
	Error           string  `json:"error,omitempty"`
	DurationSeconds float64 `json:"duration_seconds"`
}

// jobResult is the documented JSON form of one job of a run.
type jobResult struct {
	Type            string       `json:"type"`
	Job             string       `json:"job"`
	Status          string       `json:"status"`
	ExitCode        int          `json:"exit_code"`
	Error           string       `json:"error,omitempty"`
	SnapshotID      string       `json:"snapshot_id,omitempty"`
	Steps           []stepResult `json:"steps"`
	DurationSeconds float64      `json:"duration_seconds"`
	// Emptied: the create found a backed-up directory empty that held
	// entries (a disk not mounted?): status "partial" as for unreadable
	// files, but no success for the metrics, and retention waited.
	Emptied bool `json:"emptied,omitempty"`

	err      error
	snapshot *snapshot.Snapshot // saved by the create step, for the metrics
	// overlapped: refused because a run of the job is still going, which
	// owns the job's metrics file: a manual run during the nightly one
	// had set its success to 0 while it went on well (found by an
	// exploratory test).
	overlapped bool
}

// runSummaryJSON is the final line of 'run --json'.
type runSummaryJSON struct {
	Type            string      `json:"type"`
	Action          string      `json:"action"`
	Jobs            []jobResult `json:"jobs"`
	Succeeded       int         `json:"succeeded"`
	Failed          int         `json:"failed"`
	Skipped         int         `json:"skipped"` // not started: the run was interrupted before them
	ExitCode        int         `json:"exit_code"`
	DurationSeconds float64     `json:"duration_seconds"`
}

// runJobs runs jobs in order; a failed job does not stop the others, an
// interrupt does.
func runJobs(c *cli.Context, e *env, cfg *Config, jobs []*Job, broken map[string]Problem) error {
	ctx := c.Context
	// Every job's settings take these flags (Config.settings): a mistake
	// in them stops the run before its first job.
	if _, err := connectionsFlag(c, e); err != nil {
		return err
	}
	if _, _, err := rateFlags(c, e); err != nil {
		return err
	}
	u := newUI(c, e)
	start := time.Now()
	// The flag, else the config's metrics_dir, else SNAP_METRICS_DIR: as
	// for the repository and the password, a variable left in the
	// environment does not move what the config names (it sent the
	// metrics away from node_exporter; found by an exploratory test).
	// metricsFrom: which setting named it, for the fix of a directory
	// that is missing.
	metricsDir, metricsFrom := metricsDirOf(c, e, cfg)
	var results []jobResult
	for i, j := range jobs {
		if ctx.Err() != nil {
			for _, rest := range jobs[i:] {
				results = append(results, jobResult{Type: "job", Job: rest.Name, Status: statusSkipped, ExitCode: exitInterrupted, Steps: []stepResult{},
					Error: "not started: interrupted", err: errInterrupted})
			}
			break
		}
		if p, bad := broken[jobKey(j.Name)]; bad {
			r := brokenJob(u, j.Name, p)
			results = append(results, r)
			// A name the config refused ("a b", "x/../../y") names no
			// metrics file.
			if metricsDir != "" && jobNameRE.MatchString(j.Name) {
				writeMetricsOrWarn(u, metricsDir, metricsFrom, r, nil)
			}
			continue
		}
		st := cfg.jobSettings(c, e, u, j)
		r := runJob(ctx, e, u, st, cfg.Path, j)
		results = append(results, r)
		if metricsDir != "" && metricsFrom != "--metrics-dir" && j.Repository != "" && st.location != j.Repository {
			// A run into another repository (--repo) is not the job's:
			// its success said the job's backup was fresh (found by an
			// exploratory test).
			u.warnf("job %s: metrics not written: this run went to another repository than the job's (--repo); give --metrics-dir to write them", j.Name)
			continue
		}
		if metricsDir != "" && !r.overlapped {
			// The backup is done whatever becomes of its metrics; a file
			// left stale shows up as an old last run.
			writeMetricsOrWarn(u, metricsDir, metricsFrom, r, r.snapshot)
		}
	}
	u.fields = nil
	sum := runSummaryJSON{Type: "summary", Action: "run", Jobs: results, DurationSeconds: round2(time.Since(start).Seconds())}
	for _, r := range results {
		switch r.Status {
		case statusOK, statusPartial:
			// Emptied counts as a failure, as in the metrics and the
			// exit code (the summary said "2 of 2 jobs succeeded" for
			// a run that exits 3; found by an exploratory test).
			if r.Emptied {
				sum.Failed++
			} else {
				sum.Succeeded++
			}
		case statusSkipped:
			sum.Skipped++
		default:
			sum.Failed++
		}
	}
	err := runError(results)
	sum.ExitCode = exitCode(err)
	if u.json {
		u.jsonLine(sum)
	} else if len(results) > 1 {
		u.printf("%d of %d jobs succeeded in %s", sum.Succeeded, len(results), time.Since(start).Round(time.Millisecond))
	}
	return err
}

// metricsDirOf is where a run writes the jobs' metrics ("" for nowhere),
// and which setting named it, for the fix of a directory that is missing.
func metricsDirOf(c *cli.Context, e *env, cfg *Config) (dir, from string) {
	dir, from = c.String("metrics-dir"), "SNAP_METRICS_DIR"
	switch {
	case e.flagGiven("--metrics-dir"):
		from = "--metrics-dir"
	case cfg.MetricsDir != "":
		dir, from = cfg.resolveRelative(cfg.MetricsDir), "metrics_dir in "+cfg.Path
	}
	return dir, from
}

// configFailedMetrics writes, for a run that an error in the config file's
// own keys stopped before any job, a failed run (exit 2) into the metrics
// of each job it was asked to run: they kept saying the last run had
// succeeded, and only the alert on the last success's age fired, a day
// later (found by an exploratory test). Nothing when the config names no
// metrics directory (or the jobs asked are not in it).
func configFailedMetrics(c *cli.Context, e *env, cfg *Config, cause error) {
	dir, from := metricsDirOf(c, e, cfg)
	if dir == "" {
		return
	}
	jobs, err := selectJobs(cfg, c.Args().Slice(), nil)
	if err != nil {
		return
	}
	u := newUI(c, e)
	msg := fmt.Sprintf("the config has errors outside the jobs, and no job ran: %v", cause)
	for _, j := range jobs {
		if jobNameRE.MatchString(j.Name) {
			writeMetricsOrWarn(u, dir, from, jobResult{Type: "job", Job: j.Name, Status: statusFailed, ExitCode: exitUsage, Steps: []stepResult{}, Error: msg}, nil)
		}
	}
}

// writeMetricsOrWarn writes the metrics of a job's run (writeJobMetrics),
// and warns when they cannot be written: the run's outcome stands.
func writeMetricsOrWarn(u *ui, dir, from string, r jobResult, sn *snapshot.Snapshot) {
	if err := writeJobMetrics(dir, from, r, sn, time.Now()); err != nil {
		u.warnf("job %s: metrics not written: %v", r.Job, err)
	}
}

// brokenJob is the result of a job the config file has errors in: it does
// not run, and fails with exit 2 and its first error.
func brokenJob(u *ui, name string, p Problem) jobResult {
	name = escapeControls(jobKey(name)) // a name the config refused may hold anything
	err := usagef("the config has errors in this job, the first: %s (see 'snap config check'); the job did not run", p)
	r := jobResult{Type: "job", Job: name, Status: statusFailed, ExitCode: exitUsage, Steps: []stepResult{}, Error: err.Error(), err: err}
	// The result names the job itself: no "job" field in front of it
	// (u.fields), which wrote the key twice.
	if u.json {
		// Every job's lines begin with job_start, this one's too, with no
		// step to run (a monitor that pairs them missed one; found by an
		// exploratory test).
		u.jsonLine(map[string]any{"type": "job_start", "job": name, "steps": []string{}})
		u.jsonLine(r)
	} else {
		u.errorf("job %s %s: %s", name, r.Status, r.Error)
	}
	return r
}

// runError combines the jobs' outcomes into the run's error and so its exit
// code: interrupted wins, then failures (their own code when they agree,
// else 1), then unreadable files (3).
func runError(results []jobResult) error {
	var failed []jobResult
	partial, emptied := 0, 0
	for _, r := range results {
		switch r.Status {
		case statusOK:
		case statusPartial:
			partial++
			if r.Emptied {
				emptied++
			}
		default:
			failed = append(failed, r)
		}
	}
	for _, r := range failed {
		if r.ExitCode == exitInterrupted {
			// Name the job that was running: the last one that ran. The
			// jobs after it are skipped with the same exit code.
			stopped := r.Job
			for _, ran := range results {
				if ran.Status != statusSkipped {
					stopped = ran.Job
				}
			}
			return fmt.Errorf("%w: job %s stopped; the repository is consistent", errInterrupted, stopped)
		}
	}
	if len(failed) > 0 {
		var names []string
		code := failed[0].ExitCode
		for _, r := range failed {
			names = append(names, fmt.Sprintf("%s: %s", r.Job, r.Error))
			if r.ExitCode != code {
				code = exitFatal
			}
		}
		if len(failed) == 1 {
			// Keep the failure's own kind (locked, wrong password, …) for
			// the exit code.
			return fmt.Errorf("1 of %s failed: %s: %w", plural(len(results), "job", "jobs"), failed[0].Job, failed[0].err)
		}
		return &codedError{msg: fmt.Sprintf("%d of %d jobs failed: %s", len(failed), len(results), strings.Join(names, "; ")), code: code}
	}
	switch {
	case emptied == partial && emptied > 0:
		return &partialError{msg: fmt.Sprintf("%s found a source that held data empty or unreadable (listed above): is a disk not mounted? Their forget and prune waited", plural(emptied, "job", "jobs"))}
	case emptied > 0:
		return &partialError{msg: fmt.Sprintf("%s saved snapshots without some unreadable files, with a dump saved as it came, or with a source that held data empty or unreadable (listed above)", plural(partial, "job", "jobs"))}
	case partial > 0:
		return &partialError{msg: fmt.Sprintf("%s saved snapshots without some unreadable files, or with a dump saved as it came (listed above)", plural(partial, "job", "jobs"))}
	}
	return nil
}

// codedError carries an exit code decided by the command itself.
type codedError struct {
	msg  string
	code int
}

func (e *codedError) Error() string { return e.msg }

// jobTimeoutError is the cause of a job's context when its timeout (the
// job's timeout key) ends it, and then the job's error (exit 1).
type jobTimeoutError struct {
	job     string
	timeout time.Duration
	// waitedFor is what the job was waiting for when it was stopped
	// (the password command), when the step said so (timedOut).
	waitedFor string
}

func (e *jobTimeoutError) Error() string {
	waiting := ""
	if e.waitedFor != "" {
		waiting = " waiting for " + e.waitedFor
	}
	return fmt.Sprintf("did not finish within %s (the job's timeout) and was stopped%s; the repository is consistent; "+
		"raise timeout in [jobs.%s] if the job needs longer", e.timeout, waiting, e.job)
}

// timedOut returns the job's timeout error (naming what the job was
// waiting for, when err says) in place of err, when the job's timeout
// (ctx) is what stopped the work that returned err ("interrupted",
// "context deadline exceeded"); else err.
func timedOut(ctx context.Context, err error) error {
	te := stoppedByTimeout(ctx)
	if te == nil || !stoppedError(err) {
		return err
	}
	var sw *stoppedWaiting
	if errors.As(err, &sw) {
		named := *te
		named.waitedFor = sw.waitedFor
		return &named
	}
	return te
}

// stoppedError reports whether err is what a cancelled context makes of
// work in progress (and not a failure of its own that happened first: an
// unreadable file, a post hook that failed, damage check found).
func stoppedError(err error) bool {
	var te *jobTimeoutError
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, errInterrupted) || errors.As(err, &te)
}

// stoppedByTimeout returns the job's timeout error when that is what
// ended ctx, else nil.
func stoppedByTimeout(ctx context.Context) *jobTimeoutError {
	var te *jobTimeoutError
	if errors.As(context.Cause(ctx), &te) {
		return te
	}
	return nil
}

// runJob runs one job's steps on its repository. configPath names the
// config file, for the job's lock (lockJob).
func runJob(ctx context.Context, e *env, u *ui, st repoSettings, configPath string, j *Job) (res jobResult) {
	start := time.Now()
	res = jobResult{Type: "job", Job: j.Name, Status: statusOK, Steps: []stepResult{}}
	steps := jobSteps(j)
	u.fields = map[string]any{"job": j.Name}
	if u.json {
		u.jsonLine(map[string]any{"type": "job_start", "steps": steps})
	} else {
		u.printf("== job %s: %s", j.Name, strings.Join(steps, ", "))
	}
	defer func() {
		res.DurationSeconds = round2(time.Since(start).Seconds())
		u.fields = nil
		if u.json {
			u.jsonLine(res)
		} else if res.Status == statusOK || res.Status == statusPartial {
			u.printf("== job %s: %s in %s", j.Name, res.Status, time.Since(start).Round(time.Millisecond))
		} else {
			u.errorf("job %s %s: %s", j.Name, res.Status, res.Error)
		}
	}()
	if j.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, j.Timeout, &jobTimeoutError{job: j.Name, timeout: j.Timeout})
		defer cancel()
	}
	fail := func(step string, err error) {
		res.err = err
		res.ExitCode = exitCode(err)
		res.Error = singleLine(err.Error())
		res.Status = statusFailed
		if res.ExitCode == exitInterrupted {
			res.Status = statusInterrupted
		}
		if step != "" {
			res.Steps = append(res.Steps, stepResult{Step: step, Status: res.Status, Error: res.Error})
		}
	}

	// The finally commands run last, before the job's result is printed
	// (the defer above), told the job's outcome; one that fails fails a
	// job that had not failed (as a post hook does). A run that found
	// the job still running elsewhere is that run's to report, as its
	// metrics are.
	defer func() {
		if len(j.Finally) == 0 || res.overlapped {
			return
		}
		u.fields = map[string]any{"job": j.Name, "step": "finally"}
		h := newHooks(nil, nil, j.HookTimeout, st, e.getenv, j.host(), j.Tags, j.Name)
		err := h.runFinally(ctx, u, j.Finally, res.ExitCode, res.SnapshotID, res.Error)
		if err != nil && (res.Status == statusOK || res.Status == statusPartial) {
			fail("", err)
		}
	}()

	// Opening the repository is the first step's work: its failure (and
	// what the post hooks print about it) belongs to that step, and the
	// steps after it are skipped, as after any failed step.
	u.fields = map[string]any{"job": j.Name, "step": steps[0]}
	failFirst := func(err error) jobResult {
		fail(steps[0], timedOut(ctx, err))
		for _, step := range steps[1:] {
			res.Steps = append(res.Steps, stepResult{Step: step, Status: statusSkipped})
		}
		return res
	}
	// A run of this job that is still going owns the application's
	// hooks: neither pre nor post hooks run here.
	release, err := lockJob(e, u, st.cacheDir, configPath, j.Name)
	if err != nil {
		r := failFirst(err)
		var ce *codedError
		r.overlapped = errors.As(err, &ce) && ce.code == exitLocked
		return r
	}
	defer release()
	s, err := openSessionAt(ctx, e, u, st, noLock, "run "+j.Name, &index.Options{})
	if err != nil && ctx.Err() != nil && errors.Is(err, context.Canceled) && !errors.Is(err, errInterrupted) {
		// Ctrl-C while the repository was being opened (waiting for an
		// index cache another run holds): "list index: context canceled"
		// said less (found by an exploratory test).
		err = fmt.Errorf("%w: job %s stopped while opening the repository; nothing was changed", errInterrupted, j.Name)
	}
	if err != nil {
		j.postAfterFailure(ctx, e, u, st, err)
		return failFirst(err)
	}
	defer s.close()

	goOn := false // a failure that does not stop the job's later steps
	// fullDisk: the create failed on a full repository disk. The job's
	// prune still runs: it deletes what earlier runs marked and what the
	// failed create uploaded, which may make room for the next night;
	// with every step after a failed create skipped, a job on a nearly
	// full disk stayed stuck until an admin came (its forget is still
	// skipped: a failed backup must not cost an earlier one).
	fullDisk := false
	var written *packList // the packs the create indexed
	for _, step := range steps {
		if te := stoppedByTimeout(ctx); te != nil {
			// The job's timeout passed before this step (while the
			// create's post hooks ran to their end): the step would be
			// stopped at once, and blamed for the overrun with 0 s.
			if res.Status == statusOK || res.Status == statusPartial {
				fail("", te)
			}
			res.Steps = append(res.Steps, stepResult{Step: step, Status: statusSkipped, Error: fmt.Sprintf("skipped: the job's timeout (%s) had passed", te.timeout)})
			continue
		}
		if res.Status != statusOK && res.Status != statusPartial && !goOn && !(fullDisk && step == "prune") {
			res.Steps = append(res.Steps, stepResult{Step: step, Status: statusSkipped})
			continue
		}
		if res.Emptied && (step == "forget" || step == "prune") {
			// A backed-up directory came back empty that had entries (a
			// disk not mounted?): forgetting by count would drop the last
			// good snapshots for it.
			u.fields = map[string]any{"job": j.Name, "step": step}
			u.warnf("%s skipped: a source that held data came back empty or unreadable (above), and the snapshots before it are kept until a run finds it full again", step)
			res.Steps = append(res.Steps, stepResult{Step: step, Status: statusSkipped, Error: "skipped: a source that held data came back empty or unreadable"})
			continue
		}
		u.fields = map[string]any{"job": j.Name, "step": step}
		t0 := time.Now()
		var err error
		switch step {
		case "create":
			var sn *snapshot.Snapshot
			written = &packList{}
			sn, err = runCreateStep(ctx, e, s, st, j, written.add)
			if sn != nil {
				res.SnapshotID, res.snapshot = sn.ID.String(), sn
			}
			fullDisk = err != nil && sn == nil && repo.DiskFull(err) && !index.CacheFailure(err) && ctx.Err() == nil
		case "forget":
			err = runForgetStep(ctx, e, s, j, res.SnapshotID)
		case "prune":
			var discard []repo.ID
			if fullDisk && written != nil {
				discard = written.all()
			}
			err = runPruneStep(ctx, e, s, j, discard, fullDisk)
		case "check":
			err = runCheckStep(ctx, e, s, j, checkRotationFile(e, st.cacheDir, configPath, j.Name))
		default:
			err = fmt.Errorf("unknown step %s", step)
		}
		err = timedOut(ctx, err)
		if err != nil && ctx.Err() != nil && errors.Is(err, context.Canceled) && !errors.Is(err, errInterrupted) {
			// Ctrl-C or SIGTERM inside a step's own work (its lock, a
			// listing): "write lock: context canceled" says less.
			err = fmt.Errorf("%w: %s stopped; the repository is consistent", errInterrupted, step)
		}
		sr := stepResult{Step: step, Status: statusOK, DurationSeconds: round2(time.Since(t0).Seconds())}
		var pe *partialError
		var phe *postHookError
		var skip *stepSkipped
		switch {
		case err == nil:
		case errors.As(err, &skip):
			// Not run, and no failure: the job's status stays.
			u.printf("%s", skip.msg)
			sr.Status, sr.Error = statusSkipped, skip.msg
		case errors.As(err, &phe) && res.Status != statusFailed:
			// The snapshot was saved; only a post hook failed (a
			// monitoring ping, say). The job fails, but its retention
			// and checks still run: they must not stop for as long as
			// the ping's server is down.
			fail("", err)
			sr.Status, sr.Error = res.Status, singleLine(err.Error())
			res.Emptied = res.Emptied || errors.As(err, &pe) && pe.emptied
			goOn = true
		case errors.As(err, &pe):
			sr.Status, sr.Error = statusPartial, singleLine(err.Error())
			res.Status, res.ExitCode = statusPartial, exitPartial
			res.Emptied = res.Emptied || pe.emptied
			u.warnf("%s", err)
		default:
			if !strings.HasPrefix(err.Error(), step+": ") { // create's errors name it already
				err = fmt.Errorf("%s: %w", step, err)
			}
			if fullDisk && res.Status == statusFailed {
				// The prune after a create that found the disk full:
				// the job's error stays the create's.
				u.warnf("%s", err)
				sr.Status, sr.Error = statusFailed, singleLine(err.Error())
				break
			}
			fail("", err)
			sr.Status, sr.Error = res.Status, singleLine(err.Error())
			goOn = false
		}
		res.Steps = append(res.Steps, sr)
	}
	return res
}

// stepSkipped is a step that did not run, and need not have: the job
// does not fail for it (the step's status is skipped, with msg).
type stepSkipped struct{ msg string }

func (e *stepSkipped) Error() string { return e.msg }

// jobSteps lists what 'run' does for a job, in order.
func jobSteps(j *Job) []string {
	steps := []string{"create"}
	if j.Keep.Any() {
		steps = append(steps, "forget")
		if j.Keep.Prune {
			steps = append(steps, "prune")
		}
	}
	if j.Check != nil {
		steps = append(steps, "check")
	}
	return steps
}

// createOptions are the options of the job's create, and what surrounds
// it: database dumps, hooks and the free-space threshold.
func (j *Job) createOptions(u *ui) (snapshot.CreateOptions, createPlan, error) {
	var o snapshot.CreateOptions
	var plan createPlan
	plan.origin = "job " + j.Name
	sf, _, err := parseStreamFlags("", "", j.Databases, nil)
	if err != nil {
		return o, plan, fmt.Errorf("job %s: %w", j.Name, err)
	}
	plan.streams = sf
	if msg := j.sourceCollision(); msg != "" {
		return o, plan, fmt.Errorf("job %s: %s; choose another name", j.Name, msg)
	}
	for _, jc := range j.Commands {
		p, _ := streamPath("commands", jc.Name)
		o.Streams = append(o.Streams, u.commandStream(p, jc.Argv))
	}
	plan.pre, plan.post = j.Pre, j.Post
	plan.hookTimeout = j.HookTimeout
	plan.minFree = j.MinFree
	o.Paths = j.Paths
	for _, tag := range j.Tags {
		if !slices.Contains(o.Tags, tag) { // as create --tag: once each
			o.Tags = append(o.Tags, tag)
		}
	}
	o.Host = j.Host
	if o.Host == "" {
		o.Host, _ = os.Hostname()
	}
	if err := j.excludes().apply(&o.Archive); err != nil {
		// A mistake in the job's exclusions is the config's: exit 2, as
		// create's for the same flags.
		return o, plan, usagef("job %s: %v", j.Name, err)
	}
	o.Archive.OneFileSystem = j.OneFileSystem
	o.Archive.Streams = j.DumpConcurrency
	plan.allowEmptied = j.AllowEmptied
	if j.SequentialRead {
		o.Archive.Scouts = -1
	}
	comp, err := repo.ParseCompression(firstNonEmpty(j.Compression, "fastest"))
	if err != nil {
		return o, plan, fmt.Errorf("job %s: compression: %w", j.Name, err)
	}
	o.Writer = index.WriterOptions{Compression: comp}
	o.Program = "snap " + version
	o.Job = j.Name
	return o, plan, nil
}

// runCreateStep creates the job's snapshot, with its dumps and hooks, under
// a shared lock.
func runCreateStep(ctx context.Context, e *env, s *session, st repoSettings, j *Job, indexed func([]repo.ID)) (*snapshot.Snapshot, error) {
	o, plan, err := j.createOptions(s.ui)
	if err != nil {
		j.postAfterFailure(ctx, e, s.ui, st, err)
		return nil, err
	}
	o.Writer.Abort = ctx
	o.Writer.Indexed = indexed
	defer s.relock(ctx, noLock)
	open := func() (*session, error) { return s, s.relock(ctx, sharedLock) }
	return createWithHooks(ctx, e, s.ui, st, open, o, plan)
}

// postAfterFailure runs the job's post hooks for a create that failed
// before createWithHooks could run them (the repository could not be
// opened, the job's options are wrong): post hooks run whatever happened,
// and a monitoring ping in one must hear of exactly these failures. Their
// own failure is reported by runPost; err stays the job's error.
func (j *Job) postAfterFailure(ctx context.Context, e *env, u *ui, st repoSettings, err error) {
	if len(j.Post) == 0 {
		return
	}
	_, _ = newHooks(nil, j.Post, j.HookTimeout, st, e.getenv, j.host(), j.Tags, j.Name).runPost(ctx, u, err, "")
}

// sourceCollision says how two of the job's sources (dumps, command
// outputs) collide in the snapshot (streamCollision), or "". The job's
// create refuses such a job; config check reports it first.
func (j *Job) sourceCollision() string {
	return streamCollision(j.sourcePaths())
}

// streamInPaths is streamOverlap for the job's sources and paths: config
// check says so first.
func (j *Job) streamInPaths() string {
	return streamOverlap(j.sourcePaths(), j.Paths)
}

// host is the host name the job records.
func (j *Job) host() string {
	if j.Host != "" {
		return j.Host
	}
	h, _ := os.Hostname()
	return h
}

// sourcePaths are the paths of the job's dumps and command outputs in its
// snapshots.
func (j *Job) sourcePaths() []string {
	var out []string
	if sf, _, err := parseStreamFlags("", "", j.Databases, nil); err == nil {
		out = append(out, sf.dbPaths...)
	}
	for _, c := range j.Commands {
		if p, err := streamPath("commands", c.Name); err == nil {
			out = append(out, p)
		}
	}
	return out
}

// otherPruneRunning says, when err is the prune lock held by another
// prune, that this prune is skipped and why ("" otherwise): what (this
// job forgot, this forget removed) waits for the next prune.
func otherPruneRunning(err error, what string) string {
	var le *repo.LockedError
	if !errors.As(err, &le) || !le.Holder.Prune || le.Holder.Exclusive {
		return ""
	}
	return fmt.Sprintf("prune skipped: another prune is running (pid %d on host %s since %s); it reclaims unused space, and what %s is reclaimed by the next one", le.Holder.PID, le.Holder.Host, localTime(le.Holder.Since()), what)
}

// jobSettings are the settings of j's repository as snap run opens it
// (settings), with a warning when --repo names another.
func (cfg *Config) jobSettings(c *cli.Context, e *env, u *ui, j *Job) repoSettings {
	st := cfg.settings(c, e, j.Repository, j.PasswordFile, j.PasswordCommand, j.Name)
	if j.Repository != "" && st.location != j.Repository {
		u.warnf("job %s: repository %s (--repo), not the config's %s; the config's password source and rate limits are its repository's, so this one takes its password from the flags, the variables or the prompt", j.Name, sources.DisplayPath(st.location), sources.DisplayPath(j.Repository))
	}
	return st
}

// policy is the job's keep policy as forget applies it.
func (j *Job) policy() (snapshot.Policy, error) {
	k := j.Keep
	p := snapshot.Policy{Last: k.Last, Hourly: k.Hourly, Daily: k.Daily, Weekly: k.Weekly, Monthly: k.Monthly, Yearly: k.Yearly, Tags: k.Tags}
	if k.Within != "" {
		sp, err := snapshot.ParseSpan(k.Within)
		if err != nil {
			return p, fmt.Errorf("keep.within: %w", err)
		}
		if sp.IsZero() {
			// As 'snap forget --keep-within 0d' refuses, and as config
			// check warns: beside other rules it was taken as absent
			// (found by an exploratory test).
			return p, fmt.Errorf("keep.within %q keeps nothing: give a span such as \"30d\" or \"1y6m\"; refusing to forget", k.Within)
		}
		p.Within = sp
	}
	return p, nil
}

// runForgetStep applies the job's policy to the job's own snapshots (see
// jobSnapshots) under a shared lock, as 'snap forget' does. saved is the
// snapshot the run's create saved ("" for none).
func runForgetStep(ctx context.Context, e *env, s *session, j *Job, saved string) error {
	p, err := j.policy()
	if err != nil {
		return err
	}
	if p.IsEmpty() {
		return errors.New("the keep policy keeps nothing; refusing to forget")
	}
	// On a full disk, forget may use the space reserve.
	s.setFreesSpace("forget")
	defer s.setFreesSpace("")
	err = s.relock(ctx, sharedLock)
	if err != nil {
		return err
	}
	defer s.relock(ctx, noLock)
	sns, err := s.snapshots(ctx)
	if err != nil {
		return err
	}
	if len(s.unreadable) > 0 {
		// A snapshot that cannot be read might be one of this job's: its
		// decision would be made without it.
		return fmt.Errorf("%d snapshots cannot be read, so the policy cannot be applied safely; nothing was forgotten; run 'snap check'", len(s.unreadable))
	}
	mine := j.ownSnapshots(sns)
	res := forgetResult{Groups: []forgetGroup{}, RemovedIDs: []string{}}
	remove := planForget(&res, snapshot.GroupSnapshots(mine, snapshot.GroupBy{Host: true, Paths: true}), p, e.now())
	if res.keptByRules == 0 && len(remove) > 0 {
		// Every policy that counts (last, daily, …) keeps at least the
		// newest snapshot; only tags (or a span that ends before the
		// newest) keep none. A job that would remove all it has, the
		// snapshot it just saved among them, is misconfigured: a tag
		// mistyped in keep.tags would otherwise wipe its backups every
		// night while each run reported success.
		return fmt.Errorf("the keep policy (%s) keeps none of the job's %s; refusing to forget: check keep (does a snapshot of the job carry a tag of keep.tags?)",
			res.Policy, plural(len(remove), "snapshot", "snapshots"))
	}
	if saved != "" && slices.ContainsFunc(remove, func(id repo.ID) bool { return id.String() == saved }) {
		// Only tags can do that (every count and span keeps the newest):
		// a job whose every run removes what it just saved backs up
		// nothing.
		return fmt.Errorf("the keep policy (%s) would remove the snapshot this run just saved (%s); refusing to forget: check keep (does a snapshot of the job carry a tag of keep.tags?)",
			res.Policy, saved[:8])
	}
	u := s.ui
	if !u.json && u.verbose {
		printForget(u, e, res, remove, nil)
	}
	failed := removeSnapshots(ctx, s, remove, &res)
	if u.json {
		u.jsonLine(struct {
			Type string `json:"type"`
			forgetResult
		}{"summary", res})
	} else {
		u.printf("forget (%s): removed %s, kept %d", res.Policy, plural(res.Removed, "snapshot", "snapshots"), res.Kept)
	}
	if len(failed) > 0 {
		return fmt.Errorf("could not remove %d snapshots: %s; the next run tries again", len(failed), strings.Join(failed, ", "))
	}
	return nil
}

// packList collects the packs a create indexed (index.WriterOptions.Indexed).
type packList struct {
	mu  sync.Mutex
	ids []repo.ID
}

func (l *packList) add(ids []repo.ID) {
	l.mu.Lock()
	l.ids = append(l.ids, ids...)
	l.mu.Unlock()
}

func (l *packList) all() []repo.ID {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.ids)
}

// runPruneStep prunes under the prune lock, which lets backups go on, with
// the job's max_unused and delete_delay. discard are the packs the job's
// create indexed before it found the disk full: when no other snap
// process runs, the prune takes the exclusive lock and deletes those that
// no snapshot uses at once (index.PruneOptions.Discard), and the next
// night's create finds the room the failed one took. fullDisk (the create
// found the disk full) leaves small packs unmerged.
func runPruneStep(ctx context.Context, e *env, s *session, j *Job, discard []repo.ID, fullDisk bool) error {
	o := index.PruneOptions{MaxUnusedPercent: 5, DeleteDelay: 12 * time.Hour, Compression: repo.CompressionFastest, NoMerge: fullDisk}
	if mu := strings.TrimSuffix(j.Keep.MaxUnused, "%"); mu != "" {
		pct, err := strconv.ParseFloat(mu, 64)
		if err != nil || pct < 0 || pct > 100 {
			return fmt.Errorf("job %s: keep.max_unused %q: give a percentage from 0 to 100", j.Name, j.Keep.MaxUnused)
		}
		o.MaxUnusedPercent = pct
	}
	if j.Keep.DeleteDelay != "" {
		d, err := parseDelay(j.Keep.DeleteDelay)
		if err != nil {
			return fmt.Errorf("job %s: keep.delete_delay: %w", j.Name, err)
		}
		o.DeleteDelay = d
	}
	// On a full disk, prune may use the space reserve.
	s.setFreesSpace("prune")
	defer s.setFreesSpace("")
	var err error
	if len(discard) > 0 {
		err = s.relock(ctx, exclusiveLock)
		var le *repo.LockedError
		switch {
		case err == nil:
			o.Discard = map[repo.ID]bool{}
			for _, id := range discard {
				o.Discard[id] = true
			}
		case errors.As(err, &le):
			// A run that read their segment may rely on them: marked,
			// they go after the delay, as any prune's.
			s.ui.warnf("the %s the failed create indexed are not deleted now: another snap process runs (pid %d on host %s); prunes mark them as any unused packs, and 'snap prune --instant' deletes them once nothing else runs",
				plural(len(discard), "pack", "packs"), le.Holder.PID, le.Holder.Host)
		default:
			return err
		}
	}
	if o.Discard == nil {
		err = s.relock(ctx, pruneLock)
	}
	if msg := otherPruneRunning(err, "this job forgot"); msg != "" {
		// Another job's or host's prune is under way (several jobs of one
		// repository at 03:00): it reclaims space as this one would, and
		// what this job just forgot waits for the next prune. Failing the
		// job for it paged admins for backups that had gone well (found
		// by an exploratory test).
		return &stepSkipped{msg: msg}
	}
	if err != nil {
		return err
	}
	defer s.relock(ctx, noLock)
	st, err := pruneWith(ctx, e, s, o, nil)
	reportPrune(s.ui, st)
	return err
}

// runCheckStep checks the repository under a shared lock: the structure,
// and the data subset the job names. A subset n/t moves on by one group a
// run (rotation: the file that keeps the group last read).
func runCheckStep(ctx context.Context, e *env, s *session, j *Job, rotation string) error {
	var sub *subset
	if j.Check.ReadDataSubset != "" {
		v, err := parseSubset(j.Check.ReadDataSubset)
		if err != nil {
			return fmt.Errorf("job %s: check: %w", j.Name, err)
		}
		if v.t > 0 {
			v.n = nextGroup(rotation, v)
		}
		sub = &v
	}
	if err := s.relock(ctx, sharedLock); err != nil {
		return err
	}
	defer s.relock(ctx, noLock)
	if err := checkWith(ctx, e, s, sub); err != nil {
		return err
	}
	if sub != nil && sub.t > 0 && rotation != "" {
		err := os.MkdirAll(filepath.Dir(rotation), 0o700)
		if err == nil {
			err = writeFileAtomic(rotation, []byte(sub.String()+"\n"), 0o600)
		}
		if err != nil {
			s.ui.warnf("job %s: the check read group %s, but where the next run goes on could not be kept (%v): it reads that group again", j.Name, sub, err)
		}
	}
	return nil
}

// checkRotationFile is where a job keeps the group of its data subset
// that its last check read: in the cache's jobs directory, named as its
// lock; "" when there is no cache directory.
//
// A job's check = "1/7" read the same seventh every night (found by an
// exploratory test); going by the day number instead left groups unread
// for jobs that do not run every day (weekdays only read five of seven;
// found by a review). Counting runs reads every group once in t runs,
// whatever the schedule. Without the file (a new cache), the job starts
// again at n.
func checkRotationFile(e *env, cacheDir, configPath, job string) string {
	base, err := cacheBase(e, cacheDir)
	if err != nil {
		return ""
	}
	return filepath.Join(base, "jobs", jobFileName(configPath, job)+".check")
}

// nextGroup is the group of sub (n/t) this run reads: the one after the
// group the file rotation names, or sub's own n when it names none of t.
func nextGroup(rotation string, sub subset) int {
	b, err := os.ReadFile(rotation)
	if err != nil {
		return sub.n
	}
	last, err := parseSubset(strings.TrimSpace(string(b)))
	if err != nil || last.t != sub.t {
		return sub.n
	}
	return last.n%sub.t + 1
}

// ownSnapshots are the snapshots of sns that belong to j (jobSnapshots):
// those its keep policy applies to.
func (j *Job) ownSnapshots(sns []*snapshot.Snapshot) []*snapshot.Snapshot {
	return jobSnapshots(sns, j.Name, j.host(), j.Paths, j.Tags, j.sourcePaths())
}

// jobSnapshots returns the snapshots that belong to a job, which are the
// only ones its keep policy may forget: taken by the job (they carry its
// name, which 'snap run' records), on the job's host, of exactly the job's
// paths, carrying every one of the job's tags, and holding the same stream
// sources (database dumps) by path. Snapshots of other jobs, of 'snap
// create' by hand (even of the same paths), or of the job before its paths
// were changed are left alone: forgetting too little is safe, too much is
// not.
func jobSnapshots(sns []*snapshot.Snapshot, job, host string, paths, tags, sourcePaths []string) []*snapshot.Snapshot {
	want := make([]string, 0, len(paths))
	for _, p := range paths {
		want = append(want, filepath.Clean(p))
	}
	slices.Sort(want)
	want = slices.Compact(want)
	wantSrc := slices.Sorted(slices.Values(sourcePaths))
	var out []*snapshot.Snapshot
	for _, sn := range sns {
		if sn.Job != job || sn.Host != host || !slices.Equal(sn.Paths, want) {
			continue
		}
		hasTags := true
		for _, t := range tags {
			if !slices.Contains(sn.Tags, t) {
				hasTags = false
			}
		}
		src := make([]string, 0, len(sn.Sources))
		for _, s := range sn.Sources {
			src = append(src, s.Path)
		}
		slices.Sort(src)
		if hasTags && slices.Equal(src, wantSrc) {
			out = append(out, sn)
		}
	}
	return out
}
