package main

import (
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"
)

func manCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:      "man",
		Usage:     "print the manual page (roff), generated from the command definitions",
		ArgsUsage: " ",
		Description: "Install it with: snap man > /usr/local/share/man/man1/snap.1 (or 'make man', which writes\n" +
			"bin/snap.1).",
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return usagef("man takes no arguments: it prints the page of every command (see 'snap man --help')")
			}
			page, err := manPage(e)
			if err != nil {
				return err
			}
			_, err = fmt.Fprint(e.stdout, page)
			return err
		},
	}
}

// manDescription is the part of the man page that no command definition
// holds: environment, files and exit status. It ends with the heading of
// the usage line that the library writes after it, which would otherwise
// sit under the exit status.
const manDescription = `snap backs up directories and database dumps into a deduplicating, encrypted repository, keeps
generations by a retention policy, and restores any snapshot. Jobs in a config file run from
systemd timers with **snap run**. The user guide is docs/usage.md.

# ENVIRONMENT

- **SNAP_REPOSITORY**, **SNAP_PASSWORD_FILE**, **SNAP_PASSWORD**, **SNAP_PASSWORD_COMMAND**, **SNAP_CACHE_DIR**, **SNAP_CONFIG**: defaults for --repo, --password-file, the password itself, --password-command, --cache-dir and --config.
- **SNAP_CONNECTIONS**, **SNAP_LIMIT_UPLOAD**, **SNAP_LIMIT_DOWNLOAD**: defaults for --connections, --limit-upload and --limit-download.
- **SNAP_TO_REPOSITORY**, **SNAP_TO_PASSWORD_FILE**, **SNAP_TO_PASSWORD**, **SNAP_TO_PASSWORD_COMMAND**: the target of **snap copy** and its password.
- **SNAP_NEW_PASSWORD_FILE**, **SNAP_NEW_PASSWORD**, **SNAP_NEW_PASSWORD_COMMAND**: the new password of **snap key add** and **snap key passwd**.
- **SNAP_FROM_REPOSITORY**, **SNAP_FROM_PASSWORD_FILE**, **SNAP_FROM_PASSWORD**, **SNAP_FROM_PASSWORD_COMMAND**: the repository whose chunker parameters **snap init --copy-chunker-params-from** takes, and its password.
- **SNAP_METRICS_DIR**: default for **snap run --metrics-dir** when the config has no **metrics_dir**.
- **SNAP_PROGRESS_INTERVAL**: how often progress is shown (a duration; 0 turns progress off, on the terminal and as JSON lines).
- **SNAP_DEBUG**: when set, an internal error also prints where it happened (a stack trace).
- **SNAP_CPUPROFILE**, **SNAP_MEMPROFILE**, **SNAP_TRACE**: write a CPU profile, a heap profile or an execution trace of the run to that file (a new one, or one that holds a profile or trace already; never through a link or where another user could redirect it).
- **AWS_ACCESS_KEY_ID**, **AWS_SECRET_ACCESS_KEY**, **AWS_SESSION_TOKEN**, **AWS_SHARED_CREDENTIALS_FILE**, **AWS_PROFILE**, **AWS_REGION**, **AWS_DEFAULT_REGION**: credentials and region of an S3 repository.
- **SNAP_MEMORY_LIMIT**: the soft memory limit, as a size (512M, 2G), instead of snap's 100 MiB.
- **GOMEMLIMIT**, **GOGC**: when set, the Go runtime's memory settings instead of snap's (GOMEMLIMIT in Go's syntax, e.g. 512MiB; the runtime stops on any other).
- **JOURNAL_STREAM**: set by systemd; when it names snap's stderr, messages carry journald priority prefixes.
- **XDG_CONFIG_HOME**, **XDG_CACHE_HOME**, **HOME**: where the config file and the cache are looked for (root refuses a config file, and passes over a cache directory, that another user could change: run it with root's environment, **su -** or **sudo**).

Hooks (--pre, --post, pre and post in the config) get **SNAP_HOOK**, **SNAP_REPOSITORY**, **SNAP_HOST**, **SNAP_TAGS**, **SNAP_JOB** (in a job of the config), **SNAP_PASSWORD_FILE** or **SNAP_PASSWORD_COMMAND** (when a flag or the config gave it), **SNAP_CACHE_DIR**, **SNAP_LIMIT_UPLOAD** and **SNAP_LIMIT_DOWNLOAD** (when the run was given them), and post hooks **SNAP_STATUS**, **SNAP_EXIT_CODE**, **SNAP_SNAPSHOT_ID** and **SNAP_ERROR**; see the user guide.

# FILES

- **$XDG_CONFIG_HOME/snap/snap.toml** (default ~/.config/snap/snap.toml), then **/etc/snap/snap.toml**: the jobs config file, unless --config names one.
- **$XDG_CACHE_HOME/snap/REPOSITORY-ID/**: the local index and snapshot cache.
- **/etc/systemd/system/snap-JOB.service** and **snap-JOB.timer** (with --user, in ~/.config/systemd/user): units written by **snap schedule install**.

# EXIT STATUS

- **0**: success
- **1**: fatal error
- **2**: wrong flags, arguments or config file
- **3**: snapshot saved, but some files were unreadable, or a backed-up directory was found empty where an earlier snapshot held entries
- **10**: no repository at that location
- **11**: repository locked (for **run**: a job still running)
- **12**: wrong password
- **130**: interrupted (the repository stays consistent)
- **141**: standard output was closed by its reader (snap dump ... | head)

# USAGE
`

// manPage renders the man page from an app whose commands carry only
// their own flags (the global flags are listed once).
func manPage(e *env) (string, error) {
	cmds := commands(e)
	manSynopses("snap", cmds)
	app := &cli.App{
		Name:        "snap",
		Usage:       "deduplicating, encrypted backups of directories and databases",
		UsageText:   "snap [GLOBAL OPTIONS] COMMAND [OPTIONS] [ARGUMENTS...]",
		Version:     version,
		Description: manDescription,
		Flags:       globalFlags(false),
		Commands:    cmds,
	}
	page, err := app.ToManWithSection(1)
	// groff in a locale that is not UTF-8 warns about (and drops) the
	// ellipses of the usage texts.
	return strings.ReplaceAll(page, "…", "..."), err
}

// manSynopses adds to each command's line in the man page its synopsis
// (snap list [PERIOD | SNAPSHOT...]) and its description, which the
// library leaves out of the page: PERIOD, SNAPSHOT [PATH] or PATTERN...
// appeared nowhere in it (found by an exploratory test).
func manSynopses(parent string, cmds []*cli.Command) {
	for _, cmd := range cmds {
		name := parent + " " + cmd.Name
		if len(cmd.Subcommands) > 0 {
			manSynopses(name, cmd.Subcommands)
			continue
		}
		synopsis := "**" + name + "** [OPTIONS]"
		if args := strings.TrimSpace(cmd.ArgsUsage); args != "" {
			synopsis += " " + manEscape(args)
		}
		text := cmd.Usage + "\n\n" + synopsis
		if cmd.Description != "" {
			text += "\n\n" + manEscape(strings.ReplaceAll(cmd.Description, "\n", " "))
		}
		cmd.Usage = text
	}
}

// manEscape keeps markdown from reading a usage text's characters as
// markup (the page is markdown turned into roff).
func manEscape(s string) string {
	r := strings.NewReplacer("\\", "\\\\", "*", "\\*", "_", "\\_", "`", "\\`", "[", "\\[", "]", "\\]", "<", "\\<", ">", "\\>", "#", "\\#")
	return r.Replace(s)
}
