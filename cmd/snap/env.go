package main

import (
	"io"
	"os"
	"strings"
	"time"

	"golang.org/x/term"

	"github.com/snap-backup/snap/repo"
	"github.com/snap-backup/snap/repo/retry"
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
	// stdoutTTY: standard output is a terminal, where dump writes no tar.
	stdoutTTY bool
	// controllingTerminal reports whether the process has a controlling
	// terminal (a person's session, even with standard input a pipe): a
	// program run for a password may ask on it (/dev/tty). Asked only
	// when one runs; nil (in tests) means none.
	controllingTerminal func() bool
	// journal is set when stderr is connected to systemd's journal.
	journal bool
	// backendHooks, set only by in-process tests, change how backends
	// are composed (see backend.go); nil in production.
	backendHooks *backendHooks
	// packs records the packs the command saved, in any repository, and
	// which of them it indexed.
	packs packLedger
	// cacheDirs are the index caches the command opened: a command that
	// ends in an internal error marks them for a rebuild (run).
	cacheDirs []string
	// args is the command line run was given.
	args []string
	// tzWarned: the warning about an unknown TZ was given (once a run).
	tzWarned bool
	// reserveWarned holds the repositories (by location) whose space
	// reserve could not be put in place and was warned of: once a run,
	// not once per job of 'snap run' on the same repository.
	reserveWarned map[string]bool
}

// unknownTZ returns TZ when it names a zone that could not be loaded, for
// which Go's time package silently uses UTC (local is time.Local): a
// misspelt TZ=Europe/Berlinn would shift forget's days and list's periods
// without a word. "" when TZ is unset, empty, UTC or loaded.
func unknownTZ(getenv func(string) string, local *time.Location) string {
	tz := strings.TrimPrefix(getenv("TZ"), ":")
	if tz == "" || tz == "UTC" || local.String() != "UTC" {
		return ""
	}
	return tz
}

// warnUnknownTZ warns, once a run, that TZ names no zone known here.
func (e *env) warnUnknownTZ(u *ui) {
	if tz := unknownTZ(e.getenv, time.Local); tz != "" && !e.tzWarned {
		e.tzWarned = true
		u.warnf("TZ=%s names no time zone known here: give a zone of /usr/share/zoneinfo such as Europe/Berlin (install tzdata if it is empty; POSIX rules such as CET-1CEST,M3.5.0,M10.5.0/3 are not read): local times are UTC for this run", tz)
	}
}

// flagGiven reports whether one of the flag names ("--repo", "-r") was
// written on the command line (before a "--"), as opposed to coming from
// its environment variable, which the CLI library does not tell apart.
func (e *env) flagGiven(names ...string) bool {
	for _, a := range e.args {
		if a == "--" {
			break
		}
		for _, n := range names {
			// The flag package takes "-metrics-dir" for "--metrics-dir"
			// (missed, a config's metrics_dir won over the flag; found by
			// a review).
			forms := []string{n}
			if long, ok := strings.CutPrefix(n, "--"); ok {
				forms = append(forms, "-"+long)
			}
			for _, f := range forms {
				if a == f || strings.HasPrefix(a, f+"=") {
					return true
				}
			}
		}
	}
	return false
}

// utf8Locale reports whether the locale's character set is UTF-8: that of
// LC_ALL, else LC_CTYPE, else LANG, the first one set, as the C library
// decides. None set is the C locale, which is ASCII.
func utf8Locale(getenv func(string) string) bool {
	for _, name := range []string{"LC_ALL", "LC_CTYPE", "LANG"} {
		if v := getenv(name); v != "" {
			v = strings.ToLower(v)
			return strings.Contains(v, "utf-8") || strings.Contains(v, "utf8")
		}
	}
	return false
}

// dumbTerminal reports whether TERM says the terminal understands no
// escape sequences (Emacs' shell, some IDE consoles): "\x1b[K" showed
// there as "^[[K" on every redraw of the progress line (found by an
// exploratory test).
func dumbTerminal(getenv func(string) string) bool {
	return getenv("TERM") == "dumb"
}

// backendHooks let tests count requests or inject faults.
type backendHooks struct {
	// wrap goes around every raw backend a command opens, inside the
	// limit and retry wrappers.
	wrap func(repo.Backend) repo.Backend
	// retry replaces the retry wrapper's default backoff.
	retry retry.Options
}

func newEnv() *env {
	return &env{
		stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr,
		getenv: os.Getenv, now: time.Now,
		stdinTTY:            term.IsTerminal(int(os.Stdin.Fd())),
		stderrTTY:           term.IsTerminal(int(os.Stderr.Fd())),
		stdoutTTY:           term.IsTerminal(int(os.Stdout.Fd())),
		controllingTerminal: hasControllingTerminal,
		journal:             underJournal(os.Getenv, os.Stderr),
	}
}

// hasControllingTerminal reports whether /dev/tty opens: the process
// belongs to a terminal's session.
func hasControllingTerminal() bool {
	f, err := os.OpenFile("/dev/tty", os.O_RDWR, 0)
	if err != nil {
		return false
	}
	f.Close()
	return true
}
