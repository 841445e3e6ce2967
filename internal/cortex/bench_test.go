package cortex

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"

	"github.com/orrery-dev/orrery/internal/ingest"
	"github.com/orrery-dev/orrery/internal/workspace"
)

// BenchmarkHandlerForward measures Orrery's side of the Cortex engine: a
// request of 2000 known Envoy-like series through the ingest handler
// (decode, validation, limits) and forwarded to a Cortex that answers at
// once.
func BenchmarkHandlerForward(b *testing.B) { benchmarkForward(b, false) }

// BenchmarkHandlerForwardV2 is BenchmarkHandlerForward for a remote write
// 2.0 sender: the request is decoded, validated and re-encoded as 1.0.
func BenchmarkHandlerForwardV2(b *testing.B) { benchmarkForward(b, true) }

func benchmarkForward(b *testing.B, v2 bool) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
	}))
	defer srv.Close()
	c, err := New(Config{URL: srv.URL}, nil)
	if err != nil {
		b.Fatal(err)
	}
	lim := workspace.DefaultLimits()
	lim.IngestionRate = 0
	ov, err := workspace.NewOverrides(lim)
	if err != nil {
		b.Fatal(err)
	}
	h, err := ingest.NewForwarding(ingest.Config{}, NewStorage(c), IngestLimits{LimitsSource: ov}, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	wr := &prompb.WriteRequest{}
	for i := range 2000 {
		ls := []prompb.Label{{Name: "__name__", Value: "envoy_cluster_upstream_rq_time_bucket"},
			{Name: "envoy_cluster_name", Value: fmt.Sprintf("cluster-%d", i%50)}, {Name: "instance", Value: fmt.Sprintf("10.0.%d.%d:15090", i/250%250, i%250)},
			{Name: "job", Value: "envoy"}, {Name: "le", Value: fmt.Sprint(i % 20)}, {Name: "namespace", Value: "mesh"}, {Name: "pod", Value: fmt.Sprintf("svc-%d", i/20)}}
		wr.Timeseries = append(wr.Timeseries, prompb.TimeSeries{Labels: ls, Samples: []prompb.Sample{{Timestamp: 1000, Value: float64(i)}}})
	}
	raw, err := wr.Marshal()
	if err != nil {
		b.Fatal(err)
	}
	contentType := "application/x-protobuf"
	if v2 {
		st := writev2.NewSymbolTable()
		sb := labels.NewScratchBuilder(8)
		req := &writev2.Request{}
		for _, ts := range wr.Timeseries {
			req.Timeseries = append(req.Timeseries, writev2.TimeSeries{
				LabelsRefs: st.SymbolizeLabels(ts.ToLabels(&sb, nil), nil),
				Samples:    []writev2.Sample{{Value: ts.Samples[0].Value, Timestamp: ts.Samples[0].Timestamp}},
			})
		}
		req.Symbols = st.Symbols()
		if raw, err = req.Marshal(); err != nil {
			b.Fatal(err)
		}
		contentType = "application/x-protobuf;proto=io.prometheus.write.v2.Request"
	}
	body := snappy.Encode(nil, raw)
	id := workspace.NewID()
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest(http.MethodPost, "/api/v1/remote_write", bytes.NewReader(body))
		req.Header.Set("Content-Type", contentType)
		req = req.WithContext(workspace.NewContext(req.Context(), id))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusNoContent {
			b.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*2000), "ns/sample")
}
