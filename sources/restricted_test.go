package sources

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestSQLiteRestoreIsSafe: a crafted dump loaded by a restore runs no
// shell command and writes no other file (.shell, .output, ATTACH, VACUUM
// INTO, writefile): sqlite3 runs it in safe mode, and the restore fails
// (found by an exploratory test: all of them ran, as root). A plain dump
// with a virtual table (which needs writable_schema) still loads.
func TestSQLiteRestoreIsSafe(t *testing.T) {
	dir := t.TempDir()
	out := func(name string) string { return filepath.Join(dir, name) }
	evil := []string{".shell touch " + out("shell"), ".output " + out("output") + "\nSELECT 1;", "ATTACH DATABASE '" + out("attach") + "' AS e;",
		"VACUUM INTO '" + out("vacuum") + "';", "SELECT writefile('" + out("writefile") + "', 'x');",
		// Safe mode lets .trace write any file (found in review).
		".trace " + out("trace") + "\nSELECT 1;",
		// ... and the shell's fsdir read any file into a table (found in
		// review and by an exploratory test), under any spelling of its
		// name; sha3_query runs SQL given as text.
		"CREATE TABLE s AS SELECT name, data FROM fsdir('/etc/hostname');", "CREATE TABLE s AS SELECT data FROM \"FsDir\"('/etc/hostname');",
		"CREATE TABLE s AS SELECT data FROM [fsdir]('/etc/hostname');", "CREATE TABLE s AS SELECT data FROM `FSDIR`('/etc/hostname');",
		"CREATE TABLE s AS SELECT sha3_query('SELECT data FROM fs' || 'dir(''/etc/hostname'')') AS h;",
		"PRAGMA trusted_schema = ON;",
		// The shell's own line reading (a re-test): a # line between
		// statements is its comment, whose quote hid the statement after
		// it from the scan; after a NUL and 98 bytes, the rest of a line
		// was read as a line of its own (.trace FILE wrote any file).
		"#'\nCREATE TABLE leak AS SELECT name, data FROM fsdir('/etc/hostname');--'",
		"SELECT 1;\x00'\nCREATE TABLE leak AS SELECT name, data FROM fsdir('/etc/hostname');--'",
		"\x00" + strings.Repeat("x", 98) + ".trace " + out("trace2") + "\nSELECT 1;",
		// SQLite takes a literal for a table's name (a second re-test).
		"CREATE TABLE s AS SELECT name, data FROM 'FSDIR'('/etc/hostname');", "CREATE TABLE s AS SELECT data FROM 'fsdir' WHERE path = '/etc/hostname';",
		// A virtual table declared in the schema by hand (a third re-test).
		"CREATE TABLE loot(v);\nPRAGMA writable_schema=ON;\nINSERT INTO sqlite_schema VALUES('table','x','x',0,'CREATE VIRTUAL TABLE x USING '||'fs'||'dir');\n" +
			"PRAGMA writable_schema=RESET;\nCREATE TABLE s AS SELECT data FROM x WHERE path='/etc/hostname';"}
	for i, line := range evil {
		d, err := ParseDatabase("sqlite://" + out("new"+string(rune('a'+i))+".db"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := d.Restore(context.Background(), strings.NewReader("CREATE TABLE t(x);\n"+line+"\n"), false, RestoreOptions{}); err == nil {
			t.Errorf("a dump with %q restored without an error", line)
		}
	}
	for _, name := range []string{"shell", "output", "attach", "vacuum", "writefile", "trace", "trace2"} {
		if _, err := os.Stat(out(name)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("the dump made %s (%v)", name, err)
		}
	}
	// A trigger whose text is a string (as .dump writes the schema of a
	// virtual table, through writable_schema), loaded by a schema reset,
	// is not seen by the scan of the dump: an untrusted schema (safe mode,
	// and trusted_schema off besides) keeps fsdir out of it all the same.
	d, _ := ParseDatabase("sqlite://" + out("trigger.db"))
	trigger := "CREATE TABLE x(a);\nCREATE TABLE y(b);\nPRAGMA writable_schema=ON;\n" +
		"INSERT INTO sqlite_schema(type,name,tbl_name,rootpage,sql) VALUES('trigger','tr','x',0,'CREATE TRIGGER tr AFTER INSERT ON x BEGIN INSERT INTO y SELECT data FROM fsdir(''/etc/hostname''); END');\n" +
		"PRAGMA writable_schema=RESET;\nINSERT INTO x VALUES(1);\n"
	_, err := d.Restore(context.Background(), strings.NewReader(trigger), false, RestoreOptions{})
	if got, _ := exec.Command("sqlite3", out("trigger.db"), "SELECT count(*) FROM y").Output(); err == nil && strings.TrimSpace(string(got)) != "0" {
		t.Errorf("a trigger in a string read a file of the host: %q", got)
	}
	// A plain dump loads; one of a database with a virtual table, which
	// declares it by writing the schema directly, is refused (a crafted
	// dump declared fsdir so, its name put together from pieces: a third
	// re-test), with the advice to load it by hand.
	src := out("src.db")
	if b, err := exec.Command("sqlite3", src, "CREATE TABLE t(x); INSERT INTO t VALUES(1), ('a' || char(10) || 'b');").CombinedOutput(); err != nil {
		t.Fatalf("sqlite3: %v %s", err, b)
	}
	dump, err := exec.Command("sqlite3", src, ".dump").Output()
	if err != nil {
		t.Fatal(err)
	}
	d, _ = ParseDatabase("sqlite://" + out("good.db"))
	if _, err := d.Restore(context.Background(), strings.NewReader(string(dump)), false, RestoreOptions{}); err != nil {
		t.Fatalf("a plain dump: %v", err)
	}
	if got, _ := exec.Command("sqlite3", out("good.db"), "SELECT count(*) FROM t").Output(); strings.TrimSpace(string(got)) != "2" {
		t.Errorf("restored table: %q", got)
	}
	if b, err := exec.Command("sqlite3", src, "CREATE VIRTUAL TABLE ft USING fts5(body); INSERT INTO ft VALUES('hello');").CombinedOutput(); err != nil {
		t.Fatalf("sqlite3: %v %s", err, b)
	}
	if dump, err = exec.Command("sqlite3", src, ".dump").Output(); err != nil {
		t.Fatal(err)
	}
	d, _ = ParseDatabase("sqlite://" + out("fts.db"))
	if _, err := d.Restore(context.Background(), strings.NewReader(string(dump)), false, RestoreOptions{}); !errors.Is(err, errShellOnly) || !strings.Contains(err.Error(), "snap dump") {
		t.Errorf("a dump with a virtual table: %v", err)
	}
}

// TestPsqlRestricted: a dump loaded by psql through psqlRestricted runs
// none of its backslash commands (\! runs a shell command, also on a line
// with SQL before it; \o writes a file); the dump's own \restrict and
// \unrestrict lines are dropped, and with connects a plain \connect line
// still connects while one that carries more does not. Against the
// PostgreSQL server of SNAP_TEST_POSTGRES (.ci/run sets it).
func TestPsqlRestricted(t *testing.T) {
	u := serverURL(t, "SNAP_TEST_POSTGRES", "psql", "-X", "--no-password", "-c", "SELECT 1")
	raw := u.String()
	db := strings.TrimPrefix(u.Path, "/")
	dir := t.TempDir()
	mark := func(name string) string { return filepath.Join(dir, name) }
	run := func(script string, connects bool) string {
		t.Helper()
		cmd := exec.Command("psql", "-X", "--no-password", "-q", "-A", "-t", "-f", "-", "--dbname="+raw)
		cmd.Stdin = psqlRestricted(strings.NewReader(script), psqlRestrictKey(), connects)
		b, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatalf("psql: %v", err)
		}
		return string(b)
	}
	if err := checkPsqlRestricts(context.Background(), "psql"); err != nil {
		t.Fatalf("this machine's psql: %v", err)
	}
	// The dump's own \restrict (pg_dump's keys are 64 characters) is
	// dropped; a short one, as a function's text may hold, is left.
	own := strings.Repeat("Ab1", 22)
	got := run("\\restrict "+own+"\nSELECT 'one';\n\\! touch "+mark("bang")+"\nSELECT 2; \\! touch "+mark("inline")+"\n\\o "+mark("out")+"\nSELECT 'three';\n"+
		"SELECT $$a\n\\restrict x\n$$ AS body;\n\\unrestrict "+own+"\n", false)
	if !strings.Contains(got, "one") || !strings.Contains(got, "three") || !strings.Contains(got, psqlRefused) || !strings.Contains(got, "\\restrict x") {
		t.Errorf("restricted script printed:\n%s", got)
	}
	got = run("\\connect "+db+"\nSELECT current_database();\n\\encoding UTF8\n\\o "+mark("out2")+"\n", true)
	if !strings.Contains(got, db) || !strings.Contains(got, psqlRefused) {
		t.Errorf("script with \\connect lines printed:\n%s", got)
	}
	// A \connect of another form ends the script there: refused by
	// psql, it left the script loading the next database's tables into
	// the one before (template1; found in review).
	out, err := io.ReadAll(psqlRestricted(strings.NewReader("SELECT 1;\n\\connect "+db+" `touch "+mark("backquote")+"`\nSELECT 2;\n"), psqlRestrictKey(), true))
	if !errors.Is(err, errPsqlConnect) || strings.Contains(string(out), "touch") || strings.Contains(string(out), "SELECT 2") {
		t.Errorf("a \\connect pg_dumpall does not write: %v, passed %q", err, out)
	}
	for _, name := range []string{"bang", "inline", "out", "backquote", "out2"} {
		if _, err := os.Stat(mark(name)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("the script made %s (%v)", name, err)
		}
	}
}

// TestPsqlConnectLines: only the forms of \connect pg_dumpall writes
// (appendPsqlMetaConnect: names it quotes, and names with any other
// character as a connection string of dbname alone; a re-test found both
// refused, and their databases loaded into the one before) pass
// unrestricted; one that is a connection string (which could send
// the password to another host; found in review), or carries a backquote,
// a variable or another command, does not.
func TestPsqlConnectLines(t *testing.T) {
	for line, want := range map[string]bool{
		`\connect template1`:                                        true,
		`\connect postgres`:                                         true,
		`\connect -reuse-previous=on "dbname='my app'"`:             true,
		`\connect "host=evil.example dbname=x"`:                     false,
		`\connect host=evil.example`:                                false,
		`\connect -reuse-previous=on "dbname=x host=evil"`:          false,
		`\connect -reuse-previous=on "dbname='x' host=evil"`:        false,
		`\connect -reuse-previous=on "dbname='a=b'"`:                true, // libpq takes the quoted value for the name
		`\connect "MyApp"`:                                          true,
		`\connect "1abc"`:                                           true,
		`\connect "my.db"`:                                          true,
		`\connect -reuse-previous=on "dbname='it\'s'"`:              true,
		`\connect -reuse-previous=on "dbname='a\\b'"`:               true,
		`\connect -reuse-previous=on "dbname='say ""hi""'"`:         true,
		`\connect -reuse-previous=on "dbname='a:b ` + "`id`" + `'"`: true, // neither expanded in double quotes
		`\connect -reuse-previous=on "dbname='it's'"`:               false,
		`\connect -reuse-previous=on "dbname='a\b'"`:                false,
		`\connect -reuse-previous=on "dbname='a"b'"`:                false,
		`\connect "a b"`:                                            false,
		`\connect "a=b"`:                                            false,
		"\\connect x `id`":                                          false,
		`\connect :evil`:                                            false,
		`\connect x \! id`:                                          false,
	} {
		if got := psqlConnectLine.MatchString(line); got != want {
			t.Errorf("%s: passes %v, want %v", line, got, want)
		}
	}
}

// TestMySQLRestoreReadsNoLocalFile: a crafted dump's LOAD DATA LOCAL
// INFILE cannot make the client read a file of the restoring host into a
// table (found by an exploratory test: /etc/shadow). Against the MariaDB
// server of SNAP_TEST_MYSQL (.ci/run sets it).
func TestMySQLRestoreReadsNoLocalFile(t *testing.T) {
	u := serverURL(t, "SNAP_TEST_MYSQL", "mariadb", "-e", "SELECT 1")
	name := "snaptest_infile_" + rand.Text()[:10]
	u.Path = "/" + name
	d, err := ParseDatabase(u.String())
	if err != nil {
		t.Fatal(err)
	}
	secret := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secret, []byte("do not read\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	dump := "CREATE TABLE leak (x longtext);\nLOAD DATA LOCAL INFILE '" + secret + "' INTO TABLE leak;\n"
	_, err = d.Restore(context.Background(), strings.NewReader(dump), false, RestoreOptions{})
	t.Cleanup(func() {
		u.Path = "/"
		_ = exec.Command("mariadb", "-h", u.Hostname(), "-P", u.Port(), "-u", u.User.Username(), "-e", "DROP DATABASE IF EXISTS "+name).Run()
	})
	if err == nil || !strings.Contains(strings.ToLower(err.Error()), "local infile") {
		t.Errorf("a dump with LOAD DATA LOCAL INFILE: %v; want the client's refusal", err)
	}
}

// serverURL returns the URL of the database server that variable names,
// skipping the test when it is unset and failing it when the server does
// not answer the client's command (the URL is appended to args for psql,
// given as host, port and user to mariadb).
func serverURL(t *testing.T, variable, client string, args ...string) *url.URL {
	t.Helper()
	raw := os.Getenv(variable)
	if raw == "" {
		t.Skipf("%s is not set: skipping the test against a real server (.ci/run sets it)", variable)
	}
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatalf("%s=%q: %v", variable, raw, err)
	}
	if client == "psql" {
		args = append(args, "--dbname="+raw)
	} else {
		args = append(args, "-h", u.Hostname(), "-P", u.Port(), "-u", u.User.Username())
	}
	if out, err := exec.Command(client, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s=%s is set but the server cannot be reached: %v %s", variable, raw, err, out)
	}
	return u
}

// TestPsqlUntrustedStatements: the statements a restore runs from the
// snapshot's recorded properties of a database (CREATE DATABASE options,
// owner, comment, grants) run in psql's restricted mode: a backslash
// command among them is refused, not run (found by an exploratory test: a
// \! after a dollar-quoted literal ran `id` as root), while the psql
// variables the restore sets are still expanded and psql's VERBOSITY is
// still set. Against the PostgreSQL server of SNAP_TEST_POSTGRES.
func TestPsqlUntrustedStatements(t *testing.T) {
	u := serverURL(t, "SNAP_TEST_POSTGRES", "psql", "-X", "--no-password", "-c", "SELECT 1")
	d, err := ParseDatabase(u.String())
	if err != nil {
		t.Fatal(err)
	}
	mark := filepath.Join(t.TempDir(), "bang")
	ctx := context.Background()
	_, err = d.psqlUntrusted(ctx, d.Name, nil, "COMMENT ON DATABASE x IS $q$'$q$ \\! touch "+mark+" #'\n;\n")
	if err == nil || !strings.Contains(err.Error(), psqlRefused) {
		t.Errorf("a backslash command among untrusted statements: %v", err)
	}
	if _, err := os.Stat(mark); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the statements ran a shell command (%v)", err)
	}
	out, err := d.psqlUntrusted(ctx, d.Name, []string{"v=it works"}, "SELECT :'v';\n")
	if err != nil || out != "it works" {
		t.Errorf("a variable in restricted mode: %q, %v", out, err)
	}
	_, err = d.psqlUntrusted(ctx, d.Name, []string{"VERBOSITY=verbose"}, "SELECT 1/0;\n")
	if err == nil || !pgStatementRefused.MatchString(err.Error()) {
		t.Errorf("VERBOSITY given as a variable: %v", err)
	}
}

// TestPsqlConnectsAsPgDumpallWrites: the \connect lines pg_dumpall writes
// (as pg_dump --create does), for databases whose names it quotes or writes as a
// connection string ("MyApp", "my.db", "my-app", "it's", `say "hi"`,
// "a:b=c"), pass the filter and connect psql to each of those databases:
// refused, they had left the script in the database before (found in
// review and by an exploratory test). Against the PostgreSQL server of
// SNAP_TEST_POSTGRES, where the test makes and drops the databases.
func TestPsqlConnectsAsPgDumpallWrites(t *testing.T) {
	u := serverURL(t, "SNAP_TEST_POSTGRES", "psql", "-X", "--no-password", "-c", "SELECT 1")
	maint := *u
	maint.Path = "/postgres"
	names := []string{"snapconnect_MyApp", "snapconnect.db", "snapconnect-app", "snapconnect it's", `snapconnect say "hi"`, "snapconnect a:b=c"}
	psql := func(sql string) {
		t.Helper()
		if out, err := exec.Command("psql", "-X", "--no-password", "-q", "-v", "ON_ERROR_STOP=1", "-c", sql, "--dbname="+maint.String()).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", sql, err, out)
		}
	}
	ident := func(name string) string { return `"` + strings.ReplaceAll(name, `"`, `""`) + `"` }
	drop := func() {
		for _, n := range names {
			psql("DROP DATABASE IF EXISTS " + ident(n))
		}
	}
	drop()
	t.Cleanup(drop)
	for _, n := range names {
		psql("CREATE DATABASE " + ident(n))
	}
	// pg_dump --create writes each database's \connect line as pg_dumpall
	// does (both call appendPsqlMetaConnect), and reads only that
	// database: a pg_dumpall of the whole server failed on the databases
	// other tests drop meanwhile.
	var script strings.Builder
	pw, _ := u.User.Password()
	for _, n := range names {
		conn := fmt.Sprintf("host=%s port=%s user=%s dbname='%s'", u.Hostname(), u.Port(), u.User.Username(), strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(n))
		dump := exec.Command("pg_dump", "--no-password", "--create", "--schema-only", "--dbname="+conn)
		dump.Env = append(os.Environ(), "PGPASSWORD="+pw)
		out, err := dump.Output()
		if err != nil {
			t.Fatalf("pg_dump of %q: %v", n, err)
		}
		lines := strings.Split(string(out), "\n")
		found := false
		for i, l := range lines {
			if strings.HasPrefix(l, "\\connect ") {
				if i > 0 && strings.HasPrefix(lines[i-1], "\\encoding ") {
					script.WriteString(lines[i-1] + "\n")
				}
				script.WriteString(l + "\nSELECT current_database();\n")
				found = true
				break
			}
		}
		if !found {
			t.Fatalf("pg_dump --create of %q wrote no \\connect line:\n%s", n, out)
		}
	}
	cmd := exec.Command("psql", "-X", "--no-password", "-q", "-A", "-t", "-f", "-", "--dbname="+u.String())
	cmd.Stdin = psqlRestricted(strings.NewReader(script.String()), psqlRestrictKey(), true)
	out, err := cmd.CombinedOutput()
	if err != nil || strings.Contains(string(out), psqlRefused) {
		t.Fatalf("psql: %v\n%s\nscript:\n%s", err, out, script.String())
	}
	got := strings.Split(strings.TrimSpace(string(out)), "\n")
	sorted := append([]string(nil), names...)
	slices.Sort(sorted)
	slices.Sort(got)
	if !slices.Equal(got, sorted) {
		t.Errorf("psql connected to %q, want %q", got, sorted)
	}
}

// TestSQLiteScreen: the scan of a SQLite dump refuses the shell's
// functions that reach files by name, bare or quoted in any of SQL's three
// ways, in any case, whatever the sizes of the reads; it lets the same
// names pass in literals, comments and longer names, and passes the dump
// unchanged.
func TestSQLiteScreen(t *testing.T) {
	for _, in := range []string{
		"SELECT * FROM fsdir('/');", "SELECT * FROM FSDIR ('/');", `SELECT "fsdir";`, "SELECT [FsDir];", "SELECT `fsdir`;",
		"SELECT 1;\nSELECT x FROM fsdir", "SELECT readfile('/etc/shadow');", "SELECT 'a''b', fsdir();", "/* */ fsdir", "x -- y\nfsdir",
		"SELECT data FROM 'fsdir'('/');", "SELECT data FROM 'FsDir' WHERE path = '/';", "PRAGMA 'trusted_schema' = ON;", "SELECT * FROM 'sqlite_dbpage';",
		"PRAGMA writable_schema=ON;", "INSERT INTO sqlite_master VALUES(1);", "UPDATE 'SQLITE_SCHEMA' SET sql = 1;", "DELETE FROM main.[sqlite_temp_master];",
	} {
		for _, size := range []int{1, 2, 3, 7, 1 << 16} {
			if _, err := io.ReadAll(newSQLiteScreen(&chunkReader{s: in, n: size})); !errors.Is(err, errShellOnly) {
				t.Errorf("%q in reads of %d: %v", in, size, err)
			}
		}
	}
	for in, want := range map[string]error{
		".trace /tmp/x\n": errDotCommand, "SELECT 1;\n.shell id": errDotCommand, "#'\nSELECT 1;--'": errDotCommand,
		"SELECT 1;\x00'": errNulInDump, "SELECT 'a\x00b';": errNulInDump,
	} {
		for _, size := range []int{1, 2, 3, 7, 1 << 16} {
			if _, err := io.ReadAll(newSQLiteScreen(&chunkReader{s: in, n: size})); !errors.Is(err, want) {
				t.Errorf("%q in reads of %d: %v", in, size, err)
			}
		}
	}
	for _, in := range []string{
		"INSERT INTO t VALUES('fsdir(''/etc'')', X'00');", "INSERT INTO t VALUES('edit', 'readfile', 'fsdir is a word', 'fs''dir');", "-- fsdir\nSELECT 1;", "/* fsdir */ SELECT 1;", "SELECT myfsdir, fsdir2, fsdir_x FROM t;",
		`SELECT "fs""dir" FROM t;`, "SELECT [fs dir], `fs``dir` FROM t;", "CREATE TABLE t(\"a\"\"b\" TEXT);\nINSERT INTO t VALUES('it''s');\n",
		"SELECT 1;\n'.not a command';", "SELECT 'ends in a quote'''", "",
	} {
		for _, size := range []int{1, 2, 3, 7, 1 << 16} {
			out, err := io.ReadAll(newSQLiteScreen(&chunkReader{s: in, n: size}))
			if err != nil || string(out) != in {
				t.Errorf("%q in reads of %d: %v, passed %q", in, size, err, out)
			}
		}
	}
}

// sqliteBareFsdir matches fsdir as a name of its own.
var sqliteBareFsdir = regexp.MustCompile(`(?i)(^|[^A-Za-z0-9_$\x80-\xff])fsdir($|[^A-Za-z0-9_$\x80-\xff])`)

// FuzzSQLiteScreen: the scan of a SQLite dump (repository bytes, so
// hostile) never panics, passes what it accepts unchanged, and accepts no
// dump without quotes or comments in which fsdir stands as a name, and
// none with a NUL or a line that starts with a dot or a #.
func FuzzSQLiteScreen(f *testing.F) {
	f.Add("CREATE TABLE t(x);\nINSERT INTO t VALUES('fsdir');\n", 3)
	f.Add("SELECT [a]]b], \"c\"\"d\", `e`, 'f''g' /* h */ -- i\n;", 1)
	f.Fuzz(func(t *testing.T, in string, size int) {
		size = max(1, size%(1<<16))
		out, err := io.ReadAll(newSQLiteScreen(&chunkReader{s: in, n: size}))
		if err == nil && string(out) != in {
			t.Fatalf("%q passed as %q", in, out)
		}
		if err == nil && (!strings.ContainsAny(in, "'\"`[-/") && sqliteBareFsdir.MatchString(in) ||
			strings.Contains(in, "\x00") || regexp.MustCompile(`(^|\n)[.#]`).MatchString(in)) {
			t.Fatalf("%q accepted", in)
		}
	})
}
