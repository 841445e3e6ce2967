package ingest

import (
	"bytes"
	"sync"
	"sync/atomic"

	"github.com/cespare/xxhash/v2"
)

// RawStorage is implemented by storages whose appenders are all
// RawForwarders and which leave series limits to the engine they forward
// to (the Cortex engine's). For them the handler remembers, per workspace,
// the wire encodings of the label sets of requests it admitted whole, and
// forwards a remote write 1.0 request whose series all carry remembered
// encodings (and only float samples) without decoding its labels: the same
// bytes were validated before.
type RawStorage interface {
	Storage
	// ForwardsRaw reports whether the storage takes the fast path.
	ForwardsRaw() bool
}

// knownEncodings is a set of label-set wire encodings (the concatenated
// Label fields of a 1.0 TimeSeries, as the sender wrote them) that the
// handler validated. Entries unused for two sweeps are evicted. It is safe
// for concurrent use.
type knownEncodings struct {
	epoch  atomic.Int64
	shards [cacheShards]knownShard
}

type knownShard struct {
	mu sync.RWMutex
	m  map[uint64]*knownEntry
}

type knownEntry struct {
	b    []byte
	seen atomic.Int64
	next *knownEntry // hash collisions.
}

func newKnownEncodings() *knownEncodings {
	k := &knownEncodings{}
	for i := range k.shards {
		k.shards[i].m = map[uint64]*knownEntry{}
	}
	return k
}

// has reports whether b is in the set, marking it used.
func (k *knownEncodings) has(b []byte) bool {
	h := xxhash.Sum64(b)
	sh := &k.shards[h%cacheShards]
	sh.mu.RLock()
	e := sh.m[h]
	for e != nil && !bytes.Equal(e.b, b) {
		e = e.next
	}
	sh.mu.RUnlock()
	if e == nil {
		return false
	}
	if ep := k.epoch.Load(); e.seen.Load() != ep {
		e.seen.Store(ep)
	}
	return true
}

// add inserts a copy of b unless it is there.
func (k *knownEncodings) add(b []byte) {
	h := xxhash.Sum64(b)
	sh := &k.shards[h%cacheShards]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	for e := sh.m[h]; e != nil; e = e.next {
		if bytes.Equal(e.b, b) {
			return
		}
	}
	e := &knownEntry{b: bytes.Clone(b), next: sh.m[h]}
	e.seen.Store(k.epoch.Load())
	sh.m[h] = e
}

// sweep evicts entries not used since the previous sweep and starts a new
// epoch. It returns how many entries remain.
func (k *knownEncodings) sweep() int {
	ep := k.epoch.Add(1)
	n := 0
	for i := range k.shards {
		sh := &k.shards[i]
		sh.mu.Lock()
		for h, e := range sh.m {
			var keep *knownEntry
			for ; e != nil; e = e.next {
				if e.seen.Load() >= ep-1 {
					c := &knownEntry{b: e.b, next: keep}
					c.seen.Store(e.seen.Load())
					keep = c
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

// scanKnownV1 walks a remote write 1.0 request without decoding labels. It
// returns the number of float samples and true only if the request holds
// nothing but time series of labels and float samples, each series' labels
// are one contiguous run whose encoding is known, and no timestamp is after
// maxT; otherwise false, and the request must take the full path (which
// also reports what is malformed).
func scanKnownV1(b []byte, known *knownEncodings, maxT int64) (int, bool) {
	const (
		seriesKey = 1<<3 | wireBytes
		labelKey  = 1<<3 | wireBytes
		sampleKey = 2<<3 | wireBytes
	)
	samples := 0
	rd := reader{b: b}
	for !rd.done() {
		if k, err := rd.varint(); err != nil || k != seriesKey {
			return 0, false
		}
		msg, err := rd.bytes()
		if err != nil {
			return 0, false
		}
		lo, hi := -1, -1
		sr := reader{b: msg}
		for !sr.done() {
			start := sr.off
			k, err := sr.varint()
			if err != nil {
				return 0, false
			}
			switch k {
			case labelKey:
				if hi >= 0 && hi != start {
					return 0, false
				}
				if _, err := sr.bytes(); err != nil {
					return 0, false
				}
				if lo < 0 {
					lo = start
				}
				hi = sr.off
			case sampleKey:
				m, err := sr.bytes()
				if err != nil {
					return 0, false
				}
				s, err := decodeSample(m)
				if err != nil || s.Timestamp > maxT {
					return 0, false
				}
				samples++
			default:
				return 0, false
			}
		}
		if lo < 0 || !known.has(msg[lo:hi]) {
			return 0, false
		}
	}
	return samples, true
}
