package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/snap-backup/snap/repo"
	"github.com/snap-backup/snap/sources"
)

func unlockCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:      "unlock",
		Usage:     "remove stale locks",
		ArgsUsage: " ",
		Description: "Removes locks whose holder is gone: on this host with a process that no longer exists, or not\n" +
			"refreshed for 30 minutes (a running snap refreshes its lock every 5 minutes). Locks of running\n" +
			"processes stay. --all removes every lock, also those of running processes: use it only when you\n" +
			"know no snap runs against the repository (for example on another host whose clock is wrong).",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "all", Usage: "remove every lock, including those of running processes"},
			&cli.BoolFlag{Name: "dry-run", Aliases: []string{"n"}, Usage: "list the locks, and which would be removed, removing none (lock files are encrypted: this is how to read them)"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return usagef("unlock takes no arguments")
			}
			return runUnlock(c, e, c.Bool("all"), c.Bool("dry-run"))
		},
	}
}

// lockJSON is the documented JSON form of a lock (docs/usage.md).
type lockJSON struct {
	Name     string    `json:"name"`
	Kind     string    `json:"kind,omitempty"`
	Host     string    `json:"host,omitempty"`
	PID      int       `json:"pid,omitempty"`
	Command  string    `json:"command,omitempty"`
	Since    time.Time `json:"since,omitzero"`
	Stale    bool      `json:"stale"`
	Readable bool      `json:"readable"`
}

func toLockJSON(l repo.LockEntry) lockJSON {
	j := lockJSON{Name: l.Name, Stale: l.Stale, Readable: l.Err == nil}
	if l.Err == nil {
		j.Kind, j.Host, j.PID, j.Command, j.Since = l.Info.Kind(), l.Info.Host, l.Info.PID, l.Info.Command, l.Info.Since()
	}
	return j
}

func runUnlock(c *cli.Context, e *env, all, dryRun bool) error {
	u := newUI(c, e)
	r, _, err := openRepository(c, e, u, gstring(c, "repo"))
	if err != nil {
		return err
	}
	defer r.Close()
	locks, err := r.ListLocks(c.Context)
	if err != nil {
		return err
	}
	if all && len(locks) > 0 && !dryRun {
		u.warnf("removing every lock, also those of snap processes that may still be running; a running prune or backup can damage the repository if it continues")
	}
	res := struct {
		Removed []lockJSON `json:"removed"` // with --dry-run: would be removed
		Kept    []lockJSON `json:"kept"`
		DryRun  bool       `json:"dry_run,omitempty"`
	}{Removed: []lockJSON{}, Kept: []lockJSON{}, DryRun: dryRun}
	removed, kept := "removed", "kept"
	if dryRun {
		removed, kept = "would remove", "would keep"
	}
	var failed error
	for _, l := range locks {
		j := toLockJSON(l)
		if !all && !l.Stale {
			res.Kept = append(res.Kept, j)
			if l.Err != nil {
				u.printf("%s unreadable lock %s (%v); remove it with --all if no snap runs", kept, l.Name[:8], l.Err)
			} else {
				why := "its process is running"
				if l.Info.PID <= 0 {
					// No process has it (a damaged or crafted lock):
					// "running" was said of pid 0 and -1, which kill(2)
					// takes for groups (found by an exploratory test).
					why = fmt.Sprintf("it names no process (pid %d), so only its age tells", l.Info.PID)
				}
				refreshed := "refreshed " + time.Since(l.Info.Time).Round(time.Second).String() + " ago"
				becomes := "becomes stale 30 minutes after its last refresh"
				if r.FutureDated(l.Info) {
					// (A lock dated 9999 printed an overflowed duration,
					// and the promise of 30 minutes.)
					refreshed = "dated " + localTime(l.Info.Time) + ", ahead of this machine's clock (that host's clock is ahead, or the lock is damaged)"
					becomes = "does not go stale by age"
				}
				switch {
				case j.Host != r.Host():
					// Another host's process cannot be seen from here.
					why = fmt.Sprintf("%s; a lock of another host %s (use --all if you know no snap runs there)", refreshed, becomes)
				case r.OtherMachine(l.Info):
					why = fmt.Sprintf("taken on another machine with this host name (its machine ID differs), whose processes cannot be seen from here; %s, it %s (use --all if you know no snap runs there)", refreshed, becomes)
				case l.Info.PIDNamespace != "" && l.Info.PIDNamespace != r.PIDNamespace():
					why = fmt.Sprintf("taken in another PID namespace (%s, a container?), whose processes cannot be seen from here; %s, it %s (use --all if you know no snap runs there)",
						sources.DisplayPath(l.Info.PIDNamespace), refreshed, becomes)
				}
				u.printf("%s the %s lock of pid %d on %s (snap %s, since %s): %s", kept, j.Kind, j.PID, listedPath(j.Host), listedPath(j.Command), localTime(j.Since), why)
			}
			continue
		}
		if !dryRun {
			if err := r.RemoveLock(c.Context, l.Name); err != nil && !errors.Is(err, repo.ErrNotFound) {
				failed = err
				u.errorf("remove lock %s: %v", l.Name[:8], err)
				continue
			}
		}
		res.Removed = append(res.Removed, j)
		switch {
		case l.Err != nil:
			u.printf("%s unreadable lock %s", removed, l.Name[:8])
		case l.Stale:
			u.printf("%s stale %s lock of pid %d on %s (snap %s, since %s)", removed, j.Kind, j.PID, listedPath(j.Host), listedPath(j.Command), localTime(j.Since))
		default:
			u.printf("%s the %s lock of pid %d on %s (snap %s, since %s)", removed, j.Kind, j.PID, listedPath(j.Host), listedPath(j.Command), localTime(j.Since))
		}
	}
	if u.json {
		if err := u.jsonDoc(res); err != nil {
			return err
		}
	} else {
		u.printf("%s %s, %d remain", removed, plural(len(res.Removed), "lock", "locks"), len(res.Kept))
	}
	return failed
}
