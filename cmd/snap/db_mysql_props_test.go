package main

import (
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// mysqlDefaults returns a database's default character set and collation,
// tab-separated.
func (s *testServer) mysqlDefaults(name string) string {
	s.t.Helper()
	return strings.TrimSpace(s.mustQuery("", "SELECT DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = '"+name+"';"))
}

// TestMariaDBNewDatabaseGetsRecordedCharset: a dump of one database has no
// CREATE DATABASE, so a restore that created the database made it utf8mb4
// whatever it had been (found by an exploratory test). The default
// character set and collation are now recorded with the dump, and a
// restore that creates the database uses them, under any name.
func TestMariaDBNewDatabaseGetsRecordedCharset(t *testing.T) {
	my := testMySQL(t)
	tr := newTestRepo(t)
	db := my.newDatabase()
	my.mustQuery("", "ALTER DATABASE `"+db+"` CHARACTER SET latin1 COLLATE latin1_swedish_ci;")
	my.mustQuery(db, "CREATE TABLE t (s VARCHAR(20)); INSERT INTO t VALUES ('Straße');")
	tr.mustRun("create", "--db", my.url(db))
	var list []snapshotJSON
	if err := jsonUnmarshal(tr.mustRun("list", "--json").stdout, &list); err != nil || len(list) != 1 || len(list[0].Sources) != 1 {
		t.Fatalf("list --json: %v %+v", err, list)
	}
	if p := list[0].Sources[0].Properties; p == nil || p.CreateWith != "CHARACTER SET latin1 COLLATE latin1_swedish_ci" || len(p.Statements) != 0 {
		t.Fatalf("recorded properties: %+v", p)
	}

	copyDB := db + "_copy"
	res := tr.mustRun("restore", "latest", "--db", db, "--to", my.url(copyDB))
	if got := my.mysqlDefaults(copyDB); got != "latin1\tlatin1_swedish_ci" {
		t.Errorf("restored under another name, the database's defaults are %q, want latin1, latin1_swedish_ci", got)
	}
	if strings.Contains(res.stderr, "utf8mb4") {
		t.Errorf("a notice about utf8mb4, with the character set recorded:\n%s", res.stderr)
	}
	// The database lost: created again under its own name.
	my.dropDatabase(db)
	tr.mustRun("restore", "latest", "--db", db)
	if got := my.mysqlDefaults(db); got != "latin1\tlatin1_swedish_ci" {
		t.Errorf("recreated database's defaults are %q, want latin1, latin1_swedish_ci", got)
	}
	if rows := my.mustQuery(db, "SELECT s FROM t;"); strings.TrimSpace(rows) != "Straße" {
		t.Errorf("rows: %q", rows)
	}
}

// TestMariaDBCharsetUnreadable: when the database's defaults cannot be read
// as the dump starts (here the client that reads them fails, with an error
// other than a server it cannot reach, which fails the dump), the snapshot
// is saved without them and a note says so; a restore that creates the
// database from it makes it utf8mb4, and says so.
func TestMariaDBCharsetUnreadable(t *testing.T) {
	my := testMySQL(t)
	tr := newTestRepo(t)
	db := my.newDatabase()
	my.mustQuery("", "ALTER DATABASE `"+db+"` CHARACTER SET latin1;")
	my.mustQuery(db, "CREATE TABLE t (i INT); INSERT INTO t VALUES (1);")
	bin := filepath.Join(tr.dir, "bin")
	writeScript(t, filepath.Join(bin, "mariadb"), "echo 'ERROR 1142 (42000): stand-in client' >&2\nexit 1\n")
	res := tr.runEnv([]string{"PATH=" + bin + ":" + os.Getenv("PATH")}, nil, "create", "--db", my.url(db))
	if res.code != 0 || !strings.Contains(res.stderr, "default character set and collation could not be read") {
		t.Fatalf("create with an unreadable character set: exit %d\n%s", res.code, res.stderr)
	}
	copyDB := db + "_copy"
	res = tr.mustRun("restore", "latest", "--db", db, "--to", my.url(copyDB))
	if !strings.Contains(res.stderr, "was created with CHARACTER SET utf8mb4") {
		t.Errorf("no notice that the database was created utf8mb4:\n%s", res.stderr)
	}
	if got := my.mysqlDefaults(copyDB); !strings.HasPrefix(got, "utf8mb4\t") {
		t.Errorf("defaults %q, want utf8mb4", got)
	}
}

// mariadbDumpHistory skips the test unless mariadb-dump knows
// --dump-history (MariaDB 10.11 and later).
func mariadbDumpHistory(t *testing.T) {
	out, err := exec.Command("mariadb-dump", "--version").Output()
	m := regexp.MustCompile(`Distrib (\d+)\.(\d+)\.`).FindSubmatch(out)
	if err != nil || m == nil {
		t.Skipf("mariadb-dump --version: %v %s", err, out)
	}
	major, _ := strconv.Atoi(string(m[1]))
	minor, _ := strconv.Atoi(string(m[2]))
	if major < 10 || major == 10 && minor < 11 {
		t.Skipf("mariadb-dump %s has no --dump-history", out)
	}
}

// TestMariaDBSystemVersionedHistory: the history of a system-versioned
// table comes back (mariadb-dump ran without --dump-history, and a restore
// had the current rows only: found by an exploratory test); with a
// transaction-precise table, which --dump-history cannot dump (it fails the
// whole dump), the backup still succeeds, without the history, and says so.
func TestMariaDBSystemVersionedHistory(t *testing.T) {
	my := testMySQL(t)
	mariadbDumpHistory(t)
	tr := newTestRepo(t)
	db := my.newDatabase()
	my.mustQuery(db, "CREATE TABLE t (id INT PRIMARY KEY, v INT) WITH SYSTEM VERSIONING;"+
		"INSERT INTO t VALUES (1, 1), (2, 2); UPDATE t SET v = 10 WHERE id = 1; UPDATE t SET v = 11 WHERE id = 1; DELETE FROM t WHERE id = 2;")
	const all = "SELECT id, v FROM t FOR SYSTEM_TIME ALL ORDER BY id, v;"
	want := my.mustQuery(db, all)
	if n := strings.Count(want, "\n"); n != 4 {
		t.Fatalf("the history has %d rows, want 4:\n%s", n, want)
	}
	tr.mustRun("create", "--db", my.url(db))
	copyDB := db + "_copy"
	tr.mustRun("restore", "latest", "--db", db, "--to", my.url(copyDB))
	if got := my.mustQuery(copyDB, all); got != want {
		t.Errorf("restored history:\n got %s\nwant %s", got, want)
	}
	if got := my.mustQuery(copyDB, "SELECT id, v FROM t;"); strings.TrimSpace(got) != "1\t11" {
		t.Errorf("restored current rows: %q", got)
	}

	// A whole server's dump (?all; as a user who sees the test's
	// databases only) takes the history too.
	const secret = "history-pw"
	user, _ := my.restrictedUser(db, secret)
	server := *my.base
	server.User = url.UserPassword(user, secret)
	server.Path = "/"
	server.RawQuery = "all"
	tr.mustRun("create", "--db", server.String())
	if dump := tr.mustRun("dump", "latest", "/db/mysql/all.sql").stdout; !strings.Contains(dump, "INSERT INTO `t` (`id`, `v`, row_start, row_end) VALUES") {
		t.Errorf("the whole server's dump lacks the history:\n%s", dump)
	}

	my.mustQuery(db, "CREATE TABLE trx (x INT, s BIGINT UNSIGNED GENERATED ALWAYS AS ROW START, e BIGINT UNSIGNED GENERATED ALWAYS AS ROW END,"+
		" PERIOD FOR SYSTEM_TIME(s, e)) ENGINE=InnoDB WITH SYSTEM VERSIONING; INSERT INTO trx (x) VALUES (1);")
	res := tr.run("create", "--db", my.url(db))
	if res.code != 0 || !strings.Contains(res.stderr, "the history of system-versioned tables is not saved") || !strings.Contains(res.stderr, "`"+db+"`.`trx`") ||
		strings.Contains(res.stderr, db+".t,") {
		t.Fatalf("backup with a transaction-precise table: exit %d\n%s", res.code, res.stderr)
	}
	if dump := tr.mustRun("dump", "latest", "/db/mysql/"+db+".sql").stdout; !strings.Contains(dump, "INSERT INTO `trx`") {
		t.Errorf("the dump lacks the table's rows:\n%s", dump)
	}
}

// TestMariaDBReplaceInterruptedSaysWhatIsLeft: a restore --replace stopped
// while it loads (after the old database was dropped) says what is left and
// to run the restore again; it said "fix the cause", of which a Ctrl-C has
// none.
func TestMariaDBReplaceInterruptedSaysWhatIsLeft(t *testing.T) {
	my := testMySQL(t)
	tr := newTestRepo(t)
	db := my.newDatabase()
	my.mustQuery(db, mysqlSchema)
	tr.mustRun("create", "--db", my.url(db))
	real, err := exec.LookPath("mariadb")
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(tr.dir, "bin")
	started := filepath.Join(tr.dir, "started")
	// The load (the only run with --binary-mode) takes part of the dump,
	// then waits to be stopped; the queries run as they are.
	writeScript(t, filepath.Join(bin, "mariadb"), `case "$*" in
*--binary-mode*) { head -c 2000; touch `+started+`; sleep 60; cat; } | `+real+` "$@" ;;
*) exec `+real+` "$@" ;;
esac
`)
	cmd, out := tr.start([]string{"PATH=" + bin + ":" + os.Getenv("PATH")}, "restore", "latest", "--db", db, "--replace")
	waitStarted(t, cmd, out, started, "the load")
	msg := interruptWait(t, cmd, out)
	if !strings.Contains(msg, "stopped; the old database was dropped before the load") || !strings.Contains(msg, "run the restore again to load all of it") ||
		strings.Contains(msg, "fix the cause") {
		t.Fatalf("interrupted restore --replace:\n%s", msg)
	}
}

// TestRestoreToKindPicksTheDump: with --to, a name is looked for among the
// dumps of that URL's kind only: an SQLite and a MariaDB dump of the same
// name in one snapshot made --db NAME --to mysql://… ambiguous (found by an
// exploratory test).
func TestRestoreToKindPicksTheDump(t *testing.T) {
	my := testMySQL(t)
	tr := newTestRepo(t)
	db := my.newDatabase()
	my.mustQuery(db, "CREATE TABLE t (i INT); INSERT INTO t VALUES (7);")
	file := filepath.Join(tr.dir, db+".db")
	sqliteQuery(t, file, "CREATE TABLE s (x); INSERT INTO s VALUES ('sqlite');")
	tr.mustRun("create", "--db", "sqlite://"+file, "--db", my.url(db))
	if res := tr.run("restore", "latest", "--db", db, "--to", my.url(db+"_x")); res.code != 0 {
		t.Fatalf("restore --to mysql://: exit %d\n%s", res.code, res.stderr)
	}
	if got := my.mustQuery(db+"_x", "SELECT i FROM t;"); strings.TrimSpace(got) != "7" {
		t.Errorf("restored %q", got)
	}
	into := filepath.Join(tr.dir, "copy.db")
	tr.mustRun("restore", "latest", "--db", db, "--to", "sqlite://"+into)
	if got := sqliteQuery(t, into, "SELECT x FROM s;"); strings.TrimSpace(got) != "sqlite" {
		t.Errorf("restored %q", got)
	}
	// Without --to the name stays ambiguous.
	if res := tr.run("restore", "latest", "--db", db); res.code != exitUsage || !strings.Contains(res.stderr, "ambiguous") {
		t.Errorf("restore --db without --to: exit %d\n%s", res.code, res.stderr)
	}
}

// TestDatabaseURLPortOutOfRange: a port outside 1..65535 is a usage error
// (mysql://…:99999/ was accepted).
func TestDatabaseURLPortOutOfRange(t *testing.T) {
	tr := newTestRepo(t)
	for _, u := range []string{"mysql://root@127.0.0.1:99999/x", "postgres://u@h:0/x"} {
		res := tr.run("create", "--db", u)
		if res.code != exitUsage || !strings.Contains(res.stderr, "is not a port number (1 to 65535)") || strings.Count(strings.TrimSpace(res.stderr), "\n") != 0 {
			t.Errorf("create --db %s: exit %d\n%s", u, res.code, res.stderr)
		}
	}
}
