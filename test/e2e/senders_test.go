package e2e

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orrery-dev/orrery/internal/apptest"
	"github.com/orrery-dev/orrery/internal/workspace"
)

// startNodeExporter starts Debian's prometheus-node-exporter on a free port.
func startNodeExporter(t *testing.T) string {
	bin := apptest.LookPath(t, "prometheus-node-exporter", "prometheus-node-exporter")
	addr := apptest.FreeAddr(t)
	apptest.Start(t, "node_exporter", bin, "--web.listen-address="+addr)
	apptest.WaitHTTP(t, "http://"+addr+"/metrics", 30*time.Second)
	return addr
}

// writeSenderConfig writes a Prometheus configuration that scrapes target
// every second and remote-writes to url with the given remote_write extras.
func writeSenderConfig(t *testing.T, target, rwURL, extra string) string {
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
scrape_configs:
  - job_name: node
    static_configs:
      - targets: [%q]
remote_write:
  - url: %q
    queue_config:
      batch_send_deadline: 1s
    metadata_config:
      send_interval: 1s
%s`, target, rwURL, extra)
	p := filepath.Join(t.TempDir(), "prometheus.yml")
	require.NoError(t, os.WriteFile(p, []byte(cfg), 0o600))
	return p
}

// requireNodeData waits until the workspace holds node_exporter's data as
// a user would query it, including metric metadata.
func requireNodeData(t *testing.T, o *apptest.Orrery, ws string) {
	api := o.URL(ws, "/api/v1")
	apptest.Eventually(t, 60*time.Second, func() error {
		v, err := apptest.QueryVector(t, api, `up{job="node"}`, time.Now())
		if err != nil {
			return err
		}
		if len(v) != 1 || v[0].Value[1] != "1" {
			return fmt.Errorf("up{job=\"node\"} = %v, want one series = 1", v)
		}
		v, err = apptest.QueryVector(t, api, `count(rate(node_cpu_seconds_total[10s]))`, time.Now())
		if err != nil {
			return err
		}
		if len(v) != 1 {
			return fmt.Errorf("no rate of node_cpu_seconds_total yet")
		}
		return nil
	})
	apptest.Eventually(t, 30*time.Second, func() error {
		_, r := apptest.API(t, api, "/metadata", url.Values{"metric": {"node_cpu_seconds_total"}})
		var md map[string][]struct{ Type, Help string }
		if err := json.Unmarshal(r.Data, &md); err != nil {
			return err
		}
		if len(md["node_cpu_seconds_total"]) == 0 || md["node_cpu_seconds_total"][0].Type != "counter" {
			return fmt.Errorf("metadata of node_cpu_seconds_total: %s", r.Data)
		}
		return nil
	})
}

// TestDebianPrometheusAgentRemoteWrite has Debian's Prometheus 2.42, in
// agent mode, scrape node_exporter and remote-write (1.0) to a workspace.
func TestDebianPrometheusAgentRemoteWrite(t *testing.T) {
	prom := apptest.LookPath(t, "prometheus", "prometheus")
	o := apptest.StartOrrery(t, t.TempDir())
	ws := workspace.NewID().String()
	node := startNodeExporter(t)
	cfg := writeSenderConfig(t, node, o.RemoteWriteURL(ws), "")
	addr := apptest.FreeAddr(t)
	apptest.Start(t, "prometheus 2.42 agent", prom, "--enable-feature=agent", "--config.file="+cfg,
		"--storage.agent.path="+t.TempDir(), "--web.listen-address="+addr)
	requireNodeData(t, o, ws)
}

// TestPrometheus3AgentRemoteWrite2 has the reference Prometheus 3, in agent
// mode, scrape node_exporter and send remote write 2.0 to a workspace.
func TestPrometheus3AgentRemoteWrite2(t *testing.T) {
	prom := apptest.ReferencePrometheus(t)
	o := apptest.StartOrrery(t, t.TempDir())
	ws := workspace.NewID().String()
	node := startNodeExporter(t)
	cfg := writeSenderConfig(t, node, o.RemoteWriteURL(ws), "    protobuf_message: io.prometheus.write.v2.Request\n")
	addr := apptest.FreeAddr(t)
	// metadata-wal-records makes the agent send metric metadata with 2.0.
	p := apptest.Start(t, "prometheus 3 agent", prom, "--agent", "--enable-feature=metadata-wal-records", "--config.file="+cfg,
		"--storage.agent.path="+t.TempDir(), "--web.listen-address="+addr)
	requireNodeData(t, o, ws)
	code, m := apptest.Get(t, "http://"+o.Addr+"/metrics")
	require.Equal(t, 200, code)
	require.Contains(t, string(m), `orrery_ingest_requests_total{code="204",version="2"}`)
	require.NotContains(t, p.Output(), "level=ERROR", "the sender logged no error")
}
