package vault

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"strings"
)

// Token shapes: a prefix, then base64url without padding of 24 bytes (32
// characters). The prefix tells random tokens from deterministic ones.
const (
	randomTokenPrefix = "tok_"
	detTokenPrefix    = "tokd_"
	tokenBytes        = 24
	tokenChars        = 32 // base64.RawURLEncoding.EncodedLen(tokenBytes)
)

// RandomToken returns a new random token, "tok_" and 24 random bytes in
// base64url without padding. It carries no information about the value it
// stands for. It is safe for concurrent use.
func RandomToken() string {
	var b [tokenBytes]byte
	_, _ = rand.Read(b[:]) // never fails; see NewKey
	return randomTokenPrefix + base64.RawURLEncoding.EncodeToString(b[:])
}

// DeterministicToken returns the token for a normalised value of a field
// under k: "tokd_" and the first 24 bytes of HMAC-SHA256(k, AD(field,
// normalized)) in base64url without padding. The same value of the same
// field under the same key always gives the same token, so apps can join on
// tokens; k should come from DeriveKey for the tenant and field, so that
// tokens differ across tenants. It does not fail and is safe for concurrent
// use.
func DeterministicToken(k *Key, field, normalized string) string {
	mac := hmac.New(sha256.New, k[:])
	mac.Write(AD(field, normalized))
	var sum [sha256.Size]byte
	return detTokenPrefix + base64.RawURLEncoding.EncodeToString(mac.Sum(sum[:0])[:tokenBytes])
}

// IsToken reports whether s has the shape of a token made by RandomToken or
// DeterministicToken: the prefix, then exactly 32 characters of the base64url
// alphabet. It says nothing about whether the token exists.
func IsToken(s string) bool {
	var rest string
	switch {
	case strings.HasPrefix(s, detTokenPrefix):
		rest = s[len(detTokenPrefix):]
	case strings.HasPrefix(s, randomTokenPrefix):
		rest = s[len(randomTokenPrefix):]
	default:
		return false
	}
	if len(rest) != tokenChars {
		return false
	}
	for i := 0; i < len(rest); i++ {
		c := rest[i]
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}
