package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/lethe-privacy/lethe"
)

var _ lethe.APIKeyStore = (*APIKeyStore)(nil)

// APIKeyStore implements lethe.APIKeyStore in the data store. It is safe for
// concurrent use. Times are timestamptz, which keeps microseconds; they are
// returned in UTC.
type APIKeyStore struct {
	db *DB
}

// NewAPIKeyStore returns an APIKeyStore on db, which must be a data store
// (it panics on a key store). Closing db is the caller's job.
func NewAPIKeyStore(db *DB) *APIKeyStore {
	db.mustHold(dataStore, "NewAPIKeyStore")
	return &APIKeyStore{db: db}
}

// CreateAPIKey stores k. ECONFLICT if its ID or hash already exists; any
// other error is EINTERNAL.
func (s *APIKeyStore) CreateAPIKey(ctx context.Context, k *lethe.APIKey) error {
	_, err := s.db.pool.Exec(ctx, `INSERT INTO api_keys
		(id, name, role, tenant, hash, created_at, expires_at, revoked_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
		k.ID, k.Name, string(k.Role), k.Tenant, k.Hash, k.CreatedAt, k.ExpiresAt, k.RevokedAt)
	var e *pgconn.PgError
	if errors.As(err, &e) && e.Code == "23505" { // unique_violation
		return lethe.Errorf(lethe.ECONFLICT, "api key %s: its id or secret is already in use", k.ID)
	} else if err != nil {
		return fmt.Errorf("create api key %s: %w", k.ID, err)
	}
	return nil
}

// APIKeyByHash returns the key whose secret hashes to hash, revoked and
// expired keys included. ENOTFOUND if there is none; any other error is
// EINTERNAL.
func (s *APIKeyStore) APIKeyByHash(ctx context.Context, hash []byte) (*lethe.APIKey, error) {
	k, err := scanAPIKey(s.db.pool.QueryRow(ctx,
		`SELECT id, name, role, tenant, hash, created_at, expires_at, revoked_at FROM api_keys WHERE hash = $1`, hash))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, lethe.Errorf(lethe.ENOTFOUND, "api key not found")
	} else if err != nil {
		return nil, fmt.Errorf("get api key by hash: %w", err)
	}
	return k, nil
}

// APIKeys lists all keys, oldest first; any error is EINTERNAL.
func (s *APIKeyStore) APIKeys(ctx context.Context) ([]*lethe.APIKey, error) {
	rows, err := s.db.pool.Query(ctx,
		`SELECT id, name, role, tenant, hash, created_at, expires_at, revoked_at FROM api_keys ORDER BY created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("list api keys: %w", err)
	}
	keys, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (*lethe.APIKey, error) { return scanAPIKey(row) })
	if err != nil {
		return nil, fmt.Errorf("list api keys: %w", err)
	}
	return keys, nil
}

// RevokeAPIKey marks key id revoked at time at. ENOTFOUND if there is no
// such key; any other error is EINTERNAL. Revoking a revoked key keeps its
// first revocation time.
func (s *APIKeyStore) RevokeAPIKey(ctx context.Context, id string, at time.Time) error {
	tag, err := s.db.pool.Exec(ctx, `UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $1) WHERE id = $2`, at, id)
	if err != nil {
		return fmt.Errorf("revoke api key %s: %w", id, err)
	} else if tag.RowsAffected() == 0 {
		return lethe.Errorf(lethe.ENOTFOUND, "api key %s not found", id)
	}
	return nil
}

func scanAPIKey(row pgx.Row) (*lethe.APIKey, error) {
	var k lethe.APIKey
	if err := row.Scan(&k.ID, &k.Name, &k.Role, &k.Tenant, &k.Hash, &k.CreatedAt, &k.ExpiresAt, &k.RevokedAt); err != nil {
		return nil, err
	}
	// pgx returns times in the local zone.
	k.CreatedAt = k.CreatedAt.UTC()
	k.ExpiresAt = utc(k.ExpiresAt)
	k.RevokedAt = utc(k.RevokedAt)
	return &k, nil
}

func utc(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}
