package relational_test

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/lethe-privacy/lethe/examples/shop"
	"github.com/lethe-privacy/lethe/internal/connector"
	"github.com/lethe-privacy/lethe/internal/connector/connectortest"
	"github.com/lethe-privacy/lethe/internal/connector/relational"
	"github.com/lethe-privacy/lethe/internal/datamap"
)

// reopen opens the shop that seeded made, on the same database, with its
// system changed by edit.
func reopen(t *testing.T, e engine, edit func(*datamap.System)) (*relational.Conn, error) {
	t.Helper()
	m, err := datamap.Load(filepath.Join("..", "..", "..", "examples", "shop", "lethe.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	sys, _ := m.System("shop")
	sys.Kind = e.name
	sys.Connection = datamap.SecretRef{Env: "LETHE_TEST_SHOP_REF"} // set by seeded
	edit(sys)
	conn, err := e.open(context.Background(), sys)
	if err == nil {
		t.Cleanup(func() { conn.Close() })
	}
	return conn, err
}

func ph(e engine, i int) string {
	if e.name == "postgres" {
		return fmt.Sprintf("$%d", i)
	}
	return "?"
}

// steps is a report as "location:action:key,key" per step.
func steps(r connector.Report) []string {
	var out []string
	for _, st := range r.Steps {
		out = append(out, st.Location+":"+st.Action+":"+strings.Join(st.Keys, ","))
	}
	return out
}

// items names the dump items of a report's keys.
func items(r connector.Report) []string {
	var out []string
	for _, st := range r.Steps {
		for _, k := range st.Keys {
			out = append(out, st.Location+"/"+k)
		}
	}
	slices.Sort(out)
	return out
}

// noValues fails if the report holds a personal value of the customer.
func noValues(t *testing.T, r connector.Report, c shop.Customer) {
	t.Helper()
	b, _ := json.Marshal(r)
	for i, v := range c.PersonalValues() {
		if strings.Contains(string(b), v) {
			t.Errorf("the report holds personal value #%d of customer %d", i, c.ID)
		}
	}
}

// TestRestrict carries out the sample map's restrict entries on every
// engine: a restriction sets the customer's flag and suppresses their
// newsletter subscription, an objection to the newsletter only the
// latter, an objection to another purpose nothing; each only for the
// subject, and again without further change.
func TestRestrict(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			conn, db, cs := seeded(t, e, 8)
			ctx := context.Background()
			newsletterID := func(email string) string {
				t.Helper()
				var id int64
				if err := db.QueryRowContext(ctx, "SELECT id FROM newsletter WHERE email = "+ph(e, 1), email).Scan(&id); err != nil {
					t.Fatalf("newsletter row: %v", err)
				}
				return fmt.Sprint(id)
			}
			flag := func(query string, id string) bool {
				t.Helper()
				var b bool
				if err := db.QueryRowContext(ctx, query+" = "+ph(e, 1), id).Scan(&b); err != nil {
					t.Fatalf("read flag: %v", err)
				}
				return b
			}
			restricted := func(id int64) bool {
				return flag("SELECT processing_restricted FROM customers WHERE id", fmt.Sprint(id))
			}
			suppressed := func(id string) bool { return flag("SELECT suppressed FROM newsletter WHERE id", id) }

			// A restriction: the customer's flag, and their subscription.
			sub := cs[2]
			if !sub.Newsletter {
				t.Fatalf("customer %d: want a subscriber", sub.ID)
			}
			nl := newsletterID(sub.Email)
			before := dump(t, conn)
			r, err := conn.Restrict(ctx, subjectOf(sub, nil), "")
			if err != nil {
				t.Fatal(err)
			}
			want := []string{fmt.Sprintf("customers:restrict:%d", sub.ID), "newsletter:restrict:" + nl}
			if got := steps(r); !slices.Equal(got, want) || r.System != "shop" || r.Total() != 2 {
				t.Fatalf("restriction: got %v, want %v", got, want)
			}
			if c := r.Steps[0].Columns; !slices.Equal(c, []string{"processing_restricted"}) || !strings.Contains(r.Steps[0].Note, "Art. 18") {
				t.Errorf("restriction: got columns %v, note %q", c, r.Steps[0].Note)
			}
			noValues(t, r, sub)
			after := dump(t, conn)
			if got, want := connectortest.Diff(before, after), items(r); !slices.Equal(got, want) {
				t.Errorf("restriction changed %v, want %v", got, want)
			}
			if !restricted(sub.ID) || !suppressed(nl) || restricted(cs[1].ID) {
				t.Errorf("restriction: got customer %d restricted %v, subscription suppressed %v, customer %d restricted %v; want true, true, false",
					sub.ID, restricted(sub.ID), suppressed(nl), cs[1].ID, restricted(cs[1].ID))
			}

			// Again: the same rows reported, nothing more changed.
			again, err := conn.Restrict(ctx, subjectOf(sub, nil), "")
			if err != nil {
				t.Fatal(err)
			}
			if got := steps(again); !slices.Equal(got, want) {
				t.Errorf("second restriction: got %v, want %v", got, want)
			}
			if d := connectortest.Diff(after, dump(t, conn)); len(d) != 0 {
				t.Errorf("second restriction changed %v", d)
			}

			// An objection to the newsletter: only the subscription.
			obj := cs[4]
			nl4 := newsletterID(obj.Email)
			before = dump(t, conn)
			r, err = conn.Restrict(ctx, subjectOf(obj, nil), "newsletter")
			if err != nil {
				t.Fatal(err)
			}
			if got, want := steps(r), []string{"newsletter:object:" + nl4}; !slices.Equal(got, want) || !strings.Contains(r.Steps[0].Note, "newsletter") {
				t.Errorf("objection: got %v, want %v", got, want)
			}
			if got, want := connectortest.Diff(before, dump(t, conn)), items(r); !slices.Equal(got, want) {
				t.Errorf("objection changed %v, want %v", got, want)
			}
			if !suppressed(nl4) || restricted(obj.ID) {
				t.Errorf("objection: got subscription suppressed %v, customer restricted %v; want true, false", suppressed(nl4), restricted(obj.ID))
			}

			// An objection to a purpose no entry lists: nothing.
			before = dump(t, conn)
			for _, purpose := range []string{"orders", "analytics", "no_such_purpose"} {
				r, err = conn.Restrict(ctx, subjectOf(cs[6], nil), purpose)
				if err != nil || len(r.Steps) != 0 || r.System != "shop" {
					t.Errorf("objection to %s: got %v, %v, want an empty report", purpose, steps(r), err)
				}
			}
			if d := connectortest.Diff(before, dump(t, conn)); len(d) != 0 {
				t.Errorf("objections to other purposes changed %v", d)
			}

			// A customer without a subscription: the newsletter step finds
			// no row.
			r, err = conn.Restrict(ctx, subjectOf(cs[3], nil), "")
			if got, want := steps(r), []string{fmt.Sprintf("customers:restrict:%d", cs[3].ID), "newsletter:restrict:"}; err != nil || !slices.Equal(got, want) {
				t.Errorf("restriction of a non-subscriber: got %v, %v, want %v", got, err, want)
			}

			// A subscriber without an account, known by email only.
			var id int64
			var email string
			if err := db.QueryRowContext(ctx, "SELECT id, email FROM newsletter WHERE email LIKE 'reader.%' ORDER BY id").Scan(&id, &email); err != nil {
				t.Fatal(err)
			}
			r, err = conn.Restrict(ctx, connector.Subject{Identifiers: map[string]string{"email": email}}, "newsletter")
			if got, want := steps(r), []string{fmt.Sprintf("newsletter:object:%d", id)}; err != nil || !slices.Equal(got, want) {
				t.Errorf("objection by a reader: got %v, %v, want %v", got, err, want)
			}
		})
	}
}

// TestRestrictVia: restrict entries on tables reached through via, one
// of them an integer flag, mark exactly the subject's rows.
func TestRestrictVia(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			_, db, cs := seeded(t, e, 5)
			ctx := context.Background()
			for _, stmt := range []string{
				"ALTER TABLE orders ADD COLUMN on_hold BOOLEAN NOT NULL DEFAULT FALSE",
				"ALTER TABLE order_items ADD COLUMN held INTEGER NOT NULL DEFAULT 0",
			} {
				if _, err := db.ExecContext(ctx, stmt); err != nil {
					t.Fatal(err)
				}
			}
			conn, err := reopen(t, e, func(sys *datamap.System) {
				orders, _ := sys.Table("orders")
				orders.Restrict = []datamap.Restriction{{Set: datamap.Assignments{{Column: "on_hold", Value: true}}}}
				items, _ := sys.Table("order_items")
				items.Restrict = []datamap.Restriction{{Set: datamap.Assignments{{Column: "held", Value: true}}, Objection: []string{"orders"}}}
			})
			if err != nil {
				t.Fatal(err)
			}
			if d, err := conn.Check(ctx); err != nil || len(d) != 0 {
				t.Fatalf("check: got %v, %v, want no drift", d, err)
			}
			c := cs[1]
			var orderKeys, itemKeys []string
			for _, o := range c.Orders {
				orderKeys = append(orderKeys, fmt.Sprint(o.ID))
				for _, it := range o.Items {
					itemKeys = append(itemKeys, fmt.Sprint(it.ID))
				}
			}
			for _, tc := range []struct {
				objection string
				want      []string
			}{
				{"", []string{fmt.Sprintf("customers:restrict:%d", c.ID), "orders:restrict:" + strings.Join(orderKeys, ","), "newsletter:restrict:"}},
				{"orders", []string{"order_items:object:" + strings.Join(itemKeys, ",")}},
			} {
				before := dump(t, conn)
				r, err := conn.Restrict(ctx, subjectOf(c, nil), tc.objection)
				if err != nil {
					t.Fatal(err)
				}
				if got := steps(r); !slices.Equal(got, tc.want) {
					t.Errorf("objection %q: got %v, want %v", tc.objection, got, tc.want)
				}
				if got, want := connectortest.Diff(before, dump(t, conn)), items(r); !slices.Equal(got, want) {
					t.Errorf("objection %q changed %v, want %v", tc.objection, got, want)
				}
			}
			var held, onHold int
			db.QueryRowContext(ctx, "SELECT (SELECT COUNT(*) FROM order_items WHERE held = 1), (SELECT COUNT(*) FROM orders WHERE on_hold = "+map[bool]string{true: "TRUE", false: "1"}[e.name == "postgres"]+")").Scan(&held, &onHold)
			if held != len(itemKeys) || onHold != len(orderKeys) {
				t.Errorf("got %d items held and %d orders on hold, want %d and %d", held, onHold, len(itemKeys), len(orderKeys))
			}
		})
	}
}

// TestRestrictBadMap: a restrict column the database lacks, or a value its
// column cannot hold, is drift that check reports and that Restrict
// refuses, in words that name the column and never the value.
func TestRestrictBadMap(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			_, _, cs := seeded(t, e, 2)
			ctx := context.Background()
			for _, tc := range []struct {
				name   string
				set    datamap.Assignments
				drift  string
				errors []string
			}{
				{"unknown column", datamap.Assignments{{Column: "no_such_flag", Value: true}}, "missing customers.no_such_flag",
					[]string{"customers.no_such_flag", "restrict"}},
				{"string into a flag", datamap.Assignments{{Column: "processing_restricted", Value: "hunter2-yes"}}, "mismatch customers.processing_restricted",
					[]string{"customers.processing_restricted", "restrict writes a string into processing_restricted", "write"}},
				{"number into text", datamap.Assignments{{Column: "full_name", Value: int64(42)}}, "mismatch customers.full_name",
					[]string{"restrict writes an integer into full_name"}},
				{"null into NOT NULL", datamap.Assignments{{Column: "email", Value: nil}}, "mismatch customers.email",
					[]string{"restrict writes null into email, which is NOT NULL"}},
				{"the key", datamap.Assignments{{Column: "id", Value: int64(1)}}, "mismatch customers.id",
					[]string{"a key column"}},
			} {
				t.Run(tc.name, func(t *testing.T) {
					conn, err := reopen(t, e, func(sys *datamap.System) {
						cust, _ := sys.Table("customers")
						cust.Restrict = []datamap.Restriction{{Set: tc.set}}
					})
					if err != nil {
						t.Fatal(err)
					}
					d, err := conn.Check(ctx)
					if err != nil {
						t.Fatal(err)
					}
					var got []string
					for _, x := range d {
						got = append(got, x.Problem+" "+x.Location+"."+x.Column)
						if strings.Contains(x.Hint, "hunter2") {
							t.Errorf("the drift's hint repeats the value")
						}
					}
					if !slices.Contains(got, tc.drift) {
						t.Errorf("check: got %v, want %s", got, tc.drift)
					}
					_, err = conn.Restrict(ctx, subjectOf(cs[0], nil), "")
					if err == nil {
						t.Fatal("restrict: got no error")
					}
					for _, w := range tc.errors {
						if !strings.Contains(err.Error(), w) {
							t.Errorf("restrict: got %q, want it to contain %q", err, w)
						}
					}
					if strings.Contains(err.Error(), "hunter2") {
						t.Errorf("restrict: the error repeats the value")
					}
				})
			}
		})
	}
}
