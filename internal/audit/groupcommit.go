package audit

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/lethe-privacy/lethe"
)

// committer makes concurrent appends share one commit (group commit): an
// append that finds a commit in progress queues; when the commit ends, the
// first in the queue leads the next one, for everything queued meanwhile.
// A lone append commits at once: there is no timer to wait for.
type committer struct {
	commit func(batch []*pending) error // writes the batch durably, sets each first
	sticky bool                         // a failed commit refuses everything after it
	log    *slog.Logger

	mu      sync.Mutex
	queue   []*pending
	spare   []*pending
	leading bool
	failed  error
	closed  bool
}

// pending is one append waiting in the commit queue.
type pending struct {
	entries [][]byte
	leaves  [][]byte // their leaf hashes, where the log computes them up front
	first   uint64   // index of the first entry, once committed
	err     error
	lead    bool          // set when this waiter must lead the next commit
	wake    chan struct{} // signalled when done or when it must lead
}

func newPending(entries [][]byte) *pending {
	return &pending{entries: entries, wake: make(chan struct{}, 1)}
}

// submit queues p and returns once it is committed or failed.
func (c *committer) submit(ctx context.Context, p *pending) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	c.mu.Lock()
	if err := c.refusing(); err != nil {
		c.mu.Unlock()
		return 0, err
	}
	c.queue = append(c.queue, p)
	if c.leading {
		c.mu.Unlock()
		<-p.wake
		if !p.lead {
			return p.first, p.err
		}
		c.mu.Lock()
	}
	c.leading = true
	c.lead()
	return p.first, p.err
}

// refusing returns why no more appends are accepted, or nil. c.mu held.
func (c *committer) refusing() error {
	if c.closed {
		return lethe.Errorf(lethe.EUNAVAILABLE, "audit log closed")
	}
	if c.failed != nil {
		return lethe.Errorf(lethe.EUNAVAILABLE, "audit log failed; restart to recover")
	}
	return nil
}

// ping reports whether appends are accepted.
func (c *committer) ping() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.refusing()
}

// lead commits everything queued, then hands leadership to the first
// waiter that queued meanwhile, if any. Called with c.mu held; returns
// with it released.
func (c *committer) lead() {
	batch := c.queue
	c.queue = c.spare[:0]
	c.mu.Unlock()
	err := c.commit(batch)
	c.mu.Lock()
	if err != nil {
		if c.sticky {
			if c.failed == nil {
				c.log.Error("audit log write failed; refusing further events", "err", err.Error())
			}
			c.failed = err
		} else {
			c.log.Error("audit log append failed", "err", err.Error())
		}
		err = lethe.Errorf(lethe.EUNAVAILABLE, "audit log write failed")
	}
	for _, p := range batch {
		p.err = err
	}
	// batch[0] is the leader itself (the first in the queue when it took
	// over): it returns without waiting. The others are woken before the
	// batch's slice is reused.
	for _, p := range batch[1:] {
		p.wake <- struct{}{}
	}
	if len(c.queue) > 0 {
		next := c.queue[0]
		next.lead = true
		next.wake <- struct{}{}
	} else {
		c.leading = false
	}
	clear(batch)
	c.spare = batch[:0]
	c.mu.Unlock()
}

// close refuses new appends, waits for the commits in flight, and returns
// the sticky failure, if any. It reports false if already closed.
func (c *committer) close() (bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return false, c.failed
	}
	c.closed = true
	for c.leading {
		// Let the commit in flight finish, and hand over to the waiters
		// already queued, before the storage is closed under them.
		c.mu.Unlock()
		time.Sleep(time.Millisecond)
		c.mu.Lock()
	}
	return true, c.failed
}
