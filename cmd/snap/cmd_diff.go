package main

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"

	"github.com/snap-backup/snap/snapshot"
	"github.com/snap-backup/snap/sources"
)

func diffCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:      "diff",
		Usage:     "show what changed between two snapshots",
		ArgsUsage: "SNAPSHOT-A [SNAPSHOT-B]",
		Description: "Lists the paths added (+), removed (-), changed in content (M), changed in type (T) and, with\n" +
			"--metadata, changed only in mode, owner, mtime, extended attributes or hard link count (U),\n" +
			"with their sizes, then totals. With one snapshot, compares it with its parent. Directories\n" +
			"whose tree is the same in both snapshots are skipped without being read.",
		Flags: append(filterFlags(),
			&cli.BoolFlag{Name: "metadata", Usage: "also list entries whose metadata alone changed"},
		),
		Action: func(c *cli.Context) error {
			if c.NArg() < 1 || c.NArg() > 2 {
				return usagef("usage: snap diff SNAPSHOT-A [SNAPSHOT-B]")
			}
			return runDiff(c, e, c.Args().Get(0), c.Args().Get(1), c.Bool("metadata"))
		},
	}
}

// diffChangeJSON is the documented JSON form of one change.
type diffChangeJSON struct {
	Path       string  `json:"path"`
	PathBase64 string  `json:"path_base64,omitempty"`
	Change     string  `json:"change"` // added, removed, modified, metadata, type
	Type       string  `json:"type"`
	OldType    string  `json:"old_type,omitempty"`
	OldSize    *uint64 `json:"old_size,omitempty"`
	NewSize    *uint64 `json:"new_size,omitempty"`
	// Metadata names what changed of a "metadata" change (mode, owner,
	// mtime, links, xattrs: snapshot.MetaChanges).
	Metadata []string `json:"metadata,omitempty"`
	// Old and New are the entry as each snapshot holds it: what the
	// listing shows after the arrows (a symlink's targets, an owner, a
	// mode), which a script had no way to read (found by an
	// exploratory test).
	Old *diffNodeJSON `json:"old,omitempty"`
	New *diffNodeJSON `json:"new,omitempty"`
}

// diffNodeJSON is the documented JSON form of one side of a change.
type diffNodeJSON struct {
	Mode         string    `json:"mode"` // permission bits in octal, "0644"
	UID          uint32    `json:"uid"`
	GID          uint32    `json:"gid"`
	User         string    `json:"user,omitempty"`
	Group        string    `json:"group,omitempty"`
	MTime        time.Time `json:"mtime"`
	Links        uint64    `json:"links,omitempty"`
	Target       string    `json:"target,omitempty"` // a symlink's
	TargetBase64 string    `json:"target_base64,omitempty"`
}

func toDiffNodeJSON(n *snapshot.Node) *diffNodeJSON {
	if n == nil {
		return nil
	}
	return &diffNodeJSON{Mode: fmt.Sprintf("%04o", n.Mode&0o7777), UID: n.UID, GID: n.GID, User: n.User, Group: n.Group,
		MTime: time.Unix(0, n.MTime).UTC(), Links: n.Links, Target: n.LinkTarget, TargetBase64: pathBase64(n.LinkTarget)}
}

// diffSummary is the documented JSON form of the totals.
type diffSummary struct {
	AddedFiles       int64 `json:"added_files"`
	AddedDirs        int64 `json:"added_dirs"`
	AddedOther       int64 `json:"added_other"`
	AddedBytes       int64 `json:"added_bytes"`
	RemovedFiles     int64 `json:"removed_files"`
	RemovedDirs      int64 `json:"removed_dirs"`
	RemovedOther     int64 `json:"removed_other"`
	RemovedBytes     int64 `json:"removed_bytes"`
	ModifiedFiles    int64 `json:"modified_files"`
	ModifiedOldBytes int64 `json:"modified_old_bytes"`
	ModifiedNewBytes int64 `json:"modified_new_bytes"`
	ModifiedOther    int64 `json:"modified_other"` // symlinks pointed elsewhere, devices renumbered
	MetadataChanged  int64 `json:"metadata_changed"`
	TypeChanged      int64 `json:"type_changed"`
}

type diffSnapJSON struct {
	ID          string    `json:"id"`
	ShortID     string    `json:"short_id"`
	Time        time.Time `json:"time"`
	Host        string    `json:"host"`
	Paths       []string  `json:"paths"`
	PathsBase64 []string  `json:"paths_base64,omitempty"` // as in list (pathsBase64)
}

var changeWords = map[snapshot.ChangeKind]string{snapshot.Added: "added", snapshot.Removed: "removed", snapshot.Modified: "modified",
	snapshot.MetaChanged: "metadata", snapshot.TypeChanged: "type"}

func (s *diffSummary) count(ch snapshot.Change) {
	side := func(n *snapshot.Node, files, dirs, other, bytes *int64) {
		switch n.Type {
		case sources.TypeFile:
			*files++
			*bytes += int64(n.Size)
		case sources.TypeDir:
			*dirs++
		default:
			*other++
		}
	}
	switch k := ch.Kind; {
	case k == snapshot.Added:
		side(ch.New, &s.AddedFiles, &s.AddedDirs, &s.AddedOther, &s.AddedBytes)
	case k == snapshot.Removed:
		side(ch.Old, &s.RemovedFiles, &s.RemovedDirs, &s.RemovedOther, &s.RemovedBytes)
	case k == snapshot.Modified && ch.New.Type != sources.TypeFile:
		// A symlink's size is its target's length: no bytes of files.
		s.ModifiedOther++
	case k == snapshot.Modified:
		s.ModifiedFiles++
		s.ModifiedOldBytes += int64(ch.Old.Size)
		s.ModifiedNewBytes += int64(ch.New.Size)
	case k == snapshot.MetaChanged:
		s.MetadataChanged++
	case k == snapshot.TypeChanged:
		// The old entry is gone and the new one is there: both counted
		// whole, so that the removed and added totals agree with their
		// byte counts.
		s.TypeChanged++
		side(ch.Old, &s.RemovedFiles, &s.RemovedDirs, &s.RemovedOther, &s.RemovedBytes)
		side(ch.New, &s.AddedFiles, &s.AddedDirs, &s.AddedOther, &s.AddedBytes)
	}
}

func runDiff(c *cli.Context, e *env, refA, refB string, metadata bool) error {
	// A word that is no ID is a usage error (exit 2), as in ls, dump,
	// restore and tag, not "no snapshot" (exit 1).
	for _, ref := range []string{refA, refB} {
		if err := checkSnapshotRef(ref); ref != "" && err != nil {
			return err
		}
	}
	s, err := openSession(c, e, noLock)
	if err != nil {
		return err
	}
	defer s.close()
	sns, err := s.snapshots(c.Context)
	if err != nil {
		return err
	}
	a, err := s.find(c, sns, refA)
	if err != nil {
		return err
	}
	var b *snapshot.Snapshot
	if refB == "" {
		b = a
		if a.Parent != nil {
			if p := snapshot.ByID(sns, *a.Parent); p != nil {
				a = p
			}
		}
		if a == b {
			// No parent recorded (create --force), or it was forgotten:
			// the previous snapshot of the same host and paths is what
			// the parent would have been.
			i := slices.Index(sns, b)
			prev := snapshot.FindParent(sns[:max(i, 0)], b.Host, b.Paths, b.Tags, snapshot.StreamKeys(b.Sources))
			why := "records no parent (taken with --force, say)"
			if b.Parent != nil {
				why = "has lost its parent " + b.Parent.Short() + " (forgotten)"
			}
			if prev == nil && b.Parent == nil {
				// Most often simply the first backup of those paths: no
				// --force to speak of (found by an exploratory test).
				return usagef("snapshot %s is the first of its host and paths: there is nothing earlier to compare it with; give two snapshots ('snap diff A B')", b.ID.Short())
			}
			if prev == nil {
				return usagef("snapshot %s %s, and no earlier snapshot has its host and paths: name the snapshot to compare it with", b.ID.Short(), why)
			}
			s.ui.noticef("snapshot %s %s: comparing it with %s, the previous snapshot of its host and paths", b.ID.Short(), why, prev.ID.Short())
			a = prev
		}
	} else if b, err = s.find(c, sns, refB); err != nil {
		return err
	}
	u := s.ui
	var sum diffSummary
	// JSON changes are written as they are found, like the text: a diff
	// of two snapshots of a million files each held every change in
	// memory (about 1.3 KB each) before writing any.
	var doc *jsonArray
	if u.json {
		snapJ := func(sn *snapshot.Snapshot) diffSnapJSON {
			return diffSnapJSON{ID: sn.ID.String(), ShortID: sn.ID.Short(), Time: sn.Time, Host: sn.Host, Paths: sn.Paths, PathsBase64: pathsBase64(sn.Paths)}
		}
		doc = u.jsonArray("changes")
		if err := doc.Begin(map[string]any{"a": snapJ(a), "b": snapJ(b)}); err != nil {
			return err
		}
	} else {
		u.printf("comparing snapshot %s (%s) with %s (%s)", a.ID.Short(), localTime(a.Time), b.ID.Short(), localTime(b.Time))
	}
	err = snapshot.Diff(c.Context, s.ix, a.Tree, b.Tree, func(ch snapshot.Change) error {
		sum.count(ch)
		if ch.Kind == snapshot.MetaChanged && !metadata {
			return nil
		}
		j := diffChangeJSON{Path: ch.Path, Change: changeWords[ch.Kind], Old: toDiffNodeJSON(ch.Old), New: toDiffNodeJSON(ch.New)}
		j.PathBase64 = pathBase64(ch.Path)
		if ch.Old != nil {
			j.Type = ch.Old.Type.String()
			if ch.Old.Type == sources.TypeFile {
				size := ch.Old.Size
				j.OldSize = &size
			}
		}
		if ch.New != nil {
			j.Type = ch.New.Type.String()
			if ch.New.Type == sources.TypeFile {
				size := ch.New.Size
				j.NewSize = &size
			}
		}
		if ch.Kind == snapshot.TypeChanged {
			j.OldType = ch.Old.Type.String()
		}
		if ch.Kind == snapshot.MetaChanged {
			j.Metadata = snapshot.MetaChanges(ch.Old, ch.New)
		}
		// With --metadata, a modified entry also says what else of it
		// changed (a mode went unseen when the contents changed too;
		// found by an exploratory test). Its mtime goes with its
		// contents.
		var also []string
		if metadata && ch.Kind == snapshot.Modified {
			also = slices.DeleteFunc(snapshot.MetaChanges(ch.Old, ch.New), func(w string) bool { return w == "mtime" })
			j.Metadata = also
		}
		if doc != nil {
			return doc.Add(j)
		}
		// The changes are the result, shown also with --quiet (which
		// hides the heading and the summary).
		note := sizeNote(ch)
		switch {
		case len(also) > 0 && note == "": // a symlink or a device: no sizes
			note = "  (" + metaNote(ch.Old, ch.New, also) + ")"
		case len(also) > 0:
			note = strings.TrimSuffix(note, ")") + "; " + metaNote(ch.Old, ch.New, also) + ")"
		}
		if !utf8Locale(e.getenv) {
			// A terminal in the C locale showed "→" as bytes (found by
			// an exploratory test).
			note = strings.ReplaceAll(note, "→", "->")
		}
		fmt.Fprintf(e.stdout, "%-4s %s%s\n", ch.Kind, listedPath(ch.Path), note)
		return nil
	})
	if err != nil {
		if doc != nil {
			_ = doc.Flush()
		}
		return fmt.Errorf("diff %s %s: %w", a.ID.Short(), b.ID.Short(), err)
	}
	if doc != nil {
		return doc.End(map[string]any{"summary": sum})
	}
	u.printf("")
	counts := func(files, dirs, other int64) string {
		return plural(int(files), "file", "files") + ", " + plural(int(dirs), "dir", "dirs") + ", " + plural(int(other), "other", "others")
	}
	u.printf("added:    %s, %s", counts(sum.AddedFiles, sum.AddedDirs, sum.AddedOther), humanBytes(sum.AddedBytes))
	u.printf("removed:  %s, %s", counts(sum.RemovedFiles, sum.RemovedDirs, sum.RemovedOther), humanBytes(sum.RemovedBytes))
	u.printf("modified: %s, %s before, %s after; %s", plural(int(sum.ModifiedFiles), "file", "files"), humanBytes(sum.ModifiedOldBytes), humanBytes(sum.ModifiedNewBytes), plural(int(sum.ModifiedOther), "other", "others"))
	u.printf("metadata only: %d, type changed: %d", sum.MetadataChanged, sum.TypeChanged)
	return nil
}

// metaNote says what of a's metadata b changed (what, by
// snapshot.MetaChanges' names), with the values that are short to show:
// "mode 0644 → 0600, mtime".
func metaNote(a, b *snapshot.Node, what []string) string {
	var parts []string
	for _, what := range what {
		switch what {
		case "mode":
			parts = append(parts, fmt.Sprintf("mode %04o → %04o", a.Mode&0o7777, b.Mode&0o7777))
		case "owner":
			parts = append(parts, fmt.Sprintf("owner %s → %s", owner(a), owner(b)))
		case "links":
			parts = append(parts, fmt.Sprintf("links %d → %d", a.Links, b.Links))
		default:
			parts = append(parts, what)
		}
	}
	return strings.Join(parts, ", ")
}

// owner is a node's user and group as ls -l shows them, names where
// recorded, else numbers.
func owner(n *snapshot.Node) string {
	u, g := n.User, n.Group
	if u == "" {
		u = fmt.Sprint(n.UID)
	}
	if g == "" {
		g = fmt.Sprint(n.GID)
	}
	return listedPath(u + ":" + g)
}

// sizeNote describes a change's sizes for the human listing.
func sizeNote(ch snapshot.Change) string {
	switch ch.Kind {
	case snapshot.Added:
		if ch.New.Type == sources.TypeFile {
			return fmt.Sprintf("  (%s)", humanBytes(int64(ch.New.Size)))
		}
	case snapshot.Removed:
		if ch.Old.Type == sources.TypeFile {
			return fmt.Sprintf("  (%s)", humanBytes(int64(ch.Old.Size)))
		}
	case snapshot.Modified:
		switch ch.New.Type {
		case sources.TypeFile:
			a, b := humanBytes(int64(ch.Old.Size)), humanBytes(int64(ch.New.Size))
			if a == b && ch.Old.Size != ch.New.Size {
				// "1.2 MiB → 1.2 MiB" hid a change of size: exact
				// then (found by an exploratory test).
				a, b = fmt.Sprintf("%d B", ch.Old.Size), fmt.Sprintf("%d B", ch.New.Size)
			}
			return fmt.Sprintf("  (%s → %s)", a, b)
		case sources.TypeSymlink: // a "modified" symlink points elsewhere
			if ch.Old.LinkTarget != ch.New.LinkTarget {
				return fmt.Sprintf("  (%s → %s)", listedPath(ch.Old.LinkTarget), listedPath(ch.New.LinkTarget))
			}
		case sources.TypeDev, sources.TypeCharDev: // renumbered
			if ch.Old.Rdev != ch.New.Rdev {
				return fmt.Sprintf("  (%d, %d → %d, %d)", unix.Major(ch.Old.Rdev), unix.Minor(ch.Old.Rdev), unix.Major(ch.New.Rdev), unix.Minor(ch.New.Rdev))
			}
		}
	case snapshot.TypeChanged:
		return fmt.Sprintf("  (%s → %s)", ch.Old.Type, ch.New.Type)
	case snapshot.MetaChanged:
		return "  (" + metaNote(ch.Old, ch.New, snapshot.MetaChanges(ch.Old, ch.New)) + ")"
	}
	return ""
}
