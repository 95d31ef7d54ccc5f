package sources

import (
	"os"
	"slices"

	"golang.org/x/sys/unix"
)

// ReadDirNames returns the names in directory path, sorted bytewise.
func ReadDirNames(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, &PathError{Op: "open", Path: path, Err: unwrapPathErr(err)}
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, &PathError{Op: "read directory", Path: path, Err: unwrapPathErr(err)}
	}
	slices.Sort(names)
	return names, nil
}

func unwrapPathErr(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}

// OpenFile opens a regular file for reading without following a symlink
// that replaced it since it was listed, and without updating its access
// time where the caller may do that.
func OpenFile(path string) (*os.File, error) {
	flags := unix.O_RDONLY | unix.O_NOFOLLOW | unix.O_CLOEXEC | unix.O_NOATIME
	fd, err := unix.Open(path, flags, 0)
	if err == unix.EPERM {
		// O_NOATIME is only allowed to the file's owner.
		fd, err = unix.Open(path, flags&^unix.O_NOATIME, 0)
	}
	if err != nil {
		return nil, &PathError{Op: "open", Path: path, Err: err}
	}
	return os.NewFile(uintptr(fd), path), nil
}

// Fstat returns the metadata of an open file.
func Fstat(f *os.File) (unix.Stat_t, error) {
	var st unix.Stat_t
	err := unix.Fstat(int(f.Fd()), &st)
	return st, err
}
