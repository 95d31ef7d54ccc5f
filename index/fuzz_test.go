package index

import (
	"bytes"
	"testing"

	"github.com/snap-backup/snap/repo"
)

func seedSegments() []*Segment {
	id := func(b byte) repo.ID { return repo.ID{b, 1, 2, 3} }
	return []*Segment{
		{},
		{Supersedes: []repo.ID{id(9), id(8)}},
		{Packs: []Pack{{ID: id(1), Size: 1000, Blobs: []repo.BlobEntry{
			{Type: repo.DataBlob, ID: id(2), Offset: 0, Length: 100, RawLength: 72},
			{Type: repo.TreeBlob, Compressed: true, ID: id(3), Offset: 100, Length: 60, RawLength: 500},
		}}}},
		{Supersedes: []repo.ID{id(7)}, Packs: []Pack{
			{ID: id(4), Size: 1 << 24, Status: PackMarked, MarkedAt: 1700000000},
			{ID: id(5), Size: 64, Blobs: []repo.BlobEntry{{Type: repo.DataBlob, ID: id(6), Offset: 0, Length: 28, RawLength: 0}}},
		}},
		// Version 2: deltas, with their bases.
		{Packs: []Pack{
			{ID: id(10), Size: 1000, Blobs: []repo.BlobEntry{
				{Type: repo.DataBlob, Compressed: true, ID: id(11), Offset: 0, Length: 100, RawLength: 5000, Bases: []repo.ID{id(2), id(6)}},
				{Type: repo.DataBlob, ID: id(12), Offset: 100, Length: 128, RawLength: 100},
			}},
			{ID: id(13), Size: 100, Blobs: []repo.BlobEntry{
				{Type: repo.DataBlob, Compressed: true, ID: id(14), Offset: 0, Length: 40, RawLength: 70000, Bases: []repo.ID{id(12)}},
			}},
		}},
	}
}

func TestSegmentRoundTrip(t *testing.T) {
	for i, s := range seedSegments() {
		b := s.Encode()
		got, err := DecodeSegment(b)
		if err != nil {
			t.Fatalf("segment %d: %v", i, err)
		}
		if !bytes.Equal(got.Encode(), b) {
			t.Fatalf("segment %d does not round-trip", i)
		}
	}
	// Hostile counts and sizes are refused without allocating.
	for name, b := range map[string][]byte{
		"huge supersede count": append([]byte("SNIX\x01"), 0xff, 0xff, 0xff, 0xff),
		"huge pack count":      append([]byte("SNIX\x01\x00\x00\x00\x00"), 0xff, 0xff, 0xff, 0x7f),
		"trailing bytes":       append(seedSegments()[0].Encode(), 0),
		"bad magic":            []byte("SNIY\x01\x00\x00\x00\x00\x00\x00\x00\x00"),
		"blob outside pack": (&Segment{Packs: []Pack{{ID: repo.ID{1}, Size: 50,
			Blobs: []repo.BlobEntry{{Type: repo.DataBlob, Offset: 40, Length: 28}}}}}).Encode(),
		"overlapping blobs": (&Segment{Packs: []Pack{{ID: repo.ID{1}, Size: 500, Blobs: []repo.BlobEntry{
			{Type: repo.DataBlob, Offset: 0, Length: 100, RawLength: 72}, {Type: repo.DataBlob, Offset: 50, Length: 100, RawLength: 72}}}}}).Encode(),
		"negative size": (&Segment{Packs: []Pack{{ID: repo.ID{1}, Size: -1}}}).Encode(),
		"delta in version 1": func() []byte {
			b := seedSegments()[4].Encode()
			b[4] = segVersion
			return b
		}(),
		"version 2 without a delta": func() []byte {
			b := seedSegments()[2].Encode()
			b[4] = segVersionBase
			return b
		}(),
		"too many bases": (&Segment{Packs: []Pack{{ID: repo.ID{1}, Size: 500, Blobs: []repo.BlobEntry{
			{Type: repo.DataBlob, Compressed: true, ID: repo.ID{2}, Length: 100, RawLength: 500,
				Bases: []repo.ID{{3}, {4}, {5}, {6}, {7}, {8}, {9}, {10}, {11}}}}}}}).Encode(),
		"unknown status": (&Segment{Packs: []Pack{{ID: repo.ID{1}, Size: 1, Status: 7}}}).Encode(),
	} {
		if _, err := DecodeSegment(b); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func FuzzSegment(f *testing.F) {
	for _, s := range seedSegments() {
		f.Add(s.Encode())
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := DecodeSegment(b)
		if err != nil {
			return
		}
		// The encoding is canonical: decode(encode(x)) == x.
		if got := s.Encode(); !bytes.Equal(got, b) {
			t.Fatalf("re-encoding differs:\n in  %x\n out %x", b, got)
		}
		for _, p := range s.Packs {
			if p.Size < 0 || (p.Status != PackLive && p.Status != PackMarked) {
				t.Fatalf("accepted pack %+v", p)
			}
			var end int64
			for _, e := range p.Blobs {
				if int64(e.Offset) < end || int64(e.Offset)+int64(e.Length) > p.Size || e.Length < repo.Overhead || e.RawLength > repo.MaxBlobSize ||
					len(e.Bases) > repo.MaxBases || e.Delta() && (!e.Compressed || e.Type != repo.DataBlob) {
					t.Fatalf("accepted blob %+v in pack of %d bytes", e, p.Size)
				}
				end = int64(e.Offset) + int64(e.Length)
			}
		}
	})
}
