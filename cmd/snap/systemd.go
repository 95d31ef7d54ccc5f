package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/snap-backup/snap/sources"
	"github.com/snap-backup/snap/sources/safepath"
)

// systemd units for scheduled jobs: snap-JOB.service runs 'snap run JOB'
// once, snap-JOB.timer starts it on the job's schedule. The units hold no
// secret: the service names the config file, which names the password file
// or command. They have no Documentation= line: no man page snap(1) is
// installed (on Ubuntu that name is snapd's), and 'systemd-analyze verify'
// failed on the units for it.

// unitMarker starts every unit snap writes, so that list and remove never
// touch a unit an admin wrote by hand.
const unitMarker = "# Written by 'snap schedule install'"

// unitSpec is what the units of one job are made from.
type unitSpec struct {
	Job    *Job
	Binary string // absolute path of the snap binary
	Config string // absolute path of the config file
	User   bool   // a user unit (no network-online.target there)
	Dir    string // --dir given to install, made absolute ("": the default place)
}

func serviceName(job string) string { return "snap-" + job + ".service" }
func timerName(job string) string   { return "snap-" + job + ".timer" }

// serviceUnit renders snap-JOB.service: a oneshot at low CPU and I/O
// priority. The I/O class is best-effort at its lowest level rather than
// idle, so a busy disk slows the backup down but never starves it.
func serviceUnit(s unitSpec) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s from %s.\n", unitMarker, sources.DisplayPath(s.Config))
	// The command that writes these units again names the same place and
	// file: without --user it would write system units, root's jobs
	// (found by an exploratory test).
	install := "snap schedule install "
	systemctl := "systemctl"
	if s.User {
		install += "--user "
		systemctl = "systemctl --user"
	}
	if s.Dir != "" {
		install += "--dir " + commentWord(s.Dir, "DIR") + " "
	}
	install += "--config " + commentWord(s.Config, "FILE-ABOVE") + " " + s.Job.Name
	// On a line of its own, unquoted: its words may be quoted themselves.
	fmt.Fprintf(&b, "# Change the job there and run this again:\n#   %s\n", install)
	fmt.Fprintf(&b, "# Local additions belong in '%s edit %s'.\n", systemctl, serviceName(s.Job.Name))
	b.WriteString("[Unit]\n")
	fmt.Fprintf(&b, "Description=snap backup job %s\n", s.Job.Name)
	if !s.User {
		b.WriteString("Wants=network-online.target\n")
		b.WriteString("After=network-online.target\n")
	}
	if after := serverUnits(s.Job); !s.User && len(after) > 0 {
		// A run the timer makes up for at boot (Persistent=) starts
		// after a database server on this machine, rather than fail
		// with "connection refused" while it starts. Ordering only: a
		// unit that does not exist here (a remote server) changes
		// nothing.
		fmt.Fprintf(&b, "After=%s\n", strings.Join(after, " "))
	}
	if p := mountPath(s.Job.Repository); p != "" {
		// A repository on a disk or NFS mount: a run the timer makes up
		// for at boot (Persistent=) waits for the mount, rather than
		// find no repository (exit 10) and wait for the next night.
		fmt.Fprintf(&b, "RequiresMountsFor=%s\n", p)
	}
	b.WriteString("\n[Service]\n")
	b.WriteString("Type=oneshot\n")
	// Variables the job needs and the config file cannot hold (S3
	// credentials: AWS_ACCESS_KEY_ID, …), from /etc/snap/env, or
	// ~/.config/snap/env for a user unit, when it exists.
	b.WriteString("EnvironmentFile=-%E/snap/env\n")
	fmt.Fprintf(&b, "ExecStart=%s\n", execLine(s.Binary, "run", s.Job.Name, "--config", s.Config))
	b.WriteString("Nice=19\n")
	b.WriteString("CPUSchedulingPolicy=batch\n")
	b.WriteString("IOSchedulingClass=best-effort\n")
	b.WriteString("IOSchedulingPriority=7\n")
	// Ctrl-C and SIGTERM leave the repository consistent; give a prune
	// in progress time to say so. Stopping signals snap alone, which
	// stops its hooks and dump tools itself (and runs the post hooks);
	// whatever is left when the time is up is killed.
	b.WriteString("KillMode=mixed\n")
	b.WriteString("TimeoutStopSec=5min\n")
	return b.String()
}

// serverUnits are the systemd units of the database servers Debian's
// packages install for the kinds of database the job dumps.
func serverUnits(j *Job) []string {
	var out []string
	for _, raw := range j.Databases {
		db, err := sources.ParseDatabase(raw)
		if err != nil {
			continue
		}
		var units []string
		switch db.Kind {
		case sources.KindPostgres:
			units = []string{"postgresql.service"}
		case sources.KindMySQL:
			units = []string{"mariadb.service", "mysql.service"}
		case sources.KindMongoDB:
			units = []string{"mongod.service"}
		}
		for _, u := range units {
			if !slices.Contains(out, u) {
				out = append(out, u)
			}
		}
	}
	return out
}

// mountPath is a local repository's directory as RequiresMountsFor= takes
// it, or "" for an S3 one and for a path the unit file cannot hold as one
// word (blanks, quotes, backslashes, control characters).
func mountPath(location string) string {
	if location == "" || strings.HasPrefix(location, "s3:") {
		return ""
	}
	p := strings.TrimPrefix(location, "local:")
	if !filepath.IsAbs(p) || !unitClean(p) || strings.ContainsAny(p, " \"'\\") {
		return ""
	}
	return strings.ReplaceAll(p, "%", "%%")
}

// timerUnit renders snap-JOB.timer.
func timerUnit(s unitSpec) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s from %s.\n", unitMarker, sources.DisplayPath(s.Config))
	b.WriteString("[Unit]\n")
	fmt.Fprintf(&b, "Description=snap backup timer for job %s\n", s.Job.Name)
	b.WriteString("\n[Timer]\n")
	for _, cal := range s.Job.Schedule {
		fmt.Fprintf(&b, "OnCalendar=%s\n", strings.ReplaceAll(cal, "%", "%%"))
	}
	b.WriteString("Persistent=true\n")
	fmt.Fprintf(&b, "RandomizedDelaySec=%s\n", systemdSpan(s.Job.RandomDelay))
	b.WriteString("\n[Install]\n")
	b.WriteString("WantedBy=timers.target\n")
	return b.String()
}

// systemdSpan writes d as a systemd time span: whole seconds as a number
// of seconds (what earlier versions wrote), anything finer in
// milliseconds, rounded up: "1.5s" was written as 1 and "10ms" as 0, no
// delay at all, while 'config jobs' showed 1.5 and 0.01 (found by an
// exploratory test).
func systemdSpan(d time.Duration) string {
	if d%time.Second == 0 {
		return fmt.Sprint(int64(d / time.Second))
	}
	return fmt.Sprintf("%dms", int64((d+time.Millisecond-1)/time.Millisecond))
}

// execLine quotes a command line for ExecStart: arguments with blanks,
// quotes or bytes a unit file cannot hold as they are go in double quotes
// with C escapes, '%' (specifiers) and '$' (variables) are doubled. A unit
// file must be UTF-8 and one line per setting: a carriage return ended
// the line early and a path in Latin-1 made systemd drop the ExecStart=
// (found by an exploratory test); systemd reads \xNN back as the byte.
func execLine(args ...string) string {
	out := make([]string, len(args))
	for i, a := range args {
		a = strings.ReplaceAll(a, "%", "%%")
		a = strings.ReplaceAll(a, "$", "$$")
		if a == "" || strings.ContainsAny(a, " \t\n\"'\\;") || !unitClean(a) {
			a = `"` + cEscape(a) + `"`
		}
		out[i] = a
	}
	return strings.Join(out, " ")
}

// unitClean reports whether s can stand in a unit file as it is: valid
// UTF-8 without control characters.
func unitClean(s string) bool {
	return utf8.ValidString(s) && !strings.ContainsFunc(s, func(r rune) bool { return r < ' ' || r == 0x7f })
}

// cEscape writes s with the C escapes systemd reads in a quoted word:
// backslash and double quote, newline, tab and carriage return by name, other control
// characters and bytes that are not UTF-8 as \xNN.
func cEscape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == '\\' || r == '"':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == utf8.RuneError && n == 1, r < ' ', r == 0x7f:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		default:
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

// commentWord is s as one shell word for a command in a unit's comment,
// or placeholder when s cannot stand on one clean line.
func commentWord(s, placeholder string) string {
	if !unitClean(s) {
		return placeholder
	}
	return shellWord(s)
}

// unitDir is where units go: --dir, else the user or system unit directory.
func unitDir(dir string, user bool, getenv func(string) string) (string, error) {
	if dir != "" {
		return filepath.Abs(dir)
	}
	if !user {
		return "/etc/systemd/system", nil
	}
	d := userConfigDir(getenv)
	if d == "" {
		return "", fmt.Errorf("no HOME: give --dir")
	}
	return filepath.Join(d, "systemd", "user"), nil
}

// unitEnvFile is the file the units read their environment from
// (EnvironmentFile=-%E/snap/env): /etc/snap/env for system units, the
// user's config directory's for --user units ("" without a home).
func unitEnvFile(user bool, getenv func(string) string) string {
	if !user {
		return "/etc/snap/env"
	}
	if d := userConfigDir(getenv); d != "" {
		return filepath.Join(d, "snap", "env")
	}
	return ""
}

// envFileExposed says so when the units' environment file, which holds
// what a timer needs and a config file should not (S3 keys,
// SNAP_PASSWORD), is open to other users; "" when it is not, or does not
// exist. A readable password file was warned about, this one was not
// (found by an exploratory test).
//
// Worse is a file another user could change: systemd loads it into the
// environment of the job, run as root by a system unit, where PATH picks
// the pg_dump it runs and SNAP_PASSWORD_COMMAND is run as a command. It is
// judged as the config file is (readConfigFile), which root refuses to
// read in that state (found by an exploratory test).
//
// changeable says the message is of the second kind, which 'schedule
// install' run by root refuses, as root refuses such a config file.
func envFileExposed(path string) (msg string, changeable bool) {
	if path == "" {
		return "", false
	}
	st, err := os.Stat(path)
	if err != nil {
		return "", false
	}
	// One this user may not open is root's (/etc/snap/env judged by
	// another user's config check): not this user's to judge.
	if _, why, err := readConfigFile(path); why != "" && !errors.Is(err, fs.ErrPermission) {
		return fmt.Sprintf("the timers' units load this file into the environment of their jobs (PATH, SNAP_PASSWORD_COMMAND: what they run), and another user could change it: %s", why), true
	}
	if st.Mode().Perm()&0o077 == 0 {
		return "", false
	}
	return fmt.Sprintf("the timers' units read this file (S3 keys, SNAP_PASSWORD), and other users may open it (mode %04o): chmod 600 %s", st.Mode().Perm(), path), false
}

// binaryExposed says why another user could change the snap binary at
// bin, which the units run (as root, for system units), judged as a config
// file is (readConfigFile); "" when no one else can. A root unit ran a
// world-writable snap without a word, where root refuses to read such a
// config file (found by an exploratory test).
func binaryExposed(bin string) string {
	file, _, err := safepath.Resolve(bin)
	if err != nil {
		return err.Error()
	}
	st, err := os.Stat(file)
	if err != nil {
		return ""
	}
	return othersCanChange(file, st, file)
}

// snapBinary is the absolute path of the running snap as it was invoked
// (a symlink such as /usr/local/bin/snap stays a symlink, so an upgrade
// that moves the link is picked up by the units).
func snapBinary() (string, error) {
	arg0 := os.Args[0]
	if !strings.Contains(arg0, "/") {
		if p, err := exec.LookPath(arg0); err == nil {
			arg0 = p
		} else {
			return os.Executable()
		}
	}
	abs, err := filepath.Abs(arg0)
	if err != nil {
		return os.Executable()
	}
	if _, err := os.Stat(abs); err != nil {
		return os.Executable()
	}
	return abs, nil
}

// writeUnit writes a unit file atomically. An existing file that snap did
// not write, or wrote from another config file, is left alone unless force
// is set (mayWriteUnit).
func writeUnit(path, content, config string, force bool) error {
	if err := mayWriteUnit(path, config, force); err != nil {
		return err
	}
	if err := writeFileAtomic(path, []byte(content), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// mayWriteUnit refuses to replace a unit file snap did not write, or one
// it wrote from another config file than config, unless force is set: two
// config files with a job of the same name took each other's units, and
// the first one's backups stopped without a word (found by an exploratory
// test).
func mayWriteUnit(path, config string, force bool) error {
	old, err := os.ReadFile(path)
	if err != nil || force {
		return nil
	}
	if !strings.HasPrefix(string(old), unitMarker) {
		return fmt.Errorf("%s exists and was not written by snap: remove it, or use --force to replace it", path)
	}
	if from := unitConfig(string(old)); !sameConfig(from, config) {
		return fmt.Errorf("%s was written from another config file, %s, which has a job of the same name: rename one of the jobs, or, if that config file moved here, use --force to replace it", path, from)
	}
	return nil
}

// sameConfig reports whether from, the config file a unit names, is the
// file at path: the same name, or the same file reached another way (a
// symlinked directory; found by a re-test).
func sameConfig(from, path string) bool {
	if from == sources.DisplayPath(path) {
		return true
	}
	a, err := os.Stat(from)
	if err != nil {
		return false
	}
	b, err := os.Stat(path)
	return err == nil && os.SameFile(a, b)
}

// unitConfig returns the config file a unit snap wrote was written from,
// as its first line names it.
func unitConfig(text string) string {
	first, _, _ := strings.Cut(text, "\n")
	first = strings.TrimSuffix(first, "\r") // a unit saved with CRLF line ends
	from, _ := strings.CutPrefix(first, unitMarker+" from ")
	return strings.TrimSuffix(from, ".")
}

// unitSettings is a unit's text without the comments below its first line
// (which names the config file), blank lines and blanks at the ends of
// lines: what systemd acts on. Comments that
// change from one version of snap to the next do not make every installed
// unit outdated.
func unitSettings(text string) string {
	lines := strings.Split(strings.ReplaceAll(text, "\r\n", "\n"), "\n")
	out := []string{lines[0]}
	for _, l := range lines[1:] {
		// As systemd reads it: blank lines, and comments after '#' or
		// ';', say nothing, nor do blanks at the ends of a line.
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") && !strings.HasPrefix(l, ";") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// ownUnit reports whether the unit file at path was written by snap.
func ownUnit(path string) bool {
	_, ok := readOwnUnit(path)
	return ok
}

// readOwnUnit returns the text of a unit file that snap wrote, and false
// for one it cannot read or did not write.
func readOwnUnit(path string) (string, bool) {
	b, err := os.ReadFile(path)
	if err != nil || !strings.HasPrefix(string(b), unitMarker) {
		return "", false
	}
	return string(b), true
}

// unitValues returns the values of key in a unit file's text.
func unitValues(text, key string) []string {
	var out []string
	for _, line := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), key+"="); ok {
			out = append(out, strings.ReplaceAll(v, "%%", "%"))
		}
	}
	return out
}

// systemctl runs systemctl (with --user for user units) and returns its
// output; a failure carries systemctl's message.
func systemctl(user bool, args ...string) (string, error) {
	if user {
		args = append([]string{"--user"}, args...)
	}
	cmd := exec.Command("systemctl", args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		msg := strings.TrimSpace(string(out))
		if msg == "" {
			msg = err.Error()
		}
		return string(out), fmt.Errorf("systemctl %s: %s", strings.Join(args, " "), singleLine(msg))
	}
	return string(out), nil
}
