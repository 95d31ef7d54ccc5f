package s3_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/snap-backup/snap/repo"
	"github.com/snap-backup/snap/repo/backendtest"
	"github.com/snap-backup/snap/repo/faulty"
	"github.com/snap-backup/snap/repo/retry"
	"github.com/snap-backup/snap/repo/s3"
	"github.com/snap-backup/snap/repo/s3/s3test"
)

func randomName(prefix string) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

func config(t *testing.T, srv *s3test.Server, bucket, prefix string) s3.Config {
	t.Helper()
	cfg, err := s3.ParseLocation(srv.Location(bucket, prefix), func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	// Parts of the minimum size, so that the 12 MiB object of the
	// conformance suite goes up in three parts.
	cfg.MultipartThreshold, cfg.PartSize = 6<<20, 5<<20
	return cfg
}

func TestConformance(t *testing.T) {
	srv := s3test.Start(t)
	srv.SetEnv(t)
	bucket := randomName("conf-")
	opts := backendtest.Options{Secrets: []string{srv.SecretKey}}
	t.Run("plain", func(t *testing.T) {
		backendtest.Run(t, func(t *testing.T) repo.Backend {
			be, err := s3.Create(context.Background(), config(t, srv, bucket, randomName("p/")))
			if err != nil {
				t.Fatal(err)
			}
			return be
		}, opts)
	})
	t.Run("bucket-root", func(t *testing.T) {
		backendtest.Run(t, func(t *testing.T) repo.Backend {
			be, err := s3.Create(context.Background(), config(t, srv, randomName("root-"), ""))
			if err != nil {
				t.Fatal(err)
			}
			return be
		}, opts)
	})
	t.Run("faulty-with-retry", func(t *testing.T) {
		seed := uint64(time.Now().UnixNano())
		t.Logf("seed %d", seed)
		backendtest.Run(t, func(t *testing.T) repo.Backend {
			be, err := s3.Create(context.Background(), config(t, srv, bucket, randomName("f/")))
			if err != nil {
				t.Fatal(err)
			}
			seed++
			f := faulty.New(be, faulty.Options{FailRate: 0.15, TruncateRate: 0.1, DelayRate: 0.1, Delay: 5 * time.Millisecond, Seed: seed})
			return retry.New(f, retry.Options{MaxAttempts: 30, Initial: time.Millisecond, Max: 5 * time.Millisecond})
		}, opts)
	})
}

func TestParseLocation(t *testing.T) {
	env := map[string]string{"AWS_REGION": "eu-central-1"}
	getenv := func(k string) string { return env[k] }
	for _, tc := range []struct {
		in, loc, endpoint, bucket, prefix string
		secure                            bool
	}{
		{"s3:http://127.0.0.1:9000/bkt", "s3:http://127.0.0.1:9000/bkt", "127.0.0.1:9000", "bkt", "", false},
		{"s3:https://minio.example.com/bkt/a/b/", "s3:https://minio.example.com/bkt/a/b", "minio.example.com", "bkt", "a/b", true},
		{"s3:my-bucket/host1", "s3:my-bucket/host1", "s3.amazonaws.com", "my-bucket", "host1", true},
		{"s3:my-bucket", "s3:my-bucket", "s3.amazonaws.com", "my-bucket", "", true},
		// A scheme in capitals is the same scheme.
		{"s3:HTTPS://h:65535/bkt", "s3:https://h:65535/bkt", "h:65535", "bkt", "", true},
	} {
		cfg, err := s3.ParseLocation(tc.in, getenv)
		if err != nil {
			t.Errorf("%s: %v", tc.in, err)
			continue
		}
		if cfg.Location() != tc.loc || cfg.Endpoint != tc.endpoint || cfg.Bucket != tc.bucket || cfg.Prefix != tc.prefix || cfg.Secure != tc.secure || cfg.Region != "eu-central-1" {
			t.Errorf("%s: got %+v (location %s)", tc.in, cfg, cfg.Location())
		}
	}
	for _, in := range []string{"s3:", "s3:http://", "s3:http://host:1/", "s3:Bad_Bucket/x", "s3:bkt/a//b", "s3:bkt/../x",
		"s3:http://AKIAKEY:supersecret@host/bkt", "s3:http://host/bkt?x=1", "s3://host:9000/bkt",
		// A port no server can have: the dial's error was retried for a
		// minute.
		"s3:http://h:0/bkt", "s3:http://h:99999/bkt", "s3:http://h:/bkt"} {
		_, err := s3.ParseLocation(in, getenv)
		if err == nil {
			t.Errorf("%s: accepted", in)
			continue
		}
		if strings.Contains(err.Error(), "supersecret") {
			t.Errorf("%s: error reveals the secret: %v", in, err)
		}
	}
	// Without a region in the environment, a custom endpoint gets
	// us-east-1 (no location lookup) and AWS asks the bucket.
	cfg, _ := s3.ParseLocation("s3:http://h:1/bkt", func(string) string { return "" })
	if cfg.Region != "us-east-1" {
		t.Errorf("default region %q", cfg.Region)
	}
	// Another scheme is named as such, not taken for a bucket "ftp:".
	if _, err := s3.ParseLocation("s3:ftp://h:1/bkt", getenv); err == nil || !strings.Contains(err.Error(), "ftp:// is not a scheme snap speaks; use s3:https://h:1/bkt") {
		t.Errorf("s3:ftp://: %v", err)
	}
}

func TestCreate(t *testing.T) {
	srv := s3test.Start(t)
	srv.SetEnv(t)
	ctx := context.Background()
	bucket := randomName("new-")
	be, err := s3.Create(ctx, config(t, srv, bucket, "repo"))
	if err != nil {
		t.Fatalf("create with a missing bucket: %v", err)
	}
	cond, err := be.ConditionalWrites(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s honours If-None-Match on PUT: %v", srv.Kind, cond)
	if err := be.Save(ctx, repo.Handle{Type: repo.ConfigFile}, []byte("cfg")); err != nil {
		t.Fatal(err)
	}
	if _, err := s3.Create(ctx, config(t, srv, bucket, "repo")); !errors.Is(err, repo.ErrExists) {
		t.Errorf("create on a used prefix: %v, want ErrExists", err)
	}
	if _, err := s3.Create(ctx, config(t, srv, bucket, "repo2")); err != nil {
		t.Errorf("create beside another repository: %v", err)
	}
	if _, err := s3.Create(ctx, config(t, srv, bucket, "")); !errors.Is(err, repo.ErrExists) {
		t.Errorf("create at the root of a used bucket: %v, want ErrExists", err)
	}
}

func TestPermanentErrors(t *testing.T) {
	srv := s3test.Start(t)
	srv.SetEnv(t)
	ctx := context.Background()
	bucket := randomName("perm-")
	if _, err := s3.Create(ctx, config(t, srv, bucket, "")); err != nil {
		t.Fatal(err)
	}
	listKeys := func(be repo.Backend) error {
		// Through the retry wrapper: a permanent error must come back at
		// once, not after the backoff.
		rb := retry.New(be, retry.Options{Initial: time.Second})
		start := time.Now()
		err := rb.List(ctx, repo.KeyFile, func(string, int64) error { return nil })
		if time.Since(start) > 900*time.Millisecond {
			t.Errorf("permanent error was retried: %v", err)
		}
		return err
	}

	be, _ := s3.Open(config(t, srv, randomName("missing-"), ""))
	err := listKeys(be)
	if !errors.Is(err, repo.ErrNoRepository) || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("missing bucket: %v", err)
	}

	t.Setenv("AWS_SECRET_ACCESS_KEY", "wrong-secret-key-123")
	be, _ = s3.Open(config(t, srv, bucket, ""))
	err = listKeys(be)
	if err == nil || !strings.Contains(err.Error(), "AWS_SECRET_ACCESS_KEY") || strings.Contains(err.Error(), "wrong-secret-key-123") {
		t.Errorf("wrong secret: %v", err)
	}
	t.Logf("wrong secret: %v", err)

	t.Setenv("AWS_ACCESS_KEY_ID", "nosuchkey")
	be, _ = s3.Open(config(t, srv, bucket, ""))
	err = listKeys(be)
	if err == nil || !strings.Contains(err.Error(), "AWS_ACCESS_KEY_ID") {
		t.Errorf("unknown access key: %v", err)
	}
	t.Logf("unknown access key: %v", err)

	// No credentials anywhere: the message says so.
	t.Setenv("AWS_ACCESS_KEY_ID", "")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", t.TempDir()+"/none")
	t.Setenv("AWS_PROFILE", "missing")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	be, _ = s3.Open(config(t, srv, bucket, ""))
	err = listKeys(be)
	if err == nil || !strings.Contains(err.Error(), "none were found (the shared credentials file") {
		t.Errorf("no credentials: %v", err)
	}
	t.Logf("no credentials: %v", err)

	srv.SetEnv(t)
	cfg := config(t, srv, bucket, "")
	cfg.Region = "eu-west-3"
	be, _ = s3.Open(cfg)
	err = listKeys(be)
	t.Logf("wrong region: %v", err)
	if err == nil || !strings.Contains(err.Error(), "region") {
		// Not every server checks the region a request is signed for.
		t.Logf("%s does not reject a request signed for another region", srv.Kind)
	}
}

// TestOutage: the server goes away for a while; requests made meanwhile
// are retried until it is back.
func TestOutage(t *testing.T) {
	srv := s3test.Start(t)
	srv.SetEnv(t)
	ctx := context.Background()
	raw, err := s3.Create(ctx, config(t, srv, randomName("outage-"), "r"))
	if err != nil {
		t.Fatal(err)
	}
	var retries int
	be := retry.New(raw, retry.Options{Initial: 100 * time.Millisecond, Max: 500 * time.Millisecond, MaxAttempts: 40, Log: func(m string) { retries++ }})
	h := repo.Handle{Type: repo.SnapshotFile, Name: repo.Hash([]byte("x")).String()}
	srv.Stop()
	done := make(chan struct{})
	go func() {
		time.Sleep(time.Second)
		srv.Restart(t)
		close(done)
	}()
	if err := be.Save(ctx, h, []byte("x")); err != nil {
		t.Fatalf("save across an outage: %v", err)
	}
	<-done
	if retries == 0 {
		t.Error("no retries logged during the outage")
	}
	got, err := be.Load(ctx, h, 0, 0)
	if err != nil || string(got) != "x" {
		t.Fatalf("load after the outage: %q, %v", got, err)
	}
	// A server that stays away: a clear error after the attempts.
	srv.Stop()
	short := retry.New(raw, retry.Options{Initial: time.Millisecond, Max: time.Millisecond, MaxAttempts: 3})
	_, err = short.Load(ctx, h, 0, 0)
	if err == nil || !strings.Contains(err.Error(), "gave up after 3 attempts") || !strings.Contains(err.Error(), srv.Endpoint) {
		t.Errorf("load from a server that is down: %v", err)
	}
	t.Logf("server down: %v", err)
}

// stallProxy forwards TCP connections to the server until freeze is
// called; from then on it moves no byte either way, as a server or proxy
// that hangs mid-transfer does.
type stallProxy struct {
	ln     net.Listener
	frozen chan struct{}
	once   sync.Once
}

func newStallProxy(t *testing.T, target string) *stallProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &stallProxy{ln: ln, frozen: make(chan struct{})}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			go p.pipe(c, s)
			go p.pipe(s, c)
		}
	}()
	return p
}

func (p *stallProxy) pipe(dst, src net.Conn) {
	defer dst.Close()
	buf := make([]byte, 16<<10)
	for {
		n, err := src.Read(buf)
		select {
		case <-p.frozen:
			<-time.After(time.Hour) // hold the connection, move nothing
			return
		default:
		}
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (p *stallProxy) freeze() { p.once.Do(func() { close(p.frozen) }) }

// TestStalledTransfer: a server that stops moving bytes in the middle of
// a GET's body or a PUT's gives a timeout, which the retry wrapper
// repeats, after the idle timeout, not a request that waits for ever.
func TestStalledTransfer(t *testing.T) {
	srv := s3test.Start(t)
	srv.SetEnv(t)
	ctx := context.Background()
	bucket := randomName("stall-")
	direct, err := s3.Create(ctx, config(t, srv, bucket, ""))
	if err != nil {
		t.Fatal(err)
	}
	big := make([]byte, 4<<20)
	_, _ = rand.Read(big)
	h := repo.Handle{Type: repo.PackFile, Name: repo.Hash(big).String()}
	if err := direct.Save(ctx, h, big); err != nil {
		t.Fatal(err)
	}
	proxy := newStallProxy(t, srv.Endpoint)
	cfg := config(t, srv, bucket, "")
	cfg.Endpoint = proxy.ln.Addr().String()
	cfg.IdleTimeout = time.Second
	be, err := s3.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := be.Load(ctx, h, 0, 0); err != nil { // the proxy works
		t.Fatal(err)
	}
	for _, op := range []string{"load", "save"} {
		fresh, _ := s3.Open(cfg) // a new connection through the frozen proxy
		start := time.Now()
		proxy.freeze()
		if op == "load" {
			_, err = fresh.Load(ctx, h, 0, 0)
		} else {
			err = fresh.Save(ctx, repo.Handle{Type: repo.PackFile, Name: repo.Hash(big[1:]).String()}, big[1:])
		}
		if err == nil || !errors.Is(err, repo.ErrTransient) || time.Since(start) > 30*time.Second || strings.Contains(err.Error(), "http://") {
			t.Errorf("%s through a stalled connection: %v after %v; want a transient error within seconds, without the URL", op, err, time.Since(start))
		}
		t.Logf("%s stalled: %v", op, err)
	}
}

// TestSchemeMismatch: an https location for a server that speaks plain
// HTTP fails at once (no retries), naming the location to use.
func TestSchemeMismatch(t *testing.T) {
	srv := s3test.Start(t)
	srv.SetEnv(t)
	cfg := config(t, srv, randomName("scheme-"), "")
	cfg.Secure = true
	be, _ := s3.Open(cfg)
	rb := retry.New(be, retry.Options{Initial: time.Second})
	start := time.Now()
	err := rb.List(context.Background(), repo.KeyFile, func(string, int64) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "speaks plain HTTP") || !strings.Contains(err.Error(), "s3:http://"+srv.Endpoint) || time.Since(start) > 900*time.Millisecond {
		t.Errorf("https to a plain HTTP server: %v after %v", err, time.Since(start))
	}
}
