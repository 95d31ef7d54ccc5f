// Package backendtest is the conformance suite every repo.Backend passes:
// the local directory, S3 (on a real server), and the wrappers (retry
// around faulty, limit, counting). It checks the guarantees listed on
// repo.Backend, not an implementation's details.
package backendtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/snap-backup/snap/repo"
)

// Options adapt the suite to a backend.
type Options struct {
	// Secrets must not appear in Location or in any error message.
	Secrets []string
	// LargeSize is the size of the large-object test (default 12 MiB);
	// S3 tests set the multipart threshold below it.
	LargeSize int
}

// Run runs the suite. open returns a new, empty backend for each subtest.
func Run(t *testing.T, open func(t *testing.T) repo.Backend, o Options) {
	if o.LargeSize == 0 {
		o.LargeSize = 12 << 20
	}
	s := &suite{open: open, o: o}
	for _, tc := range []struct {
		name string
		fn   func(t *testing.T, be repo.Backend)
	}{
		{"SaveLoad", s.saveLoad},
		{"Ranges", s.ranges},
		{"Missing", s.missing},
		{"Immutable", s.immutable},
		{"ConfigCreateOnly", s.configCreateOnly},
		{"List", s.list},
		{"ListStops", s.listStops},
		{"Remove", s.remove},
		{"Concurrent", s.concurrent},
		{"Large", s.large},
		{"InvalidNames", s.invalidNames},
	} {
		t.Run(tc.name, func(t *testing.T) {
			be := open(t)
			t.Cleanup(func() { _ = be.Close() })
			tc.fn(t, be)
		})
	}
}

type suite struct {
	open func(t *testing.T) repo.Backend
	o    Options
}

func randomBytes(t *testing.T, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// named returns data and a handle named by its hash, as snap names files.
func named(t *testing.T, typ repo.FileType, n int) (repo.Handle, []byte) {
	data := randomBytes(t, n)
	return repo.Handle{Type: typ, Name: repo.Hash(data).String()}, data
}

func (s *suite) checkErr(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		return
	}
	for _, sec := range s.o.Secrets {
		if sec != "" && strings.Contains(err.Error(), sec) {
			t.Fatalf("error message reveals a secret: %v", err)
		}
	}
	if strings.Contains(err.Error(), "\n") {
		t.Errorf("error message is not one line: %q", err)
	}
}

func (s *suite) mustSave(t *testing.T, be repo.Backend, h repo.Handle, data []byte) {
	t.Helper()
	if err := be.Save(context.Background(), h, data); err != nil {
		s.checkErr(t, err)
		t.Fatalf("save %s: %v", h, err)
	}
}

func (s *suite) mustLoad(t *testing.T, be repo.Backend, h repo.Handle, off, n int64) []byte {
	t.Helper()
	data, err := be.Load(context.Background(), h, off, n)
	if err != nil {
		s.checkErr(t, err)
		t.Fatalf("load %s at %d+%d: %v", h, off, n, err)
	}
	return data
}

func (s *suite) saveLoad(t *testing.T, be repo.Backend) {
	ctx := context.Background()
	loc := be.Location()
	if loc == "" {
		t.Error("empty Location")
	}
	for _, sec := range s.o.Secrets {
		if sec != "" && strings.Contains(loc, sec) {
			t.Fatalf("Location %q reveals a secret", loc)
		}
	}
	for _, typ := range repo.FileTypes {
		h, data := named(t, typ, 1000+len(typ))
		if typ == repo.ConfigFile {
			h.Name = ""
		}
		s.mustSave(t, be, h, data)
		if got := s.mustLoad(t, be, h, 0, 0); !bytes.Equal(got, data) {
			t.Errorf("%s: loaded %d bytes differ from the %d saved", h, len(got), len(data))
		}
		size, err := be.Stat(ctx, h)
		if err != nil || size != int64(len(data)) {
			t.Errorf("stat %s = %d, %v; want %d", h, size, err, len(data))
		}
	}
	// An empty file is a file.
	h := repo.Handle{Type: repo.LockFile, Name: repo.Hash(nil).String()}
	s.mustSave(t, be, h, []byte{})
	if size, err := be.Stat(ctx, h); err != nil || size != 0 {
		t.Errorf("stat of an empty file = %d, %v", size, err)
	}
}

func (s *suite) ranges(t *testing.T, be repo.Backend) {
	h, data := named(t, repo.PackFile, 100_000)
	s.mustSave(t, be, h, data)
	for _, r := range [][2]int64{{0, 1}, {0, 100_000}, {1, 99_999}, {12345, 6789}, {99_999, 1}, {50_000, 0}, {0, 0}} {
		want := data[r[0]:]
		if r[1] > 0 {
			want = data[r[0] : r[0]+r[1]]
		}
		if got := s.mustLoad(t, be, h, r[0], r[1]); !bytes.Equal(got, want) {
			t.Errorf("load at %d+%d: got %d bytes, want %d (or different bytes)", r[0], r[1], len(got), len(want))
		}
	}
	// Past the end: an error, never short data.
	for _, r := range [][2]int64{{99_990, 20}, {100_001, 5}, {200_000, 10}} {
		got, err := be.Load(context.Background(), h, r[0], r[1])
		if err == nil {
			t.Errorf("load at %d+%d of a 100000-byte file returned %d bytes and no error", r[0], r[1], len(got))
		}
		if errors.Is(err, repo.ErrNotFound) {
			t.Errorf("load past the end gave ErrNotFound (the file exists): %v", err)
		}
		if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("load past the end: %v, want an error wrapping io.ErrUnexpectedEOF", err)
		}
		s.checkErr(t, err)
	}
}

func (s *suite) missing(t *testing.T, be repo.Backend) {
	ctx := context.Background()
	for _, typ := range repo.FileTypes {
		h, _ := named(t, typ, 10)
		if typ == repo.ConfigFile {
			h.Name = ""
		}
		if _, err := be.Load(ctx, h, 0, 0); !errors.Is(err, repo.ErrNotFound) {
			t.Errorf("load of missing %s: %v, want ErrNotFound", h, err)
		}
		if _, err := be.Load(ctx, h, 5, 10); !errors.Is(err, repo.ErrNotFound) {
			t.Errorf("ranged load of missing %s: %v, want ErrNotFound", h, err)
		}
		if _, err := be.Stat(ctx, h); !errors.Is(err, repo.ErrNotFound) {
			t.Errorf("stat of missing %s: %v, want ErrNotFound", h, err)
		}
		if err := be.Remove(ctx, h); !errors.Is(err, repo.ErrNotFound) {
			t.Errorf("remove of missing %s: %v, want ErrNotFound", h, err)
		}
	}
}

func (s *suite) immutable(t *testing.T, be repo.Backend) {
	h, data := named(t, repo.IndexFile, 5000)
	s.mustSave(t, be, h, data)
	s.mustSave(t, be, h, data) // saving again is allowed and harmless
	if got := s.mustLoad(t, be, h, 0, 0); !bytes.Equal(got, data) {
		t.Error("content changed after a second save")
	}
}

// configCreateOnly: the config's name is not its hash; a second Save must
// leave the first one alone (two racing inits must not overwrite).
func (s *suite) configCreateOnly(t *testing.T, be repo.Backend) {
	h := repo.Handle{Type: repo.ConfigFile}
	first := randomBytes(t, 300)
	s.mustSave(t, be, h, first)
	if err := be.Save(context.Background(), h, randomBytes(t, 400)); err != nil {
		t.Fatalf("second save of the config: %v (want nil, file left alone)", err)
	}
	if got := s.mustLoad(t, be, h, 0, 0); !bytes.Equal(got, first) {
		t.Fatalf("second save replaced the config (%d bytes, first had %d)", len(got), len(first))
	}
}

type entry struct {
	name string
	size int64
}

func listAll(t *testing.T, be repo.Backend, typ repo.FileType) []entry {
	t.Helper()
	var out []entry
	err := be.List(context.Background(), typ, func(name string, size int64) error {
		out = append(out, entry{name, size})
		return nil
	})
	if err != nil {
		t.Fatalf("list %s: %v", typ, err)
	}
	slices.SortFunc(out, func(a, b entry) int { return strings.Compare(a.name, b.name) })
	return out
}

func (s *suite) list(t *testing.T, be repo.Backend) {
	for _, typ := range repo.FileTypes {
		if got := listAll(t, be, typ); len(got) != 0 {
			t.Errorf("list %s of an empty backend: %v", typ, got)
		}
	}
	want := map[repo.FileType][]entry{}
	for i := range 40 {
		typ := []repo.FileType{repo.PackFile, repo.PackFile, repo.IndexFile, repo.SnapshotFile, repo.KeyFile, repo.LockFile}[i%6]
		h, data := named(t, typ, 100+i)
		s.mustSave(t, be, h, data)
		want[typ] = append(want[typ], entry{h.Name, int64(len(data))})
	}
	cfg := randomBytes(t, 77)
	s.mustSave(t, be, repo.Handle{Type: repo.ConfigFile}, cfg)
	want[repo.ConfigFile] = []entry{{"", 77}}
	for _, typ := range repo.FileTypes {
		w := want[typ]
		slices.SortFunc(w, func(a, b entry) int { return strings.Compare(a.name, b.name) })
		got := listAll(t, be, typ)
		if !slices.Equal(got, w) {
			t.Errorf("list %s: got %v, want %v", typ, got, w)
		}
	}
}

func (s *suite) listStops(t *testing.T, be repo.Backend) {
	for i := range 5 {
		h, data := named(t, repo.SnapshotFile, 10+i)
		s.mustSave(t, be, h, data)
	}
	stop := errors.New("stop here")
	calls := 0
	err := be.List(context.Background(), repo.SnapshotFile, func(string, int64) error {
		calls++
		return stop
	})
	if !errors.Is(err, stop) || calls != 1 {
		t.Errorf("list whose callback fails: err %v after %d calls; want the callback's error after 1", err, calls)
	}
}

func (s *suite) remove(t *testing.T, be repo.Backend) {
	ctx := context.Background()
	h, data := named(t, repo.LockFile, 50)
	keep, kdata := named(t, repo.LockFile, 60)
	s.mustSave(t, be, h, data)
	s.mustSave(t, be, keep, kdata)
	// ErrNotFound is allowed: under the retry wrapper, an attempt whose
	// answer was lost removed it already. Either way it must be gone.
	if err := be.Remove(ctx, h); err != nil && !errors.Is(err, repo.ErrNotFound) {
		t.Fatalf("remove: %v", err)
	}
	if _, err := be.Stat(ctx, h); !errors.Is(err, repo.ErrNotFound) {
		t.Errorf("stat after remove: %v, want ErrNotFound", err)
	}
	if got := listAll(t, be, repo.LockFile); len(got) != 1 || got[0].name != keep.Name {
		t.Errorf("list after remove: %v", got)
	}
	p, pdata := named(t, repo.PackFile, 70)
	s.mustSave(t, be, p, pdata)
	if err := be.Remove(ctx, p); err != nil && !errors.Is(err, repo.ErrNotFound) {
		t.Fatalf("remove pack: %v", err)
	}
	if got := listAll(t, be, repo.PackFile); len(got) != 0 {
		t.Errorf("packs after remove: %v", got)
	}
}

func (s *suite) concurrent(t *testing.T, be repo.Backend) {
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h, data := named(t, repo.PackFile, 1000+i*37)
			ctx := context.Background()
			if err := be.Save(ctx, h, data); err != nil {
				errs <- err
				return
			}
			got, err := be.Load(ctx, h, 10, 100)
			if err != nil {
				errs <- err
				return
			}
			if !bytes.Equal(got, data[10:110]) {
				errs <- fmt.Errorf("%s: wrong bytes", h)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := listAll(t, be, repo.PackFile); len(got) != 32 {
		t.Errorf("listed %d packs, want 32", len(got))
	}
}

func (s *suite) large(t *testing.T, be repo.Backend) {
	h, data := named(t, repo.PackFile, s.o.LargeSize)
	s.mustSave(t, be, h, data)
	if got := s.mustLoad(t, be, h, 0, 0); !bytes.Equal(got, data) {
		t.Fatal("large object differs after a round trip")
	}
	// Ranges across the 5 MiB boundaries where parts may meet.
	for _, off := range []int64{5<<20 - 10, 10<<20 - 3, int64(len(data)) - 100} {
		if got := s.mustLoad(t, be, h, off, 100); !bytes.Equal(got, data[off:off+100]) {
			t.Errorf("range at %d differs", off)
		}
	}
	size, err := be.Stat(context.Background(), h)
	if err != nil || size != int64(len(data)) {
		t.Errorf("stat = %d, %v", size, err)
	}
}

func (s *suite) invalidNames(t *testing.T, be repo.Backend) {
	ctx := context.Background()
	for _, name := range []string{"../x", "/etc/passwd", "", "a", "ab/../../cd", "AB" + hex.EncodeToString([]byte("x"))} {
		h := repo.Handle{Type: repo.KeyFile, Name: name}
		if err := be.Save(ctx, h, []byte("x")); err == nil {
			t.Errorf("save of %q succeeded", name)
		}
		if _, err := be.Load(ctx, h, 0, 0); err == nil {
			t.Errorf("load of %q succeeded", name)
		}
	}
}
