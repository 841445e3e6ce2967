package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"

	"github.com/orrery-dev/orrery/internal/apptest"
	"github.com/orrery-dev/orrery/internal/workspace"
)

// envoyBuckets are Envoy's default histogram bucket bounds, in milliseconds.
var envoyBuckets = []float64{0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000}

// envoyDataset builds an hour of Envoy-like series at a 15 s interval ending
// at end: request counters by code class (with a counter reset), latency
// histograms with Envoy's buckets, gauges, a series that goes stale and a
// native histogram. It is deterministic.
func envoyDataset(end time.Time) []prompb.TimeSeries {
	const step = 15_000
	endMs := end.UnixMilli()
	start := endMs - time.Hour.Milliseconds()
	var out []prompb.TimeSeries
	lbl := func(name string, kv ...string) []prompb.Label {
		ls := []prompb.Label{{Name: "__name__", Value: name}}
		for i := 0; i+1 < len(kv); i += 2 {
			ls = append(ls, prompb.Label{Name: kv[i], Value: kv[i+1]})
		}
		return ls
	}
	clusters := []string{"catalog", "cart", "payments"}
	pods := []string{"frontend-0", "frontend-1"}
	for ci, cluster := range clusters {
		for pi, pod := range pods {
			common := []string{"envoy_cluster_name", cluster, "namespace", "mesh", "pod", pod}
			for _, class := range []string{"2xx", "5xx"} {
				s := prompb.TimeSeries{Labels: lbl("envoy_cluster_upstream_rq_total", append([]string{"envoy_response_code_class", class}, common...)...)}
				v := 0.0
				for t, i := start, 0; t <= endMs; t, i = t+step, i+1 {
					inc := float64((ci+1)*(pi+2)*7 + i%5)
					if class == "5xx" {
						inc = float64(i % 3)
					}
					v += inc
					if class == "2xx" && ci == 1 && i == 120 {
						v = inc // A restart of the sidecar: counter reset.
					}
					s.Samples = append(s.Samples, prompb.Sample{Timestamp: t, Value: v})
				}
				out = append(out, s)
			}
			// Latency histogram: cumulative buckets, drifting slower mid-hour.
			counts := make([]float64, len(envoyBuckets)+1)
			sum := 0.0
			series := make([]prompb.TimeSeries, len(envoyBuckets)+3)
			for b, le := range envoyBuckets {
				series[b].Labels = lbl("envoy_cluster_upstream_rq_time_bucket", append([]string{"le", strconv.FormatFloat(le, 'f', -1, 64)}, common...)...)
			}
			series[len(envoyBuckets)].Labels = lbl("envoy_cluster_upstream_rq_time_bucket", append([]string{"le", "+Inf"}, common...)...)
			series[len(envoyBuckets)+1].Labels = lbl("envoy_cluster_upstream_rq_time_sum", common...)
			series[len(envoyBuckets)+2].Labels = lbl("envoy_cluster_upstream_rq_time_count", common...)
			for t, i := start, 0; t <= endMs; t, i = t+step, i+1 {
				slow := i > 100 && i < 160 && ci == 2
				for k := 0; k < 10+ci; k++ {
					lat := float64((k*7+i*3)%9) + 0.3
					if slow {
						lat += 20
					}
					sum += lat
					for b := range counts {
						if b == len(envoyBuckets) || lat <= envoyBuckets[b] {
							counts[b]++
						}
					}
				}
				for b := range counts {
					series[b].Samples = append(series[b].Samples, prompb.Sample{Timestamp: t, Value: counts[b]})
				}
				series[len(envoyBuckets)+1].Samples = append(series[len(envoyBuckets)+1].Samples, prompb.Sample{Timestamp: t, Value: sum})
				series[len(envoyBuckets)+2].Samples = append(series[len(envoyBuckets)+2].Samples, prompb.Sample{Timestamp: t, Value: counts[len(envoyBuckets)]})
			}
			out = append(out, series...)
			for _, g := range []struct {
				name string
				f    func(i int) float64
			}{
				{"envoy_server_live", func(int) float64 { return 1 }},
				{"envoy_cluster_membership_healthy", func(i int) float64 { return float64(3 - (i/40)%2) }},
				{"envoy_cluster_membership_total", func(int) float64 { return 3 }},
				{"envoy_cluster_upstream_cx_active", func(i int) float64 { return float64((i*13+ci*5+pi)%17) + 0.5 }},
			} {
				s := prompb.TimeSeries{Labels: lbl(g.name, common...)}
				for t, i := start, 0; t <= endMs; t, i = t+step, i+1 {
					s.Samples = append(s.Samples, prompb.Sample{Timestamp: t, Value: g.f(i)})
				}
				out = append(out, s)
			}
		}
	}
	// A series that ends with a staleness marker half-way.
	stale := prompb.TimeSeries{Labels: lbl("envoy_cluster_upstream_cx_total", "envoy_cluster_name", "legacy", "pod", "old-0")}
	for t, i := start, 0; t <= start+30*60_000; t, i = t+step, i+1 {
		stale.Samples = append(stale.Samples, prompb.Sample{Timestamp: t, Value: float64(i * 2)})
	}
	stale.Samples = append(stale.Samples, prompb.Sample{Timestamp: start + 30*60_000 + step, Value: math.Float64frombits(value.StaleNaN)})
	out = append(out, stale)
	// A native histogram (exponential buckets).
	nh := prompb.TimeSeries{Labels: lbl("mesh_request_duration_seconds", "service", "catalog")}
	for t, i := start, 0; t <= endMs; t, i = t+step, i+1 {
		n := uint64(i + 1)
		h := &histogram.Histogram{Schema: 2, Count: 4 * n, Sum: 0.7 * float64(n), ZeroThreshold: 0.001, ZeroCount: n,
			PositiveSpans: []histogram.Span{{Offset: -4, Length: 3}}, PositiveBuckets: []int64{int64(n), 0, 0}}
		nh.Histograms = append(nh.Histograms, prompb.FromIntHistogram(t, h))
	}
	out = append(out, nh)
	return out
}

// differentialQueries are the PromQL queries whose answers must be those
// of the reference: Envoy-style dashboards and alerts, edge cases of the
// engine (staleness, counter resets, native histograms, @, offsets), and a
// parse error.
var differentialQueries = []string{
	`envoy_cluster_upstream_rq_total`,
	`rate(envoy_cluster_upstream_rq_total[1m])`,
	`irate(envoy_cluster_upstream_rq_total[1m])`,
	`increase(envoy_cluster_upstream_rq_total[10m])`,
	`resets(envoy_cluster_upstream_rq_total[1h])`,
	`sum by (envoy_cluster_name) (rate(envoy_cluster_upstream_rq_total{envoy_response_code_class="2xx"}[5m]))`,
	`sum by (envoy_cluster_name) (rate(envoy_cluster_upstream_rq_total{envoy_response_code_class="5xx"}[5m])) / sum by (envoy_cluster_name) (rate(envoy_cluster_upstream_rq_total[5m]))`,
	`histogram_quantile(0.99, sum by (le, envoy_cluster_name) (rate(envoy_cluster_upstream_rq_time_bucket[1m])))`,
	`histogram_quantile(0.5, sum by (le) (rate(envoy_cluster_upstream_rq_time_bucket[5m])))`,
	`histogram_quantile(0.99, sum by (le, envoy_cluster_name) (rate(envoy_cluster_upstream_rq_time_bucket[1m]))) > 5`,
	`rate(envoy_cluster_upstream_rq_time_sum[5m]) / rate(envoy_cluster_upstream_rq_time_count[5m])`,
	`histogram_quantile(0.9, rate(mesh_request_duration_seconds[5m]))`,
	`histogram_count(rate(mesh_request_duration_seconds[5m]))`,
	`histogram_sum(mesh_request_duration_seconds)`,
	`topk(2, sum by (pod) (envoy_cluster_upstream_cx_active))`,
	`bottomk(1, envoy_cluster_upstream_cx_active)`,
	`envoy_cluster_upstream_rq_total offset 10m`,
	`max_over_time(rate(envoy_cluster_upstream_rq_total[1m])[10m:30s])`,
	`avg_over_time(envoy_cluster_upstream_cx_active[5m])`,
	`quantile_over_time(0.9, envoy_cluster_upstream_cx_active[10m])`,
	`deriv(envoy_cluster_upstream_cx_active[5m])`,
	`predict_linear(envoy_cluster_upstream_cx_active[10m], 600)`,
	`changes(envoy_cluster_membership_healthy[30m])`,
	`sum(envoy_cluster_membership_healthy) by (envoy_cluster_name) / sum(envoy_cluster_membership_total) by (envoy_cluster_name)`,
	`label_replace(envoy_server_live, "service", "$1", "pod", "(.*)-[0-9]+")`,
	`label_join(envoy_server_live, "id", "/", "namespace", "pod")`,
	`count_values("healthy", envoy_cluster_membership_healthy)`,
	`envoy_cluster_upstream_cx_total`,
	`absent(envoy_nonexistent_metric)`,
	`envoy_cluster_upstream_cx_active > on (pod, envoy_cluster_name) group_left envoy_server_live`,
	`envoy_server_live unless on (pod) envoy_cluster_upstream_cx_active > 10`,
	`sort_desc(sum by (pod) (rate(envoy_cluster_upstream_rq_total[5m])))`,
	`scalar(sum(envoy_server_live)) * 2`,
	`timestamp(envoy_server_live)`,
	`rate(envoy_cluster_upstream_rq_total[1m] @ end())`,
	`{__name__=~"envoy_cluster_membership_.*", envoy_cluster_name!="cart"}`,
	`sum(rate(envoy_nonexistent[5m]))`,
	`rate(envoy_server_live)`, // A parse error: the error JSON must match too.
	`histogram_quantile(0.9, envoy_cluster_upstream_rq_time_bucket)`,
}

// startReference starts the reference Prometheus 3 as a remote-write receiver.
func startReference(t *testing.T, extra ...string) string {
	return startReferenceConfig(t, "global:\n  scrape_interval: 15s\n", extra...)
}

// startReferenceConfig starts the reference Prometheus 3 with the
// configuration file cfgYAML and extra flags.
func startReferenceConfig(t *testing.T, cfgYAML string, extra ...string) string {
	bin := apptest.ReferencePrometheus(t)
	cfg := filepath.Join(t.TempDir(), "prometheus.yml")
	require.NoError(t, os.WriteFile(cfg, []byte(cfgYAML), 0o600))
	addr := apptest.FreeAddr(t)
	args := append([]string{"--config.file=" + cfg, "--storage.tsdb.path=" + t.TempDir(),
		"--web.listen-address=" + addr, "--web.enable-remote-write-receiver"}, extra...)
	apptest.Start(t, "reference prometheus", bin, args...)
	apptest.WaitHTTP(t, "http://"+addr+"/-/ready", 60*time.Second)
	return "http://" + addr
}

// TestQueriesMatchReferencePrometheus writes the same data to Orrery and to
// a Prometheus server of the embedded version, then asks both the same
// questions through the HTTP API: the answers must be byte-identical.
func TestQueriesMatchReferencePrometheus(t *testing.T) {
	ref := startReference(t)
	o := apptest.StartOrrery(t, t.TempDir(), "--limits.ingestion-rate=0")
	ws := workspace.NewID().String()
	end := time.Now().Truncate(time.Minute).Add(-time.Minute)
	data := envoyDataset(end)
	for i := 0; i < len(data); i += 20 {
		batch := &prompb.WriteRequest{Timeseries: data[i:min(i+20, len(data))]}
		code, body := apptest.Write(t, o.RemoteWriteURL(ws), batch)
		require.Equal(t, http.StatusNoContent, code, body)
		code, body = apptest.Write(t, ref+"/api/v1/write", batch)
		require.Equal(t, http.StatusNoContent, code, body)
	}
	orreryAPI, refAPI := o.URL(ws, "/api/v1"), ref+"/api/v1"

	queries := differentialQueries
	at := []time.Time{end, end.Add(-15 * time.Minute), end.Add(-37*time.Minute - 7*time.Second)}
	compare := func(endpoint string, params url.Values) {
		t.Helper()
		q := params.Encode()
		codeO, bodyO := apptest.Get(t, orreryAPI+endpoint+"?"+q)
		codeR, bodyR := apptest.Get(t, refAPI+endpoint+"?"+q)
		require.Equal(t, codeR, codeO, "%s?%s: status", endpoint, q)
		ordered := strings.Contains(params.Get("query"), "sort")
		require.Equal(t, normalize(t, bodyR, ordered), normalize(t, bodyO, ordered), "%s?%s: body", endpoint, q)
	}
	for _, query := range queries {
		for _, ts := range at {
			compare("/query", url.Values{"query": {query}, "time": {fmt.Sprint(ts.Unix())}})
		}
		// Asked twice, the second answer comes from Orrery's results
		// cache; then shifted by some steps, as a dashboard refresh asks,
		// partly from the cache.
		for _, shift := range []time.Duration{0, 0, -5 * time.Minute, -4*time.Minute - 30*time.Second} {
			compare("/query_range", url.Values{"query": {query}, "start": {fmt.Sprint(end.Add(-time.Hour + shift).Unix())},
				"end": {fmt.Sprint(end.Add(shift).Unix())}, "step": {"30"}})
		}
	}
	// Statistics, asked for, are Prometheus' own: the engine's sample
	// counts of one plain evaluation (timings differ).
	for _, query := range queries[:5] {
		for _, stats := range []string{"true", "all"} {
			params := url.Values{"query": {query}, "start": {fmt.Sprint(end.Add(-time.Hour).Unix())}, "end": {fmt.Sprint(end.Unix())},
				"step": {"30"}, "stats": {stats}}
			_, bodyO := apptest.Get(t, orreryAPI+"/query_range?"+params.Encode())
			_, bodyR := apptest.Get(t, refAPI+"/query_range?"+params.Encode())
			require.Equal(t, statsSamples(t, bodyR), statsSamples(t, bodyO), "stats=%s of %s", stats, query)
		}
	}
	compare("/series", url.Values{"match[]": {`{__name__=~"envoy_.*", pod="frontend-1"}`}})
	compare("/labels", url.Values{})
	compare("/labels", url.Values{"match[]": {`envoy_server_live`}})
	compare("/label/envoy_cluster_name/values", url.Values{})
	compare("/label/__name__/values", url.Values{})
	compare("/query_exemplars", url.Values{"query": {"envoy_server_live"}, "start": {fmt.Sprint(end.Add(-time.Hour).Unix())}, "end": {fmt.Sprint(end.Unix())}})
	compare("/format_query", url.Values{"query": {`sum(rate(x[5m]))by(a)`}})
}

// statsSamples returns the samples part of an answer's statistics.
func statsSamples(t *testing.T, b []byte) string {
	t.Helper()
	var env struct {
		Data struct {
			Stats struct {
				Samples json.RawMessage `json:"samples"`
			} `json:"stats"`
		} `json:"data"`
	}
	require.NoError(t, json.Unmarshal(b, &env), "%s", b)
	require.NotEmpty(t, env.Data.Stats.Samples, "no statistics in %s", b)
	return string(env.Data.Stats.Samples)
}

// normalize re-indents JSON so a failure diff is readable. Unless ordered,
// the elements of an instant vector are sorted: PromQL leaves their order
// unspecified (Prometheus' own promqltest compares them as sets), while
// range results are sorted by the engine itself. Values are kept byte for
// byte.
func normalize(t *testing.T, b []byte, ordered bool) string {
	var env struct {
		Status string `json:"status"`
		Data   struct {
			ResultType string            `json:"resultType"`
			Result     []json.RawMessage `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(b, &env); err == nil && env.Data.ResultType == "vector" && !ordered {
		var full map[string]json.RawMessage
		require.NoError(t, json.Unmarshal(b, &full))
		var data map[string]json.RawMessage
		require.NoError(t, json.Unmarshal(full["data"], &data))
		sort.Slice(env.Data.Result, func(i, j int) bool { return bytes.Compare(env.Data.Result[i], env.Data.Result[j]) < 0 })
		data["result"], _ = json.Marshal(env.Data.Result)
		full["data"], _ = json.Marshal(data)
		b, _ = json.Marshal(full)
	}
	var out bytes.Buffer
	if err := json.Indent(&out, b, "", " "); err != nil {
		return string(b)
	}
	return out.String()
}
