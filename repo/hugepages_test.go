package repo

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"unsafe"
)

// vmFlags returns the VmFlags of the mapping in /proc/self/smaps that holds
// addr.
func vmFlags(addr uintptr) (string, error) {
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		return "", err
	}
	defer f.Close()
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if rng, _, ok := strings.Cut(line, " "); ok && strings.Count(rng, "-") == 1 && !strings.HasSuffix(rng, ":") {
			lo, hi, _ := strings.Cut(rng, "-")
			l, err1 := strconv.ParseUint(lo, 16, 64)
			h, err2 := strconv.ParseUint(hi, 16, 64)
			in = err1 == nil && err2 == nil && uint64(l) <= uint64(addr) && uint64(addr) < h
			continue
		}
		if v, ok := strings.CutPrefix(line, "VmFlags:"); ok && in {
			return " " + strings.TrimSpace(v) + " ", nil
		}
	}
	if err := sc.Err(); err != nil {
		return "", err
	}
	return "", fmt.Errorf("no mapping holds %#x", addr)
}

// TestPrefaultHugePages checks that the key derivation's memory is advised
// for huge pages while it runs and advised against them afterwards (so the
// heap that reuses it is not refilled by khugepaged), and that without
// hugePages nothing is advised.
func TestPrefaultHugePages(t *testing.T) {
	if _, err := os.Stat("/sys/kernel/mm/transparent_hugepage/enabled"); err != nil {
		t.Skip("this kernel has no transparent huge pages")
	}
	if a := prefault(8<<20, false); a.size != 0 {
		t.Fatalf("prefault without hugePages advised %d bytes", a.size)
	}
	a := prefault(8<<20, true)
	if a.size < 4<<20 {
		t.Fatalf("prefault of 8 MiB advised %d bytes, want the whole 2 MiB pages inside it", a.size)
	}
	mid := a.start + a.size/2
	during, err := vmFlags(mid)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(during, " hg ") {
		t.Errorf("while the KDF runs its memory has VmFlags %q, want hg", during)
	}
	a.undo()
	after, err := vmFlags(mid)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(after, " hg ") || !strings.Contains(after, " nh ") {
		t.Errorf("after the KDF its memory has VmFlags %q, want nh and no hg", after)
	}
}

// TestPackBufferHugePages checks that a pack buffer lies in memory advised
// for huge pages.
func TestPackBufferHugePages(t *testing.T) {
	if _, err := os.Stat("/sys/kernel/mm/transparent_hugepage/enabled"); err != nil {
		t.Skip("this kernel has no transparent huge pages")
	}
	b := alignedBuffer(16<<20, true)
	b = b[:cap(b)]
	flags, err := vmFlags(uintptr(unsafe.Pointer(&b[8<<20])))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(flags, " hg ") {
		t.Errorf("a pack buffer's memory has VmFlags %q, want hg", flags)
	}
}
