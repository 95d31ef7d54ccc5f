package local

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
)

// noRepositoryHint says what to do about a directory that holds no
// repository (empty, or missing): most often at 3 a.m. the disk the
// repository lives on is not mounted, and 'snap init' there would start a
// new repository on the root file system, into which every later nightly
// run would back up without a word. A mount point of /etc/fstab at or
// above abs that is not mounted is named; otherwise both causes are.
func noRepositoryHint(abs string) string {
	hint, _ := NoRepositoryHint(abs)
	return hint
}

// NoRepositoryHint is noRepositoryHint for a location that holds no
// repository, and whether 'snap init' could make one there (it does not
// exist, or is an empty directory): a directory holding other files, or a
// path below a file, is no place for one, and the advice to run 'snap
// init' there led to "location is not empty" (found by a re-test).
func NoRepositoryHint(abs string) (hint string, initOK bool) {
	if m := UnmountedMountPoint(abs); m != "" {
		return fmt.Sprintf("it lies on %s, a mount point in /etc/fstab that is not mounted: mount it (mount %s) and run the command again", m, m), false
	}
	const mountFirst = "if the repository is on a disk that is not mounted, mount it; to create a new repository there, run 'snap init'"
	entries, err := os.ReadDir(abs)
	switch {
	case err == nil && len(entries) == 0:
		return "an empty directory: " + mountFirst, true
	case err == nil:
		return "a directory that holds other files but no repository (whose directory holds config, data/, index/, keys/ and snapshots/): check the location; if the repository is on a disk that is not mounted, mount it; 'snap init' makes a new repository only in a new or empty directory", false
	case errors.Is(err, syscall.ENOTDIR):
		return "a path below a file, not a directory: check the location", false
	}
	return "it does not exist: " + mountFirst, true
}

// UnmountedMountPoint returns the mount point of /etc/fstab that dir lies
// on and that is not mounted, or "" (unmountedAbove). dir's symlinks are
// followed as far as they exist: a link to the mount point counts.
func UnmountedMountPoint(dir string) string {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return ""
	}
	abs = resolveExisting(abs)
	fstab, _ := os.ReadFile("/etc/fstab")
	mountinfo, _ := os.ReadFile("/proc/self/mountinfo")
	return unmountedAbove(abs, string(fstab), string(mountinfo))
}

// resolveExisting resolves the symlinks of the longest part of abs that
// exists, and keeps the rest as it is.
func resolveExisting(abs string) string {
	rest := ""
	for p := abs; ; p = filepath.Dir(p) {
		if r, err := filepath.EvalSymlinks(p); err == nil {
			return filepath.Join(r, rest)
		}
		if p == filepath.Dir(p) {
			return abs
		}
		rest = filepath.Join(filepath.Base(p), rest)
	}
}

// unmountedAbove returns the deepest mount point of fstab that is abs or
// one of its parents, is not among mountinfo's mount points, and lies
// below every mount point of mountinfo above abs (a disk mounted deeper
// holds abs, whatever is not mounted above it), or "". Both are the
// files' texts (fstab(5), proc(5)); swap entries are left out. noauto
// entries count: a removable backup disk is declared so, and one that an
// automount mounts shows in mountinfo (autofs) once its unit is active.
func unmountedAbove(abs, fstab, mountinfo string) string {
	below := func(point string) bool { return abs == point || point == "/" || strings.HasPrefix(abs, point+"/") }
	mounted := map[string]bool{}
	deepest := "" // the deepest mount point in place at or above abs
	for _, line := range strings.Split(mountinfo, "\n") {
		if f := strings.Fields(line); len(f) >= 5 {
			point := unescapeMount(f[4])
			mounted[point] = true
			if below(point) && len(point) > len(deepest) {
				deepest = point
			}
		}
	}
	var points []string
	for _, line := range strings.Split(fstab, "\n") {
		f := strings.Fields(line)
		if len(f) < 3 || strings.HasPrefix(f[0], "#") {
			continue
		}
		point := filepath.Clean(unescapeMount(f[1]))
		if !filepath.IsAbs(point) || point == "/" || f[2] == "swap" || len(point) <= len(deepest) {
			continue
		}
		if below(point) && !mounted[point] {
			points = append(points, point)
		}
	}
	if len(points) == 0 {
		return ""
	}
	return slices.MaxFunc(points, func(a, b string) int { return len(a) - len(b) })
}

// unescapeMount undoes the octal escapes (\040 for a space) that fstab
// and mountinfo write in paths.
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
