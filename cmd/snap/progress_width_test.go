package main

import (
	"bytes"
	"io"
	"os"
	"strconv"
	"strings"
	"testing"

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
	bar.draw(line)
	setWidth(t, tty, 60)
	bar.draw(line)
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
