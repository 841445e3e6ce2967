package apptest

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Cortex is a single-process Cortex (-target=all) built from test/cortex,
// with filesystem blocks storage, in-memory rings, the HA tracker on
// memberlist (a single member), the ruler and the Alertmanager with their
// configuration APIs, and multitenancy on (X-Scope-OrgID).
type Cortex struct {
	Addr string
	// RuntimeConfig is the per-tenant overrides file, re-read every second.
	RuntimeConfig string
	// BlocksDir is the filesystem bucket of the blocks storage: a
	// tenant's blocks are in BlocksDir/<tenant>/<ULID>/.
	BlocksDir string
	proc      *Process
}

// URL returns Cortex's base URL.
func (c *Cortex) URL() string { return "http://" + c.Addr }

// Output returns Cortex's log so far.
func (c *Cortex) Output() string { return c.proc.Output() }

// CortexLimits are the defaults the test Cortex applies to every tenant:
// Orrery's default workspace limits (README, Limits) rather than Cortex's,
// whose 50,000 series per metric refuse Envoy histograms at scale.
const CortexLimits = `
  ingestion_rate: 170000
  ingestion_burst_size: 850000
  ingestion_rate_strategy: local
  max_label_names_per_series: 70
  max_label_name_length: 1024
  max_label_value_length: 2048
  max_series_per_metric: 0
  max_series_per_user: 10000000
  max_global_series_per_user: 0
  max_global_series_per_metric: 0
  max_metadata_per_user: 100000
  enable_native_histograms: true
  out_of_order_time_window: 1m
  max_exemplars: 100000
  max_fetched_series_per_query: 0
  max_outstanding_requests_per_tenant: 1000
  ruler_max_rule_groups_per_tenant: 0
  ruler_max_rules_per_rule_group: 0
`

const cortexConfig = `
auth_enabled: true
# Orrery's default (Prometheus 3's): UTF-8 metric and label names.
name_validation_scheme: utf8
memberlist:
  bind_addr: [127.0.0.1]
  bind_port: {{GOSSIP_PORT}}
  advertise_addr: 127.0.0.1
server:
  http_listen_address: 127.0.0.1
  http_listen_port: {{HTTP_PORT}}
  grpc_listen_address: 127.0.0.1
  grpc_listen_port: {{GRPC_PORT}}
  grpc_server_max_recv_msg_size: 104857600
  grpc_server_max_send_msg_size: 104857600
  log_level: warn
distributor:
  shard_by_all_labels: true
  ha_tracker:
    enable_ha_tracker: true
    kvstore:
      store: memberlist
  pool:
    health_check_ingesters: true
  ring:
    instance_addr: 127.0.0.1
    kvstore:
      store: inmemory
ingester_client:
  grpc_client_config:
    max_recv_msg_size: 104857600
    max_send_msg_size: 104857600
ingester:
  lifecycler:
    address: 127.0.0.1
    min_ready_duration: 0s
    final_sleep: 0s
    join_after: 0s
    num_tokens: 128
    ring:
      kvstore:
        store: inmemory
      replication_factor: 1
blocks_storage:
  backend: filesystem
  filesystem:
    dir: {{DIR}}/blocks
  tsdb:
    dir: {{DIR}}/tsdb
  bucket_store:
    sync_dir: {{DIR}}/tsdb-sync
    # Blocks copied into the bucket (orrery migrate-to-cortex) are served
    # once the compactor wrote them into the tenant's bucket index and the
    # store-gateway re-read it: every 5s here instead of every 15m.
    sync_interval: 5s
compactor:
  data_dir: {{DIR}}/compactor
  # How often the bucket index is updated (default 15m).
  cleanup_interval: 5s
  sharding_ring:
    instance_addr: 127.0.0.1
    kvstore:
      store: inmemory
store_gateway:
  sharding_ring:
    instance_addr: 127.0.0.1
    kvstore:
      store: inmemory
frontend_worker:
  match_max_concurrent: true
querier:
  active_query_tracker_dir: {{DIR}}/active-query-tracker
ruler:
  enable_api: true
  poll_interval: 1s
  evaluation_interval: 2s
  rule_path: {{DIR}}/ruler-tmp
  alertmanager_url: http://127.0.0.1:{{HTTP_PORT}}/alertmanager
  ring:
    instance_addr: 127.0.0.1
    kvstore:
      store: inmemory
ruler_storage:
  backend: filesystem
  filesystem:
    dir: {{DIR}}/rules
alertmanager:
  enable_api: true
  external_url: http://127.0.0.1:{{HTTP_PORT}}/alertmanager
  data_dir: {{DIR}}/alertmanager-data
  poll_interval: 1s
  # No gossip cluster: its default listener, 0.0.0.0:9094, would clash
  # between Cortex instances of tests running side by side.
  cluster:
    listen_address: ""
  sharding_ring:
    instance_addr: 127.0.0.1
    kvstore:
      store: inmemory
alertmanager_storage:
  backend: filesystem
  filesystem:
    dir: {{DIR}}/alertmanager
runtime_config:
  period: 1s
  file: {{DIR}}/runtime.yaml
limits:{{LIMITS}}
`

// StartCortex starts Cortex in a temporary directory on free ports and
// waits for /ready. CORTEX_BINARY names a prebuilt binary; otherwise it is
// built once from test/cortex (about two minutes with a warm module cache).
func StartCortex(t testing.TB) *Cortex {
	t.Helper()
	bin := CortexBinary(t)
	dir := t.TempDir()
	c := &Cortex{Addr: FreeAddr(t), RuntimeConfig: filepath.Join(dir, "runtime.yaml"), BlocksDir: filepath.Join(dir, "blocks")}
	_, httpPort, _ := strings.Cut(c.Addr, ":")
	_, grpcPort, _ := strings.Cut(FreeAddr(t), ":")
	_, gossipPort, _ := strings.Cut(FreeAddr(t), ":")
	cfg := strings.NewReplacer("{{HTTP_PORT}}", httpPort, "{{GRPC_PORT}}", grpcPort, "{{GOSSIP_PORT}}", gossipPort, "{{DIR}}", dir, "{{LIMITS}}", CortexLimits).Replace(cortexConfig)
	if err := os.WriteFile(filepath.Join(dir, "cortex.yaml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(c.RuntimeConfig, []byte("overrides: {}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"-target=all", "-config.file=" + filepath.Join(dir, "cortex.yaml")}
	c.proc = Start(t, "cortex "+Args(args), bin, args...)
	Eventually(t, 90*time.Second, func() error {
		if c.proc.Exited() {
			t.Fatalf("cortex exited at start:\n%s", c.proc.Output())
		}
		resp, err := http.Get(c.URL() + "/ready")
		if err != nil {
			return err
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("ready: %s", resp.Status)
		}
		return nil
	})
	return c
}

// Kill ends Cortex with SIGKILL.
func (c *Cortex) Kill() { c.proc.Kill() }

// CortexBinary returns the Cortex built from test/cortex.
func CortexBinary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("CORTEX_BINARY"); p != "" {
		return p
	}
	if p := filepath.Join(repoRoot(), "bin", "cortex"); fileExists(p) {
		return p
	}
	cortexOnce.Do(func() {
		out := filepath.Join(os.TempDir(), "orrery-test-cortex")
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "go", "build", "-tags", "netgo slicelabels", "-o", out, "github.com/cortexproject/cortex/cmd/cortex")
		cmd.Dir = filepath.Join(repoRoot(), "test", "cortex")
		if b, err := cmd.CombinedOutput(); err != nil {
			cortexErr = fmt.Errorf("build cortex in test/cortex: %v\n%s", err, b)
			return
		}
		cortexPath = out
	})
	if cortexErr != nil {
		t.Fatal(cortexErr)
	}
	return cortexPath
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

var (
	cortexOnce sync.Once
	cortexPath string
	cortexErr  error
)
