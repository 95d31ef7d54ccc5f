package sources

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// statementList gives stmts as a dump's statements, unscreened.
func statementList(stmts ...string) sqliteStatements {
	return func() (string, int, error) {
		if len(stmts) == 0 {
			return "", 0, io.EOF
		}
		s := stmts[0]
		stmts = stmts[1:]
		return s, 1, nil
	}
}

// TestSQLiteLoaderReachesNothingBeyondTheDatabase: the loader is the
// second wall behind the screen. Given what the screen refuses, the
// statements that ran programs, read and wrote files through the sqlite3
// shell in red-team tests, it fails each, and nothing outside the
// database is made: SQLite's library has none of the shell's functions
// and tables, and ATTACH, VACUUM INTO and load_extension are shut.
func TestSQLiteLoaderReachesNothingBeyondTheDatabase(t *testing.T) {
	dir := t.TempDir()
	out := func(name string) string { return filepath.Join(dir, name) }
	for i, stmts := range [][]string{
		{"CREATE TABLE t(a, b DEFAULT (edit('x', 'touch " + out("edit") + "')));", "INSERT INTO t(a) VALUES(1);"},
		{"CREATE TABLE t(a CHECK (coalesce(edit('x', 'touch " + out("edit") + "'), 1)));", "INSERT INTO t VALUES(1);"},
		{"CREATE TABLE t(a);", "CREATE TRIGGER tr AFTER INSERT ON t BEGIN SELECT writefile('" + out("trigger") + "', 'x'); END;", "INSERT INTO t VALUES(1);"},
		{"SELECT writefile('" + out("writefile") + "', 'x');"},
		{"CREATE TABLE s AS SELECT readfile('/etc/hostname') AS d;"},
		{"CREATE TABLE s AS SELECT data FROM fsdir('/etc/hostname');"},
		{"CREATE TABLE s AS SELECT sha3_query('SELECT 1') AS h;"},
		{"ATTACH DATABASE '" + out("attach") + "' AS e;"},
		{"CREATE TABLE t(a);", "VACUUM INTO '" + out("vacuum") + "';"},
		{"SELECT load_extension('" + out("ext.so") + "');"},
		{"PRAGMA temp_store_directory = '" + out("tmpdir") + "';"},
		{"CREATE TABLE m(s);", "PRAGMA writable_schema=ON;", "INSERT INTO sqlite_schema VALUES('table','x','x',0,'CREATE VIRTUAL TABLE x USING fsdir');", "PRAGMA writable_schema=RESET;", "CREATE TABLE s AS SELECT data FROM x WHERE name = '/etc/hostname';"},
	} {
		file := out("db" + string(rune('a'+i)))
		if err := os.WriteFile(file, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		err := sqliteLoad(context.Background(), file, statementList(stmts...))
		t.Logf("%v", err)
		if err == nil {
			t.Errorf("%q loaded without an error", stmts)
		}
	}
	for _, name := range []string{"edit", "trigger", "writefile", "attach", "vacuum", "tmpdir"} {
		if _, err := os.Stat(out(name)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("the load made %s (%v)", name, err)
		}
	}
}

// TestSQLiteLoadErrorNamesTheLine: a statement SQLite refuses ends the
// load with its line and SQLite's message, without the driver's codes.
func TestSQLiteLoadErrorNamesTheLine(t *testing.T) {
	file := filepath.Join(t.TempDir(), "x.db")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	g := newSQLiteScreen(strings.NewReader("BEGIN TRANSACTION;\nCREATE TABLE t(a UNIQUE);\nINSERT INTO t VALUES(1);\nINSERT INTO t VALUES(1);\nCOMMIT;\n"))
	err := sqliteLoad(context.Background(), file, g.next)
	if err == nil || err.Error() != "line 4 of the dump: SQLite: UNIQUE constraint failed: t.a" {
		t.Errorf("error: %v", err)
	}
}

// TestSQLiteLoadLacksFunction: a schema that needs a function the sqlite3
// shell adds (sha3 in an index, the uint collation) fails the load saying
// so, and how to load it by hand; a row that breaks a CHECK fails it too.
// REGEXP, which the shell adds too, is there (an exploratory test: a CHECK
// of REGEXP restored through sqlite3, and no more in snap).
func TestSQLiteLoadLacksFunction(t *testing.T) {
	dir := t.TempDir()
	for i, c := range []struct {
		stmts []string
		fails bool
	}{
		{[]string{"CREATE TABLE t(a TEXT);", "CREATE INDEX ti ON t(sha3(a));"}, true},
		{[]string{"CREATE TABLE t(a TEXT CHECK (a REGEXP '^[a-z]+$'));", "INSERT INTO t VALUES('abc');", "CREATE INDEX ti ON t(a REGEXP 'b');"}, false},
		{[]string{"CREATE TABLE t(a TEXT CHECK (a REGEXP '^[a-z]+$'));", "INSERT INTO t VALUES('ABC');"}, true},
		{[]string{"CREATE TABLE u(b TEXT COLLATE uint);", "INSERT INTO u VALUES('a2');", "CREATE INDEX ub ON u(b);"}, true},
		{[]string{"CREATE TABLE t(a TEXT CHECK (length(a) < 2));", "INSERT INTO t VALUES('abc');"}, true},
	} {
		file := filepath.Join(dir, fmt.Sprint(i))
		if err := os.WriteFile(file, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		err := sqliteLoad(context.Background(), file, statementList(c.stmts...))
		if c.fails != (err != nil) || err != nil && !strings.Contains(err.Error(), "lacks; if the repository is yours, write the dump out with 'snap dump'") && !strings.Contains(err.Error(), "CHECK constraint failed") {
			t.Errorf("%q: %v", c.stmts, err)
		}
	}
}

// FuzzSQLiteLoad: a dump of any bytes, screened and loaded, gives an error
// or a database, never a panic, and makes no file beside the database but
// its journals.
func FuzzSQLiteLoad(f *testing.F) {
	f.Add(sqlitePlainDump)
	f.Add(sqliteFTSDecl + "INSERT INTO ft_data VALUES(1, X'00');\nPRAGMA writable_schema=OFF;\n")
	f.Add("CREATE TABLE t(a DEFAULT (edit('x','id')));\nINSERT INTO t VALUES(1);\n")
	f.Fuzz(func(t *testing.T, dump string) {
		dir := t.TempDir()
		file := filepath.Join(dir, "x.db")
		if err := os.WriteFile(file, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		_ = sqliteLoad(context.Background(), file, newSQLiteScreen(strings.NewReader(dump)).next)
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			if !strings.HasPrefix(e.Name(), "x.db") {
				t.Fatalf("the load made %s", e.Name())
			}
		}
	})
}

// TestSQLiteRestoreRefusesWhatWouldLoadWrong: what a red-team test made
// load "successfully" into a wrong database fails, and no file is left:
// a virtual table declared under a table's name (no connection could open
// the result), a dump without its COMMIT (an empty database), foreign-key
// actions that deleted rows of the dump, a journal mode that left a file
// beside the restored one. Through the screen, and behind it.
func TestSQLiteRestoreRefusesWhatWouldLoadWrong(t *testing.T) {
	dir := t.TempDir()
	for i, dump := range []string{
		"CREATE TABLE x(a);\nINSERT INTO x VALUES(1);\nPRAGMA writable_schema=ON;\nINSERT INTO sqlite_schema(type,name,tbl_name,rootpage,sql)VALUES('table','x','x',0,'CREATE VIRTUAL TABLE x USING rtree(id,a,b)');\n",
		"BEGIN TRANSACTION;\nCREATE TABLE t(a);\nINSERT INTO t VALUES(1);\n",
		"PRAGMA foreign_keys=ON;\nCREATE TABLE p(id INTEGER PRIMARY KEY ON CONFLICT REPLACE, v);\nCREATE TABLE c(id, pid REFERENCES p(id) ON DELETE CASCADE);\nINSERT INTO p VALUES(1,'a');\nINSERT INTO c VALUES(1,1);\nINSERT INTO p VALUES(1,'b');\n",
		"PRAGMA journal_mode=persist;\nBEGIN;\nCREATE TABLE t(a);\nCOMMIT;\n",
	} {
		d, err := ParseDatabase("sqlite://" + filepath.Join(dir, fmt.Sprintf("r%d.db", i)))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := d.Restore(context.Background(), strings.NewReader(dump), false, RestoreOptions{}); err == nil {
			t.Errorf("%q restored", dump)
		}
		file := filepath.Join(dir, fmt.Sprintf("l%d.db", i))
		if err := os.WriteFile(file, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		stmts := strings.SplitAfter(strings.TrimSpace(dump), ";\n")
		if err := sqliteLoad(context.Background(), file, statementList(stmts...)); err == nil {
			t.Errorf("%q loaded without the screen", dump)
		}
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "*r*")); len(left) > 0 {
		t.Errorf("left behind: %v", left)
	}
}

// TestSQLiteStopAbandonsLongCall: a load stopped inside one long call of
// SQLite's (a generated column's replace() over 10⁷ bytes for a pattern
// of 5×10⁴, some seconds; a red-team test's took hours) returns within
// sqliteAbandonAfter of the stop, and the target is left as it was.
func TestSQLiteStopAbandonsLongCall(t *testing.T) {
	dir := t.TempDir()
	d, err := ParseDatabase("sqlite://" + filepath.Join(dir, "new.db"))
	if err != nil {
		t.Fatal(err)
	}
	dump := "CREATE TABLE t(a, b AS (length(replace(printf('%.*c', 10000000, 'x'), printf('%.*c', 50000, 'x') || 'y', ''))) STORED);\nINSERT INTO t VALUES(1);\n"
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(300*time.Millisecond, cancel)
	start := time.Now()
	_, err = d.Restore(ctx, strings.NewReader(dump), false, RestoreOptions{})
	if !errors.Is(err, context.Canceled) || !errors.Is(err, ErrUnchanged) {
		t.Errorf("stopped restore: %v", err)
	}
	if took := time.Since(start); took > sqliteAbandonAfter+2*time.Second {
		t.Errorf("the stopped restore took %v", took)
	}
	if entries, _ := os.ReadDir(dir); len(entries) > 0 {
		t.Errorf("left behind: %v", entries)
	}
}

// TestSQLiteWALAfterTheLoad: the dump's PRAGMA journal_mode=wal is left
// out of the load and applied after it (loaded in WAL mode, the dump's one
// transaction went into a WAL as large as the database: an exploratory
// test), and the restored database is in WAL mode with no WAL beside it.
func TestSQLiteWALAfterTheLoad(t *testing.T) {
	g := newSQLiteScreen(strings.NewReader("PRAGMA journal_mode=wal;\nBEGIN TRANSACTION;\nCREATE TABLE t(a);\nCOMMIT;\n"))
	g.deferWAL = true
	var stmts []string
	for {
		stmt, _, err := g.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		stmts = append(stmts, strings.TrimSpace(stmt))
	}
	if !g.wal || slices.Contains(stmts, "PRAGMA journal_mode=wal;") {
		t.Errorf("statements %q, wal %v", stmts, g.wal)
	}
	dir := t.TempDir()
	d, err := ParseDatabase("sqlite://" + filepath.Join(dir, "w.db"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Restore(context.Background(), strings.NewReader(sqlitePlainDump), false, RestoreOptions{}); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("sqlite3", filepath.Join(dir, "w.db"), "PRAGMA journal_mode").Output(); err != nil || strings.TrimSpace(string(out)) != "wal" {
		t.Errorf("journal mode %q, %v", out, err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("beside the database: %v", entries)
	}
}

// TestSQLiteRestoreIntoAnotherUsersDirectory: in a directory another user
// may write (an application's data directory), the load runs in a private
// directory and the result is copied in and given the old file's owner and
// mode through its descriptor (a red-team test swapped the temporary file
// for a link after the load, and root's restore chowned a file of its
// choosing); a symbolic link of another user's is not followed. As root.
func TestSQLiteRestoreIntoAnotherUsersDirectory(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to give files to another user")
	}
	const nobody = 65534
	dir := filepath.Join(t.TempDir(), "app")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.Chown(dir, nobody, nobody))
	file := filepath.Join(dir, "app.db")
	if out, err := exec.Command("sqlite3", file, "CREATE TABLE old(a);").CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	must(os.Chown(file, nobody, nobody))
	must(os.Chmod(file, 0o640))
	tmpdir := t.TempDir()
	t.Setenv("TMPDIR", tmpdir)
	d, err := ParseDatabase("sqlite://" + file)
	must(err)
	if _, err := d.Restore(context.Background(), strings.NewReader(sqlitePlainDump), false, RestoreOptions{Replace: true}); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(file)
	must(err)
	if st := fi.Sys().(*syscall.Stat_t); st.Uid != nobody || fi.Mode().Perm() != 0o640 {
		t.Errorf("restored file: uid %d, mode %v", st.Uid, fi.Mode().Perm())
	}
	if out, err := exec.Command("sqlite3", file, "SELECT count(*) FROM a").Output(); err != nil || strings.TrimSpace(string(out)) != "7" {
		t.Errorf("restored rows: %q %v", out, err)
	}
	for _, d := range []string{dir, tmpdir} {
		if entries, _ := os.ReadDir(d); len(entries) > 1 || len(entries) == 1 && d == tmpdir {
			t.Errorf("left in %s: %v", d, entries)
		}
	}
	// Another user's link is refused, whatever it points to.
	link := filepath.Join(dir, "link.db")
	must(os.Symlink(file, link))
	must(os.Lchown(link, nobody, nobody))
	d, err = ParseDatabase("sqlite://" + link)
	must(err)
	if _, err := d.Restore(context.Background(), strings.NewReader(sqlitePlainDump), false, RestoreOptions{Replace: true}); err == nil || !strings.Contains(err.Error(), "another user") || !errors.Is(err, ErrUnchanged) {
		t.Errorf("restore through another user's link: %v", err)
	}
}

// TestSQLiteRestoreDoesNotGiveItToWhoeverPutTheFile: an empty file another
// user put first in a directory open to everyone (sticky) does not give
// the restored database its owner and mode (a red-team test read the
// restored rows from its 0666 file).
func TestSQLiteRestoreDoesNotGiveItToWhoeverPutTheFile(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to give files to another user")
	}
	dir := filepath.Join(t.TempDir(), "shared")
	if err := os.Mkdir(dir, os.ModeSticky|0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, os.ModeSticky|0o777); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "app.db")
	if err := os.WriteFile(file, nil, 0o666); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(file, 0o666); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(file, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	d, err := ParseDatabase("sqlite://" + file)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Restore(context.Background(), strings.NewReader(sqlitePlainDump), false, RestoreOptions{}); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	if st := fi.Sys().(*syscall.Stat_t); st.Uid != 0 || fi.Mode().Perm() != 0o600 {
		t.Errorf("restored file: uid %d, mode %v", st.Uid, fi.Mode().Perm())
	}
}
