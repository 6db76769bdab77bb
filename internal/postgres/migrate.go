package postgres

import (
	"context"
	"embed"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/lethe-privacy/lethe/internal/migration"
)

// migrationFiles holds each store's schema as numbered SQL files,
// migrations/<store>/0001_name.sql onwards, applied in order.
//
//go:embed migrations
var migrationFiles embed.FS

// A store is one of a deployment's two databases.
type store struct {
	name string // for errors: "data store"
	tag  string // its migrations directory and its schema_migrations.store value
}

var (
	dataStore = store{name: "data store", tag: "data"}
	keyStore  = store{name: "key store", tag: "keys"}
)

// migrationLock is the advisory lock that serialises migrations: "lethe" in
// ASCII, an arbitrary key no other Lethe code uses.
const migrationLock int64 = 0x6c65746865

// migrations returns the SQL of s's migrations; element i is version i+1.
func migrations(s store) ([]string, error) {
	return migration.Steps(migrationFiles, "migrations/"+s.tag)
}

// migrate applies the migrations the database lacks, each in its own
// transaction.
func migrate(ctx context.Context, pool *pgxpool.Pool, s store) error {
	steps, err := migrations(s)
	if err != nil {
		return err
	}
	for {
		done, err := migrateStep(ctx, pool, s, steps)
		if err != nil || done {
			return err
		}
	}
}

// migrateStep applies the next migration, or reports done if there is none.
// Each step holds a transaction-scoped advisory lock from before it reads
// the version, so instances opening one database at once take turns and
// apply every migration exactly once. schema_migrations records which store
// a database holds, so that a data store is never opened as a key store, or
// the other way round.
func migrateStep(ctx context.Context, pool *pgxpool.Pool, s store, steps []string) (done bool, err error) {
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, migrationLock); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
			version    integer PRIMARY KEY,
			store      text NOT NULL,
			applied_at timestamptz NOT NULL DEFAULT now()
		)`); err != nil {
			return err
		}
		var version int
		var tag *string
		if err := tx.QueryRow(ctx,
			`SELECT COALESCE(MAX(version), 0), MIN(store) FROM schema_migrations`).Scan(&version, &tag); err != nil {
			return err
		}
		switch {
		case tag != nil && *tag != s.tag:
			return fmt.Errorf("the database holds the lethe %q store, not the %s; the data store and the key store must be separate databases", *tag, s.name)
		case version > len(steps):
			return fmt.Errorf("%s schema version %d is newer than this lethe binary supports (%d); upgrade lethe", s.name, version, len(steps))
		case version == len(steps):
			done = true
			return nil
		}
		if _, err := tx.Exec(ctx, steps[version]); err != nil {
			return fmt.Errorf("migration %d: %w", version+1, err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, store) VALUES ($1, $2)`, version+1, s.tag); err != nil {
			return fmt.Errorf("migration %d: %w", version+1, err)
		}
		return nil
	})
	return done, err
}
