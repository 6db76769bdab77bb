package testsvc

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"os"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
)

// defaultMySQL is the server tests use when LETHE_TEST_MYSQL is unset: the
// root user of the MariaDB on 127.0.0.1:3306, without a password.
const defaultMySQL = "root@tcp(127.0.0.1:3306)/?parseTime=true&multiStatements=false"

// MySQL creates a fresh database, lethe_test_<random hex> (utf8mb4), on the
// MariaDB or MySQL server that LETHE_TEST_MYSQL names, a go-sql-driver DSN
// (by default root on 127.0.0.1:3306), and returns the DSN with that
// database selected and the server DSN's other settings kept. The database
// is dropped when t ends, after the cleanups that t registers later (so
// they can close their connections first). If the server is unreachable,
// MySQL calls Unavailable. It is safe to call from parallel tests.
func MySQL(t testing.TB) string {
	t.Helper()
	cfg, err := mysql.ParseDSN(mysqlServer())
	if err != nil {
		// The DSN may hold a password: say which variable is wrong, not what it holds.
		t.Fatalf("LETHE_TEST_MYSQL is not a go-sql-driver DSN like user:password@tcp(host:3306)/")
	}
	server := cfg.Clone()
	server.DBName = ""
	conn, err := mysql.NewConnector(server)
	if err != nil {
		t.Fatalf("LETHE_TEST_MYSQL: %v", err)
	}
	db := sql.OpenDB(conn)
	defer db.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		Unavailable(t, "MariaDB", "LETHE_TEST_MYSQL", err)
	}

	var random [8]byte
	rand.Read(random[:]) // never returns an error
	name := "lethe_test_" + hex.EncodeToString(random[:])
	if _, err := db.ExecContext(ctx, "CREATE DATABASE "+name+" CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"); err != nil {
		t.Fatalf("create test database: %v", err)
	}
	t.Cleanup(func() {
		// t.Context is done by now, so the drop gets its own.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		db := sql.OpenDB(conn)
		defer db.Close()
		if _, err := db.ExecContext(ctx, "DROP DATABASE IF EXISTS "+name); err != nil {
			t.Errorf("drop test database %s: %v", name, err)
		}
	})
	cfg.DBName = name
	return cfg.FormatDSN()
}

// mysqlServer returns the DSN of the server to create test databases on.
func mysqlServer() string {
	if dsn := os.Getenv("LETHE_TEST_MYSQL"); dsn != "" {
		return dsn
	}
	return defaultMySQL
}
