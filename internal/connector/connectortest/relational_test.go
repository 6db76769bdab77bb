package connectortest_test

import (
	"context"

	_ "github.com/go-sql-driver/mysql"
	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/lethe-privacy/lethe/internal/connector"
	"github.com/lethe-privacy/lethe/internal/connector/mysql"
	"github.com/lethe-privacy/lethe/internal/connector/postgres"
	"github.com/lethe-privacy/lethe/internal/connector/sqlite"
	"github.com/lethe-privacy/lethe/internal/datamap"
)

// openRelational opens a relational system by its kind.
func openRelational(ctx context.Context, sys *datamap.System) (connector.Connector, error) {
	switch sys.Kind {
	case datamap.KindPostgres:
		return postgres.Open(ctx, sys)
	case datamap.KindMySQL:
		return mysql.Open(ctx, sys)
	}
	return sqlite.Open(ctx, sys)
}
