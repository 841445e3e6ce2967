package ingest

import (
	"context"
	"encoding/binary"
	"errors"
	"math"
	"slices"
	"sync"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/storage"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"google.golang.org/protobuf/encoding/protowire"
)

// The translation cache.
//
// Prometheus' translation of a data point of a gauge or a sum is a
// function of the translation settings, of the bytes of the point's
// resource, scope and metric (all but the data points) and of the bytes of
// the point's attributes: the label set and metadata it appends depend on
// nothing else, and the sample on the point's own times, value and flags.
// Decoding the export into pdata's types and running the translation over
// every point is most of what an OTLP request costs, and exporters send
// the same series again every interval.
//
// So each workspace remembers, for the points of gauges and cumulative
// sums without exemplars that Prometheus' translation has translated, the
// label set and metadata it made, keyed by those bytes. A scan of an
// export's protobuf, before any decoding, finds its resources, scopes and
// metrics, and those points. The points of a metric whose every point is
// remembered are not decoded nor translated: they are appended to the
// remote write request with their remembered labels, values and times
// converted as the translation converts them. The export's other metrics
// (histograms, summaries, points with exemplars, and gauges and sums with
// a point not remembered) are cut out of it, with stand-in gauges that
// keep each resource's time span and mark where each resource's and
// metric's appends begin, and translated by Prometheus' translation, which
// also makes the resources' target_info samples; all go into the request
// in the order the translation of the whole export would have appended
// them, and the cache learns the gauges and sums it missed. An export
// with none of its metrics remembered, deltas, a warning or JSON is
// decoded and translated whole as before, and the cache learns its gauges
// and sums from a translation that went through without error or warning.
// TestOTLPCacheMatchesTranslation and FuzzOTLPCache hold the result to the
// translation's, field for field.

// otlpTargetInfo is the metric family name of the translation's
// target_info samples (no namespace is configured).
const otlpTargetInfo = "target_info"

// otlpCache is one workspace's remembered translations. It is safe for
// concurrent use.
type otlpCache struct {
	mu sync.RWMutex
	// settings are the translation settings the entries were made with;
	// other settings empty the cache.
	settings OTLPConfig
	max      int                  // entries of a generation.
	ctxs     map[string]*otlpCtx  // resource, scope and metric bytes → context.
	cur, old map[string]otlpEntry // context id and attribute bytes → translation.
	// nextID numbers contexts; ids are not reused when the cache is
	// emptied, and epoch counts the emptyings: a reader that saw the
	// cache before one writes nothing of what it saw.
	nextID uint32
	epoch  uint64
}

// otlpCtx is a metric in its resource and scope: the part of a point's key
// that is shared by the metric's points.
type otlpCtx struct {
	id   uint32
	meta metadata.Metadata
}

// otlpEntry is a point's remembered translation.
type otlpEntry struct{ lset labels.Labels }

func newOTLPCache(settings *OTLPConfig, max int) *otlpCache {
	c := &otlpCache{max: max}
	c.reset(settings)
	return c
}

// reset empties c for settings. c.mu must be held for writing.
func (c *otlpCache) reset(settings *OTLPConfig) {
	c.epoch++
	c.settings = *settings
	c.ctxs = map[string]*otlpCtx{}
	c.cur, c.old = map[string]otlpEntry{}, map[string]otlpEntry{}
}

// sameSettings reports whether the translation settings of the request are
// those the cache was made with: the per-workspace otlp block (or the
// server's) and the lookback delta.
func sameSettings(a OTLPConfig, b *OTLPConfig) bool {
	return a.Translation == b.Translation && a.LookbackDelta == b.LookbackDelta
}

// lookup resolves the scan's metrics and points to remembered
// translations, into s.ctxs and s.lsets. A metric of the cache's with a
// point not remembered is marked missed: the translation translates it
// with the metrics left to it, and the cache learns it from there. It
// reports whether some metric was found whole.
func (c *otlpCache) lookup(settings *OTLPConfig, s *otlpScan) bool {
	c.mu.RLock()
	if !sameSettings(c.settings, settings) {
		c.mu.RUnlock()
		return false
	}
	s.ctxs, s.lsets = s.ctxs[:0], s.lsets[:0]
	epoch, promote, hits := c.epoch, false, 0
	for mi := range s.metrics {
		m := &s.metrics[mi]
		m.missed = false
		if !m.cached {
			s.ctxs = append(s.ctxs, nil)
			continue
		}
		ctx := c.ctxs[string(s.arena[m.key.lo:m.key.hi])]
		s.ctxs = append(s.ctxs, ctx)
		lo := len(s.lsets)
		m.missed = ctx == nil
		for pi := m.points.lo; pi < m.points.hi && !m.missed; pi++ {
			k := s.pointKey(ctx.id, &s.points[pi])
			e, ok := c.cur[string(k)]
			if !ok {
				e, ok = c.old[string(k)]
				promote = promote || ok
			}
			m.missed = !ok
			s.lsets = append(s.lsets, e.lset)
		}
		if m.missed {
			// Every point keeps its place in s.lsets, unused.
			s.lsets = s.lsets[:lo]
			for range m.points.hi - m.points.lo {
				s.lsets = append(s.lsets, labels.EmptyLabels())
			}
			continue
		}
		hits++
	}
	c.mu.RUnlock()
	if hits == 0 {
		return false
	}
	if promote {
		// Entries of the older generation in use move to the current one,
		// so that a generation change forgets only what is not sent.
		c.mu.Lock()
		if c.epoch == epoch {
			i := 0
			for mi := range s.metrics {
				m := &s.metrics[mi]
				if !m.cached {
					continue
				}
				for pi := m.points.lo; pi < m.points.hi; pi++ {
					if !m.missed {
						c.put(s.pointKey(s.ctxs[mi].id, &s.points[pi]), otlpEntry{s.lsets[i]})
					}
					i++
				}
			}
		}
		c.mu.Unlock()
	}
	return true
}

// put remembers e under key k, starting a new generation when the current
// one is full. c.mu must be held for writing.
func (c *otlpCache) put(k []byte, e otlpEntry) {
	if _, ok := c.cur[string(k)]; ok {
		return
	}
	if len(c.cur) >= c.max {
		c.old, c.cur = c.cur, make(map[string]otlpEntry, len(c.cur))
	}
	c.cur[string(k)] = e
}

// learn remembers the translation of the metrics of the scanned export
// that the cache serves: trace is what the translation of them (of the
// whole export if it has no others) appended, in order. If the trace does
// not read as alignTrace reads it, nothing is remembered.
func (c *otlpCache) learn(settings *OTLPConfig, s *otlpScan, trace []otlpAppend) {
	if !alignTrace(s, trace, nil) {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.prepare(settings)
	alignTrace(s, trace, func(m *scanMetric, at []otlpAppend) { c.remember(s, m, at) })
}

// prepare readies c to remember translations made with settings. c.mu
// must be held for writing.
func (c *otlpCache) prepare(settings *OTLPConfig) {
	if !sameSettings(c.settings, settings) || len(c.ctxs) >= c.max {
		// Contexts are few (a metric in a resource and scope); so many
		// means they churn, and the points keyed by them with them.
		c.reset(settings)
	}
	if c.nextID == math.MaxUint32 {
		c.reset(settings)
		c.nextID = 0 // No entry is left with an id.
	}
}

// remember remembers the translation of metric m of the scanned export,
// at: the appends of its points, one each (see pointAppends). c.mu must be
// held for writing.
func (c *otlpCache) remember(s *otlpScan, m *scanMetric, at []otlpAppend) {
	key := s.arena[m.key.lo:m.key.hi]
	ctx := c.ctxs[string(key)]
	if ctx == nil {
		c.nextID++
		ctx = &otlpCtx{id: c.nextID, meta: at[0].meta}
		c.ctxs[string(key)] = ctx
	}
	for i := range at {
		c.put(s.pointKey(ctx.id, &s.points[int(m.points.lo)+i]), otlpEntry{at[i].lset})
	}
}

// pointAppends reports whether at reads as the appends of the points of a
// gauge or a sum, one each: all with the metric's metadata, none of them
// target_info.
func pointAppends(at []otlpAppend) bool {
	for _, a := range at {
		if a.family == otlpTargetInfo || a.lset.Get(labels.MetricName) == otlpTargetInfo || a.meta != at[0].meta {
			return false
		}
	}
	return true
}

// alignTrace walks the metrics of the scanned export that the cache
// serves along trace, the appends of their translation, calling visit (if
// not nil) with each metric and the appends of its points. Each point is
// one append (pointAppends); a resource's target_info samples follow its
// points. It reports whether the trace reads that way.
func alignTrace(s *otlpScan, trace []otlpAppend, visit func(m *scanMetric, at []otlpAppend)) bool {
	k := 0
	for ri := range s.resources {
		res := &s.resources[ri]
		if res.cached == 0 {
			continue
		}
		for mi := res.metrics.lo; mi < res.metrics.hi; mi++ {
			m := &s.metrics[mi]
			if !m.cached {
				continue
			}
			n := int(m.points.hi - m.points.lo)
			if k+n > len(trace) || !pointAppends(trace[k:k+n]) {
				return false
			}
			if visit != nil {
				visit(m, trace[k:k+n])
			}
			k += n
		}
		for k < len(trace) && trace[k].family == otlpTargetInfo {
			k++
		}
	}
	return k == len(trace)
}

// otlpAppend is one append of the translation, as the cache learns it.
type otlpAppend struct {
	lset   labels.Labels
	family string
	meta   metadata.Metadata
}

// otlpScan is what a scan of an export's protobuf finds: its resources,
// their scopes and metrics, the points of the metrics the cache can serve,
// and the bytes that key them. It is reused across requests.
type otlpScan struct {
	body      []byte
	resources []scanResource
	scopes    []span // Each scope's scope and schema_url fields, in the arena.
	metrics   []scanMetric
	points    []scanPoint
	// arena holds the metrics' keys, the resources' and scopes' fields and
	// the attributes of points whose attribute fields are not contiguous.
	arena []byte
	key   []byte // a point's key, built for a lookup.
	// Resolved by otlpCache.lookup: each metric's context (nil for a
	// metric the cache does not serve) and each point's label set, in
	// scan order.
	ctxs  []*otlpCtx
	lsets []labels.Labels
	// export is scratch for the exports made of parts of the scanned one.
	export []byte
}

type scanResource struct {
	fields   span // The resource and schema_url fields, in the arena.
	hasAttrs bool // The resource has attributes (target_info may follow).
	// min and max are the earliest and latest times of its points, of
	// every metric.
	min, max uint64
	metrics  span // In metrics.
	// Metrics the cache serves and metrics left to the translation.
	cached, translated int
}

// scanMetric is a metric of the export: one the cache serves (a gauge or
// a cumulative sum whose points have no exemplars), with its key and
// points, or one left to the translation.
type scanMetric struct {
	cached bool
	// missed is set by otlpCache.lookup on a metric of the cache's with
	// a point it does not remember: this request, the translation's.
	missed bool
	key    span  // In the arena.
	points span  // In points.
	raw    span  // The Metric message, in the body.
	scope  int32 // In scopes.
}

// served reports whether the cache serves m in this request.
func (m *scanMetric) served() bool { return m.cached && !m.missed }

// translatedIn returns how many metrics of resource ri the translation
// translates in this request.
func (s *otlpScan) translatedIn(ri int) int {
	n := 0
	for mi := s.resources[ri].metrics.lo; mi < s.resources[ri].metrics.hi; mi++ {
		if !s.metrics[mi].served() {
			n++
		}
	}
	return n
}

type scanPoint struct {
	attrs        span
	attrsInArena bool
	start, time  uint64
	value        float64
}

func (s *otlpScan) reset(body []byte) {
	s.body = body
	s.resources, s.scopes, s.metrics, s.points, s.arena = s.resources[:0], s.scopes[:0], s.metrics[:0], s.points[:0], s.arena[:0]
}

// pointKey returns the key of point p of the metric of context id, valid
// until the next call.
func (s *otlpScan) pointKey(id uint32, p *scanPoint) []byte {
	s.key = binary.LittleEndian.AppendUint32(s.key[:0], id)
	if p.attrsInArena {
		s.key = append(s.key, s.arena[p.attrs.lo:p.attrs.hi]...)
	} else {
		s.key = append(s.key, s.body[p.attrs.lo:p.attrs.hi]...)
	}
	return s.key
}

// errScan is why the scan could not read a field; it is never shown: the
// export goes to the translation, whose decoder says what is wrong.
var errScan = errors.New("not a cached export")

// Protobuf reading, as pdata's decoder reads (its internal/proto package):
// the same varint limits and the same field numbers from tags, so that the
// scan and pdata agree on what the bytes are.

func scanVarint(b []byte, pos int) (uint64, int, error) {
	var n uint64
	for shift := uint(0); ; shift += 7 {
		if shift >= 64 || pos >= len(b) {
			return 0, 0, errScan
		}
		c := b[pos]
		pos++
		n |= uint64(c&0x7f) << shift
		if c < 0x80 {
			return n, pos, nil
		}
	}
}

// scanField reads a field at pos: its number, wire type, the position of
// its value (for LEN fields, of the bytes after the length) and the
// position after it. Only the wire types pdata's messages use here are
// read; others end the scan.
func scanField(b []byte, pos int) (num int32, wt protowire.Type, val, end int, err error) {
	tag, pos, err := scanVarint(b, pos)
	if err != nil {
		return 0, 0, 0, 0, err
	}
	num, wt = int32(tag>>3), protowire.Type(tag&7)
	if num <= 0 {
		return 0, 0, 0, 0, errScan
	}
	switch wt {
	case protowire.VarintType:
		_, end, err = scanVarint(b, pos)
		return num, wt, pos, end, err
	case protowire.Fixed64Type:
		if pos+8 > len(b) {
			return 0, 0, 0, 0, errScan
		}
		return num, wt, pos, pos + 8, nil
	case protowire.BytesType:
		n, p, err := scanVarint(b, pos)
		if err != nil {
			return 0, 0, 0, 0, err
		}
		l := int(n)
		if l < 0 || p+l < p || p+l > len(b) {
			return 0, 0, 0, 0, errScan
		}
		return num, wt, p, p + l, nil
	default:
		return 0, 0, 0, 0, errScan
	}
}

// scan reads body, an ExportMetricsServiceRequest, and reports whether the
// cache can take part in it: every field of its resources, scopes and
// metrics is one the scan knows, every metric has points, none has delta
// temporality (converting deltas needs the whole export). Gauges and
// cumulative sums whose points have no exemplars are the cache's; other
// metrics are left to the translation.
func (s *otlpScan) scan(body []byte) bool {
	s.reset(body)
	for pos := 0; pos < len(body); {
		num, wt, val, end, err := scanField(body, pos)
		if err != nil || num != 1 || wt != protowire.BytesType {
			return false
		}
		if !s.scanResourceMetrics(val, end) {
			return false
		}
		pos = end
	}
	return true
}

func (s *otlpScan) scanResourceMetrics(lo, hi int) bool {
	b := s.body
	res := scanResource{min: math.MaxUint64}
	res.fields.lo = int32(len(s.arena))
	// The resource's own fields first (they key its metrics), then its
	// scopes.
	ok := scanOwnFields(b, lo, hi, func(num int32, field, val []byte) {
		s.arena = append(s.arena, field...)
		if num == 1 {
			res.hasAttrs = scanHasField1(val)
		}
	})
	if !ok {
		return false
	}
	res.fields.hi = int32(len(s.arena))
	res.metrics.lo = int32(len(s.metrics))
	for pos := lo; pos < hi; {
		num, _, val, end, _ := scanField(b[:hi], pos)
		if num == 2 && !s.scanScopeMetrics(&res, val, end) {
			return false
		}
		pos = end
	}
	res.metrics.hi = int32(len(s.metrics))
	if res.metrics.hi == res.metrics.lo {
		return false
	}
	s.resources = append(s.resources, res)
	return true
}

// scanOwnFields reads the fields of a ResourceMetrics or a ScopeMetrics,
// b[lo:hi]: all LEN fields, 1 (the resource or scope) and 3 (schema_url)
// at most once, which it hands to own (the field and its value), and 2
// (the scopes or metrics) any number of times. It reports whether the
// message is one the scan knows.
func scanOwnFields(b []byte, lo, hi int, own func(num int32, field, val []byte)) bool {
	seen := 0
	for pos := lo; pos < hi; {
		num, wt, val, end, err := scanField(b[:hi], pos)
		if err != nil || wt != protowire.BytesType {
			return false
		}
		switch num {
		case 1, 3:
			if seen&(1<<num) != 0 {
				return false
			}
			seen |= 1 << num
			own(num, b[pos:end], b[val:end])
		case 2:
		default:
			return false
		}
		pos = end
	}
	return true
}

// scanHasField1 reports whether message b has a field 1 (a resource's
// attributes). Bytes that do not read as fields count as having it: the
// resource's bytes are part of the key, which only a translation that
// decoded them can have made.
func scanHasField1(b []byte) bool {
	for pos := 0; pos < len(b); {
		num, _, _, end, err := scanField(b, pos)
		if err != nil || num == 1 {
			return true
		}
		pos = end
	}
	return false
}

func (s *otlpScan) scanScopeMetrics(res *scanResource, lo, hi int) bool {
	b := s.body
	// The scope's key: the resource's fields and the scope's scope and
	// schema_url fields, each length-prefixed.
	n := 0
	if !scanOwnFields(b, lo, hi, func(_ int32, field, _ []byte) { n += len(field) }) {
		return false
	}
	scopeKey := span{lo: int32(len(s.arena))}
	s.arena = protowire.AppendVarint(s.arena, uint64(res.fields.hi-res.fields.lo))
	s.arena = append(s.arena, s.arena[res.fields.lo:res.fields.hi]...)
	s.arena = protowire.AppendVarint(s.arena, uint64(n))
	scope := span{lo: int32(len(s.arena))}
	for pos := lo; pos < hi; {
		num, _, _, end, _ := scanField(b[:hi], pos)
		if num != 2 {
			s.arena = append(s.arena, b[pos:end]...)
		}
		pos = end
	}
	scope.hi = int32(len(s.arena))
	scopeKey.hi = scope.hi
	s.scopes = append(s.scopes, scope)
	for pos := lo; pos < hi; {
		num, _, val, end, _ := scanField(b[:hi], pos)
		if num == 2 && !s.scanMetric(res, scopeKey, val, end) {
			return false
		}
		pos = end
	}
	return true
}

// Metric kinds in a metric's key, which is the scope's key, the metric's
// fields but its data (tags 0x0a, 0x12, 0x1a, 0x62: neither kind byte is
// one), the kind and the sum's fields but its points: it reads back one
// way only.
const (
	keyGauge = 'g'
	keySum   = 's'
)

// Metric fields with data: gauge, sum, histogram, exponential histogram,
// summary.
const (
	fieldGauge   = 5
	fieldSum     = 7
	fieldHist    = 9
	fieldExpHist = 10
	fieldSummary = 11
)

func (s *otlpScan) scanMetric(res *scanResource, scopeKey span, lo, hi int) bool {
	b := s.body
	m := scanMetric{raw: span{int32(lo), int32(hi)}, scope: int32(len(s.scopes) - 1)}
	arenaLo, pointsLo := len(s.arena), len(s.points)
	m.key.lo = int32(arenaLo)
	s.arena = append(s.arena, s.arena[scopeKey.lo:scopeKey.hi]...)
	seen := 0
	dataLo, dataHi, data := 0, 0, int32(0)
	for pos := lo; pos < hi; {
		num, wt, val, end, err := scanField(b[:hi], pos)
		if err != nil || wt != protowire.BytesType {
			return false
		}
		switch num {
		case 1, 2, 3: // name, description, unit
			if seen&(1<<num) != 0 {
				return false
			}
			seen |= 1 << num
			s.arena = append(s.arena, b[pos:end]...)
		case 12: // metadata
			s.arena = append(s.arena, b[pos:end]...)
		case fieldGauge, fieldSum, fieldHist, fieldExpHist, fieldSummary:
			if data != 0 {
				return false
			}
			data, dataLo, dataHi = num, val, end
		default:
			return false
		}
		pos = end
	}
	if data == 0 {
		return false
	}
	if data == fieldGauge || data == fieldSum {
		switch s.scanNumbers(res, data, dataLo, dataHi) {
		case numbersCached:
			m.cached = true
			m.key.hi = int32(len(s.arena))
			m.points = span{int32(pointsLo), int32(len(s.points))}
			s.metrics = append(s.metrics, m)
			res.cached++
			return true
		case numbersRefused:
			return false
		}
		// Exemplars or fields the scan does not read: the translation's.
		s.arena, s.points = s.arena[:arenaLo], s.points[:pointsLo]
	}
	s.arena = s.arena[:arenaLo]
	m.key = span{}
	if !s.scanTranslated(res, data, dataLo, dataHi) {
		return false
	}
	s.metrics = append(s.metrics, m)
	res.translated++
	return true
}

// What scanNumbers found.
const (
	numbersCached     = iota // Points the cache serves.
	numbersTranslated        // Points it does not: the translation's.
	numbersRefused           // Not an export the cache takes part in.
)

// scanNumbers reads the data of a gauge or a sum, b[lo:hi], appending its
// points and, to the metric's key in the arena, the kind and the sum's
// fields.
func (s *otlpScan) scanNumbers(res *scanResource, data int32, lo, hi int) int {
	b := s.body
	kind := byte(keyGauge)
	if data == fieldSum {
		kind = keySum
	}
	s.arena = append(s.arena, kind)
	seen, n := 0, 0
	temporality := uint64(0)
	for pos := lo; pos < hi; {
		num, wt, val, end, err := scanField(b[:hi], pos)
		if err != nil {
			return numbersRefused
		}
		switch {
		case num == 1 && wt == protowire.BytesType:
			if !s.scanPoint(res, val, end) {
				return numbersTranslated
			}
			n++
		case kind == keySum && (num == 2 || num == 3) && wt == protowire.VarintType:
			// aggregation_temporality, is_monotonic
			if seen&(1<<num) != 0 {
				return numbersTranslated
			}
			seen |= 1 << num
			if num == 2 {
				temporality, _, _ = scanVarint(b, val)
			}
			s.arena = append(s.arena, b[pos:end]...)
		default:
			return numbersTranslated
		}
		pos = end
	}
	switch {
	case kind == keySum && int32(temporality) == int32(pmetric.AggregationTemporalityDelta):
		// Deltas are converted, or refused, by the translation path.
		return numbersRefused
	case kind == keySum && int32(temporality) != int32(pmetric.AggregationTemporalityCumulative):
		return numbersTranslated // The translation refuses it.
	case n == 0:
		return numbersRefused // The translation warns: no points.
	}
	return numbersCached
}

// scanTranslated reads the data of a metric left to the translation,
// b[lo:hi], for its points' times (field 3 of every kind of data point)
// and its temporality: deltas are the translation path's.
func (s *otlpScan) scanTranslated(res *scanResource, data int32, lo, hi int) bool {
	b := s.body
	n := 0
	for pos := lo; pos < hi; {
		num, wt, val, end, err := scanField(b[:hi], pos)
		if err != nil {
			return false
		}
		switch {
		case num == 1 && wt == protowire.BytesType:
			t, ok := scanTime(b[:end], val)
			if !ok {
				return false
			}
			res.min, res.max = min(res.min, t), max(res.max, t)
			n++
		case num == 2 && wt == protowire.VarintType && data != fieldGauge && data != fieldSummary:
			if v, _, _ := scanVarint(b, val); int32(v) == int32(pmetric.AggregationTemporalityDelta) {
				return false
			}
		}
		pos = end
	}
	return n > 0
}

// scanTime returns the time of a data point, b[lo:]: its last field 3.
func scanTime(b []byte, lo int) (uint64, bool) {
	var t uint64
	for pos := lo; pos < len(b); {
		num, wt, val, end, err := scanField(b, pos)
		if err != nil {
			return 0, false
		}
		if num == 3 {
			if wt != protowire.Fixed64Type {
				return 0, false
			}
			t = binary.LittleEndian.Uint64(b[val:])
		}
		pos = end
	}
	return t, true
}

// scanPoint reads a NumberDataPoint as the translation reads it: the value
// its value field says (the last one, 0 if none), the stale marker if the
// no-recorded-value flag is set. It reports false for a point with
// exemplars or fields it does not read.
func (s *otlpScan) scanPoint(res *scanResource, lo, hi int) bool {
	b := s.body
	p := scanPoint{attrs: span{-1, -1}}
	var (
		isInt bool
		bits  uint64
		flags uint64
	)
	for pos := lo; pos < hi; {
		num, wt, val, end, err := scanField(b[:hi], pos)
		if err != nil {
			return false
		}
		switch {
		case num == 7 && wt == protowire.BytesType: // attributes
			switch {
			case p.attrs.lo < 0:
				p.attrs = span{int32(pos), int32(end)}
			case !p.attrsInArena && int(p.attrs.hi) == pos:
				p.attrs.hi = int32(end)
			default:
				if !p.attrsInArena {
					alo := len(s.arena)
					s.arena = append(s.arena, b[p.attrs.lo:p.attrs.hi]...)
					p.attrs, p.attrsInArena = span{int32(alo), int32(len(s.arena))}, true
				}
				s.arena = append(s.arena, b[pos:end]...)
				p.attrs.hi = int32(len(s.arena))
			}
		case num == 2 && wt == protowire.Fixed64Type:
			p.start = binary.LittleEndian.Uint64(b[val:])
		case num == 3 && wt == protowire.Fixed64Type:
			p.time = binary.LittleEndian.Uint64(b[val:])
		case num == 4 && wt == protowire.Fixed64Type:
			bits, isInt = binary.LittleEndian.Uint64(b[val:]), false
		case num == 6 && wt == protowire.Fixed64Type:
			bits, isInt = binary.LittleEndian.Uint64(b[val:]), true
		case num == 8 && wt == protowire.VarintType:
			flags, _, _ = scanVarint(b, val)
		default: // exemplars, unknown fields
			return false
		}
		pos = end
	}
	if p.attrs.lo < 0 {
		p.attrs = span{0, 0}
		p.attrsInArena = false
	}
	if isInt {
		p.value = float64(int64(bits))
	} else {
		p.value = math.Float64frombits(bits)
	}
	if pmetric.DataPointFlags(uint32(flags)).NoRecordedValue() {
		p.value = math.Float64frombits(value.StaleNaN)
	}
	// The arena grew only if the attributes were split; the caller rolls
	// it back with the points if the metric is the translation's.
	res.min, res.max = min(res.min, p.time), max(res.max, p.time)
	s.points = append(s.points, p)
	return true
}

// otlpTime is the translation's conversion of OTLP nanoseconds to
// Prometheus milliseconds.
func otlpTime(ns uint64) int64 { return int64(ns) / 1_000_000 }

// appendLen appends a LEN field num with payload v.
func appendLen(b []byte, num protowire.Number, v []byte) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, v)
}

// otlpStandIn is the name of the stand-in gauges that partExport puts
// first in each resource, its two points at the resource's earliest and
// latest times, which keep the resource's time span (target_info's
// samples depend on it), and between the resource's metrics, one point
// at its earliest time: they mark where a resource's and a metric's
// appends begin.
const otlpStandIn = "x"

// partExport appends to b an ExportMetricsServiceRequest of the scanned
// resources with the metrics the cache serves (cached) or the others, in
// their scopes and order. For the others, each resource starts with a
// stand-in gauge, and one more goes before each of its metrics but the
// first. Resources without such metrics are left out when cached is set.
func (s *otlpScan) partExport(b []byte, cached bool) []byte {
	var rm, sm []byte
	for ri := range s.resources {
		res := &s.resources[ri]
		if cached && res.cached == 0 {
			continue
		}
		rm = append(rm[:0], s.arena[res.fields.lo:res.fields.hi]...)
		var sep []byte
		if !cached {
			rm = appendLen(rm, 2, appendLen(nil, 2, standIn(res.min, res.max)))
			sep = standIn(res.min)
		}
		scope, first := int32(-1), true
		for mi := res.metrics.lo; mi < res.metrics.hi; mi++ {
			m := &s.metrics[mi]
			if m.served() != cached {
				continue
			}
			if m.scope != scope {
				if scope >= 0 {
					rm = appendLen(rm, 2, sm)
				}
				scope = m.scope
				sm = append(sm[:0], s.arena[s.scopes[scope].lo:s.scopes[scope].hi]...)
			}
			if !cached && !first {
				sm = appendLen(sm, 2, sep)
			}
			sm = appendLen(sm, 2, s.body[m.raw.lo:m.raw.hi])
			first = false
		}
		if scope >= 0 {
			rm = appendLen(rm, 2, sm)
		}
		b = appendLen(b, 1, rm)
	}
	return b
}

// standIn is a Metric message: the stand-in gauge with a point at each
// of times.
func standIn(times ...uint64) []byte {
	var g []byte
	for _, t := range times {
		g = appendLen(g, 1, protowire.AppendFixed64(protowire.AppendTag(nil, 3, protowire.Fixed64Type), t))
	}
	return appendLen(appendLen(nil, 1, []byte(otlpStandIn)), fieldGauge, g)
}

// otlpRecorded is an append of the translation of a part of an export.
type otlpRecorded struct {
	lset  labels.Labels
	st, t int64
	v     float64
	h     *histogram.Histogram
	fh    *histogram.FloatHistogram
	opts  storage.AOptions
}

// otlpRecorder is the storage.AppenderV2 of the translation of a part of
// an export: it keeps every append, copying what the translation reuses.
type otlpRecorder struct {
	appends    []otlpRecorded
	targetInfo int
}

var _ storage.AppenderV2 = (*otlpRecorder)(nil)

func (r *otlpRecorder) Append(_ storage.SeriesRef, ls labels.Labels, st, t int64, v float64, h *histogram.Histogram, fh *histogram.FloatHistogram, opts storage.AOptions) (storage.SeriesRef, error) {
	if opts.MetricFamilyName == otlpTargetInfo {
		if r.targetInfo++; r.targetInfo > maxTargetInfoSamples {
			// As the collector: points far apart would expand to
			// millions of samples. The translation path answers.
			return 0, errTargetInfoSpan
		}
	}
	if h != nil {
		h = h.Copy()
	}
	if fh != nil {
		fh = fh.Copy()
	}
	opts.Exemplars = slices.Clone(opts.Exemplars)
	r.appends = append(r.appends, otlpRecorded{lset: ls, st: st, t: t, v: v, h: h, fh: fh, opts: opts})
	return 0, nil
}

func (*otlpRecorder) Commit() error   { return nil }
func (*otlpRecorder) Rollback() error { return nil }

// runs splits the appends of the translation of partExport(b, false) by
// resource: for each resource, the run of appends of each metric left to
// the translation, in order, then the run of its target_info samples. The
// stand-ins' appends mark where a resource's and a metric's runs begin; a
// metric's appends all have its metric family. It reports false when
// they do not read that way (a metric of the stand-in's or target_info's
// family, one that appended nothing).
func (r *otlpRecorder) runs(s *otlpScan, out []span) ([]span, bool) {
	a := r.appends
	k := 0
	standIn := func(n int) bool {
		for range n {
			if k >= len(a) || a[k].opts.MetricFamilyName != otlpStandIn {
				return false
			}
			k++
		}
		return true
	}
	for ri := range s.resources {
		if !standIn(2) {
			return out, false
		}
		for j := range s.translatedIn(ri) {
			if j > 0 && !standIn(1) {
				return out, false
			}
			if k >= len(a) {
				return out, false
			}
			lo, f := k, a[k].opts.MetricFamilyName
			if f == otlpStandIn || f == otlpTargetInfo {
				return out, false
			}
			for k < len(a) && a[k].opts.MetricFamilyName == f {
				k++
			}
			out = append(out, span{int32(lo), int32(k)})
		}
		lo := k
		for k < len(a) && a[k].opts.MetricFamilyName == otlpTargetInfo {
			k++
		}
		out = append(out, span{int32(lo), int32(k)})
	}
	return out, k == len(a)
}

// translateCached fills r if the cache can serve the scanned export, and
// reports whether it did: every point of the metrics it serves is
// remembered, and the translation of the rest of the export (with the
// resources' time spans, for target_info) neither fails nor warns.
func translateCached(ctx context.Context, tr *otlpTranslator, cfg *OTLPConfig, c *otlpCache, s *otlpScan, r *Request) bool {
	if ctx.Err() != nil || !c.lookup(cfg, s) {
		return false
	}
	var (
		rec  otlpRecorder
		runs []span
	)
	translate := false
	for ri := range s.resources {
		translate = translate || s.resources[ri].hasAttrs || s.translatedIn(ri) > 0
	}
	if translate {
		s.export = s.partExport(s.export[:0], false)
		md, err := (&pmetric.ProtoUnmarshaler{}).UnmarshalMetrics(s.export)
		if err != nil {
			return false
		}
		tr.conv.Reset(&rec)
		annots, err := tr.conv.FromMetrics(ctx, md, otlpSettings(cfg))
		tr.conv.Reset(nil)
		if err != nil || len(annots) > 0 {
			return false
		}
		var ok bool
		if runs, ok = rec.runs(s, nil); !ok {
			return false
		}
	}
	col := &tr.col
	col.start(r)
	defer func() { col.r = nil }()
	replay := func(run span) error {
		for _, a := range rec.appends[run.lo:run.hi] {
			if _, err := col.Append(0, a.lset, a.st, a.t, a.v, a.h, a.fh, a.opts); err != nil {
				return err
			}
		}
		return nil
	}
	pi := 0
	var missed []otlpMissed
	for ri := range s.resources {
		res := &s.resources[ri]
		for mi := res.metrics.lo; mi < res.metrics.hi; mi++ {
			m := &s.metrics[mi]
			if !m.served() {
				if replay(runs[0]) != nil {
					return false
				}
				if m.missed {
					missed = append(missed, otlpMissed{m, runs[0]})
					pi += int(m.points.hi - m.points.lo)
				}
				runs = runs[1:]
				continue
			}
			opts := storage.AOptions{Metadata: s.ctxs[mi].meta}
			for p := m.points.lo; p < m.points.hi; p++ {
				pt := &s.points[p]
				if _, err := col.Append(0, s.lsets[pi], otlpTime(pt.start), otlpTime(pt.time), pt.value, nil, nil, opts); err != nil {
					return false
				}
				pi++
			}
		}
		if translate {
			if replay(runs[0]) != nil { // target_info
				return false
			}
			runs = runs[1:]
		}
	}
	if len(missed) > 0 {
		c.learnMissed(cfg, s, rec.appends, missed)
	}
	return true
}

// otlpMissed is a missed metric (see scanMetric) and the run of its
// appends in the translation of the part of the export left to it.
type otlpMissed struct {
	m   *scanMetric
	run span
}

// learnMissed remembers the translation of the missed metrics from the
// appends of their runs, where they read as their points' (pointAppends).
func (c *otlpCache) learnMissed(settings *OTLPConfig, s *otlpScan, appends []otlpRecorded, missed []otlpMissed) {
	var at []otlpAppend
	c.mu.Lock()
	defer c.mu.Unlock()
	c.prepare(settings)
	for _, x := range missed {
		at = at[:0]
		for _, a := range appends[x.run.lo:x.run.hi] {
			at = append(at, otlpAppend{lset: a.lset, family: a.opts.MetricFamilyName, meta: a.opts.Metadata})
		}
		if len(at) == int(x.m.points.hi-x.m.points.lo) && pointAppends(at) {
			c.remember(s, x.m, at)
		}
	}
}

// teachOTLP lets c learn from the scanned export, just translated into a
// request whose appends trace holds, with warnings if warned. An export
// with metrics the cache does not serve is first cut down to those it
// does, which are translated again on their own (the others' warnings
// are not theirs).
func teachOTLP(ctx context.Context, cfg *OTLPConfig, c *otlpCache, s *otlpScan, trace []otlpAppend, warned bool) {
	for mi := range s.metrics {
		s.metrics[mi].missed = false // All are learned here.
	}
	translated := false
	for ri := range s.resources {
		translated = translated || s.resources[ri].translated > 0
	}
	if !translated {
		if !warned {
			c.learn(cfg, s, trace)
		}
		return
	}
	s.export = s.partExport(s.export[:0], true)
	if len(s.export) == 0 {
		return
	}
	md, err := (&pmetric.ProtoUnmarshaler{}).UnmarshalMetrics(s.export)
	if err != nil {
		return
	}
	tr := newOTLPTranslator()
	tr.col.tracing = true
	annots, err := translateOTLP(ctx, tr, cfg, md, &Request{})
	if err != nil || len(annots) > 0 {
		return
	}
	c.learn(cfg, s, tr.col.trace)
}
