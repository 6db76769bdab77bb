package audit

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// Prune removes the oldest segments (65,536 events each) whose newest
// event is older than before, and returns the index of the first entry
// kept. It keeps the tree files, so the remaining entries still verify
// against every checkpoint; it never removes the segment being written or
// entries no checkpoint covers yet. The pruning itself is recorded in the
// log (action audit.prune) before any file is removed.
func (l *Log) Prune(ctx context.Context, before time.Time) (uint64, error) {
	if err := l.checkpoint(ctx); err != nil {
		return 0, fmt.Errorf("prune audit log: %w", err)
	}
	pruned := l.pruned.Load()
	keep, err := prunable(ctx, l.store, pruned, l.cpSize.Load(), before)
	if err != nil {
		return pruned, err
	}
	if keep == pruned {
		return pruned, nil
	}
	if err := l.Record(ctx, pruneEvent(pruned, keep)); err != nil {
		return pruned, fmt.Errorf("prune audit log: %w", err)
	}
	// The marker first: a crash after it leaves files that the next Open
	// removes; a crash before it leaves the log as it was.
	if err := writeFileSync(filepath.Join(l.dir, "pruned"), []byte(strconv.FormatUint(keep, 10)+"\n")); err != nil {
		return pruned, fmt.Errorf("prune audit log: %w", err)
	}
	l.pruned.Store(keep)
	for seg := pruned >> segmentBits; seg < keep>>segmentBits; seg++ {
		for _, ext := range []string{".log", ".idx"} {
			if err := os.Remove(l.segmentPath(seg, ext)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return keep, fmt.Errorf("prune audit log: %w", err)
			}
		}
	}
	l.log.Info("audit log pruned", "first_kept", keep, "removed", keep-pruned)
	return keep, syncDir(filepath.Join(l.dir, "entries"))
}
