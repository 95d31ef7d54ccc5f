// Package counting is a backend wrapper that counts requests by operation
// and file type. Tests use it to show what a command costs on the network:
// wrapped directly around the S3 backend (inside the retry wrapper), each
// call it counts is one HTTP request, except a multipart upload (several)
// and a listing (one per 1000 names) and Remove (a HEAD and a DELETE).
package counting

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/snap-backup/snap/repo"
)

// Key names one kind of request, e.g. {"load", "data"}.
type Key struct {
	Op   string
	Type repo.FileType
}

// Counts maps each kind of request to how many were made.
type Counts map[Key]int

// Total is the number of requests of all kinds.
func (c Counts) Total() int {
	n := 0
	for _, v := range c {
		n += v
	}
	return n
}

// Op sums the requests of one operation over all file types.
func (c Counts) Op(op string) int {
	n := 0
	for k, v := range c {
		if k.Op == op {
			n += v
		}
	}
	return n
}

// String lists the counts, sorted, as "load data=3 list index=1 …".
func (c Counts) String() string {
	var parts []string
	for k, v := range c {
		parts = append(parts, fmt.Sprintf("%s %s=%d", k.Op, k.Type, v))
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}

// Backend counts the calls to the backend it wraps.
type Backend struct {
	be repo.Backend

	mu     sync.Mutex
	counts Counts
}

var _ repo.Backend = (*Backend)(nil)

// New wraps be.
func New(be repo.Backend) *Backend { return &Backend{be: be, counts: Counts{}} }

func (b *Backend) add(op string, t repo.FileType) {
	b.mu.Lock()
	b.counts[Key{op, t}]++
	b.mu.Unlock()
}

// Counts returns a copy of the counts so far.
func (b *Backend) Counts() Counts {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make(Counts, len(b.counts))
	for k, v := range b.counts {
		out[k] = v
	}
	return out
}

// Reset sets every count to zero.
func (b *Backend) Reset() {
	b.mu.Lock()
	b.counts = Counts{}
	b.mu.Unlock()
}

// Unwrap returns the wrapped backend.
func (b *Backend) Unwrap() repo.Backend { return b.be }

// Location names the wrapped backend.
func (b *Backend) Location() string { return b.be.Location() }

// Save counts and saves.
func (b *Backend) Save(ctx context.Context, h repo.Handle, data []byte) error {
	b.add("save", h.Type)
	return b.be.Save(ctx, h, data)
}

// Load counts and loads.
func (b *Backend) Load(ctx context.Context, h repo.Handle, offset, length int64) ([]byte, error) {
	b.add("load", h.Type)
	return b.be.Load(ctx, h, offset, length)
}

// Stat counts and stats.
func (b *Backend) Stat(ctx context.Context, h repo.Handle) (int64, error) {
	b.add("stat", h.Type)
	return b.be.Stat(ctx, h)
}

// List counts one listing and lists.
func (b *Backend) List(ctx context.Context, t repo.FileType, fn func(name string, size int64) error) error {
	b.add("list", t)
	return b.be.List(ctx, t, fn)
}

// Remove counts and removes.
func (b *Backend) Remove(ctx context.Context, h repo.Handle) error {
	b.add("remove", h.Type)
	return b.be.Remove(ctx, h)
}

// Close closes the wrapped backend.
func (b *Backend) Close() error { return b.be.Close() }
