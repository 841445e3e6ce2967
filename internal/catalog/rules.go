package catalog

import (
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/orrery-dev/orrery/internal/workspace"
)

// RuleNamespace is a workspace's rule groups namespace: one Prometheus
// rule file.
type RuleNamespace struct {
	Workspace  workspace.ID
	Name       string
	Data       []byte // the rule file YAML.
	CreatedAt  time.Time
	ModifiedAt time.Time
	Tags       map[string]string
}

// PutRuleNamespace creates (create true: ErrConflict if it exists) or
// replaces (create false: ErrNotFound if it does not) a namespace.
func (c *Catalog) PutRuleNamespace(ctx context.Context, ns RuleNamespace, create bool) error {
	data := base64.StdEncoding.EncodeToString(ns.Data)
	if create {
		tags, err := json.Marshal(nonNil(ns.Tags))
		if err != nil {
			return err
		}
		_, err = c.db.ExecContext(ctx, `INSERT INTO rule_namespaces (workspace_id, name, data, created_at, modified_at, tags) VALUES ($1, $2, $3, $4, $4, $5)`,
			string(ns.Workspace), ns.Name, data, ns.ModifiedAt.UnixMilli(), string(tags))
		if err != nil && isUniqueViolation(err) {
			return fmt.Errorf("rule groups namespace %s already exists: %w", ns.Name, ErrConflict)
		}
		return err
	}
	res, err := c.db.ExecContext(ctx, `UPDATE rule_namespaces SET data = $1, modified_at = $2 WHERE workspace_id = $3 AND name = $4`,
		data, ns.ModifiedAt.UnixMilli(), string(ns.Workspace), ns.Name)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("rule groups namespace %s: %w", ns.Name, ErrNotFound)
	}
	return nil
}

const selectRuleNamespace = `SELECT workspace_id, name, data, created_at, modified_at, tags FROM rule_namespaces`

func scanRuleNamespace(row scanner) (RuleNamespace, error) {
	var (
		ns                RuleNamespace
		ws, data, tags    string
		created, modified int64
	)
	if err := row.Scan(&ws, &ns.Name, &data, &created, &modified, &tags); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return ns, ErrNotFound
		}
		return ns, err
	}
	var err error
	if ns.Data, err = base64.StdEncoding.DecodeString(data); err != nil {
		return ns, err
	}
	ns.Workspace = workspace.ID(ws)
	ns.CreatedAt, ns.ModifiedAt = time.UnixMilli(created).UTC(), time.UnixMilli(modified).UTC()
	return ns, json.Unmarshal([]byte(tags), &ns.Tags)
}

// RuleNamespace returns one namespace or ErrNotFound.
func (c *Catalog) RuleNamespace(ctx context.Context, id workspace.ID, name string) (RuleNamespace, error) {
	ns, err := scanRuleNamespace(c.db.QueryRowContext(ctx, selectRuleNamespace+` WHERE workspace_id = $1 AND name = $2`, string(id), name))
	if err != nil {
		return ns, fmt.Errorf("rule groups namespace %s: %w", name, err)
	}
	return ns, nil
}

// RuleNamespaces lists a workspace's namespaces by name after the given
// name, those starting with prefix.
func (c *Catalog) RuleNamespaces(ctx context.Context, id workspace.ID, prefix, after string, limit int) ([]RuleNamespace, error) {
	rows, err := c.db.QueryContext(ctx, selectRuleNamespace+` WHERE workspace_id = $1 AND name > $2 AND ($3 = '' OR substr(name, 1, length($3)) = $3) ORDER BY name LIMIT $4`,
		string(id), after, prefix, limit)
	if err != nil {
		return nil, fmt.Errorf("list rule groups namespaces: %w", err)
	}
	defer rows.Close()
	var out []RuleNamespace
	for rows.Next() {
		ns, err := scanRuleNamespace(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, ns)
	}
	return out, rows.Err()
}

// DeleteRuleNamespace removes a namespace or returns ErrNotFound.
func (c *Catalog) DeleteRuleNamespace(ctx context.Context, id workspace.ID, name string) error {
	res, err := c.db.ExecContext(ctx, `DELETE FROM rule_namespaces WHERE workspace_id = $1 AND name = $2`, string(id), name)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("rule groups namespace %s: %w", name, ErrNotFound)
	}
	return nil
}

// RuleWorkspaces lists the ACTIVE workspaces that have at least one rule
// groups namespace, by ID.
func (c *Catalog) RuleWorkspaces(ctx context.Context) ([]workspace.ID, error) {
	rows, err := c.db.QueryContext(ctx, `SELECT DISTINCT r.workspace_id FROM rule_namespaces r JOIN workspaces w ON w.id = r.workspace_id
		WHERE w.status = $1 ORDER BY r.workspace_id`, StatusActive)
	if err != nil {
		return nil, fmt.Errorf("list workspaces with rules: %w", err)
	}
	defer rows.Close()
	var out []workspace.ID
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("list workspaces with rules: %w", err)
		}
		out = append(out, workspace.ID(id))
	}
	return out, rows.Err()
}
