package app

import (
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/orrery-dev/orrery/internal/alerting"
	"github.com/orrery-dev/orrery/internal/ingest"
	"github.com/orrery-dev/orrery/internal/querylog"
	"github.com/orrery-dev/orrery/internal/ruler"
	"github.com/orrery-dev/orrery/internal/scraper"
	orstorage "github.com/orrery-dev/orrery/internal/storage"
	"github.com/orrery-dev/orrery/internal/workspace"
)

// DefaultServerConfig returns the configuration `orrery server` runs with
// when given no flags. It is the one place the server's defaults are
// written; `orrery demo` starts from it too.
func DefaultServerConfig() ServerConfig {
	c := ServerConfig{
		Listen:               "127.0.0.1:9090",
		DataDir:              "./data",
		Engine:               "embedded",
		Auth:                 "sigv4",
		Storage:              orstorage.DefaultConfig(),
		Ingest:               ingest.DefaultConfig(),
		QueryLog:             querylog.DefaultConfig(),
		ShutdownTimeout:      30 * time.Second,
		Region:               "us-east-1",
		AccountID:            "000000000000",
		MaxPresignedLifetime: 15 * time.Minute,
		AuthCacheTTL:         10 * time.Second,
		Alerting:             alerting.DefaultConfig(),
		Ruler:                ruler.DefaultConfig(),
		HTTP:                 DefaultHTTPConfig(),
		Limits:               workspace.DefaultLimits(),
		Scraper:              scraper.DefaultConfig(),
		OTLP:                 ingest.DefaultOTLPConfig(),
	}
	// The query package keeps its defaults in its flags.
	c.Query.RegisterFlags(flag.NewFlagSet("defaults", flag.ContinueOnError))
	return c
}

// RegisterFlags registers the server's flags on fs, with c's values as
// their defaults (start from DefaultServerConfig). Secrets come from the
// environment, not from flags.
func (c *ServerConfig) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Listen, "listen", c.Listen, "address to serve HTTP on")
	fs.StringVar(&c.DataDir, "data-dir", c.DataDir, "directory for workspace data (one TSDB per workspace)")
	fs.StringVar(&c.DB, "db", c.DB, "control-plane database: a postgres:// URL shared by replicas, or a SQLite file (default <data-dir>/catalog.db)")
	fs.StringVar(&c.SecretsKeyFile, "secrets-key-file", c.SecretsKeyFile, "32-byte key sealing access-key secrets, created if missing (default <data-dir>/secrets.key; replicas sharing --db need the same file)")
	fs.StringVar(&c.Engine, "engine", c.Engine, "where workspaces' samples, rules and alerts live: embedded (in this process, under --data-dir) or cortex (tenants of the Cortex cluster at --cortex.url; needs --db postgres://... and --secrets-key-file, keeps no local state)")
	fs.StringVar(&c.CortexOverridesFile, "cortex.overrides-file", c.CortexOverridesFile, "with --engine=cortex: keep this file up to date with Cortex's runtime-config overrides for every workspace, re-rendered each --rules.poll-interval (point Cortex's runtime_config.file at it)")
	fs.StringVar(&c.CortexURL, "cortex.url", c.CortexURL, "with --engine=cortex: base URL of Cortex's HTTP API (distributor push, /prometheus, ruler and Alertmanager APIs), e.g. http://cortex:9009")
	fs.StringVar(&c.LimitsFile, "limits-file", c.LimitsFile, "YAML file of per-workspace limit overrides (see README); reloaded on SIGHUP and POST /-/reload")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", c.ShutdownTimeout, "how long in-flight requests may finish at shutdown")
	fs.StringVar(&c.Region, "region", c.Region, "AWS region in ARNs and expected in SigV4 credential scopes")
	fs.StringVar(&c.AccountID, "account-id", c.AccountID, "12-digit account id in ARNs")
	fs.DurationVar(&c.MaxPresignedLifetime, "auth.max-presigned-lifetime", c.MaxPresignedLifetime, "longest validity (X-Amz-Expires) of a presigned URL accepted; presigned URLs and UNSIGNED-PAYLOAD signatures are refused for writes whatever this is")
	fs.DurationVar(&c.AuthCacheTTL, "auth.cache-ttl", c.AuthCacheTTL, "how long access keys, bearer tokens and workspaces' status are remembered between catalog lookups (0: look them up on every request); a key or token revoked, or a workspace deleted, through another replica sharing the catalog is refused here within this time, through this one at once")
	fs.StringVar(&c.Auth, "auth", c.Auth, "request authentication: sigv4 (AWS Signature V4 with Orrery access keys and policies, or bearer tokens) or none (development only: anyone reaching the port reads and writes every workspace)")
	c.Storage.RegisterFlags(fs)
	c.Ingest.RegisterFlags(fs)
	c.OTLP.RegisterFlags(fs)
	c.QueryLog.RegisterFlags(fs)
	c.Scraper.RegisterFlags(fs)
	c.Alerting.RegisterFlags(fs)
	fs.StringVar(&c.Ruler.ExternalURL, "web.external-url", c.Ruler.ExternalURL, "URL under which Orrery is reached, for alerts' generator links (default: http://<listen>)")
	fs.StringVar(&c.TLSCertFile, "web.tls-cert-file", c.TLSCertFile, "serve HTTPS with this PEM certificate (chain), reloaded when the file changes; with --web.tls-key-file")
	fs.StringVar(&c.TLSKeyFile, "web.tls-key-file", c.TLSKeyFile, "the PEM private key of --web.tls-cert-file")
	fs.DurationVar(&c.HTTP.ReadHeaderTimeout, "web.read-header-timeout", c.HTTP.ReadHeaderTimeout, "how long a client may take to send a request's headers")
	fs.DurationVar(&c.HTTP.ReadTimeout, "web.read-timeout", c.HTTP.ReadTimeout, "how long a client may take to send a whole request, body included (Prometheus' remote_timeout is 30s)")
	fs.DurationVar(&c.HTTP.WriteTimeout, "web.write-timeout", c.HTTP.WriteTimeout, "how long a request may take from its headers to the end of its answer; keep it above the longest query timeout")
	fs.DurationVar(&c.HTTP.IdleTimeout, "web.idle-timeout", c.HTTP.IdleTimeout, "how long an idle keep-alive connection is kept open")
	fs.IntVar(&c.HTTP.MaxConcurrentRequests, "web.max-concurrent-requests", c.HTTP.MaxConcurrentRequests, "requests served at once; beyond it requests get 503 with Retry-After (/-/ready and /-/healthy are always served)")
	c.Query.RegisterFlags(fs)
	c.Limits.RegisterFlags(fs)
	c.Ruler.RegisterFlags(fs)
}

// Validate reports the first setting that cannot work.
func (c *ServerConfig) Validate() error {
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
	if c.AuthCacheTTL < 0 {
		return errors.New("--auth.cache-ttl must not be negative")
	}
	if err := c.Alerting.Validate(); err != nil {
		return err
	}
	if err := c.Scraper.Validate(); err != nil {
		return err
	}
	if err := c.QueryLog.Validate(); err != nil {
		return err
	}
	if err := c.Ingest.Validate(); err != nil {
		return err
	}
	if err := c.OTLP.Validate(); err != nil {
		return err
	}
	st := c.Storage
	st.Dir = c.DataDir
	if err := st.Validate(); err != nil {
		return err
	}
	if err := c.Limits.Validate(); err != nil {
		return fmt.Errorf("default limits: %w", err)
	}
	if err := c.Ruler.Validate(); err != nil {
		return err
	}
	return c.Query.Validate()
}
