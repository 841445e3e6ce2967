package ingest_test

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/prometheus/prompb"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"

	"github.com/orrery-dev/orrery/internal/ingest"
	"github.com/orrery-dev/orrery/internal/workspace"
)

// envoyRequest returns a request of n Envoy-like series, one sample each.
func envoyRequest(n int, ts int64) *prompb.WriteRequest {
	wr := &prompb.WriteRequest{}
	for i := range n {
		wr.Timeseries = append(wr.Timeseries, series("envoy_cluster_upstream_rq_time_bucket", ts, float64(i),
			"envoy_cluster_name", fmt.Sprintf("cluster-%d", i%50), "instance", fmt.Sprintf("10.0.%d.%d:15090", i/250%250, i%250),
			"job", "envoy", "le", fmt.Sprint(i%20), "namespace", "mesh", "pod", fmt.Sprintf("svc-%d", i/20)))
	}
	return wr
}

func BenchmarkDecodeV1(b *testing.B) {
	raw, err := envoyRequest(2000, 1).Marshal()
	if err != nil {
		b.Fatal(err)
	}
	var r ingest.Request
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		if err := ingest.DecodeV1(raw, &r); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*2000), "ns/sample")
}

// BenchmarkHandlerSteadyState measures a request of 2000 already-known
// series end to end through the handler into a real TSDB.
func BenchmarkHandlerSteadyState(b *testing.B) {
	f := newFixtureB(b)
	ts := time.Now().Add(-time.Hour).UnixMilli()
	bodies := make([][]byte, 0, 64)
	for i := range 64 {
		raw, err := envoyRequest(2000, ts+int64(i)).Marshal()
		if err != nil {
			b.Fatal(err)
		}
		bodies = append(bodies, snappy.Encode(nil, raw))
	}
	if resp := f.post(f.ws, bodies[0], nil); resp.StatusCode != http.StatusNoContent {
		b.Fatalf("first write: %d", resp.StatusCode)
	}
	b.ReportAllocs()
	i := 1
	for b.Loop() {
		if i == len(bodies) { // Keep timestamps increasing, untimed.
			b.StopTimer()
			ts += 64
			for k := range bodies {
				raw, _ := envoyRequest(2000, ts+int64(k)).Marshal()
				bodies[k] = snappy.Encode(bodies[k][:0], raw)
			}
			i = 0
			b.StartTimer()
		}
		if resp := f.post(f.ws, bodies[i], nil); resp.StatusCode != http.StatusNoContent {
			b.Fatalf("write: %d", resp.StatusCode)
		}
		i++
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*2000), "ns/sample")
}

func newFixtureB(b *testing.B) *fixture {
	lim := workspace.DefaultLimits()
	lim.IngestionRate = 0
	return newFixtureTB(b, lim)
}

// otlpEnvoyExport is an OTLP export of n Envoy-like gauge points (the
// series of envoyRequest, as attributes) at ts, protobuf-encoded; mixed
// adds a histogram of n/20 points (14 series each).
func otlpEnvoyExport(b *testing.B, n int, ts time.Time, mixed bool) []byte {
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	rm.Resource().Attributes().PutStr("service.name", "envoy")
	rm.Resource().Attributes().PutStr("service.instance.id", "envoy-0")
	rm.Resource().Attributes().PutStr("host.name", "node-a") // Not identifying: a target_info.
	rm.Resource().Attributes().PutStr("telemetry.sdk.language", "go")
	m := rm.ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
	m.SetName("envoy_cluster_upstream_rq_time_bucket")
	g := m.SetEmptyGauge()
	for i := range n {
		dp := g.DataPoints().AppendEmpty()
		dp.SetTimestamp(pcommon.NewTimestampFromTime(ts))
		dp.SetDoubleValue(float64(i))
		a := dp.Attributes()
		a.PutStr("envoy_cluster_name", fmt.Sprintf("cluster-%d", i%50))
		a.PutStr("instance", fmt.Sprintf("10.0.%d.%d:15090", i/250%250, i%250))
		a.PutStr("le", fmt.Sprint(i%20))
		a.PutStr("namespace", "mesh")
		a.PutStr("pod", fmt.Sprintf("svc-%d", i/20))
	}
	if mixed {
		// As an SDK's export: a latency histogram beside the counters.
		h := rm.ScopeMetrics().At(0).Metrics().AppendEmpty()
		h.SetName("http.server.request.duration")
		h.SetUnit("s")
		hist := h.SetEmptyHistogram()
		hist.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
		for i := range n / 20 {
			dp := hist.DataPoints().AppendEmpty()
			dp.SetTimestamp(pcommon.NewTimestampFromTime(ts))
			dp.Attributes().PutStr("http.route", fmt.Sprintf("/api/%d", i))
			dp.ExplicitBounds().FromRaw([]float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10})
			dp.BucketCounts().FromRaw([]uint64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12})
			dp.SetCount(78)
			dp.SetSum(42)
		}
	}
	raw, err := pmetricotlp.NewExportRequestFromMetrics(md).MarshalProto()
	if err != nil {
		b.Fatal(err)
	}
	return raw
}

// BenchmarkOTLPSteadyState measures an OTLP export of 2000 already-known
// series (of a resource with a target_info) end to end through the OTLP
// handler (the translation cache, the remote write path) into a real TSDB.
func BenchmarkOTLPSteadyState(b *testing.B) { benchmarkOTLPSteadyState(b, false, true) }

// BenchmarkOTLPSteadyStateGzip is BenchmarkOTLPSteadyState with
// gzip-compressed exports, as OpenTelemetry exporters send them.
func BenchmarkOTLPSteadyStateGzip(b *testing.B) { benchmarkOTLPSteadyState(b, true, true) }

// BenchmarkOTLPSteadyStateTranslated is BenchmarkOTLPSteadyState without
// the translation cache: pdata's decoding and Prometheus' translation of
// every export.
func BenchmarkOTLPSteadyStateTranslated(b *testing.B) { benchmarkOTLPSteadyState(b, false, false) }

// BenchmarkOTLPSteadyStateMixed is BenchmarkOTLPSteadyState with a
// histogram of 100 points in each export, which the cache leaves to the
// translation.
func BenchmarkOTLPSteadyStateMixed(b *testing.B) { benchmarkOTLPSteadyStateOf(b, false, true, true) }

// BenchmarkOTLPSteadyStateMixedTranslated is BenchmarkOTLPSteadyStateMixed
// without the translation cache.
func BenchmarkOTLPSteadyStateMixedTranslated(b *testing.B) {
	benchmarkOTLPSteadyStateOf(b, false, false, true)
}

func benchmarkOTLPSteadyState(b *testing.B, gzipped, cache bool) {
	benchmarkOTLPSteadyStateOf(b, gzipped, cache, false)
}

func benchmarkOTLPSteadyStateOf(b *testing.B, gzipped, cache, mixed bool) {
	f := newFixtureB(b)
	cfg := ingest.DefaultOTLPConfig()
	if !cache {
		cfg.TranslationCache = 0
	}
	o, err := ingest.NewOTLP(cfg, f.handler, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	ts := time.Now().Add(-time.Hour)
	export := func(at time.Time) []byte {
		raw := otlpEnvoyExport(b, 2000, at, mixed)
		if !gzipped {
			return raw
		}
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		_, _ = zw.Write(raw)
		if err := zw.Close(); err != nil {
			b.Fatal(err)
		}
		return buf.Bytes()
	}
	post := func(body []byte) *http.Response {
		if gzipped {
			return f.postOTLPEncoded(o, f.ws, body, "gzip")
		}
		return f.postOTLP(o, body)
	}
	bodies := make([][]byte, 64)
	for i := range bodies {
		bodies[i] = export(ts.Add(time.Duration(i) * time.Millisecond))
	}
	if resp := post(bodies[0]); resp.StatusCode != http.StatusOK {
		b.Fatalf("first write: %d", resp.StatusCode)
	}
	b.ReportAllocs()
	i := 1
	for b.Loop() {
		if i == len(bodies) { // Keep timestamps increasing, untimed.
			b.StopTimer()
			ts = ts.Add(64 * time.Millisecond)
			for k := range bodies {
				bodies[k] = export(ts.Add(time.Duration(k) * time.Millisecond))
			}
			i = 0
			b.StartTimer()
		}
		if resp := post(bodies[i]); resp.StatusCode != http.StatusOK {
			b.Fatalf("write: %d", resp.StatusCode)
		}
		i++
	}
	samples := 2000
	if mixed {
		samples += 100 * 14 // Each histogram point: 12 buckets, a sum and a count.
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*samples), "ns/sample")
}
