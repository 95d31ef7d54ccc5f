package main

import (
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/snap-backup/snap/snapshot"
	"github.com/snap-backup/snap/sources"
)

func findEntriesCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:      "find",
		Usage:     "find files by name or path in every snapshot",
		ArgsUsage: "PATTERN...",
		Description: "Lists, for each snapshot (oldest first) that holds a match, the entries whose path matches any\n" +
			"PATTERN, with mode, owner, size and modification time: which snapshots hold a file, and when it\n" +
			"changed. A PATTERN is a glob as for --exclude: without '/' it matches names at any depth\n" +
			"('*.conf'), starting with '/' it is anchored at the root ('/etc/app/*.conf'), and '**' matches\n" +
			"any number of directories. --host, --tag, --path, --since and --until choose the snapshots.",
		Flags: append(filterFlags(),
			sinceFlag(), untilFlag(),
		),
		Action: func(c *cli.Context) error {
			if c.NArg() == 0 {
				return usagef("find needs a pattern: snap find PATTERN... (for example snap find '*.conf')")
			}
			pats, err := sources.ParsePatterns(c.Args().Slice())
			if err != nil {
				return usagef("%v", err)
			}
			return runFind(c, e, pats)
		},
	}
}

// findJSON is the documented JSON form of one snapshot's matches.
type findJSON struct {
	Snapshot snapshotJSON `json:"snapshot"`
	Nodes    []nodeJSON   `json:"nodes"`
	// Error names what of this snapshot could not be searched (a
	// damaged directory listing; the rest was searched, and nodes holds
	// what matched there).
	Error string `json:"error,omitempty"`
}

func runFind(c *cli.Context, e *env, pats []sources.Pattern) error {
	s, err := openSession(c, e, noLock)
	if err != nil {
		return err
	}
	defer s.close()
	f := filterFrom(c)
	if err := sinceUntil(c, e, &f); err != nil {
		return err
	}
	all, err := s.snapshots(c.Context)
	if err != nil {
		return err
	}
	sns, note := applyFilter(all, f)
	if note != "" {
		s.ui.warnf("%s: no snapshot to search", note)
	}
	snapshot.SortByTime(sns)

	anchored := true
	for _, p := range pats {
		anchored = anchored && p.Anchored()
	}
	finder := snapshot.NewFinder(s.ix,
		func(p string, _ *snapshot.Node) bool { return sources.MatchAny(pats, p) },
		func(p string) bool {
			if !anchored {
				return true
			}
			for _, pat := range pats {
				if pat.MatchPrefix(p) {
					return true
				}
			}
			return false
		})
	var doc *jsonArray
	if s.ui.json {
		doc = s.ui.jsonArray("matches")
		if err := doc.Begin(nil); err != nil {
			return err
		}
	}
	entries, hits, failed := 0, 0, 0
	for _, sn := range sns {
		// Matches are written as the walk finds them, under a heading
		// (in JSON the snapshot's element) written at the first: JSON
		// held one snapshot's matches in memory, 1.3 KB each, before.
		elem := findJSON{Snapshot: toJSON(sn), Nodes: []nodeJSON{}}
		var nodes *jsonArray
		var writeErr error // the output's, not the snapshot's
		n := 0
		err := finder.Each(c.Context, sn.Tree, func(p string, node *snapshot.Node) error {
			n++
			if doc != nil {
				if n == 1 {
					if nodes, writeErr = doc.Open(elem, "nodes"); writeErr != nil {
						return writeErr
					}
				}
				writeErr = nodes.Add(toNodeJSON(p, node))
				return writeErr
			}
			if n == 1 {
				fmt.Fprintf(e.stdout, "snapshot %s of %s, host %s:\n", sn.ID.Short(), localTime(sn.Time), sources.DisplayPath(sn.Host))
			}
			// A failed write is not the snapshot's: the output's writer
			// remembers it, and the command fails at its end for it.
			fmt.Fprintf(e.stdout, "  %s\n", longLine(p, node))
			return nil
		})
		if n > 0 {
			entries, hits = entries+n, hits+1
		}
		if writeErr != nil {
			return writeErr
		}
		if err != nil && c.Context.Err() != nil {
			if doc != nil {
				_ = doc.Flush()
			}
			return c.Context.Err()
		}
		if err != nil {
			s.ui.warnf("snapshot %s: %v", sn.ID.Short(), err)
			failed++
			elem.Error = err.Error()
		}
		switch {
		case nodes != nil:
			if err := nodes.Close(elem); err != nil {
				return err
			}
		case doc != nil && elem.Error != "":
			// A snapshot not searched whole has its element, matches or
			// none: the document must show the damage too (found by an
			// exploratory test).
			if err := doc.Add(elem); err != nil {
				return err
			}
		}
	}
	if doc != nil {
		if err := doc.End(map[string]any{"snapshots_searched": len(sns) - failed}); err != nil {
			return err
		}
	} else {
		s.ui.printf("%s in %d of %d snapshots", plural(entries, "entry", "entries"), hits, len(sns))
	}
	if n := failed + len(s.unreadable); n > 0 {
		return fmt.Errorf("%s could not be searched whole (named above, with what was passed over); 'snap check' tells what is damaged", plural(n, "snapshot", "snapshots"))
	}
	return nil
}
