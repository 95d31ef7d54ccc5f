package main

import (
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
)

// startProfiles writes the profiles that the environment asks for, for
// performance work (see docs/benchmarks.md): SNAP_CPUPROFILE names a file
// for a CPU profile of the whole run, SNAP_MEMPROFILE one for a heap profile
// taken at the end, SNAP_TRACE one for an execution trace (go tool trace:
// where goroutines wait). The returned function finishes them.
func startProfiles(getenv func(string) string) (stop func()) {
	var stops []func()
	if p := getenv("SNAP_CPUPROFILE"); p != "" {
		f, err := os.Create(p)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "snap: SNAP_CPUPROFILE: %v\n", err)
		} else {
			stops = append(stops, func() { pprof.StopCPUProfile(); f.Close() })
		}
	}
	if p := getenv("SNAP_TRACE"); p != "" {
		f, err := os.Create(p)
		if err == nil {
			err = trace.Start(f)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "snap: SNAP_TRACE: %v\n", err)
		} else {
			stops = append(stops, func() { trace.Stop(); f.Close() })
		}
	}
	if p := getenv("SNAP_MEMPROFILE"); p != "" {
		runtime.MemProfileRate = 64 << 10
		stops = append(stops, func() {
			runtime.GC() // the profile counts allocations up to the last collection
			f, err := os.Create(p)
			if err == nil {
				err = pprof.Lookup("allocs").WriteTo(f, 0)
				f.Close()
			}
			if err != nil {
				fmt.Fprintf(os.Stderr, "snap: SNAP_MEMPROFILE: %v\n", err)
			}
		})
	}
	return func() {
		for _, s := range stops {
			s()
		}
	}
}
