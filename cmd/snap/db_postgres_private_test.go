package main

import (
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// privatePostgres starts a PostgreSQL server of the test's own (initdb and
// pg_ctl of the machine's PostgreSQL, run as its postgres user, on a free
// port), for what must not be done to the shared server: its postgres
// database replaced, which ends every other test's session there. It runs
// where the shared server's tests run (SNAP_TEST_POSTGRES set); the
// server is stopped and its files removed when the test ends.
func privatePostgres(t *testing.T) *testServer {
	t.Helper()
	testPostgres(t) // skipped, or failed, as the shared server's tests are
	initdbs, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(initdbs) == 0 {
		t.Fatal("no initdb under /usr/lib/postgresql: install the PostgreSQL server package")
	}
	bin := filepath.Dir(initdbs[len(initdbs)-1])
	pg, err := user.Lookup("postgres")
	if err != nil {
		t.Fatalf("no postgres user to run a private server as: %v", err)
	}
	uid, _ := strconv.Atoi(pg.Uid)
	gid, _ := strconv.Atoi(pg.Gid)
	// Not under t.TempDir: its directories are root's alone.
	dir, err := os.MkdirTemp("", "snap-pg-")
	must(t, err)
	must(t, os.Chmod(dir, 0o755))
	must(t, os.Chown(dir, uid, gid))
	asPostgres := func(name string, args ...string) *exec.Cmd {
		cmd := exec.Command(filepath.Join(bin, name), args...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
		cmd.Dir = dir
		return cmd
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	data := filepath.Join(dir, "data")
	if out, err := asPostgres("initdb", "-D", data, "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8", "--locale=C").CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	opts := "-p " + strconv.Itoa(port) + " -k " + dir + " -c listen_addresses=127.0.0.1 -c fsync=off"
	if out, err := asPostgres("pg_ctl", "-D", data, "-o", opts, "-l", filepath.Join(dir, "log"), "-w", "start").CombinedOutput(); err != nil {
		t.Fatalf("pg_ctl start: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		_ = asPostgres("pg_ctl", "-D", data, "-m", "immediate", "-w", "stop").Run()
		os.RemoveAll(dir)
	})
	u, err := url.Parse("postgres://postgres@127.0.0.1:" + strconv.Itoa(port) + "/postgres")
	must(t, err)
	return &testServer{t: t, kind: "postgres", base: u}
}

// TestPostgresReplaceThePostgresDatabase: restore --db postgres --replace
// replaces the server's postgres database (data kept there, as small
// setups do), running the swap from another database: it failed after the
// whole load with "cannot drop the currently open database" (found by an
// exploratory test).
func TestPostgresReplaceThePostgresDatabase(t *testing.T) {
	t.Parallel()
	pg := privatePostgres(t)
	pg.mustQuery("postgres", "CREATE TABLE kept(a int); INSERT INTO kept VALUES (1), (2);")
	tr := newTestRepo(t)
	tr.mustRun("create", "--db", pg.url("postgres"))
	pg.mustQuery("postgres", "INSERT INTO kept VALUES (3); CREATE TABLE since(b int);")
	res := tr.run("restore", "latest", "--db", "postgres", "--to", pg.url("postgres"), "--replace")
	if res.code != 0 {
		t.Fatalf("restore --db postgres --replace: exit %d\n%s", res.code, res.stderr)
	}
	if got := strings.TrimSpace(pg.mustQuery("postgres", "SELECT count(*) FROM kept;")); got != "2" {
		t.Errorf("rows after the replace: %s, want 2", got)
	}
	if got := strings.TrimSpace(pg.mustQuery("postgres", "SELECT count(*) FROM pg_tables WHERE tablename = 'since';")); got != "0" {
		t.Errorf("a table made since is still there after the replace")
	}
}
