package snapshot

import (
	"bytes"
	"context"
	"fmt"
	"path"
	"slices"

	"github.com/snap-backup/snap/index"
	"github.com/snap-backup/snap/repo"
	"github.com/snap-backup/snap/sources"
)

// ChangeKind says how an entry differs between two snapshots.
type ChangeKind int

// Kinds of change, with the letters 'snap diff' prints.
const (
	Added       ChangeKind = iota // "+": only in the second snapshot
	Removed                       // "-": only in the first
	Modified                      // "M": content (or link target, or device) differs
	MetaChanged                   // "U": same content, other metadata (mode, owner, mtime, xattrs)
	TypeChanged                   // "T": a file became a directory, …
)

// String returns the kind's letter.
func (k ChangeKind) String() string {
	return [...]string{"+", "-", "M", "U", "T"}[k]
}

// Change is one difference. Old is nil for Added, New for Removed.
type Change struct {
	Path     string
	Kind     ChangeKind
	Old, New *Node
}

// Diff compares the trees a and b and calls fn for every difference,
// depth first in name order. A directory whose subtree ID is the same on
// both sides is identical (trees are content-addressed) and is skipped
// without being read. Below an added or removed directory every entry is
// reported too.
func Diff(ctx context.Context, ix *index.Index, a, b repo.ID, fn func(Change) error) error {
	if a == b {
		return nil
	}
	return diffTrees(ctx, ix, "/", 0, 0, a, b, fn)
}

// diffTrees compares trees a and b, the directory dir, depth levels
// below the root, below listings that take held (loadTreeOnPath: both
// sides' count).
func diffTrees(ctx context.Context, ix *index.Index, dir string, depth int, held int64, a, b repo.ID, fn func(Change) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	ta, held, err := loadTreeOnPath(ctx, ix, a, depth, held)
	if err != nil {
		return fmt.Errorf("%s: %w", dir, err)
	}
	tb, held, err := loadTreeOnPath(ctx, ix, b, depth, held)
	if err != nil {
		return fmt.Errorf("%s: %w", dir, err)
	}
	i, j := 0, 0
	for i < len(ta.Nodes) || j < len(tb.Nodes) {
		switch {
		case j == len(tb.Nodes) || i < len(ta.Nodes) && ta.Nodes[i].Name < tb.Nodes[j].Name:
			if err := diffOneSide(ctx, ix, path.Join(dir, ta.Nodes[i].Name), held, &ta.Nodes[i], Removed, fn); err != nil {
				return err
			}
			i++
		case i == len(ta.Nodes) || tb.Nodes[j].Name < ta.Nodes[i].Name:
			if err := diffOneSide(ctx, ix, path.Join(dir, tb.Nodes[j].Name), held, &tb.Nodes[j], Added, fn); err != nil {
				return err
			}
			j++
		default:
			if err := diffNodes(ctx, ix, path.Join(dir, ta.Nodes[i].Name), depth+1, held, &ta.Nodes[i], &tb.Nodes[j], fn); err != nil {
				return err
			}
			i++
			j++
		}
	}
	return nil
}

// diffOneSide reports n, and everything below it, as added or removed.
func diffOneSide(ctx context.Context, ix *index.Index, p string, held int64, n *Node, kind ChangeKind, fn func(Change) error) error {
	return walk(ctx, ix, &walkPath{name: p, held: held}, *n, func(q string, m *Node) error {
		c := Change{Path: q, Kind: kind}
		node := *m
		if kind == Added {
			c.New = &node
		} else {
			c.Old = &node
		}
		return fn(c)
	})
}

func diffNodes(ctx context.Context, ix *index.Index, p string, depth int, held int64, a, b *Node, fn func(Change) error) error {
	if a.Type != b.Type {
		if err := fn(Change{Path: p, Kind: TypeChanged, Old: a, New: b}); err != nil {
			return err
		}
		// What was below the old directory is gone, what is below the new
		// one is new.
		if err := diffBelow(ctx, ix, p, held, a, Removed, fn); err != nil {
			return err
		}
		return diffBelow(ctx, ix, p, held, b, Added, fn)
	}
	if a.Type == sources.TypeDir {
		if !sameMeta(a, b) {
			if err := fn(Change{Path: p, Kind: MetaChanged, Old: a, New: b}); err != nil {
				return err
			}
		}
		if a.Subtree == b.Subtree {
			return nil
		}
		return diffTrees(ctx, ix, p, depth, held, a.Subtree, b.Subtree, fn)
	}
	switch {
	case !sameContent(a, b):
		return fn(Change{Path: p, Kind: Modified, Old: a, New: b})
	case !sameMeta(a, b):
		return fn(Change{Path: p, Kind: MetaChanged, Old: a, New: b})
	}
	return nil
}

// diffBelow reports the entries below a directory node (not the node).
func diffBelow(ctx context.Context, ix *index.Index, p string, held int64, n *Node, kind ChangeKind, fn func(Change) error) error {
	if n.Type != sources.TypeDir {
		return nil
	}
	return diffOneSide(ctx, ix, p, held, n, kind, func(c Change) error {
		if c.Path == p {
			return nil
		}
		return fn(c)
	})
}

func sameContent(a, b *Node) bool {
	return a.Size == b.Size && slices.Equal(a.Content, b.Content) && a.LinkTarget == b.LinkTarget && a.Rdev == b.Rdev
}

// sameMeta compares what a restore would set: mode, owner, mtime,
// extended attributes and, but for a directory, the link count (a hard
// link replaced by a copy restores as two files). Inode, ctime and atime
// change without the user changing anything, so they do not count, nor
// does a directory's link count, which follows its subdirectories.
func sameMeta(a, b *Node) bool { return len(MetaChanges(a, b)) == 0 }

// MetaChanges names what of the metadata sameMeta compares differs
// between a and b: "mode", "owner" (user or group), "mtime", "links",
// "xattrs"; none when they are the same.
func MetaChanges(a, b *Node) []string {
	var out []string
	if a.Mode != b.Mode {
		out = append(out, "mode")
	}
	if a.UID != b.UID || a.GID != b.GID || a.User != b.User || a.Group != b.Group {
		out = append(out, "owner")
	}
	if a.MTime != b.MTime {
		out = append(out, "mtime")
	}
	if a.Type != sources.TypeDir && a.Links != b.Links {
		out = append(out, "links")
	}
	if !slices.EqualFunc(a.Xattrs, b.Xattrs, func(x, y sources.Xattr) bool { return x.Name == y.Name && bytes.Equal(x.Value, y.Value) }) {
		out = append(out, "xattrs")
	}
	return out
}
