package jobs

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	_ "modernc.org/sqlite" // the "sqlite" driver, as the data store uses

	"github.com/lethe-privacy/lethe/internal/testsvc"
)

// An engine is a database the queue runs on, for tests that run on both.
type engine struct {
	name string
	open func(t testing.TB) Config // a Config on a fresh, empty database
}

var engines = []engine{
	{"SQLite", func(t testing.TB) Config {
		return Config{SQLite: openSQLite(t, filepath.Join(t.TempDir(), "data.db"))}
	}},
	{"PostgreSQL", func(t testing.TB) Config {
		return Config{Postgres: openPostgres(t)}
	}},
}

// openSQLite opens a queue database file with OpenSQLite.
func openSQLite(t testing.TB, path string) *sql.DB {
	t.Helper()
	db, err := OpenSQLite(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// openPostgres returns a pool on a fresh PostgreSQL database.
func openPostgres(t testing.TB) *pgxpool.Pool {
	t.Helper()
	dsn := testsvc.Postgres(t)
	pool, err := pgxpool.New(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close) // before testsvc drops the database
	return pool
}

// testArgs are the args of the tests' jobs: a key, as a request's ID would
// be, and nothing personal.
type testArgs struct {
	Key string `json:"key"`
}

func (testArgs) Kind() string { return "test" }

// runs counts the runs of each key's job.
type runs struct {
	mu sync.Mutex
	n  map[string]int
}

func (r *runs) add(key string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.n == nil {
		r.n = make(map[string]int)
	}
	r.n[key]++
	return r.n[key]
}

func (r *runs) get(key string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.n[key]
}

// testConfig returns cfg with workers for testArgs that call work, and the
// settings that keep tests short: retries after 10 to 50 ms and a poll for
// jobs every 100 ms (River's FetchCooldown, which it may not be below).
func testConfig(cfg Config, work func(context.Context, *river.Job[testArgs]) error) Config {
	cfg.Workers = river.NewWorkers()
	river.AddWorker(cfg.Workers, river.WorkFunc(work))
	cfg.RetryPolicy = &Backoff{Base: 10 * time.Millisecond, Max: 50 * time.Millisecond}
	cfg.testOnly = true
	cfg.FetchPollInterval = 100 * time.Millisecond
	return cfg
}

// start migrates cfg's database and starts a Queue on it, stopped when t
// ends.
func start(t testing.TB, cfg Config) *Queue {
	t.Helper()
	ctx := t.Context()
	if err := Migrate(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	q, err := New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := q.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := q.Stop(ctx); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
	return q
}

// listJobs returns the jobs of kind "test".
func listJobs(t testing.TB, q *Queue) []*rivertype.JobRow {
	t.Helper()
	res, err := q.Client().JobList(t.Context(), river.NewJobListParams().Kinds("test").First(10_000))
	if err != nil {
		t.Fatal(err)
	}
	return res.Jobs
}

// waitFor polls until ok returns true. Its timeout only keeps a broken
// test from hanging: no test asserts a duration.
func waitFor(t testing.TB, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// finalized reports whether every job of kind "test" has reached a final
// state; and there are want of them.
func finalized(t testing.TB, q *Queue, want int) func() bool {
	return func() bool {
		jobs := listJobs(t, q)
		if len(jobs) != want {
			return false
		}
		for _, j := range jobs {
			if j.FinalizedAt == nil {
				return false
			}
		}
		return true
	}
}

func TestMigrateTwice(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			cfg := e.open(t)
			for i := range 2 {
				if err := Migrate(t.Context(), cfg); err != nil {
					t.Fatalf("migration %d: got %v, want nil", i+1, err)
				}
			}
			q, err := New(t.Context(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			if got := listJobs(t, q); len(got) != 0 {
				t.Errorf("jobs after migrating: got %d, want 0", len(got))
			}
		})
	}
}

func TestJobRuns(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			var r runs
			q := start(t, testConfig(e.open(t), func(ctx context.Context, job *river.Job[testArgs]) error {
				r.add(job.Args.Key)
				return nil
			}))
			if err := q.Insert(t.Context(), testArgs{Key: "a"}, nil); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "the job to finish", finalized(t, q, 1))
			job := listJobs(t, q)[0]
			if job.State != rivertype.JobStateCompleted || job.Attempt != 1 {
				t.Errorf("job: got %s after %d attempts, want completed after 1", job.State, job.Attempt)
			}
			if got := r.get("a"); got != 1 {
				t.Errorf("runs: got %d, want 1", got)
			}
		})
	}
}

func TestRetry(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			var r runs
			q := start(t, testConfig(e.open(t), func(ctx context.Context, job *river.Job[testArgs]) error {
				if n := r.add(job.Args.Key); n < 3 {
					return fmt.Errorf("run %d fails", n)
				}
				return nil
			}))
			if err := q.Insert(t.Context(), testArgs{Key: "a"}, nil); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "the job to finish", finalized(t, q, 1))
			job := listJobs(t, q)[0]
			if job.State != rivertype.JobStateCompleted || job.Attempt != 3 {
				t.Errorf("job: got %s after %d attempts, want completed after 3", job.State, job.Attempt)
			}
			if len(job.Errors) != 2 {
				t.Errorf("errors recorded: got %d, want 2", len(job.Errors))
			}
			if got := r.get("a"); got != 3 {
				t.Errorf("runs: got %d, want 3", got)
			}
		})
	}
}

func TestMaxAttemptsDiscards(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			cfg := testConfig(e.open(t), func(ctx context.Context, job *river.Job[testArgs]) error {
				return errors.New("always fails")
			})
			cfg.MaxAttempts = 2
			q := start(t, cfg)
			if err := q.Insert(t.Context(), testArgs{Key: "a"}, nil); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "the job to finish", finalized(t, q, 1))
			job := listJobs(t, q)[0]
			if job.State != rivertype.JobStateDiscarded || job.Attempt != 2 {
				t.Errorf("job: got %s after %d attempts, want discarded after 2", job.State, job.Attempt)
			}
		})
	}
}

func TestUniqueJobRunsOnce(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			var r runs
			cfg := testConfig(e.open(t), func(ctx context.Context, job *river.Job[testArgs]) error {
				r.add(job.Args.Key)
				return nil
			})
			if err := Migrate(t.Context(), cfg); err != nil {
				t.Fatal(err)
			}
			q, err := New(t.Context(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			// Twice before the queue starts, so the first cannot have run
			// and gone; and once more after it has completed.
			unique := &river.InsertOpts{UniqueOpts: river.UniqueOpts{ByArgs: true}}
			for range 2 {
				if err := q.Insert(t.Context(), testArgs{Key: "a"}, unique); err != nil {
					t.Fatal(err)
				}
			}
			if err := q.Insert(t.Context(), testArgs{Key: "b"}, unique); err != nil {
				t.Fatal(err)
			}
			if err := q.Start(t.Context()); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { q.Stop(context.Background()) })
			waitFor(t, "the jobs to finish", finalized(t, q, 2))
			if err := q.Insert(t.Context(), testArgs{Key: "a"}, unique); err != nil {
				t.Fatal(err)
			}
			if got := len(listJobs(t, q)); got != 2 {
				t.Errorf("jobs: got %d, want 2", got)
			}
			for _, key := range []string{"a", "b"} {
				if got := r.get(key); got != 1 {
					t.Errorf("runs of %s: got %d, want 1", key, got)
				}
			}
		})
	}
}

// TestStopDeadline stops a queue whose job outlives the stop's deadline:
// the job is cancelled and made available again, its attempt not used up.
func TestStopDeadline(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			running := make(chan struct{})
			cfg := testConfig(e.open(t), func(ctx context.Context, job *river.Job[testArgs]) error {
				close(running)
				<-ctx.Done()
				return ctx.Err()
			})
			if err := Migrate(t.Context(), cfg); err != nil {
				t.Fatal(err)
			}
			q, err := New(t.Context(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			if err := q.Start(t.Context()); err != nil {
				t.Fatal(err)
			}
			if err := q.Insert(t.Context(), testArgs{Key: "a"}, nil); err != nil {
				t.Fatal(err)
			}
			<-running
			ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
			defer cancel()
			if err := q.Stop(ctx); err != nil {
				t.Fatalf("stop: got %v, want nil", err)
			}
			job := listJobs(t, q)[0]
			if job.State != rivertype.JobStateAvailable || job.Attempt != 0 {
				t.Errorf("job: got %s with %d attempts, want available with 0", job.State, job.Attempt)
			}
		})
	}
}

func TestConfigErrors(t *testing.T) {
	path := filepath.Join(t.TempDir(), "data.db")
	good := openSQLite(t, path)
	pooled, err := sql.Open("sqlite", SQLiteDSN(path))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pooled.Close() })
	noWAL, err := sql.Open("sqlite", "file:"+filepath.Join(t.TempDir(), "rollback.db")+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	noWAL.SetMaxOpenConns(1)
	t.Cleanup(func() { noWAL.Close() })
	workers := river.NewWorkers()
	river.AddWorker(workers, river.WorkFunc(func(context.Context, *river.Job[testArgs]) error { return nil }))

	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"no database", Config{}},
		{"both databases", Config{SQLite: good, Postgres: &pgxpool.Pool{}}},
		{"pool of many connections", Config{SQLite: pooled}},
		{"no WAL", Config{SQLite: noWAL}},
		{"timeout not below rescue", Config{SQLite: good, JobTimeout: time.Minute, RescueStuckJobsAfter: time.Minute}},
		{"queue without workers", Config{SQLite: good, Workers: workers, Queues: map[string]int{"default": 0}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := New(t.Context(), tc.cfg); err == nil {
				t.Errorf("New: got nil, want an error")
			}
		})
	}
}

func TestBackoffDelay(t *testing.T) {
	b := DefaultRetryPolicy
	for _, tc := range []struct {
		failures int
		want     time.Duration
	}{
		{1, 15 * time.Second},
		{2, 30 * time.Second},
		{5, 4 * time.Minute},
		{11, 15360 * time.Second},
		{12, 6 * time.Hour},
		{24, 6 * time.Hour},
		{1000, 6 * time.Hour},
	} {
		if got := b.Delay(tc.failures); got != tc.want {
			t.Errorf("Delay(%d): got %v, want %v", tc.failures, got, tc.want)
		}
	}
	huge := &Backoff{Base: time.Second, Max: 1<<63 - 1}
	if got := huge.Delay(200); got != huge.Max {
		t.Errorf("Delay(200) capped at the largest duration: got %v, want %v", got, huge.Max)
	}

	// The attempts of a job that always fails span 3 to 4 days.
	var total time.Duration
	for n := 1; n < DefaultMaxAttempts; n++ {
		total += b.Delay(n)
	}
	if total < 72*time.Hour || total > 96*time.Hour {
		t.Errorf("retries of %d attempts span %v, want 3 to 4 days", DefaultMaxAttempts, total)
	}
}

func TestBackoffNextRetry(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	b := &Backoff{Base: 10 * time.Second, Max: time.Hour, Now: func() time.Time { return now }}
	for failures := range 15 {
		job := &rivertype.JobRow{Errors: make([]rivertype.AttemptError, failures)}
		want := b.Delay(failures + 1)
		for range 20 {
			got := b.NextRetry(job).Sub(now)
			if got < want*9/10 || got > want*11/10 {
				t.Errorf("after %d failures: got a retry in %v, want %v ± 10%%", failures+1, got, want)
			}
		}
	}
}

// countingHandler counts the log records at warning level or above.
type countingHandler struct {
	mu   sync.Mutex
	msgs []string
}

func (h *countingHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }
func (h *countingHandler) WithAttrs([]slog.Attr) slog.Handler           { return h }
func (h *countingHandler) WithGroup(string) slog.Handler                { return h }
func (h *countingHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.msgs = append(h.msgs, r.Message)
	return nil
}

// TestSQLiteBesideWrites works jobs while other goroutines write to the
// same SQLite database through the same one-connection write pool, as
// Lethe's stores would: neither side gets an error (no SQLITE_BUSY), River
// logs no warning, and every job runs.
func TestSQLiteBesideWrites(t *testing.T) {
	const n = 500
	var logs countingHandler
	var r runs
	cfg := testConfig(engines[0].open(t), func(ctx context.Context, job *river.Job[testArgs]) error {
		r.add(job.Args.Key)
		return nil
	})
	cfg.Logger = slog.New(&logs)
	cfg.Queues = map[string]int{DefaultQueue: 20}
	db := cfg.SQLite
	if _, err := db.ExecContext(t.Context(), `CREATE TABLE lethe_writes (n INTEGER NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	q := start(t, cfg)

	ctx, stop := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	// inserted holds the keys of the jobs the writers inserted.
	var inserted struct {
		mu   sync.Mutex
		keys []string
	}
	// write is one of Lethe's writes; half of them then insert a job, as
	// creating a request does: after the write has committed, since
	// inserting inside the transaction would wait for ever for the
	// connection it holds.
	write := func(i int) error {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		defer tx.Rollback()
		if _, err := tx.ExecContext(ctx, `INSERT INTO lethe_writes (n) VALUES (?)`, i); err != nil {
			return err
		}
		if err := tx.Commit(); err != nil {
			return err
		}
		if i%2 == 0 {
			key := fmt.Sprint("w", i)
			if err := q.Insert(ctx, testArgs{Key: key}, nil); err != nil {
				return err
			}
			inserted.mu.Lock()
			inserted.keys = append(inserted.keys, key)
			inserted.mu.Unlock()
		}
		return nil
	}
	for w := range 4 {
		wg.Go(func() {
			for i := w; ctx.Err() == nil; i += 4 {
				// An error once stop has cancelled ctx is the cancellation's.
				if err := write(i); err != nil && ctx.Err() == nil {
					errs <- err
					return
				}
			}
		})
	}
	params := make([]river.InsertManyParams, n)
	for i := range params {
		params[i].Args = testArgs{Key: fmt.Sprint(i)}
	}
	if err := q.InsertMany(t.Context(), params); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the jobs to run", func() bool {
		for i := range n {
			if r.get(fmt.Sprint(i)) == 0 {
				return false
			}
		}
		return true
	})
	stop()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("write beside the queue: got %v, want nil", err)
	}
	// The writers' jobs run too, though the writers have stopped.
	waitFor(t, "the writers' jobs to run", func() bool {
		for _, key := range inserted.keys {
			if r.get(key) == 0 {
				return false
			}
		}
		return true
	})
	var writes int
	if err := db.QueryRowContext(t.Context(), `SELECT count(*) FROM lethe_writes`).Scan(&writes); err != nil {
		t.Fatal(err)
	}
	logs.mu.Lock()
	defer logs.mu.Unlock()
	if len(logs.msgs) > 0 {
		t.Errorf("River's warnings: got %q, want none", logs.msgs)
	}
	t.Logf("%d writes, %d of them followed by a job, beside %d jobs", writes, len(inserted.keys), n)
}
