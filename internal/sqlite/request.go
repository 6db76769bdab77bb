package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/lethe-privacy/lethe"
)

var _ lethe.RequestStore = (*RequestStore)(nil)

// RequestStore implements lethe.RequestStore in the data store. It is safe
// for concurrent use. Writes run on the one write connection in IMMEDIATE
// transactions, so a duplicate's check and insert cannot interleave with
// another's; the partial unique indexes hold the rule in any case.
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

// CreateRequest implements lethe.RequestStore. EINVALID for a request that
// is not new (state received, version 0); any other error is EINTERNAL.
func (s *RequestStore) CreateRequest(ctx context.Context, r *lethe.Request) (*lethe.Request, bool, error) {
	if err := lethe.CheckNewRequest(r); err != nil {
		return nil, false, err
	}
	tx, err := s.db.write.BeginTx(ctx, nil)
	if err != nil {
		return nil, false, fmt.Errorf("create request: %w", err)
	}
	defer tx.Rollback()
	if existing, err := openDuplicate(ctx, tx, r); err != nil || existing != nil {
		return existing, existing != nil, err
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO requests (`+requestColumns+`, open)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, 1)`,
		r.ID, r.Tenant, string(r.Type), string(r.State), r.SubjectID, r.Channel, r.CreatedBy, r.ContactIndex, r.Contact, r.Details,
		r.ReceivedAt.UnixMicro(), r.DueAt.UnixMicro(), r.ExtendedReason, micros(r.VerifiedAt), r.ApprovedBy, micros(r.ClosedAt), r.Reason, r.Receipt, r.UpdatedAt.UnixMicro())
	var e *sqlite.Error
	if errors.As(err, &e) && e.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY {
		return nil, false, lethe.Errorf(lethe.ECONFLICT, "request %s exists", r.ID)
	} else if err != nil {
		return nil, false, fmt.Errorf("create request %s: %w", r.ID, err)
	}
	if err := tx.Commit(); err != nil {
		return nil, false, fmt.Errorf("create request %s: %w", r.ID, err)
	}
	r.Version = 1
	return r, false, nil
}

// openDuplicate returns the open request r duplicates, if any.
func openDuplicate(ctx context.Context, tx *sql.Tx, r *lethe.Request) (*lethe.Request, error) {
	var row *sql.Row
	switch {
	case r.SubjectID != "":
		row = tx.QueryRowContext(ctx, `SELECT `+requestColumns+` FROM requests WHERE tenant = ? AND type = ? AND subject_id = ? AND open = 1`, r.Tenant, string(r.Type), r.SubjectID)
	case r.ContactIndex != nil:
		row = tx.QueryRowContext(ctx, `SELECT `+requestColumns+` FROM requests WHERE tenant = ? AND type = ? AND contact_index = ? AND subject_id = '' AND open = 1`, r.Tenant, string(r.Type), r.ContactIndex)
	default:
		return nil, nil
	}
	existing, err := scanRequest(row)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	} else if err != nil {
		return nil, fmt.Errorf("find duplicate request: %w", err)
	}
	return existing, nil
}

func scanRequest(row scanner) (*lethe.Request, error) {
	var r lethe.Request
	var typ, state string
	var received, due, updated int64
	var verified, closed sql.NullInt64
	err := row.Scan(&r.ID, &r.Tenant, &typ, &state, &r.SubjectID, &r.Channel, &r.CreatedBy, &r.ContactIndex, &r.Contact, &r.Details,
		&received, &due, &r.ExtendedReason, &verified, &r.ApprovedBy, &closed, &r.Reason, &r.Receipt, &updated, &r.Version)
	if err != nil {
		return nil, err
	}
	r.Type, r.State = lethe.RequestType(typ), lethe.RequestState(state)
	r.ReceivedAt, r.DueAt, r.UpdatedAt = fromMicro(received), fromMicro(due), fromMicro(updated)
	r.VerifiedAt, r.ClosedAt = fromMicros(verified), fromMicros(closed)
	return &r, nil
}

// Request implements lethe.RequestStore.
func (s *RequestStore) Request(ctx context.Context, tenant, id string) (*lethe.Request, error) {
	r, err := scanRequest(s.db.queryRow(ctx, `SELECT `+requestColumns+` FROM requests WHERE tenant = ? AND id = ?`, tenant, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, lethe.Errorf(lethe.ENOTFOUND, "request %s not found", id)
	} else if err != nil {
		return nil, fmt.Errorf("get request %s: %w", id, err)
	}
	return r, nil
}

// UpdateRequest implements lethe.RequestStore.
func (s *RequestStore) UpdateRequest(ctx context.Context, r *lethe.Request) error {
	tx, err := s.db.write.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("update request %s: %w", r.ID, err)
	}
	defer tx.Rollback()
	var state string
	var version int
	err = tx.QueryRowContext(ctx, `SELECT state, version FROM requests WHERE tenant = ? AND id = ?`, r.Tenant, r.ID).Scan(&state, &version)
	if errors.Is(err, sql.ErrNoRows) {
		return lethe.Errorf(lethe.ENOTFOUND, "request %s not found", r.ID)
	} else if err != nil {
		return fmt.Errorf("update request %s: %w", r.ID, err)
	}
	if err := lethe.CheckRequestUpdate(lethe.RequestState(state), version, r); err != nil {
		return err
	}
	open := 0
	if r.State.Open() {
		open = 1
	}
	if _, err := tx.ExecContext(ctx, `UPDATE requests SET state = ?, due_at = ?, extended_reason = ?, verified_at = ?, approved_by = ?,
		closed_at = ?, reason = ?, receipt = ?, updated_at = ?, version = version + 1, open = ?, subject_id = ?, details = ? WHERE id = ?`,
		string(r.State), r.DueAt.UnixMicro(), r.ExtendedReason, micros(r.VerifiedAt), r.ApprovedBy, micros(r.ClosedAt), r.Reason, r.Receipt,
		r.UpdatedAt.UnixMicro(), open, r.SubjectID, r.Details, r.ID); err != nil {
		return fmt.Errorf("update request %s: %w", r.ID, err)
	}
	if err := tx.Commit(); err != nil {
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
	q := `SELECT ` + requestColumns + ` FROM requests WHERE (tenant = ? OR ?)`
	args := []any{f.Tenant, f.AllTenants}
	if len(f.States) > 0 {
		q += ` AND state IN (?` + strings.Repeat(", ?", len(f.States)-1) + `)`
		for _, st := range f.States {
			args = append(args, string(st))
		}
	}
	if !f.DueBefore.IsZero() {
		q += ` AND due_at < ?`
		args = append(args, f.DueBefore.UnixMicro())
	}
	if f.SubjectID != "" {
		q += ` AND subject_id = ?`
		args = append(args, f.SubjectID)
	}
	if f.AfterID != "" {
		q += ` AND (due_at, id) > (?, ?)`
		args = append(args, f.AfterDue.UnixMicro(), f.AfterID)
	}
	q += ` ORDER BY due_at, id LIMIT ?`
	args = append(args, limit)
	rows, err := s.db.query(ctx, q, args...)
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
	tx, err := s.db.write.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("put tasks: %w", err)
	}
	defer tx.Rollback()
	for _, t := range tasks {
		_, err := tx.ExecContext(ctx, `INSERT INTO request_tasks (request_id, system, step, state, attempts, report, error, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (request_id, system) DO UPDATE SET step = excluded.step, state = excluded.state, attempts = excluded.attempts,
				report = excluded.report, error = excluded.error, updated_at = excluded.updated_at`,
			t.RequestID, t.System, t.Step, string(t.State), t.Attempts, t.Report, t.Error, t.UpdatedAt.UnixMicro())
		var e *sqlite.Error
		if errors.As(err, &e) && e.Code() == sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY {
			return lethe.Errorf(lethe.EINVALID, "task %s of request %s: no such request", t.System, t.RequestID)
		} else if err != nil {
			return fmt.Errorf("put task %s of request %s: %w", t.System, t.RequestID, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("put tasks: %w", err)
	}
	return nil
}

// Tasks implements lethe.RequestStore.
func (s *RequestStore) Tasks(ctx context.Context, requestID string) ([]lethe.RequestTask, error) {
	rows, err := s.db.query(ctx, `SELECT request_id, system, step, state, attempts, report, error, updated_at
		FROM request_tasks WHERE request_id = ? ORDER BY step, system`, requestID)
	if err != nil {
		return nil, fmt.Errorf("tasks of request %s: %w", requestID, err)
	}
	defer rows.Close()
	out := []lethe.RequestTask{}
	for rows.Next() {
		var t lethe.RequestTask
		var state string
		var updated int64
		if err := rows.Scan(&t.RequestID, &t.System, &t.Step, &state, &t.Attempts, &t.Report, &t.Error, &updated); err != nil {
			return nil, fmt.Errorf("tasks of request %s: %w", requestID, err)
		}
		t.State, t.UpdatedAt = lethe.TaskState(state), fromMicro(updated)
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("tasks of request %s: %w", requestID, err)
	}
	return out, nil
}

func fromMicro(n int64) time.Time { return time.UnixMicro(n).UTC() }

// PutCode implements lethe.RequestStore.
func (s *RequestStore) PutCode(ctx context.Context, c *lethe.RequestCode) error {
	row := s.db.write.QueryRowContext(ctx, `INSERT INTO request_codes (request_id, hash, expires_at, attempts, issued) VALUES (?, ?, ?, 0, 1)
		ON CONFLICT (request_id) DO UPDATE SET hash = excluded.hash, expires_at = excluded.expires_at, attempts = 0, issued = issued + 1
		RETURNING issued`, c.RequestID, c.Hash, c.ExpiresAt.UnixMicro())
	var e *sqlite.Error
	if err := row.Scan(&c.Issued); errors.As(err, &e) && e.Code() == sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY {
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
	var expires int64
	err := s.db.write.QueryRowContext(ctx, `UPDATE request_codes SET attempts = attempts + 1 WHERE request_id = ?
		RETURNING hash, expires_at, attempts, issued`, requestID).Scan(&c.Hash, &expires, &c.Attempts, &c.Issued)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, lethe.Errorf(lethe.ENOTFOUND, "request %s has no code", requestID)
	} else if err != nil {
		return nil, fmt.Errorf("attempt code of request %s: %w", requestID, err)
	}
	c.ExpiresAt = fromMicro(expires)
	return &c, nil
}

// DeleteCode implements lethe.RequestStore.
func (s *RequestStore) DeleteCode(ctx context.Context, requestID string) error {
	if _, err := s.db.write.ExecContext(ctx, `DELETE FROM request_codes WHERE request_id = ?`, requestID); err != nil {
		return fmt.Errorf("delete code of request %s: %w", requestID, err)
	}
	return nil
}

// PutArchive implements lethe.RequestStore.
func (s *RequestStore) PutArchive(ctx context.Context, requestID, name string, data []byte, expires time.Time) error {
	_, err := s.db.write.ExecContext(ctx, `INSERT INTO request_archives (request_id, name, data, expires_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (request_id, name) DO UPDATE SET data = excluded.data, expires_at = excluded.expires_at`, requestID, name, data, expires.UnixMicro())
	var e *sqlite.Error
	if errors.As(err, &e) && e.Code() == sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY {
		return lethe.Errorf(lethe.ENOTFOUND, "request %s not found", requestID)
	} else if err != nil {
		return fmt.Errorf("put archive %s of request %s: %w", name, requestID, err)
	}
	return nil
}

// Archive implements lethe.RequestStore.
func (s *RequestStore) Archive(ctx context.Context, requestID, name string) ([]byte, error) {
	var data []byte
	err := s.db.read.QueryRowContext(ctx, `SELECT data FROM request_archives WHERE request_id = ? AND name = ?`, requestID, name).Scan(&data)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, lethe.Errorf(lethe.ENOTFOUND, "request %s has no archive %s", requestID, name)
	} else if err != nil {
		return nil, fmt.Errorf("archive %s of request %s: %w", name, requestID, err)
	}
	return data, nil
}

// TakeArchive implements lethe.RequestStore.
func (s *RequestStore) TakeArchive(ctx context.Context, requestID, name string) ([]byte, error) {
	var data []byte
	err := s.db.write.QueryRowContext(ctx, `DELETE FROM request_archives WHERE request_id = ? AND name = ? RETURNING data`, requestID, name).Scan(&data)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, lethe.Errorf(lethe.ENOTFOUND, "request %s has no archive %s", requestID, name)
	} else if err != nil {
		return nil, fmt.Errorf("take archive %s of request %s: %w", name, requestID, err)
	}
	return data, nil
}

// DeleteArchive implements lethe.RequestStore.
func (s *RequestStore) DeleteArchive(ctx context.Context, requestID string) error {
	if _, err := s.db.write.ExecContext(ctx, `DELETE FROM request_archives WHERE request_id = ?`, requestID); err != nil {
		return fmt.Errorf("delete archive of request %s: %w", requestID, err)
	}
	return nil
}

// PruneArchives implements lethe.RequestStore.
func (s *RequestStore) PruneArchives(ctx context.Context, now time.Time) (int, error) {
	res, err := s.db.write.ExecContext(ctx, `DELETE FROM request_archives WHERE expires_at <= ?`, now.UnixMicro())
	if err != nil {
		return 0, fmt.Errorf("prune archives: %w", err)
	}
	n, _ := res.RowsAffected()
	return int(n), nil
}

// ClaimFinish implements lethe.RequestStore.
func (s *RequestStore) ClaimFinish(ctx context.Context, tenant, id, claimant string, now, until time.Time) (bool, error) {
	res, err := s.db.write.ExecContext(ctx, `UPDATE requests SET finisher = ?, finish_until = ?
		WHERE tenant = ? AND id = ? AND (finisher = ? OR finisher = '' OR finish_until <= ?)`,
		claimant, until.UnixMicro(), tenant, id, claimant, now.UnixMicro())
	if err != nil {
		return false, fmt.Errorf("claim request %s: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 1 {
		return true, nil
	}
	if _, err := s.Request(ctx, tenant, id); err != nil {
		return false, err
	}
	return false, nil
}
