package jobs

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
)

// crashArgs are the args of the crash test's jobs: each job's effect is
// recorded under its key.
type crashArgs struct {
	Key int `json:"key"`
}

func (crashArgs) Kind() string { return "crash" }

func (crashArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{UniqueOpts: river.UniqueOpts{ByArgs: true}}
}

// crashSchema holds the crash test's effects. Every run of a job is logged
// in crash_runs; its effect, a row in crash_effects, is guarded by
// crash_done, the idempotency check: a key already there means the effect
// was had by an earlier run, which died before River recorded the job as
// completed (such runs are noted in crash_skips). crash_effects itself has
// no unique key, so that an effect had twice would show.
const crashSchema = `
CREATE TABLE crash_runs (key INTEGER NOT NULL, job_id INTEGER NOT NULL);
CREATE TABLE crash_done (key INTEGER PRIMARY KEY);
CREATE TABLE crash_effects (key INTEGER NOT NULL, job_id INTEGER NOT NULL);
CREATE TABLE crash_skips (key INTEGER NOT NULL);
`

// crashWorker is the worker of crashArgs on db, the write pool: an
// idempotent effect, as the package documentation describes, on the
// database the queue is in.
func crashWorker(db *sql.DB) river.Worker[crashArgs] {
	return river.WorkFunc(func(ctx context.Context, job *river.Job[crashArgs]) error {
		if _, err := db.ExecContext(ctx, `INSERT INTO crash_runs (key, job_id) VALUES (?, ?)`, job.Args.Key, job.ID); err != nil {
			return err
		}
		// Work that takes a while, before and after the effect, such as
		// calls to another system: the crash comes while jobs are at it,
		// some before their effect and some after.
		if err := sleep(ctx, 10*time.Millisecond); err != nil {
			return err
		}
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		defer tx.Rollback()
		res, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO crash_done (key) VALUES (?)`, job.Args.Key)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			// Done before: the effect is there. Noted only for the log.
			if _, err := tx.ExecContext(ctx, `INSERT INTO crash_skips (key) VALUES (?)`, job.Args.Key); err != nil {
				return err
			}
			return tx.Commit()
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO crash_effects (key, job_id) VALUES (?, ?)`, job.Args.Key, job.ID); err != nil {
			return err
		}
		if err := tx.Commit(); err != nil {
			return err
		}
		return sleep(ctx, 10*time.Millisecond)
	})
}

// sleep waits for d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-time.After(d):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// crashJobs is how many jobs the crash test runs.
const crashJobs = 200

// TestHelperProcess is the process the crash test kills: it works the jobs
// in the database at $LETHE_JOBS_CRASH_DB until it is killed. Run by the
// test binary itself, it does nothing.
func TestHelperProcess(t *testing.T) {
	path := os.Getenv("LETHE_JOBS_CRASH_DB")
	if path == "" {
		return
	}
	db := openSQLite(t, path)
	cfg := Config{SQLite: db, Workers: river.NewWorkers(), Queues: map[string]int{DefaultQueue: 8}}
	river.AddWorker(cfg.Workers, crashWorker(db))
	q, err := New(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := q.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	fmt.Println("started")
	select {} // until killed
}

// TestCrashResumes kills a process that is working jobs, with SIGKILL, and
// checks that a new queue on the same SQLite file finishes every job, each
// job's effect had exactly once.
func TestCrashResumes(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for the dead process's leadership to lapse (about 20 s)")
	}
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "data.db")
	db := openSQLite(t, path)
	if err := Migrate(ctx, Config{SQLite: db}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, crashSchema); err != nil {
		t.Fatal(err)
	}
	insert, err := New(ctx, Config{SQLite: db}) // inserts only
	if err != nil {
		t.Fatal(err)
	}
	params := make([]river.InsertManyParams, crashJobs)
	for i := range params {
		params[i].Args = crashArgs{Key: i}
	}
	if err := insert.InsertMany(ctx, params); err != nil {
		t.Fatal(err)
	}

	count := func(query string) int {
		t.Helper()
		var n int
		if err := db.QueryRowContext(ctx, query).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}

	// The child works the jobs; it is killed a quarter of the way through.
	var out bytes.Buffer
	child := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$")
	child.Env = append(os.Environ(), "LETHE_JOBS_CRASH_DB="+path)
	child.Stdout, child.Stderr = &out, &out
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	defer func() {
		if !killed {
			child.Process.Kill()
			child.Wait()
		}
	}()
	waitFor(t, "the child to have had a quarter of the effects", func() bool {
		return count(`SELECT count(*) FROM crash_effects`) >= crashJobs/4
	})
	if err := child.Process.Kill(); err != nil { // SIGKILL: no shutdown at all
		t.Fatal(err)
	}
	child.Wait()
	killed = true
	t.Logf("child output:\n%s", out.Bytes())
	before := count(`SELECT count(*) FROM crash_effects`)
	if before >= crashJobs {
		t.Fatalf("effects when the child was killed: got %d, want fewer than %d (the crash came too late to test anything)", before, crashJobs)
	}

	// A new queue, as the restarted server would run, takes over.
	cfg := Config{
		SQLite:               db,
		Workers:              river.NewWorkers(),
		Queues:               map[string]int{DefaultQueue: 8},
		RetryPolicy:          &Backoff{Base: 10 * time.Millisecond, Max: 50 * time.Millisecond},
		JobTimeout:           time.Second,
		RescueStuckJobsAfter: 2 * time.Second,
		testOnly:             true,
	}
	river.AddWorker(cfg.Workers, crashWorker(db))
	q, err := New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := q.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Stop(context.Background()) })

	var jobs []*rivertype.JobRow
	waitFor(t, "every job to finish", func() bool {
		res, err := q.Client().JobList(ctx, river.NewJobListParams().Kinds("crash").First(10_000))
		if err != nil {
			t.Fatal(err)
		}
		jobs = res.Jobs
		for _, j := range jobs {
			if j.FinalizedAt == nil {
				return false
			}
		}
		return true
	})

	if len(jobs) != crashJobs {
		t.Fatalf("jobs: got %d, want %d", len(jobs), crashJobs)
	}
	rescued := 0
	for _, j := range jobs {
		if j.State != rivertype.JobStateCompleted {
			t.Errorf("job %d: got %s, want completed", j.ID, j.State)
		}
		if len(j.Errors) > 0 {
			rescued++
		}
	}
	if got := count(`SELECT count(DISTINCT key) FROM crash_effects`); got != crashJobs {
		t.Errorf("keys with an effect: got %d, want %d", got, crashJobs)
	}
	if got := count(`SELECT count(*) FROM crash_effects`); got != crashJobs {
		t.Errorf("effects: got %d, want %d, one per job", got, crashJobs)
	}
	if got := count(`SELECT count(*) FROM crash_effects WHERE key < 0 OR key >= 200`); got != 0 {
		t.Errorf("effects of unknown keys: got %d, want 0", got)
	}
	// An effect belongs to the job of its key: no job ran another's args.
	if got := count(`SELECT count(*) FROM crash_effects e JOIN river_job j ON j.id = e.job_id
		WHERE j.args ->> '$.key' != e.key`); got != 0 {
		t.Errorf("effects recorded by another key's job: got %d, want 0", got)
	}
	runs := count(`SELECT count(*) FROM crash_runs`)
	repeated := count(`SELECT count(*) FROM (SELECT key FROM crash_runs GROUP BY key HAVING count(*) > 1)`)
	skips := count(`SELECT count(*) FROM crash_skips`)
	t.Logf("killed after %d of %d effects; %d jobs rescued; %d runs in all, %d jobs run more than once, "+
		"%d runs found their effect already had", before, crashJobs, rescued, runs, repeated, skips)
}
