package vault

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"io"
)

// DeriveKey derives a subkey of root for one purpose, tenant and kind with
// HKDF-SHA256 (RFC 5869): no salt, info = AD(purpose, tenant, kind), 32
// bytes. The vault uses it to turn the deployment's blind-index root key
// into one index key per tenant and identifier kind, and the token key into
// one key per tenant and field, so that indexes and tokens cannot be
// compared across tenants or kinds. It does not fail and is safe for
// concurrent use.
func DeriveKey(root *Key, purpose, tenant, kind string) Key {
	b, err := hkdf.Key(sha256.New, root[:], nil, string(AD(purpose, tenant, kind)), len(Key{}))
	if err != nil {
		panic("vault: hkdf: " + err.Error()) // unreachable: 32 bytes is far below the HKDF limit
	}
	return Key(b)
}

// BlindIndex returns HMAC-SHA256 of normalized under k, 32 bytes: the value
// the data store indexes so an identifier can be found without decrypting
// it. Pass a value from Normalize and a key from DeriveKey for the tenant and
// kind; the same normalised value under the same key always gives the same
// index. It does not fail and is safe for concurrent use.
func BlindIndex(k *Key, normalized string) []byte {
	mac := hmac.New(sha256.New, k[:])
	_, _ = io.WriteString(mac, normalized)
	return mac.Sum(make([]byte, 0, sha256.Size))
}
