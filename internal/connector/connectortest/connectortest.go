// Package connectortest is the one contract suite every connector runs
// against its real system: for a seeded subject, find, export, plan,
// erase, find again, erase again, with the whole system dumped before and
// after so that nothing but the subject's data changes.
package connectortest

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/lethe-privacy/lethe/internal/connector"
)

// Env is one connector over a system seeded with several subjects.
type Env struct {
	Conn connector.Connector
	// Subject is the one the suite erases; Others are left alone.
	Subject connector.Subject
	Others  []connector.Subject
	// Values returns a subject's seeded personal values (each distinct
	// to that subject), to search exports and dumps for.
	Values func(connector.Subject) []string
	// Dump returns the whole system: item (a table's row by key, a Redis
	// key, a file) → its content as text.
	Dump func(t *testing.T) map[string]string
	// Item names the dump item of a step's key (a table's row), or ""
	// where the step's location has no row keys.
	Item func(location, key string) string
	// Exportless are values the system holds but does not export (copies
	// such as thumbnails); none by default.
	Exportless []string
}

// Sink collects what Export writes, as text per location.
type Sink struct {
	mu      sync.Mutex
	Records map[string][]string
	Files   map[string][]byte
}

// Record implements connector.Sink.
func (s *Sink) Record(location string, columns []string, values []any) error {
	if len(columns) != len(values) {
		return fmt.Errorf("record of %s: %d columns, %d values", location, len(columns), len(values))
	}
	var b strings.Builder
	for i, c := range columns {
		fmt.Fprintf(&b, "%s=%v;", c, values[i])
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.Records == nil {
		s.Records = map[string][]string{}
	}
	s.Records[location] = append(s.Records[location], b.String())
	return nil
}

// File implements connector.Sink.
func (s *Sink) File(location, name string, data []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.Files == nil {
		s.Files = map[string][]byte{}
	}
	s.Files[location+"/"+name] = data
	return nil
}

// Text is everything the sink holds, as one string.
func (s *Sink) Text() string {
	var b strings.Builder
	for _, recs := range s.Records {
		for _, r := range recs {
			b.WriteString(r)
			b.WriteByte('\n')
		}
	}
	for _, f := range s.Files {
		b.Write(f)
		b.WriteByte('\n')
	}
	return b.String()
}

// Run runs the contract suite. Failures name subjects by ID and items by
// their keys, never by the personal values found in them.
func Run(t *testing.T, e Env) {
	ctx := context.Background()
	mine := e.Values(e.Subject)
	if len(mine) == 0 {
		t.Fatal("the subject has no seeded values")
	}
	holds := func(text string, values []string) bool {
		for _, v := range values {
			if strings.Contains(text, v) {
				return true
			}
		}
		return false
	}

	found, err := e.Conn.Find(ctx, e.Subject)
	if err != nil {
		t.Fatalf("find: %v", err)
	}
	if total(found) == 0 {
		t.Fatalf("find: got nothing for %s, want the seeded data", e.Subject.ID)
	}

	if ex, ok := e.Conn.(connector.Exporter); ok {
		var sink Sink
		counts, err := ex.Export(ctx, e.Subject, &sink)
		if err != nil {
			t.Fatalf("export: %v", err)
		}
		if total(counts) == 0 {
			t.Errorf("export: counted nothing for %s", e.Subject.ID)
		}
		text := sink.Text()
		for i, v := range mine {
			if !strings.Contains(text, v) && !slices.Contains(e.Exportless, v) {
				t.Errorf("export of %s lacks its seeded value #%d", e.Subject.ID, i)
			}
		}
		for _, o := range e.Others {
			for i, v := range e.Values(o) {
				if strings.Contains(text, v) {
					t.Errorf("export of %s holds value #%d of %s", e.Subject.ID, i, o.ID)
				}
			}
		}
	}

	er, ok := e.Conn.(connector.Eraser)
	if !ok {
		return
	}
	before := e.Dump(t)
	plan, err := er.PlanErase(ctx, e.Subject)
	if err != nil {
		t.Fatalf("plan: %v", err)
	}
	if d := Diff(before, e.Dump(t)); len(d) > 0 {
		t.Fatalf("the plan changed the system: %v", d)
	}
	report, err := er.Erase(ctx, e.Subject)
	if err != nil {
		t.Fatalf("erase: %v", err)
	}
	if !sameSteps(plan.Steps, report.Steps) {
		t.Errorf("erase did other than planned:\nplan:  %+v\nerase: %+v", plan.Steps, report.Steps)
	}
	if report.Total() == 0 {
		t.Errorf("erase reported nothing done")
	}
	after := e.Dump(t)

	// What changed is the subject's: items that held its values, or that
	// the plan names by key.
	planned := map[string]bool{}
	if e.Item != nil {
		for _, st := range plan.Steps {
			for _, k := range st.Keys {
				planned[e.Item(st.Location, k)] = true
			}
		}
	}
	for _, item := range Diff(before, after) {
		if _, born := before[item]; !born {
			t.Errorf("erase created %s", item)
			continue
		}
		if !planned[item] && !holds(before[item], mine) {
			t.Errorf("erase changed %s, which held nothing of %s and was not in the plan", item, e.Subject.ID)
		}
	}
	for item, text := range after {
		if holds(text, mine) {
			t.Errorf("after erasure %s still holds a value of %s", item, e.Subject.ID)
		}
	}
	for _, o := range e.Others {
		theirs := e.Values(o)
		for item, text := range before {
			if holds(text, theirs) && !holds(text, mine) && after[item] != text {
				t.Errorf("erase changed %s of %s", item, o.ID)
			}
		}
	}

	found, err = e.Conn.Find(ctx, e.Subject)
	if err != nil {
		t.Fatalf("find after erasure: %v", err)
	}
	if n := total(found); n != 0 {
		t.Errorf("find after erasure: got %d items (%+v), want 0", n, found)
	}
	again, err := er.Erase(ctx, e.Subject)
	if err != nil {
		t.Fatalf("second erase: %v", err)
	}
	if n := again.Total(); n != 0 {
		t.Errorf("second erase: got %d items done (%+v), want 0", n, again.Steps)
	}
}

func total(cs []connector.Count) int64 {
	var n int64
	for _, c := range cs {
		n += c.Count
	}
	return n
}

// Diff lists the items that differ between two dumps, sorted.
func Diff(a, b map[string]string) []string {
	var out []string
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			out = append(out, k)
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

// sameSteps compares steps without their notes' wording.
func sameSteps(a, b []connector.Step) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		x, y := a[i], b[i]
		if x.Location != y.Location || x.Action != y.Action || x.Count != y.Count || x.Statement != y.Statement || !slices.Equal(x.Keys, y.Keys) || !slices.Equal(x.Columns, y.Columns) {
			return false
		}
	}
	return true
}
