package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/storetest"
)

// openTest opens a store with open at path and closes it when t ends.
func openTest(t *testing.T, open func(context.Context, string) (*DB, error), path string) *DB {
	t.Helper()
	db, err := open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Error(err)
		}
	})
	return db
}

func TestAPIKeyStore(t *testing.T) {
	storetest.TestAPIKeyStore(t, func(t *testing.T) lethe.APIKeyStore {
		return NewAPIKeyStore(openTest(t, OpenData, filepath.Join(t.TempDir(), "data.db")))
	})
}

func TestDeploymentBinder(t *testing.T) {
	for name, open := range map[string]func(context.Context, string) (*DB, error){"data": OpenData, "keys": OpenKeys} {
		t.Run(name, func(t *testing.T) {
			storetest.TestDeploymentBinder(t, func(t *testing.T) lethe.DeploymentBinder {
				return openTest(t, open, filepath.Join(t.TempDir(), name+".db"))
			})
		})
	}
}

func TestFileModes(t *testing.T) {
	for _, name := range []string{"data.db", "odd ?#% name.db"} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), name)
			db := openTest(t, OpenData, path)
			if err := NewAPIKeyStore(db).CreateAPIKey(t.Context(), &lethe.APIKey{ID: "key_1", Hash: []byte{1}}); err != nil {
				t.Fatal(err)
			}
			for _, p := range []string{path, path + "-wal", path + "-shm"} {
				info, err := os.Stat(p)
				if err != nil {
					t.Fatal(err)
				}
				if got := info.Mode().Perm(); got != 0o600 {
					t.Errorf("%s mode: got %v, want %v", filepath.Base(p), got, os.FileMode(0o600))
				}
			}
		})
	}
}

func TestPragmas(t *testing.T) {
	db := openTest(t, OpenData, filepath.Join(t.TempDir(), "data.db"))
	for _, tc := range []struct {
		pool      string
		db        *sql.DB
		conns     int // held at once, so the check covers more than the connection migrations ran on
		queryOnly string
	}{
		{"write", db.write, 1, "0"},
		{"read", db.read, 3, "1"},
	} {
		t.Run(tc.pool, func(t *testing.T) {
			want := map[string]string{
				"journal_mode": "wal",
				"foreign_keys": "1",
				"busy_timeout": "5000",
				"synchronous":  "2", // FULL
				"query_only":   tc.queryOnly,
			}
			for i := range tc.conns {
				conn, err := tc.db.Conn(t.Context())
				if err != nil {
					t.Fatal(err)
				}
				defer conn.Close()
				for pragma, want := range want {
					var got string
					if err := conn.QueryRowContext(t.Context(), "PRAGMA "+pragma).Scan(&got); err != nil {
						t.Fatal(err)
					}
					if got != want {
						t.Errorf("connection %d: %s: got %v, want %v", i, pragma, got, want)
					}
				}
			}
		})
	}
}

func TestReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "data.db")
	type migration struct {
		version   int
		appliedAt int64
	}
	var applied [2][]migration
	for i := range applied {
		db, err := OpenData(t.Context(), path)
		if err != nil {
			t.Fatal(err)
		}
		rows, err := db.read.QueryContext(t.Context(), `SELECT version, applied_at FROM schema_migrations ORDER BY version`)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var m migration
			if err := rows.Scan(&m.version, &m.appliedAt); err != nil {
				t.Fatal(err)
			}
			applied[i] = append(applied[i], m)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		id, err := db.BindDeployment(t.Context(), fmt.Sprintf("dep_%d", i))
		if err != nil {
			t.Fatal(err)
		}
		if id != "dep_0" {
			t.Errorf("open %d: deployment: got %v, want %v", i, id, "dep_0")
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
	}
	steps, err := migrations(dataStore)
	if err != nil {
		t.Fatal(err)
	}
	if len(applied[0]) != len(steps) {
		t.Errorf("migrations applied: got %d, want %d", len(applied[0]), len(steps))
	}
	if fmt.Sprint(applied[1]) != fmt.Sprint(applied[0]) {
		t.Errorf("after reopen: got %v, want %v", applied[1], applied[0])
	}
}

func TestNewerSchema(t *testing.T) {
	for _, tc := range []struct {
		store store
		open  func(context.Context, string) (*DB, error)
	}{{dataStore, OpenData}, {keyStore, OpenKeys}} {
		t.Run(tc.store.tag, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), tc.store.tag+".db")
			db, err := tc.open(t.Context(), path)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := db.write.ExecContext(t.Context(),
				`INSERT INTO schema_migrations (version, store, applied_at) VALUES (7, ?, 0)`, tc.store.tag); err != nil {
				t.Fatal(err)
			}
			db.Close()
			_, err = tc.open(t.Context(), path)
			want := tc.store.name + " schema version 7 is newer than this lethe binary supports (1); upgrade lethe"
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("reopen: got %v, want an error containing %q", err, want)
			}
		})
	}
}

// TestSeparateFiles checks that the data store and the key store refuse to
// share a file, whichever was created first.
func TestSeparateFiles(t *testing.T) {
	for _, tc := range []struct {
		name         string
		first, other func(context.Context, string) (*DB, error)
	}{
		{"keys on data", OpenData, OpenKeys},
		{"data on keys", OpenKeys, OpenData},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "lethe.db")
			openTest(t, tc.first, path)
			db, err := tc.other(t.Context(), path)
			if err == nil {
				db.Close()
			}
			if want := "must be separate files"; err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("got %v, want an error containing %q", err, want)
			}
		})
	}
}

// TestConcurrentHandles writes through two DBs open on one file at once, as
// two processes would, so their writers contend for SQLite's lock.
func TestConcurrentHandles(t *testing.T) {
	path := filepath.Join(t.TempDir(), "data.db")
	stores := []*APIKeyStore{
		NewAPIKeyStore(openTest(t, OpenData, path)),
		NewAPIKeyStore(openTest(t, OpenData, path)),
	}
	const n = 50
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			errs[i] = stores[i%2].CreateAPIKey(t.Context(), &lethe.APIKey{
				ID: fmt.Sprintf("key_%d", i), Role: lethe.RoleService, Hash: []byte{byte(i)}, CreatedAt: time.Now(),
			})
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("create %d: %v", i, err)
		}
	}
	if keys, err := stores[0].APIKeys(t.Context()); err != nil || len(keys) != n {
		t.Errorf("list: got %d keys, %v, want %d, <nil>", len(keys), err, n)
	}
}
