package sources

import (
	"fmt"
	"path"
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
		p.parts = append(p.parts, c)
	}
	if len(p.parts) == 0 {
		return Pattern{}, fmt.Errorf("pattern %q matches nothing", s)
	}
	return p, nil
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
