package index

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/snap-backup/snap/repo"
)

// PackFetcher serves data blobs from whole packs, each fetched with one
// request into a temporary directory, for a read that needs most of the
// blobs of the packs it touches — a restore from a remote repository,
// where a ranged request per blob would cost one round trip per small
// file. The plan (how many reads of each pack's blobs are coming) decides
// which packs are worth fetching whole and when a fetched pack can be
// deleted; blobs of other packs are read by range as usual. Every blob is
// still authenticated and checked against its ID.
type PackFetcher struct {
	ix      *Index
	dir     string
	maxLive int // packs on disk at once; beyond, blobs are read by range

	mu    sync.Mutex
	packs map[repo.ID]*fetchedPack
	live  int
}

type fetchedPack struct {
	mu        sync.Mutex // held while the pack is fetched
	remaining int        // reads still to come
	path      string     // "" until fetched
	failed    bool       // fetching failed: read by range
}

// PackPlan counts, per pack, the blob reads a caller is about to make and
// the bytes they need.
type PackPlan struct {
	reads map[repo.ID]int
	bytes map[repo.ID]int64
}

// NewPackPlan returns an empty plan.
func NewPackPlan() *PackPlan {
	return &PackPlan{reads: map[repo.ID]int{}, bytes: map[repo.ID]int64{}}
}

// Add records a coming read of a data blob. Blobs the index does not know
// are left to the read itself to report.
func (p *PackPlan) Add(ix *Index, id repo.ID) {
	loc, ok := ix.Lookup(repo.DataBlob, id)
	if !ok {
		return
	}
	if p.reads[loc.Pack] == 0 {
		p.bytes[loc.Pack] = 0
	}
	p.reads[loc.Pack]++
	p.bytes[loc.Pack] += int64(loc.Entry.Length)
}

// NewPackFetcher prepares to serve the plan's reads, fetching whole the
// packs of which the plan needs at least a quarter, into a new directory
// under dir (removed by Close).
func (ix *Index) NewPackFetcher(dir string, plan *PackPlan) (*PackFetcher, error) {
	tmp, err := os.MkdirTemp(dir, "fetch-")
	if err != nil {
		return nil, fmt.Errorf("temporary directory for packs: %w", err)
	}
	f := &PackFetcher{ix: ix, dir: tmp, maxLive: 64, packs: map[repo.ID]*fetchedPack{}}
	for id, n := range plan.reads {
		size, ok := ix.packSize(id)
		if ok && size > 0 && plan.bytes[id]*4 >= size {
			f.packs[id] = &fetchedPack{remaining: n}
		}
	}
	return f, nil
}

// Close removes the fetched packs.
func (f *PackFetcher) Close() error { return os.RemoveAll(f.dir) }

// LoadBlob reads and verifies a blob, from its fetched pack when the plan
// chose to fetch it, and appends the plaintext to dst.
func (f *PackFetcher) LoadBlob(ctx context.Context, t repo.BlobType, id repo.ID, dst []byte) ([]byte, error) {
	loc, ok := f.ix.Lookup(t, id)
	if !ok {
		return f.ix.LoadBlob(ctx, t, id, dst) // reports the missing blob
	}
	f.mu.Lock()
	p := f.packs[loc.Pack]
	f.mu.Unlock()
	if p == nil || loc.Entry.Delta() {
		return f.ix.LoadBlobAt(ctx, loc, dst) // a delta needs its bases: through the index
	}
	path, err := f.fetch(ctx, loc.Pack, p)
	if err != nil {
		return nil, err
	}
	if path == "" {
		return f.ix.LoadBlobAt(ctx, loc, dst)
	}
	out, err := f.readFrom(path, loc, dst)
	f.done(loc.Pack, p)
	if err != nil {
		// A bad local copy must not fail the read: the repository decides.
		return f.ix.LoadBlobAt(ctx, loc, dst)
	}
	return out, nil
}

// fetch downloads the pack once; it returns "" when the pack is to be
// read by range (too many packs on disk, or the download failed in a way
// a ranged read may not).
func (f *PackFetcher) fetch(ctx context.Context, pack repo.ID, p *fetchedPack) (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.path != "" || p.failed {
		return p.path, nil
	}
	f.mu.Lock()
	full := f.live >= f.maxLive
	if !full {
		f.live++
	}
	f.mu.Unlock()
	if full {
		return "", nil
	}
	h := repo.Handle{Type: repo.PackFile, Name: pack.String()}
	data, err := f.ix.r.Backend().Load(ctx, h, 0, 0)
	if err == nil && repo.Hash(data) != pack {
		err = &repo.CorruptError{Object: h.String(), Reason: "content does not match its name"}
	}
	path := filepath.Join(f.dir, pack.String())
	if err == nil {
		err = os.WriteFile(path, data, 0o600)
	}
	if err != nil {
		f.mu.Lock()
		f.live--
		f.mu.Unlock()
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		p.failed = true // read its blobs by range, which report their own errors
		return "", nil
	}
	p.path = path
	return path, nil
}

func (f *PackFetcher) readFrom(path string, loc Location, dst []byte) ([]byte, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	sealed := make([]byte, loc.Entry.Length)
	if _, err := fh.ReadAt(sealed, int64(loc.Entry.Offset)); err != nil {
		return nil, err
	}
	out, err := f.ix.r.OpenBlob(loc.Pack, loc.Entry, sealed, dst)
	if err != nil {
		return nil, err
	}
	if err := f.ix.VerifyBlob(loc.Pack, loc.Entry, out[len(dst):]); err != nil {
		return nil, err
	}
	return out, nil
}

// done counts one planned read; the pack's file goes once none remain.
func (f *PackFetcher) done(pack repo.ID, p *fetchedPack) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.remaining--
	if p.remaining > 0 || p.path == "" {
		return
	}
	_ = os.Remove(p.path)
	p.path, p.failed = "", true // any unplanned read goes by range
	f.mu.Lock()
	f.live--
	f.mu.Unlock()
}
