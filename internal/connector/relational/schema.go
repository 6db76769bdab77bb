package relational

import (
	"context"
	"database/sql"
	"fmt"
	"regexp"
	"strings"
)

// Dialect is what differs between the relational engines: quoting,
// placeholders, and how the live schema is read.
type Dialect interface {
	// Name is the system kind: postgres, mysql or sqlite.
	Name() string
	Quote(ident string) string
	// Placeholder returns the i-th (1-based) parameter marker.
	Placeholder(i int) string
	// Schema reads the tables of the connection's database (or schema):
	// columns, primary keys and foreign keys.
	Schema(ctx context.Context, db *sql.DB) (*Schema, error)
}

// Schema is the live shape of a database, as far as erasure needs it.
type Schema struct {
	Tables map[string]*TableInfo
	// Foreign keys, every one of the database, by the child table.
	FKs []ForeignKey
}

// TableInfo is one table's columns and primary key.
type TableInfo struct {
	Name    string
	Columns []ColumnInfo
	Key     []string
}

// Column returns the named column.
func (t *TableInfo) Column(name string) (ColumnInfo, bool) {
	for _, c := range t.Columns {
		if strings.EqualFold(c.Name, name) {
			return c, true
		}
	}
	return ColumnInfo{}, false
}

// ColumnInfo is a column's name, type and nullability.
type ColumnInfo struct {
	Name     string
	Type     string // as the engine names it, lower case
	Nullable bool
	// MaxLen is the declared maximum length of a character column, or 0.
	MaxLen int
}

// Text reports whether the column holds text (which a pseudonym can
// replace).
func (c ColumnInfo) Text() bool {
	t := c.Type
	for _, s := range []string{"char", "text", "clob", "string", "citext"} {
		if strings.Contains(t, s) {
			return true
		}
	}
	return false
}

// ForeignKey is Child.Columns referencing Parent.References.
type ForeignKey struct {
	Child      string
	Columns    []string
	Parent     string
	References []string
}

// personalRE matches column names that look personal; `lethe datamap
// check` reports such columns when the map does not mention them.
var personalRE = regexp.MustCompile(`(?i)(e_?mail|phone|mobile|msisdn|fax|(first|last|full|given|middle|sur|maiden|display|user|nick|shipping|billing|contact|customer|recipient)_?name|^surname$|birth|^dob$|street|address|postcode|postal|^zip|^city$|(^|_)ip(_?addr(ess)?)?$|user_?agent|ssn|social_security|passport|iban|card_?number|^pan$|tax_?id|national_?id|gender|latitude|longitude|geo_?loc|device_?id|cookie|^lethe_id$|subject_id|password|salary|religion|ethnic|health|diagnos)`)

// LooksPersonal reports whether a column name suggests personal data.
func LooksPersonal(column string) bool { return personalRE.MatchString(column) }

// splitList splits a comma-separated list of names.
func splitList(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

// readSchema runs the dialect's catalogue queries: tables with their
// columns, primary keys, and foreign keys.
type catalogue struct {
	// columns returns rows of (table, column, type, nullable, maxlen).
	columns string
	// keys returns rows of (table, comma-separated key columns).
	keys string
	// fks returns rows of (child, columns, parent, references), lists
	// comma-separated in order.
	fks string
}

func (c catalogue) read(ctx context.Context, db *sql.DB) (*Schema, error) {
	s := &Schema{Tables: map[string]*TableInfo{}}
	rows, err := db.QueryContext(ctx, c.columns)
	if err != nil {
		return nil, fmt.Errorf("read columns: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var table, col, typ string
		var nullable bool
		var maxLen sql.NullInt64
		if err := rows.Scan(&table, &col, &typ, &nullable, &maxLen); err != nil {
			return nil, fmt.Errorf("read columns: %w", err)
		}
		t := s.Tables[table]
		if t == nil {
			t = &TableInfo{Name: table}
			s.Tables[table] = t
		}
		t.Columns = append(t.Columns, ColumnInfo{Name: col, Type: strings.ToLower(typ), Nullable: nullable, MaxLen: int(maxLen.Int64)})
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read columns: %w", err)
	}
	if err := c.each(ctx, db, c.keys, func(v []string) {
		if t := s.Tables[v[0]]; t != nil {
			t.Key = splitList(v[1])
		}
	}, 2); err != nil {
		return nil, fmt.Errorf("read primary keys: %w", err)
	}
	if err := c.each(ctx, db, c.fks, func(v []string) {
		s.FKs = append(s.FKs, ForeignKey{Child: v[0], Columns: splitList(v[1]), Parent: v[2], References: splitList(v[3])})
	}, 4); err != nil {
		return nil, fmt.Errorf("read foreign keys: %w", err)
	}
	return s, nil
}

func (c catalogue) each(ctx context.Context, db *sql.DB, query string, f func([]string), n int) error {
	rows, err := db.QueryContext(ctx, query)
	if err != nil {
		return err
	}
	defer rows.Close()
	v := make([]string, n)
	ptrs := make([]any, n)
	for i := range v {
		ptrs[i] = &v[i]
	}
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return err
		}
		f(append([]string(nil), v...))
	}
	return rows.Err()
}
