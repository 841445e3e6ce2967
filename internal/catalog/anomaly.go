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

// Anomaly detector statuses, as AMP reports them. A detector is CREATING
// (or UPDATING after a put) until its first training from history is done,
// then ACTIVE; CREATION_FAILED and UPDATE_FAILED say why in the reason;
// DELETING while its series and model are removed.
const (
	DetectorCreating       = "CREATING"
	DetectorActive         = "ACTIVE"
	DetectorUpdating       = "UPDATING"
	DetectorDeleting       = "DELETING"
	DetectorCreationFailed = "CREATION_FAILED"
	DetectorUpdateFailed   = "UPDATE_FAILED"
)

// AnomalyDetector is a workspace's anomaly detector.
type AnomalyDetector struct {
	Workspace workspace.ID
	ID        string // ad-<uuid>
	Alias     string
	// Spec is the detector's definition as AMP's API has it (JSON of an
	// anomaly.Spec); the catalog does not read it.
	Spec         []byte
	Status       string
	StatusReason string
	Tags         map[string]string
	ClientToken  string
	// Generation counts the puts: a runner whose model was trained for an
	// older generation trains again.
	Generation int64
	CreatedAt  time.Time
	ModifiedAt time.Time
}

// CreateAnomalyDetector stores a new detector. A client token already used
// in the workspace returns the detector created then (created false) if the
// alias and spec are the same, and ErrConflict if not, as AMP's
// idempotency does. With max > 0, a workspace that has max detectors
// already gets ErrLimited.
func (c *Catalog) CreateAnomalyDetector(ctx context.Context, d AnomalyDetector, max int) (AnomalyDetector, bool, error) {
	tags, err := json.Marshal(nonNil(d.Tags))
	if err != nil {
		return AnomalyDetector{}, false, err
	}
	var out AnomalyDetector
	created := false
	err = c.tx(ctx, func(tx *sql.Tx) error {
		if d.ClientToken != "" {
			prev, err := scanDetector(tx.QueryRowContext(ctx, selectDetector+` WHERE workspace_id = $1 AND client_token = $2`,
				string(d.Workspace), d.ClientToken))
			if err == nil {
				if prev.Alias != d.Alias || string(prev.Spec) != string(d.Spec) {
					return fmt.Errorf("client token %q was used for a different request: %w", d.ClientToken, ErrConflict)
				}
				out = prev
				return nil
			}
			if !errors.Is(err, ErrNotFound) {
				return err
			}
		}
		if max > 0 {
			var n int
			if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM anomaly_detectors WHERE workspace_id = $1`, string(d.Workspace)).Scan(&n); err != nil {
				return fmt.Errorf("count anomaly detectors: %w", err)
			}
			if n >= max {
				return fmt.Errorf("workspace %s has %d anomaly detectors, its limit (max_anomaly_detectors): %w", d.Workspace, n, ErrLimited)
			}
		}
		var token any
		if d.ClientToken != "" {
			token = d.ClientToken
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO anomaly_detectors (workspace_id, id, alias, spec, status, status_reason, tags, client_token, generation, created_at, modified_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 1, $9, $9)`,
			string(d.Workspace), d.ID, d.Alias, string(d.Spec), d.Status, d.StatusReason, string(tags), token, d.CreatedAt.UnixMilli()); err != nil {
			return fmt.Errorf("insert anomaly detector %s: %w", d.ID, err)
		}
		out, created = d, true
		out.Generation = 1
		out.CreatedAt = time.UnixMilli(d.CreatedAt.UnixMilli()).UTC()
		out.ModifiedAt = out.CreatedAt
		out.Tags = nonNil(d.Tags)
		return nil
	})
	return out, created, err
}

// PutAnomalyDetector replaces a detector's spec, sets its status (UPDATING)
// and starts a new generation, or returns ErrNotFound.
func (c *Catalog) PutAnomalyDetector(ctx context.Context, id workspace.ID, detector string, spec []byte, status string, at time.Time) error {
	res, err := c.db.ExecContext(ctx, `UPDATE anomaly_detectors SET spec = $1, status = $2, status_reason = '', generation = generation + 1, modified_at = $3
		WHERE workspace_id = $4 AND id = $5`, string(spec), status, at.UnixMilli(), string(id), detector)
	if err != nil {
		return fmt.Errorf("put anomaly detector %s: %w", detector, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("anomaly detector %s: %w", detector, ErrNotFound)
	}
	return nil
}

// SetAnomalyDetectorStatus records a detector's status and reason for the
// given generation; it changes nothing (and returns nil) if the detector
// has gone or moved to another generation meanwhile, so a runner finishing
// old work cannot overwrite a newer put's status.
func (c *Catalog) SetAnomalyDetectorStatus(ctx context.Context, id workspace.ID, detector string, generation int64, status, reason string) error {
	_, err := c.db.ExecContext(ctx, `UPDATE anomaly_detectors SET status = $1, status_reason = $2 WHERE workspace_id = $3 AND id = $4 AND generation = $5`,
		status, reason, string(id), detector, generation)
	if err != nil {
		return fmt.Errorf("set status of anomaly detector %s: %w", detector, err)
	}
	return nil
}

const selectDetector = `SELECT workspace_id, id, alias, spec, status, status_reason, tags, COALESCE(client_token, ''), generation, created_at, modified_at FROM anomaly_detectors`

func scanDetector(row scanner) (AnomalyDetector, error) {
	var (
		d                 AnomalyDetector
		ws, spec, tags    string
		created, modified int64
	)
	if err := row.Scan(&ws, &d.ID, &d.Alias, &spec, &d.Status, &d.StatusReason, &tags, &d.ClientToken, &d.Generation, &created, &modified); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return d, ErrNotFound
		}
		return d, err
	}
	d.Workspace, d.Spec = workspace.ID(ws), []byte(spec)
	d.CreatedAt, d.ModifiedAt = time.UnixMilli(created).UTC(), time.UnixMilli(modified).UTC()
	if err := json.Unmarshal([]byte(tags), &d.Tags); err != nil {
		return d, fmt.Errorf("tags of anomaly detector %s: %w", d.ID, err)
	}
	return d, nil
}

// AnomalyDetector returns one detector or ErrNotFound.
func (c *Catalog) AnomalyDetector(ctx context.Context, id workspace.ID, detector string) (AnomalyDetector, error) {
	d, err := scanDetector(c.db.QueryRowContext(ctx, selectDetector+` WHERE workspace_id = $1 AND id = $2`, string(id), detector))
	if err != nil {
		return d, fmt.Errorf("anomaly detector %s: %w", detector, err)
	}
	return d, nil
}

// AnomalyDetectors lists a workspace's detectors by ID after the given ID,
// those whose alias starts with aliasPrefix if it is not empty; with id
// empty, every workspace's (for the runner).
func (c *Catalog) AnomalyDetectors(ctx context.Context, id workspace.ID, aliasPrefix, after string, limit int) ([]AnomalyDetector, error) {
	rows, err := c.db.QueryContext(ctx, selectDetector+` WHERE ($1 = '' OR workspace_id = $1) AND id > $2
		AND ($3 = '' OR substr(alias, 1, length($3)) = $3) ORDER BY workspace_id, id LIMIT $4`, string(id), after, aliasPrefix, limit)
	if err != nil {
		return nil, fmt.Errorf("list anomaly detectors: %w", err)
	}
	defer rows.Close()
	var out []AnomalyDetector
	for rows.Next() {
		d, err := scanDetector(rows)
		if err != nil {
			return nil, fmt.Errorf("list anomaly detectors: %w", err)
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// RemoveAnomalyDetector deletes a detector's record or returns ErrNotFound.
func (c *Catalog) RemoveAnomalyDetector(ctx context.Context, id workspace.ID, detector string) error {
	res, err := c.db.ExecContext(ctx, `DELETE FROM anomaly_detectors WHERE workspace_id = $1 AND id = $2`, string(id), detector)
	if err != nil {
		return fmt.Errorf("remove anomaly detector %s: %w", detector, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("anomaly detector %s: %w", detector, ErrNotFound)
	}
	if _, err := c.db.ExecContext(ctx, `DELETE FROM anomaly_models WHERE workspace_id = $1 AND id = $2`, string(id), detector); err != nil {
		return fmt.Errorf("remove anomaly detector %s's model: %w", detector, err)
	}
	return nil
}

// SaveAnomalyModel stores a detector's model of generation, having learnt
// up to last (ms). A model older than the one stored (a lower generation,
// or the same one having learnt less: saved by a replica that lost the
// detector's lease to one that went on) is not stored, and is no error.
func (c *Catalog) SaveAnomalyModel(ctx context.Context, id workspace.ID, detector string, generation, last int64, data []byte) error {
	_, err := c.db.ExecContext(ctx, `INSERT INTO anomaly_models (workspace_id, id, generation, last, data) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (workspace_id, id) DO UPDATE SET generation = excluded.generation, last = excluded.last, data = excluded.data
		WHERE anomaly_models.generation < excluded.generation
			OR (anomaly_models.generation = excluded.generation AND anomaly_models.last <= excluded.last)`,
		string(id), detector, generation, last, base64.StdEncoding.EncodeToString(data))
	if err != nil {
		return fmt.Errorf("save anomaly detector %s's model: %w", detector, err)
	}
	return nil
}

// AnomalyModel returns a detector's stored model, ErrNotFound if none.
func (c *Catalog) AnomalyModel(ctx context.Context, id workspace.ID, detector string) ([]byte, error) {
	var data string
	err := c.db.QueryRowContext(ctx, `SELECT data FROM anomaly_models WHERE workspace_id = $1 AND id = $2`, string(id), detector).Scan(&data)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("anomaly detector %s's model: %w", detector, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("read anomaly detector %s's model: %w", detector, err)
	}
	b, err := base64.StdEncoding.DecodeString(data)
	if err != nil {
		return nil, fmt.Errorf("read anomaly detector %s's model: %w", detector, err)
	}
	return b, nil
}

// ActiveAnomalyDetectors lists the detectors of ACTIVE workspaces, for the
// runner: a workspace being deleted has its detectors stopped before its
// data goes.
func (c *Catalog) ActiveAnomalyDetectors(ctx context.Context) ([]AnomalyDetector, error) {
	rows, err := c.db.QueryContext(ctx, `SELECT d.workspace_id, d.id, d.alias, d.spec, d.status, d.status_reason, d.tags, COALESCE(d.client_token, ''),
		d.generation, d.created_at, d.modified_at FROM anomaly_detectors d JOIN workspaces w ON w.id = d.workspace_id
		WHERE w.status = $1 ORDER BY d.workspace_id, d.id`, StatusActive)
	if err != nil {
		return nil, fmt.Errorf("list anomaly detectors to run: %w", err)
	}
	defer rows.Close()
	var out []AnomalyDetector
	for rows.Next() {
		d, err := scanDetector(rows)
		if err != nil {
			return nil, fmt.Errorf("list anomaly detectors to run: %w", err)
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// SetAnomalyDetectorTags replaces a detector's tags or returns ErrNotFound.
func (c *Catalog) SetAnomalyDetectorTags(ctx context.Context, id workspace.ID, detector string, tags map[string]string) error {
	b, err := json.Marshal(nonNil(tags))
	if err != nil {
		return err
	}
	res, err := c.db.ExecContext(ctx, `UPDATE anomaly_detectors SET tags = $1 WHERE workspace_id = $2 AND id = $3`, string(b), string(id), detector)
	if err != nil {
		return fmt.Errorf("tag anomaly detector %s: %w", detector, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("anomaly detector %s: %w", detector, ErrNotFound)
	}
	return nil
}
