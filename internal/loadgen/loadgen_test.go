package loadgen

import (
	"bytes"
	"compress/gzip"
	"io"
	"slices"
	"strconv"
	"strings"
	"testing"

	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
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

// TestOTLPExport: an export holds each series of its range once, with its
// value; with resources, one resource per pod carries the pod's labels
// (as OpenTelemetry's resource attributes) and its points the rest.
func TestOTLPExport(t *testing.T) {
	const lo, hi, round = 700, 2700, 3
	for _, resources := range []bool{false, true} {
		body, err := appendOTLP(nil, lo, hi, round, 1_700_000_000_000, resources)
		if err != nil {
			t.Fatal(err)
		}
		zr, err := gzip.NewReader(bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		raw, err := io.ReadAll(zr)
		if err != nil {
			t.Fatal(err)
		}
		req := pmetricotlp.NewExportRequest()
		if err := req.UnmarshalProto(raw); err != nil {
			t.Fatal(err)
		}
		var got, want []string
		for i := lo; i < hi; i++ {
			var ls []string
			for _, l := range seriesLabels(i) {
				if !resources || l[0] != "job" {
					ls = append(ls, l[0]+"="+l[1])
				}
			}
			slices.Sort(ls)
			want = append(want, strings.Join(ls, ",")+" "+strconv.FormatFloat(value(i, round), 'g', -1, 64))
		}
		rms := req.Metrics().ResourceMetrics()
		pods := map[string]bool{}
		for r := range rms.Len() {
			res := rms.At(r).Resource().Attributes()
			if resources {
				svc, _ := res.Get("service.name")
				pod, _ := res.Get("k8s.pod.name")
				if !strings.HasPrefix(pod.Str(), svc.Str()+"-") || pods[pod.Str()] {
					t.Fatalf("resource %v: service.name not the pod's service, or the pod's second resource", res.AsRaw())
				}
				pods[pod.Str()] = true
			} else if res.Len() != 0 || rms.Len() != 1 {
				t.Fatalf("without resources: %d resources, attributes %v", rms.Len(), res.AsRaw())
			}
			ms := rms.At(r).ScopeMetrics().At(0).Metrics()
			for m := range ms.Len() {
				dps := ms.At(m).Gauge().DataPoints()
				for p := range dps.Len() {
					ls := []string{"__name__=" + ms.At(m).Name()}
					for k, v := range dps.At(p).Attributes().All() {
						ls = append(ls, k+"="+v.Str())
					}
					for k, v := range res.All() {
						name := map[string]string{"service.instance.id": "instance", "k8s.namespace.name": "namespace", "k8s.pod.name": "pod"}[k]
						if name != "" {
							ls = append(ls, name+"="+v.Str())
						}
					}
					slices.Sort(ls)
					got = append(got, strings.Join(ls, ",")+" "+strconv.FormatFloat(dps.At(p).DoubleValue(), 'g', -1, 64))
				}
			}
		}
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Fatalf("resources %v: %d points, want %d; first got %q, want %q", resources, len(got), len(want), got[0], want[0])
		}
		if resources && len(pods) < 5 {
			t.Fatalf("%d pods in %d series", len(pods), hi-lo)
		}
	}
}
