package main

// End-to-end tests on S3: a real server (versitygw, or MinIO with
// SNAP_TEST_S3=minio) started on 127.0.0.1 by the test, see repo/s3/s3test.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	mrandv2 "math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/snap-backup/snap/repo"
	"github.com/snap-backup/snap/repo/counting"
	"github.com/snap-backup/snap/repo/faulty"
	"github.com/snap-backup/snap/repo/retry"
	"github.com/snap-backup/snap/repo/s3/s3test"
)

func s3Suffix() string {
	var b [5]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// newS3Repo initialises a repository in a new bucket of srv (created by
// init) and returns it like newTestRepo does.
func newS3Repo(t *testing.T, srv *s3test.Server) *testRepo {
	t.Helper()
	tr := newUninitS3Repo(t, srv)
	tr.mustRun("init", "--kdf-memory", "8", "--kdf-time", "1")
	return tr
}

func newUninitS3Repo(t *testing.T, srv *s3test.Server) *testRepo {
	t.Helper()
	tr := newUninitRepo(t)
	tr.repo = srv.Location("snap-"+s3Suffix(), "repo")
	tr.env = append([]string{"SNAP_REPOSITORY=" + tr.repo, "SNAP_PASSWORD=test-password", "SNAP_CACHE_DIR=" + tr.cache,
		"AWS_REGION=", "AWS_DEFAULT_REGION=", "AWS_PROFILE=", "AWS_SESSION_TOKEN="}, srv.Env()...)
	return tr
}

// runIn runs snap inside the test process, with hooks around the backend
// (request counting, fault injection). The repository, cache and password
// come from tr; credentials from the process environment (srv.SetEnv).
func (tr *testRepo) runIn(hooks *backendHooks, args ...string) result {
	tr.t.Helper()
	vars := map[string]string{}
	for _, kv := range tr.env {
		k, v, _ := strings.Cut(kv, "=")
		vars[k] = v
	}
	var stdout, stderr bytes.Buffer
	e := &env{stdin: bytes.NewReader(nil), stdout: &stdout, stderr: &stderr, getenv: func(k string) string { return vars[k] },
		now: time.Now, backendHooks: hooks}
	full := append([]string{"snap", "--repo", tr.repo, "--cache-dir", tr.cache}, args...)
	code := run(full, e)
	res := result{stdout: stdout.String(), stderr: stderr.String(), code: code, unindexedPacks: e.packs.unindexed()}
	if strings.Contains(res.stderr, "goroutine ") || strings.Contains(res.stderr, "panic:") {
		tr.t.Fatalf("snap %v printed a stack trace:\n%s", args, res.stderr)
	}
	return res
}

// clearSnapEnv keeps a developer's SNAP_* settings out of in-process runs
// (the command line library reads them from the process environment).
func clearSnapEnv(t *testing.T) {
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "SNAP_") && !strings.HasPrefix(k, "SNAP_TEST_") {
			t.Setenv(k, "")
		}
	}
}

// writeTree fills dir with ndirs directories of nfiles random files of
// about size bytes each.
func writeTree(t *testing.T, dir string, ndirs, nfiles, size int, seed uint64) {
	t.Helper()
	rnd := mrand(seed)
	for d := range ndirs {
		for f := range nfiles {
			b := make([]byte, size/2+rnd.IntN(size))
			for i := range b {
				b[i] = byte(rnd.Uint32())
			}
			writeFile(t, filepath.Join(dir, fmt.Sprintf("d%03d", d), fmt.Sprintf("f%03d.bin", f)), b)
		}
	}
}

var savedRE = regexp.MustCompile(`snapshot ([0-9a-f]{8}) saved`)

func mrand(seed uint64) *mrandv2.Rand { return mrandv2.New(mrandv2.NewPCG(seed, seed+1)) }

// sameFiles fails unless every regular file under want has the same
// content under got (at the same relative path), and got has no others.
func sameFiles(t *testing.T, want, got string) {
	t.Helper()
	files := func(root string) map[string][]byte {
		m := map[string][]byte{}
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.Type().IsRegular() {
				b, err := os.ReadFile(p)
				if err != nil {
					return err
				}
				rel, _ := filepath.Rel(root, p)
				m[rel] = b
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	w, g := files(want), files(got)
	if len(w) != len(g) {
		t.Fatalf("%s has %d files, %s has %d", want, len(w), got, len(g))
	}
	for k, v := range w {
		if !bytes.Equal(g[k], v) {
			t.Fatalf("%s differs between %s and %s", k, want, got)
		}
	}
}

// TestS3Commands: every command works on S3 as on a directory, and the
// errors an admin meets are one clear line with the documented exit code.
func TestS3Commands(t *testing.T) {
	srv := s3test.Start(t)
	tr := newS3Repo(t, srv) // the bucket does not exist before init
	if res := tr.run("init", "--kdf-memory", "8", "--kdf-time", "1"); res.code == 0 || !strings.Contains(res.stderr, "not empty") {
		t.Errorf("second init at the same location: exit %d, %s", res.code, res.stderr)
	}
	src := filepath.Join(tr.dir, "src")
	writeTree(t, src, 3, 4, 20_000, 1)
	writeFile(t, filepath.Join(src, "big.bin"), bytes.Repeat([]byte("snap on s3 "), 300_000))
	if err := os.Symlink("big.bin", filepath.Join(src, "link")); err != nil {
		t.Fatal(err)
	}
	tr.mustRun("create", "--tag", "s3", src)
	res := tr.mustRun("create", "--json", "--connections", "1", src)
	var sum map[string]any
	if err := json.Unmarshal([]byte(res.stdout), &sum); err != nil || sum["read_bytes"].(float64) != 0 {
		t.Errorf("incremental create read %v bytes (%v); want 0", sum["read_bytes"], err)
	}
	res = tr.mustRun("list", "--json")
	var list []map[string]any
	if err := json.Unmarshal([]byte(res.stdout), &list); err != nil || len(list) != 2 {
		t.Fatalf("list: %v, %s", err, res.stdout)
	}
	if res := tr.mustRun("ls", "latest", src); !strings.Contains(res.stdout, "d002/f003.bin") || !strings.Contains(res.stdout, "link") {
		t.Errorf("ls: %s", res.stdout)
	}
	if res := tr.mustRun("dump", "latest", filepath.Join(src, "d001", "f002.bin")); res.stdout != string(mustRead(t, filepath.Join(src, "d001", "f002.bin"))) {
		t.Error("dump differs from the file")
	}
	out := filepath.Join(tr.dir, "out")
	tr.mustRun("restore", "latest", "--target", out)
	sameFiles(t, src, filepath.Join(out, src))
	tr.mustRun("repair", "index")
	tr.mustRun("--connections", "3", "restore", list[0]["id"].(string)+":"+src+"/d000", "--target", filepath.Join(tr.dir, "out2"))
	sameFiles(t, filepath.Join(src, "d000"), filepath.Join(tr.dir, "out2"))

	// A damaged tree pack in the cache is dropped and read again.
	cached, _ := filepath.Glob(filepath.Join(tr.cache, "*", "packs", "*", "*"))
	if len(cached) == 0 {
		t.Fatal("no tree packs in the cache")
	}
	for _, p := range cached {
		writeFile(t, p, bytes.Repeat([]byte{0xff}, 100))
	}
	if res := tr.mustRun("ls", "latest", src); !strings.Contains(res.stdout, "d002/f003.bin") {
		t.Errorf("ls with a damaged cache: %s", res.stdout)
	}

	// A fresh cache on another "host" reads the same repository.
	other := filepath.Join(tr.dir, "cache2")
	if res := tr.runEnv([]string{"SNAP_CACHE_DIR=" + other}, nil, "ls", "latest", src+"/d000"); res.code != 0 || !strings.Contains(res.stdout, "f000.bin") {
		t.Errorf("ls with an empty cache: exit %d %s %s", res.code, res.stdout, res.stderr)
	}

	// Errors.
	secret := srv.SecretKey
	for _, tc := range []struct {
		name string
		env  []string
		args []string
		code int
		want string
	}{
		{"missing bucket", []string{"SNAP_REPOSITORY=" + srv.Location("no-such-bucket-"+s3Suffix(), "")}, []string{"list"}, exitNoRepo, "does not exist"},
		{"empty prefix", []string{"SNAP_REPOSITORY=" + tr.repo + "-nothing"}, []string{"list"}, exitNoRepo, "snap init"},
		// The bucket's root, which holds the repository under repo/: not
		// "run snap init", which would refuse it.
		{"bucket root", []string{"SNAP_REPOSITORY=" + strings.TrimSuffix(tr.repo, "/repo")}, []string{"list"}, exitNoRepo,
			"the location holds other objects (repo/"},
		{"wrong password", []string{"SNAP_PASSWORD=nope"}, []string{"list"}, exitWrongPass, "password"},
		{"wrong secret", []string{"AWS_SECRET_ACCESS_KEY=not-the-" + secret}, []string{"list"}, exitFatal, "AWS_SECRET_ACCESS_KEY"},
		{"unknown key", []string{"AWS_ACCESS_KEY_ID=nobody"}, []string{"list"}, exitFatal, "AWS_ACCESS_KEY_ID"},
		{"credentials in location", []string{"SNAP_REPOSITORY=s3:http://someone:" + secret + "@" + srv.Endpoint + "/bkt"}, []string{"list"}, exitUsage, "AWS_ACCESS_KEY_ID"},
		{"bad connections", nil, []string{"list", "--connections", "0"}, exitUsage, "--connections"},
	} {
		res := tr.runEnv(tc.env, nil, tc.args...)
		if res.code != tc.code || !strings.Contains(res.stderr, tc.want) {
			t.Errorf("%s: exit %d, stderr %q; want exit %d mentioning %q", tc.name, res.code, res.stderr, tc.code, tc.want)
			continue
		}
		oneLine(t, res)
		if strings.Contains(res.stderr, secret) {
			t.Errorf("%s: the secret key appears in the error: %s", tc.name, res.stderr)
		}
	}
	// A server that is down: retried (quickly here), then one line.
	clearSnapEnv(t)
	srv.SetEnv(t)
	down := *tr
	down.repo = "s3:http://127.0.0.1:1/bkt"
	res = down.runIn(&backendHooks{retry: retry.Options{MaxAttempts: 3, Initial: time.Millisecond}}, "list")
	if res.code != exitFatal || !strings.Contains(res.stderr, "connection refused") || !strings.Contains(res.stderr, "gave up after 3 attempts") || !strings.Contains(res.stderr, "is the server running there, at that port?") {
		t.Errorf("server down: exit %d, %s", res.code, res.stderr)
	}
	oneLine(t, res)
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestS3Copy: local → S3 → another local repository, with different
// passwords; only missing blobs are sent, and a repeated copy is a no-op.
func TestS3Copy(t *testing.T) {
	srv := s3test.Start(t)
	local := newTestRepo(t)
	remote := newS3Repo(t, srv)
	remotePw := filepath.Join(local.dir, "remote-password")
	writeFile(t, remotePw, []byte("test-password\n")) // newS3Repo's password
	local.env = append(local.env, "SNAP_PASSWORD=local-password")
	local.repo = filepath.Join(local.dir, "repo2")
	local.env[0] = "SNAP_REPOSITORY=" + local.repo
	local.mustRun("init", "--kdf-memory", "8", "--kdf-time", "1")
	local.env = append(local.env, srv.Env()...)

	src := filepath.Join(local.dir, "src")
	writeTree(t, src, 4, 5, 50_000, 7)
	local.mustRun("create", "--tag", "first", src)
	writeFile(t, filepath.Join(src, "d000", "new.txt"), []byte("one more file"))
	local.mustRun("create", "--tag", "second", src)

	copyJSON := func(tr *testRepo, extraEnv []string, args ...string) map[string]any {
		t.Helper()
		res := tr.runEnv(extraEnv, nil, append([]string{"copy", "--json"}, args...)...)
		if res.code != 0 {
			t.Fatalf("copy %v: exit %d: %s", args, res.code, res.stderr)
		}
		lines := strings.Split(strings.TrimSpace(res.stdout), "\n")
		var sum map[string]any
		if err := json.Unmarshal([]byte(lines[len(lines)-1]), &sum); err != nil || sum["type"] != "summary" {
			t.Fatalf("copy summary: %v %q", err, res.stdout)
		}
		return sum
	}
	// Only the first snapshot, then everything: the second copy sends
	// only what the second snapshot added.
	first := copyJSON(local, nil, "--to", remote.repo, "--to-password-file", remotePw, "--tag", "first")
	if first["copied"].(float64) != 1 {
		t.Fatalf("first copy: %v", first)
	}
	second := copyJSON(local, nil, "--to", remote.repo, "--to-password-file", remotePw)
	if second["copied"].(float64) != 1 || second["skipped"].(float64) != 1 || second["read_blobs"].(float64) != 1 {
		t.Errorf("second copy should read only the new file's blob: %v", second)
	}
	again := copyJSON(local, nil, "--to", remote.repo, "--to-password-file", remotePw)
	if again["copied"].(float64) != 0 || again["added_blobs"].(float64) != 0 || again["read_blobs"].(float64) != 0 {
		t.Errorf("repeated copy did something: %v", again)
	}
	if res := local.run("copy", "--to", remote.repo); res.code != exitWrongPass {
		t.Errorf("copy with the source's password to a target with another: exit %d %s", res.code, res.stderr)
	}
	out := filepath.Join(remote.dir, "out")
	remote.mustRun("restore", "latest", "--target", out)
	sameFiles(t, src, filepath.Join(out, src))

	// S3 → a third repository, password from SNAP_TO_PASSWORD; then back
	// to the first, which already has everything.
	third := filepath.Join(local.dir, "third")
	local.runEnv([]string{"SNAP_REPOSITORY=" + third, "SNAP_PASSWORD=third-password"}, nil, "init", "--kdf-memory", "8", "--kdf-time", "1")
	back := copyJSON(remote, []string{"SNAP_TO_PASSWORD=third-password"}, "--to", third)
	if back["copied"].(float64) != 2 {
		t.Errorf("copy to the third repository: %v", back)
	}
	home := copyJSON(remote, []string{"SNAP_TO_PASSWORD=local-password"}, "--to", local.repo)
	if home["copied"].(float64) != 0 || home["skipped"].(float64) != 2 {
		t.Errorf("copying snapshots back to their origin should copy nothing: %v", home)
	}
	out3 := filepath.Join(local.dir, "out3")
	local.runEnv([]string{"SNAP_REPOSITORY=" + third, "SNAP_PASSWORD=third-password"}, nil, "restore", "latest", "--target", out3)
	sameFiles(t, src, filepath.Join(out3, src))
	res := local.runEnv([]string{"SNAP_REPOSITORY=" + third, "SNAP_PASSWORD=third-password"}, nil, "list", "--json")
	if !strings.Contains(res.stdout, `"parent"`) {
		t.Errorf("list of the copies: %s", res.stdout)
	}
}

// TestS3RequestCounts: with the local cache (index, snapshot documents,
// tree packs), what list, ls and an incremental create ask of the server
// depends on what changed, not on the size of the repository: the same
// small change costs the same requests in a repository ten times bigger.
func TestS3RequestCounts(t *testing.T) {
	srv := s3test.Start(t)
	tr := newS3Repo(t, srv)
	clearSnapEnv(t)
	srv.SetEnv(t)
	hooks, counts := countingHooks()
	measure := func(tr *testRepo, args ...string) counting.Counts {
		t.Helper()
		if res := tr.runIn(hooks, args...); res.code != 0 {
			t.Fatalf("snap %v: exit %d: %s", args, res.code, res.stderr)
		}
		return counts()
	}
	src := filepath.Join(tr.dir, "src")
	writeTree(t, filepath.Join(src, "base"), 10, 10, 3000, 1)
	measure(tr, "create", src)

	type costs struct{ create, list, ls counting.Counts }
	round := func(i int) costs {
		writeFile(t, filepath.Join(src, "base", "d000", fmt.Sprintf("changed-%d", i)), []byte(fmt.Sprintf("change %d", i)))
		return costs{create: measure(tr, "create", src), list: measure(tr, "list"), ls: measure(tr, "ls", "latest")}
	}
	small := round(1)

	// Grow the repository tenfold: more data in this backup (unchanged
	// from now on), and other hosts backing up into the same repository
	// with caches of their own.
	writeTree(t, filepath.Join(src, "grown"), 100, 10, 3000, 2)
	measure(tr, "create", src)
	for h := range 4 {
		other := *tr
		other.cache = filepath.Join(tr.dir, fmt.Sprintf("cache-host%d", h))
		dir := filepath.Join(tr.dir, fmt.Sprintf("host%d", h))
		writeTree(t, dir, 30, 10, 3000, uint64(10+h))
		measure(&other, "create", "--host", fmt.Sprintf("host%d", h), dir)
	}
	measure(tr, "ls", "latest") // learns about the other hosts' new index segments and snapshots (list reads no index)
	big := round(2)

	for _, c := range []struct {
		name       string
		small, big counting.Counts
	}{{"create", small.create, big.create}, {"list", small.list, big.list}, {"ls", small.ls, big.ls}} {
		t.Logf("%-6s small repository: %2d requests (%s)", c.name, c.small.Total(), c.small)
		t.Logf("%-6s big repository:   %2d requests (%s)", c.name, c.big.Total(), c.big)
		if c.big.Total() > c.small.Total()+1 {
			t.Errorf("%s: %d requests in the big repository, %d in the small one", c.name, c.big.Total(), c.small.Total())
		}
		if c.big[counting.Key{Op: "load", Type: repo.PackFile}] != 0 {
			t.Errorf("%s read packs: %s", c.name, c.big)
		}
	}
	if n := big.create.Op("save"); n > 6 {
		t.Errorf("an incremental create with one new file saved %d files (%s)", n, big.create)
	}

	// A restore of the 1100 files reads whole packs, not one blob each.
	restore := measure(tr, "restore", "latest", "--target", filepath.Join(tr.dir, "restored"))
	t.Logf("restore of %d files: %d requests (%s)", 1102, restore.Total(), restore)
	if n := restore[counting.Key{Op: "load", Type: repo.PackFile}]; n > 5 {
		t.Errorf("restore read %d times from packs", n)
	}
	sameFiles(t, src, filepath.Join(tr.dir, "restored", src))
	if left, _ := filepath.Glob(filepath.Join(tr.cache, "*", "fetch-*")); len(left) > 0 {
		t.Errorf("restore left fetched packs behind: %v", left)
	}

	// check reads each pack's trailer, and each tree pack whole once: not
	// each directory's tree by its range, a request per directory one
	// after another (found by an exploratory test).
	var st statsJSON
	if err := json.Unmarshal([]byte(tr.mustRun("stats", "--json").stdout), &st); err != nil {
		t.Fatal(err)
	}
	check := measure(tr, "check")
	t.Logf("check of %d packs: %d requests (%s)", st.Files["data"].Count, check.Total(), check)
	if n := check[counting.Key{Op: "load", Type: repo.PackFile}]; int64(n) > 2*st.Files["data"].Count {
		t.Errorf("check loaded from packs %d times for %d packs", n, st.Files["data"].Count)
	}
}

// packLoads records the pack requests that reach the server: the packs
// loaded whole (in order), the ranged loads, and the most whole-pack loads
// in flight at once. Each load is held up by delay, so that loads
// overlap; the loads of the packs in fail fail.
type packLoads struct {
	repo.Backend
	delay time.Duration

	mu   sync.Mutex
	fail map[string]bool
	// down fails every load (the server is gone); downOnFail sets it
	// at the first load of a pack in fail.
	down, downOnFail bool
	whole            []string
	ranged           int
	inFlight         int
	peak             int
}

func (b *packLoads) Load(ctx context.Context, h repo.Handle, offset, length int64) ([]byte, error) {
	b.mu.Lock()
	down := b.down
	b.mu.Unlock()
	if down {
		return nil, repo.Transient(fmt.Errorf("load %s: injected: no answer", h))
	}
	if h.Type != repo.PackFile {
		return b.Backend.Load(ctx, h, offset, length)
	}
	b.mu.Lock()
	whole := offset == 0 && length == 0
	if whole {
		b.whole = append(b.whole, h.Name)
		b.inFlight++
		b.peak = max(b.peak, b.inFlight)
	} else {
		b.ranged++
	}
	fail := b.fail[h.Name]
	if fail && b.downOnFail {
		b.down = true
	}
	b.mu.Unlock()
	defer func() {
		if whole {
			b.mu.Lock()
			b.inFlight--
			b.mu.Unlock()
		}
	}()
	select {
	case <-time.After(b.delay):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if fail {
		return nil, repo.Transient(fmt.Errorf("load %s: injected: pack unavailable", h))
	}
	return b.Backend.Load(ctx, h, offset, length)
}

func (b *packLoads) reset() (whole []string, ranged, peak int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	whole, ranged, peak = b.whole, b.ranged, b.peak
	b.whole, b.ranged, b.peak = nil, 0, 0
	return whole, ranged, peak
}

// fetchDirsLeft lists the restore's temporary pack directories left in the
// cache.
func fetchDirsLeft(tr *testRepo) []string {
	left, _ := filepath.Glob(filepath.Join(tr.cache, "*", "fetch-*"))
	return left
}

// TestS3RestorePrefetch: a restore from S3 fetches each pack it needs once,
// whole, no more at once than --connections; a pack that cannot be fetched
// fails the files that need it, one line each, and nothing else; an
// interrupted restore leaves no fetched pack behind.
func TestS3RestorePrefetch(t *testing.T) {
	srv := s3test.Start(t)
	tr := newS3Repo(t, srv)
	clearSnapEnv(t)
	srv.SetEnv(t)
	src := filepath.Join(tr.dir, "src")
	writeTree(t, src, 8, 10, 600_000, 3) // about 48 MB that does not compress: three packs
	tr.mustRun("create", src)
	loads := &packLoads{delay: 50 * time.Millisecond, fail: map[string]bool{}}
	hooks := &backendHooks{
		wrap:  func(be repo.Backend) repo.Backend { loads.Backend = be; return loads },
		retry: retry.Options{MaxAttempts: 3, Initial: time.Millisecond, Max: 2 * time.Millisecond},
	}

	out := filepath.Join(tr.dir, "out")
	if res := tr.runIn(hooks, "--connections", "2", "restore", "latest", "--target", out); res.code != 0 {
		t.Fatalf("restore: exit %d: %s", res.code, res.stderr)
	}
	sameFiles(t, src, filepath.Join(out, src))
	whole, ranged, peak := loads.reset()
	t.Logf("restore: %d packs loaded whole, %d ranged loads, at most %d at once", len(whole), ranged, peak)
	seen := map[string]bool{}
	for _, name := range whole {
		if seen[name] {
			t.Errorf("pack %s loaded twice", name[:8])
		}
		seen[name] = true
	}
	if len(whole) < 3 || ranged != 0 {
		t.Errorf("%d packs loaded whole and %d ranged loads, want at least 3 and none", len(whole), ranged)
	}
	if peak != 2 {
		t.Errorf("%d pack loads at once with --connections 2, want 2", peak)
	}
	if left := fetchDirsLeft(tr); len(left) > 0 {
		t.Errorf("restore left fetched packs behind: %v", left)
	}

	// One pack cannot be fetched: the files with chunks in it are named,
	// each on one line, and every other file is restored.
	bad := whole[1]
	loads.fail[bad] = true
	out2 := filepath.Join(tr.dir, "out2")
	res := tr.runIn(hooks, "restore", "latest", "--target", out2)
	lines := strings.Split(strings.TrimSpace(res.stderr), "\n")
	last := lines[len(lines)-1]
	if res.code != exitFatal || !strings.HasPrefix(last, "snap: ") || !strings.Contains(last, "could not be restored") ||
		!strings.Contains(last, "the same restore with --overwrite if-changed restores what is missing") {
		t.Fatalf("restore with a pack that cannot be fetched: exit %d, %q", res.code, res.stderr)
	}
	failed := map[string]bool{}
	for _, l := range lines[:len(lines)-1] {
		path, msg, ok := strings.Cut(strings.TrimPrefix(l, "error: "), ": ")
		if !ok || !strings.HasPrefix(l, "error: ") || !strings.Contains(msg, bad) || !strings.Contains(msg, "gave up after 3 attempts") {
			t.Errorf("unexpected line %q", l)
			continue
		}
		failed[path] = true
	}
	if !strings.Contains(last, fmt.Sprintf("%d entries", len(failed))) || len(failed) == 0 {
		t.Errorf("%d files named, last line %q", len(failed), last)
	}
	t.Logf("%d files need the pack that cannot be fetched; %s", len(failed), last)
	good := 0
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		got := filepath.Join(out2, p)
		if failed[got] {
			return nil
		}
		want, _ := os.ReadFile(p)
		if b, err := os.ReadFile(got); err != nil || !bytes.Equal(b, want) {
			t.Errorf("%s not restored though not named as failed", got)
		}
		good++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if good == 0 {
		t.Error("no file restored")
	}
	whole, ranged, _ = loads.reset()
	n := 0
	for _, name := range whole {
		if name == bad {
			n++
		}
	}
	if n != 3 || ranged != 0 {
		t.Errorf("the failing pack was loaded whole %d times (want the 3 attempts) and %d ranged loads (want none)", n, ranged)
	}
	if left := fetchDirsLeft(tr); len(left) > 0 {
		t.Errorf("failed restore left fetched packs behind: %v", left)
	}

	// check --read-data met with no answer for a pack stops there and
	// says so; it called the pack damaged and advised moving it out of
	// data/ (found by an exploratory test with the server killed).
	loads.downOnFail = true
	res = tr.runIn(hooks, "check", "--read-data")
	if res.code != exitFatal || !strings.Contains(res.stderr, "the repository stopped answering") || strings.Contains(res.stdout+res.stderr, "move it out of data/") {
		t.Errorf("check --read-data with a pack that cannot be fetched: exit %d\n%s%s", res.code, res.stdout, res.stderr)
	}
	loads.downOnFail, loads.down = false, false
	// One pack the server fails while it answers for the others (an
	// object rotten on the server): the check goes on past it and names
	// it, without calling it lost (it stopped there, advising to run it
	// again, for ever; found by an exploratory test).
	res = tr.runIn(hooks, "check", "--read-data", "--json")
	if res.code != exitFatal || !strings.Contains(res.stdout, `"kind":"unanswered_pack"`) || !strings.Contains(res.stdout, "the repository answered other requests, but not this pack's") ||
		strings.Contains(res.stderr, "stopped answering") || len(regexp.MustCompile(`(?m)^\{"kind":"unanswered_pack"`).FindAllString(res.stdout, -1)) != 1 {
		t.Errorf("check --read-data with one pack the server fails: exit %d\n%s%s", res.code, res.stdout, res.stderr)
	}
	delete(loads.fail, bad)
	if res := tr.runIn(hooks, "check", "--read-data"); res.code != 0 {
		t.Errorf("check --read-data once it answers: exit %d\n%s%s", res.code, res.stdout, res.stderr)
	}

	// Interrupted once the first pack is on disk: exit 130, nothing left.
	interrupted := false
	for attempt := 0; attempt < 3 && !interrupted; attempt++ {
		cmd := exec.Command(snapBin, "--connections", "1", "restore", "latest", "--target", filepath.Join(tr.dir, fmt.Sprint("out-int", attempt)))
		cmd.Env = append(baseEnv(), tr.env...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		must(t, cmd.Start())
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) {
			if m, _ := filepath.Glob(filepath.Join(tr.cache, "*", "fetch-*", "*")); len(m) > 0 {
				break
			}
			time.Sleep(time.Millisecond)
		}
		must(t, cmd.Process.Signal(os.Interrupt))
		err := cmd.Wait()
		var ee *exec.ExitError
		if err == nil {
			t.Logf("attempt %d: restore finished before the signal; trying again", attempt)
			continue
		}
		if !errors.As(err, &ee) || ee.ExitCode() != exitInterrupted {
			t.Fatalf("interrupted restore: %v, want exit %d\n%s", err, exitInterrupted, stderr.String())
		}
		interrupted = true
		if l := oneLine(t, result{stderr: stderr.String(), code: ee.ExitCode()}); !strings.Contains(l, "restore stopped") {
			t.Errorf("interrupted restore: %q", l)
		}
	}
	if !interrupted {
		t.Fatal("could not interrupt a restore in 3 attempts")
	}
	if left := fetchDirsLeft(tr); len(left) > 0 {
		t.Errorf("interrupted restore left fetched packs behind: %v", left)
	}
}

// TestS3Faults: with a fraction of requests failing, breaking off or
// delayed, every run either succeeds or fails with one clear line, and
// afterwards every snapshot that was saved restores intact.
// uncheckedRE finds the snapshot of a create that saved it but could not
// check its lock afterwards.
var uncheckedRE = regexp.MustCompile(`snapshot ([0-9a-f]{8}): the snapshot was saved, but whether this run still held its lock could not be checked`)

func TestS3Faults(t *testing.T) {
	srv := s3test.Start(t)
	tr := newS3Repo(t, srv)
	clearSnapEnv(t)
	srv.SetEnv(t)
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	src := filepath.Join(tr.dir, "src")
	writeTree(t, src, 4, 5, 30_000, seed)
	rnd := mrand(seed)

	var wrapped []*faulty.Backend
	hooksFor := func(o faulty.Options, r retry.Options) *backendHooks {
		return &backendHooks{retry: r, wrap: func(be repo.Backend) repo.Backend {
			seed++
			o.Seed = seed
			f := faulty.New(be, o)
			wrapped = append(wrapped, f)
			return f
		}}
	}
	mild := hooksFor(faulty.Options{FailRate: 0.1, TruncateRate: 0.05, DelayRate: 0.1, Delay: 10 * time.Millisecond},
		retry.Options{MaxAttempts: 10, Initial: time.Millisecond, Max: 10 * time.Millisecond})
	hostile := hooksFor(faulty.Options{FailRate: 0.3, TruncateRate: 0.1, DelayRate: 0.1, Delay: 5 * time.Millisecond},
		retry.Options{MaxAttempts: 3, Initial: time.Millisecond, Max: 2 * time.Millisecond})

	saved := map[string]string{} // snapshot ID → copy of what it saved
	failures := 0
	for i := range 12 {
		hooks, name := mild, "mild"
		if i >= 6 {
			hooks, name = hostile, "hostile"
		}
		writeFile(t, filepath.Join(src, fmt.Sprintf("d%03d", rnd.IntN(4)), fmt.Sprintf("new-%d.bin", i)), bytes.Repeat([]byte{byte(i)}, 5000+rnd.IntN(50_000)))
		res := tr.runIn(hooks, "create", src)
		if res.code != 0 {
			failures++
			if name == "mild" {
				t.Errorf("create %d with mild faults failed: %s", i, res.stderr)
			}
			if res.code != exitFatal {
				t.Errorf("create %d: exit %d, want %d: %s", i, res.code, exitFatal, res.stderr)
			}
			if m := uncheckedRE.FindStringSubmatch(res.stderr); m != nil {
				// Saved, the lock check after it unanswered
				// (ErrLockUnchecked): the snapshot stands, and must
				// restore whole below.
				state := filepath.Join(tr.dir, "states", m[1])
				copyDir(t, src, state)
				saved[m[1]] = state
				oneLine(t, res)
				continue
			}
			// Where the packs it stored went (not indexed, found by an
			// exploratory test): prune reclaims them. Said only when it
			// stored some (found by another).
			if said := strings.Contains(res.stderr, "'snap prune' reclaims them"); strings.Contains(res.stderr, "gave up after") && said != (res.unindexedPacks > 0) {
				t.Errorf("create %d gave up after storing %d packs, and said what becomes of them: %v: %s", i, res.unindexedPacks, said, res.stderr)
			}
			oneLine(t, res)
			continue
		}
		m := savedRE.FindStringSubmatch(res.stdout)
		if m == nil {
			t.Fatalf("create printed no snapshot ID: %s", res.stdout)
		}
		id := m[1]
		state := filepath.Join(tr.dir, "states", id)
		copyDir(t, src, state)
		saved[id] = state
		out := filepath.Join(tr.dir, "restore", fmt.Sprint(i))
		res = tr.runIn(hooks, "restore", id, "--target", out)
		switch {
		case res.code == 0:
			sameFiles(t, src, filepath.Join(out, src))
		case name == "mild":
			t.Errorf("restore %d with mild faults failed: %s", i, res.stderr)
		default:
			// Restore lists each file it could not write (and warns
			// about a snapshot document it could not read), then ends
			// with one line.
			lines := strings.Split(strings.TrimSpace(res.stderr), "\n")
			for _, l := range lines[:len(lines)-1] {
				if !strings.HasPrefix(l, "error: ") && !strings.HasPrefix(l, "warning: ") {
					t.Errorf("restore %d: unexpected output %q", i, l)
				}
			}
			if !strings.HasPrefix(lines[len(lines)-1], "snap: ") {
				t.Errorf("restore %d: last line %q", i, lines[len(lines)-1])
			}
		}
	}
	var injected faulty.Stats
	for _, f := range wrapped {
		st := f.Stats()
		injected.Failed += st.Failed
		injected.Lost += st.Lost
		injected.Truncated += st.Truncated
		injected.Delayed += st.Delayed
	}
	t.Logf("%d snapshots saved, %d runs failed; faults injected: %+v", len(saved), failures, injected)
	if len(saved) < 6 {
		t.Fatalf("only %d snapshots saved", len(saved))
	}
	// Without faults, and with a fresh cache: everything saved is there.
	clean := *tr
	clean.cache = filepath.Join(tr.dir, "clean-cache")
	for id, state := range saved {
		out := filepath.Join(tr.dir, "final", id)
		if res := clean.runIn(nil, "restore", id, "--target", out); res.code != 0 {
			t.Fatalf("restore %s without faults: %s", id, res.stderr)
		}
		sameFiles(t, state, filepath.Join(out, src))
	}
	if res := clean.runIn(nil, "create", src); res.code != 0 {
		t.Fatalf("create after the faults: %s", res.stderr)
	}
}

// TestS3ManyWriters: four hosts create snapshots in one S3 repository at
// the same time, each with its own cache, while a fifth process forgets
// and prunes. Afterwards check --read-data is clean and every remaining
// snapshot restores to exactly what was backed up. Two of the hosts back
// up the same data, which is stored once.
func TestS3ManyWriters(t *testing.T) {
	srv := s3test.Start(t)
	tr := newS3Repo(t, srv)
	const hosts, rounds = 4, 8
	type host struct {
		tr     *testRepo
		name   string
		src    string
		states map[string]string // snapshot ID → copy of what it saved
	}
	hs := make([]*host, hosts)
	for i := range hs {
		h := &host{name: fmt.Sprintf("host%d", i), states: map[string]string{}}
		cp := *tr
		cp.env = append(append([]string(nil), tr.env...), "SNAP_CACHE_DIR="+filepath.Join(tr.dir, "cache-"+h.name))
		h.tr = &cp
		h.src = filepath.Join(tr.dir, h.name, "data")
		hs[i] = h
	}
	// host2 and host3 back up the same data (in their own directories);
	// host2 has backed it up once before the others start.
	const sharedSeed = 99
	for i, h := range hs {
		seed := uint64(i)
		if i >= 2 {
			seed = sharedSeed
		}
		writeTree(t, h.src, 5, 6, 40_000, seed)
	}
	hs[2].tr.mustRun("create", "--host", hs[2].name, hs[2].src)

	createJSON := func(h *host) (map[string]any, error) {
		res := h.tr.run("create", "--json", "--host", h.name, h.src)
		if res.code != 0 {
			return nil, fmt.Errorf("%s: create: exit %d: %s", h.name, res.code, res.stderr)
		}
		lines := strings.Split(strings.TrimSpace(res.stdout), "\n")
		var sum map[string]any
		if err := json.Unmarshal([]byte(lines[len(lines)-1]), &sum); err != nil {
			return nil, fmt.Errorf("%s: create --json: %v: %s", h.name, err, res.stdout)
		}
		return sum, nil
	}

	errs := make(chan error, hosts*rounds+100)
	done := make(chan struct{})
	var firstShared map[string]any
	var writers, pruner sync.WaitGroup
	for i, h := range hs {
		writers.Add(1)
		go func() {
			defer writers.Done()
			rnd := mrand(uint64(100 + i))
			for r := range rounds {
				if r > 0 { // change a little between rounds, spread over the pruner's runs
					time.Sleep(time.Duration(100+rnd.IntN(200)) * time.Millisecond)
					name := filepath.Join(h.src, fmt.Sprintf("d%03d", rnd.IntN(5)), fmt.Sprintf("round%d.bin", r))
					b := make([]byte, 10_000+rnd.IntN(30_000))
					for j := range b {
						b[j] = byte(rnd.Uint32())
					}
					if err := os.WriteFile(name, b, 0o644); err != nil {
						errs <- err
						return
					}
				}
				sum, err := createJSON(h)
				if err != nil {
					errs <- err
					return
				}
				if i == 3 && r == 0 {
					firstShared = sum
				}
				id := sum["snapshot_id"].(string)
				state := filepath.Join(tr.dir, "states", h.name, id)
				if err := os.CopyFS(state, os.DirFS(h.src)); err != nil {
					errs <- err
					return
				}
				h.states[id] = state
			}
		}()
	}
	prunes := 0
	pruner.Add(1)
	go func() {
		defer pruner.Done()
		p := *tr
		p.env = append(append([]string(nil), tr.env...), "SNAP_CACHE_DIR="+filepath.Join(tr.dir, "cache-pruner"))
		for {
			res := p.run("forget", "--keep-last", "2", "--prune", "--delete-delay", "0", "--max-unused", "0")
			if res.code != 0 {
				errs <- fmt.Errorf("forget --prune: exit %d: %s", res.code, res.stderr)
				return
			}
			prunes++
			select {
			case <-done:
				return
			default:
			}
		}
	}()
	writers.Wait()
	close(done)
	pruner.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		return
	}
	t.Logf("%d forget/prune runs during %d×%d creates", prunes, hosts, rounds)

	// The same data from a second host added (almost) nothing but trees.
	if raw := firstShared["added_raw_bytes"].(float64); raw > 0.05*firstShared["bytes"].(float64) {
		t.Errorf("host3 backed up data host2 had stored already and added %v of %v bytes", raw, firstShared["bytes"])
	}

	// A final prune once everything is quiet deletes what the concurrent
	// ones marked; then a full check.
	res := tr.mustRun("prune", "--delete-delay", "0")
	t.Logf("final prune:\n%s", res.stdout)
	// (Unless the pruner's last run came after the last create and left
	// nothing marked: then nothing is unused.)
	if !strings.Contains(res.stdout, "deleted") && !strings.Contains(res.stdout, " 0 B in live packs is unused") {
		t.Errorf("the final prune deleted nothing, and left unused data:\n%s", res.stdout)
	}
	if res := tr.run("check", "--read-data"); res.code != 0 {
		t.Fatalf("check --read-data: exit %d\n%s\n%s", res.code, res.stdout, res.stderr)
	}
	res = tr.mustRun("list", "--json")
	var list []struct {
		ID   string `json:"id"`
		Host string `json:"host"`
	}
	if err := json.Unmarshal([]byte(res.stdout), &list); err != nil {
		t.Fatal(err)
	}
	restored := 0
	for _, sn := range list {
		var state string
		for _, h := range hs {
			if s, ok := h.states[sn.ID]; ok {
				state = s
			}
		}
		if state == "" {
			continue // host2's setup snapshot
		}
		out := filepath.Join(tr.dir, "restore", sn.ID)
		tr.mustRun("restore", sn.ID, "--target", out)
		var src string
		for _, h := range hs {
			if h.name == sn.Host {
				src = h.src
			}
		}
		sameFiles(t, state, filepath.Join(out, src))
		restored++
	}
	if restored < hosts*2 || restored >= hosts*rounds {
		t.Errorf("%d snapshots left to restore of %d created; forget --keep-last 2 should have removed some, but not all", restored, hosts*rounds)
	}
	t.Logf("%d snapshots restored and compared", restored)
}

// TestS3InitRetries: init retries the requests that prepare the bucket as
// every command retries its requests: it failed at once on a refused
// connection (found by an exploratory test). Nothing listens on the port;
// the retries' waits are counted, not waited.
func TestS3InitRetries(t *testing.T) {
	clearSnapEnv(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // refused from here on
	tr := newUninitRepo(t)
	tr.repo = "s3:http://" + addr + "/bucket/repo"
	tr.env = append(tr.env, "AWS_ACCESS_KEY_ID=a", "AWS_SECRET_ACCESS_KEY=b")
	var waits atomic.Int32
	hooks := &backendHooks{retry: retry.Options{MaxAttempts: 3, Sleep: func(context.Context, time.Duration) error {
		waits.Add(1)
		return nil
	}}}
	res := tr.runIn(hooks, "init", "--kdf-memory", "8", "--kdf-time", "1")
	if res.code == 0 || waits.Load() != 2 || !strings.Contains(res.stderr, "gave up after 3 attempts") {
		t.Errorf("init against a refused connection: exit %d, %d retries, want 2\n%s", res.code, waits.Load(), res.stderr)
	}
}

// TestS3InitAfterStoppedInit: an init on a prefix that holds only what an
// init that was stopped left (key files, no config) says so and what to
// remove, as for a directory; it said only "choose an empty bucket or
// another prefix" (found by an exploratory test).
func TestS3InitAfterStoppedInit(t *testing.T) {
	srv := s3test.Start(t)
	tr := newS3Repo(t, srv)
	var config string
	must(t, filepath.WalkDir(srv.Dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Name() == "config" && strings.Contains(p, "snap-") {
			config = p
		}
		return err
	}))
	if config == "" {
		t.Fatal("no config object found in the server's directory")
	}
	must(t, os.Remove(config))
	res := tr.run("init", "--kdf-memory", "8", "--kdf-time", "1")
	if res.code == 0 || !strings.Contains(res.stderr, "what a 'snap init' that was stopped left; remove its keys/") {
		t.Errorf("init after a stopped init: exit %d\n%s", res.code, res.stderr)
	}
}

// countingHooks wraps each backend a run opens in a counting.Backend;
// counts returns the requests of the last run.
func countingHooks() (hooks *backendHooks, counts func() counting.Counts) {
	var counter *counting.Backend
	hooks = &backendHooks{wrap: func(be repo.Backend) repo.Backend {
		counter = counting.New(be)
		return counter
	}}
	return hooks, func() counting.Counts { return counter.Counts() }
}

// TestS3DumpAndCheckOfDeltas: a dump whose every version changes rows all
// through it is stored as deltas against earlier versions' chunks; create,
// dump and check --read-data read it from S3 by the pack, not one request
// per chunk and per base (1,279 and 22,240 requests for a repository of
// 13.7 MiB, and 139 for the bases of one create; found by exploratory
// tests), and the dump comes back as it was.
func TestS3DumpAndCheckOfDeltas(t *testing.T) {
	srv := s3test.Start(t)
	tr := newS3Repo(t, srv)
	clearSnapEnv(t)
	srv.SetEnv(t)
	hooks, counts := countingHooks()
	gen := func(step int) string {
		return fmt.Sprintf(`seq 1 120000 | awk '{ if ($1 %% 97 == 0) print "INSERT", $1, %d, "changed"; else print "INSERT", $1, $1*7919 %% 100003, "row" }'`, step)
	}
	for step := 1; step <= 4; step++ {
		if res := tr.runIn(hooks, "create", "--command", "db.sql", "--", "sh", "-c", gen(step)); res.code != 0 {
			t.Fatalf("create %d: exit %d: %s", step, res.code, res.stderr)
		}
		// Every chunk changed: each is a delta of the chunk before it,
		// whose pack is fetched whole after a few ranged reads (53 to 60
		// ranged reads of 2 packs before).
		c := counts()
		if n := c[counting.Key{Op: "load", Type: repo.PackFile}]; n > 8 {
			t.Errorf("create %d: %d pack loads (%s)", step, n, c)
		}
	}
	want, err := exec.Command("sh", "-c", gen(4)).Output()
	must(t, err)
	st := tr.runIn(hooks, "stats", "--json")
	var stats struct {
		Files struct {
			Data struct {
				Count int `json:"count"`
			} `json:"data"`
		} `json:"files"`
	}
	must(t, json.Unmarshal([]byte(st.stdout), &stats))
	packs := stats.Files.Data.Count
	res := tr.runIn(hooks, "dump", "latest", "/db.sql")
	if res.code != 0 || res.stdout != string(want) {
		t.Fatalf("dump: exit %d, %d bytes (want %d): %s", res.code, len(res.stdout), len(want), res.stderr)
	}
	loads := counts()[counting.Key{Op: "load", Type: repo.PackFile}]
	t.Logf("dump of %d bytes: %d pack loads of %d packs (%s)", len(want), loads, packs, counts())
	if loads > packs {
		t.Errorf("dump read the packs %d times", loads)
	}
	target := filepath.Join(tr.dir, "restored")
	if res := tr.runIn(hooks, "restore", "latest", "--target", target); res.code != 0 {
		t.Fatalf("restore: exit %d: %s", res.code, res.stderr)
	}
	if got, err := os.ReadFile(filepath.Join(target, "db.sql")); err != nil || string(got) != string(want) {
		t.Fatalf("restored dump: %v, %d bytes (want %d)", err, len(got), len(want))
	}
	loads = counts()[counting.Key{Op: "load", Type: repo.PackFile}]
	t.Logf("restore: %d pack loads of %d packs", loads, packs)
	if loads > 2*packs {
		t.Errorf("restore read the packs %d times", loads)
	}
	if res := tr.runIn(hooks, "check", "--read-data"); res.code != 0 {
		t.Fatalf("check --read-data: exit %d: %s", res.code, res.stderr)
	}
	loads = counts()[counting.Key{Op: "load", Type: repo.PackFile}]
	t.Logf("check --read-data: %d pack loads of %d packs (%s)", loads, packs, counts())
	if loads > 4*packs {
		t.Errorf("check --read-data read the packs %d times", loads)
	}
	// A copy to a local repository reads them through a fetcher too, the
	// deltas' bases with them, in the packs' order (59 pack loads before).
	local := newTestRepo(t)
	var counters []*counting.Backend // the source's and the target's
	both := &backendHooks{wrap: func(be repo.Backend) repo.Backend {
		c := counting.New(be)
		counters = append(counters, c)
		return c
	}}
	if res := tr.runIn(both, "copy", "--to", local.repo); res.code != 0 {
		t.Fatalf("copy: exit %d: %s", res.code, res.stderr)
	}
	loads = 0
	for _, c := range counters {
		loads += c.Counts()[counting.Key{Op: "load", Type: repo.PackFile}]
	}
	t.Logf("copy: %d pack loads of %d packs", loads, packs)
	if loads > 2*packs {
		t.Errorf("copy read the packs %d times", loads)
	}
	if res := local.run("dump", "latest", "/db.sql"); res.code != 0 || res.stdout != string(want) {
		t.Fatalf("dump of the copy: exit %d, %d bytes (want %d): %s", res.code, len(res.stdout), len(want), res.stderr)
	}
}

// answerLost stores snapshot documents and then fails as a lost answer
// does (the connection reset after the request went out).
type answerLost struct{ repo.Backend }

func (b answerLost) Save(ctx context.Context, h repo.Handle, data []byte) error {
	if h.Type != repo.SnapshotFile {
		return b.Backend.Save(ctx, h, data)
	}
	if err := b.Backend.Save(ctx, h, data); err != nil {
		return err
	}
	return repo.Transient(errors.New("read: connection reset by peer"))
}

// TestS3SnapshotAnswerLost: a snapshot document whose save got no answer
// may be in the repository: create fails (exit 1) saying it does not know,
// not that no snapshot was saved (it was, and list showed it; found by an
// exploratory test).
func TestS3SnapshotAnswerLost(t *testing.T) {
	srv := s3test.Start(t)
	tr := newS3Repo(t, srv)
	clearSnapEnv(t)
	srv.SetEnv(t)
	src := filepath.Join(tr.dir, "src")
	writeFile(t, filepath.Join(src, "f"), []byte("data"))
	hooks := &backendHooks{wrap: func(be repo.Backend) repo.Backend { return answerLost{be} },
		retry: retry.Options{MaxAttempts: 3, Initial: time.Millisecond, Max: 2 * time.Millisecond}}
	res := tr.runIn(hooks, "create", src)
	if res.code != exitFatal || !strings.Contains(res.stderr, "whether it was saved is unknown") || strings.Contains(res.stderr, "no snapshot was saved") {
		t.Fatalf("create whose snapshot's answer was lost: exit %d\n%s", res.code, res.stderr)
	}
	if n := len(tr.listJSON()); n != 1 {
		t.Errorf("list: %d snapshots, want the one saved", n)
	}
	if res := tr.runIn(nil, "check"); res.code != 0 {
		t.Errorf("check: exit %d\n%s", res.code, res.stderr)
	}
}

// TestS3CopyFromConfigFetchesPacks: a copy from an S3 repository that the
// config file names fetches its packs whole, as one from --repo does (it
// read every blob with a request of its own: 1,958 against 396 requests;
// found by an exploratory test).
func TestS3CopyFromConfigFetchesPacks(t *testing.T) {
	srv := s3test.Start(t)
	tr := newS3Repo(t, srv)
	clearSnapEnv(t)
	srv.SetEnv(t)
	src := filepath.Join(tr.dir, "src")
	writeTree(t, src, 3, 10, 3000, 1)
	tr.mustRun("create", src)
	pw := filepath.Join(tr.dir, "password")
	writeFile(t, pw, []byte("test-password\n"))
	cfg := filepath.Join(tr.dir, "snap.toml")
	writeFile(t, cfg, []byte("repository = \""+tr.repo+"\"\npassword_file = \""+pw+"\"\n"))
	var counters []*counting.Backend
	hooks := &backendHooks{wrap: func(be repo.Backend) repo.Backend {
		c := counting.New(be)
		counters = append(counters, c)
		return c
	}}
	copyTo := func(name string, source ...string) int {
		t.Helper()
		target := filepath.Join(tr.dir, name)
		tr.runEnv([]string{"SNAP_REPOSITORY=" + target}, nil, "init", "--kdf-memory", "8", "--kdf-time", "1")
		counters = nil
		var stdout, stderr bytes.Buffer
		e := &env{stdin: bytes.NewReader(nil), stdout: &stdout, stderr: &stderr, getenv: func(string) string { return "" }, now: time.Now, backendHooks: hooks}
		args := append(append([]string{"snap", "--cache-dir", filepath.Join(tr.dir, "cache-"+name)}, source...), "copy", "--to", target, "--to-password-file", pw)
		if code := run(args, e); code != 0 {
			t.Fatalf("copy %v: exit %d\n%s", source, code, stderr.String())
		}
		loads := 0
		for _, c := range counters {
			loads += c.Counts()[counting.Key{Op: "load", Type: repo.PackFile}]
		}
		return loads
	}
	byFlag := copyTo("flag", "--repo", tr.repo, "--password-file", pw)
	byConfig := copyTo("config", "--config", cfg)
	t.Logf("pack reads: %d with --repo, %d with the config", byFlag, byConfig)
	if byConfig > byFlag+1 {
		t.Errorf("a copy from the config's S3 repository read packs %d times, from --repo %d", byConfig, byFlag)
	}
}

// TestS3MisspeltPrefix: a prefix that holds nothing beside one that holds
// a repository names it, and does not advise 'snap init', which would
// start a second, empty repository (found by an exploratory test).
func TestS3MisspeltPrefix(t *testing.T) {
	srv := s3test.Start(t)
	tr := newS3Repo(t, srv)
	wrong := strings.TrimSuffix(tr.repo, "/repo") + "/Repo"
	res := tr.runEnv([]string{"SNAP_REPOSITORY=" + wrong}, nil, "list")
	if res.code != exitNoRepo || !strings.Contains(res.stderr, "repositories are beside it: "+tr.repo+";") || strings.Contains(res.stderr, "run 'snap init'") {
		t.Errorf("list of a misspelt prefix: exit %d\n%s", res.code, res.stderr)
	}
}

// failSnapshotSaves fails every save of a snapshot document as a full
// server does (HTTP 507, retried, then given up), and answers the rest.
type failSnapshotSaves struct{ repo.Backend }

func (b failSnapshotSaves) Save(ctx context.Context, h repo.Handle, data []byte) error {
	if h.Type == repo.SnapshotFile {
		return repo.Transient(fmt.Errorf("save %s: injected: InsufficientStorage (HTTP 507)", h))
	}
	return b.Backend.Save(ctx, h, data)
}

// TestCreateGivenUpAfterIndexingSaysNothingOfUnindexedPacks: a create
// whose packs and index segment were saved before the repository stopped
// taking its snapshot leaves no pack unindexed, and must not say it does
// (it said so of every pack it had saved; found by an exploratory test);
// check finds every pack indexed.
func TestCreateGivenUpAfterIndexingSaysNothingOfUnindexedPacks(t *testing.T) {
	tr := newTestRepo(t)
	src := filepath.Join(tr.dir, "src")
	writeFile(t, filepath.Join(src, "f"), randomBytes(21, 400<<10))
	hooks := &backendHooks{wrap: func(be repo.Backend) repo.Backend { return failSnapshotSaves{be} },
		retry: retry.Options{MaxAttempts: 2, Initial: time.Millisecond, Max: time.Millisecond}}
	res := tr.runIn(hooks, "create", src)
	if res.code != exitFatal || !strings.Contains(res.stderr, "HTTP 507") || strings.Contains(res.stderr, "not indexed") || res.unindexedPacks != 0 {
		t.Errorf("create whose snapshot could not be saved: exit %d, %d packs unindexed\n%s", res.code, res.unindexedPacks, res.stderr)
	}
	if res := tr.mustRun("check"); strings.Contains(res.stdout+res.stderr, "not indexed") {
		t.Errorf("check after it: %s%s", res.stdout, res.stderr)
	}
}
