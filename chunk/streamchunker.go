package chunk

import (
	"errors"
	"io"
)

// StreamChunker cuts a stream (standard input, a database dump: read once,
// in order, with Read) into exactly the chunks a Chunker makes, for about
// two thirds of its CPU (1.45 times its speed in make bench's stage runs). It reads the stream into a window buffer and finds each
// cut there in place with a CutFinder's scan, then copies the chunk out.
// A stream has no other reader to share the work with, so its one
// chunking goroutine is what bounds how fast a dump is saved: on make
// bench's dumps restic/chunker's digest loop was the largest single cost
// of a create. restic/chunker copies every byte into its buffer and again
// into the chunk, and hashes one byte at a time; this one copies the same
// twice (the read, the chunk handed out) and hashes four stretches at once
// (CutFinder.scan).
//
// The window holds the chunk being cut and what has been read past it:
// MaxSize plus one byte beyond a chunk's start is all a cut needs, so the
// window is a few times MaxSize, and what is left of it is moved to its
// front when the end is reached. Large bounds (a repository's file bounds,
// 8 MiB at most) are cut by a Chunker, whose buffer does not grow with
// them: StreamChunkerMaxSize.
type StreamChunker struct {
	p    Params
	find *CutFinder
	rd   io.Reader
	win  []byte // windowSize bytes of history, then the stream
	r, w int    // win[r:w] is read and not yet handed out
	eof  bool   // rd has ended; win[r:w] is all that is left
}

// StreamChunkerMaxSize is the largest MaxSize a StreamChunker takes: its
// window is streamWindowChunks times that.
const StreamChunkerMaxSize = 1 << 20

// streamWindowChunks sizes the window in chunks of MaxSize: a move to the
// front copies at most one MaxSize for every (streamWindowChunks-1) of
// them cut.
const streamWindowChunks = 8

// NewStreamChunker returns a StreamChunker for bounds p, which must have
// passed Validate and have MaxSize at most StreamChunkerMaxSize. Reset
// gives it a stream.
func NewStreamChunker(p Params) *StreamChunker {
	return &StreamChunker{p: p, find: NewCutFinder(p),
		win: make([]byte, windowSize+streamWindowChunks*int(p.MaxSize))}
}

// Reset makes c cut rd from its current position, keeping the window.
func (c *StreamChunker) Reset(rd io.Reader) {
	c.rd, c.r, c.w, c.eof = rd, windowSize, windowSize, false
	clear(c.win[:windowSize])
}

// Next returns the next chunk, in buf when it has room, like Chunker.Next:
// io.EOF at the end of the stream, and a read error as soon as it comes,
// possibly before chunks of bytes read before it (a stream that failed is
// not saved). Unlike restic/chunker it does not swallow
// io.ErrUnexpectedEOF from the reader, and it gives up with
// io.ErrNoProgress after maxEmptyReads empty reads where io.ReadFull
// would loop for ever.
func (c *StreamChunker) Next(buf []byte) ([]byte, error) {
	if c.rd == nil {
		return nil, errors.New("stream chunker without a stream")
	}
	// A cut needs the chunk's MaxSize bytes and one more: at exactly
	// MaxSize bytes before the end, the end and not a cut ends the chunk.
	if err := c.fill(c.r + int(c.p.MaxSize) + 1); err != nil {
		return nil, err
	}
	if c.r == c.w {
		return nil, io.EOF
	}
	end := c.find.cutIn(c.win[:c.w], c.r)
	if end < 0 {
		end = c.w // no cut before the end: the rest is the last chunk
	}
	n := end - c.r
	if cap(buf) < n {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	copy(buf, c.win[c.r:end])
	c.r = end
	return buf, nil
}

// maxEmptyReads bounds the reads in a row that return nothing and no
// error (which io.Reader allows, and discourages) before fill gives up.
const maxEmptyReads = 100

// fill reads until the window holds the stream up to index need, or the
// stream has ended. A window that would not reach need is first moved to
// the front, with the windowSize bytes before r as the scan's history.
func (c *StreamChunker) fill(need int) error {
	if c.w >= need || c.eof {
		return nil
	}
	if need > len(c.win) {
		n := copy(c.win, c.win[c.r-windowSize:c.w])
		c.r, c.w = windowSize, n
		need = windowSize + int(c.p.MaxSize) + 1
	}
	for empty := 0; c.w < need; {
		m, err := c.rd.Read(c.win[c.w:])
		c.w += m
		switch {
		case err == io.EOF:
			c.eof = true
			return nil
		case err != nil:
			return err
		case m > 0:
			empty = 0
		default:
			if empty++; empty == maxEmptyReads {
				return io.ErrNoProgress
			}
		}
	}
	return nil
}

// cutIn returns the cut that ends the chunk starting at buf[start], where
// buf holds all the data from there to its end or at least MaxSize+1
// bytes: the same cut as next would find in a file of len(buf) bytes, or
// -1 when the chunk runs to the end of buf. buf[start-windowSize:start]
// must exist (any bytes: they slide out before the first candidate).
func (f *CutFinder) cutIn(buf []byte, start int) int {
	first, last := start+int(f.min), min(start+int(f.max), len(buf)-1)
	if first > last {
		return -1
	}
	// The byte at first-1 makes first the first candidate (as in next).
	for lo := first - 1; lo < last; lo += f.block {
		if i := f.scan(buf, lo, min(lo+f.block, last)); i >= 0 {
			return i + 1
		}
	}
	if last == start+int(f.max) {
		return last
	}
	return -1
}
