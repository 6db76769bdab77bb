// Package connector is the contract between Lethe and a system that holds
// personal data (a database, a cache, a file store, a third party, a
// person with a checklist): what Lethe asks of it, and what it reports.
//
// Every connector can Find a subject's data. What else it can do is an
// optional capability, a separate interface found by type assertion, as
// database/sql/driver does: Exporter, Eraser, Rectifier, Restricter,
// Checker. Each system kind has its own package under connector/
// (postgres, mysql, sqlite, redis, files, webhook, manual); cmd/lethe
// holds the map from a manifest's kind to the package that opens it.
//
// Reports carry locations (tables, key patterns, file patterns), actions,
// counts and row keys, never a personal value: they go into erasure
// receipts and the audit log. Errors follow the same rule, and never carry
// a connection string or a secret.
package connector

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"time"
)

// Subject is whom an operation is about: the Lethe subject ID and, for
// systems that link rows by an app's own identifier, the subject's
// identifiers from the vault.
type Subject struct {
	ID string // the Lethe subject ID, "sub_…"
	// Identifiers maps an identifier kind (email, phone, or an app's own
	// such as shop_customer_id) to the subject's normalised value.
	Identifiers map[string]string
	// PseudonymKey keys the pseudonyms that erasure's pseudonymize action
	// writes. Erasure derives it from the subject's own key, so that
	// destroying that key leaves the pseudonyms linked to nobody.
	PseudonymKey []byte
	// Now is the time retention rules are judged at.
	Now time.Time
	// RequestID and Tenant name the data-subject request an operation is
	// for, if any: third parties get them, to acknowledge later and to
	// tell retries apart.
	RequestID string
	Tenant    string
}

// Identifier returns the subject's value for an identifier kind; the
// kind "subject" is the Lethe subject ID itself.
func (s Subject) Identifier(kind string) (string, bool) {
	if kind == LinkSubject {
		return s.ID, s.ID != ""
	}
	v, ok := s.Identifiers[kind]
	return v, ok && v != ""
}

// LinkSubject is the identifier kind of a column or key that holds the
// Lethe subject ID.
const LinkSubject = "subject"

// Pseudonym returns the pseudonym erasure writes in place of value: a keyed
// HMAC-SHA256, so that equal values of one subject stay equal (orders and
// aggregates survive) while nobody without the key can tell whose they
// were. "pse_" and 24 hex digits (96 bits), short enough for most columns.
func Pseudonym(key []byte, value string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(value))
	return "pse_" + hex.EncodeToString(m.Sum(nil)[:12])
}

// The erasure actions a data map may name.
const (
	ActionDelete       = "delete"       // remove the row, key or file
	ActionNull         = "null"         // set the column to NULL
	ActionPlaceholder  = "placeholder"  // set the column to a fixed value
	ActionPseudonymize = "pseudonymize" // replace the value by its Pseudonym
	ActionRetain       = "retain"       // keep, under a legal basis, until a date rule
	ActionKeep         = "keep"         // a column left as it is (not personal once the row is unlinked)
	ActionNotify       = "notify"       // ask a third party to erase
	ActionTask         = "task"         // ask a person to
	ActionRectify      = "rectify"      // write a corrected value
	ActionRestrict     = "restrict"     // mark the rows restricted (Art. 18)
	ActionObject       = "object"       // mark the rows objected to for a purpose (Art. 21)
)

// Count is how much of a subject's data one location holds.
type Count struct {
	Location string `json:"location"` // table, key pattern, file pattern, endpoint
	Count    int64  `json:"count"`
}

// Step is one thing an erasure, a rectification or a plan of one does at
// one location.
type Step struct {
	Location string `json:"location"`
	Action   string `json:"action"`
	// Columns are the columns or fields the action writes, if any.
	Columns []string `json:"columns,omitempty"`
	// Statement is the SQL statement or the operation, with parameters as
	// placeholders: never a value.
	Statement string `json:"statement,omitempty"`
	Count     int64  `json:"count"`
	// Keys identify the rows touched where the system has row keys (the
	// primary key of a table), in the order touched; a plan and the
	// erasure after it list the same keys.
	Keys []string `json:"keys,omitempty"`
	// Note says why, where the map's action was not carried out as
	// written: a retained row kept until a date, a row kept because a
	// retained row refers to it.
	Note string `json:"note,omitempty"`
}

// Report is what a connector did, or would do, for one subject.
type Report struct {
	System string    `json:"system"`
	Steps  []Step    `json:"steps"`
	At     time.Time `json:"at"`
	// Pending is set when the system has not finished: a third party that
	// will acknowledge later, a person's task not yet closed.
	Pending bool `json:"pending,omitempty"`
}

// Total returns the sum of the steps' counts.
func (r *Report) Total() int64 {
	var n int64
	for _, s := range r.Steps {
		n += s.Count
	}
	return n
}

// Connector is an open system. Find reports how much of the subject's data
// each mapped location holds, changing nothing. The caller must Close it.
// Implementations are safe for concurrent use.
type Connector interface {
	Find(ctx context.Context, s Subject) ([]Count, error)
	Close() error
}

// Sink receives what Export reads: one Record per row, key or file
// entry, with its fields in a fixed order per location, and files.
type Sink interface {
	Record(location string, columns []string, values []any) error
	File(location, name string, data []byte) error
}

// Exporter writes a subject's data to a Sink, for access and portability
// requests, and returns the counts it wrote.
type Exporter interface {
	Export(ctx context.Context, s Subject, out Sink) ([]Count, error)
}

// Eraser carries out the data map's erasure actions. PlanErase says what
// Erase would do, changing nothing; Erase does it, in one transaction where
// the system allows, and is idempotent: run again it finds nothing and
// reports zero.
type Eraser interface {
	PlanErase(ctx context.Context, s Subject) (Report, error)
	Erase(ctx context.Context, s Subject) (Report, error)
}

// Rectifier writes corrected values into every mapped column or field of
// the given data categories (user.contact.email → the new address), in
// one transaction where the system allows.
type Rectifier interface {
	Rectify(ctx context.Context, s Subject, values map[string]string) (Report, error)
}

// Restricter writes the data map's restrict values (a flag column the
// application checks, say) into the subject's rows, in one transaction
// where the system allows. With objection "" it carries out a restriction
// of processing (Art. 18); otherwise an objection (Art. 21) to the purpose
// with that key. Only the map's entries for that request apply; a system
// with none returns an empty report. It is idempotent: run again it
// writes the same values into the same rows and reports them again.
// Steps have the action ActionRestrict or ActionObject and name columns,
// never the values written.
type Restricter interface {
	Restrict(ctx context.Context, s Subject, objection string) (Report, error)
}

// Drift is a difference between the data map and the live system.
type Drift struct {
	Location string `json:"location"`
	Column   string `json:"column,omitempty"`
	// Problem is DriftMissing, DriftUnmapped or DriftMismatch.
	Problem string `json:"problem"`
	Hint    string `json:"hint,omitempty"`
}

// The kinds of drift.
const (
	DriftMissing  = "missing"  // the map names it; the system has no such thing
	DriftUnmapped = "unmapped" // the system has it, it looks personal, the map does not mention it
	DriftMismatch = "mismatch" // both have it, but the map's action cannot work on it as it is
)

// Checker compares the data map with the live system.
type Checker interface {
	Check(ctx context.Context) ([]Drift, error)
}
