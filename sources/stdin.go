package sources

import (
	"context"
	"errors"
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

// ErrEmptyStdin ends a standard input stream that ended before its first
// byte, unless the stream allows that. In `pg_dump app | snap create --stdin
// app.sql` a failed pg_dump looks to snap like an empty input, and a snapshot
// holding an empty dump must not pass for a backup.
var ErrEmptyStdin = errors.New("standard input was empty (did the command piped into snap fail? " +
	"with --command NAME -- CMD snap checks its exit status); --allow-empty-stdin saves an empty input")

// StdinStream returns a stream opener for r (snap's standard input). A
// blocked read of standard input cannot be interrupted, so the stream reads
// through a pipe that cancelling ctx closes: the snapshot is abandoned at
// once, and the goroutine left reading ends with the process. Unless
// allowEmpty, an input without a single byte fails the stream with
// ErrEmptyStdin.
func StdinStream(r io.Reader, allowEmpty bool) func(ctx context.Context) (io.ReadCloser, error) {
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
		return &stdinReader{pr: pr, stop: stop, allowEmpty: allowEmpty}, nil
	}
}

type stdinReader struct {
	pr         *io.PipeReader
	stop       func() bool
	allowEmpty bool
	read       int64
}

func (s *stdinReader) Read(p []byte) (int, error) {
	n, err := s.pr.Read(p)
	s.read += int64(n)
	if err == io.EOF && s.read == 0 && !s.allowEmpty {
		return n, ErrEmptyStdin
	}
	return n, err
}

func (s *stdinReader) Close() error {
	s.stop()
	return s.pr.Close()
}
