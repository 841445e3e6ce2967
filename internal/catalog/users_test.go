package catalog

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orrery-dev/orrery/internal/workspace"
)

func TestUsersSessionsDashboards(t *testing.T) {
	ctx := context.Background()
	c := open(t, filepath.Join(t.TempDir(), "catalog.db"))
	now := time.Now()
	require.NoError(t, c.CreateUser(ctx, User{Name: "ann", PasswordHash: "h1", Role: "viewer", Workspaces: []string{"ws-a"}, CreatedAt: now}))
	require.ErrorIs(t, c.CreateUser(ctx, User{Name: "ann", PasswordHash: "h", Role: "admin", CreatedAt: now}), ErrConflict)
	u, err := c.User(ctx, "ann")
	require.NoError(t, err)
	require.Equal(t, []string{"ws-a"}, u.Workspaces)

	require.NoError(t, c.CreateSession(ctx, Session{IDHash: "s1", User: "ann", CSRFToken: "c", CreatedAt: now, ExpiresAt: now.Add(time.Hour)}))
	s, err := c.Session(ctx, "s1", now)
	require.NoError(t, err)
	require.Equal(t, "ann", s.User)
	_, err = c.Session(ctx, "s1", now.Add(2*time.Hour))
	require.ErrorIs(t, err, ErrNotFound)

	// A new password ends the sessions.
	require.NoError(t, c.UpdateUser(ctx, "ann", "h2", "editor", []string{"ws-a", "ws-b"}))
	_, err = c.Session(ctx, "s1", now)
	require.ErrorIs(t, err, ErrNotFound)
	u, err = c.User(ctx, "ann")
	require.NoError(t, err)
	require.Equal(t, User{Name: "ann", PasswordHash: "h2", Role: "editor", Workspaces: []string{"ws-a", "ws-b"}, CreatedAt: u.CreatedAt}, u)
	require.ErrorIs(t, c.UpdateUser(ctx, "bob", "", "admin", nil), ErrNotFound)
	require.NoError(t, c.DeleteUser(ctx, "ann"))
	require.ErrorIs(t, c.DeleteUser(ctx, "ann"), ErrNotFound)

	ws := workspace.NewID()
	_, err = c.PutDashboard(ctx, Dashboard{Workspace: ws, UID: "d1", Title: "B", Data: []byte(`{}`), ModifiedAt: now})
	require.NoError(t, err)
	_, err = c.PutDashboard(ctx, Dashboard{Workspace: ws, UID: "d2", Title: "A", Data: []byte(`{"x":1}`), ModifiedAt: now})
	require.NoError(t, err)
	_, err = c.PutDashboard(ctx, Dashboard{Workspace: ws, UID: "d1", Title: "C", Data: []byte(`{"y":1}`), ModifiedAt: now})
	require.NoError(t, err)
	list, err := c.Dashboards(ctx, ws)
	require.NoError(t, err)
	require.Len(t, list, 2)
	require.Equal(t, "A", list[0].Title)
	d, err := c.Dashboard(ctx, ws, "d1")
	require.NoError(t, err)
	require.JSONEq(t, `{"y":1}`, string(d.Data))
	list, err = c.Dashboards(ctx, workspace.NewID())
	require.NoError(t, err)
	require.Empty(t, list)
	require.NoError(t, c.DeleteDashboard(ctx, ws, "d1"))
	_, err = c.Dashboard(ctx, ws, "d1")
	require.ErrorIs(t, err, ErrNotFound)
}
