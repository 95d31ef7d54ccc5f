package sources

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
)

// A dump comes from the repository, which whoever may write it (a
// compromised backup server, a leaked bucket's credentials) can fill with a
// dump of their own making. The clients that load dumps run more than SQL:
// sqlite3's .shell and psql's \! run shell commands, .output and \o write
// files, ATTACH and \copy reach other files, all as the user who restores
// (root, often). So a dump is loaded with them shut off: sqlite3 in its
// safe mode (-safe, 3.37 and later), psql in restricted mode (\restrict,
// since 13.22, 14.19, 15.14, 16.10 and 17.6), where it refuses every
// backslash command. A client too old for either is refused rather than
// trusted (found by an exploratory test: a crafted dump ran `id` as root
// through both). MariaDB's client is run with --binary-mode, which refuses
// its shell command, and --local-infile=0. sqlite3's safe mode lets .trace
// write any file (found in review): a dump whose line starts with a dot,
// which the shell would take for a command, is refused before sqlite3
// sees it, and so is one that names a function of the shell that reads
// files, which safe mode allows (sqliteScreen).

// sqliteSafeMin is the first sqlite3 with -safe.
var sqliteSafeMin = [2]int{3, 37}

// psqlRestrictMin is, for each major version of psql, the first minor
// release with \restrict; majors after the last listed have it.
var psqlRestrictMin = map[int]int{13: 22, 14: 19, 15: 14, 16: 10, 17: 6}

var versionNumber = regexp.MustCompile(`(\d+)\.(\d+)`)

// clientVersion returns the major and minor version a client's --version
// line gives ("psql (PostgreSQL) 15.20 (Debian …)", "3.40.1 2022-12-28 …").
func clientVersion(ctx context.Context, tool string) (major, minor int, line string, ok bool) {
	line = ToolVersion(ctx, tool)
	major, minor, ok = majorMinor(versionNumber, line)
	return major, minor, line, ok
}

// majorMinor returns the numbers that the first two groups of re match in
// line.
func majorMinor(re *regexp.Regexp, line string) (major, minor int, ok bool) {
	m := re.FindStringSubmatch(line)
	if m == nil {
		return 0, 0, false
	}
	major, _ = strconv.Atoi(m[1])
	minor, _ = strconv.Atoi(m[2])
	return major, minor, true
}

// atLeast reports whether version major.minor is want[0].want[1] or later.
func atLeast(major, minor int, want [2]int) bool {
	return major > want[0] || major == want[0] && minor >= want[1]
}

// checkSQLiteSafe refuses an sqlite3 without -safe.
func checkSQLiteSafe(ctx context.Context, tool string) error {
	major, minor, line, ok := clientVersion(ctx, tool)
	if ok && atLeast(major, minor, sqliteSafeMin) {
		return nil
	}
	return fmt.Errorf("%s (%s) has no safe mode, in which snap loads a dump so that the dump cannot run shell commands or write other files: install sqlite3 3.37 or later (%w)", tool, orUnknown(line), ErrUnchanged)
}

// checkPsqlRestricts refuses a psql without \restrict.
func checkPsqlRestricts(ctx context.Context, tool string) error {
	major, minor, line, ok := clientVersion(ctx, tool)
	if ok {
		if min, listed := psqlRestrictMin[major]; listed && minor >= min || major > 17 {
			return nil
		}
	}
	return fmt.Errorf("%s (%s) has no restricted mode (\\restrict), in which snap loads a dump so that the dump cannot run shell commands or write files: install a PostgreSQL client of 13.22, 14.19, 15.14, 16.10, 17.6 or later (%w)", tool, orUnknown(line), ErrUnchanged)
}

func orUnknown(s string) string {
	if s == "" {
		return "version unknown"
	}
	return s
}

// psqlRestrictKey returns a key for \restrict that a dump cannot know: its
// \unrestrict would need it.
func psqlRestrictKey() string {
	return "snap" + rand.Text()
}

// The dump's own \restrict and \unrestrict lines (pg_dump and pg_dumpall
// write them since the releases above), and a whole-server dump's \connect
// lines in the forms pg_dumpall writes (appendPsqlMetaConnect): a name of
// letters, digits, "_" and "." alone, bare or in double quotes (`\connect
// template1`, `\connect "MyApp"`), or any other name as -reuse-previous=on
// with a connection string that sets dbname alone, in single quotes with
// backslash escapes and the double quotes around it doubled (`\connect
// -reuse-previous=on "dbname='my-app'"`), after a line `\encoding
// SQL_ASCII`. Inside the double quotes psql expands no variable and runs
// no backquote, and libpq takes the quoted value for the name alone, "="
// and all. Nothing else passes: an unquoted name with "=" is a connection
// string to psql, which could send the password to a host of the dump's
// choosing (found in review); an unquoted backquote runs a shell command,
// a colon expands a variable, a backslash starts another command.
var (
	psqlRestrictLine = regexp.MustCompile(`^\\(un)?restrict [A-Za-z0-9]{32,}$`) // pg_dump's keys: 64 characters
	psqlConnectLine  = regexp.MustCompile(`^\\connect ([A-Za-z_][A-Za-z0-9_$]*|"[A-Za-z0-9_.]+"|-reuse-previous=on "dbname='(?:[^'"\\\r\n]|\\['\\]|"")*'")$`)
	psqlEncodingLine = regexp.MustCompile(`^\\encoding [A-Za-z0-9_]+$`)
	// psqlAnyConnect is a line psql would take for a \connect (\c) of any
	// form.
	psqlAnyConnect = regexp.MustCompile(`^\\c(onnect)?(\s|$)`)
)

// psqlRestricted passes a dump to psql in restricted mode under key: the
// dump's own \restrict and \unrestrict lines are dropped (psql refuses a
// second \restrict), and with connects, each \connect line of a form
// pg_dumpall writes (and its \encoding line) is let through on its own,
// unrestricted for that line alone. Anything else that is a backslash
// command psql refuses; but a \connect of another form ends the dump
// there with an error: refused, it left psql connected to the database
// before, into which the script went on to load the next database's
// tables (template1, found in review).
func psqlRestricted(dump io.Reader, key string, connects bool) io.Reader {
	body := newLineFilter(dump, func(r *bufio.Reader) ([]byte, bool, error) {
		b, _ := r.Peek(pgLinePeek)
		end := bytes.IndexByte(b, '\n')
		if len(b) == 0 || b[0] != '\\' {
			return nil, false, nil
		}
		if end < 0 {
			if connects && psqlAnyConnect.Match(b) {
				return nil, false, fmt.Errorf("%w: %.80q…", errPsqlConnect, b)
			}
			return nil, false, nil
		}
		line := bytes.TrimSuffix(b[:end], []byte("\r"))
		switch {
		case psqlRestrictLine.Match(line):
			_, _ = r.Discard(end + 1)
			return nil, true, nil
		case connects && (psqlConnectLine.Match(line) || psqlEncodingLine.Match(line)):
			_, _ = r.Discard(len(line)) // its line ending follows the replacement
			return []byte("\\unrestrict " + key + "\n" + string(line) + "\n\\restrict " + key), false, nil
		case connects && psqlAnyConnect.Match(line):
			return nil, false, fmt.Errorf("%w: %.200q", errPsqlConnect, line)
		}
		return nil, false, nil
	})
	return io.MultiReader(strings.NewReader("\\restrict "+key+"\n"), body)
}

// errPsqlConnect is a whole-server dump's \connect line of a form
// pg_dumpall does not write.
var errPsqlConnect = errors.New("the whole-server dump holds a \\connect line that pg_dumpall does not write, which could connect to another server or database: it was made or changed by someone else; the restore stopped there, and the server holds the databases loaded before it (to load it anyway, write it out with 'snap dump' and read it with psql yourself)")

// psqlRefused is psql's message for a backslash command it refused in
// restricted mode.
const psqlRefused = "backslash commands are restricted"

// errDotCommand is a SQLite dump's line that the sqlite3 shell would take
// for one of its own commands, or for a comment of its own.
var errDotCommand = errors.New("the dump holds a line that starts with a dot or a #, which sqlite3 would run as a command of its own (.trace writes files, even in safe mode) or skip as a comment: a dump sqlite3 wrote holds none, so this one was made or changed by someone else; nothing was loaded (to load it anyway, write it out with 'snap dump' and read it with sqlite3 yourself)")

// errNulInDump is a NUL byte in a SQLite dump: the sqlite3 shell reads
// lines with fgets and measures them with strlen, so what follows a NUL
// on its line is dropped, or read as the start of a line of its own.
var errNulInDump = errors.New("the dump holds a NUL byte, which sqlite3 writes in no dump and around which its shell reads lines otherwise than they look: this one was made or changed by someone else; nothing was loaded (to load it anyway, write it out with 'snap dump' and read it with sqlite3 yourself)")

// sqliteShellOnly are the names, outside SQL's literals, that a dump is
// refused for: functions and tables the sqlite3 shell adds, which safe
// mode lets through and which reach beyond the database (fsdir reads any
// file of the host into a table, found in review and by an exploratory
// test; sha3_query runs SQL given as text, which no scan of the dump would
// see), those safe mode refuses (refused here first, by name), and
// trusted_schema, which would let the dump's triggers and views use them.
// A dump sqlite3 wrote holds none, unless a table or column has one of
// these names.
//
// And the schema's own table and writable_schema: a row written into it
// declared a virtual table of a module whose name was put together from
// pieces ('fs'||'dir'), which the dump then read files through once
// writable_schema=RESET had loaded it (found by a third re-test). That
// also refuses the dumps sqlite3 writes of databases with virtual tables
// (FTS, R*Tree), which declare them so: they are loaded by hand.
var sqliteShellOnly = map[string]bool{
	"fsdir": true, "sha3_query": true, "readfile": true, "writefile": true, "edit": true, "load_extension": true,
	"zipfile": true, "fts3_tokenizer": true, "sqlite_dbpage": true, "trusted_schema": true,
	"writable_schema": true, "sqlite_schema": true, "sqlite_master": true, "sqlite_temp_schema": true, "sqlite_temp_master": true,
}

// sqliteShellNames are those of sqliteShellOnly that SQLite also takes
// written as a '…' literal, where its grammar wants a name: a table
// (FROM 'fsdir'('/etc/shadow') read the file, found by a re-test) or a
// pragma. A literal of one of these words alone is refused, not literals
// that merely hold them; a function's name is never a literal.
var sqliteShellNames = map[string]bool{"fsdir": true, "zipfile": true, "sqlite_dbpage": true, "trusted_schema": true,
	"writable_schema": true, "sqlite_schema": true, "sqlite_master": true, "sqlite_temp_schema": true, "sqlite_temp_master": true}

// sqliteUntrusting is what a restore gives sqlite3 before the dump: the
// dump's triggers and views use no function or table that is not marked
// harmless (the shell's fsdir among them), wherever their text is.
const sqliteUntrusting = "PRAGMA trusted_schema=OFF;\n"

// sqliteScreen passes a dump on, failing at the first line that starts
// with a dot or a # (errDotCommand; the shell takes such a line for a
// command or a comment only between statements, but refused wherever it
// is, a dump of an old sqlite3 with a text value whose line break is
// followed by one is refused too), at the first NUL byte (errNulInDump),
// at the first name of sqliteShellOnly outside SQL's literals and
// comments, bare or quoted ("fsdir", [fsdir], `fsdir`), and at the first
// '…' literal that is a word of sqliteShellNames alone ('fsdir').
// It follows SQL's quoting byte by byte, across reads.
type sqliteScreen struct {
	r         io.Reader
	lineStart bool
	state     sqlState
	prev      byte   // the byte before, in code and block comments
	closer    byte   // the quote that ends the literal ('), or the quoted name (" or `)
	word      []byte // the name or '…' literal being read, lower-cased
	long      bool   // it is longer than any in sqliteShellOnly
	str       bool   // it is a '…' literal
}

type sqlState int

const (
	sqlCode         sqlState = iota
	sqlString                // in '…'
	sqlQuoted                // in "…" or `…` (closing byte: quote)
	sqlBracket               // in […]
	sqlLineComment           // after --
	sqlBlockComment          // after /*
	sqlQuoteEnd              // after a quote that may end a string or name, or be doubled
)

func newSQLiteScreen(r io.Reader) *sqliteScreen {
	return &sqliteScreen{r: r, lineStart: true}
}

func (g *sqliteScreen) Read(p []byte) (int, error) {
	n, err := g.r.Read(p)
	for _, c := range p[:n] {
		// Nothing of this read reaches sqlite3 after an error: a line
		// that starts with a dot or a # (the shell's commands and its
		// comments between statements, where a # line's quote opened a
		// literal for this scan and hid the statement after it; found
		// by a re-test), and a NUL (a re-test: after "\0" and 98 bytes
		// on a line, the shell read ".trace FILE" as a line's start).
		if c == 0 {
			return 0, errNulInDump
		}
		if g.lineStart && (c == '.' || c == '#') {
			return 0, errDotCommand
		}
		g.lineStart = c == '\n'
		if werr := g.scan(c); werr != nil {
			return 0, werr
		}
	}
	if err == io.EOF {
		if werr := g.endWord(); werr != nil {
			return 0, werr
		}
	}
	return n, err
}

// scan moves the scanner on by one byte of the dump.
func (g *sqliteScreen) scan(c byte) error {
	switch g.state {
	case sqlQuoteEnd:
		if c == g.closer {
			// Doubled: the quote stands for itself.
			g.state = sqlQuoted
			if c == '\'' {
				g.state = sqlString
			}
			g.addWord(c)
			return nil
		}
		g.state = sqlCode
		if err := g.endWord(); err != nil {
			return err
		}
		return g.scan(c)
	case sqlString:
		if c == '\'' {
			g.state = sqlQuoteEnd
			return nil
		}
		g.addWord(c)
		return nil
	case sqlQuoted:
		if c == g.closer {
			g.state = sqlQuoteEnd
			return nil
		}
		g.addWord(c)
		return nil
	case sqlBracket:
		if c == ']' {
			g.state = sqlCode
			return g.endWord()
		}
		g.addWord(c)
		return nil
	case sqlLineComment:
		if c == '\n' {
			g.state = sqlCode
		}
		return nil
	case sqlBlockComment:
		if c == '/' && g.prev == '*' {
			g.state, g.prev = sqlCode, 0
			return nil
		}
		g.prev = c
		return nil
	}
	// sqlCode.
	if sqlIdentByte(c) {
		g.addWord(c)
		g.prev = c
		return nil
	}
	if err := g.endWord(); err != nil {
		return err
	}
	prev := g.prev
	g.prev = c
	switch {
	case c == '\'':
		g.state, g.closer, g.str = sqlString, c, true
	case c == '"' || c == '`':
		g.state, g.closer = sqlQuoted, c
	case c == '[':
		g.state = sqlBracket
	case c == '-' && prev == '-':
		g.state = sqlLineComment
	case c == '*' && prev == '/':
		g.state, g.prev = sqlBlockComment, 0
	}
	return nil
}

func (g *sqliteScreen) addWord(c byte) {
	if len(g.word) >= 32 {
		g.long = true
		return
	}
	if c >= 'A' && c <= 'Z' {
		c += 'a' - 'A' // SQLite folds the case of ASCII letters only
	}
	g.word = append(g.word, c)
}

// endWord checks the name read, if any, and starts the next.
func (g *sqliteScreen) endWord() error {
	w, long, str := g.word, g.long, g.str
	g.word, g.long, g.str = g.word[:0], false, false
	switch {
	case len(w) == 0 || long:
	case str && sqliteShellNames[string(w)], !str && sqliteShellOnly[string(w)]:
		return fmt.Errorf("%w: %s", errShellOnly, w)
	}
	return nil
}

// errShellOnly is a SQLite dump that names a function or table of the
// sqlite3 shell that reaches beyond the database.
var errShellOnly = errors.New("the dump uses a function or table of the sqlite3 shell that reaches beyond the database (fsdir reads any file of this host, even in safe mode), or writes the database's schema directly (as sqlite3's dump of a database with virtual tables, FTS or R*Tree, does, and as a crafted one does to declare such a table); a crafted dump could read the files of this host, so nothing was loaded: if the repository is yours and the database has virtual tables, write the dump out with 'snap dump' and read it with sqlite3 yourself")
