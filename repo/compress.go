package repo

import (
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// Compression is the zstd level used for new blobs.
type Compression int

// Compression levels, as named by --compression.
const (
	CompressionOff Compression = iota
	CompressionFastest
	CompressionDefault
	CompressionBetter
)

// ParseCompression maps a --compression value to a level.
func ParseCompression(s string) (Compression, error) {
	switch s {
	case "off":
		return CompressionOff, nil
	case "fastest", "":
		return CompressionFastest, nil
	case "default":
		return CompressionDefault, nil
	case "better":
		return CompressionBetter, nil
	}
	return 0, fmt.Errorf("unknown compression %q: use off, fastest, default or better", s)
}

func (c Compression) String() string {
	return CompressionNames()[c]
}

// CompressionNames lists the --compression values, in level order.
func CompressionNames() []string { return []string{"off", "fastest", "default", "better"} }

// zstdLevel is zstd's encoder level for c (off has none: callers do not
// compress at all).
func (c Compression) zstdLevel() zstd.EncoderLevel {
	switch c {
	case CompressionDefault:
		return zstd.SpeedDefault
	case CompressionBetter:
		return zstd.SpeedBetterCompression
	}
	return zstd.SpeedFastest
}

// encoderWindow is how far back the encoders look for matches. It sets
// their memory (each encoder state keeps twice the window), and blobs are
// chunks of a few MiB: a window of 2 MiB compresses them within 0.05 % of
// the default 4 or 8 MiB (measured on dataset 2 of make bench).
const encoderWindow = 2 << 20

// compressor holds one zstd encoder per level and one decoder. EncodeAll
// and DecodeAll are safe for concurrent use; each runs as many calls at
// once as it has encoder states (WithEncoderConcurrency), and makes the
// others wait, so every level gets one state per CPU.
type compressor struct {
	enc [4]*zstd.Encoder
	dec *zstd.Decoder // blobs: at most MaxBlobSize
	// objDec opens unpacked objects, which may be larger than any blob:
	// one decoder per size limit (maxObjectSize, and the powers of two an
	// index segment's bound rounds to: objectLimit), as a decoder's bound
	// is an option it is made with; blobs keep the tighter bound of their
	// own. Made on first use, under objMu.
	objMu  sync.Mutex
	objDec map[int]*zstd.Decoder

	// Deltas are compressed and opened with a dictionary that changes with
	// every blob: zstd takes it as an option of the encoder or decoder, so
	// each call gets one of its own from these free lists.
	deltaEnc [4]chan *zstd.Encoder
	deltaDec chan *zstd.Decoder
}

func newCompressor() (*compressor, error) {
	c := &compressor{}
	for _, l := range []Compression{CompressionFastest, CompressionDefault, CompressionBetter} {
		enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(l.zstdLevel()), zstd.WithEncoderConcurrency(runtime.GOMAXPROCS(0)), zstd.WithWindowSize(encoderWindow),
			zstd.WithZeroFrames(true), zstd.WithEncoderCRC(false), zstd.WithAllLitEntropyCompression(true))
		if err != nil {
			return nil, err
		}
		c.enc[l] = enc
	}
	var err error
	// Blobs decode into a buffer of their stated length (decodeExactly).
	if c.dec, err = newDecoder(MaxBlobSize, zstd.WithDecodeAllCapLimit(true)); err != nil {
		return nil, err
	}
	c.objDec = map[int]*zstd.Decoder{}
	for l := range c.deltaEnc {
		c.deltaEnc[l] = make(chan *zstd.Encoder, runtime.GOMAXPROCS(0))
	}
	c.deltaDec = make(chan *zstd.Decoder, runtime.GOMAXPROCS(0))
	return c, nil
}

// newDecoder makes a decoder that refuses to produce more than maxSize
// bytes.
func newDecoder(maxSize uint64, more ...zstd.DOption) (*zstd.Decoder, error) {
	return zstd.NewReader(nil, append([]zstd.DOption{zstd.WithDecoderConcurrency(0), zstd.WithDecoderMaxMemory(maxSize),
		zstd.WithDecoderMaxWindow(MaxBlobSize)}, more...)...)
}

// objectDecoder returns the decoder for objects of at most limit bytes.
func (c *compressor) objectDecoder(limit int) (*zstd.Decoder, error) {
	c.objMu.Lock()
	defer c.objMu.Unlock()
	if d := c.objDec[limit]; d != nil {
		return d, nil
	}
	d, err := newDecoder(uint64(limit))
	if err != nil {
		return nil, err
	}
	c.objDec[limit] = d
	return d, nil
}

// deltaWindow is how far back a delta's matches reach. A chunk and its
// bases hold the same bytes in the same order, so a match lies about one
// dictionary length back: at most 2 MiB as the archiver chooses bases.
// (Each encoder keeps twice the window.)
const deltaWindow = 2 << 20

// compressDelta appends the compression of src against dict (a raw content
// dictionary: the plaintexts of the base blobs) to dst, or returns
// ok=false when that is not smaller than src. Deltas are compressed at
// least at the default level: the fastest encoder keeps one candidate per
// hash, and on a table dump that is the previous row of the blob rather
// than the same row in the dictionary (measured on dataset 3 of make
// bench: the changed chunks take 610 KB at fastest, 198 KB at default).
func (c *compressor) compressDelta(dst, src, dict []byte, level Compression) ([]byte, bool) {
	if level == CompressionOff || len(src) < 64 || len(dict) == 0 {
		return dst, false
	}
	level = max(level, CompressionDefault)
	var enc *zstd.Encoder
	select {
	case enc = <-c.deltaEnc[level]:
	default:
		var err error
		enc, err = zstd.NewWriter(nil, zstd.WithEncoderLevel(level.zstdLevel()), zstd.WithEncoderConcurrency(1), zstd.WithWindowSize(deltaWindow),
			zstd.WithZeroFrames(true), zstd.WithEncoderCRC(false), zstd.WithEncoderDictRaw(0, []byte{0}))
		if err != nil {
			return dst, false
		}
	}
	// A new dictionary (a new slice, even with the same bytes) makes the
	// encoder index it afresh; dictionary ID 0 is not written to the frame.
	// The encoder keeps a reference to it until its next use (and to its
	// writer, whose buffer is dropped below before the encoder is pooled).
	//
	// The delta is written as a stream (Write, Close) rather than with
	// EncodeAll: the reset indexes the dictionary into the stream's
	// encoder state, and EncodeAll would index it again into a state of
	// its own, which took 40 % of the CPU of dataset 3's changed dump in
	// make bench. Both write an ordinary frame (the stream's without the
	// content size when src is over one block, 128 KiB; the blob entry
	// holds the size).
	w := &appendWriter{b: dst}
	err := enc.ResetWithOptions(w, zstd.WithEncoderDictRaw(0, dict))
	if err == nil {
		_, err = enc.Write(src)
	}
	if err == nil {
		err = enc.Close()
	}
	if err != nil {
		return dst, false // the encoder is dropped, not reused
	}
	out := w.b
	w.b = nil // the pooled encoder keeps w: not the caller's buffer
	select {
	case c.deltaEnc[level] <- enc:
	default:
	}
	if len(out)-len(dst) >= len(src) {
		return dst, false
	}
	return out, true
}

// appendWriter appends what is written to it to b.
type appendWriter struct{ b []byte }

func (w *appendWriter) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}

// decompressDelta appends the decompression of src against dict to dst
// and checks that it is exactly rawLen bytes.
func (c *compressor) decompressDelta(dst, src, dict []byte, rawLen int) ([]byte, error) {
	if rawLen > MaxBlobSize {
		return nil, fmt.Errorf("raw length %d exceeds %d", rawLen, MaxBlobSize)
	}
	var dec *zstd.Decoder
	select {
	case dec = <-c.deltaDec:
	default:
		var err error
		dec, err = zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(MaxBlobSize), zstd.WithDecoderMaxWindow(MaxBlobSize),
			zstd.WithDecodeAllCapLimit(true))
		if err != nil {
			return nil, err
		}
	}
	defer func() {
		_ = dec.ResetWithOptions(nil, zstd.WithDecoderDictRaw(0, nil)) // drop the reference to dict
		select {
		case c.deltaDec <- dec:
		default:
		}
	}()
	// Reset with a nil reader prepares the decoder for DecodeAll.
	_ = dec.ResetWithOptions(nil, zstd.WithDecoderDictRaw(0, dict))
	return decodeExactly(dec, dst, src, rawLen)
}

// decodeExactly appends the decompression of src by dec (made with
// WithDecodeAllCapLimit) to dst and checks that it is exactly rawLen
// bytes. The decoder may write no more than rawLen+1 bytes: a blob whose
// frames expand past its stated length (a zstd bomb in a hostile
// repository: 8 KB that said 16 KiB and expanded to 255 MiB, once per
// worker and per reference) is refused there, not after the whole
// expansion. The result keeps dst's capacity, for reuse.
func decodeExactly(dec *zstd.Decoder, dst, src []byte, rawLen int) ([]byte, error) {
	if cap(dst)-len(dst) < rawLen+1 {
		nd := make([]byte, len(dst), len(dst)+rawLen+1)
		copy(nd, dst)
		dst = nd
	}
	out, err := dec.DecodeAll(src, dst[:len(dst):len(dst)+rawLen+1])
	if errors.Is(err, zstd.ErrDecoderSizeExceeded) {
		return nil, fmt.Errorf("decompresses to more than the %d bytes it should", rawLen)
	}
	if err != nil {
		return nil, fmt.Errorf("zstd: %w", err)
	}
	if len(out)-len(dst) != rawLen {
		return nil, fmt.Errorf("decompressed to %d bytes, want %d", len(out)-len(dst), rawLen)
	}
	if len(out) > 0 && &out[:1][0] != &dst[:1][0] {
		return out, nil // not written in place (the cap limit prevents it)
	}
	return dst[:len(out)], nil
}

// compress appends the compressed form of src to dst, or returns ok=false
// when compression is off or does not make src smaller.
//
// The encoders compress literals with Huffman codes even in blocks where
// they find (almost) no matches (WithAllLitEntropyCompression; zstd's
// fastest and default levels store such blocks raw). Text with few long
// repeats (words drawn from a vocabulary, say) is such a block: 4.5 % less
// for the text half of make bench's dataset 2, 1.2 % less for the Go
// source tree, at the same speed. On random data that costs a Huffman
// attempt per block (1.75 GB/s instead of a copy), so stretches of a large
// blob that look random (randomRuns) are not given to zstd: a blob that
// looks random throughout is stored as it is, and one that is partly
// random is written as several frames, the random stretches as frames of
// raw blocks (appendRawFrame). A decoder decodes concatenated frames in
// turn (RFC 8878, section 3), so nothing changes for the reader.
func (c *compressor) compress(dst, src []byte, level Compression) ([]byte, bool) {
	if level == CompressionOff || len(src) < 64 {
		return dst, false
	}
	runs := randomRuns(src)
	if randomThroughout(runs, len(src)) {
		return dst, false
	}
	enc := c.enc[level]
	out, prev := dst, 0
	for _, r := range runs {
		if r[0] > prev {
			out = enc.EncodeAll(src[prev:r[0]], out)
		}
		out = appendRawFrame(out, src[r[0]:r[1]])
		prev = r[1]
	}
	if prev < len(src) {
		out = enc.EncodeAll(src[prev:], out)
	}
	if len(out)-len(dst) >= len(src) {
		return dst, false
	}
	return out, true
}

// appendRawFrame appends a zstd frame holding src in raw blocks (RFC 8878:
// a window of 128 KiB, which raw blocks do not use, a 4-byte content
// size, no checksum, blocks of at most 128 KiB). src must not be empty.
// The window is set rather than the frame marked single-segment, whose
// window is its whole content: the reference decoder refuses windows over
// 128 MiB unless told otherwise, and an object may hold that much random
// data.
func appendRawFrame(dst, src []byte) []byte {
	const (
		magic        = 0xFD2FB528
		descriptor   = 2 << 6         // Frame_Content_Size_Flag 2: 4 bytes; a Window_Descriptor follows
		window       = (17 - 10) << 3 // Window_Descriptor: 2^(10+7) = 128 KiB, mantissa 0
		maxBlockSize = 128 << 10
	)
	dst = binary.LittleEndian.AppendUint32(dst, magic)
	dst = append(dst, descriptor, window)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(src)))
	for len(src) > 0 {
		n := min(len(src), maxBlockSize)
		header := uint32(n) << 3 // Block_Type 0: Raw_Block
		if n == len(src) {
			header |= 1 // Last_Block
		}
		dst = append(dst, byte(header), byte(header>>8), byte(header>>16))
		dst = append(dst, src[:n]...)
		src = src[n:]
	}
	return dst
}

// decompress appends the decompression of src to dst and checks that it is
// exactly rawLen bytes.
func (c *compressor) decompress(dst, src []byte, rawLen int) ([]byte, error) {
	if rawLen > MaxBlobSize {
		return nil, fmt.Errorf("raw length %d exceeds %d", rawLen, MaxBlobSize)
	}
	return decodeExactly(c.dec, dst, src, rawLen)
}

// Random-looking stretches: randomRuns samples randomSample bytes every
// randomStride bytes of a blob of at least randomMinLen, and keeps runs of
// at least randomMinRun bytes.
const (
	randomStride = 64 << 10
	randomSample = 1 << 10
	randomMinLen = 4 * randomStride
	randomMinRun = 2 * randomStride
)

// randomRuns returns the stretches of src, as [start, end) pairs in
// ascending order, that look like random bytes (encrypted or already
// compressed data), so that compressing them is not worth trying. Samples
// of 1 KiB are taken every 64 KiB and one at the end; the stretch between
// two samples looks random when both samples pass two tests
// (sampleLooksRandom), and runs of such stretches count from 128 KiB. A
// blob that looks random throughout gives one run, [0, len(src)).
//
// A stretch of text of 65 KiB or more always holds a sample, so it is
// compressed, with its neighbours up to the samples around it. What this
// gives up: a shorter stretch of text between two random samples is
// stored raw, and data that passes both tests in every sample but repeats
// at a distance inside one blob (the same random block over and over) is
// stored raw where zstd would have found the repeats; chunk-level
// deduplication still finds repeats as long as a chunk.
func randomRuns(src []byte) [][2]int {
	if len(src) < randomMinLen {
		return nil
	}
	var runs [][2]int
	start := -1 // the start of the current run of random stretches, or -1
	prevOff, prevRandom := 0, false
	flush := func(end int) {
		if start >= 0 && end-start >= randomMinRun {
			runs = append(runs, [2]int{start, end})
		}
		start = -1
	}
	for off := 0; ; off += randomStride {
		last := off+randomSample > len(src)-randomSample
		if last {
			off = len(src) - randomSample
		}
		random := sampleLooksRandom(src[off : off+randomSample])
		if off > 0 {
			// The stretch [prevOff, off) is random when both ends are.
			if prevRandom && random {
				if start < 0 {
					start = prevOff
				}
			} else {
				flush(prevOff)
			}
		}
		if last {
			if start >= 0 {
				flush(len(src))
			}
			return runs
		}
		prevOff, prevRandom = off, random
	}
}

// randomThroughout reports whether runs, the random runs of a blob of n
// bytes, cover all of it: the blob is then stored as it is.
func randomThroughout(runs [][2]int, n int) bool {
	return len(runs) == 1 && runs[0] == [2]int{0, n}
}

// sampleLooksRandom reports whether a sample of bytes looks random: it
// must pass two tests.
//
// Bytes spread nearly evenly: the chance that two bytes of the sample at
// different places are equal, estimated from its byte counts c as
// sum c(c-1) / n(n-1), is 1/256 for uniform bytes; a sample passes below
// 1.25/256 (a collision entropy above 7.68 bits per byte, where Huffman
// codes could save at most 4 %). For 1 KiB that is a sum below 5,115
// against 4,092 expected of random bytes (standard deviation about 100);
// text gives some 50,000, machine code and tables of numbers far more.
//
// Byte pairs that do not repeat: 1,023 random pairs out of 65,536 repeat
// about 8 times; a sample passes below 64. This catches what is even but
// regular, such as a counter or a repeated ramp of all 256 byte values,
// which zstd shrinks to almost nothing.
func sampleLooksRandom(sample []byte) bool {
	n := len(sample)
	var count [256]int
	for _, b := range sample {
		count[b]++
	}
	pairs := 0 // equal pairs of bytes at different places: sum c(c-1)
	for _, c := range count {
		pairs += c * (c - 1)
	}
	if 4*256*pairs >= 5*n*(n-1) {
		return false
	}
	var seen [65536 / 64]uint64
	repeats := 0
	for i := 1; i < n; i++ {
		pair := uint16(sample[i-1])<<8 | uint16(sample[i])
		bit := uint64(1) << (pair % 64)
		if seen[pair/64]&bit != 0 {
			repeats++
		}
		seen[pair/64] |= bit
	}
	return repeats < 64
}
