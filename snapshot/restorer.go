package snapshot

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/snap-backup/snap/index"
	"github.com/snap-backup/snap/repo"
	"github.com/snap-backup/snap/sources"
	"golang.org/x/sys/unix"
)

// RestoreOptions tune a restore.
type RestoreOptions struct {
	Includes []sources.Pattern // when set, only matching paths (and what is below them)
	Excludes []sources.Pattern
	// Overwrite says what becomes of a file, symlink or special file that
	// is in the target already (directories are always entered and get
	// their metadata).
	Overwrite Overwrite
	Workers   int
	Report    func(Event) // EventRead per chunk written, EventFile per restored file, EventError per failed entry; paths in the target; called by several goroutines at once
	// Blobs reads file contents; nil means the index, one ranged read
	// per blob (a remote repository passes an index.PackFetcher).
	Blobs BlobLoader
	// NoSparse writes zeros as data, leaving no holes: a swap file, or a
	// file preallocated so that writes into it never meet a full disk,
	// must come back allocated (restored sparse, swapon refused the
	// swap file; found by an exploratory test).
	NoSparse bool

	writeBehindMin int64 // files this large are written behind; 0: writeBehindMin (tests lower it)
}

// Overwrite is a restore's policy for entries already in the target.
type Overwrite int

const (
	// OverwriteAlways replaces every entry.
	OverwriteAlways Overwrite = iota
	// OverwriteIfChanged leaves the contents of a regular file whose size
	// and modification time are the snapshot's, and sets its metadata
	// again: a restore that was interrupted goes on where it stopped (a
	// file is given its modification time only once all of it is
	// written), and a rollback in place rewrites only what changed.
	OverwriteIfChanged
	// OverwriteNever leaves every entry that exists alone.
	OverwriteNever
)

// OverwriteNames lists restore --overwrite's values.
func OverwriteNames() []string { return []string{"always", "if-changed", "never"} }

// ParseOverwrite reads restore --overwrite's value.
func ParseOverwrite(s string) (Overwrite, error) {
	switch s {
	case "", "always":
		return OverwriteAlways, nil
	case "if-changed":
		return OverwriteIfChanged, nil
	case "never":
		return OverwriteNever, nil
	}
	return 0, fmt.Errorf("%q: use always, if-changed or never", s)
}

// BlobLoader reads and verifies blobs.
type BlobLoader interface {
	LoadBlob(ctx context.Context, t repo.BlobType, id repo.ID, dst []byte) ([]byte, error)
}

// answerCounter is a BlobLoader that serves blobs from local copies as
// well as from the repository (index.PackFetcher), and counts the
// repository's answers: a blob of a pack fetched earlier says nothing
// about whether the repository still answers.
type answerCounter interface {
	Answers() uint64
}

// RestoreStats counts what a restore wrote.
type RestoreStats struct {
	Files int64 // regular files, as a snapshot's summary counts them
	Other int64 // symlinks, devices, FIFOs and sockets
	// Incomplete counts the files an interruption left partly written.
	Incomplete int64
	Dirs       int64
	Bytes      int64
	Errors     int64
	// Skipped counts the entries left as they were in the target
	// (RestoreOptions.Overwrite); they are not in Files.
	Skipped int64
	// Differing counts, of those, the regular files OverwriteNever left
	// whose size or modification time are not the snapshot's (partly
	// written by a restore that was cut off, or edited since), and
	// FirstDiffering names one, as the target has it.
	Differing      int64
	FirstDiffering string
	// Damaged counts the files left incomplete because blobs of theirs
	// are damaged or missing in the repository; such a file does not
	// stop the restore, which writes every other entry (a damaged tree
	// does: Stopped).
	Damaged int64
	// CacheDamaged counts those of Damaged whose blobs did not read for
	// this host's damaged index cache (index.ErrCacheDamaged), not the
	// repository's damage.
	CacheDamaged int64
	// Stopped is set when the restore stopped before it went through
	// every entry (a damaged tree, a full target, a repository that
	// stopped answering, a panic), not when it ended with damaged files.
	Stopped bool
}

// Restorer writes snapshot trees into a target directory. Every blob is
// verified against its ID as it is read, and every entry is created by name
// inside an open directory of the target (sources.Dir), so a hostile
// repository cannot write outside it.
//
// Walkers read the trees (several directories at once): they create
// directories, symlinks and special files, and queue file contents for the
// workers, which write them in parallel. A large file is cut into parts of a few chunks that
// workers write at their offsets at the same time, so that one big file
// uses every core too. A directory stays open while anything in it is
// pending and gets its metadata when the last of that is done.
type Restorer struct {
	ix     *index.Index
	target *sources.Target
	opts   RestoreOptions

	jobs    chan restoreJob
	wg      sync.WaitGroup
	walkers chan struct{}
	walking sync.WaitGroup
	cancel  context.CancelFunc
	linksMu sync.Mutex
	links   map[LinkGroup]string // group → first restored path
	// held are finished directories whose metadata waits for the end of
	// the restore (holdBack), in the order they finished.
	heldMu  sync.Mutex
	held    []*dirHandle
	maxHeld int // how many it may hold (maxHeld)
	// linkInodes holds, for a group whose first name was kept as it was
	// in the target (Overwrite), that file's inode in the target.
	linkInodes map[LinkGroup]uint64
	// split holds the groups a name of which could not be linked to the
	// first (hardLinkOr): said once per group.
	split map[LinkGroup]bool
	euid  int // the restore's user (OverwriteNever: whose files stand in for a group)
	// devicesOnce asks the target once whether device nodes can be made
	// there (mayMakeDevices); devicesOK is its answer.
	devicesOnce sync.Once
	devicesOK   bool
	// rootPath is the path in the snapshot of the directory restored into
	// the target (Restore); the walk builds the paths below it as needed.
	rootPath    string
	mu          sync.Mutex
	fatal       error
	full        bool // the target was found full (fail): said once
	nFiles      atomic.Int64
	nOther      atomic.Int64
	nIncomplete atomic.Int64
	nDirs       atomic.Int64
	nBytes      atomic.Int64
	nErrors     atomic.Int64
	nSkip       atomic.Int64
	nDiffer     atomic.Int64
	nDamaged    atomic.Int64
	nCacheDmg   atomic.Int64
	stopped     atomic.Bool
	firstDiffer atomic.Pointer[string]
	// zeroBlobs holds the blobs found all zeros, by ID, with their length:
	// a sparse file's holes are one such blob many times over (an image
	// of 20 GiB with 200 MB of data: 40,960 times), loaded once. The blob
	// was verified (its ID is the hash of its bytes) when it was loaded,
	// so the same ID is the same zeros again.
	zeroBlobs zeroCache[repo.ID, int]
	// loaded is set by every blob loaded; unanswered (under mu) holds
	// the packs failed since, for want of an answer (unreachable). With a
	// loader that counts the repository's answers (answerCounter),
	// answersAt is their count at the first of those failures, and only a
	// new answer starts the count again: blobs of packs fetched before
	// the server went away kept resetting it, and a restore from a killed
	// S3 server took five minutes to give up instead of one (found by an
	// exploratory test).
	loaded     atomic.Bool
	unanswered map[repo.ID]bool
	answersAt  uint64
}

// partChunks is how many chunks of a file one job writes. Files of more
// chunks are written by several workers at once.
const partChunks = 4

// A file of writeBehindMin bytes or more is written back to disk as it is
// restored, and its pages are dropped from the page cache once on disk,
// keeping the last writeBehindParts parts (some 40 MiB) in flight. Smaller
// files are left to the kernel: for them the two extra system calls per
// part would cost more than they save.
const (
	writeBehindMin   = 64 << 20
	writeBehindParts = 8
)

// dirHandle is a directory of the target while it is being restored. refs
// counts the walk of the directory itself, its pending files and its
// subdirectories; when the last is done, the directory gets its metadata
// (if it was opened: something in it was restored), is closed, and
// releases its parent.
type dirHandle struct {
	parent *dirHandle
	name   string
	mu     sync.Mutex   // guards dir and failed
	dir    *sources.Dir // opened by a walker when first needed
	failed bool         // creating it failed (reported); its entries are skipped
	meta   sources.Meta
	// selected: --include chose the directory (or nothing is excluded
	// by --include); one that only leads to what it chose is not.
	selected bool
	refs     atomic.Int32
	depth    int // below the directory the restore starts at
	// held is the decoded listings of the trees from where the restore
	// starts down to this directory's own, once the restore loaded it: its
	// subdirectories' start (decodeOnPath).
	held int64
	// isPath: the target itself, standing for a directory of the
	// snapshot (SNAPSHOT:/srv/app), whose metadata is meta.
	isPath bool
}

// fileHandle is a file whose parts are being written.
type fileHandle struct {
	dir   *dirHandle
	rel   string
	node  Node
	f     *sources.File
	parts atomic.Int32
	end   atomic.Int64 // where the last chunk written so far ends
	mu    sync.Mutex
	err   error // the first error of any part
	// writeBehind is set, before any part is queued, for a file of
	// writeBehindMin bytes or more; behind (under mu) lists its parts
	// written and being written back, oldest first: see writtenBack.
	writeBehind bool
	behind      []span
}

// span is a byte range of a file: [off, off+n).
type span struct{ off, n int64 }

// restoreJob writes chunks [first, first+n) of a file, the first at offset
// off. The only part of a file is the whole file.
type restoreJob struct {
	file  *fileHandle
	first int
	n     int
	off   int64
	whole bool
}

// NewRestorer prepares a restore into target.
func NewRestorer(ix *index.Index, target *sources.Target, o RestoreOptions) *Restorer {
	if o.Workers < 1 {
		o.Workers = 2 * runtime.NumCPU()
	}
	if o.Report == nil {
		o.Report = func(Event) {}
	}
	if o.Blobs == nil {
		o.Blobs = ix
	}
	return &Restorer{ix: ix, target: target, opts: o, links: map[LinkGroup]string{}, linkInodes: map[LinkGroup]uint64{}, split: map[LinkGroup]bool{},
		euid: os.Geteuid(), maxHeld: maxHeld()}
}

// mayMakeDevices reports whether device nodes can be made in the target:
// the process has CAP_MKNOD, and a try in dir succeeds (root in a user
// namespace has the capability and is refused; its mknod came only after
// the entry at that name was removed). Asked once per restore.
func (r *Restorer) mayMakeDevices(dir *sources.Dir) bool {
	r.devicesOnce.Do(func() { r.devicesOK = mayMknod() && dir.CanMakeDevices() })
	return r.devicesOK
}

// mayMknod reports whether this process may make device nodes: it has
// CAP_MKNOD (root has). When the kernel does not say, it may.
func mayMknod() bool {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if unix.Capget(&hdr, &data[0]) != nil {
		return true
	}
	return data[0].Effective&(1<<unix.CAP_MKNOD) != 0
}

// Restore writes node (found at snapPath in the snapshot) into the target.
// A directory's contents go directly into the target; a single file or
// other entry is written under its own name.
func (r *Restorer) Restore(ctx context.Context, snapPath string, node Node) (RestoreStats, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	r.cancel = cancel
	r.walkers = make(chan struct{}, r.opts.Workers)
	rootDir, err := r.target.RootDir()
	if err != nil {
		return RestoreStats{}, fmt.Errorf("restore target %s: %w", r.target.Dir(), err)
	}
	root := &dirHandle{dir: rootDir}
	root.refs.Store(1)
	r.jobs = make(chan restoreJob, r.opts.Workers)
	for range r.opts.Workers {
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			r.guard(func() { r.worker(ctx) })
		}()
	}
	if node.Type == sources.TypeDir {
		root.refs.Add(1)
		r.rootPath = snapPath
		if p := path.Clean("/" + snapPath); p != "/" {
			// A directory of the snapshot restored into a target this
			// restore made: the target is that directory, and gets its
			// metadata (the snapshot's root has none of its own).
			root.meta, root.isPath = node.Meta, true
		}
		r.walkDir(ctx, root, node.Subtree, r.selectedAll())
	} else {
		err = r.restoreEntry(ctx, snapPath, node.Name, root, node, r.selectedAll())
	}
	r.walking.Wait()
	r.release(root)
	close(r.jobs)
	r.wg.Wait()
	r.finishHeld()
	if err == nil {
		err = r.fatalErr()
	}
	st := RestoreStats{Files: r.nFiles.Load(), Other: r.nOther.Load(), Incomplete: r.nIncomplete.Load(), Dirs: r.nDirs.Load(), Bytes: r.nBytes.Load(), Errors: r.nErrors.Load(), Skipped: r.nSkip.Load(),
		Differing: r.nDiffer.Load(), Damaged: r.nDamaged.Load(), CacheDamaged: r.nCacheDmg.Load(), Stopped: r.stopped.Load()}
	if p := r.firstDiffer.Load(); p != nil {
		st.FirstDiffering = *p
	}
	return st, err
}

func (r *Restorer) selectedAll() bool { return len(r.opts.Includes) == 0 }

// at is where rel, a path relative to the target, is: every event names
// it so, where create's name where a file came from (file events were
// relative to the target, errors not; found by an exploratory test).
func (r *Restorer) at(rel string) string { return path.Join(r.target.Dir(), rel) }

func (r *Restorer) fail(rel string, err error) { r.failWritten(rel, err, false) }

// failWritten is fail for an entry that may be partly written (written):
// after the full target's one error, such a file is counted among those
// left partly written (the message undercounted them: seven files cut
// short, five counted, found by an exploratory test).
func (r *Restorer) failWritten(rel string, err error, written bool) {
	if errno, ok := targetFull(err); ok {
		// A full target, or a read-only one, fails every file after
		// this one the same way: one error says it, and the restore
		// stops (a read-only one gave an error per entry, thousands).
		// What was written stays; a restore with --overwrite if-changed
		// after space was freed rewrites what is incomplete.
		state, fix := "is full", "free space there"
		if errno == unix.EROFS {
			state, fix = "is on a read-only file system", "remount it read-write"
		}
		full := fmt.Errorf("restore target %s %s (%v, writing %s): the restore stopped; "+
			"%s (or restore elsewhere) and restore again, with --overwrite if-changed to keep what is complete",
			r.target.Dir(), state, errno, rel, fix)
		r.mu.Lock()
		// Another error stopped the restore first (a damaged blob's):
		// the full target is told too, once.
		reported := r.fatal != nil && !r.full
		later := r.full
		r.full = true
		r.mu.Unlock()
		if later && written {
			r.nIncomplete.Add(1)
		}
		if reported {
			r.nErrors.Add(1)
			r.opts.Report(Event{Kind: EventError, Path: r.at(rel), Err: full})
		}
		r.stop(full)
		return
	}
	r.nErrors.Add(1)
	r.opts.Report(Event{Kind: EventError, Path: r.at(rel), Err: err})
}

// targetFull reports whether err is the target's file system (or quota)
// being full, or read-only, and which. An extended attribute's ENOSPC is
// not: ext4 says so when the attribute does not fit its inode's or block's
// room.
func targetFull(err error) (unix.Errno, bool) {
	var errno unix.Errno
	var xe *sources.XattrError
	if errors.As(err, &errno) && (errno == unix.ENOSPC || errno == unix.EDQUOT || errno == unix.EROFS) && !errors.As(err, &xe) {
		return errno, true
	}
	return 0, false
}

// stop records err as the restore's error, unless it has one already, and
// cancels what is left.
func (r *Restorer) stop(err error) {
	r.stopped.Store(true)
	r.mu.Lock()
	if r.fatal == nil {
		r.fatal = err
	}
	r.mu.Unlock()
	r.cancel()
}

func (r *Restorer) fatalErr() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.fatal
}

// open returns the directory, creating it (and the unselected directories
// leading to it) on first use. Only walkers call it.
func (r *Restorer) open(d *dirHandle) *sources.Dir {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.dir != nil || d.failed {
		return d.dir
	}
	parent := r.open(d.parent)
	if parent == nil {
		d.failed = true
		return nil
	}
	dir, err := parent.Mkdir(d.name)
	if err != nil {
		d.failed = true
		r.fail(d.rel(), err)
		return nil
	}
	if link := dir.ReplacedSymlink(); link != "" {
		// A symlink to a directory elsewhere (/var/lib/mysql to a data
		// disk) replaced without a word moved what is restored there off
		// that disk (found by an exploratory test).
		r.opts.Report(Event{Kind: EventWarning, Path: r.at(d.rel()),
			Err: fmt.Errorf("was a symlink to %s, and is now the directory the snapshot holds there; what the link pointed to is left as it was (to restore into it, restore that subtree with --target set to it)", sources.DisplayPath(link))})
	}
	d.dir = dir
	return dir
}

// release drops one reference to d; the last one finishes the directory.
func (r *Restorer) release(d *dirHandle) {
	if d.refs.Add(-1) > 0 {
		return
	}
	if d.dir != nil && !r.holdBack(d) {
		r.finishDir(d)
	}
	if d.parent != nil {
		r.release(d.parent)
	}
}

// maxHeld bounds the directories holdBack keeps open: at most a quarter
// of the descriptors the process may open, and 4096 (the restore's own
// files and directories need the rest).
func maxHeld() int {
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err != nil {
		return 256
	}
	return int(min(rl.Cur/4, 4096))
}

// holdBack keeps a finished directory open, and its metadata for the end
// of the restore (finishHeld), when that metadata takes from the
// restoring user the search permission that a hard link to a file in it,
// made later in the restore, needs: a restore not run as root split such
// a group into copies, silently, once the directory of its first name had
// got mode 000 (found by an exploratory test). Root needs no permission.
func (r *Restorer) holdBack(d *dirHandle) bool {
	if r.euid == 0 || d.parent == nil || d.meta.Mode&0o100 != 0 {
		return false
	}
	r.heldMu.Lock()
	defer r.heldMu.Unlock()
	if len(r.held) >= r.maxHeld {
		return false
	}
	r.held = append(r.held, d)
	return true
}

// finishHeld gives the directories holdBack kept their metadata, each
// before the directory above it.
func (r *Restorer) finishHeld() {
	r.heldMu.Lock()
	held := r.held
	r.held = nil
	r.heldMu.Unlock()
	for _, d := range held {
		r.finishDir(d)
	}
}

// finishDir gives a directory whose contents are restored its metadata,
// and closes it.
func (r *Restorer) finishDir(d *dirHandle) {
	// The target itself (no parent) keeps its own metadata. A
	// directory that --include did not select, but which leads to
	// what it did, gets its recorded metadata if the restore made it
	// (it would otherwise stay 0700, or, for /tmp, lose its sticky
	// bit, with the restore's time); one that was there already
	// (restoring one file in place: /home) keeps its own, as every
	// one that was there does under OverwriteNever.
	var err error
	switch {
	case d.parent == nil && !(d.isPath && d.dir.Created()):
	case d.dir.Created() || d.selected && r.opts.Overwrite != OverwriteNever:
		err = d.dir.SetOwnMeta(d.meta)
	default:
		err = d.dir.RestoreMode()
	}
	if err != nil {
		r.fail(d.rel(), err)
	}
	if err := d.dir.Close(); err != nil {
		r.fail(d.rel(), err)
	}
}

// child returns a handle for subdirectory n of d, holding a reference to d.
// The directory is created when something in it is restored.
func (r *Restorer) child(d *dirHandle, n Node, selected bool) *dirHandle {
	c := &dirHandle{parent: d, name: n.Name, meta: n.Meta, selected: selected, depth: d.depth + 1, held: d.held}
	c.refs.Store(1)
	d.refs.Add(1)
	return c
}

// rel returns d's path relative to the target ("." for the target), built
// from its parents. Handles keep only their own names, and the walk keeps
// no path while it descends (paths are built when needed and dropped), so
// that a tree N directories deep holds memory in proportion to N, not to
// the N² bytes of all its directories' paths: a crafted chain of 4,000
// directories with 255-byte names took 6 GB when each level kept its path.
func (d *dirHandle) rel() string {
	var names []string
	for h := d; h.parent != nil; h = h.parent {
		names = append(names, h.name)
	}
	if len(names) == 0 {
		return "."
	}
	slices.Reverse(names)
	return path.Join(names...)
}

// snapPath returns the path in the snapshot of the entry name in d.
func (r *Restorer) snapPath(d *dirHandle, name string) string {
	return path.Join(r.rootPath, d.rel(), name)
}

// walkDir restores the contents of tree id into d, on a free walker or
// here when all are busy, and then releases d. A repository error stops
// the restore.
func (r *Restorer) walkDir(ctx context.Context, d *dirHandle, id repo.ID, selected bool) {
	walk := func() {
		if err := r.restoreDir(ctx, d, id, selected); err != nil {
			r.stop(err)
		}
		r.release(d)
	}
	select {
	case r.walkers <- struct{}{}:
		r.walking.Add(1)
		go func() {
			defer r.walking.Done()
			r.guard(walk)
			<-r.walkers
		}()
	default:
		walk()
	}
}

// restoreDir restores the contents of tree id into d. selected says the
// directory itself was selected, so everything below is too.
func (r *Restorer) restoreDir(ctx context.Context, d *dirHandle, id repo.ID, selected bool) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	t, held, err := loadTreeOnPath(ctx, r.ix, id, d.depth, d.held)
	if err != nil {
		return fmt.Errorf("%s: %w", r.snapPath(d, ""), err)
	}
	d.held = held // before its subdirectories' handles are made (child)
	for _, n := range t.Nodes {
		if !sources.ValidName(n.Name) { // DecodeTree rejects these already; stay safe anyway
			return &repo.CorruptError{Object: "tree " + id.String(), Reason: fmt.Sprintf("invalid name %q", n.Name)}
		}
		rel := path.Join(d.rel(), n.Name) // built once per entry, dropped before any descent
		if err := r.restoreEntry(ctx, path.Join(r.rootPath, rel), rel, d, n, selected); err != nil {
			return err
		}
	}
	return nil
}

func (r *Restorer) restoreEntry(ctx context.Context, snapPath, rel string, d *dirHandle, n Node, selected bool) error {
	if sources.MatchAny(r.opts.Excludes, snapPath) {
		return nil
	}
	if !selected && sources.MatchAny(r.opts.Includes, snapPath) {
		selected = true
	}
	if !selected {
		if n.Type == sources.TypeDir && r.mayContainIncluded(snapPath) {
			// A directory on the way to what --include selects: made
			// when missing, and like a selected one never put in place
			// of a file or symlink the target has there under
			// OverwriteNever.
			if r.opts.Overwrite == OverwriteNever && r.inTheWay(d, n.Name) {
				r.skipSubtree(rel)
				return nil
			}
			r.walkDir(ctx, r.child(d, n, false), n.Subtree, false)
		}
		return nil
	}
	if n.Type == sources.TypeDir {
		if r.opts.Overwrite == OverwriteNever && r.inTheWay(d, n.Name) {
			// A file or a symlink (to a directory elsewhere, say) where
			// the snapshot has a directory: left as it is, with all
			// the snapshot holds below it.
			r.skipSubtree(rel)
			return nil
		}
		c := r.child(d, n, true)
		if r.open(c) == nil {
			r.release(c)
			return nil // reported
		}
		r.nDirs.Add(1)
		r.walkDir(ctx, c, n.Subtree, true)
		return nil
	}
	dir := r.open(d)
	if dir == nil {
		return nil // reported
	}
	if r.opts.Overwrite != OverwriteAlways {
		skip, err := r.keepExisting(dir, rel, n)
		if err != nil {
			r.fail(rel, err)
			return nil
		}
		if skip {
			return nil
		}
	}
	if n.Type == sources.TypeFile {
		return r.restoreFile(ctx, d, rel, n)
	}
	if err := r.createSpecial(dir, rel, n); err != nil {
		r.fail(rel, err)
		return nil
	}
	r.nOther.Add(1)
	return nil
}

// keepExisting reports whether the entry n, at rel in dir, is to be left
// as the target has it (RestoreOptions.Overwrite). A regular file left
// with its contents gets n's metadata again (owner, mode, extended
// attributes and times).
//
// A kept regular file stands in for its hard link group: the group's
// names not in the target are linked to it, and a name that is in the
// target is kept only when it is that same inode (else it is replaced by
// a link, so the group is one file again). Other kinds of entries never
// stand in for a group: a link must not lead to whatever sits at the
// first name. Under OverwriteNever, which leaves a file as it is without
// looking at it, only one that looks like the snapshot's (its size and
// modification time, one link, owned by the snapshot's owner or the
// restore's user) stands in: the missing names of a group whose first
// name held a file of local edits were linked to it, taking its bytes
// (found by an exploratory test); they are written from the snapshot.
func (r *Restorer) keepExisting(dir *sources.Dir, rel string, n Node) (bool, error) {
	var ino uint64
	switch {
	case r.opts.Overwrite == OverwriteNever:
		st, exists, err := dir.Lstat(n.Name)
		if err != nil || !exists {
			return false, err
		}
		if st.Mode&unix.S_IFMT == unix.S_IFREG && uint64(st.Size) == n.Size && st.Mtim.Nano() == n.MTime && st.Nlink == 1 &&
			(st.Uid == n.UID || int(st.Uid) == r.euid) {
			ino = st.Ino
		}
		if n.Type == sources.TypeFile && (st.Mode&unix.S_IFMT != unix.S_IFREG || uint64(st.Size) != n.Size || st.Mtim.Nano() != n.MTime) {
			// Kept, as asked; but a file a restore cut off left partly
			// written looks just like this, and was kept without a word
			// (found by an exploratory test): counted, for the summary.
			// So is a FIFO or a device where the snapshot has a file.
			r.nDiffer.Add(1)
			at := r.at(rel)
			r.firstDiffer.CompareAndSwap(nil, &at)
		}
	case n.Type == sources.TypeFile && r.opts.NoSparse && dir.HasHoles(n.Name):
		// Written anew: --no-sparse over a restore made without it is
		// how a swap file gets its blocks (it was left as it was;
		// found by an exploratory test).
		return false, nil
	case n.Type == sources.TypeFile:
		same := func(i uint64) bool {
			ino = i
			return n.Links < 2 || r.groupInode(n, rel, i)
		}
		kept, err := dir.RefreshFile(n.Name, n.Meta, same)
		if !kept && n.Links > 1 && ino != 0 {
			// same registered the group at this name and its old inode,
			// which is not kept: the name is written anew, and a later
			// name at the old inode must not be kept apart from it (the
			// group came back split; found by an exploratory test).
			r.groupWrittenAnew(n, rel)
		}
		if err != nil || !kept {
			return false, err
		}
	case n.Type != sources.TypeDir && n.Links < 2:
		// A symlink, FIFO, socket or device node already as recorded
		// (its target or device number, owner, mode, times and extended
		// attributes) is left alone, as a regular file is: it was
		// removed and made again, which a restore not run as root may
		// not do in another user's sticky directory, nor for a device
		// node at all (found by an exploratory test). One of a hard link
		// group is made again, linked to the group's first name.
		if !dir.SpecialAsRecorded(n.Name, n.Meta) {
			return false, nil
		}
	default:
		return false, nil
	}
	if n.Links > 1 && ino != 0 {
		r.groupInode(n, rel, ino) // registers the group at this name, when it is the first
	}
	r.nSkip.Add(1)
	if n.Type == sources.TypeFile {
		r.opts.Report(Event{Kind: EventKept, Path: r.at(rel), Bytes: int64(n.Size)})
	}
	return true, nil
}

// skipSubtree counts a directory of the snapshot that OverwriteNever
// leaves out, since the target has a file or a symlink there, and says
// so: what the snapshot holds below it is not restored, which a count
// among the entries kept did not tell (found by an exploratory test).
func (r *Restorer) skipSubtree(rel string) {
	r.nSkip.Add(1)
	r.opts.Report(Event{Kind: EventWarning, Path: r.at(rel),
		Err: errors.New("left as it is (--overwrite never): the target has a file or symlink where the snapshot has a directory, and nothing the snapshot holds below it was restored")})
}

// inTheWay reports whether name in d is something other than a directory.
// d is not made for the question: a directory is made when something is
// restored in it, and --include under OverwriteNever made every directory
// the walk passed on the way to what it selected, empty (found by an
// exploratory test).
func (r *Restorer) inTheWay(d *dirHandle, name string) bool {
	d.mu.Lock()
	dir, failed := d.dir, d.failed
	d.mu.Unlock()
	if failed {
		return false // reported; the directory's own restore fails the same way
	}
	if dir == nil {
		isDir, exists, err := r.target.LstatDir(path.Join(d.rel(), name))
		return err == nil && exists && !isDir
	}
	st, exists, err := dir.Lstat(name)
	return err == nil && exists && st.Mode&unix.S_IFMT != unix.S_IFDIR
}

// groupInode reports whether ino may stand for n's hard link group: the
// group is not restored yet (it is then registered, at rel and ino) or was
// kept at that very inode.
func (r *Restorer) groupInode(n Node, rel string, ino uint64) bool {
	key := n.LinkGroup()
	r.linksMu.Lock()
	defer r.linksMu.Unlock()
	if _, ok := r.links[key]; !ok {
		r.links[key], r.linkInodes[key] = rel, ino
		return true
	}
	return r.linkInodes[key] == ino // 0 (written anew) matches no inode
}

// groupWrittenAnew records that rel, registered as the first of n's hard
// link group with the inode it had, is written anew: no other inode
// stands for the group.
func (r *Restorer) groupWrittenAnew(n Node, rel string) {
	key := n.LinkGroup()
	r.linksMu.Lock()
	defer r.linksMu.Unlock()
	if r.links[key] == rel {
		r.linkInodes[key] = 0
	}
}

// createSpecial creates a symlink, device node, FIFO or socket with its
// metadata, or links to one already restored (links between symlinks or
// device nodes are rare, but exist): see hardLinkOr.
func (r *Restorer) createSpecial(dir *sources.Dir, rel string, n Node) error {
	_, err := r.hardLinkOr(rel, n, func() error {
		var err error
		device := n.Type == sources.TypeDev || n.Type == sources.TypeCharDev
		switch {
		case n.Type == sources.TypeSymlink:
			err = dir.Symlink(n.LinkTarget, n.Name)
		case device && !r.mayMakeDevices(dir):
			// Refused before the entry the target has at that name is
			// removed to make room: mknod fails only after that, and a
			// user's file there was lost for nothing (found by an
			// exploratory test).
			err = &sources.PathError{Op: "mknod", Path: r.at(rel), Err: unix.EPERM}
		default:
			err = dir.Mknod(n.Name, n.Meta)
		}
		switch {
		case device && errors.Is(err, unix.EPERM) && r.euid != 0:
			// What fixes it: the restore's hint of trying again once
			// the cause is gone cannot (found by an exploratory test).
			err = fmt.Errorf("%w: device nodes are made by root only; restore them as root, or leave them out with --exclude", err)
		case device && errors.Is(err, unix.EPERM):
			err = fmt.Errorf("%w: this root may not make device nodes (in a user namespace or a container without the right); restore them on the host, or leave them out with --exclude", err)
		}
		if err == nil {
			err = dir.SetMeta(n.Name, n.Meta)
		}
		return err
	})
	return err
}

func (r *Restorer) mayContainIncluded(snapPath string) bool {
	for _, p := range r.opts.Includes {
		if p.MatchPrefix(snapPath) {
			return true
		}
	}
	return false
}

// restoreFile queues a file's contents for the workers, or makes it a hard
// link to an earlier copy of it.
func (r *Restorer) restoreFile(ctx context.Context, d *dirHandle, rel string, n Node) error {
	// The walker creates the file: so that later hard links to it find
	// it, before several workers write its parts, and so that the files of
	// one directory are created one after the other (file systems lock the
	// directory, and ext4 the inode group, while they create an entry:
	// workers creating files side by side in one directory mostly wait).
	fh := &fileHandle{dir: d, rel: rel, node: n}
	f, linked, err := r.createFirst(d, rel, n)
	if err != nil {
		r.fail(rel, err)
		return nil
	}
	if linked {
		r.nFiles.Add(1)
		r.opts.Report(Event{Kind: EventFile, Path: r.at(rel)}) // no bytes: a link
		return nil
	}
	fh.f = f
	jobs := []restoreJob{{file: fh, n: len(n.Content), whole: true}}
	if len(n.Content) > partChunks {
		// Several parts: their offsets come from the blobs' sizes.
		jobs = jobs[:0]
		var off int64
		for i, id := range n.Content {
			loc, ok := r.ix.Lookup(repo.DataBlob, id)
			if !ok {
				return r.fileFailed(fh, r.ix.NotIndexedError(ctx, repo.DataBlob, id))
			}
			if i%partChunks == 0 {
				jobs = append(jobs, restoreJob{file: fh, first: i, n: min(partChunks, len(n.Content)-i), off: off})
			}
			off += int64(loc.Entry.RawLength)
		}
		if uint64(off) != n.Size {
			return r.fileFailed(fh, &repo.CorruptError{Object: "file " + rel, Reason: fmt.Sprintf("content adds up to %d bytes, the tree says %d", off, n.Size)})
		}
	}
	fh.writeBehind = n.Size >= uint64(cmp.Or(r.opts.writeBehindMin, writeBehindMin))
	fh.parts.Store(int32(len(jobs)))
	d.refs.Add(1)
	for i, j := range jobs {
		select {
		case r.jobs <- j:
		case <-ctx.Done():
			// The parts not queued are finished here, as failed.
			for range jobs[i:] {
				r.partDone(fh, ctx.Err())
			}
			return ctx.Err()
		}
	}
	return nil
}

// createFirst creates a file, unless it is a hard link to a file already
// restored, which it then links to (hardLinkOr).
func (r *Restorer) createFirst(d *dirHandle, rel string, n Node) (f *sources.File, linked bool, err error) {
	linked, err = r.hardLinkOr(rel, n, func() (err error) {
		f, err = d.dir.CreateFile(n.Name, n.Meta)
		return err
	})
	return f, linked, err
}

// hardLinkOr links rel to the first restored entry of n's hard link group
// and reports linked, or, for the first of its group (or any entry that is
// not a hard link), runs create. Walkers run in parallel, so the first of a
// group is created under linksMu: a later link never finds it missing.
func (r *Restorer) hardLinkOr(rel string, n Node, create func() error) (linked bool, err error) {
	if n.Links > 1 {
		key := n.LinkGroup()
		r.linksMu.Lock()
		defer r.linksMu.Unlock()
		if first, ok := r.links[key]; ok && first != rel {
			lerr := r.target.Link(first, rel)
			if lerr == nil {
				return true, nil
			}
			// Linking failed (the first failed: a directory in its
			// way; another file system mounted in the target; the
			// file system's limit of links): this name is made, and
			// the group's later names link to it. They were each made
			// alone, the group came back as copies (found by an
			// exploratory test). Said once per group: the copies are
			// separate files now, where the snapshot had one (it was
			// not said at all).
			if err := create(); err != nil {
				return false, err
			}
			if !r.split[key] {
				r.split[key] = true
				r.opts.Report(Event{Kind: EventWarning, Path: r.at(rel),
					Err: fmt.Errorf("restored as a copy of its own, not as a hard link to %s, which the snapshot has it linked to: %w", r.at(first), lerr)})
			}
			r.links[key], r.linkInodes[key] = rel, 0
			return false, nil
		} else if !ok {
			r.links[key] = rel
		}
	}
	return false, create()
}

// fileFailed handles a file that cannot be queued at all.
func (r *Restorer) fileFailed(fh *fileHandle, err error) error {
	if fh.f != nil {
		fh.f.Close()
	}
	r.setFatal(fh.rel, err)
	return nil
}

// worker writes queued file parts until the queue is closed. A panic while
// writing a part fails the restore (setFatal), and the part still counts as
// done, so that its file is closed and its directory's metadata applied.
// The worker as a whole runs guarded too (see Restore).
func (r *Restorer) worker(ctx context.Context) {
	var buf []byte
	for j := range r.jobs {
		err := repo.Catch(func() (err error) {
			buf, err = r.writePart(ctx, j, buf)
			return err
		})
		r.partDone(j.file, err)
	}
}

// writePart writes one part of a file. Chunks that are all zero are
// skipped, and so are blocks of zeros in the others (writeSparse), leaving
// holes (the file is cut to its size at the end): sparse files stay
// sparse.
func (r *Restorer) writePart(ctx context.Context, j restoreJob, buf []byte) ([]byte, error) {
	fh := j.file
	fh.mu.Lock()
	failed := fh.err != nil
	fh.mu.Unlock()
	if failed {
		// The file failed already (a blob that could not be read): its
		// other parts are not fetched, each of which may wait out retries
		// of its own.
		return buf, nil
	}
	off := j.off
	for i := range j.n {
		id := fh.node.Content[j.first+i]
		n, zero := r.zeroBlobs.get(id)
		if !zero {
			var err error
			buf, err = r.opts.Blobs.LoadBlob(ctx, repo.DataBlob, id, buf[:0])
			if err != nil {
				if errors.Is(err, repo.ErrTransient) && ctx.Err() == nil && r.unreachable(id) {
					err = &unreachableError{err}
				}
				return buf, err
			}
			r.loaded.Store(true)
			n = len(buf)
			if zero = isZero(buf); zero {
				r.zeroBlobs.put(id, n)
			}
		}
		var end int64
		var err error
		switch {
		case r.opts.NoSparse && zero:
			end, err = writeZeros(fh.f, off, n)
		case r.opts.NoSparse:
			end, err = off+int64(n), fh.f.WriteAt(buf, off)
		case !zero:
			end, err = writeSparse(fh.f, buf, off)
		}
		if err != nil {
			return buf, err
		}
		for e := fh.end.Load(); e < end && !fh.end.CompareAndSwap(e, end); e = fh.end.Load() {
		}
		off += int64(n)
		r.nBytes.Add(int64(n))
		r.opts.Report(Event{Kind: EventRead, Path: r.at(fh.rel), Bytes: int64(n)})
	}
	if j.whole && uint64(off) != fh.node.Size {
		return buf, &repo.CorruptError{Object: "file " + fh.rel, Reason: fmt.Sprintf("content adds up to %d bytes, the tree says %d", off, fh.node.Size)}
	}
	return buf, fh.writtenBack(span{j.off, off - j.off})
}

// holeBlock is the granularity of the holes a restore leaves inside a
// chunk of data: the page and the block of the common file systems, as
// 'cp --sparse' does. On a file system of larger blocks a skipped piece
// shares its block with data, which the kernel fills with zeros.
const holeBlock = 4096

// writeSparse writes chunk b at offset off of a file the restore created
// (so unwritten bytes read as zeros), leaving out the pieces between
// multiples of holeBlock that are all zeros: a disk image's small
// extents of data are chunked together with the zeros around them, and
// restoring those zeros would allocate them (6.1 GB for an image of 0.4
// GB allocated, when only chunks of zeros were skipped). Consecutive
// pieces of data are written at once. It returns the end of the last byte
// written, or 0 when none was.
func writeSparse(f *sources.File, b []byte, off int64) (int64, error) {
	var end int64
	start := -1 // the start in b of the pending run of data, or -1
	for i := 0; i < len(b); {
		next := min(len(b), i+holeBlock-int((off+int64(i))%holeBlock))
		if !isZero(b[i:next]) {
			if start < 0 {
				start = i
			}
		} else if start >= 0 {
			if err := f.WriteAt(b[start:i], off+int64(start)); err != nil {
				return 0, err
			}
			end, start = off+int64(i), -1
		}
		i = next
	}
	if start >= 0 {
		if err := f.WriteAt(b[start:], off+int64(start)); err != nil {
			return 0, err
		}
		end = off + int64(len(b))
	}
	return end, nil
}

// zeroBlock is what writeZeros writes at a time.
var zeroBlock [256 << 10]byte

// writeZeros writes n zero bytes at offset off (RestoreOptions.NoSparse),
// and returns their end.
func writeZeros(f *sources.File, off int64, n int) (int64, error) {
	for n > 0 {
		k := min(n, len(zeroBlock))
		if err := f.WriteAt(zeroBlock[:k], off); err != nil {
			return 0, err
		}
		off += int64(k)
		n -= k
	}
	return off, nil
}

// writtenBack starts writing a part just written to disk and, once more
// than writeBehindParts parts are in flight, waits for the oldest to be on
// disk and drops it from the page cache (sources.File.StartWriteback).
// Parts finish roughly in file order, several at a time, so the ranges in
// flight are near each other and the disk writes them in order.
func (fh *fileHandle) writtenBack(s span) error {
	if !fh.writeBehind || s.n == 0 {
		return nil
	}
	if err := fh.f.StartWriteback(s.off, s.n); err != nil {
		return err
	}
	fh.mu.Lock()
	fh.behind = append(fh.behind, s)
	var old span
	if len(fh.behind) > writeBehindParts {
		old = fh.behind[0]
		fh.behind = append(fh.behind[:0], fh.behind[1:]...)
	}
	fh.mu.Unlock()
	if old.n == 0 {
		return nil
	}
	return fh.f.DropWritten(old.off, old.n)
}

// writtenBackAll waits for the parts of a written-behind file still in
// flight and drops them too, once its last part is written: the whole
// file leaves the page cache, and a write-back error of its last parts
// is reported like any other.
func (fh *fileHandle) writtenBackAll() error {
	if !fh.writeBehind {
		return nil
	}
	fh.mu.Lock()
	left := fh.behind
	fh.behind = nil
	fh.mu.Unlock()
	for _, s := range left {
		if err := fh.f.DropWritten(s.off, s.n); err != nil {
			return err
		}
	}
	return nil
}

// partDone records a finished part; the last one cuts the file to its size,
// sets its metadata and closes it.
func (r *Restorer) partDone(fh *fileHandle, err error) {
	if err != nil {
		fh.mu.Lock()
		if fh.err == nil {
			fh.err = err
		}
		fh.mu.Unlock()
		if ue := new(unreachableError); errors.As(err, &ue) {
			// The repository is gone: stop now, not once the file's
			// other parts have each waited out their retries (a 1 GB
			// file from a frozen server took 16 minutes to fail, where
			// many small files stopped after three packs; found by an
			// exploratory test).
			r.setFatal(fh.rel, err)
		}
	}
	if fh.parts.Add(-1) > 0 {
		return
	}
	defer r.release(fh.dir)
	err = fh.err
	if fh.f != nil {
		if err == nil {
			err = fh.writtenBackAll()
		}
		if err == nil && fh.end.Load() != int64(fh.node.Size) {
			// Holes at the end (or an empty file replacing a longer one).
			err = fh.f.Truncate(int64(fh.node.Size))
		}
		written := err == nil
		if err == nil {
			err = fh.f.SetMeta(fh.node.Meta)
		}
		if cerr := fh.f.Close(); err == nil {
			err = cerr
		}
		if written && err != nil {
			// All of its content is there, and counted as such: a
			// file system without extended attributes made a summary
			// of "0 files, 12 B" (found by an exploratory test). The
			// error says what it lacks.
			r.nFiles.Add(1)
		}
	}
	if err == nil {
		r.nFiles.Add(1)
		r.opts.Report(Event{Kind: EventFile, Path: r.at(fh.rel), Bytes: int64(fh.node.Size)})
		return
	}
	r.setFatal(fh.rel, err)
}

// setFatal reports a failed file: damage in the repository (or an
// interruption) makes the restore fail, naming every damaged file; a local
// write error is reported and the restore goes on. A panic (a bug) stops
// the restore at once, as in guard.
func (r *Restorer) setFatal(rel string, err error) {
	if pe := new(repo.PanicError); errors.As(err, &pe) {
		r.stop(fmt.Errorf("restore %s: %w", rel, err))
		return
	}
	if ue := new(unreachableError); errors.As(err, &ue) {
		// The repository stopped answering and its retries gave up, for
		// pack after pack with nothing loaded in between: every file
		// after these would wait as long and fail the same way (an S3
		// server killed during a restore gave 200 errors over two
		// minutes, found by an exploratory test). The restore stops, as
		// for a full target. One pack that cannot be fetched while others
		// can fails only the files that need it (below).
		r.stop(fmt.Errorf("restore %s: %w; the repository stopped answering and the restore stopped: once it answers, restore again with --overwrite if-changed to keep what is complete", rel, err))
		return
	}
	if errors.Is(err, context.Canceled) {
		// Interrupted: counted (RestoreStats.Incomplete), not reported
		// one by one as errors of their own.
		r.nIncomplete.Add(1)
		r.mu.Lock()
		if r.fatal == nil {
			r.fatal = fmt.Errorf("restore %s: %w", rel, err)
		}
		r.mu.Unlock()
		return
	}
	if errors.Is(err, repo.ErrCorrupt) || errors.Is(err, index.ErrBlobNotIndexed) || errors.Is(err, repo.ErrNotFound) {
		r.nDamaged.Add(1)
		if errors.Is(err, index.ErrCacheDamaged) {
			r.nCacheDmg.Add(1)
		}
		r.mu.Lock()
		first := r.fatal == nil
		if first {
			// Named where it is, as the error lines of the others are.
			r.fatal = fmt.Errorf("restore %s: %w", r.at(rel), err)
		}
		r.mu.Unlock()
		if first {
			return
		}
		// Every damaged file is named, not only the first: each one is
		// left incomplete in the target.
	}
	r.failWritten(rel, err, true)
}

// unreachableError marks the load that made the restore take the
// repository for gone (unreachable).
type unreachableError struct{ err error }

func (e *unreachableError) Error() string { return e.err.Error() }
func (e *unreachableError) Unwrap() error { return e.err }

// unreachable records that blob id could not be loaded because the
// repository did not answer, and reports whether the packs of
// unreachableAfter such blobs failed, with no blob loaded since the first.
func (r *Restorer) unreachable(id repo.ID) bool {
	loc, ok := r.ix.Lookup(repo.DataBlob, id)
	r.mu.Lock()
	defer r.mu.Unlock()
	answered := r.loaded.Swap(false)
	if ac, ok := r.opts.Blobs.(answerCounter); ok {
		n := ac.Answers()
		answered = n != r.answersAt
		r.answersAt = n
	}
	if answered || r.unanswered == nil {
		r.unanswered = map[repo.ID]bool{}
	}
	if ok {
		r.unanswered[loc.Pack] = true
	}
	return len(r.unanswered) >= unreachableAfter
}

// unreachableAfter is how many packs in a row must fail for want of an
// answer before the restore takes the repository for gone.
const unreachableAfter = 3
