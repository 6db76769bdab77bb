// Package mysql is the connector for a MySQL or MariaDB database of the
// data map (see package relational for what it does). The connection
// reference holds a go-sql-driver DSN (user:password@tcp(host:3306)/shop)
// naming the database; Open adds parseTime, so dates read as times.
package mysql

import (
	"context"
	"errors"

	driver "github.com/go-sql-driver/mysql"

	"github.com/lethe-privacy/lethe/internal/connector/relational"
	"github.com/lethe-privacy/lethe/internal/datamap"
)

// Open connects to the system's database. The caller must Close the
// connector.
func Open(ctx context.Context, sys *datamap.System) (*relational.Conn, error) {
	return relational.Open(ctx, sys, "mysql", relational.MySQL, func(ref string) (string, error) {
		cfg, err := driver.ParseDSN(ref)
		if err != nil {
			return "", errors.New("not a MySQL DSN like user:password@tcp(host:3306)/database")
		}
		if cfg.DBName == "" {
			return "", errors.New("the DSN names no database")
		}
		cfg.ParseTime = true
		return cfg.FormatDSN(), nil
	})
}
