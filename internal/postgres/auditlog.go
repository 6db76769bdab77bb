package postgres

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/audit"
)

// AuditLog is the audit log that every instance on one data store appends
// to (audit.SharedStore): the database orders the entries, and the instance
// holding an advisory lock extends the tree and signs checkpoints. It works
// on one epoch of the log, the current one when it was opened. It is safe
// for concurrent use.
type AuditLog struct {
	db    *DB
	epoch int32
}

var _ audit.SharedStore = (*AuditLog)(nil)

// NewAuditLog returns the current epoch of the data store's audit log.
func NewAuditLog(ctx context.Context, db *DB) (*AuditLog, error) {
	db.mustHold(dataStore, "NewAuditLog")
	var epoch int32
	if err := db.pool.QueryRow(ctx, `SELECT max(epoch) FROM audit_logs`).Scan(&epoch); err != nil {
		return nil, fmt.Errorf("open audit log: %w", err)
	}
	return &AuditLog{db: db, epoch: epoch}, nil
}

// OpenAuditLog returns the given epoch of the data store's audit log, for
// reading an earlier log. ENOTFOUND if there is no such epoch.
func OpenAuditLog(ctx context.Context, db *DB, epoch int) (*AuditLog, error) {
	db.mustHold(dataStore, "OpenAuditLog")
	var n int
	if err := db.pool.QueryRow(ctx, `SELECT count(*) FROM audit_logs WHERE epoch = $1`, epoch).Scan(&n); err != nil {
		return nil, fmt.Errorf("open audit log: %w", err)
	}
	if n == 0 {
		return nil, lethe.Errorf(lethe.ENOTFOUND, "the data store has no audit log of epoch %d", epoch)
	}
	return &AuditLog{db: db, epoch: int32(epoch)}, nil
}

// Epoch returns the epoch this AuditLog works on: 1 for the first log.
func (s *AuditLog) Epoch() int { return int(s.epoch) }

// NewEpoch begins a new, empty log after the current one, and returns it;
// the rows of earlier epochs stay.
func (s *AuditLog) NewEpoch(ctx context.Context) (*AuditLog, error) {
	var epoch int32
	err := s.db.pool.QueryRow(ctx, `INSERT INTO audit_logs (epoch) SELECT max(epoch) + 1 FROM audit_logs RETURNING epoch`).Scan(&epoch)
	if err != nil {
		return nil, fmt.Errorf("begin a new audit log: %w", err)
	}
	return &AuditLog{db: s.db, epoch: epoch}, nil
}

// Append implements audit.SharedStore in one statement: moving the log's
// head takes its row lock, which serialises appenders across instances
// until the commit, so the database gives the order and indices have no
// gaps; the entries go in at the indices the head moved over.
func (s *AuditLog) Append(ctx context.Context, entries [][]byte) (uint64, error) {
	var first int64
	err := s.db.pool.QueryRow(ctx, `WITH head AS (
			UPDATE audit_logs SET size = size + cardinality($2::bytea[]) WHERE epoch = $1
			RETURNING size - cardinality($2::bytea[]) AS first
		), ins AS (
			INSERT INTO audit_entries (epoch, idx, entry)
			SELECT $1, head.first + t.ord - 1, t.e FROM head, unnest($2::bytea[]) WITH ORDINALITY AS t(e, ord)
		)
		SELECT first FROM head`, s.epoch, entries).Scan(&first)
	if err != nil {
		return 0, fmt.Errorf("append to the audit log: %w", err)
	}
	return uint64(first), nil
}

func (s *AuditLog) head(ctx context.Context, column string) (uint64, error) {
	var n int64
	if err := s.db.pool.QueryRow(ctx, `SELECT `+column+` FROM audit_logs WHERE epoch = $1`, s.epoch).Scan(&n); err != nil {
		return 0, fmt.Errorf("read the audit log's %s: %w", column, err)
	}
	return uint64(n), nil
}

// Size implements audit.SharedStore.
func (s *AuditLog) Size(ctx context.Context) (uint64, error) { return s.head(ctx, "size") }

// TreeSize implements audit.SharedStore.
func (s *AuditLog) TreeSize(ctx context.Context) (uint64, error) { return s.head(ctx, "tree_size") }

// Pruned implements audit.Source.
func (s *AuditLog) Pruned(ctx context.Context) (uint64, error) { return s.head(ctx, "pruned") }

// SaveTree implements audit.SharedStore.
func (s *AuditLog) SaveTree(ctx context.Context, from, to uint64, hashes []audit.NodeHash, checkpoint []byte) error {
	return pgx.BeginFunc(ctx, s.db.pool, func(tx pgx.Tx) error {
		var tree int64
		if err := tx.QueryRow(ctx, `SELECT tree_size FROM audit_logs WHERE epoch = $1 FOR UPDATE`, s.epoch).Scan(&tree); err != nil {
			return fmt.Errorf("save audit tree: %w", err)
		}
		if uint64(tree) != from {
			return lethe.Errorf(lethe.ECONFLICT, "the audit tree is at %d, not %d: another instance extended it", tree, from)
		}
		rows := make([][]any, len(hashes))
		for i, h := range hashes {
			rows[i] = []any{s.epoch, int16(h.Stratum), int64(h.Index), h.Hash}
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"audit_hashes"}, []string{"epoch", "stratum", "idx", "hash"}, pgx.CopyFromRows(rows)); err != nil {
			return fmt.Errorf("save audit tree: %w", err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO audit_checkpoints (epoch, size, note) VALUES ($1, $2, $3)`, s.epoch, int64(to), checkpoint); err != nil {
			return fmt.Errorf("save audit checkpoint: %w", err)
		}
		_, err := tx.Exec(ctx, `UPDATE audit_logs SET tree_size = $2 WHERE epoch = $1`, s.epoch, int64(to))
		return err
	})
}

// Checkpoints implements audit.Source.
func (s *AuditLog) Checkpoints(ctx context.Context) ([][]byte, error) {
	rows, err := s.db.pool.Query(ctx, `SELECT note FROM audit_checkpoints WHERE epoch = $1 ORDER BY signed_at, size`, s.epoch)
	if err != nil {
		return nil, fmt.Errorf("read audit checkpoints: %w", err)
	}
	cps, err := pgx.CollectRows(rows, pgx.RowTo[[]byte])
	if err != nil {
		return nil, fmt.Errorf("read audit checkpoints: %w", err)
	}
	return cps, nil
}

// Scan implements audit.Source.
func (s *AuditLog) Scan(ctx context.Context, from uint64, fn func(index uint64, data, leafHash []byte) error) error {
	rows, err := s.db.pool.Query(ctx, `SELECT e.idx, e.entry, h.hash FROM audit_entries e
		LEFT JOIN audit_hashes h ON h.epoch = e.epoch AND h.stratum = 0 AND h.idx = e.idx
		WHERE e.epoch = $1 AND e.idx >= $2 ORDER BY e.idx`, s.epoch, int64(from))
	if err != nil {
		return fmt.Errorf("read audit entries: %w", err)
	}
	defer rows.Close()
	next := from
	var idx int64
	var data, leaf []byte
	for rows.Next() {
		if err := rows.Scan(&idx, &data, &leaf); err != nil {
			return fmt.Errorf("read audit entries: %w", err)
		}
		if uint64(idx) != next {
			return &audit.Damage{Index: next, What: fmt.Sprintf("missing: the next entry stored is %d", idx)}
		}
		if err := fn(next, data, leaf); err != nil {
			return err
		}
		next++
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read audit entries: %w", err)
	}
	return nil
}

// Hashes implements audit.Source.
func (s *AuditLog) Hashes(ctx context.Context, k int, from, to uint64) ([][]byte, error) {
	rows, err := s.db.pool.Query(ctx, `SELECT idx, hash FROM audit_hashes WHERE epoch = $1 AND stratum = $2 AND idx >= $3 AND idx < $4 ORDER BY idx`,
		s.epoch, int16(k), int64(from), int64(to))
	if err != nil {
		return nil, fmt.Errorf("read audit tree: %w", err)
	}
	defer rows.Close()
	out := make([][]byte, 0, to-from)
	var idx int64
	var h []byte
	for rows.Next() {
		if err := rows.Scan(&idx, &h); err != nil {
			return nil, fmt.Errorf("read audit tree: %w", err)
		}
		if uint64(idx) != from+uint64(len(out)) {
			break
		}
		out = append(out, h)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read audit tree: %w", err)
	}
	if uint64(len(out)) != to-from {
		return nil, fmt.Errorf("audit tree level %d: hashes %d..%d are not all stored", 8*k, from, to-1)
	}
	return out, nil
}

// Prune implements audit.SharedStore.
func (s *AuditLog) Prune(ctx context.Context, keep uint64) error {
	return pgx.BeginFunc(ctx, s.db.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `UPDATE audit_logs SET pruned = greatest(pruned, $2) WHERE epoch = $1`, s.epoch, int64(keep)); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM audit_entries WHERE epoch = $1 AND idx < $2`, s.epoch, int64(keep)); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `DELETE FROM audit_hashes WHERE epoch = $1 AND stratum = 0 AND idx < $2`, s.epoch, int64(keep))
		return err
	})
}

// Lead implements audit.SharedStore with a session-level advisory lock,
// held by one connection taken out of the pool: if that session ends, the
// lock goes with it and another instance can lead.
func (s *AuditLog) Lead(ctx context.Context) (audit.Leadership, bool, error) {
	conn, err := s.db.pool.Acquire(ctx)
	if err != nil {
		return nil, false, fmt.Errorf("audit lead: %w", err)
	}
	var ok bool
	key := s.lockKey()
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, key).Scan(&ok); err != nil {
		conn.Release()
		return nil, false, fmt.Errorf("audit lead: %w", err)
	}
	if !ok {
		conn.Release()
		return nil, false, nil
	}
	return &leadership{conn: conn, key: key}, true, nil
}

// lockKey is the advisory lock of this epoch's tree.
func (s *AuditLog) lockKey() int64 {
	h := fnv.New64a()
	fmt.Fprintf(h, "lethe audit tree %d", s.epoch)
	return int64(h.Sum64())
}

type leadership struct {
	mu   sync.Mutex
	conn *pgxpool.Conn
	key  int64
}

// Check implements audit.Leadership: a session-level advisory lock is held
// as long as its session lives, so the lead is lost exactly when the
// connection is.
func (l *leadership) Check(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conn == nil {
		return errors.New("audit lead released")
	}
	if err := l.conn.Ping(ctx); err != nil {
		return fmt.Errorf("audit lead lost: %w", err)
	}
	return nil
}

func (l *leadership) Release() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conn == nil {
		return
	}
	if _, err := l.conn.Exec(context.Background(), `SELECT pg_advisory_unlock($1)`, l.key); err != nil {
		// The session's state is unknown: close it, which drops the lock.
		l.conn.Conn().Close(context.Background())
	}
	l.conn.Release()
	l.conn = nil
}
