package main

import (
	"strings"
	"testing"
)

// TestHugePagesRefused checks the conditions under which snap does not ask
// for huge pages for the key derivation: the runtime's switch in GODEBUG
// and strict overcommit (a pretended /proc/sys/vm/overcommit_memory).
func TestHugePagesRefused(t *testing.T) {
	mode := func(m string) func(string) ([]byte, error) {
		return func(string) ([]byte, error) { return []byte(m + "\n"), nil }
	}
	for _, c := range []struct {
		godebug, overcommit, want string
	}{
		{"disablethp=1", "0", "GODEBUG=disablethp=1"},
		{"gctrace=0, disablethp=1", "0", "GODEBUG=disablethp=1"},
		{"", "2", "strict overcommit"},
	} {
		if got := hugePagesRefused(c.godebug, mode(c.overcommit)); !strings.Contains(got, c.want) {
			t.Errorf("GODEBUG %q, overcommit %s: refused %q, want %q", c.godebug, c.overcommit, got, c.want)
		}
	}
	got := hugePagesRefused("disablethp=0", mode("0"))
	if got != "" && !strings.Contains(got, "limit") && !strings.Contains(got, "memory") {
		t.Errorf("heuristic overcommit, no switch: refused %q", got)
	}
	if got != "" {
		t.Logf("this machine: %s", got)
	}
}
