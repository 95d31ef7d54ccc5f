package main

import (
	"runtime/debug"
	"strings"
	"testing"
)

// TestMemoryDefaults: without GOMEMLIMIT snap sets its 100 MiB limit, and
// without GOGC makes the limit the collector's only trigger; a variable the
// user set is left to the runtime.
func TestMemoryDefaults(t *testing.T) {
	gc0 := debug.SetGCPercent(100)
	limit0 := debug.SetMemoryLimit(-1)
	t.Cleanup(func() {
		debug.SetGCPercent(gc0)
		debug.SetMemoryLimit(limit0)
	})
	env := func(vars map[string]string) func(string) string {
		return func(k string) string { return vars[k] }
	}
	for _, c := range []struct {
		name      string
		vars      map[string]string
		set       bool
		gcPercent int
		limit     int64
	}{
		{"neither", nil, true, -1, defaultMemoryLimit},
		{"GOGC", map[string]string{"GOGC": "100"}, true, 100, defaultMemoryLimit},
		{"GOMEMLIMIT", map[string]string{"GOMEMLIMIT": "1GiB"}, false, 100, 1 << 40},
		{"both", map[string]string{"GOGC": "50", "GOMEMLIMIT": "1GiB"}, false, 100, 1 << 40},
		// snap's own, in its size syntax (GOMEMLIMIT=512M stops the
		// runtime before main).
		{"SNAP_MEMORY_LIMIT", map[string]string{"SNAP_MEMORY_LIMIT": "512M"}, false, 100, 512 << 20},
		{"SNAP_MEMORY_LIMIT over GOMEMLIMIT", map[string]string{"SNAP_MEMORY_LIMIT": "2G", "GOMEMLIMIT": "1GiB"}, false, 100, 2 << 30},
	} {
		// What the runtime would have read from such an environment.
		debug.SetGCPercent(100)
		debug.SetMemoryLimit(1 << 40)
		if got, err := setMemoryDefaults(env(c.vars)); got != c.set || err != nil {
			t.Errorf("%s: setMemoryDefaults = %v, %v", c.name, got, err)
		}
		if got := debug.SetGCPercent(100); got != c.gcPercent {
			t.Errorf("%s: GC percent %d, want %d", c.name, got, c.gcPercent)
		}
		if got := debug.SetMemoryLimit(-1); got != c.limit {
			t.Errorf("%s: memory limit %d, want %d", c.name, got, c.limit)
		}
	}
}

// TestMemoryLimitSyntax: a SNAP_MEMORY_LIMIT that is no size is one line
// naming the variable and its form, and leaves the limit alone.
func TestMemoryLimitSyntax(t *testing.T) {
	limit0 := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(limit0) })
	for _, v := range []string{"512X", "0", "-1G"} {
		set, err := setMemoryDefaults(func(k string) string {
			if k == "SNAP_MEMORY_LIMIT" {
				return v
			}
			return ""
		})
		if set || err == nil || !strings.Contains(err.Error(), "SNAP_MEMORY_LIMIT="+v+": give the soft memory limit as a size, e.g. 512M") {
			t.Errorf("SNAP_MEMORY_LIMIT=%s: %v, %v", v, set, err)
		}
		if got := debug.SetMemoryLimit(-1); got != limit0 {
			t.Errorf("SNAP_MEMORY_LIMIT=%s: limit %d, want it left at %d", v, got, limit0)
		}
	}
}

// TestMemoryLimitVariable: the binary takes SNAP_MEMORY_LIMIT in snap's
// size syntax, and stops on a wrong one with one line, exit 2 (no stack
// trace, as the runtime gives for GOMEMLIMIT=512M).
func TestMemoryLimitVariable(t *testing.T) {
	tr := newTestRepo(t)
	tr.mustRun("list")
	if res := tr.runEnv([]string{"SNAP_MEMORY_LIMIT=512M"}, nil, "list"); res.code != 0 {
		t.Errorf("SNAP_MEMORY_LIMIT=512M: exit %d\n%s", res.code, res.stderr)
	}
	res := tr.runEnv([]string{"SNAP_MEMORY_LIMIT=512X"}, nil, "list")
	if want := "snap: SNAP_MEMORY_LIMIT=512X: give the soft memory limit as a size, e.g. 512M or 2G\n"; res.code != exitUsage || res.stderr != want {
		t.Errorf("SNAP_MEMORY_LIMIT=512X: exit %d, want %d and %q\n%s", res.code, exitUsage, want, res.stderr)
	}
}
