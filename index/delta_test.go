package index_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/snap-backup/snap/chunk"
	"github.com/snap-backup/snap/index"
	"github.com/snap-backup/snap/repo"
)

// rows returns n lines of table-like text, with line changed (if >= 0)
// altered.
func rows(n, changed int) []byte {
	var b bytes.Buffer
	for i := range n {
		if i == changed {
			fmt.Fprintf(&b, "%d\tchanged\n", i)
			continue
		}
		fmt.Fprintf(&b, "%d\t%d\t%d\n", i, i*7919%1000, i*104729%99991)
	}
	return b.Bytes()
}

// noise returns n incompressible bytes.
func noise(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.NewChaCha8([32]byte{1}).Read(b)
	return b
}

// writeRaw stores blobs as given (entries with any bases) in one new pack
// and indexes it, bypassing the Writer's rules: what a buggy or hostile
// writer could leave in a repository.
func (f *fixture) writeRaw(blobs []rawBlob) {
	f.t.Helper()
	ctx := context.Background()
	var pb repo.PackBuilder
	for _, b := range blobs {
		payload, compressed := b.payload, b.compressed
		f.r.AddBlob(&pb, repo.DataBlob, b.id, payload, compressed, b.rawLen, b.bases)
	}
	id, data, ents := f.r.FinishPack(&pb)
	if err := f.r.Backend().Save(ctx, repo.Handle{Type: repo.PackFile, Name: id.String()}, data); err != nil {
		f.t.Fatal(err)
	}
	seg := &index.Segment{Packs: []index.Pack{{ID: id, Size: int64(len(data)), Blobs: ents}}}
	if _, err := f.r.SaveObject(ctx, repo.IndexFile, seg.Encode()); err != nil {
		f.t.Fatal(err)
	}
	if _, err := f.ix.Sync(ctx, nil); err != nil {
		f.t.Fatal(err)
	}
}

type rawBlob struct {
	id         repo.ID
	payload    []byte
	compressed bool
	rawLen     int
	bases      []repo.ID
}

func (f *fixture) delta(plain, dict []byte, bases ...repo.ID) rawBlob {
	payload, ok, _ := f.r.CompressDelta(plain, dict, repo.CompressionDefault, nil)
	if !ok {
		f.t.Fatal("delta not smaller")
	}
	return rawBlob{id: repo.ID(chunk.NewHasher(f.r.IDKey()).Sum(plain)), payload: payload, compressed: true, rawLen: len(plain), bases: bases}
}

func (f *fixture) full(plain []byte) rawBlob {
	payload, ok, _ := f.r.CompressBlob(plain, repo.CompressionFastest, nil)
	if !ok {
		payload = plain
	}
	return rawBlob{id: repo.ID(chunk.NewHasher(f.r.IDKey()).Sum(plain)), payload: payload, compressed: ok, rawLen: len(plain)}
}

// TestDeltaReadsOnlyFullBases: a delta opens with full copies of its bases.
// One whose base is missing, or is stored only as a delta itself (what two
// writers racing could leave: no chains, no cycles), is an error naming the
// base, for LoadBlob and for check, never a panic or wrong bytes; and the
// Writer does not count such a delta as stored.
func TestDeltaReadsOnlyFullBases(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	base, a, b := rows(2000, -1), rows(2000, 10), rows(2000, 20)
	fb := f.full(base)
	good := f.delta(a, base, fb.id)
	f.writeRaw([]rawBlob{fb, good})
	if got, err := f.ix.LoadBlob(ctx, repo.DataBlob, good.id, nil); err != nil || !bytes.Equal(got, a) {
		t.Fatalf("delta with a full base: %v", err)
	}
	w := index.NewWriter(f.ix, index.WriterOptions{})
	if !w.Known(repo.DataBlob, good.id) {
		t.Fatal("a delta whose base has a full copy is not known")
	}

	missing := f.delta(b, base, repo.ID{9, 9, 9})
	// cycle: x's base is y, y's base is x, neither has a full copy.
	x, y := rows(1500, 5), rows(1500, 6)
	dx, dy := f.delta(x, y, repo.ID{}), f.delta(y, x, repo.ID{})
	dx.bases, dy.bases = []repo.ID{dy.id}, []repo.ID{dx.id}
	f.writeRaw([]rawBlob{missing, dx, dy})
	for name, id := range map[string]repo.ID{"missing base": missing.id, "cycle": dx.id} {
		_, err := f.ix.LoadBlob(ctx, repo.DataBlob, id, nil)
		if err == nil || !strings.Contains(err.Error(), "base") || !errors.Is(err, index.ErrBlobNotIndexed) {
			t.Errorf("%s: LoadBlob: %v", name, err)
		}
		if w.Known(repo.DataBlob, id) {
			t.Errorf("%s: counted as stored", name)
		}
	}
	// KnownEach agrees, and relies on the good delta's pack and its base's.
	w2 := index.NewWriter(f.ix, index.WriterOptions{})
	ids := []repo.ID{good.id, missing.id, dx.id, fb.id, {7, 7}, good.id}
	known := make([]bool, len(ids))
	w2.KnownEach(repo.DataBlob, ids, known)
	if want := []bool{true, false, false, true, false, true}; !slices.Equal(known, want) {
		t.Errorf("KnownEach = %v, want %v", known, want)
	}
	wantPacks := []repo.ID{f.packOf(index.BlobRef{Type: repo.DataBlob, ID: good.id}).Pack, f.packOf(index.BlobRef{Type: repo.DataBlob, ID: fb.id}).Pack}
	for _, p := range wantPacks {
		if !slices.Contains(w2.ReusedPacks(), p) {
			t.Errorf("KnownEach relies on %v, not on pack %s", w2.ReusedPacks(), p.Short())
		}
	}
	c, err := index.NewChecker(ctx, f.r)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Available(repo.DataBlob, good.id); err != nil {
		t.Errorf("check: good delta: %v", err)
	}
	for name, id := range map[string]repo.ID{"missing base": missing.id, "cycle": dx.id} {
		if err := c.Available(repo.DataBlob, id); err == nil || !strings.Contains(err.Error(), "base") {
			t.Errorf("check: %s: %v", name, err)
		}
		if _, err := c.LoadBlob(ctx, repo.DataBlob, id); err == nil {
			t.Errorf("check: %s: loaded", name)
		}
	}
	// Reading every pack calls no pack damaged: a delta whose base cannot
	// be read is not damage of its pack (an unused delta loses its bases
	// to prune). The deltas that could not be verified are counted in a
	// note; a snapshot using one fails its own check (Available, above).
	if err := c.ReadData(ctx, c.PackSizes(), 2, nil); err != nil {
		t.Fatal(err)
	}
	for _, p := range c.Problems() {
		if p.Kind == "damaged_pack" {
			t.Errorf("problem: %s", p.Message)
		}
	}
	if notes := strings.Join(c.Notes(), "\n"); !strings.Contains(notes, "3 delta blobs could not be verified") {
		t.Errorf("notes: %s", notes)
	}
}

// TestPruneKeepsFullBases: prune keeps a full copy of every base of a used
// delta, even when the base itself is unused and is also stored as a delta
// in a pack the prune would rather keep.
func TestPruneKeepsFullBases(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	base, a, other := rows(2000, -1), rows(2000, 10), rows(2000, 30)
	fb := f.full(base)
	// The full copy shares its pack with much unused data, so that the
	// delta copy's pack looks the better one to keep.
	f.writeRaw([]rawBlob{fb, f.full(noise(200000))})
	// A second copy of the base, as a delta, in a pack with the used delta.
	baseAsDelta := f.delta(base, other, f.full(other).id)
	d := f.delta(a, base, fb.id)
	f.writeRaw([]rawBlob{f.full(other), baseAsDelta, d})
	f.prune(index.PruneOptions{Instant: true, MaxUnusedPercent: 100}, []index.BlobRef{{Type: repo.DataBlob, ID: d.id}})
	full := false
	_ = f.ix.Blobs(func(l index.Location) error {
		full = full || l.Entry.ID == fb.id && !l.Entry.Delta() && f.packExists(l.Pack)
		return nil
	})
	if !full {
		t.Fatal("prune deleted the only full copy of a used delta's base")
	}
	if got, err := f.ix.LoadBlob(ctx, repo.DataBlob, d.id, nil); err != nil || !bytes.Equal(got, a) {
		t.Fatalf("delta after prune: %v", err)
	}
}

// TestCheckSubsetFindsDamagedBase: check reads only the delta's pack (a
// --read-data-subset), and the base it opens the delta with turns out
// damaged in a pack outside the subset: the delta's pack is not blamed,
// but the delta is reported unavailable, so the snapshots using it fail.
func TestCheckSubsetFindsDamagedBase(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	base, a := rows(2000, -1), rows(2000, 10)
	fb := f.full(base)
	good := f.delta(a, base, fb.id)
	f.writeRaw([]rawBlob{fb})
	f.writeRaw([]rawBlob{good})
	basePack := f.packOf(index.BlobRef{Type: repo.DataBlob, ID: fb.id}).Pack
	deltaPack := f.packOf(index.BlobRef{Type: repo.DataBlob, ID: good.id}).Pack
	// Damage the base's bytes (its pack's first blob), not its trailer.
	p := f.dir + "/repo/data/" + basePack.String()[:2] + "/" + basePack.String()
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	data[40] ^= 1
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := index.NewChecker(ctx, f.r)
	if err != nil {
		t.Fatal(err)
	}
	var subset []index.PackSize
	for _, ps := range c.PackSizes() {
		if ps.ID == deltaPack {
			subset = append(subset, ps)
		}
	}
	if err := c.ReadData(ctx, subset, 1, nil); err != nil {
		t.Fatal(err)
	}
	for _, p := range c.Problems() {
		if p.Kind == "damaged_pack" {
			t.Errorf("the delta's pack is blamed: %s", p.Message)
		}
	}
	if err := c.Available(repo.DataBlob, good.id); err == nil {
		t.Error("a delta whose only base is damaged is reported available")
	}
}

// TestReadableDeltaBesideUnreadable: a blob stored as a delta whose base
// is lost and again as a delta on bases that are there (no whole copy)
// reads through the readable one, and prune keeps that one without asking
// for the lost base; the first was read and failed, and prune refused
// (found in review).
func TestReadableDeltaBesideUnreadable(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	base, a := rows(2000, -1), rows(2000, 10)
	lost := f.delta(a, base, repo.ID{9, 9, 9})
	f.writeRaw([]rawBlob{lost}) // first: the copy a lookup meets first
	fb := f.full(base)
	good := f.delta(a, base, fb.id)
	f.writeRaw([]rawBlob{fb, good})
	if got, err := f.ix.LoadBlob(ctx, repo.DataBlob, good.id, nil); err != nil || !bytes.Equal(got, a) {
		t.Fatalf("LoadBlob beside an unreadable copy: %v", err)
	}
	f.prune(index.PruneOptions{Instant: true, MaxUnusedPercent: 100}, []index.BlobRef{{Type: repo.DataBlob, ID: good.id}})
	if got, err := f.ix.LoadBlob(ctx, repo.DataBlob, good.id, nil); err != nil || !bytes.Equal(got, a) {
		t.Fatalf("LoadBlob after prune: %v", err)
	}
}
