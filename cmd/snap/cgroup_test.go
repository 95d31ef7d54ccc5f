package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestKeyNeedingMoreThanTheCgroupAllows: under a memory cgroup's limit (a
// systemd unit's MemoryMax=, a container's limit), a key whose derivation
// needs more than the limit leaves is skipped with an error naming it, and
// the cheaper key still opens. MemAvailable does not see such a limit: the
// kernel killed snap in the middle of the derivation instead.
func TestKeyNeedingMoreThanTheCgroupAllows(t *testing.T) {
	t.Parallel()
	cg := memoryCgroup(t, 256<<20)
	tr := newTestRepo(t)
	if res := tr.runEnv([]string{"SNAP_NEW_PASSWORD=costly"}, nil, "key", "add", "--kdf-memory", "384", "--kdf-time", "1"); res.code != 0 {
		t.Fatalf("key add: exit %d: %s", res.code, res.stderr)
	}
	// Each run moves the shell that starts snap into the group first.
	tr.wrap = []string{"sh", "-c", `echo $$ > "$0" && exec "$@"`, cg.procs}
	tr.mustRun("list") // the cheap key
	res := tr.runEnv([]string{"SNAP_PASSWORD=costly"}, nil, "list")
	if res.code != exitFatal || !strings.Contains(res.stderr, "needs 384 MiB for its password derivation, more than the") {
		t.Fatalf("the costly key under a 256 MiB cgroup limit: exit %d: %s", res.code, res.stderr)
	}
	tr.wrap = nil
	if res := tr.runEnv([]string{"SNAP_PASSWORD=costly"}, nil, "list"); res.code != 0 {
		t.Fatalf("the costly key outside the group: exit %d: %s", res.code, res.stderr)
	}
}

// testCgroup is a memory cgroup made for a test.
type testCgroup struct{ procs string }

// memoryCgroup makes a child of this process's memory cgroup (cgroup v1's
// memory controller, as on the machines CI runs on) with the given limit,
// and removes it when the test ends. It skips the test where no such group
// can be made (cgroup v2 does not let a group that holds processes, as
// ours does, give its children a memory limit without moving this process
// out; an unprivileged user may not make groups).
func memoryCgroup(t *testing.T, limit int64) testCgroup {
	t.Helper()
	self, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Skipf("no /proc/self/cgroup: %v", err)
	}
	for _, line := range strings.Split(string(self), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 || parts[1] != "memory" {
			continue
		}
		dir := filepath.Join("/sys/fs/cgroup/memory", parts[2], "snap-test-"+strconv.Itoa(os.Getpid())+"-"+strings.ReplaceAll(t.Name(), "/", "-"))
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Skipf("cannot make a memory cgroup here: %v", err)
		}
		t.Cleanup(func() { os.Remove(dir) }) // empty once its processes have ended
		if err := os.WriteFile(filepath.Join(dir, "memory.limit_in_bytes"), []byte(strconv.FormatInt(limit, 10)), 0o644); err != nil {
			t.Fatalf("set the limit of %s: %v", dir, err)
		}
		return testCgroup{procs: filepath.Join(dir, "cgroup.procs")}
	}
	t.Skip("no cgroup v1 memory controller on this machine")
	return testCgroup{}
}
