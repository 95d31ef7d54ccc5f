package s3

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"sync/atomic"
	"time"
)

// idleTimeout is how long a connection may move no byte, either way, in
// the middle of a request before it is given up (a timeout, which the
// retry wrapper repeats). A server that stops reading a PUT's body or
// stops sending a GET's (a stalled proxy, a frozen server) would otherwise
// hold the request, and the run, for ever: the client's own timeout covers
// only the wait for a response's headers.
const idleTimeout = 60 * time.Second

// withIdleTimeout makes tr's connections fail a read or write that makes
// no progress for timeout, and bounds the wait for an answer's headers
// by it too. Idle connections in the pool are closed sooner (the pool's
// read of them would meet the deadline too).
func withIdleTimeout(tr *http.Transport, timeout time.Duration) {
	tr.ResponseHeaderTimeout = timeout
	dial := tr.DialContext
	if dial == nil {
		dial = (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	}
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &idleConn{Conn: c, timeout: timeout}, nil
	}
	tr.IdleConnTimeout = min(tr.IdleConnTimeout, timeout/2)
	if tr.IdleConnTimeout <= 0 {
		tr.IdleConnTimeout = timeout / 2
	}
}

// idleConn sets a deadline before every read and write, so that only a
// stall ends the connection, however long the transfer: a Write blocked
// for the timeout (the server stopped reading an upload), a Read waiting
// for the timeout (it stopped sending a download's body).
//
// The client reads a connection in one goroutine that waits in Read for
// the whole time a request goes out, and the last bytes of an upload sit
// in the kernel's buffers, where nothing here sees them drain, long after
// the last Write returned. So a Write lifts the read deadline: the wait
// for the answer is bounded by the transport's ResponseHeaderTimeout,
// which counts from the end of the request, and each Read of the answer
// sets the deadline again.
type idleConn struct {
	net.Conn
	timeout time.Duration
}

func (c *idleConn) Read(p []byte) (int, error) {
	if err := c.Conn.SetReadDeadline(time.Now().Add(c.timeout)); err != nil {
		return 0, err
	}
	return c.Conn.Read(p)
}

func (c *idleConn) Write(p []byte) (int, error) {
	if err := c.Conn.SetReadDeadline(time.Time{}); err != nil {
		return 0, err
	}
	if err := c.Conn.SetWriteDeadline(time.Now().Add(c.timeout)); err != nil {
		return 0, err
	}
	return c.Conn.Write(p)
}

// maxSkew is how far S3 lets a request's signing time stray from the
// server's clock (AWS and MinIO alike): beyond it every request is refused.
const maxSkew = 15 * time.Minute

// clockWatch notes how far the server's clock, as the Date header of its
// last answer gives it, is from this machine's. A server that refuses a
// request for a skewed clock says so in an error document, but not to a
// HEAD, which has no body (init's bucket check): the refusal then reads as
// denied access, and only the Date header tells the two apart (found by an
// exploratory test).
type clockWatch struct {
	next http.RoundTripper
	skew atomic.Int64 // the server's time minus this machine's, in seconds
}

func (w *clockWatch) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := w.next.RoundTrip(r)
	if err == nil {
		if date, perr := http.ParseTime(resp.Header.Get("Date")); perr == nil {
			w.skew.Store(int64(time.Until(date) / time.Second))
		}
	}
	return resp, err
}

// offBy returns the skew of the server's clock when it is beyond what S3
// allows, else 0.
func (w *clockWatch) offBy() time.Duration {
	if w == nil {
		return 0
	}
	d := time.Duration(w.skew.Load()) * time.Second
	if d.Abs() <= maxSkew {
		return 0
	}
	return d
}

// skewError says that the clocks differ, by how much and which way, for a
// request the server refused.
func skewError(op, object, endpoint string, d time.Duration) error {
	way := "ahead of"
	if d < 0 {
		way = "behind"
	}
	return fmt.Errorf("%s %s: refused by %s, whose clock is %s %s this machine's: S3 refuses requests more than %v off; synchronise this machine's clock (NTP, e.g. 'timedatectl set-ntp true')",
		op, object, endpoint, d.Abs().Round(time.Minute), way, maxSkew)
}
