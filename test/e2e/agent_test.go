package e2e

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orrery-dev/orrery/internal/apptest"
)

// envoyTarget serves a real Envoy /stats/prometheus exposition (from the
// shared test data) as a sidecar would.
func envoyTarget(t *testing.T) string {
	t.Helper()
	body, err := os.ReadFile(filepath.Join(apptest.RepoRoot(), "test", "testdata", "envoy", "datadog-openmetrics.txt"))
	require.NoError(t, err)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		_, _ = w.Write(body)
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// counterTarget serves one counter that goes up by one with every scrape
// it answers, and remembers how many it answered. Paused, it answers 503
// and counts nothing.
type counterTarget struct {
	mu     sync.Mutex
	served int
	paused bool
	addr   string
}

func startCounterTarget(t *testing.T) *counterTarget {
	c := &counterTarget{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.paused {
			http.Error(w, "paused", http.StatusServiceUnavailable)
			return
		}
		c.served++
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		fmt.Fprintf(w, "# TYPE orrery_test_scrapes_total counter\norrery_test_scrapes_total %d\n", c.served)
	}))
	t.Cleanup(srv.Close)
	c.addr = strings.TrimPrefix(srv.URL, "http://")
	return c
}

func (c *counterTarget) pause(p bool) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.paused = p
	return c.served
}

// startAgent starts `orrery agent` with a configuration and returns its
// address.
func startAgent(t *testing.T, config, walDir string, extra ...string) (*apptest.Process, string) {
	t.Helper()
	cfg := filepath.Join(t.TempDir(), "agent.yml")
	require.NoError(t, os.WriteFile(cfg, []byte(config), 0o600))
	addr := apptest.FreeAddr(t)
	args := append([]string{"agent", "--config.file", cfg, "--storage.path", walDir, "--listen", addr}, extra...)
	p := apptest.Start(t, "orrery agent", apptest.OrreryBinary(t), args...)
	apptest.WaitHTTP(t, "http://"+addr+"/-/ready", 30*time.Second)
	return p, addr
}

// TestAgentScrapesAndWritesWithSigV4 runs the agent against Debian's
// node_exporter and a real Envoy exposition, writing with SigV4 (a
// least-privilege key) to an Orrery workspace, with remote write 2.0 to a
// second one, and from the same agent to Debian's Prometheus 2.42 as a
// third-party receiver: all hold the data.
func TestAgentScrapesAndWritesWithSigV4(t *testing.T) {
	t.Setenv("ORRERY_ADMIN_ACCESS_KEY_ID", adminKey)
	t.Setenv("ORRERY_ADMIN_SECRET_ACCESS_KEY", adminSecret)
	o := apptest.StartOrrery(t, t.TempDir(), "--auth=sigv4")
	admin := []string{"AWS_ACCESS_KEY_ID=" + adminKey, "AWS_SECRET_ACCESS_KEY=" + adminSecret}
	out, err := orreryCLI(t, o, admin, "workspaces", "create", "--alias", "agent")
	require.NoError(t, err, out)
	ws := strings.TrimSpace(out)
	out, err = orreryCLI(t, o, admin, "keys", "create", "--workspace", ws, "--access", "remote-write")
	require.NoError(t, err, out)
	key, secret := envValue(t, out, "AWS_ACCESS_KEY_ID"), envValue(t, out, "AWS_SECRET_ACCESS_KEY")
	out, err = orreryCLI(t, o, admin, "workspaces", "create", "--alias", "agent-rw2")
	require.NoError(t, err, out)
	ws2 := strings.TrimSpace(out) // Written with remote write 2.0.

	receiver := apptest.FreeAddr(t)
	empty := filepath.Join(t.TempDir(), "receiver.yml")
	require.NoError(t, os.WriteFile(empty, []byte("global: {}\n"), 0o600))
	apptest.Start(t, "prometheus 2.42 receiver", apptest.LookPath(t, "prometheus", "prometheus"), "--config.file="+empty,
		"--storage.tsdb.path="+t.TempDir(), "--web.listen-address="+receiver, "--web.enable-remote-write-receiver")
	apptest.WaitHTTP(t, "http://"+receiver+"/-/ready", 30*time.Second)

	node, envoy := startNodeExporter(t), envoyTarget(t)
	_, agentAddr := startAgent(t, fmt.Sprintf(`global:
  scrape_interval: 1s
scrape_configs:
  - job_name: node
    static_configs: [{targets: [%q]}]
  - job_name: envoy
    static_configs: [{targets: [%q], labels: {mesh: demo}}]
remote_write:
  - url: %q
    sigv4: {region: us-east-1, access_key: %s, secret_key: %s}
    queue_config: {batch_send_deadline: 1s}
  - url: http://%s/api/v1/write
    queue_config: {batch_send_deadline: 1s}
  - url: %q
    protobuf_message: io.prometheus.write.v2.Request
    sigv4: {region: us-east-1, access_key: %s, secret_key: %s}
    queue_config: {batch_send_deadline: 1s}
`, node, envoy, o.RemoteWriteURL(ws), key, secret, receiver, o.RemoteWriteURL(ws2), adminKey, adminSecret), t.TempDir())

	for _, q := range []string{`up{job="node"}`, `envoy_cluster_upstream_rq_total{envoy_cluster_name="service1",mesh="demo"}`,
		`envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name="service1",le="+Inf"}`} {
		apptest.Eventually(t, 60*time.Second, func() error {
			code, body := curlSigV4(t, adminKey, adminSecret, o.URL(ws, "/api/v1/query?query="+url.QueryEscape(q)))
			if code != http.StatusOK || !strings.Contains(body, `"value"`) {
				return fmt.Errorf("orrery %s: %d %s", q, code, body)
			}
			v, err := apptest.QueryVector(t, "http://"+receiver+"/api/v1", q, time.Now())
			if err != nil || len(v) == 0 {
				return fmt.Errorf("prometheus 2.42 %s: %v %v", q, v, err)
			}
			code, body = curlSigV4(t, adminKey, adminSecret, o.URL(ws2, "/api/v1/query?query="+url.QueryEscape(q)))
			if code != http.StatusOK || !strings.Contains(body, `"value"`) {
				return fmt.Errorf("orrery (remote write 2.0) %s: %d %s", q, code, body)
			}
			return nil
		})
	}
	code, body := apptest.Get(t, "http://"+agentAddr+"/api/v1/targets")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, string(body), `"scrapePool":"envoy"`)
	require.Contains(t, string(body), `"health":"up"`)
	require.NotContains(t, string(body), `"health":"down"`)
	code, body = apptest.Get(t, "http://"+agentAddr+"/metrics")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, string(body), `orrery_agent_targets{health="up",scrape_pool="envoy"} 1`)
	require.Contains(t, string(body), `prometheus_remote_storage_samples_total`)
	o.Stop()
}

// TestAgentKeepsDataThroughAnOutage stops the Orrery server for two
// minutes while the agent scrapes, and restarts the agent itself in the
// middle of the outage; when the server comes back every sample the target
// served arrives, with no gap: the restarted agent sends what its WAL kept
// (Prometheus' own agent mode would drop it).
func TestAgentKeepsDataThroughAnOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("a two-minute outage")
	}
	t.Parallel()
	o := apptest.StartOrrery(t, t.TempDir())
	ws := "ws-0a0a0a0a-0000-4000-8000-000000000001"
	target := startCounterTarget(t)
	config := fmt.Sprintf(`global:
  scrape_interval: 1s
scrape_configs:
  - job_name: counter
    static_configs: [{targets: [%q]}]
remote_write:
  - url: %q
    queue_config: {batch_send_deadline: 1s, min_backoff: 100ms, max_backoff: 2s}
`, target.addr, o.RemoteWriteURL(ws))
	wal := t.TempDir()
	agent, _ := startAgent(t, config, wal, "--flush-deadline=5s")
	api := o.URL(ws, "/api/v1")
	apptest.Eventually(t, 30*time.Second, func() error {
		v, err := apptest.QueryVector(t, api, "orrery_test_scrapes_total", time.Now())
		if err != nil || len(v) == 0 {
			return fmt.Errorf("no data yet: %v", err)
		}
		return nil
	})
	o.Stop()
	// While the server is down its port is held by a listener that drops
	// every connection, so that no other test running beside this one
	// takes it for the two minutes.
	release := holdPort(t, o.Addr)
	time.Sleep(time.Minute)
	// Restart the agent: scrapes answered before it stops are in its WAL.
	target.pause(true)
	agent.Stop()
	agent, _ = startAgent(t, config, wal, "--flush-deadline=5s")
	target.pause(false)
	time.Sleep(time.Minute)
	release()
	o.Restart()
	time.Sleep(3 * time.Second)
	served := target.pause(true)
	require.Greater(t, served, 100)
	apptest.Eventually(t, 60*time.Second, func() error {
		q := "count_over_time(orrery_test_scrapes_total[10m]) == max_over_time(orrery_test_scrapes_total[10m])"
		v, err := apptest.QueryVector(t, api, q, time.Now())
		if err != nil || len(v) == 0 || v[0].Value[1] != fmt.Sprint(served) {
			got, _ := apptest.QueryVector(t, api, "count_over_time(orrery_test_scrapes_total[10m])", time.Now())
			return fmt.Errorf("want %d samples 1..%d, have %v (%v)", served, served, got, err)
		}
		return nil
	})
	agent.Stop()
	o.Stop()
}

// holdPort listens on addr and closes every connection at once, as a host
// whose server is down would, until the returned func is called.
func holdPort(t *testing.T, addr string) func() {
	t.Helper()
	var ln net.Listener
	apptest.Eventually(t, 10*time.Second, func() error {
		var err error
		ln, err = net.Listen("tcp", addr)
		return err
	})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_ = c.Close()
		}
	}()
	return func() {
		_ = ln.Close()
		<-done
	}
}
