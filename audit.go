package lethe

import (
	"context"
	"encoding/json"
	"math"
)

// CheckpointStore keeps the newest signed checkpoint of the audit log in the
// key store, apart from the log itself, so that rolling the log's files back
// to an older (consistent, signed) state is detected: the key store then
// holds a checkpoint for a larger tree than the log can show.
// Implementations are safe for concurrent use.
type CheckpointStore interface {
	// SaveCheckpoint stores note, a signed checkpoint of the log named
	// origin for a tree of size entries, as that log's latest. A checkpoint
	// for a smaller tree than the stored one is refused with ECONFLICT and
	// changes nothing: the log must never appear to shrink. Saving one of
	// the same size replaces the stored one. EINVALID if size exceeds
	// math.MaxInt64 or note is empty.
	SaveCheckpoint(ctx context.Context, origin string, size uint64, note []byte) error
	// LatestCheckpoint returns the stored checkpoint of the log named
	// origin and its tree size. ENOTFOUND if none was saved.
	LatestCheckpoint(ctx context.Context, origin string) (size uint64, note []byte, err error)
}

// ValidCheckpoint is the rule every CheckpointStore applies before saving:
// EINVALID if size exceeds math.MaxInt64 (what the stores' integer columns
// hold) or note is empty. The error names the log, never the note.
func ValidCheckpoint(origin string, size uint64, note []byte) error {
	if size > math.MaxInt64 {
		return Errorf(EINVALID, "checkpoint of log %s: tree size %d exceeds %d", origin, size, uint64(math.MaxInt64))
	}
	if len(note) == 0 {
		return Errorf(EINVALID, "checkpoint of log %s: empty note", origin)
	}
	return nil
}

// AuditTrail answers a data-protection officer's or an auditor's questions
// about the audit log with proof. It is safe for concurrent use.
type AuditTrail interface {
	// SubjectEvents returns a subject's events, each with a proof that it
	// is in the log as of a signed checkpoint made for the answer. The
	// query is itself recorded (action audit.read). EINVALID for a bad
	// query; EUNAVAILABLE if the log cannot record or checkpoint.
	SubjectEvents(ctx context.Context, a Actor, q AuditQuery) (*AuditBundle, error)
}

// AuditQuery selects one subject's audit events, a page at a time.
type AuditQuery struct {
	Tenant    string
	SubjectID string
	After     uint64 // only entries at or after this log index
	Limit     int    // at most this many events; 0 for no limit
}

// AuditBundle is a set of audit events, each with an RFC 6962 inclusion
// proof against one signed checkpoint (a C2SP signed note): anyone holding
// the log's verifier key can check it offline.
type AuditBundle struct {
	Checkpoint string             `json:"checkpoint"`
	Events     []ProvenAuditEvent `json:"events"`
	// Next, when set, is the After of the next page.
	Next *uint64 `json:"next,omitempty"`
}

// ProvenAuditEvent is one event of an AuditBundle: its index in the log,
// the entry exactly as logged (compact JSON of an AuditEvent), and the
// hashes of its inclusion proof.
type ProvenAuditEvent struct {
	Index uint64          `json:"index"`
	Event json.RawMessage `json:"event"`
	Proof [][]byte        `json:"proof"`
}
