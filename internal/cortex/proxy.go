package cortex

import (
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/url"
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

// ServeHTTP implements http.Handler.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if _, ok := workspace.FromContext(r.Context()); !ok {
		http.Error(w, "no workspace in request context", http.StatusInternalServerError)
		return
	}
	p.rp.ServeHTTP(w, r)
}
