package query

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser/posrange"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/util/annotations"
	"github.com/prometheus/prometheus/util/teststorage"
	"github.com/stretchr/testify/require"

	orstorage "github.com/orrery-dev/orrery/internal/storage"
	"github.com/orrery-dev/orrery/internal/workspace"
)

// envoyStorage returns a TSDB holding Envoy-like series (counters,
// histogram buckets, gauges) for pods × clusters over span at 15 s, with
// gaps, resets and stale series, so that answers differ in shape per step.
func envoyStorage(t testing.TB, rng *rand.Rand, pods, clusters int, start time.Time, span time.Duration) *teststorage.TestStorage {
	t.Helper()
	// Head queriers as a workspace's (internal/storage), so that the
	// leaves can read the head in shards (shardedStorage).
	st := teststorage.New(t, func(o *tsdb.Options) { o.BlockQuerierFunc = orstorage.HeadQuerier })
	app := st.Appender(context.Background())
	les := []string{"0.5", "1", "5", "10", "25", "100", "+Inf"}
	for p := range pods {
		for c := range clusters {
			base := labels.FromStrings("pod", fmt.Sprintf("pod-%d", p), "envoy_cluster_name", fmt.Sprintf("cluster-%d", c), "namespace", fmt.Sprintf("ns-%d", p%3))
			// A series may start late, end early, or reset.
			from := start.Add(time.Duration(rng.IntN(4)) * 10 * time.Minute)
			to := start.Add(span - time.Duration(rng.IntN(3))*15*time.Minute)
			var rq, cx float64
			buckets := make([]float64, len(les))
			for ts := from; !ts.After(to); ts = ts.Add(15 * time.Second) {
				if rng.IntN(50) == 0 {
					continue // A missed scrape.
				}
				if rng.IntN(400) == 0 {
					rq, cx = 0, 0 // A restart.
					clear(buckets)
				}
				rq += float64(rng.IntN(100))
				cx = float64(rng.IntN(20))
				ms := ts.UnixMilli()
				add := func(name string, v float64, extra ...string) {
					b := labels.NewBuilder(base).Set(labels.MetricName, name)
					for i := 0; i < len(extra); i += 2 {
						b.Set(extra[i], extra[i+1])
					}
					_, err := app.Append(0, b.Labels(), ms, v)
					require.NoError(t, err)
				}
				add("envoy_cluster_upstream_rq_total", rq)
				add("envoy_cluster_upstream_rq_xx", rq/2, "envoy_response_code_class", "2")
				add("envoy_cluster_upstream_cx_active", cx)
				var acc float64
				for i, le := range les {
					buckets[i] += float64(rng.IntN(10))
					acc += buckets[i]
					add("envoy_cluster_upstream_rq_time_bucket", acc, "le", le)
				}
				// Native histograms, and a metric of floats for some
				// series and native histograms for others.
				h := &histogram.Histogram{Count: uint64(rq), Sum: rq * 0.01, Schema: 0, ZeroThreshold: 0.001,
					PositiveSpans: []histogram.Span{{Offset: 0, Length: 1}}, PositiveBuckets: []int64{int64(rq)}}
				hist := func(name string) {
					_, err := app.AppendHistogram(0, labels.NewBuilder(base).Set(labels.MetricName, name).Labels(), ms, h, nil)
					require.NoError(t, err)
				}
				hist("envoy_cluster_upstream_rq_duration")
				// Values whose sum overflows, and infinities: avg's
				// incremental mean.
				huge := []float64{math.MaxFloat64 / 2, -math.MaxFloat64 / 3, 1e300, math.Inf(1), math.NaN(), 7}[rng.IntN(6)]
				add("envoy_cluster_upstream_rq_huge", huge)
				if (p+c)%5 == 0 {
					hist("envoy_cluster_upstream_rq_mixed")
				} else {
					add("envoy_cluster_upstream_rq_mixed", rq)
				}
			}
			// A series that ends early may end with a stale marker, as a
			// scrape target that disappears does.
			if end := to.Add(15 * time.Second); rng.IntN(2) == 0 && end.Before(start.Add(span)) {
				_, err := app.Append(0, labels.NewBuilder(base).Set(labels.MetricName, "envoy_cluster_upstream_rq_total").Labels(), end.UnixMilli(), math.Float64frombits(value.StaleNaN))
				require.NoError(t, err)
			}
		}
	}
	require.NoError(t, app.Commit())
	return st
}

// shardedStorage is a test storage whose head the leaves read in shards,
// as they read a workspace's; the test storage alone has them walk.
type shardedStorage struct{ *teststorage.TestStorage }

func (s shardedStorage) HeadShards(mint, maxt int64, n int) ([]*orstorage.HeadShard, error) {
	return orstorage.HeadShards(s.DB, mint, maxt, n)
}

// queryTemplates are the shapes of dashboard queries the randomized test
// draws from; %s is a range, %d a parameter.
var queryTemplates = []string{
	`sum(rate(envoy_cluster_upstream_rq_total[%s]))`,
	`sum by (envoy_cluster_name) (rate(envoy_cluster_upstream_rq_total[%s]))`,
	`sum without (pod) (increase(envoy_cluster_upstream_rq_xx[%s]))`,
	`histogram_quantile(0.99, sum by (le) (rate(envoy_cluster_upstream_rq_time_bucket[%s])))`,
	`histogram_quantile(0.5, sum by (le, envoy_cluster_name) (rate(envoy_cluster_upstream_rq_time_bucket[%s])))`,
	`topk(%d, sum by (pod) (rate(envoy_cluster_upstream_rq_total[%s])))`,
	`bottomk(%d, max by (envoy_cluster_name) (envoy_cluster_upstream_cx_active))`,
	`avg by (namespace) (envoy_cluster_upstream_cx_active)`,
	`count by (envoy_cluster_name) (envoy_cluster_upstream_cx_active > %d)`,
	`count_values("v", envoy_cluster_upstream_cx_active)`,
	`group by (namespace) (envoy_cluster_upstream_cx_active)`,
	`min(envoy_cluster_upstream_cx_active) / max(envoy_cluster_upstream_cx_active)`,
	`sum(rate(envoy_cluster_upstream_rq_xx[%s])) / sum(rate(envoy_cluster_upstream_rq_total[%s]))`,
	`max_over_time(envoy_cluster_upstream_cx_active[%s])`,
	`rate(envoy_cluster_upstream_rq_total{pod=~"pod-[0-3]"}[%s])`,
	`envoy_cluster_upstream_cx_active offset %s`,
	`avg_over_time(sum(envoy_cluster_upstream_cx_active)[%s:1m])`,
	`quantile(0.9, envoy_cluster_upstream_cx_active)`,
	`stddev by (envoy_cluster_name) (envoy_cluster_upstream_cx_active)`,
	`absent(envoy_cluster_upstream_cx_active{pod="pod-404"})`,
	`time() - timestamp(envoy_cluster_upstream_cx_active)`,
	`sum(delta(envoy_cluster_upstream_cx_active[%s])) * 60`,
	`label_replace(sum by (pod) (envoy_cluster_upstream_cx_active), "p", "$1", "pod", "pod-(.*)")`,
	`rate(envoy_cluster_upstream_cx_active[%s])`,
	`sum by (pod) (rate(envoy_cluster_upstream_rq_total[%s] offset %s))`,
	`increase(envoy_cluster_upstream_rq_total{namespace="ns-1"}[%s])`,
	`histogram_quantile(0.9, rate(envoy_cluster_upstream_rq_time_bucket[%s]))`,
	`timestamp(rate(envoy_cluster_upstream_rq_total[%s]))`,
	`absent(rate(envoy_cluster_upstream_rq_total{pod="pod-404"}[%s]))`,
	`-rate(envoy_cluster_upstream_rq_total[45s]) + on (pod, envoy_cluster_name, namespace) group_left rate(envoy_cluster_upstream_rq_xx[%s])`,
	`sum(rate({__name__=~"envoy_cluster_upstream_rq_(total|xx)"}[%s]))`,
	`sum(rate(envoy_cluster_upstream_rq_duration[%s]))`,
	`sum by (pod) (rate(envoy_cluster_upstream_rq_mixed[%s]))`,
	`count_over_time(rate(envoy_cluster_upstream_rq_total[%s])[10m:1m])`,
	`topk(%d, rate(envoy_cluster_upstream_rq_total[90s]))`,
	`count by (namespace) (rate(envoy_cluster_upstream_rq_total[%s]))`,
	`max without (pod) (increase(envoy_cluster_upstream_rq_xx[%s]))`,
	`min((rate(envoy_cluster_upstream_rq_total[%s])))`,
	`group by (pod) (rate(envoy_cluster_upstream_rq_total[%s])) * on (pod) group_right sum by (pod) (rate(envoy_cluster_upstream_rq_xx[%s]))`,
	`sum by (__name__) (increase(envoy_cluster_upstream_rq_total[%s]))`,
	`avg by (envoy_cluster_name) (rate(envoy_cluster_upstream_rq_total[%s]))`,
	`avg(envoy_cluster_upstream_rq_huge)`,
	`sum without (pod) (envoy_cluster_upstream_rq_huge offset %s)`,
	`max by (namespace) (envoy_cluster_upstream_rq_huge) - min by (namespace) (envoy_cluster_upstream_rq_huge)`,
	`sum(rate(envoy_cluster_upstream_rq_huge[%s]))`,
}

func randomQuery(rng *rand.Rand) string {
	q := queryTemplates[rng.IntN(len(queryTemplates))]
	ranges := []string{"1m", "2m", "5m", "10m"}
	var args []any
	for i := 0; i < len(q)-1; i++ {
		if q[i] != '%' {
			continue
		}
		switch q[i+1] {
		case 's':
			args = append(args, ranges[rng.IntN(len(ranges))])
		case 'd':
			args = append(args, 1+rng.IntN(5))
		}
	}
	return fmt.Sprintf(q, args...)
}

type testEngines struct {
	plain  *promql.Engine
	ev     *Evaluator
	engine *Engine
	reg    *prometheus.Registry
	id     workspace.ID
}

func newTestEngines(t testing.TB, cfg EvalConfig) *testEngines {
	t.Helper()
	lim := workspace.DefaultLimits()
	reg := prometheus.NewRegistry()
	ev, err := NewEvaluator(cfg, nil, nil, reg)
	require.NoError(t, err)
	plain := promql.NewEngine(EngineOpts(lim, 5*time.Minute))
	id := workspace.NewID()
	return &testEngines{plain: plain, ev: ev, engine: ev.NewEngine(id, lim, EngineOpts(lim, 5*time.Minute)), reg: reg, id: id}
}

// rangeAnswer evaluates a range query and renders its answer, warnings
// included, exactly (floats by their bits).
func rangeAnswer(t testing.TB, eng promql.QueryEngine, q storage.Queryable, qs string, start, end time.Time, step time.Duration) string {
	t.Helper()
	qry, err := eng.NewRangeQuery(context.Background(), q, nil, qs, start, end, step)
	if err != nil {
		return "error: " + err.Error()
	}
	defer qry.Close()
	res := qry.Exec(context.Background())
	var b strings.Builder
	if !renderHead(&b, res, qs) {
		return b.String()
	}
	mat := res.Value.(promql.Matrix)
	for _, s := range mat {
		fmt.Fprintf(&b, "%s:", s.Metric)
		for _, p := range s.Floats {
			fmt.Fprintf(&b, " %d=%s", p.T, floatBits(p.F))
		}
		for _, p := range s.Histograms {
			fmt.Fprintf(&b, " %d=%s", p.T, p.H)
		}
		b.WriteString("\n")
	}
	return b.String()
}

// renderHead renders an answer's warnings and error, sorted; it reports
// whether there is a value to render.
func renderHead(b *strings.Builder, res *promql.Result, qs string) bool {
	warns, infos := res.Warnings.AsStrings(qs, 0, 0)
	warns = append(warns, infos...)
	sort.Strings(warns)
	fmt.Fprintf(b, "warnings: %q\n", warns)
	if res.Err != nil {
		fmt.Fprintf(b, "error: %v\n", res.Err)
		return false
	}
	return true
}

// floatBits renders f exactly, by its bits, but a NaN as NaN: which NaN an
// operation on a NaN yields (its sign and payload) depends on the order
// in which the compiler placed the operands in registers, which differs
// between two inlined copies of the same Go code (and between builds,
// e.g. with -race). No API tells NaNs apart (JSON and the text formats
// write NaN), and arithmetic never yields the stale marker, a signalling
// NaN.
func floatBits(f float64) string {
	if math.IsNaN(f) {
		if value.IsStaleNaN(f) {
			return "stale"
		}
		return "NaN"
	}
	return fmt.Sprintf("%x", math.Float64bits(f))
}

// instantAnswer evaluates an instant query and renders its answer, in the
// engine's order, warnings included, exactly.
func instantAnswer(t testing.TB, eng promql.QueryEngine, q storage.Queryable, qs string, ts time.Time) string {
	t.Helper()
	qry, err := eng.NewInstantQuery(context.Background(), q, nil, qs, ts)
	if err != nil {
		return "error: " + err.Error()
	}
	defer qry.Close()
	res := qry.Exec(context.Background())
	var b strings.Builder
	if !renderHead(&b, res, qs) {
		return b.String()
	}
	switch v := res.Value.(type) {
	case promql.Vector:
		// Prometheus defines the order of an instant vector only where
		// sort*(), topk() or bottomk() make one (count_values' is a map's).
		var lines []string
		for _, s := range v {
			lines = append(lines, fmt.Sprintf("%s: %d=%s %v\n", s.Metric, s.T, floatBits(s.F), s.H))
		}
		if !strings.HasPrefix(qs, "sort") && !strings.HasPrefix(qs, "topk") && !strings.HasPrefix(qs, "bottomk") {
			sort.Strings(lines)
		}
		b.WriteString(strings.Join(lines, ""))
	case promql.Scalar:
		fmt.Fprintf(&b, "scalar %d=%s\n", v.T, floatBits(v.V))
	default:
		fmt.Fprintf(&b, "%s\n", v)
	}
	return b.String()
}

// TestEngineMatchesPlainEngine is the randomized differential test:
// dashboard-shaped queries over Envoy-like data, at random ranges, steps
// and phases, answered by the split and cached engine and by the plain
// Prometheus engine, must be identical, bit for bit, warnings included.
// Repeated and overlapping ranges make answers come from the cache.
func TestEngineMatchesPlainEngine(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	// Recent data: steps reading samples older than the retention are never
	// served from the cache.
	start := time.Now().Add(-3 * time.Hour).Truncate(time.Minute)
	st := envoyStorage(t, rng, 12, 4, start, 2*time.Hour)
	te := newTestEngines(t, EvalConfig{Parallelism: 3, MinStepsPerPart: 2, MaxConcurrent: 4, CacheBytes: 32 << 20})

	iterations := 300
	if testing.Short() {
		iterations = 60
	}
	var queries []string
	for i := range iterations {
		// Half the time, ask again a query asked before, as a refreshing
		// dashboard does, over a range shifted by some steps.
		qs := randomQuery(rng)
		if len(queries) > 0 && rng.IntN(2) == 0 {
			qs = queries[rng.IntN(len(queries))]
		}
		if i == 0 {
			// Native histograms: the leaf path falls back, whatever the seed.
			qs = `sum(rate(envoy_cluster_upstream_rq_duration[5m]))`
		}
		queries = append(queries, qs)
		step := []time.Duration{15 * time.Second, 30 * time.Second, time.Minute, 90 * time.Second}[rng.IntN(4)]
		from := start.Add(time.Duration(rng.IntN(60)) * step / 2)
		to := from.Add(time.Duration(1+rng.IntN(100)) * step)
		// The leaves read the head in shards, or each walks all the series.
		var src storage.Queryable = st
		if rng.IntN(2) == 0 {
			src = shardedStorage{st}
		}
		want := rangeAnswer(t, te.plain, st, qs, from, to, step)
		got := rangeAnswer(t, te.engine, src, qs, from, to, step)
		require.Equal(t, want, got, "iteration %d: %s from %s to %s step %s", i, qs, from.UTC(), to.UTC(), step)
		want = instantAnswer(t, te.plain, st, qs, to)
		got = instantAnswer(t, te.engine, src, qs, to)
		require.Equal(t, want, got, "iteration %d: instant %s at %s", i, qs, to.UTC())
	}
	require.Positive(t, sumCounter(t, te.reg, "orrery_query_cache_hit_steps_total"), "no answer came from the cache")
	require.Positive(t, sumCounter(t, te.reg, "orrery_query_parts_total", "path", "split"), "no query was split")
	require.Positive(t, sumCounter(t, te.reg, "orrery_query_leaf_evaluations_total", "outcome", "used"), "no query used the leaf path")
	require.Positive(t, sumCounter(t, te.reg, "orrery_query_leaf_evaluations_total", "outcome", "fallback"), "no query fell back from the leaf path")
	require.Positive(t, sumCounter(t, te.reg, "orrery_query_leaf_reads_total", "read", "shards"), "no leaf read shards of the head")
	require.Positive(t, sumCounter(t, te.reg, "orrery_query_leaf_reads_total", "read", "walks"), "no leaf's workers walked all the series")
	require.Positive(t, sumCounter(t, te.reg, "orrery_query_leaf_chunks_total", "read", "decoded"), "no chunk was decoded whole")
}

// TestCacheSeesLateWrites: samples written inside a cached window (a new
// series' late samples, an out-of-order sample) change the next answer,
// through the storage's write notifications, as in the server.
func TestCacheSeesLateWrites(t *testing.T) {
	lim := workspace.DefaultLimits()
	lim.OutOfOrderWindow = model.Duration(10 * time.Minute)
	overrides, err := workspace.NewOverrides(lim)
	require.NoError(t, err)
	te := newTestEngines(t, EvalConfig{Parallelism: 2, MinStepsPerPart: 2, MaxConcurrent: 4, CacheBytes: 8 << 20, CacheFreshness: time.Minute})
	store, err := orstorage.New(orstorage.Config{Dir: t.TempDir(), Written: te.ev.Cache().Written}, overrides, nil, prometheus.NewRegistry())
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, store.Close()) })

	now := time.Now().Truncate(time.Second)
	write := func(ls labels.Labels, ts time.Time, v float64) {
		t.Helper()
		app, err := store.Appender(context.Background(), te.id)
		require.NoError(t, err)
		_, err = app.Append(0, ls, 0, ts.UnixMilli(), v, nil, nil, storage.AOptions{})
		require.NoError(t, err)
		require.NoError(t, app.Commit())
	}
	a := labels.FromStrings("__name__", "envoy_cluster_upstream_cx_active", "pod", "a")
	app, err := store.Appender(context.Background(), te.id)
	require.NoError(t, err)
	for ts := now.Truncate(time.Minute).Add(-time.Hour); ts.Before(now.Add(-5 * time.Minute)); ts = ts.Add(15 * time.Second) {
		_, err = app.Append(0, a, 0, ts.UnixMilli(), 1, nil, nil, storage.AOptions{})
		require.NoError(t, err)
	}
	require.NoError(t, app.Commit())

	q := store.Queryable(te.id)
	qs := `sum(envoy_cluster_upstream_cx_active)`
	// Steps at 10 s and 40 s past the minute, samples at 0, 15, 30, 45 s.
	from, to, step := now.Truncate(time.Minute).Add(-50*time.Minute+10*time.Second), now.Add(-2*time.Minute), 30*time.Second
	first := rangeAnswer(t, te.engine, q, qs, from, to, step)
	require.Equal(t, rangeAnswer(t, te.plain, q, qs, from, to, step), first)
	require.Equal(t, first, rangeAnswer(t, te.engine, q, qs, from, to, step))
	hits := sumCounter(t, te.reg, "orrery_query_cache_hit_steps_total")
	require.Positive(t, hits, "the second answer did not come from the cache")

	// A new series with samples 30 minutes old: in order for it, and
	// inside the cached window.
	write(labels.FromStrings("__name__", "envoy_cluster_upstream_cx_active", "pod", "late"), now.Add(-30*time.Minute), 10)
	second := rangeAnswer(t, te.engine, q, qs, from, to, step)
	require.NotEqual(t, first, second, "a late write left the cached answer unchanged")
	require.Equal(t, rangeAnswer(t, te.plain, q, qs, from, to, step), second)

	// An out-of-order sample of the first series, 7 minutes behind its
	// last, that the step 5 s later sees.
	require.Equal(t, second, rangeAnswer(t, te.engine, q, qs, from, to, step))
	write(a, now.Truncate(time.Minute).Add(-12*time.Minute+5*time.Second), 100)
	third := rangeAnswer(t, te.engine, q, qs, from, to, step)
	require.NotEqual(t, second, third, "an out-of-order write left the cached answer unchanged")
	require.Equal(t, rangeAnswer(t, te.plain, q, qs, from, to, step), third)

	// delete_series over 12 minutes of the window (longer than the lookback).
	require.NoError(t, store.Admin(te.id).Delete(context.Background(), now.Add(-48*time.Minute).UnixMilli(), now.Add(-36*time.Minute).UnixMilli(),
		labels.MustNewMatcher(labels.MatchEqual, "pod", "a")))
	fourth := rangeAnswer(t, te.engine, q, qs, from, to, step)
	require.NotEqual(t, third, fourth, "delete_series left the cached answer unchanged")
	require.Equal(t, rangeAnswer(t, te.plain, q, qs, from, to, step), fourth)
}

func sumCounter(t testing.TB, reg *prometheus.Registry, name string, labelPairs ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			for i := 0; i < len(labelPairs); i += 2 {
				found := false
				for _, lp := range m.GetLabel() {
					if lp.GetName() == labelPairs[i] && lp.GetValue() == labelPairs[i+1] {
						found = true
					}
				}
				if !found {
					continue metrics
				}
			}
			sum += m.GetCounter().GetValue()
		}
	}
	return sum
}

// TestCacheStaysWithinItsSize: with a cache too small for every answer,
// extents are evicted, the cache's size stays under its bound, and the
// answers are still the plain engine's.
func TestCacheStaysWithinItsSize(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	start := time.Now().Add(-3 * time.Hour).Truncate(time.Minute)
	st := envoyStorage(t, rng, 8, 4, start, 2*time.Hour)
	const size = 256 << 10
	te := newTestEngines(t, EvalConfig{Parallelism: 2, MinStepsPerPart: 10, MaxConcurrent: 4, CacheBytes: size})
	for i := range 60 { // 30 queries of about 17 KiB of answer each, each asked twice.
		qs := fmt.Sprintf(`sum by (pod) (rate(envoy_cluster_upstream_rq_total[%dm]))`, 1+i/2)
		from := start.Add(time.Duration(i%3) * time.Minute)
		to := from.Add(time.Hour)
		require.Equal(t, rangeAnswer(t, te.plain, st, qs, from, to, 30*time.Second), rangeAnswer(t, te.engine, st, qs, from, to, 30*time.Second), qs)
		require.LessOrEqual(t, gauge(t, te.reg, "orrery_query_cache_bytes"), float64(size))
	}
	require.Positive(t, sumCounter(t, te.reg, "orrery_query_cache_evictions_total"))
	require.Positive(t, sumCounter(t, te.reg, "orrery_query_cache_hit_steps_total"))
}

func gauge(t testing.TB, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// timingOutEngine returns an engine whose workspace's query timeout is a
// nanosecond, and Envoy-like data (drawn from seed) starting at start.
func timingOutEngine(t *testing.T, seed uint64) (*Engine, storage.Queryable, time.Time) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, seed))
	start := time.Now().Add(-3 * time.Hour).Truncate(time.Minute)
	st := envoyStorage(t, rng, 8, 4, start, 2*time.Hour)
	lim := workspace.DefaultLimits()
	lim.QueryTimeout = model.Duration(time.Nanosecond)
	ev, err := NewEvaluator(EvalConfig{Parallelism: 2, MinStepsPerPart: 2, MaxConcurrent: 4}, nil, nil, prometheus.NewRegistry())
	require.NoError(t, err)
	return ev.NewEngine(workspace.NewID(), lim, EngineOpts(lim, 5*time.Minute)), st, start
}

// TestSplitQueryTimesOut: the workspace's query timeout bounds a split
// query as a whole, with the engine's timeout error.
func TestSplitQueryTimesOut(t *testing.T) {
	e, st, start := timingOutEngine(t, 3)
	qry, err := e.NewRangeQuery(context.Background(), st, nil, `sum(rate(envoy_cluster_upstream_rq_total[5m]))`, start, start.Add(time.Hour), 30*time.Second)
	require.NoError(t, err)
	_, split := qry.(*rangeQuery)
	require.True(t, split)
	res := qry.Exec(context.Background())
	var timeout promql.ErrQueryTimeout
	require.ErrorAs(t, res.Err, &timeout)
}

// TestLeavesTimeOut: the workspace's query timeout bounds queries whose
// leaves Orrery computes, range and instant, with the engine's timeout
// error.
func TestLeavesTimeOut(t *testing.T) {
	e, st, start := timingOutEngine(t, 4)
	var timeout promql.ErrQueryTimeout
	for _, qs := range []string{`sum by (pod) (rate(envoy_cluster_upstream_rq_total[5m]))`, `topk(3, sum by (pod) (rate(envoy_cluster_upstream_rq_total[5m])))`} {
		qry, err := e.NewRangeQuery(context.Background(), st, nil, qs, start, start.Add(time.Hour), 30*time.Second)
		require.NoError(t, err)
		require.ErrorAs(t, qry.Exec(context.Background()).Err, &timeout, qs)
		qry.Close()
		qry, err = e.NewInstantQuery(context.Background(), st, nil, qs, start.Add(time.Hour))
		require.NoError(t, err)
		require.ErrorAs(t, qry.Exec(context.Background()).Err, &timeout, qs)
		qry.Close()
	}
}

// TestHasSummary: the engine's plain annotations are step-local; the
// histogram_quantile monotonicity info summarizes its range.
func TestHasSummary(t *testing.T) {
	var plain, summary annotations.Annotations
	plain.Add(annotations.NewPossibleNonCounterInfo("envoy_cluster_upstream_rq_xx", posrange.PositionRange{}))
	summary.Add(annotations.NewHistogramQuantileForcedMonotonicityInfo("envoy_cluster_upstream_rq_time_bucket", posrange.PositionRange{}, 1000, 1, 5, 0.5))
	require.False(t, hasSummary(plain))
	require.True(t, hasSummary(summary))
	// A copy merged into leaves the original as it was.
	before := fmt.Sprint(summary.AsStrings("q", 0, 0))
	c := copyAnnotations(summary)
	c.Merge(copyAnnotations(summary))
	require.Equal(t, before, fmt.Sprint(summary.AsStrings("q", 0, 0)))
}

// same returns a function answering a range query with the engine,
// after checking that the plain engine's answer is the same.
func (te *testEngines) same(t *testing.T, q storage.Queryable, step time.Duration) func(qs string, from, to time.Time) string {
	return func(qs string, from, to time.Time) string {
		t.Helper()
		got := rangeAnswer(t, te.engine, q, qs, from, to, step)
		require.Equal(t, rangeAnswer(t, te.plain, q, qs, from, to, step), got, "%s from %s to %s", qs, from, to)
		return got
	}
}

// newCachedStore returns engines with a results cache and a store that
// tells the cache of its writes, as the server wires them.
func newCachedStore(t *testing.T) (*testEngines, *orstorage.Store) {
	t.Helper()
	te := newTestEngines(t, EvalConfig{Parallelism: 2, MinStepsPerPart: 2, MaxConcurrent: 4, CacheBytes: 8 << 20})
	overrides, err := workspace.NewOverrides(workspace.DefaultLimits())
	require.NoError(t, err)
	store, err := orstorage.New(orstorage.Config{Dir: t.TempDir(), Written: te.ev.Cache().Written}, overrides, nil, prometheus.NewRegistry())
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, store.Close()) })
	return te, store
}

// TestCacheHoldsStepsUpToNow: with no freshness margin, a range ending now
// is cached to its last step, and a current sample landing at or before a
// cached step changes the next answer. histogram_quantile's monotonicity
// note, whose sample count depends on how the range was evaluated, is
// answered from the cache only for the very range evaluated whole, and
// every answer is the plain engine's.
func TestCacheHoldsStepsUpToNow(t *testing.T) {
	te, store := newCachedStore(t)
	q := store.Queryable(te.id)

	step := 30 * time.Second
	now := time.Now()
	to := now.Truncate(step)
	if now.Sub(to) < 5*time.Second {
		to = to.Add(-step) // Leave room for a sample after the last step's.
	}
	from := to.Add(-30 * time.Minute)
	app, err := store.Appender(context.Background(), te.id)
	require.NoError(t, err)
	g := labels.FromStrings("__name__", "envoy_cluster_upstream_cx_active", "pod", "a")
	les := []string{"1", "5", "+Inf"}
	i := 0
	for ts := from.Add(-10 * time.Minute); ts.Before(to.Add(-10 * time.Second)); ts = ts.Add(15 * time.Second) {
		_, err = app.Append(0, g, 0, ts.UnixMilli(), float64(i%7), nil, nil, storage.AOptions{})
		require.NoError(t, err)
		for j, le := range les {
			v := float64(10 * (j + 1))
			if le == "5" && i%5 == 0 {
				v = 5 // Below the le="1" bucket: the quantile needs a monotonicity fix.
			}
			b := labels.FromStrings("__name__", "envoy_cluster_upstream_rq_time_bucket", "pod", "a", "le", le)
			_, err = app.Append(0, b, 0, ts.UnixMilli(), v, nil, nil, storage.AOptions{})
			require.NoError(t, err)
		}
		i++
	}
	require.NoError(t, app.Commit())

	misses := func() float64 { return sumCounter(t, te.reg, "orrery_query_cache_miss_steps_total") }
	hits := func() float64 { return sumCounter(t, te.reg, "orrery_query_cache_hit_steps_total") }
	same := te.same(t, q, step)

	qs := `sum(envoy_cluster_upstream_cx_active)`
	first := same(qs, from, to)
	m, h := misses(), hits()
	require.Equal(t, first, same(qs, from, to))
	require.Equal(t, m, misses(), "the newest steps were evaluated again with no write since")
	require.Equal(t, h+61, hits())

	// A current sample, between the last step's sample and the step.
	app, err = store.Appender(context.Background(), te.id)
	require.NoError(t, err)
	_, err = app.Append(0, g, 0, to.Add(-5*time.Second).UnixMilli(), 1000, nil, nil, storage.AOptions{})
	require.NoError(t, err)
	require.NoError(t, app.Commit())
	second := same(qs, from, to)
	require.NotEqual(t, first, second, "a sample at the last step left its cached answer unchanged")
	require.Contains(t, second, fmt.Sprintf("%d=", to.UnixMilli()))

	hq := `histogram_quantile(0.9, envoy_cluster_upstream_rq_time_bucket)`
	note := same(hq, from, to)
	require.Contains(t, note, "needed to be fixed for monotonicity")
	h = hits()
	require.Equal(t, note, same(hq, from, to))
	require.Equal(t, h+61, hits(), "the same range with the note was not answered from the cache")
	// Other ranges of it are evaluated whole: their note counts differ.
	same(hq, from.Add(step), to)
	same(hq, from.Add(-step), to)
	same(hq, from, to.Add(-3*step))
	require.Equal(t, note, same(hq, from, to))

	// A write inside the range cuts the cached answer with the note too.
	app, err = store.Appender(context.Background(), te.id)
	require.NoError(t, err)
	_, err = app.Append(0, labels.FromStrings("__name__", "envoy_cluster_upstream_rq_time_bucket", "pod", "b", "le", "+Inf"), 0, to.Add(-10*time.Minute).UnixMilli(), 1, nil, nil, storage.AOptions{})
	require.NoError(t, err)
	require.NoError(t, app.Commit())
	require.NotEqual(t, note, same(hq, from, to))
}

// TestRankingsCachedUnlessTied: topk and bottomk answers come from the
// cache on a refresh, and a tie whose winner depends on the range
// evaluated makes the engine evaluate the whole range, as the plain
// engine does.
func TestRankingsCachedUnlessTied(t *testing.T) {
	te, store := newCachedStore(t)
	q := store.Queryable(te.id)

	step := 30 * time.Second
	from := time.Now().Add(-2 * time.Hour).Truncate(time.Hour)
	split := from.Add(30 * time.Minute) // Where group b's first series ends and its second begins.
	tie := from.Add(45 * time.Minute)   // Groups a and b tie from here on.
	to := from.Add(time.Hour)
	// The series are created in this order: b's first, a's, b's second, so
	// over the whole range the engine's sum by (g) makes group b first,
	// and after split group a first. topk(1) of a tie keeps the first.
	b1 := labels.FromStrings("__name__", "x", "g", "b", "i", "1")
	a := labels.FromStrings("__name__", "x", "g", "a", "i", "1")
	b2 := labels.FromStrings("__name__", "x", "g", "b", "i", "2")
	app, err := store.Appender(context.Background(), te.id)
	require.NoError(t, err)
	i := 0
	for ts := from.Add(-5 * time.Minute); !ts.After(to); ts = ts.Add(15 * time.Second) {
		va, vb := float64(100+i%5), float64(i%3)
		if !ts.Before(tie) {
			va, vb = 7, 7
		}
		b := b1
		if !ts.Before(split) {
			b = b2
		}
		for _, s := range []struct {
			l labels.Labels
			v float64
		}{{b, vb}, {a, va}} {
			_, err = app.Append(0, s.l, 0, ts.UnixMilli(), s.v, nil, nil, storage.AOptions{})
			require.NoError(t, err)
		}
		i++
	}
	require.NoError(t, app.Commit())

	hits := func() float64 { return sumCounter(t, te.reg, "orrery_query_cache_hit_steps_total") }
	same := te.same(t, q, step)
	for _, qs := range []string{`topk(1, sum by (g) (x))`, `bottomk(1, sum by (g) (x))`, `topk by (i) (1, sum by (g, i) (x))`} {
		t.Run(qs, func(t *testing.T) {
			// Before the tie: cached, and a refresh over a shifted range is
			// answered from the cache but for its new steps.
			early := tie.Add(-2 * step)
			same(qs, from, early.Add(-10*step))
			h := hits()
			same(qs, from.Add(10*step), early)
			require.Greater(t, hits(), h, "the refresh was not answered from the cache")

			// Into the tie: the new steps alone would choose group a; the
			// whole range chooses b, as the plain engine does.
			answer := same(qs, from, to)
			if qs == `topk(1, sum by (g) (x))` {
				require.Contains(t, answer, `{g="b"}`)
			}
			same(qs, split.Add(step), to)
			same(qs, from, to)
			// Kept for that very range: asked again, it is answered from
			// the cache.
			h = hits()
			same(qs, from, to)
			require.Greater(t, hits(), h, "the same range of a tied ranking was not answered from the cache")
		})
	}

	// A write inside the range drops the answer kept for it.
	qs := `topk(1, sum by (g) (x))`
	before := same(qs, from, to)
	app, err = store.Appender(context.Background(), te.id)
	require.NoError(t, err)
	_, err = app.Append(0, labels.FromStrings("__name__", "x", "g", "c", "i", "1"), 0, tie.Add(time.Minute).UnixMilli(), 1e6, nil, nil, storage.AOptions{})
	require.NoError(t, err)
	require.NoError(t, app.Commit())
	require.NotEqual(t, before, same(qs, from, to), "a write inside the range left the kept answer")
}
