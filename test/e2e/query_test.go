package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"

	"github.com/orrery-dev/orrery/internal/apptest"
	"github.com/orrery-dev/orrery/internal/workspace"
)

// metricSum adds up the samples of a metric family on a server's /metrics
// whose labels contain match.
func metricSum(t *testing.T, o *apptest.Orrery, name, match string) float64 {
	t.Helper()
	code, body := apptest.Get(t, "http://"+o.Addr+"/metrics")
	require.Equal(t, http.StatusOK, code)
	re := regexp.MustCompile(`(?m)^` + name + `(\{[^}]*\})? (\S+)$`)
	var sum float64
	for _, m := range re.FindAllStringSubmatch(string(body), -1) {
		if !strings.Contains(m[1], match) {
			continue
		}
		v, err := strconv.ParseFloat(m[2], 64)
		require.NoError(t, err)
		sum += v
	}
	return sum
}

// TestQueryCacheThroughTheServer: through the real binary, a refreshed
// dashboard query is answered from the results cache; a late and an
// out-of-order remote write into the cached window change the next
// answer; Cache-Control: no-store bypasses the cache; and
// --limits.max-query-samples=0 means unlimited.
func TestQueryCacheThroughTheServer(t *testing.T) {
	o := apptest.StartOrrery(t, t.TempDir(), "--limits.ingestion-rate=0", "--limits.out-of-order-window=10m", "--limits.max-query-samples=0")
	ws := workspace.NewID().String()
	api := o.URL(ws, "/api/v1")
	now := time.Now().Truncate(time.Minute)
	series := func(pod string, from, to time.Time, v float64) prompb.TimeSeries {
		s := prompb.TimeSeries{Labels: []prompb.Label{{Name: "__name__", Value: "envoy_cluster_upstream_cx_active"}, {Name: "pod", Value: pod}}}
		for ts := from; !ts.After(to); ts = ts.Add(15 * time.Second) {
			s.Samples = append(s.Samples, prompb.Sample{Timestamp: ts.UnixMilli(), Value: v})
		}
		return s
	}
	write := func(ts ...prompb.TimeSeries) {
		t.Helper()
		code, body := apptest.Write(t, o.RemoteWriteURL(ws), &prompb.WriteRequest{Timeseries: ts})
		require.Equal(t, http.StatusNoContent, code, body)
	}
	write(series("a", now.Add(-time.Hour), now.Add(-5*time.Minute), 1))

	// Steps at 10 s and 40 s past the minute, samples at 0, 15, 30 and 45 s.
	params := url.Values{"query": {"sum(envoy_cluster_upstream_cx_active)"}, "step": {"30"},
		"start": {fmt.Sprint(now.Add(-50*time.Minute + 10*time.Second).Unix())}, "end": {fmt.Sprint(now.Add(-2 * time.Minute).Unix())}}
	ask := func(header string) string {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, api+"/query_range?"+params.Encode(), nil)
		require.NoError(t, err)
		if header != "" {
			req.Header.Set("Cache-Control", header)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, resp.StatusCode, string(b))
		return string(b)
	}
	hits := func() float64 { return metricSum(t, o, "orrery_query_cache_hit_steps_total", ws) }

	first := ask("")
	require.Zero(t, hits())
	require.Equal(t, first, ask(""))
	require.Positive(t, hits(), "the second answer did not come from the cache")
	h := hits()
	require.Equal(t, first, ask("no-store"))
	require.Equal(t, h, hits(), "Cache-Control: no-store was answered from the cache")

	// A new series, 30 minutes late: in order for itself, inside the window.
	write(series("late", now.Add(-30*time.Minute), now.Add(-30*time.Minute), 10))
	second := ask("")
	require.NotEqual(t, first, second, "a late write left the cached answer unchanged")
	require.Equal(t, second, ask("no-store"))

	// An out-of-order sample of the first series, 7 minutes behind its last.
	require.Equal(t, second, ask(""))
	write(series("a", now.Add(-12*time.Minute+5*time.Second), now.Add(-12*time.Minute+5*time.Second), 100))
	third := ask("")
	require.NotEqual(t, second, third, "an out-of-order write left the cached answer unchanged")
	require.Equal(t, third, ask("no-store"))
	require.Contains(t, third, `"100"`)

	require.Positive(t, metricSum(t, o, "orrery_query_duration_seconds_count", ws))
	require.Positive(t, metricSum(t, o, "orrery_query_samples_total", ws))
}

// TestStatusTSDBHeadChunks: status/tsdb's head statistics count chunks as
// Prometheus does: 0 on a fresh workspace, then the head's chunks (issue
// 18, item 3: it read the smallest int64).
func TestStatusTSDBHeadChunks(t *testing.T) {
	o := apptest.StartOrrery(t, t.TempDir())
	ws := workspace.NewID().String()
	chunks := func() float64 {
		t.Helper()
		code, r := apptest.API(t, o.URL(ws, "/api/v1"), "/status/tsdb", url.Values{})
		require.Equal(t, http.StatusOK, code, r.Error)
		var d struct {
			HeadStats struct {
				ChunkCount float64 `json:"chunkCount"`
			} `json:"headStats"`
		}
		require.NoError(t, json.Unmarshal(r.Data, &d))
		return d.HeadStats.ChunkCount
	}
	require.Zero(t, chunks())
	now := time.Now()
	var wr prompb.WriteRequest
	for i := range 3 {
		wr.Timeseries = append(wr.Timeseries, prompb.TimeSeries{
			Labels:  []prompb.Label{{Name: "__name__", Value: "envoy_server_live"}, {Name: "pod", Value: fmt.Sprint(i)}},
			Samples: []prompb.Sample{{Timestamp: now.UnixMilli(), Value: 1}},
		})
	}
	code, body := apptest.Write(t, o.RemoteWriteURL(ws), &wr)
	require.Equal(t, http.StatusNoContent, code, body)
	require.Equal(t, float64(3), chunks())
}
