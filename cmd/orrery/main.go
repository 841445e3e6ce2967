// Command orrery is a self-hosted, Prometheus-compatible metrics service:
// multi-tenant workspaces with remote write ingestion and the Prometheus
// query API. Run `orrery help` for its subcommands.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/common/version"

	"github.com/orrery-dev/orrery/internal/admin"
	"github.com/orrery-dev/orrery/internal/alerting"
	"github.com/orrery-dev/orrery/internal/app"
	"github.com/orrery-dev/orrery/internal/ingest"
	"github.com/orrery-dev/orrery/internal/workspace"
)

const usage = `orrery — a self-hosted, Prometheus-compatible metrics service.

Usage:
  orrery server [flags]   run the server (remote write + Prometheus query API per workspace)
  orrery agent [flags]    scrape targets and remote-write them through a WAL (Prometheus config format)
  orrery loadgen [flags]  send Envoy-like remote write load to a receiver (benchmarks)
  orrery demo [flags]     the whole walkthrough in one command: server, workspace, mesh, agent, latency alert
  orrery mesh [flags]     a local service mesh whose sidecars expose Envoy's /stats/prometheus, with fault injection
  orrery migrate-to-cortex [flags]  write a workspace of the embedded engine as Cortex blocks (the server stopped)
  orrery workspaces ...   create, list, describe, delete workspaces
  orrery keys ...         issue, list, revoke access keys (SigV4) with a policy
  orrery tokens ...       issue, list, revoke bearer tokens with a policy
  orrery version          print the version
  orrery help             show this help

Run 'orrery server --help' for the server's flags.

` + admin.Usage

func main() {
	// The embedded Prometheus and Alertmanager packages report this build's
	// version (the Alertmanager status API, which amtool checks).
	version.Version, version.Revision, version.Branch = app.Version, "orrery", "main"
	privateFiles()
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "server":
		return runServer(args[1:], stderr)
	case "loadgen":
		return runLoadgen(args[1:], stdout, stderr)
	case "agent":
		return runAgent(args[1:], stderr)
	case "demo":
		return runDemo(args[1:], stdout, stderr)
	case "mesh":
		return runMesh(args[1:], stdout, stderr)
	case "migrate-to-cortex":
		return runMigrate(args[1:], stdout, stderr)
	case "workspaces", "keys", "tokens", "users":
		return admin.Run(context.Background(), args, os.Getenv, stdout, stderr)
	case "version", "--version":
		fmt.Fprintf(stdout, "orrery %s (Prometheus engine %s)\n", app.Version, app.EngineVersion)
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "orrery: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
}

// durationFlag adapts model.Duration (which knows "150d") to flag.Value.
type durationFlag struct{ d *model.Duration }

func (f durationFlag) String() string {
	if f.d == nil {
		return ""
	}
	return f.d.String()
}
func (f durationFlag) Set(s string) error {
	d, err := model.ParseDuration(s)
	if err != nil {
		return err
	}
	*f.d = d
	return nil
}

func runServer(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("orrery server", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg := app.ServerConfig{Limits: workspace.DefaultLimits()}
	l := &cfg.Limits
	fs.StringVar(&cfg.Listen, "listen", "127.0.0.1:9090", "address to serve HTTP on")
	fs.StringVar(&cfg.DataDir, "data-dir", "./data", "directory for workspace data (one TSDB per workspace)")
	fs.StringVar(&cfg.DB, "db", "", "control-plane database: a postgres:// URL shared by replicas, or a SQLite file (default <data-dir>/catalog.db)")
	fs.StringVar(&cfg.SecretsKeyFile, "secrets-key-file", "", "32-byte key sealing access-key secrets, created if missing (default <data-dir>/secrets.key; replicas sharing --db need the same file)")
	fs.StringVar(&cfg.Engine, "engine", "embedded", "where workspaces' samples, rules and alerts live: embedded (in this process, under --data-dir) or cortex (tenants of the Cortex cluster at --cortex.url; needs --db postgres://... and --secrets-key-file, keeps no local state)")
	fs.StringVar(&cfg.CortexOverridesFile, "cortex.overrides-file", "", "with --engine=cortex: keep this file up to date with Cortex's runtime-config overrides for every workspace, re-rendered each --rules.poll-interval (point Cortex's runtime_config.file at it)")
	fs.StringVar(&cfg.CortexURL, "cortex.url", "", "with --engine=cortex: base URL of Cortex's HTTP API (distributor push, /prometheus, ruler and Alertmanager APIs), e.g. http://cortex:9009")
	printOverrides := fs.Bool("cortex.print-overrides", false, "with --engine=cortex: print Cortex's runtime-config overrides for every workspace (its limits, as Cortex names them) and exit, instead of serving")
	fs.StringVar(&cfg.LimitsFile, "limits-file", "", "YAML file of per-workspace limit overrides (see README); reloaded on SIGHUP and POST /-/reload")
	fs.DurationVar(&cfg.IdleTimeout, "storage.idle-timeout", 30*time.Minute, "close a workspace's TSDB after this long without reads or writes (0: never)")
	fs.Int64Var(&cfg.IngestMaxInflightBytes, "ingest.max-inflight-bytes", ingest.DefaultMaxInflightBytes, "remote write bytes (bodies, compressed and decoded) all requests may hold at once; beyond it requests get 503 with Retry-After")
	fs.BoolVar(&cfg.WALFsync, "storage.wal-fsync", false, "sync a workspace's WAL to disk (fsync) before acknowledging a write, so acknowledged samples survive a power loss, not only a crash of the process; costs about 3 ms per write request, less when requests are concurrent (they share syncs)")
	fs.DurationVar(&cfg.BlockDuration, "storage.block-duration", 2*time.Hour, "length of a TSDB block, as Prometheus' (do not change in production)")
	fs.DurationVar(&cfg.ShutdownTimeout, "shutdown-timeout", 30*time.Second, "how long in-flight requests may finish at shutdown")
	fs.BoolVar(&cfg.OTLPConvertDelta, "otlp.convert-delta", false, "convert OTLP sums and histograms of delta temporality to cumulative, per workspace, as Prometheus' otlp-deltatocumulative feature (without it they are refused)")
	fs.StringVar(&cfg.Region, "region", "us-east-1", "AWS region in ARNs and expected in SigV4 credential scopes")
	fs.StringVar(&cfg.AccountID, "account-id", "000000000000", "12-digit account id in ARNs")
	fs.DurationVar(&cfg.MaxPresignedLifetime, "auth.max-presigned-lifetime", 15*time.Minute, "longest validity (X-Amz-Expires) of a presigned URL accepted; presigned URLs and UNSIGNED-PAYLOAD signatures are refused for writes whatever this is")
	fs.DurationVar(&cfg.AuthCacheTTL, "auth.cache-ttl", 10*time.Second, "how long access keys, bearer tokens and workspaces' status are remembered between catalog lookups (0: look them up on every request); a key or token revoked, or a workspace deleted, through another replica sharing the catalog is refused here within this time, through this one at once")
	fs.StringVar(&cfg.Auth, "auth", "sigv4", "request authentication: sigv4 (AWS Signature V4 with Orrery access keys and policies, or bearer tokens) or none (development only: anyone reaching the port reads and writes every workspace)")
	cfg.AdminKeyID, cfg.AdminSecret = os.Getenv("ORRERY_ADMIN_ACCESS_KEY_ID"), os.Getenv("ORRERY_ADMIN_SECRET_ACCESS_KEY")
	cfg.UIAdminPassword = os.Getenv("ORRERY_UI_ADMIN_PASSWORD")
	fs.DurationVar(&cfg.AlertmanagerPollInterval, "alertmanager.poll-interval", 30*time.Second, "how often alert manager definitions are read from the catalog (changes through the API apply at once)")
	fs.DurationVar(&cfg.AlertmanagerMaintenanceInterval, "alertmanager.maintenance-interval", 15*time.Minute, "how often silences and notification logs are garbage-collected and written to disk (also at shutdown)")
	fs.DurationVar(&cfg.AlertmanagerRetention, "alertmanager.retention", 120*time.Hour, "how long expired silences and notification log entries are kept")
	denyNets := fs.String("alertmanager.deny-receiver-networks", "169.254.0.0/16,fe80::/10,fd00:ec2::254/128",
		"comma-separated networks (CIDR) that workspaces' HTTP receivers (webhook, Slack, SNS, …) may not connect to, checked on the resolved address; the default keeps them off link-local addresses and cloud instance metadata; add your internal networks (e.g. 10.0.0.0/8,127.0.0.0/8) when workspace users are not trusted; empty allows all")
	fs.BoolVar(&cfg.AlertmanagerAllowServerAWSCredentials, "alertmanager.allow-server-aws-credentials", false,
		"let workspaces' SNS receivers that give neither access_key/secret_key nor role_arn publish with this server's own AWS credentials (environment, shared files, instance role); for single-tenant deployments only: by default such alert manager definitions are refused")
	fs.DurationVar(&cfg.Ruler.PollInterval, "rules.poll-interval", 30*time.Second, "how often every workspace's rule groups namespaces are re-read (changes through the API apply at once)")
	fs.DurationVar(&cfg.Ruler.EvaluationInterval, "rules.evaluation-interval", time.Minute, "evaluation interval of rule groups that set none")
	fs.DurationVar(&cfg.Ruler.OutageTolerance, "rules.alert.for-outage-tolerance", time.Hour, "max time to tolerate an outage for restoring the 'for' state of alerts")
	fs.DurationVar(&cfg.Ruler.ForGracePeriod, "rules.alert.for-grace-period", 10*time.Minute, "min duration between a restart and an alert firing whose 'for' is at least this long")
	fs.DurationVar(&cfg.Ruler.ResendDelay, "rules.alert.resend-delay", time.Minute, "min time before a firing alert is sent to the Alertmanager again")
	fs.StringVar(&cfg.Ruler.ExternalURL, "web.external-url", "", "URL under which Orrery is reached, for alerts' generator links (default: http://<listen>)")
	fs.StringVar(&cfg.TLSCertFile, "web.tls-cert-file", "", "serve HTTPS with this PEM certificate (chain), reloaded when the file changes; with --web.tls-key-file")
	fs.StringVar(&cfg.TLSKeyFile, "web.tls-key-file", "", "the PEM private key of --web.tls-cert-file")
	cfg.HTTP = app.DefaultHTTPConfig()
	fs.DurationVar(&cfg.HTTP.ReadHeaderTimeout, "web.read-header-timeout", cfg.HTTP.ReadHeaderTimeout, "how long a client may take to send a request's headers")
	fs.DurationVar(&cfg.HTTP.ReadTimeout, "web.read-timeout", cfg.HTTP.ReadTimeout, "how long a client may take to send a whole request, body included (Prometheus' remote_timeout is 30s)")
	fs.DurationVar(&cfg.HTTP.WriteTimeout, "web.write-timeout", cfg.HTTP.WriteTimeout, "how long a request may take from its headers to the end of its answer; keep it above the longest query timeout")
	fs.DurationVar(&cfg.HTTP.IdleTimeout, "web.idle-timeout", cfg.HTTP.IdleTimeout, "how long an idle keep-alive connection is kept open")
	fs.IntVar(&cfg.HTTP.MaxConcurrentRequests, "web.max-concurrent-requests", cfg.HTTP.MaxConcurrentRequests, "requests served at once; beyond it requests get 503 with Retry-After (/-/ready and /-/healthy are always served)")
	logLevel := fs.String("log.level", "info", "log level: debug, info, warn, error")
	cfg.Query.RegisterFlags(fs)
	fs.IntVar(&l.MaxLabelNamesPerSeries, "limits.max-label-names-per-series", l.MaxLabelNamesPerSeries, "default: labels per series")
	fs.IntVar(&l.MaxLabelNameLength, "limits.max-label-name-length", l.MaxLabelNameLength, "default: bytes per label name")
	fs.IntVar(&l.MaxLabelValueLength, "limits.max-label-value-length", l.MaxLabelValueLength, "default: bytes per label value")
	fs.Float64Var(&l.IngestionRate, "limits.ingestion-rate", l.IngestionRate, "default: samples per second per workspace (0: unlimited)")
	fs.IntVar(&l.IngestionBurstSize, "limits.ingestion-burst-size", l.IngestionBurstSize, "default: ingestion burst, in samples")
	fs.IntVar(&l.MaxActiveSeries, "limits.max-active-series", l.MaxActiveSeries, "default: active series per workspace (0: unlimited)")
	fs.IntVar(&l.MaxRequestBytes, "limits.max-request-bytes", l.MaxRequestBytes, "default: compressed remote write body size")
	fs.IntVar(&l.MaxDecodedRequestBytes, "limits.max-decoded-request-bytes", l.MaxDecodedRequestBytes, "default: decompressed remote write body size")
	fs.Var(durationFlag{&l.OutOfOrderWindow}, "limits.out-of-order-window", "default: out-of-order window (max 10m)")
	fs.IntVar(&l.MaxExemplars, "limits.max-exemplars", l.MaxExemplars, "default: exemplars kept in memory per workspace")
	fs.StringVar(&l.NameValidation, "limits.name-validation-scheme", l.NameValidation, "default: metric and label name validation, utf8 or legacy")
	fs.StringVar(&l.HAClusterLabel, "limits.ha-cluster-label", l.HAClusterLabel, "default: HA pair cluster label (empty: no deduplication)")
	fs.StringVar(&l.HAReplicaLabel, "limits.ha-replica-label", l.HAReplicaLabel, "default: HA pair replica label, dropped on ingestion")
	fs.Var(durationFlag{&l.HAFailoverTimeout}, "limits.ha-failover-timeout", "default: time after which another HA replica is elected")
	fs.Var(durationFlag{&l.RetentionPeriod}, "limits.retention", "default: how long data is kept")
	fs.Var(durationFlag{&l.QueryTimeout}, "limits.query-timeout", "default: query evaluation timeout")
	fs.IntVar(&l.MaxQuerySamples, "limits.max-query-samples", l.MaxQuerySamples, "default: samples a query may load into memory at once (0: unlimited)")
	fs.Var(durationFlag{&l.MaxQueryRange}, "limits.max-query-range", "default: longest time range of a range query (0: unlimited)")
	fs.IntVar(&l.AlertmanagerMaxAlerts, "limits.alertmanager-max-alerts", l.AlertmanagerMaxAlerts, "default: alerts an alert manager holds (0: unlimited)")
	fs.IntVar(&l.AlertmanagerMaxAlertsSizeBytes, "limits.alertmanager-max-alerts-size-bytes", l.AlertmanagerMaxAlertsSizeBytes, "default: total size of the labels and annotations of an alert manager's alerts (0: unlimited)")
	fs.IntVar(&l.AlertmanagerMaxAggregationGroups, "limits.alertmanager-max-aggregation-groups", l.AlertmanagerMaxAggregationGroups, "default: aggregation groups per alert manager (0: unlimited)")
	fs.IntVar(&l.AlertmanagerMaxSilences, "limits.alertmanager-max-silences", l.AlertmanagerMaxSilences, "default: silences per alert manager, expired ones included until their retention ends (0: unlimited)")
	fs.IntVar(&l.AlertmanagerMaxSilenceSizeBytes, "limits.alertmanager-max-silence-size-bytes", l.AlertmanagerMaxSilenceSizeBytes, "default: bytes per silence (0: unlimited)")
	fs.IntVar(&l.MaxRuleGroups, "limits.max-rule-groups", l.MaxRuleGroups, "default: rule groups in all rule groups namespaces of a workspace (0: unlimited)")
	fs.IntVar(&l.MaxRulesPerRuleGroup, "limits.max-rules-per-rule-group", l.MaxRulesPerRuleGroup, "default: rules in one rule group (0: unlimited)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		fmt.Fprintf(stderr, "orrery server: --log.level %q: use debug, info, warn or error\n", *logLevel)
		return 2
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	nets, err := alerting.ParseNetworks(*denyNets)
	if err != nil {
		fmt.Fprintf(stderr, "orrery server: --alertmanager.deny-receiver-networks: %v\n", err)
		return 2
	}
	cfg.AlertmanagerDenyReceiverNetworks = nets
	if err := cfg.Limits.Validate(); err != nil {
		fmt.Fprintf(stderr, "orrery server: default limits: %v\n", err)
		return 2
	}
	srv, err := app.NewServer(cfg, logger)
	if err != nil {
		fmt.Fprintf(stderr, "orrery server: %v\n", err)
		return 1
	}
	if *printOverrides {
		b, err := srv.CortexRuntimeConfig(context.Background())
		if err != nil {
			fmt.Fprintf(stderr, "orrery server: %v\n", err)
			return 1
		}
		_, _ = os.Stdout.Write(b)
		return 0
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				if err := srv.ReloadLimits(); err != nil {
					logger.Warn("reload limits file on SIGHUP; the previous limits stay in force", "err", err)
				}
			}
		}
	}()
	if err := srv.Run(ctx); err != nil {
		msg := err.Error()
		if errors.Is(err, syscall.EADDRINUSE) {
			msg += " (another process uses the port: pick another with --listen)"
		}
		fmt.Fprintf(stderr, "orrery server: %s\n", msg)
		return 1
	}
	return 0
}
