package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/snap-backup/snap/index"
	"github.com/snap-backup/snap/repo"
	"github.com/snap-backup/snap/snapshot"
	"github.com/snap-backup/snap/sources"
)

func forgetCommand(e *env) *cli.Command {
	flags := []cli.Flag{
		&cli.IntFlag{Name: "keep-last", Usage: "keep the `N` newest snapshots"},
		&cli.IntFlag{Name: "keep-hourly", Usage: "keep the newest snapshot of each of the last `N` hours that have one"},
		&cli.IntFlag{Name: "keep-daily", Usage: "keep the newest snapshot of each of the last `N` days that have one"},
		&cli.IntFlag{Name: "keep-weekly", Usage: "keep the newest snapshot of each of the last `N` ISO weeks that have one"},
		&cli.IntFlag{Name: "keep-monthly", Usage: "keep the newest snapshot of each of the last `N` months that have one"},
		&cli.IntFlag{Name: "keep-yearly", Usage: "keep the newest snapshot of each of the last `N` years that have one"},
		&cli.StringFlag{Name: "keep-within", Usage: "keep every snapshot taken within `DURATION` (e.g. 7d, 2w, 6m, 1y, 36h) before the group's newest"},
		&cli.StringSliceFlag{Name: "keep-tag", Usage: "keep snapshots with this tag; \"a,b\" means both (repeatable)"},
		&cli.StringFlag{Name: "group-by", Value: "host,paths", Usage: "apply the policy per group of snapshots sharing these (host, paths, tags; \"\" for one group)"},
		&cli.BoolFlag{Name: "dry-run", Aliases: []string{"n"}, Usage: "show what would be removed, change nothing"},
		&cli.BoolFlag{Name: "prune", Usage: "run 'snap prune' afterwards (with --max-unused, --delete-delay, --instant)"},
	}
	flags = append(flags, filterFlags()...)
	flags = append(flags, pruneFlags()...)
	return &cli.Command{
		Name:      "forget",
		Usage:     "remove snapshots by a retention policy, or by ID",
		ArgsUsage: "[SNAPSHOT...]",
		Description: "With --keep-* flags, applies the policy to each group of snapshots (by default those of the same\n" +
			"host and paths) and removes the snapshots no rule keeps; the rules are ORed. Calendar periods are\n" +
			"in local time (set TZ to change it). With snapshot IDs, removes exactly those snapshots.\n" +
			"Forget removes snapshot documents only: 'snap prune' (or --prune) reclaims their data.",
		Flags: flags,
		Action: func(c *cli.Context) error {
			return runForget(c, e)
		},
	}
}

// keepZeroGiven reports whether a --keep-N flag was given (with 0).
func keepZeroGiven(c *cli.Context) bool {
	for _, f := range []string{"keep-last", "keep-hourly", "keep-daily", "keep-weekly", "keep-monthly", "keep-yearly"} {
		if c.IsSet(f) {
			return true
		}
	}
	return false
}

func policyFrom(c *cli.Context) (snapshot.Policy, error) {
	var p snapshot.Policy
	for _, x := range []struct {
		flag string
		dst  *int
	}{{"keep-last", &p.Last}, {"keep-hourly", &p.Hourly}, {"keep-daily", &p.Daily}, {"keep-weekly", &p.Weekly},
		{"keep-monthly", &p.Monthly}, {"keep-yearly", &p.Yearly}} {
		*x.dst = c.Int(x.flag)
		if *x.dst < 0 {
			return p, usagef("--%s %d: give a number of snapshots, 0 or more (0: no such rule)", x.flag, *x.dst)
		}
	}
	if w := c.String("keep-within"); w != "" {
		sp, err := snapshot.ParseSpan(w)
		if err != nil {
			return p, usagef("--keep-within: %v", err)
		}
		if sp.IsZero() {
			// It said "forget needs a policy", with one given.
			return p, usagef("--keep-within %s keeps nothing: give a span such as 30d or 1y6m", w)
		}
		p.Within = sp
	}
	p.Tags = c.StringSlice("keep-tag")
	if err := checkKeepTags(p.Tags); err != nil {
		return p, usagef("--keep-tag %v", err)
	}
	return p, nil
}

// forgetEntry is one snapshot in forget's output.
type forgetEntry struct {
	snapshotJSON
	Keep    bool     `json:"keep"`
	Reasons []string `json:"reasons"`
}

type forgetGroup struct {
	snapshot.GroupKey
	PathsBase64 []string      `json:"paths_base64,omitempty"` // as in list (pathsBase64)
	Snapshots   []forgetEntry `json:"snapshots"`
}

// needsPolicy begins forget's refusal of a run without a policy or IDs.
const needsPolicy = "forget needs a policy (--keep-last, --keep-daily, ..., --keep-within, --keep-tag) or snapshot IDs"

// jobPolicy returns the job that --job names, from the config file, for
// its keep policy; an error when the config has no such job or the job
// no policy.
func jobPolicy(c *cli.Context, e *env) (*Config, *Job, error) {
	name := c.StringSlice("job")[0]
	path, err := findConfig(gstring(c, "config"), e.getenv)
	if err != nil {
		return nil, nil, err
	}
	if path == "" {
		return nil, nil, usagef("%s; --job %s alone takes the job's keep policy from the config file, and there is none (--config)", needsPolicy, name)
	}
	cfg, err := usableConfig(c, e, path)
	if err != nil {
		return nil, nil, err
	}
	j := oneJob(c, cfg)
	switch {
	case j == nil:
		return nil, nil, usagef("%s; --job %s alone takes the job's keep policy, and %s has no usable job %s ('snap config check' says why)", needsPolicy, name, path, name)
	case !j.Keep.Any():
		return nil, nil, usagef("job %s has no keep policy in %s (add [jobs.%s.keep]): give one with --keep-last, --keep-daily, …", name, path, name)
	}
	return cfg, j, nil
}

// forgetResult is the documented JSON document of forget (docs/usage.md).
type forgetResult struct {
	DryRun     bool          `json:"dry_run"`
	Policy     string        `json:"policy,omitempty"`
	Groups     []forgetGroup `json:"groups"`
	Kept       int           `json:"kept"`
	Removed    int           `json:"removed"`
	RemovedIDs []string      `json:"removed_ids"`
	Prune      *pruneResult  `json:"prune,omitempty"`
	// PruneSkipped says why --prune did not run (another prune held its
	// lock); the forget stands.
	PruneSkipped string `json:"prune_skipped,omitempty"`

	// keptByRules counts the kept snapshots that a rule keeps, not only
	// their date in the future: a policy that keeps none of the others
	// is refused as mistyped (one snapshot dated ahead had let a mistyped
	// --keep-tag remove 16 of 17; found by an exploratory test).
	keptByRules int
}

func runForget(c *cli.Context, e *env) error {
	p, err := policyFrom(c)
	if err != nil {
		return err
	}
	by, err := snapshot.ParseGroupBy(c.String("group-by"))
	if err != nil {
		return usagef("--group-by: %v", err)
	}
	byID := c.NArg() > 0
	// 'snap forget --job NAME' without --keep-*: the job's keep policy,
	// applied to the snapshots 'snap run NAME' applies it to (see
	// jobPolicy); previewed with --dry-run. It needed the policy copied
	// into flags, whose grouping differs (found by an exploratory test).
	var job *Job
	var cfg *Config
	if !byID && p.IsEmpty() && !keepZeroGiven(c) && len(c.StringSlice("job")) == 1 {
		if cfg, job, err = jobPolicy(c, e); err != nil {
			return err
		}
		if p, err = job.policy(); err != nil {
			return usagef("job %s: %v", job.Name, err)
		}
		if !c.IsSet("group-by") {
			by = snapshot.GroupBy{Host: true, Paths: true} // as snap run's forget
		}
	}
	switch {
	case byID && !p.IsEmpty():
		return usagef("give either snapshot IDs or a policy (--keep-*), not both")
	case !byID && p.IsEmpty() && keepZeroGiven(c):
		// "needs a policy" read oddly of a --keep-last 0 given (found by
		// an exploratory test): 0 is no rule, and no rule keeps nothing.
		return usagef("the --keep-* values given are all 0, which is no rule: give a number of snapshots to keep (--keep-last 7), or snapshot IDs to forget")
	case !byID && p.IsEmpty():
		return usagef("%s; it refuses to remove snapshots without one", needsPolicy)
	}
	if !c.Bool("prune") {
		for _, f := range pruneFlags() {
			if name := f.Names()[0]; c.IsSet(name) {
				return usagef("--%s is an option of --prune: add --prune, or leave it out", name)
			}
		}
	}
	var po index.PruneOptions
	if c.Bool("prune") {
		if po, err = pruneOptionsFrom(c); err != nil {
			return err
		}
		po.DryRun = c.Bool("dry-run")
	}
	dry := c.Bool("dry-run")

	var s *session
	if job != nil {
		// The job's repository, as 'snap run' opens it: --repo on the
		// command line wins, SNAP_REPOSITORY left in the shell does not
		// (a policy meant for the local repository cut an off-site copy
		// down to it; found by a review).
		s, err = openSessionSettings(c, e, cfg.jobSettings(c, e, newUI(c, e), job), sharedLock, &index.Options{})
	} else {
		s, err = openSession(c, e, sharedLock)
	}
	if err != nil {
		return err
	}
	res := forgetResult{DryRun: dry, Groups: []forgetGroup{}, RemovedIDs: []string{}}
	var remove []repo.ID
	var described map[repo.ID]string
	if byID {
		remove, described, err = resolveForgetArgs(c, s)
		if err != nil {
			s.close()
			return err
		}
	} else {
		sns, err := s.snapshots(c.Context)
		if err != nil {
			s.close()
			return err
		}
		if n := len(s.unreadable); n > 0 && !dry {
			// Its decision would be made without them, as a job's
			// forget refuses to (this one went on, exit 0; found by an
			// exploratory test).
			s.close()
			return fmt.Errorf("%s cannot be read (above), so the policy cannot be applied safely; nothing was forgotten: remove each by its ID ('snap forget ID'), then forget again", plural(n, "snapshot", "snapshots"))
		}
		if n := len(s.unreadable); n > 0 {
			// The dry run goes on, to show the plan, but must not read
			// as what the real run will do (found by an exploratory
			// test).
			s.ui.warnf("%s cannot be read (above): without --dry-run this forget refuses and removes nothing; remove each by its ID ('snap forget ID') first", plural(n, "snapshot", "snapshots"))
		}
		selected, note := applyFilter(sns, filterFrom(c))
		if job != nil {
			selected = job.ownSnapshots(selected)
			s.ui.noticef("job %s: its keep policy (%s) applies to its %s, as 'snap run %s' applies it", job.Name, p, plural(len(selected), "snapshot", "snapshots"), job.Name)
		}
		if note != "" {
			// A mistyped host in a retention job removed nothing, and
			// said only "removed 0 snapshots" (found by an exploratory
			// test).
			s.ui.warnf("%s: the policy applies to no snapshot", note)
		}
		remove = planForget(&res, snapshot.GroupSnapshots(selected, by), p, e.now())
		if missing := unmatchedKeepTags(selected, p.Tags); len(missing) > 0 && len(selected) > 0 {
			// A mistyped --keep-tag keeps nothing: alone, or beside rules
			// that keep nothing either, it removed every snapshot, exit 0
			// (found by an exploratory test).
			what := "that tag"
			if len(missing) > 1 {
				what = "those tags"
			}
			if slices.ContainsFunc(missing, func(r string) bool { return strings.Contains(r, ",") }) {
				// "weekly,daily" means both: each alone may be listed
				// among the tags there are (found by an exploratory test).
				what = "all the tags of a rule (\"a,b\" keeps a snapshot with both a and b)"
			}
			given := "--keep-tag " + strings.Join(missing, ", --keep-tag ")
			if job != nil {
				given = fmt.Sprintf("job %s's keep.tags [\"%s\"]", job.Name, strings.Join(missing, `", "`)) // not flags that were never given
			}
			msg := fmt.Sprintf("%s: no snapshot has %s (%s)", given, what, tagsPresent(selected))
			if res.keptByRules == 0 && len(remove) > 0 {
				s.close()
				return usagef("%s, and the policy keeps none of the %s: refusing to forget; check the tag", msg, plural(len(remove), "snapshot", "snapshots"))
			}
			s.ui.warnf("%s", msg)
		}
	}
	if !s.ui.json {
		printForget(s.ui, e, res, remove, described)
	}
	failed := removeSnapshots(c.Context, s, remove, &res)
	s.close()
	if !s.ui.json {
		verb := "removed"
		if dry {
			verb = "would remove"
		}
		if byID {
			// No policy weighed the others: "kept 0" would read as if
			// none were left.
			s.ui.printf("%s %s", verb, plural(res.Removed, "snapshot", "snapshots"))
		} else {
			s.ui.printf("%s %s, kept %d", verb, plural(res.Removed, "snapshot", "snapshots"), res.Kept)
		}
	}
	if len(failed) > 0 {
		if s.ui.json {
			_ = s.ui.jsonDoc(res)
		}
		return fmt.Errorf("could not remove %s: %s; run forget again", plural(len(failed), "snapshot", "snapshots"), strings.Join(failed, ", "))
	}
	var perr error
	if c.Bool("prune") {
		var without map[repo.ID]bool
		if dry {
			without = map[repo.ID]bool{}
			for _, id := range remove {
				without[id] = true
			}
		}
		var st *index.PruneStats
		var ps *session
		st, ps, perr = pruneRepository(c, e, po, without)
		if msg := otherPruneRunning(perr, "this forget removed"); msg != "" {
			// Another prune is under way (another host's forget --prune
			// at the same hour): as in a job, the forget stands and its
			// data waits for the next prune. It exited 11 after the
			// snapshots were gone, which with -q said only "locked"
			// (found by an exploratory test).
			res.PruneSkipped = msg
			s.ui.warnf("%s", msg)
			perr = nil
		}
		if exitCode(perr) == exitLocked && !dry {
			// --instant beside a backup: the forget was done, and the
			// error said only "repository is locked", with -q nothing of
			// the snapshots gone (found by an exploratory test). Still
			// exit 11: the prune asked for did not run.
			res.PruneSkipped = fmt.Sprintf("the prune did not run: %v", perr)
			done := "this forget removed no snapshot"
			if res.Removed > 0 {
				done = fmt.Sprintf("this forget removed %s, and they stay removed", plural(res.Removed, "snapshot", "snapshots"))
			}
			again := "run the prune again once the lock is gone"
			if c.Bool("instant") {
				again = "run 'snap prune --instant' once nothing else uses the repository, or a plain 'snap prune', which runs beside backups"
			}
			perr = fmt.Errorf("%s; the prune did not run: %w; %s", done, perr, again)
		}
		if st != nil {
			pr := pruneJSON(st)
			res.Prune = &pr
			if ps != nil && !ps.ui.json {
				printPrune(ps.ui, st)
			}
		}
	}
	if s.ui.json {
		if err := s.ui.jsonDoc(res); err != nil && perr == nil {
			perr = err
		}
	}
	return perr
}

// planForget applies the policy to each group, records the decisions in
// res and returns the snapshots to remove.
func planForget(res *forgetResult, groups []snapshot.Group, p snapshot.Policy, now time.Time) []repo.ID {
	var remove []repo.ID
	res.Policy = p.String()
	for _, g := range groups {
		fg := forgetGroup{GroupKey: g.Key, PathsBase64: pathsBase64(g.Key.Paths)}
		// One snapshot stored twice (a 'snap tag' stopped between saving
		// the new document and removing the old) counts once, decided by
		// its version stored anew, as copy takes it: each took a place of
		// keep-last, and the old version could be the one kept (found by
		// an exploratory test). Its other versions go with it.
		latest := latestVersions(g.Snapshots)
		others := map[repo.ID][]*snapshot.Snapshot{} // by origin
		if len(latest) < len(g.Snapshots) {
			chosen := map[*snapshot.Snapshot]bool{}
			for _, sn := range latest {
				chosen[sn] = true
			}
			for _, sn := range g.Snapshots {
				if !chosen[sn] {
					others[snapshot.Origin(sn)] = append(others[snapshot.Origin(sn)], sn)
				}
			}
		}
		for _, d := range snapshot.ApplyPolicy(latest, p, now, time.Local) {
			reasons := d.Reasons
			if reasons == nil {
				reasons = []string{}
			}
			fg.Snapshots = append(fg.Snapshots, forgetEntry{snapshotJSON: toJSON(d.Snapshot), Keep: d.Keep, Reasons: reasons})
			if d.Keep {
				res.Kept++
				if !d.Future {
					res.keptByRules++
				}
			} else {
				remove = append(remove, d.Snapshot.ID)
			}
			for _, o := range others[snapshot.Origin(d.Snapshot)] {
				why := []string{}
				if d.Keep {
					res.Kept++
					why = []string{"another version of " + d.Snapshot.ID.Short() + " (one snapshot stored twice)"}
				} else {
					remove = append(remove, o.ID)
				}
				fg.Snapshots = append(fg.Snapshots, forgetEntry{snapshotJSON: toJSON(o), Keep: d.Keep, Reasons: why})
			}
		}
		res.Groups = append(res.Groups, fg)
	}
	return remove
}

// removeSnapshots deletes the snapshot documents (unless res.DryRun),
// counts them in res, and returns those that could not be removed.
func removeSnapshots(ctx context.Context, s *session, remove []repo.ID, res *forgetResult) []string {
	var failed []string
	for _, id := range remove {
		if !res.DryRun {
			err := s.r.Backend().Remove(ctx, repo.Handle{Type: repo.SnapshotFile, Name: id.String()})
			if err != nil && !errors.Is(err, repo.ErrNotFound) {
				failed = append(failed, fmt.Sprintf("%s (%v)", id.Short(), err))
				continue
			}
		}
		res.Removed++
		res.RemovedIDs = append(res.RemovedIDs, id.String())
	}
	return failed
}

// resolveForgetArgs turns the arguments into snapshot IDs. A full ID also
// names a snapshot whose document cannot be read, so that broken snapshots
// can be removed. described says what each is ("of TIME, host H, PATHS"),
// as the plan of a policy does: 'forget latest' removed another host's
// snapshot and named only its ID (found by an exploratory test).
func resolveForgetArgs(c *cli.Context, s *session) (out []repo.ID, described map[repo.ID]string, err error) {
	sns, err := s.snapshots(c.Context)
	if err != nil {
		return nil, nil, err
	}
	described = map[repo.ID]string{}
	seen := map[repo.ID]bool{}
	for _, ref := range c.Args().Slice() {
		if err := checkSnapshotRef(ref); err != nil {
			return nil, nil, err
		}
		if ref == "latest" && len(s.unreadable) > 0 {
			// The newest may be among those: forgetting the newest of
			// the others would delete what was not asked for.
			return nil, nil, fmt.Errorf("cannot tell which snapshot is the latest: %s cannot be read (above); give the ID of the one to forget (snap list)",
				plural(len(s.unreadable), "snapshot", "snapshots"))
		}
		f := filterFrom(c)
		sn, err := snapshot.Find(sns, ref, f)
		// Which filter matched nothing, as the other commands say it.
		err = withUnmatched(err, sns, f)
		if err == nil && ref != "latest" && !f.Match(sn) {
			// Filters choose among snapshots for 'latest'; an ID they
			// leave out is a mistake in what to remove, not to be removed
			// without a word (found by an exploratory test).
			// Host, tags and paths: each filter may be the one that
			// left it out ("tags " was all an untagged one showed, and
			// the paths were not named).
			tags := "no tags"
			if len(sn.Tags) > 0 {
				tags = "tags " + sources.DisplayPath(strings.Join(sn.Tags, ","))
			}
			var paths []string
			for _, p := range snapshot.SnapshotPaths(sn) {
				paths = append(paths, sources.DisplayPath(p))
			}
			return nil, nil, usagef("snapshot %s (host %s, %s, paths %s) is not one that --host/--tag/--path select: nothing was forgotten; leave the filters out to forget it by its ID",
				sn.ID.Short(), sources.DisplayPath(sn.Host), tags, strings.Join(paths, " "))
		}
		var id repo.ID
		if err != nil {
			full, perr := repo.ParseID(strings.ToLower(ref))
			if perr != nil {
				// A prefix of a snapshot that cannot be read, as list
				// shows it: that one, when it is the only one.
				var match []repo.ID
				for _, lerr := range s.unreadable {
					if name, ok := strings.CutPrefix(unreadableObject(lerr), "snapshots/"); ok && strings.HasPrefix(name, strings.ToLower(ref)) {
						if uid, err := repo.ParseID(name); err == nil {
							match = append(match, uid)
						}
					}
				}
				if len(match) != 1 || !errors.Is(err, snapshot.ErrNoSnapshot) {
					return nil, nil, storedAnew(sns, ref, err)
				}
				full = match[0]
			}
			if _, serr := s.r.Backend().Stat(c.Context, repo.Handle{Type: repo.SnapshotFile, Name: full.String()}); serr != nil {
				return nil, nil, storedAnew(sns, ref, err)
			}
			id = full
			described[id] = "(unreadable)"
		} else {
			id = sn.ID
			described[id] = strings.TrimPrefix(describeSnapshot(sn), "snapshot "+sn.ID.Short()+" ")
			if ref == "latest" {
				if others := otherSets(f.Apply(sns), sn); others != "" {
					s.ui.choicef("latest: %s%s", describeSnapshot(sn), others)
				}
			}
		}
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out, described, nil
}

func printForget(u *ui, e *env, res forgetResult, remove []repo.ID, described map[repo.ID]string) {
	if u.quiet && !res.DryRun {
		return // a dry run's plan is its result, shown also with --quiet
	}
	if described != nil { // by ID
		for _, id := range remove {
			verb := "removing"
			if res.DryRun {
				verb = "would remove"
			}
			u.resultf("%s snapshot %s %s", verb, id.Short(), escapeControls(described[id]))
		}
		return
	}
	for i, g := range res.Groups {
		tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		if !u.quiet { // -q: the rows alone, for scripts
			if i > 0 {
				fmt.Fprintln(e.stdout)
			}
			fmt.Fprintf(e.stdout, "%s (policy: %s)\n", escapeControls(g.GroupKey.String()), res.Policy)
			fmt.Fprintln(tw, "ID\tTime\tHost\tTags\tAction\tReasons")
		}
		for _, sn := range g.Snapshots {
			action := "remove"
			if sn.Keep {
				action = "keep"
			}
			fmt.Fprint(tw, tableRow(fmt.Sprintf("%s\t%s\t%s\t%s\t%s\t%s\n", sn.ShortID, localTime(sn.Time), sources.DisplayPath(sn.Host), sources.DisplayPath(strings.Join(sn.Tags, ",")), action, strings.Join(sn.Reasons, ", "))))
		}
		tw.Flush()
	}
}

// unmatchedKeepTags returns the keep-tag rules ("a" or "a,b", all of
// whose tags a snapshot must have) that no snapshot of sns matches.
func unmatchedKeepTags(sns []*snapshot.Snapshot, rules []string) []string {
	var out []string
	for _, r := range rules {
		if !slices.ContainsFunc(sns, snapshot.Filter{Tags: []string{r}}.Match) {
			out = append(out, r)
		}
	}
	return out
}

// hostsOf returns the hosts of sns, sorted, each once.
func hostsOf(sns []*snapshot.Snapshot) []string {
	var hosts []string
	for _, sn := range sns {
		hosts = append(hosts, sn.Host)
	}
	slices.Sort(hosts)
	return slices.Compact(hosts)
}

// tagsPresent names the tags of sns, for a message about a tag none has.
func tagsPresent(sns []*snapshot.Snapshot) string {
	var tags []string
	for _, sn := range sns {
		tags = append(tags, sn.Tags...)
	}
	slices.Sort(tags)
	if tags = slices.Compact(tags); len(tags) == 0 {
		return "no snapshot has tags"
	}
	return "tags: " + strings.Join(tags, ", ")
}

// jobsPresent names the jobs that took snapshots of sns, for a note on a
// --job that matched none.
func jobsPresent(sns []*snapshot.Snapshot) string {
	var jobs []string
	for _, sn := range sns {
		if sn.Job != "" {
			jobs = append(jobs, sn.Job)
		}
	}
	slices.Sort(jobs)
	if jobs = slices.Compact(jobs); len(jobs) == 0 {
		return "no snapshot was taken by a job ('snap run')"
	}
	return "jobs: " + strings.Join(jobs, ", ")
}

// checkKeepTags refuses an empty tag in a keep-tag rule ("", "a,"): it
// would match every snapshot, or none, and turn retention off silently.
func checkKeepTags(rules []string) error {
	for _, r := range rules {
		for _, tag := range strings.Split(r, ",") {
			// Tags are non-empty words ('snap tag' refuses others): an
			// empty one or one with a space matches no snapshot.
			if !isTagWord(tag) {
				return fmt.Errorf("%q: a tag is a non-empty word of UTF-8 without spaces (\"a,b\" keeps snapshots with both)", r)
			}
		}
	}
	return nil
}
