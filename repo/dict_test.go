package repo

import (
	"bytes"
	"fmt"
	"testing"
)

// sourceLike returns n small "source files": a licence header and import
// block they all share, then a body of their own (letters).
func sourceLike(n int) [][]byte {
	header := []byte("// Copyright 2026 The Snap Authors. All rights reserved.\n// Use of this source code is governed by a BSD-style\n// licence that can be found in the LICENCE file.\n\npackage example\n\nimport (\n\t\"context\"\n\t\"fmt\"\n\t\"io\"\n)\n\n")
	files := make([][]byte, n)
	for i := range files {
		body := fmt.Appendf(nil, "func f%d(ctx context.Context, w io.Writer) error {\n\t_, err := fmt.Fprintf(w, %q)\n\treturn err\n}\n", i, letters(uint64(i), 1500))
		files[i] = append(append([]byte(nil), header...), body...)
	}
	return files
}

// TestBuildDictionary: the dictionary holds what the samples share, not
// what each has alone; it respects the size; it depends only on the
// samples; and nothing recurring gives no dictionary.
func TestBuildDictionary(t *testing.T) {
	files := sourceLike(64)
	d := BuildDictionary(files, 4<<10)
	if len(d) == 0 || len(d) > 4<<10 {
		t.Fatalf("dictionary of %d bytes, want 1..4096", len(d))
	}
	if !bytes.Contains(d, []byte("governed by a BSD-style")) {
		t.Errorf("the shared header is not in the dictionary:\n%q", d)
	}
	if bytes.Contains(d, letters(5, 1500)[200:264]) {
		t.Error("the dictionary holds the body of one file")
	}
	if again := BuildDictionary(files, 4<<10); !bytes.Equal(again, d) {
		t.Error("two dictionaries built from the same samples differ")
	}
	if small := BuildDictionary(files, 1000); len(small) > 1000 {
		t.Errorf("dictionary of %d bytes, want at most 1000", len(small))
	}
	if d := BuildDictionary(nil, 4<<10); d != nil {
		t.Errorf("no samples gave a dictionary of %d bytes", len(d))
	}
	if d := BuildDictionary([][]byte{{1, 2, 3}, {}}, 4<<10); d != nil {
		t.Errorf("samples shorter than a segment gave a dictionary of %d bytes", len(d))
	}
}

// TestDictionaryCompression: a small file compressed against the
// dictionary is smaller than alone by more than the base costs, and opens,
// as a delta, with the dictionary's plaintext.
func TestDictionaryCompression(t *testing.T) {
	r := testRepository(t, &memBackend{})
	files := sourceLike(300)
	plain := BuildDictionary(files[:256], 64<<10)
	dictID := Hash(plain)
	d, err := r.NewDictionary(dictID, plain, CompressionFastest)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.NewDictionary(dictID, plain, CompressionOff); err == nil {
		t.Error("a dictionary without compression was accepted")
	}
	var alone, withDict int
	for _, f := range files[256:] {
		a, _, _ := r.CompressBlob(f, CompressionFastest, nil)
		payload, ok, _ := r.CompressWithDictionary(d, f, nil)
		if !ok {
			t.Fatal("a file did not compress against the dictionary")
		}
		alone += len(a)
		withDict += len(payload) + OneBaseOverhead

		p := &PackBuilder{}
		id := Hash(f)
		r.AddBlob(p, DataBlob, id, payload, true, len(f), []ID{dictID})
		e := p.ents[0]
		got, err := r.OpenDelta(ID{}, e, p.buf[e.Offset:e.Offset+e.Length], plain, nil)
		if err != nil || !bytes.Equal(got, f) {
			t.Fatalf("delta opened as %d bytes (%v), want the file's %d", len(got), err, len(f))
		}
	}
	t.Logf("44 files: %d bytes alone, %d against the dictionary (with the base's %d bytes each)", alone, withDict, OneBaseOverhead)
	if withDict >= alone*9/10 {
		t.Errorf("against the dictionary %d bytes, alone %d: want at least 10 %% less", withDict, alone)
	}
	if _, ok, _ := r.CompressWithDictionary(d, []byte("tiny"), nil); ok {
		t.Error("a 4-byte blob was compressed")
	}
	if !r.Worth(d, files[256:]) {
		t.Error("the dictionary of files sharing a header was judged not worth it")
	}
}

// TestDictionaryNotWorth: samples with nothing in common (random bytes, as
// compressed or encrypted files are) give at most a dictionary of chance
// pieces, which Worth rejects.
func TestDictionaryNotWorth(t *testing.T) {
	r := testRepository(t, &memBackend{})
	var random [][]byte
	for i := range 320 {
		random = append(random, randomBytes(uint64(i), 4096))
	}
	plain := BuildDictionary(random[:256], 64<<10)
	if plain == nil {
		return // nothing recurred: no dictionary at all
	}
	d, err := r.NewDictionary(Hash(plain), plain, CompressionFastest)
	if err != nil {
		t.Fatal(err)
	}
	if r.Worth(d, random[256:]) {
		t.Errorf("a %d-byte dictionary of random samples was judged worth it", len(plain))
	}
}
