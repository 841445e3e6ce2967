package ingest_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
	"github.com/stretchr/testify/require"

	"github.com/orrery-dev/orrery/internal/ingest"
	"github.com/orrery-dev/orrery/internal/storage"
	"github.com/orrery-dev/orrery/internal/workspace"
)

type fixture struct {
	t         testing.TB
	store     *storage.Store
	handler   *ingest.Handler
	overrides *workspace.Overrides
	ws        workspace.ID
}

func newFixture(t *testing.T, mutate func(*workspace.Limits)) *fixture {
	t.Helper()
	lim := workspace.DefaultLimits()
	if mutate != nil {
		mutate(&lim)
	}
	return newFixtureTB(t, lim)
}

func newFixtureTB(t testing.TB, lim workspace.Limits) *fixture {
	ov, err := workspace.NewOverrides(lim)
	require.NoError(t, err)
	st, err := storage.New(storage.Config{Dir: t.TempDir()}, ov, nil, prometheus.NewRegistry())
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, st.Close()) })
	h, err := ingest.New(ingest.Config{}, st, ov, nil, prometheus.NewRegistry())
	require.NoError(t, err)
	return &fixture{t: t, store: st, handler: h, overrides: ov, ws: workspace.NewID()}
}

func (f *fixture) post(ws workspace.ID, body []byte, header map[string]string) *http.Response {
	req := httptest.NewRequest(http.MethodPost, "/workspaces/"+ws.String()+"/api/v1/remote_write", bytes.NewReader(body))
	req.Header.Set("Content-Encoding", "snappy")
	req.Header.Set("Content-Type", "application/x-protobuf")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	req = req.WithContext(workspace.NewContext(req.Context(), ws))
	rec := httptest.NewRecorder()
	f.handler.ServeHTTP(rec, req)
	return rec.Result()
}

func (f *fixture) writeV1(ws workspace.ID, wr *prompb.WriteRequest) (int, string) {
	b, err := wr.Marshal()
	require.NoError(f.t, err)
	resp := f.post(ws, snappy.Encode(nil, b), nil)
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// count returns how many samples of series matching name the workspace holds.
func (f *fixture) count(ws workspace.ID, name string) int {
	q, err := f.store.Queryable(ws).Querier(math.MinInt64, math.MaxInt64)
	require.NoError(f.t, err)
	defer q.Close()
	ss := q.Select(context.Background(), false, nil, labels.MustNewMatcher(labels.MatchEqual, "__name__", name))
	n := 0
	for ss.Next() {
		it := ss.At().Iterator(nil)
		for it.Next() != 0 {
			n++
		}
	}
	require.NoError(f.t, ss.Err())
	return n
}

func series(name string, ts int64, v float64, extra ...string) prompb.TimeSeries {
	ls := []prompb.Label{{Name: "__name__", Value: name}}
	for i := 0; i+1 < len(extra); i += 2 {
		ls = append(ls, prompb.Label{Name: extra[i], Value: extra[i+1]})
	}
	return prompb.TimeSeries{Labels: ls, Samples: []prompb.Sample{{Value: v, Timestamp: ts}}}
}

func now() int64 { return time.Now().UnixMilli() }

func TestWriteAndReadBack(t *testing.T) {
	f := newFixture(t, nil)
	ts := now()
	for i := range 3 {
		code, body := f.writeV1(f.ws, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
			series("envoy_cluster_upstream_rq_total", ts+int64(i)*1000, float64(i), "envoy_cluster_name", "catalog"),
		}})
		require.Equal(t, http.StatusNoContent, code, body)
	}
	require.Equal(t, 3, f.count(f.ws, "envoy_cluster_upstream_rq_total"))
	// Another workspace sees nothing.
	require.Equal(t, 0, f.count(workspace.NewID(), "envoy_cluster_upstream_rq_total"))
}

func TestPartlyBadRequestStoresTheGoodPart(t *testing.T) {
	f := newFixture(t, func(l *workspace.Limits) { l.MaxLabelNamesPerSeries = 3; l.NameValidation = "legacy" })
	ts := now()
	code, body := f.writeV1(f.ws, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
		series("good", ts, 1),
		series("bad-name", ts, 1),
		series("wide", ts, 1, "a", "1", "b", "2", "c", "3"),
		{Labels: []prompb.Label{{Name: "job", Value: "x"}}, Samples: []prompb.Sample{{Value: 1, Timestamp: ts}}},
		series("dup", ts, 1, "a", "1", "a", "2"),
		series("future", ts+time.Hour.Milliseconds(), 1),
	}})
	require.Equal(t, http.StatusBadRequest, code)
	require.Contains(t, body, `invalid metric name "bad-name"`)
	require.Contains(t, body, `has 4 labels, more than the workspace's limit of 3`)
	require.Contains(t, body, `has no metric name`)
	require.Contains(t, body, `duplicate label name "a"`)
	require.Contains(t, body, `in the future`)
	require.Contains(t, body, "stored 1 samples")
	require.Equal(t, 1, f.count(f.ws, "good"))
	require.Equal(t, 0, f.count(f.ws, "future"))
}

func TestUnsupportedEncodingAndSize(t *testing.T) {
	f := newFixture(t, func(l *workspace.Limits) { l.MaxRequestBytes = 100; l.MaxDecodedRequestBytes = 200 })
	resp := f.post(f.ws, []byte("x"), map[string]string{"Content-Encoding": "zstd"})
	require.Equal(t, http.StatusUnsupportedMediaType, resp.StatusCode)
	resp = f.post(f.ws, []byte("x"), map[string]string{"Content-Type": "application/json"})
	require.Equal(t, http.StatusUnsupportedMediaType, resp.StatusCode)
	resp = f.post(f.ws, []byte("x"), map[string]string{"Content-Type": "application/x-protobuf;proto=io.prometheus.write.v9.Request"})
	require.Equal(t, http.StatusUnsupportedMediaType, resp.StatusCode)
	resp = f.post(f.ws, bytes.Repeat([]byte("x"), 101), nil)
	require.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode)
	resp = f.post(f.ws, snappy.Encode(nil, make([]byte, 1000)), nil)
	require.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode)
	resp = f.post(f.ws, []byte("not snappy at all"), nil)
	require.Equal(t, http.StatusBadRequest, resp.StatusCode)
	resp = f.post(f.ws, snappy.Encode(nil, []byte{0x0a, 0x7f}), nil)
	require.Equal(t, http.StatusBadRequest, resp.StatusCode)
	body, _ := io.ReadAll(resp.Body)
	require.Contains(t, string(body), "decode remote write 1 request")
}

func TestIngestionRateLimit(t *testing.T) {
	f := newFixture(t, func(l *workspace.Limits) { l.IngestionRate = 1; l.IngestionBurstSize = 2 })
	ts := now()
	code, body := f.writeV1(f.ws, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{series("a", ts, 1), series("b", ts, 1)}})
	require.Equal(t, http.StatusNoContent, code, body)
	b, err := (&prompb.WriteRequest{Timeseries: []prompb.TimeSeries{series("c", ts, 1)}}).Marshal()
	require.NoError(t, err)
	resp := f.post(f.ws, snappy.Encode(nil, b), nil)
	require.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
	require.Equal(t, "1", resp.Header.Get("Retry-After"))
	msg, _ := io.ReadAll(resp.Body)
	require.Contains(t, string(msg), "ingestion rate limit of 1 samples/s (burst 2)")
	// A request larger than the burst can never pass: it is a client error.
	code, body = f.writeV1(f.ws, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{series("a", ts+1, 1), series("b", ts+1, 1), series("c", ts+1, 1)}})
	require.Equal(t, http.StatusBadRequest, code)
	require.Contains(t, body, "more than the workspace's ingestion burst size of 2")
	// Other workspaces have their own budget.
	code, _ = f.writeV1(workspace.NewID(), &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{series("a", ts, 1)}})
	require.Equal(t, http.StatusNoContent, code)
}

func TestActiveSeriesLimit(t *testing.T) {
	f := newFixture(t, func(l *workspace.Limits) { l.MaxActiveSeries = 2 })
	ts := now()
	code, body := f.writeV1(f.ws, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{series("a", ts, 1), series("b", ts, 1), series("c", ts, 1)}})
	require.Equal(t, http.StatusBadRequest, code)
	require.Contains(t, body, "limit of 2 active series")
	// Existing series keep being accepted at the limit, also after the
	// cache forgot them.
	f.handler.Sweep()
	f.handler.Sweep()
	code, body = f.writeV1(f.ws, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{series("a", ts+1000, 2), series("b", ts+1000, 2)}})
	require.Equal(t, http.StatusNoContent, code, body)
	require.Equal(t, 2, f.count(f.ws, "a"))
	require.Equal(t, 0, f.count(f.ws, "c"))
}

func TestHAPairDeduplication(t *testing.T) {
	f := newFixture(t, func(l *workspace.Limits) { l.HAFailoverTimeout = model.Duration(time.Hour) })
	ts := now()
	code, _ := f.writeV1(f.ws, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{series("up", ts, 1, "cluster", "c1", "__replica__", "r1")}})
	require.Equal(t, http.StatusNoContent, code)
	code, body := f.writeV1(f.ws, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{series("up", ts+1, 5, "cluster", "c1", "__replica__", "r2")}})
	require.Equal(t, http.StatusAccepted, code, body)
	q, err := f.store.Queryable(f.ws).Querier(math.MinInt64, math.MaxInt64)
	require.NoError(t, err)
	defer q.Close()
	ss := q.Select(context.Background(), false, nil, labels.MustNewMatcher(labels.MatchEqual, "__name__", "up"))
	require.True(t, ss.Next())
	require.Equal(t, `{__name__="up", cluster="c1"}`, ss.At().Labels().String(), "the replica label is dropped")
	require.False(t, ss.Next())
}

func TestOutOfOrderWindow(t *testing.T) {
	f := newFixture(t, nil) // 60 s window.
	ts := now()
	code, _ := f.writeV1(f.ws, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{series("x", ts, 1)}})
	require.Equal(t, http.StatusNoContent, code)
	code, body := f.writeV1(f.ws, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{series("x", ts-30_000, 1)}})
	require.Equal(t, http.StatusNoContent, code, body)
	code, body = f.writeV1(f.ws, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{series("x", ts-5*60_000, 1)}})
	require.Equal(t, http.StatusBadRequest, code)
	require.True(t, strings.Contains(body, "too old") || strings.Contains(body, "out of"), body)
	require.Equal(t, 2, f.count(f.ws, "x"))
}

func TestRemoteWrite2Headers(t *testing.T) {
	f := newFixture(t, nil)
	st := writev2.NewSymbolTable()
	ts := now()
	req := &writev2.Request{Timeseries: []writev2.TimeSeries{{
		LabelsRefs: st.SymbolizeLabels(labels.FromStrings("__name__", "up", "job", "a"), nil),
		Samples:    []writev2.Sample{{Value: 1, Timestamp: ts}, {Value: 1, Timestamp: ts + 1000}},
		Exemplars:  []writev2.Exemplar{{LabelsRefs: st.SymbolizeLabels(labels.FromStrings("trace_id", "t"), nil), Value: 1, Timestamp: ts}},
		Metadata:   writev2.Metadata{Type: writev2.Metadata_METRIC_TYPE_GAUGE, HelpRef: st.Symbolize("Up.")},
	}}}
	req.Symbols = st.Symbols()
	b, err := req.Marshal()
	require.NoError(t, err)
	resp := f.post(f.ws, snappy.Encode(nil, b), map[string]string{"Content-Type": "application/x-protobuf;proto=io.prometheus.write.v2.Request"})
	require.Equal(t, http.StatusNoContent, resp.StatusCode)
	require.Equal(t, "2", resp.Header.Get("X-Prometheus-Remote-Write-Samples-Written"))
	require.Equal(t, "0", resp.Header.Get("X-Prometheus-Remote-Write-Histograms-Written"))
	require.Equal(t, "1", resp.Header.Get("X-Prometheus-Remote-Write-Exemplars-Written"))
	md, err := f.store.Metadata(f.ws, "", -1, -1)
	require.NoError(t, err)
	require.Equal(t, "Up.", md["up"][0].Help)
}

// TestSnappyClaimedSize: a body claiming to decompress to more than snappy
// can reach from its size is refused before its claimed size is allocated;
// the densest real snappy blocks are not.
func TestSnappyClaimedSize(t *testing.T) {
	f := newFixture(t, nil)
	bomb := append(binary.AppendUvarint(nil, 64<<20), 0x00, 'x')
	resp := f.post(f.ws, bomb, nil)
	body, _ := io.ReadAll(resp.Body)
	require.Equal(t, http.StatusBadRequest, resp.StatusCode)
	require.Contains(t, string(body), "claims to decompress to 67108864 bytes")
	for name, enc := range map[string]func([]byte, []byte) []byte{
		"fast": snappy.Encode, "better": s2.EncodeSnappyBetter, "best": s2.EncodeSnappyBest,
	} {
		dense := enc(nil, make([]byte, 32<<20))
		resp = f.post(f.ws, dense, nil)
		body, _ = io.ReadAll(resp.Body)
		require.Contains(t, string(body), "decode remote write 1 request", "%s: %d bytes for 32 MiB", name, len(dense))
	}
}

// TestInflightBytes: requests that would hold more than MaxInflightBytes
// at once get 503 with Retry-After before they allocate, and what a
// request held is given back when it ends.
func TestInflightBytes(t *testing.T) {
	lim := workspace.DefaultLimits()
	ov, err := workspace.NewOverrides(lim)
	require.NoError(t, err)
	st, err := storage.New(storage.Config{Dir: t.TempDir()}, ov, nil, prometheus.NewRegistry())
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, st.Close()) })
	h, err := ingest.New(ingest.Config{MaxInflightBytes: 1 << 20}, st, ov, nil, prometheus.NewRegistry())
	require.NoError(t, err)
	f := &fixture{t: t, store: st, handler: h, overrides: ov, ws: workspace.NewID()}

	big := snappy.Encode(nil, make([]byte, 2<<20))
	resp := f.post(f.ws, big, nil)
	body, _ := io.ReadAll(resp.Body)
	require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, string(body))
	require.Equal(t, "1", resp.Header.Get("Retry-After"))
	require.Contains(t, string(body), "--ingest.max-inflight-bytes")
	for i := range 100 { // Nothing leaks: 100 × 600 KiB pass one after another.
		wr := &prompb.WriteRequest{}
		for j := range 5000 {
			wr.Timeseries = append(wr.Timeseries, series("inflight", now()+int64(i), float64(j), "j", strings.Repeat("x", 100)+fmt.Sprint(j)))
		}
		b, err := wr.Marshal()
		require.NoError(t, err)
		require.Greater(t, len(b), 500<<10)
		resp := f.post(f.ws, snappy.Encode(nil, b), nil)
		body, _ := io.ReadAll(resp.Body)
		require.Equal(t, http.StatusNoContent, resp.StatusCode, "request %d: %s", i, body)
	}
}

// TestRemoteWrite2SeriesWithoutSamples: a 2.0 series carrying an exemplar
// (or only metadata) but no sample or histogram is refused with 400, as
// Prometheus 3 refuses it, instead of being dropped silently; the rest of the
// request is stored and the written headers count exactly what was stored.
func TestRemoteWrite2SeriesWithoutSamples(t *testing.T) {
	f := newFixture(t, nil)
	st := writev2.NewSymbolTable()
	ts := now()
	exemplar := func() []writev2.Exemplar {
		return []writev2.Exemplar{{LabelsRefs: st.SymbolizeLabels(labels.FromStrings("trace_id", "t"), nil), Value: 1, Timestamp: ts}}
	}
	req := &writev2.Request{Timeseries: []writev2.TimeSeries{
		{
			LabelsRefs: st.SymbolizeLabels(labels.FromStrings("__name__", "up", "job", "a"), nil),
			Samples:    []writev2.Sample{{Value: 1, Timestamp: ts}},
			Exemplars:  exemplar(),
		},
		{
			LabelsRefs: st.SymbolizeLabels(labels.FromStrings("__name__", "lonely", "job", "a"), nil),
			Exemplars:  exemplar(),
		},
	}}
	req.Symbols = st.Symbols()
	b, err := req.Marshal()
	require.NoError(t, err)
	v2 := map[string]string{"Content-Type": "application/x-protobuf;proto=io.prometheus.write.v2.Request"}
	// Twice: the second time "lonely" is in the series cache, from a
	// request in between that gives it a sample.
	for i := range 2 {
		if i == 1 {
			ok := &writev2.Request{Timeseries: []writev2.TimeSeries{{
				LabelsRefs: st.SymbolizeLabels(labels.FromStrings("__name__", "lonely", "job", "a"), nil),
				Samples:    []writev2.Sample{{Value: 1, Timestamp: ts - 1000}},
			}}}
			ok.Symbols = st.Symbols()
			ob, err := ok.Marshal()
			require.NoError(t, err)
			resp := f.post(f.ws, snappy.Encode(nil, ob), v2)
			require.Equal(t, http.StatusNoContent, resp.StatusCode)
		}
		resp := f.post(f.ws, snappy.Encode(nil, b), v2)
		body, _ := io.ReadAll(resp.Body)
		require.Equal(t, http.StatusBadRequest, resp.StatusCode, string(body))
		require.Contains(t, string(body), `TimeSeries must contain at least one sample or histogram for series {__name__="lonely", job="a"}`)
		require.Equal(t, "1", resp.Header.Get("X-Prometheus-Remote-Write-Samples-Written"))
		require.Equal(t, "0", resp.Header.Get("X-Prometheus-Remote-Write-Histograms-Written"))
		require.Equal(t, "1", resp.Header.Get("X-Prometheus-Remote-Write-Exemplars-Written"))
	}
	require.Equal(t, 1, f.count(f.ws, "up"))
	require.Equal(t, 1, f.count(f.ws, "lonely"))
}
