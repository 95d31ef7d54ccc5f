package sources

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/sys/unix"
)

// snapNote gives note a note of snap's own about a program; without one
// it goes among the program's error lines (to stderr, when there is one),
// in parentheses and marked, so that it is not taken for the program's.
func snapNote(note, stderr func(string), format string, a ...any) {
	msg := fmt.Sprintf(format, a...)
	switch {
	case note != nil:
		note(msg)
	case stderr != nil:
		stderr("(snap: " + msg + ")")
	}
}

// Command is a program snap runs: a dump tool whose standard output is a
// stream, a user's --command, a restore tool reading a dump on its standard
// input, or a hook.
//
// Secrets never go into Args (any user can read a process's arguments in
// /proc); they go into Env, which only the process's owner can read.
type Command struct {
	Name string   // program, looked up in PATH unless it contains a '/'
	Args []string // arguments, without the program
	Env  []string // "KEY=value" entries added to snap's own environment
	// KeepSecrets passes on the repository passwords snap was given in
	// its environment (secretVar), which other programs do not get.
	KeepSecrets bool
	// Unset names variables of snap's environment the program does not
	// get (a hook gets the one password source snap used, not a stale
	// SNAP_PASSWORD beside it).
	Unset []string
	Stdin io.Reader // nil means /dev/null
	// Stderr receives each line the program writes on its standard error,
	// as it is written. Nil drops them (the last one still goes into a
	// failure's error message).
	Stderr func(line string)
	// Stdout receives each line of standard output for Run (Start hands
	// standard output to its caller instead). Nil drops them.
	Stdout func(line string)
	// StdoutData makes Stdout's lines data (a query's answer): passed
	// whole and as written, where lines for the terminal are cut at
	// maxLine and have their control characters shown as \xNN.
	StdoutData bool
	// Display names the program in messages; the program name by default.
	Display string
	// ExpectedError, when set, tells error lines that are expected (a
	// whole-server dump's role that exists already): they are shown, but
	// a failure's message quotes another line.
	ExpectedError func(line string) bool
	// Combined gives Run's program one pipe for standard output and
	// error, whose lines go to Stderr in the order it wrote them (a
	// hook's: two pipes read at once mixed them up, differently on each
	// run; found by an exploratory test). Stdout is not used.
	Combined bool
	// Note receives what snap itself has to say about the program (it
	// left a process holding its output); nil sends it to Stderr, in
	// parentheses, among the program's own lines.
	Note func(msg string)
	// StderrLines, when set, bounds the lines of standard error passed to
	// Stderr: the first StderrLines, then, once the program is done, how
	// many were left out and the last stderrTail. A database client
	// echoes a failed statement whole, and mariadb-dump writes a row per
	// line: one failed INSERT put 4,400 lines of table rows on the
	// terminal and in the journal (found by an exploratory test). The
	// failure's message (CommandError) is found among all of them.
	StderrLines int
	// Hint, when set, may add what to do to the message a failure quotes
	// from standard error ("" for nothing).
	Hint func(cause string) string
	// heldNoteAfter is how long after the program exits Start's output
	// may stay open before snap says a process it left holds it (tests
	// shorten it); 0 is WaitDelay, what a hook is waited for.
	heldNoteAfter time.Duration
	// OutlivesSnap leaves the program running when snap dies without
	// ending it (kill -9, the OOM killer): a hook's, which may be half
	// way through stopping or starting the application. Every other
	// program is killed then (PR_SET_PDEATHSIG): a pg_dump waiting for a
	// table lock went on holding its connection, under PID 1, for as
	// long as the lock was held (found by an exploratory test). (That
	// signal comes when the thread that started the program ends; Go ends
	// a thread only when a goroutine locked to it returns, which snap
	// never does.)
	OutlivesSnap bool
}

// ClientStderrLines is StderrLines for the database tools and a user's
// --command: more than their warnings and notices of a healthy run take.
const ClientStderrLines = 50

// stderrTail is how many of the last lines StderrLines keeps: the error
// that ended the run comes after the statement it echoes.
const stderrTail = 10

// CommandError is a program that failed: it could not be started, exited
// with a non-zero status, or was killed by a signal.
type CommandError struct {
	Name     string // the program as named in messages
	Status   string // "exit status 1", "killed by signal 9 (killed)", or why it did not start
	LastLine string // what it wrote on standard error that says why (lineWriter.cause), if anything
}

func (e *CommandError) Error() string {
	msg := fmt.Sprintf("%s failed (%s)", e.Name, e.Status)
	if e.LastLine != "" {
		msg += ": " + e.LastLine
	}
	return msg
}

// environ is snap's environment as the programs it runs get it: without
// the repository passwords (secretVar) unless keepSecrets.
func environ(keepSecrets bool) []string {
	env := os.Environ()
	if keepSecrets {
		return env
	}
	return slices.DeleteFunc(env, secretVar)
}

// secretVar reports whether the environment entry kv ("KEY=value") holds
// a repository password, or a command that prints one. A dump tool or a
// --command has no use for it, and a command whose output is backed up
// (--command NAME -- env) would store it in the snapshot.
func secretVar(kv string) bool {
	name, _, _ := strings.Cut(kv, "=")
	switch name {
	case "SNAP_PASSWORD", "SNAP_NEW_PASSWORD", "SNAP_TO_PASSWORD", "SNAP_FROM_PASSWORD",
		// A password command may hold the password itself (echo …).
		"SNAP_PASSWORD_COMMAND", "SNAP_NEW_PASSWORD_COMMAND", "SNAP_TO_PASSWORD_COMMAND", "SNAP_FROM_PASSWORD_COMMAND",
		// The bucket's keys: they cannot decrypt it, but they can delete
		// the off-site copy (found by an exploratory test). All of them,
		// the legacy names too: a key ID left without its secret made the
		// aws CLI fail instead of reading its own files (found by a
		// review).
		"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ACCESS_KEY", "AWS_SECRET_KEY":
		return true
	}
	return false
}

// killGrace is how long a cancelled program has to exit after SIGTERM
// before it is killed.
const killGrace = 5 * time.Second

func (c *Command) display() string {
	if c.Display != "" {
		return c.Display
	}
	return c.Name
}

// build prepares the process. It runs in its own process group, so that
// cancelling it also ends what it started (a shell pipeline), and a Ctrl-C
// at the terminal reaches snap, which then ends it in order, rather than
// every process at once (post hooks must still run).
func (c *Command) build(ctx context.Context, kill syscall.Signal) (*exec.Cmd, *groupKill) {
	cmd := exec.CommandContext(ctx, c.Name, c.Args...)
	cmd.Env = append(slices.DeleteFunc(environ(c.KeepSecrets), func(kv string) bool {
		name, _, _ := strings.Cut(kv, "=")
		return slices.Contains(c.Unset, name)
	}), c.Env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if !c.OutlivesSnap {
		cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	}
	gk := &groupKill{}
	cmd.Cancel = func() error {
		if cmd.Process == nil {
			return nil
		}
		pid := cmd.Process.Pid
		if kill != syscall.SIGKILL {
			gk.arm(pid)
		}
		return syscall.Kill(-pid, kill)
	}
	// A little after the group's SIGKILL: Wait then returns even if a
	// process outside the group holds the output pipe open.
	cmd.WaitDelay = killGrace + time.Second
	return cmd, gk
}

// groupKill kills a cancelled program's whole process group killGrace
// after SIGTERM: Go's WaitDelay kills only the leader, and left a dump
// that ignored the signal running, holding its database locks, after snap
// had gone.
type groupKill struct {
	mu    sync.Mutex
	pid   int
	timer *time.Timer
}

func (g *groupKill) arm(pid int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.pid = pid
	g.timer = time.AfterFunc(killGrace, func() { _ = syscall.Kill(-pid, syscall.SIGKILL) })
}

// waited is called once Wait has reaped the leader. A group outlives its
// leader while any member runs, and its ID cannot be given to anyone
// else then; a group with no member left is no longer killed: its ID
// could come back as another process's group.
func (g *groupKill) waited() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.timer != nil && syscall.Kill(-g.pid, 0) == syscall.ESRCH {
		g.timer.Stop()
	}
}

// Start starts the program and returns its standard output. Closing the
// returned reader closes the pipe (a program still writing gets SIGPIPE),
// waits for the program and returns a *CommandError when it failed, or the
// context's error when it was cancelled. Cancelling ctx stops the program.
func (c *Command) Start(ctx context.Context) (io.ReadCloser, error) {
	cmd, gk := c.build(ctx, syscall.SIGTERM)
	cmd.Stdin = c.Stdin
	lines := &lineWriter{fn: c.Stderr, expected: c.ExpectedError, limit: c.StderrLines}
	cmd.Stderr = lines
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, c.startError(ctx, err)
	}
	r := &commandReader{out: out, done: make(chan struct{}), wait: func() error {
		err := cmd.Wait()
		gk.waited()
		lines.flush()
		return c.exitError(ctx, err, lines.cause())
	}}
	heldFor := c.heldNoteAfter
	if heldFor == 0 {
		heldFor = cmd.WaitDelay
	}
	go r.noteHeldOutput(cmd.Process.Pid, heldFor, func() {
		snapNote(c.Note, c.Stderr, "%s exited %v ago, but a process it started still holds its output open: its output is read to the end, so this waits for that process; redirect its output, e.g. 'daemon >/dev/null 2>&1 &'", c.display(), heldFor)
	})
	return r, nil
}

// Run runs the program to the end, passing its output lines to Stdout and
// Stderr. Stdin, when set, is read to the end or until the program exits.
// A read error from Stdin kills the program before its input is closed, so
// a restore tool never mistakes a damaged dump for a complete one.
func (c *Command) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// SIGKILL, not SIGTERM: a restore tool must not get to act on input that
	// ended early (a kernel with a fatal signal pending returns no more data
	// to the process).
	cmd, _ := c.build(ctx, syscall.SIGKILL) // SIGKILL at once: no timer to arm
	var inErr error
	var inMu sync.Mutex
	var in *guardReader
	if c.Stdin != nil {
		in = &guardReader{r: c.Stdin, fail: func(err error) {
			inMu.Lock()
			inErr = err
			inMu.Unlock()
			cancel()
		}}
		cmd.Stdin = in
	}
	errLines := &lineWriter{fn: c.Stderr, expected: c.ExpectedError, limit: c.StderrLines}
	cmd.Stderr = errLines
	outLines := &lineWriter{fn: c.Stdout, data: c.StdoutData}
	cmd.Stdout = outLines
	if c.Combined {
		// The same writer for both: os/exec then gives the program one
		// pipe, so its lines keep their order.
		outLines = errLines
		cmd.Stdout = errLines
	}
	if err := cmd.Start(); err != nil {
		return c.startError(ctx, err)
	}
	err := cmd.Wait()
	if err != nil && cmd.ProcessState != nil && cmd.ProcessState.Success() {
		// The program ran to the end and exited 0; Wait waited (up to
		// WaitDelay) for a process it left behind that holds its output
		// (a hook's 'daemon &'), and ctx may have ended meanwhile. It did
		// not fail, nor was it stopped: the process left behind runs on.
		// Said, as the wait otherwise looks like a slow hook.
		if errors.Is(err, exec.ErrWaitDelay) {
			msg := fmt.Sprintf("%s exited, but a process it started kept its output open; snap waited %v for it and went on: redirect that process's output, e.g. 'daemon >/dev/null 2>&1 &'", c.display(), cmd.WaitDelay)
			snapNote(c.Note, c.Stderr, "%s", msg)
		}
		err = nil
	}
	errLines.flush()
	outLines.flush()
	inMu.Lock()
	defer inMu.Unlock()
	if inErr != nil {
		return fmt.Errorf("reading the input of %s: %w (%s was stopped)", c.display(), inErr, c.display())
	}
	if err := c.exitError(ctx, err, errLines.cause()); err != nil {
		return err
	}
	// A restore tool that exits successfully without having read its
	// input to the end has not loaded all of it.
	if in != nil && !in.eof.Load() {
		return &CommandError{Name: c.display(), Status: "it stopped reading its input before the end, and exited with status 0", LastLine: errLines.cause()}
	}
	return nil
}

// startError is the error of a program that did not start: the context's
// when it was cancelled (another source failed first, and the run
// stopped), so that the failure that stopped the run is the one reported
// (a sibling's "failed (context canceled)" was, found by an exploratory
// test).
func (c *Command) startError(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%s was not started: %w", c.display(), ctx.Err())
	}
	return &CommandError{Name: c.display(), Status: startFailure(err)}
}

func startFailure(err error) string {
	if errors.Is(err, exec.ErrNotFound) {
		return "not found in PATH"
	}
	return err.Error()
}

func (c *Command) exitError(ctx context.Context, err error, last string) error {
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		status := ee.String()
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok {
			switch {
			case ws.Signaled():
				status = fmt.Sprintf("killed by signal %d (%v)", int(ws.Signal()), ws.Signal())
			case ws.Exited():
				status = fmt.Sprintf("exit status %d", ws.ExitStatus())
			}
		}
		if c.Hint != nil {
			if h := c.Hint(last); h != "" {
				last += "; " + h
			}
		}
		return &CommandError{Name: c.display(), Status: status, LastLine: last}
	}
	if errors.Is(err, exec.ErrWaitDelay) {
		return nil // exited successfully; a child it left behind kept a pipe open
	}
	return &CommandError{Name: c.display(), Status: err.Error(), LastLine: last}
}

// commandReader is a running program's standard output.
type commandReader struct {
	out      io.ReadCloser
	wait     func() error
	once     sync.Once
	err      error
	done     chan struct{} // closed at the end of the output, or at Close
	doneOnce sync.Once
}

func (r *commandReader) Read(p []byte) (int, error) {
	n, err := r.out.Read(p)
	if err != nil {
		r.finish()
	}
	return n, err
}

func (r *commandReader) finish() { r.doneOnce.Do(func() { close(r.done) }) }

func (r *commandReader) Close() error {
	r.once.Do(func() {
		r.finish()
		_ = r.out.Close()
		r.err = r.wait()
	})
	return r.err
}

// noteHeldOutput calls note when the program pid has exited and its output
// is still open after heldFor: a process it started in the background
// ('daemon &') holds it, and the stream, read to its end, waits for that
// process without a word (found by an exploratory test; a hook's wait is
// said too). The program is waited for without being reaped (WNOWAIT):
// Close's Wait reaps it.
func (r *commandReader) noteHeldOutput(pid int, heldFor time.Duration, note func()) {
	var info unix.Siginfo
	for {
		err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return // reaped already: Close ran
		}
		break
	}
	t := time.NewTimer(heldFor)
	defer t.Stop()
	select {
	case <-r.done:
	case <-t.C:
		select {
		case <-r.done:
		default:
			// Output the reader has not read yet is no sign of a
			// process left behind (a slow repository): only a writer
			// still holding the pipe is, which the kernel tells (no
			// POLLHUP while one is left).
			if r.writerLeft() {
				note()
			}
		}
	}
}

// writerLeft reports whether a process still holds the output pipe open
// for writing; when it cannot tell, it says so.
func (r *commandReader) writerLeft() bool {
	f, ok := r.out.(interface {
		SyscallConn() (syscall.RawConn, error)
	})
	if !ok {
		return true
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return true
	}
	left := true
	_ = rc.Control(func(fd uintptr) {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		if n, err := unix.Poll(fds, 0); err == nil && n > 0 && fds[0].Revents&unix.POLLHUP != 0 {
			left = false
		}
	})
	return left
}

// guardReader reports a read error (other than the end of the input)
// before returning it, and records reaching the end.
type guardReader struct {
	r    io.Reader
	fail func(error)
	eof  atomic.Bool
}

func (g *guardReader) Read(p []byte) (int, error) {
	n, err := g.r.Read(p)
	switch {
	case err == io.EOF:
		g.eof.Store(true)
	case err != nil:
		g.fail(err)
	}
	return n, err
}

// maxLine bounds a line handed to a line callback; longer ones are split.
const maxLine = 4096

// lineWriter splits what a program writes into lines for a callback and
// remembers the last non-empty one, with the indented lines that follow
// it: libpq puts the cause first and a hint on an indented line after it
// ("connection to server at … port 5433 failed: Connection refused" and
// "\tIs the server running on that host…?"), and the hint alone does not
// say what went wrong.
type lineWriter struct {
	mu       sync.Mutex
	fn       func(string)
	expected func(string) bool // error lines that are not a failure's cause
	buf      []byte
	// last and prev are the last two messages (a line with its indented
	// continuation); firstErr is the first message that reports an error,
	// with the "detail:" message after it (errOpen: it takes the
	// continuation of the message being read).
	last, prev, firstErr          string
	errOpen, detailDone, hintDone bool
	cut                           bool // the rest of a long line is being left out
	data                          bool // lines are data: whole, as written
	// limit is Command.StderrLines: shown counts the lines passed on,
	// tail keeps the last ones of those left out (left, in all).
	limit, shown, left int
	tail               []string
}

// errorWord finds a message that reports an error: "pg_dump: error:",
// "ERROR:  relation …", "ERROR 1045 (28000) at line 1:", "FATAL:",
// "Got error: 1045", "Parse error near line 3:"; not a word such as
// "no error" or "on-error" in passing.
var errorWord = regexp.MustCompile(`(?i)(^|[^\w-])(error|fatal|panic)(\s+\d+(\s+\(\w+\))?(\s+at line \d+)?)?\s*:|\berror near line\b`)

// appendBounded adds a continuation to a message, up to maxLine bytes.
func appendBounded(msg, sep, text string) string {
	if len(msg) >= maxLine {
		return msg
	}
	return msg + sep + text
}

// continuationSep is what joins a message and its indented continuation
// on one line: a space after the message's own punctuation, else a full
// stop before a sentence ("… failed: Connection refused. Is the server
// running …?", which a bare space ran together) or a semicolon.
func continuationSep(msg, text string) string {
	if msg == "" || strings.ContainsAny(msg[len(msg)-1:], ".!?:;,") {
		return " "
	}
	switch r, _ := utf8.DecodeRuneInString(text); {
	case unicode.IsUpper(r):
		return ". "
	case unicode.IsLower(r):
		// The sentence goes on: libpq's "the server terminated
		// abnormally" / "before or while processing the request." read
		// "abnormally; before" (found by an exploratory test).
		return " "
	}
	return "; "
}

// detailSep joins a message and its DETAIL or HINT line: "; ", or a space
// after the message's own full stop ("failed.; pg_dump: detail:" read
// oddly; found by an exploratory test).
func detailSep(msg string) string {
	if strings.HasSuffix(msg, ".") {
		return " "
	}
	return "; "
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 && (len(w.buf) < maxLine || w.data) {
			return len(p), nil
		}
		if w.data {
			w.emit(w.buf[:i])
			w.buf = append(w.buf[:0], w.buf[i+1:]...)
			continue
		}
		// A line longer than maxLine is shown cut, once: the mariadb
		// client echoes a failed statement, and an INSERT of 18 MB went
		// to the terminal in 4,400 lines (found by a test).
		switch {
		case w.cut:
		case i < 0 || i > maxLine:
			w.emit(append(w.buf[:maxLine:maxLine], " …"...))
		default:
			w.emit(w.buf[:i])
		}
		if i < 0 {
			w.buf, w.cut = w.buf[:0], true
			continue
		}
		w.buf, w.cut = append(w.buf[:0], w.buf[i+1:]...), false
	}
}

func (w *lineWriter) emit(b []byte) {
	line := strings.TrimRight(string(b), "\r")
	if w.data {
		w.fn(line)
		return
	}
	switch text := strings.TrimSpace(line); {
	case text == "":
	case w.last != "" && (line[0] == ' ' || line[0] == '\t'):
		w.last = appendBounded(w.last, continuationSep(w.last, text), text)
		if w.errOpen {
			w.firstErr = appendBounded(w.firstErr, continuationSep(w.firstErr, text), text)
		}
	default:
		w.prev, w.last = w.last, text
		switch {
		case w.firstErr == "" && errorWord.MatchString(text) && (w.expected == nil || !w.expected(text)):
			w.firstErr, w.errOpen = text, true
		case w.errOpen && !w.detailDone && strings.Contains(strings.ToLower(text), "detail:"):
			w.firstErr, w.detailDone = appendBounded(w.firstErr, detailSep(w.firstErr), text), true
		case w.errOpen && !w.hintDone && strings.HasPrefix(text, "HINT:"):
			// PostgreSQL's way out ("HINT:  You might need to increase
			// max_locks_per_transaction."): the message is where an
			// admin who ran with -q or reads the journal's summary sees it.
			w.firstErr, w.hintDone = appendBounded(w.firstErr, detailSep(w.firstErr), text), true
		default:
			w.errOpen = false
		}
	}
	if w.fn != nil {
		w.pass(printable(line))
	}
}

// pass hands line to the callback within the limit, and keeps the last
// ones beyond it for flush.
func (w *lineWriter) pass(line string) {
	if w.limit == 0 || w.shown < w.limit {
		w.shown++
		w.fn(line)
		return
	}
	w.left++
	if len(w.tail) == stderrTail {
		w.tail = append(w.tail[:0], w.tail[1:]...)
	}
	w.tail = append(w.tail, line)
}

// printable is line with its control characters but tabs shown as \xNN:
// what a client prints comes from the dump, and a crafted one wrote a
// terminal's escape sequences to the admin's terminal through sqlite3's
// output (found by a red-team test).
func printable(line string) string {
	if !strings.ContainsFunc(line, isControl) {
		return line
	}
	var b strings.Builder
	for _, r := range line {
		if isControl(r) {
			fmt.Fprintf(&b, "\\x%02x", r)
		} else {
			b.WriteRune(r)
		}
	}
	return b.String()
}

func isControl(r rune) bool { return r < 0x20 && r != '\t' || r == 0x7f || r >= 0x80 && r < 0xa0 }

func (w *lineWriter) flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) > 0 {
		w.emit(w.buf)
		w.buf = nil
	}
	if n := w.left - len(w.tail); n > 0 {
		w.fn(fmt.Sprintf("(… %d more lines of its output left out …)", n))
	}
	for _, line := range w.tail {
		w.fn(line)
	}
	w.left, w.tail = 0, nil
}

// cause is the message an error quotes from the program's standard error:
// the first that reports an error, with its detail (the root cause: what
// follows is often its consequences, such as psql's CONTEXT line or
// pg_dumpall's "pg_dump failed"); else the last message, unless that is
// only a pointer to --help.
func (w *lineWriter) cause() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	msg := w.last
	switch {
	case w.firstErr != "":
		msg = w.firstErr
	case w.prev != "" && strings.HasPrefix(w.last, "Try '") && strings.Contains(w.last, "--help"):
		msg = w.prev
	}
	// The caller adds "; …" after it.
	return strings.TrimRight(msg, "; ")
}

// ToolVersion returns the first line a program prints for --version, or ""
// when it prints nothing.
func ToolVersion(ctx context.Context, name string) string {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, "--version")
	cmd.Env = environ(false)
	out, err := cmd.Output()
	if err != nil {
		return ""
	}
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	return strings.TrimSpace(line)
}
