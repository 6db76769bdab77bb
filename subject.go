package lethe

import (
	"context"
	"regexp"
	"time"
)

// DefaultTenant is the tenant of subjects created without one.
const DefaultTenant = "default"

var (
	tenantRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)
	kindRE   = regexp.MustCompile(`^[a-z][a-z0-9_]{0,62}$`)
	fieldRE  = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_.-]{0,63}$`)
)

// ValidTenant returns EINVALID unless name is a tenant name: 1 to 63 of
// lower-case letters, digits, '_' and '-', starting with a letter or digit.
func ValidTenant(name string) error {
	if !tenantRE.MatchString(name) {
		return Errorf(EINVALID, "tenant must be 1 to 63 characters of a-z, 0-9, '_' and '-'")
	}
	return nil
}

// The built-in identifier kinds. Apps may use any other kind name, such as
// shop_customer_id; see ValidIdentifierKind.
const (
	KindEmail = "email"
	KindPhone = "phone"
	KindLogin = "login"
)

// ValidIdentifierKind returns EINVALID unless kind is 1 to 63 of a-z, 0-9
// and '_', starting with a letter.
func ValidIdentifierKind(kind string) error {
	if !kindRE.MatchString(kind) {
		return Errorf(EINVALID, "identifier kind must be 1 to 63 characters of a-z, 0-9 and '_', starting with a letter")
	}
	return nil
}

// ValidFieldName returns EINVALID unless name can name a top-level profile
// field or a token's field: 1 to 64 of A-Z, a-z, 0-9, '_', '.' and '-',
// starting with a letter. Field names go into audit events, which must hold
// no personal data, so a name cannot be an email address or free text; the
// message does not repeat the name.
func ValidFieldName(name string) error {
	if !fieldRE.MatchString(name) {
		return Errorf(EINVALID, "a field name must be 1 to 64 of A-Z, a-z, 0-9, '_', '.' and '-', starting with a letter")
	}
	return nil
}

// Subject is a data subject: a person whose data Lethe holds. Its ID is
// random and carries no information about the person.
type Subject struct {
	ID        string // "sub_…"
	Tenant    string
	CreatedAt time.Time
}

// SealedIdentifier is an identifier as stored: a blind index to find it
// without decrypting, and the normalised value sealed under the subject's
// data key.
type SealedIdentifier struct {
	Tenant    string
	SubjectID string
	Kind      string
	Index     []byte // HMAC of the normalised value under the kind's index key
	Sealed    []byte // the normalised value, sealed under the subject key
}

// SealedVersion is one version of a subject's profile. Versions count up
// from 1 (the profile given at creation); the highest is the current one.
// The sealed payload holds the profile and the reason for the change, both
// of which may be personal data; who and when are kept in the clear.
type SealedVersion struct {
	Tenant    string
	SubjectID string
	Version   int
	Sealed    []byte
	Principal string // ID of the API key that made the change
	CreatedAt time.Time
	// SubjectCreatedAt is when the subject was created. LatestVersion sets
	// it, so that reading a subject costs one query; elsewhere it is zero.
	SubjectCreatedAt time.Time
}

// SealedToken maps an opaque token to a subject and a sealed value.
type SealedToken struct {
	Token     string // the token as apps store it
	Tenant    string
	SubjectID string
	Field     string // the profile field or identifier kind the value belongs to; may be ""
	Sealed    []byte // the value, sealed under the subject key
	CreatedAt time.Time
}

// ErrStaleVersion is the conflict AppendVersion reports when another change
// stored the version first. Callers re-read and retry; compare with
// errors.Is.
var ErrStaleVersion = &Error{Code: ECONFLICT, Message: "the subject was changed by another request meanwhile; retry"}

// VaultStore persists subjects, their identifiers, profile versions and
// tokens in the data store. Everything personal in it is sealed under the
// subject's data key, which lives in the KeyStore. Implementations are safe
// for concurrent use.
type VaultStore interface {
	// CreateSubject stores s with its identifiers and first profile version
	// in one transaction. ECONFLICT if one of the identifiers is already
	// held by another subject of the tenant (the message names the kind,
	// never the value).
	CreateSubject(ctx context.Context, s *Subject, ids []SealedIdentifier, first *SealedVersion) error
	// Subject returns the subject. ENOTFOUND if there is none.
	Subject(ctx context.Context, tenant, id string) (*Subject, error)
	// SubjectByIdentifier returns the ID of the subject holding the
	// identifier of kind with the given blind index. ENOTFOUND if none.
	SubjectByIdentifier(ctx context.Context, tenant, kind string, index []byte) (string, error)
	// Identifiers returns the subject's identifiers ordered by kind; none
	// for a subject that does not exist.
	Identifiers(ctx context.Context, tenant, subjectID string) ([]SealedIdentifier, error)
	// LatestVersion returns the subject's current profile version, with
	// SubjectCreatedAt set. ENOTFOUND if the subject does not exist.
	LatestVersion(ctx context.Context, tenant, subjectID string) (*SealedVersion, error)
	// Versions returns every profile version of the subject, oldest first;
	// none for a subject that does not exist.
	Versions(ctx context.Context, tenant, subjectID string) ([]SealedVersion, error)
	// AppendVersion stores v as the subject's new current version and, in
	// the same transaction, sets the identifiers in set (each replacing the
	// subject's identifier of the same kind, whose old value is then free
	// for other subjects) and removes the identifier kinds in remove.
	// ErrStaleVersion unless v.Version is exactly one more than the latest
	// stored version, so two concurrent changes cannot both win and none is
	// lost; ECONFLICT (another error than ErrStaleVersion) if another
	// subject holds one of the new identifiers; ENOTFOUND if the subject does
	// not exist. On any error nothing is changed.
	AppendVersion(ctx context.Context, v *SealedVersion, set []SealedIdentifier, remove []string) error
	// CreateTokens stores tokens. ECONFLICT if a token exists already;
	// ENOTFOUND if a token's subject does not exist.
	CreateTokens(ctx context.Context, tokens []SealedToken) error
	// Tokens returns the stored tokens among the given ones, in no
	// particular order; tokens not found are left out.
	Tokens(ctx context.Context, tenant string, tokens []string) ([]SealedToken, error)
	// DeleteSubject deletes the subject with its identifiers, versions and
	// tokens. Deleting a subject that does not exist is not an error.
	DeleteSubject(ctx context.Context, tenant, id string) error
	// DeleteTenant deletes every subject of the tenant with everything of
	// theirs, and returns how many subjects it deleted.
	DeleteTenant(ctx context.Context, tenant string) (int, error)
}

// WrappedKey is a data key encrypted ("wrapped") under a key-encryption key.
// KEKID names the wrapping key, so keys can be rewrapped on rotation: for a
// tenant key or a deployment secret, the master key (a KMS key ID); for a
// subject key, the version of its tenant's key ([TenantKEKID]).
type WrappedKey struct {
	Wrapped []byte
	KEKID   string
	// Version is the version of a tenant's key-encryption key (1 for the
	// first, one more for each rotation); 0 for any other key.
	Version   int
	CreatedAt time.Time
}

// Forgotten records an erased subject (or a whole tenant, with SubjectID
// ""): the ID and the time, nothing else.
type Forgotten struct {
	Tenant    string
	SubjectID string
	ErasedAt  time.Time
}

// KeyStore persists wrapped keys and the forget list in the key store, a
// database apart from the data store so that data backups never hold keys.
// Implementations are safe for concurrent use.
type KeyStore interface {
	// CreateTenantKey stores the tenant's first wrapped key-encryption key,
	// as version 1 (k.Version is ignored). ECONFLICT if the tenant has a
	// key, of any version; EGONE if the tenant was erased. Later versions
	// are added by a rotation (TenantKeyRotator.AddTenantKeyVersion).
	CreateTenantKey(ctx context.Context, tenant string, k *WrappedKey) error
	// TenantKey returns the tenant's current wrapped key, the highest
	// version stored, with Version set. ENOTFOUND if none was made; EGONE
	// if the tenant was erased.
	TenantKey(ctx context.Context, tenant string) (*WrappedKey, error)
	// TenantKeyVersion returns the given version of the tenant's wrapped
	// key, with Version set. ENOTFOUND if that version is not stored
	// (never made, or deleted after a rotation); EGONE if the tenant was
	// erased.
	TenantKeyVersion(ctx context.Context, tenant string, version int) (*WrappedKey, error)
	// CreateSubjectKey stores a subject's wrapped data key. k.KEKID must
	// name the version of the tenant's key that wrapped it ([TenantKEKID]),
	// and that version must be the tenant's current one, checked in the
	// transaction that stores the key: [ErrStaleTenantKey] (ECONFLICT) if
	// it is not (a rotation added a newer one) or the tenant has no key, so
	// that no subject key is ever stored under a version a rotation is
	// about to delete. EINVALID if k.KEKID names no version of the tenant's
	// key; ECONFLICT (another error than ErrStaleTenantKey) if the subject
	// has a key; EGONE if the subject or its tenant was erased.
	CreateSubjectKey(ctx context.Context, tenant, subjectID string, k *WrappedKey) error
	// SubjectKey returns a subject's wrapped data key; its KEKID names the
	// version of the tenant key that wrapped it ([ParseTenantKEKID]).
	// ENOTFOUND if there is none; EGONE if the subject or its tenant was
	// erased.
	SubjectKey(ctx context.Context, tenant, subjectID string) (*WrappedKey, error)
	// DestroySubjectKey deletes the subject's key and adds the subject to the
	// forget list, in one transaction. Destroying an erased subject's key
	// again is not an error and keeps the first erasure time.
	DestroySubjectKey(ctx context.Context, tenant, subjectID string, at time.Time) error
	// DestroyTenantKey deletes every version of the tenant's key and every
	// subject key of the tenant, and adds the tenant to the forget list, in
	// one transaction. Idempotent like DestroySubjectKey.
	DestroyTenantKey(ctx context.Context, tenant string, at time.Time) error
	// Forgotten returns the forget-list entry of the subject, or of its
	// tenant if the whole tenant was erased. ENOTFOUND if neither was.
	Forgotten(ctx context.Context, tenant, subjectID string) (*Forgotten, error)
	// ForgetList returns at most limit forget-list entries in the order
	// (ErasedAt, Tenant, SubjectID), starting strictly after the entry
	// after; the zero Forgotten starts at the beginning. Passing the last
	// entry of one page as after gives the next page, with no entry twice.
	ForgetList(ctx context.Context, after Forgotten, limit int) ([]Forgotten, error)
	// Secret returns the deployment secret stored under name (such as the
	// wrapped blind-index root key). ENOTFOUND if there is none.
	Secret(ctx context.Context, name string) (*WrappedKey, error)
	// CreateSecret stores a deployment secret. ECONFLICT if name exists, so
	// that of two instances starting at once, one secret wins and both use it.
	CreateSecret(ctx context.Context, name string, k *WrappedKey) error
}
