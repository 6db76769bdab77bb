package relational

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/lethe-privacy/lethe/internal/connector"
	"github.com/lethe-privacy/lethe/internal/datamap"
)

// restriction is what Restrict writes into one table: the columns of
// every entry that applies, and their values as the columns take them.
type restriction struct {
	m    *mapped
	cols []string
	vals []any
}

// Restrict writes the map's restrict values for a restriction (objection
// "") or for an objection to a purpose into the subject's rows of every
// table with entries for it, in one transaction. The rows are found as
// erasure finds them (through via chains too), by their keys first, so
// that the report lists exactly the rows written. Running it again writes
// the same values and reports the same rows.
func (c *Conn) Restrict(ctx context.Context, s connector.Subject, objection string) (connector.Report, error) {
	r := connector.Report{System: c.sys.Name, At: s.Now}
	var work []restriction
	for _, m := range c.tables {
		entries := m.t.Restrictions(objection)
		if len(entries) == 0 {
			continue
		}
		if c.problem != nil {
			return connector.Report{}, c.problem
		}
		w := restriction{m: m}
		for _, e := range entries {
			for _, a := range e.Set {
				ci, ok := m.info.Column(a.Column)
				if !ok {
					return connector.Report{}, fmt.Errorf("system %s: table %s has no column %s (restrict)", c.sys.Name, m.t.Name, a.Column)
				}
				v, err := restrictValue(ci, a)
				if err != nil {
					return connector.Report{}, fmt.Errorf("system %s: table %s: %w", c.sys.Name, m.t.Name, err)
				}
				w.cols = append(w.cols, a.Column)
				w.vals = append(w.vals, v)
			}
		}
		work = append(work, w)
	}
	if len(work) == 0 {
		return r, nil
	}
	action, note := connector.ActionRestrict, "restriction of processing (Art. 18)"
	if objection != "" {
		action, note = connector.ActionObject, "objection to "+objection+" (Art. 21)"
	}
	tx, err := c.db.BeginTx(ctx, nil)
	if err != nil {
		return connector.Report{}, c.fail("begin", "restrict", err)
	}
	defer tx.Rollback()
	for _, w := range work {
		m := w.m
		st := connector.Step{Location: m.t.Name, Action: action, Columns: w.cols, Note: note,
			Statement: c.setSQL(m, w.cols) + " WHERE " + c.keyList(m) + " IN (…)"}
		cond, args, ok := c.where(m, s, nil)
		if ok {
			keys, err := c.keys(ctx, tx, m, cond, args)
			if err != nil {
				return connector.Report{}, err
			}
			for start := 0; start < len(keys.rows); start += 500 {
				batch := keys.rows[start:min(start+500, len(keys.rows))]
				args := append([]any(nil), w.vals...)
				var in []string
				for _, row := range batch {
					var parts []string
					for _, v := range row {
						args = append(args, v)
						parts = append(parts, c.d.Placeholder(len(args)))
					}
					if len(parts) == 1 {
						in = append(in, parts[0])
					} else {
						in = append(in, "("+strings.Join(parts, ", ")+")")
					}
				}
				stmt := c.setSQL(m, w.cols) + " WHERE " + c.keyList(m) + " IN (" + strings.Join(in, ", ") + ")"
				if _, err := tx.ExecContext(ctx, stmt, args...); err != nil {
					return connector.Report{}, c.fail("restrict", m.t.Name, err)
				}
			}
			for _, row := range keys.rows {
				st.Keys = append(st.Keys, keys.key(row))
			}
			st.Count = int64(len(keys.rows))
		}
		r.Steps = append(r.Steps, st)
	}
	if err := tx.Commit(); err != nil {
		return connector.Report{}, c.fail("commit", "restrict", err)
	}
	return r, nil
}

// keys reads the key columns of m's rows matching cond, in key order.
func (c *Conn) keys(ctx context.Context, q querier, m *mapped, cond string, args []any) (*rowset, error) {
	if len(m.key) == 0 {
		return nil, fmt.Errorf("system %s: table %s has no primary key; declare key: [...]", c.sys.Name, m.t.Name)
	}
	quoted := make([]string, len(m.key))
	for i, k := range m.key {
		quoted[i] = c.q(k)
	}
	list := strings.Join(quoted, ", ")
	rows, err := q.QueryContext(ctx, "SELECT "+list+" FROM "+c.q(m.t.Name)+" WHERE "+cond+" ORDER BY "+list, args...)
	if err != nil {
		return nil, c.fail("read", m.t.Name, err)
	}
	rs := &rowset{m: m}
	if err := rs.scan(rows); err != nil {
		return nil, c.fail("read", m.t.Name, err)
	}
	for i := range m.key {
		rs.keyIx = append(rs.keyIx, i)
	}
	return rs, nil
}

// setSQL is "UPDATE table SET col = ?, …", the values being the first
// parameters.
func (c *Conn) setSQL(m *mapped, cols []string) string {
	sets := make([]string, len(cols))
	for i, col := range cols {
		sets[i] = c.q(col) + " = " + c.d.Placeholder(i+1)
	}
	return "UPDATE " + c.q(m.t.Name) + " SET " + strings.Join(sets, ", ")
}

// intTypeRE matches the integer types of the three engines as their
// catalogues name them (SQLite's as declared).
var intTypeRE = regexp.MustCompile(`^(unsigned )?(tiny|small|medium|big)?int(eger)?[248]?(\(\d+\))?( unsigned)?$|^(small|big)?serial$`)

// restrictValue turns a restrict value of the map into one the column
// takes, so that the same YAML works on every engine: true into a boolean
// column, or 1 into an integer one (MySQL's BOOLEAN is a TINYINT). A value
// the column cannot hold is an error that names the column and the
// value's type, never the value. Types it does not know (enums, JSON …)
// get the value as written, for the database to check.
func restrictValue(ci ColumnInfo, a datamap.Assignment) (any, error) {
	cl := classOf(ci)
	switch v := a.Value.(type) {
	case nil:
		if !ci.Nullable {
			return nil, fmt.Errorf("restrict writes null into %s, which is NOT NULL", ci.Name)
		}
		return nil, nil
	case bool:
		switch cl {
		case classBool, classOther:
			return v, nil
		case classInt:
			if v {
				return int64(1), nil
			}
			return int64(0), nil
		}
	case int64:
		switch cl {
		case classBool:
			if v == 0 || v == 1 {
				return v == 1, nil
			}
		case classInt, classNumber, classOther:
			return v, nil
		}
	case float64:
		if cl == classNumber || cl == classOther {
			return v, nil
		}
	case string:
		switch cl {
		case classText:
			if n := utf8.RuneCountInString(v); ci.MaxLen > 0 && n > ci.MaxLen {
				return nil, fmt.Errorf("restrict writes a string of %d characters into %s, which holds at most %d", n, ci.Name, ci.MaxLen)
			}
			return v, nil
		case classTime:
			// Checked here: SQLite would store any text, and the
			// others would quote the value in their error.
			if _, ok := parseTime(v); ok {
				return v, nil
			}
			return nil, fmt.Errorf("restrict writes a string into %s, a column of type %s, that is not a date or a time; write %s", ci.Name, ci.Type, takes[cl])
		case classOther:
			return v, nil
		}
	}
	return nil, fmt.Errorf("restrict writes %s into %s, a column of type %s; write %s", a.Kind(), ci.Name, ci.Type, takes[cl])
}

// The kinds of column restrictValue tells apart.
type class int

const (
	classOther class = iota
	classBool
	classInt
	classNumber
	classText
	classTime
)

// takes says what a column of each class takes, for errors.
var takes = map[class]string{
	classOther:  "a value of its type",
	classBool:   "true or false",
	classInt:    "an integer, or true or false for 1 or 0",
	classNumber: "a number",
	classText:   "a string (quoted, if it would read as another type)",
	classTime:   "a date or a time, like 2006-01-02 or 2006-01-02 15:04:05",
}

func classOf(ci ColumnInfo) class {
	t := ci.Type
	switch {
	case t == "boolean" || t == "bool":
		return classBool
	case intTypeRE.MatchString(t):
		return classInt
	case ci.Text():
		return classText
	case strings.Contains(t, "date") || strings.Contains(t, "time"):
		return classTime
	}
	for _, s := range []string{"numeric", "decimal", "real", "double", "float"} {
		if strings.Contains(t, s) {
			return classNumber
		}
	}
	return classOther
}
