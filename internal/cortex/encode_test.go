package cortex

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"
)

// TestAppendWriteRequestDecodesAsPrompb checks the direct encoder against
// prompb's decoder: random series (long labels, zero and special values,
// negative timestamps, histograms, exemplars) and metadata come back as
// the WriteRequest prompb would have encoded.
func TestAppendWriteRequestDecodesAsPrompb(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 2))
	for round := range 50 {
		var (
			series  []pendingSeries
			samples []prompb.Sample
			want    prompb.WriteRequest
		)
		for i := range rnd.IntN(20) {
			ls := labels.FromStrings("__name__", "m"+strings.Repeat("x", rnd.IntN(300)), "i", string(rune('a'+i)), "long", strings.Repeat("v", rnd.IntN(200)))
			ps := pendingSeries{ls: ls, lo: len(samples)}
			ts := prompb.TimeSeries{Labels: prompb.FromLabels(ls, nil)}
			for range rnd.IntN(4) {
				v := []float64{0, 1.5, -2, math.Inf(1), math.Float64frombits(0x7ff0000000000002)}[rnd.IntN(5)]
				s := prompb.Sample{Value: v, Timestamp: rnd.Int64N(1<<45) - 1<<44}
				samples = append(samples, s)
				ts.Samples = append(ts.Samples, s)
			}
			ps.hi = len(samples)
			if rnd.IntN(3) == 0 {
				h := prompb.FromIntHistogram(int64(round), &histogram.Histogram{Count: 3, Sum: 2, ZeroCount: 1,
					PositiveSpans: []histogram.Span{{Offset: 0, Length: 2}}, PositiveBuckets: []int64{1, 0}})
				ps.histograms = append(ps.histograms, h)
				ts.Histograms = append(ts.Histograms, h)
			}
			if rnd.IntN(3) == 0 {
				e := prompb.Exemplar{Labels: []prompb.Label{{Name: "trace_id", Value: "abc"}}, Value: 1, Timestamp: 5}
				ps.exemplars = append(ps.exemplars, e)
				ts.Exemplars = append(ts.Exemplars, e)
			}
			series = append(series, ps)
			want.Timeseries = append(want.Timeseries, ts)
		}
		md := map[string]metadata.Metadata{}
		if round%2 == 0 {
			md["m"] = metadata.Metadata{Type: model.MetricTypeHistogram, Help: "help", Unit: "seconds"}
			want.Metadata = []prompb.MetricMetadata{{Type: prompb.MetricMetadata_HISTOGRAM, MetricFamilyName: "m", Help: "help", Unit: "seconds"}}
		}
		b := appendWriteRequest(nil, series, samples, md)
		var got prompb.WriteRequest
		require.NoError(t, got.Unmarshal(b))
		wantB, err := want.Marshal()
		require.NoError(t, err)
		var wantRT prompb.WriteRequest
		require.NoError(t, wantRT.Unmarshal(wantB))
		require.Equal(t, len(wantRT.Timeseries), len(got.Timeseries))
		for i := range got.Timeseries {
			g, w := got.Timeseries[i], wantRT.Timeseries[i]
			require.Equal(t, w.Labels, g.Labels)
			require.Equal(t, len(w.Samples), len(g.Samples))
			for j := range g.Samples {
				require.Equal(t, w.Samples[j].Timestamp, g.Samples[j].Timestamp)
				require.Equal(t, math.Float64bits(w.Samples[j].Value), math.Float64bits(g.Samples[j].Value))
			}
			require.Equal(t, w.Histograms, g.Histograms)
			require.Equal(t, w.Exemplars, g.Exemplars)
		}
		require.Equal(t, wantRT.Metadata, got.Metadata)
	}
}
