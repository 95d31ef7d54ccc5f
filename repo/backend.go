package repo

import (
	"context"
	"fmt"
	"time"
)

// FileType is a directory of the repository layout.
type FileType string

// The repository's file types, named after their directories.
const (
	ConfigFile   FileType = "config"
	KeyFile      FileType = "keys"
	PackFile     FileType = "data"
	IndexFile    FileType = "index"
	SnapshotFile FileType = "snapshots"
	LockFile     FileType = "locks"
)

// FileTypes lists every type, in the order a full copy would write them.
var FileTypes = []FileType{ConfigFile, KeyFile, PackFile, IndexFile, SnapshotFile, LockFile}

// Handle names one file in a backend. The config file has an empty Name.
type Handle struct {
	Type FileType
	Name string
}

// ValidName reports whether name is one snap writes in a repository
// directory: lower-case hex of 2 to 128 digits. Backends refuse other
// names (they could escape the directory) and leave them out of listings.
func ValidName(name string) bool {
	if len(name) < 2 || len(name) > 128 {
		return false
	}
	for _, c := range name {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

func (h Handle) String() string {
	switch {
	case h.Type == ConfigFile:
		return "config"
	case h.Type == PackFile && len(h.Name) > 2:
		return fmt.Sprintf("data/%s/%s", h.Name[:2], h.Name)
	default:
		return fmt.Sprintf("%s/%s", h.Type, h.Name)
	}
}

// Backend stores the repository's files. Every implementation guarantees:
//   - Save is atomic: a reader sees no file or the whole file, never part of
//     one, and Save returns only once the file is durable.
//   - Files are immutable: Save of a handle that exists leaves the existing
//     file alone and returns nil (names are content hashes, so the bytes are
//     the same; the config and lock files use unique names too).
//   - Load, Stat and Remove of a missing file return an error wrapping
//     ErrNotFound.
//   - All methods are safe for concurrent use.
type Backend interface {
	// Location names the backend for messages, without credentials.
	Location() string
	// Save stores data under h, durably and atomically.
	Save(ctx context.Context, h Handle, data []byte) error
	// Load returns length bytes from offset; length 0 means to the end.
	// A file shorter than offset+length gives an error wrapping
	// io.ErrUnexpectedEOF (a truncated file), not short data.
	Load(ctx context.Context, h Handle, offset, length int64) ([]byte, error)
	// Stat returns the size of the file.
	Stat(ctx context.Context, h Handle) (int64, error)
	// List calls fn once for each file of type t, in no particular order,
	// and stops at the first error fn returns. Partial uploads never appear.
	List(ctx context.Context, t FileType, fn func(name string, size int64) error) error
	// Remove deletes the file. Only forget, prune, unlock (locks), key
	// removal, and a copy replacing a damaged document of the name it saves
	// (Repository.SaveObjectOnce) call it.
	Remove(ctx context.Context, h Handle) error
	// Close releases the backend's resources.
	Close() error
}

// Preflighter is implemented by backends that can check, before a backup
// reads anything, that they will accept it (a local directory: permissions,
// a read-only mount, free space). Other backends find out on the first
// write.
type Preflighter interface {
	// Preflight makes sure that files can be created where packs, index
	// segments and snapshots go, and returns the bytes available to this
	// user on that storage.
	Preflight(ctx context.Context) (free uint64, err error)
}

// OnLocalDisk reports whether be (through its wrappers) stores on this
// machine's disk: a full disk there is the repository's, and a write that
// failed before its rename stored nothing. The local directory backend is
// the one that keeps a space reserve.
func OnLocalDisk(be Backend) bool {
	_, ok := As[SpaceReserver](be)
	return ok
}

// SpaceReserver is implemented by backends on storage that can fill up (a
// local directory). The space reserve is a file of random bytes set aside
// when the repository is made, so that on a full disk 'snap forget' and
// 'snap prune' can still write their lock and their index segments, and
// so free space (docs/design.md, "Space reserve").
type SpaceReserver interface {
	// Reserve reports the reserve: want is its size (-1: none was ever
	// set up, a repository from before reserves; 0: turned off), held the
	// bytes it holds now (less than want once released).
	Reserve() (want, held int64, err error)
	// ReleaseReserve frees the reserve's space, remembering its size, and
	// returns the bytes freed.
	ReleaseReserve() (freed int64, err error)
	// FillReserve makes the reserve hold want bytes (0: turned off),
	// whole or not at all. It writes nothing (and returns an error
	// wrapping ErrNoRoomForReserve) when the fill would leave less free
	// than the reserve itself: a reserve must not be what fills the disk.
	// The size wanted is kept either way.
	FillReserve(ctx context.Context, want int64) error
	// Free returns the bytes available to this user on the storage.
	Free() (uint64, error)
	// Capacity returns the storage's size in bytes, used or not.
	Capacity() (uint64, error)
	// ReserveRoom returns the room of a released reserve (what it should
	// hold and does not; 0 when it is whole, there is none, or the storage
	// is too small for it: ReserveFits) and the bytes free.
	ReserveRoom() (room, free uint64, err error)
	// UseReserveRoom says whether the writes that follow may use the room
	// of a released reserve (the commands that free space: forget,
	// prune). Until it is called with true, a write other than a lock's
	// that would leave less free than that room fails with a
	// *ReserveRoomError: a backup must not take the room that the cleanup
	// after it needs.
	UseReserveRoom(may bool)
}

// ReserveFits reports whether a file system of capacity bytes can keep a
// space reserve of want bytes beside the backups: it may take a quarter of
// it at most. On a smaller one no forget or prune could make room for it;
// it is never put in place there, and its room is not kept.
func ReserveFits(capacity uint64, want int64) bool {
	return want <= 0 || capacity/4 >= uint64(want)
}

// TempFile is a temporary file a write left behind: a Save, a preflight
// or a space reserve fill that a crash or kill -9 cut short.
type TempFile struct {
	Name    string // relative to the repository's location
	Size    int64
	ModTime time.Time
}

// TempLister is implemented by backends whose writes go through temporary
// files (a local directory: write, fsync, rename). Prune removes the ones
// it listed before it saw that no other snap process runs (docs/design.md,
// "Prune"); nothing else would, and a crashed run's half-written pack can
// hold as much as a pack.
type TempLister interface {
	ListTemps(ctx context.Context) ([]TempFile, error)
	// RemoveTemp removes one file ListTemps returned.
	RemoveTemp(ctx context.Context, name string) error
}

// Occupied is implemented by backends whose location can hold objects
// that are not a repository's (a bucket, or a prefix of one): a location
// with no repository is then told apart from an empty one.
type Occupied interface {
	// FirstObject returns the name of an object at the location, or ""
	// when it holds none.
	FirstObject(ctx context.Context) (string, error)
}

// Neighbours is implemented by backends whose locations sit beside each
// other (S3 prefixes of one bucket): a location that holds nothing may be
// a typing slip away from the repository meant.
type Neighbours interface {
	// NearbyRepositories returns the locations of repositories beside
	// this one (the same parent prefix), at most a few.
	NearbyRepositories(ctx context.Context) ([]string, error)
}

// Unwrapper is implemented by backend wrappers (retry, limit, fault
// injection, counting): Unwrap returns the backend they wrap.
type Unwrapper interface {
	Unwrap() Backend
}

// As finds the first backend in the chain of wrappers starting at be that
// implements T (an optional interface such as Preflighter).
func As[T any](be Backend) (T, bool) {
	for be != nil {
		if t, ok := be.(T); ok {
			return t, true
		}
		u, ok := be.(Unwrapper)
		if !ok {
			break
		}
		be = u.Unwrap()
	}
	var zero T
	return zero, false
}

// outOfTurnKey marks a context whose saves go out without waiting for the
// upload rate's turn (OutOfTurn).
type outOfTurnKey struct{}

// OutOfTurn marks ctx so that a rate-limited backend (--limit-upload)
// saves index segments without waiting for their turn; their bytes still
// count. It is for the segment a failed or stopped run writes on its way
// out, indexing the packs it uploaded: behind the time its packs booked on
// a slow link it waited out its whole timeout, so that the post hooks (an
// application waiting to restart) came 15 s late and the packs went
// unindexed (found by an exploratory test).
func OutOfTurn(ctx context.Context) context.Context {
	return context.WithValue(ctx, outOfTurnKey{}, true)
}

// IsOutOfTurn reports whether ctx was marked by OutOfTurn.
func IsOutOfTurn(ctx context.Context) bool { return ctx.Value(outOfTurnKey{}) != nil }
