package snapshot

import (
	"context"
	"errors"
	"fmt"

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
	// (a pattern may be anchored at the root), hence the path in the key:
	// as a number from dirs, which holds each directory path once as its
	// parent's number and its own name. A key with the path itself held
	// every directory's whole path: the square of the depth, 2 GB for a
	// crafted chain of 4,000 directories with 255-byte names.
	empty map[finderKey]struct{}
	dirs  map[dirName]int
}

type finderKey struct {
	tree repo.ID
	dir  int
}

// dirName is a directory path as the number of its parent's path (0 for
// the root) and its own name.
type dirName struct {
	parent int
	name   string
}

// Found is one entry a Finder found: its path in the snapshot and its node,
// without the file's chunk list.
type Found struct {
	Path string
	Node Node
}

// NewFinder returns a Finder with the tests match and descend (see Finder).
func NewFinder(ix *index.Index, match func(p string, n *Node) bool, descend func(p string) bool) *Finder {
	return &Finder{ix: ix, match: match, descend: descend, empty: map[finderKey]struct{}{}, dirs: map[dirName]int{}}
}

// Find returns what matches below the root tree, depth first in name order.
func (f *Finder) Find(ctx context.Context, root repo.ID) ([]Found, error) {
	var out []Found
	err := f.Each(ctx, root, func(p string, n *Node) error {
		found := Found{Path: p, Node: *n}
		found.Node.Content = nil
		out = append(out, found)
		return nil
	})
	return out, err
}

// Each calls fn for each entry found below root, in the order of the
// trees, as the walk goes: a search of 300,000 matches held them all
// (348 MB) until its snapshot's walk ended (found by an exploratory
// test). n is valid only during the call; an error from fn ends the walk. A
// directory listing that cannot be read is passed over, and the others are
// searched: Each then returns an error naming the first (and how many
// more). It stopped the search there, and the intact directories after it
// went unsearched (found by an exploratory test).
func (f *Finder) Each(ctx context.Context, root repo.ID, fn func(p string, n *Node) error) error {
	var skipped findSkipped
	if _, _, err := f.dir(ctx, root, &walkPath{name: "/"}, 0, fn, &skipped); err != nil {
		return err
	}
	switch {
	case skipped.n == 1:
		return skipped.first
	case skipped.n > 1:
		return fmt.Errorf("%w (and %d more directories that could not be read)", skipped.first, skipped.n-1)
	}
	return nil
}

// findSkipped counts the directories a search passed over: their listings
// could not be read.
type findSkipped struct {
	first error
	n     int
}

// dir searches tree id, the directory at p (numbered dir, see dirs), and
// returns whether anything at or below it matched, and whether it was
// searched whole. Like Walk, it keeps no path string while it descends.
func (f *Finder) dir(ctx context.Context, id repo.ID, p *walkPath, dir int, fn func(string, *Node) error, skipped *findSkipped) (found, whole bool, _ error) {
	key := finderKey{tree: id, dir: dir}
	if _, ok := f.empty[key]; ok && dir >= 0 {
		return false, true, nil
	}
	if err := ctx.Err(); err != nil {
		return false, false, err
	}
	t, held, err := loadTreeOnPath(ctx, f.ix, id, p.depth, p.held)
	if err != nil && (errors.Is(err, repo.ErrTransient) || ctx.Err() != nil) {
		// A repository that stops answering ends the search: each
		// directory after it would wait out its retries.
		return false, false, fmt.Errorf("%s: %w", p, err)
	}
	if err != nil {
		if skipped.n++; skipped.first == nil {
			skipped.first = fmt.Errorf("%s: %w", p, err)
		}
		return false, false, nil
	}
	whole = true
	for i := range t.Nodes {
		n := &t.Nodes[i]
		np := p.child(n.Name)
		np.held = held
		npath := np.String()
		if f.match(npath, n) {
			found = true
			if err := fn(npath, n); err != nil {
				return found, whole, err
			}
		}
		if n.Type == sources.TypeDir && f.descend(npath) {
			below, belowWhole, err := f.dir(ctx, n.Subtree, np, f.number(dir, n.Name), fn, skipped)
			if err != nil {
				return found, whole, err
			}
			found, whole = found || below, whole && belowWhole
		}
	}
	if !found && whole && dir >= 0 {
		// Only a directory searched whole is known to hold no match for
		// the other snapshots that share it.
		f.empty[key] = struct{}{}
	}
	return found, whole, nil
}

// number returns the number of the directory name in the directory
// numbered parent.
// Past maxFinderDirs numbered paths, a new one (and all below it) is -1:
// not remembered, searched every time.
func (f *Finder) number(parent int, name string) int {
	if parent < 0 {
		return -1
	}
	k := dirName{parent: parent, name: name}
	n, ok := f.dirs[k]
	if !ok {
		if len(f.dirs) >= maxFinderDirs {
			return -1
		}
		n = len(f.dirs) + 1
		f.dirs[k] = n
	}
	return n
}

// maxFinderDirs bounds the directory paths a Finder remembers (some 100
// bytes each, with what empty holds of them): a crafted tree whose
// levels each name one subtree twice has 2^depth paths, and a find of one
// 22 deep took 2.1 GB, twice as much a level deeper (found by a
// hostile-repository test). A million directory paths is more than the
// snapshots of most trees hold together; past it, the search goes on
// without the memory, reading shared directories again.
const maxFinderDirs = 1 << 20
