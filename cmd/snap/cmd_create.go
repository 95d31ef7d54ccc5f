package main

import (
	"context"
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
	_, err = createSnapshot(c.Context, e, s, o)
	return err
}

// createJSON is the documented "summary" line of create (docs/usage.md).
type createJSON struct {
	Type            string    `json:"type"`
	SnapshotID      string    `json:"snapshot_id"`
	ShortID         string    `json:"short_id"`
	Parent          *string   `json:"parent"`
	Time            time.Time `json:"time"`
	Host            string    `json:"host"`
	Tags            []string  `json:"tags"`
	Paths           []string  `json:"paths"`
	Files           int64     `json:"files"`
	Dirs            int64     `json:"dirs"`
	Bytes           int64     `json:"bytes"`
	ReadBytes       int64     `json:"read_bytes"`
	AddedBytes      int64     `json:"added_bytes"`
	AddedRawBytes   int64     `json:"added_raw_bytes"`
	AddedBlobs      int64     `json:"added_blobs"`
	Errors          int64     `json:"errors"`
	DurationSeconds float64   `json:"duration_seconds"`
}

// createSnapshot runs one create on an open session (the caller holds a
// shared lock), showing progress and printing the summary. It returns a
// *partialError when the snapshot was saved without some unreadable files.
func createSnapshot(ctx context.Context, e *env, s *session, o snapshot.CreateOptions) (*snapshot.Snapshot, error) {
	u := s.ui
	p := newProgress(e, u, "create")
	o.Archive.Report = p.event
	o.Writer.Added = p.added
	p.begin()
	if p.shown() {
		sctx, cancel := context.WithCancel(ctx)
		defer cancel()
		go scanFiles(sctx, o.Paths, o.Archive.Excludes, o.Archive.OneFileSystem, p.setTotal)
	}
	sn, err := snapshot.Create(ctx, s.ix, s.loader, o)
	p.finish()
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%w: no snapshot was saved; the repository is consistent (data already uploaded is reclaimed by 'snap prune')", errInterrupted)
		}
		return nil, fmt.Errorf("create: %w; no snapshot was saved", err)
	}
	sum := sn.Summary
	if u.json {
		j := createJSON{Type: "summary", SnapshotID: sn.ID.String(), ShortID: sn.ID.Short(), Time: sn.Time, Host: sn.Host, Tags: sn.Tags, Paths: sn.Paths,
			Files: sum.Files, Dirs: sum.Dirs, Bytes: sum.Bytes, ReadBytes: sum.ReadBytes, AddedBytes: sum.AddedBytes, AddedRawBytes: sum.AddedRaw,
			AddedBlobs: sum.AddedBlobs, Errors: sum.Errors, DurationSeconds: round2(sum.End.Sub(sum.Start).Seconds())}
		if sn.Parent != nil {
			ps := sn.Parent.String()
			j.Parent = &ps
		}
		u.jsonLine(j)
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
		return sn, &partialError{msg: fmt.Sprintf("snapshot %s saved, but %d file(s) could not be read and were skipped (listed above)", sn.ID.Short(), sum.Errors)}
	}
	return sn, nil
}
