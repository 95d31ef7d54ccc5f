package repo

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
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
	Time      time.Time `json:"time"` // when the lock was last written (taken or refreshed)
	Exclusive bool      `json:"exclusive"`
	Host      string    `json:"host"`
	Username  string    `json:"username,omitempty"`
	PID       int       `json:"pid"`
	// PIDNamespace is the holder's PID namespace (Options.PIDNamespace):
	// a process on the same host in another namespace (a container that
	// shares the host's name) has PIDs that mean nothing here. Empty in
	// locks written before the field existed.
	PIDNamespace string `json:"pid_namespace,omitempty"`
	// MachineID and BootID are the holder's machine and boot
	// (Options.MachineID, Options.BootID): another machine under the same
	// host name is judged by age alone, and a lock of this machine's
	// earlier boot is stale. Empty in locks written before the fields
	// existed, or where the system does not have them.
	MachineID string `json:"machine_id,omitempty"`
	BootID    string `json:"boot_id,omitempty"`
	// PIDStart is when the holder started, in clock ticks after its boot
	// (field 22 of /proc/PID/stat): a process that has the PID now but
	// another start is not the holder. Zero in locks written before the
	// field existed, or where /proc cannot be read.
	PIDStart uint64 `json:"pid_start,omitempty"`
	Command  string `json:"command,omitempty"`

	// Created is when the holder took the lock; refreshes keep it. Prune
	// compares it with the time it marked packs (docs/design.md). Zero in
	// locks written before the field existed.
	Created time.Time `json:"created,omitzero"`
	// Prune marks the lock of a prune run: it coexists with shared locks
	// and excludes other prune and exclusive locks.
	Prune bool `json:"prune,omitempty"`
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
// LockStaleAge; or, on this host: taken on this machine and last written
// before its current boot began; or in this PID namespace by a process that
// no longer exists. A lock of another machine under this host name, or of
// another PID namespace, is judged by its age alone. What a lock does not
// record (locks of older versions, systems without a machine ID) is not
// held against it: such a lock is judged by its host name and PID, as
// before the fields existed.
func (r *Repository) stale(li LockInfo) bool {
	if r.opts.Now().Sub(li.Time) > LockStaleAge {
		return true
	}
	if r.judgedByAge(li) {
		return false
	}
	if r.sameMachine(li) == machineEarlierBoot {
		return true
	}
	if li.PID > 0 {
		err := syscall.Kill(li.PID, 0)
		return errors.Is(err, syscall.ESRCH) || zombie(li.PID) || pidReused(li)
	}
	return false
}

// pidReused reports whether the process that has the lock's PID now
// started at another time than the holder: a snap killed with kill -9 left
// its lock, and a process started later with the same PID kept it "live",
// which 'snap unlock' then kept too (found by an exploratory test). A lock
// or a process whose start is unknown is not judged by it.
func pidReused(li LockInfo) bool {
	if li.PIDStart == 0 {
		return false
	}
	start := processStart(li.PID)
	return start != 0 && start != li.PIDStart
}

// processStart returns when process pid started, in clock ticks after
// boot, or 0 when /proc does not tell.
func processStart(pid int) uint64 {
	// starttime is field 22, the 20th from the state on.
	f := procStat(pid)
	if len(f) < 20 {
		return 0
	}
	n, err := strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		return 0
	}
	return n
}

// zombie reports whether process pid has exited and waits to be reaped:
// signal 0 still finds it, but it holds nothing. A snap killed by
// 'timeout -s KILL' stays one until its new parent reaps it, for ever
// where PID 1 reaps nothing (some containers); its locks are stale.
func zombie(pid int) bool {
	f := procStat(pid)
	return len(f) > 0 && f[0] == "Z"
}

// procStat returns the fields of /proc/PID/stat after the command's name,
// from the state (field 3) on, or nil when it cannot be read.
func procStat(pid int) []string {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil
	}
	// pid (comm) state …: comm may hold spaces and parentheses; the
	// state follows the last ')'.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return nil
	}
	return strings.Fields(string(stat[i+1:]))
}

// judgedByAge reports whether a lock's holder cannot be looked for from
// here: another host, another machine under this host name, another PID
// namespace. Such a lock becomes stale only by its age.
func (r *Repository) judgedByAge(li LockInfo) bool {
	return li.Host != r.opts.Host || r.sameMachine(li) == machineOther ||
		li.PIDNamespace != "" && li.PIDNamespace != r.opts.PIDNamespace
}

// OtherMachine reports whether the lock was taken on another machine that
// has this one's host name, as far as the two machine IDs tell.
func (r *Repository) OtherMachine(li LockInfo) bool {
	return li.Host == r.opts.Host && r.sameMachine(li) == machineOther
}

// machineMatch is what a lock's machine and boot IDs say about its holder.
type machineMatch int

const (
	machineUnknown     machineMatch = iota // a side does not record them: judge by PID
	machineThisBoot                        // this machine, and not provably an earlier boot
	machineOther                           // another machine under the same host name
	machineEarlierBoot                     // this machine, last written before this boot began
)

// sameMachine compares the lock's machine and boot with this process's.
// The boot ID is the kernel's and so shared by this machine's containers;
// it is trusted only between locks of one machine ID, and only for a lock
// last written before this boot began.
func (r *Repository) sameMachine(li LockInfo) machineMatch {
	if li.MachineID == "" || r.opts.MachineID == "" {
		return machineUnknown
	}
	if li.MachineID != r.opts.MachineID {
		return machineOther
	}
	if li.BootID == "" || r.opts.BootID == "" {
		return machineUnknown
	}
	// Another boot, and written before this one began: were the machine
	// ID shared (cloned machines), a live holder elsewhere would have
	// written its lock since.
	if li.BootID != r.opts.BootID && !r.opts.BootTime.IsZero() && li.Time.Before(r.opts.BootTime) {
		return machineEarlierBoot
	}
	return machineThisBoot
}

// Conflicts reports whether a lock of kind li cannot be held while a lock
// of kind other is: exclusive conflicts with everything, prune with prune,
// shared with nothing but exclusive.
func (li LockInfo) Conflicts(other LockInfo) bool {
	return li.Exclusive || other.Exclusive || (li.Prune && other.Prune)
}

// SameHolder reports whether li and other are locks of one process: a
// refresh writes a new lock file with the same host, pid and start (and
// namespace and machine).
func (li LockInfo) SameHolder(other LockInfo) bool {
	return li.Host == other.Host && li.PID == other.PID && li.PIDNamespace == other.PIDNamespace &&
		li.MachineID == other.MachineID && li.PIDStart == other.PIDStart && li.Created.Equal(other.Created)
}

// Kind names the lock's kind for messages: "shared", "prune" or
// "exclusive".
func (li LockInfo) Kind() string {
	switch {
	case li.Exclusive:
		return "exclusive"
	case li.Prune:
		return "prune"
	}
	return "shared"
}

// Since is when the holder took the lock (its last refresh for locks that
// do not record it).
func (li LockInfo) Since() time.Time {
	if li.Created.IsZero() {
		return li.Time
	}
	return li.Created
}

// FutureDated reports whether the lock was last written more than a few
// minutes ahead of this machine's clock: its holder's clock is ahead, or
// the lock is damaged or crafted. Its age cannot make it stale for as long
// (a lock dated 9999 never would), and the advice to wait 30 minutes is
// wrong (found by an exploratory test).
func (r *Repository) FutureDated(li LockInfo) bool {
	return li.Time.Sub(r.opts.Now()) > 5*time.Minute
}

// StaleRemoved is the line every command gives for a stale lock it
// removed: whose it was and when it was last written.
func (li LockInfo) StaleRemoved() string {
	return fmt.Sprintf("removed stale lock of pid %d on %s from %s", li.PID, li.Host, li.Time.Local().Format("2006-01-02 15:04:05"))
}

// lockListAttempts bounds how often ListLocks lists again because a lock
// file went away while the files were read.
const lockListAttempts = 5

// ListLocks reads every lock file. A lock that goes away between the
// listing and its read was released, or refreshed: a refresh writes the
// holder's new lock file before it removes the old one, so the new one
// was missing from the listing. Skipping the gone one would lose a live
// holder (and let a prune delete the packs of a running create), so the
// listing starts over; if locks keep changing, that is an error.
func (r *Repository) ListLocks(ctx context.Context) ([]LockEntry, error) {
	for range lockListAttempts {
		out, gone, err := r.listLocksOnce(ctx)
		if err != nil || !gone {
			return out, err
		}
	}
	return nil, fmt.Errorf("lock files kept changing while they were read (%d attempts); try again", lockListAttempts)
}

// listLocksOnce reads every lock file listed; gone reports that one went
// away before it was read.
func (r *Repository) listLocksOnce(ctx context.Context) (out []LockEntry, gone bool, err error) {
	ids, err := r.ListIDs(ctx, LockFile)
	if err != nil {
		return nil, false, err
	}
	for _, id := range ids {
		e := LockEntry{Name: id.String()}
		plain, err := r.LoadObject(ctx, LockFile, id)
		if errors.Is(err, ErrNotFound) {
			gone = true // released or refreshed meanwhile: list again
			continue
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
	return out, gone, nil
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
	mu   sync.Mutex // guards name, bug, lost and writtenAt
	// moving is held (a token in it) by a refresh while the lock moves
	// from its file to a new one, and by Verify while it checks the file.
	// A channel, so that Verify waits no longer than its context: a
	// refresh on a store that stopped answering holds it for minutes.
	moving chan struct{}
	name   string
	// writtenAt is when the lock file was last written: taken, or
	// refreshed with success (WrittenAt).
	writtenAt time.Time
	// bug is the first panic of a refresh (see refreshLoop).
	bug error
	// lost says that the lock file was found removed by another process
	// (which took it for stale, or 'snap unlock --all'): a refresh must
	// not put it back, and Verify fails from then on.
	lost error
	// ctx ends when Unlock is called (halt): the refresh loop stops, and a
	// refresh under way, waiting on a server that stopped answering, does
	// not hold the exit. done is closed when the loop has returned.
	ctx  context.Context
	halt context.CancelFunc
	done chan struct{}
	// halted: a refresh failed or was cut short by Unlock, and may have left a lock
	// file of ours that l.name does not name (guarded by mu).
	halted bool
}

// unlockTimeout bounds the removal of a lock file when its holder ends: a
// lock that cannot be removed in time (the server is gone) is left to go
// stale, which on this host is at once (its process no longer exists) and
// elsewhere after LockStaleAge.
const unlockTimeout = 20 * time.Second

// LockOptions tune Lock.
type LockOptions struct {
	Exclusive bool
	Command   string
	// Prune takes a prune lock (ignored with Exclusive): shared locks may
	// be held alongside it, other prune and exclusive locks may not.
	Prune bool
	// OnStale is told about each stale lock that is removed to take over.
	OnStale func(LockEntry)
}

// Lock takes a shared or exclusive lock. It writes its lock file first and
// then looks for conflicting ones, so two processes racing for conflicting
// locks cannot both win. Stale conflicting locks are removed (and reported
// through OnStale), and so are stale locks of processes of this machine
// that conflict with none; a live conflicting lock gives a *LockedError.
func (r *Repository) Lock(ctx context.Context, o LockOptions) (*Lock, error) {
	now := r.opts.Now()
	l := &Lock{r: r, info: LockInfo{Time: now, Created: now, Exclusive: o.Exclusive, Prune: o.Prune && !o.Exclusive, Host: r.opts.Host,
		Username: username(), PID: os.Getpid(), PIDStart: processStart(os.Getpid()), PIDNamespace: r.opts.PIDNamespace,
		MachineID: r.opts.MachineID, BootID: r.opts.BootID, Command: o.Command}, writtenAt: now, moving: make(chan struct{}, 1)}
	name, err := l.write(ctx)
	if err != nil {
		return nil, fmt.Errorf("write lock: %w", err)
	}
	l.name = name
	for attempt := 1; ; attempt++ {
		again, err := l.takeOver(ctx, o)
		if err != nil {
			_ = l.remove(context.Background())
			return nil, err
		}
		if !again {
			break
		}
		if attempt == lockListAttempts {
			_ = l.remove(context.Background())
			return nil, fmt.Errorf("lock files kept changing while stale ones were removed (%d attempts); try again", lockListAttempts)
		}
	}
	l.done = make(chan struct{})
	l.ctx, l.halt = context.WithCancel(context.Background())
	go l.refreshLoop()
	return l, nil
}

// takeOver lists the locks once the new lock's file is written, removes
// the stale ones that conflict with it (and this machine's stale ones that
// conflict with none), and fails on a live conflicting one. again: a stale
// conflicting lock was removed (or gone when it was to be removed), and
// the locks must be listed again: its holder, taken for dead, may be alive
// after all and have refreshed it, its new lock file missing from the
// listing (a refresh writes the new file, then removes the old one).
// Taken for gone, the holder was overlooked, and a prune --instant deleted
// the packs of a create that then saved its snapshot (found by a review,
// reproduced with the window held open).
func (l *Lock) takeOver(ctx context.Context, o LockOptions) (again bool, err error) {
	r := l.r
	locks, err := r.ListLocks(ctx)
	if err != nil {
		return false, err
	}
	for _, e := range locks {
		if e.Name == l.name {
			continue
		}
		conflict := l.info.Conflicts(e.Info) || e.Err != nil
		if !conflict {
			// A stale lock of a process of this machine that is gone
			// (a create killed with kill -9) is removed too: each left
			// its shared lock until a prune came, 29 after a night of
			// crashes (found by an exploratory test). Not one judged by
			// its age alone (another host, whose clock may be wrong):
			// it blocks nothing here, and is left to a command it does.
			if e.Err == nil && e.Stale && !r.judgedByAge(e.Info) {
				if err := r.RemoveLock(ctx, e.Name); err == nil && o.OnStale != nil {
					o.OnStale(e)
				}
			}
			continue
		}
		if e.Err == nil && e.Stale {
			// Listed again after the removal, whatever it said: S3
			// answers the removal of an object that is gone as that of
			// one that is there, so a holder that refreshed in between
			// (its new file written before it removed the old one) is
			// seen only in a new listing (found by a review).
			again = true
			err := r.RemoveLock(ctx, e.Name)
			if errors.Is(err, ErrNotFound) {
				continue
			}
			if err != nil {
				return false, fmt.Errorf("remove stale lock %s: %w", e.Name, err)
			}
			if o.OnStale != nil {
				o.OnStale(e)
			}
			continue
		}
		if e.Err != nil && !o.Exclusive {
			continue // an unreadable lock only blocks exclusive lockers
		}
		if e.Err != nil {
			return false, fmt.Errorf("lock %s cannot be read (%v): %w; run 'snap unlock --all' if no other snap is running", e.Name, e.Err, ErrLocked)
		}
		return false, &LockedError{Holder: e.Info, Name: e.Name, AgeOnly: r.judgedByAge(e.Info), Future: r.FutureDated(e.Info)}
	}
	return again, nil
}

// write stores what l.info says in a new lock file and returns its name;
// the caller makes it the lock's (Lock at once, a refresh once the old
// file is removed).
func (l *Lock) write(ctx context.Context) (string, error) {
	plain, err := json.Marshal(l.info)
	if err != nil {
		return "", err
	}
	id, err := l.r.SaveObject(ctx, LockFile, plain)
	if err != nil {
		return "", err
	}
	return id.String(), nil
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
		case <-l.ctx.Done():
			return
		case <-t.C:
			l.refreshSafely()
		}
	}
}

// refreshSafely refreshes the lock. A panic in the refresh (a bug) counts
// as a failed refresh: the old lock stays and the next tick tries again.
// The first one is kept for Verify and Unlock to report.
func (l *Lock) refreshSafely() {
	if err := Catch(func() error { l.refresh(); return nil }); err != nil {
		l.mu.Lock()
		if l.bug == nil {
			l.bug = fmt.Errorf("refresh lock: %w", err)
		}
		l.mu.Unlock()
	}
}

func (l *Lock) refresh() {
	// Verify waits while the lock moves from one file to the next: it
	// checks the file that holds the lock at that moment.
	l.moving <- struct{}{}
	defer func() { <-l.moving }()
	ctx, cancel := context.WithTimeout(l.ctx, LockRefreshInterval)
	defer cancel()
	l.mu.Lock()
	old, lost := l.name, l.lost
	l.mu.Unlock()
	if lost != nil {
		return
	}
	// A lock removed by another process is lost, not to be refreshed:
	// written anew, it hid the loss from Verify, and a create that a
	// prune had taken for dead saved a snapshot of packs the prune had
	// deleted, exit 0 (found by an exploratory test).
	if _, err := l.r.be.Stat(ctx, Handle{Type: LockFile, Name: old}); errors.Is(err, ErrNotFound) {
		l.markLost(old)
		return
	}
	l.info.Time = l.r.opts.Now()
	name, err := l.write(ctx)
	if err != nil {
		// Cut short by Unlock, or failed for want of an answer: the
		// server may have stored it all the same, and Unlock looks for
		// it (it stayed behind for 30 minutes; found by a review).
		l.mu.Lock()
		l.halted = true
		l.mu.Unlock()
		return // the old lock stays; the next tick tries again
	}
	// The new file takes over only once the old one is removed by us:
	// removed by another process first, the lock was lost, and the new
	// file must not stand in for it. Verify checked the new file as soon
	// as it was written, so a create wrote an index segment, confirmed,
	// after a prune had removed the old file and before this removal
	// found it gone (found by a review). The old file goes even if
	// Unlock is waiting: it must not stay behind as a live lock of ours.
	rctx, rcancel := context.WithTimeout(context.Background(), unlockTimeout)
	defer rcancel()
	if err := l.r.RemoveLock(rctx, old); err != nil {
		// Gone (lost), or no answer: the old file stays the lock's (Verify
		// tells which), and the new one goes.
		if rerr := l.r.RemoveLock(rctx, name); rerr != nil && !errors.Is(rerr, ErrNotFound) {
			l.mu.Lock()
			l.halted = true // Unlock removes it
			l.mu.Unlock()
		}
		if errors.Is(err, ErrNotFound) {
			l.markLost(old)
		}
		return
	}
	l.mu.Lock()
	l.name = name
	l.writtenAt = l.info.Time
	l.mu.Unlock()
}

// markLost records that the lock file name was removed by another process,
// and returns the error Verify gives from then on.
func (l *Lock) markLost(name string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.lost == nil {
		l.lost = &lockLostError{fmt.Sprintf("our %s lock %s was removed by another process, which took it for stale; stopped before changing the repository further (run the command again)", l.info.Kind(), shortName(name))}
	}
	return l.lost
}

// ErrLockLost is what Verify's error is (errors.Is) when the lock file is
// known to be gone: removed by another process. Any other error of Verify
// says nothing about the lock (the repository did not answer), and must
// not be taken for its loss: a failed run took back its index segments on
// every outage, which a process that read them may rely on (found by an
// exploratory test).
var ErrLockLost = errors.New("lock removed by another process")

type lockLostError struct{ msg string }

func (e *lockLostError) Error() string        { return e.msg }
func (e *lockLostError) Is(target error) bool { return target == ErrLockLost }

// Verify checks that the lock file is still in the repository: someone may
// have removed it ('snap unlock --all', or another process that found it
// stale because refreshing failed). A holder about to delete data calls it
// first and stops when the lock is gone.
func (l *Lock) Verify(ctx context.Context) error {
	select {
	case l.moving <- struct{}{}:
		defer func() { <-l.moving }()
	case <-ctx.Done():
		return fmt.Errorf("check lock: %w", ctx.Err())
	}
	l.mu.Lock()
	name, bug, lost := l.name, l.bug, l.lost
	l.mu.Unlock()
	if bug != nil {
		return bug
	}
	if lost != nil {
		return lost
	}
	if _, err := l.r.be.Stat(ctx, Handle{Type: LockFile, Name: name}); err != nil {
		if errors.Is(err, ErrNotFound) {
			return l.markLost(name)
		}
		return fmt.Errorf("check lock: %w", err)
	}
	return nil
}

// WrittenAt returns when the lock file was last written with success
// (taken or refreshed), by the repository's clock (Options.Now). Another
// process takes it for stale LockStaleAge after that.
func (l *Lock) WrittenAt() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.writtenAt
}

// Name returns the lock file's current name (it changes when the lock is
// refreshed).
func (l *Lock) Name() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.name
}

// Info returns what the lock file says.
func (l *Lock) Info() LockInfo { return l.info }

// Unlock stops refreshing and removes the lock file. It also returns the
// panic of a refresh, if one happened.
func (l *Lock) Unlock() error {
	if l == nil {
		return nil
	}
	l.halt()
	<-l.done
	ctx, cancel := context.WithTimeout(context.Background(), unlockTimeout)
	defer cancel()
	err := l.remove(ctx)
	l.mu.Lock()
	halted := l.halted
	l.mu.Unlock()
	if halted && err == nil {
		// A lock file a cut-short refresh may have stored: ours by host,
		// process and start.
		if locks, lerr := l.r.ListLocks(ctx); lerr == nil {
			for _, e := range locks {
				if e.Err == nil && e.Info.SameHolder(l.info) {
					_ = l.r.RemoveLock(ctx, e.Name)
				}
			}
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return errors.Join(err, l.bug)
}
