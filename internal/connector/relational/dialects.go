package relational

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"
)

// Postgres is the dialect of PostgreSQL; the tables are those of the
// connection's current schema.
var Postgres Dialect = postgres{}

type postgres struct{}

func (postgres) Name() string             { return "postgres" }
func (postgres) Quote(s string) string    { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }
func (postgres) Placeholder(i int) string { return "$" + strconv.Itoa(i) }

func (postgres) Schema(ctx context.Context, db *sql.DB) (*Schema, error) {
	return catalogue{
		columns: `SELECT c.table_name, c.column_name, c.data_type, c.is_nullable = 'YES', c.character_maximum_length
			FROM information_schema.columns c
			JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name
			WHERE c.table_schema = current_schema() AND t.table_type IN ('BASE TABLE', 'VIEW')
			ORDER BY c.table_name, c.ordinal_position`,
		keys: `SELECT cl.relname, string_agg(a.attname, ',' ORDER BY k.ord)
			FROM pg_constraint co
			JOIN pg_class cl ON cl.oid = co.conrelid
			JOIN pg_namespace n ON n.oid = cl.relnamespace
			CROSS JOIN LATERAL unnest(co.conkey) WITH ORDINALITY AS k(attnum, ord)
			JOIN pg_attribute a ON a.attrelid = co.conrelid AND a.attnum = k.attnum
			WHERE co.contype = 'p' AND n.nspname = current_schema()
			GROUP BY cl.relname`,
		fks: `SELECT cl.relname,
				(SELECT string_agg(a.attname, ',' ORDER BY k.ord) FROM unnest(co.conkey) WITH ORDINALITY AS k(attnum, ord)
					JOIN pg_attribute a ON a.attrelid = co.conrelid AND a.attnum = k.attnum),
				pl.relname,
				(SELECT string_agg(a.attname, ',' ORDER BY k.ord) FROM unnest(co.confkey) WITH ORDINALITY AS k(attnum, ord)
					JOIN pg_attribute a ON a.attrelid = co.confrelid AND a.attnum = k.attnum)
			FROM pg_constraint co
			JOIN pg_class cl ON cl.oid = co.conrelid
			JOIN pg_class pl ON pl.oid = co.confrelid
			JOIN pg_namespace n ON n.oid = cl.relnamespace
			WHERE co.contype = 'f' AND n.nspname = current_schema()
			ORDER BY cl.relname, co.conname`,
	}.read(ctx, db)
}

// MySQL is the dialect of MySQL and MariaDB; the tables are those of the
// connection's database.
var MySQL Dialect = mysql{}

type mysql struct{}

func (mysql) Name() string           { return "mysql" }
func (mysql) Quote(s string) string  { return "`" + strings.ReplaceAll(s, "`", "``") + "`" }
func (mysql) Placeholder(int) string { return "?" }

func (mysql) Schema(ctx context.Context, db *sql.DB) (*Schema, error) {
	return catalogue{
		columns: `SELECT TABLE_NAME, COLUMN_NAME, DATA_TYPE, IS_NULLABLE = 'YES', CHARACTER_MAXIMUM_LENGTH
			FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE()
			ORDER BY TABLE_NAME, ORDINAL_POSITION`,
		keys: `SELECT TABLE_NAME, GROUP_CONCAT(COLUMN_NAME ORDER BY ORDINAL_POSITION SEPARATOR ',')
			FROM information_schema.KEY_COLUMN_USAGE
			WHERE TABLE_SCHEMA = DATABASE() AND CONSTRAINT_NAME = 'PRIMARY'
			GROUP BY TABLE_NAME`,
		fks: `SELECT TABLE_NAME, GROUP_CONCAT(COLUMN_NAME ORDER BY ORDINAL_POSITION SEPARATOR ','),
				REFERENCED_TABLE_NAME, GROUP_CONCAT(REFERENCED_COLUMN_NAME ORDER BY ORDINAL_POSITION SEPARATOR ',')
			FROM information_schema.KEY_COLUMN_USAGE
			WHERE TABLE_SCHEMA = DATABASE() AND REFERENCED_TABLE_NAME IS NOT NULL
			GROUP BY TABLE_NAME, CONSTRAINT_NAME, REFERENCED_TABLE_NAME
			ORDER BY TABLE_NAME, CONSTRAINT_NAME`,
	}.read(ctx, db)
}

// SQLite is the dialect of SQLite.
var SQLite Dialect = sqlite{}

type sqlite struct{}

func (sqlite) Name() string           { return "sqlite" }
func (sqlite) Quote(s string) string  { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }
func (sqlite) Placeholder(int) string { return "?" }

// Schema reads SQLite's catalogue through its table-valued pragma
// functions, which need SQLite 3.16 or newer.
func (sqlite) Schema(ctx context.Context, db *sql.DB) (*Schema, error) {
	s, err := catalogue{
		columns: `SELECT m.name, p.name, lower(p.type), p."notnull" = 0 AND p.pk = 0, NULL
			FROM sqlite_schema m, pragma_table_info(m.name) p
			WHERE m.type IN ('table', 'view') AND m.name NOT LIKE 'sqlite_%'
			ORDER BY m.name, p.cid`,
		keys: `SELECT m.name, group_concat(p.name, ',' ORDER BY p.pk)
			FROM sqlite_schema m JOIN pragma_table_info(m.name) p
			WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' AND p.pk > 0
			GROUP BY m.name`,
		fks: `SELECT m.name, group_concat(f."from", ',' ORDER BY f.seq), f."table", group_concat(coalesce(f."to", ''), ',' ORDER BY f.seq)
			FROM sqlite_schema m JOIN pragma_foreign_key_list(m.name) f
			WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%'
			GROUP BY m.name, f.id`,
	}.read(ctx, db)
	if err != nil {
		return nil, err
	}
	// A foreign key that names no parent columns references the parent's
	// primary key.
	for i, fk := range s.FKs {
		if len(fk.References) == 0 || fk.References[0] == "" {
			if p := s.Tables[fk.Parent]; p != nil {
				s.FKs[i].References = p.Key
			} else {
				return nil, fmt.Errorf("read foreign keys: %s references %s, which does not exist", fk.Child, fk.Parent)
			}
		}
	}
	return s, nil
}
