package ingest

import (
	"testing"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
	"github.com/stretchr/testify/require"

	"github.com/orrery-dev/orrery/internal/workspace"
)

func v1Request() *prompb.WriteRequest {
	h := &histogram.Histogram{Count: 5, Sum: 12.5, Schema: 0, ZeroThreshold: 0.001, ZeroCount: 1,
		PositiveSpans: []histogram.Span{{Offset: 0, Length: 2}}, PositiveBuckets: []int64{2, 0}}
	return &prompb.WriteRequest{
		Timeseries: []prompb.TimeSeries{
			{
				Labels:    []prompb.Label{{Name: "__name__", Value: "envoy_cluster_upstream_rq_total"}, {Name: "envoy_cluster_name", Value: "catalog"}},
				Samples:   []prompb.Sample{{Value: 1, Timestamp: 1000}, {Value: 2.5, Timestamp: 2000}},
				Exemplars: []prompb.Exemplar{{Labels: []prompb.Label{{Name: "trace_id", Value: "abc"}}, Value: 2.5, Timestamp: 2000}},
			},
			{
				Labels:     []prompb.Label{{Name: "__name__", Value: "rq_time"}},
				Histograms: []prompb.Histogram{prompb.FromIntHistogram(3000, h)},
			},
			{
				Labels:  []prompb.Label{{Name: "__name__", Value: "neg"}},
				Samples: []prompb.Sample{{Value: -1, Timestamp: -5}},
			},
		},
		Metadata: []prompb.MetricMetadata{{Type: prompb.MetricMetadata_COUNTER, MetricFamilyName: "envoy_cluster_upstream_rq", Help: "Total requests", Unit: "requests"}},
	}
}

func TestDecodeV1MatchesGeneratedCode(t *testing.T) {
	want := v1Request()
	b, err := want.Marshal()
	require.NoError(t, err)
	var r Request
	require.NoError(t, DecodeV1(b, &r))
	require.Len(t, r.Series, 3)

	s := &r.Series[0]
	ls := r.Labels(s)
	require.Len(t, ls, 2)
	require.Equal(t, "envoy_cluster_name", string(ls[1].Name))
	require.Equal(t, "catalog", string(ls[1].Value))
	require.Equal(t, []Sample{{Value: 1, Timestamp: 1000}, {Value: 2.5, Timestamp: 2000}}, r.Samples(s))
	ex := r.Exemplars(s)
	require.Len(t, ex, 1)
	require.Equal(t, 2.5, ex[0].Value)
	require.Equal(t, int64(2000), ex[0].Timestamp)
	require.Equal(t, "trace_id", string(r.ExemplarLabels(&ex[0])[0].Name))

	s = &r.Series[1]
	require.Equal(t, 1, r.NumHistograms(s))
	ts, h, fh, err := r.Histogram(s, 0)
	require.NoError(t, err)
	require.Nil(t, fh)
	require.Equal(t, int64(3000), ts)
	require.Equal(t, want.Timeseries[1].Histograms[0].ToIntHistogram(), h)

	require.Equal(t, []Sample{{Value: -1, Timestamp: -5}}, r.Samples(&r.Series[2]))
	require.Len(t, r.Metadata, 1)
	require.Equal(t, "envoy_cluster_upstream_rq", r.Metadata[0].Family)
	require.Equal(t, "counter", string(r.Metadata[0].Type))
	require.Equal(t, "Total requests", r.Metadata[0].Help)
	require.Equal(t, "requests", r.Metadata[0].Unit)
	samples, hists, exs := r.Counts()
	require.Equal(t, [3]int{3, 1, 1}, [3]int{samples, hists, exs})
}

func TestDecodeV2MatchesGeneratedCode(t *testing.T) {
	st := writev2.NewSymbolTable()
	fh := &histogram.FloatHistogram{Count: 3, Sum: 1.5, Schema: 1, PositiveSpans: []histogram.Span{{Offset: 1, Length: 1}}, PositiveBuckets: []float64{3}}
	req := &writev2.Request{
		Timeseries: []writev2.TimeSeries{
			{
				LabelsRefs: st.SymbolizeLabels(labelsFromStrings("__name__", "up", "job", "envoy"), nil),
				Samples:    []writev2.Sample{{Value: 1, Timestamp: 10, StartTimestamp: 5}},
				Exemplars:  []writev2.Exemplar{{LabelsRefs: st.SymbolizeLabels(labelsFromStrings("trace_id", "t1"), nil), Value: 1, Timestamp: 10}},
				Metadata:   writev2.Metadata{Type: writev2.Metadata_METRIC_TYPE_GAUGE, HelpRef: st.Symbolize("Is it up"), UnitRef: st.Symbolize("")},
			},
			{
				LabelsRefs: st.SymbolizeLabels(labelsFromStrings("__name__", "lat"), nil),
				Histograms: []writev2.Histogram{writev2.FromFloatHistogram(0, 20, fh)},
			},
		},
	}
	req.Symbols = st.Symbols()
	b, err := req.Marshal()
	require.NoError(t, err)

	var r Request
	require.NoError(t, DecodeV2(b, &r))
	require.Len(t, r.Series, 2)
	s := &r.Series[0]
	ls := r.Labels(s)
	require.Equal(t, "job", string(ls[1].Name))
	require.Equal(t, "envoy", string(ls[1].Value))
	require.Equal(t, []Sample{{Value: 1, Timestamp: 10, StartTimestamp: 5}}, r.Samples(s))
	require.True(t, s.HasMetadata)
	require.Equal(t, "gauge", string(s.Metadata.Type))
	require.Equal(t, "Is it up", s.Metadata.Help)
	ex := r.Exemplars(s)
	require.Len(t, ex, 1)
	require.Equal(t, "t1", string(r.ExemplarLabels(&ex[0])[0].Value))

	ts, h, gotFH, err := r.Histogram(&r.Series[1], 0)
	require.NoError(t, err)
	require.Nil(t, h)
	require.Equal(t, int64(20), ts)
	require.Equal(t, fh.Count, gotFH.Count)
	require.Equal(t, fh.PositiveBuckets, gotFH.PositiveBuckets)
}

func TestDecodeRejectsMalformedInput(t *testing.T) {
	good, err := v1Request().Marshal()
	require.NoError(t, err)
	cases := map[string][]byte{
		"truncated":       good[:len(good)-3],
		"bad wire type":   {0x0b}, // field 1, wire type 3 (start group).
		"field zero":      {0x00, 0x01},
		"length past end": {0x0a, 0x7f, 0x01},
		"varint overflow": {0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01},
	}
	for name, b := range cases {
		t.Run(name, func(t *testing.T) {
			var r Request
			require.Error(t, DecodeV1(b, &r))
			require.Error(t, DecodeV2(b, &r))
		})
	}

	t.Run("v1 sample field of the wrong type", func(t *testing.T) {
		var r Request
		require.ErrorContains(t, DecodeV1([]byte{0x0a, 0x04, 0x12, 0x02, 0x08, 0x01}, &r), "field 1 has wire type 0, want 1")
	})
	t.Run("v2 symbol out of range", func(t *testing.T) {
		req := &writev2.Request{Symbols: []string{"", "__name__"}, Timeseries: []writev2.TimeSeries{{LabelsRefs: []uint32{1, 7}}}}
		b, err := req.Marshal()
		require.NoError(t, err)
		var r Request
		require.ErrorContains(t, DecodeV2(b, &r), "symbol reference 7 is out of range of the 2 symbols")
	})
	t.Run("v2 odd labels refs", func(t *testing.T) {
		req := &writev2.Request{Symbols: []string{"", "__name__"}, Timeseries: []writev2.TimeSeries{{LabelsRefs: []uint32{1}}}}
		b, err := req.Marshal()
		require.NoError(t, err)
		var r Request
		require.ErrorContains(t, DecodeV2(b, &r), "odd length")
	})
	t.Run("v2 symbols must start empty", func(t *testing.T) {
		req := &writev2.Request{Symbols: []string{"__name__", "x"}, Timeseries: []writev2.TimeSeries{{LabelsRefs: []uint32{0, 1}}}}
		b, err := req.Marshal()
		require.NoError(t, err)
		var r Request
		require.ErrorContains(t, DecodeV2(b, &r), "empty string")
	})
}

// FuzzDecodeV1 checks that no input makes the 1.0 decoder, or the reading
// of what it accepted, panic or read out of bounds.
func FuzzDecodeV1(f *testing.F) {
	good, err := v1Request().Marshal()
	require.NoError(f, err)
	f.Add(good)
	f.Add([]byte{})
	f.Add([]byte{0x0a, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		var r Request
		if err := DecodeV1(b, &r); err != nil {
			return
		}
		for i := range r.Series {
			s := &r.Series[i]
			_ = r.Labels(s)
			_ = r.Samples(s)
			for j := range r.NumHistograms(s) {
				_, _, _, _ = r.Histogram(s, j)
			}
			for k := range r.Exemplars(s) {
				_ = r.ExemplarLabels(&r.Exemplars(s)[k])
			}
		}
	})
}

// FuzzDecodeV2 checks that no input makes the 2.0 decoder panic.
func FuzzDecodeV2(f *testing.F) {
	st := writev2.NewSymbolTable()
	req := &writev2.Request{Timeseries: []writev2.TimeSeries{{
		LabelsRefs: st.SymbolizeLabels(labelsFromStrings("__name__", "up", "job", "x"), nil),
		Samples:    []writev2.Sample{{Value: 1, Timestamp: 1}},
		Metadata:   writev2.Metadata{Type: writev2.Metadata_METRIC_TYPE_COUNTER, HelpRef: st.Symbolize("h")},
	}}}
	req.Symbols = st.Symbols()
	good, err := req.Marshal()
	require.NoError(f, err)
	f.Add(good)
	f.Add([]byte{0x22, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		var r Request
		if err := DecodeV2(b, &r); err != nil {
			return
		}
		for i := range r.Series {
			s := &r.Series[i]
			_ = r.Labels(s)
			for j := range r.NumHistograms(s) {
				_, _, _, _ = r.Histogram(s, j)
			}
		}
	})
}

// FuzzScanValidV1 checks that the one-pass check of the Cortex engine's
// fast path never admits what the full path would reject: whatever it
// accepts decodes, every series passes buildLabels with the same limits,
// no sample is after maxT, and the sample counts agree.
func FuzzScanValidV1(f *testing.F) {
	good, err := v1Request().Marshal()
	require.NoError(f, err)
	f.Add(good, false)
	sorted, err := (&prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{
		Labels:  []prompb.Label{{Name: "__name__", Value: "up"}, {Name: "instance", Value: ""}, {Name: "job", Value: "a"}},
		Samples: []prompb.Sample{{Timestamp: 5, Value: 1}, {Timestamp: 6, Value: 2}},
	}}}).Marshal()
	require.NoError(f, err)
	f.Add(sorted, false)
	f.Add(sorted, true)
	f.Add([]byte{}, false)
	f.Fuzz(func(t *testing.T, b []byte, legacy bool) {
		lim := workspace.DefaultLimits()
		if legacy {
			lim.NameValidation = "legacy"
		}
		lim.MaxLabelNamesPerSeries, lim.MaxLabelValueLength = 4, 16
		const maxT = 1000
		n, ok := scanValidV1(b, &lim, maxT)
		if !ok {
			return
		}
		var r Request
		require.NoError(t, DecodeV1(b, &r), "accepted by the one pass")
		samples, hist, ex := r.Counts()
		require.Equal(t, samples, n)
		require.Zero(t, hist+ex+len(r.Metadata))
		sb := labels.NewScratchBuilder(8)
		for i := range r.Series {
			s := &r.Series[i]
			_, serr := buildLabels(r.Labels(s), &lim, &sb)
			require.Nil(t, serr, "accepted by the one pass")
			for _, smp := range r.Samples(s) {
				require.LessOrEqual(t, smp.Timestamp, int64(maxT))
			}
		}
	})
}
