package main

import (
	"errors"
	"fmt"
	"strings"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/snap-backup/snap/chunk"
	"github.com/snap-backup/snap/repo"
	"github.com/snap-backup/snap/repo/local"
)

func initCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:      "init",
		Usage:     "create a new repository",
		ArgsUsage: " ",
		Description: "Creates an encrypted repository at --repo (a new or empty directory). The password protects\n" +
			"the master key; keep it safe: without it the backups cannot be read.",
		Flags: []cli.Flag{
			&cli.UintFlag{Name: "kdf-time", Value: uint(repo.DefaultKDF.Time), Usage: "argon2id passes"},
			&cli.UintFlag{Name: "kdf-memory", Value: uint(repo.DefaultKDF.MemoryKiB >> 10), Usage: "argon2id memory in MiB"},
			&cli.StringFlag{Name: "reserve", Value: "64MiB", Usage: "`SIZE` set aside in a local repository so that forget and prune can run on a full disk (0: none)"},
			&cli.StringFlag{Name: "copy-chunker-params-from", Usage: "cut files as the repository `REPO` does, so that snapshots copied from it ('snap copy') and backups made into the new one deduplicate against each other (env SNAP_FROM_REPOSITORY)", EnvVars: []string{"SNAP_FROM_REPOSITORY"}},
			&cli.StringFlag{Name: "from-password-file", Usage: "read the password of --copy-chunker-params-from's repository from this file (env SNAP_FROM_PASSWORD_FILE; default: the new repository's password)", EnvVars: []string{"SNAP_FROM_PASSWORD_FILE"}},
			&cli.StringFlag{Name: "from-password-command", Usage: "run this command for the password of --copy-chunker-params-from's repository (env SNAP_FROM_PASSWORD_COMMAND)", EnvVars: []string{"SNAP_FROM_PASSWORD_COMMAND"}},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return usagef("init takes no arguments; give the location with --repo")
			}
			kdf, _, err := kdfFlags(c)
			if err != nil {
				return err
			}
			reserve, err := parseSize(c.String("reserve"))
			if err == nil && reserve == 0 && strings.TrimSpace(c.String("reserve")) != "0" {
				err = fmt.Errorf("%q is less than a byte", c.String("reserve"))
			}
			if err != nil {
				return usagef("--reserve: %v (a size such as 64MiB, or 0 for none)", err)
			}
			st, err := settingsFrom(c, e)
			if err != nil {
				return err
			}
			return runInit(c, e, st.location, kdf, int64(reserve))
		},
	}
}

// chunkerParams returns the new repository's chunker parameters, for
// files and for streams: fresh random ones, or those of the repository
// --copy-chunker-params-from names (opened with its own password, else
// with the new repository's, pw). Blob IDs are keyed per repository, but
// 'snap copy' keeps the source's cuts and re-keys the chunks: with the
// same cuts, a backup made into the target finds the copied chunks.
func chunkerParams(c *cli.Context, e *env, u *ui, pw string) (files repo.ChunkerParams, streams *repo.ChunkerParams, err error) {
	from := c.String("copy-chunker-params-from")
	if from == "" {
		params, err := chunk.NewParams()
		if err != nil {
			return files, nil, err
		}
		sp := params.StreamParams()
		return repo.ChunkerParams{Polynomial: params.Polynomial, MinSize: params.MinSize, MaxSize: params.MaxSize, AverageBits: params.AverageBits},
			&repo.ChunkerParams{Polynomial: sp.Polynomial, MinSize: sp.MinSize, MaxSize: sp.MaxSize, AverageBits: sp.AverageBits}, nil
	}
	st, err := settingsFrom(c, e)
	if err != nil {
		return files, nil, err
	}
	st.location, st.fromConfig = from, ""
	st.password, st.passwordOrigin = otherPassword(c, e, "SNAP_FROM_PASSWORD", "source repository", func() (string, error) { return pw, nil }, "the new repository's password")
	src, _, err := openRepositoryWith(c.Context, e, u, st)
	if err != nil {
		return files, nil, fmt.Errorf("--copy-chunker-params-from %s: %w", redactedLocation(from), err)
	}
	defer src.Close()
	cfg := src.Config()
	if cfg.StreamChunker != nil {
		sc := *cfg.StreamChunker
		streams = &sc
	}
	return cfg.Chunker, streams, nil
}

func runInit(c *cli.Context, e *env, location string, kdf repo.KDFParams, reserve int64) error {
	u := newUI(c, e)
	if location == "" {
		return usagef("no repository given: use --repo, set SNAP_REPOSITORY, or name it in a config file (repository = \"…\" in ~/.config/snap/snap.toml or /etc/snap/snap.toml, or --config FILE)")
	}
	if !isRemote(location) {
		// A backup disk that did not mount leaves its mount point an
		// empty directory of the root file system: a repository made
		// there would take every later backup without a word (found by
		// an exploratory test).
		dir := strings.TrimPrefix(location, "local:")
		if strings.HasPrefix(dir, "~") {
			// A quoted ~, or one in a unit's Environment=: the repository
			// went to ./~/x (found by an exploratory test).
			return usagef("%s: the ~ was not expanded (quoted, or set in a variable or a unit file): give the full path", dir)
		}
		if m := local.UnmountedMountPoint(dir); m != "" {
			return fmt.Errorf("%s lies on %s, a mount point in /etc/fstab that is not mounted: mount it first (mount %s), or the repository would be made on the file system below it", dir, m, m)
		}
	}
	if err := repo.CheckKDFMemory(kdf); err != nil {
		return err // before anything is made at the location
	}
	if err := notAURL(location); err != nil {
		return err // before the password is asked for, twice
	}
	pw, err := readPassword(c, e, true)
	if err != nil {
		return err
	}
	bo, err := backendOptionsFrom(c, e, u)
	if err != nil {
		return err
	}
	files, streams, err := chunkerParams(c, e, u, pw)
	if err != nil {
		return err
	}
	be, _, err := openBackend(c.Context, e, location, true, bo)
	if err != nil {
		return initReadOnly(err)
	}
	defer be.Close()
	r, err := repo.Init(c.Context, be, pw, kdf, files, repo.Options{Now: e.now, StreamChunker: streams, HugePages: hugePagesAllowed(e.getenv("GODEBUG"))})
	if err != nil {
		return initReadOnly(err)
	}
	// Said once the repository is made: a warning before an init that then
	// failed (a wrong password for --copy-chunker-params-from) read as if
	// it had gone on (found by an exploratory test).
	warnWeakKey(u, pw, kdf, "change it with 'snap key passwd'")
	// The repository is whole without its space reserve: one that does not
	// fit is a warning, and the next create tries again.
	if sr, ok := repo.As[repo.SpaceReserver](be); ok {
		if err := sr.FillReserve(c.Context, reserve); err != nil && c.Context.Err() == nil {
			u.warnf("%s; forget and prune may not run once the disk is full (the next create or prune tries again)", reserveFailure(sr, reserve, err))
		}
	}
	if u.json {
		return u.jsonDoc(map[string]any{"id": r.Config().ID, "location": be.Location()})
	}
	u.printf("created repository %s at %s", r.Config().ID[:8], be.Location())
	u.printf("keep the password safe: without it nothing in the repository can be read")
	return nil
}

// initReadOnly is err, with what to do when the location's file system is
// mounted read-only (the bare error said only that).
func initReadOnly(err error) error {
	if errors.Is(err, syscall.EROFS) {
		return fmt.Errorf("%w: choose a location on a file system mounted read-write, or remount this one read-write", err)
	}
	return err
}
