package registryproxy

import (
	"strings"
	"testing"
)

// The manifest cache holds at most its bytes (bodies and keys), dropping the least recently
// used first.
func TestManifestCacheBoundInBytes(t *testing.T) {
	t.Parallel()
	body := func(n int) *manifest { return &manifest{status: 200, body: []byte(strings.Repeat("x", n))} }
	c := newManifestCache(300) // keys are one byte: three 99-byte bodies fit, a fourth does not
	c.put("a", body(99))
	c.put("b", body(99))
	c.put("c", body(99))
	if c.get("a") == nil { // a is now the most recently used, b the least
		t.Fatal("a is gone before the cache was full")
	}
	c.put("d", body(99))
	for key, want := range map[string]bool{"a": true, "b": false, "c": true, "d": true} {
		if got := c.get(key) != nil; got != want {
			t.Errorf("after d: %s cached = %v, want %v", key, got, want)
		}
	}
	c.put("big", body(300))
	if c.get("big") != nil || c.get("d") == nil {
		t.Error("a manifest larger than the whole cache displaced the others")
	}
	c.put("e", body(199)) // needs two entries' room: the two least recently used go
	if c.size > c.max {
		t.Errorf("size %d over the bound %d", c.size, c.max)
	}
	if c.get("e") == nil || c.get("d") == nil || c.get("a") != nil || c.get("c") != nil {
		t.Errorf("after e: a %v c %v d %v e %v, want only d and e", c.get("a") != nil, c.get("c") != nil, c.get("d") != nil, c.get("e") != nil)
	}
}
