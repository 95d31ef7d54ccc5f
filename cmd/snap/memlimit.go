package main

import (
	"fmt"
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
func limitMemory(getenv func(string) string) error {
	if set, err := setMemoryDefaults(getenv); !set {
		return err
	}
	limit := int64(defaultMemoryLimit)
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
	return nil
}

// setMemoryDefaults gives the runtime snap's memory limit, unless
// SNAP_MEMORY_LIMIT or GOMEMLIMIT chose one (the runtime has read the
// latter), and reports whether it did. Unless GOGC is set too, the limit is
// then the collector's only trigger (GOGC=off).
//
// SNAP_MEMORY_LIMIT is GOMEMLIMIT in snap's size syntax (512M, 2G): the
// runtime refuses GOMEMLIMIT=512M with a stack trace before main runs,
// where snap cannot help (found by an exploratory test). It wins over
// GOMEMLIMIT, since it is read after it.
//
// Why not also the default GOGC=100: it collects whenever the heap has
// doubled since the last collection, which while the heap is small (the
// start of every run) means many collections that save no memory the
// limit would not. Worse, the runtime returns to the system the memory
// beyond 110 % of that small target: right after the key derivation it
// released most of the KDF's freed 64 MiB, which the pack buffers then
// faulted in again. Measured on dataset 1's create (10 interleaved pairs):
// 1.00 s against 1.06 s, 6.7 % less CPU; the peak of the create with 1 M
// blobs indexed was 137–143 MB against 129–162 MB with GOGC=100 (the limit
// sets it either way). Runs whose heap stays small (snap list) now grow
// to the limit before they collect: some 10 MB more at their peak.
func setMemoryDefaults(getenv func(string) string) (bool, error) {
	if v := getenv("SNAP_MEMORY_LIMIT"); v != "" {
		n, err := parseSize(v)
		if err != nil || n == 0 {
			return false, fmt.Errorf("SNAP_MEMORY_LIMIT=%s: give the soft memory limit as a size, e.g. 512M or 2G", v)
		}
		debug.SetMemoryLimit(int64(n))
		return false, nil
	}
	if getenv("GOMEMLIMIT") != "" {
		return false, nil
	}
	debug.SetMemoryLimit(defaultMemoryLimit)
	if getenv("GOGC") == "" {
		debug.SetGCPercent(-1)
	}
	return true, nil
}
