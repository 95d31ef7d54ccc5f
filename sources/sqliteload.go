package sources

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// A SQLite dump is loaded by SQLite's library inside snap (modernc.org/sqlite,
// SQLite translated to Go), not by the sqlite3 shell. The shell adds
// functions and tables of its own that reach beyond the database: edit()
// runs a program, readfile() and fsdir read any file, writefile() writes
// one. Its safe mode shuts them for the statements it reads, but not for
// what the schema runs (a DEFAULT, a CHECK, a trigger), and five red-team
// rounds in a row got one of them run through the dump screen
// (sqlitescreen.go), two as root commands through edit(). The library has
// none of them: a dump that got past the screen can reach no further than
// the database it is loaded into. The screen stays, as the first wall: it
// passes only what .dump writes.
//
// What the library itself has that reaches further is shut here:
// load_extension (off unless a program turns it on; the authorizer refuses
// the call besides), ATTACH, which creates and writes any file, and VACUUM
// INTO, which writes one (the authorizer refuses both, the limit of
// attached databases is 0, and the screen never passes them), and PRAGMAs
// other than those .dump writes (temp_store_directory names where
// temporary files go).

// sqliteLoadAuthorizer refuses what reaches beyond the database being
// loaded. SQLite asks it as each statement is compiled, a trigger's
// statements with the one that fires it.
func sqliteLoadAuthorizer(action sqlite.AuthorizerActionCode, arg1, arg2, _, _ string) sqlite.AuthorizerReturnCode {
	switch action {
	case sqlite.AuthAttach, sqlite.AuthDetach:
		return sqlite.AuthorizerDeny
	case sqlite.AuthFunction:
		if strings.EqualFold(arg2, "load_extension") || strings.EqualFold(arg2, "fts3_tokenizer") {
			return sqlite.AuthorizerDeny
		}
	case sqlite.AuthPragma:
		name := strings.ToLower(arg1)
		if !sqliteDumpPragmas[name] {
			return sqlite.AuthorizerDeny
		}
		if words, ok := sqlitePragmaWords[name]; ok && arg2 != "" && !slices.Contains(words, strings.ToLower(arg2)) {
			return sqlite.AuthorizerDeny
		}
	}
	return sqlite.AuthorizerOK
}

// sqliteLoadDriver is the SQLite driver that loads dumps: with REGEXP,
// which SQLite leaves to the application and the sqlite3 shell adds, so
// that a table whose CHECK uses it loads as it did through the shell (a
// schema names its functions when it is made). Made once: the driver
// keeps what is registered for the life of the process.
var sqliteLoadDriver = sync.OnceValue(func() *sqlite.Driver {
	d := &sqlite.Driver{}
	var mu sync.Mutex
	compiled := map[string]*regexp.Regexp{}
	d.MustRegisterDeterministicScalarFunction("regexp", 2, func(_ *sqlite.FunctionContext, args []driver.Value) (driver.Value, error) {
		if args[0] == nil || args[1] == nil {
			return nil, nil
		}
		pattern, text := sqliteText(args[0]), sqliteText(args[1])
		mu.Lock()
		re, ok := compiled[pattern]
		if !ok {
			var err error
			if re, err = regexp.Compile(pattern); err != nil {
				mu.Unlock()
				return nil, err
			}
			if len(compiled) < 64 {
				compiled[pattern] = re
			}
		}
		mu.Unlock()
		if re.MatchString(text) {
			return int64(1), nil
		}
		return int64(0), nil
	})
	return d
})

// sqliteText is a value other than NULL that SQLite passed to a function,
// as text.
func sqliteText(v driver.Value) string {
	switch v := v.(type) {
	case string:
		return v
	case []byte:
		return string(v)
	}
	return fmt.Sprint(v)
}

// openLoaded opens the database file being loaded with the loader's
// driver; mode=rw: never a database of another name (the URI is the
// file's path, percent-encoded).
func openLoaded(file string) *sql.DB {
	return sql.OpenDB(sqliteConnector{sqliteLoadDriver(), sqliteURI(file, "rw")})
}

// sqliteConnector opens dsn with a driver of its own.
type sqliteConnector struct {
	d   *sqlite.Driver
	dsn string
}

func (c sqliteConnector) Connect(context.Context) (driver.Conn, error) { return c.d.Open(c.dsn) }
func (c sqliteConnector) Driver() driver.Driver                        { return c.d }

// sqliteStatements gives a dump's statements one at a time, with the line
// of the dump each ends on, and io.EOF after the last.
type sqliteStatements func() (stmt string, line int, err error)

// sqliteLoad loads statements into the database file, which must exist
// (an empty file is an empty database). A failed statement ends the load
// with an error naming its line; what was loaded stays in file, for the
// caller to remove.
func sqliteLoad(ctx context.Context, file string, next sqliteStatements) error {
	done := make(chan error, 1)
	go func() { done <- loadStatements(ctx, file, next) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	// SQLite looks for the interrupt between the steps of a statement,
	// not inside a function's call, which a crafted dump can make last
	// for hours (the screen's forms of replace() are there for that; a
	// schema's expressions are the dump's). Such a load is left to run
	// on in its goroutine, into the file the caller removes, until the
	// process ends, soon after.
	select {
	case err := <-done:
		return err
	case <-time.After(sqliteAbandonAfter):
		return fmt.Errorf("%w (SQLite did not stop within %v, so the load was abandoned)", ctx.Err(), sqliteAbandonAfter)
	}
}

// sqliteAbandonAfter is how long a stopped load may take to stop.
const sqliteAbandonAfter = 3 * time.Second

// loadStatements is sqliteLoad's work.
func loadStatements(ctx context.Context, file string, next sqliteStatements) error {
	db := openLoaded(file)
	defer db.Close()
	next, stop := readAhead(next)
	defer stop()
	conn, err := db.Conn(ctx)
	if err != nil {
		return sqliteLoadError(err)
	}
	defer conn.Close()
	err = conn.Raw(func(dc any) error {
		a, ok := dc.(sqlite.AuthorizerRegisterer)
		if !ok {
			return errors.New("the SQLite library has no authorizer")
		}
		return a.RegisterAuthorizer(sqliteLoadAuthorizer)
	})
	if err != nil {
		return err
	}
	// No database may be attached (VACUUM INTO attaches its file too):
	// a second lock besides the authorizer's.
	if _, err := sqlite.Limit(conn, sqlite3.SQLITE_LIMIT_ATTACHED, 0); err != nil {
		return err
	}
	// CHECK constraints are checked as rows load, as sqlite3 did: a row
	// that breaks one fails the load (left unchecked, a crafted dump's
	// row made a database that failed integrity_check: a red-team test).
	for {
		stmt, line, err := next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		if _, err := conn.ExecContext(ctx, stmt); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			err = sqliteLoadError(err)
			if m := err.Error(); strings.Contains(m, "no such function") || strings.Contains(m, "no such collation sequence") {
				// The shell adds the uint collation and sha3(),
				// an application its own.
				err = fmt.Errorf("%w: the schema uses a function or collation that SQLite in snap lacks; if the repository is yours, write the dump out with 'snap dump' and load it with sqlite3 (or with the application's own SQLite)", err)
			}
			return fmt.Errorf("line %d of the dump: %w", line, err)
		}
	}
	// A dump that ends inside its transaction (the screen refuses one)
	// would be rolled back at Close, and restored as an empty database.
	if _, err := conn.ExecContext(ctx, "BEGIN"); err != nil {
		return fmt.Errorf("the dump ends inside its transaction, without its COMMIT (%w)", sqliteLoadError(err))
	}
	if _, err := conn.ExecContext(ctx, "COMMIT"); err != nil {
		return sqliteLoadError(err)
	}
	if err := dropEmptyStat4(ctx, conn); err != nil {
		return sqliteLoadError(err)
	}
	// Close checkpoints a WAL database into its file and removes the
	// WAL: the caller syncs and renames the file alone.
	if err := conn.Close(); err != nil {
		return sqliteLoadError(err)
	}
	if err := db.Close(); err != nil {
		return sqliteLoadError(err)
	}
	return checkSQLiteSchema(ctx, file)
}

// sqliteSetWAL puts the loaded database in WAL mode, as the dump asked.
func sqliteSetWAL(ctx context.Context, file string) error {
	db := openLoaded(file)
	defer db.Close()
	var mode string
	if err := db.QueryRowContext(ctx, "PRAGMA journal_mode=wal").Scan(&mode); err != nil {
		return sqliteLoadError(err)
	}
	if mode != "wal" {
		return fmt.Errorf("SQLite did not put the loaded database in WAL mode (%s)", mode)
	}
	return sqliteLoadError(db.Close())
}

// checkSQLiteSchema reads the schema of the loaded database afresh: what
// the dump wrote into it through writable_schema is read only by the next
// connection (a red-team test's virtual table named like a table loaded
// without an error, and no connection could open the database after).
func checkSQLiteSchema(ctx context.Context, file string) error {
	db := openLoaded(file)
	defer db.Close()
	var n int
	if err := db.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_schema").Scan(&n); err != nil {
		return fmt.Errorf("the loaded database does not open: %w", sqliteLoadError(err))
	}
	return sqliteLoadError(db.Close())
}

// readAhead runs next in a goroutine of its own, up to a few batches of
// statements ahead of the load: screening a dump takes about as long as
// loading it, and the two then share two cores. stop ends the goroutine,
// and returns once it no longer reads the dump.
func readAhead(next sqliteStatements) (ahead sqliteStatements, stop func()) {
	type statement struct {
		text string
		line int
	}
	type batch struct {
		stmts []statement
		err   error // after the statements: io.EOF after the last
	}
	ch := make(chan batch, 2)
	done := make(chan struct{})
	go func() {
		defer close(ch)
		for {
			var b batch
			size := 0
			// At most 256 statements or 1 MiB a batch: a dump's
			// large values are held a batch or two at a time.
			for len(b.stmts) < 256 && size < 1<<20 && b.err == nil {
				text, line, err := next()
				if err != nil {
					b.err = err
				} else {
					b.stmts = append(b.stmts, statement{text, line})
					size += len(text)
				}
			}
			select {
			case ch <- b:
			case <-done:
				return
			}
			if b.err != nil {
				return
			}
		}
	}()
	var cur batch
	i := 0
	ahead = func() (string, int, error) {
		for i == len(cur.stmts) {
			if cur.err != nil {
				return "", 0, cur.err
			}
			b, ok := <-ch
			if !ok {
				return "", 0, io.ErrUnexpectedEOF // stopped
			}
			cur, i = b, 0
		}
		i++
		return cur.stmts[i-1].text, cur.stmts[i-1].line, nil
	}
	stop = func() {
		close(done)
		for range ch {
		}
	}
	return ahead, stop
}

// dropEmptyStat4 drops the empty sqlite_stat4 that the dump's ANALYZE made:
// the library here keeps one (SQLITE_ENABLE_STAT4), a Debian sqlite3 does
// not, and without a row it tells the query planner nothing. The restored
// database then dumps as the one dumped did.
func dropEmptyStat4(ctx context.Context, conn *sql.Conn) error {
	var n int
	err := conn.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_schema WHERE name = 'sqlite_stat4'").Scan(&n)
	if err != nil || n == 0 {
		return err
	}
	if err := conn.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_stat4").Scan(&n); err != nil || n > 0 {
		return err
	}
	_, err = conn.ExecContext(ctx, "DROP TABLE sqlite_stat4")
	return err
}

// sqliteLoadError drops the driver's prefix ("SQL logic error: ") and
// result code from SQLite's message, which says what was wrong.
func sqliteLoadError(err error) error {
	var se *sqlite.Error
	if err == nil || !errors.As(err, &se) {
		return err
	}
	msg := se.Error()
	if _, rest, ok := strings.Cut(msg, ": "); ok {
		msg = rest
	}
	msg = strings.TrimSuffix(msg, fmt.Sprintf(" (%d)", se.Code()))
	return fmt.Errorf("SQLite: %s", msg)
}
