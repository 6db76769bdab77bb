package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/lethe-privacy/lethe"
)

var _ lethe.TenantKeyRotator = (*KeyStore)(nil)

// The writes of a tenant key rotation take the tenant's advisory lock, like
// every key write (see KeyStore): adding a version and deleting old ones
// take it exclusively, so they wait for the subject keys being stored or
// rewrapped at that moment and hold new ones back for the few statements
// they run; rewraps take it shared, like creates. So the current version
// that a create or a rewrap reads cannot change before it commits, and once
// a version is added, every create and rewrap after it reads it: no subject
// key is stored under a version that a rotation has left behind.

// AddTenantKeyVersion stores k as version k.Version of the tenant's key,
// which must be one more than the current version. ECONFLICT if it is not;
// ENOTFOUND if the tenant has no key; EGONE if the tenant was erased;
// EINVALID if k.Version is below 2; any other error is EINTERNAL.
func (s *KeyStore) AddTenantKeyVersion(ctx context.Context, tenant string, k *lethe.WrappedKey) error {
	if k.Version < 2 {
		return lethe.Errorf(lethe.EINVALID, "a new version of tenant %s's key must be 2 or more, not %d", tenant, k.Version)
	}
	b := &pgx.Batch{}
	b.Queue(lockTenantExclusive, tenant)
	b.Queue(`INSERT INTO tenant_keys (tenant, version, wrapped, kek_id, created_at)
		SELECT $1::text, $2::integer, $3::bytea, $4::text, $5::timestamptz
		WHERE (SELECT max(version) FROM tenant_keys WHERE tenant = $1) = $2 - 1`,
		tenant, k.Version, k.Wrapped, k.KEKID, k.CreatedAt)
	inserted, err := execLocked(ctx, s.db.pool, b)
	if code, _ := pgError(err); code == uniqueViolation {
		return lethe.Errorf(lethe.ECONFLICT, "tenant %s already has key version %d", tenant, k.Version)
	} else if err != nil {
		return fmt.Errorf("add key version %d of tenant %s: %w", k.Version, tenant, err)
	} else if inserted == 0 {
		// The tenant has no key (ENOTFOUND or EGONE), or its current
		// version is not the one before k's.
		if _, err := s.TenantKey(ctx, tenant); err != nil {
			return err
		}
		return lethe.Errorf(lethe.ECONFLICT, "key version %d of tenant %s does not follow the current version: another rotation added a version meanwhile", k.Version, tenant)
	}
	return nil
}

// CountStaleSubjectKeys returns how many subject keys of the tenant are
// wrapped under another version of its key than version. Any error is
// EINTERNAL.
func (s *KeyStore) CountStaleSubjectKeys(ctx context.Context, tenant string, version int) (int, error) {
	var n int
	err := s.db.pool.QueryRow(ctx, `SELECT count(*) FROM subject_keys WHERE tenant = $1 AND kek_id <> ALL($2::text[])`,
		tenant, lethe.TenantKEKIDs(tenant, version)).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count subject keys of tenant %s not under version %d: %w", tenant, version, err)
	}
	return n, nil
}

// StaleSubjectKeys returns at most limit subject keys of the tenant wrapped
// under another version of its key than version (none if limit is not
// positive), ordered by subject ID byte by byte (collation "C"), strictly
// after the subject ID after. It walks the primary key from the cursor, so
// a page costs its own length plus the current keys it skips. Any error is
// EINTERNAL.
func (s *KeyStore) StaleSubjectKeys(ctx context.Context, tenant string, version int, after string, limit int) ([]lethe.StaleSubjectKey, error) {
	if limit <= 0 {
		return nil, nil
	}
	rows, err := s.db.pool.Query(ctx, `SELECT subject_id, wrapped, kek_id FROM subject_keys
		WHERE tenant = $1 AND subject_id > $2 AND kek_id <> ALL($3::text[])
		ORDER BY subject_id LIMIT $4`, tenant, after, lethe.TenantKEKIDs(tenant, version), limit)
	if err != nil {
		return nil, fmt.Errorf("list subject keys of tenant %s not under version %d: %w", tenant, version, err)
	}
	keys, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (lethe.StaleSubjectKey, error) {
		var k lethe.StaleSubjectKey
		err := row.Scan(&k.SubjectID, &k.Wrapped, &k.KEKID)
		return k, err
	})
	if err != nil {
		return nil, fmt.Errorf("list subject keys of tenant %s not under version %d: %w", tenant, version, err)
	}
	return keys, nil
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
// The compare-and-swaps are one UPDATE over the page: under READ
// COMMITTED, a row another transaction changed or deleted meanwhile is
// checked again on what that one committed, so it is never overwritten.
// Only the rows it did not update are looked up again, to tell an erased
// key from a changed one.
func (s *KeyStore) RewrapSubjectKeys(ctx context.Context, tenant string, version int, rewraps []lethe.SubjectKeyRewrap) ([]error, error) {
	if err := checkRewraps(tenant, rewraps); err != nil || len(rewraps) == 0 {
		return nil, err
	}
	op := fmt.Sprintf("rewrap subject keys of tenant %s under version %d", tenant, version)
	ids := make([]string, len(rewraps))
	oldKEKs := make([]string, len(rewraps))
	olds, news := make([][]byte, len(rewraps)), make([][]byte, len(rewraps))
	for i, r := range rewraps {
		ids[i], oldKEKs[i], olds[i], news[i] = r.Old.SubjectID, r.Old.KEKID, r.Old.Wrapped, r.NewWrapped
	}
	var results []error
	var current *int
	err := pgx.BeginFunc(ctx, s.db.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, lockTenantShared, tenant); err != nil {
			return err
		}
		if err := tx.QueryRow(ctx, `SELECT max(version) FROM tenant_keys WHERE tenant = $1`, tenant).Scan(&current); err != nil {
			return err
		}
		if current == nil || *current != version {
			return nil // nothing to do; the caller reports it
		}
		rows, err := tx.Query(ctx, `UPDATE subject_keys k SET wrapped = u.new, kek_id = $2
			FROM unnest($3::text[], $4::text[], $5::bytea[], $6::bytea[]) AS u(subject_id, old_kek, old, new)
			WHERE k.tenant = $1 AND k.subject_id = u.subject_id AND k.kek_id = u.old_kek AND k.wrapped = u.old
			RETURNING k.subject_id`, tenant, lethe.TenantKEKID(tenant, version), ids, oldKEKs, olds, news)
		if err != nil {
			return err
		}
		updated, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return err
		}
		done := make(map[string]bool, len(updated))
		for _, id := range updated {
			done[id] = true
		}
		var missed []string
		for _, id := range ids {
			if !done[id] {
				missed = append(missed, id)
			}
		}
		exists := map[string]bool{}
		if len(missed) > 0 {
			rows, err := tx.Query(ctx, `SELECT subject_id FROM subject_keys WHERE tenant = $1 AND subject_id = ANY($2::text[])`, tenant, missed)
			if err != nil {
				return err
			}
			found, err := pgx.CollectRows(rows, pgx.RowTo[string])
			if err != nil {
				return err
			}
			for _, id := range found {
				exists[id] = true
			}
		}
		results = make([]error, len(rewraps))
		for i, id := range ids {
			if !done[id] {
				results[i] = rewrapMiss(id, exists[id])
			}
		}
		return nil
	})
	switch {
	case err != nil:
		return nil, fmt.Errorf("%s: %w", op, err)
	case current == nil:
		if _, err := s.TenantKey(ctx, tenant); err != nil {
			return nil, err // ENOTFOUND or EGONE
		}
		return nil, fmt.Errorf("%s: the tenant's first key was made meanwhile: %w", op, lethe.ErrStaleTenantKey)
	case *current != version:
		return nil, fmt.Errorf("%s: the current version is %d: %w", op, *current, lethe.ErrStaleTenantKey)
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

// errVersionMissing stops DeleteTenantKeysBefore's transaction when the
// version to keep is not stored.
var errVersionMissing = errors.New("version not stored")

// DeleteTenantKeysBefore deletes every version of the tenant's key older
// than version, if no subject key of the tenant is wrapped under one of
// them, and returns how many it deleted. ECONFLICT if a subject key still
// is; ENOTFOUND if version is not stored; EGONE if the tenant was erased;
// any other error is EINTERNAL.
//
// It holds the tenant's exclusive lock while it reads every subject key of
// the tenant (there is no index by KEKID, which every create would pay
// for), so the tenant's creates wait for as long: a few milliseconds for
// ten thousand subjects. A rotation runs it once.
func (s *KeyStore) DeleteTenantKeysBefore(ctx context.Context, tenant string, version int) (int, error) {
	op := fmt.Sprintf("delete key versions of tenant %s before %d", tenant, version)
	var deleted int
	used := false
	err := pgx.BeginFunc(ctx, s.db.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, lockTenantExclusive, tenant); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT version FROM tenant_keys WHERE tenant = $1 AND version <= $2 ORDER BY version`, tenant, version)
		if err != nil {
			return err
		}
		versions, err := pgx.CollectRows(rows, pgx.RowTo[int])
		if err != nil {
			return err
		}
		if len(versions) == 0 || versions[len(versions)-1] != version {
			return errVersionMissing
		}
		older := versions[:len(versions)-1]
		if len(older) == 0 {
			return nil
		}
		var ids []string
		for _, v := range older {
			ids = append(ids, lethe.TenantKEKIDs(tenant, v)...)
		}
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM subject_keys WHERE tenant = $1 AND kek_id = ANY($2::text[]))`,
			tenant, ids).Scan(&used); err != nil {
			return err
		}
		if used {
			return nil
		}
		tag, err := tx.Exec(ctx, `DELETE FROM tenant_keys WHERE tenant = $1 AND version < $2`, tenant, version)
		deleted = int(tag.RowsAffected())
		return err
	})
	switch {
	case errors.Is(err, errVersionMissing):
		if _, err := s.TenantKeyVersion(ctx, tenant, version); err != nil {
			return 0, err // ENOTFOUND or EGONE
		}
		return 0, lethe.Errorf(lethe.ECONFLICT, "key version %d of tenant %s was added meanwhile; retry", version, tenant)
	case err != nil:
		return 0, fmt.Errorf("%s: %w", op, err)
	case used:
		return 0, lethe.Errorf(lethe.ECONFLICT, "subject keys of tenant %s are still wrapped under a key version before %d", tenant, version)
	}
	return deleted, nil
}
