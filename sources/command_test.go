package sources

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"
)

func TestCommandStream(t *testing.T) {
	var lines []string
	c := Command{Name: "sh", Args: []string{"-c", "echo out; echo 'warn 1' >&2; printf 'last' >&2"}, Stderr: func(l string) { lines = append(lines, l) }}
	rc, err := c.Start(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	out, _ := io.ReadAll(rc)
	if err := rc.Close(); err != nil || string(out) != "out\n" {
		t.Fatalf("output %q, close %v", out, err)
	}
	if strings.Join(lines, "|") != "warn 1|last" {
		t.Fatalf("stderr lines %q", lines)
	}
}

// TestCommandOutputHeld: a command that exits while a process it started
// in the background holds its output is read to the end of that output
// (the process's lines are part of it), and a note says why the stream
// waits; one whose output ends with it gets no note.
func TestCommandOutputHeld(t *testing.T) {
	for script, held := range map[string]bool{
		"echo first; (sleep 1; echo later) &":            true,
		"echo first; (sleep 1; echo later) >/dev/null &": false,
		// Output not read yet, and no process left: no note.
		"head -c 60000 /dev/zero | tr '\\0' x; echo": false,
	} {
		var mu sync.Mutex // the note comes from a goroutine of Start's
		var notes []string
		note := func(m string) { mu.Lock(); notes = append(notes, m); mu.Unlock() }
		c := Command{Name: "sh", Args: []string{"-c", script}, Note: note, heldNoteAfter: 300 * time.Millisecond}
		rc, err := c.Start(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(script, "head") {
			time.Sleep(time.Second) // a slow reader: the program has exited
		}
		out, _ := io.ReadAll(rc)
		if err := rc.Close(); err != nil {
			t.Fatalf("%s: %v", script, err)
		}
		want := "first\n"
		switch {
		case strings.HasPrefix(script, "head"):
			want = strings.Repeat("x", 60000) + "\n"
		case held:
			want += "later\n"
		}
		if string(out) != want {
			t.Errorf("%s: output of %d bytes, want %d", script, len(out), len(want))
		}
		mu.Lock()
		if noted := len(notes) == 1 && strings.Contains(notes[0], "still holds its output open"); noted != held {
			t.Errorf("%s: notes %q", script, notes)
		}
		mu.Unlock()
	}
}

func TestCommandFailures(t *testing.T) {
	for script, want := range map[string]string{
		"echo data; echo 'it broke' >&2; exit 3": "sh failed (exit status 3): it broke",
		"echo data; kill -9 $$":                  "sh failed (killed by signal 9 (killed))",
	} {
		c := Command{Name: "sh", Args: []string{"-c", script}}
		rc, err := c.Start(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.ReadAll(rc)
		err = rc.Close()
		var ce *CommandError
		if !errors.As(err, &ce) || err.Error() != want {
			t.Errorf("%s: %v, want %s", script, err, want)
		}
	}
	c := Command{Name: "/nonexistent/tool"}
	if _, err := c.Start(context.Background()); err == nil || !strings.Contains(err.Error(), "/nonexistent/tool") {
		t.Errorf("missing program: %v", err)
	}
}

// A stream closed before its end (the snapshot failed elsewhere) ends the
// program instead of waiting for it.
func TestCommandClosedEarly(t *testing.T) {
	c := Command{Name: "sh", Args: []string{"-c", "yes"}}
	rc, err := c.Start(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1000)
	if _, err := io.ReadFull(rc, buf); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- rc.Close() }()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("a program stopped half-way reported success")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close waited for a program that keeps writing")
	}
}

// TestCommandStoppedReadingEarly: a restore tool that exits 0 before it
// has read the whole dump has not loaded it, and Run says so. (The real
// clients never do this with a dump snap wrote, so sh plays one.)
func TestCommandStoppedReadingEarly(t *testing.T) {
	c := Command{Name: "sh", Args: []string{"-c", "head -c 100 >/dev/null; exit 0"}, Stdin: strings.NewReader(strings.Repeat("INSERT INTO t VALUES(1);\n", 1<<16))}
	err := c.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "stopped reading its input") {
		t.Fatalf("a tool that stopped reading early: %v", err)
	}
}

func TestCommandCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	c := Command{Name: "sh", Args: []string{"-c", "sleep 60 | cat"}}
	rc, err := c.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	time.AfterFunc(100*time.Millisecond, cancel)
	_, _ = io.ReadAll(rc)
	if err := rc.Close(); !errors.Is(err, context.Canceled) || time.Since(start) > 10*time.Second {
		t.Fatalf("cancelled program: %v after %v", err, time.Since(start))
	}
}

// TestCommandStartCancelled: a program not started because the run was
// stopped (another source failed) fails with the context's error, which
// the run does not report in place of the failure that stopped it (it
// read "sqlite3 failed (context canceled)"; found by an exploratory test).
func TestCommandStartCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	c := Command{Name: "sh", Args: []string{"-c", "echo never"}}
	if _, err := c.Start(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Start after the cancel: %v", err)
	}
	if err := c.Run(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Run after the cancel: %v", err)
	}
}

// A program that ignores SIGTERM is killed after killGrace, with what it
// started: the whole process group, not only its leader.
func TestCommandCancelKillsGroup(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	pidFile := filepath.Join(t.TempDir(), "pid")
	c := Command{Name: "sh", Args: []string{"-c", `trap "" TERM; sleep 60 & echo $! > ` + pidFile + `; echo started; wait`}}
	rc, err := c.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	line := make([]byte, 8)
	if _, err := io.ReadAtLeast(rc, line, 1); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	_, _ = io.ReadAll(rc)
	if err := rc.Close(); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled program: %v", err)
	}
	for deadline := time.Now().Add(3 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil || strings.Contains(string(st), ") Z ") {
			return // gone, or a zombie waiting for init
		}
		if time.Now().After(deadline) {
			t.Fatalf("the group's sleep (pid %d) still runs after the program was cancelled", pid)
		}
	}
}

type failingReader struct{ n int }

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n > 0 {
		f.n--
		return copy(p, "SELECT 1;\n"), nil
	}
	return 0, errors.New("blob damaged")
}

// A restore tool whose input fails is killed, never left to treat the
// input it got as complete.
func TestCommandRunInputError(t *testing.T) {
	c := Command{Name: "sh", Args: []string{"-c", "cat > /dev/null; echo finished"}, Stdin: &failingReader{n: 3}}
	var out []string
	c.Stdout = func(l string) { out = append(out, l) }
	err := c.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "blob damaged") {
		t.Fatalf("Run with a failing input: %v", err)
	}
	if len(out) != 0 {
		t.Fatalf("the program went on after its input failed: %q", out)
	}
}

// TestLastLineKeepsCause: the line an error quotes is the last message
// with its indented continuation (libpq's hint), not the hint alone, and a
// sentence's stop between them (they ran together: "Connection refused Is
// the server running"; found by an exploratory test).
func TestLastLineKeepsCause(t *testing.T) {
	var w lineWriter
	w.Write([]byte("pg_dump: starting\npg_dump: error: connection to server at \"127.0.0.1\", port 5433 failed: Connection refused\n"))
	w.Write([]byte("\tIs the server running on that host and accepting TCP/IP connections?\n\n"))
	w.flush()
	want := `pg_dump: error: connection to server at "127.0.0.1", port 5433 failed: Connection refused. Is the server running on that host and accepting TCP/IP connections?`
	if got := w.cause(); got != want {
		t.Errorf("last line %q, want %q", got, want)
	}
	for stderr, want := range map[string]string{
		"tool: cannot open:\n\tno such file\n": "tool: cannot open: no such file",
		"tool: stopped\n  at offset 5\n":       "tool: stopped at offset 5",
	} {
		var w lineWriter
		w.Write([]byte(stderr))
		w.flush()
		if got := w.cause(); got != want {
			t.Errorf("%q: last line %q, want %q", stderr, got, want)
		}
	}
}

// TestCauseIsFirstError: an error quotes the first message that reports
// an error, with its detail, not the consequences printed after it; without
// one, the last message that is not a pointer to --help.
func TestCauseIsFirstError(t *testing.T) {
	for _, c := range []struct{ stderr, want string }{
		{"pg_dump: error: Dumping the contents of table \"big\" failed: PQgetResult() failed.\n" +
			"pg_dump: detail: Error message from server: FATAL:  terminating connection due to administrator command\n" +
			"pg_dump: detail: Command was: COPY public.big (id, s, r) TO stdout;\n" +
			"pg_dumpall: error: pg_dump failed on database \"big\", exiting\n",
			`pg_dump: error: Dumping the contents of table "big" failed: PQgetResult() failed. pg_dump: detail: Error message from server: FATAL:  terminating connection due to administrator command`},
		{"psql:<stdin>:40: ERROR:  new row for relation \"aat\" violates check constraint \"aat_x_check\"\n" +
			"DETAIL:  Failing row contains (1).\nCONTEXT:  COPY aat, line 1: \"1\"\n",
			`psql:<stdin>:40: ERROR:  new row for relation "aat" violates check constraint "aat_x_check"; DETAIL:  Failing row contains (1).`},
		{"psql:<stdin>:12: ERROR:  role \"app\" does not exist\npsql:<stdin>:90: WARNING:  there is no transaction in progress\n",
			`psql:<stdin>:12: ERROR:  role "app" does not exist`},
		{"ERROR 1045 (28000): Access denied for user 'x'@'localhost' (using password: YES)\n",
			`ERROR 1045 (28000): Access denied for user 'x'@'localhost' (using password: YES)`},
		{"tar: You must specify one of the '-Acdtrux', '--delete' or '--test-label' options\nTry 'tar --help' or 'tar --usage' for more information.\n",
			`tar: You must specify one of the '-Acdtrux', '--delete' or '--test-label' options`},
		{"dumping...\nout of disk space;\n", "out of disk space"},
		{"ERROR 1064 (42000) at line 1: You have an error in your SQL syntax\n", "ERROR 1064 (42000) at line 1: You have an error in your SQL syntax"},
		{"Parse error near line 3: no such table: t\n", "Parse error near line 3: no such table: t"},
		{"set on-error: stop\nthere was no error here\nfailed to write: disk full\n", "failed to write: disk full"},
		// An expected error (a role that exists) is not the cause.
		{"psql:<stdin>:14: ERROR:  role \"postgres\" already exists\npsql:<stdin>:900: error: connection to server was lost\n",
			"psql:<stdin>:900: error: connection to server was lost"},
	} {
		w := lineWriter{expected: func(l string) bool { return strings.Contains(l, "already exists") }}
		w.Write([]byte(c.stderr))
		w.flush()
		if got := w.cause(); got != c.want {
			t.Errorf("cause of\n%s= %q\nwant %q", c.stderr, got, c.want)
		}
	}
}

// TestLineWriterCutsLongLines: a line longer than maxLine reaches Stderr
// once, cut, whatever the sizes of the writes: the mariadb client echoes a
// failed statement, and an INSERT of 18 MB went out as 4,400 lines.
func TestLineWriterCutsLongLines(t *testing.T) {
	long := "INSERT INTO b VALUES (1,0x" + strings.Repeat("AB", 100_000) + ");"
	in := "--------------\n" + long + "\n--------------\nERROR 2006 (HY000) at line 38: Server has gone away\n"
	for _, size := range []int{1, 7, 4096, 1 << 20} {
		var got []string
		w := lineWriter{fn: func(l string) { got = append(got, l) }}
		for rest := in; rest != ""; {
			n := min(size, len(rest))
			w.Write([]byte(rest[:n]))
			rest = rest[n:]
		}
		w.flush()
		if len(got) != 4 || got[1] != long[:maxLine]+" …" || got[3] != "ERROR 2006 (HY000) at line 38: Server has gone away" {
			t.Errorf("writes of %d: %d lines, %q", size, len(got), got)
		}
		if c := w.cause(); c != got[3] {
			t.Errorf("writes of %d: cause %q", size, c)
		}
	}
}

// TestLineWriterShowsControlCharacters: what a client prints comes from
// the dump, and reaches the admin's terminal: its control characters (a
// terminal's escape sequences, written by a crafted dump through sqlite3)
// are shown as \xNN; tabs and text beyond ASCII pass.
func TestLineWriterShowsControlCharacters(t *testing.T) {
	var got []string
	w := lineWriter{fn: func(l string) { got = append(got, l) }}
	w.Write([]byte("\x1b]0;owned\x07INJECTED\tline é\x7f\u009b\n"))
	if want := `\x1b]0;owned\x07INJECTED` + "\tline é" + `\x7f\x9b`; len(got) != 1 || got[0] != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

// TestLineWriterBoundsLines: a client that echoes a failed statement of
// many short lines (mariadb-dump writes a row per line) passes on the
// first lines, how many were left out, and the last ones, which hold the
// error; the cause is still that error, with PostgreSQL's HINT after it.
func TestLineWriterBoundsLines(t *testing.T) {
	var in strings.Builder
	in.WriteString("INSERT INTO `t` VALUES\n")
	for i := range 5000 {
		fmt.Fprintf(&in, "(%d,'row %d'),\n", i, i)
	}
	in.WriteString("ERROR 2013 (HY000) at line 38: Lost connection to server during query\n")
	var got []string
	w := lineWriter{fn: func(l string) { got = append(got, l) }, limit: ClientStderrLines}
	w.Write([]byte(in.String()))
	w.flush()
	if len(got) != ClientStderrLines+1+stderrTail || got[ClientStderrLines] != fmt.Sprintf("(… %d more lines of its output left out …)", 5002-ClientStderrLines-stderrTail) ||
		got[len(got)-1] != "ERROR 2013 (HY000) at line 38: Lost connection to server during query" {
		t.Errorf("%d lines passed on; around the cut %q; last %q", len(got), got[ClientStderrLines-1:ClientStderrLines+2], got[len(got)-1])
	}
	if c := w.cause(); c != "ERROR 2013 (HY000) at line 38: Lost connection to server during query" {
		t.Errorf("cause %q", c)
	}

	w = lineWriter{}
	w.Write([]byte("psql:<stdin>:37641: ERROR:  out of shared memory\nHINT:  You might need to increase max_locks_per_transaction.\nCONTEXT:  x\n"))
	w.flush()
	if c := w.cause(); c != "psql:<stdin>:37641: ERROR:  out of shared memory; HINT:  You might need to increase max_locks_per_transaction." {
		t.Errorf("cause with a hint: %q", c)
	}
	if h := pgHint(`connection to server at "127.0.0.1", port 5432 failed: fe_sendauth: no password supplied`); !strings.Contains(h, "PGPASSWORD") || !strings.Contains(h, "passfile") {
		t.Errorf("hint for a missing password: %q", h)
	}
}

// TestStatementMeter: the largest statement of a dump, its ';' and line
// end in different reads or not.
func TestStatementMeter(t *testing.T) {
	dump := "SET x=1;\nINSERT INTO t VALUES\n(1,'a;'),\n(2,'b');\nINSERT INTO t VALUES (3,'c');\nUNFINISHED"
	for _, size := range []int{1, 2, 7, 1 << 10} {
		m := &statementMeter{r: iotest.OneByteReader(strings.NewReader(dump))}
		if size > 1 {
			m.r = strings.NewReader(dump)
		}
		buf := make([]byte, size)
		for {
			if _, err := m.Read(buf); err != nil {
				break
			}
		}
		if got, want := m.largest, int64(len("INSERT INTO t VALUES\n(1,'a;'),\n(2,'b');\n")); got != want {
			t.Errorf("reads of %d: largest %d, want %d", size, got, want)
		}
		if got := m.largestSoFar(); got != m.largest {
			t.Errorf("reads of %d: so far %d", size, got)
		}
	}
	if packetSize(16<<20) != "16 MiB" || packetSize(262144) != "256 KiB" || packetSize(17<<20+1<<19) != "17.5 MiB" {
		t.Errorf("sizes: %s %s %s", packetSize(16<<20), packetSize(262144), packetSize(17<<20+1<<19))
	}
}
