package sources

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"
)

// Pattern is an exclude or include glob, matched against slash-separated
// paths:
//   - a pattern without '/' matches an entry whose name matches it, at any
//     depth ("*.tmp", "node_modules");
//   - a pattern starting with '/' is anchored at the root ("/srv/app/cache");
//   - any other pattern matches a trailing run of components ("cache/*.db");
//   - '*', '?' and '[...]' work as in path.Match within one component, and
//     a '**' component matches any number of components.
type Pattern struct {
	raw      string
	parts    []string
	anchored bool
}

// ParsePattern checks a glob's syntax.
func ParsePattern(s string) (Pattern, error) {
	if s == "" {
		return Pattern{}, fmt.Errorf("empty pattern")
	}
	p := Pattern{raw: s, anchored: strings.HasPrefix(s, "/")}
	for _, c := range strings.Split(strings.Trim(s, "/"), "/") {
		if c == "" {
			continue
		}
		if _, err := path.Match(c, ""); err != nil {
			return Pattern{}, fmt.Errorf("pattern %q: %w", s, err)
		}
		if c == "." || c == ".." {
			// Paths are matched cleaned: "./cache" matched nothing, and
			// the create saved what it was to leave out (found by an
			// exploratory test).
			meant := cleanedPattern(s)
			fix := fmt.Sprintf("write %q", meant)
			switch {
			case meant == "":
				fix = "give the name or the absolute path of what to leave out"
			case !strings.HasPrefix(s, "/"):
				fix += " (any depth) or the absolute path"
			}
			return Pattern{}, fmt.Errorf("pattern %q: a %q component matches nothing, as paths are matched cleaned and absolute: %s", s, c, fix)
		}
		p.parts = append(p.parts, c)
	}
	if len(p.parts) == 0 {
		return Pattern{}, fmt.Errorf("pattern %q matches nothing", s)
	}
	return p, nil
}

// cleanedPattern is s as it can match, for the advice: cleaned, and without
// the leading ".." that a path from the root never has ("/srv/../etc" is
// "/etc", "./cache" is "cache").
func cleanedPattern(s string) string {
	c := path.Clean(s)
	for {
		switch {
		case c == ".." || c == ".":
			return ""
		case strings.HasPrefix(c, "../"): // Clean keeps these; "/.." it drops
			c = c[3:]
		default:
			return c
		}
	}
}

// ParsePatterns parses several globs.
func ParsePatterns(ss []string) ([]Pattern, error) {
	out := make([]Pattern, 0, len(ss))
	for _, s := range ss {
		p, err := ParsePattern(s)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

func (p Pattern) String() string { return p.raw }

// Anchored reports whether the pattern starts at the root ("/etc/*.conf").
func (p Pattern) Anchored() bool { return p.anchored }

// Match reports whether the pattern matches the path p (absolute or
// relative, slash-separated).
func (p Pattern) Match(name string) bool {
	comps := splitPath(name)
	if p.anchored {
		return matchParts(p.parts, comps)
	}
	for i := range comps {
		if matchParts(p.parts, comps[i:]) {
			return true
		}
	}
	return false
}

// MatchPrefix reports whether some path below name could still match an
// anchored pattern: used by restore --include to decide whether to descend.
func (p Pattern) MatchPrefix(name string) bool {
	if !p.anchored {
		return true
	}
	comps := splitPath(name)
	return prefixParts(p.parts, comps)
}

func splitPath(name string) []string {
	var out []string
	for _, c := range strings.Split(name, "/") {
		if c != "" {
			out = append(out, c)
		}
	}
	return out
}

// matchParts matches pattern components against all of comps.
func matchParts(parts, comps []string) bool {
	for len(parts) > 0 {
		if parts[0] == "**" {
			for i := 0; i <= len(comps); i++ {
				if matchParts(parts[1:], comps[i:]) {
					return true
				}
			}
			return false
		}
		if len(comps) == 0 {
			return false
		}
		if ok, _ := path.Match(parts[0], comps[0]); !ok {
			return false
		}
		parts, comps = parts[1:], comps[1:]
	}
	return len(comps) == 0
}

// prefixParts reports whether comps could be the beginning of a match.
func prefixParts(parts, comps []string) bool {
	for len(comps) > 0 {
		if len(parts) == 0 {
			return false
		}
		if parts[0] == "**" {
			return true
		}
		if ok, _ := path.Match(parts[0], comps[0]); !ok {
			return false
		}
		parts, comps = parts[1:], comps[1:]
	}
	return true
}

// MatchAny reports whether any pattern matches name.
func MatchAny(ps []Pattern, name string) bool {
	for _, p := range ps {
		if p.Match(name) {
			return true
		}
	}
	return false
}

// ReadPatternFile reads exclude globs from a file, one per line: blank
// lines and lines starting with '#' are skipped, and so is the white space
// around each line (a Windows line end, a byte order mark). '$' is an
// ordinary character ('$RECYCLE.BIN' is a common name to exclude), so
// restic's $HOME in such files is not expanded. Lines
// in a syntax snap does not have are refused, naming the line, rather
// than taken as globs that would match nothing (or the wrong thing): a
// negation ('!important.log', restic), borg's style prefixes ('re:',
// 'sh:', 'fm:', 'pp:', 'pf:') and its patterns-file rules ('+ ', '- ',
// '! ', 'R ', 'P ').
func ReadPatternFile(name string) ([]string, error) {
	data, err := os.ReadFile(name)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			return nil, &PathError{Op: pe.Op, Path: name, Err: pe.Err} // the name shown as messages show paths
		}
		return nil, err
	}
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	var out []string
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if why := unsupportedPattern(line); why != "" {
			return nil, fmt.Errorf("%s:%d: %q: %s; snap reads globs only (see 'snap create --help')", DisplayPath(name), i+1, line, why)
		}
		if _, err := ParsePattern(line); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", DisplayPath(name), i+1, err)
		}
		out = append(out, line)
	}
	return out, nil
}

// unsupportedPattern says why an exclude file's line is in a syntax snap
// does not read ("" when it is a glob).
func unsupportedPattern(line string) string {
	switch {
	case strings.HasPrefix(line, "!"):
		return "negation (re-including a path) is not supported"
	case len(line) > 3 && line[2] == ':' && strings.Contains("re sh fm pp pf", line[:2]):
		return "borg's pattern styles are not supported"
	case len(line) > 2 && line[1] == ' ' && strings.ContainsRune("+-!RPp", rune(line[0])):
		return "borg's patterns-file rules are not supported"
	}
	return ""
}

// CacheDirTag is the file that marks a cache directory, and
// CacheDirSignature how such a file must start
// (https://bford.info/cachedir/).
const (
	CacheDirTag       = "CACHEDIR.TAG"
	CacheDirSignature = "Signature: 8a477f597d28d172789f06886806bc55"
)

// TagFiles returns the tag files among names, the entries of directory
// dir: those named in ifPresent, and with caches a CACHEDIR.TAG that starts
// with the signature. A directory with a tag file is backed up with only
// its tag files, so that a restore gives back the directory and its marker
// but none of what the marker asked to leave out. nil means no tag.
func TagFiles(dir string, names []string, ifPresent []string, caches bool) []string {
	if len(ifPresent) == 0 && !caches {
		return nil
	}
	var tags []string
	for _, name := range names {
		switch {
		case slices.Contains(ifPresent, name):
			tags = append(tags, name)
		case caches && name == CacheDirTag && hasCacheDirSignature(path.Join(dir, name)):
			tags = append(tags, name)
		}
	}
	return tags
}

// hasCacheDirSignature reports whether the regular file at p starts with
// CacheDirSignature (a symlink or anything else does not count).
func hasCacheDirSignature(p string) bool {
	f, err := OpenFile(p)
	if err != nil {
		return false
	}
	defer f.Close()
	buf := make([]byte, len(CacheDirSignature))
	n, err := io.ReadFull(f, buf)
	return err == nil && n == len(buf) && string(buf) == CacheDirSignature
}
