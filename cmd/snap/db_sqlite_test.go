package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/snap-backup/snap/snapshot"
)

func sqliteQuery(t *testing.T, file, sql string) string {
	t.Helper()
	cmd := exec.Command("sqlite3", "-bail", "-batch", file)
	cmd.Stdin = strings.NewReader(".timeout 20000\n" + sql)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("sqlite3 %s: %v\n%s", file, err, out)
	}
	return string(out)
}

const sqliteSchema = `
CREATE TABLE accounts (id INTEGER PRIMARY KEY, balance INTEGER NOT NULL);
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100) INSERT INTO accounts SELECT i, 1000 FROM n;
CREATE TABLE events (id INTEGER PRIMARY KEY, payload BLOB NOT NULL);
CREATE TABLE event_log (event_id INTEGER PRIMARY KEY REFERENCES events(id), note TEXT);
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3000)
  INSERT INTO events SELECT i, randomblob(200) FROM n;
INSERT INTO event_log SELECT id, 'seed ✓' FROM events;
CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT, data BLOB);
INSERT INTO notes (body, data) VALUES ('Grüße aus Köln 🚀', X'00FF00'), ('日本語', X''), ('quote''s', NULL);
CREATE VIEW recent AS SELECT id FROM events ORDER BY id DESC LIMIT 5;
CREATE INDEX notes_body ON notes (body);
PRAGMA user_version = 42;
`

// TestSQLiteWhileWriting backs up a SQLite database while another process
// keeps writing to it, in transactions that each insert into two tables and
// move money between accounts. The restored copy must be one of the states
// the writer committed: both tables equally long, the total balance
// unchanged, every row equal to the live database's row of that ID.
func TestSQLiteWhileWriting(t *testing.T) {
	for _, mode := range []string{"wal", "delete"} {
		t.Run(mode, func(t *testing.T) { testSQLiteWhileWriting(t, mode) })
	}
}

func testSQLiteWhileWriting(t *testing.T, journal string) {
	tr := newTestRepo(t)
	src := filepath.Join(tr.dir, "app")
	dbFile := filepath.Join(src, "data", "app.db")
	writeFile(t, filepath.Join(src, "settings.json"), []byte(`{"db": "data/app.db"}`))
	if err := os.MkdirAll(filepath.Dir(dbFile), 0o755); err != nil {
		t.Fatal(err)
	}
	sqliteQuery(t, dbFile, "PRAGMA journal_mode = "+journal+";\n"+sqliteSchema)
	wantNotes := sqliteQuery(t, dbFile, "SELECT id, body, hex(data) FROM notes;")

	// The writer: one sqlite3 process fed transactions through a pipe.
	writer := exec.Command("sqlite3", "-bail", "-batch", dbFile)
	stdin, err := writer.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := writer.Start(); err != nil {
		t.Fatal(err)
	}
	var stop atomic.Bool
	var txns atomic.Int64
	done := make(chan error, 1)
	go func() {
		_, err := io.WriteString(stdin, ".timeout 20000\n")
		for i := 0; err == nil && !stop.Load(); i++ {
			from, to := i%100+1, (i*7)%100+1
			_, err = fmt.Fprintf(stdin, "BEGIN IMMEDIATE;\nINSERT INTO events (payload) VALUES (randomblob(150));\n"+
				"INSERT INTO event_log VALUES (last_insert_rowid(), 'txn %d');\n"+
				"UPDATE accounts SET balance = balance - %d WHERE id = %d;\nUPDATE accounts SET balance = balance + %d WHERE id = %d;\nCOMMIT;\n",
				i, i%13, from, i%13, to)
			txns.Add(1)
		}
		stdin.Close()
		done <- err
	}()
	t.Cleanup(func() {
		stop.Store(true)
		_ = writer.Process.Kill()
		_ = writer.Wait()
	})
	waitFor := func(n int64) {
		for deadline := time.Now().Add(20 * time.Second); txns.Load() < n; {
			if time.Now().After(deadline) {
				t.Fatalf("the writer committed only %d transactions", txns.Load())
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitFor(200)
	before := txns.Load()
	wantFiles := readTree(t, filepath.Join(src))
	delete(wantFiles, "data/app.db") // the live file: it is the dump that counts
	for k := range wantFiles {
		if strings.HasPrefix(k, "data/app.db-") {
			delete(wantFiles, k)
		}
	}
	res := tr.run("create", "--exclude", "app.db*", src, "--db", "sqlite://"+dbFile)
	if res.code != 0 {
		t.Fatalf("create: exit %d\n%s\n%s", res.code, res.stdout, res.stderr)
	}
	// The writer must have been at work around the dump, or the check of
	// the restored state below proves nothing. Its transactions wait in
	// the pipe while sqlite3 waits for a lock (in rollback-journal mode
	// the dump's read transaction holds one), so on a loaded machine the
	// next may be taken just after the create ended: allow a moment.
	for deadline := time.Now().Add(3 * time.Second); txns.Load() == before; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the writer made no progress while the dump ran")
		}
	}
	waitFor(txns.Load() + 100) // keep writing after the snapshot
	stop.Store(true)
	if err := <-done; err != nil {
		t.Fatalf("writer: %v", err)
	}
	if err := writer.Wait(); err != nil {
		t.Fatalf("writer: %v", err)
	}
	writeFile(t, filepath.Join(src, "settings.json"), []byte(`changed`))

	restored := filepath.Join(tr.dir, "restored", "app.db")
	res = tr.run("restore", "latest", "--db", "app", "--to", "sqlite://"+restored)
	if res.code != 0 {
		t.Fatalf("restore --db: exit %d\n%s\n%s", res.code, res.stdout, res.stderr)
	}
	check := sqliteQuery(t, restored, `PRAGMA integrity_check; PRAGMA user_version; PRAGMA journal_mode;
SELECT (SELECT count(*) FROM events) = (SELECT count(*) FROM event_log); SELECT sum(balance) FROM accounts; SELECT max(id) FROM events;`)
	lines := strings.Fields(check)
	if len(lines) != 6 || lines[0] != "ok" || lines[1] != "42" || lines[2] != journal || lines[3] != "1" || lines[4] != "100000" {
		t.Fatalf("restored database is not one consistent state (integrity, user_version, journal mode, tables equal, total balance, last event):\n%s", check)
	}
	last, _ := strconv.Atoi(lines[5])
	final, _ := strconv.Atoi(strings.TrimSpace(sqliteQuery(t, dbFile, "SELECT max(id) FROM events;")))
	if last <= 3000 || last >= final {
		t.Fatalf("restored database ends at event %d: want a state after the seed (3000) and before the writer's last (%d)", last, final)
	}
	// Every restored row is the live database's row of that ID.
	rows := "SELECT e.id, hex(e.payload), l.note FROM events e JOIN event_log l ON l.event_id = e.id WHERE e.id <= " + lines[5] + " ORDER BY e.id;"
	if got, want := sqliteQuery(t, restored, rows), sqliteQuery(t, dbFile, rows); got != want {
		t.Fatal("restored events differ from the live database's")
	}
	if got := sqliteQuery(t, restored, "SELECT id, body, hex(data) FROM notes;"); got != wantNotes {
		t.Fatalf("restored notes differ:\n got %s\nwant %s", got, wantNotes)
	}
	target := filepath.Join(tr.dir, "files")
	tr.mustRun("restore", "latest", "--target", target)
	compareTrees(t, wantFiles, readTree(t, filepath.Join(target, src)))

	// A restore over the live file is refused; --replace swaps it.
	if res := tr.run("restore", "latest", "--db", "app"); res.code != 1 || !strings.Contains(res.stderr, "--replace") {
		t.Fatalf("restore over the database: exit %d, want 1\n%s", res.code, res.stderr)
	}
	// The database by its file's name too.
	tr.mustRun("restore", "latest", "--db", filepath.Base(dbFile), "--replace")
	if got := sqliteQuery(t, dbFile, "SELECT max(id) FROM events;"); strings.TrimSpace(got) != lines[5] {
		t.Fatalf("database replaced in place ends at event %s, want %s", got, lines[5])
	}
}

func TestSQLiteMissingFile(t *testing.T) {
	tr := newTestRepo(t)
	missing := filepath.Join(tr.dir, "nope", "app.db")
	res := tr.run("create", "--db", "sqlite://"+missing)
	if res.code != 1 || !strings.Contains(res.stderr, "no such file") {
		t.Fatalf("dump of a missing SQLite file: exit %d, want 1 and a clear error\n%s", res.code, res.stderr)
	}
	if _, err := os.Stat(missing); err == nil {
		t.Fatal("the dump created the missing database file")
	}
	garbage := filepath.Join(tr.dir, "garbage.db")
	writeFile(t, garbage, []byte("this is not a database, but long enough to look like one to a careless tool......"))
	if res := tr.run("create", "--db", "sqlite://"+garbage); res.code != 1 || !strings.Contains(res.stderr, "garbage.db is not a SQLite database (it does not start with \"SQLite format 3\"); check the path") ||
		strings.Contains(res.stderr, "line 5") {
		t.Fatalf("dump of a file that is no database: exit %d, want 1\n%s", res.code, res.stderr)
	}
	if n := tr.snapshotCount(); n != 0 {
		t.Fatalf("%d snapshots saved, want none", n)
	}
}

// TestSQLiteReplaceInterrupted: a restore --replace stopped while SQLite
// loads (into a file of its own) leaves the database as it was, and says
// that nothing was changed (exit 130).
func TestSQLiteReplaceInterrupted(t *testing.T) {
	tr := newTestRepo(t)
	dbFile := filepath.Join(tr.dir, "app.db")
	sqliteQuery(t, dbFile, sqliteSchema+"CREATE TABLE big(i, v); WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i < 300000) INSERT INTO big SELECT i, hex(randomblob(50)) FROM c;")
	tr.mustRun("create", "--db", "sqlite://"+dbFile)
	sqliteQuery(t, dbFile, "UPDATE accounts SET balance = 0 WHERE id = 1;")
	before, err := os.ReadFile(dbFile)
	if err != nil {
		t.Fatal(err)
	}
	cmd, out := tr.start(nil, "restore", "latest", "--db", "app", "--replace")
	// The load takes seconds (300,000 rows): stop it once SQLite has
	// written into the new file.
	deadline := time.Now().Add(30 * time.Second)
	for {
		partial, _ := filepath.Glob(filepath.Join(tr.dir, ".app.db.snap-restore-*"))
		if len(partial) > 0 {
			if fi, err := os.Stat(partial[0]); err == nil && fi.Size() > 0 {
				break
			}
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			t.Fatalf("the load did not begin\n%s", out)
		}
		time.Sleep(5 * time.Millisecond)
	}
	// What is loaded so far is readable by no one else (the new file used
	// to be made with sqlite3's mode, 0644 less the umask).
	partial, _ := filepath.Glob(filepath.Join(tr.dir, ".app.db.snap-restore-*"))
	if len(partial) == 0 {
		t.Error("no temporary database beside the target while loading")
	}
	for _, p := range partial {
		if fi, err := os.Stat(p); err == nil && fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s has mode %v while loading; want it private", filepath.Base(p), fi.Mode().Perm())
		}
	}
	if msg := interruptWait(t, cmd, out); !strings.Contains(msg, "nothing was changed") {
		t.Fatalf("interrupted restore does not say nothing was changed:\n%s", msg)
	}
	if after, _ := os.ReadFile(dbFile); !bytes.Equal(after, before) {
		t.Error("the database file changed")
	}
	if left, _ := filepath.Glob(filepath.Join(tr.dir, ".app.db.snap-restore-*")); len(left) > 0 {
		t.Errorf("the stopped load left %v", left)
	}
}

// TestSQLiteReplaceThroughSymlink: a database linked into place (the file
// on a data volume) is replaced where the link points, and the link stays;
// the restore used to rename the new file over the link, leaving the real
// database as it was.
func TestSQLiteReplaceThroughSymlink(t *testing.T) {
	tr := newTestRepo(t)
	realFile := filepath.Join(tr.dir, "volume", "real.db")
	link := filepath.Join(tr.dir, "app", "app.db")
	must(t, os.MkdirAll(filepath.Dir(realFile), 0o755))
	must(t, os.MkdirAll(filepath.Dir(link), 0o755))
	sqliteQuery(t, realFile, "CREATE TABLE t (i INTEGER); INSERT INTO t VALUES (1);")
	must(t, os.Symlink("../volume/real.db", link))
	tr.mustRun("create", "--db", "sqlite://"+link)
	sqliteQuery(t, link, "INSERT INTO t VALUES (2);")
	tr.mustRun("restore", "latest", "--db", "app.db", "--replace")
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Errorf("the link was replaced: %v %v", fi.Mode(), err)
	}
	if got := strings.TrimSpace(sqliteQuery(t, realFile, "SELECT COUNT(*) FROM t;")); got != "1" {
		t.Errorf("the linked database holds %s rows after the restore; want the snapshot's 1", got)
	}
	// --replace replaces a database, not a file a mistyped --to names.
	notes := filepath.Join(tr.dir, "notes.txt")
	writeFile(t, notes, []byte("my notes, not a database\n"))
	res := tr.run("restore", "latest", "--db", "app.db", "--to", "sqlite://"+notes, "--replace")
	if got, _ := os.ReadFile(notes); res.code != exitFatal || !strings.Contains(res.stderr, "notes.txt is not a SQLite database") || string(got) != "my notes, not a database\n" {
		t.Errorf("restore --replace over a text file: exit %d, file now %q\n%s", res.code, got, res.stderr)
	}
	// A journal beside the link (an application that opens the database
	// by it) goes too: it would be applied to the restored file.
	writeFile(t, link+"-wal", []byte("stale"))
	tr.mustRun("restore", "latest", "--db", "app.db", "--replace")
	if _, err := os.Stat(link + "-wal"); err == nil {
		t.Error("the -wal beside the link was left")
	}
	// A new database file is private.
	fresh := filepath.Join(tr.dir, "fresh.db")
	tr.mustRun("restore", "latest", "--db", "app.db", "--to", "sqlite://"+fresh)
	if fi, err := os.Stat(fresh); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("a restored new database file: %v %v; want mode 0600", fi.Mode(), err)
	}
}

// TestRestoreLatestDumpSkipsFilesOnlySnapshots: with --db, 'latest' and
// --at mean the newest snapshot that holds the dump, not the newest of all
// (a files-only job may have run after the database's).
func TestRestoreLatestDumpSkipsFilesOnlySnapshots(t *testing.T) {
	tr := newTestRepo(t)
	dbFile := filepath.Join(tr.dir, "app.db")
	sqliteQuery(t, dbFile, "CREATE TABLE t(v TEXT); INSERT INTO t VALUES ('kept');")
	dbID := tr.createID("--db", "sqlite://"+dbFile)
	files := filepath.Join(tr.dir, "files")
	writeFile(t, filepath.Join(files, "f"), []byte("x"))
	tr.mustRun("create", files)
	for i, args := range [][]string{{"latest"}, {"--at", "now"}} {
		restored := filepath.Join(tr.dir, fmt.Sprintf("restored%d.db", i))
		res := tr.run(append(append([]string{"restore"}, args...), "--db", "app", "--to", "sqlite://"+restored)...)
		if res.code != 0 {
			t.Fatalf("restore %v --db app: exit %d\n%s", args, res.code, res.stderr)
		}
		if got := sqliteQuery(t, restored, "SELECT v FROM t;"); strings.TrimSpace(got) != "kept" {
			t.Errorf("restore %v: %q", args, got)
		}
	}
	// A misspelt name: what the latest snapshot with dumps has, and the
	// name meant. It said "no snapshot for 'latest' with these filters",
	// given none (found by an exploratory test).
	if res := tr.run("restore", "latest", "--db", "apo"); res.code != exitFatal || !strings.Contains(res.stderr, `no snapshot holds a dump named "apo"; the latest snapshot with dumps, `) ||
		!strings.Contains(res.stderr, "/db/sqlite/app.sql (did you mean app?)") || strings.Contains(res.stderr, "filters") {
		t.Errorf("restore of a misspelt dump: exit %d\n%s", res.code, res.stderr)
	}
	if res := tr.run("restore", "latest", "--db", "other"); res.code != exitFatal || !strings.Contains(res.stderr, `no snapshot holds a dump named "other"`) || strings.Contains(res.stderr, "did you mean") {
		t.Errorf("restore of a dump no snapshot holds: exit %d\n%s", res.code, res.stderr)
	}
	// The name meant may be in older snapshots only: the hint looks at
	// every snapshot's dumps, not the newest's alone.
	newer := filepath.Join(tr.dir, "newer.db")
	sqliteQuery(t, newer, "CREATE TABLE n(v TEXT);")
	newerID := tr.createID("--db", "sqlite://"+newer)
	if res := tr.run("restore", "latest", "--db", "apo"); res.code != exitFatal || !strings.Contains(res.stderr, "/db/sqlite/newer.sql (did you mean app?)") {
		t.Errorf("restore of a misspelt dump an older snapshot holds: exit %d\n%s", res.code, res.stderr)
	}
	tr.mustRun("forget", newerID)
	// --at before every snapshot that holds it: which comes first, not
	// "no snapshot holds" (found by an exploratory test).
	if res := tr.run("restore", "--at", "2020-01-01T00:00:00Z", "--db", "app", "--to", "sqlite://"+filepath.Join(tr.dir, "early.db")); res.code != exitFatal ||
		!strings.Contains(res.stderr, "no snapshot taken at or before 2020-01-01T00:00:00Z; the first is snapshot "+dbID[:8]) || !strings.Contains(res.stderr, "(among the snapshots that hold the dump app)") {
		t.Errorf("restore --at before the dump's first snapshot: exit %d\n%s", res.code, res.stderr)
	}
	// Named by ID, the snapshot's own dumps, with the same hint.
	if res := tr.run("restore", dbID, "--db", "apo"); res.code == 0 || !strings.Contains(res.stderr, `has no dump "apo"; it has `) || !strings.Contains(res.stderr, "/db/sqlite/app.sql (did you mean app?)") {
		t.Errorf("restore of a misspelt dump of a snapshot named by ID: exit %d\n%s", res.code, res.stderr)
	}
}

// TestSQLiteFileNameWithHash: a database file whose name holds a # is
// restored with --replace into that file, not into the file its name's
// part before the # names (the recorded URL was not percent-encoded, and
// "#old.db" parsed as a fragment: the other file was replaced); it is
// found by its file name (found by an exploratory test).
func TestSQLiteFileNameWithHash(t *testing.T) {
	tr := newTestRepo(t)
	other := filepath.Join(tr.dir, "prod")
	sqliteQuery(t, other, "CREATE TABLE important (x); INSERT INTO important VALUES ('precious');")
	dbFile := filepath.Join(tr.dir, "prod#old.db")
	sqliteQuery(t, dbFile, "CREATE TABLE t (x); INSERT INTO t VALUES (1);")
	tr.mustRun("create", "--db", "sqlite://"+strings.ReplaceAll(dbFile, "#", "%23"))
	sqliteQuery(t, dbFile, "INSERT INTO t VALUES (2);")
	otherBefore, err := os.ReadFile(other)
	must(t, err)
	if res := tr.run("create", "--db", "sqlite://"+dbFile); res.code != exitUsage || !strings.Contains(res.stderr, "%23") {
		t.Errorf("create with an unencoded # in the file name: exit %d: %s", res.code, res.stderr)
	}
	tr.mustRun("restore", "latest", "--db", "prod#old.db", "--replace")
	if got := sqliteQuery(t, dbFile, "SELECT count(*) FROM t;"); strings.TrimSpace(got) != "1" {
		t.Errorf("prod#old.db holds %s rows after the restore, want 1", strings.TrimSpace(got))
	}
	if after, _ := os.ReadFile(other); !bytes.Equal(after, otherBefore) {
		t.Error("the restore changed another file, prod")
	}
}

// TestSQLiteKeepsUTF16Encoding: a UTF-16le database comes back UTF-16le (it
// came back UTF-8); the dump of a UTF-8 database has no encoding line, so
// it stays as it was, byte for byte.
func TestSQLiteKeepsUTF16Encoding(t *testing.T) {
	tr := newTestRepo(t)
	file := filepath.Join(tr.dir, "utf16.db")
	sqliteQuery(t, file, "PRAGMA encoding='UTF-16le'; CREATE TABLE t (s TEXT); INSERT INTO t VALUES ('Grüße 🚀');")
	utf8 := filepath.Join(tr.dir, "utf8.db")
	sqliteQuery(t, utf8, "CREATE TABLE t (s TEXT);")
	tr.mustRun("create", "--db", "sqlite://"+file, "--db", "sqlite://"+utf8)
	into := filepath.Join(tr.dir, "copy.db")
	tr.mustRun("restore", "latest", "--db", "utf16", "--to", "sqlite://"+into)
	if got := strings.TrimSpace(sqliteQuery(t, into, "PRAGMA encoding;")); got != "UTF-16le" {
		t.Errorf("restored encoding %s, want UTF-16le", got)
	}
	if got := strings.TrimSpace(sqliteQuery(t, into, "SELECT s FROM t;")); got != "Grüße 🚀" {
		t.Errorf("restored %q", got)
	}
	if dump := tr.mustRun("dump", "latest", "/db/sqlite/utf8.sql").stdout; strings.Contains(dump, "encoding") {
		t.Errorf("the dump of a UTF-8 database names its encoding:\n%s", dump)
	}
}

// TestSQLiteReplaceRefusedWhileOpen: restore --replace of a database that
// another process holds open is refused, and the file left as it was:
// replaced, the process went on writing to the old file, and those writes
// were lost without a word (found by an exploratory test). Once it has
// let go, the restore goes on.
func TestSQLiteReplaceRefusedWhileOpen(t *testing.T) {
	tr := newTestRepo(t)
	file := filepath.Join(tr.dir, "app.db")
	sqliteQuery(t, file, sqliteSchema)
	tr.mustRun("create", "--db", "sqlite://"+file)
	app := exec.Command("sqlite3", "-batch", file)
	in, err := app.StdinPipe()
	must(t, err)
	out, err := app.StdoutPipe()
	must(t, err)
	must(t, app.Start())
	t.Cleanup(func() { in.Close(); _ = app.Wait() })
	// The shell has opened the database once it answers.
	_, err = io.WriteString(in, "SELECT 'ready';\n")
	must(t, err)
	if line, err := bufio.NewReader(out).ReadString('\n'); err != nil || line != "ready\n" {
		t.Fatalf("sqlite3: %q %v", line, err)
	}
	before, err := os.ReadFile(file)
	must(t, err)
	res := tr.run("restore", "latest", "--db", "app", "--replace")
	if res.code != 1 || !strings.Contains(res.stderr, fmt.Sprintf("is open in process %d (sqlite3)", app.Process.Pid)) || !strings.Contains(res.stderr, "nothing was changed") {
		t.Errorf("restore --replace of an open database: exit %d\n%s", res.code, res.stderr)
	}
	if after, _ := os.ReadFile(file); !bytes.Equal(after, before) {
		t.Error("the open database was changed")
	}
	in.Close()
	_ = app.Wait()
	tr.mustRun("restore", "latest", "--db", "app", "--replace")
}

// TestSQLiteKeepsRowids: a table's rowids come back as they were, not
// renumbered from 1 (found by an exploratory test: after a deleted row, an
// external-content FTS5 table found the wrong rows, or none, and said the
// database was malformed).
func TestSQLiteKeepsRowids(t *testing.T) {
	tr := newTestRepo(t)
	file := filepath.Join(tr.dir, "notes.db")
	sqliteQuery(t, file, `CREATE TABLE notes(title TEXT, body TEXT);
INSERT INTO notes VALUES('a','apple pie'),('b','banana split'),('c','cherry tart');
DELETE FROM notes WHERE title='a';
CREATE VIRTUAL TABLE notes_fts USING fts5(body, content='notes', content_rowid='rowid');
INSERT INTO notes_fts(notes_fts) VALUES('rebuild');`)
	tr.mustRun("create", "--db", "sqlite://"+file)
	into := filepath.Join(tr.dir, "copy.db")
	tr.mustRun("restore", "latest", "--db", "notes", "--to", "sqlite://"+into)
	if got := sqliteQuery(t, into, "SELECT rowid, title FROM notes; SELECT title FROM notes JOIN notes_fts ON notes.rowid = notes_fts.rowid WHERE notes_fts MATCH 'cherry';"); got != "2|b\n3|c\nc\n" {
		t.Errorf("restored rows and search:\n%s", got)
	}
}

// TestRestoreSeveralDatabasesSaysWhatWasNotRestored: restore --db A --db B
// finds every dump before it restores any (a misspelt second name failed
// after the first database was replaced), and when one fails, the error
// names those not attempted (it stopped without a word about them).
func TestRestoreSeveralDatabasesSaysWhatWasNotRestored(t *testing.T) {
	tr := newTestRepo(t)
	var files []string
	for _, n := range []string{"a", "b", "c"} {
		f := filepath.Join(tr.dir, n+".db")
		sqliteQuery(t, f, "CREATE TABLE t (x); INSERT INTO t VALUES ('"+n+"');")
		files = append(files, "--db", "sqlite://"+f)
	}
	tr.mustRun(append([]string{"create"}, files...)...)
	// The config names the databases: gone, they are restored where they
	// were without --to (RecordedTargetProblem).
	var urls []string
	for i := 1; i < len(files); i += 2 {
		urls = append(urls, strconv.Quote(files[i]))
	}
	cfg := tr.writeConfig("[jobs.app]\ndatabases = [" + strings.Join(urls, ", ") + "]\n")
	a := filepath.Join(tr.dir, "a.db")
	sqliteQuery(t, a, "UPDATE t SET x = 'changed';")
	var list []snapshotJSON
	must(t, jsonUnmarshal(tr.mustRun("list", "--json").stdout, &list))
	// By ID: 'latest' looks for a snapshot that holds both dumps.
	res := tr.run("restore", list[0].ShortID, "--db", "a", "--db", "nope", "--replace")
	if res.code != exitFatal || !strings.Contains(res.stderr, `has no dump "nope"`) {
		t.Errorf("restore with a misspelt second name: exit %d\n%s", res.code, res.stderr)
	}
	if got := strings.TrimSpace(sqliteQuery(t, a, "SELECT x FROM t;")); got != "changed" {
		t.Errorf("the first database was restored (%q) before the second name was found wanting", got)
	}
	// Without --replace, every target is checked first: b holds data, so
	// a (gone meanwhile) is not restored either (it was, and the set was
	// half restored; found by an exploratory test).
	must(t, os.Remove(a))
	if res := tr.run("restore", "latest", "--db", "a", "--db", "b"); res.code != exitUsage || !strings.Contains(res.stderr, "a.db does not exist here") {
		t.Errorf("restore into a gone database the config does not name, without --to: exit %d\n%s", res.code, res.stderr)
	}
	res = tr.run("--config", cfg, "restore", "latest", "--db", "a", "--db", "b")
	if res.code != exitFatal || !strings.Contains(res.stderr, "b.db exists and is not empty, so nothing was restored: restore the dumps into other databases with --to, or replace them with --replace") {
		t.Errorf("restore whose second target holds data: exit %d\n%s", res.code, res.stderr)
	}
	if _, err := os.Stat(a); err == nil {
		t.Errorf("restore whose second target holds data restored the first")
	}
	// The first restore fails (a directory in its place): b and c are
	// not tried, and the error names them.
	must(t, os.Mkdir(a, 0o755))
	must(t, os.Remove(filepath.Join(tr.dir, "b.db")))
	must(t, os.Remove(filepath.Join(tr.dir, "c.db")))
	res = tr.run("--config", cfg, "restore", "latest", "--db", "a", "--db", "b", "--db", "/db/sqlite/c.sql")
	if res.code != exitFatal || !strings.Contains(res.stderr, "is not a regular file") || !strings.Contains(res.stderr, "; not restored: b, /db/sqlite/c.sql (restore them with: snap restore "+list[0].ShortID+" --db b --db /db/sqlite/c.sql)") {
		t.Errorf("restore whose first database fails: exit %d\n%s", res.code, res.stderr)
	}
}

// TestSQLiteReplaceNotBlockedByAReader: a process that holds the database
// open only for reading does not stop restore --replace (any user who may
// read the file could otherwise block it for good: a red-team test); it
// loses nothing, and sees the new data when it opens the file again.
func TestSQLiteReplaceNotBlockedByAReader(t *testing.T) {
	tr := newTestRepo(t)
	file := filepath.Join(tr.dir, "app.db")
	sqliteQuery(t, file, sqliteSchema)
	tr.mustRun("create", "--db", "sqlite://"+file)
	reader := exec.Command("sh", "-c", "exec 3<\"$1\"; echo ready; sleep 60", "sh", file)
	out, err := reader.StdoutPipe()
	must(t, err)
	must(t, reader.Start())
	t.Cleanup(func() { _ = reader.Process.Kill(); _ = reader.Wait() })
	if line, err := bufio.NewReader(out).ReadString('\n'); err != nil || line != "ready\n" {
		t.Fatalf("reader: %q %v", line, err)
	}
	tr.mustRun("restore", "latest", "--db", "app", "--replace")
}

// TestSQLiteTextWithNULReported: a TEXT value with a NUL, which sqlite3's
// .dump cuts there without a word, makes the create say where and exit 3
// (the snapshot is saved, as for a file that could not be read), in text
// and in JSON; the next create of the same database, the value made a
// BLOB, is clean.
func TestSQLiteTextWithNULReported(t *testing.T) {
	tr := newTestRepo(t)
	dbFile := filepath.Join(tr.dir, "app.db")
	sqliteQuery(t, dbFile, "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT); INSERT INTO notes VALUES (1, 'ab' || char(0) || 'cd'), (2, 'plain');")
	res := tr.run("create", "--db", "sqlite://"+dbFile)
	if res.code != exitPartial || !strings.Contains(res.stderr, "holds TEXT values with a NUL character (notes.body: 1 value), which sqlite3's .dump cuts at the NUL") ||
		!strings.Contains(res.stderr, "(saved as it came)") || strings.Contains(res.stderr, "(skipped)") || !strings.Contains(res.stdout, "snapshot ") ||
		!strings.Contains(res.stderr, "saved, but 1 dump(s) lost data on the way and were saved as they came (listed above)") {
		t.Fatalf("create of a database with a NUL in a TEXT value: exit %d\n%s%s", res.code, res.stdout, res.stderr)
	}
	// The dump, with the check's line at its end, restores: the value
	// cut, the rest whole.
	// The restore says so again (it said nothing; found by an
	// exploratory test).
	cut := filepath.Join(tr.dir, "cut.db")
	res = tr.mustRun("restore", "latest", "--db", "app.db", "--to", "sqlite://"+cut)
	if got := sqliteQuery(t, cut, "SELECT hex(body) FROM notes ORDER BY id;"); got != "6162\n706C61696E\n" {
		t.Errorf("the restored values: %q", got)
	}
	if !strings.Contains(res.stderr, "warning: sqlite://"+cut+": the dump holds 1 TEXT value with a NUL character, which sqlite3's .dump cut at the NUL when the snapshot was taken") {
		t.Errorf("restore of a dump with cut values: no warning\n%s", res.stderr)
	}
	res = tr.run("create", "--json", "--db", "sqlite://"+dbFile)
	if res.code != exitPartial || !strings.Contains(res.stdout, `"errors":1`) || !strings.Contains(res.stdout+res.stderr, `"path":"/db/sqlite/app.sql","type":"error"`) {
		t.Errorf("create --json: exit %d\n%s%s", res.code, res.stdout, res.stderr)
	}
	sqliteQuery(t, dbFile, "UPDATE notes SET body = CAST(body AS BLOB) WHERE id = 1;")
	if res := tr.run("create", "--db", "sqlite://"+dbFile); res.code != 0 {
		t.Errorf("create after the value was made a BLOB: exit %d\n%s", res.code, res.stderr)
	}
	if res := tr.mustRun("restore", "latest", "--db", "app.db", "--replace"); strings.Contains(res.stderr, "NUL") {
		t.Errorf("restore of a clean dump: %s", res.stderr)
	}
	if got := sqliteQuery(t, dbFile, "SELECT hex(body) FROM notes WHERE id = 1;"); strings.TrimSpace(got) != "6162006364" {
		t.Errorf("the BLOB came back as %s", got)
	}
}

// TestSQLiteSchemaRestoreWouldRefuse: a schema that snap's restore would
// not load (a collation the sqlite3 shell adds, snap's SQLite lacks) is a
// warning of the create, which saves the snapshot and exits 0; the
// restore then fails as the warning said, and leaves the target as it was.
func TestSQLiteSchemaRestoreWouldRefuse(t *testing.T) {
	tr := newTestRepo(t)
	dbFile := filepath.Join(tr.dir, "app.db")
	sqliteQuery(t, dbFile, "CREATE TABLE c (v TEXT COLLATE uint); INSERT INTO c VALUES ('a2');")
	res := tr.run("create", "--db", "sqlite://"+dbFile)
	if res.code != 0 || !strings.Contains(res.stderr, "warning: /db/sqlite/app.sql: snap restore --db would not load this database's schema: SQLite: no such collation sequence: uint") {
		t.Fatalf("create: exit %d\n%s", res.code, res.stderr)
	}
	res = tr.run("restore", "latest", "--db", "app.db", "--to", "sqlite://"+filepath.Join(tr.dir, "out.db"))
	if res.code == 0 || !strings.Contains(res.stderr, "no such collation sequence: uint") {
		t.Errorf("restore: exit %d\n%s", res.code, res.stderr)
	}
	if _, err := os.Stat(filepath.Join(tr.dir, "out.db")); err == nil {
		t.Error("the failed restore left its target")
	}
}

// TestRestoreSeveralDumpsNamesTheMisspeltOne: of several --db names, the
// one no snapshot holds is named, with the name meant, from the latest
// snapshot that holds the others, not from another job's newer snapshot
// (found by an exploratory test: "no snapshot holds the dumps … together",
// listing the other job's dump).
func TestRestoreSeveralDumpsNamesTheMisspeltOne(t *testing.T) {
	tr := newTestRepo(t)
	var urls []string
	for _, name := range []string{"app", "billing", "logs"} {
		f := filepath.Join(tr.dir, name+".db")
		sqliteQuery(t, f, "CREATE TABLE t(v TEXT);")
		urls = append(urls, "sqlite://"+f)
	}
	tr.mustRun("create", "--db", urls[0], "--db", urls[1])
	tr.mustRun("create", "--db", urls[2])
	res := tr.run("restore", "latest", "--db", "app", "--db", "biling", "--replace")
	if res.code != exitFatal || !strings.Contains(res.stderr, `no snapshot holds a dump named "biling"`) ||
		!strings.Contains(res.stderr, "/db/sqlite/billing.sql (biling: did you mean billing?)") || strings.Contains(res.stderr, "logs") {
		t.Errorf("restore of two dumps, one misspelt: exit %d\n%s", res.code, res.stderr)
	}
	res = tr.run("restore", "latest", "--db", "app", "--db", "logs", "--replace")
	if res.code != exitFatal || !strings.Contains(res.stderr, "no snapshot holds the dumps app and logs together") {
		t.Errorf("restore of two dumps never saved together: exit %d\n%s", res.code, res.stderr)
	}
}

// TestRestoreSeveralDumpsHintLeavesOutGivenNames: the "did you mean" of a
// misspelt --db among several offers the dump meant, from any snapshot,
// and never one of the other names given (it offered t4_a for t4_dd, given
// t4_a; found by a review).
func TestRestoreSeveralDumpsHintLeavesOutGivenNames(t *testing.T) {
	tr := newTestRepo(t)
	for _, name := range []string{"t4_a", "t4_d", "t4_pg3"} {
		f := filepath.Join(tr.dir, name+".db")
		sqliteQuery(t, f, "CREATE TABLE t(v TEXT);")
		tr.mustRun("create", "--db", "sqlite://"+f)
	}
	res := tr.run("restore", "latest", "--db", "t4_a", "--db", "t4_pg33", "--db", "t4_dd", "--replace")
	if res.code != exitFatal || !strings.Contains(res.stderr, `no snapshot holds a dump named "t4_pg33" or "t4_dd"`) ||
		!strings.Contains(res.stderr, "(t4_pg33: did you mean t4_pg3?)") || !strings.Contains(res.stderr, "(t4_dd: did you mean t4_d?)") || strings.Contains(res.stderr, "did you mean t4_a") {
		t.Errorf("restore of three dumps, two misspelt: exit %d\n%s", res.code, res.stderr)
	}
}

// TestRestoreDumpByRecordedURL: --db takes the database's URL as the
// snapshot records it ('snap list --json' sources[].url), as well as its
// names (found by an exploratory test: "no snapshot holds a dump named"),
// and dump takes those names for a dump's path.
func TestRestoreDumpByRecordedURL(t *testing.T) {
	tr := newTestRepo(t)
	dbFile := filepath.Join(tr.dir, "We ird.db")
	sqliteQuery(t, dbFile, "CREATE TABLE t (x); INSERT INTO t VALUES ('a');")
	tr.mustRun("create", "--db", "sqlite://"+dbFile)
	var list []snapshotJSON
	must(t, jsonUnmarshal(tr.mustRun("list", "--json").stdout, &list))
	if len(list) != 1 || len(list[0].Sources) != 1 {
		t.Fatalf("list: %+v", list)
	}
	recorded := list[0].Sources[0].URL
	// dump takes the same names ('snap dump latest app > app.sql').
	if res := tr.mustRun("dump", "latest", "We ird"); !strings.Contains(res.stdout, "VALUES(1,'a');") {
		t.Errorf("dump latest NAME:\n%s%s", res.stdout, res.stderr)
	}
	if res := tr.run("dump", "latest", "nothing"); res.code != exitFatal || !strings.Contains(res.stderr, "does not exist") {
		t.Errorf("dump latest of an unknown name: exit %d\n%s", res.code, res.stderr)
	}
	// With a newer snapshot of files (another host's), 'latest' is the
	// newest that holds the dump, as restore --db takes it, and says so.
	src := filepath.Join(tr.dir, "src")
	writeFile(t, filepath.Join(src, "f"), []byte("x"))
	tr.mustRun("create", "--host", "web1", src)
	if res := tr.mustRun("dump", "latest", "We ird"); !strings.Contains(res.stdout, "VALUES(1,'a');") || !strings.Contains(res.stderr, "the newest that holds the dump We ird") {
		t.Errorf("dump latest NAME beside a newer snapshot of files:\n%s%s", res.stdout, res.stderr)
	}
	if res := tr.run("dump", "latest", "--host", "web1", "We ird"); res.code != exitFatal || !strings.Contains(res.stderr, "no snapshot the filters select holds a dump We ird (snapshots of ") {
		t.Errorf("dump latest NAME under a filter no holder passes: exit %d\n%s", res.code, res.stderr)
	}
	if res := tr.run("restore", "latest", "--db", "We ird", "--host", "web1", "--to", "sqlite://"+filepath.Join(tr.dir, "x.db")); res.code != exitFatal ||
		!strings.Contains(res.stderr, "no snapshot the filters select holds the dump We ird (snapshots of ") {
		t.Errorf("restore --db under a filter no holder passes: exit %d\n%s", res.code, res.stderr)
	}
	// The dump's path, as ls shows it, likewise; one notice only.
	if res := tr.mustRun("dump", "latest", list[0].Sources[0].Path); !strings.Contains(res.stdout, "VALUES(1,'a');") || strings.Count(res.stderr, "latest:") != 1 {
		t.Errorf("dump latest PATH-OF-DUMP beside a newer snapshot of files:\n%s%s", res.stdout, res.stderr)
	}
	for i, name := range []string{recorded, "sqlite://" + dbFile} {
		out := filepath.Join(tr.dir, fmt.Sprintf("out%d.db", i))
		tr.mustRun("restore", "latest", "--db", name, "--to", "sqlite://"+out)
		if got := sqliteQuery(t, out, "SELECT x FROM t;"); got != "a\n" {
			t.Errorf("restore --db %s: %q", name, got)
		}
	}
}

// TestDumpNameOfTwoDumps: a name that two dumps of a snapshot bear (two
// SQLite files app.db, or a PostgreSQL and a MariaDB database of one name)
// is a mistake in the arguments that names both paths, for 'dump latest'
// as for 'dump ID' (it said "path /app does not exist"; found by an
// exploratory test).
func TestDumpNameOfTwoDumps(t *testing.T) {
	tr := newTestRepo(t)
	var urls []string
	for _, d := range []string{"a", "b"} {
		f := filepath.Join(tr.dir, d, "app.db")
		must(t, os.MkdirAll(filepath.Dir(f), 0o755))
		sqliteQuery(t, f, "CREATE TABLE t(v TEXT);")
		urls = append(urls, "--db", "sqlite://"+f)
	}
	id := tr.createID(urls...)
	src := filepath.Join(tr.dir, "src")
	writeFile(t, filepath.Join(src, "f"), []byte("x"))
	tr.mustRun("create", "--host", "web1", src) // latest is then the newest holding the dumps
	for _, args := range [][]string{{"dump", "latest", "app"}, {"dump", "latest", "app.db"}, {"dump", id, "app"}} {
		res := tr.run(args...)
		if res.code != exitUsage || !strings.Contains(res.stderr, "names 2 dumps in snapshot") ||
			!strings.Contains(res.stderr, filepath.Join("/db/sqlite", tr.dir, "a", "app.sql")) || !strings.Contains(res.stderr, filepath.Join("/db/sqlite", tr.dir, "b", "app.sql")) {
			t.Errorf("%v: exit %d\n%s", args, res.code, res.stderr)
		}
	}
}

// TestRestoreDBRecordedTargetNeedsTo: without --to, a dump goes back only
// into a database on this machine that a dump would come from (an SQLite
// file that exists, a local server reached without options that lead
// elsewhere) or that the config names; anything else is refused (exit 2)
// with the command that names it. The address comes from the repository,
// and a crafted snapshot made a root restore create an SQLite file
// anywhere, or sent the database password to a server of its choosing
// (found by a red-team test).
func TestRestoreDBRecordedTargetNeedsTo(t *testing.T) {
	tr := newTestRepo(t)
	f := filepath.Join(tr.dir, "app.db")
	sqliteQuery(t, f, "CREATE TABLE t (x); INSERT INTO t VALUES ('v');")
	tr.mustRun("create", "--db", "sqlite://"+f)
	must(t, os.Remove(f))
	res := tr.run("restore", "latest", "--db", "app")
	if res.code != exitUsage || !strings.Contains(res.stderr, "the file "+f+" does not exist here") || !strings.Contains(res.stderr, "--db app --to sqlite://"+f) {
		t.Errorf("restore into a gone SQLite file without --to: exit %d\n%s", res.code, res.stderr)
	}
	if _, err := os.Stat(f); err == nil {
		t.Errorf("the refused restore created %s", f)
	}
	tr.mustRun("restore", "latest", "--db", "app", "--to", "sqlite://"+f)
	if got := sqliteQuery(t, f, "SELECT x FROM t;"); got != "v\n" {
		t.Errorf("restore --to: %q", got)
	}
	// The file there: back into it, as before.
	tr.mustRun("restore", "latest", "--db", "app", "--replace")

	// Addresses a snapshot may record that no restore takes without --to.
	for _, c := range []struct{ url, path, want string }{
		{"postgres://postgres@10.9.8.7:5432/app", "/db/postgres/app.sql", "its server 10.9.8.7 is not on this machine"},
		{"postgres://postgres@127.0.0.1:5432/app?hostaddr=10.9.8.7", "/db/postgres/app.sql", "it carries the connection option hostaddr"},
		{"postgres://postgres@127.0.0.1/app?sslkeylogfile=%2Froot%2Fx", "/db/postgres/app.sql", "it carries the connection option sslkeylogfile"},
		// A host list behind a socket directory, a database named in the
		// query, another port or loopback address, a socket anywhere
		// (found by a re-test).
		{"postgres://postgres@/app?host=%2Fnonexistent%2C192.0.2.2", "/db/postgres/app.sql", "it carries the connection option host=/nonexistent,192.0.2.2"},
		{"postgres://postgres@127.0.0.1/app?dbname=billing", "/db/postgres/app.sql", "not in ?dbname="},
		{"postgres://postgres@127.0.0.1:15432/app", "/db/postgres/app.sql", "its port 15432 is not the server's own (5432)"},
		{"postgres://postgres@127.0.0.2/app", "/db/postgres/app.sql", "its server 127.0.0.2 is not on this machine"},
		{"mysql://root@localhost/app?socket=%2Ftmp%2Fx.sock", "/db/mysql/app.sql", "it carries the connection option socket=/tmp/x.sock"},
		{"mysql://root@[::1]:3306/app?defaults-extra-file=%2Ftmp%2Fx", "/db/mysql/app.sql", "it carries the connection option defaults-extra-file"},
		{"sqlite:///nowhere/x/app.db", "/db/sqlite/app.sql", "the file /nowhere/x/app.db does not exist here"},
		// Not where snap stores that database's dump: --db app would
		// load into billing.
		{"postgres://postgres@127.0.0.1/billing", "/db/postgres/app.sql", "whose dump snap stores as /db/postgres/billing.sql"},
	} {
		tr.storeAgain(func(sn *snapshot.Snapshot) {
			sn.Sources[0].URL, sn.Sources[0].Path = c.url, c.path
			sn.Sources[0].Kind = strings.Split(c.path, "/")[2]
		}, false)
		res := tr.run("restore", "latest", "--db", "app", "--replace")
		if res.code == 0 || !strings.Contains(res.stderr, c.want) {
			t.Errorf("restore of a dump recorded as %s: exit %d\n%s", c.url, res.code, res.stderr)
		}
		// The command offered carries none of the recorded options.
		if _, offered, ok := strings.Cut(res.stderr, " --to "); ok && strings.Contains(offered, "?") {
			t.Errorf("restore of a dump recorded as %s offers --to %s", c.url, offered)
		}
	}
}

// TestRestoreFilesAndDumpChecksTheDumpFirst: a restore of files with --db
// finds the dump's name, and whether its target holds data, before it
// writes the first file: it found them once every file was restored,
// hours later, and then said "nothing was restored" (found by an
// exploratory test).
func TestRestoreFilesAndDumpChecksTheDumpFirst(t *testing.T) {
	tr := newTestRepo(t)
	src := filepath.Join(tr.dir, "src")
	writeFile(t, filepath.Join(src, "f"), []byte("file"))
	db := filepath.Join(tr.dir, "app.db")
	sqliteQuery(t, db, "CREATE TABLE t(v TEXT); INSERT INTO t VALUES ('x');")
	tr.mustRun("create", src, "--db", "sqlite://"+db)
	id := tr.snapshotIDs()[0]
	target := filepath.Join(tr.dir, "target")
	res := tr.run("restore", id, "--db", "apx", "--target", target)
	if _, err := os.Stat(target); res.code != exitFatal || !strings.Contains(res.stderr, "did you mean app?") || err == nil {
		t.Errorf("files and a misspelt dump: exit %d, target written: %v\n%s", res.code, err == nil, res.stderr)
	}
	res = tr.run("restore", id, "--db", "app", "--target", target)
	if _, err := os.Stat(target); res.code != exitFatal || !strings.Contains(res.stderr, "so nothing was restored") || err == nil {
		t.Errorf("files and a dump whose database holds data: exit %d, target written: %v\n%s", res.code, err == nil, res.stderr)
	}
	other := filepath.Join(tr.dir, "other.db")
	tr.mustRun("restore", id, "--db", "app", "--to", "sqlite://"+other, "--target", target)
	if got := sqliteQuery(t, other, "SELECT v FROM t;"); strings.TrimSpace(got) != "x" {
		t.Errorf("restored database: %q", got)
	}
	if b, err := os.ReadFile(filepath.Join(target, src, "f")); err != nil || string(b) != "file" {
		t.Errorf("restored file: %q, %v", b, err)
	}
}

// TestSQLiteFilesOfOneNameAreTwoSeries: two SQLite files of one name,
// backed up by two creates, are both /db/sqlite/app.sql; forget took them
// for one series and deleted the only snapshots of one of them, and each
// was the other's parent (found by an exploratory test). The database a
// dump was taken from tells them apart.
func TestSQLiteFilesOfOneNameAreTwoSeries(t *testing.T) {
	tr := newTestRepo(t)
	shop, blog := filepath.Join(tr.dir, "shop", "app.db"), filepath.Join(tr.dir, "blog", "app.db")
	for _, f := range []string{shop, blog} {
		must(t, os.MkdirAll(filepath.Dir(f), 0o755))
		sqliteQuery(t, f, "CREATE TABLE t (x TEXT); INSERT INTO t VALUES ('"+f+"');")
	}
	tr.mustRun("create", "--db", "sqlite://"+shop)
	tr.mustRun("create", "--db", "sqlite://"+blog)
	tr.mustRun("create", "--db", "sqlite://"+blog)
	out := tr.mustRun("forget", "--keep-last", "1", "--dry-run").stdout
	if strings.Count(out, "(policy: last 1)") != 2 || !strings.Contains(out, "databases sqlite://"+shop) || strings.Count(out, "  remove") != 1 {
		t.Errorf("forget --keep-last 1 of two databases of one name:\n%s", out)
	}
	tr.mustRun("forget", "--keep-last", "1")
	restored := filepath.Join(tr.dir, "restored.db")
	tr.mustRun("restore", "latest", "--db", "sqlite://"+shop, "--to", "sqlite://"+restored)
	if got := sqliteQuery(t, restored, "SELECT x FROM t;"); strings.TrimSpace(got) != shop {
		t.Errorf("restored shop database holds %q", got)
	}
	// The blog's snapshot has no parent of the shop's: diff says so.
	res := tr.mustRun("diff", "latest")
	if strings.Contains(res.stdout+res.stderr, "M /db/sqlite/app.sql") {
		t.Errorf("diff compared the blog's dump with the shop's:\n%s%s", res.stdout, res.stderr)
	}
}

// TestDumpWithoutPath: snap started without PATH (env -i) finds the dump
// tools where systemd's services do; every one was "not installed"
// (found by an exploratory test).
func TestDumpWithoutPath(t *testing.T) {
	t.Parallel()
	tr := newTestRepo(t)
	db := filepath.Join(tr.dir, "app.db")
	if out, err := exec.Command("sqlite3", db, "CREATE TABLE t(a); INSERT INTO t VALUES (7);").CombinedOutput(); err != nil {
		t.Fatalf("sqlite3: %v\n%s", err, out)
	}
	if res := tr.runEnv([]string{"PATH="}, nil, "create", "--db", "sqlite://"+db); res.code != 0 {
		t.Errorf("create --db sqlite without PATH: exit %d\n%s", res.code, res.stderr)
	}
}

// TestDumpAtByDatabaseName: 'snap dump --at TIME NAME' chooses among the
// snapshots that hold a dump of that name, as 'restore --at --db' does: a
// files-only snapshot taken later was chosen, and the dump "did not
// exist" (found by an exploratory test).
func TestDumpAtByDatabaseName(t *testing.T) {
	t.Parallel()
	tr := newTestRepo(t)
	db := filepath.Join(tr.dir, "app.db")
	if out, err := exec.Command("sqlite3", db, "CREATE TABLE t(a); INSERT INTO t VALUES (7);").CombinedOutput(); err != nil {
		t.Fatalf("sqlite3: %v\n%s", err, out)
	}
	src := filepath.Join(tr.dir, "src")
	writeFile(t, filepath.Join(src, "f"), []byte("f"))
	tr.mustRun("create", "--db", "sqlite://"+db, "--time", "2026-12-01T03:00:00Z")
	tr.mustRun("create", src, "--time", "2026-12-01T04:00:00Z")
	res := tr.run("dump", "--at", "2026-12-01T05:00:00Z", "app")
	if res.code != 0 || !strings.Contains(res.stdout, "INSERT INTO t(rowid,a) VALUES(1,7);") {
		t.Errorf("dump --at TIME NAME with a later files-only snapshot: exit %d\n%s", res.code, res.stderr)
	}
	res = tr.run("dump", "--at", "2026-12-01T02:00:00Z", "app")
	if res.code != 1 || !strings.Contains(res.stderr, "among the snapshots that hold the dump app") {
		t.Errorf("dump --at a time before the dump: exit %d\n%s", res.code, res.stderr)
	}
}
