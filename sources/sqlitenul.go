package sources

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"unicode"

	"github.com/snap-backup/snap/sources/safepath"
)

// sqlite3's .dump writes a TEXT value as C text, which ends at the first
// NUL: a value 'ab\0cd' is dumped as 'ab', without a word, and a restore
// loses the rest. SQLite itself keeps such values whole (an application
// that binds a string with its length stores it so). The dump cannot show
// what it left out, so the dump's script ends with a check, in the same
// read transaction: for each table .dump wrote rows of, one scan counts
// the TEXT values of each column that hold a NUL, and a line for a table
// with any ends the dump, as an SQL comment (nulMarker). The create names
// them (Dump.Check) and saves the snapshot all the same.
//
// The check's statements depend on the tables and their columns, which
// SQL cannot name from a query: the shell writes them, from the schema it
// reads in the transaction, to a file of snap's own (.output), and then
// runs that file (.read). A first version read the database again, on a
// connection of its own beside the dump; an exploratory test found that a
// writer waiting for the dump's lock then held that connection up to the
// lock timeout, and that in rollback-journal mode the two readers kept
// writers out longer than the dump alone.

// sqliteDumpDone is the file the dump's script makes in the checks'
// directory once .dump has returned, before the checks: a failure of
// sqlite3 after it is one of the checks. A file of snap's own directory,
// not a line of the dump: a line could be forged by a comment in the
// schema, which .dump copies (a tester's did, and sqlite3 killed halfway
// through the rows was taken for a failed check and the cut dump saved).
const sqliteDumpDone = "dump-done"

// nulMarker begins each line the check writes: the table's rowid in
// sqlite_schema, then " CID=COUNT" for each column with such values.
const nulMarker = "-- snap: text with NUL, table "

// sqliteNULCheck is the end of the dump's script that writes the check's
// lines, its statements written to and read from checkFile. A statement
// takes up to 100 columns (one expression each: SQLite's limits on an
// expression's depth and a select's columns), so a wider table is
// scanned once for every 100 of its columns. Virtual tables' rows are in
// their shadow tables, which are checked; SQLite's own tables hold none
// of the application's text. A name with a control character is passed
// over: the shell drops a carriage return before a line feed as it reads
// .read's file (a red-team test's table "a\r\nb" failed the whole dump),
// and from 3.50 writes control characters as ^X in list mode.
func sqliteNULCheck(checkFile string) string {
	return ".output '" + checkFile + `'
SELECT 'SELECT ''` + nulMarker + `' || s.rowid || ':'' || x FROM (SELECT ' ||
  group_concat('(CASE WHEN n' || c.cid || ' > 0 THEN '' ' || c.cid || '='' || n' || c.cid || ' ELSE '''' END)', ' || ') ||
  ' AS x FROM (SELECT ' ||
  group_concat('sum(CASE WHEN typeof("' || replace(c.name, '"', '""') || '") = ''text'' THEN instr("' || replace(c.name, '"', '""') || '", char(0)) > 0 END) AS n' || c.cid, ', ') ||
  ' FROM "' || replace(s.name, '"', '""') || '")) WHERE x <> '''';'
FROM sqlite_schema AS s JOIN pragma_table_info(s.name) AS c
WHERE s.type = 'table' AND s.name NOT LIKE 'sqlite\_%' ESCAPE '\' AND s.sql NOT LIKE 'CREATE VIRTUAL TABLE%'
  AND s.name NOT GLOB ` + sqliteControlClass + ` AND c.name NOT GLOB ` + sqliteControlClass + `
GROUP BY s.rowid, c.cid / 100;
.output
.read '` + checkFile + `'
`
}

// sqliteControlClass is a GLOB pattern, in SQL, of a name that holds a
// control character.
var sqliteControlClass = func() string {
	codes := make([]string, 0, 32)
	for c := 1; c < 32; c++ {
		codes = append(codes, strconv.Itoa(c))
	}
	return "('*[' || char(" + strings.Join(codes, ",") + ",127) || ']*')"
}()

// startSQLiteChecks makes the directory of snap's own that the checks at
// the end of an SQLite dump go through (sqliteNULCheck,
// sqliteSchemaScript), and returns it with what takes their findings and
// removes it once the dump has ended. Without one the dump goes on
// unchecked, with a note ("", nil).
func (p *Dump) startSQLiteChecks(notef func(string, ...any)) (dir string, done func(tail []byte, err error) error) {
	dir, err := safepath.PrivateDirWhere("snap-sqlite-check-", dotCommandPath)
	if err != nil {
		notef("the dump is not checked for TEXT values with a NUL character, which sqlite3's .dump cuts there, nor its schema tried as a restore would load it: %v", err)
		return "", nil
	}
	return dir, func(tail []byte, err error) error {
		defer os.RemoveAll(dir)
		var ce *CommandError
		if _, serr := os.Stat(filepath.Join(dir, sqliteDumpDone)); serr == nil && errors.As(err, &ce) && bytes.Contains(tail, []byte("\nCOMMIT;\n")) {
			// .dump returned, with its COMMIT; what failed came after.
			p.checkFailed, err = err.Error(), nil
		}
		if err == nil {
			p.nulFound, p.nulTruncated = parseNULCheck(tail)
			p.schema = readSchemaFile(dir)
		}
		return err
	}
}

// dotCommandPath reports whether path can stand, in single quotes, as an
// argument of the shell's dot-commands.
func dotCommandPath(path string) bool {
	return !strings.ContainsFunc(path, func(r rune) bool { return r == '\'' || r < ' ' || r == 0x7f })
}

// nulFinding is what the check found in one table.
type nulFinding struct {
	table  int64           // its rowid in sqlite_schema
	counts map[int64]int64 // column id → values with a NUL
}

var nulLine = regexp.MustCompile(`^` + regexp.QuoteMeta(nulMarker) + `(\d+):((?: \d+=\d+)+)$`)

// parseNULCheck reads the check's lines at the end of a dump (tail): those
// after .dump's last line, its COMMIT. A line of the schema's own that
// looks like one (a comment in a trigger) comes before it. truncated: the
// tail holds the check's lines but not that COMMIT, which they pushed out
// of it.
func parseNULCheck(tail []byte) (found []nulFinding, truncated bool) {
	i := bytes.LastIndex(tail, []byte("\nCOMMIT;\n"))
	if i < 0 {
		return nil, bytes.Contains(tail, []byte("\n"+nulMarker))
	}
	for _, line := range strings.Split(string(tail[i+len("\nCOMMIT;\n"):]), "\n") {
		m := nulLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		table, _ := strconv.ParseInt(m[1], 10, 64)
		f := nulFinding{table: table, counts: map[int64]int64{}}
		for _, pair := range strings.Fields(m[2]) {
			cid, n, _ := strings.Cut(pair, "=")
			c, err1 := strconv.ParseInt(cid, 10, 64)
			v, err2 := strconv.ParseInt(n, 10, 64)
			if err1 == nil && err2 == nil {
				f.counts[c] = v
			}
		}
		found = append(found, f)
	}
	return found, false
}

// sqliteCheck is Check for SQLite: TEXT values holding a NUL character,
// which sqlite3's .dump cuts there (err), and a schema snap's loader
// cannot load (sqliteSchemaProblem; warning).
func (p *Dump) sqliteCheck(ctx context.Context) (warning string, err error) {
	if p.checkFailed != "" {
		// The schema's file may be cut short too: not tried.
		warning = "the dump is whole, but its checks (TEXT values with a NUL, which .dump cuts; the schema as a restore loads it) did not run to their end: " + p.checkFailed
	} else {
		warning = sqliteSchemaProblem(ctx, p.schema)
	}
	if len(p.nulFound) == 0 && !p.nulTruncated {
		return warning, nil
	}
	names := sqliteNULNames(ctx, p.DB.File, p.nulFound)
	if p.nulTruncated {
		names = append(names, "in more columns than the check's lines that snap keeps name")
	}
	return warning, fmt.Errorf("%s holds TEXT values with a NUL character (%s), which sqlite3's .dump cuts at the NUL: restored, they end there; store such values as BLOBs (CAST(column AS BLOB)), or back the database file up as a file with the application stopped", p.DB, strings.Join(names, ", "))
}

// sqliteNULNames names the columns of found, "table.column: N values" (at
// most five, then how many more), reading the names from the database's
// schema (read-only, with the loader's SQLite): the check's lines give
// numbers. A table or column that cannot be named (the schema changed
// since) is given by its number.
func sqliteNULNames(ctx context.Context, file string, found []nulFinding) []string {
	db := sql.OpenDB(sqliteConnector{sqliteLoadDriver(), sqliteURI(file, "ro")})
	defer db.Close()
	var out []string
	more := 0
	for _, f := range found {
		table := fmt.Sprintf("table #%d", f.table)
		var name string
		if err := db.QueryRowContext(ctx, "SELECT name FROM sqlite_schema WHERE rowid = ?", f.table).Scan(&name); err == nil {
			table = sqliteShowName(name)
		}
		cols := map[int64]string{}
		if rows, err := db.QueryContext(ctx, "SELECT cid, name FROM pragma_table_info(?)", name); err == nil {
			for rows.Next() {
				var cid int64
				var col string
				if rows.Scan(&cid, &col) == nil {
					cols[cid] = sqliteShowName(col)
				}
			}
			rows.Close()
		}
		for cid := int64(0); len(f.counts) > 0; cid++ {
			n, ok := f.counts[cid]
			if !ok {
				continue
			}
			delete(f.counts, cid)
			if len(out) == 5 {
				more++
				continue
			}
			col, ok := cols[cid]
			if !ok {
				col = fmt.Sprintf("column #%d", cid)
			}
			what := "values"
			if n == 1 {
				what = "value"
			}
			out = append(out, fmt.Sprintf("%s.%s: %d %s", table, col, n, what))
		}
	}
	if more > 0 {
		out = append(out, fmt.Sprintf("and %d more columns", more))
	}
	return out
}

// sqliteShowName is a table's or column's name as a message shows it:
// quoted as SQL quotes it when it holds more than letters, digits and _,
// with Go's escapes when it holds control characters (a message is one
// line).
func sqliteShowName(name string) string {
	if name != "" && !strings.ContainsFunc(name, func(r rune) bool {
		return !(r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z')
	}) {
		return name
	}
	if strings.ContainsFunc(name, unicode.IsControl) {
		return strconv.Quote(name)
	}
	return `"` + strings.ReplaceAll(name, `"`, `""`) + `"`
}
