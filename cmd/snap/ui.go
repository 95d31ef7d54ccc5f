package main

import (
	"encoding/json"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/urfave/cli/v2"
)

// ui prints results and messages as the flags ask: human text on stdout,
// warnings on stderr, or JSON.
type ui struct {
	mu       sync.Mutex // serialises writes from concurrent reporters
	out, err io.Writer
	json     bool
	quiet    bool
	verbose  bool
	tty      bool
}

func newUI(c *cli.Context, e *env) *ui {
	return &ui{out: e.stdout, err: e.stderr, json: gbool(c, "json"), quiet: gbool(c, "quiet"), verbose: gbool(c, "verbose"), tty: e.stderrTTY}
}

// printf prints a human result line (suppressed by --quiet and --json).
func (u *ui) printf(format string, args ...any) {
	if u.quiet || u.json {
		return
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	fmt.Fprintf(u.out, format+"\n", args...)
}

// infof prints a detail shown with --verbose.
func (u *ui) infof(format string, args ...any) {
	if !u.verbose || u.json {
		return
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	fmt.Fprintf(u.err, format+"\n", args...)
}

// warnf prints a warning on stderr (as a JSON line with --json).
func (u *ui) warnf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.json {
		// On stderr, so that a command's JSON document on stdout stays valid.
		b, _ := json.Marshal(map[string]any{"type": "warning", "message": msg})
		fmt.Fprintf(u.err, "%s\n", b)
		return
	}
	fmt.Fprintf(u.err, "warning: %s\n", msg)
}

// errorf reports a non-fatal error (a skipped file).
func (u *ui) errorf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if u.json {
		u.jsonLine(map[string]any{"type": "error", "message": msg})
		return
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	fmt.Fprintf(u.err, "error: %s\n", msg)
}

// jsonLine writes one JSON object per line to stdout.
func (u *ui) jsonLine(v any) {
	b, err := json.Marshal(v)
	if err != nil {
		return
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	fmt.Fprintf(u.out, "%s\n", b)
}

// jsonDoc writes one indented JSON document to stdout.
func (u *ui) jsonDoc(v any) error {
	enc := json.NewEncoder(u.out)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// humanBytes formats a byte count with binary units.
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

func localTime(t time.Time) string { return t.Local().Format("2006-01-02 15:04:05") }
