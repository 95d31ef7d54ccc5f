package sources

import (
	"context"
	"io"
)

// Source kinds, as recorded in a snapshot's list of stream sources.
const (
	KindStdin    = "stdin"
	KindCommand  = "command"
	KindPostgres = "postgres"
	KindMySQL    = "mysql"
	KindSQLite   = "sqlite"
	KindMongoDB  = "mongodb"
)

// StdinStream returns a stream opener for r (snap's standard input). A
// blocked read of standard input cannot be interrupted, so the stream reads
// through a pipe that cancelling ctx closes: the snapshot is abandoned at
// once, and the goroutine left reading ends with the process.
func StdinStream(r io.Reader) func(ctx context.Context) (io.ReadCloser, error) {
	return func(ctx context.Context) (io.ReadCloser, error) {
		pr, pw := io.Pipe()
		go func() {
			_, err := io.Copy(pw, r)
			pw.CloseWithError(err)
		}()
		stop := context.AfterFunc(ctx, func() { pr.CloseWithError(ctx.Err()) })
		return &stdinReader{pr: pr, stop: stop}, nil
	}
}

type stdinReader struct {
	pr   *io.PipeReader
	stop func() bool
}

func (s *stdinReader) Read(p []byte) (int, error) { return s.pr.Read(p) }

func (s *stdinReader) Close() error {
	s.stop()
	return s.pr.Close()
}
