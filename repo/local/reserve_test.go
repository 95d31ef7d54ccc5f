package local

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/snap-backup/snap/repo"
)

// TestReserve: a repository without a reserve reports -1; a fill writes
// the reserve whole under its size's name; a release truncates it and
// keeps the size; a new size replaces the old file; size 0 turns it off;
// stale temporary files of a crashed fill go, fresh ones stay.
func TestReserve(t *testing.T) {
	b, err := Create(filepath.Join(t.TempDir(), "r"))
	if err != nil {
		t.Fatal(err)
	}
	check := func(what string, wantWant, wantHeld int64) {
		t.Helper()
		w, h, err := b.Reserve()
		if err != nil || w != wantWant || h != wantHeld {
			t.Errorf("%s: Reserve() = %d, %d, %v; want %d, %d", what, w, h, err, wantWant, wantHeld)
		}
	}
	ctx := context.Background()
	check("new repository", -1, 0)
	if err := b.FillReserve(ctx, 1<<20); err != nil {
		t.Fatal(err)
	}
	check("filled", 1<<20, 1<<20)
	data, err := os.ReadFile(filepath.Join(b.dir, "reserve.1048576"))
	if err != nil || len(data) != 1<<20 || data[0] == 0 && data[1] == 0 && data[2] == 0 && data[3] == 0 {
		t.Errorf("the reserve file: %d bytes, %v", len(data), err)
	}
	if freed, err := b.ReleaseReserve(); err != nil || freed != 1<<20 {
		t.Errorf("ReleaseReserve() = %d, %v", freed, err)
	}
	check("released", 1<<20, 0)
	if freed, err := b.ReleaseReserve(); err != nil || freed != 0 {
		t.Errorf("a second release: %d, %v", freed, err)
	}
	if err := b.FillReserve(ctx, 1<<20); err != nil {
		t.Fatal(err)
	}
	check("filled again", 1<<20, 1<<20)
	if err := b.FillReserve(ctx, 4096); err != nil {
		t.Fatal(err)
	}
	check("resized", 4096, 4096)
	if _, err := os.Stat(filepath.Join(b.dir, "reserve.1048576")); !os.IsNotExist(err) {
		t.Errorf("the old reserve file stayed: %v", err)
	}
	stale := filepath.Join(b.dir, tempPrefix+"reserve-old")
	fresh := filepath.Join(b.dir, tempPrefix+"reserve-new")
	for _, p := range []string{stale, fresh} {
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	old := time.Now().Add(-2 * time.Hour)
	if err := os.Chtimes(stale, old, old); err != nil {
		t.Fatal(err)
	}
	if err := b.FillReserve(ctx, 0); err != nil {
		t.Fatal(err)
	}
	check("turned off", 0, 0)
	// A reserve that would leave less free than itself is not written, but
	// its size is kept for the next fill.
	if err := b.FillReserve(ctx, 1<<50); !errors.Is(err, repo.ErrNoRoomForReserve) {
		t.Errorf("a 1 PiB reserve: %v, want ErrNoRoomForReserve", err)
	}
	check("too large", 1<<50, 0)
	if err := b.FillReserve(ctx, 0); err != nil {
		t.Fatal(err)
	}
	check("turned off again", 0, 0)
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("a stale temporary reserve stayed: %v", err)
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Errorf("a fresh temporary reserve (another run's) was removed: %v", err)
	}
	// Names that are not a size are not the reserve.
	if err := os.WriteFile(filepath.Join(b.dir, "reserve.txt"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	check("with reserve.txt", 0, 0)
}

// TestTemps: ListTemps finds temporary files in every directory writes
// use, and RemoveTemp removes them but refuses any other name.
func TestTemps(t *testing.T) {
	b, err := Create(filepath.Join(t.TempDir(), "r"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, p := range []string{"data/ab/.tmp-1", "index/.tmp-2", ".tmp-reserve-3", "locks/.tmp-4"} {
		if err := os.WriteFile(filepath.Join(b.dir, p), []byte("xy"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	keep := filepath.Join(b.dir, "index", "0123")
	if err := os.WriteFile(keep, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	temps, err := b.ListTemps(ctx)
	if err != nil || len(temps) != 4 {
		t.Fatalf("ListTemps: %v, %v", temps, err)
	}
	for _, bad := range []string{"index/0123", "../x/.tmp-1", "/etc/.tmp-x", "data/ab/../../../.tmp-x", "config"} {
		if err := b.RemoveTemp(ctx, bad); err == nil {
			t.Errorf("RemoveTemp(%q) was accepted", bad)
		}
	}
	for _, tf := range temps {
		if tf.Size != 2 {
			t.Errorf("%s: size %d", tf.Name, tf.Size)
		}
		if err := b.RemoveTemp(ctx, tf.Name); err != nil {
			t.Error(err)
		}
	}
	if temps, _ := b.ListTemps(ctx); len(temps) != 0 {
		t.Errorf("left: %v", temps)
	}
	if _, err := os.Stat(keep); err != nil {
		t.Errorf("a file that is not temporary went: %v", err)
	}
	// A directory swapped for another user's symlink after the listing
	// leads nowhere (a link of this user's own is an admin's, followed).
	if os.Geteuid() != 0 {
		return // another user's symlink needs root to plant
	}
	outside := t.TempDir()
	victim := filepath.Join(outside, ".tmp-victim")
	if err := os.WriteFile(victim, []byte("v"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(b.dir, "data", "cd")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(b.dir, "data", "cd")); err != nil {
		t.Fatal(err)
	}
	if err := os.Lchown(filepath.Join(b.dir, "data", "cd"), 65534, 65534); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(victim, filepath.Join(b.dir, "index", ".tmp-link")); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"data/cd/.tmp-victim", "index/.tmp-link"} {
		if err := b.RemoveTemp(ctx, name); err == nil {
			t.Errorf("RemoveTemp(%q) through a symlink succeeded", name)
		}
	}
	if _, err := os.Stat(victim); err != nil {
		t.Errorf("a file outside the repository went: %v", err)
	}
}
