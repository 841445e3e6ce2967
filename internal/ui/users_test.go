package ui

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/orrery-dev/orrery/internal/catalog"
	"github.com/orrery-dev/orrery/internal/workspace"
)

// TestUserAdminBoundaries is the matrix of what a UI admin limited to
// workspace A may do to users, against what a global admin may.
func TestUserAdminBoundaries(t *testing.T) {
	ctx := context.Background()
	cat, err := catalog.OpenSQLite(ctx, filepath.Join(t.TempDir(), "catalog.db"))
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, cat.Close()) })
	idA, idB := workspace.NewID(), workspace.NewID()
	for _, id := range []workspace.ID{idA, idB} {
		_, _, err := cat.CreateWorkspace(ctx, catalog.Workspace{ID: id, Status: catalog.StatusActive, CreatedAt: time.Now()})
		require.NoError(t, err)
	}
	wsA, wsB := idA.String(), idB.String()
	for name, ws := range map[string][]string{
		"admin": {AllWorkspaces}, "adminA": {wsA}, "adminAB": {wsA, wsB},
		"viewA": {wsA}, "viewB": {wsB}, "viewAB": {wsA, wsB}, "viewAll": {AllWorkspaces},
	} {
		role := RoleViewer
		if name[:5] == "admin" {
			role = RoleAdmin
		}
		hash, err := HashPassword("password-" + name)
		require.NoError(t, err)
		require.NoError(t, cat.CreateUser(ctx, catalog.User{Name: name, PasswordHash: hash, Role: role, Workspaces: ws, CreatedAt: time.Now()}))
	}
	h, err := New(Config{LoginBurst: 100}, cat, echo(), echo(), nil, prometheus.NewRegistry())
	require.NoError(t, err)
	srv := httptest.NewServer(h)
	defer srv.Close()
	as := func(name string) *client {
		c, code := login(t, srv.URL, name, "password-"+name)
		require.Equal(t, http.StatusOK, code)
		return c
	}
	adminA, admin := as("adminA"), as("admin")
	ws := func(ids ...string) string {
		b, _ := json.Marshal(ids)
		return string(b)
	}
	for _, c := range []struct {
		name   string
		caller *client
		method string
		path   string
		body   string
		code   int
	}{
		{"A grants itself all workspaces", adminA, "PUT", "/ui/api/users/adminA", `{"workspaces":["*"]}`, http.StatusForbidden},
		{"A grants itself B", adminA, "PUT", "/ui/api/users/adminA", `{"workspaces":` + ws(wsA, wsB) + `}`, http.StatusForbidden},
		{"A resets the global admin's password", adminA, "PUT", "/ui/api/users/admin", `{"password":"taken-over"}`, http.StatusForbidden},
		{"A demotes the global admin", adminA, "PUT", "/ui/api/users/admin", `{"role":"viewer"}`, http.StatusForbidden},
		{"A deletes the global admin", adminA, "DELETE", "/ui/api/users/admin", ``, http.StatusForbidden},
		{"A resets the password of a viewer of B", adminA, "PUT", "/ui/api/users/viewB", `{"password":"taken-over"}`, http.StatusForbidden},
		{"A resets the password of a viewer of A and B", adminA, "PUT", "/ui/api/users/viewAB", `{"password":"taken-over"}`, http.StatusForbidden},
		{"A resets the password of an admin of A and B", adminA, "PUT", "/ui/api/users/adminAB", `{"password":"taken-over"}`, http.StatusForbidden},
		{"A creates a global user", adminA, "POST", "/ui/api/users", `{"name":"mole","role":"admin","workspaces":["*"]}`, http.StatusForbidden},
		{"A creates a user of B", adminA, "POST", "/ui/api/users", `{"name":"mole","role":"viewer","workspaces":` + ws(wsB) + `}`, http.StatusForbidden},
		{"A grants B to a viewer of A", adminA, "PUT", "/ui/api/users/viewA", `{"workspaces":` + ws(wsA, wsB) + `}`, http.StatusForbidden},
		{"A changes a global viewer", adminA, "PUT", "/ui/api/users/viewAll", `{"workspaces":` + ws(wsA) + `}`, http.StatusForbidden},
		{"A creates a viewer of A", adminA, "POST", "/ui/api/users", `{"name":"newA","role":"viewer","workspaces":` + ws(wsA) + `}`, http.StatusCreated},
		{"A resets the password of a viewer of A", adminA, "PUT", "/ui/api/users/viewA", `{"password":"another-pass"}`, http.StatusOK},
		{"A makes a viewer of A an editor", adminA, "PUT", "/ui/api/users/viewA", `{"role":"editor"}`, http.StatusOK},
		{"A deletes a user of A", adminA, "DELETE", "/ui/api/users/newA", ``, http.StatusNoContent},
		{"the global admin grants B to A's admin", admin, "PUT", "/ui/api/users/adminA", `{"workspaces":` + ws(wsA, wsB) + `}`, http.StatusOK},
		{"the global admin resets a global viewer", admin, "PUT", "/ui/api/users/viewAll", `{"password":"another-pass"}`, http.StatusOK},
		{"a user of a workspace that does not exist", admin, "POST", "/ui/api/users", `{"name":"ghost","role":"viewer","workspaces":` + ws(workspace.NewID().String()) + `}`, http.StatusNotFound},
		{"granting a workspace that does not exist", admin, "PUT", "/ui/api/users/viewA", `{"workspaces":` + ws(wsA, workspace.NewID().String()) + `}`, http.StatusNotFound},
		{"the global admin creates a global admin", admin, "POST", "/ui/api/users", `{"name":"admin2","role":"admin","workspaces":["*"]}`, http.StatusCreated},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, body := c.caller.do(c.method, c.path, c.body)
			require.Equal(t, c.code, code, body)
		})
	}
	u, err := cat.User(ctx, "admin")
	require.NoError(t, err)
	ok, err := CheckPassword(u.PasswordHash, "password-admin")
	require.NoError(t, err)
	require.True(t, ok, "the global admin's password is unchanged")
	require.Equal(t, RoleAdmin, u.Role)
}
