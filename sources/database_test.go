package sources

import (
	"context"
	"io"
	"net/url"
	"strings"
	"testing"
	"testing/iotest"
)

func TestParseDatabase(t *testing.T) {
	for _, c := range []struct {
		raw, kind, name, str, path, conn string
		all                              bool
	}{
		{raw: "postgres://app@db1:5432/shop", kind: KindPostgres, name: "shop", str: "postgres://app@db1:5432/shop",
			path: "/db/postgres/shop.sql", conn: "postgres://app@db1:5432/shop"},
		{raw: "postgresql://app:pw@db1/shop?sslmode=require", kind: KindPostgres, name: "shop",
			str: "postgresql://app@db1/shop?sslmode=require", path: "/db/postgres/shop.sql", conn: "postgresql://app@db1/shop?sslmode=require"},
		{raw: "postgres://app@db1/shop?password=pw&sslmode=disable", kind: KindPostgres, name: "shop",
			str: "postgres://app@db1/shop?sslmode=disable", path: "/db/postgres/shop.sql", conn: "postgres://app@db1/shop?sslmode=disable"},
		{raw: "postgres://app@db1/shop?options=-c%20lock_timeout%3D2000&application_name=a+b%2Bc", kind: KindPostgres, name: "shop",
			str: "postgres://app@db1/shop?application_name=a%20b%2Bc&options=-c%20lock_timeout%3D2000", path: "/db/postgres/shop.sql",
			conn: "postgres://app@db1/shop?application_name=a%20b%2Bc&options=-c%20lock_timeout%3D2000"},
		{raw: "postgres://postgres@127.0.0.1:5432/?all", kind: KindPostgres, all: true, str: "postgres://postgres@127.0.0.1:5432/?all",
			path: "/db/postgres/all.sql", conn: "postgres://postgres@127.0.0.1:5432/"},
		{raw: "mysql://root:x@127.0.0.1:3306/test", kind: KindMySQL, name: "test", str: "mysql://root@127.0.0.1:3306/test", path: "/db/mysql/test.sql"},
		{raw: "mysql://root@127.0.0.1:3306/test?password=s3cret", kind: KindMySQL, name: "test", str: "mysql://root@127.0.0.1:3306/test", path: "/db/mysql/test.sql"},
		{raw: "mariadb://root@localhost/test?socket=/run/mysqld/mysqld.sock", kind: KindMySQL, name: "test",
			str: "mariadb://root@localhost/test?socket=%2Frun%2Fmysqld%2Fmysqld.sock", path: "/db/mysql/test.sql"},
		{raw: "sqlite:///var/lib/app/app.db", kind: KindSQLite, name: "app", str: "sqlite:///var/lib/app/app.db", path: "/db/sqlite/app.sql"},
		{raw: "mongodb://u:p@h1:27017,h2:27017/shop?replicaSet=rs0", kind: KindMongoDB, name: "shop",
			str: "mongodb://u@h1:27017,h2:27017/shop?replicaSet=rs0", path: "/db/mongodb/shop.archive"},
	} {
		d, err := ParseDatabase(c.raw)
		if err != nil {
			t.Errorf("%s: %v", c.raw, err)
			continue
		}
		if d.Kind != c.kind || d.Name != c.name || d.All != c.all || d.String() != c.str || d.DumpPath(false) != c.path {
			t.Errorf("%s: kind %s name %q all %v string %s path %s", c.raw, d.Kind, d.Name, d.All, d, d.DumpPath(false))
		}
		if c.conn != "" && d.connURL("") != c.conn {
			t.Errorf("%s: tool URL %s, want %s", c.raw, d.connURL(""), c.conn)
		}
	}
	for _, raw := range []string{"oracle://h/db", "postgres:db", "mysql://h/db?foo=bar", "postgres://u:pa/ss@h/db", "sqlite://",
		"postgres://h/app#2", "mysql://root@h/app#2", "mariadb://u:pa#ss@h/db", "postgres://h/app#", "sqlite://u:pass@/srv/app.db",
		// libpq refused these only when the job ran (found by an
		// exploratory test).
		"postgres://u:pw@h/db?colour=red", "postgres://h/db?sslmode=bogus"} {
		_, err := ParseDatabase(raw)
		if err == nil {
			t.Errorf("%s: accepted", raw)
		} else if strings.Contains(err.Error(), "pa/ss") || strings.Contains(err.Error(), ":pa") {
			t.Errorf("%s: the error shows the password: %v", raw, err)
		}
	}
}

func TestPasswordOnlyInEnvironment(t *testing.T) {
	d, err := ParseDatabase("mysql://backup:s3cret@db:3306/shop")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(strings.Join(d.mysqlConnArgs(), " "), "s3cret") || strings.Contains(d.String(), "s3cret") {
		t.Fatal("password in arguments or string")
	}
	if env := d.env("MYSQL_PWD"); len(env) != 1 || env[0] != "MYSQL_PWD=s3cret" {
		t.Fatalf("environment %v", env)
	}
	p, _ := ParseDatabase("postgres://u:p%40ss@h/db")
	if env := p.env("PGPASSWORD"); len(env) != 1 || env[0] != "PGPASSWORD=p@ss" {
		t.Fatalf("environment %v", env)
	}
}

func TestAssignDumpPaths(t *testing.T) {
	var dbs []*Database
	for _, raw := range []string{"postgres://u@a:5432/app", "postgres://u@b:5432/app", "mysql://u@a/app", "sqlite:///srv/x/app.db", "sqlite:///srv/y/app.db"} {
		d, err := ParseDatabase(raw)
		if err != nil {
			t.Fatal(err)
		}
		dbs = append(dbs, d)
	}
	paths, err := AssignDumpPaths(dbs)
	if err != nil {
		t.Fatal(err)
	}
	want := "/db/postgres/a-5432/app.sql /db/postgres/b-5432/app.sql /db/mysql/app.sql /db/sqlite/srv/x/app.sql /db/sqlite/srv/y/app.sql"
	if got := strings.Join(paths, " "); got != want {
		t.Fatalf("paths %s\nwant  %s", got, want)
	}
	if _, err := AssignDumpPaths([]*Database{dbs[0], dbs[0]}); err == nil {
		t.Fatal("the same database twice was accepted")
	}
	// One database named two ways is refused; two databases are not.
	for _, pair := range [][2]string{
		{"postgres://u@127.0.0.1:5432/app", "postgres://v@127.0.0.1/app"},
		{"postgres://u@localhost/app", "postgres://u@127.0.0.1:5432/app"},
		{"mysql://root@db1/app", "mysql://root@DB1:3306/app"},
	} {
		if _, err := AssignDumpPaths(parseAll(t, pair[:]...)); err == nil || !strings.Contains(err.Error(), "given twice") {
			t.Errorf("%s and %s: %v, want 'given twice'", pair[0], pair[1], err)
		}
	}
	for _, pair := range [][2]string{
		{"postgres://u@127.0.0.1:5432/app", "postgres://u@127.0.0.1:5433/app"},
		{"mysql://root@localhost/app", "mysql://root@127.0.0.1/app"},
		{"postgres://u@h/app", "postgres://u@h/?all"},
	} {
		if _, err := AssignDumpPaths(parseAll(t, pair[:]...)); err != nil {
			t.Errorf("%s and %s: %v", pair[0], pair[1], err)
		}
	}
}

func parseAll(t *testing.T, raws ...string) []*Database {
	t.Helper()
	var dbs []*Database
	for _, raw := range raws {
		d, err := ParseDatabase(raw)
		if err != nil {
			t.Fatal(err)
		}
		dbs = append(dbs, d)
	}
	return dbs
}

func TestMySQLConnArgs(t *testing.T) {
	for raw, want := range map[string]string{
		"mysql://root@127.0.0.1:3306/db":                                 "--protocol=TCP --host=127.0.0.1 --port=3306 --user=root",
		"mysql://root@localhost/db":                                      "--user=root",
		"mysql:///db?socket=/s.sock":                                     "--socket=/s.sock",
		"mysql://u@h/db?defaults-extra-file=/etc/snap/my.cnf&ssl-ca=/ca": "--defaults-extra-file=/etc/snap/my.cnf --protocol=TCP --host=h --user=u --ssl-ca=/ca",
	} {
		d, err := ParseDatabase(raw)
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(d.mysqlConnArgs(), " "); got != want {
			t.Errorf("%s: %s\nwant %s", raw, got, want)
		}
	}
}

// TestCompleteReaderTail: the end marker is found at the end of a dump
// read in reads of any size (one large read, the marker split between
// two), and a marker before the last 4 KiB does not count.
// TestEndsWithMarkerMariaDB: mariadb-dump's marker is followed by the date
// on its line (or nothing, with --skip-dump-date).
func TestEndsWithMarkerMariaDB(t *testing.T) {
	const marker = "-- Dump completed"
	for dump, want := range map[string]bool{
		"x\nINSERT INTO t VALUES (1);\n" + marker + " on 2026-12-05 15:00:00\n": true,
		"x\nINSERT INTO t VALUES (1);\n" + marker + "\n":                        true,
		"x\nINSERT INTO t VALUES ('" + marker + "');\n":                         false,
		"x\n" + marker + " on 2026-12-05\nINSERT INTO t VALUES (1);\n":          false,
	} {
		if got := endsWithMarker([]byte(dump), marker); got != want {
			t.Errorf("%q: %v, want %v", dump, got, want)
		}
	}
}

func TestCompleteReaderTail(t *testing.T) {
	const marker = "-- PostgreSQL database dump complete"
	body := strings.Repeat("INSERT INTO t VALUES (1);\n", 40000)
	for _, c := range []struct {
		name, dump string
		chunk      int
		ok         bool
	}{
		{"one read", body + "--\n" + marker + "\n--\n\n", 1 << 22, true},
		{"split reads", body + "--\n" + marker + "\n--\n\n", 7, true},
		{"4 KiB reads", body + "--\n" + marker + "\n--\n\n\\unrestrict abc\n\n", 4096, true},
		{"marker too early", "--\n" + marker + "\n--\n" + body, 1 << 16, false},
		{"empty", "", 4096, false},
		// A row holding the marker's text, the dump cut off after it.
		{"row holding the marker", body + "COPY t (s) FROM stdin;\n" + marker + "\n", 4096, false},
		{"row starting with the marker", body + "COPY t (s, n) FROM stdin;\n" + marker + "\t1\n", 4096, false},
		{"marker then a statement", body + "--\n" + marker + "\n--\nINSERT INTO t VALUES (1);\n", 4096, false},
		{"marker alone", "--\n" + marker + "\n--\n", 4096, true},
		{"rows of a dash and the marker", body + "COPY t (s) FROM stdin;\n--\n" + marker + "\n", 4096, false},
	} {
		r := &completeReader{ReadCloser: io.NopCloser(iotest.HalfReader(&chunkReader{s: c.dump, n: c.chunk})), tool: "pg_dump", marker: marker}
		if _, err := io.Copy(io.Discard, r); err != nil {
			t.Fatal(err)
		}
		if err := r.Close(); (err == nil) != c.ok {
			t.Errorf("%s: close %v, want ok=%v", c.name, err, c.ok)
		}
	}
}

// chunkReader returns s in reads of at most n bytes.
type chunkReader struct {
	s string
	n int
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if c.s == "" {
		return 0, io.EOF
	}
	k := copy(p[:min(len(p), c.n)], c.s)
	c.s = c.s[k:]
	return k, nil
}

// TestRenameAlterDatabase: the ALTER DATABASE lines that mariadb-dump
// writes around routines name the database the dump was taken from; a
// restore under another name rewrites them, and only them, whatever the
// line lengths and however the dump is read.
func TestRenameAlterDatabase(t *testing.T) {
	long := strings.Repeat("x", 200<<10)
	in := "-- ALTER DATABASE `app` CHARACTER SET latin1 ;\n" +
		"ALTER DATABASE `app` CHARACTER SET latin1 COLLATE latin1_swedish_ci ;\n" +
		"INSERT INTO t VALUES ('" + long + "ALTER DATABASE `app` ');\n" +
		"ALTER DATABASE `app` CHARACTER SET utf8mb4 ;\n" +
		"ALTER DATABASE `app2` CHARACTER SET utf8mb4 ;\n" +
		"DELIMITER ;;\nCREATE PROCEDURE p() BEGIN\nALTER DATABASE `app` CHARACTER SET utf8mb4 ;\nEND ;;\nDELIMITER ;\n" +
		"DELIMITER ;;\nALTER DATABASE `app` CHARACTER SET latin1 COLLATE latin1_swedish_ci ;;\nCREATE EVENT ev DO SELECT 1 ;;\n" +
		"ALTER DATABASE `app` CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci ;;\r\nDELIMITER ;\n" +
		"ALTER DATABASE `app` CHARACTER SET utf8mb4 ;\n" +
		"CREATE TABLE `t` (\n  `id` int(11) NOT NULL DEFAULT nextval(`app`.`s`),\n  `x` int(11) DEFAULT lastval(`app`.`s2`) COMMENT 'nextval(`app`.`s`)',\n  `y` int(11) DEFAULT nextval(`app2`.`s`)\n);\n" +
		"INSERT INTO t VALUES ('  `a` nextval(`app`.`s`)');\n" +
		"DELIMITER ;;\n  `x` nextval(`app`.`s`)\nDELIMITER ;\n"
	want := "-- ALTER DATABASE `app` CHARACTER SET latin1 ;\n" +
		"ALTER DATABASE `copy``s` CHARACTER SET latin1 COLLATE latin1_swedish_ci ;\n" +
		"INSERT INTO t VALUES ('" + long + "ALTER DATABASE `app` ');\n" +
		"ALTER DATABASE `copy``s` CHARACTER SET utf8mb4 ;\n" +
		"ALTER DATABASE `app2` CHARACTER SET utf8mb4 ;\n" +
		// A routine's body is the user's code, and stays as it is.
		"DELIMITER ;;\nCREATE PROCEDURE p() BEGIN\nALTER DATABASE `app` CHARACTER SET utf8mb4 ;\nEND ;;\nDELIMITER ;\n" +
		// The tool's collation switch around an event is its own line,
		// in a DELIMITER block too.
		"DELIMITER ;;\nALTER DATABASE `copy``s` CHARACTER SET latin1 COLLATE latin1_swedish_ci ;;\nCREATE EVENT ev DO SELECT 1 ;;\n" +
		"ALTER DATABASE `copy``s` CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci ;;\r\nDELIMITER ;\n" +
		"ALTER DATABASE `copy``s` CHARACTER SET utf8mb4 ;\n" +
		// A column's default names the sequence with the database (the
		// server writes it so); a row, a body, another database's stay.
		"CREATE TABLE `t` (\n  `id` int(11) NOT NULL DEFAULT nextval(`copy``s`.`s`),\n  `x` int(11) DEFAULT lastval(`copy``s`.`s2`) COMMENT 'nextval(`copy``s`.`s`)',\n  `y` int(11) DEFAULT nextval(`app2`.`s`)\n);\n" +
		"INSERT INTO t VALUES ('  `a` nextval(`app`.`s`)');\n" +
		"DELIMITER ;;\n  `x` nextval(`app`.`s`)\nDELIMITER ;\n"
	for name, read := range map[string]func(io.Reader) ([]byte, error){
		"whole":       io.ReadAll,
		"byte a time": func(r io.Reader) ([]byte, error) { return io.ReadAll(iotest.OneByteReader(r)) },
	} {
		got, err := read(renameAlterDatabase(iotest.HalfReader(strings.NewReader(in)), "app", "copy`s"))
		if err != nil || string(got) != want {
			t.Errorf("%s: %v\n%q\nwant\n%q", name, err, got[min(len(got), 200<<10):], want[200<<10:])
		}
	}
}

// TestSQLiteFileNameWithURLCharacters: an SQLite file whose name holds #,
// ? or % is recorded percent-encoded and parses back to the same file
// (recorded as it was, "sqlite:///srv/app#old.db" named /srv/app, and a
// restore with --replace wrote over that file); a URL whose # or ? would
// cut the name is refused; a URL recorded by an older snap, unencoded, is
// read literally (found by an exploratory test).
func TestSQLiteFileNameWithURLCharacters(t *testing.T) {
	for _, file := range []string{"/srv/app#old.db", "/srv/q?m.db", "/srv/pc%.db", "/srv/a b.db", "/srv/plain.db"} {
		d, err := ParseDatabase((&url.URL{Scheme: "sqlite", Path: file}).String())
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if d.File != file {
			t.Errorf("%s: parsed as %s", file, d.File)
		}
		back, err := ParseRecordedDatabase(d.String())
		if err != nil || back.File != file {
			t.Errorf("%s: recorded as %s, read back as %v (%v)", file, d, back, err)
		}
		old, err := ParseRecordedDatabase("sqlite://" + file) // as a snap before 2026-12-05 recorded it
		if err != nil || old.File != file {
			t.Errorf("%s: recorded unencoded, read back as %v (%v)", file, old, err)
		}
	}
	for _, raw := range []string{"sqlite:///srv/app#old.db", "sqlite:///srv/q?m.db", "sqlite:///srv/pc%.db", "sqlite:///srv/app.db#", "sqlite:///srv/app.db?"} {
		if d, err := ParseDatabase(raw); err == nil {
			t.Errorf("%s: accepted as %s", raw, d.File)
		} else if !strings.Contains(err.Error(), "%23") {
			t.Errorf("%s: %v; want the encoding named", raw, err)
		}
	}
}

// TestDumpUnreachableSaysWhat: a server that cannot be reached fails the
// dump with the error of the query snap runs before it, which names
// another program than the dump tool (the mariadb client): the error says
// what snap was reading then (found by an exploratory test). Port 1
// refuses connections.
func TestDumpUnreachableSaysWhat(t *testing.T) {
	for raw, want := range map[string]string{
		"mysql://root@127.0.0.1:1/shop":      "cannot connect to the MariaDB/MySQL server at 127.0.0.1:1: check that it runs, and that the URL's host and port are its own (reading the database's default character set and collation, before the dump: ",
		"postgres://postgres@127.0.0.1:1/db": "reading the database's owner, privileges and settings with pg_dump --create (before the dump): ",
	} {
		db, err := ParseDatabase(raw)
		if err != nil {
			t.Fatal(err)
		}
		d, err := db.Dump(context.Background())
		if err != nil {
			t.Logf("%s: %v", raw, err) // the dump tool is not installed
			continue
		}
		rc, err := d.Open(nil, nil)(context.Background())
		if err == nil {
			rc.Close()
		}
		if err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("%s: %v; want it to begin %q", raw, err, want)
		} else {
			t.Log(err)
		}
	}
}

// TestPostgresDBNameParamRefused: ?dbname= would override the name in the
// URL's path: the dump of one database stored under the other's name, and
// a restore loading into the other (found by a re-test).
func TestPostgresDBNameParamRefused(t *testing.T) {
	if _, err := ParseDatabase("postgres://u@db/app?dbname=billing"); err == nil || !strings.Contains(err.Error(), "not in ?dbname=") {
		t.Errorf("a URL with ?dbname=: %v", err)
	}
}

// TestParseDatabaseSlashes: a name that starts or ends with "/" is refused:
// "//name" dumped the database "/name" into the file of "name", and a
// restore replaced "name" (found by an exploratory test).
func TestParseDatabaseSlashes(t *testing.T) {
	for _, raw := range []string{"postgres://postgres@127.0.0.1//t2_slash", "mysql://root@127.0.0.1:3306//%2Fetc", "mysql://root@127.0.0.1:3306/%2Fetc", "postgres://h/a%2Fb", "postgres://h/app%2F", "postgres://h/app%2f"} {
		if d, err := ParseDatabase(raw); err == nil {
			t.Errorf("%s: parsed as %q", raw, d.Name)
		}
	}
	if d, err := ParseDatabase("postgres://127.0.0.1/app"); err != nil || d.Name != "app" {
		t.Errorf("a plain name: %v, %+v", err, d)
	}
	// A trailing "/" is the name's, for every tool (pg_dump was given
	// "app/"; a review found configs written so).
	if d, err := ParseDatabase("postgres://127.0.0.1/app/"); err != nil || d.Name != "app" || d.u.Path != "/app" {
		t.Errorf("a name with a trailing /: %v, %+v", err, d)
	}
}

// TestAssignDumpPathsCollision: two databases a snapshot cannot hold side
// by side (a database named "all" and the whole server) are named as two,
// not as one "given twice"; one SQLite file given twice is.
func TestAssignDumpPathsCollision(t *testing.T) {
	parse := func(raw string) *Database {
		d, err := ParseDatabase(raw)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	_, err := AssignDumpPaths([]*Database{parse("postgres://postgres@127.0.0.1:5432/all"), parse("postgres://postgres@127.0.0.1:5432/?all")})
	if err == nil || !strings.Contains(err.Error(), "would both be stored as /db/postgres/127.0.0.1-5432/all.sql") {
		t.Errorf("a database named all and the whole server: %v", err)
	}
	_, err = AssignDumpPaths([]*Database{parse("sqlite:///srv/app.db"), parse("sqlite:///srv/./app.db")})
	if err == nil || !strings.Contains(err.Error(), "is given twice") {
		t.Errorf("one SQLite file twice: %v", err)
	}
}
