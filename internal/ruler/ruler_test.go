package ruler_test

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/notifier"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/rules"
	"github.com/prometheus/prometheus/storage"
	"github.com/stretchr/testify/require"

	"github.com/orrery-dev/orrery/internal/catalog"
	"github.com/orrery-dev/orrery/internal/query"
	"github.com/orrery-dev/orrery/internal/ruler"
	orstorage "github.com/orrery-dev/orrery/internal/storage"
	"github.com/orrery-dev/orrery/internal/workspace"
)

// envoyLe are the histogram buckets of Envoy's upstream request time (ms).
var envoyLe = []string{"0.5", "1", "5", "10", "25", "50", "100", "250", "500", "1000", "2500", "5000", "10000",
	"30000", "60000", "300000", "600000", "1800000", "3600000", "+Inf"}

const envoyRules = `groups:
- name: envoy
  interval: 1s
  rules:
  - record: envoy_cluster:upstream_rq:rate1m
    expr: sum by (envoy_cluster_name) (rate(envoy_cluster_upstream_rq_time_count[1m]))
  - alert: EnvoyUpstreamLatencyHigh
    expr: histogram_quantile(0.99, sum by (le, envoy_cluster_name) (rate(envoy_cluster_upstream_rq_time_bucket[1m]))) > 5
    for: 2s
    labels:
      severity: warning
    annotations:
      summary: 'p99 upstream latency of {{ $labels.envoy_cluster_name }} is {{ $value | humanize }}ms'
`

// collector is an AlertSender that keeps what it is sent.
type collector struct {
	mu     sync.Mutex
	alerts map[workspace.ID][]*notifier.Alert
}

func (c *collector) SendAlerts(id workspace.ID, alerts ...*notifier.Alert) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.alerts == nil {
		c.alerts = map[workspace.ID][]*notifier.Alert{}
	}
	c.alerts[id] = append(c.alerts[id], alerts...)
}

func (c *collector) sent(id workspace.ID) []*notifier.Alert {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*notifier.Alert(nil), c.alerts[id]...)
}

type env struct {
	t      *testing.T
	dir    string
	store  *orstorage.Store
	cat    *catalog.Catalog
	limits *workspace.Overrides
	sender *collector
	reg    *prometheus.Registry
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{t: t, dir: t.TempDir(), sender: &collector{}, reg: prometheus.NewRegistry()}
	var err error
	e.limits, err = workspace.NewOverrides(workspace.DefaultLimits())
	require.NoError(t, err)
	e.store, err = orstorage.New(orstorage.Config{Dir: e.dir}, e.limits, nil, prometheus.NewRegistry())
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, e.store.Close()) })
	e.cat, err = catalog.OpenSQLite(context.Background(), filepath.Join(e.dir, "catalog.db"))
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, e.cat.Close()) })
	return e
}

// start runs a Ruler until the test ends or the returned stop is called.
func (e *env) start(cfg ruler.Config) (*ruler.Ruler, func()) {
	e.t.Helper()
	if cfg.PollInterval == 0 {
		cfg.PollInterval = time.Hour // Tests call Sync.
	}
	cfg.ResendDelay = time.Second
	e.reg = prometheus.NewRegistry() // A new process.
	r, err := ruler.New(cfg, e.store, ruler.CatalogNamespaces{Catalog: e.cat}, e.sender, e.limits, nil, e.reg)
	require.NoError(e.t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			require.NoError(e.t, <-done)
		})
	}
	e.t.Cleanup(stop)
	return r, stop
}

func (e *env) workspace() workspace.ID {
	e.t.Helper()
	id := workspace.NewID()
	_, _, err := e.cat.CreateWorkspace(context.Background(), catalog.Workspace{ID: id, Status: catalog.StatusActive, CreatedAt: time.Now()})
	require.NoError(e.t, err)
	return id
}

func (e *env) putRules(id workspace.ID, name, data string, create bool) {
	e.t.Helper()
	require.NoError(e.t, e.cat.PutRuleNamespace(context.Background(),
		catalog.RuleNamespace{Workspace: id, Name: name, Data: []byte(data), ModifiedAt: time.Now()}, create))
}

// writeEnvoy writes two clusters' request time histograms every 5s from
// 90s ago to 90s ahead: "slow" with a p99 near 25ms, "fast" below 1ms.
func (e *env) writeEnvoy(id workspace.ID) {
	e.t.Helper()
	app, err := e.store.Appender(context.Background(), id)
	require.NoError(e.t, err)
	now := time.Now()
	for i := 0; i <= 36; i++ {
		ts := now.Add(-90 * time.Second).Add(time.Duration(i) * 5 * time.Second).UnixMilli()
		n := float64(i + 1)
		for _, cluster := range []string{"slow", "fast"} {
			for _, le := range envoyLe {
				v := 100 * n // "fast": everything under 1ms.
				if cluster == "slow" {
					switch f, _ := strconv.ParseFloat(le, 64); {
					case f < 5:
						v = 0
					case f < 10:
						v = 10 * n
					case f < 25:
						v = 50 * n
					}
				} else if le == "0.5" {
					v = 50 * n
				}
				ls := labels.FromStrings("__name__", "envoy_cluster_upstream_rq_time_bucket", "envoy_cluster_name", cluster, "le", le)
				_, err := app.Append(0, ls, 0, ts, v, nil, nil, storage.AOptions{})
				require.NoError(e.t, err)
			}
			ls := labels.FromStrings("__name__", "envoy_cluster_upstream_rq_time_count", "envoy_cluster_name", cluster)
			_, err := app.Append(0, ls, 0, ts, 100*n, nil, nil, storage.AOptions{})
			require.NoError(e.t, err)
		}
	}
	require.NoError(e.t, app.Commit())
}

// query runs an instant query on a workspace now.
func (e *env) query(id workspace.ID, q string) promql.Vector {
	e.t.Helper()
	engine := promql.NewEngine(query.EngineOpts(e.limits.Limits(id), 5*time.Minute))
	qry, err := engine.NewInstantQuery(context.Background(), e.store.Queryable(id), nil, q, time.Now())
	require.NoError(e.t, err)
	defer qry.Close()
	res := qry.Exec(context.Background())
	require.NoError(e.t, res.Err)
	v, err := res.Vector()
	require.NoError(e.t, err)
	return v
}

func alertState(r *ruler.Ruler, id workspace.ID, name string) (string, time.Time) {
	for _, rule := range r.Rules(id).AlertingRules() {
		if rule.Name() != name {
			continue
		}
		for _, a := range rule.ActiveAlerts() {
			return a.State.String(), a.ActiveAt
		}
	}
	return "", time.Time{}
}

func TestRecordingAndAlertingRules(t *testing.T) {
	e := newEnv(t)
	id, other := e.workspace(), e.workspace()
	e.writeEnvoy(id)
	e.writeEnvoy(other)
	e.putRules(id, "envoy", envoyRules, true)
	r, _ := e.start(ruler.Config{ExternalURL: "http://orrery.example:9090/"})
	require.NoError(t, r.Sync(context.Background(), id))

	// The recording rule writes into its workspace, and only there.
	require.Eventually(t, func() bool { return len(e.query(id, "envoy_cluster:upstream_rq:rate1m")) == 2 }, 10*time.Second, 100*time.Millisecond)
	require.Empty(t, e.query(other, "envoy_cluster:upstream_rq:rate1m"))
	v := e.query(id, `envoy_cluster:upstream_rq:rate1m{envoy_cluster_name="slow"}`)
	require.InDelta(t, 20, v[0].F, 0.01) // 100 requests every 5s.

	// The alert goes pending, then fires for the slow cluster only.
	var activeAt time.Time
	require.Eventually(t, func() bool {
		state, at := alertState(r, id, "EnvoyUpstreamLatencyHigh")
		activeAt = at
		return state == "firing"
	}, 15*time.Second, 100*time.Millisecond)
	groups := r.Rules(id).RuleGroups()
	require.Len(t, groups, 1)
	require.Equal(t, "envoy", groups[0].File())
	require.Equal(t, "envoy", groups[0].Name())
	for _, rule := range groups[0].Rules() {
		require.NoError(t, rule.LastError())
		require.Equal(t, rules.HealthGood, rule.Health())
	}
	alerts := r.Rules(id).AlertingRules()[0].ActiveAlerts()
	require.Len(t, alerts, 1)
	require.Equal(t, "slow", alerts[0].Labels.Get("envoy_cluster_name"))
	require.Empty(t, r.Rules(other).RuleGroups())

	// The sender got the firing alert, with Prometheus' generator URL.
	require.Eventually(t, func() bool { return len(e.sender.sent(id)) > 0 }, 5*time.Second, 100*time.Millisecond)
	sent := e.sender.sent(id)[0]
	require.Equal(t, "EnvoyUpstreamLatencyHigh", sent.Labels.Get("alertname"))
	require.Equal(t, "warning", sent.Labels.Get("severity"))
	require.Contains(t, sent.Annotations.Get("summary"), "p99 upstream latency of slow is 2")
	require.True(t, strings.HasPrefix(sent.GeneratorURL, "http://orrery.example:9090/workspaces/"+id.String()+"/graph?g0.expr="), sent.GeneratorURL)
	require.False(t, sent.StartsAt.Before(activeAt), "an alert starts when it fires, after it became active")
	require.Empty(t, e.sender.sent(other))

	// ALERTS and ALERTS_FOR_STATE are written to the workspace, as Prometheus does.
	require.Len(t, e.query(id, `ALERTS{alertstate="firing"}`), 1)
	require.Len(t, e.query(id, `ALERTS_FOR_STATE`), 1)

	// Rule metrics carry the workspace label.
	require.Eventually(t, func() bool {
		n, err := testutil.GatherAndCount(e.reg, "prometheus_rule_evaluations_total")
		return err == nil && n == 1 // One series per rule group.
	}, 5*time.Second, 100*time.Millisecond)
	mfs, err := e.reg.Gather()
	require.NoError(t, err)
	found := false
	for _, mf := range mfs {
		if mf.GetName() != "prometheus_rule_evaluations_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "workspace" && l.GetValue() == id.String() {
					found = true
				}
			}
		}
	}
	require.True(t, found, "prometheus_rule_evaluations_total{workspace=%q}", id)
}

func TestRuleChangesApplyWithoutRestart(t *testing.T) {
	e := newEnv(t)
	id := e.workspace()
	e.writeEnvoy(id)
	e.putRules(id, "envoy", envoyRules, true)
	r, _ := e.start(ruler.Config{PollInterval: 200 * time.Millisecond})

	// The periodic poll picks up a namespace nobody told the ruler about.
	require.Eventually(t, func() bool { return len(r.Rules(id).RuleGroups()) == 1 }, 5*time.Second, 50*time.Millisecond)

	// A replaced namespace: the new rule runs, the removed one is gone.
	e.putRules(id, "envoy", strings.ReplaceAll(envoyRules, "envoy_cluster:upstream_rq:rate1m", "envoy_cluster:rq:rate1m"), false)
	require.NoError(t, r.Sync(context.Background(), id))
	require.Eventually(t, func() bool { return len(e.query(id, "envoy_cluster:rq:rate1m")) == 2 }, 10*time.Second, 100*time.Millisecond)
	var names []string
	for _, rule := range r.Rules(id).RuleGroups()[0].Rules() {
		names = append(names, rule.Name())
	}
	require.Equal(t, []string{"envoy_cluster:rq:rate1m", "EnvoyUpstreamLatencyHigh"}, names)

	// A namespace that no longer loads (here: not valid under the
	// workspace's legacy name validation) is skipped; the others run.
	e.putRules(id, "utf8", "groups:\n- name: utf8\n  rules:\n  - record: \"rq.rate\"\n    expr: vector(1)\n", true)
	require.NoError(t, r.Sync(context.Background(), id))
	require.Len(t, r.Rules(id).RuleGroups(), 2)
	lim := e.limits.Limits(id)
	lim.NameValidation = "legacy"
	require.NoError(t, e.limits.Set(id, lim))
	require.NoError(t, r.Sync(context.Background(), id))
	require.Len(t, r.Rules(id).RuleGroups(), 1)

	// Deleting the namespaces removes the rules.
	require.NoError(t, e.cat.DeleteRuleNamespace(context.Background(), id, "envoy"))
	require.NoError(t, e.cat.DeleteRuleNamespace(context.Background(), id, "utf8"))
	require.NoError(t, r.Sync(context.Background(), id))
	require.Empty(t, r.Rules(id).RuleGroups())
	require.Empty(t, r.Rules(id).AlertingRules())

	// A deleted workspace's rules stop, and stay stopped.
	e.putRules(id, "envoy", envoyRules, true)
	require.NoError(t, r.Sync(context.Background(), id))
	require.Len(t, r.Rules(id).RuleGroups(), 1)
	deleting := catalog.StatusDeleting
	require.NoError(t, e.cat.UpdateWorkspace(context.Background(), id, nil, &deleting, nil))
	r.Forget(id)
	require.Empty(t, r.Rules(id).RuleGroups())
	n, err := testutil.GatherAndCount(e.reg, "prometheus_rule_evaluations_total", "prometheus_rule_group_rules")
	require.NoError(t, err)
	require.Zero(t, n, "a forgotten workspace's rule metrics are unregistered")
	require.NoError(t, e.store.Delete(context.Background(), id))
	require.NoError(t, r.Sync(context.Background(), id))
	time.Sleep(500 * time.Millisecond) // Two polls.
	require.Empty(t, r.Rules(id).RuleGroups())
	_, err = os.Stat(filepath.Join(e.dir, "workspaces", id.String()))
	require.ErrorIs(t, err, os.ErrNotExist, "nothing recreated the deleted workspace")
}

func TestRulerKeepsAlertForStateAcrossRestart(t *testing.T) {
	e := newEnv(t)
	id := e.workspace()
	e.writeEnvoy(id)
	e.putRules(id, "envoy", envoyRules, true)
	r, stop := e.start(ruler.Config{})
	require.NoError(t, r.Sync(context.Background(), id))
	var activeAt time.Time
	require.Eventually(t, func() bool {
		var state string
		state, activeAt = alertState(r, id, "EnvoyUpstreamLatencyHigh")
		return state == "firing"
	}, 15*time.Second, 100*time.Millisecond)
	stop()

	// A new ruler on the same storage restores the firing alert's ActiveAt
	// (to the second, as ALERTS_FOR_STATE stores it) from ALERTS_FOR_STATE.
	time.Sleep(1500 * time.Millisecond)
	r, _ = e.start(ruler.Config{})
	require.NoError(t, r.Sync(context.Background(), id))
	require.Eventually(t, func() bool {
		state, at := alertState(r, id, "EnvoyUpstreamLatencyHigh")
		return state == "firing" && at.Unix() == activeAt.Unix()
	}, 15*time.Second, 100*time.Millisecond)
}

// TestPublicRuleFilesLoad loads rule files written as the node_exporter
// mixin and kube-prometheus ship them, and evaluates them without errors.
func TestPublicRuleFilesLoad(t *testing.T) {
	e := newEnv(t)
	id := e.workspace()
	files, err := filepath.Glob("testdata/*.yaml")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	total := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		e.putRules(id, strings.TrimSuffix(filepath.Base(f), ".yaml"), string(b), true)
		total += strings.Count(string(b), "\n- name: ")
	}
	r, _ := e.start(ruler.Config{EvaluationInterval: time.Second})
	require.NoError(t, r.Sync(context.Background(), id))
	groups := r.Rules(id).RuleGroups()
	require.Len(t, groups, total, "every group of %v", files)
	for _, g := range groups {
		require.NotEmpty(t, g.Rules(), "group %s", g.Name())
	}
	require.NotEmpty(t, r.Rules(id).AlertingRules())
	// Every rule of the groups on the default interval evaluates (on an
	// empty workspace) without error.
	require.Eventually(t, func() bool {
		for _, g := range r.Rules(id).RuleGroups() {
			for _, rule := range g.Rules() {
				if rule.Health() != rules.HealthGood && g.Interval() == time.Second {
					return false
				}
			}
		}
		return true
	}, 10*time.Second, 100*time.Millisecond)
}
