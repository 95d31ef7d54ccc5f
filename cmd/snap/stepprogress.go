package main

import (
	"fmt"
	"sync"
	"time"
)

// stepProgress follows a command that works through steps, each counting
// items and their bytes: check (checking packs, reading packs, checking
// snapshots), prune (listing, finding used blobs, reading the index,
// repacking, deleting) and copy (snapshots). It shows the status line of
// create and restore on a terminal, and nothing otherwise: with --json
// these commands' documented output is their summary, with no "progress"
// lines, so a script reading them meets nothing new.
type stepProgress struct {
	display
	now   func() time.Time
	start time.Time

	mu        sync.Mutex // guards state and stepStart
	state     stepState
	stepStart time.Time // the rate and the ETA are the current step's
}

// stepState is where a command is: the step's name ("reading"), what it
// counts ("packs": done of total, total 0 when not known or none), the
// bytes done of bytesTotal (0: not known), and the errors found so far.
type stepState struct {
	name              string
	unit              string
	done, total       int64
	bytes, bytesTotal int64
	bytesLabel        string // said before the bytes ("sent"), or ""
	read              int64  // bytes read besides (copy: from the source), shown when not 0
	errors            int64
}

// newStepProgress prepares the status line of a check, prune or copy;
// call begin before the work and finish after it. stopOp cancels the
// work (see display.guard).
func newStepProgress(e *env, u *ui, stopOp func()) *stepProgress {
	return &stepProgress{display: display{u: u, interval: progressInterval(e, u), stopOp: stopOp}, now: e.now}
}

// shown reports whether the status line is drawn: on a terminal, without
// --quiet and --json.
func (sp *stepProgress) shown() bool {
	return sp.interval > 0 && sp.u.tty && !sp.u.quiet && !sp.u.json
}

func (sp *stepProgress) begin() {
	sp.start = sp.now()
	sp.stepStart = sp.start
	if sp.shown() {
		sp.run(sp.show)
	}
}

// update changes the state under the lock; a step of another name starts
// its rate and ETA afresh. It may be called from any goroutine, and on a
// nil stepProgress (nothing to show).
func (sp *stepProgress) update(f func(*stepState)) {
	if sp == nil {
		return
	}
	sp.mu.Lock()
	defer sp.mu.Unlock()
	name := sp.state.name
	f(&sp.state)
	if sp.state.name != name {
		sp.stepStart = sp.now()
	}
}

// step starts a step with fresh counts.
func (sp *stepProgress) step(name, unit string, total, bytesTotal int64) {
	sp.update(func(s *stepState) {
		*s = stepState{name: name, unit: unit, total: total, bytesTotal: bytesTotal, errors: s.errors}
	})
}

func (sp *stepProgress) show() {
	sp.mu.Lock()
	st, now := sp.state, sp.now()
	elapsed, inStep := now.Sub(sp.start), now.Sub(sp.stepStart)
	sp.mu.Unlock()
	sp.drawBar(stepFields(st, elapsed, inStep))
}

// stepFields is the status line of a step: the head (elapsed time and,
// with a total of bytes, the step's percentage), then the step with its count, the
// bytes, the rate, the errors and the ETA. On a narrow terminal the rate
// goes first, then the bytes; the step, the errors and the ETA stay, as
// they say what is being done and how long it will take.
func stepFields(st stepState, elapsed, inStep time.Duration) (string, []barField) {
	head := fmt.Sprintf("[%s]", fmtDuration(elapsed))
	// The percentage and the ETA follow the bytes, and only them: the
	// items counted differ too much (the first snapshot a copy sends is
	// all of its data, the next only what changed).
	known := st.bytesTotal > 0 && st.bytes <= st.bytesTotal
	if known {
		head += fmt.Sprintf(" %5.1f%%", 100*float64(st.bytes)/float64(st.bytesTotal))
	}
	what := st.name
	switch {
	case st.unit != "" && st.total > 0:
		what += fmt.Sprintf(" %d/%d %s", st.done, st.total, st.unit)
	case st.unit != "":
		what += fmt.Sprintf(" %d %s", st.done, st.unit)
	}
	fields := []barField{{what, 0}}
	if st.read > 0 {
		fields = append(fields, barField{"read " + humanBytes(st.read), 2})
	}
	secs := inStep.Seconds()
	if st.bytes > 0 || st.bytesTotal > 0 {
		b := humanBytes(st.bytes)
		if st.bytesTotal > 0 {
			b += "/" + humanBytes(st.bytesTotal)
		}
		if st.bytesLabel != "" {
			b = st.bytesLabel + " " + b
		}
		fields = append(fields, barField{b, 2})
		if secs > 0 {
			fields = append(fields, barField{humanBytes(int64(float64(st.bytes)/secs)) + "/s", 1})
		}
	}
	if st.errors > 0 {
		fields = append(fields, barField{plural(int(st.errors), "error", "errors"), 0})
	}
	if known && st.bytes > 0 && secs > 0 {
		eta := time.Duration(float64(st.bytesTotal-st.bytes) / (float64(st.bytes) / secs) * float64(time.Second))
		fields = append(fields, barField{"ETA " + fmtDuration(eta), 0})
	}
	return head, fields
}
