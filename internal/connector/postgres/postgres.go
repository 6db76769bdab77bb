// Package postgres is the connector for a PostgreSQL database of the data
// map (see package relational for what it does). The connection
// reference holds a PostgreSQL URL or keyword/value string; the tables are
// those of the connection's current schema (search_path).
package postgres

import (
	"context"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver

	"github.com/lethe-privacy/lethe/internal/connector/relational"
	"github.com/lethe-privacy/lethe/internal/datamap"
)

// Open connects to the system's database. The caller must Close the
// connector.
func Open(ctx context.Context, sys *datamap.System) (*relational.Conn, error) {
	return relational.Open(ctx, sys, "pgx", relational.Postgres, func(ref string) (string, error) { return ref, nil })
}
