package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestRunMetrics: with metrics_dir, each job's run leaves snap-JOB.prom in
// the Prometheus text format: success, exit code, times, the snapshot's
// figures; a failed run keeps the last success's time from the run before
// and drops the snapshot figures; no temporary file is left behind.
func TestRunMetrics(t *testing.T) {
	t.Parallel()
	tr := newTestRepo(t)
	src := filepath.Join(tr.dir, "src")
	writeFile(t, filepath.Join(src, "a"), []byte("twelve bytes"))
	metrics := filepath.Join(tr.dir, "textfile")
	must(t, os.Mkdir(metrics, 0o755))
	cfg := tr.writeConfig(`metrics_dir = "textfile"

[jobs.app]
paths = ["` + src + `"]
`)
	values := func() map[string]float64 {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(metrics, "snap-app.prom"))
		must(t, err)
		out := map[string]float64{}
		for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			if strings.HasPrefix(line, "#") {
				continue
			}
			name, rest, ok := strings.Cut(line, `{snap_job="app"} `)
			v, err := strconv.ParseFloat(rest, 64)
			if !ok || err != nil {
				t.Fatalf("not a metric line: %q", line)
			}
			out[name] = v
		}
		return out
	}
	before := float64(time.Now().Unix())
	if res := tr.runConfig(nil, "run", "--config", cfg); res.code != 0 {
		t.Fatalf("run: exit %d\n%s%s", res.code, res.stdout, res.stderr)
	}
	m := values()
	if m["snap_job_success"] != 1 || m["snap_job_exit_code"] != 0 || m["snap_job_snapshot_files"] != 1 || m["snap_job_snapshot_bytes"] != 12 ||
		m["snap_job_last_success_timestamp_seconds"] < before || m["snap_job_last_run_timestamp_seconds"] != m["snap_job_last_success_timestamp_seconds"] {
		t.Errorf("after a successful run: %v", m)
	}
	success := m["snap_job_last_success_timestamp_seconds"]

	must(t, os.RemoveAll(src)) // the next run fails: its path is gone
	time.Sleep(10 * time.Millisecond)
	if res := tr.runConfig(nil, "run", "--config", cfg); res.code == 0 {
		t.Fatalf("run without its path: exit 0\n%s", res.stdout)
	}
	m = values()
	if m["snap_job_success"] != 0 || m["snap_job_exit_code"] != exitFatal || m["snap_job_last_success_timestamp_seconds"] != success ||
		m["snap_job_last_run_timestamp_seconds"] <= success {
		t.Errorf("after a failed run: %v (last success was %v)", m, success)
	}
	if _, ok := m["snap_job_snapshot_files"]; ok {
		t.Errorf("a failed run reports snapshot figures: %v", m)
	}
	entries, err := os.ReadDir(metrics)
	must(t, err)
	if len(entries) != 1 {
		t.Errorf("metrics directory holds %d entries, want only snap-app.prom", len(entries))
	}
	// config check: a metrics_dir that does not exist is an error.
	must(t, os.RemoveAll(metrics))
	if res := tr.runConfig(nil, "config", "check", "--config", cfg); res.code != exitUsage || !strings.Contains(res.stdout+res.stderr, "metrics_dir") {
		t.Errorf("config check without the metrics directory: exit %d\n%s%s", res.code, res.stdout, res.stderr)
	}
}

// TestRunMetricsDirMissing: a metrics directory that is not there is named
// with the fix; the warning named the temporary file snap tried to make
// in it. The job itself succeeds.
func TestRunMetricsDirMissing(t *testing.T) {
	t.Parallel()
	tr := newTestRepo(t)
	src := filepath.Join(tr.dir, "src")
	writeFile(t, filepath.Join(src, "a"), []byte("x"))
	cfg := tr.writeConfig(`[jobs.app]
paths = ["` + src + `"]
`)
	// Given by the variable or the flag, not the config: the fix names
	// them too ("or change metrics_dir" sent the user to a config without
	// one; found by an exploratory test).
	for _, args := range [][]string{{"run", "--config", cfg}, {"run", "--config", cfg, "--metrics-dir", filepath.Join(tr.dir, "nowhere")}} {
		var env []string
		want := "metrics directory " + filepath.Join(tr.dir, "nowhere") + " does not exist: create it, or change --metrics-dir"
		if len(args) == 3 {
			env = []string{"SNAP_METRICS_DIR=" + filepath.Join(tr.dir, "nowhere")}
			want = strings.Replace(want, "--metrics-dir", "SNAP_METRICS_DIR", 1)
		}
		res := tr.runConfig(env, args...)
		if res.code != 0 || !strings.Contains(res.stderr, want) || strings.Contains(res.stderr, ".tmp") {
			t.Errorf("%v with a missing metrics directory: exit %d, want %q:\n%s", args, res.code, want, res.stderr)
		}
	}
}

// TestRunMetricsDirPrecedence: the flag wins over the config's metrics_dir,
// which wins over a SNAP_METRICS_DIR left in the environment (that moved
// the metrics away from node_exporter; found by an exploratory test).
func TestRunMetricsDirPrecedence(t *testing.T) {
	t.Parallel()
	tr := newTestRepo(t)
	src := filepath.Join(tr.dir, "src")
	writeFile(t, filepath.Join(src, "a"), []byte("x"))
	dirs := map[string]string{}
	for _, n := range []string{"config", "env", "flag"} {
		dirs[n] = filepath.Join(tr.dir, "m-"+n)
		must(t, os.Mkdir(dirs[n], 0o700))
	}
	cfg := tr.writeConfig(`metrics_dir = "` + dirs["config"] + `"
[jobs.app]
paths = ["` + src + `"]
`)
	env := []string{"SNAP_METRICS_DIR=" + dirs["env"]}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"run", "--config", cfg}, "config"},
		{[]string{"run", "--config", cfg, "--metrics-dir", dirs["flag"]}, "flag"},
		// The flag package's single-dash form is the flag too (it was
		// taken for none; found by a review).
		{[]string{"run", "--config", cfg, "-metrics-dir=" + dirs["flag"]}, "flag"},
	} {
		for _, d := range dirs {
			_ = os.Remove(filepath.Join(d, "snap-app.prom"))
		}
		if res := tr.runConfig(env, c.args...); res.code != 0 {
			t.Fatalf("%v: exit %d\n%s", c.args, res.code, res.stderr)
		}
		for n, d := range dirs {
			_, err := os.Stat(filepath.Join(d, "snap-app.prom"))
			if (err == nil) != (n == c.want) {
				t.Errorf("%v: metrics in %s: %v (want them in %s only)", c.args, n, err, c.want)
			}
		}
	}
}

// TestRunMetricsOfABrokenConfig: a run that an error in the config's own
// keys stops (exit 2) writes a failed run into the metrics of the jobs it
// was asked to run: they said the last run had succeeded (found by an
// exploratory test). A metrics_dir that is a file is called one.
func TestRunMetricsOfABrokenConfig(t *testing.T) {
	t.Parallel()
	tr := newTestRepo(t)
	src := filepath.Join(tr.dir, "src")
	writeFile(t, filepath.Join(src, "a"), []byte("x"))
	metrics := filepath.Join(tr.dir, "metrics")
	must(t, os.Mkdir(metrics, 0o755))
	jobs := `metrics_dir = "` + metrics + `"

[jobs.app]
paths = ["` + src + `"]

[jobs.other]
paths = ["` + src + `"]
`
	cfg := tr.writeConfig(jobs)
	tr.runConfig(nil, "run", "--config", cfg, "app")
	prom := filepath.Join(metrics, "snap-app.prom")
	b, err := os.ReadFile(prom)
	if err != nil || !strings.Contains(string(b), `snap_job_success{snap_job="app"} 1`) {
		t.Fatalf("metrics after a good run: %v\n%s", err, b)
	}
	data, err := os.ReadFile(cfg)
	must(t, err)
	writeFile(t, cfg, []byte(strings.Replace(string(data), "cache_dir", "cahce_dir", 1)))
	if res := tr.runConfig(nil, "run", "--config", cfg, "app"); res.code != exitUsage {
		t.Fatalf("run with a misspelt top-level key: exit %d\n%s", res.code, res.stderr)
	}
	b, _ = os.ReadFile(prom)
	if !strings.Contains(string(b), `snap_job_success{snap_job="app"} 0`) || !strings.Contains(string(b), `snap_job_exit_code{snap_job="app"} 2`) ||
		!strings.Contains(string(b), `snap_job_last_success_timestamp_seconds{snap_job="app"}`) {
		t.Errorf("metrics after a run the config stopped:\n%s", b)
	}
	if _, err := os.Stat(filepath.Join(metrics, "snap-other.prom")); !os.IsNotExist(err) {
		t.Errorf("a job not asked for got metrics: %v", err)
	}

	file := filepath.Join(tr.dir, "metrics-file")
	writeFile(t, file, []byte("x"))
	writeFile(t, cfg, []byte(strings.Replace(string(data), metrics, file, 1)))
	res := tr.runConfig(nil, "run", "--config", cfg, "app")
	if !strings.Contains(res.stderr, "metrics directory "+file+" is a file, not a directory") {
		t.Errorf("run with metrics_dir a file:\n%s", res.stderr)
	}
}
