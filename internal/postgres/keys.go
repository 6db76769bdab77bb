package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/lethe-privacy/lethe"
)

var _ lethe.KeyStore = (*KeyStore)(nil)

// KeyStore implements lethe.KeyStore and lethe.CheckpointStore in the key
// store. It is safe for concurrent use, also by several lethe instances
// sharing the database. Times are timestamptz, returned in UTC.
//
// A key must never be stored for an erased subject or tenant, but under
// PostgreSQL's default isolation a create and a destruction running at once
// could each miss the other's uncommitted row: the create would find no
// forget-list entry, the destruction no key to delete, and a key would
// survive its erasure. So every key write first takes transaction-scoped
// advisory locks: the tenant's, shared by writes to one subject and
// exclusive for the whole tenant, and then the subject's, exclusive. Writes
// to different subjects do not wait for each other; a write and the
// destruction of its subject or tenant take turns. Reads take no locks.
type KeyStore struct {
	db *DB
}

// NewKeyStore returns a KeyStore on db, which must be a key store (it panics
// on a data store). Closing db is the caller's job.
func NewKeyStore(db *DB) *KeyStore {
	db.mustHold(keyStore, "NewKeyStore")
	return &KeyStore{db: db}
}

// The advisory locks, by two int4 keys: a class and a hash of the tenant,
// or of the tenant and subject ID. (Two int4 keys do not overlap the one
// int8 key of migrationLock.) A hash collision only makes two unrelated
// writes take turns.
const (
	lockTenantShared    = `SELECT pg_advisory_xact_lock_shared(1, hashtext($1::text))`
	lockTenantExclusive = `SELECT pg_advisory_xact_lock(1, hashtext($1::text))`
	lockSubject         = `SELECT pg_advisory_xact_lock(2, hashtext($1::text || '/' || $2::text))`
)

// CreateTenantKey stores the tenant's first wrapped key, as version 1.
// ECONFLICT if the tenant has a key of any version; EGONE if the tenant was
// erased; any other error is EINTERNAL.
func (s *KeyStore) CreateTenantKey(ctx context.Context, tenant string, k *lethe.WrappedKey) error {
	b := &pgx.Batch{}
	b.Queue(lockTenantShared, tenant)
	b.Queue(`INSERT INTO tenant_keys (tenant, version, wrapped, kek_id, created_at)
		SELECT $1::text, 1, $2::bytea, $3::text, $4::timestamptz
		WHERE NOT EXISTS (SELECT 1 FROM forget_list WHERE tenant = $1 AND subject_id = '')
			AND NOT EXISTS (SELECT 1 FROM tenant_keys WHERE tenant = $1)`,
		tenant, k.Wrapped, k.KEKID, k.CreatedAt)
	inserted, err := execLocked(ctx, s.db.pool, b)
	if code, _ := pgError(err); code == uniqueViolation {
		return lethe.Errorf(lethe.ECONFLICT, "tenant %s already has a key", tenant)
	} else if err != nil {
		return fmt.Errorf("create key of tenant %s: %w", tenant, err)
	} else if inserted == 0 {
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
	k, err := scanTenantKey(s.db.pool.QueryRow(ctx, `SELECT version, wrapped, kek_id, created_at FROM tenant_keys
		WHERE tenant = $1 ORDER BY version DESC LIMIT 1`, tenant))
	if errors.Is(err, pgx.ErrNoRows) {
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
	k, err := scanTenantKey(s.db.pool.QueryRow(ctx, `SELECT version, wrapped, kek_id, created_at FROM tenant_keys
		WHERE tenant = $1 AND version = $2`, tenant, version))
	if errors.Is(err, pgx.ErrNoRows) {
		if err := s.missingKey(ctx, tenant, ""); lethe.ErrorCode(err) != lethe.ENOTFOUND {
			return nil, err
		}
		return nil, lethe.Errorf(lethe.ENOTFOUND, "tenant %s has no key version %d", tenant, version)
	} else if err != nil {
		return nil, fmt.Errorf("get key version %d of tenant %s: %w", version, tenant, err)
	}
	return k, nil
}

// CreateSubjectKey stores a subject's wrapped data key, if k.KEKID names
// the tenant's current key version. lethe.ErrStaleTenantKey (wrapped) if
// it names another version or the tenant has no key; EINVALID if it names
// no version of the tenant's key; ECONFLICT if the subject has a key; EGONE
// if the subject or its tenant was erased; any other error is EINTERNAL.
//
// The insert checks the version itself, holding the tenant's shared lock,
// which a new version (AddTenantKeyVersion) waits for exclusively: so a
// version is never added between the check and the commit, and once one
// is added, every insert after reads it.
func (s *KeyStore) CreateSubjectKey(ctx context.Context, tenant, subjectID string, k *lethe.WrappedKey) error {
	if subjectID == "" {
		return fmt.Errorf("create subject key in tenant %s: empty subject id", tenant)
	}
	version, err := subjectKEKVersion(tenant, k.KEKID)
	if err != nil {
		return err
	}
	b := &pgx.Batch{}
	b.Queue(lockTenantShared, tenant)
	b.Queue(lockSubject, tenant, subjectID)
	b.Queue(`INSERT INTO subject_keys (tenant, subject_id, wrapped, kek_id, created_at)
		SELECT $1::text, $2::text, $3::bytea, $4::text, $5::timestamptz
		WHERE NOT EXISTS (SELECT 1 FROM forget_list WHERE tenant = $1 AND subject_id IN ($2, ''))
			AND (SELECT max(version) FROM tenant_keys WHERE tenant = $1) = $6`,
		tenant, subjectID, k.Wrapped, k.KEKID, k.CreatedAt, version)
	inserted, err := execLocked(ctx, s.db.pool, b)
	if code, _ := pgError(err); code == uniqueViolation {
		return lethe.Errorf(lethe.ECONFLICT, "subject %s already has a key", subjectID)
	} else if err != nil {
		return fmt.Errorf("create key of subject %s: %w", subjectID, err)
	} else if inserted == 0 {
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
	k, err := scanWrappedKey(s.db.pool.QueryRow(ctx,
		`SELECT wrapped, kek_id, created_at FROM subject_keys WHERE tenant = $1 AND subject_id = $2`, tenant, subjectID))
	if errors.Is(err, pgx.ErrNoRows) {
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
	b := &pgx.Batch{}
	b.Queue(lockTenantShared, tenant)
	b.Queue(lockSubject, tenant, subjectID)
	b.Queue(`DELETE FROM subject_keys WHERE tenant = $1 AND subject_id = $2`, tenant, subjectID)
	b.Queue(`INSERT INTO forget_list (tenant, subject_id, erased_at) VALUES ($1, $2, $3)
		ON CONFLICT (tenant, subject_id) DO NOTHING`, tenant, subjectID, at)
	if err := s.db.pool.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("destroy key of subject %s: %w", subjectID, err)
	}
	return nil
}

// DestroyTenantKey deletes every version of the tenant's key and every
// subject key of the tenant, and adds the tenant to the forget list, in one
// transaction.
// Destroying it again is not an error and keeps the first erasure time.
// Any error is EINTERNAL.
func (s *KeyStore) DestroyTenantKey(ctx context.Context, tenant string, at time.Time) error {
	b := &pgx.Batch{}
	b.Queue(lockTenantExclusive, tenant)
	b.Queue(`DELETE FROM tenant_keys WHERE tenant = $1`, tenant)
	b.Queue(`DELETE FROM subject_keys WHERE tenant = $1`, tenant)
	b.Queue(`INSERT INTO forget_list (tenant, subject_id, erased_at) VALUES ($1, '', $2)
		ON CONFLICT (tenant, subject_id) DO NOTHING`, tenant, at)
	if err := s.db.pool.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("destroy key of tenant %s: %w", tenant, err)
	}
	return nil
}

// execLocked sends b, whose last query is an insert and whose others take
// locks, as one implicit transaction, and returns how many rows the insert
// stored.
func execLocked(ctx context.Context, pool *pgxpool.Pool, b *pgx.Batch) (int64, error) {
	br := pool.SendBatch(ctx, b)
	defer br.Close()
	for range b.Len() - 1 {
		if _, err := br.Exec(); err != nil {
			return 0, err
		}
	}
	tag, err := br.Exec()
	if err != nil {
		return 0, err
	}
	return tag.RowsAffected(), br.Close()
}

// Forgotten returns the forget-list entry of the subject, or of its tenant
// if the whole tenant was erased (and the subject has no entry of its own).
// ENOTFOUND if neither was erased; any other error is EINTERNAL.
func (s *KeyStore) Forgotten(ctx context.Context, tenant, subjectID string) (*lethe.Forgotten, error) {
	f := lethe.Forgotten{Tenant: tenant}
	// '' sorts first, so the subject's own entry comes before the tenant's.
	err := s.db.pool.QueryRow(ctx, `SELECT subject_id, erased_at FROM forget_list
		WHERE tenant = $1 AND subject_id IN ($2, '') ORDER BY subject_id DESC LIMIT 1`, tenant, subjectID).
		Scan(&f.SubjectID, &f.ErasedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		if subjectID == "" {
			return nil, lethe.Errorf(lethe.ENOTFOUND, "tenant %s was not erased", tenant)
		}
		return nil, lethe.Errorf(lethe.ENOTFOUND, "subject %s was not erased", subjectID)
	} else if err != nil {
		return nil, fmt.Errorf("get forget-list entry of subject %s: %w", subjectID, err)
	}
	f.ErasedAt = f.ErasedAt.UTC()
	return &f, nil
}

// ForgetList returns at most limit forget-list entries (none if limit is
// not positive) in the order (ErasedAt, Tenant, SubjectID), strictly after
// the entry after; the zero lethe.Forgotten starts at the beginning. Times
// are compared to the microsecond, as they are stored; IDs byte by byte
// (their collation is "C"). Any error is EINTERNAL.
//
// The row comparison is a range on the index forget_list_erased_at, so each
// page costs its own length however far into the list it starts.
func (s *KeyStore) ForgetList(ctx context.Context, after lethe.Forgotten, limit int) ([]lethe.Forgotten, error) {
	if limit <= 0 {
		return nil, nil
	}
	// The zero time is year 1, before any erasure, and "" sorts before
	// every tenant, so the zero Forgotten is before every entry.
	rows, err := s.db.pool.Query(ctx, `SELECT tenant, subject_id, erased_at FROM forget_list
		WHERE (erased_at, tenant, subject_id) > ($1, $2, $3)
		ORDER BY erased_at, tenant, subject_id LIMIT $4`, after.ErasedAt, after.Tenant, after.SubjectID, limit)
	if err != nil {
		return nil, fmt.Errorf("list forget list: %w", err)
	}
	list, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (lethe.Forgotten, error) {
		var f lethe.Forgotten
		err := row.Scan(&f.Tenant, &f.SubjectID, &f.ErasedAt)
		f.ErasedAt = f.ErasedAt.UTC()
		return f, err
	})
	if err != nil {
		return nil, fmt.Errorf("list forget list: %w", err)
	}
	return list, nil
}

// Secret returns the deployment secret stored under name. ENOTFOUND if
// there is none; any other error is EINTERNAL.
func (s *KeyStore) Secret(ctx context.Context, name string) (*lethe.WrappedKey, error) {
	k, err := scanWrappedKey(s.db.pool.QueryRow(ctx, `SELECT wrapped, kek_id, created_at FROM secrets WHERE name = $1`, name))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, lethe.Errorf(lethe.ENOTFOUND, "secret %s not found", name)
	} else if err != nil {
		return nil, fmt.Errorf("get secret %s: %w", name, err)
	}
	return k, nil
}

// CreateSecret stores a deployment secret. ECONFLICT if name exists; any
// other error is EINTERNAL.
func (s *KeyStore) CreateSecret(ctx context.Context, name string, k *lethe.WrappedKey) error {
	_, err := s.db.pool.Exec(ctx, `INSERT INTO secrets (name, wrapped, kek_id, created_at) VALUES ($1, $2, $3, $4)`,
		name, k.Wrapped, k.KEKID, k.CreatedAt)
	if code, _ := pgError(err); code == uniqueViolation {
		return lethe.Errorf(lethe.ECONFLICT, "secret %s already exists", name)
	} else if err != nil {
		return fmt.Errorf("create secret %s: %w", name, err)
	}
	return nil
}

func scanWrappedKey(row pgx.Row) (*lethe.WrappedKey, error) {
	var k lethe.WrappedKey
	if err := row.Scan(&k.Wrapped, &k.KEKID, &k.CreatedAt); err != nil {
		return nil, err
	}
	k.CreatedAt = k.CreatedAt.UTC()
	return &k, nil
}

// scanTenantKey scans version, wrapped, kek_id and created_at.
func scanTenantKey(row pgx.Row) (*lethe.WrappedKey, error) {
	var k lethe.WrappedKey
	if err := row.Scan(&k.Version, &k.Wrapped, &k.KEKID, &k.CreatedAt); err != nil {
		return nil, err
	}
	k.CreatedAt = k.CreatedAt.UTC()
	return &k, nil
}

func errTenantGone(tenant string) error {
	return lethe.Errorf(lethe.EGONE, "tenant %s was erased", tenant)
}
