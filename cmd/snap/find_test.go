package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestFind: find lists, per snapshot, the entries a pattern matches (a
// name at any depth, an anchored path with '*' and '**'), with their
// sizes, so that a file's versions can be told apart; --tag and --until
// choose the snapshots; a snapshot whose document cannot be read is named
// and makes the run exit 1 after the others were searched.
func TestFind(t *testing.T) {
	t.Parallel()
	tr := newTestRepo(t)
	src := filepath.Join(tr.dir, "src")
	conf := filepath.Join(src, "etc", "app", "app.conf")
	writeFile(t, conf, []byte("v1"))
	writeFile(t, filepath.Join(src, "var", "deep", "er", "app.conf"), []byte("other"))
	writeFile(t, filepath.Join(src, "var", "log.txt"), []byte("log"))
	tr.mustRun("create", src)
	writeFile(t, conf, []byte("version 2"))
	tr.mustRun("create", src, "--tag", "second")
	must(t, os.Remove(conf))
	tr.mustRun("create", src)

	type result struct {
		SnapshotsSearched int `json:"snapshots_searched"`
		Matches           []struct {
			Snapshot snapshotJSON
			Nodes    []nodeJSON
		}
	}
	find := func(args ...string) result {
		t.Helper()
		res := tr.mustRun(append([]string{"find", "--json"}, args...)...)
		var r result
		if err := json.Unmarshal([]byte(res.stdout), &r); err != nil {
			t.Fatalf("find --json %v: %v\n%s", args, err, res.stdout)
		}
		return r
	}
	sizes := func(r result, path string) []uint64 {
		var out []uint64
		for _, m := range r.Matches {
			for _, n := range m.Nodes {
				if n.Path == path {
					out = append(out, n.Size)
				}
			}
		}
		return out
	}

	r := find("app.conf")
	if r.SnapshotsSearched != 3 || len(r.Matches) != 3 {
		t.Fatalf("find app.conf: %d searched, %d with matches, want 3 and 3", r.SnapshotsSearched, len(r.Matches))
	}
	if got := sizes(r, conf); len(got) != 2 || got[0] != 2 || got[1] != 9 {
		t.Errorf("versions of %s: sizes %v, want [2 9] (the third snapshot has none)", conf, got)
	}
	if got := sizes(r, filepath.Join(src, "var", "deep", "er", "app.conf")); len(got) != 3 {
		t.Errorf("the deeper app.conf found in %d snapshots, want 3", len(got))
	}
	// Anchored, with '*' and '**'.
	if got := sizes(find(filepath.Join(src, "etc", "*", "*.conf")), conf); len(got) != 2 {
		t.Errorf("anchored glob: %v", got)
	}
	r = find(src + "/**/*.txt")
	if got := sizes(r, filepath.Join(src, "var", "log.txt")); len(got) != 3 || len(r.Matches[0].Nodes) != 1 {
		t.Errorf("'**' glob: %v, %+v", got, r.Matches)
	}
	// Snapshot filters.
	if r := find("--tag", "second", "app.conf"); r.SnapshotsSearched != 1 || len(sizes(r, conf)) != 1 || sizes(r, conf)[0] != 9 {
		t.Errorf("--tag second: %+v", r)
	}
	// A date given to --since means from the start of that day.
	if r := find("--since", time.Now().Format("2006-01-02"), "app.conf"); r.SnapshotsSearched != 3 {
		t.Errorf("--since today: %d snapshots searched, want 3", r.SnapshotsSearched)
	}
	if r := find("--until", "2000-01-01", "app.conf"); r.SnapshotsSearched != 0 || len(r.Matches) != 0 {
		t.Errorf("--until 2000-01-01: %+v", r)
	}
	// Text output: a header per snapshot, ls -l lines, a count.
	res := tr.mustRun("find", "log.txt")
	if strings.Count(res.stdout, "snapshot ") != 3 || strings.Count(res.stdout, "log.txt") != 3 || !strings.Contains(res.stdout, "3 entries in 3 of 3 snapshots") {
		t.Errorf("find text output:\n%s", res.stdout)
	}
	// Bad input.
	if res := tr.run("find"); res.code != exitUsage {
		t.Errorf("find without a pattern: exit %d", res.code)
	}
	if res := tr.run("find", "["); res.code != exitUsage || !strings.Contains(res.stderr, "pattern") {
		t.Errorf("find with a bad pattern: exit %d, %s", res.code, res.stderr)
	}
	if res := tr.run("find", "--since", "someday", "x"); res.code != exitUsage || !strings.Contains(res.stderr, "--since") {
		t.Errorf("find with a bad --since: exit %d, %s", res.code, res.stderr)
	}

	// An unreadable snapshot document: the others are searched, exit 1.
	tr.damageASnapshot()
	res = tr.runEnv([]string{"SNAP_CACHE_DIR=" + filepath.Join(tr.dir, "fresh-cache")}, nil, "find", "log.txt")
	if res.code != exitFatal || strings.Count(res.stdout, "log.txt") != 2 || !strings.Contains(res.stderr, "could not be searched") {
		t.Errorf("find with an unreadable snapshot: exit %d\n%s%s", res.code, res.stdout, res.stderr)
	}
}

// TestFindJSONStreamsAndStopsEarly: find --json writes one snapshot's
// matches as it finds them; a listing that cannot be read is passed over
// (the directories after it are searched: it stopped there, found by an
// exploratory test), the snapshot's element holds what was found and
// "error" says why, also when nothing matched, the other snapshots are
// searched, and the run exits 1.
func TestFindJSONStreamsAndStopsEarly(t *testing.T) {
	t.Parallel()
	tr := newTestRepo(t)
	src := filepath.Join(tr.dir, "src")
	for _, d := range []string{"a", "b", "c"} {
		writeFile(t, filepath.Join(src, d, "hit.txt"), []byte("in "+d))
	}
	tr.mustRun("create", src)
	writeFile(t, filepath.Join(src, "b", "more.txt"), []byte("b changed"))
	tr.mustRun("create", src)
	sns := tr.listJSON()
	tr.damageTreeAt(sns[1].Tree, filepath.Join(src, "b"))

	res := tr.runEnv([]string{"SNAP_CACHE_DIR=" + filepath.Join(tr.dir, "fresh-cache")}, nil, "find", "--json", "hit.txt")
	var r struct {
		SnapshotsSearched int `json:"snapshots_searched"`
		Matches           []struct {
			Snapshot snapshotJSON
			Nodes    []nodeJSON
			Error    string
		}
	}
	if err := json.Unmarshal([]byte(res.stdout), &r); err != nil {
		t.Fatalf("%v\n%s", err, res.stdout)
	}
	if res.code != exitFatal || r.SnapshotsSearched != 1 || len(r.Matches) != 2 || !strings.Contains(res.stderr, "could not be searched") {
		t.Fatalf("find over a damaged listing: exit %d, %+v\n%s%s", res.code, r, res.stdout, res.stderr)
	}
	first, second := r.Matches[0], r.Matches[1]
	if len(first.Nodes) != 3 || first.Error != "" {
		t.Errorf("the whole snapshot: %+v", first)
	}
	if second.Snapshot.ID != sns[1].ID || len(second.Nodes) != 2 || second.Nodes[0].Path != filepath.Join(src, "a", "hit.txt") ||
		second.Nodes[1].Path != filepath.Join(src, "c", "hit.txt") || !strings.Contains(second.Error, filepath.Join(src, "b")+": ") {
		t.Errorf("the damaged snapshot: %+v", second)
	}
	// No match at all: the damaged snapshot still has its element.
	res = tr.runEnv([]string{"SNAP_CACHE_DIR=" + filepath.Join(tr.dir, "fresh-cache")}, nil, "find", "--json", "nothing-is-called-this")
	r.Matches = nil
	if err := json.Unmarshal([]byte(res.stdout), &r); err != nil || res.code != exitFatal || len(r.Matches) != 1 || r.Matches[0].Error == "" || len(r.Matches[0].Nodes) != 0 {
		t.Errorf("find of nothing over a damaged listing: exit %d, %v, %+v\n%s", res.code, err, r, res.stdout)
	}
}
