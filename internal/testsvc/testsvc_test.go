package testsvc

import (
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

func TestWithDatabase(t *testing.T) {
	for _, tc := range []struct{ dsn, want string }{
		{"postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable", "postgres://postgres@127.0.0.1:5432/lethe_test_x?sslmode=disable"},
		{"postgresql://u:p@db/", "postgresql://u:p@db/lethe_test_x"},
		{"host=127.0.0.1 dbname=postgres ", "host=127.0.0.1 dbname=postgres dbname=lethe_test_x"},
	} {
		if got := withDatabase(tc.dsn, "lethe_test_x"); got != tc.want {
			t.Errorf("withDatabase(%q): got %v, want %v", tc.dsn, got, tc.want)
		}
	}
}

// TestPostgres checks that Postgres gives each test a fresh database and
// drops it when the test ends.
func TestPostgres(t *testing.T) {
	var name string
	t.Run("fresh", func(t *testing.T) {
		conn, err := pgx.Connect(t.Context(), Postgres(t))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(t.Context())
		var tables int
		if err := conn.QueryRow(t.Context(),
			`SELECT current_database(), (SELECT count(*) FROM pg_tables WHERE schemaname = 'public')`).Scan(&name, &tables); err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(name, "lethe_test_") || tables != 0 {
			t.Errorf("database: got %s with %d tables, want lethe_test_… with 0", name, tables)
		}
	})
	if t.Failed() || name == "" {
		return
	}
	conn, err := pgx.Connect(t.Context(), postgresServer())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(t.Context())
	var exists bool
	if err := conn.QueryRow(t.Context(), `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, name).Scan(&exists); err != nil {
		t.Fatal(err)
	}
	if exists {
		t.Errorf("database %s after its test: got exists, want dropped", name)
	}
}
