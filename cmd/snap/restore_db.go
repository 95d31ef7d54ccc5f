package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/urfave/cli/v2"

	"github.com/snap-backup/snap/repo"
	"github.com/snap-backup/snap/snapshot"
	"github.com/snap-backup/snap/sources"
)

// dbKinds are the source kinds that restore --db loads into a database.
var dbKinds = []string{sources.KindPostgres, sources.KindMySQL, sources.KindSQLite, sources.KindMongoDB}

// findDumpSource picks the dump a --db NAME means: the dump's path as
// 'snap ls' shows it, or, where that is unique in the snapshot, the
// database's name or the dump's file name.
func findDumpSource(sn *snapshot.Snapshot, name string) (snapshot.Source, error) {
	var dumps []snapshot.Source
	for _, src := range sn.Sources {
		if path.Clean("/"+name) == src.Path {
			if !slices.Contains(dbKinds, src.Kind) {
				return src, fmt.Errorf("%s is a %s stream, not a database dump: write it out with 'snap dump %s %s'", src.Path, src.Kind, sn.ID.Short(), src.Path)
			}
			return src, nil
		}
		if slices.Contains(dbKinds, src.Kind) {
			dumps = append(dumps, src)
		}
	}
	var matches []snapshot.Source
	for _, src := range dumps {
		base := path.Base(src.Path)
		dbName, fileName := "", ""
		if d, err := sources.ParseRecordedDatabase(src.URL); err == nil {
			dbName = d.Name
			if d.File != "" {
				fileName = path.Base(d.File) // an SQLite database by its file's name
			}
		}
		if name == base || name == strings.TrimSuffix(base, path.Ext(base)) || (dbName != "" && name == dbName) || (fileName != "" && name == fileName) {
			matches = append(matches, src)
		}
	}
	var names []string
	for _, src := range dumps {
		names = append(names, src.Path)
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
		return snapshot.Source{}, fmt.Errorf("snapshot %s holds no database dumps", sn.ID.Short())
	}
	return snapshot.Source{}, fmt.Errorf("snapshot %s has no dump %q; it has %s", sn.ID.Short(), name, strings.Join(names, ", "))
}

// restoreDatabases streams each named dump from the snapshot into its
// database, or into the one --to names.
func restoreDatabases(c *cli.Context, s *session, sn *snapshot.Snapshot, names []string, to string, replace bool) error {
	for _, name := range names {
		src, err := findDumpSource(sn, name)
		if err != nil {
			return err
		}
		from, err := sources.ParseRecordedDatabase(src.URL)
		if err != nil {
			return fmt.Errorf("dump %s records the source %q, which cannot be read: %v; write it out with 'snap dump'", src.Path, src.URL, err)
		}
		into := from
		if to != "" {
			if into, err = sources.ParseDatabase(to); err != nil {
				return usagef("--to: %v", err)
			}
			if into.Kind != from.Kind {
				return usagef("--to %s: %s is a %s dump; restore it into a %s database", into, src.Path, from.Kind, from.Kind)
			}
			if into.All && !from.All {
				// ?all would be dropped without a word, and the dump
				// loaded into the database of its own name.
				return usagef("--to %s: %s is a dump of one database, which is loaded into a database: give its URL (…/NAME), or the server's without ?all to keep the dump's name", into, src.Path)
			}
			if from.All && into.Name != "" && into.Kind != sources.KindMongoDB {
				return usagef("--to %s: %s is a dump of a whole server, which is loaded into a server, not into one database: give the server's URL without a database name", into, src.Path)
			}
			if !from.All && into.Name == "" && into.Kind != sources.KindMongoDB {
				into = into.WithName(from.Name)
			}
		}
		if err := restoreDatabase(c, s, sn, src, from, into, replace); err != nil {
			if c.Context.Err() != nil {
				state := "the database may be incomplete"
				switch {
				case errors.Is(err, sources.ErrRolledBack):
					state = "the load was rolled back and the database is as it was"
				case errors.Is(err, sources.ErrUnchanged):
					state = "nothing was changed"
				case errors.Is(err, sources.ErrCreatedDropped):
					state = sources.ErrCreatedDropped.Error()
				case errors.Is(err, sources.ErrReplacedPartly):
					state = sources.ErrReplacedPartly.Error()
				}
				return fmt.Errorf("%w: restore of %s into %s stopped; %s, the repository is untouched", errInterrupted, src.Path, into, state)
			}
			return fmt.Errorf("restore %s into %s: %w", src.Path, into, err)
		}
	}
	return nil
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
	var werr error // the writer's error, read after done
	go func() {
		defer close(done)
		werr = repo.Catch(func() error { return writeContent(ctx, s.ix, node, &countingWriter{w: pw, n: &written}) })
		pw.CloseWithError(werr)
	}()
	created, err := into.Restore(ctx, pr, from.All, sources.RestoreOptions{
		Replace:    replace,
		From:       from.Name,
		Properties: src.Properties,
		Stderr:     u.toolLines(into.String()),
		Stdout:     func(line string) { u.infof("%s: %s", into, line) },
		ReadAll: func(ctx context.Context) error {
			u.printf("reading the dump through once before %s drops what it replaces", into)
			return repo.Catch(func() error { return writeContent(ctx, s.ix, node, io.Discard) })
		},
	})
	// The tool may have stopped reading early; let the writer end.
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
	case !created || into.Kind != sources.KindPostgres || from.All:
	case src.Properties == nil:
		// pg_dump of one database leaves out the database's own
		// properties, and snapshots made before they were recorded beside
		// it lack them: a new database has the server's defaults, and
		// PUBLIC may connect to it again (found by an exploratory test).
		u.warnf("%s was created with the server's defaults: this snapshot (made before snap recorded them) holds none of the database's own owner, privileges (REVOKE CONNECT … FROM PUBLIC), settings (ALTER DATABASE … SET), comment or connection limit; set them again (a restore with --replace over an existing database keeps that database's)", into)
	case into.Name != from.Name:
		u.warnf("%s was created with the server's defaults for its owner, privileges (REVOKE CONNECT … FROM PUBLIC), settings, comment and connection limit: those recorded in the snapshot are %s's, and are set only by a restore under that name; set them again (snap list --json shows the recorded statements, in the snapshot's sources)", into, from.Name)
	}
	if u.json {
		u.jsonLine(map[string]any{"type": "summary", "snapshot_id": sn.ID.String(), "db": src.Path, "to": into.String(),
			"bytes": written.Load(), "created": created})
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
