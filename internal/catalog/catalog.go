package catalog

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // PostgreSQL, for replicas sharing a catalog.
	"modernc.org/sqlite"               // The embedded default: pure Go, no cgo.
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/orrery-dev/orrery/internal/failure"
	"github.com/orrery-dev/orrery/internal/workspace"
)

// Errors callers match with errors.Is; their failure kinds map them to
// status codes.
var (
	ErrNotFound = failure.Errorf(failure.NotFound, "not found")
	ErrConflict = failure.Errorf(failure.Conflict, "conflict")
	// ErrLimited is a workspace quota reached: AMP's
	// ServiceQuotaExceededException.
	ErrLimited = failure.WithCode(failure.Limited, "ServiceQuotaExceededException", "service quota exceeded")
)

// Workspace statuses, as AMP reports them.
const (
	StatusCreating = "CREATING"
	StatusActive   = "ACTIVE"
	StatusDeleting = "DELETING"
)

// Workspace is a workspace's control-plane record.
type Workspace struct {
	ID          workspace.ID
	Alias       string
	Status      string
	CreatedAt   time.Time
	Tags        map[string]string
	ClientToken string
	Configuration
}

// Configuration is a workspace's configuration (AMP's
// UpdateWorkspaceConfiguration).
type Configuration = workspace.Configuration

// Catalog is the control-plane database. It is safe for concurrent use.
type Catalog struct {
	db       *sql.DB
	postgres bool
	watchers []func(Change) // set before concurrent use.
}

// ChangeKind names the kind of record a Change is about.
type ChangeKind int

// The changes OnChange reports.
const (
	AccessKeyChanged      ChangeKind = iota + 1 // revoked.
	APITokenChanged                             // revoked.
	WorkspaceChanged                            // status, alias or tags changed, or removed.
	ResourcePolicyChanged                       // a workspace's resource policy put or deleted.
	QueryLoggingChanged                         // a workspace's query logging configuration changed.
	ScraperChanged                              // a scraper created, updated, its status changed, or removed.
)

// Change says that a record changed in a way that matters to a cache of
// it: ID is the access key id, token id or workspace ID.
type Change struct {
	Kind ChangeKind
	ID   string
}

// OnChange registers f to be called, once the change is committed,
// whenever this Catalog revokes an access key or a token, changes or
// removes a workspace, or changes a workspace's resource policy or query
// logging configuration. Changes made through another Catalog (another
// replica's) are not reported. Register before the catalog is used
// concurrently; f must be quick and must not call the catalog.
func (c *Catalog) OnChange(f func(Change)) { c.watchers = append(c.watchers, f) }

func (c *Catalog) changed(kind ChangeKind, id string) {
	for _, f := range c.watchers {
		f(Change{Kind: kind, ID: id})
	}
}

// migrations are applied in order, once each; never edit a released one.
var migrations = []string{
	`CREATE TABLE workspaces (
		id TEXT PRIMARY KEY,
		alias TEXT NOT NULL DEFAULT '',
		status TEXT NOT NULL,
		created_at BIGINT NOT NULL,
		tags TEXT NOT NULL DEFAULT '{}',
		client_token TEXT
	)`,
	`CREATE UNIQUE INDEX workspaces_client_token ON workspaces (client_token) WHERE client_token IS NOT NULL`,
	`CREATE TABLE access_keys (
		id TEXT PRIMARY KEY,
		secret_sealed TEXT NOT NULL,
		policy TEXT NOT NULL,
		created_at BIGINT NOT NULL,
		revoked_at BIGINT
	)`,
	`ALTER TABLE workspaces ADD COLUMN retention_days INTEGER NOT NULL DEFAULT 0`,
	`ALTER TABLE workspaces ADD COLUMN ooo_window_seconds INTEGER NOT NULL DEFAULT -1`,
	`CREATE TABLE rule_namespaces (
		workspace_id TEXT NOT NULL,
		name TEXT NOT NULL,
		data TEXT NOT NULL,
		created_at BIGINT NOT NULL,
		modified_at BIGINT NOT NULL,
		tags TEXT NOT NULL DEFAULT '{}',
		PRIMARY KEY (workspace_id, name)
	)`,
	`CREATE TABLE alertmanager_definitions (
		workspace_id TEXT PRIMARY KEY,
		data TEXT NOT NULL,
		created_at BIGINT NOT NULL,
		modified_at BIGINT NOT NULL
	)`,
	`CREATE TABLE api_tokens (
		id TEXT PRIMARY KEY,
		secret_hash TEXT NOT NULL,
		policy TEXT NOT NULL,
		description TEXT NOT NULL DEFAULT '',
		created_at BIGINT NOT NULL,
		revoked_at BIGINT
	)`,
	`CREATE TABLE logging_configurations (
		workspace_id TEXT PRIMARY KEY,
		log_group_arn TEXT NOT NULL,
		created_at BIGINT NOT NULL,
		modified_at BIGINT NOT NULL
	)`,
	`ALTER TABLE workspaces ADD COLUMN label_set_limits TEXT NOT NULL DEFAULT '[]'`,
	`CREATE TABLE ui_users (
		name TEXT PRIMARY KEY,
		password_hash TEXT NOT NULL,
		role TEXT NOT NULL,
		workspaces TEXT NOT NULL DEFAULT '[]',
		created_at BIGINT NOT NULL
	)`,
	`CREATE TABLE ui_sessions (
		id_hash TEXT PRIMARY KEY,
		user_name TEXT NOT NULL REFERENCES ui_users (name) ON DELETE CASCADE,
		csrf_token TEXT NOT NULL,
		created_at BIGINT NOT NULL,
		expires_at BIGINT NOT NULL
	)`,
	`CREATE TABLE dashboards (
		workspace_id TEXT NOT NULL,
		uid TEXT NOT NULL,
		title TEXT NOT NULL,
		data TEXT NOT NULL,
		created_at BIGINT NOT NULL,
		modified_at BIGINT NOT NULL,
		PRIMARY KEY (workspace_id, uid)
	)`,
	`CREATE TABLE anomaly_detectors (
		workspace_id TEXT NOT NULL,
		id TEXT NOT NULL,
		alias TEXT NOT NULL,
		spec TEXT NOT NULL,
		status TEXT NOT NULL,
		status_reason TEXT NOT NULL DEFAULT '',
		tags TEXT NOT NULL DEFAULT '{}',
		client_token TEXT,
		generation BIGINT NOT NULL DEFAULT 1,
		created_at BIGINT NOT NULL,
		modified_at BIGINT NOT NULL,
		PRIMARY KEY (workspace_id, id)
	)`,
	`CREATE UNIQUE INDEX anomaly_detectors_client_token ON anomaly_detectors (workspace_id, client_token) WHERE client_token IS NOT NULL`,
	`CREATE TABLE dashboard_versions (
		workspace_id TEXT NOT NULL,
		uid TEXT NOT NULL,
		version INTEGER NOT NULL,
		title TEXT NOT NULL,
		data TEXT NOT NULL,
		author TEXT NOT NULL DEFAULT '',
		created_at BIGINT NOT NULL,
		PRIMARY KEY (workspace_id, uid, version)
	)`,
	// The dashboards stored before versions are their version 1.
	`INSERT INTO dashboard_versions (workspace_id, uid, version, title, data, created_at)
		SELECT workspace_id, uid, 1, title, data, modified_at FROM dashboards`,
	`ALTER TABLE dashboards ADD COLUMN folder TEXT NOT NULL DEFAULT ''`,
	`CREATE TABLE resource_policies (
		workspace_id TEXT PRIMARY KEY,
		document TEXT NOT NULL,
		revision_id TEXT NOT NULL,
		created_at BIGINT NOT NULL,
		modified_at BIGINT NOT NULL
	)`,
	`CREATE TABLE query_logging_configurations (
		workspace_id TEXT PRIMARY KEY,
		data TEXT NOT NULL,
		created_at BIGINT NOT NULL,
		modified_at BIGINT NOT NULL
	)`,
	`CREATE TABLE scrapers (
		id TEXT PRIMARY KEY,
		alias TEXT NOT NULL,
		status TEXT NOT NULL,
		status_reason TEXT NOT NULL,
		workspace_id TEXT NOT NULL,
		source TEXT NOT NULL,
		configuration TEXT NOT NULL,
		role_configuration TEXT NOT NULL,
		tags TEXT NOT NULL,
		client_token TEXT UNIQUE,
		logging TEXT NOT NULL,
		created_at BIGINT NOT NULL,
		modified_at BIGINT NOT NULL
	)`,
	// A lease names a resource one replica runs (a scraper, an anomaly
	// detector), its holder and when it ends, in ms of the database's
	// clock.
	`CREATE TABLE leases (
		name TEXT PRIMARY KEY,
		holder TEXT NOT NULL,
		expires_at BIGINT NOT NULL
	)`,
	// A detector's saved model, where the replica that runs it next finds
	// it (base64 of the runner's encoding); last is the last evaluation it
	// learnt, in ms.
	`CREATE TABLE anomaly_models (
		workspace_id TEXT NOT NULL,
		id TEXT NOT NULL,
		generation BIGINT NOT NULL,
		last BIGINT NOT NULL,
		data TEXT NOT NULL,
		PRIMARY KEY (workspace_id, id)
	)`,
}

// Open opens the catalog named by dsn: a PostgreSQL URL
// (postgres://user:password@host:port/db?sslmode=...), shared by replicas,
// or else the path of the embedded SQLite file, created if needed. The
// schema is migrated to the current version either way; both run the
// same statements.
func Open(ctx context.Context, dsn string) (*Catalog, error) {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		return OpenPostgres(ctx, dsn)
	}
	return OpenSQLite(ctx, dsn)
}

// OpenSQLite opens (creating if needed) the embedded database at path.
// The file holds sealed secrets and password hashes: it is created with
// mode 0600 (SQLite gives its -wal and -shm files the same mode), and an
// existing one readable by others is made 0600.
func OpenSQLite(ctx context.Context, path string) (*Catalog, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open catalog %s: %w", path, err)
	}
	fi, err := f.Stat()
	if err == nil && fi.Mode().Perm()&0o077 != 0 {
		err = f.Chmod(0o600)
	}
	if err = errors.Join(err, f.Close()); err != nil {
		return nil, fmt.Errorf("open catalog %s: %w", path, err)
	}
	// Transactions begin IMMEDIATE: a deferred one that reads and then
	// writes fails at once with SQLITE_BUSY, without waiting out the busy
	// timeout, when another connection wrote in between (WAL's snapshot
	// rule), as concurrent control plane calls and detectors do.
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=foreign_keys(1)&_pragma=secure_delete(1)&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("open catalog %s: %w", path, err)
	}
	c := &Catalog{db: db}
	if err := c.migrate(ctx); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open catalog %s: %w", path, err)
	}
	return c, nil
}

// OpenPostgres opens a catalog in a PostgreSQL database.
func OpenPostgres(ctx context.Context, url string) (*Catalog, error) {
	db, err := sql.Open("pgx", url)
	if err != nil {
		return nil, fmt.Errorf("open catalog database: %w", err)
	}
	c := &Catalog{db: db, postgres: true}
	if err := db.PingContext(ctx); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("connect to the catalog database (check --db): %w", err)
	}
	if err := c.migrate(ctx); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open catalog database: %w", err)
	}
	return c, nil
}

// Close closes the database.
func (c *Catalog) Close() error { return c.db.Close() }

func (c *Catalog) migrate(ctx context.Context) error {
	if _, err := c.db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY)`); err != nil {
		return fmt.Errorf("create schema_migrations: %w", err)
	}
	for i, m := range migrations {
		version := i + 1
		err := c.tx(ctx, func(tx *sql.Tx) error {
			if c.postgres {
				// Replicas starting together migrate one at a time.
				if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(72616665)`); err != nil {
					return err
				}
			}
			var n int
			if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM schema_migrations WHERE version = $1`, version).Scan(&n); err != nil {
				return err
			}
			if n > 0 {
				return nil
			}
			if _, err := tx.ExecContext(ctx, m); err != nil {
				return err
			}
			_, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version) VALUES ($1)`, version)
			return err
		})
		if err != nil {
			return fmt.Errorf("apply migration %d: %w", version, err)
		}
	}
	return nil
}

func (c *Catalog) tx(ctx context.Context, f func(*sql.Tx) error) error {
	tx, err := c.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := f(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}

// CreateWorkspace stores a new workspace. With a client token already used,
// it returns the workspace created then (created false) if the request is
// the same, and ErrConflict if not, as AMP's idempotency does.
func (c *Catalog) CreateWorkspace(ctx context.Context, w Workspace) (Workspace, bool, error) {
	tags, err := json.Marshal(nonNil(w.Tags))
	if err != nil {
		return Workspace{}, false, err
	}
	var out Workspace
	created := false
	err = c.tx(ctx, func(tx *sql.Tx) error {
		if w.ClientToken != "" {
			prev, err := scanWorkspace(tx.QueryRowContext(ctx, selectWorkspace+` WHERE client_token = $1`, w.ClientToken))
			if err == nil {
				if prev.Alias != w.Alias {
					return fmt.Errorf("client token %q was used for a different request: %w", w.ClientToken, ErrConflict)
				}
				out = prev
				return nil
			}
			if !errors.Is(err, ErrNotFound) {
				return err
			}
		}
		var token any
		if w.ClientToken != "" {
			token = w.ClientToken
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO workspaces (id, alias, status, created_at, tags, client_token) VALUES ($1, $2, $3, $4, $5, $6)`,
			string(w.ID), w.Alias, w.Status, w.CreatedAt.UnixMilli(), string(tags), token); err != nil {
			return fmt.Errorf("insert workspace %s: %w", w.ID, err)
		}
		out, created = w, true
		out.OutOfOrderWindowSeconds = -1
		out.CreatedAt = time.UnixMilli(w.CreatedAt.UnixMilli()).UTC()
		out.Tags = nonNil(w.Tags)
		return nil
	})
	return out, created, err
}

const selectWorkspace = `SELECT id, alias, status, created_at, tags, COALESCE(client_token, ''), retention_days, ooo_window_seconds, label_set_limits FROM workspaces`

type scanner interface{ Scan(...any) error }

func scanWorkspace(row scanner) (Workspace, error) {
	var (
		w       Workspace
		id      string
		created int64
		tags    string
		sets    string
	)
	if err := row.Scan(&id, &w.Alias, &w.Status, &created, &tags, &w.ClientToken, &w.RetentionDays, &w.OutOfOrderWindowSeconds, &sets); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return Workspace{}, ErrNotFound
		}
		return Workspace{}, err
	}
	w.ID = workspace.ID(id)
	w.CreatedAt = time.UnixMilli(created).UTC()
	if err := json.Unmarshal([]byte(sets), &w.LabelSetLimits); err != nil {
		return Workspace{}, fmt.Errorf("label set limits of workspace %s: %w", id, err)
	}
	if err := json.Unmarshal([]byte(tags), &w.Tags); err != nil {
		return Workspace{}, fmt.Errorf("tags of workspace %s: %w", id, err)
	}
	return w, nil
}

// GetWorkspace returns a workspace, or ErrNotFound.
func (c *Catalog) GetWorkspace(ctx context.Context, id workspace.ID) (Workspace, error) {
	w, err := scanWorkspace(c.db.QueryRowContext(ctx, selectWorkspace+` WHERE id = $1`, string(id)))
	if err != nil {
		return Workspace{}, fmt.Errorf("workspace %s: %w", id, err)
	}
	return w, nil
}

// ListWorkspaces returns up to limit workspaces ordered by ID after the
// given ID, those whose alias starts with aliasPrefix if it is not empty.
func (c *Catalog) ListWorkspaces(ctx context.Context, aliasPrefix string, after workspace.ID, limit int) ([]Workspace, error) {
	rows, err := c.db.QueryContext(ctx, selectWorkspace+` WHERE id > $1 AND ($2 = '' OR substr(alias, 1, length($2)) = $2) ORDER BY id LIMIT $3`,
		string(after), aliasPrefix, limit)
	if err != nil {
		return nil, fmt.Errorf("list workspaces: %w", err)
	}
	defer rows.Close()
	var out []Workspace
	for rows.Next() {
		w, err := scanWorkspace(rows)
		if err != nil {
			return nil, fmt.Errorf("list workspaces: %w", err)
		}
		out = append(out, w)
	}
	return out, rows.Err()
}

// UpdateWorkspace changes a workspace's alias, status or tags (nil fields
// are left alone) and returns ErrNotFound for an unknown workspace.
func (c *Catalog) UpdateWorkspace(ctx context.Context, id workspace.ID, alias, status *string, tags map[string]string) error {
	err := c.tx(ctx, func(tx *sql.Tx) error {
		w, err := scanWorkspace(tx.QueryRowContext(ctx, selectWorkspace+` WHERE id = $1`, string(id)))
		if err != nil {
			return fmt.Errorf("workspace %s: %w", id, err)
		}
		if alias != nil {
			w.Alias = *alias
		}
		if status != nil {
			w.Status = *status
		}
		if tags != nil {
			w.Tags = tags
		}
		b, err := json.Marshal(nonNil(w.Tags))
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `UPDATE workspaces SET alias = $1, status = $2, tags = $3 WHERE id = $4`, w.Alias, w.Status, string(b), string(id))
		return err
	})
	if err != nil {
		return err
	}
	c.changed(WorkspaceChanged, string(id))
	return nil
}

// SetConfiguration stores a workspace's configuration.
func (c *Catalog) SetConfiguration(ctx context.Context, id workspace.ID, cfg Configuration) error {
	sets, err := json.Marshal(cfg.LabelSetLimits)
	if err != nil {
		return err
	}
	if cfg.LabelSetLimits == nil {
		sets = []byte("[]")
	}
	res, err := c.db.ExecContext(ctx, `UPDATE workspaces SET retention_days = $1, ooo_window_seconds = $2, label_set_limits = $3 WHERE id = $4`,
		cfg.RetentionDays, cfg.OutOfOrderWindowSeconds, string(sets), string(id))
	if err != nil {
		return fmt.Errorf("configure workspace %s: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("workspace %s: %w", id, ErrNotFound)
	}
	return nil
}

// RemoveWorkspace deletes a workspace's record, with its resource policy,
// query logging configuration and anomaly detectors.
func (c *Catalog) RemoveWorkspace(ctx context.Context, id workspace.ID) error {
	var n int64
	err := c.tx(ctx, func(tx *sql.Tx) error {
		// A grant must not outlive what it grants; a new workspace never
		// reuses the id, but a removed one's detector would still count
		// and run.
		for _, table := range []string{"resource_policies", "query_logging_configurations", "anomaly_detectors", "anomaly_models"} {
			if _, err := tx.ExecContext(ctx, `DELETE FROM `+table+` WHERE workspace_id = $1`, string(id)); err != nil {
				return err
			}
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM workspaces WHERE id = $1`, string(id))
		if err != nil {
			return err
		}
		n, _ = res.RowsAffected()
		return nil
	})
	if err != nil {
		return fmt.Errorf("remove workspace %s: %w", id, err)
	}
	if n == 0 {
		return fmt.Errorf("workspace %s: %w", id, ErrNotFound)
	}
	c.changed(WorkspaceChanged, string(id))
	c.changed(ResourcePolicyChanged, string(id))
	c.changed(QueryLoggingChanged, string(id))
	return nil
}

func nonNil(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

// isUniqueViolation reports whether err is a unique or primary key
// violation: SQLite's extended result codes, PostgreSQL's SQLSTATE 23505.
func isUniqueViolation(err error) bool {
	var se *sqlite.Error
	if errors.As(err, &se) {
		return se.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE || se.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
	}
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505" // unique_violation
}
