package main

import (
	"fmt"

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
// holds: environment, files and exit status.
const manDescription = `snap backs up directories and database dumps into a deduplicating, encrypted repository, keeps
generations by a retention policy, and restores any snapshot. Jobs in a config file run from
systemd timers with **snap run**. The user guide is docs/usage.md.

# ENVIRONMENT

- **SNAP_REPOSITORY**, **SNAP_PASSWORD_FILE**, **SNAP_PASSWORD**, **SNAP_PASSWORD_COMMAND**, **SNAP_CACHE_DIR**, **SNAP_CONFIG**: defaults for --repo, --password-file, the password itself, --password-command, --cache-dir and --config.
- **SNAP_PROGRESS_INTERVAL**: how often progress is shown (a duration; 0 turns JSON progress lines off).
- **JOURNAL_STREAM**: set by systemd; when it names snap's stderr, messages carry journald priority prefixes.
- **XDG_CONFIG_HOME**, **XDG_CACHE_HOME**: where the config file and the cache are looked for.

# FILES

- **$XDG_CONFIG_HOME/snap/snap.toml** (default ~/.config/snap/snap.toml), then **/etc/snap/snap.toml**: the jobs config file, unless --config names one.
- **$XDG_CACHE_HOME/snap/REPOSITORY-ID/**: the local index and snapshot cache.
- **/etc/systemd/system/snap-JOB.service** and **snap-JOB.timer** (with --user, in ~/.config/systemd/user): units written by **snap schedule install**.

# EXIT STATUS

- **0**: success
- **1**: fatal error
- **2**: wrong flags, arguments or config file
- **3**: snapshot saved, but some files were unreadable
- **10**: no repository at that location
- **11**: repository locked
- **12**: wrong password
- **130**: interrupted (the repository stays consistent)
`

// manPage renders the man page from an app whose commands carry only
// their own flags (the global flags are listed once).
func manPage(e *env) (string, error) {
	app := &cli.App{
		Name:        "snap",
		Usage:       "deduplicating, encrypted backups of directories and databases",
		UsageText:   "snap [GLOBAL OPTIONS] COMMAND [OPTIONS] [ARGUMENTS...]",
		Version:     version,
		Description: manDescription,
		Flags:       globalFlags(false),
		Commands:    commands(e),
	}
	return app.ToManWithSection(1)
}
