package vault

import (
	"container/list"
	"sync"
)

// KeyCache is a bounded least-recently-used cache of unwrapped keys by ID
// (such as a subject ID), so that a request touching one subject many times
// unwraps its key once. It is safe for concurrent use. Erasure must call
// Delete: it removes the entry and zeroes the cached copy of the key.
type KeyCache struct {
	mu       sync.Mutex
	capacity int
	ll       *list.List // front is the most recently used
	items    map[string]*list.Element
}

type cacheEntry struct {
	id  string
	key Key
}

// NewKeyCache returns a cache holding at most capacity keys. A capacity of
// zero or less gives a cache that holds nothing, which turns caching off.
func NewKeyCache(capacity int) *KeyCache {
	return &KeyCache{
		capacity: max(capacity, 0),
		ll:       list.New(),
		items:    make(map[string]*list.Element),
	}
}

// Get returns a copy of the key cached under id and marks it most recently
// used. The bool is false if there is none.
func (c *KeyCache) Get(id string) (Key, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.items[id]
	if !ok {
		return Key{}, false
	}
	c.ll.MoveToFront(e)
	return e.Value.(*cacheEntry).key, true
}

// Put caches k under id as the most recently used key, replacing any key
// cached under id, and evicts the least recently used key if the cache is
// over capacity.
func (c *KeyCache) Put(id string, k Key) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.capacity == 0 {
		return
	}
	if e, ok := c.items[id]; ok {
		e.Value.(*cacheEntry).key = k
		c.ll.MoveToFront(e)
		return
	}
	c.items[id] = c.ll.PushFront(&cacheEntry{id: id, key: k})
	for c.ll.Len() > c.capacity {
		c.remove(c.ll.Back())
	}
}

// Delete removes the key cached under id, if any, and zeroes the cached
// copy. Erasing a subject calls it so that the erased key cannot be served
// from memory afterwards.
func (c *KeyCache) Delete(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.items[id]; ok {
		c.remove(e)
	}
}

// Purge removes and zeroes every cached key. Erasing a whole tenant may call
// it rather than find each of the tenant's cached subjects.
func (c *KeyCache) Purge() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for e := c.ll.Front(); e != nil; e = e.Next() {
		clear(e.Value.(*cacheEntry).key[:])
	}
	c.ll.Init()
	clear(c.items)
}

// Len returns the number of cached keys.
func (c *KeyCache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ll.Len()
}

// remove drops e from the cache and zeroes its key; c.mu must be held.
func (c *KeyCache) remove(e *list.Element) {
	ent := c.ll.Remove(e).(*cacheEntry)
	delete(c.items, ent.id)
	clear(ent.key[:])
}
