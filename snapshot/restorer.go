package snapshot

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/snap-backup/snap/index"
	"github.com/snap-backup/snap/repo"
	"github.com/snap-backup/snap/sources"
)

// RestoreOptions tune a restore.
type RestoreOptions struct {
	Includes []sources.Pattern // when set, only matching paths (and what is below them)
	Excludes []sources.Pattern
	Workers  int
	Report   func(Event) // EventRead per chunk written, EventFile per restored file, EventError per failed entry
	// Blobs reads file contents; nil means the index, one ranged read
	// per blob (a remote repository passes an index.PackFetcher).
	Blobs BlobLoader
}

// BlobLoader reads and verifies blobs.
type BlobLoader interface {
	LoadBlob(ctx context.Context, t repo.BlobType, id repo.ID, dst []byte) ([]byte, error)
}

// RestoreStats counts what a restore wrote.
type RestoreStats struct {
	Files  int64
	Dirs   int64
	Bytes  int64
	Errors int64
}

// Restorer writes snapshot trees into a target directory. Every blob is
// verified against its ID as it is read, and every write goes through the
// target's confined root, so a hostile repository cannot write outside it.
type Restorer struct {
	ix     *index.Index
	target *sources.Target
	opts   RestoreOptions

	jobs    chan restoreJob
	wg      sync.WaitGroup
	mu      sync.Mutex
	links   map[[2]uint64]string // (device, inode) → first restored path
	dirs    []dirMeta            // directories whose metadata is applied last
	made    map[string]bool      // directories created so far
	fatal   error
	stats   RestoreStats
	nFiles  atomic.Int64
	nBytes  atomic.Int64
	nErrors atomic.Int64
}

type restoreJob struct {
	rel  string
	node Node
	f    *os.File
}

type dirMeta struct {
	rel  string
	meta sources.Meta
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
	return &Restorer{ix: ix, target: target, opts: o, links: map[[2]uint64]string{}, made: map[string]bool{".": true}}
}

// Restore writes node (found at snapPath in the snapshot) into the target.
// A directory's contents go directly into the target; a single file or
// other entry is written under its own name.
func (r *Restorer) Restore(ctx context.Context, snapPath string, node Node) (RestoreStats, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	r.jobs = make(chan restoreJob, r.opts.Workers)
	for range r.opts.Workers {
		r.wg.Add(1)
		go r.worker(ctx)
	}
	var err error
	if node.Type == sources.TypeDir {
		err = r.restoreDir(ctx, snapPath, ".", node.Subtree, r.selectedAll())
	} else {
		err = r.restoreEntry(ctx, snapPath, node.Name, node, r.selectedAll())
	}
	close(r.jobs)
	r.wg.Wait()
	if err == nil {
		err = r.fatal
	}
	if err == nil {
		err = r.applyDirMeta()
	}
	st := RestoreStats{Files: r.nFiles.Load(), Dirs: int64(len(r.dirs)), Bytes: r.nBytes.Load(), Errors: r.nErrors.Load()}
	return st, err
}

func (r *Restorer) selectedAll() bool { return len(r.opts.Includes) == 0 }

func (r *Restorer) fail(rel string, err error) {
	r.nErrors.Add(1)
	r.opts.Report(Event{Kind: EventError, Path: path.Join(r.target.Dir(), rel), Err: err})
}

// ensureDir creates the directories leading to rel that do not exist yet
// (used when includes select something deep inside).
func (r *Restorer) ensureDir(rel string) error {
	if rel == "." || rel == "" {
		return nil
	}
	r.mu.Lock()
	done := r.made[rel]
	r.mu.Unlock()
	if done {
		return nil
	}
	if err := r.ensureDir(path.Dir(rel)); err != nil {
		return err
	}
	if err := r.target.Mkdir(rel); err != nil {
		return err
	}
	r.mu.Lock()
	r.made[rel] = true
	r.mu.Unlock()
	return nil
}

// restoreDir restores the contents of tree id into rel. selected says the
// directory itself was selected, so everything below is too.
func (r *Restorer) restoreDir(ctx context.Context, snapPath, rel string, id repo.ID, selected bool) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	t, err := LoadTree(ctx, r.ix, id)
	if err != nil {
		return fmt.Errorf("%s: %w", snapPath, err)
	}
	for _, n := range t.Nodes {
		if !sources.ValidName(n.Name) { // DecodeTree rejects these already; stay safe anyway
			return &repo.CorruptError{Object: "tree " + id.String(), Reason: fmt.Sprintf("invalid name %q", n.Name)}
		}
		if err := r.restoreEntry(ctx, path.Join(snapPath, n.Name), path.Join(rel, n.Name), n, selected); err != nil {
			return err
		}
	}
	return nil
}

func (r *Restorer) restoreEntry(ctx context.Context, snapPath, rel string, n Node, selected bool) error {
	if sources.MatchAny(r.opts.Excludes, snapPath) {
		return nil
	}
	if !selected && sources.MatchAny(r.opts.Includes, snapPath) {
		selected = true
	}
	if !selected {
		if n.Type == sources.TypeDir && r.mayContainIncluded(snapPath) {
			return r.restoreDir(ctx, snapPath, rel, n.Subtree, false)
		}
		return nil
	}
	if err := r.ensureDir(path.Dir(rel)); err != nil {
		r.fail(rel, err)
		return nil
	}
	switch n.Type {
	case sources.TypeDir:
		if err := r.ensureDir(rel); err != nil {
			r.fail(rel, err)
			return nil
		}
		r.mu.Lock()
		r.dirs = append(r.dirs, dirMeta{rel: rel, meta: n.Meta})
		r.mu.Unlock()
		return r.restoreDir(ctx, snapPath, rel, n.Subtree, true)
	case sources.TypeFile:
		return r.restoreFile(ctx, rel, n)
	case sources.TypeSymlink:
		if err := r.target.Symlink(n.LinkTarget, rel); err != nil {
			r.fail(rel, err)
			return nil
		}
	default:
		if err := r.target.Mknod(rel, n.Meta); err != nil {
			r.fail(rel, err)
			return nil
		}
	}
	if err := r.target.SetMeta(rel, n.Meta); err != nil {
		r.fail(rel, err)
	}
	return nil
}

func (r *Restorer) mayContainIncluded(snapPath string) bool {
	for _, p := range r.opts.Includes {
		if p.MatchPrefix(snapPath) {
			return true
		}
	}
	return false
}

// restoreFile creates the file (or a hard link to an earlier copy of it)
// here, in walk order, and leaves its content to a worker.
func (r *Restorer) restoreFile(ctx context.Context, rel string, n Node) error {
	if n.Links > 1 {
		key := [2]uint64{n.Device, n.Inode}
		r.mu.Lock()
		first, ok := r.links[key]
		if !ok {
			r.links[key] = rel
		}
		r.mu.Unlock()
		if ok {
			if err := r.target.Link(first, rel); err == nil {
				r.nFiles.Add(1)
				r.opts.Report(Event{Kind: EventFile, Path: rel}) // no bytes: a link
				return nil
			}
			// Linking failed (the first copy was excluded or failed): write a copy.
		}
	}
	f, err := r.target.CreateFile(rel)
	if err != nil {
		r.fail(rel, err)
		return nil
	}
	select {
	case r.jobs <- restoreJob{rel: rel, node: n, f: f}:
		return nil
	case <-ctx.Done():
		f.Close()
		return ctx.Err()
	}
}

func (r *Restorer) worker(ctx context.Context) {
	defer r.wg.Done()
	var buf []byte
	for j := range r.jobs {
		var err error
		buf, err = r.writeContent(ctx, j, buf)
		if err == nil {
			err = sources.SetFileMeta(j.f, j.node.Meta)
		}
		if cerr := j.f.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			r.nFiles.Add(1)
			r.opts.Report(Event{Kind: EventFile, Path: j.rel, Bytes: int64(j.node.Size)})
			continue
		}
		if errors.Is(err, repo.ErrCorrupt) || errors.Is(err, index.ErrBlobNotIndexed) || errors.Is(err, context.Canceled) {
			r.mu.Lock()
			first := r.fatal == nil
			if first {
				r.fatal = fmt.Errorf("restore %s: %w", j.rel, err)
			}
			r.mu.Unlock()
			if first {
				continue
			}
			// Every damaged file is named, not only the first: each one is
			// left incomplete in the target.
		}
		r.fail(j.rel, err)
	}
}

// writeContent writes a file's chunks in order. Chunks that are all zero
// are skipped, leaving holes, and the file is cut to its size at the end:
// sparse files stay sparse.
func (r *Restorer) writeContent(ctx context.Context, j restoreJob, buf []byte) ([]byte, error) {
	var off int64
	for _, id := range j.node.Content {
		var err error
		buf, err = r.opts.Blobs.LoadBlob(ctx, repo.DataBlob, id, buf[:0])
		if err != nil {
			return buf, err
		}
		if !isZero(buf) {
			if _, err := j.f.WriteAt(buf, off); err != nil {
				return buf, err
			}
		}
		off += int64(len(buf))
		r.nBytes.Add(int64(len(buf)))
		r.opts.Report(Event{Kind: EventRead, Path: j.rel, Bytes: int64(len(buf))})
	}
	if uint64(off) != j.node.Size {
		return buf, &repo.CorruptError{Object: "file " + j.rel, Reason: fmt.Sprintf("content adds up to %d bytes, the tree says %d", off, j.node.Size)}
	}
	return buf, j.f.Truncate(off)
}

func isZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// applyDirMeta sets directory metadata deepest first, after their contents
// are written (writing into a directory changes its mtime).
func (r *Restorer) applyDirMeta() error {
	sort.SliceStable(r.dirs, func(i, j int) bool { return len(r.dirs[i].rel) > len(r.dirs[j].rel) })
	for _, d := range r.dirs {
		if err := r.target.SetMeta(d.rel, d.meta); err != nil {
			r.fail(d.rel, err)
		}
	}
	return nil
}
