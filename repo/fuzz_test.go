package repo

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"
)

// Fuzz targets for every decoder of repository bytes in this package: the
// pack trailer (FuzzTrailer), key files (FuzzKeyFile), the config
// (FuzzConfig) and the envelope of unpacked objects (FuzzObject). Seeds are
// real encodings; `make fuzz` runs the first two for a while.

// memBackend holds one pack in memory, for LoadTrailer. It is a fake only
// because a fuzzer calls it millions of times; the local backend's Load is
// tested in repo/local.
type memBackend struct{ data []byte }

func (m *memBackend) Location() string                                                { return "mem" }
func (m *memBackend) Save(context.Context, Handle, []byte) error                      { return errors.New("read-only") }
func (m *memBackend) Stat(context.Context, Handle) (int64, error)                     { return int64(len(m.data)), nil }
func (m *memBackend) Remove(context.Context, Handle) error                            { return errors.New("read-only") }
func (m *memBackend) Close() error                                                    { return nil }
func (m *memBackend) List(context.Context, FileType, func(string, int64) error) error { return nil }
func (m *memBackend) Load(_ context.Context, _ Handle, off, n int64) ([]byte, error) {
	if off < 0 || n < 0 || off > int64(len(m.data)) {
		return nil, fmt.Errorf("bad range %d+%d: %w", off, n, ErrNotFound)
	}
	if n == 0 {
		n = int64(len(m.data)) - off
	}
	if off+n > int64(len(m.data)) {
		return nil, fmt.Errorf("short file")
	}
	return m.data[off : off+n], nil
}

// testRepository returns a repository with a fixed master key around be.
func testRepository(t testing.TB, be Backend) *Repository {
	t.Helper()
	mk := &MasterKey{}
	for i := range mk.EncKey {
		mk.EncKey[i] = byte(i)
		mk.IDKey[i] = byte(255 - i)
	}
	r, err := newRepository(be, mk, Options{Host: "fuzz", Now: func() time.Time { return time.Unix(1700000000, 0) }})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// testPack builds a real pack of a few blobs and returns its bytes and the
// plaintext of its trailer.
func testPack(t testing.TB, r *Repository, sizes ...int) (ID, []byte, []byte) {
	t.Helper()
	p := &PackBuilder{}
	for i, n := range sizes {
		plain := bytes.Repeat([]byte{byte(i)}, n)
		if i%2 == 1 { // incompressible
			for j := range plain {
				plain[j] = byte(j*7919 + i)
			}
		}
		sealed, _ := r.SealBlob(plain, CompressionFastest, nil)
		var id ID
		id[0], id[1] = byte(i), byte(n)
		typ := DataBlob
		if i%3 == 2 {
			typ = TreeBlob
		}
		p.Add(typ, id, sealed)
	}
	id, data, _ := r.FinishPack(p)
	tlen := int(binary.LittleEndian.Uint32(data[len(data)-4:]))
	plain, err := r.sealer.open(nil, data[len(data)-4-tlen:len(data)-4])
	if err != nil {
		t.Fatal(err)
	}
	return id, data, plain
}

func encodeTrailer(ents []BlobEntry) []byte {
	b := append([]byte(packMagic), packVersion)
	for _, e := range ents {
		if e.Delta() {
			b[len(b)-1] = packVersionBase
		}
	}
	b = binary.LittleEndian.AppendUint32(b, uint32(len(ents)))
	for _, e := range ents {
		b = e.AppendBinary(b)
	}
	return AppendBases(b, ents)
}

func TestPackRoundTrip(t *testing.T) {
	be := &memBackend{}
	r := testRepository(t, be)
	id, data, _ := testPack(t, r, 0, 1, 100, 5000, 70000)
	be.data = data
	ents, err := r.LoadTrailer(context.Background(), id, int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 5 {
		t.Fatalf("%d entries, want 5", len(ents))
	}
	for _, e := range ents {
		plain, err := r.LoadBlob(context.Background(), id, e, nil)
		if err != nil {
			t.Fatalf("blob %s: %v", e.ID.Short(), err)
		}
		if len(plain) != int(e.RawLength) || int(e.ID[1]) != len(plain)&0xff {
			t.Fatalf("blob %s: %d bytes, entry says %d", e.ID.Short(), len(plain), e.RawLength)
		}
	}
	// A flipped byte anywhere in a blob or the trailer is detected.
	for _, off := range []int{0, 13, int(ents[len(ents)-1].Offset) + 20, len(data) - 10} {
		bad := bytes.Clone(data)
		bad[off] ^= 0x40
		be.data = bad
		got, err := r.LoadTrailer(context.Background(), id, int64(len(bad)))
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Errorf("flip at %d: trailer error %v is not ErrCorrupt", off, err)
			}
			continue
		}
		for _, e := range got {
			if _, err := r.LoadBlob(context.Background(), id, e, nil); err != nil && !errors.Is(err, ErrCorrupt) {
				t.Errorf("flip at %d: blob error %v is not ErrCorrupt", off, err)
			}
		}
	}
}

func FuzzTrailer(f *testing.F) {
	r := testRepository(f, nil)
	for _, sizes := range [][]int{{}, {0}, {1, 2, 3}, {100, 5000, 64, 70000}} {
		_, data, plain := testPack(f, r, sizes...)
		f.Add(plain, int64(len(data)-4-int(binary.LittleEndian.Uint32(data[len(data)-4:]))), data)
	}
	// A pack with deltas (version 2, with a bases section).
	deltas := []BlobEntry{
		{Type: DataBlob, Compressed: true, ID: ID{1}, Offset: 0, Length: 100, RawLength: 500, Bases: []ID{{2}, {3}}},
		{Type: DataBlob, ID: ID{2}, Offset: 100, Length: 128, RawLength: 100},
		{Type: DataBlob, Compressed: true, ID: ID{4}, Offset: 228, Length: 40, RawLength: 5000, Bases: []ID{{2}}},
	}
	f.Add(encodeTrailer(deltas), int64(1000), []byte{})
	f.Add([]byte("SNPK\x01\xff\xff\xff\xff"), int64(1<<40), []byte{})
	f.Add([]byte("SNPK\x01\x01\x00\x00\x00"), int64(-1), []byte{0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, plain []byte, blobsEnd int64, pack []byte) {
		ents, err := DecodeTrailer(plain, blobsEnd)
		if err == nil {
			// Round trip: the encoding is canonical.
			if got := encodeTrailer(ents); !bytes.Equal(got, plain) {
				t.Fatalf("re-encoding differs:\n in  %x\n out %x", plain, got)
			}
			var end int64
			for _, e := range ents {
				if int64(e.Offset) < end || int64(e.Offset)+int64(e.Length) > blobsEnd || e.Length < Overhead || e.RawLength > MaxBlobSize ||
					int64(e.Length) > int64(e.RawLength)+Overhead || e.Delta() && (!e.Compressed || e.Type != DataBlob || len(e.Bases) > MaxBases) {
					t.Fatalf("accepted an invalid entry %+v (end %d, blobsEnd %d)", e, end, blobsEnd)
				}
				end = int64(e.Offset) + int64(e.Length)
			}
		}
		// The sealed form gives the same answer through ParseTrailer.
		pents, perr := r.ParseTrailer(ID{}, r.sealer.seal(nil, plain), blobsEnd)
		if (perr == nil) != (err == nil) || len(pents) != len(ents) {
			t.Fatalf("ParseTrailer disagrees with DecodeTrailer: %v vs %v", perr, err)
		}
		if perr != nil && !errors.Is(perr, ErrCorrupt) {
			t.Fatalf("ParseTrailer error %v is not ErrCorrupt", perr)
		}
		// Unsealed bytes never authenticate.
		if _, err := r.ParseTrailer(ID{}, plain, blobsEnd); err == nil {
			t.Fatal("ParseTrailer accepted unauthenticated bytes")
		}
		// A whole pack file of hostile bytes.
		be := &memBackend{data: pack}
		pr := testRepository(t, be)
		lents, err := pr.LoadTrailer(context.Background(), ID{}, int64(len(pack)))
		if err == nil {
			for _, e := range lents {
				if int64(e.Offset)+int64(e.Length) > int64(len(pack)) {
					t.Fatalf("entry %+v lies outside a pack of %d bytes", e, len(pack))
				}
				// Reading the blob must fail cleanly or authenticate. (A
				// delta needs its bases: LoadDelta, through the index.)
				if e.Delta() {
					continue
				}
				if _, err := pr.LoadBlob(context.Background(), ID{}, e, nil); err != nil && !errors.Is(err, ErrCorrupt) {
					t.Fatalf("LoadBlob: %v", err)
				}
			}
		} else if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("LoadTrailer error %v is not ErrCorrupt", err)
		}
	})
}

// cheapKDF keeps seeds fast to unwrap.
var cheapKDF = KDFParams{Time: 1, MemoryKiB: 64, Threads: 1}

func TestKeyFileBounds(t *testing.T) {
	mk, _ := NewMasterKey()
	good, err := newKeyFile(mk, "pw", cheapKDF, "h", "u", time.Now(), false)
	if err != nil {
		t.Fatal(err)
	}
	kf, err := parseKeyFile(good)
	if err != nil {
		t.Fatal(err)
	}
	got, err := kf.unwrap("pw", false)
	if err != nil || *got != *mk {
		t.Fatalf("unwrap with the right password: %v", err)
	}
	if _, err := kf.unwrap("wrong", false); !errors.Is(err, ErrWrongPassword) {
		t.Fatalf("unwrap with a wrong password: %v, want ErrWrongPassword", err)
	}
	mutate := func(fn func(m map[string]any)) []byte {
		var m map[string]any
		if err := json.Unmarshal(good, &m); err != nil {
			t.Fatal(err)
		}
		fn(m)
		b, _ := json.Marshal(m)
		return b
	}
	for name, b := range map[string][]byte{
		"memory 4 GiB + 1": mutate(func(m map[string]any) { m["argon2id"].(map[string]any)["memory_kib"] = 4<<20 + 1 }),
		"memory too small": mutate(func(m map[string]any) { m["argon2id"].(map[string]any)["memory_kib"] = 7 }),
		"time 0":           mutate(func(m map[string]any) { m["argon2id"].(map[string]any)["time"] = 0 }),
		"time 65":          mutate(func(m map[string]any) { m["argon2id"].(map[string]any)["time"] = 65 }),
		"threads 0":        mutate(func(m map[string]any) { m["argon2id"].(map[string]any)["threads"] = 0 }),
		"short salt":       mutate(func(m map[string]any) { m["salt"] = "AAAA" }),
		"no data":          mutate(func(m map[string]any) { m["data"] = "" }),
		"kdf scrypt":       mutate(func(m map[string]any) { m["kdf"] = "scrypt" }),
		"version 2":        mutate(func(m map[string]any) { m["version"] = 2 }),
		"huge":             append(bytes.Repeat([]byte(" "), maxKeyFileSize), good...),
		"not json":         []byte("\x00\x01"),
	} {
		if _, err := parseKeyFile(b); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func FuzzKeyFile(f *testing.F) {
	mk := &MasterKey{}
	for _, p := range []KDFParams{cheapKDF, {Time: 2, MemoryKiB: 16, Threads: 2}} {
		kf, err := newKeyFile(mk, "pw", p, "host", "user", time.Unix(1700000000, 0), false)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(kf)
	}
	f.Add([]byte(`{"version":1,"kdf":"argon2id","argon2id":{"time":64,"memory_kib":4194304,"threads":255},"salt":"AAAAAAAAAAAAAAAAAAAAAA==","data":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}`))
	f.Add([]byte(`{"version":1,"kdf":"argon2id","argon2id":{"time":1,"memory_kib":8,"threads":1},"salt":null,"data":null}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		kf, err := parseKeyFile(data)
		if err != nil {
			return
		}
		p := kf.Params
		if p.Time < 1 || p.Time > maxKDFTime || p.MemoryKiB > maxKDFMemoryKiB || p.Threads < 1 || p.MemoryKiB < 8*uint32(p.Threads) {
			t.Fatalf("accepted out-of-bounds KDF parameters %+v", p)
		}
		if len(kf.Salt) < 16 || len(kf.Salt) > 64 || len(kf.Data) < Overhead || len(data) > maxKeyFileSize {
			t.Fatalf("accepted a key file with salt %d bytes, data %d bytes", len(kf.Salt), len(kf.Data))
		}
		// Deriving is bounded by the checks above; run it when cheap.
		if p.MemoryKiB <= 1024 && p.Time <= 2 {
			mk, err := kf.unwrap("pw", false)
			if err == nil && mk == nil {
				t.Fatal("unwrap returned neither key nor error")
			}
		}
	})
}

func FuzzConfig(f *testing.F) {
	c, _ := newConfig(ChunkerParams{Polynomial: 0x3DA3358B4DC173, MinSize: 512 << 10, MaxSize: 8 << 20, AverageBits: 20}, time.Unix(1700000000, 0))
	b, _ := json.Marshal(c)
	f.Add(b)
	f.Add([]byte(`{"version":1,"id":"zz","pack_size":1}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := parseConfig(data)
		if err != nil {
			return
		}
		if c.Version != FormatVersion || c.PackSize < 1<<20 || c.PackSize > 1<<30 {
			t.Fatalf("accepted config %+v", c)
		}
		if _, err := ParseID(c.ID); err != nil {
			t.Fatalf("accepted config ID %q", c.ID)
		}
	})
}

func FuzzObject(f *testing.F) {
	r := testRepository(f, nil)
	f.Add([]byte{objectRaw, 'h', 'i'})
	plain := bytes.Repeat([]byte("compressible "), 100)
	payload, _ := r.comp.compress([]byte{objectZstd}, plain, CompressionDefault)
	f.Add(payload)
	f.Add([]byte{objectZstd, 0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x58})
	f.Add([]byte{7})
	f.Fuzz(func(t *testing.T, payload []byte) {
		sealed := r.sealer.seal(nil, payload)
		h := Handle{Type: SnapshotFile, Name: Hash(sealed).String()}
		out, err := r.OpenObject(h, sealed)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v is not ErrCorrupt", err)
			}
			return
		}
		if len(payload) > 0 && payload[0] == objectRaw && !bytes.Equal(out, payload[1:]) {
			t.Fatal("raw object changed on the way")
		}
		// A wrong name is always caught.
		h.Name = Hash(append(sealed, 0)).String()
		if _, err := r.OpenObject(h, sealed); !errors.Is(err, ErrCorrupt) {
			t.Fatal("object accepted under another name")
		}
	})
}

// TestEntryAndTrailerBounds: lengths from repository bytes cannot make a
// reader allocate more than a real blob or trailer needs.
func TestEntryAndTrailerBounds(t *testing.T) {
	for name, e := range map[string]BlobEntry{
		"compressed longer than raw": {Type: DataBlob, Compressed: true, Length: 1 << 31, RawLength: 100},
		"raw too long":               {Type: DataBlob, Length: MaxBlobSize + Overhead + 1, RawLength: MaxBlobSize + 1},
		"shorter than overhead":      {Type: DataBlob, Length: 10},
		"raw mismatch":               {Type: TreeBlob, Length: 100, RawLength: 100},
		"unknown type":               {Type: 9, Length: 100, RawLength: 72},
	} {
		if _, _, err := DecodeBlobEntry(e.AppendBinary(nil)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, _, err := DecodeBlobEntry((BlobEntry{Type: DataBlob, Compressed: true, Length: 128, RawLength: 100}).AppendBinary(nil)); err != nil {
		t.Errorf("a real compressed entry: %v", err)
	}
	// Deltas: only data blobs, only in version 2, with 1 to MaxBases
	// distinct bases that are not the blob itself.
	delta := BlobEntry{Type: DataBlob, Compressed: true, ID: ID{1}, Length: 128, RawLength: 1000, Bases: []ID{{2}}}
	if _, err := DecodeTrailer(encodeTrailer([]BlobEntry{delta}), 1000); err != nil {
		t.Errorf("a real delta: %v", err)
	}
	v1 := encodeTrailer([]BlobEntry{delta})
	v1[4] = packVersion
	if _, err := DecodeTrailer(v1[:len(v1)-33], 1000); err == nil {
		t.Error("a delta in a version 1 trailer: accepted")
	}
	tree := delta
	tree.Type = TreeBlob
	for name, e := range map[string]BlobEntry{
		"tree delta": tree,
		"self base":  {Type: DataBlob, Compressed: true, ID: ID{1}, Length: 128, RawLength: 1000, Bases: []ID{{1}}},
		"twice":      {Type: DataBlob, Compressed: true, ID: ID{1}, Length: 128, RawLength: 1000, Bases: []ID{{2}, {2}}},
		"too many":   {Type: DataBlob, Compressed: true, ID: ID{1}, Length: 128, RawLength: 1000, Bases: make([]ID, MaxBases+1)},
	} {
		if e.Type == DataBlob && len(e.Bases) > MaxBases {
			for i := range e.Bases {
				e.Bases[i][0] = byte(i + 2)
			}
		}
		if _, err := DecodeTrailer(encodeTrailer([]BlobEntry{e}), 1000); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	// A pack whose last 4 bytes claim a 4 GiB trailer.
	pack := append(make([]byte, 1000), 0xff, 0xff, 0xff, 0xf0)
	be := &memBackend{data: pack}
	r := testRepository(t, be)
	if _, err := r.LoadTrailer(context.Background(), ID{}, int64(len(pack))); !errors.Is(err, ErrCorrupt) {
		t.Errorf("huge trailer length: %v", err)
	}
}

// TestDeltaRoundTrip: a blob compressed against a dictionary (its bases'
// plaintexts) opens with the same dictionary, is much smaller than on its
// own when it resembles the dictionary, and does not open without it.
func TestDeltaRoundTrip(t *testing.T) {
	r := testRepository(t, nil)
	var base []byte
	x := uint32(1)
	for i := range 3000 {
		x = x*1664525 + 1013904223
		base = fmt.Appendf(base, "%d\t%d\t%d\n", i, x%1000, x)
	}
	plain := bytes.Replace(base, []byte("\n1234\t"), []byte("\n1234\t-4711"), 1)
	full, _, _ := r.CompressBlob(plain, CompressionFastest, nil)
	delta, ok, _ := r.CompressDelta(plain, base, CompressionFastest, nil)
	if !ok || len(delta)*4 > len(full) {
		t.Fatalf("delta of %d bytes (ok %v), alone %d", len(delta), ok, len(full))
	}
	p := &PackBuilder{}
	r.AddBlob(p, DataBlob, ID{9}, delta, true, len(plain), []ID{{7}})
	r.AddBlob(p, DataBlob, ID{8}, full, false, len(plain), nil)
	id, data, ents := r.FinishPack(p)
	if ents[0].ID != (ID{9}) {
		ents[0], ents[1] = ents[1], ents[0]
	}
	if !ents[0].Delta() {
		t.Fatalf("entry %+v", ents[0])
	}
	// Prune tells a pack whose index lists fewer blobs than its file
	// holds by this size.
	if n := PackFileSize(ents); n != int64(len(data)) {
		t.Errorf("PackFileSize %d, the pack file has %d bytes", n, len(data))
	}
	if n := PackFileSize(ents[:1]); n >= int64(len(data)) {
		t.Errorf("PackFileSize of one entry of two: %d, the file has %d", n, len(data))
	}
	e := ents[0]
	got, err := r.OpenDelta(id, e, data[e.Offset:e.Offset+e.Length], base, nil)
	if err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("OpenDelta: %v", err)
	}
	if _, err := r.OpenBlob(id, e, data[e.Offset:e.Offset+e.Length], nil); err == nil {
		t.Fatal("a delta opened without its bases")
	}
	if _, err := r.OpenDelta(id, e, data[e.Offset:e.Offset+e.Length], base[1:], nil); err == nil {
		t.Fatal("a delta opened with another dictionary")
	}
}

// TestPackBuilderCountsItsTrailer: a pack of small blobs is cut when its
// blobs and their entries reach the pack size, or at MaxPackBlobs blobs,
// and the pack laid out is then no larger than the size (plus one blob):
// cut by the blobs' bytes alone, a million tiny files made packs of 37 MB
// for a size of 16 MiB (found by measuring a first backup).
func TestPackBuilderCountsItsTrailer(t *testing.T) {
	r := testRepository(t, &memBackend{})
	const packSize = 1 << 20
	var p PackBuilder
	n := 0
	for ; p.Fits(10, packSize) && !p.Full(packSize); n++ {
		var id ID
		id[0], id[1], id[2] = byte(n), byte(n>>8), byte(n>>16)
		r.AddBlob(&p, DataBlob, id, []byte("0123456789"), false, 10, []ID{{1}})
	}
	_, data, ents := r.FinishPack(&p)
	if len(ents) != n || len(data) > packSize+BlobEntrySize+33+10+Overhead+64 {
		t.Errorf("%d blobs in a pack of %d bytes, want at most about %d", n, len(data), packSize)
	}
	// With no bases and a pack size that would take more, the count cuts.
	p = PackBuilder{}
	for n = 0; !p.Full(64 << 20); n++ {
		p.Add(DataBlob, ID{byte(n), byte(n >> 8)}, SealedBlob{Data: make([]byte, 8+Overhead), RawLength: 8})
	}
	if n != MaxPackBlobs || p.Fits(8, 64<<20) {
		t.Errorf("a pack was cut at %d blobs, want %d", n, MaxPackBlobs)
	}
}
