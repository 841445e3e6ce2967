package ingest

import (
	"sync"
	"sync/atomic"

	"github.com/cespare/xxhash/v2"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/storage"
)

// seriesCache remembers, per workspace, the series it has already validated
// and the storage reference each was given, keyed by a hash of the labels as
// they arrive on the wire (get) or, for series translated from OTLP, which
// arrive as label sets, by the label set's own hash (getLabels). A series
// written both ways has an entry under each. A hit skips validation, label
// allocation and the storage's own label-hash lookup. Entries keep the same labels.Labels value
// the storage holds, so under Prometheus' default "stringlabels" build the
// cache shares, rather than copies, the label memory.
//
// Entries unused for two sweeps are evicted, so churned series do not pile
// up. A reference that went stale (the series was garbage-collected from the
// head) is harmless: the storage falls back to the labels, which every entry
// carries. It is safe for concurrent use.
type seriesCache struct {
	epoch  atomic.Int64
	shards [cacheShards]cacheShard
}

const cacheShards = 64

type cacheShard struct {
	mu sync.RWMutex
	m  map[uint64]*cacheEntry
}

type cacheEntry struct {
	lset labels.Labels
	ref  atomic.Uint64
	seen atomic.Int64
	meta atomic.Pointer[metadata.Metadata]
	next *cacheEntry // hash collisions.
}

func newSeriesCache() *seriesCache {
	c := &seriesCache{}
	for i := range c.shards {
		c.shards[i].m = map[uint64]*cacheEntry{}
	}
	return c
}

// hashLabels hashes wire labels, skipping empty values (which Prometheus
// treats as absent). buf is scratch space and is returned for reuse.
func hashLabels(ls []Label, buf []byte) (uint64, []byte) {
	buf = buf[:0]
	for _, l := range ls {
		if len(l.Value) == 0 {
			continue
		}
		buf = append(buf, l.Name...)
		buf = append(buf, 0xff)
		buf = append(buf, l.Value...)
		buf = append(buf, 0xff)
	}
	return xxhash.Sum64(buf), buf
}

// sameLabels reports whether lset equals the wire labels in order, empty
// values skipped.
func sameLabels(lset labels.Labels, ls []Label) bool {
	i, ok := 0, true
	lset.Range(func(l labels.Label) {
		if !ok {
			return
		}
		for i < len(ls) && len(ls[i].Value) == 0 {
			i++
		}
		if i >= len(ls) || l.Name != string(ls[i].Name) || l.Value != string(ls[i].Value) {
			ok = false
			return
		}
		i++
	})
	for ok && i < len(ls) && len(ls[i].Value) == 0 {
		i++
	}
	return ok && i == len(ls)
}

func (c *seriesCache) get(h uint64, ls []Label) *cacheEntry {
	sh := &c.shards[h%cacheShards]
	sh.mu.RLock()
	e := sh.m[h]
	for e != nil && !sameLabels(e.lset, ls) {
		e = e.next
	}
	sh.mu.RUnlock()
	c.touch(e)
	return e
}

// touch marks e, if any, used in this epoch.
func (c *seriesCache) touch(e *cacheEntry) {
	if e != nil {
		if ep := c.epoch.Load(); e.seen.Load() != ep {
			e.seen.Store(ep)
		}
	}
}

// getLabels is get for a series known by its label set, cached under
// lset.Hash().
func (c *seriesCache) getLabels(h uint64, lset labels.Labels) *cacheEntry {
	sh := &c.shards[h%cacheShards]
	sh.mu.RLock()
	e := sh.m[h]
	for e != nil && !labels.Equal(e.lset, lset) {
		e = e.next
	}
	sh.mu.RUnlock()
	c.touch(e)
	return e
}

// add inserts an entry for lset under hash h (the hash of the wire labels it
// was built from) unless one with equal labels is there, and returns the
// entry in the cache.
func (c *seriesCache) add(h uint64, lset labels.Labels, ref storage.SeriesRef) *cacheEntry {
	sh := &c.shards[h%cacheShards]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	for e := sh.m[h]; e != nil; e = e.next {
		if labels.Equal(e.lset, lset) {
			return e
		}
	}
	e := &cacheEntry{lset: lset, next: sh.m[h]}
	e.ref.Store(uint64(ref))
	e.seen.Store(c.epoch.Load())
	sh.m[h] = e
	return e
}

// sweep evicts entries not used since the previous sweep and starts a new
// epoch. It returns how many entries remain.
func (c *seriesCache) sweep() int {
	ep := c.epoch.Add(1)
	n := 0
	for i := range c.shards {
		sh := &c.shards[i]
		sh.mu.Lock()
		for h, e := range sh.m {
			if e.next == nil { // The common case: no collision, no copy.
				if e.seen.Load() >= ep-1 {
					n++
				} else {
					delete(sh.m, h)
				}
				continue
			}
			var keep *cacheEntry
			for ; e != nil; e = e.next {
				if e.seen.Load() >= ep-1 {
					keep = &cacheEntry{lset: e.lset, next: keep}
					keep.ref.Store(e.ref.Load())
					keep.seen.Store(e.seen.Load())
					keep.meta.Store(e.meta.Load())
					n++
				}
			}
			if keep == nil {
				delete(sh.m, h)
			} else {
				sh.m[h] = keep
			}
		}
		sh.mu.Unlock()
	}
	return n
}
