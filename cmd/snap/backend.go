package main

import (
	"fmt"
	"strings"

	"github.com/snap-backup/snap/repo"
	"github.com/snap-backup/snap/repo/local"
)

// openBackend returns the backend for a repository location. This is the
// one place that knows every backend. With create, the location is
// prepared for a new repository.
func openBackend(location string, create bool) (repo.Backend, error) {
	if location == "" {
		return nil, usagef("no repository given: use --repo or set SNAP_REPOSITORY")
	}
	if strings.HasPrefix(location, "s3:") {
		return nil, fmt.Errorf("repository %s: the S3 backend is not available in this build", location)
	}
	location = strings.TrimPrefix(location, "local:")
	if create {
		return local.Create(location)
	}
	return local.Open(location)
}
