package e2e

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/orrery-dev/orrery/internal/apptest"
	"github.com/orrery-dev/orrery/internal/workspace"
)

// otlpPayload builds OTLP metrics of one service at time at, the i-th
// export of a run: a monotonic cumulative counter, a gauge, an explicit
// bucket histogram, an exponential histogram and a summary, with resource
// attributes (which become target_info and job/instance) and a UTF-8
// attribute.
func otlpPayload(at time.Time, start time.Time, i int) pmetric.Metrics {
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	res := rm.Resource().Attributes()
	res.PutStr("service.name", "checkout")
	res.PutStr("service.namespace", "shop")
	res.PutStr("service.instance.id", "pod-1")
	res.PutStr("k8s.namespace.name", "prod")
	res.PutStr("host.name", "node-a")
	sm := rm.ScopeMetrics().AppendEmpty()
	sm.Scope().SetName("orrery.test/otlp")
	sm.Scope().SetVersion("1.0.0")
	ts, st := pcommon.NewTimestampFromTime(at), pcommon.NewTimestampFromTime(start)
	f := float64(i)

	m := sm.Metrics().AppendEmpty()
	m.SetName("http.server.requests")
	m.SetUnit("{request}")
	m.SetDescription("Requests served.")
	sum := m.SetEmptySum()
	sum.SetIsMonotonic(true)
	sum.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	for _, code := range []string{"200", "500"} {
		dp := sum.DataPoints().AppendEmpty()
		dp.SetStartTimestamp(st)
		dp.SetTimestamp(ts)
		dp.SetDoubleValue(10*f + float64(len(code)))
		dp.Attributes().PutStr("http.response.status_code", code)
		dp.Attributes().PutStr("région", "europe-ouest")
		ex := dp.Exemplars().AppendEmpty()
		ex.SetTimestamp(ts)
		ex.SetDoubleValue(1)
		ex.SetTraceID(pcommon.TraceID{0xab, byte(i), 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14})
		ex.SetSpanID(pcommon.SpanID{0xcd, byte(i), 1, 2, 3, 4, 5, 6})
	}

	m = sm.Metrics().AppendEmpty()
	m.SetName("process.memory.usage")
	m.SetUnit("By")
	dp := m.SetEmptyGauge().DataPoints().AppendEmpty()
	dp.SetTimestamp(ts)
	dp.SetIntValue(int64(1<<20 + i*4096))

	m = sm.Metrics().AppendEmpty()
	m.SetName("http.server.duration")
	m.SetUnit("ms")
	h := m.SetEmptyHistogram()
	h.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	hp := h.DataPoints().AppendEmpty()
	hp.SetStartTimestamp(st)
	hp.SetTimestamp(ts)
	hp.ExplicitBounds().FromRaw([]float64{5, 10, 50, 100})
	hp.BucketCounts().FromRaw([]uint64{uint64(i), 2 * uint64(i), 3, 1, 0})
	hp.SetCount(3*uint64(i) + 4)
	hp.SetSum(12.5*f + 140)

	m = sm.Metrics().AppendEmpty()
	m.SetName("rpc.latency")
	m.SetUnit("s")
	e := m.SetEmptyExponentialHistogram()
	e.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	ep := e.DataPoints().AppendEmpty()
	ep.SetStartTimestamp(st)
	ep.SetTimestamp(ts)
	ep.SetScale(2)
	ep.SetZeroCount(uint64(i))
	ep.Positive().SetOffset(-3)
	ep.Positive().BucketCounts().FromRaw([]uint64{1, uint64(i), 0, 4})
	ep.Negative().SetOffset(1)
	ep.Negative().BucketCounts().FromRaw([]uint64{uint64(i) + 1})
	ep.SetCount(3*uint64(i) + 6)
	ep.SetSum(0.75 * f)

	m = sm.Metrics().AppendEmpty()
	m.SetName("queue.wait")
	m.SetUnit("s")
	sp := m.SetEmptySummary().DataPoints().AppendEmpty()
	sp.SetStartTimestamp(st)
	sp.SetTimestamp(ts)
	sp.SetCount(uint64(10 + i))
	sp.SetSum(3.5 + f)
	for _, q := range []float64{0.5, 0.99} {
		qv := sp.QuantileValues().AppendEmpty()
		qv.SetQuantile(q)
		qv.SetValue(q*2 + f)
	}
	return md
}

// otlpBody encodes metrics as an OTLP/HTTP body: protobuf or JSON,
// gzip-compressed or not.
func otlpBody(t *testing.T, md pmetric.Metrics, json, gz bool) []byte {
	t.Helper()
	req := pmetricotlp.NewExportRequestFromMetrics(md)
	var (
		b   []byte
		err error
	)
	if json {
		b, err = req.MarshalJSON()
	} else {
		b, err = req.MarshalProto()
	}
	require.NoError(t, err)
	if gz {
		b = gzipBytes(t, b)
	}
	return b
}

func gzipBytes(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	_, err := zw.Write(b)
	require.NoError(t, err)
	require.NoError(t, zw.Close())
	return buf.Bytes()
}

// postOTLP sends an OTLP/HTTP export request and returns the status, the
// body and the response's header.
func postOTLP(t *testing.T, u string, body []byte, contentType, encoding string) (int, []byte, http.Header) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, u, bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", contentType)
	if encoding != "" {
		req.Header.Set("Content-Encoding", encoding)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, b, resp.Header
}

// rawSeries returns every series of an API's workspace with its raw
// samples of the last window before at (a range selector's matrix), in a
// canonical order.
func rawSeries(t *testing.T, api string, at time.Time, window string) []string {
	t.Helper()
	code, body := apptest.Get(t, api+"/query?"+url.Values{"query": {`{__name__=~".+"}[` + window + `]`},
		"time": {strconv.FormatFloat(float64(at.UnixMilli())/1000, 'f', 3, 64)}}.Encode())
	require.Equal(t, http.StatusOK, code, string(body))
	return matrixResults(t, body)
}

// matrixResults returns the series of a query API's matrix answer, each as
// its JSON, sorted.
func matrixResults(t *testing.T, body []byte) []string {
	t.Helper()
	var env struct {
		Data struct {
			ResultType string            `json:"resultType"`
			Result     []json.RawMessage `json:"result"`
		} `json:"data"`
	}
	require.NoError(t, json.Unmarshal(body, &env), "%s", body)
	require.Equal(t, "matrix", env.Data.ResultType)
	out := make([]string, len(env.Data.Result))
	for i, r := range env.Data.Result {
		out[i] = string(r)
	}
	sort.Strings(out)
	return out
}

// TestOTLPMatchesReferencePrometheus sends the same OTLP exports (protobuf
// and JSON, uncompressed and gzip) to a workspace and to the reference
// Prometheus 3's OTLP receiver: both must store identical series and
// samples, as the query API returns them.
func TestOTLPMatchesReferencePrometheus(t *testing.T) {
	ref := startReference(t, "--web.enable-otlp-receiver")
	o := apptest.StartOrrery(t, t.TempDir())
	ws := workspace.NewID().String()
	end := time.Now().Add(-5 * time.Second).Truncate(time.Second)
	start := end.Add(-2 * time.Minute)
	encodings := []struct {
		name, contentType string
		json, gzip        bool
	}{
		{"protobuf", "application/x-protobuf", false, false},
		{"protobuf gzip", "application/x-protobuf", false, true},
		{"json", "application/json", true, false},
		{"json gzip", "application/json", true, true},
	}
	for i, enc := range encodings {
		at := end.Add(time.Duration(i-len(encodings)+1) * 15 * time.Second)
		body := otlpBody(t, otlpPayload(at, start, i), enc.json, enc.gzip)
		encoding := ""
		if enc.gzip {
			encoding = "gzip"
		}
		code, resp, _ := postOTLP(t, ref+"/api/v1/otlp/v1/metrics", body, enc.contentType, encoding)
		require.Equal(t, http.StatusOK, code, "reference, %s: %s", enc.name, resp)
		code, resp, h := postOTLP(t, o.URL(ws, "/api/v1/otlp/v1/metrics"), body, enc.contentType, encoding)
		ct := h.Get("Content-Type")
		require.Equal(t, http.StatusOK, code, "Orrery, %s: %s", enc.name, resp)
		require.Equal(t, enc.contentType, ct, enc.name)
		// A full success answers an ExportMetricsServiceResponse without
		// partial_success.
		answer := pmetricotlp.NewExportResponse()
		if enc.json {
			require.NoError(t, answer.UnmarshalJSON(resp), enc.name)
		} else {
			require.NoError(t, answer.UnmarshalProto(resp), enc.name)
		}
		require.Zero(t, answer.PartialSuccess().RejectedDataPoints(), enc.name)
		require.Empty(t, answer.PartialSuccess().ErrorMessage(), enc.name)
	}

	want := rawSeries(t, ref+"/api/v1", end, "5m")
	got := rawSeries(t, o.URL(ws, "/api/v1"), end, "5m")
	require.Equal(t, want, got)
	// Every kind of point arrived (and the comparison is not of two empty
	// answers).
	names := map[string]int{}
	for _, s := range got {
		var r struct {
			Metric     map[string]string `json:"metric"`
			Values     []json.RawMessage `json:"values"`
			Histograms []json.RawMessage `json:"histograms"`
		}
		require.NoError(t, json.Unmarshal([]byte(s), &r))
		names[r.Metric["__name__"]] += len(r.Values) + len(r.Histograms)
	}
	// Exemplars and metadata go where remote write puts them.
	code, body := apptest.Get(t, o.URL(ws, "/api/v1/query_exemplars?")+url.Values{"query": {"http_server_requests_total"},
		"start": {strconv.FormatInt(start.Unix(), 10)}, "end": {strconv.FormatInt(end.Unix()+1, 10)}}.Encode())
	require.Equal(t, http.StatusOK, code, string(body))
	require.Contains(t, string(body), `"trace_id":"ab03`)
	require.Contains(t, string(body), `"span_id":"cd03`)
	code, body = apptest.Get(t, o.URL(ws, "/api/v1/metadata?metric=http_server_requests_total"))
	require.Equal(t, http.StatusOK, code, string(body))
	require.Contains(t, string(body), `"type":"counter","help":"Requests served.","unit":""`)
	code, body = apptest.Get(t, o.URL(ws, "/api/v1/metadata?metric=process_memory_usage_bytes"))
	require.Equal(t, http.StatusOK, code, string(body))
	require.Contains(t, string(body), `"type":"gauge","help":"","unit":"bytes"`)

	for _, n := range []string{"http_server_requests_total", "process_memory_usage_bytes", "http_server_duration_milliseconds_bucket",
		"http_server_duration_milliseconds_sum", "http_server_duration_milliseconds_count", "rpc_latency_seconds", "queue_wait_seconds",
		"queue_wait_seconds_sum", "queue_wait_seconds_count", "target_info"} {
		require.GreaterOrEqual(t, names[n], len(encodings), "samples of %s in %v", n, names)
	}
}

// signedOTLP sends an OTLP/HTTP export request signed with SigV4 by s and
// returns the status and the body.
func signedOTLP(t *testing.T, s signer, u string, body []byte, contentType, encoding string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, u, bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", contentType)
	if encoding != "" {
		req.Header.Set("Content-Encoding", encoding)
	}
	sum := sha256.Sum256(body)
	require.NoError(t, v4.NewSigner().SignHTTP(context.Background(), aws.Credentials{AccessKeyID: s.key, SecretAccessKey: s.secret},
		req, hex.EncodeToString(sum[:]), "aps", "us-east-1", time.Now()))
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, b
}

// TestOTLPHostileInput sends OTLP requests that must be refused: each gets
// its 4xx, with a google.rpc.Status saying why where the OTLP handler
// answers, and nothing of any of them is stored.
func TestOTLPHostileInput(t *testing.T) {
	t.Setenv("ORRERY_ADMIN_ACCESS_KEY_ID", adminKey)
	t.Setenv("ORRERY_ADMIN_SECRET_ACCESS_KEY", adminSecret)
	o := apptest.StartOrrery(t, t.TempDir(), "--auth=sigv4",
		"--limits.max-request-bytes=262144", "--limits.max-decoded-request-bytes=1048576")
	admin := signer{adminKey, adminSecret}
	a, b := admin.createWorkspace(t, o), admin.createWorkspace(t, o)
	arn := func(ws string) string { return "arn:aws:aps:us-east-1:000000000000:workspace/" + ws }
	keyA := admin.createKey(t, o, fmt.Sprintf(`{"Statement":[{"Effect":"Allow","Action":"aps:RemoteWrite","Resource":%q}]}`, arn(a)))
	otlpURL := func(ws string) string { return o.URL(ws, "/api/v1/otlp/v1/metrics") }

	now := time.Now().Add(-5 * time.Second)
	valid := otlpBody(t, otlpPayload(now, now.Add(-time.Minute), 1), false, false)
	badHist := otlpPayload(now, now.Add(-time.Minute), 1)
	for i := range badHist.ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics().Len() {
		if m := badHist.ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics().At(i); m.Type() == pmetric.MetricTypeExponentialHistogram {
			m.ExponentialHistogram().DataPoints().At(0).SetCount(1) // Fewer than its buckets hold.
		}
	}
	for _, m := range []pmetric.MetricSlice{badHist.ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics()} {
		m.RemoveIf(func(m pmetric.Metric) bool { return m.Type() != pmetric.MetricTypeExponentialHistogram })
	}
	random := make([]byte, 300<<10)
	_, _ = rand.Read(random)
	bomb := gzipBytes(t, make([]byte, 16<<20)) // 16 MiB of zeros in about 16 KiB.

	cases := []struct {
		name    string
		s       signer
		ws      string
		body    []byte
		ct, enc string
		code    int
		msg     string // In the google.rpc.Status, if the OTLP handler answers.
		// plain: the route answers before the OTLP handler (an announced
		// body over the workspace's max_request_bytes), in plain text.
		plain bool
	}{
		{name: "malformed protobuf", s: keyA, ws: a, body: []byte("\x0a\xff\xff\xff\x0f"), ct: "application/x-protobuf", code: 400, msg: "decode OTLP protobuf"},
		{name: "malformed JSON", s: keyA, ws: a, body: []byte(`{"resourceMetrics":[{`), ct: "application/json", code: 400, msg: "decode OTLP JSON"},
		{name: "wrong content type", s: keyA, ws: a, body: valid, ct: "text/plain", code: 415, msg: "Content-Type"},
		{name: "remote write content type", s: keyA, ws: a, body: valid, ct: "application/x-protobuf;proto=prometheus.WriteRequest", enc: "snappy", code: 415, msg: "Content-Encoding"},
		{name: "unsupported encoding", s: keyA, ws: a, body: valid, ct: "application/x-protobuf", enc: "br", code: 415, msg: "Content-Encoding"},
		{name: "not gzip", s: keyA, ws: a, body: valid, ct: "application/x-protobuf", enc: "gzip", code: 400, msg: "not gzip"},
		{name: "gzip bomb", s: keyA, ws: a, body: bomb, ct: "application/x-protobuf", enc: "gzip", code: 413, msg: "decompresses to more than"},
		{name: "oversized payload", s: keyA, ws: a, body: random, ct: "application/x-protobuf", code: 413, msg: "larger than", plain: true},
		{name: "wrong workspace", s: keyA, ws: b, body: valid, ct: "application/x-protobuf", code: 403},
		{name: "wrong key", s: signer{keyA.key, "wrong"}, ws: a, body: valid, ct: "application/x-protobuf", code: 403},
		{name: "unknown workspace", s: admin, ws: "ws-00000000-0000-4000-8000-000000000000", body: valid, ct: "application/x-protobuf", code: 404},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, body := signedOTLP(t, c.s, otlpURL(c.ws), c.body, c.ct, c.enc)
			require.Equal(t, c.code, code, "%q", body)
			if c.plain {
				require.Contains(t, string(body), c.msg)
				return
			}
			if c.msg != "" {
				var st status.Status
				if c.ct == "application/json" {
					require.NoError(t, protojson.Unmarshal(body, &st), "%q", body)
				} else {
					require.NoError(t, proto.Unmarshal(body, &st), "%q", body)
				}
				require.Contains(t, st.GetMessage(), c.msg)
			}
		})
	}

	// Nothing was stored; a valid export is, so the query would show it.
	count := func(ws, selector string) string {
		code, body := admin.do(t, http.MethodGet, o.URL(ws, "/api/v1/query?query="+url.QueryEscape("count("+selector+")")), nil, time.Now(), nil)
		require.Equal(t, http.StatusOK, code, body)
		return body
	}
	for _, ws := range []string{a, b} {
		require.Contains(t, count(ws, `{__name__=~".+"}`), `"result":[]`, ws)
	}

	// A histogram whose count is less than its buckets hold is refused,
	// while its resource's target_info is stored: a partial success, which
	// the client must not retry.
	code, body := signedOTLP(t, keyA, otlpURL(a), otlpBody(t, badHist, false, false), "application/x-protobuf", "")
	require.Equal(t, http.StatusOK, code, "%q", body)
	answer := pmetricotlp.NewExportResponse()
	require.NoError(t, answer.UnmarshalProto(body))
	require.Equal(t, int64(1), answer.PartialSuccess().RejectedDataPoints())
	require.Contains(t, answer.PartialSuccess().ErrorMessage(), "observations found in buckets")
	require.Contains(t, count(a, "rpc_latency_seconds"), `"result":[]`)
	require.NotContains(t, count(a, "target_info"), `"result":[]`)
	code, body = signedOTLP(t, keyA, otlpURL(a), valid, "application/x-protobuf", "")
	require.Equal(t, http.StatusOK, code, "%q", body)
	require.NotContains(t, count(a, "rpc_latency_seconds"), `"result":[]`)
}

// deltaPayload is the i-th export of delta sums and histograms, each
// covering the 15 s before at.
func deltaPayload(at time.Time, i int) pmetric.Metrics {
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	rm.Resource().Attributes().PutStr("service.name", "worker")
	ms := rm.ScopeMetrics().AppendEmpty().Metrics()
	ts, st := pcommon.NewTimestampFromTime(at), pcommon.NewTimestampFromTime(at.Add(-15*time.Second))

	m := ms.AppendEmpty()
	m.SetName("jobs.processed")
	sum := m.SetEmptySum()
	sum.SetIsMonotonic(true)
	sum.SetAggregationTemporality(pmetric.AggregationTemporalityDelta)
	for _, q := range []string{"fast", "slow"} {
		dp := sum.DataPoints().AppendEmpty()
		dp.SetStartTimestamp(st)
		dp.SetTimestamp(ts)
		dp.SetIntValue(int64(3*i + len(q)))
		dp.Attributes().PutStr("queue", q)
	}

	m = ms.AppendEmpty()
	m.SetName("job.duration")
	m.SetUnit("s")
	h := m.SetEmptyHistogram()
	h.SetAggregationTemporality(pmetric.AggregationTemporalityDelta)
	hp := h.DataPoints().AppendEmpty()
	hp.SetStartTimestamp(st)
	hp.SetTimestamp(ts)
	hp.ExplicitBounds().FromRaw([]float64{1, 10})
	hp.BucketCounts().FromRaw([]uint64{uint64(i), 1, 2})
	hp.SetCount(uint64(i) + 3)
	hp.SetSum(float64(i)*0.5 + 25)

	m = ms.AppendEmpty()
	m.SetName("job.size")
	m.SetUnit("By")
	e := m.SetEmptyExponentialHistogram()
	e.SetAggregationTemporality(pmetric.AggregationTemporalityDelta)
	ep := e.DataPoints().AppendEmpty()
	ep.SetStartTimestamp(st)
	ep.SetTimestamp(ts)
	ep.SetScale(0)
	ep.Positive().SetOffset(4)
	ep.Positive().BucketCounts().FromRaw([]uint64{uint64(i), 2})
	ep.SetCount(uint64(i) + 2)
	ep.SetSum(float64(100 * (i + 1)))
	return md
}

// TestOTLPDeltaToCumulativeMatchesReferencePrometheus sends delta sums and
// histograms to Orrery with --otlp.convert-delta and to the reference
// Prometheus 3 with its otlp-deltatocumulative feature: both store the same
// cumulative series. Without the conversion, Orrery refuses deltas with a
// 400 and stores nothing.
func TestOTLPDeltaToCumulativeMatchesReferencePrometheus(t *testing.T) {
	ref := startReference(t, "--web.enable-otlp-receiver", "--enable-feature=otlp-deltatocumulative")
	o := apptest.StartOrrery(t, t.TempDir(), "--otlp.convert-delta")
	ws, other := workspace.NewID().String(), workspace.NewID().String()
	end := time.Now().Add(-5 * time.Second).Truncate(time.Second)
	const n = 4
	for i := range n {
		at := end.Add(time.Duration(i-n+1) * 15 * time.Second)
		body := otlpBody(t, deltaPayload(at, i), false, true)
		code, resp, _ := postOTLP(t, ref+"/api/v1/otlp/v1/metrics", body, "application/x-protobuf", "gzip")
		require.Equal(t, http.StatusOK, code, "reference: %s", resp)
		code, resp, _ = postOTLP(t, o.URL(ws, "/api/v1/otlp/v1/metrics"), body, "application/x-protobuf", "gzip")
		require.Equal(t, http.StatusOK, code, "Orrery: %q", resp)
	}
	// Another workspace's running totals are its own.
	code, resp, _ := postOTLP(t, o.URL(other, "/api/v1/otlp/v1/metrics"), otlpBody(t, deltaPayload(end, 0), false, false), "application/x-protobuf", "")
	require.Equal(t, http.StatusOK, code, "%q", resp)

	want := rawSeries(t, ref+"/api/v1", end, "5m")
	got := rawSeries(t, o.URL(ws, "/api/v1"), end, "5m")
	require.Equal(t, want, got)
	v, err := apptest.QueryVector(t, o.URL(ws, "/api/v1"), `jobs_processed_total{queue="slow"}`, end)
	require.NoError(t, err)
	require.Len(t, v, 1)
	require.Equal(t, strconv.Itoa(3*(0+1+2+3)+4*n), v[0].Value[1], "the sum of the deltas")
	v, err = apptest.QueryVector(t, o.URL(other, "/api/v1"), `jobs_processed_total{queue="slow"}`, end)
	require.NoError(t, err)
	require.Len(t, v, 1)
	require.Equal(t, "4", v[0].Value[1], "another workspace's total")

	plain := apptest.StartOrrery(t, t.TempDir())
	code, resp, _ = postOTLP(t, plain.URL(ws, "/api/v1/otlp/v1/metrics"), otlpBody(t, deltaPayload(end, 0), false, false), "application/x-protobuf", "")
	require.Equal(t, http.StatusBadRequest, code, "%q", resp)
	require.Contains(t, string(resp), "invalid temporality")
	require.Empty(t, rawSeries(t, plain.URL(ws, "/api/v1"), end, "5m"))
}

// TestOTLPWorkspaceSettingsMatchReferencePrometheus gives a workspace an
// otlp block in the limits file (promoted resource attributes, UTF-8 names
// kept, identifying attributes kept in target_info) and the reference
// Prometheus 3 the same block in its configuration: both store the same
// series. Another workspace keeps Prometheus' defaults.
func TestOTLPWorkspaceSettingsMatchReferencePrometheus(t *testing.T) {
	const block = `
    promote_resource_attributes: [k8s.namespace.name, host.name]
    translation_strategy: NoUTF8EscapingWithSuffixes
    keep_identifying_resource_attributes: true
`
	ref := startReferenceConfig(t, "otlp:"+strings.ReplaceAll(block, "\n    ", "\n  "), "--web.enable-otlp-receiver")
	ws, plain := workspace.NewID().String(), workspace.NewID().String()
	limits := filepath.Join(t.TempDir(), "limits.yaml")
	require.NoError(t, os.WriteFile(limits, []byte("overrides:\n  "+ws+":\n    otlp:"+strings.ReplaceAll(block, "\n    ", "\n      ")), 0o600))
	o := apptest.StartOrrery(t, t.TempDir(), "--limits-file="+limits)
	end := time.Now().Add(-5 * time.Second).Truncate(time.Second)
	for i := range 2 {
		at := end.Add(time.Duration(i-1) * 15 * time.Second)
		body := otlpBody(t, otlpPayload(at, end.Add(-time.Minute), i), false, false)
		for _, u := range []string{ref + "/api/v1/otlp/v1/metrics", o.URL(ws, "/api/v1/otlp/v1/metrics"), o.URL(plain, "/api/v1/otlp/v1/metrics")} {
			code, resp, _ := postOTLP(t, u, body, "application/x-protobuf", "")
			require.Equal(t, http.StatusOK, code, "%s: %q", u, resp)
		}
	}
	want := rawSeries(t, ref+"/api/v1", end, "5m")
	require.Equal(t, want, rawSeries(t, o.URL(ws, "/api/v1"), end, "5m"))
	// The settings took effect: a promoted attribute, a UTF-8 name.
	v, err := apptest.QueryVector(t, o.URL(ws, "/api/v1"), `{"http.server.requests_total", "k8s.namespace.name"="prod", "host.name"="node-a"}`, end)
	require.NoError(t, err)
	require.Len(t, v, 2)
	v, err = apptest.QueryVector(t, o.URL(plain, "/api/v1"), `http_server_requests_total{k8s_namespace_name=""}`, end)
	require.NoError(t, err)
	require.Len(t, v, 2, "the other workspace has Prometheus' defaults")
}

// TestOTLPCortexEngine sends the same OTLP exports to a workspace of the
// Cortex engine, through one replica, and to the reference Prometheus 3:
// translated by the replica and forwarded to Cortex as remote write, the
// series and samples read through the other replica are the reference's.
func TestOTLPCortexEngine(t *testing.T) {
	ref := startReference(t, "--web.enable-otlp-receiver")
	c := startCortexCluster(t)
	ws := c.admin.createWorkspace(t, c.a)
	end := time.Now().Add(-5 * time.Second).Truncate(time.Second)
	for i := range 3 {
		at := end.Add(time.Duration(i-2) * 15 * time.Second)
		body := otlpBody(t, otlpPayload(at, end.Add(-time.Minute), i), false, true)
		code, resp, _ := postOTLP(t, ref+"/api/v1/otlp/v1/metrics", body, "application/x-protobuf", "gzip")
		require.Equal(t, http.StatusOK, code, "reference: %s", resp)
		code, resp = signedOTLP(t, c.admin, c.a.URL(ws, "/api/v1/otlp/v1/metrics"), body, "application/x-protobuf", "gzip")
		require.Equal(t, http.StatusOK, code, "Orrery on Cortex: %q", resp)
	}
	want := rawSeries(t, ref+"/api/v1", end, "5m")
	require.NotEmpty(t, want)
	q := url.Values{"query": {`{__name__=~".+"}[5m]`}, "time": {strconv.FormatInt(end.Unix(), 10)}}.Encode()
	apptest.Eventually(t, 30*time.Second, func() error {
		code, body := c.admin.do(t, http.MethodGet, c.b.URL(ws, "/api/v1/query?"+q), nil, time.Now(), nil)
		if code != http.StatusOK {
			return fmt.Errorf("%d %s", code, body)
		}
		got := matrixResults(t, []byte(body))
		if len(got) != len(want) {
			return fmt.Errorf("%d series, want %d", len(got), len(want))
		}
		require.Equal(t, want, got)
		return nil
	})
}

// TestAgentReceivesOTLP sends OTLP exports to `orrery agent --otlp.listen`,
// which writes them to its WAL and remote-writes them to a workspace, and
// the same exports to the reference Prometheus 3: the workspace holds the
// reference's series and samples.
func TestAgentReceivesOTLP(t *testing.T) {
	ref := startReference(t, "--web.enable-otlp-receiver")
	o := apptest.StartOrrery(t, t.TempDir())
	ws := workspace.NewID().String()
	otlpAddr := apptest.FreeAddr(t)
	// The first export was collected before the agent started: remote
	// write's queues would not send it, the agent sends it itself.
	times := []time.Time{time.Now().Add(-30 * time.Second).Truncate(time.Second)}
	a, agentAddr := startAgent(t, fmt.Sprintf(`global:
  scrape_interval: 15s
remote_write:
  - url: %q
    send_native_histograms: true
    queue_config: {batch_send_deadline: 1s}
`, o.RemoteWriteURL(ws)), t.TempDir(), "--otlp.listen", otlpAddr)
	next := time.Now().Add(2 * time.Second).Truncate(time.Second)
	times = append(times, next, next.Add(2*time.Second))

	for i, at := range times {
		body := otlpBody(t, otlpPayload(at, times[0].Add(-time.Minute), i), i == 1, i == 2)
		ct, enc := "application/x-protobuf", ""
		if i == 1 {
			ct = "application/json"
		}
		if i == 2 {
			enc = "gzip"
		}
		code, resp, _ := postOTLP(t, ref+"/api/v1/otlp/v1/metrics", body, ct, enc)
		require.Equal(t, http.StatusOK, code, "reference: %s", resp)
		code, resp, _ = postOTLP(t, "http://"+otlpAddr+"/v1/metrics", body, ct, enc)
		require.Equal(t, http.StatusOK, code, "agent: %s\n%s", resp, a.Output())
	}
	end := times[2]
	want := rawSeries(t, ref+"/api/v1", end, "5m")
	require.NotEmpty(t, want)
	apptest.Eventually(t, 30*time.Second, func() error {
		got := rawSeries(t, o.URL(ws, "/api/v1"), end, "5m")
		if len(got) != len(want) || strings.Join(got, "\n") != strings.Join(want, "\n") {
			return fmt.Errorf("%d series, want %d:\n%s", len(got), len(want), strings.Join(got, "\n"))
		}
		return nil
	})
	_, m := apptest.Get(t, "http://"+agentAddr+"/metrics")
	sent := regexp.MustCompile(`(?m)^orrery_agent_otlp_late_samples_sent_total (\d+)$`).FindSubmatch(m)
	require.NotNil(t, sent, string(m))
	n, err := strconv.Atoi(string(sent[1]))
	require.NoError(t, err)
	require.GreaterOrEqual(t, n, len(want), "the first export's samples, one per series, sent by the agent")
}

// TestAgentOTLPLatePointsRetriedWhileReceiverDown sends the agent an OTLP
// export collected before it started while its remote write receiver is
// down: it answers 503 with Retry-After and keeps nothing, so the retry,
// once the receiver is back, is taken whole and the points arrive.
func TestAgentOTLPLatePointsRetriedWhileReceiverDown(t *testing.T) {
	ref := startReference(t, "--web.enable-otlp-receiver")
	o := apptest.StartOrrery(t, t.TempDir())
	ws := workspace.NewID().String()
	o.Stop()
	otlpAddr := apptest.FreeAddr(t)
	at := time.Now().Add(-time.Minute).Truncate(time.Second)
	a, _ := startAgent(t, fmt.Sprintf(`remote_write:
  - url: %q
    send_native_histograms: true
`, o.RemoteWriteURL(ws)), t.TempDir(), "--otlp.listen", otlpAddr)
	body := otlpBody(t, otlpPayload(at, at.Add(-time.Minute), 1), false, false)
	post := func() (int, string, http.Header) {
		code, msg, h := postOTLP(t, "http://"+otlpAddr+"/v1/metrics", body, "application/x-protobuf", "")
		return code, string(msg), h
	}
	code, msg, h := post()
	require.Equal(t, http.StatusServiceUnavailable, code, msg)
	require.Equal(t, "5", h.Get("Retry-After"))
	require.Contains(t, msg, "could not be sent to "+o.RemoteWriteURL(ws))
	require.Contains(t, msg, "connection refused", "the receiver's last error")

	o.Restart()
	code, msg, _ = post()
	require.Equal(t, http.StatusOK, code, "the retry: %s\n%s", msg, a.Output())
	code, refMsg, _ := postOTLP(t, ref+"/api/v1/otlp/v1/metrics", body, "application/x-protobuf", "")
	require.Equal(t, http.StatusOK, code, "reference: %s", refMsg)
	want := rawSeries(t, ref+"/api/v1", at, "5m")
	require.NotEmpty(t, want)
	require.Equal(t, want, rawSeries(t, o.URL(ws, "/api/v1"), at, "5m"), "sent before the agent answered")
}

// TestAgentOTLPRetryAcrossRestart sends the agent, after a restart, an
// export collected before it (an exporter's retry): older than what the
// agent had sent before the restart, neither its WAL's resending nor
// remote write's queues would send it; the agent does, before it answers.
func TestAgentOTLPRetryAcrossRestart(t *testing.T) {
	ref := startReference(t, "--web.enable-otlp-receiver")
	o := apptest.StartOrrery(t, t.TempDir())
	ws := workspace.NewID().String()
	wal, otlpAddr := t.TempDir(), apptest.FreeAddr(t)
	config := fmt.Sprintf(`remote_write:
  - url: %q
    send_native_histograms: true
    queue_config: {batch_send_deadline: 1s}
`, o.RemoteWriteURL(ws))
	send := func(md pmetric.Metrics) {
		t.Helper()
		body := otlpBody(t, md, false, false)
		code, resp, _ := postOTLP(t, ref+"/api/v1/otlp/v1/metrics", body, "application/x-protobuf", "")
		require.Equal(t, http.StatusOK, code, "reference: %s", resp)
		code, resp, _ = postOTLP(t, "http://"+otlpAddr+"/v1/metrics", body, "application/x-protobuf", "")
		require.Equal(t, http.StatusOK, code, "agent: %s", resp)
	}
	now := time.Now().Truncate(time.Second)
	agent, _ := startAgent(t, config, wal, "--otlp.listen", otlpAddr)
	// Timestamped past the slack in which the agent sends points itself,
	// so that the queues send these and move the watermark.
	send(otlpPayload(now.Add(20*time.Second), now.Add(-time.Minute), 1))
	apptest.Eventually(t, 60*time.Second, func() error {
		b, err := os.ReadFile(filepath.Join(wal, "orrery-sent"))
		if err != nil {
			return err
		}
		if ms, _ := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64); ms < now.Add(20*time.Second).UnixMilli() {
			return fmt.Errorf("watermark %d", ms)
		}
		return nil
	})
	agent.Stop()
	agent, _ = startAgent(t, config, wal, "--otlp.listen", otlpAddr)
	retry := otlpPayload(now, now.Add(-time.Minute), 0)
	retry.ResourceMetrics().At(0).Resource().Attributes().PutStr("service.instance.id", "pod-2")
	send(retry)

	end := now.Add(20 * time.Second)
	want := rawSeries(t, ref+"/api/v1", end, "5m")
	apptest.Eventually(t, 30*time.Second, func() error {
		got := rawSeries(t, o.URL(ws, "/api/v1"), end, "5m")
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			return fmt.Errorf("%d series, want %d:\n%s\n%s", len(got), len(want), strings.Join(got, "\n"), agent.Output())
		}
		return nil
	})
	require.Contains(t, strings.Join(want, "\n"), `"instance":"pod-2"`)
}

// otlpRepeatPayload is otlpPayload (a counter with exemplars, a gauge,
// a histogram, an exponential histogram and a summary) with a counter
// without exemplars, a second resource of identifying attributes only and
// a third of none with a gauge each, and a point without a recorded value
// (a stale marker) in export 3: the gauges and the counter without
// exemplars are what Orrery's translation cache serves once it knows
// their series, the rest is translated.
func otlpRepeatPayload(at, start time.Time, i int) pmetric.Metrics {
	md := otlpPayload(at, start, i)
	m := md.ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics().AppendEmpty()
	m.SetName("jobs.done")
	sum := m.SetEmptySum()
	sum.SetIsMonotonic(true)
	sum.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	dp := sum.DataPoints().AppendEmpty()
	dp.SetStartTimestamp(pcommon.NewTimestampFromTime(start))
	dp.SetTimestamp(pcommon.NewTimestampFromTime(at))
	dp.SetIntValue(int64(7 * i))
	ts := pcommon.NewTimestampFromTime(at)
	for r, attrs := range [][]string{{"service.name", "cart", "service.instance.id", "pod-2"}, {}} {
		rm := md.ResourceMetrics().AppendEmpty()
		for k := 0; k < len(attrs); k += 2 {
			rm.Resource().Attributes().PutStr(attrs[k], attrs[k+1])
		}
		m := rm.ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
		m.SetName("queue.depth")
		dps := m.SetEmptyGauge().DataPoints()
		for q := range 3 {
			dp := dps.AppendEmpty()
			dp.SetTimestamp(ts)
			dp.Attributes().PutStr("queue", strconv.Itoa(q))
			dp.SetDoubleValue(float64(i*10 + q + r))
			if i == 3 && q == 1 {
				dp.SetFlags(pmetric.DefaultDataPointFlags.WithNoRecordedValue(true))
			}
		}
	}
	return md
}

// TestOTLPCachedTranslationMatchesReferencePrometheus sends exports of the
// same series, again and again as exporters do, to a workspace and to the
// reference Prometheus 3: after the first, Orrery serves their gauges and
// counters from its translation cache and translates the rest (its
// metrics say so), and both store identical series and samples, exemplars,
// target_info and stale markers included.
func TestOTLPCachedTranslationMatchesReferencePrometheus(t *testing.T) {
	ref := startReference(t, "--web.enable-otlp-receiver")
	o := apptest.StartOrrery(t, t.TempDir())
	ws := workspace.NewID().String()
	end := time.Now().Add(-5 * time.Second).Truncate(time.Second)
	start := end.Add(-5 * time.Minute)
	const n = 6
	for i := range n {
		at := end.Add(time.Duration(i-n+1) * 15 * time.Second)
		body := otlpBody(t, otlpRepeatPayload(at, start, i), false, i%2 == 1)
		encoding := ""
		if i%2 == 1 {
			encoding = "gzip"
		}
		code, resp, _ := postOTLP(t, ref+"/api/v1/otlp/v1/metrics", body, "application/x-protobuf", encoding)
		require.Equal(t, http.StatusOK, code, "reference: %s", resp)
		code, resp, _ = postOTLP(t, o.URL(ws, "/api/v1/otlp/v1/metrics"), body, "application/x-protobuf", encoding)
		require.Equal(t, http.StatusOK, code, "Orrery: %q", resp)
	}
	want := rawSeries(t, ref+"/api/v1", end, "5m")
	got := rawSeries(t, o.URL(ws, "/api/v1"), end, "5m")
	require.Equal(t, want, got)
	require.Len(t, got, 2+1+1+3*2+1+7+1+4, "requests by code, memory, jobs, queue depths of two resources, one target_info, histogram (5 buckets, sum, count), exponential histogram, summary (2 quantiles, sum, count)")
	code, body := apptest.Get(t, o.URL(ws, "/api/v1/query_exemplars?")+url.Values{"query": {"http_server_requests_total"},
		"start": {strconv.FormatInt(start.Unix(), 10)}, "end": {strconv.FormatInt(end.Unix()+1, 10)}}.Encode())
	require.Equal(t, http.StatusOK, code, string(body))
	require.Equal(t, 2*n, strings.Count(string(body), `"trace_id":"ab0`), "exemplars of every export: %s", body)

	code, m := apptest.Get(t, "http://"+o.Addr+"/metrics")
	require.Equal(t, http.StatusOK, code)
	for path, count := range map[string]string{"translated": "1", "cached": strconv.Itoa(n - 1)} {
		require.Regexp(t, `(?m)^orrery_ingest_otlp_exports_total\{path="`+path+`"\} `+count+`$`, string(m))
	}
}
