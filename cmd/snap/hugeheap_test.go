package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"unsafe"
)

// hugeHeapChildEnv makes the test binary run hugeHeapChild instead of the
// tests (see TestMain): the check needs a fresh process, whose heap is
// what snap's is when main starts.
const hugeHeapChildEnv = "SNAP_TEST_HUGEHEAP_CHILD"

// hugeHeapChild does what main does, then allocates a buffer as a create
// does and prints the VmFlags of the mapping that holds it. arg is GODEBUG,
// then optionally ";" and the vm.overcommit_memory mode to pretend.
func hugeHeapChild(arg string) {
	godebug, overcommit, fake := strings.Cut(arg, ";")
	readFile := os.ReadFile
	if fake {
		readFile = func(string) ([]byte, error) { return []byte(overcommit + "\n"), nil }
	}
	adviseHugeHeap(godebug, readFile)
	b := make([]byte, 32<<20)
	for i := 0; i < len(b); i += 4096 {
		b[i] = 1
	}
	addr := uint64(uintptr(unsafe.Pointer(&b[16<<20])))
	flags, err := vmFlags(addr)
	if err != nil {
		fmt.Println("error:", err)
		return
	}
	fmt.Println("flags:", flags)
}

// vmFlags returns the VmFlags line of the mapping in /proc/self/smaps that
// holds addr.
func vmFlags(addr uint64) (string, error) {
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		return "", err
	}
	defer f.Close()
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		fields := strings.Fields(line)
		if len(fields) > 0 && strings.Contains(fields[0], "-") && !strings.HasSuffix(fields[0], ":") {
			lo, hi, _ := strings.Cut(fields[0], "-")
			l, err1 := strconv.ParseUint(lo, 16, 64)
			h, err2 := strconv.ParseUint(hi, 16, 64)
			in = err1 == nil && err2 == nil && l <= addr && addr < h
			continue
		}
		if in && strings.HasPrefix(line, "VmFlags:") {
			return strings.TrimPrefix(line, "VmFlags:"), nil
		}
	}
	if err := sc.Err(); err != nil {
		return "", err
	}
	return "", fmt.Errorf("no mapping holds %#x", addr)
}

// TestAdviseHugeHeap checks that the buffers a run allocates after main
// starts lie in memory advised for transparent huge pages ("hg" in the
// mapping's VmFlags), and that GODEBUG=disablethp=1 and strict overcommit
// turn that off.
func TestAdviseHugeHeap(t *testing.T) {
	if _, err := os.Stat("/sys/kernel/mm/transparent_hugepage/enabled"); err != nil {
		t.Skip("this kernel has no transparent huge pages")
	}
	run := func(arg string) string {
		cmd := exec.Command(os.Args[0])
		cmd.Env = append(os.Environ(), hugeHeapChildEnv+"="+arg)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("child: %v\n%s", err, out)
		}
		s := strings.TrimSpace(string(out))
		if !strings.HasPrefix(s, "flags:") {
			t.Fatalf("child printed %q", s)
		}
		return s
	}
	if got := run(""); !strings.Contains(got, " hg") {
		t.Errorf("a buffer allocated after adviseHugeHeap is in a mapping without huge page advice: %s", got)
	}
	if got := run("disablethp=1"); strings.Contains(got, " hg") {
		t.Errorf("with GODEBUG=disablethp=1 the buffer's mapping has huge page advice: %s", got)
	}
	if got := run(";0"); !strings.Contains(got, " hg") {
		t.Errorf("with heuristic overcommit the buffer's mapping has no huge page advice: %s", got)
	}
	if got := run(";2"); strings.Contains(got, " hg") {
		t.Errorf("with vm.overcommit_memory=2 the buffer's mapping has huge page advice: %s", got)
	}
}
