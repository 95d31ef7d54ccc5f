package main

import (
	"io"
	"os"
	"time"

	"golang.org/x/term"
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
	// journal is set when stderr is connected to systemd's journal.
	journal bool
}

func newEnv() *env {
	return &env{
		stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr,
		getenv: os.Getenv, now: time.Now,
		stdinTTY:  term.IsTerminal(int(os.Stdin.Fd())),
		stderrTTY: term.IsTerminal(int(os.Stderr.Fd())),
		journal:   underJournal(os.Getenv, os.Stderr),
	}
}
