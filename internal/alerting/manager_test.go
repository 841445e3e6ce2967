package alerting_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/notifier"
	"github.com/stretchr/testify/require"

	"github.com/orrery-dev/orrery/internal/alerting"
	"github.com/orrery-dev/orrery/internal/workspace"
)

// definitions is an in-memory DefinitionSource, standing in for the catalog.
type definitions struct {
	mu   sync.Mutex
	data map[workspace.ID][]byte
}

func (d *definitions) AlertmanagerDefinitions(context.Context) ([]workspace.ID, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var ids []workspace.ID
	for id := range d.data {
		ids = append(ids, id)
	}
	return ids, nil
}

func (d *definitions) AlertmanagerDefinition(_ context.Context, id workspace.ID) ([]byte, bool, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	b, ok := d.data[id]
	return b, ok, nil
}

func (d *definitions) set(id workspace.ID, b []byte) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if b == nil {
		delete(d.data, id)
		return
	}
	d.data[id] = b
}

// webhook records the Alertmanager webhook payloads it receives.
type webhook struct {
	mu       sync.Mutex
	messages []webhookMessage
}

type webhookMessage struct {
	Status string `json:"status"`
	Alerts []struct {
		Status string            `json:"status"`
		Labels map[string]string `json:"labels"`
	} `json:"alerts"`
	GroupLabels map[string]string `json:"groupLabels"`
}

func (h *webhook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var m webhookMessage
	if err := json.NewDecoder(r.Body).Decode(&m); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	h.mu.Lock()
	h.messages = append(h.messages, m)
	h.mu.Unlock()
}

func (h *webhook) all() []webhookMessage {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]webhookMessage(nil), h.messages...)
}

func definition(url, groupBy string) []byte {
	return fmt.Appendf(nil, `alertmanager_config: |
  route:
    receiver: hook
    group_by: [%s]
    group_wait: 100ms
    group_interval: 300ms
    repeat_interval: 1h
  receivers:
    - name: hook
      webhook_configs:
        - url: %s
          send_resolved: true
template_files:
  extra.tmpl: '{{ define "extra" }}x{{ end }}'
`, groupBy, url)
}

func alert(name, instance string, endsAt time.Time) *notifier.Alert {
	return &notifier.Alert{Labels: labels.FromStrings("alertname", name, "instance", instance), EndsAt: endsAt}
}

func TestManagerDeliversReloadsAndLimits(t *testing.T) {
	hook := &webhook{}
	srv := httptest.NewServer(hook)
	defer srv.Close()
	id := workspace.NewID()
	defs := &definitions{data: map[workspace.ID][]byte{id: definition(srv.URL, "alertname")}}
	lim := workspace.DefaultLimits()
	lim.AlertmanagerMaxAlerts = 3
	ov, err := workspace.NewOverrides(lim)
	require.NoError(t, err)
	reg := prometheus.NewRegistry()
	dir := t.TempDir()
	m, err := alerting.New(alerting.Config{DataDir: dir, ExternalURL: "http://orrery.test", Limits: ov}, defs, nil, reg)
	require.NoError(t, err)
	ctx := context.Background()
	require.NoError(t, m.SyncAll(ctx))

	// Two alerts of one group make one notification.
	m.SendAlerts(id, alert("Down", "a", time.Time{}), alert("Down", "b", time.Time{}))
	require.Eventually(t, func() bool { return len(hook.all()) == 1 && len(hook.all()[0].Alerts) == 2 }, 10*time.Second, 20*time.Millisecond)
	require.Equal(t, map[string]string{"alertname": "Down"}, hook.all()[0].GroupLabels)

	// A new definition keeps the alerts.
	defs.set(id, definition(srv.URL, "alertname, instance"))
	require.NoError(t, m.Sync(ctx, id))
	code, body := call(t, m, id, http.MethodGet, "/api/v2/alerts", "")
	require.Equal(t, http.StatusOK, code, body)
	require.Equal(t, 2, strings.Count(body, `"fingerprint"`), body)

	// A broken definition is refused and the running one stays.
	defs.set(id, []byte("alertmanager_config: |\n  route:\n    receiver: missing\n"))
	require.ErrorContains(t, m.Sync(ctx, id), "missing")
	require.NoError(t, m.Sync(ctx, id), "a definition that failed is reported once")
	code, _ = call(t, m, id, http.MethodGet, "/api/v2/status", "")
	require.Equal(t, http.StatusOK, code)

	// Limits: a third alert fits, a fourth does not, through either path.
	m.SendAlerts(id, alert("Down", "c", time.Time{}), alert("Down", "d", time.Time{}))
	require.Equal(t, 1.0, dropped(t, reg, id, "limited"))
	code, body = call(t, m, id, http.MethodPost, "/api/v2/alerts", `[{"labels":{"alertname":"Other"}}]`)
	require.Equal(t, http.StatusTooManyRequests, code, body)
	require.Contains(t, body, "alertmanager_max_alerts")

	// Resolving an alert notifies it resolved, once its group (of the new
	// definition) was notified firing.
	require.Eventually(t, func() bool {
		for _, msg := range hook.all() {
			if msg.GroupLabels["instance"] == "a" && msg.Status == "firing" {
				return true
			}
		}
		return false
	}, 10*time.Second, 20*time.Millisecond)
	m.SendAlerts(id, alert("Down", "a", time.Now().Add(-time.Second)))
	require.Eventually(t, func() bool {
		for _, msg := range hook.all() {
			for _, a := range msg.Alerts {
				if a.Status == "resolved" && a.Labels["instance"] == "a" {
					return true
				}
			}
		}
		return false
	}, 10*time.Second, 20*time.Millisecond)

	// The Alertmanager's own metrics carry the workspace.
	require.Equal(t, id.String(), metricLabel(t, reg, "alertmanager_notifications_total", "workspace"))
	require.Equal(t, id.String(), metricLabel(t, reg, "alertmanager_silences", "workspace"))

	// A silence survives a restart.
	code, body = call(t, m, id, http.MethodPost, "/api/v2/silences", fmt.Sprintf(
		`{"matchers":[{"name":"alertname","value":"Down","isRegex":false}],"startsAt":%q,"endsAt":%q,"createdBy":"test","comment":"maintenance"}`,
		time.Now().Format(time.RFC3339), time.Now().Add(time.Hour).Format(time.RFC3339)))
	require.Equal(t, http.StatusOK, code, body)
	m.Stop()
	reg = prometheus.NewRegistry()
	m, err = alerting.New(alerting.Config{DataDir: dir, Limits: ov}, defs, nil, reg)
	require.NoError(t, err)
	defs.set(id, definition(srv.URL, "alertname"))
	require.NoError(t, m.SyncAll(ctx))
	code, body = call(t, m, id, http.MethodGet, "/api/v2/silences", "")
	require.Equal(t, http.StatusOK, code, body)
	require.Contains(t, body, "maintenance")

	// Without a definition the Alertmanager stops and alerts are dropped.
	defs.set(id, nil)
	require.NoError(t, m.SyncAll(ctx))
	code, _ = call(t, m, id, http.MethodGet, "/api/v2/status", "")
	require.Equal(t, http.StatusNotFound, code)
	m.SendAlerts(id, alert("Down", "a", time.Time{}))
	require.Equal(t, 1.0, dropped(t, reg, id, "no_alertmanager"))
	require.Empty(t, metricLabel(t, reg, "alertmanager_silences", "workspace"), "a stopped Alertmanager's metrics are unregistered")
	m.Stop()
}

// metricLabel returns the value of a label of the first series of a metric
// family, or "" if there is none.
func metricLabel(t *testing.T, reg *prometheus.Registry, name, label string) string {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != name || len(mf.GetMetric()) == 0 {
			continue
		}
		for _, p := range mf.GetMetric()[0].GetLabel() {
			if p.GetName() == label {
				return p.GetValue()
			}
		}
	}
	return ""
}

// dropped returns orrery_alerting_alerts_dropped_total of a workspace and reason.
func dropped(t *testing.T, reg *prometheus.Registry, id workspace.ID, reason string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != "orrery_alerting_alerts_dropped_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			l := map[string]string{}
			for _, p := range m.GetLabel() {
				l[p.GetName()] = p.GetValue()
			}
			if l["workspace"] == id.String() && l["reason"] == reason {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

// call serves one request of a workspace's Alertmanager API.
func call(t *testing.T, m *alerting.Manager, id workspace.ID, method, path, body string) (int, string) {
	t.Helper()
	req := httptest.NewRequest(method, "/workspaces/"+id.String()+"/alertmanager"+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req = req.WithContext(workspace.NewContext(req.Context(), id))
	rec := httptest.NewRecorder()
	m.ServeHTTP(rec, req)
	b, err := io.ReadAll(rec.Result().Body)
	require.NoError(t, err)
	return rec.Code, string(b)
}
