package postgres

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/lethe-privacy/lethe"
)

var _ lethe.ConsentStore = (*ConsentStore)(nil)

// ConsentStore implements lethe.ConsentStore, the consent ledger, in the
// data store. It is safe for concurrent use, also by several lethe
// instances sharing the database. Times are timestamptz, which keeps
// microseconds; they are returned in UTC.
//
// The ledger's order comes from a head row, consent_head. An append is one
// statement: it moves the head by the number of its events, which takes
// the row's lock until the statement's transaction commits, and inserts the
// events at the revisions the head moved over. A second appender, on any
// instance, waits on that lock and then reads the head as the first one
// committed it, so appends take turns, revisions have no gaps, and each
// append commits after every append with smaller revisions. A reader whose
// snapshot holds revision r therefore holds every revision below it, which
// a sequence (bigserial) could not promise: it numbers transactions in the
// order they ask, not the order they commit.
type ConsentStore struct {
	db *DB
}

// NewConsentStore returns a ConsentStore on db, which must be a data store
// (it panics on a key store). Closing db is the caller's job.
func NewConsentStore(db *DB) *ConsentStore {
	db.mustHold(dataStore, "NewConsentStore")
	return &ConsentStore{db: db}
}

// appendConsent moves the head by $1 and inserts the events, given as one
// array per column, at the revisions it moved over, in array order. A
// data-modifying WITH runs to completion even though the outer query does
// not read it, and the statement is one implicit transaction.
const appendConsent = `WITH head AS (
		UPDATE consent_head SET revision = revision + $1 WHERE id = 1
		RETURNING revision - $1 AS before
	), ins AS (
		INSERT INTO consent_events (revision, tenant, subject_id, purpose, kind, at, policy_version, text_sha256,
			expires_at, channel, ip_hmac, user_agent_hmac, reason, recorded_by)
		SELECT head.before + e.ord, e.tenant, e.subject_id, e.purpose, e.kind, e.at, e.policy_version, e.text_sha256,
			e.expires_at, e.channel, e.ip_hmac, e.user_agent_hmac, e.reason, e.recorded_by
		FROM head, unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::timestamptz[], $7::text[], $8::text[],
			$9::timestamptz[], $10::text[], $11::text[], $12::text[], $13::text[], $14::text[])
			WITH ORDINALITY AS e(tenant, subject_id, purpose, kind, at, policy_version, text_sha256,
				expires_at, channel, ip_hmac, user_agent_hmac, reason, recorded_by, ord)
	)
	SELECT before + 1 FROM head`

// AppendConsent implements lethe.ConsentStore: it appends events in one
// transaction at the next revisions, sets each event's Revision once the
// transaction has committed, and returns the first revision. EINVALID for
// none or more than lethe.ConsentEventsLimit events, an unknown kind, an
// invalid tenant, an empty subject ID, or a text field that is not valid
// UTF-8 without NUL; nothing is appended then. Any other error is
// EINTERNAL.
func (s *ConsentStore) AppendConsent(ctx context.Context, events []lethe.ConsentEvent) (uint64, error) {
	if err := lethe.CheckConsentEvents(events); err != nil {
		return 0, fmt.Errorf("append consent: %w", err)
	}
	var a consentArrays
	for i := range events {
		a.add(&events[i])
	}
	var first int64
	if err := s.db.pool.QueryRow(ctx, appendConsent, int64(len(events)), a.tenant, a.subject, a.purpose, a.kind, a.at,
		a.policy, a.textHash, a.expires, a.channel, a.ip, a.agent, a.reason, a.by).Scan(&first); err != nil {
		return 0, fmt.Errorf("append consent: %w", err)
	}
	for i := range events {
		events[i].Revision = uint64(first) + uint64(i)
	}
	return uint64(first), nil
}

// consentArrays holds events as one array per column, the parameters of
// appendConsent: one statement appends any number of events, and its text
// does not change with their number, so pgx prepares it once per
// connection.
type consentArrays struct {
	tenant, subject, purpose, kind, policy, textHash []string
	channel, ip, agent, reason, by                   []string
	at                                               []time.Time
	expires                                          []*time.Time // nil elements are NULL
}

func (a *consentArrays) add(e *lethe.ConsentEvent) {
	a.tenant, a.subject = append(a.tenant, e.Tenant), append(a.subject, e.SubjectID)
	a.purpose, a.kind = append(a.purpose, e.Purpose), append(a.kind, e.Kind)
	a.policy, a.textHash = append(a.policy, e.PolicyVersion), append(a.textHash, e.TextHash)
	a.channel, a.ip, a.agent = append(a.channel, e.Channel), append(a.ip, e.IPHMAC), append(a.agent, e.AgentHMAC)
	a.reason, a.by = append(a.reason, e.Reason), append(a.by, e.KeyID)
	a.at, a.expires = append(a.at, e.At), append(a.expires, e.ExpiresAt)
}

// consentColumns are the columns scanConsent reads, in its order.
const consentColumns = `revision, tenant, subject_id, purpose, kind, at, policy_version, text_sha256,
	expires_at, channel, ip_hmac, user_agent_hmac, reason, recorded_by`

// ConsentHistory implements lethe.ConsentStore: every event of the subject,
// oldest first; an empty slice if there is none. Any error is EINTERNAL.
func (s *ConsentStore) ConsentHistory(ctx context.Context, tenant, subjectID string) ([]lethe.ConsentEvent, error) {
	rows, err := s.db.pool.Query(ctx, `SELECT `+consentColumns+` FROM consent_events
		WHERE tenant = $1 AND subject_id = $2 ORDER BY revision`, tenant, subjectID)
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
	if after >= math.MaxInt64 { // no revision is above it; bigint is signed
		return []lethe.ConsentEvent{}, nil
	}
	rows, err := s.db.pool.Query(ctx, `SELECT `+consentColumns+` FROM consent_events
		WHERE revision > $1 ORDER BY revision LIMIT $2`, int64(after), limit)
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
	if err := s.db.pool.QueryRow(ctx, `SELECT revision FROM consent_head WHERE id = 1`).Scan(&head); err != nil {
		return 0, fmt.Errorf("consent revision: %w", err)
	}
	return uint64(head), nil
}

// scanConsent reads rows of consentColumns and closes them. It returns an
// empty slice, not nil, for no rows.
func scanConsent(rows pgx.Rows) ([]lethe.ConsentEvent, error) {
	defer rows.Close()
	events := []lethe.ConsentEvent{}
	for rows.Next() {
		var e lethe.ConsentEvent
		var revision int64
		if err := rows.Scan(&revision, &e.Tenant, &e.SubjectID, &e.Purpose, &e.Kind, &e.At, &e.PolicyVersion, &e.TextHash,
			&e.ExpiresAt, &e.Channel, &e.IPHMAC, &e.AgentHMAC, &e.Reason, &e.KeyID); err != nil {
			return nil, err
		}
		e.Revision = uint64(revision)
		e.At = e.At.UTC()
		e.ExpiresAt = utc(e.ExpiresAt)
		events = append(events, e)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return events, nil
}
