// Package sqlite is the connector for an SQLite database file of the data
// map (see package relational for what it does). The connection
// reference is the file's path (connection: {path: shop.db}); the file
// must exist. Foreign keys are enforced on the connector's connections,
// and a busy database is waited for up to five seconds.
package sqlite

import (
	"context"
	"fmt"
	"net/url"
	"os"

	_ "modernc.org/sqlite" // registers the "sqlite" driver

	"github.com/lethe-privacy/lethe/internal/connector/relational"
	"github.com/lethe-privacy/lethe/internal/datamap"
)

// Open opens the system's database file. The caller must Close the
// connector.
func Open(ctx context.Context, sys *datamap.System) (*relational.Conn, error) {
	return relational.Open(ctx, sys, "sqlite", relational.SQLite, func(path string) (string, error) {
		if _, err := os.Stat(path); err != nil {
			return "", fmt.Errorf("database file %s: %w", path, err)
		}
		q := url.Values{"_pragma": {"busy_timeout(5000)", "foreign_keys(1)"}, "_txlock": {"immediate"}}
		return (&url.URL{Scheme: "file", Path: path, RawQuery: q.Encode()}).String(), nil
	})
}
