package main

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"

	"github.com/snap-backup/snap/index"
	"github.com/snap-backup/snap/repo"
	"github.com/snap-backup/snap/snapshot"
	"github.com/snap-backup/snap/sources"
)

func dumpCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:        "dump",
		Usage:       "write a file from a snapshot to standard output",
		ArgsUsage:   "SNAPSHOT PATH | --at TIME PATH",
		Description: "Writes the file at PATH to standard output, verified as it is read. A directory is written as\na tar archive.",
		Flags:       append(filterFlags(), atFlag()),
		Action: func(c *cli.Context) error {
			ref, rest, err := snapshotArgs(c, e)
			if err != nil {
				return err
			}
			if len(rest) != 1 {
				return usagef("usage: snap dump SNAPSHOT PATH, or snap dump --at TIME PATH")
			}
			return runDump(c, e, ref, rest[0])
		},
	}
}

func runDump(c *cli.Context, e *env, ref, p string) error {
	s, err := openSession(c, e, sharedLock)
	if err != nil {
		return err
	}
	defer s.close()
	var sn *snapshot.Snapshot
	var np string
	var node snapshot.Node
	// A dump, by its path or the names restore --db takes, that the
	// snapshot 'latest' or --at would choose lacks: the newest snapshot
	// (by then) that holds it, as for restore --db (another host's newer
	// snapshot of files, or a files-only one taken later, said "does not
	// exist"; found by exploratory tests).
	var held *snapshot.Snapshot
	var src snapshot.Source
	var hint string
	if at, ok := strings.CutPrefix(ref, "@"); ok && !strings.Contains(p, "/") {
		held, src, err = s.atDump(c, at, p)
	} else if ref == "latest" {
		held, src, hint, err = s.latestDump(c, p)
	}
	switch {
	case err != nil:
		return err
	case hint != "":
		return fmt.Errorf("%w: %s", snapshot.ErrNoSnapshot, hint)
	case held != nil:
		sn, np = held, src.Path
		if node, err = snapshot.FindNode(c.Context, s.ix, sn.Tree, np); err != nil {
			return inSnapshot(sn, err)
		}
	}
	if sn == nil {
		var err error
		sn, np, node, err = s.findPath(c, ref, p)
		if errors.Is(err, snapshot.ErrNoPath) && sn != nil && !strings.Contains(p, "/") {
			// A database dump by the names restore --db takes ('snap
			// dump 5d0e… app > app.sql'): "path /app does not exist"
			// (found by an exploratory test).
			switch m := dumpsNamed(sn.Sources, p); {
			case len(m) == 1:
				np = m[0].Path
				node, err = snapshot.FindNode(c.Context, s.ix, sn.Tree, np)
			case len(m) > 1:
				return ambiguousDump(sn, p, m)
			}
		}
		if err != nil {
			return err
		}
	}
	p = np
	switch node.Type {
	case sources.TypeFile:
		if err := s.readContent(c.Context, node, e.stdout); err != nil {
			return fmt.Errorf("dump %s: %w", p, err)
		}
		return nil
	case sources.TypeDir:
		if e.stdoutTTY {
			// A tar archive is binary: on a terminal it is garbage and
			// can leave the terminal in a strange state.
			return usagef("%s is a directory, which dump writes as a tar archive, and standard output is a terminal: "+
				"redirect it (> %s.tar) or pipe it (| tar -x), or list it with 'snap ls'", p, tarName(p))
		}
		return writeTar(c.Context, s.ix, p, node, e.stdout, func(path string) {
			s.ui.warnf("%s: a socket cannot be written to a tar archive; left out", path)
		})
	}
	return fmt.Errorf("%s is a %s, not a file or directory", p, node.Type)
}

// latestDump is 'latest' for 'snap dump latest P' when the newest snapshot
// under the filters has no path P and P names a dump (its path, or the
// names restore --db takes): the newest snapshot under the filters that
// holds that dump, with the dump, said in a notice. It returns no snapshot
// when the newest has P, or nothing holds such a dump (the caller goes on
// as for any path), and a hint instead when snapshots hold one but the
// filters select none of them.
func (s *session) latestDump(c *cli.Context, p string) (*snapshot.Snapshot, snapshot.Source, string, error) {
	sns, err := s.snapshots(c.Context)
	if err != nil {
		return nil, snapshot.Source{}, "", err
	}
	f := filterFrom(c)
	newest, err := snapshot.Find(sns, "latest", f)
	if err == nil {
		if _, err := snapshot.FindNode(c.Context, s.ix, newest.Tree, path.Clean("/"+p)); err == nil {
			return nil, snapshot.Source{}, "", nil
		}
	}
	held := holdingDumps(sns, []string{p}, "")
	if len(held) == 0 {
		return nil, snapshot.Source{}, "", nil
	}
	sn, err := snapshot.Find(held, "latest", f)
	if err != nil {
		return nil, snapshot.Source{}, heldElsewhere("a dump "+p, held), nil
	}
	src, ok, err := dumpIn(sn, p)
	if !ok {
		return nil, snapshot.Source{}, "", err // nil: not a dump after all, as for any path
	}
	if sn != newest {
		s.ui.choicef("latest: snapshot %s (%s, host %s), the newest that holds the dump %s", sn.ID.Short(), localTime(sn.Time), sn.Host, p)
	}
	return sn, src, "", nil
}

// atDump is the snapshot for 'snap dump --at TIME NAME' when NAME names a
// dump (the names restore --db takes) and no snapshot has a path /NAME:
// the newest snapshot taken by then that holds such a dump, with the dump.
// No snapshot when none holds one (the caller goes on as for any path).
func (s *session) atDump(c *cli.Context, at, name string) (*snapshot.Snapshot, snapshot.Source, error) {
	when, err := time.Parse(time.RFC3339Nano, at)
	if err != nil {
		return nil, snapshot.Source{}, nil // findPath says what is wrong with it
	}
	sns, err := s.snapshots(c.Context)
	if err != nil {
		return nil, snapshot.Source{}, err
	}
	held := holdingDumps(sns, []string{name}, "")
	if len(held) == 0 || len(holdingPath(sns, "/"+name)) > 0 {
		return nil, snapshot.Source{}, nil
	}
	sn, err := s.findAt(c, held, when)
	if err != nil {
		return nil, snapshot.Source{}, fmt.Errorf("%w (among the snapshots that hold the dump %s)", err, name)
	}
	src, ok, err := dumpIn(sn, name)
	if !ok {
		return nil, snapshot.Source{}, err
	}
	return sn, src, nil
}

// dumpIn is the dump of sn that name names (its path, or the names
// restore --db takes); ok false when none does, or, with an error, when
// several do: a PostgreSQL and a MariaDB database of one name, of which
// "path /app does not exist" said nothing (found by an exploratory test).
func dumpIn(sn *snapshot.Snapshot, name string) (src snapshot.Source, ok bool, err error) {
	if m := dumpsNamed(sn.Sources, name); len(m) > 1 {
		return snapshot.Source{}, false, ambiguousDump(sn, name, m)
	}
	src, err = findDumpSourceOfKind(sn, name, "")
	return src, err == nil, nil
}

// ambiguousDump is the error of a name that several dumps of sn bear: a
// mistake in the arguments (exit 2), with the paths to give instead.
func ambiguousDump(sn *snapshot.Snapshot, name string, dumps []snapshot.Source) error {
	var paths []string
	for _, d := range dumps {
		paths = append(paths, d.Path)
	}
	return usagef("%s names %d dumps in snapshot %s: give its path, one of %s", name, len(dumps), sn.ID.Short(), strings.Join(paths, ", "))
}

// readContent streams the file n's verified chunks to w: from a remote
// repository through a PackFetcher planned for them and for their deltas'
// bases, as restore fetches (packs mostly needed whole, ahead of need). A
// dump of 31 MiB read its chunks of tens of KiB and their bases one
// request each, one after the other: 57 s against restic's 2.5 s on a
// server 30 ms away (found by an exploratory test).
func (s *session) readContent(ctx context.Context, n snapshot.Node, w io.Writer) error {
	if !isRemote(s.location) {
		return writeContent(ctx, s.ix, n, w)
	}
	plan := index.NewPackPlan()
	for _, id := range n.Content {
		plan.Add(s.ix, id)
		plan.AddBases(s.ix, id)
	}
	f, err := s.ix.NewPackFetcher(ctx, s.cache, plan, index.FetchOptions{Ahead: s.connections})
	if err != nil {
		return err
	}
	defer f.Close()
	return writeContent(index.ReadBasesFrom(ctx, f), f, n, w)
}

// writeContent streams a file's verified chunks, read from blobs, to w.
func writeContent(ctx context.Context, blobs snapshot.BlobLoader, n snapshot.Node, w io.Writer) error {
	var buf []byte
	var total uint64
	for i, id := range n.Content {
		// A repeated chunk reads nothing that would notice a stop: a
		// file of one chunk listed 200,000 times went on past SIGTERM
		// (found by an exploratory test).
		if err := ctx.Err(); err != nil {
			return err
		}
		// A chunk that repeats the one before (a sparse file's holes:
		// 40,960 chunks of zeros in a 20 GiB image) is written again
		// from buf, verified when it was loaded: io.Writer may not change it.
		if i == 0 || id != n.Content[i-1] {
			var err error
			buf, err = blobs.LoadBlob(ctx, repo.DataBlob, id, buf[:0])
			if err != nil {
				return err
			}
		}
		if _, err := w.Write(buf); err != nil {
			return fmt.Errorf("write: %w", err)
		}
		total += uint64(len(buf))
	}
	if total != n.Size {
		return &repo.CorruptError{Object: "file " + n.Name, Reason: fmt.Sprintf("content adds up to %d bytes, the tree says %d", total, n.Size)}
	}
	return nil
}

// writeTar writes the subtree at p as a tar archive with paths relative to
// p: files, directories, symlinks, FIFOs and device nodes, hard links as
// links to the first of their group, and extended attributes as PAX
// records (SCHILY.xattr, which GNU tar reads with --xattrs; ACLs also as
// SCHILY.acl, which it reads with --acls). Sockets,
// which tar cannot hold, are left out and reported through skipped.
func writeTar(ctx context.Context, ix *index.Index, p string, node snapshot.Node, w io.Writer, skipped func(path string)) error {
	tw := tar.NewWriter(w)
	first := map[snapshot.LinkGroup]string{} // the first path of each hard link group
	err := snapshot.Walk(ctx, ix, p, node, func(np string, n *snapshot.Node) error {
		rel := strings.TrimPrefix(strings.TrimPrefix(np, p), "/")
		if rel == "" {
			return nil
		}
		hdr := &tar.Header{Name: rel, Mode: int64(n.Mode), Uid: int(n.UID), Gid: int(n.GID), Uname: n.User, Gname: n.Group,
			ModTime: time.Unix(0, n.MTime), Format: tar.FormatPAX}
		for _, x := range n.Xattrs {
			if hdr.PAXRecords == nil {
				hdr.PAXRecords = map[string]string{}
			}
			hdr.PAXRecords["SCHILY.xattr."+x.Name] = string(x.Value)
			// GNU tar sets ACLs from records of their own, in text
			// (with --acls), not from the xattr records.
			if rec, ok := aclRecords[x.Name]; ok {
				if text, ok := aclText(x.Value); ok {
					hdr.PAXRecords[rec] = text
				}
			}
		}
		switch n.Type {
		case sources.TypeFile:
			hdr.Typeflag, hdr.Size = tar.TypeReg, int64(n.Size)
		case sources.TypeDir:
			hdr.Typeflag, hdr.Name = tar.TypeDir, rel+"/"
		case sources.TypeSymlink:
			hdr.Typeflag, hdr.Linkname = tar.TypeSymlink, n.LinkTarget
		case sources.TypeFIFO:
			hdr.Typeflag = tar.TypeFifo
		case sources.TypeCharDev, sources.TypeDev:
			hdr.Typeflag = tar.TypeChar
			if n.Type == sources.TypeDev {
				hdr.Typeflag = tar.TypeBlock
			}
			hdr.Devmajor, hdr.Devminor = int64(unix.Major(n.Rdev)), int64(unix.Minor(n.Rdev))
		default:
			skipped(np)
			return nil
		}
		if n.Links > 1 && n.Type != sources.TypeDir {
			key := n.LinkGroup()
			if to, ok := first[key]; ok {
				hdr.Typeflag, hdr.Linkname, hdr.Size = tar.TypeLink, to, 0
			} else {
				first[key] = rel
			}
		}
		// Errors name the entry, as restore's do: the damaged file, or
		// the one a tar archive cannot hold (found by an exploratory
		// test: a bare "data blob … is corrupt", and the tar package's
		// words about a crafted tree's header, 20 KB of them).
		if err := tw.WriteHeader(hdr); err != nil {
			msg := err.Error()
			if len(msg) > 300 {
				msg = strings.ToValidUTF8(msg[:300], "") + "…"
			}
			return fmt.Errorf("dump %s: a tar archive cannot hold it (%s)", np, msg)
		}
		if hdr.Typeflag == tar.TypeReg {
			if err := writeContent(ctx, ix, *n, tw); err != nil {
				return fmt.Errorf("dump %s: %w", np, err)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	return tw.Close()
}

// aclRecords are the PAX records GNU tar (and star) keep POSIX ACLs in, by
// the extended attribute Linux keeps them in.
var aclRecords = map[string]string{
	"system.posix_acl_access":  "SCHILY.acl.access",
	"system.posix_acl_default": "SCHILY.acl.default",
}

// aclText turns a POSIX ACL as Linux stores it in an extended attribute
// (version 2, then 8-byte entries: tag, permissions, ID) into the text
// form with numeric IDs that tar --acls reads ("user::rw-,user:1000:r--,
// group::r--,mask::r--,other::---"). The bytes come from the repository:
// anything that is not such an ACL gives false, and no record.
func aclText(b []byte) (string, bool) {
	entries, ok := sources.ParseACL(b)
	if !ok || len(entries) == 0 {
		return "", false
	}
	var parts []string
	for _, e := range entries {
		rwx := []byte("---")
		for i, c := range "rwx" {
			if e.Perm&(4>>i) != 0 {
				rwx[i] = byte(c)
			}
		}
		var who string
		switch e.Tag {
		case sources.ACLUserObj:
			who = "user:"
		case sources.ACLUser:
			who = "user:" + strconv.FormatUint(uint64(e.ID), 10)
		case sources.ACLGroupObj:
			who = "group:"
		case sources.ACLGroup:
			who = "group:" + strconv.FormatUint(uint64(e.ID), 10)
		case sources.ACLMask:
			who = "mask:"
		case sources.ACLOther:
			who = "other:"
		}
		parts = append(parts, who+":"+string(rwx))
	}
	return strings.Join(parts, ","), true
}

// tarName is a file name for the tar archive of directory p.
func tarName(p string) string {
	if b := path.Base(p); b != "/" && b != "." {
		return b
	}
	return "snapshot"
}
