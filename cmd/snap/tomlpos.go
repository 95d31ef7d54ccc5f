package main

import (
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"
)

// tomlKeyLines returns the line on which every key of a TOML document is
// defined, keyed by toml.Key.String(). BurntSushi/toml reports positions
// only for syntax errors, and 'snap config check' must name the line of
// every problem it finds, so this scanner walks the document once more. It
// expects a document the toml package has already parsed without error
// and is lenient about anything else. Keys inside inline tables get the
// line of their table; for array-of-table elements the first one counts.
func tomlKeyLines(doc string) map[string]int {
	s := &tomlScanner{src: doc, line: 1, lines: map[string]int{}}
	s.document()
	return s.lines
}

type tomlScanner struct {
	src   string
	i     int
	line  int
	lines map[string]int
}

func (s *tomlScanner) eof() bool { return s.i >= len(s.src) }
func (s *tomlScanner) peek() byte {
	if s.eof() {
		return 0
	}
	return s.src[s.i]
}

func (s *tomlScanner) advance() {
	if s.src[s.i] == '\n' {
		s.line++
	}
	s.i++
}

func (s *tomlScanner) record(key toml.Key) {
	if len(key) == 0 {
		return
	}
	// Dotted keys define their parents implicitly, on the same line.
	for n := 1; n <= len(key); n++ {
		k := key[:n].String()
		if _, ok := s.lines[k]; !ok {
			s.lines[k] = s.line
		}
	}
}

// skipSpace skips blanks, and with newlines also line breaks and comments.
func (s *tomlScanner) skipSpace(newlines bool) {
	for !s.eof() {
		switch c := s.peek(); {
		case c == ' ' || c == '\t' || c == '\r':
			s.advance()
		case c == '#':
			for !s.eof() && s.peek() != '\n' {
				s.advance()
			}
		case c == '\n' && newlines:
			s.advance()
		default:
			return
		}
	}
}

func (s *tomlScanner) document() {
	var table toml.Key
	for {
		s.skipSpace(true)
		if s.eof() {
			return
		}
		if s.peek() == '[' {
			s.advance()
			if s.peek() == '[' {
				s.advance()
			}
			table = s.key()
			s.record(table)
			s.toEOL()
			continue
		}
		k := s.key()
		s.record(append(append(toml.Key{}, table...), k...))
		s.skipSpace(false)
		if s.peek() == '=' {
			s.advance()
		}
		s.skipSpace(false)
		s.value(append(append(toml.Key{}, table...), k...))
		s.toEOL()
	}
}

// toEOL skips the rest of the line.
func (s *tomlScanner) toEOL() {
	for !s.eof() && s.peek() != '\n' {
		s.advance()
	}
}

// key reads a dotted key: bare, "basic" and 'literal' parts.
func (s *tomlScanner) key() toml.Key {
	var k toml.Key
	for {
		s.skipSpace(false)
		switch c := s.peek(); {
		case c == '"':
			raw := s.basicString()
			if u, err := strconv.Unquote(raw); err == nil {
				k = append(k, u)
			} else {
				k = append(k, strings.Trim(raw, `"`))
			}
		case c == '\'':
			k = append(k, s.literalString())
		default:
			start := s.i
			for !s.eof() && isBareKeyChar(s.peek()) {
				s.advance()
			}
			if s.i == start {
				return k // not a key: let the caller move on
			}
			k = append(k, s.src[start:s.i])
		}
		s.skipSpace(false)
		if s.peek() != '.' {
			return k
		}
		s.advance()
	}
}

func isBareKeyChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}

// basicString reads a one-line "basic" string at the current position and
// returns it as written, quotes and escapes included.
func (s *tomlScanner) basicString() string {
	start := s.i
	s.advance()
	for !s.eof() && s.peek() != '"' && s.peek() != '\n' {
		if s.peek() == '\\' {
			s.advance()
		}
		if !s.eof() {
			s.advance()
		}
	}
	if !s.eof() {
		s.advance()
	}
	return s.src[start:s.i]
}

// literalString reads a one-line 'literal' string at the current position
// and returns its content.
func (s *tomlScanner) literalString() string {
	s.advance()
	start := s.i
	for !s.eof() && s.peek() != '\'' && s.peek() != '\n' {
		s.advance()
	}
	v := s.src[start:s.i]
	if !s.eof() {
		s.advance()
	}
	return v
}

// value skips one value; inline tables record their keys under key.
func (s *tomlScanner) value(key toml.Key) {
	switch {
	case strings.HasPrefix(s.src[s.i:], `"""`):
		s.i += 3
		for !s.eof() && !strings.HasPrefix(s.src[s.i:], `"""`) {
			if s.peek() == '\\' {
				s.advance()
			}
			if !s.eof() {
				s.advance()
			}
		}
		s.i = min(s.i+3, len(s.src))
		for s.peek() == '"' { // up to two quotes may end the content
			s.advance()
		}
	case strings.HasPrefix(s.src[s.i:], `'''`):
		s.i += 3
		for !s.eof() && !strings.HasPrefix(s.src[s.i:], `'''`) {
			s.advance()
		}
		s.i = min(s.i+3, len(s.src))
		for s.peek() == '\'' {
			s.advance()
		}
	case s.peek() == '"':
		s.basicString()
	case s.peek() == '\'':
		s.literalString()
	case s.peek() == '[':
		s.advance()
		for {
			s.skipSpace(true)
			if s.eof() {
				return
			}
			if s.peek() == ']' {
				s.advance()
				return
			}
			if s.peek() == ',' {
				s.advance()
				continue
			}
			before := s.i
			s.value(key)
			if s.i == before {
				s.advance() // never loop on something unexpected
			}
		}
	case s.peek() == '{':
		s.advance()
		for {
			s.skipSpace(false)
			if s.eof() || s.peek() == '\n' {
				return
			}
			if s.peek() == '}' {
				s.advance()
				return
			}
			if s.peek() == ',' {
				s.advance()
				continue
			}
			k := s.key()
			if len(k) == 0 {
				s.advance()
				continue
			}
			full := append(append(toml.Key{}, key...), k...)
			s.record(full)
			s.skipSpace(false)
			if s.peek() == '=' {
				s.advance()
			}
			s.skipSpace(false)
			s.value(full)
		}
	default:
		// A number, boolean or date: up to a delimiter.
		for !s.eof() && !strings.ContainsRune(",]}#\n", rune(s.peek())) {
			s.advance()
		}
	}
}
