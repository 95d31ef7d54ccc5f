package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/snap-backup/snap/index"
	"github.com/snap-backup/snap/repo"
	"github.com/snap-backup/snap/snapshot"
)

func copyCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:      "copy",
		Usage:     "copy snapshots to another repository",
		ArgsUsage: "[SNAPSHOT...]",
		Description: "Copies the given snapshots (default: all that pass --host/--tag/--path) from --repo to the\n" +
			"repository --to, e.g. a local repository to S3 for an off-site copy, or back. Only blobs the target\n" +
			"lacks are sent, and snapshots already copied are skipped, so running it again copies nothing new.\n" +
			"The target's password comes from --to-password-file, SNAP_TO_PASSWORD_FILE, SNAP_TO_PASSWORD,\n" +
			"--to-password-command or SNAP_TO_PASSWORD_COMMAND; without any, the source's password is used.",
		Flags: append(filterFlags(),
			&cli.StringFlag{Name: "to", Usage: "the target repository (env SNAP_TO_REPOSITORY)", EnvVars: []string{"SNAP_TO_REPOSITORY"}},
			&cli.StringFlag{Name: "to-password-file", Usage: "read the target's password from this file (env SNAP_TO_PASSWORD_FILE)", EnvVars: []string{"SNAP_TO_PASSWORD_FILE"}},
			&cli.StringFlag{Name: "to-password-command", Usage: "run this command for the target's password (env SNAP_TO_PASSWORD_COMMAND)", EnvVars: []string{"SNAP_TO_PASSWORD_COMMAND"}},
			&cli.BoolFlag{Name: "dry-run", Aliases: []string{"n"}, Usage: "show which snapshots would be copied, and about how much would be read for them; copy nothing"},
		),
		Action: func(c *cli.Context) error {
			if c.String("to") == "" {
				return usagef("copy needs --to REPOSITORY (or SNAP_TO_REPOSITORY)")
			}
			return runCopy(c, e, c.String("to"), c.Args().Slice())
		},
	}
}

// memo runs f once and returns its result every time.
func memo(f func() (string, error)) func() (string, error) {
	var done bool
	var v string
	var err error
	return func() (string, error) {
		if !done {
			v, err = f()
			done = true
		}
		return v, err
	}
}

func runCopy(c *cli.Context, e *env, to string, refs []string) error {
	for _, ref := range refs {
		// A mistake in the arguments (exit 2), told before either
		// repository is opened, as every other command tells it.
		if err := checkSnapshotRef(ref); err != nil {
			return err
		}
	}
	u := newUI(c, e)
	srcSt, err := settingsFrom(c, e)
	if err != nil {
		return err
	}
	srcSource, srcOrigin := srcSt.passwordWithOrigin(c.Context, e)
	srcPassword := memo(srcSource)
	dstPassword, dstOrigin := otherPassword(c, e, "SNAP_TO_PASSWORD", "target repository", srcPassword, "the source repository's password")
	srcSt.password, srcSt.passwordOrigin = srcPassword, srcOrigin
	dstSt := srcSt
	dstSt.location, dstSt.fromConfig, dstSt.password, dstSt.passwordOrigin = to, "", dstPassword, dstOrigin
	// The flags' rate limits apply to both repositories; the config file's
	// are for its own repository, the source.
	up, down, err := rateFlags(c, e)
	if err != nil {
		return err
	}
	dstSt.upload, dstSt.download = up.bps, down.bps
	// The source is only read: on a read-only mount it can go without a
	// lock (--no-lock), as restore can; the target is always locked.
	srcMode := sharedLock
	if gbool(c, "no-lock") {
		srcMode = noLock
	}
	srcSt.readsOnly = true // a failed lock suggests --no-lock
	src, err := openSessionAt(c.Context, e, u, srcSt, srcMode, commandName(c), &index.Options{KeepPages: true})
	if err != nil {
		// Named as the target's errors are: "repository is locked" and
		// its 'snap unlock' read as if of either (found by an
		// exploratory test).
		return repositoryError("source", srcSt.location, err)
	}
	defer src.close()
	// The target's index is opened once it is known to be another
	// repository: a copy of the source (rsync'd) has its ID, and so its
	// cache directory, which the source's index holds open.
	// A dry run writes nothing to the target, not even a lock.
	dstMode := sharedLock
	if c.Bool("dry-run") {
		dstMode = noLock
	}
	dst, err := openSessionAt(c.Context, e, u, dstSt, dstMode, commandName(c), nil)
	if err != nil {
		return targetError(to, err)
	}
	defer dst.close()
	if src.r.Config().ID == dst.r.Config().ID {
		if sameLocation(src.r.Backend().Location(), dst.r.Backend().Location()) {
			return usagef("--to names the source repository itself (ID %s)", src.r.Config().ID[:8])
		}
		// Or the same repository under another name (localhost and
		// 127.0.0.1, a symlink): snap cannot tell the two apart.
		return usagef("--to %s has the source's repository ID %s: it is the source under another name (another host name for the server, a symlink), or a copy of it made with rsync or cp; snap copy needs a target of its own (snap init one)", redactedLocation(to), src.r.Config().ID[:8])
	}
	// A dry run reads the target without a lock, as list --no-lock does:
	// a segment a prune there removes meanwhile is passed over.
	if err := dst.openIndex(c.Context, e, index.Options{ReadOnly: c.Bool("dry-run"), KeepPages: true}); err != nil {
		return targetError(to, err)
	}

	sns, err := src.snapshots(c.Context)
	if err != nil {
		return err
	}
	var selected []*snapshot.Snapshot
	if len(refs) == 0 {
		var note string
		if selected, note = applyFilter(sns, filterFrom(c)); note != "" {
			// An error, as for the other commands that choose snapshots
			// by the filters: a nightly off-site copy with a mistyped
			// --host copied nothing for ever, exit 0 (found by an
			// exploratory test).
			return fmt.Errorf("%s: nothing to copy", note)
		}
	} else {
		seen := map[repo.ID]bool{}
		for _, ref := range refs {
			sn, err := src.find(c, sns, ref)
			if err != nil {
				return err
			}
			if !seen[sn.ID] {
				seen[sn.ID] = true
				selected = append(selected, sn)
			}
		}
		snapshot.SortByTime(selected) // parents before children
	}
	targets, err := dst.snapshots(c.Context)
	if err != nil {
		return fmt.Errorf("target: %w", err)
	}
	inTarget := map[repo.ID]repo.ID{} // origin → target snapshot
	targetOf := map[repo.ID]*snapshot.Snapshot{}
	for _, t := range targets {
		inTarget[snapshot.Origin(t)] = t.ID
		targetOf[snapshot.Origin(t)] = t
	}
	selected = latestVersions(selected)
	for _, sn := range selected {
		// A copy keeps the tags it was made with: a tag added in the
		// source since (keep, for --keep-tag) does not reach it, and the
		// target's retention forgot what the source's kept, with nothing
		// said (found by an exploratory test).
		// Only the source's tags the copy lacks are said, and added: a
		// tag given to the copy since (a legal hold in the target, or a
		// copy back to the origin) is the target's, and the --set this
		// advised would have taken it away (found by an exploratory
		// test).
		t := targetOf[snapshot.Origin(sn)]
		if t == nil {
			continue
		}
		var missing []string
		for _, tag := range sn.Tags {
			if !slices.Contains(t.Tags, tag) {
				missing = append(missing, tag)
			}
		}
		if len(missing) > 0 {
			u.warnf("snapshot %s is in the target as %s with tags [%s], and has [%s] in the source: a copy keeps its own tags; add the source's it lacks with: snap tag --repo %s --add %s %s",
				sn.ID.Short(), t.ID.Short(), strings.Join(t.Tags, ","), strings.Join(sn.Tags, ","), shQuote(redactedLocation(to)), shQuote(strings.Join(missing, ",")), t.ID.Short())
		}
	}

	// The pair map lives in the source's cache, one per target.
	var bm *index.BlobMap
	if m, err := index.OpenBlobMap(filepath.Join(src.cache, "copy-"+dst.r.Config().ID+".db")); err != nil {
		u.warnf("%v; this copy reads every blob it needs from the source", err)
	} else {
		bm = m
		defer bm.Close()
	}
	if c.Bool("dry-run") {
		return copyDryRun(c.Context, u, src, dst, bm, selected, inTarget, len(refs) == 0)
	}
	workers := max(src.connections, dst.connections, 4)
	comp, _ := repo.ParseCompression("fastest")
	fetchDir := ""
	if isRemote(src.location) { // as the config names it too (the flag's alone sent a request per blob; found by an exploratory test)
		fetchDir = src.cache
	}
	// A status line on a terminal counts the snapshots and the bytes sent:
	// a copy to a slow off-site target otherwise printed nothing for as
	// long as a snapshot took (found by an exploratory test). opCtx is
	// the copy's own: a bug in the status line stops it, and the copy
	// fails with that bug (c.Context stays the signal's).
	opCtx, stopOp := context.WithCancel(c.Context)
	defer stopOp()
	sp := newStepProgress(e, u, stopOp)
	toCopy := 0
	for _, sn := range selected {
		if _, ok := inTarget[snapshot.Origin(sn)]; !ok {
			toCopy++
		}
	}
	sp.step("copying", "snapshots", int64(toCopy), 0)
	sp.update(func(st *stepState) { st.bytesLabel = "sent" })
	sent := func(stored int64) { sp.update(func(st *stepState) { st.bytes += stored }) }
	read := func(n int64) { sp.update(func(st *stepState) { st.read += n }) }
	// Snapshots another copy run saves in the target while this one runs
	// are looked for before each document is saved: the target's listing
	// again (documents already read come from the cache).
	known := map[repo.ID]bool{}
	for _, t := range targets {
		known[t.ID] = true
	}
	copiedMeanwhile := func(ctx context.Context, origin repo.ID) (repo.ID, bool, error) {
		ids, err := dst.r.ListIDs(ctx, repo.SnapshotFile)
		if err != nil {
			return repo.ID{}, false, fmt.Errorf("target: list snapshots: %w", err)
		}
		for _, id := range ids {
			if known[id] {
				continue
			}
			known[id] = true
			if t, err := dst.loader.Load(ctx, id); err == nil {
				if _, ok := inTarget[snapshot.Origin(t)]; !ok {
					inTarget[snapshot.Origin(t)] = id
				}
			}
		}
		id, ok := inTarget[origin]
		return id, ok, nil
	}
	cp := snapshot.NewCopier(src.ix, dst.ix, snapshot.CopyOptions{Workers: workers, Map: bm, FetchDir: fetchDir, FetchAhead: src.connections, Lock: dst.lock, Read: read,
		CopiedMeanwhile: copiedMeanwhile, Writer: index.WriterOptions{Compression: comp, Connections: max(dst.connections, 2), Abort: opCtx, Uploaded: sent, Indexed: e.packs.withLedger(nil)}})
	sp.begin()
	defer sp.finish()

	copied, skipped := 0, 0
	var damaged []string // snapshots whose data the source cannot give
	cacheDamaged := 0    // of those, for this host's damaged index cache of the source
	for _, sn := range selected {
		if tid, ok := inTarget[snapshot.Origin(sn)]; ok {
			skipped++
			copySkipped(u, sn, tid)
			continue
		}
		var parent *repo.ID
		if sn.Parent != nil {
			if p := snapshot.ByID(sns, *sn.Parent); p != nil {
				if tid, ok := inTarget[snapshot.Origin(p)]; ok {
					parent = &tid
				}
			}
		}
		if fields := sn.UnknownFields(); len(fields) > 0 {
			// They may name blobs of the source, which the target does
			// not hold under those IDs: left out, and said.
			u.warnf("snapshot %s holds fields this snap does not know (%s), written by a newer snap: the copy leaves them out; copy it with that snap to keep them", sn.ID.Short(), strings.Join(fields, ", "))
		}
		before := cp.Stats()
		out, err := cp.Copy(opCtx, sn, parent)
		sp.update(func(st *stepState) { st.done++ })
		var meanwhile *snapshot.CopiedMeanwhileError
		if errors.As(err, &meanwhile) {
			inTarget[snapshot.Origin(sn)] = meanwhile.Target
			skipped++
			copySkipped(u, sn, meanwhile.Target)
			continue
		}
		if err != nil {
			if bug := sp.failure(); bug != nil {
				return fmt.Errorf("copy stopped at snapshot %s; both repositories are consistent: %w", sn.ID.Short(), bug)
			}
			if c.Context.Err() != nil {
				return fmt.Errorf("%w: copy stopped at snapshot %s; both repositories are consistent (data already sent is reclaimed by 'snap prune' on the target, or used by the next copy)", errInterrupted, sn.ID.Short())
			}
			if sourceDamaged(err) && errors.Is(err, repo.ErrNotFound) && src.lock != nil {
				// A pack gone from the source: a prune there may have
				// repacked it after it took this run's lock for stale
				// (a machine asleep, a process stopped), and the source is
				// intact (it was reported damaged; found by an
				// exploratory test).
				if lerr := src.lock.Verify(c.Context); errors.Is(lerr, repo.ErrLockLost) {
					return fmt.Errorf("copy stopped at snapshot %s: this run's lock on the source was removed (%v), so a prune there may have moved the data it was reading (%v); the snapshots copied before it are complete: run the copy again", sn.ID.Short(), lerr, err)
				}
			}
			if sourceDamaged(err) {
				// Damage in the source spoils this snapshot, not the
				// others: an off-site copy must not stop for good at
				// the oldest snapshot that lost a pack.
				damaged = append(damaged, sn.ID.Short())
				if errors.Is(err, index.ErrCacheDamaged) {
					cacheDamaged++
				}
				sp.update(func(st *stepState) { st.errors++ })
				format := "snapshot %s cannot be copied: %v"
				if toCopy > 1 {
					format += "; the others are copied"
				}
				copyUnreadable(u, sn, err, format)
				continue
			}
			err = fmt.Errorf("copy snapshot %s: %w; the snapshots copied before it are complete", sn.ID.Short(), err)
			if repo.DiskFull(err) && !index.CacheFailure(err) {
				if !repo.OnLocalDisk(dst.r.Backend()) {
					// A target on S3 has no disk to fill: the local one
					// is full (the cache's pair map, the fetcher's packs).
					return &fullDiskAdvised{fmt.Errorf("%w; the local disk is full (the cache's, or the temporary directory's): free space there, or give --cache-dir on another disk", err)}
				}
				// Copy writes to the target alone: the general advice,
				// followed as given, ran on the source (--repo). (The
				// cache's disk may be the same one.)
				return &fullDiskAdvised{fmt.Errorf("%w; the target's disk is full: free space there with: snap prune --instant --max-unused 100 --repo %s (and snap forget --repo %s before it if that is not enough), or grow that file system",
					err, shQuote(dst.location), shQuote(dst.location))}
			}
			return diskFull(err)
		}
		inTarget[snapshot.Origin(sn)] = out.ID
		known[out.ID] = true
		copied++
		st := cp.Stats()
		// The target held this copy's document damaged (a copy before
		// this one, its file damaged since): it is written anew.
		replaced := st.Replaced > before.Replaced
		if u.json {
			u.jsonLine(map[string]any{"type": "copied", "snapshot_id": sn.ID.String(), "target_id": out.ID.String(),
				"added_blobs": st.Blobs - before.Blobs, "added_bytes": st.StoredBytes - before.StoredBytes, "read_blobs": st.ReadBlobs - before.ReadBlobs,
				"replaced_damaged": replaced})
		} else {
			u.printf("copied snapshot %s (%s, %s) as %s: %d new blobs, %s added", sn.ID.Short(), localTime(sn.Time), sn.Host, out.ID.Short(),
				st.Blobs-before.Blobs, humanBytes(st.StoredBytes-before.StoredBytes))
		}
		if replaced {
			u.warnf("the target's snapshots/%s was damaged (its bytes did not match its name): it is written anew; run 'snap check --read-data' on the target for other damage", out.ID)
		}
	}
	// The status line goes before the summary.
	sp.finish()
	if bug := sp.failure(); bug != nil {
		return fmt.Errorf("copy: %w", bug)
	}
	trimBlobMap(u, bm, src.ix)
	st := cp.Stats()
	unreadable, unreadErr := unreadableSources(u, src, len(damaged), len(refs) == 0, "were not copied")
	if cacheDamaged > 0 && cacheDamaged == unreadable {
		// The source is whole (its check would find nothing): this
		// host's cache of its index is not (found by a re-test).
		unreadErr = fmt.Errorf("%s of the source not copied (listed above): this host's index cache of the source is damaged, not the source; run the copy again, which rebuilds the cache first", plural(cacheDamaged, "snapshot", "snapshots"))
	}
	if u.json {
		u.jsonLine(map[string]any{"type": "summary", "dry_run": false, "copied": copied, "skipped": skipped, "unreadable": unreadable, "added_blobs": st.Blobs,
			"added_bytes": st.StoredBytes, "read_blobs": st.ReadBlobs, "read_bytes": st.ReadBytes})
		return unreadErr
	}
	switch {
	case len(selected) == 0:
		u.printf("no snapshots to copy")
	case copied == 0 && len(damaged) == 0 && skipped == 1:
		u.printf("the snapshot is already in %s; nothing copied", dst.r.Backend().Location())
	case copied == 0 && len(damaged) == 0:
		u.printf("all %d snapshots are already in %s; nothing copied", skipped, dst.r.Backend().Location())
	default:
		u.printf("copied %s to %s (%d already there): %s, %s added; read %s (%s) from the source",
			plural(copied, "snapshot", "snapshots"), dst.r.Backend().Location(), skipped, plural(int(st.Blobs), "new blob", "new blobs"), humanBytes(st.StoredBytes),
			plural(int(st.ReadBlobs), "blob", "blobs"), humanBytes(st.ReadBytes))
	}
	return unreadErr
}

// sourceDamaged reports whether err, of copying a snapshot, is damage in
// the source (a missing pack, a corrupt blob, a delta whose base is lost:
// ErrBlobNotIndexed, one such snapshot stopped every copy after it), which
// spoils that snapshot and not the others, as opposed to a failure to
// read at all or to write the target.
func sourceDamaged(err error) bool {
	var srcErr *snapshot.SourceError
	return errors.As(err, &srcErr) && (errors.Is(err, repo.ErrNotFound) || errors.Is(err, repo.ErrCorrupt) || errors.Is(err, index.ErrBlobNotIndexed))
}

// copyUnreadable warns, with format (taking the snapshot's short ID and
// err), that sn is not copied, and says so in a JSON line.
func copyUnreadable(u *ui, sn *snapshot.Snapshot, err error, format string) {
	u.warnf(format, sn.ID.Short(), err)
	if u.json {
		u.jsonLine(map[string]any{"type": "unreadable", "snapshot_id": sn.ID.String(), "message": err.Error()})
	}
}

// copySkipped says that sn is in the target already, as tid.
func copySkipped(u *ui, sn *snapshot.Snapshot, tid repo.ID) {
	if u.json {
		u.jsonLine(map[string]any{"type": "skipped", "snapshot_id": sn.ID.String(), "target_id": tid.String()})
	} else {
		u.infof("snapshot %s is already in the target as %s", sn.ID.Short(), tid.Short())
	}
}

// unreadableSources counts the snapshots of the source a copy left out
// because it could not read them (damaged of them whose data is damaged,
// warned of already; with all, also those whose document cannot be read),
// prints a JSON line for each of the latter, and returns the count and the
// copy's error for them; what ends its message.
func unreadableSources(u *ui, src *session, damaged int, all bool, what string) (int, error) {
	n := damaged
	if all {
		n += len(src.unreadable)
		// One line each, as for a snapshot whose data is damaged: a
		// script counting them agrees with the summary.
		if u.json {
			for _, lerr := range src.unreadable {
				id, _ := strings.CutPrefix(unreadableObject(lerr), "snapshots/")
				u.jsonLine(map[string]any{"type": "unreadable", "snapshot_id": id, "message": lerr.Error()})
			}
		}
	}
	if n == 0 {
		return 0, nil
	}
	// The copy is not the whole of what was asked for (the warnings
	// above name them).
	return n, fmt.Errorf("snapshots of the source that cannot be read %s: %d (listed above); run 'snap check --read-data' on the source", what, n)
}

// copyDryRun prints what a copy of selected would do: which snapshots it
// would copy and skip, and about how many data blobs it would read from
// the source for them (snapshot.Copier.Estimate), changing nothing.
func copyDryRun(ctx context.Context, u *ui, src, dst *session, bm *index.BlobMap, selected []*snapshot.Snapshot, inTarget map[repo.ID]repo.ID, all bool) error {
	cp := snapshot.NewCopier(src.ix, dst.ix, snapshot.CopyOptions{Map: bm})
	var total snapshot.CopyEstimate
	toCopy, skipped, damaged := 0, 0, 0
	for _, sn := range selected {
		if tid, ok := inTarget[snapshot.Origin(sn)]; ok {
			skipped++
			copySkipped(u, sn, tid)
			continue
		}
		est, err := cp.Estimate(ctx, sn)
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("%w: the dry run stopped at snapshot %s", errInterrupted, sn.ID.Short())
			}
			if !sourceDamaged(err) {
				return fmt.Errorf("snapshot %s: %w", sn.ID.Short(), err)
			}
			damaged++
			copyUnreadable(u, sn, err, "snapshot %s could not be copied: %v")
			continue
		}
		toCopy++
		total.Blobs += est.Blobs
		total.Bytes += est.Bytes
		if u.json {
			u.jsonLine(map[string]any{"type": "would_copy", "snapshot_id": sn.ID.String(), "read_blobs": est.Blobs, "read_bytes": est.Bytes})
		} else {
			u.printf("would copy snapshot %s (%s, %s): at most %s to read, %s", sn.ID.Short(), localTime(sn.Time), sn.Host,
				plural(int(est.Blobs), "new blob", "new blobs"), humanBytes(est.Bytes))
		}
	}
	unreadable, unreadErr := unreadableSources(u, src, damaged, all, "would not be copied")
	if u.json {
		u.jsonLine(map[string]any{"type": "summary", "dry_run": true, "would_copy": toCopy, "skipped": skipped, "unreadable": unreadable,
			"read_blobs": total.Blobs, "read_bytes": total.Bytes})
		return unreadErr
	}
	u.printf("would copy %s to %s (%d already there), reading at most %s (%s) from the source; nothing was copied",
		plural(toCopy, "snapshot", "snapshots"), dst.r.Backend().Location(), skipped, plural(int(total.Blobs), "blob", "blobs"), humanBytes(total.Bytes))
	return unreadErr
}

// targetError says that err is the target's, naming it once: most errors
// of opening a repository start with its location already.
func targetError(to string, err error) error { return repositoryError("target", to, err) }

// repositoryError names which of copy's repositories, role ("source" or
// "target") at location, err is of.
func repositoryError(role, location string, err error) error {
	if location == "" {
		return err // none given: the error says so
	}
	loc := redactedLocation(location)
	if strings.HasPrefix(err.Error(), loc+": ") {
		return &renamedError{msg: role + " " + err.Error(), err: err}
	}
	return fmt.Errorf("%s %s: %w", role, loc, err)
}

// renamedError is err with another message, and err's meaning (its exit
// code) for errors.As and errors.Is.
type renamedError struct {
	msg string
	err error
}

func (e *renamedError) Error() string { return e.msg }
func (e *renamedError) Unwrap() error { return e.err }

// sameLocation reports whether two repository locations are one: the same
// string, or local directories that are the same directory (a symlink).
func sameLocation(a, b string) bool {
	if a == b {
		return true
	}
	fa, errA := os.Stat(a)
	fb, errB := os.Stat(b)
	return errA == nil && errB == nil && os.SameFile(fa, fb)
}

// trimBlobMap drops from the pair map the blobs the source no longer
// holds, once the map holds more than twice the pairs the source's index
// could (and 10,000 more: a map that size is small whatever it holds).
func trimBlobMap(u *ui, bm *index.BlobMap, src *index.Index) {
	if bm == nil || bm.Len() <= 2*src.BlobEntries()+10000 {
		return
	}
	removed, err := bm.Trim(func(id repo.ID) bool {
		_, ok := src.Lookup(repo.DataBlob, id)
		return ok
	})
	if err != nil {
		u.warnf("the copy is done; trimming its map of copied blobs in the cache failed: %v", err)
		return
	}
	u.infof("dropped %d blobs the source no longer holds from the cache's map of copied blobs", removed)
}

// latestVersions keeps, of the snapshots of sns that are one snapshot
// stored more than once (a 'snap tag' killed between saving the new
// document and removing the old one leaves both), the one stored anew:
// which was copied depended on the order of their IDs, and the untagged
// one could win (found by an exploratory test).
func latestVersions(sns []*snapshot.Snapshot) []*snapshot.Snapshot {
	best := map[repo.ID]*snapshot.Snapshot{}
	for _, sn := range sns {
		o := snapshot.Origin(sn)
		if b := best[o]; b == nil || b.Original == nil && sn.Original != nil {
			best[o] = sn
		}
	}
	out := sns[:0:0]
	for _, sn := range sns {
		if best[snapshot.Origin(sn)] == sn {
			out = append(out, sn)
		}
	}
	return out
}
