package main

import "testing"

// TestPathAttrs: a path that is not valid UTF-8 comes with its bytes in
// path_base64 in JSON lines (error and warning lines of create and run
// had only the U+FFFD form; found by an exploratory test).
func TestPathAttrs(t *testing.T) {
	if a := pathAttrs("/srv/ok"); len(a) != 2 {
		t.Errorf("valid path: %v", a)
	}
	if a := pathAttrs("/srv/bad\xff"); len(a) != 4 || a[2] != "path_base64" || a[3] != "L3Nydi9iYWT/" {
		t.Errorf("invalid path: %v", a)
	}
}
