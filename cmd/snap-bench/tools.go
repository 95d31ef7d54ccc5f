package main

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// backupTool drives one backup program on one dataset, with its own
// repository and cache below dir.
type backupTool interface {
	Name() string
	// Init creates a fresh repository, removing an earlier one.
	Init() error
	// Create backs up the dataset as it is now.
	Create(ds *dataset, op string) (measurement, error)
	// Restore writes the latest snapshot into the empty directory target
	// and returns where the dataset's root (or stream file) landed.
	Restore(ds *dataset, target, op string) (measurement, string, error)
	// RepoSize is the size of the repository's files.
	RepoSize() int64
}

// base holds what every tool has: a directory with repo/, cache/ and a log.
type base struct {
	name string
	dir  string
	env  []string
	n    int // snapshots made since Init
	// location, when set, is the repository's location instead of repo/
	// below dir (an S3 bucket on the benchmark's MinIO).
	location string
}

func (b *base) Name() string { return b.name }
func (b *base) repo() string { return filepath.Join(b.dir, "repo") }
func (b *base) loc() string {
	if b.location != "" {
		return b.location
	}
	return b.repo()
}
func (b *base) cache() string   { return filepath.Join(b.dir, "cache") }
func (b *base) log() string     { return filepath.Join(b.dir, "log.txt") }
func (b *base) RepoSize() int64 { return dirSize(b.repo()) }

func (b *base) reset() error {
	b.n = 0
	if err := os.RemoveAll(b.repo()); err != nil {
		return err
	}
	if err := os.RemoveAll(b.cache()); err != nil {
		return err
	}
	return os.MkdirAll(b.cache(), 0o700)
}

func (b *base) cmd(name string, args ...string) cmdSpec {
	return cmdSpec{name: name, args: args, env: b.env, log: b.log()}
}

// restoredRoot finds the dataset below a restore target: tools put a
// directory at its absolute path (borg without the leading slash) and a
// stream file somewhere below the target under its name.
func restoredRoot(ds *dataset, target string) (string, error) {
	if ds.root == "" {
		return findFile(target, ds.streamName)
	}
	for _, p := range []string{filepath.Join(target, ds.root), filepath.Join(target, strings.TrimPrefix(ds.root, "/"))} {
		if fi, err := os.Stat(p); err == nil && fi.IsDir() {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found below restore target %s", ds.root, target)
}

// ---- snap ---------------------------------------------------------------

type snapTool struct {
	base
	bin        string
	hasStdin   bool     // this snap has create --stdin
	profDir    string   // CPU profiles go here when set
	createArgs []string // extra options of every create
	// unprofiled turns profiling off for the runs that follow: the timed
	// runs of a repeated operation, whose profile comes from one more run.
	unprofiled bool
}

func newSnap(bin, dir, password string, profile bool) (*snapTool, error) {
	pwFile := filepath.Join(dir, "password")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	if err := os.WriteFile(pwFile, []byte(password+"\n"), 0o600); err != nil {
		return nil, err
	}
	t := &snapTool{base: base{name: "snap", dir: dir}, bin: bin}
	t.env = []string{"SNAP_PASSWORD_FILE=" + pwFile, "SNAP_CACHE_DIR=" + t.cache(), "SNAP_REPOSITORY=", "SNAP_PASSWORD="}
	help, _ := exec.Command(bin, "create", "--help").CombinedOutput()
	t.hasStdin = strings.Contains(string(help), "--stdin")
	if profile {
		t.profDir = filepath.Join(dir, "profiles")
	}
	return t, nil
}

// RepoSize leaves out snap's space reserve (reserve.<size> in the
// repository directory, 64 MiB by default): preallocated free space for
// forget and prune on a full disk, not stored data.
func (t *snapTool) RepoSize() int64 {
	n := dirSize(t.repo())
	m, _ := filepath.Glob(filepath.Join(t.repo(), "reserve.*"))
	for _, p := range m {
		if fi, err := os.Lstat(p); err == nil && fi.Mode().IsRegular() {
			n -= fi.Size()
		}
	}
	return n
}

func (t *snapTool) Init() error {
	if err := t.reset(); err != nil {
		return err
	}
	_, err := run(t.cmd(t.bin, "init", "-r", t.loc()))
	return err
}

// profiled adds a CPU profile file named after the operation.
func (t *snapTool) profiled(c cmdSpec, op string) cmdSpec {
	if t.profDir != "" && !t.unprofiled {
		_ = os.MkdirAll(t.profDir, 0o755)
		c.env = append(append([]string(nil), c.env...), "SNAP_CPUPROFILE="+t.profile(op))
	}
	return c
}

func (t *snapTool) profile(op string) string {
	if t.profDir == "" {
		return ""
	}
	return filepath.Join(t.profDir, op+".prof")
}

func (t *snapTool) Create(ds *dataset, op string) (measurement, error) {
	t.n++
	create := append([]string{"create", "-q", "-r", t.loc()}, t.createArgs...)
	switch {
	case ds.root != "":
		return run(t.profiled(t.cmd(t.bin, append(create, ds.root)...), op))
	case t.hasStdin:
		c := t.profiled(t.cmd(t.bin, append(create, "--stdin", ds.streamName)...), op)
		c.stdin = ds.stream
		return run(c)
	default:
		// This snap cannot read standard input: back the dump up as a file
		// (a fresh copy each time, so it is read again like a stream).
		p := filepath.Join(t.dir, "stream", ds.streamName)
		if err := copyPlain(ds.stream, p); err != nil {
			return measurement{}, err
		}
		return run(t.profiled(t.cmd(t.bin, append(create, p)...), op))
	}
}

func (t *snapTool) Restore(ds *dataset, target, op string) (measurement, string, error) {
	m, err := run(t.profiled(t.cmd(t.bin, "restore", "-q", "-r", t.loc(), "latest", "--target", target), op))
	if err != nil {
		return m, "", err
	}
	p, err := restoredRoot(ds, target)
	return m, p, err
}

func copyPlain(src, dst string) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	_ = os.Remove(dst)
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// ---- restic -------------------------------------------------------------

type resticTool struct{ base }

func newRestic(dir, password string) *resticTool {
	t := &resticTool{base{name: "restic", dir: dir}}
	t.env = []string{"RESTIC_PASSWORD=" + password, "RESTIC_REPOSITORY=", "RESTIC_PASSWORD_FILE=", "RESTIC_CACHE_DIR="}
	return t
}

func (t *resticTool) Init() error {
	if err := t.reset(); err != nil {
		return err
	}
	_, err := run(t.cmd("restic", "init", "-q", "-r", t.loc(), "--cache-dir", t.cache()))
	return err
}

func (t *resticTool) Create(ds *dataset, op string) (measurement, error) {
	t.n++
	if ds.root != "" {
		return run(t.cmd("restic", "backup", "-q", "-r", t.loc(), "--cache-dir", t.cache(), ds.root))
	}
	c := t.cmd("restic", "backup", "-q", "-r", t.loc(), "--cache-dir", t.cache(), "--stdin", "--stdin-filename", ds.streamName)
	c.stdin = ds.stream
	return run(c)
}

func (t *resticTool) Restore(ds *dataset, target, op string) (measurement, string, error) {
	m, err := run(t.cmd("restic", "restore", "-q", "-r", t.loc(), "--cache-dir", t.cache(), "latest", "--target", target))
	if err != nil {
		return m, "", err
	}
	p, err := restoredRoot(ds, target)
	return m, p, err
}

// ---- borg ---------------------------------------------------------------

type borgTool struct{ base }

func newBorg(dir, password string) *borgTool {
	t := &borgTool{base{name: "borg", dir: dir}}
	t.env = []string{"BORG_PASSPHRASE=" + password, "BORG_BASE_DIR=" + t.cache(), "BORG_DISPLAY_PASSPHRASE=no",
		"BORG_RELOCATED_REPO_ACCESS_IS_OK=yes", "BORG_REPO=", "BORG_PASSCOMMAND=", "BORG_PASSPHRASE_FD="}
	return t
}

func (t *borgTool) Init() error {
	if err := t.reset(); err != nil {
		return err
	}
	_, err := run(t.cmd("borg", "init", "-e", "repokey", t.repo()))
	return err
}

func (t *borgTool) archive() string { return fmt.Sprintf("%s::a%d", t.repo(), t.n) }

func (t *borgTool) Create(ds *dataset, op string) (measurement, error) {
	t.n++
	if ds.root != "" {
		return run(t.cmd("borg", "create", t.archive(), ds.root))
	}
	c := t.cmd("borg", "create", "--stdin-name", ds.streamName, t.archive(), "-")
	c.stdin = ds.stream
	return run(c)
}

func (t *borgTool) Restore(ds *dataset, target, op string) (measurement, string, error) {
	c := t.cmd("borg", "extract", t.archive())
	c.dir = target
	m, err := run(c)
	if err != nil {
		return m, "", err
	}
	p, err := restoredRoot(ds, target)
	return m, p, err
}
