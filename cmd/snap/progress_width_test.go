package main

import (
	"bytes"
	"io"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// openPty returns a new pseudo-terminal's two ends: what is written to
// tty is read from ptm.
func openPty(t *testing.T) (ptm, tty *os.File) {
	t.Helper()
	ptm, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminal: %v", err)
	}
	t.Cleanup(func() { ptm.Close() })
	if err := unix.IoctlSetPointerInt(int(ptm.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(ptm.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	tty, err = os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tty.Close() })
	return ptm, tty
}

func setWidth(t *testing.T, f *os.File, cols int) {
	t.Helper()
	if err := unix.IoctlSetWinsize(int(f.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: 24, Col: uint16(cols)}); err != nil {
		t.Fatal(err)
	}
}

// TestProgressBarFollowsResize: a terminal made narrower while the bar is
// shown gets lines that fit its new width, not the width it had when the
// bar appeared (found by an exploratory test: each redraw wrapped and
// left a row behind).
func TestProgressBarFollowsResize(t *testing.T) {
	ptm, tty := openPty(t)
	setWidth(t, tty, 120)
	read := make(chan []byte)
	go func() {
		b, _ := io.ReadAll(ptm) // ends with EIO once tty is closed
		read <- b
	}()
	bar := newProgressBar(tty)
	line := strings.Repeat("x", 100)
	bar.draw(line, nil)
	setWidth(t, tty, 60)
	bar.draw(line, nil)
	tty.Close()
	out := <-read
	draws := bytes.Split(bytes.TrimPrefix(out, []byte("\r")), []byte("\r"))
	if len(draws) != 2 {
		t.Fatalf("want 2 redraws, got %q", out)
	}
	for i, want := range []int{100, 59} {
		if got := len(bytes.TrimSuffix(draws[i], []byte("\x1b[K"))); got != want {
			t.Errorf("redraw %d: %d characters, want %d: %q", i+1, got, want, draws[i])
		}
	}
}

// TestStatusLineFits: on a narrow terminal the status line leaves out
// whole fields, the least telling first, and keeps the percentage, the
// errors and the ETA (found by an exploratory test: at 80 columns it was
// cut after "added 407.1 MiB," and never showed the ETA).
func TestStatusLineFits(t *testing.T) {
	pct, eta := 35.8, 7.0
	j := progressJSON{ElapsedSeconds: 4, FilesDone: 1069, FilesTotal: 3000, BytesDone: 409300 << 10, BytesTotal: 1100 << 20, TotalKnown: true,
		BytesAdded: 407100 << 10, BytesPerSecond: 116900 << 10, Percent: &pct, ETASeconds: &eta, Errors: 2}
	for _, tc := range []struct {
		action string
		width  int
		want   string
	}{
		{"create", 0, "[0:04]  35.8% 1069/3000 files, 399.7 MiB/1.1 GiB, 114.2 MiB/s, added 397.6 MiB, 2 errors, ETA 0:07"},
		{"create", 79, "[0:04]  35.8% 1069/3000 files, 399.7 MiB/1.1 GiB, 2 errors, ETA 0:07"},
		{"create", 59, "[0:04]  35.8% 1069/3000 files, 2 errors, ETA 0:07"},
		{"restore", 83, "[0:04]  35.8% 1069/3000 files, 399.7 MiB/1.1 GiB, 114.2 MiB/s, 2 errors, ETA 0:07"},
		{"restore", 79, "[0:04]  35.8% 1069/3000 files, 399.7 MiB/1.1 GiB, 2 errors, ETA 0:07"},
		{"restore", 40, "[0:04]  35.8% 2 errors, ETA 0:07"},
		{"restore", 20, "[0:04]  35.8% 2 erro"},
	} {
		head, fields := statusFields(j, tc.action)
		if got := fitStatus(head, fields, tc.width); got != tc.want {
			t.Errorf("%s at %d columns:\n got %q\nwant %q", tc.action, tc.width, got, tc.want)
		}
	}
}

// TestStepStatusLineFits: the status line of check, prune and copy names
// the step with its count, and on a narrow terminal leaves out the rate
// first, then the bytes; the step, the errors and the ETA stay.
func TestStepStatusLineFits(t *testing.T) {
	reading := stepState{name: "reading", unit: "packs", done: 12, total: 40, bytes: 300 << 20, bytesTotal: 1200 << 20, errors: 2}
	copying := stepState{name: "copying", unit: "snapshots", done: 1, total: 3, bytes: 5 << 20, bytesLabel: "sent"}
	finding := stepState{name: "finding used blobs"}
	for _, tc := range []struct {
		st    stepState
		width int
		want  string
	}{
		{reading, 0, "[1:05]  25.0% reading 12/40 packs, 300.0 MiB/1.2 GiB, 5.0 MiB/s, 2 errors, ETA 3:00"},
		{reading, 72, "[1:05]  25.0% reading 12/40 packs, 300.0 MiB/1.2 GiB, 2 errors, ETA 3:00"},
		{reading, 71, "[1:05]  25.0% reading 12/40 packs, 2 errors, ETA 3:00"},
		{copying, 0, "[1:05] copying 1/3 snapshots, sent 5.0 MiB, 85.3 KiB/s"},
		// What was read from the source moves while nothing is sent.
		{stepState{name: "copying", unit: "snapshots", done: 1, total: 3, read: 40 << 20, bytes: 5 << 20, bytesLabel: "sent"}, 0, "[1:05] copying 1/3 snapshots, read 40.0 MiB, sent 5.0 MiB, 85.3 KiB/s"},
		{finding, 0, "[1:05] finding used blobs"},
	} {
		head, fields := stepFields(tc.st, 65*time.Second, 60*time.Second)
		if got := fitStatus(head, fields, tc.width); got != tc.want {
			t.Errorf("%s at %d columns:\n got %q\nwant %q", tc.st.name, tc.width, got, tc.want)
		}
	}
}
