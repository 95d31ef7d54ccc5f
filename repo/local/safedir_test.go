package local

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/snap-backup/snap/repo"
)

// TestWritesDoNotFollowOthersSymlinks: a user who may write the repository
// directory (a shared one) replaces data/xx, locks/ or snapshots/ with a
// symlink of their own to a directory outside; this user's writes and
// removals (root's, here) must not go through it: root's packs landed in a
// directory of the attacker's choosing, given to the repository's owner
// (found by an exploratory test). A symlink of this user's own (an admin
// who moved data/xx to another disk) is followed. The space reserve,
// swapped for a symlink to another file, is not cut through it.
func TestWritesDoNotFollowOthersSymlinks(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("plants symlinks owned by another user: needs root")
	}
	ctx := context.Background()
	be, dir := newBackend(t)
	outside := filepath.Join(t.TempDir(), "outside")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.Mkdir(outside, 0o777))
	plant := func(rel string, uid int) {
		p := filepath.Join(dir, rel)
		must(os.RemoveAll(p))
		must(os.Symlink(outside, p))
		must(os.Lchown(p, uid, uid))
	}
	pack := repo.Handle{Type: repo.PackFile, Name: strings.Repeat("ab", 32)}
	lock := repo.Handle{Type: repo.LockFile, Name: strings.Repeat("cd", 32)}
	snap := repo.Handle{Type: repo.SnapshotFile, Name: strings.Repeat("ef", 32)}
	plant("data/ab", 65534)
	plant("locks", 65534)
	plant("snapshots", 65534)
	for _, h := range []repo.Handle{pack, lock, snap} {
		err := be.Save(ctx, h, []byte("content"))
		if err == nil || !strings.Contains(err.Error(), "is a symlink owned by uid 65534") {
			t.Errorf("save %s through another user's symlink: %v", h, err)
		}
	}
	// A file of the attacker's choosing named as an object: not removed.
	victim := filepath.Join(outside, lock.Name)
	must(os.WriteFile(victim, []byte("keep"), 0o644))
	if err := be.Remove(ctx, lock); err == nil {
		t.Error("remove through another user's symlink succeeded")
	}
	if _, err := be.Preflight(ctx); err == nil || !strings.Contains(err.Error(), "symlink owned by uid 65534") {
		t.Errorf("preflight through another user's symlink: %v", err)
	}
	if entries, _ := os.ReadDir(outside); len(entries) != 1 {
		t.Errorf("the outside directory holds %d entries, want only the victim", len(entries))
	}
	// This user's own link is followed.
	plant("data/ab", 0)
	must(be.Save(ctx, pack, []byte("content")))
	if b, err := os.ReadFile(filepath.Join(outside, pack.Name)); err != nil || string(b) != "content" {
		t.Errorf("save through this user's own symlink: %q, %v", b, err)
	}
	must(be.Remove(ctx, pack))

	// The reserve swapped for a symlink to another file after it was
	// listed: refused, the file untouched.
	target := filepath.Join(outside, "precious")
	must(os.WriteFile(target, []byte("precious"), 0o644))
	link := filepath.Join(dir, "reserve.1099511627776")
	must(os.Symlink(target, link))
	if _, err := cutReserve(be.root, "reserve.1099511627776"); err == nil {
		t.Error("cut a reserve that is a symlink")
	}
	if b, _ := os.ReadFile(target); string(b) != "precious" {
		t.Errorf("the file the reserve's symlink leads to was cut: %q", b)
	}
	_ = unix.Unlink(link)
}

// TestTrustedLinkResolvedByTheSameRule: an admin's data/xx link (root's)
// leads to a directory on another disk that others may write; a link of
// another user's there, on the way to the packs, is refused as in the
// repository itself (found by a re-test: root's packs went through it).
// Temporary files under the admin's link are removed (prune could not).
func TestTrustedLinkResolvedByTheSameRule(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("plants symlinks owned by another user: needs root")
	}
	ctx := context.Background()
	be, dir := newBackend(t)
	disk := filepath.Join(t.TempDir(), "disk2")
	outside := filepath.Join(t.TempDir(), "outside")
	for _, d := range []string{disk, outside, filepath.Join(disk, "real")} {
		if err := os.MkdirAll(d, 0o777); err != nil {
			t.Fatal(err)
		}
	}
	// data/ab -> disk2/ab (root's), disk2/ab -> outside (another user's).
	if err := os.RemoveAll(filepath.Join(dir, "data", "ab")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(disk, "ab"), filepath.Join(dir, "data", "ab")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(disk, "ab")); err != nil {
		t.Fatal(err)
	}
	if err := os.Lchown(filepath.Join(disk, "ab"), 65534, 65534); err != nil {
		t.Fatal(err)
	}
	pack := repo.Handle{Type: repo.PackFile, Name: strings.Repeat("ab", 32)}
	if err := be.Save(ctx, pack, []byte("content")); err == nil || !strings.Contains(err.Error(), "symlink owned by uid 65534") {
		t.Errorf("save through another user's link behind an admin's: %v", err)
	}
	if entries, _ := os.ReadDir(outside); len(entries) != 0 {
		t.Errorf("%d files written outside", len(entries))
	}
	// The admin's chain of their own links (relative, then absolute) works,
	// and prune's temporary-file removal goes through it.
	if err := os.Remove(filepath.Join(disk, "ab")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("real", filepath.Join(disk, "ab")); err != nil {
		t.Fatal(err)
	}
	if err := be.Save(ctx, pack, []byte("content")); err != nil {
		t.Fatalf("save through the admin's own links: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(disk, "real", pack.Name)); err != nil || string(b) != "content" {
		t.Errorf("the pack behind the admin's links: %q, %v", b, err)
	}
	tmp := filepath.Join(disk, "real", tempPrefix+"old")
	if err := os.WriteFile(tmp, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := be.RemoveTemp(ctx, "data/ab/"+tempPrefix+"old"); err != nil {
		t.Errorf("remove a temporary file behind the admin's link: %v", err)
	}
	if _, err := os.Stat(tmp); err == nil {
		t.Error("the temporary file is still there")
	}
}

// TestRepositoryPathSwappedAfterOpen: the repository's path is looked up
// once; its parent's owner swapping it for a symlink afterwards (alice
// owns ~alice, where root writes ~alice/repo) does not move root's writes
// (found by a review).
func TestRepositoryPathSwappedAfterOpen(t *testing.T) {
	ctx := context.Background()
	be, dir := newBackend(t)
	elsewhere := filepath.Join(t.TempDir(), "elsewhere")
	if err := os.MkdirAll(filepath.Join(elsewhere, "snapshots"), 0o777); err != nil {
		t.Fatal(err)
	}
	moved := dir + ".moved"
	if err := os.Rename(dir, moved); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(elsewhere, dir); err != nil {
		t.Fatal(err)
	}
	snap := repo.Handle{Type: repo.SnapshotFile, Name: strings.Repeat("ef", 32)}
	if err := be.Save(ctx, snap, []byte("doc")); err != nil {
		t.Fatal(err)
	}
	if err := be.FillReserve(ctx, 1000); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(moved, "snapshots", snap.Name)); err != nil {
		t.Errorf("the snapshot is not in the repository that was opened: %v", err)
	}
	if entries, _ := os.ReadDir(elsewhere); len(entries) != 1 {
		t.Errorf("the swapped-in directory holds %d entries, want only its own snapshots/", len(entries))
	}
	// Reads too: the decoy's empty snapshots/ would have had prune
	// delete every pack.
	var listed []string
	if err := be.List(ctx, repo.SnapshotFile, func(name string, _ int64) error { listed = append(listed, name); return nil }); err != nil || len(listed) != 1 || listed[0] != snap.Name {
		t.Errorf("snapshots listed after the swap: %v, %v", listed, err)
	}
	if _, err := be.Load(ctx, snap, 0, 0); err != nil {
		t.Errorf("load after the swap: %v", err)
	}
	// Messages name the repository's path, not /proc's.
	_, err := be.Stat(ctx, repo.Handle{Type: repo.SnapshotFile, Name: strings.Repeat("00", 32)})
	if err == nil || strings.Contains(err.Error(), "/proc/self/fd") {
		t.Errorf("stat of a missing snapshot: %v", err)
	}
}

// TestShellQuote: advice to paste quotes a path that needs it: "find /srv/my
// repo -mindepth 1 -delete" emptied two other directories (found by a
// re-test).
func TestShellQuote(t *testing.T) {
	for in, want := range map[string]string{"/srv/repo": "/srv/repo", "/srv/my repo": "'/srv/my repo'", "/a/it's": `'/a/it'\''s'`, "/x;rm": "'/x;rm'"} {
		if got := shellQuote(in); got != want {
			t.Errorf("shellQuote(%q) = %s, want %s", in, got, want)
		}
	}
}
