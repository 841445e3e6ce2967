package query

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/grafana/regexp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/route"
	"github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/rules"
	"github.com/prometheus/prometheus/scrape"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/util/notifications"
	v1 "github.com/prometheus/prometheus/web/api/v1"

	"github.com/orrery-dev/orrery/internal/workspace"
)

// Source is what the query API needs of the engine storing a workspace.
// Implementations are safe for concurrent use.
type Source interface {
	Queryable(id workspace.ID) storage.SampleAndChunkQueryable
	ExemplarQueryable(id workspace.ID) storage.ExemplarQueryable
	// Admin returns the workspace's TSDB statistics and administration,
	// and Dir, the directory snapshots are written below.
	Admin(id workspace.ID) Admin
	// Metadata returns metric metadata per family (see /api/v1/metadata).
	Metadata(id workspace.ID, metric string, limit, limitPerMetric int) (map[string][]metadata.Metadata, error)
}

// Admin is Prometheus' TSDBAdminStats plus the directory for snapshots and
// the TSDB's own metrics (status/tsdb reads prometheus_tsdb_head_chunks).
type Admin interface {
	v1.TSDBAdminStats
	Dir() string
	prometheus.Gatherer
}

// RulesSource gives the rules and alerts of a workspace, for /api/v1/rules
// and /api/v1/alerts. A nil RulesSource serves no rules.
type RulesSource interface {
	Rules(id workspace.ID) v1.RulesRetriever
}

// Config configures the API.
type Config struct {
	// Version is reported by /api/v1/status/buildinfo.
	Version  string
	Revision string
	// LookbackDelta is PromQL's staleness lookback (Prometheus: 5m).
	LookbackDelta time.Duration
	// Log, if not nil, records the queries of the workspaces that log
	// them.
	Log QueryLog
}

// API serves the Prometheus HTTP API of the workspace in the request
// context. It builds one Prometheus API per workspace on first use.
type API struct {
	cfg    Config
	ev     *Evaluator
	src    Source
	rules  RulesSource
	limits workspace.LimitsSource
	logger *slog.Logger
	start  time.Time

	mu  sync.Mutex
	wss map[workspace.ID]*wsAPI
}

type wsAPI struct {
	handler http.Handler
	limits  workspace.Limits // the limits the engine was built with.
}

// New returns an API evaluating queries with ev.
func New(cfg Config, ev *Evaluator, src Source, rules RulesSource, limits workspace.LimitsSource, logger *slog.Logger) (*API, error) {
	if ev == nil || src == nil || limits == nil {
		return nil, errors.New("query API needs an evaluator, a source and limits")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if cfg.LookbackDelta == 0 {
		cfg.LookbackDelta = 5 * time.Minute
	}
	return &API{cfg: cfg, ev: ev, src: src, rules: rules, limits: limits, logger: logger.With("component", "query"),
		start: time.Now(), wss: map[workspace.ID]*wsAPI{}}, nil
}

// Forget drops the API of a deleted workspace, its cached answers and
// metrics.
func (a *API) Forget(id workspace.ID) {
	a.mu.Lock()
	delete(a.wss, id)
	a.mu.Unlock()
	a.ev.Forget(id)
}

// Prefix returns the URL path below which a workspace's API is served.
func Prefix(id workspace.ID) string { return "/workspaces/" + id.String() + "/api/v1" }

// ServeHTTP implements http.Handler for requests below Prefix(id) of the
// workspace in the request context.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id, ok := workspace.FromContext(r.Context())
	if !ok {
		http.Error(w, "no workspace in request context", http.StatusInternalServerError)
		return
	}
	lim := a.limits.Limits(id)
	a.mu.Lock()
	ws, ok := a.wss[id]
	if !ok || !ws.limits.Equal(lim) {
		if ok {
			// The workspace's configuration changed (retention, lookback
			// of its limits): its cached answers may be stale.
			a.ev.cache.Drop(id)
		}
		ws = &wsAPI{handler: a.build(id, lim), limits: lim}
		a.wss[id] = ws
	}
	a.mu.Unlock()
	ctx := r.Context()
	if isQuery := strings.HasSuffix(r.URL.Path, "/query") || strings.HasSuffix(r.URL.Path, "/query_range"); isQuery && r.FormValue("stats") != "" {
		// Statistics describe one evaluation by the plain engine.
		ctx = WithPlain(ctx)
	}
	if noStore(r.Header) {
		ctx = WithNoStore(ctx)
	}
	ws.handler.ServeHTTP(w, r.WithContext(ctx))
}

// noStore reports whether a request's Cache-Control forbids the results
// cache (no-store, or no-cache: the client wants a fresh answer).
func noStore(h http.Header) bool {
	for _, v := range h.Values("Cache-Control") {
		for _, d := range strings.Split(v, ",") {
			switch strings.ToLower(strings.TrimSpace(d)) {
			case "no-store", "no-cache":
				return true
			}
		}
	}
	return false
}

// noTargets answers the target APIs: a workspace receives remote write and
// scrapes nothing itself.
type noTargets struct{}

func (noTargets) TargetsActive() map[string][]*scrape.Target  { return nil }
func (noTargets) TargetsDropped() map[string][]*scrape.Target { return nil }
func (noTargets) TargetsDroppedCounts() map[string]int        { return nil }
func (noTargets) ScrapePoolConfig(string) (*config.ScrapeConfig, error) {
	return nil, errors.New("workspaces have no scrape pools")
}
func (noTargets) ScrapePools() []string            { return nil }
func (noTargets) Alertmanagers() []*url.URL        { return nil }
func (noTargets) DroppedAlertmanagers() []*url.URL { return nil }

type noRules struct{}

func (noRules) RuleGroups() []*rules.Group           { return nil }
func (noRules) AlertingRules() []*rules.AlertingRule { return nil }

func (a *API) build(id workspace.ID, lim workspace.Limits) http.Handler {
	logger := a.logger.With("workspace", id)
	opts := EngineOpts(lim, a.cfg.LookbackDelta)
	opts.Logger = logger
	engine := a.ev.NewEngine(id, lim, opts)
	var qe promql.QueryEngine = engine
	if a.cfg.Log != nil {
		qe = loggedEngine{Engine: engine, log: a.cfg.Log}
	}
	var rr v1.RulesRetriever = noRules{}
	if a.rules != nil {
		rr = a.rules.Rules(id)
	}
	admin := a.src.Admin(id)
	api := v1.NewAPI(
		qe,
		a.src.Queryable(id),
		nil, // Remote write is served by the ingest package.
		a.src.ExemplarQueryable(id),
		func(context.Context) v1.ScrapePoolsRetriever { return noTargets{} },
		func(context.Context) v1.TargetRetriever { return noTargets{} },
		func(context.Context) v1.AlertmanagerRetriever { return noTargets{} },
		func() config.Config { return config.DefaultConfig },
		map[string]string{},
		v1.GlobalURLOptions{},
		func(f http.HandlerFunc) http.HandlerFunc { return f },
		admin,
		admin.Dir(),
		true, // Admin endpoints: delete_series, clean_tombstones, snapshot.
		false, 0,
		logger,
		func(context.Context) v1.RulesRetriever { return rr },
		50_000_000, 10, 1<<20, // Remote read limits, Prometheus' defaults.
		false,
		// No cross-origin access; nil would panic on any request with an
		// Origin header, which browsers send with every POST.
		regexp.MustCompile(`^$`),
		func() (v1.RuntimeInfo, error) {
			return v1.RuntimeInfo{StartTime: a.start, ServerTime: time.Now(), GoroutineCount: runtime.NumGoroutine(),
				GOMAXPROCS: runtime.GOMAXPROCS(0), GOGC: os.Getenv("GOGC"), ReloadConfigSuccess: true}, nil
		},
		&v1.PrometheusVersion{Version: a.cfg.Version, Revision: a.cfg.Revision, Branch: "orrery", GoVersion: runtime.Version()},
		func() []notifications.Notification { return nil },
		func() (<-chan notifications.Notification, func(), bool) { return nil, func() {}, false },
		admin, // The workspace's own TSDB metrics, none of the server's or other workspaces'.
		nil,
		nil,
		false,
		nil,
		false, false, false,
		a.cfg.LookbackDelta,
		false, false,
		nil,
		nil,
		v1.OpenAPIOptions{},
		nil,
		false,
		time.Duration(lim.QueryTimeout),
	)
	router := route.New().WithPrefix(Prefix(id))
	api.Register(router)
	mux := http.NewServeMux()
	mux.Handle("/", router)
	mux.HandleFunc("GET "+Prefix(id)+"/metadata", a.metadata(id))
	return a.limitRange(id, lim, mux)
}

// EngineOpts returns the PromQL engine options for a workspace: those of a
// Prometheus server with default flags, and the workspace's query limits.
func EngineOpts(lim workspace.Limits, lookbackDelta time.Duration) promql.EngineOpts {
	maxSamples := lim.MaxQuerySamples
	if maxSamples == 0 {
		maxSamples = math.MaxInt // 0 means unlimited, as for the other limits; the engine would refuse every sample.
	}
	return promql.EngineOpts{
		MaxSamples:               maxSamples,
		Timeout:                  time.Duration(lim.QueryTimeout),
		LookbackDelta:            lookbackDelta,
		NoStepSubqueryIntervalFn: func(int64) int64 { return time.Minute.Milliseconds() },
		EnableAtModifier:         true,
		EnableNegativeOffset:     true,
	}
}

// limitRange rejects range queries spanning more than the workspace's
// max_query_range, with Prometheus' error JSON.
func (a *API) limitRange(id workspace.ID, lim workspace.Limits, next http.Handler) http.Handler {
	max := time.Duration(lim.MaxQueryRange)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if max > 0 && strings.HasSuffix(r.URL.Path, "/query_range") {
			start, err1 := parseTime(r.FormValue("start"))
			end, err2 := parseTime(r.FormValue("end"))
			if err1 == nil && err2 == nil && end.Sub(start) > max {
				writeError(w, http.StatusBadRequest, "bad_data", fmt.Sprintf(
					"the query time range %s exceeds the limit of workspace %s (max_query_range %s)", end.Sub(start), id, max))
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// parseTime parses a Prometheus API time: RFC 3339 or Unix seconds.
func parseTime(s string) (time.Time, error) {
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		sec := int64(f)
		return time.Unix(sec, int64((f-float64(sec))*1e9)), nil
	}
	return time.Parse(time.RFC3339Nano, s)
}

func writeError(w http.ResponseWriter, code int, typ, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]string{"status": "error", "errorType": typ, "error": msg})
}

// metadata serves /api/v1/metadata from the metadata senders wrote with
// their samples (Prometheus serves it from its scrape targets).
func (a *API) metadata(id workspace.ID) http.HandlerFunc {
	type entry struct {
		Type string `json:"type"`
		Help string `json:"help"`
		Unit string `json:"unit"`
	}
	return func(w http.ResponseWriter, r *http.Request) {
		limit, limitPerMetric := -1, -1
		for _, p := range []struct {
			name string
			dst  *int
		}{{"limit", &limit}, {"limit_per_metric", &limitPerMetric}} {
			if s := r.FormValue(p.name); s != "" {
				n, err := strconv.Atoi(s)
				if err != nil {
					writeError(w, http.StatusBadRequest, "bad_data", p.name+" must be a number")
					return
				}
				*p.dst = n
			}
		}
		md, err := a.src.Metadata(id, r.FormValue("metric"), limit, limitPerMetric)
		if err != nil {
			writeError(w, http.StatusInternalServerError, "internal", err.Error())
			return
		}
		out := make(map[string][]entry, len(md))
		for name, list := range md {
			es := make([]entry, 0, len(list))
			for _, m := range list {
				es = append(es, entry{Type: string(m.Type), Help: m.Help, Unit: m.Unit})
			}
			out[name] = es
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"status": "success", "data": out})
	}
}
