package query

import (
	"context"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/promql"
	"github.com/stretchr/testify/require"

	"github.com/orrery-dev/orrery/internal/auth"
	"github.com/orrery-dev/orrery/internal/querylog"
	"github.com/orrery-dev/orrery/internal/workspace"
)

// TestLoggedEngine checks what the query API's engine hands the query log:
// nothing for a workspace that does not log; for one that does, the
// queries that processed at least its threshold of samples, with their
// range, step, samples, status and caller.
func TestLoggedEngine(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	st := envoyStorage(t, rand.New(rand.NewPCG(1, 2)), 2, 2, start, time.Hour)
	te := newTestEngines(t, EvalConfig{})
	other := workspace.NewID()
	thresholds := map[workspace.ID]int64{te.id: 100}
	log, err := querylog.New(querylog.Config{Dir: filepath.Join(t.TempDir(), "querylogs")},
		func(_ context.Context, id workspace.ID) (int64, bool, error) {
			th, ok := thresholds[id]
			return th, ok, nil
		}, nil)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, log.Close()) })
	ctx := auth.NewContext(context.Background(), auth.Principal{ID: "AKIAREADER"})

	eng := loggedEngine{Engine: te.engine, log: log}
	at := start.Add(30 * time.Minute)
	run := func(e loggedEngine, qs string, rangeQuery bool) {
		t.Helper()
		if rangeQuery {
			qry, err := e.NewRangeQuery(ctx, st, nil, qs, at.Add(-10*time.Minute), at, time.Minute)
			require.NoError(t, err)
			require.NoError(t, qry.Exec(ctx).Err)
			qry.Close()
			return
		}
		qry, err := e.NewInstantQuery(ctx, st, nil, qs, at)
		require.NoError(t, err)
		_ = qry.Exec(ctx)
		qry.Close()
	}
	run(eng, `vector(1)`, false)                                       // No sample: under the threshold.
	run(eng, `sum(envoy_cluster_upstream_rq_total)`, false)            // 4 samples: under it.
	run(eng, `sum(rate(envoy_cluster_upstream_rq_total[5m]))`, false)  // About 80: under it.
	run(eng, `sum(rate(envoy_cluster_upstream_rq_total[30m]))`, false) // About 480: logged.
	run(eng, `sum(rate(envoy_cluster_upstream_rq_total[5m]))`, true)   // About 880 over 11 steps: logged.
	_, err = eng.NewInstantQuery(ctx, st, nil, `sum(`, at)
	require.Error(t, err, "a query that does not parse is refused before it could be logged")
	otherEngine := newTestEngines(t, EvalConfig{}).ev.NewEngine(other, workspace.DefaultLimits(), EngineOpts(workspace.DefaultLimits(), 5*time.Minute))
	run(loggedEngine{Engine: otherEngine, log: log}, `sum(rate(envoy_cluster_upstream_rq_total[30m]))`, false) // Logs nothing.

	got := log.Slowest(te.id, 10)
	require.Len(t, got, 2, "%+v", got)
	byQuery := map[string]querylog.Entry{}
	for _, e := range got {
		byQuery[e.Query] = e
		require.Equal(t, "AKIAREADER", e.Principal)
		require.Equal(t, "success", e.Status)
		require.GreaterOrEqual(t, e.SamplesProcessed, int64(100))
	}
	instant := byQuery[`sum(rate(envoy_cluster_upstream_rq_total[30m]))`]
	require.Equal(t, at, instant.Start)
	require.Equal(t, at, instant.End)
	require.Zero(t, instant.StepSeconds)
	ranged := byQuery[`sum(rate(envoy_cluster_upstream_rq_total[5m]))`]
	require.Equal(t, at.Add(-10*time.Minute), ranged.Start)
	require.Equal(t, 60.0, ranged.StepSeconds)
	require.Empty(t, log.Slowest(other, 10))
}

// TestSamplesCountedAsThePlainEngine checks that a query's statistics
// count the samples the plain Prometheus engine would have processed, when
// leaves compute part of it: query logs' thresholds (AMP's QSP) and the
// samples metric read them.
func TestSamplesCountedAsThePlainEngine(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	st := envoyStorage(t, rand.New(rand.NewPCG(3, 4)), 6, 4, start, 2*time.Hour)
	te := newTestEngines(t, EvalConfig{})
	ctx := WithNoStore(context.Background())
	at := start.Add(90 * time.Minute)
	for _, qs := range []string{
		`sum(rate(envoy_cluster_upstream_rq_total[5m]))`,
		`sum by (namespace) (increase(envoy_cluster_upstream_rq_total[10m]))`,
		`rate(envoy_cluster_upstream_rq_total[2m])`,
		`max(rate(envoy_cluster_upstream_rq_total[5m])) / sum(envoy_cluster_upstream_cx_active)`,
		`envoy_cluster_upstream_cx_active`,
	} {
		for _, rangeQuery := range []bool{false, true} {
			count := func(eng promql.QueryEngine) int64 {
				var qry promql.Query
				var err error
				if rangeQuery {
					qry, err = eng.NewRangeQuery(ctx, st, nil, qs, at.Add(-30*time.Minute), at, 30*time.Second)
				} else {
					qry, err = eng.NewInstantQuery(ctx, st, nil, qs, at)
				}
				require.NoError(t, err)
				defer qry.Close()
				require.NoError(t, qry.Exec(ctx).Err)
				return qry.Stats().Samples.TotalSamples
			}
			want := count(te.plain)
			require.Positive(t, want)
			require.Equal(t, want, count(te.engine), "%s (range %v)", qs, rangeQuery)
		}
	}
	require.Positive(t, testutil.ToFloat64(te.ev.leaves.WithLabelValues(te.id.String(), "used")), "the leaves computed")
	require.Zero(t, testutil.ToFloat64(te.ev.leaves.WithLabelValues(te.id.String(), "fallback")))
}
