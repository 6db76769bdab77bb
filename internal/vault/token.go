package vault

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base32"
	"encoding/base64"
	"strings"
)

// Tokens stand for a subject's value in an app's own database. A token is
// the subject's ID sealed under the tenant's token key, so that Lethe can
// tell from the token alone whose it is — and answer "gone" once that
// subject is erased, even though the token's row was deleted with the
// subject — while nobody without the key can link two tokens to one person.
//
//	tok_  base64url( Seal(tokenKey, subjectID, AD("token-ref", tenant)) )    random nonce
//	tokd_ base64url( same format, nonce = HMAC(nonceKey, subject, field, value)[:12] )
//
// A deterministic token uses a synthetic nonce derived from everything it
// stands for (the SIV construction): the same value of the same field of the
// same subject always gives the same token, so an app can join its tables on
// it; a different input gives, but for an HMAC collision, a different nonce.
// Since the sealed plaintext (the subject ID) is among the nonce's inputs,
// two different plaintexts never share a nonce, which is what GCM needs.
// Deliberately, equal values of different subjects give different tokens:
// joining two people's records because they share a city would link them.
const (
	randomTokenPrefix = "tok_"
	detTokenPrefix    = "tokd_"
	subjectPrefix     = "sub_"
	subjectIDBytes    = 16
	subjectIDLen      = len(subjectPrefix) + 26           // 16 bytes in base32 without padding
	tokenBlobBytes    = sealedV1Overhead + subjectIDBytes // 45
	tokenChars        = 60                                // 45 bytes in base64url without padding
	tokenRefPurpose   = "token-ref"                       // AD purpose of the sealed subject ID
	tokenNonceDomain  = "token-nonce"                     // HMAC input domain of synthetic nonces
)

var subjectEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// TokenKeys are a tenant's keys for tokens, derived from the deployment's
// token root key.
type TokenKeys struct {
	seal   Key
	nonce  Key
	opener Opener // under seal: a tenant's token key is long-lived, so its cipher is kept
}

// NewTokenKeys derives the token keys of a tenant from the root key.
func NewTokenKeys(root *Key, tenant string) TokenKeys {
	k := TokenKeys{seal: DeriveKey(root, "token", tenant, ""), nonce: DeriveKey(root, "token-nonce", tenant, "")}
	k.opener = NewOpener(&k.seal)
	return k
}

// NewSubjectID returns a random subject ID: "sub_" and 16 random bytes in
// lower-case base32 without padding (26 characters).
func NewSubjectID() string {
	k := NewKey() // 32 random bytes; the first 16 are the ID
	return subjectPrefix + subjectEncoding.EncodeToString(k[:subjectIDBytes])
}

// subjectIDBytesOf decodes a subject ID made by NewSubjectID.
func subjectIDBytesOf(id string) ([]byte, bool) {
	if len(id) != subjectIDLen || !strings.HasPrefix(id, subjectPrefix) {
		return nil, false
	}
	b, err := subjectEncoding.DecodeString(id[len(subjectPrefix):])
	if err != nil || len(b) != subjectIDBytes {
		return nil, false
	}
	return b, true
}

// RandomToken returns a new token for the subject: each call gives another
// token. ok is false if subjectID is not a subject ID.
func (k *TokenKeys) RandomToken(tenant, subjectID string) (token string, ok bool) {
	raw, ok := subjectIDBytesOf(subjectID)
	if !ok {
		return "", false
	}
	return randomTokenPrefix + base64.RawURLEncoding.EncodeToString(Seal(&k.seal, raw, AD(tokenRefPurpose, tenant))), true
}

// DeterministicToken returns the one token for the normalised value of a
// field of a subject. ok is false if subjectID is not a subject ID.
func (k *TokenKeys) DeterministicToken(tenant, subjectID, field, normalized string) (token string, ok bool) {
	raw, ok := subjectIDBytesOf(subjectID)
	if !ok {
		return "", false
	}
	mac := hmac.New(sha256.New, k.nonce[:])
	mac.Write(AD(tokenNonceDomain, tenant, subjectID, field, normalized))
	var sum [sha256.Size]byte
	nonce := mac.Sum(sum[:0])[:nonceSize]
	block, err := aes.NewCipher(k.seal[:])
	if err != nil {
		panic("vault: aes.NewCipher: " + err.Error()) // unreachable: the key is 32 bytes
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		panic("vault: cipher.NewGCM: " + err.Error()) // unreachable: block is AES
	}
	blob := make([]byte, 0, tokenBlobBytes)
	blob = append(blob, sealV1)
	blob = append(blob, nonce...)
	blob = gcm.Seal(blob, nonce, raw, AD(tokenRefPurpose, tenant))
	return detTokenPrefix + base64.RawURLEncoding.EncodeToString(blob), true
}

// SubjectOf returns the subject a token of this tenant stands for. ok is
// false for anything that is not a token made under these keys for this
// tenant: a malformed string, another tenant's token, a forgery.
func (k *TokenKeys) SubjectOf(tenant, token string) (subjectID string, deterministic bool, ok bool) {
	blob, deterministic, ok := tokenBlob(token)
	if !ok {
		return "", false, false
	}
	raw, err := k.opener.Open(blob, AD(tokenRefPurpose, tenant))
	if err != nil || len(raw) != subjectIDBytes {
		return "", false, false
	}
	return subjectPrefix + subjectEncoding.EncodeToString(raw), deterministic, true
}

// tokenBlob decodes the sealed subject ID a token carries, without opening
// it. ok is false for a string that is not shaped like a token; a string
// shaped like one may still be a forgery or another tenant's token.
func tokenBlob(token string) (blob []byte, deterministic bool, ok bool) {
	var rest string
	switch {
	case strings.HasPrefix(token, detTokenPrefix):
		rest, deterministic = token[len(detTokenPrefix):], true
	case strings.HasPrefix(token, randomTokenPrefix):
		rest = token[len(randomTokenPrefix):]
	default:
		return nil, false, false
	}
	if len(rest) != tokenChars {
		return nil, false, false
	}
	blob, err := base64.RawURLEncoding.DecodeString(rest)
	if err != nil || len(blob) != tokenBlobBytes {
		return nil, false, false
	}
	return blob, deterministic, true
}
