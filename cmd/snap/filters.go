package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/snap-backup/snap/repo"
	"github.com/snap-backup/snap/snapshot"
	"github.com/snap-backup/snap/sources"
)

// filterFlags select snapshots; list, ls, dump, restore and forget share them.
func filterFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringSliceFlag{Name: "host", Usage: "only snapshots of this host (repeatable)"},
		&cli.StringSliceFlag{Name: "tag", Usage: "only snapshots with this tag; \"a,b\" means both, \"\" none at all (repeatable: any of them)"},
		multiFlag("path", "only snapshots that include this path (repeatable: all of them)"),
		&cli.StringSliceFlag{Name: "job", Usage: "only snapshots taken by this job of the config file ('snap run JOB'; repeatable: any of them)"},
	}
}

func filterFrom(c *cli.Context) snapshot.Filter {
	var paths []string
	for _, p := range multiValues(c, "path") {
		// create stores absolute paths: a relative one given here means
		// what it meant to create, from the working directory (it
		// matched nothing, silently).
		if abs, err := filepath.Abs(p); err == nil && !filepath.IsAbs(p) {
			p = abs
		}
		// Clean, as create stores it: "/srv/app/" matched, and the
		// note on filters that match nothing said no snapshot had it
		// (found by an exploratory test).
		paths = append(paths, filepath.Clean(p))
	}
	return snapshot.Filter{Hosts: c.StringSlice("host"), Tags: c.StringSlice("tag"), Paths: paths, Jobs: c.StringSlice("job")}
}

func sinceFlag() cli.Flag {
	return &cli.StringFlag{Name: "since", Usage: "only snapshots taken at or after this time (as --at: \"2026-11-17 03:00\", 7d, \"yesterday 03:00\")"}
}

func untilFlag() cli.Flag {
	return &cli.StringFlag{Name: "until", Usage: "only snapshots taken at or before this time (as --since)"}
}

// sinceUntil narrows f's time bounds to --since and --until. --since takes
// the start of the span it names, --until its end: a date means the whole
// day for both.
func sinceUntil(c *cli.Context, e *env, f *snapshot.Filter) error {
	var from, to time.Time
	if v := c.String("since"); v != "" {
		var err error
		if from, _, err = parseTime(v, e.now()); err != nil {
			return usagef("--since: %v", err)
		}
	}
	if v := c.String("until"); v != "" {
		_, end, err := parseTime(v, e.now())
		if err != nil {
			return usagef("--until: %v", err)
		}
		to = end.Add(time.Nanosecond) // the filter's end is exclusive
		if epoch := time.Unix(0, 0); to.Before(epoch) {
			// No snapshot is older (create refuses such times), and the
			// end of 0000-12-31 is Go's zero time, which means no end:
			// '--until 0000-12-31' selected every snapshot (found by an
			// exploratory test).
			to = epoch
		}
	}
	if !from.IsZero() && !to.IsZero() && !from.Before(to) {
		return usagef("--since %s is after --until %s: no snapshot can be in between", c.String("since"), c.String("until"))
	}
	if !from.IsZero() && (f.From.IsZero() || from.After(f.From)) {
		f.From = from
	}
	if !to.IsZero() && (f.To.IsZero() || to.Before(f.To)) {
		f.To = to
	}
	return nil
}

// parseAt reads a point in time for --at and --until: the last instant of
// the span parseTime reads, so that "--at 03:00" finds the snapshot the
// 03:00 timer took at 03:00:04, and a time copied from 'snap list' (to the
// second) finds the snapshot it names.
func parseAt(s string, now time.Time) (time.Time, error) {
	_, end, err := parseTime(s, now)
	return end, err
}

// parseTime reads a time as --at, --since and --until take it, and returns
// the span it names, both ends included: RFC 3339, "YYYY-MM-DD HH:MM[:SS]"
// in local time, "YYYY-MM-DD", a duration meaning that long ago ("36h",
// "9d"), or a day in words (parseRelativeDay). A date is its whole day, a
// time of day its minute or its second (as precise as it is written), a
// duration or "now" an instant.
func parseTime(s string, now time.Time) (start, end time.Time, err error) {
	// A time copied from list's padded columns may bring spaces along.
	s = strings.TrimSpace(s)
	// A date of the right shape but out of range ("2026-02-30") is told
	// so, not given the list of formats (found by an exploratory test).
	var outOfRange string
	noteRange := func(err error) {
		var pe *time.ParseError
		if errors.As(err, &pe) && strings.Contains(pe.Message, "out of range") && outOfRange == "" {
			outOfRange = strings.TrimPrefix(pe.Message, ": ")
		}
	}
	instant := func(t time.Time) (time.Time, time.Time, error) { return t, t, nil }
	span := func(t time.Time, d time.Duration) (time.Time, time.Time, error) {
		return t, t.Add(d - time.Nanosecond), nil
	}
	t, unit, err := parseRFC3339(s)
	if err == nil {
		if unit == 0 {
			return instant(t)
		}
		return span(t, unit)
	}
	noteRange(err)
	upper := strings.ToUpper(s)
	// A local time may end in its zone's name, as list writes a time in
	// the hour that occurs twice ("2026-10-25 02:30:10 CEST"): the name
	// picks one of the two (copied from list, it was refused).
	clock, zone := upper, ""
	if i := strings.LastIndexByte(upper, ' '); i > 0 && isZoneName(upper[i+1:]) {
		clock, zone = upper[:i], s[i+1:]
	}
	for _, l := range []struct {
		layout string
		unit   time.Duration
	}{{"2006-01-02 15:04:05", time.Second}, {"2006-01-02 15:04", time.Minute}, {"2006-01-02T15:04:05", time.Second}, {"2006-01-02T15:04", time.Minute}} {
		t, err := time.ParseInLocation(l.layout, clock, time.Local)
		if err == nil {
			// The clock as written: parsed without a zone, nothing is
			// skipped.
			w, _ := time.Parse(l.layout, clock)
			start, end := clockSpan(t, w, l.unit)
			if zone != "" {
				return inZone(s, zone, start, end, w, l.unit)
			}
			return start, end, nil
		}
		noteRange(err)
	}
	t, err = time.Parse("2006-01-02", s)
	if err == nil {
		start, end := daySpan(t)
		return start, end, nil
	}
	noteRange(err)
	if outOfRange != "" {
		return time.Time{}, time.Time{}, usagef("time %q: %s", s, outOfRange)
	}
	// A time that long ago is before any snapshot (create refuses times
	// before 1970): "3000y" is refused rather than carried on as a year
	// that RFC 3339 cannot write.
	ago := func(t time.Time) (time.Time, time.Time, error) {
		if t.Before(time.Unix(0, 0)) {
			return time.Time{}, time.Time{}, usagef("time %q is before 1970, older than any snapshot", s)
		}
		return instant(t)
	}
	// Units in capitals ("36H", "2W") are the same units.
	if sp, d, ok, err := parseAgo(strings.ToLower(s)); ok {
		if err != nil {
			return time.Time{}, time.Time{}, err
		}
		if t := sp.Before(now).Add(-d); t.Before(now) {
			return ago(t)
		}
		if s != "" {
			return time.Time{}, time.Time{}, usagef("time %q is no time ago: give a duration such as 36h or 9d, or now", s)
		}
	}
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return ago(now.Add(-d)) // fractions: 1.5h
	}
	if start, end, ok := parseRelativeDay(s, now); ok {
		return start, end, nil
	}
	return time.Time{}, time.Time{}, usagef("time %q: use RFC 3339 (2026-11-17T03:00:00Z, 2026-11-17T03:00:00+02:00), \"2026-11-17 03:00\" (local), a date, "+
		"a duration ago (36h, 9d, 2w), now, or a day such as \"03:00 last tuesday\", \"yesterday 03:00\"", s)
}

// parseRFC3339 reads a time with a UTC offset as create --time, --at,
// --since and --until take it: RFC 3339, with a lower-case t and z, and a
// space for the T (RFC 3339 §5.6 allows it; date --rfc-3339 and
// PostgreSQL write it), or without seconds ("2026-11-03T03:00+01:00").
// unit is what it is precise to: a second, a minute, or 0 with a fraction
// of a second. err is the parser's for RFC 3339 proper, which says what is
// wrong ("day out of range").
func parseRFC3339(s string) (t time.Time, unit time.Duration, err error) {
	// Go's parser takes neither the lower-case letters nor the space
	// (both were refused: found by exploratory tests).
	u := strings.ToUpper(s)
	if len(u) > 10 && u[10] == ' ' {
		u = u[:10] + "T" + u[11:]
	}
	// PostgreSQL writes an offset of whole hours as +HH ("2026-11-17
	// 03:00:00+00", what now() and timestamptz columns print), ISO 8601's
	// basic form is +HHMM: both are the offset +HH:MM (they were refused).
	if i := strings.LastIndexAny(u, "+-"); i > 10 && strings.Trim(u[i+1:], "0123456789") == "" {
		switch off := u[i+1:]; len(off) {
		case 2:
			u += ":00"
		case 4:
			u = u[:i+1] + off[:2] + ":" + off[2:]
		}
	}
	if t, err = time.Parse(time.RFC3339Nano, u); err == nil {
		if strings.Contains(u, ".") {
			return t, 0, nil
		}
		return t, time.Second, nil
	}
	if m, merr := time.Parse("2006-01-02T15:04Z07:00", u); merr == nil {
		return m, time.Minute, nil
	}
	return time.Time{}, 0, err
}

// parseAgo reads a duration meaning that long ago: numbers, each with a
// unit: y (years), mo (months), w, d, h, min, s, as in "36h", "9d",
// "6mo2w", "1h30min". "m" is minutes to Go's durations and months to keep
// policies: after hours it is minutes ("1h30m", as Go writes it), and
// otherwise refused rather than guessed. ok is false when s is not of
// that shape (it may be a date, a day in words). Years to hours are
// calendar lengths (snapshot.Span), minutes and seconds exact.
func parseAgo(s string) (sp snapshot.Span, d time.Duration, ok bool, err error) {
	hours := false
	for rest := s; rest != ""; {
		i := 0
		for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
			i++
		}
		j := i
		for j < len(rest) && rest[j] >= 'a' && rest[j] <= 'z' {
			j++
		}
		if i == 0 || j == i {
			return sp, 0, false, nil
		}
		n, convErr := strconv.Atoi(rest[:i])
		if convErr != nil || n > 100000 {
			return sp, 0, true, usagef("time %q: the number %s is out of range", s, rest[:i])
		}
		switch unit := rest[i:j]; unit {
		case "y":
			sp.Years += n
		case "mo":
			sp.Months += n
		case "w":
			sp.Days += 7 * n
		case "d":
			sp.Days += n
		case "h":
			sp.Hours += n
			hours = true
		case "min":
			d += time.Duration(n) * time.Minute
		case "m":
			if !hours {
				return sp, 0, true, usagef("time %q is ambiguous: write %smin for minutes or %smo for months", s, rest[:i], rest[:i])
			}
			d += time.Duration(n) * time.Minute
		case "s":
			d += time.Duration(n) * time.Second
		default:
			return sp, 0, false, nil
		}
		rest = rest[j:]
	}
	return sp, d, true, nil
}

// isZoneName reports whether s (upper case) looks like a time zone's
// abbreviation as Go formats one: CET, CEST, UTC, and numeric ones such
// as +03 or -0330 where the zone has no name.
func isZoneName(s string) bool {
	if len(s) < 2 || len(s) > 6 {
		return false
	}
	if s[0] == '+' || s[0] == '-' {
		return strings.Trim(s[1:], "0123456789") == ""
	}
	return strings.Trim(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") == ""
}

// inZone narrows the span [start, end] of a local time written with a
// zone's name to the occurrence that has that name: in the hour that
// occurs twice, the earlier or the later one. UTC and GMT mean UTC, as
// RFC 3339's Z does. A name the local zone does not use at that time is
// refused, naming the local zone's.
func inZone(s, zone string, start, end, clock time.Time, unit time.Duration) (time.Time, time.Time, error) {
	z := strings.ToUpper(zone)
	if z == "UTC" || z == "GMT" {
		u := time.Date(clock.Year(), clock.Month(), clock.Day(), clock.Hour(), clock.Minute(), clock.Second(), 0, time.UTC)
		return u, u.Add(unit - time.Nanosecond), nil
	}
	if end.Before(start) {
		// A skipped time: no instant has it, so no zone's name fits it
		// (it was taken as the moment of the jump, whatever the name).
		return time.Time{}, time.Time{}, usagef("time %q never happened in the local time zone%s: the clocks went forward over it; leave out %s to mean the moment they did, or use RFC 3339 with an offset",
			s, localZoneSetting(), zone)
	}
	last := end.Add(-(unit - time.Nanosecond)) // the start of the later occurrence
	var names []string
	for _, t := range []time.Time{start, last} {
		name := t.Format("MST")
		if strings.EqualFold(name, z) {
			return t, t.Add(unit - time.Nanosecond), nil
		}
		if !slices.Contains(names, name) {
			names = append(names, name)
		}
	}
	return time.Time{}, time.Time{}, usagef("time %q: the local time zone%s is %s then, not %s: set TZ to the zone the time was written in, or use RFC 3339 with an offset (2026-10-25T02:30:00+02:00)",
		s, localZoneSetting(), strings.Join(names, " or "), zone)
}

// localZoneSetting names the TZ setting for messages about the local
// zone, " (TZ=Europe/Berlin)", or nothing when TZ is not set.
func localZoneSetting() string {
	if tz := os.Getenv("TZ"); tz != "" {
		return " (TZ=" + tz + ")"
	}
	return ""
}

// parseRelativeDay reads the times an admin says at 3 a.m.: "now", "today",
// "yesterday", a weekday ("tuesday", "last tuesday"), each optionally with a
// clock time (HH:MM or HH:MM:SS, before or after), or a clock time alone
// (today's), and returns the span it names as parseTime does: a day
// without a time is the whole day, a time its minute or second. "last
// tuesday" is the Tuesday before today; "tuesday" is today when today is
// one, and the Tuesday before otherwise: restores look back, never ahead.
func parseRelativeDay(s string, now time.Time) (start, end time.Time, ok bool) {
	words := strings.Fields(strings.ToLower(s))
	if len(words) == 1 && words[0] == "now" {
		return now, now, true
	}
	var clock *time.Time
	unit := time.Minute // of the clock time
	var day []string
	for _, w := range words {
		if c, err := time.Parse("15:04", w); err == nil && clock == nil {
			clock = &c
			continue
		}
		if c, err := time.Parse("15:04:05", w); err == nil && clock == nil {
			clock, unit = &c, time.Second
			continue
		}
		day = append(day, w)
	}
	now = now.Local()
	// Days are dates (UTC midnights, where every day has 24 hours); their
	// instants come from daySpan and time.Date.
	today := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
	var d time.Time
	stepBack := 0 // days to go back when the clock time is still to come today
	switch {
	case len(day) == 0 && clock != nil:
		d, stepBack = today, 1
	case len(day) == 1 && day[0] == "today":
		d = today
	case len(day) == 1 && day[0] == "yesterday":
		d = today.AddDate(0, 0, -1)
	default:
		last := len(day) == 2 && day[0] == "last"
		if last {
			day = day[1:]
		}
		if len(day) != 1 {
			return time.Time{}, time.Time{}, false
		}
		wd, ok := weekdays[strings.TrimSuffix(day[0], ",")]
		if !ok {
			return time.Time{}, time.Time{}, false
		}
		back := (int(today.Weekday()) - int(wd) + 7) % 7
		if back == 0 && last {
			back = 7
		}
		d, stepBack = today.AddDate(0, 0, -back), 7
	}
	if clock == nil {
		start, end = daySpan(d)
		return start, end, true
	}
	span := func(d time.Time) (start, end time.Time) {
		t := time.Date(d.Year(), d.Month(), d.Day(), clock.Hour(), clock.Minute(), clock.Second(), 0, time.Local)
		want := time.Date(d.Year(), d.Month(), d.Day(), clock.Hour(), clock.Minute(), clock.Second(), 0, time.UTC)
		return clockSpan(t, want, unit)
	}
	start, end = span(d)
	// Restores look back: "23:00" at ten in the morning is last night's,
	// "tuesday 23:00" on a Tuesday morning last week's. A clock time is
	// still to come only when its first instant is: in the hour that
	// repeats as the clocks go back, Go's time for it may be the second
	// one, and a time that had passed an hour ago was taken for
	// yesterday's (found by an exploratory test).
	if start.After(now) {
		start, end = span(d.AddDate(0, 0, -stepBack))
	}
	if end.After(now) && stepBack > 0 {
		// Typed between its two occurrences, a clock time of the
		// repeated hour means the one that has passed: the span to the
		// second found snapshots taken since (found by a re-test).
		end = start.Add(unit - time.Nanosecond)
	}
	return start, end, true
}

// daySpan is the span of the local day of date (a date in UTC, whose
// clock is ignored): from its first instant to the last before the next
// day's (snapshot.DayStart: not always midnight, not always 24 hours).
func daySpan(date time.Time) (start, end time.Time) {
	next := date.AddDate(0, 0, 1)
	start = snapshot.DayStart(date.Year(), date.Month(), date.Day(), time.Local)
	end = snapshot.DayStart(next.Year(), next.Month(), next.Day(), time.Local).Add(-time.Nanosecond)
	return start, end
}

// clockSpan is the span, unit long, of the local time t that time.Date or
// ParseInLocation made of the wall clock want (its date and clock, in
// UTC). When t shows another wall clock, that time was skipped (the
// clocks went forward over it, or over the whole day: Samoa's 2011-12-30,
// which a comparison of clocks alone took for a time that existed) and Go
// moved it across the jump: skippedWallTime. Otherwise wallSpan.
func clockSpan(t, want time.Time, unit time.Duration) (start, end time.Time) {
	y, m, d := t.Date()
	hh, mm, ss := t.Clock()
	got := time.Date(y, m, d, hh, mm, ss, 0, time.UTC)
	if got.Equal(want) {
		return wallSpan(t, unit)
	}
	return skippedWallTime(t, got.After(want))
}

// wallSpan is the span of the local time t, unit long. A wall time that
// occurs twice, on the night the clocks go back, spans from its first
// occurrence to the end of its second (Go's parsing picks either): --at
// finds the snapshot taken at the later one, --since starts at the
// earlier, whichever the admin meant.
func wallSpan(t time.Time, unit time.Duration) (start, end time.Time) {
	start, last := t, t
	_, offset := t.Zone()
	zoneStart, zoneEnd := t.ZoneBounds()
	if !zoneStart.IsZero() {
		_, before := zoneStart.Add(-time.Nanosecond).Zone()
		if back := time.Duration(before-offset) * time.Second; back > 0 && t.Sub(zoneStart) < back {
			start = t.Add(-back) // the same wall time before the clocks went back
		}
	}
	if !zoneEnd.IsZero() {
		_, after := zoneEnd.Zone()
		if back := time.Duration(offset-after) * time.Second; back > 0 && zoneEnd.Sub(t) <= back {
			last = t.Add(back) // the same wall time after they go back
		}
	}
	return start, last.Add(unit - time.Nanosecond)
}

// skippedWallTime is the span of a local time that does not exist, one
// the clocks skipped when they went forward ("02:30" on the night summer
// time starts), which Go has moved across the jump, to a later wall time
// (later) or an earlier one: no instant has it, so the span is empty, at
// the moment of the jump. --at (its end) then finds the newest snapshot
// taken before the jump, --since (its start) the first one after.
func skippedWallTime(t time.Time, later bool) (start, end time.Time) {
	zoneStart, zoneEnd := t.ZoneBounds()
	jump := zoneEnd
	if later {
		jump = zoneStart
	}
	return jump, jump.Add(-time.Nanosecond)
}

var weekdays = map[string]time.Weekday{
	"sunday": time.Sunday, "monday": time.Monday, "tuesday": time.Tuesday, "wednesday": time.Wednesday,
	"thursday": time.Thursday, "friday": time.Friday, "saturday": time.Saturday,
	"sun": time.Sunday, "mon": time.Monday, "tue": time.Tuesday, "wed": time.Wednesday,
	"thu": time.Thursday, "fri": time.Friday, "sat": time.Saturday,
}

// checkSnapshotRef refuses, as a mistake on the command line (exit 2), a
// reference that cannot name a snapshot: neither 'latest' nor hex.
func checkSnapshotRef(ref string) error {
	if l := strings.ToLower(ref); ref != "latest" && (l == "" || strings.Trim(l, "0123456789abcdef") != "") {
		return usagef("snapshot %q: expected an ID, an ID prefix or 'latest'", ref)
	}
	return nil
}

// splitSnapshotArg splits "ID:SUBPATH".
func splitSnapshotArg(s string) (ref, sub string) {
	if i := strings.IndexByte(s, ':'); i >= 0 {
		return s[:i], s[i+1:]
	}
	return s, ""
}

// atFlag is --at of the commands that read one snapshot.
func atFlag() cli.Flag {
	return &cli.StringFlag{Name: "at", Usage: "the newest snapshot taken at or before `TIME` (instead of SNAPSHOT): \"2026-11-17 03:00\", \"03:00 last tuesday\", 36h, 9d …"}
}

// snapshotArgs splits a command's arguments into the snapshot reference
// and the rest: without --at the first argument is SNAPSHOT; with --at
// there is none, and the reference is "@" and the time (see findSnapshot).
func snapshotArgs(c *cli.Context, e *env) (ref string, rest []string, err error) {
	args := c.Args().Slice()
	at := c.String("at")
	if at == "" {
		if len(args) == 0 {
			return "", nil, usagef("give SNAPSHOT (an ID, an ID prefix or 'latest'), or --at TIME")
		}
		return args[0], args[1:], nil
	}
	if len(args) > 0 && (args[0] == "latest" || len(args[0]) >= 8 && checkSnapshotRef(args[0]) == nil) {
		// 'ls latest --at 1h' took "latest" for a path in the snapshot
		// that --at chose. A short word of hex digits ("2024", "cafe")
		// is as likely a path, and stays one.
		return "", nil, usagef("give SNAPSHOT (%s) or --at, not both (a path of that name: write /%s)", args[0], args[0])
	}
	when, err := parseAt(at, e.now())
	if err != nil {
		return "", nil, usagef("--at: %v", err)
	}
	return "@" + when.Format(time.RFC3339Nano), args, nil
}

// findSnapshot resolves a snapshot argument under the filters: an ID, an
// ID prefix, 'latest', or "@" and an RFC 3339 time (snapshotArgs), the
// newest snapshot taken at or before it, preferring one that holds the
// first of subs (findAt).
func (s *session) findSnapshot(c *cli.Context, ref string, subs ...string) (*snapshot.Snapshot, error) {
	if t, ok := strings.CutPrefix(ref, "@"); ok {
		when, err := time.Parse(time.RFC3339Nano, t)
		if err != nil {
			return nil, usagef("snapshot %q: expected an ID, an ID prefix or 'latest'", ref)
		}
		sns, err := s.snapshots(c.Context)
		if err != nil {
			return nil, err
		}
		return s.findAt(c, sns, when, subs...)
	}
	if err := checkSnapshotRef(ref); err != nil {
		return nil, err
	}
	sns, err := s.snapshots(c.Context)
	if err != nil {
		return nil, err
	}
	if ref == "latest" {
		if sn, ok := s.latestHolding(c, sns, subs); ok {
			return sn, nil
		}
	}
	return s.find(c, sns, ref)
}

// latestHolding chooses 'latest' for a path in the snapshot, as findAt
// chooses for --at: when the newest snapshot under the filters does not
// hold subs[0] (another job's, taken later), the newest that does (ls,
// dump and restore said "does not exist" of a path the job before had
// saved; found by an exploratory test). Further subs are tried in turn,
// as findAt does. ok is false when there is nothing to narrow: the
// newest holds the path, or none does (find then says so).
func (s *session) latestHolding(c *cli.Context, sns []*snapshot.Snapshot, subs []string) (*snapshot.Snapshot, bool) {
	f := filterFrom(c)
	newest, err := snapshot.Find(sns, "latest", f)
	if err != nil || len(subs) == 0 || holdsPath(newest, subs[0]) {
		return nil, false
	}
	for _, sub := range subs {
		sn, err := snapshot.Find(holdingPath(sns, sub), "latest", f)
		if err != nil {
			continue
		}
		s.warnChosenAmongReadable(sn, "latest")
		s.ui.choicef("latest: %s (the newest whose paths include %s; the newest of all, %s, does not)%s",
			describeSnapshot(sn), sources.DisplayPath(sub), newest.ID.Short(), otherSets(f.Apply(sns), sn))
		return sn, true
	}
	return nil, false
}

// unmatchedFilter names what of the filter no snapshot of sns has at all
// (a host, a tag, a path mistyped), with the hosts there are, for a
// listing or a choice that came out empty: "no snapshot … with these
// filters" did not say which filter (found by an exploratory test).
func unmatchedFilter(sns []*snapshot.Snapshot, f snapshot.Filter) string {
	has := func(match func(*snapshot.Snapshot) bool) bool {
		return slices.ContainsFunc(sns, match)
	}
	hosts := hostsOf(sns)
	var notes []string
	present := "the repository has no snapshots"
	if len(hosts) > 0 {
		present = "hosts: " + strings.Join(hosts, ", ")
	}
	for _, h := range f.Hosts {
		if !slices.Contains(hosts, h) {
			notes = append(notes, fmt.Sprintf("no snapshot has host %q (%s)", h, present))
		}
	}
	for _, t := range f.Tags {
		if t != "" && !has(func(sn *snapshot.Snapshot) bool { return snapshot.Filter{Tags: []string{t}}.Match(sn) }) {
			if all := strings.Split(t, ","); len(all) > 1 {
				// "a,b" asks for both: each may exist, on different
				// snapshots ("no snapshot has tag "a,b"" then listed
				// both as present; found by an exploratory test).
				notes = append(notes, fmt.Sprintf("no snapshot has all the tags %s (%s)", strings.Join(all, " and "), tagsPresent(sns)))
				continue
			}
			notes = append(notes, fmt.Sprintf("no snapshot has tag %q (%s)", t, tagsPresent(sns)))
		}
	}
	for _, p := range f.Paths {
		if !has(func(sn *snapshot.Snapshot) bool { return snapshot.Filter{Paths: []string{p}}.Match(sn) }) {
			notes = append(notes, fmt.Sprintf("no snapshot has path %q", p))
		}
	}
	for _, j := range f.Jobs {
		if !has(func(sn *snapshot.Snapshot) bool { return sn.Job == j }) {
			notes = append(notes, fmt.Sprintf("no snapshot was taken by job %q (%s)", j, jobsPresent(sns)))
		}
	}
	return strings.Join(notes, "; ")
}

// applyFilter returns the snapshots of sns that f selects and, when it
// selects none, a note: unmatchedFilter's on what of f no snapshot has,
// or that no snapshot matches all of f together ("" when f is empty).
func applyFilter(sns []*snapshot.Snapshot, f snapshot.Filter) (selected []*snapshot.Snapshot, note string) {
	if selected = f.Apply(sns); len(selected) == 0 {
		note = unmatchedFilter(sns, f)
		if note == "" && f.Selects() {
			// Each filter matches some snapshot, none all of them:
			// stats said "no matching snapshot: " and list, find and
			// forget nothing (found by an exploratory test).
			note = "no snapshot matches all the filters together"
		}
	}
	return selected, note
}

// heldElsewhere says that the filters select none of held, the snapshots
// that hold what (a dump, by the name given), and names their hosts.
func heldElsewhere(what string, held []*snapshot.Snapshot) string {
	return fmt.Sprintf("no snapshot the filters select holds %s (snapshots of %s do)", what, strings.Join(hostsOf(held), ", "))
}

// withUnmatched adds unmatchedFilter's note to err, when it has one.
func withUnmatched(err error, sns []*snapshot.Snapshot, f snapshot.Filter) error {
	if note := unmatchedFilter(sns, f); note != "" && errors.Is(err, snapshot.ErrNoSnapshot) {
		return fmt.Errorf("%w; %s", err, note)
	}
	return err
}

// find is snapshot.Find under the command's filters, and findAt
// snapshot.FindAt: when some snapshots cannot be read, each says which one
// 'latest' or --at chose (warnChosenAmongReadable).
func (s *session) find(c *cli.Context, sns []*snapshot.Snapshot, ref string) (*snapshot.Snapshot, error) {
	f := filterFrom(c)
	sn, err := snapshot.Find(sns, ref, f)
	err = withUnmatched(err, sns, f)
	if errors.Is(err, snapshot.ErrNoSnapshot) && ref != "latest" {
		// The snapshot may exist but be unreadable: say so, not "no
		// snapshot" (diff and copy said that; found by an exploratory
		// test).
		for _, lerr := range s.unreadable {
			if strings.HasPrefix(unreadableObject(lerr), "snapshots/"+strings.ToLower(ref)) {
				return nil, lerr
			}
		}
		return nil, storedAnew(sns, ref, err)
	}
	if err == nil && ref != "latest" && f.Selects() && !f.Match(sn) {
		// A snapshot named by its ID is taken whatever the filters say
		// (forget refuses the mix): tag, stats, copy and diff did so
		// without a word (found by an exploratory test).
		s.ui.warnf("snapshot %s (host %s) does not pass the filters given (--host, --tag, --path, --job), which choose only among the snapshots not named by ID; taken as named", sn.ID.Short(), sn.Host)
	}
	if err == nil && ref == "latest" {
		s.warnChosenAmongReadable(sn, "latest")
		if others := otherSets(f.Apply(sns), sn); others != "" {
			// The newest of every job's snapshots may be another job's
			// (a path then "does not exist"): say which it is.
			s.ui.choicef("latest: %s%s", describeSnapshot(sn), others)
		}
	}
	return sn, err
}

// storedAnew is err, "no snapshot" for the ID ref, with the snapshot that
// holds its data now when it was stored anew under another ID ('snap
// tag', 'snap copy'), which records the first ID as its Original.
func storedAnew(sns []*snapshot.Snapshot, ref string, err error) error {
	if !errors.Is(err, snapshot.ErrNoSnapshot) || ref == "latest" {
		return err
	}
	for _, o := range sns {
		if o.Original != nil && strings.HasPrefix(o.Original.String(), strings.ToLower(ref)) {
			return fmt.Errorf("%w; snapshot %s holds its data now (stored anew by 'snap tag' or 'snap copy', which give a new ID)", err, o.ID.Short())
		}
	}
	return err
}

// named returns the snapshots of sns that refs name (IDs, prefixes,
// 'latest' under the filters), in the order of sns.
func (s *session) named(c *cli.Context, sns []*snapshot.Snapshot, refs []string) ([]*snapshot.Snapshot, error) {
	chosen := map[*snapshot.Snapshot]bool{}
	for _, ref := range refs {
		sn, err := s.find(c, sns, ref)
		if err != nil {
			return nil, err
		}
		chosen[sn] = true
	}
	return slices.DeleteFunc(slices.Clone(sns), func(sn *snapshot.Snapshot) bool { return !chosen[sn] }), nil
}

// otherSets is a note for a snapshot chosen for the user ('latest',
// --at) when other hosts or sets of paths have snapshots under the
// filters too ("the state at 03:00" of one host is not another's, and
// nothing else would tell), else "".
func otherSets(sns []*snapshot.Snapshot, sn *snapshot.Snapshot) string {
	for _, o := range sns {
		if !sameSet(o, sn) {
			return "; other hosts or paths have snapshots too: --host and --path choose among them"
		}
	}
	return ""
}

// sameSet reports whether a and b are snapshots of the same host and the
// same paths (dumps included): of one job, as far as they tell.
func sameSet(a, b *snapshot.Snapshot) bool {
	return a.Host == b.Host && snapshot.SameContent(a, b)
}

// findAt is snapshot.FindAt under the command's filters. Given the path
// in the snapshot that the command is about (subs[0], absolute; "" or "/"
// for all of it), it chooses among the snapshots that hold that path, when
// any taken by then does: on a host with two jobs at 03:00, the state of
// /srv/app/config at 03:00 is in the app's snapshot, not in the one the
// other job took seconds later (found by an exploratory test, which got
// "path does not exist in the snapshot"). Further subs are paths the user
// may have meant instead (a relative path taken from the working
// directory), tried in order when no snapshot by then holds the first.
// When only later snapshots hold the path, the error names the first of
// them: the one taken by then would not hold it either.
func (s *session) findAt(c *cli.Context, sns []*snapshot.Snapshot, when time.Time, subs ...string) (*snapshot.Snapshot, error) {
	f := filterFrom(c)
	sn, err := snapshot.FindAt(sns, when, f)
	if err != nil {
		return nil, withUnmatched(laterHint(err, f, f.Apply(sns), subs), sns, f)
	}
	holding := ""
	if len(subs) > 0 && !holdsPath(sn, subs[0]) {
		found := false
		for _, sub := range subs {
			if h, err := snapshot.FindAt(holdingPath(sns, sub), when, f); err == nil {
				sn, holding, found = h, " (the newest whose paths include "+sub+")", true
				break
			}
		}
		// Later snapshots are looked at only when none by then holds any.
		for _, sub := range subs {
			if found {
				break
			}
			if later := f.Apply(holdingPath(sns, sub)); len(later) > 0 {
				return nil, fmt.Errorf("%w: --at %s: no snapshot taken by then holds %s (the one of then, %s, holds %s); the first that does is snapshot %s of %s",
					snapshot.ErrNoSnapshot, c.String("at"), sources.DisplayPath(sub), sn.ID.Short(),
					strings.Join(snapshot.SnapshotPaths(sn), " "), later[0].ID.Short(), localTime(later[0].Time))
			}
		}
	}
	s.warnChosenAmongReadable(sn, "--at "+c.String("at"))
	// The snapshot is one the user did not name: say which, and whether
	// another host or set of paths was passed over.
	passed := f.Apply(sns)
	others, soon := otherSets(passed, sn), takenSoonAfter(passed, sn, c.String("at"), when)
	say := s.ui.noticef
	if others != "" || soon != "" {
		// It may not be the one meant: a script choosing by time needs
		// to know as much as a person (a JSON notice, as for latest).
		say = s.ui.choicef
	}
	say("--at %s: %s%s%s%s", c.String("at"), describeSnapshot(sn), holding, others, soon)
	return sn, nil
}

// takenSoonAfter is a note for --at when the next snapshot of sn's host
// and paths was taken within half an hour after the time asked: a timer
// set for 03:00 starts up to random_delay later, and "--at 03:00" then
// chose the night before, with nothing to say so (found by an
// exploratory test). "" otherwise.
func takenSoonAfter(sns []*snapshot.Snapshot, sn *snapshot.Snapshot, at string, when time.Time) string {
	for _, o := range sns {
		if !o.Time.After(when) || !sameSet(o, sn) {
			continue
		}
		if o.Time.Sub(when) > 30*time.Minute {
			return ""
		}
		// when is the span's end ("03:00" is the whole minute, up to
		// 03:00:59.999999999): the gap is told from its start, as the
		// admin wrote it ("14s after" 03:00 for 03:01:14 misled; found
		// by an exploratory test).
		from := spanStart(at, when)
		after := o.Time.Sub(from).Round(time.Second).String() + " after that time (a timer's random delay?)"
		if o.Time.Sub(when) < time.Second {
			// "0s after": the first instant past the time asked (the
			// next minute, or the jump past a skipped time).
			after = "right after that time"
		}
		return fmt.Sprintf("; snapshot %s of %s was taken %s: give its ID, or --at %s, for it",
			o.ID.Short(), localTime(o.Time), after, localTime(o.Time))
	}
	return ""
}

// spanStart is the start of the span --at at names, whose end is when: a
// time written to the second is that second, one written to the minute
// that minute (parseTime); a date, an instant or anything else is told
// from when itself.
//
// A time the clocks skipped spans nothing: its end is the instant before
// the jump, whose wall clock is not the one written ("02:30" ends at
// 01:59:59.999 CET), and the gap is told from the jump (it was told from
// a minute before it; found by an exploratory test).
func spanStart(at string, when time.Time) time.Time {
	m := clockWritten.FindStringSubmatch(at)
	if when.Nanosecond() != 999_999_999 || m == nil {
		return when
	}
	unit := time.Minute
	if toSecond.MatchString(at) {
		unit = time.Second
	}
	_, before := when.Zone()
	_, after := when.Add(time.Nanosecond).Zone()
	hh, mm, _ := when.Clock()
	if after > before && (m[1] != strconv.Itoa(hh) || m[2] != fmt.Sprintf("%02d", mm)) {
		return when.Add(time.Nanosecond)
	}
	return when.Add(-unit + time.Nanosecond)
}

var (
	toSecond = regexp.MustCompile(`\d:\d\d:\d\d`)
	// clockWritten is the hour (without a leading zero) and minute of a
	// time of day as written.
	clockWritten = regexp.MustCompile(`0?(\d{1,2}):(\d\d)`)
)

// laterHint adds to the error of a time before every snapshot under the
// filters which snapshot is the first after it (that holds subs[0], when
// one does): the admin's next try (found by an exploratory test).
func laterHint(err error, f snapshot.Filter, later []*snapshot.Snapshot, subs []string) error {
	filters := ""
	if f.Selects() {
		filters = " with these filters"
	}
	if len(subs) > 0 && subs[0] != "" && subs[0] != "/" {
		if holding := holdingPath(later, subs[0]); len(holding) > 0 {
			return fmt.Errorf("%w%s; the first that holds %s is snapshot %s of %s", err, filters, sources.DisplayPath(subs[0]), holding[0].ID.Short(), localTime(holding[0].Time))
		}
	}
	if len(later) > 0 {
		return fmt.Errorf("%w%s; the first is snapshot %s of %s", err, filters, later[0].ID.Short(), localTime(later[0].Time))
	}
	return fmt.Errorf("%w%s", err, filters)
}

// holdsPath reports whether sn's backed-up paths hold sub, a cleaned
// absolute path in the snapshot: sub is one of them, below one, or leads
// to one. Every snapshot holds "" and "/".
func holdsPath(sn *snapshot.Snapshot, sub string) bool {
	if sub == "" || sub == "/" {
		return true
	}
	return slices.ContainsFunc(snapshot.SnapshotPaths(sn), func(p string) bool { return pathsOverlap(p, sub) })
}

// pathsOverlap reports whether absolute paths a and b are one path, or one
// lies below the other ("/" holds every path).
func pathsOverlap(a, b string) bool {
	below := func(x, y string) bool { return x == y || strings.HasPrefix(x, strings.TrimSuffix(y, "/")+"/") }
	return below(a, b) || below(b, a)
}

// holdingPath returns the snapshots of sns that hold sub (holdsPath).
func holdingPath(sns []*snapshot.Snapshot, sub string) []*snapshot.Snapshot {
	var out []*snapshot.Snapshot
	for _, sn := range sns {
		if holdsPath(sn, sub) {
			out = append(out, sn)
		}
	}
	return out
}

// describeSnapshot names a snapshot that was chosen for the user: its ID,
// time, host and paths.
func describeSnapshot(sn *snapshot.Snapshot) string {
	return fmt.Sprintf("snapshot %s of %s, host %s, %s", sn.ID.Short(), localTime(sn.Time), sn.Host, strings.Join(snapshot.SnapshotPaths(sn), " "))
}

// unreadableObject names the snapshot document an error of the listing is
// about ("snapshots/<id>"), or "".
func unreadableObject(err error) string {
	var ce *repo.CorruptError
	var le *snapshot.LoadError
	switch {
	case errors.As(err, &ce):
		return ce.Object
	case errors.As(err, &le):
		return "snapshots/" + le.ID.String()
	}
	return ""
}

// warnChosenAmongReadable says which snapshot 'latest' or --at chose when
// some could not be read: the newest may be among those, and a restore
// from an older one must not look like the one that was asked for.
func (s *session) warnChosenAmongReadable(sn *snapshot.Snapshot, asked string) {
	if n := len(s.unreadable); n > 0 {
		s.ui.warnf("%s is snapshot %s of %s, chosen among the readable snapshots: %s cannot be read (above), and may be newer",
			asked, sn.ID.Short(), localTime(sn.Time), plural(n, "snapshot", "snapshots"))
	}
}

// findPath resolves a snapshot argument and the node at path p inside it
// (p is cleaned and made absolute), as ls and dump need.
func (s *session) findPath(c *cli.Context, ref, p string) (*snapshot.Snapshot, string, snapshot.Node, error) {
	given := p
	p = path.Clean("/" + p)
	sn, err := s.findSnapshot(c, ref, atPaths(given)...)
	if err != nil {
		return nil, "", snapshot.Node{}, err
	}
	node, err := snapshot.FindNode(c.Context, s.ix, sn.Tree, p)
	if err != nil {
		err = s.pathError(c, sn, given, strings.HasPrefix(ref, "@"), err)
	}
	if err == nil && strings.HasSuffix(given, "/") && node.Type != sources.TypeDir {
		// "f/" names a directory, as to the shell and the kernel: dump
		// wrote the file (found by an exploratory test).
		err = fmt.Errorf("%s is a %s, not a directory (the path ends in /): leave out the /", sources.DisplayPath(strings.TrimSuffix(given, "/")), node.Type)
	}
	return sn, p, node, err
}

// pathError is the error of finding the path given in sn: it names the
// snapshot, the path the user likely meant (relativeHint), and, when --at
// chose sn, the first later snapshot that holds the path (a directory
// made after that time said only "does not exist"; found by a re-test).
func (s *session) pathError(c *cli.Context, sn *snapshot.Snapshot, given string, at bool, err error) error {
	err, meantIsIn := s.relativeHint(c.Context, sn, given, err)
	// The path from the working directory is in sn: that is the answer,
	// not the snapshots before or after sn that hold it (which named sn
	// itself as the newest before it; found by an exploratory test).
	if !at || meantIsIn || !errors.Is(err, snapshot.ErrNoPath) {
		return inSnapshot(sn, err)
	}
	sns, lerr := s.snapshots(c.Context)
	if lerr != nil {
		return inSnapshot(sn, err)
	}
	// The path from /, then, for a relative one, from the working
	// directory, as --at chose the snapshot (atPaths): a relative path
	// deleted since had no hint (found by a re-test).
	finder := snapshot.NewNodeFinder(s.ix) // snapshots share most trees
	for _, p := range atPaths(given) {
		hints := holderHints(c, finder, sns, sn, p)
		if len(hints) == 0 {
			continue
		}
		meant := ""
		if p != path.Clean("/"+given) {
			meant = fmt.Sprintf("%s from this directory is %s: ", sources.DisplayPath(given), sources.DisplayPath(p))
		}
		return inSnapshot(sn, fmt.Errorf("%w; %s%s", err, meant, strings.Join(hints, "; ")))
	}
	return inSnapshot(sn, err)
}

// holderHints names, for a path that sn (chosen by --at) does not hold,
// the newest earlier snapshot that holds it (a file deleted before then:
// its last state) and the first later one (a file made since), among the
// snapshots the filters select. A hint is not worth reading every
// snapshot's trees: 100 of each side at most.
func holderHints(c *cli.Context, finder *snapshot.NodeFinder, sns []*snapshot.Snapshot, sn *snapshot.Snapshot, p string) []string {
	holder := func(sns []*snapshot.Snapshot) *snapshot.Snapshot {
		checked := 0
		for _, o := range sns {
			// By ID: sns is a listing of its own, whose documents
			// are not sn's.
			if o.ID == sn.ID || !holdsPath(o, p) {
				continue
			}
			if checked++; checked > 100 {
				break
			}
			if _, ferr := finder.Find(c.Context, o.Tree, p); ferr == nil {
				return o
			}
		}
		return nil
	}
	var earlier, later []*snapshot.Snapshot
	for _, o := range filterFrom(c).Apply(sns) { // oldest first
		if o.Time.After(sn.Time) {
			later = append(later, o)
		} else {
			earlier = append(earlier, o)
		}
	}
	slices.Reverse(earlier)
	var hints []string
	if o := holder(earlier); o != nil {
		hints = append(hints, fmt.Sprintf("the newest snapshot before it that holds it is %s of %s", o.ID.Short(), localTime(o.Time)))
	}
	if o := holder(later); o != nil {
		hints = append(hints, fmt.Sprintf("the first snapshot after it that holds it is %s of %s", o.ID.Short(), localTime(o.Time)))
	}
	return hints
}

// atPaths is what --at prefers a snapshot to hold for a path the user
// gave (findAt): the path from /, then, for a relative one, the path from
// the working directory that relativeHint would suggest.
func atPaths(given string) []string {
	subs := []string{path.Clean("/" + given)}
	if wd, err := os.Getwd(); err == nil && given != "" && !strings.HasPrefix(given, "/") {
		subs = append(subs, path.Join(wd, given))
	}
	return subs
}

// relativeHint adds to err, an error of finding the path given in sn, the
// path the user likely meant: paths in a snapshot start at /, so a
// relative one (src/data/x) is taken from there, while --path takes it from
// the working directory (found by an exploratory test). Said only when
// that path is in the snapshot, which isIn reports.
func (s *session) relativeHint(ctx context.Context, sn *snapshot.Snapshot, given string, err error) (_ error, isIn bool) {
	if given == "" || strings.HasPrefix(given, "/") {
		return err, false
	}
	wd, werr := os.Getwd()
	if werr != nil {
		return err, false
	}
	abs := path.Join(wd, given)
	if _, ferr := snapshot.FindNode(ctx, s.ix, sn.Tree, abs); ferr != nil {
		return err, false
	}
	return fmt.Errorf("%w; paths in a snapshot start at /, and %s from this directory is %s, which is in it", err, sources.DisplayPath(given), sources.DisplayPath(abs)), true
}

// inSnapshot names the snapshot a path was looked for in: 'latest' and
// --at choose one the user did not name, and its host and paths may be
// why the path is not there.
func inSnapshot(sn *snapshot.Snapshot, err error) error {
	return fmt.Errorf("%s: %w", describeSnapshot(sn), err)
}
