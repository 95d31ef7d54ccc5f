package main

import (
	"context"
	"fmt"
	"io"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/snap-backup/snap/snapshot"
	"github.com/snap-backup/snap/sources"
)

// streamFlags are the stream sources of one create, parsed and checked but
// not started: --stdin, --command and --db.
type streamFlags struct {
	stdinName   string
	commandName string
	// allowEmptyStdin saves an empty standard input instead of failing.
	allowEmptyStdin bool
	commandArgs     []string
	dbs             []*sources.Database
	dbPaths         []string
}

// splitTrailing separates the positional arguments from the command given
// after the user's "--" (reorderArgs keeps it after a "--" of its own).
func splitTrailing(args []string) (paths, trailing []string, dashdash bool) {
	if i := slices.Index(args, "--"); i >= 0 {
		return args[:i], args[i+1:], true
	}
	return args, nil, false
}

// streamPath turns a user's NAME into an absolute path in the snapshot.
func streamPath(flag, name string) (string, error) {
	p := path.Clean("/" + name)
	if name == "" || p == "/" {
		return "", usagef("%s needs a file name to store the stream as, e.g. %s backup.sql", flag, flag)
	}
	if strings.ContainsRune(name, 0) {
		// A config's "a\u0000b" made a snapshot whose tree no command
		// could read, which check called damage (found by an
		// exploratory test).
		return "", usagef("%s %q: a file name holds no NUL character", flag, name)
	}
	return p, nil
}

// parseStreamFlags reads --stdin, --command and --db. args are the
// command's positional arguments; the paths among them are returned.
func parseStreamFlags(stdinName, commandName string, dbURLs, args []string) (streamFlags, []string, error) {
	sf := streamFlags{stdinName: stdinName, commandName: commandName}
	paths, trailing, dashdash := splitTrailing(args)
	switch {
	case commandName != "" && (!dashdash || len(trailing) == 0):
		if name, cmd, ok := strings.Cut(commandName, "="); ok && strings.ContainsAny(cmd, " \t|") && !strings.ContainsAny(name, " \t") {
			// NAME=COMMAND, as a config file's commands read: the
			// example built from it was a broken shell line (found by
			// an exploratory test).
			return sf, nil, usagef("--command takes the file name alone, and the command after --: snap create --command %s -- bash -o pipefail -c %s", shellWord(name), shQuote(cmd))
		}
		return sf, nil, usagef("--command %s needs the command after --, e.g. snap create --command %s -- pg_dump app", shellWord(commandName), shellWord(commandName))
	case commandName == "" && dashdash:
		hint := ""
		if len(trailing) > 0 && strings.HasPrefix(trailing[0], "-") {
			// The habit of other tools for a path that starts with a
			// dash; here -- starts a command's arguments.
			hint = sprintf("; a path that starts with a dash goes as ./%s", trailing[0])
		}
		return sf, nil, usagef("arguments after -- are only taken with --command NAME (%v)%s", trailing, hint)
	}
	sf.commandArgs = trailing
	var streamPaths []string
	for _, f := range []struct{ flag, name string }{{"--stdin", stdinName}, {"--command", commandName}} {
		if f.name == "" {
			continue
		}
		p, err := streamPath(f.flag, f.name)
		if err != nil {
			return sf, nil, err
		}
		streamPaths = append(streamPaths, p)
	}
	for _, raw := range dbURLs {
		d, err := sources.ParseDatabase(raw)
		if err != nil {
			return sf, nil, usagef("--db: %v", err)
		}
		if !d.All && d.Name == "" && d.Kind != sources.KindMongoDB {
			return sf, nil, usagef("--db %s names no database: add /dbname, or ?all for the whole server", d)
		}
		sf.dbs = append(sf.dbs, d)
	}
	dbPaths, err := sources.AssignDumpPaths(sf.dbs)
	if err != nil {
		return sf, nil, usagef("--db: %v", err)
	}
	sf.dbPaths = dbPaths
	if msg := streamCollision(append(streamPaths, dbPaths...)); msg != "" {
		return sf, nil, usagef("%s; choose another name", msg)
	}
	var abs []string
	for _, p := range paths {
		if a, err := filepath.Abs(p); err == nil {
			abs = append(abs, a)
		}
	}
	if msg := streamOverlap(append(streamPaths, dbPaths...), abs); msg != "" {
		return sf, nil, usagef("%s: name the stream outside the backed-up paths, or back the dump up in a snapshot of its own", msg)
	}
	return sf, paths, nil
}

// streamOverlap names each stream's path in the snapshot that lies in,
// is, or holds one of the backed-up paths (absolute), with that path, or
// returns "": the archive refuses it ("collides with … which is also
// saved"), but only after the pre hooks have run (found by a re-test).
// All are named, so that config check lists them at once.
func streamOverlap(streams, paths []string) string {
	var msgs []string
	for _, s := range streams {
		for _, p := range paths {
			if p = filepath.Clean(p); pathsOverlap(s, p) {
				msgs = append(msgs, fmt.Sprintf("the dump or command output %s and the backed-up path %s would overlap in the snapshot", s, sources.DisplayPath(p)))
				break
			}
		}
	}
	return strings.Join(msgs, "; ")
}

// rawSQLiteCopies names each SQLite database dumped (--db) whose file
// also lies in a backed-up path without an exclude, and that path: its
// file is saved too, as it is at that moment, which is not consistent
// while the application writes it, and after a loss there were two
// versions to choose from, with nothing to say which to trust (found by
// an exploratory test). The message goes with how to exclude the file
// (exclude): as a flag or in a job.
func rawSQLiteCopies(dbs []*sources.Database, paths []string, excludes []sources.Pattern, exclude func(glob string) string) []string {
	var msgs []string
	for _, d := range dbs {
		if d.Kind != sources.KindSQLite || d.File == "" {
			continue
		}
		file, err := filepath.Abs(d.File)
		if err != nil {
			continue
		}
		for _, p := range paths {
			if p, err = filepath.Abs(p); err != nil || !pathsOverlap(file, p) || len(file) < len(p) {
				continue
			}
			// The file or a directory on the way from p to it excluded.
			excluded := false
			for q := file; !excluded && q != p; q = filepath.Dir(q) {
				excluded = sources.MatchAny(excludes, q)
			}
			excluded = excluded || sources.MatchAny(excludes, p)
			if !excluded {
				msgs = append(msgs, fmt.Sprintf("the SQLite database %s is dumped, and its file is also saved with the backed-up path %s as it is at that moment, which is not consistent while it is written: exclude it (%s) and restore it with 'snap restore --db'",
					sources.DisplayPath(file), sources.DisplayPath(p), exclude(file+"*")))
			}
			break
		}
	}
	return msgs
}

// streamCollision says how the paths that streams are stored as collide,
// or "": the same path twice, or one a file and another inside it, which
// the archive found only after the pre hooks had run (found by an
// exploratory test). Every collision is named, so that config check lists
// them all at once.
func streamCollision(paths []string) string {
	var msgs []string
	for i, a := range paths {
		for _, b := range paths[i+1:] {
			var msg string
			switch {
			case a == b:
				msg = fmt.Sprintf("two sources would both be stored as %s", a)
			case pathsOverlap(a, b):
				f, in := min(a, b), max(a, b)
				msg = fmt.Sprintf("one source would be stored as the file %s and another inside it, as %s", f, in)
			default:
				continue
			}
			if !slices.Contains(msgs, msg) {
				msgs = append(msgs, msg)
			}
		}
	}
	return strings.Join(msgs, "; ")
}

// build resolves the dump tools (failing when one is not installed) and
// returns the archiver's streams. Tool output goes to u.
func (sf streamFlags) build(ctx context.Context, e *env, u *ui) ([]snapshot.Stream, error) {
	var out []snapshot.Stream
	if sf.stdinName != "" {
		p, _ := streamPath("--stdin", sf.stdinName)
		out = append(out, snapshot.Stream{Path: p, Open: sources.StdinStream(e.stdin, sf.allowEmptyStdin), Source: snapshot.Source{Kind: sources.KindStdin}})
	}
	if sf.commandName != "" {
		p, _ := streamPath("--command", sf.commandName)
		out = append(out, u.commandStream(p, sf.commandArgs))
	}
	for i, d := range sf.dbs {
		dump, err := d.Dump(ctx)
		if err != nil {
			return nil, err
		}
		p := sf.dbPaths[i]
		out = append(out, snapshot.Stream{Path: p, Open: dump.Open(u.toolLines(p), u.toolNotes(p)), Properties: dump.Properties, Check: dump.Check,
			Source: snapshot.Source{Kind: d.Kind, URL: d.String(), Tool: dump.Tool, Version: dump.Version}})
	}
	return out, nil
}

// commandStream is the stream source at p of the output of the program
// argv (--command, a job's commands), its lines and snap's notes about it
// shown as toolLines and toolNotes show them.
func (u *ui) commandStream(p string, argv []string) snapshot.Stream {
	note := u.toolNotes(p)
	// Its standard error bounded as a dump tool's: a command that prints
	// a line per table or per row put every one in the journal.
	cmd := sources.Command{Name: argv[0], Args: argv[1:], Stderr: u.toolLines(p), Note: note, StderrLines: sources.ClientStderrLines}
	if n := len(argv); n >= 3 && argv[n-2] == "-c" && slices.Contains([]string{"sh", "bash", "dash"}, filepath.Base(argv[0])) {
		// A command given as one string (shellArgv) fails as itself:
		// "/usr/bin/bash failed" named no command the admin wrote
		// (found by an exploratory test).
		cmd.Display = fmt.Sprintf("command %q", argv[n-1])
	}
	open := func(ctx context.Context) (io.ReadCloser, error) {
		rc, err := cmd.Start(ctx)
		if err != nil {
			return nil, err
		}
		return &emptyNoted{ReadCloser: rc, note: note}, nil
	}
	return snapshot.Stream{Path: p, Open: open, Source: snapshot.Source{Kind: sources.KindCommand, Tool: filepath.Base(argv[0])}}
}

// emptyNoted is a command's output that, when the command succeeded
// without writing a byte, says so at Close: the file is saved empty, and a
// dump tool that failed without saying so (behind a wrapper, or a
// pipeline under a shell without pipefail) looks just like that. Not an
// error, as for --stdin: some commands have nothing to say some nights.
type emptyNoted struct {
	io.ReadCloser
	note     func(string)
	read     int64
	finished bool
}

func (r *emptyNoted) Read(b []byte) (int, error) {
	n, err := r.ReadCloser.Read(b)
	r.read += int64(n)
	r.finished = r.finished || err == io.EOF
	return n, err
}

func (r *emptyNoted) Close() error {
	err := r.ReadCloser.Close()
	if err == nil && r.finished && r.read == 0 {
		r.note("the command succeeded but wrote nothing: its file is saved empty (if it should have written something, run it by hand to see why not)")
	}
	return err
}

// toolNotes returns a callback that shows what snap has to say about a
// program it runs, marked with what the program is producing: among the
// program's lines on a terminal, marked "(snap: …)" as its own; a notice
// with --json, not a line of the program's (found by an exploratory test).
func (u *ui) toolNotes(source string) func(string) {
	lines := u.toolLines(source)
	return func(msg string) {
		if u.json && !u.quiet {
			u.jsonLine(map[string]any{"type": "notice", "source": source, "message": msg})
			return
		}
		lines("(snap: " + msg + ")")
	}
}

// toolLines returns a callback that shows a program's standard error lines,
// each marked with what it is producing.
func (u *ui) toolLines(source string) func(string) {
	return func(line string) {
		if u.quiet {
			return
		}
		if u.json {
			u.jsonLine(map[string]any{"type": "stderr", "source": source, "message": line})
			return
		}
		// A notice: under journald it gets its own priority, and the
		// progress bar is erased first.
		u.log.Log(context.Background(), levelNotice, source+": "+line)
	}
}

// runningStreams records the streams of a create whose program was still
// running when the create was stopped (Ctrl-C, a job's timeout), so that
// the error names what it was waiting for: "did not finish within 6s"
// alone left the admin to guess that a dump waited on a table lock
// (found by an exploratory test).
type runningStreams struct {
	mu      sync.Mutex
	running map[*snapshot.Stream]bool
}

// track wraps the Open of each stream to record it from its start until
// it ends, unless ctx was done by then: a stream ended by the stop stays.
func (rs *runningStreams) track(streams []snapshot.Stream) []snapshot.Stream {
	rs.running = map[*snapshot.Stream]bool{}
	out := slices.Clone(streams)
	for i := range out {
		st := &out[i]
		open := st.Open
		st.Open = func(ctx context.Context) (io.ReadCloser, error) {
			rc, err := open(ctx)
			if err != nil {
				return nil, err
			}
			rs.set(st, true)
			return &trackedStream{ReadCloser: rc, done: func() {
				if ctx.Err() == nil {
					rs.set(st, false)
				}
			}}, nil
		}
	}
	return out
}

func (rs *runningStreams) set(st *snapshot.Stream, on bool) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if on {
		rs.running[st] = true
	} else {
		delete(rs.running, st)
	}
}

// names says which streams were running ("" for none): "/db/x.sql from
// pg_dump, …", in path order.
func (rs *runningStreams) names() string {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	var out []string
	for st := range rs.running {
		from := st.Source.Tool
		if from == "" {
			from = "standard input" // --stdin: "from  was still running" (found by an exploratory test)
		}
		out = append(out, fmt.Sprintf("%s from %s", sources.DisplayPath(st.Path), from))
	}
	slices.Sort(out)
	return strings.Join(out, ", ")
}

type trackedStream struct {
	io.ReadCloser
	done func()
	once sync.Once
}

func (t *trackedStream) Close() error {
	err := t.ReadCloser.Close()
	t.once.Do(t.done)
	return err
}
