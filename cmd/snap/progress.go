package main

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"golang.org/x/sys/unix"
	"golang.org/x/term"

	"github.com/snap-backup/snap/index"
	"github.com/snap-backup/snap/repo"
	"github.com/snap-backup/snap/snapshot"
	"github.com/snap-backup/snap/sources"
)

// progress follows a running create or restore through the snapshot.Event
// values the archiver and the restorer report, and shows it: a bar with
// rate and ETA on stderr when that is a terminal, "progress" JSON lines
// with --json, nothing otherwise. It also turns error and warning events
// into messages. Totals (for the percentage and the ETA) come from a
// scan that runs alongside; until it ends they are unknown.
type progress struct {
	display
	action string // "create" or "restore"
	now    func() time.Time
	start  time.Time

	mu         sync.Mutex // guards the counters below
	filesDone  int64
	bytesDone  int64 // bytes read (or written) plus sizes of files done without reading
	bytesRead  int64
	bytesAdded int64 // stored in the repository, after compression
	rawAdded   int64
	errors     int64
	incomplete int64 // of errors, streams saved as they came (snapshot.ErrSavedIncomplete)
	// unlisted holds the first paths of directories that could not be
	// listed and were saved empty (snapshot.ErrSavedEmpty), for
	// emptiedPaths.
	unlisted []string
	// unread holds the first paths of the other entries that could not
	// be read and were left out, for emptiedPaths too.
	unread     []string
	warnings   int64
	inflight   map[string]int64 // bytes read of files not finished yet
	filesTotal int64
	bytesTotal int64
	totalKnown bool
}

// display redraws a status line on stderr, or writes a JSON line, every
// interval while an operation runs, until finish: the part that progress
// (create, restore) and stepProgress (check, prune, copy) share.
type display struct {
	u        *ui
	interval time.Duration
	stop     chan struct{}
	done     chan struct{}

	// stopOp cancels the operation shown. A panic in one of the display's
	// own goroutines (the redraws, create's totals scan) calls it, and
	// the operation then fails with that panic (see failure).
	stopOp func()
	bugMu  sync.Mutex
	bug    error
}

// progressInterval is how often progress is shown: SNAP_PROGRESS_INTERVAL
// (a Go duration; 0 turns progress off), else 4 times a second
// on a terminal and once a second for JSON.
func progressInterval(e *env, u *ui) time.Duration {
	if v := e.getenv("SNAP_PROGRESS_INTERVAL"); v != "" {
		if d, err := time.ParseDuration(v); err == nil && d >= 0 {
			return d
		}
		u.warnf("SNAP_PROGRESS_INTERVAL=%q is not a duration (like 1s or 500ms); using the default", v)
	}
	if u.json {
		return time.Second
	}
	return 250 * time.Millisecond
}

// newProgress prepares progress reporting for action. Call start before
// the work and finish after it. stopOp cancels the work (see guard).
func newProgress(e *env, u *ui, action string, stopOp func()) *progress {
	return &progress{display: display{u: u, interval: progressInterval(e, u), stopOp: stopOp}, action: action, now: e.now, inflight: map[string]int64{}}
}

// shown reports whether progress is displayed at all; the totals scan runs
// only then.
func (p *progress) shown() bool {
	if p.interval <= 0 {
		return false
	}
	if p.u.json {
		return p.u.jsonLines
	}
	return p.u.tty && !p.u.quiet
}

func (p *progress) begin() {
	p.start = p.now()
	if p.shown() {
		p.run(p.show)
	}
}

// run calls show every interval until finish, from a goroutine of its
// own; a status line on a terminal is set up first (show draws it).
func (d *display) run(show func()) {
	if !d.u.json {
		d.u.mu.Lock()
		d.u.bar = newProgressBar(d.u.err)
		d.u.mu.Unlock()
	}
	d.stop, d.done = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(d.done)
		d.guard(func() {
			t := time.NewTicker(d.interval)
			defer t.Stop()
			for {
				select {
				case <-d.stop:
					return
				case <-t.C:
					show()
				}
			}
		})
	}()
}

// guard runs f, the work of a goroutine of the display's own. A panic in
// f (a bug) stops the operation, which then fails with it: see failure.
func (d *display) guard(f func()) {
	if err := repo.Catch(func() error { f(); return nil }); err != nil {
		d.bugMu.Lock()
		if d.bug == nil {
			d.bug = err
		}
		d.bugMu.Unlock()
		d.stopOp()
	}
}

// failure returns the panic of a goroutine of the display's own, if one
// happened; call it after finish.
func (d *display) failure() error {
	d.bugMu.Lock()
	defer d.bugMu.Unlock()
	return d.bug
}

// finish stops the display and erases the bar.
func (d *display) finish() {
	if d.stop == nil {
		return
	}
	close(d.stop)
	<-d.done
	d.stop = nil
	d.u.mu.Lock()
	if d.u.bar != nil {
		d.u.bar.clear()
		d.u.bar = nil
	}
	d.u.mu.Unlock()
}

// drawBar redraws the status line, if there is one.
func (d *display) drawBar(head string, fields []barField) {
	d.u.mu.Lock()
	defer d.u.mu.Unlock() // deferred: a panic in draw must not leave every message waiting
	if d.u.bar != nil {
		d.u.bar.draw(head, fields)
	}
}

// event is the Report function given to the archiver or the restorer.
func (p *progress) event(ev snapshot.Event) {
	switch ev.Kind {
	case snapshot.EventRead:
		p.mu.Lock()
		p.bytesRead += ev.Bytes
		p.bytesDone += ev.Bytes
		p.inflight[ev.Path] += ev.Bytes
		p.mu.Unlock()
	case snapshot.EventFile, snapshot.EventKept:
		p.mu.Lock()
		p.filesDone++
		// A file read here already counted its bytes as they came; one
		// reused from the parent snapshot counts all of them now.
		p.bytesDone += ev.Bytes - p.inflight[ev.Path]
		delete(p.inflight, ev.Path)
		p.mu.Unlock()
		p.fileDone(ev)
	case snapshot.EventError:
		p.mu.Lock()
		p.errors++
		if errors.Is(ev.Err, snapshot.ErrSavedIncomplete) {
			p.incomplete++
		}
		switch {
		case errors.Is(ev.Err, snapshot.ErrSavedEmpty):
			if len(p.unlisted) < maxUnreadable {
				p.unlisted = append(p.unlisted, ev.Path)
			}
		case ev.Path != "" && !errors.Is(ev.Err, snapshot.ErrSavedIncomplete):
			if len(p.unread) < maxUnreadable {
				p.unread = append(p.unread, ev.Path)
			}
		}
		delete(p.inflight, ev.Path)
		p.mu.Unlock()
		msg := withPath(ev.Path, fmt.Sprint(ev.Err))
		if p.action == "create" && !errors.Is(ev.Err, snapshot.ErrSavedEmpty) && !errors.Is(ev.Err, snapshot.ErrSavedIncomplete) {
			msg += " (skipped)"
		}
		p.u.log.Error(msg, pathAttrs(ev.Path)...)
	case snapshot.EventWarning:
		p.mu.Lock()
		p.warnings++
		p.mu.Unlock()
		// The text and journal formats show only the message.
		p.u.log.Warn(withPath(ev.Path, fmt.Sprint(ev.Err)), pathAttrs(ev.Path)...)
	case snapshot.EventLeftOut:
		p.u.log.Log(context.Background(), levelNotice, fmt.Sprintf("left out %s: %v", sources.DisplayPath(ev.Path), ev.Err), pathAttrs(ev.Path)...)
	}
}

// maxUnreadable bounds progress.unlisted and progress.unread, which
// emptiedPaths looks up in earlier snapshots. It is high enough that a
// backup of a tree where thousands of entries never read (another user's
// files, as a backup not run as root sees them) still notices the one that
// could be read last night: with 100, the 101st was missed (found by an
// exploratory test). Past it, a tree this user may not read is one
// problem, whose first entries say it.
const maxUnreadable = 10000

// unreadable returns the directories saved empty because they could not
// be listed, and the other entries left out because they could not be
// read (at most maxUnreadable of each).
func (p *progress) unreadable() (unlisted, unread []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.unlisted), slices.Clone(p.unread)
}

// warningCount returns the warnings reported so far.
func (p *progress) warningCount() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.warnings
}

// withPath puts the path an event is about in front of its message,
// unless the message names it already, as messages show paths
// (sources.DisplayPath): written as it is, a newline in a name read as a
// space and an invalid byte as U+FFFD (found by an exploratory test).
func withPath(p, msg string) string {
	if p == "" || strings.Contains(msg, p) || strings.Contains(msg, sources.DisplayPath(p)) {
		return msg
	}
	return sources.DisplayPath(p) + ": " + msg
}

func (p *progress) fileDone(ev snapshot.Event) {
	if !p.u.verbose {
		return
	}
	if p.u.json {
		action := p.action
		if ev.Kind == snapshot.EventKept {
			action = "kept"
		}
		line := map[string]any{"type": "file", "action": action, "path": ev.Path, "bytes": ev.Bytes}
		if b := pathBase64(ev.Path); b != "" {
			line["path_base64"] = b
		}
		p.u.jsonLine(line)
		return
	}
	verb := "saved"
	switch {
	case ev.Kind == snapshot.EventKept:
		verb = "kept"
	case p.action == "restore":
		verb = "restored"
	}
	p.u.infof("%s %s", verb, sources.DisplayPath(ev.Path))
}

// added is the index.WriterOptions.Added hook.
func (p *progress) added(raw, stored int64) {
	p.mu.Lock()
	p.rawAdded += raw
	p.bytesAdded += stored
	p.mu.Unlock()
}

// setTotal records the totals found by a scan; known means the scan ended.
func (p *progress) setTotal(files, bytes int64, known bool) {
	p.mu.Lock()
	p.filesTotal, p.bytesTotal, p.totalKnown = files, bytes, known
	p.mu.Unlock()
}

// progressJSON is the documented "progress" line (docs/usage.md).
type progressJSON struct {
	Type           string   `json:"type"`
	Action         string   `json:"action"`
	ElapsedSeconds float64  `json:"elapsed_seconds"`
	FilesDone      int64    `json:"files_done"`
	FilesTotal     int64    `json:"files_total"`
	BytesDone      int64    `json:"bytes_done"`
	BytesTotal     int64    `json:"bytes_total"`
	TotalKnown     bool     `json:"total_known"`
	BytesRead      int64    `json:"bytes_read"`
	BytesAdded     int64    `json:"bytes_added"`
	BytesPerSecond float64  `json:"bytes_per_second"`
	Percent        *float64 `json:"percent,omitempty"`
	ETASeconds     *float64 `json:"eta_seconds,omitempty"`
	Errors         int64    `json:"errors"`
}

func (p *progress) snapshot() progressJSON {
	p.mu.Lock()
	defer p.mu.Unlock()
	el := p.now().Sub(p.start).Seconds()
	j := progressJSON{Type: "progress", Action: p.action, ElapsedSeconds: round2(el), FilesDone: p.filesDone, FilesTotal: p.filesTotal,
		BytesDone: p.bytesDone, BytesTotal: p.bytesTotal, TotalKnown: p.totalKnown, BytesRead: p.bytesRead, BytesAdded: p.bytesAdded, Errors: p.errors}
	if el > 0 {
		j.BytesPerSecond = round2(float64(p.bytesDone) / el)
	}
	// The totals are what the scan saw; files that grew since, and
	// streams, can take the count past them.
	if p.totalKnown && p.bytesTotal > 0 && p.bytesDone <= p.bytesTotal {
		pct := round2(100 * float64(p.bytesDone) / float64(p.bytesTotal))
		j.Percent = &pct
		if j.BytesPerSecond > 0 {
			eta := round2(float64(p.bytesTotal-p.bytesDone) / j.BytesPerSecond)
			j.ETASeconds = &eta
		}
	}
	return j
}

func round2(f float64) float64 { return math.Round(f*100) / 100 } // in floats: a crafted size's ratio overflowed an int64 to a negative (found by a re-test)

// show prints one progress line or redraws the bar.
func (p *progress) show() {
	j := p.snapshot()
	if p.u.json {
		p.u.jsonLine(j)
		return
	}
	p.drawBar(statusFields(j, p.action))
}

// barField is one field of the status line, and when it goes if the line
// is wider than the terminal: fields of rank 1 first, then 2, …; rank 0
// never.
type barField struct {
	text string
	rank int
}

// statusFields is the status line of j: the head (elapsed time and
// percentage), then its fields. What goes first on a narrow terminal is
// what says least of how far the work is: bytes added, the rate, the
// bytes and the files done; the percentage, errors and ETA stay (at 80
// columns the line was cut mid-field, with a dangling comma, and never
// showed the ETA; found by an exploratory test).
func statusFields(j progressJSON, action string) (string, []barField) {
	head := fmt.Sprintf("[%s]", fmtDuration(time.Duration(j.ElapsedSeconds*float64(time.Second))))
	if j.Percent != nil {
		head += fmt.Sprintf(" %5.1f%%", *j.Percent)
	}
	files := fmt.Sprintf("%d files", j.FilesDone)
	bytes := humanBytes(j.BytesDone)
	if j.TotalKnown {
		files = fmt.Sprintf("%d/%d files", j.FilesDone, j.FilesTotal)
		bytes += "/" + humanBytes(j.BytesTotal)
	}
	fields := []barField{{files, 4}, {bytes, 3}, {humanBytes(int64(j.BytesPerSecond)) + "/s", 2}}
	if action == "create" {
		fields = append(fields, barField{"added " + humanBytes(j.BytesAdded), 1})
	}
	if j.Errors > 0 {
		fields = append(fields, barField{fmt.Sprintf("%d errors", j.Errors), 0})
	}
	if j.ETASeconds != nil {
		fields = append(fields, barField{"ETA " + fmtDuration(time.Duration(*j.ETASeconds*float64(time.Second))), 0})
	}
	return head, fields
}

// fitStatus joins head and fields ("head f1, f2, …") into at most limit
// bytes (0: no limit), leaving out whole fields by their rank; a line
// still too long, once only the fields of rank 0 are left, is cut.
func fitStatus(head string, fields []barField, limit int) string {
	join := func() string {
		var texts []string
		for _, f := range fields {
			texts = append(texts, f.text)
		}
		if len(texts) == 0 {
			return head
		}
		return head + " " + strings.Join(texts, ", ")
	}
	line := join()
	for rank := 1; limit > 0 && len(line) > limit; rank++ {
		if !slices.ContainsFunc(fields, func(f barField) bool { return f.rank >= rank }) {
			return line[:limit] // the line is ASCII
		}
		fields = slices.DeleteFunc(fields, func(f barField) bool { return f.rank == rank })
		line = join()
	}
	return line
}

// fmtDuration prints h:mm:ss or m:ss.
func fmtDuration(d time.Duration) string {
	s := int64(d.Round(time.Second) / time.Second)
	if s >= 3600 {
		return fmt.Sprintf("%d:%02d:%02d", s/3600, s/60%60, s%60)
	}
	return fmt.Sprintf("%d:%02d", s/60, s%60)
}

// progressBar is a status line redrawn in place on a terminal. Its methods
// are called with the ui's mutex held.
type progressBar struct {
	w io.Writer
	// width is the terminal's width, asked for at every redraw (one
	// ioctl): a window made narrower while snap runs wrapped a line of
	// the width it started with, and "\r\x1b[K" then erased only the
	// wrapped tail, leaving a new row on the screen 4 times a second
	// (found by an exploratory test).
	width func() int
	shown bool
}

// newProgressBar is a status line on w, a terminal.
func newProgressBar(w io.Writer) *progressBar {
	return &progressBar{w: w, width: func() int { return termWidth(w) }}
}

// draw shows the status line fitted to the terminal (fitStatus): one
// column less than its width, as a line that fills the last column
// wraps on some terminals.
func (b *progressBar) draw(head string, fields []barField) {
	limit := 0
	if width := b.width(); width > 1 {
		limit = width - 1
	}
	line := fitStatus(head, fields, limit)
	fmt.Fprintf(b.w, "\r%s\x1b[K", line)
	b.shown = true
}

func (b *progressBar) clear() {
	if b.shown {
		fmt.Fprint(b.w, "\r\x1b[K")
		b.shown = false
	}
}

func termWidth(w io.Writer) int {
	if f, ok := w.(*os.File); ok {
		if width, _, err := term.GetSize(int(f.Fd())); err == nil {
			return width
		}
	}
	return 80
}

// scanFiles counts the regular files and bytes below paths that a create
// with these excludes would see, reporting the running totals to fn (and
// done=true at the end). It reads only metadata and stops with ctx.
func scanFiles(ctx context.Context, paths []string, o snapshot.ArchiveOptions, fn func(files, bytes int64, done bool)) {
	var files, bytes int64
	last := time.Now()
	dirBuf := make([]byte, sources.DirBufSize) // for every directory in turn: ReadDirNames copies the names out
	var walk func(p string, dev uint64, top bool)
	walk = func(p string, dev uint64, top bool) {
		if ctx.Err() != nil {
			return
		}
		var st unix.Stat_t
		if err := sources.Lstat(p, &st); err != nil {
			return
		}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFREG:
			if !top && o.ExcludeLargerThan > 0 && uint64(st.Size) > o.ExcludeLargerThan {
				return
			}
			files++
			bytes += st.Size
		case unix.S_IFDIR:
			d := uint64(st.Dev)
			if o.OneFileSystem && !top && d != dev {
				return
			}
			if _, ok := o.LeaveOut[[2]uint64{d, st.Ino}]; ok {
				return
			}
			names, err := sources.ReadDirNames(p, dirBuf)
			if err != nil {
				return
			}
			if tags := sources.TagFiles(p, names, o.ExcludeIfPresent, o.ExcludeCaches); tags != nil {
				names = tags
			}
			for _, name := range names {
				cp := filepath.Join(p, name)
				if sources.MatchAny(o.Excludes, cp) {
					continue
				}
				walk(cp, d, false)
			}
		}
		if time.Since(last) > 200*time.Millisecond {
			fn(files, bytes, false)
			last = time.Now()
		}
	}
	for _, p := range paths {
		abs, err := filepath.Abs(p)
		if err != nil {
			continue
		}
		walk(abs, 0, true)
	}
	if ctx.Err() == nil {
		fn(files, bytes, true)
	}
}

// scanTree counts the files and bytes a restore of node (at snapPath in
// the snapshot) will write under the include and exclude patterns. A file
// with several hard links counts once.
func scanTree(ctx context.Context, ix *index.Index, snapPath string, node snapshot.Node, includes, excludes []sources.Pattern, fn func(files, bytes int64, done bool)) {
	var files, bytes int64
	links := map[snapshot.LinkGroup]bool{}
	selected := func(p string) bool {
		if len(includes) == 0 {
			return true
		}
		for q := p; ; q = path.Dir(q) {
			if sources.MatchAny(includes, q) {
				return true
			}
			if q == "/" || q == "." {
				return false
			}
		}
	}
	err := snapshot.Walk(ctx, ix, snapPath, node, func(p string, n *snapshot.Node) error {
		if sources.MatchAny(excludes, p) {
			return snapshot.SkipDir
		}
		if n.Type != sources.TypeFile || !selected(p) {
			return nil
		}
		files++
		if n.Links > 1 {
			k := n.LinkGroup() // as the restorer links them
			if links[k] {
				return nil
			}
			links[k] = true
		}
		bytes += int64(n.Size)
		if files%1000 == 0 {
			fn(files, bytes, false)
		}
		return nil
	})
	if err == nil {
		fn(files, bytes, true)
	}
}

// pathBase64 is the JSON field path_base64 of a path: its bytes, when it
// is not valid UTF-8 (which a JSON string cannot hold: the encoder writes
// U+FFFD), else "" (the field is left out).
func pathBase64(p string) string {
	if utf8.ValidString(p) {
		return ""
	}
	return base64.StdEncoding.EncodeToString([]byte(p))
}

// pathAttrs are the log attributes that name a path: "path", and
// "path_base64" when it has one (pathBase64).
func pathAttrs(p string) []any {
	attrs := []any{"path", p}
	if b := pathBase64(p); b != "" {
		attrs = append(attrs, "path_base64", b)
	}
	return attrs
}

// partialMessage is what a create whose snapshot was saved with errors
// says of them: files left out, and dumps saved as they came.
func (p *progress) partialMessage(id string, errs int64) string {
	p.mu.Lock()
	incomplete := min(p.incomplete, errs)
	p.mu.Unlock()
	var parts []string
	if skipped := errs - incomplete; skipped > 0 {
		parts = append(parts, fmt.Sprintf("%d file(s) could not be read and were skipped", skipped))
	}
	if incomplete > 0 {
		parts = append(parts, fmt.Sprintf("%d dump(s) lost data on the way and were saved as they came", incomplete))
	}
	return fmt.Sprintf("snapshot %s saved, but %s (listed above)", id, strings.Join(parts, ", and "))
}
