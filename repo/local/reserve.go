package local

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/snap-backup/snap/repo"
)

var _ repo.SpaceReserver = (*Backend)(nil)

// reservePrefix names the space reserve: "reserve.<size>" in the
// repository directory. The size in the name is the size wanted; the file
// holds that many bytes, or none once released. Released, the file keeps
// the wanted size without needing a block to write it in: truncating and
// keeping a name both work on a full disk.
const reservePrefix = "reserve."

// reserveFiles lists the reserve files in the repository directory with
// the size each names. A crash while filling can leave an old one next to
// a new one; FillReserve removes the others.
func (b *Backend) reserveFiles() (map[string]int64, error) {
	d, err := b.openRel(".")
	if err != nil {
		return nil, fmt.Errorf("space reserve of %s: %w", b.dir, err)
	}
	entries, err := d.ReadDir(-1)
	d.Close()
	if err != nil {
		return nil, fmt.Errorf("space reserve of %s: %w", b.dir, err)
	}
	files := map[string]int64{}
	for _, e := range entries {
		name := e.Name()
		if !strings.HasPrefix(name, reservePrefix) || !e.Type().IsRegular() {
			continue
		}
		suffix := strings.TrimPrefix(name, reservePrefix)
		n, err := strconv.ParseInt(suffix, 10, 64)
		if err != nil || n < 0 || strconv.FormatInt(n, 10) != suffix {
			continue // not ours ("reserve.064" is not written by snap)
		}
		files[name] = n
	}
	return files, nil
}

// current returns the reserve file that counts (the largest size wanted),
// or "" when there is none.
func (b *Backend) current() (name string, want, held int64, err error) {
	files, err := b.reserveFiles()
	if err != nil {
		return "", -1, 0, err
	}
	want = -1
	for n, w := range files {
		if w > want || (w == want && n < name) {
			name, want = n, w
		}
	}
	if name == "" {
		return "", -1, 0, nil
	}
	fi, err := os.Lstat(b.sys(filepath.Join(b.dir, name)))
	if err != nil {
		return "", -1, 0, fmt.Errorf("space reserve of %s: %w", b.dir, err)
	}
	return name, want, min(fi.Size(), want), nil
}

// Free returns the bytes available to this user on the file system.
func (b *Backend) Free() (uint64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(b.dir, &st); err != nil {
		return 0, fmt.Errorf("free space of %s: %w", b.dir, err)
	}
	return st.Bavail * uint64(st.Bsize), nil
}

// Capacity returns the size of the repository's file system.
func (b *Backend) Capacity() (uint64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(b.dir, &st); err != nil {
		return 0, fmt.Errorf("size of %s's file system: %w", b.dir, err)
	}
	return st.Blocks * uint64(st.Bsize), nil
}

// UseReserveRoom says whether Save may take the room of a released
// reserve: only while forget or prune runs.
func (b *Backend) UseReserveRoom(may bool) { b.mayUseRoom.Store(may) }

// keepReserveRoom refuses a write of size bytes for h that would leave less
// free than a released reserve's room, unless the writes may use it
// (UseReserveRoom) or h is a lock (a few hundred bytes, for any command,
// and removed at its end). A reserve released to let a prune run stayed
// released until a prune freed space, and the next create wrote into its
// room, filled the disk, and left the forget and prune after it no way to
// run (found by an exploratory test, over three nights of one job).
func (b *Backend) keepReserveRoom(h repo.Handle, size int) error {
	if b.mayUseRoom.Load() || h.Type == repo.LockFile {
		return nil
	}
	// A reserve that cannot be read is for the next fill or release to
	// report; a backup does not stop for it.
	room, free, err := b.ReserveRoom()
	if err != nil || room == 0 || free >= room+uint64(size) {
		return nil
	}
	return &repo.ReserveRoomError{Free: free, Room: room}
}

// ReserveRoom returns the room of a released reserve and the bytes free.
// A file system too small for the reserve never holds it, and keeping its
// room would stop every backup there: its room is 0.
func (b *Backend) ReserveRoom() (room, free uint64, err error) {
	_, want, held, err := b.current()
	if err != nil || want <= held {
		return 0, 0, err
	}
	var st unix.Statfs_t
	if err := unix.Statfs(b.dir, &st); err != nil {
		return 0, 0, fmt.Errorf("free space of %s: %w", b.dir, err)
	}
	free = st.Bavail * uint64(st.Bsize)
	if !repo.ReserveFits(st.Blocks*uint64(st.Bsize), want) {
		return 0, free, nil
	}
	return uint64(want - held), free, nil
}

// Reserve reports the space reserve's size and what it holds.
func (b *Backend) Reserve() (want, held int64, err error) {
	_, want, held, err = b.current()
	return want, held, err
}

// ReleaseReserve truncates the reserve file to nothing, which frees its
// blocks at once, and returns the bytes freed. Temporary files of a fill
// go too, whatever their age: on a full disk their room counts more than
// another run's fill.
func (b *Backend) ReleaseReserve() (int64, error) {
	b.removeReserveTemps(0)
	name, _, held, err := b.current()
	if err != nil || name == "" || held == 0 {
		return 0, err
	}
	// What the file held when it was cut, not what the listing saw: the
	// name may hold another file by then.
	held, err = cutReserve(b.root, name)
	if err != nil {
		return 0, err
	}
	return held, nil
}

// cutReserve empties the reserve file name in the directory dir. It is
// opened without following a symlink and checked to be a regular file
// before it is cut: a user who may write the repository could swap the
// reserve for a link to any file between a check by name and a truncate
// by name, and have root empty it (found by an exploratory test).
// It returns the bytes the file held.
func cutReserve(dir *os.File, name string) (int64, error) {
	p := filepath.Join(dir.Name(), name)
	fd, err := unix.Openat(int(dir.Fd()), name, unix.O_WRONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, fmt.Errorf("release the space reserve %s: %w", p, &os.PathError{Op: "open", Path: p, Err: err})
	}
	f := os.NewFile(uintptr(fd), p)
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		return 0, fmt.Errorf("release the space reserve %s: not a regular file; move it out of the way", p)
	}
	if err := f.Truncate(0); err != nil {
		return 0, fmt.Errorf("release the space reserve %s: %w", p, err)
	}
	return fi.Size(), nil
}

// FillReserve writes a reserve of want random bytes (random so that a
// compressing or deduplicating file system stores all of them) into a
// temporary file, fsyncs it and renames it into place; other reserve files
// are removed after. An empty file of the wanted size's name comes first,
// so that the size is kept whatever happens next (a name needs no data
// block). On any error the temporary file is removed.
func (b *Backend) FillReserve(ctx context.Context, want int64) (err error) {
	if want < 0 {
		return fmt.Errorf("space reserve of %d bytes", want)
	}
	b.removeReserveTemps(time.Hour)
	target := reservePrefix + strconv.FormatInt(want, 10)
	targetPath := filepath.Join(b.dir, target)
	root := int(b.root.Fd()) // by name relative to it, never through a symlink (safedir.go)
	const create = unix.O_WRONLY | unix.O_CREAT | unix.O_EXCL | unix.O_NOFOLLOW | unix.O_CLOEXEC
	if fd, err := unix.Openat(root, target, create, 0o600); err == nil {
		m := os.NewFile(uintptr(fd), targetPath)
		// The owner and group of the repository must be able to
		// release it on a full disk, as every other file of theirs.
		perr := b.perms.apply(m, false)
		_ = m.Close()
		if perr != nil {
			return fmt.Errorf("space reserve of %s: %w", b.dir, perr)
		}
		if err := b.root.Sync(); err != nil {
			return fmt.Errorf("sync directory %s: %w", b.dir, err)
		}
	}
	var st unix.Stat_t
	if err := unix.Fstatat(root, target, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("space reserve of %s: %w", b.dir, &os.PathError{Op: "lstat", Path: targetPath, Err: err})
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return fmt.Errorf("space reserve %s: not a regular file; move it out of the way", targetPath)
	}
	held := st.Size
	if held == want {
		return b.removeOtherReserves(target)
	}
	free, err := b.Free()
	if err != nil {
		return err
	}
	if need := 2*want - held; need > 0 && free < uint64(need) {
		return fmt.Errorf("%w: %d bytes wanted, %d free", repo.ErrNoRoomForReserve, want, free)
	}
	var rnd [8]byte
	_, _ = rand.Read(rnd[:])
	tmpName := tempPrefix + "reserve-" + hex.EncodeToString(rnd[:])
	tmp := filepath.Join(b.dir, tmpName)
	fd, err := unix.Openat(root, tmpName, create, 0o600)
	if err != nil {
		return fmt.Errorf("space reserve of %s: %w", b.dir, &os.PathError{Op: "open", Path: tmp, Err: err})
	}
	f := os.NewFile(uintptr(fd), tmp)
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = unix.Unlinkat(root, tmpName, 0)
			err = fmt.Errorf("write the %d-byte space reserve of %s: %w", want, b.dir, err)
		}
	}()
	if err = b.perms.apply(f, false); err != nil {
		return err
	}
	var seed [32]byte
	_, _ = rand.Read(seed[:])
	gen := mrand.NewChaCha8(seed)
	buf := make([]byte, min(want, 1<<20))
	for left := want; left > 0; {
		if err = ctx.Err(); err != nil {
			return err
		}
		n := min(left, int64(len(buf)))
		_, _ = gen.Read(buf[:n])
		if _, err = f.Write(buf[:n]); err != nil {
			return err
		}
		left -= n
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = unix.Renameat(root, tmpName, root, target); err != nil {
		return &os.LinkError{Op: "rename", Old: tmp, New: targetPath, Err: err}
	}
	if err = b.root.Sync(); err != nil {
		return fmt.Errorf("sync directory %s: %w", b.dir, err)
	}
	return b.removeOtherReserves(target)
}

// removeOtherReserves removes reserve files other than keep.
func (b *Backend) removeOtherReserves(keep string) error {
	files, err := b.reserveFiles()
	if err != nil {
		return err
	}
	var errs []error
	for n := range files {
		if n != keep {
			if err := unix.Unlinkat(int(b.root.Fd()), n, 0); err != nil && !errors.Is(err, unix.ENOENT) {
				errs = append(errs, &os.PathError{Op: "remove", Path: filepath.Join(b.dir, n), Err: err})
			}
		}
	}
	return errors.Join(errs...)
}

// removeReserveTemps removes temporary reserve files older than age: ones
// a crashed run left behind. A younger one may be another run's, filling
// the reserve right now.
func (b *Backend) removeReserveTemps(age time.Duration) {
	d, err := b.openRel(".")
	if err != nil {
		return
	}
	defer d.Close()
	names, _ := d.Readdirnames(-1)
	for _, n := range names {
		if !strings.HasPrefix(n, tempPrefix+"reserve-") {
			continue
		}
		var st unix.Stat_t
		if unix.Fstatat(int(d.Fd()), n, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Mode&unix.S_IFMT == unix.S_IFREG &&
			time.Since(time.Unix(st.Mtim.Unix())) >= age {
			_ = unix.Unlinkat(int(d.Fd()), n, 0)
		}
	}
}
