package catalog

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/orrery-dev/orrery/internal/workspace"
)

// LoggingConfiguration is a workspace's logging configuration, as AMP
// stores it: the CloudWatch log group its rule and Alertmanager errors
// would go to.
type LoggingConfiguration struct {
	LogGroupARN string
	CreatedAt   time.Time
	ModifiedAt  time.Time
}

// PutLoggingConfiguration creates (create true: ErrConflict if one exists)
// or replaces (ErrNotFound if none) a workspace's logging configuration.
func (c *Catalog) PutLoggingConfiguration(ctx context.Context, id workspace.ID, arn string, at time.Time, create bool) error {
	if create {
		var n int
		if err := c.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM logging_configurations WHERE workspace_id = $1`, string(id)).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return fmt.Errorf("workspace %s already has a logging configuration: %w", id, ErrConflict)
		}
		_, err := c.db.ExecContext(ctx, `INSERT INTO logging_configurations (workspace_id, log_group_arn, created_at, modified_at) VALUES ($1, $2, $3, $3)`,
			string(id), arn, at.UnixMilli())
		return err
	}
	res, err := c.db.ExecContext(ctx, `UPDATE logging_configurations SET log_group_arn = $1, modified_at = $2 WHERE workspace_id = $3`, arn, at.UnixMilli(), string(id))
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("logging configuration of workspace %s: %w", id, ErrNotFound)
	}
	return nil
}

// LoggingConfiguration returns a workspace's logging configuration or
// ErrNotFound.
func (c *Catalog) LoggingConfiguration(ctx context.Context, id workspace.ID) (LoggingConfiguration, error) {
	var (
		l                 LoggingConfiguration
		created, modified int64
	)
	err := c.db.QueryRowContext(ctx, `SELECT log_group_arn, created_at, modified_at FROM logging_configurations WHERE workspace_id = $1`, string(id)).
		Scan(&l.LogGroupARN, &created, &modified)
	if errors.Is(err, sql.ErrNoRows) {
		return l, fmt.Errorf("logging configuration of workspace %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return l, err
	}
	l.CreatedAt, l.ModifiedAt = time.UnixMilli(created).UTC(), time.UnixMilli(modified).UTC()
	return l, nil
}

// DeleteLoggingConfiguration removes a workspace's logging configuration.
func (c *Catalog) DeleteLoggingConfiguration(ctx context.Context, id workspace.ID) error {
	res, err := c.db.ExecContext(ctx, `DELETE FROM logging_configurations WHERE workspace_id = $1`, string(id))
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("logging configuration of workspace %s: %w", id, ErrNotFound)
	}
	return nil
}
