package repo_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/snap-backup/snap/repo"
	"github.com/snap-backup/snap/repo/local"
)

// TestKeysAndCheckKey: two key files for two passwords; KeysOpenedBy finds
// the one each password opens; once the key a session opened with is
// removed (by another admin), CheckKey says so, which is what keeps two
// crossed 'snap key remove' runs from deleting both keys.
func TestKeysAndCheckKey(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir() + "/repo"
	be, err := local.Create(dir)
	if err != nil {
		t.Fatal(err)
	}
	kdf := repo.KDFParams{Time: 1, MemoryKiB: 8 << 10, Threads: 1}
	a, err := repo.Init(ctx, be, "pw-a", kdf, repo.ChunkerParams{Polynomial: 0x3DA3358B4DC173, MinSize: 512 << 10, MaxSize: 8 << 20, AverageBits: 20}, repo.Options{})
	if err != nil {
		t.Fatal(err)
	}
	nameB, err := a.AddKey(ctx, "pw-b", kdf)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := repo.ListKeys(ctx, be)
	if err != nil || len(keys) != 2 {
		t.Fatalf("ListKeys: %d keys, %v", len(keys), err)
	}
	for pw, want := range map[string][]string{"pw-a": {a.KeyName()}, "pw-b": {nameB}, "other": nil} {
		got, err := a.KeysOpenedBy(ctx, pw)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("KeysOpenedBy(%q) = %v, %v; want %v", pw, got, err, want)
		}
	}
	b, err := repo.Open(ctx, be, "pw-b", repo.Options{})
	if err != nil || b.KeyName() != nameB {
		t.Fatalf("open with pw-b: %v (key %s)", err, b.KeyName())
	}
	// Admin A removes B's key; B's session, opened before, must not go on.
	if err := a.RemoveKey(ctx, nameB); err != nil {
		t.Fatal(err)
	}
	if err := a.CheckKey(ctx); err != nil {
		t.Errorf("CheckKey of the remaining key: %v", err)
	}
	if err := b.CheckKey(ctx); err == nil || !strings.Contains(err.Error(), "was removed") {
		t.Errorf("CheckKey of the removed key: %v", err)
	}
	if got := repo.ShortName("abc"); got != "abc" {
		t.Errorf("ShortName of a short name: %q", got)
	}
}
