package snapshot

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/snap-backup/snap/index"
	"github.com/snap-backup/snap/repo"
)

// dumpLike returns a table dump of n rows (like pg_dump's COPY lines),
// with the rows in moved[] taken out and appended at the end with a new
// balance, as PostgreSQL's updates move rows within its heap.
func dumpLike(n int, moved map[int]bool) []byte {
	var b bytes.Buffer
	rng := rand.New(rand.NewPCG(7, 7))
	rows := make([]string, n)
	for i := range rows {
		rows[i] = fmt.Sprintf("%d\t%d\t%d\t%s\n", i, rng.IntN(1000), rng.IntN(1e6), "xyz"[i%3:])
	}
	for i, r := range rows {
		if !moved[i] {
			b.WriteString(r)
		}
	}
	for i := range n {
		if moved[i] {
			fmt.Fprintf(&b, "%d\t%d\t%d\tupdated\n", i, i%1000, -i)
		}
	}
	return b.Bytes()
}

func (p *pipelineRepo) createStream(name string, data []byte) *Snapshot {
	p.t.Helper()
	s := Stream{Path: "/db/" + name, Open: func(context.Context) (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil },
		Source: Source{Kind: "stdin"}}
	sn, err := Create(context.Background(), p.ix, NewLoader(p.ix.Repository(), ""), CreateOptions{Streams: []Stream{s}, Host: "test",
		Writer: index.WriterOptions{Compression: repo.CompressionFastest}})
	if err != nil {
		p.t.Fatal(err)
	}
	return sn
}

func (p *pipelineRepo) dumpStream(sn *Snapshot, name string) []byte {
	p.t.Helper()
	target := p.t.TempDir()
	if _, errs := p.restore(sn, "/db/"+name, target, RestoreOptions{}); len(errs) > 0 {
		p.t.Fatalf("restore: %v", errs)
	}
	got, err := os.ReadFile(filepath.Join(target, name))
	if err != nil {
		p.t.Fatal(err)
	}
	return got
}

func (p *pipelineRepo) deltas() (n int, stored int64) {
	_ = p.ix.Blobs(func(l index.Location) error {
		if l.Entry.Delta() {
			n++
			stored += int64(l.Entry.Length)
		}
		return nil
	})
	return n, stored
}

// TestDeltaDump: a dump whose rows moved at scattered places stores its
// changed chunks as deltas against the previous dump's chunks, adding a
// small fraction of what the changed chunks take on their own; it restores
// byte for byte. A third dump changes only the first half of the second, so
// it reuses the second's deltas of the other half. After a forget of the
// first two snapshots and an instant prune, which must keep full copies of
// the bases of every delta the third dump uses (and copies deltas it
// repacks whole), the third dump still restores, and a check that reads
// every pack finds nothing wrong.
func TestDeltaDump(t *testing.T) {
	for _, maxUnused := range []float64{0, 100} {
		t.Run(fmt.Sprintf("max-unused-%v", maxUnused), func(t *testing.T) { testDeltaDump(t, maxUnused) })
	}
}

// testDeltaDump runs TestDeltaDump with a prune that repacks every partly
// used pack (0) or none (100: deltas and their bases stay where they are).
func testDeltaDump(t *testing.T, maxUnused float64) {
	p := newPipelineRepo(t)
	ctx := context.Background()
	r := p.ix.Repository()
	const rows = 100000
	first := dumpLike(rows, nil)
	moved := map[int]bool{}
	for i := 500; i < rows; i += 1500 {
		moved[i] = true
	}
	second := dumpLike(rows, moved)
	for i := 700; i < rows/2; i += 1500 {
		moved[i] = true
	}
	third := dumpLike(rows, moved)

	sn1 := p.createStream("app.sql", first)
	sn2 := p.createStream("app.sql", second)
	n, stored := p.deltas()
	if n == 0 {
		t.Fatal("no chunk of the second dump was stored as a delta")
	}
	if sn2.Summary.AddedBytes > sn1.Summary.AddedBytes/5 {
		t.Errorf("the second dump added %d bytes, the first %d: deltas should make it a small part", sn2.Summary.AddedBytes, sn1.Summary.AddedBytes)
	}
	t.Logf("first dump: %d bytes stored; second: %d (%d deltas, %d bytes)", sn1.Summary.AddedBytes, sn2.Summary.AddedBytes, n, stored)
	if got := p.dumpStream(sn2, "app.sql"); !bytes.Equal(got, second) {
		t.Fatalf("restored second dump differs (%d bytes, want %d)", len(got), len(second))
	}
	sn3 := p.createStream("app.sql", third)
	if got := p.dumpStream(sn3, "app.sql"); !bytes.Equal(got, third) {
		t.Fatalf("restored third dump differs (%d bytes, want %d)", len(got), len(third))
	}

	// Forget the first two snapshots and prune at once.
	for _, sn := range []*Snapshot{sn1, sn2} {
		if err := r.Backend().Remove(ctx, repo.Handle{Type: repo.SnapshotFile, Name: sn.ID.String()}); err != nil {
			t.Fatal(err)
		}
	}
	st, err := index.Prune(ctx, p.ix, index.PruneOptions{Instant: true, MaxUnusedPercent: maxUnused,
		Used: func(ctx context.Context) (index.BlobSet, error) {
			if _, err := p.ix.Sync(ctx, nil); err != nil {
				return nil, err
			}
			return UsedBlobs(ctx, p.ix, []*Snapshot{sn3})
		}})
	if err != nil {
		t.Fatal(err)
	}
	if maxUnused == 0 && st.CopiedBlobs == 0 {
		t.Errorf("the prune repacked nothing: %+v", st)
	}
	t.Logf("prune: %d packs deleted, %d blobs copied", len(st.DeletedPacks), st.CopiedBlobs)
	if _, err := p.ix.Sync(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if got := p.dumpStream(sn3, "app.sql"); !bytes.Equal(got, third) {
		t.Fatalf("after the prune the third dump restores as %d bytes, want %d", len(got), len(third))
	}
	c, err := index.NewChecker(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.CheckPacks(ctx, 2); err != nil {
		t.Fatal(err)
	}
	if err := c.ReadData(ctx, c.PackSizes(), 2, nil); err != nil {
		t.Fatal(err)
	}
	if probs, ex, err := NewSnapshotChecker(c).Check(ctx, sn3); err != nil || probs > 0 {
		t.Fatalf("check: %d problems (%s), %v", probs, ex, err)
	}
	if ps := c.Problems(); len(ps) > 0 {
		t.Fatalf("check: %+v", ps)
	}

	// The same dump again reuses what is stored (deltas count as stored
	// while their bases are) and restores.
	sn4 := p.createStream("app.sql", third)
	if sn4.Summary.AddedBlobs > 2 { // the trees of / and /db: the stream's time changed
		t.Errorf("an unchanged dump added %d blobs", sn4.Summary.AddedBlobs)
	}
	if got := p.dumpStream(sn4, "app.sql"); !bytes.Equal(got, third) {
		t.Fatal("fourth dump differs")
	}
}

// TestSmallDeltaNeedsCachedBaseWhenRemote: with BasesByRequest (a remote
// repository, where reading a base is a request), a small changed file is
// stored whole unless its old version is in the cache of bases; without
// it, as a delta. Each such base was a ranged GET made by a save worker
// while the CPU waited (found by an exploratory test).
func TestSmallDeltaNeedsCachedBaseWhenRemote(t *testing.T) {
	p := newPipelineRepo(t)
	src := filepath.Join(p.dir, "src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	text := dumpLike(600, nil) // some 20 KB, under smallDelta
	if len(text) >= smallDelta {
		t.Fatalf("%d bytes: not small", len(text))
	}
	write := func(b []byte) {
		if err := os.WriteFile(filepath.Join(src, "f.txt"), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	create := func(remote bool) *Snapshot {
		sn, err := Create(context.Background(), p.ix, NewLoader(p.ix.Repository(), ""), CreateOptions{Paths: []string{src}, Host: "test",
			Archive: ArchiveOptions{BasesByRequest: remote}, Writer: index.WriterOptions{Compression: repo.CompressionFastest}})
		if err != nil {
			t.Fatal(err)
		}
		return sn
	}
	write(text)
	create(false)
	write(append([]byte("a changed first line\n"), text...))
	create(true)
	if n, _ := p.deltas(); n != 0 {
		t.Errorf("%d deltas stored against a base not cached, for a remote repository", n)
	}
	write(append([]byte("another changed first line\n"), text...))
	sn := create(false)
	if n, _ := p.deltas(); n != 1 {
		t.Errorf("%d deltas stored for a local repository, want 1", n)
	}
	target := t.TempDir()
	if _, errs := p.restore(sn, "/", target, RestoreOptions{}); len(errs) > 0 {
		t.Fatal(errs)
	}
	got, err := os.ReadFile(filepath.Join(target, src, "f.txt"))
	if err != nil || !bytes.HasPrefix(got, []byte("another changed")) {
		t.Errorf("restored: %v", err)
	}
}

// TestUnchangedDumpKeepsItsNode: a dump with the same bytes as the
// previous one keeps that one's times, so the tree that lists its chunks is
// the one stored then: it was stored anew on every run, for a new time
// alone (685 KiB a run for a dump of 1 GiB). A changed dump gets its own.
func TestUnchangedDumpKeepsItsNode(t *testing.T) {
	p := newPipelineRepo(t)
	ctx := context.Background()
	data := dumpLike(200000, nil)
	node := func(sn *Snapshot) (*Node, repo.ID) {
		t.Helper()
		root, err := LoadTree(ctx, p.ix, sn.Tree)
		if err != nil {
			t.Fatal(err)
		}
		db, ok := root.Find("db")
		if !ok {
			t.Fatal("no /db")
		}
		dir, err := LoadTree(ctx, p.ix, db.Subtree)
		if err != nil {
			t.Fatal(err)
		}
		n, ok := dir.Find("app.sql")
		if !ok {
			t.Fatal("no /db/app.sql")
		}
		return n, db.Subtree
	}
	sn1 := p.createStream("app.sql", data)
	sn2 := p.createStream("app.sql", data)
	n1, dir1 := node(sn1)
	n2, dir2 := node(sn2)
	if n1.MTime != n2.MTime || n1.CTime != n2.CTime || dir1 != dir2 {
		t.Errorf("the same dump twice: mtime %d then %d, tree %s then %s", n1.MTime, n2.MTime, dir1.Short(), dir2.Short())
	}
	if len(n1.Content) < 20 || sn2.Summary.AddedBytes > sn1.Summary.AddedBytes/100 {
		t.Errorf("the same dump of %d chunks added %d bytes, the first %d", len(n1.Content), sn2.Summary.AddedBytes, sn1.Summary.AddedBytes)
	}
	data[len(data)/2] ^= 1
	sn3 := p.createStream("app.sql", data)
	if n3, _ := node(sn3); n3.MTime == n1.MTime {
		t.Errorf("a changed dump kept the previous one's time")
	}
	if got := p.dumpStream(sn2, "app.sql"); len(got) != len(data) {
		t.Errorf("the unchanged dump restores %d bytes, want %d", len(got), len(data))
	}
}
