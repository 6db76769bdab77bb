package request_test

import (
	"context"
	"sort"
	"testing"
	"time"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/examples/shop"
)

// BenchmarkErasureEndToEnd: one verified erasure at a time, from creation
// through approval to completion with the receipt signed, across the
// sample shop's database (SQLite) and uploads and the vault, on the job
// queue. Reports the median and the 95th percentile per request.
func BenchmarkErasureEndToEnd(b *testing.B) {
	const n = 200
	w := newWorldN(b, n, 32)
	ctx := context.Background()
	var times []time.Duration
	i := 0
	for b.Loop() {
		if i >= n {
			b.Fatalf("only %d customers: use -benchtime %dx or fewer", n, n)
		}
		c := w.cs[i]
		i++
		start := time.Now()
		r, err := w.svc.Create(ctx, dpo, lethe.DefaultTenant, lethe.RequestAsk{Type: lethe.RequestErasure, SubjectID: w.subjects[c.ID], Contact: c.Email, Verified: true})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := w.svc.Approve(ctx, dpo, lethe.DefaultTenant, r.ID); err != nil {
			b.Fatal(err)
		}
		if done := w.waitFor(b, r.ID, func(s lethe.RequestState) bool { return !s.Open() }); done.State != lethe.RequestCompleted {
			b.Fatalf("got %s", done.State)
		}
		times = append(times, time.Since(start))
	}
	sort.Slice(times, func(i, j int) bool { return times[i] < times[j] })
	b.ReportMetric(float64(times[len(times)/2].Milliseconds()), "p50-ms")
	b.ReportMetric(float64(times[len(times)*95/100].Milliseconds()), "p95-ms")
}

// BenchmarkQueuedErasures queues 10,000 approved erasures at once and
// waits until every one completed. Run with -benchtime 1x.
func BenchmarkQueuedErasures(b *testing.B) {
	const n = 10_000
	w := newWorldN(b, n, 32)
	ctx := context.Background()
	for b.Loop() {
		start := time.Now()
		ids := make([]string, 0, n)
		for _, c := range w.cs {
			r, err := w.svc.Create(ctx, dpo, lethe.DefaultTenant, lethe.RequestAsk{Type: lethe.RequestErasure, SubjectID: w.subjects[c.ID], Contact: c.Email, Verified: true})
			if err != nil {
				b.Fatal(err)
			}
			if _, err := w.svc.Approve(ctx, dpo, lethe.DefaultTenant, r.ID); err != nil {
				b.Fatal(err)
			}
			ids = append(ids, r.ID)
		}
		queued := time.Since(start)
		for _, id := range ids {
			deadline := time.Now().Add(20 * time.Minute)
			for {
				r, err := w.store.Request(ctx, lethe.DefaultTenant, id)
				if err != nil {
					b.Fatal(err)
				}
				if r.State == lethe.RequestCompleted {
					break
				}
				if !r.State.Open() || time.Now().After(deadline) {
					b.Fatalf("request %s: %s", id, r.State)
				}
				time.Sleep(100 * time.Millisecond)
			}
		}
		total := time.Since(start)
		b.ReportMetric(queued.Seconds(), "s-to-queue")
		b.ReportMetric(total.Seconds(), "s-total")
		b.ReportMetric(float64(n)/total.Seconds(), "requests/s")
	}
}

// BenchmarkAccessLarge: an access request for a customer with 100,000
// activity rows, from creation to the archive built, sealed and its link
// mailed; plain, and encrypted to a passphrase (age, scrypt).
func BenchmarkAccessLarge(b *testing.B) {
	w := newWorldN(b, 20, 32)
	ctx := context.Background()
	c := w.cs[3]
	if err := shop.SeedActivity(ctx, w.shopDB, shop.SQLite, c.ID, 100_000); err != nil {
		b.Fatal(err)
	}
	for _, pass := range []string{"", "correct horse battery staple"} {
		name := "plain"
		if pass != "" {
			name = "passphrase"
		}
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				r, err := w.svc.Create(ctx, dpo, lethe.DefaultTenant, lethe.RequestAsk{Type: lethe.RequestAccess, SubjectID: w.subjects[c.ID], Contact: c.Email, Verified: true, Passphrase: pass})
				if err != nil {
					b.Fatal(err)
				}
				if done := w.waitFor(b, r.ID, func(s lethe.RequestState) bool { return !s.Open() }); done.State != lethe.RequestCompleted {
					b.Fatalf("got %s", done.State)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/request")
		})
	}
}
