package main

import (
	"testing"
	"time"
)

// TestParseAt covers the forms of --at, the relative ones against a fixed
// now: Thursday 2026-12-03 10:30 local time.
func TestParseAt(t *testing.T) {
	now := time.Date(2026, 12, 3, 10, 30, 0, 0, time.Local)
	local := func(d, h, m int) time.Time { return time.Date(2026, 12, d, h, m, 0, 0, time.Local) }
	endOf := func(d int) time.Time { return local(d+1, 0, 0).Add(-time.Nanosecond) }
	for in, want := range map[string]time.Time{
		"2026-11-17T03:00:00Z":  time.Date(2026, 11, 17, 3, 0, 0, 0, time.UTC),
		"2026-12-01 03:00":      local(1, 3, 0),
		"2026-12-01":            endOf(1),
		"36h":                   now.Add(-36 * time.Hour),
		"9d":                    now.AddDate(0, 0, -9),
		"2w":                    now.AddDate(0, 0, -14),
		"now":                   now,
		"03:00":                 local(3, 3, 0),
		"yesterday":             endOf(2),
		"yesterday 03:00":       local(2, 3, 0),
		"03:00 yesterday":       local(2, 3, 0),
		"today 03:00":           local(3, 3, 0),
		"03:00 last Tuesday":    local(1, 3, 0),
		"last tuesday 03:00":    local(1, 3, 0),
		"tue 03:00":             local(1, 3, 0),
		"thursday 03:00":        local(3, 3, 0),
		"last thursday 03:00":   time.Date(2026, 11, 26, 3, 0, 0, 0, time.Local),
		"Friday":                time.Date(2026, 11, 28, 0, 0, 0, 0, time.Local).Add(-time.Nanosecond),
		"02:15:30 last tuesday": time.Date(2026, 12, 1, 2, 15, 30, 0, time.Local),
		"23:00":                 local(2, 23, 0),                                  // still to come today: last night
		"thursday 23:00":        time.Date(2026, 11, 26, 23, 0, 0, 0, time.Local), // and last week's Thursday
		"30min":                 now.Add(-30 * time.Minute),
		"6mo":                   now.AddDate(0, -6, 0),
		"1h30m":                 now.Add(-90 * time.Minute),
	} {
		got, err := parseAt(in, now)
		if err != nil || !got.Equal(want) {
			t.Errorf("parseAt(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "tomorrow", "last", "03:00 04:00 tuesday", "next tuesday", "25:00", "0d", "6m", "1d12h30m", "100001mo", "0mo"} {
		if got, err := parseAt(in, now); err == nil {
			t.Errorf("parseAt(%q) = %v, want an error", in, got)
		}
	}
}

// TestDisplayPath: a name with a newline or an escape prints as one quoted
// line; other names, UTF-8 or not, print as they are.
func TestDisplayPath(t *testing.T) {
	for in, want := range map[string]string{
		"/srv/a b":            "/srv/a b",
		"/srv/caf\xe9":        "/srv/caf\xe9",
		"/srv/x\n/etc/shadow": `"/srv/x\n/etc/shadow"`,
		"/srv/\x1b[2Jcleared": `"/srv/\x1b[2Jcleared"`,
		"/srv/日本語-😀.txt":      "/srv/日本語-😀.txt",
	} {
		if got := displayPath(in); got != want {
			t.Errorf("displayPath(%q) = %q, want %q", in, got, want)
		}
	}
}
