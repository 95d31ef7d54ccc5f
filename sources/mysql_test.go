package sources

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestCheckMySQLProps(t *testing.T) {
	for _, p := range []DatabaseProperties{
		{CreateWith: "CHARACTER SET latin1 COLLATE latin1_swedish_ci"},
		{CreateWith: "CHARACTER SET utf8mb4 COLLATE utf8mb4_0900_ai_ci", Statements: []string{}},
	} {
		if err := checkMySQLProps(&p); err != nil {
			t.Errorf("%+v: %v", p, err)
		}
	}
	for _, p := range []DatabaseProperties{
		{},
		{CreateWith: "CHARACTER SET latin1"},
		{CreateWith: "CHARACTER SET latin1 COLLATE latin1_swedish_ci; DROP DATABASE mysql"},
		{CreateWith: "CHARACTER SET latin1 COLLATE latin1_swedish_ci\n"},
		{CreateWith: "character set latin1 collate latin1_swedish_ci"},
		{CreateWith: "CHARACTER SET latin1 COLLATE latin1_swedish_ci", Statements: []string{"GRANT ALL ON *.* TO x"}},
	} {
		if err := checkMySQLProps(&p); err == nil {
			t.Errorf("%+v: accepted", p)
		}
	}
}

// testMySQLDatabase is a database of a name of its own on the server of
// SNAP_TEST_MYSQL (skipped where it is not set), dropped at the end.
func testMySQLDatabase(t *testing.T) *Database {
	t.Helper()
	raw := os.Getenv("SNAP_TEST_MYSQL")
	if raw == "" {
		t.Skip("SNAP_TEST_MYSQL is not set: skipping the test against a real MariaDB server")
	}
	var b [5]byte
	_, _ = rand.Read(b[:])
	server, err := ParseDatabase(raw)
	if err != nil {
		t.Fatal(err)
	}
	d := server.WithName("snaptest_" + hex.EncodeToString(b[:]))
	t.Cleanup(func() { _, _ = d.mysqlQuery(context.Background(), "DROP DATABASE IF EXISTS "+mysqlIdent(d.Name)+";\n") })
	return d
}

// TestMySQLRestoreRecordedProperties: a restore that creates the database
// refuses recorded properties that are not what snap records (the
// repository's bytes are not trusted), and, where the server knows no such
// collation (MySQL 8's utf8mb4_0900_ai_ci on MariaDB), creates it utf8mb4
// with a note.
func TestMySQLRestoreRecordedProperties(t *testing.T) {
	d := testMySQLDatabase(t)
	ctx := context.Background()
	restore := func(p *DatabaseProperties) (string, error) {
		var notes []string
		_, err := d.Restore(ctx, strings.NewReader("CREATE TABLE t (i INT);\n"), false,
			RestoreOptions{Properties: p, Stderr: func(l string) { notes = append(notes, l) }})
		return strings.Join(notes, "\n"), err
	}
	exists := func() string {
		out, err := d.mysqlQuery(ctx, "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = "+mysqlString(d.Name)+";\n")
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	_, err := restore(&DatabaseProperties{CreateWith: "CHARACTER SET latin1 COLLATE latin1_swedish_ci", Statements: []string{"CREATE USER mallory"}})
	if err == nil || !errors.Is(err, ErrUnchanged) || !strings.Contains(err.Error(), "not what snap records") || exists() != "0" {
		t.Fatalf("restore with statements in the recorded properties: %v (database exists: %s)", err, exists())
	}
	_, err = restore(&DatabaseProperties{CreateWith: "CHARACTER SET latin1 COLLATE latin1_swedish_ci; CREATE USER mallory"})
	if err == nil || !errors.Is(err, ErrUnchanged) || exists() != "0" {
		t.Fatalf("restore with a statement in create_with: %v", err)
	}
	notes, err := restore(&DatabaseProperties{CreateWith: "CHARACTER SET utf8mb4 COLLATE utf8mb4_0900_ai_ci"})
	if cs, _ := d.mysqlQuery(ctx, "SELECT DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = "+mysqlString(d.Name)+";\n"); strings.Contains(cs, "0900") {
		t.Skip("this server knows utf8mb4_0900_ai_ci (MySQL 8)")
	}
	if err != nil || !strings.Contains(notes, "could not be created as recorded (CHARACTER SET utf8mb4 COLLATE utf8mb4_0900_ai_ci") || !strings.Contains(notes, "Unknown collation") {
		t.Fatalf("restore with a collation this server lacks: %v\n%s", err, notes)
	}
	if cs, _ := d.mysqlQuery(ctx, "SELECT DEFAULT_CHARACTER_SET_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = "+mysqlString(d.Name)+";\n"); cs != "utf8mb4" {
		t.Errorf("created with %q, want utf8mb4", cs)
	}
	// A collation of another character set (error 1253, found by a
	// re-test): the same.
	if _, err := d.mysqlQuery(ctx, "DROP DATABASE "+mysqlIdent(d.Name)+";\n"); err != nil {
		t.Fatal(err)
	}
	notes, err = restore(&DatabaseProperties{CreateWith: "CHARACTER SET latin1 COLLATE utf8mb4_bin"})
	if err != nil || !strings.Contains(notes, "could not be created as recorded") {
		t.Fatalf("restore with a collation of another character set: %v\n%s", err, notes)
	}
}

// TestMySQLReplaceWaitsForLocksBounded: restore --replace drops the
// database, which waits for a session with an open transaction on one of
// its tables; it waited a year, saying nothing (found by an exploratory
// test). It gives up after its wait, having dropped nothing, and says why.
func TestMySQLReplaceWaitsForLocksBounded(t *testing.T) {
	d := testMySQLDatabase(t)
	d.lockWait = 2 * time.Second
	ctx := context.Background()
	if _, err := d.Restore(ctx, strings.NewReader("CREATE TABLE t (i INT);\nINSERT INTO t VALUES (1);\n"), false, RestoreOptions{}); err != nil {
		t.Fatal(err)
	}
	// A session that holds t: a transaction that read it, open for 30 s.
	tool, _ := d.client()
	holder := exec.Command(tool, append(d.mysqlConnArgs(), "--batch", "--", d.Name)...)
	holder.Stdin = strings.NewReader("BEGIN; SELECT * FROM t; SELECT SLEEP(30);\n")
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = holder.Process.Kill(); _ = holder.Wait() })
	time.Sleep(time.Second)
	var notes safeLines
	_, err := d.Restore(ctx, strings.NewReader("CREATE TABLE u (i INT);\n"), false, RestoreOptions{Replace: true, Stderr: notes.add})
	if !errors.Is(err, ErrUnchanged) || !strings.Contains(err.Error(), "another session holds one of its tables") {
		t.Errorf("restore --replace of a database in use: %v", err)
	}
	// The wait is said while it lasts (it was silent; found by an
	// exploratory test).
	if got := notes.String(); !strings.Contains(got, "note: waiting for other sessions to release the tables of "+d.String()+" before it is dropped") {
		t.Errorf("no note while the drop waited: %q", got)
	}
	if got, err := d.mysqlQuery(ctx, "SELECT i FROM "+mysqlIdent(d.Name)+".t;\n"); err != nil || got != "1" {
		t.Errorf("the database after the refused restore: %q, %v", got, err)
	}
}

// safeLines collects lines from several goroutines.
type safeLines struct {
	mu    sync.Mutex
	lines []string
}

func (l *safeLines) add(line string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, line)
}

func (l *safeLines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

// TestMySQLOwnDatabases: the databases that keep a whole-server restore
// out are the user's: a new one is listed, the system's are not, nor an
// empty "test" (mariadb-install-db makes one on every fresh server).
func TestMySQLOwnDatabases(t *testing.T) {
	d := testMySQLDatabase(t)
	ctx := context.Background()
	if _, err := d.mysqlQuery(ctx, "CREATE DATABASE "+mysqlIdent(d.Name)+";\n"); err != nil {
		t.Fatal(err)
	}
	server := d.WithName("")
	dbs, err := server.mysqlOwnDatabases(ctx)
	if err != nil {
		t.Fatal(err)
	}
	names := strings.Split(dbs, ", ")
	if !slices.Contains(names, d.Name) || slices.Contains(names, "mysql") || slices.Contains(names, "information_schema") {
		t.Errorf("own databases: %q", dbs)
	}
	empty, err := server.mysqlQuery(ctx, "SELECT count(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = 'test' AND NOT EXISTS (SELECT 1 FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'test');\n")
	if err != nil {
		t.Fatal(err)
	}
	if empty == "1" && slices.Contains(names, "test") {
		t.Errorf("an empty test database is listed: %q", dbs)
	}
}

// TestServerWarningsLeaveEventSchedulerNotes: the client's warning that
// the event scheduler is off (a database with events, restored on a
// server that does not run them) changed no value: it is passed on, not
// counted among the warnings that may mean values were cut.
func TestServerWarningsLeaveEventSchedulerNotes(t *testing.T) {
	var w serverWarnings
	var passed []string
	f := w.filter(func(l string) { passed = append(passed, l) })
	f("Warning (Code 1105): Event scheduler is switched off, use SET GLOBAL event_scheduler=ON to enable it.")
	f("Warning (Code 1265): Data truncated for column 'c' at row 1")
	f("a line of output")
	if w.n != 1 || !strings.Contains(w.first[0], "1265") || len(passed) != 2 {
		t.Errorf("counted %d (%q), passed %q", w.n, w.first, passed)
	}
}

// TestMySQLDropCreatedSaysWhenLeft: a restore that failed after creating
// its database says the database was dropped again only when the DROP
// worked; with the server gone it said so anyway, and the database stayed
// (found by an exploratory test). No server listens on port 1.
func TestMySQLDropCreatedSaysWhenLeft(t *testing.T) {
	if _, err := lookTool("mariadb", "mysql"); err != nil {
		t.Skip("no MariaDB/MySQL client")
	}
	d, err := ParseDatabase("mysql://root@127.0.0.1:1/gone")
	if err != nil {
		t.Fatal(err)
	}
	err = d.mysqlDropCreated(context.Background(), errors.New("load failed"))
	if !errors.Is(err, ErrCreatedLeft) || errors.Is(err, ErrCreatedDropped) || !strings.Contains(err.Error(), "load failed") {
		t.Errorf("drop against no server: %v", err)
	}
}
