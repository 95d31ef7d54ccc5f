package chunk

import (
	"errors"
	"io"
	"math"
)

// FileChunker cuts a file read with ReadAt into exactly the chunks a
// Chunker reading it from the same offset makes, for less CPU: it finds
// each cut with a CutFinder (twice restic/chunker's speed, and it reads
// only the bytes it hashes), then reads the chunk with one ReadAt. Each
// hashed byte (and up to a read block past each cut) is read twice, the
// second time from the page cache, where
// restic/chunker copies every byte twice (into its buffer, then into the
// chunk). The two reads jump back by up to MinSize for every chunk, so a
// spinning disk reading an uncached file is better served by a Chunker
// (create --sequential-read).
//
// size is the file's size as listed. A file that grew is chunked to its
// new end, and one that shrank to its new end, as a Chunker would; only a
// file that changes while a chunk is read may get other cut points than a
// sequential run, never other bytes.
type FileChunker struct {
	p       Params
	find    *CutFinder
	ra      io.ReaderAt
	size    int64
	pos     int64    // the end of the last chunk returned
	tail    *Chunker // cuts the rest of a file that grew or shrank, made on first use
	tailing bool
	eof     bool
}

// FileChunkerMinAverage is the smallest average chunk (MinSize plus
// 2^AverageBits) for which a FileChunker pays off: it makes two reads per
// chunk where restic/chunker reads 512 KiB at a time, so bounds for chunks
// of a few KiB or less (a repository may choose them) are better cut by a
// Chunker.
const FileChunkerMinAverage = 64 << 10

// NewFileChunker returns a FileChunker for bounds p (which must have
// passed Validate); Reset gives it a file.
func NewFileChunker(p Params) *FileChunker {
	return &FileChunker{p: p, find: NewCutFinder(p)}
}

// Reset makes c cut ra, whose size was listed as size, from offset pos on.
func (c *FileChunker) Reset(ra io.ReaderAt, size, pos int64) {
	c.ra, c.size, c.pos = ra, size, pos
	c.tailing, c.eof = false, false
	if c.tail != nil {
		c.tail.Reset(nil) // let go of the last file
	}
}

// Next returns the next chunk, in buf when it has room, like Chunker.Next.
func (c *FileChunker) Next(buf []byte) ([]byte, error) {
	if c.eof {
		return nil, io.EOF
	}
	if !c.tailing {
		cut, err := c.find.next(c.ra, c.pos, c.size)
		switch {
		case err == nil && cut >= 0:
			return c.read(buf, cut)
		case err == nil:
			// No cut before size: the rest is the last chunk, unless
			// the file grew.
			if data, ok, err := c.last(buf); ok || err != nil {
				return data, err
			}
		case !errors.Is(err, errShort):
			return nil, err
		}
		// The file grew or shrank: a chunker cuts the rest, to its end.
		rd := io.NewSectionReader(c.ra, c.pos, math.MaxInt64-c.pos)
		if c.tail == nil {
			c.tail = New(rd, c.p)
		} else {
			c.tail.Reset(rd)
		}
		c.tailing = true
	}
	data, err := c.tail.Next(buf)
	if err == io.EOF {
		c.eof = true
	}
	if err != nil {
		return nil, err
	}
	c.pos += int64(len(data))
	return data, nil
}

// read returns the chunk that ends at cut.
func (c *FileChunker) read(buf []byte, cut int64) ([]byte, error) {
	data, last, err := readChunk(c.ra, buf, c.pos, int(cut-c.pos))
	c.pos += int64(len(data))
	c.eof = last
	return data, err
}

// readChunk reads the n bytes at pos, into buf when it has room. A file
// that ends sooner gives what it has as its last chunk (last is true;
// io.EOF when that is nothing). A short read without an error breaks the
// ReaderAt contract and is an error, never a chunk silently cut short.
func readChunk(ra io.ReaderAt, buf []byte, pos int64, n int) (data []byte, last bool, err error) {
	if cap(buf) < n {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	m, err := ra.ReadAt(buf, pos)
	switch {
	case m == n:
		return buf, false, nil
	case m > 0 && err == io.EOF:
		return buf[:m], true, nil
	case err == io.EOF:
		return nil, true, io.EOF
	case err == nil:
		return nil, false, io.ErrUnexpectedEOF
	default:
		return nil, false, err
	}
}

// last reads the rest of the file, from pos to size, as its last chunk;
// ok is false (and nothing consumed) when the file goes on past size.
func (c *FileChunker) last(buf []byte) (data []byte, ok bool, err error) {
	n := int(c.size - c.pos)
	if n <= 0 {
		// Only a file that grew past its old size reaches here: a
		// chunker looks at what follows.
		return nil, false, nil
	}
	if cap(buf) < n+1 {
		buf = make([]byte, n+1)
	}
	buf = buf[:n+1]
	m, err := c.ra.ReadAt(buf, c.pos)
	switch {
	case m == n && err == io.EOF:
		c.pos += int64(n)
		c.eof = true
		return buf[:n], true, nil
	case m < n && err == io.EOF:
		return nil, false, nil // shrank: the chunker cuts what is left
	case m == n+1:
		return nil, false, nil // grew
	case err == nil:
		return nil, false, io.ErrUnexpectedEOF // a short read without an error
	default:
		return nil, false, err
	}
}
