package sources

import (
	"context"
	"fmt"
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
			// A panic here (a bug, or in the reader snap was given) must
			// not end the process: it ends the stream with an error, which
			// fails the snapshot like a failed read. sources imports
			// nothing of snap, so this is the one goroutine that does not
			// use repo.Catch.
			defer func() {
				if v := recover(); v != nil {
					pw.CloseWithError(fmt.Errorf("internal error reading standard input: %v", v))
				}
			}()
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
