package audit

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"
)

// BenchmarkAppend measures durable appends (each acknowledged after
// fdatasync) of one event per call, by 1 and by 256 concurrent callers.
// It reports appends/s and latency percentiles.
func BenchmarkAppend(b *testing.B) {
	for _, callers := range []int{1, 256} {
		b.Run(fmt.Sprintf("callers=%d", callers), func(b *testing.B) {
			e := newEnv(b)
			l := e.open(b)
			defer l.Close()
			ev := entry(1)
			lat := make([][]time.Duration, callers)
			var next sync.WaitGroup
			per := b.N/callers + 1
			b.ResetTimer()
			start := time.Now()
			for c := range callers {
				next.Add(1)
				go func() {
					defer next.Done()
					ds := make([]time.Duration, 0, per)
					for range per {
						t := time.Now()
						if _, err := l.Append(context.Background(), ev); err != nil {
							b.Error(err)
							return
						}
						ds = append(ds, time.Since(t))
					}
					lat[c] = ds
				}()
			}
			next.Wait()
			elapsed := time.Since(start)
			b.StopTimer()
			all := slices.Concat(lat...)
			slices.Sort(all)
			b.ReportMetric(float64(len(all))/elapsed.Seconds(), "appends/s")
			b.ReportMetric(float64(all[len(all)/2].Microseconds()), "p50-µs")
			b.ReportMetric(float64(all[len(all)*99/100].Microseconds()), "p99-µs")
		})
	}
}

// BenchmarkVerify measures Verify over a log of 1,000,000 events.
func BenchmarkVerify(b *testing.B) {
	e := newEnv(b)
	l := e.open(b)
	const n = 1_000_000
	appendN(b, l, 0, n, 5000)
	if err := l.Close(); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		r := e.verify(b)
		if !r.OK() || r.Entries != n {
			b.Fatalf("verify: %+v", r)
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
}
