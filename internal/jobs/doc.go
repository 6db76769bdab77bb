// Package jobs is Lethe's durable job queue: River (riverqueue.com) on the
// same database as the data store, the embedded SQLite file or PostgreSQL,
// with one API for both. Work that must survive a crash and be retried
// until it succeeds, such as a data-subject request's export or erasure in
// each connected system (one job per system), is a job: inserted in the
// same transaction as the record that asks for it, run by a worker, retried
// with backoff when it fails, resumed after a crash.
//
// # Guarantees
//
// Once its insert has committed, a job runs at least once; a job inserted
// with InsertTx exists exactly when the caller's transaction commits. It may
// run more than once: when the process dies after a worker's effect but
// before River recorded the job as completed, when a worker overruns
// RescueStuckJobsAfter, or when a worker returns an error after part of its
// effect. So every worker's effect must be idempotent: running it twice
// must leave the same state as running it once. Ways to get there, best
// first:
//
//   - An effect on Lethe's own database commits in one transaction with the
//     job's completion (river.JobCompleteTx, with *riversqlite.Driver or
//     *riverpgxv5.Driver): either both happen or neither.
//   - An effect recorded under a key that the job's args determine (the
//     request's ID and the system's): "INSERT OR IGNORE" / "ON CONFLICT DO
//     NOTHING" on that key, and skip the effect if the key was already there.
//   - An effect that is idempotent by nature: erasing what is already gone
//     succeeds; an export is written to a name the args determine, replacing
//     a partial one.
//   - An external system that takes an idempotency key: derive it from the
//     args, never from the attempt.
//
// Inserting the same job twice, say when a client retries the request that
// creates it, must not run it twice: give its args river.UniqueOpts{ByArgs:
// true} (in InsertOpts, or by the args' InsertOpts method). A duplicate is
// then skipped, without error, as long as the first job's row exists: until
// River's cleaner deletes it, 24 hours after it completed. Uniqueness
// deduplicates inserts; it does not make a worker idempotent.
//
// Job args, worker errors and River's log lines are stored or logged in
// clear: args must hold IDs only and errors must quote no personal data, as
// everywhere in Lethe.
//
// # Retries
//
// A failed job is retried by DefaultRetryPolicy, exponential backoff with
// 10% jitter: 15 s after the first failure, doubling up to 6 hours between
// attempts, and discarded after DefaultMaxAttempts (25) attempts. The 25
// attempts span about 3.6 days: a system down over a long weekend is caught
// up with on its own, and a discarded job still leaves an operator more
// than three weeks of GDPR's one-month deadline (Art. 12(3)) to act.
// Config.RetryPolicy and Config.MaxAttempts change this; a worker's
// NextRetry, or a job's InsertOpts.MaxAttempts, override them per job.
//
// # Crashes
//
// A job a worker was running when its process died stays in state running.
// River's job rescuer, run every 30 seconds by the client elected leader,
// makes a job that has been running longer than RescueStuckJobsAfter
// (DefaultRescueStuckJobsAfter, 1 minute) retryable again, counting the
// lost run as a failed attempt. If the leader itself died, another client
// (the restarted process) takes over once the dead leader's lease lapses,
// within about 20 seconds. So a job cut off by a crash runs again some 1 to
// 2 minutes after its attempt began, plus its retry delay. Each attempt's
// context is cancelled after JobTimeout (DefaultJobTimeout, 45 seconds),
// which is shorter than RescueStuckJobsAfter so that a worker that honours
// its context has returned before the rescuer would take its job: a worker
// must honour it, and must not raise its own Timeout above
// RescueStuckJobsAfter. Longer work is split into several jobs.
//
// # SQLite
//
// SQLite has one writer at a time, and River polls. River's SQLite driver
// shares the data store's write pool, the single connection that Lethe's
// writes queue for (Config.SQLite), rather than opening its own: two pools
// on one file would contend inside SQLite, waiting out busy_timeout and
// failing with SQLITE_BUSY past it, while one pool makes River's statements
// and Lethe's take turns in database/sql, with no lock contention at all.
// New checks that the pool has exactly one connection, WAL and a
// busy_timeout, the settings the data store's pool opens with (see
// internal/sqlite); the busy_timeout is for other processes on the file,
// such as a lethe command run beside the server. The pool's transactions,
// River's included, begin IMMEDIATE (_txlock=immediate), so that none has
// to upgrade a read lock, which fails at once when another process writes.
//
// On SQLite the client polls (River's PollOnly). River emulates
// PostgreSQL's LISTEN/NOTIFY there with a table it polls every 50 ms,
// twenty queries a second through the connection Lethe's writes wait for,
// mostly to learn of jobs that this same process has just inserted.
// Instead, each queue looks for available jobs every FetchPollInterval (1
// s by default; the request queue, in a file of its own, polls every
// 100 ms) and at most every FetchCooldown (100 ms, River's default) while
// jobs keep coming: a new job starts within that interval. A poll that finds nothing
// changes no page, so SQLite writes and syncs nothing for it. Leader
// election and the maintenance services poll too, every few seconds.
// Everything else is River's defaults.
//
// Consequences for callers: inside a transaction on the write pool, insert
// with InsertTx, never Insert (which would wait for ever for the
// connection the transaction holds); and keep transactions short, since
// River's fetches and completions wait behind them. River's SQLite driver
// completes jobs and inserts batches one row at a time; throughput is
// bounded by SQLite's commits (synchronous=FULL syncs each), see
// BenchmarkThroughput.
package jobs
