package main

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/urfave/cli/v2"
)

func configCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:  "config",
		Usage: "check the jobs config file and list its jobs",
		Description: "The config file is --config (or SNAP_CONFIG), else $XDG_CONFIG_HOME/snap/snap.toml (~/.config/snap/snap.toml),\n" +
			"else /etc/snap/snap.toml. See docs/usage.md for every key.",
		Subcommands: []*cli.Command{
			{
				Name:      "check",
				Usage:     "validate the config file and name every problem with its line",
				ArgsUsage: " ",
				Description: "Checks the TOML syntax, every key and value, and what the file refers to on this machine: the\n" +
					"paths, password files, repositories, and the schedules (with systemd-analyze calendar when\n" +
					"installed). Exits 0 when there is no error (warnings allowed), 2 otherwise.",
				Flags: []cli.Flag{
					&cli.BoolFlag{Name: "syntax-only", Usage: "check the file only, not the paths, password files, repositories and schedules it names"},
				},
				Action: func(c *cli.Context) error {
					if c.NArg() > 0 {
						return usagef("config check takes no arguments; give the file with --config")
					}
					return runConfigCheck(c, e, c.Bool("syntax-only"))
				},
			},
			{
				Name:      "jobs",
				Usage:     "list the jobs of the config file",
				ArgsUsage: " ",
				Flags: []cli.Flag{
					&cli.BoolFlag{Name: "names", Usage: "print only the job names, one per line (with --json, a document of the names)"},
					&cli.BoolFlag{Name: "scheduled", Usage: "only the jobs that have a schedule"},
				},
				Action: func(c *cli.Context) error {
					if c.NArg() > 0 {
						return usagef("config jobs takes no arguments; give the file with --config")
					}
					return runConfigJobs(c, e, c.Bool("names"), c.Bool("scheduled"))
				},
			},
		},
	}
}

// requireConfig finds and loads the config file, failing when there is
// none or it has errors, a schedule that systemd-analyze refuses among
// them (for the commands about the jobs: config jobs, schedule install).
func requireConfig(c *cli.Context, e *env) (*Config, error) {
	cfg, _, err := openConfig(c, e)
	if err != nil {
		return nil, err
	}
	if problems := cfg.scheduleProblems(systemdCalendar(schedules(cfg.Jobs)...)); len(problems) > 0 {
		return nil, &ConfigError{Problems: problems}
	}
	return cfg, nil
}

// usableConfig loads the config file at path for a command that takes
// only the file's own keys from it (the repository, its password and
// cache: every command but run, config and schedule, through
// settingsFrom): errors in a job (a typo in one added today) leave that
// job out, with a warning, rather than fail a restore at 3 a.m.; errors in
// the file's own keys still fail, as snap run fails then. The commands
// about the jobs (config jobs, schedule) fail on any error.
func usableConfig(c *cli.Context, e *env, path string) (*Config, error) {
	cfg, problems, err := loadConfig(path)
	if err == nil {
		return cfg, nil
	}
	byJob, whole := jobErrors(problems)
	if cfg == nil || whole || len(byJob) == 0 {
		return nil, err
	}
	names := make([]string, 0, len(byJob))
	for name := range byJob {
		names = append(names, name)
	}
	slices.Sort(names)
	cfg.Jobs = slices.DeleteFunc(slices.Clone(cfg.Jobs), func(j *Job) bool { return byJob[j.Name] != Problem{} })
	first := byJob[names[0]]
	what := "job %s is left out, as the config has errors in it"
	if len(names) > 1 {
		what = "jobs %s are left out, as the config has errors in them"
	}
	newUI(c, e).warnf(what+": %s ('snap config check' lists every one)", strings.Join(names, ", "), first)
	return cfg, nil
}

// openConfig finds and loads the config file. With errors in it, it
// returns them (a *ConfigError) and, when the TOML itself could be read,
// the config as far as it went: snap run runs the jobs without errors.
func openConfig(c *cli.Context, e *env) (*Config, []Problem, error) {
	path, err := findConfig(gstring(c, "config"), e.getenv)
	if err != nil {
		return nil, nil, err
	}
	if path == "" {
		return nil, nil, usagef("no config file: give --config FILE or create %s", strings.Join(configPaths(e.getenv), " or "))
	}
	cfg, problems, err := loadConfig(path)
	if cfg == nil {
		return nil, problems, err
	}
	// The one warning run and schedule give (config check gives all,
	// loadConfig adds this one): a timer would run what anyone can write
	// into the file.
	for _, p := range problems {
		if p.Severity == "warning" && strings.HasPrefix(p.Message, configOthersWarning) {
			newUI(c, e).warnf("%s: %s", p.File, p.Message)
		}
	}
	return cfg, problems, err
}

// systemdCalendar returns a validator of OnCalendar expressions using
// systemd-analyze, or nil when that is not installed. Each expression is
// run once; exprs, the ones about to be checked, go first in runs of
// calendarBatch, and one by one only where a batch has a wrong one (a
// config of 5000 jobs ran systemd-analyze 5000 times: 2m46s for its check;
// found by an exploratory test).
func systemdCalendar(exprs ...string) func(string) error {
	path, err := exec.LookPath("systemd-analyze")
	if err != nil {
		return nil
	}
	known := map[string]error{}
	// run checks exprs and, when systemd-analyze takes them all, records
	// each in known: nil, or errNeverFires for one that never fires (a
	// date gone by, February 30), valid to systemd, whose timer never runs
	// the job, and of which a config check said nothing (found by an
	// exploratory test).
	run := func(exprs ...string) error {
		var stdout, stderr bytes.Buffer
		cmd := exec.Command(path, append([]string{"calendar", "--"}, exprs...)...)
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			msg := strings.TrimSpace(stderr.String())
			if i := strings.LastIndex(msg, ": "); i >= 0 {
				msg = msg[i+2:]
			}
			if msg == "" {
				msg = err.Error()
			}
			return fmt.Errorf("%s", msg)
		}
		// One "Next elapse:" per expression, in their order.
		var next []string
		for _, line := range strings.Split(stdout.String(), "\n") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), "Next elapse:"); ok {
				next = append(next, strings.TrimSpace(v))
			}
		}
		for i, e := range exprs {
			known[e] = nil
			if len(next) == len(exprs) && next[i] == "never" {
				known[e] = errNeverFires
			}
		}
		return nil
	}
	slices.Sort(exprs)
	exprs = slices.Compact(exprs)
	for start := 0; start < len(exprs); start += calendarBatch {
		if batch := exprs[start:min(start+calendarBatch, len(exprs))]; len(batch) > 1 {
			_ = run(batch...) // a wrong one among them: each is run alone when asked for
		}
	}
	return func(expr string) error {
		if err, ok := known[expr]; ok {
			return err
		}
		if err := run(expr); err != nil {
			known[expr] = err
		}
		return known[expr]
	}
}

// errNeverFires is a calendar expression with no time to come: valid, and
// a timer that never runs its job.
var errNeverFires = errors.New("next elapse never")

// calendarBatch is how many expressions one systemd-analyze run checks.
const calendarBatch = 500

// schedules returns the jobs' schedules.
func schedules(jobs []*Job) []string {
	var out []string
	for _, j := range jobs {
		out = append(out, j.Schedule...)
	}
	return out
}

// configCheckJSON is the documented output of 'config check --json'.
type configCheckJSON struct {
	File     string    `json:"file"`
	Valid    bool      `json:"valid"`
	Errors   int       `json:"errors"`
	Warnings int       `json:"warnings"`
	Problems []Problem `json:"problems"`
	Jobs     []jobJSON `json:"jobs"`
}

func runConfigCheck(c *cli.Context, e *env, syntaxOnly bool) error {
	u := newUI(c, e)
	// Without a file to judge (none named or found, or one that cannot
	// be read), --json still prints the verdict as a document: a
	// monitoring script reads it there.
	var cfg *Config
	var problems []Problem
	path, err := findConfig(gstring(c, "config"), e.getenv)
	if err == nil && path == "" {
		err = usagef("no config file: give --config FILE or create %s", strings.Join(configPaths(e.getenv), " or "))
	}
	if err == nil {
		cfg, problems, err = loadConfig(path)
		if cfg != nil || len(problems) > 0 {
			err = nil // judged below, problem by problem
		}
	}
	if err != nil {
		if !u.json {
			return err
		}
		if named := gstring(c, "config"); named != "" {
			path, _ = filepath.Abs(named)
		}
		problems = []Problem{{File: path, Message: err.Error(), Severity: "error"}}
	}
	if cfg != nil && !syntaxOnly {
		problems = append(problems, cfg.checkEnvironment(systemdCalendar(schedules(cfg.Jobs)...))...)
		for _, user := range []bool{false, true} {
			f := unitEnvFile(user, e.getenv)
			if msg, _ := envFileExposed(f); msg != "" {
				problems = append(problems, Problem{File: f, Message: msg, Severity: "warning"})
			}
		}
	}
	sort.SliceStable(problems, func(i, j int) bool { return problems[i].Line < problems[j].Line })
	out := configCheckJSON{File: path, Problems: problems, Jobs: []jobJSON{}}
	for _, p := range problems {
		if p.Severity == "error" {
			out.Errors++
		} else {
			out.Warnings++
		}
	}
	out.Valid = out.Errors == 0
	if cfg != nil {
		for _, j := range cfg.Jobs {
			out.Jobs = append(out.Jobs, toJobJSON(j))
		}
	}
	if u.json {
		if out.Problems == nil {
			out.Problems = []Problem{}
		}
		if err := u.jsonDoc(out); err != nil {
			return err
		}
	} else {
		for _, p := range problems {
			fmt.Fprintln(e.stdout, escapeControls(p.String())) // warnings too: --quiet hides no problem
		}
		if out.Valid {
			names := make([]string, 0, len(out.Jobs))
			for _, j := range out.Jobs {
				names = append(names, j.Name)
			}
			u.printf("%s: OK, %d job(s)%s, %d warning(s)", path, len(names), listSuffix(names), out.Warnings)
		}
	}
	if !out.Valid {
		return usagef("%s: %d error(s), %d warning(s)", cmp.Or(path, "config check"), out.Errors, out.Warnings)
	}
	return nil
}

func listSuffix(names []string) string {
	if len(names) == 0 {
		return ""
	}
	return " (" + strings.Join(names, ", ") + ")"
}

// jobJSON is the documented JSON form of a job.
type jobJSON struct {
	Name                   string     `json:"name"`
	Line                   int        `json:"line"`
	Repository             string     `json:"repository"`
	Paths                  []string   `json:"paths"`
	Exclude                []string   `json:"exclude"`
	ExcludeFile            []string   `json:"exclude_file"`
	ExcludeIfPresent       []string   `json:"exclude_if_present"`
	ExcludeCaches          bool       `json:"exclude_caches"`
	ExcludeLargerThanBytes uint64     `json:"exclude_larger_than_bytes"`
	Databases              []string   `json:"databases"`
	Commands               []cmdJSON  `json:"commands"`
	Tags                   []string   `json:"tags"`
	Host                   string     `json:"host"`
	OneFileSystem          bool       `json:"one_file_system"`
	SequentialRead         bool       `json:"sequential_read"`
	AllowEmptied           bool       `json:"allow_emptied"`
	Compression            string     `json:"compression"`
	Schedule               []string   `json:"schedule"`
	RandomDelaySeconds     float64    `json:"random_delay_seconds"`
	HookTimeoutSeconds     float64    `json:"hook_timeout_seconds"`
	TimeoutSeconds         float64    `json:"timeout_seconds"`
	Pre                    []string   `json:"pre"`
	MinFreeBytes           uint64     `json:"min_free_bytes"`
	DumpConcurrency        int        `json:"dump_concurrency"`
	Post                   []string   `json:"post"`
	Finally                []string   `json:"finally"`
	Keep                   keepJSON   `json:"keep"`
	Check                  *CheckSpec `json:"check"`
}

type cmdJSON struct {
	Name    string   `json:"name"`
	Command []string `json:"command"`
}

type keepJSON struct {
	Last      int      `json:"last"`
	Hourly    int      `json:"hourly"`
	Daily     int      `json:"daily"`
	Weekly    int      `json:"weekly"`
	Monthly   int      `json:"monthly"`
	Yearly    int      `json:"yearly"`
	Within    string   `json:"within"`
	Tags      []string `json:"tags"`
	Prune     bool     `json:"prune"`
	MaxUnused string   `json:"max_unused"`
	// DeleteDelay is keep.delete_delay as written ("" for prune's default).
	DeleteDelay string `json:"delete_delay"`
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func toJobJSON(j *Job) jobJSON {
	k := j.Keep
	cmds := []cmdJSON{}
	for _, c := range j.Commands {
		cmds = append(cmds, cmdJSON{Name: c.Name, Command: c.Argv})
	}
	return jobJSON{Commands: cmds, MinFreeBytes: j.MinFree, DumpConcurrency: j.DumpConcurrency, Name: j.Name, Line: j.Line, Repository: redactedLocation(j.Repository), Paths: nonNil(j.Paths), Exclude: nonNil(j.Exclude),
		ExcludeFile: nonNil(j.ExcludeFile), ExcludeIfPresent: nonNil(j.ExcludeIfPresent), ExcludeCaches: j.ExcludeCaches, ExcludeLargerThanBytes: j.ExcludeLargerThan,
		Databases: redactedURLs(j.Databases), Tags: nonNil(j.Tags), Host: j.Host, OneFileSystem: j.OneFileSystem, SequentialRead: j.SequentialRead, AllowEmptied: j.AllowEmptied, Compression: j.Compression,
		Schedule: nonNil(j.Schedule), RandomDelaySeconds: j.RandomDelay.Seconds(), HookTimeoutSeconds: j.HookTimeout.Seconds(), TimeoutSeconds: j.Timeout.Seconds(), Pre: nonNil(j.Pre), Post: nonNil(j.Post), Finally: nonNil(j.Finally),
		Keep: keepJSON{Last: k.Last, Hourly: k.Hourly, Daily: k.Daily, Weekly: k.Weekly, Monthly: k.Monthly, Yearly: k.Yearly,
			Within: k.Within, Tags: nonNil(k.Tags), Prune: k.Prune, MaxUnused: k.MaxUnused, DeleteDelay: k.DeleteDelay},
		Check: j.Check}
}

func runConfigJobs(c *cli.Context, e *env, namesOnly, scheduledOnly bool) error {
	cfg, err := requireConfig(c, e)
	if err != nil {
		return err
	}
	if scheduledOnly {
		cfg.Jobs = slices.DeleteFunc(slices.Clone(cfg.Jobs), func(j *Job) bool { return len(j.Schedule) == 0 })
	}
	u := newUI(c, e)
	if namesOnly {
		names := make([]string, 0, len(cfg.Jobs))
		for _, j := range cfg.Jobs {
			names = append(names, j.Name)
		}
		if u.json {
			// The document of 'config jobs --json', with the names alone.
			return u.jsonDoc(map[string]any{"file": cfg.Path, "names": names})
		}
		for _, name := range names {
			fmt.Fprintln(e.stdout, name)
		}
		return nil
	}
	if u.json {
		out := make([]jobJSON, 0, len(cfg.Jobs))
		for _, j := range cfg.Jobs {
			out = append(out, toJobJSON(j))
		}
		return u.jsonDoc(map[string]any{"file": cfg.Path, "jobs": out})
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	if !u.quiet { // -q: the rows alone, for scripts
		fmt.Fprintln(tw, "Job\tSchedule\tSources\tKeep\tAfter")
	}
	for _, j := range cfg.Jobs {
		sched := strings.Join(j.Schedule, "; ")
		if sched == "" {
			sched = "-"
		}
		srcs := append(append([]string(nil), j.Paths...), redactedURLs(j.Databases)...)
		for _, c := range j.Commands {
			srcs = append(srcs, c.Name)
		}
		keep := keepString(j.Keep)
		if keep == "" {
			keep = "-"
		}
		var after []string
		if j.Keep.Any() {
			after = append(after, "forget")
		}
		if j.Keep.Prune {
			after = append(after, "prune")
		}
		if j.Check != nil {
			after = append(after, "check")
		}
		fmt.Fprint(tw, tableRow(fmt.Sprintf("%s\t%s\t%s\t%s\t%s\n", j.Name, sched, strings.Join(srcs, " "), keep, strings.Join(after, ", "))))
	}
	return tw.Flush()
}

// keepString describes a policy: "last 7, daily 7, monthly 12".
func keepString(k Keep) string {
	var parts []string
	for _, r := range []struct {
		name string
		n    int
	}{{"last", k.Last}, {"hourly", k.Hourly}, {"daily", k.Daily}, {"weekly", k.Weekly}, {"monthly", k.Monthly}, {"yearly", k.Yearly}} {
		if r.n > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", r.name, r.n))
		}
	}
	if k.Within != "" {
		parts = append(parts, "within "+k.Within)
	}
	for _, t := range k.Tags {
		parts = append(parts, "tag "+t)
	}
	return strings.Join(parts, ", ")
}
