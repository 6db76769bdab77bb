package shop

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql" // registers "mysql"
	_ "github.com/jackc/pgx/v5/stdlib" // registers "pgx"
	goredis "github.com/redis/go-redis/v9"
	_ "modernc.org/sqlite" // registers "sqlite"

	"github.com/lethe-privacy/lethe/internal/datamap"
	"github.com/lethe-privacy/lethe/internal/testsvc"
)

// The failures of these tests name customers by ID and values by their
// index in PersonalValues, never the values themselves: the rule for
// personal data holds for synthetic data too, so that nobody learns to
// break it here.

// columns is the shop's schema as the brief gives it, the same in every
// engine.
var columns = map[string][]string{
	"products":        {"id", "name", "price_cents"},
	"customers":       {"id", "lethe_id", "email", "full_name", "phone", "birth_date", "created_at", "processing_restricted"},
	"addresses":       {"id", "customer_id", "street", "city", "postcode", "country"},
	"orders":          {"id", "customer_id", "placed_at", "status", "total_cents", "shipping_name", "shipping_address"},
	"order_items":     {"id", "order_id", "product", "quantity", "price_cents", "gift_message"},
	"invoices":        {"id", "customer_id", "order_id", "number", "issued_at", "billing_name", "billing_address", "total_cents"},
	"newsletter":      {"id", "email", "subscribed_at", "source", "suppressed"},
	"support_tickets": {"id", "customer_id", "subject", "body", "created_at"},
	"activity_log":    {"id", "customer_id", "at", "event", "ip_address", "user_agent"},
}

// foreignKeys lists every foreign key column, as table.column.
var foreignKeys = []string{
	"activity_log.customer_id", "addresses.customer_id", "invoices.customer_id", "invoices.order_id",
	"order_items.order_id", "orders.customer_id", "support_tickets.customer_id",
}

type engine struct {
	dialect string
	open    func(t *testing.T) *sql.DB
}

var engines = []engine{
	{SQLite, openSQLite},
	{Postgres, func(t *testing.T) *sql.DB { return openDB(t, "pgx", testsvc.Postgres(t)) }},
	{MySQL, func(t *testing.T) *sql.DB { return openDB(t, "mysql", testsvc.MySQL(t)) }},
}

// openSQLite opens a fresh database file in a temporary directory, with
// foreign keys enforced.
func openSQLite(t *testing.T) *sql.DB {
	q := url.Values{"_pragma": {"busy_timeout(5000)", "foreign_keys(1)"}, "_txlock": {"immediate"}}
	u := url.URL{Scheme: "file", Path: filepath.Join(t.TempDir(), "shop.db"), RawQuery: q.Encode()}
	return openDB(t, "sqlite", u.String())
}

func openDB(t *testing.T, driver, dsn string) *sql.DB {
	t.Helper()
	db, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatalf("open %s: %v", driver, err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.PingContext(t.Context()); err != nil {
		t.Fatalf("ping %s: %v", driver, err)
	}
	return db
}

// TestShop creates and seeds the shop on every engine and checks what is
// in it against what Seed says.
func TestShop(t *testing.T) {
	for _, e := range engines {
		t.Run(e.dialect, func(t *testing.T) {
			t.Parallel()
			db := e.open(t)
			ctx := t.Context()
			if err := Create(ctx, db, e.dialect); err != nil {
				t.Fatalf("Create: %v", err)
			}
			checkSchema(t, db, e.dialect)
			cs, err := Seed(ctx, db, e.dialect, 50, 42)
			if err != nil {
				t.Fatalf("Seed: %v", err)
			}
			if len(cs) != 50 {
				t.Fatalf("Seed: got %d customers, want 50", len(cs))
			}
			checkCounts(t, db, RowCounts(cs))
			checkCustomers(t, db, e.dialect, cs)
			checkValues(t, db, cs)
			checkNoCascade(t, db, e.dialect, cs[0])

			// A second Seed continues the IDs with other people, and
			// the application can still insert rows of its own.
			more, err := Seed(ctx, db, e.dialect, 3, 42)
			if err != nil {
				t.Fatalf("second Seed: %v", err)
			}
			if more[0].ID != cs[len(cs)-1].ID+1 || more[0].Email == cs[0].Email {
				t.Errorf("second Seed: first customer %d, want %d with other values", more[0].ID, cs[len(cs)-1].ID+1)
			}
			ph := func(i int) string { return placeholder(e.dialect, i) }
			if _, err := db.ExecContext(ctx, "INSERT INTO products (name, price_cents) VALUES ("+ph(1)+", "+ph(2)+")", "Gift card", 2500); err != nil {
				t.Errorf("insert without an id after Seed: %v", err)
			}

			c := cs[len(cs)-1]
			var before int
			count(t, db, "SELECT COUNT(*) FROM activity_log WHERE customer_id = "+ph(1), &before, c.ID)
			start := time.Now()
			if err := SeedActivity(ctx, db, e.dialect, c.ID, 10_000); err != nil {
				t.Fatalf("SeedActivity: %v", err)
			}
			t.Logf("SeedActivity: 10,000 rows in %v", time.Since(start).Round(time.Millisecond))
			var after, foreign int
			count(t, db, "SELECT COUNT(*) FROM activity_log WHERE customer_id = "+ph(1), &after, c.ID)
			if after-before != 10_000 {
				t.Errorf("SeedActivity: customer %d got %d more activity rows, want 10000", c.ID, after-before)
			}
			// Its rows use the customer's own device, so an erasure
			// that takes the customer's values takes them all.
			count(t, db, "SELECT COUNT(*) FROM activity_log WHERE customer_id = "+ph(1)+" AND (ip_address <> "+ph(2)+" OR user_agent <> "+ph(3)+")",
				&foreign, c.ID, c.IPs[0], c.UserAgents[0])
			if foreign > c.Activity {
				t.Errorf("SeedActivity: customer %d has %d rows from another device, want at most %d", c.ID, foreign, c.Activity)
			}
			if err := SeedActivity(ctx, db, e.dialect, 1_000_000, 1); err == nil {
				t.Errorf("SeedActivity of a customer that does not exist: got no error, want a foreign key violation")
			}
		})
	}
}

func count(t *testing.T, db *sql.DB, query string, dst *int, args ...any) {
	t.Helper()
	if err := db.QueryRowContext(t.Context(), query, args...).Scan(dst); err != nil {
		t.Fatalf("count: %v", err)
	}
}

// checkSchema compares the live tables, columns, foreign keys and their
// indexes with the shop's.
func checkSchema(t *testing.T, db *sql.DB, dialect string) {
	t.Helper()
	ctx := t.Context()
	var colQuery, fkQuery, ixQuery string
	switch dialect {
	case Postgres:
		colQuery = `SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position`
		fkQuery = `SELECT kcu.table_name, kcu.column_name FROM information_schema.table_constraints tc
			JOIN information_schema.key_column_usage kcu ON kcu.constraint_name = tc.constraint_name AND kcu.table_schema = tc.table_schema
			WHERE tc.constraint_type = 'FOREIGN KEY' AND tc.table_schema = current_schema()`
		ixQuery = `SELECT t.relname, a.attname FROM pg_index i JOIN pg_class t ON t.oid = i.indrelid
			JOIN pg_namespace n ON n.oid = t.relnamespace JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = i.indkey[0]
			WHERE n.nspname = current_schema()`
	case MySQL:
		colQuery = `SELECT column_name FROM information_schema.columns WHERE table_schema = DATABASE() AND table_name = ? ORDER BY ordinal_position`
		fkQuery = `SELECT table_name, column_name FROM information_schema.key_column_usage WHERE table_schema = DATABASE() AND referenced_table_name IS NOT NULL`
		ixQuery = `SELECT table_name, column_name FROM information_schema.statistics WHERE table_schema = DATABASE() AND seq_in_index = 1`
	case SQLite:
		colQuery = `SELECT name FROM pragma_table_info(?) ORDER BY cid`
		fkQuery = `SELECT m.name, f."from" FROM sqlite_master m, pragma_foreign_key_list(m.name) f WHERE m.type = 'table'`
		ixQuery = `SELECT m.name, ii.name FROM sqlite_master m, pragma_index_list(m.name) il, pragma_index_info(il.name) ii
			WHERE m.type = 'table' AND ii.seqno = 0`
	}
	for _, table := range Tables() {
		got := strings0(t, db, colQuery, table)
		if !slices.Equal(got, columns[table]) {
			t.Errorf("columns of %s: got %v, want %v", table, got, columns[table])
		}
	}
	pairs := func(query string) []string {
		rows, err := db.QueryContext(ctx, query)
		if err != nil {
			t.Fatalf("read schema: %v", err)
		}
		defer rows.Close()
		var out []string
		for rows.Next() {
			var table, col string
			if err := rows.Scan(&table, &col); err != nil {
				t.Fatalf("read schema: %v", err)
			}
			out = append(out, table+"."+col)
		}
		if err := rows.Err(); err != nil {
			t.Fatalf("read schema: %v", err)
		}
		slices.Sort(out)
		return slices.Compact(out)
	}
	if got := pairs(fkQuery); !slices.Equal(got, foreignKeys) {
		t.Errorf("foreign keys: got %v, want %v", got, foreignKeys)
	}
	indexed := pairs(ixQuery)
	for _, fk := range foreignKeys {
		if !slices.Contains(indexed, fk) {
			t.Errorf("foreign key %s: no index starts with it", fk)
		}
	}
}

func strings0(t *testing.T, db *sql.DB, query string, args ...any) []string {
	t.Helper()
	rows, err := db.QueryContext(t.Context(), query, args...)
	if err != nil {
		t.Fatalf("query: %v", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatalf("scan: %v", err)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("query: %v", err)
	}
	return out
}

func checkCounts(t *testing.T, db *sql.DB, want map[string]int) {
	t.Helper()
	for _, table := range Tables() {
		var got int
		count(t, db, "SELECT COUNT(*) FROM "+table, &got)
		if got != want[table] {
			t.Errorf("rows in %s: got %d, want %d", table, got, want[table])
		}
	}
}

// checkCustomers reads each customer's row back, and the spread of the
// seeded data.
func checkCustomers(t *testing.T, db *sql.DB, dialect string, cs []Customer) {
	t.Helper()
	subjectID := regexp.MustCompile(`^sub_[a-z2-7]{26}$`)
	var withTickets, withoutTickets, withGift, twoAddresses, subscribed, avatars int
	ids := map[string]bool{}
	for i, c := range cs {
		if c.ID != cs[0].ID+int64(i) {
			t.Errorf("customer %d: not in ID order", c.ID)
		}
		if !subjectID.MatchString(c.LetheID) || ids[c.LetheID] {
			t.Errorf("customer %d: Lethe ID is malformed or repeated", c.ID)
		}
		ids[c.LetheID] = true
		var letheID, email, name, phone string
		var birth time.Time
		err := db.QueryRowContext(t.Context(), "SELECT lethe_id, email, full_name, phone, birth_date FROM customers WHERE id = "+placeholder(dialect, 1), c.ID).
			Scan(&letheID, &email, &name, &phone, &birth)
		if err != nil {
			t.Fatalf("customer %d: read row: %v", c.ID, err)
		}
		if letheID != c.LetheID || email != c.Email || name != c.FullName || phone != c.Phone || !birth.Equal(c.BirthDate) {
			t.Errorf("customer %d: the row differs from what Seed returned", c.ID)
		}
		if len(c.Addresses) < 1 || len(c.Addresses) > 2 || len(c.Orders) < 1 || len(c.Orders) > 3 ||
			len(c.Tickets) > 2 || c.Activity < 3 || c.Activity > 10 || len(c.IPs) != len(c.UserAgents) {
			t.Errorf("customer %d: %d addresses, %d orders, %d tickets, %d activity rows, %d IPs, %d user agents: out of range",
				c.ID, len(c.Addresses), len(c.Orders), len(c.Tickets), c.Activity, len(c.IPs), len(c.UserAgents))
		}
		for _, o := range c.Orders {
			if len(o.Items) < 1 || len(o.Items) > 3 {
				t.Errorf("customer %d: order %d has %d items, want 1 to 3", c.ID, o.ID, len(o.Items))
			}
			for _, it := range o.Items {
				if it.GiftMessage != "" {
					withGift++
				}
			}
		}
		if len(c.Tickets) > 0 {
			withTickets++
		} else {
			withoutTickets++
		}
		if len(c.Addresses) == 2 {
			twoAddresses++
		}
		if c.Newsletter != (i%2 == 0) {
			t.Errorf("customer %d: newsletter %v, want every other customer", c.ID, c.Newsletter)
		}
		if c.Newsletter {
			subscribed++
		}
		if c.Avatar != "" {
			avatars++
		}
		if got := Identifiers(c); got["shop_customer_id"] != fmt.Sprint(c.ID) || got["email"] != c.Email || len(got) != 2 {
			t.Errorf("customer %d: Identifiers do not hold the ID and email", c.ID)
		}
	}
	if withTickets == 0 || withoutTickets == 0 || withGift == 0 || twoAddresses == 0 || avatars == 0 || avatars == len(cs) || subscribed != len(cs)/2 {
		t.Errorf("spread: %d with tickets, %d without, %d gift messages, %d with two addresses, %d avatars, %d subscribed: want some of each",
			withTickets, withoutTickets, withGift, twoAddresses, avatars, subscribed)
	}
}

// dump returns every value in the shop's tables as text, one string per
// table, times in UTC.
func dump(t *testing.T, db *sql.DB) string {
	t.Helper()
	var b strings.Builder
	for _, table := range Tables() {
		rows, err := db.QueryContext(t.Context(), "SELECT * FROM "+table)
		if err != nil {
			t.Fatalf("dump %s: %v", table, err)
		}
		cols, _ := rows.Columns()
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		for rows.Next() {
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatalf("dump %s: %v", table, err)
			}
			for _, v := range vals {
				switch v := v.(type) {
				case time.Time:
					b.WriteString(v.UTC().Format(time.DateTime))
				case []byte:
					b.Write(v)
				default:
					fmt.Fprint(&b, v)
				}
				b.WriteByte(0)
			}
		}
		if err := rows.Err(); err != nil {
			t.Fatalf("dump %s: %v", table, err)
		}
		rows.Close()
	}
	return b.String()
}

// checkValues checks that each customer's PersonalValues are in the
// database (all but the avatar's marker, which lives in files) and that no
// value of one customer is part of another customer's.
func checkValues(t *testing.T, db *sql.DB, cs []Customer) {
	t.Helper()
	all := dump(t, db)
	for _, c := range cs {
		vs := c.PersonalValues()
		if len(vs) < 8 {
			t.Errorf("customer %d: %d personal values, want at least 8", c.ID, len(vs))
		}
		for i, v := range vs {
			if v != c.Avatar && !strings.Contains(all, v) {
				t.Errorf("customer %d: personal value %d is not in the database", c.ID, i)
			}
		}
	}
	checkDistinct(t, cs)
}

func checkDistinct(t *testing.T, cs []Customer) {
	t.Helper()
	values := make([][]string, len(cs))
	for i := range cs {
		values[i] = cs[i].PersonalValues()
	}
	for i, c := range cs {
		for j, d := range cs {
			if i == j {
				continue
			}
			for k, v := range values[i] {
				for _, w := range values[j] {
					if strings.Contains(w, v) {
						t.Errorf("customer %d: personal value %d is part of one of customer %d's", c.ID, k, d.ID)
					}
				}
			}
		}
	}
}

// checkNoCascade checks that deleting a customer or an order with rows
// that refer to it fails, rather than taking those rows along.
func checkNoCascade(t *testing.T, db *sql.DB, dialect string, c Customer) {
	t.Helper()
	for _, del := range []struct {
		table string
		id    int64
	}{{"customers", c.ID}, {"orders", c.Orders[0].ID}} {
		if _, err := db.ExecContext(t.Context(), "DELETE FROM "+del.table+" WHERE id = "+placeholder(dialect, 1), del.id); err == nil {
			t.Errorf("delete %s %d with rows referring to it: got no error, want a foreign key violation", del.table, del.id)
		}
	}
	for i, stmt := range statements(mustSchema(t, dialect)) {
		if strings.Contains(strings.ToUpper(stmt), "CASCADE") {
			t.Errorf("schema %s, statement %d: CASCADE, want none", dialect, i+1)
		}
	}
}

func mustSchema(t *testing.T, dialect string) string {
	s, err := Schema(dialect)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// seedSQLite seeds n customers into a fresh SQLite database.
func seedSQLite(t *testing.T, n int, seed int64) []Customer {
	t.Helper()
	db := openSQLite(t)
	if err := Create(t.Context(), db, SQLite); err != nil {
		t.Fatalf("Create: %v", err)
	}
	cs, err := Seed(t.Context(), db, SQLite, n, seed)
	if err != nil {
		t.Fatalf("Seed: %v", err)
	}
	return cs
}

// TestSeedDeterministic checks that a seed gives the same customers and
// another seed other names.
func TestSeedDeterministic(t *testing.T) {
	a, b, c := seedSQLite(t, 20, 7), seedSQLite(t, 20, 7), seedSQLite(t, 20, 8)
	if !reflect.DeepEqual(a, b) {
		t.Errorf("two Seeds with seed 7: got different customers, want the same")
	}
	same := 0
	for i := range a {
		if a[i].FullName == c[i].FullName {
			same++
		}
	}
	if same == len(a) || a[0].LetheID == c[0].LetheID {
		t.Errorf("Seeds with seeds 7 and 8: got the same customers, want others")
	}
}

func TestSeedErrors(t *testing.T) {
	db := openSQLite(t)
	if err := Create(t.Context(), db, "oracle"); err == nil {
		t.Errorf("Create(oracle): got no error, want unknown dialect")
	}
	if _, err := Seed(t.Context(), db, SQLite, 0, 1); err == nil {
		t.Errorf("Seed of 0 customers: got no error, want one")
	}
	if err := Create(t.Context(), db, SQLite); err != nil {
		t.Fatal(err)
	}
	if err := Create(t.Context(), db, SQLite); err == nil {
		t.Errorf("Create twice: got no error, want table exists")
	}
}

// TestSeedRedis seeds Redis under a random prefix and checks every key
// against the customers and the data map's key spaces.
func TestSeedRedis(t *testing.T) {
	u := os.Getenv("LETHE_TEST_REDIS")
	if u == "" {
		u = "redis://127.0.0.1:6379/0"
	}
	opt, err := goredis.ParseURL(u)
	if err != nil {
		t.Fatalf("LETHE_TEST_REDIS is not a redis:// URL")
	}
	rdb := goredis.NewClient(opt)
	t.Cleanup(func() { rdb.Close() })
	ctx := t.Context()
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := rdb.Ping(pctx).Err(); err != nil {
		testsvc.Unavailable(t, "Redis", "LETHE_TEST_REDIS", err)
	}
	var random [6]byte
	rand.Read(random[:])
	prefix := "lethe_test_" + hex.EncodeToString(random[:]) + ":"
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		iter := rdb.Scan(ctx, 0, prefix+"*", 1000).Iterator()
		for iter.Next(ctx) {
			rdb.Del(ctx, iter.Val())
		}
		if err := iter.Err(); err != nil {
			t.Errorf("clean up keys: %v", err)
		}
	})

	cs := seedSQLite(t, 50, 42)
	if err := SeedRedis(ctx, rdb, prefix, cs); err != nil {
		t.Fatalf("SeedRedis: %v", err)
	}
	subscribers := 0
	for _, c := range cs {
		id := fmt.Sprint(c.ID)
		session, err := rdb.HGetAll(ctx, prefix+"session:"+id).Result()
		if err != nil {
			t.Fatal(err)
		}
		if session["ip"] != c.IPs[0] || session["user_agent"] != c.UserAgents[0] || len(session) != 2 {
			t.Errorf("customer %d: session hash differs from the first device", c.ID)
		}
		if ttl := rdb.TTL(ctx, prefix+"session:"+id).Val(); ttl <= 0 || ttl > SessionTTL {
			t.Errorf("customer %d: session TTL %v, want up to %v", c.ID, ttl, SessionTTL)
		}
		cart, _ := rdb.HGetAll(ctx, prefix+"cart:"+id).Result()
		if len(cart) != len(c.Cart) || len(cart) == 0 {
			t.Errorf("customer %d: cart has %d products, want %d", c.ID, len(cart), len(c.Cart))
		}
		for p, q := range c.Cart {
			if cart[p] != fmt.Sprint(q) {
				t.Errorf("customer %d: cart quantity of %s: got %s, want %d", c.ID, p, cart[p], q)
			}
		}
		if views, _ := rdb.LRange(ctx, prefix+"views:"+id, 0, -1).Result(); !slices.Equal(views, c.Views) {
			t.Errorf("customer %d: views: got %v, want %v", c.ID, views, c.Views)
		}
		if got := rdb.SIsMember(ctx, prefix+"newsletter:subscribers", c.Email).Val(); got != c.Newsletter {
			t.Errorf("customer %d: in the subscribers set: got %v, want %v", c.ID, got, c.Newsletter)
		}
		if c.Newsletter {
			subscribers++
		}
		if err := rdb.ZScore(ctx, prefix+"leaderboard", id).Err(); err != nil {
			t.Errorf("customer %d: not on the leaderboard: %v", c.ID, err)
		}
	}
	keys, err := rdb.Keys(ctx, prefix+"*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if mine := 3*len(cs) + 2; len(keys) <= mine {
		t.Errorf("keys: got %d, want the customers' %d and some of nobody", len(keys), mine)
	}
	if n := rdb.SCard(ctx, prefix+"newsletter:subscribers").Val(); n != int64(subscribers) {
		t.Errorf("subscribers: got %d, want %d", n, subscribers)
	}

	// Every key space of the data map finds each customer's data.
	m := loadManifest(t)
	sys, ok := m.System("sessions")
	if !ok {
		t.Fatal("lethe.yaml has no system sessions")
	}
	placeholder := regexp.MustCompile(`\{([a-z_]+)\}`)
	fill := func(c Customer, s string) string {
		return placeholder.ReplaceAllStringFunc(s, func(p string) string { return Identifiers(c)[p[1:len(p)-1]] })
	}
	for _, ks := range sys.Keys {
		for _, c := range cs {
			key := prefix + fill(c, ks.Pattern)
			typ := rdb.Type(ctx, key).Val()
			if typ != ks.Type {
				t.Errorf("key space %s, customer %d: key type %s, want %s", ks.Pattern, c.ID, typ, ks.Type)
				continue
			}
			var in bool
			switch {
			case ks.Member == "":
				in = true
			case ks.Type == "set":
				in = rdb.SIsMember(ctx, key, fill(c, ks.Member)).Val()
				if !c.Newsletter {
					in = !in
				}
			case ks.Type == "zset":
				in = rdb.ZScore(ctx, key, fill(c, ks.Member)).Err() == nil
			}
			if !in {
				t.Errorf("key space %s, customer %d: membership differs from the seeded data", ks.Pattern, c.ID)
			}
		}
	}
}

// TestSeedFiles checks the avatars and thumbnails against the customers
// and the data map's file sets.
func TestSeedFiles(t *testing.T) {
	cs := seedSQLite(t, 50, 42)
	root := t.TempDir()
	if err := SeedFiles(root, cs); err != nil {
		t.Fatalf("SeedFiles: %v", err)
	}
	m := loadManifest(t)
	sys, ok := m.System("uploads")
	if !ok || len(sys.Files) != 1 {
		t.Fatal("lethe.yaml has no system uploads with one file set")
	}
	fs := sys.Files[0]
	without := 0
	for _, c := range cs {
		id := fmt.Sprint(c.ID)
		var matched []string
		for _, p := range append([]string{fs.Pattern}, fs.Derived...) {
			ms, err := filepath.Glob(filepath.Join(root, filepath.FromSlash(strings.ReplaceAll(p, "{shop_customer_id}", id))))
			if err != nil {
				t.Fatal(err)
			}
			matched = append(matched, ms...)
		}
		if c.Avatar == "" {
			without++
			if len(matched) != 0 {
				t.Errorf("customer %d: no avatar, but %d files", c.ID, len(matched))
			}
			continue
		}
		if len(matched) != 3 {
			t.Errorf("customer %d: %d files, want the avatar and 2 thumbnails", c.ID, len(matched))
		}
		for _, f := range matched {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(b), c.Avatar) || b[0] != 0xFF || b[1] != 0xD8 {
				t.Errorf("customer %d: %s lacks the JPEG header or the avatar's marker", c.ID, filepath.Base(f))
			}
		}
	}
	if without == 0 || without == len(cs) {
		t.Errorf("%d of %d customers without an avatar, want some", without, len(cs))
	}
	if _, err := os.Stat(filepath.Join(root, "avatars", "default", "avatar.jpg")); err != nil {
		t.Errorf("default avatar: %v", err)
	}
}

func loadManifest(t *testing.T) *datamap.Manifest {
	t.Helper()
	m, err := datamap.Load("lethe.yaml")
	if err != nil {
		t.Fatalf("load lethe.yaml: %v", err)
	}
	return m
}

// TestManifest checks that lethe.yaml is a valid data map and that every
// table and column it names exists in the shop's schema.
func TestManifest(t *testing.T) {
	m := loadManifest(t)
	sys, ok := m.System("shop")
	if !ok {
		t.Fatal("lethe.yaml has no system shop")
	}
	has := func(table, col string) bool { return slices.Contains(columns[table], col) }
	mapped := map[string]bool{}
	for _, tb := range sys.Tables {
		mapped[tb.Name] = true
		if _, ok := columns[tb.Name]; !ok {
			t.Errorf("table %s: not in the schema", tb.Name)
			continue
		}
		if tb.Subject != nil && !has(tb.Name, tb.Subject.Column) {
			t.Errorf("table %s: subject column %s not in the schema", tb.Name, tb.Subject.Column)
		}
		if v := tb.Via; v != nil && (!has(tb.Name, v.Column) || !has(v.Parent, v.References) || !slices.Contains(foreignKeys, tb.Name+"."+v.Column)) {
			t.Errorf("table %s: via %s → %s.%s is not a foreign key of the schema", tb.Name, v.Column, v.Parent, v.References)
		}
		if r := tb.Retain; r != nil && !has(tb.Name, r.Column) {
			t.Errorf("table %s: retain column %s not in the schema", tb.Name, r.Column)
		}
		for _, c := range tb.Columns {
			if !has(tb.Name, c.Name) {
				t.Errorf("table %s: column %s not in the schema", tb.Name, c.Name)
			}
		}
		for _, r := range tb.Restrict {
			for _, a := range r.Set {
				if !has(tb.Name, a.Column) {
					t.Errorf("table %s: restrict column %s not in the schema", tb.Name, a.Column)
				}
			}
		}
	}
	for _, table := range Tables() {
		if !mapped[table] && table != "products" {
			t.Errorf("table %s holds personal data but lethe.yaml does not map it", table)
		}
	}
	for _, name := range []string{"sessions", "uploads", "mailer", "crm_spreadsheet"} {
		if _, ok := m.System(name); !ok {
			t.Errorf("lethe.yaml has no system %s", name)
		}
	}
	cust, _ := sys.Table("customers")
	news, _ := sys.Table("newsletter")
	if cust == nil || news == nil || len(cust.Restrictions("")) == 0 || len(news.Restrictions("newsletter")) == 0 {
		t.Errorf("lethe.yaml: want restrict entries for a restriction on customers and for an objection to the newsletter on newsletter")
	}
	if p, ok := m.Purpose("newsletter"); !ok || p.Policy.TextHash == "" || !p.DirectMarketing {
		t.Errorf("purpose newsletter: missing, or without its policy text or direct marketing")
	}
}
