package loadgen

import (
	"slices"
	"strconv"
	"testing"
)

// TestBucketsAreCumulative: a generated histogram's buckets never count
// less than the buckets below them, as Envoy's do; otherwise every
// histogram_quantile over them reports a monotonicity fix.
func TestBucketsAreCumulative(t *testing.T) {
	type key struct{ metric, pod string }
	buckets := map[key]map[float64]float64{}
	for i := range 3 * len(envoyMetrics) * len(envoyLE) {
		ls := seriesLabels(i)
		var k key
		le := ""
		for _, l := range ls {
			switch l[0] {
			case "__name__":
				k.metric = l[1]
			case "pod":
				k.pod = l[1]
			case "le":
				le = l[1]
			}
		}
		if le == "" {
			continue
		}
		bound, err := strconv.ParseFloat(le, 64)
		if err != nil {
			t.Fatal(err)
		}
		if buckets[k] == nil {
			buckets[k] = map[float64]float64{}
		}
		buckets[k][bound] = value(i, 17)
	}
	if len(buckets) == 0 {
		t.Fatal("no histogram series generated")
	}
	for k, b := range buckets {
		if len(b) != len(envoyLE) {
			t.Fatalf("%v: %d buckets, want %d", k, len(b), len(envoyLE))
		}
		bounds := make([]float64, 0, len(b))
		for le := range b {
			bounds = append(bounds, le)
		}
		slices.Sort(bounds)
		for j := 1; j < len(bounds); j++ {
			if b[bounds[j]] < b[bounds[j-1]] {
				t.Errorf("%v: le=%g counts %g, less than le=%g's %g", k, bounds[j], b[bounds[j]], bounds[j-1], b[bounds[j-1]])
			}
		}
	}
}
