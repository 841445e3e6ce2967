package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/amp"
	"github.com/aws/aws-sdk-go-v2/service/amp/types"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"

	"github.com/orrery-dev/orrery/internal/apptest"
)

// anomalyRules alert on the detector's score instead of a fixed latency.
const anomalyRules = `groups:
  - name: mesh-anomalies
    interval: 1s
    rules:
      - alert: EnvoyLatencyAnomaly
        expr: anomaly_detector:score >= 0.5
        labels: {severity: page}
`

const anomalyDefinition = `alertmanager_config: |
  route:
    receiver: oncall
    group_by: [alertname]
    group_wait: 200ms
    group_interval: 500ms
    repeat_interval: 1h
  receivers:
    - name: oncall
      webhook_configs: [{url: %s, send_resolved: true}]
`

// TestAnomalyAlertEndToEnd is the end to end: a detector on the
// p99 Envoy latency of one service learns an hour of normal traffic, the
// injected latency is flagged within a few evaluation intervals, an
// alerting rule on the detector's score fires through the workspace's
// Alertmanager to a webhook, and it resolves once the fault is removed.
func TestAnomalyAlertEndToEnd(t *testing.T) {
	ctx := context.Background()
	var hooks recorder[hookMessage]
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m hookMessage
		if err := json.NewDecoder(r.Body).Decode(&m); err == nil {
			hooks.add(m)
		}
	}))
	t.Cleanup(hook.Close)
	o := apptest.StartOrrery(t, t.TempDir(), "--rules.alert.resend-delay=1s")
	client := ampClient(o)
	created, err := client.CreateWorkspace(ctx, &amp.CreateWorkspaceInput{Alias: aws.String("mesh")})
	require.NoError(t, err)
	ws := aws.ToString(created.WorkspaceId)

	// An hour of fast requests (100 a second in the 1 ms bucket), every
	// 30 s, then the live writer goes on from those counts every second.
	w := &latencyWriter{counts: make([]float64, len(envoyLeBuckets))}
	now := time.Now()
	hist := make([]prompb.TimeSeries, len(envoyLeBuckets))
	for i, le := range envoyLeBuckets {
		hist[i] = ts("envoy_cluster_upstream_rq_time_bucket", 0, 0, "envoy_cluster_name", "payments", "le", le)
		hist[i].Samples = nil
	}
	for step := 120; step >= 1; step-- {
		at := now.Add(-time.Duration(step) * 30 * time.Second)
		for i, le := range envoyLeBuckets {
			if le != "0.5" {
				w.counts[i] += 3000
			}
			hist[i].Samples = append(hist[i].Samples, prompb.Sample{Timestamp: at.UnixMilli(), Value: w.counts[i]})
		}
	}
	code, body := apptest.Write(t, o.RemoteWriteURL(ws), &prompb.WriteRequest{Timeseries: hist})
	require.Equal(t, http.StatusNoContent, code, body)
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	go func() {
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-wctx.Done():
				return
			case at := <-tick.C:
				w.write(t, o.RemoteWriteURL(ws), at)
			}
		}
	}()

	_, err = client.CreateAlertManagerDefinition(ctx, &amp.CreateAlertManagerDefinitionInput{WorkspaceId: aws.String(ws),
		Data: fmt.Appendf(nil, anomalyDefinition, hook.URL)})
	require.NoError(t, err)
	_, err = client.CreateRuleGroupsNamespace(ctx, &amp.CreateRuleGroupsNamespaceInput{WorkspaceId: aws.String(ws),
		Name: aws.String("anomalies"), Data: []byte(anomalyRules)})
	require.NoError(t, err)
	det, err := client.CreateAnomalyDetector(ctx, &amp.CreateAnomalyDetectorInput{WorkspaceId: aws.String(ws), Alias: aws.String("payments-p99"),
		EvaluationIntervalInSeconds: aws.Int32(30),
		Configuration: &types.AnomalyDetectorConfigurationMemberRandomCutForest{Value: types.RandomCutForestConfiguration{
			Query:       aws.String(`max by (envoy_cluster_name) (histogram_quantile(0.99, sum by (le, envoy_cluster_name) (rate(envoy_cluster_upstream_rq_time_bucket[1m]))))`),
			ShingleSize: aws.Int32(4), SampleSize: aws.Int32(32)}}})
	require.NoError(t, err)

	// It learns the normal traffic: ACTIVE, and a normal score.
	api := o.URL(ws, "/api/v1")
	apptest.Eventually(t, 75*time.Second, func() error {
		v, err := apptest.QueryVector(t, api, `anomaly_detector:score`, time.Now())
		if err != nil {
			return err
		}
		if len(v) != 1 || v[0].Metric["envoy_cluster_name"] != "payments" {
			return fmt.Errorf("score series %v", v)
		}
		s, _ := v[0].Value[1].(string)
		if f, err := strconv.ParseFloat(s, 64); err != nil || f >= 0.5 {
			return fmt.Errorf("normal traffic scored %q", s)
		}
		return nil
	})
	d, err := client.DescribeAnomalyDetector(ctx, &amp.DescribeAnomalyDetectorInput{WorkspaceId: aws.String(ws), AnomalyDetectorId: det.AnomalyDetectorId})
	require.NoError(t, err)
	require.Equal(t, types.AnomalyDetectorStatusCodeActive, d.AnomalyDetector.Status.StatusCode)
	require.Empty(t, hooks.all(), "no alert on normal traffic")

	notified := func(status string) func() bool {
		return func() bool {
			for _, m := range hooks.all() {
				if m.Status == status && len(m.Alerts) == 1 && m.Alerts[0].Labels["alertname"] == "EnvoyLatencyAnomaly" &&
					m.Alerts[0].Labels["envoy_cluster_name"] == "payments" && m.Alerts[0].Labels["anomaly_detector_id"] == aws.ToString(det.AnomalyDetectorId) {
					return true
				}
			}
			return false
		}
	}
	// The fault: all requests slow. Flagged within a few intervals.
	w.setSlow(true)
	require.Eventually(t, notified("firing"), 100*time.Second, 200*time.Millisecond, "the anomaly alert fires")
	// The fault removed: once the slow minute has left the rate window and
	// the shingles, the score is normal and the alert resolves.
	w.setSlow(false)
	require.Eventually(t, notified("resolved"), 300*time.Second, 500*time.Millisecond, "the anomaly alert resolves")
}
