// Package jobs is Lethe's durable job queue: River (riverqueue.com) on
// SQLite or PostgreSQL, with one API for both. With SQLite, Lethe keeps its
// jobs in a file of their own beside the data store (OpenSQLite); with
// PostgreSQL, River's tables are in the data store's database. Work that
// must survive a crash and be retried until it succeeds, such as a
// data-subject request's export or erasure in each connected system (one
// job per system), is a job: inserted once the record that asks for it has
// committed, run by a worker, retried with backoff when it fails, resumed
// after a crash.
//
// # Guarantees
//
// Once its insert has committed, a job runs at least once. A job is not
// inserted in the transaction of the record that asks for it (in Lethe's
// SQLite setup the two are not even in one file), so a crash between the
// record's commit and the job's insert loses the job. A caller keeps the
// record and its job consistent in two steps: it inserts the job after the
// record has committed, never before (a worker could then run for a record
// that never commits); and it runs a sweep, at start and periodically,
// that inserts again the job of every record whose work the record shows
// unfinished. Lethe's requests do both: request.Runner.Resume, at start and
// every minute. Jobs unique by their args (below) make the sweep
// idempotent: a job that exists is not inserted twice. The sweep must look
// at unfinished records only, since a completed job's row, and with it its
// uniqueness, is gone 24 hours later, and inserting it again would run it
// again.
//
// A job may run more than once: when the process dies after a worker's
// effect but before River recorded the job as completed, when a worker
// overruns RescueStuckJobsAfter, when a worker returns an error after part
// of its effect, or when a sweep re-inserts a job whose row River's cleaner
// has deleted. So every worker's effect must be idempotent: running it
// twice must leave the same state as running it once. Ways to get there,
// best first:
//
//   - An effect on the database the queue is in commits in one transaction
//     with the job's completion (river.JobCompleteTx, with
//     *riversqlite.Driver or *riverpgxv5.Driver): either both happen or
//     neither. With PostgreSQL that is Lethe's own database; with SQLite
//     the queue has a file of its own, so this is not open to effects on
//     the data store.
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
// runs on the pool it is given (Config.SQLite) rather than opening its own.
// Lethe gives it a file of its own, jobs.db beside the data store
// (OpenSQLite), so that River's polling never waits for the data store's
// one writer. The package also works on the data store's write pool, the
// single connection that Lethe's writes queue for: two pools on one file
// would contend inside SQLite, waiting out busy_timeout and failing with
// SQLITE_BUSY past it, while one pool makes River's statements and
// Lethe's take turns in database/sql, with no lock contention at all. New
// checks that the pool has exactly one connection, WAL and a busy_timeout,
// the settings that OpenSQLite and the data store's pool (see
// internal/sqlite) open with; the busy_timeout is for other processes on
// the file, such as a lethe command run beside the server. The pool's
// transactions, River's included, begin IMMEDIATE (_txlock=immediate), so
// that none has to upgrade a read lock, which fails at once when another
// process writes.
//
// On SQLite the client polls (River's PollOnly). River emulates
// PostgreSQL's LISTEN/NOTIFY there with a table it polls every 50 ms,
// twenty queries a second through the pool's one connection, mostly to
// learn of jobs that this same process has just inserted. Instead, each
// queue looks for available jobs every FetchPollInterval (1 s by default;
// the request queue, in a file of its own, polls every 100 ms) and at most
// every FetchCooldown (100 ms, River's default) while jobs keep coming: a
// new job starts within that interval. A poll that finds nothing changes
// no page, so SQLite writes and syncs nothing for it. Leader election and
// the maintenance services poll too, every few seconds. Everything else is
// River's defaults.
//
// Consequences for callers: never call Insert or InsertMany inside a
// transaction on the SQLite pool the Queue runs on, which would wait for
// ever for the connection the transaction holds; insert after the
// transaction has committed, as above. Keep transactions on that pool
// short, since River's fetches and completions wait behind them. River's
// SQLite driver completes jobs and inserts batches one row at a time;
// throughput is bounded by SQLite's commits (synchronous=FULL syncs each),
// see BenchmarkThroughput.
package jobs
