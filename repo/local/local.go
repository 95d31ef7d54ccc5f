// Package local stores a repository in a directory of the local file system.
package local

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/snap-backup/snap/repo"
)

// tempPrefix marks files being written; List skips them and prune may remove
// old ones.
const tempPrefix = ".tmp-"

// Backend is a repository in a local directory.
type Backend struct {
	dir string
	// root is dir, opened when the backend was: writes and removals start
	// from it (safedir.go).
	root *os.File
	// base is where reads resolve paths under dir: root's descriptor in
	// /proc/self/fd, so that dir swapped after the open (its parent's
	// owner moving it and putting a directory of their own there) cannot
	// show root's prune an empty snapshots/ and have it delete every
	// pack (found by a review); dir itself where /proc is missing.
	base   string
	packs  *openFiles
	direct directIO
	perms  perms // of what Save writes
	// mayUseRoom: the writes may take the room of a released space
	// reserve (UseReserveRoom).
	mayUseRoom atomic.Bool
}

var _ repo.Backend = (*Backend)(nil)

// Open returns the backend for an existing repository directory. It returns
// an error wrapping repo.ErrNoRepository when dir holds no repository.
func Open(dir string) (*Backend, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if fi, err := os.Stat(abs); err == nil && !fi.IsDir() {
		return nil, fmt.Errorf("%s is a file, not a repository (a repository is a directory): %w", abs, repo.ErrNoRepository)
	}
	config, err := os.Stat(filepath.Join(abs, "config"))
	if err != nil {
		if errors.Is(err, syscall.ENOTDIR) {
			// A path below a file: "stat …/config: not a directory" said
			// less (found by a re-test).
			return nil, fmt.Errorf("%s: %w (%s)", abs, repo.ErrNoRepository, noRepositoryHint(abs))
		}
		if errors.Is(err, fs.ErrNotExist) {
			switch reason, interrupted := NoConfigReason(abs); {
			case interrupted:
				return nil, fmt.Errorf("%s: %w", reason, repo.ErrNoRepository)
			case reason != "":
				return nil, errors.New(reason)
			}
			return nil, fmt.Errorf("%s: %w (%s)", abs, repo.ErrNoRepository, noRepositoryHint(abs))
		}
		return nil, fmt.Errorf("open repository %s: %w", abs, accessError(filepath.Join(abs, "config"), err))
	}
	root, err := openRoot(abs)
	if err != nil {
		return nil, fmt.Errorf("open repository %s: %w", abs, accessError(abs, err))
	}
	return &Backend{dir: abs, root: root, base: readBase(root, abs), packs: newOpenFiles(packFilesOpen), perms: permsLike(config)}, nil
}

// NoConfigReason says what abs, a directory without a config file, holds
// when that is more than nothing: a repository that lost its config (its
// keys/, data/, … are there), which is damaged rather than "no
// repository", so 'snap init' is not the advice; or what an init that was
// stopped left (interrupted). It is "" for a directory that is empty,
// missing or holds other files (NoRepositoryHint says what to do there).
// Open and 'snap config check' give the same diagnosis.
func NoConfigReason(abs string) (reason string, interrupted bool) {
	if entries, err := os.ReadDir(abs); err == nil && len(entries) > 0 && interruptedInit(abs, entries) {
		// No data, index or snapshot: an init that stopped, not a
		// damaged repository (whose advice would send the admin
		// looking for a config that never was).
		return fmt.Sprintf("%s holds what an init that was stopped left (empty directories, no config): nothing was stored; empty it (find %s -mindepth 1 -delete) and run 'snap init' again", abs, shellQuote(abs)), true
	}
	var parts []string
	for _, t := range []repo.FileType{repo.KeyFile, repo.PackFile, repo.IndexFile, repo.SnapshotFile} {
		if holdsSnapFiles(filepath.Join(abs, string(t)), t) {
			parts = append(parts, string(t)+"/")
		}
	}
	if len(parts) > 0 {
		return fmt.Sprintf("%s holds a repository's %s but no config file: the repository is damaged; put its config back from a copy of the repository", abs, strings.Join(parts, ", ")), false
	}
	return "", false
}

// packFilesOpen is how many pack files Load keeps open.
const packFilesOpen = 32

// interruptedInit reports whether the directory abs, whose entries are
// given, holds only what an init that stopped before saving the config
// leaves: no config, the object directories empty (data/ only its
// subdirectories), keys/ with key files at most, and a space reserve.
func interruptedInit(abs string, entries []fs.DirEntry) bool {
	dirs := map[string]bool{}
	for _, t := range repo.FileTypes {
		if t != repo.ConfigFile {
			dirs[string(t)] = true
		}
	}
	for _, e := range entries {
		name := e.Name()
		if (strings.HasPrefix(name, reservePrefix) || strings.HasPrefix(name, tempPrefix)) && e.Type().IsRegular() {
			continue // its space reserve, or the config it was writing when killed
		}
		if !e.IsDir() || !dirs[name] {
			return false // the config, anything of another's
		}
		sub, err := os.ReadDir(filepath.Join(abs, name))
		if err != nil {
			return false
		}
		for _, f := range sub {
			// Only names snap gives: the advice is to empty the
			// directory, which must not hold anything of another's (a
			// keys/ of someone's .pem files).
			switch {
			case strings.HasPrefix(f.Name(), tempPrefix) && f.Type().IsRegular():
				// The key file it was writing when killed.
			case name == string(repo.KeyFile) && f.Type().IsRegular() && isIDName(f.Name()):
			case name == string(repo.PackFile) && f.IsDir() && isPackDirName(f.Name()):
				if inner, err := os.ReadDir(filepath.Join(abs, name, f.Name())); err != nil || len(inner) > 0 {
					return false
				}
			default:
				return false
			}
		}
	}
	return true
}

// shellQuote quotes s for a shell command line when it needs it: advice
// to paste must not act on another path ("find /srv/my repo -delete").
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._-+,:@%") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// missingDir is the error for a repository without its directory of files
// of type t: damaged, with what to do. It said "open …/locks: no such file
// or directory" (found by an exploratory test).
func (b *Backend) missingDir(t repo.FileType) error {
	d := filepath.Join(b.dir, string(t))
	if to, err := os.Readlink(b.sys(d)); err == nil {
		// Moved to another disk and linked, that disk not mounted: not
		// damage, and nothing to put back (found by a review).
		return fmt.Errorf("the repository's %s/ is a symlink to %s, which does not lead to a directory: is the disk it leads to mounted?", t, to)
	}
	fix := "put it back from a copy of the repository"
	switch t {
	case repo.IndexFile:
		fix += ", or create it empty (mkdir " + d + ") and run 'snap repair index --from-packs'"
	case repo.LockFile:
		// It holds nothing but the locks of running commands.
		fix = "create it empty: mkdir " + d
	case repo.PackFile:
		fix += " (it holds every snapshot's data)"
	}
	return fmt.Errorf("the repository has no %s/ directory: it is damaged; %s", t, fix)
}

// HoldsRepository reports whether dir holds a snap repository: a config
// file, and a key file under keys/. A restore refuses such a target: the
// snapshot's files would replace the repository's (found by an
// exploratory test).
func HoldsRepository(dir string) bool {
	fi, err := os.Lstat(filepath.Join(dir, string(repo.ConfigFile)))
	return err == nil && fi.Mode().IsRegular() && holdsSnapFiles(filepath.Join(dir, string(repo.KeyFile)), repo.KeyFile)
}

// holdsSnapFiles reports whether dir, the directory of files of type t in
// a repository, holds something named as snap names them: a file named by
// its ID, or for data/ a pack directory holding one. A directory of the
// same name with anything else in it (a data/ of the admin's files) is
// not a repository's part.
func holdsSnapFiles(dir string, t repo.FileType) bool {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return false
	}
	for _, e := range entries {
		switch {
		case t == repo.PackFile && e.IsDir() && isPackDirName(e.Name()):
			if holdsSnapFiles(filepath.Join(dir, e.Name()), repo.IndexFile) {
				return true
			}
		case t != repo.PackFile && e.Type().IsRegular() && isIDName(e.Name()):
			return true
		}
	}
	return false
}

// isIDName reports whether name is a file name snap gives: 64 lower-case
// hex digits.
func isIDName(name string) bool {
	_, err := repo.ParseID(name)
	return err == nil && strings.ToLower(name) == name
}

// isPackDirName reports whether name is one of data/'s pack directories:
// two lower-case hex digits.
func isPackDirName(name string) bool {
	return len(name) == 2 && strings.Trim(name, "0123456789abcdef") == ""
}

// createError is err of creating the repository at abs, with what to do
// about the usual causes (a read-only file system is the command's to
// advise on, as for every command that writes): the bare system error ("mkdir /srv/r: permission
// denied") said what failed, not what the admin can change (found by an
// exploratory test).
func createError(abs string, err error) error {
	hint := ""
	switch {
	case errors.Is(err, unix.ENOTDIR):
		hint = ": a directory on the way to it is a file: give a path whose parents are directories"
	case errors.Is(err, unix.EACCES), errors.Is(err, unix.EPERM):
		hint = fmt.Sprintf(": this user (uid %d) may not write there: choose a directory it may write to, or run snap init as the user who will run the backups", os.Getuid())
	case repo.DiskFull(err):
		hint = ": the file system is full (or the quota spent): free space, or choose another file system"
	}
	return fmt.Errorf("create repository %s: %w%s", abs, err, hint)
}

// Create makes the repository layout in dir, which must not exist or be an
// empty directory. It returns an error wrapping repo.ErrExists otherwise.
func Create(dir string) (*Backend, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if abs, err = followAdminLink(abs); err != nil {
		return nil, err
	}
	pm := private
	fi, err := os.Stat(abs)
	if err == nil && !fi.IsDir() {
		return nil, fmt.Errorf("%s is a file, not a directory: give a new or empty directory for the repository", abs)
	}
	if err == nil {
		pm = permsLike(fi) // a directory the admin made for it, maybe for a group
	}
	entries, err := os.ReadDir(abs)
	switch {
	case err == nil && len(entries) > 0 && interruptedInit(abs, entries):
		// Not removed here: a second init running at this moment would
		// lose its key file to it.
		return nil, fmt.Errorf("%s: %w: it holds what an init that was stopped left (empty directories, no config), and nothing was stored; or another 'snap init' is creating a repository there right now ('snap list' tells in a moment): if not, empty it (find %s -mindepth 1 -delete) or choose another directory", abs, repo.ErrExists, shellQuote(abs))
	case err == nil && len(entries) > 0 && slices.ContainsFunc(entries, func(e fs.DirEntry) bool { return e.Name() == "config" && e.Type().IsRegular() }):
		// (Said plainly: "not empty" sent an admin looking for stray
		// files in a working repository; found by an exploratory test.)
		return nil, fmt.Errorf("%s: %w: a repository is there already (its config file is); nothing was changed: use it with --repo, or choose an empty or new directory for a new one", abs, repo.ErrExists)
	case err == nil && len(entries) > 0:
		return nil, fmt.Errorf("%s: %w; choose an empty or new directory", abs, repo.ErrExists)
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		return nil, createError(abs, err)
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return nil, createError(abs, err)
	}
	// The repository directory is opened without following a symlink put
	// in its place since the check above (the directories above it are
	// the admin's path), and the directories inside are made relative to
	// its descriptor, each opened without following a symlink: one planted
	// by the owner of a directory root initialises a repository in must
	// not have root make directories elsewhere.
	fd, err := unix.Open(abs, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, createError(abs, &os.PathError{Op: "open", Path: abs, Err: err})
	}
	root := os.NewFile(uintptr(fd), abs)
	if names, err := root.Readdirnames(-1); err != nil || len(names) > 0 {
		// Empty or missing a moment ago: someone began writing there
		// meanwhile, most likely a second init.
		root.Close()
		return nil, fmt.Errorf("create repository %s: %w: something began writing there at the same moment (another 'snap init'? 'snap list' tells in a moment); choose an empty or new directory", abs, repo.ErrExists)
	}
	be := &Backend{dir: abs, root: root, base: readBase(root, abs), packs: newOpenFiles(packFilesOpen), perms: pm}
	fail := func(err error) (*Backend, error) {
		root.Close()
		return nil, createError(abs, err)
	}
	var rels []string
	for _, t := range repo.FileTypes {
		if t != repo.ConfigFile {
			rels = append(rels, string(t))
		}
	}
	for i := 0; i < 256; i++ {
		rels = append(rels, fmt.Sprintf("%s/%02x", repo.PackFile, i))
	}
	for _, rel := range rels {
		parent, err := be.openRel(filepath.Dir(rel))
		if err != nil {
			return fail(err)
		}
		err = unix.Mkdirat(int(parent.Fd()), filepath.Base(rel), 0o700)
		parent.Close()
		if err != nil && !errors.Is(err, unix.EEXIST) {
			return fail(&os.PathError{Op: "mkdir", Path: filepath.Join(abs, rel), Err: err})
		}
		if err := pm.applyDir(root, rel); err != nil { // the repository's group and bits (private by default)
			return fail(err)
		}
	}
	// The new directories' entries are durable before anything is
	// written into them: data/ holds the 256 pack directories, the
	// repository directory the others, its parent the repository.
	data, err := be.openRel(string(repo.PackFile))
	if err != nil {
		return fail(err)
	}
	err = data.Sync()
	data.Close()
	if err == nil {
		err = root.Sync()
	}
	if err == nil {
		err = syncDir(filepath.Dir(abs))
	}
	if err != nil {
		return fail(err)
	}
	return be, nil
}

// followAdminLink returns abs, or the directory it links to when abs is a
// symlink that this user or root owns (an admin's /srv/backup ->
// /mnt/disk/backup, which every other command follows: init refused it as
// "not a directory"; found by an exploratory test). Create opens the
// repository directory without following a symlink, so that one planted
// by another user does not have root create a repository elsewhere: such
// a link is refused, naming the real path.
func followAdminLink(abs string) (string, error) {
	li, err := os.Lstat(abs)
	if err != nil || li.Mode()&fs.ModeSymlink == 0 {
		return abs, nil
	}
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		target, _ := os.Readlink(abs)
		return "", fmt.Errorf("%s is a symlink to %s, which does not exist: create that directory (mkdir -p), or give the real path", abs, target)
	}
	if st, ok := li.Sys().(*syscall.Stat_t); ok && st.Uid != 0 && int(st.Uid) != os.Geteuid() {
		return "", fmt.Errorf("%s is a symlink that another user (uid %d) owns: give the real path (%s) if that is where the repository belongs", abs, st.Uid, real)
	}
	return real, nil
}

// Location returns the directory.
func (b *Backend) Location() string { return b.dir }

func (b *Backend) path(h repo.Handle) (string, error) {
	if h.Type == repo.ConfigFile {
		return filepath.Join(b.dir, "config"), nil
	}
	if !repo.ValidName(h.Name) {
		return "", fmt.Errorf("invalid file name %q", h.Name)
	}
	if h.Type == repo.PackFile {
		return filepath.Join(b.dir, string(h.Type), h.Name[:2], h.Name), nil
	}
	return filepath.Join(b.dir, string(h.Type), h.Name), nil
}

// Save writes data to a temporary file in the target directory, fsyncs it,
// renames it into place and fsyncs the directory: the file appears whole and
// durable or not at all. The temporary file is removed on any error.
func (b *Backend) Save(ctx context.Context, h repo.Handle, data []byte) (err error) {
	defer func() { err = b.shown(err) }()
	if err := ctx.Err(); err != nil {
		return err
	}
	p, err := b.path(h)
	if err != nil {
		return err
	}
	dir, name, err := b.openDir(h)
	if err != nil {
		if _, serr := os.Stat(b.sys(filepath.Join(b.dir, string(h.Type)))); errors.Is(err, fs.ErrNotExist) && errors.Is(serr, fs.ErrNotExist) {
			return fmt.Errorf("save %s: %w", h, b.missingDir(h.Type))
		}
		return fmt.Errorf("save %s: %w", h, accessError(filepath.Dir(p), err))
	}
	defer dir.Close()
	var st unix.Stat_t
	if unix.Fstatat(int(dir.Fd()), name, &st, unix.AT_SYMLINK_NOFOLLOW) == nil {
		return nil // immutable and content-named: already there
	}
	if err := b.keepReserveRoom(h, len(data)); err != nil {
		return fmt.Errorf("save %s: %w", h, err)
	}
	var rnd [8]byte
	_, _ = rand.Read(rnd[:])
	tmpName := tempPrefix + hex.EncodeToString(rnd[:])
	tmp := filepath.Join(filepath.Dir(p), tmpName)
	f, direct, err := b.direct.open(dir, tmpName, tmp, h.Type == repo.PackFile && b.direct.use(data))
	if err != nil {
		return fmt.Errorf("save %s: %w", h, accessError(tmp, err))
	}
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = unix.Unlinkat(int(dir.Fd()), tmpName, 0)
			err = fmt.Errorf("save %s: %w", h, accessError(p, err))
		}
	}()
	if err = b.perms.apply(f, false); err != nil {
		return err
	}
	if err = b.direct.write(f, data, direct); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = unix.Renameat(int(dir.Fd()), tmpName, int(dir.Fd()), name); err != nil {
		return &os.LinkError{Op: "rename", Old: tmp, New: p, Err: err}
	}
	if err = dir.Sync(); err != nil {
		// The file is in place and stays (the cleanup above finds no
		// temporary file left to remove).
		return fmt.Errorf("sync directory %s: %w (%w)", filepath.Dir(p), err, repo.ErrNotDurable)
	}
	return nil
}

// Load reads a range of the file.
func (b *Backend) Load(ctx context.Context, h repo.Handle, offset, length int64) (_ []byte, err error) {
	defer func() { err = b.shown(err) }()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	p, err := b.path(h)
	if err != nil {
		return nil, err
	}
	var f *os.File
	var fi fs.FileInfo // of a file opened here: every whole-file load
	if h.Type == repo.PackFile && length > 0 {
		of, err := b.packs.get(b.sys(p))
		if err != nil {
			return nil, wrapErr(h, p, err)
		}
		defer b.packs.put(of)
		f = of.f
	} else {
		f, fi, err = openRegular(b.sys(p))
		if err != nil {
			return nil, wrapErr(h, p, err)
		}
		defer f.Close()
	}
	if length == 0 {
		length = fi.Size() - offset
		if length < 0 {
			return nil, fmt.Errorf("load %s: offset %d beyond end %d: %w", h, offset, fi.Size(), io.ErrUnexpectedEOF)
		}
		if length > repo.MaxFileSize {
			return nil, &repo.CorruptError{Object: h.String(), Reason: fmt.Sprintf("%d bytes: larger than any file snap writes; move it out of the repository", fi.Size())}
		}
	}
	if offset < 0 || length < 0 || length > repo.MaxFileSize {
		return nil, fmt.Errorf("load %s: invalid range %d+%d", h, offset, length)
	}
	buf := make([]byte, length)
	n, err := f.ReadAt(buf, offset)
	if n == len(buf) {
		return buf, nil
	}
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return nil, fmt.Errorf("load %s at %d+%d: %w", h, offset, length, err)
}

// ErrNotRegular marks a repository object whose name holds something else
// than a regular file: a directory, a FIFO, a device, a dangling symlink.
// A symlink to a regular file is followed: an admin may have moved files
// or data/xx directories to another disk and linked them.
var ErrNotRegular = errors.New("not a regular file")

// regular checks that path is, or leads to, a regular file, without
// opening it (opening a device can have effects). A dangling symlink is
// not "not found": the object is there, but what holds it is gone (an
// unmounted disk), and no caller may take it for absent.
func regular(path string) (fs.FileInfo, error) {
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		if link, lerr := os.Readlink(path); lerr == nil {
			return nil, fmt.Errorf("%w (a symlink to %s, which does not exist); put the file back where it leads (mount its disk), or move the link out of the way", ErrNotRegular, link)
		}
	}
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%w (%s); a repository holds only files: put the file itself there, or move this out of the way", ErrNotRegular, fileKind(fi.Mode()))
	}
	return fi, nil
}

// openRegular opens path for reading if it is, or leads to, a regular file.
// O_NONBLOCK keeps a FIFO that replaced the file since the check from
// blocking the open for ever; it has no effect on regular files. It returns the open file's own FileInfo (its size for whole-file loads).
func openRegular(path string) (*os.File, fs.FileInfo, error) {
	if _, err := regular(path); err != nil {
		return nil, nil, err
	}
	// The file found is opened O_PATH (which has no effect on a device)
	// and checked before it is opened for reading, through that
	// descriptor: a device swapped in after the check above would
	// otherwise be opened (opening /dev/watchdog arms it; found by a
	// review).
	pfd, err := unix.Open(path, unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	pf := os.NewFile(uintptr(pfd), path)
	defer pf.Close()
	pfi, err := pf.Stat()
	if err == nil && !pfi.Mode().IsRegular() {
		return nil, nil, fmt.Errorf("%w (%s)", ErrNotRegular, fileKind(pfi.Mode()))
	}
	var f *os.File
	if err == nil {
		f, err = os.OpenFile(fmt.Sprintf("/proc/self/fd/%d", pfd), os.O_RDONLY|syscall.O_NONBLOCK, 0)
		if errors.Is(err, fs.ErrNotExist) {
			if _, perr := os.Stat("/proc/self/fd"); perr != nil {
				// No /proc (a bare chroot): by path, checked after.
				f, err = os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
			}
		}
		if err != nil {
			var pe *fs.PathError
			if errors.As(err, &pe) {
				err = &os.PathError{Op: "open", Path: path, Err: pe.Err}
			}
		}
	}
	if err != nil {
		return nil, nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, nil, fmt.Errorf("%w (%s)", ErrNotRegular, fileKind(fi.Mode()))
	}
	return f, fi, nil
}

// fileKind names a file mode's type for messages.
func fileKind(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&fs.ModeNamedPipe != 0:
		return "a FIFO"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeDevice != 0:
		return "a device"
	}
	return "type " + m.Type().String()
}

// Stat returns the file's size.
func (b *Backend) Stat(ctx context.Context, h repo.Handle) (_ int64, err error) {
	defer func() { err = b.shown(err) }()
	p, err := b.path(h)
	if err != nil {
		return 0, err
	}
	fi, err := regular(b.sys(p))
	if err != nil {
		return 0, wrapErr(h, p, err)
	}
	return fi.Size(), nil
}

// List walks the type's directory (and the 256 subdirectories of data/).
func (b *Backend) List(ctx context.Context, t repo.FileType, fn func(name string, size int64) error) (err error) {
	defer func() { err = b.shown(err) }()
	if t == repo.ConfigFile {
		size, err := b.Stat(ctx, repo.Handle{Type: t})
		if errors.Is(err, repo.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		return fn("", size)
	}
	dirs := []string{filepath.Join(b.dir, string(t))}
	if t == repo.PackFile {
		var err error
		if dirs, err = b.packDirs(); errors.Is(err, fs.ErrNotExist) {
			return b.missingDir(t)
		} else if err != nil {
			return fmt.Errorf("list %s: %w", t, err)
		}
	}
	for _, d := range dirs {
		if err := ctx.Err(); err != nil {
			return err
		}
		entries, err := os.ReadDir(b.sys(d))
		if errors.Is(err, fs.ErrNotExist) && d == filepath.Join(b.dir, string(t)) {
			if readme, err := os.ReadFile(b.sys(filepath.Join(b.dir, "README"))); err == nil && strings.HasPrefix(string(readme), "This is a Borg Backup repository") {
				// A config of borg's opened: not a damaged repository.
				return fmt.Errorf("%s: %w of snap's: it holds a Borg repository (use borg for it; snap cannot read borg's format)", b.dir, repo.ErrNoRepository)
			}
			// Never "no entries": an empty listing of snapshots or of
			// the index would make prune delete what they refer to.
			return b.missingDir(t)
		}
		if err != nil {
			return fmt.Errorf("list %s: %w", t, accessError(d, err))
		}
		for _, e := range entries {
			name := e.Name()
			if strings.HasPrefix(name, tempPrefix) || !repo.ValidName(name) {
				continue
			}
			// A symlink is followed. Anything else under an object's
			// name (a directory, a FIFO, a dangling symlink) fails the
			// listing, naming it: left out, it would be an object that
			// is absent, and prune, which lists snapshots to learn what
			// is in use, would delete its data; listed, every caller
			// would have to tell it from a real object.
			fi, err := regular(b.sys(filepath.Join(d, name)))
			if errors.Is(err, fs.ErrNotExist) {
				continue // removed while listing
			}
			if err != nil {
				return fmt.Errorf("%s: %w", repo.Handle{Type: t, Name: name}, err)
			}
			if t == repo.PackFile && name[:2] != filepath.Base(d) {
				return b.misplacedPack(d, name)
			}
			if err := fn(name, fi.Size()); err != nil {
				return err
			}
		}
	}
	return nil
}

// misplacedPack is the error for a pack file in a data/xx directory other
// than its name's, where no read looks for it: listed, it was a pack that
// exists but could not be read, and check and repair went round in a
// loop; left out, a copy made by hand there would hold its space for ever
// unseen (found by an exploratory test). The listing fails, naming the
// file and the move that puts it right, as for other entries that are not
// what their name says.
func (b *Backend) misplacedPack(dir, name string) error {
	at := filepath.Join(dir, name)
	want, _ := b.path(repo.Handle{Type: repo.PackFile, Name: name})
	if _, err := os.Lstat(b.sys(want)); err == nil {
		return fmt.Errorf("%s is a second copy of %s, in the wrong directory: compare them (cmp %s %s) and remove it", at, want, shellQuote(at), shellQuote(want))
	}
	return fmt.Errorf("pack %s is in %s, not in %s where snap reads it: move it there (mkdir -p %s && mv %s %s)", repo.ShortName(name), filepath.Dir(at), filepath.Dir(want), shellQuote(filepath.Dir(want)), shellQuote(at), shellQuote(want))
}

// packDirs returns the pack directories: data/<xx>.
func (b *Backend) packDirs() ([]string, error) {
	data := filepath.Join(b.dir, string(repo.PackFile))
	subs, err := os.ReadDir(b.sys(data))
	if err != nil {
		return nil, err
	}
	var dirs []string
	for _, s := range subs {
		if len(s.Name()) != 2 {
			continue
		}
		p := filepath.Join(data, s.Name())
		if s.Type()&fs.ModeSymlink != 0 {
			// A data/xx moved to another disk and linked.
			if fi, err := os.Stat(b.sys(p)); err != nil || !fi.IsDir() {
				return nil, fmt.Errorf("%s is a symlink that does not lead to a directory; put the directory back, or move the link out of the way", p)
			}
		} else if !s.IsDir() {
			continue
		}
		dirs = append(dirs, p)
	}
	return dirs, nil
}

// Remove deletes the file and fsyncs its directory.
func (b *Backend) Remove(ctx context.Context, h repo.Handle) (err error) {
	defer func() { err = b.shown(err) }()
	p, err := b.path(h)
	if err != nil {
		return err
	}
	dir, name, err := b.openDir(h)
	if err != nil {
		return wrapErr(h, filepath.Dir(p), err)
	}
	defer dir.Close()
	if err := unix.Unlinkat(int(dir.Fd()), name, 0); err != nil {
		err = &os.PathError{Op: "remove", Path: p, Err: err}
		if errors.Is(err, fs.ErrPermission) {
			return fmt.Errorf("%s: %w", h, accessErrorIn(p, err))
		}
		return wrapErr(h, p, err)
	}
	if err := dir.Sync(); err != nil {
		return fmt.Errorf("sync directory %s: %w", filepath.Dir(p), err)
	}
	return nil
}

// Close closes the pack files Load keeps open.
func (b *Backend) Close() error {
	b.packs.closeAll()
	if err := b.root.Close(); err != nil && !errors.Is(err, os.ErrClosed) {
		return err
	}
	return nil
}

// wrapErr names the object an error of path p is about; a missing file
// is repo.ErrNotFound, a permission error says who owns what.
func wrapErr(h repo.Handle, p string, err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s: %w", h, repo.ErrNotFound)
	}
	return fmt.Errorf("%s: %w", h, accessError(p, err))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}

// readBase is the path reads resolve under: root's descriptor in
// /proc/self/fd when /proc shows it as the repository directory, else dir.
func readBase(root *os.File, dir string) string {
	base := fmt.Sprintf("/proc/self/fd/%d", root.Fd())
	var a, b unix.Stat_t
	if unix.Stat(base, &a) != nil || unix.Fstat(int(root.Fd()), &b) != nil || a.Dev != b.Dev || a.Ino != b.Ino {
		return dir
	}
	return base
}

// sys is the path to open for p, a path under dir: resolved from root's
// descriptor (base).
func (b *Backend) sys(p string) string {
	if b.base == b.dir {
		return p
	}
	if rest, ok := strings.CutPrefix(p, b.dir); ok && (rest == "" || rest[0] == '/') {
		return b.base + rest
	}
	return p
}

// shown puts the repository's path back in an error of a read through
// base, for messages, and makes running out of file descriptors transient:
// it is this process's (or the system's) state, not the repository's, and
// check called every file it could not open damaged, with advice to forget
// snapshots and remove keys, while restore took the latest snapshot it
// could read for the latest (found by an exploratory test). As a
// transient error it is retried, and then reported as the repository not
// answering, which is no verdict on the data.
func (b *Backend) shown(err error) error {
	if err == nil {
		return nil
	}
	if repo.OutOfDescriptors(err) && !errors.Is(err, repo.ErrTransient) {
		err = repo.Transient(fmt.Errorf("%w: %s", err, repo.RaiseDescriptors))
	}
	if b.base == b.dir || !strings.Contains(err.Error(), b.base) {
		return err
	}
	return &shownError{err: err, from: b.base, to: b.dir}
}

type shownError struct {
	err      error
	from, to string
}

func (e *shownError) Error() string { return strings.ReplaceAll(e.err.Error(), e.from, e.to) }
func (e *shownError) Unwrap() error { return e.err }
