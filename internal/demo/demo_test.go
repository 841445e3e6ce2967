package demo

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/discovery"
	"github.com/stretchr/testify/require"

	"github.com/orrery-dev/orrery/internal/mesh"
)

func TestAgentConfigLoadsInAgentMode(t *testing.T) {
	sidecars := []mesh.SidecarInfo{{Service: "frontend", AdminAddr: "127.0.0.1:1001"}, {Service: "payments", AdminAddr: "127.0.0.1:1002"}}
	file := filepath.Join(t.TempDir(), "agent.yml")
	require.NoError(t, os.WriteFile(file, agentConfig(1500*time.Millisecond, sidecars, "http://127.0.0.1:9090/workspaces/ws-x/api/v1/remote_write", "AKID", "SECRET"), 0o600))
	cfg, err := config.LoadFile(file, true, nil)
	require.NoError(t, err)
	require.Equal(t, model.Duration(1500*time.Millisecond), cfg.GlobalConfig.ScrapeInterval)
	require.Len(t, cfg.ScrapeConfigs, 1)
	sc := cfg.ScrapeConfigs[0]
	require.Equal(t, "/stats/prometheus", sc.MetricsPath)
	static, ok := sc.ServiceDiscoveryConfigs[0].(discovery.StaticConfig)
	require.True(t, ok)
	require.Len(t, static, 2)
	require.Equal(t, model.LabelValue("127.0.0.1:1002"), static[1].Targets[0][model.AddressLabel])
	require.Equal(t, model.LabelSet{"namespace": "mesh-demo", "service": "payments", "pod": "payments-0", "instance": "payments-0"}, static[1].Labels)
	require.Len(t, cfg.RemoteWriteConfigs, 1)
	rw := cfg.RemoteWriteConfigs[0]
	require.NotNil(t, rw.SigV4Config)
	require.Equal(t, "AKID", rw.SigV4Config.AccessKey)
	require.Equal(t, "us-east-1", rw.SigV4Config.Region)
	require.Equal(t, model.Duration(1500*time.Millisecond), rw.QueueConfig.BatchSendDeadline)
}

func TestReadAdminKey(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "admin-key")
	require.NoError(t, os.WriteFile(file, []byte("ORRERY_ADMIN_ACCESS_KEY_ID=AKIA1\nORRERY_ADMIN_SECRET_ACCESS_KEY=s3cret\n"), 0o600))
	id, secret, err := readAdminKey(file)
	require.NoError(t, err)
	require.Equal(t, "AKIA1", id)
	require.Equal(t, "s3cret", secret)

	// A key given through the environment at the first start: the file
	// has no secret, the environment must give it again.
	require.NoError(t, os.WriteFile(file, []byte("ORRERY_ADMIN_ACCESS_KEY_ID=AKIA2\n"), 0o600))
	t.Setenv("ORRERY_ADMIN_ACCESS_KEY_ID", "")
	_, _, err = readAdminKey(file)
	require.ErrorContains(t, err, "has no secret")
	t.Setenv("ORRERY_ADMIN_ACCESS_KEY_ID", "AKIA2")
	t.Setenv("ORRERY_ADMIN_SECRET_ACCESS_KEY", "from-env")
	id, secret, err = readAdminKey(file)
	require.NoError(t, err)
	require.Equal(t, "AKIA2", id)
	require.Equal(t, "from-env", secret)
}

func TestConfigValidate(t *testing.T) {
	require.Error(t, (&Config{}).Validate())
	cfg := Config{DataDir: t.TempDir()}
	require.NoError(t, cfg.Validate())
	require.Equal(t, time.Minute, cfg.RuleFor)
	require.Equal(t, 15*time.Second, cfg.RuleInterval)
	require.Equal(t, 5*time.Second, cfg.ScrapeInterval)
	require.Equal(t, "1m0s", cfg.RuleFor.String())
	require.Equal(t, "1500ms", promDuration(1500*time.Millisecond))
	require.Equal(t, "60s", promDuration(time.Minute))
}

// syncBuffer is a bytes.Buffer safe for the demo's concurrent printing.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// installed records the dashboards hook's call.
type installed struct{ env chan Environment }

func (i installed) Install(_ context.Context, env Environment) ([]string, error) {
	i.env <- env
	return []string{"ui: http://example.test (login: demo)"}, nil
}

// TestRunInProcess runs the demo in this process (server, agent, mesh)
// for a few seconds: the banner, the dashboards hook and status lines
// with the workspace's series come out, and it stops when its time is up.
func TestRunInProcess(t *testing.T) {
	var out syncBuffer
	hook := installed{env: make(chan Environment, 1)}
	dir := t.TempDir()
	err := Run(t.Context(), Config{DataDir: dir, Listen: "127.0.0.1:0", Duration: 12 * time.Second, RequestsPerSecond: 20,
		ScrapeInterval: time.Second, StatusInterval: time.Second, Dashboards: hook}, &out, nil)
	require.NoError(t, err, out.String())
	env := <-hook.env
	require.True(t, strings.HasPrefix(env.Workspace, "ws-"))
	require.Equal(t, filepath.Join(dir, "admin-key"), env.AdminKeyFile)
	require.Len(t, env.Sidecars, 5)
	s := out.String()
	require.Contains(t, s, "workspace:     "+env.Workspace)
	require.Contains(t, s, "ui: http://example.test (login: demo)")
	require.Contains(t, s, AnomalyAlertName+", anomaly_detector:score >= 0.5 of detector "+detectorAlias, "the anomaly detector and its alert are installed")
	require.Regexp(t, `status: [0-9.]+ req/s, 100\.0% ok, [1-9]\d* series`, s)
	require.Contains(t, s, "stopping the demo")
	b, err := os.ReadFile(filepath.Join(dir, "demo", "agent.yml"))
	require.NoError(t, err)
	require.Contains(t, string(b), env.Sidecars[0].AdminAddr)
}

// TestRerunKeepsInstances runs the demo twice on the same data directory:
// the sidecars listen on other ports the second time, yet their series
// keep their instance labels, so sums over the last minutes count every
// sidecar once.
func TestRerunKeepsInstances(t *testing.T) {
	dir := t.TempDir()
	var out syncBuffer
	// run runs the demo until its sidecars' scrapes newer than since have
	// reached the workspace, and returns the instances seen over the
	// last 10 minutes.
	run := func(since time.Time) int {
		hook := installed{env: make(chan Environment, 1)}
		ctx, stop := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() {
			done <- Run(ctx, Config{DataDir: dir, Listen: "127.0.0.1:0", Duration: time.Minute, RequestsPerSecond: 5,
				ScrapeInterval: time.Second, StatusInterval: time.Second, Dashboards: hook}, &out, nil)
		}()
		defer func() {
			stop()
			require.NoError(t, <-done, out.String())
		}()
		env := <-hook.env
		q := &statusLine{server: env.ServerURL, ws: env.Workspace, token: env.QueryToken}
		count := func(query string) int {
			v, err := q.query(t.Context(), query)
			require.NoError(t, err)
			if len(v) == 0 {
				return 0
			}
			return int(v[0].value)
		}
		require.Eventually(t, func() bool {
			return count(fmt.Sprintf(`count(timestamp(up{job="envoy"}) > %d)`, since.Unix())) == len(env.Sidecars)
		}, 30*time.Second, 200*time.Millisecond, "the sidecars' scrapes did not arrive: %d", count(fmt.Sprintf(`count(timestamp(up{job="envoy"}) > %d)`, since.Unix())))
		return count(`count(count by (instance) (last_over_time(up{job="envoy"}[10m])))`)
	}
	require.Equal(t, 5, run(time.Now()))
	require.Equal(t, 5, run(time.Now()), "instances seen over both runs")
}
