package chunk

import (
	"errors"
	"fmt"
	"io"

	"github.com/restic/chunker"
)

// Default size bounds for file contents: chunks of 512 KiB to 8 MiB, about
// 1 MiB on average.
const (
	DefaultMinSize     = 512 << 10
	DefaultMaxSize     = 8 << 20
	DefaultAverageBits = 20
)

// Default size bounds for streams (database dumps, command output): chunks
// of 16 KiB to 256 KiB, about 48 KiB on average (the minimum plus 2^15).
// A dump changes at a few scattered places (the end of each table that
// grew, a sequence value, a header line), and each place costs about one
// chunk: with file-sized chunks that is several MiB per dump, with these it
// is well under the 3 % of a 30 MB dump that rows appended to it add (see
// docs/design.md for the measurements).
const (
	DefaultStreamMinSize     = 16 << 10
	DefaultStreamMaxSize     = 256 << 10
	DefaultStreamAverageBits = 15
)

// StreamParams returns p's polynomial with the default stream bounds.
func (p Params) StreamParams() Params {
	return Params{Polynomial: p.Polynomial, MinSize: DefaultStreamMinSize, MaxSize: DefaultStreamMaxSize, AverageBits: DefaultStreamAverageBits}
}

// MaxChunkSize is the largest MaxSize a repository may configure. Decoders
// use it to bound what they accept.
const MaxChunkSize = 64 << 20

// Params decide where a stream is split. They are fixed per repository.
type Params struct {
	Polynomial  uint64 `json:"polynomial"`
	MinSize     uint   `json:"min_size"`
	MaxSize     uint   `json:"max_size"`
	AverageBits int    `json:"average_bits"`
}

// NewParams returns the default bounds with a fresh random irreducible
// polynomial.
func NewParams() (Params, error) {
	pol, err := chunker.RandomPolynomial()
	if err != nil {
		return Params{}, fmt.Errorf("chunker polynomial: %w", err)
	}
	return Params{Polynomial: uint64(pol), MinSize: DefaultMinSize, MaxSize: DefaultMaxSize, AverageBits: DefaultAverageBits}, nil
}

// Validate reports whether p can drive a chunker. Params come from the
// repository config, which is untrusted input.
func (p Params) Validate() error {
	pol := chunker.Pol(p.Polynomial)
	switch {
	case pol.Deg() != 53 || !pol.Irreducible():
		return errors.New("chunker polynomial is not an irreducible polynomial of degree 53")
	case p.MinSize < 64 || p.MaxSize < p.MinSize || p.MaxSize > MaxChunkSize:
		return fmt.Errorf("chunk size bounds %d..%d are out of range", p.MinSize, p.MaxSize)
	case p.AverageBits < 8 || p.AverageBits > 30:
		return fmt.Errorf("chunk average bits %d out of range 8..30", p.AverageBits)
	}
	return nil
}

// Chunker cuts one stream into chunks. It is not safe for concurrent use;
// run one Chunker per stream and Reset it for the next one.
type Chunker struct {
	params Params
	c      *chunker.Chunker
}

// New returns a chunker for rd. Params must have passed Validate.
func New(rd io.Reader, p Params) *Chunker {
	c := chunker.NewWithBoundaries(rd, chunker.Pol(p.Polynomial), p.MinSize, p.MaxSize)
	c.SetAverageBits(p.AverageBits)
	return &Chunker{params: p, c: c}
}

// Reset makes the chunker read a new stream, keeping its buffers.
func (c *Chunker) Reset(rd io.Reader) {
	c.c.ResetWithBoundaries(rd, chunker.Pol(c.params.Polynomial), c.params.MinSize, c.params.MaxSize)
	c.c.SetAverageBits(c.params.AverageBits)
}

// Next returns the next chunk, stored in buf when it has room (callers pass
// a buffer of MaxSize capacity to avoid allocation). The returned slice is
// only valid until buf is reused. At the end of the stream it returns io.EOF.
func (c *Chunker) Next(buf []byte) ([]byte, error) {
	ch, err := c.c.Next(buf)
	if err != nil {
		return nil, err
	}
	return ch.Data, nil
}
