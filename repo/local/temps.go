package local

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/snap-backup/snap/repo"
)

var _ repo.TempLister = (*Backend)(nil)

// tempDirs are the directories that writes put temporary files in: the
// repository directory itself (space reserve), each type's directory and
// the 256 pack directories.
func (b *Backend) tempDirs() ([]string, error) {
	dirs := []string{b.dir}
	for _, t := range repo.FileTypes {
		if t == repo.ConfigFile {
			continue
		}
		dirs = append(dirs, filepath.Join(b.dir, string(t)))
	}
	packs, err := b.packDirs()
	if err != nil {
		return nil, fmt.Errorf("list temporary files: %w", err)
	}
	return append(dirs, packs...), nil
}

// ListTemps lists the temporary files (".tmp-*") in the repository.
func (b *Backend) ListTemps(ctx context.Context) (_ []repo.TempFile, err error) {
	defer func() { err = b.shown(err) }()
	dirs, err := b.tempDirs()
	if err != nil {
		return nil, err
	}
	var out []repo.TempFile
	for _, d := range dirs {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		entries, err := os.ReadDir(b.sys(d))
		if err != nil {
			return nil, fmt.Errorf("list temporary files: %w", err)
		}
		for _, e := range entries {
			if !strings.HasPrefix(e.Name(), tempPrefix) || !e.Type().IsRegular() {
				continue
			}
			fi, err := e.Info()
			if errors.Is(err, fs.ErrNotExist) {
				continue // renamed into place or removed meanwhile
			}
			if err != nil {
				return nil, fmt.Errorf("list temporary files: %w", err)
			}
			rel, err := filepath.Rel(b.dir, filepath.Join(d, e.Name()))
			if err != nil {
				return nil, err
			}
			out = append(out, repo.TempFile{Name: filepath.ToSlash(rel), Size: fi.Size(), ModTime: fi.ModTime()})
		}
	}
	return out, nil
}

// RemoveTemp removes a temporary file ListTemps returned. Anything else
// (a name outside the repository, one that is not a temporary file's) is
// refused: the name must never reach data.
func (b *Backend) RemoveTemp(ctx context.Context, name string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	clean := filepath.Clean(filepath.FromSlash(name))
	if filepath.IsAbs(clean) || clean == ".." || strings.HasPrefix(clean, ".."+string(filepath.Separator)) ||
		!strings.HasPrefix(filepath.Base(clean), tempPrefix) || strings.Count(clean, string(filepath.Separator)) > 2 {
		return fmt.Errorf("remove temporary file %q: not a temporary file of the repository", name)
	}
	// Hours may pass between the listing and the removal (a prune's
	// repack): the directory is opened as for any removal (openRel), so
	// that a symlink of another user's swapped in meanwhile cannot lead
	// outside, while an admin's own data/xx link is followed.
	p := filepath.Join(b.dir, clean)
	dir, err := b.openRel(filepath.Dir(clean))
	if err != nil {
		return fmt.Errorf("remove temporary file %s: %w", p, err)
	}
	defer dir.Close()
	fd := int(dir.Fd())
	base := filepath.Base(clean)
	var st unix.Stat_t
	if err := unix.Fstatat(fd, base, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil
		}
		return fmt.Errorf("remove temporary file %s: %w", p, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return fmt.Errorf("remove temporary file %s: not a regular file", p)
	}
	if err := unix.Unlinkat(fd, base, 0); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("remove temporary file %s: %w", p, err)
	}
	return nil
}
