package e2e

import (
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"

	"github.com/orrery-dev/orrery/internal/apptest"
	"github.com/orrery-dev/orrery/internal/workspace"
)

// TestPerWorkspaceQueryLimitsAndAdmin checks per-workspace query limits
// from a limits file, the cardinality and delete-series endpoints, and that
// an idle workspace is closed and reopened with its data.
func TestPerWorkspaceQueryLimitsAndAdmin(t *testing.T) {
	limited, slow, free := workspace.NewID().String(), workspace.NewID().String(), workspace.NewID().String()
	limits := filepath.Join(t.TempDir(), "limits.yml")
	require.NoError(t, os.WriteFile(limits, []byte(fmt.Sprintf(`overrides:
  %s:
    max_query_samples: 10
    max_query_range: 1h
  %s:
    query_timeout: 1ms
`, limited, slow)), 0o600))
	o := apptest.StartOrrery(t, t.TempDir(), "--limits-file="+limits, "--storage.idle-timeout=1s")
	now := time.Now()
	for _, ws := range []string{limited, slow, free} {
		var series []prompb.TimeSeries
		for i := range 20 {
			series = append(series, ts("envoy_cluster_upstream_cx_active", now.UnixMilli(), float64(i), "pod", fmt.Sprint(i)))
		}
		series = append(series, ts("envoy_server_live", now.UnixMilli(), 1, "pod", "0"))
		code, body := apptest.Write(t, o.RemoteWriteURL(ws), &prompb.WriteRequest{Timeseries: series})
		require.Equal(t, http.StatusNoContent, code, body)
	}
	at := fmt.Sprint(now.Unix() + 1)

	// Too many samples: Prometheus' own 422 execution error.
	code, r := apptest.API(t, o.URL(limited, "/api/v1"), "/query", url.Values{"query": {"envoy_cluster_upstream_cx_active"}, "time": {at}})
	require.Equal(t, http.StatusUnprocessableEntity, code)
	require.Contains(t, r.Error, "query processing would load too many samples into memory")
	// The same query in a workspace with default limits works.
	code, _ = apptest.API(t, o.URL(free, "/api/v1"), "/query", url.Values{"query": {"envoy_cluster_upstream_cx_active"}, "time": {at}})
	require.Equal(t, http.StatusOK, code)
	// Range too long.
	code, r = apptest.API(t, o.URL(limited, "/api/v1"), "/query_range", url.Values{"query": {"envoy_server_live"},
		"start": {fmt.Sprint(now.Add(-2 * time.Hour).Unix())}, "end": {at}, "step": {"60"}})
	require.Equal(t, http.StatusBadRequest, code)
	require.Equal(t, "bad_data", r.ErrorType)
	require.Contains(t, r.Error, "max_query_range 1h")
	// Timeout. The query selects no series: a deadline that expires while
	// series are being expanded from storage is an execution error (422) in
	// Prometheus, so only a deadline during evaluation is a timeout (503).
	code, r = apptest.API(t, o.URL(slow, "/api/v1"), "/query", url.Values{"query": {"count_over_time(vector(1)[1d:1ms])"}, "time": {at}})
	require.Equal(t, http.StatusServiceUnavailable, code, r.Error)
	require.Equal(t, "timeout", r.ErrorType)

	// Cardinality of the workspace alone.
	code, r = apptest.API(t, o.URL(free, "/api/v1"), "/status/tsdb", nil)
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, string(r.Data), `"numSeries":21`)
	require.Contains(t, string(r.Data), `{"name":"envoy_cluster_upstream_cx_active","value":20}`)

	// Delete series.
	req, err := http.NewRequest(http.MethodPost, o.URL(free, "/api/v1/admin/tsdb/delete_series")+"?match[]=envoy_server_live", nil)
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusNoContent, resp.StatusCode)
	v, err := apptest.QueryVector(t, o.URL(free, "/api/v1"), "envoy_server_live", now)
	require.NoError(t, err)
	require.Empty(t, v)
	v, err = apptest.QueryVector(t, o.URL(limited, "/api/v1"), "envoy_server_live", now)
	require.NoError(t, err)
	require.Len(t, v, 1, "deleting in one workspace leaves the others alone")

	// Open workspaces' TSDB metrics are on /metrics with their workspace
	// (the query opens it again if it went idle).
	head := regexp.MustCompile(`prometheus_tsdb_head_series\{workspace="` + limited + `"\} [1-9]`)
	apptest.Eventually(t, 10*time.Second, func() error {
		if _, err := apptest.QueryVector(t, o.URL(limited, "/api/v1"), "envoy_server_live", now); err != nil {
			return err
		}
		if _, m := apptest.Get(t, "http://"+o.Addr+"/metrics"); !head.Match(m) {
			return fmt.Errorf("no TSDB metrics of workspace %s", limited)
		}
		return nil
	})

	// Idle workspaces are closed, and reopen with their data.
	closes := regexp.MustCompile(`orrery_storage_workspace_closes_total (\d+)`)
	apptest.Eventually(t, 20*time.Second, func() error {
		_, m := apptest.Get(t, "http://"+o.Addr+"/metrics")
		if g := closes.FindSubmatch(m); g != nil {
			if n, _ := strconv.Atoi(string(g[1])); n >= 3 {
				return nil
			}
		}
		return fmt.Errorf("workspaces not closed yet")
	})
	v, err = apptest.QueryVector(t, o.URL(free, "/api/v1"), "count(envoy_cluster_upstream_cx_active)", now)
	require.NoError(t, err)
	require.Len(t, v, 1)
	require.Equal(t, "20", v[0].Value[1])
	o.Stop()
}
