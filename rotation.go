package lethe

import "context"

// The kinds of key a KeyRewrapper lists: the keys the master key wraps
// directly. They are also the order in which it lists them.
const (
	StaleSecret    = "secret" // a deployment secret, named by its name
	StaleTenantKey = "tenant" // a tenant's key-encryption key, named by its tenant
)

// StaleKey is a key that the master key wraps directly (a deployment secret
// or a tenant's key-encryption key) as it is stored, wrapped under a master
// key other than the current one. Wrapped and KEKID are the stored bytes
// and key ID: RewrapKey replaces them only if they are still stored, so
// that a key changed meanwhile is never overwritten with a stale copy.
type StaleKey struct {
	Kind    string // StaleSecret or StaleTenantKey
	Name    string // the secret's name or the tenant
	Wrapped []byte
	KEKID   string
}

// KeyRewrapper is an optional capability of a KeyStore, found by type
// assertion: it lets the master key be rotated while the store is in use,
// by finding the keys still wrapped under an older master key and moving
// them, one compare-and-swap each, to the current one. Subject keys are
// wrapped by their tenant's key, not by the master key, so a rotation never
// touches them. Implementations are safe for concurrent use, alongside
// every KeyStore method and other rewrappers.
type KeyRewrapper interface {
	// CountStaleWrappedKeys returns how many deployment secrets and tenant
	// keys are wrapped under another key than currentKEK. Any error is
	// EINTERNAL.
	CountStaleWrappedKeys(ctx context.Context, currentKEK string) (int, error)
	// StaleWrappedKeys returns at most limit deployment secrets and tenant
	// keys wrapped under another key than currentKEK (none if limit is not
	// positive), ordered by Kind then Name (byte by byte), strictly after
	// the key after; the zero StaleKey starts at the beginning. Passing the
	// last key of one page as after gives the next page, so a key that
	// cannot be rewrapped is listed once per pass, not on every page. Only
	// after's Kind and Name are read. Any error is EINTERNAL.
	StaleWrappedKeys(ctx context.Context, currentKEK string, after StaleKey, limit int) ([]StaleKey, error)
	// RewrapKey replaces the stored wrapping of k with newWrapped under
	// newKEK, if and only if the key is still stored with k's Wrapped and
	// KEKID: ECONFLICT if either changed (another rotation rewrapped it);
	// ENOTFOUND if the key is no longer stored (its tenant was erased);
	// EINVALID if k.Kind is neither StaleSecret nor StaleTenantKey. Any
	// other error is EINTERNAL. The key's CreatedAt is kept: it says when
	// the key was made, not when it was last wrapped. A rewrap never stores
	// a key that is not stored already, so it cannot bring an erased
	// tenant's key back.
	RewrapKey(ctx context.Context, k StaleKey, newWrapped []byte, newKEK string) error
}
