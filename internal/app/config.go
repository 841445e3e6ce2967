package app

import (
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/prometheus/common/model"

	"github.com/orrery-dev/orrery/internal/alerting"
	"github.com/orrery-dev/orrery/internal/ingest"
	"github.com/orrery-dev/orrery/internal/querylog"
	"github.com/orrery-dev/orrery/internal/ruler"
	"github.com/orrery-dev/orrery/internal/workspace"
)

// DefaultDenyReceiverNetworks keeps workspaces' HTTP receivers off
// link-local addresses and cloud instance metadata.
const DefaultDenyReceiverNetworks = "169.254.0.0/16,fe80::/10,fd00:ec2::254/128"

// DefaultServerConfig returns the configuration `orrery server` runs with
// when given no flags. It is the one place the server's defaults are
// written; `orrery demo` starts from it too.
func DefaultServerConfig() ServerConfig {
	c := ServerConfig{
		Listen:                          "127.0.0.1:9090",
		DataDir:                         "./data",
		Engine:                          "embedded",
		Auth:                            "sigv4",
		IdleTimeout:                     30 * time.Minute,
		BlockDuration:                   2 * time.Hour,
		IngestMaxInflightBytes:          ingest.DefaultMaxInflightBytes,
		QueryLogMaxFileBytes:            querylog.DefaultMaxFileBytes,
		ShutdownTimeout:                 30 * time.Second,
		Region:                          "us-east-1",
		AccountID:                       "000000000000",
		MaxPresignedLifetime:            15 * time.Minute,
		AuthCacheTTL:                    10 * time.Second,
		AlertmanagerPollInterval:        30 * time.Second,
		AlertmanagerMaintenanceInterval: 15 * time.Minute,
		AlertmanagerRetention:           120 * time.Hour,
		Ruler:                           ruler.DefaultConfig(),
		HTTP:                            DefaultHTTPConfig(),
		Limits:                          workspace.DefaultLimits(),
	}
	// A constant, which TestDefaultServerConfig checks parses.
	_ = networksFlag{&c.AlertmanagerDenyReceiverNetworks, &c.flagErr}.Set(DefaultDenyReceiverNetworks)
	// The query package keeps its defaults in its flags.
	c.Query.RegisterFlags(flag.NewFlagSet("defaults", flag.ContinueOnError))
	return c
}

// RegisterFlags registers the server's flags on fs, with c's values as
// their defaults (start from DefaultServerConfig). Secrets come from the
// environment, not from flags.
func (c *ServerConfig) RegisterFlags(fs *flag.FlagSet) {
	l := &c.Limits
	fs.StringVar(&c.Listen, "listen", c.Listen, "address to serve HTTP on")
	fs.StringVar(&c.DataDir, "data-dir", c.DataDir, "directory for workspace data (one TSDB per workspace)")
	fs.StringVar(&c.DB, "db", c.DB, "control-plane database: a postgres:// URL shared by replicas, or a SQLite file (default <data-dir>/catalog.db)")
	fs.StringVar(&c.SecretsKeyFile, "secrets-key-file", c.SecretsKeyFile, "32-byte key sealing access-key secrets, created if missing (default <data-dir>/secrets.key; replicas sharing --db need the same file)")
	fs.StringVar(&c.Engine, "engine", c.Engine, "where workspaces' samples, rules and alerts live: embedded (in this process, under --data-dir) or cortex (tenants of the Cortex cluster at --cortex.url; needs --db postgres://... and --secrets-key-file, keeps no local state)")
	fs.StringVar(&c.CortexOverridesFile, "cortex.overrides-file", c.CortexOverridesFile, "with --engine=cortex: keep this file up to date with Cortex's runtime-config overrides for every workspace, re-rendered each --rules.poll-interval (point Cortex's runtime_config.file at it)")
	fs.StringVar(&c.CortexURL, "cortex.url", c.CortexURL, "with --engine=cortex: base URL of Cortex's HTTP API (distributor push, /prometheus, ruler and Alertmanager APIs), e.g. http://cortex:9009")
	fs.StringVar(&c.LimitsFile, "limits-file", c.LimitsFile, "YAML file of per-workspace limit overrides (see README); reloaded on SIGHUP and POST /-/reload")
	fs.DurationVar(&c.IdleTimeout, "storage.idle-timeout", c.IdleTimeout, "close a workspace's TSDB after this long without reads or writes (0: never)")
	fs.Int64Var(&c.QueryLogMaxFileBytes, "query-log.max-file-bytes", c.QueryLogMaxFileBytes, "bound of a workspace's current query log file, <data-dir>/querylogs/<workspace>.jsonl; beyond it the file is rotated to <workspace>.jsonl.1, replacing the previous one")
	fs.Int64Var(&c.IngestMaxInflightBytes, "ingest.max-inflight-bytes", c.IngestMaxInflightBytes, "remote write bytes (bodies, compressed and decoded) all requests may hold at once; beyond it requests get 503 with Retry-After")
	fs.BoolVar(&c.WALFsync, "storage.wal-fsync", c.WALFsync, "sync a workspace's WAL to disk (fsync) before acknowledging a write, so acknowledged samples survive a power loss, not only a crash of the process; costs about 3 ms per write request, less when requests are concurrent (they share syncs)")
	fs.DurationVar(&c.BlockDuration, "storage.block-duration", c.BlockDuration, "length of a TSDB block, as Prometheus' (do not change in production)")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", c.ShutdownTimeout, "how long in-flight requests may finish at shutdown")
	fs.BoolVar(&c.OTLPConvertDelta, "otlp.convert-delta", c.OTLPConvertDelta, "convert OTLP sums and histograms of delta temporality to cumulative, per workspace, as Prometheus' otlp-deltatocumulative feature (without it they are refused)")
	fs.StringVar(&c.Region, "region", c.Region, "AWS region in ARNs and expected in SigV4 credential scopes")
	fs.StringVar(&c.AccountID, "account-id", c.AccountID, "12-digit account id in ARNs")
	fs.DurationVar(&c.MaxPresignedLifetime, "auth.max-presigned-lifetime", c.MaxPresignedLifetime, "longest validity (X-Amz-Expires) of a presigned URL accepted; presigned URLs and UNSIGNED-PAYLOAD signatures are refused for writes whatever this is")
	fs.DurationVar(&c.AuthCacheTTL, "auth.cache-ttl", c.AuthCacheTTL, "how long access keys, bearer tokens and workspaces' status are remembered between catalog lookups (0: look them up on every request); a key or token revoked, or a workspace deleted, through another replica sharing the catalog is refused here within this time, through this one at once")
	fs.StringVar(&c.Auth, "auth", c.Auth, "request authentication: sigv4 (AWS Signature V4 with Orrery access keys and policies, or bearer tokens) or none (development only: anyone reaching the port reads and writes every workspace)")
	fs.DurationVar(&c.AlertmanagerPollInterval, "alertmanager.poll-interval", c.AlertmanagerPollInterval, "how often alert manager definitions are read from the catalog (changes through the API apply at once)")
	fs.DurationVar(&c.AlertmanagerMaintenanceInterval, "alertmanager.maintenance-interval", c.AlertmanagerMaintenanceInterval, "how often silences and notification logs are garbage-collected and written to disk (also at shutdown)")
	fs.DurationVar(&c.AlertmanagerRetention, "alertmanager.retention", c.AlertmanagerRetention, "how long expired silences and notification log entries are kept")
	fs.Var(networksFlag{&c.AlertmanagerDenyReceiverNetworks, &c.flagErr}, "alertmanager.deny-receiver-networks",
		"comma-separated networks (`CIDRs`) that workspaces' HTTP receivers (webhook, Slack, SNS, …) may not connect to, checked on the resolved address; the default keeps them off link-local addresses and cloud instance metadata; add your internal networks (e.g. 10.0.0.0/8,127.0.0.0/8) when workspace users are not trusted; empty allows all")
	fs.BoolVar(&c.AlertmanagerAllowServerAWSCredentials, "alertmanager.allow-server-aws-credentials", false,
		"let workspaces' SNS receivers that give neither access_key/secret_key nor role_arn publish with this server's own AWS credentials (environment, shared files, instance role); for single-tenant deployments only: by default such alert manager definitions are refused")
	fs.StringVar(&c.Ruler.ExternalURL, "web.external-url", c.Ruler.ExternalURL, "URL under which Orrery is reached, for alerts' generator links (default: http://<listen>)")
	fs.StringVar(&c.TLSCertFile, "web.tls-cert-file", c.TLSCertFile, "serve HTTPS with this PEM certificate (chain), reloaded when the file changes; with --web.tls-key-file")
	fs.StringVar(&c.TLSKeyFile, "web.tls-key-file", c.TLSKeyFile, "the PEM private key of --web.tls-cert-file")
	fs.DurationVar(&c.HTTP.ReadHeaderTimeout, "web.read-header-timeout", c.HTTP.ReadHeaderTimeout, "how long a client may take to send a request's headers")
	fs.DurationVar(&c.HTTP.ReadTimeout, "web.read-timeout", c.HTTP.ReadTimeout, "how long a client may take to send a whole request, body included (Prometheus' remote_timeout is 30s)")
	fs.DurationVar(&c.HTTP.WriteTimeout, "web.write-timeout", c.HTTP.WriteTimeout, "how long a request may take from its headers to the end of its answer; keep it above the longest query timeout")
	fs.DurationVar(&c.HTTP.IdleTimeout, "web.idle-timeout", c.HTTP.IdleTimeout, "how long an idle keep-alive connection is kept open")
	fs.IntVar(&c.HTTP.MaxConcurrentRequests, "web.max-concurrent-requests", c.HTTP.MaxConcurrentRequests, "requests served at once; beyond it requests get 503 with Retry-After (/-/ready and /-/healthy are always served)")
	c.Query.RegisterFlags(fs)
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
	c.Ruler.RegisterFlags(fs)
}

// Validate reports the first setting that cannot work.
func (c *ServerConfig) Validate() error {
	if c.flagErr != nil {
		return c.flagErr
	}
	switch c.Engine {
	case "", "embedded", "cortex":
	default:
		return fmt.Errorf("--engine %q: use embedded or cortex", c.Engine)
	}
	switch c.Auth {
	case "", "sigv4", "none":
	default:
		return fmt.Errorf("--auth %q: use sigv4 or none", c.Auth)
	}
	if c.DataDir == "" {
		return errors.New("--data-dir is empty; name a directory for workspace data")
	}
	if c.QueryLogMaxFileBytes != 0 && c.QueryLogMaxFileBytes < 4096 { // 0: querylog's default.
		return fmt.Errorf("--query-log.max-file-bytes %d: must be at least 4096", c.QueryLogMaxFileBytes)
	}
	if c.AuthCacheTTL < 0 {
		return errors.New("--auth.cache-ttl must not be negative")
	}
	if err := c.Limits.Validate(); err != nil {
		return fmt.Errorf("default limits: %w", err)
	}
	if err := c.Ruler.Validate(); err != nil {
		return err
	}
	return c.Query.Validate()
}

// networksFlag adapts a list of networks to flag.Value. A list that does
// not parse is reported by Validate, naming the flag, not by the flag
// package with the whole usage.
type networksFlag struct {
	nets *[]netip.Prefix
	err  *error
}

func (f networksFlag) String() string {
	if f.nets == nil {
		return ""
	}
	s := make([]string, len(*f.nets))
	for i, n := range *f.nets {
		s[i] = n.String()
	}
	return strings.Join(s, ",")
}

func (f networksFlag) Set(s string) error {
	nets, err := alerting.ParseNetworks(s)
	if err != nil {
		*f.err = fmt.Errorf("--alertmanager.deny-receiver-networks: %w", err)
		return nil
	}
	*f.nets, *f.err = nets, nil
	return nil
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
