package main

import (
	"runtime/debug"
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
	} {
		// What the runtime would have read from such an environment.
		debug.SetGCPercent(100)
		debug.SetMemoryLimit(1 << 40)
		if got := setMemoryDefaults(env(c.vars)); got != c.set {
			t.Errorf("%s: setMemoryDefaults = %v", c.name, got)
		}
		if got := debug.SetGCPercent(100); got != c.gcPercent {
			t.Errorf("%s: GC percent %d, want %d", c.name, got, c.gcPercent)
		}
		if got := debug.SetMemoryLimit(-1); got != c.limit {
			t.Errorf("%s: memory limit %d, want %d", c.name, got, c.limit)
		}
	}
}
