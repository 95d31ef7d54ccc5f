package sources

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// MariaDB and MySQL: mariadb-dump (or mysqldump) with --single-transaction
// reads every InnoDB table in one consistent snapshot without locking
// writers; --routines --triggers --events include the code, --hex-blob
// keeps binary columns byte-exact through any client character set. The
// dump names no database (no --databases), so it can be loaded into any,
// with one exception: around a routine or trigger created under other
// defaults than the database's, it writes "ALTER DATABASE `name` …" lines,
// which a restore under another name rewrites (renameAlterDatabase).
// The database's default character set and collation, which CREATE
// DATABASE would have carried, are recorded beside the dump instead
// (mysqlDatabaseProps), and --dump-history is added where system-versioned
// tables allow it (mysqlHistoryArgs), both when the dump starts.
//
// The password travels in MYSQL_PWD; option files work as usual (~/.my.cnf,
// or ?defaults-extra-file=/etc/snap/my.cnf in the URL).

// mysqlParams are the URL query parameters passed on to the tools as
// options of the same name.
var mysqlParams = []string{"socket", "defaults-file", "defaults-extra-file", "ssl", "ssl-ca", "ssl-cert", "ssl-key", "ssl-verify-server-cert"}

func checkMySQLParams(q url.Values) error {
	for k := range q {
		if !slices.Contains(mysqlParams, k) {
			return fmt.Errorf("unknown parameter %q; mysql URLs take ?all and %s", k, strings.Join(mysqlParams, ", "))
		}
	}
	return nil
}

// mysqlConnArgs are the connection options of the mysql tools.
func (d *Database) mysqlConnArgs() []string {
	// Option-file options must come first.
	args := d.mysqlOptionFileArgs()
	q := d.u.Query()
	host, port := d.u.Hostname(), d.u.Port()
	if host != "" && (host != "localhost" || port != "") {
		// "localhost" means the socket to these tools, unless a port is given.
		args = append(args, "--protocol=TCP", "--host="+host)
		if port != "" {
			args = append(args, "--port="+port)
		}
	}
	if d.u.User != nil && d.u.User.Username() != "" {
		args = append(args, "--user="+d.u.User.Username())
	}
	for _, k := range mysqlParams {
		v, ok := q[k]
		switch {
		case !ok || k == "defaults-file" || k == "defaults-extra-file":
		case k == "ssl" || k == "ssl-verify-server-cert":
			if len(v) == 0 || v[0] == "" || v[0] == "1" || v[0] == "true" {
				args = append(args, "--"+k)
			}
		default:
			args = append(args, "--"+k+"="+q.Get(k))
		}
	}
	return args
}

func (d *Database) mysqlDump() (Command, error) {
	tool, err := lookTool("mariadb-dump", "mysqldump")
	if err != nil {
		return Command{}, fmt.Errorf("%s: %v; install the MariaDB or MySQL client", d, err)
	}
	// --comments: the completion check needs the dump's last comment,
	// which an option file's skip-comments would leave out.
	// --skip-add-locks: the dump is one transaction already, and the
	// LOCK TABLES it writes by default made a table whose DEFAULT takes
	// nextval() of a sequence fail to load ("Table 's' was not locked
	// with LOCK TABLES"; found by an exploratory test).
	// --max-allowed-packet: any row the server holds (mariadb-dump's own
	// default, 24 MiB, stopped at a larger one).
	// --skip-no-data, --skip-no-create-info, --skip-force: an option
	// file's no-data made a dump without a row that passed every check
	// (found by an exploratory test), and force goes on past a failed
	// query; what cannot be turned off so is refused (mysqlDumpDefaults).
	// --tz-utc, --set-charset, --create-options, --quick,
	// --extended-insert, --disable-keys: an option file's skip-tz-utc
	// shifted every TIMESTAMP by the server's offset, skip-set-charset
	// made the restore read utf8mb4 as the client's character set, and
	// skip-opt dropped every table's ENGINE and CHARSET (found by an
	// exploratory test).
	args := append(d.mysqlConnArgs(), "--comments", "--single-transaction", "--routines", "--triggers", "--events", "--hex-blob",
		"--skip-dump-date", "--no-tablespaces", "--default-character-set=utf8mb4", "--skip-add-locks", "--max-allowed-packet="+mysqlMaxPacket,
		"--skip-no-data", "--skip-no-create-info", "--skip-force",
		"--tz-utc", "--set-charset", "--create-options", "--quick", "--extended-insert", "--disable-keys")
	if d.All {
		// --flush-privileges: the accounts the dump writes into the
		// mysql database take effect when it is loaded, not at the
		// server's next start (they did not; found by an exploratory
		// test).
		args = append(args, "--all-databases", "--flush-privileges")
	} else {
		args = append(args, "--", d.Name)
	}
	return Command{Name: tool, Args: args, Env: d.env("MYSQL_PWD")}, nil
}

// mysqlDropCreated drops the database a restore created, after err
// stopped the restore, and says whether that worked: the message said it
// was dropped also when the server had gone away, and the database stayed
// (found by an exploratory test).
func (d *Database) mysqlDropCreated(ctx context.Context, err error) error {
	bg, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	if _, derr := d.mysqlQuery(bg, "DROP DATABASE IF EXISTS "+mysqlIdent(d.Name)+";\n"); derr != nil {
		return fmt.Errorf("%w; %w (dropping it failed: %v)", err, ErrCreatedLeft, derr)
	}
	return fmt.Errorf("%w (%w)", err, ErrCreatedDropped)
}

// mysqlOptionFileArgs are the URL's options that name option files.
func (d *Database) mysqlOptionFileArgs() []string {
	var args []string
	q := d.u.Query()
	for _, k := range []string{"defaults-file", "defaults-extra-file"} {
		if v := q.Get(k); v != "" {
			args = append(args, "--"+k+"="+v)
		}
	}
	return args
}

// mysqlOmitting are mariadb-dump's options that leave tables, rows or
// statements out of a dump, send it elsewhere than its standard output,
// or write it for another server, and that no option after them turns
// off: compact turns off the comments, the character set and more after
// every other option is read (the dump failed as "incomplete"; found by
// an exploratory test), compatible writes for another server's syntax.
var mysqlOmitting = []string{"where", "ignore-table", "ignore-table-data", "ignore-database", "tab", "result-file", "xml", "tables", "databases", "all-databases", "compact", "compatible"}

// mysqlDumpDefaults refuses a dump whose tool would read one of
// mysqlOmitting from its option files (~/.my.cnf, /etc/mysql, the URL's
// defaults-file): read there, where=1=0 or ignore-table made a dump with
// exit 0, its completion line and no rows of those tables, which every
// check took for whole (found by an exploratory test).
func (d *Database) mysqlDumpDefaults(ctx context.Context, tool string) error {
	var out strings.Builder
	c := Command{Name: tool, Args: append(d.mysqlOptionFileArgs(), "--print-defaults"), Env: d.env("MYSQL_PWD"),
		Stdout: func(line string) { out.WriteString(line + "\n") }, StdoutData: true}
	if err := c.Run(ctx); err != nil {
		return fmt.Errorf("%s: reading the options %s takes from its option files: %w", d, filepath.Base(tool), err)
	}
	// The options, after a line that says what follows, are printed as
	// "--name[=value]" separated by blanks; a value may hold blanks too,
	// so a word that follows one is an option only where the text before
	// its "=" holds none (a password "s3cret --tab x" names no option).
	_, printed, _ := strings.Cut(out.String(), "\n")
	for _, f := range strings.Split(" "+strings.TrimSpace(printed), " --")[1:] {
		name, _, _ := strings.Cut(f, "=")
		if strings.ContainsAny(name, " \t") || !mysqlOmits(name, d.All) {
			continue
		}
		return fmt.Errorf("%s: %s reads --%s from its option files ('%s --print-defaults' lists them), which leaves data out of a dump, sends it elsewhere or writes it for another server: remove it there, or keep it to a group this dump does not read", d, filepath.Base(tool), f, filepath.Base(tool))
	}
	return nil
}

// mysqlOmits reports whether the option-file option name is one of
// mysqlOmitting as the tools read it: with or without "loose-", "_" for
// "-", in any case, and abbreviated to any prefix that names one option
// alone (loose-where in [client], which every tool then reads without
// complaint, and "wher" were missed, found by a review; WHERE,
// Ignore-Table and "w", found by a re-test). A prefix of one of these that
// also begins another option is ambiguous, which the tool refuses itself.
func mysqlOmits(name string, all bool) bool {
	name = strings.ToLower(strings.ReplaceAll(name, "_", "-"))
	name = strings.TrimPrefix(name, "loose-")
	for _, o := range mysqlOmitting {
		if all && o == "all-databases" {
			continue
		}
		if name != "" && strings.HasPrefix(o, name) {
			return true
		}
	}
	return false
}

// mysqlQuery runs SQL statements and returns what they print (tab-separated,
// without column names).
func (d *Database) mysqlQuery(ctx context.Context, sql string) (string, error) {
	tool, err := d.client()
	if err != nil {
		return "", err
	}
	var out strings.Builder
	c := Command{Name: tool, Args: append(d.mysqlConnArgs(), "--batch", "--skip-column-names"), Env: d.env("MYSQL_PWD"),
		Stdin: strings.NewReader(sql), Stdout: func(line string) { out.WriteString(line + "\n") }, StdoutData: true}
	if err := c.Run(ctx); err != nil {
		return "", err
	}
	return strings.TrimSpace(out.String()), nil
}

// mysqlString is a string literal that no SQL mode can misread.
func mysqlString(s string) string {
	if s == "" {
		return "''"
	}
	return "CONVERT(X'" + hex.EncodeToString([]byte(s)) + "' USING utf8mb4)"
}

// mysqlIdent quotes an identifier.
func mysqlIdent(s string) string { return "`" + strings.ReplaceAll(s, "`", "``") + "`" }

// mysqlWord is a character set's or a collation's name.
var mysqlWord = regexp.MustCompile(`^[A-Za-z0-9_]+$`)

// mysqlMarker is the table a restore puts into the database before it
// loads the dump and drops once the whole dump is in. MariaDB and MySQL
// commit each statement of a load, so a restore killed by force (kill -9,
// the OOM killer) leaves the database holding part of the dump; the table
// says so, to the next restore and to whoever looks (found by an
// exploratory test: 260,575 of 1,500,000 rows, and nothing to tell).
const mysqlMarker = "_snap_restore_incomplete"

// mysqlObjects says whether d's database exists ("0" or "1"), how many
// tables, views, routines and events it holds besides mysqlMarker, and
// whether it holds mysqlMarker ("0" or "1").
func (d *Database) mysqlObjects(ctx context.Context) (exists, objects, marker string, err error) {
	n := mysqlString(d.Name)
	out, err := d.mysqlQuery(ctx, fmt.Sprintf("SELECT (SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %[1]s), "+
		"(SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = %[1]s AND TABLE_NAME <> %[2]s) + "+
		"(SELECT COUNT(*) FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = %[1]s) + "+
		"(SELECT COUNT(*) FROM information_schema.EVENTS WHERE EVENT_SCHEMA = %[1]s), "+
		"(SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = %[1]s AND TABLE_NAME = %[2]s);\n", n, mysqlString(mysqlMarker)))
	if err != nil {
		return "", "", "", err
	}
	f := strings.Split(out, "\t")
	if len(f) != 3 {
		return "", "", "", fmt.Errorf("unexpected answer %q", out)
	}
	return f[0], f[1], f[2], nil
}

// mysqlOwnDatabases lists the databases of the server the user made, as
// "a, b" ("" or "NULL" when none): not the system's, nor an empty "test",
// which mariadb-install-db makes on a fresh server (a whole-server restore
// onto a new server was refused for it; found by an exploratory test).
func (d *Database) mysqlOwnDatabases(ctx context.Context) (string, error) {
	return d.mysqlQuery(ctx, "SELECT GROUP_CONCAT(SCHEMA_NAME ORDER BY SCHEMA_NAME SEPARATOR ', ') FROM information_schema.SCHEMATA s "+
		"WHERE SCHEMA_NAME NOT IN ('mysql', 'information_schema', 'performance_schema', 'sys') AND NOT (SCHEMA_NAME = 'test' "+
		"AND NOT EXISTS (SELECT 1 FROM information_schema.TABLES t WHERE t.TABLE_SCHEMA = s.SCHEMA_NAME) "+
		"AND NOT EXISTS (SELECT 1 FROM information_schema.ROUTINES r WHERE r.ROUTINE_SCHEMA = s.SCHEMA_NAME) "+
		"AND NOT EXISTS (SELECT 1 FROM information_schema.EVENTS e WHERE e.EVENT_SCHEMA = s.SCHEMA_NAME));\n")
}

// mysqlRestore loads a dump with the client. A database that holds data is
// dropped first with Replace (the tools have no way to rename a database),
// once the whole dump has been read (RestoreOptions.ReadAll): if the load
// then fails, the database is left as far as it got, and the error says so
// (ErrReplacedPartly).
func (d *Database) mysqlRestore(ctx context.Context, dump io.Reader, all bool, o RestoreOptions) (bool, error) {
	tool, err := d.restoreClient()
	if err != nil {
		return false, err
	}
	if !all && o.From != "" && o.From != d.Name {
		// Left as they are, the dump's ALTER DATABASE lines would change
		// the database it was taken from (a copy restored to look at it
		// would alter production), or fail where that one does not exist.
		dump = renameAlterDatabase(dump, o.From, d.Name)
	}
	// The largest statement sent, for what a closed connection means.
	meter := &statementMeter{r: dump}
	dump = meter
	var warned serverWarnings
	load := func(db string) error {
		// --binary-mode refuses the client's own commands (\!, system);
		// --local-infile=0 refuses LOAD DATA LOCAL INFILE, through which
		// a crafted dump read /etc/shadow into a table (found by an
		// exploratory test; restricted.go). --show-warnings: the dump
		// loads without strict mode, in which the server stores a value
		// it cannot hold cut or emptied with a warning, and the restore
		// went on without a word (found by an exploratory test: an emoji
		// in an ENUM whose definition the server reports with '?').
		// --skip-force: an option file's force made the client go on
		// past a statement that failed and exit 0, and a restore lacking
		// views and triggers said it was whole (found by an exploratory
		// test).
		args := append(d.mysqlConnArgs(), "--batch", "--binary-mode", "--local-infile=0", "--max-allowed-packet="+mysqlMaxPacket, "--show-warnings", "--skip-force")
		if db != "" {
			args = append(args, "--", db)
		}
		// The COMMIT after the dump: an option file's init-command of
		// "SET autocommit=0" left the rows after the last DDL statement
		// uncommitted, and the server rolled them back at the end while
		// the restore said it was whole (found by a re-test).
		c := Command{Name: tool, Args: args, Env: d.env("MYSQL_PWD"), Stdin: io.MultiReader(dump, strings.NewReader("\nCOMMIT;\n")),
			Stderr: o.Stderr, StderrLines: ClientStderrLines, Stdout: warned.filter(o.Stdout)}
		err := c.Run(ctx)
		if err == nil && warned.n > 0 && o.Warn != nil {
			o.Warn(warned.message(d))
		}
		return err
	}
	if all {
		// Its script replaces each table, view and routine it holds,
		// and leaves what it does not hold: into a server that has
		// databases of its own, only with Replace.
		dbs, err := d.mysqlOwnDatabases(ctx)
		if err != nil {
			return false, fmt.Errorf("%s: list the server's databases: %w", d, err)
		}
		if dbs != "" && dbs != "NULL" && !o.Replace {
			return false, fmt.Errorf("the server %s already holds databases (%s): load the whole-server dump into a new server, or give --replace to load it over them (each table, view and routine it holds replaces the server's; what it lacks stays)", d, dbs)
		}
		if dbs != "" && dbs != "NULL" {
			if err := d.readAllFirst(ctx, o); err != nil {
				return false, err
			}
		}
		if err := load(""); err != nil {
			return false, d.mysqlPacketHint(ctx, err, meter.largestSoFar())
		}
		// A dump of an older snap holds no FLUSH PRIVILEGES after the
		// accounts it loads. A user that may not flush could not have
		// loaded the mysql database either.
		if _, err := d.mysqlQuery(ctx, "FLUSH PRIVILEGES;\n"); err != nil && !isAccessDenied(err) {
			return false, fmt.Errorf("%s: the dump was loaded, but FLUSH PRIVILEGES failed, so the accounts it holds take effect only when the server restarts: run it by hand (%w)", d, err)
		}
		return false, nil
	}
	exists, objects, marker, err := d.mysqlObjects(ctx)
	if err != nil {
		return false, fmt.Errorf("%s: check whether the database exists: %w (%w)", d, err, ErrUnchanged)
	}
	if marker == "1" && objects != "0" && !o.Replace {
		return false, fmt.Errorf("database %s holds part of a dump: a restore into it did not end (killed, stopped or failed; its table %s says so); restore with --replace to load the dump whole, or into another database with --to (%w)", d, mysqlMarker, ErrUnchanged)
	}
	create := exists == "0"
	// The database's defaults: a new one gets those recorded with the
	// dump, under any name (they do not name the database), or utf8mb4
	// for a snapshot without them; a replaced one keeps its own (a latin1
	// database stays latin1).
	const fallback = " CHARACTER SET utf8mb4"
	charset := fallback
	if create && o.Properties != nil {
		if err := checkMySQLProps(o.Properties); err != nil {
			return false, fmt.Errorf("%s: the snapshot's recorded character set and collation of the database are not what snap records (%v): restore with --to into a database you create (%w)", d, err, ErrUnchanged)
		}
		charset = " " + o.Properties.CreateWith
	}
	if exists != "0" && objects != "0" {
		if !o.Replace {
			return false, fmt.Errorf("database %s %w; give --to a new or empty database instead, or add --replace to replace this one", d, ErrNotEmpty)
		}
		// An answer that is not two names (a server that answers
		// strangely) keeps utf8mb4 rather than make CREATE DATABASE fail
		// after the DROP.
		switch cw, err := d.mysqlCharset(ctx); {
		case errors.Is(err, errOddCharset):
		case err != nil:
			return false, fmt.Errorf("%s: read the database's character set: %w (%w)", d, err, ErrUnchanged)
		default:
			charset = " " + cw
		}
		if err := d.readAllFirst(ctx, o); err != nil {
			return false, err
		}
		// A session with an open transaction on one of its tables holds
		// the drop: not for ever (MariaDB's default is a year, and the
		// restore said nothing meanwhile; found by an exploratory test).
		// MariaDB locks all the tables before it drops any.
		wait := cmp.Or(d.lockWait, mysqlDropWait)
		// Waiting is said after a while: the restore was silent for as
		// long as the drop waited (found by an exploratory test).
		waiting := time.AfterFunc(min(5*time.Second, wait/2), func() {
			if o.Stderr != nil {
				o.Stderr(fmt.Sprintf("note: waiting for other sessions to release the tables of %s before it is dropped (an open transaction, a long query; SHOW PROCESSLIST names them), at most %v", d, wait))
			}
		})
		_, err := d.mysqlQuery(ctx, fmt.Sprintf("SET SESSION lock_wait_timeout=%d;\nDROP DATABASE %s;\n", int(wait.Seconds()), mysqlIdent(d.Name)))
		waiting.Stop()
		if err != nil {
			if isLockWaitTimeout(err) {
				return false, fmt.Errorf("%s: drop database: %w: another session holds one of its tables (an open transaction, a long query), and the restore waited %v for it: end that session (SHOW PROCESSLIST; KILL …) or stop the application, then restore again (%w)", d, err, wait, ErrUnchanged)
			}
			return false, fmt.Errorf("%s: drop database: %w", d, err)
		}
		create = true
	}
	if create {
		// Run to its end even when stopped meanwhile (as for
		// PostgreSQL: a client killed half-way leaves the server to
		// finish it); a database this restore made is dropped again.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), createTimeout)
		_, err := d.mysqlQuery(cctx, "CREATE DATABASE "+mysqlIdent(d.Name)+charset+";\n")
		if err != nil && charset != fallback && isUnknownCharset(err) {
			// Recorded on another server (MySQL 8's utf8mb4_0900_ai_ci on
			// MariaDB): the data still loads into utf8mb4.
			if o.Stderr != nil {
				o.Stderr(fmt.Sprintf("note: database %s could not be created as recorded (%s: %v); created with%s instead", d, strings.TrimSpace(charset), err, fallback))
			}
			_, err = d.mysqlQuery(cctx, "CREATE DATABASE "+mysqlIdent(d.Name)+fallback+";\n")
			charset = fallback
		}
		cancel()
		if err != nil {
			if exists == "0" {
				return false, fmt.Errorf("%s: create database: %w (%w)", d, err, ErrUnchanged)
			}
			return false, fmt.Errorf("%s: create database: %w; the old database was dropped before it (MariaDB and MySQL cannot rename a database), and is gone: fix the cause and restore again", d, err)
		}
		if ctx.Err() != nil {
			if exists == "0" {
				return false, d.mysqlDropCreated(ctx, ctx.Err())
			}
			return false, fmt.Errorf("%w; %w", ctx.Err(), ErrReplacedPartly)
		}
	}
	if !create {
		// An empty database that was there keeps its own defaults.
		charset = ""
		if cw, err := d.mysqlCharset(ctx); err == nil {
			charset = " " + cw
		}
	}
	table := mysqlIdent(d.Name) + "." + mysqlIdent(mysqlMarker)
	// COMMENT takes a literal, not an expression (mysqlString).
	const comment = "'snap restore is loading a dump into this database; if no restore runs, it was killed: restore again with --replace'"
	if _, err := d.mysqlQuery(ctx, "CREATE TABLE IF NOT EXISTS "+table+" (id int PRIMARY KEY) COMMENT = "+comment+";\n"); err != nil {
		err = fmt.Errorf("%s: create the table %s that marks a load in progress: %w", d, mysqlMarker, err)
		if create && exists == "0" {
			return false, d.mysqlDropCreated(ctx, err)
		}
		if create {
			return false, fmt.Errorf("%w; %w", err, ErrReplacedPartly)
		}
		return false, fmt.Errorf("%w (%w)", err, ErrUnchanged)
	}
	// The dump's last ALTER DATABASE gives the database the defaults of
	// the one it was taken from (when that had routines made under other
	// ones): set again those it was created with, the target's own under
	// --replace (a latin1 database stays latin1; found by an exploratory
	// test), also after a load that failed (an empty database that was
	// there took the source's for good; found by an exploratory test).
	setCharset := func() {
		if charset == "" {
			return
		}
		if _, err := d.mysqlQuery(context.WithoutCancel(ctx), "ALTER DATABASE "+mysqlIdent(d.Name)+charset+";\n"); err != nil && o.Stderr != nil {
			o.Stderr(fmt.Sprintf("note: database %s keeps the character set and collation its dump gave it (set%s: %v)", d, charset, err))
		}
	}
	if err := load(d.Name); err != nil {
		err = d.mysqlPacketHint(ctx, err, meter.largestSoFar())
		if !create || exists != "0" {
			setCharset() // (one this restore made is dropped)
		}
		switch {
		case create && exists == "0":
			return false, d.mysqlDropCreated(ctx, err)
		case create && ctx.Err() != nil:
			return false, fmt.Errorf("%w; %w", err, ErrReplacedPartly)
		case create:
			return false, fmt.Errorf("%w; %w: fix the cause and restore again, or restore into a new database with --to first", err, ErrReplacedPartly)
		}
		// An empty database that was there: the statements that ran
		// before the failure stay (MariaDB commits each one).
		return false, fmt.Errorf("%w; the database %s now holds part of the dump at most: empty it (or drop and create it) before restoring again, or restore into a new database with --to", err, d)
	}
	setCharset()
	if _, err := d.mysqlQuery(context.WithoutCancel(ctx), "DROP TABLE IF EXISTS "+table+";\n"); err != nil {
		return create && exists == "0", fmt.Errorf("%s: the dump was loaded, but the table %s that marked the load in progress could not be dropped: drop it by hand (%w)", d, mysqlMarker, err)
	}
	return create && exists == "0", nil
}

// mysqlMaxPacket is the largest statement the clients send or take: the
// most MariaDB and MySQL allow.
const mysqlMaxPacket = "1073741824"

// mysqlDropWait is how long a restore with --replace waits for the tables
// of the database it drops.
const mysqlDropWait = 5 * time.Minute

// mysqlPacketHint adds to err, a load the server refused because a
// statement was larger than its max_allowed_packet (ERROR 1153), what to
// do: the dump writes binary columns in hex, twice their size, so a row
// of 9 MB, which the server took, is a statement of 18 MB, which its
// default of 16 MiB refuses (found by an exploratory test).
//
// The server may also just close the connection (2006, 2013), as it did in
// a CI run: said so when a statement sent so far (largest bytes) may have
// reached its limit. A connection closed otherwise (the server restarted,
// the session killed) was blamed on the limit too, and an admin would have
// raised it for nothing (found by an exploratory test).
func (d *Database) mysqlPacketHint(ctx context.Context, err error, largest int64) error {
	tooLarge := isMySQLError(err, 1153)
	if !tooLarge && !isMySQLError(err, 2006, 2013) {
		return err
	}
	limit, n := "its limit", int64(0)
	if v, qerr := d.mysqlQuery(context.WithoutCancel(ctx), "SELECT @@GLOBAL.max_allowed_packet;\n"); qerr == nil {
		if n, qerr = strconv.ParseInt(v, 10, 64); qerr == nil {
			limit = "its max_allowed_packet of " + packetSize(n)
		}
	}
	raise := "raise it for the restore (SET GLOBAL max_allowed_packet=1073741824; or max_allowed_packet=1G under [mysqld]) and restore again"
	switch {
	case tooLarge:
		return fmt.Errorf("%w: the dump holds a statement larger than the server takes (%s; binary columns are dumped in hex, twice their size): %s", err, limit, raise)
	case n > 0 && largest < n-mysqlPacketSlack:
		return fmt.Errorf("%w: the server closed the connection, and not for a statement's size (the largest sent was %s, within %s): it was restarted or stopped, or the session was killed; see the server's error log, then restore again", err, packetSize(largest), limit)
	case n > 0 && n < 1<<30:
		return fmt.Errorf("%w: the server closed the connection, as it does when a statement is larger than %s (binary columns are dumped in hex, twice their size), and a statement of the dump (%s) reached it; if the server did not restart or fail meanwhile, %s", err, limit, packetSize(largest), raise)
	}
	return err
}

// mysqlPacketSlack is what a packet holds beside the statement's text.
const mysqlPacketSlack = 1 << 10

// packetSize shows a size in MiB, or in KiB below 1 MiB ("0 MiB" said
// nothing).
func packetSize(n int64) string {
	switch {
	case n < 1<<20:
		return fmt.Sprintf("%d KiB", n>>10)
	case n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	}
	return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
}

// statementMeter passes a dump on and measures its statements, which end
// with a line ending in ';' as mysqldump and mariadb-dump write them. It
// is read by the client's stdin copier and asked once the client is done.
type statementMeter struct {
	r       io.Reader
	mu      sync.Mutex
	cur     int64 // bytes of the statement being sent
	largest int64
	semi    bool // the last byte read was ';'
}

func (m *statementMeter) Read(p []byte) (int, error) {
	n, err := m.r.Read(p)
	m.mu.Lock()
	defer m.mu.Unlock()
	b := p[:n]
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			m.cur += int64(len(b))
			m.semi = b[len(b)-1] == ';'
			break
		}
		m.cur += int64(i + 1)
		if i > 0 && b[i-1] == ';' || i == 0 && m.semi {
			m.largest = max(m.largest, m.cur)
			m.cur = 0
		}
		m.semi = false
		b = b[i+1:]
	}
	return n, err
}

// largestSoFar is the largest statement sent, the one in flight counted.
func (m *statementMeter) largestSoFar() int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return max(m.largest, m.cur)
}

// isMySQLError reports whether err is the client's report of an error
// with one of these codes ("ERROR 1205 (HY000) at line 2: …").
func isMySQLError(err error, codes ...int) bool {
	var ce *CommandError
	if !errors.As(err, &ce) {
		return false
	}
	return slices.ContainsFunc(codes, func(code int) bool { return strings.HasPrefix(ce.LastLine, fmt.Sprintf("ERROR %d ", code)) })
}

// mysqlConnectHint says which server the client could not connect to, and
// what to check, when err is that (2002, 2003, 2005), else "": the
// client's "Can't connect to server on '127.0.0.1' (115)" named no port,
// and the failure read as one of the character set query it came from
// (found by an exploratory test).
func (d *Database) mysqlConnectHint(err error) string {
	if !isMySQLError(err, 2002, 2003, 2005) {
		return ""
	}
	where := "at " + d.u.Host
	if d.u.Host == "" || d.u.Hostname() == "localhost" && d.u.Port() == "" {
		where = "on its socket"
		if s := d.u.Query().Get("socket"); s != "" {
			where += " " + s
		}
	}
	return fmt.Sprintf("cannot connect to the MariaDB/MySQL server %s: check that it runs, and that the URL's host and port are its own", where)
}

// isAccessDenied reports whether err is the client's report that the user
// lacks a privilege (1227, 1044, 1045).
func isAccessDenied(err error) bool { return isMySQLError(err, 1227, 1044, 1045) }

// isLockWaitTimeout reports whether err is the client's report that a
// statement waited for a lock longer than lock_wait_timeout (1205).
func isLockWaitTimeout(err error) bool { return isMySQLError(err, 1205) }

// renameAlterDatabase returns dump with every line that starts
// "ALTER DATABASE `from` " starting "ALTER DATABASE `to` " instead;
// mariadb-dump and mysqldump write the statement so, at the start of a
// line, around routines and triggers. Between "DELIMITER ;;" and
// "DELIMITER ;" are the bodies of routines, triggers and events, the
// user's code, left as they are, but for the tool's own lines there: the
// collation switch around events, "ALTER DATABASE `from` CHARACTER SET x
// COLLATE y ;;" on a line of its own. Lines of any length (an INSERT of
// many MB) pass through in pieces.
//
// The server also names the database in a column's default that takes
// the next value of a sequence: the user's DEFAULT NEXTVAL(s) is shown,
// and dumped, as DEFAULT nextval(`from`.`s`), so the copy's table took
// its values from the original's sequence, and failed to load where that
// database does not exist (found by an exploratory test). A column's line
// of CREATE TABLE starts with two blanks and a backquote, which no other
// line of the tool's outside a DELIMITER block does (a row's strings have
// their line breaks escaped): there, nextval(`from`. and lastval(`from`.
// name the sequence of the copy instead.
func renameAlterDatabase(dump io.Reader, from, to string) io.Reader {
	old := "ALTER DATABASE " + mysqlIdent(from) + " "
	l := &lineRewriter{old: []byte(old), new: []byte("ALTER DATABASE " + mysqlIdent(to) + " "),
		toolLine: regexp.MustCompile(`^` + regexp.QuoteMeta(old) + `CHARACTER SET [A-Za-z0-9_]+ COLLATE [A-Za-z0-9_]+ *;+\r?$`)}
	for _, f := range []string{"nextval(", "lastval("} {
		l.sequences = append(l.sequences, [2][]byte{[]byte(f + mysqlIdent(from) + "."), []byte(f + mysqlIdent(to) + ".")})
	}
	return newLineFilter(dump, l.start)
}

// lineRewriter replaces old with new where a line starts with it, outside
// DELIMITER blocks, and the sequences' names in columns' lines.
type lineRewriter struct {
	old, new  []byte
	inBody    bool           // between "DELIMITER ;;" and "DELIMITER ;"
	toolLine  *regexp.Regexp // the tool's own line, rewritten inside a body too
	sequences [][2][]byte    // a sequence function of the old database, of the new
}

// columnLine starts a column's line of CREATE TABLE.
var columnLine = []byte("  `")

// columnLineMax is the longest column line whose sequences are renamed;
// a longer one (a default of many KiB) passes as it is.
const columnLineMax = 16 << 10

// renameSequences returns the column line at the start of r with the
// sequences renamed, having read it, or nil when it names none.
func (l *lineRewriter) renameSequences(r *bufio.Reader) []byte {
	b, _ := r.Peek(columnLineMax)
	line, _, found := bytes.Cut(b, []byte("\n"))
	if !found {
		return nil
	}
	if !slices.ContainsFunc(l.sequences, func(s [2][]byte) bool { return bytes.Contains(line, s[0]) }) {
		return nil
	}
	out := line
	for _, s := range l.sequences {
		out = bytes.ReplaceAll(out, s[0], s[1]) // a copy: line is r's buffer
	}
	out = append(out, '\n')
	_, _ = r.Discard(len(line) + 1)
	return out
}

// delimiterLine is how mariadb-dump changes the statement delimiter.
var delimiterLine = []byte("DELIMITER ")

// isToolLine reports whether the line at the start of b (peeked) is the
// dump tool's collation switch.
func (l *lineRewriter) isToolLine(b []byte) bool {
	line, _, found := bytes.Cut(b, []byte("\n"))
	return found && l.toolLine.Match(line)
}

// start is the lineFilter's look at the start of each line.
func (l *lineRewriter) start(r *bufio.Reader) ([]byte, bool, error) {
	if b, _ := r.Peek(len(delimiterLine) + 3); bytes.HasPrefix(b, delimiterLine) {
		// "DELIMITER ;" ends a body; any other delimiter starts one.
		rest, _, _ := bytes.Cut(b[len(delimiterLine):], []byte("\n"))
		l.inBody = !bytes.Equal(bytes.TrimRight(rest, "\r "), []byte(";"))
	}
	b, _ := r.Peek(256)
	if bytes.HasPrefix(b, l.old) && (!l.inBody || l.isToolLine(b)) {
		_, _ = r.Discard(len(l.old))
		return l.new, false, nil
	}
	if !l.inBody && bytes.HasPrefix(b, columnLine) {
		if out := l.renameSequences(r); out != nil {
			return out, false, nil
		}
	}
	return nil, false, nil
}

// mysqlCreateWith is the only shape of recorded MariaDB/MySQL properties a
// restore accepts: the repository's bytes are not trusted to be snap's,
// and CreateWith is written into CREATE DATABASE as it is.
var mysqlCreateWith = regexp.MustCompile(`^CHARACTER SET [A-Za-z0-9_]+ COLLATE [A-Za-z0-9_]+$`)

// mysqlDatabaseProps reads the database's default character set and
// collation, which a dump of one database (no --databases, so no CREATE
// DATABASE) leaves out: a restore that creates the database gives them
// back (it was utf8mb4 whatever the database had been).
func (d *Database) mysqlDatabaseProps(ctx context.Context) (DatabaseProperties, error) {
	cw, err := d.mysqlCharset(ctx)
	if err != nil {
		return DatabaseProperties{}, err
	}
	return DatabaseProperties{CreateWith: cw, Statements: []string{}}, nil
}

// errOddCharset marks an answer about a database's defaults that is not a
// character set's and a collation's name.
var errOddCharset = errors.New("not a character set and a collation")

// errNoSchema is mysqlCharset's error when the server lists no such
// database to this user: it does not exist, or the user has no privilege
// on it. Restore takes it as any odd answer (errOddCharset).
var errNoSchema = fmt.Errorf("the server lists no such database to this user (%w)", errOddCharset)

// mysqlCharset reads the database's default character set and collation
// as "CHARACTER SET cs COLLATE coll". Their names are words: anything else
// is errOddCharset, and never written into a statement.
func (d *Database) mysqlCharset(ctx context.Context) (string, error) {
	out, err := d.mysqlQuery(ctx, "SELECT DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = "+mysqlString(d.Name)+";\n")
	if err != nil {
		return "", err
	}
	if out == "" {
		return "", errNoSchema
	}
	cs, coll, ok := strings.Cut(out, "\t")
	if !ok || !mysqlWord.MatchString(cs) || !mysqlWord.MatchString(coll) {
		return "", fmt.Errorf("unexpected answer %q from information_schema.SCHEMATA: %w", out, errOddCharset)
	}
	return "CHARACTER SET " + cs + " COLLATE " + coll, nil
}

// checkMySQLProps refuses recorded properties that are not what snap
// records for a MariaDB/MySQL database.
func checkMySQLProps(p *DatabaseProperties) error {
	if len(p.Statements) > 0 {
		return fmt.Errorf("%d statements, where snap records none", len(p.Statements))
	}
	if !mysqlCreateWith.MatchString(p.CreateWith) {
		return fmt.Errorf("create_with %q is not \"CHARACTER SET name COLLATE name\"", p.CreateWith)
	}
	return nil
}

// isUnknownCharset reports whether err is the client's report that the
// server knows no such character set (1115) or collation (1273), or no
// such pair (1253: a collation of another character set): MySQL 8's
// utf8mb4_0900_ai_ci restored into MariaDB.
func isUnknownCharset(err error) bool {
	return isMySQLError(err, 1273, 1115, 1253)
}

// mariadbDumpVersion matches the MariaDB release in mariadb-dump's
// version line ("mariadb-dump  Ver 10.19 Distrib 10.11.19-MariaDB, …").
var mariadbDumpVersion = regexp.MustCompile(`\bDistrib (\d+)\.(\d+)\.`)

// dumpsHistory reports whether the dump tool knows --dump-history
// (mariadb-dump of MariaDB 10.11 and later; never mysqldump).
func (p *Dump) dumpsHistory() bool {
	if p.Tool != "mariadb-dump" {
		return false
	}
	major, minor, ok := majorMinor(mariadbDumpVersion, p.Version)
	return ok && atLeast(major, minor, [2]int{10, 11})
}

// mysqlHistoryArgs says whether the dump should add --dump-history, which
// saves the history of system-versioned tables (without it, a restore has
// only their current rows). mariadb-dump fails the whole dump with it
// when a table has transaction-precise history, which it cannot dump:
// then the history is left out, and note says which tables lack it.
func (d *Database) mysqlHistoryArgs(ctx context.Context) (args []string, note string, err error) {
	where := "t.TABLE_SCHEMA = " + mysqlString(d.Name)
	if d.All {
		where = "t.TABLE_SCHEMA NOT IN ('mysql', 'information_schema', 'performance_schema', 'sys')"
	}
	// Transaction-precise tables have a BIGINT ROW START column; the
	// implicit row_start of timestamp versioning is not in COLUMNS.
	out, err := d.mysqlQuery(ctx, "SELECT t.TABLE_SCHEMA, t.TABLE_NAME, EXISTS (SELECT 1 FROM information_schema.COLUMNS c "+
		"WHERE c.TABLE_SCHEMA = t.TABLE_SCHEMA AND c.TABLE_NAME = t.TABLE_NAME AND c.GENERATION_EXPRESSION = 'ROW START' AND c.DATA_TYPE = 'bigint') "+
		"FROM information_schema.TABLES t WHERE t.TABLE_TYPE = 'SYSTEM VERSIONED' AND "+where+" ORDER BY 1, 2;\n")
	if err != nil || out == "" {
		return nil, "", err
	}
	var precise []string
	for _, line := range strings.Split(out, "\n") {
		f := strings.Split(line, "\t")
		if len(f) == 3 && f[2] == "1" {
			precise = append(precise, mysqlIdent(f[0])+"."+mysqlIdent(f[1]))
		}
	}
	if len(precise) > 0 {
		return nil, "the history of system-versioned tables is not saved, only their current rows: mariadb-dump cannot dump transaction-precise history, the kind these tables keep: " + strings.Join(precise, ", "), nil
	}
	return []string{"--dump-history"}, "", nil
}

// transactionalEngines keep their tables inside the consistent snapshot
// that --single-transaction takes.
const transactionalEngines = "'InnoDB', 'ROCKSDB', 'TokuDB'"

// mysqlNonTransactional returns a note naming the tables of the dump that
// --single-transaction does not cover (MyISAM, Aria, MEMORY, …): the dump
// reads them one after another while their writers go on, so rows written
// together may be in one table and not the other ("" when there are none).
// The system schemas are left out: a whole-server dump would warn of
// MariaDB's own Aria tables every night. Found by an exploratory test:
// two MyISAM tables that an application kept equal in count came back
// with counts 16 apart, and usage.md had said every dump is consistent.
func (d *Database) mysqlNonTransactional(ctx context.Context) (string, error) {
	where := "TABLE_SCHEMA = " + mysqlString(d.Name)
	if d.All {
		where = "TABLE_SCHEMA NOT IN ('mysql', 'information_schema', 'performance_schema', 'sys')"
	}
	out, err := d.mysqlQuery(ctx, "SELECT TABLE_SCHEMA, TABLE_NAME, ENGINE FROM information_schema.TABLES WHERE TABLE_TYPE IN ('BASE TABLE', 'SYSTEM VERSIONED') "+
		"AND ENGINE IS NOT NULL AND ENGINE NOT IN ("+transactionalEngines+") AND "+where+" ORDER BY 1, 2;\n")
	if err != nil || out == "" {
		return "", err
	}
	var names []string
	engines := map[string]bool{}
	lines := strings.Split(out, "\n")
	for _, line := range lines {
		f := strings.Split(line, "\t")
		if len(f) != 3 {
			continue
		}
		engines[f[2]] = true
		if len(names) < 5 {
			name := mysqlIdent(f[1])
			if d.All {
				name = mysqlIdent(f[0]) + "." + name
			}
			names = append(names, name)
		}
	}
	if len(names) == 0 {
		return "", nil
	}
	list := strings.Join(names, ", ")
	if len(lines) > len(names) {
		list += fmt.Sprintf(" and %d more", len(lines)-len(names))
	}
	kinds := slices.Sorted(maps.Keys(engines))
	return fmt.Sprintf("tables %s (%s) are not transactional: the dump reads them one after another, outside the consistent snapshot it takes of InnoDB tables, so rows written meanwhile may be in one and not another; stop their writers in a pre hook, or convert them to InnoDB, for a consistent dump", list, strings.Join(kinds, ", ")), nil
}

// serverWarnings counts the warnings the MariaDB/MySQL client prints for
// the statements of a dump (--show-warnings), keeping the first few.
type serverWarnings struct {
	n     int
	first []string
}

// filter returns a Stdout for the client that takes its warning lines
// and passes the rest to out.
func (w *serverWarnings) filter(out func(string)) func(string) {
	return func(line string) {
		// An event restored while the event scheduler is off says so:
		// nothing was changed, the event runs once it is on. Counted, it
		// sent every restore of a database with events off to compare
		// values (found by an exploratory test); passed on as it is.
		// A generated column's value in the dump is ignored and computed
		// again (1906): every restore of such a table warned of values
		// changed (found by an exploratory test).
		if strings.HasPrefix(line, "Warning (Code ") && !strings.Contains(line, "Event scheduler is switched off") && !strings.HasPrefix(line, "Warning (Code 1906)") {
			w.n++
			if len(w.first) < 3 {
				w.first = append(w.first, line)
			}
			return
		}
		if out != nil {
			out(line)
		}
	}
}

func (w *serverWarnings) message(d *Database) string {
	more := ""
	if w.n > len(w.first) {
		more = fmt.Sprintf("; and %d more", w.n-len(w.first))
	}
	times := fmt.Sprintf("%d times", w.n)
	if w.n == 1 {
		times = "once"
	}
	return fmt.Sprintf("%s: the server warned %s as it loaded the dump, and may have stored values cut, emptied or changed (%s%s): compare with the source; a column whose definition the server cannot hold as written (an emoji in an ENUM of a latin1 database) loses its values the same way there", d, times, strings.Join(w.first, "; "), more)
}
