package catalog

import (
	"context"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"github.com/orrery-dev/orrery/internal/workspace"
)

// AlertmanagerDefinition is a workspace's Alertmanager configuration in
// AMP's format: YAML with alertmanager_config and template_files.
type AlertmanagerDefinition struct {
	Data       []byte
	CreatedAt  time.Time
	ModifiedAt time.Time
}

// PutAlertmanagerDefinition creates (create true: ErrConflict if one
// exists) or replaces (ErrNotFound if none) a workspace's definition.
func (c *Catalog) PutAlertmanagerDefinition(ctx context.Context, id workspace.ID, data []byte, at time.Time, create bool) error {
	enc := base64.StdEncoding.EncodeToString(data)
	if create {
		_, err := c.db.ExecContext(ctx, `INSERT INTO alertmanager_definitions (workspace_id, data, created_at, modified_at) VALUES ($1, $2, $3, $3)`,
			string(id), enc, at.UnixMilli())
		if err != nil && isUniqueViolation(err) {
			return fmt.Errorf("workspace %s already has an alert manager definition: %w", id, ErrConflict)
		}
		return err
	}
	res, err := c.db.ExecContext(ctx, `UPDATE alertmanager_definitions SET data = $1, modified_at = $2 WHERE workspace_id = $3`, enc, at.UnixMilli(), string(id))
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("alert manager definition of workspace %s: %w", id, ErrNotFound)
	}
	return nil
}

// AlertmanagerDefinition returns a workspace's definition or ErrNotFound.
func (c *Catalog) AlertmanagerDefinition(ctx context.Context, id workspace.ID) (AlertmanagerDefinition, error) {
	var (
		d                 AlertmanagerDefinition
		data              string
		created, modified int64
	)
	err := c.db.QueryRowContext(ctx, `SELECT data, created_at, modified_at FROM alertmanager_definitions WHERE workspace_id = $1`, string(id)).
		Scan(&data, &created, &modified)
	if errors.Is(err, sql.ErrNoRows) {
		return d, fmt.Errorf("alert manager definition of workspace %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return d, err
	}
	if d.Data, err = base64.StdEncoding.DecodeString(data); err != nil {
		return d, err
	}
	d.CreatedAt, d.ModifiedAt = time.UnixMilli(created).UTC(), time.UnixMilli(modified).UTC()
	return d, nil
}

// DeleteAlertmanagerDefinition removes a workspace's definition.
func (c *Catalog) DeleteAlertmanagerDefinition(ctx context.Context, id workspace.ID) error {
	res, err := c.db.ExecContext(ctx, `DELETE FROM alertmanager_definitions WHERE workspace_id = $1`, string(id))
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("alert manager definition of workspace %s: %w", id, ErrNotFound)
	}
	return nil
}

// ActiveAlertmanagerDefinitions lists the active workspaces that have an
// alert manager definition.
func (c *Catalog) ActiveAlertmanagerDefinitions(ctx context.Context) ([]workspace.ID, error) {
	rows, err := c.db.QueryContext(ctx, `SELECT d.workspace_id FROM alertmanager_definitions d
		JOIN workspaces w ON w.id = d.workspace_id WHERE w.status = $1 ORDER BY d.workspace_id`, StatusActive)
	if err != nil {
		return nil, fmt.Errorf("list alert manager definitions: %w", err)
	}
	defer func() { _ = rows.Close() }()
	var ids []workspace.ID
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("list alert manager definitions: %w", err)
		}
		ids = append(ids, workspace.ID(id))
	}
	return ids, rows.Err()
}
