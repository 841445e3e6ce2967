package app

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
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
	"github.com/orrery-dev/orrery/internal/querylog"
	"github.com/orrery-dev/orrery/internal/ruler"
	"github.com/orrery-dev/orrery/internal/scraper"
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
	Listen     string
	DataDir    string
	LimitsFile string
	// Storage configures the embedded engine's TSDBs; its Dir is DataDir.
	Storage orstorage.Config
	// Ingest configures remote write, OTLP that of OTLP ingestion.
	Ingest ingest.Config
	OTLP   ingest.OTLPConfig
	// QueryLog bounds the query logs of workspaces with a query logging
	// configuration; its Dir is <DataDir>/querylogs.
	QueryLog querylog.Config
	// Scraper configures the managed scrapers the server runs.
	Scraper scraper.Config
	// Limits are the defaults for workspaces without overrides.
	Limits workspace.Limits
	// ShutdownTimeout bounds how long in-flight requests may finish.
	ShutdownTimeout time.Duration
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
	// Alerting configures the workspaces' Alertmanagers; its DataDir,
	// ExternalURL and Limits are the server's.
	Alerting alerting.Config
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
	// AuthCacheTTL is how long access keys, tokens and workspaces' status
	// are remembered (auth.Caches); 0 looks them up on every request.
	// What another replica revokes or deletes holds here within it.
	AuthCacheTTL time.Duration
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
	catalog   *catalog.Catalog
	sealer    *catalog.Sealer
	engine    engine
	ingest    *ingest.Handler
	otlp      *ingest.OTLP
	control   *controlplane.API
	scrapers  *scraper.Runner
	guard     *auth.Guard
	caches    *auth.Caches // nil: no caching.
	ui        *ui.Handler
	qlog      *querylog.Log // the embedded engine's; nil with Cortex.
	// reloaded tells the Cortex engine's sync service to rewrite the
	// overrides file at once, after the limits file was reloaded.
	reloaded chan struct{}
	// replica names this process as the holder of catalog leases.
	replica string
	http    *http.Server
	tls     *tls.Config // nil: plain HTTP.
	ln      net.Listener
}

// NewServer builds a server: the catalog, the engine (--engine), ingest,
// authentication, the control plane and the web UI. It opens no workspace
// and starts no goroutine; on error it has closed what it opened.
func NewServer(cfg ServerConfig, logger *slog.Logger) (*Server, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.ShutdownTimeout == 0 {
		cfg.ShutdownTimeout = 30 * time.Second
	}
	switch cfg.Engine {
	case "", "embedded":
		if cfg.DB == "" {
			cfg.DB = filepath.Join(cfg.DataDir, "catalog.db")
		}
		if cfg.SecretsKeyFile == "" {
			cfg.SecretsKeyFile = filepath.Join(cfg.DataDir, "secrets.key")
		}
	case "cortex":
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
	default:
		return nil, fmt.Errorf("--engine %q: use embedded or cortex", cfg.Engine)
	}
	if cfg.Ruler.ExternalURL == "" {
		cfg.Ruler.ExternalURL = cfg.scheme() + "://" + cfg.Listen
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
	sealer, err := catalog.LoadSealer(cfg.SecretsKeyFile)
	if err != nil {
		return nil, err
	}
	cat, err := catalog.Open(context.Background(), cfg.DB)
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, logger: logger, reg: reg, overrides: overrides, catalog: cat, sealer: sealer, reloaded: make(chan struct{}, 1),
		replica: newReplicaID()}
	if err := s.build(); err != nil {
		if s.engine != nil {
			err = errors.Join(err, stopServices(startedNothing(s.engine.services()), nil))
		}
		return nil, errors.Join(err, cat.Close())
	}
	return s, nil
}

// newReplicaID names this process among the replicas sharing the
// catalog: the host and pid, for whoever reads the leases table, and
// random bits, since containers often share a pid and may share a host
// name, and two processes holding one id would both run its leases.
func newReplicaID() string {
	host, _ := os.Hostname()
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), rand.Text()[:8])
}

// startedNothing returns services as if started, without running them,
// to release what they hold.
func startedNothing(svcs []service) []started {
	out := make([]started, len(svcs))
	for i, svc := range svcs {
		svc.run = nil
		out[i] = started{service: svc, done: make(chan error, 1)}
		out[i].done <- nil
	}
	return out
}

// build makes the engine and what both engines share: ingest,
// authentication, the control plane, the workspaces' configurations and
// the HTTP server.
func (s *Server) build() error {
	var err error
	if s.cfg.Engine == "cortex" {
		s.engine, err = newCortexEngine(s)
	} else {
		s.engine, err = newEmbedded(s)
	}
	if err != nil {
		s.engine = nil
		return err
	}
	if s.ingest, err = s.engine.ingest(s.cfg.Ingest, s); err != nil {
		return err
	}
	if s.otlp, err = ingest.NewOTLP(s.cfg.OTLP, s.ingest, s.logger, s.reg); err != nil {
		return err
	}
	return s.finish()
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
		s.caches = auth.NewCaches(cfg.AuthCacheTTL, nil, s.reg)
		if c := s.caches; c != nil {
			// Revocations and deletions made through this replica hold for
			// its next request.
			cat.OnChange(func(ch catalog.Change) {
				switch ch.Kind {
				case catalog.AccessKeyChanged:
					c.Keys.Forget(ch.ID)
				case catalog.APITokenChanged:
					c.Tokens.Forget(ch.ID)
				case catalog.WorkspaceChanged:
					c.Workspaces.Forget(ch.ID)
					c.Policies.Forget(ch.ID)
				case catalog.ResourcePolicyChanged:
					c.Policies.Forget(ch.ID)
				}
			})
		}
		if s.guard, err = newGuard(cfg, cat, sealer, s.caches, logger); err != nil {
			return err
		}
	} else if cfg.Auth != "none" && cfg.Auth != "" {
		return fmt.Errorf("--auth %q: use sigv4 or none", cfg.Auth)
	}
	s.control, err = controlplane.New(controlplane.Config{Region: cfg.Region, AccountID: cfg.AccountID, EndpointURL: cfg.scheme() + "://" + cfg.Listen,
		Sealer: sealer, AllowServerAWSCredentials: cfg.Alerting.AllowServerAWSCredentials,
		MaxScrapers: cfg.Scraper.MaxScrapers, MaxScraperTargets: cfg.Scraper.MaxTargets, DetectorsChanged: s.engine.detectorsChanged},
		cat, lifecycle{s}, s.overrides, logger)
	if err != nil {
		return err
	}
	// Scrapers write through the remote write handler, as a client
	// would, without its authentication: the server scrapes for the
	// scraper's owner, who was authorized to create it.
	scfg := cfg.Scraper
	scfg.Replica = s.replica
	if s.scrapers, err = scraper.New(scfg, cat, s.ingest, logger, s.reg); err != nil {
		return err
	}
	cat.OnChange(func(ch catalog.Change) {
		if ch.Kind == catalog.ScraperChanged || ch.Kind == catalog.WorkspaceChanged {
			s.scrapers.Notify()
		}
	})
	uiCfg := cfg.UI
	uiCfg.Metrics = s.reg
	if s.ui, err = ui.New(uiCfg, cat, s.engine.queries(), s.engine.alertmanager(), logger, s.reg); err != nil {
		return err
	}
	// The UI's rules editor writes through the control plane's own
	// handlers of the rule groups namespace API, after checking its user.
	rules := http.NewServeMux()
	for _, r := range s.control.Routes() {
		if strings.Contains(r.Pattern, "/rulegroupsnamespaces") {
			rules.Handle(r.Pattern, r.Handler)
		}
	}
	s.ui.SetRules(rules)
	if s.qlog != nil { // A nil *querylog.Log in the interface would not be nil.
		s.ui.SetSlowQueries(s.qlog)
	}
	s.ui.SetScrapers(s.scrapers)
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
	_ query.Source              = querySource{}
	_ ruler.AlertSender         = (*alerting.Manager)(nil)
	_ ingest.Storage            = (*orstorage.Store)(nil)
	_ ingest.Storage            = (*cortex.Storage)(nil)
	_ alerting.DefinitionSource = definitions{}
	_ cortex.Definitions        = definitions{}
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

// lifecycle is the control plane's view of the server: it deletes a
// workspace's data from every component and applies configurations, rules
// and alert manager definitions.
type lifecycle struct{ s *Server }

var _ controlplane.Lifecycle = lifecycle{}

func (l lifecycle) DeleteWorkspaceData(ctx context.Context, id workspace.ID) error {
	l.s.overrides.Forget(id)
	l.s.ingest.Forget(id)
	l.s.otlp.Forget(id)
	return l.s.engine.deleteWorkspace(ctx, id)
}

// SyncRules applies a workspace's changed rule groups namespaces.
func (l lifecycle) SyncRules(ctx context.Context, id workspace.ID) error {
	return l.s.engine.syncRules(ctx, id)
}

// SyncAlertmanager applies a workspace's changed alert manager definition.
func (l lifecycle) SyncAlertmanager(ctx context.Context, id workspace.ID) error {
	return l.s.engine.syncAlertmanager(ctx, id)
}

// adminPolicy allows everything.
const adminPolicy = `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}`

// newGuard sets up SigV4 verification against the catalog's keys, creating
// the admin key at first start: from the configuration if given, otherwise
// generated, printed once and written to <data-dir>/admin-key (mode 0600).
func newGuard(cfg ServerConfig, cat *catalog.Catalog, sealer *catalog.Sealer, caches *auth.Caches, logger *slog.Logger) (*auth.Guard, error) {
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
	policies := func(ctx context.Context, id string) (*policy.Policy, bool, error) {
		rp, err := cat.ResourcePolicy(ctx, workspace.ID(id))
		if errors.Is(err, catalog.ErrNotFound) {
			// Cache "no policy" only for a workspace that exists.
			_, err := cat.GetWorkspace(ctx, workspace.ID(id))
			if errors.Is(err, catalog.ErrNotFound) {
				return nil, false, nil
			}
			return nil, err == nil, err
		}
		if err != nil {
			return nil, false, err
		}
		p, err := policy.ParseResource([]byte(rp.Document))
		if err != nil {
			return nil, false, fmt.Errorf("resource policy of workspace %s: %w", id, err)
		}
		return p, true, nil
	}
	return auth.NewGuard(auth.GuardConfig{Service: "aps", Region: cfg.Region, MaxPresignedLifetime: cfg.MaxPresignedLifetime, Cache: caches,
		AccountID: cfg.AccountID, ResourcePolicies: policies}, lookup, tokens, logger), nil
}

func (s *Server) arnPrefix() string {
	return fmt.Sprintf("arn:aws:aps:%s:%s:workspace/", s.cfg.Region, s.cfg.AccountID)
}

// ApplyConfiguration sets a workspace's configuration, the layer of its
// limits over the defaults and the limits file (workspace.Merge).
func (l lifecycle) ApplyConfiguration(id workspace.ID, cfg catalog.Configuration) error {
	return l.s.overrides.Configure(id, cfg)
}

// ErrNoLimitsFile is returned by ReloadLimits when the server has no
// --limits-file.
var ErrNoLimitsFile = errors.New("no --limits-file to reload")

// ReloadLimits reads the limits file again and applies it to every
// workspace at once, over the defaults and under the workspaces'
// configurations (workspace.Merge); with the Cortex engine the overrides
// file is rewritten too. On error the limits in force stay as they were.
// It is safe to call concurrently with requests.
func (s *Server) ReloadLimits() error {
	if s.cfg.LimitsFile == "" {
		return ErrNoLimitsFile
	}
	if err := s.overrides.LoadFile(s.cfg.LimitsFile); err != nil {
		return err
	}
	if s.reloaded != nil {
		select {
		case s.reloaded <- struct{}{}:
		default:
		}
	}
	s.logger.Info("reloaded limits file", "file", s.cfg.LimitsFile)
	return nil
}

// serveReload answers POST /-/reload, as Prometheus does: 200 once the
// limits file is reloaded, 400 without one, 500 if it cannot be applied.
func (s *Server) serveReload(w http.ResponseWriter, _ *http.Request) {
	err := s.ReloadLimits()
	switch {
	case errors.Is(err, ErrNoLimitsFile):
		http.Error(w, err.Error(), http.StatusBadRequest)
	case err != nil:
		s.logger.Warn("reload limits file; the previous limits stay in force", "err", err)
		http.Error(w, "reload limits file: "+err.Error(), http.StatusInternalServerError)
	default:
		_, _ = fmt.Fprintln(w, "Reloaded the limits file.")
	}
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

// workspaceStatus looks up a workspace's status in the catalog; found is
// false for a workspace that does not exist.
func (s *Server) workspaceStatus(ctx context.Context, id string) (string, bool, error) {
	ws, err := s.catalog.GetWorkspace(ctx, workspace.ID(id))
	if errors.Is(err, catalog.ErrNotFound) {
		return "", false, nil
	}
	if err != nil {
		return "", false, err
	}
	return ws.Status, true, nil
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

// Run starts the engine's services in order, serves until ctx is done or
// serving fails, then shuts down: it stops accepting requests, lets
// in-flight ones finish, and stops the services in the reverse order (the
// embedded engine's ruler before its Alertmanagers and storage, which
// closes every workspace's TSDB), then closes the catalog.
func (s *Server) Run(ctx context.Context) error {
	if s.ln == nil {
		if err := s.Start(); err != nil {
			return err
		}
	}
	if s.guard == nil {
		s.logger.Warn("authentication is off (--auth=none): anyone who reaches this port reads and writes every workspace; use --auth=sigv4 outside development")
	}
	svcs := append(s.engine.services(), service{name: "ingest", run: every(15*time.Minute, s.ingest.Sweep)},
		service{name: "scrapers", run: s.scrapers.Run})
	running, err := startServices(ctx, svcs)
	if err != nil {
		return errors.Join(err, s.catalog.Close())
	}
	if s.cfg.Engine == "cortex" {
		s.logger.Info("orrery server listening", "addr", s.ln.Addr().String(), "ui", s.uiURL(), "engine", "cortex", "cortex_url", s.cfg.CortexURL, "auth", s.cfg.Auth)
	} else {
		s.logger.Info("orrery server listening", "addr", s.ln.Addr().String(), "ui", s.uiURL(), "data_dir", s.cfg.DataDir, "auth", s.cfg.Auth)
	}
	errc := make(chan error, 1)
	go func() { errc <- s.http.Serve(s.ln) }()
	var serveErr error
	select {
	case <-ctx.Done():
	case err := <-errc:
		if !errors.Is(err, http.ErrServerClosed) {
			serveErr = fmt.Errorf("serve http: %w", err)
		}
	}
	s.logger.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	if err := s.http.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		s.logger.Warn("http shutdown did not finish; stopping the services anyway", "err", err)
	}
	if err := errors.Join(stopServices(running, s.logger), s.catalog.Close()); err != nil {
		return errors.Join(serveErr, err)
	}
	s.logger.Info("shutdown complete")
	return serveErr
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
				lim, err := s.overrides.With(ws.ID, ws.Configuration)
				if err != nil {
					return nil, fmt.Errorf("limits of workspace %s: %w", ws.ID, err)
				}
				tenants[ws.ID] = lim
			}
		}
		after = page[len(page)-1].ID
	}
	return cortex.RuntimeConfig(tenants)
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
