package repo

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"golang.org/x/crypto/argon2"
	"golang.org/x/sys/unix"
)

// KDFParams are the argon2id parameters of one key file.
type KDFParams struct {
	Time      uint32 `json:"time"`
	MemoryKiB uint32 `json:"memory_kib"`
	Threads   uint8  `json:"threads"`
}

// DefaultKDF follows RFC 9106's second recommendation (64 MiB, 3 passes).
var DefaultKDF = KDFParams{Time: 3, MemoryKiB: 64 << 10, Threads: 4}

// Bounds on KDF parameters read from a key file: a hostile repository must
// not make us allocate without limit or spin forever.
const (
	MaxKDFMemoryMiB = 4 << 10 // 4 GiB
	MaxKDFTime      = 64
	maxKDFMemoryKiB = MaxKDFMemoryMiB << 10
	maxKDFTime      = MaxKDFTime
	maxKeyFileSize  = 64 << 10
)

func (p KDFParams) validate() error {
	switch {
	case p.Time < 1 || p.Time > maxKDFTime:
		return fmt.Errorf("argon2 time %d out of range 1..%d", p.Time, maxKDFTime)
	case p.MemoryKiB < 8*uint32(max(p.Threads, 1)) || p.MemoryKiB > maxKDFMemoryKiB:
		return fmt.Errorf("argon2 memory %d KiB out of range", p.MemoryKiB)
	case p.Threads < 1:
		return errors.New("argon2 threads must be at least 1")
	}
	return nil
}

// keyFile is the JSON document in keys/<id>: the master key encrypted with a
// key derived from a password.
type keyFile struct {
	Version  int       `json:"version"`
	Created  time.Time `json:"created"`
	Host     string    `json:"host,omitempty"`
	Username string    `json:"username,omitempty"`
	KDF      string    `json:"kdf"`
	Params   KDFParams `json:"argon2id"`
	Salt     []byte    `json:"salt"`
	Data     []byte    `json:"data"` // seal(json(MasterKey)) under the derived key
}

const kdfArgon2id = "argon2id"

// newKeyFile wraps mk with password.
func newKeyFile(mk *MasterKey, password string, p KDFParams, host, user string, now time.Time, hugePages bool) ([]byte, error) {
	if err := p.validate(); err != nil {
		return nil, err
	}
	if err := CheckKDFMemory(p); err != nil {
		return nil, err
	}
	kf := keyFile{Version: 1, Created: now.UTC(), Host: host, Username: user, KDF: kdfArgon2id, Params: p, Salt: make([]byte, 32)}
	if _, err := rand.Read(kf.Salt); err != nil {
		return nil, err
	}
	s, err := newSealer(deriveKey(password, kf.Salt, p, hugePages))
	if err != nil {
		return nil, err
	}
	plain, err := json.Marshal(mk)
	if err != nil {
		return nil, err
	}
	kf.Data = s.seal(nil, plain)
	return json.Marshal(kf)
}

// CheckKDFMemory refuses parameters for a new key whose derivation needs
// more memory than this process may have: deriving it would end the
// process, as findKey guards against when opening (init, key add and key
// passwd did so under ulimit -v; found by an exploratory test). init calls
// it before it makes anything.
func CheckKDFMemory(p KDFParams) error {
	if avail := availableMemoryKiB(); avail > 0 && uint64(p.MemoryKiB) > avail {
		return fmt.Errorf("the new key's password derivation needs %d MiB, more than the %d MiB this process may have (what the system has free, ulimit -v and its control group's memory limit allow): give a smaller --kdf-memory, or run where more memory is free",
			p.MemoryKiB>>10, avail>>10)
	}
	return nil
}

// deriveKey runs argon2id; hugePages backs its memory with transparent huge
// pages while it runs (see prefault).
func deriveKey(password string, salt []byte, p KDFParams, hugePages bool) [32]byte {
	var k [32]byte
	advice := prefault(int(p.MemoryKiB)<<10, hugePages)
	copy(k[:], argon2.IDKey([]byte(password), salt, p.Time, p.MemoryKiB, p.Threads, 32))
	// The KDF's memory (64 MiB by default) is garbage now. Collect it at
	// once: left alone, it would set the heap goal of the whole run to
	// twice its size, and the peak memory with it.
	runtime.GC()
	advice.undo()
	return k
}

// parseKeyFile decodes and validates a key file without deriving anything.
func parseKeyFile(data []byte) (*keyFile, error) {
	if len(data) > maxKeyFileSize {
		return nil, fmt.Errorf("key file of %d bytes exceeds %d", len(data), maxKeyFileSize)
	}
	var kf keyFile
	if err := json.Unmarshal(data, &kf); err != nil {
		return nil, fmt.Errorf("decode key file: %w", err)
	}
	if kf.Version != 1 || kf.KDF != kdfArgon2id {
		return nil, fmt.Errorf("unsupported key file version %d / kdf %q", kf.Version, kf.KDF)
	}
	if err := kf.Params.validate(); err != nil {
		return nil, err
	}
	if len(kf.Salt) < 16 || len(kf.Salt) > 64 {
		return nil, fmt.Errorf("salt of %d bytes out of range 16..64", len(kf.Salt))
	}
	if len(kf.Data) < Overhead {
		return nil, errors.New("key data too short")
	}
	return &kf, nil
}

// unwrap derives the password key and decrypts the master key. A failed
// authentication means a wrong password (or a modified key file).
func (kf *keyFile) unwrap(password string, hugePages bool) (*MasterKey, error) {
	s, err := newSealer(deriveKey(password, kf.Salt, kf.Params, hugePages))
	if err != nil {
		return nil, err
	}
	plain, err := s.open(nil, kf.Data)
	if err != nil {
		return nil, ErrWrongPassword
	}
	var mk MasterKey
	if err := json.Unmarshal(plain, &mk); err != nil {
		return nil, fmt.Errorf("decode master key: %w", err)
	}
	return &mk, nil
}

// findKey tries every key file with the password, the cheapest to derive
// first and none that needs more than avail KiB (0: no limit), and hands
// each master key it unwraps, with its key file's name, to accept, until
// one is accepted (Open: it opens the config).
//
// A key accept refuses is passed over, with its error kept: a key
// file left by an init that lost a race to another one (two inits at once
// on S3) opens with the password but belongs to no repository.
//
// The key file named first, when there is one, is tried before the others:
// the one that opened the repository the last time on this host (the
// caller remembers it). Key files planted in keys/ by whoever may write
// there, cheaper than the real one, were all tried before it: 380 of them
// made every command take 55 s (found by an exploratory test). onTry, when
// set, is told of each key file before its derivation.
func findKey(ctx context.Context, be Backend, password string, hugePages bool, avail uint64, first string, onTry func(string), accept func(*MasterKey, string) error) error {
	var names []string
	var firstErr error
	// damaged is a key file whose bytes changed since it was written (they
	// no longer hash to its name): it may be this password's. A file that
	// was written as it is (too large, not a key file) is nobody's key.
	var damaged error
	err := be.List(ctx, KeyFile, func(name string, size int64) error {
		if size > maxKeyFileSize { // not read: a hostile file must not fill memory
			firstErr = cmpErr(firstErr, corrupt(Handle{Type: KeyFile, Name: name}.String(), "%d bytes exceed the key file size limit %d", size, maxKeyFileSize))
			return nil
		}
		names = append(names, name)
		return nil
	})
	if err != nil {
		return err
	}
	if len(names) == 0 && firstErr == nil {
		// Init saves its key before the config: a config without any
		// key is a damaged repository, not an absent one.
		if _, err := be.Stat(ctx, Handle{Type: ConfigFile}); err == nil {
			return fmt.Errorf("%s has a config but no key files in keys/: the repository is damaged, and no password opens it without one; put keys/ back from a copy of the repository", be.Location())
		}
		if o, ok := As[Occupied](be); ok {
			// A bucket's root (or a prefix) that holds other objects:
			// init would refuse it, so 'run snap init' is no advice (found
			// by an exploratory test).
			if first, err := o.FirstObject(ctx); err == nil && first != "" {
				return fmt.Errorf("%s: %w: the location holds other objects (%s)%s; give the location of the repository, or for a new one an empty bucket or prefix",
					be.Location(), ErrNoRepository, first, repositoryBelow(first))
			}
		}
		if n, ok := As[Neighbours](be); ok {
			// A misspelt prefix (or its case): init would start a second,
			// empty repository beside the real one (found by an
			// exploratory test).
			if near, err := n.NearbyRepositories(ctx); err == nil && len(near) > 0 {
				return fmt.Errorf("%s: %w: nothing is stored under this prefix, and repositories are beside it: %s; check the location (prefixes are case-sensitive); 'snap init' would start a new, empty repository here",
					be.Location(), ErrNoRepository, strings.Join(near, ", "))
			}
		}
		return fmt.Errorf("%s: no key files in keys/: %w (run 'snap init' to create one)", be.Location(), ErrNoRepository)
	}
	var loadErr, acceptErr error
	tried := false   // some key file was readable and the password did not open it
	var costly error // a key file skipped for its derivation's memory
	type parsed struct {
		name string
		kf   *keyFile
	}
	var keys []parsed
	for _, name := range names {
		h := Handle{Type: KeyFile, Name: name}
		data, err := be.Load(ctx, h, 0, 0)
		if errors.Is(err, ErrNotFound) {
			continue // removed since the listing (a key remove meanwhile)
		}
		if err != nil {
			loadErr = cmpErr(loadErr, err)
			continue
		}
		if Hash(data).String() != name {
			if resticKey(data) {
				return fmt.Errorf("%s: %w of snap's: it holds a restic repository (use restic for it; snap cannot read restic's format)", be.Location(), ErrNoRepository)
			}
			firstErr = cmpErr(firstErr, corrupt(h.String(), "content does not match its name"))
			damaged = cmpErr(damaged, firstErr)
			continue
		}
		kf, err := parseKeyFile(data)
		if err != nil {
			firstErr = cmpErr(firstErr, corrupt(h.String(), "%v", err))
			continue
		}
		keys = append(keys, parsed{name, kf})
	}
	// The cheapest to try first: the order of names is that of hashes, and
	// a user whose key came after a colleague's costlier one (or one made
	// costly on purpose) paid for its derivation on every command.
	slices.SortStableFunc(keys, func(a, b parsed) int { return cmp.Compare(a.kf.Params.cost(), b.kf.Params.cost()) })
	if i := slices.IndexFunc(keys, func(k parsed) bool { return k.name == first }); i > 0 {
		k := keys[i]
		copy(keys[1:i+1], keys[:i])
		keys[0] = k
	}
	for _, k := range keys {
		if need := uint64(k.kf.Params.MemoryKiB); avail > 0 && need > avail {
			// Deriving it would end the process (the Go runtime's "out of
			// memory" is no error that can be handled).
			costly = cmpErr(costly, fmt.Errorf("key file keys/%s needs %d MiB for its password derivation, more than the %d MiB this process may have (what the system has free, ulimit -v and its control group's memory limit allow): skipped (run snap where more memory is free or the limit is higher, or remove that key with 'snap key remove')",
				k.name, need>>10, avail>>10))
			continue
		}
		if onTry != nil {
			onTry(k.name)
		}
		mk, err := unwrapCtx(ctx, k.kf, password, hugePages)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if errors.Is(err, ErrWrongPassword) {
			tried = true
			continue
		}
		if err != nil {
			firstErr = cmpErr(firstErr, corrupt(Handle{Type: KeyFile, Name: k.name}.String(), "%v", err))
			continue
		}
		if err := accept(mk, k.name); err != nil {
			acceptErr = cmpErr(acceptErr, err)
			continue
		}
		return nil
	}
	if acceptErr != nil {
		return acceptErr
	}
	if loadErr != nil {
		// A key that could not be read may be the one the password
		// opens: this is not a wrong password.
		return fmt.Errorf("read key file: %w", loadErr)
	}
	if costly != nil {
		// The key skipped may be the one for this password: not a wrong
		// password (exit 12 would send the admin to the password files;
		// found by an exploratory test), and not a damaged key either.
		what := "no key file the password could be tried on opens with it"
		if !tried {
			what = "the password could not be tried"
		}
		return fmt.Errorf("%s: %w", what, costly)
	}
	if firstErr != nil && !tried {
		// No key file could be read at all: nothing says the password is
		// wrong.
		return fmt.Errorf("no key file can be read: %w; restore keys/ from a copy of the repository (without a key it cannot be opened)", firstErr)
	}
	if damaged != nil {
		// Not ErrWrongPassword: the damaged key may be this password's,
		// and exit 12 sent monitoring, and the admin, to the password
		// files (found by an exploratory test).
		return fmt.Errorf("wrong password, or its key file is damaged: it opens none of the readable key files, and %w; if the password is right, restore keys/ from a copy of the repository", damaged)
	}
	if firstErr != nil {
		return fmt.Errorf("%w: it opens none of the readable key files (and %v)", ErrWrongPassword, firstErr)
	}
	return fmt.Errorf("%w for repository %s: no key file opens with it", ErrWrongPassword, be.Location())
}

// unwrapCtx is kf.unwrap that returns when ctx ends: the derivation of a
// costly key (up to MaxKDFMemoryMiB and MaxKDFTime passes: minutes, and a
// key file anyone who may write keys/ can plant) then goes on in the
// background until the process exits, and Ctrl-C or SIGTERM stop the
// command at once (they waited for it; found by an exploratory test).
func unwrapCtx(ctx context.Context, kf *keyFile, password string, hugePages bool) (*MasterKey, error) {
	return untilDone(ctx, func() (*MasterKey, error) { return kf.unwrap(password, hugePages) })
}

// untilDone runs fn, a password derivation, and returns its result, or
// ctx's error as soon as ctx ends (fn then runs on until the process
// exits). Deriving a new key (init, key add, key passwd) is as long as
// opening with it.
func untilDone[T any](ctx context.Context, fn func() (T, error)) (T, error) {
	type result struct {
		v   T
		err error
	}
	done := make(chan result, 1)
	go func() {
		v, err := fn()
		done <- result{v, err}
	}()
	select {
	case r := <-done:
		return r.v, r.err
	case <-ctx.Done():
		var zero T
		return zero, ctx.Err()
	}
}

// cost is what deriving a key with p takes, in KiB-passes: memory times
// passes (the threads share them).
func (p KDFParams) cost() uint64 { return uint64(p.MemoryKiB) * uint64(p.Time) }

// availableMemoryKiB is the memory a key derivation may take without
// ending the process: the smallest of what the system has available
// (MemAvailable), what the address-space limit leaves (ulimit -v, less
// what the process maps already) and what the process's control groups
// leave (a systemd unit's MemoryMax=: cgroupMemoryLeftKiB); 0 when none
// can be told.
func availableMemoryKiB() uint64 {
	var avail uint64
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "MemAvailable:"); ok {
				if n, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64); err == nil {
					avail = n
				}
			}
		}
	}
	var lim unix.Rlimit
	if unix.Getrlimit(unix.RLIMIT_AS, &lim) == nil && lim.Cur != unix.RLIM_INFINITY {
		if left := addressSpaceLeftKiB(); avail == 0 || left < avail {
			avail = max(left, 1)
		}
	}
	if self, err := os.ReadFile("/proc/self/cgroup"); err == nil {
		if left, ok := cgroupMemoryLeftKiB("/sys/fs/cgroup", self); ok && (avail == 0 || left < avail) {
			avail = left
		}
	}
	return avail
}

// addressSpaceLeftKiB is what a key derivation may take under an
// address-space limit (ulimit -v): the largest mapping the process can
// still make, less runtimeRoomMiB: the Go runtime maps its heap in aligned
// arenas of 64 MiB, reserving more than it keeps while it aligns one, and
// keeps metadata of its own for each; and the process's other goroutines
// and threads map memory meanwhile. (The derivation's memory is allocated
// twice, by prefault and then by argon2, but the second reuses the first,
// which prefault's collection freed.) The limit less the process's size
// (statm), which this replaced, left no such room: a 64 MiB key was tried
// with 70 MiB "left" and the runtime ended the process ("fatal error: out
// of memory", found by an exploratory test). The mapping is probed
// (PROT_NONE, never touched): the process's size moves with its threads
// and the runtime's reservations.
func addressSpaceLeftKiB() uint64 {
	fits := func(n uint64) bool {
		b, err := unix.Mmap(-1, 0, int(n), unix.PROT_NONE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE)
		if err != nil {
			return false
		}
		_ = unix.Munmap(b)
		return true
	}
	const unit = 1 << 20
	lo, hi := uint64(0), uint64(2*maxKDFMemoryKiB<<10+256<<20)/unit // in MiB: what fits, what may not
	for lo < hi {
		mid := (lo + hi + 1) / 2
		if fits(mid * unit) {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	if lo <= runtimeRoomMiB {
		return 0
	}
	return (lo - runtimeRoomMiB) << 10
}

// runtimeRoomMiB is the address space addressSpaceLeftKiB leaves to the
// Go runtime and the rest of the process. With 128 MiB, an 8 MiB key's
// derivation still ended the process now and then ("fatal error: out of
// memory" with 7.5 MB of heap in use, seen in CI under ulimit -v
// 1,750,000 KiB): what the others map between the probe and the
// derivation is not known, and a key refused with a message is better
// than a process ended.
const runtimeRoomMiB = 256

func cmpErr(first, err error) error {
	if first != nil {
		return first
	}
	return err
}

// prefault makes the next allocation of n bytes land on memory that is
// already mapped. argon2 touches each page of its fresh memory twice (a
// read, then a write that replaces the shared zero page), and on a virtual
// machine with several CPUs the second fault flushes the other CPUs' TLBs:
// for 64 MiB that cost 0.3 s of system time per command, measured here,
// against 0.03 s with this. A first write to a fresh page is cheap; the
// freed pages are then what the heap hands to argon2.
//
// With hugePages the memory is first advised MADV_HUGEPAGE: on a VM where
// even those first writes were dear (16,384 faults, 0.17 s), 32 faults of
// 2 MiB took 0.01 s. deriveKey undoes the advice once the KDF's memory is
// collected (MADV_NOHUGEPAGE), so that the heap memory the rest of the run
// reuses there does not stay eligible: the kernel's khugepaged would
// otherwise refill, as huge pages, what the runtime hands back, and peak
// memory would grow (docs/design.md, "The KDF"). Both are only advice;
// errors leave ordinary pages.
func prefault(n int, hugePages bool) hugeAdvice {
	b := make([]byte, n)
	var a hugeAdvice
	if hugePages {
		a = adviseHugePages(b)
	}
	for i := 0; i < len(b); i += 4096 {
		b[i] = 1
	}
	runtime.KeepAlive(b)
	runtime.GC()
	return a
}

// hugeAdvice is a range of addresses advised MADV_HUGEPAGE (none if size
// is 0). It is an address, not a pointer: the memory is freed and the heap
// may hold anything there by now; the advice is about the range.
type hugeAdvice struct{ start, size uintptr }

// undo advises the range MADV_NOHUGEPAGE.
func (a hugeAdvice) undo() {
	if a.size > 0 {
		_, _, _ = unix.Syscall(unix.SYS_MADVISE, a.start, a.size, unix.MADV_NOHUGEPAGE)
	}
}

// adviseHugePages advises the whole 2 MiB pages inside b MADV_HUGEPAGE and
// returns their range (none if b holds no whole huge page). An error leaves
// ordinary pages: the advice is only advice.
func adviseHugePages(b []byte) hugeAdvice {
	const huge = 2 << 20
	p := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	start := (p + huge - 1) &^ (huge - 1)
	end := (p + uintptr(len(b))) &^ (huge - 1)
	if end <= start {
		return hugeAdvice{}
	}
	off, n := int(start-p), int(end-start)
	_ = unix.Madvise(b[off:off+n], unix.MADV_HUGEPAGE)
	return hugeAdvice{start: start, size: end - start}
}

// KeyInfo describes one key file, as its unencrypted fields say (no
// password is needed to list them).
type KeyInfo struct {
	Name     string // the file's name: hex(BLAKE3(bytes))
	Created  time.Time
	Host     string
	Username string
	KDF      KDFParams
	// Err is set when the file cannot be read or is not a valid key file;
	// the other fields are then empty.
	Err error
}

// ListKeys reads every key file's unencrypted fields, in name order. A file
// that cannot be read, is too large, does not match its name or does not
// parse is listed with Err set rather than failing the listing.
func ListKeys(ctx context.Context, be Backend) ([]KeyInfo, error) {
	var keys []KeyInfo
	err := be.List(ctx, KeyFile, func(name string, size int64) error {
		k := KeyInfo{Name: name}
		if size > maxKeyFileSize {
			k.Err = fmt.Errorf("%d bytes exceed the key file size limit %d", size, maxKeyFileSize)
		}
		keys = append(keys, k)
		return nil
	})
	if err != nil {
		return nil, err
	}
	for i := range keys {
		k := &keys[i]
		if k.Err != nil {
			continue
		}
		data, err := be.Load(ctx, Handle{Type: KeyFile, Name: k.Name}, 0, 0)
		switch {
		case err != nil:
			k.Err = err
		case Hash(data).String() != k.Name:
			k.Err = errors.New("content does not match its name")
		default:
			kf, err := parseKeyFile(data)
			if err != nil {
				k.Err = err
				continue
			}
			k.Created, k.Host, k.Username, k.KDF = kf.Created, kf.Host, kf.Username, kf.Params
		}
	}
	slices.SortFunc(keys, func(a, b KeyInfo) int { return strings.Compare(a.Name, b.Name) })
	return keys, nil
}

// RemoveKey deletes the key file name. The caller makes sure that a key the
// repository can be opened with remains (snap key remove refuses the key
// in use; snap key passwd removes it only once its replacement is stored).
func (r *Repository) RemoveKey(ctx context.Context, name string) error {
	return r.be.Remove(ctx, Handle{Type: KeyFile, Name: name})
}

// KeysOpenedBy returns the names of the readable key files that password
// opens (snap key add and passwd refuse a new password that already opens
// one: two key files for one password would let passwd leave one behind).
// It derives the password's key once per key file.
func (r *Repository) KeysOpenedBy(ctx context.Context, password string) ([]string, error) {
	keys, err := ListKeys(ctx, r.be)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, k := range keys {
		if k.Err != nil {
			continue
		}
		data, err := r.be.Load(ctx, Handle{Type: KeyFile, Name: k.Name}, 0, 0)
		if errors.Is(err, ErrNotFound) {
			continue // removed since it was listed
		}
		if err != nil {
			return nil, err
		}
		kf, err := parseKeyFile(data)
		if err != nil {
			continue // changed since it was listed: ListKeys's checks failed it
		}
		if lim := r.opts.KDFMemoryKiB; lim > 0 && uint64(kf.Params.MemoryKiB) > lim {
			continue // deriving it would end the process (findKey)
		}
		if _, err := kf.unwrap(password, r.opts.HugePages); err == nil {
			names = append(names, k.Name)
		}
	}
	return names, nil
}

// CheckKey reports an error when the key file the repository was opened
// with is gone: another admin removed it since. Commands that change the
// keys check this once they hold the exclusive lock, so that two admins
// removing each other's keys at the same moment cannot both succeed.
func (r *Repository) CheckKey(ctx context.Context) error {
	_, err := r.be.Stat(ctx, Handle{Type: KeyFile, Name: r.keyName})
	if errors.Is(err, ErrNotFound) {
		return fmt.Errorf("the key file this password opened (%s) was removed since this command started: the password no longer opens the repository", ShortName(r.keyName))
	}
	return err
}

// ShortName is the first 8 characters of a file name, the form messages
// and listings use (the whole name when it is shorter: a stray file in
// keys/ may have any name).
func ShortName(name string) string { return name[:min(8, len(name))] }

// resticKey reports whether a key file that is not snap's (its name is not
// the hash of its bytes) is restic's: restic lays out a repository as snap
// does (config, keys/, data/, index/, snapshots/, 64-hex names), and
// "corrupt key file" would send an admin who pointed snap at it to restore
// keys/ from a copy.
func resticKey(data []byte) bool {
	var k struct {
		KDF  string `json:"kdf"`
		Salt []byte `json:"salt"`
	}
	return json.Unmarshal(data, &k) == nil && k.KDF == "scrypt" && len(k.Salt) > 0
}

// repositoryBelow says where a repository seems to be, given the name of
// an object below the location ("backups/keys/<id>": under the prefix
// "backups/"), or "".
func repositoryBelow(name string) string {
	for _, dir := range []string{"keys/", "data/", "index/", "snapshots/", "locks/"} {
		if i := strings.Index(name, "/"+dir); i > 0 {
			return fmt.Sprintf(", which looks like a repository under the prefix %s/", name[:i])
		}
	}
	if p, ok := strings.CutSuffix(name, "/config"); ok && p != "" {
		return fmt.Sprintf(", which looks like a repository under the prefix %s/", p)
	}
	return ""
}
