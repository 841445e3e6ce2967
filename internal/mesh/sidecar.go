package mesh

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptrace"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Stat label names, as Envoy's default tag extraction names them.
const (
	labelCluster   = "envoy_cluster_name"
	labelPrefix    = "envoy_http_conn_manager_prefix"
	labelCode      = "envoy_response_code"
	labelCodeClass = "envoy_response_code_class"
	labelListener  = "envoy_listener_address"
)

// Connection manager stat prefixes, as App Mesh's Envoy names them.
const (
	prefixIngress = "ingress"
	prefixEgress  = "egress"
	prefixAdmin   = "admin"
)

// Sidecar is one service's proxy, as Envoy in App Mesh: an ingress
// listener in front of the local service (cluster local_<service>), one
// egress listener per upstream service (cluster <upstream>), and an admin
// listener serving /stats/prometheus. Every stat comes from the traffic it
// proxies: connections are counted on the sockets, requests as they pass.
type Sidecar struct {
	service string
	stats   *stats
	logger  *slog.Logger
	start   time.Time

	local    *cluster
	clusters map[string]*cluster // By upstream service name.

	ingress, admin net.Listener
	egress         map[string]net.Listener
	servers        []*http.Server
}

// cluster proxies requests to one upstream address and keeps Envoy's
// cluster stats.
type cluster struct {
	name      string
	addr      string
	stats     *stats
	transport *http.Transport
	timeout   time.Duration
	retries   int
	healthy   atomic.Bool
}

func newCluster(name, addr string, st *stats, timeout time.Duration, retries int) *cluster {
	c := &cluster{name: name, addr: addr, stats: st, timeout: timeout, retries: retries}
	kv := []string{labelCluster, name}
	st.declare(counter, kv, "envoy_cluster_upstream_rq_total", "envoy_cluster_upstream_rq_completed",
		"envoy_cluster_upstream_rq_retry", "envoy_cluster_upstream_rq_retry_success", "envoy_cluster_upstream_rq_timeout",
		"envoy_cluster_upstream_rq_pending_total", "envoy_cluster_upstream_rq_pending_overflow", "envoy_cluster_upstream_rq_cancelled",
		"envoy_cluster_upstream_rq_rx_reset", "envoy_cluster_upstream_rq_tx_reset", "envoy_cluster_upstream_rq_per_try_timeout",
		"envoy_cluster_upstream_cx_total", "envoy_cluster_upstream_cx_http1_total", "envoy_cluster_upstream_cx_connect_fail",
		"envoy_cluster_upstream_cx_connect_timeout", "envoy_cluster_upstream_cx_destroy", "envoy_cluster_upstream_cx_destroy_local",
		"envoy_cluster_upstream_cx_destroy_remote", "envoy_cluster_upstream_cx_none_healthy",
		"envoy_cluster_upstream_cx_rx_bytes_total", "envoy_cluster_upstream_cx_tx_bytes_total",
		"envoy_cluster_health_check_attempt", "envoy_cluster_health_check_success", "envoy_cluster_health_check_failure")
	st.declare(gauge, kv, "envoy_cluster_upstream_rq_active", "envoy_cluster_upstream_rq_pending_active",
		"envoy_cluster_upstream_cx_active", "envoy_cluster_membership_healthy", "envoy_cluster_membership_degraded",
		"envoy_cluster_membership_total", "envoy_cluster_max_host_weight")
	for _, class := range []string{"1", "2", "3", "4", "5"} {
		st.declare(counter, []string{labelCodeClass, class, labelCluster, name}, "envoy_cluster_upstream_rq_xx")
	}
	st.set("envoy_cluster_membership_total", 1, kv...)
	st.set("envoy_cluster_max_host_weight", 1, kv...)
	c.transport = &http.Transport{
		DialContext:         c.dial,
		MaxIdleConnsPerHost: 32,
		IdleConnTimeout:     time.Minute,
		DisableCompression:  true,
	}
	return c
}

// dial opens an upstream connection, counting it.
func (c *cluster) dial(ctx context.Context, network, _ string) (net.Conn, error) {
	kv := []string{labelCluster, c.name}
	start := time.Now()
	conn, err := (&net.Dialer{Timeout: time.Second}).DialContext(ctx, network, c.addr)
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			c.stats.inc("envoy_cluster_upstream_cx_connect_timeout", kv...)
		}
		c.stats.inc("envoy_cluster_upstream_cx_connect_fail", kv...)
		return nil, err
	}
	c.stats.observe("envoy_cluster_upstream_cx_connect_ms", msSince(start), kv...)
	c.stats.inc("envoy_cluster_upstream_cx_total", kv...)
	c.stats.inc("envoy_cluster_upstream_cx_http1_total", kv...)
	c.stats.add("envoy_cluster_upstream_cx_active", gauge, 1, kv...)
	return &countedConn{Conn: conn, opened: start, onRead: func(n int) {
		c.stats.add("envoy_cluster_upstream_cx_rx_bytes_total", counter, float64(n), kv...)
	}, onWrite: func(n int) {
		c.stats.add("envoy_cluster_upstream_cx_tx_bytes_total", counter, float64(n), kv...)
	}, onClose: func(opened time.Time) {
		c.stats.add("envoy_cluster_upstream_cx_active", gauge, -1, kv...)
		c.stats.inc("envoy_cluster_upstream_cx_destroy", kv...)
		c.stats.inc("envoy_cluster_upstream_cx_destroy_local", kv...)
		c.stats.observe("envoy_cluster_upstream_cx_length_ms", msSince(opened), kv...)
	}}, nil
}

// retryable reports whether an attempt's error is a connect failure or a
// reset, which Envoy's App Mesh retry policy retries.
func retryable(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}

// forward proxies one request to the cluster, retrying connect failures
// and resets, and answers as Envoy does when the upstream cannot answer:
// 503 for connection failures, 504 when the route timeout passes.
func (c *cluster) forward(w http.ResponseWriter, r *http.Request) {
	kv := []string{labelCluster, c.name}
	start := time.Now()
	c.stats.inc("envoy_cluster_upstream_rq_total", kv...)
	c.stats.add("envoy_cluster_upstream_rq_active", gauge, 1, kv...)
	defer c.stats.add("envoy_cluster_upstream_rq_active", gauge, -1, kv...)
	if !c.healthy.Load() {
		c.stats.inc("envoy_cluster_upstream_cx_none_healthy", kv...)
	}

	ctx, cancel := context.WithTimeout(r.Context(), c.timeout)
	defer cancel()
	var body []byte
	if r.Body != nil {
		b, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			c.stats.inc("envoy_cluster_upstream_rq_cancelled", kv...)
			http.Error(w, "downstream read failed", http.StatusBadRequest)
			return
		}
		body = b
	}
	var (
		resp *http.Response
		err  error
	)
	for attempt := 0; ; attempt++ {
		var pending atomic.Bool
		trace := &httptrace.ClientTrace{
			GetConn: func(string) {
				pending.Store(true)
				c.stats.add("envoy_cluster_upstream_rq_pending_active", gauge, 1, kv...)
			},
			GotConn: func(info httptrace.GotConnInfo) {
				if pending.CompareAndSwap(true, false) {
					c.stats.add("envoy_cluster_upstream_rq_pending_active", gauge, -1, kv...)
				}
				if !info.Reused {
					c.stats.inc("envoy_cluster_upstream_rq_pending_total", kv...)
				}
			},
		}
		out, rerr := http.NewRequestWithContext(httptrace.WithClientTrace(ctx, trace), r.Method, "http://"+c.addr+r.URL.RequestURI(), strings.NewReader(string(body)))
		if rerr != nil {
			http.Error(w, rerr.Error(), http.StatusBadRequest)
			return
		}
		out.Header = r.Header.Clone()
		out.Header.Del("Connection")
		out.Header.Set("X-Forwarded-Proto", "http")
		if host, _, serr := net.SplitHostPort(r.RemoteAddr); serr == nil {
			out.Header.Set("X-Forwarded-For", host)
		}
		out.Header.Set("X-Envoy-Expected-Rq-Timeout-Ms", strconv.FormatInt(c.timeout.Milliseconds(), 10))
		if attempt > 0 {
			out.Header.Set("X-Envoy-Attempt-Count", strconv.Itoa(attempt+1))
		}
		resp, err = c.transport.RoundTrip(out)
		if pending.CompareAndSwap(true, false) {
			c.stats.add("envoy_cluster_upstream_rq_pending_active", gauge, -1, kv...)
		}
		if err == nil {
			if attempt > 0 {
				c.stats.inc("envoy_cluster_upstream_rq_retry_success", kv...)
			}
			break
		}
		if ctx.Err() != nil || attempt >= c.retries || !retryable(err) {
			break
		}
		c.stats.inc("envoy_cluster_upstream_rq_retry", kv...)
		time.Sleep(time.Duration(25*(attempt+1)) * time.Millisecond) // Envoy's base retry back-off.
	}
	if err != nil {
		code, msg := http.StatusServiceUnavailable, "upstream connect error or disconnect/reset before headers. reset reason: connection failure"
		switch {
		case errors.Is(ctx.Err(), context.DeadlineExceeded):
			code, msg = http.StatusGatewayTimeout, "upstream request timeout"
			c.stats.inc("envoy_cluster_upstream_rq_timeout", kv...)
		case r.Context().Err() != nil:
			c.stats.inc("envoy_cluster_upstream_rq_cancelled", kv...)
		default:
			c.stats.inc("envoy_cluster_upstream_rq_rx_reset", kv...)
		}
		c.chargeCode(code)
		c.stats.inc("envoy_cluster_upstream_rq_completed", kv...)
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(code)
		_, _ = io.WriteString(w, msg)
		return
	}
	defer func() { _ = resp.Body.Close() }()
	for k, vs := range resp.Header {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	w.Header().Set("X-Envoy-Upstream-Service-Time", strconv.FormatInt(time.Since(start).Milliseconds(), 10))
	w.WriteHeader(resp.StatusCode)
	_, _ = io.Copy(w, resp.Body)
	c.chargeCode(resp.StatusCode)
	c.stats.inc("envoy_cluster_upstream_rq_completed", kv...)
	c.stats.observe("envoy_cluster_upstream_rq_time", msSince(start), kv...)
}

// chargeCode counts a response code as Envoy's router does.
func (c *cluster) chargeCode(code int) {
	c.stats.inc("envoy_cluster_upstream_rq", labelCode, strconv.Itoa(code), labelCluster, c.name)
	c.stats.inc("envoy_cluster_upstream_rq_xx", labelCodeClass, strconv.Itoa(code/100), labelCluster, c.name)
}

// healthCheck connects to the upstream every interval until ctx ends,
// setting the cluster's membership as Envoy's TCP health checker does.
func (c *cluster) healthCheck(ctx context.Context, interval time.Duration) {
	kv := []string{labelCluster, c.name}
	check := func() {
		c.stats.inc("envoy_cluster_health_check_attempt", kv...)
		conn, err := (&net.Dialer{Timeout: interval}).DialContext(ctx, "tcp", c.addr)
		if err == nil {
			_ = conn.Close()
			c.stats.inc("envoy_cluster_health_check_success", kv...)
			c.healthy.Store(true)
			c.stats.set("envoy_cluster_membership_healthy", 1, kv...)
			return
		}
		c.stats.inc("envoy_cluster_health_check_failure", kv...)
		c.healthy.Store(false)
		c.stats.set("envoy_cluster_membership_healthy", 0, kv...)
	}
	check()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			check()
		}
	}
}

// countedConn counts a connection's bytes and reports its close once.
type countedConn struct {
	net.Conn
	opened          time.Time
	onRead, onWrite func(int)
	onClose         func(opened time.Time)
	once            sync.Once
}

func (c *countedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.onRead(n)
	}
	return n, err
}

func (c *countedConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	if n > 0 {
		c.onWrite(n)
	}
	return n, err
}

func (c *countedConn) Close() error {
	c.once.Do(func() { c.onClose(c.opened) })
	return c.Conn.Close()
}

// countedListener counts the downstream connections of one listener and
// its HTTP connection manager.
type countedListener struct {
	net.Listener
	stats  *stats
	prefix string
	addr   string // Envoy's listener address tag, e.g. 127.0.0.1_15000.
}

func newCountedListener(ln net.Listener, st *stats, prefix string) *countedListener {
	addr := strings.ReplaceAll(ln.Addr().String(), ":", "_")
	st.declare(counter, []string{labelListener, addr}, "envoy_listener_downstream_cx_total", "envoy_listener_downstream_cx_destroy")
	st.declare(gauge, []string{labelListener, addr}, "envoy_listener_downstream_cx_active")
	return &countedListener{Listener: ln, stats: st, prefix: prefix, addr: addr}
}

func (l *countedListener) Accept() (net.Conn, error) {
	conn, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	hcm, lst := []string{labelPrefix, l.prefix}, []string{labelListener, l.addr}
	l.stats.inc("envoy_listener_downstream_cx_total", lst...)
	l.stats.add("envoy_listener_downstream_cx_active", gauge, 1, lst...)
	l.stats.inc("envoy_http_downstream_cx_total", hcm...)
	l.stats.inc("envoy_http_downstream_cx_http1_total", hcm...)
	l.stats.add("envoy_http_downstream_cx_active", gauge, 1, hcm...)
	l.stats.add("envoy_http_downstream_cx_http1_active", gauge, 1, hcm...)
	return &countedConn{Conn: conn, opened: time.Now(), onRead: func(n int) {
		l.stats.add("envoy_http_downstream_cx_rx_bytes_total", counter, float64(n), hcm...)
	}, onWrite: func(n int) {
		l.stats.add("envoy_http_downstream_cx_tx_bytes_total", counter, float64(n), hcm...)
	}, onClose: func(opened time.Time) {
		l.stats.add("envoy_listener_downstream_cx_active", gauge, -1, lst...)
		l.stats.inc("envoy_listener_downstream_cx_destroy", lst...)
		l.stats.add("envoy_http_downstream_cx_active", gauge, -1, hcm...)
		l.stats.add("envoy_http_downstream_cx_http1_active", gauge, -1, hcm...)
		l.stats.inc("envoy_http_downstream_cx_destroy", hcm...)
		l.stats.observe("envoy_http_downstream_cx_length_ms", msSince(opened), hcm...)
		l.stats.observe("envoy_listener_downstream_cx_length_ms", msSince(opened), lst...)
	}}, nil
}

// statusRecorder remembers the status code a handler answered with.
type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.code == 0 {
		s.code = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(p []byte) (int, error) {
	if s.code == 0 {
		s.code = http.StatusOK
	}
	return s.ResponseWriter.Write(p)
}

// downstream counts the requests of an HTTP connection manager.
func downstream(st *stats, prefix, listener string, next http.Handler) http.Handler {
	hcm := []string{labelPrefix, prefix}
	st.declare(counter, hcm, "envoy_http_downstream_rq_total", "envoy_http_downstream_rq_completed",
		"envoy_http_downstream_rq_http1_total", "envoy_http_downstream_rq_timeout", "envoy_http_rq_total",
		"envoy_http_downstream_cx_total", "envoy_http_downstream_cx_destroy", "envoy_http_downstream_cx_http1_total",
		"envoy_http_downstream_cx_rx_bytes_total", "envoy_http_downstream_cx_tx_bytes_total")
	st.declare(gauge, hcm, "envoy_http_downstream_rq_active", "envoy_http_downstream_cx_active", "envoy_http_downstream_cx_http1_active")
	lst := strings.ReplaceAll(listener, ":", "_")
	for _, class := range []string{"1", "2", "3", "4", "5"} {
		st.declare(counter, []string{labelCodeClass, class, labelPrefix, prefix}, "envoy_http_downstream_rq_xx")
		st.declare(counter, []string{labelCodeClass, class, labelPrefix, prefix, labelListener, lst}, "envoy_listener_http_downstream_rq_xx")
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		st.inc("envoy_http_downstream_rq_total", hcm...)
		st.inc("envoy_http_downstream_rq_http1_total", hcm...)
		st.inc("envoy_http_rq_total", hcm...)
		st.add("envoy_http_downstream_rq_active", gauge, 1, hcm...)
		rec := &statusRecorder{ResponseWriter: w}
		next.ServeHTTP(rec, r)
		if rec.code == 0 {
			rec.code = http.StatusOK
		}
		if rec.code == http.StatusGatewayTimeout {
			st.inc("envoy_http_downstream_rq_timeout", hcm...)
		}
		class := strconv.Itoa(rec.code / 100)
		st.add("envoy_http_downstream_rq_active", gauge, -1, hcm...)
		st.inc("envoy_http_downstream_rq_completed", hcm...)
		st.inc("envoy_http_downstream_rq_xx", labelCodeClass, class, labelPrefix, prefix)
		st.inc("envoy_listener_http_downstream_rq_xx", labelCodeClass, class, labelPrefix, prefix, labelListener, lst)
		st.observe("envoy_http_downstream_rq_time", msSince(start), hcm...)
	})
}

func msSince(t time.Time) float64 { return float64(time.Since(t).Microseconds()) / 1000 }

// SidecarConfig configures a Sidecar.
type SidecarConfig struct {
	// Service is the name of the service the sidecar fronts.
	Service string
	// Local is the address of the local service.
	Local string
	// Upstreams maps each upstream service to the address of its
	// sidecar's ingress listener.
	Upstreams map[string]string
	// Timeout is the route timeout (Envoy's default is 15s). Retries is
	// how many times connect failures and resets are retried.
	Timeout time.Duration
	Retries int
}

// newSidecar builds a sidecar on listeners the caller opened: ingress,
// admin and one egress listener per upstream.
func newSidecar(cfg SidecarConfig, ingress, admin net.Listener, egress map[string]net.Listener, logger *slog.Logger) *Sidecar {
	st := newStats()
	s := &Sidecar{service: cfg.Service, stats: st, logger: logger, start: time.Now(), clusters: map[string]*cluster{},
		egress: egress}
	s.local = newCluster("local_"+cfg.Service, cfg.Local, st, cfg.Timeout, cfg.Retries)
	for up, addr := range cfg.Upstreams {
		s.clusters[up] = newCluster(up, addr, st, cfg.Timeout, cfg.Retries)
	}
	s.ingress = newCountedListener(ingress, st, prefixIngress)
	s.admin = newCountedListener(admin, st, prefixAdmin)
	for up, ln := range egress {
		s.egress[up] = newCountedListener(ln, st, prefixEgress)
	}
	st.set("envoy_server_live", 1)
	st.set("envoy_server_state", 0)
	st.set("envoy_server_hot_restart_epoch", 0)
	st.set("envoy_server_concurrency", float64(runtime.GOMAXPROCS(0)))
	return s
}

// StatsURL is the URL of the sidecar's Envoy exposition.
func (s *Sidecar) StatsURL() string { return "http://" + s.admin.Addr().String() + "/stats/prometheus" }

// AdminAddr is the address of the sidecar's admin listener.
func (s *Sidecar) AdminAddr() string { return s.admin.Addr().String() }

// IngressURL is the URL of the sidecar's ingress listener.
func (s *Sidecar) IngressURL() string { return "http://" + s.ingress.Addr().String() }

// egressURL is the URL the local service calls an upstream through.
func (s *Sidecar) egressURL(upstream string) string {
	return "http://" + s.egress[upstream].Addr().String()
}

// adminHandler serves /stats/prometheus, /ready and /server_info.
func (s *Sidecar) adminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /stats/prometheus", func(w http.ResponseWriter, _ *http.Request) {
		s.refreshServerStats()
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		if err := s.stats.write(w); err != nil {
			s.logger.Debug("write stats", "err", err)
		}
	})
	mux.HandleFunc("GET /ready", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "LIVE\n") })
	mux.HandleFunc("GET /server_info", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = fmt.Fprintf(w, "{\"state\":\"LIVE\",\"uptime_current_epoch\":\"%ds\",\"node\":{\"id\":%q}}\n",
			int(time.Since(s.start).Seconds()), s.service)
	})
	return downstream(s.stats, prefixAdmin, s.admin.Addr().String(), mux)
}

// refreshServerStats sets the server gauges that describe the process.
func (s *Sidecar) refreshServerStats() {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	s.stats.set("envoy_server_uptime", float64(int(time.Since(s.start).Seconds())))
	s.stats.set("envoy_server_memory_allocated", float64(m.HeapAlloc))
	s.stats.set("envoy_server_memory_heap_size", float64(m.HeapSys))
	s.stats.set("envoy_server_memory_physical_size", float64(m.Sys))
	var cx float64
	s.stats.mu.Lock()
	if f := s.stats.families["envoy_http_downstream_cx_active"]; f != nil {
		for _, se := range f.series {
			cx += se.value
		}
	}
	s.stats.mu.Unlock()
	s.stats.set("envoy_server_total_connections", cx)
}

// run serves every listener and health-checks every cluster until ctx
// ends.
func (s *Sidecar) run(ctx context.Context, healthInterval time.Duration) {
	serve := func(ln net.Listener, h http.Handler) {
		srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
		s.servers = append(s.servers, srv)
		go func() { _ = srv.Serve(ln) }()
	}
	serve(s.ingress, downstream(s.stats, prefixIngress, s.ingress.Addr().String(), http.HandlerFunc(s.local.forward)))
	for up, ln := range s.egress {
		serve(ln, downstream(s.stats, prefixEgress, ln.Addr().String(), http.HandlerFunc(s.clusters[up].forward)))
	}
	serve(s.admin, s.adminHandler())
	go s.local.healthCheck(ctx, healthInterval)
	for _, c := range s.clusters {
		go c.healthCheck(ctx, healthInterval)
	}
}

// close stops every listener and closes idle upstream connections.
func (s *Sidecar) close() {
	for _, srv := range s.servers {
		_ = srv.Close()
	}
	s.local.transport.CloseIdleConnections()
	for _, c := range s.clusters {
		c.transport.CloseIdleConnections()
	}
}
