package relational

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/lethe-privacy/lethe/internal/connector"
	"github.com/lethe-privacy/lethe/internal/datamap"
)

// pseudonymLen is the length of connector.Pseudonym's values.
const pseudonymLen = 28

// colAct is what erasure writes into one column of a row that stays.
type colAct struct {
	col         string
	action      string // null, placeholder, pseudonymize
	placeholder string
}

// fate is what erasure does with one row.
type fate int

const (
	fateDelete   fate = iota // the row goes
	fateUpdate               // the row stays, its personal columns rewritten (erase: update)
	fateRetain               // the row stays under a retention rule, columns rewritten
	fateReferred             // the row should go, but a staying row references it
)

// tablePlan is erasure's decision for one table's rows of the subject.
type tablePlan struct {
	rs    *rowset
	fates []fate
	until []time.Time // for fateRetain: when the retention ends
	// referrers names, per fateReferred row, the tables whose staying
	// rows reference it.
	referrers map[int][]string
}

// erasePlan is the whole decision, and the steps that carry it out.
type erasePlan struct {
	tables []*tablePlan
	steps  []planStep
}

// planStep is a connector.Step and how to run it.
type planStep struct {
	connector.Step
	tp   *tablePlan
	rows []int    // indexes into tp.rs.rows
	acts []colAct // for updates
}

// PlanErase says what Erase would do, in a transaction it rolls back.
func (c *Conn) PlanErase(ctx context.Context, s connector.Subject) (connector.Report, error) {
	tx, err := c.db.BeginTx(ctx, nil)
	if err != nil {
		return connector.Report{}, c.fail("begin", "plan", err)
	}
	defer tx.Rollback()
	p, err := c.plan(ctx, tx, s)
	if err != nil {
		return connector.Report{}, err
	}
	return c.report(p, s), nil
}

// Erase carries out the plan in one transaction.
func (c *Conn) Erase(ctx context.Context, s connector.Subject) (connector.Report, error) {
	tx, err := c.db.BeginTx(ctx, nil)
	if err != nil {
		return connector.Report{}, c.fail("begin", "erase", err)
	}
	defer tx.Rollback()
	p, err := c.plan(ctx, tx, s)
	if err != nil {
		return connector.Report{}, err
	}
	for _, st := range p.steps {
		if err := c.run(ctx, tx, s, &st); err != nil {
			return connector.Report{}, err
		}
	}
	if err := tx.Commit(); err != nil {
		return connector.Report{}, c.fail("commit", "erase", err)
	}
	return c.report(p, s), nil
}

func (c *Conn) report(p *erasePlan, s connector.Subject) connector.Report {
	r := connector.Report{System: c.sys.Name, At: s.Now}
	for _, st := range p.steps {
		r.Steps = append(r.Steps, st.Step)
	}
	return r
}

// plan reads the subject's rows and decides each one's fate.
func (c *Conn) plan(ctx context.Context, q querier, s connector.Subject) (*erasePlan, error) {
	if s.Now.IsZero() {
		s.Now = time.Now()
	}
	sets, err := c.collect(ctx, q, s)
	if err != nil {
		return nil, err
	}
	p := &erasePlan{}
	byTable := map[string]*tablePlan{}
	for _, rs := range sets {
		tp := &tablePlan{rs: rs, fates: make([]fate, len(rs.rows)), until: make([]time.Time, len(rs.rows)), referrers: map[int][]string{}}
		p.tables = append(p.tables, tp)
		byTable[rs.m.t.Name] = tp
		t := rs.m.t
		for i, row := range rs.rows {
			switch t.Erase {
			case connector.ActionDelete:
				tp.fates[i] = fateDelete
			case datamap.EraseUpdate:
				tp.fates[i] = fateUpdate
			case connector.ActionRetain:
				ix := rs.col(t.Retain.Column)
				start, ok := asTime(row[ix])
				if !ok {
					// No date to count from: keep, and say so.
					tp.fates[i] = fateRetain
					continue
				}
				until := t.Retain.Period.After(start)
				if s.Now.Before(until) {
					tp.fates[i], tp.until[i] = fateRetain, until
				} else {
					tp.fates[i] = fateDelete
				}
			}
		}
	}
	if err := c.resolveReferences(ctx, q, p, byTable); err != nil {
		return nil, err
	}
	return p, c.steps(p, s)
}

// resolveReferences keeps every row that should go but that a staying row
// references through a foreign key of the live schema, until nothing
// changes (keeping a row can block its own parent).
func (c *Conn) resolveReferences(ctx context.Context, q querier, p *erasePlan, byTable map[string]*tablePlan) error {
	for range len(c.schema.FKs) + 1 {
		changed := false
		for _, fk := range c.schema.FKs {
			parent := byTable[fk.Parent]
			if parent == nil || fk.Child == fk.Parent {
				continue
			}
			going := map[string][]int{} // referenced values → parent rows
			refIx := make([]int, len(fk.References))
			for i, r := range fk.References {
				if refIx[i] = parent.rs.col(r); refIx[i] < 0 {
					return fmt.Errorf("system %s: foreign key %s → %s names column %s, which the rows read lack", c.sys.Name, fk.Child, fk.Parent, r)
				}
			}
			for i, f := range parent.fates {
				if f == fateDelete {
					k := tupleKey(parent.rs.rows[i], refIx)
					going[k] = append(going[k], i)
				}
			}
			if len(going) == 0 {
				continue
			}
			blocked, err := c.blockers(ctx, q, fk, parent, refIx, going, byTable[fk.Child])
			if err != nil {
				return err
			}
			for _, k := range blocked {
				for _, i := range going[k] {
					parent.fates[i] = fateReferred
					if !slices.Contains(parent.referrers[i], fk.Child) {
						parent.referrers[i] = append(parent.referrers[i], fk.Child)
					}
					changed = true
				}
			}
		}
		if !changed {
			return nil
		}
	}
	return fmt.Errorf("system %s: deciding which rows stay did not settle", c.sys.Name)
}

func tupleKey(row []any, ix []int) string {
	parts := make([]string, len(ix))
	for i, x := range ix {
		parts[i] = valueString(row[x])
	}
	return strings.Join(parts, "\x00")
}

// blockers returns the referenced values (tupleKey form) of parent rows
// that a row of the child table references and that stays: the child
// table is not mapped, or maps the row as staying without nulling the
// reference.
func (c *Conn) blockers(ctx context.Context, q querier, fk ForeignKey, parent *tablePlan, refIx []int, going map[string][]int, child *tablePlan) ([]string, error) {
	childInfo := c.schema.Tables[fk.Child]
	if childInfo == nil {
		return nil, fmt.Errorf("system %s: foreign key from %s, which the schema lacks", c.sys.Name, fk.Child)
	}
	// Child rows that go, or stay with the reference nulled, by key.
	harmless := map[string]bool{}
	if child != nil {
		nulls := len(fk.Columns) == 1 && nulledColumn(child.rs.m.t, fk.Columns[0])
		for i, f := range child.fates {
			if f == fateDelete || nulls {
				harmless[child.rs.key(child.rs.rows[i])] = true
			}
		}
	}
	keyCols := childInfo.Key
	if child != nil {
		keyCols = child.rs.m.key
	}
	sel := append(append([]string(nil), keyCols...), fk.Columns...)
	quoted := make([]string, len(sel))
	for i, s := range sel {
		quoted[i] = c.q(s)
	}
	values := sortedKeys(going)
	var blocked []string
	seen := map[string]bool{}
	for start := 0; start < len(values); start += 500 {
		batch := values[start:min(start+500, len(values))]
		var args []any
		var conds []string
		for _, k := range batch {
			row := parent.rs.rows[going[k][0]]
			var parts []string
			for i, col := range fk.Columns {
				args = append(args, row[refIx[i]])
				parts = append(parts, c.q(col)+" = "+c.d.Placeholder(len(args)))
			}
			conds = append(conds, "("+strings.Join(parts, " AND ")+")")
		}
		rows, err := q.QueryContext(ctx, "SELECT "+strings.Join(quoted, ", ")+" FROM "+c.q(fk.Child)+" WHERE "+strings.Join(conds, " OR "), args...)
		if err != nil {
			return nil, c.fail("read references of", fk.Child, err)
		}
		rs := &rowset{}
		if err := rs.scan(rows); err != nil {
			return nil, c.fail("read references of", fk.Child, err)
		}
		nk := len(keyCols)
		for _, row := range rs.rows {
			if child != nil && nk > 0 {
				parts := make([]string, nk)
				for i := range nk {
					parts[i] = valueString(row[i])
				}
				if harmless[strings.Join(parts, ",")] {
					continue
				}
			}
			ix := make([]int, len(fk.Columns))
			for i := range ix {
				ix[i] = nk + i
			}
			k := tupleKey(row, ix)
			if !seen[k] {
				seen[k] = true
				blocked = append(blocked, k)
			}
		}
	}
	return blocked, nil
}

// nulledColumn reports whether erasure sets the table's column to NULL.
func nulledColumn(t *datamap.Table, col string) bool {
	for _, c := range t.Columns {
		if strings.EqualFold(c.Name, col) {
			return c.Erase == connector.ActionNull
		}
	}
	return false
}

// actions returns the column actions for a staying row of m: the map's
// own, then, for a row the map meant to delete, a default for every
// personal column the map gives no action (a pseudonym for text, NULL
// where allowed), and always one that cuts a direct link to the subject.
func (c *Conn) actions(m *mapped, referred bool) ([]colAct, error) {
	var acts []colAct
	has := map[string]bool{}
	for _, col := range m.t.Columns {
		switch col.Erase {
		case connector.ActionNull, connector.ActionPlaceholder, connector.ActionPseudonymize:
			acts = append(acts, colAct{col: col.Name, action: col.Erase, placeholder: col.Placeholder})
			has[strings.ToLower(col.Name)] = true
		case connector.ActionKeep:
			has[strings.ToLower(col.Name)] = true
		}
	}
	fallback := func(name, why string) error {
		ci, ok := m.info.Column(name)
		switch {
		case !ok:
			return fmt.Errorf("system %s: table %s has no column %s", c.sys.Name, m.t.Name, name)
		case ci.Text() && (ci.MaxLen == 0 || ci.MaxLen >= pseudonymLen):
			acts = append(acts, colAct{col: name, action: connector.ActionPseudonymize})
		case ci.Nullable:
			acts = append(acts, colAct{col: name, action: connector.ActionNull})
		default:
			return fmt.Errorf("system %s: table %s: column %s %s, and is neither text (for a pseudonym) nor nullable; give it an erase action", c.sys.Name, m.t.Name, name, why)
		}
		has[strings.ToLower(name)] = true
		return nil
	}
	if referred {
		for _, col := range m.t.Columns {
			if col.Category != "" && !has[strings.ToLower(col.Name)] {
				if err := fallback(col.Name, "must be erased in a row that stays"); err != nil {
					return nil, err
				}
			}
		}
	}
	if l := m.t.Subject; l != nil && !has[strings.ToLower(l.Column)] {
		if err := fallback(l.Column, "links the row to the subject and must be cut"); err != nil {
			return nil, err
		}
	}
	return acts, nil
}

// steps turns the fates into statements: updates of staying rows, in the
// map's order, then deletions, children before parents.
func (c *Conn) steps(p *erasePlan, s connector.Subject) error {
	for _, tp := range p.tables {
		m := tp.rs.m
		groups := map[fate][]int{}
		for i, f := range tp.fates {
			if f != fateDelete {
				groups[f] = append(groups[f], i)
			}
		}
		for _, f := range []fate{fateUpdate, fateRetain, fateReferred} {
			rows := groups[f]
			if len(rows) == 0 {
				continue
			}
			acts, err := c.actions(m, f == fateReferred)
			if err != nil {
				return err
			}
			st := planStep{tp: tp, rows: rows, acts: acts}
			st.Location, st.Action = m.t.Name, datamap.EraseUpdate
			if f == fateRetain {
				st.Action = connector.ActionRetain
				st.Note = retainNote(m.t.Retain, tp, rows)
			}
			if f == fateReferred {
				var refs []string
				for _, i := range rows {
					for _, r := range tp.referrers[i] {
						if !slices.Contains(refs, r) {
							refs = append(refs, r)
						}
					}
				}
				slices.Sort(refs)
				st.Note = "kept, unlinked from the subject: staying rows of " + strings.Join(refs, ", ") + " reference it"
			}
			if len(acts) == 0 {
				st.Statement = "(no column to rewrite)"
			} else {
				st.Statement = c.updateSQL(m, acts)
			}
			for _, a := range acts {
				st.Columns = append(st.Columns, a.col+"="+a.action)
			}
			for _, i := range rows {
				st.Keys = append(st.Keys, tp.rs.key(tp.rs.rows[i]))
			}
			st.Count = int64(len(rows))
			if st.Keys == nil || len(m.key) == 0 {
				return fmt.Errorf("system %s: table %s has no primary key; declare key: [...]", c.sys.Name, m.t.Name)
			}
			p.steps = append(p.steps, st)
		}
	}
	// A reference among deleted rows whose column erasure sets to NULL is
	// cut first, so it does not constrain the order (and a cycle of
	// foreign keys can be broken this way).
	cut := map[int]bool{}
	for i, fk := range c.schema.FKs {
		child := byName(p, fk.Child)
		if child == nil || byName(p, fk.Parent) == nil || fk.Child == fk.Parent || len(fk.Columns) != 1 || !nulledColumn(child.rs.m.t, fk.Columns[0]) {
			continue
		}
		if ci, ok := child.rs.m.info.Column(fk.Columns[0]); !ok || !ci.Nullable {
			continue
		}
		var rows []int
		for r, f := range child.fates {
			if f == fateDelete && child.rs.rows[r][child.rs.col(fk.Columns[0])] != nil {
				rows = append(rows, r)
			}
		}
		cut[i] = true
		if len(rows) == 0 {
			continue
		}
		acts := []colAct{{col: fk.Columns[0], action: connector.ActionNull}}
		st := planStep{tp: child, rows: rows, acts: acts}
		st.Location, st.Action, st.Columns = fk.Child, datamap.EraseUpdate, []string{fk.Columns[0] + "=" + connector.ActionNull}
		st.Statement = c.updateSQL(child.rs.m, acts)
		st.Note = "reference to " + fk.Parent + " cut before the deletions"
		for _, r := range rows {
			st.Keys = append(st.Keys, child.rs.key(child.rs.rows[r]))
		}
		st.Count = int64(len(rows))
		p.steps = append(p.steps, st)
	}
	order, err := c.deleteOrder(p, cut)
	if err != nil {
		return err
	}
	for _, tp := range order {
		var rows []int
		for i, f := range tp.fates {
			if f == fateDelete {
				rows = append(rows, i)
			}
		}
		st := planStep{tp: tp, rows: rows}
		st.Location, st.Action = tp.rs.m.t.Name, connector.ActionDelete
		st.Statement = "DELETE FROM " + c.q(tp.rs.m.t.Name) + " WHERE " + c.keyList(tp.rs.m) + " IN (…)"
		if tp.rs.m.t.Erase == connector.ActionRetain {
			st.Note = "retention period over"
		}
		for _, i := range rows {
			st.Keys = append(st.Keys, tp.rs.key(tp.rs.rows[i]))
		}
		st.Count = int64(len(rows))
		p.steps = append(p.steps, st)
	}
	return nil
}

func retainNote(r *datamap.Retention, tp *tablePlan, rows []int) string {
	var first, last time.Time
	undated := 0
	for _, i := range rows {
		u := tp.until[i]
		if u.IsZero() {
			undated++
			continue
		}
		if first.IsZero() || u.Before(first) {
			first = u
		}
		if u.After(last) {
			last = u
		}
	}
	note := fmt.Sprintf("retained under %s (%s)", r.Basis, r.Reason)
	switch {
	case first.IsZero():
	case first.Equal(last):
		note += " until " + first.UTC().Format(time.DateOnly)
	default:
		note += " until " + first.UTC().Format(time.DateOnly) + " to " + last.UTC().Format(time.DateOnly)
	}
	if undated > 0 {
		note += fmt.Sprintf("; %d without a %s to count from, kept", undated, r.Column)
	}
	return note
}

func (c *Conn) keyList(m *mapped) string {
	if len(m.key) == 1 {
		return c.q(m.key[0])
	}
	q := make([]string, len(m.key))
	for i, k := range m.key {
		q[i] = c.q(k)
	}
	return "(" + strings.Join(q, ", ") + ")"
}

// updateSQL is the statement that rewrites one staying row, with
// placeholders for every value.
func (c *Conn) updateSQL(m *mapped, acts []colAct) string {
	var sets []string
	n := 0
	for _, a := range acts {
		if a.action == connector.ActionNull {
			sets = append(sets, c.q(a.col)+" = NULL")
			continue
		}
		n++
		sets = append(sets, c.q(a.col)+" = "+c.d.Placeholder(n))
	}
	var conds []string
	for _, k := range m.key {
		n++
		conds = append(conds, c.q(k)+" = "+c.d.Placeholder(n))
	}
	return "UPDATE " + c.q(m.t.Name) + " SET " + strings.Join(sets, ", ") + " WHERE " + strings.Join(conds, " AND ")
}

// byName returns the plan of the named table, if it loses rows.
func byName(p *erasePlan, name string) *tablePlan {
	for _, tp := range p.tables {
		if tp.rs.m.t.Name == name && slices.Contains(tp.fates, fateDelete) {
			return tp
		}
	}
	return nil
}

// deleteOrder orders the tables that lose rows so that every table comes
// before the tables it references (children before parents).
func (c *Conn) deleteOrder(p *erasePlan, cut map[int]bool) ([]*tablePlan, error) {
	var losing []*tablePlan
	in := map[string]*tablePlan{}
	for _, tp := range p.tables {
		if slices.Contains(tp.fates, fateDelete) {
			losing = append(losing, tp)
			in[tp.rs.m.t.Name] = tp
		}
	}
	// children[parent] = tables referencing it, among the losing ones.
	children := map[string][]string{}
	for i, fk := range c.schema.FKs {
		if !cut[i] && fk.Child != fk.Parent && in[fk.Child] != nil && in[fk.Parent] != nil && !slices.Contains(children[fk.Parent], fk.Child) {
			children[fk.Parent] = append(children[fk.Parent], fk.Child)
		}
	}
	var order []*tablePlan
	done := map[string]bool{}
	for len(order) < len(losing) {
		progress := false
		for _, tp := range losing {
			name := tp.rs.m.t.Name
			if done[name] {
				continue
			}
			ready := true
			for _, ch := range children[name] {
				if !done[ch] {
					ready = false
					break
				}
			}
			if ready {
				done[name] = true
				order = append(order, tp)
				progress = true
			}
		}
		if !progress {
			var left []string
			for _, tp := range losing {
				if !done[tp.rs.m.t.Name] {
					left = append(left, tp.rs.m.t.Name)
				}
			}
			return nil, fmt.Errorf("system %s: foreign keys form a cycle among %s; no deletion order exists (make one reference nullable and give it erase: null)", c.sys.Name, strings.Join(left, ", "))
		}
	}
	return order, nil
}

// run executes one step.
func (c *Conn) run(ctx context.Context, q querier, s connector.Subject, st *planStep) error {
	m := st.tp.rs.m
	rs := st.tp.rs
	if st.Action == connector.ActionDelete {
		for start := 0; start < len(st.rows); start += 500 {
			batch := st.rows[start:min(start+500, len(st.rows))]
			var args []any
			var conds []string
			for _, i := range batch {
				var parts []string
				for _, ix := range rs.keyIx {
					args = append(args, rs.rows[i][ix])
					parts = append(parts, c.d.Placeholder(len(args)))
				}
				if len(parts) == 1 {
					conds = append(conds, parts[0])
				} else {
					conds = append(conds, "("+strings.Join(parts, ", ")+")")
				}
			}
			res, err := q.ExecContext(ctx, "DELETE FROM "+c.q(m.t.Name)+" WHERE "+c.keyList(m)+" IN ("+strings.Join(conds, ", ")+")", args...)
			if err != nil {
				return c.fail("delete from", m.t.Name, err)
			}
			if n, err := res.RowsAffected(); err == nil && n != int64(len(batch)) {
				return fmt.Errorf("system %s: delete from %s: %d rows deleted, %d planned; the rows changed under the erasure, which is rolled back", c.sys.Name, m.t.Name, n, len(batch))
			}
		}
		return nil
	}
	if len(st.acts) == 0 {
		return nil
	}
	stmt := st.Statement
	for _, i := range st.rows {
		row := rs.rows[i]
		var args []any
		for _, a := range st.acts {
			switch a.action {
			case connector.ActionPlaceholder:
				args = append(args, a.placeholder)
			case connector.ActionPseudonymize:
				ix := rs.col(a.col)
				if ix < 0 {
					return fmt.Errorf("system %s: table %s: column %s not in the rows read", c.sys.Name, m.t.Name, a.col)
				}
				if len(s.PseudonymKey) == 0 {
					return fmt.Errorf("system %s: table %s: pseudonymize needs the subject's pseudonym key", c.sys.Name, m.t.Name)
				}
				if row[ix] == nil {
					args = append(args, nil)
				} else {
					args = append(args, connector.Pseudonym(s.PseudonymKey, valueString(row[ix])))
				}
			}
		}
		for _, ix := range rs.keyIx {
			args = append(args, row[ix])
		}
		if _, err := q.ExecContext(ctx, stmt, args...); err != nil {
			return c.fail("update", m.t.Name, err)
		}
	}
	return nil
}
