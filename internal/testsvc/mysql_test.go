package testsvc

import (
	"database/sql"
	"strings"
	"testing"

	"github.com/go-sql-driver/mysql"
)

// TestMySQL checks that MySQL gives each test a fresh utf8mb4 database,
// keeps the server DSN's settings, and drops the database when the test
// ends.
func TestMySQL(t *testing.T) {
	var name string
	t.Run("fresh", func(t *testing.T) {
		dsn := MySQL(t)
		cfg, err := mysql.ParseDSN(dsn)
		if err != nil {
			t.Fatalf("parse returned DSN: %v", err)
		}
		if !cfg.ParseTime {
			t.Errorf("parseTime: got %v, want true (from the server DSN)", cfg.ParseTime)
		}
		db, err := sql.Open("mysql", dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		var tables int
		var charset string
		if err := db.QueryRowContext(t.Context(),
			`SELECT DATABASE(), @@character_set_database, (SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = DATABASE())`).
			Scan(&name, &charset, &tables); err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(name, "lethe_test_") || name != cfg.DBName || tables != 0 {
			t.Errorf("database: got %s with %d tables, want %s (lethe_test_…) with 0", name, tables, cfg.DBName)
		}
		if charset != "utf8mb4" {
			t.Errorf("character set: got %v, want utf8mb4", charset)
		}
	})
	if t.Failed() || name == "" {
		return
	}
	db, err := sql.Open("mysql", mysqlServer())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRowContext(t.Context(), `SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name = ?`, name).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("database %s after its test: got exists, want dropped", name)
	}
}
