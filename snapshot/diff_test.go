package snapshot

import (
	"context"
	"strings"
	"testing"

	"github.com/snap-backup/snap/repo"
	"github.com/snap-backup/snap/sources"
)

func dirNode(name string, subtree repo.ID) Node {
	return Node{Meta: sources.Meta{Name: name, Type: sources.TypeDir, Mode: 0o755}, Subtree: subtree}
}

func TestDiff(t *testing.T) {
	h := newHostileRepo(t)
	data := func(s string) repo.ID { return h.blob(repo.DataBlob, []byte(s)) }
	sized := func(n Node, size uint64) Node { n.Size = size; return n }
	// A subtree that is not in the repository at all: identical on both
	// sides, so Diff must skip it without trying to read it.
	var absent repo.ID
	absent[0] = 0xab
	link := func(target string) Node {
		return Node{Meta: sources.Meta{Name: "link", Type: sources.TypeSymlink, Mode: 0o777, LinkTarget: target}}
	}
	touched := sized(fileNode("touched", data("same")), 4)
	touched.MTime = 1
	// A hard link replaced by a copy with the same bytes and times (cp
	// --preserve): a restore makes two files of what was one, so it is a
	// change of metadata. A directory's link count moves with its
	// subdirectories and is not compared.
	linked := sized(fileNode("linked", data("same")), 4)
	linked.Links = 2
	copied := linked
	copied.Links = 1
	subdirs := dirNode("subdirs", absent)
	subdirs.Links = 3
	moreSubdirs := subdirs
	moreSubdirs.Links = 4
	a := h.tree(
		sized(fileNode("edit", data("old")), 3),
		sized(fileNode("gone", data("bye")), 3),
		dirNode("kept", absent),
		sized(fileNode("kind", data("file")), 4),
		link("/old"),
		linked,
		subdirs,
		sized(fileNode("touched", data("same")), 4),
	)
	newDir := h.tree(sized(fileNode("inner", data("12345")), 5))
	touched.MTime = 2
	b := h.tree(
		sized(fileNode("edit", data("new!")), 4),
		dirNode("kept", absent),
		dirNode("kind", newDir),
		link("/new"),
		copied,
		dirNode("new", newDir),
		moreSubdirs,
		touched,
	)
	var got []string
	err := Diff(context.Background(), h.ix, a, b, func(c Change) error {
		got = append(got, c.Kind.String()+" "+c.Path)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"M /edit", "- /gone", "T /kind", "+ /kind/inner", "M /link", "U /linked", "+ /new", "+ /new/inner", "U /touched"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("changes:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// The same root: nothing at all is read.
	if err := Diff(context.Background(), h.ix, absent, absent, func(Change) error { t.Error("change reported"); return nil }); err != nil {
		t.Error(err)
	}
}
