package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/lethe-privacy/lethe"
	sqlite3 "modernc.org/sqlite/lib"
)

var _ lethe.TenantKeyRotator = (*KeyStore)(nil)

// A tenant key rotation's writes check the tenant's current version in the
// transaction that writes, on the one write connection, as CreateSubjectKey
// does: no other write, of this process or another (SQLite locks the file),
// can add or delete a version in between.

// AddTenantKeyVersion stores k as version k.Version of the tenant's key,
// which must be one more than the current version. ECONFLICT if it is not;
// ENOTFOUND if the tenant has no key; EGONE if the tenant was erased;
// EINVALID if k.Version is below 2; any other error is EINTERNAL.
func (s *KeyStore) AddTenantKeyVersion(ctx context.Context, tenant string, k *lethe.WrappedKey) error {
	if k.Version < 2 {
		return lethe.Errorf(lethe.EINVALID, "a new version of tenant %s's key must be 2 or more, not %d", tenant, k.Version)
	}
	res, err := s.db.write.ExecContext(ctx, `INSERT INTO tenant_keys (tenant, version, wrapped, kek_id, created_at)
		SELECT ?1, ?2, ?3, ?4, ?5
		WHERE (SELECT max(version) FROM tenant_keys WHERE tenant = ?1) = ?2 - 1`,
		tenant, k.Version, k.Wrapped, k.KEKID, k.CreatedAt.UnixMicro())
	if constraint(err) == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY {
		return lethe.Errorf(lethe.ECONFLICT, "tenant %s already has key version %d", tenant, k.Version)
	} else if err != nil {
		return fmt.Errorf("add key version %d of tenant %s: %w", k.Version, tenant, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("add key version %d of tenant %s: %w", k.Version, tenant, err)
	} else if n == 0 {
		// The tenant has no key (ENOTFOUND or EGONE), or its current
		// version is not the one before k's.
		if _, err := s.TenantKey(ctx, tenant); err != nil {
			return err
		}
		return lethe.Errorf(lethe.ECONFLICT, "key version %d of tenant %s does not follow the current version: another rotation added a version meanwhile", k.Version, tenant)
	}
	return nil
}

// staleSubjectKeysQuery lists a page of a tenant's subject keys not under
// a version's KEKIDs. It walks the primary key from the cursor, so a page
// costs its own length plus the keys already under the version that it
// skips. TestTenantKeyQueryPlans holds it to that.
const staleSubjectKeysQuery = `SELECT subject_id, wrapped, kek_id FROM subject_keys
	WHERE tenant = ?1 AND subject_id > ?2 AND kek_id NOT IN (?3, ?4)
	ORDER BY subject_id LIMIT ?5`

// versionKEKIDs returns the two KEKIDs naming version of tenant's key, the
// same one twice when there is only one.
func versionKEKIDs(tenant string, version int) (string, string) {
	ids := lethe.TenantKEKIDs(tenant, version)
	return ids[0], ids[len(ids)-1]
}

// CountStaleSubjectKeys returns how many subject keys of the tenant are
// wrapped under another version of its key than version. Any error is
// EINTERNAL.
func (s *KeyStore) CountStaleSubjectKeys(ctx context.Context, tenant string, version int) (int, error) {
	id, legacy := versionKEKIDs(tenant, version)
	var n int
	err := s.db.queryRow(ctx, `SELECT count(*) FROM subject_keys WHERE tenant = ? AND kek_id NOT IN (?, ?)`,
		tenant, id, legacy).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count subject keys of tenant %s not under version %d: %w", tenant, version, err)
	}
	return n, nil
}

// StaleSubjectKeys returns at most limit subject keys of the tenant wrapped
// under another version of its key than version (none if limit is not
// positive), ordered by subject ID byte by byte, strictly after the subject
// ID after. Any error is EINTERNAL.
func (s *KeyStore) StaleSubjectKeys(ctx context.Context, tenant string, version int, after string, limit int) ([]lethe.StaleSubjectKey, error) {
	if limit <= 0 {
		return nil, nil
	}
	id, legacy := versionKEKIDs(tenant, version)
	rows, err := s.db.query(ctx, staleSubjectKeysQuery, tenant, after, id, legacy, limit)
	if err != nil {
		return nil, fmt.Errorf("list subject keys of tenant %s not under version %d: %w", tenant, version, err)
	}
	defer rows.Close()
	var out []lethe.StaleSubjectKey
	for rows.Next() {
		var k lethe.StaleSubjectKey
		if err := rows.Scan(&k.SubjectID, &k.Wrapped, &k.KEKID); err != nil {
			return nil, fmt.Errorf("list subject keys of tenant %s not under version %d: %w", tenant, version, err)
		}
		out = append(out, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list subject keys of tenant %s not under version %d: %w", tenant, version, err)
	}
	return out, nil
}

// RewrapSubjectKeys stores each rewrap's NewWrapped under version of the
// tenant's key, each only if the subject key is still stored as listed,
// all in one transaction, and returns one result per rewrap: nil, ECONFLICT
// (changed) or ENOTFOUND (erased). The whole call changes nothing and fails
// with lethe.ErrStaleTenantKey (wrapped) if version is not the tenant's
// current one; with EGONE if the tenant was erased, ENOTFOUND if it has no
// key, EINVALID for an empty or repeated subject ID; any other error is
// EINTERNAL.
//
// One transaction for a page of keys costs one sync of the WAL, not one
// per key, which is what makes rotating a large tenant fast.
func (s *KeyStore) RewrapSubjectKeys(ctx context.Context, tenant string, version int, rewraps []lethe.SubjectKeyRewrap) ([]error, error) {
	if err := checkRewraps(tenant, rewraps); err != nil || len(rewraps) == 0 {
		return nil, err
	}
	op := fmt.Sprintf("rewrap subject keys of tenant %s under version %d", tenant, version)
	tx, err := s.db.write.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	defer tx.Rollback()
	var current sql.NullInt64
	if err := tx.QueryRowContext(ctx, `SELECT max(version) FROM tenant_keys WHERE tenant = ?`, tenant).Scan(&current); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	if !current.Valid {
		tx.Rollback()
		if _, err := s.TenantKey(ctx, tenant); err != nil {
			return nil, err // ENOTFOUND or EGONE
		}
		return nil, fmt.Errorf("%s: the tenant's first key was made meanwhile: %w", op, lethe.ErrStaleTenantKey)
	} else if current.Int64 != int64(version) {
		return nil, fmt.Errorf("%s: the current version is %d: %w", op, current.Int64, lethe.ErrStaleTenantKey)
	}
	update, err := tx.PrepareContext(ctx, `UPDATE subject_keys SET wrapped = ?, kek_id = ?
		WHERE tenant = ? AND subject_id = ? AND kek_id = ? AND wrapped = ?`)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	defer update.Close()
	newKEK := lethe.TenantKEKID(tenant, version)
	results := make([]error, len(rewraps))
	for i, r := range rewraps {
		res, err := update.ExecContext(ctx, r.NewWrapped, newKEK, tenant, r.Old.SubjectID, r.Old.KEKID, r.Old.Wrapped)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", op, err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return nil, fmt.Errorf("%s: %w", op, err)
		} else if n == 1 {
			continue
		}
		var exists bool
		if err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM subject_keys WHERE tenant = ? AND subject_id = ?)`,
			tenant, r.Old.SubjectID).Scan(&exists); err != nil {
			return nil, fmt.Errorf("%s: %w", op, err)
		}
		results[i] = rewrapMiss(r.Old.SubjectID, exists)
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	return results, nil
}

// checkRewraps returns EINVALID if a rewrap names no subject or the same
// subject as another.
func checkRewraps(tenant string, rewraps []lethe.SubjectKeyRewrap) error {
	seen := make(map[string]bool, len(rewraps))
	for _, r := range rewraps {
		if r.Old.SubjectID == "" || seen[r.Old.SubjectID] {
			return lethe.Errorf(lethe.EINVALID, "rewrap subject keys of tenant %s: each rewrap must name a subject of its own", tenant)
		}
		seen[r.Old.SubjectID] = true
	}
	return nil
}

// rewrapMiss is the result of a rewrap whose compare-and-swap matched no
// row: the key changed if it still exists, else it was erased.
func rewrapMiss(subjectID string, exists bool) error {
	if exists {
		return lethe.Errorf(lethe.ECONFLICT, "the key of subject %s was changed meanwhile", subjectID)
	}
	return lethe.Errorf(lethe.ENOTFOUND, "the key of subject %s is no longer stored", subjectID)
}

// DeleteTenantKeysBefore deletes every version of the tenant's key older
// than version, if no subject key of the tenant is wrapped under one of
// them, and returns how many it deleted. ECONFLICT if a subject key still
// is; ENOTFOUND if version is not stored; EGONE if the tenant was erased;
// any other error is EINTERNAL.
//
// The check reads every subject key of the tenant (there is no index by
// KEKID, which every create would pay for), inside the write transaction,
// so it holds the key store's writes up for as long: a few milliseconds
// for ten thousand subjects. A rotation runs it once.
func (s *KeyStore) DeleteTenantKeysBefore(ctx context.Context, tenant string, version int) (int, error) {
	op := fmt.Sprintf("delete key versions of tenant %s before %d", tenant, version)
	tx, err := s.db.write.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", op, err)
	}
	defer tx.Rollback()
	rows, err := tx.QueryContext(ctx, `SELECT version FROM tenant_keys WHERE tenant = ? AND version <= ? ORDER BY version`, tenant, version)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", op, err)
	}
	var older []int
	found := false
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			rows.Close()
			return 0, fmt.Errorf("%s: %w", op, err)
		}
		if v == version {
			found = true
		} else {
			older = append(older, v)
		}
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return 0, fmt.Errorf("%s: %w", op, err)
	}
	if !found {
		tx.Rollback()
		if _, err := s.TenantKeyVersion(ctx, tenant, version); err != nil {
			return 0, err // ENOTFOUND or EGONE
		}
		return 0, lethe.Errorf(lethe.ECONFLICT, "key version %d of tenant %s was added meanwhile; retry", version, tenant)
	}
	if len(older) == 0 {
		return 0, nil
	}
	args := []any{tenant}
	for _, v := range older {
		for _, id := range lethe.TenantKEKIDs(tenant, v) {
			args = append(args, id)
		}
	}
	var used bool
	err = tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM subject_keys WHERE tenant = ? AND kek_id IN (?`+
		strings.Repeat(", ?", len(args)-2)+`))`, args...).Scan(&used)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", op, err)
	}
	if used {
		return 0, lethe.Errorf(lethe.ECONFLICT, "subject keys of tenant %s are still wrapped under a key version before %d", tenant, version)
	}
	res, err := tx.ExecContext(ctx, `DELETE FROM tenant_keys WHERE tenant = ? AND version < ?`, tenant, version)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", op, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("%s: %w", op, err)
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("%s: %w", op, err)
	}
	return int(n), nil
}
