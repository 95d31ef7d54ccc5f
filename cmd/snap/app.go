package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/signal"
	"regexp"
	"slices"
	"strings"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/snap-backup/snap/index"
	"github.com/snap-backup/snap/repo"
	"github.com/snap-backup/snap/snapshot"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func sprintf(format string, args ...any) string { return fmt.Sprintf(format, args...) }

// globalFlags are accepted before and after the command name. The copy on
// the app carries the environment variables; the copies on commands do not,
// so that a flag given on the command line always wins over the
// environment, wherever it is written.
func globalFlags(withEnv bool) []cli.Flag {
	env := func(names ...string) []string {
		if withEnv {
			return names
		}
		return nil
	}
	return []cli.Flag{
		&cli.StringFlag{Name: "repo", Aliases: []string{"r"}, Usage: "repository location: a directory, or s3:… (env SNAP_REPOSITORY)", EnvVars: env("SNAP_REPOSITORY")},
		&cli.StringFlag{Name: "password-file", Usage: "read the password from this file (env SNAP_PASSWORD_FILE)", EnvVars: env("SNAP_PASSWORD_FILE")},
		&cli.StringFlag{Name: "password-command", Usage: "run this command and use its output as the password (env SNAP_PASSWORD_COMMAND)", EnvVars: env("SNAP_PASSWORD_COMMAND")},
		&cli.StringFlag{Name: "config", Usage: "jobs config file (default $XDG_CONFIG_HOME/snap/snap.toml, ~/.config/snap/snap.toml without it, else /etc/snap/snap.toml; env SNAP_CONFIG)", EnvVars: env("SNAP_CONFIG")},
		&cli.StringFlag{Name: "cache-dir", Usage: "local cache directory (default $XDG_CACHE_HOME/snap, ~/.cache/snap without it; env SNAP_CACHE_DIR)", EnvVars: env("SNAP_CACHE_DIR")},
		&cli.StringFlag{Name: "connections", Usage: "requests to the repository at once (default 8 for S3, unlimited for a directory; env SNAP_CONNECTIONS)"},
		&cli.StringFlag{Name: "limit-upload", Usage: "send at most `SIZE` per second to the repository, e.g. 5MiB, or off (env SNAP_LIMIT_UPLOAD)"},
		&cli.StringFlag{Name: "limit-download", Usage: "receive at most `SIZE` per second from the repository, or off (env SNAP_LIMIT_DOWNLOAD)"},
		&cli.BoolFlag{Name: "no-lock", Usage: "restore, dump, check, repair index (without --from-packs) or a dry run of forget or tag without a lock, or copy from a source without one (a repository snap cannot write to, on a read-only mount); a prune running meanwhile can make them fail"},
		&cli.BoolFlag{Name: "json", Usage: "print machine-readable JSON"},
		&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "print only warnings, errors and what a listing command was asked for"},
		&cli.BoolFlag{Name: "verbose", Aliases: []string{"v"}, Usage: "print more detail"},
	}
}

// gstring returns a global string flag from wherever it was set: after the
// command (innermost wins), before it, or from the environment.
func gstring(c *cli.Context, name string) string {
	for _, cc := range c.Lineage() {
		if isSetHere(cc, name) {
			return cc.String(name)
		}
	}
	return c.String(name)
}

// gbool is gstring for booleans.
func gbool(c *cli.Context, name string) bool {
	for _, cc := range c.Lineage() {
		if isSetHere(cc, name) {
			return cc.Bool(name)
		}
	}
	return false
}

func isSetHere(cc *cli.Context, name string) bool {
	defer func() { _ = recover() }()
	return cc.IsSet(name)
}

func newApp(e *env) *cli.App {
	app := &cli.App{
		Name:                 "snap",
		Usage:                "deduplicating, encrypted backups of directories and databases",
		Version:              version,
		Flags:                globalFlags(true),
		Writer:               e.stdout,
		ErrWriter:            e.stderr,
		Reader:               e.stdin,
		EnableBashCompletion: true,
		// A comma inside a glob or a file name must not split an --exclude
		// or --include in two, and "--tag a,b" in a filter means both tags
		// (snapshot.Filter). create splits its own --tag values.
		DisableSliceFlagSeparator: true,
		HideHelpCommand:           false,
		Commands:                  commands(e),
		// Errors are printed once, by run, as one line.
		ExitErrHandler: func(*cli.Context, error) {},
		OnUsageError: func(c *cli.Context, err error, isSub bool) error {
			return usagef("%s (see 'snap --help')", flagError(err, c.App.Flags))
		},
	}
	// With a "help" command of its own, the library no longer adds
	// --help to snap's flags.
	app.Commands = append(app.Commands, helpCommand())
	app.Flags = append(app.Flags, cli.HelpFlag)
	for _, cmd := range app.Commands {
		addGlobalFlags(cmd)
	}
	// An unknown command is a mistake on the command line (exit 2); the
	// library would say "No help topic for 'x'" and exit 1.
	app.Action = func(c *cli.Context) error {
		if c.NArg() > 0 {
			return unknownCommand(c.Args().First(), "", c.App.Commands)
		}
		return cli.ShowAppHelp(c)
	}
	return app
}

// Go's flag package names flags with one dash, as the user did not write
// them: "flag provided but not defined: -bogus"; the CLI library refuses
// -x --one-file-system in words of its own.
var (
	undefinedFlag = regexp.MustCompile(`^flag provided but not defined: -+(\S+)$`)
	badFlagValue  = regexp.MustCompile(`^invalid value (".*") for flag -+(\S+): (parse error|value out of range)$`)
	twoFlagForms  = regexp.MustCompile(`^Cannot use two forms of the same flag: (\S+) (\S+)$`)
)

// flagError words the flag package's errors as the user wrote the flag;
// flags are the command's, for what a bad value should have looked like.
func flagError(err error, flags []cli.Flag) string {
	msg := err.Error()
	if m := undefinedFlag.FindStringSubmatch(msg); m != nil {
		return "unknown flag " + dashed(m[1]) + closestFlag(m[1], flags)
	}
	if m := badFlagValue.FindStringSubmatch(msg); m != nil {
		expected := "expected a number"
		if m[3] == "value out of range" {
			expected = "too large a number"
		}
		if _, ok := lookupFlag(flags, "--"+m[2]).(*cli.DurationFlag); ok {
			expected = "expected a duration such as 90s, 10m or 2h"
		}
		return "invalid value " + m[1] + " for " + dashed(m[2]) + ": " + expected
	}
	if m := twoFlagForms.FindStringSubmatch(msg); m != nil {
		return dashed(m[1]) + " and " + dashed(m[2]) + " are one flag: give it once"
	}
	return msg
}

// closestFlag is a "did you mean" hint for the unknown flag name: the
// command's flag (or global flag) a typing slip away from it (see
// nearestNames).
func closestFlag(name string, flags []cli.Flag) string {
	// Every name of one or two letters is a slip away from another: -x is
	// no misspelt --at.
	maxDist := 0
	switch {
	case len(name) >= 4:
		maxDist = 2
	case len(name) == 3:
		maxDist = 1 // --tga, --jsn
	}
	var groups [][]string
	for _, f := range append(slices.Clone(flags), globalFlags(false)...) {
		var names []string
		for _, n := range f.Names() {
			if len(n) >= 2 { // not the one-letter aliases
				names = append(names, n)
			}
		}
		groups = append(groups, names)
	}
	if near := nearestNames(name, groups, maxDist); len(near) > 0 {
		return "; did you mean --" + strings.Join(near, " or --") + "?"
	}
	return ""
}

// unknownCommand is the error for a command name that cmds, the
// commands of snap or of parent ("key"), do not have, with a "did you
// mean" hint as closestFlag's for flags ('snap lst', 'snap key lst'
// said only "unknown command"; found by an exploratory test).
func unknownCommand(name, parent string, cmds []*cli.Command) error {
	in, help := "", "snap"
	if parent != "" {
		in, help = " for 'snap "+parent+"'", "snap "+parent
	}
	var groups [][]string
	for _, c := range cmds {
		if c.Hidden || c.Name == "help" {
			continue
		}
		groups = append(groups, c.Names())
	}
	// Every name of 3 letters or less is within two edits of another
	// ("ls", "tag"): only one edit counts there.
	maxDist := 2
	if len(name) < 4 {
		maxDist = 1
	}
	near := nearestNames(name, groups, maxDist)
	if len(near) == 0 {
		return usagef("unknown command %q%s: see '%s --help'", name, in, help)
	}
	for i, n := range near {
		near[i] = "'" + strings.TrimPrefix(parent+" "+n, " ") + "'"
	}
	return usagef("unknown command %q%s: did you mean %s? (see '%s --help')", name, in, strings.Join(near, " or "), help)
}

// nearestNames returns the names nearest to name by typoDistance, within
// maxDist: one, or two equally near (both are offered, in the order given),
// or none when more are. Each group holds the names of one flag or command,
// and gives at most its first nearest name. The first of several equally
// near names won, which suggested --host for --josn; a wrong hint is worse
// than two or none (found by an exploratory test).
func nearestNames(name string, groups [][]string, maxDist int) []string {
	best := maxDist + 1
	var near []string
	for _, g := range groups {
		gBest, gName := maxDist+1, ""
		for _, n := range g {
			if d := typoDistance(n, name); d < gBest {
				gBest, gName = d, n
			}
		}
		switch {
		case gName == "" || gBest > best:
		case gBest < best:
			best, near = gBest, []string{gName}
		case !slices.Contains(near, gName):
			near = append(near, gName)
		}
	}
	if len(near) > 2 {
		return nil
	}
	return near
}

// typoDistance is the optimal string alignment distance: the edits
// (insert, delete, change a letter, or swap two adjacent ones) that make a
// of b. A swap counts one edit, as typing makes it: Levenshtein's two tied
// --josn with --host as with --json.
func typoDistance(a, b string) int {
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}

// dashed writes a flag's name as the user writes the flag: "-r", "--repo".
func dashed(name string) string {
	if len(name) == 1 {
		return "-" + name
	}
	return "--" + name
}

// flagTookFlag refuses a flag whose value is another flag of the command,
// as when the value was left out: "forget --keep-last 2 --keep-tag
// --dry-run" took --dry-run for the tag and removed the snapshots the dry
// run was to show, and "list --host --json" listed no snapshot of host
// "--json" (found by an exploratory test). Such a value cannot be given
// at all; no tag, host, path or URL is worth that trap.
func flagTookFlag(c *cli.Context, flags []cli.Flag) error {
	names := map[string]bool{"--help": true, "-h": true, "--version": true, "-V": true}
	for _, f := range flags {
		for _, n := range f.Names() {
			names[dashed(n)] = true
		}
	}
	for _, f := range flags {
		name := f.Names()[0]
		var values []string
		switch f.(type) {
		case *cli.StringFlag:
			values = []string{gstring(c, name)}
		case *cli.StringSliceFlag:
			values = c.StringSlice(name)
		case *cli.GenericFlag:
			values = multiValues(c, name)
		}
		for _, v := range values {
			// "--dry-run=true" is the flag too.
			if flag, _, ok := strings.Cut(v, "="); names[v] || ok && strings.HasPrefix(v, "-") && names[flag] {
				return usagef("%s took %q as its value: give %s a value before the next flag (see 'snap %s --help')", dashed(name), v, dashed(name), commandName(c))
			}
		}
	}
	return nil
}

// helpCommand is the library's "help" command, of snap or of a command
// with subcommands, except that help for a command that does not exist is
// a usage error (exit 2) in snap's words; the library would say "No help
// topic for 'x'" and exit 1.
func helpCommand() *cli.Command {
	return &cli.Command{
		Name:      "help",
		Aliases:   []string{"h"},
		Usage:     "Shows a list of commands or help for one command",
		ArgsUsage: "[command]",
		Action: func(c *cli.Context) error {
			parent := c.Lineage()[1]
			top := commandName(parent) == ""
			switch {
			case c.NArg() == 0 && top:
				return cli.ShowAppHelp(parent)
			case c.NArg() == 0:
				return cli.ShowSubcommandHelp(parent)
			}
			// 'snap help key add': down the subcommands, the last word's
			// help, shown from a context of its parent command.
			ctx, words := parent, c.Args().Slice()
			var cmd *cli.Command
			for i, name := range words {
				switch {
				case i == 0 && top:
					cmd = c.App.Command(name)
				case i == 0:
					cmd = parent.Command.Command(name)
				default:
					sub := cmd.Command(name)
					if sub != nil {
						ctx = cli.NewContext(c.App, nil, ctx)
						ctx.Command = cmd
					}
					cmd = sub
				}
				if cmd == nil {
					return usagef("no help for %q: there is no such command; see '%s --help'", strings.Join(words[:i+1], " "), strings.TrimSpace("snap "+commandName(parent)))
				}
				if cmd.HelpName == "" { // set by the library only for commands it runs
					cmd.HelpName = strings.Join(strings.Fields("snap "+commandName(parent)+" "+strings.Join(words[:i+1], " ")), " ")
				}
			}
			return cli.ShowCommandHelp(ctx, words[len(words)-1])
		},
	}
}

func addGlobalFlags(cmd *cli.Command) {
	cmd.Flags = append(cmd.Flags, globalFlags(false)...)
	if len(cmd.Subcommands) > 0 {
		cmd.Subcommands = append(cmd.Subcommands, helpCommand())
	} else {
		// Else the library gives every command a "help" (and "h")
		// subcommand: 'snap run h' would print run's help instead of
		// running job h, and exit 0; 'snap find help' would not search.
		cmd.HideHelpCommand = true
	}
	if cmd.Action == nil && len(cmd.Subcommands) > 0 {
		cmd.Action = func(c *cli.Context) error {
			if c.NArg() > 0 {
				return unknownCommand(c.Args().First(), commandName(c), c.Command.Subcommands)
			}
			// The help and exit 0 ('snap key', 'snap repair --json')
			// read as done to a script (found by an exploratory test).
			return usagef("'snap %s' needs a subcommand: %s (see 'snap %s --help')", commandName(c), commandNames(c.Command.Subcommands), commandName(c))
		}
	}
	if action := cmd.Action; action != nil {
		cmd.Action = func(c *cli.Context) error {
			if name := commandName(c); gbool(c, "no-lock") && !readsOnly(c) && name != "copy" {
				if name == "unlock" || name == "key add" || name == "init" {
					return usagef("--no-lock: '%s' takes no lock anyway, and changes the repository; leave --no-lock out", name)
				}
				return usagef("--no-lock: '%s' changes the repository and needs its lock; --no-lock is for restore, dump, check, repair index without --from-packs, copy's source, dry runs of forget (without --prune) and tag (and commands that take no lock: list, ls, find, stats, diff, key list)", name)
			}
			if err := flagTookFlag(c, cmd.Flags); err != nil {
				return err
			}
			if gbool(c, "quiet") && gbool(c, "verbose") {
				// Either would silently win over the other.
				return usagef("--quiet and --verbose contradict each other: give one of them")
			}
			if slices.Contains(multiValues(c, "path"), "") {
				// An empty variable in a script ("--path $P") would filter
				// by the working directory (filterFrom).
				return usagef("--path \"\": give a path (the paths column of 'snap list')")
			}
			return action(c)
		}
	}
	if cmd.OnUsageError == nil {
		cmd.OnUsageError = func(c *cli.Context, err error, isSub bool) error {
			if m := undefinedFlag.FindStringSubmatch(err.Error()); m != nil {
				// 'snap repair --from-packs' said only "unknown flag"
				// (found by an exploratory test).
				var subs []string // "snap repair index"
				for _, sub := range cmd.Subcommands {
					if lookupFlag(sub.Flags, "--"+m[1]) != nil {
						subs = append(subs, "snap "+commandName(c)+" "+sub.Name)
					}
				}
				if len(subs) > 0 {
					return usagef("%s is an option of '%s' (see '%s --help')", dashed(m[1]), strings.Join(subs, "' and '"), subs[0])
				}
			}
			return usagef("%s (see 'snap %s --help')", flagError(err, cmd.Flags), commandName(c))
		}
	}
	for _, sub := range cmd.Subcommands {
		addGlobalFlags(sub)
	}
}

// uploadCommands store data, which an interrupted run leaves for the next
// run or for prune.
var uploadCommands = map[string]bool{"create": true, "run": true, "copy": true}

// noLockCommands may run with --no-lock: they write nothing to the
// repository (openSessionWith then takes no lock for them).
var noLockCommands = map[string]bool{"restore": true, "dump": true, "check": true, "list": true, "ls": true, "stats": true, "diff": true, "key list": true, "find": true}

// readsOnly reports whether the command on c writes nothing to the
// repository, so that it may run without a lock (--no-lock): the commands
// above, and 'repair index' that rebuilds only the local cache.
func readsOnly(c *cli.Context) bool {
	name := commandName(c)
	// A dry run of forget or tag writes nothing either: previewing a
	// retention policy on a read-only copy was refused (found by an
	// exploratory test). forget --prune's dry run reads the index as a
	// prune does, and stays under the lock.
	dryRun := (name == "forget" || name == "tag") && c.Bool("dry-run") && !c.Bool("prune")
	return noLockCommands[name] || name == "repair index" && !c.Bool("from-packs") || dryRun
}

// commands lists every command. This is the one place a command is
// registered.
func commands(e *env) []*cli.Command {
	return []*cli.Command{
		initCommand(e),
		createCommand(e),
		listCommand(e),
		lsCommand(e),
		dumpCommand(e),
		restoreCommand(e),
		repairCommand(e),
		forgetCommand(e),
		pruneCommand(e),
		checkCommand(e),
		unlockCommand(e),
		configCommand(e),
		runCommand(e),
		scheduleCommand(e),
		statsCommand(e),
		diffCommand(e),
		completionCommand(e),
		manCommand(e),
		copyCommand(e),
		keyCommand(e),
		findEntriesCommand(e),
		tagCommand(e),
	}
}

// run executes one command line and returns the exit code. Every error is
// printed as one line on stderr (or as a JSON object with --json).
func run(args []string, e *env) int {
	e.args = args
	out := &stdoutWriter{w: e.stdout}
	e.stdout = out
	// A reader of standard output that goes away (snap dump … | head)
	// must not kill snap outright, as SIGPIPE would: the write fails with
	// EPIPE instead, and snap ends as a command does (a temporary index
	// cache, a lock, are cleaned up). Until run returns: the error line
	// that printError may still write to standard output included.
	sigpipe := make(chan os.Signal, 1)
	signal.Notify(sigpipe, syscall.SIGPIPE)
	defer signal.Stop(sigpipe)
	// A bug must still end in one clear line, not a stack trace: a panic
	// in this goroutine becomes the command's error here, one in any other
	// goroutine becomes the error of the operation it belongs to
	// (repo.Catch).
	var app *cli.App
	err := repo.Catch(func() error {
		// -v is --verbose here; the version flag gets -V. The library reads
		// this package variable; it is set to the same value on every run.
		cli.VersionFlag = &cli.BoolFlag{Name: "version", Aliases: []string{"V"}, Usage: "print the version"}
		// With --json, a document as every listing command prints.
		cli.VersionPrinter = func(c *cli.Context) {
			if gbool(c, "json") {
				_ = newUI(c, e).jsonDoc(map[string]any{"version": c.App.Version})
				return
			}
			fmt.Fprintf(c.App.Writer, "%s version %s\n", c.App.Name, c.App.Version)
		}
		// SIGHUP too: an admin's SSH connection that drops while a backup
		// runs by hand must not kill snap outright (no post hooks, so the
		// application a pre hook stopped stays stopped; a lock left). But
		// not under nohup, which ignores it so that the run goes on:
		// catching it would undo that (found by a review).
		stopSignals := []os.Signal{os.Interrupt, syscall.SIGTERM}
		if !signal.Ignored(syscall.SIGHUP) {
			stopSignals = append(stopSignals, syscall.SIGHUP)
		}
		ctx, stop := signal.NotifyContext(context.Background(), stopSignals...)
		defer stop()
		app = newApp(e)
		ordered, err := reorderArgs(app, args)
		if err != nil {
			return err
		}
		path := commandPath(app, args)
		product := outputIsTheProduct[path] || (path == "forget" || path == "prune") && isDryRun(ordered) || helpAsked(ordered)
		if product {
			// ls | head: nothing more to do once the reader has gone.
			// A backup, a restore or a run whose log reader dies goes on
			// (stdoutWriter keeps the error).
			var cancel context.CancelFunc
			ctx, cancel = context.WithCancel(ctx)
			defer cancel()
			out.gone = cancel
		}
		err = app.RunContext(ctx, ordered)
		werr := out.failed()
		if werr != nil && !product && (err == nil || isStdoutWrite(err)) && errors.Is(werr, syscall.EPIPE) {
			// A backup whose log reader died (snap run | logger) is done
			// all the same: say so where it can still be read.
			const msg = "standard output was closed by its reader; the command finished, and what it printed after that was lost"
			if jsonAsked(args) {
				// As every other message in JSON mode (found by an
				// exploratory test).
				b, _ := json.Marshal(map[string]any{"type": "warning", "message": msg})
				fmt.Fprintf(e.stderr, "%s\n", b)
			} else {
				fmt.Fprintln(e.stderr, "warning: "+msg)
			}
			return nil
		}
		return outcome(ctx, err, werr, product)
	})
	var bug *repo.PanicError
	if errors.As(err, &bug) && len(e.cacheDirs) > 0 {
		// The likeliest cause of a fault or a panic deep in a run is a
		// damaged index cache (a bbolt page cut short or flipped); the
		// next run rebuilds it rather than fail the same way every night.
		for _, dir := range e.cacheDirs {
			_ = index.MarkDamaged(dir)
		}
		err = fmt.Errorf("%w; the index cache will be rebuilt on the next run, in case it is damaged", err)
	}
	if stdoutGone(err) {
		return exitBrokenPipe // quietly, as a shell tool whose reader went away
	}
	code := exitCode(err)
	if err != nil {
		path := ""
		if app != nil {
			path = commandPath(app, args)
		}
		printError(e, args, path, err, code)
	}
	return code
}

// outputIsTheProduct are the commands that only print what they read:
// their work ends when standard output's reader goes away.
var outputIsTheProduct = map[string]bool{"ls": true, "dump": true, "find": true, "diff": true, "list": true, "stats": true, "key list": true,
	"config jobs": true, "config check": true, "completion": true, "man": true, "check": true, "schedule list": true, "help": true, "": true}

// isDryRun reports whether the arguments ask for a dry run (-n,
// --dry-run): it changes nothing, so its plan is all it makes, as for
// the commands above.
func isDryRun(args []string) bool { return given(args, "-n", "--dry-run", "--dry-run=true") }

// given reports whether args, before a "--", hold one of the forms of a
// flag.
func given(args []string, forms ...string) bool {
	for _, a := range args {
		if a == "--" {
			return false
		}
		if slices.Contains(forms, a) {
			return true
		}
	}
	return false
}

// helpAsked reports whether the arguments, as reorderArgs leaves them,
// ask for help: like 'snap --help', 'snap create --help' only prints, and
// ends quietly (141) when its reader goes away ('snap create --help |
// true' warned that the command finished; found by an exploratory test).
func helpAsked(args []string) bool { return given(args, "--help", "-h") }

// jsonAsked reports whether the command line asks for JSON output.
func jsonAsked(args []string) bool { return given(args, "--json", "--json=true") }

// outcome is a command's error as run reports it, given the context it ran
// in, the first error writing its standard output (werr), and whether the
// command only prints what it reads (product).
func outcome(ctx context.Context, err, werr error, product bool) error {
	switch {
	case werr != nil && errors.Is(werr, syscall.EPIPE) && product && (err == nil || ctx.Err() != nil):
		// The reader went away: what stopped the command, or all that
		// went wrong (exit 141, quietly). A command that does work of
		// its own says how that went, below.
		return &stdoutError{werr}
	case werr != nil && (err == nil || isStdoutWrite(err)):
		return &stdoutError{werr}
	case err == nil || ctx.Err() == nil || errors.Is(err, errInterrupted):
		// A failure of its own wins over a failure to print it.
		return err
	case (errors.Is(err, context.Canceled) || strings.HasSuffix(err.Error(), context.Canceled.Error())) && !strings.Contains(err.Error(), ";"):
		// Stopped, and nothing more to say than "interrupted" ("load
		// config: context canceled", "list snapshots: context canceled"
		// said no more). A message that explains what was left behind
		// ("key X is stored, but …; remove it …") is kept below.
		return errInterrupted
	default:
		return fmt.Errorf("%w: %v", errInterrupted, err)
	}
}

// isStdoutWrite reports whether err is a failed write to standard output
// (list and the tabular commands return theirs).
func isStdoutWrite(err error) bool {
	var pe *fs.PathError
	return errors.As(err, &pe) && pe.Path == "/dev/stdout"
}

// stdoutGone reports whether err is a write to standard output whose
// reader has gone (EPIPE). A broken pipe to one of snap's own tools (psql
// that died during a restore) is an error like any other.
func stdoutGone(err error) bool {
	return isStdoutWrite(err) && errors.Is(err, syscall.EPIPE)
}

// printError prints the error that ended the command: one line on stderr,
// or with --json a JSON object; commands that print JSON lines put it on
// stdout as their last line, so that a consumer of the stream sees it.
//
// An internal error (a bug, see repo.PanicError) says so and asks for a
// report; its stack is printed only when SNAP_DEBUG is set (docs/usage.md).
func printError(e *env, args []string, command string, err error, code int) {
	jsonLines := jsonLinesCommands[command]
	msg := singleLine(err.Error())
	var bug *repo.PanicError
	var stack []byte
	if errors.As(err, &bug) {
		msg += " (a bug in snap: please report it; SNAP_DEBUG=1 shows where it happened)"
		if e.getenv("SNAP_DEBUG") != "" {
			stack = bug.Stack
		}
	}
	if code == exitInterrupted && !strings.Contains(msg, "is consistent") && !strings.Contains(msg, "are consistent") && !strings.Contains(msg, "repository is untouched") &&
		!strings.Contains(msg, "nothing was changed") {
		switch {
		case command == "copy":
			// Two repositories, as copy's own message once it is under
			// way says (found by an exploratory test).
			msg += "; both repositories are consistent (data already sent is reclaimed by 'snap prune' on the target, or used by the next copy)"
		case noLockCommands[command]:
			msg += "; the repository is untouched" // a command that only reads it
		case uploadCommands[command]:
			msg += "; the repository is consistent (data already uploaded is reclaimed by 'snap prune')"
		default: // forget, tag, key: nothing uploaded to reclaim
			msg += "; the repository is consistent"
		}
	}
	if code != exitInterrupted && uploadCommands[command] && errors.Is(err, repo.ErrTransient) && !strings.Contains(msg, "snap prune") &&
		e.packs.unindexed() > 0 && !errors.As(err, new(*snapshot.SourceError)) {
		// The repository stopped answering: the packs this run stored
		// could not be indexed either, and nothing else said where they
		// went (found by an exploratory test: the next copy sent 983 MiB
		// again, and check listed 44 packs not indexed). Not when no pack
		// was stored, nor when a copy's source stopped answering (the
		// target indexed what it got; found by an exploratory test).
		msg += "; any packs this run stored before that are not indexed: once the repository answers, the next run stores their data again, and 'snap prune' reclaims them"
	}
	if jsonAsked(args) {
		typ := "error"
		if code == exitPartial {
			typ = "warning"
		}
		m := map[string]any{"type": typ, "message": msg, "exit_code": code, "final": true}
		// A path that is not UTF-8 reaches the message as U+FFFD:
		// its bytes go along, as on every other JSON line.
		if p := errorPath(err); pathBase64(p) != "" {
			m["path"], m["path_base64"] = p, pathBase64(p)
		}
		if stack != nil {
			m["stack"] = string(stack)
		}
		b, _ := json.Marshal(m)
		if jsonLines {
			if _, err := fmt.Fprintf(e.stdout, "%s\n", b); err == nil {
				return
			}
			// Standard output is what failed (a full disk): the
			// error goes where it can still be read.
		}
		fmt.Fprintf(e.stderr, "%s\n", b)
		return
	}
	prefix, level := "snap: ", slog.LevelError
	if code == exitPartial {
		prefix, level = "warning: ", slog.LevelWarn // the snapshot was saved
	}
	if e.journal {
		prefix = fmt.Sprintf("<%d>%s", journalPriority(level), prefix)
	}
	fmt.Fprintf(e.stderr, "%s%s\n", prefix, msg)
	if stack == nil {
		return
	}
	for _, line := range strings.Split(strings.TrimRight(string(stack), "\n"), "\n") {
		if e.journal {
			line = fmt.Sprintf("<%d>%s", journalPriority(slog.LevelDebug), line)
		}
		fmt.Fprintln(e.stderr, line)
	}
}

// namedPathError is an error about a path whose message names it in
// words of its own, with no *fs.PathError left inside.
type namedPathError struct {
	path string
	err  error
}

func (e *namedPathError) Error() string { return e.err.Error() }
func (e *namedPathError) Unwrap() error { return e.err }

// errorPath is the path an error is about, or "".
func errorPath(err error) string {
	var np *namedPathError
	if errors.As(err, &np) {
		return np.path
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Path
	}
	return ""
}

// commandPath returns the full name of the command on the line ("create",
// "schedule install"), or "" when there is none.
func commandPath(app *cli.App, args []string) string {
	rest := args[1:]
	for len(rest) > 0 && strings.HasPrefix(rest[0], "-") && rest[0] != "--" {
		n := min(flagArity(app.Flags, rest[0]), len(rest)-1)
		rest = rest[1+n:]
	}
	var names []string
	cmds := app.Commands
	for len(rest) > 0 {
		c := findCommand(cmds, rest[0])
		if c == nil {
			break
		}
		names = append(names, c.Name)
		rest, cmds = rest[1:], c.Subcommands
		for len(rest) > 0 && strings.HasPrefix(rest[0], "-") && rest[0] != "--" && findCommand(cmds, rest[0]) == nil {
			rest = rest[1+min(flagArity(c.Flags, rest[0]), len(rest)-1):]
		}
	}
	return strings.Join(names, " ")
}

// commandName is a command's full name ("key passwd", "repair index"):
// urfave/cli's FullName gives a subcommand's own name only.
func commandName(c *cli.Context) string {
	var names []string
	for _, ctx := range c.Lineage() {
		if ctx.Command != nil && ctx.Command.Name != "" && (ctx.App == nil || ctx.Command.Name != ctx.App.Name) {
			names = append([]string{ctx.Command.Name}, names...)
		}
	}
	return strings.Join(names, " ")
}
