package main

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/snap-backup/snap/index"
)

// memResult is the memory test: snap create with many blobs indexed.
type memResult struct {
	Blobs       int
	Empty       opResult // create of dataset 1 into an empty repository
	Sync        opResult // snap list: brings the cache up to date with the synthetic segments
	Create      opResult // create of dataset 1 with the blobs indexed
	NoChange    opResult // the same again, nothing changed
	IndexFileMB float64
}

// memoryTest measures the peak RSS of create against a repository whose
// index names cfg.indexBlobs blobs, next to the same create into an empty
// repository.
func memoryTest(ctx context.Context, cfg *config, ds1 *dataset) (*memResult, error) {
	res := &memResult{Blobs: cfg.indexBlobs}
	empty, err := newSnap(cfg.snapBin, filepath.Join(cfg.work, "repos", "mem-empty"), password, cfg.profile)
	if err != nil {
		return nil, err
	}
	if err := empty.Init(); err != nil {
		return nil, err
	}
	res.Empty = single(empty.Create(ds1, "mem-empty-create"))
	res.Empty.Profile = empty.profile("mem-empty-create")

	s, err := newSnap(cfg.snapBin, filepath.Join(cfg.work, "repos", "mem"), password, cfg.profile)
	if err != nil {
		return nil, err
	}
	if err := s.Init(); err != nil {
		return nil, err
	}
	r, err := openSnapRepo(ctx, s.repo(), password)
	if err != nil {
		return nil, err
	}
	err = fillSyntheticIndex(ctx, r, cfg.indexBlobs)
	r.Close()
	if err != nil {
		return nil, err
	}
	logf("memory test: cache sync")
	// repair index rebuilds the cache from the segments: the first sync,
	// on its own (list no longer opens the index, and the create then
	// did the sync, and counted it).
	res.Sync = single(run(s.profiled(s.cmd(s.bin, "repair", "index", "-q", "-r", s.repo()), "mem-sync")))
	res.Sync.Profile = s.profile("mem-sync")
	logf("memory test: create")
	res.Create = single(s.Create(ds1, "mem-create"))
	res.Create.Profile = s.profile("mem-create")
	logf("memory test: no-change create")
	res.NoChange = single(s.Create(ds1, "mem-nochange"))
	res.NoChange.Profile = s.profile("mem-nochange")
	res.IndexFileMB = float64(dirSize(s.cache())) / 1e6
	if res.Create.Err != nil {
		return res, fmt.Errorf("memory test: %w", res.Create.Err)
	}
	return res, nil
}

func single(m measurement, err error) opResult {
	return opResult{M: m, Runs: 1, Err: err}
}

// streamParams returns the stream chunker parameters of the dataset 3 snap
// repository, if its config sets any.
func streamParams(ctx context.Context, res *datasetResult) *sweepRow {
	if res.snapDir == "" {
		return nil
	}
	r, err := openSnapRepo(ctx, filepath.Join(res.snapDir, "repo"), password)
	if err != nil {
		return nil
	}
	defer r.Close()
	sc := r.Config().StreamChunker
	if sc == nil {
		return nil
	}
	row := &sweepRow{Label: fmt.Sprintf("this snap's stream default (%d KiB min, 2^%d, %d KiB max)", sc.MinSize>>10, sc.AverageBits, sc.MaxSize>>10)}
	row.Params.MinSize, row.Params.MaxSize, row.Params.AverageBits = sc.MinSize, sc.MaxSize, sc.AverageBits
	return row
}

// deltaCount is what the dataset 3 snap repository holds as deltas.
type deltaCount struct {
	Deltas, Bases int
	Bytes         int64 // stored (sealed) size of the deltas
}

// countDeltas reads the index segments of a snap repository and counts
// the blobs stored as deltas against other blobs.
func countDeltas(ctx context.Context, dir string) *deltaCount {
	r, err := openSnapRepo(ctx, dir, password)
	if err != nil {
		return nil
	}
	defer r.Close()
	ss, err := index.ReadSegments(ctx, r)
	if err != nil {
		return nil
	}
	c := &deltaCount{}
	for _, id := range ss.Effective() {
		for _, p := range ss.Segments[id].Packs {
			for _, e := range p.Blobs {
				if e.Delta() {
					c.Deltas++
					c.Bases += len(e.Bases)
					c.Bytes += int64(e.Length)
				}
			}
		}
	}
	return c
}
