package sources

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestReadPatternFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "ex")
	if err := os.WriteFile(p, []byte("# comment\n\n  *.tmp  \r\n/srv/cache\n\t# indented comment\nnode_modules"), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := ReadPatternFile(p)
	if err != nil || !slices.Equal(got, []string{"*.tmp", "/srv/cache", "node_modules"}) {
		t.Errorf("ReadPatternFile = %q, %v", got, err)
	}
	// A byte order mark and '$' taken as they are.
	if err := os.WriteFile(p, []byte("\xef\xbb\xbf*.tmp\n$RECYCLE.BIN\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, err := ReadPatternFile(p); err != nil || !slices.Equal(got, []string{"*.tmp", "$RECYCLE.BIN"}) {
		t.Errorf("BOM and $: %q, %v", got, err)
	}
	// Syntaxes snap does not read are refused with their line.
	for _, line := range []string{"!important.log", "re:\\.tmp$", "sh:**/cache", "- *.txt", "+ /home/keep"} {
		if err := os.WriteFile(p, []byte("*.tmp\n"+line+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := ReadPatternFile(p); err == nil || !strings.Contains(err.Error(), p+":2") {
			t.Errorf("%q: %v", line, err)
		}
	}
	if err := os.WriteFile(p, []byte("ok\n\n[bad\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadPatternFile(p); err == nil || !strings.Contains(err.Error(), p+":3") {
		t.Errorf("a bad glob on line 3: %v", err)
	}
}

func TestTagFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	names := []string{CacheDirTag, "a", ".nobackup"}
	write(CacheDirTag, CacheDirSignature+"\n")
	write(".nobackup", "")
	if got := TagFiles(dir, names, nil, false); got != nil {
		t.Errorf("no options: %q", got)
	}
	if got := TagFiles(dir, names, nil, true); !slices.Equal(got, []string{CacheDirTag}) {
		t.Errorf("caches: %q", got)
	}
	if got := TagFiles(dir, names, []string{".nobackup"}, true); !slices.Equal(got, []string{CacheDirTag, ".nobackup"}) {
		t.Errorf("caches and .nobackup: %q", got)
	}
	// Without the signature, or as a symlink to a file with it, the name alone tags nothing.
	write(CacheDirTag, "Signature: wrong")
	if got := TagFiles(dir, names, nil, true); got != nil {
		t.Errorf("CACHEDIR.TAG without the signature: %q", got)
	}
	write("real", CacheDirSignature)
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.Remove(filepath.Join(dir, CacheDirTag)))
	must(os.Symlink("real", filepath.Join(dir, CacheDirTag)))
	if got := TagFiles(dir, names, nil, true); got != nil {
		t.Errorf("CACHEDIR.TAG as a symlink: %q", got)
	}
}

// TestPatternDotComponents: a "." or ".." component can never match a
// cleaned path; such a glob is refused with the one meant, where it was
// taken and matched nothing (found by an exploratory test).
func TestPatternDotComponents(t *testing.T) {
	for _, c := range []struct{ glob, want string }{
		{"./ex/src", `pattern "./ex/src": a "." component matches nothing, as paths are matched cleaned and absolute: write "ex/src" (any depth) or the absolute path`},
		{"/srv/../etc", `pattern "/srv/../etc": a ".." component matches nothing, as paths are matched cleaned and absolute: write "/etc"`},
		{"/srv/./app", `write "/srv/app"`},
		{"../x/y", `write "x/y"`},
	} {
		if _, err := ParsePattern(c.glob); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("ParsePattern(%q) = %v, want %q", c.glob, err, c.want)
		}
	}
	for _, ok := range []string{".cache", "*.tmp", "/srv/.git", "a/..b"} {
		if _, err := ParsePattern(ok); err != nil {
			t.Errorf("ParsePattern(%q): %v", ok, err)
		}
	}
}
