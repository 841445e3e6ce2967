package cortex

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/url"
	"path"
	"strings"
	"time"

	"github.com/prometheus/common/model"

	"github.com/orrery-dev/orrery/internal/workspace"
)

// Proxy forwards a workspace's requests below /workspaces/{id}/<From> to
// Cortex's <To> as the workspace's tenant, e.g. the query API from
// "api/v1/" to "/prometheus/api/v1/". The workspace comes from the request
// context (it must have passed the auth middleware); the caller's
// credentials (Authorization, SigV4 headers and query parameters) and any
// X-Scope-OrgID it sent are not forwarded. Answers pass through unchanged.
type Proxy struct {
	rp       *httputil.ReverseProxy
	from, to string
	limits   workspace.LimitsSource
}

// WithQueryTimeout makes the proxy bound the queries it forwards (query
// and query_range) by their workspace's query_timeout, with Cortex's
// timeout parameter: a request without one, or with a longer one, gets the
// workspace's.
func (p *Proxy) WithQueryTimeout(limits workspace.LimitsSource) *Proxy {
	p.limits = limits
	return p
}

// queryTimeout sets q's timeout to the workspace's where it is longer.
func (p *Proxy) queryTimeout(id workspace.ID, path string, q url.Values) {
	if p.limits == nil || !(strings.HasSuffix(path, "/query") || strings.HasSuffix(path, "/query_range")) {
		return
	}
	lim := time.Duration(p.limits.Limits(id).QueryTimeout)
	if lim <= 0 {
		return
	}
	if d, err := model.ParseDuration(q.Get("timeout")); err == nil && time.Duration(d) > 0 && time.Duration(d) <= lim {
		return
	}
	q.Set("timeout", model.Duration(lim).String())
}

// NewProxy returns a proxy from the workspace path prefix from to Cortex's
// path prefix to; op names its requests in the client's metrics.
func NewProxy(c *Client, op, from, to string, logger *slog.Logger) *Proxy {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	p := &Proxy{from: from, to: to}
	base := c.URL()
	p.rp = &httputil.ReverseProxy{
		Transport: c.http.Transport,
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out = pr.Out.WithContext(withOp(pr.Out.Context(), op))
			id, _ := workspace.FromContext(pr.In.Context())
			rest := strings.TrimPrefix(pr.In.URL.Path, "/workspaces/"+id.String()+"/"+from)
			pr.Out.URL.Scheme, pr.Out.URL.Host = base.Scheme, base.Host
			pr.Out.URL.Path = base.Path + to + rest
			pr.Out.URL.RawPath = ""
			q := pr.Out.URL.Query()
			for k := range q {
				if strings.HasPrefix(strings.ToLower(k), "x-amz-") {
					q.Del(k)
				}
			}
			p.queryTimeout(id, pr.Out.URL.Path, q)
			pr.Out.URL.RawQuery = q.Encode()
			pr.Out.Host = base.Host
			for k := range pr.Out.Header {
				if strings.HasPrefix(strings.ToLower(k), "x-amz-") {
					pr.Out.Header.Del(k)
				}
			}
			pr.Out.Header.Del("Authorization")
			pr.Out.Header.Del("Cookie")
			pr.Out.Header.Set(TenantHeader, id.String())
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			id, _ := workspace.FromContext(r.Context())
			logger.Warn("proxy to cortex; answered 502", "workspace", id, "path", r.URL.Path, "err", err)
			http.Error(w, "the Cortex engine did not answer: "+err.Error(), http.StatusBadGateway)
		},
	}
	return p
}

// ServeHTTP implements http.Handler. It forwards only the routes Orrery
// serves (servedRoutes), on paths that are already clean: a path with
// "..", "." or empty segments (which %2F-escaped slashes can smuggle past
// the router) is refused with 404 before anything is sent.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id, ok := workspace.FromContext(r.Context())
	if !ok {
		http.Error(w, "no workspace in request context", http.StatusInternalServerError)
		return
	}
	rest, ok := strings.CutPrefix(r.URL.Path, "/workspaces/"+id.String()+"/"+p.from)
	if !ok || path.Clean("/"+rest) != "/"+rest || !served(p.from, rest) {
		http.Error(w, fmt.Sprintf("%s is not an API Orrery serves", r.URL.Path), http.StatusNotFound)
		return
	}
	p.rp.ServeHTTP(w, r)
}

// servedRoutes are the paths, below each proxy's prefix, that the proxies
// forward: the query API's and the Alertmanager API's of the embedded
// engine; * stands for one path segment.
var servedRoutes = map[string][]string{
	"api/v1/": {"query", "query_range", "query_exemplars", "series", "labels", "label/*/values", "metadata",
		"format_query", "parse_query", "read", "status/buildinfo", "status/tsdb", "status/tsdb/blocks", "rules", "alerts",
		"admin/tsdb/delete_series", "admin/tsdb/clean_tombstones", "admin/tsdb/snapshot"},
	"alertmanager/api/": {"v2/alerts", "v2/alerts/groups", "v2/silences", "v2/silence/*", "v2/receivers", "v2/status"},
}

// served reports whether rest, a path below the proxy prefix from, is one
// of its servedRoutes. A prefix without a list forwards every path.
func served(from, rest string) bool {
	routes, ok := servedRoutes[from]
	if !ok {
		return true
	}
	got := strings.Split(rest, "/")
	for _, route := range routes {
		want := strings.Split(route, "/")
		if len(want) != len(got) {
			continue
		}
		match := true
		for i := range want {
			if want[i] != got[i] && (want[i] != "*" || got[i] == "") {
				match = false
				break
			}
		}
		if match {
			return true
		}
	}
	return false
}
