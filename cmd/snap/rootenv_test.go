package main

import (
	"bytes"
	"compress/gzip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestRootWithAUsersEnvironment: root run with a user's environment (su
// without -, found by a red-team test) does not write its cache or its
// profiles where that user could redirect them: a $XDG_CACHE_HOME in the
// user's home is passed over for root's own $HOME, a cache directory given
// there is refused, and a profile file is not written through the user's
// link or into the user's file. The config file's side is in
// TestConfigWritableByOthers.
func TestRootWithAUsersEnvironment(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to give files to another user")
	}
	const nobody = 65534
	tr := newTestRepo(t)
	userHome := filepath.Join(tr.dir, "user")
	rootHome := filepath.Join(tr.dir, "root")
	must(t, os.MkdirAll(filepath.Join(userHome, ".cache"), 0o755))
	must(t, os.MkdirAll(rootHome, 0o700))
	must(t, os.Chown(userHome, nobody, nobody))
	must(t, os.Chown(filepath.Join(userHome, ".cache"), nobody, nobody))
	env := []string{"SNAP_CACHE_DIR=", "XDG_CACHE_HOME=" + filepath.Join(userHome, ".cache"), "HOME=" + rootHome}

	res := tr.runEnv(env, nil, "list")
	if res.code != 0 {
		t.Fatalf("list with a user's XDG_CACHE_HOME: exit %d\n%s", res.code, res.stderr)
	}
	if _, err := os.Stat(filepath.Join(userHome, ".cache", "snap")); err == nil {
		t.Errorf("root made its cache in the user's XDG_CACHE_HOME")
	}
	if _, err := os.Stat(filepath.Join(rootHome, ".cache", "snap", "key-hints")); err != nil {
		t.Errorf("root's cache is not in its own HOME: %v", err)
	}

	// Given, the same place is refused, with the reason.
	res = tr.runEnv([]string{"SNAP_CACHE_DIR=" + filepath.Join(userHome, ".cache", "snap")}, nil, "list")
	if res.code != 2 || !strings.Contains(res.stderr, "cache directory "+filepath.Join(userHome, ".cache", "snap")+": "+filepath.Join(userHome, ".cache")+" lies in "+userHome+", which another user may write (owner uid 65534") {
		t.Errorf("list with a cache directory in a user's home: exit %d\n%s", res.code, res.stderr)
	}
	// A cache directory of another user's in a sticky directory (/tmp)
	// is refused; a new one there is made and used.
	sticky := filepath.Join(tr.dir, "tmp")
	must(t, os.Mkdir(sticky, 0o755))
	must(t, os.Chmod(sticky, os.ModeSticky|0o777))
	must(t, os.Mkdir(filepath.Join(sticky, "theirs"), 0o700))
	must(t, os.Chown(filepath.Join(sticky, "theirs"), nobody, nobody))
	res = tr.runEnv([]string{"SNAP_CACHE_DIR=" + filepath.Join(sticky, "theirs")}, nil, "list")
	if res.code != 2 || !strings.Contains(res.stderr, "cache directory "+filepath.Join(sticky, "theirs")+": it belongs to another user (uid 65534)") {
		t.Errorf("list with another user's cache directory in a sticky directory: exit %d\n%s", res.code, res.stderr)
	}
	if res := tr.runEnv([]string{"SNAP_CACHE_DIR=" + filepath.Join(sticky, "ours")}, nil, "list"); res.code != 0 {
		t.Errorf("list with a new cache directory in a sticky directory: exit %d\n%s", res.code, res.stderr)
	}

	// Profiles: not through the user's link, not into the user's file,
	// not into the user's directory; root's own place works.
	victim := filepath.Join(tr.dir, "victim")
	writeFile(t, victim, []byte("root's"))
	link := filepath.Join(sticky, "cpu.prof")
	must(t, os.Symlink(victim, link))
	must(t, os.Lchown(link, nobody, nobody))
	theirs := filepath.Join(sticky, "trace.out")
	writeFile(t, theirs, nil)
	must(t, os.Chown(theirs, nobody, nobody))
	res = tr.runEnv([]string{"SNAP_CPUPROFILE=" + link, "SNAP_TRACE=" + theirs, "SNAP_MEMPROFILE=" + filepath.Join(userHome, "mem.prof")}, nil, "list")
	if res.code != 0 || !strings.Contains(res.stderr, "SNAP_CPUPROFILE") || !strings.Contains(res.stderr, "SNAP_TRACE: "+theirs+" belongs to another user (uid 65534)") ||
		!strings.Contains(res.stderr, "SNAP_MEMPROFILE: "+filepath.Join(userHome, "mem.prof")+" is in "+userHome+", which another user may write") {
		t.Errorf("profiles named in a user's places: exit %d\n%s", res.code, res.stderr)
	}
	if data, err := os.ReadFile(victim); err != nil || string(data) != "root's" {
		t.Errorf("the profile was written through the user's link: %q %v", data, err)
	}
	if fi, err := os.Stat(theirs); err != nil || fi.Size() != 0 {
		t.Errorf("the trace was written into the user's file: %v", err)
	}
	if _, err := os.Stat(filepath.Join(userHome, "mem.prof")); err == nil {
		t.Errorf("the heap profile was written into the user's directory")
	}
	// Root's own file that is no profile (as /etc/shadow would be) is not
	// overwritten; a profile is, again and again.
	shadow := filepath.Join(rootHome, "shadow")
	writeFile(t, shadow, []byte("root:secret\n"))
	res = tr.runEnv([]string{"SNAP_CPUPROFILE=" + shadow}, nil, "list")
	if res.code != 0 || !strings.Contains(res.stderr, "SNAP_CPUPROFILE: "+shadow+" exists and holds no profile or trace") {
		t.Errorf("profile naming root's own file: exit %d\n%s", res.code, res.stderr)
	}
	if data, err := os.ReadFile(shadow); err != nil || string(data) != "root:secret\n" {
		t.Errorf("root's own file was overwritten: %q %v", data, err)
	}
	// Nor an empty file (files of /proc/sys say they are), nor any gzip
	// file (a rotated log): only a profile.
	empty := filepath.Join(rootHome, "empty")
	writeFile(t, empty, nil)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, _ = zw.Write([]byte("Dec  6 03:00:01 host CRON[1]: (root) CMD (snap run)\n"))
	must(t, zw.Close())
	rotated := filepath.Join(rootHome, "syslog.1.gz")
	writeFile(t, rotated, gz.Bytes())
	res = tr.runEnv([]string{"SNAP_CPUPROFILE=" + empty, "SNAP_MEMPROFILE=" + rotated}, nil, "list")
	if !strings.Contains(res.stderr, "SNAP_CPUPROFILE: "+empty+" exists and holds no profile") || !strings.Contains(res.stderr, "SNAP_MEMPROFILE: "+rotated+" exists and holds no profile") {
		t.Errorf("profiles naming an empty file and a rotated log: exit %d\n%s", res.code, res.stderr)
	}
	if data, _ := os.ReadFile(rotated); !bytes.Equal(data, gz.Bytes()) {
		t.Error("the rotated log was overwritten")
	}
	// A go.work file begins "go 1.N" as a trace does; a device is not
	// even opened.
	work := filepath.Join(rootHome, "go.work")
	writeFile(t, work, []byte("go 1.26\n\nuse ./snap\n"))
	res = tr.runEnv([]string{"SNAP_TRACE=" + work, "SNAP_CPUPROFILE=/dev/null"}, nil, "list")
	if !strings.Contains(res.stderr, "SNAP_TRACE: "+work+" exists and holds no profile") || !strings.Contains(res.stderr, "SNAP_CPUPROFILE: /dev/null is not a regular file") {
		t.Errorf("profiles naming a go.work file and a device: exit %d\n%s", res.code, res.stderr)
	}
	own := filepath.Join(rootHome, "cpu.prof")
	for range 2 {
		if res := tr.runEnv([]string{"SNAP_CPUPROFILE=" + own, "SNAP_TRACE=" + own + ".trace"}, nil, "list"); res.code != 0 || strings.Contains(res.stderr, "SNAP_") {
			t.Errorf("profile in root's own directory: exit %d\n%s", res.code, res.stderr)
		}
		if fi, err := os.Stat(own); err != nil || fi.Size() == 0 {
			t.Errorf("no profile in root's own directory: %v", err)
		}
	}

	// Metrics: not through the user's link in the user's directory; a
	// FIFO in place of the previous file does not hang the run.
	app := filepath.Join(tr.dir, "app")
	writeFile(t, filepath.Join(app, "f"), []byte("x"))
	cfg := tr.writeConfig("[jobs.app]\npaths = [\"" + app + "\"]\n")
	target := filepath.Join(tr.dir, "crond")
	must(t, os.Mkdir(target, 0o755))
	metricsLink := filepath.Join(userHome, "metrics")
	must(t, os.Symlink(target, metricsLink))
	must(t, os.Lchown(metricsLink, nobody, nobody))
	res = tr.runConfig([]string{"SNAP_METRICS_DIR=" + metricsLink}, "run", "--config", cfg)
	if !strings.Contains(res.stderr, "metrics directory "+metricsLink+": "+metricsLink+" is a symbolic link of another user's") {
		t.Errorf("metrics through a user's link: exit %d\n%s", res.code, res.stderr)
	}
	if entries, _ := os.ReadDir(target); len(entries) != 0 {
		t.Errorf("metrics written through the user's link: %v", entries)
	}
	// node_exporter's directory in its user's home, as Debian lays it
	// out (/var/lib/prometheus/node-exporter), takes root's metrics.
	promHome := filepath.Join(tr.dir, "prometheus")
	textfiles := filepath.Join(promHome, "node-exporter")
	must(t, os.MkdirAll(textfiles, 0o755))
	must(t, os.Chown(promHome, nobody, nobody))
	must(t, os.Chown(textfiles, nobody, nobody))
	if res := tr.runConfig([]string{"SNAP_METRICS_DIR=" + textfiles}, "run", "--config", cfg); res.code != 0 || strings.Contains(res.stderr, "metrics") {
		t.Errorf("metrics into node_exporter's directory: exit %d\n%s", res.code, res.stderr)
	}
	if _, err := os.Stat(filepath.Join(textfiles, "snap-app.prom")); err != nil {
		t.Errorf("no metrics in node_exporter's directory: %v", err)
	}
	metrics := filepath.Join(tr.dir, "metrics")
	must(t, os.Mkdir(metrics, 0o755))
	must(t, syscall.Mkfifo(filepath.Join(metrics, "snap-app.prom"), 0o644))
	done := make(chan result, 1)
	go func() { done <- tr.runConfig([]string{"SNAP_METRICS_DIR=" + metrics}, "run", "--config", cfg) }()
	select {
	case res = <-done:
		if res.code != 0 {
			t.Errorf("run with a FIFO for the previous metrics: exit %d\n%s", res.code, res.stderr)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("run hung on a FIFO in place of the previous metrics file")
	}
}
