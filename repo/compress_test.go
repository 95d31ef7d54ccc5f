package repo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os/exec"
	"runtime"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
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
		if got := randomThroughout(randomRuns(c.data), len(c.data)); got != c.want {
			t.Errorf("%s: random throughout = %v, want %v", c.name, got, c.want)
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

// concat joins byte slices.
func concat(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

func TestRandomRuns(t *testing.T) {
	const K = 1 << 10
	text := func(n int) []byte { return letters(uint64(n), n) }
	rnd := func(n int) []byte { return randomBytes(uint64(n%251), n) }
	mid := rnd(1 << 20)
	copy(mid[330*K:], text(30*K)) // between the samples at 320 and 384 KiB: not seen
	cases := []struct {
		name string
		data []byte
		want [][2]int
	}{
		{"text", text(1 << 20), nil},
		{"random", rnd(1 << 20), [][2]int{{0, 1 << 20}}},
		{"too short to sample", rnd(randomMinLen - 1), nil},
		// The stretch from the last random sample (704 KiB) to the first
		// text one (768 KiB) is compressed with the text.
		{"text, random, text", concat(text(256*K), rnd(512*K), text(256*K)), [][2]int{{256 * K, 704 * K}}},
		{"random, text", concat(rnd(512*K), text(512*K)), [][2]int{{0, 448 * K}}},
		{"random at the end", concat(text(896*K), rnd(128*K)), [][2]int{{896 * K, 1024 * K}}},
		{"random at the end, one stretch", concat(text(960*K), rnd(64*K)), nil},
		{"two random stretches", concat(rnd(256*K), text(256*K), rnd(300*K)), [][2]int{{0, 192 * K}, {512 * K, 812 * K}}},
		{"30 KiB of text between samples", mid, [][2]int{{0, 1 << 20}}},
	}
	for _, c := range cases {
		got := randomRuns(c.data)
		if fmt.Sprint(got) != fmt.Sprint(c.want) {
			t.Errorf("%s: randomRuns = %v, want %v", c.name, got, c.want)
		}
	}
}

// TestCompressMixed checks that a blob of text and random data is written
// as several frames (the random stretches in raw blocks), smaller than
// its input, and that both snap's decoder and the reference zstd decode it.
func TestCompressMixed(t *testing.T) {
	c, err := newCompressor()
	if err != nil {
		t.Fatal(err)
	}
	zstdBin, err := exec.LookPath("zstd")
	if err != nil {
		t.Fatal("the reference zstd is needed to check the frames snap writes: apt-get install zstd")
	}
	const K = 1 << 10
	blobs := [][]byte{
		concat(letters(1, 300*K), randomBytes(2, 700*K), letters(3, 200*K+17)),
		concat(randomBytes(4, 1<<20), letters(5, 1<<20)),
		concat(letters(6, 100*K), randomBytes(7, 5<<20+3)), // raw blocks of 128 KiB and a short last one
	}
	for _, level := range []Compression{CompressionFastest, CompressionDefault, CompressionBetter} {
		for i, blob := range blobs {
			runs := randomRuns(blob)
			if len(runs) == 0 {
				t.Fatalf("blob %d: no random runs", i)
			}
			out, ok := c.compress([]byte("prefix"), blob, level)
			if !ok || len(out)-6 >= len(blob) || string(out[:6]) != "prefix" {
				t.Fatalf("%v, blob %d: compressed to %d of %d bytes (ok %v)", level, i, len(out)-6, len(blob), ok)
			}
			out = out[6:]
			back, err := c.decompress(nil, out, len(blob))
			if err != nil || !bytes.Equal(back, blob) {
				t.Fatalf("%v, blob %d: round trip: %v", level, i, err)
			}
			cmd := exec.Command(zstdBin, "-d", "-c")
			cmd.Stdin = bytes.NewReader(out)
			ref, err := cmd.Output()
			if err != nil || !bytes.Equal(ref, blob) {
				t.Fatalf("%v, blob %d: the reference zstd: %v (%d bytes, want %d)", level, i, err, len(ref), len(blob))
			}
		}
	}
}

// FuzzCompressMixed builds a blob from a recipe (stretches of random bytes,
// text, zeros and ramps, of lengths the input picks) and checks that every
// level's compression decodes to it: the frames of raw blocks written for
// random stretches (appendRawFrame) must sit exactly between the encoder's.
func FuzzCompressMixed(f *testing.F) {
	f.Add([]byte{0, 40, 1, 20, 0, 70})
	f.Add([]byte{1, 255, 0, 3, 2, 9, 0, 200, 3, 1})
	f.Add([]byte{0, 130, 1, 1, 0, 2, 1, 64})
	c, err := newCompressor()
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, recipe []byte) {
		var blob []byte
		for i := 0; i+1 < len(recipe) && len(blob) < 4<<20; i += 2 {
			n := int(recipe[i+1]) << 12 // up to 1 MiB per stretch, in 4 KiB steps
			switch recipe[i] % 4 {
			case 0:
				blob = append(blob, randomBytes(uint64(i), n)...)
			case 1:
				blob = append(blob, letters(uint64(i), n)...)
			case 2:
				blob = append(blob, make([]byte, n)...)
			case 3:
				blob = append(blob, rampBytes(n+int(recipe[i+1]))...)
			}
		}
		for _, level := range []Compression{CompressionFastest, CompressionDefault} {
			out, ok := c.compress(nil, blob, level)
			if !ok {
				continue
			}
			if len(out) >= len(blob) {
				t.Fatalf("%v: compressed %d bytes to %d", level, len(blob), len(out))
			}
			back, err := c.decompress(nil, out, len(blob))
			if err != nil || !bytes.Equal(back, blob) {
				t.Fatalf("%v: round trip of %d bytes (runs %v): %v", level, len(blob), randomRuns(blob), err)
			}
		}
	})
}

// FuzzDecompress feeds hostile compressed blobs, with the length their
// entry states, to both decoders: an error or exactly that many bytes,
// never a panic, and never more decoded than stated (decodeExactly), into
// a fresh buffer or a reused one.
func FuzzDecompress(f *testing.F) {
	c, err := newCompressor()
	if err != nil {
		f.Fatal(err)
	}
	enc, err := zstd.NewWriter(nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(enc.EncodeAll([]byte("hello, hello, hello"), nil), uint16(19), false)
	f.Add(enc.EncodeAll(make([]byte, 1<<20), nil), uint16(100), true)
	f.Add(appendRawFrame(nil, []byte("raw stretch")), uint16(11), false)
	f.Fuzz(func(t *testing.T, src []byte, rawLen uint16, delta bool) {
		for _, dst := range [][]byte{nil, make([]byte, 3, 1<<16)} {
			var out []byte
			var err error
			if delta {
				out, err = c.decompressDelta(dst, src, []byte("a dictionary of sorts"), int(rawLen))
			} else {
				out, err = c.decompress(dst, src, int(rawLen))
			}
			if err == nil && len(out)-len(dst) != int(rawLen) {
				t.Fatalf("decoded %d bytes, stated %d", len(out)-len(dst), rawLen)
			}
		}
	})
}

// TestLargeObject checks that an unpacked object larger than any blob (an
// index segment of millions of blobs) opens again, up to MaxObjectSize,
// and that a larger one is refused before it is stored.
func TestLargeObject(t *testing.T) {
	r := testRepository(t, nil)
	// Records as a segment's: a few fixed bytes and a 32-byte random ID.
	ids := randomBytes(11, (MaxBlobSize+4<<20)/53*32)
	var plain []byte
	for i := 0; i+32 <= len(ids); i += 32 {
		plain = append(plain, "21 bytes of a record."...)
		plain = append(plain, ids[i:i+32]...)
	}
	sealed := r.sealObject(plain)
	out, err := r.OpenObject(Handle{Type: IndexFile, Name: Hash(sealed).String()}, sealed)
	if err != nil || !bytes.Equal(out, plain) {
		t.Fatalf("object of %d bytes (stored in %d): %v", len(plain), len(sealed), err)
	}
	if _, err := r.SaveObject(context.Background(), IndexFile, make([]byte, MaxObjectSize+1)); err == nil || !strings.Contains(err.Error(), "object limit") {
		t.Fatalf("an object over MaxObjectSize: %v, want an error", err)
	}
}

// TestObjectBombs: an object that inflates past the limit of its type (a
// lock or snapshot document of 100 KB that decompresses to 64 MiB) is
// refused at that limit, whether its zstd frame states its size or not;
// an index segment, whose limit is larger, is refused for inflating more
// than any real one (indexRatio).
func TestObjectBombs(t *testing.T) {
	r := testRepository(t, nil)
	plain := bytes.Repeat([]byte(" "), 64<<20)
	withSize, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer withSize.Close()
	var stream bytes.Buffer // a streamed frame does not state its size
	sw, err := zstd.NewWriter(&stream)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sw.Write(plain); err != nil {
		t.Fatal(err)
	}
	if err := sw.Close(); err != nil {
		t.Fatal(err)
	}
	frames := map[string][]byte{"frame with its size": withSize.EncodeAll(plain, nil), "streamed frame": stream.Bytes()}
	for what, frame := range frames {
		sealed := r.sealer.seal(nil, append([]byte{objectZstd}, frame...))
		for _, ft := range []FileType{LockFile, SnapshotFile, ConfigFile} {
			_, err := r.OpenObject(Handle{Type: ft, Name: Hash(sealed).String()}, sealed)
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "limit") {
				t.Errorf("%s %s inflating to 64 MiB: %v, want a corruption error naming the limit", what, ft, err)
			}
		}
		if _, err := r.OpenObject(Handle{Type: IndexFile, Name: Hash(sealed).String()}, sealed); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "times its") {
			t.Errorf("%s index segment inflating to 64 MiB: %v, want a corruption error naming the ratio", what, err)
		}
	}
	raw := r.sealer.seal(nil, append([]byte{objectRaw}, make([]byte, 2<<20)...))
	if _, err := r.OpenObject(Handle{Type: LockFile, Name: Hash(raw).String()}, raw); !errors.Is(err, ErrCorrupt) {
		t.Errorf("a raw lock of 2 MiB: %v, want a corruption error", err)
	}
}

// TestBlobBomb: a blob whose frames expand far past its stated length is
// refused once the decoder passes that length, not after the whole
// expansion (a hostile repository's 8 KB that said 16 KiB and expanded to
// 255 MiB took 256 MiB per decode), for a plain blob and a delta; the
// buffer given keeps its capacity for the next blob.
func TestBlobBomb(t *testing.T) {
	c, err := newCompressor()
	if err != nil {
		t.Fatal(err)
	}
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest))
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	bomb := enc.EncodeAll(make([]byte, 128<<20), nil)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	if _, err := c.decompress(nil, bomb, 16<<10); err == nil || !strings.Contains(err.Error(), "more than the 16384 bytes") {
		t.Errorf("a bomb stated as 16 KiB: %v", err)
	}
	if _, err := c.decompressDelta(nil, bomb, []byte("dictionary"), 16<<10); err == nil || !strings.Contains(err.Error(), "more than the 16384 bytes") {
		t.Errorf("a delta bomb stated as 16 KiB: %v", err)
	}
	runtime.ReadMemStats(&after)
	if grown := after.TotalAlloc - before.TotalAlloc; grown > 32<<20 {
		t.Errorf("refusing the bombs allocated %d MiB", grown>>20)
	}
	// An honest blob into a reused buffer: the bytes, and the capacity.
	plain := letters(3, 100<<10)
	buf := make([]byte, 0, 1<<20)
	out, err := c.decompress(buf, enc.EncodeAll(plain, nil), len(plain))
	if err != nil || !bytes.Equal(out, plain) || cap(out) != 1<<20 {
		t.Errorf("decompress into a reused buffer: %v, equal %v, cap %d", err, bytes.Equal(out, plain), cap(out))
	}
}

// TestSealObjectOnce: the same document sealed twice as SaveObjectOnce
// seals it is the same bytes (one object, one ID), and opens like any
// other; another document gets another nonce, and sealObject a random one.
func TestSealObjectOnce(t *testing.T) {
	r := testRepository(t, nil)
	doc := []byte(`{"time":"2026-12-04T21:00:00Z","host":"h","tree":"x"}`)
	a, b := r.sealObjectOnce(doc), r.sealObjectOnce(doc)
	if !bytes.Equal(a, b) {
		t.Fatal("the same document sealed twice differs")
	}
	if out, err := r.OpenObject(Handle{Type: SnapshotFile, Name: Hash(a).String()}, a); err != nil || !bytes.Equal(out, doc) {
		t.Fatalf("open: %q, %v", out, err)
	}
	other := r.sealObjectOnce(append(doc[:len(doc)-1:len(doc)-1], ' ', '}'))
	if bytes.Equal(a[:nonceSize], other[:nonceSize]) {
		t.Error("two documents share a nonce")
	}
	if random := r.sealObject(doc); bytes.Equal(random[:nonceSize], a[:nonceSize]) {
		t.Error("sealObject took the derived nonce")
	}
}
