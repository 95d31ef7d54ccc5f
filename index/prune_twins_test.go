package index_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/snap-backup/snap/index"
	"github.com/snap-backup/snap/repo"
)

// Found by a review: a repack whose damaged blob has a "stays" twin that is a delta
// whose base has no full copy: salvage's readCopy returns a non-damage
// error and the whole prune fails; check says nothing was lost.
func TestSalvageTwinUnreadableDelta(t *testing.T) {
	f := newFixture(t)
	base, a := rows(2000, -1), rows(2000, 10)
	lost := f.delta(a, base, repo.ID{9, 9, 9}) // base never stored
	w := f.full(bytes.Repeat([]byte("w"), 30000))
	f.writeRaw([]rawBlob{lost, w}) // pack Q: x as an unreadable delta, and w used
	q := f.packOf(index.BlobRef{Type: repo.DataBlob, ID: lost.id}).Pack
	x, y := f.full(a), f.full(bytes.Repeat([]byte("y"), 30000))
	f.writeRaw([]rawBlob{x, y}) // pack P: x whole, y
	var at index.Location
	_ = f.ix.Blobs(func(l index.Location) error {
		if l.Pack != q && l.Entry.ID == x.id {
			at = l
		}
		return nil
	})
	p := at.Pack
	flipByte(t, f.dir+"/repo/data/"+p.String()[:2]+"/"+p.String(), int(at.Entry.Offset+at.Entry.Length/2))
	used := []index.BlobRef{{Type: repo.DataBlob, ID: x.id}, {Type: repo.DataBlob, ID: y.id}, {Type: repo.DataBlob, ID: w.id}}
	for _, pr := range f.readData() {
		t.Logf("check: %s | %s | %s", pr.Kind, pr.Message, pr.Repair)
		if strings.Contains(pr.Repair, "so no snapshot lost data") {
			t.Errorf("check says no snapshot lost data for pack %s", pr.Object)
		}
	}
	if _, err := f.ix.LoadBlob(t.Context(), repo.DataBlob, x.id, nil); err == nil {
		t.Fatal("x reads")
	} else {
		t.Logf("x does not read: %v", err)
	}
	st, err := f.tryPrune(index.PruneOptions{MaxUnusedPercent: 100, DeleteDelay: time.Hour, Repack: []string{p.String()}, Log: func(m string) { t.Log("log: " + m) }}, used)
	var de *index.DamagedError
	t.Logf("prune --repack P: err=%v damagedError=%v", err, errors.As(err, &de))
	if err != nil && !errors.As(err, &de) {
		t.Errorf("prune --repack of the damaged pack fails outright: %v (stats %+v)", err, st)
	}
}

// Found by a review: the intact copy found first is in a marked pack that is not due
// (pending): the log says it "is live again", but keepCopy leaves it
// marked (it does not "go"), and the due marked twin is deleted.
func TestPendingTwinRescued(t *testing.T) {
	for seed := range 20 {
		f := newFixture(t)
		x, y := f.full(noise(30000)), f.full(bytes.Repeat([]byte("y"), 30000))
		pad := f.full(append(noise(40000)[10000:], byte(seed)))
		f.writeRaw([]rawBlob{x, y, pad})
		f.writeRaw([]rawBlob{x, y})
		used := []index.BlobRef{{Type: repo.DataBlob, ID: x.id}, {Type: repo.DataBlob, ID: y.id}}
		o := index.PruneOptions{MaxUnusedPercent: 100, DeleteDelay: time.Hour, Log: func(string) {}}
		st := f.prune(o, used)
		if len(st.MarkedPacks) != 1 {
			t.Fatalf("marked %v", st.MarkedPacks)
		}
		m1 := st.MarkedPacks[0]
		f.clk.Advance(50 * time.Minute)
		pad2 := f.full(append(noise(50000)[10000:], byte(seed)))
		f.writeRaw([]rawBlob{x, y, pad2, f.full(noise(70000)[20000:])})
		st = f.prune(o, used)
		if len(st.MarkedPacks) != 1 {
			t.Fatalf("second prune marked %v", st.MarkedPacks)
		}
		m2 := st.MarkedPacks[0] // marked later: pending at the next prune
		if m2.String() > m1.String() {
			continue // want the pending one first in ID order
		}
		f.clk.Advance(15 * time.Minute) // m1 due, m2 not
		live := f.packOf(used[0])
		flipByte(t, f.dir+"/repo/data/"+live.Pack.String()[:2]+"/"+live.Pack.String(), int(live.Entry.Offset+live.Entry.Length/2))
		var logged []string
		o.Log = func(m string) { logged = append(logged, m) }
		st = f.prune(o, used)
		for _, m := range logged {
			t.Log(m)
		}
		t.Logf("deleted %v rescued %v pending %d; m1 (due) %s, m2 (pending) %s", st.DeletedPacks, st.RescuedPacks, st.PendingPacks, m1.Short(), m2.Short())
		if st := f.packOf(used[0]); true {
			_ = st
		}
		var m2Status index.PackStatus
		_ = f.ix.Packs(func(p index.PackInfo) error {
			if p.ID == m2 {
				m2Status = p.Status
			}
			return nil
		})
		t.Logf("m2 status after the prune: %v (live=%v)", m2Status, m2Status == index.PackLive)
		if m2Status != index.PackLive {
			t.Errorf("the log said pack %s is live again; it stays marked, holding the only intact copy", m2.Short())
		}
		for _, instant := range []bool{false, true} {
			f.clk.Advance(2 * time.Hour)
			logged = nil
			st, err := f.tryPrune(index.PruneOptions{MaxUnusedPercent: 100, DeleteDelay: time.Hour, Instant: instant, Log: func(m string) { logged = append(logged, m) }}, used)
			t.Logf("later prune (instant %v): err %v deleted %v rescued %v; %q", instant, err, st.DeletedPacks, st.RescuedPacks, logged)
			f.readsFresh(used, "after the later prune")
		}
		return
	}
	t.Skip("no seed gave the order")
}
