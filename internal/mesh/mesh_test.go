package mesh

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/textparse"
	"github.com/stretchr/testify/require"
)

func testdata(parts ...string) string {
	return filepath.Join(append([]string{"..", "..", "test", "testdata"}, parts...)...)
}

// startMesh runs a mesh with traffic for the test's lifetime.
func startMesh(t *testing.T, rps int) *Mesh {
	t.Helper()
	m, err := New(Config{RequestsPerSecond: rps, HealthInterval: 200 * time.Millisecond, Timeout: 5 * time.Second}, nil)
	require.NoError(t, err)
	require.NoError(t, m.Start(t.Context()))
	t.Cleanup(m.Close)
	return m
}

func scrape(t *testing.T, url string) []byte {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer func() { require.NoError(t, resp.Body.Close()) }()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return b
}

func statsURL(m *Mesh, service string) string {
	for _, s := range m.Sidecars() {
		if s.Service == service {
			return s.StatsURL
		}
	}
	return ""
}

// familyInfo is a metric family's type and the label names of its series.
type familyInfo struct {
	typ    model.MetricType
	labels []string
}

// families reads an exposition with Prometheus' own scrape parser, which
// (unlike a strict one) takes families split into several blocks and a
// repeated TYPE line, as Envoy writes them. A histogram's series count for
// their family; `le` is not a label name of it.
func families(t *testing.T, b []byte) map[string]*familyInfo {
	t.Helper()
	out := map[string]*familyInfo{}
	p := textparse.NewPromParser(b, labels.NewSymbolTable(), false)
	for {
		e, err := p.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err)
		switch e {
		case textparse.EntryType:
			name, typ := p.Type()
			if out[string(name)] == nil {
				out[string(name)] = &familyInfo{typ: typ}
			}
		case textparse.EntrySeries:
			var ls labels.Labels
			p.Labels(&ls)
			name := ls.Get(model.MetricNameLabel)
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				if f := out[strings.TrimSuffix(name, suffix)]; strings.HasSuffix(name, suffix) && f != nil && f.typ == model.MetricTypeHistogram {
					name = strings.TrimSuffix(name, suffix)
				}
			}
			f := out[name]
			if f == nil {
				f = &familyInfo{typ: model.MetricTypeUnknown}
				out[name] = f
			}
			ls.Range(func(l labels.Label) {
				if l.Name != model.MetricNameLabel && l.Name != model.BucketLabel && !slices.Contains(f.labels, l.Name) {
					f.labels = append(f.labels, l.Name)
				}
			})
			slices.Sort(f.labels)
		}
	}
	return out
}

// dashboardMetrics returns the envoy_* metric families a dashboard's
// queries use.
func dashboardMetrics(t *testing.T, file string) []string {
	t.Helper()
	b, err := os.ReadFile(testdata("dashboards", file))
	require.NoError(t, err)
	var exprs []string
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if s, ok := x.(string); ok && (k == "expr" || k == "query") {
					exprs = append(exprs, s)
				}
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	var doc any
	require.NoError(t, json.Unmarshal(b, &doc))
	walk(doc)
	labelNames := []string{"envoy_response_code_class", "envoy_tls_certificate", "envoy_cluster_name"}
	var names []string
	for _, e := range exprs {
		for _, n := range regexp.MustCompile(`envoy_[a-zA-Z0-9_]+`).FindAllString(e, -1) {
			n = strings.TrimSuffix(n, "_bucket")
			if !slices.Contains(labelNames, n) && !slices.Contains(names, n) {
				names = append(names, n)
			}
		}
	}
	slices.Sort(names)
	require.NotEmpty(t, names)
	return names
}

// waitRequests waits until the traffic generator had n answers.
func waitRequests(t *testing.T, m *Mesh, n int64) {
	t.Helper()
	start := m.Traffic().Stats().OK + m.Traffic().Stats().Failed
	require.Eventually(t, func() bool {
		s := m.Traffic().Stats()
		return s.OK+s.Failed-start >= n
	}, 30*time.Second, 20*time.Millisecond)
}

func TestSidecarExpositionMatchesEnvoy(t *testing.T) {
	m := startMesh(t, 200)
	require.NoError(t, m.SetFault(Fault{Service: "inventory", ErrorRate: 0.2}))
	waitRequests(t, m, 100)

	sample, err := os.ReadFile(testdata("envoy", "datadog-openmetrics.txt"))
	require.NoError(t, err)
	envoy := families(t, sample)
	require.Greater(t, len(envoy), 300)

	ours := map[string]*familyInfo{}
	for _, svc := range m.Services() {
		body := scrape(t, statsURL(m, svc))
		// Our exposition also passes the strict text parser: one TYPE line
		// per family, no split families.
		parser := expfmt.NewTextParser(model.UTF8Validation)
		strict, err := parser.TextToMetricFamilies(bytes.NewReader(body))
		require.NoError(t, err, svc)
		require.NotEmpty(t, strict)
		for name, f := range families(t, body) {
			if ours[name] == nil {
				ours[name] = f
				continue
			}
			for _, l := range f.labels {
				if !slices.Contains(ours[name].labels, l) {
					ours[name].labels = append(ours[name].labels, l)
				}
			}
			slices.Sort(ours[name].labels)
		}
	}

	shared := 0
	for name, f := range ours {
		require.True(t, strings.HasPrefix(name, "envoy_"), name)
		e, ok := envoy[name]
		if !ok {
			continue
		}
		shared++
		require.Equal(t, e.typ, f.typ, "type of %s", name)
		require.Equal(t, e.labels, f.labels, "label names of %s", name)
	}
	require.Greater(t, shared, 60, "families shared with Envoy's exposition")

	for _, file := range []string{"envoy-global-11022.json", "envoy-proxy-global-envoy-gateway.json"} {
		for _, name := range dashboardMetrics(t, file) {
			switch {
			case strings.HasPrefix(name, "envoy_tcp_"), name == "envoy_listener_ssl_certificate_expiration_unix_time_seconds":
				// The gateway dashboard's TCP proxy and TLS panels: the
				// mesh proxies plain HTTP.
				continue
			}
			require.Contains(t, ours, name, "%s queries %s", file, name)
			if e, ok := envoy[name]; ok {
				require.Equal(t, e.typ, ours[name].typ, name)
			}
		}
	}
}

// sampleValue finds one sample's value in an exposition read by
// Prometheus' scrape parser.
func sampleValue(t *testing.T, b []byte, name string, match map[string]string) (float64, bool) {
	t.Helper()
	p := textparse.NewPromParser(b, labels.NewSymbolTable(), false)
	for {
		e, err := p.Next()
		if errors.Is(err, io.EOF) {
			return 0, false
		}
		require.NoError(t, err)
		if e != textparse.EntrySeries {
			continue
		}
		var ls labels.Labels
		p.Labels(&ls)
		if ls.Get(model.MetricNameLabel) != name {
			continue
		}
		ok := true
		for k, v := range match {
			if k == model.BucketLabel {
				// Prometheus 3's parser normalizes le values (1 → 1.0).
				a, errA := strconv.ParseFloat(ls.Get(k), 64)
				b, errB := strconv.ParseFloat(v, 64)
				ok = ok && errA == nil && errB == nil && a == b
				continue
			}
			ok = ok && ls.Get(k) == v
		}
		if ok {
			_, _, v := p.Series()
			return v, true
		}
	}
}

// buckets reads a histogram's cumulative buckets of one cluster.
func buckets(t *testing.T, b []byte, cluster string) []float64 {
	var out []float64
	for _, le := range append(envoyBuckets[:], math.Inf(1)) {
		s := formatValue(le)
		if math.IsInf(le, 1) {
			s = "+Inf"
		}
		v, ok := sampleValue(t, b, "envoy_cluster_upstream_rq_time_bucket", map[string]string{labelCluster: cluster, "le": s})
		require.True(t, ok, "bucket le=%s of %s", s, cluster)
		out = append(out, v)
	}
	return out
}

// quantile is Prometheus' histogram_quantile over cumulative buckets.
func quantile(q float64, cum []float64) float64 {
	bounds := append(envoyBuckets[:], math.Inf(1))
	total := cum[len(cum)-1]
	if total == 0 {
		return math.NaN()
	}
	rank := q * total
	i, _ := slices.BinarySearch(cum, rank)
	if i == len(bounds)-1 {
		return bounds[len(bounds)-2]
	}
	start, lower := 0.0, 0.0
	if i > 0 {
		start, lower = cum[i-1], bounds[i-1]
	}
	return lower + (bounds[i]-lower)*(rank-start)/(cum[i]-start)
}

func post(t *testing.T, url string, body any) (int, string) {
	t.Helper()
	b, err := json.Marshal(body)
	require.NoError(t, err)
	resp, err := http.Post(url, "application/json", bytes.NewReader(b))
	require.NoError(t, err)
	defer func() { require.NoError(t, resp.Body.Close()) }()
	out, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(out)
}

func TestLatencyFaultRaisesUpstreamP99(t *testing.T) {
	m := startMesh(t, 100)
	waitRequests(t, m, 50)
	cart := statsURL(m, "cart")

	code, body := post(t, m.ControlURL()+"/faults", Fault{Service: "payments", LatencyMS: 20})
	require.Equal(t, http.StatusOK, code, body)
	before := buckets(t, scrape(t, cart), "payments")
	waitRequests(t, m, 100)
	after := buckets(t, scrape(t, cart), "payments")
	delta := make([]float64, len(after))
	for i := range after {
		delta[i] = after[i] - before[i]
	}
	p99 := quantile(0.99, delta)
	require.Greater(t, p99, 5.0, "p99 of payments while 20 ms slow: %v", delta)
	require.Greater(t, quantile(0.5, delta), 10.0)

	// The latency shows on the payments sidecar's local cluster and the
	// frontend's downstream too.
	local := buckets(t, scrape(t, statsURL(m, "payments")), "local_payments")
	require.Less(t, local[3], local[len(local)-1], "some requests of local_payments took more than 10 ms")

	code, body = post(t, m.ControlURL()+"/faults", Fault{Service: "payments"})
	require.Equal(t, http.StatusOK, code, body)
	before = buckets(t, scrape(t, cart), "payments")
	waitRequests(t, m, 100)
	after = buckets(t, scrape(t, cart), "payments")
	for i := range after {
		delta[i] = after[i] - before[i]
	}
	require.Less(t, quantile(0.5, delta), 5.0, "p50 once the fault is gone: %v", delta)
}

func TestErrorAndDownFaults(t *testing.T) {
	m := startMesh(t, 100)
	waitRequests(t, m, 20)

	code, body := post(t, m.ControlURL()+"/faults", map[string]any{"service": "inventory", "error_rate": 1})
	require.Equal(t, http.StatusOK, code, body)
	code, body = post(t, m.ControlURL()+"/faults", map[string]any{"service": "catalog", "down": true})
	require.Equal(t, http.StatusOK, code, body)
	waitRequests(t, m, 50)

	require.Eventually(t, func() bool {
		cart := scrape(t, statsURL(m, "cart"))
		front := scrape(t, statsURL(m, "frontend"))
		// The catalog's own sidecar cannot connect to it and retries;
		// the frontend's sidecar gets the 503 it answers.
		catalog := scrape(t, statsURL(m, "catalog"))
		e500, _ := sampleValue(t, cart, "envoy_cluster_upstream_rq", map[string]string{labelCluster: "inventory", labelCode: "500"})
		x5, _ := sampleValue(t, cart, "envoy_cluster_upstream_rq_xx", map[string]string{labelCluster: "inventory", labelCodeClass: "5"})
		fail, _ := sampleValue(t, catalog, "envoy_cluster_upstream_cx_connect_fail", map[string]string{labelCluster: "local_catalog"})
		retry, _ := sampleValue(t, catalog, "envoy_cluster_upstream_rq_retry", map[string]string{labelCluster: "local_catalog"})
		healthy, _ := sampleValue(t, catalog, "envoy_cluster_membership_healthy", map[string]string{labelCluster: "local_catalog"})
		e503, _ := sampleValue(t, front, "envoy_cluster_upstream_rq", map[string]string{labelCluster: "catalog", labelCode: "503"})
		down5, _ := sampleValue(t, front, "envoy_http_downstream_rq_xx", map[string]string{labelPrefix: prefixIngress, labelCodeClass: "5"})
		return e500 > 0 && x5 >= e500 && fail > 0 && retry > 0 && e503 > 0 && healthy == 0 && down5 > 0
	}, 10*time.Second, 100*time.Millisecond)

	code, _ = post(t, m.ControlURL()+"/faults", map[string]any{"service": "nosuch", "down": true})
	require.Equal(t, http.StatusNotFound, code)
	code, _ = post(t, m.ControlURL()+"/faults", map[string]any{"service": "cart", "error_rate": 2})
	require.Equal(t, http.StatusBadRequest, code)

	req, err := http.NewRequest(http.MethodDelete, m.ControlURL()+"/faults", nil)
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Eventually(t, func() bool {
		healthy, _ := sampleValue(t, scrape(t, statsURL(m, "catalog")), "envoy_cluster_membership_healthy", map[string]string{labelCluster: "local_catalog"})
		return healthy == 1
	}, 10*time.Second, 100*time.Millisecond, "catalog is back")
	ok := m.Traffic().Stats().OK
	waitRequests(t, m, 20)
	require.Greater(t, m.Traffic().Stats().OK, ok)
}

func TestStatsExposition(t *testing.T) {
	st := newStats()
	st.set("envoy_server_live", 1)
	st.inc("envoy_cluster_upstream_rq", labelCode, "200", labelCluster, "a")
	st.observe("envoy_cluster_upstream_rq_time", 0.5, labelCluster, "a")
	st.observe("envoy_cluster_upstream_rq_time", 20, labelCluster, "a")
	st.observe("envoy_cluster_upstream_rq_time", 1e8, labelCluster, "a")
	var b strings.Builder
	require.NoError(t, st.write(&b))
	out := b.String()
	require.Contains(t, out, "# TYPE envoy_cluster_upstream_rq counter\nenvoy_cluster_upstream_rq{envoy_response_code=\"200\",envoy_cluster_name=\"a\"} 1\n")
	require.Contains(t, out, "# TYPE envoy_server_live gauge\nenvoy_server_live{} 1\n")
	for le, n := range map[string]int{"0.5": 1, "10": 1, "25": 2, "3600000": 2, "+Inf": 3} {
		require.Contains(t, out, `envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name="a",le="`+le+`"} `+strconv.Itoa(n)+"\n")
	}
	require.Contains(t, out, `envoy_cluster_upstream_rq_time_count{envoy_cluster_name="a"} 3`)
	require.Contains(t, out, `envoy_cluster_upstream_rq_time_sum{envoy_cluster_name="a"} 100000020.5`)
}
