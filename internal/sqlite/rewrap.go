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
type masterWrapped struct {
	kind string
	// first lists stale keys from the start of the table, next after a
	// name; both walk the primary key, so a page costs its own length
	// (plus the rows already under the current key that it skips).
	first, next string
	update      string // the compare-and-swap
	exists      string
}

func newMasterWrapped(kind, table, column string) masterWrapped {
	sel := fmt.Sprintf(`SELECT %[2]s, wrapped, kek_id FROM %[1]s WHERE kek_id <> ?`, table, column)
	return masterWrapped{
		kind:   kind,
		first:  sel + fmt.Sprintf(` ORDER BY %s LIMIT ?`, column),
		next:   sel + fmt.Sprintf(` AND %[1]s > ? ORDER BY %[1]s LIMIT ?`, column),
		update: fmt.Sprintf(`UPDATE %s SET wrapped = ?, kek_id = ? WHERE %s = ? AND kek_id = ? AND wrapped = ?`, table, column),
		exists: fmt.Sprintf(`SELECT EXISTS (SELECT 1 FROM %s WHERE %s = ?)`, table, column),
	}
}

var masterWrappedTables = []masterWrapped{
	newMasterWrapped(lethe.StaleSecret, "secrets", "name"),
	newMasterWrapped(lethe.StaleTenantKey, "tenant_keys", "tenant"),
}

const countStaleQuery = `SELECT (SELECT count(*) FROM secrets WHERE kek_id <> ?1) + (SELECT count(*) FROM tenant_keys WHERE kek_id <> ?1)`

// CountStaleWrappedKeys returns how many deployment secrets and tenant keys
// are wrapped under another key than currentKEK. Any error is EINTERNAL.
func (s *KeyStore) CountStaleWrappedKeys(ctx context.Context, currentKEK string) (int, error) {
	var n int
	if err := s.db.queryRow(ctx, countStaleQuery, currentKEK).Scan(&n); err != nil {
		return 0, fmt.Errorf("count keys not under %s: %w", currentKEK, err)
	}
	return n, nil
}

// StaleWrappedKeys returns at most limit deployment secrets and tenant keys
// wrapped under another key than currentKEK (none if limit is not
// positive), secrets first, each kind ordered by name byte by byte,
// strictly after the key after; the zero lethe.StaleKey starts at the
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
			rows, err = s.db.query(ctx, t.next, currentKEK, after.Name, limit-len(out))
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
		if err := rows.Scan(&k.Name, &k.Wrapped, &k.KEKID); err != nil {
			return nil, err
		}
		out = append(out, k)
	}
	return out, rows.Err()
}

// RewrapKey replaces the stored wrapping of k with newWrapped under newKEK
// if the key is still stored with k's Wrapped and KEKID. ECONFLICT if
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
		return fmt.Errorf("rewrap %s %s: %w", k.Kind, k.Name, err)
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, t.update, newWrapped, newKEK, k.Name, k.KEKID, k.Wrapped)
	if err != nil {
		return fmt.Errorf("rewrap %s %s: %w", k.Kind, k.Name, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("rewrap %s %s: %w", k.Kind, k.Name, err)
	}
	if n == 0 {
		var exists bool
		if err := tx.QueryRowContext(ctx, t.exists, k.Name).Scan(&exists); err != nil {
			return fmt.Errorf("rewrap %s %s: %w", k.Kind, k.Name, err)
		}
		if !exists {
			return lethe.Errorf(lethe.ENOTFOUND, "%s key %s is no longer stored", k.Kind, k.Name)
		}
		return lethe.Errorf(lethe.ECONFLICT, "%s key %s was changed meanwhile", k.Kind, k.Name)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("rewrap %s %s: %w", k.Kind, k.Name, err)
	}
	return nil
}
