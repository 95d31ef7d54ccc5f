package main

import (
	"os/user"
	"path/filepath"
	"testing"
)

// TestCacheBase: the cache lives under --cache-dir, else
// $XDG_CACHE_HOME/snap, else $HOME/.cache/snap, else (a system service
// runs without HOME) under the account's home from the password database;
// never in a shared directory such as /tmp, where another user could
// plant it.
func TestCacheBase(t *testing.T) {
	u, err := user.Current()
	if err != nil {
		t.Skip(err)
	}
	cases := []struct {
		vars  map[string]string
		given string
		want  string
	}{
		{map[string]string{"XDG_CACHE_HOME": "/x", "HOME": "/h"}, "/given", "/given"},
		{map[string]string{"XDG_CACHE_HOME": "/x", "HOME": "/h"}, "", "/x/snap"},
		{map[string]string{"XDG_CACHE_HOME": "relative", "HOME": "/h"}, "", "/h/.cache/snap"},
		{map[string]string{}, "", filepath.Join(u.HomeDir, ".cache", "snap")},
	}
	for _, c := range cases {
		e := &env{getenv: func(k string) string { return c.vars[k] }}
		got, err := cacheBase(e, c.given)
		if err != nil || got != c.want {
			t.Errorf("%v, --cache-dir %q: %q, %v; want %q", c.vars, c.given, got, err, c.want)
		}
	}
}
