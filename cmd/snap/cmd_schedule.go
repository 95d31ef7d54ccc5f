package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/urfave/cli/v2"
)

func scheduleCommand(e *env) *cli.Command {
	where := []cli.Flag{
		&cli.BoolFlag{Name: "user", Usage: "user units (~/.config/systemd/user, systemctl --user) instead of system units (/etc/systemd/system)"},
		&cli.StringFlag{Name: "dir", Usage: "unit directory to use instead; systemctl is not run"},
	}
	return &cli.Command{
		Name:  "schedule",
		Usage: "run jobs from systemd timers",
		Description: "Each scheduled job gets snap-JOB.service (runs 'snap run JOB --config FILE' once, at low CPU and I/O\n" +
			"priority, with no secret in the unit) and snap-JOB.timer (the job's schedule as OnCalendar,\n" +
			"Persistent=true so a missed run happens at boot, and a RandomizedDelaySec).",
		Subcommands: []*cli.Command{
			{
				Name:      "install",
				Usage:     "write, enable and start the timers of jobs (all scheduled jobs when none is named)",
				ArgsUsage: "[JOB]...",
				Flags: append(append([]cli.Flag{}, where...),
					&cli.BoolFlag{Name: "no-enable", Usage: "write the units but do not enable or start the timers"},
					&cli.BoolFlag{Name: "force", Usage: "replace unit files of the same name that snap did not write"},
				),
				Action: func(c *cli.Context) error {
					return runScheduleInstall(c, e, c.Args().Slice(), scheduleOptions{user: c.Bool("user"), dir: c.String("dir"),
						noEnable: c.Bool("no-enable"), force: c.Bool("force")})
				},
			},
			{
				Name:      "list",
				Usage:     "list installed timers with their next and last runs, and scheduled jobs not installed",
				ArgsUsage: " ",
				Flags:     where,
				Action: func(c *cli.Context) error {
					if c.NArg() > 0 {
						return usagef("schedule list takes no arguments: it lists every job's units")
					}
					return runScheduleList(c, e, scheduleOptions{user: c.Bool("user"), dir: c.String("dir")})
				},
			},
			{
				Name:      "remove",
				Usage:     "stop and disable the timers of jobs and delete their units",
				ArgsUsage: "JOB...",
				Flags: append(append([]cli.Flag{}, where...),
					&cli.BoolFlag{Name: "no-disable", Usage: "delete the unit files without running systemctl"},
					&cli.BoolFlag{Name: "force", Usage: "with --config, remove units written from another config file too"},
				),
				Action: func(c *cli.Context) error {
					if c.NArg() == 0 {
						return usagef("usage: snap schedule remove JOB...")
					}
					return runScheduleRemove(c, e, c.Args().Slice(), scheduleOptions{user: c.Bool("user"), dir: c.String("dir"), noEnable: c.Bool("no-disable"), force: c.Bool("force")})
				},
			},
		},
	}
}

type scheduleOptions struct {
	user     bool
	dir      string // "" for the systemd directory
	noEnable bool   // install: do not enable; remove: do not disable
	force    bool
}

// callsSystemctl reports whether the command manages systemd, or only
// writes files.
func (o scheduleOptions) callsSystemctl() bool { return o.dir == "" && !o.noEnable }

func (o scheduleOptions) userFlag() string {
	if o.user {
		return "--user "
	}
	return ""
}

// unitJSON is the documented JSON form of an installed job.
type unitJSON struct {
	Job       string   `json:"job"`
	Schedule  []string `json:"schedule"`
	Service   string   `json:"service"` // path of the unit file
	Timer     string   `json:"timer"`
	Installed bool     `json:"installed"`
	// Config is the config file the units were written from.
	Config string `json:"config,omitempty"`
	// OtherConfig: installed from another config file than the one
	// listed, which has a job of the same name; the timer runs the other's.
	OtherConfig bool `json:"other_config,omitempty"`
	// Outdated: the unit files differ from what 'schedule install' would
	// write from the config now (a changed schedule, a moved binary).
	Outdated bool `json:"outdated,omitempty"`
	// ServiceMissing: the timer is snap's but its service file is gone
	// (or is not snap's): the timer starts nothing.
	ServiceMissing bool `json:"service_missing,omitempty"`
	// NotInConfig: installed from this config, which no longer has the
	// job or its schedule; the timer still runs it.
	NotInConfig bool `json:"not_in_config,omitempty"`
	// From systemctl, when it can answer (empty otherwise).
	Enabled    string `json:"enabled,omitempty"` // UnitFileState of the timer: "enabled", "disabled", …
	Active     string `json:"active,omitempty"`  // ActiveState of the timer
	NextRun    string `json:"next_run,omitempty"`
	LastRun    string `json:"last_run,omitempty"`
	LastResult string `json:"last_result,omitempty"` // Result of the service: "success", "exit-code", …
	LastStatus *int   `json:"last_exit_status,omitempty"`
}

// lingerMissing returns this user's name when logind does not keep a
// systemd manager running for the user while logged out (no file in
// /var/lib/systemd/linger), else "". A machine without logind is not
// judged.
func lingerMissing() string {
	u, err := user.Current()
	if err != nil {
		return ""
	}
	return lingerMissingIn("/var/lib/systemd/linger", []string{"/usr/lib/systemd/systemd-logind", "/lib/systemd/systemd-logind"}, u.Username)
}

// lingerMissingIn is lingerMissing with its paths given. logind makes the
// linger directory when lingering is first enabled, so on most machines it
// is not there at all, which is when the warning matters: it was judged
// only where the directory existed (found by an exploratory test).
func lingerMissingIn(lingerDir string, logind []string, name string) string {
	if _, err := os.Stat(filepath.Join(lingerDir, name)); err == nil {
		return ""
	}
	if _, err := os.Stat(lingerDir); err == nil {
		return name
	}
	for _, p := range logind {
		if _, err := os.Stat(p); err == nil {
			return name
		}
	}
	return ""
}

func runScheduleInstall(c *cli.Context, e *env, names []string, o scheduleOptions) error {
	u := newUI(c, e)
	cfg, err := requireConfig(c, e)
	if err != nil {
		return err
	}
	var jobs []*Job
	if len(names) > 0 {
		if jobs, err = selectJobs(cfg, names, nil); err != nil {
			return err
		}
		for _, j := range jobs {
			if len(j.Schedule) == 0 {
				return usagef("job %s has no schedule: add schedule = \"daily\" (or another OnCalendar expression) to [jobs.%s] in %s; to stop a timer installed before, 'snap schedule remove %s'", j.Name, j.Name, cfg.Path, j.Name)
			}
		}
	} else {
		for _, j := range cfg.Jobs {
			if len(j.Schedule) == 0 {
				u.noticef("job %s has no schedule; skipped", j.Name)
				continue
			}
			jobs = append(jobs, j)
		}
		if len(jobs) == 0 {
			return usagef("no job in %s has a schedule: add schedule = \"daily\" (or another OnCalendar expression) to a job", cfg.Path)
		}
	}
	if err := userUnitsOfSystemConfig(o.user, gstring(c, "config"), cfg.Path, os.Geteuid(), e.getenv); err != nil {
		return err
	}
	if !o.user && o.dir == "" && os.Geteuid() != 0 {
		return usagef("system units go to /etc/systemd/system, which only root may write: add --user for units of your own (they run while your systemd manager does: 'loginctl enable-linger' keeps it running when you are logged out), or run as root")
	}
	dir, err := unitDir(o.dir, o.user, e.getenv)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("unit directory: %w", err)
	}
	if o.user && o.dir == "" {
		if name := lingerMissing(); name != "" {
			u.warnf("user %s has no lingering systemd manager: these timers fire only while %s is logged in; as root, run 'loginctl enable-linger %s' to have them run at night", name, name, name)
		}
	}
	bin, err := snapBinary()
	if err != nil {
		return fmt.Errorf("find the snap binary: %w", err)
	}
	// What the units run, and what they load into its environment: root
	// refuses files another user could change, as it refuses such a
	// config file; another user is warned.
	if why := binaryExposed(bin); why != "" {
		msg := fmt.Sprintf("%s: the timers' units run this snap, and another user could change it: %s", bin, why)
		if os.Geteuid() == 0 {
			return usagef("%s (or install snap where only root can write); no unit was written", msg)
		}
		u.warnf("%s", msg)
	}
	envFile := unitEnvFile(o.user, e.getenv)
	if msg, changeable := envFileExposed(envFile); changeable && os.Geteuid() == 0 {
		return usagef("%s: %s; no unit was written", envFile, msg)
	}
	// What 'config check' finds missing now (a repository, a password
	// file, a path) fails these jobs every night: said, not refused (a
	// disk may be mounted, a server started, by then). A job that could
	// not run was installed without a word (found by an exploratory test).
	var faults []Problem
	for _, p := range cfg.checkEnvironment(systemdCalendar(schedules(jobs)...)) {
		if p.Severity == "error" && (p.Job == "" || slices.ContainsFunc(jobs, func(j *Job) bool { return j.Name == p.Job })) {
			faults = append(faults, p)
		}
	}
	if len(faults) > 0 {
		// The path quoted for a shell: pasted, one with blanks or a $ in it
		// was split and expanded (found by an exploratory test).
		u.warnf("%s would fail these jobs if run now (the first: %s); snap config check --config %s lists them", plural(len(faults), "problem", "problems"), faults[0], shQuote(cfg.Path))
	}
	if _, ok := firstS3Repository(cfg); ok {
		// A warning of config check's, but under the timer every run
		// fails for it (installed without a word; found by a re-test).
		if msg := timerS3Credentials(os.Getenv, envFile, accountCredentialsFile()); msg != "" {
			u.warnf("%s", msg)
		}
	}
	// Every unit is checked before any is written: a timer not written by
	// snap must not leave its job's service installed alone.
	for _, j := range jobs {
		for _, name := range []string{serviceName(j.Name), timerName(j.Name)} {
			if err := mayWriteUnit(filepath.Join(dir, name), cfg.Path, o.force); err != nil {
				return err
			}
		}
	}
	var out []unitJSON
	var timers []string
	for _, j := range jobs {
		spec := unitSpec{Job: j, Binary: bin, Config: cfg.Path, User: o.user}
		if o.dir != "" {
			spec.Dir = dir // absolute, as the units were written there
		}
		svc, tmr := filepath.Join(dir, serviceName(j.Name)), filepath.Join(dir, timerName(j.Name))
		if err := writeUnit(svc, serviceUnit(spec), cfg.Path, o.force); err != nil {
			return err
		}
		if err := writeUnit(tmr, timerUnit(spec), cfg.Path, o.force); err != nil {
			return err
		}
		timers = append(timers, timerName(j.Name))
		out = append(out, unitJSON{Job: j.Name, Schedule: j.Schedule, Service: svc, Timer: tmr, Installed: true, Config: cfg.Path})
		u.printf("wrote %s and %s (%s)", svc, tmr, strings.Join(j.Schedule, "; "))
	}
	if msg, _ := envFileExposed(envFile); msg != "" {
		u.warnf("%s: %s", envFile, msg)
	}
	var sysErr error // systemctl failed: the units are written all the same
	if o.callsSystemctl() {
		if _, err := systemctl(o.user, "daemon-reload"); err != nil {
			sysErr = fmt.Errorf("%w; the units are written, enable them with: systemctl %sdaemon-reload && systemctl %senable --now %s", err, o.userFlag(), o.userFlag(), strings.Join(timers, " "))
		} else if _, err := systemctl(o.user, append([]string{"enable", "--now"}, timers...)...); err != nil {
			sysErr = fmt.Errorf("%w; the units are written, enable them with: systemctl %senable --now %s", err, o.userFlag(), strings.Join(timers, " "))
		} else {
			for i := range out {
				out[i].Enabled, out[i].Active = "enabled", "active"
			}
			u.printf("enabled and started %s", strings.Join(timers, " "))
		}
	} else if o.dir == "" {
		u.printf("not enabled; to enable: systemctl %sdaemon-reload && systemctl %senable --now %s", o.userFlag(), o.userFlag(), strings.Join(timers, " "))
	}
	// Units this config wrote for a job it no longer has, or no longer
	// schedules: their timers still run. Only 'schedule list' said so, and
	// an admin who deleted a job and ran install again thought it gone
	// (found by an exploratory test).
	if list, err := installedUnits(dir, o, false); err == nil {
		compareUnits(cfg, o.user, list)
		warnStaleUnits(c, u, o, list)
	}
	if u.json {
		// Also when systemctl failed: a script must learn which units
		// were written (the error line follows on standard error).
		if err := u.jsonDoc(map[string]any{"dir": dir, "enabled": o.callsSystemctl() && sysErr == nil, "units": out}); err != nil {
			return err
		}
	}
	return sysErr
}

// shellWord quotes s for a shell only when it needs it, so that a command
// in a message reads as typed.
func shellWord(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_./-=:,+@%") == "" {
		return s
	}
	return shQuote(s)
}

// userUnitsOfSystemConfig refuses user units (--user, by someone other
// than root) for the system's config when the search found it rather than
// --config naming it: the units would run root's jobs as this user, who
// can seldom read their repositories, password files or backed-up paths,
// and every run would fail at night.
func userUnitsOfSystemConfig(user bool, explicit, found string, euid int, getenv func(string) string) error {
	if !user || explicit != "" || found != systemConfig || euid == 0 {
		return nil
	}
	own := "~/.config/snap/snap.toml"
	if paths := configPaths(getenv); len(paths) > 1 {
		own = paths[0]
	}
	return usagef("user units run their jobs as you, and the config found is the system's, %s (you have none at %s): create your own there, or give --config %s to run its jobs as you", systemConfig, own, systemConfig)
}

// installedUnits returns the units snap wrote in dir, by job, with their
// systemd state when state is set and they are the system's or the user's.
func installedUnits(dir string, o scheduleOptions, state bool) ([]unitJSON, error) {
	timers, err := filepath.Glob(filepath.Join(dir, "snap-*.timer"))
	if err != nil {
		return nil, err
	}
	sort.Strings(timers)
	var out []unitJSON
	for _, t := range timers {
		text, ok := readOwnUnit(t)
		if !ok {
			continue
		}
		job := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(t), "snap-"), ".timer")
		uj := unitJSON{Job: job, Schedule: unitValues(text, "OnCalendar"), Service: filepath.Join(dir, serviceName(job)), Timer: t, Installed: true, Config: unitConfig(text)}
		if state && o.dir == "" {
			unitState(o.user, &uj)
		}
		out = append(out, uj)
	}
	return out, nil
}

func runScheduleList(c *cli.Context, e *env, o scheduleOptions) error {
	u := newUI(c, e)
	dir, err := unitDir(o.dir, o.user, e.getenv)
	if err != nil {
		return err
	}
	out, err := installedUnits(dir, o, true)
	if err != nil {
		return err
	}
	installed := map[string]bool{}
	for _, uj := range out {
		installed[uj.Job] = true
	}
	// Scheduled jobs of the config that are not installed here. A config
	// with errors still lets the installed timers be listed, and then
	// fails the command: an empty list must not hide it.
	var cfgErr error
	if path, err := findConfig(gstring(c, "config"), e.getenv); err != nil {
		cfgErr = err
	} else if path == "" {
		u.warnf("no config file (%s): only installed units are listed", strings.Join(configPaths(e.getenv), " or "))
	} else {
		cfg, _, err := loadConfig(path)
		if err != nil {
			cfgErr = fmt.Errorf("%w; jobs not installed are not listed; see 'snap config check'", err)
		} else {
			compareUnits(cfg, o.user, out)
			for _, j := range cfg.Jobs {
				if len(j.Schedule) > 0 && !installed[j.Name] {
					out = append(out, unitJSON{Job: j.Name, Schedule: j.Schedule})
				}
			}
		}
	}
	if u.json {
		if out == nil {
			out = []unitJSON{}
		}
		if err := u.jsonDoc(map[string]any{"dir": dir, "units": out}); err != nil {
			return err
		}
		// On standard error as JSON lines, as every listing command's
		// warnings: the document's flags alone name no fix.
		warnStaleUnits(c, u, o, out)
		return cfgErr
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	if !u.quiet { // -q: the rows alone, for scripts
		fmt.Fprintln(tw, "Job\tSchedule\tTimer\tNext run\tLast run\tLast result")
	}
	for _, uj := range out {
		state := "not installed"
		if uj.Installed {
			state = "installed"
			if uj.Enabled != "" {
				state = uj.Enabled + ", " + uj.Active
			}
		}
		switch {
		case uj.NotInConfig:
			state += "; not scheduled in the config"
		case uj.OtherConfig:
			state += "; from " + uj.Config
		case uj.ServiceMissing:
			state += "; service file missing"
		case uj.Outdated:
			state += "; outdated"
		}
		result := uj.LastResult
		if uj.LastStatus != nil && *uj.LastStatus != 0 {
			result += fmt.Sprintf(" (exit %d)", *uj.LastStatus)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", uj.Job, strings.Join(uj.Schedule, "; "), state, dash(uj.NextRun), dash(uj.LastRun), dash(result))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	warnStaleUnits(c, u, o, out)
	return cfgErr
}

// warnStaleUnits warns about each listed unit that no longer matches the
// config (compareUnits), with the command that fixes it.
func warnStaleUnits(c *cli.Context, u *ui, o scheduleOptions, list []unitJSON) {
	// The fix names the same units: --user, and --dir, as given here
	// (without them, install would write and enable system units).
	where := o.userFlag()
	if o.dir != "" {
		where += "--dir " + shellWord(o.dir) + " "
	}
	if cfg := gstring(c, "config"); cfg != "" {
		where += "--config " + shellWord(cfg) + " " // the config compared with, not the default one
	}
	for _, uj := range list {
		switch {
		case uj.NotInConfig:
			u.warnf("job %s: its units are installed but the config has no such scheduled job; its timer still runs it: 'snap schedule remove %s%s'", uj.Job, where, uj.Job)
		case uj.OtherConfig:
			u.warnf("job %s: its units were written from another config file, %s, and run that one's job %s; this config's job of the same name has no timer: rename it and install it", uj.Job, uj.Config, uj.Job)
		case uj.ServiceMissing:
			u.warnf("job %s: its timer is installed but its service file %s is missing or not snap's; the timer starts nothing: 'snap schedule install %s%s'", uj.Job, uj.Service, where, uj.Job)
		case uj.Outdated:
			u.warnf("job %s: the installed units differ from what the config gives now: 'snap schedule install %s%s'", uj.Job, where, uj.Job)
		}
	}
}

// compareUnits marks the installed units of list that were written from
// cfg and no longer match it: a job removed from the config (or left
// without a schedule), or units that differ from what install would write
// now. Units written from another config file are not judged by this one.
func compareUnits(cfg *Config, user bool, list []unitJSON) {
	bin, err := snapBinary()
	if err != nil {
		return
	}
	jobs := map[string]*Job{}
	for _, j := range cfg.Jobs {
		if len(j.Schedule) > 0 {
			jobs[j.Name] = j
		}
	}
	for i := range list {
		uj := &list[i]
		timer, ok := readOwnUnit(uj.Timer)
		if !ok {
			continue
		}
		j := jobs[uj.Job]
		if !sameConfig(unitConfig(timer), cfg.Path) {
			uj.OtherConfig = j != nil
			continue
		}
		if j == nil {
			uj.NotInConfig = true
			continue
		}
		service, ok := readOwnUnit(uj.Service)
		if !ok {
			uj.ServiceMissing = true
			continue
		}
		// Units in a --dir may have been written with or without --user,
		// whichever list is given now: either form is up to date.
		uj.Outdated = true
		for _, u := range []bool{user, !user} {
			spec := unitSpec{Job: j, Binary: bin, Config: cfg.Path, User: u}
			if unitSettings(service) == unitSettings(serviceUnit(spec)) && unitSettings(timer) == unitSettings(timerUnit(spec)) {
				uj.Outdated = false
			}
		}
	}
}

func dash(s string) string {
	if s == "" || s == "n/a" {
		return "-"
	}
	return s
}

// unitState fills in what systemctl knows about a job's units; without a
// running systemd it leaves the fields empty.
func unitState(user bool, uj *unitJSON) {
	props := func(unit string, names ...string) map[string]string {
		args := []string{"show", unit}
		for _, n := range names {
			args = append(args, "--property="+n)
		}
		text, err := systemctl(user, args...)
		if err != nil {
			return nil
		}
		m := map[string]string{}
		for _, line := range strings.Split(text, "\n") {
			if k, v, ok := strings.Cut(line, "="); ok {
				m[k] = v
			}
		}
		return m
	}
	if t := props(timerName(uj.Job), "UnitFileState", "ActiveState", "NextElapseUSecRealtime", "LastTriggerUSec"); t != nil {
		uj.Enabled, uj.Active, uj.NextRun, uj.LastRun = t["UnitFileState"], t["ActiveState"], t["NextElapseUSecRealtime"], t["LastTriggerUSec"]
	}
	if s := props(serviceName(uj.Job), "Result", "ExecMainStatus", "ExecMainExitTimestamp"); s != nil && s["ExecMainExitTimestamp"] != "" {
		uj.LastResult = s["Result"]
		var code int
		if _, err := fmt.Sscan(s["ExecMainStatus"], &code); err == nil {
			uj.LastStatus = &code
		}
	}
}

func runScheduleRemove(c *cli.Context, e *env, jobs []string, o scheduleOptions) error {
	u := newUI(c, e)
	dir, err := unitDir(o.dir, o.user, e.getenv)
	if err != nil {
		return err
	}
	// A name without units is a mistake on the command line (exit 2), found
	// before anything is removed.
	for _, job := range jobs {
		if !ownUnit(filepath.Join(dir, serviceName(job))) && !ownUnit(filepath.Join(dir, timerName(job))) {
			return usagef("no units of job %s written by snap in %s; see 'snap schedule list'", job, dir)
		}
	}
	// With --config, the units must be that config's: another config
	// file's job of the same name lost its timer without a word (found
	// by a re-test). Without it, remove goes by name (a broken or lost
	// config must not keep units from being removed).
	if cfg := gstring(c, "config"); cfg != "" && !o.force {
		abs, err := filepath.Abs(cfg)
		if err != nil {
			return err
		}
		for _, job := range jobs {
			for _, p := range []string{filepath.Join(dir, timerName(job)), filepath.Join(dir, serviceName(job))} {
				if text, ok := readOwnUnit(p); ok && !sameConfig(unitConfig(text), abs) {
					return usagef("the units of job %s were written from another config file, %s: give that one with --config, or --force to remove them all the same", job, unitConfig(text))
				}
			}
		}
	}
	var removed []string
	var sysErrs []string // systemctl failed: the timer may still be enabled
	for _, job := range jobs {
		svc, tmr := filepath.Join(dir, serviceName(job)), filepath.Join(dir, timerName(job))
		if o.callsSystemctl() {
			// A backup that is running now goes on; only the timer stops.
			if _, err := systemctl(o.user, "disable", "--now", timerName(job)); err != nil {
				u.warnf("%v", err)
				sysErrs = append(sysErrs, fmt.Sprintf("systemctl %sdisable --now %s", o.userFlag(), timerName(job)))
			}
		}
		for _, p := range []string{tmr, svc} {
			if !ownUnit(p) {
				continue
			}
			if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
			removed = append(removed, p)
		}
		u.printf("removed the units of job %s", job)
	}
	if o.callsSystemctl() {
		if _, err := systemctl(o.user, "daemon-reload"); err != nil {
			u.warnf("%v", err)
			sysErrs = append(sysErrs, fmt.Sprintf("systemctl %sdaemon-reload", o.userFlag()))
		}
	}
	if u.json {
		if err := u.jsonDoc(map[string]any{"dir": dir, "removed": removed}); err != nil {
			return err
		}
	}
	if len(sysErrs) > 0 {
		// The files are gone, but systemd may still hold the timer: a
		// script must not take that for done.
		return fmt.Errorf("the unit files are removed, but systemctl failed (above), so systemd may still run the timer: run %s", strings.Join(sysErrs, " and "))
	}
	return nil
}
