package relational_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"
	_ "github.com/jackc/pgx/v5/stdlib"
	_ "modernc.org/sqlite"

	"github.com/lethe-privacy/lethe/examples/shop"
	"github.com/lethe-privacy/lethe/internal/connector"
	"github.com/lethe-privacy/lethe/internal/connector/connectortest"
	"github.com/lethe-privacy/lethe/internal/connector/mysql"
	"github.com/lethe-privacy/lethe/internal/connector/postgres"
	"github.com/lethe-privacy/lethe/internal/connector/relational"
	"github.com/lethe-privacy/lethe/internal/connector/sqlite"
	"github.com/lethe-privacy/lethe/internal/datamap"
	"github.com/lethe-privacy/lethe/internal/testsvc"
)

// engine is one relational engine the suite runs on: a fresh database
// with the shop's schema, the DSN for the connector, and a raw handle.
type engine struct {
	name   string
	driver string
	open   func(ctx context.Context, sys *datamap.System) (*relational.Conn, error)
	// fresh returns the connection reference and the raw driver DSN of a
	// new empty database.
	fresh func(t testing.TB) (ref, dsn string)
}

var engines = []engine{
	{"sqlite", "sqlite", sqlite.Open, func(t testing.TB) (string, string) {
		p := filepath.Join(t.TempDir(), "shop.db")
		return p, "file:" + p + "?_pragma=foreign_keys(1)"
	}},
	{"postgres", "pgx", postgres.Open, func(t testing.TB) (string, string) {
		dsn := testsvc.Postgres(t)
		return dsn, dsn
	}},
	{"mysql", "mysql", mysql.Open, func(t testing.TB) (string, string) {
		dsn := testsvc.MySQL(t)
		return dsn, dsn
	}},
}

// shopSystem is the example manifest's shop system, on engine e at ref.
func shopSystem(t testing.TB, e engine, ref string) *datamap.System {
	t.Helper()
	m, err := datamap.Load(filepath.Join("..", "..", "..", "examples", "shop", "lethe.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	sys, ok := m.System("shop")
	if !ok {
		t.Fatal("the example manifest has no system shop")
	}
	cp := *sys
	cp.Kind = e.name
	t.Setenv("LETHE_TEST_SHOP_REF", ref)
	cp.Connection = datamap.SecretRef{Env: "LETHE_TEST_SHOP_REF"}
	return &cp
}

// seeded opens engine e on a fresh shop database with n customers.
func seeded(t testing.TB, e engine, n int) (*relational.Conn, *sql.DB, []shop.Customer) {
	t.Helper()
	ctx := context.Background()
	ref, dsn := e.fresh(t)
	db, err := sql.Open(e.driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := shop.Create(ctx, db, e.name); err != nil {
		t.Fatal(err)
	}
	cs, err := shop.Seed(ctx, db, e.name, n, 1)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := e.open(ctx, shopSystem(t, e, ref))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn, db, cs
}

func subjectOf(c shop.Customer, key []byte) connector.Subject {
	return connector.Subject{ID: c.LetheID, Identifiers: shop.Identifiers(c), PseudonymKey: key, Now: time.Now()}
}

// dump reads every table of the database: item "table/key" → row text.
func dump(t *testing.T, conn *relational.Conn) map[string]string {
	t.Helper()
	return connectortest.DumpDB(t, conn.DB())
}

// TestContract runs the connector contract suite on the shop in every
// engine: find, export, a plan that matches the erasure row for row,
// nothing of the customer left but pseudonyms in the retained invoices,
// nobody else touched, and a second erasure that does nothing.
func TestContract(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			conn, _, cs := seeded(t, e, 30)
			key := make([]byte, 32)
			rand.Read(key)
			var others []connector.Subject
			for _, c := range cs[:10] {
				others = append(others, subjectOf(c, key))
			}
			me := subjectOf(cs[12], key)
			byID := map[string]shop.Customer{}
			for _, c := range cs {
				byID[c.LetheID] = c
			}
			connectortest.Run(t, connectortest.Env{
				Conn:    conn,
				Subject: me,
				Others:  others,
				Values: func(s connector.Subject) []string {
					c := byID[s.ID]
					return c.PersonalValues()
				},
				Dump:       func(t *testing.T) map[string]string { return dump(t, conn) },
				Item:       func(location, key string) string { return location + "/" + key },
				Exportless: []string{cs[12].Avatar}, // only the files hold it
			})
		})
	}
}

// TestPlanRetainsInvoices: the plan keeps the invoices under their legal
// basis, keeps the customer row they reference (unlinked), and deletes
// children before parents.
func TestPlanRetainsInvoices(t *testing.T) {
	conn, _, cs := seeded(t, engines[0], 5)
	key := make([]byte, 32)
	p, err := conn.PlanErase(context.Background(), subjectOf(cs[1], key))
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	steps := map[string]connector.Step{}
	for _, st := range p.Steps {
		order = append(order, st.Location+":"+st.Action)
		steps[st.Location+":"+st.Action] = st
	}
	inv, ok := steps["invoices:retain"]
	if !ok || !strings.Contains(inv.Note, "legal_obligation") || inv.Count == 0 {
		t.Errorf("got steps %v, want invoices retained under legal_obligation", order)
	}
	cust, ok := steps["customers:update"]
	if !ok || cust.Count != 1 || !strings.Contains(cust.Note, "invoices") || !strings.Contains(strings.Join(cust.Columns, ","), "lethe_id=pseudonymize") {
		t.Errorf("got %+v, want the customer kept, unlinked, because invoices reference it", cust)
	}
	pos := func(s string) int {
		for i, o := range order {
			if o == s {
				return i
			}
		}
		return -1
	}
	if a, s := pos("activity_log:delete"), pos("support_tickets:delete"); a < 0 || s < 0 {
		t.Errorf("got steps %v, want activity and tickets deleted", order)
	}
	if _, ok := steps["customers:delete"]; ok {
		t.Errorf("got steps %v, want the customer row kept", order)
	}
}

// TestRetentionOver: once the retention period is over, the retained rows
// go too, and so can the customer.
func TestRetentionOver(t *testing.T) {
	conn, _, cs := seeded(t, engines[0], 5)
	s := subjectOf(cs[2], make([]byte, 32))
	s.Now = time.Now().AddDate(11, 0, 0)
	p, err := conn.PlanErase(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, st := range p.Steps {
		got = append(got, st.Location+":"+st.Action)
	}
	sort.Strings(got)
	want := "invoices:delete"
	if !strings.Contains(strings.Join(got, " "), want) {
		t.Errorf("got %v, want %s", got, want)
	}
}

// TestRectify writes a corrected address into every column of its
// category, and only the subject's.
func TestRectify(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			conn, _, cs := seeded(t, e, 5)
			before := dump(t, conn)
			s := subjectOf(cs[3], nil)
			r, err := conn.Rectify(context.Background(), s, map[string]string{"user.name": "Grace Hopper-Rectified"})
			if err != nil {
				t.Fatal(err)
			}
			if r.Total() == 0 {
				t.Fatal("rectify touched nothing")
			}
			after := dump(t, conn)
			changed := 0
			for item, text := range after {
				if text != before[item] {
					changed++
					if !strings.Contains(text, "Grace Hopper-Rectified") {
						t.Errorf("%s changed without the corrected value", item)
					}
				}
			}
			if int64(changed) != r.Total() {
				t.Errorf("got %d rows changed, report says %d", changed, r.Total())
			}
		})
	}
}

// TestCheck: a table the map names but the database lacks, a mapped
// column it lacks, and a personal-looking column the map does not
// mention are each reported.
func TestCheck(t *testing.T) {
	conn, db, _ := seeded(t, engines[0], 1)
	ctx := context.Background()
	if d, err := conn.Check(ctx); err != nil || len(d) != 0 {
		t.Fatalf("the shop as mapped: got %v, %v, want no drift", d, err)
	}
	for _, stmt := range []string{
		"ALTER TABLE customers ADD COLUMN mobile_phone TEXT",
		"ALTER TABLE activity_log DROP COLUMN user_agent",
		"CREATE TABLE loyalty (id INTEGER PRIMARY KEY, customer_id INTEGER REFERENCES customers(id), points INTEGER)",
	} {
		if _, err := db.ExecContext(ctx, stmt); err != nil {
			t.Fatal(err)
		}
	}
	d, err := conn.Check(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, x := range d {
		got = append(got, x.Problem+" "+x.Location+"."+x.Column)
	}
	want := []string{"missing activity_log.user_agent", "unmapped customers.mobile_phone", "unmapped loyalty."}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("got %q, want %q", got, want)
	}
}

// TestNoSecretInErrors: a wrong password reaches no error.
func TestNoSecretInErrors(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		name string
		open func(context.Context, *datamap.System) (*relational.Conn, error)
		ref  string
	}{
		{"postgres", postgres.Open, "postgres://lethe:hunter2-secret@127.0.0.1:1/shop?connect_timeout=2"},
		{"mysql", mysql.Open, "lethe:hunter2-secret@tcp(127.0.0.1:1)/shop?timeout=2s"},
		{"postgres-bad-user", postgres.Open, "postgres://no_such_user_x:hunter2-secret@127.0.0.1:5432/postgres?sslmode=disable"},
	} {
		t.Setenv("LETHE_TEST_BAD_REF", c.ref)
		sys := &datamap.System{Name: "shop", Kind: c.name, Connection: datamap.SecretRef{Env: "LETHE_TEST_BAD_REF"}}
		_, err := c.open(ctx, sys)
		if err == nil {
			t.Errorf("%s: got no error", c.name)
			continue
		}
		if strings.Contains(err.Error(), "hunter2") || strings.Contains(err.Error(), "lethe:") {
			t.Errorf("%s: the error holds the secret: %v", c.name, err)
		}
	}
}

// TestForeignKeyCycle: tables whose foreign keys reference each other,
// both losing rows, have no deletion order; the plan says which tables.
func TestForeignKeyCycle(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "cycle.db")
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=foreign_keys(1)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, stmt := range []string{
		"CREATE TABLE people (id INTEGER PRIMARY KEY, lethe_id TEXT, best_friend INTEGER REFERENCES pets(id))",
		"CREATE TABLE pets (id INTEGER PRIMARY KEY, owner_id INTEGER NOT NULL REFERENCES people(id), name TEXT)",
		"INSERT INTO people (id, lethe_id) VALUES (1, 'sub_aaaaaaaaaaaaaaaaaaaaaaaaaa')",
		"INSERT INTO pets (id, owner_id, name) VALUES (1, 1, 'Rex')",
		"UPDATE people SET best_friend = 1",
	} {
		if _, err := db.ExecContext(ctx, stmt); err != nil {
			t.Fatal(err)
		}
	}
	sys := &datamap.System{Name: "zoo", Kind: "sqlite", Connection: datamap.SecretRef{Path: path}, Tables: []datamap.Table{
		{Name: "people", Subject: &datamap.Link{Column: "lethe_id"}, Erase: connector.ActionDelete},
		{Name: "pets", Via: &datamap.Via{Column: "owner_id", Parent: "people", References: "id"}, Erase: connector.ActionDelete},
	}}
	conn, err := sqlite.Open(ctx, sys)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_, err = conn.PlanErase(ctx, connector.Subject{ID: "sub_aaaaaaaaaaaaaaaaaaaaaaaaaa"})
	if err == nil || !strings.Contains(err.Error(), "foreign keys form a cycle among people, pets") {
		t.Fatalf("got %v, want the cycle named", err)
	}
	// With the back reference nulled by erasure, the order exists.
	sys.Tables[0].Columns = []datamap.Column{{Name: "best_friend", Erase: connector.ActionNull}}
	conn2, err := sqlite.Open(ctx, sys)
	if err != nil {
		t.Fatal(err)
	}
	defer conn2.Close()
	s := connector.Subject{ID: "sub_aaaaaaaaaaaaaaaaaaaaaaaaaa"}
	p, err := conn2.PlanErase(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, st := range p.Steps {
		got = append(got, st.Location+":"+st.Action+":"+strings.Join(st.Keys, ","))
	}
	if want := "people:update:1 pets:delete:1 people:delete:1"; strings.Join(got, " ") != want {
		t.Errorf("got %v, want %s", got, want)
	}
	r, err := conn2.Erase(ctx, s)
	if err != nil || r.Total() != 3 {
		t.Fatalf("erase: %+v, %v", r, err)
	}
	var left int
	db.QueryRow("SELECT (SELECT count(*) FROM people) + (SELECT count(*) FROM pets)").Scan(&left)
	if left != 0 {
		t.Errorf("%d rows left", left)
	}
}
