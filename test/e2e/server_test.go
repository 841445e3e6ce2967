package e2e

import (
	"fmt"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"

	"github.com/orrery-dev/orrery/internal/apptest"
	"github.com/orrery-dev/orrery/internal/workspace"
)

func ts(name string, t int64, v float64, kv ...string) prompb.TimeSeries {
	ls := []prompb.Label{{Name: "__name__", Value: name}}
	for i := 0; i+1 < len(kv); i += 2 {
		ls = append(ls, prompb.Label{Name: kv[i], Value: kv[i+1]})
	}
	return prompb.TimeSeries{Labels: ls, Samples: []prompb.Sample{{Value: v, Timestamp: t}}}
}

func TestWriteQueryIsolationAndBadInput(t *testing.T) {
	o := apptest.StartOrrery(t, t.TempDir())
	a, b := workspace.NewID().String(), workspace.NewID().String()
	now := time.Now()
	code, body := apptest.Write(t, o.RemoteWriteURL(a), &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
		ts("envoy_cluster_upstream_rq_total", now.UnixMilli(), 42, "envoy_cluster_name", "catalog"),
	}})
	require.Equal(t, http.StatusNoContent, code, body)

	v, err := apptest.QueryVector(t, o.URL(a, "/api/v1"), "envoy_cluster_upstream_rq_total", now)
	require.NoError(t, err)
	require.Len(t, v, 1)
	require.Equal(t, "catalog", v[0].Metric["envoy_cluster_name"])
	require.Equal(t, "42", v[0].Value[1])

	// Workspace b sees none of a's data, through any endpoint.
	v, err = apptest.QueryVector(t, o.URL(b, "/api/v1"), "envoy_cluster_upstream_rq_total", now)
	require.NoError(t, err)
	require.Empty(t, v)
	_, r := apptest.API(t, o.URL(b, "/api/v1"), "/labels", nil)
	require.JSONEq(t, `[]`, string(r.Data))
	_, r = apptest.API(t, o.URL(b, "/api/v1"), "/series", url.Values{"match[]": {`{__name__=~".+"}`}})
	require.JSONEq(t, `[]`, string(r.Data))

	// Bad input: precise 4xx, the server survives, stored data is intact.
	bad := []struct {
		name        string
		contentType string
		encoding    string
		body        string
		want        int
		msg         string
	}{
		{"garbage", "application/x-protobuf", "snappy", "\xff\xff\xff", http.StatusBadRequest, "snappy"},
		{"zstd", "application/x-protobuf", "zstd", "x", http.StatusUnsupportedMediaType, "snappy-compressed"},
		{"json", "application/json", "snappy", "x", http.StatusUnsupportedMediaType, "Content-Type"},
	}
	for _, c := range bad {
		req, err := http.NewRequest(http.MethodPost, o.RemoteWriteURL(a), strings.NewReader(c.body))
		require.NoError(t, err)
		req.Header.Set("Content-Type", c.contentType)
		req.Header.Set("Content-Encoding", c.encoding)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		msg := make([]byte, 512)
		n, _ := resp.Body.Read(msg)
		resp.Body.Close()
		require.Equal(t, c.want, resp.StatusCode, c.name)
		require.Contains(t, string(msg[:n]), c.msg, c.name)
	}
	code, _ = apptest.Get(t, "http://"+o.Addr+"/workspaces/not-a-workspace/api/v1/query?query=up")
	require.Equal(t, http.StatusNotFound, code)

	v, err = apptest.QueryVector(t, o.URL(a, "/api/v1"), "envoy_cluster_upstream_rq_total", now)
	require.NoError(t, err)
	require.Len(t, v, 1)

	// Exemplars round-trip through the Prometheus API.
	ex := ts("envoy_cluster_upstream_rq_time_sum", now.UnixMilli(), 3.5, "envoy_cluster_name", "catalog")
	ex.Exemplars = []prompb.Exemplar{{Labels: []prompb.Label{{Name: "trace_id", Value: "4bf92f3577b34da6"}}, Value: 3.5, Timestamp: now.UnixMilli()}}
	code, body = apptest.Write(t, o.RemoteWriteURL(a), &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{ex}})
	require.Equal(t, http.StatusNoContent, code, body)
	_, r = apptest.API(t, o.URL(a, "/api/v1"), "/query_exemplars", url.Values{"query": {"envoy_cluster_upstream_rq_time_sum"},
		"start": {fmt.Sprint(now.Add(-time.Minute).Unix())}, "end": {fmt.Sprint(now.Add(time.Minute).Unix())}})
	require.Contains(t, string(r.Data), `"trace_id":"4bf92f3577b34da6"`)
	_, r = apptest.API(t, o.URL(b, "/api/v1"), "/query_exemplars", url.Values{"query": {"envoy_cluster_upstream_rq_time_sum"},
		"start": {fmt.Sprint(now.Add(-time.Minute).Unix())}, "end": {fmt.Sprint(now.Add(time.Minute).Unix())}})
	require.JSONEq(t, `[]`, string(r.Data))

	// Self-monitoring.
	code, m := apptest.Get(t, "http://"+o.Addr+"/metrics")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, string(m), fmt.Sprintf(`orrery_ingest_samples_total{workspace=%q} 2`, a))
	require.Contains(t, string(m), fmt.Sprintf(`orrery_storage_active_series{workspace=%q} 2`, a))
	o.Stop()
}

// TestKill9KeepsAcknowledgedSamples writes from several senders, kills the
// server with SIGKILL mid-stream, restarts it and checks that every sample
// the server acknowledged with 2xx is there.
func TestKill9KeepsAcknowledgedSamples(t *testing.T) {
	dir := t.TempDir()
	o := apptest.StartOrrery(t, dir, "--limits.ingestion-rate=0")
	ws := workspace.NewID().String()
	const senders = 4
	base := time.Now().Add(-30 * time.Minute).UnixMilli()
	var (
		acked [senders]atomic.Int64 // number of acknowledged requests per sender.
		stop  atomic.Bool
		wg    sync.WaitGroup
	)
	for s := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int64(0); !stop.Load() && i < 100_000; i++ {
				// 50 series per request, one sample each, 1s apart.
				var series []prompb.TimeSeries
				for k := range 50 {
					series = append(series, ts("crash_test", base+i*1000, float64(i), "sender", fmt.Sprint(s), "k", fmt.Sprint(k)))
				}
				code, _ := apptest.Write(t, o.RemoteWriteURL(ws), &prompb.WriteRequest{Timeseries: series})
				if code/100 != 2 {
					return
				}
				acked[s].Store(i + 1)
			}
		}()
	}
	time.Sleep(3 * time.Second)
	o.Kill()
	stop.Store(true)
	wg.Wait()
	var total int64
	for s := range senders {
		total += acked[s].Load()
	}
	require.Positive(t, total, "no request was acknowledged before the kill")
	t.Logf("acknowledged %d requests (%d samples) before SIGKILL", total, total*50)

	o.Restart()
	at := time.UnixMilli(base + 100_000*1000)
	for s := range senders {
		n := acked[s].Load()
		if n == 0 {
			continue
		}
		v, err := apptest.QueryVector(t, o.URL(ws, "/api/v1"),
			fmt.Sprintf(`count_over_time(crash_test{sender="%d"}[2d])`, s), at)
		require.NoError(t, err)
		require.Len(t, v, 50, "sender %d: every series is there", s)
		for _, e := range v {
			var got int64
			_, err := fmt.Sscan(e.Value[1].(string), &got)
			require.NoError(t, err)
			require.GreaterOrEqual(t, got, n, "sender %d series %s: samples after restart vs acknowledged", s, e.Metric["k"])
		}
	}
	o.Stop()
}

// TestRestartAndStaleness checks an orderly restart keeps data and that
// staleness markers written by senders end series as in Prometheus.
func TestRestartAndStaleness(t *testing.T) {
	dir := t.TempDir()
	o := apptest.StartOrrery(t, dir)
	ws := workspace.NewID().String()
	now := time.Now().Truncate(time.Second)
	t0 := now.Add(-2 * time.Minute).UnixMilli()
	code, body := apptest.Write(t, o.RemoteWriteURL(ws), &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
		{Labels: []prompb.Label{{Name: "__name__", Value: "g"}}, Samples: []prompb.Sample{
			{Value: 1, Timestamp: t0}, {Value: 2, Timestamp: t0 + 15_000}, {Value: math.Float64frombits(value.StaleNaN), Timestamp: t0 + 30_000},
		}},
	}})
	require.Equal(t, http.StatusNoContent, code, body)
	o.Stop()
	o.Restart()
	v, err := apptest.QueryVector(t, o.URL(ws, "/api/v1"), "g", time.UnixMilli(t0+20_000))
	require.NoError(t, err)
	require.Len(t, v, 1)
	require.Equal(t, "2", v[0].Value[1])
	v, err = apptest.QueryVector(t, o.URL(ws, "/api/v1"), "g", time.UnixMilli(t0+40_000))
	require.NoError(t, err)
	require.Empty(t, v, "a staleness marker ends the series")
	_, err = os.Stat(filepath.Join(dir, "workspaces", ws, "tsdb", "wal"))
	require.NoError(t, err, "the workspace's TSDB lives in its own directory")
	o.Stop()
}

// TestPortInUse: a server whose port is taken says so and how to fix it
// (the listen error is recognised as EADDRINUSE, not by its text).
func TestPortInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	cmd := exec.Command(apptest.OrreryBinary(t), "server", "--auth=none", "--listen", ln.Addr().String(), "--data-dir", t.TempDir())
	out, err := cmd.CombinedOutput()
	require.Error(t, err)
	require.Contains(t, string(out), "address already in use (another process uses the port: pick another with --listen)")
}
