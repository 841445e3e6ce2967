package catalog

import (
	"context"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
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

// Alert manager definitions hold receivers' passwords, API keys and
// webhook URLs: they are sealed with the Sealer of access-key secrets,
// bound to their workspace, and stored as sealedPrefix + the sealed form.
// Rows written before sealing hold plain base64; they are read as such
// and sealed by SealAlertmanagerDefinitions.
const sealedPrefix = "sealed:"

func sealDefinition(s *Sealer, id workspace.ID, data []byte) (string, error) {
	enc, err := s.seal(string(data), "alertmanager-definition/"+string(id))
	if err != nil {
		return "", fmt.Errorf("seal the alert manager definition of workspace %s: %w", id, err)
	}
	return sealedPrefix + enc, nil
}

func openDefinition(s *Sealer, id workspace.ID, stored string) ([]byte, error) {
	sealed, ok := strings.CutPrefix(stored, sealedPrefix)
	if !ok {
		return base64.StdEncoding.DecodeString(stored)
	}
	plain, err := s.open(sealed, "alertmanager-definition/"+string(id))
	if err != nil {
		return nil, fmt.Errorf("alert manager definition of workspace %s: %w", id, err)
	}
	return []byte(plain), nil
}

// PutAlertmanagerDefinition creates (create true: ErrConflict if one
// exists) or replaces (ErrNotFound if none) a workspace's definition,
// sealed with s.
func (c *Catalog) PutAlertmanagerDefinition(ctx context.Context, s *Sealer, id workspace.ID, data []byte, at time.Time, create bool) error {
	enc, err := sealDefinition(s, id, data)
	if err != nil {
		return err
	}
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

// AlertmanagerDefinition returns a workspace's definition, opened with s,
// or ErrNotFound.
func (c *Catalog) AlertmanagerDefinition(ctx context.Context, s *Sealer, id workspace.ID) (AlertmanagerDefinition, error) {
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
	if d.Data, err = openDefinition(s, id, data); err != nil {
		return d, err
	}
	d.CreatedAt, d.ModifiedAt = time.UnixMilli(created).UTC(), time.UnixMilli(modified).UTC()
	return d, nil
}

// SealAlertmanagerDefinitions seals the definitions stored before they
// were sealed, and returns how many it sealed. A row changed meanwhile (by
// another replica) is left to its writer, who sealed it.
func (c *Catalog) SealAlertmanagerDefinitions(ctx context.Context, s *Sealer) (int, error) {
	rows, err := c.db.QueryContext(ctx, `SELECT workspace_id, data FROM alertmanager_definitions WHERE data NOT LIKE 'sealed:%'`)
	if err != nil {
		return 0, fmt.Errorf("list unsealed alert manager definitions: %w", err)
	}
	type row struct{ id, data string }
	var plain []row
	for rows.Next() {
		var r row
		if err := rows.Scan(&r.id, &r.data); err != nil {
			_ = rows.Close()
			return 0, fmt.Errorf("list unsealed alert manager definitions: %w", err)
		}
		plain = append(plain, r)
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return 0, fmt.Errorf("list unsealed alert manager definitions: %w", err)
	}
	n := 0
	for _, r := range plain {
		id := workspace.ID(r.id)
		data, err := openDefinition(s, id, r.data)
		if err != nil {
			return n, err
		}
		enc, err := sealDefinition(s, id, data)
		if err != nil {
			return n, err
		}
		res, err := c.db.ExecContext(ctx, `UPDATE alertmanager_definitions SET data = $1 WHERE workspace_id = $2 AND data = $3`, enc, r.id, r.data)
		if err != nil {
			return n, fmt.Errorf("seal the alert manager definition of workspace %s: %w", id, err)
		}
		if k, _ := res.RowsAffected(); k > 0 {
			n++
		}
	}
	return n, nil
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
