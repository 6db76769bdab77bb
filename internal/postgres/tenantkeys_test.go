package postgres

import (
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/testsvc"
)

// TestTenantKeyVersionsMigration opens a key store of the schema before
// tenant keys had versions, with keys in it: every tenant key becomes
// version 1, and subject keys with the key ID of that time,
// "tenant:<tenant>", are under version 1.
func TestTenantKeyVersionsMigration(t *testing.T) {
	ctx := t.Context()
	dsn := testsvc.Postgres(t)
	steps, err := migrations(keyStore)
	if err != nil {
		t.Fatal(err)
	}
	old, err := pgxpool.New(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	for done := false; !done; {
		if done, err = migrateStep(ctx, old, keyStore, steps[:3]); err != nil {
			t.Fatal(err)
		}
	}
	created := time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC)
	for _, q := range []struct {
		query string
		args  []any
	}{
		{`INSERT INTO tenant_keys (tenant, wrapped, kek_id, created_at) VALUES ($1, $2, $3, $4)`, []any{"acme", []byte("acme key"), "local-1", created}},
		{`INSERT INTO tenant_keys (tenant, wrapped, kek_id, created_at) VALUES ($1, $2, $3, $4)`, []any{"globex", []byte("globex key"), "local-1", created}},
		{`INSERT INTO subject_keys (tenant, subject_id, wrapped, kek_id, created_at) VALUES ($1, $2, $3, $4, $5)`, []any{"acme", "sub_1", []byte("sub key"), "tenant:acme", created}},
	} {
		if _, err := old.Exec(ctx, q.query, q.args...); err != nil {
			t.Fatal(err)
		}
	}
	old.Close()

	db := openTest(t, OpenKeys, dsn)
	var version int
	if err := db.pool.QueryRow(ctx, `SELECT max(version) FROM schema_migrations`).Scan(&version); err != nil || version != 4 {
		t.Fatalf("schema version: got %v, %v, want 4", version, err)
	}
	s := NewKeyStore(db)
	for _, tenant := range []string{"acme", "globex"} {
		k, err := s.TenantKey(ctx, tenant)
		if err != nil || k.Version != 1 || string(k.Wrapped) != tenant+" key" || k.KEKID != "local-1" || !k.CreatedAt.Equal(created) {
			t.Errorf("key of %s: got %+v, %v, want it as version 1", tenant, k, err)
		}
	}
	if n, err := s.CountStaleSubjectKeys(ctx, "acme", 1); err != nil || n != 0 {
		t.Errorf("acme's keys not under version 1: got %v, %v, want 0", n, err)
	}
	if err := s.CreateSubjectKey(ctx, "acme", "sub_2", &lethe.WrappedKey{Wrapped: []byte("k"), KEKID: lethe.TenantKEKID("acme", 1), CreatedAt: created}); err != nil {
		t.Errorf("create under version 1: %v", err)
	}
	if err := s.AddTenantKeyVersion(ctx, "acme", &lethe.WrappedKey{Wrapped: []byte("v2"), KEKID: "local-1", Version: 2, CreatedAt: created}); err != nil {
		t.Fatal(err)
	}
	if n, err := s.CountStaleSubjectKeys(ctx, "acme", 2); err != nil || n != 2 {
		t.Errorf("acme's keys not under version 2: got %v, %v, want 2", n, err)
	}
	if _, err := s.DeleteTenantKeysBefore(ctx, "acme", 2); lethe.ErrorCode(err) != lethe.ECONFLICT {
		t.Errorf("delete version 1 with keys under it: got %v, want a conflict", err)
	}
}
