package main

import (
	"errors"
	"fmt"
	"os"
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
		Usage:     "create a snapshot of paths",
		ArgsUsage: "PATH...",
		Description: "Backs up the given paths into one snapshot. Files unchanged since the parent snapshot (same host\n" +
			"and paths) are not read again. Unreadable files are reported and skipped: the snapshot is saved\n" +
			"and snap exits with code 3.",
		Flags: []cli.Flag{
			&cli.StringSliceFlag{Name: "tag", Usage: "tag the snapshot (repeatable)"},
			&cli.StringFlag{Name: "host", Usage: "host name to record (default: this host)"},
			&cli.StringFlag{Name: "time", Usage: "time to record, RFC 3339 (default: now)"},
			&cli.StringSliceFlag{Name: "exclude", Aliases: []string{"e"}, Usage: "skip paths matching this glob (repeatable)"},
			&cli.BoolFlag{Name: "one-file-system", Aliases: []string{"x"}, Usage: "do not cross file system boundaries"},
			&cli.StringFlag{Name: "compression", Value: "fastest", Usage: "zstd level: off, fastest, default or better"},
			&cli.BoolFlag{Name: "force", Usage: "read every file, ignoring the parent snapshot"},
		},
		Action: func(c *cli.Context) error {
			o, err := createOptionsFrom(c, e)
			if err != nil {
				return err
			}
			return runCreate(c, e, o)
		},
	}
}

func createOptionsFrom(c *cli.Context, e *env) (snapshot.CreateOptions, error) {
	var o snapshot.CreateOptions
	o.Paths = c.Args().Slice()
	for _, p := range o.Paths {
		if _, err := os.Lstat(p); err != nil {
			return o, fmt.Errorf("path %s: %w; check the path or remove it from the command", p, unwrapOS(err))
		}
	}
	o.Tags = c.StringSlice("tag")
	o.Host = c.String("host")
	if o.Host == "" {
		o.Host, _ = os.Hostname()
	}
	if t := c.String("time"); t != "" {
		ts, err := time.Parse(time.RFC3339, t)
		if err != nil {
			return o, usagef("--time %q: use RFC 3339, e.g. 2026-11-20T03:00:00Z", t)
		}
		o.Time = ts
	}
	ex, err := sources.ParsePatterns(c.StringSlice("exclude"))
	if err != nil {
		return o, usagef("--exclude: %v", err)
	}
	o.Archive.Excludes = ex
	o.Archive.OneFileSystem = c.Bool("one-file-system")
	comp, err := repo.ParseCompression(c.String("compression"))
	if err != nil {
		return o, usagef("--compression: %v", err)
	}
	o.Writer = index.WriterOptions{Compression: comp}
	o.NoParent = c.Bool("force")
	o.Program = "snap " + version
	return o, nil
}

func unwrapOS(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

func runCreate(c *cli.Context, e *env, o snapshot.CreateOptions) error {
	s, err := openSession(c, e, sharedLock)
	if err != nil {
		return err
	}
	defer s.close()
	if s.connections > 0 {
		o.Writer.Connections = s.connections
	}
	u := s.ui
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
		if c.Context.Err() != nil {
			return fmt.Errorf("%w: no snapshot was saved; the repository is consistent (data already uploaded is reclaimed by 'snap prune')", errInterrupted)
		}
		return fmt.Errorf("create: %w; no snapshot was saved", err)
	}
	sum := sn.Summary
	if u.json {
		u.jsonLine(map[string]any{"type": "summary", "snapshot_id": sn.ID.String(), "time": sn.Time, "files": sum.Files, "dirs": sum.Dirs,
			"bytes": sum.Bytes, "read_bytes": sum.ReadBytes, "added_bytes": sum.AddedBytes, "added_raw_bytes": sum.AddedRaw,
			"added_blobs": sum.AddedBlobs, "errors": sum.Errors, "duration_seconds": sum.End.Sub(sum.Start).Seconds()})
	} else {
		parent := "none"
		if sn.Parent != nil {
			parent = sn.Parent.Short()
		}
		u.printf("snapshot %s saved (parent %s)", sn.ID.Short(), parent)
		u.printf("files: %d, dirs: %d, %s in total", sum.Files, sum.Dirs, humanBytes(sum.Bytes))
		u.printf("read: %s, added to the repository: %s (%s before compression) in %s",
			humanBytes(sum.ReadBytes), humanBytes(sum.AddedBytes), humanBytes(sum.AddedRaw), sum.End.Sub(sum.Start).Round(time.Millisecond))
	}
	if sum.Errors > 0 {
		return &partialError{msg: fmt.Sprintf("snapshot %s saved, but %d file(s) could not be read and were skipped (listed above)", sn.ID.Short(), sum.Errors)}
	}
	return nil
}
