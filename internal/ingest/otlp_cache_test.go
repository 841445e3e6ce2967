package ingest

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/prometheus/config"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
)

// exactLines renders everything of a request the translation fills, bit
// for bit: labels, metadata, samples (value bits, time, start time),
// histograms and exemplars.
func exactLines(r *Request) []string {
	out := requestLines(r)
	for i := range r.Series {
		s := &r.Series[i]
		var b strings.Builder
		fmt.Fprintf(&b, "%s has_metadata=%v %+v", out[i], s.HasMetadata, s.Metadata)
		for _, smp := range r.Samples(s) {
			fmt.Fprintf(&b, " %x@%d/%d", math.Float64bits(smp.Value), smp.Timestamp, smp.StartTimestamp)
		}
		for j := range r.NumHistograms(s) {
			t, h, fh, err := r.Histogram(s, j)
			fmt.Fprintf(&b, " %v@%d %v %v", h, t, fh, err)
		}
		out[i] = b.String()
	}
	return out
}

// randomExport is an export of gauges and cumulative sums of number
// points, the metrics the translation cache serves, and of others (sums
// with exemplars, histograms, exponential histograms, summaries): one to
// three resources (with or without attributes, identifying or not),
// scopes with and without names, points with attributes of every value
// type, names that need sanitizing (and some that collide once
// sanitized), int and double values, stale points, start times, times
// spread over minutes. seed picks the series; times and values come from
// rng.
func randomExport(seed uint64, rng *rand.Rand) pmetric.Metrics {
	shape := rand.New(rand.NewPCG(seed, 7))
	md := pmetric.NewMetrics()
	base := int64(1_700_000_000_000_000_000) + rng.Int64N(3600)*1e9
	for range 1 + shape.IntN(3) {
		rm := md.ResourceMetrics().AppendEmpty()
		attrs := rm.Resource().Attributes()
		switch shape.IntN(4) {
		case 0: // none
		case 1:
			attrs.PutStr("service.name", fmt.Sprintf("svc-%d", shape.IntN(3)))
			attrs.PutStr("service.instance.id", fmt.Sprintf("i-%d", shape.IntN(3)))
		default:
			attrs.PutStr("service.name", "svc")
			if shape.IntN(2) == 0 {
				attrs.PutStr("service.namespace", "ns")
			}
			attrs.PutStr("k8s.pod.name", fmt.Sprintf("pod-%d", shape.IntN(5)))
			attrs.PutInt("host.cpus", int64(shape.IntN(8)))
			if shape.IntN(3) == 0 {
				rm.SetSchemaUrl("https://opentelemetry.io/schemas/1.21.0")
			}
		}
		for range 1 + shape.IntN(2) {
			sm := rm.ScopeMetrics().AppendEmpty()
			if shape.IntN(2) == 0 {
				sm.Scope().SetName("io.opentelemetry.lib")
				sm.Scope().SetVersion("1.2.3")
				sm.Scope().Attributes().PutStr("lib.kind", "http")
			}
			for range 1 + shape.IntN(4) {
				m := sm.Metrics().AppendEmpty()
				m.SetName([]string{"http.server.requests", "queue_depth", "process.memory.usage", "rpc.calls", "weird-name/x"}[shape.IntN(5)])
				if shape.IntN(2) == 0 {
					m.SetUnit([]string{"By", "ms", "1", "{requests}"}[shape.IntN(4)])
				}
				if shape.IntN(2) == 0 {
					m.SetDescription("What it counts.")
				}
				attrs := func(a pcommon.Map) {
					for range shape.IntN(4) {
						k := []string{"code", "method", "http.route", "net.peer", "net_peer", "le", "9lives", "ünïcode"}[shape.IntN(8)]
						switch shape.IntN(4) {
						case 0:
							a.PutStr(k, fmt.Sprintf("v%d", shape.IntN(3)))
						case 1:
							a.PutInt(k, int64(shape.IntN(3)))
						case 2:
							a.PutBool(k, shape.IntN(2) == 0)
						default:
							a.PutDouble(k, float64(shape.IntN(3))/2)
						}
					}
				}
				ts := func() pcommon.Timestamp { return pcommon.Timestamp(base + rng.Int64N(600)*1e9 + rng.Int64N(1e9)) }
				points := 1 + shape.IntN(5)
				switch kind := shape.IntN(8); {
				case kind < 5:
					var dps pmetric.NumberDataPointSlice
					exemplars := false
					if kind < 3 {
						dps = m.SetEmptyGauge().DataPoints()
					} else {
						s := m.SetEmptySum()
						s.SetIsMonotonic(shape.IntN(3) != 0)
						s.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
						dps = s.DataPoints()
						exemplars = kind == 4 && shape.IntN(2) == 0
					}
					for range points {
						dp := dps.AppendEmpty()
						attrs(dp.Attributes())
						dp.SetTimestamp(ts())
						if rng.IntN(2) == 0 {
							dp.SetStartTimestamp(pcommon.Timestamp(base - rng.Int64N(1e12)))
						}
						switch rng.IntN(5) {
						case 0:
							dp.SetIntValue(rng.Int64() - math.MaxInt64/2)
						case 1:
							dp.SetFlags(pmetric.DefaultDataPointFlags.WithNoRecordedValue(true))
						case 2:
							// No value.
						default:
							dp.SetDoubleValue(rng.NormFloat64() * 1e6)
						}
						if exemplars {
							ex := dp.Exemplars().AppendEmpty()
							ex.SetTimestamp(dp.Timestamp())
							ex.SetDoubleValue(rng.Float64())
							ex.SetTraceID(pcommon.TraceID{byte(rng.IntN(256)), 1, 2})
						}
					}
				case kind == 5:
					h := m.SetEmptyHistogram()
					h.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
					bounds := []float64{0.1, 1, 10}[:shape.IntN(4)]
					exemplars := shape.IntN(2) == 0
					for range points {
						dp := h.DataPoints().AppendEmpty()
						attrs(dp.Attributes())
						dp.SetTimestamp(ts())
						dp.ExplicitBounds().FromRaw(bounds)
						counts, total := make([]uint64, len(bounds)+1), uint64(0)
						for i := range counts {
							counts[i] = uint64(rng.IntN(10))
							total += counts[i]
						}
						dp.BucketCounts().FromRaw(counts)
						dp.SetCount(total)
						dp.SetSum(float64(total) * rng.Float64())
						for i := range 2 * len(bounds) * b2i(exemplars) { // In every bucket.
							ex := dp.Exemplars().AppendEmpty()
							ex.SetTimestamp(dp.Timestamp())
							ex.SetDoubleValue(bounds[i/2] - 0.01 + rng.Float64()/100)
							ex.SetSpanID(pcommon.SpanID{byte(i), byte(rng.IntN(256))})
						}
					}
				case kind == 6:
					e := m.SetEmptyExponentialHistogram()
					e.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
					for range points {
						dp := e.DataPoints().AppendEmpty()
						attrs(dp.Attributes())
						dp.SetTimestamp(ts())
						dp.SetScale(int32(shape.IntN(4)))
						dp.SetZeroCount(uint64(rng.IntN(3)))
						dp.Positive().SetOffset(int32(rng.IntN(5)) - 2)
						counts := []uint64{uint64(rng.IntN(5)), uint64(rng.IntN(5))}
						dp.Positive().BucketCounts().FromRaw(counts)
						dp.SetCount(dp.ZeroCount() + counts[0] + counts[1])
						if dp.Count() > 0 { // The translation warns of a sum without a count.
							dp.SetSum(rng.Float64() * 10)
						}
					}
				default:
					sp := m.SetEmptySummary()
					for range points {
						dp := sp.DataPoints().AppendEmpty()
						attrs(dp.Attributes())
						dp.SetTimestamp(ts())
						dp.SetCount(uint64(rng.IntN(100)))
						dp.SetSum(rng.Float64() * 100)
						q := dp.QuantileValues().AppendEmpty()
						q.SetQuantile(0.5)
						q.SetValue(rng.Float64())
					}
				}
			}
		}
	}
	return md
}

// firstCachedPoints returns the points of the first metric of md that the
// cache serves.
func firstCachedPoints(md pmetric.Metrics) (pmetric.NumberDataPointSlice, bool) {
	for i := range md.ResourceMetrics().Len() {
		sms := md.ResourceMetrics().At(i).ScopeMetrics()
		for j := range sms.Len() {
			ms := sms.At(j).Metrics()
			for k := range ms.Len() {
				switch m := ms.At(k); m.Type() {
				case pmetric.MetricTypeGauge:
					return m.Gauge().DataPoints(), true
				case pmetric.MetricTypeSum:
					if m.Sum().DataPoints().At(0).Exemplars().Len() == 0 {
						return m.Sum().DataPoints(), true
					}
				}
			}
		}
	}
	return pmetric.NumberDataPointSlice{}, false
}

// otlpCacheSettings are translation settings the cache must key its
// entries by: each changes what the translation makes of the same points.
func otlpCacheSettings() map[string]*OTLPConfig {
	def := config.DefaultOTLPConfig
	promote := def
	promote.PromoteResourceAttributes = []string{"k8s.pod.name", "host.cpus"}
	promote.PromoteScopeMetadata = true
	all := def
	all.PromoteAllResourceAttributes = true
	all.KeepIdentifyingResourceAttributes = true
	utf8 := def
	utf8.TranslationStrategy = "NoTranslation" // otlptranslator.NoTranslation
	nhcb := def
	nhcb.ConvertHistogramsToNHCB = true
	out := map[string]*OTLPConfig{}
	for name, tc := range map[string]config.OTLPConfig{"default": def, "promote": promote, "all": all, "utf8": utf8, "nhcb": nhcb} {
		out[name] = (&OTLPConfig{Translation: &tc}).withDefaults()
	}
	return out
}

// translateFull is the translation path: pdata's decoder and Prometheus'
// translation. It reports whether the translation warned.
func translateFull(tr *otlpTranslator, cfg *OTLPConfig, body []byte, r *Request) (bool, error) {
	req, err := DecodeOTLP(body, false)
	if err != nil {
		return false, err
	}
	annots, err := translateOTLP(context.Background(), tr, cfg, req.Metrics(), r)
	return len(annots) > 0, err
}

// teach translates body and lets c learn from it, as the handler does.
// It reports whether the translation went through without warning.
func teach(t testing.TB, tr *otlpTranslator, cfg *OTLPConfig, c *otlpCache, body []byte) bool {
	s := &otlpScan{}
	if !s.scan(body) {
		return false
	}
	req, err := DecodeOTLP(body, false)
	require.NoError(t, err)
	tr.col.tracing = true
	defer func() { tr.col.tracing = false }()
	var r Request
	annots, err := translateOTLP(context.Background(), tr, cfg, req.Metrics(), &r)
	if err != nil {
		return false
	}
	teachOTLP(context.Background(), cfg, c, s, tr.col.trace, len(annots) > 0)
	return len(annots) == 0
}

// TestOTLPCacheMatchesTranslation: for random exports, under several
// translation settings, an export of series the cache has learned, with
// new times and values, gives through the cache (and the translation of
// the metrics the cache leaves to it) the request the translation of the
// whole export gives, field for field and in the same order; an export
// with a series it has not learned is left to the translation.
func TestOTLPCacheMatchesTranslation(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	hits, mixed, partial := 0, 0, 0
	for name, cfg := range otlpCacheSettings() {
		tr := newOTLPTranslator()
		c := newOTLPCache(cfg, 1<<10)
		for seed := range uint64(150) {
			body := marshalOTLP(t, randomExport(seed, rng))
			teach(t, tr, cfg, c, body)

			// The same series, other times and values.
			body = marshalOTLP(t, randomExport(seed, rng))
			var want, got Request
			warned, err := translateFull(tr, cfg, body, &want)
			require.NoError(t, err, "%s seed %d", name, seed)
			s := &otlpScan{}
			require.True(t, s.scan(body), "an export of gauges and sums is scanned")
			// Warnings depend on the series only (label names colliding
			// once sanitized): an export is served unless it warns or has
			// no metric the cache serves.
			cached := 0
			for _, r := range s.resources {
				cached += r.cached
			}
			if !translateCached(context.Background(), tr, cfg, c, s, &got) {
				require.True(t, warned || cached == 0, "%s seed %d: not served, yet the translation did not warn", name, seed)
				continue
			}
			require.False(t, warned, "%s seed %d: served, yet the translation warns", name, seed)
			for _, r := range s.resources {
				if r.translated > 0 {
					mixed++
					break
				}
			}
			hits++
			require.Equal(t, exactLines(&want), exactLines(&got), "%s seed %d", name, seed)

			// One point more, of a series not seen: its metric is
			// translated with those left to the translation (and the
			// cache learns it), the others are served. withNew scans
			// such an export into s and translates it into want.
			withNew := func() bool {
				md := randomExport(seed, rng)
				dps, ok := firstCachedPoints(md)
				if !ok {
					return false
				}
				p := dps.AppendEmpty()
				p.Attributes().PutStr("new", fmt.Sprint(seed))
				p.SetTimestamp(dps.At(0).Timestamp())
				body := marshalOTLP(t, md)
				want, got = Request{}, Request{}
				_, err := translateFull(tr, cfg, body, &want)
				require.NoError(t, err)
				require.True(t, s.scan(body))
				return true
			}
			if withNew() && translateCached(context.Background(), tr, cfg, c, s, &got) {
				partial++
				require.Equal(t, exactLines(&want), exactLines(&got), "%s seed %d, a new series", name, seed)
				// Learned: the same series again are served whole.
				withNew()
				require.True(t, translateCached(context.Background(), tr, cfg, c, s, &got))
				for i := range s.metrics {
					require.False(t, s.metrics[i].missed, "%s seed %d: the new series was learned", name, seed)
				}
				require.Equal(t, exactLines(&want), exactLines(&got), "%s seed %d, the new series again", name, seed)
			}
		}
	}
	require.Greater(t, partial, 200, "exports served with a new series translated")
	// Most exports are learned: those whose attribute names collide once
	// sanitized warn, and are not.
	require.Greater(t, hits, 300, "exports served from the cache")
	require.Greater(t, mixed, 200, "exports served from the cache with metrics it left to the translation")
	t.Logf("%d exports served, %d of them with metrics left to the translation", hits, mixed)
}

// TestOTLPCacheKeysBySettings: entries learned under one workspace's
// settings are not used under others.
func TestOTLPCacheKeysBySettings(t *testing.T) {
	settings := otlpCacheSettings()
	tr := newOTLPTranslator()
	rng := rand.New(rand.NewPCG(3, 4))
	c := newOTLPCache(settings["default"], 1<<10)
	var body []byte
	for seed := uint64(0); ; seed++ { // The first export that does not warn.
		md := randomExport(seed, rng)
		md.ResourceMetrics().At(0).Resource().Attributes().PutStr("k8s.pod.name", "p")
		if body = marshalOTLP(t, md); teach(t, tr, settings["default"], c, body) {
			break
		}
	}
	s := &otlpScan{}
	require.True(t, s.scan(body))
	var r Request
	require.True(t, translateCached(context.Background(), tr, settings["default"], c, s, &r))
	require.False(t, translateCached(context.Background(), tr, settings["promote"], c, s, &r))
}

// TestOTLPCacheGenerations: a cache of n entries per generation keeps
// serving the series still sent when more than n are sent over time.
func TestOTLPCacheGenerations(t *testing.T) {
	cfg := (&OTLPConfig{}).withDefaults()
	tr := newOTLPTranslator()
	c := newOTLPCache(cfg, 4)
	export := func(names ...string) []byte {
		md := pmetric.NewMetrics()
		dps := md.ResourceMetrics().AppendEmpty().ScopeMetrics().AppendEmpty().Metrics().AppendEmpty().SetEmptyGauge().DataPoints()
		md.ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics().At(0).SetName("g")
		for _, n := range names {
			dp := dps.AppendEmpty()
			dp.Attributes().PutStr("k", n)
			dp.SetTimestamp(1_700_000_000_000_000_000)
		}
		return marshalOTLP(t, md)
	}
	served := func(body []byte) bool {
		s := &otlpScan{}
		require.True(t, s.scan(body))
		var r Request
		return translateCached(context.Background(), tr, cfg, c, s, &r)
	}
	hot := export("a", "b")
	require.True(t, teach(t, tr, cfg, c, hot))
	for i := range 20 {
		cold := export(fmt.Sprint("x", i), fmt.Sprint("y", i))
		require.False(t, served(cold))
		require.True(t, teach(t, tr, cfg, c, cold))
		require.True(t, served(hot), "after %d cold exports", i)
	}
	require.LessOrEqual(t, len(c.cur), 4)
	require.LessOrEqual(t, len(c.old), 4)
}

// TestOTLPScanParts: the scan tells the metrics the cache serves (gauges
// and cumulative sums without exemplars) from those left to the
// translation (histograms, summaries, exemplars), and refuses exports the
// cache must not take part in (delta temporality, which the translation
// path converts; metrics without points, which the translation warns of).
func TestOTLPScanParts(t *testing.T) {
	s := &otlpScan{}
	require.True(t, s.scan(marshalOTLP(t, otlpSeed())))
	require.Equal(t, 0, s.resources[0].cached)
	require.Equal(t, 3, s.resources[0].translated, "a sum with an exemplar, a histogram, an exponential histogram")
	cases := map[string]struct {
		f                  func(m pmetric.Metric)
		cached, translated int
	}{
		"gauge":   {func(m pmetric.Metric) { m.SetEmptyGauge().DataPoints().AppendEmpty().SetDoubleValue(1) }, 1, 0},
		"summary": {func(m pmetric.Metric) { m.SetEmptySummary().DataPoints().AppendEmpty().SetSum(1) }, 0, 1},
		"exemplar": {func(m pmetric.Metric) {
			m.SetEmptyGauge().DataPoints().AppendEmpty().Exemplars().AppendEmpty().SetDoubleValue(1)
		}, 0, 1},
		"delta sum": {func(m pmetric.Metric) {
			m.SetEmptySum().SetAggregationTemporality(pmetric.AggregationTemporalityDelta)
			m.Sum().DataPoints().AppendEmpty().SetDoubleValue(1)
		}, -1, -1},
		"delta histogram": {func(m pmetric.Metric) {
			m.SetEmptyHistogram().SetAggregationTemporality(pmetric.AggregationTemporalityDelta)
			m.Histogram().DataPoints().AppendEmpty().SetCount(1)
		}, -1, -1},
		"empty":   {func(m pmetric.Metric) { m.SetEmptyGauge() }, -1, -1},
		"no data": {func(pmetric.Metric) {}, -1, -1},
	}
	for name, c := range cases {
		md := pmetric.NewMetrics()
		m := md.ResourceMetrics().AppendEmpty().ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
		m.SetName("m")
		c.f(m)
		if c.cached < 0 {
			require.False(t, s.scan(marshalOTLP(t, md)), name)
			continue
		}
		require.True(t, s.scan(marshalOTLP(t, md)), name)
		require.Equal(t, c.cached, s.resources[0].cached, name)
		require.Equal(t, c.translated, s.resources[0].translated, name)
	}
}

// FuzzOTLPCache: whatever the bytes, an export the cache serves is one
// pdata decodes and Prometheus translates to the very same request. The
// cache has learned the seeds' series, so mutations of their times and
// values are served, and mutations of anything else must not be.
func FuzzOTLPCache(f *testing.F) {
	cfg := otlpCacheSettings()["promote"]
	tr := newOTLPTranslator()
	c := newOTLPCache(cfg, 1<<12)
	rng := rand.New(rand.NewPCG(5, 6))
	for seed := range uint64(20) {
		body := marshalOTLP(f, randomExport(seed, rng))
		teach(f, tr, cfg, c, body)
		f.Add(marshalOTLP(f, randomExport(seed, rng)))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		s := &otlpScan{}
		if !s.scan(b) {
			return
		}
		var got Request
		if !translateCached(context.Background(), tr, cfg, c, s, &got) {
			return
		}
		var want Request
		warned, err := translateFull(tr, cfg, b, &want)
		require.NoError(t, err, "served from the cache, yet the translation path refuses it")
		require.False(t, warned, "served from the cache, yet the translation warns")
		require.Equal(t, exactLines(&want), exactLines(&got))
	})
}

func marshalOTLP(t testing.TB, md pmetric.Metrics) []byte {
	b, err := pmetricotlp.NewExportRequestFromMetrics(md).MarshalProto()
	require.NoError(t, err)
	return b
}

// TestOTLPCacheConcurrent: requests of one workspace learn and read its
// cache at once, through generation changes (24 entries per generation
// for 52 series); whatever the cache serves is what the translation
// gives. Run under -race by make test.
func TestOTLPCacheConcurrent(t *testing.T) {
	cfg := otlpCacheSettings()["promote"]
	c := newOTLPCache(cfg, 24)
	var wg sync.WaitGroup
	served := make([]int, 4)
	for g := range served {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tr := newOTLPTranslator()
			rng := rand.New(rand.NewPCG(uint64(g), 9))
			s := &otlpScan{}
			for i := range 200 {
				// 21, 19 and 12 points: 52 keys for 2×24 entries.
				body := marshalOTLP(t, randomExport([]uint64{1, 4, 5}[i%3], rng))
				var want, got Request
				warned, err := translateFull(tr, cfg, body, &want)
				if err != nil || warned {
					continue
				}
				if !s.scan(body) {
					t.Error("an export of gauges and sums is scanned")
					return
				}
				if translateCached(context.Background(), tr, cfg, c, s, &got) {
					served[g]++
					if !assert.Equal(t, exactLines(&want), exactLines(&got)) {
						return
					}
				} else {
					teach(t, tr, cfg, c, body)
				}
			}
		}()
	}
	wg.Wait()
	for g, n := range served {
		require.Positive(t, n, "requests of goroutine %d served from the cache", g)
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
