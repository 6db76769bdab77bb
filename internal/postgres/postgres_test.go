package postgres

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/storetest"
	"github.com/lethe-privacy/lethe/internal/testsvc"
)

// openTest opens a store with open on dsn and closes it when t ends.
func openTest(t testing.TB, open func(context.Context, string) (*DB, error), dsn string) *DB {
	t.Helper()
	db, err := open(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestAPIKeyStore(t *testing.T) {
	storetest.TestAPIKeyStore(t, func(t *testing.T) lethe.APIKeyStore {
		return NewAPIKeyStore(openTest(t, OpenData, testsvc.Postgres(t)))
	})
}

func TestVaultStore(t *testing.T) {
	storetest.TestVaultStore(t, func(t *testing.T) lethe.VaultStore {
		return NewVaultStore(openTest(t, OpenData, testsvc.Postgres(t)))
	})
}

func TestConsentStore(t *testing.T) {
	storetest.TestConsentStore(t, func(t *testing.T) lethe.ConsentStore {
		return NewConsentStore(openTest(t, OpenData, testsvc.Postgres(t)))
	})
}

func TestConsentReopen(t *testing.T) {
	dsn := testsvc.Postgres(t)
	storetest.TestConsentReopen(t, func(t *testing.T) (lethe.ConsentStore, func() error) {
		db, err := OpenData(t.Context(), dsn)
		if err != nil {
			t.Fatal(err)
		}
		return NewConsentStore(db), db.Close
	})
}

func TestRequestStore(t *testing.T) {
	storetest.TestRequestStore(t, func(t *testing.T) lethe.RequestStore {
		return NewRequestStore(openTest(t, OpenData, testsvc.Postgres(t)))
	})
	storetest.TestRequestCodes(t, func(t *testing.T) lethe.RequestStore {
		return NewRequestStore(openTest(t, OpenData, testsvc.Postgres(t)))
	})
}

func TestKeyStore(t *testing.T) {
	storetest.TestKeyStore(t, func(t *testing.T) lethe.KeyStore {
		return NewKeyStore(openTest(t, OpenKeys, testsvc.Postgres(t)))
	})
}

func TestCheckpointStore(t *testing.T) {
	storetest.TestCheckpointStore(t, func(t *testing.T) lethe.CheckpointStore {
		return NewKeyStore(openTest(t, OpenKeys, testsvc.Postgres(t)))
	})
}

func TestDeploymentBinder(t *testing.T) {
	for name, open := range map[string]func(context.Context, string) (*DB, error){"data": OpenData, "keys": OpenKeys} {
		t.Run(name, func(t *testing.T) {
			storetest.TestDeploymentBinder(t, func(t *testing.T) lethe.DeploymentBinder {
				return openTest(t, open, testsvc.Postgres(t))
			})
		})
	}
}

type appliedMigration struct {
	version   int
	appliedAt time.Time
}

func appliedMigrations(t *testing.T, db *DB) []appliedMigration {
	t.Helper()
	rows, err := db.pool.Query(t.Context(), `SELECT version, applied_at FROM schema_migrations ORDER BY version`)
	if err != nil {
		t.Fatal(err)
	}
	var applied []appliedMigration
	for rows.Next() {
		var m appliedMigration
		if err := rows.Scan(&m.version, &m.appliedAt); err != nil {
			t.Fatal(err)
		}
		applied = append(applied, m)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return applied
}

func wantMigrations(t *testing.T, s store) int {
	t.Helper()
	steps, err := migrations(s)
	if err != nil {
		t.Fatal(err)
	}
	return len(steps)
}

// TestConcurrentOpen opens one fresh database from several goroutines at
// once, as several lethe instances starting together would.
func TestConcurrentOpen(t *testing.T) {
	dsn := testsvc.Postgres(t)
	const n = 4
	dbs := make([]*DB, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { dbs[i], errs[i] = OpenData(t.Context(), dsn) })
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("open %d: %v", i, errs[i])
		}
		defer dbs[i].Close()
	}
	if got, want := len(appliedMigrations(t, dbs[0])), wantMigrations(t, dataStore); got != want {
		t.Errorf("migrations applied: got %v, want %v", got, want)
	}
}

func TestReopen(t *testing.T) {
	dsn := testsvc.Postgres(t)
	var applied [2][]appliedMigration
	for i := range applied {
		db, err := OpenData(t.Context(), dsn)
		if err != nil {
			t.Fatal(err)
		}
		applied[i] = appliedMigrations(t, db)
		id, err := db.BindDeployment(t.Context(), fmt.Sprintf("dep_%d", i))
		if err != nil {
			t.Fatal(err)
		}
		if id != "dep_0" {
			t.Errorf("open %d: deployment: got %v, want %v", i, id, "dep_0")
		}
		db.Close()
	}
	if got, want := len(applied[0]), wantMigrations(t, dataStore); got != want {
		t.Errorf("migrations applied: got %v, want %v", got, want)
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
			dsn := testsvc.Postgres(t)
			db, err := tc.open(t.Context(), dsn)
			if err != nil {
				t.Fatal(err)
			}
			newer := wantMigrations(t, tc.store) + 1
			if _, err := db.pool.Exec(t.Context(),
				`INSERT INTO schema_migrations (version, store) VALUES ($1, $2)`, newer, tc.store.tag); err != nil {
				t.Fatal(err)
			}
			db.Close()
			_, err = tc.open(t.Context(), dsn)
			want := fmt.Sprintf("%s schema version %d is newer than this lethe binary supports (%d); upgrade lethe",
				tc.store.name, newer, wantMigrations(t, tc.store))
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("reopen: got %v, want an error containing %q", err, want)
			}
		})
	}
}

// TestSeparateDatabases checks that the data store and the key store refuse
// to share a database, whichever was created first.
func TestSeparateDatabases(t *testing.T) {
	for _, tc := range []struct {
		name         string
		first, other func(context.Context, string) (*DB, error)
	}{
		{"keys on data", OpenData, OpenKeys},
		{"data on keys", OpenKeys, OpenData},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dsn := testsvc.Postgres(t)
			openTest(t, tc.first, dsn)
			db, err := tc.other(t.Context(), dsn)
			if err == nil {
				db.Close()
			}
			if want := "must be separate databases"; err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("got %v, want an error containing %q", err, want)
			}
		})
	}
}

// TestErrorsHideDSN checks that open errors never quote the DSN's password,
// whether the DSN fails to parse or the server cannot be reached. It needs
// no server: port 1 refuses connections.
func TestErrorsHideDSN(t *testing.T) {
	const password = "s3cr3t-pw"
	for _, dsn := range []string{
		"postgres://lethe:" + password + "@127.0.0.1:1/lethe?sslmode=disable&connect_timeout=5",
		"host=127.0.0.1 port=1 user=lethe password=" + password + " sslmode=disable connect_timeout=5",
		"postgres://lethe:" + password + "@127.0.0.1:notaport/lethe",
		"postgres://lethe:" + password + "@[::1/lethe",
		"host=127.0.0.1 password='" + password,
	} {
		db, err := OpenData(t.Context(), dsn)
		if err == nil {
			db.Close()
			t.Errorf("open %q: got no error, want one", strings.ReplaceAll(dsn, password, "…"))
		} else if strings.Contains(err.Error(), password) {
			t.Errorf("open: got error %q, want it without the password", err)
		}
	}
}

// TestWrongStore checks that a store refuses the other kind of database.
func TestWrongStore(t *testing.T) {
	data := openTest(t, OpenData, testsvc.Postgres(t))
	keys := openTest(t, OpenKeys, testsvc.Postgres(t))
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
// once the data is deleted, no ciphertext) behind in the database.
func TestNoRowsLeft(t *testing.T) {
	ctx := t.Context()
	data := openTest(t, OpenData, testsvc.Postgres(t))
	keys := openTest(t, OpenKeys, testsvc.Postgres(t))
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
		if err := db.pool.QueryRow(ctx, query).Scan(&n); err != nil {
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

func BenchmarkVaultStore(b *testing.B) {
	storetest.BenchmarkVaultStore(b, NewVaultStore(openTest(b, OpenData, testsvc.Postgres(b))))
}

func BenchmarkConsentStore(b *testing.B) {
	storetest.BenchmarkConsentStore(b, NewConsentStore(openTest(b, OpenData, testsvc.Postgres(b))))
}

func BenchmarkKeyStore(b *testing.B) {
	storetest.BenchmarkKeyStore(b, NewKeyStore(openTest(b, OpenKeys, testsvc.Postgres(b))))
}
