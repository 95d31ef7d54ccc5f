package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/urfave/cli/v2"
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
		&cli.StringFlag{Name: "cache-dir", Usage: "local cache directory (default $XDG_CACHE_HOME/snap; env SNAP_CACHE_DIR)", EnvVars: env("SNAP_CACHE_DIR")},
		&cli.StringFlag{Name: "connections", Usage: "requests to the repository at once (default 8 for S3, unlimited for a directory; env SNAP_CONNECTIONS)"},
		&cli.BoolFlag{Name: "json", Usage: "print machine-readable JSON"},
		&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "print only errors"},
		&cli.BoolFlag{Name: "verbose", Aliases: []string{"v"}, Usage: "print more detail"},
	}
}

// gstring returns a global string flag from wherever it was set: after the
// command (innermost wins), before it, or from the environment.
func gstring(c *cli.Context, name string) string {
	for _, cc := range c.Lineage() {
		if cc.Command != nil || cc.App != nil {
			if isSetHere(cc, name) {
				return cc.String(name)
			}
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
			return usagef("%v (see 'snap %s --help')", err, c.Command.Name)
		},
	}
	for _, cmd := range app.Commands {
		addGlobalFlags(cmd)
	}
	return app
}

func addGlobalFlags(cmd *cli.Command) {
	cmd.Flags = append(cmd.Flags, globalFlags(false)...)
	if cmd.OnUsageError == nil {
		cmd.OnUsageError = func(c *cli.Context, err error, isSub bool) error {
			return usagef("%v (see 'snap %s --help')", err, c.Command.FullName())
		}
	}
	for _, sub := range cmd.Subcommands {
		addGlobalFlags(sub)
	}
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
		copyCommand(e),
	}
}

// run executes one command line and returns the exit code. Every error is
// printed as one line on stderr (or as a JSON object with --json).
func run(args []string, e *env) (code int) {
	defer func() {
		// A bug must still end in one clear line, not a stack trace.
		if v := recover(); v != nil {
			fmt.Fprintf(e.stderr, "snap: internal error: %v; please report it with the command line that caused it\n", v)
			code = exitFatal
		}
	}()
	// -v is --verbose here; the version flag gets -V. The library reads
	// this package variable; it is set to the same value on every run.
	cli.VersionFlag = &cli.BoolFlag{Name: "version", Aliases: []string{"V"}, Usage: "print the version"}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	app := newApp(e)
	err := app.RunContext(ctx, reorderArgs(app, args))
	if err != nil && ctx.Err() != nil && !errors.Is(err, errInterrupted) {
		err = fmt.Errorf("%w: %v", errInterrupted, err)
	}
	code = exitCode(err)
	if err != nil {
		printError(e, args, err, code)
	}
	return code
}

func printError(e *env, args []string, err error, code int) {
	msg := strings.ReplaceAll(err.Error(), "\n", " ")
	if code == exitInterrupted && !strings.Contains(msg, "repository is consistent") {
		msg += "; the repository is consistent (data already uploaded is reclaimed by 'snap prune')"
	}
	if code == exitPartial {
		fmt.Fprintf(e.stderr, "warning: %s\n", msg)
		return
	}
	for _, a := range args {
		if a == "--json" {
			b, _ := json.Marshal(map[string]any{"type": "error", "message": msg, "exit_code": code})
			fmt.Fprintf(e.stderr, "%s\n", b)
			return
		}
	}
	fmt.Fprintf(e.stderr, "snap: %s\n", msg)
}
