package main

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestNoPlaintext backs up files with distinctive names and contents (small
// ones stored raw, compressible ones compressed) and searches every byte of
// every file in the repository for them, for the paths, tags, host and the
// password.
func TestNoPlaintext(t *testing.T) {
	t.Parallel()
	tr := newTestRepo(t)
	src := filepath.Join(tr.dir, "marmalade-src-dir")
	secrets := []string{
		"zebra-unicorn-filename-q7x",
		"platypus-directory-k2v",
		"narwhal-link-target-m9z",
		"quokka-small-content-w3j",
		"axolotl-compressible-content-p5r",
		"ocelot-tag-h4n",
		"pangolin-host-c8d",
		"marmalade-src-dir",
		"test-password",
	}
	writeFile(t, filepath.Join(src, "zebra-unicorn-filename-q7x.txt"), []byte("quokka-small-content-w3j"))
	writeFile(t, filepath.Join(src, "platypus-directory-k2v", "data"), bytes.Repeat([]byte("axolotl-compressible-content-p5r\n"), 20000))
	must(t, os.Symlink("narwhal-link-target-m9z", filepath.Join(src, "link")))
	tr.create("--tag", "ocelot-tag-h4n", "--host", "pangolin-host-c8d", src)
	// Another run, a restore and a listing add locks, index and cache use.
	tr.create("--tag", "ocelot-tag-h4n", "--host", "pangolin-host-c8d", src)
	tr.mustRun("restore", "latest", "--target", filepath.Join(tr.dir, "out"))
	tr.mustRun("list")

	// scan returns every (file, secret) hit below dir and the file count.
	scan := func(dir string) (hits []string, files int) {
		must(t, filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			for _, s := range secrets {
				if strings.Contains(strings.TrimPrefix(p, dir), s) {
					hits = append(hits, p+": name contains "+s)
				}
			}
			if !d.Type().IsRegular() {
				return nil
			}
			files++
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			for _, s := range append(secrets, src, tr.dir) {
				// Also look for the first half, in case of a split.
				if bytes.Contains(b, []byte(s)) || bytes.Contains(b, []byte(s[:len(s)/2+4])) {
					hits = append(hits, p+": contains "+s)
				}
			}
			return nil
		}))
		return hits, files
	}
	hits, files := scan(tr.repo)
	for _, h := range hits {
		t.Errorf("plain text in the repository: %s", h)
	}
	if files < 5 {
		t.Fatalf("only %d files in the repository", files)
	}
	// Control: the same scan finds the secrets in the restored copy.
	if hits, _ := scan(filepath.Join(tr.dir, "out")); len(hits) < 5 {
		t.Fatalf("the scan finds only %d hits in the restored tree: %v", len(hits), hits)
	}
}
