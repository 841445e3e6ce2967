package ui

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/orrery-dev/orrery/internal/catalog"
	"github.com/orrery-dev/orrery/internal/scraper"
	"github.com/orrery-dev/orrery/internal/workspace"
)

// ScraperTargets gives a managed scraper's targets, false if the scraper
// does not run in this process (*scraper.Runner). It is safe for
// concurrent use.
type ScraperTargets interface {
	Targets(id string) (scraper.Targets, bool)
}

var _ ScraperTargets = (*scraper.Runner)(nil)

// SetScrapers gives the UI the server's scraper runner, for the scrapers
// page's targets. Call it before the handler serves.
func (h *Handler) SetScrapers(s ScraperTargets) { h.scrapers = s }

// scraperJSON is a managed scraper as the scrapers page lists it: what
// DescribeScraper says, and a summary of its targets when it runs here.
type scraperJSON struct {
	ID           string    `json:"id"`
	Alias        string    `json:"alias"`
	Status       string    `json:"status"`
	StatusReason string    `json:"statusReason,omitempty"`
	Source       string    `json:"source"`
	CreatedAt    time.Time `json:"createdAt"`
	ModifiedAt   time.Time `json:"modifiedAt"`
	// Running: the scraper runs in this server process. Without it the
	// counts below are zero and NotRunning says why.
	Running    bool   `json:"running"`
	NotRunning string `json:"notRunning,omitempty"`
	Up         int    `json:"up"`
	Down       int    `json:"down"`
	Unknown    int    `json:"unknown"`
	// LastScrape is the newest scrape of any target; zero if none yet.
	LastScrape     time.Time `json:"lastScrape,omitzero"`
	LastWriteError string    `json:"lastWriteError,omitempty"`
	TargetLimit    string    `json:"targetLimit,omitempty"`
}

// scraperSource names a scraper's source as the page shows it: the EKS
// cluster's ARN, or the VPC's subnets.
func scraperSource(raw json.RawMessage) string {
	var src struct {
		VpcConfiguration *struct {
			SubnetIds []string `json:"subnetIds"`
		} `json:"vpcConfiguration"`
		EksConfiguration *struct {
			ClusterArn string `json:"clusterArn"`
		} `json:"eksConfiguration"`
	}
	if json.Unmarshal(raw, &src) != nil {
		return ""
	}
	switch {
	case src.EksConfiguration != nil:
		return "EKS cluster " + src.EksConfiguration.ClusterArn
	case src.VpcConfiguration != nil:
		return "VPC, subnets " + strings.Join(src.VpcConfiguration.SubnetIds, ", ")
	}
	return ""
}

// workspaceScrapers returns the scrapers whose destination is id, in id
// order. A server has at most --scraper.max-scrapers of them (100 by
// default), so reading them all is cheap.
func (h *Handler) workspaceScrapers(r *http.Request, id workspace.ID) ([]catalog.Scraper, error) {
	var out []catalog.Scraper
	for after := ""; ; {
		page, err := h.cat.Scrapers(r.Context(), after, 500)
		if err != nil {
			return nil, err
		}
		for _, s := range page {
			if s.Workspace == id {
				out = append(out, s)
			}
		}
		if len(page) < 500 {
			return out, nil
		}
		after = page[len(page)-1].ID
	}
}

// notRunning says why a scraper has no targets on this server.
func notRunning(s catalog.Scraper) string {
	why := "scraper " + s.ID + " is " + s.Status + " and does not run on this server"
	if s.Status == catalog.ScraperCreationFailed && s.StatusReason != "" {
		why += ": " + s.StatusReason
	}
	return why
}

// listScrapers answers the workspace's scrapers with their targets' health.
func (h *Handler) listScrapers(w http.ResponseWriter, r *http.Request, id workspace.ID) {
	list, err := h.workspaceScrapers(r, id)
	if err != nil {
		writeCatalogError(w, err)
		return
	}
	out := []scraperJSON{}
	for _, s := range list {
		j := scraperJSON{ID: s.ID, Alias: s.Alias, Status: s.Status, StatusReason: s.StatusReason, Source: scraperSource(s.Source),
			CreatedAt: s.CreatedAt, ModifiedAt: s.ModifiedAt}
		var t scraper.Targets
		if h.scrapers != nil {
			t, j.Running = h.scrapers.Targets(s.ID)
		}
		if !j.Running {
			j.NotRunning = notRunning(s)
		}
		// The health strings are Prometheus' scrape.TargetHealth.
		for _, tg := range t.ActiveTargets {
			switch tg.Health {
			case "up":
				j.Up++
			case "down":
				j.Down++
			default:
				j.Unknown++
			}
			if tg.LastScrape.After(j.LastScrape) {
				j.LastScrape = tg.LastScrape
			}
		}
		j.LastWriteError, j.TargetLimit = t.LastWriteError, t.TargetLimit
		out = append(out, j)
	}
	writeJSON(w, http.StatusOK, out)
}

// scraperTargets answers a scraper's targets as GET
// /scrapers/{id}/api/v1/targets gives them (its data), if the scraper
// writes into the path's workspace: another workspace's scraper is not
// found, as one that does not exist.
func (h *Handler) scraperTargets(w http.ResponseWriter, r *http.Request, id workspace.ID) {
	s, err := h.cat.Scraper(r.Context(), r.PathValue("scraper"))
	if err != nil && !errors.Is(err, catalog.ErrNotFound) {
		writeCatalogError(w, err)
		return
	}
	if err != nil || s.Workspace != id {
		writeError(w, http.StatusNotFound, "scraper "+r.PathValue("scraper")+" does not exist or does not write into workspace "+id.String())
		return
	}
	var t scraper.Targets
	ok := false
	if h.scrapers != nil {
		t, ok = h.scrapers.Targets(s.ID)
	}
	if !ok {
		writeError(w, http.StatusServiceUnavailable, notRunning(s))
		return
	}
	writeJSON(w, http.StatusOK, t)
}
