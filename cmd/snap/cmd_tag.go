package main

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/urfave/cli/v2"

	"github.com/snap-backup/snap/repo"
	"github.com/snap-backup/snap/snapshot"
)

func tagCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:      "tag",
		Usage:     "add, remove or set the tags of snapshots",
		ArgsUsage: "[SNAPSHOT...]",
		Description: "Changes the tags of the given snapshots (IDs and unique ID prefixes, taken as given, or 'latest':\n" +
			"the newest of the snapshots that --host, --tag and --path select), for example to keep one with\n" +
			"'forget --keep-tag': snap tag --add keep 3f2a1b7c. Without SNAPSHOT, of every snapshot that\n" +
			"--host, --tag, --path and --job select (at least one of them): snap tag --add web --host web2.\n" +
			"A snapshot document never changes: the snapshot is stored again with the new tags (a new ID, the\n" +
			"same data) and the old document is removed. --set replaces all tags; --add and --remove then apply.\n" +
			"Needs the exclusive lock (exit 11 while a backup runs); --dry-run shows the change under a shared one.",
		Flags: append(filterFlags(),
			&cli.StringSliceFlag{Name: "add", Usage: "add this tag (\"a,b\": both; repeatable)"},
			&cli.StringSliceFlag{Name: "remove", Usage: "remove this tag (\"a,b\": both; repeatable)"},
			&cli.StringSliceFlag{Name: "set", Usage: "replace the tags with these (\"a,b\": both; repeatable; --set '' removes all)"},
			&cli.BoolFlag{Name: "dry-run", Aliases: []string{"n"}, Usage: "show which snapshots would get which tags, change nothing"},
		),
		Action: func(c *cli.Context) error {
			if f := filterFrom(c); c.NArg() == 0 && !f.Selects() {
				return usagef("tag needs the snapshots to change: snap tag --add keep SNAPSHOT... ('snap list' shows them), or --host, --tag or --path to select them")
			}
			add, err := tagWords("add", c.StringSlice("add"))
			if err != nil {
				return err
			}
			remove, err := tagWords("remove", c.StringSlice("remove"))
			if err != nil {
				return err
			}
			set, err := tagWords("set", c.StringSlice("set"))
			if err != nil {
				return err
			}
			if !c.IsSet("add") && !c.IsSet("remove") && !c.IsSet("set") {
				return usagef("tag needs --add, --remove or --set")
			}
			return runTag(c, e, c.IsSet("set"), set, add, remove)
		},
	}
}

// isTagWord reports whether tag is a tag: a non-empty word of UTF-8
// without commas (which join tags in filters), white space or control
// characters. One rule for create, tag, forget --keep-tag and the config:
// a tag one of them takes, another must not refuse (such a tag could be
// neither kept nor removed). Bytes that are not UTF-8 were stored as
// U+FFFD, so that --keep-tag of the same bytes matched nothing and forget
// removed the snapshot (found by an exploratory test).
func isTagWord(tag string) bool {
	return tag != "" && utf8.ValidString(tag) && !strings.ContainsFunc(tag, func(r rune) bool { return r == ',' || unicode.IsSpace(r) || unicode.IsControl(r) })
}

// checkHost refuses a host name to record that could not be told apart
// from another or typed back: white space around it ("web1 " lists as
// "web1", and --host web1 does not match it), a control character, bytes
// that are not UTF-8 (JSON shows them as U+FFFD).
func checkHost(h string) error {
	if strings.TrimSpace(h) != h || strings.ContainsFunc(h, unicode.IsControl) || !utf8.ValidString(h) {
		return errors.New("a host name has no white space around it, no control characters, and is UTF-8")
	}
	return nil
}

// tagWords splits each value at commas, as create --tag does, and checks
// each tag: a non-empty word without spaces or commas. --remove takes any
// tag but an empty one: a snapshot may carry one that snap took before
// this rule (a space, a control character), and must be able to lose it.
func tagWords(flag string, values []string) ([]string, error) {
	var out []string
	for _, v := range values {
		for _, t := range strings.Split(v, ",") {
			switch {
			case v == "" && flag == "set":
				continue // --set '' clears
			case flag == "remove" && t != "":
			case !isTagWord(t):
				return nil, usagef("--%s %q: a tag is a non-empty word of UTF-8 without commas or spaces", flag, v)
			}
			if !slices.Contains(out, t) {
				out = append(out, t)
			}
		}
	}
	return out, nil
}

// retagged is what tag did to one snapshot (docs/usage.md).
type retagged struct {
	OldID string   `json:"old_id"`
	NewID string   `json:"new_id,omitempty"` // not known in a dry run
	Tags  []string `json:"tags"`
}

func runTag(c *cli.Context, e *env, replace bool, set, add, remove []string) error {
	// The exclusive lock: two tags of one snapshot at once would each
	// store a copy and fork it, and a forget running meanwhile could see
	// both documents, keep the one tag is about to remove and drop the
	// other. Tagging takes a moment; a backup running makes it exit 11.
	// A dry run changes nothing, so it waits for no backup.
	mode := exclusiveLock
	if c.Bool("dry-run") {
		mode = sharedLock
	}
	s, err := openSession(c, e, mode)
	if err != nil {
		return err
	}
	defer s.close()
	var targets []*snapshot.Snapshot
	if c.NArg() == 0 {
		// Every snapshot the filters select, as restic's tag does.
		sns, err := s.snapshots(c.Context)
		if err != nil {
			return err
		}
		if len(s.unreadable) > 0 {
			return fmt.Errorf("%s cannot be read (above), and may be among those the filters select; nothing was changed: give the snapshots' IDs", plural(len(s.unreadable), "snapshot", "snapshots"))
		}
		f := filterFrom(c)
		targets, note := applyFilter(sns, f)
		if len(targets) == 0 {
			if note == "" {
				note = "the repository has no snapshots"
			}
			return fmt.Errorf("%w: %s; nothing was changed", snapshot.ErrNoSnapshot, note)
		}
		return tagSnapshots(c, s, targets, replace, set, add, remove)
	}
	for _, ref := range c.Args().Slice() {
		sn, err := s.findSnapshot(c, ref)
		if err != nil {
			return err
		}
		if !slices.ContainsFunc(targets, func(t *snapshot.Snapshot) bool { return t.ID == sn.ID }) {
			targets = append(targets, sn)
		}
	}
	return tagSnapshots(c, s, targets, replace, set, add, remove)
}

// tagSnapshots changes the tags of targets and prints what became of each.
func tagSnapshots(c *cli.Context, s *session, targets []*snapshot.Snapshot, replace bool, set, add, remove []string) error {
	dry := c.Bool("dry-run")
	res := struct {
		DryRun    bool       `json:"dry_run"`
		Changed   []retagged `json:"changed"`
		Unchanged []string   `json:"unchanged"`
	}{DryRun: dry, Changed: []retagged{}, Unchanged: []string{}}
	// The snapshots there are, for a tag that was stopped before it
	// removed the old document: its new one is among them.
	all, _, err := s.loader.List(c.Context)
	if err != nil {
		return err
	}
	for _, sn := range targets {
		tags := slices.Clone(sn.Tags)
		if replace {
			tags = slices.Clone(set)
		}
		for _, t := range add {
			if !slices.Contains(tags, t) {
				tags = append(tags, t)
			}
		}
		tags = slices.DeleteFunc(tags, func(t string) bool { return slices.Contains(remove, t) })
		if tags == nil {
			tags = []string{}
		}
		if sameTags(tags, sn.Tags) {
			res.Unchanged = append(res.Unchanged, sn.ID.String())
			s.ui.printf("snapshot %s: tags unchanged (%s)", sn.ID.Short(), tagList(tags))
			continue
		}
		if dry {
			res.Changed = append(res.Changed, retagged{OldID: sn.ID.String(), Tags: tags})
			s.ui.printf("snapshot %s would get tags %s (now %s)", sn.ID.Short(), tagList(tags), tagList(sn.Tags))
			continue
		}
		var newID repo.ID
		if i := slices.IndexFunc(all, func(o *snapshot.Snapshot) bool {
			return o.ID != sn.ID && snapshot.Origin(o) == snapshot.Origin(sn) && sameTags(o.Tags, tags)
		}); i >= 0 {
			// Stored with these tags already, by a tag killed before it
			// removed sn: that copy stays, sn goes (running the tag
			// again stored a third copy; found by an exploratory test).
			newID = all[i].ID
			if err := s.r.Backend().Remove(c.Context, repo.Handle{Type: repo.SnapshotFile, Name: sn.ID.String()}); err != nil && !errors.Is(err, repo.ErrNotFound) {
				return fmt.Errorf("snapshot %s is stored with the new tags already, as %s, but its old document could not be removed (remove it with 'snap forget %s'): %w", sn.ID.Short(), newID.Short(), sn.ID, err)
			}
		} else if newID, err = retag(c, s, sn, tags); err != nil {
			return err
		}
		res.Changed = append(res.Changed, retagged{OldID: sn.ID.String(), NewID: newID.String(), Tags: tags})
		s.ui.printf("snapshot %s is now %s, tags %s", sn.ID.Short(), newID.Short(), tagList(tags))
	}
	if s.ui.json {
		return s.ui.jsonDoc(res)
	}
	return nil
}

// retag stores sn again with tags, then removes the old document: a crash
// in between leaves both, never neither. The new document keeps the
// snapshot's origin (snapshot.Origin), which says it holds the same data.
func retag(c *cli.Context, s *session, sn *snapshot.Snapshot, tags []string) (repo.ID, error) {
	next := *sn
	next.Tags = tags
	origin := snapshot.Origin(sn)
	next.Original, next.ID = &origin, repo.ID{}
	if err := snapshot.Save(c.Context, s.r, &next); err != nil {
		return repo.ID{}, diskFull(fmt.Errorf("snapshot %s keeps its tags: %w", sn.ID.Short(), err))
	}
	err := s.r.Backend().Remove(c.Context, repo.Handle{Type: repo.SnapshotFile, Name: sn.ID.String()})
	if err != nil && !errors.Is(err, repo.ErrNotFound) {
		return repo.ID{}, fmt.Errorf("snapshot %s is stored again as %s with the new tags, but the old document could not be removed (remove it with 'snap forget %s'): %w",
			sn.ID.Short(), next.ID.Short(), sn.ID, err)
	}
	return next.ID, nil
}

// sameTags reports whether a and b hold the same tags, in any order.
func sameTags(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(slices.Compact(a), slices.Compact(b))
}

func tagList(tags []string) string {
	if len(tags) == 0 {
		return "none"
	}
	// Quoted when odd: a tag from the repository with a line break
	// printed as two lines (found by an exploratory test).
	out := make([]string, len(tags))
	for i, t := range tags {
		out[i] = listedPath(t)
	}
	return strings.Join(out, ", ")
}
