package registryproxy

import (
	"container/list"
	"sync"
	"time"
)

// ttlCache is a small map whose entries expire; when full, expired entries go first, then
// the oldest inserted.
type ttlCache[V any] struct {
	mu    sync.Mutex
	max   int
	items map[string]*list.Element
	order *list.List // front = newest
}

type ttlEntry[V any] struct {
	key     string
	val     V
	expires time.Time
}

func newTTLCache[V any](max int) *ttlCache[V] {
	return &ttlCache[V]{max: max, items: map[string]*list.Element{}, order: list.New()}
}

func (c *ttlCache[V]) get(key string, now time.Time) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var zero V
	e, ok := c.items[key]
	if !ok {
		return zero, false
	}
	ent := e.Value.(*ttlEntry[V])
	if !now.Before(ent.expires) {
		c.order.Remove(e)
		delete(c.items, key)
		return zero, false
	}
	return ent.val, true
}

func (c *ttlCache[V]) put(key string, val V, expires time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.items[key]; ok {
		c.order.Remove(e)
		delete(c.items, key)
	}
	for c.order.Len() >= c.max {
		oldest := c.order.Back()
		c.order.Remove(oldest)
		delete(c.items, oldest.Value.(*ttlEntry[V]).key)
	}
	c.items[key] = c.order.PushFront(&ttlEntry[V]{key: key, val: val, expires: expires})
}

func (c *ttlCache[V]) remove(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.items[key]; ok {
		c.order.Remove(e)
		delete(c.items, key)
	}
}

// manifestCache keeps manifests fetched by digest (immutable), least recently used first out,
// bounded in bytes.
type manifestCache struct {
	mu    sync.Mutex
	max   int64
	size  int64
	items map[string]*list.Element
	lru   *list.List // front = most recent
}

type manifestItem struct {
	key string
	m   *manifest
}

func newManifestCache(max int64) *manifestCache {
	return &manifestCache{max: max, items: map[string]*list.Element{}, lru: list.New()}
}

func (c *manifestCache) get(key string) *manifest {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.items[key]
	if !ok {
		return nil
	}
	c.lru.MoveToFront(e)
	return e.Value.(*manifestItem).m
}

func (c *manifestCache) put(key string, m *manifest) {
	n := int64(len(m.body) + len(key))
	if n > c.max {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.items[key]; ok {
		return
	}
	for c.size+n > c.max {
		old := c.lru.Back()
		it := old.Value.(*manifestItem)
		c.lru.Remove(old)
		delete(c.items, it.key)
		c.size -= int64(len(it.m.body) + len(it.key))
	}
	c.items[key] = c.lru.PushFront(&manifestItem{key: key, m: m})
	c.size += n
}
