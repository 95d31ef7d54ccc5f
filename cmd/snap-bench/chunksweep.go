package main

import (
	"fmt"
	"io"
	"os"

	"github.com/klauspost/compress/zstd"

	"github.com/snap-backup/snap/chunk"
)

// sweepRow is what one set of chunker parameters makes of the second dump.
type sweepRow struct {
	Label     string
	Params    chunk.Params
	Chunks    int     // chunks of the second dump
	AvgSize   float64 // their average size
	NewBytes  int64   // bytes of the second dump in chunks the first lacks
	NewChunks int
	NewStored int64 // those chunks compressed (zstd fastest) and sealed
	DumpBytes int64
}

// benchPolynomial is a fixed irreducible polynomial, so that the sweep is
// the same on every run.
const benchPolynomial = 0x3DA3358B4DC173

// chunkSweep chunks both dumps with each parameter set and measures how
// much of the second dump is new: what a repository would add for it.
func chunkSweep(dump1, dump2 string, sets []sweepRow) ([]sweepRow, error) {
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1))
	if err != nil {
		return nil, err
	}
	defer enc.Close()
	var out []sweepRow
	for _, row := range sets {
		p := row.Params
		if p.Polynomial == 0 {
			p.Polynomial = benchPolynomial
		}
		if err := p.Validate(); err != nil {
			return nil, fmt.Errorf("%s: %w", row.Label, err)
		}
		h := chunk.NewHasher([32]byte{})
		seen := map[[32]byte]bool{}
		if err := chunkFile(dump1, p, func(b []byte) { seen[h.Sum(b)] = true }); err != nil {
			return nil, err
		}
		var scratch []byte
		err := chunkFile(dump2, p, func(b []byte) {
			row.Chunks++
			row.DumpBytes += int64(len(b))
			if id := h.Sum(b); !seen[id] {
				seen[id] = true
				row.NewChunks++
				row.NewBytes += int64(len(b))
				scratch = enc.EncodeAll(b, scratch[:0])
				row.NewStored += int64(min(len(scratch), len(b))) + 28 + 46 // AEAD overhead + pack trailer entry
			}
		})
		if err != nil {
			return nil, err
		}
		if row.Chunks > 0 {
			row.AvgSize = float64(row.DumpBytes) / float64(row.Chunks)
		}
		row.Params = p
		out = append(out, row)
	}
	return out, nil
}

func chunkFile(path string, p chunk.Params, fn func([]byte)) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	c := chunk.New(f, p)
	buf := make([]byte, 0, p.MaxSize)
	for {
		b, err := c.Next(buf)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		fn(b)
	}
}

// sweepSets are the parameter sets compared: the file default and
// successively smaller chunks.
func sweepSets() []sweepRow {
	kib := func(n uint) uint { return n << 10 }
	return []sweepRow{
		{Label: "files default (512 KiB min, 2^20, 8 MiB max)", Params: chunk.Params{MinSize: kib(512), AverageBits: 20, MaxSize: kib(8192)}},
		{Label: "128 KiB min, 2^17, 2 MiB max", Params: chunk.Params{MinSize: kib(128), AverageBits: 17, MaxSize: kib(2048)}},
		{Label: "64 KiB min, 2^16, 1 MiB max", Params: chunk.Params{MinSize: kib(64), AverageBits: 16, MaxSize: kib(1024)}},
		{Label: "16 KiB min, 2^14, 256 KiB max", Params: chunk.Params{MinSize: kib(16), AverageBits: 14, MaxSize: kib(256)}},
		{Label: "8 KiB min, 2^13, 128 KiB max", Params: chunk.Params{MinSize: kib(8), AverageBits: 13, MaxSize: kib(128)}},
		{Label: "4 KiB min, 2^12, 64 KiB max", Params: chunk.Params{MinSize: kib(4), AverageBits: 12, MaxSize: kib(64)}},
		{Label: "2 KiB min, 2^11, 32 KiB max", Params: chunk.Params{MinSize: kib(2), AverageBits: 11, MaxSize: kib(32)}},
	}
}
