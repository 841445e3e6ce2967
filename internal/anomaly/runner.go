package anomaly

import (
	"bytes"
	"context"
	"encoding/gob"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage"

	"github.com/orrery-dev/orrery/internal/catalog"
	"github.com/orrery-dev/orrery/internal/query"
	"github.com/orrery-dev/orrery/internal/workspace"
)

// The series a detector writes for each result series of its query, with
// that series' labels, the detector's labels and LabelDetector. AMP's
// documentation names the preview's series anomaly_detector_preview:…;
// a running detector's are these, the same without "_preview".
const (
	MetricLower = "anomaly_detector:lower_band"
	MetricUpper = "anomaly_detector:upper_band"
	MetricScore = "anomaly_detector:score"
	// LabelDetector holds the detector's id on every series it writes.
	LabelDetector = "anomaly_detector_id"
)

// Storage is what the runner needs of the workspaces' TSDBs: detectors
// query a workspace and write their results back into it, as recording
// rules do. Implementations are safe for concurrent use.
type Storage interface {
	// Appender returns a transaction on a workspace's TSDB; the caller
	// ends it with Commit or Rollback.
	Appender(ctx context.Context, id workspace.ID) (storage.AppenderV2, error)
	Queryable(id workspace.ID) storage.SampleAndChunkQueryable
}

// Detectors is where the runner reads the detectors to run and records
// their status. *catalog.Catalog implements it.
type Detectors interface {
	ActiveAnomalyDetectors(ctx context.Context) ([]catalog.AnomalyDetector, error)
	SetAnomalyDetectorStatus(ctx context.Context, id workspace.ID, detector string, generation int64, status, reason string) error
}

var _ Detectors = (*catalog.Catalog)(nil)

// RunnerConfig configures a Runner.
type RunnerConfig struct {
	// Dir holds the models, one file per detector, so that a restart does
	// not train again: <Dir>/<workspace>/<detector>.model. Required unless
	// Models is set.
	Dir string
	// Models, when set, keeps the models instead of Dir: in the catalog,
	// where the replica that runs a detector next finds the model the last
	// one saved (with Leases).
	Models Models
	// PollInterval is how often the detectors are read again, a safety net
	// for changes Changed was not told about. Default 30s.
	PollInterval time.Duration
	// LookbackDelta is PromQL's staleness lookback. Default 5m.
	LookbackDelta time.Duration
	// SaveEvery is how many evaluations pass between saves of a model
	// (each is also saved when the detector stops). Default 10.
	SaveEvery int
	// Leases, when set, elect the one replica that runs each detector
	// among those sharing the catalog (the Cortex engine's): the runner
	// runs the detectors whose lease it holds, as Replica, renewing them
	// every third of LeaseDuration (default 15s). Nil: this process runs
	// every detector (the embedded engine has one process).
	Leases        Leases
	Replica       string
	LeaseDuration time.Duration
}

// Leases are the catalog's leases; *catalog.Catalog implements them.
type Leases interface {
	AcquireLease(ctx context.Context, name, holder string, ttl time.Duration) (bool, error)
	ReleaseLease(ctx context.Context, name, holder string) error
}

var _ Leases = (*catalog.Catalog)(nil)

// Models stores detectors' models; *catalog.Catalog implements it. A save
// older than the stored model (a lower generation, or an earlier last
// evaluation) is ignored; AnomalyModel returns catalog.ErrNotFound when
// there is none. Removing a detector or its workspace removes its model.
type Models interface {
	SaveAnomalyModel(ctx context.Context, id workspace.ID, detector string, generation, last int64, data []byte) error
	AnomalyModel(ctx context.Context, id workspace.ID, detector string) ([]byte, error)
}

var _ Models = (*catalog.Catalog)(nil)

// Runner runs every detector of the active workspaces: each evaluates its
// query at its interval, judges each result series with a forest of its
// own, and writes the bands and score back into the workspace.
//
// A detector's lifecycle, as AMP's: created (CREATING) or put (UPDATING),
// it trains on the last ShingleSize+SampleSize intervals of history, then
// is ACTIVE. Training that fails leaves CREATION_FAILED or UPDATE_FAILED
// with the reason, and is tried again each interval. A put starts a new
// generation: the running detector stops and a new one trains from
// scratch. On restart a saved model of the current generation is loaded
// and brought up to date with the intervals missed, rather than retrained.
type Runner struct {
	cfg       RunnerConfig
	store     Storage
	detectors Detectors
	limits    workspace.LimitsSource
	logger    *slog.Logger
	now       func() time.Time

	changed chan struct{}

	mu      sync.Mutex
	running map[string]*running // by workspace/detector.

	duration *prometheus.HistogramVec
	failures *prometheus.CounterVec
	series   *prometheus.GaugeVec
	leases   prometheus.Gauge
}

type running struct {
	generation int64
	spec       string
	cancel     context.CancelFunc
	done       chan struct{}
	// leaseUntil is when this replica's lease on the detector ends
	// unless renewed (zero without leases); guarded by Runner.mu.
	leaseUntil time.Time
}

// NewRunner returns a Runner; it starts nothing: call Run.
func NewRunner(cfg RunnerConfig, store Storage, detectors Detectors, limits workspace.LimitsSource, logger *slog.Logger, reg prometheus.Registerer) (*Runner, error) {
	if store == nil || detectors == nil || limits == nil || (cfg.Dir == "" && cfg.Models == nil) {
		return nil, errors.New("anomaly runner needs storage, detectors, limits and a directory or model store")
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = 30 * time.Second
	}
	if cfg.LookbackDelta <= 0 {
		cfg.LookbackDelta = 5 * time.Minute
	}
	if cfg.SaveEvery <= 0 {
		cfg.SaveEvery = 10
	}
	if cfg.Leases != nil && cfg.Replica == "" {
		return nil, errors.New("anomaly runner with leases needs a replica id")
	}
	if cfg.LeaseDuration <= 0 {
		cfg.LeaseDuration = 15 * time.Second
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	det := []string{"workspace", "detector"}
	return &Runner{cfg: cfg, store: store, detectors: detectors, limits: limits, logger: logger.With("component", "anomaly"),
		now: time.Now, changed: make(chan struct{}, 1), running: map[string]*running{},
		duration: promauto.With(reg).NewHistogramVec(prometheus.HistogramOpts{Name: "orrery_anomaly_evaluation_duration_seconds",
			Help: "Time an anomaly detector's evaluation took: its query, the forests and the write.", Buckets: prometheus.ExponentialBuckets(0.001, 4, 8)}, det),
		failures: promauto.With(reg).NewCounterVec(prometheus.CounterOpts{Name: "orrery_anomaly_evaluation_failures_total",
			Help: "Anomaly detector evaluations or trainings that failed."}, det),
		series: promauto.With(reg).NewGaugeVec(prometheus.GaugeOpts{Name: "orrery_anomaly_series",
			Help: "Result series an anomaly detector models."}, det),
		leases: promauto.With(reg).NewGauge(prometheus.GaugeOpts{Name: "orrery_anomaly_leases_held",
			Help: "Anomaly detectors whose lease this replica holds, which it runs (with replicas sharing the catalog)."}),
	}, nil
}

// Changed asks the runner to read the detectors again now. It does not
// block.
func (r *Runner) Changed(workspace.ID) {
	select {
	case r.changed <- struct{}{}:
	default:
	}
}

// Run runs the detectors until ctx is done, then stops them (saving their
// models) and returns.
func (r *Runner) Run(ctx context.Context) error {
	defer r.stopAll()
	r.sync(ctx)
	period := r.cfg.PollInterval
	if r.cfg.Leases != nil {
		// The poll renews the leases too: often enough that one missed
		// renewal does not lose them.
		period = min(period, r.cfg.LeaseDuration/3)
	}
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-r.changed:
		}
		r.sync(ctx)
	}
}

// sync starts the detectors that are not running, restarts those whose
// definition changed, and stops (and forgets the models of) those gone.
// With leases it runs only the detectors whose lease it holds: it stops
// one whose lease another replica took, or that it could not renew
// before it ran out (the catalog unreachable).
func (r *Runner) sync(ctx context.Context) {
	ds, err := r.detectors.ActiveAnomalyDetectors(ctx)
	if err != nil {
		r.logger.Warn("list anomaly detectors; the running ones keep running until the next poll, or their leases end", "err", err)
		r.mu.Lock()
		defer r.mu.Unlock()
		r.dropLeases(nil)
		return
	}
	want := map[string]catalog.AnomalyDetector{}
	for _, d := range ds {
		want[key(d.Workspace, d.ID)] = d
	}
	// held: the detectors this replica may run, until when (zero: no
	// lease needed). unsure: those whose lease could not be renewed.
	held, unsure := map[string]time.Time{}, map[string]bool{}
	for k := range want {
		if r.cfg.Leases == nil {
			held[k] = time.Time{}
			continue
		}
		began := time.Now()
		ok, err := r.cfg.Leases.AcquireLease(ctx, leaseName(k), r.cfg.Replica, r.cfg.LeaseDuration)
		switch {
		case err != nil:
			if ctx.Err() == nil {
				r.logger.Warn("renew anomaly detector lease; the next poll retries", "detector", k, "err", err)
			}
			unsure[k] = true
		case ok:
			held[k] = began.Add(r.cfg.LeaseDuration)
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for k, run := range r.running {
		d, ok := want[k]
		if !ok {
			run.cancel()
			<-run.done
			delete(r.running, k)
			ws, id := splitKey(k)
			r.forget(ws, id)
			r.release(k)
			continue
		}
		if _, mine := held[k]; mine && d.Generation == run.generation && string(d.Spec) == run.spec {
			continue
		}
		if unsure[k] {
			continue // dropLeases decides below.
		}
		if _, mine := held[k]; !mine {
			r.logger.Info("anomaly detector lease taken by another replica; stopped here", "detector", k)
		}
		run.cancel()
		<-run.done
		delete(r.running, k)
	}
	r.dropLeases(unsure)
	for k, d := range want {
		until, mine := held[k]
		if run, ok := r.running[k]; ok {
			if mine {
				run.leaseUntil = until
			}
			continue
		}
		if !mine || ctx.Err() != nil {
			continue
		}
		dctx, cancel := context.WithCancel(ctx)
		run := &running{generation: d.Generation, spec: string(d.Spec), cancel: cancel, done: make(chan struct{}), leaseUntil: until}
		r.running[k] = run
		go func() {
			defer close(run.done)
			r.runDetector(dctx, d)
		}()
	}
	if r.cfg.Leases != nil {
		r.leases.Set(float64(len(r.running)))
	}
}

// dropLeases stops the running detectors whose lease could not be renewed
// (all of them when unsure is nil) and has run out: another replica may
// run them now. It is called with r.mu held.
func (r *Runner) dropLeases(unsure map[string]bool) {
	if r.cfg.Leases == nil {
		return
	}
	now := time.Now()
	for k, run := range r.running {
		if (unsure == nil || unsure[k]) && now.After(run.leaseUntil) {
			r.logger.Warn("anomaly detector lease not renewed in time; stopped, another replica may run it", "detector", k)
			run.cancel()
			<-run.done
			delete(r.running, k)
		}
	}
	r.leases.Set(float64(len(r.running)))
}

func leaseName(k string) string { return "anomaly/" + k }

// release gives up a detector's lease, once it stopped and saved its
// model, so that another replica takes it over at its next poll.
func (r *Runner) release(k string) {
	if r.cfg.Leases == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := r.cfg.Leases.ReleaseLease(ctx, leaseName(k), r.cfg.Replica); err != nil {
		r.logger.Warn("release anomaly detector lease; another replica takes it when it expires", "detector", k, "err", err)
	}
}

// Forget stops a workspace's detectors and removes their models, before
// the workspace's data is deleted. It returns when none of them evaluates
// or writes any more; a sync does not start them again while the
// workspace is not ACTIVE.
func (r *Runner) Forget(id workspace.ID) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for k, run := range r.running {
		ws, detector := splitKey(k)
		if ws != id {
			continue
		}
		run.cancel()
		<-run.done
		delete(r.running, k)
		r.forget(ws, detector)
		r.release(k)
	}
	if r.cfg.Models != nil {
		return // The catalog removes the workspace's models with it.
	}
	if err := os.RemoveAll(filepath.Join(r.cfg.Dir, id.String())); err != nil {
		r.logger.Warn("remove the anomaly models of a deleted workspace; they stay on disk", "workspace", id, "err", err)
	}
}

func (r *Runner) stopAll() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for k, run := range r.running {
		run.cancel()
		<-run.done
		delete(r.running, k)
		r.release(k)
	}
	if r.cfg.Leases != nil {
		r.leases.Set(0)
	}
}

// forget removes a deleted detector's model and metrics.
func (r *Runner) forget(id workspace.ID, detector string) {
	// Models in the catalog go with the detector's record.
	if r.cfg.Models == nil {
		r.removeModelFile(id, detector)
	}
	r.duration.DeleteLabelValues(id.String(), detector)
	r.failures.DeleteLabelValues(id.String(), detector)
	r.series.DeleteLabelValues(id.String(), detector)
}

func (r *Runner) removeModelFile(id workspace.ID, detector string) {
	if err := os.Remove(r.modelPath(id, detector)); err != nil && !errors.Is(err, os.ErrNotExist) {
		r.logger.Warn("remove the model of a deleted anomaly detector; it stays on disk", "workspace", id, "detector", detector, "err", err)
	}
}

func key(id workspace.ID, detector string) string { return id.String() + "/" + detector }

// splitKey undoes key: a workspace id holds no '/'.
func splitKey(k string) (workspace.ID, string) {
	id, detector, _ := strings.Cut(k, "/")
	return workspace.ID(id), detector
}

func (r *Runner) modelPath(id workspace.ID, detector string) string {
	return filepath.Join(r.cfg.Dir, id.String(), detector+".model")
}

// runDetector trains (or loads) a detector's model, then evaluates it at
// each interval until ctx is done, and saves its model.
func (r *Runner) runDetector(ctx context.Context, d catalog.AnomalyDetector) {
	logger := r.logger.With("workspace", d.Workspace, "detector", d.ID)
	det, err := r.newDetector(d)
	if err != nil {
		// The API validated the spec: this one was stored by another
		// version, or damaged.
		r.setStatus(d, failedStatus(d), fmt.Sprintf("the detector's definition cannot run: %v", err))
		logger.Error("anomaly detector definition", "err", err)
		return
	}
	defer func() {
		if err := det.save(); err != nil {
			logger.Warn("save anomaly detector model; it will train again at the next start", "err", err)
		}
	}()
	interval := det.interval
	loaded := false
	switch err := det.load(); {
	case err == nil:
		loaded = true
		logger.Info("anomaly detector model loaded", "series", len(det.forests))
	case !errors.Is(err, os.ErrNotExist):
		logger.Warn("load anomaly detector model; training it again", "err", err)
	}
	for {
		now := r.now().Truncate(interval)
		if !det.trained {
			err := det.train(ctx, now, loaded)
			if err != nil {
				r.failures.WithLabelValues(d.Workspace.String(), d.ID).Inc()
				r.setStatus(d, failedStatus(d), err.Error())
				logger.Warn("train anomaly detector; trying again at the next interval", "err", err)
			} else {
				r.setStatus(d, catalog.DetectorActive, det.reason)
				// Training is the costly part: a replica taking the
				// detector over after this one dies loads it.
				if err := det.save(); err != nil {
					logger.Warn("save anomaly detector model; it is saved again later", "err", err)
				}
			}
		} else {
			began := time.Now()
			reason := det.reason
			if err := det.evaluate(ctx, now); err != nil {
				r.failures.WithLabelValues(d.Workspace.String(), d.ID).Inc()
				logger.Warn("evaluate anomaly detector; its series miss this interval", "err", err)
			}
			r.duration.WithLabelValues(d.Workspace.String(), d.ID).Observe(time.Since(began).Seconds())
			if det.reason != reason {
				r.setStatus(d, catalog.DetectorActive, det.reason)
			}
			if det.evaluations%r.cfg.SaveEvery == 0 {
				if err := det.save(); err != nil {
					logger.Warn("save anomaly detector model; the last saved one is kept", "err", err)
				}
			}
		}
		r.series.WithLabelValues(d.Workspace.String(), d.ID).Set(float64(len(det.forests)))
		wait := time.Until(now.Add(interval))
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

func failedStatus(d catalog.AnomalyDetector) string {
	if d.Generation > 1 {
		return catalog.DetectorUpdateFailed
	}
	return catalog.DetectorCreationFailed
}

func (r *Runner) setStatus(d catalog.AnomalyDetector, status, reason string) {
	// The detector's own context may be cancelled: a status write is quick
	// and should not be lost to a concurrent put.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.detectors.SetAnomalyDetectorStatus(ctx, d.Workspace, d.ID, d.Generation, status, reason); err != nil {
		r.logger.Warn("record anomaly detector status; the previous one stays", "workspace", d.Workspace, "detector", d.ID, "status", status, "err", err)
	}
}

// detector is one running detector: its forests by result series. It is
// used by one goroutine.
type detector struct {
	r           *Runner
	d           catalog.AnomalyDetector
	spec        Spec
	cfg         Config
	interval    time.Duration
	engine      *promql.Engine
	forests     map[string]*seriesModel // by the result series' labels.
	last        int64                   // the last evaluation learnt, ms.
	trained     bool
	reason      string // the status reason while ACTIVE: a series limit reached.
	evaluations int
}

type seriesModel struct {
	labels labels.Labels
	forest *Forest
	seen   int64 // the last evaluation that found the series, ms.
}

func (r *Runner) newDetector(d catalog.AnomalyDetector) (*detector, error) {
	var spec Spec
	if err := json.Unmarshal(d.Spec, &spec); err != nil {
		return nil, err
	}
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	cfg, err := spec.ForestConfig()
	if err != nil {
		return nil, err
	}
	opts := query.EngineOpts(r.limits.Limits(d.Workspace), r.cfg.LookbackDelta)
	return &detector{r: r, d: d, spec: spec, cfg: cfg, interval: time.Duration(spec.EvaluationIntervalInSeconds) * time.Second,
		engine: promql.NewEngine(opts), forests: map[string]*seriesModel{}}, nil
}

// model returns the forest of a result series, created on first sight. A
// series beyond the workspace's max_anomaly_detector_series gets none.
func (det *detector) model(ls labels.Labels) *seriesModel {
	k := ls.String()
	if m := det.forests[k]; m != nil {
		return m
	}
	if max := det.r.limits.Limits(det.d.Workspace).MaxAnomalyDetectorSeries; max > 0 && len(det.forests) >= max {
		det.reason = fmt.Sprintf("the query returns more series than the %d a detector models (max_anomaly_detector_series): the others are not judged", max)
		return nil
	}
	cfg := det.cfg
	// Each series' forest has its own seed, the same on every replica and
	// after every restart.
	h := fnv.New64a()
	h.Write([]byte(det.d.ID))
	h.Write([]byte(k))
	cfg.Seed = h.Sum64()
	f, err := New(cfg)
	if err != nil { // cfg was validated in newDetector.
		return nil
	}
	m := &seriesModel{labels: ls, forest: f}
	det.forests[k] = m
	return m
}

// train feeds the forests the history up to now: all of it that a model
// holds (ShingleSize+SampleSize intervals) for a new model, the intervals
// missed since it was saved for a loaded one.
func (det *detector) train(ctx context.Context, now time.Time, loaded bool) error {
	span := time.Duration(det.cfg.ShingleSize+det.cfg.SampleSize) * det.interval
	start := now.Add(-span)
	if loaded {
		if t := time.UnixMilli(det.last).Add(det.interval); t.After(start) {
			start = t
		}
	}
	if max := time.Duration(det.r.limits.Limits(det.d.Workspace).MaxQueryRange); max > 0 && now.Sub(start) > max {
		start = now.Add(-max)
	}
	if !start.After(now) {
		q, err := det.engine.NewRangeQuery(ctx, det.r.store.Queryable(det.d.Workspace), nil, det.spec.Configuration.RandomCutForest.Query, start, now, det.interval)
		if err != nil {
			return fmt.Errorf("query history: %w", err)
		}
		res := q.Exec(ctx)
		defer q.Close()
		if res.Err != nil {
			return fmt.Errorf("query history: %w", res.Err)
		}
		m, err := res.Matrix()
		if err != nil {
			return fmt.Errorf("query history: %w", err)
		}
		for _, s := range m {
			sm := det.model(s.Metric)
			if sm == nil {
				continue
			}
			for _, p := range s.Floats {
				sm.forest.Update(p.F)
				sm.seen = p.T
			}
		}
	}
	det.last, det.trained = now.UnixMilli(), true
	return nil
}

// evaluate judges the query's value at t for each result series and
// writes the bands and score.
func (det *detector) evaluate(ctx context.Context, t time.Time) error {
	det.evaluations++
	ts := t.UnixMilli()
	if ts <= det.last {
		return nil // already learnt (a restart within the interval).
	}
	q, err := det.engine.NewInstantQuery(ctx, det.r.store.Queryable(det.d.Workspace), nil, det.spec.Configuration.RandomCutForest.Query, t)
	if err != nil {
		return fmt.Errorf("query: %w", err)
	}
	defer q.Close()
	res := q.Exec(ctx)
	if res.Err != nil {
		return fmt.Errorf("query: %w", res.Err)
	}
	vec, err := res.Vector()
	if err != nil {
		return fmt.Errorf("query: %w", err)
	}
	// Series in a stable order, so that which ones a series limit leaves
	// out does not change from one evaluation to the next.
	slices.SortFunc(vec, func(a, b promql.Sample) int { return labels.Compare(a.Metric, b.Metric) })
	app, err := det.r.store.Appender(ctx, det.d.Workspace)
	if err != nil {
		return fmt.Errorf("write results: %w", err)
	}
	seen := map[string]bool{}
	det.reason = ""
	for _, s := range vec {
		if s.H != nil {
			continue // a histogram has no value to judge.
		}
		sm := det.model(s.Metric)
		if sm == nil {
			continue
		}
		seen[s.Metric.String()] = true
		sm.seen = ts
		res := sm.forest.Update(s.F)
		if !res.Ready {
			continue
		}
		if err := det.write(app, sm.labels, ts, res.Lower, res.Upper, res.Score); err != nil {
			_ = app.Rollback()
			return err
		}
	}
	// A series missing for longer than a model's history has gone (a pod
	// replaced, a label changed): its forest is dropped, and with it its
	// place under the series limit and its missing-data anomalies.
	span := int64(det.cfg.ShingleSize+det.cfg.SampleSize) * det.interval.Milliseconds()
	for k, sm := range det.forests {
		if !seen[k] && ts-sm.seen > span {
			delete(det.forests, k)
		}
	}
	if det.spec.MarkMissing() {
		for k, sm := range det.forests {
			if !seen[k] {
				// A missing value is an anomaly: the score is 1, and there
				// is no band to draw.
				if _, err := app.Append(0, det.output(MetricScore, sm.labels), 0, ts, 1, nil, nil, storage.AOptions{}); err != nil {
					_ = app.Rollback()
					return fmt.Errorf("write results: %w", err)
				}
			}
		}
	}
	if err := app.Commit(); err != nil {
		return fmt.Errorf("write results: %w", err)
	}
	det.last = ts
	return nil
}

func (det *detector) write(app storage.AppenderV2, ls labels.Labels, ts int64, lower, upper, score float64) error {
	for _, o := range []struct {
		name string
		v    float64
	}{{MetricLower, lower}, {MetricUpper, upper}, {MetricScore, score}} {
		if _, err := app.Append(0, det.output(o.name, ls), 0, ts, o.v, nil, nil, storage.AOptions{}); err != nil {
			return fmt.Errorf("write %s: %w", o.name, err)
		}
	}
	return nil
}

// output returns the labels of an output series: the result series', the
// detector's own labels, its id and the metric name.
func (det *detector) output(name string, ls labels.Labels) labels.Labels {
	b := labels.NewBuilder(ls)
	for k, v := range det.spec.Labels {
		b.Set(k, v)
	}
	b.Set(LabelDetector, det.d.ID)
	b.Set(labels.MetricName, name)
	return b.Labels()
}

// modelFile is a detector's saved model.
type modelFile struct {
	Generation int64
	Spec       string
	Last       int64
	Series     []savedSeries
}

type savedSeries struct {
	Labels map[string]string
	Seen   int64
	Forest []byte
}

// save writes the model atomically: a crash leaves the previous file.
func (det *detector) save() error {
	if !det.trained {
		return nil
	}
	mf := modelFile{Generation: det.d.Generation, Spec: string(det.d.Spec), Last: det.last}
	for _, sm := range det.forests {
		b, err := sm.forest.MarshalBinary()
		if err != nil {
			return err
		}
		mf.Series = append(mf.Series, savedSeries{Labels: sm.labels.Map(), Seen: sm.seen, Forest: b})
	}
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(&mf); err != nil {
		return fmt.Errorf("encode model: %w", err)
	}
	if m := det.r.cfg.Models; m != nil {
		// The detector's context may be done: a stop saves too.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return m.SaveAnomalyModel(ctx, det.d.Workspace, det.d.ID, det.d.Generation, det.last, buf.Bytes())
	}
	path := det.r.modelPath(det.d.Workspace, det.d.ID)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), det.d.ID+".tmp-*")
	if err != nil {
		return err
	}
	if _, err := tmp.Write(buf.Bytes()); err != nil {
		_ = tmp.Close()
		_ = os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Close(); err != nil {
		_ = os.Remove(tmp.Name())
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// load reads the saved model if it is of the detector's generation and
// definition; otherwise (or if there is none) it returns an error
// matching os.ErrNotExist.
func (det *detector) load() error {
	var data []byte
	var err error
	if m := det.r.cfg.Models; m != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		data, err = m.AnomalyModel(ctx, det.d.Workspace, det.d.ID)
		if errors.Is(err, catalog.ErrNotFound) {
			err = fmt.Errorf("%w: %w", err, os.ErrNotExist)
		}
	} else {
		data, err = os.ReadFile(det.r.modelPath(det.d.Workspace, det.d.ID))
	}
	if err != nil {
		return err
	}
	var mf modelFile
	if err := gob.NewDecoder(bytes.NewReader(data)).Decode(&mf); err != nil {
		return fmt.Errorf("decode model: %w", err)
	}
	if mf.Generation != det.d.Generation || mf.Spec != string(det.d.Spec) {
		return fmt.Errorf("model of generation %d, detector at %d: %w", mf.Generation, det.d.Generation, os.ErrNotExist)
	}
	forests := map[string]*seriesModel{}
	for _, s := range mf.Series {
		f := &Forest{}
		if err := f.UnmarshalBinary(s.Forest); err != nil {
			return err
		}
		ls := labels.FromMap(s.Labels)
		forests[ls.String()] = &seriesModel{labels: ls, forest: f, seen: s.Seen}
	}
	det.forests, det.last = forests, mf.Last
	return nil
}
