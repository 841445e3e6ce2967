package app

import (
	"context"
	"errors"
	"flag"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orrery-dev/orrery/internal/auth"
	"github.com/orrery-dev/orrery/internal/catalog"
	"github.com/orrery-dev/orrery/internal/workspace"
)

// newTestServer builds a real server with SigV4 authentication (not run:
// its handler is served directly) and one active workspace.
func newTestServer(t *testing.T) (*Server, workspace.ID) {
	t.Helper()
	dir := t.TempDir()
	s, err := NewServer(ServerConfig{DataDir: dir, Listen: "127.0.0.1:0", Auth: "sigv4", Limits: workspace.DefaultLimits(),
		Region: "us-east-1", AccountID: "000000000000", AdminKeyID: "AKIAROUTETEST0000001", AdminSecret: "route-test-secret",
		UIAdminPassword: "route-test-password", AuthCacheTTL: time.Second}, nil)
	require.NoError(t, err)
	t.Cleanup(func() {
		require.NoError(t, errors.Join(stopServices(startedNothing(s.engine.services()), nil), s.catalog.Close()))
	})
	ws, _, err := s.catalog.CreateWorkspace(context.Background(), catalog.Workspace{ID: workspace.NewID(), Status: catalog.StatusActive, CreatedAt: time.Now()})
	require.NoError(t, err)
	return s, ws.ID
}

// token stores a bearer token with policy and returns it.
func token(t *testing.T, s *Server, policy string) string {
	t.Helper()
	tok, id, hash := auth.NewToken()
	require.NoError(t, s.catalog.CreateAPIToken(context.Background(), catalog.APIToken{ID: id, SecretHash: hash, Policy: policy, CreatedAt: time.Now()}))
	return tok
}

// concrete returns a request path for a route's pattern.
func concrete(rt route, ws, other workspace.ID, arnPrefix string) string {
	p := rt.Path()
	id := ws.String()
	if rt.Pattern == "DELETE /workspaces/{id}" {
		id = other.String() // Keep ws for the routes walked after it.
	}
	p = strings.NewReplacer("{id}", id, "{name}", "n", "{silence}", "s1", "{scraperId}", "s-1", "{detector}", "ad-1", "{arn...}", arnPrefix+ws.String(), "{$}", "").Replace(p)
	if strings.HasPrefix(p, "/debug/pprof/") {
		p += "?seconds=1"
	}
	return p
}

// TestRouteTableAuthorizes walks the route table: every route but the open
// ones refuses a request without credentials, refuses a token denied its
// declared action, and lets through a token allowed only that action on
// its resource.
func TestRouteTableAuthorizes(t *testing.T) {
	s, ws := newTestServer(t)
	other, _, err := s.catalog.CreateWorkspace(context.Background(), catalog.Workspace{ID: workspace.NewID(), Status: catalog.StatusActive, CreatedAt: time.Now()})
	require.NoError(t, err)
	h := s.routes()
	prefix := s.arnPrefix()
	openRoutes := map[string]bool{}
	for _, rt := range s.table() {
		if rt.scope == open {
			require.Empty(t, rt.Action, rt.Pattern)
			openRoutes[rt.Pattern] = true
			continue
		}
		t.Run(rt.Pattern, func(t *testing.T) {
			require.NotEmpty(t, rt.Action)
			path := concrete(rt, ws, other.ID, prefix)
			req := func(tok string) *httptest.ResponseRecorder {
				r := httptest.NewRequest(rt.Method(), path, strings.NewReader("{}"))
				if tok != "" {
					r.Header.Set("Authorization", "Bearer "+tok)
				}
				w := httptest.NewRecorder()
				h.ServeHTTP(w, r)
				return w
			}
			w := req("")
			require.Equal(t, http.StatusForbidden, w.Code, w.Body.String())
			require.Equal(t, "MissingAuthenticationTokenException", w.Header().Get("X-Amzn-ErrorType"))

			// The resource the route declares, as a request makes it.
			var resource string
			probe := http.NewServeMux()
			probe.HandleFunc(rt.Pattern, func(_ http.ResponseWriter, r *http.Request) { resource = rt.ARN(r, prefix) })
			probe.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(rt.Method(), path, nil))
			require.NotEmpty(t, resource)

			denied := token(t, s, `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"},`+
				`{"Effect":"Deny","Action":"`+rt.Action+`","Resource":"`+resource+`"}]}`)
			w = req(denied)
			require.Equal(t, http.StatusForbidden, w.Code, w.Body.String())
			require.Contains(t, w.Body.String(), "is explicitly denied "+rt.Action)

			allowed := token(t, s, `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"`+rt.Action+`","Resource":"`+resource+`"}]}`)
			w = req(allowed)
			require.NotContains(t, []int{http.StatusUnauthorized, http.StatusForbidden}, w.Code, "allowed %s on %s: %s", rt.Action, resource, w.Body.String())
		})
	}
	require.Equal(t, map[string]bool{"GET /-/healthy": true, "GET /-/ready": true, "GET /{$}": true, "/ui/": true}, openRoutes)

	t.Run("unknown routes are 404, before authentication", func(t *testing.T) {
		for _, p := range []string{"/workspaces/" + ws.String() + "/api/v1/no_such_endpoint", "/workspaces/" + ws.String() + "/alertmanager/api/v1/alerts", "/orrery/v1/nothing"} {
			w := httptest.NewRecorder()
			h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, p, nil))
			require.Equal(t, http.StatusNotFound, w.Code, p)
		}
	})
}

// TestRouteActions pins the AMP and Orrery action and resource of
// requests: the names clients' policies use must not change.
func TestRouteActions(t *testing.T) {
	s, _ := newTestServer(t)
	const p = "arn:aws:aps:us-east-1:000000000000:workspace/"
	mux := http.NewServeMux()
	var got auth.Request
	for _, rt := range s.table() {
		mux.HandleFunc(rt.Pattern, func(_ http.ResponseWriter, r *http.Request) {
			got = auth.Request{Action: rt.Action, Resource: rt.ARN(r, s.arnPrefix())}
		})
	}
	am := "/workspaces/ws-1/alertmanager/api/v2/"
	for _, c := range []struct {
		method, path string
		want         auth.Request
	}{
		{"POST", "/workspaces", auth.Request{Action: "aps:CreateWorkspace", Resource: p + "*"}},
		{"GET", "/workspaces", auth.Request{Action: "aps:ListWorkspaces", Resource: p + "*"}},
		{"GET", "/workspaces/ws-1", auth.Request{Action: "aps:DescribeWorkspace", Resource: p + "ws-1"}},
		{"DELETE", "/workspaces/ws-1", auth.Request{Action: "aps:DeleteWorkspace", Resource: p + "ws-1"}},
		{"POST", "/workspaces/ws-1/alias", auth.Request{Action: "aps:UpdateWorkspaceAlias", Resource: p + "ws-1"}},
		{"PATCH", "/workspaces/ws-1/configuration", auth.Request{Action: "aps:UpdateWorkspaceConfiguration", Resource: p + "ws-1"}},
		{"GET", "/workspaces/ws-1/configuration", auth.Request{Action: "aps:DescribeWorkspaceConfiguration", Resource: p + "ws-1"}},
		{"POST", "/workspaces/ws-1/rulegroupsnamespaces", auth.Request{Action: "aps:CreateRuleGroupsNamespace", Resource: p + "ws-1"}},
		{"PUT", "/workspaces/ws-1/rulegroupsnamespaces/n", auth.Request{Action: "aps:PutRuleGroupsNamespace", Resource: "arn:aws:aps:us-east-1:000000000000:rulegroupsnamespace/ws-1/n"}},
		{"POST", "/workspaces/ws-1/anomalydetectors", auth.Request{Action: "aps:CreateAnomalyDetector", Resource: p + "ws-1"}},
		{"GET", "/workspaces/ws-1/anomalydetectors", auth.Request{Action: "aps:ListAnomalyDetectors", Resource: p + "ws-1"}},
		{"GET", "/workspaces/ws-1/anomalydetectors/ad-1", auth.Request{Action: "aps:DescribeAnomalyDetector", Resource: "arn:aws:aps:us-east-1:000000000000:anomalydetector/ws-1/ad-1"}},
		{"PUT", "/workspaces/ws-1/anomalydetectors/ad-1", auth.Request{Action: "aps:PutAnomalyDetector", Resource: "arn:aws:aps:us-east-1:000000000000:anomalydetector/ws-1/ad-1"}},
		{"DELETE", "/workspaces/ws-1/anomalydetectors/ad-1", auth.Request{Action: "aps:DeleteAnomalyDetector", Resource: "arn:aws:aps:us-east-1:000000000000:anomalydetector/ws-1/ad-1"}},
		{"POST", "/tags/arn:aws:aps:us-east-1:000000000000:anomalydetector/ws-1/ad-1", auth.Request{Action: "aps:TagResource", Resource: "arn:aws:aps:us-east-1:000000000000:anomalydetector/ws-1/ad-1"}},
		{"POST", "/orrery/v1/accesskeys", auth.Request{Action: "orrery:CreateAccessKey", Resource: "*"}},
		{"GET", "/orrery/v1/tokens", auth.Request{Action: "orrery:ListAPITokens", Resource: "*"}},
		{"DELETE", "/orrery/v1/tokens/abc", auth.Request{Action: "orrery:RevokeAPIToken", Resource: "*"}},
		{"PUT", "/workspaces/ws-1/alertmanager/definition", auth.Request{Action: "aps:PutAlertManagerDefinition", Resource: p + "ws-1"}},
		{"GET", "/workspaces/ws-1/logging", auth.Request{Action: "aps:DescribeLoggingConfiguration", Resource: p + "ws-1"}},
		{"POST", "/workspaces/ws-1/logging/query", auth.Request{Action: "aps:CreateQueryLoggingConfiguration", Resource: p + "ws-1"}},
		{"PUT", "/workspaces/ws-1/logging/query", auth.Request{Action: "aps:UpdateQueryLoggingConfiguration", Resource: p + "ws-1"}},
		{"GET", "/workspaces/ws-1/logging/query", auth.Request{Action: "aps:DescribeQueryLoggingConfiguration", Resource: p + "ws-1"}},
		{"DELETE", "/workspaces/ws-1/logging/query", auth.Request{Action: "aps:DeleteQueryLoggingConfiguration", Resource: p + "ws-1"}},
		{"PUT", "/workspaces/ws-1/policy", auth.Request{Action: "aps:PutResourcePolicy", Resource: p + "ws-1"}},
		{"GET", "/workspaces/ws-1/policy", auth.Request{Action: "aps:DescribeResourcePolicy", Resource: p + "ws-1"}},
		{"DELETE", "/workspaces/ws-1/policy", auth.Request{Action: "aps:DeleteResourcePolicy", Resource: p + "ws-1"}},
		{"POST", "/scrapers", auth.Request{Action: "aps:CreateScraper", Resource: "arn:aws:aps:us-east-1:000000000000:scraper/*"}},
		{"DELETE", "/scrapers/s-1", auth.Request{Action: "aps:DeleteScraper", Resource: "arn:aws:aps:us-east-1:000000000000:scraper/s-1"}},
		{"GET", "/scrapers/s-1/api/v1/targets", auth.Request{Action: "aps:DescribeScraper", Resource: "arn:aws:aps:us-east-1:000000000000:scraper/s-1"}},
		{"GET", "/scraperconfiguration", auth.Request{Action: "aps:GetDefaultScraperConfiguration", Resource: "*"}},
		{"PUT", "/workspaces/ws-1/anomalydetectors/ad-1", auth.Request{Action: "aps:PutAnomalyDetector", Resource: "arn:aws:aps:us-east-1:000000000000:anomalydetector/ws-1/ad-1"}},
		{"POST", "/tags/" + p + "ws-1", auth.Request{Action: "aps:TagResource", Resource: p + "ws-1"}},
		{"POST", "/orrery/v1/users", auth.Request{Action: "orrery:CreateUser", Resource: "*"}},
		{"GET", "/orrery/v1/users", auth.Request{Action: "orrery:ListUsers", Resource: "*"}},
		{"PUT", "/orrery/v1/users/ana", auth.Request{Action: "orrery:UpdateUser", Resource: "*"}},
		{"DELETE", "/orrery/v1/users/ana", auth.Request{Action: "orrery:DeleteUser", Resource: "*"}},
		{"POST", "/orrery/v1/workspaces/ws-1/dashboards", auth.Request{Action: "orrery:PutDashboard", Resource: p + "ws-1"}},
		{"GET", "/orrery/v1/workspaces/ws-1/dashboards", auth.Request{Action: "orrery:ListDashboards", Resource: p + "ws-1"}},
		{"POST", "/workspaces/ws-1/api/v1/remote_write", auth.Request{Action: "aps:RemoteWrite", Resource: p + "ws-1"}},
		{"POST", "/workspaces/ws-1/api/v1/otlp/v1/metrics", auth.Request{Action: "aps:RemoteWrite", Resource: p + "ws-1"}},
		{"GET", "/workspaces/ws-1/api/v1/series", auth.Request{Action: "aps:GetSeries", Resource: p + "ws-1"}},
		{"GET", "/workspaces/ws-1/api/v1/query_range", auth.Request{Action: "aps:QueryMetrics", Resource: p + "ws-1"}},
		{"POST", "/workspaces/ws-1/api/v1/query", auth.Request{Action: "aps:QueryMetrics", Resource: p + "ws-1"}},
		{"GET", "/workspaces/ws-1/api/v1/label/job/values", auth.Request{Action: "aps:GetLabels", Resource: p + "ws-1"}},
		{"GET", "/workspaces/ws-1/api/v1/metadata", auth.Request{Action: "aps:GetMetricMetadata", Resource: p + "ws-1"}},
		{"POST", "/workspaces/ws-1/api/v1/admin/tsdb/delete_series", auth.Request{Action: "aps:DeleteSeries", Resource: p + "ws-1"}},
		{"GET", "/workspaces/ws-1/api/v1/rules", auth.Request{Action: "aps:ListRules", Resource: p + "ws-1"}},
		{"GET", "/workspaces/ws-1/api/v1/alerts", auth.Request{Action: "aps:ListAlerts", Resource: p + "ws-1"}},
		{"POST", am + "alerts", auth.Request{Action: "aps:CreateAlertManagerAlerts", Resource: p + "ws-1"}},
		{"GET", am + "alerts", auth.Request{Action: "aps:ListAlertManagerAlerts", Resource: p + "ws-1"}},
		{"GET", am + "alerts/groups", auth.Request{Action: "aps:ListAlertManagerAlertGroups", Resource: p + "ws-1"}},
		{"POST", am + "silences", auth.Request{Action: "aps:PutAlertManagerSilences", Resource: p + "ws-1"}},
		{"GET", am + "silences", auth.Request{Action: "aps:ListAlertManagerSilences", Resource: p + "ws-1"}},
		{"GET", am + "silence/0b8e-1", auth.Request{Action: "aps:GetAlertManagerSilence", Resource: p + "ws-1"}},
		{"DELETE", am + "silence/0b8e-1", auth.Request{Action: "aps:DeleteAlertManagerSilence", Resource: p + "ws-1"}},
		{"GET", am + "receivers", auth.Request{Action: "aps:ListAlertManagerReceivers", Resource: p + "ws-1"}},
		{"GET", am + "status", auth.Request{Action: "aps:GetAlertManagerStatus", Resource: p + "ws-1"}},
		{"GET", "/metrics", auth.Request{Action: "orrery:GetMetrics", Resource: "*"}},
		{"GET", "/debug/pprof/profile", auth.Request{Action: "orrery:GetProfile", Resource: "*"}},
	} {
		got = auth.Request{}
		mux.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(c.method, c.path, nil))
		require.Equal(t, c.want, got, c.method+" "+c.path)
	}
	// The anomaly detector operations are audited, as every control-plane
	// mutation.
	detectors := 0
	for _, rt := range s.table() {
		if strings.Contains(rt.Action, "AnomalyDetector") {
			detectors++
			require.True(t, rt.Audited, rt.Pattern)
		}
	}
	require.Equal(t, 5, detectors)
}

// TestDefaultServerConfig: the defaults are valid, and the flags
// registered over them keep them.
func TestDefaultServerConfig(t *testing.T) {
	c := DefaultServerConfig()
	require.NoError(t, c.Validate())
	require.Len(t, c.Alerting.DenyReceiverNetworks, 3)
	def := DefaultServerConfig()
	fs := flag.NewFlagSet("orrery server", flag.ContinueOnError)
	c = DefaultServerConfig()
	c.RegisterFlags(fs)
	require.NoError(t, fs.Parse(nil))
	require.Equal(t, def, c, "registering the flags changes no default")
	require.NoError(t, fs.Parse([]string{"--auth.cache-ttl=1s", "--limits.retention=30d", "--rules.poll-interval=5s", "--alertmanager.deny-receiver-networks="}))
	require.NoError(t, c.Validate())
	require.Equal(t, time.Second, c.AuthCacheTTL)
	require.Equal(t, "30d", c.Limits.RetentionPeriod.String())
	require.Equal(t, 5*time.Second, c.Ruler.PollInterval)
	require.Empty(t, c.Alerting.DenyReceiverNetworks)
	c.Engine = "bogus"
	require.ErrorContains(t, c.Validate(), `--engine "bogus"`)
}

// TestBadNetworkFlag: a network that does not parse is reported by
// Validate, naming the flag.
func TestBadNetworkFlag(t *testing.T) {
	c := DefaultServerConfig()
	fs := flag.NewFlagSet("orrery server", flag.ContinueOnError)
	c.RegisterFlags(fs)
	require.NoError(t, fs.Parse([]string{"--alertmanager.deny-receiver-networks", "10.0.0.0/33"}))
	require.ErrorContains(t, c.Validate(), "--alertmanager.deny-receiver-networks: network \"10.0.0.0/33\"")
}

// TestOTLPTranslationCacheFlag: the OTLP translation cache is on by
// default, 0 turns it off, and a negative size is reported by Validate,
// naming the flag.
func TestOTLPTranslationCacheFlag(t *testing.T) {
	for args, want := range map[string]string{"": "", "--otlp.translation-cache=0": "", "--otlp.translation-cache=-1": "--otlp.translation-cache -1"} {
		c := DefaultServerConfig()
		fs := flag.NewFlagSet("orrery server", flag.ContinueOnError)
		c.RegisterFlags(fs)
		require.NoError(t, fs.Parse(strings.Fields(args)))
		if want == "" {
			require.NoError(t, c.Validate(), args)
			continue
		}
		require.ErrorContains(t, c.Validate(), want)
	}
	require.Positive(t, DefaultServerConfig().OTLP.TranslationCache)
}
