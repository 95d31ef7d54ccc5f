package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestIncremental: a file whose size, mtime, ctime and inode match the
// parent snapshot is not read; any one of them changing makes it read
// again. The parent is the newest snapshot of the same host and paths.
func TestIncremental(t *testing.T) {
	t.Parallel()
	tr := newTestRepo(t)
	src := filepath.Join(tr.dir, "src")
	a, b := filepath.Join(src, "a"), filepath.Join(src, "sub", "b")
	writeRandom(t, a, 1, 300_000)
	writeRandom(t, b, 2, 200_000)
	writeFile(t, filepath.Join(src, "c"), []byte("ccc"))

	parentOf := func(id string) string {
		for _, sn := range tr.listJSON() {
			if sn.ID == id {
				if sn.Parent == nil {
					return ""
				}
				return sn.Parent.String()
			}
		}
		t.Fatalf("snapshot %s not listed", id)
		return ""
	}
	s1 := tr.create(src)
	if s1.ReadBytes != 500_003 || parentOf(s1.SnapshotID) != "" {
		t.Errorf("first create read %d bytes, parent %q", s1.ReadBytes, parentOf(s1.SnapshotID))
	}
	s2 := tr.create(src)
	if s2.ReadBytes != 0 || parentOf(s2.SnapshotID) != s1.SnapshotID {
		t.Errorf("unchanged: read %d bytes, parent %s; want 0, %s", s2.ReadBytes, parentOf(s2.SnapshotID), s1.SnapshotID)
	}

	// mtime only (same size and content).
	future := time.Now().Add(time.Hour)
	must(t, os.Chtimes(b, future, future))
	s3 := tr.create(src)
	if s3.ReadBytes != 200_000 {
		t.Errorf("after touching b: read %d bytes, want 200000", s3.ReadBytes)
	}
	// ctime only: chmod changes the inode's change time, not its mtime.
	time.Sleep(10 * time.Millisecond)
	must(t, os.Chmod(a, 0o640))
	s4 := tr.create(src)
	if s4.ReadBytes != 300_000 {
		t.Errorf("after chmod a: read %d bytes, want 300000", s4.ReadBytes)
	}
	// inode only: a copy with the same size and times replaces a.
	var st unix.Stat_t
	must(t, unix.Stat(a, &st))
	data, err := os.ReadFile(a)
	must(t, err)
	tmp := a + ".new"
	must(t, os.WriteFile(tmp, data, 0o640))
	must(t, unix.UtimesNano(tmp, []unix.Timespec{st.Atim, st.Mtim}))
	must(t, os.Rename(tmp, a))
	s5 := tr.create(src)
	if s5.ReadBytes != 300_000 {
		t.Errorf("after replacing a by a copy: read %d bytes, want 300000", s5.ReadBytes)
	}
	// size only, with the mtime put back.
	must(t, unix.Stat(b, &st))
	must(t, os.WriteFile(b, append(randBytes(2, 200_000), 'x'), 0o644))
	must(t, unix.UtimesNano(b, []unix.Timespec{st.Atim, st.Mtim}))
	s6 := tr.create(src)
	if s6.ReadBytes != 200_001 {
		t.Errorf("after growing b: read %d bytes, want 200001", s6.ReadBytes)
	}

	// Other paths or another host make other parents.
	sSub := tr.create(filepath.Join(src, "sub"))
	if sSub.ReadBytes != 200_001 || parentOf(sSub.SnapshotID) != "" {
		t.Errorf("other paths: read %d bytes, parent %q; want everything, none", sSub.ReadBytes, parentOf(sSub.SnapshotID))
	}
	sHost := tr.create("--host", "elsewhere", src)
	if sHost.ReadBytes != 500_004 || parentOf(sHost.SnapshotID) != "" {
		t.Errorf("other host: read %d bytes, parent %q; want everything, none", sHost.ReadBytes, parentOf(sHost.SnapshotID))
	}
	s7 := tr.create(src)
	if s7.ReadBytes != 0 || parentOf(s7.SnapshotID) != s6.SnapshotID {
		t.Errorf("back on this host: read %d bytes, parent %s; want 0, %s", s7.ReadBytes, parentOf(s7.SnapshotID), s6.SnapshotID)
	}
	s8 := tr.create("--host", "elsewhere", src)
	if s8.ReadBytes != 0 || parentOf(s8.SnapshotID) != sHost.SnapshotID {
		t.Errorf("other host again: read %d bytes, parent %s; want 0, %s", s8.ReadBytes, parentOf(s8.SnapshotID), sHost.SnapshotID)
	}

	// Every snapshot restores the state it saw; check the last one.
	target := filepath.Join(tr.dir, "out")
	tr.mustRun("restore", s7.SnapshotID, "--target", target)
	compareEntries(t, "restore of an incremental snapshot", describe(t, src), describe(t, filepath.Join(target, src)))
}

// TestParentByTags: a directory split between two snapshots by --exclude
// patterns, each half with a tag of its own, takes the snapshot of its own
// tag as its parent, so an unchanged half is read no more; it took the
// other half's snapshot (the newest of its host and paths) and read its
// whole half on every run (found by an exploratory test). --parent names
// the parent outright.
func TestParentByTags(t *testing.T) {
	t.Parallel()
	tr := newTestRepo(t)
	src := filepath.Join(tr.dir, "src")
	writeRandom(t, filepath.Join(src, "a1"), 1, 100_000)
	writeRandom(t, filepath.Join(src, "b1"), 2, 200_000)
	half := func(tag, exclude string) summary { return tr.create("--tag", tag, "--exclude", exclude, src) }
	if s := half("h1", "b*"); s.ReadBytes != 100_000 {
		t.Fatalf("first half: read %d", s.ReadBytes)
	}
	if s := half("h2", "a*"); s.ReadBytes != 200_000 {
		t.Fatalf("second half: read %d", s.ReadBytes)
	}
	if s := half("h1", "b*"); s.ReadBytes != 0 {
		t.Errorf("first half again: read %d bytes, want 0 (its parent is the other half's snapshot?)", s.ReadBytes)
	}
	h2 := half("h2", "a*")
	if h2.ReadBytes != 0 {
		t.Errorf("second half again: read %d bytes, want 0", h2.ReadBytes)
	}
	// An untagged run has no snapshot of its tags: the newest of its
	// host and paths (the second half) is its parent, or the one named.
	if s := tr.create(src); s.ReadBytes != 100_000 {
		t.Errorf("untagged run: read %d bytes, want the first half's 100000", s.ReadBytes)
	}
	first := tr.listJSON()[0].ID
	if s := tr.create("--tag", "x", "--exclude", "b*", "--parent", first[:8], src); s.ReadBytes != 0 {
		t.Errorf("--parent %s: read %d bytes, want 0", first[:8], s.ReadBytes)
	}
	if res := tr.run("create", "--parent", "latest", "--force", src); res.code != exitUsage {
		t.Errorf("--parent with --force: exit %d: %s", res.code, res.stderr)
	}
	if res := tr.run("create", "--parent", "abcdef12", src); res.code == 0 || !strings.Contains(res.stderr, "--parent") {
		t.Errorf("--parent naming no snapshot: exit %d: %s", res.code, res.stderr)
	}
}

// TestParentOfBackDated: a create dated with --time before snapshots
// already taken has as its parent the newest snapshot of its host and
// paths dated at or before it, so that diff shows its changes forwards;
// it took the newest of all, dated after it (found by an exploratory
// test). --parent still names any.
func TestParentOfBackDated(t *testing.T) {
	t.Parallel()
	tr := newTestRepo(t)
	src := filepath.Join(tr.dir, "src")
	writeFile(t, filepath.Join(src, "old"), []byte("x"))
	first := tr.createID("--host", "lab", "--time", "2026-11-10T10:00:00Z", src)
	must(t, os.Remove(filepath.Join(src, "old")))
	writeFile(t, filepath.Join(src, "new"), []byte("y"))
	last := tr.createID("--host", "lab", "--time", "2026-11-12T10:00:00Z", src)
	writeFile(t, filepath.Join(src, "mid"), []byte("z"))
	mid := tr.create("--host", "lab", "--time", "2026-11-11T10:00:00Z", src)
	parentOf := func(id string) string {
		for _, sn := range tr.listJSON() {
			if sn.ID == id && sn.Parent != nil {
				return sn.Parent.String()
			}
		}
		return ""
	}
	if p := parentOf(mid.SnapshotID); p != first {
		t.Errorf("back-dated create: parent %q, want %s (the newest before it), not %s", p, first[:8], last[:8])
	}
	res := tr.mustRun("diff", mid.SnapshotID[:8])
	if !strings.Contains(res.stdout, "+    "+filepath.Join(src, "mid")) || !strings.Contains(res.stdout, "-    "+filepath.Join(src, "old")) {
		t.Errorf("diff of the back-dated snapshot: want mid added and old removed:\n%s", res.stdout)
	}
	// Dated at the same time as one taken: that one is its parent.
	if same := tr.create("--host", "lab", "--time", "2026-11-10T10:00:00Z", src); parentOf(same.SnapshotID) != first {
		t.Errorf("create dated as another: parent %q, want %s", parentOf(same.SnapshotID), first[:8])
	}
	// --parent overrides: a later snapshot may be named.
	if named := tr.create("--host", "lab", "--time", "2026-11-01T10:00:00Z", "--parent", last[:8], src); parentOf(named.SnapshotID) != last {
		t.Errorf("--parent %s: parent %q", last[:8], parentOf(named.SnapshotID))
	}
}

// TestIncrementalXattrs: an entry whose inode and ctime match the parent
// snapshot's keeps the parent's extended attributes without their being
// read again (sources.Reader.LstatIn); setting, changing or removing
// one moves the ctime, and the next snapshot records the new set, for
// files and directories alike.
func TestIncrementalXattrs(t *testing.T) {
	t.Parallel()
	tr := newTestRepo(t)
	src := filepath.Join(tr.dir, "src")
	a, sub, b := filepath.Join(src, "a"), filepath.Join(src, "sub"), filepath.Join(src, "sub", "b")
	writeRandom(t, a, 1, 10_000)
	writeRandom(t, b, 2, 10_000)
	must(t, unix.Setxattr(a, "user.k", []byte("v1"), 0))
	must(t, unix.Setxattr(sub, "user.d", []byte("on the directory"), 0))

	restored := func(id string) (string, string, string) {
		t.Helper()
		target := filepath.Join(tr.dir, "out-"+id)
		tr.mustRun("restore", id, "--target", target)
		r := filepath.Join(target, src)
		return userXattrs(filepath.Join(r, "a")), userXattrs(filepath.Join(r, "sub")), userXattrs(filepath.Join(r, "sub", "b"))
	}
	hexOf := func(s string) string { return fmt.Sprintf("%x", s) }
	tr.create(src)
	s2 := tr.create(src) // unchanged: the attributes come from the parent
	if s2.ReadBytes != 0 {
		t.Fatalf("unchanged: read %d bytes", s2.ReadBytes)
	}
	gotA, gotSub, gotB := restored(s2.SnapshotID)
	if gotA != "user.k="+hexOf("v1") || gotSub != "user.d="+hexOf("on the directory") || gotB != "" {
		t.Fatalf("unchanged snapshot restores attributes %q, %q, %q", gotA, gotSub, gotB)
	}

	// Changed attributes alone (same content, size and mtime).
	must(t, unix.Setxattr(a, "user.k", []byte("v2"), 0))
	must(t, unix.Setxattr(b, "user.new", []byte("x"), 0))
	must(t, unix.Removexattr(sub, "user.d"))
	s3 := tr.create(src)
	gotA, gotSub, gotB = restored(s3.SnapshotID)
	if gotA != "user.k="+hexOf("v2") || gotSub != "" || gotB != "user.new="+hexOf("x") {
		t.Fatalf("after changing attributes the snapshot restores %q, %q, %q", gotA, gotSub, gotB)
	}
}

// TestFileRewrittenWhileRead: a file rewritten in place (its size kept)
// while create reads it is saved with a warning that it may mix old and
// new content, and the next create reads it again. The create is slowed
// by an upload limit so that the writes fall inside the read.
func TestFileRewrittenWhileRead(t *testing.T) {
	t.Parallel()
	tr := newTestRepo(t)
	src := filepath.Join(tr.dir, "src")
	big := filepath.Join(src, "db")
	writeRandom(t, big, 9, 40<<20)
	f, err := os.OpenFile(big, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd, out := tr.start(nil, "create", "--json", "--limit-upload", "16MiB", src)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	for i := 0; ; i++ {
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("create: %v\n%s", err, out)
			}
			if !strings.Contains(out.String(), "changed while it was read; saved what was read, which may mix old and new content") {
				t.Fatalf("no warning for a file rewritten during the read:\n%s", out)
			}
			// Counted in the summary, for monitoring that reads it alone.
			if !strings.Contains(out.String(), `"warnings":1,`) {
				t.Errorf("the summary does not count the warning:\n%s", out)
			}
			res := tr.mustRun("create", "--json", src)
			if !strings.Contains(res.stdout, `"read_bytes":41943040`) || !strings.Contains(res.stdout, `"warnings":0,`) {
				t.Errorf("the next create did not read the file again: %s", res.stdout)
			}
			return
		case <-time.After(20 * time.Millisecond):
			if _, err := f.WriteAt([]byte{byte(i)}, int64(i%40)<<20); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// TestOwnTreesRecord: a create records its snapshot's tree in the cache
// (own-trees), and the next create takes it for its parent; the record
// keeps distinct trees when it is cut back, so one job's record is not
// pushed out by another's many runs of an unchanged tree, and a line a
// crash cut short does not swallow the next (found by a review).
func TestOwnTreesRecord(t *testing.T) {
	tr := newTestRepo(t)
	src := filepath.Join(tr.dir, "src")
	writeFile(t, filepath.Join(src, "f"), []byte("x"))
	first := tr.createID(src)
	records, err := filepath.Glob(filepath.Join(tr.cache, "*", "own-trees"))
	must(t, err)
	if len(records) != 1 {
		t.Fatalf("own-trees records: %v", records)
	}
	// Another job's unchanged tree, twenty thousand times, and a line cut
	// short by a crash.
	f, err := os.OpenFile(records[0], os.O_WRONLY|os.O_APPEND, 0)
	must(t, err)
	_, err = f.WriteString(strings.Repeat(strings.Repeat("ab", 32)+"\n", 20000) + "cdcd")
	must(t, err)
	must(t, f.Close())
	sum, res := tr.createJSON(nil, nil, src)
	if sum == nil || sum["parent"] != first || strings.Contains(res.stderr, "was not saved through this cache") {
		t.Fatalf("create after the record grew: %v\n%s", sum, res.stderr)
	}
	b, err := os.ReadFile(records[0])
	must(t, err)
	if n := strings.Count(string(b), "\n"); n > 10 {
		t.Errorf("the record was not cut back to its distinct trees: %d lines", n)
	}
	sum, res = tr.createJSON(nil, nil, src)
	if sum == nil || sum["parent"] == nil || strings.Contains(res.stderr, "was not saved through this cache") {
		t.Errorf("create after the record was cut back: %v\n%s", sum, res.stderr)
	}
}
