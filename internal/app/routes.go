package app

import (
	"fmt"
	"net/http"
	"net/http/pprof"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/orrery-dev/orrery/internal/auth"
	"github.com/orrery-dev/orrery/internal/catalog"
	"github.com/orrery-dev/orrery/internal/workspace"
)

// scope says how the middleware treats a route's requests.
type scope uint8

const (
	// open routes are served as they are: probes, and the web UI, which
	// authenticates its users with sessions of its own.
	open scope = iota
	// operator routes are the server's own endpoints (/metrics, pprof,
	// reload), authorized on resource "*".
	operator
	// control routes are the control plane: AMP's workspace API and
	// Orrery's keys, tokens, users and dashboards.
	control
	// data routes act on the workspace in their path: remote write, the
	// query and Alertmanager APIs. Their middleware puts the workspace into
	// the request context; besides it, only the web UI does, for the
	// requests of its users it has authorized itself.
	data
)

// route is a line of the route table: an auth.Route and how it is served.
type route struct {
	auth.Route
	scope scope
	// maxBody bounds the body (0: not bounded here; the handler or
	// authentication bounds it). For data routes, ingest means the
	// workspace's max_request_bytes.
	maxBody int64
	ingest  bool
}

// table is the server's route table: every endpoint, the action it needs,
// its resource, whether it is audited, and its handler. serve reads it; a
// path it does not list is a 404, never a guessed action.
func (s *Server) table() []route {
	var t []route
	add := func(sc scope, maxBody int64, rs ...auth.Route) {
		for _, r := range rs {
			t = append(t, route{Route: r, scope: sc, maxBody: maxBody})
		}
	}
	add(open, 0,
		auth.Route{Pattern: "GET /-/healthy", Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			_, _ = fmt.Fprintln(w, "Orrery is Healthy.")
		})},
		auth.Route{Pattern: "GET /-/ready", Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			_, _ = fmt.Fprintln(w, "Orrery is Ready.")
		})},
		auth.Route{Pattern: "GET /{$}", Handler: http.RedirectHandler("/ui/", http.StatusFound)},
	)
	add(open, controlPlaneMaxBody, auth.Route{Pattern: "/ui/", Handler: s.ui})

	op := func(pattern, action string, audited bool, h http.Handler) auth.Route {
		return auth.Route{Pattern: pattern, Action: action, Resource: auth.AnyResource, Audited: audited, Handler: h}
	}
	add(operator, 0,
		op("GET /debug/pprof/", "orrery:GetProfile", false, http.HandlerFunc(pprof.Index)),
		op("GET /debug/pprof/profile", "orrery:GetProfile", false, http.HandlerFunc(pprof.Profile)),
		op("GET /debug/pprof/trace", "orrery:GetProfile", false, http.HandlerFunc(pprof.Trace)),
		op("GET /debug/pprof/symbol", "orrery:GetProfile", false, http.HandlerFunc(pprof.Symbol)),
		op("GET /metrics", "orrery:GetMetrics", false, promhttp.HandlerFor(prometheus.Gatherers{s.reg, s.engine.metrics()}, promhttp.HandlerOpts{Registry: s.reg})),
		op("POST /-/reload", "orrery:ReloadConfiguration", true, http.HandlerFunc(s.serveReload)),
		op("PUT /-/reload", "orrery:ReloadConfiguration", true, http.HandlerFunc(s.serveReload)),
	)

	add(control, controlPlaneMaxBody, s.control.Routes()...)
	add(control, controlPlaneMaxBody, s.control.Keys(s.sealer).Routes()...)
	add(control, controlPlaneMaxBody, s.ui.AdminRoutes()...)
	// A scraper's health, in the shape of Prometheus' /api/v1/targets:
	// reading it is describing the scraper.
	add(control, 0, auth.Route{Pattern: "GET /scrapers/{scraperId}/api/v1/targets", Action: "aps:DescribeScraper", Resource: auth.Scraper,
		Handler: http.HandlerFunc(s.scrapers.ServeTargets)})

	ws := func(pattern, action string, h http.Handler) auth.Route {
		return auth.Route{Pattern: pattern, Action: action, Resource: auth.Workspace, Handler: h}
	}
	const v1 = "/workspaces/{id}/api/v1/"
	for _, r := range []auth.Route{
		ws("POST "+v1+"remote_write", "aps:RemoteWrite", s.ingest),
		ws("POST "+v1+"otlp/v1/metrics", "aps:RemoteWrite", s.otlp),
	} {
		t = append(t, route{Route: r, scope: data, ingest: true})
	}
	var q []auth.Route
	both := func(path, action string) {
		q = append(q, ws("GET "+v1+path, action, s.engine.queries()), ws("POST "+v1+path, action, s.engine.queries()))
	}
	// The Prometheus v1 API as the embedded engine serves it (and Cortex
	// does below /prometheus), with AMP's actions.
	for _, p := range []string{"query", "query_range", "query_exemplars", "format_query", "parse_query",
		"search/metric_names", "search/label_names", "search/label_values"} {
		both(p, "aps:QueryMetrics")
	}
	both("labels", "aps:GetLabels")
	q = append(q, ws("GET "+v1+"label/{name}/values", "aps:GetLabels", s.engine.queries()))
	both("series", "aps:GetSeries")
	q = append(q, ws("GET "+v1+"metadata", "aps:GetMetricMetadata", s.engine.queries()))
	q = append(q, ws("GET "+v1+"rules", "aps:ListRules", s.engine.queries()))
	q = append(q, ws("GET "+v1+"alerts", "aps:ListAlerts", s.engine.queries()))
	for _, p := range []string{"status/config", "status/runtimeinfo", "status/buildinfo", "status/flags", "status/tsdb",
		"status/tsdb/blocks", "status/self_metrics", "status/walreplay", "features", "notifications", "notifications/live",
		"scrape_pools", "scrape_pools/config", "targets", "targets/metadata", "targets/relabel_steps", "alertmanagers", "openapi.yaml"} {
		q = append(q, ws("GET "+v1+p, "aps:QueryMetrics", s.engine.queries()))
	}
	q = append(q, ws("POST "+v1+"read", "aps:QueryMetrics", s.engine.queries()))
	for _, p := range []string{"delete_series", "clean_tombstones", "snapshot"} {
		for _, m := range []string{"POST ", "PUT "} {
			r := ws(m+v1+"admin/tsdb/"+p, "aps:DeleteSeries", s.engine.queries())
			r.Audited = true
			q = append(q, r)
		}
	}
	add(data, queryMaxBody, q...)

	const am = "/workspaces/{id}/alertmanager/api/v2/"
	silence := func(pattern, action string) auth.Route {
		r := ws(pattern, action, s.engine.alertmanager())
		r.Audited = true
		return r
	}
	add(data, alertmanagerMaxBody,
		ws("GET "+am+"alerts", "aps:ListAlertManagerAlerts", s.engine.alertmanager()),
		ws("POST "+am+"alerts", "aps:CreateAlertManagerAlerts", s.engine.alertmanager()),
		ws("GET "+am+"alerts/groups", "aps:ListAlertManagerAlertGroups", s.engine.alertmanager()),
		ws("GET "+am+"silences", "aps:ListAlertManagerSilences", s.engine.alertmanager()),
		silence("POST "+am+"silences", "aps:PutAlertManagerSilences"),
		ws("GET "+am+"silence/{silence}", "aps:GetAlertManagerSilence", s.engine.alertmanager()),
		silence("DELETE "+am+"silence/{silence}", "aps:DeleteAlertManagerSilence"),
		ws("GET "+am+"receivers", "aps:ListAlertManagerReceivers", s.engine.alertmanager()),
		ws("GET "+am+"status", "aps:GetAlertManagerStatus", s.engine.alertmanager()),
	)
	return t
}

// routes returns the server's handler: the route table, each route behind
// the middleware its scope needs.
func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	for _, rt := range s.table() {
		mux.Handle(rt.Pattern, s.serve(rt))
	}
	return mux
}

// serve is the one middleware: it bounds the body, authenticates and
// authorizes the request with the route's action and resource, puts the
// principal (and for data routes the workspace) into the context, and
// audits what the route says to audit.
func (s *Server) serve(rt route) http.Handler {
	if rt.scope == open {
		if rt.maxBody > 0 {
			return bodyLimited(rt.Handler, rt.maxBody)
		}
		return rt.Handler
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		what := auth.Request{Action: rt.Action, Resource: rt.ARN(r, s.arnPrefix()), MaxBodyBytes: rt.maxBody, SignedBody: rt.SignedBody(),
			Workspace: rt.PolicyWorkspace(r, s.arnPrefix()), Shared: rt.scope == data}
		var id workspace.ID
		if rt.scope == data {
			var err error
			if id, err = workspace.ParseID(r.PathValue("id")); err != nil {
				http.Error(w, err.Error(), http.StatusNotFound)
				return
			}
			if rt.ingest {
				what.MaxBodyBytes = int64(s.overrides.Limits(id).MaxRequestBytes)
				// Ingest copies what it keeps of a request: the signed
				// body's buffer is reused once it has answered.
				what.PoolBody = true
				defer func() {
					if b, ok := r.Body.(*auth.Body); ok {
						b.Release()
					}
				}()
			}
		}
		if what.MaxBodyBytes > 0 && !limitBody(w, r, what.MaxBodyBytes) {
			return
		}
		who := "anonymous"
		if s.guard != nil {
			p, err := s.guard.Authorize(r, what)
			if err != nil {
				if rt.scope == control {
					s.audit(r, "", what, http.StatusForbidden)
				}
				auth.WriteError(w, err)
				return
			}
			who = p.ID
			r = r.WithContext(auth.NewContext(r.Context(), p))
			if rt.scope == data && !s.active(w, r, id) {
				return
			}
		}
		if rt.scope == data {
			r = r.WithContext(workspace.NewContext(r.Context(), id))
		}
		if !rt.Audited {
			rt.Handler.ServeHTTP(w, r)
			return
		}
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		ctx, note := auth.WithAudit(r.Context())
		rt.Handler.ServeHTTP(sw, r.WithContext(ctx))
		what.Resource = note.Resource(what.Resource)
		s.audit(r, who, what, sw.status)
	})
}

// active answers 404 for a workspace that is not active: with
// authentication on, only workspaces made through the control plane exist.
func (s *Server) active(w http.ResponseWriter, r *http.Request, id workspace.ID) bool {
	var statuses *auth.Cache[string] // nil: no caching.
	if s.caches != nil {
		statuses = s.caches.Workspaces
	}
	status, _, err := statuses.Get(r.Context(), id.String(), s.workspaceStatus)
	if err != nil || status != catalog.StatusActive {
		w.Header().Set("X-Amzn-ErrorType", "ResourceNotFoundException")
		http.Error(w, fmt.Sprintf("workspace %s does not exist or is being deleted", id), http.StatusNotFound)
		return false
	}
	return true
}
