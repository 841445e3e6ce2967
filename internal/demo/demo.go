package demo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/amp"
	"github.com/aws/aws-sdk-go-v2/service/amp/types"

	"github.com/orrery-dev/orrery/internal/admin"
	"github.com/orrery-dev/orrery/internal/agent"
	"github.com/orrery-dev/orrery/internal/app"
	"github.com/orrery-dev/orrery/internal/mesh"
)

// Environment is what the demo set up, handed to the dashboards hook.
type Environment struct {
	// ServerURL is the Orrery server, e.g. http://127.0.0.1:9090.
	ServerURL string
	// Workspace is the demo's workspace id.
	Workspace string
	// Admin is a client with the admin key; AdminKeyFile holds that key.
	Admin        *admin.Client
	AdminKeyFile string
	// QueryToken is a bearer token with query access to the workspace.
	QueryToken string
	// Sidecars are the mesh's sidecars.
	Sidecars []mesh.SidecarInfo
}

// Dashboards is the hook through which the dashboards part installs the
// Envoy Global dashboard for the demo's workspace. Install returns lines
// to print (the UI's address and how to log in).
// UIDashboards is the web UI's.
type Dashboards interface {
	Install(ctx context.Context, env Environment) (lines []string, err error)
}

// Config configures the demo.
type Config struct {
	// DataDir holds the server's data, the agent's WAL and configuration
	// and the admin key.
	DataDir string
	// Listen is the server's address.
	Listen string
	// Duration, if not 0, stops the demo after that long.
	Duration time.Duration
	// RequestsPerSecond is the traffic sent to the frontend.
	RequestsPerSecond int
	// Faults are injected at start (more through the mesh's control
	// endpoint).
	Faults []mesh.Fault
	// ScrapeInterval is the agent's scrape interval (default 5s).
	ScrapeInterval time.Duration
	// RuleFor and RuleInterval are the latency alert's `for` (default 1m)
	// and its group's evaluation interval (default 15s).
	RuleFor, RuleInterval time.Duration
	// StatusInterval is how often a status line is printed (default 5s).
	StatusInterval time.Duration
	// Dashboards, if set, installs dashboards (see Dashboards).
	Dashboards Dashboards
	// MeshBasePort, if not 0, is the first of the consecutive ports the
	// mesh's services, sidecars and control endpoint take (0: free ports).
	MeshBasePort int
	// WebhookListen and AgentListen are the addresses of the console
	// webhook and of the agent's HTTP endpoints (default: free loopback
	// ports).
	WebhookListen, AgentListen string
	// AlertThresholdMS is the latency alert's p99 threshold in
	// milliseconds (default DefaultAlertThresholdMS).
	AlertThresholdMS float64
}

// DefaultAlertThresholdMS is the latency alert's default threshold. The
// seed's alert says 5 ms; the demo's mesh runs in the same process as the
// server and the agent, and on a busy 2-core machine its p99 without any
// fault reaches 10 to 20 ms (local_frontend's whole fan-out waits for the
// CPU), so 5 ms fired with no fault. 50 ms sits clearly above that
// baseline and clearly below what an injected 100 ms makes of it.
const DefaultAlertThresholdMS = 50

// Validate fills defaults and checks the configuration.
func (c *Config) Validate() error {
	if c.DataDir == "" {
		return errors.New("--data-dir is empty; name a directory for the demo's data")
	}
	if c.Listen == "" {
		c.Listen = "127.0.0.1:9090"
	}
	if c.WebhookListen == "" {
		c.WebhookListen = "127.0.0.1:0"
	}
	if c.AgentListen == "" {
		c.AgentListen = "127.0.0.1:0"
	}
	if c.AlertThresholdMS == 0 {
		c.AlertThresholdMS = DefaultAlertThresholdMS
	}
	if c.AlertThresholdMS < 0 || c.MeshBasePort < 0 || c.MeshBasePort > 65535 {
		return fmt.Errorf("alert threshold %v ms and mesh base port %d may not be negative", c.AlertThresholdMS, c.MeshBasePort)
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.ScrapeInterval, 5*time.Second)
	def(&c.RuleFor, time.Minute)
	def(&c.RuleInterval, 15*time.Second)
	def(&c.StatusInterval, 5*time.Second)
	if c.RequestsPerSecond < 0 || c.Duration < 0 {
		return fmt.Errorf("requests per second %d and duration %s may not be negative", c.RequestsPerSecond, c.Duration)
	}
	return nil
}

// AlertName is the seed's latency alert.
const AlertName = "EnvoyLatencyHigh"

// rules is the seed's alert: p99 upstream latency above the threshold
// (interval, threshold, for).
const rules = `groups:
  - name: mesh-latency
    interval: %s
    rules:
      - alert: ` + AlertName + `
        expr: histogram_quantile(0.99, sum by (le, envoy_cluster_name) (rate(envoy_cluster_upstream_rq_time_bucket[1m]))) > %s
        for: %s
        labels: {severity: page}
        annotations:
          summary: 'p99 latency of {{ $labels.envoy_cluster_name }} is {{ $value | printf "%%.1f" }} ms'
      - alert: ` + AnomalyAlertName + `
        expr: anomaly_detector:score >= 0.5
        labels: {severity: page}
        annotations:
          summary: 'p99 latency of {{ $labels.envoy_cluster_name }} is unusual for this time (anomaly detector ` + detectorAlias + `)'
`

// AnomalyAlertName is the alert on the anomaly detector's score: it fires
// on latency unusual for the service, whatever its level.
const AnomalyAlertName = "EnvoyLatencyAnomaly"

// detectorAlias names the demo's anomaly detector, on the p99 upstream
// latency of each Envoy cluster (AMP requires an aggregation around it).
const (
	detectorAlias = "envoy-p99"
	detectorQuery = `max by (envoy_cluster_name) (` + p99Query + `)`
)

// definition sends every alert to the on-call receiver: the console
// webhook (%[1]s), email through the SMTP sink (%[2]s) and the seed's SNS
// topic (endpoint %[3]s, signed with key %[4]s / %[5]s), whose email
// subscription mails the same address.
const definition = `alertmanager_config: |
  global:
    smtp_smarthost: %[2]s
    smtp_from: alertmanager@mesh-demo.local
    smtp_require_tls: false
  route:
    receiver: oncall
    group_by: [alertname, envoy_cluster_name]
    group_wait: 2s
    group_interval: 10s
    repeat_interval: 4h
  receivers:
    - name: oncall
      webhook_configs: [{url: %[1]q, send_resolved: true}]
      email_configs: [{to: ` + oncallAddress + `, send_resolved: true}]
      sns_configs:
        - api_url: %[3]s
          topic_arn: ` + snsTopic + `
          subject: '{{ .CommonLabels.alertname }} {{ .Status }}'
          send_resolved: true
          sigv4: {region: us-east-1, access_key: %[4]s, secret_key: %[5]s}
`

// Run runs the demo until ctx ends or Duration passes, printing to out;
// components log to logger.
func Run(ctx context.Context, cfg Config, out io.Writer, logger *slog.Logger) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cfg.Duration)
		defer cancel()
	}
	demoDir := filepath.Join(cfg.DataDir, "demo")
	if err := os.MkdirAll(demoDir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", demoDir, err)
	}
	con := &console{w: out}

	// The server, with SigV4 and a generated admin key.
	// The server's defaults, but for where it listens and keeps data, a
	// quicker shutdown and quicker rules.
	srvCfg := app.DefaultServerConfig()
	srvCfg.Listen, srvCfg.DataDir, srvCfg.Auth, srvCfg.ShutdownTimeout = cfg.Listen, cfg.DataDir, "sigv4", 10*time.Second
	srvCfg.Ruler.EvaluationInterval, srvCfg.Ruler.ResendDelay = cfg.RuleInterval, 30*time.Second
	srv, err := app.NewServer(srvCfg, logger.With("component", "server"))
	if err != nil {
		return fmt.Errorf("start server: %w", err)
	}
	if err := srv.Start(); err != nil {
		return fmt.Errorf("start server: %w", err)
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	srvCtx, stopServer := context.WithCancel(context.Background())
	defer stopServer()
	srvErr := make(chan error, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		srvErr <- srv.Run(srvCtx)
	}()
	serverURL := "http://" + srv.Addr()

	keyFile := filepath.Join(cfg.DataDir, "admin-key")
	keyID, secret, err := readAdminKey(keyFile)
	if err != nil {
		return err
	}
	adm := &admin.Client{URL: serverURL, Region: "us-east-1", KeyID: keyID, Secret: secret}

	// The workspace, a least-privilege key for the agent and a query token.
	ws, err := demoWorkspace(ctx, adm.AMP())
	if err != nil {
		return err
	}
	rwPolicy, err := admin.AccessPolicy(ws, "remote-write")
	if err != nil {
		return err
	}
	agentKey, agentSecret, err := adm.CreateAccessKey(ctx, rwPolicy)
	if err != nil {
		return err
	}
	token, err := adm.CreateToken(ctx, queryPolicy(ws), "orrery demo: query and alerts of "+ws)
	if err != nil {
		return err
	}

	// The console webhook.
	hookLn, err := net.Listen("tcp", cfg.WebhookListen)
	if err != nil {
		return fmt.Errorf("listen webhook on %s: %w", cfg.WebhookListen, err)
	}
	hook := &http.Server{Handler: http.HandlerFunc(con.webhook), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = hook.Serve(hookLn) }()
	defer func() { _ = hook.Close() }()
	hookURL := "http://" + hookLn.Addr().String() + "/alerts"

	// The seed's delivery: an SMTP sink and an SNS endpoint on loopback.
	mail, err := startSMTPSink(con)
	if err != nil {
		return err
	}
	defer func() { _ = mail.Close() }()
	snsKey, snsSecret := newSNSKey()
	snsLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("listen sns endpoint: %w", err)
	}
	snsSrv := &http.Server{Handler: newSNSEndpoint(snsKey, snsSecret, mail.Addr(), con), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = snsSrv.Serve(snsLn) }()
	defer func() { _ = snsSrv.Close() }()
	snsURL := "http://" + snsLn.Addr().String()

	// The alert and its receiver.
	if err := installAlert(ctx, adm.AMP(), ws, fmt.Appendf(nil, rules, promDuration(cfg.RuleInterval), strconv.FormatFloat(cfg.AlertThresholdMS, 'f', -1, 64), promDuration(cfg.RuleFor)),
		fmt.Appendf(nil, definition, hookURL, mail.Addr(), snsURL, snsKey, snsSecret)); err != nil {
		return err
	}

	// The anomaly detector whose score the second alert watches.
	if err := installDetector(ctx, adm.AMP(), ws); err != nil {
		return err
	}

	// The mesh and its traffic.
	m, err := mesh.New(mesh.Config{RequestsPerSecond: cfg.RequestsPerSecond, Faults: cfg.Faults, BasePort: cfg.MeshBasePort}, logger.With("component", "mesh"))
	if err != nil {
		return err
	}
	meshCtx, stopMesh := context.WithCancel(context.Background())
	defer stopMesh()
	if err := m.Start(meshCtx); err != nil {
		return fmt.Errorf("start mesh: %w", err)
	}
	defer m.Close()

	// The agent, scraping every sidecar.
	agentFile := filepath.Join(demoDir, "agent.yml")
	remoteWrite := serverURL + "/workspaces/" + ws + "/api/v1/remote_write"
	if err := os.WriteFile(agentFile, agentConfig(cfg.ScrapeInterval, m.Sidecars(), remoteWrite, agentKey, agentSecret), 0o600); err != nil {
		return fmt.Errorf("write agent configuration: %w", err)
	}
	ag, err := agent.New(agent.Config{ConfigFile: agentFile, DataDir: filepath.Join(demoDir, "agent-wal"), Listen: cfg.AgentListen,
		FlushDeadline: 5 * time.Second}, logger.With("component", "agent"))
	if err != nil {
		return err
	}
	agentCtx, stopAgent := context.WithCancel(context.Background())
	defer stopAgent()
	agentErr := make(chan error, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		agentErr <- ag.Run(agentCtx)
	}()

	env := Environment{ServerURL: serverURL, Workspace: ws, Admin: adm, AdminKeyFile: keyFile, QueryToken: token, Sidecars: m.Sidecars()}
	// The dashboards part installs the Envoy dashboard and says how to log
	// in to the UI; its lines end the banner, printed in one piece so that
	// a reader of the console never sees half of it.
	var extra []string
	if cfg.Dashboards != nil {
		lines, err := cfg.Dashboards.Install(ctx, env)
		if err != nil {
			lines = append(lines, fmt.Sprintf("dashboards: not installed: %v", err))
		}
		extra = lines
	}
	// The agent listens once its Run started; the banner waits for it a
	// little and leaves the line out if it is not up by then.
	for i := 0; i < 100 && ag.Addr() == ""; i++ {
		time.Sleep(20 * time.Millisecond)
	}
	con.banner(env, agentFile, ag.Addr(), m, hookURL, cfg, append([]string{
		fmt.Sprintf("Delivery (receiver oncall, see the UI's contact points): the webhook above, email to %s through the SMTP sink at %s,", oncallAddress, mail.Addr()),
		fmt.Sprintf("and SNS topic %s at %s, whose email subscription mails the same address.", snsTopic, snsURL), ""}, extra...))

	status := &statusLine{server: serverURL, ws: ws, token: token, traffic: m.Traffic(), last: time.Now()}
	tick := time.NewTicker(cfg.StatusInterval)
	defer tick.Stop()
	var runErr error
	agentStopped := false // The agent's error has been received.
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case err := <-srvErr:
			runErr = fmt.Errorf("server stopped: %w", err)
			break loop
		case err := <-agentErr:
			runErr, agentStopped = fmt.Errorf("agent stopped: %w", err), true
			break loop
		case <-tick.C:
			con.printf("%s\n", status.line(ctx))
		}
	}
	con.printf("stopping the demo\n")
	stopMesh()
	m.Close()
	// The agent sends what it scraped before the server stops.
	stopAgent()
	if !agentStopped {
		if err := <-agentErr; err != nil {
			runErr = errors.Join(runErr, fmt.Errorf("stop agent: %w", err))
		}
	}
	stopServer()
	return runErr
}

// workspaceAlias names the demo's workspace.
const workspaceAlias = "mesh-demo"

// demoWorkspace reuses the workspace of an earlier run on the same data
// directory, or creates it.
func demoWorkspace(ctx context.Context, c *amp.Client) (string, error) {
	list, err := c.ListWorkspaces(ctx, &amp.ListWorkspacesInput{Alias: aws.String(workspaceAlias)})
	if err != nil {
		return "", fmt.Errorf("list workspaces: %w", err)
	}
	for _, w := range list.Workspaces {
		if w.Status != nil && w.Status.StatusCode == types.WorkspaceStatusCodeActive && aws.ToString(w.Alias) == workspaceAlias {
			return aws.ToString(w.WorkspaceId), nil
		}
	}
	created, err := c.CreateWorkspace(ctx, &amp.CreateWorkspaceInput{Alias: aws.String(workspaceAlias)})
	if err != nil {
		return "", fmt.Errorf("create workspace: %w", err)
	}
	return aws.ToString(created.WorkspaceId), nil
}

// installAlert creates, or replaces, the latency rule and the alert
// manager definition.
func installAlert(ctx context.Context, c *amp.Client, ws string, rules, definition []byte) error {
	var conflict *types.ConflictException
	_, err := c.CreateAlertManagerDefinition(ctx, &amp.CreateAlertManagerDefinitionInput{WorkspaceId: aws.String(ws), Data: definition})
	if errors.As(err, &conflict) {
		_, err = c.PutAlertManagerDefinition(ctx, &amp.PutAlertManagerDefinitionInput{WorkspaceId: aws.String(ws), Data: definition})
	}
	if err != nil {
		return fmt.Errorf("install alert manager definition: %w", err)
	}
	_, err = c.CreateRuleGroupsNamespace(ctx, &amp.CreateRuleGroupsNamespaceInput{WorkspaceId: aws.String(ws), Name: aws.String("mesh"), Data: rules})
	if errors.As(err, &conflict) {
		_, err = c.PutRuleGroupsNamespace(ctx, &amp.PutRuleGroupsNamespaceInput{WorkspaceId: aws.String(ws), Name: aws.String("mesh"), Data: rules})
	}
	if err != nil {
		return fmt.Errorf("install rule groups namespace: %w", err)
	}
	return nil
}

// installDetector creates the anomaly detector, or keeps the one of an
// earlier run on the same data directory: its model, saved by the server,
// has learnt the mesh's traffic already.
func installDetector(ctx context.Context, c *amp.Client, ws string) error {
	list, err := c.ListAnomalyDetectors(ctx, &amp.ListAnomalyDetectorsInput{WorkspaceId: aws.String(ws), Alias: aws.String(detectorAlias)})
	if err != nil {
		return fmt.Errorf("list anomaly detectors: %w", err)
	}
	for _, d := range list.AnomalyDetectors {
		if aws.ToString(d.Alias) == detectorAlias {
			return nil
		}
	}
	_, err = c.CreateAnomalyDetector(ctx, &amp.CreateAnomalyDetectorInput{WorkspaceId: aws.String(ws), Alias: aws.String(detectorAlias),
		EvaluationIntervalInSeconds: aws.Int32(30),
		Configuration: &types.AnomalyDetectorConfigurationMemberRandomCutForest{Value: types.RandomCutForestConfiguration{
			Query: aws.String(detectorQuery), ShingleSize: aws.Int32(4), SampleSize: aws.Int32(64)}}})
	if err != nil {
		return fmt.Errorf("create anomaly detector: %w", err)
	}
	return nil
}

// promDuration formats a duration as Prometheus' YAML does.
func promDuration(d time.Duration) string {
	if d%time.Second == 0 {
		return strconv.Itoa(int(d/time.Second)) + "s"
	}
	return strconv.Itoa(int(d/time.Millisecond)) + "ms"
}

// queryPolicy lets the token query the workspace and read its rules and
// alerts, as a dashboard user would.
func queryPolicy(ws string) json.RawMessage {
	b, _ := json.Marshal(map[string]any{"Version": "2012-10-17", "Statement": []any{map[string]any{
		"Effect": "Allow", "Resource": "arn:aws:aps:*:*:workspace/" + ws,
		"Action": []string{"aps:QueryMetrics", "aps:GetLabels", "aps:GetSeries", "aps:GetMetricMetadata", "aps:ListRules",
			"aps:ListAlerts", "aps:ListAlertManagerAlerts", "aps:ListAlertManagerAlertGroups"}}}})
	return b
}

// readAdminKey reads the admin key the server wrote at its first start.
// A key given through the environment at that start has no secret in the
// file: the environment gives it again.
func readAdminKey(file string) (id, secret string, err error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return "", "", fmt.Errorf("read admin key: %w", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, _ := strings.Cut(strings.TrimSpace(line), "=")
		switch k {
		case "ORRERY_ADMIN_ACCESS_KEY_ID":
			id = v
		case "ORRERY_ADMIN_SECRET_ACCESS_KEY":
			secret = v
		}
	}
	if secret == "" && os.Getenv("ORRERY_ADMIN_ACCESS_KEY_ID") == id {
		secret = os.Getenv("ORRERY_ADMIN_SECRET_ACCESS_KEY")
	}
	if id == "" || secret == "" {
		return "", "", fmt.Errorf("admin key %s has no secret: set ORRERY_ADMIN_SECRET_ACCESS_KEY or use a new --data-dir", file)
	}
	return id, secret, nil
}

// agentConfig is the agent's Prometheus configuration: every sidecar's
// /stats/prometheus, with the namespace, service and pod labels the Envoy
// dashboards group by (in a cluster they come from Kubernetes discovery).
func agentConfig(interval time.Duration, sidecars []mesh.SidecarInfo, remoteWrite, key, secret string) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, `# Written by orrery demo: the agent scrapes every sidecar of the mesh and
# remote-writes to the demo's workspace with a key that may only write to it.
global:
  scrape_interval: %[1]s
  scrape_timeout: %[1]s
scrape_configs:
  - job_name: envoy
    metrics_path: /stats/prometheus
    static_configs:
`, promDuration(interval))
	// The sidecars listen on other ports each run: their instance label is
	// the pod's name, not the address, so a rerun on the same data
	// directory continues the same series instead of adding new ones that
	// sums would count with the old ones until those go stale.
	for _, s := range sidecars {
		fmt.Fprintf(&b, "      - targets: [%q]\n        labels: {namespace: mesh-demo, service: %s, pod: %s-0, instance: %s-0}\n", s.AdminAddr, s.Service, s.Service, s.Service)
	}
	fmt.Fprintf(&b, `remote_write:
  - url: %s
    sigv4: {region: us-east-1, access_key: %s, secret_key: %s}
    queue_config: {batch_send_deadline: %s}
`, remoteWrite, key, secret, promDuration(min(interval, 5*time.Second)))
	return []byte(b.String())
}

// console prints the demo's lines; the webhook and the status loop share
// it.
type console struct {
	mu sync.Mutex
	w  io.Writer
}

func (c *console) printf(format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, _ = fmt.Fprintf(c.w, format, args...)
}

func (c *console) banner(env Environment, agentFile, agentAddr string, m *mesh.Mesh, hookURL string, cfg Config, extra []string) {
	var b strings.Builder
	fmt.Fprintf(&b, "\nOrrery mesh demo\n")
	fmt.Fprintf(&b, "  server:        %s\n", env.ServerURL)
	fmt.Fprintf(&b, "  workspace:     %s\n", env.Workspace)
	fmt.Fprintf(&b, "  query token:   %s\n", env.QueryToken)
	fmt.Fprintf(&b, "  admin key:     %s\n", env.AdminKeyFile)
	fmt.Fprintf(&b, "  agent config:  %s\n", agentFile)
	if agentAddr != "" {
		fmt.Fprintf(&b, "  agent:         http://%s/api/v1/targets\n", agentAddr)
	}
	fmt.Fprintf(&b, "  mesh control:  %s\n", m.ControlURL())
	fmt.Fprintf(&b, "  webhook:       %s\n", hookURL)
	fmt.Fprintf(&b, "  traffic:       %d requests/s to %s\n", cfg.RequestsPerSecond, m.EntryURL())
	for _, s := range env.Sidecars {
		fmt.Fprintf(&b, "  sidecar:       %-10s %s\n", s.Service, s.StatsURL)
	}
	fmt.Fprintf(&b, "  alert:         %s, p99 upstream latency > %s ms for %s\n", AlertName, strconv.FormatFloat(cfg.AlertThresholdMS, 'f', -1, 64), cfg.RuleFor)
	fmt.Fprintf(&b, "  alert:         %s, anomaly_detector:score >= 0.5 of detector %s (every 30 s; it learns for about 10 minutes)\n", AnomalyAlertName, detectorAlias)
	fmt.Fprintf(&b, "\nQuery the workspace:\n  curl -H 'Authorization: Bearer %s' '%s/workspaces/%s/api/v1/query?query=%s'\n",
		env.QueryToken, env.ServerURL, env.Workspace, url.QueryEscape(p99Query))
	fault := max(100, int(2*cfg.AlertThresholdMS))
	fmt.Fprintf(&b, "Inject %d ms of latency into payments, then remove it:\n  curl -X POST %s/faults -d '{\"service\":\"payments\",\"latency_ms\":%d}'\n  curl -X DELETE %s/faults\n\n",
		fault, m.ControlURL(), fault, m.ControlURL())
	for _, l := range extra {
		fmt.Fprintf(&b, "%s\n", l)
	}
	c.printf("%s", b.String())
}

// webhook prints Alertmanager's notifications.
func (c *console) webhook(w http.ResponseWriter, r *http.Request) {
	var msg struct {
		Status string `json:"status"`
		Alerts []struct {
			Status      string            `json:"status"`
			Labels      map[string]string `json:"labels"`
			Annotations map[string]string `json:"annotations"`
		} `json:"alerts"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&msg); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	for _, a := range msg.Alerts {
		var labels []string
		for k, v := range a.Labels {
			if k != "alertname" {
				labels = append(labels, k+"="+v)
			}
		}
		sort.Strings(labels)
		c.printf("alert: %s %s {%s} %s\n", strings.ToUpper(a.Status), a.Labels["alertname"], strings.Join(labels, ", "), a.Annotations["summary"])
	}
}

// p99Query is the seed alert's expression without its threshold.
const p99Query = `histogram_quantile(0.99, sum by (le, envoy_cluster_name) (rate(envoy_cluster_upstream_rq_time_bucket[1m])))`

// statusLine computes the status line from the traffic generator and the
// workspace.
type statusLine struct {
	server, ws, token string
	traffic           *mesh.Traffic
	last              time.Time
	sent              int64
	client            http.Client
}

func (s *statusLine) line(ctx context.Context) string {
	now := time.Now()
	st := s.traffic.Stats()
	rate := float64(st.Sent-s.sent) / now.Sub(s.last).Seconds()
	s.sent, s.last = st.Sent, now
	okPct := 100.0
	if st.OK+st.Failed > 0 {
		okPct = 100 * float64(st.OK) / float64(st.OK+st.Failed)
	}
	series := "?"
	if v, err := s.query(ctx, `count({__name__=~".+"})`); err == nil {
		series = "0"
		if len(v) > 0 {
			series = strconv.Itoa(int(v[0].value))
		}
	}
	firing := 0
	if v, err := s.query(ctx, `ALERTS{alertstate="firing"}`); err == nil {
		firing = len(v)
	}
	worst := "p99 -"
	if v, err := s.query(ctx, "topk(1, "+p99Query+")"); err == nil && len(v) > 0 && !math.IsNaN(v[0].value) {
		worst = fmt.Sprintf("worst p99 %.1f ms (%s)", v[0].value, v[0].cluster)
	}
	return fmt.Sprintf("status: %.1f req/s, %.1f%% ok, %s series, %s, %d alerts firing", rate, okPct, series, worst, firing)
}

type sample struct {
	cluster string
	value   float64
}

// query runs an instant query on the workspace with the query token.
func (s *statusLine) query(ctx context.Context, q string) ([]sample, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.server+"/workspaces/"+s.ws+"/api/v1/query?query="+url.QueryEscape(q), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+s.token)
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	var out struct {
		Data struct {
			Result []struct {
				Metric map[string]string `json:"metric"`
				Value  [2]any            `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("query: HTTP %d", resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, err
	}
	var res []sample
	for _, r := range out.Data.Result {
		str, _ := r.Value[1].(string)
		v, err := strconv.ParseFloat(str, 64)
		if err != nil {
			continue
		}
		res = append(res, sample{cluster: r.Metric["envoy_cluster_name"], value: v})
	}
	return res, nil
}
