package snapshot

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/snap-backup/snap/index"
	"github.com/snap-backup/snap/repo"
	"github.com/snap-backup/snap/repo/local"
	"github.com/snap-backup/snap/sources"
)

// Tests that a panic in a goroutine of the archiver, the restorer, the
// snapshot listing or the copier — injected through what a caller supplies
// (Report, Writer.Added, a BlobLoader, a stream, a backend) — fails the
// operation with a *repo.PanicError instead of crashing the test binary,
// saves no snapshot, and leaves the repository checking clean.

// panicky is a backend with a bug: the requests when accepts panic.
type panicky struct {
	repo.Backend
	when func(op string, h repo.Handle, length int64) bool
}

func (b *panicky) Save(ctx context.Context, h repo.Handle, data []byte) error {
	if b.when("save", h, int64(len(data))) {
		panic("injected: save " + h.String())
	}
	return b.Backend.Save(ctx, h, data)
}

func (b *panicky) Load(ctx context.Context, h repo.Handle, offset, length int64) ([]byte, error) {
	if b.when("load", h, length) {
		panic("injected: load " + h.String())
	}
	return b.Backend.Load(ctx, h, offset, length)
}

// reopen opens p's repository through a panicky backend, with an index in
// a cache of its own.
func (p *pipelineRepo) reopen(when func(op string, h repo.Handle, length int64) bool) *index.Index {
	p.t.Helper()
	ctx := context.Background()
	be, err := local.Open(filepath.Join(p.dir, "repo"))
	if err != nil {
		p.t.Fatal(err)
	}
	r, err := repo.Open(ctx, &panicky{Backend: be, when: when}, "pw", repo.Options{Host: "test"})
	if err != nil {
		p.t.Fatal(err)
	}
	ix, err := index.Open(ctx, r, p.t.TempDir(), index.Options{})
	if err != nil {
		p.t.Fatal(err)
	}
	p.t.Cleanup(func() { ix.Close(); r.Close() })
	return ix
}

// wantPanicError fails unless err is (or wraps) a *repo.PanicError whose
// value says "injected".
func wantPanicError(t *testing.T, err error) {
	t.Helper()
	var pe *repo.PanicError
	if !errors.As(err, &pe) {
		t.Fatalf("error %v (%T), want a *repo.PanicError", err, err)
	}
	if !strings.Contains(fmt.Sprint(pe.Value), "injected") || !strings.Contains(err.Error(), "internal error: ") || len(pe.Stack) == 0 {
		t.Fatalf("panic error %q (value %v, %d bytes of stack)", err, pe.Value, len(pe.Stack))
	}
}

// checkClean asserts that the repository holds want snapshots and that
// its index, packs and every snapshot check without a problem.
func (p *pipelineRepo) checkClean(want int) {
	p.t.Helper()
	ctx := context.Background()
	r := p.ix.Repository()
	sns, errs, err := NewLoader(r, "").List(ctx)
	if err != nil || len(errs) > 0 {
		p.t.Fatalf("list: %v %v", err, errs)
	}
	if len(sns) != want {
		p.t.Fatalf("%d snapshots in the repository, want %d", len(sns), want)
	}
	c, err := index.NewChecker(ctx, r)
	if err != nil {
		p.t.Fatal(err)
	}
	if err := c.CheckPacks(ctx, 2); err != nil {
		p.t.Fatal(err)
	}
	if err := c.ReadData(ctx, c.PackSizes(), 2, nil); err != nil {
		p.t.Fatal(err)
	}
	sc := NewSnapshotChecker(c)
	for _, sn := range sns {
		if probs, ex, err := sc.Check(ctx, sn); err != nil || probs > 0 {
			p.t.Fatalf("check snapshot %s: %d problems (%s), %v", sn.ID.Short(), probs, ex, err)
		}
	}
	if ps := c.Problems(); len(ps) > 0 {
		p.t.Fatalf("check: %+v", ps)
	}
}

// panicSource writes a directory of small files and one file of many
// chunks (which the save workers hash), and returns it.
func panicSource(t *testing.T) string {
	t.Helper()
	src := filepath.Join(t.TempDir(), "src")
	rng := rand.New(rand.NewPCG(7, 8))
	for i := range 30 {
		data := make([]byte, 100+rng.IntN(2000))
		for k := range data {
			data[k] = byte('a' + rng.IntN(26))
		}
		put(t, filepath.Join(src, fmt.Sprintf("d%d", i%3), fmt.Sprintf("f%02d", i)), data)
	}
	big := make([]byte, 8<<20) // above offloadSize: the save workers hash its chunks
	for k := range big {
		big[k] = byte(rng.Uint32())
	}
	put(t, filepath.Join(src, "big"), big)
	return src
}

// put writes a file, making its directory.
func put(t *testing.T, p string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, p, data, 0o644)
}

// tryCreate runs Create and insists that it fails with a panic error.
func (p *pipelineRepo) tryCreate(ix *index.Index, o CreateOptions) {
	p.t.Helper()
	o.Host = "test"
	sn, err := Create(context.Background(), ix, NewLoader(ix.Repository(), ""), o)
	if sn != nil {
		p.t.Fatalf("Create returned snapshot %s despite the panic", sn.ID.Short())
	}
	wantPanicError(p.t, err)
}

func TestPanicInArchiverGoroutines(t *testing.T) {
	var streamCloses atomic.Int32
	for _, tc := range []struct {
		name   string
		parent bool // make a first snapshot, so that files are unchanged
		empty  bool // only empty files and directories: nothing but trees to save
		closed bool // the stream is closed once despite the panic (the dump command is waited for)
		o      func(CreateOptions) CreateOptions
	}{
		{name: "file worker (Report of a read)", o: func(o CreateOptions) CreateOptions {
			o.Archive.Report = func(ev Event) {
				if ev.Kind == EventRead {
					panic("injected: read report")
				}
			}
			return o
		}},
		{name: "file result (Report of a saved file)", o: func(o CreateOptions) CreateOptions {
			o.Archive.Report = func(ev Event) {
				if ev.Kind == EventFile {
					panic("injected: file report")
				}
			}
			return o
		}},
		{name: "walker (Report of an unchanged file)", parent: true, o: func(o CreateOptions) CreateOptions {
			o.Archive.Report = func(ev Event) {
				if ev.Kind == EventFile {
					panic("injected: unchanged file report")
				}
			}
			return o
		}},
		{name: "save worker (Added of a data chunk)", o: func(o CreateOptions) CreateOptions {
			o.Writer.Added = func(raw, _ int64) {
				if raw >= 64<<10 { // the minimum chunk size: a chunk of the big file, not a tree
					panic("injected: data blob added")
				}
			}
			return o
		}},
		{name: "directory finisher (Added of a tree)", empty: true, o: func(o CreateOptions) CreateOptions {
			o.Writer.Added = func(int64, int64) { panic("injected: tree added") }
			return o
		}},
		{name: "stream (Read)", closed: true, o: func(o CreateOptions) CreateOptions {
			o.Streams = []Stream{{Path: "/db/dump.sql", Open: func(context.Context) (io.ReadCloser, error) {
				return closeCounter{io.MultiReader(strings.NewReader(strings.Repeat("insert;\n", 50000)), panicReader{}), &streamCloses}, nil
			}}}
			return o
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newPipelineRepo(t)
			src := panicSource(t)
			if tc.empty {
				src = filepath.Join(t.TempDir(), "empty")
				for _, f := range []string{"a/x", "a/b/y", "c/z"} {
					put(t, filepath.Join(src, f), nil)
				}
			}
			snapshots := 0
			if tc.parent {
				p.create([]string{src}, ArchiveOptions{})
				snapshots++
			}
			o := tc.o(CreateOptions{Paths: []string{src}, Archive: ArchiveOptions{Walkers: 2, FileWorkers: 2, SaveWorkers: 2}})
			p.tryCreate(p.ix, o)
			p.checkClean(snapshots)
			if tc.closed {
				if n := streamCloses.Load(); n != 1 {
					t.Errorf("the stream was closed %d times, want once", n)
				}
			}
			// The repository takes the next backup as usual.
			p.create([]string{src}, ArchiveOptions{})
			p.checkClean(snapshots + 1)
		})
	}
}

type panicReader struct{}

// closeCounter is a stream that counts its Close calls.
type closeCounter struct {
	io.Reader
	closes *atomic.Int32
}

func (c closeCounter) Close() error { c.closes.Add(1); return nil }

func (panicReader) Read([]byte) (int, error) { panic("injected: stream read") }

// A pack upload that panics fails the create at the writer's Flush (or the
// next Save): no index segment names the pack and no snapshot is saved.
func TestPanicInPackUpload(t *testing.T) {
	p := newPipelineRepo(t)
	src := panicSource(t)
	ix := p.reopen(func(op string, h repo.Handle, _ int64) bool { return op == "save" && h.Type == repo.PackFile })
	p.tryCreate(ix, CreateOptions{Paths: []string{src}})
	if err := p.ix.Repository().Backend().List(context.Background(), repo.IndexFile, func(name string, _ int64) error {
		return fmt.Errorf("index segment %s written for packs that were never uploaded", name)
	}); err != nil {
		t.Fatal(err)
	}
	p.checkClean(0)
}

// A restore whose BlobLoader panics (a worker) or whose Report panics for
// a hard link (a walker) fails with the panic; the repository is untouched.
func TestPanicInRestorerGoroutines(t *testing.T) {
	p := newPipelineRepo(t)
	src := panicSource(t)
	if err := os.Link(filepath.Join(src, "big"), filepath.Join(src, "d1", "link")); err != nil {
		t.Fatal(err)
	}
	sn := p.create([]string{src}, ArchiveOptions{})
	for _, tc := range []struct {
		name string
		o    RestoreOptions
	}{
		{"worker (BlobLoader)", RestoreOptions{Blobs: panicLoader{}}},
		{"walker (Report of a hard link)", RestoreOptions{Report: func(ev Event) {
			if ev.Kind == EventFile && ev.Bytes == 0 { // a link: the walker reports it
				panic("injected: link report")
			}
		}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			node, err := FindNode(ctx, p.ix, sn.Tree, src)
			if err != nil {
				t.Fatal(err)
			}
			tg, err := sources.OpenTarget(filepath.Join(t.TempDir(), "target"))
			if err != nil {
				t.Fatal(err)
			}
			defer tg.Close()
			tc.o.Workers = 2
			_, err = NewRestorer(p.ix, tg, tc.o).Restore(ctx, src, node)
			wantPanicError(t, err)
			p.checkClean(1)
		})
	}
}

type panicLoader struct{}

func (panicLoader) LoadBlob(context.Context, repo.BlobType, repo.ID, []byte) ([]byte, error) {
	panic("injected: load blob")
}

// Listing snapshots reads documents in parallel: a panic there fails the
// listing (an unreadable document would only be reported).
func TestPanicInSnapshotList(t *testing.T) {
	p := newPipelineRepo(t)
	src := panicSource(t)
	p.create([]string{src}, ArchiveOptions{})
	ix := p.reopen(func(op string, h repo.Handle, _ int64) bool { return op == "load" && h.Type == repo.SnapshotFile })
	sns, _, err := NewLoader(ix.Repository(), "").List(context.Background())
	if sns != nil {
		t.Fatalf("List returned %d snapshots despite the panic", len(sns))
	}
	wantPanicError(t, err)
}

// A copy whose reads of data blobs from the source panic (in its fetch
// workers) fails and saves nothing in the target.
func TestPanicInCopy(t *testing.T) {
	p := newPipelineRepo(t)
	src := panicSource(t)
	sn := p.create([]string{src}, ArchiveOptions{})
	// Trees are far smaller than the 64 KiB minimum chunk: only data reads panic.
	srcIx := p.reopen(func(op string, h repo.Handle, length int64) bool {
		return op == "load" && h.Type == repo.PackFile && length >= 64<<10
	})
	dst := newPipelineRepo(t)
	out, err := NewCopier(srcIx, dst.ix, CopyOptions{Workers: 2}).Copy(context.Background(), sn, nil)
	if out != nil {
		t.Fatalf("Copy returned snapshot %s despite the panic", out.ID.Short())
	}
	wantPanicError(t, err)
	dst.checkClean(0)
	p.checkClean(1)
}
