package ui

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/orrery-dev/orrery/internal/catalog"
	"github.com/orrery-dev/orrery/internal/workspace"
)

// TestRouteTableAuthorizes walks the UI's route table: only the static
// files and the login are served without a session; every other route
// refuses a request without one (401), one from a user below its role
// (403), and a workspace the user may not see (404, as if it did not
// exist).
func TestRouteTableAuthorizes(t *testing.T) {
	ctx := context.Background()
	cat, mine, other := testCatalog(t, t.TempDir())
	hash, err := HashPassword("viewer-pass")
	require.NoError(t, err)
	require.NoError(t, cat.CreateUser(ctx, catalog.User{Name: "vic", PasswordHash: hash, Role: RoleViewer, Workspaces: []string{mine.String()}, CreatedAt: time.Now()}))
	h, err := New(Config{}, cat, echo(), echo(), nil, prometheus.NewRegistry())
	require.NoError(t, err)
	srv := httptest.NewServer(h)
	defer srv.Close()
	anon := &client{t: t, base: srv.URL, c: srv.Client()}
	viewer, code := login(t, srv.URL, "vic", "viewer-pass")
	require.Equal(t, http.StatusOK, code)

	path := func(pattern string, id workspace.ID) (method, p string) {
		method, p, _ = strings.Cut(pattern, " ")
		return method, strings.NewReplacer("{id}", id.String(), "{name}", "n", "{uid}", "u", "{scraper}", "s").Replace(p)
	}
	var open []string
	for _, rt := range h.table() {
		if rt.role == "" {
			open = append(open, rt.pattern)
			continue
		}
		method, p := path(rt.pattern, mine)
		code, body := anon.do(method, p, "{}")
		require.Equal(t, http.StatusUnauthorized, code, "%s without a session: %s", rt.pattern, body)
		if roleRank(rt.role) > roleRank(RoleViewer) {
			code, body = viewer.do(method, p, "{}")
			require.Equal(t, http.StatusForbidden, code, "%s as a viewer: %s", rt.pattern, body)
			require.Contains(t, body, "needs the "+rt.role+" role")
		}
		if rt.workspace && rt.role == RoleViewer {
			method, p := path(rt.pattern, other)
			code, body = viewer.do(method, p, "{}")
			require.Equal(t, http.StatusNotFound, code, "%s of a workspace not granted: %s", rt.pattern, body)
		}
	}
	require.ElementsMatch(t, []string{"GET /ui/", "POST /ui/api/login"}, open)
}
