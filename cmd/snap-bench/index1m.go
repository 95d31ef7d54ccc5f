package main

import (
	"context"
	"fmt"
	"math/rand/v2"

	"github.com/snap-backup/snap/index"
	"github.com/snap-backup/snap/repo"
	"github.com/snap-backup/snap/repo/local"
)

// openSnapRepo opens a snap repository in-process.
func openSnapRepo(ctx context.Context, dir, password string) (*repo.Repository, error) {
	be, err := local.Open(dir)
	if err != nil {
		return nil, err
	}
	r, err := repo.Open(ctx, be, password, repo.Options{})
	if err != nil {
		be.Close()
		return nil, err
	}
	return r, nil
}

// fillSyntheticIndex writes index segments naming n fake data blobs, 16 to
// a pack of about 16 MiB, 65536 to a segment, as a 1 TiB repository would
// have. The packs do not exist: nothing reads them, since the blob IDs are
// random and no real chunk matches one.
func fillSyntheticIndex(ctx context.Context, r *repo.Repository, n int) error {
	rng := rand.New(rand.NewChaCha8([32]byte{'i', 'n', 'd', 'e', 'x'}))
	const perPack, perSegment = 16, 65536
	for done := 0; done < n; {
		seg := &index.Segment{}
		for inSeg := 0; inSeg < perSegment && done < n; {
			p := index.Pack{Status: index.PackLive}
			fillRandom(rng, p.ID[:])
			off := uint32(0)
			for range min(perPack, n-done) {
				e := repo.BlobEntry{Type: repo.DataBlob, Compressed: true, Offset: off,
					Length: uint32(600<<10 + rng.IntN(400<<10)), RawLength: uint32(1 << 20)}
				fillRandom(rng, e.ID[:])
				off += e.Length
				p.Blobs = append(p.Blobs, e)
				done++
				inSeg++
			}
			p.Size = int64(off) + 4096
			seg.Packs = append(seg.Packs, p)
		}
		if _, err := r.SaveObject(ctx, repo.IndexFile, seg.Encode()); err != nil {
			return fmt.Errorf("write synthetic index segment: %w", err)
		}
	}
	return nil
}
