package main

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"github.com/urfave/cli/v2"

	"github.com/snap-backup/snap/repo"
	"github.com/snap-backup/snap/repo/limit"
	"github.com/snap-backup/snap/repo/local"
	"github.com/snap-backup/snap/repo/retry"
	"github.com/snap-backup/snap/repo/s3"
)

// defaultS3Connections is how many requests run at once against an S3
// server unless --connections says otherwise. A local directory has no
// limit by default.
const defaultS3Connections = 8

// backendOptions say how a repository location is opened.
type backendOptions struct {
	// connections bounds the requests in flight (--connections); 0 picks
	// the backend's default.
	connections int
	// upload and download bound the bytes per second sent to and
	// received from the repository (--limit-upload, --limit-download; 0:
	// no limit).
	upload, download uint64
	// log receives notices about retried requests.
	log func(string)
	// hooks, set only by tests: request counting or fault injection
	// around the raw backend, and a faster backoff.
	hooks *backendHooks
	// packs, when set, records the packs saved (env.packs).
	packs *packLedger
}

func backendOptionsFrom(c *cli.Context, e *env, u *ui) (backendOptions, error) {
	n, err := connectionsFlag(c, e)
	if err != nil {
		return backendOptions{}, err
	}
	up, down, err := rateFlags(c, e)
	if err != nil {
		return backendOptions{}, err
	}
	return backendOptions{connections: n, upload: up.bps, download: down.bps, log: func(m string) { u.infof("%s", m) }, hooks: e.backendHooks, packs: &e.packs}, nil
}

// rateFlag is --limit-upload or --limit-download as given: set says the
// flag (or its variable) was given at all, so that "off" can lift a
// config file's limit.
type rateFlag struct {
	set bool
	bps uint64 // bytes per second; 0: no limit
}

// or returns the flag's rate, or the config's when the flag was not given.
func (r rateFlag) or(config uint64) uint64 {
	if r.set {
		return r.bps
	}
	return config
}

// rateFlags reads --limit-upload and --limit-download (or
// SNAP_LIMIT_UPLOAD, SNAP_LIMIT_DOWNLOAD). An error names what was given:
// the flag, or the variable.
func rateFlags(c *cli.Context, e *env) (upload, download rateFlag, err error) {
	read := func(flag, envVar string) (rateFlag, error) {
		v, from := gstring(c, flag), "--"+flag
		if v == "" {
			v, from = e.getenv(envVar), envVar
		}
		if v == "" {
			return rateFlag{}, nil
		}
		n, err := parseRate(v)
		if err != nil {
			return rateFlag{}, usagef("%s: %v", from, err)
		}
		return rateFlag{set: true, bps: n}, nil
	}
	if upload, err = read("limit-upload", "SNAP_LIMIT_UPLOAD"); err != nil {
		return rateFlag{}, rateFlag{}, err
	}
	download, err = read("limit-download", "SNAP_LIMIT_DOWNLOAD")
	return upload, download, err
}

// parseRate reads a rate limit: a size per second ("5MiB", "5MiB/s",
// "800K"), at least 1 KiB, or "off" (also "0") for none.
func parseRate(s string) (uint64, error) {
	t := strings.TrimSpace(s)
	if n := len(t); n > 2 && strings.EqualFold(t[n-2:], "/s") {
		t = t[:n-2]
	}
	if strings.EqualFold(t, "off") || t == "0" {
		return 0, nil
	}
	n, err := parseSize(t)
	if err != nil || n < 1024 {
		return 0, fmt.Errorf("rate %q: give a size per second of at least 1KiB, such as 5MiB, or off", s)
	}
	return n, nil
}

// connectionsFlag reads --connections (or SNAP_CONNECTIONS).
func connectionsFlag(c *cli.Context, e *env) (int, error) {
	v, from := gstring(c, "connections"), "--connections"
	if v == "" {
		v, from = e.getenv("SNAP_CONNECTIONS"), "SNAP_CONNECTIONS"
	}
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > 256 {
		return 0, usagef("%s %q: give a number from 1 to 256", from, v)
	}
	return n, nil
}

// openBackend returns the backend for a repository location, with the
// wrappers every command gets (composeBackend). This is the one place
// that knows every backend. With create, the location is prepared for a
// new repository (an S3 bucket is created when missing).
func openBackend(ctx context.Context, e *env, location string, create bool, o backendOptions) (repo.Backend, int, error) {
	if location == "" {
		return nil, 0, usagef("no repository given: use --repo, set SNAP_REPOSITORY, or name it in a config file (repository = \"…\" in ~/.config/snap/snap.toml or /etc/snap/snap.toml, or --config FILE)")
	}
	var (
		be    repo.Backend
		conns int
		err   error
	)
	if strings.HasPrefix(location, "s3:") {
		cfg, perr := s3.ParseLocation(location, e.getenv)
		if perr != nil {
			return nil, 0, usagef("%v", perr)
		}
		conns = defaultS3Connections
		if create {
			ro := backendRetry(o)
			err = retry.Do(ctx, ro, "prepare", cfg.Location(), func() error {
				var cerr error
				be, cerr = s3.Create(ctx, cfg)
				return cerr
			})
		} else {
			be, err = s3.Open(cfg)
		}
	} else {
		if err := notAURL(location); err != nil {
			return nil, 0, err
		}
		location = strings.TrimPrefix(location, "local:")
		if create {
			be, err = local.Create(location)
		} else {
			be, err = local.Open(location)
		}
	}
	if err != nil {
		return nil, 0, err
	}
	if o.connections > 0 {
		conns = o.connections
	}
	return composeBackend(be, conns, o, ctx.Done()), conns, nil
}

// urlLike matches a location that begins as a URL or a remote path does:
// a scheme, a colon and a slash (http://, https:/, nas:/export), user@host:,
// S3: in another case, or s3 followed by slashes. A colon alone does not
// (repo:old, backup-2024-01-01T10:00 are names of directories).
var urlLike = regexp.MustCompile(`^([A-Za-z][A-Za-z0-9+.-]*:/|[^/]*@[^/]*:|[sS]3:|[sS]3//)`)

// notAURL refuses a location that is not s3: (in lower case) but looks
// like a URL or host:path: taken as a relative directory, http://host/bucket
// or S3:http://… made a repository in ./http: below the working directory,
// and every backup went to the same disk while the admin thought it off
// site (found by an exploratory test). local: takes such a name as a
// directory.
func notAURL(location string) error {
	// Blanks around it do not make it a directory (" http://x/b" made
	// one; found by a re-test).
	trimmed := strings.TrimSpace(location)
	if !urlLike.MatchString(trimmed) || strings.HasPrefix(location, "local:") || strings.HasPrefix(location, "s3:") {
		return nil
	}
	return usagef("repository location %q looks like a URL or a remote host:path, and is not taken for a directory: for S3 write s3:http[s]://host:port/bucket[/prefix] or s3:bucket[/prefix] (s3: in lower case); for a directory of that name put local: before it", redactedLocation(location))
}

// isRemote reports whether every request to the location goes over the
// network, which makes caching tree packs locally worth it.
func isRemote(location string) bool { return strings.HasPrefix(location, "s3:") }

// composeBackend puts the behaviour wrappers around a backend, innermost
// first: the test hook (which must see every real request), the
// connection limit, the rate limits (a request waiting for its turn holds
// no connection), and retries outermost, so that a request waiting out
// its backoff does not hold a connection either (and a retried request
// is paced again). conns 0 means no limit. A closed stop (the command's
// cancellation) ends every wait for the rate limits.
func composeBackend(be repo.Backend, conns int, o backendOptions, stop <-chan struct{}) repo.Backend {
	if o.hooks != nil && o.hooks.wrap != nil {
		be = o.hooks.wrap(be)
	}
	if conns > 0 {
		be = limit.New(be, conns)
	}
	if o.upload > 0 || o.download > 0 {
		be = limit.NewRated(be, o.upload, o.download, stop)
	}
	be = retry.New(be, backendRetry(o))
	if o.packs != nil {
		be = packCounter{Backend: be, packs: o.packs}
	}
	return be
}

// packCounter records the packs its backend saved in a packLedger.
type packCounter struct {
	repo.Backend
	packs *packLedger
}

func (b packCounter) Save(ctx context.Context, h repo.Handle, data []byte) error {
	err := b.Backend.Save(ctx, h, data)
	if err == nil && h.Type == repo.PackFile {
		b.packs.saved(h.Name)
	}
	return err
}

// packLedger is what became of the packs a command saved: those no index
// segment it wrote lists yet are what a command that fails against a
// repository that stopped answering leaves unindexed. Said of every pack
// the command had saved, it was wrong where the run indexed them before it
// gave up (found by an exploratory test: an S3 server whose disk filled).
type packLedger struct {
	mu      sync.Mutex
	pending map[string]bool
}

func (l *packLedger) saved(name string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.pending == nil {
		l.pending = map[string]bool{}
	}
	l.pending[name] = true
}

// indexed is index.WriterOptions.Indexed: the packs of a durable segment.
func (l *packLedger) indexed(ids []repo.ID) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, id := range ids {
		delete(l.pending, id.String())
	}
}

// unindexed returns how many of the packs saved no segment the command
// wrote lists.
func (l *packLedger) unindexed() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.pending)
}

// withLedger chains the ledger's indexed before fn (which may be nil),
// as a writer's Indexed.
func (l *packLedger) withLedger(fn func([]repo.ID)) func([]repo.ID) {
	return func(ids []repo.ID) {
		l.indexed(ids)
		if fn != nil {
			fn(ids)
		}
	}
}

func (b packCounter) Unwrap() repo.Backend { return b.Backend }

// backendRetry is how the command's requests are retried: the defaults,
// or a test's, logging to the command's log.
func backendRetry(o backendOptions) retry.Options {
	var ro retry.Options
	if o.hooks != nil {
		ro = o.hooks.retry
	}
	ro.Log = o.log
	return ro
}
