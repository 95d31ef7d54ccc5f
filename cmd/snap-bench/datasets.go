package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
)

// dataset is one input of the benchmark. A directory dataset is backed up
// by path; a stream dataset is fed to each tool on standard input, stored
// under streamName.
type dataset struct {
	key   string // "1", "2", "3"
	title string
	about string // how it was built, for the report

	root string // directory dataset: the directory backed up

	stream     string // stream dataset: the file currently fed on stdin
	streamName string

	bytes int64 // logical size of what is backed up now
	files int

	// mutate applies the ~1 % change between the no-change and the
	// changed create, and says what it did.
	mutate func() (string, error)
}

// ---- dataset 1: many small files ------------------------------------------

// makeSourceTree copies $(go env GOROOT)/src (the first limit regular
// files in walk order when limit > 0) to dir, with modes and times.
func makeSourceTree(dir string, limit int) (*dataset, error) {
	goroot, err := exec.Command("go", "env", "GOROOT").Output()
	if err != nil {
		return nil, fmt.Errorf("go env GOROOT: %w", err)
	}
	src := filepath.Join(strings.TrimSpace(string(goroot)), "src")
	if err := os.RemoveAll(dir); err != nil {
		return nil, err
	}
	dst := filepath.Join(dir, "src")
	ds := &dataset{key: "1", title: "Dataset 1: many small files", root: dst}
	type dirTime struct {
		path string
		fi   fs.FileInfo
	}
	var dirs []dirTime
	err = filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		out := filepath.Join(dst, rel)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			dirs = append(dirs, dirTime{out, fi})
			return os.MkdirAll(out, 0o755)
		case d.Type()&fs.ModeSymlink != 0:
			t, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(t, out)
		case d.Type().IsRegular():
			if limit > 0 && ds.files >= limit {
				return nil
			}
			if err := copyFile(p, out, fi); err != nil {
				return err
			}
			ds.files++
			ds.bytes += fi.Size()
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("copy %s: %w", src, err)
	}
	for i := len(dirs) - 1; i >= 0; i-- {
		_ = os.Chtimes(dirs[i].path, dirs[i].fi.ModTime(), dirs[i].fi.ModTime())
	}
	ds.about = fmt.Sprintf("a copy of `%s`: %d files, %s", src, ds.files, mb(ds.bytes))
	if limit > 0 {
		ds.about = fmt.Sprintf("the first %d files of `%s` in walk order, %s", ds.files, src, mb(ds.bytes))
	}
	ds.mutate = func() (string, error) { return changeFiles(dst) }
	return ds, nil
}

func copyFile(src, dst string, fi fs.FileInfo) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, fi.Mode().Perm())
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Chtimes(dst, fi.ModTime(), fi.ModTime())
}

// changeFiles appends a line to every 100th regular file (in sorted
// order): about 1 % of the files change.
func changeFiles(root string) (string, error) {
	var files []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			files = append(files, p)
		}
		return err
	})
	if err != nil {
		return "", err
	}
	sort.Strings(files)
	n := 0
	for i := 50; i < len(files); i += 100 {
		f, err := os.OpenFile(files[i], os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			return "", err
		}
		_, err = fmt.Fprintf(f, "\n// changed by snap-bench (%d)\n", i)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return "", err
		}
		n++
	}
	return fmt.Sprintf("a line appended to %d of %d files (every 100th)", n, len(files)), nil
}

// ---- dataset 2: one large file ---------------------------------------------

const bigSegment = 1 << 20

// makeBigFile writes size bytes of deterministic data: 1 MiB segments,
// each at random either random bytes (incompressible) or text made of
// pseudo-words (compressible), half and half.
func makeBigFile(dir string, size int64) (*dataset, error) {
	if err := os.RemoveAll(dir); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	p := filepath.Join(dir, "big.bin")
	f, err := os.Create(p)
	if err != nil {
		return nil, err
	}
	w := bufio.NewWriterSize(f, 4<<20)
	if err := writeMixed(w, size, [32]byte{'s', 'n', 'a', 'p'}); err != nil {
		f.Close()
		return nil, err
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return nil, err
	}
	if err := f.Close(); err != nil {
		return nil, err
	}
	ds := &dataset{key: "2", title: "Dataset 2: one large file", root: dir, bytes: size, files: 1,
		about: fmt.Sprintf("one file of %s: 1 MiB segments, each either random bytes or generated text (half each), from a seeded ChaCha8 PRNG", mb(size))}
	ds.mutate = func() (string, error) { return changeBigFile(p, size) }
	return ds, nil
}

func writeMixed(w io.Writer, size int64, seed [32]byte) error {
	rng := rand.New(rand.NewChaCha8(seed))
	vocab := make([][]byte, 4096)
	for i := range vocab {
		word := make([]byte, 3+rng.IntN(8))
		for j := range word {
			word[j] = byte('a' + rng.IntN(26))
		}
		vocab[i] = word
	}
	seg := make([]byte, bigSegment)
	var text bytes.Buffer
	for written := int64(0); written < size; {
		n := min(int64(bigSegment), size-written)
		if rng.IntN(2) == 0 {
			fillRandom(rng, seg[:n])
			if _, err := w.Write(seg[:n]); err != nil {
				return err
			}
		} else {
			text.Reset()
			for int64(text.Len()) < n {
				text.Write(vocab[rng.IntN(len(vocab))])
				switch r := rng.IntN(16); {
				case r == 0:
					text.WriteByte('\n')
				case r == 1:
					fmt.Fprintf(&text, " %d ", rng.IntN(100000))
				default:
					text.WriteByte(' ')
				}
			}
			if _, err := w.Write(text.Bytes()[:n]); err != nil {
				return err
			}
		}
		written += n
	}
	return nil
}

func fillRandom(rng *rand.Rand, b []byte) {
	for i := 0; i+8 <= len(b); i += 8 {
		v := rng.Uint64()
		b[i], b[i+1], b[i+2], b[i+3], b[i+4], b[i+5], b[i+6], b[i+7] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24), byte(v>>32), byte(v>>40), byte(v>>48), byte(v>>56)
	}
	for i := len(b) &^ 7; i < len(b); i++ {
		b[i] = byte(rng.Uint32())
	}
}

// changeBigFile overwrites 1 % of the file with new random data, in 20
// regions spread evenly over it.
func changeBigFile(p string, size int64) (string, error) {
	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		return "", err
	}
	const regions = 20
	region := size / 100 / regions
	rng := rand.New(rand.NewChaCha8([32]byte{'c', 'h', 'a', 'n', 'g', 'e'}))
	buf := make([]byte, region)
	for i := int64(0); i < regions; i++ {
		fillRandom(rng, buf)
		off := (size/regions*i + size/regions/2) &^ 4095
		if _, err := f.WriteAt(buf, off); err != nil {
			f.Close()
			return "", err
		}
	}
	if err := f.Close(); err != nil {
		return "", err
	}
	return fmt.Sprintf("%d regions of %s overwritten with new random data (%s, 1 %%)", regions, mb(region), mb(region*regions)), nil
}

// ---- dataset 3: database dumps ---------------------------------------------

// pgConfig says where the benchmark's PostgreSQL database lives.
type pgConfig struct {
	env   []string // PGHOST, PGPORT, PGUSER for the client tools
	db    string
	scale int
	tx    int
}

// makeDumps fills a database with pgbench -i, dumps it, runs pgbench -t
// with a fixed seed and dumps it again. The dumps are kept in dir and
// reused when they were made with the same parameters.
func makeDumps(dir string, pg pgConfig) (*dataset, error) {
	stamp := fmt.Sprintf("pgbench -i -s %d; pg_dump; pgbench -n -t %d --random-seed=1; pg_dump\n", pg.scale, pg.tx)
	dump1, dump2 := filepath.Join(dir, "dump1.sql"), filepath.Join(dir, "dump2.sql")
	if b, err := os.ReadFile(filepath.Join(dir, "made")); err != nil || string(b) != stamp {
		if err := os.RemoveAll(dir); err != nil {
			return nil, err
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		pgRun := func(name string, args ...string) error {
			cmd := exec.Command(name, args...)
			cmd.Env = append(os.Environ(), pg.env...)
			out, err := cmd.CombinedOutput()
			if err != nil {
				return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, lastLines(out, 5))
			}
			return nil
		}
		steps := [][]string{
			{"dropdb", "--if-exists", pg.db},
			{"createdb", pg.db},
			{"pgbench", "-i", "-q", "-s", fmt.Sprint(pg.scale), pg.db},
			// Autovacuum would make the second dump depend on timing.
			{"psql", "-q", "-v", "ON_ERROR_STOP=1", "-d", pg.db, "-c",
				"ALTER TABLE pgbench_accounts SET (autovacuum_enabled = false); ALTER TABLE pgbench_tellers SET (autovacuum_enabled = false); " +
					"ALTER TABLE pgbench_branches SET (autovacuum_enabled = false); ALTER TABLE pgbench_history SET (autovacuum_enabled = false);"},
			{"pg_dump", "-f", dump1, pg.db},
			{"pgbench", "-n", "-t", fmt.Sprint(pg.tx), "--random-seed=1", pg.db},
			{"pg_dump", "-f", dump2, pg.db},
			{"dropdb", pg.db},
		}
		for _, s := range steps {
			if err := pgRun(s[0], s[1:]...); err != nil {
				_ = pgRun("dropdb", "--if-exists", pg.db)
				return nil, err
			}
		}
		if err := os.WriteFile(filepath.Join(dir, "made"), []byte(stamp), 0o644); err != nil {
			return nil, err
		}
	}
	fi1, err1 := os.Stat(dump1)
	fi2, err2 := os.Stat(dump2)
	if err := errors.Join(err1, err2); err != nil {
		return nil, err
	}
	ds := &dataset{key: "3", title: "Dataset 3: database dumps", stream: dump1, streamName: "pgbench.sql", bytes: fi1.Size(), files: 1,
		about: fmt.Sprintf("`pgbench -i -s %d` into database %s, dumped with `pg_dump` (plain, %s); then `pgbench -n -t %d --random-seed=1` (random-row updates), dumped again (%s). Each tool reads the dump on standard input.",
			pg.scale, pg.db, mb(fi1.Size()), pg.tx, mb(fi2.Size()))}
	ds.mutate = func() (string, error) {
		ds.stream, ds.bytes = dump2, fi2.Size()
		return fmt.Sprintf("the second dump, after %d pgbench transactions", pg.tx), nil
	}
	return ds, nil
}

func lastLines(b []byte, n int) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

// ---- verification ----------------------------------------------------------

// verifyTree checks that every regular file and symlink below want has an
// equal counterpart below got.
func verifyTree(want, got string) error {
	n := 0
	err := filepath.WalkDir(want, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(want, p)
		q := filepath.Join(got, rel)
		switch {
		case d.Type().IsRegular():
			n++
			return sameFile(p, q)
		case d.Type()&fs.ModeSymlink != 0:
			a, _ := os.Readlink(p)
			b, err := os.Readlink(q)
			if err != nil || a != b {
				return fmt.Errorf("symlink %s differs", q)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("no files below %s", want)
	}
	return nil
}

func sameFile(a, b string) error {
	fa, err := os.Open(a)
	if err != nil {
		return err
	}
	defer fa.Close()
	fb, err := os.Open(b)
	if err != nil {
		return fmt.Errorf("restored file missing: %w", err)
	}
	defer fb.Close()
	ba, bb := make([]byte, 1<<20), make([]byte, 1<<20)
	for off := int64(0); ; {
		na, ea := io.ReadFull(fa, ba)
		nb, eb := io.ReadFull(fb, bb)
		if na != nb || !bytes.Equal(ba[:na], bb[:nb]) {
			return fmt.Errorf("%s differs from %s near offset %d", b, a, off)
		}
		off += int64(na)
		if ea == io.EOF || ea == io.ErrUnexpectedEOF {
			if eb != ea {
				return fmt.Errorf("%s is longer than %s", b, a)
			}
			return nil
		}
		if ea != nil {
			return ea
		}
		if eb != nil {
			return eb
		}
	}
}

// findFile returns the single regular file named name below dir.
func findFile(dir, name string) (string, error) {
	var found []string
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() && d.Name() == name {
			found = append(found, p)
		}
		return nil
	})
	if len(found) != 1 {
		return "", fmt.Errorf("%d files named %s below %s", len(found), name, dir)
	}
	return found[0], nil
}
