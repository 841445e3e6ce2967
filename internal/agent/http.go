package agent

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/scrape"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/storage/remote"
)

func (a *Agent) routes() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(a.reg, promhttp.HandlerOpts{Registry: a.reg}))
	mux.HandleFunc("GET /-/healthy", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "Orrery agent is Healthy.") })
	mux.HandleFunc("GET /-/ready", func(w http.ResponseWriter, _ *http.Request) {
		a.mu.Lock()
		ready := a.ready
		a.mu.Unlock()
		if !ready {
			http.Error(w, "Orrery agent is not ready.", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "Orrery agent is Ready.")
	})
	mux.HandleFunc("POST /-/reload", func(w http.ResponseWriter, _ *http.Request) {
		if err := a.Reload(); err != nil {
			http.Error(w, "reload failed, the previous configuration stays: "+err.Error(), http.StatusInternalServerError)
			return
		}
		fmt.Fprintln(w, "configuration reloaded")
	})
	mux.HandleFunc("GET /api/v1/targets", a.targets)
	return mux
}

// Target is a target as Prometheus' /api/v1/targets shows it.
type Target struct {
	DiscoveredLabels   map[string]string `json:"discoveredLabels"`
	Labels             map[string]string `json:"labels"`
	ScrapePool         string            `json:"scrapePool"`
	ScrapeURL          string            `json:"scrapeUrl"`
	LastError          string            `json:"lastError"`
	LastScrape         time.Time         `json:"lastScrape"`
	LastScrapeDuration float64           `json:"lastScrapeDuration"`
	Health             string            `json:"health"`
}

// activeTargets lists the targets being scraped, by pool and URL.
func (a *Agent) activeTargets() []Target {
	a.mu.Lock()
	sm := a.scrape
	a.mu.Unlock()
	if sm == nil {
		return nil
	}
	return ActiveTargets(sm)
}

// ActiveTargets lists a scrape manager's active targets, by pool and URL.
func ActiveTargets(sm *scrape.Manager) []Target {
	out := []Target{}
	lb := labels.NewBuilder(labels.EmptyLabels())
	for pool, ts := range sm.TargetsActive() {
		for _, t := range ts {
			j := Target{ScrapePool: pool, ScrapeURL: t.URL().String(), LastScrape: t.LastScrape(),
				LastScrapeDuration: t.LastScrapeDuration().Seconds(), Health: string(t.Health())}
			if err := t.LastError(); err != nil {
				j.LastError = err.Error()
			}
			j.Labels = t.Labels(lb).Map()
			j.DiscoveredLabels = t.DiscoveredLabels(lb).Map()
			out = append(out, j)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].ScrapePool != out[j].ScrapePool {
			return out[i].ScrapePool < out[j].ScrapePool
		}
		return out[i].ScrapeURL < out[j].ScrapeURL
	})
	return out
}

// targets answers like Prometheus' /api/v1/targets (active targets).
func (a *Agent) targets(w http.ResponseWriter, _ *http.Request) {
	active := a.activeTargets()
	if active == nil {
		active = []Target{}
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"status": "success", "data": map[string]any{
		"activeTargets": active, "droppedTargets": []any{}}})
}

// targetCollector reports targets by pool and health.
type targetCollector struct{ a *Agent }

var targetsDesc = prometheus.NewDesc("orrery_agent_targets", "Targets being scraped, by scrape pool and health (up, down, unknown).",
	[]string{"scrape_pool", "health"}, nil)

func (c *targetCollector) Describe(ch chan<- *prometheus.Desc) { ch <- targetsDesc }

func (c *targetCollector) Collect(ch chan<- prometheus.Metric) {
	counts := map[[2]string]int{}
	for _, t := range c.a.activeTargets() {
		counts[[2]string{t.ScrapePool, t.Health}]++
	}
	for k, n := range counts {
		ch <- prometheus.MustNewConstMetric(targetsDesc, prometheus.GaugeValue, float64(n), k[0], k[1])
	}
}

// otlpRoutes serves OTLP/HTTP metrics with Prometheus' own OTLP handler,
// appending to app (the WAL) as scrapes do. The translation follows the
// otlp block of the configuration in force.
func (a *Agent) otlpRoutes(app storage.AppendableV2) http.Handler {
	h := remote.NewOTLPWriteHandler(a.logger.With("component", "otlp"), a.reg, app, func() config.Config {
		a.mu.Lock()
		defer a.mu.Unlock()
		if a.current == nil {
			return config.DefaultConfig
		}
		return *a.current
	}, remote.OTLPOptions{ConvertDelta: a.cfg.OTLPConvertDelta, LookbackDelta: 5 * time.Minute})
	h = withRequestFailure(h)
	mux := http.NewServeMux()
	mux.Handle("POST /v1/metrics", h)
	mux.Handle("POST /api/v1/otlp/v1/metrics", h)
	return mux
}
