package lethe

import (
	"context"
	"regexp"
	"time"
)

// LegalBasis is one of the six lawful bases for processing of GDPR
// Art. 6(1).
type LegalBasis string

// The lawful bases, as Art. 6(1) lists them.
const (
	BasisConsent             LegalBasis = "consent"              // (a) the person agreed
	BasisContract            LegalBasis = "contract"             // (b) needed to perform a contract with them
	BasisLegalObligation     LegalBasis = "legal_obligation"     // (c) a law requires it
	BasisVitalInterests      LegalBasis = "vital_interests"      // (d) someone's life depends on it
	BasisPublicTask          LegalBasis = "public_task"          // (e) a task in the public interest
	BasisLegitimateInterests LegalBasis = "legitimate_interests" // (f) the controller's legitimate interests
)

// purposeKeyRE is the form of a purpose's key.
var purposeKeyRE = regexp.MustCompile(`^[a-z][a-z0-9_.-]{0,63}$`)

// ValidPurposeKey reports whether key has the form of a purpose's key: 1
// to 64 of a-z, 0-9, '_', '.' and '-', starting with a letter. Errors may
// name a purpose only if it has this form (anything else might be a
// personal value).
func ValidPurposeKey(key string) bool { return purposeKeyRE.MatchString(key) }

// LegalBases lists the lawful bases in the order of Art. 6(1).
var LegalBases = []LegalBasis{BasisConsent, BasisContract, BasisLegalObligation, BasisVitalInterests, BasisPublicTask, BasisLegitimateInterests}

// Objectable reports whether the person may object to processing on this
// basis (Art. 21(1): public task and legitimate interests).
func (b LegalBasis) Objectable() bool {
	return b == BasisPublicTask || b == BasisLegitimateInterests
}

// Purpose is a declared reason to process personal data.
type Purpose struct {
	Key         string     `json:"key"` // e.g. "newsletter"; 1–64 of a-z, 0-9, '_', '.', '-'
	Description string     `json:"description"`
	Basis       LegalBasis `json:"legal_basis"`
	// Categories are the data categories processed, as Fides taxonomy
	// keys (user.contact.email, user.financial …); Use is the Fides data
	// use (marketing.advertising, essential.service …).
	Categories []string `json:"data_categories,omitempty"`
	Use        string   `json:"data_use,omitempty"`
	// DirectMarketing makes an objection absolute (Art. 21(2)–(3)), on any
	// basis, and allows one to a consent-based purpose's processing too.
	DirectMarketing bool `json:"direct_marketing,omitempty"`
	// Retention is how long data processed for the purpose is kept.
	Retention string `json:"retention,omitempty"`
	// Policy is the current version of the text shown to people for this
	// purpose; Accepted lists older versions whose consents still count
	// (by default none: a new version needs renewed consent).
	Policy   PolicyVersion   `json:"policy"`
	Accepted []PolicyVersion `json:"accepted_versions,omitempty"`
}

// PolicyVersion names one version of a purpose's policy text and holds the
// SHA-256 (hex) of its exact text, so that a consent records precisely what
// the person was shown.
type PolicyVersion struct {
	Version  string `json:"version"`
	TextHash string `json:"text_sha256"`
}

// The kinds of consent-ledger event.
const (
	ConsentGrant       = "grant"            // consent to a purpose given
	ConsentWithdraw    = "withdraw"         // consent to a purpose withdrawn
	ConsentRestrict    = "restrict"         // Art. 18: all processing but storage stops (no purpose)
	ConsentUnrestrict  = "lift_restriction" // the restriction lifted
	ConsentObject      = "object"           // Art. 21: objection to a purpose
	ConsentLiftObject  = "lift_objection"   // the objection lifted (resolved in the controller's favour, or withdrawn)
	ConsentErased      = "erased"           // the subject was erased: every check denies from now on
	ConsentEventsLimit = 10_000             // most events one append or one page holds
)

// ConsentEvent is one entry of the append-only consent ledger: the proof
// of what a person agreed to or asked for, and when. It never holds a raw
// IP address or user agent, only their keyed hashes.
type ConsentEvent struct {
	Revision  uint64    `json:"revision"` // the ledger's position, assigned when appended
	Tenant    string    `json:"tenant"`
	SubjectID string    `json:"subject_id"`
	Purpose   string    `json:"purpose,omitempty"` // empty for restrict, lift_restriction and erased
	Kind      string    `json:"kind"`
	At        time.Time `json:"at"`
	// For a grant: the policy version agreed to and its text's hash, and
	// when the consent lapses (nil: when withdrawn).
	PolicyVersion string     `json:"policy_version,omitempty"`
	TextHash      string     `json:"text_sha256,omitempty"`
	ExpiresAt     *time.Time `json:"expires_at,omitempty"`
	// How the event reached Lethe (web_form, api, import, email, paper…)
	// and, where given, HMAC-SHA256 (hex) of the person's IP address and
	// user agent under the deployment's consent-proof key.
	Channel   string `json:"channel"`
	IPHMAC    string `json:"ip_hmac,omitempty"`
	AgentHMAC string `json:"user_agent_hmac,omitempty"`
	// Reason is a code from a closed set for restrict and object (see
	// ValidConsentReason), never free text.
	Reason string `json:"reason,omitempty"`
	KeyID  string `json:"recorded_by"` // the principal that recorded it
}

// ConsentReasons are the reasons a restriction or an objection can give:
// the grounds of Art. 18(1)(a)–(d) and of Art. 21.
var ConsentReasons = []string{
	"accuracy_contested",      // 18(1)(a)
	"unlawful_processing",     // 18(1)(b)
	"needed_for_legal_claims", // 18(1)(c)
	"objection_pending",       // 18(1)(d)
	"particular_situation",    // 21(1)
	"direct_marketing",        // 21(2)
	"other",
}

// ConsentStore is the consent ledger: append-only, in the data store, with
// one global order (the revision) that every instance sees the same. Its
// implementations are safe for concurrent use.
type ConsentStore interface {
	// AppendConsent appends events in one transaction, at the next
	// revisions in order, and returns the first; it sets each event's
	// Revision. The revisions have no gaps, and a reader that has seen
	// revision r has seen every revision below it (ConsentSince never skips
	// an event committed later with a smaller revision). EINVALID for
	// none or more than ConsentEventsLimit events.
	AppendConsent(ctx context.Context, events []ConsentEvent) (uint64, error)
	// ConsentHistory returns every event of one subject, oldest first.
	ConsentHistory(ctx context.Context, tenant, subjectID string) ([]ConsentEvent, error)
	// ConsentSince returns at most limit events with revisions above after,
	// in order.
	ConsentSince(ctx context.Context, after uint64, limit int) ([]ConsentEvent, error)
	// ConsentRevision returns the newest revision (0 for an empty ledger).
	ConsentRevision(ctx context.Context) (uint64, error)
}

// The reasons a ConsentDecision gives. Anything unknown, expired, erased or
// uncertain denies.
const (
	DecisionLegalBasis     = "legal_basis"       // allowed: the purpose's basis needs no consent
	DecisionConsent        = "consent"           // allowed: an active consent under an acceptable policy version
	DecisionUnknownPurpose = "unknown_purpose"   // denied: no such purpose is declared
	DecisionUnknownSubject = "unknown_subject"   // denied: no such subject
	DecisionErased         = "erased"            // denied: the subject (or its tenant) was erased
	DecisionRestricted     = "restricted"        // denied: processing is restricted (Art. 18)
	DecisionObjected       = "objected"          // denied: the person objected to this purpose (Art. 21)
	DecisionNoConsent      = "no_consent"        // denied: consent was never given
	DecisionWithdrawn      = "consent_withdrawn" // denied: consent was withdrawn
	DecisionExpired        = "consent_expired"   // denied: consent lapsed
	DecisionPolicyOutdated = "policy_outdated"   // denied: consent was given to a policy version no longer accepted
	DecisionUncertain      = "uncertain"         // denied: the ledger revision the caller requires is not known here yet
)

// ConsentDecision is the answer of a processing check.
type ConsentDecision struct {
	Allowed bool   `json:"allowed"`
	Reason  string `json:"reason"`
	// Revision is the ledger revision the decision was made at; a caller
	// may require a later one next time (min_revision).
	Revision uint64 `json:"revision"`
	// Event is the revision of the ledger event that decided (the consent,
	// the restriction, the objection, the erasure), 0 if none did.
	Event uint64 `json:"event,omitempty"`
	// Renew is set when the consent counts but was given to an older
	// policy version than the current one: ask the person to renew it.
	Renew bool `json:"renew,omitempty"`
}

// ErasureObserver is told of every erasure once the key is destroyed, so
// that processing checks deny at once, on every instance. An empty
// subjectID means the whole tenant was erased.
type ErasureObserver interface {
	SubjectErased(ctx context.Context, tenant, subjectID string) error
}

// ConsentBatchLimit is the most subjects one batch check takes.
const ConsentBatchLimit = 100_000

// Consent is the consent component as the API uses it. Implementations are
// safe for concurrent use.
type Consent interface {
	// Purposes returns the declared purposes.
	Purposes() []Purpose
	// Record validates records, audits them and appends them to the
	// ledger in one transaction; either all are recorded or none. EINVALID
	// names the first bad record; ENOTFOUND or EGONE for a subject that
	// does not exist or was erased; EUNAVAILABLE if the audit log refuses.
	Record(ctx context.Context, a Actor, tenant string, recs []ConsentRecord) ([]ConsentEvent, error)
	// Check decides whether the subject may be processed for the purpose,
	// at a ledger revision no older than minRevision.
	Check(ctx context.Context, tenant, subjectID, purpose string, minRevision uint64) (ConsentDecision, error)
	// CheckBatch filters up to ConsentBatchLimit subjects for a purpose.
	CheckBatch(ctx context.Context, tenant, purpose string, subjectIDs []string, minRevision uint64) (*BatchDecision, error)
	// History returns a subject's ledger events, oldest first; audited.
	History(ctx context.Context, a Actor, tenant, subjectID string) ([]ConsentEvent, error)
	// Import records what it can of many records (an import of existing
	// consents): every valid record is recorded and audited, in order,
	// and every other one is reported with its position and why. EINVALID
	// for more than ConsentImportLimit records; an error part way
	// (EUNAVAILABLE) stops the import, and the report says what was
	// recorded before it.
	Import(ctx context.Context, a Actor, tenant string, recs []ConsentRecord) (*ImportReport, error)
	// Follow returns at most limit of tenant's events after revision
	// after, waiting up to wait for one, and the revision it read up to.
	Follow(ctx context.Context, tenant string, after uint64, limit int, wait time.Duration) ([]ConsentEvent, uint64, error)
}

// ConsentRecord is one consent, restriction or objection to record.
type ConsentRecord struct {
	SubjectID string     `json:"subject_id"`
	Purpose   string     `json:"purpose,omitempty"`
	Kind      string     `json:"kind"`
	At        *time.Time `json:"at,omitempty"` // when it happened; now if nil (an import gives it)
	// For a grant: the policy version shown (the current one if empty)
	// and when the consent lapses.
	PolicyVersion string     `json:"policy_version,omitempty"`
	ExpiresAt     *time.Time `json:"expires_at,omitempty"`
	Channel       string     `json:"channel,omitempty"` // api if empty
	// The person's IP address and user agent, if known: only their keyed
	// hashes are kept.
	IP        string `json:"ip,omitempty"`
	UserAgent string `json:"user_agent,omitempty"`
	Reason    string `json:"reason,omitempty"`
}

// BatchDecision is the answer of a batch check: the subjects allowed, in
// the order asked, and why each other one was denied.
type BatchDecision struct {
	Purpose  string         `json:"purpose"`
	Revision uint64         `json:"revision"`
	Allowed  []string       `json:"allowed"`
	Denied   []DeniedReason `json:"denied"`
}

// DeniedReason names one subject a batch check denied, and why.
type DeniedReason struct {
	SubjectID string `json:"subject_id"`
	Reason    string `json:"reason"`
}

// ConsentImportLimit is the most records one import takes.
const ConsentImportLimit = 1_000_000

// ImportReport says what an import recorded and what it refused.
type ImportReport struct {
	Imported int `json:"imported"`
	// FirstRevision and LastRevision bound the revisions the imported
	// events got; 0 when nothing was imported.
	FirstRevision uint64        `json:"first_revision,omitempty"`
	LastRevision  uint64        `json:"last_revision,omitempty"`
	Rejected      []RejectedRow `json:"rejected"`
}

// RejectedRow is one record an import refused: Row counts from 1 in the
// order given (for a CSV file, the line after the header), and Reason
// never quotes the record.
type RejectedRow struct {
	Row    int    `json:"row"`
	Reason string `json:"reason"`
}
