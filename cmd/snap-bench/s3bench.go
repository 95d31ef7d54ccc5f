package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/snap-backup/snap/repo/s3/s3test"
)

// s3Result compares dataset 1 on a local MinIO server with the local
// directory: snap and restic, initial create and restore (borg has no S3
// backend).
type s3Result struct {
	server  string // MinIO's version line
	tools   []s3ToolResult
	skipped string // why the comparison did not run
}

type s3ToolResult struct {
	Tool            string
	Create, Restore opResult
	Verify          error
	// LocalCreate and LocalRestore are the same tool on the local
	// directory, from dataset 1.
	LocalCreate, LocalRestore opResult
	failed                    bool
}

// benchS3 starts MinIO with its data below the work directory, points
// snap and restic at buckets on it, and runs dataset 1's initial create
// (each run into a fresh prefix) and restore, reps times each, keeping the
// medians. local holds dataset 1's results on the local directory.
func benchS3(cfg *config, ds *dataset, local *datasetResult) (*s3Result, error) {
	res := &s3Result{}
	bin, _, err := s3test.Binary("minio")
	if err != nil {
		res.skipped = fmt.Sprintf("no MinIO binary (%v); `make bench` builds it", err)
		return res, nil
	}
	res.server = versionLine(bin, "--version")
	// Restores right after dataset 1's restored trees were deleted would
	// pay for ext4's avoiding their inodes, and only the tool that goes
	// first.
	waitForFreedInodes(local.treesFreed, "s3")
	dir := filepath.Join(cfg.work, "minio")
	if err := os.RemoveAll(dir); err != nil {
		return nil, err
	}
	srv, err := s3test.Launch("minio", dir)
	if err != nil {
		return nil, err
	}
	defer srv.Stop()
	restoreDir := filepath.Join(cfg.work, "restore", "s3")
	if err := os.RemoveAll(restoreDir); err != nil {
		return nil, err
	}
	defer os.RemoveAll(restoreDir)
	reps := max(cfg.repeat, 1)
	for _, name := range cfg.tools {
		if name != "snap" && name != "restic" {
			continue // borg has no S3 backend; the compression variant adds nothing here
		}
		tdir := filepath.Join(cfg.work, "repos", "s3", name)
		if err := os.RemoveAll(tdir); err != nil {
			return nil, err
		}
		if err := os.MkdirAll(tdir, 0o700); err != nil {
			return nil, err
		}
		var t backupTool
		var b *base
		switch name {
		case "snap":
			s, err := newSnap(cfg.snapBin, tdir, password, false)
			if err != nil {
				return nil, err
			}
			t, b = s, &s.base
		case "restic":
			r := newRestic(tdir, password)
			t, b = r, &r.base
		}
		b.env = append(b.env, srv.Env()...)
		tr := s3ToolResult{Tool: name}
		if lt := local.tool(name); lt != nil {
			tr.LocalCreate, tr.LocalRestore = lt.Initial, lt.Restore
		}
		var creates, restores []measurement
		for rep := range reps {
			b.location = srv.Location("bench", fmt.Sprintf("%s-%d", name, rep))
			logf("dataset 1 on MinIO: %s: initial create (run %d/%d)", name, rep+1, reps)
			if err := t.Init(); err != nil {
				return nil, fmt.Errorf("%s init on MinIO: %w", name, err)
			}
			warmDataset(ds)
			m, err := t.Create(ds, "")
			if err != nil {
				tr.Create.Err, tr.failed = err, true
				break
			}
			creates = append(creates, m)
		}
		for rep := 0; rep < reps && !tr.failed; rep++ {
			logf("dataset 1 on MinIO: %s: restore (run %d/%d)", name, rep+1, reps)
			target := filepath.Join(restoreDir, fmt.Sprintf("%s-%d", name, rep))
			if err := os.MkdirAll(target, 0o755); err != nil {
				return nil, err
			}
			m, got, err := t.Restore(ds, target, "")
			if err != nil {
				tr.Restore.Err, tr.failed = err, true
				break
			}
			if rep == 0 {
				tr.Verify = verifyTree(ds.root, got)
			}
			restores = append(restores, m)
		}
		tr.Create.M, tr.Create.Runs = median(creates), len(creates)
		tr.Restore.M, tr.Restore.Runs = median(restores), len(restores)
		res.tools = append(res.tools, tr)
	}
	return res, nil
}

func (r *s3Result) tool(name string) *s3ToolResult {
	for i := range r.tools {
		if r.tools[i].Tool == name {
			return &r.tools[i]
		}
	}
	return nil
}

// renderS3 writes the MinIO comparison.
func (r *report) renderS3(p func(string, ...any)) {
	s3 := r.s3
	p("### Dataset 1 on S3 (local MinIO) and on the local directory")
	p("")
	if s3.skipped != "" {
		p("Not run: %s.", s3.skipped)
		p("")
		return
	}
	p("MinIO (%s) on 127.0.0.1, its data on the same disk; snap and restic each back dataset 1 up into", s3.server)
	p("a bucket prefix of their own (a fresh one per initial create) and restore it; medians of %d runs.", max(r.cfg.repeat, 1))
	p("The local-directory figures are dataset 1's above. borg has no S3 backend. Restores are verified.")
	p("")
	p("| tool | create, local | create, MinIO | MinIO/local | restore, local | restore, MinIO | MinIO/local | verified |")
	p("|---|---|---|---|---|---|---|---|")
	for _, t := range s3.tools {
		if t.failed {
			p("| %s | failed: %v%v | | | | | | |", t.Tool, errOr(t.Create.Err), errOr(t.Restore.Err))
			continue
		}
		lc, lr := "–", "–"
		if t.LocalCreate.Runs > 0 {
			lc = secs(t.LocalCreate.M.Wall)
		}
		if t.LocalRestore.Runs > 0 {
			lr = secs(t.LocalRestore.M.Wall)
		}
		rc, rr := timeRatio(t.Create, t.LocalCreate), timeRatio(t.Restore, t.LocalRestore)
		verified := "yes"
		if t.Verify != nil {
			verified = "NO: " + t.Verify.Error()
		}
		p("| %s | %s | %s | %s | %s | %s | %s | %s |", t.Tool, lc, secs(t.Create.M.Wall), rc, lr, secs(t.Restore.M.Wall), rr, verified)
	}
	p("")
	if s, rs := s3.tool("snap"), s3.tool("restic"); s != nil && rs != nil && !s.failed && !rs.failed {
		p("On MinIO, snap/restic: create %s, restore %s.", timeRatio(s.Create, rs.Create), timeRatio(s.Restore, rs.Restore))
		p("")
	}
}

func errOr(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
