package repo

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"
)

// FormatVersion is the repository format this code writes and reads.
const FormatVersion = 1

// DefaultPackSize is the size at which a pack is closed.
const DefaultPackSize = 16 << 20

// ChunkerParams are the content-defined chunking parameters of the
// repository (see package chunk, which interprets them).
type ChunkerParams struct {
	Polynomial  uint64 `json:"polynomial"`
	MinSize     uint   `json:"min_size"`
	MaxSize     uint   `json:"max_size"`
	AverageBits int    `json:"average_bits"`
}

// Config is the repository's config file, encrypted with the master key.
type Config struct {
	Version int           `json:"version"`
	ID      string        `json:"id"`
	Created time.Time     `json:"created"`
	Chunker ChunkerParams `json:"chunker"`
	// StreamChunker, when set, cuts streams (database dumps, command
	// output) with smaller chunks than files; nil means use Chunker.
	StreamChunker *ChunkerParams `json:"stream_chunker,omitempty"`
	PackSize      int            `json:"pack_size"`
}

func newConfig(ch ChunkerParams, now time.Time) (Config, error) {
	var id [32]byte
	if _, err := rand.Read(id[:]); err != nil {
		return Config{}, err
	}
	return Config{Version: FormatVersion, ID: hex.EncodeToString(id[:]), Created: now.UTC(), Chunker: ch, PackSize: DefaultPackSize}, nil
}

func parseConfig(plain []byte) (Config, error) {
	var c Config
	if err := json.Unmarshal(plain, &c); err != nil {
		return c, fmt.Errorf("decode config: %w", err)
	}
	if c.Version > FormatVersion {
		return c, &newerFormatError{c.Version}
	}
	if c.Version != FormatVersion {
		return c, fmt.Errorf("repository format version %d is not supported (this snap reads version %d)", c.Version, FormatVersion)
	}
	if _, err := ParseID(c.ID); err != nil {
		return c, fmt.Errorf("repository id: %w", err)
	}
	if c.PackSize < 1<<20 || c.PackSize > 1<<30 {
		return c, fmt.Errorf("pack size %d out of range", c.PackSize)
	}
	return c, nil
}

// newerFormatError is a repository written by a newer snap: not damage,
// which "config is corrupt" made it sound (and invited a repair; found by
// an exploratory test), but a binary to upgrade.
type newerFormatError struct{ version int }

func (e *newerFormatError) Error() string {
	return fmt.Sprintf("the repository has format version %d, written by a newer snap (this one reads version %d): upgrade snap on this host; the repository is untouched", e.version, FormatVersion)
}
