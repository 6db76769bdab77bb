package vault

import (
	"fmt"
	"sync"
	"testing"
)

func TestKeyCacheEviction(t *testing.T) {
	c := NewKeyCache(3)
	k := func(i int) Key { return *testKey(byte(i)) }
	c.Put("a", k(1))
	c.Put("b", k(2))
	c.Put("c", k(3))
	if _, ok := c.Get("a"); !ok { // a is now the most recently used
		t.Fatal("Get(a): got miss, want hit")
	}
	c.Put("d", k(4)) // evicts b, the least recently used
	tests := []struct {
		id   string
		want bool
		key  Key
	}{
		{"a", true, k(1)}, {"b", false, Key{}}, {"c", true, k(3)}, {"d", true, k(4)},
	}
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			got, ok := c.Get(tt.id)
			if ok != tt.want || got != tt.key {
				t.Fatalf("Get: got hit %v (or another key), want hit %v", ok, tt.want)
			}
		})
	}
	// Order now, oldest first: a, c, d (each Get above refreshed it).
	c.Put("e", k(5)) // evicts a
	if _, ok := c.Get("a"); ok {
		t.Fatal("Get(a) after eviction: got hit, want miss")
	}
	c.Put("c", k(9)) // replaces, no eviction
	if got, _ := c.Get("c"); got != k(9) || c.Len() != 3 {
		t.Fatalf("replace: got len %d (or old key), want 3 and the new key", c.Len())
	}
}

func TestKeyCacheDelete(t *testing.T) {
	c := NewKeyCache(10)
	c.Put("sub_1", NewKey())
	c.Put("sub_2", NewKey())
	// Keep the element to check that its key bytes are zeroed.
	e := c.items["sub_1"].Value.(*cacheEntry)
	c.Delete("sub_1")
	c.Delete("sub_missing")
	if _, ok := c.Get("sub_1"); ok || c.Len() != 1 {
		t.Fatalf("after Delete: got hit %v, len %d, want miss, len 1", ok, c.Len())
	}
	if e.key != (Key{}) {
		t.Fatal("Delete left the key bytes in memory")
	}
	e = c.items["sub_2"].Value.(*cacheEntry)
	c.Purge()
	if c.Len() != 0 || len(c.items) != 0 || e.key != (Key{}) {
		t.Fatalf("after Purge: got len %d, want 0 and zeroed keys", c.Len())
	}
	c.Put("sub_3", NewKey())
	if c.Len() != 1 {
		t.Fatalf("Put after Purge: got len %d, want 1", c.Len())
	}
}

func TestKeyCacheZeroCapacity(t *testing.T) {
	for _, n := range []int{0, -1} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			c := NewKeyCache(n)
			c.Put("a", NewKey())
			if _, ok := c.Get("a"); ok || c.Len() != 0 {
				t.Fatalf("got hit %v, len %d, want miss, len 0", ok, c.Len())
			}
		})
	}
}

func TestKeyCacheConcurrent(t *testing.T) {
	const capacity = 50
	c := NewKeyCache(capacity)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 2000 {
				id := fmt.Sprintf("sub_%d", (i*7+g)%100)
				want := *testKey(byte((i*7 + g) % 100))
				switch i % 5 {
				case 0, 1:
					c.Put(id, want)
				case 2, 3:
					if got, ok := c.Get(id); ok && got != want {
						t.Errorf("Get(%s): got another key, want the one put", id)
					}
				case 4:
					c.Delete(id)
				}
				if i%500 == 0 && g == 0 {
					c.Purge()
				}
			}
		}()
	}
	wg.Wait()
	if n := c.Len(); n > capacity || n != len(c.items) {
		t.Fatalf("Len: got %d (map %d), want at most %d and equal", n, len(c.items), capacity)
	}
}
