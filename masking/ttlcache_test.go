package masking

import (
	"runtime"
	"testing"
	"time"
)

func TestTTLCacheExpires(t *testing.T) {
	c := newTTLCache[string, int](2, time.Minute)
	now := time.Unix(1000, 0)
	c.now = func() time.Time { return now }
	c.Add("a", 1)
	if v, ok := c.Get("a"); !ok || v != 1 {
		t.Fatalf("fresh entry: %d, %v", v, ok)
	}
	now = now.Add(time.Minute)
	if _, ok := c.Get("a"); ok {
		t.Fatal("entry still served after its ttl")
	}
	if c.entries.Len() != 0 {
		t.Fatal("expired entry kept")
	}
	c.Add("a", 1)
	c.Add("b", 2)
	c.Add("c", 3)
	if _, ok := c.Get("a"); ok {
		t.Fatal("least recently used entry not evicted at the size limit")
	}
}

// TestCatalogPerReloadStartsNoGoroutine: a catalog reader is made for every
// rules generation; it must not start goroutines that outlive it.
func TestCatalogPerReloadStartsNoGoroutine(t *testing.T) {
	before := runtime.NumGoroutine()
	for range 100 {
		newDBCatalog(nil, nil)
	}
	if after := runtime.NumGoroutine(); after > before {
		t.Fatalf("100 catalog readers left %d goroutines behind", after-before)
	}
}
