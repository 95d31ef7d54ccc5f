package s3

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"
)

// TestIdleTimeoutSlowUpload: a body that goes up slowly but steadily takes
// longer than the idle timeout and still succeeds; only a stall fails. The
// server is a real HTTP server on a loopback socket that reads the body at
// about 8 MB/s: 24 MiB take 3 s, three times the timeout (the kernel's
// buffers, a few MiB, drain well within it).
func TestIdleTimeoutSlowUpload(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		buf := make([]byte, 32<<10)
		for {
			time.Sleep(4 * time.Millisecond)
			if _, err := r.Body.Read(buf); err != nil {
				break
			}
		}
		io.WriteString(w, "ok")
	}))
	defer srv.Close()
	tr := http.DefaultTransport.(*http.Transport).Clone()
	withIdleTimeout(tr, time.Second)
	client := &http.Client{Transport: tr}
	start := time.Now()
	resp, err := client.Post(srv.URL, "application/octet-stream", bytes.NewReader(make([]byte, 24<<20)))
	if err != nil {
		t.Fatalf("a slow upload of %v failed: %v", time.Since(start), err)
	}
	resp.Body.Close()
	if d := time.Since(start); d < 2*time.Second {
		t.Logf("the upload took %v: shorter than intended, the test shows less", d)
	}

	// A server that reads nothing: the upload fails after the timeout.
	stall := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(3 * time.Second)
	}))
	defer stall.Close()
	start = time.Now()
	if _, err := client.Post(stall.URL, "application/octet-stream", bytes.NewReader(make([]byte, 8<<20))); err == nil || time.Since(start) > 2900*time.Millisecond {
		t.Errorf("a stalled upload: %v after %v, want a timeout", err, time.Since(start))
	}
}

// TestContextDeadlineIsNotServerTimeout: the command's own deadline is
// told apart from a server's timeout, which looks like it to errors.Is.
func TestContextDeadlineIsNotServerTimeout(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Nanosecond)
	defer cancel()
	<-ctx.Done()
	own := &url.Error{Op: "Get", URL: "http://x", Err: ctx.Err()}
	if !contextDeadline(own) {
		t.Errorf("a context's deadline: not recognised")
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { time.Sleep(time.Second) }))
	defer srv.Close()
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.ResponseHeaderTimeout = 50 * time.Millisecond
	_, err := (&http.Client{Transport: tr}).Get(srv.URL)
	if err == nil || contextDeadline(err) {
		t.Errorf("a server's timeout (%v) taken for the context's deadline", err)
	}
}
