package snapshot

import "github.com/snap-backup/snap/repo"

// A panic in a goroutine of the archiver or the restorer is a bug. It must
// not end the process with a stack trace, and it must not leave anyone
// waiting: the helpers here turn it into a *repo.PanicError that fails the
// run the way a repository error does (recorded first, context cancelled),
// and the goroutine then delivers what others wait for as usual. See
// docs/design.md, "Errors and exit codes".

// guard runs f, the work of one of the archiver's goroutines. A panic in f
// fails the run (failSave: its error wins over the cancellations it causes)
// and is returned, so that the caller can still deliver a result.
func (a *archiver) guard(f func()) error {
	err := repo.Catch(func() error { f(); return nil })
	if err != nil {
		a.failSave(err)
	}
	return err
}

// safe runs f, which computes a result someone waits for; a panic in f
// fails the run (guard) and becomes a fatal result.
func (a *archiver) safe(f func() fileResult) (r fileResult) {
	if err := a.guard(func() { r = f() }); err != nil {
		return fileResult{err: err, fatal: true}
	}
	return r
}

// guard runs f, the work of one of the restorer's goroutines. A panic in f
// fails the restore like a repository error does: it becomes the restore's
// error and cancels the rest.
func (r *Restorer) guard(f func()) {
	if err := repo.Catch(func() error { f(); return nil }); err != nil {
		r.stop(err)
	}
}
