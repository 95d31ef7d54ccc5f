package snapshot

import (
	"context"
	"fmt"

	"github.com/snap-backup/snap/index"
	"github.com/snap-backup/snap/repo"
	"github.com/snap-backup/snap/sources"
)

// UsedBlobs returns every blob the snapshots refer to: their trees, the
// data blobs of their files and their dictionaries (which the next run
// takes over: dictionary.go) when the index has them. Each tree is read once, however many
// snapshots share it. A tree that cannot be read is an error naming the
// snapshot: prune must not run on a partial picture.
func UsedBlobs(ctx context.Context, ix *index.Index, sns []*Snapshot) (index.BlobSet, error) {
	used := index.BlobSet{}
	for _, sn := range sns {
		// A dictionary no pack holds (lost, or named by a document snap
		// did not write) costs nothing but the next run building another:
		// it must not make prune refuse to run.
		if sn.Dictionary != nil {
			if _, ok := ix.Lookup(repo.DataBlob, *sn.Dictionary); ok {
				used.Add(repo.DataBlob, *sn.Dictionary)
			}
		}
		if !used.Add(repo.TreeBlob, sn.Tree) {
			continue
		}
		type item struct {
			id   repo.ID
			path *walkPath // built into a string only for an error
		}
		stack := []item{{sn.Tree, &walkPath{name: "/"}}}
		for len(stack) > 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			it := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			t, err := loadTreeAt(ctx, ix, it.id, it.path.depth)
			if err != nil {
				return nil, fmt.Errorf("snapshot %s: directory %s: %w", sn.ID.Short(), it.path, err)
			}
			for i := range t.Nodes {
				n := &t.Nodes[i]
				switch n.Type {
				case sources.TypeFile:
					for _, id := range n.Content {
						used.Add(repo.DataBlob, id)
					}
				case sources.TypeDir:
					if used.Add(repo.TreeBlob, n.Subtree) {
						stack = append(stack, item{n.Subtree, it.path.child(n.Name)})
					}
				}
			}
		}
	}
	return used, nil
}
