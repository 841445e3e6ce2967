package controlplane

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/orrery-dev/orrery/internal/auth"
	"github.com/orrery-dev/orrery/internal/catalog"
	"github.com/orrery-dev/orrery/internal/failure"
	"github.com/orrery-dev/orrery/internal/workspace"
)

// Lifecycle is what the control plane needs of the engine: deleting a
// workspace's data and applying its configuration (a workspace's data is
// created on its first write, not here). Implementations are safe for
// concurrent use.
type Lifecycle interface {
	DeleteWorkspaceData(ctx context.Context, id workspace.ID) error
	// ApplyConfiguration makes the engine use a workspace's configured
	// retention (days, 0: default), out-of-order window (seconds, -1:
	// default) and label set limits.
	ApplyConfiguration(id workspace.ID, cfg catalog.Configuration) error
	// DefaultConfiguration reports the values used when not configured.
	DefaultConfiguration() (retentionDays, oooSeconds int)
	// SyncRules is called after every successful create, put or delete of
	// a rule groups namespace, and SyncAlertmanager after every change of
	// an alert manager definition, so the change applies at once. An error
	// is logged, not returned to the client: the engine's periodic resync
	// applies the change later.
	SyncRules(ctx context.Context, id workspace.ID) error
	SyncAlertmanager(ctx context.Context, id workspace.ID) error
}

// Config configures the API.
type Config struct {
	Region    string // in ARNs, e.g. us-east-1.
	AccountID string // in ARNs, 12 digits.
	// EndpointURL is the external base URL, for prometheusEndpoint.
	EndpointURL string
	// Sealer seals alert manager definitions at rest (they hold receivers'
	// credentials); required.
	Sealer *catalog.Sealer
	// AllowServerAWSCredentials admits alert manager definitions whose SNS
	// receivers have neither keys nor a role, and so publish with the
	// server's own AWS credentials (alerting.CheckSNSCredentials). Only
	// for deployments whose workspaces all belong to the operator.
	AllowServerAWSCredentials bool
	// DetectorsChanged, if set, is called after every change of a
	// workspace's anomaly detectors, so that they run at once; it must not
	// block.
	DetectorsChanged func(workspace.ID)
	// MaxScrapers is how many managed scrapers the server may hold, and
	// MaxScraperTargets how many targets one may scrape; 0: no limit.
	MaxScrapers, MaxScraperTargets int
}

// API serves the workspace operations.
type API struct {
	cfg    Config
	cat    *catalog.Catalog
	engine Lifecycle
	limits workspace.LimitsSource // rule quotas.
	logger *slog.Logger
	now    func() time.Time
}

// New returns an API. limits gives the workspaces' rule quotas.
func New(cfg Config, cat *catalog.Catalog, engine Lifecycle, limits workspace.LimitsSource, logger *slog.Logger) (*API, error) {
	if cat == nil || engine == nil || limits == nil || cfg.Sealer == nil {
		return nil, errors.New("control plane needs a catalog, an engine, limits and a sealer")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	if cfg.AccountID == "" {
		cfg.AccountID = "000000000000"
	}
	return &API{cfg: cfg, cat: cat, engine: engine, limits: limits, logger: logger.With("component", "controlplane"), now: time.Now}, nil
}

// Routes returns the API's routes with the AMP action each needs. Every
// control-plane call is audited.
func (a *API) Routes() []auth.Route {
	rs := []auth.Route{
		route("POST /workspaces", "aps:CreateWorkspace", auth.AllWorkspaces, a.createWorkspace),
		route("GET /workspaces", "aps:ListWorkspaces", auth.AllWorkspaces, a.listWorkspaces),
		route("GET /workspaces/{id}", "aps:DescribeWorkspace", auth.Workspace, a.describeWorkspace),
		route("DELETE /workspaces/{id}", "aps:DeleteWorkspace", auth.Workspace, a.deleteWorkspace),
		route("POST /workspaces/{id}/alias", "aps:UpdateWorkspaceAlias", auth.Workspace, a.updateAlias),
		route("GET /workspaces/{id}/configuration", "aps:DescribeWorkspaceConfiguration", auth.Workspace, a.describeConfiguration),
		route("PATCH /workspaces/{id}/configuration", "aps:UpdateWorkspaceConfiguration", auth.Workspace, a.updateConfiguration),
	}
	rs = append(rs, a.ruleRoutes()...)
	rs = append(rs, a.alertmanagerRoutes()...)
	rs = append(rs, a.loggingRoutes()...)
	rs = append(rs, a.anomalyRoutes()...)
	rs = append(rs, a.queryLoggingRoutes()...)
	rs = append(rs, a.policyRoutes()...)
	rs = append(rs, a.scraperRoutes()...)
	return append(rs,
		route("GET /tags/{arn...}", "aps:ListTagsForResource", auth.TaggedResource, a.listTags),
		route("POST /tags/{arn...}", "aps:TagResource", auth.TaggedResource, a.tagResource),
		route("DELETE /tags/{arn...}", "aps:UntagResource", auth.TaggedResource, a.untagResource),
	)
}

// route is an audited control-plane route.
func route(pattern, action string, res auth.Resource, h http.HandlerFunc) auth.Route {
	return auth.Route{Pattern: pattern, Action: action, Resource: res, Audited: true, Handler: h}
}

// Register adds routes' handlers to mux, without their authorization: for
// tests and tools that authorize otherwise.
func Register(mux *http.ServeMux, routes []auth.Route) {
	for _, rt := range routes {
		mux.Handle(rt.Pattern, rt.Handler)
	}
}

// ARN returns a workspace's ARN.
func (a *API) ARN(id workspace.ID) string {
	return fmt.Sprintf("arn:aws:aps:%s:%s:workspace/%s", a.cfg.Region, a.cfg.AccountID, id)
}

func validation(format string, args ...any) error {
	return failure.Errorf(failure.Invalid, format, args...)
}

// quotaExceeded is AMP's ServiceQuotaExceededException (402).
func quotaExceeded(format string, args ...any) error {
	return failure.WithCode(failure.Limited, "ServiceQuotaExceededException", format, args...)
}

// fail answers err on the AWS surface; an error without a kind is logged
// and answered 500 without its message.
func (a *API) fail(w http.ResponseWriter, err error) {
	if failure.KindOf(err) == failure.Internal {
		a.logger.Error("control plane request failed", "err", err)
	}
	failure.WriteAWS(w, err, "internal error; see the server log")
}

func reply(w http.ResponseWriter, status int, body any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	if body != nil {
		_ = json.NewEncoder(w).Encode(body)
	}
}

type statusJSON struct {
	StatusCode string `json:"statusCode"`
}

type workspaceJSON struct {
	Alias              string            `json:"alias,omitempty"`
	Arn                string            `json:"arn"`
	CreatedAt          float64           `json:"createdAt"`
	PrometheusEndpoint string            `json:"prometheusEndpoint,omitempty"`
	Status             statusJSON        `json:"status"`
	Tags               map[string]string `json:"tags,omitempty"`
	WorkspaceID        string            `json:"workspaceId"`
}

func (a *API) describe(ws catalog.Workspace) workspaceJSON {
	return workspaceJSON{Alias: ws.Alias, Arn: a.ARN(ws.ID), CreatedAt: float64(ws.CreatedAt.UnixMilli()) / 1000,
		PrometheusEndpoint: a.cfg.EndpointURL + "/workspaces/" + ws.ID.String() + "/",
		Status:             statusJSON{ws.Status}, Tags: ws.Tags, WorkspaceID: ws.ID.String()}
}

var aliasRE = regexp.MustCompile(`^[\x{0020}-\x{D7FF}\x{E000}-\x{FFFD}\x{10000}-\x{10FFFF}]*$`)

func checkAlias(alias string) error {
	if len(alias) > 100 || !aliasRE.MatchString(alias) {
		return validation("alias must be at most 100 printable characters")
	}
	return nil
}

// pageToken is the nextToken of a page ending with the item of key.
func pageToken(key string) string { return base64.RawURLEncoding.EncodeToString([]byte(key)) }

func decode(r *http.Request, v any) error { return decodeBody(r, v, false) }

// decodeStrict is decode refusing fields the operation does not have, and
// anything after the JSON object: the operations added with it were never
// lenient, so no client depends on leniency.
func decodeStrict(r *http.Request, v any) error { return decodeBody(r, v, true) }

func decodeBody(r *http.Request, v any, strict bool) error {
	if r.ContentLength == 0 {
		return nil
	}
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, 1<<20))
	if strict {
		dec.DisallowUnknownFields()
	}
	if err := dec.Decode(v); err != nil {
		return validation("request body: %v", err)
	}
	if strict && dec.More() {
		return validation("request body: data after the JSON object")
	}
	return nil
}

func (a *API) createWorkspace(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Alias       string            `json:"alias"`
		ClientToken string            `json:"clientToken"`
		Tags        map[string]string `json:"tags"`
		KmsKeyArn   string            `json:"kmsKeyArn"`
	}
	if err := decode(r, &req); err != nil {
		a.fail(w, err)
		return
	}
	if err := checkAlias(req.Alias); err != nil {
		a.fail(w, err)
		return
	}
	if req.KmsKeyArn != "" {
		a.fail(w, validation("kmsKeyArn is not supported: Orrery encrypts its own secrets at rest"))
		return
	}
	ws, _, err := a.cat.CreateWorkspace(r.Context(), catalog.Workspace{ID: workspace.NewID(), Alias: req.Alias,
		Status: catalog.StatusActive, CreatedAt: a.now(), Tags: req.Tags, ClientToken: req.ClientToken})
	if err != nil {
		a.fail(w, err)
		return
	}
	reply(w, http.StatusAccepted, map[string]any{"arn": a.ARN(ws.ID), "status": statusJSON{ws.Status},
		"tags": ws.Tags, "workspaceId": ws.ID.String()})
}

func (a *API) workspaceID(r *http.Request) (workspace.ID, error) {
	id, err := workspace.ParseID(r.PathValue("id"))
	if err != nil {
		return "", validation("%v", err)
	}
	return id, nil
}

func (a *API) describeWorkspace(w http.ResponseWriter, r *http.Request) {
	id, err := a.workspaceID(r)
	if err != nil {
		a.fail(w, err)
		return
	}
	ws, err := a.cat.GetWorkspace(r.Context(), id)
	if err != nil {
		a.fail(w, err)
		return
	}
	reply(w, http.StatusOK, map[string]any{"workspace": a.describe(ws)})
}

func (a *API) listWorkspaces(w http.ResponseWriter, r *http.Request) {
	limit, after, err := pageQuery(r)
	if err != nil {
		a.fail(w, err)
		return
	}
	page, err := a.cat.ListWorkspaces(r.Context(), r.URL.Query().Get("alias"), workspace.ID(after), limit+1)
	if err != nil {
		a.fail(w, err)
		return
	}
	replyPage(w, page, limit, "workspaces", func(ws catalog.Workspace) string { return string(ws.ID) }, func(ws catalog.Workspace) any {
		d := a.describe(ws)
		d.PrometheusEndpoint = ""
		return d
	})
}

// pageQuery reads the paging parameters of a List call: maxResults (1 to
// 1000, 100 by default) and nextToken, the cursor after which the page
// starts (empty for the first page).
func pageQuery(r *http.Request) (limit int, after string, err error) {
	q := r.URL.Query()
	limit = 100
	if s := q.Get("maxResults"); s != "" {
		if limit, err = strconv.Atoi(s); err != nil || limit < 1 || limit > 1000 {
			return 0, "", validation("maxResults must be 1 to 1000")
		}
	}
	if tok := q.Get("nextToken"); tok != "" {
		b, err := base64.RawURLEncoding.DecodeString(tok)
		if err != nil {
			return 0, "", validation("nextToken is not one this server issued")
		}
		after = string(b)
	}
	return limit, after, nil
}

// replyPage answers a List call with a page fetched with limit+1 items:
// the extra one, dropped, says a next page follows the last one kept,
// whose cursor the nextToken holds. key names the list in the answer.
func replyPage[T any](w http.ResponseWriter, page []T, limit int, key string, cursor func(T) string, item func(T) any) {
	out := map[string]any{}
	if len(page) > limit {
		page = page[:limit]
		out["nextToken"] = pageToken(cursor(page[limit-1]))
	}
	list := make([]any, 0, len(page))
	for _, x := range page {
		list = append(list, item(x))
	}
	out[key] = list
	reply(w, http.StatusOK, out)
}

func (a *API) updateAlias(w http.ResponseWriter, r *http.Request) {
	id, err := a.workspaceID(r)
	if err != nil {
		a.fail(w, err)
		return
	}
	var req struct {
		Alias       string `json:"alias"`
		ClientToken string `json:"clientToken"`
	}
	if err := decode(r, &req); err != nil {
		a.fail(w, err)
		return
	}
	if err := checkAlias(req.Alias); err != nil {
		a.fail(w, err)
		return
	}
	if err := a.cat.UpdateWorkspace(r.Context(), id, &req.Alias, nil, nil); err != nil {
		a.fail(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// deleteWorkspace marks the workspace DELETING, answers 202, and removes
// its data and record in the background, as AMP does asynchronously.
func (a *API) deleteWorkspace(w http.ResponseWriter, r *http.Request) {
	id, err := a.workspaceID(r)
	if err != nil {
		a.fail(w, err)
		return
	}
	deleting := catalog.StatusDeleting
	if err := a.cat.UpdateWorkspace(r.Context(), id, nil, &deleting, nil); err != nil {
		a.fail(w, err)
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		if err := a.engine.DeleteWorkspaceData(ctx, id); err != nil {
			a.logger.Error("delete workspace data; the workspace stays DELETING and can be deleted again", "workspace", id, "err", err)
			return
		}
		if err := a.cat.RemoveWorkspace(ctx, id); err != nil {
			a.logger.Error("remove workspace record", "workspace", id, "err", err)
		}
	}()
	w.WriteHeader(http.StatusAccepted)
}

// tagged is a resource that carries tags: a workspace, a scraper or an
// anomaly detector.
type tagged struct {
	tags map[string]string
	set  func(ctx context.Context, tags map[string]string) error
}

// taggedResource resolves a tagged resource's ARN: a workspace's, a
// scraper's or an anomaly detector's.
func (a *API) taggedResource(r *http.Request) (tagged, error) {
	arn := r.PathValue("arn")
	prefix := fmt.Sprintf("arn:aws:aps:%s:%s:", a.cfg.Region, a.cfg.AccountID)
	rest, ok := strings.CutPrefix(arn, prefix)
	if !ok {
		return tagged{}, validation("resource ARN %q: want %sworkspace/<workspace id>, %sscraper/<scraper id> or %sanomalydetector/<workspace id>/<detector id>", arn, prefix, prefix, prefix)
	}
	if id, ok := strings.CutPrefix(rest, "scraper/"); ok {
		// Terraform's aws_prometheus_scraper reads its tags by its ARN.
		if !scraperIDRE.MatchString(id) {
			return tagged{}, validation("resource ARN %q: %q is not a scraper id (s-<uuid>)", arn, id)
		}
		s, err := a.cat.Scraper(r.Context(), id)
		if err != nil {
			return tagged{}, err
		}
		return tagged{tags: s.Tags, set: func(ctx context.Context, tags map[string]string) error {
			s.Tags = tags
			return a.cat.UpdateScraper(ctx, s)
		}}, nil
	}
	if path, ok := strings.CutPrefix(rest, "anomalydetector/"); ok {
		wsID, detector, _ := strings.Cut(path, "/")
		id, err := workspace.ParseID(wsID)
		if err != nil {
			return tagged{}, validation("resource ARN %q: %v", arn, err)
		}
		d, err := a.cat.AnomalyDetector(r.Context(), id, detector)
		if err != nil {
			return tagged{}, err
		}
		return tagged{tags: d.Tags, set: func(ctx context.Context, tags map[string]string) error {
			return a.cat.SetAnomalyDetectorTags(ctx, id, detector, tags)
		}}, nil
	}
	wsID, ok := strings.CutPrefix(rest, "workspace/")
	if !ok {
		return tagged{}, validation("resource ARN %q: want %sworkspace/<workspace id>, %sscraper/<scraper id> or %sanomalydetector/<workspace id>/<detector id>", arn, prefix, prefix, prefix)
	}
	id, err := workspace.ParseID(wsID)
	if err != nil {
		return tagged{}, validation("resource ARN %q: %v", arn, err)
	}
	ws, err := a.cat.GetWorkspace(r.Context(), id)
	if err != nil {
		return tagged{}, err
	}
	return tagged{tags: ws.Tags, set: func(ctx context.Context, tags map[string]string) error {
		return a.cat.UpdateWorkspace(ctx, id, nil, nil, tags)
	}}, nil
}

func (a *API) listTags(w http.ResponseWriter, r *http.Request) {
	res, err := a.taggedResource(r)
	if err != nil {
		a.fail(w, err)
		return
	}
	reply(w, http.StatusOK, map[string]any{"tags": res.tags})
}

func (a *API) tagResource(w http.ResponseWriter, r *http.Request) {
	res, err := a.taggedResource(r)
	if err != nil {
		a.fail(w, err)
		return
	}
	var req struct {
		Tags map[string]string `json:"tags"`
	}
	if err := decode(r, &req); err != nil {
		a.fail(w, err)
		return
	}
	tags := maps.Clone(res.tags)
	if tags == nil {
		tags = map[string]string{}
	}
	maps.Copy(tags, req.Tags)
	if len(tags) > 50 {
		a.fail(w, validation("a resource has at most 50 tags"))
		return
	}
	if err := res.set(r.Context(), tags); err != nil {
		a.fail(w, err)
		return
	}
	reply(w, http.StatusOK, map[string]any{})
}

func (a *API) untagResource(w http.ResponseWriter, r *http.Request) {
	res, err := a.taggedResource(r)
	if err != nil {
		a.fail(w, err)
		return
	}
	tags := maps.Clone(res.tags)
	if tags == nil {
		tags = map[string]string{}
	}
	for _, k := range r.URL.Query()["tagKeys"] {
		delete(tags, k)
	}
	if err := res.set(r.Context(), tags); err != nil {
		a.fail(w, err)
		return
	}
	reply(w, http.StatusOK, map[string]any{})
}

// MaxRetentionDays is the longest retention a workspace may configure.
const MaxRetentionDays = 1095

func (a *API) describeConfiguration(w http.ResponseWriter, r *http.Request) {
	id, err := a.workspaceID(r)
	if err != nil {
		a.fail(w, err)
		return
	}
	ws, err := a.cat.GetWorkspace(r.Context(), id)
	if err != nil {
		a.fail(w, err)
		return
	}
	days, ooo := a.engine.DefaultConfiguration()
	if ws.RetentionDays > 0 {
		days = ws.RetentionDays
	}
	if ws.OutOfOrderWindowSeconds >= 0 {
		ooo = ws.OutOfOrderWindowSeconds
	}
	sets := make([]labelSetJSON, 0, len(ws.LabelSetLimits))
	for _, l := range ws.LabelSetLimits {
		j := labelSetJSON{LabelSet: l.LabelSet}
		j.Limits.MaxSeries = int64(l.MaxSeries)
		if j.LabelSet == nil {
			j.LabelSet = map[string]string{}
		}
		sets = append(sets, j)
	}
	reply(w, http.StatusOK, map[string]any{"workspaceConfiguration": map[string]any{
		"status": statusJSON{"ACTIVE"}, "retentionPeriodInDays": days, "outOfOrderTimeWindowInSeconds": ooo,
		"limitsPerLabelSet": sets,
	}})
}

// labelSetJSON is AMP's LimitsPerLabelSet.
type labelSetJSON struct {
	LabelSet map[string]string `json:"labelSet"`
	Limits   struct {
		MaxSeries int64 `json:"maxSeries"`
	} `json:"limits"`
}

func (a *API) updateConfiguration(w http.ResponseWriter, r *http.Request) {
	id, err := a.workspaceID(r)
	if err != nil {
		a.fail(w, err)
		return
	}
	var req struct {
		ClientToken                   string          `json:"clientToken"`
		RetentionPeriodInDays         *int            `json:"retentionPeriodInDays"`
		OutOfOrderTimeWindowInSeconds *int            `json:"outOfOrderTimeWindowInSeconds"`
		LimitsPerLabelSet             *[]labelSetJSON `json:"limitsPerLabelSet"`
	}
	if err := decode(r, &req); err != nil {
		a.fail(w, err)
		return
	}
	ws, err := a.cat.GetWorkspace(r.Context(), id)
	if err != nil {
		a.fail(w, err)
		return
	}
	cfg := ws.Configuration
	if p := req.LimitsPerLabelSet; p != nil { // Absent: unchanged; []: none.
		cfg.LabelSetLimits = make([]workspace.LabelSetLimit, 0, len(*p))
		for _, j := range *p {
			if j.Limits.MaxSeries < 0 || j.Limits.MaxSeries > math.MaxInt32 {
				a.fail(w, validation("limitsPerLabelSet: maxSeries of label set %v must be 0 to %d", j.LabelSet, math.MaxInt32))
				return
			}
			cfg.LabelSetLimits = append(cfg.LabelSetLimits, workspace.LabelSetLimit{LabelSet: j.LabelSet, MaxSeries: int(j.Limits.MaxSeries)})
		}
		if err := workspace.ValidateLabelSetLimits(cfg.LabelSetLimits); err != nil {
			a.fail(w, validation("limitsPerLabelSet: %v", err))
			return
		}
	}
	days, ooo := cfg.RetentionDays, cfg.OutOfOrderWindowSeconds
	if p := req.RetentionPeriodInDays; p != nil {
		if *p < 1 || *p > MaxRetentionDays {
			a.fail(w, validation("retentionPeriodInDays must be 1 to %d", MaxRetentionDays))
			return
		}
		days = *p
	}
	if p := req.OutOfOrderTimeWindowInSeconds; p != nil {
		if *p < 0 || *p > int(workspace.MaxOutOfOrderWindow.Seconds()) {
			a.fail(w, validation("outOfOrderTimeWindowInSeconds must be 0 to %d", int(workspace.MaxOutOfOrderWindow.Seconds())))
			return
		}
		ooo = *p
	}
	cfg.RetentionDays, cfg.OutOfOrderWindowSeconds = days, ooo
	if err := a.cat.SetConfiguration(r.Context(), id, cfg); err != nil {
		a.fail(w, err)
		return
	}
	if err := a.engine.ApplyConfiguration(id, cfg); err != nil {
		a.fail(w, err)
		return
	}
	reply(w, http.StatusAccepted, map[string]any{"status": statusJSON{"ACTIVE"}})
}
