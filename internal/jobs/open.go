package jobs

import (
	"database/sql"
	"fmt"
	"net/url"

	_ "modernc.org/sqlite" // the "sqlite" driver
)

// SQLiteDSN is the data source name of a queue database file at the
// absolute path: WAL, every commit synced, foreign keys on, a busy
// database waited for, transactions that take the write lock at once.
func SQLiteDSN(path string) string {
	q := url.Values{"_pragma": {
		"busy_timeout(5000)",
		"foreign_keys(1)",
		"journal_mode(WAL)",
		"synchronous(FULL)",
	}}
	q.Set("_txlock", "immediate")
	return (&url.URL{Scheme: "file", Path: path, RawQuery: q.Encode()}).String()
}

// OpenSQLite opens (creating it if needed) a database file for the queue
// alone, with one connection, as Config.SQLite needs. Lethe's embedded
// setup keeps its jobs in their own file beside the data store, so that
// River's polling never waits for the data store's one writer. The caller
// must Close it.
func OpenSQLite(path string) (*sql.DB, error) {
	db, err := sql.Open("sqlite", SQLiteDSN(path))
	if err != nil {
		return nil, fmt.Errorf("open job queue %s: %w", path, err)
	}
	db.SetMaxOpenConns(1)
	return db, nil
}
