package anomaly

import (
	"context"
	"encoding/json"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage"
	"github.com/stretchr/testify/require"

	"github.com/orrery-dev/orrery/internal/catalog"
	orstorage "github.com/orrery-dev/orrery/internal/storage"
	"github.com/orrery-dev/orrery/internal/workspace"
)

type runnerEnv struct {
	cat   *catalog.Catalog
	store *orstorage.Store
	ov    *workspace.Overrides
	ws    workspace.ID
	dir   string
	reg   *prometheus.Registry
}

func newRunnerEnv(t *testing.T) *runnerEnv {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	cat, err := catalog.OpenSQLite(ctx, filepath.Join(dir, "catalog.db"))
	require.NoError(t, err)
	t.Cleanup(func() { _ = cat.Close() })
	ov, err := workspace.NewOverrides(workspace.DefaultLimits())
	require.NoError(t, err)
	st, err := orstorage.New(orstorage.Config{Dir: dir}, ov, nil, prometheus.NewRegistry())
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	ws, _, err := cat.CreateWorkspace(ctx, catalog.Workspace{ID: workspace.NewID(), Status: catalog.StatusActive, CreatedAt: time.Now()})
	require.NoError(t, err)
	return &runnerEnv{cat: cat, store: st, ov: ov, ws: ws.ID, dir: dir, reg: prometheus.NewRegistry()}
}

// write stores samples of latency{svc=...} at the given times.
func (e *runnerEnv) write(t *testing.T, svc string, ts []time.Time, vs []float64) {
	t.Helper()
	app, err := e.store.Appender(context.Background(), e.ws)
	require.NoError(t, err)
	ls := labels.FromStrings("__name__", "latency", "svc", svc)
	for i := range ts {
		_, err := app.Append(0, ls, 0, ts[i].UnixMilli(), vs[i], nil, nil, storage.AOptions{})
		require.NoError(t, err)
	}
	require.NoError(t, app.Commit())
}

func (e *runnerEnv) detector(t *testing.T, query string) catalog.AnomalyDetector {
	t.Helper()
	skip := true
	return e.detectorSpec(t, Spec{EvaluationIntervalInSeconds: 60, MissingDataAction: &MissingDataAction{Skip: &skip},
		Configuration: &Configuration{RandomCutForest: &RandomCutForest{Query: query, ShingleSize: 4, SampleSize: 64}},
		Labels:        map[string]string{"team": "mesh"}})
}

func (e *runnerEnv) detectorSpec(t *testing.T, spec Spec) catalog.AnomalyDetector {
	t.Helper()
	require.NoError(t, spec.Validate())
	b, err := json.Marshal(spec)
	require.NoError(t, err)
	d, _, err := e.cat.CreateAnomalyDetector(context.Background(), catalog.AnomalyDetector{Workspace: e.ws, ID: "ad-test", Alias: "latency",
		Spec: b, Status: catalog.DetectorCreating, CreatedAt: time.Now()}, 0)
	require.NoError(t, err)
	return d
}

func (e *runnerEnv) runner(t *testing.T) *Runner {
	t.Helper()
	r, err := NewRunner(RunnerConfig{Dir: filepath.Join(e.dir, "anomaly")}, e.store, e.cat, e.ov, nil, e.reg)
	require.NoError(t, err)
	return r
}

// instant evaluates q at t on the workspace.
func (e *runnerEnv) instant(t *testing.T, q string, at time.Time) promql.Vector {
	t.Helper()
	eng := promql.NewEngine(promql.EngineOpts{MaxSamples: 1e6, Timeout: time.Minute, LookbackDelta: 5 * time.Minute})
	qry, err := eng.NewInstantQuery(context.Background(), e.store.Queryable(e.ws), nil, q, at)
	require.NoError(t, err)
	defer qry.Close()
	res := qry.Exec(context.Background())
	require.NoError(t, res.Err)
	v, err := res.Vector()
	require.NoError(t, err)
	return v
}

// TestDetectorTrainsEvaluatesAndResumes trains a detector on four hours of
// a latency series, flags a spike in the series it writes back, and
// resumes from its saved model without training again.
func TestDetectorTrainsEvaluatesAndResumes(t *testing.T) {
	e := newRunnerEnv(t)
	ctx := context.Background()
	r := e.runner(t)
	d := e.detector(t, `sum by (svc) (latency)`)
	base := time.Now().Add(-6 * time.Hour).Truncate(time.Minute)
	rng := rand.New(rand.NewPCG(1, 2))
	var ts []time.Time
	var vs []float64
	for i := range 240 {
		ts = append(ts, base.Add(time.Duration(i)*time.Minute))
		vs = append(vs, 5+0.2*rng.NormFloat64())
	}
	e.write(t, "payments", ts, vs)
	t0 := ts[len(ts)-1]

	det, err := r.newDetector(d)
	require.NoError(t, err)
	require.NoError(t, det.train(ctx, t0, false))
	require.Len(t, det.forests, 1)
	// ShingleSize+SampleSize intervals of history, and the end point.
	require.Equal(t, uint64(4+64+1), det.forests[`{svc="payments"}`].forest.Seen())

	spike := 20
	for i := 1; i <= 30; i++ {
		at := t0.Add(time.Duration(i) * time.Minute)
		v := 5 + 0.2*rng.NormFloat64()
		if i == spike {
			v = 25
		}
		e.write(t, "payments", []time.Time{at}, []float64{v})
		require.NoError(t, det.evaluate(ctx, at))
	}
	score := e.instant(t, `anomaly_detector:score`, t0.Add(time.Duration(spike)*time.Minute))
	require.Len(t, score, 1)
	require.Equal(t, labels.FromStrings("__name__", MetricScore, LabelDetector, "ad-test", "svc", "payments", "team", "mesh"), score[0].Metric)
	require.GreaterOrEqual(t, score[0].F, 0.5, "the spike is an anomaly")
	normal := e.instant(t, `anomaly_detector:score`, t0.Add(10*time.Minute))
	require.Less(t, normal[0].F, 0.5)
	upper := e.instant(t, `anomaly_detector:upper_band`, t0.Add(10*time.Minute))
	lower := e.instant(t, `anomaly_detector:lower_band`, t0.Add(10*time.Minute))
	require.InDelta(t, 5, (upper[0].F+lower[0].F)/2, 0.5)
	require.Less(t, upper[0].F, 25.0)

	// Saved, then loaded by a new run: the model goes on from where it
	// was, learning only the intervals it missed.
	require.NoError(t, det.save())
	seen := det.forests[`{svc="payments"}`].forest.Seen()
	last := t0.Add(30 * time.Minute)
	var missed []time.Time
	for i := 31; i <= 33; i++ {
		missed = append(missed, t0.Add(time.Duration(i)*time.Minute))
	}
	e.write(t, "payments", missed, []float64{5, 5.1, 4.9})
	again, err := r.newDetector(d)
	require.NoError(t, err)
	require.NoError(t, again.load())
	require.Equal(t, last.UnixMilli(), again.last)
	require.NoError(t, again.train(ctx, missed[2], true))
	require.Equal(t, seen+3, again.forests[`{svc="payments"}`].forest.Seen())

	// A put (a new generation) does not load the old model.
	require.NoError(t, e.cat.PutAnomalyDetector(ctx, e.ws, d.ID, d.Spec, catalog.DetectorUpdating, time.Now()))
	d2, err := e.cat.AnomalyDetector(ctx, e.ws, d.ID)
	require.NoError(t, err)
	fresh, err := r.newDetector(d2)
	require.NoError(t, err)
	require.ErrorIs(t, fresh.load(), os.ErrNotExist)
}

// TestDetectorLateAndMissedWrites: a latency histogram written every
// second, on time while the detector trains, then by a client that falls
// behind under load (writes late, some missed). Its p99 is steady, but
// histogram_quantile computes it a rounding apart from one evaluation to
// the next once the bucket rates vary with the timing. No evaluation of it
// is an anomaly; the p99 rising is.
func TestDetectorLateAndMissedWrites(t *testing.T) {
	e := newRunnerEnv(t)
	ctx := context.Background()
	d := e.detectorSpec(t, Spec{EvaluationIntervalInSeconds: 30, Configuration: &Configuration{RandomCutForest: &RandomCutForest{
		Query:       `max by (svc) (histogram_quantile(0.99, sum by (le, svc) (rate(rq_time_bucket[1m]))))`,
		ShingleSize: 4, SampleSize: 32}}})
	det, err := e.runner(t).newDetector(d)
	require.NoError(t, err)
	les := []string{"0.5", "1", "25", "+Inf"}
	counts := make([]float64, len(les))
	rng := rand.New(rand.NewPCG(3, 4))
	// write adds a second of 100 requests at or under le; when late, it
	// writes them up to 300 ms late, or not at all one second in ten.
	late := false
	write := func(at time.Time, le string) {
		in := false
		for i := range les {
			in = in || les[i] == le
			if in {
				counts[i] += 100
			}
		}
		if late {
			if rng.IntN(10) == 0 {
				return
			}
			at = at.Add(time.Duration(rng.IntN(300)) * time.Millisecond)
		}
		app, err := e.store.Appender(ctx, e.ws)
		require.NoError(t, err)
		for i, l := range les {
			_, err := app.Append(0, labels.FromStrings("__name__", "rq_time_bucket", "svc", "payments", "le", l), 0, at.UnixMilli(), counts[i], nil, nil, storage.AOptions{})
			require.NoError(t, err)
		}
		require.NoError(t, app.Commit())
	}
	start := time.Now().Add(-2 * time.Hour).Truncate(time.Minute)
	at := start.Add(317 * time.Millisecond)
	t0 := start.Add(20 * time.Minute)
	for ; at.Before(t0); at = at.Add(time.Second) {
		write(at, "1")
	}
	require.NoError(t, det.train(ctx, t0, false))
	score := func(ev time.Time) float64 {
		v := e.instant(t, `anomaly_detector:score`, ev)
		require.Len(t, v, 1, "a score at %s", ev)
		return v[0].F
	}
	late = true
	ev := t0
	for range 60 {
		ev = ev.Add(30 * time.Second)
		for ; at.Before(ev); at = at.Add(time.Second) {
			write(at, "1")
		}
		require.NoError(t, det.evaluate(ctx, ev))
		require.Less(t, score(ev), 0.5, "steady traffic scored at %s", ev.Sub(t0))
	}
	ev = ev.Add(30 * time.Second)
	for ; at.Before(ev); at = at.Add(time.Second) {
		write(at, "25")
	}
	require.NoError(t, det.evaluate(ctx, ev))
	require.GreaterOrEqual(t, score(ev), 0.5, "slow requests are an anomaly")
}

// TestDetectorSeriesLimit models the first series by labels only, and says
// so in the status reason.
func TestDetectorSeriesLimit(t *testing.T) {
	e := newRunnerEnv(t)
	ctx := context.Background()
	lim := e.ov.Limits(e.ws)
	lim.MaxAnomalyDetectorSeries = 1
	require.NoError(t, e.ov.Set(e.ws, lim))
	d := e.detector(t, `sum by (svc) (latency)`)
	at := time.Now().Truncate(time.Minute)
	e.write(t, "a", []time.Time{at}, []float64{1})
	e.write(t, "b", []time.Time{at}, []float64{2})
	det, err := e.runner(t).newDetector(d)
	require.NoError(t, err)
	require.NoError(t, det.evaluate(ctx, at))
	require.Len(t, det.forests, 1)
	require.Contains(t, det.forests, `{svc="a"}`)
	require.Contains(t, det.reason, "max_anomaly_detector_series")
}

// TestDetectorForgetsGoneSeries drops the forest of a series missing for
// longer than a model's history, and marks it anomalous until then when
// asked to.
func TestDetectorForgetsGoneSeries(t *testing.T) {
	e := newRunnerEnv(t)
	ctx := context.Background()
	d := e.detector(t, `sum by (svc) (latency)`)
	var spec Spec
	require.NoError(t, json.Unmarshal(d.Spec, &spec))
	mark := true
	spec.MissingDataAction = &MissingDataAction{MarkAsAnomaly: &mark}
	d.Spec, _ = json.Marshal(spec)
	det, err := e.runner(t).newDetector(d)
	require.NoError(t, err)
	start := time.Now().Add(-3 * time.Hour).Truncate(time.Minute)
	e.write(t, "gone", []time.Time{start}, []float64{1})
	require.NoError(t, det.evaluate(ctx, start))
	require.Len(t, det.forests, 1)
	// Its sample leaves the lookback after 5 minutes: missing from then on.
	for i := 1; i <= 4+64+6; i++ {
		at := start.Add(time.Duration(i) * time.Minute)
		require.NoError(t, det.evaluate(ctx, at))
		if i == 10 {
			v := e.instant(t, `anomaly_detector:score{svc="gone"}`, at)
			require.Len(t, v, 1)
			require.Equal(t, 1.0, v[0].F, "a missing value is an anomaly")
		}
	}
	require.Empty(t, det.forests, "gone after 68 intervals without it")
}

// TestRunnerLifecycle starts the runner's detectors through sync: a new
// detector trains and becomes ACTIVE, a deleted one stops and its model is
// removed, and the models are saved when the runner stops.
func TestRunnerLifecycle(t *testing.T) {
	e := newRunnerEnv(t)
	d := e.detector(t, `sum(latency)`)
	r := e.runner(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	active := func(id string) func() bool {
		return func() bool {
			got, err := e.cat.AnomalyDetector(ctx, e.ws, id)
			return err == nil && got.Status == catalog.DetectorActive
		}
	}
	r.sync(ctx)
	require.Eventually(t, active(d.ID), 10*time.Second, 20*time.Millisecond)
	require.Zero(t, testutil.ToFloat64(r.series.WithLabelValues(e.ws.String(), d.ID)), "no series: the workspace is empty")

	require.NoError(t, e.cat.RemoveAnomalyDetector(ctx, e.ws, d.ID))
	r.sync(ctx)
	_, err := os.Stat(r.modelPath(e.ws, d.ID))
	require.ErrorIs(t, err, os.ErrNotExist, "a deleted detector's model is removed")

	d = e.detector(t, `sum(latency)`)
	r.sync(ctx)
	require.Eventually(t, active(d.ID), 10*time.Second, 20*time.Millisecond)
	r.stopAll()
	_, err = os.Stat(r.modelPath(e.ws, d.ID))
	require.NoError(t, err, "the model is saved when the detector stops")
}

// TestRunnerTrainingFailure: a detector whose training query fails is
// CREATION_FAILED with the query's error as the reason, and counted in
// orrery_anomaly_evaluation_failures_total.
func TestRunnerTrainingFailure(t *testing.T) {
	e := newRunnerEnv(t)
	lim := e.ov.Limits(e.ws)
	lim.MaxQuerySamples = 1
	require.NoError(t, e.ov.Set(e.ws, lim))
	at := time.Now().Add(-time.Minute)
	e.write(t, "a", []time.Time{at}, []float64{1})
	e.write(t, "b", []time.Time{at}, []float64{2})
	d := e.detector(t, `sum by (svc) (latency)`)
	r := e.runner(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r.sync(ctx)
	defer r.stopAll()
	require.Eventually(t, func() bool {
		got, err := e.cat.AnomalyDetector(ctx, e.ws, d.ID)
		return err == nil && got.Status == catalog.DetectorCreationFailed && strings.Contains(got.StatusReason, "too many samples")
	}, 10*time.Second, 20*time.Millisecond)
	require.Equal(t, 1.0, testutil.ToFloat64(r.failures.WithLabelValues(e.ws.String(), d.ID)))
}

// syncBuffer is a log destination safe for the runner's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestRunnerLeases runs a detector on two runners sharing a catalog, as
// replicas do: one runs it and saves its trained model in the catalog; when
// it stops, its lease is released and the other takes the detector over,
// loading that model; a runner whose lease is taken stops the detector.
func TestRunnerLeases(t *testing.T) {
	e := newRunnerEnv(t)
	ctx := context.Background()
	base := time.Now().Add(-3 * time.Hour).Truncate(time.Minute)
	var ts []time.Time
	var vs []float64
	for i := range 180 {
		ts = append(ts, base.Add(time.Duration(i)*time.Minute))
		vs = append(vs, 10+float64(i%7))
	}
	e.write(t, "payments", ts, vs)
	d := e.detector(t, `sum by (svc) (latency)`)

	replica := func(name string) (*Runner, *syncBuffer) {
		c, err := catalog.OpenSQLite(ctx, filepath.Join(e.dir, "catalog.db"))
		require.NoError(t, err)
		t.Cleanup(func() { _ = c.Close() })
		logs := &syncBuffer{}
		r, err := NewRunner(RunnerConfig{Models: c, Leases: c, Replica: name, LeaseDuration: time.Minute}, e.store, c, e.ov,
			slog.New(slog.NewTextHandler(logs, nil)), prometheus.NewRegistry())
		require.NoError(t, err)
		t.Cleanup(r.stopAll)
		return r, logs
	}
	a, _ := replica("A")
	b, blogs := replica("B")
	runs := func(r *Runner) bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		return len(r.running) == 1
	}

	a.sync(ctx)
	b.sync(ctx)
	require.True(t, runs(a))
	require.False(t, runs(b), "one replica runs the detector")
	require.Equal(t, 1.0, testutil.ToFloat64(a.leases))
	require.Zero(t, testutil.ToFloat64(b.leases))
	require.Eventually(t, func() bool {
		_, err := e.cat.AnomalyModel(ctx, e.ws, d.ID)
		return err == nil
	}, 10*time.Second, 20*time.Millisecond, "the trained model is saved in the catalog")
	_, err := os.Stat(filepath.Join(e.dir, "anomaly"))
	require.ErrorIs(t, err, os.ErrNotExist, "no model on the replica's disk")

	// An orderly stop saves the model and releases the lease: the other
	// replica takes the detector over at its next sync, from that model.
	a.stopAll()
	b.sync(ctx)
	require.True(t, runs(b))
	require.Eventually(t, func() bool { return strings.Contains(blogs.String(), "anomaly detector model loaded") }, 10*time.Second, 20*time.Millisecond)
	a.sync(ctx)
	require.False(t, runs(a), "the lease is B's now")

	// A lease taken from B (here by hand, as a replica would once it
	// expired) stops the detector on B at its next sync.
	require.NoError(t, e.cat.ReleaseLease(ctx, "anomaly/"+key(e.ws, d.ID), "B"))
	ok, err := e.cat.AcquireLease(ctx, "anomaly/"+key(e.ws, d.ID), "C", time.Minute)
	require.NoError(t, err)
	require.True(t, ok)
	b.sync(ctx)
	require.False(t, runs(b))
	require.Zero(t, testutil.ToFloat64(b.leases))
	_, err = e.cat.AnomalyModel(ctx, e.ws, d.ID)
	require.NoError(t, err, "a detector that moved keeps its model")
}
