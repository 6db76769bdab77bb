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

var _ lethe.VaultStore = (*VaultStore)(nil)

// VaultStore implements lethe.VaultStore in the data store. It is safe for
// concurrent use, also by several lethe instances sharing the database.
// Every query names the tenant, so a subject ID or a blind index from one
// tenant finds nothing in another. Times are timestamptz, which keeps
// microseconds; they are returned in UTC.
//
// A write of several statements is sent as one pgx batch: one round trip,
// which PostgreSQL runs as one implicit transaction, all or nothing.
type VaultStore struct {
	db *DB
}

// NewVaultStore returns a VaultStore on db, which must be a data store (it
// panics on a key store). Closing db is the caller's job.
func NewVaultStore(db *DB) *VaultStore {
	db.mustHold(dataStore, "NewVaultStore")
	return &VaultStore{db: db}
}

// upsertIdentifier stores an identifier, replacing the subject's identifier
// of the same kind. Another subject's identifier with the same index is not
// the conflict target, so it violates identifiers_index_key instead.
const upsertIdentifier = `INSERT INTO identifiers (tenant, subject_id, kind, idx, sealed) VALUES ($1, $2, $3, $4, $5)
	ON CONFLICT (tenant, subject_id, kind) DO UPDATE SET idx = excluded.idx, sealed = excluded.sealed`

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
	b := &pgx.Batch{}
	b.Queue(`INSERT INTO subjects (tenant, id, created_at) VALUES ($1, $2, $3)`, sub.Tenant, sub.ID, sub.CreatedAt)
	for _, id := range ids {
		b.Queue(upsertIdentifier, id.Tenant, id.SubjectID, id.Kind, id.Index, id.Sealed)
	}
	b.Queue(`INSERT INTO profile_versions (tenant, subject_id, version, sealed, principal, created_at)
		VALUES ($1, $2, $3, $4, $5, $6)`,
		first.Tenant, first.SubjectID, first.Version, first.Sealed, first.Principal, first.CreatedAt)
	br := s.db.pool.SendBatch(ctx, b)
	defer br.Close()
	_, err := br.Exec()
	if code, _ := pgError(err); code == uniqueViolation {
		return lethe.Errorf(lethe.ECONFLICT, "subject %s already exists", sub.ID)
	} else if err != nil {
		return fmt.Errorf("create subject %s: %w", sub.ID, err)
	}
	if err := setIdentifiers(br, ids); err != nil {
		return fmt.Errorf("create subject %s: %w", sub.ID, err)
	}
	if _, err := br.Exec(); err != nil {
		return fmt.Errorf("create subject %s: %w", sub.ID, err)
	}
	if err := br.Close(); err != nil { // the commit
		return fmt.Errorf("create subject %s: %w", sub.ID, err)
	}
	return nil
}

// setIdentifiers reads the results of upsertIdentifier queued for each of
// ids, in order, so that a uniqueness violation tells which kind is taken.
func setIdentifiers(br pgx.BatchResults, ids []lethe.SealedIdentifier) error {
	for _, id := range ids {
		_, err := br.Exec()
		switch code, constraint := pgError(err); {
		case code == uniqueViolation && constraint == "identifiers_index_key":
			return errIdentifierTaken(id.Kind)
		case code == foreignKeyViolation:
			return errNoSubject(id.SubjectID)
		case err != nil:
			return fmt.Errorf("set identifier %s: %w", id.Kind, err)
		}
	}
	return nil
}

// Subject returns the subject. ENOTFOUND if there is none; any other error
// is EINTERNAL.
func (s *VaultStore) Subject(ctx context.Context, tenant, id string) (*lethe.Subject, error) {
	sub := lethe.Subject{ID: id, Tenant: tenant}
	err := s.db.pool.QueryRow(ctx, `SELECT created_at FROM subjects WHERE tenant = $1 AND id = $2`, tenant, id).
		Scan(&sub.CreatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, errNoSubject(id)
	} else if err != nil {
		return nil, fmt.Errorf("get subject %s: %w", id, err)
	}
	sub.CreatedAt = sub.CreatedAt.UTC()
	return &sub, nil
}

// SubjectByIdentifier returns the ID of the tenant's subject holding the
// identifier of kind with the given blind index. ENOTFOUND if none; any
// other error is EINTERNAL.
func (s *VaultStore) SubjectByIdentifier(ctx context.Context, tenant, kind string, index []byte) (string, error) {
	var id string
	err := s.db.pool.QueryRow(ctx, `SELECT subject_id FROM identifiers WHERE tenant = $1 AND kind = $2 AND idx = $3`,
		tenant, kind, index).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", lethe.Errorf(lethe.ENOTFOUND, "no subject has this %s", kind)
	} else if err != nil {
		return "", fmt.Errorf("find subject by %s: %w", kind, err)
	}
	return id, nil
}

// Identifiers returns the subject's identifiers ordered by kind; none if
// the subject does not exist. Any error is EINTERNAL.
func (s *VaultStore) Identifiers(ctx context.Context, tenant, subjectID string) ([]lethe.SealedIdentifier, error) {
	rows, err := s.db.pool.Query(ctx, `SELECT kind, idx, sealed FROM identifiers
		WHERE tenant = $1 AND subject_id = $2 ORDER BY kind`, tenant, subjectID)
	if err != nil {
		return nil, fmt.Errorf("list identifiers of subject %s: %w", subjectID, err)
	}
	ids, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (lethe.SealedIdentifier, error) {
		id := lethe.SealedIdentifier{Tenant: tenant, SubjectID: subjectID}
		err := row.Scan(&id.Kind, &id.Index, &id.Sealed)
		return id, err
	})
	if err != nil {
		return nil, fmt.Errorf("list identifiers of subject %s: %w", subjectID, err)
	}
	return ids, nil
}

// LatestVersion returns the subject's current profile version. ENOTFOUND
// if the subject does not exist; any other error is EINTERNAL.
func (s *VaultStore) LatestVersion(ctx context.Context, tenant, subjectID string) (*lethe.SealedVersion, error) {
	v := lethe.SealedVersion{Tenant: tenant, SubjectID: subjectID}
	err := s.db.pool.QueryRow(ctx, `SELECT v.version, v.sealed, v.principal, v.created_at, s.created_at
		FROM profile_versions v JOIN subjects s ON s.tenant = v.tenant AND s.id = v.subject_id
		WHERE v.tenant = $1 AND v.subject_id = $2 ORDER BY v.version DESC LIMIT 1`, tenant, subjectID).
		Scan(&v.Version, &v.Sealed, &v.Principal, &v.CreatedAt, &v.SubjectCreatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, errNoSubject(subjectID) // every subject has version 1
	} else if err != nil {
		return nil, fmt.Errorf("get latest version of subject %s: %w", subjectID, err)
	}
	// pgx returns times in the local zone.
	v.CreatedAt, v.SubjectCreatedAt = v.CreatedAt.UTC(), v.SubjectCreatedAt.UTC()
	return &v, nil
}

// Versions returns every profile version of the subject, oldest first;
// none if the subject does not exist. Any error is EINTERNAL.
func (s *VaultStore) Versions(ctx context.Context, tenant, subjectID string) ([]lethe.SealedVersion, error) {
	rows, err := s.db.pool.Query(ctx, `SELECT version, sealed, principal, created_at FROM profile_versions
		WHERE tenant = $1 AND subject_id = $2 ORDER BY version`, tenant, subjectID)
	if err != nil {
		return nil, fmt.Errorf("list versions of subject %s: %w", subjectID, err)
	}
	vs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (lethe.SealedVersion, error) {
		return scanVersion(row, tenant, subjectID)
	})
	if err != nil {
		return nil, fmt.Errorf("list versions of subject %s: %w", subjectID, err)
	}
	return vs, nil
}

func scanVersion(row pgx.Row, tenant, subjectID string) (lethe.SealedVersion, error) {
	v := lethe.SealedVersion{Tenant: tenant, SubjectID: subjectID}
	err := row.Scan(&v.Version, &v.Sealed, &v.Principal, &v.CreatedAt)
	v.CreatedAt = v.CreatedAt.UTC()
	return v, err
}

// appendVersion inserts a profile version, with the check that it is the
// next one in the same statement. PostgreSQL has no plain-SQL way to abort
// a statement on a failed check, and a batch commits whatever did not fail,
// so the check does not filter the row out (which would let the identifier
// changes queued after it commit alone): a version that is not the next
// one becomes NULL, and the NOT NULL constraint fails the statement and the
// batch with it.
//
// Two appends of the same version that run at once both pass the check,
// but the primary key on (tenant, subject_id, version) makes the second
// wait for the first and then fail.
const appendVersion = `INSERT INTO profile_versions
	(tenant, subject_id, version, sealed, principal, created_at)
	SELECT $1::text, $2::text,
		CASE WHEN $3::integer = 1 + COALESCE(MAX(version), 0) THEN $3::integer END,
		$4::bytea, $5::text, $6::timestamptz
	FROM profile_versions WHERE tenant = $1 AND subject_id = $2`

// AppendVersion stores v as its subject's new current version and, in the
// same transaction, removes the identifier kinds in remove (a kind the
// subject lacks is no error) and sets the identifiers in set, each
// replacing the subject's identifier of the same kind, whose old value is
// then free for other subjects. On any error nothing is changed.
//
// It returns lethe.ErrStaleVersion (wrapped) unless v.Version is exactly
// one more than the latest stored version, also when a concurrent append
// stored it first; ECONFLICT naming the kind (and not ErrStaleVersion) if
// another subject of the tenant holds one of the new identifiers; ENOTFOUND
// if the subject does not exist; EINVALID if a kind appears twice in set,
// or in both set and remove. The identifiers must name v's subject;
// anything else is EINTERNAL.
//
// The statements go as one batch, one round trip, which PostgreSQL runs as
// one implicit transaction: the version first, so that a stale append fails
// before it touches an identifier, then the removals, then the upserts.
func (s *VaultStore) AppendVersion(ctx context.Context, v *lethe.SealedVersion, set []lethe.SealedIdentifier, remove []string) error {
	if v == nil {
		return errors.New("append version: no version")
	}
	if err := lethe.CheckIdentifierChange(v.Tenant, v.SubjectID, set, remove); err != nil {
		return fmt.Errorf("append version %d of subject %s: %w", v.Version, v.SubjectID, err)
	}
	err := s.appendVersion(ctx, v, set, remove)
	if errors.Is(err, errNotNext) {
		// Tell a missing subject from a stale version. This runs after the
		// batch, so it may see a subject created or deleted since; either
		// answer is then true of a moment during the call.
		if _, err := s.Subject(ctx, v.Tenant, v.SubjectID); err != nil {
			return err
		}
		return errStaleVersion(v)
	} else if err != nil {
		return fmt.Errorf("append version %d of subject %s: %w", v.Version, v.SubjectID, err)
	}
	return nil
}

// errNotNext is appendVersion's report that the version was not one more
// than the latest stored one (or the subject has none).
var errNotNext = errors.New("not the next version")

// appendVersion runs AppendVersion's batch. Only the errors of the version
// insert are read for what they mean; an error of a later statement is
// passed on as it is (or as setIdentifiers translates it), so that no
// NOT NULL or unique violation there can pass for a stale version. The
// batch is closed when appendVersion returns, so the caller may query.
func (s *VaultStore) appendVersion(ctx context.Context, v *lethe.SealedVersion, set []lethe.SealedIdentifier, remove []string) error {
	b := &pgx.Batch{}
	b.Queue(appendVersion, v.Tenant, v.SubjectID, v.Version, v.Sealed, v.Principal, v.CreatedAt)
	if len(remove) > 0 {
		b.Queue(`DELETE FROM identifiers WHERE tenant = $1 AND subject_id = $2 AND kind = ANY($3)`,
			v.Tenant, v.SubjectID, remove)
	}
	for _, id := range set {
		b.Queue(upsertIdentifier, id.Tenant, id.SubjectID, id.Kind, id.Index, id.Sealed)
	}
	br := s.db.pool.SendBatch(ctx, b)
	defer br.Close()
	_, err := br.Exec()
	var pgErr *pgconn.PgError
	errors.As(err, &pgErr)
	switch {
	case pgErr != nil && pgErr.Code == notNullViolation && pgErr.ColumnName == "version":
		return errNotNext
	case pgErr != nil && pgErr.Code == uniqueViolation && pgErr.ConstraintName == "profile_versions_pkey":
		return lethe.ErrStaleVersion // AppendVersion wraps it
	case pgErr != nil && pgErr.Code == foreignKeyViolation:
		return errNoSubject(v.SubjectID)
	case err != nil:
		return err
	}
	if len(remove) > 0 {
		if _, err := br.Exec(); err != nil {
			return err
		}
	}
	if err := setIdentifiers(br, set); err != nil {
		return err
	}
	return br.Close() // the commit
}

// CreateTokens stores tokens in one statement: all or none. ECONFLICT if a
// token exists already; ENOTFOUND if a token's subject does not exist. A
// token must be valid UTF-8 without NUL bytes; anything else is EINTERNAL.
//
// The batch goes to PostgreSQL as one array per column, unnested into rows:
// one round trip and one statement, however many tokens.
func (s *VaultStore) CreateTokens(ctx context.Context, tokens []lethe.SealedToken) error {
	if len(tokens) == 0 {
		return nil
	}
	n := len(tokens)
	tok, tenants, subjects, fields := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	sealed, created := make([][]byte, n), make([]time.Time, n)
	for i, t := range tokens {
		if !lethe.StorableToken(t.Token) {
			return fmt.Errorf("create tokens: token %d is not valid UTF-8 without NUL", i)
		}
		tok[i], tenants[i], subjects[i], fields[i], sealed[i], created[i] = t.Token, t.Tenant, t.SubjectID, t.Field, t.Sealed, t.CreatedAt
	}
	_, err := s.db.pool.Exec(ctx, `INSERT INTO tokens (token, tenant, subject_id, field, sealed, created_at)
		SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bytea[], $6::timestamptz[])`,
		tok, tenants, subjects, fields, sealed, created)
	switch code, _ := pgError(err); {
	case code == uniqueViolation:
		return errTokenExists()
	case code == foreignKeyViolation:
		return s.missingSubject(ctx, tenants, subjects)
	case err != nil:
		return fmt.Errorf("create tokens: %w", err)
	}
	return nil
}

// missingSubject returns ENOTFOUND naming the first of the subjects that
// does not exist, for CreateTokens. It runs only after an insert failed on
// the foreign key, whose message names the subject only in its detail.
func (s *VaultStore) missingSubject(ctx context.Context, tenants, subjects []string) error {
	var id string
	err := s.db.pool.QueryRow(ctx, `SELECT u.id FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS u (tenant, id, n)
		WHERE NOT EXISTS (SELECT 1 FROM subjects s WHERE s.tenant = u.tenant AND s.id = u.id)
		ORDER BY u.n LIMIT 1`, tenants, subjects).Scan(&id)
	if err != nil { // a subject created meanwhile, or a failure
		return lethe.Errorf(lethe.ENOTFOUND, "the subject of a token was not found")
	}
	return errNoSubject(id)
}

// Tokens returns the tenant's tokens among the given ones, in no particular
// order; tokens not found, or of another tenant, are left out. Any error is
// EINTERNAL. The tokens are one array parameter, however many there are.
func (s *VaultStore) Tokens(ctx context.Context, tenant string, tokens []string) ([]lethe.SealedToken, error) {
	valid := make([]string, 0, len(tokens))
	for _, t := range tokens {
		if lethe.StorableToken(t) { // no other can be stored, or even sent
			valid = append(valid, t)
		}
	}
	if len(valid) == 0 {
		return nil, nil
	}
	rows, err := s.db.pool.Query(ctx, `SELECT token, subject_id, field, sealed, created_at FROM tokens
		WHERE token = ANY($1) AND tenant = $2`, valid, tenant)
	if err != nil {
		return nil, fmt.Errorf("get tokens: %w", err)
	}
	found, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (lethe.SealedToken, error) {
		t := lethe.SealedToken{Tenant: tenant}
		err := row.Scan(&t.Token, &t.SubjectID, &t.Field, &t.Sealed, &t.CreatedAt)
		t.CreatedAt = t.CreatedAt.UTC()
		return t, err
	})
	if err != nil {
		return nil, fmt.Errorf("get tokens: %w", err)
	}
	return found, nil
}

// DeleteSubject deletes the subject; its identifiers, versions and tokens
// go with it by ON DELETE CASCADE. Deleting a subject that does not exist
// is not an error; any error is EINTERNAL.
func (s *VaultStore) DeleteSubject(ctx context.Context, tenant, id string) error {
	if _, err := s.db.pool.Exec(ctx, `DELETE FROM subjects WHERE tenant = $1 AND id = $2`, tenant, id); err != nil {
		return fmt.Errorf("delete subject %s: %w", id, err)
	}
	return nil
}

// DeleteTenant deletes every subject of the tenant; their identifiers,
// versions and tokens go with them by ON DELETE CASCADE. Any error is
// EINTERNAL.
func (s *VaultStore) DeleteTenant(ctx context.Context, tenant string) (int, error) {
	tag, err := s.db.pool.Exec(ctx, `DELETE FROM subjects WHERE tenant = $1`, tenant)
	if err != nil {
		return 0, fmt.Errorf("delete tenant %s: %w", tenant, err)
	}
	return int(tag.RowsAffected()), nil
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
