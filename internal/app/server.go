package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/storage"

	"github.com/orrery-dev/orrery/internal/catalog"
	"github.com/orrery-dev/orrery/internal/controlplane"
	"github.com/orrery-dev/orrery/internal/ingest"
	"github.com/orrery-dev/orrery/internal/query"
	orstorage "github.com/orrery-dev/orrery/internal/storage"
	"github.com/orrery-dev/orrery/internal/workspace"
)

// Version is Orrery's release. The query API reports the embedded
// Prometheus engine's version (EngineVersion) so clients such as Grafana
// enable the features that engine has.
const (
	Version       = "0.1.0"
	EngineVersion = "3.16.0"
)

// ServerConfig configures `orrery server`.
type ServerConfig struct {
	Listen      string
	DataDir     string
	LimitsFile  string
	IdleTimeout time.Duration
	// BlockDuration is the TSDB head block length.
	BlockDuration time.Duration
	// Limits are the defaults for workspaces without overrides.
	Limits workspace.Limits
	// ShutdownTimeout bounds how long in-flight requests may finish.
	ShutdownTimeout time.Duration
	// Region and AccountID appear in ARNs.
	Region, AccountID string
}

// Server is a running `orrery server`.
type Server struct {
	cfg       ServerConfig
	logger    *slog.Logger
	reg       *prometheus.Registry
	overrides *workspace.Overrides
	store     *orstorage.Store
	ingest    *ingest.Handler
	query     *query.API
	catalog   *catalog.Catalog
	control   *controlplane.API
	http      *http.Server
	ln        net.Listener
}

// NewServer builds a server. It opens no workspace and starts no goroutine.
func NewServer(cfg ServerConfig, logger *slog.Logger) (*Server, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if cfg.DataDir == "" {
		return nil, errors.New("--data-dir is empty; name a directory for workspace data")
	}
	if cfg.ShutdownTimeout == 0 {
		cfg.ShutdownTimeout = 30 * time.Second
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	overrides, err := workspace.NewOverrides(cfg.Limits)
	if err != nil {
		return nil, err
	}
	if cfg.LimitsFile != "" {
		if err := overrides.LoadFile(cfg.LimitsFile); err != nil {
			return nil, err
		}
	}
	store, err := orstorage.New(orstorage.Config{Dir: cfg.DataDir, IdleTimeout: cfg.IdleTimeout, BlockDuration: cfg.BlockDuration}, overrides, logger, reg)
	if err != nil {
		return nil, err
	}
	ing, err := ingest.New(ingest.Config{}, store, overrides, logger, reg)
	if err != nil {
		return nil, err
	}
	q, err := query.New(query.Config{Version: EngineVersion, Revision: "orrery-" + Version}, querySource{store}, nil, overrides, logger)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	cat, err := catalog.OpenSQLite(context.Background(), filepath.Join(cfg.DataDir, "catalog.db"))
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, logger: logger, reg: reg, overrides: overrides, store: store, ingest: ing, query: q, catalog: cat}
	s.control, err = controlplane.New(controlplane.Config{Region: cfg.Region, AccountID: cfg.AccountID, EndpointURL: "http://" + cfg.Listen},
		cat, lifecycle{s}, logger)
	if err != nil {
		_ = cat.Close()
		return nil, err
	}
	s.http = &http.Server{Handler: s.routes(), ReadHeaderTimeout: 30 * time.Second}
	return s, nil
}

// querySource adapts the store to the query API's Source.
type querySource struct{ s *orstorage.Store }

func (q querySource) Queryable(id workspace.ID) storage.SampleAndChunkQueryable {
	return q.s.Queryable(id)
}
func (q querySource) ExemplarQueryable(id workspace.ID) storage.ExemplarQueryable {
	return q.s.ExemplarQueryable(id)
}
func (q querySource) Admin(id workspace.ID) query.Admin { return q.s.Admin(id) }
func (q querySource) Metadata(id workspace.ID, metric string, limit, perMetric int) (map[string][]metadata.Metadata, error) {
	return q.s.Metadata(id, metric, limit, perMetric)
}

// lifecycle deletes a workspace's data from every component.
type lifecycle struct{ s *Server }

func (l lifecycle) DeleteWorkspaceData(ctx context.Context, id workspace.ID) error {
	l.s.ingest.Forget(id)
	l.s.query.Forget(id)
	return l.s.store.Delete(ctx, id)
}

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	s.control.Register(mux)
	mux.HandleFunc("GET /-/healthy", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = fmt.Fprintln(w, "Orrery is Healthy.")
	})
	mux.HandleFunc("GET /-/ready", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = fmt.Fprintln(w, "Orrery is Ready.")
	})
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{Registry: s.reg}))
	mux.Handle("/workspaces/{id}/api/v1/remote_write", s.withWorkspace(s.ingest))
	mux.Handle("/workspaces/{id}/api/v1/", s.withWorkspace(s.query))
	return mux
}

// withWorkspace resolves the workspace a request names and puts its ID into
// the request context. It is the only place requests get a workspace.
// Until workspaces have a control plane, any well-formed ID names a
// workspace, created on first write.
func (s *Server) withWorkspace(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := workspace.ParseID(r.PathValue("id"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		}
		next.ServeHTTP(w, r.WithContext(workspace.NewContext(r.Context(), id)))
	})
}

// Addr returns the address the server listens on, once Start returned.
func (s *Server) Addr() string {
	if s.ln == nil {
		return ""
	}
	return s.ln.Addr().String()
}

// Start listens on the configured address.
func (s *Server) Start() error {
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", s.cfg.Listen, err)
	}
	s.ln = ln
	return nil
}

// Run serves until ctx is done, then shuts down: it stops accepting
// requests, lets in-flight ones finish, and closes every workspace's TSDB.
func (s *Server) Run(ctx context.Context) error {
	if s.ln == nil {
		if err := s.Start(); err != nil {
			return err
		}
	}
	s.logger.Info("orrery server listening", "addr", s.ln.Addr().String(), "data_dir", s.cfg.DataDir)
	errc := make(chan error, 1)
	go func() { errc <- s.http.Serve(s.ln) }()

	every := 30 * time.Second
	if s.cfg.IdleTimeout > 0 && s.cfg.IdleTimeout/2 < every {
		every = max(s.cfg.IdleTimeout/2, 100*time.Millisecond)
	}
	housekeeping := time.NewTicker(every)
	defer housekeeping.Stop()
	sweep := time.NewTicker(15 * time.Minute)
	defer sweep.Stop()
	var serveErr error
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case err := <-errc:
			serveErr = fmt.Errorf("serve http: %w", err)
			break loop
		case <-housekeeping.C:
			s.store.CloseIdle()
			if err := s.store.FlushMetadata(); err != nil {
				s.logger.Warn("flush metadata; will retry", "err", err)
			}
		case <-sweep.C:
			s.ingest.Sweep()
		}
	}
	s.logger.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	if err := s.http.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		s.logger.Warn("http shutdown did not finish; closing storage anyway", "err", err)
	}
	if err := errors.Join(s.store.Close(), s.catalog.Close()); err != nil {
		return errors.Join(serveErr, fmt.Errorf("close storage: %w", err))
	}
	s.logger.Info("shutdown complete")
	if serveErr != nil && !strings.Contains(serveErr.Error(), http.ErrServerClosed.Error()) {
		return serveErr
	}
	return nil
}
