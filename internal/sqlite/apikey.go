package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/lethe-privacy/lethe"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

var _ lethe.APIKeyStore = (*APIKeyStore)(nil)

// APIKeyStore implements lethe.APIKeyStore in the data store. It is safe for
// concurrent use. Times are stored as unix microseconds: PostgreSQL keeps
// microseconds too, so both engines return the same values, and unlike
// nanoseconds an int64 of microseconds spans every year a time.Time can
// print (an expiry of 9999-12-31 must not overflow).
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
	_, err := s.db.write.ExecContext(ctx, `INSERT INTO api_keys
		(id, name, role, tenant, hash, created_at, expires_at, revoked_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		k.ID, k.Name, string(k.Role), k.Tenant, k.Hash, k.CreatedAt.UnixMicro(), micros(k.ExpiresAt), micros(k.RevokedAt))
	var e *sqlite.Error
	if errors.As(err, &e) && (e.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE || e.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY) {
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
	// Every API request comes here, so the statement is prepared.
	k, err := scanAPIKey(s.db.queryRow(ctx,
		`SELECT id, name, role, tenant, hash, created_at, expires_at, revoked_at FROM api_keys WHERE hash = ?`, hash))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, lethe.Errorf(lethe.ENOTFOUND, "api key not found")
	} else if err != nil {
		return nil, fmt.Errorf("get api key by hash: %w", err)
	}
	return k, nil
}

// APIKeys lists all keys, oldest first; any error is EINTERNAL.
func (s *APIKeyStore) APIKeys(ctx context.Context) ([]*lethe.APIKey, error) {
	rows, err := s.db.read.QueryContext(ctx,
		`SELECT id, name, role, tenant, hash, created_at, expires_at, revoked_at FROM api_keys ORDER BY created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("list api keys: %w", err)
	}
	defer rows.Close()
	var keys []*lethe.APIKey
	for rows.Next() {
		k, err := scanAPIKey(rows)
		if err != nil {
			return nil, fmt.Errorf("list api keys: %w", err)
		}
		keys = append(keys, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list api keys: %w", err)
	}
	return keys, nil
}

// RevokeAPIKey marks key id revoked at time at. ENOTFOUND if there is no
// such key; any other error is EINTERNAL. Revoking a revoked key keeps its
// first revocation time.
func (s *APIKeyStore) RevokeAPIKey(ctx context.Context, id string, at time.Time) error {
	res, err := s.db.write.ExecContext(ctx,
		`UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?`, at.UnixMicro(), id)
	if err != nil {
		return fmt.Errorf("revoke api key %s: %w", id, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("revoke api key %s: %w", id, err)
	} else if n == 0 {
		return lethe.Errorf(lethe.ENOTFOUND, "api key %s not found", id)
	}
	return nil
}

func scanAPIKey(row scanner) (*lethe.APIKey, error) {
	var k lethe.APIKey
	var created int64
	var expires, revoked sql.NullInt64
	if err := row.Scan(&k.ID, &k.Name, &k.Role, &k.Tenant, &k.Hash, &created, &expires, &revoked); err != nil {
		return nil, err
	}
	k.CreatedAt = time.UnixMicro(created).UTC()
	k.ExpiresAt = fromMicros(expires)
	k.RevokedAt = fromMicros(revoked)
	return &k, nil
}

// micros encodes an optional time for a nullable column.
func micros(t *time.Time) any {
	if t == nil {
		return nil
	}
	return t.UnixMicro()
}

func fromMicros(n sql.NullInt64) *time.Time {
	if !n.Valid {
		return nil
	}
	t := time.UnixMicro(n.Int64).UTC()
	return &t
}
