package repo

import (
	"bufio"
	"bytes"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// cgroupUnlimited: a memory limit at or above this is no limit (cgroup v1
// writes "unlimited" as the largest page-aligned int64, 9223372036854771712).
const cgroupUnlimited = 1 << 62

// cgroupMemoryLeftKiB is how much more memory the process's control groups
// let it have before the kernel's OOM killer ends it: the least, over its
// memory cgroup and that cgroup's ancestors, of the limit less the memory
// the group holds and cannot give back. A systemd unit's MemoryMax= (or a
// container's memory limit) is such a limit; MemAvailable does not see it.
//
// What a group holds counts its page cache too, which the kernel drops
// before it kills: the inactive file pages are left out, as the kernel's
// own working-set measure does (usage − inactive_file), so that a backup
// that has just read many files is not thought to be out of memory.
//
// root is where the cgroup file systems are mounted (/sys/fs/cgroup) and
// self the content of /proc/self/cgroup. Both cgroup v2 (one hierarchy,
// "0::/path": memory.max, memory.current, memory.stat's inactive_file) and
// v1's memory controller ("N:memory:/path" under root/memory:
// memory.limit_in_bytes, memory.usage_in_bytes, memory.stat's
// total_inactive_file) are read; ok is false when no group sets a limit or
// none can be read.
func cgroupMemoryLeftKiB(root string, self []byte) (left uint64, ok bool) {
	sc := bufio.NewScanner(bytes.NewReader(self))
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 || !strings.HasPrefix(parts[2], "/") {
			continue
		}
		var dir string
		var files cgroupFiles
		switch {
		case parts[0] == "0" && parts[1] == "":
			dir, files = root, cgroupV2
			if _, err := os.Stat(filepath.Join(root, "cgroup.controllers")); err != nil {
				// A hybrid system mounts the v2 hierarchy beside v1's.
				dir = filepath.Join(root, "unified")
			}
		case slices.Contains(strings.Split(parts[1], ","), "memory"): // "4:memory,hugetlb:/path"
			dir, files = filepath.Join(root, "memory"), cgroupV1
		default:
			continue
		}
		// The group and each ancestor up to the hierarchy's root: a slice's
		// limit binds every unit in it.
		for p := path.Clean(parts[2]); ; p = path.Dir(p) {
			if l, found := files.left(filepath.Join(dir, filepath.FromSlash(p))); found && (!ok || l < left) {
				left, ok = l, true
			}
			if p == "/" {
				break
			}
		}
	}
	return left, ok
}

// cgroupFiles names a cgroup version's memory files.
type cgroupFiles struct{ limit, usage, inactive string }

var (
	cgroupV2 = cgroupFiles{"memory.max", "memory.current", "inactive_file"}
	cgroupV1 = cgroupFiles{"memory.limit_in_bytes", "memory.usage_in_bytes", "total_inactive_file"}
)

// left reads one group: what its limit leaves, in KiB, and whether it has
// a limit that could be read.
func (f cgroupFiles) left(dir string) (uint64, bool) {
	limit, err := readCgroupNumber(filepath.Join(dir, f.limit))
	if err != nil || limit >= cgroupUnlimited {
		return 0, false // "max", no such group here, or no limit
	}
	usage, err := readCgroupNumber(filepath.Join(dir, f.usage))
	if err != nil {
		return 0, false
	}
	if b, err := os.ReadFile(filepath.Join(dir, "memory.stat")); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, f.inactive+" "); ok {
				if n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64); err == nil && n <= usage {
					usage -= n
				}
			}
		}
	}
	if usage >= limit {
		return 1, true // nothing left; 1 so that callers still see a limit
	}
	return max((limit-usage)/1024, 1), true
}

// readCgroupNumber reads a file holding one number; "max" (cgroup v2's no
// limit) reads as the largest value.
func readCgroupNumber(name string) (uint64, error) {
	b, err := os.ReadFile(name)
	if err != nil {
		return 0, err
	}
	s := strings.TrimSpace(string(b))
	if s == "max" {
		return 1<<64 - 1, nil
	}
	return strconv.ParseUint(s, 10, 64)
}
