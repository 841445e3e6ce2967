package catalog

import (
	"context"
	"encoding/base64"
	"fmt"
	"os"
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

func TestAccessKeysAreSealed(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	c := open(t, filepath.Join(dir, "catalog.db"))
	s, err := LoadSealer(filepath.Join(dir, "secrets.key"))
	require.NoError(t, err)
	fi, err := os.Stat(filepath.Join(dir, "secrets.key"))
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())

	k := AccessKey{ID: NewAccessKeyID(), Secret: NewSecret(), Policy: `{"Statement":[]}`, CreatedAt: time.Now()}
	require.Len(t, k.ID, 20)
	require.Len(t, k.Secret, 40)
	require.NoError(t, c.CreateAccessKey(ctx, s, k))
	got, err := c.AccessKey(ctx, s, k.ID)
	require.NoError(t, err)
	require.Equal(t, k.Secret, got.Secret)
	require.False(t, got.Revoked)

	// The database file never holds the secret in plain text.
	require.NoError(t, c.Close())
	for _, f := range []string{"catalog.db", "catalog.db-wal"} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err == nil {
			require.NotContains(t, string(b), k.Secret, f)
		}
	}
	c = open(t, filepath.Join(dir, "catalog.db"))
	// Another key file cannot open it.
	other, err := LoadSealer(filepath.Join(t.TempDir(), "other.key"))
	require.NoError(t, err)
	_, err = c.AccessKey(ctx, other, k.ID)
	require.ErrorContains(t, err, "does not open")

	require.NoError(t, c.RevokeAccessKey(ctx, k.ID, time.Now()))
	got, err = c.AccessKey(ctx, s, k.ID)
	require.NoError(t, err)
	require.True(t, got.Revoked)
	require.ErrorIs(t, c.RevokeAccessKey(ctx, k.ID, time.Now()), ErrNotFound)
	_, err = c.AccessKey(ctx, s, "OKIANOSUCHKEY0000000")
	require.ErrorIs(t, err, ErrNotFound)
}

// TestAlertmanagerDefinitionsAreSealed: a definition's receiver secrets
// are never in the database file in plain text or base64, a definition
// stored before sealing is read and then sealed, and a sealed one moved to
// another workspace does not open.
func TestAlertmanagerDefinitionsAreSealed(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	c := open(t, filepath.Join(dir, "catalog.db"))
	s, err := LoadSealer(filepath.Join(dir, "secrets.key"))
	require.NoError(t, err)
	a, b := workspace.NewID(), workspace.NewID()
	for _, id := range []workspace.ID{a, b} {
		_, _, err := c.CreateWorkspace(ctx, Workspace{ID: id, Status: StatusActive, CreatedAt: time.Now()})
		require.NoError(t, err)
	}
	const secret = "hunter2-slack-webhook-token"
	def := []byte("alertmanager_config: |\n  receivers: [{name: r, slack_configs: [{api_url: 'https://hooks.slack.com/" + secret + "'}]}]\n")
	require.NoError(t, c.PutAlertmanagerDefinition(ctx, s, a, def, time.Now(), true))
	got, err := c.AlertmanagerDefinition(ctx, s, a)
	require.NoError(t, err)
	require.Equal(t, def, got.Data)

	// A definition of the unsealed days.
	_, err = c.db.ExecContext(ctx, `INSERT INTO alertmanager_definitions (workspace_id, data, created_at, modified_at) VALUES ($1, $2, 1, 1)`,
		string(b), base64.StdEncoding.EncodeToString(def))
	require.NoError(t, err)
	got, err = c.AlertmanagerDefinition(ctx, s, b)
	require.NoError(t, err)
	require.Equal(t, def, got.Data)
	n, err := c.SealAlertmanagerDefinitions(ctx, s)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	n, err = c.SealAlertmanagerDefinitions(ctx, s)
	require.NoError(t, err)
	require.Zero(t, n)
	got, err = c.AlertmanagerDefinition(ctx, s, b)
	require.NoError(t, err)
	require.Equal(t, def, got.Data)

	// Bound to its workspace: A's sealed row copied to B does not open.
	_, err = c.db.ExecContext(ctx, `UPDATE alertmanager_definitions SET data = (SELECT data FROM alertmanager_definitions WHERE workspace_id = $1) WHERE workspace_id = $2`, string(a), string(b))
	require.NoError(t, err)
	_, err = c.AlertmanagerDefinition(ctx, s, b)
	require.ErrorContains(t, err, "does not open")

	require.NoError(t, c.Close())
	for _, f := range []string{"catalog.db", "catalog.db-wal"} {
		raw, err := os.ReadFile(filepath.Join(dir, f))
		if err == nil {
			require.NotContains(t, string(raw), secret, f)
			require.NotContains(t, string(raw), base64.StdEncoding.EncodeToString(def)[:40], f)
		}
	}
}
