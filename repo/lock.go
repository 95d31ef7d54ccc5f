package repo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"
	"time"
)

// Lock timing. A holder rewrites its lock every LockRefreshInterval; a lock
// older than LockStaleAge has lost its holder.
const (
	LockRefreshInterval = 5 * time.Minute
	LockStaleAge        = 30 * time.Minute
)

// LockInfo is the content of a lock file.
type LockInfo struct {
	Time      time.Time `json:"time"`
	Exclusive bool      `json:"exclusive"`
	Host      string    `json:"host"`
	Username  string    `json:"username,omitempty"`
	PID       int       `json:"pid"`
	Command   string    `json:"command,omitempty"`
}

// LockEntry is a lock found in the repository.
type LockEntry struct {
	Name  string
	Info  LockInfo
	Stale bool
	// Err is set when the lock file could not be read or decoded; such a
	// lock is treated as held (not stale) unless it is older than the
	// stale age by its file name's listing.
	Err error
}

// stale reports whether the lock's holder is gone: not refreshed for
// LockStaleAge, or on this host with a process that no longer exists.
func (r *Repository) stale(li LockInfo) bool {
	if r.opts.Now().Sub(li.Time) > LockStaleAge {
		return true
	}
	if li.Host == r.opts.Host && li.PID > 0 {
		err := syscall.Kill(li.PID, 0)
		return errors.Is(err, syscall.ESRCH)
	}
	return false
}

// ListLocks reads every lock file.
func (r *Repository) ListLocks(ctx context.Context) ([]LockEntry, error) {
	ids, err := r.ListIDs(ctx, LockFile)
	if err != nil {
		return nil, err
	}
	var out []LockEntry
	for _, id := range ids {
		e := LockEntry{Name: id.String()}
		plain, err := r.LoadObject(ctx, LockFile, id)
		if errors.Is(err, ErrNotFound) {
			continue // released meanwhile
		}
		if err == nil {
			err = json.Unmarshal(plain, &e.Info)
		}
		if err != nil {
			e.Err = err
		} else {
			e.Stale = r.stale(e.Info)
		}
		out = append(out, e)
	}
	return out, nil
}

// RemoveLock deletes one lock file.
func (r *Repository) RemoveLock(ctx context.Context, name string) error {
	return r.be.Remove(ctx, Handle{Type: LockFile, Name: name})
}

// Lock is a held repository lock, refreshed in the background until
// Unlock.
type Lock struct {
	r    *Repository
	info LockInfo
	mu   sync.Mutex // guards name
	name string
	stop chan struct{}
	done chan struct{}
}

// LockOptions tune Lock.
type LockOptions struct {
	Exclusive bool
	Command   string
	// OnStale is told about each stale lock that is removed to take over.
	OnStale func(LockEntry)
}

// Lock takes a shared or exclusive lock. It writes its lock file first and
// then looks for conflicting ones, so two processes racing for conflicting
// locks cannot both win. Stale conflicting locks are removed (and reported
// through OnStale); a live conflicting lock gives a *LockedError.
func (r *Repository) Lock(ctx context.Context, o LockOptions) (*Lock, error) {
	l := &Lock{r: r, info: LockInfo{Time: r.opts.Now(), Exclusive: o.Exclusive, Host: r.opts.Host, Username: username(), PID: os.Getpid(), Command: o.Command}}
	if err := l.write(ctx); err != nil {
		return nil, fmt.Errorf("write lock: %w", err)
	}
	locks, err := r.ListLocks(ctx)
	if err != nil {
		_ = l.remove(context.Background())
		return nil, err
	}
	for _, e := range locks {
		if e.Name == l.name {
			continue
		}
		conflict := o.Exclusive || e.Info.Exclusive || e.Err != nil
		if !conflict {
			continue
		}
		if e.Err == nil && e.Stale {
			if err := r.RemoveLock(ctx, e.Name); err != nil && !errors.Is(err, ErrNotFound) {
				_ = l.remove(context.Background())
				return nil, fmt.Errorf("remove stale lock %s: %w", e.Name, err)
			}
			if o.OnStale != nil {
				o.OnStale(e)
			}
			continue
		}
		if e.Err != nil && !o.Exclusive {
			continue // an unreadable lock only blocks exclusive lockers
		}
		_ = l.remove(context.Background())
		if e.Err != nil {
			return nil, fmt.Errorf("lock %s cannot be read (%v): %w; run 'snap unlock --all' if no other snap is running", e.Name, e.Err, ErrLocked)
		}
		return nil, &LockedError{Holder: e.Info, Name: e.Name}
	}
	l.stop, l.done = make(chan struct{}), make(chan struct{})
	go l.refreshLoop()
	return l, nil
}

func (l *Lock) write(ctx context.Context) error {
	plain, err := json.Marshal(l.info)
	if err != nil {
		return err
	}
	id, err := l.r.SaveObject(ctx, LockFile, plain)
	if err != nil {
		return err
	}
	l.mu.Lock()
	l.name = id.String()
	l.mu.Unlock()
	return nil
}

func (l *Lock) remove(ctx context.Context) error {
	l.mu.Lock()
	name := l.name
	l.mu.Unlock()
	err := l.r.RemoveLock(ctx, name)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	return err
}

// refreshLoop rewrites the lock with a new time: new file first, then the
// old one is removed, so the lock is never absent.
func (l *Lock) refreshLoop() {
	defer close(l.done)
	t := time.NewTicker(LockRefreshInterval)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
			l.refresh()
		}
	}
}

func (l *Lock) refresh() {
	ctx, cancel := context.WithTimeout(context.Background(), LockRefreshInterval)
	defer cancel()
	l.mu.Lock()
	old := l.name
	l.mu.Unlock()
	l.info.Time = l.r.opts.Now()
	if err := l.write(ctx); err != nil {
		return // the old lock stays; the next tick tries again
	}
	_ = l.r.RemoveLock(ctx, old)
}

// Info returns what the lock file says.
func (l *Lock) Info() LockInfo { return l.info }

// Unlock stops refreshing and removes the lock file.
func (l *Lock) Unlock() error {
	if l == nil {
		return nil
	}
	close(l.stop)
	<-l.done
	return l.remove(context.Background())
}
