package repo

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

func randomBytes(seed uint64, n int) []byte {
	b := make([]byte, n)
	rng := rand.NewChaCha8([32]byte{byte(seed)})
	_, _ = rng.Read(b)
	return b
}

// letters is text with no repeats longer than a few bytes: random lower
// case letters and spaces, which zstd's fastest level (without literal
// compression in match-less blocks) would store raw.
func letters(seed uint64, n int) []byte {
	rng := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, n)
	for i := range b {
		if rng.IntN(6) == 0 {
			b[i] = ' '
		} else {
			b[i] = byte('a' + rng.IntN(26))
		}
	}
	return b
}

// rampBytes is n bytes of 0, 1, ..., 255 over and over: every byte value
// equally often, and nothing but repeats.
func rampBytes(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i)
	}
	return b
}

func TestLooksRandom(t *testing.T) {
	ramp := rampBytes(1 << 20)
	counter := make([]byte, 1<<20)
	for i := 0; i+4 <= len(counter); i += 4 {
		counter[i], counter[i+1], counter[i+2], counter[i+3] = byte(i>>2), byte(i>>10), byte(i>>18), 0x5a
	}
	mixed := randomBytes(2, 1<<20)
	copy(mixed[300_000:], letters(3, 66<<10)) // longer than the stride: a sample lands in it
	tail := randomBytes(9, 1<<20+60<<10)
	copy(tail[len(tail)-40<<10:], letters(10, 40<<10)) // after the last strided sample (at 1 MiB)
	cases := []struct {
		name string
		data []byte
		want bool
	}{
		{"random 1 MiB", randomBytes(1, 1<<20), true},
		{"random 8 MiB", randomBytes(4, 8<<20), true},
		{"random, too short to sample", randomBytes(5, randomMinLen-1), false},
		{"random with 66 KiB of text inside", mixed, false},
		{"random with text in its last 40 KiB", tail, false},
		{"letters", letters(6, 1<<20), false},
		{"zeros", make([]byte, 1<<20), false},
		{"ramp of all byte values", ramp, false},
		{"counter", counter, false},
	}
	for _, c := range cases {
		if got := looksRandom(c.data); got != c.want {
			t.Errorf("%s: looksRandom = %v, want %v", c.name, got, c.want)
		}
	}
}

// TestCompressLiterals checks that a blob of text without long repeats is
// compressed (its literals Huffman coded) at every level, that random data
// is stored raw, and that what is compressed decompresses to the input.
func TestCompressLiterals(t *testing.T) {
	c, err := newCompressor()
	if err != nil {
		t.Fatal(err)
	}
	text := letters(7, 1<<20)
	for _, level := range []Compression{CompressionFastest, CompressionDefault, CompressionBetter} {
		out, ok := c.compress(nil, text, level)
		if !ok || len(out) > len(text)*3/4 {
			t.Errorf("%v: letters compressed to %d of %d bytes (ok %v), want under 3/4", level, len(out), len(text), ok)
			continue
		}
		back, err := c.decompress(nil, out, len(text))
		if err != nil || !bytes.Equal(back, text) {
			t.Errorf("%v: round trip: %v", level, err)
		}
		if _, ok := c.compress(nil, randomBytes(8, 1<<20), level); ok {
			t.Errorf("%v: random data compressed", level)
		}
	}
	ramp := rampBytes(1 << 20)
	if out, ok := c.compress(nil, ramp, CompressionFastest); !ok || len(out) > 64<<10 {
		t.Errorf("a repeated ramp compressed to %d bytes (ok %v), want a few KiB", len(out), ok)
	}
}
