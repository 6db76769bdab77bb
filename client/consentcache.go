package client

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/consent"
)

// ConsentCacheConfig configures a ConsentCache.
type ConsentCacheConfig struct {
	// MaxStaleness bounds how old the cache may be: when nothing has come
	// from the stream for longer (the server sends a heartbeat every
	// 250 ms), checks go to the server instead, and fail (deny) if it
	// cannot answer. One second if zero.
	MaxStaleness time.Duration
}

// ConsentCache answers consent checks in process, from a copy of the
// ledger's standing that it keeps current by following the server's
// stream of ledger events: a check costs a map lookup, and a withdrawal
// reaches it within milliseconds. It never answers from a copy older than
// MaxStaleness. A subject the ledger has no event for is asked about once
// (does the vault hold it?) and remembered. It is safe for concurrent use;
// the caller must Close it.
type ConsentCache struct {
	c        *Client
	tenant   string
	maxStale time.Duration

	mu sync.RWMutex
	st *consent.State

	heard atomic.Int64 // unix nanoseconds when the stream last spoke
	// A check reads neither the clock nor heard: a ticker keeps clock
	// (for consent expiry) and stale (heard too long ago) current every
	// tick, so that a check costs a map lookup and two atomic loads.
	clock  atomic.Int64
	stale  atomic.Bool
	ready  chan struct{}
	once   sync.Once
	cancel context.CancelFunc
	done   chan struct{}
}

// NewConsentCache loads the purposes and the ledger of the client's tenant
// and starts following it. It returns once the cache has caught up with
// the ledger, or with ctx's error.
func (c *Client) NewConsentCache(ctx context.Context, cfg ConsentCacheConfig) (*ConsentCache, error) {
	purposes, err := c.Purposes(ctx)
	if err != nil {
		return nil, err
	}
	if cfg.MaxStaleness <= 0 {
		cfg.MaxStaleness = time.Second
	}
	tenant := c.tenant
	if tenant == "" {
		tenant = lethe.DefaultTenant
	}
	fctx, cancel := context.WithCancel(context.Background())
	cc := &ConsentCache{c: c, tenant: tenant, maxStale: cfg.MaxStaleness, st: consent.NewState(purposes),
		ready: make(chan struct{}), cancel: cancel, done: make(chan struct{})}
	cc.stale.Store(true)
	cc.clock.Store(time.Now().UnixNano())
	go cc.follow(fctx)
	go cc.tick(fctx)
	select {
	case <-cc.ready:
		return cc, nil
	case <-ctx.Done():
		cc.Close()
		return nil, ctx.Err()
	}
}

// Close stops following the ledger.
func (cc *ConsentCache) Close() error {
	cc.cancel()
	<-cc.done
	return nil
}

// Revision returns the ledger revision the cache has reached.
func (cc *ConsentCache) Revision() uint64 {
	cc.mu.RLock()
	defer cc.mu.RUnlock()
	return cc.st.Revision()
}

// Allowed reports whether the subject may be processed for the purpose.
// Any error means no.
func (cc *ConsentCache) Allowed(ctx context.Context, subjectID, purpose string) (bool, error) {
	d, err := cc.Check(ctx, subjectID, purpose)
	return d.Allowed, err
}

// Check decides from memory whether the subject may be processed for the
// purpose, or from the server if the cache is staler than MaxStaleness or
// does not know the subject.
func (cc *ConsentCache) Check(ctx context.Context, subjectID, purpose string) (lethe.ConsentDecision, error) {
	if cc.stale.Load() {
		return cc.c.CheckConsent(ctx, subjectID, purpose, cc.Revision())
	}
	now := time.Unix(0, cc.clock.Load())
	cc.mu.RLock()
	d := cc.st.Decide(cc.tenant, subjectID, purpose, now, false)
	cc.mu.RUnlock()
	if d.Reason != lethe.DecisionUnknownSubject {
		return d, nil
	}
	sd, err := cc.c.CheckConsent(ctx, subjectID, purpose, d.Revision)
	if err != nil {
		return lethe.ConsentDecision{Reason: lethe.DecisionUncertain, Revision: d.Revision}, err
	}
	if sd.Reason != lethe.DecisionUnknownSubject && sd.Reason != lethe.DecisionErased && sd.Reason != lethe.DecisionUnknownPurpose && sd.Reason != lethe.DecisionUncertain {
		cc.mu.Lock()
		cc.st.MarkExists(cc.tenant, subjectID)
		cc.mu.Unlock()
	}
	return sd, nil
}

// clockTick is how often the cache's clock and staleness are brought up to
// date: consent expiry is judged to within this, and staleness within
// MaxStaleness plus this.
const clockTick = 5 * time.Millisecond

// tick keeps clock and stale current until ctx ends.
func (cc *ConsentCache) tick(ctx context.Context) {
	t := time.NewTicker(clockTick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			cc.clock.Store(now.UnixNano())
			cc.stale.Store(now.Sub(time.Unix(0, cc.heard.Load())) > cc.maxStale)
		}
	}
}

// follow keeps the cache current until ctx ends, reconnecting with
// backoff when the stream breaks.
func (cc *ConsentCache) follow(ctx context.Context) {
	defer close(cc.done)
	backoff := 50 * time.Millisecond
	for ctx.Err() == nil {
		err := cc.stream(ctx)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			backoff = 50 * time.Millisecond
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}

// stream reads the server's event stream from the cache's revision on,
// applying each event, until it breaks or ctx ends.
func (cc *ConsentCache) stream(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, "GET", cc.c.base.String()+"/v1/consent/stream?after="+strconv.FormatUint(cc.Revision(), 10), nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Authorization", "Bearer "+cc.c.key)
	if cc.c.tenant != "" {
		req.Header.Set("Lethe-Tenant", cc.c.tenant)
	}
	hc := *cc.c.http
	hc.Timeout = 0 // the stream is long-lived; staleness is watched instead
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
		return fmt.Errorf("consent stream: %s", resp.Status)
	}
	r := bufio.NewReaderSize(resp.Body, 64<<10)
	var event string
	var data []byte
	for {
		line, err := r.ReadSlice('\n')
		if err != nil {
			if errors.Is(err, bufio.ErrBufferFull) {
				return errors.New("consent stream: line too long")
			}
			return err
		}
		line = bytes.TrimRight(line, "\r\n")
		switch {
		case len(line) == 0: // end of an event
			if err := cc.dispatch(event, data); err != nil {
				return err
			}
			event, data = "", data[:0]
		case bytes.HasPrefix(line, []byte("event: ")):
			event = string(line[len("event: "):])
		case bytes.HasPrefix(line, []byte("data: ")):
			data = append(data, line[len("data: "):]...)
		}
	}
}

// dispatch applies one event of the stream.
func (cc *ConsentCache) dispatch(event string, data []byte) error {
	switch event {
	case "consent":
		var ev lethe.ConsentEvent
		if err := json.Unmarshal(data, &ev); err != nil {
			return fmt.Errorf("consent stream: %w", err)
		}
		cc.mu.Lock()
		if ev.Revision > cc.st.Revision() {
			cc.st.Apply(&ev)
		}
		cc.mu.Unlock()
	case "revision":
		var h struct {
			Revision uint64 `json:"revision"`
		}
		if err := json.Unmarshal(data, &h); err != nil {
			return fmt.Errorf("consent stream: %w", err)
		}
		cc.mu.Lock()
		cc.st.Advance(h.Revision)
		cc.mu.Unlock()
		cc.once.Do(func() { close(cc.ready) })
	default:
		return nil
	}
	now := time.Now().UnixNano()
	cc.heard.Store(now)
	if cc.stale.Load() {
		cc.clock.Store(now)
		cc.stale.Store(false)
	}
	return nil
}
