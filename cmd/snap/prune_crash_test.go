package main

import (
	"bytes"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// cloneRepo copies tr's repository and cache into a new scratch directory.
func (tr *testRepo) clone(t *testing.T) *testRepo {
	t.Helper()
	dir := t.TempDir()
	c := &testRepo{t: t, dir: dir, repo: filepath.Join(dir, "repo"), cache: filepath.Join(dir, "cache")}
	copyDir(t, tr.repo, c.repo)
	copyDir(t, tr.cache, c.cache)
	c.env = []string{"SNAP_REPOSITORY=" + c.repo, "SNAP_PASSWORD=test-password", "SNAP_CACHE_DIR=" + c.cache}
	return c
}

// start runs snap in the background.
func (tr *testRepo) start(extraEnv []string, args ...string) (*exec.Cmd, *bytes.Buffer) {
	tr.t.Helper()
	cmd := exec.Command(snapBin, args...)
	cmd.Env = append(append(baseEnv(), tr.env...), extraEnv...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		tr.t.Fatal(err)
	}
	return cmd, &out
}

// interruptWhen sends the started snap SIGINT once ready says it is at the
// point to interrupt (30 s at most), and waits for it: one that finished
// first skips the test (a race lost, nothing learnt), any exit but
// exitInterrupted fails it. what names the command in messages.
func interruptWhen(t *testing.T, cmd *exec.Cmd, out *bytes.Buffer, what string, ready func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline) && !ready(); time.Sleep(5 * time.Millisecond) {
	}
	must(t, cmd.Process.Signal(os.Interrupt))
	_ = cmd.Wait()
	if code := cmd.ProcessState.ExitCode(); code == 0 {
		t.Skipf("the %s finished before the signal", what)
	} else if code != exitInterrupted {
		t.Fatalf("interrupted %s: exit %d\n%s", what, code, out)
	}
}

// repoFileNames lists the names in data/ and index/, as one string.
func repoFileNames(t *testing.T, dir string) string {
	var names []string
	for _, sub := range []string{"data", "index"} {
		_ = filepath.WalkDir(filepath.Join(dir, sub), func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.Type().IsRegular() && !strings.HasPrefix(d.Name(), ".tmp-") {
				names = append(names, d.Name())
			}
			return nil
		})
	}
	slices.Sort(names)
	return strings.Join(names, " ")
}

// crashGen is the source tree of one generation in the crash and
// concurrency tests: small, so that many runs stay fast.
func crashGen(t *testing.T, dir string, gen int) {
	t.Helper()
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "shared.bin"), randomBytes(7, 600<<10))
	writeFile(t, filepath.Join(dir, "gen", "data.bin"), randomBytes(uint64(5000+gen), 120<<10))
	writeFile(t, filepath.Join(dir, "version.txt"), []byte(fmt.Sprintf("generation %d\n", gen)))
}

// verifySnapshots restores every snapshot in the repository and compares
// it with the generation it was made from (its tag "gen-N").
func verifySnapshots(t *testing.T, tr *testRepo, src string, label string) {
	t.Helper()
	var list []snapshotJSON
	res := tr.mustRun("list", "--json")
	if err := jsonUnmarshal(res.stdout, &list); err != nil {
		t.Fatal(err)
	}
	expect := filepath.Join(tr.dir, "expect")
	for i, sn := range list {
		var gen int
		if len(sn.Tags) != 1 || !strings.HasPrefix(sn.Tags[0], "gen-") {
			t.Fatalf("snapshot %s has tags %v", sn.ShortID, sn.Tags)
		}
		fmt.Sscanf(sn.Tags[0], "gen-%d", &gen)
		crashGen(t, expect, gen)
		out := filepath.Join(tr.dir, fmt.Sprintf("restore-%s-%d", label, i))
		res := tr.run("restore", sn.ID+":"+src, "--target", out)
		if res.code != 0 {
			t.Fatalf("%s: restore of snapshot %s (gen %d) failed: exit %d: %s", label, sn.ShortID, gen, res.code, res.stderr)
		}
		sameTree(t, expect, out)
		os.RemoveAll(out)
	}
}

// mustCheck runs check and fails unless it is clean.
func mustCheck(t *testing.T, tr *testRepo, label string, args ...string) {
	t.Helper()
	res := tr.run(append([]string{"check"}, args...)...)
	if res.code != 0 || !strings.Contains(res.stdout, "no errors found") {
		t.Fatalf("%s: check %v: exit %d\n%s%s", label, args, res.code, res.stdout, res.stderr)
	}
}

// Kill -9 prune at random moments, in its three kinds of work (instant
// deletion, marking with repacking, deleting what an earlier prune
// marked): afterwards every snapshot restores, check is clean, and the
// next prunes finish the job.
func TestPruneKilledAtRandomPoints(t *testing.T) {
	if testing.Short() {
		t.Skip("slow")
	}
	base := newTestRepo(t)
	src := filepath.Join(base.dir, "src")
	for gen := range 14 {
		crashGen(t, src, gen)
		base.mustRun("create", "--tag", fmt.Sprintf("gen-%d", gen), "--time", fmt.Sprintf("2024-03-%02dT02:00:00Z", gen+1), src)
	}
	base.mustRun("forget", "--keep-last", "3")
	// The second template: an earlier prune marked packs, and one more
	// generation was made and an older one forgotten since.
	marked := base.clone(t)
	// The promise names the delay: a later prune waits its own.
	if res := marked.mustRun("prune", "--delete-delay", "0"); !strings.Contains(res.stdout, "a prune with a delete delay of 0 after") ||
		!strings.Contains(res.stdout, "one with the default of 12h after") {
		t.Errorf("prune --delete-delay 0: %s", res.stdout)
	}
	crashGen(t, src, 14)
	marked.mustRun("create", "--tag", "gen-14", "--time", "2024-03-15T02:00:00Z", src)
	marked.mustRun("forget", "--keep-last", "3")

	kinds := []struct {
		name string
		tmpl *testRepo
		args []string
	}{
		{"instant", base, []string{"prune", "--instant"}},
		{"mark", base, []string{"prune", "--delete-delay", "0"}},
		{"delete", marked, []string{"prune", "--delete-delay", "0"}},
	}
	// How long an uninterrupted run takes.
	full := map[string]time.Duration{}
	for _, k := range kinds {
		c := k.tmpl.clone(t)
		t0 := time.Now()
		c.mustRun(k.args...)
		full[k.name] = time.Since(t0)
	}
	// Most kills wait for prune's first change to the repository (start-up
	// and planning write nothing) and then strike within a few
	// milliseconds, while it writes and deletes; every fourth strikes at a
	// random moment of a whole run.
	const runs = 24
	landed := map[string]int{}
	for i := range runs {
		k := kinds[i%len(kinds)]
		label := fmt.Sprintf("run %d (%s)", i, k.name)
		tr := k.tmpl.clone(t)
		before := repoFileNames(t, tr.repo)
		cmd, out := tr.start(nil, k.args...)
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		var err error
		if i%4 == 3 {
			time.Sleep(time.Duration(rand.Int64N(int64(full[k.name]) + 1)))
		} else {
		poll:
			for repoFileNames(t, tr.repo) == before {
				select {
				case err = <-exited:
					break poll
				default:
				}
			}
			time.Sleep(time.Duration(rand.IntN(8000)) * time.Microsecond)
		}
		_ = cmd.Process.Signal(syscall.SIGKILL)
		if err == nil {
			err = <-exited
		}
		if ee, ok := err.(*exec.ExitError); ok && ee.Sys().(syscall.WaitStatus).Signaled() {
			if repoFileNames(t, tr.repo) == before {
				landed["before any change"]++
			} else {
				landed["after some changes"]++
			}
		} else if err != nil {
			t.Fatalf("%s: prune failed on its own: %v\n%s", label, err, out)
		} else {
			landed["after it finished"]++
		}
		mustCheck(t, tr, label+" after the kill")
		verifySnapshots(t, tr, src, fmt.Sprintf("run%d", i))
		// The next prune finishes the work; the repository ends clean.
		if i%3 == 0 {
			tr.mustRun("prune", "--delete-delay", "0")
			mustCheck(t, tr, label+" after recovery", "--read-data")
		}
	}
	t.Logf("uninterrupted runs take %v; kills landed %v", full, landed)
	if landed["after some changes"] < runs/4 {
		t.Errorf("only %d of %d kills landed while prune was changing the repository", landed["after some changes"], runs)
	}
}

// Backups and prunes run at the same time on one repository, round after
// round; check after each round finds no snapshot referring to a missing
// blob, and every snapshot restores.
func TestConcurrentCreateAndPrune(t *testing.T) {
	if testing.Short() {
		t.Skip("slow")
	}
	tr := newTestRepo(t)
	src := filepath.Join(tr.dir, "src")
	// Separate caches: the backup and prune clients stand for two hosts.
	backupEnv := []string{"SNAP_CACHE_DIR=" + filepath.Join(tr.dir, "cache-backup")}
	pruneEnv := []string{"SNAP_CACHE_DIR=" + filepath.Join(tr.dir, "cache-prune")}
	const rounds = 8
	var mu sync.Mutex
	var marked, deleted, rescued, pending, restored int
	for round := range rounds {
		crashGen(t, src, round)
		tag := fmt.Sprintf("gen-%d", round)
		// A snapshot of this generation, at once forgotten below: the
		// concurrent backups of the same data reuse its blobs while prune
		// marks (or deletes) the packs holding them.
		first := tr.createIDEnv(backupEnv, "--tag", tag, src)
		errs := make(chan string, 32)
		create := func() {
			res := tr.runEnv(backupEnv, nil, "create", "--json", "--tag", tag, src)
			if res.code != 0 {
				errs <- fmt.Sprintf("create: exit %d: %s", res.code, res.stderr)
			}
			if !strings.Contains(res.stdout, `"added_blobs":0,`) {
				mu.Lock()
				restored++ // the backup stored blobs again: their pack was marked
				mu.Unlock()
			}
		}
		prune := func() {
			res := tr.runEnv(pruneEnv, nil, "prune", "--delete-delay", "0", "--json")
			var pr pruneResult
			if res.code != 0 || jsonUnmarshal(string(lastJSONLine(res.stdout)), &pr) != nil {
				errs <- fmt.Sprintf("prune: exit %d: %s %s", res.code, res.stdout, res.stderr)
				return
			}
			mu.Lock()
			marked += len(pr.MarkedPacks)
			deleted += len(pr.DeletedPacks)
			rescued += len(pr.RescuedPacks)
			pending += pr.PendingPacks
			mu.Unlock()
		}
		// Backups run all the while forget and prune do.
		var wg sync.WaitGroup
		stop := make(chan struct{})
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; ; n++ {
				select {
				case <-stop:
					if n >= 2 {
						return
					}
				default:
				}
				create()
			}
		}()
		time.Sleep(time.Duration(rand.IntN(150)) * time.Millisecond)
		if res := tr.runEnv(pruneEnv, nil, "forget", first); res.code != 0 {
			errs <- fmt.Sprintf("forget: exit %d: %s", res.code, res.stderr)
		}
		if round%2 == 1 {
			if res := tr.runEnv(pruneEnv, nil, "forget", "--keep-last", "2"); res.code != 0 {
				errs <- fmt.Sprintf("forget --keep-last: exit %d: %s", res.code, res.stderr)
			}
		}
		for range 2 {
			time.Sleep(time.Duration(rand.IntN(60)) * time.Millisecond)
			prune()
		}
		close(stop)
		wg.Wait()
		// Then one backup that starts while a prune deletes (nothing older
		// runs now, so the marked packs are due).
		wg.Add(1)
		go func() {
			defer wg.Done()
			time.Sleep(time.Duration(rand.IntN(120)) * time.Millisecond)
			create()
		}()
		prune()
		wg.Wait()
		close(errs)
		for e := range errs {
			t.Errorf("round %d: %s", round, e)
		}
		mustCheck(t, tr, fmt.Sprintf("round %d", round))
	}
	t.Logf("during the rounds, prunes marked %d packs, deleted %d, made %d live again, and left %d marked because a backup ran; %d backups stored blobs again because their packs were marked",
		marked, deleted, rescued, pending, restored)
	if marked == 0 || deleted == 0 {
		t.Errorf("the rounds did not exercise marking and deleting (marked %d, deleted %d)", marked, deleted)
	}
	// With nothing running, prune deletes what stayed marked.
	tr.mustRun("prune", "--delete-delay", "0")
	tr.mustRun("prune", "--delete-delay", "0")
	mustCheck(t, tr, "end", "--read-data")
	verifySnapshots(t, tr, src, "end")
}

func (tr *testRepo) createIDEnv(env []string, args ...string) string {
	tr.t.Helper()
	saved := tr.env
	tr.env = append(append([]string(nil), tr.env...), env...)
	defer func() { tr.env = saved }()
	return tr.createID(args...)
}
