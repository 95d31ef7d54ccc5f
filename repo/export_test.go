package repo

// RefreshNow rewrites the lock at once, as the refresh loop does every
// LockRefreshInterval (tests do not wait for the ticker).
func (l *Lock) RefreshNow() { l.refreshSafely() }
