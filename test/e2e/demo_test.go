package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/cookiejar"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orrery-dev/orrery/internal/apptest"
)

// demoValue finds a `key: value` line the demo printed.
func demoValue(t *testing.T, out, key string) string {
	t.Helper()
	m := regexp.MustCompile(`(?m)^\s*` + regexp.QuoteMeta(key) + `:\s+(\S+)`).FindStringSubmatch(out)
	require.NotNil(t, m, "the demo prints %s:\n%s", key, out)
	return m[1]
}

// demoFault sends a fault to the mesh's control endpoint.
func demoFault(t *testing.T, method, url, body string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	require.Equal(t, http.StatusOK, resp.StatusCode)
}

// maxValue is the largest value of an instant vector's samples.
func maxValue(result []any) float64 {
	best := -1.0
	for _, r := range result {
		s, _ := r.(map[string]any)
		v, _ := s["value"].([]any)
		if len(v) != 2 {
			continue
		}
		str, _ := v[1].(string)
		if f, err := strconv.ParseFloat(str, 64); err == nil && f > best {
			best = f
		}
	}
	return best
}

// TestDemo runs `orrery demo` headless with a short alert `for`, on the
// ports its flags name: every sidecar's envoy_* series arrive in the
// workspace (queried with the printed token), no alert fires without a
// fault (its `for` shortened to 30s), 100 ms of latency injected through the mesh's control endpoint
// raise the p99 of the dashboard's and the alert's queries above the
// 50 ms threshold, the alert fires and the console webhook prints it, and
// it resolves once the fault is removed.
func TestDemo(t *testing.T) {
	t.Parallel()
	addr, hookAddr, agentAddr := apptest.FreeAddr(t), apptest.FreeAddr(t), apptest.FreeAddr(t)
	meshPort := strconv.Itoa(freePortRange(t, 24))
	p := apptest.Start(t, "orrery demo", apptest.OrreryBinary(t), "demo", "--data-dir", t.TempDir(), "--listen", addr,
		"--duration", "8m", "--rps", "20", "--status-interval", "2s", "--mesh.base-port", meshPort,
		"--webhook.listen", hookAddr, "--agent.listen", agentAddr,
		"--testing.rule-for", "30s", "--testing.rule-interval", "2s", "--testing.scrape-interval", "1s")
	require.Eventually(t, func() bool { return strings.Contains(p.Output(), "Inject") },
		60*time.Second, 100*time.Millisecond, "the demo prints its banner:\n%s", p.Output())
	out := p.Output()
	server, ws, token := demoValue(t, out, "server"), demoValue(t, out, "workspace"), demoValue(t, out, "query token")
	control := demoValue(t, out, "mesh control")
	require.Equal(t, "http://"+addr, server)
	require.Equal(t, "http://"+hookAddr+"/alerts", demoValue(t, out, "webhook"))
	require.Equal(t, "http://"+agentAddr+"/api/v1/targets", demoValue(t, out, "agent"))
	require.Contains(t, out, "p99 upstream latency > 50 ms")
	var services []string
	for _, m := range regexp.MustCompile(`(?m)^\s*sidecar:\s+(\S+)\s+(http://\S+/stats/prometheus)$`).FindAllStringSubmatch(out, -1) {
		services = append(services, m[1])
	}
	require.Len(t, services, 5, out)
	api := server + "/workspaces/" + ws + "/api/v1"

	// The Envoy dashboard is installed, and the printed login opens it.
	m := regexp.MustCompile(`(?m)^\s*Envoy:\s+(http://\S+)/ui/#/d/(\S+)\?ws=(\S+)$`).FindStringSubmatch(out)
	require.NotNil(t, m, "the demo prints the dashboard's address:\n%s", out)
	require.Equal(t, ws, m[3])
	login := regexp.MustCompile(`(?m)^\s*log in as:\s+admin / (\S+)`).FindStringSubmatch(out)
	require.NotNil(t, login, "the demo prints the UI login:\n%s", out)
	jar, err := cookiejar.New(nil)
	require.NoError(t, err)
	browser := &http.Client{Jar: jar}
	resp, err := browser.Post(server+"/ui/api/login", "application/json", strings.NewReader(`{"name":"admin","password":"`+login[1]+`"}`))
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	resp, err = browser.Get(server + "/ui/api/workspaces/" + ws + "/dashboards/" + m[2])
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", body)
	require.Contains(t, string(body), "envoy_cluster_upstream_rq_time_bucket")

	// Every sidecar's series, with the labels the dashboards group by.
	apptest.Eventually(t, 60*time.Second, func() error {
		res, err := queryVectorBearer(t, token, api, `count by (service, namespace) ({__name__=~"envoy_.+"})`)
		if err != nil {
			return err
		}
		var got []string
		for _, r := range res {
			m, _ := r.(map[string]any)["metric"].(map[string]any)
			if m["namespace"] == "mesh-demo" {
				got = append(got, fmt.Sprint(m["service"]))
			}
		}
		slices.Sort(got)
		want := slices.Sorted(slices.Values(services))
		if !slices.Equal(got, want) {
			return fmt.Errorf("envoy_* series of %v, want %v", got, want)
		}
		return nil
	})
	for _, q := range []string{`envoy_cluster_upstream_rq_xx{envoy_response_code_class="2",envoy_cluster_name="payments"}`,
		`envoy_http_downstream_rq_total{envoy_http_conn_manager_prefix="ingress",service="frontend"}`, `envoy_server_live`,
		`envoy_cluster_membership_healthy{envoy_cluster_name="local_payments"}`} {
		apptest.Eventually(t, 30*time.Second, func() error {
			res, err := queryVectorBearer(t, token, api, q)
			if err != nil || len(res) == 0 {
				return fmt.Errorf("%s: %v %v", q, res, err)
			}
			return nil
		})
	}
	// The mesh's ports follow the one asked for.
	base, err := strconv.Atoi(meshPort)
	require.NoError(t, err)
	for _, m := range regexp.MustCompile(`(?m)^\s*(?:sidecar:\s+\S+|mesh control:)\s+http://127\.0\.0\.1:(\d+)`).FindAllStringSubmatch(out, -1) {
		port, err := strconv.Atoi(m[1])
		require.NoError(t, err)
		require.True(t, port >= base && port < base+64, "port %d of %q outside --mesh.base-port %d", port, m[0], base)
	}

	// Without a fault, no alert fires: the baseline p99 sits clearly below
	// the threshold, even on a busy machine. A spike while everything
	// starts on a loaded machine may make it pending, as the demo's 1m
	// `for` (30s here) is there to ride out. Over twice the rule's `for`.
	alertsQuery := `ALERTS{alertname="EnvoyLatencyHigh",alertstate="firing"}`
	deadline := time.Now().Add(70 * time.Second)
	for time.Now().Before(deadline) {
		res, err := queryVectorBearer(t, token, api, alertsQuery)
		require.NoError(t, err)
		require.Empty(t, res, "an alert without a fault; worst p99 in the output:\n%s", p.Output())
		time.Sleep(2 * time.Second)
	}
	require.NotContains(t, p.Output(), "alert: FIRING")

	// 100 ms on payments: the alert's and the dashboard's p99 rise above 50 ms.
	demoFault(t, http.MethodPost, control+"/faults", `{"service":"payments","latency_ms":100}`)
	alertQuery := `histogram_quantile(0.99, sum by (le, envoy_cluster_name) (rate(envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name="payments"}[1m])))`
	dashboardQuery := `histogram_quantile(0.99, sum(rate(envoy_cluster_upstream_rq_time_bucket{service=~"cart",namespace=~"mesh-demo"}[1m])) by (le, service, namespace))`
	for _, q := range []string{alertQuery, dashboardQuery} {
		apptest.Eventually(t, 60*time.Second, func() error {
			res, err := queryVectorBearer(t, token, api, q)
			if err != nil {
				return err
			}
			if v := maxValue(res); v <= 50 {
				return fmt.Errorf("%s = %v, want > 50 ms", q, v)
			}
			return nil
		})
	}
	require.Eventually(t, func() bool {
		return strings.Contains(p.Output(), "alert: FIRING EnvoyLatencyHigh {envoy_cluster_name=payments, severity=page} p99 latency of payments is")
	}, 120*time.Second, 200*time.Millisecond, "the console webhook prints the firing alert")
	require.Regexp(t, `status: [0-9.]+ req/s, [0-9.]+% ok, \d+ series, worst p99 [0-9.]+ ms \(\S+\), [1-9]\d* alerts firing`, p.Output())
	// The seed's delivery: email through the SMTP sink, and the SNS topic
	// (signed Publish) whose email subscription mails the same address.
	require.Eventually(t, func() bool {
		out := p.Output()
		return strings.Contains(out, "sns: published to arn:aws:sns:us-east-1:000000000000:mesh-latency: EnvoyLatencyHigh firing") &&
			strings.Contains(out, "mail: no-reply@sns.amazonaws.com -> oncall@mesh-demo.local: EnvoyLatencyHigh firing") &&
			strings.Contains(out, "mail: alertmanager@mesh-demo.local -> oncall@mesh-demo.local:")
	}, 30*time.Second, 200*time.Millisecond, "email and SNS deliver:\n%s", p.Output())
	// The UI's contact points show the three integrations delivering.
	resp, err = browser.Get(server + "/ui/api/workspaces/" + ws + "/contactpoints")
	require.NoError(t, err)
	var contacts []struct {
		Receiver, Integration, LastError string
		Sent                             int
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&contacts))
	resp.Body.Close()
	kinds := map[string]int{}
	for _, c := range contacts {
		require.Equal(t, "oncall", c.Receiver)
		require.Empty(t, c.LastError, c.Integration)
		kinds[c.Integration] = c.Sent
	}
	for _, k := range []string{"webhook", "email", "sns"} {
		require.Positive(t, kinds[k], "%s delivered: %+v", k, contacts)
	}

	// Without the fault, the slow minute leaves the rate window and the
	// alert resolves.
	demoFault(t, http.MethodDelete, control+"/faults", "")
	require.Eventually(t, func() bool {
		return strings.Contains(p.Output(), "alert: RESOLVED EnvoyLatencyHigh {envoy_cluster_name=payments, severity=page}")
	}, 150*time.Second, 500*time.Millisecond, "the console webhook prints the resolution")
	p.Stop()
	require.Contains(t, p.Output(), "stopping the demo")
}

// freePortRange returns the first of n consecutive loopback ports that are
// free now, below Linux's ephemeral range (32768 and up) so that the
// listeners other processes open on port 0 do not take them meanwhile.
func freePortRange(t *testing.T, n int) int {
	t.Helper()
	for try := 0; try < 50; try++ {
		base := 20000 + rand.IntN(12000-n)
		free := true
		for p := base; p < base+n && free; p++ {
			ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
			if err != nil {
				free = false
				continue
			}
			_ = ln.Close()
		}
		if free {
			return base
		}
	}
	t.Fatalf("no %d consecutive free ports", n)
	return 0
}

// TestMeshCommandWithDebianPrometheus runs `orrery mesh` alone and points
// Debian's Prometheus 2.42 at the printed stats URLs: every sidecar is up,
// its Envoy series are stored, and a service taken down through the
// control endpoint shows as 503s in the caller's sidecar.
func TestMeshCommandWithDebianPrometheus(t *testing.T) {
	t.Parallel()
	p := apptest.Start(t, "orrery mesh", apptest.OrreryBinary(t), "mesh", "--rps", "50")
	require.Eventually(t, func() bool { return strings.Count(p.Output(), "sidecar:") == 5 }, 30*time.Second, 100*time.Millisecond, p.Output())
	out := p.Output()
	control := demoValue(t, out, "mesh control")
	var targets []string
	for _, m := range regexp.MustCompile(`(?m)^sidecar:\s+(\S+)\s+http://(\S+)/stats/prometheus$`).FindAllStringSubmatch(out, -1) {
		targets = append(targets, fmt.Sprintf("{targets: [%q], labels: {service: %s}}", m[2], m[1]))
	}
	require.Len(t, targets, 5)

	cfg := filepath.Join(t.TempDir(), "prometheus.yml")
	require.NoError(t, os.WriteFile(cfg, []byte(`global: {scrape_interval: 1s}
scrape_configs:
  - job_name: envoy
    metrics_path: /stats/prometheus
    static_configs: [`+strings.Join(targets, ", ")+`]
`), 0o600))
	addr := apptest.FreeAddr(t)
	apptest.Start(t, "prometheus 2.42", apptest.LookPath(t, "prometheus", "prometheus"), "--config.file="+cfg,
		"--storage.tsdb.path="+t.TempDir(), "--web.listen-address="+addr)
	apptest.WaitHTTP(t, "http://"+addr+"/-/ready", 30*time.Second)
	api := "http://" + addr + "/api/v1"
	apptest.Eventually(t, 60*time.Second, func() error {
		v, err := apptest.QueryVector(t, api, `sum(up{job="envoy"})`, time.Now())
		if err != nil || len(v) != 1 || v[0].Value[1] != "5" {
			return fmt.Errorf("targets up: %v %v", v, err)
		}
		v, err = apptest.QueryVector(t, api, `count by (service) (envoy_http_downstream_rq_total{envoy_http_conn_manager_prefix="ingress"} > 0)`, time.Now())
		if err != nil || len(v) != 5 {
			return fmt.Errorf("sidecars with ingress requests: %v %v", v, err)
		}
		return nil
	})

	demoFault(t, http.MethodPost, control+"/faults", `{"service":"catalog","down":true}`)
	apptest.Eventually(t, 60*time.Second, func() error {
		v, err := apptest.QueryVector(t, api, `envoy_cluster_upstream_rq{service="frontend",envoy_cluster_name="catalog",envoy_response_code="503"}`, time.Now())
		if err != nil || len(v) != 1 {
			return fmt.Errorf("503s of catalog: %v %v", v, err)
		}
		v, err = apptest.QueryVector(t, api, `envoy_cluster_membership_healthy{service="catalog",envoy_cluster_name="local_catalog"} == 0`, time.Now())
		if err != nil || len(v) != 1 {
			return fmt.Errorf("catalog unhealthy: %v %v", v, err)
		}
		return nil
	})
	p.Stop()
}
