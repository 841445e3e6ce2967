package e2e

import (
	"bytes"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/prometheus/model/labels"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
	"github.com/stretchr/testify/require"

	"github.com/orrery-dev/orrery/internal/apptest"
	"github.com/orrery-dev/orrery/internal/workspace"
)

// writeV2 sends a remote write 2.0 request and returns the status, the body
// and the response headers.
func writeV2(t *testing.T, url string, req *writev2.Request) (int, string, http.Header) {
	t.Helper()
	b, err := req.Marshal()
	require.NoError(t, err)
	hr, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(snappy.Encode(nil, b)))
	require.NoError(t, err)
	hr.Header.Set("Content-Encoding", "snappy")
	hr.Header.Set("Content-Type", "application/x-protobuf;proto=io.prometheus.write.v2.Request")
	hr.Header.Set("X-Prometheus-Remote-Write-Version", "2.0.0")
	resp, err := http.DefaultClient.Do(hr)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), resp.Header
}

// TestRemoteWrite2AnswersMatchReferencePrometheus sends the same remote
// write 2.0 requests to Orrery and to the reference Prometheus 3: the status
// and the X-Prometheus-Remote-Write-*-Written headers must be equal,
// including for series the receiver must refuse.
func TestRemoteWrite2AnswersMatchReferencePrometheus(t *testing.T) {
	ref := startReference(t)
	o := apptest.StartOrrery(t, t.TempDir())
	ws := workspace.NewID().String()
	ts := time.Now().Add(-time.Minute).UnixMilli()

	cases := []struct {
		name   string
		series func(st *writev2.SymbolsTable) []writev2.TimeSeries
		body   string // In both answers' bodies.
	}{
		{name: "sample with exemplar", series: func(st *writev2.SymbolsTable) []writev2.TimeSeries {
			return []writev2.TimeSeries{{
				LabelsRefs: st.SymbolizeLabels(labels.FromStrings("__name__", "rw2_ok", "job", "a"), nil),
				Samples:    []writev2.Sample{{Value: 1, Timestamp: ts}},
				Exemplars:  []writev2.Exemplar{{LabelsRefs: st.SymbolizeLabels(labels.FromStrings("trace_id", "t1"), nil), Value: 1, Timestamp: ts}},
			}}
		}},
		{name: "exemplar without data", body: "TimeSeries must contain at least one sample or histogram", series: func(st *writev2.SymbolsTable) []writev2.TimeSeries {
			return []writev2.TimeSeries{
				{
					LabelsRefs: st.SymbolizeLabels(labels.FromStrings("__name__", "rw2_ok", "job", "a"), nil),
					Samples:    []writev2.Sample{{Value: 2, Timestamp: ts + 1000}},
				},
				{
					LabelsRefs: st.SymbolizeLabels(labels.FromStrings("__name__", "rw2_lonely", "job", "a"), nil),
					Exemplars:  []writev2.Exemplar{{LabelsRefs: st.SymbolizeLabels(labels.FromStrings("trace_id", "t2"), nil), Value: 1, Timestamp: ts}},
				},
			}
		}},
		{name: "metadata only", body: "TimeSeries must contain at least one sample or histogram", series: func(st *writev2.SymbolsTable) []writev2.TimeSeries {
			return []writev2.TimeSeries{{
				LabelsRefs: st.SymbolizeLabels(labels.FromStrings("__name__", "rw2_meta", "job", "a"), nil),
				Metadata:   writev2.Metadata{Type: writev2.Metadata_METRIC_TYPE_GAUGE, HelpRef: st.Symbolize("Help.")},
			}}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st := writev2.NewSymbolTable()
			req := &writev2.Request{Timeseries: c.series(&st)}
			req.Symbols = st.Symbols()
			codeR, bodyR, hdrR := writeV2(t, ref+"/api/v1/write", req)
			codeO, bodyO, hdrO := writeV2(t, o.RemoteWriteURL(ws), req)
			require.Equal(t, codeR, codeO, "status; reference said %q, Orrery %q", bodyR, bodyO)
			for _, h := range []string{"Samples", "Histograms", "Exemplars"} {
				name := "X-Prometheus-Remote-Write-" + h + "-Written"
				require.Equal(t, hdrR.Get(name), hdrO.Get(name), name)
			}
			require.Contains(t, bodyR, c.body)
			require.Contains(t, bodyO, c.body)
		})
	}
}
