package vault

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Key is a 256-bit symmetric key: a data key, a key-encryption key or a root
// key for derivation. It formats as "[redacted]" with every fmt verb and
// refuses to marshal as text or JSON, so that a key put in a log line or an
// error by mistake does not leak.
type Key [32]byte

// NewKey returns a new random key from crypto/rand. It is safe for
// concurrent use.
func NewKey() Key {
	var k Key
	// crypto/rand.Read never fails: it crashes the program rather than
	// return short or predictable bytes.
	_, _ = rand.Read(k[:])
	return k
}

// Format implements fmt.Formatter: a key prints as "[redacted]" whatever the
// verb, so key bytes never reach a log or an error string.
func (k Key) Format(f fmt.State, verb rune) {
	_, _ = io.WriteString(f, "[redacted]")
}

// MarshalText always fails, so that encoding/json and log handlers never
// write key bytes.
func (k Key) MarshalText() ([]byte, error) {
	return nil, errors.New("vault: a key is never marshalled")
}

// ErrOpen is returned by Open and UnwrapKey for any ciphertext that does not
// open: the wrong key, the wrong associated data, a tampered or truncated
// value or an unknown format version. The causes are deliberately not told
// apart.
var ErrOpen = errors.New("vault: the ciphertext cannot be opened: wrong key, wrong context or tampered")

const (
	sealV1           = 0x01 // format v1: AES-256-GCM, 96-bit random nonce
	nonceSize        = 12
	tagSize          = 16
	sealedV1Overhead = 1 + nonceSize + tagSize
)

// Seal encrypts plaintext under k with AES-256-GCM and a random 96-bit
// nonce, binding ad (see AD) as associated data, and returns the sealed
// value in format v1:
//
//	0x01 || nonce (12 bytes) || ciphertext || tag (16 bytes)
//
// so it is len(plaintext)+29 bytes long. Random nonces are safe for up to
// 2^32 seals under one key (NIST SP 800-38D); a subject's data key seals far
// fewer values than that. Seal does not fail and is safe for concurrent use;
// k must not be nil.
func Seal(k *Key, plaintext, ad []byte) []byte {
	aead := newAEAD(k)
	out := make([]byte, 1, len(plaintext)+sealedV1Overhead)
	out[0] = sealV1
	// The random-nonce GCM writes nonce || ciphertext || tag after out[0].
	return aead.Seal(out, nil, plaintext, ad)
}

// Open decrypts a value sealed by Seal under k with the same associated data
// and returns a new slice holding the plaintext; sealed is not modified. It
// returns ErrOpen for any failure: wrong key, wrong ad, tampering,
// truncation, or a version byte it does not know. Open is safe for
// concurrent use; k must not be nil.
func Open(k *Key, sealed, ad []byte) ([]byte, error) {
	return NewOpener(k).Open(sealed, ad)
}

// An Opener opens values sealed under one key. Making one costs the AES key
// expansion and GCM setup that Open pays on every call, so a caller opening
// many values under the same key (a batch of tokens of one subject) makes
// one Opener and drops it when done. It is safe for concurrent use.
type Opener struct{ aead cipher.AEAD }

// NewOpener returns an Opener for k; k must not be nil.
func NewOpener(k *Key) Opener { return Opener{aead: newAEAD(k)} }

// Open is Open under the Opener's key.
func (o Opener) Open(sealed, ad []byte) ([]byte, error) {
	if len(sealed) < sealedV1Overhead || sealed[0] != sealV1 {
		return nil, ErrOpen
	}
	pt, err := o.aead.Open(make([]byte, 0, len(sealed)-sealedV1Overhead), nil, sealed[1:], ad)
	if err != nil {
		return nil, ErrOpen
	}
	return pt, nil
}

// newAEAD returns AES-256-GCM under k with random nonces prepended by Seal
// and read back by Open. Building it costs two small allocations (the AES
// key schedule and the GCM state), which is cheaper and simpler than a cache
// of ciphers that would hold expanded subject keys in memory after their
// subjects are erased. The random-nonce construction is also the one that
// FIPS 140-3 mode approves: this package never chooses a nonce itself.
func newAEAD(k *Key) cipher.AEAD {
	block, err := aes.NewCipher(k[:])
	if err != nil {
		panic("vault: aes.NewCipher: " + err.Error()) // unreachable: the key is 32 bytes
	}
	aead, err := cipher.NewGCMWithRandomNonce(block)
	if err != nil {
		panic("vault: cipher.NewGCMWithRandomNonce: " + err.Error()) // unreachable: block is AES
	}
	return aead
}

// adDomain starts every associated-data encoding; a new encoding gets a new
// domain, so no v1 encoding can equal a later one.
const adDomain = "lethe-ad-v1"

// AD returns the canonical associated-data encoding of parts: the domain
// "lethe-ad-v1", then each part as its length in bytes (unsigned varint, as
// encoding/binary.AppendUvarint writes it) followed by its bytes. Because
// every part is length-prefixed the encoding is unambiguous: ("ab", "c") and
// ("a", "bc") differ, as do () and (""). Callers use it like
//
//	AD("profile", tenant, subjectID, strconv.Itoa(version))
//	AD("identifier", tenant, subjectID, kind)
//	AD("subject-key", tenant, subjectID)
//	AD("tenant-key", tenant)
//
// with the first part naming what is sealed. AD is safe for concurrent use.
func AD(parts ...string) []byte {
	n := len(adDomain)
	for _, p := range parts {
		n += binary.MaxVarintLen64 + len(p)
	}
	b := make([]byte, 0, n)
	b = append(b, adDomain...)
	for _, p := range parts {
		b = binary.AppendUvarint(b, uint64(len(p)))
		b = append(b, p...)
	}
	return b
}

// WrapKey seals the data key dek under the key-encryption key kek, binding
// ad (such as AD("subject-key", tenant, subjectID)). The result is in the
// Seal format, 61 bytes long. WrapKey does not fail and is safe for
// concurrent use.
func WrapKey(kek *Key, dek Key, ad []byte) []byte {
	// dek escapes to the heap through the AEAD interface; clear that copy
	// so the data key does not linger in freed memory.
	d := dek
	defer clear(d[:])
	return Seal(kek, d[:], ad)
}

// UnwrapKey opens a key wrapped by WrapKey. It returns ErrOpen if wrapped
// does not open under kek with ad, or opens to anything but 32 bytes. It is
// safe for concurrent use.
func UnwrapKey(kek *Key, wrapped, ad []byte) (Key, error) {
	pt, err := Open(kek, wrapped, ad)
	if err != nil {
		return Key{}, err
	}
	defer clear(pt)
	if len(pt) != len(Key{}) {
		return Key{}, ErrOpen
	}
	return Key(pt), nil
}
