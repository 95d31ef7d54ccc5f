package main

import (
	"context"
	"errors"

	"github.com/snap-backup/snap/repo"
	"github.com/snap-backup/snap/snapshot"
)

// Exit codes, documented in docs/usage.md. Scripts rely on them: never
// renumber.
const (
	exitOK          = 0
	exitFatal       = 1 // also an internal error (a bug: repo.PanicError)
	exitUsage       = 2 // wrong flags or arguments, a config file with errors
	exitPartial     = 3 // snapshot saved, but some files could not be read
	exitNoRepo      = 10
	exitLocked      = 11
	exitWrongPass   = 12
	exitInterrupted = 130
	// exitBrokenPipe: standard output's reader went away (128 + SIGPIPE),
	// what a shell pipeline expects of a writer then.
	exitBrokenPipe = 141
)

// partialError means the command did its job but skipped some inputs.
type partialError struct {
	msg string
	// emptied: a backed-up directory came back empty where the parent
	// snapshot held entries (emptiedPaths); a job's retention waits.
	emptied bool
}

func (e *partialError) Error() string { return e.msg }

// usageError is a mistake in the command line.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return &usageError{msg: sprintf(format, args...)} }

// exitCode maps an error to the documented exit code.
func exitCode(err error) int {
	var pe *partialError
	var ue *usageError
	var cfe *ConfigError
	var ce *codedError
	var phe *postHookError
	var bug *repo.PanicError
	var ambiguous *snapshot.AmbiguousError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &bug):
		return exitFatal // a bug: never mistaken for success, a partial run or an interruption
	case errors.As(err, &ce):
		return ce.code
	case errors.As(err, &phe):
		return exitFatal // a snapshot saved with files skipped as well: the hook's failure counts
	case errors.As(err, &pe):
		return exitPartial
	case errors.Is(err, context.Canceled) || errors.Is(err, errInterrupted):
		return exitInterrupted
	case errors.Is(err, repo.ErrNoRepository):
		return exitNoRepo
	case errors.Is(err, repo.ErrLocked):
		return exitLocked
	case errors.Is(err, repo.ErrWrongPassword):
		return exitWrongPass
	case errors.As(err, &ue), errors.As(err, &cfe), errors.As(err, &ambiguous):
		return exitUsage
	}
	return exitFatal
}

var errInterrupted = errors.New("interrupted")
