package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/urfave/cli/v2"

	"github.com/snap-backup/snap/index"
	"github.com/snap-backup/snap/repo"
	"github.com/snap-backup/snap/snapshot"
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
		}, {
			Name:  "snapshots",
			Usage: "put back damaged snapshot documents from this host's cache",
			Description: "Reads every snapshot document of the repository; one whose bytes no longer match its name is\n" +
				"written anew from this host's cache, when the cache holds an intact copy (a host that listed the\n" +
				"snapshot before the damage has one). A damaged document without one is named: 'snap forget ID'\n" +
				"removes it (its data stays until a prune). Exit 1 while any is left damaged.",
			Action: func(c *cli.Context) error { return runRepairSnapshots(c, e) },
		}},
	}
}

// runRepairSnapshots puts back damaged snapshot documents from the cache.
// A document damaged in the repository made check and prune advise only
// 'snap forget', though its trees and data were intact and this host's
// cache held its exact bytes (found by an exploratory test).
func runRepairSnapshots(c *cli.Context, e *env) error {
	s, err := openSession(c, e, sharedLock)
	if err != nil {
		return err
	}
	defer s.close()
	be := s.r.Backend()
	var names []string
	if err := be.List(c.Context, repo.SnapshotFile, func(name string, _ int64) error {
		names = append(names, name)
		return nil
	}); err != nil {
		return fmt.Errorf("list snapshots: %w", err)
	}
	var replaced, left []string
	for _, name := range names {
		h := repo.Handle{Type: repo.SnapshotFile, Name: name}
		data, err := repo.LoadSmall(c.Context, be, h)
		switch {
		case errors.Is(err, repo.ErrNotFound):
			continue // forgotten meanwhile
		case err == nil && repo.Hash(data).String() == name:
			// Its bytes are the ones named; they must also open with
			// this repository's keys: a document of another repository
			// counted as sound, while list, check and prune could not
			// read it (found by an exploratory test). A cached copy has
			// the same bytes: there is nothing to put back.
			if _, err := s.r.OpenObject(h, data); err != nil {
				left = append(left, name)
				s.ui.warnf("%s cannot be read (%v): it was not written with this repository's keys, or was damaged before it was stored; nothing can put it back: remove it with 'snap forget %s' (its data stays until a prune)", h, err, repo.ShortName(name))
			}
			continue
		case err != nil && !errors.Is(err, repo.ErrCorrupt):
			return fmt.Errorf("read %s: %w", h, err)
		}
		good, ok := s.cachedSnapshot(h)
		if !ok {
			left = append(left, name)
			s.ui.warnf("%s is damaged, and this host's cache has no intact copy of it: run 'snap repair snapshots' on a host that listed it before the damage, or remove it with 'snap forget %s' (its data stays until a prune)", h, repo.ShortName(name))
			continue
		}
		if err := repo.ReplaceDamaged(c.Context, be, h, good); err != nil {
			return diskFull(fmt.Errorf("put back %s: %w", h, err))
		}
		replaced = append(replaced, name)
		s.ui.printf("put back %s from this host's cache", h)
	}
	if s.ui.json {
		s.ui.jsonLine(map[string]any{"type": "summary", "action": "repair snapshots", "checked": len(names), "replaced": len(replaced), "damaged": len(left)})
	} else {
		s.ui.printf("checked %s: %d put back, %d left damaged", plural(len(names), "snapshot document", "snapshot documents"), len(replaced), len(left))
	}
	if len(left) > 0 {
		return fmt.Errorf("%s left damaged (named above)", plural(len(left), "snapshot document", "snapshot documents"))
	}
	return nil
}

// cachedSnapshot returns this host's cached copy of the snapshot document
// h when it is intact: its bytes hash to its name, open with the key and
// decode as a snapshot. An object that is no snapshot (an index segment
// moved into snapshots/) passed for an intact copy, and check advised
// 'snap repair snapshots', which had nothing to put back (found by an
// exploratory test).
func (s *session) cachedSnapshot(h repo.Handle) ([]byte, bool) {
	b, err := os.ReadFile(filepath.Join(s.cache, "snapshots", h.Name))
	if err != nil || repo.Hash(b).String() != h.Name {
		return nil, false
	}
	plain, err := s.r.OpenObject(h, b)
	if err != nil {
		return nil, false
	}
	if _, err := snapshot.Decode(plain); err != nil {
		return nil, false
	}
	return b, true
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
		s.ix.Shrink(log)
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
	s.ix.Shrink(log)
	for _, u := range st.FromIndex {
		s.ui.warnf("%s; indexed as the old index listed it (its blobs are verified when read; 'snap check --read-data' shows whether they are intact)", u)
	}
	for _, u := range st.Unreadable {
		s.ui.errorf("%s: its blobs are not indexed; 'snap check' lists the snapshots affected", u)
	}
	for _, id := range st.Replaced {
		// A pack a repack copied out and that was then moved out or
		// deleted: the step the advice for a damaged pack prescribes,
		// which exited 1 here (found by an exploratory test).
		s.ui.warnf("%s, which the index listed, is gone; every blob it held is in another pack: nothing was lost with it", repo.Handle{Type: repo.PackFile, Name: id.String()})
	}
	for _, id := range st.Missing {
		what := "its blobs are no longer indexed"
		if n, ok := st.LostBlobs[id]; ok {
			what = plural(n, "blob it held is", "blobs it held are") + " in no other pack"
		}
		s.ui.errorf("%s: the index listed this pack, but the repository no longer holds it: %s; 'snap check' lists the snapshots affected (a pack moved out as check advised held damaged blobs: 'snap create' the affected paths again)", repo.Handle{Type: repo.PackFile, Name: id.String()}, what)
	}
	for _, id := range st.KeptDamaged {
		s.ui.warnf("%s was kept by a repack for its damaged blobs alone, its intact ones copied out, and is indexed so: move it out of data/ and run 'snap repair index --from-packs' again", repo.Handle{Type: repo.PackFile, Name: id.String()})
	}
	for _, id := range st.Truncated {
		s.ui.warnf("%s was cut short: 'snap create' the affected paths again to store what it lost, then 'snap prune --repack %s' to copy the blobs it kept into a sound pack", repo.Handle{Type: repo.PackFile, Name: id.String()}, id.Short())
	}
	if s.ui.json {
		s.ui.jsonLine(map[string]any{"type": "summary", "action": "repair index", "from_packs": true, "blobs": st.Blobs, "packs": st.Packs,
			"segments": st.Segments, "removed_segments": st.Removed, "unreadable_packs": len(st.Unreadable), "truncated_packs": len(st.Truncated), "missing_packs": len(st.Missing), "replaced_packs": len(st.Replaced)})
	}
	s.ui.printf("indexed %s in %s; wrote %s, removed the %d they replace", plural(st.Blobs, "blob", "blobs"), plural(st.Packs, "pack", "packs"),
		plural(st.Segments, "index segment", "index segments"), st.Removed)
	if n := len(st.Unreadable); n > 0 {
		return fmt.Errorf("repair index: %d packs could not be read (listed above) and are not indexed: their blobs are lost unless another pack holds them; run 'snap check' to see the snapshots affected", n)
	}
	if n := len(st.Missing); n > 0 {
		lost := 0
		for _, l := range st.LostBlobs {
			lost += l
		}
		what := "their blobs are lost unless another pack holds them"
		if len(st.LostBlobs) == n {
			what = fmt.Sprintf("%s went with %s, which no other pack holds", plural(lost, "blob", "blobs"), map[bool]string{true: "it", false: "them"}[n == 1])
		}
		return fmt.Errorf("repair index: the index is rebuilt, but the repository no longer holds %s the index listed (above): %s; 'snap check' names the snapshots affected, and 'snap create' of their paths stores again what still exists", plural(n, "pack", "packs"), what)
	}
	return nil
}
