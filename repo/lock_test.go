package repo_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/snap-backup/snap/repo"
	"github.com/snap-backup/snap/repo/local"
)

// clock is a settable time source for repo.Options.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// openTwice initialises a repository in a temporary directory and opens it
// as two processes on two hosts would, sharing one clock.
func openTwice(t *testing.T, c *clock, hostA, hostB string) (a, b *repo.Repository) {
	t.Helper()
	return openTwiceWith(t, c, repo.Options{Host: hostA}, repo.Options{Host: hostB})
}

// openTwiceWith is openTwice with the options of each side; both get c's
// clock.
func openTwiceWith(t *testing.T, c *clock, optA, optB repo.Options) (a, b *repo.Repository) {
	t.Helper()
	optA.Now, optB.Now = c.Now, c.Now
	dir := t.TempDir() + "/repo"
	be, err := local.Create(dir)
	if err != nil {
		t.Fatal(err)
	}
	kdf := repo.KDFParams{Time: 1, MemoryKiB: 8 << 10, Threads: 1}
	a, err = repo.Init(context.Background(), be, "pw", kdf, repo.ChunkerParams{Polynomial: 0x3DA3358B4DC173, MinSize: 512 << 10, MaxSize: 8 << 20, AverageBits: 20},
		optA)
	if err != nil {
		t.Fatal(err)
	}
	be2, err := local.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	b, err = repo.Open(context.Background(), be2, "pw", optB)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

func TestLockConflicts(t *testing.T) {
	ctx := context.Background()
	c := &clock{t: time.Date(2026, 11, 20, 3, 0, 0, 0, time.UTC)}
	a, b := openTwice(t, c, "alpha", "beta")
	shared, exclusive, prune := repo.LockOptions{Command: "create"}, repo.LockOptions{Exclusive: true, Command: "prune"}, repo.LockOptions{Prune: true, Command: "prune"}
	for _, tc := range []struct {
		name          string
		held, wanted  repo.LockOptions
		wantConflicts bool
	}{
		{"shared beside shared", shared, shared, false},
		{"prune beside shared", shared, prune, false},
		{"shared beside prune", prune, shared, false},
		{"prune beside prune", prune, prune, true},
		{"exclusive beside shared", shared, exclusive, true},
		{"shared beside exclusive", exclusive, shared, true},
		{"exclusive beside prune", prune, exclusive, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			held, err := a.Lock(ctx, tc.held)
			if err != nil {
				t.Fatal(err)
			}
			defer held.Unlock()
			l, err := b.Lock(ctx, tc.wanted)
			if !tc.wantConflicts {
				if err != nil {
					t.Fatalf("unexpected conflict: %v", err)
				}
				l.Unlock()
				return
			}
			var le *repo.LockedError
			if !errors.As(err, &le) || !errors.Is(err, repo.ErrLocked) {
				t.Fatalf("got %v, want a *LockedError", err)
			}
			if le.Holder.Host != "alpha" || le.Holder.PID != os.Getpid() || !le.Holder.Created.Equal(c.Now()) {
				t.Errorf("holder %+v", le.Holder)
			}
			for _, w := range []string{"pid " + itoa(os.Getpid()), "host alpha", c.Now().Local().Format(time.DateTime)} {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("message %q lacks %q", err, w)
				}
			}
			// The loser leaves no lock behind.
			locks, _ := b.ListLocks(ctx)
			if len(locks) != 1 {
				t.Errorf("%d locks after a lost race, want 1", len(locks))
			}
		})
	}
}

func itoa(n int) string {
	return strconv.Itoa(n)
}

func TestStaleLockByAgeIsTakenOver(t *testing.T) {
	ctx := context.Background()
	c := &clock{t: time.Date(2026, 11, 20, 3, 0, 0, 0, time.UTC)}
	a, b := openTwice(t, c, "alpha", "beta")
	held, err := a.Lock(ctx, repo.LockOptions{Command: "create"})
	if err != nil {
		t.Fatal(err)
	}
	_ = held // its process "hangs": it is never refreshed nor released

	c.Advance(repo.LockStaleAge - time.Minute)
	if _, err := b.Lock(ctx, repo.LockOptions{Exclusive: true}); !errors.Is(err, repo.ErrLocked) {
		t.Fatalf("a lock 29 minutes old must still block: %v", err)
	}
	c.Advance(2 * time.Minute)
	var taken []repo.LockEntry
	l, err := b.Lock(ctx, repo.LockOptions{Exclusive: true, OnStale: func(e repo.LockEntry) { taken = append(taken, e) }})
	if err != nil {
		t.Fatalf("a lock 31 minutes old must be taken over: %v", err)
	}
	defer l.Unlock()
	if len(taken) != 1 || taken[0].Info.Host != "alpha" || !taken[0].Stale {
		t.Fatalf("OnStale got %+v", taken)
	}
	locks, _ := b.ListLocks(ctx)
	if len(locks) != 1 || locks[0].Info.Host != "beta" {
		t.Fatalf("locks after takeover: %+v", locks)
	}
}

func TestRefreshKeepsLockAlive(t *testing.T) {
	ctx := context.Background()
	c := &clock{t: time.Date(2026, 11, 20, 3, 0, 0, 0, time.UTC)}
	a, b := openTwice(t, c, "alpha", "beta")
	held, err := a.Lock(ctx, repo.LockOptions{Command: "create"})
	if err != nil {
		t.Fatal(err)
	}
	defer held.Unlock()
	start := c.Now()
	for range 10 { // 50 minutes of refreshes every 5 minutes
		c.Advance(repo.LockRefreshInterval)
		old := held.Name()
		held.RefreshNow()
		if held.Name() == old {
			t.Fatal("refresh did not write a new lock file")
		}
	}
	locks, err := b.ListLocks(ctx)
	if err != nil || len(locks) != 1 {
		t.Fatalf("after refreshes: %d locks, %v", len(locks), err)
	}
	if locks[0].Stale || !locks[0].Info.Created.Equal(start) || !locks[0].Info.Time.Equal(c.Now()) {
		t.Fatalf("refreshed lock: %+v", locks[0])
	}
	if _, err := b.Lock(ctx, repo.LockOptions{Exclusive: true}); !errors.Is(err, repo.ErrLocked) {
		t.Fatalf("a refreshed lock must block: %v", err)
	}
	if err := held.Verify(ctx); err != nil {
		t.Fatalf("Verify of a held lock: %v", err)
	}
	if err := b.RemoveLock(ctx, held.Name()); err != nil {
		t.Fatal(err)
	}
	if err := held.Verify(ctx); err == nil || !strings.Contains(err.Error(), "removed by another process") {
		t.Fatalf("Verify of a removed lock: %v", err)
	}
}

// TestRefreshDoesNotRevivePrunedLock: a lock that another process removed
// (taking it for stale) is lost: the next refresh does not write it anew,
// and Verify keeps failing. Written anew, it hid the loss, and a create
// that a prune had taken for dead saved a snapshot of the packs the prune
// had deleted, exit 0 (found by an exploratory test).
func TestRefreshDoesNotRevivePrunedLock(t *testing.T) {
	ctx := context.Background()
	c := &clock{t: time.Date(2026, 11, 20, 3, 0, 0, 0, time.UTC)}
	a, b := openTwice(t, c, "alpha", "beta")
	held, err := a.Lock(ctx, repo.LockOptions{Command: "create"})
	if err != nil {
		t.Fatal(err)
	}
	defer held.Unlock()
	if err := b.RemoveLock(ctx, held.Name()); err != nil {
		t.Fatal(err)
	}
	c.Advance(repo.LockRefreshInterval)
	held.RefreshNow()
	if locks, err := b.ListLocks(ctx); err != nil || len(locks) != 0 {
		t.Fatalf("after a refresh of a removed lock: %d locks, %v", len(locks), err)
	}
	if err := held.Verify(ctx); err == nil || !strings.Contains(err.Error(), "removed by another process") {
		t.Fatalf("Verify after the refresh of a removed lock: %v", err)
	}
}

func TestStaleLockOfDeadProcess(t *testing.T) {
	ctx := context.Background()
	c := &clock{t: time.Date(2026, 11, 20, 3, 0, 0, 0, time.UTC)}
	a, b := openTwice(t, c, "alpha", "alpha")
	pid := deadPID(t)
	// What a killed process on this host left behind.
	plain := []byte(`{"time":"2026-11-20T03:00:00Z","created":"2026-11-20T03:00:00Z","exclusive":true,"host":"alpha","pid":` + itoa(pid) + `}`)
	if _, err := a.SaveObject(ctx, repo.LockFile, plain); err != nil {
		t.Fatal(err)
	}
	locks, _ := b.ListLocks(ctx)
	if len(locks) != 1 || !locks[0].Stale {
		t.Fatalf("lock of a dead pid on this host: %+v", locks)
	}
	stale := 0
	l, err := b.Lock(ctx, repo.LockOptions{OnStale: func(repo.LockEntry) { stale++ }})
	if err != nil || stale != 1 {
		t.Fatalf("shared lock beside a dead exclusive one: %v, %d taken over", err, stale)
	}
	l.Unlock()
}

// TestStaleLockOfZombie: a killed snap that waits to be reaped (its parent
// gone, PID 1 slow or reaping nothing) still answers signal 0, but holds
// nothing: its lock is stale.
func TestStaleLockOfZombie(t *testing.T) {
	ctx := context.Background()
	c := &clock{t: time.Date(2026, 11, 20, 3, 0, 0, 0, time.UTC)}
	a, b := openTwice(t, c, "alpha", "alpha")
	cmd := exec.Command("true")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	pid := cmd.Process.Pid
	for i := 0; ; i++ { // not reaped: it turns into a zombie once it exits
		stat, _ := os.ReadFile("/proc/" + itoa(pid) + "/stat")
		if strings.Contains(string(stat), ") Z ") {
			break
		}
		if i == 500 {
			t.Fatalf("process %d did not exit: %s", pid, stat)
		}
		time.Sleep(10 * time.Millisecond)
	}
	plain := []byte(`{"time":"2026-11-20T03:00:00Z","created":"2026-11-20T03:00:00Z","exclusive":true,"host":"alpha","pid":` + itoa(pid) + `}`)
	if _, err := a.SaveObject(ctx, repo.LockFile, plain); err != nil {
		t.Fatal(err)
	}
	if locks, _ := b.ListLocks(ctx); len(locks) != 1 || !locks[0].Stale {
		t.Fatalf("lock of a zombie: %+v", locks)
	}
}

// TestLockOfAnotherPIDNamespace: on the same host name, a lock taken in
// another PID namespace (a container sharing the host's name) is not
// judged by its PID, which means nothing here: it stays held until it is
// LockStaleAge old. The same dead PID in this namespace is stale.
func TestLockOfAnotherPIDNamespace(t *testing.T) {
	ctx := context.Background()
	c := &clock{t: time.Date(2026, 11, 20, 3, 0, 0, 0, time.UTC)}
	a, b := openTwice(t, c, "alpha", "alpha")
	pid := deadPID(t)
	ours, err := os.Readlink("/proc/self/ns/pid")
	if err != nil {
		t.Skip("no /proc/self/ns/pid here")
	}
	lockIn := func(ns string) {
		t.Helper()
		doc := `{"time":"2026-11-20T03:00:00Z","exclusive":true,"host":"alpha","pid":` + itoa(pid) + `,"pid_namespace":"` + ns + `"}`
		if _, err := a.SaveObject(ctx, repo.LockFile, []byte(doc)); err != nil {
			t.Fatal(err)
		}
	}
	lockIn("pid:[1]")
	if locks, _ := b.ListLocks(ctx); len(locks) != 1 || locks[0].Stale {
		t.Fatalf("lock of a PID in another namespace: %+v, want held", locks)
	}
	if _, err := b.Lock(ctx, repo.LockOptions{}); err == nil {
		t.Fatal("a shared lock was taken beside another namespace's exclusive lock")
	}
	c.t = c.t.Add(repo.LockStaleAge + time.Minute)
	if locks, _ := b.ListLocks(ctx); len(locks) != 1 || !locks[0].Stale {
		t.Fatalf("another namespace's lock, not refreshed for the stale age: %+v, want stale", locks)
	}

	c.t = c.t.Add(-repo.LockStaleAge - time.Minute)
	for _, l := range mustList(t, b) {
		if err := b.Backend().Remove(ctx, repo.Handle{Type: repo.LockFile, Name: l.Name}); err != nil {
			t.Fatal(err)
		}
	}
	lockIn(ours)
	if locks, _ := b.ListLocks(ctx); len(locks) != 1 || !locks[0].Stale {
		t.Fatalf("lock of a dead PID in this namespace: %+v, want stale", locks)
	}
	// The namespace is recorded in the locks snap takes.
	l, err := b.Lock(ctx, repo.LockOptions{OnStale: func(repo.LockEntry) {}})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Unlock()
	found := false
	for _, e := range mustList(t, b) {
		found = found || (e.Info.PID == os.Getpid() && e.Info.PIDNamespace == ours)
	}
	if !found {
		t.Errorf("the lock taken does not record namespace %s: %+v", ours, mustList(t, b))
	}
}

func mustList(t *testing.T, r *repo.Repository) []repo.LockEntry {
	t.Helper()
	locks, err := r.ListLocks(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return locks
}

// refreshingBackend stands in for another process that refreshes its lock
// between our listing of the lock files and our read of its old one.
type refreshingBackend struct {
	repo.Backend
	once    sync.Once
	refresh func(old string)
}

func (b *refreshingBackend) Load(ctx context.Context, h repo.Handle, offset, length int64) ([]byte, error) {
	if h.Type == repo.LockFile {
		b.once.Do(func() { b.refresh(h.Name) })
	}
	return b.Backend.Load(ctx, h, offset, length)
}

// TestListLocksSeesRefreshedLock: a lock refreshed while another process
// lists the locks (its new file written after the listing, its old one
// removed before the read) is still seen. Missing it let a prune take a
// running create's new packs for orphans.
func TestListLocksSeesRefreshedLock(t *testing.T) {
	c := &clock{t: time.Now()}
	a, b := openTwice(t, c, "hostA", "hostB")
	ctx := context.Background()
	la, err := a.Lock(ctx, repo.LockOptions{Command: "create"})
	if err != nil {
		t.Fatal(err)
	}
	defer la.Unlock()
	held, err := a.ListLocks(ctx)
	if err != nil || len(held) != 1 {
		t.Fatalf("%v %v", held, err)
	}
	plain, err := json.Marshal(held[0].Info)
	if err != nil {
		t.Fatal(err)
	}
	be := &refreshingBackend{Backend: b.Backend(), refresh: func(old string) {
		if _, err := a.SaveObject(ctx, repo.LockFile, append(plain, ' ')); err != nil {
			t.Error(err)
		}
		if err := a.RemoveLock(ctx, old); err != nil {
			t.Error(err)
		}
	}}
	rb, err := repo.Open(ctx, be, "pw", repo.Options{Host: "hostB", Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer rb.Close()
	got, err := rb.ListLocks(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Info.Host != "hostA" || got[0].Stale {
		t.Errorf("locks listed across a refresh: %+v, want hostA's one live lock", got)
	}
}

// deadPID returns the PID of a process that has exited.
func deadPID(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	return cmd.Process.Pid
}

// TestLockOfAnotherMachineOrBoot: a lock under this host name is judged by
// its machine and boot IDs where both sides record them. Another machine's
// lock with a PID dead here is held (judged by age); this machine's lock
// last written before its current boot began is stale even when its PID is
// alive now; one written since (a clone that shares the machine ID), or of
// another PID namespace, is not; a lock that records neither is judged by
// its PID, as before.
func TestLockOfAnotherMachineOrBoot(t *testing.T) {
	ctx := context.Background()
	c := &clock{t: time.Date(2026, 11, 20, 3, 0, 0, 0, time.UTC)}
	boot := time.Date(2026, 11, 20, 2, 50, 0, 0, time.UTC)
	a, b := openTwiceWith(t, c, repo.Options{Host: "alpha"}, repo.Options{Host: "alpha", MachineID: "m1", BootID: "boot1", BootTime: boot, PIDNamespace: "pid:[9]"})
	be := b.Backend()
	dead, alive := deadPID(t), os.Getpid()
	const before, since = "2026-11-20T02:45:00Z", "2026-11-20T02:55:00Z"
	for _, tc := range []struct {
		name, at, fields string
		pid              int
		stale            bool
	}{
		{"another machine, dead PID", since, `"machine_id":"m2","boot_id":"boot1"`, dead, false},
		{"another machine, no boot ID", since, `"machine_id":"m2"`, dead, false},
		{"earlier boot, live PID", before, `"machine_id":"m1","boot_id":"boot0"`, alive, true},
		{"another boot written since this one began, live PID", since, `"machine_id":"m1","boot_id":"boot0"`, alive, false},
		{"earlier boot, another namespace", before, `"machine_id":"m1","boot_id":"boot0","pid_namespace":"pid:[8]"`, alive, false},
		{"this boot, live PID", since, `"machine_id":"m1","boot_id":"boot1"`, alive, false},
		{"this boot, dead PID", since, `"machine_id":"m1","boot_id":"boot1"`, dead, true},
		{"no machine ID, dead PID", before, `"boot_id":"boot0"`, dead, true},
		{"no machine ID, live PID", before, `"boot_id":"boot0"`, alive, false},
		{"this machine, no boot ID, live PID", before, `"machine_id":"m1"`, alive, false},
	} {
		fields := tc.fields
		if !strings.Contains(fields, "pid_namespace") {
			fields += `,"pid_namespace":"pid:[9]"`
		}
		doc := `{"time":"` + tc.at + `","exclusive":true,"host":"alpha","pid":` + itoa(tc.pid) + `,` + fields + `}`
		id, err := a.SaveObject(ctx, repo.LockFile, []byte(doc))
		if err != nil {
			t.Fatal(err)
		}
		if locks := mustList(t, b); len(locks) != 1 || locks[0].Stale != tc.stale {
			t.Errorf("%s: %+v, want stale=%v", tc.name, locks, tc.stale)
		}
		if err := be.Remove(ctx, repo.Handle{Type: repo.LockFile, Name: id.String()}); err != nil {
			t.Fatal(err)
		}
	}
	// The locks snap takes record both.
	l, err := b.Lock(ctx, repo.LockOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Unlock()
	if locks := mustList(t, b); len(locks) != 1 || locks[0].Info.MachineID != "m1" || locks[0].Info.BootID != "boot1" {
		t.Errorf("the lock taken: %+v, want machine m1, boot boot1", locks)
	}
}

// TestStaleLockOfReusedPID: a lock whose PID another process has now (the
// holder killed with kill -9, its PID reused) is stale: the process that
// has the PID started at another time than the one the lock records. The
// same lock with this process's own start is live, and one without a
// start (older locks) is judged by the PID alone.
func TestStaleLockOfReusedPID(t *testing.T) {
	ctx := context.Background()
	c := &clock{t: time.Date(2026, 11, 20, 3, 0, 0, 0, time.UTC)}
	a, b := openTwice(t, c, "alpha", "alpha")
	stat, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
	self := f[19]
	pid := itoa(os.Getpid())
	for _, c := range []struct {
		start string
		stale bool
	}{
		{`,"pid_start":1`, true},
		{`,"pid_start":` + self, false},
		{``, false},
	} {
		plain := []byte(`{"time":"2026-11-20T03:00:00Z","created":"2026-11-20T03:00:00Z","exclusive":true,"host":"alpha","pid":` + pid + c.start + `}`)
		id, err := a.SaveObject(ctx, repo.LockFile, plain)
		if err != nil {
			t.Fatal(err)
		}
		if locks, _ := b.ListLocks(ctx); len(locks) != 1 || locks[0].Stale != c.stale {
			t.Errorf("lock of this process's PID with %q: %+v, want stale %v", c.start, locks, c.stale)
		}
		if err := a.Backend().Remove(ctx, repo.Handle{Type: repo.LockFile, Name: id.String()}); err != nil {
			t.Fatal(err)
		}
	}
	// A lock taken now records this process's start, and is live.
	l, err := b.Lock(ctx, repo.LockOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Unlock()
	if locks, _ := a.ListLocks(ctx); len(locks) != 1 || locks[0].Stale || locks[0].Info.PIDStart == 0 {
		t.Errorf("a lock taken now: %+v", locks)
	}
}

// removeHook runs before before the first removal of a lock file through
// it: another process acting at that moment.
type removeHook struct {
	repo.Backend
	once   sync.Once
	before func(name string)
}

func (b *removeHook) Remove(ctx context.Context, h repo.Handle) error {
	if h.Type == repo.LockFile {
		b.once.Do(func() { b.before(h.Name) })
	}
	return b.Backend.Remove(ctx, h)
}

// staleHolderAndTaker is a lock of host alpha's, stale by the clock, and
// host beta's repository, opened through wrap (given beta's backend and
// the held lock) to take it; both are released when the test ends.
func staleHolderAndTaker(t *testing.T, wrap func(repo.Backend, *repo.Lock) repo.Backend) (*repo.Lock, *repo.Repository) {
	t.Helper()
	ctx := context.Background()
	c := &clock{t: time.Date(2026, 11, 20, 3, 0, 0, 0, time.UTC)}
	a, b := openTwice(t, c, "alpha", "beta")
	held, err := a.Lock(ctx, repo.LockOptions{Command: "create"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { held.Unlock() })
	c.Advance(repo.LockStaleAge + time.Minute)
	rb, err := repo.Open(ctx, wrap(b.Backend(), held), "pw", repo.Options{Host: "beta", Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rb.Close() })
	return held, rb
}

// TestTakeoverSeesRefreshMeanwhile: a stale lock refreshed by its holder
// (alive after all) between the listing and its removal is gone when it is
// to be removed; the locks are listed again and the holder's new lock
// blocks. Taken for removed, it let a prune --instant delete the packs of
// a create that then saved its snapshot (found by a review).
func TestTakeoverSeesRefreshMeanwhile(t *testing.T) {
	ctx := context.Background()
	held, rb := staleHolderAndTaker(t, func(be repo.Backend, held *repo.Lock) repo.Backend {
		return &removeHook{Backend: be, before: func(string) { held.RefreshNow() }}
	})
	l, err := rb.Lock(ctx, repo.LockOptions{Exclusive: true, Command: "prune"})
	if !errors.Is(err, repo.ErrLocked) {
		l.Unlock()
		t.Fatalf("exclusive lock beside a holder that refreshed meanwhile: %v", err)
	}
	if err := held.Verify(ctx); err != nil {
		t.Fatalf("the holder's lock: %v", err)
	}
}

// TestVerifyDuringRefreshSeesLoss: a lock file removed by another process
// while its holder refreshes it (after the new file is written, before the
// old one is removed) is lost, and a Verify at that moment says so. The
// new file stood in for the lock as soon as it was written, so Verify
// passed and a create confirmed an index segment a prune that had taken it
// for dead may not have read (found by a review).
func TestVerifyDuringRefreshSeesLoss(t *testing.T) {
	ctx := context.Background()
	c := &clock{t: time.Date(2026, 11, 20, 3, 0, 0, 0, time.UTC)}
	_, b := openTwice(t, c, "alpha", "beta")
	verified := make(chan error, 1)
	var held *repo.Lock
	be := &removeHook{Backend: b.Backend(), before: func(old string) {
		// The prune removes the old file; the holder verifies meanwhile.
		if err := b.RemoveLock(ctx, old); err != nil {
			t.Error(err)
		}
		go func() { verified <- held.Verify(ctx) }()
		time.Sleep(50 * time.Millisecond) // let Verify start while the refresh goes on
	}}
	ra, err := repo.Open(ctx, be, "pw", repo.Options{Host: "alpha", Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer ra.Close()
	held, err = ra.Lock(ctx, repo.LockOptions{Command: "create"})
	if err != nil {
		t.Fatal(err)
	}
	defer held.Unlock()
	c.Advance(repo.LockRefreshInterval)
	held.RefreshNow()
	if err := <-verified; !errors.Is(err, repo.ErrLockLost) {
		t.Fatalf("Verify during the refresh of a removed lock: %v", err)
	}
	if locks, err := b.ListLocks(ctx); err != nil || len(locks) != 0 {
		t.Fatalf("locks after the refresh of a removed lock: %+v, %v", locks, err)
	}
}

// s3LikeRemove removes as the S3 backend does: Stat, then an idempotent
// DELETE. between runs after the Stat of the first lock removal: the
// holder of that lock acting in the window.
type s3LikeRemove struct {
	repo.Backend
	once    sync.Once
	between func(name string)
}

func (b *s3LikeRemove) Remove(ctx context.Context, h repo.Handle) error {
	if _, err := b.Backend.Stat(ctx, h); err != nil {
		return err
	}
	if h.Type == repo.LockFile {
		b.once.Do(func() { b.between(h.Name) })
	}
	if err := b.Backend.Remove(ctx, h); err != nil && !errors.Is(err, repo.ErrNotFound) {
		return err // DeleteObject of a missing key is a 204
	}
	return nil
}

// TestTakeoverS3RemoveRace: the holder of a stale lock refreshes it
// (writes its new file, stats and deletes the old one) between the
// taker's Stat and DELETE of the old file. Both deletes succeed on S3;
// the taker takes the exclusive lock beside a live holder, whose lock
// stays valid (Verify passes).
func TestTakeoverS3RemoveRace(t *testing.T) {
	ctx := context.Background()
	held, rb := staleHolderAndTaker(t, func(be repo.Backend, held *repo.Lock) repo.Backend {
		return &s3LikeRemove{Backend: be, between: func(string) { held.RefreshNow() }}
	})
	l, err := rb.Lock(ctx, repo.LockOptions{Exclusive: true, Command: "prune"})
	verr := held.Verify(ctx)
	if err == nil {
		defer l.Unlock()
		t.Fatalf("exclusive lock taken beside a live holder (holder's Verify: %v)", verr)
	}
}

// slowLockSave holds back lock-file writes while armed.
type slowLockSave struct {
	repo.Backend
	armed atomic.Bool
	delay time.Duration
}

func (b *slowLockSave) Save(ctx context.Context, h repo.Handle, data []byte) error {
	if h.Type == repo.LockFile && b.armed.Load() {
		select {
		case <-time.After(b.delay):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return b.Backend.Save(ctx, h, data)
}

// TestVerifyHonoursContext: a Verify given 200ms waits for a
// refresh held up by a slow server for as long as the refresh takes.
func TestVerifyHonoursContext(t *testing.T) {
	ctx := context.Background()
	c := &clock{t: time.Date(2026, 11, 20, 3, 0, 0, 0, time.UTC)}
	a, _ := openTwice(t, c, "alpha", "beta")
	be := &slowLockSave{Backend: a.Backend(), delay: 3 * time.Second}
	ra, err := repo.Open(ctx, be, "pw", repo.Options{Host: "alpha", Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer ra.Close()
	held, err := ra.Lock(ctx, repo.LockOptions{Command: "create"})
	if err != nil {
		t.Fatal(err)
	}
	defer held.Unlock()
	be.armed.Store(true)
	go held.RefreshNow()
	time.Sleep(100 * time.Millisecond)
	vctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	err = held.Verify(vctx)
	if d := time.Since(start); d > time.Second {
		t.Fatalf("Verify with a 200ms context took %v (err %v)", d, err)
	}
}
