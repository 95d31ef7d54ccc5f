package main

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/BurntSushi/toml"
	"golang.org/x/sys/unix"

	"github.com/snap-backup/snap/repo"
	"github.com/snap-backup/snap/repo/local"
	"github.com/snap-backup/snap/repo/s3"
	"github.com/snap-backup/snap/snapshot"
	"github.com/snap-backup/snap/sources"
	"github.com/snap-backup/snap/sources/safepath"
)

// The jobs config file (docs/usage.md, "Config file"). It names the
// repository, how to get its password, and jobs: what to back up, when,
// and what to keep. Every key is checked, and every problem is reported
// with its line, so that 'snap config check' can list them all at once.

// Config is a loaded jobs config file.
type Config struct {
	Path            string // absolute
	Repository      string
	PasswordFile    string
	PasswordCommand string
	CacheDir        string
	// MetricsDir is where 'snap run' writes each job's Prometheus
	// metrics (metrics.go); "" writes none.
	MetricsDir string
	// LimitUpload and LimitDownload are --limit-upload and
	// --limit-download for the config's repositories (bytes per second,
	// 0: none); the flags win.
	LimitUpload, LimitDownload uint64
	Host                       string
	Compression                string
	Jobs                       []*Job // in file order
}

// maxDumpConcurrency bounds create's --dump-concurrency and a job's
// dump_concurrency: far beyond any machine's dumps, and an int on every
// platform.
const maxDumpConcurrency = 1 << 20

// Job is one [jobs.NAME] table, with the file's defaults filled in.
type Job struct {
	Name string
	Line int // of its [jobs.NAME] header

	Repository      string
	PasswordFile    string
	PasswordCommand string

	Paths   []string
	Exclude []string
	// ExcludeFile, ExcludeIfPresent, ExcludeCaches and ExcludeLargerThan
	// are create's --exclude-file, --exclude-if-present, --exclude-caches
	// and --exclude-larger-than.
	ExcludeFile       []string
	ExcludeIfPresent  []string
	ExcludeCaches     bool
	ExcludeLargerThan uint64
	Databases         []string
	Commands          []JobCommand
	// DumpConcurrency is create's --dump-concurrency.
	DumpConcurrency int
	Tags            []string
	Host            string // "" means this machine's host name
	OneFileSystem   bool
	SequentialRead  bool // read large files strictly in order (no scouts): create --sequential-read
	AllowEmptied    bool // a path that comes back empty is no warning: create --allow-emptied
	Compression     string
	Pre, Post       []string
	MinFree         uint64 // refuse to start below this free space on the repository's device

	// Finally runs when the job is done, after its create, forget, prune
	// and check: a post hook runs right after the create (it starts what
	// a pre hook stopped), so a monitoring ping there never heard of a
	// check that found damage (found by an exploratory test).
	Finally []string

	Schedule    []string // systemd OnCalendar expressions; none: not scheduled
	RandomDelay time.Duration
	// HookTimeout stops a pre or post hook that runs longer (0: no limit).
	HookTimeout time.Duration
	// Timeout stops a run of the job that takes longer (0: no limit):
	// a dump waiting for ever on a table lock, a password command that
	// never answers, a stalled mount. The post hooks still run.
	Timeout time.Duration

	Keep  Keep
	Check *CheckSpec // nil: no check after the run
}

// excludes is what the job leaves out.
func (j *Job) excludes() excludeSpec {
	return excludeSpec{patterns: j.Exclude, files: j.ExcludeFile, ifPresent: j.ExcludeIfPresent, caches: j.ExcludeCaches, largerThan: j.ExcludeLargerThan}
}

// JobCommand is a command whose standard output a job stores as a file,
// as 'create --command NAME -- CMD ARGS...' does.
type JobCommand struct {
	Name string   // the file's path in the snapshot
	Argv []string // the program and its arguments
	// Script is the command given as one string (shellArgv), "" for an
	// array.
	Script string
}

// shellArgv is how a command given as one string runs: with /bin/sh -c,
// unless it holds a pipe and bash is installed, then with bash --posix -o
// pipefail -c. A shell reports a pipeline's status as its last program's, so
// "pg_dump app | gzip" with pg_dump failing exited 0, and the snapshot was
// saved holding an empty dump (found by an exploratory test); Debian's
// /bin/sh (dash 0.5.12) has no pipefail. pipefail makes the pipeline fail
// when any of its programs does.
func shellArgv(script string) []string {
	if strings.Contains(script, "|") {
		if bash, err := exec.LookPath("bash"); err == nil {
			// --posix: no startup file either (a non-interactive bash
			// runs $BASH_ENV first, which dash does not; found in
			// review), and sh's behaviour where bash's differs.
			return []string{bash, "--posix", "-o", "pipefail", "-c", script}
		}
	}
	return []string{"/bin/sh", "-c", script}
}

// Keep is a job's retention policy ([jobs.NAME.keep]).
type Keep struct {
	Last, Hourly, Daily, Weekly, Monthly, Yearly int
	Within                                       string // a duration like "30d" or "1y6m"
	Tags                                         []string
	Prune                                        bool
	MaxUnused                                    string // prune --max-unused, "" for its default
	DeleteDelay                                  string // prune --delete-delay, "" for its default
}

// Any reports whether the policy keeps anything, that is, whether forget
// should run at all.
func (k Keep) Any() bool {
	return k.counts() || k.Within != "" || len(k.Tags) > 0
}

// counts reports whether the policy has a count (last, daily, …), which
// always keeps the newest snapshot.
func (k Keep) counts() bool {
	return k.Last > 0 || k.Hourly > 0 || k.Daily > 0 || k.Weekly > 0 || k.Monthly > 0 || k.Yearly > 0
}

// CheckSpec is what 'snap run' checks after a job: the structure, and a
// subset of the data when ReadDataSubset is set ("1/7", "5%", "500M").
type CheckSpec struct {
	ReadDataSubset string `json:"read_data_subset"`
}

// defaultRandomDelay spreads the start of timers that share a schedule.
const defaultRandomDelay = 10 * time.Minute

// Problem is one thing wrong with a config file.
type Problem struct {
	File string `json:"file"`
	Line int    `json:"line"` // 0 when it concerns the whole file
	Key  string `json:"key,omitempty"`
	// Job is the job the problem is in ("" for the file's own keys):
	// snap run runs the other jobs (jobErrors).
	Job      string `json:"job,omitempty"`
	Message  string `json:"message"`
	Severity string `json:"severity"` // "error" or "warning"
}

func (p Problem) String() string {
	var b strings.Builder
	b.WriteString(p.File)
	if p.Line > 0 {
		fmt.Fprintf(&b, ":%d", p.Line)
	}
	b.WriteString(": ")
	if p.Severity == "warning" {
		b.WriteString("warning: ")
	}
	if p.Key != "" {
		b.WriteString(p.Key + ": ")
	}
	b.WriteString(p.Message)
	return b.String()
}

// ConfigError carries every error found in a config file.
type ConfigError struct{ Problems []Problem }

func (e *ConfigError) Error() string {
	var errs []Problem
	for _, p := range e.Problems {
		if p.Severity == "error" {
			errs = append(errs, p)
		}
	}
	sort.SliceStable(errs, func(i, j int) bool { return errs[i].Line < errs[j].Line })
	// One line, read in a journal: the first few, in the file's order.
	const shown = 3
	var msgs []string
	for _, p := range errs[:min(len(errs), shown)] {
		msgs = append(msgs, p.String())
	}
	msg := strings.Join(msgs, "; ")
	switch {
	case len(errs) > shown:
		msg = fmt.Sprintf("%d problems in the config, the first %d: %s; … (see 'snap config check' for all)", len(errs), shown, msg)
	case len(errs) > 1:
		msg = fmt.Sprintf("%d problems in the config: %s (see 'snap config check')", len(errs), msg)
	default:
		msg += " (see 'snap config check')"
	}
	return msg
}

// xdgDir returns an XDG base directory variable's value, or "" when it is
// unset or relative: the XDG spec says to ignore a relative one, and a
// path resolved against the current directory would name another place
// once a timer runs the command from /.
func xdgDir(getenv func(string) string, name string) string {
	if d := getenv(name); filepath.IsAbs(d) {
		return d
	}
	return ""
}

// userConfigDir is the user's configuration directory: $XDG_CONFIG_HOME,
// else ~/.config by $HOME; "" with neither.
func userConfigDir(getenv func(string) string) string {
	if d := xdgDir(getenv, "XDG_CONFIG_HOME"); d != "" {
		return d
	}
	if home := getenv("HOME"); home != "" {
		return filepath.Join(home, ".config")
	}
	return ""
}

// configPaths are the places searched when --config is not given. Without
// HOME (a system service, cron) the account's home from the password
// database stands in, as for the cache (cacheBase): a user's timer found
// only the system's config, which it cannot read (found by a red-team
// test).
func configPaths(getenv func(string) string) []string {
	var out []string
	if d := userConfigDir(getenv); d != "" {
		out = append(out, filepath.Join(d, "snap", "snap.toml"))
	} else if home := passwdHome(); filepath.IsAbs(home) && home != "/" {
		out = append(out, filepath.Join(home, ".config", "snap", "snap.toml"))
	}
	return append(out, systemConfig)
}

// systemConfig is the config file searched last, the system's: root's
// jobs.
const systemConfig = "/etc/snap/snap.toml"

// findConfig returns the config file to use: explicit (--config or
// SNAP_CONFIG; it must exist), else the first of configPaths that exists,
// else "".
func findConfig(explicit string, getenv func(string) string) (string, error) {
	if explicit != "" {
		abs, err := filepath.Abs(explicit)
		if err != nil {
			return "", err
		}
		if _, err := os.Stat(abs); err != nil {
			return "", usagef("config file %s: %v", abs, unwrapOS(err))
		}
		return abs, nil
	}
	for _, p := range configPaths(getenv) {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", nil
}

// loadConfig reads and checks a config file. It returns the config and
// every problem found; err is a *ConfigError when any problem is an error.
//
// Run as root it refuses a file another user could change (readConfigFile):
// its hooks, dump commands and password command would run as root. cron
// refuses such crontabs in /etc/cron.d the same way.
func loadConfig(path string) (*Config, []Problem, error) {
	data, why, err := readConfigFile(path)
	if why != "" && os.Geteuid() == 0 {
		msg := "another user could change this config, and root would run its hooks and commands; root does not read it: " + why
		problems := []Problem{{File: path, Message: msg, Severity: "error"}}
		return nil, problems, &ConfigError{Problems: problems}
	}
	if err != nil {
		return nil, nil, usagef("config file %s: %v", path, unwrapOS(err))
	}
	cfg, problems, err := parseConfig(path, string(data))
	if why != "" {
		// Anyone else is warned, by every command that reads the file
		// (openConfig, config check), from this one judgement.
		problems = append(problems, Problem{File: path, Message: configOthersWarning + why, Severity: "warning"})
	}
	return cfg, problems, err
}

// configOthersWarning begins the warning about a config file another user
// could change, for a user other than root.
const configOthersWarning = "another user could change this config, whose hooks and commands run as you: "

// readConfigFile reads the config file at path, and says how users other
// than the one running snap could change it (why), whose hooks and
// commands run as whoever runs the job, root from a system timer, and
// what to do about it: a file others may write, one that root runs but
// another user owns, one in a directory others may write (they can put
// another file in its place), or one on a path on which another user's
// link or directory could lead elsewhere (root run with a user's
// environment, su without -, finds the config under that user's
// $XDG_CONFIG_HOME). why is "" when none of these holds. The file is
// judged by the descriptor it is read through, so what is read is what
// was judged (a red-team test renamed the file away between a check by
// name and the read, and root ran the password command of the file put
// back); one that cannot be judged is judged unsafe.
func readConfigFile(path string) (data []byte, why string, err error) {
	flags := os.O_RDONLY | syscall.O_NOFOLLOW | syscall.O_NONBLOCK | syscall.O_NOCTTY
	file, _, err := safepath.Resolve(path)
	if err != nil {
		// Read all the same, links followed, for the warning a user
		// other than root gets (root refuses it).
		why = err.Error()
		file = path
		flags &^= syscall.O_NOFOLLOW
	}
	// Not opened at all unless a regular file (opening a device can act).
	if fi, err := os.Stat(file); err == nil && !fi.Mode().IsRegular() {
		return nil, cmp.Or(why, "it is not a regular file"), fmt.Errorf("%s is not a regular file", file)
	}
	f, err := os.OpenFile(file, flags, 0)
	if err != nil {
		return nil, cmp.Or(why, fmt.Sprintf("it cannot be judged (%v)", unwrapOS(err))), err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, cmp.Or(why, fmt.Sprintf("it cannot be judged (%v)", err)), err
	}
	if !st.Mode().IsRegular() {
		return nil, cmp.Or(why, "it is not a regular file"), fmt.Errorf("%s is not a regular file", file)
	}
	if why == "" {
		why = othersCanChange(file, st, fmt.Sprintf("/proc/self/fd/%d", f.Fd()))
	}
	data, err = io.ReadAll(f)
	return data, why, err
}

// othersCanChange is readConfigFile's judgement of the open file st, at
// file (fdPath: /proc/self/fd/N of its descriptor).
func othersCanChange(file string, st fs.FileInfo, fdPath string) string {
	switch sys, ok := st.Sys().(*syscall.Stat_t); {
	case safepath.OthersMayWrite(st, fdPath):
		if safepath.HasACL(fdPath) {
			return fmt.Sprintf("it is writable by others (mode %04o, and an ACL that names more users or groups): setfacl -b %s; chmod go-w %s", st.Mode().Perm(), file, file)
		}
		return fmt.Sprintf("it is writable by others (mode %04o): chmod go-w %s", st.Mode().Perm(), file)
	case ok && os.Geteuid() == 0 && sys.Uid != 0:
		return fmt.Sprintf("it belongs to user %d: chown root %s, or run snap as that user", sys.Uid, file)
	case ok && int(sys.Uid) != os.Geteuid() && sys.Uid != 0:
		return fmt.Sprintf("it belongs to user %d: copy it to a file of yours", sys.Uid)
	}
	if dir := filepath.Dir(file); safepath.State(dir) == safepath.Others {
		return fmt.Sprintf("it is in %s, which others can write (%s) and so put another file in its place: chmod go-w %s", dir, safepath.WhoWrites(dir), dir)
	}
	return ""
}

// tomlDefinedTwice is the TOML parser's word for a table or key written
// twice ("Key 'jobs.a' has already been defined.").
var tomlDefinedTwice = regexp.MustCompile(`^Key '([^']+)' has already been defined\.?$`)

// parseConfig checks the document's syntax and keys (not the environment:
// see checkEnvironment).
func parseConfig(path, doc string) (*Config, []Problem, error) {
	d := &cfgDecoder{file: path}
	var raw map[string]any
	if _, err := toml.Decode(doc, &raw); err != nil {
		var pe toml.ParseError
		line := 0
		msg := err.Error()
		if errors.As(err, &pe) {
			line, msg = pe.Position.Line, pe.Message
			// The parser names the line where it gave up, which for an
			// unclosed array or string is the line after the mistake:
			// naming the key it was reading points at the mistake itself.
			// A line that ends too early ("[jobs.a" with no "]") is
			// reported at the newline, which the parser counts as the
			// start of the next line.
			if strings.Contains(msg, `got '\n'`) && line > 1 {
				line--
			}
			if pe.LastKey != "" && !strings.Contains(msg, pe.LastKey) {
				msg += " (in the value of " + pe.LastKey + ")"
			}
			if m := tomlDefinedTwice.FindStringSubmatch(msg); m != nil {
				msg = fmt.Sprintf("%s is set twice; keep one", m[1])
				if lines := strings.Split(doc, "\n"); line >= 1 && line <= len(lines) && strings.HasPrefix(strings.TrimSpace(lines[line-1]), "[") {
					msg = fmt.Sprintf("[%s] is written twice; give one of them another name, or merge the two", m[1])
				}
			}
		}
		d.problems = append(d.problems, Problem{File: path, Line: line, Message: "TOML syntax: " + msg, Severity: "error"})
		return nil, d.problems, &ConfigError{Problems: d.problems}
	}
	d.lines = tomlKeyLines(doc)
	cfg := d.config(raw)
	cfg.Path = path
	cfg.Repository = cfg.resolveRepository(cfg.Repository)
	for _, j := range cfg.Jobs {
		j.Repository = cfg.resolveRepository(j.Repository)
	}
	return cfg, d.problems, d.err()
}

// cfgDecoder turns the generic TOML tables into a Config, collecting
// problems instead of stopping at the first.
type cfgDecoder struct {
	file     string
	lines    map[string]int
	problems []Problem
	// topRepository: the file has a repository key, valid or not: a job
	// without one of its own is not also told there is none.
	topRepository bool
}

func (d *cfgDecoder) err() error {
	for _, p := range d.problems {
		if p.Severity == "error" {
			return &ConfigError{Problems: d.problems}
		}
	}
	return nil
}

// lineOf is the line of key, or of its nearest parent that has one.
func (d *cfgDecoder) lineOf(key toml.Key) int {
	for n := len(key); n > 0; n-- {
		if l, ok := d.lines[key[:n].String()]; ok {
			return l
		}
	}
	return 0
}

func (d *cfgDecoder) errorf(key toml.Key, format string, args ...any) {
	d.problems = append(d.problems, Problem{File: d.file, Line: d.lineOf(key), Key: key.String(), Job: jobOf(key), Message: problemText(format, args...), Severity: "error"})
}

// failed reports whether an error was found in one of the keys of at, or
// below one.
func (d *cfgDecoder) failed(at toml.Key, keys ...string) bool {
	for _, p := range d.problems {
		for _, k := range keys {
			key := sub(at, k).String()
			if p.Severity == "error" && (p.Key == key || strings.HasPrefix(p.Key, key+".")) {
				return true
			}
		}
	}
	return false
}

func (d *cfgDecoder) warnf(key toml.Key, format string, args ...any) {
	d.problems = append(d.problems, Problem{File: d.file, Line: d.lineOf(key), Key: key.String(), Job: jobOf(key), Message: problemText(format, args...), Severity: "warning"})
}

// problemText is a problem's message on one line, whatever the config
// holds: a path with a newline in it spread one problem over two lines,
// which read as two problems to a script reading FILE:LINE: (found by an
// exploratory test). Line breaks are shown as \n and \r, other control
// characters as escapes.
func problemText(format string, args ...any) string {
	msg := fmt.Sprintf(format, args...)
	return escapeControls(strings.NewReplacer("\n", `\n`, "\r", `\r`).Replace(msg))
}

// fileOnlyKeys are keys of the whole file that a job does not take.
var fileOnlyKeys = []string{"cache_dir", "metrics_dir", "limit_upload", "limit_download"}

// jobKeys and keepKeys are the keys of a [jobs.NAME] table and of its keep
// table.
var (
	jobKeys = []string{"repository", "password_file", "password_command", "paths", "exclude", "exclude_file", "exclude_if_present", "exclude_caches", "exclude_larger_than", "databases", "tags", "host",
		"one_file_system", "sequential_read", "allow_emptied", "compression", "schedule", "random_delay", "pre", "post", "finally", "hook_timeout", "timeout", "min_free", "dump_concurrency", "commands", "keep", "check"}
	keepKeys = []string{"last", "hourly", "daily", "weekly", "monthly", "yearly", "within", "tags", "prune", "max_unused", "delete_delay"}
)

// jobOf is the job a key belongs to: jobKey(NAME) for jobs.NAME…, else "".
func jobOf(key toml.Key) string {
	if len(key) < 2 || key[0] != "jobs" {
		return ""
	}
	return jobKey(key[1])
}

// jobKey names a job in Problem.Job and snap run's broken jobs: its name,
// and an empty one ([jobs.""]) as written, "\"\"", since "" stands for the
// whole file.
func jobKey(name string) string {
	if name == "" {
		return `""`
	}
	return name
}

// jobErrors splits a config's errors by job: those of single jobs, by
// name (the first of each by line), and whether any concerns the file as a whole.
// snap run runs the jobs without errors when only jobs have them: a
// mistake in a job added today must not stop every other job's backup
// tonight.
func jobErrors(problems []Problem) (byJob map[string]Problem, whole bool) {
	byJob = map[string]Problem{}
	for _, p := range problems {
		switch {
		case p.Severity != "error":
		case p.Job == "":
			whole = true
		default:
			// The first by line, as config check lists them (the
			// decoder reports keys in its own order); one about the
			// job as a whole ("nothing to back up") after those about
			// its keys, which it often follows from ("path" mistyped
			// for "paths"; found by an exploratory test).
			aboutJob := func(p Problem) bool { return p.Key == toml.Key{"jobs", p.Job}.String() }
			if first, seen := byJob[p.Job]; !seen || aboutJob(first) && !aboutJob(p) || aboutJob(first) == aboutJob(p) && p.Line < first.Line {
				byJob[p.Job] = p
			}
		}
	}
	return byJob, whole
}

func sub(key toml.Key, name string) toml.Key { return append(append(toml.Key{}, key...), name) }

// known reports every key of t that is not in allowed, with a hint when a
// close spelling exists.
func (d *cfgDecoder) known(t map[string]any, at toml.Key, allowed ...string) {
	names := make([]string, 0, len(t))
	for k := range t {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		if slices.Contains(allowed, k) {
			continue
		}
		hint := ""
		if a, ok := closest(allowed, func(a string) int {
			if strings.ReplaceAll(k, "-", "_") == a || strings.EqualFold(a, k) {
				return 0
			}
			return typoDistance(a, k)
		}); ok {
			hint = fmt.Sprintf("; did you mean %q?", a)
		}
		where := "at the top level"
		if len(at) > 0 {
			where = "in [" + at.String() + "]"
		}
		// A key of the other table of a job: retention written among
		// the job's keys, or a job key written after [jobs.NAME.keep],
		// which TOML gives it to. "did you mean" offered a job key
		// spelt alike ("prune": "pre"; found by an exploratory test).
		inJob := len(at) == 2 && at[0] == "jobs"
		inKeep := len(at) == 3 && at[0] == "jobs" && at[2] == "keep"
		switch {
		case inJob && slices.Contains(keepKeys, k):
			d.errorf(sub(at, k), "%s is a key of the job's retention: move it into the job's keep table (under [%s.keep], or inside keep = { … } where the job has that line)", k, at.String())
			continue
		case inKeep && slices.Contains(jobKeys, k):
			d.errorf(sub(at, k), "%s is a key of the job, but TOML puts it in [%s], the table above it: move it above [%s]", k, at.String(), at.String())
			continue
		}
		if jobOf(at) != "" && slices.Contains(fileOnlyKeys, k) {
			// Written at the end of the file, below a [jobs.NAME]
			// table, which TOML gives it to: the whole file's setting,
			// so snap run must not go on without it (a job's own
			// error would fail that job only).
			d.problems = append(d.problems, Problem{File: d.file, Line: d.lineOf(sub(at, k)), Key: k, Severity: "error",
				Message: fmt.Sprintf("a setting of the whole file, but TOML puts it in [%s], the table above it: move it above the first [jobs…] table", at.String())})
			continue
		}
		d.errorf(sub(at, k), "unknown key %s%s (known keys: %s)", where, hint, strings.Join(allowed, ", "))
	}
}

func tomlType(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case int64:
		return "an integer"
	case float64:
		return "a float"
	case bool:
		return "a boolean"
	case []any, []map[string]any:
		return "an array"
	case map[string]any:
		return "a table"
	case time.Time:
		return "a date"
	}
	return fmt.Sprintf("%T", v)
}

func (d *cfgDecoder) str(t map[string]any, at toml.Key, name string) string {
	v, ok := t[name]
	if !ok {
		return ""
	}
	s, ok := v.(string)
	if !ok {
		d.errorf(sub(at, name), "must be a string, not %s", tomlType(v))
		return ""
	}
	return s
}

// strList accepts an array of strings (or, for convenience, one string).
func (d *cfgDecoder) strList(t map[string]any, at toml.Key, name string) []string {
	v, ok := t[name]
	if !ok {
		return nil
	}
	if s, ok := v.(string); ok {
		return []string{s}
	}
	arr, ok := v.([]any)
	if !ok {
		d.errorf(sub(at, name), "must be an array of strings, not %s", tomlType(v))
		return nil
	}
	out := make([]string, 0, len(arr))
	for i, e := range arr {
		s, ok := e.(string)
		if !ok {
			d.errorf(sub(at, name), "element %d must be a string, not %s", i+1, tomlType(e))
			continue
		}
		out = append(out, s)
	}
	return out
}

func (d *cfgDecoder) boolean(t map[string]any, at toml.Key, name string) bool {
	v, ok := t[name]
	if !ok {
		return false
	}
	b, ok := v.(bool)
	if !ok {
		d.errorf(sub(at, name), "must be true or false, not %s", tomlType(v))
	}
	return b
}

// tomlValue shows a value as it was written in TOML: a string quoted, so
// that last = "7" does not read as the number 7 in a message.
func tomlValue(v any) string {
	if s, ok := v.(string); ok {
		return strconv.Quote(s)
	}
	return fmt.Sprint(v)
}

// duration returns the Go duration (0 or more) of key name, def when it
// is not set; examples complete the error message.
func (d *cfgDecoder) duration(t map[string]any, at toml.Key, name string, def time.Duration, examples string) time.Duration {
	v, ok := t[name]
	if !ok {
		return def
	}
	s, isString := v.(string)
	if !isString {
		// timeout = 90: a number, which would be a unit-less guess.
		d.errorf(sub(at, name), "%s is not a quoted duration: give one such as %s", tomlValue(v), examples)
		return def
	}
	dur, err := time.ParseDuration(s)
	switch {
	case err != nil && strings.Contains(s, "d"):
		// keep.within and delete_delay take days; these take Go's
		// units, and "1d" got only the examples (found by an
		// exploratory test).
		d.errorf(sub(at, name), "%q: days are written in hours here (\"48h\" for 2 days); give a duration such as %s", s, examples)
	case err != nil || dur < 0:
		d.errorf(sub(at, name), "%q: give a duration such as %s", s, examples)
	}
	return dur
}

func (d *cfgDecoder) count(t map[string]any, at toml.Key, name string) int {
	v, ok := t[name]
	if !ok {
		return 0
	}
	n, ok := v.(int64)
	switch {
	case ok && n > 1<<31:
		d.errorf(sub(at, name), "%d is more snapshots than snap counts (at most %d)", n, 1<<31)
		return 0
	case !ok || n < 0:
		d.errorf(sub(at, name), "must be a whole number of snapshots (0 or more), not %s", tomlValue(v))
		return 0
	}
	return int(n)
}

func (d *cfgDecoder) table(t map[string]any, at toml.Key, name string) map[string]any {
	v, ok := t[name]
	if !ok {
		return nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		d.errorf(sub(at, name), "must be a table ([%s]), not %s", sub(at, name), tomlType(v))
		return nil
	}
	return m
}

var jobNameRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$`)

func (d *cfgDecoder) config(raw map[string]any) *Config {
	top := toml.Key{}
	_, d.topRepository = raw["repository"]
	d.known(raw, top, "repository", "password_file", "password_command", "cache_dir", "host", "compression", "metrics_dir", "limit_upload", "limit_download", "jobs")
	cfg := &Config{
		Repository:      d.location(raw, top, "repository"),
		PasswordFile:    d.literalPath(raw, top, "password_file"),
		PasswordCommand: d.str(raw, top, "password_command"),
		CacheDir:        d.literalPath(raw, top, "cache_dir"),
		Host:            d.str(raw, top, "host"),
		Compression:     d.str(raw, top, "compression"),
		MetricsDir:      d.literalPath(raw, top, "metrics_dir"),
	}
	if err := checkHost(cfg.Host); err != nil {
		d.errorf(sub(top, "host"), "host %q: %v", cfg.Host, err)
	}
	for _, l := range []struct {
		key string
		dst *uint64
	}{{"limit_upload", &cfg.LimitUpload}, {"limit_download", &cfg.LimitDownload}} {
		if s := d.str(raw, top, l.key); s != "" {
			n, err := parseRate(s)
			if err != nil {
				d.errorf(sub(top, l.key), "%v", err)
			}
			*l.dst = n
		}
	}
	d.compression(top, cfg.Compression)
	if cfg.PasswordFile != "" && cfg.PasswordCommand != "" {
		d.errorf(sub(top, "password_command"), "give password_file or password_command, not both")
	}
	jobs := d.table(raw, top, "jobs")
	names := make([]string, 0, len(jobs))
	for name := range jobs {
		names = append(names, name)
	}
	// File order, so 'snap run' runs jobs in the order they are written.
	sort.Slice(names, func(i, j int) bool {
		li, lj := d.lineOf(toml.Key{"jobs", names[i]}), d.lineOf(toml.Key{"jobs", names[j]})
		if li != lj {
			return li < lj
		}
		return names[i] < names[j]
	})
	for _, name := range names {
		at := toml.Key{"jobs", name}
		t, ok := jobs[name].(map[string]any)
		if !ok {
			d.errorf(at, "a job must be a table ([jobs.%s]), not %s", name, tomlType(jobs[name]))
			continue
		}
		cfg.Jobs = append(cfg.Jobs, d.job(cfg, name, at, t))
	}
	if len(jobs) == 0 {
		d.warnf(top, "no jobs: add a [jobs.NAME] table for 'snap run' and 'snap schedule'")
	}
	return cfg
}

func (d *cfgDecoder) compression(at toml.Key, s string) {
	if s == "" {
		return
	}
	if _, err := repo.ParseCompression(s); err != nil {
		d.errorf(sub(at, "compression"), "%v", err)
	}
}

func (d *cfgDecoder) job(cfg *Config, name string, at toml.Key, t map[string]any) *Job {
	d.known(t, at, jobKeys...)
	j := &Job{Name: name, Line: d.lineOf(at)}
	if !jobNameRE.MatchString(name) {
		d.errorf(at, "job name %q: use up to 64 letters, digits, '_', '-' and '.', starting with a letter, digit or '_' (it becomes the systemd unit snap-%s.service)", name, name)
	}
	j.Repository = firstNonEmpty(d.location(t, at, "repository"), cfg.Repository)
	j.PasswordFile = d.literalPath(t, at, "password_file")
	j.PasswordCommand = d.str(t, at, "password_command")
	if j.PasswordFile != "" && j.PasswordCommand != "" {
		d.errorf(sub(at, "password_command"), "give password_file or password_command, not both")
	}
	if j.PasswordFile == "" && j.PasswordCommand == "" {
		j.PasswordFile, j.PasswordCommand = cfg.PasswordFile, cfg.PasswordCommand
	}
	if _, own := t["repository"]; j.Repository == "" && !own && !d.topRepository {
		d.errorf(at, "no repository: set repository at the top of the file or in the job")
	}
	j.Paths = d.strList(t, at, "paths")
	for _, p := range j.Paths {
		if !filepath.IsAbs(p) {
			hint := ""
			if unexpanded.MatchString(p) {
				hint = " (the config file expands no variables and no ~)"
			}
			d.errorf(sub(at, "paths"), "%q is not an absolute path%s: a timer runs in /, so write the full path", p, hint)
		} else if unexpanded.MatchString(p) {
			d.warnf(sub(at, "paths"), "%q is taken as written: the config file expands no variables and no ~; write the path out", p)
		}
	}
	j.Exclude = d.strList(t, at, "exclude")
	if _, err := sources.ParsePatterns(j.Exclude); err != nil {
		d.errorf(sub(at, "exclude"), "%v", err)
	}
	j.ExcludeFile = d.strList(t, at, "exclude_file")
	for i, f := range j.ExcludeFile {
		if f != "" && !filepath.IsAbs(f) {
			// Relative to the config file, as password_file is (the file's
			// path is not in cfg yet: parseConfig sets it after decoding).
			j.ExcludeFile[i] = filepath.Join(filepath.Dir(d.file), f)
		}
	}
	j.ExcludeIfPresent = d.strList(t, at, "exclude_if_present")
	if err := (excludeSpec{ifPresent: j.ExcludeIfPresent}).check(); err != nil {
		d.errorf(sub(at, "exclude_if_present"), "%v", err)
	}
	j.ExcludeCaches = d.boolean(t, at, "exclude_caches")
	if s := d.str(t, at, "exclude_larger_than"); t["exclude_larger_than"] != nil && s == t["exclude_larger_than"] {
		n, err := parseExcludeSize(s)
		if err != nil {
			d.errorf(sub(at, "exclude_larger_than"), "%v", err)
		}
		j.ExcludeLargerThan = n
	}
	j.Databases = d.strList(t, at, "databases")
	dbsOK := true
	for _, u := range j.Databases {
		dbsOK = d.database(sub(at, "databases"), u) && dbsOK
	}
	if _, _, err := parseStreamFlags("", "", j.Databases, nil); err != nil && dbsOK {
		d.errorf(sub(at, "databases"), "%v", err) // two dumps stored under one name
	}
	if v, ok := t["commands"]; ok {
		j.Commands = d.commands(sub(at, "commands"), v)
		if dbsOK {
			if msg := j.sourceCollision(); msg != "" {
				d.errorf(sub(at, "commands"), "%s; give the command another name", msg)
			}
		}
	}
	if msg := j.streamInPaths(); msg != "" && dbsOK {
		d.errorf(at, "%s: name the command outside the job's paths, or back up a dump in a job of its own", msg)
	}
	if len(j.Paths) == 0 && len(j.Databases) == 0 && len(j.Commands) == 0 && !d.failed(at, "paths", "databases", "commands") {
		// (One of them written wrong says so itself: "nothing to back
		// up" on the line above was the error snap run showed for
		// paths = 5; found by an exploratory test.)
		d.errorf(at, "nothing to back up: give paths, databases or commands")
	}
	j.Tags = d.strList(t, at, "tags")
	for _, tag := range j.Tags {
		if !isTagWord(tag) {
			d.errorf(sub(at, "tags"), "tag %q: a tag is a non-empty word of UTF-8 without commas or spaces", tag)
		}
	}
	own := d.str(t, at, "host")
	if err := checkHost(own); err != nil {
		d.errorf(sub(at, "host"), "host %q: %v", own, err)
	}
	j.Host = firstNonEmpty(own, cfg.Host)
	j.OneFileSystem = d.boolean(t, at, "one_file_system")
	j.SequentialRead = d.boolean(t, at, "sequential_read")
	j.AllowEmptied = d.boolean(t, at, "allow_emptied")
	j.Compression = firstNonEmpty(d.str(t, at, "compression"), cfg.Compression)
	d.compression(at, d.str(t, at, "compression"))
	if s := d.str(t, at, "min_free"); s != "" {
		n, err := parseSize(s)
		if err != nil {
			d.errorf(sub(at, "min_free"), "%v", err)
		}
		j.MinFree = n
	}
	j.DumpConcurrency = snapshot.DefaultStreams
	if v, ok := t["dump_concurrency"]; ok {
		if n, ok := v.(int64); ok && n >= 1 && n <= maxDumpConcurrency {
			j.DumpConcurrency = int(n)
		} else {
			d.errorf(sub(at, "dump_concurrency"), "must be how many dumps and commands may run at once (1 to %d), not %s", maxDumpConcurrency, tomlValue(v))
		}
	}
	j.Pre = d.strList(t, at, "pre")
	j.Post = d.strList(t, at, "post")
	j.Finally = d.strList(t, at, "finally")
	j.Schedule = d.strList(t, at, "schedule")
	for _, s := range j.Schedule {
		if strings.TrimSpace(s) == "" || strings.ContainsAny(s, "\n\r") {
			d.errorf(sub(at, "schedule"), "empty or multi-line schedule %q: use systemd OnCalendar syntax such as \"daily\" or \"*-*-* 03:00:00\"", s)
		}
	}
	j.HookTimeout = d.duration(t, at, "hook_timeout", defaultHookTimeout, `"10m" or "2h", or "0s" for no limit`)
	j.Timeout = d.duration(t, at, "timeout", 0, `"6h" or "90m", or "0s" for no limit`)
	j.RandomDelay = d.duration(t, at, "random_delay", defaultRandomDelay, `"10m", "1h" or "0s"`)
	if kt := d.table(t, at, "keep"); kt != nil {
		j.Keep = d.keep(sub(at, "keep"), kt)
		// A rule "a,b" keeps snapshots with both tags: it names the job's
		// when every tag of it is one.
		ownRule := func(rule string) bool {
			return !slices.ContainsFunc(strings.Split(rule, ","), func(tag string) bool { return !slices.Contains(j.Tags, tag) })
		}
		if k := j.Keep; len(k.Tags) > 0 && !k.counts() && k.Within == "" && !slices.ContainsFunc(k.Tags, ownRule) {
			// 'snap run' refuses to forget when the policy keeps none of
			// the job's snapshots; say so before the first night.
			d.warnf(sub(sub(at, "keep"), "tags"), "keep.tags is the whole policy and names none of the job's tags: its snapshots (the one each run saves among them) are kept only once tagged by hand, and 'snap run' refuses to forget while none is; add last, daily, … or one of the job's tags")
		}
	}
	if v, ok := t["check"]; ok {
		j.Check = d.check(sub(at, "check"), v)
	}
	return j
}

// commands reads commands = [{ name = "redis.rdb", command = ["redis-cli",
// "--rdb", "-"] }, …]; a command given as one string runs with a shell
// (shellArgv).
func (d *cfgDecoder) commands(at toml.Key, v any) []JobCommand {
	var tables []map[string]any
	switch x := v.(type) {
	case []map[string]any:
		tables = x
	case []any:
		for i, e := range x {
			m, ok := e.(map[string]any)
			if !ok {
				d.errorf(at, "entry %d is %s: each command is a table, { name = \"x.out\", command = [\"prog\", \"arg\"] }", i+1, tomlType(e))
				return nil
			}
			tables = append(tables, m)
		}
	default:
		d.errorf(at, "must be an array of tables: commands = [{ name = \"x.out\", command = [\"prog\", \"arg\"] }]")
		return nil
	}
	var out []JobCommand
	for i, t := range tables {
		d.known(t, at, "name", "command")
		c := JobCommand{Name: d.str(t, at, "name")}
		switch cmd := t["command"].(type) {
		case string:
			c.Argv, c.Script = shellArgv(cmd), cmd
			if c.Argv[0] == "/bin/sh" && strings.Contains(cmd, "|") {
				d.warnf(at, "entry %d: its pipeline runs with /bin/sh, which reports the last program's status alone (bash, which has pipefail, is not installed): a failure of an earlier one saves what the others made of nothing; install bash, or give the command as an array", i+1)
			}
		case []any:
			c.Argv = d.strList(t, at, "command")
		}
		// Several entries may sit on one line: each message names its own.
		entry := fmt.Sprintf("entry %d", i+1)
		if c.Name != "" {
			entry += fmt.Sprintf(" (name = %q)", c.Name)
		}
		if c.Name == "" || len(c.Argv) == 0 || c.Argv[0] == "" {
			d.errorf(at, "%s: a command needs name (the file to store its output as) and command (a string for /bin/sh, or an array)", entry)
			continue
		}
		if strings.ContainsRune(c.Name, 0) {
			d.errorf(at, "%s: a file name holds no NUL character", entry)
			continue
		}
		if _, err := streamPath("commands", c.Name); err != nil {
			// streamPath's words are the command line's (--command NAME).
			d.errorf(at, "%s: names no file to store the output as: give a file name, e.g. name = \"backup.sql\"", entry)
			continue
		}
		out = append(out, c)
	}
	return out
}

func (d *cfgDecoder) keep(at toml.Key, t map[string]any) Keep {
	before := len(d.problems) // a policy whose values were refused is not also "no policy"
	d.known(t, at, keepKeys...)
	k := Keep{
		Last: d.count(t, at, "last"), Hourly: d.count(t, at, "hourly"), Daily: d.count(t, at, "daily"),
		Weekly: d.count(t, at, "weekly"), Monthly: d.count(t, at, "monthly"), Yearly: d.count(t, at, "yearly"),
		Within: d.str(t, at, "within"), Tags: d.strList(t, at, "tags"),
		Prune: d.boolean(t, at, "prune"), MaxUnused: d.str(t, at, "max_unused"), DeleteDelay: d.str(t, at, "delete_delay"),
	}
	if k.DeleteDelay != "" {
		if _, err := parseDelay(k.DeleteDelay); err != nil {
			d.errorf(sub(at, "delete_delay"), "%v", err)
		}
	}
	if k.Within != "" {
		if sp, err := snapshot.ParseSpan(k.Within); err != nil {
			d.errorf(sub(at, "within"), "%v", err)
		} else if sp.IsZero() {
			// A warning, not an error: an error would keep the job from
			// backing up at all, where the run fails only its forget.
			d.warnf(sub(at, "within"), "%q keeps nothing, and 'snap run' refuses to forget with it: give a span such as \"30d\" or \"1y6m\"", k.Within)
		}
	}
	if err := checkKeepTags(k.Tags); err != nil {
		d.errorf(sub(at, "tags"), "%v", err)
	}
	if k.MaxUnused != "" {
		if !maxUnusedRE.MatchString(k.MaxUnused) {
			d.errorf(sub(at, "max_unused"), "%q: give a percentage such as \"5%%\"", k.MaxUnused)
		}
	}
	if !k.Any() && len(d.problems) == before {
		if k.Prune {
			d.errorf(at, "prune = true without a policy: add last, daily, … so snap knows what to keep")
		} else {
			// An empty keep too: a policy left half-written must not
			// pass as one while the job forgets nothing.
			d.errorf(at, "no policy: give at least one of last, hourly, daily, weekly, monthly, yearly, within, tags (or remove keep to keep every snapshot)")
		}
	}
	return k
}

// check reads "check = true" (structure), "check = false", or
// check = "5%" / "1/7" / "500M" (structure and that part of the data).
func (d *cfgDecoder) check(at toml.Key, v any) *CheckSpec {
	switch x := v.(type) {
	case bool:
		if x {
			return &CheckSpec{}
		}
		return nil
	case string:
		if _, err := parseSubset(x); err != nil {
			d.errorf(at, "data subset %v", err)
			return nil
		}
		return &CheckSpec{ReadDataSubset: x}
	}
	d.errorf(at, "must be true, false, or a data subset such as \"5%%\", \"1/7\" or \"500M\", not %s", tomlType(v))
	return nil
}

var maxUnusedRE = regexp.MustCompile(`^(100|[0-9]{1,2}(\.[0-9]+)?)%?$`)

// database checks a database URL as 'create --db' would; the tools
// themselves are checked by checkEnvironment.
func (d *cfgDecoder) database(at toml.Key, s string) bool {
	db, err := sources.ParseDatabase(s)
	if err != nil {
		d.errorf(at, "%v", err)
		return false
	}
	if !db.All && db.Name == "" && db.Kind != sources.KindMongoDB {
		d.errorf(at, "%s names no database: add /dbname, or ?all for the whole server", db)
		return false
	}
	if db.RelativeFile {
		d.errorf(at, "%q names the SQLite file relative to the current directory: a timer runs in /, so write the full path, e.g. sqlite:///var/lib/app/app.db", s)
		return false
	}
	if u, err := url.Parse(s); err == nil {
		if _, ok := u.User.Password(); ok || u.Query().Has("password") {
			// Said when others may read the file: one already private
			// was told to chmod 600 all the same (found by an
			// exploratory test).
			if st, err := os.Stat(d.file); err != nil || st.Mode().Perm()&0o077 != 0 {
				d.warnf(at, "%s: the password is written in the config file, which others may read: chmod 600 %s, or use the tool's own files (.pgpass, option files)", db, d.file)
			}
		}
	}
	return true
}

// dumpTools are the programs that can dump each kind of database.
var dumpTools = map[string][]string{
	sources.KindPostgres: {"pg_dump"}, sources.KindMySQL: {"mariadb-dump", "mysqldump"},
	sources.KindSQLite: {"sqlite3"}, sources.KindMongoDB: {"mongodump"},
}

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}

// resolveRelative makes a path in the config relative to the config
// file's directory, as an admin reading the file expects.
func (cfg *Config) resolveRelative(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(filepath.Dir(cfg.Path), p)
}

// resolveRepository makes a local repository's relative path relative to
// the config file's directory, as password_file and cache_dir are: a
// timer runs in /, not where the admin checked the file.
func (cfg *Config) resolveRepository(loc string) string {
	if loc == "" || strings.HasPrefix(loc, "s3:") {
		return loc
	}
	if rest, ok := strings.CutPrefix(loc, "local:"); ok {
		return "local:" + cfg.resolveRelative(rest)
	}
	return cfg.resolveRelative(loc)
}

// relativeProgram warns of a program named by a relative path ("./gen.sh",
// "bin/dump") in a job's commands or hooks: it is looked for from the
// directory snap is started in, which is / under the job's timer, so a run
// by hand from the config's directory works and the timer's fails (found
// by an exploratory test).
func relativeProgram(d *cfgDecoder, key toml.Key, what, prog string) {
	if strings.Contains(prog, "/") && !filepath.IsAbs(prog) {
		d.warnf(key, "%s: %s is a relative path, looked for from the directory snap is started in (/ under the job's timer): give it from /", what, prog)
	}
}

// firstWord is the program a shell command line starts with (its first
// word, quotes left as they are).
func firstWord(cmd string) string {
	f := strings.Fields(cmd)
	if len(f) == 0 {
		return ""
	}
	return f[0]
}

// checkEnvironment looks at what the config refers to on this machine:
// paths, password files, repositories, schedules. It returns problems to
// add to the syntax ones. calendar validates an OnCalendar expression (nil
// when systemd-analyze is not available).
func (cfg *Config) checkEnvironment(calendar func(string) error) []Problem {
	d := &cfgDecoder{file: cfg.Path}
	data, err := os.ReadFile(cfg.Path)
	if err == nil {
		d.lines = tomlKeyLines(string(data))
	}
	top := toml.Key{}
	d.passwordFile(top, cfg.resolveRelative(cfg.PasswordFile))
	if dir := cfg.resolveRelative(cfg.MetricsDir); dir != "" {
		if fi, err := os.Stat(dir); err != nil {
			d.errorf(sub(top, "metrics_dir"), "%s does not exist: create it (node_exporter's textfile directory, for instance /var/lib/prometheus/node-exporter)", dir)
		} else if !fi.IsDir() {
			d.errorf(sub(top, "metrics_dir"), "%s is a file, not a directory: give node_exporter's textfile directory (for instance /var/lib/prometheus/node-exporter)", dir)
		} else if unix.Access(dir, unix.W_OK) != nil {
			// As the run would find it (it warned "metrics not written",
			// and monitoring read the last night's file; found by an
			// exploratory test): the user who checks is most often the
			// one the timer runs as.
			d.warnf(sub(top, "metrics_dir"), "%s is not writable by this user: the jobs' metrics would not be written (give the user that runs the jobs write access to it)", dir)
		}
	}
	if key, ok := firstS3Repository(cfg); ok {
		if msg := timerS3Credentials(os.Getenv, unitEnvFile(os.Geteuid() != 0, os.Getenv), accountCredentialsFile()); msg != "" {
			d.warnf(key, "%s", msg)
		}
	}
	seenRepo := map[string]bool{}
	warnedCalendar := false
	for _, j := range cfg.Jobs {
		at := toml.Key{"jobs", j.Name}
		// What is missing now fails the job's runs, unless a pre hook
		// makes it (they run before paths and files are looked at).
		missing := func(key toml.Key, what string, err error) {
			if len(j.Pre) > 0 && errors.Is(err, fs.ErrNotExist) {
				d.warnf(key, "%s: %v now: a pre hook must make it, or the job fails", what, unwrapOS(err))
				return
			}
			d.errorf(key, "%s: %v", what, unwrapOS(err))
		}
		for _, p := range j.Paths {
			if !filepath.IsAbs(p) {
				continue // reported already
			}
			var st unix.Stat_t
			if err := sources.Lstat(p, &st); err != nil {
				missing(sub(at, "paths"), p, err)
			}
		}
		var dbs []*sources.Database
		for _, raw := range j.Databases {
			db, err := sources.ParseDatabase(raw)
			if err != nil || db.RelativeFile {
				continue // reported already
			}
			dbs = append(dbs, db)
			if db.Kind == sources.KindSQLite {
				var st unix.Stat_t
				if err := sources.Lstat(db.File, &st); err != nil {
					missing(sub(at, "databases"), db.String(), err)
				}
			}
			tools := dumpTools[db.Kind]
			if db.Kind == sources.KindPostgres && db.All {
				tools = []string{"pg_dumpall"}
			}
			found := false
			for _, tool := range tools {
				if _, err := exec.LookPath(tool); err == nil {
					found = true
				}
			}
			if !found {
				d.errorf(sub(at, "databases"), "%s: %s is not installed (not in PATH)", db, strings.Join(tools, " or "))
			}
		}
		for _, c := range j.Commands {
			// A string runs with a shell: what it names is the shell's to
			// find. An array names its program.
			if _, err := exec.LookPath(c.Argv[0]); err != nil && c.Script == "" {
				d.errorf(sub(at, "commands"), "%s: program %s not found (not in PATH, or not executable)", c.Name, c.Argv[0])
			}
			prog := c.Argv[0]
			if c.Script != "" {
				prog = firstWord(c.Script)
			}
			relativeProgram(d, sub(at, "commands"), c.Name, prog)
		}
		for key, hooks := range map[string][]string{"pre": j.Pre, "post": j.Post, "finally": j.Finally} {
			for _, h := range hooks {
				relativeProgram(d, sub(at, key), fmt.Sprintf("%q", h), firstWord(h))
			}
		}
		excludes := slices.Clone(j.Exclude)
		for _, f := range j.ExcludeFile {
			lines, err := sources.ReadPatternFile(f)
			if err != nil {
				d.errorf(sub(at, "exclude_file"), "%v", err)
			}
			excludes = append(excludes, lines...)
		}
		if ex, err := sources.ParsePatterns(excludes); err == nil {
			for _, msg := range rawSQLiteCopies(dbs, j.Paths, ex, func(glob string) string { return fmt.Sprintf("exclude = [%q]", glob) }) {
				d.warnf(sub(at, "databases"), "%s", msg)
			}
		}
		if j.PasswordFile != cfg.PasswordFile {
			d.passwordFile(sub(at, "password_file"), cfg.resolveRelative(j.PasswordFile))
		}
		if j.PasswordFile == "" && j.PasswordCommand == "" {
			// The units 'snap schedule' writes read /etc/snap/env
			// (~/.config/snap/env for --user units), where it may be set:
			// "cannot run from a timer" was wrong (found by an
			// exploratory test).
			d.warnf(at, "no password_file or password_command: 'snap run' will need SNAP_PASSWORD_FILE or SNAP_PASSWORD, from the environment, or from /etc/snap/env (~/.config/snap/env for --user units) under a timer; or a terminal")
		}
		if loc := j.Repository; loc != "" && !seenRepo[loc] && !strings.HasPrefix(loc, "s3:") {
			seenRepo[loc] = true
			dir := strings.TrimPrefix(loc, "local:")
			if _, err := os.Stat(filepath.Join(dir, "config")); err != nil {
				key := sub(at, "repository")
				_, own := d.lines[key.String()]
				// A disk that is not mounted comes first, as when a run
				// meets it: 'snap init' there would make a new repository
				// on the file system below (config check advised it; found
				// by an exploratory test). Nor is 'snap init' the advice
				// for a directory of other files, which it refuses.
				const mountFirst = "if it is on a disk that is not mounted, mount it; to create a new repository there, run"
				abs, _ := filepath.Abs(dir)
				hint, initOK := local.NoRepositoryHint(abs)
				if !own {
					key = toml.Key{"repository"}
				}
				reason, _ := local.NoConfigReason(abs)
				switch {
				case reason != "":
					d.errorf(key, "%s", reason) // as a run says it
				case !initOK:
					d.errorf(key, "no repository at %s: %s", dir, hint)
				case !own:
					d.errorf(key, "no repository at %s: %s 'snap init' (it reads the repository and password from this file)", dir, mountFirst)
				default:
					// 'snap init --config' would make the file's top-level
					// repository, not this job's.
					how := "snap init -r " + shellWord(dir)
					switch {
					case j.PasswordFile != "":
						how += " --password-file " + shellWord(cfg.resolveRelative(j.PasswordFile))
					case j.PasswordCommand != "":
						how += " --password-command " + shellWord(j.PasswordCommand)
					}
					if strings.Contains(how, "'") {
						how = ": " + how // quotes inside quotes read wrong
					} else {
						how = " '" + how + "'"
					}
					d.errorf(key, "no repository at %s: %s%s", dir, mountFirst, how)
				}
			}
		}
		if calendar == nil && !warnedCalendar && len(j.Schedule) > 0 {
			d.warnf(sub(at, "schedule"), "systemd-analyze is not installed: schedules were not checked")
			warnedCalendar = true
		}
		if _, set := d.lines[sub(at, "timeout").String()]; !set && len(j.Schedule) > 0 && (len(j.Databases) > 0 || len(j.Commands) > 0) {
			// A pg_dump waiting for a table lock waits for ever, and
			// with it the timer's service: systemd starts no run while
			// one is active (found by an exploratory test).
			d.warnf(at, "no timeout: a dump blocked on a table lock, or a command that hangs, holds this job, and its timer's later runs, until someone stops it; add timeout = \"6h\" (longer than its longest run; \"0s\" to keep no limit)")
		}
		if len(j.Schedule) == 0 && jobNameRE.MatchString(j.Name) {
			// (A job whose name is refused runs under no name.)
			d.warnf(at, "no schedule: 'snap schedule install' skips this job ('snap run %s' still runs it)", j.Name)
		}
	}
	return append(d.problems, cfg.scheduleProblems(calendar)...)
}

// scheduleProblems are the jobs' schedules that calendar (systemd-analyze;
// nil: not installed, no problems) refuses. They are errors of the
// config wherever it is judged: config check, and the commands about its
// jobs (requireConfig), which let them pass before (config jobs listed
// the job, schedule install of another job installed it; found by an
// exploratory test).
func (cfg *Config) scheduleProblems(calendar func(string) error) []Problem {
	if calendar == nil {
		return nil
	}
	d := &cfgDecoder{file: cfg.Path}
	if data, err := os.ReadFile(cfg.Path); err == nil {
		d.lines = tomlKeyLines(string(data))
	}
	for _, j := range cfg.Jobs {
		for _, s := range j.Schedule {
			if strings.TrimSpace(s) == "" || strings.ContainsAny(s, "\n\r") {
				continue // reported with the job's keys
			}
			switch err := calendar(s); {
			case errors.Is(err, errNeverFires):
				d.errorf(toml.Key{"jobs", j.Name, "schedule"}, "%q never fires (systemd-analyze calendar: next elapse never), so the timer would never run the job: give a schedule with times to come, such as \"daily\" or \"*-*-* 03:00\"", s)
			case err != nil:
				d.errorf(toml.Key{"jobs", j.Name, "schedule"}, "%q is not a systemd calendar expression (%v); see 'man systemd.time', e.g. \"daily\" or \"*-*-* 03:00:00\"", s, err)
			}
		}
	}
	return d.problems
}

// passwordFile checks that a password file can be read and that only its
// owner can read it.
func (d *cfgDecoder) passwordFile(at toml.Key, path string) {
	if path == "" {
		return
	}
	key := at
	if len(at) == 0 {
		key = toml.Key{"password_file"}
	}
	st, err := os.Stat(path)
	if err != nil {
		d.errorf(key, "%s: %v", path, unwrapOS(err))
		return
	}
	f, err := os.Open(path)
	if err != nil {
		d.errorf(key, "%s: %v", path, unwrapOS(err))
		return
	}
	f.Close()
	if st.Mode()&fs.ModeType != 0 {
		d.errorf(key, "%s is not a regular file", path)
		return
	}
	if st.Mode().Perm()&0o077 != 0 {
		d.warnf(key, "%s is readable by others (mode %04o): chmod 600 %s", path, st.Mode().Perm(), path)
	}
}

// location reads a repository location. An S3 location is parsed as
// opening it would parse it, so that one snap cannot open (credentials
// in it, no bucket) fails 'config check' rather than the first night's
// run; its message never repeats a secret.
func (d *cfgDecoder) location(t map[string]any, at toml.Key, key string) string {
	loc := d.literalPath(t, at, key)
	if v, ok := t[key].(string); ok && strings.TrimSpace(v) == "" {
		// Said where it is written: the job that then lacks a repository
		// would be blamed instead (found by an exploratory test).
		d.errorf(sub(at, key), "empty: give a directory or an s3: URL, or leave the key out")
		return ""
	}
	if v, ok := t[key].(string); ok {
		if err := notAURL(v); err != nil {
			d.errorf(sub(at, key), "%v", err)
			return ""
		}
	}
	if strings.HasPrefix(loc, "s3:") {
		if _, err := s3.ParseLocation(loc, func(string) string { return "" }); err != nil {
			d.errorf(sub(at, key), "%v", err)
			return redactedLocation(loc)
		}
	}
	return loc
}

// unexpanded matches what a shell would expand in a path: ~ at its start,
// or a variable.
var unexpanded = regexp.MustCompile(`^~|\$\{?[A-Za-z_]`)

// literalPath reads a path, and warns when it holds what a shell would
// expand: the config file takes it as written ("no repository at
// /etc/snap/$HOME/repo" did not say why; found by an exploratory test).
func (d *cfgDecoder) literalPath(t map[string]any, at toml.Key, key string) string {
	p := d.str(t, at, key)
	switch {
	case unexpanded.MatchString(p) && (strings.HasPrefix(p, "~") || strings.HasPrefix(p, "$")):
		// Taken relative to the config file's directory, "~/repo" made a
		// repository in /etc/snap/~/repo, on the root disk, with only
		// 'config check' warning (found by an exploratory test).
		d.errorf(sub(at, key), "%q: the config file expands no variables and no ~; write the full path", p)
	case unexpanded.MatchString(p):
		d.warnf(sub(at, key), "%q is taken as written: the config file expands no variables and no ~; write the path out", p)
	}
	return p
}

// redactedLocation is a repository location without the credentials a
// user may have written into an S3 URL, for messages and output.
func redactedLocation(loc string) string {
	rest, ok := strings.CutPrefix(loc, "s3:")
	if !ok {
		// S3:http://key:secret@… (refused by notAURL) is named too.
		return withoutUserInfo(loc)
	}
	if !strings.Contains(rest, "@") {
		return loc
	}
	u, err := url.Parse(rest)
	if err != nil {
		return "s3:(a URL with credentials in it)"
	}
	u.User = nil
	return "s3:" + u.String()
}

// withoutUserInfo is loc without what lies between its "://" and the
// last "@" after it: the user and password of a URL, where the password
// may hold slashes (an AWS secret key does; a pattern that stopped at the
// first one printed it; found by a review).
func withoutUserInfo(loc string) string {
	scheme, rest, ok := strings.Cut(loc, "://")
	if !ok {
		return loc
	}
	if at := strings.LastIndex(rest, "@"); at >= 0 {
		return scheme + "://" + rest[at+1:]
	}
	return loc
}

// redactedURLs hides passwords in database URLs for display.
func redactedURLs(urls []string) []string {
	out := make([]string, 0, len(urls))
	for _, s := range urls {
		if u, err := url.Parse(s); err == nil {
			// libpq's ?password= too ("passwords masked" showed it;
			// found by an exploratory test).
			if q := u.Query(); q.Has("password") {
				q.Set("password", "xxxxx")
				u.RawQuery = q.Encode()
			}
			s = u.Redacted()
		}
		out = append(out, s)
	}
	return out
}

// closest returns the word of words nearest by dist within two edits, the
// first of those at the least distance: the "did you mean" of a misspelt
// config key (flags and commands: nearestNames). ok is false when none is
// that near.
func closest(words []string, dist func(word string) int) (word string, ok bool) {
	best := 3
	for _, w := range words {
		if d := dist(w); d < best {
			word, best, ok = w, d, true
		}
	}
	return word, ok
}

// accountCredentialsFile is the account's shared credentials file, as a
// system unit without HOME finds it ("" when the account has no home).
func accountCredentialsFile() string {
	if u, err := user.Current(); err == nil && u.HomeDir != "" {
		return filepath.Join(u.HomeDir, ".aws", "credentials")
	}
	return ""
}

// firstS3Repository is the key of the config's first repository on S3.
func firstS3Repository(cfg *Config) (toml.Key, bool) {
	if strings.HasPrefix(cfg.Repository, "s3:") {
		return toml.Key{"repository"}, true
	}
	for _, j := range cfg.Jobs {
		if strings.HasPrefix(j.Repository, "s3:") {
			return toml.Key{"jobs", j.Name, "repository"}, true
		}
	}
	return nil, false
}

// timerS3Credentials says where a job's run under a timer would find no S3
// credentials ("" when it would find some): the units give it the
// environment file envFile and the account's shared credentials file
// shared, not the shell's variables that config check itself ran with (it
// said OK, and every night's run failed; found by an exploratory test).
func timerS3Credentials(getenv func(string) string, envFile, shared string) string {
	if b, err := os.ReadFile(envFile); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			k, _, _ := strings.Cut(strings.TrimSpace(line), "=")
			switch strings.TrimSpace(k) {
			case "AWS_ACCESS_KEY_ID", "AWS_SHARED_CREDENTIALS_FILE", "AWS_PROFILE":
				return ""
			}
		}
	}
	if shared != "" {
		if _, err := os.Stat(shared); err == nil {
			return ""
		}
	} else {
		shared = "~/.aws/credentials"
	}
	if envFile == "" {
		envFile = "the units' environment file"
	}
	if getenv("AWS_ACCESS_KEY_ID") != "" || getenv("AWS_SHARED_CREDENTIALS_FILE") != "" || getenv("AWS_PROFILE") != "" {
		return fmt.Sprintf("the S3 credentials come from this shell's environment alone: 'snap run' under a timer gets %s and %s, and finds none there; put AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in %s (mode 0600)", envFile, shared, envFile)
	}
	return fmt.Sprintf("no S3 credentials in %s or %s: unless this machine has an instance role, 'snap run' finds none; put AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in %s (mode 0600)", envFile, shared, envFile)
}
