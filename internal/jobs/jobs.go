package jobs

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	"github.com/riverqueue/river/rivermigrate"
	"github.com/riverqueue/river/rivertype"
)

// Defaults for the Config fields left zero.
const (
	// DefaultMaxAttempts is how many times a job runs before it is
	// discarded: River's own default. With DefaultRetryPolicy the attempts
	// span about 3.6 days.
	DefaultMaxAttempts = 25

	// DefaultJobTimeout is how long an attempt may run before its context
	// is cancelled. It leaves 15 seconds before DefaultRescueStuckJobsAfter
	// for the worker to return and its result to be recorded.
	DefaultJobTimeout = 45 * time.Second

	// DefaultRescueStuckJobsAfter is how long a job may stay running before
	// the rescuer takes it for lost in a crash and makes it retryable.
	DefaultRescueStuckJobsAfter = time.Minute

	// DefaultQueue is the queue jobs go to unless their InsertOpts name
	// another, River's "default".
	DefaultQueue = river.QueueDefault

	// defaultWorkers is how many jobs of DefaultQueue one process runs at
	// once when Config.Queues is nil.
	defaultWorkers = 4
)

// DefaultRetryPolicy is the retry policy of a Config that names none: see
// the package documentation.
var DefaultRetryPolicy = &Backoff{Base: 15 * time.Second, Max: 6 * time.Hour}

// Config says where a Queue keeps its jobs and how it runs them. Exactly
// one of SQLite and Postgres is set; a zero field takes its default.
type Config struct {
	// SQLite is a pool of one connection, WAL, busy_timeout and
	// transactions beginning IMMEDIATE: that of a queue file of its own
	// (OpenSQLite), as Lethe uses, or the data store's write pool (see the
	// package documentation). The caller keeps it open while the Queue runs
	// and closes it after.
	SQLite *sql.DB

	// Postgres is the data store's pool. The caller keeps it open while the
	// Queue runs and closes it after. A working Queue takes one connection
	// out of the pool for good, for LISTEN (the pool opens another in its
	// place), and uses others for moments to fetch and complete jobs.
	Postgres *pgxpool.Pool

	// Workers holds the workers (river.AddWorker), one for each kind of job
	// the Queue may insert. A Queue with no Workers can only insert: its
	// jobs are run by another process's Queue.
	Workers *river.Workers

	// Queues maps each queue this process works to the number of its jobs
	// run at once: by default DefaultQueue with 4. Ignored without Workers.
	Queues map[string]int

	// Logger receives River's logs. By default they are discarded.
	Logger *slog.Logger

	// RetryPolicy says when a failed job runs again: DefaultRetryPolicy by
	// default.
	RetryPolicy river.ClientRetryPolicy

	// MaxAttempts is how many times a job runs before it is discarded:
	// DefaultMaxAttempts by default.
	MaxAttempts int

	// JobTimeout bounds each attempt: DefaultJobTimeout by default. It must
	// be shorter than RescueStuckJobsAfter.
	JobTimeout time.Duration

	// RescueStuckJobsAfter is how long a job may stay running before it is
	// taken for lost: DefaultRescueStuckJobsAfter by default.
	RescueStuckJobsAfter time.Duration

	// For this package's tests: River's TestOnly (no random start-up
	// delays), and a shorter poll for jobs.
	testOnly bool
	// FetchPollInterval is how often each queue looks for available jobs
	// when none are coming (River's default, 1 s, if zero; at least 100
	// ms). A queue in a database of its own can poll often at no cost to
	// the data store.
	FetchPollInterval time.Duration
}

// engine returns "SQLite" or "PostgreSQL", or an error unless exactly one is
// set.
func (c *Config) engine() (string, error) {
	switch {
	case c.SQLite != nil && c.Postgres != nil:
		return "", errors.New("jobs: both SQLite and Postgres are set; set one")
	case c.SQLite != nil:
		return "SQLite", nil
	case c.Postgres != nil:
		return "PostgreSQL", nil
	}
	return "", errors.New("jobs: neither SQLite nor Postgres is set")
}

// riverConfig returns the River client configuration for c.
func (c *Config) riverConfig() (*river.Config, error) {
	rc := &river.Config{
		JobTimeout:           c.JobTimeout,
		Logger:               c.Logger,
		MaxAttempts:          c.MaxAttempts,
		RescueStuckJobsAfter: c.RescueStuckJobsAfter,
		RetryPolicy:          c.RetryPolicy,
		FetchPollInterval:    c.FetchPollInterval,
		TestOnly:             c.testOnly,
		Workers:              c.Workers,
	}
	if rc.JobTimeout == 0 {
		rc.JobTimeout = DefaultJobTimeout
	}
	if rc.Logger == nil {
		rc.Logger = slog.New(slog.DiscardHandler)
	}
	if rc.MaxAttempts == 0 {
		rc.MaxAttempts = DefaultMaxAttempts
	}
	if rc.RescueStuckJobsAfter == 0 {
		rc.RescueStuckJobsAfter = DefaultRescueStuckJobsAfter
	}
	if rc.RetryPolicy == nil {
		rc.RetryPolicy = DefaultRetryPolicy
	}
	if rc.MaxAttempts < 0 || rc.JobTimeout < 0 {
		return nil, errors.New("jobs: MaxAttempts and JobTimeout must not be negative")
	}
	if rc.JobTimeout >= rc.RescueStuckJobsAfter {
		// River accepts equal durations; but then a job whose worker
		// returns at its timeout can be rescued and run again meanwhile.
		return nil, fmt.Errorf("jobs: JobTimeout (%s) must be shorter than RescueStuckJobsAfter (%s)",
			rc.JobTimeout, rc.RescueStuckJobsAfter)
	}
	if c.Workers != nil {
		queues := c.Queues
		if queues == nil {
			queues = map[string]int{DefaultQueue: defaultWorkers}
		}
		rc.Queues = make(map[string]river.QueueConfig, len(queues))
		for name, n := range queues {
			if n < 1 {
				return nil, fmt.Errorf("jobs: queue %q has %d workers, want at least 1", name, n)
			}
			rc.Queues[name] = river.QueueConfig{MaxWorkers: n}
		}
	}
	if c.SQLite != nil {
		rc.PollOnly = true // see the package documentation
	}
	return rc, nil
}

// checkSQLite reports whether db is set up as the package documentation
// requires.
func checkSQLite(ctx context.Context, db *sql.DB) error {
	if n := db.Stats().MaxOpenConnections; n != 1 {
		return fmt.Errorf("jobs: the SQLite pool allows %d connections (0: no limit), want 1, the data store's write pool", n)
	}
	var mode string
	if err := db.QueryRowContext(ctx, `PRAGMA journal_mode`).Scan(&mode); err != nil {
		return fmt.Errorf("jobs: check the SQLite pool: %w", err)
	}
	if !strings.EqualFold(mode, "wal") {
		return fmt.Errorf("jobs: the SQLite database's journal mode is %s, want WAL", mode)
	}
	var timeout int
	if err := db.QueryRowContext(ctx, `PRAGMA busy_timeout`).Scan(&timeout); err != nil {
		return fmt.Errorf("jobs: check the SQLite pool: %w", err)
	}
	if timeout <= 0 {
		return errors.New("jobs: the SQLite pool has no busy_timeout")
	}
	return nil
}

// migrationLock is the PostgreSQL advisory lock that serialises River's
// migrations: "river" in ASCII, a key no other Lethe code uses.
const migrationLock int64 = 0x7269766572

// Migrate creates or updates River's tables (river_job, river_leader,
// river_queue …) in the database that cfg names, applying only the
// migrations it lacks, so it can run on every start. Processes migrating
// one database at once take turns: on SQLite all the migrations run in one
// IMMEDIATE transaction, on PostgreSQL under an advisory lock. Its errors
// are for operators (EINTERNAL).
func Migrate(ctx context.Context, cfg Config) error {
	engine, err := cfg.engine()
	if err != nil {
		return err
	}
	if cfg.SQLite != nil {
		err = migrateSQLite(ctx, cfg.SQLite)
	} else {
		err = migratePostgres(ctx, cfg.Postgres)
	}
	if err != nil {
		return fmt.Errorf("migrate the job queue on %s: %w", engine, err)
	}
	return nil
}

func migrateSQLite(ctx context.Context, db *sql.DB) error {
	if err := checkSQLite(ctx, db); err != nil {
		return err
	}
	m, err := rivermigrate.New(riversqlite.New(db), &rivermigrate.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return err
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	// MigrateTx is deprecated because some PostgreSQL migrations cannot share
	// a transaction; SQLite's all can, and one transaction holding the write
	// lock keeps two processes from applying the same migration.
	//lint:ignore SA1019 SQLite runs every River migration inside a transaction
	if _, err := m.MigrateTx(ctx, tx, rivermigrate.DirectionUp, nil); err != nil {
		return err
	}
	return tx.Commit()
}

func migratePostgres(ctx context.Context, pool *pgxpool.Pool) error {
	m, err := rivermigrate.New(riverpgxv5.New(pool), &rivermigrate.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return err
	}
	// The lock is held by a connection of its own for the whole migration,
	// which River runs one transaction per version on other connections.
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, migrationLock); err != nil {
		return err
	}
	defer func() {
		// Unlock even if ctx is done; a failed unlock closes the connection,
		// which releases the lock.
		if _, err := conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, migrationLock); err != nil {
			conn.Conn().Close(context.WithoutCancel(ctx))
		}
	}()
	_, err = m.Migrate(ctx, rivermigrate.DirectionUp, nil)
	return err
}

// Queue is a River client on the database its Config names. It is safe for
// concurrent use. A Queue that was started must be stopped (Stop) before
// its database pool is closed.
type Queue struct {
	sqlite *river.Client[*sql.Tx] // exactly one of sqlite and pg is set
	pg     *river.Client[pgx.Tx]
	client Client // whichever it is
	logger *slog.Logger
}

// New returns a Queue on the database that cfg names, whose River tables
// Migrate has created. It does not start working jobs: see Start. Its
// errors are configuration errors, for operators (EINTERNAL).
func New(ctx context.Context, cfg Config) (*Queue, error) {
	if _, err := cfg.engine(); err != nil {
		return nil, err
	}
	rc, err := cfg.riverConfig()
	if err != nil {
		return nil, err
	}
	q := &Queue{logger: rc.Logger}
	if cfg.SQLite != nil {
		if err := checkSQLite(ctx, cfg.SQLite); err != nil {
			return nil, err
		}
		if q.sqlite, err = river.NewClient(riversqlite.New(cfg.SQLite), rc); err != nil {
			return nil, fmt.Errorf("jobs: %w", err)
		}
		q.client = q.sqlite
	} else {
		if q.pg, err = river.NewClient(riverpgxv5.New(cfg.Postgres), rc); err != nil {
			return nil, fmt.Errorf("jobs: %w", err)
		}
		q.client = q.pg
	}
	return q, nil
}

// Start starts working jobs in the background, until Stop. Jobs run with
// contexts that carry ctx's values but not its cancellation: only Stop
// stops the Queue, because River would count jobs cancelled through ctx as
// failed attempts, while Stop has them run again without. Start fails on a
// Queue without Workers; its errors are EINTERNAL.
func (q *Queue) Start(ctx context.Context) error {
	ctx = context.WithoutCancel(ctx)
	var err error
	if q.sqlite != nil {
		err = q.sqlite.Start(ctx)
	} else {
		err = q.pg.Start(ctx)
	}
	if err != nil {
		return fmt.Errorf("start the job queue: %w", err)
	}
	return nil
}

// stopGrace bounds how long Stop waits, after ctx is done, for cancelled
// jobs to return.
const stopGrace = 10 * time.Second

// Stop stops working jobs: it fetches no more and waits for the running
// ones to finish. When ctx is done first, it cancels the running jobs'
// contexts; a job that returns the context's error (or one wrapping it)
// is made available again without using up an attempt, and runs again
// later, here or in another process. Stop then waits up to 10 seconds more for the cancelled
// jobs to return; a job that still has not is left running, and the
// rescuer retries it after RescueStuckJobsAfter. Stop returns an error only
// if the Queue has not stopped by then (EINTERNAL). Stopping a Queue that
// never started does nothing.
func (q *Queue) Stop(ctx context.Context) error {
	err := q.stop(ctx, false)
	if err == nil || ctx.Err() == nil {
		return err
	}
	q.logger.WarnContext(ctx, "jobs: stop deadline reached, cancelling running jobs")
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), stopGrace)
	defer cancel()
	return q.stop(cctx, true)
}

func (q *Queue) stop(ctx context.Context, cancel bool) error {
	var err error
	switch {
	case q.sqlite != nil && cancel:
		err = q.sqlite.StopAndCancel(ctx)
	case q.sqlite != nil:
		err = q.sqlite.Stop(ctx)
	case cancel:
		err = q.pg.StopAndCancel(ctx)
	default:
		err = q.pg.Stop(ctx)
	}
	if err != nil {
		return fmt.Errorf("stop the job queue: %w", err)
	}
	return nil
}

// Insert inserts a job, committed before Insert returns. A job whose
// UniqueOpts match an existing one is skipped without error. Insert must
// not be called inside a transaction on the Queue's SQLite pool, which
// would hold the one connection Insert waits for: insert once the
// transaction has committed (see the package documentation). Errors are
// EINTERNAL.
func (q *Queue) Insert(ctx context.Context, args river.JobArgs, opts *river.InsertOpts) error {
	var err error
	if q.sqlite != nil {
		_, err = q.sqlite.Insert(ctx, args, opts)
	} else {
		_, err = q.pg.Insert(ctx, args, opts)
	}
	if err != nil {
		return fmt.Errorf("insert %s job: %w", args.Kind(), err)
	}
	return nil
}

// InsertMany inserts jobs in one transaction, like Insert.
func (q *Queue) InsertMany(ctx context.Context, params []river.InsertManyParams) error {
	var err error
	if q.sqlite != nil {
		_, err = q.sqlite.InsertMany(ctx, params)
	} else {
		_, err = q.pg.InsertMany(ctx, params)
	}
	if err != nil {
		return fmt.Errorf("insert %d jobs: %w", len(params), err)
	}
	return nil
}

// Client is the part of River's client that does not depend on the
// database engine: look-ups, cancellation, retries, events, pausing. Both
// *river.Client[*sql.Tx] and *river.Client[pgx.Tx] implement it.
type Client interface {
	JobGet(ctx context.Context, id int64) (*rivertype.JobRow, error)
	JobList(ctx context.Context, params *river.JobListParams) (*river.JobListResult, error)
	JobCancel(ctx context.Context, id int64) (*rivertype.JobRow, error)
	JobRetry(ctx context.Context, id int64) (*rivertype.JobRow, error)
	Subscribe(kinds ...river.EventKind) (<-chan *river.Event, func())
	QueuePause(ctx context.Context, name string, opts *river.QueuePauseOpts) error
	QueueResume(ctx context.Context, name string, opts *river.QueuePauseOpts) error
}

var (
	_ Client = (*river.Client[*sql.Tx])(nil)
	_ Client = (*river.Client[pgx.Tx])(nil)
)

// Client returns the River client, for what Queue does not wrap.
func (q *Queue) Client() Client { return q.client }
