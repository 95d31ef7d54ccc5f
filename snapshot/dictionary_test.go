package snapshot

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/snap-backup/snap/index"
	"github.com/snap-backup/snap/repo"
)

// writeSources writes n small "source files" from first on into dir: a
// header they share and a body of random words of their own.
func writeSources(t *testing.T, dir string, first, n int) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	words := []string{"return", "err", "nil", "func", "ctx", "if", "for", "range", "value", "index", "buffer", "close"}
	for i := first; i < first+n; i++ {
		rng := rand.New(rand.NewPCG(uint64(i), 3))
		b := fmt.Appendf(nil, "// Copyright 2026 The Snap Authors. All rights reserved.\n// Use of this source code is governed by a BSD-style\n// licence that can be found in the LICENCE file.\n\npackage p%d\n\nimport (\n\t\"context\"\n\t\"errors\"\n\t\"io\"\n)\n\n", i%7)
		for range 300 {
			b = append(b, words[rng.IntN(len(words))]...)
			b = append(b, " \n\t("[rng.IntN(4)])
		}
		writeFile(t, filepath.Join(dir, fmt.Sprintf("f%04d.go", i)), b, 0o644)
	}
}

func (p *pipelineRepo) createCompressed(paths []string) *Snapshot {
	p.t.Helper()
	sn, err := Create(context.Background(), p.ix, NewLoader(p.ix.Repository(), ""), CreateOptions{Paths: paths, Host: "test",
		Writer: index.WriterOptions{Compression: repo.CompressionFastest}})
	if err != nil {
		p.t.Fatal(err)
	}
	return sn
}

// against counts the data blobs stored as deltas with dict as their one
// base.
func (p *pipelineRepo) against(dict repo.ID) int {
	n := 0
	_ = p.ix.Blobs(func(l index.Location) error {
		if len(l.Entry.Bases) == 1 && l.Entry.Bases[0] == dict {
			n++
		}
		return nil
	})
	return n
}

// TestDictionaryForSmallFiles: a run over many small files that share
// content builds a dictionary from the first of them and stores the rest
// as deltas against it; the next run takes the same dictionary over for
// its new and changed files; both restore byte for byte and check clean,
// also after a prune that removed the first snapshot.
func TestDictionaryForSmallFiles(t *testing.T) {
	p := newPipelineRepo(t)
	ctx := context.Background()
	src := filepath.Join(t.TempDir(), "src")
	writeSources(t, src, 0, 400)

	sn1 := p.createCompressed([]string{src})
	if sn1.Dictionary == nil {
		t.Fatal("no dictionary recorded for 400 small files with a shared header")
	}
	dict := *sn1.Dictionary
	// The first dictSamples+dictTrials files are the samples, compressed
	// alone; the dictionary is built in the background, while the others
	// go on alone too: in a run this short, most or all of them.
	first := p.against(dict)
	t.Logf("first run: %d of 400 files against the dictionary", first)
	if loc, ok := p.ix.Lookup(repo.DataBlob, dict); !ok || loc.Entry.Delta() {
		t.Fatalf("the dictionary is not indexed as a full blob (%v)", ok)
	}

	// New and changed files: against the same dictionary.
	writeSources(t, src, 400, 50)
	for i := range 10 {
		f := filepath.Join(src, fmt.Sprintf("f%04d.go", 300+i))
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, f, append(b, "\n// changed\n"...), 0o644)
	}
	sn2 := p.createCompressed([]string{src})
	if sn2.Dictionary == nil || *sn2.Dictionary != dict {
		t.Fatalf("the second run's dictionary is %v, want the first run's %s", sn2.Dictionary, dict.Short())
	}
	if got := p.against(dict); got < first+50 {
		t.Errorf("%d blobs against the dictionary after the second run, want at least %d + 50 new files", got, first)
	}
	target := t.TempDir()
	if _, errs := p.restore(sn2, "/", target, RestoreOptions{}); len(errs) > 0 {
		t.Fatalf("restore: %v", errs)
	}
	sameTrees(t, src, filepath.Join(target, src))
	p.checkClean(2)

	// Forget the first snapshot and prune: the dictionary stays, as the
	// base of the second's deltas and as the dictionary it names.
	r := p.ix.Repository()
	if err := r.Backend().Remove(ctx, repo.Handle{Type: repo.SnapshotFile, Name: sn1.ID.String()}); err != nil {
		t.Fatal(err)
	}
	if _, err := index.Prune(ctx, p.ix, index.PruneOptions{Instant: true,
		Used: func(ctx context.Context) (index.BlobSet, error) {
			if _, err := p.ix.Sync(ctx, nil); err != nil {
				return nil, err
			}
			return UsedBlobs(ctx, p.ix, []*Snapshot{sn2})
		}}); err != nil {
		t.Fatal(err)
	}
	if _, err := p.ix.Sync(ctx, nil); err != nil {
		t.Fatal(err)
	}
	target = t.TempDir()
	if _, errs := p.restore(sn2, "/", target, RestoreOptions{}); len(errs) > 0 {
		t.Fatalf("restore after the prune: %v", errs)
	}
	sameTrees(t, src, filepath.Join(target, src))
	p.checkClean(1)
}

// TestDictionaryNotForFewOrUnlikeFiles: fewer small files than the samples
// take, or files with nothing in common, give no dictionary; nor does a
// run without compression.
func TestDictionaryNotForFewOrUnlikeFiles(t *testing.T) {
	p := newPipelineRepo(t)
	few := filepath.Join(t.TempDir(), "few")
	writeSources(t, few, 0, dictSamples+dictTrials-1)
	if sn := p.createCompressed([]string{few}); sn.Dictionary != nil {
		t.Errorf("%d small files got a dictionary", dictSamples+dictTrials-1)
	}

	unlike := t.TempDir()
	for i := range 300 {
		b := make([]byte, 2000+i)
		rand.NewChaCha8([32]byte{byte(i), byte(i >> 8)}).Read(b)
		writeFile(t, filepath.Join(unlike, fmt.Sprintf("r%d.bin", i)), b, 0o644)
	}
	if sn := p.createCompressed([]string{unlike}); sn.Dictionary != nil {
		t.Error("300 random files got a dictionary")
	}

	plain := filepath.Join(t.TempDir(), "plain")
	writeSources(t, plain, 0, 300)
	if sn := p.create([]string{plain}, ArchiveOptions{}); sn.Dictionary != nil {
		t.Error("a run without compression got a dictionary")
	}
}

// TestDictionaryMissing: a snapshot naming a dictionary that no pack holds
// (lost, or written by something else) neither stops prune (UsedBlobs
// leaves it out) nor troubles the next run, which builds its own.
func TestDictionaryMissing(t *testing.T) {
	p := newPipelineRepo(t)
	ctx := context.Background()
	src := filepath.Join(t.TempDir(), "src")
	writeSources(t, src, 0, 10)
	sn := p.createCompressed([]string{src})
	bogus := *sn
	gone := repo.ID{1, 2, 3}
	bogus.Dictionary = &gone
	used, err := UsedBlobs(ctx, p.ix, []*Snapshot{&bogus})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := used[index.BlobRef{Type: repo.DataBlob, ID: gone}]; ok {
		t.Error("a dictionary no pack holds counts as used")
	}
	var warnings []error
	_, err = Create(ctx, p.ix, NewLoader(p.ix.Repository(), ""), CreateOptions{Paths: []string{src}, Host: "test", Parent: &bogus,
		Writer: index.WriterOptions{Compression: repo.CompressionFastest},
		Archive: ArchiveOptions{Report: func(ev Event) {
			if ev.Kind == EventWarning || ev.Kind == EventError {
				warnings = append(warnings, ev.Err)
			}
		}}})
	if err != nil || len(warnings) > 0 {
		t.Fatalf("create after a snapshot with a missing dictionary: %v, warnings %v", err, warnings)
	}
}

// TestDictionaryJudgedAgain: a dictionary taken over that does not pay
// for the run's files (random data where the first run had source files)
// is dropped after rejudgeFiles of them, and the snapshot names none; the
// files stored against it before that restore as well.
func TestDictionaryJudgedAgain(t *testing.T) {
	p := newPipelineRepo(t)
	src := filepath.Join(t.TempDir(), "src")
	writeSources(t, src, 0, dictSamples+dictTrials+20)
	sn1 := p.createCompressed([]string{src})
	if sn1.Dictionary == nil {
		t.Fatal("no dictionary in the first run")
	}
	for i := range 100 {
		b := make([]byte, 3000+i)
		rand.NewChaCha8([32]byte{byte(i), 9}).Read(b)
		writeFile(t, filepath.Join(src, fmt.Sprintf("random%03d.bin", i)), b, 0o644)
	}
	sn2 := p.createCompressed([]string{src})
	if sn2.Dictionary != nil {
		t.Errorf("the second run kept dictionary %s for random files", sn2.Dictionary.Short())
	}
	target := t.TempDir()
	if _, errs := p.restore(sn2, "/", target, RestoreOptions{}); len(errs) > 0 {
		t.Fatalf("restore: %v", errs)
	}
	sameTrees(t, src, filepath.Join(target, src))
	p.checkClean(2)
}

// TestDictionaryLostStoredAgain: when the pack holding the small files'
// dictionary is lost (damaged, moved out, the index rebuilt from the
// packs left), the next run stores the files whose deltas can no longer
// be read again whole; that copy is the one read from then on (it restored
// nothing: the unreadable delta was preferred), and prune keeps it without
// asking for the lost base (it refused: "snapshots refer to blobs that no
// pack holds"). Found by an exploratory test.
func TestDictionaryLostStoredAgain(t *testing.T) {
	p := newPipelineRepo(t)
	ctx := context.Background()
	src := filepath.Join(t.TempDir(), "src")
	writeSources(t, src, 0, 400)
	sn1 := p.createCompressed([]string{src})
	writeSources(t, src, 400, 100)
	sn2 := p.createCompressed([]string{src})
	if sn2.Dictionary == nil || p.against(*sn2.Dictionary) == 0 {
		t.Fatal("no files stored against a dictionary")
	}
	dict := *sn2.Dictionary
	loc, ok := p.ix.Lookup(repo.DataBlob, dict)
	if !ok {
		t.Fatal("the dictionary is not indexed")
	}
	r := p.ix.Repository()
	if err := r.Backend().Remove(ctx, repo.Handle{Type: repo.PackFile, Name: loc.Pack.String()}); err != nil {
		t.Fatal(err)
	}
	if _, err := p.ix.RebuildFromPacks(ctx, nil); err != nil {
		t.Fatal(err)
	}

	sn3 := p.createCompressed([]string{src})
	target := t.TempDir()
	if _, errs := p.restore(sn3, "/", target, RestoreOptions{}); len(errs) > 0 {
		t.Fatalf("restore of the run after the loss: %d errors, the first %v", len(errs), errs[0])
	}
	sameTrees(t, src, filepath.Join(target, src))

	for _, sn := range []*Snapshot{sn1, sn2} {
		if err := r.Backend().Remove(ctx, repo.Handle{Type: repo.SnapshotFile, Name: sn.ID.String()}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := index.Prune(ctx, p.ix, index.PruneOptions{Instant: true,
		Used: func(ctx context.Context) (index.BlobSet, error) {
			if _, err := p.ix.Sync(ctx, nil); err != nil {
				return nil, err
			}
			return UsedBlobs(ctx, p.ix, []*Snapshot{sn3})
		}}); err != nil {
		t.Fatalf("prune: %v", err)
	}
	if _, err := p.ix.Sync(ctx, nil); err != nil {
		t.Fatal(err)
	}
	target = t.TempDir()
	if _, errs := p.restore(sn3, "/", target, RestoreOptions{}); len(errs) > 0 {
		t.Fatalf("restore after the prune: %d errors, the first %v", len(errs), errs[0])
	}
	sameTrees(t, src, filepath.Join(target, src))
	p.checkClean(1)
}
