package api

import (
	"sync"
	"time"

	"github.com/lethe-privacy/lethe"
)

// keyCacheTTL is how long an authenticated key is trusted without asking
// the store again. A key revoked through this instance stops working at
// once; one revoked through another instance stops within this time. Every
// request still checks expiry and revocation times of the cached key.
const keyCacheTTL = time.Second

// keyCache remembers recently authenticated API keys by the hash of their
// secret, so that a busy client does not cost a store read per request. It
// holds hashes and key records, never secrets. It is safe for concurrent
// use.
type keyCache struct {
	mu      sync.Mutex
	ttl     time.Duration
	max     int
	entries map[string]cachedKey
}

type cachedKey struct {
	key     *lethe.APIKey
	fetched time.Time
}

func newKeyCache(ttl time.Duration, max int) *keyCache {
	return &keyCache{ttl: ttl, max: max, entries: map[string]cachedKey{}}
}

// get returns the cached key for hash if it was fetched less than the TTL
// before now, else nil.
func (c *keyCache) get(hash []byte, now time.Time) *lethe.APIKey {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[string(hash)]
	if !ok || now.Sub(e.fetched) >= c.ttl || now.Before(e.fetched) {
		return nil
	}
	return e.key
}

// put caches key under hash. A full cache is emptied first: the TTL is
// short, so rebuilding costs one read per active key.
func (c *keyCache) put(hash []byte, key *lethe.APIKey, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= c.max {
		clear(c.entries)
	}
	c.entries[string(hash)] = cachedKey{key: key, fetched: now}
}

// forget drops the key with the given ID, after it was revoked here.
func (c *keyCache) forget(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for h, e := range c.entries {
		if e.key.ID == id {
			delete(c.entries, h)
		}
	}
}
