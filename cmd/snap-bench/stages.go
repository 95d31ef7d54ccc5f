package main

import (
	"bufio"
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// stage is one per-core stage benchmark result.
type stage struct {
	Name  string  // benchmark name without "Benchmark"
	About string  // what it measures
	MBps  float64 // MB/s (10^6 bytes) on one core
}

var stageAbout = map[string]string{
	"Chunker":     "content-defined chunking (restic/chunker, 512 KiB / 1 MiB / 8 MiB)",
	"BLAKE3":      "keyed BLAKE3-256 of 1 MiB chunks",
	"ZstdFastest": "zstd compression, level fastest",
	"AESGCM":      "AES-256-GCM sealing",
	"SealBlob":    "compress (when it helps) + encrypt, as a save worker does",
	"OpenBlob":    "decrypt + decompress, as restore does",
}

// runStages runs the stage benchmarks of chunk/ and repo/ on one core
// (-cpu 1), on a sample of the large-file dataset when there is one.
func runStages(moduleDir, sample string, benchtime string) ([]stage, string, error) {
	args := []string{"test", "-run", "^$", "-bench", "^Benchmark(Chunker|BLAKE3|ZstdFastest|AESGCM|SealBlob|OpenBlob)$",
		"-benchtime", benchtime, "-cpu", "1", "-count", "1", "./chunk", "./repo"}
	cmd := exec.Command("go", args...)
	cmd.Dir = moduleDir
	cmd.Env = os.Environ()
	if sample != "" {
		cmd.Env = append(cmd.Env, "SNAP_BENCH_DATA="+sample)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return nil, "", fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	var stages []stage
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 6 || !strings.HasPrefix(f[0], "Benchmark") || f[len(f)-1] != "MB/s" {
			continue
		}
		v, err := strconv.ParseFloat(f[len(f)-2], 64)
		if err != nil {
			continue
		}
		name := strings.TrimPrefix(f[0], "Benchmark")
		stages = append(stages, stage{Name: name, About: stageAbout[name], MBps: v})
	}
	if len(stages) == 0 {
		return nil, "", fmt.Errorf("no benchmark results in:\n%s", out)
	}
	return stages, "go " + strings.Join(args, " "), nil
}

func stageRate(st []stage, name string) float64 {
	for _, s := range st {
		if s.Name == name {
			return s.MBps
		}
	}
	return 0
}

// limits are the throughputs the stage benchmarks imply for one stream.
type limits struct {
	Cores int
	// Create: a stream is chunked and hashed in one goroutine; sealing
	// runs on every core. So the stream goes no faster than chunk+hash on
	// one core, nor faster than all the work spread over every core.
	CreateStream float64 // MB/s
	CreateCPU    float64 // all stages over all cores
	ChunkHash    float64 // chunk+hash on one core
	// Restore: open (decrypt, decompress) and verify (BLAKE3) on every core.
	Restore float64
	// DiskWrite is the measured rate of writing 16 MiB files with fsync.
	DiskWrite float64
}

func computeLimits(st []stage, disk float64) limits {
	inv := func(names ...string) float64 {
		s := 0.0
		for _, n := range names {
			r := stageRate(st, n)
			if r == 0 {
				return 0
			}
			s += 1 / r
		}
		return s
	}
	l := limits{Cores: runtime.NumCPU(), DiskWrite: disk}
	if ch := inv("Chunker", "BLAKE3"); ch > 0 {
		l.ChunkHash = 1 / ch
	}
	if all := inv("Chunker", "BLAKE3", "SealBlob"); all > 0 {
		l.CreateCPU = float64(l.Cores) / all
		l.CreateStream = min(l.ChunkHash, l.CreateCPU)
	}
	if r := inv("OpenBlob", "BLAKE3"); r > 0 {
		l.Restore = float64(l.Cores) / r
	}
	return l
}

// diskWriteRate writes 16 files of 16 MiB the way the local backend does
// (write, fsync, rename, fsync the directory) and returns MB/s.
func diskWriteRate(dir string) (float64, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	buf := make([]byte, 16<<20)
	fillRandom(rand.New(rand.NewPCG(7, 7)), buf)
	d, err := os.Open(dir)
	if err != nil {
		return 0, err
	}
	defer d.Close()
	start := time.Now()
	const files = 16
	for i := range files {
		p := filepath.Join(dir, fmt.Sprintf("tmp-%d", i))
		f, err := os.Create(p)
		if err != nil {
			return 0, err
		}
		buf[0] = byte(i)
		if _, err := f.Write(buf); err != nil {
			f.Close()
			return 0, err
		}
		if err := f.Sync(); err != nil {
			f.Close()
			return 0, err
		}
		if err := f.Close(); err != nil {
			return 0, err
		}
		if err := os.Rename(p, filepath.Join(dir, fmt.Sprintf("pack-%d", i))); err != nil {
			return 0, err
		}
		if err := d.Sync(); err != nil {
			return 0, err
		}
	}
	return float64(files*len(buf)) / 1e6 / time.Since(start).Seconds(), nil
}
