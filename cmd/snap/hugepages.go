package main

import (
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// kdfHugePagesSize is the most memory the key derivation may take without
// the machine being too small for huge pages (see hugePagesRefused).
const kdfHugePagesSize = 128 << 20

// hugePagesRefused returns why snap should not ask the kernel for
// transparent huge pages for the key derivation's memory (repo.Options.
// KDFHugePages), or "" when it may. GODEBUG=disablethp=1 is the Go
// runtime's own switch against huge pages for the heap, and snap honours
// it. The other reasons are conditions under which the kernel could refuse
// the fresh block the derivation allocates, and the runtime would then end
// the process rather than fail the allocation: a limit on the address
// space (ulimit -v), strict overcommit accounting (vm.overcommit_memory=2),
// a machine with little memory and swap, a 32-bit address space.
func hugePagesRefused(godebug string, readFile func(string) ([]byte, error)) string {
	if unsafe.Sizeof(uintptr(0)) < 8 {
		return "32-bit address space"
	}
	for _, kv := range strings.Split(godebug, ",") {
		if strings.TrimSpace(kv) == "disablethp=1" {
			return "GODEBUG=disablethp=1"
		}
	}
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_AS, &lim); err != nil || lim.Cur != unix.RLIM_INFINITY {
		return "address space limit (ulimit -v)"
	}
	if mode, err := readFile("/proc/sys/vm/overcommit_memory"); err != nil || strings.TrimSpace(string(mode)) == "2" {
		return "strict overcommit (vm.overcommit_memory=2)"
	}
	var si unix.Sysinfo_t
	if err := unix.Sysinfo(&si); err != nil || (uint64(si.Totalram)+uint64(si.Totalswap))*uint64(si.Unit) < 8*kdfHugePagesSize {
		return "less than 1 GiB of memory and swap"
	}
	return ""
}
