package main

import (
	"runtime"
	"strings"
	"syscall"
	"unsafe"
)

// hugeHeapSize is how much of the heap's address space snap asks the kernel
// to back with transparent huge pages. It covers the working set of a
// create or restore (pack, chunk and compression buffers: 60–130 MiB, see
// docs/design.md) with room for the collector's headroom.
const hugeHeapSize = 256 << 20

// adviseHugeHeap makes the heap snap is about to use eligible for
// transparent huge pages where the system leaves that to each program (THP
// "madvise", the default of many distributions). Go's runtime no longer
// asks for them itself. On a VM where every page fault is dear, the 4 KiB
// faults of fresh buffers and the TLB misses of zstd's tables cost a create
// of dataset 2 some 9 % of its time (docs/benchmarks.md).
//
// It allocates one large block, which the heap maps fresh and does not
// touch, advises its range, and lets it go: the runtime never unmaps heap
// memory, so the advice stays with those addresses, and the page allocator
// hands out the lowest free addresses first, so the run's buffers land
// there. The advice is only advice: a kernel without THP, or THP "never",
// keeps ordinary pages. GODEBUG=disablethp=1, the runtime's own switch
// against huge pages for the heap, turns this off too. So do a limit on the
// address space (ulimit -v) and strict overcommit accounting
// (vm.overcommit_memory=2), under which the block, touched or not, could be
// refused: the runtime would then end the process rather than fail the
// allocation.
func adviseHugeHeap(godebug string, readFile func(string) ([]byte, error)) {
	if unsafe.Sizeof(uintptr(0)) < 8 {
		return // a 32-bit address space has no room to spare
	}
	for _, kv := range strings.Split(godebug, ",") {
		if strings.TrimSpace(kv) == "disablethp=1" {
			return
		}
	}
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_AS, &lim); err != nil || lim.Cur != ^uint64(0) { // RLIM_INFINITY
		return
	}
	if mode, err := readFile("/proc/sys/vm/overcommit_memory"); err != nil || strings.TrimSpace(string(mode)) == "2" {
		return
	}
	b := make([]byte, hugeHeapSize)
	adviseHugePages(b)
	runtime.KeepAlive(b)
	runtime.GC()
}

// adviseHugePages asks that the whole 2 MiB pages inside b be backed by
// transparent huge pages. It is only advice: an error (an old kernel, THP
// compiled out) leaves ordinary pages, and the advice stays with the
// addresses after b is freed (the Go heap never unmaps them).
func adviseHugePages(b []byte) {
	const huge = 2 << 20
	start := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	off := int((huge - start%huge) % huge)
	if len(b)-off < huge {
		return
	}
	n := (len(b) - off) / huge * huge
	_ = syscall.Madvise(b[off:off+n], syscall.MADV_HUGEPAGE)
}
