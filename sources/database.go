package sources

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Database is a database named by a URL (snap create --db, snap restore
// --to):
//
//	postgres://user@host:port/dbname   one PostgreSQL database (pg_dump, psql)
//	postgres://user@host:port/?all     every database and the roles (pg_dumpall)
//	mysql://user@host:port/dbname      MariaDB or MySQL (mariadb-dump or mysqldump)
//	mysql://user@host:port/?all        every database (--all-databases)
//	sqlite:///path/app.db              a SQLite file (sqlite3); sqlite://app.db is relative
//	mongodb://user@host:port/dbname    MongoDB (mongodump --archive), ?all or no name: every database
//
// A password in the URL is taken out of it: it reaches the tool only
// through the tool's environment (PGPASSWORD, MYSQL_PWD) or a private
// option file, never its arguments, and String never shows it.
type Database struct {
	Kind string // KindPostgres, KindMySQL, KindSQLite or KindMongoDB
	Name string // the database; "" when the URL names none
	All  bool   // the whole server
	File string // SQLite: the absolute path of the database file
	// RelativeFile: the URL gave the SQLite file relative to the current
	// directory (sqlite:app.db, sqlite://app.db), which File resolved.
	RelativeFile bool
	// FileLater: the SQLite file is looked at when the dump starts, not
	// when the dump is prepared (Dump): a job's pre hook may make it (a
	// copy of the live database, taken with sqlite3's .backup).
	FileLater bool
	given     string // SQLite with RelativeFile: the URL as given, for messages
	relPath   string // SQLite with RelativeFile: the path as given

	u        url.URL // the URL without its password and without ?all
	password string
	lockWait time.Duration // MariaDB/MySQL: how long --replace waits to drop the database (0: mysqlDropWait)
}

// ParseDatabase parses a database URL. A server URL without a database name
// is accepted here (a restore target may leave the name to the dump); Dump
// requires one, or ?all.
func ParseDatabase(raw string) (*Database, error) {
	u, err := url.Parse(raw)
	if err != nil {
		if isSQLiteURL(raw) {
			return nil, fmt.Errorf("database URL %q cannot be parsed: percent-encode %% as %%25, # as %%23 and ? as %%3F in the file name", raw)
		}
		// The parse error would quote the URL, password and all.
		return nil, errors.New("database URL cannot be parsed: percent-encode special characters in the user name and password (/ as %2F, @ as %40, # as %23)")
	}
	d := &Database{}
	switch strings.ToLower(u.Scheme) {
	case "postgres", "postgresql":
		d.Kind = KindPostgres
	case "mysql", "mariadb":
		d.Kind = KindMySQL
	case "sqlite", "sqlite3":
		d.Kind = KindSQLite
	case "mongodb", "mongodb+srv":
		d.Kind = KindMongoDB
	default:
		return nil, fmt.Errorf("database URL %q: unknown kind %q; use postgres://, mysql://, sqlite:// or mongodb://", redactRaw(raw), u.Scheme)
	}
	if d.Kind == KindSQLite {
		// A ? or a # (even with nothing after it) would cut the file's
		// name: sqlite:///srv/app#old.db names /srv/app.
		if u.RawQuery != "" || u.ForceQuery || strings.Contains(raw, "#") {
			return nil, fmt.Errorf("database URL %q: an SQLite URL takes no ?parameters or #fragment (a snap before 2026-12-05 ignored them, and with them the rest of a file name holding ? or #): remove them, or, when ? or # is part of the file's name, write it as %%3F or %%23", raw)
		}
		return parseSQLite(d, u)
	}
	if u.Opaque != "" {
		return nil, fmt.Errorf("database URL %q: write it as %s://user@host:port/dbname", redactRaw(raw), u.Scheme)
	}
	if strings.Contains(raw, "#") {
		// A # starts the URL's fragment, which the tools ignore:
		// postgres://host/app#2 dumped the database app (found by an
		// exploratory test).
		return nil, fmt.Errorf("database URL %q: a # would end the URL there (%s://host/app#2 names the database app): write # in a database name, user name or password as %%23", redactRaw(raw), strings.ToLower(u.Scheme))
	}
	if err := checkPorts(u.Host); err != nil {
		return nil, fmt.Errorf("database URL %q: %v", redactRaw(raw), err)
	}
	if u.User != nil {
		if pw, ok := u.User.Password(); ok {
			d.password = pw
		}
		u.User = url.User(u.User.Username())
	}
	q := u.Query()
	if _, ok := q["all"]; ok {
		d.All = true
		q.Del("all")
	}
	if d.Kind == KindPostgres || d.Kind == KindMySQL {
		// libpq also takes the password as a query parameter, and so does
		// snap of a mysql URL: refused as unknown, it was repeated in the
		// error (found by an exploratory test).
		if pw := q.Get("password"); pw != "" {
			d.password = pw
		}
		q.Del("password")
	}
	// Encode writes a blank as "+", which libpq does not decode
	// (?options=-c%20lock_timeout%3D2000 reached pg_dump as
	// "-c+lock_timeout=2000"); a "+" of the value itself is %2B, so every
	// "+" left is a blank.
	u.RawQuery = strings.ReplaceAll(q.Encode(), "+", "%20")
	// Only the one "/" before the name goes: the tools take the rest as
	// the name, so "//name" dumped the database "/name" into the file of
	// "name", whose properties it recorded and which a restore replaced
	// (found by an exploratory test).
	name := strings.TrimPrefix(u.Path, "/")
	if strings.Contains(strings.ToUpper(u.EscapedPath()), "%2F") {
		// The tools read the name from the URL's text, snap from its
		// decoded path: "app%2F" was dumped as "app" and restored into
		// "app/" (found by a re-test).
		return nil, fmt.Errorf("database URL %q: %q is not a database name snap can back up on its own (a database name with \"/\" would be a directory in the snapshot): back up the whole server with ?all, which holds it, or rename the database", redactRaw(raw), name)
	}
	if strings.HasPrefix(name, "/") {
		return nil, fmt.Errorf("database URL %q: the database name %q starts with \"/\": write one \"/\" between the host and the name", redactRaw(raw), name)
	}
	if n, ok := strings.CutSuffix(name, "/"); ok && !strings.Contains(n, "/") {
		// A trailing "/" (…/app/) named app for snap and MariaDB, and
		// "app/" for pg_dump: the URL the tools get says app too.
		name = n
		u.Path, u.RawPath = "/"+n, ""
	}
	if strings.Contains(name, "/") {
		// A name with "/" (%2F) would be a path in the snapshot, where
		// each dump is a file named after its database.
		return nil, fmt.Errorf("database URL %q: %q is not a database name snap can back up on its own (a database name with \"/\" would be a directory in the snapshot): back up the whole server with ?all, which holds it, or rename the database", redactRaw(raw), name)
	}
	if d.All && name != "" && d.Kind == KindMongoDB {
		return nil, fmt.Errorf("database URL %q: give a database name or ?all, not both", redactRaw(raw))
	}
	if d.Kind == KindPostgres && len(name) > pgMaxName {
		// The server cuts a longer name: a restore --to it said it had
		// created the long name, and --replace failed with a wrong cause
		// (found by a re-test).
		return nil, fmt.Errorf("database URL %q: a PostgreSQL database name is at most %d bytes, and %q has %d: give a shorter one", redactRaw(raw), pgMaxName, name, len(name))
	}
	if !d.All {
		d.Name = name
	}
	d.u = *u
	switch d.Kind {
	case KindMySQL:
		if err := checkMySQLParams(q); err != nil {
			return nil, fmt.Errorf("database URL %q: %v", d, err)
		}
	case KindPostgres:
		if err := checkPostgresParams(q); err != nil {
			return nil, fmt.Errorf("database URL %q: %v", d, err)
		}
	}
	return d, nil
}

// postgresParams are libpq's connection parameter key words (PostgreSQL 15
// to 18), which a postgres:// URL passes on to pg_dump and psql.
var postgresParams = []string{"host", "hostaddr", "port", "dbname", "user", "password", "passfile", "require_auth", "channel_binding",
	"connect_timeout", "client_encoding", "options", "application_name", "fallback_application_name", "keepalives", "keepalives_idle",
	"keepalives_interval", "keepalives_count", "tcp_user_timeout", "replication", "gssencmode", "sslmode", "requiressl", "sslnegotiation",
	"sslcompression", "sslcert", "sslkey", "sslkeylogfile", "sslpassword", "sslcertmode", "sslrootcert", "sslcrl", "sslcrldir", "sslsni",
	"requirepeer", "ssl_min_protocol_version", "ssl_max_protocol_version", "min_protocol_version", "max_protocol_version", "krbsrvname",
	"gsslib", "gssdelegation", "service", "target_session_attrs", "load_balance_hosts", "oauth_issuer", "oauth_client_id",
	"oauth_client_secret", "oauth_scope"}

// checkPostgresParams refuses a query parameter libpq does not know, and a
// wrong sslmode, when the URL is read: pg_dump refused them only when the
// job ran that night, where config check had said nothing (found by an
// exploratory test).
func checkPostgresParams(q url.Values) error {
	for k, vs := range q {
		if k == "dbname" {
			// libpq lets it override the path's name: the dump of one
			// database was stored under the other's (found by a re-test).
			return errors.New("the database goes in the URL's path (postgres://host/NAME), not in ?dbname=")
		}
		if !slices.Contains(postgresParams, k) {
			return fmt.Errorf("unknown parameter %q: libpq takes none of that name (see \"Parameter Key Words\" in the PostgreSQL manual: sslmode, connect_timeout, options, application_name, …)", k)
		}
		modes := []string{"disable", "allow", "prefer", "require", "verify-ca", "verify-full"}
		if k == "sslmode" && len(vs) > 0 && !slices.Contains(modes, vs[0]) {
			return fmt.Errorf("sslmode=%s: give one of %s", vs[0], strings.Join(modes, ", "))
		}
	}
	return nil
}

// pgMaxName is the longest name PostgreSQL keeps (NAMEDATALEN - 1 bytes);
// it cuts longer ones.
const pgMaxName = 63

// checkPorts refuses a port outside 1..65535 in a URL's host part, which
// may list several hosts (postgres://a:5432,b:5433/db; MongoDB too): the
// tools would take 99999 as some other port, or fail far from the cause.
func checkPorts(hosts string) error {
	for _, h := range strings.Split(hosts, ",") {
		_, port, err := net.SplitHostPort(h)
		if err != nil || port == "" {
			continue // no port: the tool's default
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("port %s is not a port number (1 to 65535)", port)
		}
	}
	return nil
}

// isSQLiteURL reports whether raw has an SQLite scheme.
func isSQLiteURL(raw string) bool {
	scheme, _, ok := strings.Cut(raw, ":")
	return ok && (strings.EqualFold(scheme, "sqlite") || strings.EqualFold(scheme, "sqlite3"))
}

// ParseRecordedDatabase parses the URL a snapshot recorded for a dump's
// source. A snap before 2026-12-05 recorded an SQLite file's path as it
// is, not percent-encoded: such a URL with # or ? in it, or one that does
// not parse, names the file after "sqlite://" literally (parsed, "#old"
// in "/srv/app#old.db" was a fragment, and a restore wrote into
// /srv/app).
func ParseRecordedDatabase(raw string) (*Database, error) {
	const prefix = "sqlite://"
	if rest, ok := strings.CutPrefix(raw, prefix); ok && strings.HasPrefix(rest, "/") {
		if _, err := url.Parse(raw); err != nil || strings.ContainsAny(rest, "#?") {
			return parseSQLite(&Database{Kind: KindSQLite}, &url.URL{Scheme: "sqlite", Path: rest})
		}
	}
	return ParseDatabase(raw)
}

func parseSQLite(d *Database, u *url.URL) (*Database, error) {
	if u.User != nil {
		// A file has no user: it was dropped without a word (found by
		// an exploratory test), or sqlite://user@app.db meant a file.
		return nil, fmt.Errorf("database URL %q: an SQLite URL takes no user or password (the file's permissions decide who reads it); write sqlite:///path/to/file.db", redactRaw(u.String()))
	}
	var p string
	switch {
	case u.Opaque != "":
		p = u.Opaque // sqlite:relative/app.db
	case u.Host != "" && u.Host != "localhost":
		// sqlite://app.db: a relative name read as a host.
		p = u.Host + u.Path
	default:
		p = u.Path
	}
	if p == "" {
		return nil, fmt.Errorf("database URL %q: give the file, e.g. sqlite:///var/lib/app/app.db", u.String())
	}
	abs, err := filepath.Abs(p)
	if err != nil {
		return nil, err
	}
	d.File, d.RelativeFile = abs, !filepath.IsAbs(p)
	if d.RelativeFile {
		d.given, d.relPath = u.String(), p
	}
	d.Name = strings.TrimSuffix(filepath.Base(abs), filepath.Ext(abs))
	d.u = url.URL{Scheme: "sqlite", Path: abs}
	return d, nil
}

// String is the URL without secrets, as messages and snapshots show it.
func (d *Database) String() string {
	if d.Kind == KindSQLite {
		// Percent-encoded where a URL needs it (%, #, ?, blanks), so that
		// the recorded URL parses back to the same file.
		return (&url.URL{Scheme: "sqlite", Path: d.File}).String()
	}
	u := d.u
	s := u.String()
	if d.All {
		if u.RawQuery == "" {
			s += "?all"
		} else {
			s = strings.Replace(s, "?", "?all&", 1)
		}
	}
	return s
}

// connURL is the URL the tools are given: no password, no ?all, and the
// database name replaced by name when name is not "".
func (d *Database) connURL(name string) string {
	u := d.u
	if name != "" {
		u.Path = "/" + name
		u.RawPath = ""
	}
	return u.String()
}

// WithName returns the same server with another database name.
func (d *Database) WithName(name string) *Database {
	c := *d
	c.Name = name
	c.All = false
	c.u.Path = "/" + name
	c.u.RawPath = ""
	return &c
}

// Server returns the URL's host and port as a name for messages and for
// telling dumps of two servers apart ("127.0.0.1-5432", "local").
func (d *Database) Server() string {
	if d.Kind == KindSQLite {
		return strings.TrimPrefix(filepath.Dir(d.File), "/")
	}
	h := strings.NewReplacer(":", "-", "/", "-", ",", "_").Replace(d.u.Host)
	if h == "" {
		return "local"
	}
	return h
}

// identity names the database of a server URL as the server sees it: its
// kind, its host with the default port (and the loopback addresses as one,
// but for MariaDB/MySQL, whose localhost is its socket), its options (a
// socket's path), and its name (or all).
func (d *Database) identity() string {
	host, port := strings.ToLower(d.u.Hostname()), d.u.Port()
	switch host {
	case "localhost", "127.0.0.1", "::1":
		if d.Kind != KindMySQL {
			host = "loopback"
		}
	}
	if port == "" {
		// The clients' defaults, which their environment may change.
		switch d.Kind {
		case KindPostgres:
			port = cmp.Or(os.Getenv("PGPORT"), "5432")
		case KindMySQL:
			port = cmp.Or(os.Getenv("MYSQL_TCP_PORT"), "3306")
		}
	}
	name := d.Name
	if d.All {
		name = "?all"
	}
	// The scheme too: mongodb+srv:// looks its servers up, mongodb:// not.
	srv := strings.HasSuffix(d.u.Scheme, "+srv")
	return strings.Join([]string{d.Kind, strconv.FormatBool(srv), host, port, d.u.RawQuery, name}, "\x00")
}

// DumpPath is where the dump goes in the snapshot tree, for example
// /db/postgres/app.sql. Qualified paths include the server (or, for SQLite,
// the directory), for when two sources would have the same name.
func (d *Database) DumpPath(qualified bool) string {
	name := d.Name
	if d.All || name == "" {
		name = "all"
	}
	ext := ".sql"
	if d.Kind == KindMongoDB {
		ext = ".archive"
	}
	if qualified {
		return path.Join("/db", d.Kind, d.Server(), name+ext)
	}
	return path.Join("/db", d.Kind, name+ext)
}

// DatabaseProperties is what makes a database more than its contents,
// which a dump of one database leaves out: recorded beside the dump, so
// that a restore that creates the database again gives them back. For
// PostgreSQL (pg_dump without --create) they are as pg_dump --create
// writes them (a new database had the server's defaults: PUBLIC could
// connect again); for MariaDB/MySQL (no --databases, so no CREATE
// DATABASE) the default character set and collation (a new database was
// utf8mb4 whatever it had been).
type DatabaseProperties struct {
	// CreateWith is, for PostgreSQL, what follows WITH in its CREATE
	// DATABASE: template, encoding, locale; for MariaDB/MySQL
	// "CHARACTER SET cs COLLATE coll".
	CreateWith string `json:"create_with"`
	// Statements (PostgreSQL only) set its owner, comment, security
	// labels, settings and privileges, naming the database as it was
	// called, in pg_dump's order; each runs on its own.
	Statements []string `json:"statements"`
}

// Dump is a database dump ready to start.
type Dump struct {
	DB      *Database
	Tool    string // the program's name, e.g. "pg_dump"
	Version string // its --version line
	cmd     Command
	props   *DatabaseProperties
	// sqliteTimeout is how long an SQLite dump waits for a writer's
	// lock; sqliteLockTimeout when 0 (a test sets less).
	sqliteTimeout time.Duration
	// sqliteMaxLine is the longest line of an SQLite dump that can be
	// loaded back (0: sqliteMaxStatement).
	sqliteMaxLine int64
	// nulFound is what the NUL check at the end of an SQLite dump found
	// (sqliteNULCheck), and schema the schema it wrote
	// (sqliteSchemaScript), for Check.
	nulFound     []nulFinding
	nulTruncated bool
	schema       []byte
	checkFailed  string // why the checks after .dump failed, when they did
}

func (p *Dump) lockTimeout() time.Duration {
	if p.sqliteTimeout > 0 {
		return p.sqliteTimeout
	}
	return sqliteLockTimeout
}

func (p *Dump) maxLine() int64 {
	if p.sqliteMaxLine > 0 {
		return p.sqliteMaxLine
	}
	return sqliteMaxStatement
}

// Properties is what the dump recorded about the database itself, once
// it has run (nil for kinds and dumps that record nothing: a whole
// server's dump holds its databases' properties; nil too when they could
// not be read).
func (p *Dump) Properties() *DatabaseProperties { return p.props }

// Dump finds the dump tool and its version. It fails when the tool is not
// installed or the URL names no database.
func (d *Database) Dump(ctx context.Context) (*Dump, error) {
	if !d.All && d.Name == "" && d.Kind != KindMongoDB {
		return nil, fmt.Errorf("%s names no database: add /dbname, or ?all for the whole server", d)
	}
	var (
		cmd Command
		err error
	)
	switch d.Kind {
	case KindPostgres:
		cmd, err = d.postgresDump()
	case KindMySQL:
		if cmd, err = d.mysqlDump(); err == nil {
			err = d.mysqlDumpDefaults(ctx, cmd.Name)
		}
	case KindSQLite:
		cmd, err = d.sqliteDump()
	case KindMongoDB:
		cmd, err = d.mongoDump()
	}
	if err != nil {
		return nil, err
	}
	return &Dump{DB: d, Tool: filepath.Base(cmd.Name), Version: ToolVersion(ctx, cmd.Name), cmd: cmd}, nil
}

// Open returns the stream opener for the archiver: it starts the tool, whose
// standard output is the dump. Its standard error lines go to stderr, and
// what snap has to say about the dump to note (nil: among the lines, marked
// "(snap: …)").
func (p *Dump) Open(stderr, note func(line string)) func(ctx context.Context) (io.ReadCloser, error) {
	return func(ctx context.Context) (io.ReadCloser, error) {
		c := p.cmd
		c.Stderr, c.Note = stderr, note
		notef := func(format string, a ...any) { snapNote(note, stderr, format, a...) }
		c.StderrLines = ClientStderrLines
		// sqliteDone ends an SQLite dump's NUL check; until a reader
		// has it, an error return removes the check's directory.
		var sqliteDone func(tail []byte, err error) error
		defer func() {
			if sqliteDone != nil {
				sqliteDone(nil, errors.New("not started"))
			}
		}()
		if p.DB.Kind == KindSQLite {
			if err := p.DB.checkSQLiteFile(); err != nil {
				return nil, err
			}
			var checkDir string
			checkDir, sqliteDone = p.startSQLiteChecks(notef)
			c.Stdin = strings.NewReader(sqliteDumpScript(p.lockTimeout(), checkDir))
			if stderr != nil {
				// sqlite3's "Parse error near line 5: database is
				// locked (5)" names a line of snap's script; the error
				// (sqliteLocked) says what it means instead.
				c.Stderr = func(line string) {
					if !strings.Contains(line, "database is locked") {
						stderr(line)
					}
				}
			}
		}
		if p.DB.Kind == KindPostgres && !p.DB.All {
			// Read when the dump starts (after the pre hooks), not when the
			// snapshot is planned: a hook may start the server.
			// Without them the snapshot is still a backup of the data,
			// and a restore warns as for older snapshots: a database
			// whose owner can set odd properties must not stop its
			// backups (a locale with a line break is refused here).
			if props, err := p.DB.pgDatabaseProps(ctx); err != nil {
				if ctx.Err() != nil {
					return nil, ctx.Err()
				}
				if pgUnreachable.MatchString(err.Error()) {
					// The dump would fail the same way: its error alone,
					// not this one beside it (found by an exploratory
					// test), as what snap was doing.
					return nil, fmt.Errorf("reading the database's owner, privileges and settings with pg_dump --create (before the dump): %w", err)
				}
				notef("the database's own owner, privileges and settings could not be read with pg_dump --create (%v); the dump goes on without them", err)
			} else {
				p.props = &props
			}
		}
		if p.DB.Kind == KindMySQL {
			args, err := p.mysqlStart(ctx, notef)
			if err != nil {
				return nil, err
			}
			c.Args = args
		}
		if p.DB.Kind == KindMongoDB && p.DB.password != "" {
			file, cleanup, err := mongoConfigFile(p.DB.password)
			if err != nil {
				return nil, err
			}
			c.Args = append([]string{"--config=" + file}, c.Args...)
			rc, err := c.Start(ctx)
			if err != nil {
				cleanup()
				return nil, err
			}
			return &cleanupReader{ReadCloser: rc, cleanup: cleanup}, nil
		}
		rc, err := c.Start(ctx)
		if err != nil {
			return nil, err
		}
		if marker := p.completeMarker(); marker != "" {
			rc = &completeReader{ReadCloser: rc, tool: p.Tool, marker: marker}
		}
		if p.DB.Kind == KindSQLite {
			rc = &sqliteLockReader{ReadCloser: rc, db: p.DB, timeout: p.lockTimeout(), maxLine: p.maxLine(), done: sqliteDone}
			sqliteDone = nil // the reader's now
		}
		return rc, nil
	}
}

// mysqlStart reads, when a MariaDB/MySQL dump starts (after the pre hooks,
// as for PostgreSQL), the database's default character set and collation,
// and whether its system-versioned tables' history can be dumped; it
// returns the dump's arguments. What cannot be read is a note (notef),
// and the dump runs as it would without it: a backup of the data must
// not fail over what rides beside it.
func (p *Dump) mysqlStart(ctx context.Context, notef func(string, ...any)) ([]string, error) {
	if !p.DB.All {
		props, err := p.DB.mysqlDatabaseProps(ctx)
		switch {
		case err == nil:
			p.props = &props
		case ctx.Err() != nil:
			return nil, ctx.Err()
		case mysqlUnreachable.MatchString(err.Error()):
			// The dump would fail the same way: said once, and as what
			// snap was doing, for the client named is not the dump tool.
			if hint := p.DB.mysqlConnectHint(err); hint != "" {
				return nil, fmt.Errorf("%s (reading the database's default character set and collation, before the dump: %w)", hint, err)
			}
			return nil, fmt.Errorf("reading the database's default character set and collation (before the dump): %w", err)
		case errors.Is(err, errNoSchema):
			// Most often a name that does not exist, which the dump then
			// reports: the note said the answer was odd (found by an
			// exploratory test). A user with privileges on some tables
			// only may not see the database listed, and its dump goes on.
			notef("the server lists no database %s to this user (a mistyped name? SHOW DATABASES lists what it sees), so its default character set and collation are not recorded", p.DB.Name)
		default:
			notef("the database's default character set and collation could not be read (%v); the dump goes on without them", err)
		}
	}
	// A failure to read which tables are not transactional is left
	// unsaid: the history query below meets the same and notes it.
	switch msg, err := p.DB.mysqlNonTransactional(ctx); {
	case err != nil && ctx.Err() != nil:
		return nil, ctx.Err()
	case msg != "":
		notef("%s", msg)
	}
	args := p.cmd.Args
	if !p.dumpsHistory() {
		return args, nil
	}
	history, msg, err := p.DB.mysqlHistoryArgs(ctx)
	switch {
	case err != nil && ctx.Err() != nil:
		return nil, ctx.Err()
	case err != nil && mysqlUnreachable.MatchString(err.Error()):
		return nil, fmt.Errorf("reading which tables keep a history, for --dump-history (before the dump): %w", err) // as above
	case err != nil:
		notef("whether there are system-versioned tables, whose history needs --dump-history, could not be read (%v); their history is not saved, only their current rows", err)
	case msg != "":
		notef("%s", msg)
	}
	if len(history) == 0 {
		return args, nil
	}
	// Options go before the "--" that precedes the database's name.
	i := slices.Index(args, "--")
	if i < 0 {
		i = len(args)
	}
	return slices.Insert(slices.Clone(args), i, history...), nil
}

// pgUnreachable matches pg_dump's error for a server it could not reach
// or log in to.
var pgUnreachable = regexp.MustCompile(`error: connection to server .* failed`)

// mysqlUnreachable matches the MariaDB/MySQL client's error for a server it
// could not reach (2002, 2003, 2005: socket, TCP, host) or log in to (1045):
// an unreachable server was reported four times (found by a re-test).
var mysqlUnreachable = regexp.MustCompile(`ERROR (2002|2003|2005|1045) `)

// completeMarker is the comment a dump tool writes at the end of a dump it
// finished ("" for tools that write none): pg_dump, pg_dumpall and
// mariadb-dump/mysqldump end their plain dumps with one (newer pg_dump
// versions write a \unrestrict line after it).
func (p *Dump) completeMarker() string {
	switch {
	case p.DB.Kind == KindPostgres && p.DB.All:
		return "-- PostgreSQL database cluster dump complete"
	case p.DB.Kind == KindPostgres:
		return "-- PostgreSQL database dump complete"
	case p.DB.Kind == KindMySQL:
		return "-- Dump completed"
	}
	return ""
}

// tailReader passes r through, keeping its last keep bytes (or up to
// twice as many) in tail. Only the end of a read can end the stream: a
// large read keeps its last keep bytes, not a copy of all of it.
type tailReader struct {
	r    io.Reader
	keep int
	tail []byte
}

func (t *tailReader) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	t.tail = append(t.tail, p[max(0, n-t.keep):n]...)
	if len(t.tail) > 2*t.keep {
		t.tail = append(t.tail[:0], t.tail[len(t.tail)-t.keep:]...)
	}
	return n, err
}

// completeTail is how much of a dump's end completeReader keeps to find
// the tool's marker in.
const completeTail = 4096

// completeReader fails a dump that its tool ended with status 0 without
// its end-of-dump marker: a wrapper script, a tool that was replaced, or
// one that printed an error and exited 0 made an empty or cut-off dump
// that was saved as a success, and restoring it with --replace emptied
// the database.
type completeReader struct {
	io.ReadCloser
	tool   string
	marker string
	tail   *tailReader
	n      int64
	eof    bool
}

func (r *completeReader) Read(p []byte) (int, error) {
	if r.tail == nil {
		r.tail = &tailReader{r: r.ReadCloser, keep: completeTail}
	}
	n, err := r.tail.Read(p)
	r.n += int64(n)
	if err == io.EOF {
		r.eof = true
	}
	return n, err
}

func (r *completeReader) Close() error {
	if err := r.ReadCloser.Close(); err != nil || !r.eof {
		return err // the tool failed, or the dump was not read to its end
	}
	var tail []byte
	if r.tail != nil {
		tail = r.tail.tail[max(0, len(r.tail.tail)-completeTail):]
	}
	if !endsWithMarker(tail, r.marker) {
		return fmt.Errorf("%s exited with status 0, but its output (%d bytes) does not end with %q: the dump is incomplete (%s, or a wrapper around it, stopped early without reporting a failure; any lines it printed are above)", r.tool, r.n, r.marker, r.tool)
	}
	return nil
}

// endsWithMarker reports whether tail, the end of a dump, ends with the
// tool's marker: after the last line that is the marker ("-- PostgreSQL
// database dump complete", after a line "--") or starts with it ("-- Dump
// completed on …") come only blank lines, "--" and pg_dump's \unrestrict
// line. The marker anywhere in the tail was not enough: a dump cut off
// right after a row holding its text passed (found by an exploratory
// test).
func endsWithMarker(tail []byte, marker string) bool {
	lines := strings.Split(string(tail), "\n")
	dashAfter := false                     // a line "--" after the marker
	for i := len(lines) - 1; i >= 1; i-- { // lines[0] may be cut
		l := strings.TrimRight(lines[i], "\r")
		switch {
		case l == "--":
			dashAfter = true
			continue
		case strings.TrimSpace(l) == "" || strings.HasPrefix(l, `\unrestrict `):
			continue
		case l == marker:
			// pg_dump's stands between two lines "--": rows of a COPY
			// could hold its text, but a dump cut off right after three
			// such rows is past belief (a re-test passed one cut after
			// two). mariadb-dump's rows never start a line.
			return strings.TrimRight(lines[i-1], "\r") == "--" && dashAfter || !strings.HasPrefix(marker, "-- PostgreSQL")
		case strings.HasPrefix(l, marker+" "):
			return true
		}
		return false
	}
	return false
}

type cleanupReader struct {
	io.ReadCloser
	cleanup func()
}

func (c *cleanupReader) Close() error {
	err := c.ReadCloser.Close()
	c.cleanup()
	return err
}

// RestoreOptions tune a restore into a database.
type RestoreOptions struct {
	// Replace drops and recreates a database that exists and holds data;
	// without it such a database is refused.
	Replace bool
	// From is the name of the database the dump was taken from; MongoDB
	// renames it to the target's when they differ.
	From   string
	Stderr func(line string) // the tool's error and warning lines
	Stdout func(line string) // the tool's other output
	// Warn receives what the restore found lost or changed on the way
	// while the load itself succeeded: values the server cut as it
	// loaded them (MariaDB/MySQL), or that the dump holds cut (SQLite's
	// TEXT with a NUL). Nil drops them.
	Warn func(msg string)
	// ReadAll, when set, reads the whole dump once, from where the dump
	// comes, without loading it. A restore that would drop what it
	// replaces before it loads (MariaDB and MySQL, which cannot rename a
	// database; mongorestore --drop) calls it first and changes nothing
	// when it fails: a dump that breaks off half-way (a damaged
	// repository, a lost connection to it) left the old database dropped
	// and the new one half loaded.
	ReadAll func(ctx context.Context) error
	// Properties are the database's own, recorded with the dump. A
	// restore that creates the database gives it their template,
	// encoding and locale (PostgreSQL) or default character set and
	// collation (MariaDB/MySQL), and, when it has the name the statements
	// name (From), the rest.
	Properties *DatabaseProperties
}

// readAllFirst runs o.ReadAll, when set, before a restore drops anything.
func (d *Database) readAllFirst(ctx context.Context, o RestoreOptions) error {
	if o.ReadAll == nil {
		return nil
	}
	if err := o.ReadAll(ctx); err != nil {
		return fmt.Errorf("%s: the dump cannot be read whole, so nothing was dropped: %w (%w)", d, err, ErrUnchanged)
	}
	return nil
}

// ErrNotEmpty means a restore target exists and holds data.
var ErrNotEmpty = errors.New("exists and is not empty")

// ErrRolledBack marks a restore that failed or was stopped while the dump
// loaded in one transaction, which was rolled back: the target database is
// as it was before the restore (a database the restore created for it was
// dropped again).
var ErrRolledBack = errors.New("the load was rolled back")

// ErrUnchanged marks a restore that failed or was stopped before it
// changed anything.
var ErrUnchanged = errors.New("nothing was changed")

// ErrCreatedDropped marks a restore that failed or was stopped after it
// created the database, which it then dropped again.
var ErrCreatedDropped = errors.New("the database this restore created was dropped again")

// ErrCreatedLeft marks a restore that failed or was stopped after it
// created the database, which it then could not drop (the server went
// away).
var ErrCreatedLeft = errors.New("the database this restore created could not be dropped again and is left: drop it by hand")

// ErrReplacedPartly marks a MariaDB/MySQL restore with Replace that failed
// or was stopped after it dropped the old database. What to do next
// depends on which (a failure has a cause to fix, a stop does not): the
// message that wraps it says.
var ErrReplacedPartly = errors.New("the old database was dropped before the load (MariaDB and MySQL cannot rename a database), and it now holds part of the dump at most")

// Restore loads a dump made from a database of the same kind into d. A
// database that does not exist is created; one that exists and is empty is
// loaded; one that holds data is refused (ErrNotEmpty) unless o.Replace.
// A dump of a whole server (all) is loaded into the server d names. It
// reports whether it created the database.
func (d *Database) Restore(ctx context.Context, dump io.Reader, all bool, o RestoreOptions) (created bool, err error) {
	if !all && d.Name == "" && d.Kind != KindMongoDB {
		return false, fmt.Errorf("%s names no database to restore into", d)
	}
	switch d.Kind {
	case KindPostgres:
		return d.postgresRestore(ctx, dump, all, o)
	case KindMySQL:
		return d.mysqlRestore(ctx, dump, all, o)
	case KindSQLite:
		return d.sqliteRestore(ctx, dump, o)
	case KindMongoDB:
		return d.mongoRestore(ctx, dump, all, o.From, o)
	}
	return false, fmt.Errorf("cannot restore into %s", d)
}

// restoreClient returns the program that loads a dump into d, or an error
// naming d and the package to install.
func (d *Database) restoreClient() (string, error) {
	tool, err := d.client()
	if err != nil {
		return "", fmt.Errorf("%s: %w", d, err)
	}
	return tool, nil
}

// client returns d's command-line client (the program that loads a dump,
// and runs snap's queries), or an error naming the package to install.
// SQLite has none: SQLite's library inside snap loads its dumps.
func (d *Database) client() (string, error) {
	var tool, pkg string
	var err error
	switch d.Kind {
	case KindPostgres:
		tool, err = lookTool("psql")
		pkg = "the PostgreSQL client (postgresql-client)"
	case KindMySQL:
		tool, err = lookTool("mariadb", "mysql")
		pkg = "the MariaDB or MySQL client"
	case KindMongoDB:
		tool, err = lookTool("mongorestore")
		pkg = "the MongoDB Database Tools (mongodump, mongorestore)"
	default:
		return "", fmt.Errorf("cannot restore into %s", d)
	}
	if err != nil {
		return "", fmt.Errorf("%v; install %s", err, pkg)
	}
	return tool, nil
}

// CheckRestoreClient reports whether the program that loads a dump into d
// is installed: a restore of several dumps checks every one before it
// changes anything (a SQLite file was replaced before the restore found
// psql missing for the next; found by an exploratory test).
func (d *Database) CheckRestoreClient() error {
	if d.Kind == KindSQLite {
		return nil // loaded by SQLite's library inside snap (sqliteload.go)
	}
	_, err := d.restoreClient()
	return err
}

// Check reports, once the dump has ended well, what it lost on the way
// (err), and what a restore of it would stop at (warning): for SQLite,
// sqliteCheck; for PostgreSQL, a dump too large for the server's lock
// table in one transaction (pgLockCheck).
func (p *Dump) Check(ctx context.Context) (warning string, err error) {
	switch p.DB.Kind {
	case KindSQLite:
		return p.sqliteCheck(ctx)
	case KindPostgres:
		return p.DB.pgLockCheck(ctx), nil
	}
	return "", nil
}

// CheckRestoreTarget returns an error wrapping ErrNotEmpty when a restore
// without Replace would refuse the database (it exists and holds data),
// changing nothing: a restore of several dumps checks every target before
// it loads the first (one database was restored, the next refused, and
// the set was half restored; found by an exploratory test). A whole
// server, and MongoDB, are left to the restore.
func (d *Database) CheckRestoreTarget(ctx context.Context) error {
	if d.All {
		return nil
	}
	switch d.Kind {
	case KindPostgres:
		n, err := d.psql(ctx, pgMaintenanceDB, []string{"name=" + d.Name}, pgDatabaseExists)
		if err != nil || n == "0" {
			return err
		}
		if objects, err := d.psql(ctx, d.Name, nil, pgUserObjects); err != nil || objects == "0" {
			return err
		}
	case KindMySQL:
		exists, objects, _, err := d.mysqlObjects(ctx)
		if err != nil || exists == "0" || objects == "0" {
			return err
		}
	case KindSQLite:
		fi, err := os.Stat(d.File)
		if err != nil || !fi.Mode().IsRegular() || fi.Size() == 0 {
			return nil // the restore says what is wrong with it
		}
	default:
		return nil
	}
	return fmt.Errorf("database %s %w", d, ErrNotEmpty)
}

// lookTool returns the first of the programs that is installed.
func lookTool(names ...string) (string, error) {
	for _, n := range names {
		if p, err := exec.LookPath(n); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s is not installed (not found in PATH)", strings.Join(names, " or "))
}

// env returns the tool environment carrying the password, if any.
func (d *Database) env(variable string) []string {
	if d.password == "" {
		return nil
	}
	return []string{variable + "=" + d.password}
}

// redactRaw hides the password of a URL that is shown in an error.
func redactRaw(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	if u.User != nil {
		if _, ok := u.User.Password(); ok {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
		}
	}
	q := u.Query()
	if q.Has("password") {
		q.Set("password", "xxxxx")
		u.RawQuery = q.Encode()
	}
	return u.String()
}

// AssignDumpPaths returns where each database's dump goes in the
// snapshot tree: /db/KIND/NAME.sql, or, for databases that would share that
// path, a path qualified by their server (or SQLite directory).
func AssignDumpPaths(dbs []*Database) ([]string, error) {
	count := map[string]int{}
	for _, d := range dbs {
		count[d.DumpPath(false)]++
	}
	// One database named two ways (the default port written or not,
	// localhost or 127.0.0.1) was dumped twice, under two paths, and a
	// later restore --db NAME found it ambiguous (found by an exploratory
	// test).
	same := map[string]*Database{}
	for _, d := range dbs {
		if d.Kind == KindSQLite {
			continue // (its paths are compared below)
		}
		k := d.identity()
		if o := same[k]; o != nil {
			return nil, fmt.Errorf("%s is given twice (also as %s): give it once", d, o)
		}
		same[k] = d
	}
	paths := make([]string, len(dbs))
	seen := map[string]*Database{}
	for i, d := range dbs {
		p := d.DumpPath(false)
		if count[p] > 1 {
			p = d.DumpPath(true)
		}
		if o := seen[p]; o != nil && SameDatabase(o, d) {
			return nil, fmt.Errorf("%s is given twice (also as %s): give it once", d, o)
		}
		if o := seen[p]; o != nil {
			// Not the same database (compared above): two that a snapshot
			// cannot hold side by side, a database named "all" and the
			// whole server (?all), say ("is given twice" misnamed it;
			// found by an exploratory test).
			return nil, fmt.Errorf("%s and %s would both be stored as %s: back them up in two snapshots (two jobs), or use --command NAME -- pg_dump … for one of them", o, d, p)
		}
		seen[p] = d
		paths[i] = p
	}
	return paths, nil
}
