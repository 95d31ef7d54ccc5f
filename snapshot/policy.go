package snapshot

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/snap-backup/snap/sources"
)

// Policy says which snapshots of a group forget keeps. The rules are ORed:
// a snapshot is kept when any rule keeps it, and removed otherwise.
//
//   - Last keeps the Last newest snapshots.
//   - Hourly, Daily, Weekly, Monthly and Yearly keep the newest snapshot of
//     each of the N most recent hours, days, ISO weeks, months or years
//     that have a snapshot (calendar periods in the given time zone).
//   - Within keeps every snapshot taken within that span before the
//     group's newest snapshot (not before now: a host whose backups stopped
//     keeps its last ones).
//   - Tags keeps snapshots carrying the tags of any entry ("a,b" means
//     both a and b).
//
// Snapshots dated after now are always kept and do not count against any
// rule, so a wrong clock can neither delete them nor make them push
// genuine snapshots out.
type Policy struct {
	Last, Hourly, Daily, Weekly, Monthly, Yearly int
	Within                                       Span
	Tags                                         []string
}

// IsEmpty reports whether the policy keeps nothing by itself; forget
// refuses to apply such a policy.
func (p Policy) IsEmpty() bool {
	return p.Last == 0 && p.Hourly == 0 && p.Daily == 0 && p.Weekly == 0 && p.Monthly == 0 && p.Yearly == 0 &&
		p.Within.IsZero() && len(p.Tags) == 0
}

// String describes the policy, e.g. "last 5, daily 7, monthly 3".
func (p Policy) String() string {
	var parts []string
	for _, r := range []struct {
		name string
		n    int
	}{{"last", p.Last}, {"hourly", p.Hourly}, {"daily", p.Daily}, {"weekly", p.Weekly}, {"monthly", p.Monthly}, {"yearly", p.Yearly}} {
		if r.n != 0 {
			parts = append(parts, fmt.Sprintf("%s %d", r.name, r.n))
		}
	}
	if !p.Within.IsZero() {
		parts = append(parts, "within "+p.Within.String())
	}
	for _, t := range p.Tags {
		parts = append(parts, "tag "+t)
	}
	return strings.Join(parts, ", ")
}

// Span is a calendar length of time: years and months have their calendar
// lengths, so "1m" back from March 31 is the end of February.
type Span struct {
	Years, Months, Days, Hours int
}

// ParseSpan parses a span such as "7d", "2w", "1y6m" or "36h": numbers
// followed by y (years), m or mo (months), w (weeks), d (days) or h
// (hours).
func ParseSpan(s string) (Span, error) {
	var sp Span
	rest := s
	if rest == "" {
		return sp, fmt.Errorf("empty duration: use e.g. 7d, 2w, 6m, 1y or 36h")
	}
	// "1h30m" reads as Go's one and a half hours, but would be 30 months
	// and an hour here: months after a smaller unit (w, d, h) are refused.
	// Other orders ("12h1d") have always been taken.
	pastMonths := false
	for rest != "" {
		i := 0
		for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
			i++
		}
		if i == 0 || i == len(rest) {
			return Span{}, fmt.Errorf("duration %q: use numbers with a unit: y, m (months), w, d or h, e.g. 7d or 1y6m", s)
		}
		n, err := strconv.Atoi(rest[:i])
		if err != nil || n > 100000 {
			return Span{}, fmt.Errorf("duration %q: number out of range", s)
		}
		switch rest[i] {
		case 'y':
			sp.Years += n
		case 'm':
			if strings.HasPrefix(rest[i:], "min") {
				// As --at writes minutes: said as such, not as months
				// (found by a re-test).
				return Span{}, fmt.Errorf("duration %q: minutes are too fine for a span of snapshots: use y, m or mo (months), w, d or h", s)
			}
			if pastMonths {
				return Span{}, fmt.Errorf("duration %q: \"m\" is months, and there are no minutes; give months before weeks, days and hours (\"1m2d\")", s)
			}
			sp.Months += n
			if strings.HasPrefix(rest[i+1:], "o") {
				i++ // "mo", as --at writes months
			}
		case 'w':
			sp.Days += 7 * n
			pastMonths = true
		case 'd':
			sp.Days += n
			pastMonths = true
		case 'h':
			sp.Hours += n
			pastMonths = true
		default:
			return Span{}, fmt.Errorf("duration %q: unknown unit %q; use y, m (months), w, d or h", s, rest[i])
		}
		rest = rest[i+1:]
	}
	return sp, nil
}

// IsZero reports whether the span is empty.
func (s Span) IsZero() bool { return s == Span{} }

// String formats the span as ParseSpan reads it.
func (s Span) String() string {
	var b strings.Builder
	for _, u := range []struct {
		n    int
		unit string
	}{{s.Years, "y"}, {s.Months, "m"}, {s.Days, "d"}, {s.Hours, "h"}} {
		if u.n != 0 {
			fmt.Fprintf(&b, "%d%s", u.n, u.unit)
		}
	}
	if b.Len() == 0 {
		return "0h"
	}
	return b.String()
}

// Before returns t moved back by the span. Moving back by months or years
// stays in the target month: one month before March 31 is February 28 (or
// 29), not March 3 as time.AddDate's normalisation would give.
func (s Span) Before(t time.Time) time.Time {
	y, m, d := t.Date()
	months := int(m) - 1 - s.Months - 12*s.Years
	ty, tm := y+floorDiv(months, 12), time.Month(months-12*floorDiv(months, 12)+1)
	if last := time.Date(ty, tm+1, 0, 0, 0, 0, 0, t.Location()).Day(); d > last {
		d = last
	}
	if s.Years == 0 && s.Months == 0 && s.Days == 0 {
		// Hours alone are elapsed time: no wall clock is looked up, so
		// the hour the clocks go back is not counted twice ("1h" before
		// 02:20 CET reached back to 01:20 CEST, 1h50m; found by an
		// exploratory test).
		return t.Add(-time.Duration(s.Hours) * time.Hour)
	}
	hh, mm, ss := t.Clock()
	// The earlier of a wall clock that happened twice: the window is the
	// larger, as --since starts at the earlier one (Berlin removed
	// snapshots of 02:15 and 02:45 inside "3d" by the clock, New York
	// kept them; found by an exploratory test).
	back := WallTime(ty, tm, d-s.Days, hh, mm, ss, t.Nanosecond(), t.Location())
	return back.Add(-time.Duration(s.Hours) * time.Hour)
}

func floorDiv(a, b int) int {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// hourLabel names the hour of t for the reason "hourly …": its date and
// hour, and its zone's name in an hour that the clocks going back make
// happen twice ("2026-10-25 02:00 CEST", "… 02:00 CET"), whose two
// snapshots had the same reason (found by an exploratory test).
func hourLabel(t time.Time) string {
	const layout = "2006-01-02 15:00"
	k := t.Format(layout)
	if hourRepeats(t) {
		return k + " " + t.Format("MST")
	}
	return k
}

// hourRepeats reports whether the hour of the clock that t is in also
// happens with another UTC offset: in the zones before and after t's
// (two each way, for zones that only change their name), whatever the
// clocks went back by. Checking whole hours away missed Lord Howe
// Island's half hour, where one snapshot of 01:00 was named with its
// zone and the other not (found by an exploratory test).
func hourRepeats(t time.Time) bool {
	_, off := t.Zone()
	// The hour's wall clock, read as if it were UTC: minus an offset,
	// the instant it starts at in that offset.
	wall := time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), 0, 0, 0, time.UTC)
	for _, back := range []bool{true, false} {
		u := t
		for range 2 {
			start, end := u.ZoneBounds()
			if back && start.IsZero() || !back && end.IsZero() {
				break // no change of zone that way
			}
			if back {
				u = start.Add(-time.Nanosecond)
			} else {
				u = end
			}
			uStart, uEnd := u.ZoneBounds()
			_, uOff := u.Zone()
			if uOff == off {
				continue
			}
			// The hour in u's offset, [from, from+1h), meets u's span.
			from := wall.Add(-time.Duration(uOff) * time.Second)
			if (uEnd.IsZero() || from.Before(uEnd)) && (uStart.IsZero() || from.Add(time.Hour).After(uStart)) {
				return true
			}
		}
	}
	return false
}

// Decision is what the policy decided for one snapshot.
type Decision struct {
	Snapshot *Snapshot
	Keep     bool
	Reasons  []string // why it is kept, e.g. "last 3", "daily 2026-11-20"; empty when removed
	// Future: dated after now, so kept whatever the rules say (the
	// clock of the host that made it may be wrong).
	Future bool
}

// ApplyPolicy decides which snapshots of one group the policy keeps. It is
// a pure function of its arguments: now only tells which snapshots are
// dated in the future, and loc is the time zone of calendar periods. The
// decisions come newest first (equal times ordered by ID, higher first).
func ApplyPolicy(sns []*Snapshot, p Policy, now time.Time, loc *time.Location) []Decision {
	sorted := slices.Clone(sns)
	SortByTime(sorted)
	slices.Reverse(sorted)
	out := make([]Decision, len(sorted))
	var current []int // indexes of snapshots not in the future, newest first
	for i, sn := range sorted {
		out[i].Snapshot = sn
		if sn.Time.After(now) {
			out[i].Keep, out[i].Future = true, true
			out[i].Reasons = append(out[i].Reasons, "in the future")
			continue
		}
		current = append(current, i)
	}
	keep := func(i int, reason string) {
		out[i].Keep = true
		out[i].Reasons = append(out[i].Reasons, reason)
	}
	for n, i := range current {
		if n < p.Last {
			keep(i, fmt.Sprintf("last %d", n+1))
		}
	}
	for _, b := range []struct {
		name string
		n    int
		key  func(time.Time) string
	}{
		{"hourly", p.Hourly, hourLabel},
		{"daily", p.Daily, func(t time.Time) string { return t.Format("2006-01-02") }},
		{"weekly", p.Weekly, func(t time.Time) string {
			y, w := t.ISOWeek()
			return fmt.Sprintf("%04d-W%02d", y, w)
		}},
		{"monthly", p.Monthly, func(t time.Time) string { return t.Format("2006-01") }},
		{"yearly", p.Yearly, func(t time.Time) string { return t.Format("2006") }},
	} {
		if b.n <= 0 {
			continue
		}
		// A period already seen is not counted again, even when it comes
		// back after another: where clocks went back across midnight
		// (America/Goose_Bay until 2010), the newest first order can read
		// November, October, November; comparing with the last period
		// alone gave November a second snapshot and cost the oldest
		// period its own (found by an exploratory test).
		seen, kept := map[string]bool{}, 0
		for _, i := range current {
			t := sorted[i].Time.In(loc)
			k := b.key(t)
			period := k
			if b.name == "hourly" {
				// The night the clocks go back, the hour from 02:00
				// happens twice: each is an hour of its own (the same
				// label, another offset).
				period = t.Format("2006-01-02 15:00 -0700")
			}
			if seen[period] {
				continue // an older snapshot of a period already seen
			}
			seen[period] = true
			if kept < b.n {
				keep(i, b.name+" "+k)
				kept++
			}
		}
	}
	if !p.Within.IsZero() && len(current) > 0 {
		// Strictly after the span's start, as restic counts: "1d" keeps
		// a snapshot 23:59 older than the newest, not one a day older.
		// Counted in loc, as the periods are, not in the offset the
		// newest snapshot was recorded with: a month back from a
		// snapshot a UTC host took at 23:30 on March 30 is February 29
		// in Berlin, where it was 00:30 on March 31 (found by an
		// exploratory test).
		from := p.Within.Before(sorted[current[0]].Time.In(loc))
		for _, i := range current {
			if sorted[i].Time.After(from) {
				keep(i, "within "+p.Within.String())
			}
		}
	}
	for _, group := range p.Tags {
		f := Filter{Tags: []string{group}}
		for i := range sorted {
			if f.Match(sorted[i]) && !sorted[i].Time.After(now) {
				keep(i, "tag "+group)
			}
		}
	}
	// The newest snapshot taken with --allow-emptied stays while an older
	// one is kept: it acknowledges a source that came back empty, and
	// once it was forgotten, the next create looked back past it to the
	// older one's data and warned, holding a job's retention, again
	// (found by a review).
	for n, i := range current {
		if !sorted[i].AllowEmptied {
			continue
		}
		if !out[i].Keep && slices.ContainsFunc(current[n+1:], func(j int) bool { return out[j].Keep }) {
			keep(i, "acknowledges an emptied source")
		}
		break
	}
	return out
}

// GroupBy says which snapshot properties form forget's groups.
type GroupBy struct {
	Host, Paths, Tags bool
}

// ParseGroupBy reads a comma-separated list of host, paths and tags; the
// empty string puts every snapshot in one group.
func ParseGroupBy(s string) (GroupBy, error) {
	var g GroupBy
	for _, f := range strings.Split(s, ",") {
		switch strings.TrimSpace(f) {
		case "":
		case "host":
			g.Host = true
		case "paths", "path":
			g.Paths = true
		case "tags", "tag":
			g.Tags = true
		default:
			return g, fmt.Errorf("group-by %q: use a comma-separated list of host, paths and tags", s)
		}
	}
	return g, nil
}

// GroupKey is what the snapshots of a group share. Fields not grouped by
// are empty.
type GroupKey struct {
	Host string `json:"host,omitempty"`
	// Paths and Tags are nil when the snapshots are not grouped by them,
	// and empty (JSON []) for the group of snapshots without tags.
	Paths []string `json:"paths,omitzero"`
	Tags  []string `json:"tags,omitzero"`
	// Databases, when grouped by paths, are the databases the group's
	// dumps were taken from, as the first snapshot recorded them: a dump's
	// path alone does not tell two SQLite files of one name apart
	// (StreamKey).
	Databases []string `json:"databases,omitempty"`
}

func (k GroupKey) String() string {
	var parts []string
	if k.Host != "" {
		parts = append(parts, "host "+sources.DisplayPath(k.Host))
	}
	if k.Paths != nil {
		ps := make([]string, len(k.Paths))
		for i, p := range k.Paths {
			ps[i] = sources.DisplayPath(p)
		}
		parts = append(parts, "paths "+strings.Join(ps, " "))
	}
	if len(k.Databases) > 0 {
		parts = append(parts, "databases "+sources.DisplayPath(strings.Join(k.Databases, " ")))
	}
	switch {
	case k.Tags == nil:
	case len(k.Tags) == 0:
		parts = append(parts, "no tags")
	default:
		parts = append(parts, "tags "+sources.DisplayPath(strings.Join(k.Tags, ",")))
	}
	if len(parts) == 0 {
		return "all snapshots"
	}
	return strings.Join(parts, ", ")
}

// Group is a set of snapshots forget treats together.
type Group struct {
	Key       GroupKey
	Snapshots []*Snapshot
}

// SnapshotPaths is what identifies a snapshot's content for grouping: its
// backed-up paths and the paths of its stream sources, sorted.
func SnapshotPaths(sn *Snapshot) []string {
	ps := slices.Clone(sn.Paths)
	for _, s := range sn.Sources {
		ps = append(ps, s.Path)
	}
	slices.Sort(ps)
	return slices.Compact(ps)
}

// dumpedDatabases lists the URLs (recorded without secrets) of the
// databases the snapshot's dumps were taken from, sorted.
func dumpedDatabases(sn *Snapshot) []string {
	var out []string
	for _, s := range sn.Sources {
		if s.URL != "" && StreamKey(s) != s.Path {
			out = append(out, s.URL)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// GroupSnapshots splits snapshots into groups, in the order each group's
// first snapshot appears.
func GroupSnapshots(sns []*Snapshot, by GroupBy) []Group {
	var groups []Group
	index := map[string]int{}
	for _, sn := range sns {
		var k GroupKey
		if by.Host {
			k.Host = sn.Host
		}
		var streams []string
		if by.Paths {
			k.Paths = SnapshotPaths(sn)
			if k.Paths == nil {
				k.Paths = []string{}
			}
			streams = StreamKeys(sn.Sources)
			k.Databases = dumpedDatabases(sn)
		}
		if by.Tags {
			k.Tags = tagSet(sn.Tags)
		}
		id := fmt.Sprintf("%q\x00%q\x00%q\x00%q", k.Host, k.Paths, k.Tags, streams)
		i, ok := index[id]
		if !ok {
			i = len(groups)
			index[id] = i
			groups = append(groups, Group{Key: k})
		}
		groups[i].Snapshots = append(groups[i].Snapshots, sn)
	}
	return groups
}
