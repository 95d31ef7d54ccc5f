package sources

import "bytes"

// pgLexer follows a PostgreSQL dump script as psql reads it, byte by byte
// and across lines, so that the restore's line filters (psqlRestricted,
// pgOneTransaction) touch only lines psql itself takes for commands and
// statements: a line inside a literal or a function's body ("\restrict
// …", "BEGIN;", "\connect db" in a comment or a dollar-quoted body) is
// text, and was dropped, or had snap's lines put around it, silently
// changing the restored function (found by an exploratory test). What
// it follows, as psql's lexer does:
//
//   - '…' literals (a doubled quote stands for itself; with E'…', or when
//     the script turned standard_conforming_strings off, a backslash
//     escapes the byte after it), "…" identifiers, $tag$…$tag$ bodies;
//   - -- comments to the end of the line, and /* … */ comments, nested;
//   - a backslash command, from a backslash outside all of those to the
//     end of its line (its arguments have quotes of their own, which end
//     with it);
//   - COPY … FROM stdin: the rows after it, to the line "\.", are data.
//
// It cannot be exact (psql's reading depends on the server at run time: a
// failed COPY leaves its rows to be read as SQL). A reading that differs
// from psql's (a crafted dump) is why no secret goes into the stream it
// judges: psql runs a dump restricted, with its key written before the
// dump (psqlRestricted) or before each part of a whole-server dump
// (pgParts), and refuses every backslash command in it.
type pgLexer struct {
	st     pgLexState
	escape bool // the literal open takes backslash escapes (E'…')
	// nonStd: the script set standard_conforming_strings off, and every
	// literal takes backslash escapes.
	nonStd bool
	skip   bool   // the next byte is escaped (a backslash before it)
	tag    []byte // the open dollar quote's tag, "$tag$", or the one being read
	match  int    // how much of tag the body's last bytes match
	depth  int    // nesting of /* … */ comments
	prev   byte   // the byte before, outside quotes (E'…', $ after a name)
	prev2  byte   // the one before that
	// The statement being read: its first bytes, for COPY … FROM stdin,
	// which pg_dump writes over several lines when a name holds a line
	// break; stmtOpen once its first byte is read, until its ";".
	stmt     []byte
	stmtOpen bool
	// The line being read: whether it began as code (outside everything)
	// and its first bytes, for the "\." that ends COPY rows and for SET
	// lines; its last bytes, for the end of COPY … FROM stdin.
	codeLine bool
	head     []byte
	tail     []byte
	long     bool // head holds only the line's first pgLexHead bytes
	midLine  bool // a line has begun: the next byte does not start one
}

type pgLexState int

const (
	pgLexCode         pgLexState = iota // SQL, outside quotes and comments
	pgLexQuote                          // inside '…'
	pgLexQuoteEnd                       // a quote in '…': doubled, or its end
	pgLexIdent                          // inside "…"
	pgLexDollar                         // inside $tag$…$tag$
	pgLexTag                            // reading a $tag$ that opens a body
	pgLexLineComment                    // -- to the end of the line
	pgLexBlockComment                   // /* … */
	pgLexCommand                        // a backslash command, to the end of the line
	pgLexCopy                           // COPY data, to the line "\."
)

// pgLexHead is how much of a line pgLexer keeps to recognise it.
const pgLexHead = 64

// pgLexCopyTail is the end of pg_dump's COPY statement: its rows follow.
var pgLexCopyTail = []byte(" FROM stdin;")

// atLineStart reports whether psql reads the line that starts now as
// commands and statements: not inside a literal, a body, a comment or COPY
// data. Called at the start of a line.
func (l *pgLexer) atLineStart() bool { return l.st == pgLexCode }

// inCopy reports whether the line that starts now is a row of COPY data
// (or its end, "\.").
func (l *pgLexer) inCopy() bool { return l.st == pgLexCopy }

// write follows the bytes of the script passed to psql.
func (l *pgLexer) write(b []byte) {
	for _, c := range b {
		l.byte(c)
	}
}

func (l *pgLexer) byte(c byte) {
	if !l.midLine {
		l.midLine, l.codeLine = true, l.st == pgLexCode
		l.head, l.tail, l.long = l.head[:0], l.tail[:0], false
	}
	l.keepLine(c)
	if c == '\n' {
		defer l.lineEnded()
	}
	switch l.st {
	case pgLexCopy:
		return
	case pgLexCommand, pgLexLineComment:
		if c == '\n' {
			l.st = pgLexCode
		}
		return
	case pgLexQuoteEnd:
		if c == '\'' {
			l.st = pgLexQuote // a doubled quote
			return
		}
		l.st = pgLexCode // the literal ended: c is code
		l.prev, l.prev2 = '\'', 0
	case pgLexQuote:
		switch {
		case l.skip:
			l.skip = false
		case c == '\\' && (l.escape || l.nonStd):
			l.skip = true
		case c == '\'':
			l.st = pgLexQuoteEnd
		}
		return
	case pgLexIdent:
		if c == '"' {
			l.st = pgLexCode // a doubled one opens again at once
			l.prev, l.prev2 = '"', 0
		}
		return
	case pgLexDollar:
		switch {
		case c == l.tag[l.match]:
			l.match++
		case c == '$':
			l.match = 1
		default:
			l.match = 0
		}
		if l.match == len(l.tag) {
			l.st, l.match = pgLexCode, 0
			l.prev, l.prev2 = '$', 0
		}
		return
	case pgLexTag:
		switch {
		case c == '$':
			l.tag = append(l.tag, '$')
			l.st, l.match = pgLexDollar, 0
			return
		case identStart(c) || len(l.tag) > 1 && c >= '0' && c <= '9':
			l.tag = append(l.tag, c)
			return
		}
		l.st = pgLexCode // "$1", "$ ": no body; c is code
		l.prev, l.prev2 = l.tag[len(l.tag)-1], 0
	case pgLexBlockComment:
		switch {
		case l.prev == '/' && c == '*':
			l.depth++
			c = 0 // "/*/" opens, and does not close
		case l.prev == '*' && c == '/':
			if l.depth--; l.depth == 0 {
				l.st = pgLexCode
			}
			c = 0
		}
		l.prev = c
		return
	}
	// pgLexCode.
	switch {
	case c == ';':
		l.stmtOpen = false
	case !l.stmtOpen && c != ' ' && c != '\t' && c != '\n' && c != '\r' && c != '\\':
		l.stmtOpen, l.stmt = true, append(l.stmt[:0], c)
	case l.stmtOpen && len(l.stmt) < len("COPY "):
		l.stmt = append(l.stmt, c)
	}
	switch {
	case c == '\'':
		l.st, l.skip = pgLexQuote, false
		l.escape = (l.prev == 'E' || l.prev == 'e') && !identByte(l.prev2)
	case c == '"':
		l.st = pgLexIdent
	case c == '$' && !identByte(l.prev):
		l.st, l.tag = pgLexTag, append(l.tag[:0], '$')
	case c == '-' && l.prev == '-':
		l.st = pgLexLineComment
		l.commentFirst()
	case c == '*' && l.prev == '/':
		l.st, l.depth = pgLexBlockComment, 1
		l.commentFirst()
		c = 0
	case c == '\\':
		l.st = pgLexCommand
	}
	l.prev2, l.prev = l.prev, c
}

// keepLine records c in the line's head and tail.
func (l *pgLexer) keepLine(c byte) {
	if c == '\n' {
		return
	}
	if len(l.head) < pgLexHead {
		l.head = append(l.head, c)
	} else {
		l.long = true
	}
	if len(l.tail) == len(pgLexCopyTail) {
		l.tail = append(l.tail[:0], l.tail[1:]...)
	}
	l.tail = append(l.tail, c)
}

// lineEnded moves on at the end of a line: into COPY data after pg_dump's
// COPY statement, out of it at "\.", and it notes a SET of
// standard_conforming_strings.
func (l *pgLexer) lineEnded() {
	l.midLine = false
	line := bytes.TrimSuffix(l.head, []byte("\r"))
	tail := bytes.TrimSuffix(l.tail, []byte("\r"))
	switch {
	case l.st == pgLexCopy:
		if !l.long && bytes.Equal(line, []byte(`\.`)) {
			l.st = pgLexCode
		}
	case l.st != pgLexCode:
	case bytes.Equal(l.stmt, []byte("COPY ")) && !l.stmtOpen && bytes.HasSuffix(tail, pgLexCopyTail):
		l.st = pgLexCopy
	case !l.codeLine:
	case !l.long && bytes.Equal(line, []byte("SET standard_conforming_strings = off;")):
		l.nonStd = true
	case !l.long && bytes.Equal(line, []byte("SET standard_conforming_strings = on;")):
		l.nonStd = false
	}
	l.prev, l.prev2 = '\n', 0
}

// commentFirst takes back the start of a statement that was only the
// first byte of a comment ("-" of "--"): the statement starts after it.
func (l *pgLexer) commentFirst() {
	if l.stmtOpen && len(l.stmt) == 2 {
		l.stmtOpen = false
	}
}

// identStart reports whether c may start a name (or a dollar quote's tag).
func identStart(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || c >= 0x80
}

// identByte reports whether c may continue a name: "$" too, so that a$b$
// is a name, not a dollar quote.
func identByte(c byte) bool { return identStart(c) || c >= '0' && c <= '9' || c == '$' }
