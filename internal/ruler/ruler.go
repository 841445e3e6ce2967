package ruler

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"maps"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/notifier"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/rules"
	"github.com/prometheus/prometheus/storage"
	v1 "github.com/prometheus/prometheus/web/api/v1"

	"github.com/orrery-dev/orrery/internal/query"
	"github.com/orrery-dev/orrery/internal/workspace"
)

// AlertSender hands a workspace's firing and resolved alerts to that workspace's Alertmanager.
// It must not block on delivery and is safe for concurrent use.
type AlertSender interface {
	SendAlerts(id workspace.ID, alerts ...*notifier.Alert)
}

// Storage is what the ruler needs of the workspaces' TSDBs: rules query a
// workspace and recording rules write their results back into it.
// Implementations are safe for concurrent use.
type Storage interface {
	// Appender returns a transaction on a workspace's TSDB; the caller
	// ends it with Commit or Rollback.
	Appender(ctx context.Context, id workspace.ID) (storage.AppenderV2, error)
	Queryable(id workspace.ID) storage.SampleAndChunkQueryable
}

// Config configures a Ruler. Zero durations take the defaults of
// Prometheus' flags (and AMP's one-minute evaluation interval).
type Config struct {
	// PollInterval is how often every workspace's rule files are read
	// again, a safety net for changes Sync was not told about. Default 30s.
	PollInterval time.Duration
	// EvaluationInterval applies to rule groups that set no interval.
	// Default 1m.
	EvaluationInterval time.Duration
	// ExternalURL is the server's base URL, e.g. http://orrery:9090. An
	// alert's generator URL points below <ExternalURL>/workspaces/<id>.
	ExternalURL string
	// OutageTolerance is how long after an outage an alert's `for` state
	// is still restored (Prometheus' --rules.alert.for-outage-tolerance,
	// default 1h). ForGracePeriod is the least time an alert waits after a
	// restart before it fires again (--rules.alert.for-grace-period,
	// default 10m). ResendDelay is how often firing alerts are sent again
	// (--rules.alert.resend-delay, default 1m).
	OutageTolerance, ForGracePeriod, ResendDelay time.Duration
	// LookbackDelta is PromQL's staleness lookback. Default 5m.
	LookbackDelta time.Duration
}

// DefaultConfig returns the defaults, Prometheus' own for its flags of the
// same names.
func DefaultConfig() Config {
	return Config{PollInterval: 30 * time.Second, EvaluationInterval: time.Minute, OutageTolerance: time.Hour,
		ForGracePeriod: 10 * time.Minute, ResendDelay: time.Minute, LookbackDelta: 5 * time.Minute}
}

// RegisterFlags registers the ruler's flags on fs, with c's values as
// their defaults. ExternalURL is the server's (--web.external-url).
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.DurationVar(&c.PollInterval, "rules.poll-interval", c.PollInterval, "how often every workspace's rule groups namespaces are re-read (changes through the API apply at once)")
	fs.DurationVar(&c.EvaluationInterval, "rules.evaluation-interval", c.EvaluationInterval, "evaluation interval of rule groups that set none")
	fs.DurationVar(&c.OutageTolerance, "rules.alert.for-outage-tolerance", c.OutageTolerance, "max time to tolerate an outage for restoring the 'for' state of alerts")
	fs.DurationVar(&c.ForGracePeriod, "rules.alert.for-grace-period", c.ForGracePeriod, "min duration between a restart and an alert firing whose 'for' is at least this long")
	fs.DurationVar(&c.ResendDelay, "rules.alert.resend-delay", c.ResendDelay, "min time before a firing alert is sent to the Alertmanager again")
}

// setDefaults fills the zero durations with DefaultConfig's.
func (c *Config) setDefaults() {
	d := DefaultConfig()
	def := func(p *time.Duration, v time.Duration) {
		if *p == 0 {
			*p = v
		}
	}
	def(&c.PollInterval, d.PollInterval)
	def(&c.EvaluationInterval, d.EvaluationInterval)
	def(&c.OutageTolerance, d.OutageTolerance)
	def(&c.ForGracePeriod, d.ForGracePeriod)
	def(&c.ResendDelay, d.ResendDelay)
	def(&c.LookbackDelta, d.LookbackDelta)
}

// Validate reports a configuration that cannot work.
func (c Config) Validate() error {
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"poll interval", c.PollInterval}, {"evaluation interval", c.EvaluationInterval}, {"outage tolerance", c.OutageTolerance},
		{"for grace period", c.ForGracePeriod}, {"resend delay", c.ResendDelay}, {"lookback delta", c.LookbackDelta}} {
		if d.v < 0 {
			return fmt.Errorf("ruler %s %s: must not be negative", d.name, d.v)
		}
	}
	if c.ExternalURL != "" {
		if _, err := url.Parse(c.ExternalURL); err != nil {
			return fmt.Errorf("ruler external URL: %w", err)
		}
	}
	return nil
}

// ErrStopped is returned by Sync once the Ruler has been stopped.
var ErrStopped = errors.New("ruler is stopped")

// Ruler runs one Prometheus rule manager per workspace that has rule files.
//
// A workspace's manager is created by the first Sync that finds rule files
// for it, and lives until Forget (the workspace is deleted) or Stop. A
// workspace whose rule files are all deleted keeps an empty manager, so
// that the series of its removed recording rules get staleness markers as
// in Prometheus.
//
// Sync, Forget and Stop are serialized by syncMu; Rules reads the managers
// under mu, so the API never waits for a rule file to load.
type Ruler struct {
	cfg    Config
	store  Storage
	ns     Namespaces
	sender AlertSender
	limits workspace.LimitsSource
	logger *slog.Logger
	reg    prometheus.Registerer
	parser parser.Parser

	syncMu sync.Mutex

	mu      sync.RWMutex
	wss     map[workspace.ID]*wsRules
	stopped bool

	workspaces   prometheus.Gauge
	syncFailures prometheus.Counter
}

// wsRules is the rule manager of one workspace.
type wsRules struct {
	manager *rules.Manager
	loader  *loader
	cancel  context.CancelFunc
	done    chan struct{} // closed when manager.Run returned.
	metrics *trackingRegisterer
}

// New returns a Ruler. It starts nothing: call Run. A nil sender drops
// alerts; a nil logger discards logs; a nil registerer registers no
// metrics.
func New(cfg Config, store Storage, ns Namespaces, sender AlertSender, limits workspace.LimitsSource,
	logger *slog.Logger, reg prometheus.Registerer) (*Ruler, error) {
	if store == nil || ns == nil || limits == nil {
		return nil, errors.New("ruler needs storage, namespaces and limits")
	}
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Ruler{
		cfg: cfg, store: store, ns: ns, sender: sender, limits: limits,
		logger: logger.With("component", "ruler"), reg: reg, parser: parser.NewParser(parser.Options{}),
		wss: map[workspace.ID]*wsRules{},
		workspaces: promauto.With(reg).NewGauge(prometheus.GaugeOpts{
			Name: "orrery_ruler_workspaces", Help: "Workspaces with a running rule manager.",
		}),
		syncFailures: promauto.With(reg).NewCounter(prometheus.CounterOpts{
			Name: "orrery_ruler_sync_failures_total", Help: "Workspace rule syncs that failed; the previous rules keep running.",
		}),
	}, nil
}

// Run syncs every workspace, then again every poll interval, until ctx is
// done; then it stops every rule manager and returns.
func (r *Ruler) Run(ctx context.Context) error {
	defer r.Stop()
	r.resync(ctx)
	t := time.NewTicker(r.cfg.PollInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			r.resync(ctx)
		}
	}
}

// resync syncs the workspaces with rule files and those with a manager.
func (r *Ruler) resync(ctx context.Context) {
	ids, err := r.ns.RuleWorkspaces(ctx)
	if err != nil {
		r.syncFailures.Inc()
		r.logger.Warn("list workspaces with rules; running rules are kept until the next poll", "err", err)
		return
	}
	r.mu.RLock()
	for id := range r.wss {
		if !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	r.mu.RUnlock()
	for _, id := range ids {
		if ctx.Err() != nil {
			return
		}
		if err := r.Sync(ctx, id); err != nil && !errors.Is(err, ErrStopped) {
			r.logger.Warn("sync rules; the previous rules keep running until the next poll", "workspace", id, "err", err)
		}
	}
}

// Sync makes a workspace's rule manager evaluate the workspace's current
// rule files, starting the manager if needed. Groups that did not change
// keep running undisturbed. A rule file that does not load is skipped with
// a warning and does not stop the others. If Sync returns an error, the
// previous rules keep running.
func (r *Ruler) Sync(ctx context.Context, id workspace.ID) error {
	r.syncMu.Lock()
	defer r.syncMu.Unlock()
	r.mu.RLock()
	stopped, ws := r.stopped, r.wss[id]
	r.mu.RUnlock()
	if stopped {
		return ErrStopped
	}
	files, err := r.ns.RuleFiles(ctx, id)
	if err != nil {
		r.syncFailures.Inc()
		return fmt.Errorf("sync rules of workspace %s: %w", id, err)
	}
	if len(files) == 0 && ws == nil {
		return nil
	}
	scheme := r.limits.Limits(id).ValidationScheme()
	loaded := make(map[string][]byte, len(files))
	for _, f := range files {
		if _, errs := rulefmt.Parse(f.Data, false, scheme, r.parser, r.logger); len(errs) > 0 {
			r.syncFailures.Inc()
			r.logger.Warn("load rule groups namespace; skipping it", "workspace", id, "namespace", f.Name, "err", errors.Join(errs...))
			continue
		}
		loaded[f.Name] = f.Data
	}
	if ws == nil {
		ws = r.start(id)
		r.mu.Lock()
		r.wss[id] = ws
		r.mu.Unlock()
		r.workspaces.Inc()
	}
	ws.loader.set(loaded)
	names := slices.Sorted(maps.Keys(loaded))
	if err := ws.manager.Update(r.cfg.EvaluationInterval, names, labels.EmptyLabels(), r.externalURL(id), nil); err != nil {
		r.syncFailures.Inc()
		return fmt.Errorf("sync rules of workspace %s: %w", id, err)
	}
	return nil
}

// Forget stops a workspace's rules, before its data is deleted. It returns
// when no rule of the workspace evaluates or writes any more.
func (r *Ruler) Forget(id workspace.ID) {
	r.syncMu.Lock()
	defer r.syncMu.Unlock()
	r.mu.Lock()
	ws := r.wss[id]
	delete(r.wss, id)
	r.mu.Unlock()
	if ws != nil {
		r.stopWorkspace(ws)
		r.workspaces.Dec()
		r.logger.Info("workspace rules stopped", "workspace", id)
	}
}

// Stop stops every workspace's rules and makes later Syncs fail with
// ErrStopped. It returns when no rule evaluates any more. Stop is
// idempotent.
func (r *Ruler) Stop() {
	r.syncMu.Lock()
	defer r.syncMu.Unlock()
	r.mu.Lock()
	r.stopped = true
	wss := r.wss
	r.wss = map[workspace.ID]*wsRules{}
	r.mu.Unlock()
	var wg sync.WaitGroup
	for _, ws := range wss {
		wg.Go(func() { r.stopWorkspace(ws) })
	}
	wg.Wait()
	r.workspaces.Set(0)
}

func (r *Ruler) stopWorkspace(ws *wsRules) {
	ws.manager.Stop()
	<-ws.done
	ws.cancel()
	ws.metrics.unregisterAll()
}

// externalURL is the base of a workspace's links in alerts.
func (r *Ruler) externalURL(id workspace.ID) string {
	return strings.TrimSuffix(r.cfg.ExternalURL, "/") + "/workspaces/" + id.String()
}

// start creates and runs a workspace's rule manager, with no rules yet.
func (r *Ruler) start(id workspace.ID) *wsRules {
	logger := r.logger.With("workspace", id)
	ctx, cancel := context.WithCancel(context.Background())
	metrics := &trackingRegisterer{logger: logger}
	if r.reg != nil {
		metrics.next = prometheus.WrapRegistererWith(prometheus.Labels{"workspace": id.String()}, r.reg)
	}
	ld := &loader{parser: r.parser, logger: logger}
	ext := r.externalURL(id)
	extURL, _ := url.Parse(ext) // Validated in New.
	var notify rules.NotifyFunc = func(context.Context, string, ...*rules.Alert) {}
	if r.sender != nil {
		notify = rules.SendAlerts(workspaceSender{r.sender, id}, ext)
	}
	m := rules.NewManager(&rules.ManagerOptions{
		NameValidationScheme:   r.limits.Limits(id).ValidationScheme(),
		ExternalURL:            extURL,
		QueryFunc:              r.queryFunc(id, logger),
		NotifyFunc:             notify,
		Context:                ctx,
		AppendableV2:           appendable{r.store, id},
		Queryable:              r.store.Queryable(id),
		Logger:                 logger,
		OutageTolerance:        r.cfg.OutageTolerance,
		ForGracePeriod:         r.cfg.ForGracePeriod,
		ResendDelay:            r.cfg.ResendDelay,
		GroupLoader:            ld,
		DefaultRuleQueryOffset: func() time.Duration { return 0 },
		Metrics:                rules.NewGroupMetrics(metrics),
		Parser:                 r.parser,
	})
	done := make(chan struct{})
	go func() {
		defer close(done)
		m.Run()
	}()
	logger.Info("workspace rules started")
	return &wsRules{manager: m, loader: ld, cancel: cancel, done: done, metrics: metrics}
}

// Resend sends the workspace's firing alerts, and the resolved ones its
// rules still keep, to its Alertmanager now, rather than when the resend
// delay (--rules.alert.resend-delay) after their last sending ends: the
// alerting manager calls it when the workspace's Alertmanager starts, so
// that what was sent while the workspace had none (and was dropped) does
// not wait for it. It does what a rule's evaluation does when it sends
// (Prometheus' AlertingRule.sendAlerts, which is not exported): marks the
// alerts sent now, valid for four times the larger of the group's interval
// and the resend delay.
func (r *Ruler) Resend(id workspace.ID) {
	m := r.manager(id)
	if r.sender == nil || m == nil {
		return
	}
	notify := rules.SendAlerts(workspaceSender{r.sender, id}, r.externalURL(id))
	now := time.Now()
	for _, g := range m.RuleGroups() {
		valid := 4 * max(g.Interval(), r.cfg.ResendDelay)
		for _, rule := range g.AlertingRules() {
			var alerts []*rules.Alert
			rule.ForEachActiveAlert(func(a *rules.Alert) {
				if a.State == rules.StatePending {
					return
				}
				a.LastSentAt, a.ValidUntil = now, now.Add(valid)
				sent := *a
				sent.Labels = a.Labels.Copy() // The notifier reuses them.
				alerts = append(alerts, &sent)
			})
			notify(context.Background(), rule.Query().String(), alerts...)
		}
	}
}

// queryFunc evaluates rule expressions on the workspace with a PromQL
// engine built for the workspace's current query limits.
func (r *Ruler) queryFunc(id workspace.ID, logger *slog.Logger) rules.QueryFunc {
	var (
		mu     sync.Mutex
		lim    workspace.Limits
		engine *promql.Engine
	)
	q := r.store.Queryable(id)
	return func(ctx context.Context, qs string, t time.Time) (promql.Vector, error) {
		cur := r.limits.Limits(id)
		mu.Lock()
		if engine == nil || !cur.Equal(lim) {
			opts := query.EngineOpts(cur, r.cfg.LookbackDelta)
			opts.Logger = logger
			engine, lim = promql.NewEngine(opts), cur
		}
		e := engine
		mu.Unlock()
		return rules.EngineQueryFunc(e, q)(ctx, qs, t)
	}
}

func (r *Ruler) manager(id workspace.ID) *rules.Manager {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if ws := r.wss[id]; ws != nil {
		return ws.manager
	}
	return nil
}

var _ query.RulesSource = (*Ruler)(nil)

// Rules implements query.RulesSource: the workspace's rule groups and
// alerting rules as its rule manager has them at the time of each call.
func (r *Ruler) Rules(id workspace.ID) v1.RulesRetriever { return retriever{r, id} }

type retriever struct {
	r  *Ruler
	id workspace.ID
}

func (rr retriever) RuleGroups() []*rules.Group {
	if m := rr.r.manager(rr.id); m != nil {
		return m.RuleGroups()
	}
	return []*rules.Group{}
}

func (rr retriever) AlertingRules() []*rules.AlertingRule {
	if m := rr.r.manager(rr.id); m != nil {
		return m.AlertingRules()
	}
	return []*rules.AlertingRule{}
}

// workspaceSender is Prometheus' notifier.Sender for one workspace.
type workspaceSender struct {
	s  AlertSender
	id workspace.ID
}

func (w workspaceSender) Send(alerts ...*notifier.Alert) { w.s.SendAlerts(w.id, alerts...) }

// loader is the rule manager's GroupLoader: a rule file's identifier is
// its namespace name, its content what the last Sync read.
type loader struct {
	parser parser.Parser
	logger *slog.Logger

	mu    sync.Mutex
	files map[string][]byte
}

func (l *loader) set(files map[string][]byte) {
	l.mu.Lock()
	l.files = files
	l.mu.Unlock()
}

func (l *loader) Load(name string, ignoreUnknownFields bool, scheme model.ValidationScheme) (*rulefmt.RuleGroups, []error) {
	l.mu.Lock()
	data, ok := l.files[name]
	l.mu.Unlock()
	if !ok {
		return nil, []error{fmt.Errorf("rule groups namespace %s: not found", name)}
	}
	return rulefmt.Parse(data, ignoreUnknownFields, scheme, l.parser, l.logger)
}

func (l *loader) Parse(q string) (parser.Expr, error) { return l.parser.ParseExpr(q) }

// appendable writes recording rule results and alert series into the
// workspace. An appender that cannot be had fails every append.
type appendable struct {
	s  Storage
	id workspace.ID
}

func (a appendable) AppenderV2(ctx context.Context) storage.AppenderV2 {
	app, err := a.s.Appender(ctx, a.id)
	if err != nil {
		return failedAppender{err}
	}
	return app
}

type failedAppender struct{ err error }

func (f failedAppender) Append(storage.SeriesRef, labels.Labels, int64, int64, float64, *histogram.Histogram,
	*histogram.FloatHistogram, storage.AOptions) (storage.SeriesRef, error) {
	return 0, f.err
}
func (f failedAppender) Commit() error   { return f.err }
func (f failedAppender) Rollback() error { return nil }

// trackingRegisterer registers collectors with next and remembers them, so
// that a stopped workspace's rule metrics can all be unregistered. A
// registration that fails is logged rather than panicking: rule metrics
// are not worth a server.
type trackingRegisterer struct {
	next   prometheus.Registerer // nil: register nothing.
	logger *slog.Logger

	mu sync.Mutex
	cs []prometheus.Collector
}

func (t *trackingRegisterer) Register(c prometheus.Collector) error {
	if t.next == nil {
		return nil
	}
	if err := t.next.Register(c); err != nil {
		return err
	}
	t.mu.Lock()
	t.cs = append(t.cs, c)
	t.mu.Unlock()
	return nil
}

func (t *trackingRegisterer) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := t.Register(c); err != nil {
			t.logger.Warn("register rule metrics; they will be missing from /metrics", "err", err)
		}
	}
}

func (t *trackingRegisterer) Unregister(c prometheus.Collector) bool {
	if t.next == nil {
		return false
	}
	return t.next.Unregister(c)
}

func (t *trackingRegisterer) unregisterAll() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, c := range t.cs {
		t.next.Unregister(c)
	}
	t.cs = nil
}
