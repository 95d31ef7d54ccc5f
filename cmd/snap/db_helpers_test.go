package main

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io/fs"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Helpers for the tests that run against the real database servers of the
// machine. The servers come from SNAP_TEST_POSTGRES and SNAP_TEST_MYSQL
// (.ci/run sets both): unset, the test is skipped; set but unreachable, it
// fails. Every test works in databases of its own (snaptest_<random>),
// dropped at the end, because other test runs share the servers.

func randomSuffix(t *testing.T) string {
	t.Helper()
	var b [5]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b[:])
}

// testServer is a server URL whose path names no database yet.
type testServer struct {
	t    *testing.T
	kind string // "postgres" or "mysql"
	base *url.URL
}

func serverFromEnv(t *testing.T, variable, kind string) *testServer {
	t.Helper()
	raw := os.Getenv(variable)
	if raw == "" {
		t.Skipf("%s is not set: skipping the test against a real %s server (.ci/run sets it)", variable, kind)
	}
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatalf("%s=%q: %v", variable, raw, err)
	}
	s := &testServer{t: t, kind: kind, base: u}
	// Set but unreachable is a failure, not a skip.
	if kind == "postgres" {
		if _, err := s.query(strings.TrimPrefix(u.Path, "/"), "SELECT 1;"); err != nil {
			t.Fatalf("%s=%s is set but the server cannot be reached: %v", variable, raw, err)
		}
	} else if _, err := s.query("", "SELECT 1;"); err != nil {
		t.Fatalf("%s=%s is set but the server cannot be reached: %v", variable, raw, err)
	}
	return s
}

func testPostgres(t *testing.T) *testServer {
	return serverFromEnv(t, "SNAP_TEST_POSTGRES", "postgres")
}
func testMySQL(t *testing.T) *testServer { return serverFromEnv(t, "SNAP_TEST_MYSQL", "mysql") }

// url returns the server's URL for database db.
func (s *testServer) url(db string) string {
	u := *s.base
	u.Path = "/" + db
	return u.String()
}

// query runs SQL on database db (psql or the mariadb client) and returns
// its output (unaligned, without headers).
func (s *testServer) query(db, sql string, extraEnv ...string) (string, error) {
	var cmd *exec.Cmd
	if s.kind == "postgres" {
		u := *s.base
		u.Path = "/" + db
		cmd = exec.Command("psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "--no-password", "--dbname="+u.String())
	} else {
		args := []string{"--protocol=TCP", "--host=" + s.base.Hostname(), "--batch", "--skip-column-names", "--default-character-set=utf8mb4"}
		if p := s.base.Port(); p != "" {
			args = append(args, "--port="+p)
		}
		if s.base.User != nil {
			args = append(args, "--user="+s.base.User.Username())
		}
		if db != "" {
			args = append(args, db)
		}
		cmd = exec.Command("mariadb", args...)
	}
	cmd.Env = append(os.Environ(), extraEnv...)
	cmd.Stdin = strings.NewReader(sql)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", &queryError{err: err, stderr: stderr.String()}
	}
	return stdout.String(), nil
}

type queryError struct {
	err    error
	stderr string
}

func (e *queryError) Error() string { return e.err.Error() + ": " + strings.TrimSpace(e.stderr) }

func (s *testServer) mustQuery(db, sql string) string {
	s.t.Helper()
	out, err := s.query(db, sql)
	if err != nil {
		s.t.Fatalf("%s on %s: %v\n%s", s.kind, db, err, sql)
	}
	return out
}

// newDatabase creates an empty database with a unique name and drops it
// (and any database named with it as prefix, such as restore targets) when
// the test ends.
func (s *testServer) newDatabase() string {
	s.t.Helper()
	name := "snaptest_" + randomSuffix(s.t)
	s.createDatabase(name)
	s.t.Cleanup(func() {
		if s.kind == "postgres" {
			out, _ := s.query("postgres", "SELECT datname FROM pg_database WHERE datname LIKE '"+name+"%';")
			for _, db := range strings.Fields(out) {
				_, _ = s.query("postgres", `DROP DATABASE IF EXISTS "`+db+`" WITH (FORCE);`)
			}
			return
		}
		out, _ := s.query("", "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE '"+name+"%';")
		for _, db := range strings.Fields(out) {
			_, _ = s.query("", "DROP DATABASE IF EXISTS `"+db+"`;")
		}
	})
	return name
}

func (s *testServer) createDatabase(name string) {
	s.t.Helper()
	if s.kind == "postgres" {
		s.mustQuery("postgres", `CREATE DATABASE "`+name+`";`)
	} else {
		s.mustQuery("", "CREATE DATABASE `"+name+"` CHARACTER SET utf8mb4;")
	}
}

func (s *testServer) dropDatabase(name string) {
	s.t.Helper()
	if s.kind == "postgres" {
		s.mustQuery("postgres", `DROP DATABASE "`+name+`" WITH (FORCE);`)
	} else {
		s.mustQuery("", "DROP DATABASE `"+name+"`;")
	}
}

// readTree returns every regular file and symlink under dir by relative
// path, with its content (or link target).
func readTree(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	// A file that vanishes during the walk (a live database's journal)
	// is not part of the tree.
	vanished := func(p string, err error) bool { return p != dir && errors.Is(err, fs.ErrNotExist) }
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if vanished(p, err) {
			return nil
		}
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		switch {
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if vanished(p, err) {
				return nil
			}
			if err != nil {
				return err
			}
			out[rel] = string(b)
		case fi.Mode()&os.ModeSymlink != 0:
			l, err := os.Readlink(p)
			if err != nil {
				return err
			}
			out[rel] = "-> " + l
		case fi.IsDir() && rel != ".":
			out[rel+"/"] = ""
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func compareTrees(t *testing.T, want, got map[string]string) {
	t.Helper()
	for k, v := range want {
		if g, ok := got[k]; !ok {
			t.Errorf("restored tree lacks %s", k)
		} else if g != v {
			t.Errorf("restored %s differs: %d bytes, want %d", k, len(g), len(v))
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("restored tree has %s, which the original had not", k)
		}
	}
}

// createSummary runs create with --json and returns its summary line.
func (tr *testRepo) createJSON(extraEnv []string, stdin []byte, args ...string) (map[string]any, result) {
	tr.t.Helper()
	res := tr.runEnv(extraEnv, stdin, append([]string{"create", "--json"}, args...)...)
	for _, line := range strings.Split(res.stdout, "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil && m["type"] == "summary" {
			return m, res
		}
	}
	return nil, res
}

// snapshotCount returns how many snapshots the repository lists.
func (tr *testRepo) snapshotCount() int {
	tr.t.Helper()
	res := tr.mustRun("list", "--json")
	var list []map[string]any
	if err := json.Unmarshal([]byte(res.stdout), &list); err != nil {
		tr.t.Fatalf("list --json: %v\n%s", err, res.stdout)
	}
	return len(list)
}

// writeScript writes an executable shell script.
func writeScript(t *testing.T, path, body string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
}

// waitStarted waits until the stand-in tool a test put in snap's PATH has
// touched started, which it does when it reached the point the test wants
// to interrupt; what fails names what.
func waitStarted(t *testing.T, cmd *exec.Cmd, out *bytes.Buffer, started, what string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := os.Stat(started); err == nil {
			return
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			t.Fatalf("%s did not happen\n%s", what, out)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// interruptWait sends snap SIGINT, waits for it and fails unless it
// exited with exitInterrupted; it returns what snap printed.
func interruptWait(t *testing.T, cmd *exec.Cmd, out *bytes.Buffer) string {
	t.Helper()
	must(t, cmd.Process.Signal(os.Interrupt))
	err := cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != exitInterrupted {
		t.Fatalf("interrupted restore: %v, want exit %d\n%s", err, exitInterrupted, out)
	}
	return out.String()
}

// killDuringLoad runs snap with args, its database client tool replaced by
// a shim that passes the load (the run whose arguments match the shell
// case pattern load) what the shell command cut prints of its input; a
// second later (the client has worked through it, with snap there to read
// what it prints: without snap, a client that prints dies of SIGPIPE)
// snap is killed (SIGKILL), as the OOM killer would, and once it is gone
// the client's input ends (the rest is read and dropped).
// killDuringLoad returns once idle says the client's session has ended.
func killDuringLoad(t *testing.T, tr *testRepo, tool, load, cut string, idle func() bool, args ...string) {
	t.Helper()
	real, err := exec.LookPath(tool)
	must(t, err)
	shims := filepath.Join(tr.dir, "shims")
	started := filepath.Join(tr.dir, "started")
	_ = os.Remove(started)
	writeScript(t, filepath.Join(shims, tool), `case " $* " in
`+load+`) ;;
*) exec `+real+` "$@" ;;
esac
{ `+cut+`; sleep 1; touch `+started+`; while kill -0 $PPID 2>/dev/null; do sleep 0.05; done; cat >/dev/null; } | `+real+` "$@"
`)
	cmd, out := tr.start([]string{"PATH=" + shims + ":" + os.Getenv("PATH")}, args...)
	waitStarted(t, cmd, out, started, "the load")
	must(t, cmd.Process.Kill())
	_ = cmd.Wait()
	for deadline := time.Now().Add(30 * time.Second); !idle(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s still connected 30 s after snap was killed", tool)
		}
	}
}
