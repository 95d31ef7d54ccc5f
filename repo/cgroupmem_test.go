package repo

import (
	"os"
	"path/filepath"
	"testing"
)

// TestCgroupMemoryLeft reads memory limits from cgroup file trees laid out
// as the kernel lays them out (cgroup v2, v1's memory controller, a hybrid
// system's v2 beside v1), in a temporary directory: the test cannot make
// every kind of hierarchy on the machine it runs on (cmd/snap's
// TestKeyNeedingMoreThanTheCgroupAllows uses the machine's own).
func TestCgroupMemoryLeftKiB(t *testing.T) {
	write := func(root string, files map[string]string) {
		for name, content := range files {
			p := filepath.Join(root, name)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	const mib = 1 << 20
	for _, tc := range []struct {
		name   string
		self   string
		files  map[string]string
		want   uint64 // KiB
		wantOK bool
	}{
		{"v2 unit limit, page cache left out", "0::/system.slice/snap.service\n", map[string]string{
			"cgroup.controllers":                       "cpu memory pids",
			"system.slice/memory.max":                  "max",
			"system.slice/memory.current":              "999999999",
			"system.slice/snap.service/memory.max":     "536870912",                                         // 512 MiB
			"system.slice/snap.service/memory.current": "314572800",                                         // 300 MiB
			"system.slice/snap.service/memory.stat":    "anon 10\ninactive_file 104857600\nactive_file 5\n", // 100 MiB
		}, (512 - 200) * mib / 1024, true},
		{"v2 a slice's limit binds its units", "0::/backup.slice/snap.service\n", map[string]string{
			"cgroup.controllers":                       "memory",
			"backup.slice/memory.max":                  "268435456", // 256 MiB
			"backup.slice/memory.current":              "67108864",  // 64 MiB
			"backup.slice/snap.service/memory.max":     "max",
			"backup.slice/snap.service/memory.current": "1048576",
		}, 192 * mib / 1024, true},
		{"v2 no limit anywhere", "0::/user.slice\n", map[string]string{
			"cgroup.controllers":        "memory",
			"user.slice/memory.max":     "max",
			"user.slice/memory.current": "1048576",
		}, 0, false},
		{"v2 over the limit", "0::/a\n", map[string]string{
			"cgroup.controllers": "memory",
			"a/memory.max":       "1048576",
			"a/memory.current":   "2097152",
		}, 1, true},
		{"v1 memory controller", "12:pids:/x\n4:memory,hugetlb:/docker/abc\n0::/\n", map[string]string{
			"memory/docker/abc/memory.limit_in_bytes": "1073741824", // 1 GiB
			"memory/docker/abc/memory.usage_in_bytes": "536870912",
			"memory/docker/abc/memory.stat":           "cache 1\ntotal_inactive_file 268435456\n",
			"memory/docker/memory.limit_in_bytes":     "9223372036854771712", // v1's "unlimited"
			"memory/docker/memory.usage_in_bytes":     "536870912",
			"memory/memory.limit_in_bytes":            "9223372036854771712",
			"memory/memory.usage_in_bytes":            "1",
		}, 768 * mib / 1024, true},
		{"hybrid: v2 without memory beside v1", "4:memory:/\n0::/user.slice\n", map[string]string{
			"unified/cgroup.controllers":   "",
			"memory/memory.limit_in_bytes": "9223372036854771712",
			"memory/memory.usage_in_bytes": "1",
		}, 0, false},
		{"a group that is not there", "0::/gone\n", map[string]string{"cgroup.controllers": "memory"}, 0, false},
		{"garbage", "not a cgroup line\n0::relative\n", map[string]string{
			"cgroup.controllers": "memory",
			"memory.max":         "nonsense",
		}, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			write(root, tc.files)
			got, ok := cgroupMemoryLeftKiB(root, []byte(tc.self))
			if got != tc.want || ok != tc.wantOK {
				t.Errorf("got %d KiB, %v; want %d KiB, %v", got, ok, tc.want, tc.wantOK)
			}
		})
	}
}
