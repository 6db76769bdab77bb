package relational

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/lethe-privacy/lethe/internal/connector"
)

// Rectify writes the corrected values into every mapped column of the
// given categories in the subject's rows, in one transaction.
func (c *Conn) Rectify(ctx context.Context, s connector.Subject, values map[string]string) (connector.Report, error) {
	tx, err := c.db.BeginTx(ctx, nil)
	if err != nil {
		return connector.Report{}, c.fail("begin", "rectify", err)
	}
	defer tx.Rollback()
	sets, err := c.collect(ctx, tx, s)
	if err != nil {
		return connector.Report{}, err
	}
	r := connector.Report{System: c.sys.Name, At: s.Now}
	for _, rs := range sets {
		m := rs.m
		var cols []string
		var args []any
		var sets []string
		for _, col := range m.t.Columns {
			v, ok := values[col.Category]
			if !ok || col.Category == "" {
				continue
			}
			cols = append(cols, col.Name)
			args = append(args, v)
			sets = append(sets, c.q(col.Name)+" = "+c.d.Placeholder(len(args)))
		}
		if len(cols) == 0 {
			continue
		}
		n := len(args)
		var conds []string
		for _, k := range m.key {
			n++
			conds = append(conds, c.q(k)+" = "+c.d.Placeholder(n))
		}
		stmt := "UPDATE " + c.q(m.t.Name) + " SET " + strings.Join(sets, ", ") + " WHERE " + strings.Join(conds, " AND ")
		st := connector.Step{Location: m.t.Name, Action: connector.ActionRectify, Columns: cols, Statement: stmt}
		for _, row := range rs.rows {
			a := append([]any(nil), args...)
			for _, ix := range rs.keyIx {
				a = append(a, row[ix])
			}
			if _, err := tx.ExecContext(ctx, stmt, a...); err != nil {
				return connector.Report{}, c.fail("rectify", m.t.Name, err)
			}
			st.Keys = append(st.Keys, rs.key(row))
			st.Count++
		}
		r.Steps = append(r.Steps, st)
	}
	if err := tx.Commit(); err != nil {
		return connector.Report{}, c.fail("commit", "rectify", err)
	}
	return r, nil
}

// Check compares the map with the live schema: what the map names and
// the database lacks, actions the columns cannot take, and columns and
// tables that look personal but that the map does not mention.
func (c *Conn) Check(ctx context.Context) ([]connector.Drift, error) {
	s, err := c.d.Schema(ctx, c.db)
	if err != nil {
		return nil, fmt.Errorf("system %s: %w", c.sys.Name, err)
	}
	fresh := *c
	fresh.schema = s
	fresh.tables = make([]*mapped, len(c.tables))
	for i, m := range c.tables {
		cp := *m
		cp.info = s.Tables[m.t.Name]
		if len(m.t.Key) == 0 && cp.info != nil {
			cp.key = cp.info.Key
		}
		fresh.tables[i] = &cp
	}
	return fresh.drift(true), nil
}

// drift lists the differences; unmapped adds the personal-looking
// columns and referencing tables the map does not mention.
func (c *Conn) drift(unmapped bool) []connector.Drift {
	var out []connector.Drift
	add := func(problem, table, col, hint string) {
		out = append(out, connector.Drift{Location: table, Column: col, Problem: problem, Hint: hint})
	}
	mentioned := map[string]map[string]bool{}
	for _, m := range c.tables {
		t := m.t
		names := map[string]bool{}
		mentioned[t.Name] = names
		if m.info == nil {
			add(connector.DriftMissing, t.Name, "", "the map names table "+t.Name+", which the database lacks")
			continue
		}
		need := func(col, what string) {
			names[strings.ToLower(col)] = true
			if _, ok := m.info.Column(col); !ok {
				add(connector.DriftMissing, t.Name, col, "the map names column "+col+" ("+what+"), which the table lacks")
			}
		}
		if len(m.key) == 0 {
			add(connector.DriftMismatch, t.Name, "", "table "+t.Name+" has no primary key; declare key: [...] in the map")
		}
		for _, k := range t.Key {
			need(k, "key")
		}
		if t.Subject != nil {
			need(t.Subject.Column, "subject link")
		}
		if t.Via != nil {
			need(t.Via.Column, "via")
			if p := c.schema.Tables[t.Via.Parent]; p != nil {
				if _, ok := p.Column(t.Via.References); !ok {
					add(connector.DriftMissing, t.Via.Parent, t.Via.References, "the map names column "+t.Via.References+" (via.references of "+t.Name+"), which the table lacks")
				}
			}
		}
		if t.Retain != nil {
			need(t.Retain.Column, "retain")
		}
		for _, col := range t.Columns {
			need(col.Name, "mapped column")
			ci, ok := m.info.Column(col.Name)
			if !ok {
				continue
			}
			switch {
			case col.Erase == connector.ActionPseudonymize && !ci.Text():
				add(connector.DriftMismatch, t.Name, col.Name, fmt.Sprintf("pseudonymize needs a text column; %s is %s (use null or placeholder)", col.Name, ci.Type))
			case col.Erase == connector.ActionPseudonymize && ci.MaxLen > 0 && ci.MaxLen < pseudonymLen:
				add(connector.DriftMismatch, t.Name, col.Name, fmt.Sprintf("a pseudonym is %d characters; %s holds at most %d", pseudonymLen, col.Name, ci.MaxLen))
			case col.Erase == connector.ActionNull && !ci.Nullable:
				add(connector.DriftMismatch, t.Name, col.Name, col.Name+" is NOT NULL, so erase: null cannot work (use placeholder or pseudonymize)")
			}
		}
		for _, r := range t.Restrict {
			for _, a := range r.Set {
				need(a.Column, "restrict")
				ci, ok := m.info.Column(a.Column)
				switch {
				case !ok:
				case slices.ContainsFunc(m.key, func(k string) bool { return strings.EqualFold(k, a.Column) }):
					add(connector.DriftMismatch, t.Name, a.Column, "restrict sets "+a.Column+", a key column; restrict marks rows, it does not move them")
				default:
					if _, err := restrictValue(ci, a); err != nil {
						add(connector.DriftMismatch, t.Name, a.Column, err.Error())
					}
				}
			}
		}
		if t.Subject != nil && t.Erase != connector.ActionDelete && m.info != nil {
			if _, err := c.actions(m, false); err != nil {
				add(connector.DriftMismatch, t.Name, t.Subject.Column, "rows that stay must be unlinked from the subject: give "+t.Subject.Column+" an erase action")
			}
		}
	}
	if !unmapped {
		return out
	}
	for _, name := range sortedKeys(c.schema.Tables) {
		info := c.schema.Tables[name]
		names, isMapped := mentioned[name]
		for _, col := range info.Columns {
			if LooksPersonal(col.Name) && (!isMapped || !names[strings.ToLower(col.Name)]) {
				hint := "looks personal; map it with a category and an erase action"
				if !isMapped {
					hint = "looks personal, in a table the map does not mention"
				}
				add(connector.DriftUnmapped, name, col.Name, hint)
			}
		}
		if isMapped {
			continue
		}
		var refs []string
		for _, fk := range c.schema.FKs {
			if fk.Child == name && mentioned[fk.Parent] != nil && !slices.Contains(refs, fk.Parent) {
				refs = append(refs, fk.Parent)
			}
		}
		if len(refs) > 0 {
			add(connector.DriftUnmapped, name, "", "references "+strings.Join(refs, ", ")+" of the map; their rows it references cannot be deleted, so they stay pseudonymised (map it with via to erase it too)")
		}
	}
	slices.SortStableFunc(out, func(a, b connector.Drift) int {
		return strings.Compare(a.Location+"\x00"+a.Column, b.Location+"\x00"+b.Column)
	})
	return out
}
