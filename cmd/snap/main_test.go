package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// snapBin is the binary built once for the end-to-end tests, which run it
// as users do: a separate process with flags and environment.
var snapBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "snap-test-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	snapBin = filepath.Join(dir, "snap")
	out, err := exec.Command("go", "build", "-o", snapBin, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build snap: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// testRepo is a repository in a temporary directory with its own cache and
// password, initialised with a cheap KDF so tests stay fast.
type testRepo struct {
	t     *testing.T
	dir   string // scratch directory holding repo/, cache/ and anything else
	repo  string
	cache string
	env   []string
	// wrap, when set, is a command that runs snap: its arguments are
	// followed by snap's path and arguments (a shell that first moves itself
	// into a cgroup, say).
	wrap []string
	// workDir, when set, is the working directory snap runs in.
	workDir string
}

// result is what one snap run printed and returned.
type result struct {
	stdout, stderr string
	code           int
	unindexedPacks int // in-process runs (runIn): the packs the command saved and did not index
}

func newTestRepo(t *testing.T) *testRepo {
	t.Helper()
	tr := newUninitRepo(t)
	tr.mustRun("init", "--kdf-memory", "8", "--kdf-time", "1", "--reserve", "1MiB")
	return tr
}

// newUninitRepo prepares the environment without running init.
func newUninitRepo(t *testing.T) *testRepo {
	t.Helper()
	dir := t.TempDir()
	tr := &testRepo{t: t, dir: dir, repo: filepath.Join(dir, "repo"), cache: filepath.Join(dir, "cache")}
	tr.env = []string{"SNAP_REPOSITORY=" + tr.repo, "SNAP_PASSWORD=test-password", "SNAP_CACHE_DIR=" + tr.cache}
	return tr
}

// run executes snap with the repository's environment plus extra entries
// ("KEY=value") given before the arguments via runEnv.
func (tr *testRepo) run(args ...string) result {
	return tr.runEnv(nil, nil, args...)
}

func (tr *testRepo) runEnv(extraEnv []string, stdin []byte, args ...string) result {
	tr.t.Helper()
	cmd := exec.Command(snapBin, args...)
	if len(tr.wrap) > 0 {
		cmd = exec.Command(tr.wrap[0], append(append(tr.wrap[1:len(tr.wrap):len(tr.wrap)], snapBin), args...)...)
	}
	cmd.Env = append(append(baseEnv(), tr.env...), extraEnv...)
	cmd.Dir = tr.workDir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		tr.t.Fatalf("run snap %v: %v", args, err)
	}
	res := result{stdout: stdout.String(), stderr: stderr.String(), code: code}
	if strings.Contains(res.stderr, "goroutine ") || strings.Contains(res.stderr, "panic:") {
		tr.t.Fatalf("snap %v printed a stack trace:\n%s", args, res.stderr)
	}
	return res
}

// mustRun fails the test unless snap exits 0.
func (tr *testRepo) mustRun(args ...string) result {
	tr.t.Helper()
	res := tr.run(args...)
	if res.code != 0 {
		tr.t.Fatalf("snap %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), res.code, res.stdout, res.stderr)
	}
	return res
}

// baseEnv is the process environment without snap's own variables, so a
// developer's settings cannot leak into tests.
func baseEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SNAP_") && !strings.HasPrefix(kv, "XDG_CACHE_HOME=") {
			out = append(out, kv)
		}
	}
	return out
}

// writeFile creates a file (and its directories) under the scratch dir.
func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}
