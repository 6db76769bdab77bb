package connectortest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/lethe-privacy/lethe/examples/shop"
	"github.com/lethe-privacy/lethe/internal/connector"
	"github.com/lethe-privacy/lethe/internal/connector/files"
	"github.com/lethe-privacy/lethe/internal/connector/mysql"
	"github.com/lethe-privacy/lethe/internal/connector/postgres"
	"github.com/lethe-privacy/lethe/internal/connector/redis"
	"github.com/lethe-privacy/lethe/internal/connector/sqlite"
	"github.com/lethe-privacy/lethe/internal/connector/webhook"
	"github.com/lethe-privacy/lethe/internal/datamap"
	"github.com/lethe-privacy/lethe/internal/testsvc"
)

// This file builds the sample shop's six systems (examples/shop) on real
// engines, for the tests of one connector and for tests of a whole
// deployment: the shop's database in PostgreSQL, MariaDB and SQLite, its
// Redis, its uploads directory and its mail provider, an HTTPS third party
// in the test's process. Each piece is isolated (a fresh database, a random
// Redis key prefix, a temporary directory, a server of its own), so that
// tests and packages can run in parallel, and removed when the test ends.
// A piece whose server is unreachable skips the test, or fails it under
// LETHE_REQUIRE_SERVICES=1 (see testsvc).

// Shop returns the sample shop's data map, examples/shop/lethe.yaml as the
// shop package embeds it, loaded from a temporary copy.
func Shop(t testing.TB) *datamap.Manifest {
	t.Helper()
	dir := t.TempDir()
	if err := shop.WriteManifest(dir, nil); err != nil {
		t.Fatal(err)
	}
	m, err := datamap.Load(filepath.Join(dir, "lethe.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// SecretFile writes value into a file of t's own and returns the
// reference to it. A connection string passed this way, rather than in an
// environment variable, stays the test's own when tests run in parallel.
func SecretFile(t testing.TB, value string) datamap.SecretRef {
	t.Helper()
	f, err := os.CreateTemp(t.TempDir(), "secret-*")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(value); err != nil {
		t.Fatal(err)
	}
	return datamap.SecretRef{File: f.Name()}
}

// systemOf returns a copy of the map's system name, to reconfigure.
func systemOf(t testing.TB, m *datamap.Manifest, name string) *datamap.System {
	t.Helper()
	sys, ok := m.System(name)
	if !ok {
		t.Fatalf("the sample data map has no system %s", name)
	}
	cp := *sys
	return &cp
}

// randomName returns prefix and 16 random hex digits.
func randomName(prefix string) string {
	var b [8]byte
	rand.Read(b[:]) // never returns an error
	return prefix + hex.EncodeToString(b[:])
}

// Database is the sample shop's database on one engine, and the data
// map's shop system pointed at it.
type Database struct {
	Kind string  // datamap.KindPostgres, KindMySQL or KindSQLite
	DB   *sql.DB // the test's own handle, for seeding and dumps
	// DSN is what the system's connection holds: the driver's data source
	// name, or for SQLite the file's path.
	DSN    string
	System *datamap.System
}

// NewDatabase creates the shop's tables in a fresh database of kind: on
// the PostgreSQL or MariaDB server testsvc names (skipping or failing t if
// it is unreachable), or in a file under t's temporary directory. The
// system is the map's shop system renamed name, its connection a secret
// file holding DSN. Everything is closed and dropped when t ends.
func NewDatabase(t testing.TB, m *datamap.Manifest, kind, name string) *Database {
	t.Helper()
	d := &Database{Kind: kind}
	var driver, source string
	switch kind {
	case datamap.KindPostgres:
		d.DSN = testsvc.Postgres(t)
		driver, source = "pgx", d.DSN
	case datamap.KindMySQL:
		d.DSN = testsvc.MySQL(t)
		driver, source = "mysql", d.DSN
	case datamap.KindSQLite:
		d.DSN = filepath.Join(t.TempDir(), "shop.db")
		driver, source = "sqlite", "file:"+d.DSN+"?_pragma=foreign_keys(1)&_pragma=busy_timeout(5000)"
	default:
		t.Fatalf("no shop database of kind %s", kind)
	}
	db, err := sql.Open(driver, source)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() }) // before testsvc drops the database
	d.DB = db
	if err := shop.Create(context.Background(), db, kind); err != nil {
		t.Fatal(err)
	}
	d.System = systemOf(t, m, "shop")
	d.System.Name, d.System.Kind = name, kind
	if kind == datamap.KindSQLite {
		d.System.Connection = datamap.SecretRef{Path: d.DSN}
	} else {
		d.System.Connection = SecretFile(t, d.DSN)
	}
	return d
}

// Seed adds n customers from seed 1, the same customers on every engine,
// and returns them.
func (d *Database) Seed(t testing.TB, n int) []shop.Customer {
	t.Helper()
	cs, err := shop.Seed(context.Background(), d.DB, d.Kind, n, 1)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// Link sets a customer's lethe_id, to the subject ID a vault gave them.
func (d *Database) Link(t testing.TB, customerID int64, subjectID string) {
	t.Helper()
	q := "UPDATE customers SET lethe_id = ? WHERE id = ?"
	if d.Kind == datamap.KindPostgres {
		q = "UPDATE customers SET lethe_id = $1 WHERE id = $2"
	}
	if _, err := d.DB.ExecContext(context.Background(), q, subjectID, customerID); err != nil {
		t.Fatalf("link customer %d: %v", customerID, err)
	}
}

// Dump reads every table of the shop (see DumpDB).
func (d *Database) Dump(t testing.TB) map[string]string {
	t.Helper()
	return DumpDB(t, d.DB)
}

// DumpDB reads every table of a sample shop's database: item "table/id" →
// the row as "column=value;…", bytes as text.
func DumpDB(t testing.TB, db *sql.DB) map[string]string {
	t.Helper()
	ctx := context.Background()
	out := map[string]string{}
	for _, table := range shop.Tables() {
		rows, err := db.QueryContext(ctx, "SELECT * FROM "+table)
		if err != nil {
			t.Fatalf("dump %s: %v", table, err)
		}
		cols, _ := rows.Columns()
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				rows.Close()
				t.Fatalf("dump %s: %v", table, err)
			}
			var b strings.Builder
			for i, c := range cols {
				fmt.Fprintf(&b, "%s=%s;", c, text(vals[i]))
			}
			out[table+"/"+text(vals[0])] = b.String()
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			t.Fatalf("dump %s: %v", table, err)
		}
	}
	return out
}

// text is a scanned value as text.
func text(v any) string {
	if b, ok := v.([]byte); ok {
		return string(b)
	}
	return fmt.Sprint(v)
}

// Redis is the sample shop's Redis: the map's sessions system with every
// key pattern under a random prefix of the test's own.
type Redis struct {
	System *datamap.System
	Client *goredis.Client
	Prefix string
}

// NewRedis connects to the Redis server testsvc names (skipping or failing
// t if it is unreachable) and returns the sessions system under a fresh
// prefix, "lethe_test_<random hex>:". Its keys are deleted when t ends.
func NewRedis(t testing.TB, m *datamap.Manifest) *Redis {
	t.Helper()
	url := testsvc.Redis(t)
	r := &Redis{System: systemOf(t, m, "sessions"), Prefix: randomName("lethe_test_") + ":"}
	orig := r.System.Keys
	r.System.Keys = nil
	for _, k := range orig {
		k.Pattern = r.Prefix + k.Pattern
		r.System.Keys = append(r.System.Keys, k)
	}
	r.System.Connection = SecretFile(t, url)
	opt, err := goredis.ParseURL(url)
	if err != nil {
		t.Fatalf("LETHE_TEST_REDIS is not a redis:// URL")
	}
	r.Client = goredis.NewClient(opt)
	t.Cleanup(func() {
		ctx := context.Background()
		if keys, _ := r.Client.Keys(ctx, r.Prefix+"*").Result(); len(keys) > 0 {
			r.Client.Del(ctx, keys...)
		}
		r.Client.Close()
	})
	return r
}

// Seed writes the shop's Redis data for cs (shop.SeedRedis).
func (r *Redis) Seed(t testing.TB, cs []shop.Customer) {
	t.Helper()
	if err := shop.SeedRedis(context.Background(), r.Client, r.Prefix, cs); err != nil {
		t.Fatal(err)
	}
}

// Dump reads every key under the prefix: item key → "key=…;" and the
// value, fields, elements or members (sorted where Redis keeps no order).
func (r *Redis) Dump(t testing.TB) map[string]string {
	t.Helper()
	ctx := context.Background()
	keys, err := r.Client.Keys(ctx, r.Prefix+"*").Result()
	if err != nil {
		t.Fatalf("dump redis: %v", err)
	}
	out := map[string]string{}
	for _, k := range keys {
		var b strings.Builder
		fmt.Fprintf(&b, "key=%s;", k)
		switch r.Client.Type(ctx, k).Val() {
		case "string":
			fmt.Fprintf(&b, "value=%s;", r.Client.Get(ctx, k).Val())
		case "hash":
			h := r.Client.HGetAll(ctx, k).Val()
			for _, f := range slices.Sorted(maps.Keys(h)) {
				fmt.Fprintf(&b, "%s=%s;", f, h[f])
			}
		case "list":
			for _, v := range r.Client.LRange(ctx, k, 0, -1).Val() {
				fmt.Fprintf(&b, "value=%s;", v)
			}
		case "set":
			ms := r.Client.SMembers(ctx, k).Val()
			slices.Sort(ms)
			for _, v := range ms {
				fmt.Fprintf(&b, "member=%s;", v)
			}
		case "zset":
			for _, z := range r.Client.ZRangeWithScores(ctx, k, 0, -1).Val() {
				fmt.Fprintf(&b, "member=%v;score=%v;", z.Member, z.Score)
			}
		}
		out[k] = b.String()
	}
	return out
}

// Files is the sample shop's uploads directory.
type Files struct {
	System *datamap.System
	Root   string
}

// NewFiles writes the uploads of cs (shop.SeedFiles) under a temporary
// root and returns the map's uploads system on it.
func NewFiles(t testing.TB, m *datamap.Manifest, cs []shop.Customer) *Files {
	t.Helper()
	f := &Files{System: systemOf(t, m, "uploads"), Root: t.TempDir()}
	if err := shop.SeedFiles(f.Root, cs); err != nil {
		t.Fatal(err)
	}
	f.System.Connection = datamap.SecretRef{Path: f.Root}
	return f
}

// Dump reads every file under the root: item path → contents. Emptied
// directories are left out; the files say what matters.
func (f *Files) Dump(t testing.TB) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(f.Root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		out[p] = string(b)
		return nil
	})
	if err != nil {
		t.Fatalf("dump files: %v", err)
	}
	return out
}

// ThirdParty is the sample shop's mail provider: an HTTPS server in the
// test's process that holds the newsletter subscribers' emails and names
// and answers Lethe's signed requests (find, export, erase, rectify) as
// the webhook connector documents. Requests without a valid signature are
// refused with 401. It is safe for concurrent use.
type ThirdParty struct {
	// System is the map's mailer system, pointed at the server, its
	// secret in a file.
	System *datamap.System
	// Client trusts the server's certificate.
	Client *http.Client
	// Secret is the HMAC secret both sides sign with.
	Secret []byte

	mu   sync.Mutex
	held map[string]contact // by email
	next int
	// deferErase answers an erasure of someone held with 202, to be
	// acknowledged later through Lethe's callback.
	deferErase bool
	acks       map[string]webhook.Callback // request ID → its acknowledgement, once erased
	erased     map[string]int              // email → erasures that removed something
	down       bool
}

// contact is a record the third party holds.
type contact struct {
	id          int // the third party's own
	email, name string
}

// NewThirdParty starts the mail provider holding the newsletter
// subscribers among cs. With deferErase, it erases when asked but answers
// 202, leaving the acknowledgement (Acknowledgement) for the test to send
// to Lethe's callback; otherwise it answers every request at once. The
// server stops when t ends.
func NewThirdParty(t testing.TB, m *datamap.Manifest, cs []shop.Customer, deferErase bool) *ThirdParty {
	t.Helper()
	tp := &ThirdParty{Secret: []byte(randomName("mailer-secret-")), held: map[string]contact{},
		deferErase: deferErase, acks: map[string]webhook.Callback{}, erased: map[string]int{}}
	for _, c := range cs {
		if c.Newsletter {
			tp.next++
			tp.held[c.Email] = contact{tp.next, c.Email, c.FullName}
		}
	}
	ts := httptest.NewTLSServer(tp)
	t.Cleanup(ts.Close)
	tp.Client = ts.Client()
	tp.System = systemOf(t, m, "mailer")
	wh := *tp.System.Webhook
	wh.URL = ts.URL + "/lethe"
	tp.System.Webhook = &wh
	tp.System.Connection = SecretFile(t, string(tp.Secret))
	return tp
}

// Open opens the webhook connector on the third party.
func (tp *ThirdParty) Open(ctx context.Context) (*webhook.Conn, error) {
	return webhook.Open(ctx, tp.System, webhook.Options{HTTPClient: tp.Client})
}

// SetDown makes the third party answer every request 503 (true), or
// serve again (false).
func (tp *ThirdParty) SetDown(down bool) {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	tp.down = down
}

// ServeHTTP implements http.Handler.
func (tp *ThirdParty) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err := webhook.VerifySignature(tp.Secret, r.Header.Get(webhook.SignatureHeader), body, time.Now(), 0); err != nil {
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	var req webhook.Request
	if err := json.Unmarshal(body, &req); err != nil {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	tp.mu.Lock()
	defer tp.mu.Unlock()
	if tp.down {
		http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
		return
	}
	email := req.Identifiers["email"]
	rec, ok := tp.held[email]
	n := int64(0)
	if ok {
		n = 1
	}
	resp := webhook.Response{Status: webhook.StatusDone, Count: &n}
	switch req.Action {
	case webhook.ActionExport:
		if ok {
			resp.Records = []webhook.Record{{Location: "contacts", Fields: map[string]any{"email": rec.email, "name": rec.name}}}
		}
	case webhook.ActionErase:
		if !ok {
			break
		}
		delete(tp.held, email)
		tp.erased[email]++
		if tp.deferErase {
			tp.acks[req.RequestID] = webhook.Callback{RequestID: req.RequestID, Tenant: req.Tenant, Action: webhook.ActionErase, Status: webhook.StatusDone, Count: &n}
			w.WriteHeader(http.StatusAccepted)
			json.NewEncoder(w).Encode(webhook.Response{Status: webhook.StatusAccepted})
			return
		}
	case webhook.ActionRectify:
		if !ok {
			break
		}
		if v, set := req.Values["user.name"]; set {
			rec.name = v
		}
		tp.held[email] = rec
	}
	json.NewEncoder(w).Encode(resp)
}

// Acknowledgement returns the signed callback acknowledging the erasure
// the third party accepted for a request: the Lethe-Signature header and
// the body, as it would post them to POST /v1/callbacks/mailer. ok is
// false until it was asked.
func (tp *ThirdParty) Acknowledgement(requestID string) (signature string, body []byte, ok bool) {
	tp.mu.Lock()
	cb, ok := tp.acks[requestID]
	tp.mu.Unlock()
	if !ok {
		return "", nil, false
	}
	body, _ = json.Marshal(cb) // strings and a number always marshal
	return webhook.Sign(tp.Secret, body, time.Now()), body, true
}

// Erased returns how many erasures removed the data held under email: 1
// once erased, whatever the retries.
func (tp *ThirdParty) Erased(email string) int {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	return tp.erased[email]
}

// Dump returns what the third party holds: item "contacts/<its record
// number>" → "email;name". Item names hold no personal value, so that
// tests can name them in failures.
func (tp *ThirdParty) Dump() map[string]string {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	out := map[string]string{}
	for _, c := range tp.held {
		out["contacts/"+strconv.Itoa(c.id)] = c.email + ";" + c.name
	}
	return out
}

// Systems are the six sample systems of the shop, seeded with the same
// customers: the shop's database in PostgreSQL, MariaDB and SQLite
// (shop_postgres, shop_mysql, shop_sqlite), Redis (sessions), the uploads
// directory (uploads) and the mail provider (mailer).
type Systems struct {
	Manifest   *datamap.Manifest
	Databases  []*Database // PostgreSQL, MariaDB, SQLite
	Redis      *Redis
	Files      *Files
	ThirdParty *ThirdParty
	Customers  []shop.Customer
}

// NewSystems builds the six systems with n customers (seed 1), the third
// party deferring erasures if deferErase (see NewThirdParty). It skips t,
// or fails it under LETHE_REQUIRE_SERVICES=1, when PostgreSQL, MariaDB or
// Redis is unreachable.
func NewSystems(t testing.TB, n int, deferErase bool) *Systems {
	t.Helper()
	s := &Systems{Manifest: Shop(t)}
	s.Redis = NewRedis(t, s.Manifest) // first: the quickest to find unreachable
	for _, kind := range []string{datamap.KindPostgres, datamap.KindMySQL, datamap.KindSQLite} {
		d := NewDatabase(t, s.Manifest, kind, "shop_"+kind)
		s.Customers = d.Seed(t, n)
		s.Databases = append(s.Databases, d)
	}
	s.Redis.Seed(t, s.Customers)
	s.Files = NewFiles(t, s.Manifest, s.Customers)
	s.ThirdParty = NewThirdParty(t, s.Manifest, s.Customers, deferErase)
	return s
}

// Names returns the systems' names, databases first.
func (s *Systems) Names() []string {
	var out []string
	for _, d := range s.Databases {
		out = append(out, d.System.Name)
	}
	return append(out, s.Redis.System.Name, s.Files.System.Name, s.ThirdParty.System.Name)
}

// Open opens a system by name with its real connector. The caller must
// Close it.
func (s *Systems) Open(ctx context.Context, name string) (connector.Connector, error) {
	for _, d := range s.Databases {
		if d.System.Name != name {
			continue
		}
		switch d.Kind {
		case datamap.KindPostgres:
			return postgres.Open(ctx, d.System)
		case datamap.KindMySQL:
			return mysql.Open(ctx, d.System)
		}
		return sqlite.Open(ctx, d.System)
	}
	switch name {
	case s.Redis.System.Name:
		return redis.Open(ctx, s.Redis.System)
	case s.Files.System.Name:
		return files.Open(ctx, s.Files.System)
	case s.ThirdParty.System.Name:
		return s.ThirdParty.Open(ctx)
	}
	return nil, fmt.Errorf("no system %s", name)
}

// Link sets a customer's lethe_id in every database.
func (s *Systems) Link(t testing.TB, customerID int64, subjectID string) {
	t.Helper()
	for _, d := range s.Databases {
		d.Link(t, customerID, subjectID)
	}
}

// Dump returns every system's dump, by system name.
func (s *Systems) Dump(t testing.TB) map[string]map[string]string {
	t.Helper()
	out := map[string]map[string]string{}
	for _, d := range s.Databases {
		out[d.System.Name] = d.Dump(t)
	}
	out[s.Redis.System.Name] = s.Redis.Dump(t)
	out[s.Files.System.Name] = s.Files.Dump(t)
	out[s.ThirdParty.System.Name] = s.ThirdParty.Dump()
	return out
}

// Subject is the customer as a connector looks for them, with their seeded
// subject ID and their identifiers.
func Subject(c shop.Customer, key []byte) connector.Subject {
	return connector.Subject{ID: c.LetheID, Identifiers: shop.Identifiers(c), PseudonymKey: key, Now: time.Now()}
}
