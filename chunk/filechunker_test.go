package chunk

import (
	"bytes"
	"fmt"
	"io"
	"testing"
)

// fileChunks returns every chunk a FileChunker cuts from ra, listed with
// size, from offset from.
func fileChunks(t testing.TB, ra io.ReaderAt, size int64, from int64, p Params) [][]byte {
	t.Helper()
	c := NewFileChunker(p)
	c.Reset(ra, size, from)
	var out [][]byte
	for {
		b, err := c.Next(nil)
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, bytes.Clone(b))
	}
}

// The chunks equal a Chunker's: every kind of data, bounds from the
// smallest to the stream and file defaults, a start anywhere.
func TestFileChunkerCutsLikeChunker(t *testing.T) {
	params := testBounds(t)
	for _, kind := range []string{"random", "text", "zeros", "const", "mixed"} {
		for _, p := range params {
			for _, size := range []int{1, 64, 65, 1000, 70000, 600<<10 + 3} {
				data := testData(kind, size, uint64(size)+5)
				for _, from := range []int{0, size / 3} {
					t.Run(fmt.Sprintf("%s/min=%d,max=%d/size=%d/from=%d", kind, p.MinSize, p.MaxSize, size, from), func(t *testing.T) {
						got := fileChunks(t, bytes.NewReader(data), int64(size), int64(from), p)
						sameChunks(t, got, sequential(t, data[from:], p))
					})
				}
			}
		}
	}
}

// A file that grew after its size was listed is chunked to its new end,
// one that shrank to its new end, each as a Chunker over what is there.
func TestFileChunkerFileChangedSize(t *testing.T) {
	p := smallParams(t)
	data := testData("mixed", 1<<20, 6)
	for _, listed := range []int{len(data) - 300<<10, len(data) - 1, len(data) + 1, len(data) + 300<<10} {
		t.Run(fmt.Sprintf("listed=%d", listed), func(t *testing.T) {
			got := fileChunks(t, bytes.NewReader(data), int64(listed), 0, p)
			sameChunks(t, got, sequential(t, data, p))
		})
	}
}
