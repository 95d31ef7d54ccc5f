package sources

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"strings"
)

// sqlite3's .dump writes a TEXT value as C text, which ends at the first
// NUL: a value 'ab\0cd' is dumped as 'ab', without a word, and a restore
// loses the rest. SQLite itself keeps such values whole (an application
// that binds a string with its length stores it so). The dump cannot show
// what it left out, so after it the database is read once more, in
// process, for TEXT values that hold a NUL; any found is reported with
// where they are, and the snapshot is saved all the same.

// Check reports what the dump lost on the way, once it has ended well: for
// SQLite, TEXT values holding a NUL character, which sqlite3's .dump cuts
// there (nil when none, for other kinds, and when the file cannot be read
// again: the dump itself read it).
func (p *Dump) Check(ctx context.Context) error {
	if p.nulCheck == nil {
		return nil
	}
	var res nulCheckResult
	select {
	case res = <-p.nulCheck:
	case <-ctx.Done():
		return ctx.Err()
	}
	if res.err != nil || len(res.cut) == 0 {
		return nil
	}
	return fmt.Errorf("%s holds TEXT values with a NUL character (%s), which sqlite3's .dump cuts at the NUL: restored, they end there; store such values as BLOBs (CAST(column AS BLOB)), or back the database file up as a file with the application stopped", p.DB, strings.Join(res.cut, ", "))
}

type nulCheckResult struct {
	cut []string
	err error
}

// startNULCheck reads the database for TEXT values with a NUL while the
// dump runs, on the other core (it took a third of the time of a dump of
// 500,000 rows run after it); stop ends it early, for a dump that failed.
func (p *Dump) startNULCheck(ctx context.Context) (stop func()) {
	ctx, stop = context.WithCancel(ctx)
	ch := make(chan nulCheckResult, 1)
	p.nulCheck = ch
	go func() {
		cut, err := sqliteTextWithNUL(ctx, p.DB.File)
		ch <- nulCheckResult{cut, err}
	}()
	return stop
}

// sqliteTextWithNUL returns, for each column of the database file's tables
// with TEXT values that hold a NUL, "table.column: N values" (at most five
// columns, then how many more).
func sqliteTextWithNUL(ctx context.Context, file string) ([]string, error) {
	// Read-only, and by the file's name alone (the URI is its path,
	// percent-encoded), with the loader's driver: the same SQLite as the
	// restore. A writer's lock is waited for as the dump waits.
	uri := (&url.URL{Scheme: "file", Path: file, RawQuery: "mode=ro"}).String()
	db := sql.OpenDB(sqliteConnector{sqliteLoadDriver(), uri})
	defer db.Close()
	db.SetMaxOpenConns(1)
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, fmt.Sprintf("PRAGMA busy_timeout=%d", sqliteLockTimeout.Milliseconds())); err != nil {
		return nil, err
	}
	// The tables .dump writes rows of: not SQLite's own, not virtual ones
	// (their rows are in their shadow tables, which are listed).
	rows, err := conn.QueryContext(ctx, `SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite\_%' ESCAPE '\' AND sql NOT LIKE 'CREATE VIRTUAL TABLE%'`)
	if err != nil {
		return nil, err
	}
	var tables []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			rows.Close()
			return nil, err
		}
		tables = append(tables, name)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	var found []string
	more := 0
	for _, table := range tables {
		cols, err := sqliteColumns(ctx, conn, table)
		if err != nil {
			return nil, err
		}
		if len(cols) == 0 {
			continue
		}
		// One scan of the table counts every column's. CASE looks into
		// TEXT values only: instr would turn every number into text (AND
		// does not spare it), which took three times as long.
		sums := make([]string, len(cols))
		for i, c := range cols {
			q := sqliteQuote(c)
			sums[i] = fmt.Sprintf("total(CASE WHEN typeof(%s) = 'text' THEN instr(%s, char(0)) > 0 END)", q, q)
		}
		counts := make([]float64, len(cols))
		ptrs := make([]any, len(cols))
		for i := range counts {
			ptrs[i] = &counts[i]
		}
		if err := conn.QueryRowContext(ctx, "SELECT "+strings.Join(sums, ", ")+" FROM "+sqliteQuote(table)).Scan(ptrs...); err != nil {
			return nil, err
		}
		for i, n := range counts {
			switch {
			case n == 0:
			case len(found) < 5:
				what := "values"
				if n == 1 {
					what = "value"
				}
				found = append(found, fmt.Sprintf("%s.%s: %d %s", table, cols[i], int64(n), what))
			default:
				more++
			}
		}
	}
	if more > 0 {
		found = append(found, fmt.Sprintf("and %d more columns", more))
	}
	return found, nil
}

// sqliteColumns lists the columns of table that .dump writes (not the
// generated ones, which it leaves to the schema).
func sqliteColumns(ctx context.Context, conn *sql.Conn, table string) ([]string, error) {
	rows, err := conn.QueryContext(ctx, "SELECT name FROM pragma_table_info(?)", table)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var cols []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return nil, err
		}
		cols = append(cols, name)
	}
	return cols, rows.Err()
}

// sqliteQuote quotes an SQLite identifier.
func sqliteQuote(name string) string {
	return `"` + strings.ReplaceAll(name, `"`, `""`) + `"`
}
