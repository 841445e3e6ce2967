package ui

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/orrery-dev/orrery/internal/catalog"
	"github.com/orrery-dev/orrery/internal/dashboard"
	"github.com/orrery-dev/orrery/internal/querylog"
	"github.com/orrery-dev/orrery/internal/workspace"
)

// echo answers with the workspace and path it was handed, as the query
// and Alertmanager APIs see them.
func echo() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, _ := workspace.FromContext(r.Context())
		_, _ = io.WriteString(w, id.String()+" "+r.Method+" "+r.URL.Path+" cookie="+r.Header.Get("Cookie"))
	})
}

type client struct {
	t    *testing.T
	base string
	c    *http.Client
	csrf string
}

func (c *client) do(method, path, body string) (int, string) {
	c.t.Helper()
	req, err := http.NewRequest(method, c.base+path, strings.NewReader(body))
	require.NoError(c.t, err)
	req.Header.Set("Content-Type", "application/json")
	if c.csrf != "" {
		req.Header.Set(csrfHeader, c.csrf)
	}
	resp, err := c.c.Do(req)
	require.NoError(c.t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func login(t *testing.T, base, name, password string) (*client, int) {
	jar, _ := cookiejar.New(nil)
	c := &client{t: t, base: base, c: &http.Client{Jar: jar}}
	code, body := c.do("POST", "/ui/api/login", `{"name":"`+name+`","password":"`+password+`"}`)
	if code == http.StatusOK {
		var s struct{ CSRF string }
		require.NoError(t, json.Unmarshal([]byte(body), &s))
		c.csrf = s.CSRF
	}
	return c, code
}

func TestUI(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	cat, err := catalog.OpenSQLite(ctx, filepath.Join(dir, "catalog.db"))
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, cat.Close()) })
	wsA, wsB := workspace.NewID(), workspace.NewID()
	for _, id := range []workspace.ID{wsA, wsB} {
		_, _, err := cat.CreateWorkspace(ctx, catalog.Workspace{ID: id, Status: catalog.StatusActive, CreatedAt: time.Now()})
		require.NoError(t, err)
	}
	var out strings.Builder
	require.NoError(t, EnsureAdmin(ctx, cat, dir, "", &out))
	pw, err := os.ReadFile(filepath.Join(dir, "ui-admin-password"))
	require.NoError(t, err)
	fi, err := os.Stat(filepath.Join(dir, "ui-admin-password"))
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	require.Contains(t, out.String(), strings.TrimSpace(string(pw)))
	require.NoError(t, EnsureAdmin(ctx, cat, dir, "", &out)) // Only once.

	h, err := New(Config{}, cat, echo(), echo(), nil, prometheus.NewRegistry())
	require.NoError(t, err)
	qlog, err := querylog.New(querylog.Config{Dir: filepath.Join(dir, "querylogs")},
		func(context.Context, workspace.ID) (int64, bool, error) { return 0, true, nil }, nil)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, qlog.Close()) })
	qlog.Record(ctx, wsA, querylog.Entry{Query: "fast_a", DurationSeconds: 0.1, Status: "success"})
	qlog.Record(ctx, wsA, querylog.Entry{Query: "slow_a", DurationSeconds: 9, Status: "success"})
	qlog.Record(ctx, wsB, querylog.Entry{Query: "secret_b", DurationSeconds: 1, Status: "success"})
	h.SetSlowQueries(qlog)
	srv := httptest.NewServer(h)
	defer srv.Close()

	admin, code := login(t, srv.URL, "admin", strings.TrimSpace(string(pw)))
	require.Equal(t, http.StatusOK, code)
	code, body := admin.do("POST", "/ui/api/users", `{"name":"vic","role":"viewer","workspaces":["`+wsA.String()+`"],"password":"viewer-pass"}`)
	require.Equal(t, http.StatusCreated, code, body)
	code, body = admin.do("POST", "/ui/api/users", `{"name":"ed","role":"editor","workspaces":["`+wsA.String()+`"]}`)
	require.Equal(t, http.StatusCreated, code, body)
	var ed userJSON
	require.NoError(t, json.Unmarshal([]byte(body), &ed))
	require.NotEmpty(t, ed.Password)
	code, _ = admin.do("POST", "/ui/api/users", `{"name":"x","role":"boss"}`)
	require.Equal(t, http.StatusBadRequest, code)

	code, body = admin.do("PUT", "/ui/api/users/admin", `{"role":"viewer"}`)
	require.Equal(t, http.StatusBadRequest, code, body)
	code, body = admin.do("PUT", "/ui/api/users/admin", `{"role":"admin","workspaces":["*"]}`)
	require.Equal(t, http.StatusOK, code, body)

	// CSRF: a mutating request without the header is refused.
	csrf := admin.csrf
	admin.csrf = ""
	code, _ = admin.do("DELETE", "/ui/api/users/vic", "")
	require.Equal(t, http.StatusForbidden, code)
	admin.csrf = csrf

	viewer, code := login(t, srv.URL, "vic", "viewer-pass")
	require.Equal(t, http.StatusOK, code)
	code, body = viewer.do("GET", "/ui/api/session", "")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, wsA.String())
	require.NotContains(t, body, wsB.String())
	code, _ = viewer.do("GET", "/ui/api/users", "")
	require.Equal(t, http.StatusForbidden, code)

	// Dashboards: editors import, viewers read.
	envoy := string(dashboard.EnvoyDashboard())
	code, _ = viewer.do("POST", "/ui/api/workspaces/"+wsA.String()+"/dashboards", envoy)
	require.Equal(t, http.StatusForbidden, code)
	editor, code := login(t, srv.URL, "ed", ed.Password)
	require.Equal(t, http.StatusOK, code)
	code, body = editor.do("POST", "/ui/api/workspaces/"+wsA.String()+"/dashboards", `{"dashboard":`+envoy+`}`)
	require.Equal(t, http.StatusOK, code, body)
	code, body = editor.do("POST", "/ui/api/workspaces/"+wsA.String()+"/dashboards", `{"title": "x", "panels": {}}`)
	require.Equal(t, http.StatusBadRequest, code)
	require.Contains(t, body, "panels: want an array")
	code, body = viewer.do("GET", "/ui/api/workspaces/"+wsA.String()+"/dashboards", "")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, `"uid":"orrery-envoy"`)
	code, body = viewer.do("GET", "/ui/api/workspaces/"+wsA.String()+"/dashboards/orrery-envoy", "")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, `"title":"Envoy (Orrery)"`)
	code, _ = viewer.do("DELETE", "/ui/api/workspaces/"+wsA.String()+"/dashboards/orrery-envoy", "")
	require.Equal(t, http.StatusForbidden, code)

	// Another workspace is invisible.
	code, _ = viewer.do("GET", "/ui/api/workspaces/"+wsB.String()+"/dashboards", "")
	require.Equal(t, http.StatusNotFound, code)
	code, _ = viewer.do("GET", "/ui/api/workspaces/"+wsB.String()+"/prom/api/v1/query?query=up", "")
	require.Equal(t, http.StatusNotFound, code)

	code, _ = viewer.do("GET", "/ui/api/workspaces/"+wsB.String()+"/slowqueries", "")
	require.Equal(t, http.StatusNotFound, code)

	// The slowest recent queries of the workspace, slowest first.
	code, body = viewer.do("GET", "/ui/api/workspaces/"+wsA.String()+"/slowqueries", "")
	require.Equal(t, http.StatusOK, code, body)
	var slow []querylog.Entry
	require.NoError(t, json.Unmarshal([]byte(body), &slow))
	require.Len(t, slow, 2)
	require.Equal(t, []string{"slow_a", "fast_a"}, []string{slow[0].Query, slow[1].Query})

	// The proxy hands the workspace API its own path, without the cookie.
	code, body = viewer.do("GET", "/ui/api/workspaces/"+wsA.String()+"/prom/api/v1/query?query=up", "")
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, wsA.String()+" GET /workspaces/"+wsA.String()+"/api/v1/query cookie=", body)
	code, _ = viewer.do("POST", "/ui/api/workspaces/"+wsA.String()+"/prom/api/v1/admin/tsdb/delete_series", "")
	require.Equal(t, http.StatusForbidden, code)
	code, _ = viewer.do("POST", "/ui/api/workspaces/"+wsA.String()+"/alertmanager/api/v2/silences", "{}")
	require.Equal(t, http.StatusForbidden, code)
	code, body = editor.do("POST", "/ui/api/workspaces/"+wsA.String()+"/alertmanager/api/v2/silences", "{}")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, "POST /workspaces/"+wsA.String()+"/alertmanager/api/v2/silences")

	// A new password ends the user's sessions.
	code, _ = admin.do("PUT", "/ui/api/users/vic", `{"password":"another-pass"}`)
	require.Equal(t, http.StatusOK, code)
	code, _ = viewer.do("GET", "/ui/api/session", "")
	require.Equal(t, http.StatusUnauthorized, code)

	// Logins are rate limited per user and address: vic's first login and
	// four wrong passwords spend the burst of five.
	for range 4 {
		_, code = login(t, srv.URL, "vic", "wrong-password")
		require.Equal(t, http.StatusUnauthorized, code)
	}
	_, code = login(t, srv.URL, "vic", "another-pass")
	require.Equal(t, http.StatusTooManyRequests, code)
	_, code = login(t, srv.URL, "ed", ed.Password)
	require.Equal(t, http.StatusOK, code)

	code, _ = admin.do("POST", "/ui/api/logout", "")
	require.Equal(t, http.StatusNoContent, code)
	code, _ = admin.do("GET", "/ui/api/session", "")
	require.Equal(t, http.StatusUnauthorized, code)
}

func TestPasswordHash(t *testing.T) {
	h, err := HashPassword("correct horse")
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(h, "$argon2id$v=19$m=19456,t=2,p=1$"))
	ok, err := CheckPassword(h, "correct horse")
	require.NoError(t, err)
	require.True(t, ok)
	ok, err = CheckPassword(h, "wrong horse")
	require.NoError(t, err)
	require.False(t, ok)
	_, err = CheckPassword("$2y$10$bcrypt", "x")
	require.Error(t, err)
}
