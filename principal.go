package lethe

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/base64"
	"strings"
	"time"
)

// Role is what a principal may do, as a named set of permissions.
type Role string

// The roles. docs/roles.md describes who each one is for; the permission
// matrix below is the one source of truth and a test keeps that page equal
// to it.
const (
	RoleAdmin   Role = "admin"   // operates Lethe: keys, configuration, metrics
	RoleDPO     Role = "dpo"     // the data-protection officer: requests, audit, consent
	RoleSupport Role = "support" // customer support: looks subjects up, masked reads
	RoleService Role = "service" // an application: stores and uses personal data for a purpose
	RoleAuditor Role = "auditor" // reads the audit trail and metrics, changes nothing
	// RoleRecipient is a third party that Lethe's data reaches (a processor,
	// another controller: a recipient in the sense of GDPR Art. 4(9), as
	// the data map's recipients are). It may only ask whether a subject or
	// a token is forgotten, so that it can erase its own copy (Art. 17(2),
	// Art. 19); it cannot read, create or change anything.
	RoleRecipient Role = "recipient"
)

// Roles lists every role in a stable order.
var Roles = []Role{RoleAdmin, RoleDPO, RoleSupport, RoleService, RoleAuditor, RoleRecipient}

// Valid reports whether r is one of Roles.
func (r Role) Valid() bool {
	for _, v := range Roles {
		if r == v {
			return true
		}
	}
	return false
}

// Permission names one thing a route does. Every API route declares exactly
// one; the empty permission is reserved for unauthenticated health probes.
type Permission string

// The permissions.
const (
	PermPublic     Permission = ""            // no credentials needed: health probes, and the self-service request routes (a one-time code sent to the person proves who they are)
	PermSelf       Permission = "self.read"   // read one's own principal and the API description
	PermKeysManage Permission = "keys.manage" // create, list and revoke API keys
	PermMetrics    Permission = "metrics.read"

	PermSubjectsWrite      Permission = "subjects.write"       // create subjects, rectify profiles and identifiers
	PermSubjectsRead       Permission = "subjects.read"        // read whole values
	PermSubjectsReadMasked Permission = "subjects.read_masked" // find subjects and read masked values
	PermSubjectsHistory    Permission = "subjects.history"     // read every prior version with who, when and why
	PermSubjectsErase      Permission = "subjects.erase"       // erase a subject (key destruction)
	PermTokensCreate       Permission = "tokens.create"        // turn a subject's value into a token
	PermTokensDetokenize   Permission = "tokens.detokenize"    // turn tokens back into values, for a purpose
	PermTenantsErase       Permission = "tenants.erase"        // erase a whole tenant (key destruction)
	PermAuditRead          Permission = "audit.read"           // read a subject's audit events with their proofs
	PermConsentWrite       Permission = "consent.write"        // record consent, withdrawal, restriction and objection
	PermConsentCheck       Permission = "consent.check"        // ask whether a subject may be processed for a purpose
	PermConsentRead        Permission = "consent.read"         // read a subject's consent history (the proof)
	PermRequestsCreate     Permission = "requests.create"      // record a data-subject request on a person's behalf
	PermRequestsRead       Permission = "requests.read"        // list and read data-subject requests and their progress
	PermRequestsManage     Permission = "requests.manage"      // approve, extend, reject and cancel requests
	PermForgottenCheck     Permission = "forgotten.check"      // ask whether a subject or a token is forgotten (erased); answers IDs and times, never data
)

// Permissions lists every permission that needs credentials, in a stable
// order.
var Permissions = []Permission{
	PermSelf, PermKeysManage, PermMetrics,
	PermSubjectsWrite, PermSubjectsRead, PermSubjectsReadMasked, PermSubjectsHistory, PermSubjectsErase,
	PermTokensCreate, PermTokensDetokenize, PermTenantsErase, PermAuditRead,
	PermConsentWrite, PermConsentCheck, PermConsentRead,
	PermRequestsCreate, PermRequestsRead, PermRequestsManage,
	PermForgottenCheck,
}

// rolePermissions is the permission matrix: least privilege, so a role has
// only what its job needs.
//
// PermForgottenCheck goes to the recipient, whose whole job it is, and to
// the two roles that hand subject IDs and tokens to third parties and
// answer for them: the service (an app checks an ID or token it holds, or
// got back from a partner, before using it) and the DPO (who must make
// sure recipients learn of each erasure, Art. 19). Neither learns anything
// new by it: a read of an erased subject answers 410 to them already.
// Admin, support and auditor do not get it: operating Lethe, answering
// people and auditing need no per-subject answers of this kind (the auditor
// proves erasures from the audit trail instead).
var rolePermissions = map[Role][]Permission{
	RoleAdmin:     {PermSelf, PermKeysManage, PermMetrics, PermTenantsErase},
	RoleDPO:       {PermSelf, PermSubjectsWrite, PermSubjectsRead, PermSubjectsReadMasked, PermSubjectsHistory, PermSubjectsErase, PermTokensDetokenize, PermTenantsErase, PermAuditRead, PermConsentWrite, PermConsentCheck, PermConsentRead, PermRequestsCreate, PermRequestsRead, PermRequestsManage, PermForgottenCheck},
	RoleSupport:   {PermSelf, PermSubjectsReadMasked, PermRequestsCreate, PermRequestsRead},
	RoleService:   {PermSelf, PermSubjectsWrite, PermSubjectsRead, PermSubjectsReadMasked, PermSubjectsErase, PermTokensCreate, PermTokensDetokenize, PermConsentWrite, PermConsentCheck, PermConsentRead, PermForgottenCheck},
	RoleAuditor:   {PermSelf, PermMetrics, PermAuditRead, PermRequestsRead},
	RoleRecipient: {PermSelf, PermForgottenCheck},
}

// Can reports whether role r holds permission p. Every role holds
// PermPublic; an unknown role holds nothing else.
func (r Role) Can(p Permission) bool {
	if p == PermPublic {
		return true
	}
	for _, q := range rolePermissions[r] {
		if q == p {
			return true
		}
	}
	return false
}

// APIKey is a principal that authenticates with a bearer secret. The secret
// itself is shown once, at creation, and never stored: only its SHA-256
// hash is. A 256-bit random secret needs no slow password hash.
type APIKey struct {
	ID        string     // public identifier, "key_…"; safe to log
	Name      string     // what the key is for, chosen by the admin
	Role      Role       // what the key may do
	Tenant    string     // "" for any tenant; else the only tenant the key may act in
	Hash      []byte     // SHA-256 of the secret
	CreatedAt time.Time  // when it was made
	ExpiresAt *time.Time // nil: never expires
	RevokedAt *time.Time // nil: not revoked
}

// Active reports whether k may authenticate at time now.
func (k *APIKey) Active(now time.Time) bool {
	if k.RevokedAt != nil && !now.Before(*k.RevokedAt) {
		return false
	}
	if k.ExpiresAt != nil && !now.Before(*k.ExpiresAt) {
		return false
	}
	return true
}

// APIKeyStore persists API keys in the data store. Implementations are safe
// for concurrent use.
type APIKeyStore interface {
	// CreateAPIKey stores k. ECONFLICT if its ID or hash already exists.
	CreateAPIKey(ctx context.Context, k *APIKey) error
	// APIKeyByHash returns the key whose secret hashes to hash, revoked
	// and expired keys included. ENOTFOUND if there is none.
	APIKeyByHash(ctx context.Context, hash []byte) (*APIKey, error)
	// APIKeys lists all keys, oldest first.
	APIKeys(ctx context.Context) ([]*APIKey, error)
	// RevokeAPIKey marks key id revoked at time at. ENOTFOUND if there is no
	// such key. Revoking a revoked key keeps its first revocation time.
	RevokeAPIKey(ctx context.Context, id string, at time.Time) error
}

// APIKeySecretPrefix starts every API key secret, so secret scanners and
// people recognise a leaked Lethe key.
const APIKeySecretPrefix = "lethe_"

// NewAPIKey makes a key with a fresh 256-bit random secret and returns it
// with the secret, which the caller shows once and then forgets. EINVALID
// for an unknown role, an empty name or an expiry not after now.
func NewAPIKey(name string, role Role, now time.Time, expiresAt *time.Time) (*APIKey, string, error) {
	if !role.Valid() {
		return nil, "", Errorf(EINVALID, "unknown role %q: use one of admin, dpo, support, service, auditor, recipient", role)
	}
	if err := validKeyName(name); err != nil {
		return nil, "", err
	}
	if expiresAt != nil && !expiresAt.After(now) {
		return nil, "", Errorf(EINVALID, "expiry must be in the future")
	}
	id := make([]byte, 10)
	secret := make([]byte, 32)
	rand.Read(id) // crypto/rand.Read never fails and always fills the buffer
	rand.Read(secret)
	s := APIKeySecretPrefix + base64.RawURLEncoding.EncodeToString(secret)
	k := &APIKey{
		ID:        "key_" + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(id)),
		Name:      name,
		Role:      role,
		Hash:      HashAPIKeySecret(s),
		CreatedAt: now.UTC(),
	}
	if expiresAt != nil {
		t := expiresAt.UTC()
		k.ExpiresAt = &t
	}
	return k, s, nil
}

// HashAPIKeySecret returns the SHA-256 of secret, the only form in which a
// secret is stored or compared.
func HashAPIKeySecret(secret string) []byte {
	sum := sha256.Sum256([]byte(secret))
	return sum[:]
}

func validKeyName(name string) error {
	if name == "" || len(name) > 100 {
		return Errorf(EINVALID, "key name must be 1 to 100 characters")
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f {
			return Errorf(EINVALID, "key name must not contain control characters")
		}
	}
	return nil
}
