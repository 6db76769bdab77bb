package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"time"

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

// migrations returns the SQL of s's migrations; element i is version i+1.
func migrations(s store) ([]string, error) {
	return migration.Steps(migrationFiles, "migrations/"+s.tag)
}

// migrate applies the migrations db lacks, each in its own transaction.
// The writer's transactions begin IMMEDIATE, so each step reads the current
// version holding the write lock and processes opening the same file at once
// apply every migration exactly once.
func migrate(ctx context.Context, db *sql.DB, s store) error {
	steps, err := migrations(s)
	if err != nil {
		return err
	}
	for {
		done, err := migrateStep(ctx, db, s, steps)
		if err != nil || done {
			return err
		}
	}
}

// migrateStep applies the next migration, or reports done if there is none.
// schema_migrations records which store a database holds, so that a data
// store file is never opened as a key store, or the other way round.
func migrateStep(ctx context.Context, db *sql.DB, s store, steps []string) (done bool, err error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return false, err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		store      TEXT NOT NULL,
		applied_at INTEGER NOT NULL
	) STRICT`); err != nil {
		return false, err
	}
	var version int
	var tag sql.NullString
	if err := tx.QueryRowContext(ctx,
		`SELECT COALESCE(MAX(version), 0), MIN(store) FROM schema_migrations`).Scan(&version, &tag); err != nil {
		return false, err
	}
	switch {
	case tag.Valid && tag.String != s.tag:
		return false, fmt.Errorf("the file holds the lethe %q store, not the %s; the data store and the key store must be separate files", tag.String, s.name)
	case version > len(steps):
		return false, fmt.Errorf("%s schema version %d is newer than this lethe binary supports (%d); upgrade lethe", s.name, version, len(steps))
	case version == len(steps):
		return true, nil
	}
	if _, err := tx.ExecContext(ctx, steps[version]); err != nil {
		return false, fmt.Errorf("migration %d: %w", version+1, err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, store, applied_at) VALUES (?, ?, ?)`,
		version+1, s.tag, time.Now().UnixMicro()); err != nil {
		return false, fmt.Errorf("migration %d: %w", version+1, err)
	}
	return false, tx.Commit()
}
