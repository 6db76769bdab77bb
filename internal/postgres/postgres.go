// Package postgres implements Lethe's stores on PostgreSQL, the choice when
// several lethe instances share one database server. It mirrors
// internal/sqlite: a data store and a key store, which must be separate
// databases (the key store holds cryptographic keys, and a backup of the
// data store must not carry them), each with its schema in versioned SQL
// files embedded in the binary and applied on open.
//
// The data store holds API keys (APIKeyStore); the vault (VaultStore):
// subjects, their identifiers as blind indexes, their profile versions and
// tokens, everything personal sealed under the subject's data key; and the
// consent ledger (ConsentStore): append-only, in one global order of
// revisions, with IDs, codes and keyed hashes but nothing personal. The
// key store (KeyStore) holds those data keys and the tenants' keys, wrapped;
// deployment secrets; the forget list of erased subjects and tenants; and
// the audit log's latest signed checkpoint, kept apart from the log so that
// a rollback of the log is detected.
//
// It talks to PostgreSQL through pgx and its pool directly. Errors never
// quote the DSN, which may hold a password.
package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/lethe-privacy/lethe"
)

var (
	_ lethe.DeploymentBinder = (*DB)(nil)
	_ lethe.Pinger           = (*DB)(nil)
)

// DB is an open PostgreSQL store database: a pool of connections, sized by
// the DSN's pool_max_conns (pgx's default otherwise). It is safe for
// concurrent use; the caller that opened it must Close it.
//
// pgx prepares each statement once per connection and keeps it (its
// default statement cache), so repeated queries skip parsing and planning.
type DB struct {
	pool  *pgxpool.Pool
	store store // which of the two databases this is
}

// OpenData connects to the data store database that dsn names and migrates
// its schema. Lethe instances opening one database at once migrate it once.
// OpenData fails if the database holds a key store or a schema newer than
// this binary knows; its errors are for operators and carry no lethe code
// (EINTERNAL). The caller must Close the DB.
func OpenData(ctx context.Context, dsn string) (*DB, error) {
	return open(ctx, dsn, dataStore)
}

// OpenKeys connects to the key store database that dsn names, like
// OpenData. The key store must be a different database from the data store;
// OpenKeys fails on a data store. The caller must Close the DB.
func OpenKeys(ctx context.Context, dsn string) (*DB, error) {
	return open(ctx, dsn, keyStore)
}

func open(ctx context.Context, dsn string, s store) (*DB, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// The parse error quotes the DSN, password and all when it cannot
		// tell where the password is, so it is not passed on.
		return nil, fmt.Errorf("open %s: cannot parse the postgres dsn", s.name)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", s.name, err)
	}
	if err := migrate(ctx, pool, s); err != nil {
		pool.Close()
		return nil, fmt.Errorf("open %s: %w", s.name, err)
	}
	return &DB{pool: pool, store: s}, nil
}

// Ping reports whether the database can be reached; any error is
// EINTERNAL. It is safe for concurrent use.
func (db *DB) Ping(ctx context.Context) error {
	if err := db.pool.Ping(ctx); err != nil {
		return fmt.Errorf("ping postgres: %w", err)
	}
	return nil
}

// Close closes the pool, waiting for connections in use to be returned. It
// always returns nil.
func (db *DB) Close() error {
	db.pool.Close()
	return nil
}

// BindDeployment records candidate as the database's deployment ID if it
// has none, and returns the stored ID; any error is EINTERNAL. It is safe
// for concurrent use.
func (db *DB) BindDeployment(ctx context.Context, candidate string) (string, error) {
	// Two statements, not one: a statement's snapshot predates a row that a
	// concurrent caller commits while ON CONFLICT waits for it, so a single
	// INSERT … SELECT could find no row at all.
	if _, err := db.pool.Exec(ctx,
		`INSERT INTO meta (id, deployment_id) VALUES (1, $1) ON CONFLICT (id) DO NOTHING`, candidate); err != nil {
		return "", fmt.Errorf("bind deployment: %w", err)
	}
	var id string
	if err := db.pool.QueryRow(ctx, `SELECT deployment_id FROM meta WHERE id = 1`).Scan(&id); err != nil {
		return "", fmt.Errorf("bind deployment: %w", err)
	}
	return id, nil
}

// mustHold panics unless db is the store s. Building a store on the wrong
// database is a wiring bug that no caller could handle, so it stops the
// program at startup rather than returning an error every caller must check.
func (db *DB) mustHold(s store, constructor string) {
	if db.store != s {
		panic(fmt.Sprintf("postgres.%s needs the %s, not the %s", constructor, s.name, db.store.name))
	}
}

// PostgreSQL error codes the stores translate.
const (
	notNullViolation    = "23502"
	foreignKeyViolation = "23503"
	uniqueViolation     = "23505"
)

// pgError returns the SQLSTATE code of err and the constraint it names, or
// "" and "" if err is not a PostgreSQL error.
func pgError(err error) (code, constraint string) {
	var e *pgconn.PgError
	if errors.As(err, &e) {
		return e.Code, e.ConstraintName
	}
	return "", ""
}
