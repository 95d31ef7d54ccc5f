package main

import (
	"testing"

	"github.com/snap-backup/snap/snapshot"
)

// TestDumpsNamedByURL: a database URL names the dump of that database
// however either is spelt (localhost or 127.0.0.1, the default port or
// none), as create tells databases apart; only the recorded spelling
// matched (found by an exploratory test). Another database, server or
// kind does not match.
func TestDumpsNamedByURL(t *testing.T) {
	srcs := []snapshot.Source{
		{Path: "/db/postgres/app.sql", Kind: "postgres", URL: "postgres://postgres@localhost/app"},
		{Path: "/db/mysql/app.sql", Kind: "mysql", URL: "mysql://root@127.0.0.1:3306/app"},
		{Path: "/db/postgres/all.sql", Kind: "postgres", URL: "postgres://postgres@127.0.0.1:5432/?all"},
	}
	for name, want := range map[string]string{
		"postgres://postgres@127.0.0.1:5432/app": "/db/postgres/app.sql",
		"postgres://postgres@localhost:5432/app": "/db/postgres/app.sql",
		"postgres://postgres@localhost/app":      "/db/postgres/app.sql",
		"mysql://root@127.0.0.1/app":             "/db/mysql/app.sql",
		"postgres://postgres@localhost/?all":     "/db/postgres/all.sql",
		"postgres://postgres@localhost:5433/app": "",
		"postgres://postgres@localhost/other":    "",
		"postgres://postgres@localhost/all":      "",
	} {
		got := dumpsNamed(srcs, name)
		switch {
		case want == "" && len(got) != 0:
			t.Errorf("%s matched %v", name, got)
		case want != "" && (len(got) != 1 || got[0].Path != want):
			t.Errorf("%s matched %v, want %s", name, got, want)
		}
	}
}
