package alerting

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/alertmanager/alert"
	"github.com/prometheus/alertmanager/api"
	"github.com/prometheus/alertmanager/config"
	"github.com/prometheus/alertmanager/config/receiver"
	"github.com/prometheus/alertmanager/dispatch"
	"github.com/prometheus/alertmanager/eventrecorder"
	"github.com/prometheus/alertmanager/featurecontrol"
	"github.com/prometheus/alertmanager/inhibit"
	"github.com/prometheus/alertmanager/marker"
	"github.com/prometheus/alertmanager/nflog"
	"github.com/prometheus/alertmanager/notify"
	"github.com/prometheus/alertmanager/provider/mem"
	"github.com/prometheus/alertmanager/silence"
	"github.com/prometheus/alertmanager/template"
	"github.com/prometheus/alertmanager/timeinterval"
	"github.com/prometheus/client_golang/prometheus"
	commoncfg "github.com/prometheus/common/config"
	"github.com/prometheus/common/model"
	"github.com/prometheus/common/route"
	"go.yaml.in/yaml/v2"

	"github.com/orrery-dev/orrery/internal/workspace"
)

// definition is an AMP alert manager definition, parsed.
type definition struct {
	raw       []byte
	config    *config.Config
	templates map[string]string
}

// parseDefinition parses AMP's format: YAML with alertmanager_config (the
// Alertmanager's configuration file, loaded by its own loader) and
// template_files (template name to body).
// Unless allowServerAWSCredentials, SNS receivers must carry their own
// credentials (CheckSNSCredentials).
func parseDefinition(data []byte, allowServerAWSCredentials bool) (*definition, error) {
	var def struct {
		AlertmanagerConfig string            `yaml:"alertmanager_config"`
		TemplateFiles      map[string]string `yaml:"template_files"`
	}
	if err := yaml.Unmarshal(data, &def); err != nil {
		return nil, fmt.Errorf("parse definition: %w", err)
	}
	conf, err := config.Load(def.AlertmanagerConfig)
	if err != nil {
		return nil, fmt.Errorf("load alertmanager_config: %w", err)
	}
	if err := CheckNoFiles(conf); err != nil {
		return nil, fmt.Errorf("alertmanager_config: %w", err)
	}
	if !allowServerAWSCredentials {
		if err := CheckSNSCredentials(conf); err != nil {
			return nil, fmt.Errorf("alertmanager_config: %w (--alertmanager.allow-server-aws-credentials allows it)", err)
		}
	}
	return &definition{raw: data, config: conf, templates: def.TemplateFiles}, nil
}

// buildTemplate parses the default templates and every template file, in
// name order. AMP's template_files are the files alertmanager_config's
// templates list would name; all of them are loaded.
func (d *definition) buildTemplate(externalURL *url.URL) (*template.Template, error) {
	tmpl, err := template.FromGlobs(nil)
	if err != nil {
		return nil, fmt.Errorf("default templates: %w", err)
	}
	names := make([]string, 0, len(d.templates))
	for name := range d.templates {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if err := tmpl.Parse(strings.NewReader(d.templates[name])); err != nil {
			return nil, fmt.Errorf("template file %q: %w", name, err)
		}
	}
	tmpl.ExternalURL = externalURL
	return tmpl, nil
}

// instance is one workspace's Alertmanager, assembled as cmd/alertmanager
// (the Alertmanager's app package) assembles one, without a cluster peer.
//
// The long-lived parts (notification log, silences, alert provider, API)
// live as long as the instance; the configuration-scoped parts (template,
// receivers, pipeline, inhibitor, dispatcher) are rebuilt by apply, so a
// new definition keeps the alerts and silences. An instance is safe for
// concurrent use; apply and stop are serialized.
type instance struct {
	id          workspace.ID
	dir         string
	logger      *slog.Logger
	reg         *trackingRegisterer
	externalURL *url.URL
	startTime   time.Time
	maintenance time.Duration

	nflog             *nflog.Log
	silences          *silence.Silences
	silencer          *silence.Silencer
	alerts            *limitedAlerts
	marker            marker.GroupMarker
	api               *api.API
	handler           http.Handler
	pipelineBuilder   *notify.PipelineBuilder
	dispatcherMetrics *dispatch.DispatcherMetrics
	groupLimits       groupLimits
	httpOpts          []commoncfg.HTTPClientOption

	stopc chan struct{}
	wg    sync.WaitGroup

	mu      sync.Mutex // serializes apply and stop.
	stopped bool
	def     *definition
	// receivers are the integrations apply built, by receiver name,
	// wrapped to record their attempts in health; guarded by mu.
	receivers  map[string][]notify.Integration
	health     contactHealth
	dispatcher atomic.Pointer[dispatch.Dispatcher]
	inhibitor  atomic.Pointer[inhibit.Inhibitor]
	// resolveTimeout is the configuration's global resolve_timeout, for
	// alerts without an end.
	resolveTimeout atomic.Int64
}

type instanceConfig struct {
	dir                 string
	prefix              string // URL path of the API root, e.g. /workspaces/ws-…/alertmanager.
	externalURL         *url.URL
	retention           time.Duration
	maintenanceInterval time.Duration
	alertGCInterval     time.Duration
	limits              workspace.LimitsSource
	httpOpts            []commoncfg.HTTPClientOption // for receivers' HTTP clients.
}

// startInstance builds a workspace's Alertmanager from def and starts it:
// it loads the silences and notification log snapshots from dir and starts
// their maintenance, the alert provider, the inhibitor and the dispatcher.
func startInstance(id workspace.ID, cfg instanceConfig, def *definition, logger *slog.Logger, reg prometheus.Registerer) (*instance, error) {
	if err := os.MkdirAll(cfg.dir, 0o700); err != nil {
		return nil, fmt.Errorf("create alertmanager directory: %w", err)
	}
	wreg := prometheus.WrapRegistererWith(prometheus.Labels{"workspace": id.String()}, reg)
	in := &instance{
		id: id, dir: cfg.dir, logger: logger, reg: newTrackingRegisterer(wreg, logger), externalURL: cfg.externalURL,
		startTime: time.Now(), maintenance: cfg.maintenanceInterval, stopc: make(chan struct{}),
		marker: marker.NewGroupMarker(), groupLimits: groupLimits{id, cfg.limits}, httpOpts: cfg.httpOpts,
	}
	ok := false
	defer func() {
		if !ok {
			in.stop()
		}
	}()
	var (
		ff  = featurecontrol.NoopFlags{}
		rec = eventrecorder.NopRecorder()
		err error
	)
	nflogFile := filepath.Join(cfg.dir, "nflog")
	in.nflog, err = nflog.New(nflog.Options{SnapshotFile: nflogFile, Retention: cfg.retention,
		Logger: logger.With("component", "nflog"), Metrics: in.reg})
	if err != nil {
		return nil, fmt.Errorf("open notification log: %w", err)
	}
	in.wg.Go(func() { in.nflog.Maintenance(cfg.maintenanceInterval, nflogFile, in.stopc, nil) })

	silencesFile := filepath.Join(cfg.dir, "silences")
	in.silences, err = silence.New(silence.Options{
		SnapshotFile: silencesFile,
		Retention:    cfg.retention,
		Limits: silence.Limits{
			MaxSilences:         func() int { return cfg.limits.Limits(id).AlertmanagerMaxSilences },
			MaxSilenceSizeBytes: func() int { return cfg.limits.Limits(id).AlertmanagerMaxSilenceSizeBytes },
		},
		Logger: logger.With("component", "silences"), Metrics: in.reg, EventRecorder: rec,
	})
	if err != nil {
		return nil, fmt.Errorf("open silences: %w", err)
	}
	in.wg.Go(func() { in.silences.Maintenance(cfg.maintenanceInterval, silencesFile, in.stopc, nil) })
	in.silencer = silence.NewSilencer(in.silences, logger, rec)

	quota := &alertQuota{id: id, limits: cfg.limits, silencer: in.silencer, sizes: map[model.Fingerprint]int{}}
	memAlerts, err := mem.NewAlerts(context.Background(), cfg.alertGCInterval, 0, quota, logger, rec, in.reg, ff)
	if err != nil {
		return nil, fmt.Errorf("create alert provider: %w", err)
	}
	in.alerts = &limitedAlerts{Alerts: memAlerts, quota: quota}

	requestDuration := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "alertmanager_http_request_duration_seconds",
		Help:    "Histogram of latencies for HTTP requests.",
		Buckets: prometheus.DefBuckets,
	}, []string{"handler", "method", "code"})
	if err := in.reg.Register(requestDuration); err != nil {
		return nil, fmt.Errorf("register metrics: %w", err)
	}
	in.api, err = api.New(api.Options{
		Alerts:          in.alerts,
		Silences:        in.silences,
		GroupMutedFunc:  in.marker.Muted,
		Logger:          logger.With("component", "api"),
		Registry:        in.reg,
		RequestDuration: requestDuration,
		GroupFunc: func(ctx context.Context, rf func(*dispatch.Route) bool, af func(*alert.Alert, time.Time) bool) (dispatch.AlertGroups, map[model.Fingerprint][]string, error) {
			return in.dispatcher.Load().Groups(ctx, rf, af)
		},
	})
	if err != nil {
		return nil, fmt.Errorf("create alertmanager api: %w", err)
	}
	router := route.New().WithPrefix(cfg.prefix)
	in.handler = in.api.Register(router, cfg.prefix)

	in.dispatcherMetrics = dispatch.NewDispatcherMetrics(false, in.reg, ff)
	in.pipelineBuilder = notify.NewPipelineBuilder(in.reg, ff, rec)
	if err := in.apply(def); err != nil {
		return nil, err
	}
	ok = true
	return in, nil
}

// apply builds the routes, receivers, pipeline, inhibitor and dispatcher
// of def and swaps them in, as the Alertmanager's reloader does. If
// anything in def fails to build, the running configuration stays.
func (in *instance) apply(def *definition) error {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.stopped {
		return fmt.Errorf("alertmanager of workspace %s is stopped", in.id)
	}
	conf := def.config
	tmpl, err := def.buildTemplate(in.externalURL)
	if err != nil {
		return err
	}
	routes := dispatch.NewRoute(conf.Route, nil)
	active := map[string]struct{}{}
	routes.Walk(func(r *dispatch.Route) { active[r.RouteOpts.Receiver] = struct{}{} })
	receivers := make(map[string][]notify.Integration, len(active))
	for _, rcv := range conf.Receivers {
		if _, ok := active[rcv.Name]; !ok {
			continue
		}
		integrations, err := receiver.BuildReceiverIntegrations(rcv, tmpl, in.logger, in.httpOpts...)
		if err != nil {
			return fmt.Errorf("receiver %q: %w", rcv.Name, err)
		}
		receivers[rcv.Name] = in.recorded(rcv.Name, integrations)
	}
	intervals := make(map[string][]timeinterval.TimeInterval, len(conf.MuteTimeIntervals)+len(conf.TimeIntervals))
	for _, ti := range conf.MuteTimeIntervals {
		intervals[ti.Name] = ti.TimeIntervals
	}
	for _, ti := range conf.TimeIntervals {
		intervals[ti.Name] = ti.TimeIntervals
	}

	// From here on nothing fails: stop the old inhibitor and dispatcher,
	// start the new ones.
	if old := in.inhibitor.Load(); old != nil {
		old.Stop()
	}
	if old := in.dispatcher.Load(); old != nil {
		old.Stop()
	}
	rec := eventrecorder.NopRecorder()
	inhibitor := inhibit.NewInhibitor(in.alerts, conf.InhibitRules, in.logger, rec)
	noWait := func() time.Duration { return 0 }
	pipeline := in.pipelineBuilder.New(receivers, noWait, inhibitor, in.silencer, timeinterval.NewIntervener(intervals),
		in.marker, in.nflog, nil)
	in.resolveTimeout.Store(int64(conf.Global.ResolveTimeout))
	in.api.Update(conf, func(ctx context.Context, labels model.LabelSet) {
		in.inhibitor.Load().Mutes(ctx, labels)
		in.silencer.Mutes(ctx, labels)
	})
	timeout := func(d time.Duration) time.Duration { return max(d, notify.MinTimeout) }
	dispatcher := dispatch.NewDispatcher(in.alerts, routes, pipeline, in.marker, timeout, 30*time.Second,
		in.groupLimits, in.logger, rec, in.dispatcherMetrics, tmpl)
	go inhibitor.Run()
	inhibitor.WaitForLoading()
	in.inhibitor.Store(inhibitor)
	go dispatcher.Run(in.startTime)
	dispatcher.WaitForLoading()
	in.dispatcher.Store(dispatcher)
	in.def = def
	in.receivers = receivers
	return nil
}

// current returns the definition in force.
func (in *instance) current() []byte {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.def == nil {
		return nil
	}
	return in.def.raw
}

// sameDefinition reports whether data is the definition in force.
func (in *instance) sameDefinition(data []byte) bool { return bytes.Equal(in.current(), data) }

// stop stops the dispatcher, inhibitor and provider, writes the final
// silences and notification log snapshots and unregisters the metrics. It
// is idempotent.
func (in *instance) stop() {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.stopped {
		return
	}
	in.stopped = true
	if d := in.dispatcher.Load(); d != nil {
		d.Stop()
	}
	if i := in.inhibitor.Load(); i != nil {
		i.Stop()
	}
	if in.alerts != nil {
		in.alerts.Close()
	}
	close(in.stopc)
	in.wg.Wait()
	in.reg.unregisterAll()
}

// put converts and stores alerts as the v2 API's postAlerts does: a
// missing start is now (or the end), a missing end is now plus the
// configuration's resolve_timeout. It returns how many alerts were invalid
// and the provider's error.
func (in *instance) put(alerts []*alert.Alert) (invalid int, err error) {
	now := time.Now()
	resolveTimeout := time.Duration(in.resolveTimeout.Load())
	valid := alerts[:0]
	for _, a := range alerts {
		a.UpdatedAt = now
		if a.StartsAt.IsZero() {
			if a.EndsAt.IsZero() {
				a.StartsAt = now
			} else {
				a.StartsAt = a.EndsAt
			}
		}
		if a.EndsAt.IsZero() {
			a.Timeout = true
			a.EndsAt = now.Add(resolveTimeout)
		}
		for k, v := range a.Labels {
			if v == "" {
				delete(a.Labels, k)
			}
		}
		if err := a.Validate(); err != nil {
			invalid++
			continue
		}
		valid = append(valid, a)
	}
	if len(valid) == 0 {
		return invalid, nil
	}
	return invalid, in.alerts.Put(context.Background(), valid...)
}
