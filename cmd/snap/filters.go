package main

import (
	"errors"
	"fmt"
	"path"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/snap-backup/snap/repo"
	"github.com/snap-backup/snap/snapshot"
)

// filterFlags select snapshots; list, ls, dump, restore and forget share them.
func filterFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringSliceFlag{Name: "host", Usage: "only snapshots of this host (repeatable)"},
		&cli.StringSliceFlag{Name: "tag", Usage: "only snapshots with this tag; \"a,b\" means both (repeatable: any of them)"},
		&cli.StringSliceFlag{Name: "path", Usage: "only snapshots that include this path (repeatable: all of them)"},
	}
}

func filterFrom(c *cli.Context) snapshot.Filter {
	return snapshot.Filter{Hosts: c.StringSlice("host"), Tags: c.StringSlice("tag"), Paths: c.StringSlice("path")}
}

// parseAt reads a point in time for --at: RFC 3339, "YYYY-MM-DD HH:MM[:SS]"
// in local time, "YYYY-MM-DD" (the end of that day), or a duration meaning
// that long ago ("36h").
func parseAt(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	for _, layout := range []string{"2006-01-02 15:04:05", "2006-01-02 15:04", "2006-01-02T15:04:05", "2006-01-02T15:04"} {
		if t, err := time.ParseInLocation(layout, s, time.Local); err == nil {
			return t, nil
		}
	}
	if t, err := time.ParseInLocation("2006-01-02", s, time.Local); err == nil {
		return t.AddDate(0, 0, 1).Add(-time.Nanosecond), nil
	}
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, usagef("time %q: use RFC 3339 (2026-11-17T03:00:00Z), \"2026-11-17 03:00\" (local), a date, or a duration ago (36h)", s)
}

// splitSnapshotArg splits "ID:SUBPATH".
func splitSnapshotArg(s string) (ref, sub string) {
	if i := strings.IndexByte(s, ':'); i >= 0 {
		return s[:i], s[i+1:]
	}
	return s, ""
}

// findSnapshot resolves a snapshot argument under the filters.
func (s *session) findSnapshot(c *cli.Context, ref string) (*snapshot.Snapshot, error) {
	if l := strings.ToLower(ref); ref != "latest" && (l == "" || strings.Trim(l, "0123456789abcdef") != "") {
		return nil, usagef("snapshot %q: expected an ID, an ID prefix or 'latest'", ref)
	}
	sns, err := s.snapshots(c.Context)
	if err != nil {
		return nil, err
	}
	sn, err := snapshot.Find(sns, ref, filterFrom(c))
	if errors.Is(err, snapshot.ErrNoSnapshot) && ref != "latest" {
		// The snapshot may exist but be unreadable: say so, not "no snapshot".
		for _, lerr := range s.unreadable {
			var ce *repo.CorruptError
			if errors.As(lerr, &ce) && strings.HasPrefix(ce.Object, "snapshots/"+strings.ToLower(ref)) {
				return nil, lerr
			}
		}
	}
	if err != nil {
		return nil, fmt.Errorf("%w", err)
	}
	return sn, nil
}

// findPath resolves a snapshot argument and the node at path p inside it
// (p is cleaned and made absolute), as ls and dump need.
func (s *session) findPath(c *cli.Context, ref, p string) (*snapshot.Snapshot, string, snapshot.Node, error) {
	sn, err := s.findSnapshot(c, ref)
	if err != nil {
		return nil, "", snapshot.Node{}, err
	}
	p = path.Clean("/" + p)
	node, err := snapshot.FindNode(c.Context, s.ix, sn.Tree, p)
	return sn, p, node, err
}
