package snapshot

import (
	"context"
	"errors"
	"fmt"

	"github.com/snap-backup/snap/repo"
	"github.com/snap-backup/snap/sources"
)

// BlobChecker is what checking snapshots needs from the index check.
type BlobChecker interface {
	// LoadBlob reads and verifies a blob.
	LoadBlob(ctx context.Context, t repo.BlobType, id repo.ID) ([]byte, error)
	// Available returns why a blob cannot be read, or nil.
	Available(t repo.BlobType, id repo.ID) error
	// RawLength returns the length of an indexed blob's plaintext.
	RawLength(t repo.BlobType, id repo.ID) (int64, bool)
}

// SnapshotChecker walks snapshots and finds the blobs they refer to that
// are not indexed, are in missing packs, or were found damaged. Trees are
// read once however many snapshots share them, and a problem in a shared
// tree is reported for every snapshot that uses it.
type SnapshotChecker struct {
	src   BlobChecker
	trees map[repo.ID]*treeResult
	data  map[repo.ID]error
	// alongPath are the trees whose results depend on the path they were
	// met at (too deep, too much listing above them, or such a tree below
	// them): dropped before the next snapshot, so that a crafted snapshot
	// that nests a shared directory too deep does not make another that
	// holds it as snap writes read as not written by snap (found by a
	// review).
	alongPath []repo.ID

	Trees       int // distinct trees read
	UnreadTrees int // trees that could not be read, decoded, or were past the depth or path limits: what is below them is unknown
	DataBlobs   int // distinct data blobs checked
}

type treeResult struct {
	problems int
	example  string // path below the tree and reason of the first problem
	// alongPath: the result depends on the path the tree was met at
	// (SnapshotChecker.alongPath).
	alongPath bool
}

// NewSnapshotChecker returns a checker reading through src.
func NewSnapshotChecker(src BlobChecker) *SnapshotChecker {
	return &SnapshotChecker{src: src, trees: map[repo.ID]*treeResult{}, data: map[repo.ID]error{}}
}

// Check walks one snapshot. It returns how many blobs it refers to cannot
// be read, with an example naming the path; err is only set when ctx ends.
func (sc *SnapshotChecker) Check(ctx context.Context, sn *Snapshot) (problems int, example string, err error) {
	for _, id := range sc.alongPath {
		delete(sc.trees, id)
	}
	sc.alongPath = sc.alongPath[:0]
	r := sc.tree(ctx, sn.Tree, 0, 0)
	if err := ctx.Err(); err != nil {
		return 0, "", err
	}
	if r.problems == 0 {
		return 0, "", nil
	}
	return r.problems, "/" + r.example, nil
}

// tree checks tree id, depth levels below the root, below trees whose
// decoded listings take held (decodeOnPath).
func (sc *SnapshotChecker) tree(ctx context.Context, id repo.ID, depth int, held int64) *treeResult {
	if r, ok := sc.trees[id]; ok {
		return r
	}
	r := &treeResult{}
	sc.trees[id] = r
	if ctx.Err() != nil {
		return r
	}
	if depth >= MaxDepth {
		r.problems, r.example, r.alongPath = 1, ": "+tooDeep(id).Error(), true
		sc.UnreadTrees++
		sc.alongPath = append(sc.alongPath, id)
		return r
	}
	if err := sc.src.Available(repo.TreeBlob, id); err != nil {
		r.problems, r.example = 1, ": "+err.Error()
		sc.UnreadTrees++
		return r
	}
	plain, err := sc.src.LoadBlob(ctx, repo.TreeBlob, id)
	if err != nil {
		r.problems, r.example = 1, ": "+err.Error()
		sc.UnreadTrees++
		return r
	}
	t, cost, err := decodeTree(plain, MaxPathTreeBytes-held)
	if errors.Is(err, errOverBudget) {
		r.problems, r.example, r.alongPath = 1, ": "+tooLarge(id).Error(), true
		sc.alongPath = append(sc.alongPath, id)
		sc.UnreadTrees++
		return r
	}
	held += cost
	if err != nil {
		r.problems, r.example = 1, fmt.Sprintf(": tree blob %s cannot be decoded: %v", id, err)
		sc.UnreadTrees++
		return r
	}
	sc.Trees++
	for i := range t.Nodes {
		n := &t.Nodes[i]
		switch n.Type {
		case sources.TypeFile:
			var total int64
			sized := true
			for _, b := range n.Content {
				err, seen := sc.data[b]
				if !seen {
					err = sc.src.Available(repo.DataBlob, b)
					sc.data[b] = err
					sc.DataBlobs++
				}
				if err != nil {
					r.problems = addCapped(r.problems, 1)
					if r.example == "" {
						r.example = n.Name + ": " + err.Error()
					}
				}
				l, ok := sc.src.RawLength(repo.DataBlob, b)
				total += l
				sized = sized && ok
			}
			// Restore and dump refuse a file whose content does not add
			// up to its size: check must not call it intact.
			if sized && uint64(total) != n.Size {
				r.problems = addCapped(r.problems, 1)
				if r.example == "" {
					r.example = fmt.Sprintf("%s: content adds up to %d bytes, the tree says %d", n.Name, total, n.Size)
				}
			}
		case sources.TypeDir:
			sub := sc.tree(ctx, n.Subtree, depth+1, held)
			if sub.alongPath && !r.alongPath {
				r.alongPath = true
				sc.alongPath = append(sc.alongPath, id)
			}
			if sub.problems > 0 {
				r.problems = addCapped(r.problems, sub.problems)
				if r.example == "" {
					if sub.example != "" && sub.example[0] == ':' {
						r.example = n.Name + sub.example
					} else {
						r.example = n.Name + "/" + sub.example
					}
				}
			}
		}
	}
	return r
}

// addCapped is a + b for counts of problems, which stop at MaxProblems: a
// problem of a shared tree counts once for every place that uses it, and
// 64 levels of directories that name the same tree twice doubled a count
// past the int's range, to 0, and check said "no errors found" (found by a
// red-team test).
func addCapped(a, b int) int {
	if a > MaxProblems-b {
		return MaxProblems
	}
	return a + b
}

// MaxProblems is where the count of a snapshot's problems stops.
const MaxProblems = 1 << 50
