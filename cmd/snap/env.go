package main

import (
	"io"
	"os"
	"time"

	"golang.org/x/term"

	"github.com/snap-backup/snap/repo"
)

// env is what a command run gets from the process: streams, environment
// and clock. Tests build their own.
type env struct {
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	getenv func(string) string
	now    func() time.Time
	// stdinTTY and stderrTTY say whether a person is watching.
	stdinTTY  bool
	stderrTTY bool
	// wrapBackend, set only by in-process tests, wraps every backend a
	// command opens (request counting, fault injection); see backend.go.
	wrapBackend func(repo.Backend) repo.Backend
}

func newEnv() *env {
	return &env{
		stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr,
		getenv: os.Getenv, now: time.Now,
		stdinTTY:  term.IsTerminal(int(os.Stdin.Fd())),
		stderrTTY: term.IsTerminal(int(os.Stderr.Fd())),
	}
}
