package snapshot

import (
	"context"
	"fmt"
	"path"

	"github.com/snap-backup/snap/index"
	"github.com/snap-backup/snap/repo"
	"github.com/snap-backup/snap/sources"
)

// Finder searches snapshot trees for the entries a test accepts (snap
// find). It remembers which directories held no match, by tree ID and
// path, so that the directories later snapshots share with earlier ones
// are not read again: searching a hundred nightly snapshots of a tree
// that changes a little each night reads each changed directory once,
// not every directory a hundred times.
type Finder struct {
	ix *index.Index
	// match decides whether an entry is found; descend whether a
	// directory can hold a match below it (false prunes the walk).
	match   func(p string, n *Node) bool
	descend func(p string) bool
	// empty holds the directories below which nothing matched. A
	// directory's matches depend on its path as well as its content
	// (a pattern may be anchored at the root), hence the path in the key.
	empty map[finderKey]struct{}
}

type finderKey struct {
	tree repo.ID
	path string
}

// Found is one entry a Finder found: its path in the snapshot and its node,
// without the file's chunk list.
type Found struct {
	Path string
	Node Node
}

// NewFinder returns a Finder with the tests match and descend (see Finder).
func NewFinder(ix *index.Index, match func(p string, n *Node) bool, descend func(p string) bool) *Finder {
	return &Finder{ix: ix, match: match, descend: descend, empty: map[finderKey]struct{}{}}
}

// Find returns what matches below the root tree, depth first in name order.
func (f *Finder) Find(ctx context.Context, root repo.ID) ([]Found, error) {
	var out []Found
	err := f.dir(ctx, root, "/", &out)
	return out, err
}

func (f *Finder) dir(ctx context.Context, id repo.ID, p string, out *[]Found) error {
	key := finderKey{tree: id, path: p}
	if _, ok := f.empty[key]; ok {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	t, err := LoadTree(ctx, f.ix, id)
	if err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	before := len(*out)
	for i := range t.Nodes {
		n := &t.Nodes[i]
		np := path.Join(p, n.Name)
		if f.match(np, n) {
			found := Found{Path: np, Node: *n}
			found.Node.Content = nil
			*out = append(*out, found)
		}
		if n.Type == sources.TypeDir && f.descend(np) {
			if err := f.dir(ctx, n.Subtree, np, out); err != nil {
				return err
			}
		}
	}
	if len(*out) == before {
		f.empty[key] = struct{}{}
	}
	return nil
}
