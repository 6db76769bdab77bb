package connectortest_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	_ "modernc.org/sqlite"

	"github.com/lethe-privacy/lethe/examples/shop"
	"github.com/lethe-privacy/lethe/internal/connector"
	"github.com/lethe-privacy/lethe/internal/connector/connectortest"
	"github.com/lethe-privacy/lethe/internal/connector/files"
	"github.com/lethe-privacy/lethe/internal/connector/redis"
	"github.com/lethe-privacy/lethe/internal/connector/webhook"
	"github.com/lethe-privacy/lethe/internal/datamap"
	"github.com/lethe-privacy/lethe/internal/testsvc"
)

// example is the sample shop's data map.
func example(t testing.TB) *datamap.Manifest {
	t.Helper()
	m, err := datamap.Load(filepath.Join("..", "..", "..", "examples", "shop", "lethe.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// sqliteShop is an empty shop database in a temporary SQLite file.
func sqliteShop(t testing.TB) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(t.TempDir(), "shop.db")+"?_pragma=foreign_keys(1)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := shop.Create(context.Background(), db, shop.SQLite); err != nil {
		t.Fatal(err)
	}
	return db
}

// customers seeds n customers into an SQLite shop, for the values Redis,
// files and the third party hold of them.
func customers(t testing.TB, n int) []shop.Customer {
	t.Helper()
	db := sqliteShop(t)
	cs, err := shop.Seed(context.Background(), db, shop.SQLite, n, 1)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

func subject(c shop.Customer, key []byte) connector.Subject {
	return connector.Subject{ID: c.LetheID, Identifiers: shop.Identifiers(c), PseudonymKey: key, Now: time.Now()}
}

// redisSystem is the example's Redis system with every pattern under a
// random prefix, so that the test has its own keys.
func redisSystem(t testing.TB, m *datamap.Manifest) (*datamap.System, *goredis.Client, string) {
	t.Helper()
	url := testsvc.Redis(t)
	sys, _ := m.System("sessions")
	cp := *sys
	prefix := fmt.Sprintf("t%d:", time.Now().UnixNano())
	cp.Keys = nil
	for _, k := range sys.Keys {
		k.Pattern = prefix + k.Pattern
		cp.Keys = append(cp.Keys, k)
	}
	os.Setenv("LETHE_TEST_SHOP_REDIS", url)
	cp.Connection = datamap.SecretRef{Env: "LETHE_TEST_SHOP_REDIS"}
	opt, _ := goredis.ParseURL(url)
	rdb := goredis.NewClient(opt)
	t.Cleanup(func() {
		ctx := context.Background()
		keys, _ := rdb.Keys(ctx, prefix+"*").Result()
		if len(keys) > 0 {
			rdb.Del(ctx, keys...)
		}
		rdb.Close()
	})
	return &cp, rdb, prefix
}

// redisDump serialises every key under prefix.
func redisDump(t *testing.T, rdb *goredis.Client, prefix string) map[string]string {
	ctx := context.Background()
	keys, err := rdb.Keys(ctx, prefix+"*").Result()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, k := range keys {
		var b strings.Builder
		fmt.Fprintf(&b, "key=%s;", k)
		switch rdb.Type(ctx, k).Val() {
		case "string":
			fmt.Fprintf(&b, "value=%s;", rdb.Get(ctx, k).Val())
		case "hash":
			h := rdb.HGetAll(ctx, k).Val()
			fields := make([]string, 0, len(h))
			for f := range h {
				fields = append(fields, f)
			}
			sort.Strings(fields)
			for _, f := range fields {
				fmt.Fprintf(&b, "%s=%s;", f, h[f])
			}
		case "list":
			for _, v := range rdb.LRange(ctx, k, 0, -1).Val() {
				fmt.Fprintf(&b, "value=%s;", v)
			}
		case "set":
			ms := rdb.SMembers(ctx, k).Val()
			sort.Strings(ms)
			for _, v := range ms {
				fmt.Fprintf(&b, "member=%s;", v)
			}
		case "zset":
			for _, z := range rdb.ZRangeWithScores(ctx, k, 0, -1).Val() {
				fmt.Fprintf(&b, "member=%v;score=%v;", z.Member, z.Score)
			}
		}
		out[k] = b.String()
	}
	return out
}

func TestRedisContract(t *testing.T) {
	ctx := context.Background()
	m := example(t)
	cs := customers(t, 20)
	sys, rdb, prefix := redisSystem(t, m)
	if err := shop.SeedRedis(ctx, rdb, prefix, cs); err != nil {
		t.Fatal(err)
	}
	conn, err := redis.Open(ctx, sys)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	byID := map[string]shop.Customer{}
	for _, c := range cs {
		byID[c.LetheID] = c
	}
	var me shop.Customer
	for _, c := range cs { // one with everything: a session, and in the newsletter
		if c.Newsletter && len(c.IPs) > 0 && len(c.Views) > 0 {
			me = c
			break
		}
	}
	var others []connector.Subject
	for _, c := range cs {
		if c.ID != me.ID {
			others = append(others, subject(c, nil))
		}
	}
	connectortest.Run(t, connectortest.Env{
		Conn:    conn,
		Subject: subject(me, nil),
		Others:  others,
		Values: func(s connector.Subject) []string {
			c := byID[s.ID]
			id := strconv.FormatInt(c.ID, 10)
			v := []string{":" + id + ";", "member=" + id + ";"} // in its keys' names, in the leaderboard
			if len(c.IPs) > 0 {
				v = append(v, c.IPs[0], c.UserAgents[0])
			}
			if c.Newsletter {
				v = append(v, c.Email)
			}
			return v
		},
		Dump: func(t *testing.T) map[string]string { return redisDump(t, rdb, prefix) },
	})
}

// filesSystem seeds the uploads of cs into a temporary root and opens the
// example's uploads system on it.
func filesSystem(t testing.TB, m *datamap.Manifest, cs []shop.Customer) (*files.Conn, string) {
	t.Helper()
	root := t.TempDir()
	if err := shop.SeedFiles(root, cs); err != nil {
		t.Fatal(err)
	}
	sys, _ := m.System("uploads")
	cp := *sys
	cp.Connection = datamap.SecretRef{Path: root}
	conn, err := files.Open(context.Background(), &cp)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn, root
}

func TestFilesContract(t *testing.T) {
	m := example(t)
	cs := customers(t, 20)
	conn, root := filesSystem(t, m, cs)
	byID := map[string]shop.Customer{}
	var me shop.Customer
	var others []connector.Subject
	for _, c := range cs {
		byID[c.LetheID] = c
		if me.ID == 0 && c.Avatar != "" {
			me = c
		} else {
			others = append(others, subject(c, nil))
		}
	}
	connectortest.Run(t, connectortest.Env{
		Conn:    conn,
		Subject: subject(me, nil),
		Others:  others,
		Values: func(s connector.Subject) []string {
			if a := byID[s.ID].Avatar; a != "" {
				return []string{a}
			}
			return nil
		},
		Dump: func(t *testing.T) map[string]string {
			out := map[string]string{}
			filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
				if err != nil {
					t.Fatal(err)
				}
				if d.IsDir() { // emptied directories go too; the files say what matters
					return nil
				}
				b, err := os.ReadFile(p)
				if err != nil {
					t.Fatal(err)
				}
				out[p] = string(b)
				return nil
			})
			return out
		},
	})
}

// thirdParty is a mail provider that holds people's emails and names, and
// answers Lethe's signed requests.
type thirdParty struct {
	secret []byte
	mu     sync.Mutex
	held   map[string][2]string // email → email, name
}

func (tp *thirdParty) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	if err := webhook.VerifySignature(tp.secret, r.Header.Get(webhook.SignatureHeader), body, time.Now(), 0); err != nil {
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
	rec, ok := tp.held[req.Identifiers["email"]]
	n := int64(0)
	if ok {
		n = 1
	}
	resp := webhook.Response{Status: webhook.StatusDone, Count: &n}
	switch req.Action {
	case webhook.ActionExport:
		if ok {
			resp.Records = []webhook.Record{{Location: "contacts", Fields: map[string]any{"email": rec[0], "name": rec[1]}}}
		}
	case webhook.ActionErase:
		delete(tp.held, req.Identifiers["email"])
	}
	json.NewEncoder(w).Encode(resp)
}

func (tp *thirdParty) dump() map[string]string {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	out := map[string]string{}
	for k, v := range tp.held {
		out["contacts/"+k] = v[0] + ";" + v[1]
	}
	return out
}

// webhookSystem starts the third party holding the newsletter
// subscribers among cs, and opens the example's mailer system on it.
func webhookSystem(t testing.TB, m *datamap.Manifest, cs []shop.Customer) (*webhook.Conn, *thirdParty) {
	t.Helper()
	tp := &thirdParty{secret: []byte("the mailer's shared secret"), held: map[string][2]string{}}
	for _, c := range cs {
		if c.Newsletter {
			tp.held[c.Email] = [2]string{c.Email, c.FullName}
		}
	}
	ts := httptest.NewTLSServer(tp)
	t.Cleanup(ts.Close)
	sys, _ := m.System("mailer")
	cp := *sys
	wh := *sys.Webhook
	wh.URL = ts.URL + "/lethe"
	cp.Webhook = &wh
	os.Setenv("LETHE_TEST_MAILER_SECRET", string(tp.secret))
	cp.Connection = datamap.SecretRef{Env: "LETHE_TEST_MAILER_SECRET"}
	conn, err := webhook.Open(context.Background(), &cp, webhook.Options{HTTPClient: ts.Client()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn, tp
}

func TestWebhookContract(t *testing.T) {
	m := example(t)
	cs := customers(t, 20)
	conn, tp := webhookSystem(t, m, cs)
	byID := map[string]shop.Customer{}
	var me shop.Customer
	var others []connector.Subject
	for _, c := range cs {
		byID[c.LetheID] = c
		if me.ID == 0 && c.Newsletter {
			me = c
		} else {
			others = append(others, subject(c, nil))
		}
	}
	connectortest.Run(t, connectortest.Env{
		Conn:    conn,
		Subject: subject(me, nil),
		Others:  others,
		Values: func(s connector.Subject) []string {
			if c := byID[s.ID]; c.Newsletter {
				return []string{c.Email, c.FullName}
			}
			return nil
		},
		Dump: func(t *testing.T) map[string]string { return tp.dump() },
	})
}

// BenchmarkEraseSixSystems erases one customer at a time from the six
// sample systems, connections warm: the shop in PostgreSQL, MariaDB and
// SQLite, Redis, the uploads directory and the mailer's webhook. "serial"
// runs the systems one after another; "parallel" runs them at once, as
// the request workflow does (one task per system). Reports the median and
// the 95th percentile per customer. Run with -benchtime 200x or fewer.
func BenchmarkEraseSixSystems(b *testing.B) {
	ctx := context.Background()
	const n = 450
	m := example(b)
	// The three databases, each seeded with the same customers.
	var conns []connector.Connector
	var cs []shop.Customer
	for _, e := range []struct {
		kind   string
		driver string
		fresh  func(testing.TB) (ref, dsn string)
	}{
		{datamap.KindPostgres, "pgx", func(t testing.TB) (string, string) { d := testsvc.Postgres(t); return d, d }},
		{datamap.KindMySQL, "mysql", func(t testing.TB) (string, string) { d := testsvc.MySQL(t); return d, d }},
		{datamap.KindSQLite, "sqlite", func(t testing.TB) (string, string) {
			p := filepath.Join(t.TempDir(), "shop.db")
			return p, "file:" + p + "?_pragma=foreign_keys(1)"
		}},
	} {
		ref, dsn := e.fresh(b)
		db, err := sql.Open(e.driver, dsn)
		if err != nil {
			b.Fatal(err)
		}
		defer db.Close()
		if err := shop.Create(ctx, db, e.kind); err != nil {
			b.Fatal(err)
		}
		if cs, err = shop.Seed(ctx, db, e.kind, n, 1); err != nil {
			b.Fatal(err)
		}
		sys, _ := m.System("shop")
		cp := *sys
		cp.Name, cp.Kind = "shop_"+e.kind, e.kind
		env := "LETHE_BENCH_SHOP_" + strings.ToUpper(e.kind)
		os.Setenv(env, ref)
		cp.Connection = datamap.SecretRef{Env: env}
		conn, err := openRelational(ctx, &cp)
		if err != nil {
			b.Fatal(err)
		}
		defer conn.Close()
		conns = append(conns, conn)
	}
	rsys, rdb, prefix := redisSystem(b, m)
	if err := shop.SeedRedis(ctx, rdb, prefix, cs); err != nil {
		b.Fatal(err)
	}
	rconn, err := redis.Open(ctx, rsys)
	if err != nil {
		b.Fatal(err)
	}
	defer rconn.Close()
	fconn, _ := filesSystem(b, m, cs)
	wconn, _ := webhookSystem(b, m, cs)
	conns = append(conns, rconn, fconn, wconn)

	key := make([]byte, 32)
	for _, mode := range []string{"serial", "parallel"} {
		b.Run(mode, func(b *testing.B) {
			var times []time.Duration
			next := map[string]int{"serial": 0, "parallel": n / 2}[mode]
			for b.Loop() {
				if next >= len(cs) || (mode == "serial" && next >= n/2) {
					b.Fatalf("only %d customers seeded per mode: use -benchtime %dx or fewer", n/2, n/2)
				}
				s := subject(cs[next], key)
				next++
				start := time.Now()
				erase := func(c connector.Connector) {
					if _, err := c.(connector.Eraser).Erase(ctx, s); err != nil {
						b.Error(err)
					}
				}
				if mode == "serial" {
					for _, c := range conns {
						erase(c)
					}
				} else {
					var wg sync.WaitGroup
					for _, c := range conns {
						wg.Go(func() { erase(c) })
					}
					wg.Wait()
				}
				times = append(times, time.Since(start))
			}
			sort.Slice(times, func(i, j int) bool { return times[i] < times[j] })
			b.ReportMetric(float64(times[len(times)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(times[len(times)*95/100].Microseconds())/1000, "p95-ms")
		})
	}
}
