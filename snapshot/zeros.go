package snapshot

import (
	"bytes"
	"sync"
)

// Chunks of zeros, the bulk of a sparse file: the archiver knows their
// IDs without hashing them (archiver.zeroID), the restorer writes them as
// holes and loads each once (Restorer.zeroBlobs).

var zeros [64 << 10]byte

func isZero(b []byte) bool {
	for len(b) > 0 {
		n := min(len(b), len(zeros))
		if !bytes.Equal(b[:n], zeros[:n]) {
			return false
		}
		b = b[n:]
	}
	return true
}

// zeroCache is a small map shared by goroutines, of what is known of the
// chunks of zeros met: by length (their IDs) or by ID (their lengths).
// Nearly all such chunks have the minimum chunk size (a chunker's hash of
// zeros is zero, so it cuts as soon as it may), so a few entries serve;
// when full it starts again.
type zeroCache[K comparable, V any] struct {
	mu sync.Mutex
	m  map[K]V
}

// maxZeroCache bounds a zeroCache.
const maxZeroCache = 64

func (c *zeroCache[K, V]) get(k K) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.m[k]
	return v, ok
}

func (c *zeroCache[K, V]) put(k K, v V) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= maxZeroCache {
		c.m = make(map[K]V)
	}
	c.m[k] = v
}
