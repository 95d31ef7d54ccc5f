package chunk

import (
	"github.com/zeebo/blake3"
)

// KeySize is the length of the ID key.
const KeySize = 32

// Hasher computes keyed BLAKE3-256 content IDs. A Hasher is not safe for
// concurrent use: give each goroutine its own (they are cheap to clone).
type Hasher struct {
	h *blake3.Hasher
}

// NewHasher returns a hasher for the given 32-byte key.
func NewHasher(key [KeySize]byte) *Hasher {
	h, err := blake3.NewKeyed(key[:])
	if err != nil {
		// Only reachable with a key of the wrong length, which the array type rules out.
		panic(err)
	}
	return &Hasher{h: h}
}

// Clone returns an independent hasher with the same key.
func (h *Hasher) Clone() *Hasher { return &Hasher{h: h.h.Clone()} }

// Sum returns the ID of data.
func (h *Hasher) Sum(data []byte) [32]byte {
	h.h.Reset()
	_, _ = h.h.Write(data)
	var id [32]byte
	h.h.Sum(id[:0])
	return id
}
