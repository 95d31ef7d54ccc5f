package main

import (
	"encoding/json"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

const pgSchema = `
CREATE TABLE files (id serial PRIMARY KEY, name text NOT NULL, data bytea);
INSERT INTO files (name, data) VALUES ('zero', '\x00ff00'::bytea), ('empty', ''::bytea), ('null', NULL),
  ('binary', decode('000102030405fffefd0a0d5c27', 'hex'));
INSERT INTO files (name, data) SELECT 'gen' || g, decode(repeat(md5(g::text), 20), 'hex') FROM generate_series(1, 300) g;
CREATE TABLE notes (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, body text);
INSERT INTO notes (body) VALUES ('Grüße aus Köln 🚀'), ('日本語のテキスト'), ('Ελληνικά'), (E'tab\tnewline\nbackslash\\ quote''s'), ('👩‍👩‍👧 family');
COMMENT ON TABLE notes IS 'unicode notes ✓';
CREATE SEQUENCE invoice_no START 1000 INCREMENT 7;
SELECT nextval('invoice_no'), nextval('invoice_no');
CREATE VIEW big_files AS SELECT name, length(data) AS size FROM files WHERE length(data) > 100;
SELECT lo_from_bytea(0, decode(repeat('deadbeef00', 20000), 'hex'));
`

// pgState is everything the test compares between a database and its
// restored copy: table contents, the view, the sequences, the large
// objects and the table comment.
const pgState = `
SELECT id, name, encode(data, 'hex') FROM files ORDER BY id;
SELECT id, body FROM notes ORDER BY id;
SELECT last_value, is_called FROM invoice_no;
SELECT last_value, is_called FROM files_id_seq;
SELECT * FROM big_files ORDER BY name;
SELECT oid, md5(lo_get(oid)), length(lo_get(oid)) FROM pg_largeobject_metadata ORDER BY oid;
SELECT obj_description('notes'::regclass, 'pg_class');
`

func TestPostgresWithDirectory(t *testing.T) {
	pg := testPostgres(t)
	tr := newTestRepo(t)
	db := pg.newDatabase()
	pg.mustQuery(db, pgSchema)
	src := filepath.Join(tr.dir, "app")
	writeFile(t, filepath.Join(src, "config", "app.conf"), []byte("db = "+db+"\n"))
	writeFile(t, filepath.Join(src, "uploads", "ünï.bin"), []byte{0, 1, 2, 255})
	writeFile(t, filepath.Join(src, "empty"), nil)

	wantDB := pg.mustQuery(db, pgState)
	if !strings.Contains(wantDB, "Grüße aus Köln 🚀") || !strings.Contains(wantDB, "|100000\n") || !strings.Contains(wantDB, "000102030405fffefd0a0d5c27") {
		t.Fatalf("test data incomplete:\n%s", wantDB)
	}
	wantFiles := readTree(t, src)
	sum, res := tr.createJSON(nil, nil, src, "--db", pg.url(db), "--tag", "app")
	if sum == nil || res.code != 0 {
		t.Fatalf("create: exit %d\n%s\n%s", res.code, res.stdout, res.stderr)
	}
	dumpPath := "/db/postgres/" + db + ".sql"
	if ls := tr.mustRun("ls", "latest"); !strings.Contains(ls.stdout, dumpPath) || !strings.Contains(ls.stdout, src+"/config/app.conf") {
		t.Fatalf("ls lacks the dump or the files:\n%s", ls.stdout)
	}
	var list []snapshotJSON
	if err := json.Unmarshal([]byte(tr.mustRun("list", "--json").stdout), &list); err != nil {
		t.Fatal(err)
	}
	s := list[0].Sources
	if len(s) != 1 || s[0].Kind != "postgres" || s[0].URL != pg.url(db) || s[0].Tool != "pg_dump" ||
		!strings.Contains(s[0].Version, "PostgreSQL") || s[0].Size == 0 || s[0].Path != dumpPath {
		t.Fatalf("recorded source: %+v", s)
	}
	// snap dump writes the plain SQL.
	if d := tr.mustRun("dump", "latest", dumpPath); !strings.Contains(d.stdout, "CREATE TABLE public.notes") {
		t.Fatalf("snap dump of the dump is not pg_dump output:\n%.500s", d.stdout)
	}

	// Change both the database and the directory.
	pg.mustQuery(db, `INSERT INTO notes (body) VALUES ('later'); DELETE FROM files WHERE name = 'zero';
		UPDATE notes SET body = 'changed' WHERE id = 1; SELECT nextval('invoice_no');
		SELECT lo_unlink(oid) FROM pg_largeobject_metadata;
		CREATE OR REPLACE VIEW big_files AS SELECT name, length(data) AS size FROM files WHERE length(data) > 1000;`)
	writeFile(t, filepath.Join(src, "config", "app.conf"), []byte("changed\n"))
	writeFile(t, filepath.Join(src, "new-file"), []byte("new"))
	if pg.mustQuery(db, pgState) == wantDB {
		t.Fatal("database did not change")
	}

	// Restore into a new database and a new directory.
	restored := db + "_restored"
	res = tr.run("restore", "latest", "--db", db, "--to", pg.url(restored))
	if res.code != 0 || !strings.Contains(res.stdout, "(created)") {
		t.Fatalf("restore --db: exit %d\n%s\n%s", res.code, res.stdout, res.stderr)
	}
	// pg_dump's own BEGIN and COMMIT around the large objects meet the
	// restore's transaction: psql's two warnings about it are expected,
	// and not shown.
	if strings.Contains(res.stderr, "transaction in progress") {
		t.Errorf("a successful restore shows psql's nested-transaction warnings:\n%s", res.stderr)
	}
	if got := pg.mustQuery(restored, pgState); got != wantDB {
		t.Fatalf("restored database differs:\n got %s\nwant %s", got, wantDB)
	}
	target := filepath.Join(tr.dir, "restored")
	tr.mustRun("restore", "latest", "--target", target)
	compareTrees(t, wantFiles, readTree(t, filepath.Join(target, src)))
	if b, err := os.ReadFile(filepath.Join(target, dumpPath)); err != nil || !strings.Contains(string(b), "PostgreSQL database dump") {
		t.Fatalf("restore --target did not write the dump as a file: %v", err)
	}

	// A database that holds data is refused without --replace ...
	if res := tr.run("restore", "latest", "--db", dumpPath, "--to", pg.url(restored)); res.code != 1 || !strings.Contains(res.stderr, "--replace") {
		t.Fatalf("restore into a database with data: exit %d, want 1 and a hint at --replace\n%s", res.code, res.stderr)
	}
	// ... also one without a table but with a type and default privileges:
	// it was taken for empty, and the restored tables got those privileges
	// (found by an exploratory test).
	for _, objects := range []string{
		"CREATE TYPE mood AS ENUM ('a'); ALTER DEFAULT PRIVILEGES GRANT SELECT ON TABLES TO PUBLIC;",
		"CREATE TEXT SEARCH CONFIGURATION myts (COPY = english);",
	} {
		almost := pg.newDatabase()
		pg.mustQuery(almost, objects)
		if res := tr.run("restore", "latest", "--db", dumpPath, "--to", pg.url(almost)); res.code != 1 || !strings.Contains(res.stderr, "--replace") {
			t.Fatalf("restore into a database holding %q: exit %d, want 1 and a hint at --replace\n%s", objects, res.code, res.stderr)
		}
	}
	// ... and replaced with it: the original database, as the snapshot
	// recorded it, with the owner, comment, settings and privileges the
	// database it replaces had (a new database had the server's defaults:
	// PUBLIC could connect again).
	pg.mustQuery("postgres", `DO $$BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'snap_test_owner') THEN CREATE ROLE snap_test_owner; END IF; END$$;
		ALTER DATABASE "`+db+`" OWNER TO snap_test_owner; ALTER DATABASE "`+db+`" SET work_mem = '7MB';
		ALTER DATABASE "`+db+`" SET search_path = "$user", public, extra; REVOKE CONNECT ON DATABASE "`+db+`" FROM PUBLIC;
		COMMENT ON DATABASE "`+db+`" IS E'the app''s\n-- Name: `+db+`; Type: DATABASE; Schema: -; Owner: postgres\nCREATE ROLE snap_test_injected;\n\\connect x';
		ALTER ROLE snap_test_owner IN DATABASE "`+db+`" SET statement_timeout = '5s';`)
	// An object of no schema, which the dump creates: pg_dump lists it with
	// the database's properties, and it must not be created twice.
	pg.mustQuery(db, `SET client_min_messages = error; CREATE PUBLICATION snap_test_pub FOR ALL TABLES;`)
	// A default of read-only transactions must not keep the privileges,
	// set after it, from being set.
	pg.mustQuery("postgres", `ALTER DATABASE "`+db+`" SET default_transaction_read_only = on;`)
	props := `SELECT pg_get_userbyid(d.datdba), (SELECT array_agg(a::text ORDER BY a::text) FROM unnest(d.datacl) a), shobj_description(d.oid, 'pg_database'),
		(SELECT array_agg(setrole::regrole::text || ':' || setconfig::text ORDER BY setrole) FROM pg_db_role_setting WHERE setdatabase = d.oid)
		FROM pg_database d WHERE datname = '` + db + `'`
	wantProps := pg.mustQuery("postgres", props)
	if !strings.Contains(wantProps, "snap_test_owner") || !strings.Contains(wantProps, "work_mem=7MB") || !strings.Contains(wantProps, "statement_timeout=5s") {
		t.Fatalf("properties not set: %s", wantProps)
	}
	tr.mustRun("restore", "latest", "--db", dumpPath, "--replace")
	if got := pg.mustQuery(db, pgState); got != wantDB {
		t.Fatalf("database replaced in place differs:\n got %s\nwant %s", got, wantDB)
	}
	if got := pg.mustQuery("postgres", props); got != wantProps {
		t.Fatalf("replaced database's properties:\n got %s\nwant %s", got, wantProps)
	}
	// The comment's lines are the comment's, never statements of their own.
	if got := pg.mustQuery("postgres", "SELECT count(*) FROM pg_roles WHERE rolname = 'snap_test_injected'"); strings.TrimSpace(got) != "0" {
		t.Fatal("a statement inside the database's comment was run by the restore")
	}
	pg.mustQuery("postgres", `ALTER DATABASE "`+db+`" RESET default_transaction_read_only`)
	// The original database dropped: restore by name creates it again.
	pg.dropDatabase(db)
	tr.mustRun("restore", "latest", "--db", db)
	if got := pg.mustQuery(db, pgState); got != wantDB {
		t.Fatalf("recreated database differs:\n got %s\nwant %s", got, wantDB)
	}
}

// TestPostgresPasswordStaysSecret checks that a password in a --db URL
// reaches pg_dump only through PGPASSWORD: never its arguments, snap's
// output or the snapshot. The server here trusts local connections, so a
// recording wrapper around the real pg_dump shows what pg_dump was given.
func TestPostgresPasswordStaysSecret(t *testing.T) {
	pg := testPostgres(t)
	tr := newTestRepo(t)
	db := pg.newDatabase()
	pg.mustQuery(db, "CREATE TABLE t (x int); INSERT INTO t VALUES (42);")
	real, err := exec.LookPath("pg_dump")
	if err != nil {
		t.Fatal(err)
	}
	shims := filepath.Join(tr.dir, "shims")
	record := filepath.Join(tr.dir, "record")
	writeScript(t, filepath.Join(shims, "pg_dump"), `[ "$1" = --version ] || { printf '%s\n' "$@" > `+record+`.args; printf '%s' "$PGPASSWORD" > `+record+`.env; }
exec `+real+` "$@"
`)
	const secret = "s3cr3t-Pässword"
	u := *pg.base
	u.Path = "/" + db
	u.User = url.UserPassword(u.User.Username(), secret)
	env := []string{"PATH=" + shims + ":" + os.Getenv("PATH")}
	sum, res := tr.createJSON(env, nil, "--db", u.String())
	if sum == nil {
		t.Fatalf("create: exit %d\n%s\n%s", res.code, res.stdout, res.stderr)
	}
	args, _ := os.ReadFile(record + ".args")
	pw, _ := os.ReadFile(record + ".env")
	if !strings.Contains(string(args), "--dbname=") || strings.Contains(string(args), "s3cr3t") {
		t.Fatalf("pg_dump arguments: %q", args)
	}
	if string(pw) != secret {
		t.Fatalf("PGPASSWORD given to pg_dump = %q, want the URL's password", pw)
	}
	list := tr.mustRun("list", "--json")
	ls := tr.mustRun("ls", "--json", "latest")
	for what, s := range map[string]string{"create output": res.stdout + res.stderr, "list --json": list.stdout, "ls --json": ls.stdout} {
		if strings.Contains(s, "s3cr3t") || strings.Contains(s, "P%C3%A4ssword") {
			t.Errorf("%s shows the password:\n%s", what, s)
		}
	}
	if !strings.Contains(list.stdout, `"url": "`+pg.url(db)+`"`) {
		t.Errorf("list --json lacks the URL without password:\n%s", list.stdout)
	}
	// A failing dump's error message does not show it either.
	u.Path = "/" + db + "_missing"
	res = tr.runEnv(env, nil, "create", "--db", u.String())
	if res.code != 1 || strings.Contains(res.stderr, "s3cr3t") || !strings.Contains(res.stderr, "does not exist") {
		t.Fatalf("dump of a missing database: exit %d, want 1, the pg_dump error and no password\n%s", res.code, res.stderr)
	}
}

// TestPostgresAllDatabases dumps the whole server with pg_dumpall (not
// restored here: that would touch every database of the shared server).
func TestPostgresAllDatabases(t *testing.T) {
	pg := testPostgres(t)
	tr := newTestRepo(t)
	db := pg.newDatabase()
	pg.mustQuery(db, "CREATE TABLE marker_table (x int);")
	u := *pg.base
	u.Path = "/"
	u.RawQuery = "all"
	sum, res := tr.createJSON(nil, nil, "--db", u.String())
	if sum == nil {
		t.Fatalf("create --db ?all: exit %d\n%s\n%s", res.code, res.stdout, res.stderr)
	}
	out := tr.mustRun("dump", "latest", "/db/postgres/all.sql").stdout
	if !strings.Contains(out, "PostgreSQL database cluster dump") || !strings.Contains(out, "marker_table") {
		t.Fatalf("pg_dumpall output lacks the cluster header or the test table")
	}
	if !strings.Contains(tr.mustRun("list", "--json").stdout, `"tool": "pg_dumpall"`) {
		t.Fatal("list --json does not record pg_dumpall")
	}
	// A whole-server dump goes into a server, not into one database, and
	// only into a server without databases of its own: this one has.
	if res := tr.run("restore", "latest", "--db", "all.sql", "--to", pg.url(db+"_x")); res.code != exitUsage || !strings.Contains(res.stderr, "whole server") {
		t.Errorf("restore of a whole-server dump --to a database: exit %d: %s", res.code, res.stderr)
	}
	res = tr.run("restore", "latest", "--db", "all.sql")
	if res.code != exitFatal || !strings.Contains(res.stderr, "already holds databases (") || !strings.Contains(res.stderr, db) {
		t.Errorf("restore of a whole-server dump into a server with databases: exit %d: %s", res.code, res.stderr)
	}
	// Into an empty server (a psql that says so), a statement that fails
	// fails the restore; a role that exists already does not.
	shims := filepath.Join(tr.dir, "shims")
	writeScript(t, filepath.Join(shims, "psql"), `case " $* " in
" --version ") echo 'psql (PostgreSQL) 15.20 stand-in' ;;
*" -A -t "*) if grep -q string_agg; then echo; else echo "${POSTGRES_OBJECTS:-0}"; fi ;;
*) cat >/dev/null
   echo 'psql:<stdin>:14: ERROR:  role "postgres" already exists' >&2
   [ -n "$FAIL_STATEMENT" ] && echo 'psql:<stdin>:90: ERROR:  relation "public.t" already exists' >&2
   exit 0 ;;
esac
`)
	path := "PATH=" + shims + ":" + os.Getenv("PATH")
	if res := tr.runEnv([]string{path}, nil, "restore", "latest", "--db", "all.sql"); res.code != 0 {
		t.Errorf("whole-server restore with only an existing role: exit %d: %s", res.code, res.stderr)
	}
	// A server whose postgres database has tables of its own would get
	// the dump's rows added to theirs (found by an exploratory test).
	res = tr.runEnv([]string{path, "POSTGRES_OBJECTS=3", "FAIL_STATEMENT=1"}, nil, "restore", "latest", "--db", "all.sql")
	if res.code != exitFatal || !strings.Contains(res.stderr, "objects of its own in its postgres database (3:") || strings.Contains(res.stderr, "statement(s)") {
		t.Errorf("whole-server restore into a server whose postgres database has tables: exit %d: %s", res.code, res.stderr)
	}
	res = tr.runEnv([]string{path, "FAIL_STATEMENT=1"}, nil, "restore", "latest", "--db", "all.sql")
	if res.code != exitFatal || !strings.Contains(res.stderr, `statement(s) of the whole-server dump failed (the first: psql:<stdin>:90: ERROR:  relation "public.t" already exists)`) {
		t.Errorf("whole-server restore with a failed statement: exit %d: %s", res.code, res.stderr)
	}
}

// TestPostgresReplaceInterrupted stops `restore --replace` while psql is
// loading the dump: the load runs in one transaction in a database made
// for it, so the database being replaced keeps its data, the made one is
// dropped again, and the message says so (exit 130).
func TestPostgresReplaceInterrupted(t *testing.T) {
	pg := testPostgres(t)
	tr := newTestRepo(t)
	db := pg.newDatabase()
	pg.mustQuery(db, pgSchema)
	tr.mustRun("create", "--db", pg.url(db))
	pg.mustQuery(db, `INSERT INTO notes (body) VALUES ('after the snapshot');`)
	want := pg.mustQuery(db, pgState)

	// A psql that, for the load, passes on part of the dump and then
	// waits: the signal arrives in the middle of the transaction.
	real, err := exec.LookPath("psql")
	if err != nil {
		t.Fatal(err)
	}
	shims := filepath.Join(tr.dir, "shims")
	started := filepath.Join(tr.dir, "started")
	writeScript(t, filepath.Join(shims, "psql"), `case " $* " in
*" -A "*|" --version ") exec `+real+` "$@" ;;
*) { head -c 20000; touch `+started+`; sleep 60; cat; } | `+real+` "$@" ;;
esac
`)
	cmd, out := tr.start([]string{"PATH=" + shims + ":" + os.Getenv("PATH")}, "restore", "latest", "--db", db, "--replace")
	waitStarted(t, cmd, out, started, "the load")
	time.Sleep(200 * time.Millisecond) // psql has begun the transaction
	if !strings.Contains(interruptWait(t, cmd, out), "rolled back and the database is as it was") {
		t.Errorf("message does not say the database is unchanged:\n%s", out)
	}
	if got := pg.mustQuery(db, pgState); got != want {
		t.Errorf("the database being replaced changed:\n got %s\nwant %s", got, want)
	}
	if left := pg.mustQuery("postgres", "SELECT datname FROM pg_database WHERE datname LIKE '"+db+"_snap_restore_%'"); strings.TrimSpace(left) != "" {
		t.Errorf("databases made for the restore are left: %s", left)
	}
}

// TestPostgresReplaceInterruptedAtCreate: a restore --replace stopped while
// the psql that ran CREATE DATABASE for the replacement is still running
// (the database exists, empty) drops that database again, and says that
// nothing was changed.
func TestPostgresReplaceInterruptedAtCreate(t *testing.T) {
	pg := testPostgres(t)
	tr := newTestRepo(t)
	db := pg.newDatabase()
	pg.mustQuery(db, pgSchema)
	tr.mustRun("create", "--db", pg.url(db))
	want := pg.mustQuery(db, pgState)

	out := interruptAfterCreate(t, tr, "psql", func() bool {
		return strings.TrimSpace(pg.mustQuery("postgres", "SELECT datname FROM pg_database WHERE datname LIKE '"+db+"_snap_restore_%'")) != ""
	}, "restore", "latest", "--db", db, "--replace")
	if !strings.Contains(out, "nothing was changed") {
		t.Errorf("message does not say nothing was changed:\n%s", out)
	}
	if got := pg.mustQuery(db, pgState); got != want {
		t.Errorf("the database being replaced changed:\n got %s\nwant %s", got, want)
	}
	if left := pg.mustQuery("postgres", "SELECT datname FROM pg_database WHERE datname LIKE '"+db+"_snap_restore_%'"); strings.TrimSpace(left) != "" {
		t.Errorf("databases made for the restore are left: %s", left)
	}
}

// interruptAfterCreate runs snap with args, with the database client tool
// replaced by one that runs a script with CREATE DATABASE and then takes
// two seconds more, as a slow CREATE DATABASE would; once created() says
// the database is there, it interrupts snap (which lets the create end),
// and returns its output once it exited with exitInterrupted.
func interruptAfterCreate(t *testing.T, tr *testRepo, tool string, created func() bool, args ...string) string {
	t.Helper()
	real, err := exec.LookPath(tool)
	if err != nil {
		t.Fatal(err)
	}
	shims := filepath.Join(tr.dir, "shims")
	started := filepath.Join(tr.dir, "started")
	writeScript(t, filepath.Join(shims, tool), `script=$(cat)
case "$script" in
*"CREATE DATABASE"*) printf '%s\n' "$script" | `+real+` "$@" && touch `+started+` && sleep 2 ;;
*) printf '%s\n' "$script" | exec `+real+` "$@" ;;
esac
`)
	cmd, out := tr.start([]string{"PATH=" + shims + ":" + os.Getenv("PATH")}, args...)
	waitStarted(t, cmd, out, started, "CREATE DATABASE")
	if !created() {
		_ = cmd.Process.Kill()
		t.Fatal("the shim did not create the database")
	}
	return interruptWait(t, cmd, out)
}

// TestPostgresLargeObjectsLoadRolledBack: pg_dump writes its own BEGIN
// and COMMIT around large objects, which committed the part of the load
// before them (and ran the rest outside any transaction); snap leaves them
// out. A load into an existing empty database that fails after them (a
// GRANT to a role the server lacks) is rolled back whole and the database
// stays empty, where it said the database "now holds part of the dump";
// into a database the restore creates, it is dropped again.
func TestPostgresLargeObjectsLoadRolledBack(t *testing.T) {
	pg := testPostgres(t)
	tr := newTestRepo(t)
	db := pg.newDatabase()
	role := db + "_r"
	pg.mustQuery(db, `CREATE ROLE "`+role+`";
CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t SELECT generate_series(1, 100);
SELECT lo_from_bytea(0, '\x00ff00');
GRANT SELECT ON t TO "`+role+`";`)
	tr.mustRun("create", "--db", pg.url(db))
	pg.mustQuery(db, `REVOKE SELECT ON t FROM "`+role+`"; DROP ROLE "`+role+`";`)

	empty := db + "_empty"
	pg.createDatabase(empty)
	res := tr.run("restore", "latest", "--db", db, "--to", pg.url(empty))
	if res.code != exitFatal || !strings.Contains(res.stderr, "the load was rolled back") || strings.Contains(res.stderr, "part of the dump") {
		t.Errorf("failed load into an existing empty database: exit %d: %s", res.code, res.stderr)
	}
	if n := pg.mustQuery(empty, "SELECT (SELECT count(*) FROM pg_class WHERE relname = 't') + (SELECT count(*) FROM pg_largeobject_metadata);"); strings.TrimSpace(n) != "0" {
		t.Errorf("the failed load left %s objects in the empty database", strings.TrimSpace(n))
	}
	fresh := db + "_fresh"
	res = tr.run("restore", "latest", "--db", db, "--to", pg.url(fresh))
	if res.code != exitFatal || !strings.Contains(res.stderr, "rolled back, and the database this restore created was dropped again") {
		t.Errorf("failed load into a new database: exit %d: %s", res.code, res.stderr)
	}
	if n := pg.mustQuery("postgres", "SELECT count(*) FROM pg_database WHERE datname = '"+fresh+"'"); strings.TrimSpace(n) != "0" {
		t.Errorf("the database made for the failed load is left")
	}
	// --replace over a database with data: the message says the old one
	// is as it was, not that "the database" was dropped (found by an
	// exploratory test).
	full := db + "_full"
	pg.createDatabase(full)
	pg.mustQuery(full, "CREATE TABLE keepme (x int); INSERT INTO keepme VALUES (42);")
	res = tr.run("restore", "latest", "--db", db, "--to", pg.url(full), "--replace")
	if res.code != exitFatal || !strings.Contains(res.stderr, "the new database it was loaded into was dropped again, and "+full+" is as it was") || strings.Contains(res.stderr, "this restore created") {
		t.Errorf("failed --replace: exit %d: %s", res.code, res.stderr)
	}
	if n := pg.mustQuery(full, "SELECT x FROM keepme;"); strings.TrimSpace(n) != "42" {
		t.Errorf("the old database after the failed --replace: %q", n)
	}
}

// TestPostgresNewDatabaseKeepsEncoding: a dump restored into a new
// database gets the dump's encoding; it got the server's default (a LATIN1
// database came back as UTF8, and a UTF8 one as SQL_ASCII on a server
// whose default that is). A locale the encoding does not fit (C.UTF-8 and
// LATIN1) gives way to C, with a note.
func TestPostgresNewDatabaseKeepsEncoding(t *testing.T) {
	pg := testPostgres(t)
	tr := newTestRepo(t)
	db := pg.newDatabase()
	pg.dropDatabase(db)
	pg.mustQuery("postgres", `CREATE DATABASE "`+db+`" TEMPLATE template0 ENCODING 'LATIN1' LOCALE 'C';`)
	// chr(223) is ß in LATIN1, whatever encoding the client speaks.
	pg.mustQuery(db, "CREATE TABLE t (s text); INSERT INTO t VALUES ('Stra' || chr(223) || 'e');")
	tr.mustRun("create", "--db", pg.url(db))
	copyDB := db + "_copy"
	res := tr.mustRun("restore", "latest", "--db", db, "--to", pg.url(copyDB))
	encoding := func(name string) string {
		return strings.TrimSpace(pg.mustQuery("postgres", "SELECT pg_encoding_to_char(encoding) FROM pg_database WHERE datname = '"+name+"';"))
	}
	if got := encoding(copyDB); got != "LATIN1" {
		t.Errorf("restored into a new database with encoding %s, want the dump's LATIN1\n%s%s", got, res.stdout, res.stderr)
	}
	// A server URL with ?all for a one-database dump: refused, not
	// dropped without a word (found by an exploratory test).
	if res := tr.run("restore", "latest", "--db", db, "--to", pg.url("")+"?all"); res.code != exitUsage || !strings.Contains(res.stderr, "is a dump of one database") {
		t.Errorf("--to ?all for a one-database dump: exit %d\n%s", res.code, res.stderr)
	}
	// The database's own owner, privileges and settings are not in the
	// dump, and under another name the recorded ones are not set: the
	// restore says so when they differ from what the new database has
	// (TestPostgresPlainDatabaseToAnotherNameQuiet); this one's are its
	// owner alone, the restoring role.
	if strings.Contains(res.stderr, "was created with the server's defaults") {
		t.Errorf("a warning that the new database has the server's defaults, with nothing else recorded:\n%s", res.stderr)
	}
	if got := strings.TrimSpace(pg.mustQuery(copyDB, "SELECT s = 'Stra' || chr(223) || 'e' FROM t;")); got != "t" {
		t.Errorf("rows of the copy: %q", got)
	}
	// The database was created as recorded: its encoding and its locale.
	if got := strings.TrimSpace(pg.mustQuery("postgres", "SELECT datctype FROM pg_database WHERE datname = '"+copyDB+"';")); got != "C" {
		t.Errorf("restored with locale %s, want the recorded C", got)
	}

	// A snapshot whose recorded locale this server lacks (one from another
	// machine; as for a snapshot made before the properties were recorded,
	// the database is then made from the dump's encoding): a pg_dump that
	// reports locale xx_XX for the database stands in for that machine.
	real, err := exec.LookPath("pg_dump")
	if err != nil {
		t.Fatal(err)
	}
	shims := filepath.Join(tr.dir, "shims")
	writeScript(t, filepath.Join(shims, "pg_dump"), `case " $* " in
*" --create "*) `+real+` "$@" | sed "s/LOCALE = 'C'/LOCALE = 'xx_XX'/" ;;
*) exec `+real+` "$@" ;;
esac
`)
	env := []string{"PATH=" + shims + ":" + os.Getenv("PATH")}
	if res := tr.runEnv(env, nil, "create", "--db", pg.url(db)); res.code != 0 {
		t.Fatalf("create: exit %d: %s", res.code, res.stderr)
	}
	copy2 := db + "_copy2"
	t.Cleanup(func() { pg.dropDatabase(copy2) })
	res = tr.mustRun("restore", "latest", "--db", db, "--to", pg.url(copy2))
	if got := encoding(copy2); got != "LATIN1" || !strings.Contains(res.stderr, "could not be created as recorded (WITH TEMPLATE = template0 ENCODING = 'LATIN1'") {
		t.Errorf("restored with a locale the server lacks: encoding %s, want the dump's LATIN1 and a note\n%s%s", got, res.stdout, res.stderr)
	}
	serverLocale := strings.TrimSpace(pg.mustQuery("postgres", "SELECT datctype FROM pg_database WHERE datname = 'template0';"))
	if serverLocale != "C" && serverLocale != "POSIX" && !strings.Contains(res.stdout+res.stderr, "created with encoding LATIN1, the dump's, and locale C") {
		t.Errorf("no note of the locale C (the server's is %s):\n%s%s", serverLocale, res.stdout, res.stderr)
	}
}

// TestPostgresLongNameAndOptions: a database whose name takes PostgreSQL's
// 63 bytes in fewer than 40 characters is replaced (the temporary name, cut
// at 40 characters, was cut back by the server to the old name: "already
// exists"); a libpq parameter with a blank reaches pg_dump as written (it
// got "+" for the blank). Both found by an exploratory test.
func TestPostgresLongNameAndOptions(t *testing.T) {
	pg := testPostgres(t)
	tr := newTestRepo(t)
	base := pg.newDatabase()
	long := base + "_" + strings.Repeat("日", (62-len(base))/3)
	long += strings.Repeat("x", 63-len(long))
	if utf8.RuneCountInString(long) > 40 {
		t.Fatalf("%q: %d characters, want at most 40", long, utf8.RuneCountInString(long))
	}
	pg.createDatabase(long)
	pg.mustQuery(long, "CREATE TABLE t (n int); INSERT INTO t VALUES (1), (2);")
	tr.mustRun("create", "--db", pg.url(long)+"?options=-c%20lock_timeout%3D2000")
	pg.mustQuery(long, "INSERT INTO t VALUES (3);")
	tr.mustRun("restore", "latest", "--db", long, "--replace")
	if got := strings.TrimSpace(pg.mustQuery(long, "SELECT count(*) FROM t;")); got != "2" {
		t.Errorf("%d-byte name: %s rows after the restore, want 2", len(long), got)
	}
}

// TestPostgresRecreatedDatabaseGetsItsProperties: the database's own owner,
// privileges, settings, comment and connection limit, which a one-database
// pg_dump leaves out, are recorded with the dump; a restore that creates
// the database again under its name sets them, so that a lost database
// comes back with PUBLIC still kept out (it came back with the server's
// defaults, and a warning). Under another name they are not set, and the
// restore warns.
func TestPostgresRecreatedDatabaseGetsItsProperties(t *testing.T) {
	pg := testPostgres(t)
	tr := newTestRepo(t)
	db := pg.newDatabase()
	pg.mustQuery(db, "CREATE TABLE t (x int); INSERT INTO t VALUES (1), (2);")
	pg.mustQuery("postgres", `DO $$BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'snap_test_owner') THEN CREATE ROLE snap_test_owner; END IF; END$$;
		ALTER DATABASE "`+db+`" OWNER TO snap_test_owner; ALTER DATABASE "`+db+`" SET work_mem = '7MB';
		ALTER DATABASE "`+db+`" CONNECTION LIMIT 17; REVOKE CONNECT ON DATABASE "`+db+`" FROM PUBLIC;
		COMMENT ON DATABASE "`+db+`" IS E'the app''s\n-- Name: x; Type: DATABASE; Schema: -; Owner: postgres\nCREATE ROLE snap_test_injected2;';
		ALTER ROLE snap_test_owner IN DATABASE "`+db+`" SET statement_timeout = '5s';
		ALTER DATABASE "`+db+`" SET default_transaction_read_only = on;`)
	props := func(name string) string {
		return pg.mustQuery("postgres", `SELECT pg_get_userbyid(d.datdba), d.datconnlimit, pg_encoding_to_char(d.encoding), d.datcollate,
			(SELECT array_agg(a::text ORDER BY a::text) FROM unnest(d.datacl) a), shobj_description(d.oid, 'pg_database'),
			(SELECT array_agg(setrole::regrole::text || ':' || setconfig::text ORDER BY setrole) FROM pg_db_role_setting WHERE setdatabase = d.oid)
			FROM pg_database d WHERE datname = '`+name+`'`)
	}
	want := props(db)
	if !strings.Contains(want, "snap_test_owner") || !strings.Contains(want, "|17|") || !strings.Contains(want, "work_mem=7MB") {
		t.Fatalf("properties not set: %s", want)
	}
	tr.mustRun("create", "--db", pg.url(db))
	var list []snapshotJSON
	if err := jsonUnmarshal(tr.mustRun("list", "--json").stdout, &list); err != nil || len(list) != 1 ||
		len(list[0].Sources) != 1 || list[0].Sources[0].Properties == nil || len(list[0].Sources[0].Properties.Statements) == 0 {
		t.Fatalf("list --json: the dump's recorded properties: %v %+v", err, list)
	}

	// Under another name: the server's defaults, and a warning that says why.
	other := db + "_other"
	t.Cleanup(func() { pg.dropDatabase(other) })
	res := tr.mustRun("restore", "latest", "--db", db, "--to", pg.url(other))
	if !strings.Contains(res.stderr, "those recorded in the snapshot are "+db+"'s") {
		t.Errorf("restore under another name: no warning that the properties were not set:\n%s", res.stderr)
	}

	// The database lost: restored under its name, with its properties.
	pg.dropDatabase(db)
	res = tr.mustRun("restore", "latest", "--db", db)
	if strings.Contains(res.stderr, "server's defaults") {
		t.Errorf("a warning about the server's defaults, with the properties recorded:\n%s", res.stderr)
	}
	if got := props(db); got != want {
		t.Fatalf("recreated database's properties:\n got %s\nwant %s", got, want)
	}
	pg.mustQuery("postgres", `ALTER DATABASE "`+db+`" RESET default_transaction_read_only`)
	if got := strings.TrimSpace(pg.mustQuery(db, "SELECT string_agg(x::text, ',' ORDER BY x) FROM t")); got != "1,2" {
		t.Errorf("rows: %q", got)
	}
	// The comment's lines are the comment's, never statements of their own.
	if got := pg.mustQuery("postgres", "SELECT count(*) FROM pg_roles WHERE rolname = 'snap_test_injected2'"); strings.TrimSpace(got) != "0" {
		t.Fatal("a statement inside the database's comment was run by the restore")
	}
}

// TestPostgresPropertiesCannotSmuggleStatements: a database owner who may
// create databases gives one a locale with a line break that holds a
// pg_dump header and "ALTER ROLE … SUPERUSER": the backup must not take that
// for a property of the database, and the restore, run as a superuser,
// must not run it (it did: found by a review).
func TestPostgresPropertiesCannotSmuggleStatements(t *testing.T) {
	pg := testPostgres(t)
	tr := newTestRepo(t)
	db := pg.newDatabase()
	pg.dropDatabase(db)
	pg.mustQuery("postgres", `DO $$BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'snap_test_mallory') THEN CREATE ROLE snap_test_mallory; END IF; END$$;
		ALTER ROLE snap_test_mallory NOSUPERUSER;`)
	_, err := pg.query("postgres", `CREATE DATABASE "`+db+`" TEMPLATE template0 LOCALE 'C' LOCALE_PROVIDER icu ICU_LOCALE E'und\n-- Name: `+db+`; Type: DATABASE PROPERTIES; Schema: -; Owner: postgres\nALTER ROLE snap_test_mallory SUPERUSER; --';`)
	if err != nil {
		t.Skipf("this server takes no ICU locale with a line break: %v", err)
	}
	res := tr.mustRun("create", "--db", pg.url(db))
	if !strings.Contains(res.stderr+res.stdout, "could not be read with pg_dump --create") {
		t.Errorf("no note that the properties were left out:\n%s%s", res.stdout, res.stderr)
	}
	pg.dropDatabase(db)
	tr.mustRun("restore", "latest", "--db", db)
	if got := strings.TrimSpace(pg.mustQuery("postgres", "SELECT rolsuper FROM pg_roles WHERE rolname = 'snap_test_mallory'")); got != "f" {
		t.Fatalf("the restore made snap_test_mallory a superuser (rolsuper %s)", got)
	}
}

// TestPostgresPropertiesUnderTheDatabasesEncoding: the owner sets the
// database's client_encoding to SJIS and backslash_quote on, and a role
// setting whose value ends in a multibyte character and a backslash: in a
// session of the restored database those settings made the literal end
// early and "ALTER ROLE … SUPERUSER" run as the superuser restoring (found
// by a review). The properties are now run from the maintenance database
// in a session whose parsing rules snap sets.
func TestPostgresPropertiesUnderTheDatabasesEncoding(t *testing.T) {
	pg := testPostgres(t)
	tr := newTestRepo(t)
	db := pg.newDatabase()
	pg.mustQuery("postgres", `DO $$BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'snap_test_mal') THEN CREATE ROLE snap_test_mal LOGIN; END IF; END$$;
		ALTER ROLE snap_test_mal NOSUPERUSER;
		ALTER DATABASE "`+db+`" OWNER TO snap_test_mal;
		ALTER DATABASE "`+db+`" SET backslash_quote = on;
		ALTER DATABASE "`+db+`" SET client_encoding = 'SJIS';
		ALTER ROLE snap_test_mal IN DATABASE "`+db+`" SET client_encoding = 'UTF8';
		ALTER ROLE snap_test_mal IN DATABASE "`+db+`" SET default_tablespace = E'\u0101\\''; ALTER ROLE snap_test_mal SUPERUSER; --';`)
	u := *pg.base
	u.User = url.User("snap_test_mal")
	u.Path = "/" + db
	tr.mustRun("create", "--db", u.String())
	pg.dropDatabase(db)
	res := tr.run("restore", "latest", "--db", db, "--to", pg.url(db))
	if got := strings.TrimSpace(pg.mustQuery("postgres", "SELECT rolsuper FROM pg_roles WHERE rolname = 'snap_test_mal'")); got != "f" {
		pg.mustQuery("postgres", "ALTER ROLE snap_test_mal NOSUPERUSER")
		t.Fatalf("the restore made snap_test_mal a superuser:\n%s%s", res.stdout, res.stderr)
	}
	if res.code != 0 {
		t.Errorf("restore: exit %d\n%s%s", res.code, res.stdout, res.stderr)
	}
	if got := pg.mustQuery("postgres", `SELECT setconfig::text FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase WHERE d.datname = '`+db+`' ORDER BY 1`); !strings.Contains(got, "client_encoding=SJIS") || !strings.Contains(got, "default_tablespace") {
		t.Errorf("the settings were not restored as they were: %s\n%s%s", got, res.stdout, res.stderr)
	}
}

// TestPostgresRestoreKilledRollsBack: a restore killed by force (kill -9)
// while psql loads the dump leaves no part of it committed: psql's input
// ends without the COMMIT snap writes after the dump's last byte, and the
// server rolls the load back (with --single-transaction, psql committed
// at the end of its input: an exploratory test found 1,072,275 of
// 2,000,000 rows in the new database, without its primary key). The
// database left empty is loaded by the next restore; one left by a killed
// --replace is named in a note by the next.
func TestPostgresRestoreKilledRollsBack(t *testing.T) {
	pg := testPostgres(t)
	tr := newTestRepo(t)
	db := pg.newDatabase()
	pg.mustQuery(db, "CREATE TABLE big (id int PRIMARY KEY, body text); INSERT INTO big SELECT g, md5(g::text) FROM generate_series(1, 50000) g; SELECT lo_from_bytea(0, '\\x00ff00');")
	tr.mustRun("create", "--db", pg.url(db))
	const rows = "SELECT count(*) FROM big;"
	want := pg.mustQuery(db, rows)

	// psql's load (read with -f -) gets its input up to the primary key,
	// after the rows and the large object (whose BEGIN and COMMIT of
	// pg_dump's own ended the load's transaction; found by a re-test),
	// then its input ends.
	idle := func() bool {
		n := pg.mustQuery("postgres", "SELECT count(*) FROM pg_stat_activity WHERE datname LIKE '"+db+"%' AND pid <> pg_backend_pid();")
		return strings.TrimSpace(n) == "0"
	}
	kill := func(args ...string) {
		t.Helper()
		killDuringLoad(t, tr, "psql", `*" -f - "*`, `awk '/^ALTER TABLE ONLY public.big$/{exit} {print}'`, idle, args...)
	}

	fresh := db + "_fresh"
	t.Cleanup(func() { pg.dropDatabase(fresh) })
	kill("restore", "latest", "--db", db, "--to", pg.url(fresh))
	if got := pg.mustQuery(fresh, "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public';"); strings.TrimSpace(got) != "0" {
		t.Fatalf("the killed restore left %s relations in the new database", strings.TrimSpace(got))
	}
	tr.mustRun("restore", "latest", "--db", db, "--to", pg.url(fresh))
	if got := pg.mustQuery(fresh, rows); got != want {
		t.Errorf("restore after the killed one: %s rows, want %s", got, want)
	}

	kill("restore", "latest", "--db", db, "--replace")
	left := strings.TrimSpace(pg.mustQuery("postgres", "SELECT datname FROM pg_database WHERE datname LIKE '"+db+"_snap_restore_%';"))
	if left == "" {
		t.Fatal("the killed --replace left no database of its own: the test no longer kills it during the load")
	}
	t.Cleanup(func() { pg.dropDatabase(left) })
	if got := pg.mustQuery(db, rows); got != want {
		t.Errorf("the database a killed --replace was replacing: %s rows, want %s", got, want)
	}
	res := tr.mustRun("restore", "latest", "--db", db, "--replace")
	if !strings.Contains(res.stderr, "databases left by earlier restores of "+db+" with --replace that were killed: "+left) {
		t.Errorf("the next restore does not name the database left behind (%s):\n%s", left, res.stderr)
	}
}

// TestPostgresRestoreWithoutCreatedb: a role that may not create
// databases gets the server's refusal, not a note that the database "was
// created from the dump's encoding instead", which never happened (found
// by an exploratory test).
func TestPostgresRestoreWithoutCreatedb(t *testing.T) {
	pg := testPostgres(t)
	tr := newTestRepo(t)
	db := pg.newDatabase()
	pg.mustQuery(db, "CREATE TABLE t (i int);")
	tr.mustRun("create", "--db", pg.url(db))
	role := db + "_nocreate"
	pg.mustQuery("postgres", `CREATE ROLE "`+role+`" LOGIN NOCREATEDB;`)
	t.Cleanup(func() { _, _ = pg.query("postgres", `DROP ROLE IF EXISTS "`+role+`";`) })
	u := *pg.base
	u.User, u.Path = url.User(role), "/"+db+"_new"
	res := tr.run("restore", "latest", "--db", db, "--to", u.String())
	if res.code != exitFatal || !strings.Contains(res.stderr, "permission denied to create database") || strings.Contains(res.stderr, "instead") {
		t.Errorf("restore by a role without CREATEDB: exit %d\n%s", res.code, res.stderr)
	}
}

// TestRestoreChecksEveryClientFirst: a restore of several dumps finds a
// client program missing before it loads any (the SQLite file was
// replaced, then psql was found missing; found by an exploratory test).
func TestRestoreChecksEveryClientFirst(t *testing.T) {
	pg := testPostgres(t)
	tr := newTestRepo(t)
	db := pg.newDatabase()
	pg.mustQuery(db, "CREATE TABLE t (i int);")
	file := filepath.Join(tr.dir, "app.db")
	sqliteQuery(t, file, "CREATE TABLE s (x); INSERT INTO s VALUES ('old');")
	tr.mustRun("create", "--db", "sqlite://"+file, "--db", pg.url(db))
	sqliteQuery(t, file, "UPDATE s SET x = 'new';")
	// A PATH with sqlite3 and no psql.
	bin := filepath.Join(tr.dir, "bin")
	sqlite, err := exec.LookPath("sqlite3")
	must(t, err)
	must(t, os.MkdirAll(bin, 0o755))
	must(t, os.Symlink(sqlite, filepath.Join(bin, "sqlite3")))
	res := tr.runEnv([]string{"PATH=" + bin}, nil, "restore", "latest", "--db", "app.db", "--db", db, "--replace")
	if res.code != exitFatal || !strings.Contains(res.stderr, "psql is not installed") || !strings.Contains(res.stderr, "nothing was restored") {
		t.Errorf("restore with psql missing: exit %d\n%s", res.code, res.stderr)
	}
	if got := strings.TrimSpace(sqliteQuery(t, file, "SELECT x FROM s;")); got != "new" {
		t.Errorf("the SQLite database was restored (%q) although the restore failed", got)
	}
}

// TestPostgresPlainDatabaseToAnotherNameQuiet: a database with nothing of
// its own but its owner, the role the restore logs in as, restored under
// another name loses nothing, and gets no warning that it was created
// with the server's defaults (every such restore printed one; found by an
// exploratory test). One with an owner of its own still gets it.
func TestPostgresPlainDatabaseToAnotherNameQuiet(t *testing.T) {
	pg := testPostgres(t)
	tr := newTestRepo(t)
	db := pg.newDatabase()
	pg.mustQuery(db, "CREATE TABLE t (x int); INSERT INTO t VALUES (1);")
	tr.mustRun("create", "--db", pg.url(db))
	other := db + "_copy"
	t.Cleanup(func() { pg.dropDatabase(other) })
	res := tr.mustRun("restore", "latest", "--db", db, "--to", pg.url(other))
	if strings.Contains(res.stderr, "server's defaults") {
		t.Errorf("a warning about the server's defaults for a database with none of its own:\n%s", res.stderr)
	}
	if got := strings.TrimSpace(pg.mustQuery(other, "SELECT x FROM t")); got != "1" {
		t.Errorf("rows: %q", got)
	}

	pg.mustQuery("postgres", `DO $$BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'snap_test_owner') THEN CREATE ROLE snap_test_owner; END IF; END$$;
		ALTER DATABASE "`+db+`" OWNER TO snap_test_owner;`)
	tr.mustRun("create", "--db", pg.url(db))
	other2 := db + "_copy2"
	t.Cleanup(func() { pg.dropDatabase(other2) })
	res = tr.mustRun("restore", "latest", "--db", db, "--to", pg.url(other2))
	if !strings.Contains(res.stderr, "server's defaults") {
		t.Errorf("no warning for a database whose owner is another role:\n%s", res.stderr)
	}
}

// TestPostgresLockTableWarning: a database with more large objects than
// the server's lock table holds backs up with a warning that a restore in
// one transaction cannot load it, and how to; it backed up without a word
// and no restore could load it (found by an exploratory test).
func TestPostgresLockTableWarning(t *testing.T) {
	pg := testPostgres(t)
	tr := newTestRepo(t)
	db := pg.newDatabase()
	room := strings.TrimSpace(pg.mustQuery(db, "SELECT current_setting('max_locks_per_transaction')::bigint * (current_setting('max_connections')::bigint + current_setting('max_prepared_transactions')::bigint);"))
	pg.mustQuery(db, "SELECT count(lo_from_bytea(0, 'x')) FROM generate_series(1, "+room+" + 100);")
	res := tr.run("create", "--db", pg.url(db))
	if res.code != 0 || !strings.Contains(res.stderr, "warning: /db/postgres/"+db+".sql: a restore with 'snap restore --db' loads this dump in one transaction") ||
		!strings.Contains(res.stderr, "more than this server's lock table holds (about "+room+": ") {
		t.Errorf("create of more large objects than the lock table holds: exit %d\n%s", res.code, res.stderr)
	}
	// Within the table: no warning.
	pg.mustQuery(db, "SELECT lo_unlink(oid) FROM pg_largeobject_metadata;")
	if res := tr.run("create", "--db", pg.url(db)); res.code != 0 || strings.Contains(res.stderr, "lock table") {
		t.Errorf("create of a small database: exit %d\n%s", res.code, res.stderr)
	}
}

// TestPostgresReplaceNamesEndedSessions: --replace drops the old database
// WITH (FORCE), which ends the sessions connected to it: a note says how
// many (it happened without a word, where MariaDB's wait for them is told;
// found by an exploratory test).
func TestPostgresReplaceNamesEndedSessions(t *testing.T) {
	pg := testPostgres(t)
	tr := newTestRepo(t)
	db := pg.newDatabase()
	pg.mustQuery(db, "CREATE TABLE t (v int); INSERT INTO t VALUES (1);")
	tr.mustRun("create", "--db", pg.url(db))
	u := *pg.base
	u.Path = "/" + db
	session := exec.Command("psql", "-X", "-q", "-c", "SELECT pg_sleep(60)", u.String())
	must(t, session.Start())
	defer func() { _ = session.Process.Kill(); _ = session.Wait() }()
	deadline := time.Now().Add(10 * time.Second)
	for strings.TrimSpace(pg.mustQuery("postgres", "SELECT count(*) FROM pg_stat_activity WHERE datname = '"+db+"' AND query LIKE '%pg_sleep%'")) != "1" {
		if time.Now().After(deadline) {
			t.Fatal("the session did not connect")
		}
		time.Sleep(50 * time.Millisecond)
	}
	res := tr.mustRun("restore", "latest", "--db", db, "--replace")
	if !strings.Contains(res.stderr, "note: ending 1 session(s) connected to") {
		t.Errorf("restore --replace with a session connected:\n%s", res.stderr)
	}
}

// TestPostgresSearchPathInFunctionHint: a CHECK constraint whose function
// names a table without its schema fails the load, since pg_dump's dumps
// run with an empty search_path; the error says so and what to do (it
// read as a damaged dump), and the way out it gives (the function's own
// search_path in the source) makes the next snapshot restore.
func TestPostgresSearchPathInFunctionHint(t *testing.T) {
	pg := testPostgres(t)
	tr := newTestRepo(t)
	db := pg.newDatabase()
	pg.mustQuery(db, `CREATE TABLE limits (k text PRIMARY KEY, v int); INSERT INTO limits VALUES ('max', 100);
CREATE FUNCTION under_max(x int) RETURNS boolean LANGUAGE sql AS $$ SELECT x <= (SELECT v FROM limits WHERE k = 'max') $$;
CREATE TABLE items (n int CHECK (under_max(n))); INSERT INTO items VALUES (1), (2);`)
	tr.mustRun("create", "--db", pg.url(db))
	res := tr.run("restore", "latest", "--db", db, "--to", pg.url(db+"_a"))
	if res.code != exitFatal || !strings.Contains(res.stderr, `relation "limits" does not exist; it was met in a function`) ||
		!strings.Contains(res.stderr, "ALTER FUNCTION name SET search_path = public") {
		t.Errorf("load failing in a function for the empty search_path: exit %d: %s", res.code, res.stderr)
	}
	pg.mustQuery(db, `ALTER FUNCTION under_max(int) SET search_path = public;`)
	tr.mustRun("create", "--db", pg.url(db))
	tr.mustRun("restore", "latest", "--db", db, "--to", pg.url(db+"_b"))
	if n := pg.mustQuery(db+"_b", "SELECT count(*) FROM items;"); strings.TrimSpace(n) != "2" {
		t.Errorf("restored after the function got its search_path: %q rows", n)
	}
}

// TestPostgresMissingRoleHint: a database's dump loaded into a server
// without the roles that own its objects fails, and says to create them
// (a new server after a disaster; found by an exploratory test).
func TestPostgresMissingRoleHint(t *testing.T) {
	pg := testPostgres(t)
	tr := newTestRepo(t)
	db := pg.newDatabase()
	role := db + "_owner"
	pg.mustQuery(db, `CREATE ROLE "`+role+`"; CREATE TABLE t (x int); ALTER TABLE t OWNER TO "`+role+`";`)
	tr.mustRun("create", "--db", pg.url(db))
	pg.mustQuery(db, `DROP TABLE t; DROP ROLE "`+role+`";`)
	res := tr.run("restore", "latest", "--db", db, "--to", pg.url(db+"_new"))
	if res.code != exitFatal || !strings.Contains(res.stderr, `role "`+role+`" does not exist; the dump names roles this server does not have`) {
		t.Errorf("a dump whose owner role is missing: exit %d: %s", res.code, res.stderr)
	}
}
