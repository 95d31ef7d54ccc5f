package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"golang.org/x/sys/unix"
)

// logFormat is how messages (warnings, errors, details) are written.
type logFormat int

const (
	// logText is for a person: "warning: …" and "error: …" on stderr.
	logText logFormat = iota
	// logJournal is for journald: "<4>…" lines, the sd-daemon priority
	// prefix journald reads from a service's stderr (see sd-daemon(3)).
	logJournal
	// logJSON writes each message as one JSON object on a line.
	logJSON
)

// levelNotice sits between info and warning, as syslog's notice does.
const levelNotice = slog.Level(2)

// logHandler is the slog handler behind every message snap prints. It
// writes whole lines under a mutex, so messages from concurrent workers
// never interleave, and it can clear a progress bar before writing.
// Attributes are structured fields for JSON output; the text formats print
// the message alone, which already names the object.
type logHandler struct {
	mu     *sync.Mutex
	w      io.Writer
	format logFormat
	level  slog.Level
	attrs  []slog.Attr
	// before runs (under mu) before a line is written: it erases the
	// progress bar so the message does not land in the middle of it.
	before func()
	// extra fields for JSON lines (for example the job name during 'run').
	fields func() map[string]any
}

func (h *logHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level }

func (h *logHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	c := *h
	c.attrs = append(append([]slog.Attr(nil), h.attrs...), attrs...)
	return &c
}

// WithGroup is not used by snap; groups are flattened.
func (h *logHandler) WithGroup(string) slog.Handler { return h }

func (h *logHandler) Handle(_ context.Context, r slog.Record) error {
	var attrs []slog.Attr
	attrs = append(attrs, h.attrs...)
	r.Attrs(func(a slog.Attr) bool {
		attrs = append(attrs, a)
		return true
	})
	var line string
	switch h.format {
	case logJSON:
		m := map[string]any{}
		if h.fields != nil {
			for k, v := range h.fields() {
				m[k] = v
			}
		}
		for _, a := range attrs {
			m[a.Key] = a.Value.Any()
		}
		m["type"] = jsonLevel(r.Level)
		m["message"] = r.Message
		b, err := json.Marshal(m)
		if err != nil {
			return err
		}
		line = string(b)
	case logJournal:
		line = fmt.Sprintf("<%d>%s", journalPriority(r.Level), singleLine(r.Message))
	default:
		line = textPrefix(r.Level) + singleLine(r.Message)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.before != nil {
		h.before()
	}
	_, err := io.WriteString(h.w, line+"\n")
	return err
}

// jsonLevel is the "type" of a message in JSON output.
func jsonLevel(l slog.Level) string {
	switch {
	case l >= slog.LevelError:
		return "error"
	case l >= slog.LevelWarn:
		return "warning"
	case l >= levelNotice:
		return "notice"
	case l >= slog.LevelInfo:
		return "info"
	}
	return "debug"
}

// journalPriority maps a level to a syslog priority: 3 err, 4 warning,
// 5 notice, 6 info, 7 debug.
func journalPriority(l slog.Level) int {
	switch {
	case l >= slog.LevelError:
		return 3
	case l >= slog.LevelWarn:
		return 4
	case l >= levelNotice:
		return 5
	case l >= slog.LevelInfo:
		return 6
	}
	return 7
}

func textPrefix(l slog.Level) string {
	switch {
	case l >= slog.LevelError:
		return "error: "
	case l >= slog.LevelWarn:
		return "warning: "
	}
	return ""
}

// singleLine keeps a message on one line: a journald or log reader treats each
// line as one entry. Line breaks become spaces, and any other control
// character is shown as an escape (escapeControls).
func singleLine(s string) string {
	if strings.ContainsAny(s, "\r\n") {
		s = strings.NewReplacer("\r\n", " ", "\n", " ", "\r", " ").Replace(s)
	}
	return escapeControls(s)
}

// escapeControls shows the control characters of s other than tabs and
// newlines as escapes (\x1b): an escape sequence in a file name or a host
// name read from a repository must not rewrite the terminal.
func escapeControls(s string) string {
	if strings.IndexFunc(s, func(r rune) bool { return r != '\n' && isControl(r) }) < 0 && !hasRawC1(s) {
		return s
	}
	var b strings.Builder
	for i, r := range s {
		switch {
		case isRawC1(s[i:]):
			// A byte 0x80–0x9f that is not part of a character: a
			// terminal outside UTF-8 takes 0x9b for ESC [ (found by a
			// red-team test).
			fmt.Fprintf(&b, "\\x%02x", s[i])
		case isInvalidAt(s[i:]):
			b.WriteByte(s[i]) // another byte that is not UTF-8: as it was
		case r == '\n' || !isControl(r):
			b.WriteRune(r)
		case r < 0x80:
			fmt.Fprintf(&b, "\\x%02x", r)
		default:
			fmt.Fprintf(&b, "\\u%04x", r)
		}
	}
	return b.String()
}

// hasRawC1 reports whether s holds a byte 0x80–0x9f that is not part of a
// UTF-8 character: a C1 control to a terminal outside UTF-8 (0x9b is ESC
// [), which a rune-by-rune look sees as U+FFFD.
func hasRawC1(s string) bool {
	for i := 0; i < len(s); {
		if isRawC1(s[i:]) {
			return true
		}
		_, size := utf8.DecodeRuneInString(s[i:])
		i += size
	}
	return false
}

// isRawC1 reports whether s starts with a byte 0x80–0x9f that does not
// start a UTF-8 character.
func isRawC1(s string) bool {
	return isInvalidAt(s) && s[0] >= 0x80 && s[0] < 0xa0
}

// isInvalidAt reports whether s starts with a byte that is not UTF-8.
func isInvalidAt(s string) bool {
	r, size := utf8.DecodeRuneInString(s)
	return r == utf8.RuneError && size == 1
}

// isControl reports whether r is a control character other than a tab:
// C0, DEL or C1 (0x9b starts a sequence on some terminals, as ESC [ does).
func isControl(r rune) bool {
	return r < 0x20 && r != '\t' || r >= 0x7f && r < 0xa0
}

// underJournal reports whether stderr is connected to the journal: systemd
// sets JOURNAL_STREAM to "DEVICE:INODE" of the stream it connected, and the
// variable counts only while stderr still is that stream (a service may
// redirect it, and a child process inherits the variable).
func underJournal(getenv func(string) string, stderr *os.File) bool {
	v := getenv("JOURNAL_STREAM")
	if v == "" || stderr == nil {
		return false
	}
	devS, inoS, ok := strings.Cut(v, ":")
	if !ok {
		return false
	}
	dev, err1 := strconv.ParseUint(devS, 10, 64)
	ino, err2 := strconv.ParseUint(inoS, 10, 64)
	if err1 != nil || err2 != nil {
		return false
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(stderr.Fd()), &st); err != nil {
		return false
	}
	return uint64(st.Dev) == dev && st.Ino == ino
}
