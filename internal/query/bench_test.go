package query

import (
	"context"
	"math/rand/v2"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage"
)

// benchQueries are dashboard queries of scripts/bench-query.sh's shapes.
var benchQueries = map[string]string{
	"sum_rate":      `sum(rate(envoy_cluster_upstream_rq_total[5m]))`,
	"sum_by_rate":   `sum by (envoy_cluster_name) (rate(envoy_cluster_upstream_rq_total[5m]))`,
	"hq_sum_by_le":  `histogram_quantile(0.99, sum by (le) (rate(envoy_cluster_upstream_rq_time_bucket[5m])))`,
	"sum_gauge":     `sum(envoy_cluster_upstream_cx_active)`,
	"topk_sum_rate": `topk(5, sum by (pod) (rate(envoy_cluster_upstream_rq_total[5m])))`,
	"hq_by_le_1m":   `histogram_quantile(0.99, sum by (le, envoy_cluster_name) (rate(envoy_cluster_upstream_rq_time_bucket[1m])))`,
	"avg_by_rate":   `avg by (envoy_cluster_name) (rate(envoy_cluster_upstream_rq_total[5m]))`,
}

// BenchmarkRangeQuery compares the plain Prometheus engine with Orrery's
// engine (cache off) on one hour at step 30 s over Envoy-like data.
func BenchmarkRangeQuery(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 1))
	start := time.Now().Add(-time.Hour).Truncate(time.Minute)
	st := envoyStorage(b, rng, 500, 10, start, time.Hour)
	te := newTestEngines(b, EvalConfig{Parallelism: 2, MinStepsPerPart: 20, MaxConcurrent: 4})
	end := start.Add(time.Hour)
	for name, qs := range benchQueries {
		// orrery reads the head as a workspace's, in shards; orrery-walks
		// as any other storage, each worker walking all the series.
		for _, eng := range []struct {
			name string
			e    promql.QueryEngine
			st   storage.Queryable
		}{{"plain", te.plain, st}, {"orrery", te.engine, shardedStorage{st}}, {"orrery-walks", te.engine, st}} {
			b.Run(name+"/"+eng.name, func(b *testing.B) {
				cpu0 := cpuTime()
				for b.Loop() {
					qry, err := eng.e.NewRangeQuery(WithNoStore(context.Background()), eng.st, nil, qs, start, end, 30*time.Second)
					if err != nil {
						b.Fatal(err)
					}
					if res := qry.Exec(context.Background()); res.Err != nil {
						b.Fatal(res.Err)
					}
					qry.Close()
				}
				// CPU time is steadier than wall time on a shared machine,
				// and counts the cores a query uses.
				b.ReportMetric(float64((cpuTime()-cpu0).Milliseconds())/float64(b.N), "cpu-ms/op")
			})
		}
	}
}

// cpuTime is the CPU time the process has used, user and system.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
