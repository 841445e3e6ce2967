package catalog

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orrery-dev/orrery/internal/workspace"
)

func open(t *testing.T, path string) *Catalog {
	t.Helper()
	c, err := OpenSQLite(context.Background(), path)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, c.Close()) })
	return c
}

func TestWorkspacesLifecycleAndPersistence(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "catalog.db")
	c := open(t, path)
	now := time.Now()

	w, created, err := c.CreateWorkspace(ctx, Workspace{ID: workspace.NewID(), Alias: "prod", Status: StatusActive, CreatedAt: now,
		Tags: map[string]string{"team": "mesh"}, ClientToken: "tok-1"})
	require.NoError(t, err)
	require.True(t, created)

	// Idempotent retry: same token, same request.
	again, created, err := c.CreateWorkspace(ctx, Workspace{ID: workspace.NewID(), Alias: "prod", Status: StatusCreating, CreatedAt: now, ClientToken: "tok-1"})
	require.NoError(t, err)
	require.False(t, created)
	require.Equal(t, w.ID, again.ID)
	// Same token, different request.
	_, _, err = c.CreateWorkspace(ctx, Workspace{ID: workspace.NewID(), Alias: "other", Status: StatusCreating, CreatedAt: now, ClientToken: "tok-1"})
	require.ErrorIs(t, err, ErrConflict)

	for i := range 5 {
		_, _, err := c.CreateWorkspace(ctx, Workspace{ID: workspace.NewID(), Alias: fmt.Sprintf("dev-%d", i), Status: StatusActive, CreatedAt: now})
		require.NoError(t, err)
	}
	// Pagination visits every workspace once.
	var seen []workspace.ID
	after := workspace.ID("")
	for {
		page, err := c.ListWorkspaces(ctx, "", after, 2)
		require.NoError(t, err)
		if len(page) == 0 {
			break
		}
		for _, p := range page {
			seen = append(seen, p.ID)
		}
		after = page[len(page)-1].ID
	}
	require.Len(t, seen, 6)
	dev, err := c.ListWorkspaces(ctx, "dev-", "", 100)
	require.NoError(t, err)
	require.Len(t, dev, 5)

	alias := "production"
	require.NoError(t, c.UpdateWorkspace(ctx, w.ID, &alias, nil, nil))
	require.ErrorIs(t, c.UpdateWorkspace(ctx, workspace.NewID(), &alias, nil, nil), ErrNotFound)

	// State survives reopening the file.
	require.NoError(t, c.Close())
	c2 := open(t, path)
	got, err := c2.GetWorkspace(ctx, w.ID)
	require.NoError(t, err)
	require.Equal(t, "production", got.Alias)
	require.Equal(t, map[string]string{"team": "mesh"}, got.Tags)
	require.Equal(t, now.UnixMilli(), got.CreatedAt.UnixMilli())

	require.NoError(t, c2.RemoveWorkspace(ctx, w.ID))
	_, err = c2.GetWorkspace(ctx, w.ID)
	require.ErrorIs(t, err, ErrNotFound)
	require.ErrorIs(t, c2.RemoveWorkspace(ctx, w.ID), ErrNotFound)
}
