package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
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
	// key; both walk the primary key (collation "C", so byte order), so a
	// page costs its own length plus the current keys it skips.
	first, next string
	nextArgs    func(currentKEK string, after lethe.StaleKey, limit int) []any
	update      string // the compare-and-swap: wrapped, kek_id, then the key, then the old kek_id and wrapped
	exists      string // the key
	keyArgs     func(k lethe.StaleKey) []any
}

var masterWrappedTables = []masterWrapped{
	{
		kind:  lethe.StaleSecret,
		first: `SELECT name, 0, wrapped, kek_id FROM secrets WHERE kek_id <> $1 ORDER BY name LIMIT $2`,
		next:  `SELECT name, 0, wrapped, kek_id FROM secrets WHERE kek_id <> $1 AND name > $2 ORDER BY name LIMIT $3`,
		nextArgs: func(kek string, after lethe.StaleKey, limit int) []any {
			return []any{kek, after.Name, limit}
		},
		update:  `UPDATE secrets SET wrapped = $1, kek_id = $2 WHERE name = $3 AND kek_id = $4 AND wrapped = $5`,
		exists:  `SELECT EXISTS (SELECT 1 FROM secrets WHERE name = $1)`,
		keyArgs: func(k lethe.StaleKey) []any { return []any{k.Name} },
	},
	{
		kind:  lethe.StaleTenantKey,
		first: `SELECT tenant, version, wrapped, kek_id FROM tenant_keys WHERE kek_id <> $1 ORDER BY tenant, version LIMIT $2`,
		next: `SELECT tenant, version, wrapped, kek_id FROM tenant_keys WHERE kek_id <> $1 AND (tenant, version) > ($2, $3)
			ORDER BY tenant, version LIMIT $4`,
		nextArgs: func(kek string, after lethe.StaleKey, limit int) []any {
			return []any{kek, after.Name, after.Version, limit}
		},
		update:  `UPDATE tenant_keys SET wrapped = $1, kek_id = $2 WHERE tenant = $3 AND version = $4 AND kek_id = $5 AND wrapped = $6`,
		exists:  `SELECT EXISTS (SELECT 1 FROM tenant_keys WHERE tenant = $1 AND version = $2)`,
		keyArgs: func(k lethe.StaleKey) []any { return []any{k.Name, k.Version} },
	},
}

// CountStaleWrappedKeys returns how many deployment secrets and tenant key
// versions are wrapped under another key than currentKEK. Any error is EINTERNAL.
func (s *KeyStore) CountStaleWrappedKeys(ctx context.Context, currentKEK string) (int, error) {
	var n int
	err := s.db.pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM secrets WHERE kek_id <> $1)
		+ (SELECT count(*) FROM tenant_keys WHERE kek_id <> $1)`, currentKEK).Scan(&n)
	if err != nil {
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
		var rows pgx.Rows
		var err error
		switch {
		case t.kind < after.Kind:
			continue // the cursor is past this whole table
		case t.kind == after.Kind:
			rows, err = s.db.pool.Query(ctx, t.next, t.nextArgs(currentKEK, after, limit-len(out))...)
		default:
			rows, err = s.db.pool.Query(ctx, t.first, currentKEK, limit-len(out))
		}
		if err != nil {
			return nil, fmt.Errorf("list keys not under %s: %w", currentKEK, err)
		}
		page, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (lethe.StaleKey, error) {
			k := lethe.StaleKey{Kind: t.kind}
			err := row.Scan(&k.Name, &k.Version, &k.Wrapped, &k.KEKID)
			return k, err
		})
		if err != nil {
			return nil, fmt.Errorf("list keys not under %s: %w", currentKEK, err)
		}
		out = append(out, page...)
	}
	return out, nil
}

// RewrapKey replaces the stored wrapping of k (for a tenant key, of its
// version k.Version) with newWrapped under newKEK if the key is still
// stored with k's Wrapped and KEKID. ECONFLICT if
// either changed; ENOTFOUND if the key is gone; EINVALID for an unknown
// kind; any other error is EINTERNAL.
//
// The update is a compare-and-swap on its own: under READ COMMITTED, an
// update that waited for a concurrent rewrap or deletion of the row checks
// its condition again on what that one committed, so it never overwrites
// it. It takes none of the advisory locks that key creation and
// destruction take: it never inserts, so it cannot store a key for an
// erased tenant. Only when it matched nothing does a second statement, on
// a fresh snapshot, tell a deleted key from a changed one.
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
	args := append(append([]any{newWrapped, newKEK}, t.keyArgs(k)...), k.KEKID, k.Wrapped)
	tag, err := s.db.pool.Exec(ctx, t.update, args...)
	if err != nil {
		return fmt.Errorf("rewrap %s %s: %w", k.Kind, staleKeyName(k), err)
	}
	if tag.RowsAffected() == 1 {
		return nil
	}
	var exists bool
	if err := s.db.pool.QueryRow(ctx, t.exists, t.keyArgs(k)...).Scan(&exists); err != nil {
		return fmt.Errorf("rewrap %s %s: %w", k.Kind, staleKeyName(k), err)
	}
	if !exists {
		return lethe.Errorf(lethe.ENOTFOUND, "%s key %s is no longer stored", k.Kind, staleKeyName(k))
	}
	return lethe.Errorf(lethe.ECONFLICT, "%s key %s was changed meanwhile", k.Kind, staleKeyName(k))
}

// staleKeyName names k in errors: a secret by its name, a tenant key by
// its tenant and version.
func staleKeyName(k lethe.StaleKey) string {
	if k.Kind == lethe.StaleTenantKey {
		return fmt.Sprintf("%s v%d", k.Name, k.Version)
	}
	return k.Name
}
