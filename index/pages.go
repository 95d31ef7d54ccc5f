package index

import (
	"sync/atomic"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"
)

// bbolt reads the cache through a shared, read-only memory map. Every page
// a lookup touches stays mapped into the process, and Linux maps up to 16
// neighbouring pages with each fault ("fault-around", despite the
// MADV_RANDOM bbolt asks for): a few thousand lookups of random blob IDs
// map most of a large cache file. Those pages are only page cache, shared
// and reclaimable, but they count as the process's resident memory, which
// would then grow with the repository. So after every releaseEvery lookups
// (and after each write), a cache larger than releaseMin has its mapped
// pages dropped from the process with MADV_DONTNEED; they stay in the page
// cache, and the next access maps them again at the cost of a minor fault.
const (
	releaseEvery = 64
	releaseMin   = 32 << 20
)

// pageReleaser counts the operations that touch the map. A cache smaller
// than min (releaseMin unless a test lowers it) counts as small: its pages
// are kept, and segments are added to it in one transaction.
type pageReleaser struct {
	n   atomic.Uint64
	min int64
}

// large reports whether a cache of size bytes counts as large.
func (p *pageReleaser) large(size int64) bool { return size >= max(p.min, 1) }

// due records one operation and reports whether the pages are to be
// released now: every releaseEvery operations.
func (p *pageReleaser) due() bool { return p.n.Add(1)%releaseEvery == 0 }

// touched records one operation and releases the pages when due.
func (ix *Index) touched() {
	if ix.pages.due() {
		ix.releasePages()
	}
}

// releasePages drops the cache file's pages from the process. It runs in a
// read transaction, which keeps bbolt from remapping the file meanwhile
// (a remap takes the write side of the same lock): the range is exactly
// the current map, never memory that was reused for something else.
func (ix *Index) releasePages() {
	_ = ix.db.View(func(tx *bolt.Tx) error {
		ix.releaseIn(tx)
		return nil
	})
}

// releaseIn drops the pages from within a transaction: bbolt remaps the file
// only when a write transaction commits, so during any open transaction
// the map stays where it is. The bytes stay valid: they are mapped again
// from the page cache when read.
func (ix *Index) releaseIn(tx *bolt.Tx) {
	if size := tx.Size(); ix.pages.large(size) {
		_, _, _ = unix.Syscall(unix.SYS_MADVISE, ix.db.Info().Data, uintptr(size), unix.MADV_DONTNEED)
	}
}
