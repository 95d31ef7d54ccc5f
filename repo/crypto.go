package repo

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
)

// Sizes of the encryption format: every encrypted unit is
// nonce (12 bytes) ‖ AES-256-GCM ciphertext ‖ tag (16 bytes).
const (
	nonceSize = 12
	tagSize   = 16
	// Overhead is what encryption adds to a plaintext.
	Overhead = nonceSize + tagSize
)

// MasterKey is the repository's secret: EncKey encrypts every blob and
// object, IDKey keys the BLAKE3 content IDs. It is stored only wrapped in
// key files.
type MasterKey struct {
	EncKey [32]byte `json:"encrypt"`
	IDKey  [32]byte `json:"id"`
}

// NewMasterKey returns fresh random keys.
func NewMasterKey() (*MasterKey, error) {
	k := &MasterKey{}
	if _, err := rand.Read(k.EncKey[:]); err != nil {
		return nil, err
	}
	if _, err := rand.Read(k.IDKey[:]); err != nil {
		return nil, err
	}
	return k, nil
}

// sealer encrypts and decrypts with one AES-256-GCM key. It is safe for
// concurrent use (cipher.AEAD is stateless).
type sealer struct {
	aead cipher.AEAD
}

func newSealer(key [32]byte) (*sealer, error) {
	block, err := aes.NewCipher(key[:])
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &sealer{aead: aead}, nil
}

// seal appends nonce ‖ ciphertext ‖ tag of plaintext to dst. Nonces are
// random: 96 bits keep the collision probability negligible for the 2^32
// units one key may encrypt.
func (s *sealer) seal(dst, plaintext []byte) []byte {
	var nonce [nonceSize]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		// crypto/rand never fails on Linux; a broken RNG must not produce data.
		panic(fmt.Sprintf("crypto/rand: %v", err))
	}
	return s.sealWith(dst, nonce, plaintext)
}

// sealWith is seal with a nonce the caller chose; it must never be used
// for two different plaintexts (SaveObjectOnce derives it from the
// plaintext).
func (s *sealer) sealWith(dst []byte, nonce [nonceSize]byte, plaintext []byte) []byte {
	dst = append(dst, nonce[:]...)
	return s.aead.Seal(dst, nonce[:], plaintext, nil)
}

var errAuth = errors.New("authentication failed (wrong key or modified data)")

// open decrypts a unit produced by seal and appends the plaintext to dst.
func (s *sealer) open(dst, unit []byte) ([]byte, error) {
	if len(unit) < Overhead {
		return nil, fmt.Errorf("ciphertext of %d bytes is shorter than the %d bytes of overhead", len(unit), Overhead)
	}
	out, err := s.aead.Open(dst, unit[:nonceSize], unit[nonceSize:], nil)
	if err != nil {
		return nil, errAuth
	}
	return out, nil
}
