package scraper

import (
	"encoding/json"
	"net/http"

	"github.com/prometheus/prometheus/scrape"

	"github.com/orrery-dev/orrery/internal/agent"
	"github.com/orrery-dev/orrery/internal/catalog"
	"github.com/orrery-dev/orrery/internal/failure"
)

// Targets is a scraper's health: its targets, and what its destination
// last refused and which discovered targets it left out, if anything.
type Targets struct {
	ActiveTargets  []agent.Target `json:"activeTargets"`
	DroppedTargets []agent.Target `json:"droppedTargets"`
	// LastWriteError is the destination workspace's refusal of the last
	// scrape written ("" once one is taken again): a limit, or the
	// workspace gone.
	LastWriteError string `json:"lastWriteError,omitempty"`
	// TargetLimit says why discovered targets are not scraped.
	TargetLimit string `json:"targetLimit,omitempty"`
}

// Targets returns a running scraper's targets, false if it does not run
// here.
func (r *Runner) Targets(id string) (Targets, bool) {
	r.mu.Lock()
	ru := r.running[id]
	r.mu.Unlock()
	if ru == nil {
		return Targets{}, false
	}
	out := Targets{ActiveTargets: agent.ActiveTargets(ru.sm), DroppedTargets: []agent.Target{}}
	ru.mu.Lock()
	out.LastWriteError, out.TargetLimit = ru.lastError, ru.limited
	ru.mu.Unlock()
	return out, true
}

// ServeTargets answers GET /scrapers/{scraperId}/api/v1/targets in the
// Prometheus API's shape. A scraper that exists but does not run here
// (CREATION_FAILED, or --scraper.run=false) has no targets.
func (r *Runner) ServeTargets(w http.ResponseWriter, req *http.Request) {
	id := req.PathValue("scraperId")
	s, err := r.cat.Scraper(req.Context(), id)
	if err != nil {
		failure.WritePrometheus(w, err)
		return
	}
	t, ok := r.Targets(id)
	if !ok {
		why := "scraper " + id + " is " + s.Status + " and does not run on this server"
		if s.Status == catalog.ScraperCreationFailed {
			why += ": " + s.StatusReason
		}
		failure.WritePrometheus(w, failure.Errorf(failure.Unavailable, "%s", why))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"status": "success", "data": t})
}

// updateTargetMetrics sets orrery_scraper_targets from the scrape
// managers.
func (r *Runner) updateTargetMetrics() {
	r.mu.Lock()
	runs := make([]*run, 0, len(r.running))
	for _, ru := range r.running {
		runs = append(runs, ru)
	}
	r.mu.Unlock()
	for _, ru := range runs {
		counts := map[scrape.TargetHealth]int{scrape.HealthGood: 0, scrape.HealthBad: 0, scrape.HealthUnknown: 0}
		for _, ts := range ru.sm.TargetsActive() {
			for _, t := range ts {
				counts[t.Health()]++
			}
		}
		for h, n := range counts {
			r.targets.WithLabelValues(ru.id, string(h)).Set(float64(n))
		}
	}
}
