package cortex

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/orrery-dev/orrery/internal/failure"
	"github.com/orrery-dev/orrery/internal/workspace"
)

// TenantHeader carries the tenant of every request Cortex serves.
const TenantHeader = "X-Scope-OrgID"

// Config names the Cortex cluster.
type Config struct {
	// URL is the base URL of Cortex's HTTP API (in a microservices
	// deployment, a gateway routing /api/v1/push to the distributors,
	// /prometheus to the query frontends, /api/v1/rules to the rulers and
	// /alertmanager and /api/v1/alerts to the Alertmanagers).
	URL string
	// Timeout bounds one call to Cortex other than a proxied query
	// (default 30 s).
	Timeout time.Duration
}

// Client calls Cortex's HTTP APIs on behalf of workspaces. It is safe for
// concurrent use.
type Client struct {
	base     *url.URL
	http     *http.Client
	timeout  time.Duration
	requests *prometheus.CounterVec   // op, code.
	duration *prometheus.HistogramVec // op.
}

// New returns a client of the cluster at cfg.URL. It makes no request.
// Its requests are counted in orrery_cortex_requests_total{op,code} and
// timed in orrery_cortex_request_duration_seconds{op} on reg (nil: not
// registered); code is "error" when Cortex did not answer.
func New(cfg Config, reg prometheus.Registerer) (*Client, error) {
	if cfg.URL == "" {
		return nil, errors.New("--cortex.url is empty; name Cortex's HTTP API, e.g. http://cortex:9009")
	}
	u, err := url.Parse(strings.TrimSuffix(cfg.URL, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("--cortex.url %q is not an http(s) URL", cfg.URL)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 256
	f := promauto.With(reg)
	c := &Client{base: u, timeout: cfg.Timeout,
		requests: f.NewCounterVec(prometheus.CounterOpts{Name: "orrery_cortex_requests_total",
			Help: "Requests to Cortex by operation (push, query, alertmanager, rule and alertmanager configuration) and status code."}, []string{"op", "code"}),
		duration: f.NewHistogramVec(prometheus.HistogramOpts{Name: "orrery_cortex_request_duration_seconds",
			Help:    "Time until Cortex's answer headers, by operation.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 9)}, []string{"op"}),
	}
	c.http = &http.Client{Transport: &instrumented{next: tr, c: c}}
	return c, nil
}

// instrumented counts and times requests by the operation in their
// context (opKey), "other" if none.
type instrumented struct {
	next http.RoundTripper
	c    *Client
}

type opKey struct{}

func withOp(ctx context.Context, op string) context.Context {
	return context.WithValue(ctx, opKey{}, op)
}

func (t *instrumented) RoundTrip(r *http.Request) (*http.Response, error) {
	op, _ := r.Context().Value(opKey{}).(string)
	if op == "" {
		op = "other"
	}
	start := time.Now()
	resp, err := t.next.RoundTrip(r)
	t.c.duration.WithLabelValues(op).Observe(time.Since(start).Seconds())
	code := "error"
	if err == nil {
		code = strconv.Itoa(resp.StatusCode)
	}
	t.c.requests.WithLabelValues(op, code).Inc()
	return resp, err
}

// URL returns the base URL.
func (c *Client) URL() *url.URL { u := *c.base; return &u }

// Error is an answer of Cortex other than 2xx, or a failure to reach it.
type Error struct {
	Op   string // e.g. "push", "set rule group".
	Code int    // Cortex's status code; 0 if Cortex was not reached.
	Msg  string
}

func (e *Error) Error() string {
	if e.Code == 0 {
		return fmt.Sprintf("cortex %s: %s", e.Op, e.Msg)
	}
	return fmt.Sprintf("cortex %s: %d %s: %s", e.Op, e.Code, http.StatusText(e.Code), e.Msg)
}

// fail returns an *Error wrapped in the failure kind its status means
// (failure.FromStatus): Cortex's 4xx keep their meaning, anything else
// (5xx, Cortex unreachable) is Unavailable, so senders retry.
func fail(op string, code int, msg string) error {
	return failure.E(failure.FromStatus(code), "", &Error{Op: op, Code: code, Msg: msg})
}

// do makes one request as tenant id and returns the body of a 2xx answer.
// A 404 is returned as an *Error like any other status.
func (c *Client) do(ctx context.Context, op string, id workspace.ID, method, path string, body []byte, hdr http.Header) ([]byte, error) {
	_, b, err := c.doStatus(ctx, op, id, method, path, body, hdr)
	return b, err
}

// doStatus is do that also returns the 2xx status.
func (c *Client) doStatus(ctx context.Context, op string, id workspace.ID, method, path string, body []byte, hdr http.Header) (int, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(withOp(ctx, op), method, c.base.String()+path, r)
	if err != nil {
		return 0, nil, fail(op, 0, err.Error())
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	req.Header.Set(TenantHeader, id.String())
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, nil, fail(op, 0, err.Error())
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return 0, nil, fail(op, 0, "read answer: "+err.Error())
	}
	if resp.StatusCode/100 != 2 {
		return 0, nil, fail(op, resp.StatusCode, strings.TrimSpace(string(b)))
	}
	return resp.StatusCode, b, nil
}

// isNotFound reports whether err is Cortex's 404.
func isNotFound(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Code == http.StatusNotFound
}
