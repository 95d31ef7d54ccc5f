package main

import (
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/urfave/cli/v2"

	"github.com/snap-backup/snap/repo"
	"github.com/snap-backup/snap/sources"
)

// snap key manages the key files: each wraps the one master key with a
// password of its own, so a repository can have several passwords (one per
// admin, one for the nightly job) and a password can be changed or
// withdrawn without touching the data (docs/format.md, "Key files").
func keyCommand(e *env) *cli.Command {
	newPassword := []cli.Flag{
		&cli.StringFlag{Name: "new-password-file", Usage: "read the new password from this file (env SNAP_NEW_PASSWORD_FILE)", EnvVars: []string{"SNAP_NEW_PASSWORD_FILE"}},
		&cli.StringFlag{Name: "new-password-command", Usage: "run this command and use its output as the new password (env SNAP_NEW_PASSWORD_COMMAND)", EnvVars: []string{"SNAP_NEW_PASSWORD_COMMAND"}},
		&cli.UintFlag{Name: "kdf-time", Value: uint(repo.DefaultKDF.Time), Usage: "argon2id passes of the new key"},
		&cli.UintFlag{Name: "kdf-memory", Value: uint(repo.DefaultKDF.MemoryKiB >> 10), Usage: "argon2id memory of the new key in MiB"},
	}
	newPasswordHelp := "The new password comes from --new-password-file, SNAP_NEW_PASSWORD_FILE, SNAP_NEW_PASSWORD,\n" +
		"--new-password-command or SNAP_NEW_PASSWORD_COMMAND, else it is asked for twice at the terminal."
	return &cli.Command{
		Name:  "key",
		Usage: "list, add, remove and change the passwords (key files) of the repository",
		Description: "Each key file holds the repository's master key, encrypted with one password. Any of them opens\n" +
			"the repository; the data does not change when a key is added or removed.",
		Subcommands: []*cli.Command{
			{
				Name:      "list",
				Usage:     "list the key files: ID, created, host and user, argon2id parameters",
				ArgsUsage: " ",
				Action: func(c *cli.Context) error {
					if c.NArg() > 0 {
						return usagef("key list takes no arguments")
					}
					return runKeyList(c, e)
				},
			},
			{
				Name:        "add",
				Usage:       "add a key file for another password",
				ArgsUsage:   " ",
				Description: "Adds a key file that opens the repository with a new password; the current password keeps working.\n" + newPasswordHelp,
				Flags:       newPassword,
				Action: func(c *cli.Context) error {
					if c.NArg() > 0 {
						return usagef("key add takes no arguments")
					}
					return runKeyAdd(c, e, false)
				},
			},
			{
				Name:      "passwd",
				Usage:     "change the password: add a key file for the new one, then remove the one in use",
				ArgsUsage: " ",
				Description: "Replaces the key file the current password opens with one for a new password (with the same\n" +
					"argon2id parameters unless --kdf-time or --kdf-memory say otherwise). The new key is stored\n" +
					"before the old one is removed, so the repository always has a key. Needs the exclusive lock.\n" + newPasswordHelp,
				Flags: newPassword,
				Action: func(c *cli.Context) error {
					if c.NArg() > 0 {
						return usagef("key passwd takes no arguments")
					}
					return runKeyAdd(c, e, true)
				},
			},
			{
				Name:      "remove",
				Usage:     "remove a key file, so that its password no longer opens the repository",
				ArgsUsage: "ID",
				Description: "Removes the key file ID (a unique prefix will do; 'snap key list' shows them). The key the current\n" +
					"password opens cannot be removed this way: open with another key's password, or use\n" +
					"'snap key passwd'. Needs the exclusive lock.",
				Action: func(c *cli.Context) error {
					if c.NArg() != 1 {
						return usagef("key remove takes one key ID ('snap key list' shows them)")
					}
					return runKeyRemove(c, e, c.Args().First())
				},
			},
		},
	}
}

// keyJSON is the documented JSON form of a key file (docs/usage.md).
type keyJSON struct {
	ID       string          `json:"id"`
	Current  bool            `json:"current"`
	Created  time.Time       `json:"created,omitzero"`
	Host     string          `json:"host,omitempty"`
	Username string          `json:"username,omitempty"`
	KDF      *repo.KDFParams `json:"argon2id,omitempty"`
	Error    string          `json:"error,omitempty"`
}

func runKeyList(c *cli.Context, e *env) error {
	u := newUI(c, e)
	r, _, err := openRepository(c, e, u, gstring(c, "repo"))
	if err != nil {
		return err
	}
	defer r.Close()
	keys, err := repo.ListKeys(c.Context, r.Backend())
	if err != nil {
		return err
	}
	out := make([]keyJSON, 0, len(keys))
	for _, k := range keys {
		j := keyJSON{ID: k.Name, Current: k.Name == r.KeyName()}
		if k.Err != nil {
			j.Error = k.Err.Error()
		} else {
			kdf := k.KDF
			j.Created, j.Host, j.Username, j.KDF = k.Created, k.Host, k.Username, &kdf
		}
		out = append(out, j)
	}
	if u.json {
		return u.jsonDoc(out)
	}
	// The table is the result, shown also with --quiet (which hides the
	// line below it).
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	if !u.quiet { // -q: the rows alone, for scripts
		fmt.Fprintln(tw, " \tID\tCreated\tHost\tUser\targon2id")
	}
	var unreadable []string // below the table: a long reason would widen its columns
	for _, k := range out {
		mark := " "
		if k.Current {
			mark = "*"
		}
		if k.Error != "" {
			fmt.Fprintf(tw, "%s\t%s\tunreadable (below)\t\t\t\n", mark, repo.ShortName(k.ID))
			unreadable = append(unreadable, fmt.Sprintf("key %s is unreadable: %s", repo.ShortName(k.ID), k.Error))
			continue
		}
		// Host and user come from the key file, which anyone who may
		// write keys/ can plant: escaped as list escapes a snapshot's
		// (a terminal escape sequence there reached the terminal).
		fmt.Fprint(tw, tableRow(fmt.Sprintf("%s\t%s\t%s\t%s\t%s\tt=%d m=%dMiB p=%d\n", mark, repo.ShortName(k.ID), k.Created.Local().Format("2006-01-02 15:04:05"),
			sources.DisplayPath(k.Host), sources.DisplayPath(k.Username), k.KDF.Time, k.KDF.MemoryKiB>>10, k.KDF.Threads)))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, line := range unreadable {
		u.printf("%s", line)
	}
	u.printf("%s; * marks the one the password opened", plural(len(out), "key file", "key files"))
	return nil
}

// runKeyAdd adds a key file for a new password; replace (snap key passwd)
// then removes every key file the current password opens: the one it
// opened, and any other made for the same password (two 'key add' at once
// can each store one), which would leave the old password working.
func runKeyAdd(c *cli.Context, e *env, replace bool) (err error) {
	mode := noLock // adding a key changes nothing another command relies on
	if replace {
		mode = exclusiveLock
	}
	kdf, kdfSet, err := kdfFlags(c)
	if err != nil {
		return err
	}
	st, err := settingsFrom(c, e)
	if err != nil {
		return err
	}
	var current string // the password the repository was opened with
	// The origin goes along: a wrong password's message says where it
	// came from (key add and passwd dropped it; found by an exploratory
	// test).
	var source func() (string, error)
	source, st.passwordOrigin = st.passwordWithOrigin(c.Context, e)
	st.password = func() (string, error) {
		pw, err := source()
		current = pw
		return pw, err
	}
	s, err := openSessionAt(c.Context, e, newUI(c, e), st, noLock, commandName(c), nil)
	if err != nil {
		return err
	}
	defer s.close()
	// The new password is asked for before the lock is taken: an admin
	// who leaves the prompt open must not stop every backup meanwhile
	// (the lock is refreshed, so it never goes stale; found by an
	// exploratory test).
	pw, err := passwordFrom(c.Context, e, c.String("new-password-file"), "SNAP_NEW_PASSWORD", c.String("new-password-command"), true, "new")
	if err != nil {
		return err
	}
	if err := s.relock(c.Context, mode); err != nil {
		return err
	}
	if err := s.r.CheckKey(c.Context); err != nil {
		return err
	}
	old := s.r.KeyName()
	if replace && !kdfSet {
		// Keep the tuning of the key being replaced.
		keys, err := repo.ListKeys(c.Context, s.r.Backend())
		if err != nil {
			return err
		}
		for _, k := range keys {
			if k.Name == old && k.Err == nil {
				kdf = k.KDF
			}
		}
	}
	opened, err := s.r.KeysOpenedBy(c.Context, pw)
	if err != nil {
		return err
	}
	// After the refusals below: a warning about a key that is then not
	// made read as if it had been (found by an exploratory test).
	var name string
	defer func() {
		if err == nil {
			// The key is stored by now: what undoes it, not "give the
			// password again" (found by an exploratory test).
			undo := "change it with 'snap key passwd'"
			if !replace {
				undo = fmt.Sprintf("remove the new key with 'snap key remove %s' and add it again without it", repo.ShortName(name))
			}
			warnWeakKey(s.ui, pw, kdf, undo)
		}
	}()
	switch {
	case slices.Contains(opened, old):
		return usagef("the new password is the one in use: choose another")
	case len(opened) > 0 && replace:
		// Also what an interrupted 'key passwd' to this password leaves:
		// its new key stored, the old one not yet removed.
		return usagef("the new password already opens key %s (added by 'key add', or by a 'key passwd' that was interrupted): "+
			"to finish changing to it, remove the key of the password in use: snap key remove %s (run with the new password)", repo.ShortName(opened[0]), repo.ShortName(old))
	case len(opened) > 0:
		return usagef("the new password already opens key %s: choose another (one password, one key file)", repo.ShortName(opened[0]))
	}
	name, err = s.r.AddKey(c.Context, pw, kdf)
	if err != nil {
		return diskFull(readOnlyMount(fmt.Errorf("add key: %w; the keys are as they were", err), s.location, s.command))
	}
	if !replace {
		if s.ui.json {
			return s.ui.jsonDoc(map[string]any{"added": name})
		}
		s.ui.printf("added key %s; the new password opens the repository, and so does the current one", repo.ShortName(name))
		return nil
	}
	stale, err := s.r.KeysOpenedBy(c.Context, current)
	if err != nil {
		s.ui.warnf("could not look for other key files of the old password: %v; run 'snap key list' with it", err)
	}
	stale = append(stale, old) // the one opened goes in any case
	slices.Sort(stale)
	stale = slices.Compact(stale)
	for _, k := range stale {
		if err := s.r.RemoveKey(c.Context, k); err != nil {
			return fmt.Errorf("key %s for the new password is stored, but the old key %s could not be removed (both passwords open the repository; remove it with 'snap key remove %s', run with the new password): %w",
				repo.ShortName(name), repo.ShortName(k), repo.ShortName(k), err)
		}
	}
	if s.ui.json {
		return s.ui.jsonDoc(map[string]any{"added": name, "removed": old, "removed_keys": stale})
	}
	short := make([]string, len(stale))
	for i, k := range stale {
		short[i] = repo.ShortName(k)
	}
	s.ui.printf("changed the password: added key %s, removed key %s", repo.ShortName(name), strings.Join(short, ", key "))
	s.ui.printf("update the password files and config of every job and host that used the old password")
	return nil
}

func runKeyRemove(c *cli.Context, e *env, arg string) error {
	s, err := openSessionWith(c, e, exclusiveLock, nil)
	if err != nil {
		return err
	}
	defer s.close()
	// Under the lock: the key this password opened must still be there, or
	// two admins each removing the other's key would leave none.
	if err := s.r.CheckKey(c.Context); err != nil {
		return err
	}
	keys, err := repo.ListKeys(c.Context, s.r.Backend())
	if err != nil {
		return err
	}
	var match []string
	for _, k := range keys {
		if strings.HasPrefix(k.Name, strings.ToLower(arg)) {
			match = append(match, k.Name)
		}
	}
	switch {
	case len(arg) < 8 && len(match) > 0 && match[0] != arg:
		// Removing a key locks its holder out: a one-letter prefix
		// typed by mistake must not do it (found by an exploratory
		// test: 'key remove 5').
		return usagef("key ID %q is too short: give the 8 characters 'snap key list' shows, or more", arg)
	case arg == "" || len(match) == 0:
		return usagef("no key file %q: 'snap key list' shows them", arg)
	case len(match) > 1:
		return usagef("key ID %q is ambiguous (%d key files start with it): give more of it", arg, len(match))
	case match[0] == s.r.KeyName():
		return usagef("key %s is the one the current password opens: open the repository with another key's password to remove it, or change its password with 'snap key passwd'", repo.ShortName(match[0]))
	}
	if err := s.r.RemoveKey(c.Context, match[0]); err != nil {
		return fmt.Errorf("remove key %s: %w", repo.ShortName(match[0]), err)
	}
	if s.ui.json {
		return s.ui.jsonDoc(map[string]any{"removed": match[0]})
	}
	s.ui.printf("removed key %s; its password no longer opens the repository", repo.ShortName(match[0]))
	return nil
}

// Below these a new key is warned about: a password shorter than
// minPasswordRunes, or argon2id parameters cheaper than OWASP's minimum
// for it (19 MiB, 2 passes). Whoever has a copy of the repository (a
// stolen disk, a leaked bucket) can guess passwords offline, as fast as
// the key's derivation allows. Warned, not refused: the admin may know
// better (a test repository), and scripts must keep working.
const (
	minPasswordRunes = 8
	minKDFCostKiB    = 2 * 19 << 10 // memory times passes
)

// warnWeakKey warns about a new key whose password or derivation makes
// it cheap to guess (found by an exploratory test: a blank password and a
// 1 MiB, 1-pass key were taken without a word).
// undo says how to get rid of the key, which is stored by then.
func warnWeakKey(u *ui, pw string, kdf repo.KDFParams, undo string) {
	if odd := passwordOddity(pw); odd != "" {
		// A secret store's second line of metadata, Notepad's BOM or a
		// blank typed at the prompt become part of the key's password;
		// the day they change, or someone types only the first line,
		// the password stops working (found by an exploratory test).
		u.warnf("the new password: %s; if that is not meant, %s", strings.TrimPrefix(odd, "; "), undo)
	}
	if n := utf8.RuneCountInString(strings.TrimSpace(pw)); n < minPasswordRunes {
		u.warnf("the password has %s (not counting spaces around them): anyone with a copy of the repository can try passwords offline; use %d or more, a passphrase of several words is better", plural(n, "character", "characters"), minPasswordRunes)
	}
	if uint64(kdf.MemoryKiB)*uint64(kdf.Time) < minKDFCostKiB {
		u.warnf("the key's argon2id parameters, --kdf-memory %d (MiB) and --kdf-time %d, make each guess of the password cheap (below argon2id's recommended minimum of 19 MiB with 2 passes; the default is %d MiB with %d passes)",
			kdf.MemoryKiB>>10, kdf.Time, repo.DefaultKDF.MemoryKiB>>10, repo.DefaultKDF.Time)
	}
}

// kdfFlags reads --kdf-time and --kdf-memory (init, key add, key passwd)
// and checks them before anything is opened. set reports whether either
// was given.
func kdfFlags(c *cli.Context) (kdf repo.KDFParams, set bool, err error) {
	t, m := c.Uint("kdf-time"), c.Uint("kdf-memory")
	if t < 1 || t > repo.MaxKDFTime {
		return kdf, false, usagef("--kdf-time %d: give 1 to %d passes", t, repo.MaxKDFTime)
	}
	if m < 1 || m > repo.MaxKDFMemoryMiB {
		return kdf, false, usagef("--kdf-memory %d: give 1 to %d MiB", m, repo.MaxKDFMemoryMiB)
	}
	kdf = repo.KDFParams{Time: uint32(t), MemoryKiB: uint32(m) << 10, Threads: repo.DefaultKDF.Threads}
	return kdf, c.IsSet("kdf-time") || c.IsSet("kdf-memory"), nil
}
