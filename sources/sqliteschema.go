package sources

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/snap-backup/snap/sources/safepath"
)

// A dump that sqlite3 wrote whole may still not load in snap's restore: the
// schema may name a collation, a function or a module that the
// application registers in its own SQLite and snap's lacks (Anki's
// unicase collation), or hold something the restore's screen refuses. Such
// a dump is found at the restore, too late. So the dump's script also
// writes the schema, in the dump's transaction and in .dump's order, to a
// file of snap's own (sqliteSchemaScript), and once the dump has ended
// the create puts that schema, as a dump of its own, through the restore's
// screen and loader, into an empty database in a private directory
// (sqliteSchemaProblem); what stops it is a warning of the create, whose
// snapshot holds the dump all the same. Virtual
// tables and their shadow tables are left out: .dump writes those through
// writable_schema, which an excerpt cannot stand in for.

// sqliteSchemaFile is the name of the schema's file in the check's
// directory.
const sqliteSchemaFile = "schema.sql"

// sqliteSchemaScript writes the schema's statements to dir's schema file,
// as .dump writes them: tables first, then indexes, triggers and views, in
// the order they were made; a statement whose text may end in a -- comment
// (SQLite keeps one that follows the statement) gets its ';' on a line of
// its own, as .dump gives it (a tester's index "… -- lookup by x" made a
// false warning).
func sqliteSchemaScript(dir string) string {
	return ".output '" + filepath.Join(dir, sqliteSchemaFile) + `'
SELECT s.sql || CASE WHEN s.sql GLOB '*--*' THEN char(10) || ';' ELSE ';' END FROM sqlite_schema AS s
WHERE s.sql IS NOT NULL AND s.name NOT LIKE 'sqlite\_%' ESCAPE '\' AND s.sql NOT LIKE 'CREATE VIRTUAL TABLE%'
  AND NOT EXISTS (SELECT 1 FROM sqlite_schema AS v WHERE v.sql LIKE 'CREATE VIRTUAL TABLE%' AND (s.tbl_name = v.name OR substr(s.tbl_name, 1, length(v.name) + 1) = v.name || '_'))
ORDER BY s.type <> 'table', s.rowid;
.output
`
}

// sqliteMaxSchema bounds the schema file the create tries (a schema of
// tens of thousands of tables is a few MB).
const sqliteMaxSchema = 64 << 20

// readSchemaFile returns the schema the dump's script wrote to dir (nil
// when there is none, or too much).
func readSchemaFile(dir string) []byte {
	path := filepath.Join(dir, sqliteSchemaFile)
	if fi, err := os.Stat(path); err != nil || fi.Size() > sqliteMaxSchema {
		return nil
	}
	schema, _ := os.ReadFile(path)
	return schema
}

// sqliteSchemaProblem tries schema (the statements sqliteSchemaScript
// wrote) as a restore would load it, in a private directory, and says what
// would stop that restore ("" when nothing, or when it could not be
// tried).
func sqliteSchemaProblem(ctx context.Context, schema []byte) string {
	if len(schema) == 0 {
		return ""
	}
	dir, err := safepath.PrivateDir("snap-sqlite-schema-")
	if err != nil {
		return ""
	}
	defer os.RemoveAll(dir)
	db := filepath.Join(dir, "schema.db")
	f, err := os.OpenFile(db, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return ""
	}
	f.Close()
	dump := "PRAGMA foreign_keys=OFF;\nBEGIN TRANSACTION;\n" + string(schema) + "COMMIT;\n"
	if err := sqliteLoad(ctx, db, newSQLiteScreen(strings.NewReader(dump)).next); err != nil && ctx.Err() == nil {
		// The line is the excerpt's, not the dump's; and the screen's
		// words are for a dump someone else made, not this one.
		msg := dumpLine.ReplaceAllString(err.Error(), "")
		if errors.Is(err, errGoLine) {
			// Not a false alarm: refused on purpose (see sqlitescreen.go),
			// and the admin can mend it (found by an exploratory test:
			// a view "SELECT a\n/\nb").
			return "snap restore --db would not load this database's schema: it holds a line that reads GO or / alone (in a view's, trigger's or table's text), which sqlite3's shell takes for the ';' that ends a statement, so snap's restore refuses it: write that statement again without such a line (put the / or GO on the line before), or back the database file up as a file, with the application stopped; the dump is saved all the same"
		}
		for _, theirs := range []string{": " + errNotPlainDump.Error(), "; " + sqliteMadeElsewhere, ": " + sqliteMadeElsewhere} {
			if i := strings.Index(msg, theirs); i >= 0 {
				msg = msg[:i] + ": the restore lets through only what sqlite3's .dump writes, and takes this for something else (a false alarm of snap's: please report it)"
			}
		}
		return "snap restore --db would not load this database's schema: " + msg +
			"; the dump is saved all the same (or back the database file up as a file, with the application stopped)"
	}
	return ""
}

// dumpLine is how the screen's and the loader's errors begin.
var dumpLine = regexp.MustCompile(`^line \d+ of the dump: `)
