package catalog

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/orrery-dev/orrery/internal/failure"
	"github.com/orrery-dev/orrery/internal/workspace"
)

// Scraper statuses, as AMP reports them. A scraper is CREATING or UPDATING
// until the server runs its configuration, DELETING until it stopped, and
// CREATION_FAILED (with a reason) when it cannot run at all.
const (
	ScraperCreating       = "CREATING"
	ScraperActive         = "ACTIVE"
	ScraperUpdating       = "UPDATING"
	ScraperDeleting       = "DELETING"
	ScraperCreationFailed = "CREATION_FAILED"
)

// Scraper is a managed scraper's record: AMP's ScraperDescription, with
// the destination reduced to its workspace (the only destination Orrery
// has).
type Scraper struct {
	ID           string // s-<uuid>.
	Alias        string
	Status       string
	StatusReason string
	Workspace    workspace.ID // The destination.
	// Source is AMP's Source, as JSON ({"vpcConfiguration":{…}} or
	// {"eksConfiguration":{…}}); RoleConfiguration likewise (may be "").
	Source            json.RawMessage
	RoleConfiguration json.RawMessage
	Configuration     []byte // Prometheus YAML.
	Tags              map[string]string
	ClientToken       string
	// Logging is the scraper's logging configuration as AMP's
	// UpdateScraperLoggingConfiguration sends it; empty: none.
	Logging    json.RawMessage
	CreatedAt  time.Time
	ModifiedAt time.Time
}

const selectScraper = `SELECT id, alias, status, status_reason, workspace_id, source, configuration, role_configuration, tags,
	COALESCE(client_token, ''), logging, created_at, modified_at FROM scrapers`

func scanScraper(row scanner) (Scraper, error) {
	var (
		s                 Scraper
		ws, cfg           string
		src, role, logcfg string
		tags              string
		created, modified int64
	)
	if err := row.Scan(&s.ID, &s.Alias, &s.Status, &s.StatusReason, &ws, &src, &cfg, &role, &tags, &s.ClientToken, &logcfg, &created, &modified); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return Scraper{}, ErrNotFound
		}
		return Scraper{}, err
	}
	s.Workspace = workspace.ID(ws)
	s.Source, s.Configuration = json.RawMessage(src), []byte(cfg)
	if role != "" {
		s.RoleConfiguration = json.RawMessage(role)
	}
	if logcfg != "" {
		s.Logging = json.RawMessage(logcfg)
	}
	s.CreatedAt, s.ModifiedAt = time.UnixMilli(created).UTC(), time.UnixMilli(modified).UTC()
	if err := json.Unmarshal([]byte(tags), &s.Tags); err != nil {
		return Scraper{}, fmt.Errorf("tags of scraper %s: %w", s.ID, err)
	}
	return s, nil
}

// CreateScraper stores a new scraper. With a client token already used, it
// returns the scraper created then (created false) if the request is the
// same (same alias, destination and configuration), and ErrConflict if
// not, as AMP's idempotency does. limit, if above 0, is how many scrapers
// the server may hold: a ServiceQuotaExceededException beyond it.
func (c *Catalog) CreateScraper(ctx context.Context, s Scraper, limit int) (Scraper, bool, error) {
	tags, err := json.Marshal(nonNil(s.Tags))
	if err != nil {
		return Scraper{}, false, err
	}
	var out Scraper
	created := false
	err = c.tx(ctx, func(tx *sql.Tx) error {
		if s.ClientToken != "" {
			prev, err := scanScraper(tx.QueryRowContext(ctx, selectScraper+` WHERE client_token = $1`, s.ClientToken))
			if err == nil {
				if prev.Alias != s.Alias || prev.Workspace != s.Workspace || string(prev.Configuration) != string(s.Configuration) {
					return fmt.Errorf("client token %q was used for a different request: %w", s.ClientToken, ErrConflict)
				}
				out = prev
				return nil
			}
			if !errors.Is(err, ErrNotFound) {
				return err
			}
		}
		if limit > 0 {
			var n int
			if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM scrapers`).Scan(&n); err != nil {
				return err
			}
			if n >= limit {
				return failure.WithCode(failure.Limited, "ServiceQuotaExceededException",
					"the server has %d scrapers, as many as it may hold (--scraper.max-scrapers %d); delete one first", n, limit)
			}
		}
		var token any
		if s.ClientToken != "" {
			token = s.ClientToken
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO scrapers (id, alias, status, status_reason, workspace_id, source, configuration,
			role_configuration, tags, client_token, logging, created_at, modified_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`,
			s.ID, s.Alias, s.Status, s.StatusReason, string(s.Workspace), string(s.Source), string(s.Configuration),
			string(s.RoleConfiguration), string(tags), token, string(s.Logging), s.CreatedAt.UnixMilli(), s.ModifiedAt.UnixMilli()); err != nil {
			return fmt.Errorf("insert scraper %s: %w", s.ID, err)
		}
		out, created = s, true
		out.Tags = nonNil(s.Tags)
		out.CreatedAt, out.ModifiedAt = time.UnixMilli(s.CreatedAt.UnixMilli()).UTC(), time.UnixMilli(s.ModifiedAt.UnixMilli()).UTC()
		return nil
	})
	if err == nil && created {
		c.changed(ScraperChanged, s.ID)
	}
	return out, created, err
}

// Scraper returns a scraper, or ErrNotFound.
func (c *Catalog) Scraper(ctx context.Context, id string) (Scraper, error) {
	s, err := scanScraper(c.db.QueryRowContext(ctx, selectScraper+` WHERE id = $1`, id))
	if err != nil {
		return Scraper{}, fmt.Errorf("scraper %s: %w", id, err)
	}
	return s, nil
}

// Scrapers returns up to limit scrapers with ids after after, in id order.
func (c *Catalog) Scrapers(ctx context.Context, after string, limit int) ([]Scraper, error) {
	rows, err := c.db.QueryContext(ctx, selectScraper+` WHERE id > $1 ORDER BY id LIMIT $2`, after, limit)
	if err != nil {
		return nil, fmt.Errorf("list scrapers: %w", err)
	}
	defer rows.Close()
	var out []Scraper
	for rows.Next() {
		s, err := scanScraper(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// UpdateScraper replaces a scraper's alias, destination, configuration,
// role configuration, tags, logging, status and reason, and sets its
// modification time; ErrNotFound if it does not exist. A DELETING scraper
// stays DELETING: a change read before the delete (a tag, a logging
// configuration) must not bring it back.
func (c *Catalog) UpdateScraper(ctx context.Context, s Scraper) error {
	tags, err := json.Marshal(nonNil(s.Tags))
	if err != nil {
		return err
	}
	res, err := c.db.ExecContext(ctx, `UPDATE scrapers SET alias = $1,
		status = CASE WHEN status = 'DELETING' THEN status ELSE $2 END, status_reason = $3, workspace_id = $4, configuration = $5,
		role_configuration = $6, tags = $7, logging = $8, modified_at = $9 WHERE id = $10`,
		s.Alias, s.Status, s.StatusReason, string(s.Workspace), string(s.Configuration), string(s.RoleConfiguration), string(tags),
		string(s.Logging), s.ModifiedAt.UnixMilli(), s.ID)
	if err != nil {
		return fmt.Errorf("update scraper %s: %w", s.ID, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("scraper %s: %w", s.ID, ErrNotFound)
	}
	c.changed(ScraperChanged, s.ID)
	return nil
}

// SetScraperStatus sets a scraper's status and reason if its status is
// still from: the runner moves CREATING or UPDATING to ACTIVE without
// undoing an update or a delete made meanwhile. It reports whether it
// changed the record.
func (c *Catalog) SetScraperStatus(ctx context.Context, id, from, to, reason string) (bool, error) {
	res, err := c.db.ExecContext(ctx, `UPDATE scrapers SET status = $1, status_reason = $2 WHERE id = $3 AND status = $4`, to, reason, id, from)
	if err != nil {
		return false, fmt.Errorf("set status of scraper %s: %w", id, err)
	}
	n, _ := res.RowsAffected()
	if n > 0 {
		c.changed(ScraperChanged, id)
	}
	return n > 0, nil
}

// RemoveScraper deletes a scraper's record.
func (c *Catalog) RemoveScraper(ctx context.Context, id string) error {
	res, err := c.db.ExecContext(ctx, `DELETE FROM scrapers WHERE id = $1`, id)
	if err != nil {
		return fmt.Errorf("remove scraper %s: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("scraper %s: %w", id, ErrNotFound)
	}
	c.changed(ScraperChanged, id)
	return nil
}
