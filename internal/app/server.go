package app

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage"

	"github.com/orrery-dev/orrery/internal/alerting"
	"github.com/orrery-dev/orrery/internal/auth"
	"github.com/orrery-dev/orrery/internal/catalog"
	"github.com/orrery-dev/orrery/internal/controlplane"
	"github.com/orrery-dev/orrery/internal/cortex"
	"github.com/orrery-dev/orrery/internal/ingest"
	"github.com/orrery-dev/orrery/internal/policy"
	"github.com/orrery-dev/orrery/internal/query"
	"github.com/orrery-dev/orrery/internal/ruler"
	orstorage "github.com/orrery-dev/orrery/internal/storage"
	"github.com/orrery-dev/orrery/internal/ui"
	"github.com/orrery-dev/orrery/internal/workspace"
)

// Version is Orrery's release. The query API reports the embedded
// Prometheus engine's version (EngineVersion) so clients such as Grafana
// enable the features that engine has.
const (
	Version       = "0.1.0"
	EngineVersion = "3.16.0"
)

// ServerConfig configures `orrery server`.
type ServerConfig struct {
	Listen      string
	DataDir     string
	LimitsFile  string
	IdleTimeout time.Duration
	// BlockDuration is the TSDB head block length.
	BlockDuration time.Duration
	// WALFsync syncs a workspace's WAL to disk before a write is
	// acknowledged (storage.Config.WALFsync).
	WALFsync bool
	// IngestMaxInflightBytes bounds the remote write bodies held at once
	// (ingest.Config.MaxInflightBytes).
	IngestMaxInflightBytes int64
	// Limits are the defaults for workspaces without overrides.
	Limits workspace.Limits
	// ShutdownTimeout bounds how long in-flight requests may finish.
	ShutdownTimeout time.Duration
	// OTLPConvertDelta converts OTLP delta temporality to cumulative.
	OTLPConvertDelta bool
	// Region and AccountID appear in ARNs.
	Region, AccountID string
	// Auth is "sigv4" (every request signed, authorized by the key's
	// policy) or "none" (development only).
	Auth string
	// DB is the catalog: a PostgreSQL URL shared by replicas, or the path
	// of the embedded SQLite file (default <DataDir>/catalog.db).
	DB string
	// SecretsKeyFile seals access-key secrets (default
	// <DataDir>/secrets.key); replicas sharing a catalog share it too.
	SecretsKeyFile string
	// AdminKeyID and AdminSecret, if set, become the admin key at first
	// start (ORRERY_ADMIN_ACCESS_KEY_ID / ORRERY_ADMIN_SECRET_ACCESS_KEY).
	AdminKeyID, AdminSecret string
	// Alertmanager: how often definitions are polled from the catalog, how
	// often silences and notification logs are snapshotted, and how long
	// expired silences and notification log entries are kept.
	AlertmanagerPollInterval        time.Duration
	AlertmanagerMaintenanceInterval time.Duration
	AlertmanagerRetention           time.Duration
	// AlertmanagerDenyReceiverNetworks are networks workspaces' HTTP
	// receivers may not connect to (alerting.Config.DenyReceiverNetworks).
	AlertmanagerDenyReceiverNetworks []netip.Prefix
	// AlertmanagerAllowServerAWSCredentials lets workspaces' SNS receivers
	// without keys or a role publish with the server's AWS credentials.
	AlertmanagerAllowServerAWSCredentials bool
	// Ruler configures rule evaluation; its ExternalURL defaults to
	// http://<Listen>.
	Ruler ruler.Config
	// UIAdminPassword, if set, is the password of the web UI's first admin
	// user (ORRERY_UI_ADMIN_PASSWORD); otherwise one is generated.
	UIAdminPassword string
	// Query configures query evaluation: parallelism, concurrency and the
	// results cache.
	Query query.EvalConfig
	// UI configures the web UI.
	UI ui.Config
	// Engine is "embedded" (default: one Prometheus TSDB, rule manager and
	// Alertmanager per workspace in this process) or "cortex" (workspaces
	// are tenants of the Cortex cluster at CortexURL; the server keeps no
	// local state and needs a PostgreSQL catalog).
	Engine    string
	CortexURL string
	// CortexOverridesFile, if set, is kept up to date with Cortex's
	// runtime configuration for every workspace (Cortex's
	// runtime_config.file, on a volume both can reach).
	CortexOverridesFile string
	// HTTP bounds the listener's timeouts and concurrent requests.
	HTTP HTTPConfig
	// MaxPresignedLifetime caps presigned URLs' validity (default 15m).
	MaxPresignedLifetime time.Duration
	// TLSCertFile and TLSKeyFile, if set, make the listener serve TLS with
	// this certificate, reloaded when the files change.
	TLSCertFile, TLSKeyFile string
}

// Server is a running `orrery server`.
type Server struct {
	cfg       ServerConfig
	logger    *slog.Logger
	reg       *prometheus.Registry
	overrides *workspace.Overrides
	store     *orstorage.Store
	ingest    *ingest.Handler
	otlp      *ingest.OTLP
	query     *query.API
	catalog   *catalog.Catalog
	control   *controlplane.API
	alerting  *alerting.Manager
	guard     *auth.Guard
	sealer    *catalog.Sealer
	ruler     *ruler.Ruler
	ui        *ui.Handler
	// queries and alertmanager serve /workspaces/{id}/api/v1/ and
	// /workspaces/{id}/alertmanager/api/: the embedded engine's handlers,
	// or proxies to Cortex.
	queries, alertmanager http.Handler
	// cortex keeps Cortex's rules and Alertmanager configurations; nil
	// with the embedded engine, whose store, ruler and alerting are then
	// nil instead.
	cortex *cortex.Configs
	// tracker logs the queries being evaluated to <data-dir>/queries.active
	// (reported at the next start if the process dies), embedded engine
	// only.
	tracker *promql.ActiveQueryTracker
	http    *http.Server
	tls     *tls.Config // nil: plain HTTP.
	ln      net.Listener
}

// NewServer builds a server. It opens no workspace and starts no goroutine.
func NewServer(cfg ServerConfig, logger *slog.Logger) (*Server, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if cfg.DataDir == "" {
		return nil, errors.New("--data-dir is empty; name a directory for workspace data")
	}
	if cfg.ShutdownTimeout == 0 {
		cfg.ShutdownTimeout = 30 * time.Second
	}
	switch cfg.Engine {
	case "", "embedded":
	case "cortex":
		return newCortexServer(cfg, logger)
	default:
		return nil, fmt.Errorf("--engine %q: use embedded or cortex", cfg.Engine)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	overrides, err := workspace.NewOverrides(cfg.Limits)
	if err != nil {
		return nil, err
	}
	if cfg.LimitsFile != "" {
		if err := overrides.LoadFile(cfg.LimitsFile); err != nil {
			return nil, err
		}
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	ev, tracker, err := newEvaluator(cfg, logger, reg)
	if err != nil {
		return nil, err
	}
	store, err := orstorage.New(orstorage.Config{Dir: cfg.DataDir, IdleTimeout: cfg.IdleTimeout, BlockDuration: cfg.BlockDuration,
		WALFsync: cfg.WALFsync, Written: ev.Cache().Written}, overrides, logger, reg)
	if err != nil {
		_ = tracker.Close()
		return nil, err
	}
	ing, err := ingest.New(ingest.Config{MaxInflightBytes: cfg.IngestMaxInflightBytes}, store, overrides, logger, reg)
	if err != nil {
		_ = tracker.Close()
		return nil, err
	}
	otlp, err := ingest.NewOTLP(ingest.OTLPConfig{ConvertDelta: cfg.OTLPConvertDelta}, ing, logger, reg)
	if err != nil {
		_ = tracker.Close()
		return nil, err
	}
	if cfg.DB == "" {
		cfg.DB = filepath.Join(cfg.DataDir, "catalog.db")
	}
	if cfg.SecretsKeyFile == "" {
		cfg.SecretsKeyFile = filepath.Join(cfg.DataDir, "secrets.key")
	}
	sealer, err := catalog.LoadSealer(cfg.SecretsKeyFile)
	if err != nil {
		_ = tracker.Close()
		return nil, err
	}
	cat, err := catalog.Open(context.Background(), cfg.DB)
	if err != nil {
		return nil, err
	}
	if cfg.Ruler.ExternalURL == "" {
		cfg.Ruler.ExternalURL = cfg.scheme() + "://" + cfg.Listen
	}
	am, err := alerting.New(alerting.Config{DataDir: cfg.DataDir, ExternalURL: cfg.Ruler.ExternalURL,
		PollInterval: cfg.AlertmanagerPollInterval, MaintenanceInterval: cfg.AlertmanagerMaintenanceInterval,
		Retention: cfg.AlertmanagerRetention, Limits: overrides, DenyReceiverNetworks: cfg.AlertmanagerDenyReceiverNetworks,
		AllowServerAWSCredentials: cfg.AlertmanagerAllowServerAWSCredentials},
		definitions{cat, sealer}, logger, reg)
	if err != nil {
		_ = cat.Close()
		return nil, err
	}
	// Alerting rules hand their alerts to the workspace's Alertmanager.
	rul, err := ruler.New(cfg.Ruler, store, ruler.CatalogNamespaces{Catalog: cat}, am, overrides, logger, reg)
	if err != nil {
		_ = cat.Close()
		return nil, err
	}
	q, err := query.New(query.Config{Version: EngineVersion, Revision: "orrery-" + Version}, ev, querySource{store}, rul, overrides, logger)
	if err != nil {
		_ = cat.Close()
		return nil, err
	}
	s := &Server{cfg: cfg, logger: logger, reg: reg, overrides: overrides, store: store, ingest: ing, otlp: otlp, query: q, catalog: cat, ruler: rul, alerting: am,
		queries: q, alertmanager: am, tracker: tracker, sealer: sealer}
	if err := s.finish(); err != nil {
		_ = cat.Close()
		return nil, err
	}
	s.control.SetAlertmanagerHook(s.alerting)
	return s, nil
}

// newCortexServer builds a server of the Cortex engine: ingest validates
// and limits remote write and forwards it, the query and Alertmanager APIs
// are proxied, rules and Alertmanager configurations are pushed to Cortex.
func newCortexServer(cfg ServerConfig, logger *slog.Logger) (*Server, error) {
	if !strings.HasPrefix(cfg.DB, "postgres://") && !strings.HasPrefix(cfg.DB, "postgresql://") {
		return nil, errors.New("--engine=cortex keeps no local state, so replicas must share the catalog: give --db postgres://...; the embedded SQLite catalog is refused in this mode")
	}
	if cfg.SecretsKeyFile == "" {
		return nil, errors.New("--engine=cortex needs --secrets-key-file, the same file on every replica sharing --db")
	}
	if cfg.Auth == "sigv4" && (cfg.AdminKeyID == "" || cfg.AdminSecret == "") {
		// A generated admin key would be written to one replica's disk,
		// and every replica (re)started on a fresh disk would make another.
		return nil, errors.New("--engine=cortex keeps no local state: set ORRERY_ADMIN_ACCESS_KEY_ID and ORRERY_ADMIN_SECRET_ACCESS_KEY, the same on every replica, for the admin key")
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	client, err := cortex.New(cortex.Config{URL: cfg.CortexURL}, reg)
	if err != nil {
		return nil, err
	}
	overrides, err := workspace.NewOverrides(cfg.Limits)
	if err != nil {
		return nil, err
	}
	if cfg.LimitsFile != "" {
		if err := overrides.LoadFile(cfg.LimitsFile); err != nil {
			return nil, err
		}
	}
	ing, err := ingest.New(ingest.Config{MaxInflightBytes: cfg.IngestMaxInflightBytes}, cortex.NewStorage(client), cortex.IngestLimits{LimitsSource: overrides}, logger, reg)
	if err != nil {
		return nil, err
	}
	otlp, err := ingest.NewOTLP(ingest.OTLPConfig{ConvertDelta: cfg.OTLPConvertDelta}, ing, logger, reg)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	sealer, err := catalog.LoadSealer(cfg.SecretsKeyFile)
	if err != nil {
		return nil, err
	}
	cat, err := catalog.Open(context.Background(), cfg.DB)
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, logger: logger, reg: reg, overrides: overrides, ingest: ing, otlp: otlp, catalog: cat, sealer: sealer,
		queries:      cortex.NewProxy(client, "query", "api/v1/", "/prometheus/api/v1/", logger).WithQueryTimeout(overrides),
		alertmanager: cortex.NewProxy(client, "alertmanager", "alertmanager/api/", "/alertmanager/api/", logger),
		cortex:       cortex.NewConfigs(client, ruler.CatalogNamespaces{Catalog: cat}, definitions{cat, sealer}, logger),
	}
	if err := s.finish(); err != nil {
		_ = cat.Close()
		return nil, err
	}
	s.control.SetAlertmanagerHook(s.cortex)
	return s, nil
}

// finish sets up what both engines share: authentication, the control
// plane, the workspaces' configurations and the HTTP server.
func (s *Server) finish() error {
	cfg, cat, logger, sealer := s.cfg, s.catalog, s.logger, s.sealer
	n, err := cat.SealAlertmanagerDefinitions(context.Background(), sealer)
	if err != nil {
		return err
	}
	if n > 0 {
		logger.Info("sealed alert manager definitions stored unsealed", "count", n)
	}
	if cfg.Auth == "sigv4" {
		if s.guard, err = newGuard(cfg, cat, sealer, logger); err != nil {
			return err
		}
	} else if cfg.Auth != "none" && cfg.Auth != "" {
		return fmt.Errorf("--auth %q: use sigv4 or none", cfg.Auth)
	}
	s.control, err = controlplane.New(controlplane.Config{Region: cfg.Region, AccountID: cfg.AccountID, EndpointURL: cfg.scheme() + "://" + cfg.Listen,
		Sealer: sealer, AllowServerAWSCredentials: cfg.AlertmanagerAllowServerAWSCredentials},
		cat, lifecycle{s}, logger)
	if err != nil {
		return err
	}
	uiCfg := cfg.UI
	uiCfg.Metrics = s.reg
	if s.ui, err = ui.New(uiCfg, cat, s.queries, s.alertmanager, logger, s.reg); err != nil {
		return err
	}
	if err := ui.EnsureAdmin(context.Background(), cat, cfg.DataDir, cfg.UIAdminPassword, os.Stderr); err != nil {
		return err
	}
	if err := s.applyConfigurations(context.Background()); err != nil {
		return err
	}
	s.http = newHTTPServer(s.routes(), cfg.HTTP, "main", s.reg)
	if s.tls, err = s.tlsConfig(); err != nil {
		return err
	}
	return nil
}

// newEvaluator returns the server-wide query evaluator, logging active
// queries to <data-dir>/queries.active as Prometheus does.
func newEvaluator(cfg ServerConfig, logger *slog.Logger, reg prometheus.Registerer) (*query.Evaluator, *promql.ActiveQueryTracker, error) {
	qc := cfg.Query
	if err := qc.Validate(); err != nil {
		return nil, nil, err
	}
	if qc.MaxConcurrent == 0 {
		qc.MaxConcurrent = 20
	}
	tracker, err := promql.NewActiveQueryTracker(cfg.DataDir, qc.MaxConcurrent, logger.With("component", "query"))
	if err != nil {
		return nil, nil, err
	}
	// The log holds every workspace's queries: readable by the server only.
	if err := os.Chmod(filepath.Join(cfg.DataDir, "queries.active"), 0o600); err != nil {
		_ = tracker.Close()
		return nil, nil, err
	}
	ev, err := query.NewEvaluator(qc, tracker, logger, reg)
	if err != nil {
		_ = tracker.Close()
		return nil, nil, err
	}
	return ev, tracker, nil
}

// querySource adapts the store to the query API's Source.
type querySource struct{ s *orstorage.Store }

func (q querySource) Queryable(id workspace.ID) storage.SampleAndChunkQueryable {
	return q.s.Queryable(id)
}
func (q querySource) ExemplarQueryable(id workspace.ID) storage.ExemplarQueryable {
	return q.s.ExemplarQueryable(id)
}
func (q querySource) Admin(id workspace.ID) query.Admin { return q.s.Admin(id) }
func (q querySource) Metadata(id workspace.ID, metric string, limit, perMetric int) (map[string][]metadata.Metadata, error) {
	return q.s.Metadata(id, metric, limit, perMetric)
}

var (
	_ controlplane.AlertmanagerHook = (*alerting.Manager)(nil)
	_ ruler.AlertSender             = (*alerting.Manager)(nil)
)

// definitions gives the alerting manager the catalog's alert manager
// definitions of active workspaces.
type definitions struct {
	cat    *catalog.Catalog
	sealer *catalog.Sealer
}

func (d definitions) AlertmanagerDefinitions(ctx context.Context) ([]workspace.ID, error) {
	return d.cat.ActiveAlertmanagerDefinitions(ctx)
}

func (d definitions) AlertmanagerDefinition(ctx context.Context, id workspace.ID) ([]byte, bool, error) {
	ws, err := d.cat.GetWorkspace(ctx, id)
	if errors.Is(err, catalog.ErrNotFound) || (err == nil && ws.Status != catalog.StatusActive) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	def, err := d.cat.AlertmanagerDefinition(ctx, d.sealer, id)
	if errors.Is(err, catalog.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	return def.Data, true, nil
}

// lifecycle deletes a workspace's data from every component.
type lifecycle struct{ s *Server }

func (l lifecycle) DeleteWorkspaceData(ctx context.Context, id workspace.ID) error {
	if l.s.cortex != nil {
		l.s.ingest.Forget(id)
		l.s.otlp.Forget(id)
		return l.s.cortex.DeleteTenant(ctx, id)
	}
	l.s.ruler.Forget(id)
	l.s.ingest.Forget(id)
	l.s.otlp.Forget(id)
	l.s.query.Forget(id)
	if err := l.s.alerting.Delete(id); err != nil {
		return err
	}
	return l.s.store.Delete(ctx, id)
}

// SyncRules applies a workspace's changed rule groups namespaces.
func (l lifecycle) SyncRules(ctx context.Context, id workspace.ID) error {
	if l.s.cortex != nil {
		return l.s.cortex.SyncRules(ctx, id)
	}
	return l.s.ruler.Sync(ctx, id)
}

// Limits gives the control plane the workspace's rule quotas.
func (l lifecycle) Limits(id workspace.ID) workspace.Limits { return l.s.overrides.Limits(id) }

var (
	_ controlplane.RulesSyncer = lifecycle{}
	_ workspace.LimitsSource   = lifecycle{}
)

// adminPolicy allows everything.
const adminPolicy = `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}`

// newGuard sets up SigV4 verification against the catalog's keys, creating
// the admin key at first start: from the configuration if given, otherwise
// generated, printed once and written to <data-dir>/admin-key (mode 0600).
func newGuard(cfg ServerConfig, cat *catalog.Catalog, sealer *catalog.Sealer, logger *slog.Logger) (*auth.Guard, error) {
	ctx := context.Background()
	marker := filepath.Join(cfg.DataDir, "admin-key")
	exists := false
	if cfg.AdminKeyID != "" {
		// Another replica sharing the catalog may have created it.
		_, err := cat.AccessKey(ctx, sealer, cfg.AdminKeyID)
		exists = err == nil
	}
	if _, err := os.Stat(marker); errors.Is(err, os.ErrNotExist) && !exists {
		k := catalog.AccessKey{ID: cfg.AdminKeyID, Secret: cfg.AdminSecret, Policy: adminPolicy, CreatedAt: time.Now()}
		generated := k.ID == "" || k.Secret == ""
		if generated {
			k.ID, k.Secret = catalog.NewAccessKeyID(), catalog.NewSecret()
		}
		if err := cat.CreateAccessKey(ctx, sealer, k); err != nil {
			// Another replica starting at the same time may have won.
			if _, lerr := cat.AccessKey(ctx, sealer, k.ID); generated || lerr != nil {
				return nil, fmt.Errorf("create admin key: %w", err)
			}
		}
		content := "ORRERY_ADMIN_ACCESS_KEY_ID=" + k.ID + "\n"
		if generated {
			content += "ORRERY_ADMIN_SECRET_ACCESS_KEY=" + k.Secret + "\n"
			fmt.Fprintf(os.Stderr, "orrery: created the admin access key (shown once; also in %s):\n  %s\n", marker, strings.ReplaceAll(strings.TrimSpace(content), "\n", "\n  "))
		}
		if err := os.WriteFile(marker, []byte(content), 0o600); err != nil {
			return nil, fmt.Errorf("write %s: %w", marker, err)
		}
	}
	lookup := func(ctx context.Context, id string) (auth.Key, bool, error) {
		k, err := cat.AccessKey(ctx, sealer, id)
		if errors.Is(err, catalog.ErrNotFound) {
			return auth.Key{}, false, nil
		}
		if err != nil {
			return auth.Key{}, false, err
		}
		p, err := policy.Parse([]byte(k.Policy))
		if err != nil {
			return auth.Key{}, false, fmt.Errorf("policy of key %s: %w", id, err)
		}
		return auth.Key{Secret: k.Secret, Policy: p, Revoked: k.Revoked}, true, nil
	}
	tokens := func(ctx context.Context, id string) (auth.Token, bool, error) {
		t, err := cat.APIToken(ctx, id)
		if errors.Is(err, catalog.ErrNotFound) {
			return auth.Token{}, false, nil
		}
		if err != nil {
			return auth.Token{}, false, err
		}
		p, err := policy.Parse([]byte(t.Policy))
		if err != nil {
			return auth.Token{}, false, fmt.Errorf("policy of token %s: %w", id, err)
		}
		return auth.Token{SecretHash: t.SecretHash, Policy: p, Revoked: t.Revoked}, true, nil
	}
	return auth.NewGuard(auth.GuardConfig{Service: "aps", Region: cfg.Region, MaxPresignedLifetime: cfg.MaxPresignedLifetime}, lookup, tokens, logger), nil
}

func (s *Server) arnPrefix() string {
	return fmt.Sprintf("arn:aws:aps:%s:%s:workspace/", s.cfg.Region, s.cfg.AccountID)
}

// ApplyConfiguration sets a workspace's retention and out-of-order window
// overrides from its control-plane configuration.
func (l lifecycle) ApplyConfiguration(id workspace.ID, cfg catalog.Configuration) error {
	return l.s.overrides.Set(id, withConfiguration(l.s.overrides.Limits(id), cfg))
}

// withConfiguration returns a workspace's limits (defaults and limits
// file) with its control-plane configuration applied over them. What the
// configuration sets wins; what it leaves unset keeps lim's value. Once set
// through the API a value can be changed but not unset, so every replica
// computes the same limits from the catalog.
func withConfiguration(lim workspace.Limits, cfg catalog.Configuration) workspace.Limits {
	if cfg.RetentionDays > 0 {
		lim.RetentionPeriod = model.Duration(time.Duration(cfg.RetentionDays) * 24 * time.Hour)
	}
	if cfg.OutOfOrderWindowSeconds >= 0 {
		lim.OutOfOrderWindow = model.Duration(time.Duration(cfg.OutOfOrderWindowSeconds) * time.Second)
	}
	lim.LabelSetLimits = cfg.LabelSetLimits
	return lim
}

// DefaultConfiguration reports the server-wide retention and window.
func (l lifecycle) DefaultConfiguration() (int, int) {
	def := l.s.overrides.Defaults()
	return int(time.Duration(def.RetentionPeriod) / (24 * time.Hour)), int(time.Duration(def.OutOfOrderWindow) / time.Second)
}

// applyConfigurations loads every workspace's configuration from the
// catalog into the limit overrides, at start.
func (s *Server) applyConfigurations(ctx context.Context) error {
	var after workspace.ID
	for {
		page, err := s.catalog.ListWorkspaces(ctx, "", after, 500)
		if err != nil {
			return err
		}
		if len(page) == 0 {
			return nil
		}
		for _, ws := range page {
			if ws.RetentionDays > 0 || ws.OutOfOrderWindowSeconds >= 0 || len(ws.LabelSetLimits) > 0 {
				if err := (lifecycle{s}).ApplyConfiguration(ws.ID, ws.Configuration); err != nil {
					return fmt.Errorf("configuration of workspace %s: %w", ws.ID, err)
				}
			}
		}
		after = page[len(page)-1].ID
	}
}

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	control := http.NewServeMux()
	s.control.Register(control)
	s.control.Keys(s.sealer).Register(control)
	s.ui.RegisterAdmin(control)
	s.ui.SetRules(control) // The rules editor of the UI writes through the same API.
	guarded := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		what := auth.ControlPlaneAction(r.Method, r.URL.Path, s.arnPrefix())
		what.MaxBodyBytes = controlPlaneMaxBody
		if !limitBody(w, r, what.MaxBodyBytes) {
			return
		}
		who := "anonymous"
		if s.guard != nil {
			p, err := s.guard.Authorize(r, what)
			if err != nil {
				s.audit(r, "", what, http.StatusForbidden)
				auth.WriteError(w, err)
				return
			}
			who = p.ID
			r = r.WithContext(auth.NewContext(r.Context(), p))
		}
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		ctx, note := auth.WithAudit(r.Context())
		control.ServeHTTP(sw, r.WithContext(ctx))
		what.Resource = note.Resource(what.Resource)
		s.audit(r, who, what, sw.status)
	})
	for _, p := range []string{"/workspaces", "/workspaces/{id}", "/workspaces/{id}/alias", "/workspaces/{id}/configuration",
		"/workspaces/{id}/rulegroupsnamespaces", "/workspaces/{id}/rulegroupsnamespaces/{name}",
		"/workspaces/{id}/alertmanager/definition", "/workspaces/{id}/logging", "/tags/",
		"/orrery/v1/accesskeys", "/orrery/v1/accesskeys/{id}", "/orrery/v1/tokens", "/orrery/v1/tokens/{id}",
		"/orrery/v1/users", "/orrery/v1/users/{name}", "/orrery/v1/workspaces/{id}/dashboards"} {
		mux.Handle(p, guarded)
	}
	mux.HandleFunc("GET /-/healthy", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = fmt.Fprintln(w, "Orrery is Healthy.")
	})
	mux.HandleFunc("GET /-/ready", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = fmt.Fprintln(w, "Orrery is Ready.")
	})
	mux.Handle("/ui/", bodyLimited(s.ui, controlPlaneMaxBody))
	mux.Handle("GET /{$}", http.RedirectHandler("/ui/", http.StatusFound))
	mux.Handle("GET /debug/pprof/", s.operator("orrery:GetProfile", http.HandlerFunc(pprof.Index)))
	mux.Handle("GET /debug/pprof/profile", s.operator("orrery:GetProfile", http.HandlerFunc(pprof.Profile)))
	mux.Handle("GET /debug/pprof/trace", s.operator("orrery:GetProfile", http.HandlerFunc(pprof.Trace)))
	mux.Handle("GET /debug/pprof/symbol", s.operator("orrery:GetProfile", http.HandlerFunc(pprof.Symbol)))
	mux.Handle("GET /metrics", s.operator("orrery:GetMetrics", promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{Registry: s.reg})))
	mux.Handle("/workspaces/{id}/api/v1/remote_write", s.withWorkspace(s.ingest))
	mux.Handle("/workspaces/{id}/api/v1/otlp/v1/metrics", s.withWorkspace(s.otlp))
	mux.Handle("/workspaces/{id}/api/v1/", s.withWorkspace(s.queries))
	mux.Handle("/workspaces/{id}/alertmanager/api/", s.withWorkspace(s.alertmanager))
	return mux
}

// withWorkspace resolves the workspace a request names and puts its ID into
// the request context. It is the only place requests get a workspace.
// Until workspaces have a control plane, any well-formed ID names a
// workspace, created on first write.
func (s *Server) withWorkspace(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := workspace.ParseID(r.PathValue("id"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		}
		what := auth.Request{Action: auth.DataPlaneAction(r.Method, r.URL.Path), Resource: s.arnPrefix() + id.String(),
			MaxBodyBytes: s.maxBody(r, id)}
		what.SignedBody = auth.DataPlaneWrite(what.Action)
		if !limitBody(w, r, what.MaxBodyBytes) {
			return
		}
		who := "anonymous"
		if s.guard != nil {
			if who, err = s.guard.Check(r, what); err != nil {
				auth.WriteError(w, err)
				return
			}
			// With authentication on, only workspaces made through the
			// control plane exist.
			ws, err := s.catalog.GetWorkspace(r.Context(), id)
			if err != nil || ws.Status != catalog.StatusActive {
				w.Header().Set("X-Amzn-ErrorType", "ResourceNotFoundException")
				http.Error(w, fmt.Sprintf("workspace %s does not exist or is being deleted", id), http.StatusNotFound)
				return
			}
		}
		r = r.WithContext(workspace.NewContext(r.Context(), id))
		// Audited: the admin API, and silences made or expired.
		audited := strings.Contains(r.URL.Path, "/api/v1/admin/") ||
			(strings.Contains(r.URL.Path, "/alertmanager/api/v2/silence") && r.Method != http.MethodGet)
		if !audited {
			next.ServeHTTP(w, r)
			return
		}
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(sw, r)
		s.audit(r, who, what, sw.status)
	})
}

// uiURL is the web UI's address, for the start log.
func (s *Server) uiURL() string {
	scheme := "http"
	if s.cfg.TLSCertFile != "" {
		scheme = "https"
	}
	return scheme + "://" + s.ln.Addr().String() + "/ui/"
}

// Addr returns the address the server listens on, once Start returned.
func (s *Server) Addr() string {
	if s.ln == nil {
		return ""
	}
	return s.ln.Addr().String()
}

// Start listens on the configured address.
func (s *Server) Start() error {
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", s.cfg.Listen, err)
	}
	if s.tls != nil {
		ln = tls.NewListener(ln, s.tls)
	}
	s.ln = ln
	return nil
}

// Run serves until ctx is done, then shuts down: it stops accepting
// requests, lets in-flight ones finish, and closes every workspace's TSDB.
func (s *Server) Run(ctx context.Context) error {
	if s.ln == nil {
		if err := s.Start(); err != nil {
			return err
		}
	}
	if s.guard == nil {
		s.logger.Warn("authentication is off (--auth=none): anyone who reaches this port reads and writes every workspace; use --auth=sigv4 outside development")
	}
	errc := make(chan error, 1)
	if s.cortex != nil {
		// The overrides file is written before the first request is
		// answered, so that a startup probe on /-/ready (a Kubernetes
		// sidecar started before Cortex) means the file exists: Cortex
		// refuses to start without its runtime_config.file.
		written := s.writeCortexOverrides(ctx, nil)
		s.logger.Info("orrery server listening", "addr", s.ln.Addr().String(), "ui", s.uiURL(), "engine", "cortex", "cortex_url", s.cfg.CortexURL, "auth", s.cfg.Auth)
		go func() { errc <- s.http.Serve(s.ln) }()
		return s.runCortex(ctx, errc, written)
	}
	s.logger.Info("orrery server listening", "addr", s.ln.Addr().String(), "ui", s.uiURL(), "data_dir", s.cfg.DataDir, "auth", s.cfg.Auth)
	go func() { errc <- s.http.Serve(s.ln) }()
	alertingCtx, stopAlerting := context.WithCancel(context.Background())
	alertingDone := make(chan struct{})
	go func() {
		defer close(alertingDone)
		_ = s.alerting.Run(alertingCtx)
	}()
	rulerCtx, stopRuler := context.WithCancel(context.Background())
	defer stopRuler()
	rulerDone := make(chan error, 1)
	go func() { rulerDone <- s.ruler.Run(rulerCtx) }()

	every := 30 * time.Second
	if s.cfg.IdleTimeout > 0 && s.cfg.IdleTimeout/2 < every {
		every = max(s.cfg.IdleTimeout/2, 100*time.Millisecond)
	}
	housekeeping := time.NewTicker(every)
	defer housekeeping.Stop()
	sweep := time.NewTicker(15 * time.Minute)
	defer sweep.Stop()
	var serveErr error
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case err := <-errc:
			serveErr = fmt.Errorf("serve http: %w", err)
			break loop
		case <-housekeeping.C:
			s.store.CloseIdle()
			if err := s.store.FlushMetadata(); err != nil {
				s.logger.Warn("flush metadata; will retry", "err", err)
			}
		case <-sweep.C:
			s.ingest.Sweep()
		}
	}
	s.logger.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	if err := s.http.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		s.logger.Warn("http shutdown did not finish; closing storage anyway", "err", err)
	}
	// Rules stop before storage closes: no evaluation writes after it.
	stopRuler()
	if err := <-rulerDone; err != nil {
		s.logger.Warn("stop ruler", "err", err)
	}
	stopAlerting()
	<-alertingDone
	s.alerting.Stop()
	if err := errors.Join(s.store.Close(), s.catalog.Close(), s.tracker.Close()); err != nil {
		return errors.Join(serveErr, fmt.Errorf("close storage: %w", err))
	}
	s.logger.Info("shutdown complete")
	if serveErr != nil && !strings.Contains(serveErr.Error(), http.ErrServerClosed.Error()) {
		return serveErr
	}
	return nil
}

// CortexRuntimeConfig renders Cortex's runtime configuration overrides for
// every active workspace of the catalog: its limits (defaults, the limits
// file, its control-plane configuration) mapped by cortex.TenantLimits.
// Cortex reads the file every runtime_config.period; write it where Cortex
// reads it whenever workspaces or their configurations change.
func (s *Server) CortexRuntimeConfig(ctx context.Context) ([]byte, error) {
	tenants := map[workspace.ID]workspace.Limits{}
	var after workspace.ID
	for {
		page, err := s.catalog.ListWorkspaces(ctx, "", after, 500)
		if err != nil {
			return nil, err
		}
		if len(page) == 0 {
			break
		}
		for _, ws := range page {
			if ws.Status == catalog.StatusActive {
				// From the catalog, not from what this replica has
				// applied: another replica may have changed it.
				tenants[ws.ID] = withConfiguration(s.overrides.Limits(ws.ID), ws.Configuration)
			}
		}
		after = page[len(page)-1].ID
	}
	return cortex.RuntimeConfig(tenants)
}

// runCortex serves with the Cortex engine until ctx is done, then lets
// in-flight requests finish. There is nothing local to close but the
// catalog's connections. written is the content of the overrides file
// already written, if any.
func (s *Server) runCortex(ctx context.Context, errc <-chan error, written []byte) error {
	sweep := time.NewTicker(15 * time.Minute)
	defer sweep.Stop()
	every := s.cfg.Ruler.PollInterval
	if every <= 0 {
		every = 30 * time.Second
	}
	resync := time.NewTicker(every)
	defer resync.Stop()
	reconcileCtx, stopReconcile := context.WithCancel(context.Background())
	defer stopReconcile()
	reconciling := make(chan struct{}, 1) // At most one pass at a time.
	var serveErr error
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case err := <-errc:
			serveErr = fmt.Errorf("serve http: %w", err)
			break loop
		case <-sweep.C:
			s.ingest.Sweep()
		case <-resync.C:
			written = s.writeCortexOverrides(ctx, written)
			select {
			case reconciling <- struct{}{}:
				go func() {
					defer func() { <-reconciling }()
					s.reconcileCortex(reconcileCtx)
				}()
			default:
			}
		}
	}
	stopReconcile()
	s.logger.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	if err := s.http.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		s.logger.Warn("http shutdown did not finish; closing the catalog anyway", "err", err)
	}
	if err := s.catalog.Close(); err != nil {
		return errors.Join(serveErr, fmt.Errorf("close catalog: %w", err))
	}
	s.logger.Info("shutdown complete")
	if serveErr != nil && !strings.Contains(serveErr.Error(), http.ErrServerClosed.Error()) {
		return serveErr
	}
	return nil
}

// reconcileCortex pushes every workspace's rule groups and alert manager
// definition to Cortex where Cortex differs from the catalog, so that a
// change whose immediate push failed applies within a poll interval. Every
// replica does it; the passes are idempotent, and cost one GET per
// workspace when nothing changed.
func (s *Server) reconcileCortex(ctx context.Context) {
	rules, err := s.catalog.RuleWorkspaces(ctx)
	if err != nil {
		s.logger.Warn("list workspaces with rules; cortex resync skipped until the next poll", "err", err)
		return
	}
	ams, err := s.catalog.ActiveAlertmanagerDefinitions(ctx)
	if err != nil {
		s.logger.Warn("list alert manager definitions; cortex resync skipped until the next poll", "err", err)
		return
	}
	if err := s.cortex.Reconcile(ctx, rules, ams); err != nil && ctx.Err() == nil {
		s.logger.Warn("resync rules and alert managers to cortex; retrying at the next poll", "err", err)
	}
}

// audit logs a mutating call: who made it (empty when authentication
// failed), the action, the resource and the result.
func (s *Server) audit(r *http.Request, who string, what auth.Request, status int) {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		return
	}
	result := "ok"
	if status >= 300 {
		result = "error " + strconv.Itoa(status)
	}
	if who == "" {
		who = "unauthenticated"
	}
	s.logger.Info("audit", "principal", who, "action", what.Action, "resource", what.Resource, "result", result, "remote", r.RemoteAddr)
}

// statusWriter records the status code a handler answered with.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

// writeCortexOverrides writes Cortex's runtime configuration (every
// workspace's limits as per-tenant overrides) to CortexOverridesFile, when
// set and when it changed since last, atomically: Cortex re-reads the file
// every runtime_config.period. It returns what the file now holds.
func (s *Server) writeCortexOverrides(ctx context.Context, last []byte) []byte {
	if s.cfg.CortexOverridesFile == "" {
		return last
	}
	b, err := s.CortexRuntimeConfig(ctx)
	if err != nil {
		s.logger.Warn("render Cortex overrides; the file keeps its previous content", "err", err)
		return last
	}
	if bytes.Equal(b, last) {
		return last
	}
	tmp := s.cfg.CortexOverridesFile + ".tmp"
	// Cortex, often another user, reads it: it holds limits, no secret.
	if err := errors.Join(os.WriteFile(tmp, b, 0o644), os.Chmod(tmp, 0o644)); err != nil {
		s.logger.Warn("write Cortex overrides; will retry", "file", s.cfg.CortexOverridesFile, "err", err)
		return last
	}
	if err := os.Rename(tmp, s.cfg.CortexOverridesFile); err != nil {
		s.logger.Warn("write Cortex overrides; will retry", "file", s.cfg.CortexOverridesFile, "err", err)
		return last
	}
	s.logger.Info("wrote Cortex overrides", "file", s.cfg.CortexOverridesFile, "bytes", len(b))
	return b
}
