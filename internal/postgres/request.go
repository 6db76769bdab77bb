package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/lethe-privacy/lethe"
)

var _ lethe.RequestStore = (*RequestStore)(nil)

// RequestStore implements lethe.RequestStore in the data store, shared by
// every instance. It is safe for concurrent use. A duplicate is caught by
// the partial unique indexes: an insert that violates one reads the open
// request it duplicates instead.
type RequestStore struct {
	db *DB
}

// NewRequestStore returns a RequestStore on db, which must be a data store
// (it panics on a key store). Closing db is the caller's job.
func NewRequestStore(db *DB) *RequestStore {
	db.mustHold(dataStore, "NewRequestStore")
	return &RequestStore{db: db}
}

const requestColumns = `id, tenant, type, state, subject_id, channel, created_by, contact_index, contact, details,
	received_at, due_at, extended_reason, verified_at, approved_by, closed_at, reason, receipt, updated_at, version`

// CreateRequest implements lethe.RequestStore.
func (s *RequestStore) CreateRequest(ctx context.Context, r *lethe.Request) (*lethe.Request, bool, error) {
	if err := lethe.CheckNewRequest(r); err != nil {
		return nil, false, err
	}
	for range 3 {
		_, err := s.db.pool.Exec(ctx, `INSERT INTO requests (`+requestColumns+`, open)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, 1, true)`,
			r.ID, r.Tenant, string(r.Type), string(r.State), r.SubjectID, r.Channel, r.CreatedBy, r.ContactIndex, r.Contact, r.Details,
			r.ReceivedAt, r.DueAt, r.ExtendedReason, r.VerifiedAt, r.ApprovedBy, r.ClosedAt, r.Reason, r.Receipt, r.UpdatedAt)
		code, constraint := pgError(err)
		switch {
		case err == nil:
			r.Version = 1
			return r, false, nil
		case code == uniqueViolation && constraint == "requests_pkey":
			return nil, false, lethe.Errorf(lethe.ECONFLICT, "request %s exists", r.ID)
		case code != uniqueViolation:
			return nil, false, fmt.Errorf("create request %s: %w", r.ID, err)
		}
		// A duplicate: read the open request, which may close before the
		// read; then try again.
		var row pgx.Row
		if r.SubjectID != "" {
			row = s.db.pool.QueryRow(ctx, `SELECT `+requestColumns+` FROM requests WHERE tenant = $1 AND type = $2 AND subject_id = $3 AND open`, r.Tenant, string(r.Type), r.SubjectID)
		} else {
			row = s.db.pool.QueryRow(ctx, `SELECT `+requestColumns+` FROM requests WHERE tenant = $1 AND type = $2 AND contact_index = $3 AND subject_id = '' AND open`, r.Tenant, string(r.Type), r.ContactIndex)
		}
		existing, err := scanRequest(row)
		if err == nil {
			return existing, true, nil
		} else if !errors.Is(err, pgx.ErrNoRows) {
			return nil, false, fmt.Errorf("find duplicate request: %w", err)
		}
	}
	return nil, false, lethe.Errorf(lethe.ECONFLICT, "request %s: a duplicate kept changing; try again", r.ID)
}

func scanRequest(row pgx.Row) (*lethe.Request, error) {
	var r lethe.Request
	var typ, state string
	err := row.Scan(&r.ID, &r.Tenant, &typ, &state, &r.SubjectID, &r.Channel, &r.CreatedBy, &r.ContactIndex, &r.Contact, &r.Details,
		&r.ReceivedAt, &r.DueAt, &r.ExtendedReason, &r.VerifiedAt, &r.ApprovedBy, &r.ClosedAt, &r.Reason, &r.Receipt, &r.UpdatedAt, &r.Version)
	if err != nil {
		return nil, err
	}
	r.Type, r.State = lethe.RequestType(typ), lethe.RequestState(state)
	r.ReceivedAt, r.DueAt, r.UpdatedAt = r.ReceivedAt.UTC(), r.DueAt.UTC(), r.UpdatedAt.UTC()
	r.VerifiedAt, r.ClosedAt = utc(r.VerifiedAt), utc(r.ClosedAt)
	return &r, nil
}

// Request implements lethe.RequestStore.
func (s *RequestStore) Request(ctx context.Context, tenant, id string) (*lethe.Request, error) {
	r, err := scanRequest(s.db.pool.QueryRow(ctx, `SELECT `+requestColumns+` FROM requests WHERE tenant = $1 AND id = $2`, tenant, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, lethe.Errorf(lethe.ENOTFOUND, "request %s not found", id)
	} else if err != nil {
		return nil, fmt.Errorf("get request %s: %w", id, err)
	}
	return r, nil
}

// UpdateRequest implements lethe.RequestStore.
func (s *RequestStore) UpdateRequest(ctx context.Context, r *lethe.Request) error {
	tx, err := s.db.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("update request %s: %w", r.ID, err)
	}
	defer tx.Rollback(ctx)
	var state string
	var version int
	err = tx.QueryRow(ctx, `SELECT state, version FROM requests WHERE tenant = $1 AND id = $2 FOR UPDATE`, r.Tenant, r.ID).Scan(&state, &version)
	if errors.Is(err, pgx.ErrNoRows) {
		return lethe.Errorf(lethe.ENOTFOUND, "request %s not found", r.ID)
	} else if err != nil {
		return fmt.Errorf("update request %s: %w", r.ID, err)
	}
	if err := lethe.CheckRequestUpdate(lethe.RequestState(state), version, r); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `UPDATE requests SET state = $1, due_at = $2, extended_reason = $3, verified_at = $4, approved_by = $5,
		closed_at = $6, reason = $7, updated_at = $8, version = version + 1, open = $9, subject_id = $10, receipt = $12, details = $13 WHERE id = $11`,
		string(r.State), r.DueAt, r.ExtendedReason, r.VerifiedAt, r.ApprovedBy, r.ClosedAt, r.Reason, r.UpdatedAt, r.State.Open(), r.SubjectID, r.ID, r.Receipt, r.Details); err != nil {
		return fmt.Errorf("update request %s: %w", r.ID, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("update request %s: %w", r.ID, err)
	}
	r.Version++
	return nil
}

// ListRequests implements lethe.RequestStore.
func (s *RequestStore) ListRequests(ctx context.Context, f lethe.RequestFilter) ([]lethe.Request, error) {
	limit, err := lethe.CheckRequestFilter(f)
	if err != nil {
		return nil, err
	}
	q := `SELECT ` + requestColumns + ` FROM requests WHERE (tenant = $1 OR $2)`
	args := []any{f.Tenant, f.AllTenants}
	arg := func(v any) string {
		args = append(args, v)
		return fmt.Sprintf("$%d", len(args))
	}
	if len(f.States) > 0 {
		states := make([]string, len(f.States))
		for i, st := range f.States {
			states[i] = string(st)
		}
		q += ` AND state = ANY(` + arg(states) + `)`
	}
	if !f.DueBefore.IsZero() {
		q += ` AND due_at < ` + arg(f.DueBefore)
	}
	if f.SubjectID != "" {
		q += ` AND subject_id = ` + arg(f.SubjectID)
	}
	if f.AfterID != "" {
		q += ` AND (due_at, id) > (` + arg(f.AfterDue) + `, ` + arg(f.AfterID) + `)`
	}
	q += ` ORDER BY due_at, id LIMIT ` + arg(limit)
	rows, err := s.db.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list requests: %w", err)
	}
	defer rows.Close()
	out := []lethe.Request{}
	for rows.Next() {
		r, err := scanRequest(rows)
		if err != nil {
			return nil, fmt.Errorf("list requests: %w", err)
		}
		out = append(out, *r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list requests: %w", err)
	}
	return out, nil
}

// PutTasks implements lethe.RequestStore. EINVALID for a task of a request
// that does not exist.
func (s *RequestStore) PutTasks(ctx context.Context, tasks []lethe.RequestTask) error {
	tx, err := s.db.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("put tasks: %w", err)
	}
	defer tx.Rollback(ctx)
	for _, t := range tasks {
		_, err := tx.Exec(ctx, `INSERT INTO request_tasks (request_id, system, step, state, attempts, report, error, updated_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
			ON CONFLICT (request_id, system) DO UPDATE SET step = excluded.step, state = excluded.state, attempts = excluded.attempts,
				report = excluded.report, error = excluded.error, updated_at = excluded.updated_at`,
			t.RequestID, t.System, t.Step, string(t.State), t.Attempts, t.Report, t.Error, t.UpdatedAt)
		if code, _ := pgError(err); code == foreignKeyViolation {
			return lethe.Errorf(lethe.EINVALID, "task %s of request %s: no such request", t.System, t.RequestID)
		} else if err != nil {
			return fmt.Errorf("put task %s of request %s: %w", t.System, t.RequestID, err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("put tasks: %w", err)
	}
	return nil
}

// Tasks implements lethe.RequestStore.
func (s *RequestStore) Tasks(ctx context.Context, requestID string) ([]lethe.RequestTask, error) {
	rows, err := s.db.pool.Query(ctx, `SELECT request_id, system, step, state, attempts, report, error, updated_at
		FROM request_tasks WHERE request_id = $1 ORDER BY step, system`, requestID)
	if err != nil {
		return nil, fmt.Errorf("tasks of request %s: %w", requestID, err)
	}
	defer rows.Close()
	out := []lethe.RequestTask{}
	for rows.Next() {
		var t lethe.RequestTask
		var state string
		if err := rows.Scan(&t.RequestID, &t.System, &t.Step, &state, &t.Attempts, &t.Report, &t.Error, &t.UpdatedAt); err != nil {
			return nil, fmt.Errorf("tasks of request %s: %w", requestID, err)
		}
		t.State, t.UpdatedAt = lethe.TaskState(state), t.UpdatedAt.UTC()
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("tasks of request %s: %w", requestID, err)
	}
	return out, nil
}

// PutCode implements lethe.RequestStore.
func (s *RequestStore) PutCode(ctx context.Context, c *lethe.RequestCode) error {
	err := s.db.pool.QueryRow(ctx, `INSERT INTO request_codes (request_id, hash, expires_at, attempts, issued) VALUES ($1, $2, $3, 0, 1)
		ON CONFLICT (request_id) DO UPDATE SET hash = excluded.hash, expires_at = excluded.expires_at, attempts = 0, issued = request_codes.issued + 1
		RETURNING issued`, c.RequestID, c.Hash, c.ExpiresAt).Scan(&c.Issued)
	if code, _ := pgError(err); code == foreignKeyViolation {
		return lethe.Errorf(lethe.ENOTFOUND, "request %s not found", c.RequestID)
	} else if err != nil {
		return fmt.Errorf("put code of request %s: %w", c.RequestID, err)
	}
	c.Attempts = 0
	return nil
}

// AttemptCode implements lethe.RequestStore.
func (s *RequestStore) AttemptCode(ctx context.Context, requestID string) (*lethe.RequestCode, error) {
	c := lethe.RequestCode{RequestID: requestID}
	err := s.db.pool.QueryRow(ctx, `UPDATE request_codes SET attempts = attempts + 1 WHERE request_id = $1
		RETURNING hash, expires_at, attempts, issued`, requestID).Scan(&c.Hash, &c.ExpiresAt, &c.Attempts, &c.Issued)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, lethe.Errorf(lethe.ENOTFOUND, "request %s has no code", requestID)
	} else if err != nil {
		return nil, fmt.Errorf("attempt code of request %s: %w", requestID, err)
	}
	c.ExpiresAt = c.ExpiresAt.UTC()
	return &c, nil
}

// DeleteCode implements lethe.RequestStore.
func (s *RequestStore) DeleteCode(ctx context.Context, requestID string) error {
	if _, err := s.db.pool.Exec(ctx, `DELETE FROM request_codes WHERE request_id = $1`, requestID); err != nil {
		return fmt.Errorf("delete code of request %s: %w", requestID, err)
	}
	return nil
}

// PutArchive implements lethe.RequestStore.
func (s *RequestStore) PutArchive(ctx context.Context, requestID, name string, data []byte, expires time.Time) error {
	_, err := s.db.pool.Exec(ctx, `INSERT INTO request_archives (request_id, name, data, expires_at) VALUES ($1, $2, $3, $4)
		ON CONFLICT (request_id, name) DO UPDATE SET data = excluded.data, expires_at = excluded.expires_at`, requestID, name, data, expires)
	if code, _ := pgError(err); code == foreignKeyViolation {
		return lethe.Errorf(lethe.ENOTFOUND, "request %s not found", requestID)
	} else if err != nil {
		return fmt.Errorf("put archive %s of request %s: %w", name, requestID, err)
	}
	return nil
}

// Archive implements lethe.RequestStore.
func (s *RequestStore) Archive(ctx context.Context, requestID, name string) ([]byte, error) {
	var data []byte
	err := s.db.pool.QueryRow(ctx, `SELECT data FROM request_archives WHERE request_id = $1 AND name = $2`, requestID, name).Scan(&data)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, lethe.Errorf(lethe.ENOTFOUND, "request %s has no archive %s", requestID, name)
	} else if err != nil {
		return nil, fmt.Errorf("archive %s of request %s: %w", name, requestID, err)
	}
	return data, nil
}

// TakeArchive implements lethe.RequestStore.
func (s *RequestStore) TakeArchive(ctx context.Context, requestID, name string) ([]byte, error) {
	var data []byte
	err := s.db.pool.QueryRow(ctx, `DELETE FROM request_archives WHERE request_id = $1 AND name = $2 RETURNING data`, requestID, name).Scan(&data)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, lethe.Errorf(lethe.ENOTFOUND, "request %s has no archive %s", requestID, name)
	} else if err != nil {
		return nil, fmt.Errorf("take archive %s of request %s: %w", name, requestID, err)
	}
	return data, nil
}

// DeleteArchive implements lethe.RequestStore.
func (s *RequestStore) DeleteArchive(ctx context.Context, requestID string) error {
	if _, err := s.db.pool.Exec(ctx, `DELETE FROM request_archives WHERE request_id = $1`, requestID); err != nil {
		return fmt.Errorf("delete archive of request %s: %w", requestID, err)
	}
	return nil
}

// PruneArchives implements lethe.RequestStore.
func (s *RequestStore) PruneArchives(ctx context.Context, now time.Time) (int, error) {
	tag, err := s.db.pool.Exec(ctx, `DELETE FROM request_archives WHERE expires_at <= $1`, now)
	if err != nil {
		return 0, fmt.Errorf("prune archives: %w", err)
	}
	return int(tag.RowsAffected()), nil
}

// ClaimFinish implements lethe.RequestStore.
func (s *RequestStore) ClaimFinish(ctx context.Context, tenant, id, claimant string, now, until time.Time) (bool, error) {
	tag, err := s.db.pool.Exec(ctx, `UPDATE requests SET finisher = $1, finish_until = $2
		WHERE tenant = $3 AND id = $4 AND (finisher = $1 OR finisher = '' OR finish_until <= $5)`,
		claimant, until, tenant, id, now)
	if err != nil {
		return false, fmt.Errorf("claim request %s: %w", id, err)
	}
	if tag.RowsAffected() == 1 {
		return true, nil
	}
	if _, err := s.Request(ctx, tenant, id); err != nil {
		return false, err
	}
	return false, nil
}
