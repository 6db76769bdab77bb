package jobs

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/riverqueue/river"
)

// benchArgs are the args of a trivial job.
type benchArgs struct {
	N int `json:"n"`
}

func (benchArgs) Kind() string { return "bench" }

// benchJobs is how many jobs each run of BenchmarkThroughput works.
const benchJobs = 10_000

// BenchmarkThroughput inserts 10,000 trivial jobs in batches (InsertMany),
// then starts a queue and waits until all have completed. It reports
// inserts/s and jobs/s, the rate at which the queue worked them from its
// start to the last completion; an op is one such run. River fetches at
// most every FetchCooldown (100 ms) while slots are free, so a queue works
// at most its workers ÷ 100 ms jobs a second: 40 with the default 4.
// The runs here have more workers, to find what the database allows.
//
//	go test ./internal/jobs -run '^$' -bench Throughput -benchtime 1x
func BenchmarkThroughput(b *testing.B) {
	for _, e := range engines {
		for _, workers := range []int{100, 1000} {
			b.Run(fmt.Sprintf("%s/workers=%d", e.name, workers), func(b *testing.B) {
				var inserting, working time.Duration
				for b.Loop() {
					ins, work := benchRun(b, e, workers)
					inserting += ins
					working += work
				}
				runs := float64(b.N) * benchJobs
				b.ReportMetric(runs/inserting.Seconds(), "inserts/s")
				b.ReportMetric(runs/working.Seconds(), "jobs/s")
			})
		}
	}
}

// benchRun runs benchJobs jobs on a fresh database of e with a queue of
// workers, and returns how long inserting and working them took.
func benchRun(b *testing.B, e engine, workers int) (inserting, working time.Duration) {
	ctx := b.Context()
	cfg := e.open(b)
	cfg.Workers = river.NewWorkers()
	river.AddWorker(cfg.Workers, river.WorkFunc(func(context.Context, *river.Job[benchArgs]) error { return nil }))
	cfg.Queues = map[string]int{DefaultQueue: workers}
	cfg.testOnly = true
	if err := Migrate(ctx, cfg); err != nil {
		b.Fatal(err)
	}
	q, err := New(ctx, cfg)
	if err != nil {
		b.Fatal(err)
	}

	t0 := time.Now()
	const batch = 1000
	params := make([]river.InsertManyParams, batch)
	for i := 0; i < benchJobs; i += batch {
		for j := range params {
			params[j].Args = benchArgs{N: i + j}
		}
		if err := q.InsertMany(ctx, params); err != nil {
			b.Fatal(err)
		}
	}
	inserting = time.Since(t0)

	t0 = time.Now()
	if err := q.Start(ctx); err != nil {
		b.Fatal(err)
	}
	waitFor(b, "every job to complete", func() bool { return completed(b, cfg) == benchJobs })
	working = time.Since(t0)

	stop, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if err := q.Stop(stop); err != nil {
		b.Fatal(err)
	}
	return inserting, working
}

// completed counts the completed jobs in cfg's database.
func completed(b testing.TB, cfg Config) int {
	const query = `SELECT count(*) FROM river_job WHERE state = 'completed'`
	var n int
	var err error
	if cfg.SQLite != nil {
		err = cfg.SQLite.QueryRowContext(b.Context(), query).Scan(&n)
	} else {
		err = cfg.Postgres.QueryRow(b.Context(), query).Scan(&n)
	}
	if err != nil {
		b.Fatal(err)
	}
	return n
}
