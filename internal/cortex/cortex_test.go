package cortex

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/storage"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v2"
	yaml3 "go.yaml.in/yaml/v3"

	"github.com/orrery-dev/orrery/internal/failure"
	"github.com/orrery-dev/orrery/internal/ingest"
	"github.com/orrery-dev/orrery/internal/ruler"
	"github.com/orrery-dev/orrery/internal/workspace"
)

// fakeCortex records the requests it gets and answers with status.
type fakeCortex struct {
	mu     sync.Mutex
	status int
	reqs   []*http.Request
	bodies [][]byte
	// rules is the ruler's state: tenant -> namespace -> group -> YAML.
	rules map[string]map[string]map[string]string
	// alerts is the Alertmanager configuration by tenant.
	alerts map[string][]byte
}

func newFake(t *testing.T) (*fakeCortex, *Client) {
	f := &fakeCortex{status: http.StatusOK, rules: map[string]map[string]map[string]string{}, alerts: map[string][]byte{}}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	c, err := New(Config{URL: srv.URL}, nil)
	require.NoError(t, err)
	return f, c
}

func (f *fakeCortex) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reqs = append(f.reqs, r)
	f.bodies = append(f.bodies, b)
	tenant := r.Header.Get(TenantHeader)
	if strings.HasPrefix(r.URL.Path, "/api/v1/rules") {
		parts := strings.Split(strings.TrimPrefix(r.URL.Path, "/api/v1/rules"), "/")
		nss := f.rules[tenant]
		if nss == nil {
			nss = map[string]map[string]string{}
			f.rules[tenant] = nss
		}
		switch {
		case r.Method == http.MethodGet:
			out := map[string][]any{}
			for ns, groups := range nss {
				for _, g := range groups {
					var v any
					_ = yaml3.Unmarshal([]byte(g), &v)
					out[ns] = append(out[ns], v)
				}
			}
			if len(out) == 0 {
				http.Error(w, "no rule groups found", http.StatusNotFound)
				return
			}
			b, _ := yaml.Marshal(out)
			_, _ = w.Write(b)
		case r.Method == http.MethodPost:
			var g struct{ Name string }
			_ = yaml.Unmarshal(b, &g)
			if nss[parts[1]] == nil {
				nss[parts[1]] = map[string]string{}
			}
			nss[parts[1]][g.Name] = string(b)
			w.WriteHeader(http.StatusAccepted)
		case r.Method == http.MethodDelete && len(parts) == 3:
			delete(nss[parts[1]], parts[2])
			if len(nss[parts[1]]) == 0 {
				delete(nss, parts[1])
			}
			w.WriteHeader(http.StatusAccepted)
		case r.Method == http.MethodDelete:
			delete(nss, parts[1])
			w.WriteHeader(http.StatusAccepted)
		}
		return
	}
	if r.URL.Path == "/api/v1/alerts" && f.status == http.StatusOK {
		switch r.Method {
		case http.MethodGet:
			if f.alerts[tenant] == nil {
				http.Error(w, "alertmanager config not found", http.StatusNotFound)
				return
			}
			_, _ = w.Write(f.alerts[tenant])
		case http.MethodPost:
			f.alerts[tenant] = b
			w.WriteHeader(http.StatusCreated)
		case http.MethodDelete:
			delete(f.alerts, tenant)
		}
		return
	}
	w.WriteHeader(f.status)
	_, _ = w.Write([]byte("answer"))
}

func (f *fakeCortex) last() (*http.Request, []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.reqs[len(f.reqs)-1], f.bodies[len(f.bodies)-1]
}

func TestStoragePushes(t *testing.T) {
	f, c := newFake(t)
	s := NewStorage(c)
	id := workspace.NewID()
	s.SetMetadata(id, "rq_total", metadata.Metadata{Type: model.MetricTypeCounter, Help: "requests"})
	app, err := s.Appender(context.Background(), id)
	require.NoError(t, err)
	ls := labels.FromStrings("__name__", "rq_total", "pod", "a")
	ref, err := app.Append(0, ls, 0, 1000, 1, nil, nil, storageOpts)
	require.NoError(t, err)
	require.NotZero(t, ref)
	_, err = app.Append(ref, ls, 0, 2000, 2, nil, nil, storageOpts)
	require.NoError(t, err)
	h := &histogram.Histogram{Schema: 0, Count: 2, Sum: 3, PositiveSpans: []histogram.Span{{Offset: 0, Length: 1}}, PositiveBuckets: []int64{2}}
	_, err = app.Append(0, labels.FromStrings("__name__", "lat"), 0, 1000, 0, h, nil, storageOpts)
	require.NoError(t, err)
	require.NoError(t, app.Commit())

	r, body := f.last()
	require.Equal(t, "/api/v1/push", r.URL.Path)
	require.Equal(t, id.String(), r.Header.Get(TenantHeader))
	require.Equal(t, "snappy", r.Header.Get("Content-Encoding"))
	raw, err := snappy.Decode(nil, body)
	require.NoError(t, err)
	var wr prompb.WriteRequest
	require.NoError(t, wr.Unmarshal(raw))
	require.Len(t, wr.Timeseries, 2)
	require.Equal(t, []prompb.Sample{{Timestamp: 1000, Value: 1}, {Timestamp: 2000, Value: 2}}, wr.Timeseries[0].Samples)
	require.Len(t, wr.Timeseries[1].Histograms, 1)
	require.True(t, h.Equals(wr.Timeseries[1].Histograms[0].ToIntHistogram()))
	require.Equal(t, []prompb.MetricMetadata{{Type: prompb.MetricMetadata_COUNTER, MetricFamilyName: "rq_total", Help: "requests"}}, wr.Metadata)

	// Metadata is sent once; an empty commit sends nothing.
	n := len(f.reqs)
	app, _ = s.Appender(context.Background(), id)
	require.NoError(t, app.Commit())
	require.Len(t, f.reqs, n)
}

var storageOpts = storage.AOptions{}

func TestPushErrorsMapToStatus(t *testing.T) {
	for _, tc := range []struct {
		cortex, want int
	}{
		{http.StatusTooManyRequests, http.StatusTooManyRequests},
		{http.StatusBadRequest, http.StatusBadRequest},
		{http.StatusInternalServerError, http.StatusServiceUnavailable},
		{http.StatusServiceUnavailable, http.StatusServiceUnavailable},
	} {
		t.Run(http.StatusText(tc.cortex), func(t *testing.T) {
			f, c := newFake(t)
			f.status = tc.cortex
			s := NewStorage(c)
			id := workspace.NewID()
			s.SetMetadata(id, "up", metadata.Metadata{Type: model.MetricTypeGauge})
			app, _ := s.Appender(context.Background(), id)
			_, _ = app.Append(0, labels.FromStrings("__name__", "up"), 0, 1000, 1, nil, nil, storageOpts)
			err := app.Commit()
			var e *Error
			require.ErrorAs(t, err, &e)
			require.Equal(t, tc.cortex, e.Code)
			require.Equal(t, tc.want, failure.KindOf(err).Status())
			require.Contains(t, err.Error(), "answer")
			require.Len(t, s.takeMetadata(id), 1, "metadata not sent is kept for the next push")
		})
	}
	c, err := New(Config{URL: "http://127.0.0.1:1"}, nil)
	require.NoError(t, err)
	app, _ := NewStorage(c).Appender(context.Background(), workspace.NewID())
	_, _ = app.Append(0, labels.FromStrings("__name__", "up"), 0, 1000, 1, nil, nil, storageOpts)
	err = app.Commit()
	var e *Error
	require.ErrorAs(t, err, &e)
	require.Equal(t, http.StatusServiceUnavailable, failure.KindOf(err).Status())
}

// TestHandlerAnswersCortexStatus: the ingest handler answers with the
// status Cortex's refusal maps to, so senders retry 429 and 5xx.
func TestHandlerAnswersCortexStatus(t *testing.T) {
	f, c := newFake(t)
	ov, err := workspace.NewOverrides(workspace.DefaultLimits())
	require.NoError(t, err)
	h, err := ingest.NewForwarding(ingest.Config{}, NewStorage(c), ov, nil, nil)
	require.NoError(t, err)
	id := workspace.NewID()
	b, err := (&prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{Labels: []prompb.Label{{Name: "__name__", Value: "up"}},
		Samples: []prompb.Sample{{Timestamp: 1000, Value: 1}}}}}).Marshal()
	require.NoError(t, err)
	for _, tc := range []struct{ cortex, want int }{
		{http.StatusOK, http.StatusNoContent},
		{http.StatusTooManyRequests, http.StatusTooManyRequests},
		{http.StatusInternalServerError, http.StatusServiceUnavailable},
	} {
		f.status = tc.cortex
		req := httptest.NewRequest(http.MethodPost, "/api/v1/remote_write", bytes.NewReader(snappy.Encode(nil, b)))
		req.Header.Set("Content-Encoding", "snappy")
		req = req.WithContext(workspace.NewContext(req.Context(), id))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		require.Equal(t, tc.want, rec.Code, rec.Body.String())
	}
}

func TestProxyRewritesTenantAndDropsCredentials(t *testing.T) {
	f, c := newFake(t)
	p := NewProxy(c, "query", "api/v1/", "/prometheus/api/v1/", nil)
	id := workspace.NewID()
	req := httptest.NewRequest(http.MethodGet, "/workspaces/"+id.String()+"/api/v1/query?query=up&X-Amz-Signature=abc&X-Amz-Credential=k", nil)
	req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=k")
	req.Header.Set("X-Amz-Date", "20260101T000000Z")
	req.Header.Set(TenantHeader, "someone-else")
	req = req.WithContext(workspace.NewContext(req.Context(), id))
	rec := httptest.NewRecorder()
	p.ServeHTTP(rec, req)
	require.Equal(t, http.StatusOK, rec.Code)
	require.Equal(t, "answer", rec.Body.String())
	r, _ := f.last()
	require.Equal(t, "/prometheus/api/v1/query", r.URL.Path)
	require.Equal(t, "query=up", r.URL.RawQuery)
	require.Equal(t, id.String(), r.Header.Get(TenantHeader))
	require.Equal(t, []string{id.String()}, r.Header.Values(TenantHeader))
	require.Empty(t, r.Header.Get("Authorization"))
	require.Empty(t, r.Header.Get("X-Amz-Date"))

	// Without a workspace in the context nothing is forwarded.
	n := len(f.reqs)
	rec = httptest.NewRecorder()
	p.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/workspaces/x/api/v1/query", nil))
	require.Equal(t, http.StatusInternalServerError, rec.Code)
	require.Len(t, f.reqs, n)
}

type files map[workspace.ID][]ruler.RuleFile

func (f files) RuleFiles(_ context.Context, id workspace.ID) ([]ruler.RuleFile, error) {
	return f[id], nil
}

type defs map[workspace.ID][]byte

func (d defs) AlertmanagerDefinition(_ context.Context, id workspace.ID) ([]byte, bool, error) {
	b, ok := d[id]
	return b, ok, nil
}

func TestSyncRules(t *testing.T) {
	f, c := newFake(t)
	id := workspace.NewID()
	fs := files{id: {
		{Name: "envoy", Data: []byte("groups:\n- name: a\n  rules:\n  - record: x\n    expr: up\n    labels: {on: off, v: y}\n- name: b\n  rules:\n  - record: y\n    expr: up\n")},
		{Name: "mesh nodes", Data: []byte("groups:\n- name: c\n  rules:\n  - record: z\n    expr: up\n")},
	}}
	s := NewConfigs(c, fs, defs{}, nil)
	require.NoError(t, s.SyncRules(context.Background(), id))
	require.Equal(t, map[string]map[string]string{
		// Scalars keep their form: y and off stay strings.
		"envoy": {"a": "name: a\nrules:\n    - record: x\n      expr: up\n      labels: {on: off, v: y}\n",
			"b": "name: b\nrules:\n    - record: y\n      expr: up\n"},
		"mesh nodes": {"c": "name: c\nrules:\n    - record: z\n      expr: up\n"},
	}, f.rules[id.String()])

	// Nothing changed: one GET, nothing set.
	n := len(f.reqs)
	require.NoError(t, s.SyncRules(context.Background(), id))
	require.Len(t, f.reqs, n+1)
	require.Equal(t, http.MethodGet, f.reqs[n].Method)

	// A group and a namespace removed from the catalog go from Cortex.
	fs[id] = []ruler.RuleFile{{Name: "envoy", Data: []byte("groups:\n- name: b\n  rules:\n  - record: y\n    expr: up\n")}}
	require.NoError(t, s.SyncRules(context.Background(), id))
	require.Equal(t, map[string]map[string]string{"envoy": {"b": "name: b\nrules:\n    - record: y\n      expr: up\n"}}, f.rules[id.String()])

	require.NoError(t, s.DeleteTenant(context.Background(), id))
	require.Empty(t, f.rules[id.String()])
}

func TestSyncAlertmanager(t *testing.T) {
	f, c := newFake(t)
	id := workspace.NewID()
	d := defs{id: []byte("alertmanager_config: |\n  route: {receiver: x}\n  receivers: [{name: x}]\n")}
	s := NewConfigs(c, files{}, d, nil)
	require.NoError(t, s.Sync(context.Background(), id))
	r, body := f.last()
	require.Equal(t, http.MethodPost, r.Method)
	require.Equal(t, "/api/v1/alerts", r.URL.Path)
	require.Equal(t, d[id], body)
	require.NoError(t, s.Sync(context.Background(), id))
	r, _ = f.last()
	require.Equal(t, http.MethodGet, r.Method, "an unchanged definition is not set again")
	require.NoError(t, s.Reconcile(context.Background(), nil, []workspace.ID{id}))
	r, _ = f.last()
	require.Equal(t, http.MethodGet, r.Method)
	delete(d, id)
	require.NoError(t, s.Sync(context.Background(), id))
	r, _ = f.last()
	require.Equal(t, http.MethodDelete, r.Method)
	f.status = http.StatusBadRequest
	d[id] = []byte("alertmanager_config: bad")
	require.ErrorContains(t, s.Sync(context.Background(), id), "400")
}

func TestRuntimeConfig(t *testing.T) {
	id := workspace.NewID()
	l := workspace.DefaultLimits()
	l.LabelSetLimits = []workspace.LabelSetLimit{{LabelSet: map[string]string{"envoy_cluster_name": "payments"}, MaxSeries: 100}}
	b, err := RuntimeConfig(map[workspace.ID]workspace.Limits{id: l})
	require.NoError(t, err)
	var got struct {
		Overrides map[string]map[string]any `yaml:"overrides"`
	}
	require.NoError(t, yaml.Unmarshal(b, &got))
	o := got.Overrides[id.String()]
	require.Equal(t, 10_000_000, o["max_global_series_per_user"])
	require.Equal(t, 0, o["max_series_per_metric"], "Cortex's 50,000 series per metric are lifted")
	require.Equal(t, "3600h0m0s", o["compactor_blocks_retention_period"])
	require.Equal(t, "1m0s", o["out_of_order_time_window"])
	require.Equal(t, true, o["enable_native_histograms"])
	require.Equal(t, true, o["accept_ha_samples"], "HA pairs are Cortex's HA tracker's")
	require.Equal(t, "__replica__", o["ha_replica_label"])
	require.Empty(t, IngestLimits{LimitsSource: mustOverrides(t)}.Limits(id).HAClusterLabel)
	require.Contains(t, string(b), "label_set:\n        envoy_cluster_name: payments\n      limits:\n        max_series: 100")
}

// TestHandlerForwardsSenderBody: a remote write 1.0 request admitted whole
// is forwarded as the sender's bytes; one with a rejected series is
// re-encoded without it.
func TestHandlerForwardsSenderBody(t *testing.T) {
	f, c := newFake(t)
	ov, err := workspace.NewOverrides(workspace.DefaultLimits())
	require.NoError(t, err)
	reg := prometheus.NewRegistry()
	h, err := ingest.NewForwarding(ingest.Config{}, NewStorage(c), IngestLimits{LimitsSource: ov}, nil, reg)
	require.NoError(t, err)
	id := workspace.NewID()
	fast := func() float64 {
		mfs, err := reg.Gather()
		require.NoError(t, err)
		for _, mf := range mfs {
			if mf.GetName() == "orrery_ingest_fast_path_requests_total" {
				return mf.GetMetric()[0].GetCounter().GetValue()
			}
		}
		return 0
	}
	pushes := 0
	send := func(wantCode int, series ...prompb.TimeSeries) ([]byte, []byte) {
		t.Helper()
		b, err := (&prompb.WriteRequest{Timeseries: series}).Marshal()
		require.NoError(t, err)
		body := snappy.Encode(nil, b)
		req := httptest.NewRequest(http.MethodPost, "/api/v1/remote_write", bytes.NewReader(body))
		req = req.WithContext(workspace.NewContext(req.Context(), id))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		require.Equal(t, wantCode, rec.Code, rec.Body.String())
		f.mu.Lock()
		n := len(f.reqs)
		f.mu.Unlock()
		if n == pushes {
			return body, nil
		}
		pushes = n
		_, got := f.last()
		return body, got
	}
	now := time.Now().UnixMilli()
	good := prompb.TimeSeries{Labels: []prompb.Label{{Name: "__name__", Value: "up"}, {Name: "job", Value: "a"}}, Samples: []prompb.Sample{{Timestamp: now, Value: 1}}}
	sent, got := send(http.StatusNoContent, good, good)
	require.Equal(t, sent, got)
	require.Equal(t, 1.0, fast(), "valid sorted series of float samples are checked in one pass and forwarded as sent")

	// Anything else takes the full path, which rejects what is invalid
	// and forwards the rest, re-encoded.
	bad := prompb.TimeSeries{Labels: []prompb.Label{{Name: "no_name", Value: "x"}}, Samples: []prompb.Sample{{Timestamp: now, Value: 1}}}
	sent, got = send(http.StatusBadRequest, good, bad)
	require.NotEqual(t, sent, got)
	raw, err := snappy.Decode(nil, got)
	require.NoError(t, err)
	var wr prompb.WriteRequest
	require.NoError(t, wr.Unmarshal(raw))
	require.Len(t, wr.Timeseries, 1)
	require.Equal(t, good.Labels, wr.Timeseries[0].Labels)
	for name, ts := range map[string]prompb.TimeSeries{
		"future sample":   {Labels: good.Labels, Samples: []prompb.Sample{{Timestamp: now + time.Hour.Milliseconds(), Value: 1}}},
		"invalid UTF-8":   {Labels: []prompb.Label{{Name: "__name__", Value: "up"}, {Name: "job", Value: "\xff"}}, Samples: good.Samples},
		"no metric name":  {Labels: []prompb.Label{{Name: "__name__", Value: ""}, {Name: "job", Value: "a"}}, Samples: good.Samples},
		"duplicate label": {Labels: []prompb.Label{{Name: "__name__", Value: "up"}, {Name: "job", Value: "a"}, {Name: "job", Value: "b"}}, Samples: good.Samples},
		"long value":      {Labels: []prompb.Label{{Name: "__name__", Value: "up"}, {Name: "job", Value: strings.Repeat("x", 2049)}}, Samples: good.Samples},
	} {
		_, got = send(http.StatusBadRequest, ts)
		require.Nil(t, got, "%s: nothing of a wholly rejected request is forwarded", name)
	}
	require.Equal(t, 1.0, fast())

	// Valid requests the one pass does not take are forwarded as sent
	// from the full path: histograms, and labels out of order.
	hist := good
	hist.Samples = nil
	hist.Histograms = []prompb.Histogram{{Timestamp: now, Count: &prompb.Histogram_CountInt{CountInt: 1}, ZeroThreshold: 0.001, ZeroCount: &prompb.Histogram_ZeroCountInt{ZeroCountInt: 1}, Schema: 0}}
	sent, got = send(http.StatusNoContent, hist)
	require.Equal(t, sent, got)
	reordered := good
	reordered.Labels = []prompb.Label{{Name: "job", Value: "a"}, {Name: "__name__", Value: "up"}}
	sent, got = send(http.StatusNoContent, reordered)
	require.Equal(t, sent, got)
	require.Equal(t, 1.0, fast())
}

func TestClientMetrics(t *testing.T) {
	f := &fakeCortex{status: http.StatusOK, rules: map[string]map[string]map[string]string{}, alerts: map[string][]byte{}}
	srv := httptest.NewServer(f)
	defer srv.Close()
	reg := prometheus.NewRegistry()
	c, err := New(Config{URL: srv.URL}, reg)
	require.NoError(t, err)
	id := workspace.NewID()
	require.NoError(t, NewStorage(c).Push(context.Background(), id, &prompb.WriteRequest{}))
	req := httptest.NewRequest(http.MethodGet, "/workspaces/"+id.String()+"/api/v1/labels", nil)
	NewProxy(c, "query", "api/v1/", "/prometheus/api/v1/", nil).ServeHTTP(httptest.NewRecorder(), req.WithContext(workspace.NewContext(req.Context(), id)))
	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP orrery_cortex_requests_total Requests to Cortex by operation (push, query, alertmanager, rule and alertmanager configuration) and status code.
# TYPE orrery_cortex_requests_total counter
orrery_cortex_requests_total{code="200",op="push"} 1
orrery_cortex_requests_total{code="200",op="query"} 1
`), "orrery_cortex_requests_total"))
}

func mustOverrides(t *testing.T) *workspace.Overrides {
	ov, err := workspace.NewOverrides(workspace.DefaultLimits())
	require.NoError(t, err)
	return ov
}

// TestProxyBoundsQueryTimeout: queries get the workspace's query_timeout
// unless they ask for less.
func TestProxyBoundsQueryTimeout(t *testing.T) {
	f, c := newFake(t)
	lim := workspace.DefaultLimits()
	lim.QueryTimeout = model.Duration(30 * time.Second)
	ov, err := workspace.NewOverrides(lim)
	require.NoError(t, err)
	p := NewProxy(c, "query", "api/v1/", "/prometheus/api/v1/", nil).WithQueryTimeout(ov)
	id := workspace.NewID()
	for _, tc := range []struct{ path, want string }{
		{"/api/v1/query?query=up", "30s"},
		{"/api/v1/query_range?query=up&timeout=5m", "30s"},
		{"/api/v1/query?query=up&timeout=10s", "10s"},
		{"/api/v1/labels", ""},
	} {
		req := httptest.NewRequest(http.MethodGet, "/workspaces/"+id.String()+tc.path, nil)
		p.ServeHTTP(httptest.NewRecorder(), req.WithContext(workspace.NewContext(req.Context(), id)))
		r, _ := f.last()
		require.Equal(t, tc.want, r.URL.Query().Get("timeout"), tc.path)
	}
}

// TestProxyForwardsOnlyServedRoutes: paths that are not clean (%2F-escaped
// "..") or that Orrery does not serve never reach Cortex.
func TestProxyForwardsOnlyServedRoutes(t *testing.T) {
	f, c := newFake(t)
	query := NewProxy(c, "query", "api/v1/", "/prometheus/api/v1/", nil)
	am := NewProxy(c, "alertmanager", "alertmanager/api/", "/alertmanager/api/", nil)
	id := workspace.NewID()
	for _, tc := range []struct {
		proxy   *Proxy
		path    string
		forward string // The path Cortex sees; empty: refused.
	}{
		{query, "/api/v1/query?query=up", "/prometheus/api/v1/query"},
		{query, "/api/v1/label/job/values", "/prometheus/api/v1/label/job/values"},
		{query, "/api/v1/admin/tsdb/delete_series", "/prometheus/api/v1/admin/tsdb/delete_series"},
		{query, "/api/v1/..%2F..%2F..%2Fpurger%2Fdelete_tenant", ""},
		{query, "/api/v1/query%2F..%2F..%2F..%2Fpurger%2Fdelete_tenant", ""},
		{query, "/api/v1/.%2Fquery", ""},
		{query, "/api/v1/label//values", ""},
		{query, "/api/v1/status/config", ""},
		{query, "/api/v1/push", ""},
		{am, "/alertmanager/api/v2/silence/0d4b1d1e", "/alertmanager/api/v2/silence/0d4b1d1e"},
		{am, "/alertmanager/api/v2/alerts", "/alertmanager/api/v2/alerts"},
		{am, "/alertmanager/api/v2/..%2F..%2F..%2Fapi%2Fv1%2Falerts", ""},
		{am, "/alertmanager/api/v1/alerts", ""},
	} {
		t.Run(tc.path, func(t *testing.T) {
			n := len(f.reqs)
			req := httptest.NewRequest(http.MethodGet, "/workspaces/"+id.String()+tc.path, nil)
			req = req.WithContext(workspace.NewContext(req.Context(), id))
			rec := httptest.NewRecorder()
			tc.proxy.ServeHTTP(rec, req)
			if tc.forward == "" {
				require.Equal(t, http.StatusNotFound, rec.Code, rec.Body.String())
				require.Len(t, f.reqs, n, "nothing reaches Cortex")
				return
			}
			require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
			r, _ := f.last()
			require.Equal(t, tc.forward, r.URL.Path)
		})
	}
}
