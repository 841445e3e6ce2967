package catalog

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Leases elect, for each resource that exactly one replica may run (a
// managed scraper, an anomaly detector), the replica that runs it. A lease
// is a row: its name, its holder (a replica's id) and its expiry, kept by
// the database's clock so that replicas' clocks do not matter. The holder
// renews it by acquiring it again before it expires; another replica can
// take it only once it has expired, or at once when the holder released
// it. Each operation is one statement, atomic on both backends.

// dbNowMillis is the database's clock in Unix milliseconds.
func (c *Catalog) dbNowMillis() string {
	if c.postgres {
		return `(EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT`
	}
	return `CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)`
}

// AcquireLease takes the lease name for holder for ttl, or renews it if
// holder has it. It returns false, and changes nothing, when another
// holder has it and it has not expired.
//
// A holder may run the resource until ttl after it called AcquireLease
// (by its own clock) without renewing; past that another replica may have
// it.
func (c *Catalog) AcquireLease(ctx context.Context, name, holder string, ttl time.Duration) (bool, error) {
	if name == "" || holder == "" || ttl <= 0 {
		return false, errors.New("a lease needs a name, a holder and a positive duration")
	}
	now := c.dbNowMillis()
	// The upsert is atomic: of two replicas taking an expired or new
	// lease at once, one inserts or updates the row and the other's
	// condition then fails (PostgreSQL re-checks the WHERE on the row the
	// first one committed; SQLite writes one transaction at a time).
	res, err := c.db.ExecContext(ctx, `INSERT INTO leases (name, holder, expires_at) VALUES ($1, $2, `+now+` + $3)
		ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
		WHERE leases.holder = excluded.holder OR leases.expires_at <= `+now,
		name, holder, ttl.Milliseconds())
	if err != nil {
		return false, fmt.Errorf("acquire lease %s: %w", name, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("acquire lease %s: %w", name, err)
	}
	return n == 1, nil
}

// ReleaseLease gives up holder's lease name, so that another replica can
// take it at once. Releasing a lease holder does not have is no error.
func (c *Catalog) ReleaseLease(ctx context.Context, name, holder string) error {
	if _, err := c.db.ExecContext(ctx, `DELETE FROM leases WHERE name = $1 AND holder = $2`, name, holder); err != nil {
		return fmt.Errorf("release lease %s: %w", name, err)
	}
	return nil
}

// LeaseHolder returns who holds the lease name now, "" when nobody does
// (never taken, released or expired).
func (c *Catalog) LeaseHolder(ctx context.Context, name string) (string, error) {
	var holder string
	err := c.db.QueryRowContext(ctx, `SELECT holder FROM leases WHERE name = $1 AND expires_at > `+c.dbNowMillis(), name).Scan(&holder)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read lease %s: %w", name, err)
	}
	return holder, nil
}
