package storage

import (
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/orrery-dev/orrery/internal/workspace"
)

// TestTSDBMetricsPerWorkspace: every open workspace's TSDB metrics reach
// the server's registry with a workspace label, and leave with the TSDB.
func TestTSDBMetricsPerWorkspace(t *testing.T) {
	s := newTestStore(t, false)
	a, b := workspace.NewID(), workspace.NewID()
	commitOne(t, s, a, 0)
	commitOne(t, s, b, 1)
	commitOne(t, s, b, 2)
	reg := prometheus.NewRegistry()
	gatherers := prometheus.Gatherers{reg, s.Gatherer()}
	lines := []string{`prometheus_tsdb_head_series{workspace="` + a.String() + `"} 1`, `prometheus_tsdb_head_series{workspace="` + b.String() + `"} 2`}
	slices.Sort(lines) // The exposition orders series by their labels.
	want := "# HELP prometheus_tsdb_head_series Total number of series in the head block.\n" +
		"# TYPE prometheus_tsdb_head_series gauge\n" + strings.Join(lines, "\n") + "\n"
	require.NoError(t, testutil.GatherAndCompare(gatherers, strings.NewReader(want), "prometheus_tsdb_head_series"))
	n, err := testutil.GatherAndCount(gatherers, "prometheus_tsdb_head_chunks_created_total")
	require.NoError(t, err)
	require.Equal(t, 2, n, "one series a workspace")

	require.NoError(t, s.Delete(t.Context(), a))
	n, err = testutil.GatherAndCount(gatherers, "prometheus_tsdb_head_series")
	require.NoError(t, err)
	require.Equal(t, 1, n, "a deleted workspace's metrics are gone")
}
