package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/snap-backup/snap/sources"
)

// hooks are the --pre and --post commands of a create (and a job's
// finally commands). Each runs with /bin/sh -c in its own process group,
// with snap's environment plus SNAP_HOOK, SNAP_REPOSITORY, SNAP_HOST,
// SNAP_TAGS and SNAP_JOB; post hooks and finally commands also get
// SNAP_STATUS, SNAP_EXIT_CODE, SNAP_SNAPSHOT_ID and SNAP_ERROR.
type hooks struct {
	pre, post []string
	env       []string // SNAP_REPOSITORY, SNAP_HOST, SNAP_TAGS, the password source
	unset     []string // the password variables of snap's environment the run passed over
	// timeout stops a hook that runs longer (0: no limit). A pre hook
	// that hangs would otherwise hold the run, its lock and the timer's
	// service for ever, and every later run with it.
	timeout time.Duration
}

// defaultHookTimeout is --hook-timeout's and hook_timeout's default.
const defaultHookTimeout = time.Hour

// newHooks prepares the hooks of a create on st's repository; getenv
// reads snap's environment, for the password source the run used.
func newHooks(pre, post []string, timeout time.Duration, st repoSettings, getenv func(string) string, host string, tags []string, job string) hooks {
	location := st.location
	if location != "" && !strings.HasPrefix(location, "s3:") {
		// Absolute: a hook may run in another directory (found by a
		// re-test).
		dir, prefixed := strings.CutPrefix(location, "local:")
		if abs, err := filepath.Abs(dir); err == nil {
			location = abs
			if prefixed {
				location = "local:" + abs
			}
		}
	}
	env := []string{
		"SNAP_REPOSITORY=" + location,
		"SNAP_HOST=" + host,
		"SNAP_TAGS=" + strings.Join(tags, ","),
		"SNAP_JOB=" + job, // empty for 'snap create'
	}
	if st.cacheDir != "" {
		// The config's cache_dir: a hook's snap (a post hook's 'snap copy
		// --to s3:…') is told the repository, so it reads no config, and
		// built a second cache in ~/.cache (found by an exploratory test).
		dir := st.cacheDir
		if abs, err := filepath.Abs(dir); err == nil {
			dir = abs
		}
		env = append(env, "SNAP_CACHE_DIR="+dir)
	}
	// And the rate limits the run keeps to (its config's, too).
	if st.upload > 0 {
		env = append(env, "SNAP_LIMIT_UPLOAD="+strconv.FormatUint(st.upload, 10))
	}
	if st.download > 0 {
		env = append(env, "SNAP_LIMIT_DOWNLOAD="+strconv.FormatUint(st.download, 10))
	}
	// The repository's password source, exactly the one the run used: a
	// hook that runs snap itself finds the repository from
	// SNAP_REPOSITORY, and needs its password too (it got "no repository
	// password" with the config's password_file; found by an exploratory
	// test). The other sources are dropped: snap takes a file, then
	// SNAP_PASSWORD, then a command, so a SNAP_PASSWORD left in the shell
	// beside the config's password_command gave the hook's snap a wrong
	// password (found by an exploratory test).
	var unset []string
	switch chooseSource(getenv, st.passwordFile, "SNAP_PASSWORD", st.passwordCommand) {
	case passwordFromFile:
		// Absolute: a hook may run in another directory.
		pf := st.passwordFile
		if abs, err := filepath.Abs(pf); err == nil {
			pf = abs
		}
		env = append(env, "SNAP_PASSWORD_FILE="+pf)
		unset = []string{"SNAP_PASSWORD", "SNAP_PASSWORD_COMMAND"}
	case passwordFromCommand:
		env = append(env, "SNAP_PASSWORD_COMMAND="+st.passwordCommand)
		unset = []string{"SNAP_PASSWORD", "SNAP_PASSWORD_FILE"}
	case passwordFromVariable:
		// Inherited; the file and command were passed over for it.
		unset = []string{"SNAP_PASSWORD_FILE", "SNAP_PASSWORD_COMMAND"}
	}
	return hooks{pre: pre, post: post, timeout: timeout, env: env, unset: unset}
}

// runPre runs the pre hooks in order and stops at the first that fails.
// Stopped (Ctrl-C, the job's timeout), the error names the hook that was
// running: "interrupted: no snapshot was saved" named none (found by an
// exploratory test).
func (h hooks) runPre(ctx context.Context, u *ui) error {
	for _, cmd := range h.pre {
		if err := runHook(ctx, u, "pre", cmd, append(h.env, "SNAP_HOOK=pre"), h.unset, h.timeout); err != nil {
			if ctx.Err() != nil {
				return &stoppedWaiting{msg: fmt.Sprintf("%v while pre hook %q was running: no snapshot was saved; the repository is untouched", errInterrupted, cmd),
					waitedFor: fmt.Sprintf("pre hook %q", cmd)}
			}
			return err
		}
	}
	return nil
}

// runPost runs every post hook, whatever happened before and even if one
// of them fails: a post hook may restart what a pre hook stopped. They run
// to the end even after Ctrl-C or the job's timeout (each within the hook
// timeout). It returns the first failure, and overran: the hook that was
// running when ctx ended (the job's timeout passed, Ctrl-C), or "".
func (h hooks) runPost(ctx context.Context, u *ui, runErr error, snapshotID string) (overran string, first error) {
	runErr = timedOut(ctx, runErr) // a failure, not an interruption by the admin
	msg := ""
	if runErr != nil {
		msg = runErr.Error()
	}
	return h.runAfter(ctx, u, "post", h.post, exitCode(runErr), snapshotID, msg)
}

// runFinally runs a job's finally commands (Job.Finally) as runPost runs
// post hooks, told the job's outcome: its exit code, snapshot and error.
func (h hooks) runFinally(ctx context.Context, u *ui, commands []string, code int, snapshotID, msg string) error {
	_, first := h.runAfter(ctx, u, "finally", commands, code, snapshotID, msg)
	return first
}

// runAfter runs commands, hooks of kind post or finally, each to its end
// whatever happened, with the outcome (code, snapshotID, msg) in
// SNAP_STATUS, SNAP_EXIT_CODE, SNAP_SNAPSHOT_ID and SNAP_ERROR.
func (h hooks) runAfter(ctx context.Context, u *ui, kind string, commands []string, code int, snapshotID, msg string) (overran string, first error) {
	outer := ctx
	ctx = context.WithoutCancel(ctx)
	status := "success"
	switch code {
	case exitOK:
	case exitPartial:
		status = "partial"
	case exitInterrupted:
		status = "interrupted"
	default:
		status = "failure"
	}
	env := append(h.env, "SNAP_HOOK="+kind, "SNAP_STATUS="+status, fmt.Sprintf("SNAP_EXIT_CODE=%d", code),
		"SNAP_SNAPSHOT_ID="+snapshotID, "SNAP_ERROR="+strings.ReplaceAll(msg, "\n", " "))
	for _, cmd := range commands {
		done := outer.Err() != nil
		if err := runHook(ctx, u, kind, cmd, env, h.unset, h.timeout); err != nil {
			u.errorf("%v", err)
			if first == nil {
				first = err
			}
		}
		if !done && outer.Err() != nil && overran == "" {
			overran = cmd
		}
	}
	return overran, first
}

func runHook(ctx context.Context, u *ui, kind, command string, env, unset []string, timeout time.Duration) error {
	u.infof("running %s hook: %s", kind, command)
	lines := u.toolLines(kind + " hook")
	// A hook may run snap itself (a check after the backup), so it gets
	// the password snap was given in its environment.
	c := sources.Command{Name: "/bin/sh", Args: []string{"-c", command}, Env: env, Unset: unset, KeepSecrets: true, Stderr: lines, Combined: true, OutlivesSnap: true,
		Display: fmt.Sprintf("%s hook %q", kind, command), Note: func(msg string) { u.warnf("%s", msg) }}
	hctx := ctx
	if timeout > 0 {
		var cancel context.CancelFunc
		hctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	err := c.Run(hctx)
	if err != nil && ctx.Err() == nil && errors.Is(hctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("%s hook %q did not finish within %s and was stopped (with everything it started); raise --hook-timeout (hook_timeout in a job) if it needs longer, or 0 for no limit (hook_timeout = \"0s\")", kind, command, timeout)
	}
	var ce *sources.CommandError
	if err != nil && !errors.As(err, &ce) && ctx.Err() == nil {
		err = fmt.Errorf("%s hook %q: %w", kind, command, err)
	}
	return err
}
