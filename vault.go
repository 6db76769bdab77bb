package lethe

import (
	"context"
	"encoding/json"
	"time"
)

// Actor is who asks the vault for something, and why: it goes into every
// audit event. Purpose may be empty where the operation needs none.
type Actor struct {
	KeyID     string // the API key's ID
	Role      Role
	RequestID string
	Purpose   string
}

// NewSubject is what an app hands the vault to create a subject.
type NewSubject struct {
	Tenant      string            // "" means DefaultTenant
	Identifiers map[string]string // kind → value, e.g. "email" → "jane@example.com"
	Profile     json.RawMessage   // a JSON object of personal fields; nil for {}
}

// SubjectView is a subject as read back: identifiers and profile in the
// clear (or masked), for the caller only. It never goes to a log.
type SubjectView struct {
	ID          string            `json:"id"`
	Tenant      string            `json:"tenant"`
	CreatedAt   time.Time         `json:"created_at"`
	Version     int               `json:"version"`
	UpdatedAt   time.Time         `json:"updated_at"`
	Identifiers map[string]string `json:"identifiers"`
	Profile     json.RawMessage   `json:"profile"`
}

// ReadOptions narrow a read. Fields selects identifier kinds and top-level
// profile fields (nil: all); Masked replaces each value with a masked form.
type ReadOptions struct {
	Fields []string
	Masked bool
}

// ProfileChange is a rectification: a JSON merge patch (RFC 7396) applied to
// the current profile, identifiers to set or remove, and why.
type ProfileChange struct {
	Patch             json.RawMessage   // nil: profile unchanged
	SetIdentifiers    map[string]string // kind → new value
	RemoveIdentifiers []string          // kinds
	Reason            string            // kept sealed with the version
}

// HistoryEntry is one version of a profile with who, when and why.
type HistoryEntry struct {
	Version   int             `json:"version"`
	Principal string          `json:"principal"`
	CreatedAt time.Time       `json:"created_at"`
	Reason    string          `json:"reason,omitempty"`
	Profile   json.RawMessage `json:"profile"`
}

// Vault is the service apps use to keep personal data: subjects, their
// identifiers and profiles, sealed per subject. Every method that reads or
// changes personal data records an audit event. Errors: EINVALID for bad
// input, ENOTFOUND for an unknown subject, EGONE for an erased one,
// ECONFLICT for an identifier another subject holds.
type Vault interface {
	CreateSubject(ctx context.Context, a Actor, in NewSubject) (*SubjectView, error)
	// LookupSubject finds the subject holding the identifier of kind (through
	// its blind index) and reads it. ENOTFOUND if nobody holds it.
	LookupSubject(ctx context.Context, a Actor, tenant, kind, value string, o ReadOptions) (*SubjectView, error)
	ReadSubject(ctx context.Context, a Actor, tenant, id string, o ReadOptions) (*SubjectView, error)
	UpdateSubject(ctx context.Context, a Actor, tenant, id string, c ProfileChange) (*SubjectView, error)
	History(ctx context.Context, a Actor, tenant, id string) ([]HistoryEntry, error)
	// EraseSubject destroys the subject's key, then deletes its data.
	// Erasing an erased subject again succeeds.
	EraseSubject(ctx context.Context, a Actor, tenant, id string) (*Forgotten, error)
	// EraseTenant destroys the tenant's key, and with it every subject
	// key of the tenant, then deletes the tenant's data. Erasing it again
	// succeeds; the tenant can never be used again.
	EraseTenant(ctx context.Context, a Actor, tenant string) (*Forgotten, error)
	// Tokenize returns one token per request, in order.
	Tokenize(ctx context.Context, a Actor, tenant, subjectID string, reqs []TokenRequest) ([]Token, error)
	// Detokenize returns one result per token, in order. a.Purpose is
	// required: values are returned only where the purpose is allowed.
	Detokenize(ctx context.Context, a Actor, tenant string, tokens []string) ([]Detokenized, error)
	// CheckForgotten tells whether the subject ref stands for was
	// forgotten: ref is a subject ID, or a token of the tenant (which
	// stands for its subject). It returns the forget-list entry of the
	// subject, or of its tenant if the whole tenant was erased, and nil if
	// the subject exists and was not erased. EINVALID for a ref that is
	// neither a subject ID nor a token; ENOTFOUND for one the tenant does
	// not know. It opens no sealed value and records an audit event.
	CheckForgotten(ctx context.Context, a Actor, tenant, ref string) (*Forgotten, error)
}

// TokenRequest asks for a token of a subject's value. With Value set, the
// token stands for that value (sealed under the subject's key); with Value
// nil, it is a reference to the subject's current value of Field (an
// identifier kind or a top-level profile field), so later rectifications
// show through. Deterministic tokens of the same value of the same field of
// the same subject are equal, so an app can join on them.
type TokenRequest struct {
	Field         string  `json:"field"`
	Value         *string `json:"value,omitempty"`
	Deterministic bool    `json:"deterministic,omitempty"`
}

// Token is a token as handed to an app.
type Token struct {
	Token string `json:"token"`
	Field string `json:"field"`
	Kind  string `json:"kind"` // "random", "deterministic" or "reference"
}

// Detokenization outcomes, per token.
const (
	TokenOK       = "ok"        // Value holds the value
	TokenGone     = "gone"      // the subject was erased
	TokenNotFound = "not_found" // no such token in this tenant
	TokenDenied   = "denied"    // the purpose is not allowed for this subject
)

// Detokenized is the outcome for one token. Value is a JSON value: a string
// for values and identifiers, any JSON for a referenced profile field.
type Detokenized struct {
	Token  string          `json:"token"`
	Status string          `json:"status"`
	Field  string          `json:"field,omitempty"`
	Value  json.RawMessage `json:"value,omitempty"`
}

// PurposeChecker decides whether a subject's personal data may be used for
// a purpose. The consent component implements it; without one, the vault
// requires a purpose to be named but allows every purpose.
type PurposeChecker interface {
	Allowed(ctx context.Context, tenant, subjectID, purpose string) (bool, error)
}

// AuditEvent is one auditable action. It carries IDs and field names,
// never a personal-data value.
type AuditEvent struct {
	Time      time.Time `json:"time"`
	Action    string    `json:"action"` // e.g. subject.read, subject.create, subject.erase
	Outcome   string    `json:"outcome"`
	KeyID     string    `json:"key_id"`
	Role      Role      `json:"role"`
	RequestID string    `json:"request_id,omitempty"`
	Tenant    string    `json:"tenant"`
	SubjectID string    `json:"subject_id,omitempty"`
	Purpose   string    `json:"purpose,omitempty"`
	Fields    []string  `json:"fields,omitempty"`
	Resource  string    `json:"resource,omitempty"` // what was acted on when not a subject, e.g. "audit:entries/0-65535"
}

// Auditor records audit events. If Record fails, the operation that needed
// it must not happen (fail closed). Record takes several events at once so
// that a batch operation (detokenizing many subjects' tokens) costs one
// write; either all of them are recorded or Record fails.
type Auditor interface {
	Record(ctx context.Context, events ...AuditEvent) error
}
