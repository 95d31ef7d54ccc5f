package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/snap-backup/snap/repo"
	"github.com/snap-backup/snap/snapshot"
	"github.com/snap-backup/snap/sources"
)

// TestDumpsNamedByURL: a database URL names the dump of that database
// however either is spelt (localhost or 127.0.0.1, the default port or
// none), as create tells databases apart; only the recorded spelling
// matched (found by an exploratory test). Another database, server or
// kind does not match.
func TestDumpsNamedByURL(t *testing.T) {
	srcs := []snapshot.Source{
		{Path: "/db/postgres/app.sql", Kind: "postgres", URL: "postgres://postgres@localhost/app"},
		{Path: "/db/mysql/app.sql", Kind: "mysql", URL: "mysql://root@127.0.0.1:3306/app"},
		{Path: "/db/postgres/all.sql", Kind: "postgres", URL: "postgres://postgres@127.0.0.1:5432/?all"},
	}
	for name, want := range map[string]string{
		"postgres://postgres@127.0.0.1:5432/app": "/db/postgres/app.sql",
		"postgres://postgres@localhost:5432/app": "/db/postgres/app.sql",
		"postgres://postgres@localhost/app":      "/db/postgres/app.sql",
		"mysql://root@127.0.0.1/app":             "/db/mysql/app.sql",
		"postgres://postgres@localhost/?all":     "/db/postgres/all.sql",
		"postgres://postgres@localhost:5433/app": "",
		"postgres://postgres@localhost/other":    "",
		"postgres://postgres@localhost/all":      "",
	} {
		got := dumpsNamed(srcs, name)
		switch {
		case want == "" && len(got) != 0:
			t.Errorf("%s matched %v", name, got)
		case want != "" && (len(got) != 1 || got[0].Path != want):
			t.Errorf("%s matched %v, want %s", name, got, want)
		}
	}
}

// TestSizeNoteShowsSmallChanges: a file whose size changed by less than
// the listing's rounding shows both sizes exactly ("1.2 MiB → 1.2 MiB"
// hid the change; found by an exploratory test).
func TestSizeNoteShowsSmallChanges(t *testing.T) {
	file := func(size uint64) *snapshot.Node {
		return &snapshot.Node{Meta: sources.Meta{Type: sources.TypeFile, Size: size}}
	}
	for _, tc := range []struct {
		old, new uint64
		want     string
	}{
		{1258291, 1258293, "  (1258291 B → 1258293 B)"},
		{1000, 2000000, "  (" + humanBytes(1000) + " → " + humanBytes(2000000) + ")"},
		{1258291, 1258291, "  (" + humanBytes(1258291) + " → " + humanBytes(1258291) + ")"},
	} {
		if got := sizeNote(snapshot.Change{Kind: snapshot.Modified, Old: file(tc.old), New: file(tc.new)}); got != tc.want {
			t.Errorf("%d → %d: %q, want %q", tc.old, tc.new, got, tc.want)
		}
	}
}

// TestTagListQuotesOddTags: a tag with a line break (a crafted
// repository's) is quoted, not printed as two lines.
func TestTagListQuotesOddTags(t *testing.T) {
	if got := tagList([]string{"nightly", "t\nag"}); got != `nightly, "t\nag"` {
		t.Errorf("tagList = %q", got)
	}
}

// TestPruneCountsEverySegmentWritten: prune's summary counts the index
// segments of the repacked packs too (it said one where index/ had two
// new files; found by an exploratory test).
func TestPruneCountsEverySegmentWritten(t *testing.T) {
	t.Parallel()
	tr := newTestRepo(t)
	src := filepath.Join(tr.dir, "src")
	for i := range 4 {
		writeFile(t, filepath.Join(src, fmt.Sprintf("f%d", i)), bytes.Repeat([]byte{byte('a' + i)}, 200_000))
		writeFile(t, filepath.Join(src, "shared"), []byte(fmt.Sprint("version ", i)))
		tr.mustRun("create", src)
	}
	tr.mustRun("forget", "--keep-last", "1")
	before := map[string]bool{}
	entries, err := os.ReadDir(filepath.Join(tr.repo, "index"))
	must(t, err)
	for _, e := range entries {
		before[e.Name()] = true
	}
	res := tr.mustRun("prune", "--instant", "--max-unused", "0", "--json")
	var st struct {
		SegmentsWritten int `json:"segments_written"`
	}
	must(t, json.Unmarshal(lastJSONLine(res.stdout), &st))
	entries, err = os.ReadDir(filepath.Join(tr.repo, "index"))
	must(t, err)
	added := 0
	for _, e := range entries {
		if !before[e.Name()] {
			added++
		}
	}
	if st.SegmentsWritten != added || added == 0 {
		t.Errorf("prune says %d segments written; index/ has %d new files\n%s", st.SegmentsWritten, added, res.stdout)
	}
}

// TestPruneInstantRefusesADelay: --instant with a --delete-delay is a
// contradiction, refused (it was taken without a word).
func TestPruneInstantRefusesADelay(t *testing.T) {
	t.Parallel()
	tr := newTestRepo(t)
	if res := tr.run("prune", "--instant", "--delete-delay", "1h"); res.code != exitUsage || !strings.Contains(res.stderr, "--instant deletes unused packs at once") {
		t.Errorf("prune --instant --delete-delay 1h: exit %d\n%s", res.code, res.stderr)
	}
	tr.mustRun("prune", "--instant", "--delete-delay", "0")
}

// TestUnlockSaysWhenALockNamesNoProcess: a lock of this host with pid 0
// (damaged or crafted) is not said to be held by a running process.
func TestUnlockSaysWhenALockNamesNoProcess(t *testing.T) {
	t.Parallel()
	tr := newTestRepo(t)
	host, _ := os.Hostname()
	tr.plantLock(repo.LockInfo{Time: time.Now(), Created: time.Now(), Host: host, PID: 0, Command: "create"})
	res := tr.run("unlock", "-n")
	if !strings.Contains(res.stdout+res.stderr, "it names no process (pid 0)") || strings.Contains(res.stdout+res.stderr, "its process is running") {
		t.Errorf("unlock -n of a lock with pid 0: exit %d\n%s%s", res.code, res.stdout, res.stderr)
	}
}

// TestDumpFileWithSlash: "FILE/" names a directory: dump refuses a file
// given so (it wrote the file).
func TestDumpFileWithSlash(t *testing.T) {
	t.Parallel()
	tr := newTestRepo(t)
	f := filepath.Join(tr.dir, "src", "f")
	writeFile(t, f, []byte("x"))
	tr.mustRun("create", filepath.Join(tr.dir, "src"))
	if res := tr.run("dump", "latest", f+"/"); res.code == 0 || !strings.Contains(res.stderr, "is a file, not a directory (the path ends in /)") {
		t.Errorf("dump FILE/: exit %d\n%s", res.code, res.stderr)
	}
	if res := tr.mustRun("dump", "latest", f); res.stdout != "x" {
		t.Errorf("dump FILE: %q", res.stdout)
	}
}
