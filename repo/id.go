package repo

import (
	"encoding/hex"
	"fmt"

	"github.com/zeebo/blake3"
)

// ID names blobs (keyed BLAKE3-256 of their plaintext) and repository files
// (BLAKE3-256 of their stored bytes).
type ID [32]byte

// ParseID parses a 64-digit hex ID.
func ParseID(s string) (ID, error) {
	var id ID
	if len(s) != 2*len(id) {
		return id, fmt.Errorf("invalid ID %q: want %d hex digits", s, 2*len(id))
	}
	if _, err := hex.Decode(id[:], []byte(s)); err != nil {
		return id, fmt.Errorf("invalid ID %q: %w", s, err)
	}
	return id, nil
}

// String returns the ID as 64 hex digits.
func (id ID) String() string { return hex.EncodeToString(id[:]) }

// Short returns the first 8 hex digits, as shown to users.
func (id ID) Short() string { return hex.EncodeToString(id[:4]) }

// IsZero reports whether id is the zero ID, which names nothing.
func (id ID) IsZero() bool { return id == ID{} }

// MarshalText encodes the ID as hex, for JSON.
func (id ID) MarshalText() ([]byte, error) { return []byte(id.String()), nil }

// UnmarshalText decodes a hex ID.
func (id *ID) UnmarshalText(b []byte) error {
	v, err := ParseID(string(b))
	if err != nil {
		return err
	}
	*id = v
	return nil
}

// Hash returns the unkeyed BLAKE3-256 of data: the name of a repository file
// with these bytes. It lets anyone check a file's integrity without the key.
func Hash(data []byte) ID { return ID(blake3.Sum256(data)) }
