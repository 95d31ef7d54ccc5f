package main

import (
	"runtime/debug"
	"runtime/metrics"
	"time"

	"github.com/snap-backup/snap/repo"
)

// defaultMemoryLimit is the soft memory limit snap gives the Go runtime
// unless GOMEMLIMIT sets one. snap's working set is its buffers (packs being
// filled and uploaded, chunks in flight, compression state: 60 to 110 MiB,
// see docs/design.md), but the collector's default pacing lets the heap grow
// to twice the live data before it collects. With the limit it collects
// before that instead: a create with 1 M blobs indexed peaked at 204 MB
// without, 140 MB with it, at the same speed (docs/benchmarks.md).
const defaultMemoryLimit = 100 << 20

// limitMemory sets the default limit and keeps it above what the run really
// needs: when the live heap comes near the limit (a large file in flight
// with every buffer full, the tree of a directory of a million entries),
// the limit rises to one and a half times the live heap rather than make
// the collector run nearly continuously.
func limitMemory(getenv func(string) string) {
	if getenv("GOMEMLIMIT") != "" {
		return // the runtime has read it
	}
	limit := int64(defaultMemoryLimit)
	debug.SetMemoryLimit(limit)
	go func() {
		// This goroutine serves no operation that could fail with a panic
		// here (a bug): the limit then just stays where it is.
		_ = repo.Catch(func() error {
			sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
			for range time.Tick(100 * time.Millisecond) {
				metrics.Read(sample)
				if sample[0].Value.Kind() != metrics.KindUint64 {
					return nil
				}
				if live := int64(sample[0].Value.Uint64()); live > limit*9/10 {
					limit = live * 3 / 2
					debug.SetMemoryLimit(limit)
				}
			}
			return nil
		})
	}()
}
