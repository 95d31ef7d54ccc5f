package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/urfave/cli/v2"

	"github.com/snap-backup/snap/repo"
	"github.com/snap-backup/snap/snapshot"
	"github.com/snap-backup/snap/sources"
)

// dbKinds are the source kinds that restore --db loads into a database.
var dbKinds = []string{sources.KindPostgres, sources.KindMySQL, sources.KindSQLite, sources.KindMongoDB}

// findDumpSourceOfKind picks the dump a --db NAME means: the dump's path
// as 'snap ls' shows it, or, where that is unique in the snapshot, the
// database's name or the dump's file name, among the dumps of one kind
// (all when kind is ""): with --to, a name is looked for among the dumps of
// the URL's kind only, so that an SQLite and a MariaDB dump of the same
// name are not ambiguous for --to mysql://…. A dump named by its path is
// taken whatever its kind (restoreDatabases then says it does not fit).
func findDumpSourceOfKind(sn *snapshot.Snapshot, name, kind string) (snapshot.Source, error) {
	var dumps, all []snapshot.Source
	for _, src := range sn.Sources {
		if path.Clean("/"+name) == src.Path {
			if !slices.Contains(dbKinds, src.Kind) {
				return src, fmt.Errorf("%s is a %s stream, not a database dump: write it out with 'snap dump %s %s'", src.Path, src.Kind, sn.ID.Short(), src.Path)
			}
			return src, nil
		}
		if slices.Contains(dbKinds, src.Kind) {
			all = append(all, src)
			if kind == "" || src.Kind == kind {
				dumps = append(dumps, src)
			}
		}
	}
	matches := dumpsNamed(dumps, name)
	var names []string
	for _, src := range dumps {
		names = append(names, src.Path)
	}
	ofKind := ""
	if kind != "" {
		ofKind = " " + kind
	}
	if others := dumpsNamed(all, name); len(matches) == 0 && len(others) > 0 {
		// Of another kind than --to names: that is the mistake to name,
		// with every dump of that name (one of two was named; found by
		// an exploratory test).
		var what []string
		for _, o := range others {
			what = append(what, fmt.Sprintf("%s is a %s dump", o.Path, o.Kind))
		}
		into := fmt.Sprintf("restore it into a %s database", others[0].Kind)
		if len(others) > 1 {
			into = "restore one into a database of its kind, naming it by its path"
		}
		return snapshot.Source{}, otherKindError{&usageError{msg: fmt.Sprintf("--db %s: %s, and --to names a %s database; %s", name, strings.Join(what, ", "), kind, into)}}
	}
	switch {
	case len(matches) == 1:
		return matches[0], nil
	case len(matches) > 1:
		var paths []string
		for _, m := range matches {
			paths = append(paths, m.Path)
		}
		return snapshot.Source{}, usagef("--db %s is ambiguous in snapshot %s: give one of %s", name, sn.ID.Short(), strings.Join(paths, ", "))
	case len(dumps) == 0:
		return snapshot.Source{}, fmt.Errorf("snapshot %s holds no%s database dumps", sn.ID.Short(), ofKind)
	}
	return snapshot.Source{}, fmt.Errorf("snapshot %s has no%s dump %q; it has %s%s", sn.ID.Short(), ofKind, name, strings.Join(names, ", "), dumpHint(sn, name, kind))
}

// dumpHint is a "did you mean" for a --db name that no dump of sn (of the
// kind, unless "") has: the name of a dump a typing slip away, as --db
// takes it (file name without extension, database name, SQLite file name),
// or "".
func dumpHint(sn *snapshot.Snapshot, name, kind string) string {
	return dumpHintAmong([]*snapshot.Snapshot{sn}, name, kind, nil)
}

// dumpHintAmong is dumpHint over the dumps of every snapshot of sns,
// leaving out the dumps that bear a name of given (the other names of the
// same restore: "did you mean" offered one of them; found by a review).
func dumpHintAmong(sns []*snapshot.Snapshot, name, kind string, given []string) string {
	var groups [][]string
	for _, sn := range sns {
		groups = append(groups, dumpNames(sn, kind)...)
	}
	groups = slices.DeleteFunc(groups, func(g []string) bool {
		return slices.ContainsFunc(g, func(n string) bool { return slices.Contains(given, n) })
	})
	maxDist := 0
	switch {
	case len(name) >= 4:
		maxDist = 2
	case len(name) == 3:
		maxDist = 1
	}
	if near := nearestNames(name, groups, maxDist); len(near) > 0 {
		return " (did you mean " + strings.Join(near, " or ") + "?)"
	}
	return ""
}

// dumpNames lists, for each dump of sn (of the kind, unless ""), the
// names --db takes for it.
func dumpNames(sn *snapshot.Snapshot, kind string) [][]string {
	var groups [][]string
	for _, src := range sn.Sources {
		if !slices.Contains(dbKinds, src.Kind) || kind != "" && src.Kind != kind {
			continue
		}
		base := path.Base(src.Path)
		g := []string{strings.TrimSuffix(base, path.Ext(base)), base}
		if d, err := sources.ParseRecordedDatabase(src.URL); err == nil {
			if d.Name != "" {
				g = append(g, d.Name)
			}
			if d.File != "" {
				g = append(g, path.Base(d.File))
			}
		}
		groups = append(groups, g)
	}
	return groups
}

// dumpsNamed returns the dumps of srcs that --db name means: by the dump's
// file name, with or without its extension, the database's name, an
// SQLite database's file name, or the database's URL as recorded (as
// 'snap list --json' shows it, or written so that it reads the same).
func dumpsNamed(srcs []snapshot.Source, name string) []snapshot.Source {
	// name as a database URL: it matches the dump of the same database
	// however either is spelt (localhost or 127.0.0.1, the default port
	// or none), as create tells them apart; only the recorded spelling
	// matched (found by an exploratory test).
	var given *sources.Database
	if strings.Contains(name, "://") {
		if d, err := sources.ParseRecordedDatabase(name); err == nil {
			given = d
		}
	}
	var matches []snapshot.Source
	for _, src := range srcs {
		base := path.Base(src.Path)
		dbName, fileName := "", ""
		d, err := sources.ParseRecordedDatabase(src.URL)
		if err == nil {
			dbName = d.Name
			if d.File != "" {
				fileName = path.Base(d.File) // an SQLite database by its file's name
			}
		}
		if name == base || name == strings.TrimSuffix(base, path.Ext(base)) || (dbName != "" && name == dbName) || (fileName != "" && name == fileName) ||
			name == src.URL || (given != nil && err == nil && sources.SameDatabase(given, d)) {
			matches = append(matches, src)
		}
	}
	return matches
}

// otherKindError is the usage error of a dump asked for by name that is of
// another kind than --to names: the snapshot does not hold what is asked
// for (holdingDumps), but the error names the mistake.
type otherKindError struct{ *usageError }

func (e otherKindError) Unwrap() error { return e.usageError }

// dbRestore is one --db of a restore: the dump, the database it was taken
// from and the one it goes into.
type dbRestore struct {
	src        snapshot.Source
	from, into *sources.Database
}

// planDBRestore finds the dump name means and where it goes: its own
// database, or the one to names (nil without --to).
func planDBRestore(sn *snapshot.Snapshot, name string, to *sources.Database) (dbRestore, error) {
	kind := ""
	if to != nil {
		kind = to.Kind
	}
	src, err := findDumpSourceOfKind(sn, name, kind)
	if err != nil {
		return dbRestore{}, err
	}
	from, err := sources.ParseRecordedDatabase(src.URL)
	if err != nil {
		return dbRestore{}, fmt.Errorf("dump %s records the source %q, which cannot be read: %v; write it out with 'snap dump'", src.Path, src.URL, err)
	}
	into := from
	if to == nil && src.Path != from.DumpPath(false) && src.Path != from.DumpPath(true) {
		// Not where snap stores a dump of that database: a name given
		// for one database would load into another (found by a red-team
		// test).
		return dbRestore{}, fmt.Errorf("dump %s records the database %s, whose dump snap stores as %s: the snapshot was not written by snap as it is; give the database to restore into with --to", src.Path, from, from.DumpPath(false))
	}
	if to != nil {
		into = to
		if into.Kind != from.Kind {
			return dbRestore{}, usagef("--to %s: %s is a %s dump; restore it into a %s database", into, src.Path, from.Kind, from.Kind)
		}
		if into.All && !from.All {
			// ?all would be dropped without a word, and the dump
			// loaded into the database of its own name.
			return dbRestore{}, usagef("--to %s: %s is a dump of one database, which is loaded into a database: give its URL (…/NAME), or the server's without ?all to keep the dump's name", into, src.Path)
		}
		if from.All && into.Name != "" && into.Kind != sources.KindMongoDB {
			return dbRestore{}, usagef("--to %s: %s is a dump of a whole server, which is loaded into a server, not into one database: give the server's URL without a database name", into, src.Path)
		}
		if !from.All && into.Name == "" && into.Kind != sources.KindMongoDB {
			into = into.WithName(from.Name)
		}
	}
	return dbRestore{src: src, from: from, into: into}, nil
}

// restoreDatabases streams each named dump from the snapshot into its
// database, or into the one --to names. Every name is found before any
// database is touched, so that a misspelt second name fails before the
// first database is replaced; when one restore fails, the error names the
// dumps that were not attempted.
func restoreDatabases(c *cli.Context, e *env, s *session, sn *snapshot.Snapshot, names []string, to string, replace bool) error {
	plans, err := planDatabases(c, e, sn, names, to, replace, len(names) > 1)
	if err != nil {
		return err
	}
	return loadDatabases(c, s, sn, names, plans, replace)
}

// planDatabases is restoreDatabases' work before the first database is
// touched: it finds every name in the snapshot, checks where each goes
// and that its client is installed, and, with checkTargets (and without
// replace), that no target holds data. A restore of files with --db does
// it before the first file is written: it found a misspelt name, or a
// target that holds data ("so nothing was restored"), only once every
// file was restored (found by an exploratory test).
func planDatabases(c *cli.Context, e *env, sn *snapshot.Snapshot, names []string, to string, replace, checkTargets bool) ([]dbRestore, error) {
	var into *sources.Database
	if to != "" {
		var err error
		if into, err = sources.ParseDatabase(to); err != nil {
			return nil, usagef("--to: %v", err)
		}
	}
	plans := make([]dbRestore, 0, len(names))
	for _, name := range names {
		p, err := planDBRestore(sn, name, into)
		if err != nil {
			return nil, err
		}
		plans = append(plans, p)
	}
	if into == nil {
		var known []*sources.Database // read on first need
		for i, p := range plans {
			problem := p.from.RecordedTargetProblem()
			if problem == "" {
				continue
			}
			if known == nil {
				known = configDatabases(c, e)
			}
			if slices.ContainsFunc(known, func(d *sources.Database) bool { return sources.SameDatabase(d, p.from) }) {
				continue
			}
			// The command offered leaves the recorded options out: pasted
			// as it was, one of hostaddr= sent the connection, and the
			// password, elsewhere (found by a re-test).
			return nil, usagef("--db %s: the snapshot records %s as the database it was dumped from, and %s: without --to, snap restores only into a database of this machine's that a dump would come from (a server on localhost at its own port, an SQLite file that exists) or that its config names, as whoever can write to the repository could have recorded any address; check where it belongs and say so, e.g.: snap restore %s --db %s --to %s",
				names[i], p.from, problem, sn.ID.Short(), shellWord(names[i]), shellWord(p.from.WithoutOptions()))
		}
	}
	for _, p := range plans {
		if err := p.into.CheckRestoreClient(); err != nil {
			return nil, fmt.Errorf("%w; nothing was restored", err)
		}
	}
	if !replace && checkTargets {
		for _, p := range plans {
			if err := p.into.CheckRestoreTarget(c.Context); err != nil {
				if errors.Is(err, sources.ErrNotEmpty) {
					return nil, fmt.Errorf("%w, so nothing was restored: restore the dumps into other databases with --to, or replace them with --replace", err)
				}
				return nil, fmt.Errorf("%s: check whether it can be restored into: %w; nothing was restored", p.into, err)
			}
		}
	}
	return plans, nil
}

// loadDatabases restores the dumps planDatabases planned, in order, and
// stops at the first that fails, naming those not restored.
func loadDatabases(c *cli.Context, s *session, sn *snapshot.Snapshot, names []string, plans []dbRestore, replace bool) error {
	for i, p := range plans {
		if err := restoreDatabase(c, s, sn, p.src, p.from, p.into, replace); err != nil {
			err = restoreFailure(c.Context, p, err)
			if rest := names[i+1:]; len(rest) > 0 {
				again := ""
				for _, n := range rest {
					again += " --db " + shellWord(n)
				}
				if replace {
					again += " --replace"
				}
				// The command is not quoted as a whole: shellWord quotes
				// the names that need it.
				them := "them"
				if len(rest) == 1 {
					them = "it"
				}
				err = fmt.Errorf("%w; not restored: %s (restore %s with: snap restore %s%s)", err, strings.Join(rest, ", "), them, sn.ID.Short(), again)
			}
			return err
		}
	}
	return nil
}

// configDatabases are the databases the jobs of this machine's config
// name: one a snapshot records is restored into without --to even where
// it is not on this machine (RecordedTargetProblem), as the config, unlike
// the repository, is this machine's own.
func configDatabases(c *cli.Context, e *env) []*sources.Database {
	known := []*sources.Database{}
	path, err := findConfig(gstring(c, "config"), e.getenv)
	if err != nil || path == "" {
		return known
	}
	cfg, _, _ := loadConfig(path)
	if cfg == nil {
		return known
	}
	for _, j := range cfg.Jobs {
		for _, raw := range j.Databases {
			if d, err := sources.ParseDatabase(raw); err == nil {
				known = append(known, d)
			}
		}
	}
	return known
}

// restoreFailure is the error of a restore that failed or, when ctx ended,
// was stopped: then it says what became of the database.
func restoreFailure(ctx context.Context, p dbRestore, err error) error {
	if ctx.Err() == nil {
		return fmt.Errorf("restore %s into %s: %w", p.src.Path, p.into, err)
	}
	state := "the database may be incomplete"
	switch {
	case errors.Is(err, sources.ErrRolledBack):
		state = "the load was rolled back and the database is as it was"
	case errors.Is(err, sources.ErrUnchanged):
		state = "nothing was changed"
	case errors.Is(err, sources.ErrCreatedDropped):
		state = sources.ErrCreatedDropped.Error()
	case errors.Is(err, sources.ErrCreatedLeft):
		state = sources.ErrCreatedLeft.Error()
	case errors.Is(err, sources.ErrReplacedPartly):
		// Stopped, not failed: there is no cause to fix.
		state = sources.ErrReplacedPartly.Error() + ": run the restore again to load all of it, or restore into a new database with --to first"
	}
	return fmt.Errorf("%w: restore of %s into %s stopped; %s; the repository is untouched", errInterrupted, p.src.Path, p.into, state)
}

// firstRead is r that closes first at its first Read.
type firstRead struct {
	r     io.Reader
	first chan struct{}
	once  sync.Once
}

func (f *firstRead) Read(p []byte) (int, error) {
	f.once.Do(func() { close(f.first) })
	return f.r.Read(p)
}

func restoreDatabase(c *cli.Context, s *session, sn *snapshot.Snapshot, src snapshot.Source, from, into *sources.Database, replace bool) error {
	ctx := c.Context
	u := s.ui
	node, err := snapshot.FindNode(ctx, s.ix, sn.Tree, src.Path)
	if err != nil {
		return err
	}
	u.printf("restoring %s (%s) from snapshot %s into %s", src.Path, humanBytes(int64(node.Size)), sn.ID.Short(), into)
	pr, pw := io.Pipe()
	var written atomic.Int64
	done := make(chan struct{})
	// The writer starts at the tool's first read, after the read-through
	// (ReadAll) when there is one: started at once, it fetched its packs
	// beside the read-through's, twice the connections and the disk
	// (found by a review). ended lets it go when the tool never reads.
	first, ended := make(chan struct{}), make(chan struct{})
	var werr error // the writer's error, read after done
	go func() {
		defer close(done)
		select {
		case <-first:
		case <-ended:
			pw.Close()
			return
		}
		werr = repo.Catch(func() error { return s.readContent(ctx, node, &countingWriter{w: pw, n: &written}) })
		pw.CloseWithError(werr)
	}()
	created, err := into.Restore(ctx, &firstRead{r: pr, first: first}, from.All, sources.RestoreOptions{
		Replace:    replace,
		From:       from.Name,
		Properties: src.Properties,
		Stderr:     u.toolLines(into.String()),
		Stdout:     func(line string) { u.infof("%s: %s", into, line) },
		Warn:       func(msg string) { u.warnf("%s", msg) },
		ReadAll: func(ctx context.Context) error {
			u.printf("reading the dump through once before %s drops what it replaces", into)
			return repo.Catch(func() error { return s.readContent(ctx, node, io.Discard) })
		},
	})
	// The tool may have stopped reading early, or never read; let the
	// writer end.
	close(ended)
	pr.CloseWithError(errors.New("restore ended"))
	<-done
	var bug *repo.PanicError
	if errors.As(werr, &bug) {
		return werr // a bug in reading the dump, not the tool, ended the restore
	}
	if err != nil {
		return err
	}
	note := ""
	if created {
		note = " (created)"
	}
	if ctx.Err() != nil {
		// Stopped once the load was in: the swap of a replaced database
		// runs to its end rather than leave it under a temporary name.
		u.noticef("the interrupt came after the dump had loaded: the restore was finished first")
	}
	switch {
	case !created || from.All:
	case into.Kind == sources.KindMySQL && src.Properties == nil:
		// The dump of one database has no CREATE DATABASE, and snapshots
		// made before the character set was recorded beside it lack it.
		u.noticef("%s was created with CHARACTER SET utf8mb4: this snapshot holds no record of the database's own default character set and collation (it was made before snap recorded them, or they could not be read then); change them with ALTER DATABASE if they were others", into)
	case into.Kind != sources.KindPostgres:
	case src.Properties == nil:
		// pg_dump of one database leaves out the database's own
		// properties, and snapshots made before they were recorded beside
		// it lack them: a new database has the server's defaults, and
		// PUBLIC may connect to it again (found by an exploratory test).
		u.warnf("%s was created with the server's defaults: this snapshot (made before snap recorded them) holds none of the database's own owner, privileges (REVOKE CONNECT … FROM PUBLIC), settings (ALTER DATABASE … SET), comment or connection limit; set them again (a restore with --replace over an existing database keeps that database's)", into)
	case into.Name != from.Name && into.PGOwnedAsRecorded(ctx, src.Properties.Statements):
		// Nothing recorded differs from what the new database has.
	case into.Name != from.Name:
		u.warnf("%s was created with the server's defaults for its owner, privileges (REVOKE CONNECT … FROM PUBLIC), settings, comment and connection limit: those recorded in the snapshot are %s's, and are set only by a restore under that name; set them again (snap list --json shows the recorded statements, in the snapshot's sources)", into, from.Name)
	}
	if u.json {
		u.jsonLine(map[string]any{"type": "summary", "snapshot_id": sn.ID.String(), "db": src.Path, "to": into.String(),
			"bytes": written.Load(), "created": created, "replace": replace})
	} else {
		u.printf("restored %s (%s) from snapshot %s (%s) into %s%s", src.Path, humanBytes(written.Load()), sn.ID.Short(), localTime(sn.Time), into, note)
	}
	return nil
}

type countingWriter struct {
	w io.Writer
	n *atomic.Int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n.Add(int64(n))
	return n, err
}
