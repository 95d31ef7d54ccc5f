package s3

import (
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/xml"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/snap-backup/snap/repo"
)

// credentialHint says where credentials come from, for access errors.
const credentialHint = "check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE and the shared credentials file: AWS_SHARED_CREDENTIALS_FILE, else ~/.aws/credentials)"

var expectingRegion = regexp.MustCompile(`expecting '([a-z0-9-]+)'`)

var urlInMessage = regexp.MustCompile(`https?://[^\s"]+`)

// fail turns a client error into one line that names the operation and
// the object and says what to do, and decides (once, here) whether the
// failure is worth repeating: 5xx answers, throttling, timeouts and broken
// connections are marked repo.ErrTransient; everything else (denied access,
// a missing bucket, a wrong region) is permanent. Credentials never appear:
// the client's messages do not carry them, and URLs are dropped.
func (b *Backend) fail(op, object string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) || contextDeadline(err) {
		// The command's own cancellation or deadline (Ctrl-C, a lock's
		// refresh), not the server's timeout.
		return fmt.Errorf("%s %s: %w", op, object, err)
	}
	var er minio.ErrorResponse
	if errors.As(err, &er) {
		return b.classify(op, object, er)
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err // the URL adds nothing the message does not say
	}
	if strings.Contains(err.Error(), "server gave HTTP response to HTTPS client") {
		// Retrying cannot help: the server does not speak TLS.
		return fmt.Errorf("%s %s: %s speaks plain HTTP, not HTTPS: use the location %s", op, object, b.cfg.Endpoint, b.withScheme("http"))
	}
	if strings.Contains(err.Error(), `malformed HTTP response "\x15\x03`) {
		// A TLS alert in answer to plain HTTP: the server speaks HTTPS.
		return fmt.Errorf("%s %s: %s speaks HTTPS, not plain HTTP: use the location %s", op, object, b.cfg.Endpoint, b.withScheme("https"))
	}
	var xmlErr *xml.SyntaxError
	if errors.As(err, &xmlErr) {
		// A 200 whose body is not S3's XML: a web server at the address
		// (a wrong port). Retrying cannot help.
		return fmt.Errorf("%s %s: %s answered with something that is not S3 XML (%v): is it an S3 server? check the host and port of the location", op, object, b.cfg.Endpoint, xmlErr)
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) && dnsErr.IsNotFound {
		// The name does not exist (not a resolver that did not answer,
		// which is worth repeating): a typo in the location.
		return fmt.Errorf("%s %s: no such host %s: check the host name in the repository location", op, object, dnsErr.Name)
	}
	var certErr *tls.CertificateVerificationError
	var unknownAuth x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	if errors.As(err, &certErr) || errors.As(err, &unknownAuth) || errors.As(err, &hostErr) {
		return fmt.Errorf("%s %s: %s does not present a trusted TLS certificate: %v (a server with a certificate of a private CA: install the CA in the system's store, or point SSL_CERT_FILE at a file holding it)", op, object, b.cfg.Endpoint, err)
	}
	// Refused, reset or timed-out connections, and responses that broke
	// off: the server may be restarting or the network flaky. A URL in
	// the client's message (it names the request, query and all) says
	// nothing the endpoint does not.
	msg := urlInMessage.ReplaceAllString(err.Error(), "(the request)")
	// The client's advice "Retry again." reads wrong after snap has
	// retried and given up (found by an exploratory test).
	msg = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(msg), "Retry again."))
	if !b.cfg.Secure && strings.Contains(msg, "closed by foreign host") {
		// Some HTTPS servers close a plain-HTTP connection without a
		// word (no TLS alert, no 400). One TLS handshake tells them
		// from a server that is restarting, so that a wrong scheme is
		// not retried for a minute (found by an exploratory test).
		if speaksTLS(b.cfg.Endpoint) == tlsYes {
			return fmt.Errorf("%s %s: %s speaks HTTPS, not plain HTTP (it closed the plain connection, and took a TLS handshake): use the location %s", op, object, b.cfg.Endpoint, b.withScheme("https"))
		}
		// No hint otherwise: a server that took the connection and not
		// the handshake speaks plain HTTP, and one that went away
		// (killed mid-request) says nothing of HTTPS; the hint misled
		// in both (found by exploratory tests).
	}
	if strings.Contains(msg, "connection refused") {
		msg += "; is the server running there, at that port?"
	}
	return repo.Transient(fmt.Errorf("%s %s at %s: %s", op, object, b.cfg.Endpoint, msg))
}

// deniedError is a request the server refused to this user: it is
// fs.ErrPermission (errors.Is), as a local file this user may not read is,
// so that the commands that read the repository take it for what it is
// and not for damage (an index segment denied counted as unreadable, and
// the advice was to rebuild the index without it; found by a review).
type deniedError struct{ msg string }

func denied(msg string) error       { return deniedError{msg} }
func (e deniedError) Error() string { return e.msg }
func (e deniedError) Unwrap() error { return fs.ErrPermission }

func (b *Backend) classify(op, object string, er minio.ErrorResponse) error {
	loc := b.Location()
	if strings.HasPrefix(strings.TrimSpace(er.Message), "<") && er.RequestID == "" {
		// A page rather than an S3 error (the client quotes the body of
		// an answer it cannot read as one): not worth a screenful.
		er.Message = "an answer that is not an S3 error (a web page): is " + b.cfg.Endpoint + " an S3 server?"
	}
	if d := b.clock.offBy(); d != 0 && (er.StatusCode == 403 || er.Code == "RequestTimeTooSkewed") {
		// Every request is refused while the clocks differ, whatever
		// the credentials.
		return skewError(op, object, b.cfg.Endpoint, d)
	}
	switch er.Code {
	case "AccessDenied", "AllAccessDisabled", "AccountProblem", "SignatureDoesNotMatch", "InvalidAccessKeyId":
		// A mistake in the credentials' source says more than the
		// server's refusal of what came of it.
		anonymous, mistake := b.anonymous(), credentialsMistake(os.Getenv)
		denied := er.Code == "AccessDenied" || er.Code == "AllAccessDisabled" || er.Code == "AccountProblem"
		switch {
		case anonymous && denied:
			why := ""
			if mistake != "" {
				why = " (" + mistake + ")"
			}
			return fmt.Errorf("%s %s: access denied by %s to a request without credentials: none were found%s; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE to a profile of the shared credentials file (AWS_SHARED_CREDENTIALS_FILE, else ~/.aws/credentials); a job under a timer gets them from /etc/snap/env (~/.config/snap/env for --user units)", op, object, loc, why)
		case mistake != "" && !anonymous:
			return fmt.Errorf("%s %s: refused by %s (%s): %s", op, object, loc, er.Code, mistake)
		}
	}
	switch er.Code {
	case "NoSuchKey", "NotFound":
		return fmt.Errorf("%s: %w", object, repo.ErrNotFound)
	case "NoSuchBucket":
		if er.RequestID == "" && er.HostID == "" {
			// The client reads any 404 without an S3 error document as
			// NoSuchBucket: a web server at the address answers so, and
			// S3 servers send a request ID with every answer.
			return fmt.Errorf("%s: bucket %q does not exist, or %s is not an S3 server (its answer, HTTP 404, carried no S3 request ID): %w (check the host and port of the location; 'snap init' creates the bucket)",
				loc, b.cfg.Bucket, b.cfg.Endpoint, repo.ErrNoRepository)
		}
		return fmt.Errorf("%s: bucket %q does not exist: %w (run 'snap init' to create it, or check the location)", loc, b.cfg.Bucket, repo.ErrNoRepository)
	case "AccessDenied", "AllAccessDisabled", "AccountProblem":
		return denied(fmt.Sprintf("%s %s: access denied by %s: %s, and that the bucket's policy allows this", op, object, loc, credentialHint))
	case "InvalidAccessKeyId", "XAdminUserNotFound":
		return fmt.Errorf("%s %s: the server does not know the access key: %s", op, object, credentialHint)
	case "SignatureDoesNotMatch":
		return fmt.Errorf("%s %s: the secret key does not match the access key: %s", op, object, credentialHint)
	case "ExpiredToken", "InvalidToken", "TokenRefreshRequired":
		return denied(fmt.Sprintf("%s %s: the session token is expired or invalid: renew AWS_SESSION_TOKEN", op, object))
	case "RequestTimeTooSkewed":
		return fmt.Errorf("%s %s: the server rejects this machine's clock as wrong: synchronise it (NTP)", op, object)
	case "AuthorizationHeaderMalformed", "PermanentRedirect", "IllegalLocationConstraintException", "InvalidRegion":
		return b.wrongRegion(op, object, er)
	case "SlowDown", "RequestTimeout", "InternalError", "ServiceUnavailable", "OperationAborted", "XMinioServerNotInitialized":
		return repo.Transient(fmt.Errorf("%s %s: %s replied %s (HTTP %d): %s", op, object, b.cfg.Endpoint, er.Code, er.StatusCode, er.Message))
	}
	switch {
	case er.StatusCode == 301:
		return b.wrongRegion(op, object, er)
	case er.StatusCode == 403:
		return fmt.Errorf("%s %s: access denied by %s (%s): %s", op, object, loc, er.Code, credentialHint)
	case er.StatusCode == 501:
		// Not Implemented: the server does not do this request at all
		// (a web server, not S3); asking again changes nothing, and it
		// was asked for a minute (found by an exploratory test).
		return fmt.Errorf("%s %s: %s replied %s (HTTP %d): %s", op, object, b.cfg.Endpoint, er.Code, er.StatusCode, er.Message)
	case er.StatusCode >= 500 || er.StatusCode == 429 || er.StatusCode == 408:
		return repo.Transient(fmt.Errorf("%s %s: %s replied %s (HTTP %d): %s", op, object, b.cfg.Endpoint, er.Code, er.StatusCode, er.Message))
	}
	msg := er.Message
	if msg == "" {
		msg = "request rejected"
	}
	if er.StatusCode == 400 && er.Region != "" && er.Region != cmp.Or(b.cfg.Region, "us-east-1") {
		// An answer without a body (to HEAD: init's bucket check) names
		// the bucket's region in a header only; it was taken for a TLS
		// server's (found by an exploratory test).
		return b.wrongRegion(op, object, er)
	}
	if !b.cfg.Secure && er.StatusCode == 400 && strings.Contains(er.Code, " ") && er.RequestID == "" {
		// Not an S3 error code but an HTTP status line: what a TLS
		// server answers a plain HTTP request with.
		return fmt.Errorf("%s %s: %s replied %s (HTTP %d), as a server that expects HTTPS does: if it does, use the location %s", op, object, b.cfg.Endpoint, er.Code, er.StatusCode, b.withScheme("https"))
	}
	return fmt.Errorf("%s %s: %s replied %s (HTTP %d): %s", op, object, b.cfg.Endpoint, er.Code, er.StatusCode, msg)
}

func (b *Backend) wrongRegion(op, object string, er minio.ErrorResponse) error {
	want := er.Region
	if m := expectingRegion.FindStringSubmatch(er.Message); m != nil {
		want = m[1]
	}
	have := b.cfg.Region
	if have == "" {
		have = "none"
	}
	if want != "" {
		return fmt.Errorf("%s %s: bucket %q is in region %s, not %s: set AWS_REGION=%s", op, object, b.cfg.Bucket, want, have, want)
	}
	return fmt.Errorf("%s %s: bucket %q is not in region %s (%s): set AWS_REGION to the bucket's region", op, object, b.cfg.Bucket, have, er.Code)
}

// withScheme is the repository's location with the other URL scheme.
func (b *Backend) withScheme(scheme string) string {
	c := b.cfg
	c.Secure = scheme == "https"
	c.short = false
	return c.Location()
}

// anonymous reports whether the requests went without credentials: no
// variable, no profile of the shared file, no instance role gave any.
func (b *Backend) anonymous() bool {
	if b.creds == nil {
		return false
	}
	v, err := b.creds.Get()
	return err != nil || v.AccessKeyID == ""
}

// contextDeadline reports whether err is a context's deadline itself. A
// server's timeout (the client's wait for headers, a connection's
// deadline) also answers errors.Is(err, context.DeadlineExceeded) and
// is a net.Error with Timeout, so neither test tells the two apart: only
// the sentinel, found in the chain, is the context's.
func contextDeadline(err error) bool {
	for e := err; e != nil; e = errors.Unwrap(e) {
		if e == context.DeadlineExceeded {
			return true
		}
	}
	return false
}

// speaksTLS tells whether a TLS handshake with endpoint succeeds within a
// few seconds, or whether no connection could be made at all. The
// certificate is not verified: nothing is sent over the connection, which
// only tells whether the server speaks TLS at all.
func speaksTLS(endpoint string) tlsProbe {
	d := &net.Dialer{Timeout: 3 * time.Second}
	c, err := tls.DialWithDialer(d, "tcp", endpoint, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // a probe, no data
	var op *net.OpError
	switch {
	case err == nil:
		c.Close()
		return tlsYes
	case errors.As(err, &op) && op.Op == "dial":
		return tlsUnreachable
	}
	return tlsNo
}

// tlsProbe is what speaksTLS found.
type tlsProbe int

const (
	tlsNo          tlsProbe = iota // it took the connection, not the handshake
	tlsYes                         // it took a TLS handshake
	tlsUnreachable                 // no connection at all
)
