package sources

import (
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"golang.org/x/sys/unix"
)

// TestLstatInPrev: the attributes of an entry whose type, inode and ctime
// match prev are prev's, not read again (prev here holds attributes the
// file does not have, to tell the two apart); any of the three differing
// makes them read from the file.
func TestLstatInPrev(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := unix.Setxattr(p, "user.real", []byte("1"), 0); err != nil {
		t.Skipf("no user xattrs here: %v", err)
	}
	r := NewReader()
	now, err := r.Lstat(p, "f")
	if err != nil {
		t.Fatal(err)
	}
	real := []Xattr{{Name: "user.real", Value: []byte("1")}}
	if !slices.EqualFunc(now.Xattrs, real, xattrEqual) {
		t.Fatalf("Lstat: %v", now.Xattrs)
	}
	l, err := NewBeneath().OpenListing(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	kept := []Xattr{{Name: "user.kept", Value: []byte("2")}}
	for _, c := range []struct {
		name  string
		prev  func(Meta) Meta
		reuse bool
	}{
		{"same inode and ctime", func(m Meta) Meta { return m }, true},
		{"other ctime", func(m Meta) Meta { m.CTime++; return m }, false},
		{"other inode", func(m Meta) Meta { m.Inode++; return m }, false},
		{"other type", func(m Meta) Meta { m.Type = TypeDir; return m }, false},
	} {
		prev := c.prev(now)
		prev.Xattrs = kept
		got, err := r.LstatIn(l, "f", &prev)
		if err != nil {
			t.Fatal(err)
		}
		want := real
		if c.reuse {
			want = kept
		}
		if !slices.EqualFunc(got.Xattrs, want, xattrEqual) {
			t.Errorf("%s: attributes %v, want %v", c.name, got.Xattrs, want)
		}
	}
}

func xattrEqual(a, b Xattr) bool { return a.Name == b.Name && string(a.Value) == string(b.Value) }

// TestNanosClamped: a file time past 2262 (ext4 allows up to 2446) or
// before 1677 is recorded as the nearest end of what Unix nanoseconds
// hold, not wrapped around into another century.
func TestNanosClamped(t *testing.T) {
	cases := []struct {
		ts   unix.Timespec
		want int64
	}{
		{unix.Timespec{Sec: 1_700_000_000, Nsec: 5}, 1_700_000_000_000_000_005},
		{unix.Timespec{Sec: -1, Nsec: 999_999_999}, -1},
		{unix.Timespec{Sec: 16_725_225_600}, math.MaxInt64}, // 2500
		{unix.Timespec{Sec: -16_725_225_600}, math.MinInt64},
	}
	for _, c := range cases {
		if got := nanos(c.ts); got != c.want {
			t.Errorf("nanos(%+v) = %d, want %d", c.ts, got, c.want)
		}
	}
}

// TestPathErrorQuotesControls: a path with a newline is quoted in the
// message, which must stay one line naming the real file.
func TestPathErrorQuotesControls(t *testing.T) {
	err := &PathError{Op: "open", Path: "/srv/bad\nname", Err: unix.EACCES}
	if got, want := err.Error(), `open "/srv/bad\nname": permission denied`; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if got := (&PathError{Op: "open", Path: "/srv/plain name", Err: unix.EACCES}).Error(); got != "open /srv/plain name: permission denied" {
		t.Errorf("a plain path is quoted: %q", got)
	}
}

// TestDisplayPath: a name with a newline or an escape prints as one quoted
// line, as does one that is not valid UTF-8 (a terminal showed U+FFFD for
// its bytes); other names print as they are.
func TestDisplayPath(t *testing.T) {
	for in, want := range map[string]string{
		"/srv/a b":            "/srv/a b",
		"/srv/caf\xe9":        `"/srv/caf\xe9"`,
		"/srv/x\n/etc/shadow": `"/srv/x\n/etc/shadow"`,
		"/srv/\x1b[2Jcleared": `"/srv/\x1b[2Jcleared"`,
		"/srv/日本語-😀.txt":      "/srv/日本語-😀.txt",
		"/srv/a\tb":           `"/srv/a\tb"`,
		"/srv/\u009b2J":       `"/srv/\u009b2J"`,
	} {
		if got := DisplayPath(in); got != want {
			t.Errorf("DisplayPath(%q) = %q, want %q", in, got, want)
		}
	}
}
