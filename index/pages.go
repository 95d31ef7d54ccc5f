package index

import (
	"math"
	"os"
	"strconv"
	"strings"
	"sync"
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
// while the process's resident memory is above rssBudget (and after each
// write), a cache larger than releaseMin has its mapped pages dropped from
// the process with MADV_DONTNEED; they stay in the page cache, and the
// next access maps them again at the cost of a minor fault.
const (
	releaseEvery = 64
	releaseMin   = 32 << 20
)

// rssBudget is the resident memory above which the cache's pages are
// released (see due): below the 150 MB that a create with 1 M blobs
// indexed may take at its peak (docs/benchmarks.md) by about what 64
// lookups can map (each up to four 64 KiB windows: Linux's fault-around).
// Measured with 1 M blobs indexed (snap-bench's memory test, two runs
// each, against releasing every 64 lookups): the create of dataset 1 took
// 2.48–2.52 s instead of 2.85–2.88 s at a peak of 137–145 MB instead of
// 140–142, and the no-change create after it 0.71–0.85 s instead of
// 1.17 s at 129 MB instead of 102. A budget of 128 MiB was no faster and
// peaked at 146–147 MB, too near the target.
const rssBudget = 120 << 20

// fileFloor is the file-backed resident memory (the cache's mapped pages,
// the program's own text) below which pages are kept even above the
// budget, when the heap alone is above it, or below half the heap if that
// is more: a create of 500,000 files holds some 250 MB of heap, the budget
// was always exceeded, and releasing every 64 lookups, to give back the
// few megabytes they had mapped, made its lookups fault the B-tree in
// again each time: a no-change create took 30 s of CPU, 68 % of it in
// those faults, against 1.5 s for 200,000 files whose heap stayed under
// the budget (found by an exploratory test). With a floor of 64 MiB alone
// it took 10 s (an 81 MB cache, mapped and released over and over).
const fileFloor = 64 << 20

// pageReleaser counts the operations that touch the map. A cache smaller
// than min (releaseMin unless a test lowers it) counts as small: its pages
// are kept, and segments are added to it in one transaction.
type pageReleaser struct {
	n   atomic.Uint64
	min int64
	// budget is the resident memory above which pages are released
	// (rssBudget unless a test lowers it).
	budget int64
	// fileFloor: with the heap above the budget, pages are released only
	// while file-backed resident memory is above it and above half the
	// heap (fileFloor unless a test lowers it).
	fileFloor int64
	// statm is /proc/self/statm, which tells the process's resident
	// memory (nil without /proc: the pages are released every time),
	// opened on first use.
	statm *os.File
	once  sync.Once
}

// close closes statm.
func (p *pageReleaser) close() {
	if p.statm != nil {
		p.statm.Close()
	}
}

// large reports whether a cache of size bytes counts as large.
func (p *pageReleaser) large(size int64) bool { return size >= max(p.min, 1) }

// due records one operation and reports whether the pages are to be
// released now: every releaseEvery operations, when the process's resident
// memory is above the budget, and, when the heap alone is above it, the
// file-backed part above fileFloor and half the heap.
//
// Why not every time: each release makes the next lookups fault in the
// pages of the B-tree's upper levels and their leaves again, and on a VM a
// fault and the release's TLB shootdown cost much more than the lookup.
// With 1 M blobs indexed (a 138 MB cache), a no-change create of 11,500
// files took 1.0–1.1 s against 0.3 s with the pages kept (but 193 MiB
// resident), 0.55 s releasing every 1024 lookups; one of 300,000 files
// with a 59 MB cache took 1.4 times restic's time (an exploratory test).
// What the releases are for is the peak resident memory, so that is what
// decides: while the heap is small (a no-change create), the map may hold
// more of the cache; when the heap is large (a create saving new data),
// the pages go as often as before.
func (p *pageReleaser) due() bool {
	if p.n.Add(1)%releaseEvery != 0 {
		return false
	}
	p.once.Do(func() {
		if f, err := os.Open("/proc/self/statm"); err == nil {
			p.statm = f
		}
	})
	if p.statm == nil {
		return true
	}
	resident, file := p.resident()
	return releaseNow(resident, file, p.budget, p.fileFloor)
}

// releaseNow decides due's question from the resident memory and its
// file-backed part: above the budget, unless the heap alone is above it
// and the file-backed part is within floor and half the heap.
func releaseNow(resident, file, budget, floor int64) bool {
	anon := resident - file
	return resident > budget && (anon <= budget || file > max(floor, anon/2))
}

// resident reads the process's resident memory, and the part of it that
// is file-backed (the map among it), from statm ("size resident shared
// …", in pages); the most there is when it cannot be read, which
// releases.
func (p *pageReleaser) resident() (resident, file int64) {
	var buf [128]byte
	n, err := p.statm.ReadAt(buf[:], 0)
	if n == 0 && err != nil {
		return math.MaxInt64, math.MaxInt64
	}
	fields := strings.Fields(string(buf[:n]))
	if len(fields) < 3 {
		return math.MaxInt64, math.MaxInt64
	}
	pages, err1 := strconv.ParseInt(fields[1], 10, 64)
	shared, err2 := strconv.ParseInt(fields[2], 10, 64)
	if err1 != nil || err2 != nil {
		return math.MaxInt64, math.MaxInt64
	}
	size := int64(os.Getpagesize())
	return pages * size, shared * size
}

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
		dontNeed(ix.db, size)
	}
}

// dontNeed drops the first size bytes of db's map from the process.
func dontNeed(db *bolt.DB, size int64) {
	_, _, _ = unix.Syscall(unix.SYS_MADVISE, db.Info().Data, uintptr(size), unix.MADV_DONTNEED)
}
