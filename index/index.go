package index

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/snap-backup/snap/chunk"
	"github.com/snap-backup/snap/repo"
)

// Cache layout (bbolt buckets; integers big endian so keys sort):
//
//	meta        "version" → cacheVersion, "nextseq" → uint32,
//	            "deadpacks" → uint64 (sweepDead), "swept" → uint64
//	            (metaSwept)
//	segments    segment ID → concatenated IDs of the packs it lists
//	superseded  segment ID → empty: segments replaced by a newer one
//	packs       pack ID → uint32 seq ‖ uint64 size ‖ uint8 status ‖
//	            int64 marked-at ‖ [32]byte owning segment
//	seqs        uint32 seq → pack ID
//	blobs       blob ID ‖ uint8 type ‖ uint32 seq → uint8 compression ‖
//	            uint32 offset ‖ uint32 length ‖ uint32 raw length
//	            [‖ k × [32]byte base IDs, for a delta (compression 2)]
//	bases       base ID ‖ uint32 seq → empty: a delta in pack seq has
//	            that base (IsBase)
//
// Pack IDs are replaced by small sequence numbers in the blobs bucket to
// keep the file small: 37-byte keys and 13-byte values per blob.
var (
	bMeta       = []byte("meta")
	bSegments   = []byte("segments")
	bSuperseded = []byte("superseded")
	bPacks      = []byte("packs")
	bSeqs       = []byte("seqs")
	bBlobs      = []byte("blobs")
	bBases      = []byte("bases")
	allBuckets  = [][]byte{bMeta, bSegments, bSuperseded, bPacks, bSeqs, bBlobs, bBases}
)

const cacheVersion = "3" // 2: deltas and their bases; 3: the bases bucket

// Location is where one blob is stored.
type Location struct {
	Pack   repo.ID
	Status PackStatus
	Entry  repo.BlobEntry
}

// Index is the local blob index of one repository, backed by a bbolt file.
// It is safe for concurrent use.
type Index struct {
	r       *repo.Repository
	db      *bolt.DB
	path    string
	tempDir string // set when the cache is a private temporary copy
	// readOnly: Options.ReadOnly; Sync skips segments it cannot read.
	readOnly bool
	// unreadSegments: Sync skipped a segment it could not read, so a blob
	// not in the index is most likely one of its (NotIndexedError).
	unreadSegments atomic.Bool
	packs          *packCache // whole tree packs; nil unless Options.CacheTreePacks
	hot            *hotPacks  // data packs read for many bases; nil unless Options.FetchBasePacks

	hashers  sync.Pool
	pages    pageReleaser
	bases    baseCache // plaintexts of recently used delta bases
	damaged  damagedCopies
	verdicts cacheVerdicts // what confirm learnt of the cache against the repository
	// adding serialises AddSegment: the cache's "adding" marker names one
	// segment at a time (the writer adds segments from several upload
	// goroutines).
	adding sync.Mutex
}

// Options tune Open.
type Options struct {
	// LockTimeout is how long to wait for another process that has the
	// cache file open. After it, Open builds a private temporary cache.
	LockTimeout time.Duration
	// Log receives notices (a temporary cache, a vanished segment).
	Log func(msg string)
	// NoSync opens the cache without reading new segments, for repair,
	// which rebuilds the cache itself (and must work when a segment is
	// damaged).
	NoSync bool
	// CacheTreePacks keeps whole tree packs in dir/packs (see
	// packcache.go): worth it when every read is a network request.
	CacheTreePacks bool
	// FetchBasePacks fetches whole, into memory, a pack that many delta
	// bases are read from without a plan (hotpacks.go): worth it when
	// every read is a network request.
	FetchBasePacks bool
	// ReadOnly is for commands that only read (list, restore, ls, …): a
	// segment that cannot be read is left out of the cache with a notice,
	// rather than failing every Sync, so that what the other segments
	// index stays restorable (what needs its blobs fails by itself). A
	// writer must not rely on such an index: a lost segment may be the
	// one that marks a pack for deletion, whose blobs it would reuse.
	ReadOnly bool
	// KeepPages keeps the cache's pages mapped between lookups, whatever
	// the resident memory (pages.go): for a copy, whose heap grows with
	// the snapshot (its maps of trees and blobs) and stays above the
	// budget, releases only made its lookups fault the B-tree in again. A
	// copy of 300,000 files took 38.9 s with them and 20.0 s without, at
	// a lower peak (355 MB against 413; found by an exploratory test).
	KeepPages bool
	// BaseCacheBytes bounds the cache of delta bases (0: baseCacheBytes;
	// ReadBaseCacheBytes for commands that read many deltas).
	BaseCacheBytes int
	// rebuilt is set when Open opens a cache it has just rebuilt after a
	// panic: a second one is not the cache's fault, and is returned.
	rebuilt bool
	// noSpace is set when Open opens again after the cache's disk filled
	// up: it builds a temporary cache elsewhere.
	noSpace bool
}

// damagedMarker, in a cache directory, says that a run failed inside the
// index cache (MarkDamaged): the next Open rebuilds it.
const damagedMarker = "index.db.damaged"

// MarkDamaged records that the index cache in dir may be damaged, so that
// the next Open rebuilds it: a damaged bbolt page shows as a fault or a
// panic in whatever reads it, often long after Open, and a run every night
// that fails the same way until someone deletes the cache helps no one.
// The cache is never the only copy of anything.
func MarkDamaged(dir string) error {
	f, err := os.OpenFile(filepath.Join(dir, damagedMarker), os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	return f.Close()
}

// Open opens (or creates) the cache in dir and syncs it with the
// repository's segments. dir is typically $XDG_CACHE_HOME/snap/<repo-id>.
func Open(ctx context.Context, r *repo.Repository, dir string, o Options) (*Index, error) {
	if o.LockTimeout == 0 {
		o.LockTimeout = 3 * time.Second
	}
	if o.Log == nil {
		o.Log = func(string) {}
	}
	ix := &Index{r: r, readOnly: o.ReadOnly}
	ix.bases.max = o.BaseCacheBytes
	ix.pages.min, ix.pages.budget, ix.pages.fileFloor = releaseMin, rssBudget, fileFloor
	if o.KeepPages {
		ix.pages.budget = math.MaxInt64
	}
	key := r.IDKey()
	ix.hashers.New = func() any { return chunk.NewHasher(key) }
	path := filepath.Join(dir, "index.db")
	var db *bolt.DB
	err := os.MkdirAll(dir, 0o700)
	if err != nil && !unwritable(err) && !repo.DiskFull(err) {
		return nil, fmt.Errorf("cache directory: %w (set --cache-dir to a writable directory)", err)
	}
	if o.noSpace {
		// The cache's disk filled up while the cache was synced (below):
		// the cache, never the only copy of anything, was removed to free
		// the space, and this run builds a temporary one.
		err = syscall.ENOSPC
	}
	if err == nil {
		if _, serr := os.Stat(filepath.Join(dir, damagedMarker)); serr == nil {
			o.Log(fmt.Sprintf("index cache %s may be damaged (an earlier run failed inside it); rebuilding it", path))
			_ = os.Remove(path)
			_ = os.Remove(filepath.Join(dir, damagedMarker))
		}
		err = repo.Catch(func() (err error) {
			db, err = openCache(path, o.LockTimeout)
			return err // bbolt panics on some damaged freelists: rebuilt below
		})
	}
	var bug *repo.PanicError
	switch {
	case repo.DiskFull(err):
		// A full disk under the cache: bbolt may have written part of a
		// new file, which the next run would find unreadable. It goes,
		// and this run uses a temporary cache (elsewhere: the system's
		// temporary directory), as for a cache it may not write.
		cause := err
		_ = os.Remove(path)
		if db, path, err = ix.temporary("", "snap-index-", path); err != nil {
			return nil, fmt.Errorf("index cache %s: %w, and no temporary one: %v; free space on the cache's disk or give --cache-dir on another", dir, cause, err)
		}
		o.Log(fmt.Sprintf("index cache %s: no space left on its disk: using a temporary one, built from the repository for this run; free space there, or give --cache-dir on another disk", dir))
	case unwritable(err):
		// A cache this user may not write (another user's: root's, left
		// by sudo with HOME kept; a read-only one) is replaced, for this
		// run, by a temporary one built from the repository: slower, but
		// a restore must not fail for want of a cache.
		cause := err
		if db, path, err = ix.temporary("", "snap-index-", path); err != nil {
			return nil, fmt.Errorf("cache directory: %w, and no temporary one: %v (set --cache-dir to a writable directory)", cause, err)
		}
		o.Log(fmt.Sprintf("index cache %s cannot be used by this user (%v): using a temporary one, built from the repository for this run; give this user a cache of its own (--cache-dir) or fix the owner", dir, cause))
	case errors.Is(err, bolt.ErrTimeout):
		o.Log(fmt.Sprintf("index cache %s is in use by another snap process; using a private copy", path))
		db, path, err = ix.temporary(dir, "tmp-index-", path)
	case errors.As(err, &bug):
		// bbolt faults on a file cut short (a run that failed while it
		// was being created, a disk error): its message is no news.
		o.Log(fmt.Sprintf("index cache %s is damaged (cut short or overwritten); rebuilding it", path))
		_ = os.Remove(path)
		db, err = bolt.Open(path, 0o600, &bolt.Options{Timeout: o.LockTimeout})
	case err != nil:
		// An unreadable cache is rebuilt: it is never the only copy.
		o.Log(fmt.Sprintf("index cache %s is unreadable (%v); rebuilding it", path, err))
		_ = os.Remove(path)
		db, err = bolt.Open(path, 0o600, &bolt.Options{Timeout: o.LockTimeout})
	}
	if err != nil {
		return nil, fmt.Errorf("open index cache %s: %w", path, err)
	}
	ix.db, ix.path = db, path
	removeStaleCopies(dir)
	if ix.tempDir == "" {
		// A shrink's copy that a killed run left (shrink.go): this
		// process holds the cache's lock, which a shrink holds
		// throughout, so no shrink is writing it.
		_ = os.Remove(path + compactSuffix)
	}
	err = repo.Catch(func() error {
		if err := ix.init(); err != nil || o.NoSync {
			return err
		}
		_, err := ix.Sync(ctx, o.Log)
		return err
	})
	if repo.DiskFull(err) && ix.tempDir == "" && !o.noSpace {
		ix.Close()
		if rerr := os.Remove(path); rerr != nil {
			return nil, fmt.Errorf("index cache %s: %w; free space on the cache's disk or give --cache-dir on another", path, err)
		}
		o.noSpace = true
		return Open(ctx, r, dir, o)
	}
	if errors.As(err, &bug) && ix.tempDir == "" && !o.rebuilt {
		// A cache whose pages are damaged (a disk error, a bit flip, a
		// file cut short) makes bbolt fault or panic; it is rebuilt.
		ix.Close()
		o.Log(fmt.Sprintf("index cache %s is damaged (%v); rebuilding it", path, bug.Value))
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("remove damaged index cache: %w (delete %s by hand)", err, path)
		}
		o.rebuilt = true
		return Open(ctx, r, dir, o)
	}
	if err != nil {
		ix.Close()
		if repo.DiskFull(err) {
			// Also the temporary cache's disk (the system's temporary
			// directory, often the same disk).
			err = fmt.Errorf("index cache: %w; no room for a temporary one either: free space on the cache's disk (and in %s), or give --cache-dir on another disk", err, os.TempDir())
		}
		return nil, err
	}
	if !o.NoSync {
		ix.Shrink(o.Log)
	}
	if o.CacheTreePacks {
		ix.packs = newPackCache(filepath.Join(dir, "packs"), min(4*int64(r.Config().PackSize), 256<<20))
		ix.packs.prune(func(id repo.ID) bool { _, ok := ix.packSize(id); return ok })
	}
	if o.FetchBasePacks {
		ix.hot = newHotPacks()
	}
	return ix, nil
}

// unwritable reports whether err is the cache directory or file refusing
// this user (another user's, or a read-only file system).
func unwritable(err error) bool {
	return errors.Is(err, fs.ErrPermission) || errors.Is(err, syscall.EROFS)
}

// temporary opens a private index database for this run in a new
// directory below parent ("": the system's), which Close removes, and
// returns its path (path, the cache's, when there is none).
func (ix *Index) temporary(parent, pattern, path string) (*bolt.DB, string, error) {
	tmp, err := os.MkdirTemp(parent, pattern)
	if err != nil {
		return nil, path, err
	}
	ix.tempDir = tmp
	path = filepath.Join(tmp, "index.db")
	db, err := bolt.Open(path, 0o600, &bolt.Options{NoSync: true})
	return db, path, err
}

// removeStaleCopies removes the private copies in dir that no process
// uses: a process killed with its copy open left it for good, one more
// with each such kill (found by an exploratory test). A copy in use is
// locked (bbolt holds a lock on its file while open); one not yet opened
// is left for a minute.
func removeStaleCopies(dir string) {
	copies, _ := filepath.Glob(filepath.Join(dir, "tmp-index-*"))
	for _, c := range copies {
		fi, err := os.Stat(c)
		if err != nil || !fi.IsDir() || time.Since(fi.ModTime()) < time.Minute {
			continue
		}
		f, err := os.OpenFile(filepath.Join(c, "index.db"), os.O_RDWR, 0)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				_ = os.RemoveAll(c)
			}
			continue
		}
		if syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) == nil {
			_ = os.RemoveAll(c)
		}
		f.Close()
	}
}

// packSize returns the size of a pack the cache knows.
func (ix *Index) packSize(id repo.ID) (int64, bool) {
	rec, ok := ix.packRecord(id)
	return rec.size, ok
}

// packRecord returns the cache's record of pack id.
func (ix *Index) packRecord(id repo.ID) (rec packRec, ok bool) {
	_ = ix.db.View(func(tx *bolt.Tx) error {
		rec, ok = decodePackRec(tx.Bucket(bPacks).Get(id[:]))
		return nil
	})
	return rec, ok
}

// init creates the buckets, or empties them if the cache has another
// version.
func (ix *Index) init() error {
	return ix.db.Update(func(tx *bolt.Tx) error {
		if m := tx.Bucket(bMeta); m != nil && string(m.Get([]byte("version"))) != cacheVersion {
			for _, b := range allBuckets {
				if err := tx.DeleteBucket(b); err != nil && !errors.Is(err, bolt.ErrBucketNotFound) {
					return err
				}
			}
		}
		for _, b := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return tx.Bucket(bMeta).Put([]byte("version"), []byte(cacheVersion))
	})
}

// Close closes the cache file (and removes a private temporary copy).
func (ix *Index) Close() error {
	err := ix.db.Close()
	ix.pages.close()
	if ix.tempDir != "" {
		_ = os.RemoveAll(ix.tempDir)
	}
	return err
}

// Repository returns the repository this index belongs to.
func (ix *Index) Repository() *repo.Repository { return ix.r }

func blobKey(id repo.ID, t repo.BlobType, seq uint32) []byte {
	k := make([]byte, 0, 37)
	k = append(k, id[:]...)
	k = append(k, byte(t))
	return binary.BigEndian.AppendUint32(k, seq)
}

type packRec struct {
	seq      uint32
	size     int64
	status   PackStatus
	markedAt int64
	owner    repo.ID
}

func (p packRec) encode() []byte {
	b := make([]byte, 0, 4+8+1+8+32)
	b = binary.BigEndian.AppendUint32(b, p.seq)
	b = binary.BigEndian.AppendUint64(b, uint64(p.size))
	b = append(b, byte(p.status))
	b = binary.BigEndian.AppendUint64(b, uint64(p.markedAt))
	return append(b, p.owner[:]...)
}

func decodePackRec(b []byte) (packRec, bool) {
	if len(b) != 4+8+1+8+32 {
		return packRec{}, false
	}
	p := packRec{seq: binary.BigEndian.Uint32(b), size: int64(binary.BigEndian.Uint64(b[4:])), status: PackStatus(b[12]), markedAt: int64(binary.BigEndian.Uint64(b[13:]))}
	copy(p.owner[:], b[21:])
	return p, true
}

func encodeBlobVal(e repo.BlobEntry) []byte {
	b := make([]byte, 13, 13+32*len(e.Bases))
	switch {
	case e.Delta():
		b[0] = 2
	case e.Compressed:
		b[0] = 1
	}
	binary.BigEndian.PutUint32(b[1:], e.Offset)
	binary.BigEndian.PutUint32(b[5:], e.Length)
	binary.BigEndian.PutUint32(b[9:], e.RawLength)
	for _, id := range e.Bases {
		b = append(b, id[:]...)
	}
	return b
}

func decodeBlobVal(id repo.ID, t repo.BlobType, v []byte) (repo.BlobEntry, bool) {
	if len(v) < 13 || (len(v)-13)%32 != 0 || (v[0] == 2) != (len(v) > 13) || len(v) > 13+32*repo.MaxBases {
		return repo.BlobEntry{}, false
	}
	e := repo.BlobEntry{Type: t, ID: id, Compressed: v[0] != 0, Offset: binary.BigEndian.Uint32(v[1:]),
		Length: binary.BigEndian.Uint32(v[5:]), RawLength: binary.BigEndian.Uint32(v[9:])}
	for b := v[13:]; len(b) > 0; b = b[32:] {
		e.Bases = append(e.Bases, repo.ID(b[:32]))
	}
	return e, true
}

// BlobEntries returns how many blob entries the cache holds (a blob
// stored twice counts twice).
func (ix *Index) BlobEntries() int { return bucketLen(ix.db, bBlobs) }

// bucketLen returns how many keys a bucket of db holds.
func bucketLen(db *bolt.DB, bucket []byte) int {
	n := 0
	_ = db.View(func(tx *bolt.Tx) error {
		n = tx.Bucket(bucket).Stats().KeyN
		return nil
	})
	return n
}

// Lookup returns where the blob is stored, preferring a live pack when it
// is stored more than once. ok is false when the blob is not indexed.
func (ix *Index) Lookup(t repo.BlobType, id repo.ID) (loc Location, ok bool) {
	_ = ix.db.View(func(tx *bolt.Tx) error {
		loc, ok = ix.lookupFunc(tx, t, id, nil)
		return nil
	})
	ix.touched()
	return loc, ok
}

// lookupBatch is how many blobs LookupEach looks up in one transaction: a
// read transaction keeps bbolt from remapping the file (a writer that grows
// it waits), so a long list is looked up a batch at a time.
const lookupBatch = 1024

// LookupEach looks up every blob of ids (all of type t), lookupBatch of
// them in one read transaction, and calls fn, once for each, with its
// index in ids and what Lookup would return. A directory's unchanged files
// are checked this way: the buckets opened once per transaction, and each
// pack record decoded once for the many blobs that share a pack, where
// Lookup pays all of that for every blob. fn runs inside the transaction
// and must not use the index: a second transaction in the same goroutine
// can wait forever behind a writer that waits for the first.
//
// The blobs of a batch are looked up in the order of their IDs, the
// B-tree's: successive lookups then touch neighbouring pages, which one
// fault maps together, where IDs in a file's order touched a page of their
// own each, mapped again after every release (pages.go).
func (ix *Index) LookupEach(t repo.BlobType, ids []repo.ID, fn func(i int, loc Location, ok bool)) {
	order := make([]int, 0, min(lookupBatch, len(ids)))
	for start := 0; start < len(ids); start += lookupBatch {
		end := min(start+lookupBatch, len(ids))
		order = order[:0]
		for i := start; i < end; i++ {
			order = append(order, i)
		}
		slices.SortFunc(order, func(a, b int) int { return bytes.Compare(ids[a][:], ids[b][:]) })
		_ = ix.db.View(func(tx *bolt.Tx) error {
			r := ix.newTxReader(tx)
			r.seen = make(map[uint32]seenPack)
			for _, i := range order {
				loc, ok := r.lookup(t, ids[i], nil)
				fn(i, loc, ok)
				if ix.pages.due() {
					ix.releaseIn(tx) // in the open transaction, unlike touched
				}
			}
			return nil
		})
	}
}

// lookupFunc is Lookup in tx among the stored copies whose entries accept
// takes (all when accept is nil).
func (ix *Index) lookupFunc(tx *bolt.Tx, t repo.BlobType, id repo.ID, accept func(repo.BlobEntry) bool) (best Location, found bool) {
	return ix.newTxReader(tx).lookup(t, id, accept)
}

// txReader looks blobs up in one read transaction: the buckets are opened
// once, and with seen set the pack of each sequence number is read and
// decoded once. The pack buckets are opened at the first blob found: a
// blob that is not there (every blob of a first backup) needs only the
// blobs bucket, and opening a bucket is a search of the root. Copies
// found damaged (damagedCopies) are passed over.
type txReader struct {
	tx          *bolt.Tx
	blobs       *bolt.Bucket
	packs, seqs *bolt.Bucket        // nil until needed
	seen        map[uint32]seenPack // by sequence number; nil: none kept
	damaged     *damagedCopies
}

// seenPack is what a txReader learnt of one pack.
type seenPack struct {
	id     repo.ID
	status PackStatus
	ok     bool // false: the sequence number or the pack record is missing or malformed
}

func (ix *Index) newTxReader(tx *bolt.Tx) *txReader {
	return &txReader{tx: tx, blobs: tx.Bucket(bBlobs), damaged: &ix.damaged}
}

// pack returns the pack that seq (4 bytes, as in a blob key) stands for.
func (r *txReader) pack(seq []byte) seenPack {
	n := binary.BigEndian.Uint32(seq)
	if p, ok := r.seen[n]; ok {
		return p
	}
	var p seenPack
	if r.seqs == nil {
		r.packs, r.seqs = r.tx.Bucket(bPacks), r.tx.Bucket(bSeqs)
	}
	if pid := r.seqs.Get(seq); pid != nil {
		if rec, ok := decodePackRec(r.packs.Get(pid)); ok && len(pid) == len(p.id) {
			copy(p.id[:], pid)
			p.status, p.ok = rec.status, true
		}
	}
	if r.seen != nil {
		r.seen[n] = p
	}
	return p
}

// lookup is lookupFunc in r's transaction.
func (r *txReader) lookup(t repo.BlobType, id repo.ID, accept func(repo.BlobEntry) bool) (best Location, found bool) {
	prefix := blobKey(id, t, 0)[:33]
	c := r.blobs.Cursor()
	n := 0
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		if n++; n > maxCopiesLooked {
			break
		}
		e, ok := decodeBlobVal(id, t, v)
		if !ok || len(k) != 37 || accept != nil && !accept(e) {
			continue
		}
		p := r.pack(k[33:])
		if !p.ok || r.damaged.has(p.id, t, id) {
			continue
		}
		loc := Location{Status: p.status, Entry: e, Pack: p.id}
		if !found || better(loc, best) {
			best, found = loc, true
		}
		if best.Status == PackLive && !best.Entry.Delta() {
			break
		}
	}
	return best, found
}

// maxCopiesLooked bounds the copies of one blob a lookup weighs. snap
// stores a blob again only when runs overlap or a repack copies it, a few
// times at most; a crafted index listing one blob in 200,000 marked packs
// before its live one made each lookup weigh them all, and a restore of an
// 8 KiB file took 75 s (found by a hostile-repository test).
const maxCopiesLooked = 1024

// better reports whether a is a better copy of a blob to read than b: one
// in a live pack rather than a marked one, and among those a full copy
// rather than a delta. A delta needs its bases too, and a blob stored both
// ways is most often a delta whose base was lost (a damaged pack, moved
// out) that a later run stored again whole: reading the delta would fail
// where the full copy restores.
func better(a, b Location) bool {
	if a.Status != b.Status {
		return a.Status == PackLive
	}
	return b.Entry.Delta() && !a.Entry.Delta()
}

// IsBase reports whether data blob id is a base of a delta in an indexed
// pack. A writer stores such a blob whole, never as a delta: deltas are
// opened with full copies of their bases, and a base stored again after
// its pack was lost (moved out as damaged) must make the older deltas
// readable again, which a delta copy of it would not.
func (ix *Index) IsBase(id repo.ID) bool {
	found := false
	_ = ix.db.View(func(tx *bolt.Tx) error {
		seqs := tx.Bucket(bSeqs)
		c := tx.Bucket(bBases).Cursor()
		for k, _ := c.Seek(id[:]); k != nil && bytes.HasPrefix(k, id[:]); k, _ = c.Next() {
			// Entries of dropped packs stay behind, dead, as in the
			// blobs bucket.
			if seqs.Get(k[32:]) != nil {
				found = true
				return nil
			}
		}
		return nil
	})
	ix.touched()
	return found
}

// Has reports whether the blob is stored in a live pack.
func (ix *Index) Has(t repo.BlobType, id repo.ID) bool {
	loc, ok := ix.Lookup(t, id)
	return ok && loc.Status == PackLive
}

// ErrBlobNotIndexed is returned for a blob no index entry names.
var ErrBlobNotIndexed = errors.New("blob is not in the index")

// LoadBlob reads a blob, verifies that its plaintext hashes to its ID and
// appends the plaintext to dst.
func (ix *Index) LoadBlob(ctx context.Context, t repo.BlobType, id repo.ID, dst []byte) ([]byte, error) {
	loc, ok := ix.Lookup(t, id)
	if !ok {
		if err := ix.damaged.blobErr(t, id); err != nil {
			return nil, err // its one copy was found damaged: say so again
		}
		if t != repo.DataBlob {
			// Not looked for in the repository's index (confirm): a
			// create's parent tree not indexed yet is a snapshot saved
			// after this run synced, and the create syncs and reads it
			// again; the look would read every segment first.
			return nil, ix.notIndexedError(t, id)
		}
		return nil, ix.NotIndexedError(ctx, t, id)
	}
	return ix.LoadBlobAt(ctx, loc, dst)
}

// NotIndexedError is the error of a blob the index does not list, with
// what to do: when index segments could not be read (named in a warning
// when the index was opened), the blob is most likely in one of them,
// and 'snap repair index --from-packs' lists it again; the advice was
// 'snap repair index', which refuses a damaged segment, or none at all
// (found by an exploratory test). When the repository's index lists the
// blob, the cache is what lost it: ErrCacheDamaged (confirm).
func (ix *Index) NotIndexedError(ctx context.Context, t repo.BlobType, id repo.ID) error {
	return ix.confirm(ctx, t, id, nil, ix.notIndexedError(t, id))
}

func (ix *Index) notIndexedError(t repo.BlobType, id repo.ID) error {
	other := repo.TreeBlob
	if t == repo.TreeBlob {
		other = repo.DataBlob
	}
	if _, ok := ix.Lookup(other, id); ok {
		// A tree that names a data blob as a directory's subtree, or
		// a file's content a tree blob: the index is right, the tree
		// is not (found by an exploratory test: "not in the index").
		return fmt.Errorf("%s blob %s: %w: the index lists it as a %s blob; the tree that names it is damaged or crafted ('snap check' shows what is affected)", t, id, ErrBlobNotIndexed, other)
	}
	if ix.unreadSegments.Load() {
		return fmt.Errorf("%s blob %s: %w (an index segment could not be read, above: 'snap repair index --from-packs' indexes its packs again)", t, id, ErrBlobNotIndexed)
	}
	return fmt.Errorf("%s blob %s: %w ('snap check' shows what is affected; 'snap repair index --from-packs' indexes packs that exist but are not indexed, and a new create stores again what its files still hold)", t, id, ErrBlobNotIndexed)
}

// LoadBlobAt reads the blob at a known location and verifies it. Tree
// blobs come from the tree pack cache when there is one. A copy that
// turns out damaged is recorded (damagedCopies), and another copy of the
// blob, in another pack, is read instead when the index lists one: a
// blob stored again after its pack was damaged restores before a repair
// moves the damaged pack out. The error of the first copy stands when no
// other reads, or ErrCacheDamaged when the repository's index places the
// blob elsewhere than the cache (confirm).
func (ix *Index) LoadBlobAt(ctx context.Context, loc Location, dst []byte) ([]byte, error) {
	out, err := ix.loadCopy(ctx, loc, dst)
	if err == nil || !isDamage(err) || ctx.Err() != nil {
		return out, err
	}
	if ix.damaged.add(loc, err) {
		if alt, ok := ix.Lookup(loc.Entry.Type, loc.Entry.ID); ok {
			if out, aerr := ix.LoadBlobAt(ctx, alt, dst); aerr == nil {
				return out, nil
			}
		}
	}
	err = ix.confirm(ctx, loc.Entry.Type, loc.Entry.ID, &loc, err)
	if errors.Is(err, ErrCacheDamaged) {
		ix.damaged.confirmed(loc, err) // Damaged says the cache, not the pack
	}
	return nil, err
}

// loadCopy is LoadBlobAt of the copy at loc alone.
func (ix *Index) loadCopy(ctx context.Context, loc Location, dst []byte) ([]byte, error) {
	if loc.Entry.Delta() {
		out, err := ix.loadDelta(ctx, loc, dst)
		if err != nil && errors.Is(err, ErrBlobNotIndexed) {
			// A base of this delta is lost: another copy of the blob (a
			// whole one a later run stored, or a delta on other bases)
			// may read. One step only: that copy's own failure stands.
			if alt, ok := ix.otherCopy(loc); ok {
				if alt.Entry.Delta() {
					return ix.loadDelta(ctx, alt, dst)
				}
				return ix.LoadBlobAt(ctx, alt, dst)
			}
		}
		return out, err
	}
	if ix.packs != nil && loc.Entry.Type == repo.TreeBlob {
		if out, ok := ix.loadCached(ctx, loc, dst); ok {
			return out, nil
		}
	}
	out, err := ix.r.LoadBlob(ctx, loc.Pack, loc.Entry, dst)
	if err != nil {
		return nil, err
	}
	if err := ix.VerifyBlob(loc.Pack, loc.Entry, out[len(dst):]); err != nil {
		return nil, err
	}
	return out, nil
}

// otherCopy returns a copy of the blob at loc that does not need loc's
// bases: a whole one, or a delta on other bases.
func (ix *Index) otherCopy(loc Location) (Location, bool) {
	var alt Location
	var ok bool
	_ = ix.db.View(func(tx *bolt.Tx) error {
		alt, ok = ix.lookupFunc(tx, loc.Entry.Type, loc.Entry.ID, func(e repo.BlobEntry) bool {
			return !e.Delta() || !slices.Equal(e.Bases, loc.Entry.Bases)
		})
		return nil
	})
	ix.touched()
	return alt, ok
}

// loadCached reads a blob through the pack cache. ok is false when the
// caller should read it from the repository instead: the pack is too big
// to cache, could not be fetched whole, or its cached copy failed a check
// (and was dropped).
func (ix *Index) loadCached(ctx context.Context, loc Location, dst []byte) ([]byte, bool) {
	size, _ := ix.packSize(loc.Pack)
	sealed, err := ix.packs.sealedBlob(ctx, ix.r, loc.Pack, size, loc.Entry)
	if err != nil {
		return nil, false
	}
	out, err := ix.r.OpenBlob(loc.Pack, loc.Entry, sealed, dst)
	if err == nil {
		err = ix.VerifyBlob(loc.Pack, loc.Entry, out[len(dst):])
	}
	if err != nil {
		ix.packs.drop(loc.Pack)
		return nil, false
	}
	return out, true
}

// VerifyBlob checks that plain hashes to the entry's ID.
func (ix *Index) VerifyBlob(pack repo.ID, e repo.BlobEntry, plain []byte) error {
	h := ix.hashers.Get().(*chunk.Hasher)
	sum := h.Sum(plain)
	ix.hashers.Put(h)
	if repo.ID(sum) != e.ID {
		return &repo.CorruptError{Object: fmt.Sprintf("%s blob %s in pack %s", e.Type, e.ID, pack), Reason: "content does not match its ID"}
	}
	return nil
}

// Hasher returns a hasher for blob IDs; give it back with PutHasher.
func (ix *Index) Hasher() *chunk.Hasher { return ix.hashers.Get().(*chunk.Hasher) }

// PutHasher returns a hasher obtained from Hasher.
func (ix *Index) PutHasher(h *chunk.Hasher) { ix.hashers.Put(h) }

// PackInfo describes a pack known to the cache.
type PackInfo struct {
	ID       repo.ID
	Size     int64
	Status   PackStatus
	MarkedAt int64
	Segment  repo.ID
}

// PackStatus returns the status of one pack; ok is false when the cache
// does not know it.
func (ix *Index) PackStatus(id repo.ID) (status PackStatus, ok bool) {
	rec, ok := ix.packRecord(id)
	ix.touched()
	return rec.status, ok
}

// Packs calls fn for every pack in the cache.
func (ix *Index) Packs(fn func(PackInfo) error) error {
	return ix.db.View(func(tx *bolt.Tx) error {
		n := 0
		return tx.Bucket(bPacks).ForEach(func(k, v []byte) error {
			if n++; n%releaseEvery == 0 {
				ix.releaseIn(tx)
			}
			rec, ok := decodePackRec(v)
			if !ok || len(k) != 32 {
				return nil
			}
			pi := PackInfo{Size: rec.size, Status: rec.status, MarkedAt: rec.markedAt, Segment: rec.owner}
			copy(pi.ID[:], k)
			return fn(pi)
		})
	})
}

// Blobs calls fn for every indexed blob (a blob stored twice is reported
// twice).
func (ix *Index) Blobs(fn func(Location) error) error {
	return ix.db.View(func(tx *bolt.Tx) error {
		packs, seqs := tx.Bucket(bPacks), tx.Bucket(bSeqs)
		n := 0
		return tx.Bucket(bBlobs).ForEach(func(k, v []byte) error {
			if n++; n%releaseEvery == 0 {
				ix.releaseIn(tx)
			}
			if len(k) != 37 {
				return nil
			}
			var id repo.ID
			copy(id[:], k)
			e, ok := decodeBlobVal(id, repo.BlobType(k[32]), v)
			pid := seqs.Get(k[33:])
			if !ok || pid == nil {
				return nil
			}
			rec, _ := decodePackRec(packs.Get(pid))
			loc := Location{Status: rec.status, Entry: e}
			copy(loc.Pack[:], pid)
			return fn(loc)
		})
	})
}
