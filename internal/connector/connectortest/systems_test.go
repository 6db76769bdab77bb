package connectortest_test

import (
	"context"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/lethe-privacy/lethe/examples/shop"
	"github.com/lethe-privacy/lethe/internal/connector"
	"github.com/lethe-privacy/lethe/internal/connector/connectortest"
	"github.com/lethe-privacy/lethe/internal/connector/files"
	"github.com/lethe-privacy/lethe/internal/connector/redis"
	"github.com/lethe-privacy/lethe/internal/datamap"
)

// customers seeds n customers into an SQLite shop, for the values Redis,
// files and the third party hold of them.
func customers(t testing.TB, m *datamap.Manifest, n int) []shop.Customer {
	t.Helper()
	return connectortest.NewDatabase(t, m, datamap.KindSQLite, "shop").Seed(t, n)
}

// runContract runs the contract suite on conn for the first customer of
// cs that pick accepts, every other customer its others; values gives
// what conn holds of a customer.
func runContract(t *testing.T, conn connector.Connector, cs []shop.Customer, pick func(shop.Customer) bool, values func(shop.Customer) []string, dump func(t *testing.T) map[string]string) {
	t.Helper()
	byID := map[string]shop.Customer{}
	var me shop.Customer
	var others []connector.Subject
	for _, c := range cs {
		byID[c.LetheID] = c
		if me.ID == 0 && pick(c) {
			me = c
		} else {
			others = append(others, connectortest.Subject(c, nil))
		}
	}
	if me.ID == 0 {
		t.Fatal("no seeded customer fits the test")
	}
	connectortest.Run(t, connectortest.Env{
		Conn:    conn,
		Subject: connectortest.Subject(me, nil),
		Others:  others,
		Values:  func(s connector.Subject) []string { return values(byID[s.ID]) },
		Dump:    dump,
	})
}

func TestRedisContract(t *testing.T) {
	ctx := context.Background()
	m := connectortest.Shop(t)
	cs := customers(t, m, 20)
	r := connectortest.NewRedis(t, m)
	r.Seed(t, cs)
	conn, err := redis.Open(ctx, r.System)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// One with everything: a session, and in the newsletter.
	runContract(t, conn, cs, func(c shop.Customer) bool { return c.Newsletter && len(c.IPs) > 0 && len(c.Views) > 0 },
		func(c shop.Customer) []string {
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
		func(t *testing.T) map[string]string { return r.Dump(t) })
}

func TestFilesContract(t *testing.T) {
	m := connectortest.Shop(t)
	cs := customers(t, m, 20)
	f := connectortest.NewFiles(t, m, cs)
	conn, err := files.Open(context.Background(), f.System)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	runContract(t, conn, cs, func(c shop.Customer) bool { return c.Avatar != "" },
		func(c shop.Customer) []string {
			if c.Avatar != "" {
				return []string{c.Avatar}
			}
			return nil
		},
		func(t *testing.T) map[string]string { return f.Dump(t) })
}

func TestWebhookContract(t *testing.T) {
	m := connectortest.Shop(t)
	cs := customers(t, m, 20)
	tp := connectortest.NewThirdParty(t, m, cs, false)
	conn, err := tp.Open(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	runContract(t, conn, cs, func(c shop.Customer) bool { return c.Newsletter },
		func(c shop.Customer) []string {
			if c.Newsletter {
				return []string{c.Email, c.FullName}
			}
			return nil
		},
		func(t *testing.T) map[string]string { return tp.Dump() })
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
	sys := connectortest.NewSystems(b, n, false)
	cs := sys.Customers
	var conns []connector.Connector
	for _, name := range sys.Names() {
		conn, err := sys.Open(ctx, name)
		if err != nil {
			b.Fatal(err)
		}
		defer conn.Close()
		conns = append(conns, conn)
	}

	key := make([]byte, 32)
	for _, mode := range []string{"serial", "parallel"} {
		b.Run(mode, func(b *testing.B) {
			var times []time.Duration
			next := map[string]int{"serial": 0, "parallel": n / 2}[mode]
			for b.Loop() {
				if next >= len(cs) || (mode == "serial" && next >= n/2) {
					b.Fatalf("only %d customers seeded per mode: use -benchtime %dx or fewer", n/2, n/2)
				}
				s := connectortest.Subject(cs[next], key)
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
