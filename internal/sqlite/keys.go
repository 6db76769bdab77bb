package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/lethe-privacy/lethe"
	sqlite3 "modernc.org/sqlite/lib"
)

var _ lethe.KeyStore = (*KeyStore)(nil)

// KeyStore implements lethe.KeyStore and lethe.CheckpointStore in the key
// store. It is safe for concurrent use.
//
// A key is never stored for an erased subject or tenant: every write runs on
// the DB's one write connection, and a key is created by a single statement
// that inserts it only if the forget list does not name its subject or
// tenant, so no destruction can come between the check and the insert.
type KeyStore struct {
	db *DB
}

// NewKeyStore returns a KeyStore on db, which must be a key store (it panics
// on a data store). Closing db is the caller's job.
func NewKeyStore(db *DB) *KeyStore {
	db.mustHold(keyStore, "NewKeyStore")
	return &KeyStore{db: db}
}

// CreateTenantKey stores the tenant's first wrapped key, as version 1.
// ECONFLICT if the tenant has a key of any version; EGONE if the tenant was
// erased; any other error is EINTERNAL.
func (s *KeyStore) CreateTenantKey(ctx context.Context, tenant string, k *lethe.WrappedKey) error {
	res, err := s.db.write.ExecContext(ctx, `INSERT INTO tenant_keys (tenant, version, wrapped, kek_id, created_at)
		SELECT ?1, 1, ?2, ?3, ?4
		WHERE NOT EXISTS (SELECT 1 FROM forget_list WHERE tenant = ?1 AND subject_id = '')
			AND NOT EXISTS (SELECT 1 FROM tenant_keys WHERE tenant = ?1)`,
		tenant, k.Wrapped, k.KEKID, k.CreatedAt.UnixMicro())
	if constraint(err) == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY {
		return lethe.Errorf(lethe.ECONFLICT, "tenant %s already has a key", tenant)
	} else if err != nil {
		return fmt.Errorf("create key of tenant %s: %w", tenant, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("create key of tenant %s: %w", tenant, err)
	} else if n == 0 {
		// Either the tenant was erased or it has a key: the forget list
		// tells which.
		if err := s.missingKey(ctx, tenant, ""); lethe.ErrorCode(err) != lethe.ENOTFOUND {
			return err
		}
		return lethe.Errorf(lethe.ECONFLICT, "tenant %s already has a key", tenant)
	}
	return nil
}

// TenantKey returns the tenant's current wrapped key, the highest version,
// with Version set. ENOTFOUND if none was made; EGONE if the tenant was
// erased; any other error is EINTERNAL.
func (s *KeyStore) TenantKey(ctx context.Context, tenant string) (*lethe.WrappedKey, error) {
	k, err := scanTenantKey(s.db.queryRow(ctx, `SELECT version, wrapped, kek_id, created_at FROM tenant_keys
		WHERE tenant = ? ORDER BY version DESC LIMIT 1`, tenant))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, s.missingKey(ctx, tenant, "")
	} else if err != nil {
		return nil, fmt.Errorf("get key of tenant %s: %w", tenant, err)
	}
	return k, nil
}

// TenantKeyVersion returns the given version of the tenant's wrapped key.
// ENOTFOUND if that version is not stored; EGONE if the tenant was erased;
// any other error is EINTERNAL.
func (s *KeyStore) TenantKeyVersion(ctx context.Context, tenant string, version int) (*lethe.WrappedKey, error) {
	k, err := scanTenantKey(s.db.queryRow(ctx, `SELECT version, wrapped, kek_id, created_at FROM tenant_keys
		WHERE tenant = ? AND version = ?`, tenant, version))
	if errors.Is(err, sql.ErrNoRows) {
		if err := s.missingKey(ctx, tenant, ""); lethe.ErrorCode(err) != lethe.ENOTFOUND {
			return nil, err
		}
		return nil, lethe.Errorf(lethe.ENOTFOUND, "tenant %s has no key version %d", tenant, version)
	} else if err != nil {
		return nil, fmt.Errorf("get key version %d of tenant %s: %w", version, tenant, err)
	}
	return k, nil
}

// currentTenantKeyIs is true in a statement, with the tenant as ?1 and a
// version as ?6, when that version is the tenant's current one.
const currentTenantKeyIs = `(SELECT max(version) FROM tenant_keys WHERE tenant = ?1) = ?6`

// CreateSubjectKey stores a subject's wrapped data key, if k.KEKID names
// the tenant's current key version. lethe.ErrStaleTenantKey (wrapped) if
// it names another version or the tenant has no key; EINVALID if it names
// no version of the tenant's key; ECONFLICT if the subject has a key; EGONE
// if the subject or its tenant was erased; any other error is EINTERNAL.
//
// The version is checked by the statement that inserts the key, on the
// one write connection, so no rotation can add a version between the check
// and the insert.
func (s *KeyStore) CreateSubjectKey(ctx context.Context, tenant, subjectID string, k *lethe.WrappedKey) error {
	if subjectID == "" {
		return fmt.Errorf("create subject key in tenant %s: empty subject id", tenant)
	}
	version, err := subjectKEKVersion(tenant, k.KEKID)
	if err != nil {
		return err
	}
	// Every create stores a key first: keys share commits (batch).
	var n int64
	err = s.db.batch(ctx, func(ctx context.Context, tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO subject_keys (tenant, subject_id, wrapped, kek_id, created_at)
			SELECT ?1, ?2, ?3, ?4, ?5
			WHERE NOT EXISTS (SELECT 1 FROM forget_list WHERE tenant = ?1 AND subject_id IN (?2, ''))
				AND `+currentTenantKeyIs,
			tenant, subjectID, k.Wrapped, k.KEKID, k.CreatedAt.UnixMicro(), version)
		if constraint(err) == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY {
			return lethe.Errorf(lethe.ECONFLICT, "subject %s already has a key", subjectID)
		} else if err != nil {
			return fmt.Errorf("create key of subject %s: %w", subjectID, err)
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return err
	}
	if n == 0 {
		// EGONE if the forget list names it, else the version was stale.
		if err := s.missingKey(ctx, tenant, subjectID); lethe.ErrorCode(err) != lethe.ENOTFOUND {
			return err
		}
		return fmt.Errorf("create key of subject %s under version %d of tenant %s's key: %w", subjectID, version, tenant, lethe.ErrStaleTenantKey)
	}
	return nil
}

// subjectKEKVersion returns the version of tenant's key that a subject
// key's kekID names; EINVALID if it names none.
func subjectKEKVersion(tenant, kekID string) (int, error) {
	t, version, ok := lethe.ParseTenantKEKID(kekID)
	if !ok || t != tenant {
		return 0, lethe.Errorf(lethe.EINVALID, "a subject key of tenant %s must be wrapped under a version of the tenant's key, not %q", tenant, kekID)
	}
	return version, nil
}

// SubjectKey returns a subject's wrapped data key. ENOTFOUND if there is
// none; EGONE if the subject or its tenant was erased; any other error is
// EINTERNAL. Only when there is no key does it read the forget list, so the
// common case is one indexed read.
func (s *KeyStore) SubjectKey(ctx context.Context, tenant, subjectID string) (*lethe.WrappedKey, error) {
	k, err := scanWrappedKey(s.db.queryRow(ctx,
		`SELECT wrapped, kek_id, created_at FROM subject_keys WHERE tenant = ? AND subject_id = ?`, tenant, subjectID))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, s.missingKey(ctx, tenant, subjectID)
	} else if err != nil {
		return nil, fmt.Errorf("get key of subject %s: %w", subjectID, err)
	}
	return k, nil
}

// missingKey returns the error for a key that is not stored: EGONE if the
// forget list names the subject (or, for subjectID "", the tenant) or its
// tenant, ENOTFOUND otherwise.
func (s *KeyStore) missingKey(ctx context.Context, tenant, subjectID string) error {
	f, err := s.Forgotten(ctx, tenant, subjectID)
	switch {
	case lethe.ErrorCode(err) == lethe.ENOTFOUND && subjectID == "":
		return lethe.Errorf(lethe.ENOTFOUND, "tenant %s has no key", tenant)
	case lethe.ErrorCode(err) == lethe.ENOTFOUND:
		return lethe.Errorf(lethe.ENOTFOUND, "subject %s has no key", subjectID)
	case err != nil:
		return err
	case f.SubjectID == "":
		return errTenantGone(tenant)
	default:
		return lethe.Errorf(lethe.EGONE, "subject %s was erased", subjectID)
	}
}

// DestroySubjectKey deletes the subject's key and adds the subject to the
// forget list, in one transaction. Destroying an erased subject's key again
// is not an error and keeps the first erasure time. Any error is EINTERNAL.
func (s *KeyStore) DestroySubjectKey(ctx context.Context, tenant, subjectID string, at time.Time) error {
	if subjectID == "" {
		// The forget list would read it as the whole tenant.
		return fmt.Errorf("destroy subject key in tenant %s: empty subject id", tenant)
	}
	return s.destroy(ctx, "destroy key of subject "+subjectID, tenant, subjectID, at,
		`DELETE FROM subject_keys WHERE tenant = ? AND subject_id = ?`)
}

// DestroyTenantKey deletes every version of the tenant's key and every
// subject key of the tenant, and adds the tenant to the forget list, in one
// transaction.
// Destroying it again is not an error and keeps the first erasure time.
// Any error is EINTERNAL.
func (s *KeyStore) DestroyTenantKey(ctx context.Context, tenant string, at time.Time) error {
	return s.destroy(ctx, "destroy key of tenant "+tenant, tenant, "", at,
		`DELETE FROM tenant_keys WHERE tenant = ?`,
		`DELETE FROM subject_keys WHERE tenant = ?`)
}

// destroy runs the deletes, with the tenant as their first parameter and a
// subject ID other than "" as their second, and adds (tenant, subjectID,
// at) to the forget list unless it is there already.
func (s *KeyStore) destroy(ctx context.Context, op, tenant, subjectID string, at time.Time, deletes ...string) error {
	args := []any{tenant}
	if subjectID != "" {
		args = append(args, subjectID)
	}
	tx, err := s.db.write.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	defer tx.Rollback()
	for _, q := range deletes {
		if _, err := tx.ExecContext(ctx, q, args...); err != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO forget_list (tenant, subject_id, erased_at) VALUES (?, ?, ?)
		ON CONFLICT (tenant, subject_id) DO NOTHING`, tenant, subjectID, at.UnixMicro()); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	return nil
}

// Forgotten returns the forget-list entry of the subject, or of its tenant
// if the whole tenant was erased (and the subject has no entry of its own).
// ENOTFOUND if neither was erased; any other error is EINTERNAL.
func (s *KeyStore) Forgotten(ctx context.Context, tenant, subjectID string) (*lethe.Forgotten, error) {
	f := lethe.Forgotten{Tenant: tenant}
	var erased int64
	// '' sorts first, so the subject's own entry comes before the tenant's.
	err := s.db.queryRow(ctx, `SELECT subject_id, erased_at FROM forget_list
		WHERE tenant = ? AND subject_id IN (?, '') ORDER BY subject_id DESC LIMIT 1`, tenant, subjectID).
		Scan(&f.SubjectID, &erased)
	if errors.Is(err, sql.ErrNoRows) {
		if subjectID == "" {
			return nil, lethe.Errorf(lethe.ENOTFOUND, "tenant %s was not erased", tenant)
		}
		return nil, lethe.Errorf(lethe.ENOTFOUND, "subject %s was not erased", subjectID)
	} else if err != nil {
		return nil, fmt.Errorf("get forget-list entry of subject %s: %w", subjectID, err)
	}
	f.ErasedAt = time.UnixMicro(erased).UTC()
	return &f, nil
}

// forgetListQuery reads a page of the forget list after a cursor. The row
// value comparison is a range on the index forget_list_erased_at, so each
// page costs its own length however far into the list it starts.
// TestQueryPlans holds it to that.
const forgetListQuery = `SELECT tenant, subject_id, erased_at FROM forget_list
	WHERE (erased_at, tenant, subject_id) > (?, ?, ?)
	ORDER BY erased_at, tenant, subject_id LIMIT ?`

// ForgetList returns at most limit forget-list entries (none if limit is
// not positive) in the order (ErasedAt, Tenant, SubjectID), strictly after
// the entry after; the zero lethe.Forgotten starts at the beginning. Times
// are compared to the microsecond, as they are stored; IDs byte by byte.
// Any error is EINTERNAL.
func (s *KeyStore) ForgetList(ctx context.Context, after lethe.Forgotten, limit int) ([]lethe.Forgotten, error) {
	if limit <= 0 {
		return nil, nil
	}
	// The zero time is year 1, before any erasure, and "" sorts before
	// every tenant, so the zero Forgotten is before every entry.
	rows, err := s.db.query(ctx, forgetListQuery, after.ErasedAt.UnixMicro(), after.Tenant, after.SubjectID, limit)
	if err != nil {
		return nil, fmt.Errorf("list forget list: %w", err)
	}
	defer rows.Close()
	var list []lethe.Forgotten
	for rows.Next() {
		var f lethe.Forgotten
		var erased int64
		if err := rows.Scan(&f.Tenant, &f.SubjectID, &erased); err != nil {
			return nil, fmt.Errorf("list forget list: %w", err)
		}
		f.ErasedAt = time.UnixMicro(erased).UTC()
		list = append(list, f)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list forget list: %w", err)
	}
	return list, nil
}

// Secret returns the deployment secret stored under name. ENOTFOUND if
// there is none; any other error is EINTERNAL.
func (s *KeyStore) Secret(ctx context.Context, name string) (*lethe.WrappedKey, error) {
	k, err := scanWrappedKey(s.db.queryRow(ctx, `SELECT wrapped, kek_id, created_at FROM secrets WHERE name = ?`, name))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, lethe.Errorf(lethe.ENOTFOUND, "secret %s not found", name)
	} else if err != nil {
		return nil, fmt.Errorf("get secret %s: %w", name, err)
	}
	return k, nil
}

// CreateSecret stores a deployment secret. ECONFLICT if name exists; any
// other error is EINTERNAL.
func (s *KeyStore) CreateSecret(ctx context.Context, name string, k *lethe.WrappedKey) error {
	_, err := s.db.write.ExecContext(ctx, `INSERT INTO secrets (name, wrapped, kek_id, created_at) VALUES (?, ?, ?, ?)`,
		name, k.Wrapped, k.KEKID, k.CreatedAt.UnixMicro())
	if constraint(err) == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY {
		return lethe.Errorf(lethe.ECONFLICT, "secret %s already exists", name)
	} else if err != nil {
		return fmt.Errorf("create secret %s: %w", name, err)
	}
	return nil
}

func scanWrappedKey(row scanner) (*lethe.WrappedKey, error) {
	var k lethe.WrappedKey
	var created int64
	if err := row.Scan(&k.Wrapped, &k.KEKID, &created); err != nil {
		return nil, err
	}
	k.CreatedAt = time.UnixMicro(created).UTC()
	return &k, nil
}

// scanTenantKey scans version, wrapped, kek_id and created_at.
func scanTenantKey(row scanner) (*lethe.WrappedKey, error) {
	var k lethe.WrappedKey
	var created int64
	if err := row.Scan(&k.Version, &k.Wrapped, &k.KEKID, &created); err != nil {
		return nil, err
	}
	k.CreatedAt = time.UnixMicro(created).UTC()
	return &k, nil
}

func errTenantGone(tenant string) error {
	return lethe.Errorf(lethe.EGONE, "tenant %s was erased", tenant)
}
