package catalog

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/orrery-dev/orrery/internal/workspace"
)

// NoPolicy is the revision id a caller names to say that it expects a
// workspace to have no resource policy yet, as AMP's PutResourcePolicy.
const NoPolicy = "NO_POLICY"

// ResourcePolicy is a workspace's resource-based policy (AMP's
// PutResourcePolicy): the document as the caller sent it and its revision,
// which changes with every put.
type ResourcePolicy struct {
	Document   string
	RevisionID string
	CreatedAt  time.Time
	ModifiedAt time.Time
}

// PutResourcePolicy creates or replaces a workspace's resource policy and
// returns its new revision id and whether it was created. A non-empty
// expect must be the current revision id (NoPolicy: there must be none),
// else ErrConflict; an unknown workspace is ErrNotFound.
func (c *Catalog) PutResourcePolicy(ctx context.Context, id workspace.ID, doc, expect string, at time.Time) (revision string, created bool, err error) {
	revision = newRevision()
	err = c.tx(ctx, func(tx *sql.Tx) error {
		if _, err := scanWorkspace(tx.QueryRowContext(ctx, selectWorkspace+` WHERE id = $1`, string(id))); err != nil {
			return fmt.Errorf("workspace %s: %w", id, err)
		}
		current, err := currentRevision(ctx, tx, id)
		if err != nil {
			return err
		}
		if err := checkRevision(id, current, expect); err != nil {
			return err
		}
		created = current == ""
		if created {
			_, err = tx.ExecContext(ctx, `INSERT INTO resource_policies (workspace_id, document, revision_id, created_at, modified_at) VALUES ($1, $2, $3, $4, $4)`,
				string(id), doc, revision, at.UnixMilli())
		} else {
			_, err = tx.ExecContext(ctx, `UPDATE resource_policies SET document = $1, revision_id = $2, modified_at = $3 WHERE workspace_id = $4`,
				doc, revision, at.UnixMilli(), string(id))
		}
		return err
	})
	if err != nil {
		return "", false, err
	}
	c.changed(ResourcePolicyChanged, string(id))
	return revision, created, nil
}

// ResourcePolicy returns a workspace's resource policy, or ErrNotFound.
func (c *Catalog) ResourcePolicy(ctx context.Context, id workspace.ID) (ResourcePolicy, error) {
	var (
		p                 ResourcePolicy
		created, modified int64
	)
	err := c.db.QueryRowContext(ctx, `SELECT document, revision_id, created_at, modified_at FROM resource_policies WHERE workspace_id = $1`, string(id)).
		Scan(&p.Document, &p.RevisionID, &created, &modified)
	if errors.Is(err, sql.ErrNoRows) {
		return p, fmt.Errorf("resource policy of workspace %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return p, fmt.Errorf("resource policy of workspace %s: %w", id, err)
	}
	p.CreatedAt, p.ModifiedAt = time.UnixMilli(created).UTC(), time.UnixMilli(modified).UTC()
	return p, nil
}

// DeleteResourcePolicy removes a workspace's resource policy: ErrNotFound
// if it has none, ErrConflict if expect is not empty and not its revision.
func (c *Catalog) DeleteResourcePolicy(ctx context.Context, id workspace.ID, expect string) error {
	err := c.tx(ctx, func(tx *sql.Tx) error {
		current, err := currentRevision(ctx, tx, id)
		if err != nil {
			return err
		}
		if current == "" {
			return fmt.Errorf("resource policy of workspace %s: %w", id, ErrNotFound)
		}
		if err := checkRevision(id, current, expect); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM resource_policies WHERE workspace_id = $1`, string(id))
		return err
	})
	if err != nil {
		return err
	}
	c.changed(ResourcePolicyChanged, string(id))
	return nil
}

// currentRevision returns the revision of a workspace's policy, "" for none.
func currentRevision(ctx context.Context, tx *sql.Tx, id workspace.ID) (string, error) {
	var rev string
	err := tx.QueryRowContext(ctx, `SELECT revision_id FROM resource_policies WHERE workspace_id = $1`, string(id)).Scan(&rev)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("resource policy of workspace %s: %w", id, err)
	}
	return rev, nil
}

func checkRevision(id workspace.ID, current, expect string) error {
	switch {
	case expect == "":
		return nil
	case expect == NoPolicy && current != "":
		return fmt.Errorf("workspace %s already has a resource policy (revision %s), not %s: %w", id, current, NoPolicy, ErrConflict)
	case expect != NoPolicy && expect != current:
		if current == "" {
			current = NoPolicy
		}
		return fmt.Errorf("resource policy of workspace %s is at revision %s, not %s: %w", id, current, expect, ErrConflict)
	}
	return nil
}

// newRevision returns a fresh revision id: 128 random bits in hex.
func newRevision() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
