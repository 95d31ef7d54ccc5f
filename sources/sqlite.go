package sources

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/snap-backup/snap/sources/safepath"
)

// SQLite: the sqlite3 shell writes the database as SQL text (.dump) inside
// one read transaction, so the dump is one consistent state of the
// database however busy its writers are (see docs/design.md for why not
// .backup or VACUUM INTO: both need a seekable file, not a stream). Before
// the SQL it writes the PRAGMAs that .dump leaves out but applications
// rely on: page size, auto-vacuum, user_version (schema migrations),
// application_id, and WAL mode. --preserve-rowids: a table's rowids come
// back as they were, not renumbered (an external-content FTS table, or an
// application, finds rows by them).
//
// The file is opened with mode=rw: a mistyped path is an error, never a
// new empty database that would then be backed up as if it were the real
// one.

// sqliteLockTimeout is how long a dump waits for a writer's lock (a
// writer in rollback-journal mode locks readers out while it commits).
const sqliteLockTimeout = 60 * time.Second

// sqliteDumpScript is what the sqlite3 shell is given to dump a database,
// waiting up to timeout for a writer's lock. The encoding is written only
// when it is not UTF-8 (a UTF-16 database came back UTF-8), so that the
// dumps of UTF-8 databases stay as they were, byte for byte; like the
// page size, it must come before the first table. With checkDir (a
// directory of snap's own), the dump ends with the NUL check
// (sqliteNULCheck) and the schema is written for the create to try
// (sqliteSchemaScript), in the same read transaction.
func sqliteDumpScript(timeout time.Duration, checkDir string) string {
	script := fmt.Sprintf(".timeout %d\n", timeout.Milliseconds()) + `.headers off
.mode list
BEGIN;
SELECT '-- snap: SQLite dump, one read transaction' FROM (SELECT count(*) FROM sqlite_master);
SELECT 'PRAGMA encoding=''' || encoding || ''';' FROM pragma_encoding WHERE encoding <> 'UTF-8';
SELECT 'PRAGMA page_size=' || page_size || ';' FROM pragma_page_size;
SELECT 'PRAGMA auto_vacuum=' || auto_vacuum || ';' FROM pragma_auto_vacuum;
SELECT 'PRAGMA user_version=' || user_version || ';' FROM pragma_user_version;
SELECT 'PRAGMA application_id=' || application_id || ';' FROM pragma_application_id;
SELECT 'PRAGMA journal_mode=wal;' FROM pragma_journal_mode WHERE journal_mode = 'wal';
.dump --preserve-rowids
`
	if checkDir != "" {
		// The file sqliteDumpDone, made first, tells a failure of the
		// checks (a warning: Dump.Check) from one of the dump (which
		// fails the backup).
		script += ".output '" + filepath.Join(checkDir, sqliteDumpDone) + "'\nSELECT 'done';\n" +
			sqliteNULCheck(filepath.Join(checkDir, "check.sql")) + sqliteSchemaScript(checkDir)
	}
	return script + "COMMIT;\n"
}

// sqliteLocked rewrites the error of a dump that gave up waiting for a
// writer's lock: sqlite3 says "Parse error near line 5: database is
// locked (5)", the line being one of snap's script, which tells the user
// neither what happened nor what to do.
func (d *Database) sqliteLocked(err error, timeout time.Duration) error {
	var ce *CommandError
	if errors.As(err, &ce) && strings.Contains(ce.LastLine, "database disk image is malformed") {
		// "Runtime error near line 2" names a line of snap's script or
		// of its check's file (sqliteNULCheck), which reads every row.
		return fmt.Errorf("%s is damaged (%s: %s): check it with sqlite3 FILE 'PRAGMA integrity_check', then repair it or restore it from an earlier snapshot", d, ce.Name, ce.LastLine)
	}
	if !errors.As(err, &ce) || !strings.Contains(ce.LastLine, "database is locked") {
		return err
	}
	return fmt.Errorf("%s stayed locked by a writer for more than %v, so the dump could not begin its read transaction (%s: database is locked): run the backup when the application is quiet, or stop the application in a --pre hook (and start it again in a --post hook)", d, timeout, ce.Name)
}

// sqliteLockReader is the output of an SQLite dump, whose Close gives
// sqliteLocked's error, and which fails at a line longer than maxLine.
type sqliteLockReader struct {
	io.ReadCloser
	db      *Database
	timeout time.Duration
	maxLine int64
	line    int64 // the bytes of the current line read so far
	// The end of the dump, where the NUL check's lines are
	// (sqliteNULCheck), is kept; done is given it, and the dump's error,
	// at Close, and returns the error Close gives.
	ring []byte // the end of the dump as read so far (keepTail)
	pos  int    // where in ring the next byte goes
	read int64  // bytes put in ring in all
	eof  bool   // the dump was read to its end
	done func(tail []byte, err error) error
}

// sqliteMaxStatement is the longest statement SQLite loads (its
// SQLITE_MAX_SQL_LENGTH, in snap's loader and in Debian's sqlite3). .dump
// writes a row's INSERT on one line, a blob in hex: a row with a value of
// 500 MB is a line longer than that, and a dump with one could be saved
// but never loaded back (an exploratory test).
const sqliteMaxStatement = 1_000_000_000

func (r *sqliteLockReader) Read(p []byte) (int, error) {
	n, err := r.ReadCloser.Read(p)
	r.keepTail(p[:n])
	r.eof = r.eof || err == io.EOF
	for b := p[:n]; ; {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			r.line += int64(len(b))
			break
		}
		if r.line+int64(i) > r.maxLine {
			return 0, r.tooLong()
		}
		r.line, b = 0, b[i+1:]
	}
	if r.line > r.maxLine {
		return 0, r.tooLong()
	}
	return n, err
}

func (r *sqliteLockReader) tooLong() error {
	return fmt.Errorf("%s holds a row whose line in the dump is longer than %d bytes, the longest statement SQLite loads (a value of %d MB or more, written in hex), so the dump could never be restored: keep values that large in files beside the database, or back the database up as a file (with a --pre hook that stops the application)", r.db, r.maxLine, r.maxLine/2/1_000_000)
}

func (r *sqliteLockReader) Close() error {
	err := r.db.sqliteLocked(r.ReadCloser.Close(), r.timeout)
	tail := r.dumpTail()
	// .dump's own failure says more than what failed after it (the
	// check's statements, which meet the same cause).
	if ended := r.db.sqliteDumpEnded(tail); ended != nil {
		err = ended
	} else if err == nil && r.eof {
		err = r.db.sqliteDumpCut(tail)
	}
	if r.done != nil {
		err = r.done(tail, err)
	}
	return err
}

// sqliteDumpEnded fails a dump whose .dump stopped at an error of its own:
// it then writes "ROLLBACK; -- due to errors" where its COMMIT would be,
// says nothing else, and sqlite3 exits 0 (a red-team test's table of 2000
// columns, with the rowid that --preserve-rowids adds, was over SQLite's
// limit: the snapshot was saved, and no restore would load it). tail is the
// dump's end: the last of the two lines in it is .dump's last (a view's
// text that holds either comes before that).
func (d *Database) sqliteDumpEnded(tail []byte) error {
	if bytes.LastIndex(tail, []byte("\nROLLBACK; -- due to errors\n")) > bytes.LastIndex(tail, []byte("\nCOMMIT;\n")) {
		return fmt.Errorf("%s: sqlite3's .dump stopped at an error and wrote \"ROLLBACK; -- due to errors\" instead of its COMMIT (it says no more): the dump is incomplete; the causes seen: a collation the application registers in its own SQLite and sqlite3 lacks, in a WITHOUT ROWID table's key (Anki's unicase), a table of 2000 columns without an INTEGER PRIMARY KEY (one more with the rowid), a damaged file (sqlite3 FILE 'PRAGMA integrity_check'); back such a database file up as a file, with the application stopped", d)
	}
	return nil
}

// sqliteDumpCut fails a dump that ends without .dump's last line, its
// COMMIT (followed by the NUL check's lines alone), although sqlite3
// exited 0: a wrapper in its place (a script that pipes it through
// something and exits 0) cut it short. The check's lines may push the
// COMMIT out of the tail; they are there only when the dump ran to its
// end. Found by an exploratory test: such a
// snapshot was saved, and its restore refused it for want of that COMMIT.
func (d *Database) sqliteDumpCut(tail []byte) error {
	i := bytes.LastIndex(tail, []byte("\nCOMMIT;\n"))
	whole := i < 0 && bytes.Contains(tail, []byte("\n"+nulMarker))
	if i >= 0 {
		// After .dump's COMMIT come the check's lines alone: one in a
		// view's text, with more of the schema after it, is not the end.
		whole = true
		for _, line := range strings.Split(string(tail[i+len("\nCOMMIT;\n"):]), "\n") {
			if line != "" && !strings.HasPrefix(line, nulMarker) {
				whole = false
			}
		}
	}
	if whole {
		return nil
	}
	return fmt.Errorf("%s: the dump does not end with the COMMIT that sqlite3's .dump writes last, though sqlite3 reported success: it was cut short (a wrapper script in sqlite3's place that exits 0 whatever happened?)", d)
}

// sqliteTailSize is how much of a dump's end sqliteLockReader keeps, for
// .dump's last line and the NUL check's lines: some 10 bytes for each
// column with such values, more than enough for any database a person
// made.
const sqliteTailSize = 1 << 20

// keepTail keeps the last sqliteTailSize bytes read, in a ring allocated
// once (a buffer grown by append
// took 13 MB more of the create's peak memory).
func (r *sqliteLockReader) keepTail(b []byte) {
	if r.ring == nil {
		r.ring = make([]byte, sqliteTailSize)
	}
	if len(b) > len(r.ring) {
		b = b[len(b)-len(r.ring):]
	}
	for len(b) > 0 {
		n := copy(r.ring[r.pos:], b)
		b = b[n:]
		r.read += int64(n)
		r.pos = (r.pos + n) % len(r.ring)
	}
}

// dumpTail is the end of the dump kept by keepTail, in order.
func (r *sqliteLockReader) dumpTail() []byte {
	if r.read < int64(len(r.ring)) {
		return r.ring[:r.read]
	}
	return append(append([]byte(nil), r.ring[r.pos:]...), r.ring[:r.pos]...)
}

// sqliteURI names the database file, and it alone, to SQLite (the path
// percent-encoded), opened in mode (rw: never made; ro).
func sqliteURI(file, mode string) string {
	return (&url.URL{Scheme: "file", Path: file, RawQuery: "mode=" + mode}).String()
}

func (d *Database) sqliteDump() (Command, error) {
	tool, err := lookTool("sqlite3")
	if err != nil {
		return Command{}, fmt.Errorf("%s: %v; install sqlite3", d, err)
	}
	if !d.FileLater {
		if err := d.checkSQLiteFile(); err != nil {
			return Command{}, err
		}
	}
	return Command{Name: tool, Args: []string{"-bail", "-batch", sqliteURI(d.File, "rw")}}, nil
}

// checkSQLiteFile checks the file of the database to dump; a missing file
// given by a relative URL (sqlite://tmp/x.db) is named as given and as
// resolved, since an absolute path was likely meant.
func (d *Database) checkSQLiteFile() error {
	err := checkSQLiteFile(d.File)
	if err != nil && d.RelativeFile && errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s: no such file: the URL names %s, relative to the current directory: %s; check the path (an absolute path takes three slashes: sqlite:///%s)", d.given, d.relPath, d.File, d.relPath)
	}
	return err
}

func checkSQLiteFile(file string) error {
	fi, err := os.Stat(file)
	if err != nil {
		return fmt.Errorf("sqlite://%s: %w; check the path", file, unwrapPathErr(err))
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("sqlite://%s is not a regular file", file)
	}
	// sqlite3 would say "Parse error near line 5: file is not a
	// database", the line being one of snap's script.
	return checkSQLiteHeader(file)
}

// checkSQLiteHeader refuses a file that is not empty and does not start
// as a SQLite database does.
func checkSQLiteHeader(file string) error {
	f, err := os.Open(file)
	if err != nil {
		return fmt.Errorf("sqlite://%s: %w", file, unwrapPathErr(err))
	}
	defer f.Close()
	return checkSQLiteHeaderOf(f, file)
}

// checkSQLiteHeaderOf is checkSQLiteHeader of the open file f.
func checkSQLiteHeaderOf(f *os.File, file string) error {
	header := make([]byte, len(sqliteHeader))
	if n, _ := io.ReadFull(f, header); n > 0 && (n < len(header) || string(header) != sqliteHeader) {
		return fmt.Errorf("sqlite://%s is not a SQLite database (it does not start with %q); check the path", file, strings.TrimRight(sqliteHeader, "\x00"))
	}
	return nil
}

// checkNotOpen refuses to replace a database that another process holds
// open: it would go on with the replaced file, and what it wrote after the
// restore would be lost without a word (found by an exploratory test: a
// Python process's later writes went to the unlinked old file). file is
// resolved (safepath.Resolve), as /proc shows the files processes hold.
func (d *Database) checkNotOpen(file string) error {
	if procs := processesWithOpen(file, file+"-wal"); len(procs) > 0 {
		return fmt.Errorf("%s is open in process %s: replaced now, it would go on with the old file, and what it writes would be lost; stop the application first (%w)", d, strings.Join(procs, ", "), ErrUnchanged)
	}
	return nil
}

// processesWithOpen returns the other processes that hold one of paths
// open for writing, as "PID (NAME)", as far as /proc lets this user see.
// Only writers lose what they write; a reader merely sees the old file
// until it opens the database again (and any user who may read it could
// otherwise block a restore for good: a red-team test).
func processesWithOpen(paths ...string) []string {
	procs, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	self := os.Getpid()
	var out []string
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil || pid == self {
			continue
		}
		dir := filepath.Join("/proc", p.Name())
		fds, err := os.ReadDir(filepath.Join(dir, "fd"))
		if err != nil {
			continue // gone, or another user's
		}
		for _, fd := range fds {
			if target, err := os.Readlink(filepath.Join(dir, "fd", fd.Name())); err == nil && slices.Contains(paths, target) && openForWriting(filepath.Join(dir, "fdinfo", fd.Name())) {
				comm, _ := os.ReadFile(filepath.Join(dir, "comm"))
				out = append(out, fmt.Sprintf("%d (%s)", pid, strings.TrimSpace(string(comm))))
				break
			}
		}
	}
	return out
}

// openForWriting reports whether the descriptor that fdinfo (a
// /proc/PID/fdinfo/N file) describes was opened for writing; when that
// cannot be told, it is taken to be.
func openForWriting(fdinfo string) bool {
	b, err := os.ReadFile(fdinfo)
	if err != nil {
		return true
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "flags:"); ok {
			flags, err := strconv.ParseUint(strings.TrimSpace(v), 8, 64)
			return err != nil || flags&(syscall.O_WRONLY|syscall.O_RDWR) != 0
		}
	}
	return true
}

// sqliteHeader starts every SQLite 3 database file (an empty file is an
// empty database too).
const sqliteHeader = "SQLite format 3\x00"

// sqliteRestore loads the dump into a new file beside the target and
// renames it into place once it has loaded, so the target is never half
// restored. With Replace, an existing database is swapped for the restored
// one (its -wal, -shm and -journal files are removed first: left behind,
// they would be applied to the new file). The file keeps the old one's mode
// and owner.
func (d *Database) sqliteRestore(ctx context.Context, dump io.Reader, o RestoreOptions) (bool, error) {
	// A link is followed (a data volume linked into place): the
	// database is replaced where it points, and the link kept; renaming
	// over the link would leave the real file as it was. Only where no
	// other user could have put or changed it (package safepath).
	file, dirTrusted, err := safepath.Resolve(d.File)
	if err != nil {
		return false, fmt.Errorf("%s: %w (%w)", d, err, ErrUnchanged)
	}
	// The file as it is now, read through one descriptor: its mode and
	// owner, which the restored file gets, and its first bytes.
	var old fs.FileInfo
	var header error
	f, err := os.OpenFile(file, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	switch {
	case err == nil:
		old, err = f.Stat()
		if err == nil && old.Mode().IsRegular() {
			header = checkSQLiteHeaderOf(f, file)
		}
		f.Close()
		if err != nil {
			return false, fmt.Errorf("%s: %w", d, unwrapPathErr(err))
		}
	case errors.Is(err, syscall.ELOOP):
		return false, fmt.Errorf("%s became a symbolic link during the restore (%w)", d, ErrUnchanged)
	case !errors.Is(err, fs.ErrNotExist):
		return false, fmt.Errorf("%s: %w", d, unwrapPathErr(err))
	}
	exists := old != nil
	switch {
	case exists && !old.Mode().IsRegular():
		return false, fmt.Errorf("%s is not a regular file", d)
	case exists && old.Size() > 0 && !o.Replace:
		return false, fmt.Errorf("database %s %w; restore into another file with --to, or replace it with --replace", d, ErrNotEmpty)
	}
	if exists && o.Replace {
		// --replace replaces a database, not whatever a mistyped --to
		// names (a config file, a document).
		if header != nil {
			return false, fmt.Errorf("%w; --replace replaces only a database (%w)", header, ErrUnchanged)
		}
		if err := d.checkNotOpen(file); err != nil {
			return false, err
		}
	}
	dir := filepath.Dir(file)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return false, fmt.Errorf("%s: %w", d, err)
	}
	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	name := "." + filepath.Base(file) + ".snap-restore-" + hex.EncodeToString(rnd[:])
	// SQLite opens the file it loads, and its journals, by name. In a
	// directory another user may write, or add names to, that user could
	// put a link or a journal of their own in their place (a red-team test
	// had root's restore chown and chmod a file of its choosing), so the
	// load runs in a private directory and the result is copied in.
	loadDir := dir
	if !dirTrusted {
		work, err := safepath.PrivateDir("snap-sqlite-restore-")
		if err != nil {
			return false, fmt.Errorf("%s: a private directory to load in: %w (%w)", d, err, ErrUnchanged)
		}
		defer os.RemoveAll(work)
		loadDir = work
	}
	loaded := filepath.Join(loadDir, name)
	removeDB := func(p string) {
		for _, suffix := range []string{"", "-journal", "-wal", "-shm"} {
			_ = os.Remove(p + suffix)
		}
	}
	// The file is made private before SQLite opens it (an empty file is
	// an empty database), and SQLite gives its journal and WAL the
	// database file's mode: the restored data is never readable by
	// others on the way, nor in what a killed restore leaves behind.
	f, err = os.OpenFile(loaded, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return false, fmt.Errorf("%s: %w (%w)", d, err, ErrUnchanged)
	}
	f.Close()
	// The dump is the repository's, and may be anyone's who can write
	// there (sqliteload.go, sqlitescreen.go).
	tail := &tailReader{r: dump, keep: 64 << 10}
	screen := newSQLiteScreen(tail)
	screen.deferWAL = true
	err = sqliteLoad(ctx, loaded, screen.next)
	if err == nil && screen.wal {
		err = sqliteSetWAL(ctx, loaded)
	}
	if err != nil {
		// The load went into the temporary file: the target is as it was.
		removeDB(loaded)
		return false, fmt.Errorf("%s: %w (%w)", d, err, ErrUnchanged)
	}
	tmp := filepath.Join(dir, name)
	out, err := placeLoaded(loaded, tmp)
	if err != nil {
		removeDB(loaded)
		removeDB(tmp)
		return false, fmt.Errorf("%s: %w (%w)", d, err, ErrUnchanged)
	}
	defer out.Close()
	// Synced, and given the old file's mode and owner, through the
	// descriptor, never by the name.
	err = out.Sync()
	if err == nil && exists && keepsOwner(old, dir, dirTrusted) {
		err = out.Chmod(old.Mode().Perm())
		if st, ok := old.Sys().(*syscall.Stat_t); ok && err == nil && os.Geteuid() == 0 {
			err = out.Chown(int(st.Uid), int(st.Gid))
		}
	}
	if err == nil {
		err = sameFile(tmp, out)
	}
	if err != nil {
		removeDB(tmp)
		return false, fmt.Errorf("%s: %w (%w)", d, err, ErrUnchanged)
	}
	if exists && o.Replace {
		// Again: the application may have opened it during the load.
		if err := d.checkNotOpen(file); err != nil {
			removeDB(tmp)
			return false, err
		}
	}
	// Beside the link too: SQLite names a database's journals after the
	// path it was opened by, and an application may open it by the link.
	for _, base := range slices.Compact([]string{file, d.File}) {
		for _, suffix := range []string{"-journal", "-wal", "-shm"} {
			if err := os.Remove(base + suffix); err != nil && !errors.Is(err, fs.ErrNotExist) {
				removeDB(tmp)
				return false, fmt.Errorf("%s: remove %s: %w", d, base+suffix, err)
			}
		}
	}
	if err := os.Rename(tmp, file); err != nil {
		removeDB(tmp)
		return false, fmt.Errorf("%s: %w", d, err)
	}
	if df, err := os.Open(dir); err == nil {
		_ = df.Sync()
		df.Close()
	}
	// The create warned of TEXT values .dump cut at a NUL, and saved the
	// snapshot; weeks later the restore said nothing (found by an
	// exploratory test). The check's lines end the dump.
	if found, truncated := parseNULCheck(tail.tail); (len(found) > 0 || truncated) && o.Warn != nil {
		n := int64(0)
		for _, f := range found {
			for _, c := range f.counts {
				n += c
			}
		}
		what := fmt.Sprintf("%d TEXT values", n)
		if n == 1 {
			what = "1 TEXT value"
		}
		if truncated {
			what = "TEXT values"
		}
		o.Warn(fmt.Sprintf("%s: the dump holds %s with a NUL character, which sqlite3's .dump cut at the NUL when the snapshot was taken (its create said which): they are restored cut short", d, what))
	}
	return !exists, nil
}

// keepsOwner reports whether the restored file takes the old one's owner
// and mode: where only this user or root may add names (the old file is
// what was there), or where the old file's owner owns the directory too
// (an application's data directory). Not a file another user put first
// in a directory open to others (a red-team test's empty file in a sticky
// directory, 0666 and its own, got the restored data readable to it).
func keepsOwner(old fs.FileInfo, dir string, dirTrusted bool) bool {
	if dirTrusted || safepath.IsOurs(old) {
		return true
	}
	st, ok := old.Sys().(*syscall.Stat_t)
	return ok && safepath.OwnerOf(dir) == int(st.Uid)
}

// placeLoaded returns the loaded database as tmp, open for writing: the
// same file when it was loaded there, else a copy made there, created by
// this process (O_EXCL: never a name someone put there first).
func placeLoaded(loaded, tmp string) (*os.File, error) {
	if loaded == tmp {
		return os.OpenFile(tmp, os.O_RDWR|syscall.O_NOFOLLOW, 0)
	}
	in, err := os.Open(loaded)
	if err != nil {
		return nil, err
	}
	defer in.Close()
	out, err := os.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return nil, err
	}
	return out, nil
}

// sameFile checks that name is still f, right before it is renamed into
// place.
func sameFile(name string, f *os.File) error {
	byName, err := os.Lstat(name)
	if err != nil {
		return err
	}
	byFD, err := f.Stat()
	if err != nil {
		return err
	}
	if !os.SameFile(byName, byFD) {
		return fmt.Errorf("%s was replaced by someone else during the restore", name)
	}
	return nil
}
