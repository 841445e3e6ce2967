package ingest

import (
	"fmt"
	"testing"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/prompb"

	"github.com/orrery-dev/orrery/internal/workspace"
)

// TestIsLegacyNameAgreesWithPrometheus compares the fast path's name check
// with Prometheus' legacy validation on every string of one and two bytes.
func TestIsLegacyNameAgreesWithPrometheus(t *testing.T) {
	for a := range 256 {
		for _, b := range [][]byte{{byte(a)}, {'a', byte(a)}, {byte(a), '0'}} {
			if got, want := isLegacyName(b, false), model.LegacyValidation.IsValidLabelName(string(b)); got != want {
				t.Errorf("label name %q: got %v, Prometheus says %v", b, got, want)
			}
			if got, want := isLegacyName(b, true), model.LegacyValidation.IsValidMetricName(string(b)); got != want {
				t.Errorf("metric name %q: got %v, Prometheus says %v", b, got, want)
			}
		}
	}
}

// BenchmarkScanValidV1 measures the Cortex engine's one-pass check on a
// request of 2000 Envoy-like series with sorted labels.
func BenchmarkScanValidV1(b *testing.B) {
	wr := &prompb.WriteRequest{}
	for i := range 2000 {
		wr.Timeseries = append(wr.Timeseries, prompb.TimeSeries{
			Labels: []prompb.Label{{Name: "__name__", Value: "envoy_cluster_upstream_rq_time_bucket"},
				{Name: "envoy_cluster_name", Value: fmt.Sprintf("cluster-%d", i%50)}, {Name: "instance", Value: fmt.Sprintf("10.0.%d.%d:15090", i/250%250, i%250)},
				{Name: "job", Value: "envoy"}, {Name: "le", Value: fmt.Sprint(i % 20)}, {Name: "namespace", Value: "mesh"}, {Name: "pod", Value: fmt.Sprintf("svc-%d", i/20)}},
			Samples: []prompb.Sample{{Timestamp: 1000, Value: float64(i)}},
		})
	}
	raw, err := wr.Marshal()
	if err != nil {
		b.Fatal(err)
	}
	lim := workspace.DefaultLimits()
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		if n, ok := scanValidV1(raw, &lim, 2000); !ok || n != 2000 {
			b.Fatalf("scan: %d samples, ok %v", n, ok)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*2000), "ns/sample")
}
