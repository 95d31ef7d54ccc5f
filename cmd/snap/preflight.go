package main

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/snap-backup/snap/repo"
)

// parseSize reads a byte count: a number with an optional binary unit
// (K, M, G, T, optionally followed by "iB" or "B"; 1K = 1024 bytes).
func parseSize(s string) (uint64, error) {
	t := strings.ToUpper(strings.TrimSpace(s))
	t = strings.TrimSuffix(strings.TrimSuffix(t, "IB"), "B")
	mult := uint64(1)
	if n := len(t); n > 0 {
		if i := strings.IndexByte("KMGTP", t[n-1]); i >= 0 {
			mult = 1 << (10 * (i + 1))
			t = t[:n-1]
		}
	}
	f, err := strconv.ParseFloat(strings.TrimSpace(t), 64)
	// NaN and Inf parse as floats, and a size beyond 2^63 has no uint64
	// conversion Go defines: all three are refused, as is a negative one.
	if n := f * float64(mult); err != nil || math.IsNaN(f) || f < 0 || n >= 1<<63 {
		return 0, fmt.Errorf("size %q: use a number of bytes with an optional unit, e.g. 500M or 20GiB", s)
	}
	return uint64(f * float64(mult)), nil
}

// preflight checks, before a create reads anything, that the repository
// takes writes, and reports its free space; it refuses to go on below
// minFree (0: no threshold).
func preflight(ctx context.Context, u *ui, r *repo.Repository, minFree uint64) error {
	loc := r.Backend().Location()
	p, ok := repo.As[repo.Preflighter](r.Backend())
	if !ok {
		// The lock this run holds was written: the backend takes writes.
		if minFree > 0 {
			u.warnf("repository %s cannot report its free space; --min-free is not checked", loc)
		}
		return nil
	}
	free, err := p.Preflight(ctx)
	if err != nil {
		return fmt.Errorf("%w; no snapshot was saved", err)
	}
	// The room of a released space reserve is not this create's to use
	// (repo.SpaceReserver.UseReserveRoom).
	room := reserveRoom(r)
	usable := free - min(free, room)
	if u.json {
		line := map[string]any{"type": "preflight", "repository": loc, "writable": true, "free_bytes": free, "min_free_bytes": minFree}
		if room > 0 {
			line["reserve_room_bytes"] = room
		}
		u.jsonLine(line)
	} else if room > 0 {
		kept := fmt.Sprintf("of which %s are", humanBytes(int64(room)))
		if free <= room {
			kept = "all of it"
		}
		u.printf("repository %s: writable, %s free, %s kept for forget and prune (the space reserve is released: a prune that frees space puts it back)", loc, humanBytes(int64(free)), kept)
	} else {
		u.printf("repository %s: writable, %s free", loc, humanBytes(int64(free)))
	}
	if room > 0 && usable == 0 {
		// Nothing this create could store: said before it reads
		// anything (and, being a full disk, followed by the job's prune
		// in snap run).
		return fmt.Errorf("repository %s: %w; nothing was read", loc, diskFull(&repo.ReserveRoomError{Free: free, Room: room}))
	}
	if usable < minFree {
		kept := ""
		if room > 0 {
			kept = fmt.Sprintf(" beside the %s kept for forget and prune", humanBytes(int64(room)))
		}
		return fmt.Errorf("repository %s has %s free%s, below --min-free %s: free some space there or lower --min-free (min_free in a job); nothing was read",
			loc, humanBytes(int64(usable)), kept, humanBytes(int64(minFree)))
	}
	return nil
}

// reserveRoom returns the room of the repository's released space reserve
// (what it should hold and does not), 0 when it is whole or there is none.
func reserveRoom(r *repo.Repository) uint64 {
	sr, ok := repo.As[repo.SpaceReserver](r.Backend())
	if !ok {
		return 0
	}
	room, _, err := sr.ReserveRoom()
	if err != nil {
		return 0
	}
	return room
}
