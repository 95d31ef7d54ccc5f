package main

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/snap-backup/snap/index"
	"github.com/snap-backup/snap/repo"
	"github.com/snap-backup/snap/snapshot"
	"github.com/snap-backup/snap/sources"
)

func createCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:      "create",
		Aliases:   []string{"backup"},
		Usage:     "create a snapshot of paths, database dumps and command output",
		ArgsUsage: "[PATH...] [--db URL]... [--stdin NAME] [--command NAME -- CMD ARGS...]",
		Description: "Backs up the given paths, database dumps (--db), standard input (--stdin) and a command's output\n" +
			"(--command) into one snapshot; dumps and file reads run in parallel. Files unchanged since the parent\n" +
			"snapshot (same host and paths) are not read again. Unreadable files are reported and skipped: the\n" +
			"snapshot is saved and snap exits with code 3. A dump or command that fails saves no snapshot (exit 1).\n" +
			"--pre hooks run before anything is read (a failing one aborts the run); --post hooks always run.",
		Flags: []cli.Flag{
			&cli.StringSliceFlag{Name: "tag", Usage: "tag the snapshot (repeatable)"},
			&cli.StringFlag{Name: "host", Usage: "host name to record (default: this host)"},
			&cli.StringFlag{Name: "time", Usage: "time to record, RFC 3339 (default: now)"},
			&cli.StringSliceFlag{Name: "exclude", Aliases: []string{"e"}, Usage: "skip paths matching this glob (repeatable)"},
			&cli.BoolFlag{Name: "one-file-system", Aliases: []string{"x"}, Usage: "do not cross file system boundaries"},
			&cli.StringFlag{Name: "compression", Value: "fastest", Usage: "zstd level: off, fastest, default or better"},
			&cli.BoolFlag{Name: "force", Usage: "read every file, ignoring the parent snapshot"},
			multiFlag("db", "dump the database at `URL` into the snapshot: postgres://user@host:port/db (or /?all), mysql://…, sqlite:///path/app.db, mongodb://… (repeatable)"),
			&cli.StringFlag{Name: "stdin", Usage: "store standard input as the file `NAME`"},
			&cli.StringFlag{Name: "command", Usage: "store the standard output of the command given after -- as the file `NAME`"},
			multiFlag("pre", "run the shell command `CMD` before reading anything; if it fails, nothing is saved (repeatable)"),
			multiFlag("post", "run the shell command `CMD` at the end, whatever happened (repeatable)"),
			&cli.StringFlag{Name: "min-free", Usage: "refuse to start when the repository's device has less than `SIZE` free (e.g. 10GiB)"},
		},
		Action: func(c *cli.Context) error {
			o, plan, err := createOptionsFrom(c, e)
			if err != nil {
				return err
			}
			return runCreate(c, e, o, plan)
		},
	}
}

// createPlan is what a create does besides archiving: hooks, pre-flight
// threshold, and the stream sources still to be started.
type createPlan struct {
	streams streamFlags
	pre     []string
	post    []string
	minFree uint64
}

func createOptionsFrom(c *cli.Context, e *env) (snapshot.CreateOptions, createPlan, error) {
	var o snapshot.CreateOptions
	var plan createPlan
	sf, paths, err := parseStreamFlags(c.String("stdin"), c.String("command"), multiValues(c, "db"), c.Args().Slice())
	if err != nil {
		return o, plan, err
	}
	plan.streams = sf
	plan.pre, plan.post = multiValues(c, "pre"), multiValues(c, "post")
	if s := c.String("min-free"); s != "" {
		if plan.minFree, err = parseSize(s); err != nil {
			return o, plan, usagef("--min-free: %v", err)
		}
	}
	o.Paths = paths
	for _, p := range o.Paths {
		if _, err := os.Lstat(p); err != nil {
			return o, plan, fmt.Errorf("path %s: %w; check the path or remove it from the command", p, unwrapOS(err))
		}
	}
	if len(o.Paths) == 0 && sf.stdinName == "" && sf.commandName == "" && len(sf.dbs) == 0 {
		return o, plan, usagef("nothing to back up: give paths, --db, --stdin or --command")
	}
	for _, t := range c.StringSlice("tag") {
		for _, tag := range strings.Split(t, ",") {
			if tag != "" {
				o.Tags = append(o.Tags, tag)
			}
		}
	}
	o.Host = c.String("host")
	if o.Host == "" {
		o.Host, _ = os.Hostname()
	}
	if t := c.String("time"); t != "" {
		ts, err := time.Parse(time.RFC3339, t)
		if err != nil {
			return o, plan, usagef("--time %q: use RFC 3339, e.g. 2026-11-20T03:00:00Z", t)
		}
		o.Time = ts
	}
	ex, err := sources.ParsePatterns(c.StringSlice("exclude"))
	if err != nil {
		return o, plan, usagef("--exclude: %v", err)
	}
	o.Archive.Excludes = ex
	o.Archive.OneFileSystem = c.Bool("one-file-system")
	comp, err := repo.ParseCompression(c.String("compression"))
	if err != nil {
		return o, plan, usagef("--compression: %v", err)
	}
	o.Writer = index.WriterOptions{Compression: comp}
	o.NoParent = c.Bool("force")
	o.Program = "snap " + version
	return o, plan, nil
}

func unwrapOS(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// runCreate runs one create: dump tools are found, the repository is
// opened and checked (pre-flight), the pre hooks run, then the archive. The
// post hooks run at the end whatever happened.
func runCreate(c *cli.Context, e *env, o snapshot.CreateOptions, plan createPlan) (err error) {
	u := newUI(c, e)
	h := newHooks(plan.pre, plan.post, gstring(c, "repo"), o.Host, o.Tags)
	snapshotID := ""
	defer func() {
		if len(h.post) == 0 {
			return
		}
		if perr := h.runPost(c.Context, u, err, snapshotID); perr != nil && err == nil {
			err = fmt.Errorf("snapshot %s was saved, but a post hook failed: %w", snapshotID[:min(8, len(snapshotID))], perr)
		}
	}()
	streams, err := plan.streams.build(c.Context, e, u)
	if err != nil {
		return fmt.Errorf("create: %w; no snapshot was saved", err)
	}
	o.Streams = streams
	s, err := openSession(c, e, sharedLock)
	if err != nil {
		return err
	}
	defer s.close()
	if s.connections > 0 {
		o.Writer.Connections = s.connections
	}
	if err := preflight(c.Context, u, s.r, plan.minFree); err != nil {
		return err
	}
	if err := h.runPre(c.Context, u); err != nil {
		return interrupted(c, fmt.Errorf("create: %w; no snapshot was saved", err))
	}
	o.Archive.Report = func(ev snapshot.Event) {
		switch ev.Kind {
		case snapshot.EventError:
			u.errorf("%v (skipped)", ev.Err)
		case snapshot.EventWarning:
			u.warnf("%v", ev.Err)
		case snapshot.EventFile:
			u.infof("saved %s", ev.Path)
		}
	}
	sn, err := snapshot.Create(c.Context, s.ix, s.loader, o)
	if err != nil {
		return interrupted(c, fmt.Errorf("create: %w; no snapshot was saved", err))
	}
	snapshotID = sn.ID.String()
	sum := sn.Summary
	if u.json {
		u.jsonLine(map[string]any{"type": "summary", "snapshot_id": sn.ID.String(), "time": sn.Time, "files": sum.Files, "dirs": sum.Dirs,
			"bytes": sum.Bytes, "read_bytes": sum.ReadBytes, "added_bytes": sum.AddedBytes, "added_raw_bytes": sum.AddedRaw,
			"added_blobs": sum.AddedBlobs, "errors": sum.Errors, "duration_seconds": sum.End.Sub(sum.Start).Seconds(), "sources": sn.Sources})
	} else {
		parent := "none"
		if sn.Parent != nil {
			parent = sn.Parent.Short()
		}
		u.printf("snapshot %s saved (parent %s)", sn.ID.Short(), parent)
		for _, src := range sn.Sources {
			what := src.Kind
			if src.URL != "" {
				what = src.URL
			}
			if src.Tool != "" {
				what += " with " + src.Tool
			}
			u.printf("%s: %s (%s)", src.Path, humanBytes(src.Size), what)
		}
		u.printf("files: %d, dirs: %d, %s in total", sum.Files, sum.Dirs, humanBytes(sum.Bytes))
		u.printf("read: %s, added to the repository: %s (%s before compression) in %s",
			humanBytes(sum.ReadBytes), humanBytes(sum.AddedBytes), humanBytes(sum.AddedRaw), sum.End.Sub(sum.Start).Round(time.Millisecond))
	}
	if sum.Errors > 0 {
		return &partialError{msg: fmt.Sprintf("snapshot %s saved, but %d file(s) could not be read and were skipped (listed above)", sn.ID.Short(), sum.Errors)}
	}
	return nil
}

// interrupted turns an error caused by Ctrl-C into the documented message.
func interrupted(c *cli.Context, err error) error {
	if c.Context.Err() != nil {
		return fmt.Errorf("%w: no snapshot was saved; the repository is consistent (data already uploaded is reclaimed by 'snap prune')", errInterrupted)
	}
	return err
}
