package relational_test

import (
	"context"
	"crypto/rand"
	"testing"

	"github.com/lethe-privacy/lethe/examples/shop"
	"github.com/lethe-privacy/lethe/internal/connector"
	"github.com/lethe-privacy/lethe/internal/connector/connectortest"
)

// BenchmarkFindExport100k finds and exports one customer who has 100,000
// activity rows, in each engine.
func BenchmarkFindExport100k(b *testing.B) {
	for _, e := range engines {
		b.Run(e.name, func(b *testing.B) {
			conn, db, cs := seeded(b, e, 20)
			if err := shop.SeedActivity(context.Background(), db, e.name, cs[7].ID, 100_000); err != nil {
				b.Fatal(err)
			}
			s := subjectOf(cs[7], nil)
			ctx := context.Background()
			for b.Loop() {
				found, err := conn.Find(ctx, s)
				if err != nil {
					b.Fatal(err)
				}
				var sink connectortest.Sink
				counts, err := conn.Export(ctx, s, &sink)
				if err != nil {
					b.Fatal(err)
				}
				if total(found) < 100_000 || total(counts) != total(found) {
					b.Fatalf("found %d, exported %d", total(found), total(counts))
				}
			}
			b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/subject")
		})
	}
}

// BenchmarkEraseSequence erases 10,000 customers one after another
// through the connector, in each engine. Run with -benchtime 10000x.
func BenchmarkEraseSequence(b *testing.B) {
	for _, e := range engines {
		b.Run(e.name, func(b *testing.B) {
			const n = 10_000
			conn, _, cs := seeded(b, e, n)
			key := make([]byte, 32)
			rand.Read(key)
			ctx := context.Background()
			i := 0
			for b.Loop() {
				if i >= n {
					b.Fatalf("only %d customers: use -benchtime %dx or fewer", n, n)
				}
				if _, err := conn.Erase(ctx, subjectOf(cs[i], key)); err != nil {
					b.Fatal(err)
				}
				i++
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "subjects/s")
		})
	}
}

func total(cs []connector.Count) int64 {
	var n int64
	for _, c := range cs {
		n += c.Count
	}
	return n
}
