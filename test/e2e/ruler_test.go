package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/amp"
	"github.com/aws/aws-sdk-go-v2/service/amp/types"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"

	"github.com/orrery-dev/orrery/internal/apptest"
)

// envoyLeBuckets are the le values of Envoy's request time histograms (ms).
var envoyLeBuckets = []string{"0.5", "1", "5", "10", "25", "50", "100", "250", "500", "1000", "2500", "5000", "10000",
	"30000", "60000", "300000", "600000", "1800000", "3600000", "+Inf"}

// rulerRules has the seed's latency alert and a recording rule; the
// annotation leaves out $value so answers compare across servers.
const rulerRules = `groups:
  - name: envoy
    interval: 1s
    rules:
      - record: envoy_cluster:upstream_rq:rate1m
        expr: sum by (envoy_cluster_name) (rate(envoy_cluster_upstream_rq_time_count[1m]))
      - alert: EnvoyUpstreamLatencyHigh
        expr: histogram_quantile(0.99, sum by (le, envoy_cluster_name) (rate(envoy_cluster_upstream_rq_time_bucket[1m]))) > 5
        for: 3s
        labels:
          severity: warning
        annotations:
          summary: p99 upstream latency of {{ $labels.envoy_cluster_name }} is above 5ms
      - alert: EnvoyUpstreamLatencySustained
        expr: histogram_quantile(0.99, sum by (le, envoy_cluster_name) (rate(envoy_cluster_upstream_rq_time_bucket[1m]))) > 5
        for: 1m
`

// envoyWriter remote-writes Envoy latency histograms of two clusters, one
// sample a second, as a scraping agent would: "slow" has a p99 near 25ms,
// "fast" below 1ms. Failed writes (a restarting server) are retried with
// the next sample.
type envoyWriter struct {
	mu   sync.Mutex
	urls []string
	n    float64
}

func (w *envoyWriter) series(at time.Time) []prompb.TimeSeries {
	w.n++
	var out []prompb.TimeSeries
	for _, cluster := range []string{"slow", "fast"} {
		for _, le := range envoyLeBuckets {
			v := 100 * w.n
			switch {
			case cluster == "fast" && le == "0.5":
				v = 50 * w.n
			case cluster == "slow" && (le == "0.5" || le == "1"):
				v = 0
			case cluster == "slow" && le == "5":
				v = 10 * w.n
			case cluster == "slow" && le == "10":
				v = 50 * w.n
			}
			out = append(out, ts("envoy_cluster_upstream_rq_time_bucket", at.UnixMilli(), v, "envoy_cluster_name", cluster, "le", le))
		}
		out = append(out, ts("envoy_cluster_upstream_rq_time_count", at.UnixMilli(), 100*w.n, "envoy_cluster_name", cluster))
	}
	return out
}

func (w *envoyWriter) run(t *testing.T, ctx context.Context) {
	now := time.Now()
	// A minute of history, then a sample every second.
	for at := now.Add(-time.Minute); !at.After(now); at = at.Add(5 * time.Second) {
		w.write(t, at)
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			w.write(t, time.Now())
		}
	}
}

func (w *envoyWriter) write(t *testing.T, at time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	req := &prompb.WriteRequest{Timeseries: w.series(at)}
	for _, u := range w.urls {
		_, _ = apptest.Write(t, u, req)
	}
}

func ampClient(o *apptest.Orrery) *amp.Client {
	return amp.New(amp.Options{BaseEndpoint: aws.String("http://" + o.Addr), Region: "us-east-1",
		Credentials: credentials.NewStaticCredentialsProvider("AKIAORRERYTEST", "secret", "")})
}

type apiAlert struct {
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	State       string            `json:"state"`
	ActiveAt    time.Time         `json:"activeAt"`
	Value       string            `json:"value"`
}

// alerts returns the alerts of /api/v1/alerts with the given alertname.
func alerts(t *testing.T, base, name string) []apiAlert {
	t.Helper()
	code, r := apptest.API(t, base, "/alerts", nil)
	require.Equal(t, http.StatusOK, code, r.Error)
	var data struct {
		Alerts []apiAlert `json:"alerts"`
	}
	require.NoError(t, json.Unmarshal(r.Data, &data))
	var out []apiAlert
	for _, a := range data.Alerts {
		if a.Labels["alertname"] == name {
			out = append(out, a)
		}
	}
	return out
}

// shape masks what differs between two servers evaluating the same rules
// at slightly different times: timestamps, durations of evaluations,
// values, and the rule file's name (Orrery names it by namespace,
// Prometheus by path). Alerts are sorted by labels.
func shape(t *testing.T, b []byte) string {
	t.Helper()
	var v any
	require.NoError(t, json.Unmarshal(b, &v), "%s", b)
	var mask func(any) any
	mask = func(v any) any {
		switch x := v.(type) {
		case map[string]any:
			for k, e := range x {
				switch k {
				case "evaluationTime", "lastEvaluation", "activeAt", "value", "file":
					x[k] = fmt.Sprintf("<%T>", e)
				default:
					x[k] = mask(e)
				}
			}
		case []any:
			for i := range x {
				x[i] = mask(x[i])
			}
			sort.SliceStable(x, func(i, j int) bool {
				bi, _ := json.Marshal(x[i])
				bj, _ := json.Marshal(x[j])
				return string(bi) < string(bj)
			})
		}
		return v
	}
	out, err := json.MarshalIndent(mask(v), "", "  ")
	require.NoError(t, err)
	return string(out)
}

// TestRulerAgainstPrometheus creates rule groups namespaces with the AWS
// SDK amp client, remote-writes Envoy latency histograms, and checks the
// recording rule's output, the alert's pending and firing states in
// /api/v1/alerts and /api/v1/rules (the same JSON as a Prometheus server
// evaluating the same rule file on the same data), live updates and
// deletes of the namespace, and that a restart keeps the alerts' `for`
// state.
func TestRulerAgainstPrometheus(t *testing.T) {
	dir := t.TempDir()
	o := apptest.StartOrrery(t, dir, "--rules.poll-interval=1s", "--rules.alert.resend-delay=1s", "--rules.alert.for-grace-period=1s")
	client := ampClient(o)
	ctx := context.Background()
	a, err := client.CreateWorkspace(ctx, &amp.CreateWorkspaceInput{Alias: aws.String("mesh")})
	require.NoError(t, err)
	b, err := client.CreateWorkspace(ctx, &amp.CreateWorkspaceInput{Alias: aws.String("other")})
	require.NoError(t, err)
	ws, other := aws.ToString(a.WorkspaceId), aws.ToString(b.WorkspaceId)
	api, otherAPI := o.URL(ws, "/api/v1"), o.URL(other, "/api/v1")

	// The reference: Prometheus of the embedded version with the same file.
	refDir := t.TempDir()
	ruleFile := filepath.Join(refDir, "envoy.yml")
	require.NoError(t, os.WriteFile(ruleFile, []byte(rulerRules), 0o600))
	cfg := filepath.Join(refDir, "prometheus.yml")
	require.NoError(t, os.WriteFile(cfg, []byte("global:\n  evaluation_interval: 1s\nrule_files: ["+ruleFile+"]\n"), 0o600))
	refAddr := apptest.FreeAddr(t)
	apptest.Start(t, "reference prometheus", apptest.ReferencePrometheus(t), "--config.file="+cfg, "--storage.tsdb.path="+t.TempDir(),
		"--web.listen-address="+refAddr, "--web.enable-remote-write-receiver", "--rules.alert.resend-delay=1s")
	apptest.WaitHTTP(t, "http://"+refAddr+"/-/ready", 60*time.Second)
	refAPI := "http://" + refAddr + "/api/v1"

	w := &envoyWriter{urls: []string{o.RemoteWriteURL(ws), o.RemoteWriteURL(other), "http://" + refAddr + "/api/v1/write"}}
	wctx, stopWriting := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { w.run(t, wctx) })
	t.Cleanup(func() { stopWriting(); wg.Wait() })

	_, err = client.CreateRuleGroupsNamespace(ctx, &amp.CreateRuleGroupsNamespaceInput{WorkspaceId: aws.String(ws), Name: aws.String("envoy"),
		Data: []byte(rulerRules)})
	require.NoError(t, err)

	// The alert goes pending, then fires, for the slow cluster only.
	sawPending := false
	apptest.Eventually(t, 20*time.Second, func() error {
		as := alerts(t, api, "EnvoyUpstreamLatencyHigh")
		if len(as) == 1 && as[0].State == "pending" {
			sawPending = true
		}
		if len(as) != 1 || as[0].State != "firing" {
			return fmt.Errorf("alerts %+v, want one firing", as)
		}
		return nil
	})
	require.True(t, sawPending, "the alert was pending before it fired")
	fired := alerts(t, api, "EnvoyUpstreamLatencyHigh")[0]
	require.Equal(t, map[string]string{"alertname": "EnvoyUpstreamLatencyHigh", "envoy_cluster_name": "slow", "severity": "warning"}, fired.Labels)
	require.Equal(t, "p99 upstream latency of slow is above 5ms", fired.Annotations["summary"])

	// The recording rule's output is in the workspace, and only there.
	v, err := apptest.QueryVector(t, api, "envoy_cluster:upstream_rq:rate1m", time.Now())
	require.NoError(t, err)
	require.Len(t, v, 2)
	v, err = apptest.QueryVector(t, otherAPI, "envoy_cluster:upstream_rq:rate1m", time.Now())
	require.NoError(t, err)
	require.Empty(t, v)
	require.Empty(t, alerts(t, otherAPI, "EnvoyUpstreamLatencyHigh"))
	code, r := apptest.API(t, otherAPI, "/rules", nil)
	require.Equal(t, http.StatusOK, code)
	require.JSONEq(t, `{"groups":[]}`, string(r.Data))

	// /api/v1/rules and /api/v1/alerts answer as Prometheus does.
	apptest.Eventually(t, 20*time.Second, func() error {
		if s := alerts(t, refAPI, "EnvoyUpstreamLatencyHigh"); len(s) != 1 || s[0].State != "firing" {
			return fmt.Errorf("reference alerts %+v, want one firing", s)
		}
		return nil
	})
	for _, q := range []string{"/rules", "/alerts", "/rules?type=alert", "/rules?type=record&rule_name[]=envoy_cluster:upstream_rq:rate1m"} {
		_, got := apptest.Get(t, api+q)
		_, want := apptest.Get(t, refAPI+q)
		require.Equal(t, shape(t, want), shape(t, got), q)
	}
	_, r = apptest.API(t, api, "/rules", nil)
	require.Contains(t, string(r.Data), `"file":"envoy"`, "a group's file is its namespace")

	// A restart keeps the `for` state: the firing alert keeps its activeAt
	// (to the second, as ALERTS_FOR_STATE stores it); the pending one
	// (for: 1m) keeps the time it had been pending.
	pending := alerts(t, api, "EnvoyUpstreamLatencySustained")
	require.Len(t, pending, 1)
	require.Equal(t, "pending", pending[0].State)
	time.Sleep(time.Until(pending[0].ActiveAt.Add(12 * time.Second)))
	stoppedAt := time.Now()
	pendingFor := stoppedAt.Sub(pending[0].ActiveAt)
	o.Stop()
	o.Restart()
	restartedAt := time.Now()
	apptest.Eventually(t, 20*time.Second, func() error {
		as := alerts(t, api, "EnvoyUpstreamLatencyHigh")
		if len(as) != 1 || as[0].State != "firing" || as[0].ActiveAt.Unix() != fired.ActiveAt.Unix() {
			return fmt.Errorf("alerts %+v, want one firing since %s", as, fired.ActiveAt)
		}
		ps := alerts(t, api, "EnvoyUpstreamLatencySustained")
		// Restored, the pending alert became active before the restart, by
		// about as long as it had been pending before the stop.
		if len(ps) != 1 || ps[0].State != "pending" || !ps[0].ActiveAt.Before(restartedAt.Add(-pendingFor/2)) {
			return fmt.Errorf("pending alerts %+v, want one active since before %s", ps, restartedAt.Add(-pendingFor/2))
		}
		return nil
	})

	// An updated namespace applies without a restart.
	updated := strings.ReplaceAll(rulerRules, "envoy_cluster:upstream_rq:rate1m", "envoy_cluster:rq:rate1m")
	_, err = client.PutRuleGroupsNamespace(ctx, &amp.PutRuleGroupsNamespaceInput{WorkspaceId: aws.String(ws), Name: aws.String("envoy"),
		Data: []byte(updated)})
	require.NoError(t, err)
	_, r = apptest.API(t, api, "/rules", nil)
	require.Contains(t, string(r.Data), `"name":"envoy_cluster:rq:rate1m"`)
	require.NotContains(t, string(r.Data), `"name":"envoy_cluster:upstream_rq:rate1m"`)
	apptest.Eventually(t, 10*time.Second, func() error {
		v, err := apptest.QueryVector(t, api, "envoy_cluster:rq:rate1m", time.Now())
		if err == nil && len(v) != 2 {
			err = fmt.Errorf("%d series, want 2", len(v))
		}
		return err
	})

	// A deleted namespace's rules are gone at once.
	_, err = client.DeleteRuleGroupsNamespace(ctx, &amp.DeleteRuleGroupsNamespaceInput{WorkspaceId: aws.String(ws), Name: aws.String("envoy")})
	require.NoError(t, err)
	_, r = apptest.API(t, api, "/rules", nil)
	require.JSONEq(t, `{"groups":[]}`, string(r.Data))
	require.Empty(t, alerts(t, api, "EnvoyUpstreamLatencyHigh"))
}

// TestRuleQuotasAndWorkspaceDeletion checks a rule quota set by flag is
// enforced with AMP's error, and that deleting a workspace stops its rules
// for good: its data directory is removed and nothing recreates it.
func TestRuleQuotasAndWorkspaceDeletion(t *testing.T) {
	dir := t.TempDir()
	o := apptest.StartOrrery(t, dir, "--rules.poll-interval=200ms", "--limits.max-rule-groups=1")
	client := ampClient(o)
	ctx := context.Background()
	created, err := client.CreateWorkspace(ctx, &amp.CreateWorkspaceInput{})
	require.NoError(t, err)
	ws := aws.ToString(created.WorkspaceId)
	_, err = client.CreateRuleGroupsNamespace(ctx, &amp.CreateRuleGroupsNamespaceInput{WorkspaceId: aws.String(ws), Name: aws.String("envoy"),
		Data: []byte(rulerRules)})
	require.NoError(t, err)
	_, err = client.CreateRuleGroupsNamespace(ctx, &amp.CreateRuleGroupsNamespaceInput{WorkspaceId: aws.String(ws), Name: aws.String("more"),
		Data: []byte("groups:\n  - name: more\n    rules:\n      - record: one\n        expr: vector(1)\n")})
	var quota *types.ServiceQuotaExceededException
	require.ErrorAs(t, err, &quota)
	require.ErrorContains(t, err, "more than its limit of 1 (max_rule_groups)")

	// The rules run: the recording rule's series is in the workspace.
	apptest.Eventually(t, 10*time.Second, func() error {
		_, r := apptest.API(t, o.URL(ws, "/api/v1"), "/rules", nil)
		if !strings.Contains(string(r.Data), `"health":"ok"`) {
			return fmt.Errorf("rules not evaluated yet: %s", r.Data)
		}
		return nil
	})
	wsDir := filepath.Join(dir, "workspaces", ws)
	require.DirExists(t, wsDir)

	_, err = client.DeleteWorkspace(ctx, &amp.DeleteWorkspaceInput{WorkspaceId: aws.String(ws)})
	require.NoError(t, err)
	apptest.Eventually(t, 10*time.Second, func() error {
		if _, err := os.Stat(wsDir); err == nil {
			return fmt.Errorf("%s still exists", wsDir)
		}
		return nil
	})
	time.Sleep(time.Second) // Five polls.
	require.NoDirExists(t, wsDir, "the ruler recreated a deleted workspace")
	require.Contains(t, o.Output(), "workspace rules stopped")
}
