package main

import "testing"

// TestHugePagesAllowed checks that GODEBUG=disablethp=1, alone or among
// other settings, turns huge pages off, and that nothing else does.
func TestHugePagesAllowed(t *testing.T) {
	for godebug, want := range map[string]bool{
		"":                        true,
		"gctrace=1":               true,
		"disablethp=0":            true,
		"disablethp=1":            false,
		"gctrace=0, disablethp=1": false,
	} {
		if got := hugePagesAllowed(godebug); got != want {
			t.Errorf("GODEBUG %q: hugePagesAllowed = %v, want %v", godebug, got, want)
		}
	}
}
