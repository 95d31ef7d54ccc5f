package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"

	"github.com/snap-backup/snap/index"
	"github.com/snap-backup/snap/repo"
	"github.com/snap-backup/snap/snapshot"
	"github.com/snap-backup/snap/sources"
)

func createCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:      "create",
		Aliases:   []string{"backup"},
		Usage:     "create a snapshot of paths, database dumps and command output",
		ArgsUsage: "[PATH...] [--db URL]... [--stdin NAME] [--command NAME -- CMD ARGS...]",
		Description: "Backs up the given paths, database dumps (--db), standard input (--stdin) and a command's output\n" +
			"(--command) into one snapshot; dumps and file reads run in parallel. Files unchanged since the parent\n" +
			"snapshot (same host, paths and tags; --parent names another) are not read again. Unreadable files are reported and skipped: the\n" +
			"snapshot is saved and snap exits with code 3. A dump or command that fails saves no snapshot (exit 1).\n" +
			"--pre hooks run before anything is read (a failing one aborts the run); --post hooks always run.",
		Flags: []cli.Flag{
			&cli.StringSliceFlag{Name: "tag", Usage: "tag the snapshot (repeatable)"},
			&cli.StringFlag{Name: "host", Usage: "host name to record (default: this host)"},
			&cli.StringFlag{Name: "time", Usage: "time to record, RFC 3339 (default: now)"},
			multiFlag("exclude", "skip paths matching this glob (repeatable)", "e"),
			multiFlag("exclude-file", "skip paths matching the globs in `FILE`, one per line (lines starting with '#' are comments; repeatable)"),
			multiFlag("exclude-if-present", "save a directory that holds an entry named `NAME` with that entry only (a directory of that name whole; repeatable)"),
			&cli.BoolFlag{Name: "exclude-caches", Usage: "save a directory with a CACHEDIR.TAG (https://bford.info/cachedir/) with that file only"},
			&cli.StringFlag{Name: "exclude-larger-than", Usage: "skip files larger than `SIZE` (e.g. 2GiB) found in the directories"},
			&cli.BoolFlag{Name: "one-file-system", Aliases: []string{"x"}, Usage: "do not cross file system boundaries"},
			&cli.BoolFlag{Name: "sequential-read", Usage: "read each file strictly in order, with one chunker (for a spinning disk); by default the end of each chunk is found before the chunk is read, and a file of 128 MiB or more is also read ahead, region by region, to cut it on every core"},
			&cli.StringFlag{Name: "compression", Value: "fastest", Usage: "zstd level: off, fastest, default or better"},
			&cli.BoolFlag{Name: "force", Usage: "read every file, ignoring the parent snapshot"},
			&cli.StringFlag{Name: "parent", Usage: "compare with `SNAPSHOT` (an ID, a prefix or 'latest') instead of the newest snapshot of the same host, paths and tags dated at or before this one"},
			&cli.BoolFlag{Name: "allow-emptied", Usage: "no warning when a backed-up directory, a directory that could not be listed, an entry that could not be read or a command's output is empty or missing where an earlier snapshot held data (by default that warns, exits 3 and holds a job's retention: a disk not mounted?)"},
			multiFlag("db", "dump the database at `URL` into the snapshot: postgres://user@host:port/db (or /?all), mysql://…, sqlite:///path/app.db, mongodb://… (repeatable)"),
			&cli.StringFlag{Name: "stdin", Usage: "store standard input as the file `NAME`; an empty input fails the create (a command before | that failed)"},
			&cli.BoolFlag{Name: "allow-empty-stdin", Usage: "with --stdin, save the snapshot even when standard input is empty"},
			&cli.StringFlag{Name: "command", Usage: "store the standard output of the command given after -- as the file `NAME`"},
			multiFlag("pre", "run the shell command `CMD` before reading anything; if it fails, nothing is saved (repeatable)"),
			multiFlag("post", "run the shell command `CMD` at the end, whatever happened (repeatable)"),
			&cli.IntFlag{Name: "dump-concurrency", Value: snapshot.DefaultStreams, Usage: "run at most `N` of the --db dumps, --command and --stdin at once (1 to 1048576); the others start as those end"},
			&cli.DurationFlag{Name: "hook-timeout", Value: defaultHookTimeout, Usage: "stop a --pre or --post hook that runs longer than `DURATION` (0: no limit)"},
			&cli.StringFlag{Name: "min-free", Usage: "refuse to start when the repository's device has less than `SIZE` free (e.g. 10GiB)"},
		},
		Action: func(c *cli.Context) error {
			o, plan, err := createOptionsFrom(c, e)
			if err != nil {
				return err
			}
			return runCreate(c, e, o, plan)
		},
	}
}

// createPlan is what a create does besides archiving: hooks, pre-flight
// threshold, and the stream sources still to be started.
type createPlan struct {
	streams streamFlags
	pre     []string
	post    []string
	minFree uint64
	// hookTimeout stops a pre or post hook that runs longer (0: no limit).
	hookTimeout time.Duration
	origin      string // where the paths come from, for errors: "the command", "job NAME"
	// allowEmptied: a backed-up directory that came back empty is no
	// warning (emptiedPaths).
	allowEmptied bool
	// parent names the parent snapshot (--parent), "" for the automatic one.
	parent string
}

func createOptionsFrom(c *cli.Context, e *env) (snapshot.CreateOptions, createPlan, error) {
	var o snapshot.CreateOptions
	var plan createPlan
	sf, paths, err := parseStreamFlags(c.String("stdin"), c.String("command"), multiValues(c, "db"), c.Args().Slice())
	if err != nil {
		return o, plan, err
	}
	if sf.stdinName != "" && e.stdinTTY {
		return o, plan, usagef("--stdin %s: standard input is a terminal; pipe the data in, e.g. pg_dump app | snap create --stdin %s", sf.stdinName, sf.stdinName)
	}
	if c.Bool("allow-empty-stdin") && sf.stdinName == "" {
		return o, plan, usagef("--allow-empty-stdin is for --stdin NAME")
	}
	sf.allowEmptyStdin = c.Bool("allow-empty-stdin")
	plan.streams = sf
	plan.pre, plan.post = multiValues(c, "pre"), multiValues(c, "post")
	if plan.hookTimeout = c.Duration("hook-timeout"); plan.hookTimeout < 0 {
		return o, plan, usagef("--hook-timeout: give a duration such as 10m or 2h, or 0 for no limit")
	}
	if o.Archive.Streams = c.Int("dump-concurrency"); o.Archive.Streams < 1 || o.Archive.Streams > maxDumpConcurrency {
		return o, plan, usagef("--dump-concurrency %d: give how many dumps may run at once, 1 to %d", o.Archive.Streams, maxDumpConcurrency)
	}
	if s := c.String("min-free"); s != "" {
		if plan.minFree, err = parseSize(s); err != nil {
			return o, plan, usagef("--min-free: %v", err)
		}
	}
	o.Paths = paths
	plan.origin = "the command"
	if len(o.Paths) == 0 && sf.stdinName == "" && sf.commandName == "" && len(sf.dbs) == 0 {
		return o, plan, usagef("nothing to back up: give paths, --db, --stdin or --command")
	}
	for _, t := range c.StringSlice("tag") {
		if t == "" {
			continue // an empty variable in a script: no tag
		}
		for _, tag := range strings.Split(t, ",") {
			switch {
			case !isTagWord(tag): // "a," too, as tag and forget refuse it
				// 'snap tag', forget --keep-tag and the config refuse such
				// a tag; saved, it could be neither kept nor removed.
				return o, plan, usagef("--tag %q: a tag is a non-empty word of UTF-8 without spaces or control characters (commas separate tags)", t)
			case !slices.Contains(o.Tags, tag):
				o.Tags = append(o.Tags, tag)
			}
		}
	}
	o.Host = c.String("host")
	if err := checkHost(o.Host); err != nil {
		return o, plan, usagef("--host %q: %v", o.Host, err)
	}
	if o.Host == "" {
		o.Host, _ = os.Hostname()
	}
	if t := c.String("time"); t != "" {
		ts, _, err := parseRFC3339(t)
		if err != nil {
			why := ""
			var pe *time.ParseError
			if errors.As(err, &pe) && pe.Message != "" {
				why = pe.Message + "; " // "day out of range", say
			}
			return o, plan, usagef("--time %q: %suse RFC 3339, e.g. 2026-11-20T03:00:00Z", t, strings.TrimPrefix(why, ": "))
		}
		if _, off := ts.Zone(); off <= -24*3600 || off >= 24*3600 {
			// Parsed, but no snapshot document can hold it: the backup
			// ran to its end and failed there (found by an exploratory
			// test).
			return o, plan, usagef("--time %q: a UTC offset is less than 24 hours", t)
		}
		if ts.UTC().Year() < 1970 {
			// The zero time would be taken for "not given" (now), and
			// no backup predates 1970 (in UTC: 1970-01-01T00:00+01:00
			// is of 1969).
			return o, plan, usagef("--time %q: give a time from 1970-01-01T00:00:00Z on", t)
		}
		o.Time = ts
	}
	x := excludeSpec{patterns: multiValues(c, "exclude"), files: multiValues(c, "exclude-file"),
		ifPresent: multiValues(c, "exclude-if-present"), caches: c.Bool("exclude-caches")}
	if c.IsSet("exclude-larger-than") {
		if x.largerThan, err = parseExcludeSize(c.String("exclude-larger-than")); err != nil {
			return o, plan, usagef("--exclude-larger-than: %v", err)
		}
	}
	if err := x.apply(&o.Archive); err != nil {
		return o, plan, usagef("%v", err)
	}
	o.Archive.OneFileSystem = c.Bool("one-file-system")
	if c.Bool("sequential-read") {
		o.Archive.Scouts = -1
	}
	comp, err := repo.ParseCompression(c.String("compression"))
	if err != nil {
		return o, plan, usagef("--compression: %v", err)
	}
	o.Writer = index.WriterOptions{Compression: comp, Abort: c.Context}
	o.NoParent = c.Bool("force")
	if plan.parent = c.String("parent"); plan.parent != "" {
		if o.NoParent {
			return o, plan, usagef("--parent and --force: give one (--force reads every file, comparing with no parent)")
		}
		if err := checkSnapshotRef(plan.parent); err != nil {
			return o, plan, err
		}
	}
	o.Program = "snap " + version
	plan.allowEmptied = c.Bool("allow-emptied")
	return o, plan, nil
}

// excludeSpec is what a create leaves out, as its flags or a job's config
// say.
type excludeSpec struct {
	patterns   []string // --exclude, exclude
	files      []string // --exclude-file, exclude_file
	ifPresent  []string // --exclude-if-present, exclude_if_present
	caches     bool     // --exclude-caches, exclude_caches
	largerThan uint64   // --exclude-larger-than, exclude_larger_than
}

// parseExcludeSize reads --exclude-larger-than: a size of at least one
// byte (0 would leave out every file that is not empty, which is never
// what is meant).
func parseExcludeSize(s string) (uint64, error) {
	n, err := parseSize(s)
	if err == nil && n == 0 {
		err = fmt.Errorf("size %q leaves out every file that is not empty: give a size such as 2GiB", s)
	}
	return n, err
}

// check reports the first mistake in x without reading the exclude files.
func (x excludeSpec) check() error {
	if _, err := sources.ParsePatterns(x.patterns); err != nil {
		return fmt.Errorf("exclude: %w", err)
	}
	for _, name := range x.ifPresent {
		if name == "" || name == "." || name == ".." || strings.Contains(name, "/") {
			return fmt.Errorf("exclude-if-present %q is not a file name: give a name such as .nobackup, not a path", name)
		}
	}
	return nil
}

// apply sets o's exclusions. The exclude files are read now, so a nightly
// run uses each file as it is that night.
func (x excludeSpec) apply(o *snapshot.ArchiveOptions) error {
	if err := x.check(); err != nil {
		return err
	}
	pats := append([]string(nil), x.patterns...)
	for _, f := range x.files {
		if f == "" {
			return errors.New("exclude file: the name is empty; give the path of a file of globs")
		}
		p, err := sources.ReadPatternFile(f)
		if err != nil {
			return fmt.Errorf("exclude file: %w", err)
		}
		pats = append(pats, p...)
	}
	ex, err := sources.ParsePatterns(pats)
	if err != nil {
		return err
	}
	o.Excludes, o.ExcludeIfPresent, o.ExcludeCaches, o.ExcludeLargerThan = ex, x.ifPresent, x.caches, x.largerThan
	return nil
}

func unwrapOS(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	var spe *sources.PathError
	if errors.As(err, &spe) {
		return spe.Err
	}
	return err
}

// runCreate runs one create from the command line.
func runCreate(c *cli.Context, e *env, o snapshot.CreateOptions, plan createPlan) error {
	st, err := settingsFrom(c, e)
	if err != nil {
		return err
	}
	u := newUI(c, e)
	if !o.Time.IsZero() && o.Time.After(e.now().Add(24*time.Hour)) {
		// Allowed (a clock set on purpose), but forget keeps a snapshot
		// of the future under every policy, and it is the parent of
		// every later create of these paths until then.
		u.warnf("--time %s is in the future: every forget keeps this snapshot until then; snap forget ID removes it", o.Time.Format(time.RFC3339))
	}
	var s *session
	defer func() {
		if s != nil {
			s.close()
		}
	}()
	open := func() (*session, error) {
		var err error
		s, err = openSessionAt(c.Context, e, u, st, sharedLock, commandName(c), &index.Options{})
		return s, err
	}
	_, err = createWithHooks(c.Context, e, u, st, open, o, plan)
	return err
}

// createWithHooks runs one create with what surrounds it: dump tools are
// found, the repository is opened (open returns a session holding a shared
// lock) and checked (pre-flight), the pre hooks run, then the archive. The
// post hooks run at the end whatever happened. 'snap create' and the create
// step of 'snap run' both come here.
func createWithHooks(ctx context.Context, e *env, u *ui, st repoSettings, open func() (*session, error), o snapshot.CreateOptions, plan createPlan) (sn *snapshot.Snapshot, err error) {
	h := newHooks(plan.pre, plan.post, plan.hookTimeout, st, e.getenv, o.Host, o.Tags, o.Job)
	snapshotID := ""
	defer func() {
		if len(h.post) == 0 {
			return
		}
		overran, perr := h.runPost(ctx, u, err, snapshotID)
		var pe *partialError
		te := stoppedByTimeout(ctx)
		switch {
		case perr != nil && err == nil:
			err = &postHookError{fmt.Errorf("snapshot %s was saved, but a post hook failed: %w", snapshotID[:min(8, len(snapshotID))], perr)}
		case overran != "" && te != nil && (err == nil || errors.As(err, &pe)):
			// The post hooks run to their end (the application must be
			// resumed), but the job did not finish within its timeout:
			// it fails, and says which hook took the time. It was
			// reported as ok, or its forget was blamed (found by an
			// exploratory test).
			saved := "was saved"
			if pe != nil {
				saved = "was saved with the problems listed above"
			}
			err = fmt.Errorf("snapshot %s %s, but post hook %q was still running when the job's timeout (%s) passed; post hooks run to their end (within hook_timeout), and the job's later steps were skipped: raise timeout in [jobs.%s] to cover the hooks",
				snapshotID[:min(8, len(snapshotID))], saved, overran, te.timeout, te.job)
		case perr != nil && errors.As(err, &pe):
			// Both: the hook's failure (exit 1) is not hidden behind
			// the unreadable files (exit 3). A post hook that starts the
			// application again failed, and a job counted the run as a
			// success (found by an exploratory test).
			err = &postHookError{fmt.Errorf("%w; and a post hook failed: %w", err, perr)}
		}
	}()
	// A missing path (an unmounted disk) fails the run here, after the
	// post hooks are armed: they report every failure. With pre hooks,
	// once they have run: a hook may make what is backed up (a ZFS or
	// btrfs snapshot, an export directory, a copy of a database file),
	// and the run failed before it ran, every night (found by an
	// exploratory test).
	if len(plan.pre) == 0 {
		if err := checkPathsReadable(o.Paths, plan.origin, ""); err != nil {
			return nil, err
		}
	}
	for _, db := range plan.streams.dbs {
		// Its file is looked at when its dump starts.
		db.FileLater = len(plan.pre) > 0
	}
	if err := snapshot.PathsFit(o.Paths); err != nil {
		return nil, usagef("%v; no snapshot was saved", err)
	}
	if err := unreachableInner(o.Paths, o.Archive, plan.origin); err != nil {
		return nil, err
	}
	for _, msg := range rawSQLiteCopies(plan.streams.dbs, o.Paths, o.Archive.Excludes, func(glob string) string { return "--exclude " + shQuote(glob) + ", or exclude in a job" }) {
		u.warnf("%s", msg)
	}
	streams, err := plan.streams.build(ctx, e, u)
	if err != nil {
		return nil, fmt.Errorf("create: %w; no snapshot was saved", err)
	}
	o.Streams = append(o.Streams, streams...)
	s, err := open()
	if err != nil {
		return nil, err
	}
	o.Lock = s.lock
	if s.connections > 0 {
		o.Writer.Connections = s.connections
	}
	if o.Archive.LeaveOut, err = s.leaveOut(o.Paths, plan.origin); err != nil {
		return nil, err
	}
	if plan.parent != "" {
		sns, err := s.snapshots(ctx)
		if err != nil {
			return nil, err
		}
		// Not under create's own --host and --tag, which name what to
		// record, not what to look for.
		if o.Parent, err = snapshot.Find(sns, plan.parent, snapshot.Filter{}); err != nil {
			return nil, fmt.Errorf("--parent: %w; no snapshot was saved", err)
		}
	}
	// A released (or missing) space reserve is put back before the backup
	// can take its room.
	s.fillReserve(ctx, "")
	if err := preflight(ctx, u, s.r, plan.minFree); err != nil {
		return nil, interrupted(ctx, diskFull(err)) // "interrupted: context canceled" said less
	}
	if err := h.runPre(ctx, u); err != nil {
		if sw := (*stoppedWaiting)(nil); errors.As(err, &sw) {
			return nil, err
		}
		return nil, interrupted(ctx, fmt.Errorf("create: %w; no snapshot was saved", err))
	}
	if len(plan.pre) > 0 {
		// What the hooks made is checked as a path that was there is:
		// readable, no symlink on the way to a nested path, not the
		// repository or its cache (each check skips a missing path).
		if err := checkPathsReadable(o.Paths, plan.origin, " (after the pre hooks ran)"); err != nil {
			return nil, err
		}
		if err := unreachableInner(o.Paths, o.Archive, plan.origin); err != nil {
			return nil, err
		}
		if o.Archive.LeaveOut, err = s.leaveOut(o.Paths, plan.origin); err != nil {
			return nil, err
		}
	}
	o.AllowEmptied = plan.allowEmptied
	sn, err = createSnapshot(ctx, e, s, o)
	if sn != nil {
		snapshotID = sn.ID.String()
	}
	return sn, err
}

// checkPathsReadable fails for a path given to a create that is missing or
// that this user cannot read at all (origin names where it was given;
// when is said after "path P"). Named: the final JSON line carries the
// path's bytes.
func checkPathsReadable(paths []string, origin, when string) error {
	for _, p := range paths {
		var st unix.Stat_t
		if err := sources.Lstat(p, &st); err != nil {
			return &namedPathError{p, fmt.Errorf("path %s%s: %w; check the path or remove it from %s; no snapshot was saved", sources.DisplayPath(p), when, unwrapOS(err), origin)}
		}
		// A path this user cannot read at all would be an empty part of
		// a snapshot that counts as a success (exit 3 is "saved, some
		// files unreadable"): as wrong as a missing one.
		need := uint32(0)
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFDIR:
			need = unix.R_OK | unix.X_OK
		case unix.S_IFREG:
			need = unix.R_OK
		}
		if need != 0 && len(p) < unix.PathMax {
			if err := unix.Access(p, need); errors.Is(err, unix.EACCES) {
				return &namedPathError{p, fmt.Errorf("path %s%s: this user cannot read it (%v), so nothing of it would be saved; run snap as a user who can, or remove it from %s; no snapshot was saved", sources.DisplayPath(p), when, unwrapOS(err), origin)}
			}
		}
	}
	return nil
}

// postHookError is the failure of a post hook after the snapshot was
// saved: the run failed (exit 1), but the snapshot is there, so a job's
// retention and checks still run after it. It may wrap a partialError
// too (files skipped): the exit code is still 1.
type postHookError struct{ err error }

func (e *postHookError) Error() string { return e.err.Error() }
func (e *postHookError) Unwrap() error { return e.err }

// createJSON is the documented "summary" line of create (docs/usage.md).
type createJSON struct {
	Type          string    `json:"type"`
	SnapshotID    string    `json:"snapshot_id"`
	ShortID       string    `json:"short_id"`
	Parent        *string   `json:"parent"`
	Time          time.Time `json:"time"`
	Host          string    `json:"host"`
	Tags          []string  `json:"tags"`
	Paths         []string  `json:"paths"`
	PathsBase64   []string  `json:"paths_base64,omitempty"` // as in list (pathsBase64)
	Files         int64     `json:"files"`
	Dirs          int64     `json:"dirs"`
	Bytes         int64     `json:"bytes"`
	ReadBytes     int64     `json:"read_bytes"`
	AddedBytes    int64     `json:"added_bytes"`
	AddedRawBytes int64     `json:"added_raw_bytes"`
	AddedBlobs    int64     `json:"added_blobs"`
	Errors        int64     `json:"errors"`
	// Warnings counts what was saved but is worth a look (a file that
	// changed while it was read): monitoring that reads only the summary
	// saw none of it (found by an exploratory test).
	Warnings        int64             `json:"warnings"`
	DurationSeconds float64           `json:"duration_seconds"`
	Sources         []snapshot.Source `json:"sources"`
}

// createSnapshot archives and saves one snapshot on an open session (the
// caller holds a shared lock), showing progress and printing the summary.
// It returns a *partialError when the snapshot was saved without some
// unreadable files, or with a backed-up directory that came back empty
// (unless o.AllowEmptied).
func createSnapshot(ctx context.Context, e *env, s *session, o snapshot.CreateOptions) (*snapshot.Snapshot, error) {
	u := s.ui
	// opCtx is the archive's own: a bug in the progress display stops it
	// (ctx stays the signal's, for interrupted).
	opCtx, stopOp := context.WithCancel(ctx)
	defer stopOp()
	p := newProgress(e, u, "create", stopOp)
	var running runningStreams
	o.Streams = running.track(o.Streams)
	o.Archive.Report = p.event
	o.Writer.Added = p.added
	o.Writer.Indexed = e.packs.withLedger(o.Writer.Indexed)
	o.Archive.BasesByRequest = isRemote(s.location)
	p.begin()
	if p.shown() {
		sctx, cancel := context.WithCancel(opCtx)
		defer cancel()
		setTotal := p.setTotal
		if len(o.Streams) > 0 {
			// A dump's or command's size is known only at its end: the
			// scan's totals are the files', and no percentage or ETA
			// can come of them (total_known stays false).
			setTotal = func(files, bytes int64, _ bool) { p.setTotal(files, bytes, false) }
		}
		go p.guard(func() { scanFiles(sctx, o.Paths, o.Archive, setTotal) })
	}
	// A panic in Create's own goroutine becomes its error too, so that the
	// post hooks hear of a failure, not of a success.
	if o.OwnTrees == nil {
		o.OwnTrees = s.ownTrees()
	}
	var sn *snapshot.Snapshot
	err := repo.Catch(func() (err error) {
		sn, err = snapshot.Create(opCtx, s.ix, s.loader, o)
		return err
	})
	if sn != nil {
		s.recordOwnTree(sn.Tree)
	}
	p.finish()
	if bug := p.failure(); bug != nil {
		if err == nil {
			return sn, fmt.Errorf("snapshot %s was saved, but the progress display failed: %w", sn.ID.Short(), bug)
		}
		err = bug
	}
	if err != nil && sn != nil && errors.Is(err, snapshot.ErrLockUnchecked) {
		return sn, fmt.Errorf("snapshot %s: %w", sn.ID.Short(), err)
	}
	if err != nil && sn != nil && errors.Is(err, repo.ErrNotDurable) {
		// The document is in place (it said "no snapshot was saved",
		// and list showed it; found by an exploratory test).
		return sn, fmt.Errorf("snapshot %s was saved, but the disk failed to make it durable (%w): it may not survive a crash or power loss; check the disk, then run 'snap check'", sn.ID.Short(), err)
	}
	var unknown *snapshot.SaveUnknownError
	if err != nil && errors.As(err, &unknown) {
		return nil, fmt.Errorf("create: %w", err)
	}
	if names := running.names(); err != nil && ctx.Err() != nil && names != "" {
		return nil, &stoppedWaiting{msg: fmt.Sprintf("%v while %s was still running: no snapshot was saved; the repository is consistent (data already uploaded is used by the next create, or reclaimed by 'snap prune')", errInterrupted, names),
			waitedFor: names}
	}
	if err != nil {
		return nil, interrupted(ctx, fmt.Errorf("create: %w; no snapshot was saved", diskFull(err)))
	}
	sum := sn.Summary
	if u.json {
		j := createJSON{Type: "summary", SnapshotID: sn.ID.String(), ShortID: sn.ID.Short(), Time: sn.Time, Host: sn.Host, Tags: sn.Tags, Paths: sn.Paths, PathsBase64: pathsBase64(sn.Paths),
			Files: sum.Files, Dirs: sum.Dirs, Bytes: sum.Bytes, ReadBytes: sum.ReadBytes, AddedBytes: sum.AddedBytes, AddedRawBytes: sum.AddedRaw,
			AddedBlobs: sum.AddedBlobs, Errors: sum.Errors, Warnings: p.warningCount(), DurationSeconds: round2(sum.End.Sub(sum.Start).Seconds()), Sources: sn.Sources}
		if sn.Parent != nil {
			ps := sn.Parent.String()
			j.Parent = &ps
		}
		if j.Sources == nil {
			j.Sources = []snapshot.Source{}
		}
		u.jsonLine(j)
	} else {
		parent := "none"
		if sn.Parent != nil {
			parent = sn.Parent.Short()
		}
		u.printf("snapshot %s saved (parent %s)", sn.ID.Short(), parent)
		for _, src := range sn.Sources {
			what := src.Kind
			if src.URL != "" {
				what = src.URL
			}
			if src.Tool != "" {
				what += " with " + src.Tool
			}
			u.printf("%s: %s (%s)", src.Path, humanBytes(src.Size), what)
		}
		u.printf("files: %d, dirs: %d, %s in total", sum.Files, sum.Dirs, humanBytes(sum.Bytes))
		u.printf("read: %s, added to the repository: %s (%s before compression) in %s",
			humanBytes(sum.ReadBytes), humanBytes(sum.AddedBytes), humanBytes(sum.AddedRaw), sum.End.Sub(sum.Start).Round(time.Millisecond))
	}
	var damaged, cache []index.DamagedCopy // the repository's damage; the cache's
	for _, d := range s.ix.Damaged() {
		if errors.Is(d.Err, index.ErrCacheDamaged) {
			cache = append(cache, d)
		} else {
			damaged = append(damaged, d)
		}
	}
	if len(cache) > 0 {
		// Not the repository's damage: what did not read through the
		// cache was stored anew, and the next command rebuilds the cache
		// (it failed the run as repository damage; found by an
		// exploratory test).
		u.warnf("%v (found reading %s blob %s): the next command rebuilds it from the repository; this run stored anew what it could not read through it (%s)",
			index.ErrCacheDamaged, cache[0].Type, cache[0].ID.Short(), plural(len(cache), "blob", "blobs"))
	}
	if len(damaged) > 0 {
		// The snapshot is saved, and holds anew what this run found
		// damaged; but its unchanged files may rely on other damaged data
		// that nothing read, and earlier snapshots are damaged: the run
		// fails, so that monitoring sees it and a job's retention waits.
		more := ""
		if len(damaged) > 1 {
			more = fmt.Sprintf(" (and %d more)", len(damaged)-1)
		}
		return sn, fmt.Errorf("snapshot %s saved, but the repository holds damaged data: %v%s; this run stored anew what it needed of it, but files it did not read may rely on more: run 'snap check --read-data' and follow its advice",
			sn.ID.Short(), damaged[0].Err, more)
	}
	var emptied, entries []string
	if !o.AllowEmptied {
		unlisted, unread := p.unreadable()
		emptied, entries = emptiedPaths(ctx, s, sn, unlisted, unread)
	}
	for _, msg := range emptied {
		u.warnf("%s", msg)
	}
	for i, msg := range entries {
		if i == maxEmptiedShown && len(entries) > i+1 {
			u.warnf("and %d more entries that an earlier snapshot held could not be read or listed (each is named by its error above)", len(entries)-i)
			break
		}
		u.warnf("%s", msg)
	}
	n := len(emptied) + len(entries)
	switch {
	case sum.Errors > 0:
		return sn, &partialError{msg: p.partialMessage(sn.ID.Short(), sum.Errors), emptied: n > 0}
	case n > 0:
		return sn, &partialError{msg: fmt.Sprintf("snapshot %s saved, but %s came back empty where an earlier snapshot held data (above): mount the disk, or mend what the warning names, and run the backup again", sn.ID.Short(), plural(n, "source", "sources")), emptied: true}
	}
	return sn, nil
}

// maxEmptiedShown bounds the warnings of emptiedPaths shown: a directory
// of thousands of files that turned unreadable (a chmod, a changed owner)
// is one problem, and each file has its error line already.
const maxEmptiedShown = 20

// maxUnreadLookBack bounds how many earlier snapshots emptiedPaths reads
// for an entry that could not be read: one that never read (another
// user's file in a home directory) is looked up in each of them every
// night.
const maxUnreadLookBack = 60

// emptyOnDisk reports whether the directory at p holds no entry now.
func emptyOnDisk(p string) bool {
	f, err := os.Open(p)
	if err != nil {
		return false
	}
	defer f.Close()
	names, err := f.Readdirnames(1)
	return len(names) == 0 && err == io.EOF
}

// emptiedPaths names what came back empty in sn where an earlier snapshot
// of the same host and paths held data:
//   - a backed-up directory (a path given) that is empty on disk: most
//     often a disk that is not mounted, whose mount point is an empty
//     directory (found by an exploratory test: two such nightly runs, and
//     keep-last 2 had forgotten the last snapshots with the data);
//   - a directory that could not be listed (unlisted: create saved it
//     empty, with its own metadata), another entry that could not be read
//     and was left out (unread: within maxUnreadLookBack snapshots), and a
//     command's output that is empty (the command exited 0 without
//     writing: a dump behind a wrapper that hides its failure). Each exits
//     3 anyway or shows a notice, but the job's retention ran, and after
//     keep-last nights the data was gone while the job's metrics said
//     success (found by exploratory tests).
//
// It returns the warnings for the paths given and the commands, each
// shown, apart from those for the entries below them that could not be
// listed or read, of which maxEmptiedShown are (each has its error line
// too; thousands of them, a chmod of a directory's files, are one
// problem).
//
// Such a snapshot is saved (it is what was there), but the run exits 3,
// and a job's retention waits. It looks back past the earlier snapshots in
// which the source was empty too, so that the second night warns as the
// first did, but not past one taken with --allow-emptied (the admin said
// the emptying was right).
func emptiedPaths(ctx context.Context, s *session, sn *snapshot.Snapshot, unlisted, unread []string) (out, entries []string) {
	// The directories that are empty, in the snapshot and (a path given)
	// on disk, not by --exclude, and the command outputs that are empty:
	// nearly always none, and then the snapshots need not be listed.
	type emptyDir struct {
		path     string
		tree     repo.ID
		unlisted bool
	}
	var empty []emptyDir
	finder := snapshot.NewNodeFinder(s.ix)
	emptyTree := func(p string) (repo.ID, bool) {
		n, err := finder.Find(ctx, sn.Tree, p)
		if err != nil || n.Type != sources.TypeDir {
			return repo.ID{}, false
		}
		t, err := snapshot.LoadTree(ctx, s.ix, n.Subtree)
		return n.Subtree, err == nil && len(t.Nodes) == 0
	}
	for _, p := range sn.Paths {
		if id, ok := emptyTree(p); ok && emptyOnDisk(p) {
			empty = append(empty, emptyDir{p, id, false})
		}
	}
	for _, p := range unlisted {
		if id, ok := emptyTree(p); ok {
			empty = append(empty, emptyDir{p, id, true})
		}
	}
	var quiet []snapshot.Source
	for _, src := range sn.Sources {
		if src.Kind == sources.KindCommand && src.Size == 0 {
			quiet = append(quiet, src)
		}
	}
	var missing []string // entries that could not be read, and are not in sn
	for _, p := range unread {
		if _, err := finder.Find(ctx, sn.Tree, p); err != nil {
			missing = append(missing, p)
		}
	}
	if len(empty) == 0 && len(quiet) == 0 && len(missing) == 0 {
		return nil, nil
	}
	sns, _, err := s.loader.List(ctx)
	if err != nil {
		return nil, nil
	}
	var earlier, earlierAll []*snapshot.Snapshot // newest first; earlierAll: with the same streams too
	for i := len(sns) - 1; i >= 0; i-- {
		x := sns[i]
		if x.ID != sn.ID && x.Host == sn.Host && slices.Equal(x.Paths, sn.Paths) && !x.Time.After(sn.Time) {
			earlier = append(earlier, x)
			if snapshot.SameContent(x, sn) {
				earlierAll = append(earlierAll, x)
			}
		}
	}
	// Snapshot by snapshot (lookBack): a directory stays pending while it
	// was empty then too. One that could not be
	// listed is looked for in maxUnreadLookBack snapshots at most (of a
	// backup not run as root, thousands of them never list); a path given
	// as far back as it stays empty, so that the second night warns as the
	// first did.
	pending := empty
	lookBack(earlier, finder, func(n int, x *snapshot.Snapshot) bool {
		left := pending[:0]
		for _, d := range pending {
			if d.unlisted && n >= maxUnreadLookBack {
				continue
			}
			before, err := finder.Find(ctx, x.Tree, d.path)
			if err != nil || before.Type != sources.TypeDir {
				continue // not a directory then: nothing to compare with
			}
			if before.Subtree == d.tree {
				if !x.AllowEmptied { // else a run with --allow-emptied saw it empty
					left = append(left, d) // empty then too (one empty tree): look further back
				}
				continue
			}
			t, err := snapshot.LoadTree(ctx, s.ix, before.Subtree)
			if err != nil {
				continue
			}
			if len(t.Nodes) == 0 {
				left = append(left, d) // empty, with other metadata
				continue
			}
			held := fmt.Sprintf("snapshot %s (%s) held %s", x.ID.Short(), localTime(x.Time), plural(len(t.Nodes), "entry", "entries"))
			if d.unlisted {
				entries = append(entries, fmt.Sprintf("%s could not be listed and is saved empty, where %s: its files are not in this snapshot; give the backup read access to it, or --exclude it (--allow-emptied, or a job's allow_emptied, saves such a snapshot without this warning)", d.path, held))
			} else {
				out = append(out, fmt.Sprintf("%s is empty, where %s: is a disk not mounted there? (--allow-emptied, or a job's allow_emptied, saves such a snapshot without this warning)", d.path, held))
			}
		}
		pending = left
		return len(pending) > 0
	})
	// An entry that could not be read: where an earlier snapshot held it
	// (a file whose permissions changed), the job's retention waits too:
	// it exited 3 every night, and after keep-last nights the file's last
	// copy was forgotten while the metrics said success (found by an
	// exploratory test). One that never read is left to its nightly
	// error; the look-back goes back maxUnreadLookBack snapshots at most.
	// An entry found is done: the next snapshot looks up only those left
	// (lookBack).
	lookBack(earlier, finder, func(n int, x *snapshot.Snapshot) bool {
		if n >= maxUnreadLookBack {
			return false
		}
		left := missing[:0]
		for _, p := range missing {
			before, err := finder.Find(ctx, x.Tree, p)
			if err != nil {
				left = append(left, p) // not in that one either: look further back
				continue
			}
			what := sources.DisplayPath(p)
			if before.Type == sources.TypeFile {
				what += fmt.Sprintf(" (%s)", humanBytes(int64(before.Size)))
			}
			entries = append(entries, fmt.Sprintf("%s could not be read and is not in this snapshot, where snapshot %s (%s) held it: give the backup read access to it, or --exclude it (--allow-emptied, or a job's allow_emptied, saves such a snapshot without this warning)",
				what, x.ID.Short(), localTime(x.Time)))
		}
		missing = left
		// After a run with --allow-emptied, which acknowledged what it
		// could not read, the look-back stops; what it held was looked
		// at (it stopped before looking, and a file turned unreadable
		// since went unsaid: found by a re-test).
		return len(missing) > 0 && !x.AllowEmptied
	})
	for _, q := range quiet {
		for _, x := range earlierAll {
			i := slices.IndexFunc(x.Sources, func(o snapshot.Source) bool { return o.Path == q.Path })
			if i < 0 || x.Sources[i].Kind != sources.KindCommand {
				break
			}
			if x.Sources[i].Size == 0 {
				if x.AllowEmptied {
					break
				}
				continue
			}
			out = append(out, fmt.Sprintf("%s: the command wrote nothing, where snapshot %s (%s) held %s: did it fail without saying so? Run it by hand to see (--allow-emptied, or a job's allow_emptied, saves such a snapshot without this warning)",
				q.Path, x.ID.Short(), localTime(x.Time), humanBytes(x.Sources[i].Size)))
			break
		}
	}
	return out, entries
}

// lookBack calls visit with the earlier snapshots (newest first) and their
// place among them, until visit says nothing is left to look for. A
// snapshot whose root tree is the one just visited is passed over (nothing
// changed since, so no answer can), unless it was taken with
// --allow-emptied, and finder keeps the trees of two snapshots at a time
// (NodeFinder.Retain): thousands of paths that never read cost a walk of
// their directories per snapshot, not the directories of every snapshot
// in memory.
func lookBack(earlier []*snapshot.Snapshot, finder *snapshot.NodeFinder, visit func(n int, x *snapshot.Snapshot) (more bool)) {
	var lastRoot repo.ID
	for n, x := range earlier {
		if x.Tree == lastRoot && !x.AllowEmptied {
			continue
		}
		lastRoot = x.Tree
		finder.Retain()
		if !visit(n, x) {
			return
		}
	}
}

// interrupted turns an error caused by Ctrl-C into the documented message.
func interrupted(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%w: no snapshot was saved; the repository is consistent (data already uploaded is used by the next create, or reclaimed by 'snap prune')", errInterrupted)
	}
	return err
}

// ownTreesFile is the cache's record of the root trees of the snapshots
// this cache saw saved (snapshot.CreateOptions.OwnTrees), one hex ID a line.
const ownTreesFile = "own-trees"

// ownTreesKept is how many distinct records the file keeps, the newest,
// when it is rewritten past twice as many lines: a job that runs weekly
// beside hourly ones keeps its record for over a year of them (with 1,000
// lines, counting each run of an unchanged tree again, it lost its parent;
// found by a review).
const ownTreesKept = 10000

// ownTreeLine is the length of a record: 64 hex digits and a newline.
const ownTreeLine = 65

// ownTrees reads the cache's record of the snapshots saved through it, for
// the choice of a create's parent; nil when there is none (a new cache:
// every snapshot of the host is taken, as before the record existed).
func (s *session) ownTrees() func(repo.ID) bool {
	if s.cache == "" {
		return nil
	}
	// A record of a million snapshots is 65 MB; a larger file, or one
	// that is no regular file, is no record (repo.ReadCacheFile).
	b, err := repo.ReadCacheFile(filepath.Join(s.cache, ownTreesFile), 1_000_000*ownTreeLine)
	if err != nil {
		return nil
	}
	own := map[repo.ID]bool{}
	for _, line := range strings.Split(string(b), "\n") {
		if id, err := repo.ParseID(strings.TrimSpace(line)); err == nil {
			own[id] = true
		}
	}
	return func(id repo.ID) bool { return own[id] }
}

// recordOwnTree adds tree, the root of a snapshot just saved, to the
// cache's record (ownTrees). A record that cannot be written costs the
// next create its parent's shortcut, not its data.
func (s *session) recordOwnTree(tree repo.ID) {
	if s.cache == "" {
		return
	}
	path := filepath.Join(s.cache, ownTreesFile)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return
	}
	line := tree.String() + "\n"
	if fi, err := f.Stat(); err == nil && fi.Size()%ownTreeLine != 0 {
		line = "\n" + line // after a line a crash cut short, which would swallow this one
	}
	_, werr := f.WriteString(line) // one write: whole, beside other creates' appends (O_APPEND)
	fi, serr := f.Stat()
	f.Close()
	if werr != nil || serr != nil || fi.Size() < 2*ownTreesKept*ownTreeLine {
		return
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return
	}
	// The newest distinct records, oldest first. A record another create
	// appends meanwhile may be lost with the old file: its job's next run
	// then reads its files once more.
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	seen := map[string]bool{}
	var kept []string
	for i := len(lines) - 1; i >= 0 && len(kept) < ownTreesKept; i-- {
		if l := strings.TrimSpace(lines[i]); len(l) == ownTreeLine-1 && !seen[l] {
			seen[l] = true
			kept = append(kept, l)
		}
	}
	slices.Reverse(kept)
	_ = writeFileAtomic(path, []byte(strings.Join(kept, "\n")+"\n"), 0o600)
}
