package repo

import (
	"errors"
	"fmt"
	"runtime/debug"
	"syscall"
	"time"
)

// Sentinel errors. Callers test them with errors.Is; the command line maps
// them to exit codes.
var (
	// ErrNotFound: the backend has no file with that handle.
	ErrNotFound = errors.New("not found")
	// ErrNoRepository: there is no repository at the location.
	ErrNoRepository = errors.New("no repository")
	// ErrWrongPassword: no key file opens with the password.
	ErrWrongPassword = errors.New("wrong password")
	// ErrCorrupt: repository bytes failed a check (hash, AEAD tag, format).
	ErrCorrupt = errors.New("corrupt")
	// ErrLocked: another process holds a conflicting lock.
	ErrLocked = errors.New("repository is locked")
	// ErrExists: init found something at the location.
	ErrExists = errors.New("location is not empty")
	// ErrTransient marks a backend failure that may go away when the
	// request is repeated: a 5xx answer, a timeout, a reset connection.
	// The retry wrapper (repo/retry) repeats these and nothing else.
	ErrTransient = errors.New("transient backend failure")
	// ErrNotDurable: a file was saved in place (renamed to its name), but
	// the sync of its directory failed: it is there, and may not survive a
	// crash or power loss.
	ErrNotDurable = errors.New("saved, but not made durable")
	// ErrNoRoomForReserve: the space reserve was not filled, for lack of
	// room (SpaceReserver.FillReserve).
	ErrNoRoomForReserve = errors.New("not enough free space for the space reserve")
)

// DiskFull reports whether err is storage running out of room: a full
// file system (ENOSPC) or a spent quota (EDQUOT).
func DiskFull(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}

// ReserveRoomError is a write refused because it would take the room of a
// released space reserve (SpaceReserver.UseReserveRoom), which only the
// commands that free space may use. It wraps ENOSPC: to its caller the
// disk is full.
type ReserveRoomError struct {
	Free uint64 // bytes free on the storage
	Room uint64 // of which the released reserve's room
}

func (e *ReserveRoomError) Error() string {
	if e.Free <= e.Room {
		return fmt.Sprintf("the disk has %.1f MiB free, all of it kept for forget and prune while the space reserve (%.1f MiB) is released", mib(e.Free), mib(e.Room))
	}
	return fmt.Sprintf("the disk has %.1f MiB free, of which the %.1f MiB of the released space reserve are kept for forget and prune", mib(e.Free), mib(e.Room))
}

// Unwrap makes DiskFull true for it.
func (e *ReserveRoomError) Unwrap() error { return syscall.ENOSPC }

func mib(n uint64) float64 { return float64(n) / (1 << 20) }

// TransientError wraps a backend failure that is worth repeating. Its
// message is the wrapped error's; errors.Is finds both ErrTransient and
// whatever Err wraps.
type TransientError struct{ Err error }

func (e *TransientError) Error() string { return e.Err.Error() }

// Unwrap makes errors.Is(err, ErrTransient) true, and keeps Err's chain.
func (e *TransientError) Unwrap() []error { return []error{e.Err, ErrTransient} }

// Transient marks err as worth repeating (nil stays nil).
func Transient(err error) error {
	if err == nil {
		return nil
	}
	return &TransientError{Err: err}
}

// MaxFileSize bounds the repository files snap reads whole: none that it
// writes comes near it (packs are at most the configured pack size plus
// one blob, objects at most MaxObjectSize). Backends refuse to load more
// in one request, so a huge file planted in the repository is reported
// rather than allocated.
const MaxFileSize = 2 << 30

// CorruptError says which object failed which check.
type CorruptError struct {
	Object string // e.g. "data/3f/3f2a…" or "blob 3f2a… in pack 99ab…"
	Reason string
}

func (e *CorruptError) Error() string { return fmt.Sprintf("%s is corrupt: %s", e.Object, e.Reason) }

// Unwrap makes errors.Is(err, ErrCorrupt) true.
func (e *CorruptError) Unwrap() error { return ErrCorrupt }

func corrupt(object, format string, args ...any) error {
	return &CorruptError{Object: object, Reason: fmt.Sprintf(format, args...)}
}

// LockedError names the holder of the lock that blocked us.
type LockedError struct {
	Holder LockInfo
	Name   string
	// AgeOnly: the holder cannot be looked for from here (another host,
	// machine or PID namespace), so 'snap unlock' keeps its lock until it
	// is 30 minutes old.
	AgeOnly bool
	// Future: the lock is dated ahead of this machine's clock
	// (Repository.FutureDated).
	Future bool
}

func (e *LockedError) Error() string {
	kind := "a " + e.Holder.Kind()
	if e.Holder.Exclusive {
		kind = "an exclusive"
	}
	cmd := ""
	if e.Holder.Command != "" {
		cmd = " (snap " + e.Holder.Command + ")"
	}
	fix := "run 'snap unlock' if that process is gone"
	switch {
	case e.AgeOnly && e.Future:
		fix = fmt.Sprintf("the lock is dated %s, ahead of this machine's clock (that host's clock is ahead, or the lock is damaged), so it does not go stale by age: if no snap runs there, 'snap unlock --all' removes it",
			e.Holder.Time.Local().Format(time.DateTime))
	case e.AgeOnly:
		fix = "if that process is gone, the lock is stale 30 minutes after its last refresh, or 'snap unlock --all' removes it now"
	}
	return fmt.Sprintf("repository is locked: %s lock held by pid %d%s on host %s since %s (lock %s); wait for it to finish; %s",
		kind, e.Holder.PID, cmd, e.Holder.Host, e.Holder.Since().Local().Format(time.DateTime), shortName(e.Name), fix)
}

// Unwrap makes errors.Is(err, ErrLocked) true.
func (e *LockedError) Unwrap() error { return ErrLocked }

func shortName(name string) string {
	if len(name) > 8 {
		return name[:8]
	}
	return name
}

// PanicError is a panic recovered from snap's own code: a bug. Catch turns
// it into an error, so that it fails the operation it happened in like any
// other fatal error (the context is cancelled, nothing is committed)
// instead of ending the process with a stack trace. It does not unwrap to
// the panic value: a bug is never mistaken for an expected error.
type PanicError struct {
	Value any    // what was passed to panic
	Stack []byte // the panicking goroutine's stack, for the bug report
}

func (e *PanicError) Error() string { return fmt.Sprintf("internal error: %v", e.Value) }

// Catch runs f and returns its error, or a *PanicError when f panics. Each
// goroutine snap starts runs its work through Catch and hands the error to
// the error path of the operation it belongs to (docs/design.md, "Errors
// and exit codes"). Whatever the goroutine must do in any case (a
// WaitGroup's Done, a result someone waits for) stays outside f.
func Catch(f func() error) (err error) {
	// A fault reading mapped memory (the index cache is a memory-mapped
	// bbolt file: a damaged or truncated one faults) is a panic here, not
	// a crash of the process.
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if v := recover(); v != nil {
			err = &PanicError{Value: v, Stack: debug.Stack()}
		}
	}()
	return f()
}

// OutOfDescriptors reports whether err says this process (or the system)
// ran out of file descriptors: the process's state, not the file's or the
// repository's, so never damage and never a file to skip.
func OutOfDescriptors(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE)
}

// RaiseDescriptors is what to do about OutOfDescriptors.
const RaiseDescriptors = "snap ran out of file descriptors; raise the limit (ulimit -n, or LimitNOFILE= in the service unit)"
