package repo

import "context"

// RefreshNow rewrites the lock at once, as the refresh loop does every
// LockRefreshInterval (tests do not wait for the ticker).
func (l *Lock) RefreshNow() { l.refreshSafely() }

// ReplaceConfig stores c as the repository's config in place of the one
// there (a repository of a newer format, for tests).
func (r *Repository) ReplaceConfig(ctx context.Context, c Config) error {
	if err := r.be.Remove(ctx, Handle{Type: ConfigFile}); err != nil {
		return err
	}
	r.cfg = c
	return r.saveConfig(ctx)
}
