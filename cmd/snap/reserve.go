package main

import (
	"errors"
	"fmt"
	"syscall"

	"github.com/snap-backup/snap/repo"
)

// defaultReserve is the space reserve 'snap init' sets aside in a local
// repository (--reserve): room for forget and prune to take their lock and
// rewrite the index segments of a repository of about a terabyte (1 M
// blobs: 42 MB of segments) on a full disk.
const defaultReserve = 64 << 20

// isDiskFull reports whether err is the storage running out of space.
func isDiskFull(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}

// diskFull adds what to do to an error of a full disk.
func diskFull(err error) error {
	if err == nil || !isDiskFull(err) {
		return err
	}
	return fmt.Errorf("%w; the repository's disk is full: free space with 'snap forget' and then 'snap prune --instant --max-unused 100' (they may use the repository's space reserve), or grow the file system", err)
}

// releaseReserve frees the repository's space reserve, so that a command
// that frees space (forget, prune) can run on a full disk; it reports
// whether anything was freed.
func (s *session) releaseReserve() bool {
	sr, ok := repo.As[repo.SpaceReserver](s.r.Backend())
	if !ok {
		return false
	}
	freed, err := sr.ReleaseReserve()
	if err != nil {
		s.ui.warnf("%v", err)
		return false
	}
	if freed == 0 {
		return false
	}
	s.ui.warnf("the repository's disk is full: released its %s space reserve so that %s can run; it is put back once a prune has freed space", humanBytes(freed), s.command)
	s.releasedReserve = true
	return true
}

// releaseReserveIfLow releases the space reserve when less room than it
// holds is free: a lock fits in a few bytes, but forget and prune then
// write index segments (up to the reserve's size for a repository of a
// terabyte), and a write that fails half-way through them frees nothing.
func (s *session) releaseReserveIfLow() {
	sr, ok := repo.As[repo.SpaceReserver](s.r.Backend())
	if !ok {
		return
	}
	_, held, err := sr.Reserve()
	if err != nil || held == 0 {
		return
	}
	if free, err := sr.Free(); err == nil && free < uint64(held) {
		s.releaseReserve()
	}
}

// fillReserve restores the repository's space reserve if it was released,
// and sets one up (defaultReserve) in a repository made before reserves.
// A reserve that does not fit is a warning, not an error: the command
// goes on, and the next prune tries again.
func (s *session) fillReserve() {
	sr, ok := repo.As[repo.SpaceReserver](s.r.Backend())
	if !ok {
		return
	}
	want, held, err := sr.Reserve()
	if err != nil {
		s.ui.warnf("%v", err)
		return
	}
	if want < 0 {
		want = defaultReserve
	}
	if held >= want {
		return
	}
	if err := sr.FillReserve(want); err != nil {
		if isDiskFull(err) {
			s.ui.warnf("the repository's %s space reserve is not in place: its disk is full; free space with 'snap forget' and then 'snap prune --instant --max-unused 100'", humanBytes(want))
		} else {
			s.ui.warnf("%v", err)
		}
		return
	}
	s.ui.infof("set aside the repository's %s space reserve (for forget and prune on a full disk)", humanBytes(want))
}
