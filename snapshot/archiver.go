package snapshot

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/snap-backup/snap/chunk"
	"github.com/snap-backup/snap/index"
	"github.com/snap-backup/snap/repo"
	"github.com/snap-backup/snap/sources"
)

// EventKind classifies archiver events.
type EventKind int

// Archiver events.
const (
	EventFile    EventKind = iota // a file was saved (Bytes: its size)
	EventRead                     // bytes were read (Bytes: how many)
	EventError                    // a path could not be read and was skipped
	EventWarning                  // something worth telling that did not cost data
	EventKept                     // restore: a file in the target was left as it was (Bytes: its size)
	EventLeftOut                  // create: a directory of ArchiveOptions.LeaveOut was met and left out (Err: why)
)

// Event is reported to ArchiveOptions.Report, possibly from several
// goroutines at once.
type Event struct {
	Kind  EventKind
	Path  string
	Bytes int64
	Err   error
}

// Stream is a non-file source: its bytes are stored as the regular file
// Path (absolute, in the snapshot tree). Open starts it; the returned
// reader's Close reports whether the producer succeeded (a dump tool's exit
// status), and a failure there aborts the snapshot.
type Stream struct {
	Path   string
	Open   func(ctx context.Context) (io.ReadCloser, error)
	Mode   uint32 // permission bits of the stored file, 0600 when zero
	Source Source
	// Properties, when set, gives what the source recorded about itself
	// while it ran (Source.Properties), asked once it has ended well.
	Properties func() *sources.DatabaseProperties
	// Check, when set, is asked once the stream has ended well whether
	// what it gave lost anything on the way (an SQLite TEXT value cut at a
	// NUL by the dump tool): such an error is reported as an unreadable
	// file is, and the stream is saved all the same: the snapshot is, and
	// the run ends with a partial status. A warning is about what a
	// restore of it will meet (a schema that snap's loader lacks a
	// collation for), reported as warnings are.
	Check func(ctx context.Context) (warning string, err error)

	parent *Node // the previous dump's node (set by Create): its content, for deltas, and its times
}

// ArchiveOptions tune the archiver.
type ArchiveOptions struct {
	Excludes      []sources.Pattern
	OneFileSystem bool
	// ExcludeIfPresent names tag files, and ExcludeCaches adds
	// CACHEDIR.TAG with its signature: a directory holding one is saved
	// with its tag files only (sources.TagFiles).
	ExcludeIfPresent []string
	ExcludeCaches    bool
	// ExcludeLargerThan leaves out regular files of more bytes than this,
	// found in the walk (0: no limit).
	ExcludeLargerThan uint64
	// LeaveOut are directories the walk leaves out whole, by device and
	// inode, each with why: the repository the snapshot goes into and
	// its cache. A nightly backup of / would otherwise hold the
	// repository, and each night a copy of the night before.
	LeaveOut map[[2]uint64]string
	// Walkers directories are listed at once; FileWorkers files are read
	// at once; SaveWorkers blobs are compressed and encrypted at once.
	Walkers     int
	FileWorkers int
	SaveWorkers int
	// BasesByRequest says that reading a delta's base is a request to a
	// remote repository: a changed file under smallDelta (one chunk) is
	// then stored as a delta of its old version only when that is in the
	// cache of bases; dumps and larger files still read their bases. Each such base was a ranged GET, made by the save workers,
	// one per core, while the CPU waited: an incremental create of 500
	// changed small files on S3 made 505 GETs, two at a time, and took 12 s
	// where restic took 1.8 (found by an exploratory test); the bytes a
	// delta saves on so small a chunk are fewer than a request costs.
	BasesByRequest bool
	// Streams dumps and commands run at once (0: DefaultStreams); the
	// others wait for one to end before they start.
	Streams int
	// Scouts goroutines at most, across all files read at once, find the
	// cut points of large files ahead of their readers (chunk.Parallel);
	// 0 means one per CPU (at most maxScouts) when there are two CPUs or
	// more, negative none.
	Scouts int
	Report func(Event)
	// scoutRegion overrides chunk.DefaultRegion (tests: small files, many
	// regions).
	scoutRegion int64
	// reuseBatch overrides reuseBatch (tests: many batches, files checked
	// on their own).
	reuseBatch int
	Now        func() time.Time
}

// archiver builds one snapshot's trees. It is one pipeline of bounded
// stages:
//
//	walkers (list directories, lstat entries; Walkers at once)
//	  → fileQ → file workers (read, chunk, hash, skip known chunks)
//	  → saveQ → save workers (compress, encrypt, add to a pack)
//	  → index.Writer (upload full packs, write index segments)
//
// A directory's tree is saved once all its entries are, by a goroutine that
// waits for them, so the walk never waits for file contents and several
// directories are read at once. A fixed set of chunk buffers bounds the
// memory in flight; a full saveQ or an empty buffer set holds the file
// workers back, and a full fileQ holds the walkers back.
type archiver struct {
	ix   *index.Index
	w    *index.Writer
	meta *sources.Reader
	opts ArchiveOptions
	// named holds the paths given to the run (set by run before the walk
	// starts, read-only afterwards): ExcludeLargerThan never leaves them out.
	named map[string]bool
	// badParents holds the parent trees that could not be loaded, warned
	// about once: the directories leading to the backed-up paths are
	// looked up twice, to start the walks and to assemble their trees.
	badParents sync.Map
	files      chunk.Params
	streams    chunk.Params

	bufs         bufPool
	scouts       chan struct{} // a slot per scout running (ArchiveOptions.Scouts)
	walkers      chan struct{}
	fileQ        chan fileJob
	saveQ        chan saveJob
	chunkers     sync.Pool // *chunk.Chunker for files (--sequential-read)
	fileChunkers sync.Pool // *chunk.FileChunker for files
	streamCutter sync.Pool // *chunk.StreamChunker for streams (bounds a.streams)
	dirBufs      sync.Pool // *[]byte: room for reading a directory's entries (sources.Listing.Names)
	// beneath opens directories and files below the backed-up
	// directories without following a symlink swapped in on the way.
	beneath *sources.Beneath

	// saveErr is the first error of a save worker; it cancels the run.
	errMu   sync.Mutex
	saveErr error
	cancel  context.CancelFunc

	hlMu      sync.Mutex
	hardlinks map[[2]uint64]linkedContent

	dict *dictionaries // nil: small files are compressed alone

	// zeroIDs holds the IDs of sparse files' all-zero chunks, by length.
	zeroIDs zeroCache[int, repo.ID]

	nFiles, nDirs, nBytes, nRead, nErrors atomic.Int64
}

type fileResult struct {
	node  Node
	err   error // the file was skipped (reported) when err is a *sources.PathError; fatal otherwise
	fatal bool
	// excluded: the file is left out without a word (it grew past
	// ExcludeLargerThan after it was listed).
	excluded bool
	// kept: err is reported, and node is saved all the same (a directory
	// that could not be listed, with its own metadata and no entries).
	kept bool
}

type fileJob struct {
	path   string
	meta   sources.Meta
	parent []repo.ID // the content of the file's previous version, for deltas
	result chan fileResult
}

type saveJob struct {
	id   repo.ID
	data []byte
	buf  []byte
	// hashed, when set, means the save worker hashes the chunk: it writes
	// the ID to *slot, skips the chunk if it is known, and calls Done.
	slot   *repo.ID
	hashed *sync.WaitGroup
	// off is where the chunk starts in its file; pc, when set, maps the
	// file's previous version, so that a new chunk can be stored as a
	// delta against it (delta.go).
	off int64
	pc  *parentChunks
	// small marks a whole file smaller than a chunk, which may be stored
	// against the run's dictionary (dictionary.go).
	small bool
}

func chunkParams(p repo.ChunkerParams) chunk.Params {
	return chunk.Params{Polynomial: p.Polynomial, MinSize: p.MinSize, MaxSize: p.MaxSize, AverageBits: p.AverageBits}
}

// ConfigChunkerError says which of the config's chunker parameters cannot
// drive a chunker (nil when they all can): a create refuses such a
// config, and check reports it.
func ConfigChunkerError(cfg repo.Config) error {
	if err := chunkParams(cfg.Chunker).Validate(); err != nil {
		return fmt.Errorf("chunker: %w", err)
	}
	if cfg.StreamChunker != nil {
		if err := chunkParams(*cfg.StreamChunker).Validate(); err != nil {
			return fmt.Errorf("stream_chunker: %w", err)
		}
	}
	return nil
}

func newArchiver(ix *index.Index, w *index.Writer, o ArchiveOptions) (*archiver, error) {
	cfg := ix.Repository().Config()
	a := &archiver{ix: ix, w: w, meta: sources.NewReader(), beneath: sources.NewBeneath(), opts: o, files: chunkParams(cfg.Chunker), hardlinks: map[[2]uint64]linkedContent{}}
	a.streams = a.files
	if cfg.StreamChunker != nil {
		a.streams = chunkParams(*cfg.StreamChunker)
	}
	if err := ConfigChunkerError(cfg); err != nil {
		return nil, &repo.CorruptError{Object: "config", Reason: err.Error()}
	}
	if a.opts.Walkers < 1 {
		a.opts.Walkers = 2 * runtime.NumCPU()
	}
	if a.opts.FileWorkers < 1 {
		a.opts.FileWorkers = 2 * runtime.NumCPU()
	}
	if a.opts.SaveWorkers < 1 {
		a.opts.SaveWorkers = runtime.NumCPU()
	}
	if a.opts.Scouts == 0 && runtime.NumCPU() > 1 {
		a.opts.Scouts = min(runtime.NumCPU(), maxScouts)
	}
	a.scouts = make(chan struct{}, max(a.opts.Scouts, 0))
	if a.opts.Report == nil {
		a.opts.Report = func(Event) {}
	}
	if a.opts.Now == nil {
		a.opts.Now = time.Now
	}
	// One buffer for each file worker, each slot of the save queue and
	// each save worker, and one to spare.
	nbuf := a.opts.FileWorkers + 2*a.opts.SaveWorkers + 1
	a.bufs.sem = make(chan struct{}, nbuf)
	// A buffer grown for a chunk of up to the largest size is kept: with
	// the old bound (twice the typical buffer, 5 MiB), every chunk over it
	// took fresh memory, faulted in and cleared, and dataset 2's create
	// spent 0.3–0.4 s more of system time (8 interleaved pairs: 6.00 s
	// against 6.28 s, peak RSS a few MB higher). A single stream keeps
	// using the five or so buffers it has in flight, so at most those grow.
	a.bufs.keep = max(a.files.MaxSize, a.streams.MaxSize) + 1
	a.walkers = make(chan struct{}, a.opts.Walkers)
	a.fileQ = make(chan fileJob, a.opts.FileWorkers)
	a.saveQ = make(chan saveJob, a.opts.SaveWorkers)
	return a, nil
}

// getBuf returns a chunk buffer with room for size bytes, waiting while
// all are in use.
func (a *archiver) getBuf(ctx context.Context, size uint) ([]byte, error) {
	return a.bufs.get(ctx, size)
}

// bufPool hands out at most cap(sem) chunk buffers at once. Buffers are
// allocated on first use, as large as needed, and the most recently given
// back is handed out first: a single stream keeps reusing the few buffers
// it has in flight, and the others are never allocated.
type bufPool struct {
	sem  chan struct{}
	keep uint // buffers grown beyond this for a large chunk are dropped when given back
	mu   sync.Mutex
	free [][]byte
}

func (p *bufPool) get(ctx context.Context, size uint) ([]byte, error) {
	select {
	case p.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	var b []byte
	p.mu.Lock()
	if n := len(p.free); n > 0 {
		b, p.free = p.free[n-1], p.free[:n-1]
	}
	p.mu.Unlock()
	if uint(cap(b)) < size {
		b = make([]byte, 0, size)
	}
	return b[:0], nil
}

func (p *bufPool) put(b []byte) {
	if uint(cap(b)) <= p.keep {
		p.mu.Lock()
		p.free = append(p.free, b)
		p.mu.Unlock()
	}
	<-p.sem
}

// failSave records the first error of a save worker and stops the run.
func (a *archiver) failSave(err error) {
	a.errMu.Lock()
	if a.saveErr == nil {
		a.saveErr = err
	}
	a.errMu.Unlock()
	a.cancel()
}

func (a *archiver) saveError() error {
	a.errMu.Lock()
	defer a.errMu.Unlock()
	return a.saveErr
}

// saveAlone saves j's chunk as no delta: a small file's against the
// dictionary of small files when there is one, else compressed alone.
func (a *archiver) saveAlone(ctx context.Context, j saveJob) error {
	if j.small && a.dict != nil {
		return a.dict.save(ctx, j.id, j.data)
	}
	_, err := a.w.Save(ctx, repo.DataBlob, j.id, j.data)
	return err
}

// smallDelta is the size under which a changed file of a remote
// repository is stored as a delta only when its bases are cached
// (ArchiveOptions.BasesByRequest): a request's round trip costs more
// than a delta saves on fewer bytes than these.
const smallDelta = 64 << 10

// start launches the worker pools; stop ends them.
func (a *archiver) start(ctx context.Context) (stop func()) {
	var wg sync.WaitGroup
	for range a.opts.FileWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range a.fileQ {
				j.result <- a.safe(func() fileResult { return a.saveFile(ctx, j.path, j.meta, j.parent) })
			}
		}()
	}
	var swg sync.WaitGroup
	for range a.opts.SaveWorkers {
		swg.Add(1)
		go func() {
			defer swg.Done()
			h := a.ix.Hasher()
			defer a.ix.PutHasher(h)
			for j := range a.saveQ {
				// Each job is guarded on its own: whatever happens, its
				// buffer goes back and its file worker hears it is done.
				err := repo.Catch(func() (err error) {
					if j.slot != nil {
						j.id = repo.ID(h.Sum(j.data))
						*j.slot = j.id
					}
					switch {
					case j.slot != nil && a.w.Reusable(ctx, repo.DataBlob, j.id):
						if j.pc != nil {
							j.pc.unchanged(j.off, j.id)
						}
					case j.pc != nil:
						bases, inherited := j.pc.basesFor(j.off, len(j.data))
						switch {
						case j.small && a.dict != nil && a.dict.covers(bases):
							// The old version was stored against the
							// dictionary too: the dictionary's encoder
							// does the same, faster.
							err = a.dict.save(ctx, j.id, j.data)
						case a.opts.BasesByRequest && j.small && len(j.data) < smallDelta && !a.ix.BasesCached(bases):
							err = a.saveAlone(ctx, j)
						default:
							_, err = a.w.SaveDelta(ctx, j.id, j.data, bases, inherited, func(at int, base repo.ID, baseAt int) {
								j.pc.located(j.off+int64(at), base, baseAt)
							})
						}
					default:
						err = a.saveAlone(ctx, j)
					}
					return err
				})
				a.bufs.put(j.buf)
				if j.hashed != nil {
					j.hashed.Done()
				}
				if err != nil {
					a.failSave(err)
				}
			}
		}()
	}
	return func() {
		close(a.fileQ)
		wg.Wait()
		close(a.saveQ)
		swg.Wait()
		a.bufs.free = nil // the chunk buffers are garbage now
	}
}

// streamError marks a failure of the source being read (as opposed to the
// repository), so that file reads can be skipped and reported.
type streamError struct{ err error }

func (e *streamError) Error() string { return e.err.Error() }
func (e *streamError) Unwrap() error { return e.err }

// saveContent chunks rd, hands new chunks to the save workers and returns
// the chunk IDs and the byte count. It does not wait for the chunks to be
// saved: a save error stops the whole run (see failSave), and the snapshot
// is written only after the writer's Flush. parent, when set, is the
// content of the previous version, which new chunks may be stored as
// deltas against. holes, when set, is rd's sparse file: its chunks of
// zeros are many, and their ID is known without hashing them (zeroID).
func (a *archiver) saveContent(ctx context.Context, rd io.Reader, p chunk.Params, name string, size int64, parent []repo.ID, holes *sources.Sparse) (ids []repo.ID, total int64, err error) {
	h := a.ix.Hasher()
	defer a.ix.PutHasher(h)

	var (
		// A large file or a stream has its chunks hashed by the save
		// workers, so that chunking, the one stage that cannot be split,
		// has its core to itself; small files hash their chunks here,
		// without waiting for the save workers.
		offload = size < 0 || size > offloadSize
		slots   []*repo.ID
		hashed  sync.WaitGroup
	)
	if size >= 0 {
		ids = make([]repo.ID, 0, size/int64(p.MinSize)/2+1)
	}
	var pc *parentChunks
	if len(parent) > 0 {
		pc = newParentChunks(a.ix, parent)
	}
	if offload {
		defer func() {
			hashed.Wait()
			ids = ids[:0]
			for _, s := range slots {
				ids = append(ids, *s)
			}
		}()
	}
	// emit hands one chunk, read into buf, on (or drops it when known).
	small := false // the whole file is one chunk
	emit := func(data []byte) error {
		job := saveJob{data: data, buf: data[:0], off: total, pc: pc, small: small}
		total += int64(len(data))
		a.opts.Report(Event{Kind: EventRead, Path: name, Bytes: int64(len(data))})
		// In a sparse file, a chunk of zeros (most often a hole's) needs
		// no hashing. Decided by the bytes read, never by asking the
		// kernel again: a hole punched between the read and the question
		// made a chunk of data pass for zeros, and its hash became the
		// run's ID of zeros (found by an exploratory test). The test
		// stops at the first byte that is not zero.
		zero := holes != nil && isZero(data)
		if !zero {
			// The summary's bytes read leave out a sparse file's chunks
			// of zeros, nearly all holes that were never read.
			a.nRead.Add(int64(len(data)))
		}
		if offload && !zero {
			job.slot, job.hashed = new(repo.ID), &hashed
			slots = append(slots, job.slot)
			hashed.Add(1)
		} else {
			if zero {
				job.id = a.zeroID(h, data)
			} else {
				job.id = repo.ID(h.Sum(data))
			}
			if offload {
				slot := job.id
				slots = append(slots, &slot)
			} else {
				ids = append(ids, job.id)
			}
			if a.w.Reusable(ctx, repo.DataBlob, job.id) {
				if pc != nil {
					pc.unchanged(job.off, job.id)
				}
				a.bufs.put(job.buf)
				return nil
			}
		}
		select {
		case a.saveQ <- job:
			return nil
		case <-ctx.Done():
			a.bufs.put(job.buf)
			if job.hashed != nil {
				hashed.Done()
			}
			return ctx.Err()
		}
	}

	if size >= 0 && size < int64(p.MinSize) {
		// A file smaller than the minimum chunk size is one chunk: read it
		// with one system call, without the chunker (whose buffered reads
		// take three calls to see the end of a small file).
		room := uint(size) + 1
		if size == 0 {
			// Kernel pseudo-files (/proc, /sys) say 0 bytes and give
			// their content to one read from offset 0 only: a read of one
			// byte, then one from offset 1, kept "2" of "256\n".
			room = pseudoFileRoom
		}
		buf, err := a.getBuf(ctx, room)
		if err != nil {
			return ids, total, err
		}
		n, eof, err := readSmall(rd, buf[:room], int(size))
		switch {
		case err != nil:
			a.bufs.put(buf)
			return ids, total, &streamError{readError(name, err)}
		case eof && n == 0:
			a.bufs.put(buf)
			return ids, total, nil
		case eof:
			small = true
			return ids, total, emit(buf[:n])
		}
		// The file has grown since it was listed: chunk all of it.
		rd = io.MultiReader(bytes.NewReader(append([]byte(nil), buf[:n]...)), rd)
		a.bufs.put(buf)
	}

	next := a.chunker(ctx, rd, p, size)
	defer next.Close()
	for {
		// A buffer has room for a typical chunk (twice the average), or
		// what is left of a file plus a byte to see its end; the chunker
		// grows it for a larger chunk, and it then serves again. Sized for
		// the largest chunk (8 MiB), the buffers of one large file took
		// 70 MB.
		need := bufferFor(p)
		if size >= 0 {
			need = uint(min(int64(need), max(size-total, 0)+1))
		}
		buf, err := a.getBuf(ctx, need)
		if err != nil {
			return ids, total, err
		}
		data, err := next.Next(buf)
		if err == io.EOF {
			a.bufs.put(buf)
			return ids, total, nil
		}
		if err != nil {
			a.bufs.put(buf)
			if ctx.Err() != nil {
				return ids, total, ctx.Err() // the run is failing: not this file's read error
			}
			return ids, total, &streamError{readError(name, err)}
		}
		if err := emit(data); err != nil {
			return ids, total, err
		}
	}
}

// zeroID returns the ID of data, which is all zeros (the caller checked
// every byte): most often a chunk in a hole. Each chunk of a long hole is
// MinSize bytes long, so one hash serves them all.
func (a *archiver) zeroID(h *chunk.Hasher, data []byte) repo.ID {
	if id, ok := a.zeroIDs.get(len(data)); ok {
		return id
	}
	id := repo.ID(h.Sum(data))
	a.zeroIDs.put(len(data), id)
	return id
}

// namingPath prefixes err with path, unless it names path already (a read
// error does: readError).
func namingPath(path string, err error) error {
	if strings.Contains(err.Error(), path) {
		return err
	}
	return fmt.Errorf("%s: %w", path, err)
}

// readError names the file a read failed on, unless the error names it
// already (a *sources.PathError does: "read /x/f: read /x/f: …" said it
// twice).
func readError(name string, err error) error {
	if strings.Contains(err.Error(), name) {
		return err
	}
	return fmt.Errorf("read %s: %w", name, err)
}

// chunkSource is what saveContent cuts a file or stream with.
type chunkSource interface {
	Next(buf []byte) ([]byte, error)
	Close()
}

// pooledChunker is a chunker of the archiver's pool; Close returns it.
type pooledChunker struct {
	*chunk.Chunker
	pool *sync.Pool
}

func (c pooledChunker) Close() {
	if c.pool != nil {
		c.pool.Put(c.Chunker)
	}
}

// chunker returns what cuts rd: for a large file (two scouting regions or
// more) a chunk.Parallel, whose scouts find the cut points of regions
// ahead on the other cores (the one chunker was the stage that left a core
// idle on a single large file: docs/benchmarks.md); for another file a
// chunk.FileChunker from the pool; for a stream a chunk.StreamChunker; for
// a file with --sequential-read (and a stream with bounds too large for a
// StreamChunker's window) one chunk.Chunker. The chunks are the same
// either way.
func (a *archiver) chunker(ctx context.Context, rd io.Reader, p chunk.Params, size int64) chunkSource {
	region := chunk.ParallelRegion(p, a.opts.scoutRegion)
	ra, isFile := rd.(io.ReaderAt)
	isFile = isFile && size >= 0 // a stream has no size, and may be a pipe
	if isFile && size >= chunk.ParallelMinRegion*region {
		// Scouts are a budget of the whole run, not of each file: each
		// holds a read buffer and CPU time, and 2 × CPUs files are read at
		// once. A file takes the slots that are free; with none, it is
		// read with one chunker, as a smaller file is.
		n := 0
	take:
		for n < cap(a.scouts) {
			select {
			case a.scouts <- struct{}{}:
				n++
			default:
				break take
			}
		}
		if n > 0 {
			pc := chunk.NewParallel(ctx, ra, size, p, chunk.ParallelOptions{Region: region, Scouts: n, Go: a.goScout})
			spare.hold()
			return scoutedChunker{pc, a.scouts, n}
		}
	}
	if !isFile && p == a.streams && p.MaxSize <= chunk.StreamChunkerMaxSize {
		// A stream has one goroutine to cut it, which bounds how fast a
		// dump is saved: a chunk.StreamChunker cuts it in a window of
		// its bytes for two thirds of restic/chunker's CPU.
		sc, _ := a.streamCutter.Get().(*chunk.StreamChunker)
		if sc == nil {
			sc = chunk.NewStreamChunker(p)
		}
		sc.Reset(rd)
		return pooledStreamChunker{sc, &a.streamCutter}
	}
	if p != a.files {
		return pooledChunker{Chunker: chunk.New(rd, p)}
	}
	if isFile && a.opts.Scouts >= 0 && p.MinSize+1<<uint(p.AverageBits) >= chunk.FileChunkerMinAverage {
		// A file is cut by finding each cut, then reading the chunk:
		// the same chunks for less CPU, with reads that step back by up
		// to MinSize, which --sequential-read (Scouts < 0) avoids.
		fc, _ := a.fileChunkers.Get().(*chunk.FileChunker)
		if fc == nil {
			fc = chunk.NewFileChunker(p)
		}
		fc.Reset(ra, size, 0)
		return pooledFileChunker{fc, &a.fileChunkers}
	}
	if v := a.chunkers.Get(); v != nil {
		ch := v.(*chunk.Chunker)
		ch.Reset(rd)
		return pooledChunker{ch, &a.chunkers}
	}
	return pooledChunker{chunk.New(rd, p), &a.chunkers}
}

// pooledFileChunker is a chunk.FileChunker of the archiver's pool; Close
// returns it.
type pooledFileChunker struct {
	*chunk.FileChunker
	pool *sync.Pool
}

func (c pooledFileChunker) Close() {
	c.FileChunker.Reset(nil, 0, 0) // let go of the file
	c.pool.Put(c.FileChunker)
}

// pooledStreamChunker is a chunk.StreamChunker of the archiver's pool;
// Close returns it.
type pooledStreamChunker struct {
	*chunk.StreamChunker
	pool *sync.Pool
}

func (c pooledStreamChunker) Close() {
	c.StreamChunker.Reset(nil) // let go of the stream
	c.pool.Put(c.StreamChunker)
}

// scoutedChunker is a chunk.Parallel holding n of the run's scout slots,
// and the spare P (spareProc) while it reads; Close stops its scouts and
// gives both back.
type scoutedChunker struct {
	*chunk.Parallel
	slots chan struct{}
	n     int
}

func (c scoutedChunker) Close() {
	defer spare.release()
	c.Parallel.Close()
	for range c.n {
		<-c.slots
	}
}

// maxScouts bounds the default scout budget, and so the scouts' buffers
// on large machines; chunking costs about a third of what the save workers
// spend per byte, so eight scouts keep some twenty-four cores busy.
const maxScouts = 8

// DefaultStreams is how many dumps and commands a create runs at once
// unless told (ArchiveOptions.Streams).
const DefaultStreams = 4

// goScout starts a scout of chunk.Parallel, guarded: a panic fails the
// run (and the scout's region falls back to the reader's own chunker).
func (a *archiver) goScout(f func()) {
	go func() { _ = a.guard(f) }()
}

// bufferFor is the size of a chunk buffer for chunker bounds p: room for
// a typical chunk (twice the average above the minimum). A larger chunk
// grows its buffer; one grown beyond twice this is dropped when given back,
// so that the buffers do not all grow to the largest chunk seen (8 MiB).
func bufferFor(p chunk.Params) uint {
	return min(p.MaxSize, p.MinSize+2<<p.AverageBits)
}

// readSmall reads a file expected to hold size bytes into buf, which has
// room for one more. It returns the bytes read and whether the end of the
// file was seen. A regular file's read returns fewer bytes than asked only
// at its end, so a first read of exactly size bytes needs no second one to
// see the end.
func readSmall(rd io.Reader, buf []byte, size int) (n int, eof bool, err error) {
	for n < len(buf) {
		m, err := rd.Read(buf[n:])
		n += m
		switch {
		case err == io.EOF:
			return n, true, nil
		case err != nil:
			return n, false, err
		case m > 0 && n == size:
			return n, true, nil
		case m == 0:
			return n, false, io.ErrNoProgress
		}
	}
	return n, false, nil
}

// pseudoFileRoom is the first read of a file that says it is empty: the
// content of a kernel pseudo-file (a page or two) in one read.
const pseudoFileRoom = 64 << 10

// pseudoFileMax is the most read of a file that said it was empty when it
// was opened: kernel pseudo-files hold far less; a file that grows from
// empty without end is cut there.
const pseudoFileMax = 64 << 20

// offloadSize is the file size above which the save workers hash the
// chunks (see saveContent): four chunks of the default file bounds.
const offloadSize = 4 * (chunk.DefaultMinSize + 1<<chunk.DefaultAverageBits)

// saveFile reads one regular file. It is called by the file workers.
func (a *archiver) saveFile(ctx context.Context, p string, m sources.Meta, parent []repo.ID) fileResult {
	f, err := a.beneath.OpenFile(p)
	if err != nil {
		return fileResult{err: err}
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fileResult{err: &sources.PathError{Op: "stat", Path: p, Err: err}}
	}
	// Use what the open file says: it may have changed since it was listed.
	fresh := sources.FromStat(m.Name, &st)
	if fresh.Type != sources.TypeFile {
		return fileResult{err: &sources.PathError{Op: "open", Path: p, Err: errNotRegular}}
	}
	if limit := a.opts.ExcludeLargerThan; limit > 0 && fresh.Size > limit && !a.named[p] {
		// It grew past the limit since it was listed (a log, a disk
		// image being written): left out, as if it had been that large
		// then. A file named on the command line is always saved.
		return fileResult{excluded: true}
	}
	m.Size, m.MTime, m.CTime, m.Inode, m.Device, m.Links, m.Mode = fresh.Size, fresh.MTime, fresh.CTime, fresh.Inode, fresh.Device, fresh.Links, fresh.Mode
	// Read no more than the open file held: one that grows while it is
	// read (a log fed by yes, a sparse file extended in a loop) was read
	// for ever (found by an exploratory test: 82 GB read of a file of 22
	// at its open). The growth is left for the next run, with the warning
	// below. A file that says it is empty (a kernel pseudo-file) is read
	// up to pseudoFileMax.
	limit := int64(m.Size)
	if limit == 0 {
		limit = pseudoFileMax
	}
	// A sparse file's holes are not read (sources.Sparse), and its
	// chunks of zeros not hashed (zeroID).
	var ra io.ReaderAt = f
	holes := sources.OpenSparse(f, &st)
	if holes != nil {
		ra = holes
	}
	ids, n, err := a.saveContent(ctx, io.NewSectionReader(ra, 0, limit), a.files, p, int64(m.Size), parent, holes)
	if err != nil {
		var se *streamError
		if errors.As(err, &se) {
			// The file's own error names the path already: "read P:
			// read P: invalid argument" said it twice (found by an
			// exploratory test).
			cause := se.err
			if inner := errors.Unwrap(cause); inner != nil && cause.Error() == "read "+p+": "+inner.Error() {
				cause = inner // readError's own "read P: …"
			}
			return fileResult{err: &sources.PathError{Op: "read", Path: p, Err: cause}}
		}
		return fileResult{err: err, fatal: true}
	}
	// A file written to while it was read (a database's file, a disk
	// image) may have been saved as a mix of old and new bytes: its size,
	// or else its mtime, differ afterwards. Say so; the node keeps the
	// times from before the read, so the next run reads the file again. A
	// ctime that moved alone is a change of the inode, not of its bytes
	// (a chmod, or the file renamed over or removed: the open descriptor
	// read the version that was opened, whole), and the next run reads it
	// again all the same.
	after, serr := f.Stat()
	switch {
	case uint64(n) != m.Size && f.OnPseudoFS():
		// What a kernel pseudo-file holds is not its stated size: it
		// is saved as read, without a warning for each of the hundreds
		// of files under /sys (found by an exploratory test).
		m.Size = uint64(n)
	case uint64(n) != m.Size:
		a.opts.Report(Event{Kind: EventWarning, Path: p, Err: fmt.Errorf("file changed while it was read (%d bytes read, %d expected); saved what was read", n, m.Size)})
		m.Size = uint64(n)
	case serr == nil && after.Size > st.Size:
		// Appended to (a log), the bytes saved are its first ones; but a
		// file rewritten and extended meanwhile grows too, and was said
		// to be saved as "its first bytes" when they mixed two versions
		// (found by an exploratory test): the size cannot tell them apart.
		a.opts.Report(Event{Kind: EventWarning, Path: p, Err: fmt.Errorf("file grew while it was read (from %d to %d bytes); saved its first %d bytes (if it was only appended to; if it was rewritten too, they may mix old and new content), the rest is for the next run", st.Size, after.Size, n)})
	case serr == nil && (after.Mtim != st.Mtim || after.Size != st.Size):
		a.opts.Report(Event{Kind: EventWarning, Path: p, Err: errors.New("file changed while it was read; saved what was read, which may mix old and new content")})
	}
	return fileResult{node: Node{Meta: m, Content: ids}}
}

// run walks the inputs and returns the root tree's ID. cancel cancels ctx;
// run calls it when the run fails. The caller cancels ctx only after the
// index writer is flushed: pack uploads started here go on in the
// background with ctx.
func (a *archiver) run(ctx context.Context, cancel context.CancelFunc, root *vdir, parent *Tree) (repo.ID, error) {
	a.cancel = cancel
	defer a.beneath.Close() // after stop(): no worker opens anything then
	stop := a.start(ctx)
	streams := a.startStreams(ctx, cancel, root)
	paths := map[*ventry]chan fileResult{}
	a.named = map[string]bool{}
	root.namedPaths(a.named) // before any file is submitted: read-only from here on
	a.startPaths(ctx, root, parent, paths)
	n, err := a.saveVDir(ctx, "/", root, parent, streams, paths)
	if err != nil {
		cancel()
	}
	// Paths and streams that were never reached (an earlier error) must
	// still end before the workers stop. A stream that failed cancelled the
	// rest of the run: its error, not the cancellation it caused, is the
	// one to report; the same holds for a failed save.
	for _, f := range paths {
		<-f
	}
	var streamErr error
	for _, f := range streams {
		if r := <-f; r.err != nil && !r.kept && streamErr == nil && !errors.Is(r.err, context.Canceled) {
			streamErr = r.err
		}
	}
	if err != nil && streamErr != nil && errors.Is(err, context.Canceled) {
		err = streamErr
	}
	stop()
	if serr := a.saveError(); serr != nil && (err == nil || errors.Is(err, context.Canceled)) {
		err = serr
	}
	return n, err
}

// vdir is a directory of the snapshot's top levels: the directories leading
// to the backed-up paths, which are not themselves backed up whole.
type vdir struct {
	metaPath string // local directory to take metadata from ("" for synthetic ones such as /db)
	children map[string]*ventry
	// inner (of the root) are the paths given inside others, which the
	// walk of those saves: named all the same (archiver.named).
	inner []string
}

type ventry struct {
	dir    *vdir
	fsPath string  // a backed-up path
	follow bool    // fsPath was given as "dir/": a symlink there is followed
	stream *Stream // a stream source
	seq    int     // of a stream: its place among those given, which is when it starts
}

// namedPaths adds the backed-up paths below d to out.
func (d *vdir) namedPaths(out map[string]bool) {
	for _, p := range d.inner {
		out[p] = true
	}
	for _, e := range d.children {
		if e.dir != nil {
			e.dir.namedPaths(out)
		} else if e.fsPath != "" {
			out[e.fsPath] = true
		}
	}
}

// buildVTree arranges the inputs under one root. Paths must be absolute and
// clean; a path inside another is saved by the walk of the outer one (the
// caller makes sure that the walk reaches it: no symlink on the way, none
// to follow there). Paths in follow were given with a trailing slash.
func buildVTree(paths []string, follow map[string]bool, streams []Stream) (*vdir, error) {
	root := &vdir{metaPath: "/", children: map[string]*ventry{}}
	sorted := append([]string(nil), paths...)
	sort.Strings(sorted)
	var kept []string
	// A path is covered when it or a directory above it is kept: looked
	// up by its ancestors, not by every path kept before it, which made
	// tens of thousands of paths quadratic (found by an exploratory test).
	keptSet := map[string]bool{}
	covered := func(p string) bool {
		if keptSet["/"] || keptSet[p] {
			return true
		}
		for i := 1; i < len(p); i++ {
			if p[i] == '/' && keptSet[p[:i]] {
				return true
			}
		}
		return false
	}
	for _, p := range sorted {
		if !covered(p) {
			kept = append(kept, p)
			keptSet[p] = true
		} else {
			root.inner = append(root.inner, p)
		}
	}
	place := func(p string, e *ventry) error {
		if p == "/" {
			return fmt.Errorf("cannot place %s at the root", p)
		}
		comps := strings.Split(strings.TrimPrefix(p, "/"), "/")
		d := root
		for i, c := range comps[:len(comps)-1] {
			child, ok := d.children[c]
			if !ok {
				mp := ""
				if d.metaPath != "" {
					mp = path.Join(d.metaPath, c)
				}
				if e.stream != nil {
					mp = "" // directories invented for streams (e.g. /db) are synthetic
				}
				child = &ventry{dir: &vdir{metaPath: mp, children: map[string]*ventry{}}}
				d.children[c] = child
			}
			if child.dir == nil {
				return fmt.Errorf("%s collides with %s, which is also saved", p, "/"+strings.Join(comps[:i+1], "/"))
			}
			d = child.dir
		}
		last := comps[len(comps)-1]
		if _, ok := d.children[last]; ok {
			return fmt.Errorf("%s is given twice or collides with another source", p)
		}
		d.children[last] = e
		return nil
	}
	if len(kept) == 1 && kept[0] == "/" {
		// Backing up "/" itself: its entries are the root's children,
		// read by the walk, and a stream has no directory to go in
		// (/db would have to be merged into the walked root).
		if len(streams) > 0 {
			return nil, fmt.Errorf("a dump or command output (%s) cannot go into a snapshot of / itself: back up the directories of / you need (/etc /srv …), or take the dump in a snapshot of its own", streams[0].Path)
		}
		return &vdir{metaPath: "/", children: map[string]*ventry{"": {fsPath: "/"}}, inner: root.inner}, nil
	}
	for _, p := range kept {
		if err := place(p, &ventry{fsPath: p, follow: follow[p]}); err != nil {
			return nil, err
		}
	}
	if err := placeStreams(root, streams, place); err != nil {
		return nil, err
	}
	return root, nil
}

func placeStreams(root *vdir, streams []Stream, place func(string, *ventry) error) error {
	for i := range streams {
		s := &streams[i]
		if !path.IsAbs(s.Path) || path.Clean(s.Path) != s.Path {
			return fmt.Errorf("stream path %q must be absolute and clean", s.Path)
		}
		if err := place(s.Path, &ventry{stream: s, seq: i}); err != nil {
			return err
		}
	}
	return nil
}

// startStreams starts the stream sources, ArchiveOptions.Streams at once,
// so dumps run in parallel with each other and with file reads. A stream
// that fails cancels the run at once: the snapshot is lost anyway.
func (a *archiver) startStreams(ctx context.Context, cancel context.CancelFunc, root *vdir) map[*ventry]chan fileResult {
	out := map[*ventry]chan fileResult{}
	// Every stream has a chunker, buffers in flight and a process of its
	// own: a thousand commands started at once took 2.2 GB (found by an
	// exploratory test), and a hundred dumps at once load the database
	// server as much. Streams start in the order they were given as
	// slots free up (an admin can put the longest dump first). The walk
	// waits for a stream's result only when it gets to it, and the
	// streams that hold the slots need nothing from the walk, so they end
	// and make room.
	var order []*ventry
	var visit func(d *vdir)
	visit = func(d *vdir) {
		for _, e := range d.children {
			switch {
			case e.dir != nil:
				visit(e.dir)
			case e.stream != nil:
				out[e] = make(chan fileResult, 1)
				order = append(order, e)
			}
		}
	}
	visit(root)
	slices.SortFunc(order, func(x, y *ventry) int { return x.seq - y.seq })
	slots := make(chan struct{}, cmp.Or(a.opts.Streams, DefaultStreams))
	go func() {
		for i, e := range order {
			if ctx.Err() == nil {
				// (select picks at random when a slot is free too)
				select {
				case slots <- struct{}{}:
				case <-ctx.Done():
				}
			}
			if ctx.Err() != nil {
				// A failed stream or file cancelled the run: those not
				// started never run.
				for _, e := range order[i:] {
					out[e] <- fileResult{err: namingPath(e.stream.Path, ctx.Err()), fatal: true}
				}
				return
			}
			go func(s *Stream, ch chan<- fileResult) {
				defer func() { <-slots }()
				r := a.safe(func() fileResult { return a.saveStream(ctx, s) })
				if r.err != nil && !r.kept {
					cancel()
				}
				ch <- r
			}(e.stream, out[e])
		}
	}()
	return out
}

// saveStream reads a stream source; its new chunks may be stored as
// deltas against the chunks of its previous dump (Stream.parent).
func (a *archiver) saveStream(ctx context.Context, s *Stream) fileResult {
	rc, err := s.Open(ctx)
	if err != nil {
		return fileResult{err: namingPath(s.Path, err), fatal: true}
	}
	// Close ends the dump (it may wait for the dump command and report
	// its exit status), so it runs exactly once: here, or on the way out
	// of a panic in saveContent, so that no dump process is left behind.
	closeStream := sync.OnceValue(rc.Close)
	defer closeStream()
	var parent []repo.ID
	if s.parent != nil {
		parent = s.parent.Content
	}
	ids, n, err := a.saveContent(ctx, rc, a.streams, s.Path, -1, parent, nil)
	if cerr := closeStream(); err == nil {
		err = cerr
	}
	if err != nil {
		return fileResult{err: namingPath(s.Path, err), fatal: true}
	}
	now := a.opts.Now().UnixNano()
	mode := s.Mode
	if mode == 0 {
		mode = 0o600
	}
	s.Source.Size = n
	if s.Properties != nil {
		s.Source.Properties = s.Properties()
	}
	m := sources.Meta{Name: path.Base(s.Path), Type: sources.TypeFile, Mode: mode, Size: uint64(n), MTime: now, CTime: now,
		UID: uint32(getuid()), GID: uint32(getgid())}
	if p := s.parent; p != nil && p.Name == m.Name && p.Mode == m.Mode && p.UID == m.UID && p.GID == m.GID && p.Size == m.Size &&
		p.User == "" && p.Group == "" && len(p.Xattrs) == 0 && slices.Equal(p.Content, ids) {
		// The same bytes as the previous dump: its times are kept, as a
		// file's are until it changes, and the node is the one stored
		// then. The tree that holds it lists every chunk of it (685 KiB
		// for a dump of 1 GiB), and was stored anew on every run for a
		// new time alone (found by an exploratory test).
		m.MTime, m.CTime = p.MTime, p.CTime
	}
	a.nFiles.Add(1)
	a.nBytes.Add(n)
	a.opts.Report(Event{Kind: EventFile, Path: s.Path, Bytes: n})
	res := fileResult{node: Node{Meta: m, Content: ids}}
	if s.Check != nil {
		warning, err := s.Check(ctx)
		if warning != "" {
			a.opts.Report(Event{Kind: EventWarning, Path: s.Path, Err: errors.New(warning)})
		}
		if err != nil {
			if ctx.Err() != nil {
				return fileResult{err: ctx.Err(), fatal: true}
			}
			res.err, res.kept = &sources.PathError{Op: "check", Path: s.Path, Err: fmt.Errorf("%w (%w)", err, ErrSavedIncomplete)}, true
		}
	}
	return res
}

// startPaths starts saving every backed-up path at once: directories are
// listed by the walkers, files read by the file workers. saveVDir collects
// the results.
func (a *archiver) startPaths(ctx context.Context, d *vdir, parent *Tree, out map[*ventry]chan fileResult) {
	for name, e := range d.children {
		var pnode *Node
		if parent != nil && name != "" {
			pnode, _ = parent.Find(name)
		}
		switch {
		case e.dir != nil:
			sub, _ := a.parentSubtree(ctx, pnode)
			a.startPaths(ctx, e.dir, sub, out)
		case e.fsPath != "" && name == "": // backing up "/"
			m, err := a.meta.Lstat(e.fsPath, "/")
			if err != nil {
				out[e] = done(fileResult{err: err, fatal: true})
				continue
			}
			a.beneath.AddRoot("/")
			out[e] = a.walkDir(ctx, "/", m, parent)
		case e.fsPath != "":
			lpath := e.fsPath
			if e.follow {
				lpath += "/" // lstat follows a symlink to a directory then
			}
			m, err := a.meta.Lstat(lpath, name)
			if err != nil {
				out[e] = done(fileResult{err: err})
				continue
			}
			if m.Type == sources.TypeDir {
				// Below it, nothing swapped for a symlink is followed.
				a.beneath.AddRoot(e.fsPath)
			}
			out[e] = a.saveEntry(ctx, e.fsPath, m, pnode)
		}
	}
}

// done returns a channel that holds r.
func done(r fileResult) chan fileResult {
	ch := make(chan fileResult, 1)
	ch <- r
	return ch
}

// saveVDir saves a synthetic directory level, once the paths and streams
// in it are saved.
func (a *archiver) saveVDir(ctx context.Context, p string, d *vdir, parent *Tree, streams, paths map[*ventry]chan fileResult) (repo.ID, error) {
	if e, ok := d.children[""]; ok { // backing up "/"
		r := <-paths[e]
		paths[e] <- r // leave it for run's final drain
		n, ok, err := a.fileOutcome(r, nil)
		if err == nil && !ok {
			err = errors.New("/ could not be read")
		}
		return n.Subtree, err
	}
	names := make([]string, 0, len(d.children))
	for name := range d.children {
		names = append(names, name)
	}
	sort.Strings(names)
	tree := &Tree{}
	for _, name := range names {
		e := d.children[name]
		cp := path.Join(p, name)
		var pnode *Node
		if parent != nil {
			pnode, _ = parent.Find(name)
		}
		switch {
		case e.dir != nil:
			m := a.syntheticDirMeta(name, e.dir.metaPath)
			sub, err := a.parentSubtree(ctx, pnode)
			if err != nil {
				return repo.ID{}, err
			}
			id, err := a.saveVDir(ctx, cp, e.dir, sub, streams, paths)
			if err != nil {
				return repo.ID{}, err
			}
			a.nDirs.Add(1)
			tree.Nodes = append(tree.Nodes, Node{Meta: m, Subtree: id})
		case e.stream != nil:
			r := <-streams[e]
			streams[e] <- r // leave it for run's final drain
			n, _, err := a.fileOutcome(r, nil)
			if err != nil {
				return repo.ID{}, err
			}
			tree.Nodes = append(tree.Nodes, n)
		default:
			r := <-paths[e]
			paths[e] <- r // leave it for run's final drain
			n, ok, err := a.fileOutcome(r, nil)
			if err != nil {
				return repo.ID{}, err
			}
			if ok {
				tree.Nodes = append(tree.Nodes, n)
			}
		}
	}
	return a.saveTree(ctx, tree)
}

func (a *archiver) syntheticDirMeta(name, metaPath string) sources.Meta {
	if metaPath != "" {
		// "/" after the path: a directory leading to a backed-up path may
		// be reached through a symlink (/srv/data -> /mnt/disk2), and the
		// directory it leads to is what the path went through.
		if m, err := a.meta.Lstat(metaPath+"/", name); err == nil && m.Type == sources.TypeDir {
			m.Xattrs = nil
			return m
		}
	}
	now := a.opts.Now().UnixNano()
	return sources.Meta{Name: name, Type: sources.TypeDir, Mode: 0o755, MTime: now, CTime: now}
}

func (a *archiver) parentSubtree(ctx context.Context, pnode *Node) (*Tree, error) {
	if pnode == nil || pnode.Type != sources.TypeDir {
		return nil, nil
	}
	t, err := LoadTree(ctx, a.ix, pnode.Subtree)
	if err != nil {
		if ctx.Err() != nil {
			// The create is being stopped (a source failed, Ctrl-C):
			// the parent is not at fault, and nothing is read again.
			return nil, ctx.Err()
		}
		// A damaged parent only costs speed: read everything again.
		if _, warned := a.badParents.LoadOrStore(pnode.Subtree, true); warned {
			return nil, nil
		}
		a.opts.Report(Event{Kind: EventWarning, Path: pnode.Name, Err: fmt.Errorf("parent snapshot unreadable here, reading all files: %w", err)})
		return nil, nil
	}
	return t, nil
}

func (a *archiver) report(err error) {
	a.nErrors.Add(1)
	var pe *sources.PathError
	p := ""
	if errors.As(err, &pe) {
		p = pe.Path
	}
	a.opts.Report(Event{Kind: EventError, Path: p, Err: err})
}

// saveEntry starts saving one path of any type; the channel delivers its
// node (or the error that made it skipped).
func (a *archiver) saveEntry(ctx context.Context, p string, m sources.Meta, pnode *Node) chan fileResult {
	switch m.Type {
	case sources.TypeDir:
		parent, _ := a.parentSubtree(ctx, pnode)
		return a.walkDir(ctx, p, m, parent)
	case sources.TypeFile:
		return a.submitFile(ctx, p, m, pnode)
	default:
		return done(fileResult{node: Node{Meta: m}})
	}
}

// errNotRegular is what the open of an entry listed as a regular file
// finds when it is not one now.
var errNotRegular = errors.New("no longer a regular file")

// goneSinceListed says why an entry that failed with err is gone since its
// directory was listed: deleted, or replaced by another kind of entry
// (a file by a directory, a pipe or a symlink; a directory by a file). ""
// for any other error.
func goneSinceListed(err error) string {
	const notSaved = " since its directory was listed; not saved, the next run saves what is there now"
	switch {
	case errors.Is(err, syscall.ENOENT):
		return "vanished during the backup (deleted after its directory was listed); not saved"
	case errors.Is(err, errNotRegular):
		return "replaced by another kind of entry (a directory, a pipe …)" + notSaved
	case errors.Is(err, sources.ErrSymlinkOnPath):
		return sources.ErrSymlinkOnPath.Error() + "; not saved"
	case errors.Is(err, syscall.ELOOP):
		return "replaced by a symlink" + notSaved
	case errors.Is(err, syscall.ENOTDIR):
		return "replaced by a file (it, or a directory above it, was a directory)" + notSaved
	}
	return ""
}

// vanishedShown is how many entries of one directory that vanished
// during the backup are named one by one; the rest are counted in one
// warning. A directory deleted while it was walked gave a warning per
// entry, thousands of lines (found by an exploratory test).
const vanishedShown = 5

// fileOutcome is what becomes of one entry's result: its node, whether it
// is kept, and the error that ends the run. gone counts the entries of its
// directory that vanished (vanishedShown); nil names each.
func (a *archiver) fileOutcome(res fileResult, gone *int) (Node, bool, error) {
	if res.excluded {
		return Node{}, false, nil
	}
	if res.err != nil {
		if res.fatal {
			return Node{}, false, res.err
		}
		if repo.OutOfDescriptors(res.err) {
			// This process's state, not the file's: skipped as
			// unreadable, every file past the limit was missing from a
			// snapshot that a job took for partial, and its retention
			// went on (found by an exploratory test).
			return Node{}, false, fmt.Errorf("%w: the files snap cannot open would be missing from the snapshot: %s", res.err, repo.RaiseDescriptors)
		}
		var pe *sources.PathError
		if why := goneSinceListed(res.err); why != "" && !res.kept && errors.As(res.err, &pe) && !a.named[strings.TrimSuffix(pe.Path, "/")] {
			// Deleted after its directory was listed (a SQLite journal, a
			// temporary file): nothing was lost, the snapshot holds the
			// directory as it was when the entry was looked for. An
			// error, it made a job "partial" (exit 3) for a file that was
			// simply gone (found by an exploratory test). So is an entry
			// replaced by another kind (a file by a directory): what was
			// listed is gone, and what replaced it came after the
			// listing, as a new file does (it was an error, with advice
			// to give the backup read access). Not a path the run was
			// given: one a pre hook's failed mount left missing must
			// fail as before, not save an empty snapshot with exit 0
			// (found by a review).
			if gone != nil {
				if *gone++; *gone > vanishedShown {
					return Node{}, false, nil
				}
			}
			a.opts.Report(Event{Kind: EventWarning, Path: pe.Path, Err: errors.New(why)})
			return Node{}, false, nil
		}
		a.report(res.err)
		return res.node, res.kept, nil
	}
	return res.node, true, nil
}

// submitFile returns a channel with the file's node: at once when the
// parent snapshot's node proves it unchanged (size, mtime, ctime, inode, and
// every blob still indexed) or a hard link to a file already read, else
// after a file worker has read it.
func (a *archiver) submitFile(ctx context.Context, p string, m sources.Meta, pnode *Node) chan fileResult {
	ch := make(chan fileResult, 1)
	if sameFile(pnode, m) && a.allKnown(pnode.Content) {
		ch <- a.reuseFile(p, m, pnode)
		return ch
	}
	key := [2]uint64{m.Device, m.Inode}
	if m.Links > 1 {
		a.hlMu.Lock()
		saved, ok := a.hardlinks[key]
		a.hlMu.Unlock()
		if ok {
			// The size is the one of the content read for the first name:
			// the file may have grown or shrunk since (a log being
			// written), and a node's size must add up with its content.
			// A size that differs from the file's makes the next run read
			// it again.
			m.Size = saved.size
			a.fileDone(m.Size, p)
			ch <- fileResult{node: Node{Meta: m, Content: saved.content}}
			return ch
		}
	}
	inner := make(chan fileResult, 1)
	job := fileJob{path: p, meta: m, result: inner}
	if pnode != nil && pnode.Type == sources.TypeFile {
		job.parent = pnode.Content
	}
	select {
	case a.fileQ <- job:
	case <-ctx.Done():
		ch <- fileResult{err: ctx.Err(), fatal: true}
		return ch
	}
	go func() {
		ch <- a.safe(func() fileResult {
			r := <-inner
			if r.err == nil {
				// A name left out (it grew past --exclude-larger-than while
				// it was read) stands for nothing: the other names are read
				// on their own.
				if m.Links > 1 && !r.excluded {
					a.hlMu.Lock()
					a.hardlinks[key] = linkedContent{content: r.node.Content, size: r.node.Size}
					a.hlMu.Unlock()
				}
				a.fileDone(r.node.Size, p)
			}
			return r
		})
	}()
	return ch
}

// linkedContent is what was saved for the first name of a file with
// several hard links, for its other names.
type linkedContent struct {
	content []repo.ID
	size    uint64 // the bytes content adds up to
}

// sameFile reports whether the parent snapshot's node for a file has the
// file's size, mtime, ctime and inode: then its content may be reused
// without reading the file, once every blob of it is known.
func sameFile(pnode *Node, m sources.Meta) bool {
	return pnode != nil && pnode.Type == sources.TypeFile && m.Type == sources.TypeFile && pnode.Size == m.Size &&
		pnode.MTime == m.MTime && pnode.CTime == m.CTime && pnode.Inode == m.Inode
}

// reuseFile is the result of an unchanged file: the parent's content with
// the file's metadata.
func (a *archiver) reuseFile(p string, m sources.Meta, pnode *Node) fileResult {
	a.fileDone(m.Size, p)
	return fileResult{node: Node{Meta: m, Content: pnode.Content}}
}

// reusable returns, for each entry of a directory, whether it is a file
// that sameFile finds unchanged and whose blobs are all known: those are
// looked up together (Writer.KnownEach), where one lookup per blob costs a
// transaction each. Files are checked reuseBatch blobs at a time, so that
// a directory of many or large files holds one batch's IDs, not all; a
// file with more blobs is checked on its own, its content list as it is.
func (a *archiver) reusable(metas []statResult, pnodes []*Node) []bool {
	reuse := make([]bool, len(pnodes))
	var ids []repo.ID // of the files in pending, in order
	var pending []int
	var known []bool
	check := func(ids []repo.ID, files []int) {
		known = slices.Grow(known[:0], len(ids))[:len(ids)]
		a.w.KnownEach(repo.DataBlob, ids, known)
		rest := known
		for _, i := range files {
			n := len(pnodes[i].Content)
			reuse[i] = !slices.Contains(rest[:n], false)
			rest = rest[n:]
		}
	}
	batch := a.opts.reuseBatch
	if batch <= 0 {
		batch = reuseBatch
	}
	for i, pn := range pnodes {
		if metas[i].err != nil || metas[i].excluded || !sameFile(pn, metas[i].meta) {
			continue
		}
		if len(pn.Content) >= batch {
			check(pn.Content, []int{i})
			continue
		}
		if len(ids)+len(pn.Content) > batch {
			check(ids, pending)
			ids, pending = ids[:0], pending[:0]
		}
		ids, pending = append(ids, pn.Content...), append(pending, i)
	}
	if len(pending) > 0 {
		check(ids, pending)
	}
	return reuse
}

// reuseBatch is how many blobs reusable checks at once.
const reuseBatch = 4096

func (a *archiver) fileDone(size uint64, p string) {
	a.nFiles.Add(1)
	a.nBytes.Add(int64(size))
	a.opts.Report(Event{Kind: EventFile, Path: p, Bytes: int64(size)})
}

func (a *archiver) allKnown(ids []repo.ID) bool {
	for _, id := range ids {
		if !a.w.Known(repo.DataBlob, id) {
			return false
		}
	}
	return true
}

// walkDir saves directory p. A free walker lists it, or this goroutine
// when all are busy (so the walk never waits for a walker); the channel
// delivers the directory's node once every entry in it is saved.
func (a *archiver) walkDir(ctx context.Context, p string, m sources.Meta, parent *Tree) chan fileResult {
	out := make(chan fileResult, 1)
	select {
	case a.walkers <- struct{}{}:
		go func() {
			if err := a.guard(func() { a.listDir(ctx, p, m, parent, out) }); err != nil {
				out <- fileResult{err: err, fatal: true} // listDir sends only as it returns
			}
			<-a.walkers
		}()
	default:
		a.listDir(ctx, p, m, parent, out)
	}
	return out
}

// listNames opens directory p and reads its names, with a buffer the
// walkers share. The caller closes the listing.
func (a *archiver) listNames(p string) (*sources.Listing, []string, error) {
	l, err := a.beneath.OpenListing(p)
	if err != nil {
		return nil, nil, err
	}
	bp, _ := a.dirBufs.Get().(*[]byte)
	if bp == nil {
		b := make([]byte, sources.DirBufSize)
		bp = &b
	}
	names, err := l.Names(*bp)
	a.dirBufs.Put(bp)
	if err != nil {
		l.Close()
		return nil, nil, err
	}
	return l, names, nil
}

// listDir lists and stats the entries of directory p and starts saving
// each (files go to the file workers, subdirectories to walkDir). A
// goroutine then waits for them, saves the tree and sends the directory's
// node to out.
func (a *archiver) listDir(ctx context.Context, p string, m sources.Meta, parent *Tree, out chan<- fileResult) {
	if err := ctx.Err(); err != nil {
		out <- fileResult{err: err, fatal: true}
		return
	}
	if p != "/" && strings.Count(p, "/") >= MaxDepth {
		// Deeper than any walk of a snapshot reads (MaxDepth).
		out <- fileResult{err: fmt.Errorf("%s: directories nested more than %d deep: left out (snap stores none deeper)", p, MaxDepth)}
		return
	}
	l, names, err := a.listNames(p)
	if err != nil {
		res := fileResult{err: err} // reported and skipped by the receiver
		if errors.Is(err, fs.ErrPermission) && p != "/" && !a.named[p] {
			// A directory this user may not read is saved with its own
			// metadata and no entries: left out, a restore did not make
			// it, nor give it its owner and mode (found by an
			// exploratory test; restic keeps it so too). Not a path
			// given (or the root): saved empty, it would be a backup of
			// nothing that counts as one.
			if res = a.saveEmptyDir(ctx, m); res.err == nil {
				res.err, res.kept = fmt.Errorf("%w (%w)", err, ErrSavedEmpty), true
			}
		}
		out <- res
		return
	}
	if tags := sources.TagFiles(p, names, a.opts.ExcludeIfPresent, a.opts.ExcludeCaches); tags != nil {
		names = tags
	}
	pnodes := make([]*Node, len(names)) // the parent snapshot's nodes
	if parent != nil {
		for i, name := range names {
			pnodes[i], _ = parent.Find(name)
		}
	}
	metas := a.statAll(l, names, pnodes)
	if err := l.Close(); err != nil {
		a.report(err)
	}
	reuse := a.reusable(metas, pnodes)
	entries := make([]chan fileResult, 0, len(names))
	for i, name := range names {
		cp := filepath.Join(p, name)
		cm, err, pn := metas[i].meta, metas[i].err, pnodes[i]
		if metas[i].excluded {
			continue
		}
		if err != nil {
			if !sources.IsNotExist(err) {
				a.report(err)
			}
			continue
		}
		if reuse[i] {
			entries = append(entries, done(a.reuseFile(cp, cm, pn)))
			continue
		}
		if cm.Type == sources.TypeDir && a.opts.OneFileSystem && cm.Device != m.Device && !a.named[cp] {
			// A mount point: keep the empty directory, not what is
			// mounted (one named on the command line is backed up as
			// one given alone is: its own file system).
			entries = append(entries, done(a.saveEmptyDir(ctx, cm)))
			continue
		}
		entries = append(entries, a.saveEntry(ctx, cp, cm, pn))
	}
	go func() { out <- a.safe(func() fileResult { return a.finishDir(ctx, p, m, entries) }) }()
}

type statResult struct {
	meta     sources.Meta
	err      error
	excluded bool
}

// statGroup is how many entries of a directory one walker stats.
const statGroup = 256

// statAll stats the entries of directory l (leaving out excluded ones),
// given the parent snapshot's nodes for them (nil where there is none:
// sources.Reader.LstatIn). A large directory is cut into groups of
// statGroup entries that free walkers stat at the same time, so that a
// directory of a hundred thousand files is not listed by one core.
func (a *archiver) statAll(l *sources.Listing, names []string, pnodes []*Node) []statResult {
	p := l.Path()
	out := make([]statResult, len(names))
	var wg sync.WaitGroup
	for start := 0; start < len(names); start += statGroup {
		end := min(start+statGroup, len(names))
		group := func() {
			for i := start; i < end; i++ {
				cp := filepath.Join(p, names[i])
				// A path given inside another is saved whatever the
				// excludes say, as one given alone (found by an
				// exploratory test: "create src --exclude b src/a/b").
				if sources.MatchAny(a.opts.Excludes, cp) && !a.named[cp] {
					out[i].excluded = true
					continue
				}
				var prev *sources.Meta
				if pnodes[i] != nil {
					prev = &pnodes[i].Meta
				}
				out[i].meta, out[i].err = a.meta.LstatIn(l, names[i], prev)
				if m := out[i].meta; out[i].err == nil && m.Type == sources.TypeFile && a.opts.ExcludeLargerThan > 0 && m.Size > a.opts.ExcludeLargerThan && !a.named[cp] {
					out[i].excluded = true
				}
				if m := out[i].meta; out[i].err == nil && m.Type == sources.TypeDir && a.opts.LeaveOut != nil {
					if why, ok := a.opts.LeaveOut[[2]uint64{m.Device, m.Inode}]; ok {
						out[i].excluded = true
						a.opts.Report(Event{Kind: EventLeftOut, Path: cp, Err: errors.New(why)})
					}
				}
			}
		}
		if end < len(names) {
			select {
			case a.walkers <- struct{}{}:
				wg.Add(1)
				go func() {
					defer wg.Done()
					defer func() { <-a.walkers }()
					// A panic fails the run, so the entries it left
					// unset never reach a snapshot.
					_ = a.guard(group)
				}()
				continue
			default:
			}
		}
		group()
	}
	wg.Wait()
	return out
}

// ErrSavedIncomplete marks the reported error of a stream that lost some of
// its content on the way (Stream.Check), and was saved as it came.
var ErrSavedIncomplete = errors.New("saved as it came")

// ErrSavedEmpty marks the reported error of a directory that could not be
// listed and was saved without its entries, not skipped.
var ErrSavedEmpty = errors.New("saved as an empty directory, with its own owner, mode and times")

// TreeTooLargeError is a directory whose listing (names and metadata of
// its entries: extended attributes and ACLs count) exceeds what one tree
// blob may hold, repo.MaxBlobSize.
type TreeTooLargeError struct {
	Entries, Bytes int
	// File, when set, is the one file whose list of chunks takes most
	// of the listing (Size bytes, Chunks chunks): a sparse file of
	// terabytes, whose holes are chunks of zeros too (32 bytes of listing
	// per 512 KiB).
	File   string
	Size   uint64
	Chunks int
}

func (e *TreeTooLargeError) Error() string {
	if e.File != "" {
		// Splitting the directory cannot help one file (found by an
		// exploratory test: a sparse file of 8 TiB).
		return fmt.Sprintf("its file %s (%.1f TiB, holes included) is %d chunks, whose list alone takes %.1f MiB, more than the %d MiB a directory's listing may take in a snapshot (about 4 TiB of file at the smallest chunks): snap cannot store a file that large yet; leave it out with --exclude (and back up what it holds another way)",
			e.File, float64(e.Size)/(1<<40), e.Chunks, float64(e.Chunks*len(repo.ID{}))/(1<<20), repo.MaxBlobSize>>20)
	}
	return fmt.Sprintf("its listing of %d entries takes %.1f MiB, more than the %d MiB a directory may take in a snapshot; split it between snapshots with --exclude patterns (names a–m in one, the rest in another), each with a --tag of its own (a later run takes the snapshot of its own tag as its parent), and forget them with --group-by host,paths,tags",
		e.Entries, float64(e.Bytes)/(1<<20), repo.MaxBlobSize>>20)
}

// finishDir waits for a directory's entries, in order, and saves its tree.
func (a *archiver) finishDir(ctx context.Context, p string, m sources.Meta, entries []chan fileResult) fileResult {
	tree := &Tree{Nodes: make([]Node, 0, len(entries))}
	var fatal error
	gone := 0
	for _, e := range entries {
		n, ok, err := a.fileOutcome(<-e, &gone)
		if err != nil && fatal == nil {
			fatal = err
		}
		if ok {
			tree.Nodes = append(tree.Nodes, n)
		}
	}
	if more := gone - vanishedShown; more > 0 {
		a.opts.Report(Event{Kind: EventWarning, Path: p, Err: fmt.Errorf("%d more of its entries vanished or were replaced during the backup (after the directory was listed; was it being emptied or removed?); not saved", more)})
	}
	if fatal != nil {
		return fileResult{err: fatal, fatal: true}
	}
	id, err := a.saveTree(ctx, tree)
	var tooLarge *TreeTooLargeError
	if errors.As(err, &tooLarge) {
		err = fmt.Errorf("directory %s: %w", sources.DisplayPath(p), err)
	}
	if err != nil {
		return fileResult{err: err, fatal: true}
	}
	a.nDirs.Add(1)
	return fileResult{node: Node{Meta: m, Subtree: id}}
}

func (a *archiver) saveEmptyDir(ctx context.Context, m sources.Meta) fileResult {
	id, err := a.saveTree(ctx, &Tree{})
	if err != nil {
		return fileResult{err: err, fatal: true}
	}
	a.nDirs.Add(1)
	return fileResult{node: Node{Meta: m, Subtree: id}}
}

func (a *archiver) saveTree(ctx context.Context, t *Tree) (repo.ID, error) {
	plain := t.Encode()
	if len(plain) > repo.MaxBlobSize {
		// A reader refuses a larger blob: saved, it would make the
		// snapshot unreadable, and the index segment that lists it too.
		e := &TreeTooLargeError{Entries: len(t.Nodes), Bytes: len(plain)}
		for _, n := range t.Nodes {
			if len(n.Content)*len(repo.ID{}) > len(plain)/2 {
				e.File, e.Size, e.Chunks = n.Name, n.Size, len(n.Content)
			}
		}
		return repo.ID{}, e
	}
	h := a.ix.Hasher()
	id := repo.ID(h.Sum(plain))
	a.ix.PutHasher(h)
	if _, err := a.w.Save(ctx, repo.TreeBlob, id, plain); err != nil {
		return id, err
	}
	return id, nil
}
