package snapshot

import (
	"strings"
	"testing"
	"time"
)

// TestFindParentPrefersSameStreams: of two snapshots of the same paths,
// one with a database dump and one without, a create of the paths alone
// takes the one without, and a create with the dump the one with it,
// whichever is newer. Only when none matches so does one of the same
// paths serve (its files are what is compared).
func TestFindParentPrefersSameStreams(t *testing.T) {
	t0 := time.Date(2026, 12, 6, 3, 0, 0, 0, time.UTC)
	mk := func(hour int, tags []string, streams ...string) *Snapshot {
		sn := &Snapshot{Time: t0.Add(time.Duration(hour) * time.Hour), Host: "h", Paths: []string{"/srv/app"}, Tags: tags}
		for _, s := range streams {
			sn.Sources = append(sn.Sources, Source{Path: s})
		}
		return sn
	}
	withDump := mk(0, nil, "/db/postgres/app.sql")
	filesOnly := mk(1, nil)
	tagged := mk(2, []string{"weekly"}, "/db/postgres/app.sql")
	sns := []*Snapshot{withDump, filesOnly, tagged}
	paths := []string{"/srv/app"}
	for _, c := range []struct {
		name    string
		tags    []string
		streams []string
		want    *Snapshot
	}{
		{"files alone", nil, []string{}, filesOnly},
		{"files and dump", nil, []string{"/db/postgres/app.sql"}, withDump},
		{"tags before streams", []string{"weekly"}, []string{}, tagged},
		{"another dump: same tags", nil, []string{"/db/mysql/shop.sql"}, filesOnly},
		{"no tags match: same streams", []string{"monthly"}, []string{"/db/postgres/app.sql"}, tagged},
	} {
		if got := FindParent(sns, "h", paths, c.tags, c.streams); got != c.want {
			t.Errorf("%s: got the snapshot of %v, want %v", c.name, got.Time, c.want.Time)
		}
	}
	if got := FindParent(sns, "h", []string{"/srv"}, nil, []string{}); got != nil {
		t.Errorf("other paths: got %v", got.Time)
	}
}

// TestFindAmbiguousNamesZones: the snapshots an ambiguous prefix matches
// are told apart by the zone in the hour that occurs twice (they read
// "02:15:00" both; found by an exploratory test). It sets time.Local, so
// it must not run in parallel.
func TestFindAmbiguousNamesZones(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Skip("no time zone data:", err)
	}
	saved := time.Local
	time.Local = berlin
	defer func() { time.Local = saved }()
	summer := time.Date(2026, 10, 25, 0, 15, 0, 0, time.UTC) // 02:15 CEST
	sns := []*Snapshot{{Time: summer, Host: "h"}, {Time: summer.Add(time.Hour), Host: "h"}}
	sns[0].ID[0], sns[1].ID[0] = 0xab, 0xab
	sns[1].ID[1] = 1
	_, err = Find(sns, "ab", Filter{})
	if err == nil || !strings.Contains(err.Error(), "2026-10-25 02:15:00 CEST, h") || !strings.Contains(err.Error(), "2026-10-25 02:15:00 CET, h") {
		t.Errorf("Find: %v", err)
	}
}
