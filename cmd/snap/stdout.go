package main

import (
	"errors"
	"io"
	"sync"
	"syscall"
)

// stdoutWriter is standard output as every command writes it. Most output
// is written with fmt.Fprint*, whose errors nobody checks line by line; this
// keeps the first one, so that run can fail the command with it: 'snap check
// --json > result.json' on a full disk must not exit 0 with an empty file,
// and 'snap ls … | head' must end (141) rather than write each remaining
// line into a closed pipe. After the first error every write fails at once
// with it; a reader that went away (EPIPE) also calls gone, which ends the
// command as SIGPIPE would.
type stdoutWriter struct {
	w    io.Writer
	gone func()

	mu  sync.Mutex
	err error
}

func (o *stdoutWriter) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.err != nil {
		return 0, o.err
	}
	n, err := o.w.Write(p)
	if err != nil {
		o.err = err
		if errors.Is(err, syscall.EPIPE) && o.gone != nil {
			o.gone()
		}
	}
	return n, err
}

// failed returns the first write error, if any.
func (o *stdoutWriter) failed() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.err
}

// stdoutError is a command's failure to write its output; the work itself
// may have been done (a check ran, a snapshot was saved), but what it
// printed is incomplete.
type stdoutError struct{ err error }

func (e *stdoutError) Error() string {
	var errno syscall.Errno
	if errors.As(e.err, &errno) {
		return "standard output: " + errno.Error() + "; the command's output is incomplete"
	}
	return "standard output: " + e.err.Error() + "; the command's output is incomplete"
}

func (e *stdoutError) Unwrap() error { return e.err }
