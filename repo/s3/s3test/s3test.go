// Package s3test starts a real S3 server on 127.0.0.1 for tests: versitygw
// (posix backend) by default, or MinIO when SNAP_TEST_S3=minio. The server
// keeps its objects in a temporary directory and is stopped when the test
// ends. No in-process fake stands in for S3.
//
// Binaries are found through SNAP_TEST_VERSITYGW / SNAP_TEST_MINIO (paths,
// set by .ci/run and `make test-minio`), then $PATH, then $HOME/go/bin.
// When the variable is set and the server does not come up, the test
// fails; when it is unset and no binary exists, the test is skipped.
package s3test

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Server is a running S3 server.
type Server struct {
	Kind      string // "versitygw" or "minio"
	Endpoint  string // 127.0.0.1:port
	AccessKey string
	SecretKey string
	Dir       string // where the server keeps its objects

	mu   sync.Mutex
	cmd  *exec.Cmd
	bin  string
	log  *bytes.Buffer
	done chan struct{}
}

// Kind returns the server kind the tests use: SNAP_TEST_S3, else versitygw.
func Kind() string {
	if k := os.Getenv("SNAP_TEST_S3"); k != "" {
		return k
	}
	return "versitygw"
}

// Binary finds the server's binary. required is true when the environment
// named it explicitly (so its absence is a failure, not a skip).
func Binary(kind string) (path string, required bool, err error) {
	envVar := map[string]string{"versitygw": "SNAP_TEST_VERSITYGW", "minio": "SNAP_TEST_MINIO"}[kind]
	if envVar == "" {
		return "", true, fmt.Errorf("SNAP_TEST_S3=%q: want versitygw or minio", kind)
	}
	if p := os.Getenv(envVar); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", true, fmt.Errorf("%s=%s: %v", envVar, p, err)
		}
		return p, true, nil
	}
	if p, err := exec.LookPath(kind); err == nil {
		return p, false, nil
	}
	if home, err := os.UserHomeDir(); err == nil {
		p := filepath.Join(home, "go", "bin", kind)
		if _, err := os.Stat(p); err == nil {
			return p, false, nil
		}
	}
	return "", false, fmt.Errorf("no %s binary: set %s or run .ci/run, which builds it", kind, envVar)
}

// Start starts a server of Kind() for the test and stops it at cleanup.
func Start(t testing.TB) *Server {
	t.Helper()
	return StartKind(t, Kind())
}

// StartKind starts a server of the given kind.
func StartKind(t testing.TB, kind string) *Server {
	t.Helper()
	bin, required, err := Binary(kind)
	if err != nil {
		if required || os.Getenv("SNAP_TEST_S3") != "" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	s, err := launch(kind, bin, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s
}

// Launch starts a server of the given kind ("versitygw" or "minio")
// keeping its objects in dir, outside of a test (the benchmark harness
// uses it). The caller stops it with Stop.
func Launch(kind, dir string) (*Server, error) {
	bin, _, err := Binary(kind)
	if err != nil {
		return nil, err
	}
	return launch(kind, bin, dir)
}

func launch(kind, bin, dir string) (*Server, error) {
	s := &Server{Kind: kind, bin: bin, AccessKey: "snaptestaccess", SecretKey: "snap-test-secret-key", Dir: dir}
	var lastErr error
	for range 5 { // a port picked free may be taken by the time the server binds it
		if lastErr = s.start(false); lastErr == nil {
			return s, nil
		}
	}
	return nil, fmt.Errorf("start %s: %v", kind, lastErr)
}

func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// start runs the server; with samePort it must bind the port it had.
func (s *Server) start(samePort bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.Endpoint == "" {
		addr, err := freePort()
		if err != nil {
			return err
		}
		s.Endpoint = addr
	}
	var cmd *exec.Cmd
	switch s.Kind {
	case "versitygw":
		cmd = exec.Command(s.bin, "--port", s.Endpoint, "--quiet", "--keep-alive", "posix", s.Dir)
		cmd.Env = append(os.Environ(), "ROOT_ACCESS_KEY="+s.AccessKey, "ROOT_SECRET_KEY="+s.SecretKey)
	case "minio":
		console, err := freePort()
		if err != nil {
			return err
		}
		cmd = exec.Command(s.bin, "server", "--quiet", "--address", s.Endpoint, "--console-address", console, s.Dir)
		cmd.Env = append(os.Environ(), "MINIO_ROOT_USER="+s.AccessKey, "MINIO_ROOT_PASSWORD="+s.SecretKey,
			"MINIO_BROWSER=off", "MINIO_UPDATE=off", "MINIO_CI_CD=1")
	}
	s.log = &bytes.Buffer{}
	cmd.Stdout, cmd.Stderr = s.log, s.log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-done:
			addr := s.Endpoint
			if !samePort {
				s.Endpoint = "" // pick another port next time
			}
			return fmt.Errorf("%s exited at start on %s: %s", s.Kind, addr, strings.TrimSpace(s.log.String()))
		default:
		}
		if ready(s.Endpoint) {
			// Another test's server may hold the port while ours failed
			// to bind it: ours must still be running.
			select {
			case <-done:
				continue // reported at the top of the loop
			case <-time.After(200 * time.Millisecond):
			}
			s.cmd, s.done = cmd, done
			return nil
		}
		if time.Now().After(deadline) {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
			return fmt.Errorf("%s did not answer on %s within 30s: %s", s.Kind, s.Endpoint, s.log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// ready reports whether an S3 server answers S3 requests on addr: an
// anonymous ListBuckets is refused (403) once it is up; a server still
// starting answers 503.
func ready(addr string) bool {
	c := http.Client{Timeout: time.Second}
	resp, err := c.Get("http://" + addr + "/")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode != http.StatusServiceUnavailable
}

// Stop kills the server (its objects stay in Dir).
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
	<-s.done
	s.cmd = nil
}

// Restart starts the server again on the same port and directory, after
// Stop (to test clients riding out an outage).
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	var err error
	for range 50 {
		if err = s.start(true); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("restart %s: %v", s.Kind, err)
}

// Env returns the environment a client needs: the credentials, as the
// usual AWS variables.
func (s *Server) Env() []string {
	return []string{"AWS_ACCESS_KEY_ID=" + s.AccessKey, "AWS_SECRET_ACCESS_KEY=" + s.SecretKey}
}

// Location returns the repository location for a bucket and prefix.
func (s *Server) Location(bucket, prefix string) string {
	loc := "s3:http://" + s.Endpoint + "/" + bucket
	if prefix != "" {
		loc += "/" + prefix
	}
	return loc
}

// SetEnv sets the credentials in the test process's environment.
func (s *Server) SetEnv(t testing.TB) {
	t.Helper()
	t.Setenv("AWS_ACCESS_KEY_ID", s.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", s.SecretKey)
	for _, v := range []string{"AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_REGION", "AWS_DEFAULT_REGION"} {
		t.Setenv(v, "")
	}
}
