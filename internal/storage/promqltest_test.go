package storage_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/promql/promqltest"
	"github.com/prometheus/prometheus/storage"
	"github.com/stretchr/testify/require"

	"github.com/orrery-dev/orrery/internal/query"
	orstorage "github.com/orrery-dev/orrery/internal/storage"
	"github.com/orrery-dev/orrery/internal/workspace"
)

// workspaceStorage is one workspace of a Store seen as a Prometheus
// storage.Storage, so that upstream PromQL tests run against it.
type workspaceStorage struct {
	storage.SampleAndChunkQueryable
	s  *orstorage.Store
	id workspace.ID
}

func (w *workspaceStorage) Appender(ctx context.Context) storage.Appender {
	db, release, err := w.s.AcquireDB(w.id)
	if err != nil {
		panic(err) // Test-only adapter; promqltest uses AppenderV2.
	}
	release()
	return db.Appender(ctx)
}

// HeadShards lets the leaves read the workspace's head in shards, as they
// read a Store's queryable.
func (w *workspaceStorage) HeadShards(mint, maxt int64, n int) ([]*orstorage.HeadShard, error) {
	return w.s.HeadShards(w.id, mint, maxt, n)
}

func (w *workspaceStorage) AppenderV2(ctx context.Context) storage.AppenderV2 {
	app, err := w.s.Appender(ctx, w.id)
	if err != nil {
		panic(err)
	}
	return app
}

func (w *workspaceStorage) StartTime() (int64, error) { return 0, nil }
func (w *workspaceStorage) Close() error              { return w.s.Close() }

// excludedUpstream lists upstream test files that exercise features a
// workspace does not enable, with the reason.
var excludedUpstream = map[string]string{
	"start_timestamps.test": "needs the TSDB's experimental start-timestamp storage (off in Prometheus by default)",
}

// needDelayedNameRemoval lists the upstream test files whose expectations
// hold only with the engine's delayed name removal (upstream's test engine
// has it on; Orrery's workspaces, as Prometheus by default, have it off).
var needDelayedNameRemoval = map[string]struct{}{
	"histograms.test": {}, "name_label_dropping.test": {}, "native_histograms.test": {},
}

// TestUpstreamPromQLTestsPlainNames runs the files that do not need
// delayed name removal through the plain engine with the options of a
// workspace (delayed name removal off).
func TestUpstreamPromQLTestsPlainNames(t *testing.T) {
	runUpstreamPromQLTests(t, nil, false)
}

// TestUpstreamPromQLTestsLeaves runs the same files through Orrery's
// engine with the options of a workspace, so that rate(), increase() and
// the aggregations of them and of selectors are computed by the leaf path
// (query/leaves.go), split into parts and cached as in
// TestUpstreamPromQLTestsSplitAndCached.
func TestUpstreamPromQLTestsLeaves(t *testing.T) {
	reg := prometheus.NewRegistry()
	ev, err := query.NewEvaluator(query.EvalConfig{Parallelism: 3, MinStepsPerPart: 1, MaxConcurrent: 4,
		CacheBytes: 64 << 20, CacheFreshness: time.Minute}, nil, nil, reg)
	require.NoError(t, err)
	runUpstreamPromQLTests(t, ev, false)
	require.Positive(t, counterSum(t, reg, "orrery_query_leaf_evaluations_total", "outcome", "used"), "no query used the leaf path")
	require.Positive(t, counterSum(t, reg, "orrery_query_leaf_reads_total", "read", "shards"), "no leaf read the head in shards")
	t.Logf("leaf evaluations: %v used, %v fallback; leaves read in shards %v, by walks %v",
		counterSum(t, reg, "orrery_query_leaf_evaluations_total", "outcome", "used"),
		counterSum(t, reg, "orrery_query_leaf_evaluations_total", "outcome", "fallback"),
		counterSum(t, reg, "orrery_query_leaf_reads_total", "read", "shards"),
		counterSum(t, reg, "orrery_query_leaf_reads_total", "read", "walks"))
}

// TestUpstreamPromQLTests runs Prometheus' own PromQL acceptance tests
// (promql/promqltest/testdata of the embedded module version) through a
// workspace of the Store, with the engine options every workspace gets.
func TestUpstreamPromQLTests(t *testing.T) {
	runUpstreamPromQLTests(t, nil, true)
}

// TestUpstreamPromQLTestsSplitAndCached runs the same files through
// Orrery's engine with every range query split into parts of one step
// (three at a time) and the results cache on, so that every range answer
// is assembled from parts and, when a query repeats, from the cache.
func TestUpstreamPromQLTestsSplitAndCached(t *testing.T) {
	reg := prometheus.NewRegistry()
	ev, err := query.NewEvaluator(query.EvalConfig{Parallelism: 3, MinStepsPerPart: 1, MaxConcurrent: 4,
		CacheBytes: 64 << 20, CacheFreshness: time.Minute}, nil, nil, reg)
	require.NoError(t, err)
	runUpstreamPromQLTests(t, ev, true)
	require.Positive(t, counterSum(t, reg, "orrery_query_cache_hit_steps_total"), "no answer came from the cache")
	require.Positive(t, counterSum(t, reg, "orrery_query_parts_total"), "no range query was split")
}

// counterSum adds up the series of a counter family in reg that carry
// every label of labelPairs (name, value, name, value, …).
func counterSum(t *testing.T, reg *prometheus.Registry, name string, labelPairs ...string) float64 {
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
			for i := 0; i+1 < len(labelPairs); i += 2 {
				found := false
				for _, lp := range m.GetLabel() {
					found = found || lp.GetName() == labelPairs[i] && lp.GetValue() == labelPairs[i+1]
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

func runUpstreamPromQLTests(t *testing.T, ev *query.Evaluator, delayedNameRemoval bool) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/prometheus/prometheus").Output()
	require.NoError(t, err, "find the Prometheus module")
	files, err := filepath.Glob(filepath.Join(strings.TrimSpace(string(out)), "promql", "promqltest", "testdata", "*.test"))
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(files), 20)

	lim := workspace.DefaultLimits()
	// The files' samples are from 1970: with a retention, none of their
	// steps would be served from the cache.
	lim.RetentionPeriod = 0
	opts := query.EngineOpts(lim, 5*time.Minute)
	// The test files use experimental functions and modifiers behind
	// feature flags; the parser options switch them on as upstream does.
	opts.Parser = parser.NewParser(promqltest.TestParserOpts)
	opts.EnableDelayedNameRemoval = delayedNameRemoval
	opts.Timeout = 100 * time.Second
	inner := promql.NewEngine(opts)
	t.Cleanup(func() { require.NoError(t, inner.Close()) })

	for _, f := range files {
		name := filepath.Base(f)
		if _, skip := excludedUpstream[name]; skip {
			continue
		}
		if _, skip := needDelayedNameRemoval[name]; skip && !delayedNameRemoval {
			continue
		}
		t.Run(name, func(t *testing.T) {
			b, err := os.ReadFile(f)
			require.NoError(t, err)
			id := workspace.NewID()
			var engine promql.QueryEngine = inner
			var written func(workspace.ID, int64)
			if ev != nil {
				e := ev.NewEngine(id, lim, opts)
				t.Cleanup(func() { require.NoError(t, e.Close()) })
				engine = e
				written = ev.Cache().Written
			}
			promqltest.RunTestWithStorage(t, string(b), engine, func(tb testing.TB) storage.Storage {
				// A test's `clear` starts a new storage for the same
				// workspace: what was cached of the old one is gone.
				ev.Cache().Drop(id)
				// 24 h blocks, as upstream's test storage: the files load long spans.
				s, err := orstorage.New(orstorage.Config{Dir: tb.TempDir(), BlockDuration: 24 * time.Hour, Written: written}, mustOverrides(tb), nil, prometheus.NewRegistry())
				require.NoError(tb, err)
				return &workspaceStorage{SampleAndChunkQueryable: s.Queryable(id), s: s, id: id}
			})
		})
	}
}

func mustOverrides(tb testing.TB) *workspace.Overrides {
	lim := workspace.DefaultLimits()
	lim.OutOfOrderWindow = 0
	o, err := workspace.NewOverrides(lim)
	require.NoError(tb, err)
	return o
}
