package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/urfave/cli/v2"

	"github.com/snap-backup/snap/index"
	"github.com/snap-backup/snap/repo"
	"github.com/snap-backup/snap/snapshot"
)

// session is an open repository with its index and local cache, and the
// lock the command holds.
type session struct {
	r      *repo.Repository
	ix     *index.Index
	loader *snapshot.Loader
	lock   *repo.Lock
	cache  string
	ui     *ui
	// connections is the limit on requests in flight (0: none); uploads
	// and restores size their parallelism by it.
	connections int
	// unreadable are the snapshots the last listing could not read.
	unreadable []error
}

// lockMode says which lock a command takes.
type lockMode int

const (
	noLock lockMode = iota
	sharedLock
	exclusiveLock
	pruneLock // excludes other prunes and exclusive locks, not shared ones
)

// openSession opens the repository named by the flags, takes the lock and
// opens the index (synced with the repository).
func openSession(c *cli.Context, e *env, mode lockMode) (*session, error) {
	return openSessionIndex(c, e, mode, index.Options{})
}

// openSessionIndex is openSession with index options (repair opens the
// index without syncing it).
func openSessionIndex(c *cli.Context, e *env, mode lockMode, io index.Options) (*session, error) {
	return openSessionWith(c, e, mode, &io)
}

// openSessionWith opens the index with io, or leaves it closed when io is
// nil (check reads the index segments itself, so that it can report a
// damaged one instead of failing to open).
func openSessionWith(c *cli.Context, e *env, mode lockMode, io *index.Options) (*session, error) {
	return openSessionAt(c, e, newUI(c, e), mode, gstring(c, "repo"), func() (string, error) { return readPassword(c, e, false) }, io)
}

// openSessionAt opens a session on the repository at location (copy opens
// a second one, its target), with the index as openSessionWith does.
func openSessionAt(c *cli.Context, e *env, u *ui, mode lockMode, location string, password func() (string, error), io *index.Options) (*session, error) {
	ctx := c.Context
	r, conns, err := openRepositoryWith(c, e, u, location, password)
	if err != nil {
		return nil, err
	}
	s := &session{r: r, ui: u, connections: conns}
	s.cache = repoCacheDir(c, e, r)
	if mode != noLock {
		s.lock, err = r.Lock(ctx, repo.LockOptions{Exclusive: mode == exclusiveLock, Prune: mode == pruneLock, Command: c.Command.FullName(),
			OnStale: func(l repo.LockEntry) {
				u.warnf("removed stale lock of pid %d on %s from %s", l.Info.PID, l.Info.Host, l.Info.Time.Local().Format("2006-01-02 15:04:05"))
			}})
		if err != nil {
			r.Close()
			return nil, err
		}
	}
	if io != nil {
		io.Log = func(m string) { u.warnf("%s", m) }
		io.CacheTreePacks = isRemote(location)
		s.ix, err = index.Open(ctx, r, s.cache, *io)
		if err != nil {
			s.close()
			return nil, err
		}
	}
	s.loader = snapshot.NewLoader(r, filepath.Join(s.cache, "snapshots"))
	return s, nil
}

// openRepository opens the repository at location with the password from
// the flags. It also returns the connection limit in force (0: none).
func openRepository(c *cli.Context, e *env, u *ui, location string) (*repo.Repository, int, error) {
	return openRepositoryWith(c, e, u, location, func() (string, error) { return readPassword(c, e, false) })
}

// openRepositoryWith opens the backend first (so that a wrong location is
// reported before a password is asked for), then the repository.
func openRepositoryWith(c *cli.Context, e *env, u *ui, location string, password func() (string, error)) (*repo.Repository, int, error) {
	bo, err := backendOptionsFrom(c, e, u)
	if err != nil {
		return nil, 0, err
	}
	be, conns, err := openBackend(c.Context, e, location, false, bo)
	if err != nil {
		return nil, 0, err
	}
	pw, err := password()
	if err != nil {
		be.Close()
		return nil, 0, err
	}
	r, err := repo.Open(c.Context, be, pw, repo.Options{Now: e.now})
	if err != nil {
		be.Close()
		return nil, 0, err
	}
	return r, conns, nil
}

func (s *session) close() {
	if s.ix != nil {
		s.ix.Close()
	}
	if s.lock != nil {
		if err := s.lock.Unlock(); err != nil {
			s.ui.warnf("release lock: %v", err)
		}
	}
	s.r.Close()
}

// repoCacheDir is --cache-dir, else $XDG_CACHE_HOME/snap, else
// ~/.cache/snap, followed by the repository ID.
func repoCacheDir(c *cli.Context, e *env, r *repo.Repository) string {
	return filepath.Join(cacheBase(c, e), r.Config().ID)
}

func cacheBase(c *cli.Context, e *env) string {
	if d := gstring(c, "cache-dir"); d != "" {
		return d
	}
	if d := e.getenv("XDG_CACHE_HOME"); d != "" {
		return filepath.Join(d, "snap")
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".cache", "snap")
	}
	return filepath.Join(os.TempDir(), fmt.Sprintf("snap-cache-%d", os.Getuid()))
}

// snapshots lists every snapshot, warning about unreadable ones.
func (s *session) snapshots(ctx context.Context) ([]*snapshot.Snapshot, error) {
	sns, errs, err := s.loader.List(ctx)
	s.unreadable = errs
	for _, e := range errs {
		s.ui.warnf("%v", e)
	}
	return sns, err
}
