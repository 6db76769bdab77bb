// Package shop is Lethe's sample web shop: the schema of a small shop in
// PostgreSQL, MariaDB and SQLite (schema/*.sql), its data map
// (lethe.yaml), and synthetic customers to fill it with, for tests,
// benchmarks and the demo.
//
// Seed makes the same customers from the same seed on every engine. Every
// value is fictional (example.test addresses, +44 7700 9… phone numbers,
// private IP addresses) and every personal value is distinct per customer,
// so that a test can search a dump, an export or a receipt for a
// customer's Customer.PersonalValues and know whose they are.
//
// The functions are safe for concurrent use on different databases; each
// runs in one transaction of its own.
package shop

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
)

// The dialects Create, Seed and SeedActivity take.
const (
	Postgres = "postgres"
	MySQL    = "mysql" // MySQL 8 and MariaDB 10.11
	SQLite   = "sqlite"
)

//go:embed schema/*.sql
var schemas embed.FS

// Tables returns the shop's tables in the order Create makes them, parents
// before the tables that refer to them.
func Tables() []string {
	return []string{"products", "customers", "addresses", "orders", "order_items",
		"invoices", "newsletter", "support_tickets", "activity_log"}
}

// Schema returns the DDL of the shop for a dialect, as schema/<dialect>.sql
// holds it.
func Schema(dialect string) (string, error) {
	if err := checkDialect(dialect); err != nil {
		return "", err
	}
	b, err := schemas.ReadFile("schema/" + dialect + ".sql")
	if err != nil {
		return "", fmt.Errorf("read schema %s: %w", dialect, err)
	}
	return string(b), nil
}

// Create makes the shop's tables and indexes in db, which must not have
// them yet. Statements run one at a time (the MySQL driver runs one per
// call unless multiStatements is set), so a failure can leave part of the
// schema behind on an engine without transactional DDL. An SQLite db
// should enable foreign keys on its connections (_pragma=foreign_keys(1)).
func Create(ctx context.Context, db *sql.DB, dialect string) error {
	ddl, err := Schema(dialect)
	if err != nil {
		return err
	}
	for i, stmt := range statements(ddl) {
		if _, err := db.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("create shop schema: %s statement %d: %w", dialect, i+1, err)
		}
	}
	return nil
}

// statements splits a schema file at the ";" that ends a line, leaving out
// comment lines. It is for the files of this package, which put no ";"
// at the end of a line inside a statement.
func statements(ddl string) []string {
	var out []string
	for _, chunk := range strings.Split(ddl, ";\n") {
		var lines []string
		for _, line := range strings.Split(chunk, "\n") {
			if t := strings.TrimSpace(line); t != "" && !strings.HasPrefix(t, "--") {
				lines = append(lines, line)
			}
		}
		if stmt := strings.TrimSuffix(strings.TrimSpace(strings.Join(lines, "\n")), ";"); stmt != "" {
			out = append(out, stmt)
		}
	}
	return out
}

func checkDialect(dialect string) error {
	switch dialect {
	case Postgres, MySQL, SQLite:
		return nil
	}
	return fmt.Errorf("unknown dialect %q (want %s, %s or %s)", dialect, Postgres, MySQL, SQLite)
}

// placeholder returns the dialect's i-th (1-based) query parameter.
func placeholder(dialect string, i int) string {
	if dialect == Postgres {
		return "$" + strconv.Itoa(i)
	}
	return "?"
}

// maxParams bounds the parameters of one statement, under every engine's
// limit (PostgreSQL and MySQL 65,535; SQLite 32,766).
const maxParams = 30_000

// insert writes rows into table with multi-row INSERTs of at most 1,000
// rows and maxParams parameters each.
func insert(ctx context.Context, tx *sql.Tx, dialect, table string, cols []string, rows [][]any) error {
	per := min(1000, maxParams/len(cols))
	for start := 0; start < len(rows); start += per {
		batch := rows[start:min(start+per, len(rows))]
		var b strings.Builder
		fmt.Fprintf(&b, "INSERT INTO %s (%s) VALUES ", table, strings.Join(cols, ", "))
		args := make([]any, 0, len(batch)*len(cols))
		for i, row := range batch {
			if len(row) != len(cols) {
				return fmt.Errorf("insert into %s: row has %d values for %d columns", table, len(row), len(cols))
			}
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteByte('(')
			for j, v := range row {
				if j > 0 {
					b.WriteString(", ")
				}
				args = append(args, sqlValue(dialect, v))
				b.WriteString(placeholder(dialect, len(args)))
			}
			b.WriteByte(')')
		}
		if _, err := tx.ExecContext(ctx, b.String(), args...); err != nil {
			return fmt.Errorf("insert %d rows into %s: %w", len(batch), table, redact(err))
		}
	}
	return nil
}

// redact drops the text of a MySQL error, which quotes the offending value
// ("Duplicate entry '…' for key …"), keeping its number and SQLSTATE.
// PostgreSQL's and SQLite's messages name constraints and columns only.
func redact(err error) error {
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		return fmt.Errorf("mysql error %d (SQLSTATE %s)", me.Number, string(me.SQLState[:]))
	}
	return err
}

// date is a calendar day, for a DATE column.
type date time.Time

// sqlValue returns v as the dialect's driver should get it. SQLite has no
// time type, and modernc.org/sqlite writes a time.Time as Go prints one
// ("2025-01-29 02:00:41 +0000 UTC"), which SQLite's date functions do not
// read: times go in as SQLite's own UTC text, "2025-01-29 02:00:41", and
// days as "2025-01-29". The driver still reads both back as times from
// columns declared TIMESTAMP and DATE.
func sqlValue(dialect string, v any) any {
	switch v := v.(type) {
	case time.Time:
		if dialect == SQLite {
			return v.UTC().Format(time.DateTime)
		}
		return v.UTC()
	case date:
		if dialect == SQLite {
			return time.Time(v).Format(time.DateOnly)
		}
		return time.Time(v)
	}
	return v
}
