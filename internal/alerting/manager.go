package alerting

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/alertmanager/alert"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/notifier"

	"github.com/orrery-dev/orrery/internal/workspace"
)

// DefinitionSource is where alert manager definitions come from (the
// control plane's catalog). Implementations are safe for concurrent use.
type DefinitionSource interface {
	// AlertmanagerDefinitions lists the workspaces that should run an
	// Alertmanager: active workspaces with a definition.
	AlertmanagerDefinitions(ctx context.Context) ([]workspace.ID, error)
	// AlertmanagerDefinition returns a workspace's definition in AMP's
	// format, with found false if the workspace has none or is not active.
	AlertmanagerDefinition(ctx context.Context, id workspace.ID) (data []byte, found bool, err error)
}

// Config configures the Manager.
type Config struct {
	// DataDir is the server's data directory; a workspace's silences and
	// notification log are kept in <DataDir>/workspaces/<id>/alertmanager.
	DataDir string
	// ExternalURL is the server's external base URL, for links in
	// notifications (…/workspaces/<id>/alertmanager).
	ExternalURL string
	// PollInterval is how often definitions are read from the source to
	// catch changes Sync was not told about. Default 30s.
	PollInterval time.Duration
	// MaintenanceInterval is how often silences and the notification log
	// are garbage-collected and snapshotted. Default 15m, as Alertmanager.
	MaintenanceInterval time.Duration
	// Retention is how long expired silences and notification log entries
	// are kept. Default 120h, as Alertmanager.
	Retention time.Duration
	// AlertGCInterval is how often resolved alerts are dropped. Default 5m.
	AlertGCInterval time.Duration
	// Limits gives each workspace's alert manager limits; nil means
	// workspace.DefaultLimits for every workspace.
	Limits workspace.LimitsSource
	// DenyReceiverNetworks are networks receivers may not connect to
	// (e.g. the cloud's instance metadata at 169.254.169.254, or the
	// operator's internal networks): workspaces' definitions are their
	// users', so a webhook must not reach what the server can. Email
	// (SMTP) receivers dial by themselves and are not covered.
	DenyReceiverNetworks []netip.Prefix
	// AllowServerAWSCredentials lets SNS receivers without keys or a role
	// publish with the server's own AWS credentials (CheckSNSCredentials).
	// Without it such a definition does not load.
	AllowServerAWSCredentials bool

	// flagErr is a flag's value that did not parse, reported by Validate.
	flagErr error
}

type defaultLimits struct{}

func (defaultLimits) Limits(workspace.ID) workspace.Limits { return workspace.DefaultLimits() }

// Manager runs one Alertmanager per workspace with an alert manager
// definition and serves their v2 APIs. Its methods are safe for concurrent
// use. Alertmanagers start and stop in Sync and in Run's polls; Stop stops
// them all, writing their snapshots, and must be called once Run returned.
type Manager struct {
	cfg     Config
	defs    DefinitionSource
	logger  *slog.Logger
	reg     prometheus.Registerer
	dropped *prometheus.CounterVec
	reloads *prometheus.CounterVec
	running prometheus.Gauge

	// syncMu serializes Sync and the polls, so one workspace's
	// Alertmanager is never started twice.
	syncMu    sync.Mutex
	mu        sync.RWMutex // guards instances and stopped.
	instances map[workspace.ID]*instance
	stopped   bool
	// failed holds, per workspace, the last definition that did not load,
	// so polls do not load and report it again. Guarded by syncMu.
	failed map[workspace.ID][]byte
	// onStart, if set, is called (under syncMu) when a workspace's
	// Alertmanager starts.
	onStart func(workspace.ID)
}

// OnStart has f called whenever a workspace's Alertmanager starts (a
// definition created, here or on another server, or found at start), with
// the Alertmanager ready for SendAlerts. Call it before Run or Sync.
func (m *Manager) OnStart(f func(workspace.ID)) { m.onStart = f }

var (
	_ http.Handler = (*Manager)(nil)
	// The ruler's alert sink.
	_ interface {
		SendAlerts(id workspace.ID, alerts ...*notifier.Alert)
	} = (*Manager)(nil)
)

// New returns a Manager. It starts nothing: Run and Sync start
// Alertmanagers.
func New(cfg Config, defs DefinitionSource, logger *slog.Logger, reg prometheus.Registerer) (*Manager, error) {
	if defs == nil {
		return nil, errors.New("alerting needs a definition source")
	}
	if cfg.DataDir == "" {
		return nil, errors.New("alerting needs a data directory")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = 30 * time.Second
	}
	if cfg.MaintenanceInterval <= 0 {
		cfg.MaintenanceInterval = 15 * time.Minute
	}
	if cfg.Retention <= 0 {
		cfg.Retention = 120 * time.Hour
	}
	if cfg.AlertGCInterval <= 0 {
		cfg.AlertGCInterval = 5 * time.Minute
	}
	if cfg.Limits == nil {
		cfg.Limits = defaultLimits{}
	}
	if _, err := url.Parse(cfg.ExternalURL); err != nil {
		return nil, fmt.Errorf("alerting external URL: %w", err)
	}
	f := promauto.With(reg)
	return &Manager{
		cfg: cfg, defs: defs, logger: logger.With("component", "alerting"), reg: reg,
		dropped: f.NewCounterVec(prometheus.CounterOpts{
			Name: "orrery_alerting_alerts_dropped_total",
			Help: "Alerts handed to SendAlerts and not stored, by reason: no_alertmanager (the workspace has no definition), invalid, limited.",
		}, []string{"workspace", "reason"}),
		reloads: f.NewCounterVec(prometheus.CounterOpts{
			Name: "orrery_alerting_config_loads_total",
			Help: "Alert manager definitions applied, by result (success, failure).",
		}, []string{"workspace", "result"}),
		running: f.NewGauge(prometheus.GaugeOpts{
			Name: "orrery_alerting_alertmanagers",
			Help: "Workspace Alertmanagers running.",
		}),
		instances: map[workspace.ID]*instance{},
		failed:    map[workspace.ID][]byte{},
	}, nil
}

// Run starts the Alertmanagers of all workspaces with a definition, then
// polls the source every PollInterval until ctx is done.
func (m *Manager) Run(ctx context.Context) error {
	t := time.NewTicker(m.cfg.PollInterval)
	defer t.Stop()
	for {
		if err := m.SyncAll(ctx); err != nil && ctx.Err() == nil {
			m.logger.Warn("sync alert manager definitions; retrying at the next poll", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// SyncAll makes the running Alertmanagers match the source: it starts,
// reloads and stops them as definitions appeared, changed or went away.
func (m *Manager) SyncAll(ctx context.Context) error {
	ids, err := m.defs.AlertmanagerDefinitions(ctx)
	if err != nil {
		return fmt.Errorf("list alert manager definitions: %w", err)
	}
	want := make(map[workspace.ID]bool, len(ids))
	var errs []error
	for _, id := range ids {
		want[id] = true
		if err := m.Sync(ctx, id); err != nil {
			errs = append(errs, err)
		}
	}
	m.mu.RLock()
	var gone []workspace.ID
	for id := range m.instances {
		if !want[id] {
			gone = append(gone, id)
		}
	}
	m.mu.RUnlock()
	for _, id := range gone {
		if err := m.Sync(ctx, id); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Sync makes a workspace's Alertmanager match its definition in the
// source: it starts it, applies a changed definition (keeping alerts and
// silences), or stops it if the definition or the workspace is gone. The
// control plane calls it after changing a definition. A definition that
// does not load leaves the running configuration in force and is returned
// as an error.
func (m *Manager) Sync(ctx context.Context, id workspace.ID) error {
	m.syncMu.Lock()
	defer m.syncMu.Unlock()
	data, found, err := m.defs.AlertmanagerDefinition(ctx, id)
	if err != nil {
		return fmt.Errorf("load alertmanager of workspace %s: %w", id, err)
	}
	m.mu.RLock()
	in, running, stopped := m.instances[id], m.instances[id] != nil, m.stopped
	m.mu.RUnlock()
	switch {
	case stopped:
		return nil
	case !found && running:
		delete(m.failed, id)
		m.remove(id)
		m.logger.Info("alertmanager stopped: the workspace has no definition", "workspace", id)
		return nil
	case !found:
		delete(m.failed, id)
		return nil
	case running && in.sameDefinition(data):
		return nil
	case bytes.Equal(m.failed[id], data):
		return nil // reported when it first failed.
	}
	def, err := parseDefinition(data, m.cfg.AllowServerAWSCredentials)
	if err == nil && running {
		err = in.apply(def)
		if err == nil {
			m.logger.Info("alertmanager definition applied", "workspace", id)
		}
	} else if err == nil {
		in, err = startInstance(id, m.instanceConfig(id), def, m.logger.With("workspace", id), m.reg)
		if err == nil {
			m.mu.Lock()
			m.instances[id] = in
			m.mu.Unlock()
			m.running.Inc()
			m.logger.Info("alertmanager started", "workspace", id)
			if m.onStart != nil {
				m.onStart(id)
			}
		}
	}
	if err != nil {
		m.failed[id] = data
		m.reloads.WithLabelValues(id.String(), "failure").Inc()
		return fmt.Errorf("load alertmanager of workspace %s: %w", id, err)
	}
	delete(m.failed, id)
	m.reloads.WithLabelValues(id.String(), "success").Inc()
	return nil
}

func (m *Manager) instanceConfig(id workspace.ID) instanceConfig {
	prefix := "/workspaces/" + id.String() + "/alertmanager"
	ext, _ := url.Parse(strings.TrimSuffix(m.cfg.ExternalURL, "/") + prefix)
	return instanceConfig{
		dir:                 m.dir(id),
		prefix:              prefix,
		externalURL:         ext,
		retention:           m.cfg.Retention,
		maintenanceInterval: m.cfg.MaintenanceInterval,
		alertGCInterval:     m.cfg.AlertGCInterval,
		limits:              m.cfg.Limits,
		httpOpts:            httpOptions(m.cfg.DenyReceiverNetworks),
	}
}

func (m *Manager) dir(id workspace.ID) string {
	return filepath.Join(m.cfg.DataDir, "workspaces", id.String(), "alertmanager")
}

// remove stops a workspace's Alertmanager, if it runs, and forgets its
// metrics.
func (m *Manager) remove(id workspace.ID) {
	m.mu.Lock()
	in := m.instances[id]
	delete(m.instances, id)
	m.mu.Unlock()
	if in != nil {
		in.stop()
		m.running.Dec()
	}
	m.dropped.DeletePartialMatch(prometheus.Labels{"workspace": id.String()})
	m.reloads.DeletePartialMatch(prometheus.Labels{"workspace": id.String()})
}

// Delete stops a workspace's Alertmanager and deletes its silences and
// notification log, for a workspace being deleted. A later Sync starts it
// again only if the source still has a definition for it.
func (m *Manager) Delete(id workspace.ID) error {
	m.syncMu.Lock()
	defer m.syncMu.Unlock()
	delete(m.failed, id)
	m.remove(id)
	if err := os.RemoveAll(m.dir(id)); err != nil {
		return fmt.Errorf("delete alertmanager of workspace %s: %w", id, err)
	}
	return nil
}

// Stop stops every Alertmanager, writing their silences and notification
// log snapshots. After Stop, Sync starts nothing.
func (m *Manager) Stop() {
	m.syncMu.Lock()
	defer m.syncMu.Unlock()
	m.mu.Lock()
	m.stopped = true
	ids := make([]workspace.ID, 0, len(m.instances))
	for id := range m.instances {
		ids = append(ids, id)
	}
	m.mu.Unlock()
	for _, id := range ids {
		m.remove(id)
	}
}

func (m *Manager) instance(id workspace.ID) *instance {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.instances[id]
}

// SendAlerts hands a workspace's firing and resolved alerts to that
// workspace's Alertmanager. It does not wait for notifications and is safe
// for concurrent use. Alerts of a workspace without an Alertmanager,
// invalid alerts and alerts over the workspace's limits are dropped and
// counted in orrery_alerting_alerts_dropped_total.
func (m *Manager) SendAlerts(id workspace.ID, alerts ...*notifier.Alert) {
	if len(alerts) == 0 {
		return
	}
	in := m.instance(id)
	if in == nil {
		m.dropped.WithLabelValues(id.String(), "no_alertmanager").Add(float64(len(alerts)))
		return
	}
	converted := make([]*alert.Alert, 0, len(alerts))
	for _, a := range alerts {
		converted = append(converted, &alert.Alert{Alert: model.Alert{
			Labels:       labelSet(a.Labels),
			Annotations:  labelSet(a.Annotations),
			StartsAt:     a.StartsAt,
			EndsAt:       a.EndsAt,
			GeneratorURL: a.GeneratorURL,
		}})
	}
	invalid, err := in.put(converted)
	if invalid > 0 {
		m.dropped.WithLabelValues(id.String(), "invalid").Add(float64(invalid))
	}
	var limited *limitError
	switch {
	case errors.As(err, &limited):
		m.dropped.WithLabelValues(id.String(), "limited").Add(float64(limited.refused))
		m.logger.Warn("alerts over the workspace's limits are dropped", "workspace", id, "err", err)
	case err != nil:
		m.dropped.WithLabelValues(id.String(), "error").Add(float64(len(converted) - invalid))
		m.logger.Warn("store alerts; they are dropped", "workspace", id, "err", err)
	}
}

func labelSet(ls labels.Labels) model.LabelSet {
	out := make(model.LabelSet, ls.Len())
	ls.Range(func(l labels.Label) { out[model.LabelName(l.Name)] = model.LabelValue(l.Value) })
	return out
}

// ServeHTTP serves the Alertmanager v2 API of the workspace in the request
// context below /workspaces/{id}/alertmanager. A workspace without a
// definition gets 404.
func (m *Manager) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id, ok := workspace.FromContext(r.Context())
	if !ok {
		http.Error(w, "no workspace in the request", http.StatusInternalServerError)
		return
	}
	in := m.instance(id)
	if in == nil {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Amzn-ErrorType", "ResourceNotFoundException")
		w.WriteHeader(http.StatusNotFound)
		_ = json.NewEncoder(w).Encode(map[string]string{"message": fmt.Sprintf(
			"workspace %s has no alert manager definition; create one with CreateAlertManagerDefinition", id)})
		return
	}
	if r.Method != http.MethodPost || !strings.HasSuffix(r.URL.Path, "/api/v2/alerts") {
		in.handler.ServeHTTP(w, r)
		return
	}
	// The API answers alerts refused over the limits with 500 and the
	// provider's error; answer 429 with the reason instead. The answer to
	// a POST of alerts is small: buffer it.
	buf := &bufferedResponse{header: http.Header{}}
	in.handler.ServeHTTP(buf, r)
	if buf.status == http.StatusInternalServerError && bytes.Contains(buf.body.Bytes(), []byte(ErrLimited.Error())) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusTooManyRequests)
		_ = json.NewEncoder(w).Encode(strings.TrimSpace(strings.Trim(strings.TrimSpace(buf.body.String()), `"`)))
		return
	}
	for k, v := range buf.header {
		w.Header()[k] = v
	}
	if buf.status == 0 {
		buf.status = http.StatusOK
	}
	w.WriteHeader(buf.status)
	_, _ = w.Write(buf.body.Bytes())
}

type bufferedResponse struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (b *bufferedResponse) Header() http.Header { return b.header }
func (b *bufferedResponse) WriteHeader(status int) {
	if b.status == 0 {
		b.status = status
	}
}
func (b *bufferedResponse) Write(p []byte) (int, error) {
	if b.status == 0 {
		b.status = http.StatusOK
	}
	return b.body.Write(p)
}
