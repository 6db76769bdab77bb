package lethe

import (
	"context"
	"strconv"
	"strings"
)

// The kinds of key a KeyRewrapper lists: the keys the master key wraps
// directly. They are also the order in which it lists them.
const (
	StaleSecret    = "secret" // a deployment secret, named by its name
	StaleTenantKey = "tenant" // a version of a tenant's key-encryption key, named by its tenant and Version
)

// StaleKey is a key that the master key wraps directly (a deployment secret
// or a version of a tenant's key-encryption key) as it is stored, wrapped
// under a master key other than the current one. Wrapped and KEKID are the
// stored bytes and key ID: RewrapKey replaces them only if they are still
// stored, so that a key changed meanwhile is never overwritten with a stale
// copy.
type StaleKey struct {
	Kind    string // StaleSecret or StaleTenantKey
	Name    string // the secret's name or the tenant
	Version int    // the tenant key's version (1 and up); 0 for a secret
	Wrapped []byte
	KEKID   string
}

// KeyRewrapper is an optional capability of a KeyStore, found by type
// assertion: it lets the master key be rotated while the store is in use,
// by finding the keys still wrapped under an older master key and moving
// them, one compare-and-swap each, to the current one. Every stored version
// of a tenant's key is such a key. Subject keys are wrapped by their
// tenant's key, not by the master key, so a rotation never touches them.
// Implementations are safe for concurrent use, alongside every KeyStore
// method and other rewrappers.
type KeyRewrapper interface {
	// CountStaleWrappedKeys returns how many deployment secrets and tenant
	// key versions are wrapped under another key than currentKEK. Any error
	// is EINTERNAL.
	CountStaleWrappedKeys(ctx context.Context, currentKEK string) (int, error)
	// StaleWrappedKeys returns at most limit deployment secrets and tenant
	// key versions wrapped under another key than currentKEK (none if
	// limit is not positive), ordered by Kind, then Name (byte by byte),
	// then Version, strictly after the key after; the zero StaleKey starts
	// at the beginning. Passing the last key of one page as after gives the
	// next page, so a key that cannot be rewrapped is listed once per pass,
	// not on every page. Only after's Kind, Name and Version are read. Any
	// error is EINTERNAL.
	StaleWrappedKeys(ctx context.Context, currentKEK string, after StaleKey, limit int) ([]StaleKey, error)
	// RewrapKey replaces the stored wrapping of k (for a tenant key, of its
	// version k.Version) with newWrapped under newKEK, if and only if the
	// key is still stored with k's Wrapped and KEKID: ECONFLICT if either
	// changed (another rotation rewrapped it); ENOTFOUND if the key is no
	// longer stored (its tenant was erased, or the version was deleted
	// after a tenant-key rotation); EINVALID if k.Kind is neither
	// StaleSecret nor StaleTenantKey. Any other error is EINTERNAL. The
	// key's CreatedAt is kept: it says when the key was made, not when it
	// was last wrapped. A rewrap never stores a key that is not stored
	// already, so it cannot bring an erased tenant's key back.
	RewrapKey(ctx context.Context, k StaleKey, newWrapped []byte, newKEK string) error
}

// ErrStaleTenantKey is the conflict a key store reports when a subject key
// would be stored wrapped under a version of its tenant's key that is not
// the current one: a rotation added a newer version, and will delete the
// older ones once no subject key uses them. Callers read the current
// version again, wrap under it and retry; compare with errors.Is.
var ErrStaleTenantKey = &Error{Code: ECONFLICT, Message: "the tenant's key was rotated meanwhile; retry"}

// TenantKEKID returns the KEKID of a subject key wrapped under the given
// version of tenant's key: "tenant:<tenant>:v<version>".
func TenantKEKID(tenant string, version int) string {
	return "tenant:" + tenant + ":v" + strconv.Itoa(version)
}

// TenantKEKIDs returns every KEKID that names the given version of
// tenant's key: TenantKEKID's form and, for version 1, also
// "tenant:<tenant>", the form subject keys were stored with before tenant
// keys had versions.
func TenantKEKIDs(tenant string, version int) []string {
	if version == 1 {
		return []string{TenantKEKID(tenant, 1), "tenant:" + tenant}
	}
	return []string{TenantKEKID(tenant, version)}
}

// maxTenantKeyVersion bounds the versions ParseTenantKEKID accepts, far
// above any number of rotations, so that a version always fits an int32
// column.
const maxTenantKeyVersion = 1<<31 - 1

// ParseTenantKEKID returns the tenant, and the version of its key, that a
// subject key's KEKID names: "tenant:<tenant>:v<version>", or
// "tenant:<tenant>", which names version 1 (the form from before tenant
// keys had versions). ok is false for anything else, including a version
// with leading zeros and a name that is not a valid tenant.
func ParseTenantKEKID(kekID string) (tenant string, version int, ok bool) {
	rest, found := strings.CutPrefix(kekID, "tenant:")
	if !found {
		return "", 0, false
	}
	tenant, v, versioned := strings.Cut(rest, ":")
	if ValidTenant(tenant) != nil {
		return "", 0, false
	}
	if !versioned {
		return tenant, 1, true
	}
	digits, found := strings.CutPrefix(v, "v")
	if !found || digits == "" || digits[0] == '0' || len(digits) > 10 {
		return "", 0, false
	}
	n, err := strconv.Atoi(digits)
	if err != nil || n < 1 || n > maxTenantKeyVersion || strconv.Itoa(n) != digits {
		return "", 0, false
	}
	return tenant, n, true
}

// StaleSubjectKey is a subject key as stored, wrapped under a version of
// its tenant's key other than the one a rotation moves keys to. Wrapped
// and KEKID are the stored bytes and key ID, which RewrapSubjectKeys
// compares before replacing them.
type StaleSubjectKey struct {
	SubjectID string
	Wrapped   []byte
	KEKID     string
}

// SubjectKeyRewrap is one compare-and-swap of RewrapSubjectKeys: the key as
// it was listed, and the same data key wrapped under the new version.
type SubjectKeyRewrap struct {
	Old        StaleSubjectKey
	NewWrapped []byte
}

// TenantKeyRotator is an optional capability of a KeyStore, found by type
// assertion: it lets a tenant's key-encryption key be rotated while the
// store is in use. A rotation adds a new version of the tenant's key
// (AddTenantKeyVersion), which from then on is the only version new subject
// keys can be stored under (KeyStore.CreateSubjectKey refuses the others);
// moves every subject key wrapped under an older version to it, each a
// compare-and-swap (StaleSubjectKeys, RewrapSubjectKeys); and deletes the
// older versions, which the store allows only once no subject key uses
// them (DeleteTenantKeysBefore). The subject keys themselves, and so every
// sealed value, stay the same. Implementations are safe for concurrent
// use, alongside every KeyStore method and other rotators.
type TenantKeyRotator interface {
	// AddTenantKeyVersion stores k as version k.Version of the tenant's
	// key, which must be exactly one more than the current version: it
	// becomes the current one. ECONFLICT if it is not one more (another
	// rotation added that version first, or a newer one), so that of two
	// rotations racing, one wins; ENOTFOUND if the tenant has no key;
	// EGONE if the tenant was erased; EINVALID if k.Version is below 2.
	// Any other error is EINTERNAL.
	AddTenantKeyVersion(ctx context.Context, tenant string, k *WrappedKey) error
	// CountStaleSubjectKeys returns how many subject keys of the tenant are
	// wrapped under another version of its key than version. Any error is
	// EINTERNAL.
	CountStaleSubjectKeys(ctx context.Context, tenant string, version int) (int, error)
	// StaleSubjectKeys returns at most limit subject keys of the tenant
	// wrapped under another version of its key than version (none if limit
	// is not positive), ordered by subject ID byte by byte, strictly after
	// the subject ID after ("" starts at the beginning). Passing the last
	// ID of one page as after gives the next page. Any error is EINTERNAL.
	StaleSubjectKeys(ctx context.Context, tenant string, version int, after string, limit int) ([]StaleSubjectKey, error)
	// RewrapSubjectKeys stores, in one transaction, each rewrap's
	// NewWrapped as its subject's key wrapped under the given version of
	// the tenant's key (KEKID TenantKEKID(tenant, version)), each if and
	// only if the subject key is still stored with Old's Wrapped and
	// KEKID. It returns one result per rewrap, in order: nil if it was
	// replaced; ECONFLICT if the stored key changed (another rotation
	// rewrapped it); ENOTFOUND if the key is no longer stored (the subject
	// was erased). A rewrap never stores a key that is not stored already,
	// and the key's CreatedAt is kept.
	//
	// The whole call replaces nothing and fails with ErrStaleTenantKey if
	// version is not the tenant's current version, checked in the same
	// transaction, so that no key is moved to a version another rotation
	// is retiring; with EGONE if the tenant was erased, ENOTFOUND if it has
	// no key, EINVALID if a subject ID is empty or appears twice. Any
	// other error is EINTERNAL.
	RewrapSubjectKeys(ctx context.Context, tenant string, version int, rewraps []SubjectKeyRewrap) ([]error, error)
	// DeleteTenantKeysBefore deletes every version of the tenant's key older
	// than version, in one transaction and only if no subject key of the
	// tenant is wrapped under one of them, and returns how many versions it
	// deleted (0 if there were none). ECONFLICT, deleting nothing, if a
	// subject key still is; ENOTFOUND if version itself is not stored, so
	// that a wrong version cannot delete the one in use; EGONE if the
	// tenant was erased. Any other error is EINTERNAL.
	DeleteTenantKeysBefore(ctx context.Context, tenant string, version int) (int, error)
}
