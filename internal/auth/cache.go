package auth

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/orrery-dev/orrery/internal/policy"
)

// Caches hold what every authenticated request looks up in the catalog:
// access keys (with their decrypted secret and parsed policy), bearer
// tokens, workspaces' status and their resource policies. Without them a signed remote write costs
// two SQL round trips, an AES-GCM decryption and a policy parse.
//
// An entry is served until it is TTL old or is forgotten. The process that
// changes a record (revokes a key or token, deletes a workspace) forgets
// it at once, so the change holds there for the next request; another
// replica sharing the catalog sees it within TTL.
type Caches struct {
	Keys       *Cache[Key]
	Tokens     *Cache[Token]
	Workspaces *Cache[string] // workspace ID → status.
	// Policies: workspace ID → its resource policy, nil for none (cached
	// too: most workspaces have none, and every request to one asks).
	Policies *Cache[*policy.Policy]
}

// NewCaches returns the caches, or nil when ttl is 0 (no caching). A nil
// now means time.Now.
func NewCaches(ttl time.Duration, now func() time.Time, reg prometheus.Registerer) *Caches {
	if ttl <= 0 {
		return nil
	}
	if now == nil {
		now = time.Now
	}
	lookups := promauto.With(reg).NewCounterVec(prometheus.CounterOpts{
		Name: "orrery_auth_cache_lookups_total",
		Help: "Lookups of access keys, bearer tokens and workspaces' status by authentication, by cache and result (hit: answered from memory).",
	}, []string{"cache", "result"})
	return &Caches{
		Keys:       newCache[Key](ttl, now, lookups, "keys"),
		Tokens:     newCache[Token](ttl, now, lookups, "tokens"),
		Workspaces: newCache[string](ttl, now, lookups, "workspaces"),
		Policies:   newCache[*policy.Policy](ttl, now, lookups, "resource_policies"),
	}
}

// maxCacheEntries bounds a cache. Only records that exist are cached, so
// it takes that many keys, tokens or workspaces to reach it.
const maxCacheEntries = 100_000

// Cache remembers found lookups for a TTL. Lookups of names that do not
// exist are not remembered: they cost a lookup each time but no memory, and
// a record created on another replica is usable at once. A nil *Cache
// caches nothing. It is safe for concurrent use.
type Cache[V any] struct {
	ttl          time.Duration
	now          func() time.Time
	hits, misses prometheus.Counter

	mu      sync.Mutex
	entries map[string]cacheEntry[V]
	// forgets counts Forget calls: a lookup begun before one may have read
	// the record before it changed, so its answer is not cached.
	forgets uint64
}

type cacheEntry[V any] struct {
	v       V
	expires time.Time
}

// NewCache returns a cache of its own, for another component's lookups on
// a request's path; its hits and misses are not counted. A nil now means
// time.Now.
func NewCache[V any](ttl time.Duration, now func() time.Time) *Cache[V] {
	if now == nil {
		now = time.Now
	}
	uncounted := prometheus.NewCounter(prometheus.CounterOpts{Name: "uncounted"})
	return &Cache[V]{ttl: ttl, now: now, entries: map[string]cacheEntry[V]{}, hits: uncounted, misses: uncounted}
}

func newCache[V any](ttl time.Duration, now func() time.Time, lookups *prometheus.CounterVec, name string) *Cache[V] {
	return &Cache[V]{ttl: ttl, now: now, entries: map[string]cacheEntry[V]{},
		hits: lookups.WithLabelValues(name, "hit"), misses: lookups.WithLabelValues(name, "miss")}
}

// Get returns the value cached for key, or calls lookup and caches what it
// found. Concurrent misses of one key may each call lookup.
func (c *Cache[V]) Get(ctx context.Context, key string, lookup func(context.Context, string) (V, bool, error)) (V, bool, error) {
	if c == nil {
		return lookup(ctx, key)
	}
	now := c.now()
	c.mu.Lock()
	e, ok := c.entries[key]
	forgets := c.forgets
	c.mu.Unlock()
	if ok && now.Before(e.expires) {
		c.hits.Inc()
		return e.v, true, nil
	}
	c.misses.Inc()
	v, found, err := lookup(ctx, key)
	if err != nil || !found {
		return v, found, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.forgets != forgets {
		return v, true, nil
	}
	if len(c.entries) >= maxCacheEntries {
		for k, e := range c.entries {
			if !now.Before(e.expires) {
				delete(c.entries, k)
			}
		}
		if len(c.entries) >= maxCacheEntries {
			clear(c.entries)
		}
	}
	c.entries[key] = cacheEntry[V]{v: v, expires: now.Add(c.ttl)}
	return v, true, nil
}

// Forget drops key, so that the next Get looks it up.
func (c *Cache[V]) Forget(key string) {
	if c == nil {
		return
	}
	c.mu.Lock()
	delete(c.entries, key)
	c.forgets++
	c.mu.Unlock()
}
