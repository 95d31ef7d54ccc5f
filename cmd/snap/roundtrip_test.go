package main

import (
	"archive/tar"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestRoundTrip backs up a generated tree with every kind of entry and
// checks that restore, restore of a subpath, --include/--exclude, ls and
// dump give back exactly what was saved: bytes, types, modes, owners,
// nanosecond times, xattrs, hard links (as links), sparseness.
func TestRoundTrip(t *testing.T) {
	t.Parallel()
	tr := newTestRepo(t)
	src := filepath.Join(tr.dir, "src")
	genTree(t, src)
	want := describe(t, src)
	files := 0
	for _, e := range want {
		if e.Type == "file" {
			files++
		}
	}

	sum := tr.create(src)
	if sum.Files != int64(files) || sum.Errors != 0 {
		t.Errorf("summary: %d files, %d errors; want %d files, 0 errors", sum.Files, sum.Errors, files)
	}
	// Backing up changed nothing in the source.
	compareEntries(t, "source after create", want, describe(t, src))

	t.Run("full", func(t *testing.T) {
		target := filepath.Join(tr.dir, "full")
		tr.mustRun("restore", "latest", "--target", target)
		got := describe(t, filepath.Join(target, src))
		compareEntries(t, "restore", want, got)
		// Sparse stays sparse: 32 MiB with 12 KiB of data may take at most
		// three chunks' worth of blocks, not 32 MiB.
		if b := entryBlocks(t, filepath.Join(target, src, "sparse")) * 512; b > 3*chunkMin+64<<10 {
			t.Errorf("restored sparse file allocates %d bytes", b)
		}
		// Restoring again over the restored tree gives the same result.
		tr.mustRun("restore", "latest", "--target", target)
		compareEntries(t, "second restore into the same target", want, describe(t, filepath.Join(target, src)))
	})

	t.Run("no-sparse", func(t *testing.T) {
		// --no-sparse allocates every byte (a swap file), the same bytes.
		// Over a restore made without it, with if-changed: the file is
		// written anew, not kept with its holes.
		target := filepath.Join(tr.dir, "dense")
		tr.mustRun("restore", "latest:"+filepath.Join(src, "sparse"), "--target", target)
		tr.mustRun("restore", "latest:"+filepath.Join(src, "sparse"), "--target", target, "--no-sparse", "--overwrite", "if-changed")
		p := filepath.Join(target, "sparse")
		fi, err := os.Stat(p)
		must(t, err)
		if b := entryBlocks(t, p) * 512; b < fi.Size() {
			t.Errorf("restored with --no-sparse, the %d-byte file allocates %d bytes", fi.Size(), b)
		}
		if got := describe(t, target)["sparse"]; !got.same(want["sparse"]) {
			t.Errorf("--no-sparse restored %+v, want %+v", got, want["sparse"])
		}
	})

	t.Run("subpath", func(t *testing.T) {
		for _, sub := range []string{"sub", nameInvalid, "nested-empty"} {
			target := filepath.Join(tr.dir, "subpath-"+base64.RawURLEncoding.EncodeToString([]byte(sub)))
			tr.mustRun("restore", "latest:"+filepath.Join(src, sub), "--target", target)
			w, g := describe(t, filepath.Join(src, sub)), describe(t, target)
			delete(w, ".") // the target directory keeps its own metadata
			delete(g, ".")
			compareEntries(t, "restore of "+sub, w, g)
		}
		// A single file lands under its own name.
		target := filepath.Join(tr.dir, "single")
		tr.mustRun("restore", "latest:"+filepath.Join(src, "chunk-max"), "--target", target)
		if got := describe(t, target)["chunk-max"]; !got.same(want["chunk-max"]) {
			t.Errorf("single file: %+v, want %+v", got, want["chunk-max"])
		}
		// A path that does not exist is a clear error, naming the
		// snapshot that 'latest' chose.
		res := tr.run("restore", "latest:"+filepath.Join(src, "nope"), "--target", target)
		if line := oneLine(t, res); res.code != exitFatal || !strings.Contains(line, "does not exist") || !strings.Contains(line, "snapshot ") || !strings.Contains(line, " of 20") {
			t.Errorf("missing subpath: exit %d, %q", res.code, res.stderr)
		}
		if res := tr.run("ls", "latest", filepath.Join(src, "nope")); res.code != exitFatal || !strings.Contains(res.stderr, ": path "+filepath.Join(src, "nope")+" does not exist") || !strings.Contains(res.stderr, "snap: snapshot ") {
			t.Errorf("ls of a missing path: exit %d, %q", res.code, res.stderr)
		}
	})

	t.Run("include-exclude", func(t *testing.T) {
		target := filepath.Join(tr.dir, "include")
		tr.mustRun("restore", "latest", "--target", target, "--include", "*.txt")
		var gotFiles []string
		for p, e := range describe(t, filepath.Join(target, src)) {
			if e.Type != "dir" {
				gotFiles = append(gotFiles, p)
			}
			// The directories leading to what was included were made for
			// the restore: they get their recorded metadata too.
			if !e.same(want[p]) {
				t.Errorf("include: %q differs: %+v, want %+v", p, e, want[p])
			}
		}
		sort.Strings(gotFiles)
		wantFiles := []string{"sub/deeper/file.txt", "text.txt", nameUnicode}
		sort.Strings(wantFiles)
		if strings.Join(gotFiles, ",") != strings.Join(wantFiles, ",") {
			t.Errorf("--include '*.txt' restored %q, want %q", gotFiles, wantFiles)
		}

		target = filepath.Join(tr.dir, "exclude")
		tr.mustRun("restore", "latest", "--target", target, "--exclude", "sub", "--exclude", "*.bin", "--exclude", "chunk-*")
		w := map[string]entry{}
		for p, e := range want {
			if p != "sub" && !strings.HasPrefix(p, "sub/") && !strings.HasPrefix(p, "chunk-") {
				w[p] = e
			}
		}
		compareEntries(t, "restore with excludes", w, describe(t, filepath.Join(target, src)))
	})

	t.Run("ls", func(t *testing.T) {
		res := tr.mustRun("ls", "latest", src)
		var wantLines []string
		for p := range want {
			if p != "." {
				wantLines = append(wantLines, filepath.Join(src, p))
			}
		}
		sort.Strings(wantLines)
		gotLines := strings.Split(strings.TrimSpace(res.stdout), "\n")
		sort.Strings(gotLines)
		if strings.Join(gotLines, "\n") != strings.Join(wantLines, "\n") {
			t.Errorf("ls lists\n%q\nwant\n%q", gotLines, wantLines)
		}

		res = tr.mustRun("ls", "--no-recursive", "latest", filepath.Join(src, "sub"))
		gotLines = strings.Split(strings.TrimSpace(res.stdout), "\n")
		sort.Strings(gotLines)
		if want := []string{"deeper", "file.bin", "hl-b", "link-up"}; len(gotLines) != len(want) || !strings.HasSuffix(gotLines[0], "/sub/deeper") {
			t.Errorf("ls --no-recursive sub: %q", gotLines)
		}

		res = tr.mustRun("ls", "-l", "latest", src)
		for _, frag := range []string{"-rwsr-xr-x ", "link-rel -> sub/deeper/file.txt", "drwxrwsr-x ", "drwxrwxrwt ", " 1234 ", " 5678 ", "crw------- ", "brw------- ", " 1, 3 ", " 7, 200 ", "prw-r----- ", "---------- ", "lrwxrwxrwx "} {
			if !strings.Contains(res.stdout, frag) {
				t.Errorf("ls -l lacks %q:\n%s", frag, res.stdout)
			}
		}

		res = tr.mustRun("ls", "--json", "latest", src)
		var doc struct {
			Nodes []nodeJSON `json:"nodes"`
		}
		must(t, json.Unmarshal([]byte(res.stdout), &doc))
		if len(doc.Nodes) != len(want)-1 {
			t.Errorf("ls --json: %d nodes, want %d", len(doc.Nodes), len(want)-1)
		}
		found := false
		for _, n := range doc.Nodes {
			if n.PathBase64 != "" {
				raw, err := base64.StdEncoding.DecodeString(n.PathBase64)
				must(t, err)
				if string(raw) == filepath.Join(src, nameInvalid, "inner") {
					found = true
				}
			}
			if n.Name == "chunk-max" && (n.Size != chunkMax || n.Type != "file" || n.Mode != "-rw-r--r--") {
				t.Errorf("ls --json chunk-max: %+v", n)
			}
		}
		if !found {
			t.Errorf("ls --json has no path_base64 for %q", nameInvalid+"/inner")
		}
	})

	t.Run("dump", func(t *testing.T) {
		for _, name := range []string{"chunk-max", "chunk-max-plus-one", "one", "empty", nameInvalid + "/inner", nameUnicode, "sparse"} {
			res := tr.mustRun("dump", "latest", filepath.Join(src, name))
			wantBytes, err := os.ReadFile(filepath.Join(src, name))
			must(t, err)
			if !bytes.Equal([]byte(res.stdout), wantBytes) {
				t.Errorf("dump %q: %d bytes differ from the original %d", name, len(res.stdout), len(wantBytes))
			}
		}
		// A directory comes out as a tar archive.
		res := tr.mustRun("dump", "latest", filepath.Join(src, "sub"))
		tarRd := tar.NewReader(strings.NewReader(res.stdout))
		seen := map[string]bool{}
		for {
			hdr, err := tarRd.Next()
			if err == io.EOF {
				break
			}
			must(t, err)
			seen[hdr.Name] = true
			if hdr.Typeflag == tar.TypeReg {
				b, err := io.ReadAll(tarRd)
				must(t, err)
				orig, err := os.ReadFile(filepath.Join(src, "sub", hdr.Name))
				must(t, err)
				if !bytes.Equal(b, orig) {
					t.Errorf("tar member %s differs", hdr.Name)
				}
			}
		}
		for _, n := range []string{"deeper/", "deeper/file.txt", "file.bin", "hl-b", "link-up"} {
			if !seen[n] {
				t.Errorf("tar of sub lacks %s (has %v)", n, seen)
			}
		}
		// The whole tree as tar, unpacked by GNU tar, is the tree: every
		// kind of entry but the socket (which tar cannot hold, and dump
		// names), hard links as one inode, extended attributes.
		res = tr.mustRun("dump", "latest", src)
		if !strings.Contains(res.stderr, "socket") {
			t.Errorf("dump of the tree does not name the socket it leaves out:\n%s", res.stderr)
		}
		untar := filepath.Join(tr.dir, "untar")
		must(t, os.MkdirAll(untar, 0o755))
		cmd := exec.Command("tar", "--xattrs", "--xattrs-include=*", "-xpf", "-", "-C", untar)
		cmd.Stdin = strings.NewReader(res.stdout)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("tar -x: %v\n%s", err, out)
		}
		wantTar := describe(t, src)
		delete(wantTar, ".")
		delete(wantTar, "socket")
		gotTar := describe(t, untar)
		delete(gotTar, ".")
		compareEntries(t, "dump as tar, unpacked", wantTar, gotTar)
		// Dumping what is not a file or directory is a clear error.
		res = tr.run("dump", "latest", filepath.Join(src, "fifo"))
		if res.code != exitFatal || !strings.Contains(oneLine(t, res), "fifo") {
			t.Errorf("dump of a FIFO: exit %d, %q", res.code, res.stderr)
		}
	})
}

// TestRestoreReportsLostXattrs: a restore onto a file system without
// extended attributes (ramfs) says which attributes it could not set and
// exits 1; they were dropped silently before.
func TestRestoreReportsLostXattrs(t *testing.T) {
	tr := newTestRepo(t)
	src := filepath.Join(tr.dir, "src")
	writeFile(t, filepath.Join(src, "f"), []byte("x"))
	must(t, unix.Setxattr(filepath.Join(src, "f"), "user.comment", []byte("hello"), 0))
	tr.mustRun("create", src)
	mnt := filepath.Join(tr.dir, "ramfs")
	must(t, os.MkdirAll(mnt, 0o755))
	if err := unix.Mount("ramfs", mnt, "ramfs", 0, ""); err != nil {
		t.Skipf("cannot mount a ramfs here (%v): nothing to restore onto without xattrs", err)
	}
	t.Cleanup(func() { _ = unix.Unmount(mnt, unix.MNT_DETACH) })
	res := tr.run("restore", "latest", "--target", filepath.Join(mnt, "r"))
	if res.code != 1 || !strings.Contains(res.stderr, "xattr user.comment") {
		t.Errorf("restore onto ramfs: exit %d\n%s", res.code, res.stderr)
	}
	if got, err := os.ReadFile(filepath.Join(mnt, "r", src, "f")); err != nil || string(got) != "x" {
		t.Errorf("the file itself: %q, %v", got, err)
	}
}

// TestLsJSONLinkTargetBase64: a symlink's target that is not valid UTF-8
// comes in ls --json and find --json as link_target_base64 too, which
// link_target (a JSON string) cannot carry (found by an exploratory test).
func TestLsJSONLinkTargetBase64(t *testing.T) {
	tr := newTestRepo(t)
	src := filepath.Join(tr.dir, "src")
	must(t, os.MkdirAll(src, 0o755))
	must(t, os.Symlink("caf\xe9", filepath.Join(src, "l")))
	tr.mustRun("create", src)
	for _, args := range [][]string{{"ls", "--json", "latest", src}, {"find", "--json", "l"}} {
		res := tr.mustRun(args...)
		want := `"link_target_base64": "` + base64.StdEncoding.EncodeToString([]byte("caf\xe9")) + `"`
		if !strings.Contains(res.stdout, want) {
			t.Errorf("%v: no %s in\n%s", args, want, res.stdout)
		}
	}
}

// TestLsShowsLinksDevicesAndXattrs: ls --json gives a file's link count, a
// device's number and the names of extended attributes, and ls -l marks
// an ACL with "+", as ls -l does: they showed less than a restore brings
// back.
func TestLsShowsLinksDevicesAndXattrs(t *testing.T) {
	tr := newTestRepo(t)
	src := filepath.Join(tr.dir, "src")
	writeFile(t, filepath.Join(src, "f"), []byte("x"))
	must(t, os.Link(filepath.Join(src, "f"), filepath.Join(src, "g")))
	// An access ACL (user::rw-, user:65534:r--, group::r--, mask::r--,
	// other::r--), as setfacl writes it: one the mode alone could say
	// the kernel would not store.
	acl := []byte{2, 0, 0, 0,
		1, 0, 6, 0, 0xff, 0xff, 0xff, 0xff,
		2, 0, 4, 0, 0xfe, 0xff, 0, 0,
		4, 0, 4, 0, 0xff, 0xff, 0xff, 0xff,
		0x10, 0, 4, 0, 0xff, 0xff, 0xff, 0xff,
		0x20, 0, 4, 0, 0xff, 0xff, 0xff, 0xff}
	if err := unix.Setxattr(filepath.Join(src, "f"), "system.posix_acl_access", acl, 0); err != nil {
		t.Skipf("no ACLs here: %v", err)
	}
	if err := unix.Mknod(filepath.Join(src, "null"), unix.S_IFCHR|0o600, int(unix.Mkdev(1, 3))); err != nil {
		t.Skipf("mknod needs root: %v", err)
	}
	tr.mustRun("create", src)
	var doc struct {
		Nodes []nodeJSON `json:"nodes"`
	}
	must(t, json.Unmarshal([]byte(tr.mustRun("ls", "--json", "latest", src).stdout), &doc))
	got := map[string]nodeJSON{}
	for _, n := range doc.Nodes {
		got[n.Name] = n
	}
	if f := got["f"]; f.Links != 2 || !slices.Contains(f.Xattrs, "system.posix_acl_access") {
		t.Errorf("f: links %d, xattrs %v", f.Links, f.Xattrs)
	}
	if d := got["null"]; d.Type != "chardev" || d.DeviceMajor == nil || *d.DeviceMajor != 1 || d.DeviceMinor == nil || *d.DeviceMinor != 3 {
		t.Errorf("null: %+v", d)
	}
	if out := tr.mustRun("ls", "-l", "latest", src).stdout; !strings.Contains(out, "-rw-r--r--+ ") {
		t.Errorf("ls -l does not mark the ACL:\n%s", out)
	}
}
