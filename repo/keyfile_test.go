package repo_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/snap-backup/snap/repo"
	"github.com/snap-backup/snap/repo/local"
)

// initLocal makes a repository in a new directory, with the key of
// password derived as kdf says.
func initLocal(t *testing.T, password string, kdf repo.KDFParams) (repo.Backend, *repo.Repository) {
	t.Helper()
	be, err := local.Create(filepath.Join(t.TempDir(), "repo"))
	if err != nil {
		t.Fatal(err)
	}
	r, err := repo.Init(context.Background(), be, password, kdf, repo.ChunkerParams{Polynomial: 0x3DA3358B4DC173, MinSize: 512 << 10, MaxSize: 8 << 20, AverageBits: 20}, repo.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return be, r
}

// cheapKDF makes test keys quick to derive.
var cheapKDF = repo.KDFParams{Time: 1, MemoryKiB: 8 << 10, Threads: 1}

// TestKeysAndCheckKey: two key files for two passwords; KeysOpenedBy finds
// the one each password opens; once the key a session opened with is
// removed (by another admin), CheckKey says so, which is what keeps two
// crossed 'snap key remove' runs from deleting both keys.
func TestKeysAndCheckKey(t *testing.T) {
	ctx := context.Background()
	be, a := initLocal(t, "pw-a", cheapKDF)
	nameB, err := a.AddKey(ctx, "pw-b", cheapKDF)
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

// TestOpenPassesOverForeignKey: a key file that the password opens but
// whose master key opens no config here (left by an init that lost the
// race to another one, two inits at once on S3) is passed over, whichever
// comes first in the listing; and an init that loses the race removes its
// key file.
func TestOpenPassesOverForeignKey(t *testing.T) {
	ctx := context.Background()
	kdf := repo.KDFParams{Time: 1, MemoryKiB: 8 << 10, Threads: 1}
	ch := repo.ChunkerParams{Polynomial: 0x3DA3358B4DC173, MinSize: 512 << 10, MaxSize: 8 << 20, AverageBits: 20}
	newRepo := func() (string, repo.Backend, *repo.Repository) {
		dir := t.TempDir() + "/repo"
		be, err := local.Create(dir)
		if err != nil {
			t.Fatal(err)
		}
		r, err := repo.Init(ctx, be, "pw", kdf, ch, repo.Options{})
		if err != nil {
			t.Fatal(err)
		}
		return dir, be, r
	}
	dir, be, r := newRepo()
	for i := range 2 { // a foreign key listed after ours, then one before it
		for {
			otherDir, _, other := newRepo()
			if (other.KeyName() < r.KeyName()) == (i == 1) {
				b, err := os.ReadFile(filepath.Join(otherDir, "keys", other.KeyName()))
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(dir, "keys", other.KeyName()), b, 0o600); err != nil {
					t.Fatal(err)
				}
				break
			}
		}
		got, err := repo.Open(ctx, be, "pw", repo.Options{})
		if err != nil || got.KeyName() != r.KeyName() || got.Config().ID != r.Config().ID {
			t.Fatalf("open beside a foreign key (%d): %v", i, err)
		}
	}

	// The loser of two inits: its config does not make it, its key goes.
	loserDir, loserBe, _ := newRepo()
	if err := os.Remove(filepath.Join(loserDir, "config")); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(filepath.Join(loserDir, "keys"))
	for _, e := range entries {
		_ = os.Remove(filepath.Join(loserDir, "keys", e.Name()))
	}
	winnerCfg, err := os.ReadFile(filepath.Join(dir, "config"))
	if err != nil {
		t.Fatal(err)
	}
	raced := &configRacer{Backend: loserBe, config: winnerCfg}
	if _, err := repo.Init(ctx, raced, "pw", kdf, ch, repo.Options{}); !errors.Is(err, repo.ErrExists) {
		t.Fatalf("init that lost the race: %v, want ErrExists", err)
	}
	if entries, _ := os.ReadDir(filepath.Join(loserDir, "keys")); len(entries) != 0 {
		t.Errorf("the losing init left %d key files", len(entries))
	}
}

// configRacer stands in for another init that writes its config between
// this init's write and its read-back.
type configRacer struct {
	repo.Backend
	config []byte
}

func (b *configRacer) Load(ctx context.Context, h repo.Handle, off, n int64) ([]byte, error) {
	if h.Type == repo.ConfigFile {
		return b.config, nil
	}
	return b.Backend.Load(ctx, h, off, n)
}

// TestOpenWithoutConfigIsDamage: a repository whose keys and data are
// there (a key opens with the password) but whose config is gone is
// damaged, not absent: exit 1 and the advice to put the config back,
// never "run snap init". A local directory says so before opening; a
// bucket has only this check (found by an exploratory test on S3). Keys
// alone are an init that was stopped (found in review).
func TestOpenWithoutConfigIsDamage(t *testing.T) {
	ctx := context.Background()
	be, _ := initLocal(t, "pw", cheapKDF)
	if err := be.Remove(ctx, repo.Handle{Type: repo.ConfigFile}); err != nil {
		t.Fatal(err)
	}
	// Keys alone: an init that was stopped after its key (exit 10, init
	// again); with data beside them, damage.
	_, err := repo.Open(ctx, be, "pw", repo.Options{})
	if !errors.Is(err, repo.ErrNoRepository) || !strings.Contains(err.Error(), "a 'snap init' that was stopped") {
		t.Errorf("open of keys alone: %v", err)
	}
	if err := be.Save(ctx, repo.Handle{Type: repo.SnapshotFile, Name: strings.Repeat("ab", 32)}, []byte("x")); err != nil {
		t.Fatal(err)
	}
	_, err = repo.Open(ctx, be, "pw", repo.Options{})
	if err == nil || errors.Is(err, repo.ErrNoRepository) || !strings.Contains(err.Error(), "no config file: the repository is damaged") {
		t.Errorf("open without config: %v", err)
	}
}

// TestKeyNeedingTooMuchMemory: a key file whose password derivation needs
// more memory than the process may take is skipped with an error naming
// it, and the cheaper keys still open: a colleague's costly key (4 GiB)
// ended every command under a 2 GB limit with the Go runtime's "out of
// memory" and a stack trace (found by an exploratory test). The password
// that opens none of the others is then not called wrong (exit 12 sent
// the admin to the password files), nor the key damaged.
func TestKeyNeedingTooMuchMemory(t *testing.T) {
	ctx := context.Background()
	costly := repo.KDFParams{Time: 1, MemoryKiB: 64 << 10, Threads: 1}
	be, a := initLocal(t, "pw-a", cheapKDF)
	nameB, err := a.AddKey(ctx, "pw-b", costly)
	if err != nil {
		t.Fatal(err)
	}
	limited := repo.Options{KDFMemoryKiB: 32 << 10}
	if r, err := repo.Open(ctx, be, "pw-a", limited); err != nil || r.KeyName() != a.KeyName() {
		t.Errorf("the cheap key under a 32 MiB limit: %v", err)
	}
	_, err = repo.Open(ctx, be, "pw-b", limited)
	// Not a wrong password: the key skipped may be this password's.
	if err == nil || errors.Is(err, repo.ErrWrongPassword) || !strings.Contains(err.Error(), nameB) || !strings.Contains(err.Error(), "needs 64 MiB") ||
		!strings.Contains(err.Error(), "no key file the password could be tried on opens with it") || strings.Contains(err.Error(), "restore keys/") {
		t.Errorf("the costly key under a 32 MiB limit: %v", err)
	}
	if got, err := a.KeysOpenedBy(ctx, "pw-b"); err != nil || !slices.Equal(got, []string{nameB}) {
		t.Errorf("KeysOpenedBy without a limit: %v, %v", got, err)
	}
}

// TestOpenStopsDuringCostlyKey: Ctrl-C or SIGTERM (the context) ends an
// Open that is deriving a costly key's password at once; it waited for the
// derivation, minutes for a key planted with the largest parameters
// (found by an exploratory test).
func TestOpenStopsDuringCostlyKey(t *testing.T) {
	ctx := context.Background()
	costly := repo.KDFParams{Time: 24, MemoryKiB: 32 << 10, Threads: 1} // a few seconds
	be, _ := initLocal(t, "pw", costly)
	stop, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := repo.Open(stop, be, "wrong", repo.Options{})
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > time.Second {
		t.Errorf("Open stopped during a key derivation: %v after %v", err, time.Since(start))
	}
	// Deriving a new key stops as soon (key add, key passwd; found by a
	// re-test), and saves no key.
	r, err := repo.Open(ctx, be, "pw", repo.Options{})
	if err != nil {
		t.Fatal(err)
	}
	stop, cancel = context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	start = time.Now()
	if _, err := r.AddKey(stop, "other", costly); !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > time.Second {
		t.Errorf("AddKey stopped during the key derivation: %v after %v", err, time.Since(start))
	}
	if keys, err := repo.ListKeys(ctx, be); err != nil || len(keys) != 1 {
		t.Errorf("keys after a stopped AddKey: %d, %v", len(keys), err)
	}
}

// TestOpenNewerFormat: a repository of a newer format version is refused
// as a binary to upgrade, not as damage ("config is corrupt" invited a
// repair; found by an exploratory test).
func TestOpenNewerFormat(t *testing.T) {
	ctx := context.Background()
	be, r := initLocal(t, "pw", cheapKDF)
	c := r.Config()
	c.Version = repo.FormatVersion + 1
	if err := r.ReplaceConfig(ctx, c); err != nil {
		t.Fatal(err)
	}
	_, err := repo.Open(ctx, be, "pw", repo.Options{})
	if err == nil || errors.Is(err, repo.ErrCorrupt) || !strings.Contains(err.Error(), "written by a newer snap") || !strings.Contains(err.Error(), "upgrade snap") {
		t.Errorf("open of a newer format: %v", err)
	}
}

// TestOpenTriesFirstKeyFirst: the key file named by Options.FirstKey (the
// one that opened the repository last time) is tried before cheaper ones,
// so that key files planted in keys/ cost nothing once a host has opened
// the repository (found by an exploratory test: 380 planted keys made
// every command take 55 s).
func TestOpenTriesFirstKeyFirst(t *testing.T) {
	ctx := context.Background()
	be, r := initLocal(t, "pw", cheapKDF)
	for i := range 3 {
		if _, err := r.AddKey(ctx, fmt.Sprintf("planted-%d", i), repo.KDFParams{Time: 1, MemoryKiB: 1 << 10, Threads: 1}); err != nil {
			t.Fatal(err)
		}
	}
	open := func(first string) (string, int) {
		tries := 0
		o, err := repo.Open(ctx, be, "pw", repo.Options{FirstKey: first, KeyTried: func(string) { tries++ }})
		if err != nil {
			t.Fatal(err)
		}
		return o.KeyName(), tries
	}
	name, tries := open("")
	if name != r.KeyName() || tries != 4 {
		t.Errorf("without a first key: opened %s after %d tries, want %s after 4 (the cheaper ones first)", name, tries, r.KeyName())
	}
	if _, tries := open(name); tries != 1 {
		t.Errorf("with the first key named: %d tries, want 1", tries)
	}
	if _, tries := open("no-such-key"); tries != 4 {
		t.Errorf("with a first key that is not there: %d tries, want 4", tries)
	}
}
