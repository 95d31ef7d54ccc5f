package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/urfave/cli/v2"

	"github.com/snap-backup/snap/snapshot"
)

// ui prints results and messages as the flags ask: human text on stdout,
// messages on stderr through log/slog (with journald priority prefixes
// under systemd), or JSON.
type ui struct {
	mu       *sync.Mutex // serialises writes from concurrent reporters
	out, err io.Writer
	json     bool
	quiet    bool
	verbose  bool
	tty      bool // stderr is a terminal, not a dumb one: progress bars are allowed
	// jsonLines is set for commands that report as they run (create,
	// restore, run, …): with --json they print one object per line on
	// stdout, messages included. Listing commands print one document on
	// stdout and their messages as JSON lines on stderr.
	jsonLines bool
	log       *slog.Logger
	// fields are added to every JSON line (the job name during 'run').
	fields map[string]any
	// bar is the progress bar on stderr, erased before a message is
	// written; guarded by mu.
	bar *progressBar
}

// jsonLinesCommands are the commands whose --json output is one object per
// line (docs/usage.md, "JSON output"). Add a running command here.
var jsonLinesCommands = map[string]bool{
	"create": true, "restore": true, "run": true, "prune": true, "check": true, "copy": true, "repair index": true,
}

func newUI(c *cli.Context, e *env) *ui {
	name := ""
	if c.Command != nil {
		name = commandName(c)
	}
	u := &ui{mu: &sync.Mutex{}, out: e.stdout, err: e.stderr, json: gbool(c, "json"), quiet: gbool(c, "quiet"), verbose: gbool(c, "verbose"),
		tty: e.stderrTTY && !dumbTerminal(e.getenv), jsonLines: jsonLinesCommands[name]}
	u.initLog(e)
	return u
}

// initLog builds the logger: JSON lines with --json, journald lines when
// stderr is the journal, text otherwise. --verbose shows info messages,
// --quiet hides notices.
func (u *ui) initLog(e *env) {
	h := &logHandler{mu: u.mu, w: u.err, format: logText, level: levelNotice,
		before: func() {
			if u.bar != nil {
				u.bar.clear()
			}
		}}
	switch {
	case u.json:
		h.format = logJSON
		h.fields = func() map[string]any { return u.fields }
		if u.jsonLines {
			h.w = u.out
		}
	case e.journal:
		h.format = logJournal
	}
	if u.verbose {
		h.level = slog.LevelInfo
	}
	if u.quiet {
		h.level = slog.LevelWarn
	}
	u.log = slog.New(h)
}

// printf prints a human result line (suppressed by --quiet and --json).
func (u *ui) printf(format string, args ...any) {
	if u.quiet {
		return
	}
	u.resultf(format, args...)
}

// resultf prints a line of what a listing command was asked for (stats,
// the plan of a dry run): shown also with --quiet, which hides only
// headings, summaries and notices; not with --json.
func (u *ui) resultf(format string, args ...any) {
	if u.json {
		return
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.bar != nil {
		u.bar.clear()
	}
	fmt.Fprintln(u.out, escapeControls(fmt.Sprintf(format, args...)))
}

// infof prints a detail shown with --verbose.
func (u *ui) infof(format string, args ...any) {
	if !u.verbose || u.json {
		return
	}
	u.log.Info(fmt.Sprintf(format, args...))
}

// noticef prints a message worth reading that is not a problem (hidden by
// --quiet and --json).
func (u *ui) noticef(format string, args ...any) {
	if u.json {
		return
	}
	u.log.Log(context.Background(), levelNotice, fmt.Sprintf(format, args...))
}

// choicef tells which snapshot 'latest' chose when that may not be the
// one meant (another host's): a notice, hidden by --quiet, that
// JSON output keeps as a "notice" line, as a script acting on the chosen
// snapshot needs it as much as a person (it was dropped with --json;
// found by an exploratory test).
func (u *ui) choicef(format string, args ...any) {
	u.log.Log(context.Background(), levelNotice, fmt.Sprintf(format, args...))
}

// warnf prints a warning on stderr (as a JSON line with --json).
func (u *ui) warnf(format string, args ...any) {
	u.log.Warn(fmt.Sprintf(format, args...))
}

// errorf reports a non-fatal error (a skipped file).
func (u *ui) errorf(format string, args ...any) {
	u.log.Error(fmt.Sprintf(format, args...))
}

// jsonLine writes one JSON object per line to stdout, with the ui's extra
// fields (see fields) in front.
func (u *ui) jsonLine(v any) {
	b, err := json.Marshal(v)
	if err != nil {
		return
	}
	if len(u.fields) > 0 && len(b) > 1 && b[0] == '{' {
		pre, err := json.Marshal(u.fields)
		if err == nil && len(pre) > 2 {
			sep := ","
			if string(b) == "{}" {
				sep = ""
			}
			b = append(append(pre[:len(pre)-1:len(pre)-1], sep...), b[1:]...)
		}
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	fmt.Fprintf(u.out, "%s\n", b)
}

// jsonDoc writes one indented JSON document to stdout.
func (u *ui) jsonDoc(v any) error {
	enc := json.NewEncoder(u.out)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// jsonArray writes, in pieces, the document jsonDoc would write for a map
// with one large array: its elements are encoded as they come rather than
// collected first ('ls --json' of 323,000 entries held 530 MB). The output
// is byte for byte jsonDoc's. The array's place among the sorted keys comes
// from encoding the document with the array empty, the keys before it from
// Begin's fields and those after it from End's (which may be known only at
// the end). An element may itself hold a large array, written in pieces
// too (Open, Close). A command that fails midway leaves a document cut
// short, which its exit code says.
type jsonArray struct {
	w      *bufio.Writer
	key    string
	indent string // of the line that names the array
	n      int
}

// jsonArray returns the writer of a document whose array is key.
func (u *ui) jsonArray(key string) *jsonArray {
	return &jsonArray{w: bufio.NewWriterSize(u.out, 64<<10), key: key, indent: "  "}
}

// split encodes v, which holds the array empty, as it is written at
// prefix, and cuts it around the array: head ends with the array's '[',
// tail starts after its ']'.
func (a *jsonArray) split(v any, prefix string) (head, tail []byte, err error) {
	b, err := json.MarshalIndent(v, prefix, "  ")
	if err != nil {
		return nil, nil, err
	}
	name, err := json.Marshal(a.key)
	if err != nil {
		return nil, nil, err
	}
	// A newline inside a JSON string is escaped: this finds the key itself.
	mark := append(append([]byte("\n"+a.indent), name...), ": ["...)
	i := bytes.Index(b, mark)
	if i < 0 {
		return nil, nil, fmt.Errorf("json: no %s in the document", name)
	}
	return b[:i+len(mark)], b[i+len(mark)+1:], nil
}

// splitDoc is split of the document of doc's fields and the array.
func (a *jsonArray) splitDoc(doc map[string]any) (head, tail []byte, err error) {
	full := make(map[string]any, len(doc)+1)
	for k, v := range doc {
		full[k] = v
	}
	full[a.key] = []struct{}{}
	return a.split(full, "")
}

// Begin writes the document up to the array, with the fields sorted before
// it (those after it may be missing: End writes them).
func (a *jsonArray) Begin(doc map[string]any) error {
	head, _, err := a.splitDoc(doc)
	if err != nil {
		return err
	}
	_, err = a.w.Write(head)
	return err
}

// next starts the next element's line.
func (a *jsonArray) next() {
	if a.n > 0 {
		a.w.WriteByte(',')
	}
	a.n++
	a.w.WriteString("\n" + a.indent + "  ")
}

// Add writes one element of the array.
func (a *jsonArray) Add(v any) error {
	b, err := json.MarshalIndent(v, a.indent+"  ", "  ")
	if err != nil {
		return err
	}
	a.next()
	_, err = a.w.Write(b)
	return err
}

// Open writes one element that holds an array of its own, key, up to that
// array's '[': v is the element with that array empty (not nil). The
// returned writer's Add writes the inner array's elements, and its Close
// ends the element.
func (a *jsonArray) Open(v any, key string) (*jsonArray, error) {
	in := &jsonArray{w: a.w, key: key, indent: a.indent + "    "}
	head, _, err := in.split(v, a.indent+"  ")
	if err != nil {
		return nil, err
	}
	a.next()
	_, err = a.w.Write(head)
	return in, err
}

// Close ends the element Open began: v is that element again, with the
// array empty, and with the fields after the array as they are now.
func (a *jsonArray) Close(v any) error {
	_, tail, err := a.split(v, a.indent[:len(a.indent)-4]+"  ")
	if err != nil {
		return err
	}
	a.end(tail)
	return nil
}

// end closes the array and writes tail, what follows it.
func (a *jsonArray) end(tail []byte) {
	if a.n > 0 {
		a.w.WriteString("\n" + a.indent)
	}
	a.w.WriteByte(']')
	a.w.Write(tail)
}

// End closes the array, writes the fields after it from doc, and flushes.
func (a *jsonArray) End(doc map[string]any) error {
	_, tail, err := a.splitDoc(doc)
	if err != nil {
		return err
	}
	a.end(tail)
	a.w.WriteByte('\n')
	return a.w.Flush()
}

// Flush writes what is buffered: a command that fails midway shows how far
// it got.
func (a *jsonArray) Flush() error { return a.w.Flush() }

// humanBytes formats a byte count with binary units.
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

func localTime(t time.Time) string { return snapshot.TimeIn(t, time.Local) }

// listedPath is a path, user or group name as the listings of ls and diff
// print it: quoted with Go's escapes when it holds a control character
// (one entry is one line) or starts with a quote, otherwise byte for byte, also when it is not
// UTF-8, so that what a listing shows can be matched by grep. Messages
// quote those too (sources.DisplayPath).
func listedPath(p string) string {
	// One that starts with a quote is quoted too: it would read as a
	// quoted one (found by an exploratory test: a symlink target of
	// `"a\nb"` typed out printed as one holding a newline).
	// A byte 0x80–0x9f outside a UTF-8 character is a C1 control to a
	// terminal outside UTF-8 (0x9b is ESC [), which IsControl, seeing
	// U+FFFD, let through (found by a red-team test).
	if strings.IndexFunc(p, unicode.IsControl) >= 0 || strings.HasPrefix(p, `"`) || hasRawC1(p) {
		return strconv.Quote(p)
	}
	return p
}

// tableRow is a row for a text/tabwriter table with each byte 0xff of its
// cells (a path's, not UTF-8) written \xff: the table takes that byte for
// its escape, and misaligned every row after it.
func tableRow(row string) string { return strings.ReplaceAll(row, "\xff", `\xff`) }

// plural is "1 entry" or "n entries".
func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}
