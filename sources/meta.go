package sources

import (
	"errors"
	"fmt"
	"math"
	"os/user"
	"sort"
	"strconv"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	"golang.org/x/sys/unix"
)

// FileType is the kind of a directory entry.
type FileType uint8

// File types, as stored in trees.
const (
	TypeFile    FileType = 1
	TypeDir     FileType = 2
	TypeSymlink FileType = 3
	TypeDev     FileType = 4 // block device
	TypeCharDev FileType = 5
	TypeFIFO    FileType = 6
	TypeSocket  FileType = 7
)

func (t FileType) String() string {
	switch t {
	case TypeFile:
		return "file"
	case TypeDir:
		return "dir"
	case TypeSymlink:
		return "symlink"
	case TypeDev:
		return "dev"
	case TypeCharDev:
		return "chardev"
	case TypeFIFO:
		return "fifo"
	case TypeSocket:
		return "socket"
	}
	return fmt.Sprintf("type(%d)", uint8(t))
}

// Xattr is one extended attribute.
type Xattr struct {
	Name  string
	Value []byte
}

// Meta is everything snap records about a directory entry except its
// content. Name is a single path component and may be any byte string
// without '/' or NUL (not necessarily UTF-8).
type Meta struct {
	Name     string
	Type     FileType
	Mode     uint32 // permission bits with setuid, setgid and sticky (07777)
	UID, GID uint32
	User     string
	Group    string
	Size     uint64
	MTime    int64 // Unix nanoseconds
	// ATime is not recorded (0): reading a directory or file moves it,
	// so recording it would make every tree differ from its parent's and
	// cost a new tree blob per directory per run. Restore sets it to MTime.
	ATime      int64
	CTime      int64
	Inode      uint64
	Device     uint64 // device of the file system holding the entry
	Links      uint64
	Rdev       uint64 // device number of a device node
	LinkTarget string
	Xattrs     []Xattr
}

// Reader reads metadata from the local file system. It caches user and
// group names; one Reader serves one run.
type Reader struct {
	mu     sync.Mutex
	users  map[uint32]string
	groups map[uint32]string
	// NoXattrs skips extended attributes.
	NoXattrs bool
	// proc: /proc/self/fd is there to reach an open directory's entries
	// through (LstatIn).
	proc bool
}

// NewReader returns a metadata reader.
func NewReader() *Reader {
	var st unix.Stat_t
	proc := unix.Stat("/proc/self/fd", &st) == nil
	return &Reader{users: map[uint32]string{}, groups: map[uint32]string{}, proc: proc}
}

// Lstat returns the metadata of path without following a final symlink.
// name is recorded as Meta.Name. path may be longer than PATH_MAX: its
// stat, link and attributes are then read through one shortPath.
func (r *Reader) Lstat(path, name string) (Meta, error) {
	var m Meta
	op := "lstat"
	err := shortPath(path, func(p string) error {
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		var err error
		m, op, err = r.complete(name, &st, nil, p)
		return err
	})
	if err != nil {
		return Meta{}, &PathError{Op: op, Path: path, Err: err}
	}
	m.User, m.Group = r.userName(m.UID), r.groupName(m.GID)
	return m, nil
}

// LstatIn is Lstat for the entry name of directory l, looked up relative
// to l's descriptor (Listing says why): fstatat, then its link and
// extended attributes through /proc/self/fd/<descriptor>/<name>, which
// leads to the directory itself and does not follow the entry (there is
// no lgetxattrat before Linux 6.13; without /proc: by path).
//
// prev is what an earlier snapshot recorded of the entry (nil: none).
// When the entry is still the same inode of the same type and its ctime
// has not moved, its extended attributes are prev's and are not read
// again: setting or removing one changes the inode's ctime, as every write
// to the inode does. That saves a system call or more per entry of an
// incremental run (two, listing and stat, were most of a no-change
// create's kernel time on dataset 1 of make bench).
func (r *Reader) LstatIn(l *Listing, name string, prev *Meta) (Meta, error) {
	var st unix.Stat_t
	path := l.path + "/" + name
	if l.path == "/" {
		path = "/" + name
	}
	for {
		err := unix.Fstatat(l.fd, name, &st, unix.AT_SYMLINK_NOFOLLOW)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return Meta{}, &PathError{Op: "lstat", Path: path, Err: err}
		}
		break
	}
	p := "/proc/self/fd/" + strconv.Itoa(l.fd) + "/" + name
	if !r.proc {
		p = path
	}
	m, op, err := r.complete(name, &st, prev, p)
	if err != nil {
		return Meta{}, &PathError{Op: op, Path: path, Err: err}
	}
	m.User, m.Group = r.userName(m.UID), r.groupName(m.GID)
	return m, nil
}

// complete makes the metadata of an entry from its stat: its link target
// and extended attributes are read at p, which must name the entry without
// following it. op is what failed, for the caller's error.
func (r *Reader) complete(name string, st *unix.Stat_t, prev *Meta, p string) (m Meta, op string, err error) {
	m = FromStat(name, st)
	if m.Type == TypeSymlink {
		target, err := readlink(p)
		if err != nil {
			return Meta{}, "readlink", err
		}
		m.LinkTarget = target
	}
	if !r.NoXattrs {
		if prev != nil && prev.Type == m.Type && prev.Inode == m.Inode && prev.CTime == m.CTime {
			m.Xattrs = prev.Xattrs
		} else {
			m.Xattrs = readXattrs(p)
		}
	}
	return m, "", nil
}

// Lstat is lstat(2) of path, which may be longer than PATH_MAX
// (shortPath), for a caller that needs nothing more: no names, link or
// attributes. Its error is a *PathError.
func Lstat(path string, st *unix.Stat_t) error {
	if err := shortPath(path, func(p string) error { return unix.Lstat(p, st) }); err != nil {
		return &PathError{Op: "lstat", Path: path, Err: err}
	}
	return nil
}

// nanos converts a file time to Unix nanoseconds, which hold the years
// 1677 to 2262. A time outside them (ext4 stores up to 2446) is recorded
// as the nearest end, not wrapped around into another century.
func nanos(ts unix.Timespec) int64 {
	const maxSec = math.MaxInt64/1_000_000_000 - 1
	switch {
	case ts.Sec > maxSec:
		return math.MaxInt64
	case ts.Sec < -maxSec:
		return math.MinInt64
	}
	return ts.Nano()
}

// FromStat converts a stat result.
func FromStat(name string, st *unix.Stat_t) Meta {
	m := Meta{
		Name:  name,
		Mode:  st.Mode & 0o7777,
		UID:   st.Uid,
		GID:   st.Gid,
		MTime: nanos(st.Mtim),
		CTime: nanos(st.Ctim),
		Inode: st.Ino,
		// Device numbers are compared, never interpreted.
		Device: uint64(st.Dev),
		Links:  uint64(st.Nlink),
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		m.Type, m.Size = TypeFile, uint64(st.Size)
	case unix.S_IFDIR:
		m.Type = TypeDir
	case unix.S_IFLNK:
		m.Type, m.Size = TypeSymlink, uint64(st.Size)
	case unix.S_IFBLK:
		m.Type, m.Rdev = TypeDev, uint64(st.Rdev)
	case unix.S_IFCHR:
		m.Type, m.Rdev = TypeCharDev, uint64(st.Rdev)
	case unix.S_IFIFO:
		m.Type = TypeFIFO
	case unix.S_IFSOCK:
		m.Type = TypeSocket
	}
	return m
}

func readlink(path string) (string, error) {
	return readlinkWith(func(buf []byte) (int, error) { return unix.Readlink(path, buf) })
}

// readlinkWith reads a symlink's target with read (readlink(2) or
// readlinkat(2)), in a buffer grown until the target fits.
func readlinkWith(read func(buf []byte) (int, error)) (string, error) {
	for size := 256; ; size *= 2 {
		buf := make([]byte, size)
		n, err := read(buf)
		if err != nil {
			return "", err
		}
		if n < size {
			return string(buf[:n]), nil
		}
	}
}

func readXattrs(path string) []Xattr {
	return collectXattrs(
		func(buf []byte) (int, error) { return unix.Llistxattr(path, buf) },
		func(name string, buf []byte) (int, error) { return unix.Lgetxattr(path, name, buf) })
}

// fdXattrs returns the extended attributes of the open file fd, sorted by
// name, as readXattrs does for a path.
func fdXattrs(fd int) []Xattr {
	return collectXattrs(
		func(buf []byte) (int, error) { return unix.Flistxattr(fd, buf) },
		func(name string, buf []byte) (int, error) { return unix.Fgetxattr(fd, name, buf) })
}

// collectXattrs reads the attributes that list names with get; one that
// goes away or cannot be read between the two is left out.
func collectXattrs(list func(buf []byte) (int, error), get func(name string, buf []byte) (int, error)) []Xattr {
	size, err := list(nil)
	if err != nil || size == 0 {
		return nil
	}
	buf := make([]byte, size)
	size, err = list(buf)
	if err != nil {
		return nil
	}
	var out []Xattr
	for _, name := range splitNul(buf[:size]) {
		n, err := get(name, nil)
		if err != nil {
			continue
		}
		val := make([]byte, n)
		n, err = get(name, val)
		if err != nil {
			continue
		}
		out = append(out, Xattr{Name: name, Value: val[:n]})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func splitNul(b []byte) []string {
	var out []string
	start := 0
	for i, c := range b {
		if c == 0 {
			if i > start {
				out = append(out, string(b[start:i]))
			}
			start = i + 1
		}
	}
	return out
}

func (r *Reader) userName(uid uint32) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if n, ok := r.users[uid]; ok {
		return n
	}
	n := ""
	if u, err := user.LookupId(strconv.Itoa(int(uid))); err == nil {
		n = u.Username
	}
	r.users[uid] = n
	return n
}

func (r *Reader) groupName(gid uint32) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if n, ok := r.groups[gid]; ok {
		return n
	}
	n := ""
	if g, err := user.LookupGroupId(strconv.Itoa(int(gid))); err == nil {
		n = g.Name
	}
	r.groups[gid] = n
	return n
}

// PathError is a failed operation on a local path.
type PathError struct {
	Op   string
	Path string
	Err  error
}

func (e *PathError) Error() string { return fmt.Sprintf("%s %s: %v", e.Op, DisplayPath(e.Path), e.Err) }

// DisplayPath is a path as messages show it: as it is, unless it holds a
// control character (a newline, an escape), which would break the message
// into lines or rewrite the terminal; then quoted with Go's escapes
// ("/srv/a\nb"). So is a path that is not valid UTF-8, whose bytes a
// terminal would show as U+FFFD ("/srv/d\xe9j\xe0"). JSON output carries
// every path exactly, besides.
func DisplayPath(p string) string {
	if strings.IndexFunc(p, unicode.IsControl) >= 0 || !utf8.ValidString(p) {
		return strconv.Quote(p)
	}
	return p
}

// Unwrap returns the system error.
func (e *PathError) Unwrap() error { return e.Err }

// IsNotExist reports whether err means the path does not exist.
func IsNotExist(err error) bool { return errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) }

// ModeString formats type and permissions as ls -l does: "-rwsr-xr-x",
// "drwxrwxrwt", "crw--w----" (Go's fs.FileMode.String uses other letters).
func (m Meta) ModeString() string {
	b := []byte("?rwxrwxrwx")
	switch m.Type {
	case TypeFile:
		b[0] = '-'
	case TypeDir:
		b[0] = 'd'
	case TypeSymlink:
		b[0] = 'l'
	case TypeDev:
		b[0] = 'b'
	case TypeCharDev:
		b[0] = 'c'
	case TypeFIFO:
		b[0] = 'p'
	case TypeSocket:
		b[0] = 's'
	}
	for i := 0; i < 9; i++ {
		if m.Mode&(1<<(8-i)) == 0 {
			b[1+i] = '-'
		}
	}
	special := func(bit uint32, pos int, set, unset byte) {
		if m.Mode&bit != 0 {
			if b[pos] == '-' {
				b[pos] = unset
			} else {
				b[pos] = set
			}
		}
	}
	special(0o4000, 3, 's', 'S')
	special(0o2000, 6, 's', 'S')
	special(0o1000, 9, 't', 'T')
	return string(b)
}
