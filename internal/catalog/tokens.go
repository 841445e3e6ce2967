package catalog

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// APIToken is a bearer token (an Orrery extension for clients that cannot
// sign requests). Only a hash of its secret is stored; the token itself is
// shown once, when it is issued.
type APIToken struct {
	ID          string
	SecretHash  string // hex SHA-256 of the token's secret part.
	Policy      string // IAM-style JSON, see package policy.
	Description string
	CreatedAt   time.Time
	Revoked     bool
}

// CreateAPIToken stores a token.
func (c *Catalog) CreateAPIToken(ctx context.Context, t APIToken) error {
	if _, err := c.db.ExecContext(ctx, `INSERT INTO api_tokens (id, secret_hash, policy, description, created_at) VALUES ($1, $2, $3, $4, $5)`,
		t.ID, t.SecretHash, t.Policy, t.Description, t.CreatedAt.UnixMilli()); err != nil {
		return fmt.Errorf("insert api token %s: %w", t.ID, err)
	}
	return nil
}

// APIToken returns a token, or ErrNotFound; a revoked token is returned with
// Revoked set.
func (c *Catalog) APIToken(ctx context.Context, id string) (APIToken, error) {
	rows, err := c.db.QueryContext(ctx, `SELECT id, secret_hash, policy, description, created_at, revoked_at FROM api_tokens WHERE id = $1`, id)
	if err != nil {
		return APIToken{}, fmt.Errorf("api token %s: %w", id, err)
	}
	toks, err := scanAPITokens(rows)
	if err != nil {
		return APIToken{}, fmt.Errorf("api token %s: %w", id, err)
	}
	if len(toks) == 0 {
		return APIToken{}, fmt.Errorf("api token %s: %w", id, ErrNotFound)
	}
	return toks[0], nil
}

// APITokens lists every token, oldest first, revoked ones included.
func (c *Catalog) APITokens(ctx context.Context) ([]APIToken, error) {
	rows, err := c.db.QueryContext(ctx, `SELECT id, secret_hash, policy, description, created_at, revoked_at FROM api_tokens ORDER BY created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("list api tokens: %w", err)
	}
	return scanAPITokens(rows)
}

func scanAPITokens(rows *sql.Rows) ([]APIToken, error) {
	defer func() { _ = rows.Close() }()
	var out []APIToken
	for rows.Next() {
		var (
			t       APIToken
			created int64
			revoked sql.NullInt64
		)
		if err := rows.Scan(&t.ID, &t.SecretHash, &t.Policy, &t.Description, &created, &revoked); err != nil {
			return nil, err
		}
		t.CreatedAt, t.Revoked = time.UnixMilli(created).UTC(), revoked.Valid
		out = append(out, t)
	}
	return out, rows.Err()
}

// RevokeAPIToken revokes a token for good.
func (c *Catalog) RevokeAPIToken(ctx context.Context, id string, at time.Time) error {
	res, err := c.db.ExecContext(ctx, `UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL`, at.UnixMilli(), id)
	if err != nil {
		return fmt.Errorf("revoke api token %s: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("api token %s (or it is already revoked): %w", id, ErrNotFound)
	}
	c.changed(APITokenChanged, id)
	return nil
}

// AccessKeys lists every access key without its secret, oldest first.
func (c *Catalog) AccessKeys(ctx context.Context) ([]AccessKey, error) {
	rows, err := c.db.QueryContext(ctx, `SELECT id, policy, created_at, revoked_at FROM access_keys ORDER BY created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("list access keys: %w", err)
	}
	defer func() { _ = rows.Close() }()
	var out []AccessKey
	for rows.Next() {
		var (
			k       AccessKey
			created int64
			revoked sql.NullInt64
		)
		if err := rows.Scan(&k.ID, &k.Policy, &created, &revoked); err != nil {
			return nil, err
		}
		k.CreatedAt, k.Revoked = time.UnixMilli(created).UTC(), revoked.Valid
		out = append(out, k)
	}
	return out, rows.Err()
}
