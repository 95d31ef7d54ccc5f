package index

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/snap-backup/snap/repo"
	"github.com/snap-backup/snap/repo/local"
)

// panicky is a backend with a bug: the requests when accepts panic.
type panicky struct {
	repo.Backend
	when func(op string, h repo.Handle, offset, length int64) bool
}

func (b *panicky) Save(ctx context.Context, h repo.Handle, data []byte) error {
	if b.when("save", h, 0, int64(len(data))) {
		panic("injected: save " + h.String())
	}
	return b.Backend.Save(ctx, h, data)
}

func (b *panicky) Load(ctx context.Context, h repo.Handle, offset, length int64) ([]byte, error) {
	if b.when("load", h, offset, length) {
		panic("injected: load " + h.String())
	}
	return b.Backend.Load(ctx, h, offset, length)
}

// openPanicky opens the repository in dir through a panicky backend.
func openPanicky(t *testing.T, dir string, when func(op string, h repo.Handle, offset, length int64) bool) *repo.Repository {
	t.Helper()
	be, err := local.Open(filepath.Join(dir, "repo"))
	if err != nil {
		t.Fatal(err)
	}
	r, err := repo.Open(context.Background(), &panicky{Backend: be, when: when}, "pw", repo.Options{Host: "t"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func wantPanicError(t *testing.T, err error) {
	t.Helper()
	var pe *repo.PanicError
	if !errors.As(err, &pe) || len(pe.Stack) == 0 {
		t.Fatalf("error %v (%T), want a *repo.PanicError with its stack", err, err)
	}
}

// A pack upload that panics (in the writer's upload goroutine) is the
// writer's error, returned by Flush: no index segment is written for it.
func TestWriterUploadPanic(t *testing.T) {
	_, _, dir := newTestIndex(t)
	r := openPanicky(t, dir, func(op string, h repo.Handle, _, _ int64) bool { return op == "save" && h.Type == repo.PackFile })
	ix, err := Open(context.Background(), r, t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	ctx := context.Background()
	w := NewWriter(ix, WriterOptions{})
	plain := randomBlob(1, 1000)
	if _, err := w.Save(ctx, repo.DataBlob, blobID(ix, plain), plain); err != nil {
		t.Fatal(err)
	}
	wantPanicError(t, w.Flush(ctx))
	if err := r.Backend().List(ctx, repo.IndexFile, func(name string, _ int64) error {
		return errors.New("index segment " + name + " written for a pack that was never uploaded")
	}); err != nil {
		t.Fatal(err)
	}
}

// A panic while check reads packs (in forEach's workers) stops the check
// and is its error; it does not hang with items left to hand out.
func TestCheckReadDataPanic(t *testing.T) {
	ix, _, dir := newTestIndex(t)
	ctx := context.Background()
	w := NewWriter(ix, WriterOptions{})
	for i := range 20 {
		plain := randomBlob(uint64(i), 6<<20) // two blobs a pack: ten packs
		if _, err := w.Save(ctx, repo.DataBlob, blobID(ix, plain), plain); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	// Only whole-pack reads panic: those of ReadData, not the trailers.
	r := openPanicky(t, dir, func(op string, h repo.Handle, offset, length int64) bool {
		return op == "load" && h.Type == repo.PackFile && offset == 0 && length == 0
	})
	c, err := NewChecker(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.CheckPacks(ctx, 2); err != nil {
		t.Fatal(err)
	}
	if len(c.PackSizes()) < 5 {
		t.Fatalf("only %d packs", len(c.PackSizes()))
	}
	wantPanicError(t, c.ReadData(ctx, c.PackSizes(), 1, nil))
}

// A pack download that panics (in the fetcher's prefetch goroutine, or in
// the one a read starts) fails the reads that need the pack with the
// panic; no read waits for ever, and Close returns.
func TestPackFetcherDownloadPanic(t *testing.T) {
	ix, _, dir := newTestIndex(t)
	ctx := context.Background()
	w := NewWriter(ix, WriterOptions{})
	var ids []repo.ID
	for i := range 8 {
		plain := randomBlob(uint64(i), 6<<20) // two blobs a pack: four packs
		id := blobID(ix, plain)
		if _, err := w.Save(ctx, repo.DataBlob, id, plain); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	if err := w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	// Only whole-pack loads panic: the fetcher's; reads by range do not.
	r := openPanicky(t, dir, func(op string, h repo.Handle, offset, length int64) bool {
		return op == "load" && h.Type == repo.PackFile && offset == 0 && length == 0
	})
	pix, err := Open(ctx, r, t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer pix.Close()
	plan := NewPackPlan()
	for _, id := range ids {
		plan.Add(pix, id)
	}
	for _, ahead := range []int{0, 2} { // reads start the fetches; prefetch does
		t.Run(fmt.Sprintf("ahead=%d", ahead), func(t *testing.T) {
			pf, err := pix.NewPackFetcher(ctx, t.TempDir(), plan, FetchOptions{Ahead: ahead, MaxLive: 4})
			if err != nil {
				t.Fatal(err)
			}
			for _, id := range ids {
				_, err := pf.LoadBlob(ctx, repo.DataBlob, id, nil)
				wantPanicError(t, err)
			}
			if err := pf.Close(); err != nil {
				t.Fatal(err)
			}
		})
	}
}
