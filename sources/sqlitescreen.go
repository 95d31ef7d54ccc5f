package sources

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
)

// A SQLite dump comes from the repository, which whoever may write there
// can fill with SQL of their own (restricted.go). It is loaded by SQLite's
// library, which has none of the sqlite3 shell's ways beyond the database
// (sqliteload.go); before that, this screen passes it on only as far as
// it reads as what sqlite3's .dump writes, statement by statement, read by
// SQLite's own rules for tokens (sqlLexer). The screen was the only wall
// while the shell loaded dumps, and five red-team rounds got past it in
// turn (a NUL byte and a # line around which the shell read lines
// otherwise, a literal taken for a table's name, a virtual table declared
// through writable_schema, a Tcl-style variable $a(';') that SQLite reads
// as one token, a trigger that rewrote the schema with a DEFAULT of the
// shell's edit()); it stays as the first:
//
//   - At the top level (stStart): the PRAGMAs of .dump and of snap's lines
//     before it (with the values that do not change how the load runs),
//     one transaction to its COMMIT, CREATE TABLE, INDEX, VIEW and TRIGGER,
//     INSERT … VALUES of literals (with the columns --preserve-rowids
//     names, and texts with line breaks in .dump's replace() and unistr()
//     forms only), DELETE FROM sqlite_sequence,
//     ANALYZE, and the one write of the schema with which .dump declares a
//     virtual table of SQLite's own modules (checkVirtualTable). No
//     statement can read a table.
//   - No trigger fires during the load: .dump writes the triggers after
//     every row, so rows after a trigger are refused, and so are rows
//     inserted into a virtual table (FTS writes them to its shadow tables
//     at a later statement or the COMMIT) and triggers on a virtual table
//     or its shadow tables. A trigger that fired ran statements no screen
//     reads.
//   - What CREATE stores and the load runs (defaults, checks and generated
//     columns as rows load, index expressions as indexes are made) may not
//     call the shell's functions that reach beyond the database, nor (in a
//     view or trigger) read its tables, nor (in a trigger) write the
//     schema (stBody): sqlite3 would run them when an admin uses the
//     restored database with it.
//
// What the restored database does when it is used later is the dump's to
// decide, as a restored file's content is.
//
// The lines the shell reads as its own (dot commands and # comments
// between statements, and a line of GO or /, which it takes for a ';') are
// refused too: .dump writes none, so a dump that holds one was made by
// someone else. The library would not read them so, but a restored
// database is dumped and loaded with the shell again: a view whose text
// held a line "go" and then ".system …" ran a command when its .dump was
// read by sqlite3 (a red-team test, after a session had let GO lines pass
// for a column named go alone on its line). So is a NUL byte: SQLite ends
// a statement's text there, where the screen would read on.

// errNotPlainDump is a SQLite dump with SQL that sqlite3's .dump does not
// write.
var errNotPlainDump = errors.New("the dump holds SQL that sqlite3's .dump does not write, so it was made or changed by someone else, and nothing was loaded; if the repository is yours, write the dump out with 'snap dump' and read it with sqlite3 yourself")

// sqliteMadeElsewhere ends the errors of what sqlite3 writes in no dump.
const sqliteMadeElsewhere = "this one was made or changed by someone else; nothing was loaded (to load it anyway, write it out with 'snap dump' and read it with sqlite3 yourself)"

// errDotCommand is a SQLite dump's line that the sqlite3 shell would take
// for one of its own commands, or for a comment of its own.
var errDotCommand = errors.New("the dump holds a line that starts with a dot or a #, which sqlite3 would run as a command of its own (.trace writes files, even in safe mode) or skip as a comment: a dump sqlite3 wrote holds none, so " + sqliteMadeElsewhere)

// errNulInDump is a NUL byte in a SQLite dump: the sqlite3 shell reads
// lines with fgets and measures them with strlen, so what follows a NUL
// on its line is dropped, or read as the start of a line of its own.
var errNulInDump = errors.New("the dump holds a NUL byte, which sqlite3 writes in no dump and around which its shell reads lines otherwise than they look: " + sqliteMadeElsewhere)

// errGoLine is a SQLite dump's line that reads GO or /, which the sqlite3
// shell takes for a ';' (as SQL Server's and Oracle's shells do) and so
// ends the statement before it where the screen sees no end.
var errGoLine = errors.New("the dump holds a line that reads GO or /, which sqlite3 takes for the ';' that ends a statement: a dump sqlite3 wrote holds none, so " + sqliteMadeElsewhere)

// sqliteReachingTables are the tables of the sqlite3 shell and of SQLite
// that reach beyond the database (fsdir reads any file, zipfile reads and
// writes archives) or below it (the raw pages): refused as a name anywhere
// outside a literal, and as a literal where a name is read.
var sqliteReachingTables = map[string]bool{"fsdir": true, "zipfile": true, "sqlite_dbpage": true, "sqlite_dbdata": true, "sqlite_dbptr": true}

// sqliteReachingFunctions are the shell's functions that reach beyond the
// database, or run SQL given as text (sha3_query): refused where a
// function is called in what CREATE stores.
var sqliteReachingFunctions = map[string]bool{"readfile": true, "writefile": true, "edit": true, "sha3_query": true,
	"load_extension": true, "fts3_tokenizer": true, "zipfile": true,
	// And those that reach the restore itself: usleep stalled it per
	// row, shell_putsnl wrote a terminal's escape sequences to sqlite3's
	// output (a red-team test); the shell's other shell_* helpers.
	"usleep": true, "shell_putsnl": true, "shell_add_schema": true, "shell_module_schema": true,
	"shell_escape_crnl": true, "shell_int32": true, "shell_idquote": true, "lsmode": true}

// sqliteSchemaTables are the names of the schema's own table.
var sqliteSchemaTables = map[string]bool{"sqlite_schema": true, "sqlite_master": true, "sqlite_temp_schema": true, "sqlite_temp_master": true}

// sqliteDumpPragmas are the PRAGMAs .dump and snap's lines before it
// write.
var sqliteDumpPragmas = map[string]bool{"foreign_keys": true, "writable_schema": true, "encoding": true, "page_size": true,
	"auto_vacuum": true, "user_version": true, "application_id": true, "journal_mode": true}

// sqliteEscapeMax is the longest escape that .dump puts for a line break
// in a text (replace(…,'\n',char(10)): '\n', '\012', or '(\n1)' and on
// when the text holds those).
const sqliteEscapeMax = 24

// sqliteModules are the modules of virtual tables whose declaration .dump
// writes into the schema that the screen lets through: SQLite's own.
var sqliteModules = map[string]bool{"fts3": true, "fts4": true, "fts5": true, "fts4aux": true, "fts5vocab": true,
	"fts3tokenize": true, "rtree": true, "rtree_i32": true, "geopoly": true}

// sqliteScreen passes a SQLite dump on (see the comment at the top), failing
// with errNotPlainDump at the first statement that .dump does not write,
// at the first line that starts with a dot or a # (errDotCommand: the
// shell's commands and comments), at the first line of GO or / (errGoLine)
// and at the first NUL byte (errNulInDump).
type sqliteScreen struct {
	r   io.ByteReader
	buf []byte // the statement being read
	// deferWAL: next leaves out the dump's PRAGMA journal_mode=wal and
	// sets wal instead, for the loader to switch to WAL after the load.
	// Loaded in WAL mode, the dump's one transaction went into the WAL,
	// which took as much room again as the database (an exploratory test).
	deferWAL, wal bool
	lexer         sqlLexer
	stmt          stmtChecker
	lineStart     bool
	textLine      bool // the line started inside a literal or comment
	goLine        goLineState
	err           error
}

// goLineState is how far a line reads as GO or / alone.
type goLineState uint8

const (
	goLineIndent goLineState = iota // at the line's start or in its leading white space
	goLineNot                       // the line is something else
	goLineSlash                     // after a leading /
	goLineG                         // after a leading G
	goLineGo                        // after a leading GO
	goLineAfter                     // after a leading / or GO and white space
)

// next is the state after c, or errGoLine. The shell takes a line for a
// ';' when, after white space, it holds / or GO and then nothing but
// white space and comments: a line that may do so is refused (one whose
// rest starts a comment too; "go INT);", a column's line, passes).
func (s goLineState) next(c byte) (goLineState, error) {
	space := c == ' ' || c == '\t' || c == '\v' || c == '\f' || c == '\r'
	candidate := s == goLineSlash || s == goLineGo || s == goLineAfter
	switch {
	case candidate && (c == '\n' || c == '-' || c == '/'):
		return s, errGoLine
	case candidate && space:
		return goLineAfter, nil
	case c == '\n':
		return goLineIndent, nil
	case s == goLineIndent && space:
		return s, nil
	case s == goLineIndent && c == '/':
		return goLineSlash, nil
	case s == goLineIndent && (c == 'g' || c == 'G'):
		return goLineG, nil
	case s == goLineG && (c == 'o' || c == 'O'):
		return goLineGo, nil
	}
	return goLineNot, nil
}

func newSQLiteScreen(r io.Reader) *sqliteScreen {
	g := &sqliteScreen{r: bufio.NewReaderSize(r, 64<<10), lineStart: true, stmt: stmtChecker{step: stStart, between: true}}
	g.lexer = sqlLexer{of: "the dump", line: 1, emit: g.stmt.token}
	return g
}

// next returns the dump's next statement, as it stands in the dump from
// the end of the one before (white space and comments included) to the
// ';' that ends it, with the line that ';' is on; io.EOF after the last.
// A statement is returned only once every byte of it has passed the
// screen; the first error ends the dump.
func (g *sqliteScreen) next() (string, int, error) {
	if g.err != nil {
		return "", 0, g.err
	}
	g.buf = g.buf[:0]
	for {
		c, err := g.r.ReadByte()
		if err == io.EOF {
			g.err = g.finish()
			if g.err == nil {
				g.err = io.EOF
				if len(g.buf) > 0 {
					// What finish let end without its ';', or
					// white space and comments: SQLite runs the
					// one, skips the other.
					return string(g.buf), g.lexer.line, nil
				}
			}
			return "", 0, g.err
		}
		if err != nil {
			g.err = err
			return "", 0, err
		}
		if g.err = g.feed(c); g.err != nil {
			return "", 0, g.err
		}
		g.buf = append(g.buf, c)
		if g.stmt.ended {
			g.stmt.ended = false
			if g.stmt.wal && g.deferWAL {
				g.stmt.wal, g.wal = false, true
				g.buf = g.buf[:0]
				continue
			}
			return string(g.buf), g.lexer.line, nil
		}
	}
}

// feed passes the dump's next byte through the screen.
func (g *sqliteScreen) feed(c byte) error {
	// A line that starts with a dot or a # between statements: the
	// shell's commands (.trace writes files in safe mode) and its
	// comments (a # line's quote opened a literal for an earlier screen
	// and hid the statement after it). A NUL: after "\0" and 98 bytes on
	// a line, the shell read ".trace FILE" as a line's start, and
	// SQLite ends a statement's text at a NUL. A line of GO or / outside
	// literals and comments, which the shell takes for a ';' (see the
	// comment at the top). None of them is SQLite's, and .dump writes
	// none: a dump that holds one was made for the shell by someone else.
	if g.lineStart {
		// Inside a literal or comment the shell's buffer holds the
		// statement's start, and it takes no line for its own.
		g.textLine = g.lexer.inText()
		if g.textLine {
			g.goLine = goLineNot
		}
	}
	var err error
	switch {
	case c == 0:
		err = errNulInDump
	case g.lineStart && (c == '.' || c == '#') && !g.textLine && g.stmt.between:
		err = errDotCommand
	default:
		if g.goLine, err = g.goLine.next(c); err == nil {
			err = g.lexer.byte(c)
		}
	}
	g.lineStart = c == '\n'
	return err
}

// finish checks the end of the dump: SQLite runs a statement left without
// its ';' at the end of its text, so it must be one that could end there.
func (g *sqliteScreen) finish() error {
	if _, err := g.goLine.next('\n'); err != nil {
		return err
	}
	if err := g.lexer.end(); err != nil {
		return err
	}
	if !g.stmt.between {
		end := sqlToken{kind: tokPunct, punct: ';', line: g.lexer.line}
		if err := g.stmt.token(end); err != nil {
			return err
		}
		if !g.stmt.between {
			return fmt.Errorf("line %d of the dump: it ends inside a statement: %w", end.line, errNotPlainDump)
		}
	}
	if g.stmt.inTxn {
		return fmt.Errorf("line %d of the dump: it ends inside its transaction, without the COMMIT that .dump writes last: the dump was cut short", g.lexer.line)
	}
	return nil
}

// The tokens of SQL, as SQLite's tokenizer (tokenize.c) tells them apart.
// What matters is that the screen ends each token, comment and statement
// where SQLite does: an operator of two bytes is two tokens here, which
// SQLite reads alike for what the screen lets through.
type sqlTokKind uint8

const (
	tokWord   sqlTokKind = iota + 1 // a bare name or a keyword, lower-cased
	tokName                         // a quoted name, "…", `…` or […], lower-cased
	tokString                       // a literal, '…'
	tokBlob                         // X'…'
	tokNumber                       //
	tokPunct                        // one byte of an operator, or ( ) , ; .
)

const (
	maxTokenName    = 4096     // bytes of a name kept; name() of a longer one is tooLongName
	maxTokenLiteral = 64 << 10 // bytes of a literal kept: a virtual table's declaration
)

type sqlToken struct {
	kind  sqlTokKind
	text  []byte // a name's (maxTokenName) or a literal's (maxTokenLiteral) first bytes
	long  bool   // the text was longer
	punct byte
	line  int // where the token starts
}

// is reports whether t is the keyword or bare name w.
func (t sqlToken) is(w string) bool {
	return t.kind == tokWord && !t.long && string(t.text) == w
}

func (t sqlToken) isPunct(c byte) bool { return t.kind == tokPunct && t.punct == c }

// isName reports whether t can name a table: SQLite also takes a '…'
// literal for a name.
func (t sqlToken) isName() bool {
	return t.kind == tokWord || t.kind == tokName || t.kind == tokString
}

// name is t's text as a name, lower-cased; "" when t is no name, and
// tooLongName when it is longer than the screen keeps.
func (t sqlToken) name() string {
	if !t.isName() {
		return ""
	}
	if t.long {
		return tooLongName
	}
	if t.kind == tokString {
		// SQLite folds the case of ASCII letters only, as the lexer does
		// for names: strings.ToLower folded 'Éft' to another table's
		// name than "Éft" (a fourth red-team test).
		return asciiLower(t.text)
	}
	return string(t.text)
}

// tooLongName stands for a name longer than the screen keeps. It starts
// as SQLite's own names do, so that where those are refused, so is a long
// one: cut to 64 bytes and then taken for "", "sqlite_" and 70 x's passed
// for a table of the dump's, which SQLite accepts under writable_schema
// and sqlite3's .dump then leaves out (a red-team test).
const tooLongName = "sqlite_\x00 name too long"

func asciiLower(b []byte) string {
	out := []byte(string(b))
	for i, c := range out {
		if c >= 'A' && c <= 'Z' {
			out[i] = c + 'a' - 'A'
		}
	}
	return string(out)
}

func (t sqlToken) String() string {
	switch t.kind {
	case tokPunct:
		return fmt.Sprintf("%q", string(t.punct))
	case tokString, tokBlob:
		return "a literal"
	}
	s := string(t.text)
	if len(s) > 40 || t.long {
		s = s[:min(len(s), 40)] + "…"
	}
	return fmt.Sprintf("%q", s)
}

type lexState uint8

const (
	lexSpace        lexState = iota // between tokens
	lexWord                         // in a bare name or keyword
	lexNumber                       // in a number's digits (num: which part)
	lexString                       // in '…'
	lexQuoted                       // in "…" or `…` (closer)
	lexBracket                      // in […]
	lexBlob                         // in X'…', which ends at the next ' (no doubling)
	lexQuoteEnd                     // after a quote that ends a literal or name, or is doubled
	lexMinus                        // after a -, which may start a comment
	lexSlash                        // after a /, which may start one
	lexLineComment                  //
	lexBlockComment                 //
	lexBlockStar                    // in a block comment, after a *
	lexBOM1                         // after 0xEF, which may start a byte order mark
	lexBOM2                         // after 0xEF 0xBB
)

// sqlLexer reads SQL byte by byte, across reads, and gives its tokens to
// emit.
type sqlLexer struct {
	of     string // what is read: "the dump", "its declaration"
	state  lexState
	num    numPart
	closer byte
	tok    sqlToken
	line   int
	emit   func(sqlToken) error
}

// numPart is the part of a number being read, as SQLite reads one: hex
// digits after 0x, or digits, a fraction, an exponent.
type numPart uint8

const (
	numInt      numPart = iota // digits
	numZero                    // a leading 0, which 0x may follow
	numHexStart                // after 0x
	numHex                     // hex digits after 0x
	numFrac                    // after the '.'
	numExp                     // after e or E
	numExpSign                 // after e+ or e-
	numExpDigit                // the exponent's digits
)

// errNumber is a number that SQLite reads otherwise than the screen
// could follow: followed by a name's byte (SQLite ends 0x1 at the $ of
// 0x1$a(')…, a variable that runs to its ')' over a quote; a red-team
// test hid an FTS4 option behind it), or malformed.
var errNumber = errors.New("a number followed by a name's byte, or malformed")

// errSQLByte is a byte that SQLite takes for no token, or for a variable
// ($a, :a, @a, #a, ?1), which no dump holds. A Tcl-style variable,
// $a(…), runs to its ')' whatever lies between, quotes too.
var errSQLByte = errors.New("a variable or a byte that SQLite takes for no token")

func (l *sqlLexer) byte(c byte) error {
	err := l.step(c)
	if c == '\n' {
		l.line++
	}
	return err
}

func (l *sqlLexer) step(c byte) error {
	switch l.state {
	case lexSpace:
		return l.start(c)
	case lexWord:
		if sqlIdentByte(c) {
			l.add(c)
			return nil
		}
		if c == '\'' && len(l.tok.text) == 1 && l.tok.text[0] == 'x' {
			l.state, l.tok.kind, l.tok.text = lexBlob, tokBlob, l.tok.text[:0]
			return nil
		}
	case lexNumber:
		more, err := l.number(c)
		if more || err != nil {
			return err
		}
	case lexString:
		if c == '\'' {
			l.state = lexQuoteEnd
		} else {
			l.add(c)
		}
		return nil
	case lexQuoted:
		if c == l.closer {
			l.state = lexQuoteEnd
		} else {
			l.add(c)
		}
		return nil
	case lexQuoteEnd:
		if c == l.closer {
			// Doubled: the quote stands for itself.
			l.state = lexQuoted
			if c == '\'' {
				l.state = lexString
			}
			l.add(c)
			return nil
		}
	case lexBracket, lexBlob:
		end := byte(']')
		if l.state == lexBlob {
			end = '\''
		}
		if c == end {
			return l.flush()
		}
		if l.state == lexBracket {
			l.add(c)
		}
		return nil
	case lexMinus, lexSlash:
		if c == '-' && l.state == lexMinus {
			l.state = lexLineComment
			return nil
		}
		if c == '*' && l.state == lexSlash {
			l.state = lexBlockComment
			return nil
		}
		op := byte('-')
		if l.state == lexSlash {
			op = '/'
		}
		l.state = lexSpace
		if err := l.emit(sqlToken{kind: tokPunct, punct: op, line: l.line}); err != nil {
			return err
		}
		return l.start(c)
	case lexLineComment:
		if c == '\n' {
			l.state = lexSpace
		}
		return nil
	case lexBlockComment, lexBlockStar:
		switch {
		case c == '/' && l.state == lexBlockStar:
			l.state = lexSpace
		case c == '*':
			l.state = lexBlockStar
		default:
			l.state = lexBlockComment
		}
		return nil
	case lexBOM1, lexBOM2:
		// A byte order mark where a token starts is white space to
		// SQLite (after "; " it is END that ends a trigger, not a name
		// of its own); any other byte makes the 0xEF start a name.
		if l.state == lexBOM1 && c == 0xbb {
			l.state = lexBOM2
			return nil
		}
		if l.state == lexBOM2 && c == 0xbf {
			l.state = lexSpace
			return nil
		}
		l.newToken(tokWord)
		l.add(0xef)
		if l.state == lexBOM2 {
			l.add(0xbb)
		}
		l.state = lexWord
		return l.step(c)
	}
	// The token being read ended before c.
	if err := l.flush(); err != nil {
		return err
	}
	return l.start(c)
}

// inText reports whether the lexer is inside a literal, a quoted name or
// a block comment.
func (l *sqlLexer) inText() bool {
	switch l.state {
	case lexString, lexQuoted, lexBracket, lexBlob, lexBlockComment, lexBlockStar:
		return true
	}
	return false
}

// start reads c, where a token may start.
func (l *sqlLexer) start(c byte) error {
	switch {
	case c == ' ' || c == '\t' || c == '\n' || c == '\f' || c == '\r':
	case c >= '0' && c <= '9':
		l.newToken(tokNumber)
		l.add(c)
		l.state, l.num = lexNumber, numInt
		if c == '0' {
			l.num = numZero
		}
	case c == '\'':
		l.newToken(tokString)
		l.state, l.closer = lexString, c
	case c == '"' || c == '`':
		l.newToken(tokName)
		l.state, l.closer = lexQuoted, c
	case c == '[':
		l.newToken(tokName)
		l.state = lexBracket
	case c == '-':
		l.state = lexMinus
	case c == '/':
		l.state = lexSlash
	case c == 0xef:
		l.state = lexBOM1
	case sqlIdentByte(c) && c != '$': // digits start a number, above
		l.newToken(tokWord)
		l.add(c)
		l.state = lexWord
	case strings.IndexByte("(),;.=<>!|+*%&~", c) >= 0:
		return l.emit(sqlToken{kind: tokPunct, punct: c, line: l.line})
	default:
		return fmt.Errorf("%s, %q: %s: %w", l.where(), string(c), errSQLByte, errNotPlainDump)
	}
	return nil
}

// number reads c in a number, as SQLite's tokenizer does: whether c is
// the number's, or errNumber where SQLite's reading and the screen's
// could part.
func (l *sqlLexer) number(c byte) (bool, error) {
	digit := c >= '0' && c <= '9'
	switch l.num {
	case numZero, numInt:
		switch {
		case digit:
			l.num = numInt
		case l.num == numZero && (c == 'x' || c == 'X'):
			l.num = numHexStart
		case c == '.':
			l.num = numFrac
		case c == 'e' || c == 'E':
			l.num = numExp
		default:
			return l.numberEnd(c)
		}
	case numHexStart, numHex:
		switch {
		case digit || c|0x20 >= 'a' && c|0x20 <= 'f':
			l.num = numHex
		case l.num == numHexStart:
			return false, l.numberError(c)
		default:
			return l.numberEnd(c)
		}
	case numFrac:
		switch {
		case digit:
		case c == 'e' || c == 'E':
			l.num = numExp
		default:
			return l.numberEnd(c)
		}
	case numExp, numExpSign:
		// SQLite takes an e for an exponent only before its digits
		// (with a sign between); otherwise it is a name's byte after
		// the number, an illegal token.
		switch {
		case digit:
			l.num = numExpDigit
		case l.num == numExp && (c == '+' || c == '-'):
			l.num = numExpSign
		default:
			return false, l.numberError(c)
		}
	case numExpDigit:
		if !digit {
			return l.numberEnd(c)
		}
	}
	l.add(c)
	return true, nil
}

// numberEnd ends a number before c. SQLite reads a name's byte (and $)
// after a decimal number as part of an illegal token, and after hex
// digits as the start of a token of its own (0x1$a(' is 0x1 and the
// variable $a('…), so either is refused, as is a '.' after the number.
func (l *sqlLexer) numberEnd(c byte) (bool, error) {
	if sqlIdentByte(c) || c == '.' {
		return false, l.numberError(c)
	}
	return false, nil
}

func (l *sqlLexer) numberError(c byte) error {
	return fmt.Errorf("%s, %q then %q: %w: %w", l.where(), l.tok.text, string(c), errNumber, errNotPlainDump)
}

// where names the line being read, for messages.
func (l *sqlLexer) where() string { return fmt.Sprintf("line %d of %s", l.line, l.of) }

func (l *sqlLexer) newToken(kind sqlTokKind) {
	l.tok = sqlToken{kind: kind, text: l.tok.text[:0], line: l.line}
}

func (l *sqlLexer) add(c byte) {
	limit := maxTokenName
	if l.tok.kind == tokString {
		limit = maxTokenLiteral
	} else if c >= 'A' && c <= 'Z' {
		c += 'a' - 'A' // SQLite folds the case of ASCII letters only
	}
	if len(l.tok.text) >= limit {
		l.tok.long = true
		return
	}
	l.tok.text = append(l.tok.text, c)
}

// flush gives the token read to emit.
func (l *sqlLexer) flush() error {
	l.state = lexSpace
	return l.emit(l.tok)
}

// end ends the input: a literal, name or comment left open is a dump cut
// short (SQLite would not run it either).
func (l *sqlLexer) end() error {
	switch l.state {
	case lexSpace, lexLineComment:
		return nil
	case lexWord, lexNumber, lexQuoteEnd, lexMinus, lexSlash, lexBOM1, lexBOM2:
		return l.step(' ')
	}
	return fmt.Errorf("%s: it ends inside a literal or comment: %w", l.where(), errNotPlainDump)
}

// stmtChecker checks the tokens of a dump against the statements .dump
// writes, one step per token: each step checks a token and returns the
// step for the next.
type stmtChecker struct {
	step     stmtStep
	what     string    // what is created: table, index, view or trigger
	depth    int       // parentheses open in a row of values or in what is created
	replaces int       // replace() calls open in a value
	inTxn    bool      // a BEGIN was read, and no COMMIT after it
	pragma   string    // the PRAGMA being read
	wal      bool      // the statement is PRAGMA journal_mode=wal
	recent   [5]string // in what is created: the last tokens, newest last
	// In what is created: a shell function's name just read, and for a
	// trigger, whether the last tokens were ";" and "; END" (its end).
	call             string
	semi, semiEnd    bool
	qualifier        string            // the name before a '.' in CREATE
	schemaWrite      int               // tokens of the schema write matched
	schemaWriteTable string            // the name the schema write declares
	between          bool              // no statement is open
	ended            bool              // a ';' ended a statement (next clears it)
	triggers         bool              // a CREATE TRIGGER was read
	vtabs            map[string]string // the virtual tables the dump declared, and their modules
	trigger          triggerPart       // where a trigger's declaration is
	nameNext         bool              // the token before is one after which a table's name comes
	indexOn          bool              // an index's ON was read
}

// triggerPart is the part of a CREATE TRIGGER being read.
type triggerPart uint8

const (
	trigHead  triggerPart = iota // before its ON
	trigOn                       // after ON: the table's name comes
	trigTable                    // after the table's name: a '.' may follow it
	trigDot                      // after "schema.": the table's name comes
	trigRest                     // FOR EACH ROW, WHEN …, up to its BEGIN
	trigBody                     // after BEGIN: its statements
)

// A stmtStep checks a token and returns the step for the next, or nil
// after the ';' that ends a statement.
type stmtStep func(s *stmtChecker, t sqlToken) (stmtStep, error)

func (s *stmtChecker) token(t sqlToken) error {
	next, err := s.step(s, t)
	if err != nil {
		return err
	}
	s.step, s.between = next, next == nil
	if next == nil {
		s.ended = true
		s.step = stStart
	}
	return nil
}

// refuse is the error for t where .dump writes want.
func refuse(t sqlToken, want string) error {
	return fmt.Errorf("line %d of the dump: %s where sqlite3's .dump writes %s: %w", t.line, t, want, errNotPlainDump)
}

func stStart(s *stmtChecker, t sqlToken) (stmtStep, error) {
	switch {
	case t.isPunct(';'):
		return nil, nil
	case s.triggers && (t.is("insert") || t.is("delete")):
		// .dump writes the triggers after every row, so that none
		// fires while the rows load. One that did ran its statements
		// as the dump's, where no screen reads them: a red-team test's
		// wrote a table's DEFAULT of edit(), which runs a program, into
		// the schema.
		return nil, refuse(t, "no INSERT or DELETE after a CREATE TRIGGER (it writes the triggers after every row)")
	case t.is("insert"):
		return stInsertInto, nil
	case t.is("create"):
		return stCreate, nil
	case t.is("pragma"):
		return stPragma, nil
	case t.is("begin") && !s.inTxn:
		s.inTxn = true
		return stTransaction, nil
	case (t.is("commit") || t.is("end")) && s.inTxn:
		// A dump without its COMMIT loaded nothing, and said
		// "restored" (a red-team test): finish refuses a dump that
		// ends inside its transaction.
		s.inTxn = false
		return stTransaction, nil
	case t.is("delete"):
		return expectWord("from", func(s *stmtChecker, t sqlToken) (stmtStep, error) {
			if t.name() != "sqlite_sequence" {
				return nil, refuse(t, "DELETE FROM sqlite_sequence only")
			}
			return stEnd, nil
		}), nil
	case t.is("analyze"):
		return stAnalyze, nil
	}
	return nil, refuse(t, "a statement of its own (PRAGMA, BEGIN, CREATE, INSERT, DELETE FROM sqlite_sequence, ANALYZE, COMMIT after BEGIN)")
}

// expectWord is the step that takes the keyword w, then goes on to next.
func expectWord(w string, next stmtStep) stmtStep {
	return func(s *stmtChecker, t sqlToken) (stmtStep, error) {
		if !t.is(w) {
			return nil, refuse(t, strings.ToUpper(w))
		}
		return next, nil
	}
}

// stEnd takes the ';' that ends a statement.
func stEnd(s *stmtChecker, t sqlToken) (stmtStep, error) {
	if !t.isPunct(';') {
		return nil, refuse(t, "the ';' that ends the statement")
	}
	return nil, nil
}

func stTransaction(s *stmtChecker, t sqlToken) (stmtStep, error) {
	switch {
	case t.isPunct(';'):
		return nil, nil
	case t.is("transaction"), t.is("deferred"), t.is("immediate"), t.is("exclusive"):
		return stTransaction, nil
	}
	return nil, refuse(t, "BEGIN TRANSACTION or COMMIT")
}

func stAnalyze(s *stmtChecker, t sqlToken) (stmtStep, error) {
	if t.isPunct(';') {
		return nil, nil
	}
	if !t.isName() || sqliteReachingTables[t.name()] {
		return nil, refuse(t, "ANALYZE sqlite_schema")
	}
	return stEnd, nil
}

func stPragma(s *stmtChecker, t sqlToken) (stmtStep, error) {
	if t.kind != tokWord || !sqliteDumpPragmas[t.name()] {
		return nil, refuse(t, "PRAGMA foreign_keys, writable_schema, encoding, page_size, auto_vacuum, user_version, application_id or journal_mode")
	}
	s.pragma = t.name()
	return func(s *stmtChecker, t sqlToken) (stmtStep, error) {
		if !t.isPunct('=') {
			return nil, refuse(t, "'=' after a PRAGMA's name")
		}
		return stPragmaValue, nil
	}, nil
}

func stPragmaValue(s *stmtChecker, t sqlToken) (stmtStep, error) {
	if words, ok := sqlitePragmaWords[s.pragma]; ok {
		if (t.kind != tokWord && t.kind != tokString) || !slices.Contains(words, asciiLower(t.text)) {
			return nil, refuse(t, fmt.Sprintf("%s = %s", s.pragma, strings.Join(words, " or ")))
		}
		s.wal = s.pragma == "journal_mode"
		return stEnd, nil
	}
	switch {
	case t.isPunct('-'), t.isPunct('+'):
		return stPragmaValue, nil
	case t.kind == tokWord && !sqliteReachingTables[t.name()], t.kind == tokNumber, t.kind == tokString:
		return stEnd, nil
	}
	return nil, refuse(t, "a PRAGMA's value")
}

// sqlitePragmaWords are the values .dump and snap's lines before it give
// the PRAGMAs that change how the load runs: foreign keys off (on, their
// actions deleted rows of the dump as others loaded: a red-team test),
// the schema writable and back, WAL (persist left a journal beside the
// restored file).
var sqlitePragmaWords = map[string][]string{"foreign_keys": {"off"}, "writable_schema": {"on", "off", "reset"}, "journal_mode": {"wal"}}

// INSERT INTO name VALUES (values)[, (values)]…;

func stInsertInto(s *stmtChecker, t sqlToken) (stmtStep, error) {
	if !t.is("into") {
		return nil, refuse(t, "INSERT INTO")
	}
	return stInsertTable, nil
}

func stInsertTable(s *stmtChecker, t sqlToken) (stmtStep, error) {
	if !t.isName() {
		return nil, refuse(t, "the table of an INSERT")
	}
	switch name := t.name(); {
	case name == "sqlite_schema" || name == "sqlite_master":
		s.schemaWrite = 0
		return stSchemaWrite, nil
	case name == "sqlite_sequence" || name == "sqlite_stat1" || name == "sqlite_stat4":
	case strings.HasPrefix(name, "sqlite_") || sqliteReachingTables[name]:
		return nil, refuse(t, "INSERT into a table of the database's own")
	case s.vtabs[name] != "":
		// .dump writes the rows of a virtual table's shadow tables;
		// FTS keeps what is inserted into the table itself and writes
		// it to them at a later statement or the COMMIT, which fired a
		// trigger on them (a third red-team test).
		return nil, refuse(t, "INSERT into a virtual table (it writes the rows of its shadow tables)")
	}
	return stInsertValues, nil
}

// stInsertValues takes VALUES, or before it the list of columns that
// .dump --preserve-rowids writes for a table with rowids of its own
// (rowid, _rowid_ or oid first, then every column), so that rowids come
// back as they were (an external-content FTS table finds its rows by
// them). .dump gives every column a value, so no row takes a DEFAULT (a
// crafted dump's would run in SQLite's library, which reaches nothing
// beyond the database; through the sqlite3 shell, a red-team test's
// edit() in one ran a program as root).
func stInsertValues(s *stmtChecker, t sqlToken) (stmtStep, error) {
	if t.isPunct('(') {
		return stRowidColumn, nil
	}
	if !t.is("values") {
		return nil, refuse(t, "VALUES")
	}
	return stRow, nil
}

func stRowidColumn(s *stmtChecker, t sqlToken) (stmtStep, error) {
	if n := t.name(); n != "rowid" && n != "_rowid_" && n != "oid" {
		return nil, refuse(t, "rowid first in the list of columns")
	}
	return stAfterColumn, nil
}

func stAfterColumn(s *stmtChecker, t sqlToken) (stmtStep, error) {
	switch {
	case t.isPunct(','):
		return func(s *stmtChecker, t sqlToken) (stmtStep, error) {
			if !t.isName() || t.kind == tokString {
				return nil, refuse(t, "a column's name")
			}
			return stAfterColumn, nil
		}, nil
	case t.isPunct(')'):
		return expectWord("values", stRow), nil
	}
	return nil, refuse(t, "',' or ')' in the list of columns")
}

func stRow(s *stmtChecker, t sqlToken) (stmtStep, error) {
	if !t.isPunct('(') {
		return nil, refuse(t, "the '(' of a row of values")
	}
	s.depth = 1
	return stValue, nil
}

// stValue takes a value: a literal, NULL, or a text with line breaks as
// .dump writes it, after any signs.
func stValue(s *stmtChecker, t sqlToken) (stmtStep, error) {
	switch {
	case t.isPunct('-'), t.isPunct('+'):
		return stValue, nil
	case t.kind == tokNumber, t.kind == tokString, t.kind == tokBlob, t.is("null"), t.is("true"), t.is("false"):
		return stAfterValue, nil
	case t.is("replace"):
		s.replaces = 1
		return expectPunct('(', stReplaceText), nil
	case t.is("unistr"):
		return expectPunct('(', expectString(expectPunct(')', stAfterValue))), nil
	}
	return nil, refuse(t, "a literal value")
}

// A text with line breaks, as .dump writes it: replace(TEXT,'\n',char(10))
// and replace(TEXT,'\r',char(13)), TEXT a literal or such a replace. Only
// so: the result is never longer than the literal, and the work is the
// literal's length (a red-team test's nested replace() made a text of 10⁸
// bytes and searched it for 5×10⁷, an hour in one call that Ctrl-C does
// not stop).

func stReplaceText(s *stmtChecker, t sqlToken) (stmtStep, error) {
	switch {
	case t.kind == tokString:
		return expectPunct(',', stReplaceEscape), nil
	case t.is("replace") && s.replaces < 2:
		s.replaces++
		return expectPunct('(', stReplaceText), nil
	}
	return nil, refuse(t, "a text, or one replace() of a text, in replace()")
}

func stReplaceEscape(s *stmtChecker, t sqlToken) (stmtStep, error) {
	if t.kind != tokString || len(t.text) == 0 || len(t.text) > sqliteEscapeMax {
		return nil, refuse(t, "the escape of a line break ('\\n') in replace()")
	}
	return expectPunct(',', expectWord("char", expectPunct('(', stReplaceChar))), nil
}

func stReplaceChar(s *stmtChecker, t sqlToken) (stmtStep, error) {
	if t.kind != tokNumber || string(t.text) != "10" && string(t.text) != "13" {
		return nil, refuse(t, "char(10) or char(13) in replace()")
	}
	return expectPunct(')', expectPunct(')', func(s *stmtChecker, t sqlToken) (stmtStep, error) {
		s.replaces--
		if s.replaces > 0 {
			// The inner replace() was the outer's text.
			return expectPunct(',', stReplaceEscape)(s, t)
		}
		return stAfterValue(s, t)
	})), nil
}

// expectPunct is the step that takes the punctuation c, then goes on to
// next.
func expectPunct(c byte, next stmtStep) stmtStep {
	return func(s *stmtChecker, t sqlToken) (stmtStep, error) {
		if !t.isPunct(c) {
			return nil, refuse(t, fmt.Sprintf("'%c'", c))
		}
		return next, nil
	}
}

// expectString is the step that takes a string literal, then goes on to
// next.
func expectString(next stmtStep) stmtStep {
	return func(s *stmtChecker, t sqlToken) (stmtStep, error) {
		if t.kind != tokString {
			return nil, refuse(t, "a text")
		}
		return next, nil
	}
}

func stAfterValue(s *stmtChecker, t sqlToken) (stmtStep, error) {
	switch {
	case t.isPunct(','):
		return stValue, nil
	case t.isPunct(')'):
		s.depth--
		if s.depth == 0 {
			return stRowEnd, nil
		}
		return stAfterValue, nil
	}
	return nil, refuse(t, "',' or ')' after a value")
}

func stRowEnd(s *stmtChecker, t sqlToken) (stmtStep, error) {
	switch {
	case t.isPunct(','):
		return stRow, nil
	case t.isPunct(';'):
		return nil, nil
	}
	return nil, refuse(t, "the ';' that ends an INSERT")
}

// The schema write of a virtual table, as .dump writes it:
// INSERT INTO sqlite_schema(type,name,tbl_name,rootpage,sql)
// VALUES('table','NAME','NAME',0,'CREATE VIRTUAL TABLE NAME USING MODULE(…)');
var schemaWriteTokens = []string{"(", "type", ",", "name", ",", "tbl_name", ",", "rootpage", ",", "sql", ")", "values",
	"(", "'table'", ",", "'NAME'", ",", "'NAME'", ",", "0", ",", "'SQL'", ")", ";"}

func stSchemaWrite(s *stmtChecker, t sqlToken) (stmtStep, error) {
	want := schemaWriteTokens[s.schemaWrite]
	s.schemaWrite++
	ok := false
	switch want {
	case "'table'":
		ok = t.kind == tokString && string(t.text) == "table"
	case "'NAME'":
		name := t.name()
		ok = t.kind == tokString && name != "" && !strings.HasPrefix(name, "sqlite_") && !sqliteReachingTables[name]
		if ok && s.schemaWrite == 16 {
			s.schemaWriteTable = name
		}
		ok = ok && name == s.schemaWriteTable
	case "'SQL'":
		if t.kind == tokString && !t.long {
			module, err := checkVirtualTable(t.text, s.schemaWriteTable)
			if err != nil {
				return nil, fmt.Errorf("line %d of the dump: the declaration of virtual table %q: %w", t.line, s.schemaWriteTable, err)
			}
			if s.vtabs == nil {
				s.vtabs = make(map[string]string)
			}
			s.vtabs[s.schemaWriteTable] = module
			ok = true
		}
	case "0":
		ok = t.kind == tokNumber && string(t.text) == "0"
	default:
		if len(want) == 1 {
			ok = t.isPunct(want[0])
		} else {
			ok = t.is(want)
		}
	}
	if !ok {
		return nil, refuse(t, "the schema write that declares a virtual table, "+strings.Join(schemaWriteTokens, ""))
	}
	if s.schemaWrite == len(schemaWriteTokens) {
		return nil, nil
	}
	return stSchemaWrite, nil
}

// checkVirtualTable checks the declaration of a virtual table that a
// schema write stores: CREATE VIRTUAL TABLE name USING module(arguments),
// of one of SQLite's own modules, with arguments that name none of the
// shell's tables or functions, and no FTS4 compress or uncompress option
// (which names a function FTS4 calls with the table's text).
func checkVirtualTable(sql []byte, table string) (module string, err error) {
	var toks []sqlToken
	l := sqlLexer{of: "its declaration", line: 1, emit: func(t sqlToken) error {
		t.text = append([]byte(nil), t.text...)
		toks = append(toks, t)
		return nil
	}}
	for _, c := range sql {
		if err := l.byte(c); err != nil {
			return "", err
		}
	}
	if err := l.end(); err != nil {
		return "", err
	}
	i := 0
	for _, w := range []string{"create", "virtual", "table"} {
		if i >= len(toks) || !toks[i].is(w) {
			return "", errVirtualTable("it is not CREATE VIRTUAL TABLE")
		}
		i++
	}
	if i+3 < len(toks) && toks[i].is("if") && toks[i+1].is("not") && toks[i+2].is("exists") {
		i += 3
	}
	if i+2 >= len(toks) || toks[i].name() != table || !toks[i+1].is("using") {
		return "", errVirtualTable("it does not declare the table the schema write names")
	}
	module = toks[i+2].name()
	if toks[i+2].kind != tokWord || !sqliteModules[module] {
		return "", errVirtualTable(fmt.Sprintf("module %s is not one of SQLite's own (FTS3, FTS4, FTS5, fts4aux, fts5vocab, fts3tokenize, R*Tree, Geopoly)", toks[i+2]))
	}
	args := toks[i+3:]
	if len(args) > 0 && (!args[0].isPunct('(') || !args[len(args)-1].isPunct(')')) {
		return "", errVirtualTable("its arguments are not one list in parentheses")
	}
	depth := 0
	for j, t := range args {
		switch {
		case t.isPunct('('):
			depth++
		case t.isPunct(')'):
			depth--
			if depth == 0 && j != len(args)-1 {
				return "", errVirtualTable("its arguments are not one list in parentheses")
			}
		case t.isPunct(';'):
			return "", errVirtualTable("it holds a ';'")
		case sqliteReachingTables[t.name()]:
			// FTS's content= names a table it reads.
			return "", errVirtualTable(fmt.Sprintf("it names %s, of the sqlite3 shell", t))
		case t.kind != tokString && sqliteReachingFunctions[t.name()] && j+1 < len(args) && args[j+1].isPunct('('):
			// Geopoly declares its table with its arguments as they are:
			// a DEFAULT of edit() would run a program (a red-team test).
			return "", errVirtualTable(fmt.Sprintf("it calls %s, of the sqlite3 shell", t))
		case (module == "fts3" || module == "fts4") && (t.is("compress") || t.is("uncompress")) && j+1 < len(args) && args[j+1].isPunct('='):
			// It names a function that FTS4 calls on each text, from a
			// statement of its own (so at the top level): sha3_query
			// there read files through fsdir (a red-team test).
			return "", errVirtualTable("FTS4's compress and uncompress options name functions it calls")
		}
	}
	return module, nil
}

func errVirtualTable(why string) error {
	return fmt.Errorf("%s: %w", why, errNotPlainDump)
}

// CREATE [UNIQUE] TABLE|INDEX|VIEW|TRIGGER [IF NOT EXISTS] [main.]name …;

func stCreate(s *stmtChecker, t sqlToken) (stmtStep, error) {
	switch {
	case t.is("unique"):
		return expectWord("index", func(s *stmtChecker, t sqlToken) (stmtStep, error) {
			s.what = "index"
			return stCreateIf(s, t)
		}), nil
	case t.is("table"), t.is("index"), t.is("view"), t.is("trigger"):
		s.what = t.name()
		s.triggers = s.triggers || s.what == "trigger"
		return stCreateIf, nil
	case t.is("temp"), t.is("temporary"):
		// SQLite trusts what the temp schema stores.
		return nil, refuse(t, "no temporary table, view or trigger")
	}
	return nil, refuse(t, "CREATE TABLE, INDEX, VIEW or TRIGGER")
}

func stCreateIf(s *stmtChecker, t sqlToken) (stmtStep, error) {
	if t.is("if") {
		return expectWord("not", expectWord("exists", stCreateName)), nil
	}
	return stCreateName(s, t)
}

func stCreateName(s *stmtChecker, t sqlToken) (stmtStep, error) {
	name := t.name()
	if !t.isName() || strings.HasPrefix(name, "sqlite_") || sqliteReachingTables[name] {
		return nil, refuse(t, "the name of the "+s.what+" (not one of SQLite's)")
	}
	s.qualifier = name
	return stCreateAfterName, nil
}

func stCreateAfterName(s *stmtChecker, t sqlToken) (stmtStep, error) {
	if t.isPunct('.') {
		// main.name, as SQLite keeps a trigger created so; temp.name
		// would make a trigger or view of the temp schema, which
		// SQLite trusts.
		if s.qualifier != "main" {
			return nil, refuse(t, "a "+s.what+" of the main schema")
		}
		s.qualifier = ""
		return stCreateName, nil
	}
	if s.what == "table" && !t.isPunct('(') {
		// CREATE TABLE … AS SELECT reads tables.
		return nil, refuse(t, "the '(' of a table's columns")
	}
	s.depth, s.call, s.semi, s.semiEnd = 0, "", false, false
	s.recent = [5]string{}
	s.trigger, s.nameNext, s.indexOn = trigHead, false, false
	return stBody(s, t)
}

// stBody takes what CREATE stores, to the ';' that ends it: for a
// trigger, the one after the "; END" that ends its statements (SQLite's
// grammar ends a trigger there and nowhere else). It runs later as the
// schema's (see the comment at the top); the shell's tables and functions are
// refused in it besides.
func stBody(s *stmtChecker, t sqlToken) (stmtStep, error) {
	if s.call != "" && t.isPunct('(') {
		return nil, refuse(sqlToken{kind: tokWord, text: []byte(s.call), line: t.line}, "no function of the sqlite3 shell")
	}
	s.call = ""
	name := t.name()
	switch {
	case t.isPunct(';') && (s.what != "trigger" || s.semiEnd):
		if s.depth != 0 {
			return nil, refuse(t, "as many ')' as '('")
		}
		return nil, nil
	case s.semiEnd:
		return nil, refuse(t, "the ';' after a trigger's END")
	case t.isPunct('('):
		s.depth++
	case t.isPunct(')'):
		s.depth--
	case sqliteReachingTables[name] && t.kind != tokString && (s.what == "view" || s.what == "trigger"):
		// Where a query may read it (a table's or an index's
		// expressions take no subquery, and a column named zipfile is
		// a dump's: an exploratory test).
		return nil, refuse(t, "no table of the sqlite3 shell")
	case s.what == "trigger" && sqliteSchemaTables[name] && s.writeTarget():
		// None fires during the load (stStart); one that writes the
		// schema is refused besides ('sqlite_master' names it too).
		// One that reads it is an application's.
		return nil, refuse(t, "no write of the schema table in a trigger")
	case s.what == "trigger" && (s.trigger == trigOn || s.trigger == trigDot) && s.onVirtualTable(name):
		// FTS writes its shadow tables after the rows (see
		// stInsertTable): a trigger on one would fire.
		return nil, refuse(t, "no trigger on a virtual table or its shadow tables")
	case t.kind != tokString && sqliteReachingFunctions[name] && !s.nameNext:
		// Called bare or quoted ("sha3_query"(…) is a call too); a
		// table of that name (REFERENCES edit(id), an index's ON
		// edit(id)) is not a call.
		s.call = name
	}
	// Only where a table's name must come: after REFERENCES, after an
	// index's ON, and after INTO in a trigger's statements (INSERT INTO
	// edit(id, txt): an exploratory test's table). After FROM it was a
	// call all the same: NULL IS NOT DISTINCT FROM edit(…) in a DEFAULT
	// ran a program as a row loaded (a fifth red-team test).
	s.nameNext = t.is("references") || s.what == "index" && t.is("on") && !s.indexOn ||
		s.what == "trigger" && s.trigger == trigBody && t.is("into")
	s.indexOn = s.indexOn || s.what == "index" && t.is("on")
	if s.what == "trigger" && s.trigger != trigBody {
		s.trigger = s.trigger.next(t)
		s.remember(t)
		return stBody, nil
	}
	s.semiEnd = s.semi && t.is("end")
	s.semi = t.isPunct(';')
	s.remember(t)
	return stBody, nil
}

// remember keeps t among the recent tokens of what is created.
func (s *stmtChecker) remember(t sqlToken) {
	text := t.name()
	if t.kind == tokPunct {
		text = string(t.punct)
	}
	copy(s.recent[:], s.recent[1:])
	s.recent[len(s.recent)-1] = text
}

// writeTarget reports whether the name that comes now is the table a
// statement writes: after UPDATE, INTO (INSERT, REPLACE), DELETE FROM, or
// UPDATE OR REPLACE (and its kin), with a "schema." between.
func (s *stmtChecker) writeTarget() bool {
	r := s.recent[:]
	if r[len(r)-1] == "." {
		r = r[:len(r)-2]
	}
	p1, p2 := r[len(r)-1], r[len(r)-2]
	switch {
	case p1 == "update", p1 == "into", p1 == "from" && p2 == "delete":
		return true
	case p2 == "or" && (p1 == "replace" || p1 == "ignore" || p1 == "abort" || p1 == "fail" || p1 == "rollback"):
		return true
	}
	return false
}

// next is the part of a trigger's declaration after t. Its BEGIN is the
// one after its table: a column of UPDATE OF may be named begin, which
// took the check of the table away (a fourth red-team test).
func (p triggerPart) next(t sqlToken) triggerPart {
	switch {
	case p == trigHead && t.is("on"):
		return trigOn
	case p == trigOn:
		return trigTable
	case p == trigTable && t.isPunct('.'):
		return trigDot
	case (p == trigTable || p == trigDot || p == trigRest) && t.is("begin"):
		return trigBody
	case p == trigTable || p == trigDot:
		return trigRest
	}
	return p
}

// onVirtualTable reports whether name is a virtual table the dump
// declared or one of its shadow tables (named after it, "ft_data").
func (s *stmtChecker) onVirtualTable(name string) bool {
	for v, module := range s.vtabs {
		if name == v || strings.HasPrefix(name, v+"_") && slices.Contains(sqliteShadowSuffixes[module], name[len(v)+1:]) {
			return true
		}
	}
	return false
}

// sqliteShadowSuffixes name the shadow tables of FTS3/4, FTS5, R*Tree and
// Geopoly after their virtual table's name and a '_'.
var sqliteShadowSuffixes = map[string][]string{
	"fts3": {"content", "segments", "segdir", "docsize", "stat"}, "fts4": {"content", "segments", "segdir", "docsize", "stat"},
	"fts5":  {"data", "idx", "content", "docsize", "config"},
	"rtree": {"node", "parent", "rowid"}, "rtree_i32": {"node", "parent", "rowid"}, "geopoly": {"node", "parent", "rowid"}}
