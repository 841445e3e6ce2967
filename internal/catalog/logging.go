package catalog

import (
	"context"
	"database/sql"
	"encoding/json"
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
	return c.putRow(ctx, loggingRows, id, arn, at, create)
}

// LoggingConfiguration returns a workspace's logging configuration or
// ErrNotFound.
func (c *Catalog) LoggingConfiguration(ctx context.Context, id workspace.ID) (LoggingConfiguration, error) {
	var l LoggingConfiguration
	var err error
	l.LogGroupARN, l.CreatedAt, l.ModifiedAt, err = c.getRow(ctx, loggingRows, id)
	return l, err
}

// DeleteLoggingConfiguration removes a workspace's logging configuration.
func (c *Catalog) DeleteLoggingConfiguration(ctx context.Context, id workspace.ID) error {
	return c.deleteRow(ctx, loggingRows, id)
}

// QueryLoggingConfiguration is a workspace's query logging configuration
// (AMP's CreateQueryLoggingConfiguration): where its query logs go, each
// destination with its threshold of samples processed.
type QueryLoggingConfiguration struct {
	Destinations []QueryLogDestination
	CreatedAt    time.Time
	ModifiedAt   time.Time
}

// QueryLogDestination is one destination of a workspace's query logs.
type QueryLogDestination struct {
	LogGroupARN string `json:"logGroupArn"`
	// QSPThreshold: only queries that processed at least this many
	// samples are logged (0: all).
	QSPThreshold int64 `json:"qspThreshold"`
}

// PutQueryLoggingConfiguration creates (create true: ErrConflict if one
// exists) or replaces (ErrNotFound if none) a workspace's query logging
// configuration.
func (c *Catalog) PutQueryLoggingConfiguration(ctx context.Context, id workspace.ID, dests []QueryLogDestination, at time.Time, create bool) error {
	b, err := json.Marshal(dests)
	if err != nil {
		return err
	}
	if err := c.putRow(ctx, queryLoggingRows, id, string(b), at, create); err != nil {
		return err
	}
	c.changed(QueryLoggingChanged, string(id))
	return nil
}

// QueryLoggingConfiguration returns a workspace's query logging
// configuration or ErrNotFound.
func (c *Catalog) QueryLoggingConfiguration(ctx context.Context, id workspace.ID) (QueryLoggingConfiguration, error) {
	var q QueryLoggingConfiguration
	data, created, modified, err := c.getRow(ctx, queryLoggingRows, id)
	if err != nil {
		return q, err
	}
	q.CreatedAt, q.ModifiedAt = created, modified
	if err := json.Unmarshal([]byte(data), &q.Destinations); err != nil {
		return q, fmt.Errorf("query logging configuration of workspace %s: %w", id, err)
	}
	return q, nil
}

// DeleteQueryLoggingConfiguration removes a workspace's query logging
// configuration.
func (c *Catalog) DeleteQueryLoggingConfiguration(ctx context.Context, id workspace.ID) error {
	if err := c.deleteRow(ctx, queryLoggingRows, id); err != nil {
		return err
	}
	c.changed(QueryLoggingChanged, string(id))
	return nil
}

// QueryLoggingConfigurations returns every workspace's query logging
// configuration, for the query path's view of which workspaces log.
func (c *Catalog) QueryLoggingConfigurations(ctx context.Context) (map[workspace.ID]QueryLoggingConfiguration, error) {
	rows, err := c.db.QueryContext(ctx, `SELECT workspace_id, data, created_at, modified_at FROM query_logging_configurations`)
	if err != nil {
		return nil, fmt.Errorf("list query logging configurations: %w", err)
	}
	defer rows.Close()
	out := map[workspace.ID]QueryLoggingConfiguration{}
	for rows.Next() {
		var (
			id, data          string
			created, modified int64
			q                 QueryLoggingConfiguration
		)
		if err := rows.Scan(&id, &data, &created, &modified); err != nil {
			return nil, fmt.Errorf("list query logging configurations: %w", err)
		}
		if err := json.Unmarshal([]byte(data), &q.Destinations); err != nil {
			return nil, fmt.Errorf("query logging configuration of workspace %s: %w", id, err)
		}
		q.CreatedAt, q.ModifiedAt = time.UnixMilli(created).UTC(), time.UnixMilli(modified).UTC()
		out[workspace.ID(id)] = q
	}
	return out, rows.Err()
}

// rowTable is a table of at most one row per workspace: workspace_id, one
// value column, created_at and modified_at. Its names are constants, never
// input.
type rowTable struct{ table, column, what string }

var (
	loggingRows      = rowTable{"logging_configurations", "log_group_arn", "logging configuration"}
	queryLoggingRows = rowTable{"query_logging_configurations", "data", "query logging configuration"}
)

// putRow creates (create true: ErrConflict if one exists) or replaces
// (ErrNotFound if none) a workspace's row of t.
func (c *Catalog) putRow(ctx context.Context, t rowTable, id workspace.ID, value string, at time.Time, create bool) error {
	if create {
		_, err := c.db.ExecContext(ctx, `INSERT INTO `+t.table+` (workspace_id, `+t.column+`, created_at, modified_at) VALUES ($1, $2, $3, $3)`,
			string(id), value, at.UnixMilli())
		if isUniqueViolation(err) {
			return fmt.Errorf("workspace %s already has a %s: %w", id, t.what, ErrConflict)
		}
		return err
	}
	res, err := c.db.ExecContext(ctx, `UPDATE `+t.table+` SET `+t.column+` = $1, modified_at = $2 WHERE workspace_id = $3`, value, at.UnixMilli(), string(id))
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("%s of workspace %s: %w", t.what, id, ErrNotFound)
	}
	return nil
}

// getRow returns a workspace's row of t, or ErrNotFound.
func (c *Catalog) getRow(ctx context.Context, t rowTable, id workspace.ID) (value string, createdAt, modifiedAt time.Time, err error) {
	var created, modified int64
	err = c.db.QueryRowContext(ctx, `SELECT `+t.column+`, created_at, modified_at FROM `+t.table+` WHERE workspace_id = $1`, string(id)).
		Scan(&value, &created, &modified)
	if errors.Is(err, sql.ErrNoRows) {
		return "", time.Time{}, time.Time{}, fmt.Errorf("%s of workspace %s: %w", t.what, id, ErrNotFound)
	}
	if err != nil {
		return "", time.Time{}, time.Time{}, err
	}
	return value, time.UnixMilli(created).UTC(), time.UnixMilli(modified).UTC(), nil
}

// deleteRow removes a workspace's row of t, ErrNotFound if it has none.
func (c *Catalog) deleteRow(ctx context.Context, t rowTable, id workspace.ID) error {
	res, err := c.db.ExecContext(ctx, `DELETE FROM `+t.table+` WHERE workspace_id = $1`, string(id))
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("%s of workspace %s: %w", t.what, id, ErrNotFound)
	}
	return nil
}
