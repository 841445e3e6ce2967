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
		out[i] = b.String()
	}
	return out
}

// randomNumberExport is an export of gauges and cumulative sums of number
// points, the kind the translation cache serves: one to three resources
// (with or without attributes, identifying or not), scopes with and
// without names, points with attributes of every value type, names that
// need sanitizing (and some that collide once sanitized), int and double
// values, stale points, start times, times spread over minutes. seed picks
// the series; times and values come from rng.
func randomNumberExport(seed uint64, rng *rand.Rand) pmetric.Metrics {
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
				var dps pmetric.NumberDataPointSlice
				if shape.IntN(2) == 0 {
					dps = m.SetEmptyGauge().DataPoints()
				} else {
					s := m.SetEmptySum()
					s.SetIsMonotonic(shape.IntN(3) != 0)
					s.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
					dps = s.DataPoints()
				}
				for range 1 + shape.IntN(5) {
					dp := dps.AppendEmpty()
					a := dp.Attributes()
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
					dp.SetTimestamp(pcommon.Timestamp(base + rng.Int64N(600)*1e9 + rng.Int64N(1e9)))
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
				}
			}
		}
	}
	return md
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
	out := map[string]*OTLPConfig{}
	for name, tc := range map[string]config.OTLPConfig{"default": def, "promote": promote, "all": all, "utf8": utf8} {
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
	if err != nil || len(annots) > 0 {
		return false
	}
	c.learn(cfg, s, tr.col.trace)
	return true
}

// TestOTLPCacheMatchesTranslation: for random exports of gauges and sums,
// under several translation settings, an export of series the cache has
// learned, with new times and values, gives through the cache the request
// the translation gives, field for field and in the same order; an export
// with a series it has not learned is left to the translation.
func TestOTLPCacheMatchesTranslation(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	hits := 0
	for name, cfg := range otlpCacheSettings() {
		tr := newOTLPTranslator()
		c := newOTLPCache(cfg, 1<<10)
		for seed := range uint64(150) {
			body := marshalOTLP(t, randomNumberExport(seed, rng))
			learned := teach(t, tr, cfg, c, body)

			// The same series, other times and values.
			body = marshalOTLP(t, randomNumberExport(seed, rng))
			var want, got Request
			warned, err := translateFull(tr, cfg, body, &want)
			require.NoError(t, err, "%s seed %d", name, seed)
			s := &otlpScan{}
			require.True(t, s.scan(body), "an export of gauges and sums is scanned")
			if !translateCached(context.Background(), tr, cfg, c, s, &got) {
				require.False(t, learned, "%s seed %d: learned, yet not served", name, seed)
				require.True(t, warned, "%s seed %d: not learned, yet the translation did not warn", name, seed)
				continue
			}
			require.False(t, warned, "%s seed %d: served, yet the translation warns", name, seed)
			hits++
			require.Equal(t, exactLines(&want), exactLines(&got), "%s seed %d", name, seed)

			// One point more, of a series not seen: translated.
			md := randomNumberExport(seed, rng)
			dp := md.ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics().At(0)
			var dps pmetric.NumberDataPointSlice
			if dp.Type() == pmetric.MetricTypeGauge {
				dps = dp.Gauge().DataPoints()
			} else {
				dps = dp.Sum().DataPoints()
			}
			p := dps.AppendEmpty()
			p.Attributes().PutStr("new", fmt.Sprint(seed))
			p.SetTimestamp(dps.At(0).Timestamp())
			require.True(t, s.scan(marshalOTLP(t, md)))
			require.False(t, translateCached(context.Background(), tr, cfg, c, s, &got), "%s seed %d: a new series is served", name, seed)
		}
	}
	// Most exports are learned: those whose attribute names collide once
	// sanitized warn, and are not.
	require.Greater(t, hits, 300, "exports served from the cache")
}

// TestOTLPCacheKeysBySettings: entries learned under one workspace's
// settings are not used under others.
func TestOTLPCacheKeysBySettings(t *testing.T) {
	settings := otlpCacheSettings()
	tr := newOTLPTranslator()
	rng := rand.New(rand.NewPCG(3, 4))
	md := randomNumberExport(0, rng)
	md.ResourceMetrics().At(0).Resource().Attributes().PutStr("k8s.pod.name", "p")
	body := marshalOTLP(t, md)
	c := newOTLPCache(settings["default"], 1<<10)
	require.True(t, teach(t, tr, settings["default"], c, body))
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

// TestOTLPScanRefuses: exports the cache does not serve are scanned as
// such: histograms, summaries, exemplars, delta sums, empty metrics.
func TestOTLPScanRefuses(t *testing.T) {
	seed := marshalOTLP(t, otlpSeed())
	s := &otlpScan{}
	require.False(t, s.scan(seed), "histograms and exemplars")
	cases := map[string]func(m pmetric.Metric){
		"delta sum": func(m pmetric.Metric) {
			m.SetEmptySum().SetAggregationTemporality(pmetric.AggregationTemporalityDelta)
			m.Sum().DataPoints().AppendEmpty().SetDoubleValue(1)
		},
		"summary": func(m pmetric.Metric) { m.SetEmptySummary().DataPoints().AppendEmpty().SetSum(1) },
		"empty":   func(m pmetric.Metric) { m.SetEmptyGauge() },
		"no data": func(pmetric.Metric) {},
		"exemplar": func(m pmetric.Metric) {
			dp := m.SetEmptyGauge().DataPoints().AppendEmpty()
			dp.Exemplars().AppendEmpty().SetDoubleValue(1)
		},
	}
	for name, f := range cases {
		md := pmetric.NewMetrics()
		m := md.ResourceMetrics().AppendEmpty().ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
		m.SetName("m")
		f(m)
		require.False(t, s.scan(marshalOTLP(t, md)), name)
	}
	md := pmetric.NewMetrics()
	m := md.ResourceMetrics().AppendEmpty().ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
	m.SetName("m")
	m.SetEmptyGauge().DataPoints().AppendEmpty().SetDoubleValue(1)
	require.True(t, s.scan(marshalOTLP(t, md)), "a gauge")
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
		body := marshalOTLP(f, randomNumberExport(seed, rng))
		teach(f, tr, cfg, c, body)
		f.Add(marshalOTLP(f, randomNumberExport(seed, rng)))
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
				body := marshalOTLP(t, randomNumberExport([]uint64{1, 4, 5}[i%3], rng))
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
