package mesh

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"
)

// ServiceSpec names a service and the upstream services it calls.
type ServiceSpec struct {
	Name      string
	Upstreams []string
}

// DefaultTopology is the demo's shop: the frontend calls the catalog and
// the cart; the cart calls the inventory and payments.
func DefaultTopology() []ServiceSpec {
	return []ServiceSpec{
		{Name: "frontend", Upstreams: []string{"catalog", "cart"}},
		{Name: "catalog"},
		{Name: "cart", Upstreams: []string{"inventory", "payments"}},
		{Name: "inventory"},
		{Name: "payments"},
	}
}

// Config configures a Mesh.
type Config struct {
	// Host is the address every listener binds, 127.0.0.1 by default.
	Host string
	// BasePort, if not 0, is the first of consecutive ports the listeners
	// take (services, sidecars, the control endpoint); 0 picks free ports.
	BasePort int
	// ControlListen is the address of the control endpoint; empty means
	// the next port (or a free one).
	ControlListen string
	// Topology is the services; the first one is the entry the traffic
	// generator calls. Default DefaultTopology().
	Topology []ServiceSpec
	// RequestsPerSecond is the traffic generator's rate (0: no traffic).
	RequestsPerSecond int
	// Timeout is the sidecars' route timeout (default 15s, Envoy's); Retries
	// how often they retry connect failures and resets (default 2, App
	// Mesh's); HealthInterval how often they health-check upstreams
	// (default 1s).
	Timeout        time.Duration
	Retries        int
	HealthInterval time.Duration
	// Faults are applied at start.
	Faults []Fault
}

// Validate fills defaults and checks the configuration.
func (c *Config) Validate() error {
	if c.Host == "" {
		c.Host = "127.0.0.1"
	}
	if len(c.Topology) == 0 {
		c.Topology = DefaultTopology()
	}
	if c.Timeout == 0 {
		c.Timeout = 15 * time.Second
	}
	if c.Retries == 0 {
		c.Retries = 2
	}
	if c.HealthInterval == 0 {
		c.HealthInterval = time.Second
	}
	if c.RequestsPerSecond < 0 || c.BasePort < 0 || c.BasePort > 65000 || c.Retries < 0 {
		return fmt.Errorf("requests per second %d, base port %d, retries %d: none may be negative", c.RequestsPerSecond, c.BasePort, c.Retries)
	}
	names := map[string]bool{}
	for _, s := range c.Topology {
		if s.Name == "" || names[s.Name] {
			return fmt.Errorf("service name %q is empty or repeated", s.Name)
		}
		names[s.Name] = true
	}
	for _, s := range c.Topology {
		for _, up := range s.Upstreams {
			if !names[up] || up == s.Name {
				return fmt.Errorf("service %s calls %q, which is not another service of the mesh", s.Name, up)
			}
		}
	}
	for _, f := range c.Faults {
		if !names[f.Service] {
			return fmt.Errorf("fault on %q: no such service", f.Service)
		}
		if err := f.Validate(); err != nil {
			return fmt.Errorf("fault on %s: %w", f.Service, err)
		}
	}
	return nil
}

// Mesh is the running services, their sidecars, the traffic generator
// and the control endpoint.
//
// Lifecycle: New checks the configuration; Start opens every listener and
// starts serving, health checks and traffic; Close (or the end of Start's
// context) stops them. Sidecars, Traffic, SetFault and Faults may be used
// once Start returned, concurrently.
type Mesh struct {
	cfg    Config
	logger *slog.Logger

	services map[string]*service
	sidecars map[string]*Sidecar
	traffic  *Traffic
	control  *http.Server
	ctlLn    net.Listener

	cancel   context.CancelFunc
	wg       sync.WaitGroup
	stopOnce sync.Once
}

// New returns a mesh. It opens nothing.
func New(cfg Config, logger *slog.Logger) (*Mesh, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Mesh{cfg: cfg, logger: logger, services: map[string]*service{}, sidecars: map[string]*Sidecar{}}, nil
}

// Start opens the listeners and runs the mesh until ctx ends or Close.
func (m *Mesh) Start(ctx context.Context) (err error) {
	port := m.cfg.BasePort
	var opened []net.Listener
	listen := func(what string) (net.Listener, error) {
		addr := net.JoinHostPort(m.cfg.Host, "0")
		if m.cfg.BasePort != 0 {
			addr = net.JoinHostPort(m.cfg.Host, strconv.Itoa(port))
			port++
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("listen %s on %s: %w", what, addr, err)
		}
		opened = append(opened, ln)
		return ln, nil
	}
	defer func() {
		if err != nil {
			for _, ln := range opened {
				_ = ln.Close()
			}
		}
	}()
	type listeners struct {
		app, ingress, admin net.Listener
		egress              map[string]net.Listener
	}
	ls := map[string]*listeners{}
	for _, spec := range m.cfg.Topology {
		l := &listeners{egress: map[string]net.Listener{}}
		if l.app, err = listen("service " + spec.Name); err != nil {
			return err
		}
		if l.ingress, err = listen("sidecar ingress of " + spec.Name); err != nil {
			return err
		}
		if l.admin, err = listen("sidecar admin of " + spec.Name); err != nil {
			return err
		}
		for _, up := range spec.Upstreams {
			if l.egress[up], err = listen("sidecar egress of " + spec.Name + " to " + up); err != nil {
				return err
			}
		}
		ls[spec.Name] = l
	}
	ctlAddr := m.cfg.ControlListen
	if ctlAddr != "" {
		ln, err := net.Listen("tcp", ctlAddr)
		if err != nil {
			return fmt.Errorf("listen control endpoint on %s: %w", ctlAddr, err)
		}
		opened = append(opened, ln)
		m.ctlLn = ln
	} else if m.ctlLn, err = listen("control endpoint"); err != nil {
		return err
	}

	ctx, m.cancel = context.WithCancel(ctx)
	for _, spec := range m.cfg.Topology {
		l := ls[spec.Name]
		ups := map[string]string{}
		for _, up := range spec.Upstreams {
			ups[up] = ls[up].ingress.Addr().String()
		}
		sc := newSidecar(SidecarConfig{Service: spec.Name, Local: l.app.Addr().String(), Upstreams: ups,
			Timeout: m.cfg.Timeout, Retries: m.cfg.Retries}, l.ingress, l.admin, l.egress, m.logger)
		m.sidecars[spec.Name] = sc
		svc := &service{name: spec.Name, addr: l.app.Addr().String(), upstreams: spec.Upstreams, egress: map[string]string{},
			logger: m.logger, client: &http.Client{Timeout: m.cfg.Timeout + time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 32}}}
		for _, up := range spec.Upstreams {
			svc.egress[up] = sc.egressURL(up)
		}
		m.services[spec.Name] = svc
		svc.serve(l.app)
		sc.run(ctx, m.cfg.HealthInterval)
	}
	for _, f := range m.cfg.Faults {
		if err := m.SetFault(f); err != nil {
			return err
		}
	}
	m.traffic = newTraffic(m.sidecars[m.cfg.Topology[0].Name].IngressURL(), m.cfg.RequestsPerSecond)
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		m.traffic.run(ctx)
	}()
	m.control = &http.Server{Handler: m.ControlHandler(), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = m.control.Serve(m.ctlLn) }()
	go func() {
		<-ctx.Done()
		m.stop()
	}()
	m.logger.Info("mesh started", "services", len(m.services), "control", m.ControlURL())
	return nil
}

// stop closes everything once.
func (m *Mesh) stop() {
	m.stopOnce.Do(func() {
		m.wg.Wait()
		_ = m.control.Close()
		for _, s := range m.services {
			s.close()
		}
		for _, s := range m.sidecars {
			s.close()
		}
	})
}

// Close stops the mesh and waits for the traffic in flight.
func (m *Mesh) Close() {
	if m.cancel == nil {
		return
	}
	m.cancel()
	m.stop()
}

// SidecarInfo describes one sidecar for users and scrapers.
type SidecarInfo struct {
	Service    string `json:"service"`
	StatsURL   string `json:"stats_url"`
	AdminAddr  string `json:"admin_addr"`
	IngressURL string `json:"ingress_url"`
	Fault      Fault  `json:"fault"`
}

// Sidecars lists the sidecars in topology order.
func (m *Mesh) Sidecars() []SidecarInfo {
	var out []SidecarInfo
	for _, spec := range m.cfg.Topology {
		sc := m.sidecars[spec.Name]
		if sc == nil {
			continue
		}
		out = append(out, SidecarInfo{Service: spec.Name, StatsURL: sc.StatsURL(), AdminAddr: sc.AdminAddr(),
			IngressURL: sc.IngressURL(), Fault: m.services[spec.Name].currentFault()})
	}
	return out
}

// ControlURL is the base URL of the control endpoint.
func (m *Mesh) ControlURL() string {
	if m.ctlLn == nil {
		return ""
	}
	return "http://" + m.ctlLn.Addr().String()
}

// EntryURL is the URL of the first service's ingress, where traffic goes.
func (m *Mesh) EntryURL() string { return m.sidecars[m.cfg.Topology[0].Name].IngressURL() }

// Traffic is the traffic generator.
func (m *Mesh) Traffic() *Traffic { return m.traffic }

// ErrUnknownService is returned for a fault on a service not in the mesh.
var ErrUnknownService = errors.New("no such service in the mesh")

// SetFault replaces a service's fault; the zero values clear it.
func (m *Mesh) SetFault(f Fault) error {
	s, ok := m.services[f.Service]
	if !ok {
		return fmt.Errorf("fault on %q: %w", f.Service, ErrUnknownService)
	}
	if err := f.Validate(); err != nil {
		return fmt.Errorf("fault on %s: %w", f.Service, err)
	}
	if err := s.setFault(f); err != nil {
		return fmt.Errorf("fault on %s: %w", f.Service, err)
	}
	m.logger.Info("fault set", "service", f.Service, "latency_ms", f.LatencyMS, "error_rate", f.ErrorRate, "down", f.Down)
	return nil
}

// Faults lists the services' faults, those without one included.
func (m *Mesh) Faults() []Fault {
	var out []Fault
	for _, spec := range m.cfg.Topology {
		out = append(out, m.services[spec.Name].currentFault())
	}
	return out
}

// ControlHandler serves the control endpoint:
//
//	GET    /            the sidecars, their stats URLs, faults and traffic
//	GET    /faults      every service's fault
//	POST   /faults      {"service":S,"latency_ms":N,"error_rate":F,"down":B} replaces S's fault
//	DELETE /faults      clears every fault
//	POST   /traffic     {"requests_per_second":N} changes the traffic rate
func (m *Mesh) ControlHandler() http.Handler {
	mux := http.NewServeMux()
	reply := func(w http.ResponseWriter, code int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(v)
	}
	fail := func(w http.ResponseWriter, code int, err error) {
		reply(w, code, map[string]string{"error": err.Error()})
	}
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		reply(w, http.StatusOK, map[string]any{"entry": m.EntryURL(), "sidecars": m.Sidecars(), "traffic": m.traffic.Stats()})
	})
	mux.HandleFunc("GET /faults", func(w http.ResponseWriter, _ *http.Request) { reply(w, http.StatusOK, m.Faults()) })
	mux.HandleFunc("POST /faults", func(w http.ResponseWriter, r *http.Request) {
		var f Fault
		dec := json.NewDecoder(io.LimitReader(r.Body, 1<<16))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&f); err != nil {
			fail(w, http.StatusBadRequest, fmt.Errorf("decode fault: %w", err))
			return
		}
		if err := m.SetFault(f); err != nil {
			code := http.StatusBadRequest
			if errors.Is(err, ErrUnknownService) {
				code = http.StatusNotFound
			}
			fail(w, code, err)
			return
		}
		reply(w, http.StatusOK, m.Faults())
	})
	mux.HandleFunc("DELETE /faults", func(w http.ResponseWriter, _ *http.Request) {
		var errs []error
		for _, spec := range m.cfg.Topology {
			errs = append(errs, m.SetFault(Fault{Service: spec.Name}))
		}
		if err := errors.Join(errs...); err != nil {
			fail(w, http.StatusInternalServerError, err)
			return
		}
		reply(w, http.StatusOK, m.Faults())
	})
	mux.HandleFunc("POST /traffic", func(w http.ResponseWriter, r *http.Request) {
		var in struct {
			RPS *int `json:"requests_per_second"`
		}
		if err := json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(&in); err != nil || in.RPS == nil || *in.RPS < 0 {
			fail(w, http.StatusBadRequest, errors.New(`give {"requests_per_second": N} with N >= 0`))
			return
		}
		m.traffic.SetRate(*in.RPS)
		reply(w, http.StatusOK, m.traffic.Stats())
	})
	return mux
}

// Services lists the service names in topology order.
func (m *Mesh) Services() []string {
	var out []string
	for _, s := range m.cfg.Topology {
		out = append(out, s.Name)
	}
	return slices.Clip(out)
}
