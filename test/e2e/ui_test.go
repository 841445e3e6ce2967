package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/amp"
	"github.com/aws/aws-sdk-go-v2/service/amp/types"
	"github.com/chromedp/chromedp"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"

	"github.com/orrery-dev/orrery/internal/admin"
	"github.com/orrery-dev/orrery/internal/apptest"
	"github.com/orrery-dev/orrery/internal/dashboard"
)

const uiAdminPassword = "admin-password-for-tests"

// envoyHistory writes 40 minutes of Envoy statistics, every 15 seconds, for
// three services in two namespaces.
func envoyHistory(t *testing.T, o *apptest.Orrery, ws string, now time.Time) {
	t.Helper()
	type svc struct{ ns, name string }
	services := []svc{{"prod", "cart"}, {"prod", "web"}, {"staging", "cart"}}
	les := []string{"1", "5", "10", "50", "100", "+Inf"}
	var series []prompb.TimeSeries
	add := func(name string, f func(i int) float64, kv ...string) {
		ls := []prompb.Label{{Name: "__name__", Value: name}}
		for i := 0; i+1 < len(kv); i += 2 {
			ls = append(ls, prompb.Label{Name: kv[i], Value: kv[i+1]})
		}
		sort.Slice(ls, func(a, b int) bool { return ls[a].Name < ls[b].Name })
		s := prompb.TimeSeries{Labels: ls}
		for i := 0; i <= 160; i++ {
			at := now.Add(-40 * time.Minute).Add(time.Duration(i) * 15 * time.Second)
			s.Samples = append(s.Samples, prompb.Sample{Timestamp: at.UnixMilli(), Value: f(i)})
		}
		series = append(series, s)
	}
	for k, s := range services {
		rps := float64(10 * (k + 1))
		base := []string{"namespace", s.ns, "service", s.name}
		with := func(kv ...string) []string { return append(append([]string{}, base...), kv...) }
		add("envoy_http_downstream_rq_total", func(i int) float64 { return rps * 15 * float64(i) }, base...)
		add("envoy_http_downstream_cx_total", func(i int) float64 { return rps * 1.5 * float64(i) }, base...)
		add("envoy_http_downstream_cx_active", func(i int) float64 { return float64(20*(k+1) + i%5) }, base...)
		add("envoy_cluster_upstream_cx_active", func(i int) float64 { return float64(5*(k+1) + i%3) }, with("envoy_cluster_name", s.name)...)
		add("envoy_cluster_upstream_cx_total", func(i int) float64 { return rps * float64(i) }, with("envoy_cluster_name", s.name)...)
		add("envoy_cluster_upstream_rq_total", func(i int) float64 { return rps * 15 * float64(i) }, with("envoy_cluster_name", s.name)...)
		add("envoy_cluster_membership_total", func(int) float64 { return 4 }, with("envoy_cluster_name", s.name)...)
		add("envoy_cluster_membership_healthy", func(i int) float64 { return float64(3 + (i/40+k)%2) }, with("envoy_cluster_name", s.name)...)
		for code, share := range map[string]float64{"2": 0.9, "4": 0.07, "5": 0.03} {
			add("envoy_cluster_upstream_rq_xx", func(i int) float64 { return rps * 15 * share * float64(i) }, with("envoy_cluster_name", s.name, "envoy_response_code_class", code)...)
		}
		for j, le := range les {
			frac := []float64{0.2, 0.6, 0.8, 0.95, 0.99, 1}[j]
			for _, m := range []string{"envoy_http_downstream_rq_time_bucket", "envoy_cluster_upstream_rq_time_bucket"} {
				add(m, func(i int) float64 { return math.Round(rps * 15 * frac * float64(i)) }, with("envoy_cluster_name", s.name, "le", le)...)
			}
		}
	}
	code, body := apptest.Write(t, o.RemoteWriteURL(ws), &prompb.WriteRequest{Timeseries: series})
	require.Equal(t, http.StatusNoContent, code, body)
}

// nodeHistory writes 40 minutes of node_exporter series, every 15
// seconds, for one host: two filesystems, and a disk read at 562 kB/s,
// written at 1.5 MB/s and busy a quarter of the time.
func nodeHistory(t *testing.T, o *apptest.Orrery, ws string, now time.Time) {
	t.Helper()
	var series []prompb.TimeSeries
	add := func(name string, f func(i int) float64, kv ...string) {
		ls := []prompb.Label{{Name: "__name__", Value: name}, {Name: "job", Value: "node"}, {Name: "cluster", Value: "lab"}, {Name: "instance", Value: "host1:9100"}}
		for i := 0; i+1 < len(kv); i += 2 {
			ls = append(ls, prompb.Label{Name: kv[i], Value: kv[i+1]})
		}
		sort.Slice(ls, func(a, b int) bool { return ls[a].Name < ls[b].Name })
		s := prompb.TimeSeries{Labels: ls}
		for i := 0; i <= 160; i++ {
			at := now.Add(-40 * time.Minute).Add(time.Duration(i) * 15 * time.Second)
			s.Samples = append(s.Samples, prompb.Sample{Timestamp: at.UnixMilli(), Value: f(i)})
		}
		series = append(series, s)
	}
	add("node_uname_info", func(int) float64 { return 1 }, "sysname", "Linux", "nodename", "host1")
	add("node_filesystem_size_bytes", func(int) float64 { return 100e9 }, "mountpoint", "/", "fstype", "ext4", "device", "/dev/sda1")
	add("node_filesystem_avail_bytes", func(int) float64 { return 40e9 }, "mountpoint", "/", "fstype", "ext4", "device", "/dev/sda1")
	add("node_filesystem_size_bytes", func(int) float64 { return 1e9 }, "mountpoint", "/boot", "fstype", "vfat", "device", "/dev/sda2")
	add("node_filesystem_avail_bytes", func(int) float64 { return 0.05e9 }, "mountpoint", "/boot", "fstype", "vfat", "device", "/dev/sda2")
	add("node_disk_read_bytes_total", func(i int) float64 { return 562000 * 15 * float64(i) }, "device", "sda")
	add("node_disk_written_bytes_total", func(i int) float64 { return 1.5e6 * 15 * float64(i) }, "device", "sda")
	add("node_disk_io_time_seconds_total", func(i int) float64 { return 0.25 * 15 * float64(i) }, "device", "sda")
	code, body := apptest.Write(t, o.RemoteWriteURL(ws), &prompb.WriteRequest{Timeseries: series})
	require.Equal(t, http.StatusNoContent, code, body)
}

// uiPanel is what the page records of a rendered panel (window.__orrery).
type uiPanel struct {
	Title   string `json:"title"`
	Type    string `json:"type"`
	Error   string `json:"error"`
	Queries []struct {
		RefID   string  `json:"refId"`
		Expr    string  `json:"expr"`
		Instant bool    `json:"instant"`
		Time    float64 `json:"time"`
		Start   float64 `json:"start"`
		End     float64 `json:"end"`
		Step    float64 `json:"step"`
	} `json:"queries"`
	Series []struct {
		Query  int               `json:"query"`
		Name   string            `json:"name"`
		Labels map[string]string `json:"labels"`
		Values [][2]*float64     `json:"values"`
	} `json:"series"`
}

func fmtFloat(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }

// checkPanelsMatchAPI runs every panel's interpolated queries against the
// workspace's query API and requires the panel to show the same series and
// values. It returns the panels by title.
func checkPanelsMatchAPI(t *testing.T, o *apptest.Orrery, ws string, panels map[string]uiPanel) map[string]uiPanel {
	t.Helper()
	byTitle := map[string]uiPanel{}
	for _, p := range panels {
		byTitle[p.Title] = p
		require.Empty(t, p.Error, "panel %q", p.Title)
		want := map[string][]float64{}
		for qi, q := range p.Queries {
			require.NotContains(t, q.Expr, "$", "panel %q: uninterpolated variable", p.Title)
			if q.Instant {
				v, err := apptest.QueryVector(t, o.URL(ws, "/api/v1"), q.Expr, time.UnixMilli(int64(q.Time*1000)))
				require.NoError(t, err)
				for _, s := range v {
					f, _ := strconv.ParseFloat(s.Value[1].(string), 64)
					k := strconv.Itoa(qi) + labelKey(s.Metric)
					want[k] = append(want[k], f)
				}
				continue
			}
			code, r := apptest.API(t, o.URL(ws, "/api/v1"), "/query_range", url.Values{"query": {q.Expr},
				"start": {fmtFloat(q.Start)}, "end": {fmtFloat(q.End)}, "step": {fmtFloat(q.Step)}})
			require.Equal(t, http.StatusOK, code, "panel %q: %s: %s", p.Title, q.Expr, r.Error)
			var env struct {
				Result apptest.Matrix `json:"result"`
			}
			require.NoError(t, json.Unmarshal(r.Data, &env))
			for _, s := range env.Result {
				for _, v := range s.Values {
					f, _ := strconv.ParseFloat(v[1].(string), 64)
					k := strconv.Itoa(qi) + labelKey(s.Metric)
					want[k] = append(want[k], f)
				}
			}
		}
		got := map[string][]float64{}
		for _, s := range p.Series {
			for _, v := range s.Values {
				f := math.NaN()
				if v[1] != nil {
					f = *v[1]
				}
				k := strconv.Itoa(s.Query) + labelKey(s.Labels)
				got[k] = append(got[k], f)
			}
		}
		require.Equal(t, len(want), len(got), "panel %q: series", p.Title)
		for k, w := range want {
			g := got[k]
			require.Len(t, g, len(w), "panel %q series %s", p.Title, k)
			for i := range w {
				if math.IsNaN(w[i]) {
					require.True(t, math.IsNaN(g[i]), "panel %q series %s point %d", p.Title, k, i)
					continue
				}
				require.InDelta(t, w[i], g[i], 1e-9*math.Max(1, math.Abs(w[i])), "panel %q series %s point %d", p.Title, k, i)
			}
		}
	}
	return byTitle
}

func labelKey(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s=%q,", k, m[k])
	}
	return b.String()
}

func artifactsDir(t *testing.T) string {
	dir := os.Getenv("ORRERY_ARTIFACTS")
	if dir == "" {
		dir = t.TempDir()
	}
	dir = filepath.Join(dir, "ui")
	require.NoError(t, os.MkdirAll(dir, 0o755))
	t.Logf("screenshots in %s", dir)
	return dir
}

func browser(t *testing.T) context.Context {
	t.Helper()
	path := "/usr/bin/chromium"
	if _, err := os.Stat(path); err != nil {
		if p, err := exec.LookPath("chromium"); err == nil {
			path = p
		} else {
			t.Skip("chromium is not installed (make deps installs it)")
		}
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck, chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1600, 1100),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	ctx, cancelTimeout := context.WithTimeout(ctx, 4*time.Minute)
	t.Cleanup(func() { cancelTimeout(); cancelCtx(); cancelAlloc() })
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate("about:blank")))
	return ctx
}

func screenshot(t *testing.T, ctx context.Context, dir, name string) {
	t.Helper()
	require.NoError(t, chromedp.Do(ctx, chromedp.Sleep(300*time.Millisecond)))
	buf, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, name+".png"), buf, 0o644))
}

func uiLogin(t *testing.T, ctx context.Context, base, name, password string) {
	t.Helper()
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Navigate("about:blank"), // A same-document navigation would not load the page again.
		chromedp.Navigate(base+"/ui/#/login"),
		chromedp.WaitVisible(chromedp.CSS("#login-name")),
		chromedp.SendKeys(chromedp.CSS("#login-name"), name),
		chromedp.SendKeys(chromedp.CSS("#login-password"), password),
		chromedp.Click(chromedp.CSS("#login-submit")),
		chromedp.WaitVisible(chromedp.CSS("#who")),
	))
}

// waitPanels waits until every panel of the dashboard has rendered, and
// returns what they show.
func waitPanels(t *testing.T, ctx context.Context) map[string]uiPanel {
	t.Helper()
	var err error
	for try := 0; try < 3; try++ {
		_, err = chromedp.Run(ctx, chromedp.Poll[bool](`window.__orrery && window.__orrery.ready === true`, chromedp.WithPollingTimeout(60*time.Second)))
		// A poll that began while the page reloaded loses its execution
		// context: poll the new one.
		if err == nil || !strings.Contains(err.Error(), "Cannot find context with specified id") && !strings.Contains(err.Error(), "Execution context was destroyed") {
			break
		}
	}
	require.NoError(t, err)
	raw := eval[string](t, ctx, `JSON.stringify(window.__orrery.panels)`)
	var panels map[string]uiPanel
	require.NoError(t, json.Unmarshal([]byte(raw), &panels))
	return panels
}

// sessionClient logs in through the UI API and returns a client with the
// session cookie and the CSRF token.
func sessionClient(t *testing.T, base, name, password string) (*http.Client, string, []byte) {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	resp, err := c.Post(base+"/ui/api/login", "application/json", strings.NewReader(fmt.Sprintf(`{"name":%q,"password":%q}`, name, password)))
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(b))
	var s struct{ CSRF string }
	require.NoError(t, json.Unmarshal(b, &s))
	return c, s.CSRF, b
}

func sessionDo(t *testing.T, c *http.Client, csrf, method, u, body string) int {
	t.Helper()
	req, err := http.NewRequest(method, u, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-CSRF-Token", csrf)
	resp, err := c.Do(req)
	require.NoError(t, err)
	_ = resp.Body.Close()
	return resp.StatusCode
}

const uiRules = `groups:
  - name: envoy
    interval: 1s
    rules:
      - alert: EnvoyUpstreamErrors
        expr: sum by (service) (rate(envoy_cluster_upstream_rq_xx{envoy_response_code_class="5"}[5m])) > 0
        labels: {severity: page}
        annotations: {summary: 'upstream 5xx on {{ $labels.service }}'}
      - alert: EnvoyPending
        expr: vector(1)
        for: 1h
`

// uiContactPoints is TestUI's alert manager definition: a webhook that
// delivers (%[1]s) and an SNS receiver whose endpoint refuses connections
// (%[2]s).
const uiContactPoints = `alertmanager_config: |
  route:
    receiver: default
    group_wait: 1s
    group_interval: 1s
    routes:
      - matchers: [alertname="NeverFires"]
        receiver: broken-sns
  receivers:
    - name: default
      webhook_configs: [{url: %[1]q, send_resolved: false}]
    - name: broken-sns
      sns_configs:
        - api_url: %[2]s
          topic_arn: arn:aws:sns:us-east-1:123456789012:ui-test
          sigv4: {region: us-east-1, access_key: AKIAUITEST, secret_key: ui-test-secret}
`

const uiAlertmanager = `alertmanager_config: |
  route:
    receiver: default
  receivers:
    - name: default
`

// TestUI drives the web UI in headless Chromium against the real binary:
// login, importing the public Envoy Global dashboard, variables and time
// range, explore, alerting, usage, and what viewers and other workspaces'
// users may not do.
func TestUI(t *testing.T) {
	t.Setenv("ORRERY_UI_ADMIN_PASSWORD", uiAdminPassword)
	o := apptest.StartOrrery(t, t.TempDir())
	base := "http://" + o.Addr
	// The start log says where the UI is.
	require.Contains(t, o.Output(), "ui=http://"+o.Addr+"/ui/")
	ctx := context.Background()
	client := ampClient(o)
	created, err := client.CreateWorkspace(ctx, &amp.CreateWorkspaceInput{Alias: aws.String("mesh")})
	require.NoError(t, err)
	ws := aws.ToString(created.WorkspaceId)
	created, err = client.CreateWorkspace(ctx, &amp.CreateWorkspaceInput{Alias: aws.String("other")})
	require.NoError(t, err)
	other := aws.ToString(created.WorkspaceId)
	envoyHistory(t, o, ws, time.Now())
	// Browsers send Origin with every POST; the query API once panicked on it.
	req, err := http.NewRequest("POST", o.URL(ws, "/api/v1/query"), strings.NewReader("query=up"))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", "http://elsewhere.example")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	_ = resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Empty(t, resp.Header.Get("Access-Control-Allow-Origin"))
	// The contact points: a webhook receiving here, and SNS at a closed port.
	var hookMu sync.Mutex
	var hookBodies []string
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		hookMu.Lock()
		hookBodies = append(hookBodies, string(b))
		hookMu.Unlock()
	}))
	t.Cleanup(hook.Close)
	closed := "http://" + apptest.FreeAddr(t)
	_, err = client.CreateAlertManagerDefinition(ctx, &amp.CreateAlertManagerDefinitionInput{WorkspaceId: aws.String(ws),
		Data: []byte(fmt.Sprintf(uiContactPoints, hook.URL+"/hook", closed))})
	require.NoError(t, err)
	// The rules after the alert manager: an alert that fires with none is
	// dropped and sent again only after the ruler's resend delay (1m), by
	// when the alerting subtest has silenced it.
	_, err = client.CreateRuleGroupsNamespace(ctx, &amp.CreateRuleGroupsNamespaceInput{WorkspaceId: aws.String(ws), Name: aws.String("envoy"), Data: []byte(uiRules)})
	require.NoError(t, err)

	// Users through the CLI.
	out, err := orreryCLI(t, o, []string{"ORRERY_USER_PASSWORD=viewer-password"}, "users", "create", "--name", "vera", "--role", "viewer", "--workspaces", ws)
	require.NoError(t, err, out)
	out, err = orreryCLI(t, o, nil, "users", "create", "--name", "otto", "--role", "editor", "--workspaces", other)
	require.NoError(t, err, out)
	require.Contains(t, out, "password (shown once): ")
	ottoPassword := strings.TrimSpace(strings.SplitN(out, "password (shown once): ", 2)[1])
	out, err = orreryCLI(t, o, nil, "users", "create", "--name", "tmp", "--role", "boss")
	require.Error(t, err)
	require.Contains(t, out, `role "boss"`)
	out, err = orreryCLI(t, o, nil, "users", "list")
	require.NoError(t, err, out)
	require.Regexp(t, `vera\s+viewer\s+`+ws, out)
	require.Regexp(t, `admin\s+admin\s+\*`, out)

	// JavaScript and Go interpolate alike.
	dir := artifactsDir(t)
	bctx := browser(t)
	require.NoError(t, chromedp.Do(bctx, chromedp.Navigate(base+"/ui/"), chromedp.WaitVisible(chromedp.CSS("#login-name")),
		chromedp.SendKeys(chromedp.CSS("#login-name"), "admin"), chromedp.SendKeys(chromedp.CSS("#login-password"), "wrong-password"),
		chromedp.Click(chromedp.CSS("#login-submit"))))
	require.Eventually(t, func() bool { return strings.Contains(text(t, bctx, "#login-error"), "wrong user name or password") }, 10*time.Second, 100*time.Millisecond)
	screenshot(t, bctx, dir, "login")
	uiLogin(t, bctx, base, "admin", uiAdminPassword)
	// One API session for the subtests: logins are rate-limited.
	adminClient, adminCSRF, _ := sessionClient(t, base, "admin", uiAdminPassword)
	t.Run("interpolation agrees with Go", func(t *testing.T) {
		vars := map[string]dashboard.Value{
			"ns": {Values: []string{"prod"}, Multi: true}, "multi": {Values: []string{"a", "b.c"}, Multi: true},
			"single": {Values: []string{"x.y"}}, "all": {All: true, Multi: true}, "allv": {All: true, AllValue: "cart|web", Multi: true},
		}
		jsVars := map[string]map[string]any{}
		for k, v := range vars {
			jsVars[k] = map[string]any{"values": v.Values, "all": v.All, "allValue": v.AllValue, "multi": v.Multi}
		}
		for _, b := range []dashboard.Builtins{{Interval: 30 * time.Second, Range: time.Hour}, {Interval: 1500 * time.Millisecond, Range: 90 * time.Second, ScrapeInterval: 5 * time.Second}} {
			for _, expr := range []string{`up{namespace=~"$ns"}`, `up{x=~"${multi}"} / on() up{y=~"[[multi]]"}`, `a{x=~"${multi:pipe}",y="${single}"}`,
				`a{x=~"${single:regex}"}`, `a{x=~"$all",y=~"$allv"}`, `rate(a[$__rate_interval]) * $__interval_ms / $__range_s`,
				`increase(a[$__range]) or rate(a[$__interval])`, `a{x="$nope"}`, `a{x="${multi:csv}"}`, `${ns:json}`} {
				want := dashboard.Interpolate(expr, vars, b)
				js := fmt.Sprintf(`window.orreryInterpolate(%s, %s, {intervalMs: %d, rangeMs: %d, scrapeMs: %d})`,
					mustJSON(t, expr), mustJSON(t, jsVars), b.Interval.Milliseconds(), b.Range.Milliseconds(), b.ScrapeInterval.Milliseconds())
				got := eval[string](t, bctx, js)
				require.Equal(t, want, got, expr)
			}
		}
	})

	t.Run("units", func(t *testing.T) {
		for _, c := range []struct {
			v        float64
			unit     string
			decimals string
			want     string
		}{
			{1500, "ms", "null", "1.5 s"}, {12, "ms", "null", "12 ms"}, {90, "s", "null", "1.5 min"}, {0.256, "percentunit", "null", "25.6%"},
			{45, "percent", "null", "45%"}, {2048, "bytes", "null", "2 KiB"}, {1234, "short", "null", "1.23 K"}, {12.5, "reqps", "null", "12.5 req/s"},
			{3.14159, "short", "2", "3.14"}, {2500000, "decbytes", "1", "2.5 MB"}, {0.5, "percentunit", "0", "50%"},
		} {
			require.Equal(t, c.want, eval[string](t, bctx, fmt.Sprintf(`window.orreryFormat(%v, %q, %s)`, c.v, c.unit, c.decimals)), "%v %s", c.v, c.unit)
		}
	})

	t.Run("query resolution as Grafana computes it", func(t *testing.T) {
		// Expectations from Grafana's rangeutil.calculateInterval and the
		// Prometheus data source's adjustInterval, alignRange and
		// $__rate_interval (data source scrape interval 15s).
		from := int64(1_700_000_000_000)
		for _, c := range []struct {
			name         string
			rangeMs      int64
			panel, query string
			step         float64
			interval     string
			rate         string
		}{
			{"15 minutes, 800 px: the data source's 15s, not 1s", 15 * 60_000, `{width: 800}`, `{}`, 15, "15s", "1m"},
			{"24 hours, 1000 px: 86.4 s rounds to 1m", 86_400_000, `{width: 1000}`, `{}`, 60, "1m", "75s"},
			{"maxDataPoints wins over the width", 3_600_000, `{width: 1000, maxDataPoints: 100}`, `{}`, 30, "30s", "1m"},
			{"the panel's min interval", 15 * 60_000, `{width: 800, interval: "1m"}`, `{}`, 60, "1m", "75s"},
			{"a min interval written >2m", 15 * 60_000, `{width: 800, interval: ">2m"}`, `{}`, 120, "2m", "135s"},
			{"the query's min step is the scrape interval of $__rate_interval", 15 * 60_000, `{width: 800}`, `{interval: "30s"}`, 30, "30s", "2m"},
			{"intervalFactor multiplies", 3_600_000, `{width: 1200}`, `{intervalFactor: 2}`, 30, "30s", "1m"},
			{"Prometheus' 11,000 points", 30 * 86_400_000, `{width: 800, maxDataPoints: 100000}`, `{}`, 236, "236s", "251s"},
		} {
			js := fmt.Sprintf(`(() => { const r = window.orreryResolution(%s, %s, {from: %d, to: %d}, 0);
				return JSON.stringify({step: r.stepS, start: r.start, end: r.end,
					interval: window.orreryInterpolate("$__interval", {}, {intervalMs: r.intervalMs, rangeMs: %d, scrapeMs: r.scrapeMs}),
					rate: window.orreryInterpolate("$__rate_interval", {}, {intervalMs: r.intervalMs, rangeMs: %d, scrapeMs: r.scrapeMs})}); })()`,
				c.panel, c.query, from, from+c.rangeMs, c.rangeMs, c.rangeMs)
			var got struct {
				Step, Start, End float64
				Interval, Rate   string
			}
			require.NoError(t, json.Unmarshal([]byte(eval[string](t, bctx, js)), &got), c.name)
			require.Equal(t, c.step, got.Step, c.name)
			require.Equal(t, c.interval, got.Interval, c.name)
			require.Equal(t, c.rate, got.Rate, c.name)
			require.Equal(t, math.Floor(float64(from)/1000/c.step)*c.step, got.Start, c.name)
			require.Equal(t, math.Floor(float64(from+c.rangeMs)/1000/c.step)*c.step, got.End, c.name)
		}
	})

	t.Run("import the Envoy Global dashboard and compare panels with the API", func(t *testing.T) {
		envoy, err := os.ReadFile("../testdata/dashboards/envoy-global-11022.json")
		require.NoError(t, err)
		require.NoError(t, chromedp.Do(bctx,
			chromedp.Navigate(base+"/ui/#/dashboards?ws="+ws),
			chromedp.WaitVisible(chromedp.CSS("#import-json")),
			chromedp.SetValue(chromedp.CSS("#import-json"), string(envoy)),
			chromedp.Click(chromedp.CSS("#import-submit")),
			chromedp.WaitVisible(chromedp.CSS(".dashboard"))))
		loc := location(t, bctx)
		require.Contains(t, loc, "#/d/")
		// Without auto-refresh, so that every render is the test's doing.
		uid := strings.SplitN(strings.SplitN(loc, "#/d/", 2)[1], "?", 2)[0]
		require.NoError(t, chromedp.Do(bctx, chromedp.Navigate(base+"/ui/#/d/"+uid+"?ws="+ws+"&refresh=&from=now-30m&to=now"), chromedp.Reload()))
		panels := checkPanelsMatchAPI(t, o, ws, waitPanels(t, bctx))
		require.GreaterOrEqual(t, len(panels), 15)
		withData := 0
		for _, p := range panels {
			if len(p.Series) > 0 {
				withData++
			}
		}
		require.GreaterOrEqual(t, withData, 12, "most panels show data")
		// At 30 minutes no panel is wide enough (1800 px) for an interval
		// below the data source's 15s: every range query's step is 15s
		// times its target's intervalFactor, start and end multiples of it.
		factors := intervalFactors(t, envoy)
		for _, p := range panels {
			for _, q := range p.Queries {
				if q.Instant {
					continue
				}
				f := factors[p.Title+"/"+q.RefID]
				require.Equal(t, 15*f, q.Step, "panel %q query %s", p.Title, q.RefID)
				require.Zero(t, math.Mod(q.Start, q.Step), "panel %q query %s", p.Title, q.RefID)
				require.Zero(t, math.Mod(q.End, q.Step), "panel %q query %s", p.Title, q.RefID)
			}
		}
		rps := panels["Upstream RPS"]
		require.Len(t, rps.Series, 3)
		require.Contains(t, rps.Queries[0].Expr, `namespace=~".*"`)
		requireNoOverlap(t, bctx)
		screenshot(t, bctx, dir, "dashboard-envoy-global")

		// A variable: only the staging namespace.
		eval[bool](t, bctx, `(() => {
			window.__orrery.ready = false;
			const s = document.querySelector('select[data-var="Namespace"]');
			for (const o of s.options) o.selected = o.value === "staging";
			s.dispatchEvent(new Event("change"));
			return true; })()`)
		panels = checkPanelsMatchAPI(t, o, ws, waitPanels(t, bctx))
		rps = panels["Upstream RPS"]
		require.Contains(t, rps.Queries[0].Expr, `namespace=~"staging"`)
		require.Len(t, rps.Series, 1)
		require.Equal(t, "staging", rps.Series[0].Labels["namespace"])
		var legendText string
		legendText = text(t, bctx, `[data-title="Upstream RPS"] .legend`)
		require.Contains(t, legendText, "cart")

		// The time range: the last 15 minutes.
		eval[bool](t, bctx, `(() => {
			window.__orrery.ready = false;
			const s = document.getElementById("time-range");
			s.value = "15m";
			s.dispatchEvent(new Event("change"));
			return true; })()`)
		panels = checkPanelsMatchAPI(t, o, ws, waitPanels(t, bctx))
		q := panels["Upstream RPS"].Queries[0]
		require.InDelta(t, 15*60, q.End-q.Start, 2*q.Step+1)
		require.Contains(t, q.Expr, `namespace=~"staging"`, "the variable survives the time change")
		loc = location(t, bctx)
		require.Contains(t, loc, "var-Namespace=staging")
		require.Contains(t, loc, "from=now-15m")

		// Save keeps the time range and the variable's value as defaults;
		// the export is the stored JSON model.
		require.NoError(t, chromedp.Do(bctx, chromedp.Click(chromedp.CSS("#save-dashboard")), chromedp.WaitVisible(chromedp.CSS(".flash"))))
		c := adminClient
		resp, err := c.Get(base + "/ui/api/workspaces/" + ws + "/dashboards/" + uid + "?download=1")
		require.NoError(t, err)
		exported, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		require.Contains(t, resp.Header.Get("Content-Disposition"), "attachment")
		saved, err := dashboard.Parse(exported)
		require.NoError(t, err)
		require.Equal(t, "now-15m", saved.From)
		require.Equal(t, []string{"staging"}, saved.Variables[1].Current.Value)
		require.Equal(t, "Pomerium / Envoy", saved.Title)

		// Inspect shows the interpolated PromQL.
		var inspect string
		require.NoError(t, chromedp.Do(bctx,
			chromedp.Click(chromedp.CSS(`[data-title="Upstream RPS"] [data-inspect]`)),
			chromedp.WaitVisible(chromedp.CSS("#inspect")),
			chromedp.Sleep(0)))

		inspect = text(t, bctx, "#inspect pre.promql")
		require.Equal(t, q.Expr, inspect)
		screenshot(t, bctx, dir, "dashboard-inspect")
		require.NoError(t, chromedp.Do(bctx, chromedp.Click(chromedp.CSS(`#inspect button`))))

		// View a panel larger, then auto-refresh re-runs the queries.
		eval[bool](t, bctx, `window.__orrery.ready = false`)
		require.NoError(t, chromedp.Do(bctx, chromedp.Click(chromedp.CSS(`[data-title="Upstream RPS"] [data-view]`))))
		panels = checkPanelsMatchAPI(t, o, ws, waitPanels(t, bctx))
		require.Equal(t, 1, eval[int](t, bctx, `document.querySelectorAll(".panel.viewing").length`))
		screenshot(t, bctx, dir, "dashboard-panel-view")
		require.NoError(t, chromedp.Do(bctx, chromedp.Click(chromedp.CSS(`[data-title="Upstream RPS"] [data-view]`))))
		ranAt := eval[float64](t, bctx, `window.__orrery.panels[Object.keys(window.__orrery.panels).find(k => window.__orrery.panels[k].title === "Upstream RPS")].ranAt`)
		eval[bool](t, bctx, `(() => {
			const s = document.getElementById("refresh");
			s.value = "5s";
			s.dispatchEvent(new Event("change"));
			return true; })()`)
		require.Eventually(t, func() bool {
			return eval[float64](t, bctx, `window.__orrery.ready && window.__orrery.panels[Object.keys(window.__orrery.panels).find(k => window.__orrery.panels[k].title === "Upstream RPS")].ranAt || 0`) > ranAt+4000
		}, 20*time.Second, 250*time.Millisecond, "auto-refresh every 5s")
		require.Contains(t, location(t, bctx), "refresh=5s")
		require.NoError(t, chromedp.Do(bctx, chromedp.Navigate(base+"/ui/#/dashboards?ws="+ws)))
	})

	t.Run("our Envoy dashboard and the public ones render without errors", func(t *testing.T) {
		c, csrf := adminClient, adminCSRF
		for _, f := range []string{"envoy-proxy-global-envoy-gateway.json", "node-exporter-nodes.json"} {
			b, err := os.ReadFile("../testdata/dashboards/" + f)
			require.NoError(t, err)
			require.Equal(t, http.StatusOK, sessionDo(t, c, csrf, "POST", base+"/ui/api/workspaces/"+ws+"/dashboards", string(b)), f)
		}
		// The demo's way: the admin API with the embedded dashboard.
		req, err := http.NewRequest("POST", base+"/orrery/v1/workspaces/"+ws+"/dashboards", strings.NewReader(string(dashboard.EnvoyDashboard())))
		require.NoError(t, err)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		_ = resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.NoError(t, chromedp.Do(bctx, chromedp.Navigate(base+"/ui/#/d/orrery-envoy?ws="+ws+"&refresh=&from=now-30m&to=now"), chromedp.Reload()))
		panels := checkPanelsMatchAPI(t, o, ws, waitPanels(t, bctx))
		for _, title := range []string{"Downstream requests/s", "Downstream latency p50 / p99", "Upstream requests by code class", "Healthy upstream endpoints", "Upstream latency distribution"} {
			require.NotEmpty(t, panels[title].Series, title)
		}
		// The collapsed row opens on click.
		eval[bool](t, bctx, `window.__orrery.ready = false`)
		require.NoError(t, chromedp.Do(bctx, chromedp.Click(chromedp.CSS(`[data-row="Upstream health"]`))))
		panels = checkPanelsMatchAPI(t, o, ws, waitPanels(t, bctx))
		require.NotEmpty(t, panels["Healthy endpoints"].Series)
		requireNoOverlap(t, bctx)
		screenshot(t, bctx, dir, "dashboard-orrery-envoy")

		// The heatmap over two hours: the 40 minutes of data sit at the
		// right, each sample's cell ending at its time and as wide as the
		// step (Grafana's layout of Prometheus buckets); the buckets are
		// labelled by le in the panel's unit.
		require.NoError(t, chromedp.Do(bctx, chromedp.Navigate(base+"/ui/#/d/orrery-envoy?ws="+ws+"&refresh=&from=now-2h&to=now"), chromedp.Reload()))
		panels = checkPanelsMatchAPI(t, o, ws, waitPanels(t, bctx))
		var hm struct {
			Range  struct{ From, To float64 }
			Render struct {
				PlotLeft, PlotWidth float64
				Buckets             []string
				Cells               []struct{ T, X0, X1 float64 }
			}
			Queries []struct{ Start, End, Step float64 }
		}
		require.NoError(t, json.Unmarshal([]byte(eval[string](t, bctx,
			`JSON.stringify(Object.values(window.__orrery.panels).find(p => p.title === "Upstream latency distribution"))`)), &hm))
		require.Equal(t, []string{"1 ms", "5 ms", "10 ms", "50 ms", "100 ms", "+Inf"}, hm.Render.Buckets)
		require.NotEmpty(t, hm.Render.Cells)
		span := hm.Range.To - hm.Range.From
		x := func(ms float64) float64 { return hm.Render.PlotLeft + (ms-hm.Range.From)/span*hm.Render.PlotWidth }
		first := math.Inf(1)
		for _, c := range hm.Render.Cells {
			require.InDelta(t, math.Min(x(c.T), hm.Render.PlotLeft+hm.Render.PlotWidth), c.X1, 0.5)
			require.InDelta(t, math.Max(x(c.T-hm.Queries[0].Step*1000), hm.Render.PlotLeft), c.X0, 0.5)
			first = math.Min(first, c.T)
		}
		require.Greater(t, first, hm.Range.From+70*60_000, "no cell before the data's first sample")
		require.Greater(t, x(first), hm.Render.PlotLeft+hm.Render.PlotWidth/2, "the data sit in the right half")
		screenshot(t, bctx, dir, "dashboard-orrery-envoy-heatmap-2h")

		// Edit the JSON model in the page.
		require.NoError(t, chromedp.Do(bctx, chromedp.Click(chromedp.CSS("#edit-json")), chromedp.WaitVisible(chromedp.CSS("textarea.json-edit"))))
		eval[bool](t, bctx, `(() => {
			const ta = document.querySelector("textarea.json-edit");
			const j = JSON.parse(ta.value);
			j.title = "Envoy (edited)";
			ta.value = JSON.stringify(j);
			document.querySelector("dialog .btn.primary").click();
			return true; })()`)
		require.Eventually(t, func() bool {
			return eval[string](t, bctx, `(document.querySelector(".dash-title") || {}).textContent || ""`) == "Envoy (edited)"
		}, 10*time.Second, 100*time.Millisecond)
		require.Zero(t, eval[int](t, bctx, `document.querySelectorAll("dialog").length`))
		// The public dashboards render without errors (checkPanelsMatchAPI
		// requires no panel error).
		for _, f := range []string{"envoy-proxy-global-envoy-gateway.json", "node-exporter-nodes.json"} {
			b, err := os.ReadFile("../testdata/dashboards/" + f)
			require.NoError(t, err)
			d, err := dashboard.Parse(b)
			require.NoError(t, err)
			require.NoError(t, chromedp.Do(bctx, chromedp.Navigate(base+"/ui/#/d/"+d.UID+"?ws="+ws+"&refresh=&from=now-30m&to=now"), chromedp.Reload()))
			panels := checkPanelsMatchAPI(t, o, ws, waitPanels(t, bctx))
			require.NotEmpty(t, panels, f)
			requireNoOverlap(t, bctx)
			screenshot(t, bctx, dir, "dashboard-"+strings.TrimSuffix(f, ".json"))
		}
	})

	t.Run("variable types, repeated panels and zoom", func(t *testing.T) {
		c, csrf := adminClient, adminCSRF
		require.Equal(t, http.StatusOK, sessionDo(t, c, csrf, "POST", base+"/ui/api/workspaces/"+ws+"/dashboards", varsDashboard))
		require.NoError(t, chromedp.Do(bctx, chromedp.Navigate(base+"/ui/#/d/vars?ws="+ws+"&refresh="), chromedp.Reload()))
		panels := checkPanelsMatchAPI(t, o, ws, waitPanels(t, bctx))
		require.Contains(t, panels, "RPS cart")
		require.Contains(t, panels, "RPS web")
		require.Equal(t, `sum(rate(envoy_http_downstream_rq_total{service="cart",namespace="prod"}[5m]))`, panels["RPS cart"].Queries[0].Expr)
		// The middle of the last 30 minutes: its 5-minute window lies inside
		// the 40 minutes written at the start of the test (the last step's
		// does not once the test has run for more than a scrape interval,
		// and rate() then extrapolates less than a whole interval).
		rps := panels["RPS cart"].Series[0].Values
		require.InDelta(t, 10.0, *rps[len(rps)/2][1], 1e-9, "prod/cart serves 10 req/s")
		require.Contains(t, panels["quantile 0.99"].Queries[0].Expr, `histogram_quantile(0.99, sum by (le) (rate(envoy_http_downstream_rq_time_bucket{service="cart"}[1m])))`)
		require.NotEmpty(t, panels["quantile 0.99"].Series)
		require.Equal(t, "p0.99", panels["quantile 0.99"].Series[0].Name, "legendFormat interpolates variables")
		require.Len(t, panels["connections in prod"].Series, 2)
		require.Len(t, panels["connections in staging"].Series, 1)
		// query_result with a regex, and markdown that shows HTML as text.
		html := eval[string](t, bctx, `document.querySelector('[data-title="top"] .text').innerHTML`)
		require.Contains(t, html, "Busiest: <b>cart</b>")
		require.Contains(t, html, "&lt;script&gt;")
		// The ns variable depends on svc: its options are svc's namespaces.
		opts := eval[string](t, bctx, `[...document.querySelector('select[data-var="ns"]').options].map(o => o.value).join(",")`)
		require.Equal(t, "prod,staging", opts)
		// Only web: one repeated stat panel, and ns offers prod only.
		panels = changeVariable(t, bctx, o, ws, "svc", "web")
		require.NotContains(t, panels, "RPS cart")
		require.Contains(t, panels, "RPS web")
		opts = eval[string](t, bctx, `[...document.querySelector('select[data-var="ns"]').options].map(o => o.value).join(",")`)
		require.Equal(t, "prod", opts)
		requireNoOverlap(t, bctx)
		screenshot(t, bctx, dir, "dashboard-variables")

		// Dragging across a graph zooms to an absolute range.
		before := panels["quantile 0.99"].Queries[0]
		eval[bool](t, bctx, `(() => {
			window.__orrery.ready = false;
			const svg = document.querySelector('[data-title="quantile 0.99"] svg.ts');
			const r = svg.getBoundingClientRect();
			const ev = (type, f) => svg.dispatchEvent(new MouseEvent(type, {bubbles: true, clientX: r.left + r.width * f, clientY: r.top + r.height / 2}));
			ev("mousedown", 0.5); ev("mousemove", 0.7); ev("mouseup", 0.9);
			return true; })()`)
		panels = checkPanelsMatchAPI(t, o, ws, waitPanels(t, bctx))
		after := panels["quantile 0.99"].Queries[0]
		require.Greater(t, after.Start, before.Start)
		require.Less(t, after.End-after.Start, (before.End-before.Start)/2)
		require.Regexp(t, `from=\d+&to=\d+`, location(t, bctx))

		// An absolute range typed into the picker (the browser runs in UTC).
		to := time.Now().UTC().Add(-5 * time.Minute).Truncate(time.Second)
		from := to.Add(-10 * time.Minute)
		eval[bool](t, bctx, fmt.Sprintf(`(() => {
			window.__orrery.ready = false;
			const s = document.getElementById("time-range");
			s.value = "custom";
			s.dispatchEvent(new Event("change"));
			document.getElementById("time-from").value = %q;
			document.getElementById("time-to").value = %q;
			document.getElementById("time-apply").click();
			return true; })()`, from.Format("2006-01-02T15:04:05"), to.Format("2006-01-02T15:04:05")))
		panels = checkPanelsMatchAPI(t, o, ws, waitPanels(t, bctx))
		q := panels["quantile 0.99"].Queries[0]
		// Start and end are aligned down to the step, as Grafana does.
		require.InDelta(t, float64(to.Unix()), q.End, q.Step)
		require.LessOrEqual(t, q.End, float64(to.Unix()))
		require.InDelta(t, float64(from.Unix()), q.Start, q.Step)
		require.Zero(t, math.Mod(q.End, q.Step))
	})

	t.Run("node-exporter: Disk Space Usage and Disk I/O as Grafana shows them", func(t *testing.T) {
		// A workspace of its own, so that the other subtests' counts hold.
		created, err := client.CreateWorkspace(ctx, &amp.CreateWorkspaceInput{Alias: aws.String("nodes")})
		require.NoError(t, err)
		ws := aws.ToString(created.WorkspaceId)
		nodeHistory(t, o, ws, time.Now())
		b, err := os.ReadFile("../testdata/dashboards/node-exporter-nodes.json")
		require.NoError(t, err)
		c, csrf := adminClient, adminCSRF
		require.Equal(t, http.StatusOK, sessionDo(t, c, csrf, "POST", base+"/ui/api/workspaces/"+ws+"/dashboards", string(b)))
		require.NoError(t, chromedp.Do(bctx, chromedp.Navigate(base+"/ui/#/d/7d57716318ee0dddbac5a7f451fb7753?ws="+ws+
			"&refresh=&from=now-30m&to=now&var-cluster=lab&var-instance=host1:9100"), chromedp.Reload()))
		panels := checkPanelsMatchAPI(t, o, ws, waitPanels(t, bctx))
		// The API's answer for the table's two queries.
		disk := panels["Disk Space Usage"]
		require.Len(t, disk.Queries, 2)
		byMount := func(qi int) map[string]float64 {
			v, err := apptest.QueryVector(t, o.URL(ws, "/api/v1"), disk.Queries[qi].Expr, time.UnixMilli(int64(disk.Queries[qi].Time*1000)))
			require.NoError(t, err)
			out := map[string]float64{}
			for _, s := range v {
				f, _ := strconv.ParseFloat(s.Value[1].(string), 64)
				out[s.Metric["mountpoint"]] = f
			}
			return out
		}
		require.Equal(t, map[string]float64{"/": 100e9, "/boot": 1e9}, byMount(0))
		require.Equal(t, map[string]float64{"/": 40e9, "/boot": 0.05e9}, byMount(1))
		var table struct {
			Render struct {
				Columns []string
				Rows    [][]string
				Colors  [][]*string
			}
		}
		require.NoError(t, json.Unmarshal([]byte(eval[string](t, bctx,
			`JSON.stringify(Object.values(window.__orrery.panels).find(p => p.title === "Disk Space Usage"))`)), &table))
		// groupBy, merge, two calculateField, organize and sortBy: named
		// columns, one row per mount point, in decbytes; only the gauge
		// column is coloured by the thresholds (0.8 yellow, 0.9 red).
		require.Equal(t, []string{"Mounted on", "Size", "Available", "Used", "Used, %"}, table.Render.Columns)
		require.Equal(t, [][]string{{"/", "100 GB", "40 GB", "60 GB", "60%"}, {"/boot", "1 GB", "50 MB", "950 MB", "95%"}}, table.Render.Rows)
		for r, row := range table.Render.Colors {
			for c := 0; c < 4; c++ {
				require.Nil(t, row[c], "row %d column %d is not coloured", r, c)
			}
		}
		require.Equal(t, "#56a64b", *table.Render.Colors[0][4])
		require.Equal(t, "#e02f44", *table.Render.Colors[1][4])
		require.Equal(t, 2, eval[int](t, bctx, `document.querySelectorAll('[data-title="Disk Space Usage"] .cell-gauge').length`))

		// Disk I/O: bytes per second by the byRegexp override, on the left
		// axis; io time in percent on a right axis; the tooltip says
		// "562 kB/s" where Orrery said "562 K".
		var io struct {
			Render struct {
				Left, Right struct {
					Unit   string
					Labels []string
					Series []string
				}
			}
		}
		require.NoError(t, json.Unmarshal([]byte(eval[string](t, bctx,
			`JSON.stringify(Object.values(window.__orrery.panels).find(p => p.title === "Disk I/O"))`)), &io))
		require.Equal(t, "Bps", io.Render.Left.Unit)
		require.Equal(t, []string{"sda read", "sda written"}, io.Render.Left.Series)
		require.Equal(t, "percentunit", io.Render.Right.Unit)
		require.Equal(t, []string{"sda io time"}, io.Render.Right.Series)
		for _, l := range io.Render.Left.Labels {
			require.Regexp(t, `^[0-9.]+ (B|kB|MB)/s$`, l)
		}
		for _, l := range io.Render.Right.Labels {
			require.Regexp(t, `^[0-9.]+%$`, l)
		}
		for _, s := range panels["Disk I/O"].Series {
			last := s.Values[len(s.Values)-1][1]
			require.NotNil(t, last)
			require.InDelta(t, map[string]float64{"sda read": 562000, "sda written": 1.5e6, "sda io time": 0.25}[s.Name], *last, 1e-6, s.Name)
		}
		tip := eval[string](t, bctx, `(() => {
			const svg = document.querySelector('[data-title="Disk I/O"] svg.ts');
			const r = svg.getBoundingClientRect();
			svg.dispatchEvent(new MouseEvent("mousemove", {clientX: r.left + r.width * 0.6, clientY: r.top + r.height / 2, bubbles: true}));
			return document.querySelector('[data-title="Disk I/O"] .tooltip').textContent; })()`)
		require.Contains(t, tip, "sda read: 562 kB/s")
		require.Contains(t, tip, "sda written: 1.5 MB/s")
		require.Contains(t, tip, "sda io time: 25%")
		screenshot(t, bctx, dir, "dashboard-node-exporter-disk")
	})

	t.Run("transformations", func(t *testing.T) {
		c, csrf := adminClient, adminCSRF
		require.Equal(t, http.StatusOK, sessionDo(t, c, csrf, "POST", base+"/ui/api/workspaces/"+ws+"/dashboards", transformDashboard))
		require.NoError(t, chromedp.Do(bctx, chromedp.Navigate(base+"/ui/#/d/transforms?ws="+ws+"&refresh=&from=now-30m&to=now"), chromedp.Reload()))
		panels := checkPanelsMatchAPI(t, o, ws, waitPanels(t, bctx))
		type tbl struct {
			Render struct {
				Columns []string
				Rows    [][]string
			}
		}
		get := func(title string) tbl {
			var r tbl
			require.NoError(t, json.Unmarshal([]byte(eval[string](t, bctx, fmt.Sprintf(
				`JSON.stringify(Object.values(window.__orrery.panels).find(p => p.title === %q))`, title))), &r), title)
			return r
		}
		f3 := func(v float64) string { return strconv.FormatFloat(v, 'f', 3, 64) }
		// reduce: a row per series, a column per calc.
		red := get("reduce")
		require.Equal(t, []string{"Field", "Max", "Mean", "Last *"}, red.Render.Columns)
		var want [][]string
		for _, s := range panels["reduce"].Series {
			mx, sum, n, last := math.Inf(-1), 0.0, 0.0, 0.0
			for _, v := range s.Values {
				mx = math.Max(mx, *v[1])
				sum += *v[1]
				n++
				last = *v[1]
			}
			want = append(want, []string{s.Name, f3(mx), f3(sum / n), f3(last)})
		}
		require.ElementsMatch(t, want, red.Render.Rows)
		// labelsToFields, merge, filterByValue and organize: the prod
		// services' connections, from the instant query.
		lf := get("labels to fields, filtered")
		require.Equal(t, []string{"namespace", "service", "Connections"}, lf.Render.Columns)
		want = nil
		for _, s := range panels["labels to fields, filtered"].Series {
			if s.Labels["namespace"] == "prod" {
				want = append(want, []string{"prod", s.Labels["service"], f3(*s.Values[0][1])})
			}
		}
		require.Len(t, want, 2)
		require.ElementsMatch(t, want, lf.Render.Rows)
		// groupBy: connections summed by namespace, as the API's sum by.
		gb := get("group by namespace")
		require.Equal(t, []string{"namespace", "Value (sum)"}, gb.Render.Columns)
		v, err := apptest.QueryVector(t, o.URL(ws, "/api/v1"), `sum by (namespace) (envoy_http_downstream_cx_active)`, time.UnixMilli(int64(panels["group by namespace"].Queries[0].Time*1000)))
		require.NoError(t, err)
		want = nil
		for _, s := range v {
			f, _ := strconv.ParseFloat(s.Value[1].(string), 64)
			want = append(want, []string{s.Metric["namespace"], f3(f)})
		}
		require.ElementsMatch(t, want, gb.Render.Rows)
		// joinByField on Time and calculateField: requests per connection.
		jb := get("join by time")
		require.Equal(t, []string{"Time", "requests", "connections", "per connection"}, jb.Render.Columns)
		js := panels["join by time"].Series
		require.Len(t, js, 2)
		require.Len(t, jb.Render.Rows, len(js[0].Values))
		for i, row := range jb.Render.Rows {
			a, b := *js[0].Values[i][1], *js[1].Values[i][1]
			if js[0].Name != "requests" {
				a, b = b, a
			}
			require.Equal(t, []string{f3(a), f3(b), f3(a / b)}, row[1:], "row %d", i)
		}
		// seriesToRows: every point of the three series, newest first.
		sr := get("series to rows")
		require.Equal(t, []string{"Time", "Metric", "Value"}, sr.Render.Columns)
		points := 0
		for _, s := range panels["series to rows"].Series {
			points += len(s.Values)
		}
		require.Len(t, sr.Render.Rows, points)
		screenshot(t, bctx, dir, "dashboard-transformations")
	})

	t.Run("field overrides, seriesOverrides, legends and time ticks", func(t *testing.T) {
		c, csrf := adminClient, adminCSRF
		require.Equal(t, http.StatusOK, sessionDo(t, c, csrf, "POST", base+"/ui/api/workspaces/"+ws+"/dashboards", overridesDashboard))
		require.NoError(t, chromedp.Do(bctx, chromedp.Navigate(base+"/ui/#/d/overrides?ws="+ws+"&refresh=&from=now-30m&to=now"), chromedp.Reload()))
		panels := checkPanelsMatchAPI(t, o, ws, waitPanels(t, bctx))
		type axis struct {
			Unit   string
			Labels []string
			Series []string
		}
		type rendered struct {
			Render struct {
				Left   axis
				Right  *axis
				XTicks []string
				Legend []struct {
					Name   string
					Values map[string]string
					Raw    map[string]float64
				}
				Values     []struct{ Name, Text, Color string }
				LegendSort any
			}
		}
		get := func(title string) rendered {
			var r rendered
			require.NoError(t, json.Unmarshal([]byte(eval[string](t, bctx, fmt.Sprintf(
				`JSON.stringify(Object.values(window.__orrery.panels).find(p => p.title === %q))`, title))), &r), title)
			return r
		}
		// byRegexp: unit and decimals; byFrameRefID: display name, colour
		// and a right axis; a legend table with the max.
		ov := get("overrides")
		require.Equal(t, "reqps", ov.Render.Left.Unit)
		require.ElementsMatch(t, []string{"cart rps", "web rps"}, ov.Render.Left.Series)
		require.NotNil(t, ov.Render.Right)
		require.Equal(t, []string{"active connections"}, ov.Render.Right.Series)
		for _, l := range ov.Render.Left.Labels {
			require.Regexp(t, ` req/s$`, l)
		}
		for _, s := range panels["overrides"].Series {
			mx := math.Inf(-1)
			for _, v := range s.Values {
				mx = math.Max(mx, *v[1])
			}
			for _, lg := range ov.Render.Legend {
				if lg.Name == s.Name && strings.HasSuffix(s.Name, " rps") {
					require.Equal(t, strconv.FormatFloat(mx, 'f', 1, 64)+" req/s", lg.Values["Max"], s.Name)
				}
			}
		}
		require.Equal(t, 1, eval[int](t, bctx, `document.querySelectorAll('[data-title="overrides"] path.series.right[stroke="#e02f44"]').length`), "the right series in red")
		// Time ticks at round times: distinct labels, minutes a multiple
		// of the spacing.
		ticks := ov.Render.XTicks
		require.GreaterOrEqual(t, len(ticks), 3)
		mins := []int{}
		for _, l := range ticks {
			tm, err := time.Parse("15:04", l)
			require.NoError(t, err, l)
			mins = append(mins, tm.Hour()*60+tm.Minute())
		}
		for i := 1; i < len(mins); i++ {
			gap := (mins[i] - mins[i-1] + 1440) % 1440
			require.Positive(t, gap, "ticks %v repeat", ticks)
			require.Zero(t, mins[i]%gap, "ticks %v at round times", ticks)
		}
		// The graph panel's seriesOverrides: yaxis 2 takes the right axis
		// and its format.
		so := get("seriesOverrides")
		require.Equal(t, []string{"errors"}, so.Render.Right.Series)
		require.Equal(t, "percentunit", so.Render.Right.Unit)
		require.Equal(t, []string{"requests"}, so.Render.Left.Series)
		// Value mappings per field: web's are mapped, cart's are not.
		st := get("mappings per field")
		require.Len(t, st.Render.Values, 2)
		for _, v := range st.Render.Values {
			last := 0.0
			for _, s := range panels["mappings per field"].Series {
				if s.Name == v.Name {
					last = *s.Values[len(s.Values)-1][1]
				}
			}
			if v.Name == "web" {
				require.Equal(t, map[float64]string{3: "degraded", 4: "healthy"}[last], v.Text)
				require.Equal(t, map[float64]string{3: "#ff9830", 4: "#56a64b"}[last], v.Color)
			} else {
				require.Equal(t, strconv.FormatFloat(last, 'f', -1, 64), v.Text)
			}
		}
		// The Envoy Global dashboard's legends: tables of Mean, Last * and
		// Max, sorted by Last * descending; a click on Max sorts by it.
		require.NoError(t, chromedp.Do(bctx, chromedp.Navigate(base+"/ui/#/d/heHhNSFf6Na8vIZWRs8H?ws="+ws+"&refresh=&from=now-30m&to=now"), chromedp.Reload()))
		panels = checkPanelsMatchAPI(t, o, ws, waitPanels(t, bctx))
		last := map[string]float64{}
		for _, s := range panels["Upstream RPS"].Series {
			for _, v := range s.Values {
				if v[1] != nil {
					last[s.Name] = *v[1]
				}
			}
		}
		rps := get("Upstream RPS")
		require.GreaterOrEqual(t, len(rps.Render.Legend), 2)
		require.Equal(t, []string{"Name", "Mean", "Last *", "Max"}, eval[[]string](t, bctx,
			`[...document.querySelectorAll('[data-title="Upstream RPS"] .legend-table th')].map(th => th.textContent.replace(/ [▲▼]$/, ""))`))
		for i, lg := range rps.Render.Legend {
			require.InDelta(t, last[lg.Name], lg.Raw["Last *"], 1e-9, lg.Name)
			if i > 0 {
				// Values equal but for rounding may come in either order.
				prev := rps.Render.Legend[i-1].Raw["Last *"]
				require.GreaterOrEqual(t, prev+1e-9*math.Max(1, math.Abs(prev)), lg.Raw["Last *"], "sorted by Last * descending: %+v", rps.Render.LegendSort)
			}
		}
		require.NoError(t, chromedp.Do(bctx, chromedp.Click(chromedp.CSS(`[data-title="Upstream RPS"] .legend-table th[data-sort="Name"]`))))
		names := eval[[]string](t, bctx, `[...document.querySelectorAll('[data-title="Upstream RPS"] .legend-table td.legend-name')].map(td => td.textContent)`)
		require.True(t, sort.SliceIsSorted(names, func(a, b int) bool { return names[a] > names[b] }), "a first click sorts descending: %v", names)
		require.NoError(t, chromedp.Do(bctx, chromedp.Click(chromedp.CSS(`[data-title="Upstream RPS"] .legend-table th[data-sort="Name"]`))))
		names = eval[[]string](t, bctx, `[...document.querySelectorAll('[data-title="Upstream RPS"] .legend-table td.legend-name')].map(td => td.textContent)`)
		require.True(t, sort.StringsAreSorted(names), "a second click sorts ascending: %v", names)
		screenshot(t, bctx, dir, "dashboard-overrides-legends")
	})

	t.Run("panel editing: query, visualization and unit", func(t *testing.T) {
		require.NoError(t, chromedp.Do(bctx, chromedp.Navigate(base+"/ui/#/d/overrides?ws="+ws+"&refresh=&from=now-30m&to=now"), chromedp.Reload()))
		waitPanels(t, bctx)
		newExpr := `sum(envoy_cluster_membership_healthy{service="web"}) * 10`
		require.NoError(t, chromedp.Do(bctx, chromedp.Click(chromedp.CSS(`[data-title="mappings per field"] [data-edit-panel]`)), chromedp.WaitVisible(chromedp.CSS("#panel-editor"))))
		eval[bool](t, bctx, fmt.Sprintf(`(() => {
			window.__orrery.ready = false;
			document.getElementById("panel-edit-type").value = "bargauge";
			document.getElementById("panel-edit-unit").value = "percent";
			document.querySelector('#panel-editor .panel-edit-expr[data-index="0"]').value = %q;
			document.getElementById("panel-edit-save").click();
			return true; })()`, newExpr))
		panels := checkPanelsMatchAPI(t, o, ws, waitPanels(t, bctx))
		ed := panels["mappings per field"]
		require.Equal(t, "bargauge", ed.Type)
		require.Equal(t, newExpr, ed.Queries[0].Expr)
		require.Equal(t, 1, eval[int](t, bctx, `document.querySelectorAll('[data-title="mappings per field"] .bars').length`))
		require.Regexp(t, `^[0-9.]+%$`, eval[string](t, bctx, `document.querySelector('[data-title="mappings per field"] .bar-row:last-child .bar-value').textContent`))
		// Saved: the stored model has the change.
		require.Eventually(t, func() bool {
			req, _ := http.NewRequest("GET", base+"/ui/api/workspaces/"+ws+"/dashboards/overrides", nil)
			resp, err := adminClient.Do(req)
			if err != nil {
				return false
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			return strings.Contains(string(b), `"type":"bargauge"`) && strings.Contains(string(b), `"unit":"percent"`) && strings.Contains(string(b), `* 10`)
		}, 10*time.Second, 100*time.Millisecond)
		screenshot(t, bctx, dir, "dashboard-panel-edited")
	})

	t.Run("panel types drawn as themselves, others named", func(t *testing.T) {
		c, csrf := adminClient, adminCSRF
		require.Equal(t, http.StatusOK, sessionDo(t, c, csrf, "POST", base+"/ui/api/workspaces/"+ws+"/dashboards", typesDashboard))
		require.NoError(t, chromedp.Do(bctx, chromedp.Navigate(base+"/ui/#/d/types?ws="+ws+"&refresh=&from=now-30m&to=now"), chromedp.Reload()))
		panels := checkPanelsMatchAPI(t, o, ws, waitPanels(t, bctx))
		type rendered struct {
			Unsupported string
			Render      struct {
				Slices []struct {
					Name    string
					Value   float64
					Text    string
					Percent float64
				}
				Rows []struct {
					Name     string
					Segments []struct{ Text, Color string }
				}
				Bars []struct{ Name, Text string }
				Text string
			}
		}
		get := func(title string) rendered {
			var r rendered
			require.NoError(t, json.Unmarshal([]byte(eval[string](t, bctx, fmt.Sprintf(
				`JSON.stringify(Object.values(window.__orrery.panels).find(p => p.title === %q))`, title))), &r), title)
			return r
		}
		// The pie: one slice per service, its last value, in the unit;
		// the percents add up to 100.
		pie := get("Connections by service")
		require.Len(t, pie.Render.Slices, 3)
		total := 0.0
		for _, sl := range pie.Render.Slices {
			s := panels["Connections by service"].Series
			found := false
			for _, ps := range s {
				if ps.Name == sl.Name {
					last := ps.Values[len(ps.Values)-1][1]
					require.NotNil(t, last)
					require.Equal(t, *last, sl.Value, sl.Name)
					require.Equal(t, fmt.Sprintf("%v", *last), sl.Text)
					found = true
				}
			}
			require.True(t, found, sl.Name)
			total += sl.Percent
		}
		require.InDelta(t, 100, total, 1e-6)
		require.Zero(t, eval[int](t, bctx, `document.querySelectorAll('[data-title="Connections by service"] svg.ts').length`), "not a time series")
		// The state timeline: healthy endpoints mapped to text and colour.
		st := get("Endpoint health")
		require.Len(t, st.Render.Rows, 3)
		for _, r := range st.Render.Rows {
			require.NotEmpty(t, r.Segments, r.Name)
			for _, g := range r.Segments {
				require.Contains(t, []string{"degraded", "all healthy"}, g.Text)
			}
		}
		require.Zero(t, eval[int](t, bctx, `document.querySelectorAll('[data-title="Endpoint health"] svg.ts').length`), "not a time series")
		// The bar gauge, with its unit.
		bg := get("Active connections")
		require.Len(t, bg.Render.Bars, 3)
		for _, b := range bg.Render.Bars {
			require.Regexp(t, `^\d+ conn$`, b.Text)
		}
		require.Contains(t, get("Notes").Render.Text, "Read me")
		// Panel types Orrery does not draw say so, naming the type.
		require.Equal(t, "nodeGraph", get("A node graph").Unsupported)
		require.Contains(t, text(t, bctx, `[data-title="A node graph"] .panel-unsupported`), `Panel type "nodeGraph" is not supported`)
		require.Equal(t, "grafana-worldmap-panel", get("A world map").Unsupported)
		screenshot(t, bctx, dir, "dashboard-panel-types")
	})

	t.Run("variable dropdowns with search and All, URL values, import asks before overwriting", func(t *testing.T) {
		require.NoError(t, chromedp.Do(bctx, chromedp.Navigate(base+"/ui/#/d/vars?ws="+ws+"&refresh=&var-svc=$__all"), chromedp.Reload()))
		waitPanels(t, bctx)
		require.Equal(t, "All", text(t, bctx, `[data-var-button="svc"]`))
		require.True(t, eval[bool](t, bctx, `document.querySelector('[data-var-picker="svc"] .var-menu').hidden`), "the menu opens on a click only")
		// Search narrows the options; a click picks one, the menu's close
		// applies it.
		require.NoError(t, chromedp.Do(bctx, chromedp.Click(chromedp.CSS(`[data-var-button="svc"]`)),
			chromedp.SendKeys(chromedp.CSS(`[data-var-search="svc"]`), "we")))
		visible := func() []string {
			return eval[[]string](t, bctx, `[...document.querySelectorAll('[data-var-picker="svc"] .var-option')].filter(li => !li.hidden).map(li => li.dataset.value)`)
		}
		require.Equal(t, []string{"web"}, visible())
		require.NoError(t, chromedp.Do(bctx, chromedp.Click(chromedp.CSS(`[data-var-picker="svc"] .var-option[data-value="web"]`))))
		eval[bool](t, bctx, `window.__orrery.ready = false`)
		require.NoError(t, chromedp.Do(bctx, chromedp.Click(chromedp.CSS(`.dash-title`))))
		panels := checkPanelsMatchAPI(t, o, ws, waitPanels(t, bctx))
		require.Contains(t, panels, "RPS web")
		require.NotContains(t, panels, "RPS cart")
		require.Contains(t, location(t, bctx), "var-svc=web")
		require.Equal(t, "web", text(t, bctx, `[data-var-button="svc"]`))
		// Chained: ns offers the namespaces of web only.
		require.Equal(t, "prod", eval[string](t, bctx, `[...document.querySelector('select[data-var="ns"]').options].map(o => o.value).join(",")`))
		// All again, through the menu.
		require.NoError(t, chromedp.Do(bctx, chromedp.Click(chromedp.CSS(`[data-var-button="svc"]`)),
			chromedp.Click(chromedp.CSS(`[data-var-picker="svc"] .var-option[data-value="$__all"]`))))
		eval[bool](t, bctx, `window.__orrery.ready = false`)
		require.NoError(t, chromedp.Do(bctx, chromedp.Click(chromedp.CSS(`.dash-title`))))
		panels = checkPanelsMatchAPI(t, o, ws, waitPanels(t, bctx))
		require.Contains(t, panels, "RPS cart")
		require.Contains(t, panels, "RPS web")
		require.Contains(t, location(t, bctx), "var-svc=%24__all")
		// A single-value variable applies at the click.
		eval[bool](t, bctx, `window.__orrery.ready = false`)
		require.NoError(t, chromedp.Do(bctx, chromedp.Click(chromedp.CSS(`[data-var-button="q"]`)),
			chromedp.Click(chromedp.CSS(`[data-var-picker="q"] .var-option[data-value="0.5"]`))))
		panels = checkPanelsMatchAPI(t, o, ws, waitPanels(t, bctx))
		require.Contains(t, panels, "quantile 0.5")

		// Import the same uid again: the page asks.
		count := func() int {
			return eval[int](t, bctx, `document.querySelectorAll('#dashboards .dash-link').length`)
		}
		require.NoError(t, chromedp.Do(bctx, chromedp.Navigate(base+"/ui/#/dashboards?ws="+ws), chromedp.WaitVisible(chromedp.CSS("#import-json"))))
		before := count()
		// Search by title, filter by tag.
		shown := func() []string {
			return eval[[]string](t, bctx, `[...document.querySelectorAll('#dashboards tbody tr')].filter(tr => !tr.hidden).map(tr => tr.querySelector(".dash-link").textContent)`)
		}
		require.NoError(t, chromedp.Do(bctx, chromedp.SendKeys(chromedp.CSS("#dashboard-search"), "variab")))
		require.Equal(t, []string{"Variables"}, shown())
		eval[bool](t, bctx, `(() => { const s = document.getElementById("dashboard-search"); s.value = ""; s.dispatchEvent(new Event("input")); return true; })()`)
		require.Len(t, shown(), before)
		require.NoError(t, chromedp.Do(bctx, chromedp.Click(chromedp.CSS(`#dashboards a.tag[data-tag="orrery"]`))))
		require.Equal(t, []string{"Envoy (edited)"}, shown())
		importVars := func(button string) {
			require.NoError(t, chromedp.Do(bctx,
				chromedp.SetValue(chromedp.CSS("#import-json"), varsDashboard),
				chromedp.Click(chromedp.CSS("#import-submit")),
				chromedp.WaitVisible(chromedp.CSS("#import-overwrite")),
				chromedp.Click(chromedp.CSS(button))))
		}
		importVars("#import-cancel")
		require.Eventually(t, func() bool { return eval[int](t, bctx, `document.querySelectorAll("#import-overwrite").length`) == 0 },
			5*time.Second, 50*time.Millisecond, "the dialog closes")
		require.Equal(t, before, count())
		require.Contains(t, location(t, bctx), "#/dashboards")
		importVars("#import-copy")
		require.Eventually(t, func() bool {
			return strings.Contains(location(t, bctx), "#/d/") && !strings.Contains(location(t, bctx), "#/d/vars?")
		},
			10*time.Second, 100*time.Millisecond)
		require.Eventually(t, func() bool {
			return eval[string](t, bctx, `(document.querySelector(".dash-title") || {}).textContent || ""`) == "Variables (copy)"
		}, 10*time.Second, 100*time.Millisecond)
		require.NoError(t, chromedp.Do(bctx, chromedp.Navigate(base+"/ui/#/dashboards?ws="+ws), chromedp.WaitVisible(chromedp.CSS("#import-json"))))
		require.Equal(t, before+1, count())
		importVars("#import-overwrite-confirm")
		require.Eventually(t, func() bool { return strings.Contains(location(t, bctx), "#/d/vars?") }, 10*time.Second, 100*time.Millisecond)
		screenshot(t, bctx, dir, "dashboard-variables-dropdown")

		// The overwrite kept the first import as version 1: restore it
		// from the list's Versions dialog; it becomes version 3.
		versions := func() []string {
			return eval[[]string](t, bctx, `[...document.querySelectorAll('#versions tbody tr')].map(tr => tr.dataset.version)`)
		}
		require.NoError(t, chromedp.Do(bctx, chromedp.Navigate(base+"/ui/#/dashboards?ws="+ws), chromedp.WaitVisible(chromedp.CSS("#import-json")),
			chromedp.Click(chromedp.CSS(`[data-versions="vars"]`)), chromedp.WaitVisible(chromedp.CSS("#versions"))))
		require.Eventually(t, func() bool { return len(versions()) >= 2 }, 5*time.Second, 50*time.Millisecond)
		require.Equal(t, []string{"2", "1"}, versions())
		eval[bool](t, bctx, `(window.confirm = () => true, true)`)
		require.NoError(t, chromedp.Do(bctx, chromedp.Click(chromedp.CSS(`[data-restore="1"]`))))
		require.Eventually(t, func() bool { return eval[int](t, bctx, `document.querySelectorAll("#versions").length`) == 0 },
			5*time.Second, 50*time.Millisecond, "the dialog closes after the restore")
		req, err := http.NewRequest("GET", base+"/ui/api/workspaces/"+ws+"/dashboards/vars/versions", nil)
		require.NoError(t, err)
		resp, err := adminClient.Do(req)
		require.NoError(t, err)
		var vs []struct {
			Version int
			Author  string
		}
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&vs))
		_ = resp.Body.Close()
		require.Len(t, vs, 3)
		require.Equal(t, 3, vs[0].Version)
		require.Equal(t, "ui/admin", vs[0].Author)
	})

	t.Run("a legacy dashboard with rows", func(t *testing.T) {
		c, csrf := adminClient, adminCSRF
		require.Equal(t, http.StatusOK, sessionDo(t, c, csrf, "POST", base+"/ui/api/workspaces/"+ws+"/dashboards", legacyDashboard))
		require.NoError(t, chromedp.Do(bctx, chromedp.Navigate(base+"/ui/#/d/legacy?ws="+ws+"&refresh="), chromedp.Reload()))
		panels := checkPanelsMatchAPI(t, o, ws, waitPanels(t, bctx))
		require.Len(t, panels["Requests"].Series, 2)
		require.True(t, panels["Requests"].Series[0].Name == "cart" || panels["Requests"].Series[0].Name == "web")
		require.Len(t, panels["Connections"].Series, 1)
		require.Equal(t, 2, eval[int](t, bctx, `document.querySelectorAll(".row-header").length`))
		require.Equal(t, 2, eval[int](t, bctx, `document.querySelectorAll(".panel").length`), "the collapsed row's panel is hidden")
		eval[bool](t, bctx, `window.__orrery.ready = false`)
		require.NoError(t, chromedp.Do(bctx, chromedp.Click(chromedp.CSS(`[data-row="Hidden"]`))))
		panels = checkPanelsMatchAPI(t, o, ws, waitPanels(t, bctx))
		require.NotEmpty(t, panels["Healthy"].Series)
		requireNoOverlap(t, bctx)
		screenshot(t, bctx, dir, "dashboard-legacy")
	})

	t.Run("folders", func(t *testing.T) {
		const folded = `{"uid":"folded","title":"In a folder","panels":[]}`
		shown := func() []string {
			return eval[[]string](t, bctx, `[...document.querySelectorAll('#dashboards tbody tr')].filter(tr => !tr.hidden).map(tr => tr.querySelector(".dash-link").textContent)`)
		}
		folderOf := func(uid string) string {
			return eval[string](t, bctx, `(() => { const l = [...document.querySelectorAll('#dashboards .dash-link')].find(a => a.href.includes("/d/`+uid+`?")); return l ? l.closest("tr").dataset.folder : "missing"; })()`)
		}
		require.Equal(t, http.StatusOK, sessionDo(t, adminClient, adminCSRF, "POST", base+"/ui/api/workspaces/"+ws+"/dashboards", `{"uid":"unfolded","title":"Top level","panels":[]}`))
		require.NoError(t, chromedp.Do(bctx, chromedp.Navigate(base+"/ui/#/dashboards?ws="+ws), chromedp.WaitVisible(chromedp.CSS("#import-json")),
			chromedp.SetValue(chromedp.CSS("#import-json"), folded), chromedp.SendKeys(chromedp.CSS("#import-folder"), "Mesh"),
			chromedp.Click(chromedp.CSS("#import-submit"))))
		require.Eventually(t, func() bool { return strings.Contains(location(t, bctx), "#/d/folded?") }, 10*time.Second, 100*time.Millisecond)
		require.NoError(t, chromedp.Do(bctx, chromedp.Navigate(base+"/ui/#/dashboards?ws="+ws), chromedp.WaitVisible(chromedp.CSS(`#dashboards a.folder-link[data-folder="Mesh"]`))))
		require.Equal(t, "Mesh", folderOf("folded"))
		require.Equal(t, "", folderOf("unfolded"), "the others stay at the top level")
		require.NoError(t, chromedp.Do(bctx, chromedp.Click(chromedp.CSS(`#dashboards a.folder-link[data-folder="Mesh"]`))))
		require.Equal(t, []string{"In a folder"}, shown())
		// A save from the dashboard's page (PUT without a folder) keeps
		// the folder; Move changes it.
		require.Equal(t, http.StatusOK, sessionDo(t, adminClient, adminCSRF, "PUT", base+"/ui/api/workspaces/"+ws+"/dashboards/folded", folded))
		eval[bool](t, bctx, `(window.prompt = () => "Edge", true)`)
		require.NoError(t, chromedp.Do(bctx, chromedp.Navigate(base+"/ui/#/dashboards?ws="+ws+"&f=1"), chromedp.WaitVisible(chromedp.CSS(`[data-move="folded"]`))))
		require.Equal(t, "Mesh", folderOf("folded"))
		eval[bool](t, bctx, `(window.prompt = () => "Edge", true)`)
		require.NoError(t, chromedp.Do(bctx, chromedp.Click(chromedp.CSS(`[data-move="folded"]`)),
			chromedp.WaitVisible(chromedp.CSS(`#dashboards a.folder-link[data-folder="Edge"]`))))
		require.Equal(t, "Edge", folderOf("folded"))
		require.Equal(t, http.StatusBadRequest, sessionDo(t, adminClient, adminCSRF, "PUT", base+"/ui/api/workspaces/"+ws+"/dashboards/folded?folder=%01", folded))
	})

	t.Run("ad hoc filters", func(t *testing.T) {
		const adhoc = `{"uid":"adhoc","title":"Ad hoc","templating":{"list":[{"name":"Filters","type":"adhoc","datasource":{"type":"prometheus","uid":"orrery"}}]},
"panels":[{"id":1,"type":"timeseries","title":"RPS","gridPos":{"x":0,"y":0,"w":12,"h":8},
"targets":[{"refId":"A","expr":"sum by (service) (rate(envoy_cluster_upstream_rq_total[5m]))","legendFormat":"{{service}}"}]}]}`
		require.Equal(t, http.StatusOK, sessionDo(t, adminClient, adminCSRF, "POST", base+"/ui/api/workspaces/"+ws+"/dashboards", adhoc))
		require.NoError(t, chromedp.Do(bctx, chromedp.Navigate(base+"/ui/#/d/adhoc?ws="+ws+"&refresh="), chromedp.Reload()))
		names := func(p uiPanel) []string {
			var out []string
			for _, s := range p.Series {
				out = append(out, s.Name)
			}
			slices.Sort(out)
			return out
		}
		panels := checkPanelsMatchAPI(t, o, ws, waitPanels(t, bctx))
		require.Equal(t, []string{"cart", "web"}, names(panels["RPS"]))
		// Add service = cart with the filter form: the label names and
		// values are the workspace's.
		require.NoError(t, chromedp.Do(bctx, chromedp.WaitReady(chromedp.CSS(`[data-adhoc-key="Filters"] option[value="service"]`))))
		eval[bool](t, bctx, `(() => { const k = document.querySelector('[data-adhoc-key="Filters"]'); k.value = "service"; k.dispatchEvent(new Event("change")); return true; })()`)
		require.NoError(t, chromedp.Do(bctx, chromedp.WaitReady(chromedp.CSS(`#adhoc-values-Filters option[value="cart"]`)),
			chromedp.SendKeys(chromedp.CSS(`[data-adhoc-value="Filters"]`), "cart")))
		eval[bool](t, bctx, `window.__orrery.ready = false`)
		require.NoError(t, chromedp.Do(bctx, chromedp.Click(chromedp.CSS(`[data-adhoc-add="Filters"]`))))
		filtered := waitPanels(t, bctx)
		require.Contains(t, location(t, bctx), "var-Filters=service%7C%3D%7Ccart")
		// The panel shows what the query with the filter in its selector
		// answers.
		for k, p := range filtered {
			require.Len(t, p.Queries, 1)
			p.Queries[0].Expr = `sum by (service) (rate(envoy_cluster_upstream_rq_total{service="cart"}[5m]))`
			filtered[k] = p
		}
		panels = checkPanelsMatchAPI(t, o, ws, filtered)
		require.Equal(t, []string{"cart"}, names(panels["RPS"]))
		// The URL carries the filter: a reload keeps it.
		require.NoError(t, chromedp.Do(bctx, chromedp.Reload()))
		require.Equal(t, []string{"cart"}, names(waitPanels(t, bctx)["1"]))
		require.Equal(t, "service|=|cart", eval[string](t, bctx, `document.querySelector(".adhoc-filter").dataset.adhoc`))
		// Removing it shows every service again.
		eval[bool](t, bctx, `window.__orrery.ready = false`)
		require.NoError(t, chromedp.Do(bctx, chromedp.Click(chromedp.CSS(`[data-adhoc-remove="0"]`))))
		require.Equal(t, []string{"cart", "web"}, names(checkPanelsMatchAPI(t, o, ws, waitPanels(t, bctx))["RPS"]))
		screenshot(t, bctx, dir, "dashboard-adhoc-filters")
	})

	t.Run("explore", func(t *testing.T) {
		expr := `sum by (service) (rate(envoy_cluster_upstream_rq_total[5m]))`
		var rows int
		require.NoError(t, chromedp.Do(bctx,
			chromedp.Navigate(base+"/ui/#/explore?ws="+ws+"&range=1h"),
			chromedp.WaitVisible(chromedp.CSS("#explore-expr")),
			chromedp.SendKeys(chromedp.CSS("#explore-expr"), "envoy_cluster_upstream_rq_t"),
			chromedp.WaitVisible(chromedp.CSS("#suggest li"))))
		var suggestions string
		suggestions = text(t, bctx, "#suggest")
		require.Contains(t, suggestions, "envoy_cluster_upstream_rq_total")
		require.Contains(t, suggestions, "envoy_cluster_upstream_rq_time_bucket")
		require.NoError(t, chromedp.Do(bctx,
			chromedp.SetValue(chromedp.CSS("#explore-expr"), expr),
			chromedp.Click(chromedp.CSS("#explore-run")),
			chromedp.WaitVisible(chromedp.CSS(".explore-table table tbody tr")),
			chromedp.Sleep(0)))

		rows = eval[int](t, bctx, `document.querySelectorAll(".explore-table tbody tr").length`)
		require.Equal(t, 2, rows)
		screenshot(t, bctx, dir, "explore")

		type explored struct {
			Expr             string
			Mode             string
			Step, Start, End float64
			Series           []struct {
				Labels map[string]string
				Values [][2]*float64
			}
			Instant []any
		}
		state := func(name string) explored {
			var e explored
			require.NoError(t, json.Unmarshal([]byte(eval[string](t, bctx, `JSON.stringify(window.`+name+` || {})`)), &e))
			return e
		}
		// A given step: the range query runs at it, and shows what the API
		// answers for it.
		eval[bool](t, bctx, `(() => { window.__orreryExplore = null; document.getElementById("explore-step").value = "1m"; document.getElementById("explore-run").click(); return true; })()`)
		require.Eventually(t, func() bool { return state("__orreryExplore").Step == 60 }, 10*time.Second, 100*time.Millisecond)
		e := state("__orreryExplore")
		code, r := apptest.API(t, o.URL(ws, "/api/v1"), "/query_range", url.Values{"query": {expr}, "start": {fmtFloat(e.Start)}, "end": {fmtFloat(e.End)}, "step": {"60"}})
		require.Equal(t, http.StatusOK, code)
		var m struct {
			Result apptest.Matrix `json:"result"`
		}
		require.NoError(t, json.Unmarshal(r.Data, &m))
		require.Len(t, e.Series, len(m.Result))
		for i := range m.Result {
			require.Len(t, e.Series[i].Values, len(m.Result[i].Values))
		}
		require.Contains(t, location(t, bctx), "step=1m")
		// Instant only: no range query, the table.
		eval[bool](t, bctx, `(() => { window.__orreryExplore = null; const m = document.getElementById("explore-mode"); m.value = "instant"; document.getElementById("explore-run").click(); return true; })()`)
		require.Eventually(t, func() bool { return state("__orreryExplore").Mode == "instant" }, 10*time.Second, 100*time.Millisecond)
		e = state("__orreryExplore")
		require.Empty(t, e.Series)
		require.Len(t, e.Instant, 2)
		require.True(t, eval[bool](t, bctx, `document.querySelector("#explore-pane .explore-graph").hidden`))
		// Split: a second pane with the same query, then its own.
		require.NoError(t, chromedp.Do(bctx, chromedp.Click(chromedp.CSS("#explore-split")), chromedp.WaitVisible(chromedp.CSS("#explore-expr-2"))))
		require.Equal(t, expr, eval[string](t, bctx, `document.getElementById("explore-expr-2").value`))
		other := `sum(envoy_http_downstream_cx_active)`
		eval[bool](t, bctx, fmt.Sprintf(`(() => { window.__orreryExplore2 = null; document.getElementById("explore-expr-2").value = %q; document.getElementById("explore-run-2").click(); return true; })()`, other))
		require.Eventually(t, func() bool {
			return state("__orreryExplore2").Expr == other && len(state("__orreryExplore2").Series) == 1
		}, 10*time.Second, 100*time.Millisecond)
		require.Contains(t, location(t, bctx), "expr2=")
		screenshot(t, bctx, dir, "explore-split")
		// History: both queries, newest first; a click runs one again.
		hist := eval[[]string](t, bctx, `[...document.querySelectorAll("#explore-history a")].map(a => a.textContent)`)
		require.Equal(t, []string{other, expr}, hist[:2])
		require.NoError(t, chromedp.Do(bctx, chromedp.Navigate(base+"/ui/#/explore?ws="+ws), chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS("#explore-history a"))))
		eval[bool](t, bctx, `(() => { window.__orreryExplore = null; document.querySelectorAll("#explore-history a")[1].click(); return true; })()`)
		require.Eventually(t, func() bool { return state("__orreryExplore").Expr == expr }, 10*time.Second, 100*time.Millisecond)
		// From a panel to Explore with its interpolated query.
		require.NoError(t, chromedp.Do(bctx, chromedp.Navigate(base+"/ui/#/d/orrery-envoy?ws="+ws+"&refresh=&from=now-30m&to=now"), chromedp.Reload()))
		panels := waitPanels(t, bctx)
		var q string
		for _, p := range panels {
			if p.Title == "Downstream requests/s" {
				q = p.Queries[0].Expr
			}
		}
		require.NotEmpty(t, q)
		eval[bool](t, bctx, `(() => { window.__orreryExplore = null; document.querySelector('[data-title="Downstream requests/s"] [data-explore]').click(); return true; })()`)
		require.Eventually(t, func() bool { return state("__orreryExplore").Expr == q }, 10*time.Second, 100*time.Millisecond)
		require.Contains(t, location(t, bctx), "range=30m")
	})

	t.Run("alerting", func(t *testing.T) {
		require.Eventually(t, func() bool {
			return len(alerts(t, o.URL(ws, "/api/v1"), "EnvoyUpstreamErrors")) > 0 && len(alerts(t, o.URL(ws, "/api/v1"), "EnvoyPending")) > 0
		}, 30*time.Second, 200*time.Millisecond)
		var txt string
		require.NoError(t, chromedp.Do(bctx,
			chromedp.Navigate(base+"/ui/#/alerting?ws="+ws),
			chromedp.WaitVisible(chromedp.CSS("#silence-create")),
			chromedp.Sleep(0)))

		txt = text(t, bctx, "#rule-groups")
		require.Contains(t, txt, "EnvoyUpstreamErrors")
		txt = text(t, bctx, "#alerts")
		require.Contains(t, txt, "firing")
		require.Contains(t, txt, "pending")

		// The rules editor: the namespace's YAML through the rule groups
		// namespace API, and a preview of the expression under the cursor
		// with the series that would fire, as the query API answers.
		require.NoError(t, chromedp.Do(bctx, chromedp.Click(chromedp.CSS(`[data-edit-namespace="envoy"]`)), chromedp.WaitVisible(chromedp.CSS("#rules-editor"))))
		require.Eventually(t, func() bool {
			return strings.Contains(eval[string](t, bctx, `document.getElementById("rules-yaml").value`), "EnvoyUpstreamErrors")
		},
			10*time.Second, 100*time.Millisecond)
		eval[bool](t, bctx, `(() => { const ta = document.getElementById("rules-yaml");
			ta.selectionStart = ta.selectionEnd = ta.value.indexOf("expr:") + 8; ta.dispatchEvent(new Event("click")); return true; })()`)
		alertExpr := `sum by (service) (rate(envoy_cluster_upstream_rq_xx{envoy_response_code_class="5"}[5m])) > 0`
		require.Eventually(t, func() bool {
			return eval[string](t, bctx, `(window.__orreryRulePreview || {}).expr || ""`) == alertExpr
		}, 10*time.Second, 100*time.Millisecond)
		firing, err := apptest.QueryVector(t, o.URL(ws, "/api/v1"), alertExpr, time.Now())
		require.NoError(t, err)
		require.NotEmpty(t, firing)
		require.Equal(t, len(firing), eval[int](t, bctx, `window.__orreryRulePreview.series`))
		require.Len(t, eval[[]string](t, bctx, `[...document.querySelectorAll("#rules-preview-series tbody tr")].map(tr => tr.textContent)`), len(firing))
		screenshot(t, bctx, dir, "alerting-rules-editor")
		// Add a recording rule and save: the ruler runs it.
		eval[bool](t, bctx, `(() => { const ta = document.getElementById("rules-yaml");
			ta.value = ta.value.replace(/\n*$/, "\n") + "      - record: ui:upstream_rq:rate5m\n        expr: sum(rate(envoy_cluster_upstream_rq_total[5m]))\n";
			document.getElementById("rules-save").click(); return true; })()`)
		require.Eventually(t, func() bool {
			code, body := apptest.Get(t, o.URL(ws, "/api/v1/rules"))
			return code == http.StatusOK && strings.Contains(string(body), "ui:upstream_rq:rate5m")
		}, 20*time.Second, 200*time.Millisecond, "the ruler loads the rule saved in the UI")
		described, err := client.DescribeRuleGroupsNamespace(ctx, &amp.DescribeRuleGroupsNamespaceInput{WorkspaceId: aws.String(ws), Name: aws.String("envoy")})
		require.NoError(t, err)
		require.Contains(t, string(described.RuleGroupsNamespace.Data), "record: ui:upstream_rq:rate5m")
		require.Contains(t, string(described.RuleGroupsNamespace.Data), "EnvoyUpstreamErrors")
		// A bad rule file is refused with the server's reasons.
		require.NoError(t, chromedp.Do(bctx, chromedp.WaitVisible(chromedp.CSS(`[data-edit-namespace="envoy"]`)),
			chromedp.Click(chromedp.CSS(`[data-edit-namespace="envoy"]`)), chromedp.WaitVisible(chromedp.CSS("#rules-editor"))))
		require.Eventually(t, func() bool {
			return strings.Contains(eval[string](t, bctx, `document.getElementById("rules-yaml").value`), "ui:upstream_rq")
		},
			10*time.Second, 100*time.Millisecond)
		eval[bool](t, bctx, `(() => { document.getElementById("rules-yaml").value = "groups:\n  - name: bad\n    rules:\n      - alert: Broken\n        expr: sum((\n";
			document.getElementById("rules-save").click(); return true; })()`)
		require.Eventually(t, func() bool { return strings.Contains(text(t, bctx, "#rules-error"), "invalid rule file") }, 10*time.Second, 100*time.Millisecond)
		// A new namespace from the template, then deleted.
		require.NoError(t, chromedp.Do(bctx, chromedp.Click(chromedp.CSS("#rules-new")), chromedp.SendKeys(chromedp.CSS("#rules-name"), "ui-made")))
		eval[bool](t, bctx, `(() => { document.getElementById("rules-save").click(); return true; })()`)
		require.Eventually(t, func() bool {
			l, err := client.ListRuleGroupsNamespaces(ctx, &amp.ListRuleGroupsNamespacesInput{WorkspaceId: aws.String(ws)})
			return err == nil && len(l.RuleGroupsNamespaces) == 2
		}, 10*time.Second, 200*time.Millisecond)
		require.NoError(t, chromedp.Do(bctx, chromedp.WaitVisible(chromedp.CSS(`[data-edit-namespace="ui-made"]`)),
			chromedp.Click(chromedp.CSS(`[data-edit-namespace="ui-made"]`)), chromedp.WaitVisible(chromedp.CSS("#rules-editor"))))
		eval[bool](t, bctx, `(() => { window.confirm = () => true; document.getElementById("rules-delete").click(); return true; })()`)
		require.Eventually(t, func() bool {
			l, err := client.ListRuleGroupsNamespaces(ctx, &amp.ListRuleGroupsNamespacesInput{WorkspaceId: aws.String(ws)})
			return err == nil && len(l.RuleGroupsNamespaces) == 1
		}, 10*time.Second, 200*time.Millisecond)

		// Matchers: a bad regex and a matcher set the alert manager refuses
		// get readable errors.
		require.NoError(t, chromedp.Do(bctx, chromedp.WaitVisible(chromedp.CSS("#silence-create")),
			chromedp.SendKeys(chromedp.CSS("#silence-matchers"), `alertname=~"(("`), chromedp.Click(chromedp.CSS("#silence-create"))))
		require.Contains(t, text(t, bctx, "#silence-error"), "bad regular expression")
		eval[bool](t, bctx, `(() => { document.getElementById("silence-matchers").value = 'alertname=""'; document.getElementById("silence-create").click(); return true; })()`)
		require.Eventually(t, func() bool {
			return strings.Contains(text(t, bctx, "#silence-error"), "must not match the empty string")
		}, 10*time.Second, 100*time.Millisecond)
		require.NotContains(t, text(t, bctx, "#silence-error"), `\"`)
		require.False(t, strings.HasPrefix(text(t, bctx, "#silence-error"), `"`), "not a JSON string")
		eval[bool](t, bctx, `(() => { document.getElementById("silence-matchers").value = ""; return true; })()`)
		require.NoError(t, chromedp.Do(bctx,
			chromedp.SendKeys(chromedp.CSS("#silence-matchers"), `alertname="EnvoyUpstreamErrors"`),
			chromedp.SendKeys(chromedp.CSS("#silence-comment"), "deploying"),
			chromedp.Click(chromedp.CSS("#silence-create")),
			chromedp.WaitVisible(chromedp.CSS(`#silence-list tbody tr`)),
			chromedp.Sleep(0)))

		txt = text(t, bctx, "#silence-list")
		require.Contains(t, txt, "active")
		require.Contains(t, txt, "deploying")
		// Contact points: the webhook delivered the firing alert; a test
		// notification reaches it; SNS's failure shows with its error.
		if req, err := http.NewRequest("GET", base+"/ui/api/workspaces/"+ws+"/contactpoints", nil); err == nil {
			if resp, err := adminClient.Do(req); err == nil {
				b, _ := io.ReadAll(resp.Body)
				_ = resp.Body.Close()
				t.Logf("contact points: %d %s", resp.StatusCode, b)
			}
		}
		require.Eventually(t, func() bool {
			_ = chromedp.Do(bctx, chromedp.Navigate(base+"/ui/#/alerting?ws="+ws+"&t="+strconv.FormatInt(time.Now().UnixNano(), 10)), chromedp.WaitVisible(chromedp.CSS("#contact-list")))
			return eval[string](t, bctx, `(document.querySelector('#contact-list tr[data-receiver="default"]') || {dataset: {}}).dataset.state || ""`) == "ok"
		}, 60*time.Second, time.Second, "the webhook delivered")
		require.Equal(t, "unknown", eval[string](t, bctx, `document.querySelector('#contact-list tr[data-receiver="broken-sns"]').dataset.state`))
		hookMu.Lock()
		before := len(hookBodies)
		hookMu.Unlock()
		require.NoError(t, chromedp.Do(bctx, chromedp.Click(chromedp.CSS(`[data-test-receiver="default"]`))))
		require.Eventually(t, func() bool {
			return strings.Contains(eval[string](t, bctx, `(document.getElementById("contact-test-result") || {}).textContent || ""`), "Test of default delivered")
		}, 20*time.Second, 100*time.Millisecond)
		hookMu.Lock()
		require.Greater(t, len(hookBodies), before)
		require.Contains(t, hookBodies[len(hookBodies)-1], `"alertname":"TestNotification"`)
		hookMu.Unlock()
		require.NoError(t, chromedp.Do(bctx, chromedp.Click(chromedp.CSS(`[data-test-receiver="broken-sns"]`))))
		require.Eventually(t, func() bool {
			return strings.Contains(eval[string](t, bctx, `(document.getElementById("contact-test-result") || {}).textContent || ""`), "Test of broken-sns failed")
		}, 30*time.Second, 200*time.Millisecond)
		require.Eventually(t, func() bool {
			return eval[string](t, bctx, `(document.querySelector('#contact-list tr[data-receiver="broken-sns"]') || {dataset: {}}).dataset.state || ""`) == "failing"
		}, 10*time.Second, 100*time.Millisecond)
		require.Contains(t, text(t, bctx, `#contact-list tr[data-receiver="broken-sns"] .contact-error`), "connection refused")
		screenshot(t, bctx, dir, "alerting-contact-points")

		// The silenced alert shows as silenced, the pending one as pending.
		require.Eventually(t, func() bool {
			_ = chromedp.Do(bctx, chromedp.Navigate(base+"/ui/#/alerting?ws="+ws+"&t="+strconv.FormatInt(time.Now().UnixNano(), 10)), chromedp.WaitVisible(chromedp.CSS("#silence-list")))
			return eval[string](t, bctx, `(document.querySelector('#alerts tr[data-alert="EnvoyUpstreamErrors"]') || {dataset: {}}).dataset.state || ""`) == "silenced"
		}, 30*time.Second, time.Second)
		require.Equal(t, "pending", eval[string](t, bctx, `document.querySelector('#alerts tr[data-alert="EnvoyPending"]').dataset.state`))
		code, body := apptest.Get(t, o.URL(ws, "/alertmanager/api/v2/silences"))
		require.Equal(t, http.StatusOK, code)
		require.Contains(t, string(body), `"createdBy":"admin"`)
		screenshot(t, bctx, dir, "alerting")
		require.NoError(t, chromedp.Do(bctx,
			chromedp.Click(chromedp.CSS(`#silence-list button.danger`)),
			chromedp.WaitVisible(chromedp.CSS(`#silence-list .badge.expired`))))
	})

	t.Run("usage", func(t *testing.T) {
		// With query logging on (every query: threshold 0), the page lists
		// the workspace's slowest recent queries.
		_, err := client.CreateQueryLoggingConfiguration(ctx, &amp.CreateQueryLoggingConfigurationInput{WorkspaceId: aws.String(ws),
			Destinations: []types.LoggingDestination{{CloudWatchLogs: &types.CloudWatchLogDestination{LogGroupArn: aws.String("arn:aws:logs:us-east-1:000000000000:log-group:q:*")},
				Filters: &types.LoggingFilter{QspThreshold: aws.Int64(0)}}}})
		require.NoError(t, err)
		code, body := apptest.Get(t, o.URL(ws, "/api/v1/query?query="+url.QueryEscape("count(envoy_cluster_upstream_rq_time_bucket)")))
		require.Equal(t, http.StatusOK, code, string(body))
		var series, top string
		require.NoError(t, chromedp.Do(bctx,
			chromedp.Navigate(base+"/ui/#/usage?ws="+ws),
			chromedp.WaitVisible(chromedp.CSS("#top-metrics")),
			chromedp.Sleep(0)))
		series = text(t, bctx, "#usage-series .card-value")
		top = text(t, bctx, "#top-metrics")
		require.Equal(t, "76", series, "69 Envoy series, 6 of the ruler and the recording rule saved in the alerting subtest")
		require.Equal(t, "11.1 K", text(t, bctx, "#usage-total .card-value"), "69 Envoy series × 161 samples written; rule results are not ingested")
		require.Contains(t, top, "envoy_cluster_upstream_rq_time_bucket")
		require.Contains(t, text(t, bctx, "#slow-queries"), "count(envoy_cluster_upstream_rq_time_bucket)")
		screenshot(t, bctx, dir, "usage")
		require.NoError(t, chromedp.Do(bctx, chromedp.Navigate(base+"/ui/#/users?ws="+ws), chromedp.WaitVisible(chromedp.CSS("#users")),
			chromedp.SendKeys(chromedp.CSS("#user-name"), "eddie"),
			chromedp.Click(chromedp.CSS("#user-create"))))
		require.Eventually(t, func() bool { return strings.Contains(text(t, bctx, "#user-created"), "password (shown once)") }, 10*time.Second, 100*time.Millisecond)
		out, err := orreryCLI(t, o, nil, "users", "list")
		require.NoError(t, err, out)
		require.Regexp(t, `eddie\s+viewer\s+`+ws, out)
		screenshot(t, bctx, dir, "users")
	})

	t.Run("a viewer cannot edit", func(t *testing.T) {
		require.NoError(t, chromedp.Do(bctx, chromedp.Click(chromedp.CSS("#logout")), chromedp.WaitVisible(chromedp.CSS("#login-name"))))
		uiLogin(t, bctx, base, "vera", "viewer-password")
		var n int
		require.NoError(t, chromedp.Do(bctx,
			chromedp.Navigate(base+"/ui/#/dashboards?ws="+ws),
			chromedp.WaitVisible(chromedp.CSS("#dashboards a.dash-link")),
			chromedp.Sleep(0)))

		n = eval[int](t, bctx, `document.querySelectorAll("#import, #import-submit, #dashboards .danger, #nav-users").length`)
		require.Zero(t, n, "no edit controls for viewers")
		require.NoError(t, chromedp.Do(bctx,
			chromedp.Navigate(base+"/ui/#/d/orrery-envoy?ws="+ws+"&refresh="),
			chromedp.WaitVisible(chromedp.CSS(".dashboard")),
			chromedp.Sleep(0)))

		n = eval[int](t, bctx, `document.querySelectorAll("#save-dashboard, #edit-json, #delete-dashboard").length`)
		require.Zero(t, n)
		screenshot(t, bctx, dir, "viewer-dashboard")

		c, csrf, session := sessionClient(t, base, "vera", "viewer-password")
		require.Equal(t, http.StatusForbidden, sessionDo(t, c, csrf, "POST", base+"/ui/api/workspaces/"+ws+"/dashboards", string(dashboard.EnvoyDashboard())))
		require.Equal(t, http.StatusForbidden, sessionDo(t, c, csrf, "DELETE", base+"/ui/api/workspaces/"+ws+"/dashboards/orrery-envoy", ""))
		require.Equal(t, http.StatusForbidden, sessionDo(t, c, csrf, "POST", base+"/ui/api/workspaces/"+ws+"/alertmanager/api/v2/silences", "{}"))
		require.Equal(t, http.StatusForbidden, sessionDo(t, c, csrf, "POST", base+"/ui/api/users", `{"name":"x","role":"admin"}`))
		require.Equal(t, http.StatusForbidden, sessionDo(t, c, csrf, "PUT", base+"/ui/api/workspaces/"+ws+"/rulegroupsnamespaces/envoy", `{"data":""}`))
		require.Equal(t, http.StatusForbidden, sessionDo(t, c, csrf, "DELETE", base+"/ui/api/workspaces/"+ws+"/rulegroupsnamespaces/envoy", ""))
		require.Equal(t, http.StatusOK, sessionDo(t, c, csrf, "GET", base+"/ui/api/workspaces/"+ws+"/rulegroupsnamespaces", ""))
		require.Equal(t, http.StatusOK, sessionDo(t, c, csrf, "GET", base+"/ui/api/workspaces/"+ws+"/dashboards/orrery-envoy", ""))
		// vera may not see the other workspace.
		require.NotContains(t, string(session), other)
		require.Equal(t, http.StatusNotFound, sessionDo(t, c, csrf, "GET", base+"/ui/api/workspaces/"+other+"/dashboards", ""))
		require.Equal(t, http.StatusNotFound, sessionDo(t, c, csrf, "GET", base+"/ui/api/workspaces/"+other+"/prom/api/v1/query?query=up", ""))
		var options string
		options = eval[string](t, bctx, `[...document.querySelectorAll("#workspace option")].map(o => o.value).join(",")`)
		require.Equal(t, ws, options)
	})

	t.Run("an editor of another workspace sees only it", func(t *testing.T) {
		c, csrf, session := sessionClient(t, base, "otto", ottoPassword)
		require.Contains(t, string(session), other)
		require.NotContains(t, string(session), ws)
		require.Equal(t, http.StatusNotFound, sessionDo(t, c, csrf, "GET", base+"/ui/api/workspaces/"+ws+"/dashboards/orrery-envoy", ""))
		require.Equal(t, http.StatusNotFound, sessionDo(t, c, csrf, "POST", base+"/ui/api/workspaces/"+ws+"/dashboards", string(dashboard.EnvoyDashboard())))
		require.Equal(t, http.StatusOK, sessionDo(t, c, csrf, "POST", base+"/ui/api/workspaces/"+other+"/dashboards", string(dashboard.EnvoyDashboard())))
		// A new password ends otto's sessions.
		out, err := orreryCLI(t, o, nil, "users", "passwd", "otto")
		require.NoError(t, err, out)
		require.Equal(t, http.StatusUnauthorized, sessionDo(t, c, csrf, "GET", base+"/ui/api/session", ""))
		out, err = orreryCLI(t, o, nil, "users", "delete", "otto")
		require.NoError(t, err, out)
	})

	// Last: the detector writes series into the workspace.
	t.Run("an anomaly detector's band on the panel of its query", func(t *testing.T) {
		const query = `sum by (service) (rate(envoy_cluster_upstream_rq_total[5m]))`
		det, err := client.CreateAnomalyDetector(ctx, &amp.CreateAnomalyDetectorInput{WorkspaceId: aws.String(ws), Alias: aws.String("rps"),
			EvaluationIntervalInSeconds: aws.Int32(30),
			Configuration: &types.AnomalyDetectorConfigurationMemberRandomCutForest{Value: types.RandomCutForestConfiguration{
				Query: aws.String(query), ShingleSize: aws.Int32(4), SampleSize: aws.Int32(32)}}})
		require.NoError(t, err)
		band := `anomaly_detector:upper_band{anomaly_detector_id="` + aws.ToString(det.AnomalyDetectorId) + `"}`
		apptest.Eventually(t, 90*time.Second, func() error {
			v, err := apptest.QueryVector(t, o.URL(ws, "/api/v1"), band, time.Now())
			if err != nil {
				return err
			}
			if len(v) == 0 {
				return errors.New("no band written yet")
			}
			return nil
		})
		// The panel's query is the detector's, written otherwise.
		const panel = `{"uid":"bands","title":"Bands","time":{"from":"now-15m","to":"now"},"panels":[{"id":1,"type":"timeseries","title":"RPS",
"gridPos":{"x":0,"y":0,"w":12,"h":8},"targets":[{"refId":"A","expr":"sum by(service)(rate(envoy_cluster_upstream_rq_total[5m]))","legendFormat":"{{service}}"}]}]}`
		require.Equal(t, http.StatusOK, sessionDo(t, adminClient, adminCSRF, "POST", base+"/ui/api/workspaces/"+ws+"/dashboards", panel))
		require.NoError(t, chromedp.Do(bctx, chromedp.Navigate(base+"/ui/#/d/bands?ws="+ws+"&refresh="), chromedp.Reload()))
		panels := checkPanelsMatchAPI(t, o, ws, waitPanels(t, bctx))
		var names []string
		for _, s := range panels["RPS"].Series {
			names = append(names, s.Name)
		}
		require.Contains(t, names, "cart (rps upper band)", "the band beside its series: %v", names)
		require.Contains(t, names, "cart (rps lower band)")
		require.GreaterOrEqual(t, eval[int](t, bctx, `document.querySelectorAll(".panel path.series.band").length`), 2, "drawn dashed")
		screenshot(t, bctx, dir, "dashboard-anomaly-bands")
	})
}

// intervalFactors maps "panel title/refId" to the target's
// intervalFactor (1 when unset) in a dashboard's JSON model.
func intervalFactors(t *testing.T, model []byte) map[string]float64 {
	t.Helper()
	type panel struct {
		Title   string `json:"title"`
		Targets []struct {
			RefID          string  `json:"refId"`
			IntervalFactor float64 `json:"intervalFactor"`
		} `json:"targets"`
		Panels []json.RawMessage `json:"panels"`
	}
	var d struct {
		Panels []json.RawMessage `json:"panels"`
	}
	require.NoError(t, json.Unmarshal(model, &d))
	out := map[string]float64{}
	var walk func([]json.RawMessage)
	walk = func(list []json.RawMessage) {
		for _, raw := range list {
			var p panel
			require.NoError(t, json.Unmarshal(raw, &p))
			for _, tg := range p.Targets {
				f := tg.IntervalFactor
				if f <= 0 {
					f = 1
				}
				out[p.Title+"/"+tg.RefID] = f
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	return out
}

func mustJSON(t *testing.T, v any) string {
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return string(b)
}

func eval[T any](t *testing.T, ctx context.Context, js string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js))
	require.NoError(t, err, js)
	return v
}

func text(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
	require.NoError(t, err, sel)
	return v
}

func location(t *testing.T, ctx context.Context) string {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Location())
	require.NoError(t, err)
	return v
}

// changeVariable selects values of a dashboard variable and returns the
// panels once they have rendered, checked against the query API.
func changeVariable(t *testing.T, ctx context.Context, o *apptest.Orrery, ws, name string, values ...string) map[string]uiPanel {
	t.Helper()
	eval[bool](t, ctx, fmt.Sprintf(`(() => {
		window.__orrery.ready = false;
		const want = %s;
		const s = document.querySelector('select[data-var=%q]');
		for (const o of s.options) o.selected = want.includes(o.value);
		s.dispatchEvent(new Event("change"));
		return true; })()`, mustJSON(t, values), name))
	return checkPanelsMatchAPI(t, o, ws, waitPanels(t, ctx))
}

// varsDashboard exercises the variable types and repeated panels.
// transformDashboard has a table per transformation the node-exporter
// dashboard does not use.
const transformDashboard = `{"title": "Transformations", "uid": "transforms", "schemaVersion": 39, "time": {"from": "now-30m", "to": "now"},
 "panels": [
  {"id": 1, "type": "table", "title": "reduce", "gridPos": {"x": 0, "y": 0, "w": 12, "h": 8},
   "fieldConfig": {"defaults": {"unit": "none", "decimals": 3}},
   "targets": [{"expr": "sum by (namespace, service) (envoy_http_downstream_cx_active)", "legendFormat": "{{namespace}}/{{service}}"}],
   "transformations": [{"id": "reduce", "options": {"reducers": ["max", "mean", "lastNotNull"]}}]},
  {"id": 2, "type": "table", "title": "labels to fields, filtered", "gridPos": {"x": 12, "y": 0, "w": 12, "h": 8},
   "fieldConfig": {"defaults": {"unit": "none", "decimals": 3}},
   "targets": [{"expr": "sum by (namespace, service) (envoy_http_downstream_cx_active)", "instant": true}],
   "transformations": [{"id": "labelsToFields", "options": {}}, {"id": "merge", "options": {}},
     {"id": "filterByValue", "options": {"type": "include", "match": "any", "filters": [{"fieldName": "namespace", "config": {"id": "regex", "options": {"value": "prod"}}}]}},
     {"id": "organize", "options": {"excludeByName": {"Time": true}, "renameByName": {"Value": "Connections"}}}]},
  {"id": 3, "type": "table", "title": "group by namespace", "gridPos": {"x": 0, "y": 8, "w": 12, "h": 8},
   "fieldConfig": {"defaults": {"unit": "none", "decimals": 3}},
   "targets": [{"expr": "envoy_http_downstream_cx_active", "instant": true, "format": "table"}],
   "transformations": [{"id": "groupBy", "options": {"fields": {"namespace": {"operation": "groupby"}, "Value": {"operation": "aggregate", "aggregations": ["sum"]}}}}]},
  {"id": 4, "type": "table", "title": "join by time", "gridPos": {"x": 12, "y": 8, "w": 12, "h": 8},
   "fieldConfig": {"defaults": {"unit": "none", "decimals": 3}},
   "targets": [{"expr": "sum(envoy_http_downstream_rq_total)", "legendFormat": "requests"},
     {"expr": "sum(envoy_http_downstream_cx_active)", "legendFormat": "connections"}],
   "transformations": [{"id": "joinByField", "options": {"byField": "Time", "mode": "outer"}},
     {"id": "calculateField", "options": {"mode": "binary", "alias": "per connection", "binary": {"left": "requests", "operator": "/", "right": "connections"}}}]},
  {"id": 5, "type": "table", "title": "series to rows", "gridPos": {"x": 0, "y": 16, "w": 24, "h": 8},
   "fieldConfig": {"defaults": {"unit": "none", "decimals": 3}},
   "targets": [{"expr": "sum by (namespace, service) (envoy_http_downstream_cx_active)", "legendFormat": "{{namespace}}/{{service}}"}],
   "transformations": [{"id": "seriesToRows", "options": {}}]}
 ]}`

// overridesDashboard exercises field overrides, the graph panel's
// seriesOverrides and value mappings per field.
const overridesDashboard = `{"title": "Overrides", "uid": "overrides", "schemaVersion": 39, "time": {"from": "now-30m", "to": "now"},
 "panels": [
  {"id": 1, "type": "timeseries", "title": "overrides", "gridPos": {"x": 0, "y": 0, "w": 12, "h": 10},
   "options": {"legend": {"displayMode": "table", "calcs": ["max"], "placement": "bottom"}},
   "fieldConfig": {"defaults": {"unit": "short"}, "overrides": [
     {"matcher": {"id": "byRegexp", "options": "/ rps$/"}, "properties": [{"id": "unit", "value": "reqps"}, {"id": "decimals", "value": 1}]},
     {"matcher": {"id": "byFrameRefID", "options": "B"}, "properties": [{"id": "displayName", "value": "active connections"},
       {"id": "custom.axisPlacement", "value": "right"}, {"id": "color", "value": {"mode": "fixed", "fixedColor": "red"}}]}]},
   "targets": [{"refId": "A", "expr": "sum by (service) (rate(envoy_http_downstream_rq_total[1m]))", "legendFormat": "{{service}} rps"},
     {"refId": "B", "expr": "sum(envoy_http_downstream_cx_active)", "legendFormat": "connections"}]},
  {"id": 2, "type": "graph", "title": "seriesOverrides", "gridPos": {"x": 12, "y": 0, "w": 12, "h": 10},
   "yaxes": [{"format": "reqps"}, {"format": "percentunit"}], "seriesOverrides": [{"alias": "errors", "yaxis": 2}],
   "targets": [{"refId": "A", "expr": "sum(rate(envoy_cluster_upstream_rq_total[1m]))", "legendFormat": "requests"},
     {"refId": "B", "expr": "sum(rate(envoy_cluster_upstream_rq_xx{envoy_response_code_class=\"5\"}[1m])) / sum(rate(envoy_cluster_upstream_rq_total[1m]))", "legendFormat": "errors"}]},
  {"id": 3, "type": "stat", "title": "mappings per field", "gridPos": {"x": 0, "y": 10, "w": 12, "h": 6},
   "fieldConfig": {"defaults": {"unit": "none"}, "overrides": [{"matcher": {"id": "byName", "options": "web"}, "properties": [{"id": "mappings", "value":
     [{"type": "value", "options": {"3": {"text": "degraded", "color": "orange"}, "4": {"text": "healthy", "color": "green"}}}]}]}]},
   "targets": [{"refId": "A", "expr": "sum(envoy_cluster_membership_healthy{service=\"web\"})", "legendFormat": "web"},
     {"refId": "B", "expr": "sum(envoy_cluster_membership_healthy{service=\"cart\",namespace=\"prod\"})", "legendFormat": "cart"}]}
 ]}`

// typesDashboard has one panel of each type Orrery draws besides time
// series, and two it does not.
const typesDashboard = `{"title": "Panel types", "uid": "types", "schemaVersion": 39, "time": {"from": "now-30m", "to": "now"},
 "panels": [
  {"id": 1, "type": "piechart", "title": "Connections by service", "gridPos": {"x": 0, "y": 0, "w": 8, "h": 8},
   "options": {"pieType": "donut", "reduceOptions": {"calcs": ["lastNotNull"]}, "legend": {"values": ["value", "percent"]}},
   "fieldConfig": {"defaults": {"unit": "none"}},
   "targets": [{"expr": "sum by (namespace, service) (envoy_http_downstream_cx_active)", "legendFormat": "{{namespace}}/{{service}}"}]},
  {"id": 2, "type": "state-timeline", "title": "Endpoint health", "gridPos": {"x": 8, "y": 0, "w": 16, "h": 8},
   "fieldConfig": {"defaults": {"mappings": [{"type": "value", "options": {"3": {"text": "degraded", "color": "orange"}, "4": {"text": "all healthy", "color": "green"}}}]}},
   "targets": [{"expr": "sum by (namespace, service) (envoy_cluster_membership_healthy)", "legendFormat": "{{namespace}}/{{service}}"}]},
  {"id": 3, "type": "bargauge", "title": "Active connections", "gridPos": {"x": 0, "y": 8, "w": 8, "h": 6},
   "fieldConfig": {"defaults": {"unit": "conn", "decimals": 0}},
   "targets": [{"expr": "sum by (namespace, service) (envoy_http_downstream_cx_active)", "legendFormat": "{{namespace}}/{{service}}"}]},
  {"id": 4, "type": "text", "title": "Notes", "gridPos": {"x": 8, "y": 8, "w": 4, "h": 6}, "options": {"mode": "markdown", "content": "# Read me\n*three* services"}},
  {"id": 5, "type": "nodeGraph", "title": "A node graph", "gridPos": {"x": 12, "y": 8, "w": 6, "h": 6}, "targets": [{"expr": "up"}]},
  {"id": 6, "type": "grafana-worldmap-panel", "title": "A world map", "gridPos": {"x": 18, "y": 8, "w": 6, "h": 6}, "targets": [{"expr": "up"}]}
 ]}`

const varsDashboard = `{"title": "Variables", "uid": "vars", "schemaVersion": 39, "time": {"from": "now-30m", "to": "now"},
 "templating": {"list": [
  {"name": "svc", "type": "query", "query": "label_values(envoy_http_downstream_rq_total, service)", "multi": true, "includeAll": true, "current": {"value": ["$__all"]}},
  {"name": "ns", "type": "query", "query": {"query": "label_values(envoy_http_downstream_rq_total{service=~\"$svc\"}, namespace)"}},
  {"name": "top", "type": "query", "query": "query_result(topk(1, sum by (service) (envoy_http_downstream_cx_active)))", "regex": "/service=\"([^\"]+)\"/"},
  {"name": "win", "type": "interval", "query": "1m,5m,10m", "current": {"value": "5m"}},
  {"name": "q", "type": "custom", "query": "0.5,0.99", "current": {"value": "0.99"}},
  {"name": "env", "type": "custom", "query": "production : prod,staging", "multi": true, "current": {"value": ["prod", "staging"]}},
  {"name": "c", "type": "constant", "query": "cart"},
  {"name": "tb", "type": "textbox", "query": "prod"}]},
 "panels": [
  {"type": "stat", "title": "RPS $svc", "repeat": "svc", "gridPos": {"x": 0, "y": 0, "w": 8, "h": 4}, "fieldConfig": {"defaults": {"unit": "reqps"}},
   "targets": [{"refId": "A", "expr": "sum(rate(envoy_http_downstream_rq_total{service=\"$svc\",namespace=\"$tb\"}[$win]))"}]},
  {"type": "timeseries", "title": "quantile $q", "gridPos": {"x": 0, "y": 4, "w": 12, "h": 8}, "fieldConfig": {"defaults": {"unit": "ms"}},
   "targets": [{"refId": "A", "expr": "histogram_quantile($q, sum by (le) (rate(envoy_http_downstream_rq_time_bucket{service=\"$c\"}[$__rate_interval])))", "legendFormat": "p$q"}]},
  {"type": "timeseries", "title": "connections in $env", "repeat": "env", "gridPos": {"x": 0, "y": 12, "w": 6, "h": 8},
   "targets": [{"refId": "A", "expr": "sum by (service) (envoy_http_downstream_cx_active{namespace=~\"$env\"})", "legendFormat": "{{service}}"}]},
  {"type": "text", "title": "top", "gridPos": {"x": 0, "y": 20, "w": 24, "h": 3}, "options": {"mode": "markdown", "content": "Busiest: **$top** <script>alert(1)</script>"}}]}`

// TestUIWithSigV4 checks the UI beside SigV4 authentication: the first
// admin's generated password file, UI users reaching the query API
// without signing, and the users and dashboards admin API requiring it.
func TestUIWithSigV4(t *testing.T) {
	t.Setenv("ORRERY_ADMIN_ACCESS_KEY_ID", adminKey)
	t.Setenv("ORRERY_ADMIN_SECRET_ACCESS_KEY", adminSecret)
	t.Setenv("ORRERY_UI_ADMIN_PASSWORD", "")
	dir := t.TempDir()
	o := apptest.StartOrrery(t, dir, "--auth=sigv4")
	base := "http://" + o.Addr
	creds := []string{"AWS_ACCESS_KEY_ID=" + adminKey, "AWS_SECRET_ACCESS_KEY=" + adminSecret}

	fi, err := os.Stat(filepath.Join(dir, "ui-admin-password"))
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	pw, err := os.ReadFile(filepath.Join(dir, "ui-admin-password"))
	require.NoError(t, err)
	require.Contains(t, o.Output(), strings.TrimSpace(string(pw)), "printed once at first start")

	out, err := orreryCLI(t, o, nil, "users", "list")
	require.Error(t, err, "the users API needs credentials")
	require.Contains(t, out, "MissingAuthenticationTokenException")
	out, err = orreryCLI(t, o, creds, "workspaces", "create", "--alias", "ui")
	require.NoError(t, err, out)
	ws := strings.TrimSpace(out)
	out, err = orreryCLI(t, o, creds, "users", "create", "--name", "ana", "--role", "viewer", "--workspaces", ws)
	require.NoError(t, err, out)
	anaPassword := strings.TrimSpace(strings.SplitN(out, "password (shown once): ", 2)[1])

	// The demo's way of installing a dashboard: the admin API, signed.
	c := &admin.Client{URL: base, Region: "us-east-1"}
	_, err = c.InstallDashboard(context.Background(), ws, dashboard.EnvoyDashboard())
	require.Error(t, err)
	c.KeyID, c.Secret = adminKey, adminSecret
	uid, err := c.InstallDashboard(context.Background(), ws, dashboard.EnvoyDashboard())
	require.NoError(t, err)
	require.Equal(t, "orrery-envoy", uid)

	// A UI user queries through the session, without SigV4; the raw
	// workspace API still refuses unsigned requests.
	sc, csrf, _ := sessionClient(t, base, "ana", anaPassword)
	require.Equal(t, http.StatusOK, sessionDo(t, sc, csrf, "GET", base+"/ui/api/workspaces/"+ws+"/prom/api/v1/query?query=vector(1)", ""))
	require.Equal(t, http.StatusOK, sessionDo(t, sc, csrf, "GET", base+"/ui/api/workspaces/"+ws+"/dashboards/orrery-envoy", ""))
	code, _ := apptest.Get(t, o.URL(ws, "/api/v1/query?query=vector(1)"))
	require.Equal(t, http.StatusForbidden, code)
	// The session cookie's attributes.
	resp, err := http.Post(base+"/ui/api/login", "application/json", strings.NewReader(fmt.Sprintf(`{"name":"ana","password":%q}`, anaPassword)))
	require.NoError(t, err)
	_ = resp.Body.Close()
	cookie := resp.Header.Get("Set-Cookie")
	require.Contains(t, cookie, "HttpOnly")
	require.Contains(t, cookie, "SameSite=Strict")
	require.Contains(t, cookie, "Path=/ui")
	require.NotContains(t, cookie, "Secure", "plain HTTP here; Secure is set over TLS")
}

// legacyDashboard has schema 14's rows, a graph with a legacy y axis and
// a singlestat.
const legacyDashboard = `{"title": "Legacy", "uid": "legacy", "schemaVersion": 14, "time": {"from": "now-30m", "to": "now"},
 "rows": [
  {"title": "Traffic", "height": "250px", "panels": [
   {"id": 1, "type": "graph", "title": "Requests", "span": 8, "stack": true, "yaxes": [{"format": "reqps", "min": 0}, {}],
    "targets": [{"refId": "A", "expr": "sum by (service) (rate(envoy_http_downstream_rq_total{namespace=\"prod\"}[1m]))", "legendFormat": "{{service}}"}]},
   {"id": 2, "type": "singlestat", "title": "Connections", "span": 4, "format": "short",
    "targets": [{"refId": "A", "expr": "sum(envoy_http_downstream_cx_active)"}]}]},
  {"title": "Hidden", "collapse": true, "panels": [
   {"id": 3, "type": "graph", "title": "Healthy", "span": 12, "targets": [{"refId": "A", "expr": "sum(envoy_cluster_membership_healthy)"}]}]}]}`

// requireNoOverlap requires that no two panels of the dashboard overlap.
func requireNoOverlap(t *testing.T, ctx context.Context) {
	t.Helper()
	overlaps := eval[string](t, ctx, `(() => {
		const ps = [...document.querySelectorAll(".panel")].map(e => [e.dataset.title, e.getBoundingClientRect()]);
		const out = [];
		for (let i = 0; i < ps.length; i++) for (let j = i + 1; j < ps.length; j++) {
			const [a, r] = ps[i], [b, q] = ps[j];
			if (r.left < q.right - 1 && q.left < r.right - 1 && r.top < q.bottom - 1 && q.top < r.bottom - 1) out.push(a + " / " + b);
		}
		return out.join("; "); })()`)
	require.Empty(t, overlaps, "overlapping panels")
}
