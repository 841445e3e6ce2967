package app

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/promql"

	"github.com/orrery-dev/orrery/internal/alerting"
	"github.com/orrery-dev/orrery/internal/anomaly"
	"github.com/orrery-dev/orrery/internal/catalog"
	"github.com/orrery-dev/orrery/internal/cortex"
	"github.com/orrery-dev/orrery/internal/ingest"
	"github.com/orrery-dev/orrery/internal/query"
	"github.com/orrery-dev/orrery/internal/querylog"
	"github.com/orrery-dev/orrery/internal/ruler"
	orstorage "github.com/orrery-dev/orrery/internal/storage"
	"github.com/orrery-dev/orrery/internal/workspace"
)

// engine is where workspaces' data lives and is evaluated. It is the one
// place the server differs by --engine: embedded (a Prometheus TSDB, rule
// manager and Alertmanager per workspace in this process) or cortex
// (workspaces are tenants of a Cortex cluster; the server keeps no local
// state). Implementations are safe for concurrent use once built.
type engine interface {
	// ingest returns the remote write handler writing to the engine,
	// with the limits ingestion enforces and the engine's capabilities.
	ingest(cfg ingest.Config, s *Server) (*ingest.Handler, error)
	// queries serves the Prometheus API below /workspaces/{id}/api/v1/,
	// alertmanager the Alertmanager API below
	// /workspaces/{id}/alertmanager/api/, for the workspace in the request
	// context.
	queries() http.Handler
	alertmanager() http.Handler
	// deleteWorkspace drops a workspace's data and state for good.
	deleteWorkspace(ctx context.Context, id workspace.ID) error
	// syncRules and syncAlertmanager apply a workspace's rule groups
	// namespaces and alert manager definition as the catalog now holds
	// them.
	syncRules(ctx context.Context, id workspace.ID) error
	syncAlertmanager(ctx context.Context, id workspace.ID) error
	// detectorsChanged says a workspace's anomaly detectors changed; it
	// does not block.
	detectorsChanged(id workspace.ID)
	// services are the engine's components, in the order they start;
	// they stop in the reverse order.
	services() []service
	// metrics gathers the engine's per-workspace metrics beyond the
	// server's registry: the embedded engine's TSDBs'.
	metrics() prometheus.Gatherer
}

// service is a component's lifecycle, as dskit's services: start (if set)
// runs before the next service starts and before requests are served; run
// (if set) runs until its context is cancelled; stop (if set) releases what
// the component holds, once run has returned.
type service struct {
	name  string
	start func(ctx context.Context) error
	run   func(ctx context.Context) error
	stop  func() error
}

// every returns a run function calling f every period until ctx is done.
func every(period time.Duration, f func()) func(context.Context) error {
	return func(ctx context.Context) error {
		t := time.NewTicker(period)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return nil
			case <-t.C:
				f()
			}
		}
	}
}

// newQueryLog returns the query log of workspaces' query logging
// configurations, under <data-dir>/querylogs, told of changes made
// through this server at once.
func newQueryLog(s *Server) (*querylog.Log, error) {
	cat := s.catalog
	cfg := s.cfg.QueryLog
	cfg.Dir = filepath.Join(s.cfg.DataDir, "querylogs")
	l, err := querylog.New(cfg,
		func(ctx context.Context, id workspace.ID) (int64, bool, error) {
			q, err := cat.QueryLoggingConfiguration(ctx, id)
			if errors.Is(err, catalog.ErrNotFound) {
				return 0, false, nil
			}
			if err != nil {
				return 0, false, err
			}
			threshold := q.Destinations[0].QSPThreshold
			for _, d := range q.Destinations[1:] {
				threshold = min(threshold, d.QSPThreshold)
			}
			return threshold, true, nil
		}, s.logger)
	if err != nil {
		return nil, err
	}
	cat.OnChange(func(ch catalog.Change) {
		if ch.Kind == catalog.QueryLoggingChanged {
			l.Forget(workspace.ID(ch.ID))
		}
	})
	return l, nil
}

// embedded is the embedded engine.
type embedded struct {
	store    *orstorage.Store
	query    *query.API
	preview  *anomaly.Preview // RCF(…) queries, in front of query.
	ruler    *ruler.Ruler
	anomaly  *anomaly.Runner
	alerting *alerting.Manager
	// tracker logs the queries being evaluated to <data-dir>/queries.active
	// (reported at the next start if the process dies).
	tracker  *promql.ActiveQueryTracker
	qlog     *querylog.Log // workspaces' query logs (AMP's query logging).
	lim      workspace.LimitsSource
	interval time.Duration // storage housekeeping.
	logger   *slog.Logger
}

var _ engine = (*embedded)(nil)

// newEmbedded builds the embedded engine over the server's catalog. On
// error it has released what it opened.
func newEmbedded(s *Server) (*embedded, error) {
	cfg, logger, reg := s.cfg, s.logger, s.reg
	ev, tracker, err := newEvaluator(cfg, logger, reg)
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*embedded, error) {
		_ = tracker.Close()
		return nil, err
	}
	stc := cfg.Storage
	stc.Dir, stc.Written = cfg.DataDir, ev.Cache().Written
	store, err := orstorage.New(stc, s.overrides, logger, reg)
	if err != nil {
		return fail(err)
	}
	amc := cfg.Alerting
	amc.DataDir, amc.ExternalURL, amc.Limits = cfg.DataDir, cfg.Ruler.ExternalURL, s.overrides
	am, err := alerting.New(amc,
		definitions{s.catalog, s.sealer}, logger, reg)
	if err != nil {
		return fail(errors.Join(err, store.Close()))
	}
	// Alerting rules hand their alerts to the workspace's Alertmanager.
	rul, err := ruler.New(cfg.Ruler, store, ruler.CatalogNamespaces{Catalog: s.catalog}, am, s.overrides, logger, reg)
	if err != nil {
		return fail(errors.Join(err, store.Close()))
	}
	// Alerts fired while a workspace had no Alertmanager were dropped: a
	// new one gets the firing ones at once, not after the resend delay.
	am.OnStart(rul.Resend)
	if s.qlog, err = newQueryLog(s); err != nil {
		return fail(errors.Join(err, store.Close()))
	}
	q, err := query.New(query.Config{Version: EngineVersion, Revision: "orrery-" + Version, Log: s.qlog}, ev, querySource{store}, rul, s.overrides, logger)
	if err != nil {
		return fail(errors.Join(err, store.Close()))
	}
	detectors, err := anomaly.NewRunner(anomaly.RunnerConfig{Dir: filepath.Join(cfg.DataDir, "anomaly"), PollInterval: cfg.Ruler.PollInterval,
		LookbackDelta: cfg.Ruler.LookbackDelta}, store, s.catalog, s.overrides, logger, reg)
	if err != nil {
		return fail(errors.Join(err, store.Close()))
	}
	interval := 30 * time.Second
	if idle := cfg.Storage.IdleTimeout; idle > 0 && idle/2 < interval {
		interval = max(idle/2, 100*time.Millisecond)
	}
	preview := anomaly.NewPreview(q, store, s.overrides, cfg.Ruler.LookbackDelta)
	return &embedded{store: store, query: q, preview: preview, ruler: rul, anomaly: detectors, alerting: am, tracker: tracker, qlog: s.qlog, lim: s.overrides, interval: interval, logger: logger}, nil
}

func (e *embedded) ingest(cfg ingest.Config, s *Server) (*ingest.Handler, error) {
	return ingest.New(cfg, e.store, e.lim, s.logger, s.reg)
}
func (e *embedded) queries() http.Handler        { return e.preview }
func (e *embedded) metrics() prometheus.Gatherer { return e.store.Gatherer() }
func (e *embedded) alertmanager() http.Handler   { return e.alerting }
func (e *embedded) syncRules(ctx context.Context, id workspace.ID) error {
	return e.ruler.Sync(ctx, id)
}
func (e *embedded) syncAlertmanager(ctx context.Context, id workspace.ID) error {
	return e.alerting.Sync(ctx, id)
}

func (e *embedded) detectorsChanged(id workspace.ID) { e.anomaly.Changed(id) }

func (e *embedded) deleteWorkspace(ctx context.Context, id workspace.ID) error {
	e.ruler.Forget(id)
	e.anomaly.Forget(id)
	e.query.Forget(id)
	if err := e.alerting.Delete(id); err != nil {
		return err
	}
	return e.store.Delete(ctx, id)
}

// services: the query log, then storage (which closes idle workspaces
// and flushes metadata on its own ticker), the Alertmanagers, and the
// ruler and the anomaly detectors last, so that they stop before storage
// closes: no evaluation writes after it.
func (e *embedded) services() []service {
	return []service{
		{name: "query log", stop: func() error { return errors.Join(e.tracker.Close(), e.qlog.Close()) }},
		{name: "storage", run: every(e.interval, e.housekeeping), stop: e.store.Close},
		{name: "alerting", run: e.alerting.Run, stop: func() error { e.alerting.Stop(); return nil }},
		{name: "ruler", run: e.ruler.Run},
		{name: "anomaly detectors", run: e.anomaly.Run},
	}
}

// housekeeping closes idle workspaces and flushes their metadata.
func (e *embedded) housekeeping() {
	e.store.CloseIdle()
	if err := e.store.FlushMetadata(); err != nil {
		e.logger.Warn("flush metadata; will retry", "err", err)
	}
}

// cortexEngine is the Cortex engine: ingest validates and limits remote
// write and forwards it, the query and Alertmanager APIs are proxied,
// rules and Alertmanager configurations are pushed to Cortex.
type cortexEngine struct {
	s                    *Server
	push                 *cortex.Storage
	configs              *cortex.Configs
	query, alertmanagerH http.Handler
	lim                  workspace.LimitsSource
	// anomaly runs the detectors this replica holds the lease of,
	// querying Cortex by remote read and pushing their series to it.
	anomaly *anomaly.Runner
	read    *cortex.Reader
	// written is what the overrides file holds; only the sync service
	// touches it after start.
	written []byte
}

var _ engine = (*cortexEngine)(nil)

func newCortexEngine(s *Server) (*cortexEngine, error) {
	client, err := cortex.New(cortex.Config{URL: s.cfg.CortexURL}, s.reg)
	if err != nil {
		return nil, err
	}
	c := &cortexEngine{s: s, push: cortex.NewStorage(client), read: cortex.NewReader(client),
		configs:       cortex.NewConfigs(client, ruler.CatalogNamespaces{Catalog: s.catalog}, definitions{s.catalog, s.sealer}, s.logger),
		query:         cortex.NewProxy(client, "query", "api/v1/", "/prometheus/api/v1/", s.logger).WithQueryTimeout(s.overrides),
		alertmanagerH: cortex.NewProxy(client, "alertmanager", "alertmanager/api/", "/alertmanager/api/", s.logger),
		lim:           cortex.IngestLimits{LimitsSource: s.overrides},
	}
	// Models are kept in the catalog, where the replica taking a
	// detector over finds the model its last runner saved.
	c.anomaly, err = anomaly.NewRunner(anomaly.RunnerConfig{Models: s.catalog, Leases: s.catalog, Replica: s.replica,
		LeaseDuration: s.cfg.Scraper.LeaseDuration, PollInterval: s.cfg.Ruler.PollInterval, LookbackDelta: s.cfg.Ruler.LookbackDelta},
		cortexDetectorStorage{c.push, c.read}, s.catalog, s.overrides, s.logger, s.reg)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// cortexDetectorStorage is the anomaly detectors' storage under Cortex:
// queries read Cortex, results are pushed to it.
type cortexDetectorStorage struct {
	*cortex.Storage
	*cortex.Reader
}

var _ anomaly.Storage = cortexDetectorStorage{}

// ingest forwards to Cortex, taking the forwarding fast path.
func (c *cortexEngine) ingest(cfg ingest.Config, s *Server) (*ingest.Handler, error) {
	return ingest.NewForwarding(cfg, c.push, c.lim, s.logger, s.reg)
}
func (c *cortexEngine) queries() http.Handler        { return c.query }
func (c *cortexEngine) metrics() prometheus.Gatherer { return prometheus.Gatherers{} }
func (c *cortexEngine) alertmanager() http.Handler   { return c.alertmanagerH }
func (c *cortexEngine) deleteWorkspace(ctx context.Context, id workspace.ID) error {
	c.anomaly.Forget(id)
	c.read.Forget(id)
	return c.configs.DeleteTenant(ctx, id)
}
func (c *cortexEngine) syncRules(ctx context.Context, id workspace.ID) error {
	return c.configs.SyncRules(ctx, id)
}

func (c *cortexEngine) detectorsChanged(id workspace.ID) { c.anomaly.Changed(id) }

func (c *cortexEngine) syncAlertmanager(ctx context.Context, id workspace.ID) error {
	return c.configs.Sync(ctx, id)
}

// services: keeping Cortex in step with the catalog, and the anomaly
// detectors. The first writes the overrides file before the first request
// is answered, so that a startup probe on /-/ready (a Kubernetes sidecar
// started before Cortex) means the file exists: Cortex refuses to start
// without its runtime_config.file.
func (c *cortexEngine) services() []service {
	return []service{{name: "cortex sync",
		start: func(ctx context.Context) error {
			c.written = c.s.writeCortexOverrides(ctx, nil)
			return nil
		},
		run: c.sync,
	}, {name: "anomaly detectors", run: c.anomaly.Run}}
}

// sync rewrites the overrides file every poll interval and at once after
// a reload of the limits file, and reconciles rules and Alertmanager
// configurations every poll interval, one pass at a time.
func (c *cortexEngine) sync(ctx context.Context) error {
	period := c.s.cfg.Ruler.PollInterval
	if period <= 0 {
		period = 30 * time.Second
	}
	resync := time.NewTicker(period)
	defer resync.Stop()
	reconciling := make(chan struct{}, 1) // At most one pass at a time.
	for {
		select {
		case <-ctx.Done():
			// Wait for a pass under way: it stops with ctx.
			reconciling <- struct{}{}
			return nil
		case <-c.s.reloaded:
			c.written = c.s.writeCortexOverrides(ctx, c.written)
		case <-resync.C:
			c.written = c.s.writeCortexOverrides(ctx, c.written)
			select {
			case reconciling <- struct{}{}:
				go func() {
					defer func() { <-reconciling }()
					c.reconcile(ctx)
				}()
			default:
			}
		}
	}
}

// reconcile pushes every workspace's rule groups and alert manager
// definition to Cortex where Cortex differs from the catalog, so that a
// change whose immediate push failed applies within a poll interval. Every
// replica does it; the passes are idempotent, and cost one GET per
// workspace when nothing changed.
func (c *cortexEngine) reconcile(ctx context.Context) {
	rules, err := c.s.catalog.RuleWorkspaces(ctx)
	if err != nil {
		c.s.logger.Warn("list workspaces with rules; cortex resync skipped until the next poll", "err", err)
		return
	}
	ams, err := c.s.catalog.ActiveAlertmanagerDefinitions(ctx)
	if err != nil {
		c.s.logger.Warn("list alert manager definitions; cortex resync skipped until the next poll", "err", err)
		return
	}
	if err := c.configs.Reconcile(ctx, rules, ams); err != nil && ctx.Err() == nil {
		c.s.logger.Warn("resync rules and alert managers to cortex; retrying at the next poll", "err", err)
	}
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

// started is a service that has started: cancel stops its run, done
// receives run's result.
type started struct {
	service
	cancel context.CancelFunc
	done   chan error
}

// startServices starts services in order. On error it has stopped those
// it started.
func startServices(ctx context.Context, svcs []service) ([]started, error) {
	var out []started
	for _, svc := range svcs {
		if svc.start != nil {
			if err := svc.start(ctx); err != nil {
				return nil, errors.Join(fmt.Errorf("start %s: %w", svc.name, err), stopServices(out, nil))
			}
		}
		st := started{service: svc, done: make(chan error, 1)}
		if svc.run == nil {
			st.done <- nil
		} else {
			runCtx, cancel := context.WithCancel(context.Background())
			st.cancel = cancel
			go func() { st.done <- svc.run(runCtx) }()
		}
		out = append(out, st)
	}
	return out, nil
}

// stopServices stops started services in the reverse order: cancels each
// one's run, waits for it, then calls its stop. It returns the stop
// errors; run errors are logged.
func stopServices(svcs []started, logger interface{ Warn(string, ...any) }) error {
	var errs []error
	for i := len(svcs) - 1; i >= 0; i-- {
		st := svcs[i]
		if st.cancel != nil {
			st.cancel()
		}
		if err := <-st.done; err != nil && !errors.Is(err, context.Canceled) && logger != nil {
			logger.Warn("stop "+st.name, "err", err)
		}
		if st.stop != nil {
			if err := st.stop(); err != nil {
				errs = append(errs, fmt.Errorf("stop %s: %w", st.name, err))
			}
		}
	}
	return errors.Join(errs...)
}
