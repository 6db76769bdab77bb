// Package relational is the connector core the PostgreSQL, MySQL/MariaDB
// and SQLite connectors share: a data map's tables, resolved against the
// live schema, searched, exported, erased, rectified and restricted through
// database/sql. The engine packages (connector/postgres, connector/mysql,
// connector/sqlite) open the database and pick the Dialect.
//
// Erasure runs in one transaction. It first reads every row of the
// subject in every mapped table (so that links cut by one step do not hide
// rows from the next), decides each row's fate, and then writes: updates
// of the rows that stay, then deletions, children before parents, in the
// order the live schema's foreign keys require. A row that must go but
// that a staying row still references (an invoice kept for ten years
// references its customer) stays too, with its personal columns replaced
// and its link to the subject cut; the plan says so. PlanErase runs the
// same reading and deciding in a transaction it rolls back, so the dry run
// lists exactly the rows Erase then touches.
//
// Restrict writes the map's restrict values (a flag the application
// checks) into the subject's rows for a restriction of processing or an
// objection to a purpose, converting each value to its column's type so
// that the same map works on every engine.
package relational

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/lethe-privacy/lethe/internal/connector"
	"github.com/lethe-privacy/lethe/internal/datamap"
)

// Conn is an open relational system. It is safe for concurrent use; the
// caller must Close it.
type Conn struct {
	sys    *datamap.System
	db     *sql.DB
	d      Dialect
	schema *Schema
	tables []*mapped // in the map's order
	byName map[string]*mapped
	// problem is the first way the map does not fit the schema, or nil.
	problem error
}

var (
	_ connector.Connector  = (*Conn)(nil)
	_ connector.Exporter   = (*Conn)(nil)
	_ connector.Eraser     = (*Conn)(nil)
	_ connector.Rectifier  = (*Conn)(nil)
	_ connector.Restricter = (*Conn)(nil)
	_ connector.Checker    = (*Conn)(nil)
)

// mapped is a table of the map with what the live schema says of it.
type mapped struct {
	t      *datamap.Table
	info   *TableInfo
	key    []string
	parent *mapped
}

// New reads db's schema for the system's tables. A map that does not fit
// the schema (a missing table or column, a table without a primary key)
// still opens, so that Check can report every difference; the other
// operations then fail with the first one. New takes db over: Close closes
// it.
func New(ctx context.Context, sys *datamap.System, db *sql.DB, d Dialect) (*Conn, error) {
	s, err := d.Schema(ctx, db)
	if err != nil {
		return nil, fmt.Errorf("system %s: %w", sys.Name, err)
	}
	c := &Conn{sys: sys, db: db, d: d, schema: s, byName: map[string]*mapped{}}
	for i := range sys.Tables {
		t := &sys.Tables[i]
		m := &mapped{t: t, info: s.Tables[t.Name], key: t.Key}
		if len(m.key) == 0 && m.info != nil {
			m.key = m.info.Key
		}
		c.tables = append(c.tables, m)
		c.byName[t.Name] = m
	}
	for _, m := range c.tables {
		if m.t.Via != nil {
			m.parent = c.byName[m.t.Via.Parent]
		}
	}
	if drift := c.drift(false); len(drift) > 0 {
		d := drift[0]
		where := d.Location
		if d.Column != "" {
			where += "." + d.Column
		}
		c.problem = fmt.Errorf("system %s: %s: %s (run lethe datamap check for every difference)", sys.Name, where, d.Hint)
	}
	return c, nil
}

// Close closes the database.
func (c *Conn) Close() error { return c.db.Close() }

// DB returns the database, for tests and benchmarks.
func (c *Conn) DB() *sql.DB { return c.db }

func (c *Conn) q(ident string) string { return c.d.Quote(ident) }

// rowset is a table's rows of one subject, all columns.
type rowset struct {
	m     *mapped
	cols  []string
	rows  [][]any
	keyIx []int
}

func (r *rowset) key(row []any) string {
	parts := make([]string, len(r.keyIx))
	for i, ix := range r.keyIx {
		parts[i] = valueString(row[ix])
	}
	return strings.Join(parts, ",")
}

func (r *rowset) col(name string) int {
	for i, c := range r.cols {
		if strings.EqualFold(c, name) {
			return i
		}
	}
	return -1
}

type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// where returns the condition selecting the subject's rows of m, and its
// arguments; ok is false when the subject lacks the identifier m's chain
// links by (then it has no rows there).
func (c *Conn) where(m *mapped, s connector.Subject, args []any) (string, []any, bool) {
	if l := m.t.Subject; l != nil {
		kind := l.Identifier
		if kind == "" {
			kind = connector.LinkSubject
		}
		v, ok := s.Identifier(kind)
		if !ok {
			return "", args, false
		}
		args = append(args, v)
		return c.q(l.Column) + " = " + c.d.Placeholder(len(args)), args, true
	}
	v := m.t.Via
	inner, args, ok := c.where(m.parent, s, args)
	if !ok {
		return "", args, false
	}
	return c.q(v.Column) + " IN (SELECT " + c.q(v.References) + " FROM " + c.q(v.Parent) + " WHERE " + inner + ")", args, true
}

// collect reads the subject's rows of every mapped table.
func (c *Conn) collect(ctx context.Context, q querier, s connector.Subject) ([]*rowset, error) {
	if c.problem != nil {
		return nil, c.problem
	}
	out := make([]*rowset, 0, len(c.tables))
	for _, m := range c.tables {
		rs := &rowset{m: m}
		out = append(out, rs)
		cond, args, ok := c.where(m, s, nil)
		if !ok {
			continue
		}
		rows, err := q.QueryContext(ctx, "SELECT * FROM "+c.q(m.t.Name)+" WHERE "+cond, args...)
		if err != nil {
			return nil, c.fail("read", m.t.Name, err)
		}
		if err := rs.scan(rows); err != nil {
			return nil, c.fail("read", m.t.Name, err)
		}
		for _, k := range m.key {
			ix := rs.col(k)
			if ix < 0 {
				return nil, fmt.Errorf("system %s: table %s: key column %s not in the rows read", c.sys.Name, m.t.Name, k)
			}
			rs.keyIx = append(rs.keyIx, ix)
		}
	}
	return out, nil
}

func (r *rowset) scan(rows *sql.Rows) error {
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return err
	}
	r.cols = cols
	for rows.Next() {
		row := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range row {
			ptrs[i] = &row[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return err
		}
		r.rows = append(r.rows, row)
	}
	return rows.Err()
}

// fail wraps a driver error with the system, the operation and the table,
// with the error's text passed through Redact.
func (c *Conn) fail(op, table string, err error) error {
	return fmt.Errorf("system %s: %s %s: %w", c.sys.Name, op, table, Redact(err))
}

// quotedRE matches what drivers quote in their messages: values
// (MySQL's "Duplicate entry 'ada@example.test'", PostgreSQL's "invalid
// input syntax for type date: \"…\""), and connection parameters.
var quotedRE = regexp.MustCompile("'[^']*'|\"[^\"]*\"|`[^`]*`")

// Redact returns err with every quoted part of its text elided, so that
// neither a personal value nor a connection parameter a driver quotes
// reaches a log or a report. Cancellation and deadlines stay matchable
// with errors.Is.
func Redact(err error) error {
	if err == nil {
		return nil
	}
	msg := quotedRE.ReplaceAllString(err.Error(), "…")
	for _, sentinel := range []error{context.Canceled, context.DeadlineExceeded, sql.ErrNoRows, sql.ErrConnDone} {
		if errors.Is(err, sentinel) {
			return fmt.Errorf("%s: %w", msg, sentinel)
		}
	}
	return errors.New(msg)
}

// Find counts the subject's rows in every mapped table.
func (c *Conn) Find(ctx context.Context, s connector.Subject) ([]connector.Count, error) {
	sets, err := c.collect(ctx, c.db, s)
	if err != nil {
		return nil, err
	}
	out := make([]connector.Count, len(sets))
	for i, rs := range sets {
		out[i] = connector.Count{Location: rs.m.t.Name, Count: int64(len(rs.rows))}
	}
	return out, nil
}

// Export writes the subject's rows of every exported table to out, all
// columns, in one read-only transaction.
func (c *Conn) Export(ctx context.Context, s connector.Subject, out connector.Sink) ([]connector.Count, error) {
	tx, err := c.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: c.d.Name() != "sqlite"})
	if err != nil {
		return nil, c.fail("begin", "export", err)
	}
	defer tx.Rollback()
	sets, err := c.collect(ctx, tx, s)
	if err != nil {
		return nil, err
	}
	var counts []connector.Count
	for _, rs := range sets {
		if rs.m.t.NoExport {
			continue
		}
		for _, row := range rs.rows {
			vals := make([]any, len(row))
			for i, v := range row {
				vals[i] = c.exportValue(rs.m, rs.cols[i], v)
			}
			if err := out.Record(rs.m.t.Name, rs.cols, vals); err != nil {
				return nil, fmt.Errorf("system %s: export %s: %w", c.sys.Name, rs.m.t.Name, err)
			}
		}
		counts = append(counts, connector.Count{Location: rs.m.t.Name, Count: int64(len(rs.rows))})
	}
	return counts, nil
}

// exportValue turns a driver's value into one a JSON or CSV writer shows
// as it is meant: text as a string, not bytes.
func (c *Conn) exportValue(m *mapped, col string, v any) any {
	b, ok := v.([]byte)
	if !ok {
		return v
	}
	if ci, found := m.info.Column(col); (found && ci.Text()) || (!found && utf8.Valid(b)) || c.d.Name() == "mysql" && utf8.Valid(b) {
		return string(b)
	}
	return b
}

// valueString is a value as a row key shows it.
func valueString(v any) string {
	switch x := v.(type) {
	case nil:
		return "NULL"
	case []byte:
		return string(x)
	case time.Time:
		return x.UTC().Format(time.RFC3339Nano)
	default:
		return fmt.Sprint(x)
	}
}

// asTime reads a retention column's value.
func asTime(v any) (time.Time, bool) {
	switch x := v.(type) {
	case time.Time:
		return x, true
	case []byte:
		return parseTime(string(x))
	case string:
		return parseTime(x)
	}
	return time.Time{}, false
}

func parseTime(s string) (time.Time, bool) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02 15:04:05.999999999-07:00", "2006-01-02 15:04:05.999999999", "2006-01-02T15:04:05.999999999", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

// sortedKeys returns a map's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
