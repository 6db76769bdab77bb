package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"math"
	"time"

	"github.com/lethe-privacy/lethe"
)

var _ lethe.ConsentStore = (*ConsentStore)(nil)

// ConsentStore implements lethe.ConsentStore, the consent ledger, in the
// data store. It is safe for concurrent use, also by several processes
// opening the same file. Times are stored as unix microseconds, like the
// other tables, and returned in UTC.
//
// The ledger's order comes from a head row, consent_head, which an append
// moves by the number of its events, in the transaction that inserts them
// at the revisions it moved over. Appends run on the DB's one write
// connection, in transactions that begin IMMEDIATE, holding SQLite's write
// lock from their first statement to their commit: appends, from this
// process or another, take turns, each commits before the next reads the
// head, and so revisions are committed in order and without gaps. A reader
// sees the database as of one commit (WAL snapshots), so a reader that sees
// revision r sees every revision below it.
type ConsentStore struct {
	db *DB
}

// NewConsentStore returns a ConsentStore on db, which must be a data store
// (it panics on a key store). Closing db is the caller's job.
func NewConsentStore(db *DB) *ConsentStore {
	db.mustHold(dataStore, "NewConsentStore")
	return &ConsentStore{db: db}
}

// insertConsent inserts one event at a revision the caller took from the
// head.
const insertConsent = `INSERT INTO consent_events
	(revision, tenant, subject_id, purpose, kind, at, policy_version, text_sha256,
	 expires_at, channel, ip_hmac, user_agent_hmac, reason, recorded_by)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`

// AppendConsent implements lethe.ConsentStore: it appends events in one
// transaction at the next revisions, sets each event's Revision once the
// transaction has committed, and returns the first revision. EINVALID for
// none or more than lethe.ConsentEventsLimit events, an unknown kind, an
// invalid tenant, an empty subject ID, or a text field that is not valid
// UTF-8 without NUL (PostgreSQL could not store it); nothing is appended
// then. Any other error is EINTERNAL.
func (s *ConsentStore) AppendConsent(ctx context.Context, events []lethe.ConsentEvent) (uint64, error) {
	if err := lethe.CheckConsentEvents(events); err != nil {
		return 0, fmt.Errorf("append consent: %w", err)
	}
	tx, err := s.db.write.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("append consent: %w", err)
	}
	defer tx.Rollback()
	var head int64
	if err := tx.QueryRowContext(ctx, `UPDATE consent_head SET revision = revision + ? WHERE id = 1 RETURNING revision`,
		len(events)).Scan(&head); err != nil {
		return 0, fmt.Errorf("append consent: move the head: %w", err)
	}
	first := head - int64(len(events)) + 1
	// Prepared once for the append, which may hold thousands.
	stmt, err := tx.PrepareContext(ctx, insertConsent)
	if err != nil {
		return 0, fmt.Errorf("append consent: %w", err)
	}
	defer stmt.Close()
	for i := range events {
		e := &events[i]
		if _, err := stmt.ExecContext(ctx, first+int64(i), e.Tenant, e.SubjectID, e.Purpose, e.Kind, e.At.UnixMicro(),
			e.PolicyVersion, e.TextHash, micros(e.ExpiresAt), e.Channel, e.IPHMAC, e.AgentHMAC, e.Reason, e.KeyID); err != nil {
			return 0, fmt.Errorf("append consent event of subject %s: %w", e.SubjectID, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("append consent: %w", err)
	}
	for i := range events {
		events[i].Revision = uint64(first) + uint64(i)
	}
	return uint64(first), nil
}

// consentColumns are the columns scanConsent reads, in its order.
const consentColumns = `revision, tenant, subject_id, purpose, kind, at, policy_version, text_sha256,
	expires_at, channel, ip_hmac, user_agent_hmac, reason, recorded_by`

// consentHistoryQuery reads one subject's events through the index
// consent_events_subject, and consentSinceQuery a page of the ledger from
// the table itself, whose rowid the revision is. TestQueryPlans holds them
// to that.
const (
	consentHistoryQuery = `SELECT ` + consentColumns + ` FROM consent_events
		WHERE tenant = ? AND subject_id = ? ORDER BY revision`
	consentSinceQuery = `SELECT ` + consentColumns + ` FROM consent_events
		WHERE revision > ? ORDER BY revision LIMIT ?`
)

// ConsentHistory implements lethe.ConsentStore: every event of the subject,
// oldest first; an empty slice if there is none. Any error is EINTERNAL.
func (s *ConsentStore) ConsentHistory(ctx context.Context, tenant, subjectID string) ([]lethe.ConsentEvent, error) {
	rows, err := s.db.query(ctx, consentHistoryQuery, tenant, subjectID)
	if err != nil {
		return nil, fmt.Errorf("consent history of subject %s: %w", subjectID, err)
	}
	events, err := scanConsent(rows)
	if err != nil {
		return nil, fmt.Errorf("consent history of subject %s: %w", subjectID, err)
	}
	return events, nil
}

// ConsentSince implements lethe.ConsentStore: at most limit events with
// revisions above after, in order; an empty slice if there is none.
// EINVALID unless 1 <= limit <= lethe.ConsentEventsLimit; any other error
// is EINTERNAL.
func (s *ConsentStore) ConsentSince(ctx context.Context, after uint64, limit int) ([]lethe.ConsentEvent, error) {
	if limit < 1 || limit > lethe.ConsentEventsLimit {
		return nil, lethe.Errorf(lethe.EINVALID, "a page holds 1 to %d consent events, not %d", lethe.ConsentEventsLimit, limit)
	}
	if after >= math.MaxInt64 { // no revision is above it; SQLite integers are signed
		return []lethe.ConsentEvent{}, nil
	}
	rows, err := s.db.query(ctx, consentSinceQuery, int64(after), limit)
	if err != nil {
		return nil, fmt.Errorf("consent events since revision %d: %w", after, err)
	}
	events, err := scanConsent(rows)
	if err != nil {
		return nil, fmt.Errorf("consent events since revision %d: %w", after, err)
	}
	return events, nil
}

// ConsentRevision implements lethe.ConsentStore: the newest revision, 0 for
// an empty ledger. Any error is EINTERNAL.
func (s *ConsentStore) ConsentRevision(ctx context.Context) (uint64, error) {
	var head int64
	if err := s.db.queryRow(ctx, `SELECT revision FROM consent_head WHERE id = 1`).Scan(&head); err != nil {
		return 0, fmt.Errorf("consent revision: %w", err)
	}
	return uint64(head), nil
}

// scanConsent reads rows of consentColumns and closes them. It returns an
// empty slice, not nil, for no rows.
func scanConsent(rows *sql.Rows) ([]lethe.ConsentEvent, error) {
	defer rows.Close()
	events := []lethe.ConsentEvent{}
	for rows.Next() {
		var e lethe.ConsentEvent
		var revision, at int64
		var expires sql.NullInt64
		if err := rows.Scan(&revision, &e.Tenant, &e.SubjectID, &e.Purpose, &e.Kind, &at, &e.PolicyVersion, &e.TextHash,
			&expires, &e.Channel, &e.IPHMAC, &e.AgentHMAC, &e.Reason, &e.KeyID); err != nil {
			return nil, err
		}
		e.Revision = uint64(revision)
		e.At = time.UnixMicro(at).UTC()
		e.ExpiresAt = fromMicros(expires)
		events = append(events, e)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return events, nil
}
