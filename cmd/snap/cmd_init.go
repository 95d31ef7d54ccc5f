package main

import (
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/snap-backup/snap/chunk"
	"github.com/snap-backup/snap/repo"
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

func runInit(c *cli.Context, e *env, location string, kdf repo.KDFParams, reserve int64) error {
	u := newUI(c, e)
	if location == "" {
		return usagef("no repository given: use --repo or set SNAP_REPOSITORY")
	}
	pw, err := readPassword(c, e, true)
	if err != nil {
		return err
	}
	bo, err := backendOptionsFrom(c, e, u)
	if err != nil {
		return err
	}
	be, _, err := openBackend(c.Context, e, location, true, bo)
	if err != nil {
		return err
	}
	defer be.Close()
	params, err := chunk.NewParams()
	if err != nil {
		return err
	}
	sp := params.StreamParams()
	streams := &repo.ChunkerParams{Polynomial: sp.Polynomial, MinSize: sp.MinSize, MaxSize: sp.MaxSize, AverageBits: sp.AverageBits}
	r, err := repo.Init(c.Context, be, pw, kdf, repo.ChunkerParams{Polynomial: params.Polynomial, MinSize: params.MinSize, MaxSize: params.MaxSize, AverageBits: params.AverageBits},
		repo.Options{Now: e.now, StreamChunker: streams, HugePages: hugePagesAllowed(e.getenv("GODEBUG"))})
	if err != nil {
		return err
	}
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
