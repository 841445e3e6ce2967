package app

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/orrery-dev/orrery/internal/auth"
)

// HTTPConfig bounds what one client can hold of a listener. Zero fields
// take the defaults of DefaultHTTPConfig.
type HTTPConfig struct {
	// ReadHeaderTimeout bounds reading a request's headers.
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds reading a whole request, body included: remote
	// write senders give up after 30 s (Prometheus' remote_timeout).
	ReadTimeout time.Duration
	// WriteTimeout bounds a request from its headers to the end of its
	// answer; it must exceed the longest query timeout.
	WriteTimeout time.Duration
	// IdleTimeout closes keep-alive connections idle this long.
	IdleTimeout time.Duration
	// MaxConcurrentRequests caps the requests served at once; beyond it
	// requests get 503 with Retry-After. Health and readiness probes are
	// not counted.
	MaxConcurrentRequests int
}

// DefaultHTTPConfig returns the defaults of the --web.* flags.
func DefaultHTTPConfig() HTTPConfig {
	return HTTPConfig{ReadHeaderTimeout: 10 * time.Second, ReadTimeout: time.Minute, WriteTimeout: 5 * time.Minute,
		IdleTimeout: 2 * time.Minute, MaxConcurrentRequests: 512}
}

func (c HTTPConfig) withDefaults() HTTPConfig {
	d := DefaultHTTPConfig()
	if c.ReadHeaderTimeout <= 0 {
		c.ReadHeaderTimeout = d.ReadHeaderTimeout
	}
	if c.ReadTimeout <= 0 {
		c.ReadTimeout = d.ReadTimeout
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = d.WriteTimeout
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = d.IdleTimeout
	}
	if c.MaxConcurrentRequests <= 0 {
		c.MaxConcurrentRequests = d.MaxConcurrentRequests
	}
	return c
}

// newHTTPServer returns an http.Server for h with cfg's timeouts and
// concurrency cap. listener names it in the metric of refused requests.
func newHTTPServer(h http.Handler, cfg HTTPConfig, listener string, reg prometheus.Registerer) *http.Server {
	cfg = cfg.withDefaults()
	refused := promauto.With(reg).NewCounter(prometheus.CounterOpts{Name: "orrery_http_requests_refused_total",
		Help: "Requests answered 503 because the listener served --web.max-concurrent-requests already.", ConstLabels: prometheus.Labels{"listener": listener}})
	return &http.Server{
		Handler:           limitConcurrency(h, cfg.MaxConcurrentRequests, refused),
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		ReadTimeout:       cfg.ReadTimeout,
		WriteTimeout:      cfg.WriteTimeout,
		IdleTimeout:       cfg.IdleTimeout,
	}
}

// limitConcurrency serves at most n requests at once and answers the
// others 503 with Retry-After at once, rather than queueing them: a queue
// would hold their connections and memory all the same. /-/healthy and
// /-/ready are always served, so that probes do not restart a busy server.
func limitConcurrency(next http.Handler, n int, refused prometheus.Counter) http.Handler {
	slots := make(chan struct{}, n)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/-/healthy" || r.URL.Path == "/-/ready" {
			next.ServeHTTP(w, r)
			return
		}
		select {
		case slots <- struct{}{}:
		default:
			refused.Inc()
			w.Header().Set("Retry-After", "1")
			// The body is not read: close rather than drain it.
			w.Header().Set("Connection", "close")
			http.Error(w, "the server is serving as many requests as it allows at once (--web.max-concurrent-requests); retry later", http.StatusServiceUnavailable)
			return
		}
		defer func() { <-slots }()
		next.ServeHTTP(w, r)
	})
}

// operator guards the server's own endpoints (/metrics, which names every
// workspace, and /debug/pprof/) with action on resource "*": with
// authentication on, only a key or token whose policy allows it reads them
// (the admin key does; a scraper gets a token allowing orrery:GetMetrics).
func (s *Server) operator(action string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.guard != nil {
			if _, err := s.guard.Check(r, auth.Request{Action: action, Resource: "*"}); err != nil {
				auth.WriteError(w, err)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}
