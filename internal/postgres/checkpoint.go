package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/lethe-privacy/lethe"
)

var _ lethe.CheckpointStore = (*KeyStore)(nil)

// SaveCheckpoint stores note, the signed checkpoint of the audit log origin
// for a tree of size entries, as that log's latest, replacing a stored one
// of the same or a smaller size. ECONFLICT if the stored checkpoint is for a
// larger tree, and nothing changes; EINVALID if size exceeds math.MaxInt64
// (the largest a bigint holds) or note is empty; any other error is
// EINTERNAL. No error quotes the note.
//
// It is one statement, safe across lethe instances sharing the database:
// INSERT … ON CONFLICT DO UPDATE locks the stored row and tests the size
// against its latest committed version, so two saves racing cannot leave
// the smaller one stored.
func (s *KeyStore) SaveCheckpoint(ctx context.Context, origin string, size uint64, note []byte) error {
	if err := lethe.ValidCheckpoint(origin, size, note); err != nil {
		return err
	}
	tag, err := s.db.pool.Exec(ctx, `INSERT INTO audit_checkpoints (origin, size, note, saved_at) VALUES ($1, $2, $3, $4)
		ON CONFLICT (origin) DO UPDATE SET size = excluded.size, note = excluded.note, saved_at = excluded.saved_at
		WHERE excluded.size >= audit_checkpoints.size`, origin, int64(size), note, time.Now())
	if err != nil {
		return fmt.Errorf("save checkpoint of log %s: %w", origin, err)
	} else if tag.RowsAffected() == 0 {
		return lethe.Errorf(lethe.ECONFLICT, "log %s has a checkpoint for a larger tree than %d", origin, size)
	}
	return nil
}

// LatestCheckpoint returns the stored checkpoint of the audit log origin
// and its tree size. ENOTFOUND if none was saved; any other error is
// EINTERNAL.
func (s *KeyStore) LatestCheckpoint(ctx context.Context, origin string) (uint64, []byte, error) {
	var size int64
	var note []byte
	err := s.db.pool.QueryRow(ctx, `SELECT size, note FROM audit_checkpoints WHERE origin = $1`, origin).Scan(&size, &note)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil, lethe.Errorf(lethe.ENOTFOUND, "log %s has no checkpoint", origin)
	} else if err != nil {
		return 0, nil, fmt.Errorf("get checkpoint of log %s: %w", origin, err)
	}
	return uint64(size), note, nil // the column's CHECK keeps size non-negative
}
