package main

import (
	"encoding/base64"
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/snap-backup/snap/repo"
	"github.com/snap-backup/snap/snapshot"
	"github.com/snap-backup/snap/sources"
)

func listCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:      "list",
		Aliases:   []string{"snapshots"},
		Usage:     "list snapshots",
		ArgsUsage: "[PERIOD | SNAPSHOT...]",
		Description: "Lists snapshots, oldest first, with their size and what each added. PERIOD (2026, 2026-11 or\n" +
			"2026-11-20, local time) keeps those taken in it; --since and --until bound the time as in find.\n" +
			"SNAPSHOT (an ID, an ID prefix or 'latest') lists that one.",
		Flags: append(filterFlags(), sinceFlag(), untilFlag()),
		Action: func(c *cli.Context) error {
			f := filterFrom(c)
			var refs []string
			if c.NArg() == 1 {
				from, to, err := snapshot.ParsePeriod(c.Args().First(), time.Local)
				switch {
				case err == nil:
					f.From, f.To = from, to
				case checkSnapshotRef(c.Args().First()) == nil:
					// "snap list 732982ba" was read as a period (found by
					// an exploratory test).
					refs = c.Args().Slice()
				default:
					return usagef("%v, or give a snapshot (an ID, an ID prefix or 'latest')", err)
				}
			}
			if args := c.Args().Slice(); len(args) > 1 {
				if slices.ContainsFunc(args, func(ref string) bool { return checkSnapshotRef(ref) != nil }) {
					for _, ref := range args {
						if _, _, err := snapshot.ParsePeriod(ref, time.Local); err != nil && checkSnapshotRef(ref) != nil {
							return usagef("list takes one PERIOD, or snapshots (IDs, ID prefixes or 'latest'): %q is neither", ref)
						}
					}
					// Days and months are no IDs at all: offer their
					// span as for years (found by an exploratory test).
					if err := periodsNotIDs(nil, args); err != nil {
						return err
					}
					return usagef("list takes one PERIOD, or snapshots (IDs, ID prefixes or 'latest'), not both: %s", strings.Join(args, " "))
				}
				refs = args
			}
			if err := sinceUntil(c, e, &f); err != nil {
				return err
			}
			return runList(c, e, f, refs)
		},
	}
}

// periodsNotIDs refuses arguments that are each a period and none the
// start of a snapshot's ID: "snap list 2025 2026" meant two years, and
// said "no snapshot with ID 2025" (found by an exploratory test). The
// span from the first to the last is offered, as --since and --until.
func periodsNotIDs(sns []*snapshot.Snapshot, refs []string) error {
	if len(refs) < 2 {
		return nil
	}
	var from, to time.Time
	var first, last string
	for _, ref := range refs {
		f, t, err := snapshot.ParsePeriod(ref, time.Local)
		if err != nil || slices.ContainsFunc(sns, func(sn *snapshot.Snapshot) bool { return strings.HasPrefix(sn.ID.String(), ref) }) {
			return nil
		}
		if from.IsZero() || f.Before(from) {
			from, first = f, ref
		}
		if t.After(to) {
			to, last = t, ref
		}
	}
	noID := ", and no snapshot's ID starts with " + strings.Join(refs, " or ")
	if slices.ContainsFunc(refs, func(ref string) bool { return checkSnapshotRef(ref) != nil }) {
		noID = "" // "2026-10" is no ID at all
	}
	return usagef("list takes one PERIOD%s: for the snapshots of %s to %s, give --since %s --until %s",
		noID, first, last, from.Format("2006-01-02"), to.Add(-time.Nanosecond).Format("2006-01-02"))
}

// snapshotJSON is the documented JSON form of a snapshot (docs/usage.md).
type snapshotJSON struct {
	ID       string    `json:"id"`
	ShortID  string    `json:"short_id"`
	Time     time.Time `json:"time"`
	Host     string    `json:"host"`
	Username string    `json:"username,omitempty"`
	Tags     []string  `json:"tags"`
	Paths    []string  `json:"paths"`
	// PathsBase64 holds each path's bytes, in the order of Paths, when
	// one of them is not valid UTF-8 (pathsBase64).
	PathsBase64 []string          `json:"paths_base64,omitempty"`
	Tree        repo.ID           `json:"tree"`
	Parent      *repo.ID          `json:"parent"`
	Summary     snapshot.Summary  `json:"summary"`
	Sources     []snapshot.Source `json:"sources"` // [] without dumps, as in create's summary
	Job         string            `json:"job,omitempty"`
	// Dictionary is the blob small files were compressed against.
	Dictionary *repo.ID `json:"dictionary,omitempty"`
	// Original is the snapshot this one was copied or re-tagged from.
	Original *repo.ID `json:"original,omitempty"`
	// AllowEmptied: taken with --allow-emptied (Snapshot.AllowEmptied).
	AllowEmptied bool `json:"allow_emptied,omitempty"`
}

func toJSON(sn *snapshot.Snapshot) snapshotJSON {
	// The documented fields only: members a newer snap wrote (kept in
	// the document for a rewrite) are not this output's.
	known := *sn
	known.DropUnknown()
	sources := known.Sources
	if sources == nil {
		sources = []snapshot.Source{}
	}
	return snapshotJSON{ID: sn.ID.String(), ShortID: sn.ID.Short(), Time: sn.Time, Host: sn.Host, Username: sn.Username, Tags: sn.Tags,
		Paths: sn.Paths, PathsBase64: pathsBase64(sn.Paths), Tree: sn.Tree, Parent: sn.Parent, Summary: known.Summary, Sources: sources, Job: sn.Job, Dictionary: sn.Dictionary, Original: sn.Original, AllowEmptied: sn.AllowEmptied}
}

// pathsBase64 is the JSON field paths_base64 of a list of paths: the
// bytes of each, in order, when any of them is not valid UTF-8 (a JSON
// string holds U+FFFD in its place, and a script could not give such a
// path back to --path: found by an exploratory test), else nil.
func pathsBase64(paths []string) []string {
	if !slices.ContainsFunc(paths, func(p string) bool { return pathBase64(p) != "" }) {
		return nil
	}
	out := make([]string, len(paths))
	for i, p := range paths {
		out[i] = base64.StdEncoding.EncodeToString([]byte(p))
	}
	return out
}

func runList(c *cli.Context, e *env, f snapshot.Filter, refs []string) error {
	// The listing needs the snapshot documents only: without the index
	// it does not wait for the index cache a running create holds (3 s,
	// then a private copy of it).
	s, err := openSessionWith(c, e, noLock, nil)
	if err != nil {
		return err
	}
	defer s.close()
	sns, err := s.snapshots(c.Context)
	if err != nil {
		return err
	}
	if err := periodsNotIDs(sns, refs); err != nil {
		return err
	}
	if len(refs) > 0 {
		if sns, err = s.named(c, sns, refs); err != nil {
			return err
		}
	}
	all := sns
	sns, note := applyFilter(sns, f)
	if note == "" {
		// Hosts and tag groups are alternatives: one mistyped beside
		// one that matches left nothing to see (found by a re-test).
		note = unmatchedFilter(all, f)
	}
	if note != "" {
		// A warning, as find and forget give it: a mistyped host is
		// worth seeing with -q and --json too.
		s.ui.warnf("%s", note)
	}
	if s.ui.json {
		out := make([]snapshotJSON, 0, len(sns))
		for _, sn := range sns {
			out = append(out, toJSON(sn))
		}
		if err := s.ui.jsonDoc(out); err != nil {
			return err
		}
		return s.unreadableErr()
	}
	// Sizes are right-aligned, so that their magnitudes line up; the
	// tab writer aligns every column left.
	sizeW, addedW := len("Size"), len("Added")
	for _, sn := range sns {
		sizeW = max(sizeW, len(humanBytes(sn.Summary.Bytes)))
		addedW = max(addedW, len(humanBytes(sn.Summary.AddedBytes)))
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	if !s.ui.quiet { // -q: the rows alone, for scripts (docs/usage.md)
		fmt.Fprintf(tw, "ID\tTime\tHost\tTags\t%*s\t%*s\tPaths\n", sizeW, "Size", addedW, "Added")
	}
	for _, sn := range sns {
		var paths, tags []string
		for _, p := range sn.Paths {
			paths = append(paths, sources.DisplayPath(p))
		}
		for _, src := range sn.Sources {
			paths = append(paths, sources.DisplayPath(src.Path))
		}
		for _, t := range sn.Tags {
			tags = append(tags, sources.DisplayPath(t))
		}
		fmt.Fprint(tw, tableRow(fmt.Sprintf("%s\t%s\t%s\t%s\t%*s\t%*s\t%s\n", sn.ID.Short(), localTime(sn.Time), sources.DisplayPath(sn.Host), strings.Join(tags, ","),
			sizeW, humanBytes(sn.Summary.Bytes), addedW, humanBytes(sn.Summary.AddedBytes), strings.Join(paths, " "))))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if !s.ui.quiet {
		fmt.Fprintln(e.stdout, plural(len(sns), "snapshot", "snapshots"))
	}
	return s.unreadableErr()
}
