package snapshot

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
	_ "time/tzdata" // the zones the tests name, where the system has no zone data

	"github.com/snap-backup/snap/repo"
)

// psn makes a snapshot named by one letter (its ID's first byte) at an RFC
// 3339 time.
func psn(name byte, ts string, tags ...string) *Snapshot {
	t, err := time.Parse(time.RFC3339, ts)
	if err != nil {
		panic(err)
	}
	var id repo.ID
	id[0] = name
	return &Snapshot{ID: id, Time: t, Host: "h", Paths: []string{"/data"}, Tags: tags}
}

// acked marks sn as taken with --allow-emptied.
func acked(sn *Snapshot) *Snapshot {
	sn.AllowEmptied = true
	return sn
}

func TestApplyPolicy(t *testing.T) {
	now := time.Date(2027, 6, 1, 12, 0, 0, 0, time.UTC)
	berlin := time.FixedZone("CET", 3600)
	tests := []struct {
		name   string
		sns    []*Snapshot
		policy Policy
		loc    *time.Location
		now    time.Time
		want   map[byte]string // kept snapshot → its reasons joined by "; "; absent means removed
	}{
		{
			name:   "last",
			sns:    []*Snapshot{psn('a', "2026-11-01T03:00:00Z"), psn('b', "2026-11-02T03:00:00Z"), psn('c', "2026-11-03T03:00:00Z"), psn('d', "2026-11-04T03:00:00Z")},
			policy: Policy{Last: 2},
			want:   map[byte]string{'d': "last 1", 'c': "last 2"},
		},
		{
			// Data on the 31st, empty on the 1st, acknowledged on the
			// 2nd: while the 31st is kept, so is the acknowledgement,
			// else the next create warned and held retention again
			// (found by a review). Only the newest one stays so.
			name: "the newest --allow-emptied snapshot stays while an older one does",
			sns: []*Snapshot{psn('a', "2027-01-31T03:00:00Z"), psn('b', "2027-02-01T03:00:00Z"), acked(psn('c', "2027-02-02T03:00:00Z")),
				acked(psn('d', "2027-02-03T03:00:00Z")), psn('e', "2027-02-04T03:00:00Z"), psn('f', "2027-02-05T03:00:00Z")},
			policy: Policy{Last: 2, Monthly: 6},
			want:   map[byte]string{'f': "last 1; monthly 2027-02", 'e': "last 2", 'd': "acknowledges an emptied source", 'a': "monthly 2027-01"},
		},
		{
			name:   "an --allow-emptied snapshot older than all those kept goes",
			sns:    []*Snapshot{acked(psn('a', "2027-02-02T03:00:00Z")), psn('b', "2027-02-03T03:00:00Z"), psn('c', "2027-02-04T03:00:00Z")},
			policy: Policy{Last: 2},
			want:   map[byte]string{'c': "last 1", 'b': "last 2"},
		},
		{
			name: "daily keeps the newest of each day",
			sns: []*Snapshot{psn('a', "2026-11-19T01:00:00Z"), psn('b', "2026-11-19T23:00:00Z"), psn('c', "2026-11-20T00:30:00Z"),
				psn('d', "2026-11-20T12:00:00Z"), psn('e', "2026-11-22T08:00:00Z")},
			policy: Policy{Daily: 3},
			want:   map[byte]string{'e': "daily 2026-11-22", 'd': "daily 2026-11-20", 'b': "daily 2026-11-19"},
		},
		{
			name:   "daily in the given time zone",
			sns:    []*Snapshot{psn('a', "2026-11-20T22:30:00Z"), psn('b', "2026-11-20T23:30:00Z")},
			policy: Policy{Daily: 2},
			loc:    berlin, // a is 23:30 on the 20th there, b is 00:30 on the 21st
			want:   map[byte]string{'b': "daily 2026-11-21", 'a': "daily 2026-11-20"},
		},
		{
			name: "ISO weeks across a year end",
			sns: []*Snapshot{
				psn('a', "2025-12-28T10:00:00Z"), // Sunday: 2025-W52
				psn('b', "2025-12-29T10:00:00Z"), // Monday: already 2026-W01
				psn('c', "2026-01-01T10:00:00Z"), // 2026-W01
				psn('d', "2026-12-28T10:00:00Z"), // Monday: 2026-W53
				psn('e', "2027-01-01T10:00:00Z"), // Friday: still 2026-W53
				psn('f', "2027-01-03T10:00:00Z"), // Sunday: 2026-W53, newest of that week
				psn('g', "2027-01-04T10:00:00Z"), // Monday: 2027-W01
			},
			policy: Policy{Weekly: 3},
			want:   map[byte]string{'g': "weekly 2027-W01", 'f': "weekly 2026-W53", 'c': "weekly 2026-W01"},
		},
		{
			name: "months of different lengths",
			sns: []*Snapshot{
				psn('a', "2026-01-31T23:59:59Z"), psn('b', "2026-02-01T00:00:00Z"), psn('c', "2026-02-28T23:59:59Z"),
				psn('d', "2026-03-01T00:00:00Z"), psn('e', "2026-03-31T12:00:00Z"), psn('f', "2026-04-30T12:00:00Z"),
			},
			policy: Policy{Monthly: 4},
			want:   map[byte]string{'f': "monthly 2026-04", 'e': "monthly 2026-03", 'c': "monthly 2026-02", 'a': "monthly 2026-01"},
		},
		{
			name: "within a month of March 31 reaches back to the end of February, not including it (as restic)",
			sns: []*Snapshot{psn('a', "2026-02-27T12:00:00Z"), psn('b', "2026-02-28T12:00:00Z"), psn('B', "2026-02-28T12:00:01Z"),
				psn('c', "2026-03-02T12:00:00Z"), psn('d', "2026-03-31T12:00:00Z")},
			policy: Policy{Within: Span{Months: 1}},
			want:   map[byte]string{'d': "within 1m", 'c': "within 1m", 'B': "within 1m"},
		},
		{
			name: "within counts back from the newest snapshot, not from now; one exactly 4d older goes",
			sns: []*Snapshot{psn('a', "2026-01-01T00:00:00Z"), psn('b', "2026-01-05T00:00:00Z"), psn('B', "2026-01-05T00:00:01Z"),
				psn('c', "2026-01-08T00:00:00Z"), psn('d', "2026-01-09T00:00:00Z")},
			policy: Policy{Within: Span{Days: 4}},
			want:   map[byte]string{'d': "within 4d", 'c': "within 4d", 'B': "within 4d"},
		},
		{
			name: "yearly and hourly",
			sns: []*Snapshot{psn('a', "2024-06-01T10:10:00Z"), psn('b', "2025-03-01T10:10:00Z"), psn('c', "2025-12-31T23:10:00Z"),
				psn('d', "2026-05-05T10:10:00Z"), psn('e', "2026-05-05T10:50:00Z")},
			policy: Policy{Yearly: 2, Hourly: 2},
			want:   map[byte]string{'e': "hourly 2026-05-05 10:00; yearly 2026", 'c': "hourly 2025-12-31 23:00; yearly 2025"},
		},
		{
			name: "hourly: an hour that happens twice as the clocks go back is two hours",
			sns: []*Snapshot{psn('a', "2026-10-25T00:10:00Z"), psn('b', "2026-10-25T00:30:00Z"), // 02:10, 02:30 CEST
				psn('c', "2026-10-25T01:30:00Z")}, // 02:30 CET
			policy: Policy{Hourly: 3},
			loc:    mustLoad("Europe/Berlin"),
			want:   map[byte]string{'c': "hourly 2026-10-25 02:00 CET", 'b': "hourly 2026-10-25 02:00 CEST"},
		},
		{
			// Lord Howe Island goes back half an hour at 02:00 (+11)
			// to 01:30 (+1030): every 01:00 snapshot is named with its
			// zone, the first one too (found by an exploratory test).
			name: "hourly: an hour that happens twice as the clocks go back half an hour",
			sns: []*Snapshot{psn('a', "2026-04-04T14:15:00Z"), psn('b', "2026-04-04T14:45:00Z"), // 01:15, 01:45 +11
				psn('c', "2026-04-04T15:15:00Z"), psn('d', "2026-04-04T15:45:00Z")}, // 01:45, 02:15 +1030
			policy: Policy{Hourly: 4},
			loc:    mustLoad("Australia/Lord_Howe"),
			want:   map[byte]string{'d': "hourly 2026-04-05 02:00", 'c': "hourly 2026-04-05 01:00 +1030", 'b': "hourly 2026-04-05 01:00 +11"},
		},
		{
			name: "snapshots dated in the future are kept and do not count",
			sns: []*Snapshot{psn('a', "2027-05-30T03:00:00Z"), psn('b', "2027-05-31T03:00:00Z"), psn('c', "2027-06-01T11:00:00Z"),
				psn('z', "2031-01-01T00:00:00Z"), psn('y', "2027-06-01T12:00:01Z")},
			policy: Policy{Last: 1, Daily: 2, Within: Span{Hours: 1}},
			want: map[byte]string{'z': "in the future", 'y': "in the future", 'c': "last 1; daily 2027-06-01; within 1h",
				'b': "daily 2027-05-31"},
		},
		{
			name:   "only future snapshots",
			sns:    []*Snapshot{psn('z', "2031-01-01T00:00:00Z")},
			policy: Policy{Last: 1},
			want:   map[byte]string{'z': "in the future"},
		},
		{
			name:   "equal timestamps: the higher ID counts as newer",
			sns:    []*Snapshot{psn('b', "2026-11-20T03:00:00Z"), psn('a', "2026-11-20T03:00:00Z"), psn('c', "2026-11-20T03:00:00Z")},
			policy: Policy{Last: 1, Daily: 5},
			want:   map[byte]string{'c': "last 1; daily 2026-11-20"},
		},
		{
			name:   "equal timestamps: last 2",
			sns:    []*Snapshot{psn('b', "2026-11-20T03:00:00Z"), psn('a', "2026-11-20T03:00:00Z"), psn('c', "2026-11-20T03:00:00Z")},
			policy: Policy{Last: 2},
			want:   map[byte]string{'c': "last 1", 'b': "last 2"},
		},
		{
			name: "tags",
			sns: []*Snapshot{psn('a', "2026-01-01T00:00:00Z", "release"), psn('b', "2026-01-02T00:00:00Z", "x", "y"),
				psn('c', "2026-01-03T00:00:00Z", "x"), psn('d', "2026-01-04T00:00:00Z")},
			policy: Policy{Tags: []string{"release", "x,y"}, Last: 1},
			want:   map[byte]string{'d': "last 1", 'a': "tag release", 'b': "tag x,y"},
		},
		{
			name: "a period that comes back (clocks put back across midnight) counts once",
			// Goose Bay put its clocks back from 00:01 on 2009-11-01 to
			// 23:01 on October 31: d is 23:30 on October 31, c 00:00:30 on
			// November 1.
			sns: []*Snapshot{psn('a', "2009-09-20T12:00:00Z"), psn('b', "2009-10-15T12:00:00Z"), psn('c', "2009-11-01T03:00:30Z"),
				psn('d', "2009-11-01T03:30:00Z"), psn('e', "2009-11-10T12:00:00Z")},
			policy: Policy{Monthly: 3},
			loc:    mustLoad("America/Goose_Bay"),
			want:   map[byte]string{'e': "monthly 2009-11", 'd': "monthly 2009-10", 'a': "monthly 2009-09"},
		},
		{
			name: "within counts in the given zone, whatever offset the snapshots were recorded with",
			// b is 00:30 on March 31 in Berlin: a month back is 00:30 on
			// February 29, before a (13:00 there).
			sns:    []*Snapshot{psn('a', "2024-02-29T12:00:00Z"), psn('b', "2024-03-30T23:30:00Z")},
			policy: Policy{Within: Span{Months: 1}},
			loc:    mustLoad("Europe/Berlin"),
			want:   map[byte]string{'b': "within 1m", 'a': "within 1m"},
		},
		{
			name:   "more periods asked than there are",
			sns:    []*Snapshot{psn('a', "2026-01-01T00:00:00Z"), psn('b', "2026-01-01T01:00:00Z")},
			policy: Policy{Daily: 30, Monthly: 12},
			want:   map[byte]string{'b': "daily 2026-01-01; monthly 2026-01"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			loc := tc.loc
			if loc == nil {
				loc = time.UTC
			}
			n := tc.now
			if n.IsZero() {
				n = now
			}
			ds := ApplyPolicy(tc.sns, tc.policy, n, loc)
			if len(ds) != len(tc.sns) {
				t.Fatalf("%d decisions for %d snapshots", len(ds), len(tc.sns))
			}
			got := map[byte]string{}
			for i, d := range ds {
				if i > 0 && ds[i-1].Snapshot.Time.Before(d.Snapshot.Time) {
					t.Errorf("decisions not newest first at %d", i)
				}
				if d.Keep != (len(d.Reasons) > 0) {
					t.Errorf("%c: keep=%v with reasons %q", d.Snapshot.ID[0], d.Keep, d.Reasons)
				}
				if d.Keep {
					got[d.Snapshot.ID[0]] = strings.Join(d.Reasons, "; ")
				}
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("kept:\n got %s\nwant %s", fmtKept(got), fmtKept(tc.want))
			}
		})
	}
}

// mustLoad loads a time zone of the system's zone data.
func mustLoad(name string) *time.Location {
	loc, err := time.LoadLocation(name)
	if err != nil {
		panic(err)
	}
	return loc
}

func fmtKept(m map[byte]string) string {
	var b strings.Builder
	for c := byte('a'); c <= 'z'; c++ {
		if r, ok := m[c]; ok {
			b.WriteString(string(c) + "=[" + r + "] ")
		}
	}
	return b.String()
}

func TestApplyPolicyDoesNotReorderInput(t *testing.T) {
	in := []*Snapshot{psn('a', "2026-01-01T00:00:00Z"), psn('b', "2026-01-02T00:00:00Z")}
	ApplyPolicy(in, Policy{Last: 1}, time.Now(), time.UTC)
	if in[0].ID[0] != 'a' {
		t.Fatal("ApplyPolicy reordered its input")
	}
}

func TestParseSpan(t *testing.T) {
	for in, want := range map[string]Span{"7d": {Days: 7}, "2w": {Days: 14}, "1y6m": {Years: 1, Months: 6}, "36h": {Hours: 36}, "1y2m3w4d5h": {1, 2, 25, 5}, "6mo": {Months: 6}, "1y6mo2d": {Years: 1, Months: 6, Days: 2}} {
		got, err := ParseSpan(in)
		if err != nil || got != want {
			t.Errorf("ParseSpan(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	// "1h30m" would be 30 months and an hour: months after a smaller unit
	// are refused; other orders were always taken, and still are.
	if sp, err := ParseSpan("12h1d"); err != nil || sp != (Span{Days: 1, Hours: 12}) {
		t.Errorf("ParseSpan(12h1d) = %+v, %v", sp, err)
	}
	for _, bad := range []string{"", "7", "d", "7x", "1.5d", "-3d", "99999999999d", "1h30m", "1d6m", "6moo", "1h6mo"} {
		if _, err := ParseSpan(bad); err == nil {
			t.Errorf("ParseSpan(%q) accepted", bad)
		}
	}
	// Minutes as --at writes them are named as minutes, not months.
	for _, in := range []string{"1h30min", "30min"} {
		if _, err := ParseSpan(in); err == nil || !strings.Contains(err.Error(), "minutes are too fine") {
			t.Errorf("ParseSpan(%q): %v", in, err)
		}
	}
	march31 := time.Date(2026, 3, 31, 10, 0, 0, 0, time.UTC)
	for sp, want := range map[Span]time.Time{
		{Months: 1}:  time.Date(2026, 2, 28, 10, 0, 0, 0, time.UTC),
		{Months: 3}:  time.Date(2025, 12, 31, 10, 0, 0, 0, time.UTC),
		{Months: 13}: time.Date(2025, 2, 28, 10, 0, 0, 0, time.UTC),
		{Years: 2}:   time.Date(2024, 3, 31, 10, 0, 0, 0, time.UTC),
		{Days: 31}:   time.Date(2026, 2, 28, 10, 0, 0, 0, time.UTC),
		{Hours: 11}:  time.Date(2026, 3, 30, 23, 0, 0, 0, time.UTC),
	} {
		if got := sp.Before(march31); !got.Equal(want) {
			t.Errorf("%v before %v = %v, want %v", sp, march31, got, want)
		}
	}
	if got := (Span{Years: 1}).Before(time.Date(2028, 2, 29, 0, 0, 0, 0, time.UTC)); !got.Equal(time.Date(2027, 2, 28, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("a year before 2028-02-29 = %v", got)
	}
}

func TestGroupSnapshots(t *testing.T) {
	a := psn('a', "2026-01-01T00:00:00Z", "x")
	b := psn('b', "2026-01-02T00:00:00Z", "y")
	c := psn('c', "2026-01-03T00:00:00Z", "x")
	c.Host = "other"
	d := psn('d', "2026-01-04T00:00:00Z")
	d.Paths = nil
	d.Sources = []Source{{Path: "/db/app.sql", Kind: "postgres"}}
	by, err := ParseGroupBy("host,paths")
	if err != nil {
		t.Fatal(err)
	}
	gs := GroupSnapshots([]*Snapshot{a, b, c, d}, by)
	if len(gs) != 3 || len(gs[0].Snapshots) != 2 || gs[1].Key.Host != "other" || !reflect.DeepEqual(gs[2].Key.Paths, []string{"/db/app.sql"}) {
		t.Fatalf("groups by host,paths: %+v", gs)
	}
	by, _ = ParseGroupBy("tags")
	if gs := GroupSnapshots([]*Snapshot{a, b, c, d}, by); len(gs) != 3 || len(gs[0].Snapshots) != 2 {
		t.Fatalf("groups by tags: %+v", gs)
	}
	by, _ = ParseGroupBy("")
	if gs := GroupSnapshots([]*Snapshot{a, b, c, d}, by); len(gs) != 1 || gs[0].Key.String() != "all snapshots" {
		t.Fatalf("one group: %+v", gs)
	}
	if _, err := ParseGroupBy("host,colour"); err == nil {
		t.Fatal("ParseGroupBy accepted an unknown field")
	}
}

// TestFilterPathsOfDumps: --path matches a dump's path as well as a
// backed-up path, as snap list shows both.
func TestFilterPathsOfDumps(t *testing.T) {
	sn := &Snapshot{Paths: []string{"/srv/app"}, Sources: []Source{{Path: "/db/postgres/app.sql", Kind: "postgres"}}}
	for _, c := range []struct {
		paths []string
		want  bool
	}{
		{[]string{"/db/postgres/app.sql"}, true},
		{[]string{"/srv/app", "/db/postgres/app.sql/"}, true},
		{[]string{"/srv/app"}, true},
		{[]string{"/db/postgres/other.sql"}, false},
	} {
		if got := (Filter{Paths: c.paths}).Match(sn); got != c.want {
			t.Errorf("--path %v: match %v, want %v", c.paths, got, c.want)
		}
	}
}

// TestFilterTags: "a,b" needs both tags, repeated groups any of them, and
// an empty group ("" or ",": a script's unset variable) the snapshots
// without tags, never every snapshot.
func TestFilterTags(t *testing.T) {
	none, a, ab := &Snapshot{}, &Snapshot{Tags: []string{"a"}}, &Snapshot{Tags: []string{"a", "b"}}
	for _, c := range []struct {
		tags []string
		want [3]bool // none, a, ab
	}{
		{nil, [3]bool{true, true, true}},
		{[]string{"a"}, [3]bool{false, true, true}},
		{[]string{"a,b"}, [3]bool{false, false, true}},
		{[]string{"b", "a"}, [3]bool{false, true, true}},
		{[]string{""}, [3]bool{true, false, false}},
		{[]string{","}, [3]bool{true, false, false}},
		{[]string{"", "b"}, [3]bool{true, false, true}},
		{[]string{"a,"}, [3]bool{false, true, true}},
	} {
		for i, sn := range []*Snapshot{none, a, ab} {
			if got := (Filter{Tags: c.tags}).Match(sn); got != c.want[i] {
				t.Errorf("--tag %q on tags %q: match %v, want %v", c.tags, sn.Tags, got, c.want[i])
			}
		}
	}
}

// TestGroupKeyJSON: a key names what the snapshots are grouped by, and
// the group of snapshots without tags has "tags": [], not no key.
func TestGroupKeyJSON(t *testing.T) {
	for _, c := range []struct {
		k    GroupKey
		want string
	}{
		{GroupKey{Host: "vm", Tags: []string{}}, `{"host":"vm","tags":[]}`},
		{GroupKey{Host: "vm", Paths: []string{"/a"}}, `{"host":"vm","paths":["/a"]}`},
		{GroupKey{Tags: []string{"x"}}, `{"tags":["x"]}`},
	} {
		b, err := json.Marshal(c.k)
		if err != nil || string(b) != c.want {
			t.Errorf("%s: %s, want %s", c.k, b, c.want)
		}
	}
	if s := (GroupKey{Host: "vm", Tags: []string{}}).String(); s != "host vm, no tags" {
		t.Errorf("String: %q", s)
	}
}

// TestGroupKeyStringQuotesControls: a host name or path with a newline
// (from a hostile or damaged snapshot document) prints on one line.
func TestGroupKeyStringQuotesControls(t *testing.T) {
	k := GroupKey{Host: "db1\nfake line", Paths: []string{"/srv/a\x1b[2J", "/srv/b"}, Tags: []string{"x"}}
	want := `host "db1\nfake line", paths "/srv/a\x1b[2J" /srv/b, tags x`
	if got := k.String(); got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}

// TestWallTimeRepeated: a wall clock that happened twice (the clocks went
// back) is its first occurrence, east of UTC too, where time.Date gives
// the second: a day of Asia/Amman whose midnight came twice began an hour
// late, and 3 days back from a time in Berlin's repeated hour was its
// second occurrence (found by an exploratory test).
func TestWallTimeRepeated(t *testing.T) {
	amman, err := time.LoadLocation("Asia/Amman")
	if err != nil {
		t.Fatal(err)
	}
	// 2021-10-29 01:00 EEST went back to 00:00 EET: midnight twice.
	if got, want := DayStart(2021, time.October, 29, amman), time.Date(2021, time.October, 28, 21, 0, 0, 0, time.UTC); !got.Equal(want) {
		t.Errorf("Amman 2021-10-29 begins at %v, want %v", got.UTC(), want)
	}
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	// 2026-10-25 03:00 CEST went back to 02:00 CET: 02:30 twice.
	first := time.Date(2026, time.October, 25, 0, 30, 0, 0, time.UTC) // 02:30 CEST
	now := time.Date(2026, time.October, 28, 2, 30, 0, 0, berlin)
	if back := (Span{Days: 3}).Before(now); !back.Equal(first) {
		t.Errorf("3 days before %v: %v, want the first 02:30, %v", now, back.In(berlin), first.In(berlin))
	}
	// Hours alone are elapsed time: an hour before 02:20 CET, the second
	// 02:20, is 02:20 CEST, not 01:20 CEST (found by an exploratory test).
	secondAt := time.Date(2026, time.October, 25, 1, 20, 0, 0, time.UTC) // 02:20 CET
	if back := (Span{Hours: 1}).Before(secondAt); !back.Equal(secondAt.Add(-time.Hour)) {
		t.Errorf("1h before %v: %v", secondAt.In(berlin), back.In(berlin))
	}
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	// West of UTC too: 2026-11-01 01:30 happened twice.
	if got, want := WallTime(2026, time.November, 1, 1, 30, 0, 0, ny), time.Date(2026, time.November, 1, 5, 30, 0, 0, time.UTC); !got.Equal(want) {
		t.Errorf("New York 01:30: %v, want %v", got.UTC(), want)
	}
	// An ordinary time is time.Date's.
	if got, want := WallTime(2026, time.July, 1, 12, 0, 0, 0, berlin), time.Date(2026, time.July, 1, 12, 0, 0, 0, berlin); !got.Equal(want) {
		t.Errorf("Berlin noon: %v, want %v", got, want)
	}
}

// TestDayStartSkippedDay: Samoa skipped 2011-12-30 whole (23:59:59 -10
// on the 29th became 00:00 +14 on the 31st). The day starts and ends at
// the jump; the 29th ends there. Its start was taken for the next change
// of the clocks, in April, and "list 2011-12-29" took in every snapshot
// until then (found by an exploratory test).
func TestDayStartSkippedDay(t *testing.T) {
	apia, err := time.LoadLocation("Pacific/Apia")
	if err != nil {
		t.Skipf("no time zone data: %v", err)
	}
	jump := time.Date(2011, time.December, 30, 10, 0, 0, 0, time.UTC)
	for d, want := range map[int]time.Time{
		29: time.Date(2011, time.December, 29, 0, 0, 0, 0, apia),
		30: jump,
		31: jump,
	} {
		if got := DayStart(2011, time.December, d, apia); !got.Equal(want) {
			t.Errorf("Apia 2011-12-%d begins at %v, want %v", d, got.UTC(), want.UTC())
		}
	}
	if from, to, err := ParsePeriod("2011-12-29", apia); err != nil || !to.Equal(jump) || !from.Equal(time.Date(2011, time.December, 29, 0, 0, 0, 0, apia)) {
		t.Errorf("ParsePeriod(2011-12-29) = %v .. %v, %v; want .. %v", from, to, err, jump)
	}
}

// TestWallTimeSkipped: a wall clock the clocks skipped (they went forward)
// is the moment of the jump. time.Date put Berlin's 02:30 of a spring night
// at 03:30, and a day back from 02:30 the next night left a snapshot of
// 03:15 outside --keep-within 1d (found by an exploratory test).
func TestWallTimeSkipped(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	jump := time.Date(2025, time.March, 30, 1, 0, 0, 0, time.UTC) // 02:00 CET became 03:00 CEST
	if got := WallTime(2025, time.March, 30, 2, 30, 0, 0, berlin); !got.Equal(jump) {
		t.Errorf("Berlin 02:30 on 2025-03-30: %v, want the jump %v", got.UTC(), jump)
	}
	now := time.Date(2025, time.March, 31, 2, 30, 0, 0, berlin)
	if back := (Span{Days: 1}).Before(now); !back.Equal(jump) {
		t.Errorf("a day before %v: %v, want %v", now, back.In(berlin), jump.In(berlin))
	}
	snap := time.Date(2025, time.March, 30, 3, 15, 0, 0, berlin)
	if back := (Span{Days: 1}).Before(now); snap.Before(back) {
		t.Errorf("03:15 falls before the window's start %v", back.In(berlin))
	}
	// West of UTC: New York's 02:30 of 2026-03-08 never happened.
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := WallTime(2026, time.March, 8, 2, 30, 0, 0, ny), time.Date(2026, time.March, 8, 7, 0, 0, 0, time.UTC); !got.Equal(want) {
		t.Errorf("New York 02:30 on 2026-03-08: %v, want the jump %v", got.UTC(), want)
	}
	// Normalized values are time.Date's: day 32 of January is February 1.
	if got, want := WallTime(2026, time.January, 32, 12, 0, 0, 0, berlin), time.Date(2026, time.February, 1, 12, 0, 0, 0, berlin); !got.Equal(want) {
		t.Errorf("January 32: %v, want %v", got, want)
	}
	// Chile: 2022-09-11 began at 01:00, its midnight skipped.
	santiago, err := time.LoadLocation("America/Santiago")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := DayStart(2022, time.September, 11, santiago), time.Date(2022, time.September, 11, 4, 0, 0, 0, time.UTC); !got.Equal(want) {
		t.Errorf("Santiago 2022-09-11 begins at %v, want %v", got.UTC(), want)
	}
}

// TestHourLabelAroundTransitions: an hour is named with its zone exactly
// when its clock also happens with another offset, as found by reading
// every minute around it, in zones whose clocks change by an hour, half
// an hour, two hours, or forward.
func TestHourLabelAroundTransitions(t *testing.T) {
	const layout = "2006-01-02 15:00"
	repeats := func(x time.Time) bool {
		_, off := x.Zone()
		for d := -4 * time.Hour; d <= 4*time.Hour; d += time.Minute {
			y := x.Add(d)
			if _, yoff := y.Zone(); yoff != off && y.Format(layout) == x.Format(layout) {
				return true
			}
		}
		return false
	}
	for _, name := range []string{"Europe/Berlin", "Australia/Lord_Howe", "America/Sao_Paulo", "Antarctica/Troll", "Europe/London", "America/St_Johns"} {
		loc := mustLoad(name)
		// The transitions of a year, and of 1945 for double summer
		// time (two hours) in London.
		for _, year := range []int{1945, 2018, 2026} {
			u := time.Date(year, 1, 1, 0, 0, 0, 0, loc)
			for n := 0; n < 4; n++ {
				_, end := u.ZoneBounds()
				if end.IsZero() || end.Year() > year {
					break
				}
				for d := -3 * time.Hour; d <= 3*time.Hour; d += 5 * time.Minute {
					x := end.Add(d).In(loc)
					want := x.Format(layout)
					if repeats(x) {
						want += " " + x.Format("MST")
					}
					if got := hourLabel(x); got != want {
						t.Errorf("%s %s: hourLabel %q, want %q", name, x.Format(time.RFC3339), got, want)
					}
				}
				u = end
			}
		}
	}
}
