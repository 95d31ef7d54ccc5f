package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestPasswordSources: the sources are tried in the documented order, and
// a password command given on the command line wins over a file or a
// password from the environment (a flag wins over the environment).
func TestPasswordSources(t *testing.T) {
	tr := newTestRepo(t)
	good := filepath.Join(tr.dir, "good")
	bad := filepath.Join(tr.dir, "bad")
	writeFile(t, good, []byte("test-password\n"))
	writeFile(t, bad, []byte("wrong\n"))
	cases := []struct {
		env  []string
		args []string
	}{
		{[]string{"SNAP_PASSWORD=wrong"}, []string{"--password-command", "echo test-password"}},
		{[]string{"SNAP_PASSWORD=", "SNAP_PASSWORD_FILE=" + bad}, []string{"--password-command", "echo test-password"}},
		{[]string{"SNAP_PASSWORD=", "SNAP_PASSWORD_COMMAND=echo wrong"}, []string{"--password-file", good}},
		{[]string{"SNAP_PASSWORD=", "SNAP_PASSWORD_COMMAND=echo test-password"}, nil},
		{[]string{"SNAP_PASSWORD=", "SNAP_PASSWORD_FILE=" + good, "SNAP_PASSWORD_COMMAND=echo wrong"}, nil},
		// A command that leaves a program running with its output open
		// (an agent) is waited for, as a shell would.
		{[]string{"SNAP_PASSWORD=", "SNAP_PASSWORD_COMMAND=echo test-password; sleep 6 &"}, nil},
	}
	for _, c := range cases {
		if res := tr.runEnv(c.env, nil, append([]string{"list"}, c.args...)...); res.code != 0 {
			t.Errorf("%v %v: exit %d\n%s", c.env, c.args, res.code, res.stderr)
		}
	}
}

// TestWrongPasswordSaysWhereFrom: a wrong password names where it came
// from (a variable left in the shell is hard to spot among flags,
// variables and the config; found by an exploratory test).
func TestWrongPasswordSaysWhereFrom(t *testing.T) {
	tr := newTestRepo(t)
	bad := filepath.Join(tr.dir, "bad")
	writeFile(t, bad, []byte("wrong\n"))
	for _, c := range []struct {
		env  []string
		args []string
		want string
	}{
		{[]string{"SNAP_PASSWORD=wrong"}, nil, "came from SNAP_PASSWORD)"},
		{[]string{"SNAP_PASSWORD=", "SNAP_PASSWORD_FILE=" + bad}, nil, "came from the password file " + bad + ", which SNAP_PASSWORD_FILE names)"},
		{[]string{"SNAP_PASSWORD="}, []string{"--password-file", bad}, "came from the password file " + bad + ")"},
		{nil, []string{"--password-command", "echo wrong"}, "came from --password-command)"},
		// A command that printed a notice of its own before the password.
		{nil, []string{"--password-command", "echo 'unlocking the store'; echo test-password"}, "; it is 2 lines, which all count as part of it"},
		{[]string{"SNAP_PASSWORD=test-password\n"}, nil, "; it ends with a newline, which counts as part of it"},
		{[]string{"SNAP_PASSWORD=test-password "}, nil, "came from SNAP_PASSWORD; it begins or ends with a blank"},
	} {
		// key add and key passwd said neither (found by an exploratory
		// test).
		for _, cmd := range [][]string{{"list"}, {"key", "add"}, {"key", "passwd"}} {
			env := append([]string{"SNAP_NEW_PASSWORD=another-long-password"}, c.env...)
			res := tr.runEnv(env, nil, append(cmd, c.args...)...)
			if res.code != exitWrongPass || !strings.Contains(res.stderr, c.want) {
				t.Errorf("%v %v %v: exit %d, want %q in:\n%s", cmd, c.env, c.args, res.code, c.want, res.stderr)
			}
		}
	}
	// From the config: its key is named, not a flag (found in review).
	cfg := filepath.Join(tr.dir, "snap.toml")
	for key, value := range map[string]string{"password_command": "echo wrong", "password_file": bad} {
		writeFile(t, cfg, []byte("repository = \""+tr.repo+"\"\n"+key+" = \""+value+"\"\n"))
		res := tr.runConfig(nil, "list", "--config", cfg)
		if res.code != exitWrongPass || !strings.Contains(res.stderr, "the config's "+key) {
			t.Errorf("%s in the config: exit %d\n%s", key, res.code, res.stderr)
		}
	}
}

// TestCopyWrongPasswordSaysWhereFrom: copy's target, opened with the
// source's password when no target password is given, says so when that
// password is wrong there; a target password that is given is named as
// the source's is (both went unsaid; found by an exploratory test).
func TestCopyWrongPasswordSaysWhereFrom(t *testing.T) {
	tr := newTestRepo(t)
	src := filepath.Join(tr.dir, "src")
	writeFile(t, filepath.Join(src, "f"), []byte("f"))
	tr.mustRun("create", src)
	dst := filepath.Join(tr.dir, "dst")
	if res := tr.runEnv([]string{"SNAP_PASSWORD=other-password"}, nil, "-r", dst, "init", "--kdf-memory", "8", "--kdf-time", "1"); res.code != 0 {
		t.Fatalf("init of the target: exit %d: %s", res.code, res.stderr)
	}
	bad := filepath.Join(tr.dir, "bad")
	writeFile(t, bad, []byte("wrong\n"))
	for _, c := range []struct {
		args []string
		want string
	}{
		{nil, "came from the source repository's password, as none of --to-password-file, --to-password-command and SNAP_TO_PASSWORD is set)"},
		{[]string{"--to-password-file", bad}, "came from the password file " + bad + ")"},
	} {
		res := tr.run(append([]string{"copy", "--to", dst}, c.args...)...)
		if res.code != exitWrongPass || !strings.Contains(res.stderr, c.want) {
			t.Errorf("copy %v: exit %d, want %q in:\n%s", c.args, res.code, c.want, res.stderr)
		}
	}
	res := tr.runEnv([]string{"SNAP_FROM_PASSWORD=wrong"}, nil, "-r", filepath.Join(tr.dir, "new"), "init", "--copy-chunker-params-from", dst, "--kdf-memory", "8", "--kdf-time", "1")
	if res.code != exitWrongPass || !strings.Contains(res.stderr, "came from SNAP_FROM_PASSWORD)") {
		t.Errorf("init --copy-chunker-params-from with a wrong SNAP_FROM_PASSWORD: exit %d\n%s", res.code, res.stderr)
	}
}

// TestPasswordCommandStopped: an interrupted snap ends its password
// command and what that started (exit 130, one line); without a terminal
// one that hangs is stopped after its time.
func TestPasswordCommandStopped(t *testing.T) {
	tr := newTestRepo(t)
	pidFile := filepath.Join(tr.dir, "pid")
	cmd, out := tr.start([]string{"SNAP_PASSWORD=", "SNAP_PASSWORD_COMMAND=sleep 60 & echo $! > " + pidFile + "; wait"}, "list")
	var pid int
	for deadline := time.Now().Add(20 * time.Second); pid == 0; time.Sleep(10 * time.Millisecond) {
		if b, err := os.ReadFile(pidFile); err == nil && strings.HasSuffix(string(b), "\n") {
			pid, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			t.Fatalf("the password command did not start\n%s", out)
		}
	}
	must(t, cmd.Process.Signal(syscall.SIGTERM))
	_ = cmd.Wait()
	if code := cmd.ProcessState.ExitCode(); code != exitInterrupted || !strings.Contains(out.String(), "password command") {
		t.Errorf("interrupted during the password command: exit %d, want %d\n%s", code, exitInterrupted, out)
	}
	alive := true
	for deadline := time.Now().Add(5 * time.Second); alive && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		alive = syscall.Kill(pid, 0) == nil
	}
	if alive {
		_ = syscall.Kill(pid, syscall.SIGKILL)
		t.Error("the password command's child outlived snap")
	}

	start := time.Now()
	_, err := runPasswordCommand(context.Background(), &env{}, "sleep 60", 300*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "did not finish within 300ms") || time.Since(start) > 10*time.Second {
		t.Errorf("a hanging password command: %v after %v", err, time.Since(start))
	}

	// A program the command left running with its output open: the
	// password is what the command printed, after passwordOutputGrace,
	// with a note; snap waited for that program, past the timeout and
	// deaf to signals (found by an exploratory test).
	var stderr bytes.Buffer
	start = time.Now()
	pw, err := runPasswordCommand(context.Background(), &env{stderr: &stderr}, "echo secret; sleep 60 &", time.Minute)
	if err != nil || pw != "secret" || time.Since(start) > passwordOutputGrace+5*time.Second || !strings.Contains(stderr.String(), "kept its output open") {
		t.Errorf("a password command that left a program running: %q, %v after %v; %s", pw, err, time.Since(start), stderr.String())
	}
	// And a timeout or an interrupt in that wait ends it.
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start = time.Now()
	if _, err := runPasswordCommand(ctx, &env{stderr: &stderr}, "sleep 60 & sleep 0.1; echo x", time.Minute); err == nil || time.Since(start) > 3*time.Second {
		t.Errorf("interrupted while a left program held the output: %v after %v", err, time.Since(start))
	}
}

// TestPasswordSourceErrors: a password file that cannot be read names the
// flag and variables that give one; a failed password command's message
// ends with its error output, or with its status alone.
func TestPasswordSourceErrors(t *testing.T) {
	tr := newTestRepo(t)
	res := tr.runEnv([]string{"SNAP_PASSWORD="}, nil, "list", "--password-file", filepath.Join(tr.dir, "nonexistent"))
	if res.code != exitFatal || !strings.Contains(res.stderr, "give a readable file with --password-file or SNAP_PASSWORD_FILE") {
		t.Errorf("missing password file: exit %d: %s", res.code, res.stderr)
	}
	res = tr.runEnv([]string{"SNAP_PASSWORD="}, nil, "list", "--password-command", "false")
	if !strings.HasSuffix(res.stderr, `password command "false" failed: exit status 1`+"\n") {
		t.Errorf("failed password command: %q", res.stderr)
	}
	// Gigabytes of output, or a file of them, are not read (they filled
	// memory; found by an exploratory test).
	res = tr.runEnv([]string{"SNAP_PASSWORD="}, nil, "list", "--password-command", "yes")
	if res.code != exitFatal || !strings.Contains(res.stderr, `password command "yes" printed more than 64 KiB`) {
		t.Errorf("endless password command: exit %d: %s", res.code, res.stderr)
	}
	big := filepath.Join(tr.dir, "big")
	writeFile(t, big, bytes.Repeat([]byte("x"), 65<<10))
	res = tr.runEnv([]string{"SNAP_PASSWORD="}, nil, "list", "--password-file", big)
	if res.code != exitFatal || !strings.Contains(res.stderr, "holds more than 64 KiB, which no password is") {
		t.Errorf("huge password file: exit %d: %s", res.code, res.stderr)
	}
	// The config's file: the variables do not replace a job's own, so the
	// message names the key to fix, the job's or the file's.
	src := filepath.Join(tr.dir, "src")
	writeFile(t, filepath.Join(src, "f"), []byte("x"))
	cfg := tr.writeConfig(`[jobs.own]
paths = ["` + src + `"]
password_file = "nonexistent"

[jobs.inherits]
paths = ["` + src + `"]
`)
	res = tr.runConfig([]string{"SNAP_PASSWORD_FILE=" + filepath.Join(tr.dir, "password")}, "run", "own", "--config", cfg)
	if res.code != exitFatal || !strings.Contains(res.stderr, "; fix jobs.own.password_file in "+cfg) || strings.Contains(res.stderr, "SNAP_PASSWORD") {
		t.Errorf("a job's missing password file: exit %d: %s", res.code, res.stderr)
	}
	must(t, os.Rename(filepath.Join(tr.dir, "password"), filepath.Join(tr.dir, "password.moved")))
	res = tr.runConfig(nil, "run", "inherits", "--config", cfg)
	if res.code != exitFatal || !strings.Contains(res.stderr, "; fix password_file in "+cfg) {
		t.Errorf("the file's missing password file: exit %d: %s", res.code, res.stderr)
	}
}

// TestPasswordFlagsBoth: a password file and a password command on the
// command line are a mistake (exit 2), as they are in the config file;
// the file used to win silently.
func TestPasswordFlagsBoth(t *testing.T) {
	tr := newTestRepo(t)
	pw := filepath.Join(tr.dir, "pw")
	writeFile(t, pw, []byte("test-password\n"))
	res := tr.runEnv([]string{"SNAP_PASSWORD="}, nil, "list", "--password-file", pw, "--password-command", "echo test-password")
	if res.code != exitUsage || !strings.Contains(res.stderr, "give a repository password file or a password command, not both") {
		t.Errorf("both password flags: exit %d: %s", res.code, res.stderr)
	}
}

// TestPasswordPromptInterrupted: Ctrl-C at the password prompt ends snap
// at once (exit 130), with the terminal's echo back on; the prompt used to
// wait for Enter. script(1) gives snap a terminal, and the Ctrl-C goes in
// through it. The shell around snap traps SIGINT so that it goes on to run
// stty: dash (script's shell when SHELL is unset, as under CI) dies of the
// signal otherwise, where bash waits to see whether snap did.
func TestPasswordPromptInterrupted(t *testing.T) {
	tr := newTestRepo(t)
	start := time.Now()
	out, err := atPrompt(t, tr, "trap : INT; "+snapBin+" list; stty -a", []byte{3}) // Ctrl-C
	if err != nil {
		t.Fatalf("snap at the prompt after Ctrl-C: %v\n%s", err, out)
	}
	if !strings.Contains(out, "interrupted: no password was given; nothing was changed\r\n") || !regexp.MustCompile(`[; ]echo[ ;]`).MatchString(out) {
		t.Errorf("after Ctrl-C at the prompt (%v): want the interruption and echo on again:\n%s", time.Since(start), out)
	}
}

// atPrompt runs the shell command line under script(1), which gives snap
// a terminal, types input once snap asks for the repository password, and
// returns what the terminal showed; an error when it has not ended 10 s
// after the input. It skips the test without script(1).
func atPrompt(t *testing.T, tr *testRepo, line string, input []byte) (string, error) {
	t.Helper()
	if _, err := exec.LookPath("script"); err != nil {
		t.Skip("script(1) from util-linux is not installed")
	}
	cmd := exec.Command("script", "-qec", line, "/dev/null")
	cmd.Env = append(append(baseEnv(), tr.env...), "SNAP_PASSWORD=", "SHELL=/bin/sh") // one shell everywhere
	stdin, err := cmd.StdinPipe()
	must(t, err)
	var out lockedBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	must(t, cmd.Start())
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(out.String(), "enter repository password:") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond) // the prompt is written just before the read starts
	_, _ = stdin.Write(input)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return out.String(), err
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		return out.String(), fmt.Errorf("still waiting 10 s after the input")
	}
}

// lockedBuffer is a bytes.Buffer that a command writes while the test
// reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestPasswordPromptTypedAndEnded: at the prompt, a password typed and
// entered opens the repository (without echo: the password does not show
// in the terminal's output); Ctrl-D on an empty line ends the prompt with
// one line and exit 2, echo on again (it waited for ever: x/term's
// ReadPassword took the end of input for an empty read).
func TestPasswordPromptTypedAndEnded(t *testing.T) {
	tr := newTestRepo(t)
	run := func(input []byte) (string, error) {
		return atPrompt(t, tr, snapBin+" list; echo \"status $?\"; stty -a", input)
	}
	out, err := run([]byte("test-password\r"))
	if err != nil || !strings.Contains(out, "status 0") || strings.Contains(out, "test-password") {
		t.Errorf("password typed at the prompt (%v):\n%s", err, out)
	}
	out, err = run([]byte{4}) // Ctrl-D
	if err != nil || !strings.Contains(out, "the input ended (Ctrl-D)") || !strings.Contains(out, "status 2") || !regexp.MustCompile(`[; ]echo[ ;]`).MatchString(out) {
		t.Errorf("Ctrl-D at the prompt (%v):\n%s", err, out)
	}
	// An empty password typed is a usage error too (it exited 1, where
	// an empty SNAP_NEW_PASSWORD exits 2; found by an exploratory test).
	out, err = run([]byte("\r"))
	if err != nil || !strings.Contains(out, "an empty password was typed") || !strings.Contains(out, "status 2") {
		t.Errorf("an empty line at the prompt (%v):\n%s", err, out)
	}
}

// TestNoPasswordNamesConfigKeys: with no password source and no one at
// the terminal, a repository the config file names is told the config's
// keys as well as the flags and variables; one named by --repo is told
// the flags and variables alone (found by an exploratory test: a job
// without a password source was sent to --password-file only).
func TestNoPasswordNamesConfigKeys(t *testing.T) {
	t.Parallel()
	tr := newUninitRepo(t)
	cfg := filepath.Join(tr.dir, "snap.toml")
	writeFile(t, cfg, []byte("repository = \""+tr.repo+"\"\n[jobs.a]\npaths = [\""+tr.dir+"\"]\n"))
	flags := "--password-file (or SNAP_PASSWORD_FILE), SNAP_PASSWORD, or --password-command (or SNAP_PASSWORD_COMMAND)"
	res := tr.runConfig(nil, "init", "--config", cfg)
	if want := "snap: no repository password: set password_file or password_command in " + cfg + ", or use " + flags + "\n"; res.code != exitUsage || res.stderr != want {
		t.Errorf("init of the config's repository without a password: exit %d\n%s\nwant %s", res.code, res.stderr, want)
	}
	res = tr.runConfig(nil, "init", "--config", cfg, "--repo", filepath.Join(tr.dir, "other"))
	if want := "snap: no repository password: use " + flags + "\n"; res.code != exitUsage || res.stderr != want {
		t.Errorf("init of --repo without a password: exit %d\n%s\nwant %s", res.code, res.stderr, want)
	}
}

// TestKeyUnderAddressSpaceLimit: under ulimit -v, a key whose derivation
// may not fit is skipped with an error naming the limit, never tried: one
// tried with too little room ended the process with the Go runtime's
// "fatal error: out of memory" and a stack dump (found by an exploratory
// test, about 1 run in 12 near the edge). Limits around where the
// process's own size leaves about the key's 64 MiB.
func TestKeyUnderAddressSpaceLimit(t *testing.T) {
	t.Parallel()
	tr := newTestRepo(t)
	opened := 0
	for _, limitKiB := range []int{1600000, 1700000, 1750000, 1800000, 1850000, 1900000, 2000000, 2200000, 3000000} {
		for range 2 {
			cmd := exec.Command("sh", "-c", `ulimit -v "$0" && exec "$1" list -q`, fmt.Sprint(limitKiB), snapBin)
			cmd.Env = append(baseEnv(), tr.env...)
			out, err := cmd.CombinedOutput()
			switch {
			case err == nil:
				opened++
			case strings.Contains(string(out), "ulimit -v") && !strings.Contains(string(out), "goroutine"):
			case (strings.Contains(string(out), "fatal error: out of memory") || strings.Contains(string(out), "fatal error: runtime: cannot allocate memory")) &&
				!strings.Contains(string(out), "prefault") && !strings.Contains(string(out), "argon2"),
				strings.Contains(string(out), "pthread_create failed"):
				// The Go runtime's own reservations (some 2 GB of address
				// space) failing outside the key derivation, or a new
				// thread's stack (seen once in CI at 1,800,000 KiB), or the
				// runtime's persistent allocator (seen once at 1,800,000):
				// under such a limit any Go program may end so (usage.md
				// says to limit memory with a control group instead).
			default:
				t.Errorf("ulimit -v %d: %v\n%.600s", limitKiB, err, out)
			}
		}
	}
	if opened == 0 {
		t.Error("the repository opened under no limit up to 3 GB")
	}
	// A new key that cannot be derived under the limit is refused before
	// anything is made; init, key add and key passwd ended the process.
	fresh := filepath.Join(tr.dir, "fresh")
	for _, args := range [][]string{{"init", "--repo", fresh, "--kdf-memory", "2048"}, {"key", "add", "--kdf-memory", "2048"}} {
		cmd := exec.Command("sh", append([]string{"-c", `ulimit -v 2500000 && exec "$@"`, "sh", snapBin}, args...)...)
		cmd.Env = append(baseEnv(), append(tr.env, "SNAP_NEW_PASSWORD=another long passphrase")...)
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), "give a smaller --kdf-memory") || strings.Contains(string(out), "goroutine") {
			t.Errorf("snap %v under ulimit -v: %v\n%.600s", args, err, out)
		}
	}
	if _, err := os.Stat(fresh); !os.IsNotExist(err) {
		t.Errorf("init refused for memory left %s behind: %v", fresh, err)
	}
}

// TestPasswordFIFOStopped: Ctrl-C or SIGTERM end the wait for a password
// file that is a FIFO with no writer yet (<(gpg -d …) waiting for its
// passphrase): exit 130 at once (it waited for the writer; found by a
// re-test).
func TestPasswordFIFOStopped(t *testing.T) {
	tr := newTestRepo(t)
	fifo := filepath.Join(tr.dir, "fifo")
	must(t, syscall.Mkfifo(fifo, 0o600))
	cmd, out := tr.start([]string{"SNAP_PASSWORD="}, "list", "--password-file", fifo)
	time.Sleep(500 * time.Millisecond)
	must(t, cmd.Process.Signal(syscall.SIGTERM))
	start := time.Now()
	_ = cmd.Wait()
	if code := cmd.ProcessState.ExitCode(); code != exitInterrupted || time.Since(start) > 5*time.Second || !strings.Contains(out.String(), "reading the password file") {
		t.Errorf("stopped while waiting for a FIFO's writer: exit %d after %v\n%s", code, time.Since(start), out)
	}
}
