package masking

import (
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
)

// ttlCache is an LRU whose entries expire ttl after they were added. It
// checks expiry when an entry is read instead of running a goroutine to
// evict: a catalog reader is made per database for every rules generation
// (each reload), and golang-lru's expirable LRU starts a goroutine that
// never ends, so each reload leaked three goroutines and their caches (found
// by `make soak`). It is safe for concurrent use.
type ttlCache[K comparable, V any] struct {
	entries *lru.Cache[K, ttlEntry[V]]
	ttl     time.Duration
	now     func() time.Time
}

type ttlEntry[V any] struct {
	v     V
	added time.Time
}

func newTTLCache[K comparable, V any](size int, ttl time.Duration) *ttlCache[K, V] {
	entries, _ := lru.New[K, ttlEntry[V]](size) // fails only for a size <= 0
	return &ttlCache[K, V]{entries: entries, ttl: ttl, now: time.Now}
}

// Get returns the value for k unless it is missing or has expired.
func (c *ttlCache[K, V]) Get(k K) (V, bool) {
	e, ok := c.entries.Get(k)
	if ok && c.now().Sub(e.added) < c.ttl {
		return e.v, true
	}
	if ok {
		c.entries.Remove(k)
	}
	var zero V
	return zero, false
}

func (c *ttlCache[K, V]) Add(k K, v V) { c.entries.Add(k, ttlEntry[V]{v, c.now()}) }

func (c *ttlCache[K, V]) Purge() { c.entries.Purge() }
