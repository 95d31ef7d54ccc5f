package repo

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/zeebo/blake3"
	"golang.org/x/sys/unix"
)

// Repository is an open repository: a backend plus the master key and the
// config. It is safe for concurrent use.
type Repository struct {
	be      Backend
	key     *MasterKey
	sealer  *sealer
	comp    *compressor
	cfg     Config
	keyName string
	opts    Options

	packBufs chan []byte // see packBuffer
}

// Options are what the environment supplies: identity and time.
type Options struct {
	Host string
	// PIDNamespace names the PID namespace this process runs in (the link
	// /proc/self/ns/pid, "pid:[4026531836]"), which locks record: a
	// process ID says whether a lock's holder is alive only in the
	// namespace it was taken in. Empty means unknown; fill reads it.
	PIDNamespace string
	// MachineID names this machine, which locks record: two machines that
	// share a host name are told apart by it. fill derives it from
	// /etc/machine-id, hashed as systemd asks of programs that record it
	// (machine-id(5)); empty means unknown.
	MachineID string
	// BootID names the running kernel's boot (the kernel's random
	// boot_id), which locks record, and BootTime is when it began (btime
	// of /proc/stat): a lock of this machine last written in an earlier
	// boot, before this one began, has no live holder, whatever process
	// has its PID now. Empty or zero means unknown; fill reads them.
	BootID   string
	BootTime time.Time
	// Now returns the current time; tests pass a fake clock.
	Now func() time.Time
	// StreamChunker is recorded in the config by Init: the chunking of
	// streams (dumps, command output). Nil means streams are chunked like
	// files. Open ignores it.
	StreamChunker *ChunkerParams
	// HugePages backs the key derivation's memory (while it runs, see
	// prefault) and the pack buffers (see alignedBuffer) with transparent
	// huge pages; the caller decides whether the system allows it
	// (cmd/snap/hugepages.go).
	HugePages bool
	// KDFMemoryKiB is the most memory a key file's password derivation may
	// take in this process; a key that needs more is skipped with an error
	// (deriving it would end the process). fill sets it from the memory
	// available (availableMemoryKiB); tests set it.
	KDFMemoryKiB uint64
	// FirstKey names the key file Open tries first: the one that opened
	// the repository last time (findKey). Empty: none.
	FirstKey string
	// KeyTried, when set, is told of each key file Open derives a key
	// from, in turn (tests count them).
	KeyTried func(name string)
}

func (o *Options) fill() {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.KDFMemoryKiB == 0 {
		o.KDFMemoryKiB = availableMemoryKiB()
	}
	if o.Host == "" {
		o.Host, _ = os.Hostname()
	}
	if o.PIDNamespace == "" {
		o.PIDNamespace, _ = os.Readlink("/proc/self/ns/pid")
	}
	if o.MachineID == "" {
		// 32 hex digits, or nothing: an image's placeholder
		// ("uninitialized") is the same on every machine made from it.
		if id := firstLine("/etc/machine-id", "/var/lib/dbus/machine-id"); machineIDForm.MatchString(id) {
			sum := blake3.Sum256([]byte("snap lock machine\x00" + id))
			o.MachineID = fmt.Sprintf("%x", sum[:16])
		}
	}
	if o.BootID == "" {
		o.BootID = firstLine("/proc/sys/kernel/random/boot_id")
	}
	if o.BootTime.IsZero() {
		o.BootTime = bootTime()
	}
}

// machineIDForm is what machine-id(5) says the file holds.
var machineIDForm = regexp.MustCompile(`^[0-9a-f]{32}$`)

// bootTime reads when this machine booted (the btime line of /proc/stat);
// zero when it cannot.
func bootTime() time.Time {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return time.Time{}
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "btime "); ok {
			if sec, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); err == nil && sec > 0 {
				return time.Unix(sec, 0)
			}
		}
	}
	return time.Time{}
}

// firstLine returns the first line of the first of the files that holds
// one, without surrounding space; "" when none does. Such identity files
// are small; reading more than 256 bytes would mean something else is there.
func firstLine(paths ...string) string {
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			continue
		}
		buf := make([]byte, 256)
		n, _ := io.ReadFull(f, buf)
		f.Close()
		line, _, _ := strings.Cut(string(buf[:n]), "\n")
		if line = strings.TrimSpace(line); line != "" {
			return line
		}
	}
	return ""
}

func username() string {
	if u, err := user.Current(); err == nil {
		return u.Username
	}
	return ""
}

// Init creates a repository on an empty backend: a fresh master key wrapped
// by password, then the config. The config is written last, so a backend
// with a config always has a key that opens it.
func Init(ctx context.Context, be Backend, password string, kdf KDFParams, ch ChunkerParams, opts Options) (*Repository, error) {
	opts.fill()
	if _, err := be.Stat(ctx, Handle{Type: ConfigFile}); err == nil {
		return nil, fmt.Errorf("%s: %w: a repository exists there", be.Location(), ErrExists)
	}
	mk, err := NewMasterKey()
	if err != nil {
		return nil, err
	}
	r, err := newRepository(be, mk, opts)
	if err != nil {
		return nil, err
	}
	kf, err := untilDone(ctx, func() ([]byte, error) {
		return newKeyFile(mk, password, kdf, opts.Host, username(), opts.Now(), opts.HugePages)
	})
	if err != nil {
		return nil, err
	}
	r.keyName = Hash(kf).String()
	if err := be.Save(ctx, Handle{Type: KeyFile, Name: r.keyName}, kf); err != nil {
		return nil, err
	}
	if r.cfg, err = newConfig(ch, opts.Now()); err != nil {
		return nil, err
	}
	r.cfg.StreamChunker = opts.StreamChunker
	if err := r.saveConfig(ctx); err != nil {
		if errors.Is(err, ErrExists) {
			// Another init won the race for the config: this key opens
			// nothing there. (Open passes over one a crash leaves.)
			_ = be.Remove(context.WithoutCancel(ctx), Handle{Type: KeyFile, Name: r.keyName})
		}
		return nil, err
	}
	return r, nil
}

// HoldsData reports whether be holds a pack, an index segment or a
// snapshot (or cannot tell: a listing that fails counts as holding).
func HoldsData(ctx context.Context, be Backend) bool {
	found := errors.New("found")
	for _, t := range []FileType{SnapshotFile, IndexFile, PackFile} {
		err := be.List(ctx, t, func(string, int64) error { return found })
		if err != nil {
			return true
		}
	}
	return false
}

// Open finds the key that password opens and reads the config.
func Open(ctx context.Context, be Backend, password string, opts Options) (*Repository, error) {
	opts.fill()
	h := Handle{Type: ConfigFile}
	var sealed []byte // read once, when a key first opens
	var r *Repository
	err := findKey(ctx, be, password, opts.HugePages, opts.KDFMemoryKiB, opts.FirstKey, opts.KeyTried, func(mk *MasterKey, keyName string) error {
		if sealed == nil {
			var err error
			if sealed, err = LoadSmall(ctx, be, h); err != nil {
				if errors.Is(err, ErrNotFound) {
					// A key opened, so something was here. Init writes the
					// key before the config: keys alone are an init that
					// was stopped. With data, the repository lost its
					// config (a local directory says so before this; a
					// bucket has no directories to look at), and 'snap
					// init' is not the advice to give.
					if !HoldsData(ctx, be) {
						return fmt.Errorf("%s holds key files but nothing else, no config: a 'snap init' that was stopped; remove its keys/ and run 'snap init' again: %w",
							be.Location(), ErrNoRepository)
					}
					return fmt.Errorf("%s holds a repository's keys (key %s opens with this password) and data but no config file: the repository is damaged; put its config back from a copy of the repository",
						be.Location(), ShortName(keyName))
				}
				if ctx.Err() != nil {
					return ctx.Err() // stopped, not a config problem
				}
				return fmt.Errorf("load config: %w", err)
			}
		}
		cand, err := newRepository(be, mk, opts)
		if err != nil {
			return err
		}
		cand.keyName = keyName
		plain, err := cand.openObject(h, sealed)
		if err != nil {
			// Damage is the likelier cause, and comes first with its fix
			// (found by an exploratory test: the advice led with the
			// rarer one, and gave no fix).
			return fmt.Errorf("the repository's config is damaged, or key %s, which this password opens, is another repository's (left by an init that lost a race): %w; "+
				"put config back from any copy or backup of this repository (snap writes it once, at init), or open the repository with another key's password", shortName(keyName), err)
		}
		if cand.cfg, err = parseConfig(plain); err != nil {
			var newer *newerFormatError
			if errors.As(err, &newer) {
				return err
			}
			return corrupt("config", "%v", err)
		}
		r = cand
		return nil
	})
	if err != nil {
		return nil, err
	}
	return r, nil
}

func newRepository(be Backend, mk *MasterKey, opts Options) (*Repository, error) {
	s, err := newSealer(mk.EncKey)
	if err != nil {
		return nil, err
	}
	comp, err := newCompressor()
	if err != nil {
		return nil, err
	}
	return &Repository{be: be, key: mk, sealer: s, comp: comp, opts: opts, packBufs: make(chan []byte, packBuffers)}, nil
}

// saveConfig writes the config and reads it back: Save leaves an existing
// config alone, so if another init raced us to this location, what is
// there now is not ours, and this init must fail rather than leave a key
// that opens nothing.
func (r *Repository) saveConfig(ctx context.Context) error {
	plain, err := json.Marshal(r.cfg)
	if err != nil {
		return err
	}
	h := Handle{Type: ConfigFile}
	sealed := r.sealObject(plain)
	if err := r.be.Save(ctx, h, sealed); err != nil {
		return err
	}
	got, err := r.be.Load(ctx, h, 0, 0)
	if err != nil {
		return fmt.Errorf("read back config: %w", err)
	}
	if !bytes.Equal(got, sealed) {
		return fmt.Errorf("%s: %w: another repository was created there at the same time; choose another location", r.be.Location(), ErrExists)
	}
	return nil
}

// AddKey wraps the master key with another password and returns the new key
// file's name.
func (r *Repository) AddKey(ctx context.Context, password string, kdf KDFParams) (string, error) {
	kf, err := untilDone(ctx, func() ([]byte, error) {
		return newKeyFile(r.key, password, kdf, r.opts.Host, username(), r.opts.Now(), r.opts.HugePages)
	})
	if err != nil {
		return "", err
	}
	name := Hash(kf).String()
	return name, r.be.Save(ctx, Handle{Type: KeyFile, Name: name}, kf)
}

// Backend returns the storage backend.
func (r *Repository) Backend() Backend { return r.be }

// Config returns the repository config.
func (r *Repository) Config() Config { return r.cfg }

// IDKey returns the key of blob IDs.
func (r *Repository) IDKey() [32]byte { return r.key.IDKey }

// KeyName returns the name of the key file that opened the repository.
func (r *Repository) KeyName() string { return r.keyName }

// Now returns the repository's notion of the current time.
func (r *Repository) Now() time.Time { return r.opts.Now() }

// Host returns the host name locks and snapshots record.
func (r *Repository) Host() string { return r.opts.Host }

// PIDNamespace returns the PID namespace locks record (Options.PIDNamespace).
func (r *Repository) PIDNamespace() string { return r.opts.PIDNamespace }

// MachineID returns the machine ID locks record (Options.MachineID).
func (r *Repository) MachineID() string { return r.opts.MachineID }

// BootID returns the boot ID locks record (Options.BootID).
func (r *Repository) BootID() string { return r.opts.BootID }

// Close closes the backend.
func (r *Repository) Close() error { return r.be.Close() }

// Unpacked objects (config, snapshots, index segments, locks) are stored as
// seal(format byte ‖ payload), format 0 meaning the payload is the object
// and 1 that it is zstd-compressed. Their name is the hash of the stored
// bytes.
const (
	objectRaw  = 0
	objectZstd = 1
	// MaxObjectSize bounds an unpacked object (an index segment of a few
	// million blobs is the largest).
	MaxObjectSize = 1 << 30
	// MaxSnapshotSize bounds a snapshot document.
	MaxSnapshotSize = 16 << 20
	// maxSmallObjectSize bounds the config and lock files, which hold a
	// few hundred bytes.
	maxSmallObjectSize = 1 << 20
)

// maxObjectSize is the largest plaintext an object of type t may have. It
// bounds decompression too: a crafted object of 100 KB that inflates to
// 1 GiB of whitespace must fail at the size its type allows, not at 1 GiB
// (six such lock files made every command take 3 GB).
func maxObjectSize(t FileType) int {
	switch t {
	case SnapshotFile:
		return MaxSnapshotSize
	case ConfigFile, LockFile:
		return maxSmallObjectSize
	}
	return MaxObjectSize
}

// indexRatio bounds how much an index segment may grow when decompressed.
// A pack's and a blob's record each hold a random 32-byte ID; the bases
// lists of deltas repeat IDs, and segments of deltas sharing eight bases
// inflate 8.8 times (measured by a review), plain ones 2.3 times. A
// crafted segment of 97 KB that inflated to 1 GiB of one record repeated
// took 5 GB and minutes to decode on every command that read the index
// (found by an exploratory test); bounded so, it is refused at a few MiB.
const indexRatio = 64

// objectLimit is the bound a decoder of an object of type t stored in
// compressed bytes is made with: maxObjectSize (a power of two), or for
// an index segment indexRatio times its stored size and a MiB (ratio true
// when that is the tighter), rounded up to a power of two so that few
// decoders serve all sizes.
func objectLimit(t FileType, compressed int) (bound int, ratio bool) {
	limit := maxObjectSize(t)
	if t == IndexFile && compressed < limit/indexRatio-1<<20 {
		bound, ratio = indexRatio*compressed+1<<20, true
	} else {
		bound = limit
	}
	p := 1 << 20
	for p < bound {
		p <<= 1
	}
	return min(p, MaxObjectSize), ratio
}

func (r *Repository) sealObject(plain []byte) []byte {
	return r.sealer.seal(nil, r.objectPayload(plain))
}

// objectPayload is what an object's encryption seals: a byte saying how
// the rest is stored, then plain, compressed when that makes it smaller.
func (r *Repository) objectPayload(plain []byte) []byte {
	payload := make([]byte, 0, len(plain)/2+1)
	payload = append(payload, objectZstd)
	if comp, ok := r.comp.compress(payload, plain, CompressionDefault); ok {
		return comp
	}
	return append(append(payload[:0], objectRaw), plain...)
}

// objectNonceContext separates the key of SaveObjectOnce's nonces from
// every other use of the ID key.
const objectNonceContext = "snap 2026-12-04 object nonce from content"

// SaveObjectOnce is SaveObject with the nonce derived from the object's
// content (a BLAKE3 hash keyed by a key derived from the ID key), so that
// the same plaintext saved twice is the same bytes under the same ID: two
// copies of one snapshot made at the same moment, from two hosts, store
// one document, where random nonces would make two that retention counts
// twice. A nonce is reused only with the same plaintext, which AES-GCM
// allows (it shows only that the two are equal, as their equal IDs do).
//
// An object of that name already there is read back: a damaged one (other
// bytes under a content name) is replaced, and the bool says so. The
// backend's Save leaves an existing file alone, so a copy run again over
// a damaged copy said "copied" and left it damaged, night after night
// (found by an exploratory test).
func (r *Repository) SaveObjectOnce(ctx context.Context, t FileType, plain []byte) (ID, bool, error) {
	if err := checkObjectSize(t, plain); err != nil {
		return ID{}, false, err
	}
	sealed := r.sealObjectOnce(plain)
	id := Hash(sealed)
	h := Handle{Type: t, Name: id.String()}
	old, err := r.be.Load(ctx, h, 0, 0)
	switch {
	case errors.Is(err, ErrNotFound):
		return id, false, r.be.Save(ctx, h, sealed)
	case err != nil:
		return id, false, err
	case bytes.Equal(old, sealed):
		return id, false, nil
	}
	if err := ReplaceDamaged(ctx, r.be, h, sealed); err != nil {
		return id, false, err
	}
	return id, true, nil
}

// ReplaceDamaged writes good, the intact bytes of the file h, in place of
// a damaged file of that name. A bucket's Save overwrites what is there
// (and needs no right to delete); a directory's keeps it, and the file is
// then removed and saved anew. Gone already is fine: another process
// replacing the same file at the same moment.
func ReplaceDamaged(ctx context.Context, be Backend, h Handle, good []byte) error {
	if err := be.Save(ctx, h, good); err != nil {
		return err
	}
	if now, err := be.Load(ctx, h, 0, 0); err == nil && bytes.Equal(now, good) {
		return nil
	}
	if err := be.Remove(ctx, h); err != nil && !errors.Is(err, ErrNotFound) {
		return fmt.Errorf("replace %s, which is damaged: %w", h, err)
	}
	return be.Save(ctx, h, good)
}

// sealObjectOnce is sealObject with the nonce SaveObjectOnce describes.
func (r *Repository) sealObjectOnce(plain []byte) []byte {
	payload := r.objectPayload(plain)
	var key [32]byte
	blake3.DeriveKey(objectNonceContext, r.key.IDKey[:], key[:])
	h, _ := blake3.NewKeyed(key[:]) // fails only for a key that is not 32 bytes
	_, _ = h.Write(payload)
	var nonce [nonceSize]byte
	copy(nonce[:], h.Sum(nil))
	return r.sealer.sealWith(nil, nonce, payload)
}

func (r *Repository) openObject(h Handle, sealed []byte) ([]byte, error) {
	payload, err := r.sealer.open(nil, sealed)
	if err != nil {
		return nil, corrupt(h.String(), "%v", err)
	}
	if len(payload) == 0 {
		return nil, corrupt(h.String(), "empty payload")
	}
	limit := maxObjectSize(h.Type)
	switch payload[0] {
	case objectRaw:
		if len(payload)-1 > limit {
			return nil, corrupt(h.String(), "%d bytes exceed the %d-byte limit of a %s object", len(payload)-1, limit, h.Type)
		}
		return payload[1:], nil
	case objectZstd:
		bound, ratio := objectLimit(h.Type, len(payload)-1)
		dec, err := r.comp.objectDecoder(bound)
		if err != nil {
			return nil, err
		}
		out, err := dec.DecodeAll(payload[1:], nil)
		if errors.Is(err, zstd.ErrDecoderSizeExceeded) || errors.Is(err, zstd.ErrWindowSizeExceeded) {
			if ratio {
				return nil, corrupt(h.String(), "it decompresses to more than %d times its %d stored bytes, which no %s object does (crafted to exhaust memory)", indexRatio, len(payload)-1, h.Type)
			}
			return nil, corrupt(h.String(), "it decompresses to more than the %d-byte limit of a %s object", limit, h.Type)
		}
		if err != nil {
			return nil, corrupt(h.String(), "zstd: %v", err)
		}
		return out, nil
	}
	return nil, corrupt(h.String(), "unknown object format %d", payload[0])
}

// SaveObject encrypts plain and stores it as an object of type t, returning
// its ID. The object is durable when SaveObject returns.
func (r *Repository) SaveObject(ctx context.Context, t FileType, plain []byte) (ID, error) {
	if err := checkObjectSize(t, plain); err != nil {
		return ID{}, err
	}
	sealed := r.sealObject(plain)
	id := Hash(sealed)
	if err := r.be.Save(ctx, Handle{Type: t, Name: id.String()}, sealed); err != nil {
		return id, err
	}
	return id, nil
}

// checkObjectSize refuses an object a reader would refuse: better to fail
// now than to store what no one can open.
func checkObjectSize(t FileType, plain []byte) error {
	if limit := maxObjectSize(t); len(plain) > limit {
		return fmt.Errorf("%s object of %d bytes exceeds the %d-byte object limit", t, len(plain), limit)
	}
	return nil
}

// LoadObject reads, verifies and decrypts an object.
func (r *Repository) LoadObject(ctx context.Context, t FileType, id ID) ([]byte, error) {
	h := Handle{Type: t, Name: id.String()}
	sealed, err := LoadSmall(ctx, r.be, h)
	if err != nil {
		return nil, err
	}
	return r.OpenObject(h, sealed)
}

// sealOverhead is what sealing adds to an object's plaintext: the format
// byte, the nonce and the tag.
const sealOverhead = 1 + 12 + 16

// LoadSmall loads the whole file h, which for the config, a lock or a
// snapshot must be no larger than its type allows: its size is asked
// first, so that a huge file planted under such a name is refused rather
// than read (four lock files of 1000 MB made check take 2 GB and 46 s;
// found by an exploratory test). So must an index file in a local
// repository: one of 1.5 GiB was read whole, into 1.6 GB of memory, by
// every command before it was refused (found by an exploratory test). On
// S3 the question is a request of its own for each of the many segments a
// sync reads, and the backend's own bound applies. Other types load as
// they are.
func LoadSmall(ctx context.Context, be Backend, h Handle) ([]byte, error) {
	switch {
	case h.Type == ConfigFile, h.Type == LockFile, h.Type == SnapshotFile, h.Type == IndexFile && OnLocalDisk(be):
		limit := int64(maxObjectSize(h.Type) + sealOverhead)
		size, err := be.Stat(ctx, h)
		if err != nil {
			return nil, err
		}
		if size > limit {
			return nil, corrupt(h.String(), "%d bytes exceed the size limit of its kind, %d", size, limit)
		}
	}
	return be.Load(ctx, h, 0, 0)
}

// OpenObject verifies and decrypts an object's stored bytes, which may come
// from the backend or from a local cache.
func (r *Repository) OpenObject(h Handle, sealed []byte) ([]byte, error) {
	if len(sealed) > MaxObjectSize {
		return nil, corrupt(h.String(), "%d bytes exceed the object size limit", len(sealed))
	}
	if Hash(sealed).String() != h.Name {
		return nil, corrupt(h.String(), "content does not match its name")
	}
	return r.openObject(h, sealed)
}

// ListIDs returns the IDs of all files of type t with valid names.
func (r *Repository) ListIDs(ctx context.Context, t FileType) ([]ID, error) {
	var ids []ID
	err := r.be.List(ctx, t, func(name string, size int64) error {
		if id, err := ParseID(name); err == nil {
			ids = append(ids, id)
		}
		return nil
	})
	return ids, err
}

// ReadCacheFile reads a file of the local cache that is at most limit
// bytes: a regular file, opened without following a symlink and without
// waiting on a FIFO. Anything else is an error, and the caller falls back
// to the repository (or to nothing). The cache is the host's, but read as
// it was, whole: a FIFO there hung snap beyond Ctrl-C, and a large file
// took all memory (found by an exploratory test).
func ReadCacheFile(path string, limit int64) ([]byte, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	f := os.NewFile(uintptr(fd), path)
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() || fi.Size() > limit {
		return nil, fmt.Errorf("%s: not a regular file of at most %d bytes", path, limit)
	}
	return io.ReadAll(io.LimitReader(f, limit))
}

// MaxCachedSnapshot is the most a cached snapshot document may hold, as
// the repository's copy (LoadSmall).
const MaxCachedSnapshot = int64(MaxSnapshotSize + sealOverhead)
