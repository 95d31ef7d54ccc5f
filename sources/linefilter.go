package sources

import (
	"bufio"
	"errors"
	"io"
)

// lineFilter passes a dump through on its way to a restore tool, in
// pieces of at most its buffer's size, so that lines of any length (an
// INSERT of many MB) pass without being held whole. At the start of each
// line it calls start, which may peek at the line and discard some of it:
// it returns what to pass in place of what it discarded (nil: nothing),
// or dropped when it discarded the whole line, its newline included, or an
// error that ends the dump there (a line that must not reach the tool). A
// replacement that ends in a newline replaces the whole line, its newline
// included: the next byte starts a line.
type lineFilter struct {
	r     *bufio.Reader
	start func(r *bufio.Reader) (replacement []byte, dropped bool, err error)
	// seen, when set, is given every piece of the dump passed on as it
	// is (not what start dropped, nor its replacements), in order.
	seen    func(piece []byte)
	atStart bool   // the next byte read from r starts a line
	buf     []byte // holds pending
	pending []byte // read from r (or a replacement), not yet returned
	err     error  // r's error, returned once pending is empty
}

func newLineFilter(dump io.Reader, start func(r *bufio.Reader) ([]byte, bool, error)) *lineFilter {
	return &lineFilter{r: bufio.NewReaderSize(dump, 64<<10), start: start, atStart: true}
}

func (f *lineFilter) Read(p []byte) (int, error) {
	for len(f.pending) == 0 {
		if f.err != nil {
			return 0, f.err
		}
		if f.atStart {
			f.atStart = false
			replacement, dropped, err := f.start(f.r)
			if err != nil {
				f.err = err
				continue
			}
			if dropped {
				f.atStart = true
				continue
			}
			if replacement != nil {
				f.pending = replacement
				f.atStart = replacement[len(replacement)-1] == '\n'
				break
			}
		}
		piece, err := f.r.ReadSlice('\n')
		f.buf = append(f.buf[:0], piece...)
		f.pending = f.buf
		if f.seen != nil {
			f.seen(f.buf)
		}
		switch {
		case err == nil:
			f.atStart = true
		case errors.Is(err, bufio.ErrBufferFull):
		default:
			f.err = err
		}
	}
	n := copy(p, f.pending)
	f.pending = f.pending[n:]
	return n, nil
}
