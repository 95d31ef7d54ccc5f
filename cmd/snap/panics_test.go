package main

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/snap-backup/snap/repo"
)

// packUploadPanics is a backend with a bug: every pack upload panics. The
// upload runs in the index writer's own goroutine, not the command's.
type packUploadPanics struct{ repo.Backend }

func (b *packUploadPanics) Save(ctx context.Context, h repo.Handle, data []byte) error {
	if h.Type == repo.PackFile {
		panic("injected: pack upload")
	}
	return b.Backend.Save(ctx, h, data)
}

// TestInternalErrorInWorkerGoroutine: a panic in a worker goroutine of a
// create ends the command with one line naming the internal error and
// asking for a report, exit code 1, no stack trace (runIn fails on
// "goroutine " or "panic:" in stderr). No snapshot is saved, the
// repository checks clean, and the next create works. With SNAP_DEBUG the
// stack follows the line.
func TestInternalErrorInWorkerGoroutine(t *testing.T) {
	clearSnapEnv(t)
	tr := newTestRepo(t)
	src := filepath.Join(tr.dir, "src")
	writeFile(t, filepath.Join(src, "a.txt"), []byte("some data"))
	writeFile(t, filepath.Join(src, "sub", "b.txt"), bytes.Repeat([]byte("more data "), 10000))
	hooks := &backendHooks{wrap: func(be repo.Backend) repo.Backend { return &packUploadPanics{be} }}

	res := tr.runIn(hooks, "create", src)
	if res.code != exitFatal {
		t.Fatalf("exit %d, want %d; stderr:\n%s", res.code, exitFatal, res.stderr)
	}
	lines := strings.Split(strings.TrimRight(res.stderr, "\n"), "\n")
	last := lines[len(lines)-1]
	if !strings.HasPrefix(last, "snap: create: upload pack: internal error: injected: pack upload; no snapshot was saved") ||
		!strings.Contains(last, "please report it") {
		t.Fatalf("error line %q", last)
	}
	for _, l := range lines[:len(lines)-1] {
		if strings.Contains(l, "internal error") || strings.Contains(l, ".go:") {
			t.Errorf("more than one line about the internal error: %q", l)
		}
	}

	// --json: the final line of the stream says the same, without a stack.
	res = tr.runIn(hooks, "create", "--json", src)
	out := strings.Split(strings.TrimSpace(res.stdout), "\n")
	var final struct {
		Type     string `json:"type"`
		Message  string `json:"message"`
		ExitCode int    `json:"exit_code"`
		Stack    string `json:"stack"`
	}
	if err := json.Unmarshal([]byte(out[len(out)-1]), &final); err != nil {
		t.Fatalf("last JSON line %q: %v", out[len(out)-1], err)
	}
	if res.code != exitFatal || final.Type != "error" || final.ExitCode != exitFatal || !strings.Contains(final.Message, "internal error: injected") || final.Stack != "" {
		t.Fatalf("exit %d, final line %+v", res.code, final)
	}

	if got := tr.mustRun("list", "--json").stdout; strings.TrimSpace(got) != "[]" {
		t.Fatalf("snapshots after the failed creates: %s", got)
	}
	if res := tr.run("check", "--read-data"); res.code != 0 {
		t.Fatalf("check after the failed creates: exit %d\n%s%s", res.code, res.stdout, res.stderr)
	}
	tr.mustRun("create", src)

	// SNAP_DEBUG=1 prints where it happened, after the line.
	var stdout, stderr bytes.Buffer
	vars := map[string]string{"SNAP_DEBUG": "1"}
	for _, kv := range tr.env {
		k, v, _ := strings.Cut(kv, "=")
		vars[k] = v
	}
	e := &env{stdin: bytes.NewReader(nil), stdout: &stdout, stderr: &stderr, getenv: func(k string) string { return vars[k] },
		now: time.Now, backendHooks: hooks}
	writeFile(t, filepath.Join(src, "new.txt"), []byte("new data"))
	if code := run([]string{"snap", "--repo", tr.repo, "--cache-dir", tr.cache, "create", src}, e); code != exitFatal {
		t.Fatalf("exit %d with SNAP_DEBUG", code)
	}
	if !strings.Contains(stderr.String(), "internal error: injected: pack upload") || !strings.Contains(stderr.String(), "goroutine ") ||
		!strings.Contains(stderr.String(), "index.(*Writer).store") {
		t.Fatalf("with SNAP_DEBUG, stderr has no stack of the upload:\n%s", stderr.String())
	}
}
