package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// Group commit. With synchronous=FULL every commit syncs the WAL, and with
// one write connection commits queue behind each other: a create costs a
// sync, and creates per second are bounded by syncs per second. Writes that
// go through batch instead share transactions: one goroutine per database
// takes every write queued at that moment (up to maxBatch), runs each in
// its own savepoint of one transaction, and commits once. A lone write is
// committed at once, with no timer to wait for; under load, the writes that
// queued during one commit share the next. A write that fails rolls back to
// its savepoint and fails alone; if the commit fails, every write of the
// batch fails. Nothing is acknowledged before its commit is on disk.

// maxBatch bounds one transaction, so that a burst does not hold the write
// connection (and every caller's latency) for long.
const maxBatch = 64

// writeJob is one write waiting for the group commit.
type writeJob struct {
	ctx  context.Context
	fn   func(ctx context.Context, tx *sql.Tx) error
	done chan error
}

var errClosed = errors.New("the store is closed")

// batch runs fn in a transaction shared with other writes and returns once
// that transaction has committed (fn's error, or the commit's). fn must not
// keep tx. The caller's context is checked before fn runs; once fn has
// started, cancelling it no longer stops the write.
func (db *DB) batch(ctx context.Context, fn func(ctx context.Context, tx *sql.Tx) error) error {
	job := &writeJob{ctx: ctx, fn: fn, done: make(chan error, 1)}
	select {
	case db.jobs <- job:
	case <-db.quit:
		return errClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	// The job is queued: the writer answers it, even while closing.
	return <-job.done
}

// committer is the goroutine that runs the batches until quit is closed.
func (db *DB) committer() {
	defer close(db.stopped)
	jobs := make([]*writeJob, 0, maxBatch)
	for {
		select {
		case <-db.quit:
			// Answer whatever was queued before the close.
			for {
				select {
				case j := <-db.jobs:
					j.done <- errClosed
				default:
					return
				}
			}
		case j := <-db.jobs:
			jobs = append(jobs[:0], j)
		}
	more:
		for len(jobs) < maxBatch {
			select {
			case j := <-db.jobs:
				jobs = append(jobs, j)
			default:
				break more
			}
		}
		db.commit(jobs)
	}
}

// commit runs jobs in one transaction, each in a savepoint, and answers
// each of them.
func (db *DB) commit(jobs []*writeJob) {
	results := make([]error, len(jobs))
	ctx := context.Background()
	err := func() error {
		tx, err := db.write.BeginTx(ctx, nil)
		if err != nil {
			return fmt.Errorf("begin: %w", err)
		}
		defer tx.Rollback()
		for i, j := range jobs {
			if err := j.ctx.Err(); err != nil {
				results[i] = err
				continue
			}
			if _, err := tx.ExecContext(ctx, `SAVEPOINT job`); err != nil {
				return fmt.Errorf("savepoint: %w", err)
			}
			if results[i] = j.fn(context.WithoutCancel(j.ctx), tx); results[i] != nil {
				if _, err := tx.ExecContext(ctx, `ROLLBACK TO job`); err != nil {
					return fmt.Errorf("roll back a failed write: %w", err)
				}
			}
			if _, err := tx.ExecContext(ctx, `RELEASE job`); err != nil {
				return fmt.Errorf("release savepoint: %w", err)
			}
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("commit: %w", err)
		}
		return nil
	}()
	for i, j := range jobs {
		if err != nil && results[i] == nil {
			results[i] = err
		}
		j.done <- results[i]
	}
}
