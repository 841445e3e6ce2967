package ui

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/prometheus/promql/parser"
	"golang.org/x/time/rate"

	"github.com/orrery-dev/orrery/internal/auth"
	"github.com/orrery-dev/orrery/internal/catalog"
	"github.com/orrery-dev/orrery/internal/dashboard"
	"github.com/orrery-dev/orrery/internal/querylog"
	"github.com/orrery-dev/orrery/internal/workspace"
)

//go:embed assets
var assets embed.FS

// Roles, from least to most privileged. Viewers read; editors also change
// dashboards and silences; admins also manage users.
const (
	RoleViewer = "viewer"
	RoleEditor = "editor"
	RoleAdmin  = "admin"
)

func roleRank(r string) int {
	switch r {
	case RoleViewer:
		return 1
	case RoleEditor:
		return 2
	case RoleAdmin:
		return 3
	}
	return 0
}

// AllWorkspaces in a user's workspaces grants every workspace.
const AllWorkspaces = "*"

const (
	cookieName = "orrery_session"
	csrfHeader = "X-CSRF-Token"
)

// Config configures the UI.
type Config struct {
	// SessionTTL is how long a login lasts; 0 means 12 hours.
	SessionTTL time.Duration
	// LoginRate and LoginBurst limit login attempts per user name and
	// client IP; 0 means one every 10 seconds after a burst of 5. Logins
	// are also limited per client IP (1/s, burst 20) and over the server
	// (10/s, burst 40), with at most 2 password hashes at once.
	LoginRate  rate.Limit
	LoginBurst int
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Metrics, if set, is the server's registry: the usage page reads the
	// workspace's ingestion counters (orrery_ingest_*_total) from it.
	Metrics prometheus.Gatherer
}

// Handler serves /ui/. It is safe for concurrent use.
type Handler struct {
	cfg     Config
	cat     *catalog.Catalog
	query   http.Handler
	alerts  http.Handler
	logger  *slog.Logger
	logins  *prometheus.CounterVec
	limiter *loginLimiter
	mux     *http.ServeMux
	// rules is the control plane's rule groups namespace API (SetRules);
	// nil until set.
	rules http.Handler
	// parser reads queries to add ad hoc filters to (adhoc.go).
	parser parser.Parser
	// slow gives workspaces' slowest recent logged queries
	// (SetSlowQueries); nil: none are kept.
	slow SlowQueries
	// scrapers gives managed scrapers' targets (SetScrapers); nil: none
	// runs here.
	scrapers ScraperTargets
}

// SlowQueries gives a workspace's slowest recent logged queries, slowest
// first (*querylog.Log). It is safe for concurrent use.
type SlowQueries interface {
	Slowest(id workspace.ID, n int) []querylog.Entry
}

// SetSlowQueries gives the UI the engine's query log, for the usage page's
// slowest recent queries. Call it before the handler serves.
func (h *Handler) SetSlowQueries(s SlowQueries) { h.slow = s }

// slowQueries answers a workspace's 20 slowest recent logged queries:
// those of the last 100 logged since the server started, of a workspace
// with a query logging configuration.
func (h *Handler) slowQueries(w http.ResponseWriter, _ *http.Request, id workspace.ID) {
	out := []querylog.Entry{}
	if h.slow != nil {
		out = append(out, h.slow.Slowest(id, 20)...)
	}
	writeJSON(w, http.StatusOK, out)
}

// SetRules gives the UI the control plane's handler of the rule groups
// namespace API (paths /workspaces/{id}/rulegroupsnamespaces…), through
// which the rules editor reads and writes, after the UI checked the
// user's role. Call it before the handler serves.
func (h *Handler) SetRules(rules http.Handler) { h.rules = rules }

// New returns the UI handler. query and alerts are the per-workspace query
// API and Alertmanager API; they read the workspace from the request
// context and see paths below /workspaces/{id}/.
func New(cfg Config, cat *catalog.Catalog, query, alerts http.Handler, logger *slog.Logger, reg prometheus.Registerer) (*Handler, error) {
	if cat == nil || query == nil || alerts == nil {
		return nil, errors.New("ui: catalog, query and alerting handlers are required")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if cfg.SessionTTL <= 0 {
		cfg.SessionTTL = 12 * time.Hour
	}
	if cfg.LoginRate == 0 {
		cfg.LoginRate = rate.Every(10 * time.Second)
	}
	if cfg.LoginBurst <= 0 {
		cfg.LoginBurst = 5
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	h := &Handler{cfg: cfg, cat: cat, query: query, alerts: alerts, logger: logger.With("component", "ui"), parser: parser.NewParser(parser.Options{}),
		logins: promauto.With(reg).NewCounterVec(prometheus.CounterOpts{Name: "orrery_ui_logins_total",
			Help: "Web UI login attempts by result: ok, denied, limited."}, []string{"result"})}
	h.limiter = newLoginLimiter(cfg)
	h.routes()
	return h, nil
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

// route is a line of the UI's route table: the role a session's user
// needs (none for the login and the static files), whether the path's {id}
// is a workspace the user must be granted, and for a call that changes
// something the action and resource of its audit line. One middleware,
// serve, reads it.
type route struct {
	pattern string
	role    string
	// workspace: the path's {id} names a workspace; one the user may not
	// see answers 404, as one that does not exist does.
	workspace bool
	// action, if set, audits the call; resource names what it acts on,
	// with {id}, {name} and {uid} taken from the path and {silence} from
	// the path below …/alertmanager/api/v2/silence/.
	action, resource string
	handler          func(http.ResponseWriter, *http.Request, workspace.ID, catalog.User)
}

// table is the UI's route table.
func (h *Handler) table() []route {
	static, _ := fs.Sub(assets, "assets") // The directory is embedded: Sub cannot fail.
	files := http.StripPrefix("/ui/", http.FileServerFS(static))
	open := func(pattern string, f http.HandlerFunc) route {
		return route{pattern: pattern, handler: func(w http.ResponseWriter, r *http.Request, _ workspace.ID, _ catalog.User) { f(w, r) }}
	}
	user := func(pattern, role string, f func(http.ResponseWriter, *http.Request, catalog.User)) route {
		return route{pattern: pattern, role: role, handler: func(w http.ResponseWriter, r *http.Request, _ workspace.ID, u catalog.User) { f(w, r, u) }}
	}
	ws := func(pattern, role string, f func(http.ResponseWriter, *http.Request, workspace.ID, catalog.User)) route {
		return route{pattern: pattern, role: role, workspace: true, handler: f}
	}
	audited := func(rt route, action, resource string) route {
		rt.action, rt.resource = action, resource
		return rt
	}
	const wsp = "/ui/api/workspaces/{id}/"
	const res = "workspace/{id}/"
	t := []route{
		open("GET /ui/", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'")
			w.Header().Set("X-Content-Type-Options", "nosniff")
			w.Header().Set("Cache-Control", "no-cache")
			files.ServeHTTP(w, r)
		}),
		open("POST /ui/api/login", h.login),
		audited(user("POST /ui/api/logout", RoleViewer, h.logout), "ui:Logout", "session"),
		user("GET /ui/api/session", RoleViewer, h.session),
		user("GET /ui/api/users", RoleAdmin, func(w http.ResponseWriter, r *http.Request, _ catalog.User) { h.listUsers(w, r) }),
		audited(user("POST /ui/api/users", RoleAdmin, func(w http.ResponseWriter, r *http.Request, u catalog.User) { h.createUser(w, r, &u) }),
			"ui:CreateUser", "user/*"),
		audited(user("PUT /ui/api/users/{name}", RoleAdmin, func(w http.ResponseWriter, r *http.Request, u catalog.User) { h.updateUser(w, r, &u) }),
			"ui:UpdateUser", "user/{name}"),
		audited(user("DELETE /ui/api/users/{name}", RoleAdmin, func(w http.ResponseWriter, r *http.Request, u catalog.User) {
			if r.PathValue("name") == u.Name {
				writeError(w, http.StatusBadRequest, "you cannot delete yourself")
				return
			}
			h.deleteUser(w, r, &u)
		}), "ui:DeleteUser", "user/{name}"),
		ws("GET "+wsp+"rulegroupsnamespaces", RoleViewer, h.proxyRules),
		audited(ws("POST "+wsp+"rulegroupsnamespaces", RoleEditor, h.proxyRules), "ui:CreateRuleGroupsNamespace", res+"rulegroupsnamespace/*"),
		ws("GET "+wsp+"rulegroupsnamespaces/{name}", RoleViewer, h.proxyRules),
		audited(ws("PUT "+wsp+"rulegroupsnamespaces/{name}", RoleEditor, h.proxyRules), "ui:PutRuleGroupsNamespace", res+"rulegroupsnamespace/{name}"),
		audited(ws("DELETE "+wsp+"rulegroupsnamespaces/{name}", RoleEditor, h.proxyRules), "ui:DeleteRuleGroupsNamespace", res+"rulegroupsnamespace/{name}"),
		ws("GET "+wsp+"contactpoints", RoleViewer, h.contactPoints),
		audited(ws("POST "+wsp+"contactpoints/{name}/test", RoleEditor, h.testContactPoint), "ui:TestAlertManagerReceiver", res+"receiver/{name}"),
		user("GET /ui/api/builtin/envoy", RoleViewer, func(w http.ResponseWriter, _ *http.Request, _ catalog.User) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write(dashboard.EnvoyDashboard())
		}),
		ws("GET "+wsp+"usage", RoleViewer, ignoreUser(h.usage)),
		ws("GET "+wsp+"slowqueries", RoleViewer, ignoreUser(h.slowQueries)),
		ws("GET "+wsp+"scrapers", RoleViewer, ignoreUser(h.listScrapers)),
		ws("GET "+wsp+"scrapers/{scraper}/targets", RoleViewer, ignoreUser(h.scraperTargets)),
		ws("GET "+wsp+"anomalydetectors", RoleViewer, ignoreUser(h.anomalyDetectors)),
		ws("GET "+wsp+"dashboards", RoleViewer, ignoreUser(h.listDashboards)),
		audited(ws("POST "+wsp+"dashboards", RoleEditor, h.importAs), "ui:PutDashboard", res+"dashboard/*"),
		ws("GET "+wsp+"dashboards/{uid}", RoleViewer, h.getDashboard),
		audited(ws("PUT "+wsp+"dashboards/{uid}", RoleEditor, h.importAs), "ui:PutDashboard", res+"dashboard/{uid}"),
		ws("GET "+wsp+"dashboards/{uid}/versions", RoleViewer, h.dashboardVersions),
		audited(ws("POST "+wsp+"dashboards/{uid}/versions/{version}/restore", RoleEditor, h.restoreDashboard), "ui:RestoreDashboard", res+"dashboard/{uid}"),
		audited(ws("DELETE "+wsp+"dashboards/{uid}", RoleEditor, h.deleteDashboard), "ui:DeleteDashboard", res+"dashboard/{uid}"),
		ws("GET "+wsp+"prom/api/v1/", RoleViewer, h.proxyQuery),
		ws("POST "+wsp+"prom/api/v1/", RoleViewer, h.proxyQuery),
		// Viewers read the Alertmanager; proxyAlertmanager lets editors
		// change silences, and nothing else.
		ws("GET "+wsp+"alertmanager/api/v2/", RoleViewer, h.proxyAlertmanager),
		audited(ws("POST "+wsp+"alertmanager/api/v2/", RoleViewer, h.proxyAlertmanager), "ui:PutAlertManagerSilences", res+"silences"),
		audited(ws("DELETE "+wsp+"alertmanager/api/v2/", RoleViewer, h.proxyAlertmanager), "ui:DeleteAlertManagerSilence", res+"silence/{silence}"),
	}
	return t
}

func (h *Handler) routes() {
	m := http.NewServeMux()
	for _, rt := range h.table() {
		m.Handle(rt.pattern, h.serve(rt))
	}
	h.mux = m
}

// AdminRoutes returns the API the admin CLI and the demo use, with the
// Orrery action each needs of a SigV4 key or bearer token (the server's
// route table authorizes and audits them): /orrery/v1/users and
// /orrery/v1/workspaces/{id}/dashboards.
func (h *Handler) AdminRoutes() []auth.Route {
	route := func(pattern, action string, res auth.Resource, f http.HandlerFunc) auth.Route {
		return auth.Route{Pattern: pattern, Action: action, Resource: res, Audited: true, Handler: f}
	}
	return []auth.Route{
		route("GET /orrery/v1/users", "orrery:ListUsers", auth.AnyResource, h.listUsers),
		route("POST /orrery/v1/users", "orrery:CreateUser", auth.AnyResource, func(w http.ResponseWriter, r *http.Request) { h.createUser(w, r, nil) }),
		route("PUT /orrery/v1/users/{name}", "orrery:UpdateUser", auth.AnyResource, func(w http.ResponseWriter, r *http.Request) { h.updateUser(w, r, nil) }),
		route("DELETE /orrery/v1/users/{name}", "orrery:DeleteUser", auth.AnyResource, func(w http.ResponseWriter, r *http.Request) { h.deleteUser(w, r, nil) }),
		route("GET /orrery/v1/workspaces/{id}/dashboards", "orrery:ListDashboards", auth.Workspace, h.withID(h.listDashboards)),
		route("POST /orrery/v1/workspaces/{id}/dashboards", "orrery:PutDashboard", auth.Workspace, h.withID(func(w http.ResponseWriter, r *http.Request, id workspace.ID) {
			p, _ := auth.FromContext(r.Context())
			h.importDashboard(w, r, id, p.ID)
		})),
	}
}

func ignoreUser(f func(http.ResponseWriter, *http.Request, workspace.ID)) func(http.ResponseWriter, *http.Request, workspace.ID, catalog.User) {
	return func(w http.ResponseWriter, r *http.Request, id workspace.ID, _ catalog.User) { f(w, r, id) }
}

func (h *Handler) withID(f func(http.ResponseWriter, *http.Request, workspace.ID)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, err := workspace.ParseID(r.PathValue("id"))
		if err != nil {
			writeError(w, http.StatusNotFound, err.Error())
			return
		}
		if _, err := h.cat.GetWorkspace(r.Context(), id); err != nil {
			writeError(w, http.StatusNotFound, fmt.Sprintf("workspace %s does not exist", id))
			return
		}
		f(w, r, id)
	}
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"message": msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeCatalogError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, catalog.ErrNotFound):
		writeError(w, http.StatusNotFound, err.Error())
	case errors.Is(err, catalog.ErrConflict):
		writeError(w, http.StatusConflict, err.Error())
	default:
		writeError(w, http.StatusInternalServerError, err.Error())
	}
}

func hashID(id string) string {
	s := sha256.Sum256([]byte(id))
	return hex.EncodeToString(s[:])
}

func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+).
	return base64.RawURLEncoding.EncodeToString(b)
}

func (h *Handler) login(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Name     string `json:"name"`
		Password string `json:"password"`
	}
	// A JSON body needs a CORS preflight from other origins, which this
	// server never grants: that is the login's CSRF protection.
	if !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		writeError(w, http.StatusUnsupportedMediaType, "send the login as application/json")
		return
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(&in); err != nil {
		writeError(w, http.StatusBadRequest, "decode login: "+err.Error())
		return
	}
	ip, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		ip = r.RemoteAddr
	}
	if !h.limiter.allow(in.Name, ip) {
		h.logins.WithLabelValues("limited").Inc()
		w.Header().Set("Retry-After", "10")
		writeError(w, http.StatusTooManyRequests, "too many login attempts; wait and try again")
		return
	}
	u, err := h.cat.User(r.Context(), in.Name)
	hash := u.PasswordHash
	if err != nil {
		// Spend the same work on unknown names, so timing does not tell
		// which names exist.
		hash = h.limiter.dummy()
	}
	ok := false
	hashed := h.limiter.hash(r.Context(), func() {
		var cerr error
		ok, cerr = CheckPassword(hash, in.Password)
		if cerr != nil {
			h.logger.Warn("check password; login refused", "user", in.Name, "err", cerr)
		}
	})
	if !hashed {
		h.logins.WithLabelValues("limited").Inc()
		w.Header().Set("Retry-After", "5")
		writeError(w, http.StatusServiceUnavailable, "too many logins at once; try again")
		return
	}
	ok = ok && err == nil
	if !ok {
		h.logins.WithLabelValues("denied").Inc()
		h.audit(r, "ui/"+in.Name, "ui:Login", "session", http.StatusUnauthorized)
		writeError(w, http.StatusUnauthorized, "wrong user name or password")
		return
	}
	now := h.cfg.Now()
	// Expired sessions go at each login, so they do not accumulate.
	if err := h.cat.DeleteSession(r.Context(), "", now); err != nil {
		h.logger.Warn("remove expired sessions; will retry at the next login", "err", err)
	}
	sid, csrf := randomToken(), randomToken()
	if err := h.cat.CreateSession(r.Context(), catalog.Session{IDHash: hashID(sid), User: u.Name, CSRFToken: csrf, CreatedAt: now, ExpiresAt: now.Add(h.cfg.SessionTTL)}); err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	h.logins.WithLabelValues("ok").Inc()
	h.audit(r, "ui/"+u.Name, "ui:Login", "session", http.StatusOK)
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: sid, Path: "/ui", HttpOnly: true, Secure: r.TLS != nil,
		SameSite: http.SameSiteStrictMode, Expires: now.Add(h.cfg.SessionTTL)})
	h.writeSession(w, r, u, csrf)
}

func (h *Handler) writeSession(w http.ResponseWriter, r *http.Request, u catalog.User, csrf string) {
	type ws struct {
		ID    string `json:"id"`
		Alias string `json:"alias"`
	}
	out := struct {
		Name       string `json:"name"`
		Role       string `json:"role"`
		CSRF       string `json:"csrf"`
		Workspaces []ws   `json:"workspaces"`
	}{Name: u.Name, Role: u.Role, CSRF: csrf, Workspaces: []ws{}}
	var after workspace.ID
	for {
		page, err := h.cat.ListWorkspaces(r.Context(), "", after, 500)
		if err != nil {
			writeError(w, http.StatusInternalServerError, err.Error())
			return
		}
		if len(page) == 0 {
			break
		}
		for _, x := range page {
			if x.Status == catalog.StatusActive && granted(u, x.ID) {
				out.Workspaces = append(out.Workspaces, ws{ID: x.ID.String(), Alias: x.Alias})
			}
		}
		after = page[len(page)-1].ID
	}
	writeJSON(w, http.StatusOK, out)
}

func granted(u catalog.User, id workspace.ID) bool {
	return slices.Contains(u.Workspaces, AllWorkspaces) || slices.Contains(u.Workspaces, id.String())
}

func (h *Handler) session(w http.ResponseWriter, r *http.Request, u catalog.User) {
	c, _ := r.Cookie(cookieName)
	s, err := h.cat.Session(r.Context(), hashID(c.Value), h.cfg.Now())
	if err != nil {
		writeError(w, http.StatusUnauthorized, "log in")
		return
	}
	h.writeSession(w, r, u, s.CSRFToken)
}

func (h *Handler) logout(w http.ResponseWriter, r *http.Request, _ catalog.User) {
	c, _ := r.Cookie(cookieName)
	if err := h.cat.DeleteSession(r.Context(), hashID(c.Value), h.cfg.Now()); err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: "", Path: "/ui", HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode, MaxAge: -1})
	w.WriteHeader(http.StatusNoContent)
}

// serve is the UI's one middleware: for a route with a role it checks the
// session cookie, the CSRF token of mutating requests, the user's role and
// the workspace in the path, and audits the calls its route says to.
func (h *Handler) serve(rt route) http.Handler {
	if rt.role == "" {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { rt.handler(w, r, "", catalog.User{}) })
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := r.Cookie(cookieName)
		if err != nil || c.Value == "" {
			writeError(w, http.StatusUnauthorized, "log in")
			return
		}
		s, err := h.cat.Session(r.Context(), hashID(c.Value), h.cfg.Now())
		if err != nil {
			if !errors.Is(err, catalog.ErrNotFound) {
				h.logger.Warn("read session; answered 401", "err", err)
			}
			writeError(w, http.StatusUnauthorized, "your session ended; log in again")
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			got := r.Header.Get(csrfHeader)
			if got == "" || subtle.ConstantTimeCompare([]byte(got), []byte(s.CSRFToken)) != 1 {
				writeError(w, http.StatusForbidden, "missing or wrong "+csrfHeader+" header")
				return
			}
		}
		u, err := h.cat.User(r.Context(), s.User)
		if err != nil {
			writeError(w, http.StatusUnauthorized, "your user no longer exists")
			return
		}
		if rt.action == "" {
			h.authorize(w, r, rt, u)
			return
		}
		ctx, note := auth.WithAudit(r.Context())
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		h.authorize(sw, r.WithContext(ctx), rt, u)
		h.audit(r, "ui/"+u.Name, rt.action, note.Resource(expand(rt.resource, r)), sw.status)
	})
}

// authorize serves a route to a logged-in user whose role and workspaces
// allow it.
func (h *Handler) authorize(w http.ResponseWriter, r *http.Request, rt route, u catalog.User) {
	if roleRank(u.Role) < roleRank(rt.role) {
		writeError(w, http.StatusForbidden, fmt.Sprintf("this needs the %s role; you are %s", rt.role, u.Role))
		return
	}
	var id workspace.ID
	if rt.workspace {
		var err error
		if id, err = workspace.ParseID(r.PathValue("id")); err != nil {
			writeError(w, http.StatusNotFound, err.Error())
			return
		}
		ws, err := h.cat.GetWorkspace(r.Context(), id)
		if err != nil || ws.Status != catalog.StatusActive || !granted(u, id) {
			writeError(w, http.StatusNotFound, fmt.Sprintf("workspace %s does not exist or you may not see it", id))
			return
		}
		r = r.WithContext(workspace.NewContext(r.Context(), id))
	}
	rt.handler(w, r, id, u)
}

// expand fills a route's audit resource with the request's path values.
func expand(resource string, r *http.Request) string {
	_, silence, _ := strings.Cut(r.URL.Path, "/alertmanager/api/v2/silence/")
	return strings.NewReplacer("{id}", r.PathValue("id"), "{name}", r.PathValue("name"), "{uid}", r.PathValue("uid"),
		"{silence}", silence).Replace(resource)
}

// audit logs a call that changes something, as the server's audit lines
// of the APIs: who, the action, the resource and the result.
func (h *Handler) audit(r *http.Request, who, action, resource string, status int) {
	result := "ok"
	if status >= 300 {
		result = "error " + strconv.Itoa(status)
	}
	h.logger.Info("audit", "principal", who, "action", action, "resource", resource, "result", result, "remote", r.RemoteAddr)
}

// statusWriter records the status code a handler answered with.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the connection.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// EnsureAdmin creates the first admin user when there is no user: with
// password if it is not empty (ORRERY_UI_ADMIN_PASSWORD), otherwise with a
// generated one, printed to out once and written to
// <dataDir>/ui-admin-password with mode 0600.
func EnsureAdmin(ctx context.Context, cat *catalog.Catalog, dataDir, password string, out io.Writer) error {
	n, err := cat.CountUsers(ctx)
	if err != nil {
		return err
	}
	if n > 0 {
		return nil
	}
	generated := password == ""
	if generated {
		password = NewPassword()
	}
	hash, err := HashPassword(password)
	if err != nil {
		return err
	}
	if err := cat.CreateUser(ctx, catalog.User{Name: "admin", PasswordHash: hash, Role: RoleAdmin, Workspaces: []string{AllWorkspaces}, CreatedAt: time.Now()}); err != nil {
		return fmt.Errorf("create the first UI admin: %w", err)
	}
	if generated {
		path := filepath.Join(dataDir, "ui-admin-password")
		if err := os.WriteFile(path, []byte(password+"\n"), 0o600); err != nil {
			return fmt.Errorf("write %s: %w", path, err)
		}
		fmt.Fprintf(out, "orrery: created the web UI user \"admin\" (password shown once; also in %s):\n  %s\n", path, password)
	}
	return nil
}
