package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/amp"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"

	"github.com/orrery-dev/orrery/internal/apptest"
)

// seedDefinition sends the seed's alert to a webhook, by email and to SNS.
const seedDefinition = `alertmanager_config: |
  global:
    smtp_smarthost: %[1]s
    smtp_from: alertmanager@orrery.test
    smtp_require_tls: false
  route:
    receiver: oncall
    group_by: [alertname, envoy_cluster_name]
    group_wait: 200ms
    group_interval: 500ms
    repeat_interval: 1h
  receivers:
    - name: oncall
      webhook_configs: [{url: %[2]s, send_resolved: true}]
      email_configs: [{to: oncall@orrery.test, send_resolved: true}]
      sns_configs:
        - api_url: %[3]s
          topic_arn: arn:aws:sns:us-east-1:123456789012:mesh-latency
          subject: '{{ .CommonLabels.alertname }} {{ .Status }}'
          send_resolved: true
          sigv4: {region: us-east-1, access_key: AKIASNSSEED, secret_key: seed-secret}
`

// seedRules is the seed's alert: p99 downstream latency above 5 ms.
const seedRules = `groups:
  - name: mesh-latency
    interval: 1s
    rules:
      - alert: EnvoyLatencyAbove5ms
        expr: histogram_quantile(0.99, sum by (le, envoy_cluster_name) (rate(envoy_cluster_upstream_rq_time_bucket[1m]))) > 5
        for: 2s
        labels: {severity: page}
        annotations: {summary: 'p99 latency of {{ $labels.envoy_cluster_name }} is {{ $value | printf "%.1f" }} ms'}
`

// latencyWriter remote-writes an Envoy latency histogram of one cluster
// every second: 100 requests a second, all in the 25 ms bucket when slow,
// all in the 1 ms bucket when fast.
type latencyWriter struct {
	mu     sync.Mutex
	slow   bool
	counts []float64 // cumulative, per envoyLeBuckets.
}

func (w *latencyWriter) setSlow(s bool) {
	w.mu.Lock()
	w.slow = s
	w.mu.Unlock()
}

func (w *latencyWriter) write(t *testing.T, url string, at time.Time) {
	w.mu.Lock()
	if w.counts == nil {
		w.counts = make([]float64, len(envoyLeBuckets))
	}
	first := "1"
	if w.slow {
		first = "25"
	}
	in := false
	var series []prompb.TimeSeries
	for i, le := range envoyLeBuckets {
		in = in || le == first
		if in {
			w.counts[i] += 100
		}
		series = append(series, ts("envoy_cluster_upstream_rq_time_bucket", at.UnixMilli(), w.counts[i], "envoy_cluster_name", "payments", "le", le))
	}
	w.mu.Unlock()
	_, _ = apptest.Write(t, url, &prompb.WriteRequest{Timeseries: series})
}

// TestSeedLatencyAlertEndToEnd is the seed's alert from end to end: Envoy
// latency histograms written to a workspace, the alerting rule in a rule
// groups namespace and an alert manager definition made with the AWS SDK;
// slow requests fire the alert to a webhook, an SMTP server and a
// SigV4-checking SNS endpoint; fast requests resolve it; an amtool silence
// keeps the next firing quiet.
func TestSeedLatencyAlertEndToEnd(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var (
		hooks     recorder[hookMessage]
		mails     recorder[mail]
		published recorder[snsPublish]
		snsFails  recorder[string]
	)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m hookMessage
		if err := json.NewDecoder(r.Body).Decode(&m); err == nil {
			hooks.add(m)
		}
	}))
	t.Cleanup(hook.Close)
	smtpAddr := smtpServer(t, &mails)
	sns := snsServer(t, "AKIASNSSEED", "seed-secret", &published, &snsFails)

	o := apptest.StartOrrery(t, t.TempDir(), "--rules.alert.resend-delay=1s")
	client := ampClient(o)
	created, err := client.CreateWorkspace(ctx, &amp.CreateWorkspaceInput{Alias: aws.String("mesh")})
	require.NoError(t, err)
	ws := aws.ToString(created.WorkspaceId)
	_, err = client.CreateAlertManagerDefinition(ctx, &amp.CreateAlertManagerDefinitionInput{WorkspaceId: aws.String(ws),
		Data: fmt.Appendf(nil, seedDefinition, smtpAddr, hook.URL, sns.URL)})
	require.NoError(t, err)
	_, err = client.CreateRuleGroupsNamespace(ctx, &amp.CreateRuleGroupsNamespaceInput{WorkspaceId: aws.String(ws),
		Name: aws.String("mesh"), Data: []byte(seedRules)})
	require.NoError(t, err)

	w := &latencyWriter{slow: true}
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	go func() {
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			w.write(t, o.RemoteWriteURL(ws), time.Now())
			select {
			case <-wctx.Done():
				return
			case <-tick.C:
			}
		}
	}()

	notified := func(status string) func() bool {
		return func() bool {
			for _, m := range hooks.all() {
				if m.Status == status && len(m.Alerts) == 1 && m.Alerts[0].Labels["alertname"] == "EnvoyLatencyAbove5ms" &&
					m.Alerts[0].Labels["envoy_cluster_name"] == "payments" {
					return true
				}
			}
			return false
		}
	}
	require.Eventually(t, notified("firing"), 60*time.Second, 100*time.Millisecond, "the webhook gets the firing alert")
	require.Eventually(t, func() bool {
		for _, m := range mails.all() {
			if strings.Contains(m.Data, "EnvoyLatencyAbove5ms") && strings.Contains(m.Data, "p99 latency of payments is 25.0 ms") ||
				strings.Contains(m.Data, "p99 latency of payments is 24.") {
				return true
			}
		}
		return false
	}, 15*time.Second, 100*time.Millisecond, "the mail arrives: %v", mails.all())
	require.Eventually(t, func() bool {
		for _, p := range published.all() {
			if p.TopicArn == "arn:aws:sns:us-east-1:123456789012:mesh-latency" && p.Subject == "EnvoyLatencyAbove5ms firing" {
				return true
			}
		}
		return false
	}, 15*time.Second, 100*time.Millisecond, "SNS gets a signed Publish: %v %v", published.all(), snsFails.all())
	require.Empty(t, snsFails.all())

	// Fast requests: once the slow minute leaves the rate window, the alert
	// resolves everywhere.
	w.setSlow(false)
	require.Eventually(t, notified("resolved"), 120*time.Second, 200*time.Millisecond, "the webhook gets the resolution")
	require.Eventually(t, func() bool {
		for _, p := range published.all() {
			if p.Subject == "EnvoyLatencyAbove5ms resolved" {
				return true
			}
		}
		return false
	}, 15*time.Second, 100*time.Millisecond)

	// A silence made with amtool keeps the next firing quiet.
	base := o.URL(ws, "/alertmanager")
	amtool(t, base, "silence", "add", "alertname=EnvoyLatencyAbove5ms", "envoy_cluster_name=payments", "-c", "deploying payments", "-a", "oncall")
	before := len(hooks.all())
	w.setSlow(true)
	require.Eventually(t, func() bool {
		return strings.Contains(amtool(t, base, "alert", "query", "--silenced", "alertname=EnvoyLatencyAbove5ms"), "EnvoyLatencyAbove5ms")
	}, 60*time.Second, 500*time.Millisecond, "the alert fires again, silenced")
	time.Sleep(2 * time.Second)
	require.Len(t, hooks.all(), before, "no notification while silenced")
	stop()
	o.Stop()
}
