package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/snap-backup/snap/index"
	"github.com/snap-backup/snap/repo"
)

// defaultReserve is the space reserve 'snap init' sets aside in a local
// repository (--reserve): room for forget and prune to take their lock and
// rewrite the index segments of a repository of about a terabyte (1 M
// blobs: 42 MB of segments) on a full disk.
const defaultReserve = 64 << 20

// fullDiskAdvice says how to get out of a full disk.
// prune --instant first: what earlier prunes marked may be all the room
// needed, and forgetting snapshots for it was not (found by an
// exploratory test).
const fullDiskAdvice = "free space with 'snap prune --instant --max-unused 100', which deletes at once what earlier prunes marked, and 'snap forget' before it if that is not enough (both may use the repository's space reserve), or grow the file system"

// diskFull adds what to do to an error of a full disk: the repository's,
// or the index cache's (a disk of its own, often).
func diskFull(err error) error {
	var advised *fullDiskAdvised
	if err == nil || !repo.DiskFull(err) || errors.As(err, &advised) {
		return err // advised once is enough (the pre-flight's, then create's, said it twice)
	}
	if index.CacheFailure(err) {
		return &fullDiskAdvised{fmt.Errorf("%w; the disk of the index cache is full (not the repository's): free space there, or give --cache-dir on another disk; the repository is consistent", err)}
	}
	return &fullDiskAdvised{fmt.Errorf("%w; the repository's disk is full: %s", err, fullDiskAdvice)}
}

// fullDiskAdvised is an error diskFull added its advice to.
type fullDiskAdvised struct{ err error }

func (e *fullDiskAdvised) Error() string { return e.err.Error() }
func (e *fullDiskAdvised) Unwrap() error { return e.err }

// releaseReserve frees the repository's space reserve, so that the
// command that frees space (s.freeing: forget, prune) can run on a full
// disk; it reports whether anything was freed.
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
	free, _ := sr.Free()
	s.ui.warnf("the repository's disk is (nearly) full: released its %s space reserve so that %s can run (%s free now); it is put back once a prune has freed space", humanBytes(freed), s.freeing, humanBytes(int64(free)))
	return true
}

// setFreesSpace names what the session does next when that frees space
// (forget, prune; "" for anything else): its lock may be written with the
// space reserve released, and its writes may use the room of a released
// reserve, which every other command's writes leave free
// (repo.SpaceReserver).
func (s *session) setFreesSpace(by string) {
	s.freeing = by
	if sr, ok := repo.As[repo.SpaceReserver](s.r.Backend()); ok {
		sr.UseReserveRoom(by != "")
	}
}

// releaseReserveIfLow releases the space reserve when less than a quarter
// of what it holds is free, before a prune writes: a lock fits in a few
// bytes, but the prune then writes index segments (a few MB each), and a
// prune whose segment write fails frees nothing. Above that, the reserve
// stays: a release on every run of a disk that is merely getting full
// would have each prune write it again. A prune that writes nothing, and
// forget (which only deletes), leave it in place: released at the start
// of every forget on a nearly full disk, it stayed released until a prune
// freed space, for nothing (found by an exploratory test).
func (s *session) releaseReserveIfLow() {
	sr, held, ok := s.heldReserve()
	if !ok {
		return
	}
	if free, err := sr.Free(); err == nil && free < held/4 {
		s.releaseReserve()
	}
}

// heldReserve returns the repository's space reserver and what its
// reserve holds now; ok is false when there is none, or it holds nothing.
func (s *session) heldReserve() (sr repo.SpaceReserver, held uint64, ok bool) {
	sr, ok = repo.As[repo.SpaceReserver](s.r.Backend())
	if !ok {
		return nil, 0, false
	}
	_, h, err := sr.Reserve()
	if err != nil || h == 0 {
		return nil, 0, false
	}
	return sr, uint64(h), true
}

// repackMargin is room a prune needs beyond the packs its repack writes:
// the index segment that lists them (some 50 bytes a blob).
const repackMargin = 1 << 20

// roomForRepack releases the space reserve before a prune writes, when the
// packs its repack writes (and repackMargin) would not fit in what is
// free but fit with the reserve's room: releasing only below a quarter of
// the reserve (releaseReserveIfLow) left a prune on a nearly full disk
// failing every night, while the same prune on a completely full one
// worked. A repack that would not fit even so keeps the reserve: it fails
// (its message names the prune that writes nothing), and the reserve is
// left for that prune's lock and segments.
func (s *session) roomForRepack(st *index.PruneStats) {
	if st.CopiedBytes == 0 {
		return
	}
	sr, held, ok := s.heldReserve()
	if !ok {
		return
	}
	need := uint64(st.CopiedBytes) + repackMargin
	if free, err := sr.Free(); err == nil && free < need && free+held >= need {
		s.releaseReserve()
	}
}

// fillReserve puts the repository's space reserve back if it was
// released, and sets one up (defaultReserve) in a repository made before
// reserves. One that does not fit (the fill would leave less free than
// the reserve) is a warning, with hint added, not an error: the command
// goes on, and the next create or prune tries again.
func (s *session) fillReserve(ctx context.Context, hint string) {
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
	err = sr.FillReserve(ctx, want)
	switch {
	case err == nil:
		s.ui.infof("set aside the repository's %s space reserve (for forget and prune on a full disk)", humanBytes(want))
	case ctx.Err() != nil:
	case s.reserveWarned[s.location]:
		// Said once a run: a job's create and prune each try, and so do
		// the other jobs of the repository.
	default:
		s.reserveWarned[s.location] = true
		s.ui.warnf("%s: %s%s", redactedLocation(s.location), reserveFailure(sr, want, err), hint)
	}
}

// reserveFailure says why a reserve of want bytes is not in place, and
// what to do.
func reserveFailure(sr repo.SpaceReserver, want int64, err error) string {
	if !errors.Is(err, repo.ErrNoRoomForReserve) && !repo.DiskFull(err) {
		return err.Error()
	}
	free, _ := sr.Free()
	if size, err := sr.Capacity(); err == nil && !repo.ReserveFits(size, want) {
		// No forget or prune makes room for it there: the advice to run
		// them would go round in circles (found by an exploratory test,
		// a repository on a 20 MiB file system and the default reserve).
		return fmt.Sprintf("the repository's %s space reserve is not in place: its file system holds %s in all, too little for a reserve of that size next to the backups; give it a smaller one: in the repository directory replace the reserve.* file by an empty one named for the size (touch reserve.%d; reserve.0 for none)",
			humanBytes(want), humanBytes(int64(size)), max(size/16, 1<<20)&^(1<<20-1))
	}
	return fmt.Sprintf("the repository's %s space reserve is not in place: a reserve is written only where it leaves its own size free, and the disk has %s free; %s (or give the reserve another size: docs/usage.md, snap init)",
		humanBytes(want), humanBytes(int64(free)), fullDiskAdvice)
}
