package ingest

import (
	"context"
	"encoding/binary"
	"errors"
	"math"
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
// So each workspace remembers, for the points Prometheus' translation has
// translated, the label set and metadata it made, keyed by those bytes. An
// export whose points are all gauges and cumulative sums of number points
// without exemplars (what a scan of its protobuf finds, before any
// decoding) and whose every point is remembered is not decoded nor
// translated: its points are appended to the remote write request with
// their remembered labels, in the order and with the values and times the
// translation would have given them; the target_info samples of its
// resources still come from Prometheus' translation, of the resources
// alone. Any other export is decoded and translated as before, and when
// the translation went through without error or warning, its points are
// remembered. TestOTLPCacheMatchesTranslation and FuzzOTLPCache hold the
// cached path to the translation's request, field for field.

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
// translations, into s.ctxs and s.lsets. It reports whether all were
// found.
func (c *otlpCache) lookup(settings *OTLPConfig, s *otlpScan) bool {
	c.mu.RLock()
	if !sameSettings(c.settings, settings) {
		c.mu.RUnlock()
		return false
	}
	s.ctxs, s.lsets = s.ctxs[:0], s.lsets[:0]
	epoch, promote := c.epoch, false
	for mi := range s.metrics {
		m := &s.metrics[mi]
		ctx := c.ctxs[string(s.arena[m.key.lo:m.key.hi])]
		if ctx == nil {
			c.mu.RUnlock()
			return false
		}
		s.ctxs = append(s.ctxs, ctx)
		for pi := m.points.lo; pi < m.points.hi; pi++ {
			k := s.pointKey(ctx.id, &s.points[pi])
			e, ok := c.cur[string(k)]
			if !ok {
				if e, ok = c.old[string(k)]; !ok {
					c.mu.RUnlock()
					return false
				}
				promote = true
			}
			s.lsets = append(s.lsets, e.lset)
		}
	}
	c.mu.RUnlock()
	if promote {
		// Entries of the older generation in use move to the current one,
		// so that a generation change forgets only what is not sent.
		c.mu.Lock()
		if c.epoch == epoch {
			i := 0
			for mi := range s.metrics {
				m := &s.metrics[mi]
				for pi := m.points.lo; pi < m.points.hi; pi++ {
					c.put(s.pointKey(s.ctxs[mi].id, &s.points[pi]), otlpEntry{s.lsets[i]})
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

// learn remembers the translation of the scanned export: trace is what the
// translation appended, in order. Each point of a gauge or a sum is one
// append, a resource's target_info samples follow its points; anything
// else (a point translated to target_info, a count that does not add up)
// and nothing is remembered.
func (c *otlpCache) learn(settings *OTLPConfig, s *otlpScan, trace []otlpAppend) {
	k := 0
	for ri := range s.resources {
		res := &s.resources[ri]
		for mi := res.metrics.lo; mi < res.metrics.hi; mi++ {
			m := &s.metrics[mi]
			first := k
			for range m.points.hi - m.points.lo {
				if k >= len(trace) || trace[k].family == otlpTargetInfo || trace[k].lset.Get(labels.MetricName) == otlpTargetInfo ||
					trace[k].meta != trace[first].meta {
					return
				}
				k++
			}
		}
		for k < len(trace) && trace[k].family == otlpTargetInfo {
			k++
		}
	}
	if k != len(trace) {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !sameSettings(c.settings, settings) || len(c.ctxs) >= c.max {
		// Contexts are few (a metric in a resource and scope); so many
		// means they churn, and the points keyed by them with them.
		c.reset(settings)
	}
	if c.nextID == math.MaxUint32 {
		c.reset(settings)
		c.nextID = 0 // No entry is left with an id.
	}
	k = 0
	for ri := range s.resources {
		res := &s.resources[ri]
		for mi := res.metrics.lo; mi < res.metrics.hi; mi++ {
			m := &s.metrics[mi]
			key := s.arena[m.key.lo:m.key.hi]
			ctx := c.ctxs[string(key)]
			if ctx == nil {
				c.nextID++
				ctx = &otlpCtx{id: c.nextID, meta: trace[k].meta}
				c.ctxs[string(key)] = ctx
			}
			for pi := m.points.lo; pi < m.points.hi; pi++ {
				c.put(s.pointKey(ctx.id, &s.points[pi]), otlpEntry{trace[k].lset})
				k++
			}
		}
		for k < len(trace) && trace[k].family == otlpTargetInfo {
			k++
		}
	}
}

// otlpAppend is one append of the translation, as the cache learns it.
type otlpAppend struct {
	lset   labels.Labels
	family string
	meta   metadata.Metadata
}

// otlpScan is what a scan of an export's protobuf finds: its resources,
// their metrics and the metrics' points, and the bytes that key them. It
// is reused across requests.
type otlpScan struct {
	body      []byte
	resources []scanResource
	metrics   []scanMetric
	points    []scanPoint
	// arena holds the metrics' keys, the resources' fields and the
	// attributes of points whose attribute fields are not contiguous.
	arena []byte
	key   []byte // a point's key, built for a lookup.
	// Resolved by otlpCache.lookup: each metric's context and each
	// point's label set, in scan order.
	ctxs  []*otlpCtx
	lsets []labels.Labels
}

type scanResource struct {
	fields   span // The resource and schema_url fields, in the arena.
	hasAttrs bool // The resource has attributes (target_info may follow).
	min, max uint64
	metrics  span // In metrics.
}

type scanMetric struct {
	key    span // In the arena.
	points span // In points.
}

type scanPoint struct {
	attrs        span
	attrsInArena bool
	start, time  uint64
	value        float64
}

func (s *otlpScan) reset(body []byte) {
	s.body = body
	s.resources, s.metrics, s.points, s.arena = s.resources[:0], s.metrics[:0], s.points[:0], s.arena[:0]
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

// errScan is why a scan found an export that the cache does not serve; it
// is never shown, the export goes to the translation.
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
// cache can serve it: every field is one the scan knows, every metric a
// gauge or a cumulative sum with number points, no point has exemplars,
// every resource has points.
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
	for pos := lo; pos < hi; {
		num, _, _, end, _ := scanField(b[:hi], pos)
		if num != 2 {
			s.arena = append(s.arena, b[pos:end]...)
		}
		pos = end
	}
	scopeKey.hi = int32(len(s.arena))
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

func (s *otlpScan) scanMetric(res *scanResource, scopeKey span, lo, hi int) bool {
	b := s.body
	key := span{lo: int32(len(s.arena))}
	s.arena = append(s.arena, s.arena[scopeKey.lo:scopeKey.hi]...)
	seen := 0
	dataLo, dataHi, kind := 0, 0, byte(0)
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
		case 5, 7: // gauge, sum
			if kind != 0 {
				return false
			}
			kind, dataLo, dataHi = keyGauge, val, end
			if num == 7 {
				kind = keySum
			}
		default:
			return false
		}
		pos = end
	}
	if kind == 0 {
		return false
	}
	s.arena = append(s.arena, kind)
	m := scanMetric{points: span{lo: int32(len(s.points))}}
	seen = 0
	temporality := uint64(0)
	for pos := dataLo; pos < dataHi; {
		num, wt, val, end, err := scanField(b[:dataHi], pos)
		if err != nil {
			return false
		}
		switch {
		case num == 1 && wt == protowire.BytesType:
			if !s.scanPoint(res, val, end) {
				return false
			}
		case kind == keySum && (num == 2 || num == 3) && wt == protowire.VarintType:
			// aggregation_temporality, is_monotonic
			if seen&(1<<num) != 0 {
				return false
			}
			seen |= 1 << num
			if num == 2 {
				temporality, _, _ = scanVarint(b, val)
			}
			s.arena = append(s.arena, b[pos:end]...)
		default:
			return false
		}
		pos = end
	}
	// Sums of delta temporality are converted or refused by the
	// translation path, never remembered.
	if kind == keySum && int32(temporality) != int32(pmetric.AggregationTemporalityCumulative) {
		return false
	}
	m.points.hi = int32(len(s.points))
	if m.points.hi == m.points.lo {
		return false
	}
	key.hi = int32(len(s.arena))
	m.key = key
	s.metrics = append(s.metrics, m)
	return true
}

// scanPoint reads a NumberDataPoint as the translation reads it: the value
// its value field says (the last one, 0 if none), the stale marker if the
// no-recorded-value flag is set.
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
	res.min, res.max = min(res.min, p.time), max(res.max, p.time)
	s.points = append(s.points, p)
	return true
}

// otlpTime is the translation's conversion of OTLP nanoseconds to
// Prometheus milliseconds.
func otlpTime(ns uint64) int64 { return int64(ns) / 1_000_000 }

// appendCached appends the scanned export, every point of which the cache
// resolved, to the collector's request as the translation would: each
// resource's points in order, then its target_info samples.
func appendCached(col *otlpCollector, s *otlpScan, tis []targetInfoSample) error {
	pi := 0
	for ri := range s.resources {
		res := &s.resources[ri]
		for mi := res.metrics.lo; mi < res.metrics.hi; mi++ {
			m := &s.metrics[mi]
			opts := storage.AOptions{Metadata: s.ctxs[mi].meta}
			for p := m.points.lo; p < m.points.hi; p++ {
				pt := &s.points[p]
				if _, err := col.Append(0, s.lsets[pi], otlpTime(pt.start), otlpTime(pt.time), pt.value, nil, nil, opts); err != nil {
					return err
				}
				pi++
			}
		}
		for len(tis) > 0 && tis[0].resource == ri {
			t := tis[0]
			if _, err := col.Append(0, t.lset, 0, t.t, 1, nil, nil, storage.AOptions{Metadata: t.meta}); err != nil {
				return err
			}
			tis = tis[1:]
		}
	}
	return nil
}

// targetInfoSample is a target_info sample the translation made for a
// resource of the export.
type targetInfoSample struct {
	resource int
	lset     labels.Labels
	t        int64
	meta     metadata.Metadata
}

// targetInfoRecorder is the storage.AppenderV2 of the translation of
// targetInfoExport's export: it keeps the target_info samples, attributing
// each to the resource whose stand-in points preceded it, and drops the
// stand-in points.
type targetInfoRecorder struct {
	standIns int
	samples  []targetInfoSample
}

var _ storage.AppenderV2 = (*targetInfoRecorder)(nil)

func (r *targetInfoRecorder) Append(_ storage.SeriesRef, ls labels.Labels, _, t int64, _ float64, _ *histogram.Histogram, _ *histogram.FloatHistogram, opts storage.AOptions) (storage.SeriesRef, error) {
	if opts.MetricFamilyName != otlpTargetInfo {
		r.standIns++
		return 0, nil
	}
	if len(r.samples) >= maxTargetInfoSamples {
		// As the collector: points far apart would expand to millions of
		// samples. The translation path answers the request.
		return 0, errTargetInfoSpan
	}
	r.samples = append(r.samples, targetInfoSample{resource: (r.standIns - 1) / 2, lset: ls, t: t, meta: opts.Metadata})
	return 0, nil
}

func (*targetInfoRecorder) Commit() error   { return nil }
func (*targetInfoRecorder) Rollback() error { return nil }

// targetInfoExport appends to b an export of the scanned resources, each
// with a stand-in gauge of two points at its earliest and latest times:
// the translation of it makes the target_info samples the translation of
// the whole export makes (they depend on the resource and on those two
// times only).
func targetInfoExport(b []byte, s *otlpScan) []byte {
	for ri := range s.resources {
		res := &s.resources[ri]
		var pt [2][]byte
		for i, t := range []uint64{res.min, res.max} {
			pt[i] = protowire.AppendTag(nil, 3, protowire.Fixed64Type)
			pt[i] = protowire.AppendFixed64(pt[i], t)
		}
		var gauge []byte
		for _, p := range pt {
			gauge = protowire.AppendTag(gauge, 1, protowire.BytesType)
			gauge = protowire.AppendBytes(gauge, p)
		}
		metric := protowire.AppendTag(nil, 1, protowire.BytesType)
		metric = protowire.AppendString(metric, "x")
		metric = protowire.AppendTag(metric, 5, protowire.BytesType)
		metric = protowire.AppendBytes(metric, gauge)
		scope := protowire.AppendTag(nil, 2, protowire.BytesType)
		scope = protowire.AppendBytes(scope, metric)
		rm := append([]byte(nil), s.arena[res.fields.lo:res.fields.hi]...)
		rm = protowire.AppendTag(rm, 2, protowire.BytesType)
		rm = protowire.AppendBytes(rm, scope)
		b = protowire.AppendTag(b, 1, protowire.BytesType)
		b = protowire.AppendBytes(b, rm)
	}
	return b
}

// translateCached fills r from the cache if it can serve the scanned
// export, and reports whether it did.
func translateCached(ctx context.Context, tr *otlpTranslator, cfg *OTLPConfig, c *otlpCache, s *otlpScan, r *Request) bool {
	if ctx.Err() != nil || !c.lookup(cfg, s) {
		return false
	}
	var tis []targetInfoSample
	for ri := range s.resources {
		if !s.resources[ri].hasAttrs {
			continue
		}
		// Some resource may have a target_info: ask the translation.
		md, err := (&pmetric.ProtoUnmarshaler{}).UnmarshalMetrics(targetInfoExport(nil, s))
		if err != nil {
			return false
		}
		rec := &targetInfoRecorder{}
		tr.conv.Reset(rec)
		annots, err := tr.conv.FromMetrics(ctx, md, otlpSettings(cfg))
		tr.conv.Reset(nil)
		if err != nil || len(annots) > 0 {
			return false
		}
		tis = rec.samples
		break
	}
	col := &tr.col
	col.start(r)
	defer func() { col.r = nil }()
	return appendCached(col, s, tis) == nil
}
