package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestDumpWithoutEndMarker: a dump tool that exits 0 without the comment
// that ends a finished dump (empty output, or a dump cut off with an
// error on stderr) fails the create, and no snapshot is saved. The tools
// are shell stand-ins, as no real pg_dump or mariadb-dump exits 0 with a
// cut-off dump on demand; one that ends its output properly is accepted.
func TestDumpWithoutEndMarker(t *testing.T) {
	t.Parallel()
	tr := newTestRepo(t)
	shims := filepath.Join(tr.dir, "shims")
	env := []string{"PATH=" + shims + ":" + os.Getenv("PATH")}
	for _, c := range []struct {
		tool, url, output, marker string
	}{
		{"pg_dump", "postgres://postgres@127.0.0.1/app", "", "-- PostgreSQL database dump complete"},
		{"mariadb-dump", "mysql://root@127.0.0.1/app", "CREATE TABLE t (x int);\nINSERT INTO t VALUES", "-- Dump completed"},
	} {
		// The stand-in pg_dump also answers snap's read of the database's
		// own properties (pg_dump --create of no schema).
		props := `case " $* " in *" --create "*) echo "CREATE DATABASE app WITH TEMPLATE = template0;"; exit 0;; esac
`
		writeScript(t, filepath.Join(shims, c.tool), `[ "$1" = --version ] && { echo "`+c.tool+` 99"; exit 0; }
`+props+`printf '%s' '`+c.output+`'
echo "`+c.tool+`: Got error: lost connection" >&2
exit 0
`)
		res := tr.runEnv(env, nil, "create", "--db", c.url)
		if res.code != 1 || !strings.Contains(res.stderr, "exited with status 0, but its output") || !strings.Contains(res.stderr, c.marker) {
			t.Errorf("%s without its end marker: exit %d, want 1 and an error naming the marker\n%s", c.tool, res.code, res.stderr)
		}
		writeScript(t, filepath.Join(shims, c.tool), `[ "$1" = --version ] && { echo "`+c.tool+` 99"; exit 0; }
`+props+`printf '%s\n\n--\n%s\n--\n\n' 'CREATE TABLE t (x int);' '`+c.marker+`'
`)
		if res := tr.runEnv(env, nil, "create", "--db", c.url); res.code != 0 {
			t.Errorf("%s with its end marker: exit %d\n%s", c.tool, res.code, res.stderr)
		}
		if c.tool != "pg_dump" {
			continue // mariadb-dump's rows never start a line
		}
		// Cut off right after a row that holds the marker's text: the
		// marker anywhere in the dump's end passed (found by an
		// exploratory test).
		writeScript(t, filepath.Join(shims, c.tool), `[ "$1" = --version ] && { echo "`+c.tool+` 99"; exit 0; }
`+props+`printf '%s\n%s\n' "COPY t (s) FROM stdin;" '`+c.marker+`'
`)
		if res := tr.runEnv(env, nil, "create", "--db", c.url); res.code != 1 || !strings.Contains(res.stderr, "the dump is incomplete") {
			t.Errorf("%s cut off after a row holding its marker: exit %d\n%s", c.tool, res.code, res.stderr)
		}
	}
	list := tr.mustRun("list", "--json")
	if n := strings.Count(list.stdout, `"short_id"`); n != 2 {
		t.Errorf("%d snapshots saved, want the 2 of complete dumps\n%s", n, list.stdout)
	}
}

// TestDumpErrorNamesCause: a pg_dump that cannot connect fails the create
// with libpq's cause (the refused port), not only its hint.
func TestDumpErrorNamesCause(t *testing.T) {
	t.Parallel()
	tr := newTestRepo(t)
	res := tr.run("create", "--db", "postgres://postgres@127.0.0.1:1/app")
	if res.code != 1 || !strings.Contains(res.stderr, "port 1 failed") {
		t.Errorf("pg_dump to a closed port: exit %d, want 1 and the cause\n%s", res.code, res.stderr)
	}
	// Said once: the read of the database's properties failed the same
	// way, and said so too (found by an exploratory test).
	if n := strings.Count(res.stderr, "port 1 failed"); n != 1 || strings.Contains(res.stderr, "could not be read with pg_dump --create") {
		t.Errorf("the cause said %d times:\n%s", n, res.stderr)
	}
	// MariaDB's too (four times: two notes, the tool's line, the error).
	res = tr.run("create", "--db", "mysql://root@127.0.0.1:1/app")
	if n := strings.Count(res.stderr, "Can't connect"); res.code != 1 || n != 1 {
		t.Errorf("mysql to a closed port: exit %d, the cause said %d times\n%s", res.code, n, res.stderr)
	}
}

// TestSQLiteCutDumpSaidOnce: an sqlite3 stand-in that exits 0 with a dump
// cut short fails the create, which says "no snapshot was saved" once (it
// said it twice; found by an exploratory test).
func TestSQLiteCutDumpSaidOnce(t *testing.T) {
	t.Parallel()
	tr := newTestRepo(t)
	shims := filepath.Join(tr.dir, "shims")
	env := []string{"PATH=" + shims + ":" + os.Getenv("PATH")}
	db := filepath.Join(tr.dir, "app.db")
	if out, err := exec.Command("sqlite3", db, "CREATE TABLE t(x);").CombinedOutput(); err != nil {
		t.Fatalf("sqlite3: %v\n%s", err, out)
	}
	writeScript(t, filepath.Join(shims, "sqlite3"), `[ "$1" = --version ] && { echo "3.99.0 2026-01-01"; exit 0; }
cat >/dev/null
printf 'PRAGMA foreign_keys=OFF;\nBEGIN TRANSACTION;\nCREATE TABLE t(x);\n'
exit 0
`)
	res := tr.runEnv(env, nil, "create", "--db", "sqlite://"+db)
	if res.code != 1 || strings.Count(res.stderr, "no snapshot was saved") != 1 {
		t.Errorf("create of a cut SQLite dump: exit %d, want 1 and \"no snapshot was saved\" once\n%s", res.code, res.stderr)
	}
}
