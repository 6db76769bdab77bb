package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/storetest"
)

// openTest opens a store with open at path and closes it when t ends.
func openTest(t testing.TB, open func(context.Context, string) (*DB, error), path string) *DB {
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

func TestVaultStore(t *testing.T) {
	storetest.TestVaultStore(t, func(t *testing.T) lethe.VaultStore {
		return NewVaultStore(openTest(t, OpenData, filepath.Join(t.TempDir(), "data.db")))
	})
}

func TestConsentStore(t *testing.T) {
	storetest.TestConsentStore(t, func(t *testing.T) lethe.ConsentStore {
		return NewConsentStore(openTest(t, OpenData, filepath.Join(t.TempDir(), "data.db")))
	})
}

func TestConsentReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "data.db")
	storetest.TestConsentReopen(t, func(t *testing.T) (lethe.ConsentStore, func() error) {
		db, err := OpenData(t.Context(), path)
		if err != nil {
			t.Fatal(err)
		}
		return NewConsentStore(db), db.Close
	})
}

func TestRequestStore(t *testing.T) {
	storetest.TestRequestStore(t, func(t *testing.T) lethe.RequestStore {
		return NewRequestStore(openTest(t, OpenData, filepath.Join(t.TempDir(), "data.db")))
	})
	storetest.TestRequestCodes(t, func(t *testing.T) lethe.RequestStore {
		return NewRequestStore(openTest(t, OpenData, filepath.Join(t.TempDir(), "data.db")))
	})
}

func TestKeyStore(t *testing.T) {
	storetest.TestKeyStore(t, func(t *testing.T) lethe.KeyStore {
		return NewKeyStore(openTest(t, OpenKeys, filepath.Join(t.TempDir(), "keys.db")))
	})
}

func TestCheckpointStore(t *testing.T) {
	storetest.TestCheckpointStore(t, func(t *testing.T) lethe.CheckpointStore {
		return NewKeyStore(openTest(t, OpenKeys, filepath.Join(t.TempDir(), "keys.db")))
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
			steps, err := migrations(tc.store)
			if err != nil {
				t.Fatal(err)
			}
			newer := len(steps) + 1
			if _, err := db.write.ExecContext(t.Context(),
				`INSERT INTO schema_migrations (version, store, applied_at) VALUES (?, ?, 0)`, newer, tc.store.tag); err != nil {
				t.Fatal(err)
			}
			db.Close()
			_, err = tc.open(t.Context(), path)
			want := fmt.Sprintf("%s schema version %d is newer than this lethe binary supports (%d); upgrade lethe", tc.store.name, newer, len(steps))
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

// TestWrongStore checks that a store refuses the other kind of database.
func TestWrongStore(t *testing.T) {
	data := openTest(t, OpenData, filepath.Join(t.TempDir(), "data.db"))
	keys := openTest(t, OpenKeys, filepath.Join(t.TempDir(), "keys.db"))
	for name, build := range map[string]func(){
		"NewAPIKeyStore on the key store":  func() { NewAPIKeyStore(keys) },
		"NewVaultStore on the key store":   func() { NewVaultStore(keys) },
		"NewConsentStore on the key store": func() { NewConsentStore(keys) },
		"NewKeyStore on the data store":    func() { NewKeyStore(data) },
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Error("got no panic, want one")
				}
			}()
			build()
		})
	}
}

// TestNoRowsLeft checks that deleting a subject and destroying keys remove
// the rows themselves, not only hide them: erasure must leave no key (and,
// once the data is deleted, no ciphertext) behind in the file.
func TestNoRowsLeft(t *testing.T) {
	ctx := t.Context()
	data := openTest(t, OpenData, filepath.Join(t.TempDir(), "data.db"))
	keys := openTest(t, OpenKeys, filepath.Join(t.TempDir(), "keys.db"))
	vault, ks := NewVaultStore(data), NewKeyStore(keys)
	if err := ks.CreateTenantKey(ctx, "acme", &lethe.WrappedKey{Wrapped: []byte{1}}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"sub_1", "sub_2"} {
		err := vault.CreateSubject(ctx, &lethe.Subject{ID: id, Tenant: "acme"},
			[]lethe.SealedIdentifier{{Tenant: "acme", SubjectID: id, Kind: "email", Index: []byte(id), Sealed: []byte{1}}},
			&lethe.SealedVersion{Tenant: "acme", SubjectID: id, Version: 1, Sealed: []byte{1}})
		if err != nil {
			t.Fatal(err)
		}
		if err := vault.CreateTokens(ctx, []lethe.SealedToken{{Token: "tok_" + id, Tenant: "acme", SubjectID: id, Sealed: []byte{1}}}); err != nil {
			t.Fatal(err)
		}
		if err := ks.CreateSubjectKey(ctx, "acme", id, &lethe.WrappedKey{Wrapped: []byte{1}, KEKID: lethe.TenantKEKID("acme", 1)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := vault.DeleteSubject(ctx, "acme", "sub_1"); err != nil {
		t.Fatal(err)
	}
	if err := ks.DestroySubjectKey(ctx, "acme", "sub_1", time.Now()); err != nil {
		t.Fatal(err)
	}
	count := func(db *DB, query string, want int) {
		t.Helper()
		var n int
		if err := db.read.QueryRowContext(ctx, query).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != want {
			t.Errorf("%s: got %d, want %d", query, n, want)
		}
	}
	for _, table := range []string{"identifiers", "profile_versions", "tokens"} {
		count(data, "SELECT count(*) FROM "+table+" WHERE subject_id = 'sub_1'", 0)
		count(data, "SELECT count(*) FROM "+table+" WHERE subject_id = 'sub_2'", 1)
	}
	count(keys, "SELECT count(*) FROM subject_keys WHERE subject_id = 'sub_1'", 0)
	count(keys, "SELECT count(*) FROM subject_keys WHERE subject_id = 'sub_2'", 1)
	if err := ks.DestroyTenantKey(ctx, "acme", time.Now()); err != nil {
		t.Fatal(err)
	}
	count(keys, "SELECT count(*) FROM subject_keys", 0)
	count(keys, "SELECT count(*) FROM tenant_keys", 0)
}

// TestQueryPlans checks that lookups use the index meant for them.
func TestQueryPlans(t *testing.T) {
	data := openTest(t, OpenData, filepath.Join(t.TempDir(), "data.db"))
	keys := openTest(t, OpenKeys, filepath.Join(t.TempDir(), "keys.db"))
	for _, tc := range []struct {
		name  string
		db    *DB
		query string
		args  []any
		want  string
	}{
		{"tokens", data, tokensQuery, []any{`["tok_1"]`, "acme"}, "SEARCH tokens USING PRIMARY KEY (token=?)"},
		{"consent history", data, consentHistoryQuery, []any{"acme", "sub_1"},
			"SEARCH consent_events USING INDEX consent_events_subject (tenant=? AND subject_id=?)"},
		{"consent since", data, consentSinceQuery, []any{0, 100}, "SEARCH consent_events USING INTEGER PRIMARY KEY (rowid>?)"},
		{"forget list", keys, forgetListQuery, []any{0, "acme", "sub_1", 10},
			"SEARCH forget_list USING COVERING INDEX forget_list_erased_at ((erased_at,tenant,subject_id)>(?,?,?))"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			plan := queryPlan(t, tc.db, tc.query, tc.args...)
			if !slices.Contains(plan, tc.want) {
				t.Errorf("plan: got %q, want a step %q", plan, tc.want)
			}
		})
	}
}

// TestBackup checks that a backup of each store is a private file that
// opens as the same kind of store, holds the rows, and never overwrites a
// file.
func TestBackup(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	data := openTest(t, OpenData, filepath.Join(dir, "data.db"))
	keys := openTest(t, OpenKeys, filepath.Join(dir, "keys.db"))
	vault, ks := NewVaultStore(data), NewKeyStore(keys)
	sub := &lethe.Subject{ID: "sub_1", Tenant: "acme", CreatedAt: time.Now()}
	ids := []lethe.SealedIdentifier{{Tenant: "acme", SubjectID: "sub_1", Kind: "email", Index: []byte("idx"), Sealed: []byte("sealed")}}
	if err := vault.CreateSubject(ctx, sub, ids, &lethe.SealedVersion{Tenant: "acme", SubjectID: "sub_1", Version: 1, Sealed: []byte{1}}); err != nil {
		t.Fatal(err)
	}
	if err := ks.CreateTenantKey(ctx, "acme", &lethe.WrappedKey{Wrapped: []byte("tenant"), KEKID: "kek_1"}); err != nil {
		t.Fatal(err)
	}
	if err := ks.CreateSubjectKey(ctx, "acme", "sub_1", &lethe.WrappedKey{Wrapped: []byte("wrapped"), KEKID: lethe.TenantKEKID("acme", 1)}); err != nil {
		t.Fatal(err)
	}
	if err := ks.DestroySubjectKey(ctx, "acme", "sub_gone", time.Now()); err != nil {
		t.Fatal(err)
	}

	backups := t.TempDir()
	for _, tc := range []struct {
		name      string
		db        *DB
		open, not func(context.Context, string) (*DB, error)
		check     func(t *testing.T, db *DB)
	}{
		{"data", data, OpenData, OpenKeys, func(t *testing.T, db *DB) {
			if got, err := NewVaultStore(db).SubjectByIdentifier(ctx, "acme", "email", []byte("idx")); err != nil || got != "sub_1" {
				t.Errorf("subject by identifier in the copy: got %q, %v, want sub_1", got, err)
			}
			if v, err := NewVaultStore(db).LatestVersion(ctx, "acme", "sub_1"); err != nil || v.Version != 1 {
				t.Errorf("latest version in the copy: got %v, %v, want version 1", v, err)
			}
		}},
		{"keys", keys, OpenKeys, OpenData, func(t *testing.T, db *DB) {
			if k, err := NewKeyStore(db).SubjectKey(ctx, "acme", "sub_1"); err != nil || string(k.Wrapped) != "wrapped" {
				t.Errorf("subject key in the copy: got %v, %v, want it", k, err)
			}
			_, err := NewKeyStore(db).SubjectKey(ctx, "acme", "sub_gone")
			if lethe.ErrorCode(err) != lethe.EGONE {
				t.Errorf("erased subject's key in the copy: got %v, want gone", err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(backups, tc.name+" ?#% backup.db")
			if err := tc.db.Backup(ctx, path); err != nil {
				t.Fatal(err)
			}
			info, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if got := info.Mode().Perm(); got != 0o600 {
				t.Errorf("mode: got %v, want %v", got, os.FileMode(0o600))
			}
			// A second backup to the same path fails and leaves the first.
			if err := tc.db.Backup(ctx, path); !errors.Is(err, fs.ErrExist) {
				t.Errorf("backup over a file: got %v, want fs.ErrExist", err)
			}
			if again, err := os.Stat(path); err != nil || again.Size() != info.Size() || !again.ModTime().Equal(info.ModTime()) {
				t.Errorf("backup over a file changed it: got %v, %v", again, err)
			}
			if db, err := tc.not(ctx, path); err == nil {
				db.Close()
				t.Error("the copy opens as the other kind of store")
			}
			tc.check(t, openTest(t, tc.open, path))
			for _, p := range []string{path + "-wal", path + "-shm"} {
				if info, err := os.Stat(p); err != nil || info.Mode().Perm() != 0o600 {
					t.Errorf("%s of the open copy: got %v, %v, want mode %v", filepath.Base(p), info, err, os.FileMode(0o600))
				}
			}
		})
	}
	// A failed backup leaves no file; the copies, closed, are alone.
	if err := data.Backup(ctx, filepath.Join(backups, "no such dir", "data.db")); err == nil {
		t.Error("backup into a missing directory: got no error, want one")
	}
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if err := data.Backup(canceled, filepath.Join(backups, "canceled.db")); err == nil {
		t.Error("canceled backup: got no error, want one")
	}
	entries, err := os.ReadDir(backups)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	want := []string{"data ?#% backup.db", "keys ?#% backup.db"}
	if !slices.Equal(names, want) {
		t.Errorf("files: got %q, want %q", names, want)
	}
}

func BenchmarkVaultStore(b *testing.B) {
	storetest.BenchmarkVaultStore(b, NewVaultStore(openTest(b, OpenData, filepath.Join(b.TempDir(), "data.db"))))
}

func BenchmarkConsentStore(b *testing.B) {
	storetest.BenchmarkConsentStore(b, NewConsentStore(openTest(b, OpenData, filepath.Join(b.TempDir(), "data.db"))))
}

func BenchmarkKeyStore(b *testing.B) {
	storetest.BenchmarkKeyStore(b, NewKeyStore(openTest(b, OpenKeys, filepath.Join(b.TempDir(), "keys.db"))))
}

// queryPlan returns the details of SQLite's plan for query on db's read pool.
func queryPlan(t *testing.T, db *DB, query string, args ...any) []string {
	t.Helper()
	rows, err := db.read.QueryContext(t.Context(), "EXPLAIN QUERY PLAN "+query, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, detail)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return plan
}
