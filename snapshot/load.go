package snapshot

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/snap-backup/snap/index"
	"github.com/snap-backup/snap/repo"
	"github.com/snap-backup/snap/sources"
)

// MaxDepth is the deepest nesting of directories below a snapshot's root
// that snap stores and reads. Every walk of a tree checks it: a chain of
// 2,000,000 directories in a crafted repository overflowed the stack of
// check and copy (a fatal error with a stack dump, which no recover
// catches) and took the other walks quadratic time. A path that deep is
// over 8 KiB, twice PATH_MAX: only *at system calls reach it.
const MaxDepth = 4096

// tooDeep is the error of a tree nested deeper than MaxDepth.
func tooDeep(id repo.ID) error {
	return &repo.CorruptError{Object: "tree " + id.String(), Reason: fmt.Sprintf("directories nested more than %d deep, which snap never stores", MaxDepth)}
}

// loadTreeAt is LoadTree for the tree depth levels below the one a walk
// started at: one nested deeper than MaxDepth is an error (tooDeep),
// whatever walk meets it.
func loadTreeAt(ctx context.Context, ix *index.Index, id repo.ID, depth int) (*Tree, error) {
	t, _, err := loadTreeOnPath(ctx, ix, id, depth, 0)
	return t, err
}

// MaxPathTreeBytes bounds the memory of the decoded listings of the
// directories along one path from where a walk starts (decodeTree): a walk
// that goes depth first holds each of them while it goes deeper. Each
// tree may be as large as MaxBlobSize and a path MaxDepth deep, and zstd
// stores a listing of repeated bytes in almost nothing: 512 nested
// directories with a 64 MiB attribute each, 7.7 MB in a crafted
// repository, took ls, check, find, copy, diff and restore past any
// memory, and so did listings of tiny nodes, each some 250 bytes decoded
// (found by red-team tests). A directory of a million files costs some
// 400 MB.
const MaxPathTreeBytes = 2 << 30

// nodeMemory is about what a decoded Node takes beyond its strings and
// slices, whose bytes the plaintext counts.
const nodeMemory = 256

// treeCost is the memory plain takes decoded, by the count of nodes its
// header gives, or false when it has no such header (DecodeTree says why).
func treeCost(plain []byte) (int64, bool) {
	if len(plain) < 5 {
		return 0, false
	}
	n, k := binary.Uvarint(plain[5:])
	if k <= 0 || n > uint64(len(plain)) {
		return 0, false
	}
	return int64(len(plain)) + int64(n)*nodeMemory, true
}

// tooLarge is the error of a path whose listings exceed MaxPathTreeBytes.
func tooLarge(id repo.ID) error {
	return &repo.CorruptError{Object: "tree " + id.String(), Reason: fmt.Sprintf("the directories along its path hold more than %d MiB of listings, which snap never stores", MaxPathTreeBytes>>20)}
}

// loadTreeOnPath is loadTreeAt for a walk that holds the trees above it,
// whose decoded listings take held (decodeOnPath): it returns the tree and held
// with its own added.
func loadTreeOnPath(ctx context.Context, ix *index.Index, id repo.ID, depth int, held int64) (*Tree, int64, error) {
	if depth >= MaxDepth {
		return nil, 0, tooDeep(id)
	}
	plain, err := ix.LoadBlob(ctx, repo.TreeBlob, id, nil)
	if err != nil {
		return nil, 0, err
	}
	return decodeOnPath(id, plain, held)
}

// decodeOnPath decodes tree id's plaintext for a walk whose path holds
// held, within what MaxPathTreeBytes leaves: it returns the tree
// and held with what it takes decoded added (its extended attributes too,
// which treeCost cannot see).
func decodeOnPath(id repo.ID, plain []byte, held int64) (*Tree, int64, error) {
	t, cost, err := decodeTree(plain, MaxPathTreeBytes-held)
	switch {
	case errors.Is(err, errOverBudget):
		return nil, 0, tooLarge(id)
	case err != nil:
		return nil, 0, &repo.CorruptError{Object: "tree blob " + id.String(), Reason: err.Error()}
	}
	return t, held + cost, nil
}

// LoadTree reads, verifies and decodes a tree blob, a failure to decode
// being damage (within MaxPathTreeBytes, as the first tree of a path).
func LoadTree(ctx context.Context, ix *index.Index, id repo.ID) (*Tree, error) {
	plain, err := ix.LoadBlob(ctx, repo.TreeBlob, id, nil)
	if err != nil {
		return nil, err
	}
	t, _, err := decodeOnPath(id, plain, 0)
	return t, err
}

// rootNode is the synthetic node of a snapshot's root directory.
func rootNode(tree repo.ID) Node {
	return Node{Meta: sources.Meta{Name: "/", Type: sources.TypeDir, Mode: 0o755}, Subtree: tree}
}

// ErrNoPath is FindNode's error for a path the snapshot does not hold.
var ErrNoPath = errors.New("does not exist in the snapshot")

// FindNode follows an absolute slash-separated path from a root tree and
// returns the node there ("/" gives a synthetic root directory node).
func FindNode(ctx context.Context, ix *index.Index, root repo.ID, p string) (Node, error) {
	return findNode(root, p, func(id repo.ID) (*Tree, error) { return LoadTree(ctx, ix, id) })
}

// NodeFinder is FindNode for many paths: each tree on the way is decoded
// once. A create given thousands of paths in one directory decoded that
// directory's tree once for each of them (found by an exploratory test:
// 6,000 paths took 52 s). It holds every tree it decoded since the last
// Retain but one.
type NodeFinder struct {
	ix    *index.Index
	trees map[repo.ID]*Tree
	prev  map[repo.ID]*Tree // before the last Retain: kept if used again
}

// NewNodeFinder returns a NodeFinder reading ix's repository.
func NewNodeFinder(ix *index.Index) *NodeFinder {
	return &NodeFinder{ix: ix, trees: map[repo.ID]*Tree{}}
}

// Retain starts a new generation: trees used since the last Retain are
// kept as long as they are used again before the next, the others are
// dropped then. A look-up in one snapshot after another keeps the trees
// the snapshots share (most of them), while memory holds the trees of two
// snapshots, not of all.
func (f *NodeFinder) Retain() {
	f.prev, f.trees = f.trees, map[repo.ID]*Tree{}
}

// Find is FindNode.
func (f *NodeFinder) Find(ctx context.Context, root repo.ID, p string) (Node, error) {
	return findNode(root, p, func(id repo.ID) (*Tree, error) {
		if t, ok := f.trees[id]; ok {
			return t, nil
		}
		if t, ok := f.prev[id]; ok {
			f.trees[id] = t
			return t, nil
		}
		t, err := LoadTree(ctx, f.ix, id)
		if err == nil {
			f.trees[id] = t
		}
		return t, err
	})
}

func findNode(root repo.ID, p string, load func(repo.ID) (*Tree, error)) (Node, error) {
	node := rootNode(root)
	for _, name := range strings.Split(strings.Trim(path.Clean("/"+p), "/"), "/") {
		if name == "" {
			continue
		}
		if node.Type != sources.TypeDir {
			return Node{}, fmt.Errorf("path %s: %q is not a directory in the snapshot", p, node.Name)
		}
		t, err := load(node.Subtree)
		if err != nil {
			return Node{}, err
		}
		n, ok := t.Find(name)
		if !ok {
			return Node{}, fmt.Errorf("path %s %w; see 'snap ls'", sources.DisplayPath(p), ErrNoPath)
		}
		node = *n
	}
	return node, nil
}

// WalkFunc is called for each node with its absolute path in the snapshot.
// Returning SkipDir from a directory's call skips its contents.
type WalkFunc func(p string, n *Node) error

// SkipDir tells Walk not to descend.
var SkipDir = fmt.Errorf("skip this directory")

// Walk visits the node at p and everything below it, depth first in name
// order.
func Walk(ctx context.Context, ix *index.Index, p string, n Node, fn WalkFunc) error {
	return walk(ctx, ix, &walkPath{name: p}, n, fn)
}

// walkPath is the path of a node that Walk visits, as a chain of names:
// each level of the walk keeps its own name only, and the whole path is
// built for fn and dropped. With a path string per level, a crafted chain
// of 4,000 directories with 255-byte names held 2 GB.
type walkPath struct {
	parent *walkPath
	name   string // the path Walk started at, for the first
	depth  int    // below the first
	held   int64  // the decoded listings of the trees above it (decodeOnPath)
}

// child returns the path of the entry name below w.
func (w *walkPath) child(name string) *walkPath {
	return &walkPath{parent: w, name: name, depth: w.depth + 1}
}

func (w *walkPath) String() string {
	var names []string
	for ; w != nil; w = w.parent {
		names = append(names, w.name)
	}
	slices.Reverse(names)
	return path.Join(names...)
}

func walk(ctx context.Context, ix *index.Index, p *walkPath, n Node, fn WalkFunc) error {
	if err := fn(p.String(), &n); err != nil {
		if err == SkipDir {
			return nil
		}
		return err
	}
	if n.Type != sources.TypeDir {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	t, held, err := loadTreeOnPath(ctx, ix, n.Subtree, p.depth, p.held)
	if err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	for i := range t.Nodes {
		c := p.child(t.Nodes[i].Name)
		c.held = held
		if err := walk(ctx, ix, c, t.Nodes[i], fn); err != nil {
			return err
		}
	}
	return nil
}
