package ingest_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/orrery-dev/orrery/internal/ingest"
	"github.com/orrery-dev/orrery/internal/workspace"
)

// gaugeExport is an OTLP export of one gauge point with attributes.
func gaugeExport(t *testing.T, name string, at time.Time, v float64, attrs ...string) []byte {
	t.Helper()
	md := pmetric.NewMetrics()
	m := md.ResourceMetrics().AppendEmpty().ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
	m.SetName(name)
	dp := m.SetEmptyGauge().DataPoints().AppendEmpty()
	dp.SetTimestamp(pcommon.NewTimestampFromTime(at))
	dp.SetDoubleValue(v)
	for i := 0; i+1 < len(attrs); i += 2 {
		dp.Attributes().PutStr(attrs[i], attrs[i+1])
	}
	b, err := pmetricotlp.NewExportRequestFromMetrics(md).MarshalProto()
	require.NoError(t, err)
	return b
}

func (f *fixture) postOTLP(o *ingest.OTLP, body []byte) *http.Response {
	return f.postOTLPTo(o, f.ws, body)
}

// postOTLPTo posts an OTLP export to workspace ws.
func (f *fixture) postOTLPTo(o *ingest.OTLP, ws workspace.ID, body []byte) *http.Response {
	return f.postOTLPEncoded(o, ws, body, "")
}

// postOTLPEncoded posts an OTLP export with a Content-Encoding (none if
// enc is "") to workspace ws.
func (f *fixture) postOTLPEncoded(o *ingest.OTLP, ws workspace.ID, body []byte, enc string) *http.Response {
	req := httptest.NewRequest(http.MethodPost, "/workspaces/"+ws.String()+"/api/v1/otlp/v1/metrics", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/x-protobuf")
	if enc != "" {
		req.Header.Set("Content-Encoding", enc)
	}
	req = req.WithContext(workspace.NewContext(req.Context(), ws))
	rec := httptest.NewRecorder()
	o.ServeHTTP(rec, req)
	return rec.Result()
}

// values returns the samples of the series with exactly these labels.
func (f *fixture) values(lset labels.Labels) []float64 {
	q, err := f.store.Queryable(f.ws).Querier(math.MinInt64, math.MaxInt64)
	require.NoError(f.t, err)
	defer q.Close()
	var ms []*labels.Matcher
	lset.Range(func(l labels.Label) { ms = append(ms, labels.MustNewMatcher(labels.MatchEqual, l.Name, l.Value)) })
	ss := q.Select(context.Background(), false, nil, ms...)
	var out []float64
	for ss.Next() {
		require.True(f.t, labels.Equal(lset, ss.At().Labels()), "%s", ss.At().Labels())
		it := ss.At().Iterator(nil)
		for it.Next() != 0 {
			_, v := it.At()
			out = append(out, v)
		}
	}
	require.NoError(f.t, ss.Err())
	return out
}

// TestOTLPHADeduplication sends the same gauge from two replicas of an HA
// pair (cluster and __replica__ attributes): the elected replica's points
// are stored without the replica label, the other's are dropped, as with
// remote write.
func TestOTLPHADeduplication(t *testing.T) {
	f := newFixture(t, nil)
	o, err := ingest.NewOTLP(ingest.DefaultOTLPConfig(), f.handler, nil, prometheus.NewRegistry())
	require.NoError(t, err)
	at := time.Now().Add(-time.Second)
	resp := f.postOTLP(o, gaugeExport(t, "queue_depth", at, 1, "cluster", "eu", "__replica__", "a"))
	require.Equal(t, http.StatusOK, resp.StatusCode)
	resp = f.postOTLP(o, gaugeExport(t, "queue_depth", at.Add(time.Millisecond), 2, "cluster", "eu", "__replica__", "b"))
	require.Equal(t, http.StatusOK, resp.StatusCode)
	body, _ := io.ReadAll(resp.Body)
	answer := pmetricotlp.NewExportResponse()
	require.NoError(t, answer.UnmarshalProto(body))
	require.Contains(t, answer.PartialSuccess().ErrorMessage(), "non-elected HA replica")
	// The elected replica again: an export the translation cache serves.
	resp = f.postOTLP(o, gaugeExport(t, "queue_depth", at.Add(2*time.Millisecond), 3, "cluster", "eu", "__replica__", "a"))
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, []float64{1, 3}, f.values(labels.FromStrings("__name__", "queue_depth", "cluster", "eu")))
}

// TestOTLPRateLimited exceeds the workspace's ingestion rate: 429, a
// retryable code, with Retry-After and a RESOURCE_EXHAUSTED status; nothing
// of that request is stored.
func TestOTLPRateLimited(t *testing.T) {
	f := newFixture(t, func(l *workspace.Limits) { l.IngestionRate = 1; l.IngestionBurstSize = 1 })
	o, err := ingest.NewOTLP(ingest.DefaultOTLPConfig(), f.handler, nil, prometheus.NewRegistry())
	require.NoError(t, err)
	at := time.Now().Add(-time.Second)
	require.Equal(t, http.StatusOK, f.postOTLP(o, gaugeExport(t, "g", at, 1)).StatusCode)
	resp := f.postOTLP(o, gaugeExport(t, "g", at.Add(time.Millisecond), 2))
	require.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
	require.NotEmpty(t, resp.Header.Get("Retry-After"))
	body, _ := io.ReadAll(resp.Body)
	var st status.Status
	require.NoError(t, proto.Unmarshal(body, &st))
	require.Equal(t, int32(8), st.GetCode())
	require.Contains(t, st.GetMessage(), "ingestion rate limit")
	require.Equal(t, []float64{1}, f.values(labels.FromStrings("__name__", "g")))
}

// seriesOf returns the label sets of every series workspace ws holds.
func (f *fixture) seriesOf(ws workspace.ID) []string {
	q, err := f.store.Queryable(ws).Querier(math.MinInt64, math.MaxInt64)
	require.NoError(f.t, err)
	defer q.Close()
	ss := q.Select(context.Background(), true, nil, labels.MustNewMatcher(labels.MatchRegexp, "__name__", ".+"))
	var out []string
	for ss.Next() {
		out = append(out, ss.At().Labels().String())
	}
	require.NoError(f.t, ss.Err())
	return out
}

// TestOTLPWorkspacesStayApart alternates exports of two workspaces through
// one OTLP handler, whose translators and buffers are pooled and so reused
// from one workspace's request to the other's: each workspace holds its
// own series only.
func TestOTLPWorkspacesStayApart(t *testing.T) {
	f := newFixture(t, nil)
	o, err := ingest.NewOTLP(ingest.DefaultOTLPConfig(), f.handler, nil, prometheus.NewRegistry())
	require.NoError(t, err)
	a, b := f.ws, workspace.NewID()
	at := time.Now().Add(-time.Minute)
	for i := range 3 {
		ts := at.Add(time.Duration(i) * time.Second)
		require.Equal(t, http.StatusOK, f.postOTLPTo(o, a, gaugeExport(t, "a_gauge", ts, 1, "team", "a", "n", strconv.Itoa(i))).StatusCode)
		require.Equal(t, http.StatusOK, f.postOTLPTo(o, b, gaugeExport(t, "b_gauge", ts, 2, "team", "b")).StatusCode)
		// The same series' bytes in both: each workspace's cache is its own.
		require.Equal(t, http.StatusOK, f.postOTLPTo(o, a, gaugeExport(t, "both", ts, 3, "team", "x")).StatusCode)
		require.Equal(t, http.StatusOK, f.postOTLPTo(o, b, gaugeExport(t, "both", ts, 4, "team", "x")).StatusCode)
	}
	require.Equal(t, []string{`{__name__="a_gauge", n="0", team="a"}`, `{__name__="a_gauge", n="1", team="a"}`, `{__name__="a_gauge", n="2", team="a"}`, `{__name__="both", team="x"}`}, f.seriesOf(a))
	require.Equal(t, []string{`{__name__="b_gauge", team="b"}`, `{__name__="both", team="x"}`}, f.seriesOf(b))
	require.Equal(t, 3, f.count(b, "b_gauge"))
	require.Equal(t, 3, f.count(a, "both"))
	require.Equal(t, 3, f.count(b, "both"))
}

// TestOTLPGzipReuse sends gzip-compressed exports, valid and not, in turn
// through one handler, whose gzip readers and body buffers are pooled: each
// request is answered for its own body only.
func TestOTLPGzipReuse(t *testing.T) {
	f := newFixture(t, func(l *workspace.Limits) { l.MaxDecodedRequestBytes = 64 << 10 })
	o, err := ingest.NewOTLP(ingest.DefaultOTLPConfig(), f.handler, nil, prometheus.NewRegistry())
	require.NoError(t, err)
	gz := func(b []byte) []byte { return gzipped(t, b) }
	at := time.Now().Add(-time.Minute)
	valid := gz(gaugeExport(t, "g", at, 1, "k", "v"))
	for i, c := range []struct {
		body []byte
		code int
	}{
		{valid, http.StatusOK},
		{[]byte("not gzip at all"), http.StatusBadRequest},
		{gz(gaugeExport(t, "g", at.Add(time.Second), 2, "k", "v")), http.StatusOK},
		{valid[:len(valid)/2], http.StatusBadRequest},               // Truncated.
		{gz(make([]byte, 1<<20)), http.StatusRequestEntityTooLarge}, // Beyond the decoded limit.
		{gz(gaugeExport(t, "g", at.Add(2*time.Second), 3, "k", "v")), http.StatusOK},
		{gaugeExport(t, "g", at.Add(3*time.Second), 4, "k", "v"), http.StatusBadRequest}, // Not compressed.
	} {
		require.Equal(t, c.code, f.postOTLPEncoded(o, f.ws, c.body, "gzip").StatusCode, "request %d", i)
	}
	require.Equal(t, []float64{1, 2, 3}, f.values(labels.FromStrings("__name__", "g", "k", "v")))
}

// bufferedBody is a request body that authentication has read already, as
// the signature check leaves it: the handler takes its bytes.
type bufferedBody struct {
	*bytes.Reader
	b []byte
}

func (bb bufferedBody) Bytes() []byte { return bb.b }
func (bufferedBody) Close() error     { return nil }

// TestOTLPInflightBytes: OTLP bodies count against MaxInflightBytes as
// remote write bodies do, the raw body (read or buffered by
// authentication) and its gzip decompression. A request that would go
// beyond the budget gets 503, which OTLP/HTTP clients retry, with
// Retry-After and an UNAVAILABLE status, and nothing of it is stored;
// what a request held is given back when it ends.
func TestOTLPInflightBytes(t *testing.T) {
	f := newFixture(t, nil)
	h, err := ingest.New(ingest.Config{MaxInflightBytes: 1 << 20}, f.store, f.overrides, nil, prometheus.NewRegistry())
	require.NoError(t, err)
	o, err := ingest.NewOTLP(ingest.DefaultOTLPConfig(), h, nil, prometheus.NewRegistry())
	require.NoError(t, err)
	at := time.Now().Add(-time.Second)

	// 2 MiB once decompressed, a few KiB on the wire.
	big := gaugeExport(t, "big", at, 1, "pad", strings.Repeat("x", 2<<20))
	refused := func(t *testing.T, resp *http.Response) {
		t.Helper()
		body, _ := io.ReadAll(resp.Body)
		require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, string(body))
		require.Equal(t, "1", resp.Header.Get("Retry-After"))
		var st status.Status
		require.NoError(t, proto.Unmarshal(body, &st))
		require.Equal(t, int32(14), st.GetCode()) // UNAVAILABLE
		require.Contains(t, st.GetMessage(), "--ingest.max-inflight-bytes")
	}
	t.Run("gzip", func(t *testing.T) {
		z := gzipped(t, big)
		require.Less(t, len(z), 64<<10)
		refused(t, f.postOTLPEncoded(o, f.ws, z, "gzip"))
	})
	t.Run("raw", func(t *testing.T) {
		refused(t, f.postOTLP(o, big))
	})
	t.Run("buffered by authentication", func(t *testing.T) {
		req := httptest.NewRequest(http.MethodPost, "/workspaces/"+f.ws.String()+"/api/v1/otlp/v1/metrics", nil)
		req.Body = bufferedBody{Reader: bytes.NewReader(big), b: big}
		req.ContentLength = -1 // Not to be refused on the header alone.
		req.Header.Set("Content-Type", "application/x-protobuf")
		req = req.WithContext(workspace.NewContext(req.Context(), f.ws))
		rec := httptest.NewRecorder()
		o.ServeHTTP(rec, req)
		refused(t, rec.Result())
	})
	require.Empty(t, f.values(labels.FromStrings("__name__", "big")))

	// Nothing leaks: 50 requests of some 300 KiB decompressed pass one
	// after another, gzip and not; a leak of one request's bytes would
	// exhaust the budget within four. (A request counts the capacity of
	// the pooled buffers it holds, body and decompressed, which after a
	// raw request and a gzip one are both this large.)
	md := pmetric.NewMetrics()
	ms := md.ResourceMetrics().AppendEmpty().ScopeMetrics().AppendEmpty().Metrics()
	for j := range 2500 {
		m := ms.AppendEmpty()
		m.SetName("inflight")
		dp := m.SetEmptyGauge().DataPoints().AppendEmpty()
		dp.SetTimestamp(pcommon.NewTimestampFromTime(at))
		dp.SetDoubleValue(float64(j))
		dp.Attributes().PutStr("j", strings.Repeat("x", 100)+strconv.Itoa(j))
	}
	medium, err := pmetricotlp.NewExportRequestFromMetrics(md).MarshalProto()
	require.NoError(t, err)
	require.Greater(t, len(medium), 256<<10)
	require.Less(t, len(medium), 400<<10)
	zmedium := gzipped(t, medium)
	for i := range 50 {
		var resp *http.Response
		if i%2 == 0 {
			resp = f.postOTLPEncoded(o, f.ws, zmedium, "gzip")
		} else {
			resp = f.postOTLP(o, medium)
		}
		body, _ := io.ReadAll(resp.Body)
		require.Equal(t, http.StatusOK, resp.StatusCode, "request %d: %s", i, body)
	}
	require.Equal(t, []float64{7}, f.values(labels.FromStrings("__name__", "inflight", "j", strings.Repeat("x", 100)+"7")))
}

// gzipped returns b gzip-compressed.
func gzipped(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	_, err := zw.Write(b)
	require.NoError(t, err)
	require.NoError(t, zw.Close())
	return buf.Bytes()
}
