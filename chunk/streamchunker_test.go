package chunk

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"testing"
	"testing/iotest"
)

// streamChunks cuts data read through rd with one StreamChunker.
func streamChunks(t *testing.T, rd io.Reader, p Params) [][]byte {
	t.Helper()
	c := NewStreamChunker(p)
	c.Reset(rd)
	return drain(t, c.Next)
}

// The stream chunker makes restic/chunker's chunks: every kind of data,
// chunks that end on a split point, at the maximum size, at the end,
// bounds from the smallest allowed to the stream defaults and beyond the
// window, and readers that hand out one byte, half a buffer, or the last
// bytes with io.EOF.
func TestStreamChunkerCutsLikeChunker(t *testing.T) {
	params := testBounds(t)
	readers := map[string]func(io.Reader) io.Reader{
		"whole":   func(r io.Reader) io.Reader { return r },
		"onebyte": iotest.OneByteReader,
		"half":    iotest.HalfReader,
		"dataerr": iotest.DataErrReader,
	}
	for _, kind := range []string{"random", "text", "zeros", "const", "mixed"} {
		for _, p := range params {
			sizes := []int{0, 1, 63, 64, 65, 1000, int(p.MaxSize), int(p.MaxSize) + 1, 70000, 600<<10 + 3}
			// Data that spans the window several times over, so that
			// what is left is moved to the front often.
			sizes = append(sizes, 3*streamWindowChunks*int(p.MaxSize)+17)
			for _, size := range sizes {
				if size > 7<<20 { // the default stream bounds' three windows: 6 MiB
					continue
				}
				data := testData(kind, size, uint64(size)+3)
				want := sequential(t, data, p)
				for name, wrap := range readers {
					if name == "onebyte" && size > 100000 {
						continue
					}
					t.Run(fmt.Sprintf("%s/min=%d,max=%d,bits=%d/size=%d/%s", kind, p.MinSize, p.MaxSize, p.AverageBits, size, name), func(t *testing.T) {
						sameChunks(t, streamChunks(t, wrap(bytes.NewReader(data)), p), want)
					})
				}
			}
		}
	}
}

// One chunker cuts stream after stream (Reset), each from its own start:
// nothing of the last one is left in the window.
func TestStreamChunkerReset(t *testing.T) {
	p := smallParams(t)
	c := NewStreamChunker(p)
	for i, size := range []int{200 << 10, 3000, 0, 1 << 20} {
		data := testData("mixed", size, uint64(i))
		c.Reset(bytes.NewReader(data))
		sameChunks(t, drain(t, c.Next), sequential(t, data, p))
	}
	// A chunk is put in the buffer given when it has room.
	data := testData("random", 100<<10, 7)
	c.Reset(bytes.NewReader(data))
	buf := make([]byte, 0, p.MaxSize)
	got, err := c.Next(buf)
	if err != nil || len(got) == 0 || &got[0] != &buf[:1][0] {
		t.Fatalf("Next(buf): %d bytes, %v; want the chunk in buf", len(got), err)
	}
}

// A read error ends the stream with that error; a reader that returns
// nothing for ever is an error too, not a hang.
func TestStreamChunkerReadErrors(t *testing.T) {
	p := smallParams(t)
	boom := errors.New("boom")
	data := testData("random", 100<<10, 1)
	c := NewStreamChunker(p)
	c.Reset(io.MultiReader(bytes.NewReader(data), iotest.ErrReader(boom)))
	var err error
	for err == nil {
		_, err = c.Next(nil)
	}
	if !errors.Is(err, boom) {
		t.Fatalf("Next after a read error: %v, want %v", err, boom)
	}

	c.Reset(emptyReader{})
	if _, err := c.Next(nil); !errors.Is(err, io.ErrNoProgress) {
		t.Fatalf("Next over a reader that returns nothing: %v, want %v", err, io.ErrNoProgress)
	}
	if _, err := NewStreamChunker(p).Next(nil); err == nil {
		t.Fatal("Next without Reset: no error")
	}
}

type emptyReader struct{}

func (emptyReader) Read([]byte) (int, error) { return 0, nil }

// fuzzPolynomial is a fixed irreducible polynomial (one NewParams drew), so
// that a failing input the fuzzer saves fails again in the next process.
const fuzzPolynomial = 0x3633ea6fad7cff

// FuzzStreamChunker holds the stream chunker to restic/chunker's chunks on
// any data, bounds and read sizes, with readers that give the last bytes
// together with io.EOF or return nothing now and then.
func FuzzStreamChunker(f *testing.F) {
	f.Add([]byte("hello, world"), uint16(64), uint16(64), uint8(8), uint8(0), uint8(0))
	f.Add(bytes.Repeat([]byte{0}, 5000), uint16(64), uint16(200), uint8(8), uint8(3), uint8(1))
	f.Add(testData("mixed", 20000, 1), uint16(100), uint16(3000), uint8(9), uint8(77), uint8(2))
	f.Fuzz(func(t *testing.T, data []byte, minSize, maxSize uint16, bits, step, mode uint8) {
		p := Params{Polynomial: fuzzPolynomial, MinSize: max(uint(minSize), 64), AverageBits: 8 + int(bits%12)}
		p.MaxSize = p.MinSize + uint(maxSize)
		rd := io.Reader(bytes.NewReader(data))
		if step > 0 {
			rd = &stepReader{data: data, step: int(step), eofWithData: mode&1 != 0, empty: mode&2 != 0}
		}
		sameChunks(t, streamChunks(t, rd, p), sequential(t, data, p))
	})
}

// stepReader hands out at most step bytes per Read; with eofWithData the
// last ones come with io.EOF, and with empty every other Read returns
// nothing (and no error).
type stepReader struct {
	data        []byte
	step        int
	eofWithData bool
	empty       bool
	calls       int
}

func (r *stepReader) Read(b []byte) (int, error) {
	r.calls++
	if r.empty && r.calls%2 == 0 {
		return 0, nil
	}
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	n := copy(b[:min(len(b), r.step)], r.data)
	r.data = r.data[n:]
	if r.eofWithData && len(r.data) == 0 {
		return n, io.EOF
	}
	return n, nil
}
