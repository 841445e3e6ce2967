package controlplane

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"slices"
	"strings"

	"github.com/google/uuid"
	"github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/discovery"
	// The service discoveries a scraper's configuration may use, as
	// orrery agent's: each registers its *_sd_configs with the loader.
	_ "github.com/prometheus/prometheus/discovery/dns"
	_ "github.com/prometheus/prometheus/discovery/file"
	_ "github.com/prometheus/prometheus/discovery/http"
	_ "github.com/prometheus/prometheus/discovery/kubernetes"

	"github.com/orrery-dev/orrery/internal/auth"
	"github.com/orrery-dev/orrery/internal/catalog"
	"github.com/orrery-dev/orrery/internal/failure"
	"github.com/orrery-dev/orrery/internal/workspace"
)

// MaxScrapeConfigurationBytes bounds a scraper's configuration blob: a
// scrape configuration is a few KiB; a larger one is a mistake or an
// attack, refused before the YAML parser sees it.
const MaxScrapeConfigurationBytes = 256 << 10

// Managed scrapers: the server runs the scrape itself (package scraper
// watches the catalog), so the control plane only validates and stores
// them, and moves them to UPDATING and DELETING; the runner makes them
// ACTIVE, CREATION_FAILED, or removes them.
func (a *API) scraperRoutes() []auth.Route {
	return []auth.Route{
		route("POST /scrapers", "aps:CreateScraper", auth.AllScrapers, a.createScraper),
		route("GET /scrapers", "aps:ListScrapers", auth.AllScrapers, a.listScrapers),
		route("GET /scrapers/{scraperId}", "aps:DescribeScraper", auth.Scraper, a.describeScraper),
		route("PUT /scrapers/{scraperId}", "aps:UpdateScraper", auth.Scraper, a.updateScraper),
		route("DELETE /scrapers/{scraperId}", "aps:DeleteScraper", auth.Scraper, a.deleteScraper),
		route("GET /scrapers/{scraperId}/logging-configuration", "aps:DescribeScraperLoggingConfiguration", auth.Scraper, a.describeScraperLogging),
		route("PUT /scrapers/{scraperId}/logging-configuration", "aps:UpdateScraperLoggingConfiguration", auth.Scraper, a.updateScraperLogging),
		route("DELETE /scrapers/{scraperId}/logging-configuration", "aps:DeleteScraperLoggingConfiguration", auth.Scraper, a.deleteScraperLogging),
		route("GET /scraperconfiguration", "aps:GetDefaultScraperConfiguration", auth.AnyResource, a.defaultScraperConfiguration),
	}
}

// NewScraperID returns a fresh scraper id in AMP's format, s-<uuid>.
func NewScraperID() string { return "s-" + uuid.NewString() }

var scraperIDRE = regexp.MustCompile(`^s-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// ScraperARN returns a scraper's ARN.
func (a *API) ScraperARN(id string) string {
	return fmt.Sprintf("arn:aws:aps:%s:%s:scraper/%s", a.cfg.Region, a.cfg.AccountID, id)
}

// sourceJSON is AMP's Source union: exactly one member is set.
type sourceJSON struct {
	VpcConfiguration *struct {
		SecurityGroupIds []string `json:"securityGroupIds"`
		SubnetIds        []string `json:"subnetIds"`
	} `json:"vpcConfiguration,omitempty"`
	EksConfiguration *struct {
		ClusterArn       string   `json:"clusterArn"`
		SecurityGroupIds []string `json:"securityGroupIds,omitempty"`
		SubnetIds        []string `json:"subnetIds"`
	} `json:"eksConfiguration,omitempty"`
}

// scraperDestinationJSON is AMP's Destination union; Orrery has only
// workspaces (ampConfiguration), not CloudWatch.
type scraperDestinationJSON struct {
	AmpConfiguration *struct {
		WorkspaceArn string `json:"workspaceArn"`
	} `json:"ampConfiguration,omitempty"`
	CloudWatchConfiguration json.RawMessage `json:"cloudWatchConfiguration,omitempty"`
}

type scrapeConfigurationJSON struct {
	ConfigurationBlob []byte `json:"configurationBlob"` // base64 in JSON.
}

type scraperRequest struct {
	Alias               *string                  `json:"alias"`
	ScrapeConfiguration *scrapeConfigurationJSON `json:"scrapeConfiguration"`
	Source              *sourceJSON              `json:"source"`
	Destination         *scraperDestinationJSON  `json:"destination"`
	RoleConfiguration   json.RawMessage          `json:"roleConfiguration"`
	ClientToken         string                   `json:"clientToken"`
	Tags                map[string]string        `json:"tags"`
	Exporters           json.RawMessage          `json:"exporters"`
}

var scraperAliasRE = regexp.MustCompile(`^[0-9A-Za-z][-.0-9A-Z_a-z]{0,99}$`)

// checkScraperFields checks the alias and exporters of a create or update.
func checkScraperFields(req *scraperRequest) error {
	if req.Alias != nil && !scraperAliasRE.MatchString(*req.Alias) {
		return validation("alias %q must be 1 to 100 characters: letters, digits, '.', '-', '_'", *req.Alias)
	}
	if e := string(req.Exporters); e != "" && e != "null" && e != "[]" {
		return validation("exporters are not supported: Orrery's scrapers write into their destination workspace only")
	}
	return nil
}

// checkSource checks AMP's source union, and returns it as stored.
func checkSource(s *sourceJSON) (json.RawMessage, error) {
	switch {
	case s == nil:
		return nil, validation("source is required: give vpcConfiguration (targets reached by address) or eksConfiguration")
	case (s.VpcConfiguration == nil) == (s.EksConfiguration == nil):
		return nil, validation("source: give exactly one of vpcConfiguration and eksConfiguration")
	case s.EksConfiguration != nil && s.EksConfiguration.ClusterArn == "":
		return nil, validation("source.eksConfiguration.clusterArn is required")
	}
	b, err := json.Marshal(s)
	return b, err
}

// destinationWorkspace resolves the destination to a workspace of this
// server that is not being deleted.
func (a *API) destinationWorkspace(ctx context.Context, d *scraperDestinationJSON) (workspace.ID, error) {
	switch {
	case d == nil:
		return "", validation("destination is required: give ampConfiguration.workspaceArn, a workspace of this server")
	case len(d.CloudWatchConfiguration) > 0:
		return "", validation("destination.cloudWatchConfiguration is not supported: Orrery's scrapers write into a workspace (ampConfiguration)")
	case d.AmpConfiguration == nil:
		return "", validation("destination.ampConfiguration is required")
	}
	arn := d.AmpConfiguration.WorkspaceArn
	prefix := fmt.Sprintf("arn:aws:aps:%s:%s:workspace/", a.cfg.Region, a.cfg.AccountID)
	rest, ok := strings.CutPrefix(arn, prefix)
	if !ok {
		return "", validation("destination.ampConfiguration.workspaceArn %q is not a workspace of this server: want %s<workspace id>", arn, prefix)
	}
	id, err := workspace.ParseID(rest)
	if err != nil {
		return "", validation("destination.ampConfiguration.workspaceArn %q: %v", arn, err)
	}
	ws, err := a.cat.GetWorkspace(ctx, id)
	if failure.KindOf(err) == failure.NotFound {
		return "", failure.Errorf(failure.NotFound, "destination.ampConfiguration.workspaceArn %q: no such workspace", arn)
	}
	if err != nil {
		return "", err
	}
	if ws.Status == catalog.StatusDeleting {
		return "", validation("destination.ampConfiguration.workspaceArn %q: the workspace is being deleted", arn)
	}
	return id, nil
}

// ValidateScrapeConfiguration loads a scraper's configuration blob with
// Prometheus' configuration loader, as a Prometheus server would load it
// (the error names the line of a YAML mistake), and refuses what a
// scraper does not do: remote write and read (it writes to its
// destination), rules and alerting (the workspace has its own). It
// returns the configuration and how many targets its static_configs give.
func ValidateScrapeConfiguration(blob []byte) (*config.Config, int, error) {
	switch {
	case len(blob) == 0:
		return nil, 0, validation("scrapeConfiguration.configurationBlob is empty: send a Prometheus configuration (YAML with scrape_configs), base64-encoded")
	case len(blob) > MaxScrapeConfigurationBytes:
		return nil, 0, validation("scrapeConfiguration.configurationBlob is %d bytes, more than the %d a scraper's configuration may have", len(blob), MaxScrapeConfigurationBytes)
	}
	cfg, err := config.Load(string(blob), slog.New(slog.DiscardHandler))
	if err != nil {
		return nil, 0, validation("scrapeConfiguration.configurationBlob is not a valid Prometheus configuration: %v", err)
	}
	var unsupported []string
	if len(cfg.RemoteWriteConfigs) > 0 {
		unsupported = append(unsupported, "remote_write (a scraper writes to its destination workspace)")
	}
	if len(cfg.RemoteReadConfigs) > 0 {
		unsupported = append(unsupported, "remote_read")
	}
	if len(cfg.RuleFiles) > 0 {
		unsupported = append(unsupported, "rule_files (put rules in the workspace's rule groups namespaces)")
	}
	if len(cfg.AlertingConfig.AlertmanagerConfigs) > 0 || len(cfg.AlertingConfig.AlertRelabelConfigs) > 0 {
		unsupported = append(unsupported, "alerting (the workspace has its alert manager)")
	}
	if len(unsupported) > 0 {
		return nil, 0, validation("scrapeConfiguration.configurationBlob: a scraper's configuration may not have %s", strings.Join(unsupported, ", "))
	}
	scfgs, err := cfg.GetScrapeConfigs()
	if err != nil {
		return nil, 0, validation("scrapeConfiguration.configurationBlob: %v", err)
	}
	if len(scfgs) == 0 {
		return nil, 0, validation("scrapeConfiguration.configurationBlob has no scrape_configs: a scraper needs at least one job")
	}
	static := 0
	for _, sc := range scfgs {
		for _, sd := range sc.ServiceDiscoveryConfigs {
			if groups, ok := sd.(discovery.StaticConfig); ok {
				for _, g := range groups {
					static += len(g.Targets)
				}
			}
		}
	}
	return cfg, static, nil
}

// checkScrapeConfiguration validates the blob and the scraper's target
// limit on its static targets (the runner enforces it on discovered ones).
func (a *API) checkScrapeConfiguration(sc *scrapeConfigurationJSON) error {
	if sc == nil {
		return validation("scrapeConfiguration is required")
	}
	_, static, err := ValidateScrapeConfiguration(sc.ConfigurationBlob)
	if err != nil {
		return err
	}
	if limit := a.cfg.MaxScraperTargets; limit > 0 && static > limit {
		return quotaExceeded("scrapeConfiguration has %d static targets, more than the %d a scraper may have (--scraper.max-targets)", static, limit)
	}
	return nil
}

func (a *API) createScraper(w http.ResponseWriter, r *http.Request) {
	var req scraperRequest
	if err := decodeStrict(r, &req); err != nil {
		a.fail(w, err)
		return
	}
	if err := checkScraperFields(&req); err != nil {
		a.fail(w, err)
		return
	}
	alias := ""
	if req.Alias != nil {
		alias = *req.Alias
	}
	if len(req.Tags) > 50 {
		a.fail(w, validation("a resource has at most 50 tags, not %d", len(req.Tags)))
		return
	}
	src, err := checkSource(req.Source)
	if err != nil {
		a.fail(w, err)
		return
	}
	if err := a.checkScrapeConfiguration(req.ScrapeConfiguration); err != nil {
		a.fail(w, err)
		return
	}
	ws, err := a.destinationWorkspace(r.Context(), req.Destination)
	if err != nil {
		a.fail(w, err)
		return
	}
	now := a.now()
	s, _, err := a.cat.CreateScraper(r.Context(), catalog.Scraper{ID: NewScraperID(), Alias: alias, Status: catalog.ScraperCreating,
		Workspace: ws, Source: src, RoleConfiguration: nullIfEmpty(req.RoleConfiguration), Configuration: req.ScrapeConfiguration.ConfigurationBlob,
		Tags: req.Tags, ClientToken: req.ClientToken, CreatedAt: now, ModifiedAt: now}, a.cfg.MaxScrapers)
	if err != nil {
		a.fail(w, err)
		return
	}
	reply(w, http.StatusAccepted, map[string]any{"arn": a.ScraperARN(s.ID), "scraperId": s.ID, "status": statusJSON{s.Status}, "tags": s.Tags})
}

// nullIfEmpty stores an absent or null optional structure as nothing.
func nullIfEmpty(b json.RawMessage) json.RawMessage {
	if len(b) == 0 || string(b) == "null" {
		return nil
	}
	return b
}

// scraper returns the scraper of the path, checking the id's form first
// so that a malformed one reads as such rather than as missing.
func (a *API) scraper(r *http.Request) (catalog.Scraper, error) {
	id := r.PathValue("scraperId")
	if !scraperIDRE.MatchString(id) {
		return catalog.Scraper{}, validation("scraperId %q is not a scraper id (s-<uuid>)", id)
	}
	return a.cat.Scraper(r.Context(), id)
}

// scraperJSON is AMP's ScraperDescription, or with withConfig false its
// ScraperSummary.
func (a *API) scraperJSON(s catalog.Scraper, withConfig bool) map[string]any {
	out := map[string]any{
		"arn": a.ScraperARN(s.ID), "scraperId": s.ID, "status": statusJSON{s.Status},
		"createdAt": seconds(s.CreatedAt), "lastModifiedAt": seconds(s.ModifiedAt), "tags": nonNilTags(s.Tags),
		"source":      s.Source,
		"destination": map[string]any{"ampConfiguration": map[string]string{"workspaceArn": a.ARN(s.Workspace)}},
		// Orrery scrapes as itself; AMP's service-linked role is named
		// for tools that expect one.
		"roleArn": fmt.Sprintf("arn:aws:iam::%s:role/aws-service-role/scraper.aps.amazonaws.com/AWSServiceRoleForAmazonPrometheusScraper", a.cfg.AccountID),
	}
	if s.Alias != "" {
		out["alias"] = s.Alias
	}
	if s.StatusReason != "" {
		out["statusReason"] = s.StatusReason
	}
	if len(s.RoleConfiguration) > 0 {
		out["roleConfiguration"] = s.RoleConfiguration
	}
	if withConfig {
		out["scrapeConfiguration"] = map[string]string{"configurationBlob": base64.StdEncoding.EncodeToString(s.Configuration)}
	}
	return out
}

func nonNilTags(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

func (a *API) describeScraper(w http.ResponseWriter, r *http.Request) {
	s, err := a.scraper(r)
	if err != nil {
		a.fail(w, err)
		return
	}
	reply(w, http.StatusOK, map[string]any{"scraper": a.scraperJSON(s, true)})
}

// scraperFilters are ListScrapers' filter keys, as AMP's.
var scraperFilters = []string{"alias", "destinationArn", "sourceArn", "status"}

// matches reports whether a scraper passes the filters: any value of a
// key, every key.
func (a *API) matches(s catalog.Scraper, filters map[string][]string) bool {
	for key, values := range filters {
		var have string
		switch key {
		case "alias":
			have = s.Alias
		case "destinationArn":
			have = a.ARN(s.Workspace)
		case "status":
			have = s.Status
		case "sourceArn":
			var src sourceJSON
			if json.Unmarshal(s.Source, &src) == nil && src.EksConfiguration != nil {
				have = src.EksConfiguration.ClusterArn
			}
		}
		if !slices.Contains(values, have) {
			return false
		}
	}
	return true
}

func (a *API) listScrapers(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit, after, err := pageQuery(r)
	if err != nil {
		a.fail(w, err)
		return
	}
	filters := map[string][]string{}
	for key, values := range q {
		if key == "maxResults" || key == "nextToken" {
			continue
		}
		if !slices.Contains(scraperFilters, key) {
			a.fail(w, validation("filter %q is not one of ListScrapers' filters (%s)", key, strings.Join(scraperFilters, ", ")))
			return
		}
		filters[key] = values
	}
	// The filters apply to the catalog's pages: read them until one more
	// than this page matched (there is a next page) or the scrapers end.
	var found []catalog.Scraper
	for len(found) <= limit {
		page, err := a.cat.Scrapers(r.Context(), after, 500)
		if err != nil {
			a.fail(w, err)
			return
		}
		for _, s := range page {
			if a.matches(s, filters) {
				found = append(found, s)
			}
		}
		if len(page) < 500 {
			break
		}
		after = page[len(page)-1].ID
	}
	out := map[string]any{}
	if len(found) > limit {
		found = found[:limit]
		out["nextToken"] = pageToken(found[limit-1].ID)
	}
	list := make([]map[string]any, 0, len(found))
	for _, s := range found {
		list = append(list, a.scraperJSON(s, false))
	}
	out["scrapers"] = list
	reply(w, http.StatusOK, out)
}

func (a *API) updateScraper(w http.ResponseWriter, r *http.Request) {
	s, err := a.scraper(r)
	if err != nil {
		a.fail(w, err)
		return
	}
	var req scraperRequest
	if err := decodeStrict(r, &req); err != nil {
		a.fail(w, err)
		return
	}
	if req.Source != nil || req.Tags != nil {
		a.fail(w, validation("UpdateScraper does not change source or tags: create a new scraper, or use TagResource"))
		return
	}
	if s.Status != catalog.ScraperActive {
		a.fail(w, failure.Errorf(failure.Conflict, "scraper %s is %s: only an ACTIVE scraper can be updated", s.ID, s.Status))
		return
	}
	if err := checkScraperFields(&req); err != nil {
		a.fail(w, err)
		return
	}
	if req.Alias != nil {
		s.Alias = *req.Alias
	}
	if req.ScrapeConfiguration != nil {
		if err := a.checkScrapeConfiguration(req.ScrapeConfiguration); err != nil {
			a.fail(w, err)
			return
		}
		s.Configuration = req.ScrapeConfiguration.ConfigurationBlob
	}
	if req.Destination != nil {
		if s.Workspace, err = a.destinationWorkspace(r.Context(), req.Destination); err != nil {
			a.fail(w, err)
			return
		}
	}
	if rc := nullIfEmpty(req.RoleConfiguration); rc != nil {
		s.RoleConfiguration = rc
	}
	s.Status, s.StatusReason, s.ModifiedAt = catalog.ScraperUpdating, "", a.now()
	if err := a.cat.UpdateScraper(r.Context(), s); err != nil {
		a.fail(w, err)
		return
	}
	reply(w, http.StatusAccepted, map[string]any{"arn": a.ScraperARN(s.ID), "scraperId": s.ID, "status": statusJSON{s.Status}, "tags": nonNilTags(s.Tags)})
}

// deleteScraper marks the scraper DELETING and answers 202; the runner
// stops its scrape and removes the record, as AMP deletes asynchronously.
func (a *API) deleteScraper(w http.ResponseWriter, r *http.Request) {
	s, err := a.scraper(r)
	if err != nil {
		a.fail(w, err)
		return
	}
	if s.Status != catalog.ScraperDeleting {
		s.Status, s.StatusReason, s.ModifiedAt = catalog.ScraperDeleting, "", a.now()
		if err := a.cat.UpdateScraper(r.Context(), s); err != nil {
			a.fail(w, err)
			return
		}
	}
	reply(w, http.StatusAccepted, map[string]any{"scraperId": s.ID, "status": statusJSON{s.Status}})
}

// scraperLoggingJSON is AMP's UpdateScraperLoggingConfiguration request,
// stored as sent. Orrery logs a scraper's failures to the server's log,
// with the scraper key, whatever the configuration says; it keeps the
// configuration so that tools managing it find what they set.
type scraperLoggingJSON struct {
	LoggingDestination *struct {
		CloudWatchLogs *struct {
			LogGroupArn string `json:"logGroupArn"`
		} `json:"cloudWatchLogs"`
	} `json:"loggingDestination"`
	ScraperComponents []struct {
		Type   string `json:"type"`
		Config *struct {
			Options map[string]string `json:"options,omitempty"`
		} `json:"config,omitempty"`
	} `json:"scraperComponents"`
}

var scraperComponentTypes = []string{"SERVICE_DISCOVERY", "COLLECTOR", "EXPORTER"}

func (a *API) updateScraperLogging(w http.ResponseWriter, r *http.Request) {
	s, err := a.scraper(r)
	if err != nil {
		a.fail(w, err)
		return
	}
	var req scraperLoggingJSON
	if err := decodeStrict(r, &req); err != nil {
		a.fail(w, err)
		return
	}
	d := req.LoggingDestination
	switch {
	case d == nil || d.CloudWatchLogs == nil:
		a.fail(w, validation("loggingDestination.cloudWatchLogs is required"))
		return
	case !logGroupARN.MatchString(d.CloudWatchLogs.LogGroupArn):
		a.fail(w, validation("loggingDestination.cloudWatchLogs.logGroupArn %q is not a log group ARN (arn:aws:logs:REGION:ACCOUNT:log-group:NAME:*)", d.CloudWatchLogs.LogGroupArn))
		return
	}
	for i, c := range req.ScraperComponents {
		if !slices.Contains(scraperComponentTypes, c.Type) {
			a.fail(w, validation("scraperComponents[%d].type %q must be one of %s", i, c.Type, strings.Join(scraperComponentTypes, ", ")))
			return
		}
	}
	b, err := json.Marshal(req)
	if err != nil {
		a.fail(w, err)
		return
	}
	s.Logging, s.ModifiedAt = b, a.now()
	if err := a.cat.UpdateScraper(r.Context(), s); err != nil {
		a.fail(w, err)
		return
	}
	reply(w, http.StatusAccepted, map[string]any{"status": statusJSON{"ACTIVE"}})
}

// scraperWithLogging returns the scraper of the path if it has a logging
// configuration.
func (a *API) scraperWithLogging(r *http.Request) (catalog.Scraper, error) {
	s, err := a.scraper(r)
	if err == nil && len(s.Logging) == 0 {
		err = failure.Errorf(failure.NotFound, "scraper %s has no logging configuration", s.ID)
	}
	return s, err
}

func (a *API) describeScraperLogging(w http.ResponseWriter, r *http.Request) {
	s, err := a.scraperWithLogging(r)
	if err != nil {
		a.fail(w, err)
		return
	}
	var cfg scraperLoggingJSON
	if err := json.Unmarshal(s.Logging, &cfg); err != nil {
		a.fail(w, fmt.Errorf("logging configuration of scraper %s: %w", s.ID, err))
		return
	}
	reply(w, http.StatusOK, map[string]any{"scraperId": s.ID, "status": statusJSON{"ACTIVE"}, "modifiedAt": seconds(s.ModifiedAt),
		"loggingDestination": cfg.LoggingDestination, "scraperComponents": cfg.ScraperComponents})
}

func (a *API) deleteScraperLogging(w http.ResponseWriter, r *http.Request) {
	s, err := a.scraperWithLogging(r)
	if err != nil {
		a.fail(w, err)
		return
	}
	s.Logging, s.ModifiedAt = nil, a.now()
	if err := a.cat.UpdateScraper(r.Context(), s); err != nil {
		a.fail(w, err)
		return
	}
	w.WriteHeader(http.StatusAccepted)
}

// DefaultScraperConfiguration is GetDefaultScraperConfiguration's answer:
// AMP's default for an EKS cluster, in the same spirit (the API server,
// kubelets, cAdvisor, pods annotated prometheus.io/scrape, and Envoy
// sidecars' stats). It uses kubernetes_sd_configs, and so needs an
// eksConfiguration source.
const DefaultScraperConfiguration = `global:
  scrape_interval: 30s
scrape_configs:
  - job_name: kubernetes-apiservers
    kubernetes_sd_configs:
      - role: endpoints
    scheme: https
    authorization:
      credentials_file: /var/run/secrets/kubernetes.io/serviceaccount/token
    tls_config:
      ca_file: /var/run/secrets/kubernetes.io/serviceaccount/ca.crt
    relabel_configs:
      - source_labels: [__meta_kubernetes_namespace, __meta_kubernetes_service_name, __meta_kubernetes_endpoint_port_name]
        action: keep
        regex: default;kubernetes;https
  - job_name: kubernetes-nodes
    kubernetes_sd_configs:
      - role: node
    scheme: https
    authorization:
      credentials_file: /var/run/secrets/kubernetes.io/serviceaccount/token
    tls_config:
      ca_file: /var/run/secrets/kubernetes.io/serviceaccount/ca.crt
    relabel_configs:
      - action: labelmap
        regex: __meta_kubernetes_node_label_(.+)
  - job_name: kubernetes-cadvisor
    kubernetes_sd_configs:
      - role: node
    scheme: https
    metrics_path: /metrics/cadvisor
    authorization:
      credentials_file: /var/run/secrets/kubernetes.io/serviceaccount/token
    tls_config:
      ca_file: /var/run/secrets/kubernetes.io/serviceaccount/ca.crt
    relabel_configs:
      - action: labelmap
        regex: __meta_kubernetes_node_label_(.+)
  - job_name: kubernetes-pods
    kubernetes_sd_configs:
      - role: pod
    relabel_configs:
      - source_labels: [__meta_kubernetes_pod_annotation_prometheus_io_scrape]
        action: keep
        regex: "true"
      - source_labels: [__meta_kubernetes_pod_annotation_prometheus_io_path]
        action: replace
        target_label: __metrics_path__
        regex: (.+)
      - source_labels: [__address__, __meta_kubernetes_pod_annotation_prometheus_io_port]
        action: replace
        regex: ([^:]+)(?::\d+)?;(\d+)
        replacement: $1:$2
        target_label: __address__
      - source_labels: [__meta_kubernetes_namespace]
        target_label: namespace
      - source_labels: [__meta_kubernetes_pod_name]
        target_label: pod
  - job_name: envoy-stats
    metrics_path: /stats/prometheus
    kubernetes_sd_configs:
      - role: pod
    relabel_configs:
      - source_labels: [__meta_kubernetes_pod_container_port_name]
        action: keep
        regex: ".*-envoy-prom"
      - source_labels: [__meta_kubernetes_namespace]
        target_label: namespace
      - source_labels: [__meta_kubernetes_pod_name]
        target_label: pod
`

func (a *API) defaultScraperConfiguration(w http.ResponseWriter, _ *http.Request) {
	reply(w, http.StatusOK, map[string]any{"configuration": []byte(DefaultScraperConfiguration)})
}
