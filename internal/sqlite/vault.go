package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/lethe-privacy/lethe"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

var _ lethe.VaultStore = (*VaultStore)(nil)

// VaultStore implements lethe.VaultStore in the data store. It is safe for
// concurrent use. Every query names the tenant, so a subject ID or a blind
// index from one tenant finds nothing in another.
//
// Writes run on the DB's one write connection, in transactions that begin
// IMMEDIATE, so a check and the write that depends on it (such as "the next
// version is latest+1") cannot interleave with another writer. Reads run on
// the read pool with prepared statements.
type VaultStore struct {
	db *DB
}

// NewVaultStore returns a VaultStore on db, which must be a data store (it
// panics on a key store). Closing db is the caller's job.
func NewVaultStore(db *DB) *VaultStore {
	db.mustHold(dataStore, "NewVaultStore")
	return &VaultStore{db: db}
}

// CreateSubject stores sub with its identifiers and first profile version
// in one transaction. ECONFLICT if the subject exists or another subject of
// the tenant holds one of the identifiers (the message names the kind only);
// EINVALID if two identifiers have the same kind. The identifiers and the
// version must name sub's tenant and ID, and the version must be 1; anything
// else is a bug in the caller and EINTERNAL.
func (s *VaultStore) CreateSubject(ctx context.Context, sub *lethe.Subject, ids []lethe.SealedIdentifier, first *lethe.SealedVersion) error {
	if err := lethe.CheckNewSubject(sub, ids, first); err != nil {
		return fmt.Errorf("create subject %s: %w", sub.ID, err)
	}
	// Creates are the vault's busiest write: they share commits (batch).
	return s.db.batch(ctx, func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO subjects (tenant, id, created_at) VALUES (?, ?, ?)`,
			sub.Tenant, sub.ID, sub.CreatedAt.UnixMicro())
		if constraint(err) == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY {
			return lethe.Errorf(lethe.ECONFLICT, "subject %s already exists", sub.ID)
		} else if err != nil {
			return fmt.Errorf("create subject %s: %w", sub.ID, err)
		}
		if err := setIdentifiers(ctx, tx, ids); err != nil {
			return fmt.Errorf("create subject %s: %w", sub.ID, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO profile_versions
			(tenant, subject_id, version, sealed, principal, created_at) VALUES (?, ?, ?, ?, ?, ?)`,
			first.Tenant, first.SubjectID, first.Version, first.Sealed, first.Principal, first.CreatedAt.UnixMicro()); err != nil {
			return fmt.Errorf("create subject %s: %w", sub.ID, err)
		}
		return nil
	})
}

// Subject returns the subject. ENOTFOUND if there is none; any other error
// is EINTERNAL.
func (s *VaultStore) Subject(ctx context.Context, tenant, id string) (*lethe.Subject, error) {
	var created int64
	err := s.db.queryRow(ctx, `SELECT created_at FROM subjects WHERE tenant = ? AND id = ?`, tenant, id).Scan(&created)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, errNoSubject(id)
	} else if err != nil {
		return nil, fmt.Errorf("get subject %s: %w", id, err)
	}
	return &lethe.Subject{ID: id, Tenant: tenant, CreatedAt: time.UnixMicro(created).UTC()}, nil
}

// SubjectByIdentifier returns the ID of the tenant's subject holding the
// identifier of kind with the given blind index. ENOTFOUND if none; any
// other error is EINTERNAL.
func (s *VaultStore) SubjectByIdentifier(ctx context.Context, tenant, kind string, index []byte) (string, error) {
	var id string
	err := s.db.queryRow(ctx, `SELECT subject_id FROM identifiers WHERE tenant = ? AND kind = ? AND idx = ?`,
		tenant, kind, index).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return "", lethe.Errorf(lethe.ENOTFOUND, "no subject has this %s", kind)
	} else if err != nil {
		return "", fmt.Errorf("find subject by %s: %w", kind, err)
	}
	return id, nil
}

// Identifiers returns the subject's identifiers ordered by kind; none if
// the subject does not exist. Any error is EINTERNAL.
func (s *VaultStore) Identifiers(ctx context.Context, tenant, subjectID string) ([]lethe.SealedIdentifier, error) {
	rows, err := s.db.query(ctx, `SELECT kind, idx, sealed FROM identifiers
		WHERE tenant = ? AND subject_id = ? ORDER BY kind`, tenant, subjectID)
	if err != nil {
		return nil, fmt.Errorf("list identifiers of subject %s: %w", subjectID, err)
	}
	defer rows.Close()
	var ids []lethe.SealedIdentifier
	for rows.Next() {
		id := lethe.SealedIdentifier{Tenant: tenant, SubjectID: subjectID}
		if err := rows.Scan(&id.Kind, &id.Index, &id.Sealed); err != nil {
			return nil, fmt.Errorf("list identifiers of subject %s: %w", subjectID, err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list identifiers of subject %s: %w", subjectID, err)
	}
	return ids, nil
}

// setIdentifiers stores ids, each replacing its subject's identifier of the
// same kind. They are written one by one so that a uniqueness violation
// tells which kind is taken: SQLite's message names only the columns.
func setIdentifiers(ctx context.Context, tx *sql.Tx, ids []lethe.SealedIdentifier) error {
	for _, id := range ids {
		_, err := tx.ExecContext(ctx, `INSERT INTO identifiers (tenant, subject_id, kind, idx, sealed) VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (tenant, subject_id, kind) DO UPDATE SET idx = excluded.idx, sealed = excluded.sealed`,
			id.Tenant, id.SubjectID, id.Kind, id.Index, id.Sealed)
		switch constraint(err) {
		case sqlite3.SQLITE_CONSTRAINT_UNIQUE:
			return errIdentifierTaken(id.Kind)
		case sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
			return errNoSubject(id.SubjectID)
		}
		if err != nil {
			return fmt.Errorf("set identifier %s: %w", id.Kind, err)
		}
	}
	return nil
}

// LatestVersion returns the subject's current profile version. ENOTFOUND
// if the subject does not exist; any other error is EINTERNAL.
func (s *VaultStore) LatestVersion(ctx context.Context, tenant, subjectID string) (*lethe.SealedVersion, error) {
	v := lethe.SealedVersion{Tenant: tenant, SubjectID: subjectID}
	var created, subjectCreated int64
	err := s.db.queryRow(ctx, `SELECT v.version, v.sealed, v.principal, v.created_at, s.created_at
		FROM profile_versions v JOIN subjects s ON s.tenant = v.tenant AND s.id = v.subject_id
		WHERE v.tenant = ? AND v.subject_id = ? ORDER BY v.version DESC LIMIT 1`, tenant, subjectID).
		Scan(&v.Version, &v.Sealed, &v.Principal, &created, &subjectCreated)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, errNoSubject(subjectID) // every subject has version 1
	} else if err != nil {
		return nil, fmt.Errorf("get latest version of subject %s: %w", subjectID, err)
	}
	v.CreatedAt = time.UnixMicro(created).UTC()
	v.SubjectCreatedAt = time.UnixMicro(subjectCreated).UTC()
	return &v, nil
}

// Versions returns every profile version of the subject, oldest first;
// none if the subject does not exist. Any error is EINTERNAL.
func (s *VaultStore) Versions(ctx context.Context, tenant, subjectID string) ([]lethe.SealedVersion, error) {
	rows, err := s.db.query(ctx, `SELECT version, sealed, principal, created_at FROM profile_versions
		WHERE tenant = ? AND subject_id = ? ORDER BY version`, tenant, subjectID)
	if err != nil {
		return nil, fmt.Errorf("list versions of subject %s: %w", subjectID, err)
	}
	defer rows.Close()
	var vs []lethe.SealedVersion
	for rows.Next() {
		v := lethe.SealedVersion{Tenant: tenant, SubjectID: subjectID}
		var created int64
		if err := rows.Scan(&v.Version, &v.Sealed, &v.Principal, &created); err != nil {
			return nil, fmt.Errorf("list versions of subject %s: %w", subjectID, err)
		}
		v.CreatedAt = time.UnixMicro(created).UTC()
		vs = append(vs, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list versions of subject %s: %w", subjectID, err)
	}
	return vs, nil
}

// appendVersion inserts a profile version if it is exactly one more than
// the subject's latest stored version, as one statement, so no other write
// can come between the check and the insert.
const appendVersion = `INSERT INTO profile_versions
	(tenant, subject_id, version, sealed, principal, created_at)
	SELECT ?1, ?2, ?3, ?4, ?5, ?6
	WHERE ?3 = 1 + (SELECT COALESCE(MAX(version), 0) FROM profile_versions WHERE tenant = ?1 AND subject_id = ?2)`

// AppendVersion stores v as its subject's new current version and, in the
// same transaction, removes the identifier kinds in remove (a kind the
// subject lacks is no error) and sets the identifiers in set, each
// replacing the subject's identifier of the same kind, whose old value is
// then free for other subjects. On any error nothing is changed.
//
// It returns lethe.ErrStaleVersion (wrapped) unless v.Version is exactly
// one more than the latest stored version; ECONFLICT naming the kind (and
// not ErrStaleVersion) if another subject of the tenant holds one of the
// new identifiers; ENOTFOUND if the subject does not exist; EINVALID if a
// kind appears twice in set, or in both set and remove. The identifiers must
// name v's subject; anything else is EINTERNAL.
//
// The transaction runs on the one write connection and begins IMMEDIATE,
// so no other write comes between the version check and the identifier
// changes. The primary key on (tenant, subject_id, version) would in any
// case refuse a second copy of a version, should another process write the
// same file; that too is reported as ErrStaleVersion.
func (s *VaultStore) AppendVersion(ctx context.Context, v *lethe.SealedVersion, set []lethe.SealedIdentifier, remove []string) error {
	if v == nil {
		return errors.New("append version: no version")
	}
	if err := lethe.CheckIdentifierChange(v.Tenant, v.SubjectID, set, remove); err != nil {
		return fmt.Errorf("append version %d of subject %s: %w", v.Version, v.SubjectID, err)
	}
	tx, err := s.db.write.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("append version %d of subject %s: %w", v.Version, v.SubjectID, err)
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, appendVersion,
		v.Tenant, v.SubjectID, v.Version, v.Sealed, v.Principal, v.CreatedAt.UnixMicro())
	switch constraint(err) {
	case sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
		return errNoSubject(v.SubjectID)
	case sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
		return errStaleVersion(v)
	}
	if err != nil {
		return fmt.Errorf("append version %d of subject %s: %w", v.Version, v.SubjectID, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("append version %d of subject %s: %w", v.Version, v.SubjectID, err)
	} else if n == 0 {
		// Not the next version: tell a missing subject from a stale version.
		var exists bool
		if err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM subjects WHERE tenant = ? AND id = ?)`,
			v.Tenant, v.SubjectID).Scan(&exists); err != nil {
			return fmt.Errorf("append version %d of subject %s: %w", v.Version, v.SubjectID, err)
		} else if !exists {
			return errNoSubject(v.SubjectID)
		}
		return errStaleVersion(v)
	}
	for _, kind := range remove {
		if _, err := tx.ExecContext(ctx, `DELETE FROM identifiers WHERE tenant = ? AND subject_id = ? AND kind = ?`,
			v.Tenant, v.SubjectID, kind); err != nil {
			return fmt.Errorf("append version %d of subject %s: %w", v.Version, v.SubjectID, err)
		}
	}
	if err := setIdentifiers(ctx, tx, set); err != nil {
		return fmt.Errorf("append version %d of subject %s: %w", v.Version, v.SubjectID, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("append version %d of subject %s: %w", v.Version, v.SubjectID, err)
	}
	return nil
}

// CreateTokens stores tokens in one transaction: all or none. ECONFLICT if
// a token exists already; ENOTFOUND if a token's subject does not exist.
// A token must be valid UTF-8 without NUL bytes (PostgreSQL could not store
// it otherwise); anything else is EINTERNAL.
func (s *VaultStore) CreateTokens(ctx context.Context, tokens []lethe.SealedToken) error {
	if len(tokens) == 0 {
		return nil
	}
	for i, t := range tokens {
		if !lethe.StorableToken(t.Token) {
			return fmt.Errorf("create tokens: token %d is not valid UTF-8 without NUL", i)
		}
	}
	tx, err := s.db.write.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("create tokens: %w", err)
	}
	defer tx.Rollback()
	// Prepared once for the batch, which may hold thousands.
	stmt, err := tx.PrepareContext(ctx, `INSERT INTO tokens
		(token, tenant, subject_id, field, sealed, created_at) VALUES (?, ?, ?, ?, ?, ?)`)
	if err != nil {
		return fmt.Errorf("create tokens: %w", err)
	}
	defer stmt.Close()
	for _, t := range tokens {
		_, err := stmt.ExecContext(ctx, t.Token, t.Tenant, t.SubjectID, t.Field, t.Sealed, t.CreatedAt.UnixMicro())
		switch constraint(err) {
		case sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
			return errTokenExists()
		case sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
			return errNoSubject(t.SubjectID)
		}
		if err != nil {
			return fmt.Errorf("create tokens: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("create tokens: %w", err)
	}
	return nil
}

// tokensQuery finds the tenant's tokens among a JSON array of them. The
// unary + keeps SQLite from answering through the tokens_subject index,
// which would read every token of the tenant: each token is to be looked up
// by the primary key, and then its tenant checked. TestQueryPlans holds it
// to that.
const tokensQuery = `SELECT token, subject_id, field, sealed, created_at FROM tokens
	WHERE token IN (SELECT value FROM json_each(?)) AND +tenant = ?`

// Tokens returns the tenant's tokens among the given ones, in no particular
// order; tokens not found, or of another tenant, are left out. Any error is
// EINTERNAL.
//
// The tokens go to SQLite as one JSON array parameter, read with json_each,
// rather than as an IN list of one parameter per token: one prepared
// statement serves every batch size, and no batch runs into SQLite's limit
// on parameters per statement.
func (s *VaultStore) Tokens(ctx context.Context, tenant string, tokens []string) ([]lethe.SealedToken, error) {
	valid := make([]string, 0, len(tokens))
	for _, t := range tokens {
		if lethe.StorableToken(t) { // no other can be stored
			valid = append(valid, t)
		}
	}
	if len(valid) == 0 {
		return nil, nil
	}
	list, err := json.Marshal(valid)
	if err != nil {
		return nil, fmt.Errorf("get tokens: %w", err)
	}
	rows, err := s.db.query(ctx, tokensQuery, string(list), tenant)
	if err != nil {
		return nil, fmt.Errorf("get tokens: %w", err)
	}
	defer rows.Close()
	found := make([]lethe.SealedToken, 0, len(valid))
	for rows.Next() {
		t := lethe.SealedToken{Tenant: tenant}
		var created int64
		if err := rows.Scan(&t.Token, &t.SubjectID, &t.Field, &t.Sealed, &created); err != nil {
			return nil, fmt.Errorf("get tokens: %w", err)
		}
		t.CreatedAt = time.UnixMicro(created).UTC()
		found = append(found, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("get tokens: %w", err)
	}
	return found, nil
}

// DeleteSubject deletes the subject; its identifiers, versions and tokens
// go with it by ON DELETE CASCADE. Deleting a subject that does not exist
// is not an error; any error is EINTERNAL.
func (s *VaultStore) DeleteSubject(ctx context.Context, tenant, id string) error {
	if _, err := s.db.write.ExecContext(ctx, `DELETE FROM subjects WHERE tenant = ? AND id = ?`, tenant, id); err != nil {
		return fmt.Errorf("delete subject %s: %w", id, err)
	}
	return nil
}

// DeleteTenant deletes every subject of the tenant; their identifiers,
// versions and tokens go with them by ON DELETE CASCADE. Any error is
// EINTERNAL.
func (s *VaultStore) DeleteTenant(ctx context.Context, tenant string) (int, error) {
	res, err := s.db.write.ExecContext(ctx, `DELETE FROM subjects WHERE tenant = ?`, tenant)
	if err != nil {
		return 0, fmt.Errorf("delete tenant %s: %w", tenant, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("delete tenant %s: %w", tenant, err)
	}
	return int(n), nil
}

func errNoSubject(id string) error {
	return lethe.Errorf(lethe.ENOTFOUND, "subject %s not found", id)
}

func errIdentifierTaken(kind string) error {
	return lethe.Errorf(lethe.ECONFLICT, "an identifier of kind %s is already held by another subject", kind)
}

// errStaleVersion wraps lethe.ErrStaleVersion, the very value, so that
// callers can match it with errors.Is.
func errStaleVersion(v *lethe.SealedVersion) error {
	return fmt.Errorf("append version %d of subject %s: %w", v.Version, v.SubjectID, lethe.ErrStaleVersion)
}

// errTokenExists does not name the token: tokens stand in for personal
// data, and error messages reach logs and callers.
func errTokenExists() error {
	return lethe.Errorf(lethe.ECONFLICT, "a token already exists")
}

// constraint returns the extended result code of err if it is a SQLite
// constraint violation (such as SQLITE_CONSTRAINT_UNIQUE), and 0 otherwise.
func constraint(err error) int {
	var e *sqlite.Error
	if errors.As(err, &e) && e.Code()&0xff == sqlite3.SQLITE_CONSTRAINT {
		return e.Code()
	}
	return 0
}
