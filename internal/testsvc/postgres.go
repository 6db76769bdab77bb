package testsvc

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// defaultPostgres is the server tests use when LETHE_TEST_POSTGRES is unset.
const defaultPostgres = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// Postgres creates a fresh database, lethe_test_<random hex>, on the server
// that LETHE_TEST_POSTGRES names (by default the trust-auth superuser on
// 127.0.0.1:5432) and returns a DSN for it. The database is dropped when t ends, after the cleanups that
// t registers later (so they can close their connections first). If the
// server is unreachable, Postgres calls Unavailable. It is safe to call from
// parallel tests.
func Postgres(t testing.TB) string {
	t.Helper()
	dsn := postgresServer()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		Unavailable(t, "PostgreSQL", "LETHE_TEST_POSTGRES", err)
	}
	defer conn.Close(ctx)

	var random [8]byte
	rand.Read(random[:]) // never returns an error
	name := "lethe_test_" + hex.EncodeToString(random[:])
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("create test database: %v", err)
	}
	t.Cleanup(func() {
		// t.Context is done by now, so the drop gets its own.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Errorf("drop test database %s: %v", name, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP DATABASE "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("drop test database %s: %v", name, err)
		}
	})
	return withDatabase(dsn, name)
}

// withDatabase returns dsn, a URL or a keyword/value DSN, pointing at
// database name instead.
func withDatabase(dsn, name string) string {
	if u, err := url.Parse(dsn); err == nil && (u.Scheme == "postgres" || u.Scheme == "postgresql") {
		u.Path = "/" + name
		return u.String()
	}
	// In keyword/value form, a later keyword overrides an earlier one.
	return strings.TrimSpace(dsn) + " dbname=" + name
}

// postgresServer returns the DSN of the server to create test databases on.
func postgresServer() string {
	if dsn := os.Getenv("LETHE_TEST_POSTGRES"); dsn != "" {
		return dsn
	}
	return defaultPostgres
}
