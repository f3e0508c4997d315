package registryproxy

import (
	"math"
	"sync"

	"github.com/hashicorp/golang-lru/v2/simplelru"
)

// tagCacheEntries bounds the cache of tag → manifest answers. Its TTL comes from Config; it is
// an expirable.LRU, which keeps a goroutine that drops expired entries (every TTL/100) for the
// life of the process: one per Proxy.
const tagCacheEntries = 1024

// Bounds of the per-upstream state a client can make the mirror create: upstreams (each with
// an HTTP client and its idle connections) by ?ns=, least recently used out; and per upstream,
// tokens bought with its static credentials, one per repository scope.
const (
	upstreamEntries = 64
	tokenEntries    = 256
)

// newUpstreams is the upstream cache; an upstream pushed out closes its idle connections
// (requests still using it finish normally).
func newUpstreams() *simplelru.LRU[string, *upstream] {
	c, _ := simplelru.NewLRU(upstreamEntries, func(_ string, up *upstream) { up.client.CloseIdleConnections() })
	return c
}

// manifestCache keeps manifests fetched by digest (immutable), least recently used first out,
// bounded in bytes. golang-lru bounds entries, not bytes, so the byte count is kept here and
// the oldest entries go until a new one fits.
type manifestCache struct {
	mu   sync.Mutex
	max  int64
	size int64
	lru  *simplelru.LRU[string, *manifest]
}

func newManifestCache(max int64) *manifestCache {
	c := &manifestCache{max: max}
	// The entry bound never binds; the byte bound does. NewLRU fails only for a size below 1.
	c.lru, _ = simplelru.NewLRU(math.MaxInt, func(key string, m *manifest) { c.size -= manifestCost(key, m) })
	return c
}

func manifestCost(key string, m *manifest) int64 { return int64(len(m.body) + len(key)) }

func (c *manifestCache) get(key string) *manifest {
	c.mu.Lock()
	defer c.mu.Unlock()
	m, _ := c.lru.Get(key)
	return m
}

func (c *manifestCache) put(key string, m *manifest) {
	n := manifestCost(key, m)
	if n > c.max {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.lru.Contains(key) {
		return
	}
	for c.size+n > c.max {
		c.lru.RemoveOldest()
	}
	c.lru.Add(key, m)
	c.size += n
}
