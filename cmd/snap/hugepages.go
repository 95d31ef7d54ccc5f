package main

import "strings"

// hugePagesAllowed reports whether snap may ask the kernel for transparent
// huge pages for the key derivation's memory and the pack buffers
// (repo.Options.HugePages): unless GODEBUG has disablethp=1, the Go
// runtime's own switch against huge pages for the heap, which snap honours.
// The advice changes no allocation (a kernel without a free huge page, or
// with THP "never", maps ordinary pages), so nothing else rules it out.
func hugePagesAllowed(godebug string) bool {
	for _, kv := range strings.Split(godebug, ",") {
		if strings.TrimSpace(kv) == "disablethp=1" {
			return false
		}
	}
	return true
}
