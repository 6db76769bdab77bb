// Package sqlite implements Lethe's stores on SQLite, the embedded default:
// one database file for the data store and another for the key store, which
// holds cryptographic keys and so must never share a file (or a backup) with
// the data store.
//
// It uses modernc.org/sqlite, a pure-Go driver, so the lethe binary needs no
// C toolchain. Schemas are versioned SQL files embedded in the binary and
// applied on open.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"runtime"

	"github.com/lethe-privacy/lethe"
	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

var (
	_ lethe.DeploymentBinder = (*DB)(nil)
	_ lethe.Pinger           = (*DB)(nil)
)

// DB is an open SQLite store database. It is safe for concurrent use; the
// caller that opened it must Close it.
//
// SQLite lets one connection write at a time. Rather than let concurrent
// writers collide inside SQLite, where they poll under busy_timeout and can
// still fail with SQLITE_BUSY, writes go through a pool of exactly one
// connection, so goroutines queue for it in database/sql. Reads use a
// separate pool of query_only connections, which in WAL mode run alongside
// the writer. The writer begins transactions with BEGIN IMMEDIATE, so that a
// transaction never has to upgrade a read lock to a write lock (an upgrade
// fails at once with SQLITE_BUSY instead of waiting): that matters when
// another process, such as a second lethe command, has the same file open.
type DB struct {
	write *sql.DB
	read  *sql.DB
}

// OpenData opens the data store database at path, creating the file with
// mode 0600 if it does not exist, and migrates its schema. It fails if the
// file holds a key store or a schema newer than this binary knows; its
// errors are for operators and carry no lethe code (EINTERNAL). The caller
// must Close the DB.
func OpenData(ctx context.Context, path string) (*DB, error) {
	return open(ctx, path, dataStore)
}

// OpenKeys opens the key store database at path, like OpenData. The key
// store must be a different file from the data store; OpenKeys fails on a
// data store file. The caller must Close the DB.
func OpenKeys(ctx context.Context, path string) (*DB, error) {
	return open(ctx, path, keyStore)
}

func open(ctx context.Context, path string, s store) (*DB, error) {
	path, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", s.name, err)
	}
	// Create the file ourselves, private: SQLite gives the -wal and -shm
	// files it creates later the mode of the database file.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", s.name, err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("open %s: %w", s.name, err)
	}

	db := &DB{}
	if db.write, err = sql.Open("sqlite", dsn(path, false)); err != nil {
		return nil, fmt.Errorf("open %s %s: %w", s.name, path, err)
	}
	db.write.SetMaxOpenConns(1)
	if err := migrate(ctx, db.write, s); err != nil {
		db.write.Close()
		return nil, fmt.Errorf("open %s %s: %w", s.name, path, err)
	}
	if db.read, err = sql.Open("sqlite", dsn(path, true)); err != nil {
		db.write.Close()
		return nil, fmt.Errorf("open %s %s: %w", s.name, path, err)
	}
	readers := max(4, runtime.GOMAXPROCS(0))
	db.read.SetMaxOpenConns(readers)
	db.read.SetMaxIdleConns(readers) // a new connection costs a file open and four pragmas
	if err := db.read.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open %s %s: %w", s.name, path, err)
	}
	return db, nil
}

// dsn returns the driver name for the database file at the absolute path.
// The pragmas are in the DSN so that every pooled connection gets them:
// WAL lets reads run beside the writer, synchronous=FULL syncs the WAL on
// every commit so nothing acknowledged is lost on a crash, and busy_timeout
// makes a connection wait for another process's lock instead of failing.
func dsn(path string, readOnly bool) string {
	q := url.Values{"_pragma": {
		"busy_timeout(5000)",
		"foreign_keys(1)",
		"journal_mode(WAL)",
		"synchronous(FULL)",
	}}
	if readOnly {
		q.Set("_query_only", "1")
	} else {
		q.Set("_txlock", "immediate")
	}
	// A file: URI escapes any '?' or '%' in the path, which a plain file
	// name could not.
	return (&url.URL{Scheme: "file", Path: path, RawQuery: q.Encode()}).String()
}

// Ping reports whether both connection pools can reach the database; any
// error is EINTERNAL. It is safe for concurrent use.
func (db *DB) Ping(ctx context.Context) error {
	if err := db.read.PingContext(ctx); err != nil {
		return fmt.Errorf("ping sqlite: %w", err)
	}
	if err := db.write.PingContext(ctx); err != nil {
		return fmt.Errorf("ping sqlite: %w", err)
	}
	return nil
}

// Close closes the database. Operations in progress finish first.
func (db *DB) Close() error {
	return errors.Join(db.read.Close(), db.write.Close())
}

// BindDeployment records candidate as the database's deployment ID if it
// has none, and returns the stored ID; any error is EINTERNAL. It is safe
// for concurrent use.
func (db *DB) BindDeployment(ctx context.Context, candidate string) (string, error) {
	if _, err := db.write.ExecContext(ctx,
		`INSERT INTO meta (id, deployment_id) VALUES (1, ?) ON CONFLICT (id) DO NOTHING`, candidate); err != nil {
		return "", fmt.Errorf("bind deployment: %w", err)
	}
	var id string
	if err := db.write.QueryRowContext(ctx, `SELECT deployment_id FROM meta WHERE id = 1`).Scan(&id); err != nil {
		return "", fmt.Errorf("bind deployment: %w", err)
	}
	return id, nil
}
