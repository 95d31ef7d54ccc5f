package sources

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"
)

// pgParts splits a pg_dumpall script at the \connect lines pg_dumpall
// writes (psqlConnectLine), so that each database's part runs in a psql of
// its own, connected by snap to the database the line names, restricted
// with a key of its own written before the part. The key never goes into
// the dump's stream: it did, around each \connect line, and a crafted dump
// that psql reads otherwise than pgLexer (a \connect line inside what psql
// takes for a literal) could pick it up (RAISE EXCEPTION with it, then
// :LAST_ERROR_MESSAGE, which psql reads again as a command: found by a
// review). A part that pgLexer cuts where psql would not only fails with
// SQL errors. The dump's own \restrict, \unrestrict and \encoding lines are
// dropped; a \connect of another form ends the script with an error, as in
// psqlRestricted.
type pgParts struct {
	br   *bufio.Reader
	lex  pgLexer
	next string // the database the next part runs in
	more bool   // the part read last ended at a \connect line
	err  error  // what ended the script early
}

func newPgParts(dump io.Reader) *pgParts {
	return &pgParts{br: bufio.NewReaderSize(dump, 64<<10)}
}

// errPartEnd ends a part at a \connect line.
var errPartEnd = errors.New("end of the part")

// Next returns the next part and the database it runs in ("" for the
// first, which runs in the maintenance database), or ok false after the
// last. Each part is read to its end before the next is asked for.
func (p *pgParts) Next(first bool) (db string, part io.Reader, ok bool) {
	if !first && !p.more {
		return "", nil, false
	}
	db, p.next, p.more = p.next, "", false
	lf := &lineFilter{r: p.br, start: p.start, atStart: true, seen: p.lex.write}
	return db, &pgScriptPart{lf: lf, p: p}, true
}

// Err is the error that ended the script early, if any.
func (p *pgParts) Err() error { return p.err }

func (p *pgParts) start(r *bufio.Reader) ([]byte, bool, error) {
	line, end := psqlCommandLine(&p.lex, r)
	if end < 0 {
		if psqlAnyConnect.Match(line) {
			return nil, false, fmt.Errorf("%w: %.80q…", errPsqlConnect, line)
		}
		return nil, false, nil
	}
	switch {
	case psqlRestrictLine.Match(line), psqlEncodingLine.Match(line):
		_, _ = r.Discard(end + 1)
		return nil, true, nil
	case psqlConnectLine.Match(line):
		p.next = connectName(string(line))
		_, _ = r.Discard(end + 1)
		return nil, false, errPartEnd
	case psqlAnyConnect.Match(line):
		return nil, false, fmt.Errorf("%w: %.200q", errPsqlConnect, line)
	}
	return nil, false, nil
}

// pgScriptPart is one part of a pg_dumpall script: it ends (io.EOF) at the next
// \connect line or at the script's end.
type pgScriptPart struct {
	lf *lineFilter
	p  *pgParts
}

func (r *pgScriptPart) Read(b []byte) (int, error) {
	n, err := r.lf.Read(b)
	switch {
	case errors.Is(err, errPartEnd):
		r.p.more = true
		return n, io.EOF
	case err != nil && err != io.EOF && r.p.err == nil && errors.Is(err, errPsqlConnect):
		r.p.err = err
	}
	return n, err
}

// connectName is the database a \connect line of psqlConnectLine's forms
// names: a bare name as psql takes it (lower case, as an SQL identifier),
// one in double quotes as it is, or the dbname of -reuse-previous=on
// "dbname='…'" with its quoting undone.
func connectName(line string) string {
	arg := strings.TrimPrefix(line, `\connect `)
	if v, ok := strings.CutPrefix(arg, `-reuse-previous=on "dbname='`); ok {
		v = strings.TrimSuffix(v, `'"`)
		v = strings.ReplaceAll(v, `""`, `"`)
		var b strings.Builder
		for i := 0; i < len(v); i++ {
			if v[i] == '\\' && i+1 < len(v) {
				i++
			}
			b.WriteByte(v[i])
		}
		return b.String()
	}
	if len(arg) >= 2 && arg[0] == '"' {
		return arg[1 : len(arg)-1]
	}
	return strings.ToLower(arg)
}
