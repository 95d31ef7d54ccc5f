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
// psql's \! runs shell commands, \o writes files, \copy reaches other
// files, all as the user who restores (root, often). So a dump is loaded
// with them shut off: psql in restricted mode (\restrict, since 13.22,
// 14.19, 15.14, 16.10 and 17.6), where it refuses every backslash command.
// A client too old for it is refused rather than trusted (found by an
// exploratory test: a crafted dump ran `id` as root). MariaDB's client is
// run with --binary-mode, which refuses its shell command, and
// --local-infile=0. A SQLite dump is loaded by SQLite's library inside
// snap, which has none of the sqlite3 shell's commands and functions, and
// only as far as it reads as what .dump writes (sqliteload.go,
// sqlitescreen.go).

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

// psqlRestricted passes a single database's dump to psql in restricted
// mode under key: the dump's own \restrict and \unrestrict lines (lines
// psql reads as commands: not text in a literal or a body, pgLexer) are
// dropped, as psql refuses a second \restrict. Every other backslash
// command psql refuses. (A whole-server dump runs in parts: pgParts.)
func psqlRestricted(dump io.Reader, key string) io.Reader {
	lex := &pgLexer{}
	body := newLineFilter(dump, func(r *bufio.Reader) ([]byte, bool, error) {
		if line, end := psqlCommandLine(lex, r); end >= 0 && psqlRestrictLine.Match(line) {
			_, _ = r.Discard(end + 1)
			return nil, true, nil
		}
		return nil, false, nil
	})
	body.seen = lex.write
	return restrictedUnder(key, body)
}

// restrictedUnder is script for psql with the \restrict line of key before
// it, where nothing of the script can reach it.
func restrictedUnder(key string, script io.Reader) io.Reader {
	return io.MultiReader(strings.NewReader("\\restrict "+key+"\n"), script)
}

// psqlCommandLine peeks at the line that starts r when psql reads it as a
// backslash command (lex, following what was passed before it, finds it
// outside literals, bodies, comments and COPY rows): the line without its
// line ending, and where that ending is in r; or, for any other line, the
// bytes peeked and end -1 (-1 also when the line is longer than a peek).
func psqlCommandLine(lex *pgLexer, r *bufio.Reader) (line []byte, end int) {
	if !lex.atLineStart() {
		return nil, -1 // text of a literal, a body, a comment, or COPY rows
	}
	b, _ := r.Peek(pgLinePeek)
	if len(b) == 0 || b[0] != '\\' {
		return nil, -1
	}
	end = bytes.IndexByte(b, '\n')
	if end < 0 {
		return b, -1
	}
	return bytes.TrimSuffix(b[:end], []byte("\r")), end
}

// errPsqlConnect is a whole-server dump's \connect line of a form
// pg_dumpall does not write.
var errPsqlConnect = errors.New("the whole-server dump holds a \\connect line that pg_dumpall does not write, which could connect to another server or database: it was made or changed by someone else; the restore stopped there, and the server holds the databases loaded before it (to load it anyway, write it out with 'snap dump' and read it with psql yourself)")

// psqlRefused is psql's message for a backslash command it refused in
// restricted mode.
const psqlRefused = "backslash commands are restricted"
