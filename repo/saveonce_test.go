package repo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
)

// fileBackend is an in-memory backend whose Save either keeps an existing
// file (as a directory does) or overwrites it (as a bucket's PUT does), and
// whose Remove may be refused (credentials without the right to delete).
type fileBackend struct {
	files      map[Handle][]byte
	overwrites bool
	noDelete   bool
	removes    int
}

func (b *fileBackend) Location() string { return "files" }
func (b *fileBackend) Close() error     { return nil }
func (b *fileBackend) Save(_ context.Context, h Handle, data []byte) error {
	if _, ok := b.files[h]; ok && !b.overwrites {
		return nil
	}
	b.files[h] = bytes.Clone(data)
	return nil
}
func (b *fileBackend) Load(_ context.Context, h Handle, off, n int64) ([]byte, error) {
	d, ok := b.files[h]
	if !ok {
		return nil, fmt.Errorf("%s: %w", h, ErrNotFound)
	}
	return d, nil
}
func (b *fileBackend) Stat(_ context.Context, h Handle) (int64, error) {
	d, ok := b.files[h]
	if !ok {
		return 0, ErrNotFound
	}
	return int64(len(d)), nil
}
func (b *fileBackend) List(context.Context, FileType, func(string, int64) error) error { return nil }
func (b *fileBackend) Remove(_ context.Context, h Handle) error {
	if b.noDelete {
		return errors.New("access denied")
	}
	if _, ok := b.files[h]; !ok {
		return ErrNotFound
	}
	b.removes++
	delete(b.files, h)
	return nil
}

// TestSaveObjectOnceReplacesDamaged: a document of the same name that is
// damaged is replaced, and the caller told; an intact one is left alone.
// On a backend whose Save overwrites (a bucket), nothing is removed, so
// credentials without the right to delete do (found by a review).
func TestSaveObjectOnceReplacesDamaged(t *testing.T) {
	for _, overwrites := range []bool{false, true} {
		be := &fileBackend{files: map[Handle][]byte{}, overwrites: overwrites, noDelete: overwrites}
		r := testRepository(t, be)
		doc := []byte(`{"a snapshot":"document"}`)
		id, replaced, err := r.SaveObjectOnce(context.Background(), SnapshotFile, doc)
		if err != nil || replaced {
			t.Fatalf("first save: %v, replaced %v", err, replaced)
		}
		h := Handle{Type: SnapshotFile, Name: id.String()}
		good := bytes.Clone(be.files[h])
		if _, replaced, err := r.SaveObjectOnce(context.Background(), SnapshotFile, doc); err != nil || replaced {
			t.Errorf("saved again, intact: %v, replaced %v", err, replaced)
		}
		be.files[h][len(good)/2] ^= 1
		if _, replaced, err := r.SaveObjectOnce(context.Background(), SnapshotFile, doc); err != nil || !replaced {
			t.Errorf("overwrites %v: saved over a damaged one: %v, replaced %v", overwrites, err, replaced)
		}
		if !bytes.Equal(be.files[h], good) {
			t.Errorf("overwrites %v: the damaged document is still there", overwrites)
		}
		if overwrites && be.removes != 0 {
			t.Errorf("a backend whose Save overwrites had %d removes", be.removes)
		}
	}
}
