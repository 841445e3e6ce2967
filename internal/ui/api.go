package ui

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/orrery-dev/orrery/internal/alerting"
	"github.com/orrery-dev/orrery/internal/auth"
	"github.com/orrery-dev/orrery/internal/catalog"
	"github.com/orrery-dev/orrery/internal/dashboard"
	"github.com/orrery-dev/orrery/internal/workspace"
)

// userJSON is a user in the API; Password is only ever sent to the server,
// or back once when the server generated it.
type userJSON struct {
	Name       string    `json:"name"`
	Role       string    `json:"role,omitempty"`
	Workspaces []string  `json:"workspaces"`
	Password   string    `json:"password,omitempty"`
	CreatedAt  time.Time `json:"createdAt,omitzero"`
}

func validUserName(s string) bool {
	return regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$`).MatchString(s)
}

// checkWorkspaces checks that every workspace of ws ("*" aside) exists and
// is active, answering the refusal itself: 400 for a malformed id, 404 for
// a missing workspace.
func (h *Handler) checkWorkspaces(w http.ResponseWriter, r *http.Request, ws []string) bool {
	for _, s := range ws {
		if s == AllWorkspaces {
			continue
		}
		id, err := workspace.ParseID(s)
		if err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return false
		}
		got, err := h.cat.GetWorkspace(r.Context(), id)
		if errors.Is(err, catalog.ErrNotFound) || (err == nil && got.Status != catalog.StatusActive) {
			writeError(w, http.StatusNotFound, fmt.Sprintf("workspace %s does not exist", id))
			return false
		}
		if err != nil {
			writeCatalogError(w, err)
			return false
		}
	}
	return true
}

func (h *Handler) listUsers(w http.ResponseWriter, r *http.Request) {
	us, err := h.cat.Users(r.Context())
	if err != nil {
		writeCatalogError(w, err)
		return
	}
	out := []userJSON{}
	for _, u := range us {
		out = append(out, userJSON{Name: u.Name, Role: u.Role, Workspaces: nonNil(u.Workspaces), CreatedAt: u.CreatedAt})
	}
	writeJSON(w, http.StatusOK, out)
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(v); err != nil {
		writeError(w, http.StatusBadRequest, "decode request: "+err.Error())
		return false
	}
	return true
}

// A UI admin manages users within what it holds itself. These rules apply
// to callers of the UI's session API (caller non-nil); the admin API below
// /orrery/v1/users is authorized by the caller's key policy instead.
//
//   - It grants only workspaces it holds: a new or changed user's
//     workspaces are a subset of the caller's, and "*" needs "*".
//   - It changes or deletes only users whose workspaces are all its own, so
//     it cannot take over (by resetting a password) a user who sees more.
//   - Hence only a global admin (workspaces "*") creates, changes or
//     deletes global users, the first admin included.
func holds(caller catalog.User, ws []string) bool {
	if slices.Contains(caller.Workspaces, AllWorkspaces) {
		return true
	}
	for _, w := range ws {
		if !slices.Contains(caller.Workspaces, w) {
			return false
		}
	}
	return true
}

// mayManage checks that caller may change or delete the user named name,
// answering the refusal itself.
func (h *Handler) mayManage(w http.ResponseWriter, r *http.Request, caller *catalog.User, name string) bool {
	if caller == nil {
		return true
	}
	target, err := h.cat.User(r.Context(), name)
	if err != nil {
		writeCatalogError(w, err)
		return false
	}
	if !holds(*caller, target.Workspaces) {
		writeError(w, http.StatusForbidden, fmt.Sprintf("user %s has workspaces you do not hold; only an admin holding all of them may change it", name))
		return false
	}
	return true
}

func (h *Handler) createUser(w http.ResponseWriter, r *http.Request, caller *catalog.User) {
	var in userJSON
	if !decode(w, r, &in) {
		return
	}
	if !validUserName(in.Name) {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("user name %q: use 1 to 64 letters, digits and . _ @ -", in.Name))
		return
	}
	if roleRank(in.Role) == 0 {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("role %q: use viewer, editor or admin", in.Role))
		return
	}
	if !h.checkWorkspaces(w, r, in.Workspaces) {
		return
	}
	if caller != nil && !holds(*caller, in.Workspaces) {
		writeError(w, http.StatusForbidden, "you may grant only workspaces you hold: "+strings.Join(caller.Workspaces, ","))
		return
	}
	generated := in.Password == ""
	if generated {
		in.Password = NewPassword()
	} else if len(in.Password) < 8 {
		writeError(w, http.StatusBadRequest, "a password needs at least 8 characters")
		return
	}
	hash, err := HashPassword(in.Password)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	auth.AuditFrom(r.Context()).SetResource("user/" + in.Name)
	u := catalog.User{Name: in.Name, PasswordHash: hash, Role: in.Role, Workspaces: nonNil(in.Workspaces), CreatedAt: time.Now().UTC()}
	if err := h.cat.CreateUser(r.Context(), u); err != nil {
		writeCatalogError(w, err)
		return
	}
	out := userJSON{Name: u.Name, Role: u.Role, Workspaces: u.Workspaces, CreatedAt: u.CreatedAt}
	if generated {
		out.Password = in.Password
	}
	writeJSON(w, http.StatusCreated, out)
}

// updateUser changes the role, workspaces or password; "password": "" with
// "generatePassword": true makes the server generate one and return it.
func (h *Handler) updateUser(w http.ResponseWriter, r *http.Request, caller *catalog.User) {
	auth.AuditFrom(r.Context()).SetResource("user/" + r.PathValue("name"))
	var in struct {
		Role             string    `json:"role"`
		Workspaces       *[]string `json:"workspaces"`
		Password         string    `json:"password"`
		GeneratePassword bool      `json:"generatePassword"`
	}
	if !decode(w, r, &in) {
		return
	}
	if in.Role != "" && roleRank(in.Role) == 0 {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("role %q: use viewer, editor or admin", in.Role))
		return
	}
	var ws []string
	if in.Workspaces != nil {
		ws = nonNil(*in.Workspaces)
		if !h.checkWorkspaces(w, r, ws) {
			return
		}
	}
	name := r.PathValue("name")
	if caller != nil {
		// An admin who demoted themselves could lock everyone out of
		// user management; another admin or the CLI can do it.
		if name == caller.Name && in.Role != "" && in.Role != RoleAdmin {
			writeError(w, http.StatusBadRequest, "you cannot take your own admin role")
			return
		}
		if !holds(*caller, ws) {
			writeError(w, http.StatusForbidden, "you may grant only workspaces you hold: "+strings.Join(caller.Workspaces, ","))
			return
		}
		if !h.mayManage(w, r, caller, name) {
			return
		}
	}
	var hash string
	if in.GeneratePassword {
		in.Password = NewPassword()
	}
	if in.Password != "" {
		if len(in.Password) < 8 {
			writeError(w, http.StatusBadRequest, "a password needs at least 8 characters")
			return
		}
		var err error
		if hash, err = HashPassword(in.Password); err != nil {
			writeError(w, http.StatusInternalServerError, err.Error())
			return
		}
	}
	if err := h.cat.UpdateUser(r.Context(), name, hash, in.Role, ws); err != nil {
		writeCatalogError(w, err)
		return
	}
	u, err := h.cat.User(r.Context(), name)
	if err != nil {
		writeCatalogError(w, err)
		return
	}
	out := userJSON{Name: u.Name, Role: u.Role, Workspaces: nonNil(u.Workspaces), CreatedAt: u.CreatedAt}
	if in.GeneratePassword {
		out.Password = in.Password
	}
	writeJSON(w, http.StatusOK, out)
}

func (h *Handler) deleteUser(w http.ResponseWriter, r *http.Request, caller *catalog.User) {
	auth.AuditFrom(r.Context()).SetResource("user/" + r.PathValue("name"))
	if !h.mayManage(w, r, caller, r.PathValue("name")) {
		return
	}
	if err := h.cat.DeleteUser(r.Context(), r.PathValue("name")); err != nil {
		writeCatalogError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

type dashboardJSON struct {
	UID        string    `json:"uid"`
	Title      string    `json:"title"`
	Folder     string    `json:"folder"`
	Tags       []string  `json:"tags"`
	ModifiedAt time.Time `json:"modifiedAt"`
	// Version is the version a store made, in answers to one.
	Version int `json:"version,omitempty"`
}

func (h *Handler) listDashboards(w http.ResponseWriter, r *http.Request, id workspace.ID) {
	ds, err := h.cat.Dashboards(r.Context(), id)
	if err != nil {
		writeCatalogError(w, err)
		return
	}
	out := []dashboardJSON{}
	for _, d := range ds {
		// The list holds no models: each is read for its tags (a
		// workspace has tens of dashboards, not thousands).
		tags := []string{}
		if full, err := h.cat.Dashboard(r.Context(), id, d.UID); err == nil {
			if m, err := dashboard.Parse(full.Data); err == nil && m.Tags != nil {
				tags = m.Tags
			}
		}
		out = append(out, dashboardJSON{UID: d.UID, Title: d.Title, Folder: d.Folder, Tags: tags, ModifiedAt: d.ModifiedAt})
	}
	writeJSON(w, http.StatusOK, out)
}

func (h *Handler) getDashboard(w http.ResponseWriter, r *http.Request, id workspace.ID, _ catalog.User) {
	d, err := h.cat.Dashboard(r.Context(), id, r.PathValue("uid"))
	if err != nil {
		writeCatalogError(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if r.URL.Query().Get("download") != "" {
		w.Header().Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", d.UID+".json"))
	}
	_, _ = w.Write(d.Data)
}

// importDashboard stores a dashboard: the Grafana JSON model itself or
// Grafana's envelope {"dashboard": …}. Without a uid, one is derived from
// the title; PUT takes the uid from the path. It becomes the dashboard's
// next version, by author.
func (h *Handler) importDashboard(w http.ResponseWriter, r *http.Request, id workspace.ID, author string) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 8<<20+1))
	if err != nil {
		writeError(w, http.StatusBadRequest, "read dashboard: "+err.Error())
		return
	}
	if len(body) > 8<<20 {
		writeError(w, http.StatusRequestEntityTooLarge, "a dashboard is at most 8 MiB")
		return
	}
	d, err := dashboard.Parse(body)
	var pe *dashboard.Error
	if errors.As(err, &pe) {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	if d.Title == "" {
		writeError(w, http.StatusBadRequest, "dashboard: title: a dashboard needs a title")
		return
	}
	// Store the model itself, without the envelope, with its uid set.
	var model map[string]any
	var env struct {
		Dashboard map[string]any `json:"dashboard"`
		// Grafana's export of a dashboard with its folder (GET
		// /api/dashboards/uid/…) names it in meta.
		Meta struct {
			FolderTitle string `json:"folderTitle"`
		} `json:"meta"`
	}
	folder, hasFolder := r.URL.Query().Get("folder"), r.URL.Query().Has("folder")
	if json.Unmarshal(body, &env) == nil && env.Dashboard != nil {
		model = env.Dashboard
		if !hasFolder && env.Meta.FolderTitle != "" && env.Meta.FolderTitle != "General" {
			folder, hasFolder = env.Meta.FolderTitle, true
		}
	} else if err := json.Unmarshal(body, &model); err != nil {
		writeError(w, http.StatusBadRequest, "dashboard: "+err.Error())
		return
	}
	uid := d.UID
	if p := r.PathValue("uid"); p != "" {
		uid = p
	}
	if uid == "" {
		uid = slug(d.Title)
	}
	if len(uid) > 128 {
		writeError(w, http.StatusBadRequest, "dashboard: uid: at most 128 characters")
		return
	}
	model["uid"] = uid
	auth.AuditFrom(r.Context()).SetResource("workspace/" + id.String() + "/dashboard/" + uid)
	if err := validFolder(folder); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if !hasFolder {
		// A save from the dashboard's page keeps its folder.
		if cur, err := h.cat.Dashboard(r.Context(), id, uid); err == nil {
			folder = cur.Folder
		}
	}
	delete(model, "id")
	data, err := json.Marshal(model)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	h.putDashboard(w, r, catalog.Dashboard{Workspace: id, UID: uid, Title: d.Title, Data: data, Author: author, Folder: folder})
}

// validFolder checks a folder's name: what Grafana allows, bounded.
func validFolder(f string) error {
	if len(f) > 128 {
		return errors.New("folder: at most 128 characters")
	}
	for _, c := range f {
		if c < ' ' || c == 0x7f {
			return fmt.Errorf("folder %q: no control characters", f)
		}
	}
	return nil
}

// putDashboard stores d as its dashboard's next version and answers with it.
func (h *Handler) putDashboard(w http.ResponseWriter, r *http.Request, d catalog.Dashboard) {
	d.ModifiedAt = time.Now().UTC()
	version, err := h.cat.PutDashboard(r.Context(), d)
	if err != nil {
		writeCatalogError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, dashboardJSON{UID: d.UID, Title: d.Title, Folder: d.Folder, ModifiedAt: d.ModifiedAt, Version: version})
}

// versionJSON is a kept version of a dashboard, as the UI lists them.
type versionJSON struct {
	Version   int       `json:"version"`
	Title     string    `json:"title"`
	Author    string    `json:"author"`
	CreatedAt time.Time `json:"createdAt"`
}

// dashboardVersions lists a dashboard's kept versions, newest first.
func (h *Handler) dashboardVersions(w http.ResponseWriter, r *http.Request, id workspace.ID, _ catalog.User) {
	vs, err := h.cat.DashboardVersions(r.Context(), id, r.PathValue("uid"))
	if err != nil {
		writeCatalogError(w, err)
		return
	}
	out := make([]versionJSON, len(vs))
	for i, v := range vs {
		out[i] = versionJSON{Version: v.Version, Title: v.Title, Author: v.Author, CreatedAt: v.CreatedAt}
	}
	writeJSON(w, http.StatusOK, out)
}

// restoreDashboard stores a kept version again, as the dashboard's next
// version, as Grafana's restore does: the versions in between stay.
func (h *Handler) restoreDashboard(w http.ResponseWriter, r *http.Request, id workspace.ID, u catalog.User) {
	v, err := strconv.Atoi(r.PathValue("version"))
	if err != nil || v < 1 {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("version %q: a version is a positive whole number", r.PathValue("version")))
		return
	}
	old, err := h.cat.DashboardAt(r.Context(), id, r.PathValue("uid"), v)
	if err != nil {
		writeCatalogError(w, err)
		return
	}
	folder := ""
	if cur, err := h.cat.Dashboard(r.Context(), id, old.UID); err == nil {
		folder = cur.Folder // A restore moves nothing.
	}
	h.putDashboard(w, r, catalog.Dashboard{Workspace: id, UID: old.UID, Title: old.Title, Data: old.Data, Author: "ui/" + u.Name, Folder: folder})
}

func slug(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		switch {
		case r >= 'a' && r <= 'z' || r >= '0' && r <= '9':
			b.WriteRune(r)
		case b.Len() > 0 && !strings.HasSuffix(b.String(), "-"):
			b.WriteByte('-')
		}
	}
	out := strings.Trim(b.String(), "-")
	if out == "" {
		out = "dashboard"
	}
	if len(out) > 40 {
		out = out[:40]
	}
	return out
}

func (h *Handler) deleteDashboard(w http.ResponseWriter, r *http.Request, id workspace.ID, _ catalog.User) {
	if err := h.cat.DeleteDashboard(r.Context(), id, r.PathValue("uid")); err != nil {
		writeCatalogError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// readOnlyQueryPOST are the query API endpoints a POST may reach: they read.
func readOnlyQueryPOST(rest string) bool {
	switch rest {
	case "query", "query_range", "series", "labels", "query_exemplars", "format_query", "parse_query":
		return true
	}
	return false
}

// proxyQuery hands the request to the workspace's query API, in process.
// The admin endpoints (TSDB deletion and snapshots) are not reachable.
func (h *Handler) proxyQuery(w http.ResponseWriter, r *http.Request, id workspace.ID, _ catalog.User) {
	rest := strings.TrimPrefix(r.URL.Path, "/ui/api/workspaces/"+id.String()+"/prom/api/v1/")
	if strings.HasPrefix(rest, "admin/") || (r.Method != http.MethodGet && !(r.Method == http.MethodPost && readOnlyQueryPOST(rest))) {
		writeError(w, http.StatusForbidden, "the web UI only reads from the query API")
		return
	}
	if err := applyAdHoc(r, h.parser); err != nil {
		writeError(w, http.StatusBadRequest, "ad hoc filters: "+err.Error())
		return
	}
	h.forward(w, r, "/workspaces/"+id.String()+"/api/v1/"+rest, h.query)
}

// proxyAlertmanager hands the request to the workspace's Alertmanager API.
// Viewers read; editors also create and expire silences.
func (h *Handler) proxyAlertmanager(w http.ResponseWriter, r *http.Request, id workspace.ID, u catalog.User) {
	rest := strings.TrimPrefix(r.URL.Path, "/ui/api/workspaces/"+id.String()+"/alertmanager/api/v2/")
	if r.Method != http.MethodGet {
		silence := (r.Method == http.MethodPost && rest == "silences") || (r.Method == http.MethodDelete && strings.HasPrefix(rest, "silence/"))
		if !silence {
			writeError(w, http.StatusForbidden, "the web UI only changes silences")
			return
		}
		if roleRank(u.Role) < roleRank(RoleEditor) {
			writeError(w, http.StatusForbidden, "changing silences needs the editor role; you are "+u.Role)
			return
		}
	}
	h.forward(w, r, "/workspaces/"+id.String()+"/alertmanager/api/v2/"+rest, h.alerts)
}

// proxyRules hands a rule groups namespace call to the control plane's
// API, as AMP's CreateRuleGroupsNamespace, PutRuleGroupsNamespace,
// DescribeRuleGroupsNamespace, ListRuleGroupsNamespaces and
// DeleteRuleGroupsNamespace: the same validation, quotas and ruler
// reload as for SigV4 callers. The routes gave viewers reads and editors
// writes.
func (h *Handler) proxyRules(w http.ResponseWriter, r *http.Request, id workspace.ID, _ catalog.User) {
	if h.rules == nil {
		writeError(w, http.StatusNotImplemented, "this server does not let the web UI edit rules")
		return
	}
	path := "/workspaces/" + id.String() + "/rulegroupsnamespaces"
	if name := r.PathValue("name"); name != "" {
		path += "/" + name
	}
	h.forward(w, r, path, h.rules)
}

// receiverHealth is what the contact points page needs of the alerting
// handler: the health of each receiver's integrations and a test
// notification. The embedded Alertmanager has it; the Cortex engine's
// alerting does not.
type receiverHealth interface {
	Receivers(id workspace.ID) ([]alerting.IntegrationStatus, error)
	TestReceiver(ctx context.Context, id workspace.ID, receiver string) ([]alerting.IntegrationStatus, error)
}

var _ receiverHealth = (*alerting.Manager)(nil)

// contactPoints answers the health of every integration of the receivers
// the workspace's routes use.
func (h *Handler) contactPoints(w http.ResponseWriter, _ *http.Request, id workspace.ID, _ catalog.User) {
	rh, ok := h.alerts.(receiverHealth)
	if !ok {
		writeError(w, http.StatusNotImplemented, "this server's alert manager does not report its receivers' health")
		return
	}
	list, err := rh.Receivers(id)
	if errors.Is(err, alerting.ErrNoReceiver) {
		writeJSON(w, http.StatusOK, []alerting.IntegrationStatus{})
		return
	}
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	if list == nil {
		list = []alerting.IntegrationStatus{}
	}
	writeJSON(w, http.StatusOK, list)
}

// testContactPoint sends a test notification through a receiver.
func (h *Handler) testContactPoint(w http.ResponseWriter, r *http.Request, id workspace.ID, _ catalog.User) {
	rh, ok := h.alerts.(receiverHealth)
	if !ok {
		writeError(w, http.StatusNotImplemented, "this server's alert manager cannot send test notifications")
		return
	}
	list, err := rh.TestReceiver(r.Context(), id, r.PathValue("name"))
	if errors.Is(err, alerting.ErrNoReceiver) {
		writeError(w, http.StatusNotFound, err.Error())
		return
	}
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, list)
}

func (h *Handler) forward(w http.ResponseWriter, r *http.Request, path string, next http.Handler) {
	r2 := r.Clone(r.Context())
	r2.URL.Path, r2.URL.RawPath, r2.RequestURI = path, "", ""
	r2.Header.Del("Cookie")
	r2.Header.Del("Origin")
	r2.Header.Del(csrfHeader)
	next.ServeHTTP(w, r2)
}

// usage answers the workspace's ingestion counters since the server
// started; the page derives rates from two readings.
func (h *Handler) usage(w http.ResponseWriter, _ *http.Request, id workspace.ID) {
	out := map[string]float64{"samples": 0, "histograms": 0, "exemplars": 0, "rejected": 0}
	if h.cfg.Metrics != nil {
		mfs, err := h.cfg.Metrics.Gather()
		if err != nil {
			h.logger.Warn("gather metrics for the usage page; answering what was gathered", "err", err)
		}
		names := map[string]string{"orrery_ingest_samples_total": "samples", "orrery_ingest_histograms_total": "histograms",
			"orrery_ingest_exemplars_total": "exemplars", "orrery_ingest_rejected_samples_total": "rejected"}
		for _, mf := range mfs {
			key, ok := names[mf.GetName()]
			if !ok {
				continue
			}
			for _, m := range mf.GetMetric() {
				for _, l := range m.GetLabel() {
					if l.GetName() == "workspace" && l.GetValue() == id.String() {
						out[key] += m.GetCounter().GetValue()
					}
				}
			}
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// importAs is importDashboard by a UI user.
func (h *Handler) importAs(w http.ResponseWriter, r *http.Request, id workspace.ID, u catalog.User) {
	h.importDashboard(w, r, id, "ui/"+u.Name)
}

// detectorJSON is an anomaly detector of a workspace, as a panel needs it
// to draw the detector's band beside its query.
type detectorJSON struct {
	ID     string `json:"id"`
	Alias  string `json:"alias"`
	Status string `json:"status"`
	Query  string `json:"query"`
}

// anomalyDetectors lists the workspace's anomaly detectors whose query is
// the ?query= one (compared as Prometheus' parser prints them, so that
// spacing and formatting do not matter), or all without it.
func (h *Handler) anomalyDetectors(w http.ResponseWriter, r *http.Request, id workspace.ID) {
	want := ""
	if q := r.URL.Query().Get("query"); q != "" {
		expr, err := h.parser.ParseExpr(q)
		if err != nil {
			writeError(w, http.StatusBadRequest, "query: "+err.Error())
			return
		}
		want = expr.String()
	}
	out := []detectorJSON{}
	for after := ""; ; {
		page, err := h.cat.AnomalyDetectors(r.Context(), id, "", after, 100)
		if err != nil {
			writeCatalogError(w, err)
			return
		}
		for _, d := range page {
			var spec struct {
				Configuration struct {
					RandomCutForest struct {
						Query string `json:"query"`
					} `json:"randomCutForest"`
				} `json:"configuration"`
			}
			if json.Unmarshal(d.Spec, &spec) != nil {
				continue
			}
			q := spec.Configuration.RandomCutForest.Query
			if want != "" {
				expr, err := h.parser.ParseExpr(q)
				if err != nil || expr.String() != want {
					continue
				}
			}
			out = append(out, detectorJSON{ID: d.ID, Alias: d.Alias, Status: d.Status, Query: q})
		}
		if len(page) < 100 {
			break
		}
		after = page[len(page)-1].ID
	}
	writeJSON(w, http.StatusOK, out)
}
