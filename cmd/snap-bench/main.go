// Command snap-bench runs snap, restic and borg side by side on the same
// deterministic datasets, in the same run, and writes the results with the
// per-core stage limits to docs/benchmarks.md. `make bench` runs it;
// `make bench-quick` runs it on small datasets for iteration. The method is
// described in docs/benchmarks.md.
package main

import (
	"cmp"
	"context"
	"flag"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

type config struct {
	quick      bool
	work       string
	out        string
	snapBin    string
	tools      []string
	datasets   []string
	indexBlobs int
	repeat     int
	repeatBig  int
	bigMiB     int64
	filesLimit int
	pg         pgConfig
	profile    bool
	s3         bool
	benchtime  string
	moduleDir  string
	cmdline    string
	sample     string // dataset 2's sample for the stage benchmarks
	// treesFreed is when the restored trees an earlier run left behind
	// were deleted (zero: there were none); see benchDataset.
	treesFreed time.Time
}

const password = "snap-bench-password"

func main() {
	if len(os.Args) > 1 && os.Args[1] == spawnArg {
		os.Exit(spawnMain(os.Args[2:]))
	}
	if err := mainErr(); err != nil {
		fmt.Fprintf(os.Stderr, "snap-bench: %v\n", err)
		os.Exit(1)
	}
}

func mainErr() error {
	var cfg config
	var tools, datasets, pgURL string
	flag.BoolVar(&cfg.quick, "quick", false, "small datasets, for iteration (results are indicative only)")
	flag.StringVar(&cfg.work, "work", filepath.Join(os.TempDir(), "snap-bench"), "work directory for datasets, repositories and logs")
	flag.StringVar(&cfg.out, "out", "", "report file (default docs/benchmarks.md; with -quick WORK/benchmarks-quick.md)")
	flag.StringVar(&cfg.snapBin, "snap", "bin/snap", "snap binary")
	flag.StringVar(&tools, "tools", "snap,snap-default,restic,borg", "tools to compare (snap-default: snap with --compression default)")
	flag.StringVar(&datasets, "datasets", "1,2,3", "datasets to run")
	flag.IntVar(&cfg.indexBlobs, "index-blobs", 1_000_000, "blobs in the synthetic index of the memory test (0 skips it)")
	flag.IntVar(&cfg.repeat, "repeat", 5, "runs of each repeatable dataset 1 operation (the median is reported)")
	flag.IntVar(&cfg.repeatBig, "repeat-big", 3, "runs of dataset 2's initial create, the run behind its target (the median is reported)")
	flag.Int64Var(&cfg.bigMiB, "bigfile-mib", 2048, "size of dataset 2 in MiB")
	flag.IntVar(&cfg.filesLimit, "files", 0, "copy only this many files into dataset 1 (0: all)")
	flag.StringVar(&pgURL, "pg", "postgres://postgres@127.0.0.1:5432", "PostgreSQL server for dataset 3")
	flag.StringVar(&cfg.pg.db, "pg-db", "snapbench", "database created (and dropped) for dataset 3")
	flag.IntVar(&cfg.pg.scale, "pg-scale", 20, "pgbench -i scale of dataset 3")
	flag.IntVar(&cfg.pg.tx, "pg-tx", 2000, "pgbench transactions between the two dumps")
	flag.BoolVar(&cfg.s3, "s3", true, "also run dataset 1 on a local MinIO server (SNAP_TEST_MINIO or $HOME/go/bin/minio)")
	flag.BoolVar(&cfg.profile, "profile", true, "write a CPU profile of every snap run (SNAP_CPUPROFILE)")
	flag.StringVar(&cfg.benchtime, "benchtime", "1s", "go test -benchtime of the stage benchmarks")
	flag.Parse()
	cfg.cmdline = strings.Join(append([]string{"snap-bench"}, os.Args[1:]...), " ")
	if cfg.quick {
		set := map[string]bool{}
		flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
		defaults := map[string]func(){
			"bigfile-mib": func() { cfg.bigMiB = 256 },
			"files":       func() { cfg.filesLimit = 2500 },
			"pg-scale":    func() { cfg.pg.scale = 2 },
			"pg-tx":       func() { cfg.pg.tx = 200 },
			"index-blobs": func() { cfg.indexBlobs = 100_000 },
			"benchtime":   func() { cfg.benchtime = "300ms" },
			"repeat":      func() { cfg.repeat = 3 },
			"repeat-big":  func() { cfg.repeatBig = 1 },
		}
		for name, f := range defaults {
			if !set[name] {
				f()
			}
		}
	}
	cfg.tools = strings.Split(tools, ",")
	cfg.datasets = strings.Split(datasets, ",")
	mod, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil || strings.TrimSpace(string(mod)) == "" || strings.TrimSpace(string(mod)) == os.DevNull {
		return fmt.Errorf("run snap-bench from the snap source tree (go env GOMOD: %v)", err)
	}
	cfg.moduleDir = filepath.Dir(strings.TrimSpace(string(mod)))
	if cfg.out == "" {
		cfg.out = filepath.Join(cfg.moduleDir, "docs", "benchmarks.md")
		if cfg.quick {
			cfg.out = filepath.Join(cfg.work, "benchmarks-quick.md")
		}
	}
	if cfg.snapBin, err = filepath.Abs(cfg.snapBin); err != nil {
		return err
	}
	if cfg.work, err = filepath.Abs(cfg.work); err != nil {
		return err
	}
	u, err := url.Parse(pgURL)
	if err != nil {
		return fmt.Errorf("-pg %q: %w", pgURL, err)
	}
	cfg.pg.env = []string{"PGHOST=" + u.Hostname(), "PGPORT=" + u.Port(), "PGUSER=" + u.User.Username(), "PGDATABASE="}
	for _, t := range cfg.tools {
		name := map[string]string{"snap": cfg.snapBin, "snap-default": cfg.snapBin, "restic": "restic", "borg": "borg"}[t]
		if name == "" {
			return fmt.Errorf("-tools: unknown tool %q (snap, snap-default, restic, borg)", t)
		}
		if _, err := exec.LookPath(name); err != nil {
			return fmt.Errorf("%s is not installed (make bench installs restic and borgbackup; make build builds snap): %w", t, err)
		}
	}
	return runBench(context.Background(), &cfg)
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s  %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

func runBench(ctx context.Context, cfg *config) error {
	rep := &report{cfg: cfg, start: time.Now(), machine: machineInfo(), loadStart: loadAvg()}
	rep.versions = toolVersions(cfg)
	if err := os.MkdirAll(cfg.work, 0o755); err != nil {
		return err
	}
	// The restored trees of an earlier run go first, so that the half
	// minute in which ext4 avoids their inodes (see benchDataset) passes
	// while the datasets are made and backed up, not during a restore.
	restores := filepath.Join(cfg.work, "restore")
	if _, err := os.Stat(restores); err == nil {
		if err := os.RemoveAll(restores); err != nil {
			return err
		}
		cfg.treesFreed = time.Now()
	}

	var sets []*dataset
	want := func(k string) bool { return slices.Contains(cfg.datasets, k) }
	var ds1 *dataset
	if want("1") || cfg.indexBlobs > 0 {
		logf("dataset 1: copying the Go source tree")
		ds, err := makeSourceTree(filepath.Join(cfg.work, "data", "ds1"), cfg.filesLimit)
		if err != nil {
			return err
		}
		ds1 = ds
		if want("1") {
			sets = append(sets, ds)
		}
	}
	sample := ""
	if want("2") {
		logf("dataset 2: writing %d MiB", cfg.bigMiB)
		ds, err := makeBigFile(filepath.Join(cfg.work, "data", "ds2"), cfg.bigMiB<<20)
		if err != nil {
			return err
		}
		sets = append(sets, ds)
		sample = filepath.Join(cfg.work, "data", "ds2-sample.bin")
		if err := writeSample(filepath.Join(ds.root, "big.bin"), sample); err != nil {
			return err
		}
		cfg.sample = sample
	}
	if want("3") {
		logf("dataset 3: pgbench -i -s %d, pg_dump, pgbench -t %d, pg_dump", cfg.pg.scale, cfg.pg.tx)
		ds, err := makeDumps(filepath.Join(cfg.work, "data", "ds3"), cfg.pg)
		if err != nil {
			return fmt.Errorf("dataset 3 needs PostgreSQL with pgbench (make bench installs it): %w", err)
		}
		sets = append(sets, ds)
	}

	// The stage benchmarks run right before dataset 2 (or before the first
	// dataset without it): this VM's speed drifts by a third within ten
	// minutes, and dataset 2's target compares its create with them.
	stages := func() error {
		logf("stage benchmarks (go test -bench, one core)")
		syscall.Sync() // the datasets' writeback must not run during the stage benchmarks
		st, cmd, err := runStages(cfg.moduleDir, sample, cfg.benchtime, allStages)
		if err != nil {
			return err
		}
		io, err := measureIO(filepath.Join(cfg.work, "disktest"))
		if err != nil {
			return err
		}
		rep.stages, rep.stageCmd, rep.limits = st, cmd, computeLimits(st, io)
		rep.stageSample = sample
		return nil
	}
	var err error
	stagesAt := ""
	if len(sets) > 0 {
		stagesAt = sets[0].key
	}
	if want("2") {
		stagesAt = "2"
	}

	for _, ds := range sets {
		if ds.key == stagesAt {
			if err := stages(); err != nil {
				return err
			}
		}
		res, err := benchDataset(cfg, ds)
		if err != nil {
			return err
		}
		rep.results = append(rep.results, res)
		if s := res.tool("snap"); ds.key == "2" && s != nil && s.SizeInitial > 0 {
			rep.limits.withLimitIO(float64(s.SizeInitial) / float64(res.bytesInitial))
		}
		if ds.key == "3" {
			logf("dataset 3: chunker parameter sweep")
			rows := sweepSets()
			if sp := streamParams(ctx, res); sp != nil {
				rows = append([]sweepRow{*sp}, rows...)
			}
			rep.sweep, err = chunkSweep(filepath.Join(cfg.work, "data", "ds3", "dump1.sql"), filepath.Join(cfg.work, "data", "ds3", "dump2.sql"), rows)
			if err != nil {
				return err
			}
			if res.snapDir != "" {
				rep.deltas = countDeltas(ctx, filepath.Join(res.snapDir, "repo"))
			}
		}
	}
	if d1 := rep.result("1"); d1 != nil && cfg.s3 {
		rep.s3, err = benchS3(cfg, ds1, d1)
		if err != nil {
			return err
		}
	}
	if cfg.indexBlobs > 0 && slices.Contains(cfg.tools, "snap") {
		logf("memory test: create with %d blobs indexed", cfg.indexBlobs)
		rep.mem, err = memoryTest(ctx, cfg, ds1)
		if err != nil {
			return err
		}
	}
	rep.loadEnd = loadAvg()
	rep.end = time.Now()
	if err := rep.write(); err != nil {
		return err
	}
	logf("report written to %s", cfg.out)
	return nil
}

// opResult is one operation of one tool: the median of its runs.
type opResult struct {
	M       measurement
	Best    time.Duration // the fastest run's wall time
	Runs    int
	Err     error
	Profile string // snap: CPU profile of the median run
}

type toolResult struct {
	Tool                                  string
	Initial, NoChange, Changed, Restore   opResult
	SizeInitial, SizeNoChange, SizeChange int64
	Verify                                error
	failed                                error
}

type datasetResult struct {
	ds                    *dataset
	bytesInitial          int64
	bytesChanged          int64
	change                string
	tools                 []*toolResult
	loadBefore, loadAfter string
	snapDir               string
	snapStdin             bool
	treesFreed            time.Time   // when the restored trees were deleted
	pairs                 []pairedRun // dataset 2: snap's timed creates with the stage limit measured right before each
}

// waitForFreedInodes sleeps until the half minute after freed (when many
// restored files were deleted) has passed: ext4 skips inodes freed that
// recently when it allocates new ones, so a restore right after deleting
// thousands of files spends seconds scanning the inode bitmap, whichever
// tool it is. A zero freed waits for nothing.
func waitForFreedInodes(freed time.Time, who string) {
	if wait := time.Until(freed.Add(35 * time.Second)); wait > 0 {
		logf("%s: waiting %s for the file system to reuse freed inodes", who, wait.Round(time.Second))
		time.Sleep(wait)
	}
}

// pairedRun is one timed create and the create limit (MB/s) of the stage
// round right before it.
type pairedRun struct {
	wall  time.Duration
	limit float64
}

func (r *datasetResult) tool(name string) *toolResult {
	for _, t := range r.tools {
		if t.Tool == name {
			return t
		}
	}
	return nil
}

func benchDataset(cfg *config, ds *dataset) (*datasetResult, error) {
	res := &datasetResult{ds: ds, bytesInitial: ds.bytes, loadBefore: loadAvg()}
	reps, initialReps := 1, 1
	switch ds.key {
	case "1":
		reps = max(cfg.repeat, 1)
		initialReps = reps
	case "2":
		// One create of 2 GiB takes anything from 6 to 9 s as this VM's
		// speed drifts; its target is measured against a best-of-three
		// limit, so it gets a median of several runs too.
		initialReps = max(cfg.repeatBig, 1)
	}
	var tools []backupTool
	for _, name := range cfg.tools {
		dir := filepath.Join(cfg.work, "repos", "ds"+ds.key, name)
		if err := os.RemoveAll(dir); err != nil {
			return nil, err
		}
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, err
		}
		var t backupTool
		switch name {
		case "snap":
			s, err := newSnap(cfg.snapBin, dir, password, cfg.profile)
			if err != nil {
				return nil, err
			}
			res.snapDir, res.snapStdin = dir, s.hasStdin
			t = s
		case "snap-default":
			// The same snap at --compression default (zstd level 3, as
			// restic's auto): what the level costs and saves, next to the
			// default fastest.
			s, err := newSnap(cfg.snapBin, dir, password, false)
			if err != nil {
				return nil, err
			}
			s.name, s.createArgs = name, []string{"--compression", "default"}
			t = s
		case "restic":
			t = newRestic(dir, password)
		case "borg":
			t = newBorg(dir, password)
		}
		tools = append(tools, t)
		res.tools = append(res.tools, &toolResult{Tool: name})
	}
	// phase runs op for every tool still working, rep times, and keeps the
	// median. A repeated operation of a profiled snap is timed without
	// profiling (which costs a few per cent, and the other tools run
	// without), and run once more, untimed, for its profile; a single run
	// is timed and profiled at once.
	phase := func(name string, reps int, op func(t backupTool, rep int) (measurement, string, error), store func(*toolResult) *opResult) {
		runs := make([][]measurement, len(tools))
		profs := make([][]string, len(tools))
		extra := make([]string, len(tools)) // the profile of the untimed run
		for rep := range reps + 1 {
			// Each repetition starts with the next tool, so that no tool
			// always runs right after the same other one (after borg, whose
			// reads drop the dataset from the page cache, the next create
			// runs in a disturbed system).
			for k := range tools {
				i := (k + rep) % len(tools)
				t := tools[i]
				tr := res.tools[i]
				if tr.failed != nil {
					continue
				}
				s, isSnap := t.(*snapTool)
				profiledRun := isSnap && s.profDir != "" && reps > 1 && rep == reps
				if rep == reps && !profiledRun {
					continue
				}
				if isSnap {
					s.unprofiled = reps > 1 && !profiledRun
				}
				if profiledRun {
					logf("dataset %s: %s: %s (one more run, for its CPU profile)", ds.key, t.Name(), name)
				} else {
					logf("dataset %s: %s: %s (run %d/%d)", ds.key, t.Name(), name, rep+1, reps)
				}
				m, prof, err := op(t, rep)
				if isSnap {
					s.unprofiled = false
				}
				if err != nil {
					tr.failed = fmt.Errorf("%s: %w", name, err)
					store(tr).Err = err
					logf("  failed: %v", err)
					continue
				}
				if profiledRun {
					extra[i] = prof
					continue
				}
				runs[i] = append(runs[i], m)
				profs[i] = append(profs[i], prof)
				logf("  %.2f s wall, %.2f s user, %.2f s sys", m.Wall.Seconds(), m.User.Seconds(), m.Sys.Seconds())
			}
		}
		for i := range tools {
			if len(runs[i]) == 0 {
				continue
			}
			o := store(res.tools[i])
			o.M, o.Runs = median(runs[i]), len(runs[i])
			o.Best = slices.MinFunc(runs[i], func(a, b measurement) int { return cmp.Compare(a.Wall, b.Wall) }).Wall
			o.Profile = extra[i]
			for j, m := range runs[i] {
				if o.Profile == "" && m.Wall == o.M.Wall {
					o.Profile = profs[i][j]
				}
			}
		}
	}
	prof := func(t backupTool, op string) string {
		if s, ok := t.(*snapTool); ok && !s.unprofiled {
			return s.profile(op)
		}
		return ""
	}
	for i, t := range tools {
		if err := t.Init(); err != nil {
			res.tools[i].failed = fmt.Errorf("init: %w", err)
			logf("dataset %s: %s: init failed: %v", ds.key, t.Name(), err)
		}
	}
	phase("initial create", initialReps, func(t backupTool, rep int) (measurement, string, error) {
		if rep > 0 {
			if err := t.Init(); err != nil {
				return measurement{}, "", err
			}
		}
		op := fmt.Sprintf("ds%s-initial-%d", ds.key, rep)
		// Dataset 2's target compares snap's create with the stage
		// limit, and this VM's speed drifts within minutes: each timed
		// create gets a round of the stage benchmarks right before it.
		var paired limits
		if s, ok := t.(*snapTool); ok && ds.key == "2" && t.Name() == "snap" && (s.unprofiled || initialReps == 1) {
			logf("dataset 2: stage benchmarks for the create that follows")
			st, _, err := runStages(cfg.moduleDir, cfg.sample, cfg.benchtime, createStages)
			if err != nil {
				return measurement{}, "", err
			}
			paired = computeLimits(st, ioCost{})
		}
		warmDataset(ds)
		m, err := t.Create(ds, op)
		if err == nil && paired.CreateCPU > 0 {
			res.pairs = append(res.pairs, pairedRun{wall: m.Wall, limit: paired.CreateCPU})
		}
		return m, prof(t, op), err
	}, func(r *toolResult) *opResult { return &r.Initial })
	for i, t := range tools {
		res.tools[i].SizeInitial = t.RepoSize()
	}
	phase("no-change create", reps, func(t backupTool, rep int) (measurement, string, error) {
		op := fmt.Sprintf("ds%s-nochange-%d", ds.key, rep)
		warmDataset(ds)
		m, err := t.Create(ds, op)
		return m, prof(t, op), err
	}, func(r *toolResult) *opResult { return &r.NoChange })
	for i, t := range tools {
		res.tools[i].SizeNoChange = t.RepoSize()
	}
	change, err := ds.mutate()
	if err != nil {
		return nil, fmt.Errorf("dataset %s: change: %w", ds.key, err)
	}
	res.change, res.bytesChanged = change, ds.bytes
	phase("create after change", 1, func(t backupTool, rep int) (measurement, string, error) {
		op := fmt.Sprintf("ds%s-changed", ds.key)
		warmDataset(ds)
		m, err := t.Create(ds, op)
		return m, prof(t, op), err
	}, func(r *toolResult) *opResult { return &r.Changed })
	for i, t := range tools {
		res.tools[i].SizeChange = t.RepoSize()
	}
	// Restored trees stay until every restore of the dataset is done:
	// ext4 skips inodes freed in the last half minute when it allocates new
	// ones, so a restore right after deleting thousands of files spends
	// seconds scanning the inode bitmap, whichever tool it is.
	restoreDir := filepath.Join(cfg.work, "restore", "ds"+ds.key)
	if err := os.RemoveAll(restoreDir); err != nil {
		return nil, err
	}
	waitForFreedInodes(cfg.treesFreed, "dataset "+ds.key)
	defer func() {
		os.RemoveAll(restoreDir)
		res.treesFreed = time.Now()
	}()
	phase("restore", reps, func(t backupTool, rep int) (measurement, string, error) {
		target := filepath.Join(restoreDir, fmt.Sprintf("%s-%d", t.Name(), rep))
		if err := os.MkdirAll(target, 0o755); err != nil {
			return measurement{}, "", err
		}
		op := fmt.Sprintf("ds%s-restore-%d", ds.key, rep)
		warm(filepath.Join(cfg.work, "repos", "ds"+ds.key, t.Name(), "repo"))
		m, got, err := t.Restore(ds, target, op)
		if err != nil {
			return m, "", err
		}
		if rep == 0 {
			want := ds.root
			if want == "" {
				want = ds.stream
				err = sameFile(want, got)
			} else {
				err = verifyTree(want, got)
			}
			for _, tr := range res.tools {
				if tr.Tool == t.Name() {
					tr.Verify = err
				}
			}
			if err != nil {
				logf("  restore differs from the source: %v", err)
			}
		}
		return m, prof(t, op), nil
	}, func(r *toolResult) *opResult { return &r.Restore })
	res.loadAfter = loadAvg()
	return res, nil
}

// warmDataset reads the dataset into the page cache before a create.
// Every run starts warm: borg drops the page cache of each file it reads
// (posix_fadvise DONTNEED), which would leave the tool after it reading
// from disk.
func warmDataset(ds *dataset) {
	if ds.root != "" {
		warm(ds.root)
	} else {
		warm(ds.stream)
	}
}

// warm reads every regular file below path (or path itself).
func warm(path string) {
	buf := make([]byte, 1<<20)
	_ = filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return nil
		}
		defer f.Close()
		for {
			if _, err := f.Read(buf); err != nil {
				return nil
			}
		}
	})
}
