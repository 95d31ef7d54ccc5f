package main

import (
	"cmp"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/urfave/cli/v2"
	"github.com/zeebo/blake3"

	"github.com/snap-backup/snap/index"
	"github.com/snap-backup/snap/repo"
	"github.com/snap-backup/snap/snapshot"
	"github.com/snap-backup/snap/sources/safepath"
)

// session is an open repository with its index and local cache, and the
// lock the command holds.
type session struct {
	r      *repo.Repository
	ix     *index.Index
	loader *snapshot.Loader
	lock   *repo.Lock
	cache  string
	ui     *ui
	// command is recorded in the locks the session takes.
	command string
	// connections is the limit on requests in flight (0: none); uploads
	// and restores size their parallelism by it.
	connections int
	// location is where the repository is (as given).
	location string
	// unreadable are the snapshots the last listing could not read.
	unreadable []error
	// freeing names what the session does next when that frees space
	// (forget, prune): on a full disk it may use the space reserve and
	// its room (setFreesSpace). "" for anything else.
	freeing string
	// readsOnly: the command writes nothing to the repository, so it
	// may run with --no-lock (readsOnly), which a failed lock suggests.
	readsOnly bool
	// reserveWarned is env.reserveWarned: fillReserve warns once a run.
	reserveWarned map[string]bool
}

// lockMode says which lock a command takes.
type lockMode int

const (
	noLock lockMode = iota
	sharedLock
	exclusiveLock
	pruneLock // excludes other prunes and exclusive locks, not shared ones
)

// repoSettings say where a repository is and how to unlock it.
type repoSettings struct {
	location        string
	passwordFile    string
	passwordCommand string
	cacheDir        string // base directory; the repository ID is appended
	// fromConfig names the config file the settings came from, if any.
	fromConfig string
	// passwordFileKey is the config key passwordFile came from
	// ("jobs.app.password_file"), or "" when a flag or variable gave it:
	// the key is what to fix when the file cannot be read.
	passwordFileKey string
	// password, when set, replaces the password sources above ('snap copy'
	// reads the target's password its own way), and passwordOrigin, when
	// set, says where it came from, for a wrong one.
	password       func() (string, error)
	passwordOrigin *string
	// connections bounds the requests in flight (--connections); 0 picks
	// the backend's default.
	connections int
	// upload and download are --limit-upload and --limit-download in
	// bytes per second (0: none).
	upload, download uint64
	// freesSpace: the command frees space (forget, prune; not a dry
	// run), so on a full disk it may use the space reserve.
	freesSpace bool
	// readsOnly: see session.readsOnly.
	readsOnly bool
}

// settingsFrom reads --repo, --password-file, --password-command and
// --cache-dir and their environment variables. When no repository is
// given that way, the config file (--config, SNAP_CONFIG, or the default
// places) supplies the repository, its password source and the cache.
func settingsFrom(c *cli.Context, e *env) (repoSettings, error) {
	conns, err := connectionsFlag(c, e)
	if err != nil {
		return repoSettings{}, err
	}
	up, down, err := rateFlags(c, e)
	if err != nil {
		return repoSettings{}, err
	}
	st := repoSettings{location: gstring(c, "repo"), passwordFile: gstring(c, "password-file"),
		passwordCommand: gstring(c, "password-command"), cacheDir: gstring(c, "cache-dir"), connections: conns, upload: up.bps, download: down.bps}
	if st.location != "" {
		return st, nil
	}
	path, err := findConfig(gstring(c, "config"), e.getenv)
	if err != nil || path == "" {
		return st, err
	}
	cfg, err := usableConfig(c, e, path)
	if err != nil {
		return st, fmt.Errorf("%w; or give the repository with --repo", err)
	}
	st = cfg.settings(c, e, cfg.Repository, cfg.PasswordFile, cfg.PasswordCommand, "")
	j, err := jobsRepository(c, cfg)
	if err != nil {
		return st, err
	}
	if j != nil && j.Repository != "" &&
		(j.Repository != cfg.Repository || j.PasswordFile != cfg.PasswordFile || j.PasswordCommand != cfg.PasswordCommand) {
		// --job NAME (list, restore, …) where the job names a
		// repository or password of its own: the job's snapshots are
		// there ('snap list --job b' of a config whose jobs alone name
		// repositories said there was none; found by an exploratory
		// test). A job that only inherits the file's keys changes
		// nothing: SNAP_PASSWORD still wins over the file's password
		// source, as without --job (found by a review).
		st = cfg.settings(c, e, j.Repository, j.PasswordFile, j.PasswordCommand, j.Name)
	}
	st.connections = conns
	return st, nil
}

// jobsRepository is the first of the config's jobs that the command's
// --job flags name, whose repository and password source the others share,
// or nil when they name none the config has. Jobs of different
// repositories are refused: their snapshots cannot be listed together,
// and the file's repository was opened instead, with none of them in it
// (found by an exploratory test).
func jobsRepository(c *cli.Context, cfg *Config) (*Job, error) {
	var first *Job
	where := func(j *Job) [3]string {
		return [3]string{cmp.Or(j.Repository, cfg.Repository), cmp.Or(j.PasswordFile, cfg.PasswordFile), cmp.Or(j.PasswordCommand, cfg.PasswordCommand)}
	}
	for _, name := range c.StringSlice("job") {
		i := slices.IndexFunc(cfg.Jobs, func(j *Job) bool { return j.Name == name })
		if i < 0 {
			continue
		}
		j := cfg.Jobs[i]
		switch {
		case first == nil:
			first = j
		case where(j) != where(first):
			return nil, usagef("--job %s and --job %s keep their snapshots in different repositories (%s, %s) or open them with different passwords: give the jobs of one repository at a time",
				first.Name, j.Name, cmp.Or(where(first)[0], "none"), cmp.Or(where(j)[0], "none"))
		}
	}
	return first, nil
}

// oneJob is the job of the config that the command's --job names, when it
// names exactly one that the config has.
func oneJob(c *cli.Context, cfg *Config) *Job {
	names := c.StringSlice("job")
	if len(names) != 1 {
		return nil
	}
	for _, j := range cfg.Jobs {
		if j.Name == names[0] {
			return j
		}
	}
	return nil
}

// settings are the repository settings of the config (or of one of its
// jobs), under what flags and environment variables say.
//
// For a job of snap run (job: its name), the config's repository also wins over
// SNAP_REPOSITORY: a variable left in the shell must not send the job's
// backups, and its forget and prune, to another repository. --repo on the
// command line still does (runJobs says so). So does the job's password
// source over SNAP_PASSWORD_FILE, SNAP_PASSWORD_COMMAND and SNAP_PASSWORD.
func (cfg *Config) settings(c *cli.Context, e *env, location, passwordFile, passwordCommand, jobName string) repoSettings {
	job := jobName != ""
	passwordFileKey := "password_file"
	if job && passwordFile != cfg.PasswordFile {
		passwordFileKey = "jobs." + jobName + ".password_file"
	}
	st := repoSettings{location: gstring(c, "repo"), passwordFile: gstring(c, "password-file"),
		passwordCommand: gstring(c, "password-command"), cacheDir: gstring(c, "cache-dir")}
	// Checked by the command before any job runs (runJobs).
	st.connections, _ = connectionsFlag(c, e)
	up, down, _ := rateFlags(c, e)
	st.upload, st.download = up.bps, down.bps
	if st.cacheDir == "" {
		st.cacheDir = cfg.resolveRelative(cfg.CacheDir)
	}
	if st.location != "" && !(job && location != "" && !e.flagGiven("--repo", "-r")) {
		// The flags name another repository: the config's password and
		// rate limits are for its own repository, not for this one.
		return st
	}
	st.location, st.fromConfig = location, cfg.Path
	// The flags (or variables) over the config's, "off" included.
	st.upload, st.download = up.or(cfg.LimitUpload), down.or(cfg.LimitDownload)
	ownPassword := passwordFile != "" || passwordCommand != ""
	// The config's password source, unless a flag or variable gives one;
	// for a job's own, only a flag does: as for the repository, a
	// SNAP_PASSWORD_FILE or SNAP_PASSWORD left in the shell must not
	// replace it (it failed as a plain "wrong password").
	if job && ownPassword && !e.flagGiven("--password-file", "--password-command") ||
		st.passwordFile == "" && st.passwordCommand == "" && e.getenv("SNAP_PASSWORD") == "" {
		st.passwordFile, st.passwordCommand = cfg.resolveRelative(passwordFile), passwordCommand
		st.passwordFileKey = passwordFileKey
	}
	return st
}

// openSession opens the repository named by the flags, takes the lock and
// opens the index (synced with the repository).
func openSession(c *cli.Context, e *env, mode lockMode) (*session, error) {
	return openSessionIndex(c, e, mode, index.Options{})
}

// openSessionIndex is openSession with index options (repair opens the
// index without syncing it).
func openSessionIndex(c *cli.Context, e *env, mode lockMode, io index.Options) (*session, error) {
	return openSessionWith(c, e, mode, &io)
}

// openSessionWith opens the index with io, or leaves it closed when io is
// nil (check reads the index segments itself, so that it can report a
// damaged one instead of failing to open).
func openSessionWith(c *cli.Context, e *env, mode lockMode, io *index.Options) (*session, error) {
	st, err := settingsFrom(c, e)
	if err != nil {
		return nil, err
	}
	return openSessionSettings(c, e, st, mode, io)
}

// openSessionSettings is openSessionWith on the repository st names.
func openSessionSettings(c *cli.Context, e *env, st repoSettings, mode lockMode, io *index.Options) (*session, error) {
	if gbool(c, "no-lock") && readsOnly(c) {
		// A lock is a file in the repository: on a read-only mount no
		// command could take one, and nothing could be restored. Only
		// commands that write nothing there may go without (the others
		// refuse --no-lock: addGlobalFlags).
		mode = noLock
	}
	name := commandName(c)
	st.freesSpace = (name == "forget" || name == "prune") && !c.Bool("dry-run")
	st.readsOnly = readsOnly(c)
	return openSessionAt(c.Context, e, newUI(c, e), st, mode, name, io)
}

// readsDeltas are the commands that read much data stored as deltas
// (dumps), and keep more of their bases (index.ReadBaseCacheBytes). A
// create keeps the default: it reads few bases, and its memory is bounded.
var readsDeltas = map[string]bool{"dump": true, "restore": true, "copy": true, "prune": true, "forget": true}

// openSessionAt opens a session on the repository st names, reporting
// through u. command is recorded in the lock; io as in openSessionWith.
func openSessionAt(ctx context.Context, e *env, u *ui, st repoSettings, mode lockMode, command string, io *index.Options) (*session, error) {
	if io != nil && io.BaseCacheBytes == 0 && readsDeltas[command] {
		io.BaseCacheBytes = index.ReadBaseCacheBytes
	}
	e.warnUnknownTZ(u)
	r, conns, err := openRepositoryWith(ctx, e, u, st)
	if err != nil {
		return nil, err
	}
	s := &session{r: r, ui: u, command: command, connections: conns, location: st.location, readsOnly: st.readsOnly}
	if st.freesSpace {
		s.setFreesSpace(command)
	}
	if e.reserveWarned == nil {
		e.reserveWarned = map[string]bool{}
	}
	s.reserveWarned = e.reserveWarned
	base, err := cacheBase(e, st.cacheDir)
	if err != nil {
		r.Close()
		return nil, err
	}
	s.cache = filepath.Join(base, r.Config().ID)
	if err := s.relock(ctx, mode); err != nil {
		r.Close()
		return nil, err
	}
	s.loader = snapshot.NewLoader(r, filepath.Join(s.cache, "snapshots"))
	if io != nil {
		if err := s.openIndex(ctx, e, *io); err != nil {
			s.close()
			return nil, err
		}
	}
	return s, nil
}

// openIndex opens the session's index cache (openSessionAt does, unless
// told not to).
func (s *session) openIndex(ctx context.Context, e *env, io index.Options) error {
	io.Log = func(m string) { s.ui.warnf("%s", m) }
	io.CacheTreePacks = isRemote(s.location)
	io.FetchBasePacks = io.CacheTreePacks
	// A damaged index segment leaves the rest restorable (index.Options).
	io.ReadOnly = io.ReadOnly || noLockCommands[s.command]
	e.cacheDirs = append(e.cacheDirs, s.cache)
	ix, err := index.Open(ctx, s.r, s.cache, io)
	if err != nil {
		return err
	}
	s.ix = ix
	return nil
}

// relock releases the lock the session holds, if any, and takes one of the
// given mode: 'snap run' opens the repository once per job and takes the
// lock each step needs. An open index is synced once the lock is held.
func (s *session) relock(ctx context.Context, mode lockMode) error {
	if s.lock != nil {
		s.unlock()
		s.lock = nil
	}
	if mode == noLock {
		return nil
	}
	u := s.ui
	// The first few stale locks removed are named, the rest counted: a
	// night of crashed runs made a prune print one line for each of 29.
	const named = 3
	stale := 0
	lo := repo.LockOptions{Exclusive: mode == exclusiveLock, Prune: mode == pruneLock, Command: s.command,
		OnStale: func(l repo.LockEntry) {
			if stale++; stale <= named {
				// The repository is named: a copy takes locks in two,
				// and said the same line twice (found by an
				// exploratory test).
				u.warnf("%s in %s", l.Info.StaleRemoved(), redactedLocation(s.location))
			}
		}}
	l, err := s.r.Lock(ctx, lo)
	if err != nil && s.freeing != "" && repo.DiskFull(err) && s.releaseReserve() {
		l, err = s.r.Lock(ctx, lo)
	}
	if stale > named {
		u.warnf("removed %d more stale locks in %s, of snap processes that ended without removing theirs (crashed, killed)", stale-named, redactedLocation(s.location))
	}
	if err != nil {
		if s.freeing != "" && repo.DiskFull(err) {
			// Its lock does not fit even with the reserve released (or
			// there is none): the advice to run this very command again
			// would go round in circles.
			return fmt.Errorf("%w; the repository's disk is full, and no space reserve is left to let %s run (docs/usage.md, \"A full disk\"): free some space on that file system outside the repository, or grow it, then run 'snap prune --instant --max-unused 100' ('snap forget' before it if that frees too little)", err, s.freeing)
		}
		if s.readsOnly && repo.DiskFull(err) {
			// Reading needs no space: forget and prune first would be
			// the wrong advice to someone who wants a file back.
			return fmt.Errorf("%w; the repository's disk is full, so %s cannot write its lock: add --no-lock to run it without one (start no prune meanwhile); then %s", err, s.command, fullDiskAdvice)
		}
		if s.readsOnly && (errors.Is(err, fs.ErrPermission) || errors.Is(err, syscall.EROFS)) {
			return fmt.Errorf("%w; a read-only repository (a mount, a snapshot of it, another user's files) can be read without a lock: add --no-lock", err)
		}
		return diskFull(readOnlyMount(err, s.location, s.command))
	}
	s.lock = l
	// What the command does under the lock must rely on an index read
	// after the lock was taken (prune's safety argument, docs/design.md):
	// a session opened earlier reads the segments written since.
	if s.ix != nil {
		if _, err := s.ix.Sync(ctx, func(m string) { u.warnf("%s", m) }); err != nil {
			return err
		}
	}
	return nil
}

// openRepository opens the repository at location with the password the
// flags (or the config) give. It also returns the connection limit in
// force (0: none).
func openRepository(c *cli.Context, e *env, u *ui, location string) (*repo.Repository, int, error) {
	st, err := settingsFrom(c, e)
	if err != nil {
		return nil, 0, err
	}
	if location != "" {
		st.location = location
	}
	return openRepositoryWith(c.Context, e, u, st)
}

// openRepositoryWith opens the backend first (so that a wrong location is
// reported before a password is asked for), then the repository.
func openRepositoryWith(ctx context.Context, e *env, u *ui, st repoSettings) (*repo.Repository, int, error) {
	if st.location == "" && st.fromConfig != "" {
		// The config was read but names no repository of its own (its
		// jobs may name theirs, which snap run uses).
		return nil, 0, usagef("no repository given: %s has no top-level repository (its jobs' own are for snap run): use --repo, set SNAP_REPOSITORY, or add repository = \"…\" at the top of %s", st.fromConfig, st.fromConfig)
	}
	bo := backendOptions{connections: st.connections, upload: st.upload, download: st.download, log: func(m string) { u.infof("%s", m) }, hooks: e.backendHooks, packs: &e.packs}
	be, conns, err := openBackend(ctx, e, st.location, false, bo)
	if err != nil {
		return nil, 0, err
	}
	source, origin := st.passwordWithOrigin(ctx, e)
	pw, err := source()
	if err != nil {
		be.Close()
		return nil, 0, err
	}
	hint := keyHintPath(e, st.cacheDir, be.Location())
	r, err := repo.Open(ctx, be, pw, repo.Options{Now: e.now, HugePages: hugePagesAllowed(e.getenv("GODEBUG")), FirstKey: readKeyHint(hint)})
	if err != nil {
		be.Close()
		if errors.Is(err, repo.ErrWrongPassword) && *origin != "" {
			err = fmt.Errorf("%w (the password came from %s%s)", err, *origin, passwordOddity(pw))
		}
		return nil, 0, err
	}
	writeKeyHint(hint, r.KeyName())
	return r, conns, nil
}

// keyHintPath is the file in the cache that remembers which key file
// opened the repository at location last time, so that the next command
// tries it first (repo.Options.FirstKey): key files planted in keys/,
// cheaper than the real one, were all tried before it on every command.
// "" when there is no cache directory.
func keyHintPath(e *env, cacheDir, location string) string {
	base, err := cacheBase(e, cacheDir)
	if err != nil {
		return ""
	}
	sum := blake3.Sum256([]byte(location))
	return filepath.Join(base, "key-hints", hex.EncodeToString(sum[:16]))
}

// readKeyHint returns the key file name the hint holds, or "". A hint is
// only an order of trying: a wrong one costs nothing but that.
func readKeyHint(path string) string {
	if path == "" {
		return ""
	}
	b, err := os.ReadFile(path)
	if err != nil || len(b) > 128 {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// writeKeyHint records name in the hint at path, when it is not there
// already; a cache that cannot be written only loses the hint.
func writeKeyHint(path, name string) {
	if path == "" || readKeyHint(path) == name {
		return
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err == nil {
		_ = writeFileAtomic(path, []byte(name+"\n"), 0o600)
	}
}

// passwordOddity names what in a wrong password may not be meant as part
// of it: a byte-order mark (Notepad writes one) or blanks at either end.
// Only line breaks at the end are taken off a password file's content.
func passwordOddity(pw string) string {
	switch {
	case strings.HasPrefix(pw, "\ufeff"):
		return "; it begins with a byte-order mark, which counts as part of it"
	case strings.Count(pw, "\n") == 1 && strings.HasSuffix(pw, "\n"):
		// A variable set from a file with its last line's end
		// (SNAP_PASSWORD="$(cat f)" drops it; a here-string keeps it).
		return "; it ends with a newline, which counts as part of it"
	case strings.Contains(pw, "\n"):
		// A command that printed a line of its own before the password
		// (a secret store's notice).
		return fmt.Sprintf("; it is %d lines, which all count as part of it: give the password alone, on one line", strings.Count(pw, "\n")+1)
	case strings.TrimSpace(pw) != pw:
		return "; it begins or ends with a blank, which counts as part of it"
	}
	return ""
}

// passwordWithOrigin returns what gives the repository's password
// (st.password when set, else the file, command, variable or prompt) and
// where it came from (empty when st.password gives it without one).
func (st repoSettings) passwordWithOrigin(ctx context.Context, e *env) (func() (string, error), *string) {
	if st.password != nil {
		if st.passwordOrigin != nil {
			return st.password, st.passwordOrigin
		}
		return st.password, new(string)
	}
	origin := new(string)
	return func() (string, error) {
		pw, err := passwordLookup(ctx, e, st.passwordFile, "SNAP_PASSWORD", st.passwordCommand, false, "repository", origin)
		if st.passwordFileKey != "" {
			// A job's own file is not the file's top-level key (a wrong
			// password was blamed on that; found by an exploratory test).
			*origin = strings.Replace(*origin, "the config's password_file", "the config's "+st.passwordFileKey, 1)
		}
		var pfe *passwordFileError
		if errors.As(err, &pfe) && st.passwordFileKey != "" {
			// The variables the general hint names do not replace the
			// config's file (settings): the key is what to fix.
			return "", fmt.Errorf("password file: %w; fix %s in %s", pfe.err, st.passwordFileKey, st.fromConfig)
		}
		return pw, noPasswordInConfig(err, st.fromConfig)
	}, origin
}

// unlock removes the session's lock. One that cannot be removed (the
// store is gone) is harmless: it is no longer refreshed, and the next
// command takes it for stale once its process is gone (or it is 30
// minutes old, seen from another host) and removes it.
func (s *session) unlock() {
	if err := s.lock.Unlock(); err != nil {
		s.ui.warnf("could not remove this run's lock %s (%v): it stays until a later command finds it stale and removes it; 'snap unlock' removes it at once",
			repo.ShortName(s.lock.Name()), err)
	}
}

func (s *session) close() {
	if s.ix != nil {
		s.ix.Close()
	}
	if s.lock != nil {
		s.unlock()
	}
	s.r.Close()
}

// cacheBase is the cache directory given (--cache-dir, SNAP_CACHE_DIR or
// the config's cache_dir), else $XDG_CACHE_HOME/snap, else ~/.cache/snap
// ($HOME, else the account's home directory). A place another user could
// redirect is not used (cacheNotOurs): one given is refused, one from the
// environment passed over for the next (root run with a user's
// environment, su without -, would write its index cache and snapshot
// cache through that user's links).
func cacheBase(e *env, given string) (string, error) {
	if given != "" {
		abs, err := filepath.Abs(given)
		if err != nil {
			return "", err
		}
		if why := cacheNotOurs(abs); why != "" {
			return "", usagef("cache directory %s: %s; give a directory only root may change as --cache-dir (SNAP_CACHE_DIR), or leave it out for ~/.cache/snap", given, why)
		}
		return given, nil
	}
	var places []string
	if d := xdgDir(e.getenv, "XDG_CACHE_HOME"); d != "" {
		places = append(places, filepath.Join(d, "snap"))
	}
	if home := xdgDir(e.getenv, "HOME"); home != "" {
		places = append(places, filepath.Join(home, ".cache", "snap"))
	}
	// A system service runs without HOME (systemd sets it only with
	// User=): the account's home from the password database gives a timer
	// the cache the admin's own runs use. Never a shared directory such
	// as /tmp, where another user could plant the cache.
	u, err := user.Current()
	if err == nil && filepath.IsAbs(u.HomeDir) && u.HomeDir != "/" {
		if fi, serr := os.Stat(u.HomeDir); serr == nil && fi.IsDir() {
			places = append(places, filepath.Join(u.HomeDir, ".cache", "snap"))
		}
	}
	var passed []string
	for _, p := range places {
		why := cacheNotOurs(p)
		if why == "" {
			return p, nil
		}
		passed = append(passed, fmt.Sprintf("%s (%s)", p, why))
	}
	if len(passed) > 0 {
		return "", usagef("no cache directory only this user or root may change: %s; give --cache-dir (SNAP_CACHE_DIR)", strings.Join(passed, "; "))
	}
	return "", usagef("no cache directory: neither XDG_CACHE_HOME nor HOME is set, and this account has no home directory; set one of them, or give --cache-dir (SNAP_CACHE_DIR)")
}

// cacheNotOurs says why another user could change what the cache
// directory dir (absolute) holds, or "" when no one else can: a link or a
// directory of theirs on the way, dir itself in a directory they may
// write, theirs in a sticky one (/tmp), or open to them. Only for root,
// whose cache such a user could lead root's writes out of: other users
// keep the places containers give them (a HOME open to a group or to all,
// as Kubernetes and OpenShift make them; a review).
func cacheNotOurs(dir string) string {
	if os.Geteuid() != 0 {
		return ""
	}
	file, trusted, err := safepath.Resolve(dir)
	if err != nil {
		return err.Error()
	}
	if fi, err := os.Lstat(file); err == nil && safepath.State(file) != safepath.Ours {
		if !safepath.IsOurs(fi) {
			return fmt.Sprintf("it belongs to another user (uid %d)", safepath.OwnerOf(file))
		}
		return fmt.Sprintf("others may write it (%s)", safepath.WhoWrites(file))
	}
	if trusted {
		return ""
	}
	parent := filepath.Dir(file)
	if safepath.State(parent) == safepath.Others {
		return fmt.Sprintf("it is in %s, which another user may write (%s)", parent, safepath.WhoWrites(parent))
	}
	// A sticky directory (/tmp): others cannot take a name of ours, but
	// they may have made this one first, or make it between a check and
	// its making: made here, then checked.
	if err := os.Mkdir(file, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return err.Error()
	}
	if fi, err := os.Lstat(file); err != nil || !fi.IsDir() || !safepath.IsOurs(fi) {
		return fmt.Sprintf("it belongs to another user (uid %d) in %s, which others may write", safepath.OwnerOf(file), parent)
	}
	return ""
}

// snapshots lists every snapshot, warning about unreadable ones.
func (s *session) snapshots(ctx context.Context) ([]*snapshot.Snapshot, error) {
	sns, errs, err := s.loader.List(ctx)
	s.unreadable = errs
	for _, e := range errs {
		s.ui.warnf("%v", e)
	}
	return sns, err
}

// unreadableErr fails a command that lists snapshots when some snapshot documents could not be
// read (each was named in a warning): monitoring that runs 'snap list' must see the damage, not
// a shorter list and exit 0.
func (s *session) unreadableErr() error {
	if len(s.unreadable) == 0 {
		return nil
	}
	return fmt.Errorf("%s could not be read (named above) and left out; 'snap check' tells what is damaged",
		plural(len(s.unreadable), "snapshot", "snapshots"))
}

// readOnlyMount is err, when it is a write to the repository that its
// file system refused as mounted read-only, with what to do: the bare
// error left a command that writes with no way out (found by an
// exploratory test). Other errors are returned as they are.
func readOnlyMount(err error, location, command string) error {
	if !errors.Is(err, syscall.EROFS) {
		return err
	}
	return fmt.Errorf("%w; repository %s is on a file system mounted read-only, and %s writes to it: remount it read-write (to only read from it, restore, dump and check run with --no-lock)", err, location, command)
}
