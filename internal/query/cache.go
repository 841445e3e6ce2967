package query

import (
	"container/list"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/util/annotations"

	"github.com/orrery-dev/orrery/internal/workspace"
)

// Cache keeps the answers of range queries, per workspace, query, step and
// step phase, as one contiguous extent of evaluation steps each, so that a
// dashboard refresh evaluates only the steps it has not seen.
//
// Invariant: a cached step t is the plain engine's answer at t for the
// workspace's data as it is now. A step's answer depends only on samples at
// or before t (queries that read later data — negative offsets, the @
// modifier — are never cached), so a write whose oldest sample is at mint
// leaves the steps before mint valid: Written cuts every extent of the
// workspace back to them. A query that is computing an extent registers it
// as pending first, and Written cuts pending extents too, so an answer
// computed from data older than a concurrent write is never stored.
//
// Cache is safe for concurrent use. Memory is bounded by the byte size
// given to NewCache; the least recently used extents are evicted first.
type Cache struct {
	maxBytes int64

	mu      sync.Mutex
	bytes   int64
	lru     *list.List // of *extent, most recently used first.
	entries map[cacheKey]*extent
	wss     map[workspace.ID]*wsCache
	// tied holds when a ranking's answer last had a tie (rangeQuery.tied):
	// such a query is evaluated whole for a while, without the second
	// evaluation that checks for ties, as its answers are not kept.
	tied map[cacheKey]time.Time

	// states is read without mu by Written, which runs on every commit.
	states sync.Map // workspace.ID → *wsCache

	hits, misses *prometheus.CounterVec
	evictions    prometheus.Counter
	size         prometheus.Gauge
}

type cacheKey struct {
	ws       workspace.ID
	query    string
	step     int64 // ms
	phase    int64 // start % step, ms
	lookback int64 // ms; 0 is the engine's default
}

// extent is the answer of one query at the steps from start to end
// (inclusive, ms), its series sorted by labels.
type extent struct {
	key        cacheKey
	start, end int64
	series     []promql.Series
	// pieces are the step ranges of the extent that returned annotations.
	// Annotations cannot be attributed to steps, but the engine emits them
	// step by step, so the annotations of a range are the union of its
	// steps', and a step outside every piece has none. An exact piece's
	// annotations are those of its whole range; a piece cut from a larger
	// one (inexact) holds a superset of its range's. See rangeQuery.Exec
	// for how they answer a request.
	pieces []piece
	// whole says that the extent answers exactly its range and no part of
	// it (a ranking with a tie, rangeQuery.tied): it is never sliced.
	whole bool
	bytes int64
	elem  *list.Element
}

type piece struct {
	start, end int64
	annos      annotations.Annotations
	exact      bool
}

// lastStep returns the last step of the key's step and phase at or before t.
func (k cacheKey) lastStep(t int64) int64 {
	return t - mod(t-k.phase, k.step)
}

// wsCache is the state of one workspace's extents.
type wsCache struct {
	// horizon is the latest step any extent or pending computation of the
	// workspace holds, so that a write after it needs no lock.
	horizon atomic.Int64
	extents map[*extent]struct{}
	pending map[*pendingExtent]struct{}
}

// pendingExtent is an extent being computed: steps after limit may no
// longer be stored, because a write landed there meanwhile.
type pendingExtent struct {
	limit int64
}

// NewCache returns a cache holding at most maxBytes of answers (estimated).
func NewCache(maxBytes int64, reg prometheus.Registerer) *Cache {
	f := promauto.With(reg)
	return &Cache{
		maxBytes: maxBytes,
		lru:      list.New(),
		entries:  map[cacheKey]*extent{},
		wss:      map[workspace.ID]*wsCache{},
		tied:     map[cacheKey]time.Time{},
		hits: f.NewCounterVec(prometheus.CounterOpts{Name: "orrery_query_cache_hit_steps_total",
			Help: "Evaluation steps of range queries answered from the results cache."}, []string{"workspace"}),
		misses: f.NewCounterVec(prometheus.CounterOpts{Name: "orrery_query_cache_miss_steps_total",
			Help: "Evaluation steps of cacheable range queries that were evaluated."}, []string{"workspace"}),
		evictions: f.NewCounter(prometheus.CounterOpts{Name: "orrery_query_cache_evictions_total",
			Help: "Cached extents evicted to stay within --query.cache-size."}),
		size: f.NewGauge(prometheus.GaugeOpts{Name: "orrery_query_cache_bytes",
			Help: "Estimated memory held by the results cache."}),
	}
}

func (c *Cache) ws(id workspace.ID) *wsCache {
	w := c.wss[id]
	if w == nil {
		w = &wsCache{extents: map[*extent]struct{}{}, pending: map[*pendingExtent]struct{}{}}
		w.horizon.Store(minInt64)
		c.wss[id] = w
		c.states.Store(id, w)
	}
	return w
}

const minInt64 = -1 << 63

// updateHorizon recomputes w.horizon; c.mu is held.
func (w *wsCache) updateHorizon() {
	h := int64(minInt64)
	for e := range w.extents {
		h = max(h, e.end)
	}
	for p := range w.pending {
		h = max(h, p.limit)
	}
	w.horizon.Store(h)
}

// Written tells the cache that samples at mint or later became visible to
// the workspace's queries (or were deleted). Cheap when mint is past every
// cached step, as it is for writes of current samples.
func (c *Cache) Written(id workspace.ID, mint int64) {
	if c == nil {
		return
	}
	v, ok := c.states.Load(id)
	if !ok || mint > v.(*wsCache).horizon.Load() {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	w := c.wss[id]
	if w == nil {
		return
	}
	for p := range w.pending {
		p.limit = min(p.limit, mint-1)
	}
	for e := range w.extents {
		if e.end < mint {
			continue
		}
		c.remove(e)
		// Keep the steps before mint.
		if cut := prefix(e, e.key.lastStep(mint-1)); cut != nil {
			c.insert(cut)
		}
	}
	w.updateHorizon()
}

// Drop forgets every extent of a workspace (deleted, or its configuration
// changed).
func (c *Cache) Drop(id workspace.ID) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	w := c.wss[id]
	if w == nil {
		return
	}
	for e := range w.extents {
		c.remove(e)
	}
	for k := range c.tied {
		if k.ws == id {
			delete(c.tied, k)
		}
	}
	for p := range w.pending {
		p.limit = minInt64
	}
	w.updateHorizon()
	c.hits.DeleteLabelValues(id.String())
	c.misses.DeleteLabelValues(id.String())
	if len(w.pending) == 0 {
		delete(c.wss, id)
		c.states.Delete(id)
	}
}

// tiedFor is how long a ranking whose answer had a tie is evaluated whole
// without checking again; maxTied bounds how many such queries are
// remembered.
const (
	tiedFor = 5 * time.Minute
	maxTied = 4096
)

// markTied records that key's answer had a tie at now.
func (c *Cache) markTied(key cacheKey, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.tied) >= maxTied {
		for k, t := range c.tied {
			if now.Sub(t) >= tiedFor {
				delete(c.tied, k)
			}
		}
		if len(c.tied) >= maxTied {
			clear(c.tied)
		}
	}
	c.tied[key] = now
}

// recentlyTied reports whether key's answer had a tie within tiedFor.
func (c *Cache) recentlyTied(key cacheKey, now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok := c.tied[key]
	return ok && now.Sub(t) < tiedFor
}

// begin registers a computation that may store steps up to limit.
func (c *Cache) begin(id workspace.ID, limit int64) *pendingExtent {
	c.mu.Lock()
	defer c.mu.Unlock()
	w := c.ws(id)
	p := &pendingExtent{limit: limit}
	w.pending[p] = struct{}{}
	w.updateHorizon()
	return p
}

// lookup returns the cached extent of key, marking it used. The caller
// may read it only through sliceExtent, under no lock: extents are never
// modified once inserted, only replaced.
func (c *Cache) lookup(key cacheKey) *extent {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.entries[key]
	if e != nil {
		c.lru.MoveToFront(e.elem)
	}
	return e
}

// finish ends a pending computation, storing e (may be nil) cut to the
// steps the computation may still store.
func (c *Cache) finish(p *pendingExtent, key cacheKey, e *extent) {
	c.mu.Lock()
	defer c.mu.Unlock()
	w := c.ws(key.ws)
	delete(w.pending, p)
	if e != nil && e.end > p.limit {
		e = prefix(e, key.lastStep(p.limit))
	}
	if e != nil && e.bytes <= c.maxBytes/4 {
		if old := c.entries[key]; old != nil {
			c.remove(old)
		}
		c.insert(e)
		for c.bytes > c.maxBytes {
			victim := c.lru.Back().Value.(*extent)
			c.remove(victim)
			c.evictions.Inc()
		}
	}
	w.updateHorizon()
}

// insert adds e; c.mu is held and e.key has no entry.
func (c *Cache) insert(e *extent) {
	e.elem = c.lru.PushFront(e)
	c.entries[e.key] = e
	c.ws(e.key.ws).extents[e] = struct{}{}
	c.bytes += e.bytes
	c.size.Set(float64(c.bytes))
}

// remove deletes e; c.mu is held.
func (c *Cache) remove(e *extent) {
	c.lru.Remove(e.elem)
	delete(c.entries, e.key)
	if w := c.wss[e.key.ws]; w != nil {
		delete(w.extents, e)
	}
	c.bytes -= e.bytes
	c.size.Set(float64(c.bytes))
}

// sliceExtent returns the steps of e from start to end (inclusive) as a new
// extent sharing e's points; series left without points are omitted. A
// piece cut by start or end becomes inexact.
func sliceExtent(e *extent, start, end int64) *extent {
	out := &extent{key: e.key, start: start, end: end}
	for _, p := range e.pieces {
		if p.end < start || p.start > end {
			continue
		}
		if p.start < start || p.end > end {
			p = piece{start: max(p.start, start), end: min(p.end, end), annos: p.annos}
		}
		out.pieces = append(out.pieces, p)
	}
	out.series = sliceSeries(e.series, start, end)
	out.bytes = seriesBytes(out.series)
	return out
}

// prefix returns the steps of e up to end at the latest; nil when none.
func prefix(e *extent, end int64) *extent {
	if e.whole {
		if end < e.end {
			return nil
		}
		return e
	}
	end = min(end, e.end)
	if end < e.start {
		return nil
	}
	return sliceExtent(e, e.start, end)
}

// sliceSeries returns the points of ss from start to end (inclusive).
func sliceSeries(ss []promql.Series, start, end int64) []promql.Series {
	out := make([]promql.Series, 0, len(ss))
	for _, s := range ss {
		fs := s.Floats[sort.Search(len(s.Floats), func(i int) bool { return s.Floats[i].T >= start }):sort.Search(len(s.Floats), func(i int) bool { return s.Floats[i].T > end })]
		hs := s.Histograms[sort.Search(len(s.Histograms), func(i int) bool { return s.Histograms[i].T >= start }):sort.Search(len(s.Histograms), func(i int) bool { return s.Histograms[i].T > end })]
		if len(fs) == 0 && len(hs) == 0 {
			continue
		}
		out = append(out, promql.Series{Metric: s.Metric, Floats: fs, Histograms: hs, DropName: s.DropName})
	}
	return out
}

// seriesBytes estimates the memory held by ss.
func seriesBytes(ss []promql.Series) int64 {
	var n int64
	for _, s := range ss {
		n += 64 + int64(s.Metric.ByteSize()) + int64(len(s.Floats))*16
		for _, h := range s.Histograms {
			n += 16 + int64(h.H.Size())
		}
	}
	return n
}
