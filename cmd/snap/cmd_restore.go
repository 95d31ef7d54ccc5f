package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/snap-backup/snap/index"
	"github.com/snap-backup/snap/repo"
	"github.com/snap-backup/snap/repo/local"
	"github.com/snap-backup/snap/snapshot"
	"github.com/snap-backup/snap/sources"
)

func restoreCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:      "restore",
		Usage:     "restore a snapshot, or a part of it, into a directory, and database dumps into databases",
		ArgsUsage: "SNAPSHOT[:SUBPATH] | SNAPSHOT SUBPATH | --at TIME [SUBPATH]",
		Description: "Writes the snapshot (or the directory or file SUBPATH inside it) into --target, with contents and\n" +
			"metadata. Every blob is verified as it is read, and nothing is ever written outside the target.\n" +
			"--at picks the newest snapshot taken at or before TIME, under the --host/--tag/--path filters\n" +
			"(then the argument, if any, is the SUBPATH to restore).\n" +
			"--db NAME streams a dump back into its database (with psql, mariadb or mongorestore; an SQLite\n" +
			"dump is loaded by snap itself), or into the one --to names; a database that does not exist is\n" +
			"created, one that holds data is only replaced with --replace.",
		Flags: append(filterFlags(),
			&cli.StringFlag{Name: "target", Aliases: []string{"t"}, Usage: "directory to restore into (created if missing)"},
			&cli.StringFlag{Name: "at", Usage: "restore the state at `TIME`: \"2026-11-17 03:00\", \"03:00 last tuesday\", \"yesterday\", 36h, 9d, RFC 3339 …"},
			multiFlag("include", "restore only paths matching this glob (repeatable)", "i"),
			multiFlag("exclude", "do not restore paths matching this glob (repeatable)", "e"),
			multiFlag("db", "restore the dump `NAME` (its path, as 'snap ls' shows it, or its database name) into its database (repeatable)"),
			&cli.StringFlag{Name: "to", Usage: "restore the --db dump into this database instead (`URL`; created if it does not exist)"},
			&cli.BoolFlag{Name: "replace", Usage: "with --db: replace a database that exists and holds data"},
			&cli.BoolFlag{Name: "no-sparse", Usage: "write runs of zeros as data instead of leaving holes: swap files, and files preallocated so that writes into them never meet a full disk"},
			&cli.StringFlag{Name: "overwrite", Value: "always", Usage: "what to do with files already in the target: always (replace), if-changed (keep a file whose size and modification time match the snapshot: resumes an interrupted restore) or never"},
		),
		Action: func(c *cli.Context) error {
			return runRestore(c, e)
		},
	}
}

// restoreJSON is the documented "summary" line of restore (docs/usage.md).
type restoreJSON struct {
	Type         string `json:"type"`
	SnapshotID   string `json:"snapshot_id"`
	ShortID      string `json:"short_id"`
	Path         string `json:"path"`
	PathBase64   string `json:"path_base64,omitempty"` // set when path is not valid UTF-8
	Target       string `json:"target"`
	TargetBase64 string `json:"target_base64,omitempty"`
	Files        int64  `json:"files"`
	Dirs         int64  `json:"dirs"`
	Other        int64  `json:"other"` // symlinks, devices, FIFOs, sockets
	Bytes        int64  `json:"bytes"`
	Errors       int64  `json:"errors"`
	Skipped      int64  `json:"skipped"`
	// Differing: of the skipped, the files --overwrite never left whose
	// size or modification time differ from the snapshot's.
	Differing int64 `json:"differing"`
	// Damaged: of the errors, the files left incomplete for damaged or
	// missing data in the repository.
	Damaged         int64   `json:"damaged"`
	DurationSeconds float64 `json:"duration_seconds"`
}

func runRestore(c *cli.Context, e *env) error {
	target := c.String("target")
	dbs := multiValues(c, "db")
	if slices.Contains(dbs, "") {
		return usagef("--db needs the name of a dump (its database name, or its path as snap ls shows it)")
	}
	if target == "" && len(dbs) == 0 {
		return usagef("restore needs --target DIR, or --db NAME to restore a database dump")
	}
	if target == "-" {
		// Not standard output, which restore does not write to.
		return usagef("--target -: restore writes into a directory; 'snap dump SNAPSHOT PATH' writes a file, or a directory as a tar archive, to standard output (a directory named -: --target ./-)")
	}
	if target != "" {
		if err := checkTargetDir(target); err != nil {
			return err
		}
	}
	if c.String("to") != "" && len(dbs) != 1 {
		return usagef("--to goes with exactly one --db NAME")
	}
	if c.Bool("replace") && len(dbs) == 0 {
		return usagef("--replace goes with --db NAME")
	}
	at := c.String("at")
	// 'restore ID /srv/app', the form ls and dump take, is ID:/srv/app
	// (it was refused; found by an exploratory test).
	twoArgs := at == "" && c.NArg() == 2 && !strings.Contains(c.Args().Get(0), ":")
	if !twoArgs && (at == "" && c.NArg() == 0 || c.NArg() > 1) {
		return usagef("give either SNAPSHOT[:SUBPATH], SNAPSHOT SUBPATH or --at TIME [SUBPATH]")
	}
	var sub string
	if at != "" && c.NArg() == 1 {
		// With --at the snapshot is chosen by time; what follows is the
		// part of it to restore, as dump and ls take it.
		// A relative SUBPATH is taken from / first, as ls and dump take
		// it (atPaths); what looks like a snapshot is refused.
		sub = c.Args().First()
		if ref, _ := splitSnapshotArg(sub); !strings.HasPrefix(sub, "/") && (ref == "latest" || checkSnapshotRef(ref) == nil && (ref != sub || len(ref) >= 8)) {
			return usagef("with --at TIME, the argument is the SUBPATH to restore, a path in the snapshot starting with / (got %q): give either SNAPSHOT[:SUBPATH] or --at TIME [SUBPATH]", sub)
		}
	}
	overwrite, err := snapshot.ParseOverwrite(c.String("overwrite"))
	if err != nil {
		return usagef("--overwrite %v", err)
	}
	inc, err := sources.ParsePatterns(multiValues(c, "include"))
	if err != nil {
		return usagef("--include: %v", err)
	}
	exc, err := sources.ParsePatterns(multiValues(c, "exclude"))
	if err != nil {
		return usagef("--exclude: %v", err)
	}
	var when time.Time
	if at != "" {
		if when, err = parseAt(at, e.now()); err != nil {
			return usagef("--at: %v", err)
		}
	}
	s, err := openSession(c, e, sharedLock)
	if err != nil {
		return err
	}
	defer s.close()
	u := s.ui
	var sn *snapshot.Snapshot
	var ref string
	if at == "" {
		ref, sub = splitSnapshotArg(c.Args().First())
		if twoArgs {
			ref, sub = c.Args().Get(0), c.Args().Get(1)
		}
	}
	switch {
	case at != "" || ref == "latest" && len(dbs) > 0:
		// With --db, 'latest' and --at mean the newest snapshot that holds
		// the dumps: a files-only job may have run after the database's.
		sns, err := s.snapshots(c.Context)
		if err != nil {
			return err
		}
		all := sns
		kind := ""
		if to := c.String("to"); to != "" {
			if d, err := sources.ParseDatabase(to); err == nil {
				kind = d.Kind
			}
		}
		if held := holdingDumps(sns, dbs, kind); len(held) > 0 || kind == "" {
			sns = held
		} else {
			// None of the kind --to names holds them: among those of
			// other kinds, the restore names the mistake (exit 2), where
			// it said "no matching snapshot".
			sns = holdingDumps(sns, dbs, "")
		}
		if at != "" {
			sn, err = s.findAt(c, sns, when, atPaths(sub)...)
		} else {
			sn, err = s.find(c, sns, ref)
		}
		if err != nil {
			if len(dbs) > 0 && errors.Is(err, snapshot.ErrNoSnapshot) {
				if at != "" && len(sns) > 0 {
					// Snapshots hold the dumps, but none by then:
					// findAt's error says which comes first (it said "no
					// snapshot holds a dump named", naming the newest;
					// found by an exploratory test).
					return fmt.Errorf("%w (among the snapshots that hold the dump %s)", err, strings.Join(dbs, " and "))
				}
				return noDumpHeld(c, all, dbs, kind, err)
			}
			return err
		}
	default:
		if sn, err = s.findSnapshot(c, ref, atPaths(sub)...); err != nil {
			return err
		}
	}
	if target == "" {
		if sub != "" {
			return usagef("--db restores whole dumps: give the snapshot without :SUBPATH")
		}
		return restoreDatabases(c, e, s, sn, dbs, c.String("to"), c.Bool("replace"))
	}
	given := sub
	sub = path.Clean("/" + sub)
	node, err := snapshot.FindNode(c.Context, s.ix, sn.Tree, sub)
	if err != nil {
		return s.pathError(c, sn, given, at != "", err)
	}
	if abs, err := filepath.Abs(target); err == nil {
		// Messages, file events and the summary name where the files
		// went, as create's name where they came from: absolute.
		target = abs
	}
	own := s.ownDirs(restoreRepoWhy, restoreCacheWhy)
	if err := checkTargetPlace(target, own); err != nil {
		return err
	}
	var dbPlans []dbRestore
	if len(dbs) > 0 {
		// Before the first file (and the target's directory): a misspelt name, or a database that
		// holds data, is found before the files take hours.
		if dbPlans, err = planDatabases(c, e, sn, dbs, c.String("to"), c.Bool("replace"), true); err != nil {
			return err
		}
	}
	t, err := sources.OpenTarget(target)
	if err != nil {
		return err
	}
	defer t.Close()
	// A target above the repository or the cache: a directory of the
	// snapshot restored onto one of them is left alone, with an error
	// (another host's /srv restored to /, over this repository at
	// /srv/backup). Matched by device and inode, as the kernel finds
	// them: a relative --repo, a bind mount or a data/ linked to another
	// disk are the same directories (found by a review).
	t.LeaveOut(own)
	t.LeaveRepositories(local.HoldsRepository)
	u.infof("restoring snapshot %s (%s) %s to %s", sn.ID.Short(), localTime(sn.Time), sub, target)
	workers := 0 // the restorer's default
	if s.connections > 0 {
		workers = max(s.connections, 2*runtime.NumCPU())
	}
	var blobs snapshot.BlobLoader
	ctx := c.Context
	if isRemote(s.location) && len(inc) == 0 && len(exc) == 0 {
		f, err := planFetch(c.Context, s, sub, node)
		if err != nil {
			return err
		}
		defer f.Close()
		blobs = f
		ctx = index.ReadBasesFrom(ctx, f) // the deltas' bases too
	}
	// opCtx is the restore's own: a bug in the progress display stops it
	// (c.Context stays the signal's).
	opCtx, stopOp := context.WithCancel(ctx)
	defer stopOp()
	p := newProgress(e, u, "restore", stopOp)
	rs := snapshot.NewRestorer(s.ix, t, snapshot.RestoreOptions{Includes: inc, Excludes: exc, Overwrite: overwrite, Workers: workers, Blobs: blobs, Report: p.event,
		NoSparse: c.Bool("no-sparse")})
	p.begin()
	if p.shown() {
		if sub == "/" && len(inc) == 0 && len(exc) == 0 {
			p.setTotal(sn.Summary.Files, sn.Summary.Bytes, true)
		} else {
			sctx, cancel := context.WithCancel(opCtx)
			defer cancel()
			go p.guard(func() { scanTree(sctx, s.ix, sub, node, inc, exc, p.setTotal) })
		}
	}
	start := time.Now()
	st, err := rs.Restore(opCtx, sub, node)
	p.finish()
	if bug := p.failure(); bug != nil {
		return fmt.Errorf("restore into %s: %w", target, bug)
	}
	// Damaged data in files (not trees) does not stop a restore: every
	// other entry is written, and the summary says so before the error
	// (it said a restore with --exclude would restore the rest, which
	// was restored; found by an exploratory test). The first damaged
	// file is the error itself, not among the entries reported.
	damagedOnly := err != nil && st.Damaged > 0 && !st.Stopped && c.Context.Err() == nil
	if damagedOnly {
		st.Errors++
	}
	if err != nil && !damagedOnly {
		if c.Context.Err() != nil {
			return fmt.Errorf("%w: restore stopped after %s; %s is incomplete (%s partly written): run the restore again with --overwrite if-changed to finish it; the repository is untouched",
				errInterrupted, plural(int(st.Files), "file", "files"), target, plural(int(st.Incomplete), "file", "files"))
		}
		advice := ""
		if (errors.Is(err, repo.ErrNotFound) || errors.Is(err, repo.ErrCorrupt) || errors.Is(err, index.ErrBlobNotIndexed)) && !errors.Is(err, index.ErrCacheDamaged) {
			// What to do next: the raw error alone said nothing of it
			// (found by an exploratory test). Damaged bytes are found
			// only by reading them: plain check said "no errors found"
			// (found by a re-test).
			advice = "; the repository is damaged: " + checkFor(err) + " names the snapshots and files that lost data, and a restore with --exclude of them restores the rest"
		}
		if st.Incomplete > 0 {
			// Files under way when the damage stopped the restore.
			return fmt.Errorf("restore into %s: %w; %s more left partly written when the restore stopped%s", target, err, plural(int(st.Incomplete), "file", "files"), advice)
		}
		return fmt.Errorf("restore into %s: %w%s", target, err, advice)
	}
	if len(inc) > 0 && st.Files+st.Other+st.Dirs+st.Skipped+st.Errors == 0 {
		// Nothing restored is a failure: a script that restores one file
		// by --include went on without it, exit 0 (found by an
		// exploratory test). It comes before the summary, which would
		// read as a success above it.
		also := ""
		if len(exc) > 0 {
			also = " that --exclude left in"
		}
		example := path.Join(sub, "…")
		if sub == "/" && len(sn.Paths) > 0 {
			example = path.Join(sn.Paths[0], "…") // "/…" read as a placeholder
		}
		return fmt.Errorf("--include matched no file%s below %s, so nothing was restored: patterns are matched against paths in the snapshot (e.g. %s), see 'snap ls'",
			also, sources.DisplayPath(sub), sources.DisplayPath(example))
	}
	if st.Differing > 0 {
		what := fmt.Sprintf("%d files left as they were differ", st.Differing)
		if st.Differing == 1 {
			what = "1 file left as it was differs"
		}
		u.warnf("%s from the snapshot in kind, size or modification time (%s): partly written by a restore that was cut off, or changed since; --overwrite if-changed writes them from the snapshot",
			what, sources.DisplayPath(st.FirstDiffering))
	}
	if u.json {
		u.jsonLine(restoreJSON{Type: "summary", SnapshotID: sn.ID.String(), ShortID: sn.ID.Short(), Path: sub, PathBase64: pathBase64(sub), Target: target, TargetBase64: pathBase64(target), Files: st.Files, Dirs: st.Dirs, Other: st.Other,
			Bytes: st.Bytes, Errors: st.Errors, Skipped: st.Skipped, Differing: st.Differing, Damaged: st.Damaged, DurationSeconds: round2(time.Since(start).Seconds())})
	} else {
		other, skipped := "", ""
		if st.Other > 0 {
			other = ", " + plural(int(st.Other), "symlink or special file", "symlinks and special files")
		}
		if st.Skipped > 0 {
			skipped = fmt.Sprintf("; %d left as they were (--overwrite %s)", st.Skipped, c.String("overwrite"))
		}
		what := "restored snapshot"
		if st.Errors > 0 {
			// Not a success line above the error that follows.
			what = "restored part of snapshot"
		}
		u.printf("%s %s (%s, host %s) to %s: %s, %s%s, %s%s", what, sn.ID.Short(), localTime(sn.Time), sources.DisplayPath(sn.Host), sources.DisplayPath(target), plural(int(st.Files), "file", "files"),
			plural(int(st.Dirs), "dir", "dirs"), other, humanBytes(st.Bytes), skipped)
	}
	if damagedOnly {
		others := ""
		if len(dbs) > 0 {
			// The files' failure comes before the databases (found by a
			// review: they were not restored, and nothing said so).
			others = "; the databases of --db were not restored: restore them with --db alone"
		}
		if n := st.Errors - st.Damaged; n > 0 {
			others += fmt.Sprintf("; %s could not be written (listed above): once the cause is fixed, the same restore with --overwrite if-changed restores what is missing and keeps what is complete", plural(int(n), "other entry", "other entries"))
		}
		if st.CacheDamaged > 0 && st.CacheDamaged < st.Damaged {
			// Both: the repository's damage is what needs the admin
			// (a summary that named the cache alone hid it; found by a
			// re-test).
			return fmt.Errorf("%w; %s could not be restored whole (this one and any named above; each is left incomplete), %d of them for this host's damaged index cache, which the next command rebuilds, the others for damage in the repository; every other entry was restored%s; the repository is damaged: %s names the snapshots and files that lost data",
				err, plural(int(st.Damaged), "file", "files"), st.CacheDamaged, others, checkFor(err))
		}
		if errors.Is(err, index.ErrCacheDamaged) {
			// The error says what to do; the repository is whole.
			return fmt.Errorf("%w; %s could not be restored whole (this one and any named above; each is left incomplete), every other entry was restored%s; once the cache is rebuilt, the same restore with --overwrite if-changed restores the rest",
				err, plural(int(st.Damaged), "file", "files"), others)
		}
		if errors.Is(err, index.ErrBlobNotIndexed) {
			// Not lost, maybe: a segment gone leaves whole packs that no
			// segment lists, and the repair brings every file back (it
			// said "data the repository lost"; found by an exploratory
			// test).
			return fmt.Errorf("%w; %s could not be restored whole for data the index does not list (this one and any named above; each is left incomplete), every other entry was restored%s; run 'snap check': packs that exist but are not indexed are indexed again by 'snap repair index --from-packs', after which the same restore with --overwrite if-changed restores the rest",
				err, plural(int(st.Damaged), "file", "files"), others)
		}
		return fmt.Errorf("%w; %s could not be restored whole for data the repository lost (this one and any named above; each is left incomplete), every other entry was restored%s; the repository is damaged: %s names the snapshots and files that lost data",
			err, plural(int(st.Damaged), "file", "files"), others, checkFor(err))
	}
	if st.Errors > 0 {
		// How to finish once the cause is gone (a server that went away
		// and came back): the failure said nothing of it, where Ctrl-C's
		// message does (found by an exploratory test).
		return fmt.Errorf("%s could not be restored (listed above); once the cause is fixed, the same restore with --overwrite if-changed restores what is missing and keeps what is complete", plural(int(st.Errors), "entry", "entries"))
	}
	if len(dbs) > 0 {
		return loadDatabases(c, s, sn, dbs, dbPlans, c.Bool("replace"))
	}
	return nil
}

// planFetch prepares a whole-restore from a remote repository: it walks
// the trees to be restored (from the local tree cache) and counts the
// blobs needed from each pack, so that packs mostly needed are fetched
// with one request each instead of one per blob, up to the connection
// limit at once, ahead of the restorer, in the order the walk first needs
// them (the restorer walks the same trees in the same order, a few
// directories at a time).
func planFetch(ctx context.Context, s *session, sub string, node snapshot.Node) (*index.PackFetcher, error) {
	plan := index.NewPackPlan()
	linked := map[snapshot.LinkGroup]bool{}
	err := snapshot.Walk(ctx, s.ix, sub, node, func(_ string, n *snapshot.Node) error {
		if n.Links > 1 && n.Type == sources.TypeFile {
			// The restorer reads a hard-linked file once and links the rest.
			key := n.LinkGroup()
			if linked[key] {
				return nil
			}
			linked[key] = true
		}
		for _, id := range n.Content {
			plan.Add(s.ix, id)
			plan.AddBases(s.ix, id) // read through the fetcher (runRestore)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return s.ix.NewPackFetcher(ctx, s.cache, plan, index.FetchOptions{Ahead: s.connections})
}

// holdingDumps returns the snapshots that hold every dump names asks for
// (as restore --db NAME finds them; an ambiguous name counts as held, for
// restore to report it).
func holdingDumps(sns []*snapshot.Snapshot, names []string, kind string) []*snapshot.Snapshot {
	if len(names) == 0 {
		return sns
	}
	var out []*snapshot.Snapshot
	for _, sn := range sns {
		held := true
		for _, n := range names {
			var ue *usageError
			var ok otherKindError
			src, err := findDumpSourceOfKind(sn, n, kind)
			if err != nil && (!errors.As(err, &ue) || errors.As(err, &ok)) || err == nil && kind != "" && src.Kind != kind {
				// Not there, or of another kind than --to names (an all.sql
				// of MariaDB's is no dump to load into PostgreSQL).
				held = false
				break
			}
		}
		if held {
			out = append(out, sn)
		}
	}
	return out
}

// noDumpHeld is the error of a --db that no snapshot (under the filters)
// holds: it names what the latest snapshot with dumps has, with a "did you
// mean". It said "no matching snapshot: no snapshot for 'latest' with
// these filters" when no filter was given, and nothing of the dumps there
// are (found by an exploratory test). err is the error of the choice, said
// when no snapshot under the filters holds dumps at all.
func noDumpHeld(c *cli.Context, all []*snapshot.Snapshot, dbs []string, kind string, err error) error {
	isDump := func(src snapshot.Source) bool {
		return slices.Contains(dbKinds, src.Kind) && (kind == "" || src.Kind == kind)
	}
	var withDumps []*snapshot.Snapshot
	for _, sn := range all {
		if slices.ContainsFunc(sn.Sources, isDump) {
			withDumps = append(withDumps, sn)
		}
	}
	latest, ferr := snapshot.Find(withDumps, "latest", filterFrom(c))
	if ferr != nil {
		if held := holdingDumps(all, dbs, kind); len(held) > 0 {
			// The filters' note was made among the holders alone: "no
			// snapshot has host SP" of a host that has snapshots
			// (found by an exploratory test).
			return fmt.Errorf("%w: %s", snapshot.ErrNoSnapshot, heldElsewhere("the dump "+strings.Join(dbs, " and "), held))
		}
		return fmt.Errorf("%w (looking for one that holds the dump %s)", err, strings.Join(dbs, " and "))
	}
	holds := func(sn *snapshot.Snapshot, n string) bool {
		_, derr := findDumpSourceOfKind(sn, n, kind)
		return derr == nil
	}
	// Of several names, those no snapshot holds at all are the mistake
	// (a misspelt one among right ones was not named; found by an
	// exploratory test); the names are then looked up, and listed, in the
	// latest snapshot that holds the others.
	var missing, found []string
	for _, n := range dbs {
		if slices.ContainsFunc(withDumps, func(sn *snapshot.Snapshot) bool { return holds(sn, n) }) {
			found = append(found, n)
		} else {
			missing = append(missing, n)
		}
	}
	if len(missing) > 0 && len(found) > 0 {
		var others []*snapshot.Snapshot
		for _, sn := range withDumps {
			if !slices.ContainsFunc(found, func(n string) bool { return !holds(sn, n) }) {
				others = append(others, sn)
			}
		}
		if sn, ferr := snapshot.Find(others, "latest", filterFrom(c)); ferr == nil {
			latest = sn
		}
	}
	var hints []string
	switch {
	case len(dbs) == 1:
		// Among every snapshot's dumps: the name meant may be in older
		// snapshots only, and the newest's alone offered nothing (found
		// by an exploratory test).
		hints = append(hints, dumpHintAmong(withDumps, dbs[0], kind, nil))
	default:
		// A name no snapshot holds, among every snapshot's dumps, the
		// other names given left out.
		for _, n := range missing {
			others := slices.DeleteFunc(slices.Clone(dbs), func(o string) bool { return o == n })
			if h := dumpHintAmong(withDumps, n, kind, others); h != "" {
				hints = append(hints, " ("+n+": "+strings.TrimPrefix(h, " ("))
			}
		}
	}
	var what string
	switch {
	case len(missing) > 0:
		quoted := make([]string, len(missing))
		for i, n := range missing {
			quoted[i] = strconv.Quote(n)
		}
		what = fmt.Sprintf("no snapshot holds a dump named %s", strings.Join(quoted, " or "))
	default:
		what = "no snapshot holds the dumps " + strings.Join(dbs, " and ") + " together"
	}
	var paths []string
	for _, src := range latest.Sources {
		if isDump(src) {
			paths = append(paths, src.Path)
		}
	}
	return fmt.Errorf("%s; the latest snapshot with dumps, %s (%s, host %s), has %s%s", what, latest.ID.Short(), localTime(latest.Time), latest.Host,
		strings.Join(paths, ", "), strings.Join(hints, ""))
}

// checkTargetDir refuses a --target that exists and is not a directory, or
// that has a file among its parents, before anything is opened: restore
// said only "mkdir FILE: file exists" (found by an exploratory test). What
// does not exist yet is created.
func checkTargetDir(target string) error {
	fi, err := os.Stat(target)
	shown := sources.DisplayPath(target)
	var msg error
	switch {
	case err == nil && fi.Mode().IsRegular():
		msg = usagef("--target %s is a file, not a directory: restore writes into a directory (a single file under its own name); give a directory, or write one file with 'snap dump SNAPSHOT PATH > FILE'", shown)
	case err == nil && !fi.IsDir():
		what := "a device"
		switch {
		case fi.Mode()&os.ModeNamedPipe != 0:
			what = "a named pipe"
		case fi.Mode()&os.ModeSocket != 0:
			what = "a socket"
		}
		msg = usagef("--target %s is %s, not a directory: give a directory to restore into", shown, what)
	case errors.Is(err, syscall.ENOTDIR):
		msg = usagef("--target %s: a part of that path is a file, not a directory: give a directory to restore into", shown)
	case errors.Is(err, fs.ErrNotExist):
		to, lerr := os.Readlink(target)
		if lerr != nil {
			return nil
		}
		// A dangling symlink: OpenTarget refused it with exit 1, where
		// every other target that is no directory gets exit 2.
		msg = usagef("--target %s is a symlink to %s, which does not exist: create that directory, or give another --target", shown, sources.DisplayPath(to))
	default:
		return nil
	}
	// The path's bytes go along on the final JSON line (path_base64).
	return &namedPathError{target, msg}
}

// What the directories a restore leaves alone are (session.ownDirs), as
// its messages say.
const (
	restoreRepoWhy  = "the repository this restore reads"
	restoreCacheWhy = "snap's cache of the repository this restore reads"
)

// checkTargetPlace refuses a --target where the restore would write into a
// repository: into one of own (the repository it reads, its cache here),
// or into any other snap repository, whose config and keys the snapshot's
// files replaced, leaving it unreadable (found by an exploratory test). A
// target above them is checked as the restore goes (sources.Target's
// LeaveOut and LeaveRepositories).
func checkTargetPlace(target string, own map[[2]uint64]string) error {
	shown := sources.DisplayPath(target)
	for q := resolveExisting(target); ; q = filepath.Dir(q) {
		if k, ok := dirKey(q, true); ok && own[k] != "" {
			return &namedPathError{target, usagef("--target %s: %s is %s, which a restore into it would damage: give another --target", shown, sources.DisplayPath(q), own[k])}
		}
		if local.HoldsRepository(q) {
			return &namedPathError{target, usagef("--target %s: %s holds a backup repository (a config file and key files), whose files a restore into it would replace or mix with the snapshot's: restore into another directory, and move from there what you need", shown, sources.DisplayPath(q))}
		}
		if q == filepath.Dir(q) {
			break
		}
	}
	return nil
}

// resolveExisting returns the absolute path p with its existing part's
// symlinks resolved, as the kernel follows them; what does not exist yet
// stays as given.
func resolveExisting(p string) string {
	p, _ = filepath.Abs(p)
	var rest []string
	for q := p; ; q = filepath.Dir(q) {
		if r, err := filepath.EvalSymlinks(q); err == nil {
			return filepath.Join(append([]string{r}, rest...)...)
		}
		if q == filepath.Dir(q) {
			return p
		}
		rest = append([]string{filepath.Base(q)}, rest...)
	}
}

// checkFor is the check that finds the damage err is of: damaged bytes
// only by reading them (plain check said "no errors found"; found by a
// re-test).
func checkFor(err error) string {
	if errors.Is(err, repo.ErrCorrupt) {
		return "'snap check --read-data'"
	}
	return "'snap check'"
}
