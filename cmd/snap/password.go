package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"
	"golang.org/x/term"
)

// readPassword finds the repository password: --password-file or
// SNAP_PASSWORD_FILE, SNAP_PASSWORD, --password-command or
// SNAP_PASSWORD_COMMAND, else a prompt without echo when a person is at the
// terminal. confirm asks twice (for init).
func readPassword(c *cli.Context, e *env, confirm bool) (string, error) {
	st, err := settingsFrom(c, e)
	if err != nil {
		return "", err
	}
	pw, err := passwordFrom(c.Context, e, st.passwordFile, "SNAP_PASSWORD", st.passwordCommand, confirm, "repository")
	return pw, noPasswordInConfig(err, st.fromConfig)
}

// passwordCommandTimeout bounds a password command when no person is at
// the terminal (a timer): one that hangs (a secret store that is down)
// must not hold the run, its service and the next night's run for ever.
// At a terminal it may ask for a passphrase, and Ctrl-C ends it.
const passwordCommandTimeout = 2 * time.Minute

// passwordOutputGrace is how long a program that a password command left
// running may keep the command's output open after it exited, as for
// hooks.
const passwordOutputGrace = 6 * time.Second

// passwordFrom finds a password: file, then the variable envVar, then
// command, then a prompt. file and command come from flags, their
// variables (envVar_FILE, envVar_COMMAND) or the config; a command given on
// the command line wins over a file or password from the environment.
func passwordFrom(ctx context.Context, e *env, file, envVar, command string, confirm bool, what string) (string, error) {
	var origin string
	return passwordLookup(ctx, e, file, envVar, command, confirm, what, &origin)
}

// passwordSource is where passwordLookup takes a password from.
type passwordSource int

const (
	passwordFromPrompt   passwordSource = iota // or none, without a terminal
	passwordFromFile                           // file
	passwordFromVariable                       // the variable envVar itself
	passwordFromCommand                        // command
)

// chooseSource says which of file, the variable envVar and command
// passwordLookup uses, in its order: a command not from envVar_COMMAND
// (a flag, the config), then file, then envVar, then command. The lookup
// goes by it, and a hook that runs snap is given exactly that source
// (newHooks), so that its snap cannot take another one left in the
// environment.
func chooseSource(getenv func(string) string, file, envVar, command string) passwordSource {
	switch {
	case command != "" && command != getenv(envVar+"_COMMAND"):
		return passwordFromCommand
	case file != "":
		return passwordFromFile
	case getenv(envVar) != "":
		return passwordFromVariable
	case command != "":
		return passwordFromCommand
	}
	return passwordFromPrompt
}

// passwordLookup is passwordFrom that also sets origin to where the
// password came from, for a message about a wrong one: with flags,
// variables and the config in play, a variable left in the shell is hard
// to spot.
func passwordLookup(ctx context.Context, e *env, file, envVar, command string, confirm bool, what string, origin *string) (string, error) {
	commandFlag := command != "" && command != e.getenv(envVar+"_COMMAND")
	fileFlag := file != "" && file != e.getenv(envVar+"_FILE")
	if commandFlag && fileFlag {
		return "", usagef("give a %s password file or a password command, not both", what)
	}
	switch chooseSource(e.getenv, file, envVar, command) {
	case passwordFromCommand:
		switch {
		case !commandFlag:
			*origin = "the password command " + envVar + "_COMMAND gives"
		case e.flagGiven(passwordCommandFlag(envVar)):
			*origin = passwordCommandFlag(envVar)
		default: // not from the variable nor a flag: the config
			*origin = "the config's password_command"
		}
		return runPasswordCommand(ctx, e, command, passwordCommandTimeout)
	case passwordFromFile:
		*origin = "the password file " + file
		switch {
		case file == e.getenv(envVar+"_FILE"):
			*origin += ", which " + envVar + "_FILE names"
		case !e.flagGiven(passwordFileFlag(envVar)):
			*origin += ", which the config's password_file names"
		}
		b, err := readBounded(ctx, file, maxPasswordBytes)
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return "", &stoppedWaiting{msg: fmt.Sprintf("%v: reading the password file %s stopped; the repository is untouched", errInterrupted, file),
				waitedFor: "the password file " + file}
		}
		if err != nil {
			return "", &passwordFileError{err: err, hint: fmt.Sprintf("give a readable file with %s or %s_FILE, or the password in %s", passwordFileFlag(envVar), envVar, envVar)}
		}
		pw := strings.TrimRight(string(b), "\r\n")
		if pw == "" {
			return "", fmt.Errorf("password file %s is empty", file)
		}
		return pw, nil
	case passwordFromVariable:
		*origin = envVar
		return e.getenv(envVar), nil
	}
	*origin = "the prompt"
	f, ok := e.stdin.(*os.File)
	if !e.stdinTTY || !ok {
		return "", &noPasswordError{what: what, envVar: envVar}
	}
	fmt.Fprintf(e.stderr, "enter %s password: ", what)
	pw, err := readTerminal(ctx, int(f.Fd()))
	fmt.Fprintln(e.stderr)
	if err != nil {
		return "", err
	}
	if confirm {
		fmt.Fprintf(e.stderr, "enter the password again: ")
		again, err := readTerminal(ctx, int(f.Fd()))
		fmt.Fprintln(e.stderr)
		if err != nil {
			return "", err
		}
		if string(again) != string(pw) {
			return "", usagef("the passwords typed do not match: run the command again")
		}
	}
	if len(pw) == 0 {
		return "", usagef("an empty password was typed: run the command again and type one")
	}
	return string(pw), nil
}

// noPasswordError: no source gave a password, and no person is at the
// terminal to type one (a timer's run). configFile, when set, is the
// config file that names the repository: its keys are a way too.
type noPasswordError struct {
	what, envVar string
	configFile   string
}

func (e *noPasswordError) Error() string {
	ways := fmt.Sprintf("%s (or %s_FILE), %s, or %s (or %s_COMMAND)", passwordFileFlag(e.envVar), e.envVar, e.envVar, passwordCommandFlag(e.envVar), e.envVar)
	if e.configFile != "" {
		return fmt.Sprintf("no %s password: set password_file or password_command in %s, or use %s", e.what, e.configFile, ways)
	}
	return fmt.Sprintf("no %s password: use %s", e.what, ways)
}

// Unwrap makes it a usage error (exit 2), as any missing setting.
func (e *noPasswordError) Unwrap() error { return &usageError{msg: e.Error()} }

// noPasswordInConfig words err, when it is a missing password, for a
// repository that the config file named: there, password_file and
// password_command are where its password belongs (settings from a config
// file, repoSettings.fromConfig, call it with that file).
func noPasswordInConfig(err error, configFile string) error {
	var npe *noPasswordError
	if configFile == "" || !errors.As(err, &npe) {
		return err
	}
	c := *npe
	c.configFile = configFile
	return &c
}

// passwordFileError is a password file that cannot be read, with the
// hint of where else a password may come from.
type passwordFileError struct {
	err  error
	hint string
}

func (e *passwordFileError) Error() string {
	return fmt.Sprintf("password file: %v; %s", e.err, e.hint)
}
func (e *passwordFileError) Unwrap() error { return e.err }

// passwordFileFlag is the flag of envVar's password file: envVar names
// the family, SNAP_PASSWORD (--password-file), SNAP_TO_PASSWORD (copy's
// target: --to-password-file), SNAP_NEW_PASSWORD (snap key:
// --new-password-file).
func passwordFileFlag(envVar string) string {
	return "--" + strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(envVar, "SNAP_"), "_", "-")) + "-file"
}

// passwordCommandFlag is passwordFileFlag's twin for the password command.
func passwordCommandFlag(envVar string) string {
	return strings.TrimSuffix(passwordFileFlag(envVar), "-file") + "-command"
}

// otherPassword gives the password of a second repository (copy's target,
// init's --copy-chunker-params-from): from the flags and variables of
// envVar's family (--to-password-file, SNAP_TO_PASSWORD, …), else from
// fallback, the first repository's, which fallbackOrigin names. The
// origin it returns says which, once the password was read, for a wrong
// one: the first repository's password reused for the second was the case
// that most needed saying, and it went unsaid (found by an exploratory
// test).
func otherPassword(c *cli.Context, e *env, envVar, what string, fallback func() (string, error), fallbackOrigin string) (func() (string, error), *string) {
	origin := new(string)
	return func() (string, error) {
		file := c.String(strings.TrimPrefix(passwordFileFlag(envVar), "--"))
		command := c.String(strings.TrimPrefix(passwordCommandFlag(envVar), "--"))
		if file == "" && command == "" && e.getenv(envVar) == "" {
			*origin = fmt.Sprintf("%s, as none of %s, %s and %s is set", fallbackOrigin, passwordFileFlag(envVar), passwordCommandFlag(envVar), envVar)
			return fallback()
		}
		return passwordLookup(c.Context, e, file, envVar, command, false, what, origin)
	}, origin
}

// readTerminal reads a password from the terminal fd without echo. Ctrl-C
// ends it at once: the read itself cannot be interrupted, so it is left
// to the goroutine (the process ends soon after) and the terminal's echo
// is put back here.
func readTerminal(ctx context.Context, fd int) ([]byte, error) {
	state, err := term.GetState(fd)
	if err != nil {
		return nil, err
	}
	type result struct {
		pw  []byte
		err error
	}
	done := make(chan result, 1)
	go func() {
		pw, err := readNoEcho(fd)
		done <- result{pw, err}
	}()
	select {
	case r := <-done:
		if errors.Is(r.err, io.EOF) {
			return nil, usagef("no password was given: the input ended (Ctrl-D); nothing was changed")
		}
		return r.pw, r.err
	case <-ctx.Done():
		_ = term.Restore(fd, state)
		return nil, fmt.Errorf("%w: no password was given; nothing was changed", errInterrupted)
	}
}

// readNoEcho reads a line from the terminal fd with echo off, as
// term.ReadPassword does, except that Ctrl-D on an empty line ends it with
// io.EOF: ReadPassword took the terminal's end of input for an empty read
// and waited on for ever. The terminal's modes are put back after.
func readNoEcho(fd int) ([]byte, error) {
	t, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return nil, err
	}
	old := *t
	t.Lflag &^= unix.ECHO
	t.Lflag |= unix.ICANON | unix.ISIG
	t.Iflag |= unix.ICRNL
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, t); err != nil {
		return nil, err
	}
	defer unix.IoctlSetTermios(fd, unix.TCSETS, &old)
	var line []byte
	var buf [256]byte
	for {
		n, err := unix.Read(fd, buf[:])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, err
		}
		if n == 0 { // Ctrl-D: on an empty line the end, else the line as typed
			if len(line) == 0 {
				return nil, io.EOF
			}
			return line, nil
		}
		line = append(line, buf[:n]...)
		if i := bytes.IndexByte(line, '\n'); i >= 0 {
			return bytes.TrimSuffix(line[:i], []byte("\r")), nil
		}
	}
}

// runPasswordCommand runs command with sh and returns what it printed,
// without the final newline. Cancelling ctx (Ctrl-C, SIGTERM) ends it.
// Without a controlling terminal (a timer) it runs in its own process
// group, which is ended whole, and for timeout at most. In a terminal's
// session it stays in snap's group, so that a passphrase prompt on
// /dev/tty works even when standard input is a pipe (a background group
// reading the terminal would be stopped).
func runPasswordCommand(ctx context.Context, e *env, command string, timeout time.Duration) (string, error) {
	ctty := e.controllingTerminal != nil && e.controllingTerminal()
	parent := ctx // the command's: Ctrl-C, a job's timeout
	if !ctty {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	// Output past maxPasswordBytes ends the command ('cat /dev/zero'
	// grew to 7 GB; found by an exploratory test).
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	stdout := &boundedBuffer{max: maxPasswordBytes, over: stop}
	cmd := exec.CommandContext(ctx, "sh", "-c", command)
	if !ctty {
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	}
	// A program the command left running (an agent it started, 'sleep
	// 1000 &') may hold its output open: once the command has exited,
	// what it printed is the password, and that program gets a few
	// seconds to let go. Without the bound snap waited for it, and
	// neither the timeout nor Ctrl-C or SIGTERM ended the wait, which
	// happens after the command's exit (found by an exploratory test: 12
	// minutes).
	cmd.WaitDelay = passwordOutputGrace
	var stderr boundedBuffer
	stderr.max = maxPasswordBytes // kept for the message; the rest dropped
	cmd.Stdout, cmd.Stderr = stdout, &stderr
	type result struct {
		out []byte
		err error
	}
	done := make(chan result, 1)
	go func() {
		err := cmd.Run()
		done <- result{stdout.Bytes(), err}
	}()
	var r result
	select {
	case r = <-done:
	case <-parent.Done():
		// Ctrl-C or SIGTERM ends the wait at once, also the wait for a
		// program the command left holding its output, which WaitDelay
		// ends only when it runs out. A command still running is ended
		// by exec (Cancel) meanwhile: a moment is given for that.
		select {
		case <-done:
		case <-time.After(time.Second):
		}
		return "", passwordCommandStopped(command)
	}
	out, err := r.out, r.err
	if errors.Is(err, exec.ErrWaitDelay) && ctx.Err() == nil {
		fmt.Fprintf(e.stderr, "snap: the password command %q exited, but a process it started kept its output open; snap waited %v for it and went on: redirect that process's output, e.g. 'agent >/dev/null 2>&1 &'\n",
			command, passwordOutputGrace)
		err = nil
	}
	switch {
	case parent.Err() != nil:
		return "", passwordCommandStopped(command)
	case stdout.exceeded:
		return "", fmt.Errorf("password command %q printed more than %d KiB, which no password is; it was stopped: check that it prints the password alone", command, maxPasswordBytes>>10)
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return "", fmt.Errorf("password command %q did not finish within %v; it was stopped", command, timeout)
	case err != nil:
		msg := fmt.Sprintf("password command %q failed: %v", command, err)
		if out := strings.TrimSpace(stderr.String()); out != "" {
			msg += ": " + out
		}
		return "", errors.New(msg)
	}
	pw := strings.TrimRight(string(out), "\r\n")
	if pw == "" {
		return "", fmt.Errorf("password command %q printed nothing", command)
	}
	return pw, nil
}

// stoppedWaiting is an interruption (Ctrl-C, SIGTERM, a job's timeout)
// that ended a wait for something outside snap, which a job's timeout
// error names: "did not finish within 3s" alone left the admin to guess
// that the password command never answered (found by an exploratory
// test).
type stoppedWaiting struct {
	msg       string
	waitedFor string // "the password command \"…\""
}

func (e *stoppedWaiting) Error() string { return e.msg }
func (e *stoppedWaiting) Unwrap() error { return errInterrupted }

func passwordCommandStopped(command string) error {
	return &stoppedWaiting{msg: fmt.Sprintf("%v: password command %q stopped; the repository is untouched", errInterrupted, command),
		waitedFor: fmt.Sprintf("the password command %q", command)}
}

// maxPasswordBytes bounds a password read from a file or a command: a
// passphrase is a line; a file or a command's output of gigabytes (the
// wrong file, 'cat /dev/zero') must not fill memory.
const maxPasswordBytes = 64 << 10

// readBounded reads the file name, refusing one of more than max bytes.
// Ctrl-C or SIGTERM (ctx) end the wait for a FIFO's writer (a password
// file given as <(gpg -d …), waiting for a passphrase), which went on
// until the writer closed (found by a re-test); the read itself goes on
// in the background until then.
func readBounded(ctx context.Context, name string, max int) ([]byte, error) {
	type result struct {
		b   []byte
		err error
	}
	done := make(chan result, 1)
	go func() {
		f, err := os.Open(name)
		if err != nil {
			done <- result{nil, err}
			return
		}
		defer f.Close()
		b, err := io.ReadAll(io.LimitReader(f, int64(max)+1))
		done <- result{b, err}
	}()
	var r result
	select {
	case r = <-done:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if r.err != nil {
		return nil, r.err
	}
	if len(r.b) > max {
		return nil, fmt.Errorf("%s holds more than %d KiB, which no password is: is it the right file?", name, max>>10)
	}
	return r.b, nil
}

// boundedBuffer keeps the first max bytes written to it; past them it
// drops the rest, notes that it did, and calls over (once). It has no
// ReadFrom (an embedded bytes.Buffer's would let io.Copy past the bound).
type boundedBuffer struct {
	buf      bytes.Buffer
	max      int
	exceeded bool
	over     func()
}

func (b *boundedBuffer) Write(p []byte) (int, error) {
	if room := b.max - b.buf.Len(); len(p) > room {
		b.buf.Write(p[:max(room, 0)])
		if !b.exceeded && b.over != nil {
			b.over()
		}
		b.exceeded = true
		return len(p), nil
	}
	return b.buf.Write(p)
}

func (b *boundedBuffer) Bytes() []byte  { return b.buf.Bytes() }
func (b *boundedBuffer) String() string { return b.buf.String() }
