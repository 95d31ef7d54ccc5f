package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestTag: tags are added, removed and set on existing snapshots; each
// change stores the snapshot again under a new ID with the same tree and
// removes the old document; a snapshot tagged keep survives a forget that
// keeps only the last one with --keep-tag keep, and restores.
func TestTag(t *testing.T) {
	t.Parallel()
	tr := newTestRepo(t)
	src := filepath.Join(tr.dir, "src")
	writeFile(t, filepath.Join(src, "f"), []byte("before the upgrade"))
	tr.mustRun("create", src, "--tag", "nightly")
	writeFile(t, filepath.Join(src, "f"), []byte("after"))
	tr.mustRun("create", src, "--tag", "nightly")
	sns := tr.listJSON()
	first := sns[0]
	// --remove takes a tag that snap took before its rule (a space in
	// it), so that such a tag can go; --add does not.
	if res := tr.run("tag", "--remove", "old tag", first.ID[:8]); res.code != 0 {
		t.Errorf("tag --remove 'old tag': exit %d: %s", res.code, res.stderr)
	}
	if res := tr.run("tag", "--add", "old tag", first.ID[:8]); res.code != exitUsage {
		t.Errorf("tag --add 'old tag': exit %d: %s", res.code, res.stderr)
	}
	sns = tr.listJSON()
	first = sns[0]

	// A dry run shows the change and makes none.
	dry := tr.mustRun("tag", "--add", "keep,upgrade", "--dry-run", first.ID[:8])
	if !strings.Contains(dry.stdout, "would get tags nightly, keep, upgrade") || tr.listJSON()[0].ID != first.ID {
		t.Errorf("tag --dry-run: %s", dry.stdout)
	}
	dry = tr.mustRun("tag", "--add", "keep", "-n", "--json", first.ID[:8])
	if !strings.Contains(dry.stdout, `"dry_run": true`) || strings.Contains(dry.stdout, "new_id") {
		t.Errorf("tag --dry-run --json: %s", dry.stdout)
	}
	res := tr.mustRun("tag", "--add", "keep,upgrade", "--json", first.ID[:8])
	var out struct {
		Changed []struct {
			OldID string `json:"old_id"`
			NewID string `json:"new_id"`
			Tags  []string
		}
		Unchanged []string
	}
	if err := json.Unmarshal([]byte(res.stdout), &out); err != nil || len(out.Changed) != 1 || out.Changed[0].OldID != first.ID {
		t.Fatalf("tag --json: %v\n%s", err, res.stdout)
	}
	if want := []string{"nightly", "keep", "upgrade"}; !slices.Equal(out.Changed[0].Tags, want) {
		t.Errorf("tags %q, want %q", out.Changed[0].Tags, want)
	}
	after := tr.listJSON()
	if len(after) != 2 {
		t.Fatalf("%d snapshots after tag, want 2", len(after))
	}
	tagged := after[0]
	if tagged.ID != out.Changed[0].NewID || tagged.Tree != first.Tree || !tagged.Time.Equal(first.Time) || tagged.Original == nil || tagged.Original.String() != first.ID {
		t.Errorf("re-tagged snapshot: %+v (was %+v)", tagged, first)
	}
	// The second snapshot's parent was re-tagged: diff still finds it.
	if res := tr.run("diff", sns[1].ID[:8]); res.code != 0 || !strings.Contains(res.stdout, tagged.ID[:8]) {
		t.Errorf("diff of the child of a re-tagged snapshot: exit %d\n%s%s", res.code, res.stdout, res.stderr)
	}
	// The same tags in another order: unchanged.
	if res := tr.mustRun("tag", "--set", "upgrade,keep,nightly", tagged.ID[:8]); !strings.Contains(res.stdout, "unchanged") {
		t.Errorf("--set of the same tags in another order: %s", res.stdout)
	}
	// Nothing to change: reported, not stored again.
	res = tr.mustRun("tag", "--add", "keep", tagged.ID[:8])
	if !strings.Contains(res.stdout, "unchanged") || tr.listJSON()[0].ID != tagged.ID {
		t.Errorf("a tag it has already: %s", res.stdout)
	}
	// --keep-tag keeps it through a forget of all but the last.
	tr.mustRun("forget", "--keep-last", "1", "--keep-tag", "keep")
	if got := tr.listJSON(); len(got) != 2 {
		t.Errorf("forget --keep-last 1 --keep-tag keep left %d snapshots, want 2", len(got))
	}
	out2 := tr.mustRun("dump", tagged.ID[:8], filepath.Join(src, "f"))
	if out2.stdout != "before the upgrade" {
		t.Errorf("dump of the re-tagged snapshot: %q", out2.stdout)
	}
	// --set replaces, --remove takes away; --set '' clears.
	tr.mustRun("tag", "--set", "a,b", "--remove", "b", tagged.ID[:8])
	if got := tr.listJSON()[0].Tags; !slices.Equal(got, []string{"a"}) {
		t.Errorf("after --set a,b --remove b: %q", got)
	}
	id := tr.listJSON()[0].ID
	tr.mustRun("tag", "--set", "", id[:8])
	if got := tr.listJSON()[0].Tags; len(got) != 0 {
		t.Errorf("after --set '': %q", got)
	}
	tr.mustRun("check")
	// Bad input exits 2.
	for _, args := range [][]string{{"tag", "latest"}, {"tag", "--add", "x"}, {"tag", "--add", "a b", "latest"}, {"tag", "--remove", ",", "latest"}} {
		if res := tr.run(args...); res.code != exitUsage {
			t.Errorf("%v: exit %d, %s", args, res.code, res.stderr)
		}
	}
}

// TestTagByFilter: without SNAPSHOT, tag changes every snapshot the
// filters select (as restic's does; it refused); without a filter it
// still refuses, and a filter that selects none changes nothing (exit 1).
// An ID a retag replaced names the snapshot that holds its data now.
func TestTagByFilter(t *testing.T) {
	t.Parallel()
	tr := newTestRepo(t)
	src := filepath.Join(tr.dir, "src")
	writeFile(t, filepath.Join(src, "f"), []byte("x"))
	for _, host := range []string{"web1", "web2", "web2"} {
		tr.mustRun("create", "--host", host, src)
	}
	old := tr.listJSON()[1].ID
	tr.mustRun("tag", "--add", "frontend", "--host", "web2")
	var tagged []string
	for _, sn := range tr.listJSON() {
		if slices.Contains(sn.Tags, "frontend") {
			tagged = append(tagged, sn.Host)
		}
	}
	if !slices.Equal(tagged, []string{"web2", "web2"}) {
		t.Errorf("tagged: %v, want web2's two", tagged)
	}
	if res := tr.run("tag", "--add", "x"); res.code != exitUsage || !strings.Contains(res.stderr, "or --host, --tag or --path to select them") {
		t.Errorf("tag without snapshots or filters: exit %d: %s", res.code, res.stderr)
	}
	if res := tr.run("tag", "--add", "x", "--host", "nope"); res.code != exitFatal || !strings.Contains(res.stderr, `no snapshot has host "nope"`) {
		t.Errorf("tag --host nope: exit %d: %s", res.code, res.stderr)
	}
	// forget too (it said only "no snapshot with ID"; found by an
	// exploratory test).
	for _, args := range [][]string{{"ls", old[:8]}, {"forget", old[:8]}, {"forget", old}} {
		if res := tr.run(args...); res.code != exitFatal || !strings.Contains(res.stderr, "holds its data now (stored anew by 'snap tag'") {
			t.Errorf("%v of a retagged snapshot's old ID: exit %d: %s", args, res.code, res.stderr)
		}
	}
}

// TestTagFinishesStoppedTag: a tag killed between storing the snapshot
// with its new tags and removing the old document leaves both; the same
// tag run again removes the old one and stores no third copy (it did;
// found by an exploratory test).
func TestTagFinishesStoppedTag(t *testing.T) {
	t.Parallel()
	tr := newTestRepo(t)
	src := filepath.Join(tr.dir, "src")
	writeFile(t, filepath.Join(src, "f"), []byte("x"))
	old := tr.createID(src)
	doc := filepath.Join(tr.repo, "snapshots", old)
	b, err := os.ReadFile(doc)
	must(t, err)
	tr.mustRun("tag", "--add", "keep", old[:8])
	must(t, os.WriteFile(doc, b, 0o600)) // as if killed before the removal
	if n := tr.snapshotCount(); n != 2 {
		t.Fatalf("%d snapshots after the stopped tag, want 2", n)
	}
	tr.mustRun("tag", "--add", "keep", old[:8])
	sns := tr.listJSON()
	if len(sns) != 1 || !slices.Equal(sns[0].Tags, []string{"keep"}) {
		t.Errorf("after the tag run again: %+v", sns)
	}
}

// TestTagFilterBothNamed: --tag a,b asks for snapshots with both tags;
// when each is on some snapshot but none has both, the warning says so
// (it said no snapshot has tag "a,b", then listed a and b as present;
// found by an exploratory test).
func TestTagFilterBothNamed(t *testing.T) {
	tr := newTestRepo(t)
	src := filepath.Join(tr.dir, "src")
	writeFile(t, filepath.Join(src, "f"), []byte("x"))
	tr.mustRun("create", "--tag", "nightly", src)
	tr.mustRun("create", "--tag", "manual", src)
	res := tr.mustRun("list", "--tag", "nightly,manual")
	if !strings.Contains(res.stderr, "no snapshot has all the tags nightly and manual (tags: manual, nightly)") {
		t.Errorf("list --tag nightly,manual: %s", res.stderr)
	}
}
