package ingest

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"

	"github.com/orrery-dev/orrery/internal/workspace"
)

// otlpSeed is a small export of a counter, a histogram and an exponential
// histogram with resource attributes.
func otlpSeed() pmetric.Metrics {
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	rm.Resource().Attributes().PutStr("service.name", "svc")
	rm.Resource().Attributes().PutStr("service.instance.id", "i-1")
	ms := rm.ScopeMetrics().AppendEmpty().Metrics()
	ts := pcommon.Timestamp(1_700_000_000_000_000_000)

	m := ms.AppendEmpty()
	m.SetName("requests")
	s := m.SetEmptySum()
	s.SetIsMonotonic(true)
	s.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	dp := s.DataPoints().AppendEmpty()
	dp.SetTimestamp(ts)
	dp.SetDoubleValue(3)
	dp.Attributes().PutStr("code", "200")
	ex := dp.Exemplars().AppendEmpty()
	ex.SetTimestamp(ts)
	ex.SetDoubleValue(1)
	ex.SetTraceID(pcommon.TraceID{1, 2, 3})

	m = ms.AppendEmpty()
	m.SetName("latency")
	m.SetUnit("ms")
	h := m.SetEmptyHistogram()
	h.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	hp := h.DataPoints().AppendEmpty()
	hp.SetTimestamp(ts)
	hp.ExplicitBounds().FromRaw([]float64{1, 10})
	hp.BucketCounts().FromRaw([]uint64{1, 2, 3})
	hp.SetCount(6)
	hp.SetSum(30)

	m = ms.AppendEmpty()
	m.SetName("size")
	e := m.SetEmptyExponentialHistogram()
	e.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	ep := e.DataPoints().AppendEmpty()
	ep.SetTimestamp(ts)
	ep.SetScale(1)
	ep.Positive().BucketCounts().FromRaw([]uint64{1, 2})
	ep.SetCount(3)
	return md
}

// FuzzDecodeOTLP checks that no OTLP body, protobuf or JSON, makes the
// decoder or the translation panic, and that every histogram of the
// translated request decodes.
func FuzzDecodeOTLP(f *testing.F) {
	req := pmetricotlp.NewExportRequestFromMetrics(otlpSeed())
	pb, err := req.MarshalProto()
	require.NoError(f, err)
	js, err := req.MarshalJSON()
	require.NoError(f, err)
	f.Add(pb, false)
	f.Add(js, true)
	f.Add([]byte{}, false)
	f.Add([]byte(`{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"name":"x","gauge":{"dataPoints":[{"asDouble":1}]}}]}]}]}`), true)
	cfg := OTLPConfig{}
	tr := newOTLPTranslator()
	f.Fuzz(func(t *testing.T, b []byte, json bool) {
		req, err := DecodeOTLP(b, json)
		if err != nil {
			return
		}
		var r Request
		if _, err := translateOTLP(context.Background(), tr, cfg.withDefaults(), req.Metrics(), &r); err != nil {
			return
		}
		for i := range r.Series {
			s := &r.Series[i]
			_ = r.Labels(s)
			_ = r.Samples(s)
			for j := range r.NumHistograms(s) {
				_, _, _, err := r.Histogram(s, j)
				require.NoError(t, err)
			}
			for k := range r.Exemplars(s) {
				_ = r.ExemplarLabels(&r.Exemplars(s)[k])
			}
		}
	})
}

// TestOTLPTargetInfoSpanIsBounded: a resource whose data points lie years
// apart would make Prometheus' translation write a target_info sample
// every half lookback delta between them; the request is refused with an
// error saying why, instead of expanding to millions of samples.
func TestOTLPTargetInfoSpanIsBounded(t *testing.T) {
	tr := newOTLPTranslator()
	cfg := OTLPConfig{}

	md := otlpSeed()
	// An attribute that is not identifying: target_info carries it.
	md.ResourceMetrics().At(0).Resource().Attributes().PutStr("k8s.pod.name", "p-1")
	var r Request
	_, err := translateOTLP(context.Background(), tr, cfg.withDefaults(), md, &r)
	require.NoError(t, err, "points at one time translate")

	// One more point, a second after the epoch.
	ms := md.ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics()
	g := ms.AppendEmpty()
	g.SetName("old")
	dp := g.SetEmptyGauge().DataPoints().AppendEmpty()
	dp.SetDoubleValue(1)
	dp.SetTimestamp(pcommon.Timestamp(1_000_000_000))
	r = Request{}
	_, err = translateOTLP(context.Background(), tr, cfg.withDefaults(), md, &r)
	require.ErrorIs(t, err, errTargetInfoSpan)
	require.ErrorContains(t, err, "too far apart")
}

// requestLines renders a request's series, one line each: labels, samples,
// histogram count and exemplars.
func requestLines(r *Request) []string {
	var out []string
	for i := range r.Series {
		s := &r.Series[i]
		var b strings.Builder
		for _, l := range r.Labels(s) {
			fmt.Fprintf(&b, "%s=%q ", l.Name, l.Value)
		}
		for _, smp := range r.Samples(s) {
			fmt.Fprintf(&b, "%g@%d ", smp.Value, smp.Timestamp)
		}
		fmt.Fprintf(&b, "histograms=%d", r.NumHistograms(s))
		for k, e := range r.Exemplars(s) {
			fmt.Fprintf(&b, " exemplar %g@%d", e.Value, e.Timestamp)
			for _, l := range r.ExemplarLabels(&r.Exemplars(s)[k]) {
				fmt.Fprintf(&b, " %s=%q", l.Name, l.Value)
			}
		}
		out = append(out, b.String())
	}
	return out
}

// TestOTLPTranslatorReuse translates two different exports in a row with
// one pooled translator: the second request holds its own series only,
// its points in the order the converter appended them (consecutive points
// of a series in one Series), and the first request, which aliases label
// sets of the translator's previous use, is unchanged.
func TestOTLPTranslatorReuse(t *testing.T) {
	cfg := OTLPConfig{}
	translate := func(tr *otlpTranslator, md pmetric.Metrics) (*Request, []string) {
		var r Request
		_, err := translateOTLP(context.Background(), tr, cfg.withDefaults(), md, &r)
		require.NoError(t, err)
		return &r, requestLines(&r)
	}
	// Two series of one gauge, their points interleaved.
	interleaved := func() pmetric.Metrics {
		md := pmetric.NewMetrics()
		m := md.ResourceMetrics().AppendEmpty().ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
		m.SetName("depth")
		dps := m.SetEmptyGauge().DataPoints()
		for i, q := range []string{"a", "a", "b", "a"} {
			dp := dps.AppendEmpty()
			dp.SetTimestamp(pcommon.Timestamp(1_700_000_000_000_000_000 + int64(i)*1e9))
			dp.SetDoubleValue(float64(i))
			dp.Attributes().PutStr("queue", q)
		}
		return md
	}

	_, seedFresh := translate(newOTLPTranslator(), otlpSeed())
	_, interleavedFresh := translate(newOTLPTranslator(), interleaved())
	require.Equal(t, []string{
		`__name__="depth" queue="a" 0@1700000000000 1@1700000001000 histograms=0`,
		`__name__="depth" queue="b" 2@1700000002000 histograms=0`,
		`__name__="depth" queue="a" 3@1700000003000 histograms=0`,
	}, interleavedFresh)

	tr := newOTLPTranslator()
	first, seedLines := translate(tr, otlpSeed())
	require.Equal(t, seedFresh, seedLines)
	_, second := translate(tr, interleaved())
	require.Equal(t, interleavedFresh, second, "the second request holds its own series only")
	require.Equal(t, seedFresh, requestLines(first), "the first request is unchanged by the translator's reuse")
	_, third := translate(tr, otlpSeed())
	require.Equal(t, seedFresh, third)
}

// FuzzReadOTLPBody checks that no body, gzip-compressed or claimed to be,
// makes the OTLP body reader panic or hold more than the workspace's
// limits and the in-flight budget allow, and that every byte it reserved
// is given back with its buffers. The handler and its buffer pool live
// across inputs, as across requests.
func FuzzReadOTLPBody(f *testing.F) {
	h := &Handler{cfg: Config{MaxInflightBytes: 96 << 10}}
	h.bufs.New = func() any { return &buffers{} }
	o := &OTLP{h: h}
	lim := workspace.Limits{MaxRequestBytes: 16 << 10, MaxDecodedRequestBytes: 64 << 10}
	f.Add([]byte("hello"), true, true)
	f.Add(bytes.Repeat([]byte("x"), 100<<10), true, true)
	f.Add([]byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff}, true, false)
	f.Add(make([]byte, 20<<10), false, false)
	f.Fuzz(func(t *testing.T, data []byte, gzipped, compress bool) {
		body := data
		if compress {
			var buf bytes.Buffer
			zw := gzip.NewWriter(&buf)
			_, err := zw.Write(data)
			require.NoError(t, err)
			require.NoError(t, zw.Close())
			body = buf.Bytes()
		}
		r := httptest.NewRequest(http.MethodPost, "/v1/metrics", bytes.NewReader(body))
		if len(data)%2 == 1 { // Sometimes without a length, as a chunked body.
			r.ContentLength = -1
		}
		b := h.bufs.Get().(*buffers)
		got, herr := o.readOTLPBody(r, gzipped, &lim, b)
		require.LessOrEqual(t, b.reserved, h.cfg.MaxInflightBytes)
		require.Equal(t, b.reserved, h.inflight.Load())
		if herr == nil {
			require.LessOrEqual(t, len(got), lim.MaxDecodedRequestBytes)
			if gzipped == compress {
				require.Equal(t, data, got)
			}
		} else {
			require.Contains(t, []int{http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusServiceUnavailable}, herr.code, herr.msg)
		}
		h.putBuffers(b)
		require.Zero(t, h.inflight.Load())
	})
}
