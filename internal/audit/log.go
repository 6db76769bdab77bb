package audit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lethe-privacy/lethe"
	"github.com/transparency-dev/merkle/compact"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/sys/unix"
)

// Options configures a Log.
type Options struct {
	// Origin names the log in its checkpoints (C2SP: a schema-less URL,
	// unique to this log); it must also be the Signer's key name.
	Origin string
	// Signer signs checkpoints (Ed25519, see NewSigner).
	Signer note.Signer
	// Anchor keeps the latest checkpoint apart from the log's files, so
	// that rolling them back is seen. Required.
	Anchor lethe.CheckpointStore
	// Publish sends every checkpoint to places outside Lethe's control.
	Publish []Publisher
	// Interval is the most time between checkpoints while events flow;
	// one second if zero.
	Interval time.Duration
	// Logger receives operational messages (never event contents). The
	// default discards them.
	Logger *slog.Logger
}

// check checks the options and fills in the defaults; it returns the
// verifier of the signer.
func (opts *Options) check() (note.Verifier, error) {
	if opts.Signer == nil || opts.Anchor == nil || opts.Origin == "" {
		return nil, errors.New("open audit log: origin, signer and anchor are required")
	}
	if opts.Signer.Name() != opts.Origin {
		return nil, fmt.Errorf("open audit log: signer key name %q is not the origin %q", opts.Signer.Name(), opts.Origin)
	}
	verifier, err := verifierOf(opts.Signer)
	if err != nil {
		return nil, fmt.Errorf("open audit log: %w", err)
	}
	if opts.Interval <= 0 {
		opts.Interval = time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return verifier, nil
}

// Log is the audit log in one directory. It is safe for concurrent use; the
// caller must Close it. Only one process may open a directory at a time.
type Log struct {
	store
	opts     Options
	verifier note.Verifier
	log      *slog.Logger
	lock     *os.File // holds the directory's flock

	c committer // group commit; a failed write is sticky

	// w is the write position; only the current leader (or Open, or
	// Close) touches it.
	w writer

	size   atomic.Uint64 // entries durable and readable
	pruned atomic.Uint64 // first entry still kept

	// treeMu guards rng and the hash files while the leader extends them.
	treeMu sync.Mutex
	rng    *compact.Range

	cpMu   sync.Mutex // one checkpoint at a time
	cpSize atomic.Uint64
	cpErr  atomic.Pointer[error] // last checkpoint failure, nil when fine
	cpFile *os.File

	stop chan struct{}
	done chan struct{}
}

var _ lethe.Auditor = (*Log)(nil)

// ErrDamaged marks the errors with which Open refuses a log whose files
// were damaged, truncated or rolled back: its history can no longer be
// proven. 'lethe audit verify' shows where.
var ErrDamaged = errors.New("audit log damaged or rolled back")

func damaged(format string, args ...any) error {
	return fmt.Errorf("%w: %w", ErrDamaged, fmt.Errorf(format, args...))
}

// Open opens the log in dir, creating it if it does not exist. It
// recovers from a crash: a record cut short by the crash (never
// acknowledged) is dropped and the tree is rebuilt past the last
// checkpoint. It refuses to open a log whose files do not match its last
// checkpoint, or that holds fewer entries than the anchor's checkpoint
// (rolled back or truncated): run Verify to see where.
func Open(ctx context.Context, dir string, opts Options) (*Log, error) {
	verifier, err := opts.check()
	if err != nil {
		return nil, err
	}
	for _, d := range []string{dir, filepath.Join(dir, "entries"), filepath.Join(dir, "tree")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("open audit log: %w", err)
		}
	}
	lock, err := os.OpenFile(filepath.Join(dir, "LOCK"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open audit log: %w", err)
	}
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		lock.Close()
		return nil, fmt.Errorf("open audit log %s: in use by another process (%w)", dir, err)
	}
	l := &Log{store: store{dir}, opts: opts, verifier: verifier, log: opts.Logger, lock: lock,
		stop: make(chan struct{}), done: make(chan struct{})}
	l.c = committer{commit: l.commit, sticky: true, log: opts.Logger}
	if err := l.recover(ctx); err != nil {
		l.closeFiles()
		return nil, fmt.Errorf("open audit log %s: %w", dir, err)
	}
	go l.checkpointLoop()
	return l, nil
}

// Record appends the events, each as one entry, and returns once they are
// durable. Either all are recorded or Record fails; after a failed write
// every later Record fails too (fail closed), until the log is reopened.
func (l *Log) Record(ctx context.Context, events ...lethe.AuditEvent) error {
	return record(ctx, l.Append, events)
}

// Append appends entries to the log and returns the index of the first once
// all are on stable storage. Concurrent Appends share one write and one
// sync. EINVALID for an empty or oversized entry.
func (l *Log) Append(ctx context.Context, entries ...[]byte) (uint64, error) {
	if err := checkEntries(entries); err != nil {
		return 0, err
	}
	p := newPending(entries)
	p.leaves = make([][]byte, len(entries))
	for i, e := range entries {
		p.leaves[i] = leafHash(e) // here, by each caller, rather than by the leader
	}
	return l.c.submit(ctx, p)
}

// checkEntries refuses an empty batch or an empty or oversized entry.
func checkEntries(entries [][]byte) error {
	if len(entries) == 0 {
		return lethe.Errorf(lethe.EINVALID, "no audit entries to append")
	}
	for _, e := range entries {
		if len(e) == 0 || len(e) > MaxEntrySize {
			return lethe.Errorf(lethe.EINVALID, "audit entry of %d bytes; must be 1..%d", len(e), MaxEntrySize)
		}
	}
	return nil
}

// Size returns the number of durable entries.
func (l *Log) Size() uint64 { return l.size.Load() }

// Pruned returns the index of the first entry still kept; entries before it
// were pruned and only their tree hashes remain.
func (l *Log) Pruned() uint64 { return l.pruned.Load() }

// Ping reports whether the log accepts events and checkpoints, for /readyz.
func (l *Log) Ping(context.Context) error {
	if err := l.c.ping(); err != nil {
		return err
	}
	if p := l.cpErr.Load(); p != nil {
		return lethe.Errorf(lethe.EUNAVAILABLE, "audit checkpoint failing")
	}
	return nil
}

// Close stops accepting entries, waits for the ones in flight, writes a
// final checkpoint and closes the files.
func (l *Log) Close() error {
	first, failed := l.c.close()
	if !first {
		return nil
	}
	close(l.stop)
	<-l.done
	var err error
	if failed == nil {
		err = l.checkpoint(context.Background())
	}
	return errors.Join(err, l.closeFiles())
}

// Checkpoint signs and stores a checkpoint of the log as it is now, if it
// grew since the last one. The log also does this by itself every Interval.
func (l *Log) Checkpoint(ctx context.Context) error {
	return l.checkpoint(ctx)
}

func (l *Log) checkpointLoop() {
	defer close(l.done)
	t := time.NewTicker(l.opts.Interval)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), 10*l.opts.Interval)
			if err := l.checkpoint(ctx); err != nil {
				l.log.Error("audit checkpoint failed", "err", err.Error())
			}
			cancel()
		}
	}
}
