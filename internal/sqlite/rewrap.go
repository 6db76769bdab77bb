package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/lethe-privacy/lethe"
)

var _ lethe.KeyRewrapper = (*KeyStore)(nil)

// masterWrapped describes a table of keys the master key wraps directly,
// with the queries a rewrap runs on it. The tables are listed in the order
// of their kinds, which is the order StaleWrappedKeys returns keys in.
// Every query selects or matches a key by name and version; the secrets
// table has no versions, so its queries select 0 and ignore the version.
type masterWrapped struct {
	kind string
	// first lists stale keys from the start of the table, next after a
	// key; both walk the primary key, so a page costs its own length
	// (plus the rows already under the current key that it skips).
	first, next string
	nextArgs    func(currentKEK string, after lethe.StaleKey, limit int) []any
	update      string // the compare-and-swap: wrapped, kek_id, then the key, then the old kek_id and wrapped
	exists      string // the key
	keyArgs     func(k lethe.StaleKey) []any
}

var masterWrappedTables = []masterWrapped{
	{
		kind:  lethe.StaleSecret,
		first: `SELECT name, 0, wrapped, kek_id FROM secrets WHERE kek_id <> ? ORDER BY name LIMIT ?`,
		next:  `SELECT name, 0, wrapped, kek_id FROM secrets WHERE kek_id <> ? AND name > ? ORDER BY name LIMIT ?`,
		nextArgs: func(kek string, after lethe.StaleKey, limit int) []any {
			return []any{kek, after.Name, limit}
		},
		update:  `UPDATE secrets SET wrapped = ?, kek_id = ? WHERE name = ? AND kek_id = ? AND wrapped = ?`,
		exists:  `SELECT EXISTS (SELECT 1 FROM secrets WHERE name = ?)`,
		keyArgs: func(k lethe.StaleKey) []any { return []any{k.Name} },
	},
	{
		kind:  lethe.StaleTenantKey,
		first: `SELECT tenant, version, wrapped, kek_id FROM tenant_keys WHERE kek_id <> ? ORDER BY tenant, version LIMIT ?`,
		next: `SELECT tenant, version, wrapped, kek_id FROM tenant_keys WHERE kek_id <> ? AND (tenant, version) > (?, ?)
			ORDER BY tenant, version LIMIT ?`,
		nextArgs: func(kek string, after lethe.StaleKey, limit int) []any {
			return []any{kek, after.Name, after.Version, limit}
		},
		update:  `UPDATE tenant_keys SET wrapped = ?, kek_id = ? WHERE tenant = ? AND version = ? AND kek_id = ? AND wrapped = ?`,
		exists:  `SELECT EXISTS (SELECT 1 FROM tenant_keys WHERE tenant = ? AND version = ?)`,
		keyArgs: func(k lethe.StaleKey) []any { return []any{k.Name, k.Version} },
	},
}

const countStaleQuery = `SELECT (SELECT count(*) FROM secrets WHERE kek_id <> ?1) + (SELECT count(*) FROM tenant_keys WHERE kek_id <> ?1)`

// CountStaleWrappedKeys returns how many deployment secrets and tenant key
// versions are wrapped under another key than currentKEK. Any error is EINTERNAL.
func (s *KeyStore) CountStaleWrappedKeys(ctx context.Context, currentKEK string) (int, error) {
	var n int
	if err := s.db.queryRow(ctx, countStaleQuery, currentKEK).Scan(&n); err != nil {
		return 0, fmt.Errorf("count keys not under %s: %w", currentKEK, err)
	}
	return n, nil
}

// StaleWrappedKeys returns at most limit deployment secrets and tenant key
// versions wrapped under another key than currentKEK (none if limit is not
// positive), secrets first, each kind ordered by name byte by byte and then
// version, strictly after the key after; the zero lethe.StaleKey starts at the
// beginning. Any error is EINTERNAL.
func (s *KeyStore) StaleWrappedKeys(ctx context.Context, currentKEK string, after lethe.StaleKey, limit int) ([]lethe.StaleKey, error) {
	var out []lethe.StaleKey
	for _, t := range masterWrappedTables {
		if len(out) >= limit {
			break
		}
		var rows *sql.Rows
		var err error
		switch {
		case t.kind < after.Kind:
			continue // the cursor is past this whole table
		case t.kind == after.Kind:
			rows, err = s.db.query(ctx, t.next, t.nextArgs(currentKEK, after, limit-len(out))...)
		default:
			rows, err = s.db.query(ctx, t.first, currentKEK, limit-len(out))
		}
		if err != nil {
			return nil, fmt.Errorf("list keys not under %s: %w", currentKEK, err)
		}
		out, err = scanStaleKeys(rows, t.kind, out)
		if err != nil {
			return nil, fmt.Errorf("list keys not under %s: %w", currentKEK, err)
		}
	}
	return out, nil
}

func scanStaleKeys(rows *sql.Rows, kind string, out []lethe.StaleKey) ([]lethe.StaleKey, error) {
	defer rows.Close()
	for rows.Next() {
		k := lethe.StaleKey{Kind: kind}
		if err := rows.Scan(&k.Name, &k.Version, &k.Wrapped, &k.KEKID); err != nil {
			return nil, err
		}
		out = append(out, k)
	}
	return out, rows.Err()
}

// RewrapKey replaces the stored wrapping of k (for a tenant key, of its
// version k.Version) with newWrapped under newKEK if the key is still
// stored with k's Wrapped and KEKID. ECONFLICT if
// either changed; ENOTFOUND if the key is gone; EINVALID for an unknown
// kind; any other error is EINTERNAL.
//
// The update and, when it matched nothing, the check of why, run in one
// transaction on the write connection, so the answer is exact: no other
// write can come between them.
func (s *KeyStore) RewrapKey(ctx context.Context, k lethe.StaleKey, newWrapped []byte, newKEK string) error {
	var t *masterWrapped
	for i := range masterWrappedTables {
		if masterWrappedTables[i].kind == k.Kind {
			t = &masterWrappedTables[i]
		}
	}
	if t == nil {
		return lethe.Errorf(lethe.EINVALID, "unknown kind of wrapped key %q", k.Kind)
	}
	tx, err := s.db.write.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("rewrap %s %s: %w", k.Kind, staleKeyName(k), err)
	}
	defer tx.Rollback()
	args := append(append([]any{newWrapped, newKEK}, t.keyArgs(k)...), k.KEKID, k.Wrapped)
	res, err := tx.ExecContext(ctx, t.update, args...)
	if err != nil {
		return fmt.Errorf("rewrap %s %s: %w", k.Kind, staleKeyName(k), err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("rewrap %s %s: %w", k.Kind, staleKeyName(k), err)
	}
	if n == 0 {
		var exists bool
		if err := tx.QueryRowContext(ctx, t.exists, t.keyArgs(k)...).Scan(&exists); err != nil {
			return fmt.Errorf("rewrap %s %s: %w", k.Kind, staleKeyName(k), err)
		}
		if !exists {
			return lethe.Errorf(lethe.ENOTFOUND, "%s key %s is no longer stored", k.Kind, staleKeyName(k))
		}
		return lethe.Errorf(lethe.ECONFLICT, "%s key %s was changed meanwhile", k.Kind, staleKeyName(k))
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("rewrap %s %s: %w", k.Kind, staleKeyName(k), err)
	}
	return nil
}

// staleKeyName names k in errors: a secret by its name, a tenant key by
// its tenant and version.
func staleKeyName(k lethe.StaleKey) string {
	if k.Kind == lethe.StaleTenantKey {
		return fmt.Sprintf("%s v%d", k.Name, k.Version)
	}
	return k.Name
}
