package sources

import (
	"context"
	"io"
	"strings"
	"testing"
)

type panicAfter struct{ r io.Reader }

func (p *panicAfter) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	if err == io.EOF {
		panic("injected: stdin")
	}
	return n, err
}

// A panic while standard input is copied ends the stream with an error
// (which fails the snapshot), not the process.
func TestStdinStreamPanic(t *testing.T) {
	open := StdinStream(&panicAfter{r: strings.NewReader("some input")}, false)
	rc, err := open(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	got, err := io.ReadAll(rc)
	if err == nil || !strings.Contains(err.Error(), "internal error reading standard input: injected: stdin") {
		t.Fatalf("read %q, error %v: want the panic as an error", got, err)
	}
	if string(got) != "some input" {
		t.Errorf("read %q before the error", got)
	}
}
