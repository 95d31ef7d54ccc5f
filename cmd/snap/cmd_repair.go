package main

import (
	"errors"
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/snap-backup/snap/index"
	"github.com/snap-backup/snap/repo"
)

func repairCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:  "repair",
		Usage: "repair the repository or the local cache",
		Subcommands: []*cli.Command{{
			Name:  "index",
			Usage: "rebuild the local index from the index segments, or the index itself from the packs",
			Description: "Without flags, empties the local index cache and reads every index segment again.\n" +
				"With --from-packs, reads the trailer of every pack, writes new index segments that replace all\n" +
				"existing ones, and rebuilds the cache from them (needs the exclusive lock).",
			Flags: []cli.Flag{&cli.BoolFlag{Name: "from-packs", Usage: "rebuild the repository's index from the pack trailers"}},
			Action: func(c *cli.Context) error {
				err := runRepairIndex(c, e, c.Bool("from-packs"))
				if err != nil && c.Context.Err() != nil && !errors.Is(err, errInterrupted) {
					// Not create's "data already uploaded is reclaimed by
					// prune", nor "list index: context canceled".
					if !c.Bool("from-packs") {
						return fmt.Errorf("%w: repair stopped; the repository is untouched (it rebuilds the local cache only): run it again to finish", errInterrupted)
					}
					return fmt.Errorf("%w: repair stopped; the repository is consistent (the index segments it replaces stay until their successors are written): run it again to finish", errInterrupted)
				}
				return err
			},
		}},
	}
}

func runRepairIndex(c *cli.Context, e *env, fromPacks bool) error {
	mode := sharedLock
	if fromPacks {
		mode = exclusiveLock
	}
	// The index is not synced on open: a damaged segment must not stop the
	// command that repairs it.
	s, err := openSessionIndex(c, e, mode, index.Options{NoSync: true})
	if err != nil {
		return err
	}
	defer s.close()
	if sr, ok := repo.As[repo.SpaceReserver](s.r.Backend()); ok && fromPacks {
		// Its segments may take the room of a released space reserve: a
		// prune stopped by a damaged index needs this repair first, and
		// on a nearly full disk it was refused too (found by a review).
		sr.UseReserveRoom(true)
	}
	log := func(m string) { s.ui.warnf("%s", m) }
	if !fromPacks {
		if err := s.ix.Reset(); err != nil {
			return err
		}
		st, err := s.ix.Sync(c.Context, log)
		if err != nil {
			return err
		}
		if s.ui.json {
			s.ui.jsonLine(map[string]any{"type": "summary", "action": "repair index", "from_packs": false, "segments": st.Added})
		}
		s.ui.printf("rebuilt the local index from %s", plural(st.Added, "index segment", "index segments"))
		return nil
	}
	st, err := s.ix.RebuildFromPacks(c.Context, log)
	if err != nil {
		return err
	}
	for _, u := range st.FromIndex {
		s.ui.warnf("%s; indexed as the old index listed it (its blobs are verified when read; 'snap check --read-data' shows whether they are intact)", u)
	}
	for _, u := range st.Unreadable {
		s.ui.errorf("%s: its blobs are not indexed; 'snap check' lists the snapshots affected", u)
	}
	for _, id := range st.Missing {
		s.ui.errorf("data/%s: the index listed this pack, but the repository no longer holds it: its blobs are no longer indexed; 'snap check' lists the snapshots affected", id)
	}
	for _, id := range st.KeptDamaged {
		s.ui.warnf("data/%s was kept by a repack for its damaged blobs alone, its intact ones copied out, and is indexed so: move it out of data/ and run 'snap repair index --from-packs' again", id)
	}
	for _, id := range st.Truncated {
		s.ui.warnf("data/%s was cut short: 'snap create' the affected paths again to store what it lost, then 'snap prune --repack %s' to copy the blobs it kept into a sound pack", id, id.Short())
	}
	if s.ui.json {
		s.ui.jsonLine(map[string]any{"type": "summary", "action": "repair index", "from_packs": true, "blobs": st.Blobs, "packs": st.Packs,
			"segments": st.Segments, "removed_segments": st.Removed, "unreadable_packs": len(st.Unreadable), "truncated_packs": len(st.Truncated), "missing_packs": len(st.Missing)})
	}
	s.ui.printf("indexed %s in %s; wrote %s, removed the %d they replace", plural(st.Blobs, "blob", "blobs"), plural(st.Packs, "pack", "packs"),
		plural(st.Segments, "index segment", "index segments"), st.Removed)
	if n := len(st.Unreadable); n > 0 {
		return fmt.Errorf("repair index: %d packs could not be read (listed above) and are not indexed: their blobs are lost unless another pack holds them; run 'snap check' to see the snapshots affected", n)
	}
	if n := len(st.Missing); n > 0 {
		return fmt.Errorf("repair index: the repository no longer holds %s the index listed (above): their blobs are lost unless another pack holds them; run 'snap check' to see the snapshots affected", plural(n, "pack", "packs"))
	}
	return nil
}
