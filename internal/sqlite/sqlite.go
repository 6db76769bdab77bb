// Package sqlite implements Lethe's stores on SQLite, the embedded default:
// one database file for the data store and another for the key store, which
// holds cryptographic keys and so must never share a file (or a backup) with
// the data store.
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
	"sync"

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
//
// Read queries are prepared once and kept (see readStmt): the driver would
// otherwise compile the SQL on every call, which doubles the time of a
// lookup by key.
type DB struct {
	write *sql.DB
	read  *sql.DB
	path  string   // absolute
	store store    // which of the two databases this is
	stmts sync.Map // query → *sql.Stmt on the read pool

	jobs    chan *writeJob // writes waiting for the group commit
	quit    chan struct{}  // closed by Close
	stopped chan struct{}  // closed when the committer has returned
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

	db := &DB{path: path, store: s}
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
	db.jobs, db.quit, db.stopped = make(chan *writeJob), make(chan struct{}), make(chan struct{})
	go db.committer()
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
	close(db.quit)
	<-db.stopped
	var errs []error
	db.stmts.Range(func(_, s any) bool {
		errs = append(errs, s.(*sql.Stmt).Close())
		return true
	})
	return errors.Join(append(errs, db.read.Close(), db.write.Close())...)
}

// Backup writes a consistent copy of the database, as it was at one
// moment, to a new file at path: a hot backup of this one store, taken
// while lethe serves, for an operator or a scheduled job to keep. The copy
// is the same kind of store, and opens with OpenData or OpenKeys like the
// original.
//
// The data store and the key store are backed up separately, on purpose,
// each with its own Backup: a copy of the data store must never hold the
// keys that decrypt it. Destroying a subject's key then erases the subject
// from every data backup too, and the key store's backups, small and
// holding keys, can be kept apart, under other access and retention.
//
// Backup refuses a path that exists (the error wraps fs.ErrExist), so it
// never overwrites a file, least of all the database itself. It creates the
// file with mode 0600 before SQLite writes to it, since the copy is as
// sensitive as the original, and syncs it to disk before returning. On any
// error it removes the file it created. Errors are for operators (EINTERNAL).
// It is safe for concurrent use.
//
// The copy is made with VACUUM INTO, which reads the database in one read
// transaction. It runs on a connection of its own, not on the write
// connection, so writes go on meanwhile (the WAL holds them until the copy
// is done), and not on the read pool, which is query_only and may not run
// it.
func (db *DB) Backup(ctx context.Context, path string) error {
	// An absolute path also keeps SQLite from reading a name that starts
	// with "file:" as a URI.
	path, err := filepath.Abs(path)
	if err != nil {
		return fmt.Errorf("back up %s: %w", db.store.name, err)
	}
	// VACUUM INTO writes into an empty file, keeping its mode. The file is
	// closed again at once: closing a descriptor while SQLite held locks on
	// the file would drop them.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("back up %s: %w", db.store.name, err)
	}
	if err := f.Close(); err != nil {
		os.Remove(path)
		return fmt.Errorf("back up %s: %w", db.store.name, err)
	}
	if err := db.vacuumInto(ctx, path); err != nil {
		os.Remove(path)
		return fmt.Errorf("back up %s to %s: %w", db.store.name, path, err)
	}
	return nil
}

// vacuumInto copies the database into the empty file at path and syncs it.
func (db *DB) vacuumInto(ctx context.Context, path string) error {
	conn, err := sql.Open("sqlite", dsn(db.path, false))
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `VACUUM INTO ?`, path); err != nil {
		return err
	}
	if err := conn.Close(); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// mustHold panics unless db is the store s. Building a store on the wrong
// database is a wiring bug that no caller could handle, so it stops the
// program at startup rather than returning an error every caller must check.
func (db *DB) mustHold(s store, constructor string) {
	if db.store != s {
		panic(fmt.Sprintf("sqlite.%s needs the %s, not the %s", constructor, s.name, db.store.name))
	}
}

// readStmt returns query prepared on the read pool, preparing it on first
// use. database/sql prepares it again on each connection it runs on, once.
// The statements live as long as db; Close closes them. Only reads are
// kept prepared: a write waits for the disk sync of its commit, which costs
// far more than compiling its SQL.
func (db *DB) readStmt(ctx context.Context, query string) (*sql.Stmt, error) {
	if s, ok := db.stmts.Load(query); ok {
		return s.(*sql.Stmt), nil
	}
	s, err := db.read.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	if prev, loaded := db.stmts.LoadOrStore(query, s); loaded {
		s.Close() // another goroutine prepared it first
		return prev.(*sql.Stmt), nil
	}
	return s, nil
}

// query runs query on the read pool as a prepared statement.
func (db *DB) query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	s, err := db.readStmt(ctx, query)
	if err != nil {
		return nil, err
	}
	return s.QueryContext(ctx, args...)
}

// queryRow runs query, which returns at most one row, on the read pool as
// a prepared statement. Errors are deferred to Scan, as with sql.Row.
//
// A point read takes microseconds, so it is not worth cancelling halfway:
// database/sql starts a goroutine per query to watch a cancellable context,
// which costs a third of such a read. The context is checked first and then
// detached from cancellation (its values are kept).
func (db *DB) queryRow(ctx context.Context, query string, args ...any) scanner {
	if err := ctx.Err(); err != nil {
		return errRow{err}
	}
	s, err := db.readStmt(ctx, query)
	if err != nil {
		return errRow{err}
	}
	return s.QueryRowContext(context.WithoutCancel(ctx), args...)
}

// A scanner is a row to scan: *sql.Row, *sql.Rows or errRow.
type scanner interface{ Scan(dest ...any) error }

// errRow is a row that failed before it ran.
type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }

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
