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

// User is a web UI user. PasswordHash is an encoded argon2id hash; the
// catalog never sees passwords. Workspaces lists the workspaces the user may
// see; "*" stands for all.
type User struct {
	Name         string
	PasswordHash string
	Role         string
	Workspaces   []string
	CreatedAt    time.Time
}

// CreateUser stores a new user; an existing name is ErrConflict.
func (c *Catalog) CreateUser(ctx context.Context, u User) error {
	ws, err := json.Marshal(nonNilSlice(u.Workspaces))
	if err != nil {
		return err
	}
	if _, err := c.db.ExecContext(ctx, `INSERT INTO ui_users (name, password_hash, role, workspaces, created_at) VALUES ($1, $2, $3, $4, $5)`,
		u.Name, u.PasswordHash, u.Role, string(ws), u.CreatedAt.UnixMilli()); err != nil {
		if isUniqueViolation(err) {
			return fmt.Errorf("user %s: %w", u.Name, ErrConflict)
		}
		return fmt.Errorf("insert user %s: %w", u.Name, err)
	}
	return nil
}

// User returns a user or ErrNotFound.
func (c *Catalog) User(ctx context.Context, name string) (User, error) {
	us, err := c.queryUsers(ctx, ` WHERE name = $1`, name)
	if err != nil {
		return User{}, fmt.Errorf("user %s: %w", name, err)
	}
	if len(us) == 0 {
		return User{}, fmt.Errorf("user %s: %w", name, ErrNotFound)
	}
	return us[0], nil
}

// Users lists every user by name.
func (c *Catalog) Users(ctx context.Context) ([]User, error) {
	us, err := c.queryUsers(ctx, ` ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	return us, nil
}

// CountUsers returns how many users exist.
func (c *Catalog) CountUsers(ctx context.Context) (int, error) {
	var n int
	if err := c.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM ui_users`).Scan(&n); err != nil {
		return 0, fmt.Errorf("count users: %w", err)
	}
	return n, nil
}

func (c *Catalog) queryUsers(ctx context.Context, where string, args ...any) ([]User, error) {
	rows, err := c.db.QueryContext(ctx, `SELECT name, password_hash, role, workspaces, created_at FROM ui_users`+where, args...)
	if err != nil {
		return nil, err
	}
	defer func() { _ = rows.Close() }()
	var out []User
	for rows.Next() {
		var (
			u       User
			ws      string
			created int64
		)
		if err := rows.Scan(&u.Name, &u.PasswordHash, &u.Role, &ws, &created); err != nil {
			return nil, err
		}
		if err := json.Unmarshal([]byte(ws), &u.Workspaces); err != nil {
			return nil, fmt.Errorf("workspaces of user %s: %w", u.Name, err)
		}
		u.CreatedAt = time.UnixMilli(created).UTC()
		out = append(out, u)
	}
	return out, rows.Err()
}

// UpdateUser changes a user's password hash, role or workspaces (empty
// hash and role and nil workspaces are left alone). A new password hash
// ends the user's sessions.
func (c *Catalog) UpdateUser(ctx context.Context, name, passwordHash, role string, workspaces []string) error {
	return c.tx(ctx, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM ui_users WHERE name = $1`, name).Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("user %s: %w", name, ErrNotFound)
		}
		if passwordHash != "" {
			if _, err := tx.ExecContext(ctx, `UPDATE ui_users SET password_hash = $1 WHERE name = $2`, passwordHash, name); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `DELETE FROM ui_sessions WHERE user_name = $1`, name); err != nil {
				return err
			}
		}
		if role != "" {
			if _, err := tx.ExecContext(ctx, `UPDATE ui_users SET role = $1 WHERE name = $2`, role, name); err != nil {
				return err
			}
		}
		if workspaces != nil {
			b, err := json.Marshal(workspaces)
			if err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `UPDATE ui_users SET workspaces = $1 WHERE name = $2`, string(b), name); err != nil {
				return err
			}
		}
		return nil
	})
}

// DeleteUser removes a user and its sessions.
func (c *Catalog) DeleteUser(ctx context.Context, name string) error {
	return c.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM ui_sessions WHERE user_name = $1`, name); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM ui_users WHERE name = $1`, name)
		if err != nil {
			return fmt.Errorf("delete user %s: %w", name, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("user %s: %w", name, ErrNotFound)
		}
		return nil
	})
}

// Session is a logged-in browser. IDHash is the hex SHA-256 of the cookie's
// value, so a copy of the catalog does not hold usable sessions.
type Session struct {
	IDHash    string
	User      string
	CSRFToken string
	CreatedAt time.Time
	ExpiresAt time.Time
}

// CreateSession stores a session.
func (c *Catalog) CreateSession(ctx context.Context, s Session) error {
	if _, err := c.db.ExecContext(ctx, `INSERT INTO ui_sessions (id_hash, user_name, csrf_token, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)`,
		s.IDHash, s.User, s.CSRFToken, s.CreatedAt.UnixMilli(), s.ExpiresAt.UnixMilli()); err != nil {
		return fmt.Errorf("insert session: %w", err)
	}
	return nil
}

// Session returns an unexpired session or ErrNotFound.
func (c *Catalog) Session(ctx context.Context, idHash string, now time.Time) (Session, error) {
	var (
		s                Session
		created, expires int64
	)
	err := c.db.QueryRowContext(ctx, `SELECT id_hash, user_name, csrf_token, created_at, expires_at FROM ui_sessions WHERE id_hash = $1 AND expires_at > $2`,
		idHash, now.UnixMilli()).Scan(&s.IDHash, &s.User, &s.CSRFToken, &created, &expires)
	if errors.Is(err, sql.ErrNoRows) {
		return Session{}, fmt.Errorf("session: %w", ErrNotFound)
	}
	if err != nil {
		return Session{}, fmt.Errorf("session: %w", err)
	}
	s.CreatedAt, s.ExpiresAt = time.UnixMilli(created).UTC(), time.UnixMilli(expires).UTC()
	return s, nil
}

// DeleteSession ends a session; expired sessions are removed with it.
func (c *Catalog) DeleteSession(ctx context.Context, idHash string, now time.Time) error {
	if _, err := c.db.ExecContext(ctx, `DELETE FROM ui_sessions WHERE id_hash = $1 OR expires_at <= $2`, idHash, now.UnixMilli()); err != nil {
		return fmt.Errorf("delete session: %w", err)
	}
	return nil
}

// Dashboard is a stored Grafana dashboard JSON model of a workspace.
type Dashboard struct {
	Workspace  workspace.ID
	UID        string
	Title      string
	Data       []byte
	CreatedAt  time.Time
	ModifiedAt time.Time
	// Author is who stored it (a UI user "ui/<name>", or a key or token),
	// kept with its version.
	Author string
	// Folder groups dashboards in the list, as Grafana's folders; "" is
	// the top level.
	Folder string
}

// MaxDashboardVersions is how many versions of a dashboard are kept, as
// Grafana's versions_to_keep (20); older ones are dropped when a new one
// is stored.
const MaxDashboardVersions = 20

// DashboardVersion is one stored version of a dashboard, without its data.
type DashboardVersion struct {
	Version   int
	Title     string
	Author    string
	CreatedAt time.Time
}

// PutDashboard creates or replaces a dashboard, keeping what it stores as
// the dashboard's next version, and returns that version's number.
func (c *Catalog) PutDashboard(ctx context.Context, d Dashboard) (int, error) {
	var version int
	err := c.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO dashboards (workspace_id, uid, title, data, created_at, modified_at, folder) VALUES ($1, $2, $3, $4, $5, $5, $6)
			ON CONFLICT (workspace_id, uid) DO UPDATE SET title = excluded.title, data = excluded.data, modified_at = excluded.modified_at, folder = excluded.folder`,
			string(d.Workspace), d.UID, d.Title, string(d.Data), d.ModifiedAt.UnixMilli(), d.Folder); err != nil {
			return err
		}
		if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) + 1 FROM dashboard_versions WHERE workspace_id = $1 AND uid = $2`,
			string(d.Workspace), d.UID).Scan(&version); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO dashboard_versions (workspace_id, uid, version, title, data, author, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
			string(d.Workspace), d.UID, version, d.Title, string(d.Data), d.Author, d.ModifiedAt.UnixMilli()); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `DELETE FROM dashboard_versions WHERE workspace_id = $1 AND uid = $2 AND version <= $3`,
			string(d.Workspace), d.UID, version-MaxDashboardVersions)
		return err
	})
	if err != nil {
		// Two replicas storing the same dashboard at once may pick the
		// same version number; the second fails here and may retry.
		if isUniqueViolation(err) {
			return 0, fmt.Errorf("put dashboard %s of workspace %s: stored concurrently by another request; retry: %w", d.UID, d.Workspace, ErrConflict)
		}
		return 0, fmt.Errorf("put dashboard %s of workspace %s: %w", d.UID, d.Workspace, err)
	}
	return version, nil
}

// DashboardVersions lists a dashboard's kept versions, newest first, or
// ErrNotFound if it has none.
func (c *Catalog) DashboardVersions(ctx context.Context, id workspace.ID, uid string) ([]DashboardVersion, error) {
	rows, err := c.db.QueryContext(ctx, `SELECT version, title, author, created_at FROM dashboard_versions WHERE workspace_id = $1 AND uid = $2 ORDER BY version DESC`,
		string(id), uid)
	if err != nil {
		return nil, fmt.Errorf("list versions of dashboard %s of workspace %s: %w", uid, id, err)
	}
	defer func() { _ = rows.Close() }()
	var out []DashboardVersion
	for rows.Next() {
		var v DashboardVersion
		var created int64
		if err := rows.Scan(&v.Version, &v.Title, &v.Author, &created); err != nil {
			return nil, err
		}
		v.CreatedAt = time.UnixMilli(created).UTC()
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("dashboard %s of workspace %s: %w", uid, id, ErrNotFound)
	}
	return out, nil
}

// DashboardAt returns a kept version of a dashboard with its data, or
// ErrNotFound.
func (c *Catalog) DashboardAt(ctx context.Context, id workspace.ID, uid string, version int) (Dashboard, error) {
	d := Dashboard{Workspace: id, UID: uid}
	var (
		data    string
		created int64
	)
	err := c.db.QueryRowContext(ctx, `SELECT title, data, author, created_at FROM dashboard_versions WHERE workspace_id = $1 AND uid = $2 AND version = $3`,
		string(id), uid, version).Scan(&d.Title, &data, &d.Author, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return Dashboard{}, fmt.Errorf("version %d of dashboard %s of workspace %s: %w", version, uid, id, ErrNotFound)
	}
	if err != nil {
		return Dashboard{}, fmt.Errorf("version %d of dashboard %s of workspace %s: %w", version, uid, id, err)
	}
	d.Data = []byte(data)
	d.CreatedAt = time.UnixMilli(created).UTC()
	d.ModifiedAt = d.CreatedAt
	return d, nil
}

// Dashboards lists a workspace's dashboards by folder and title, without
// their data.
func (c *Catalog) Dashboards(ctx context.Context, id workspace.ID) ([]Dashboard, error) {
	rows, err := c.db.QueryContext(ctx, `SELECT uid, title, folder, created_at, modified_at FROM dashboards WHERE workspace_id = $1 ORDER BY folder, title, uid`, string(id))
	if err != nil {
		return nil, fmt.Errorf("list dashboards of workspace %s: %w", id, err)
	}
	defer func() { _ = rows.Close() }()
	var out []Dashboard
	for rows.Next() {
		d := Dashboard{Workspace: id}
		var created, modified int64
		if err := rows.Scan(&d.UID, &d.Title, &d.Folder, &created, &modified); err != nil {
			return nil, err
		}
		d.CreatedAt, d.ModifiedAt = time.UnixMilli(created).UTC(), time.UnixMilli(modified).UTC()
		out = append(out, d)
	}
	return out, rows.Err()
}

// Dashboard returns a dashboard with its data, or ErrNotFound.
func (c *Catalog) Dashboard(ctx context.Context, id workspace.ID, uid string) (Dashboard, error) {
	d := Dashboard{Workspace: id, UID: uid}
	var (
		data              string
		created, modified int64
	)
	err := c.db.QueryRowContext(ctx, `SELECT title, data, folder, created_at, modified_at FROM dashboards WHERE workspace_id = $1 AND uid = $2`,
		string(id), uid).Scan(&d.Title, &data, &d.Folder, &created, &modified)
	if errors.Is(err, sql.ErrNoRows) {
		return Dashboard{}, fmt.Errorf("dashboard %s of workspace %s: %w", uid, id, ErrNotFound)
	}
	if err != nil {
		return Dashboard{}, fmt.Errorf("dashboard %s of workspace %s: %w", uid, id, err)
	}
	d.Data = []byte(data)
	d.CreatedAt, d.ModifiedAt = time.UnixMilli(created).UTC(), time.UnixMilli(modified).UTC()
	return d, nil
}

// DeleteDashboard removes a dashboard.
func (c *Catalog) DeleteDashboard(ctx context.Context, id workspace.ID, uid string) error {
	err := c.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM dashboards WHERE workspace_id = $1 AND uid = $2`, string(id), uid)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrNotFound
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM dashboard_versions WHERE workspace_id = $1 AND uid = $2`, string(id), uid)
		return err
	})
	if errors.Is(err, ErrNotFound) {
		return fmt.Errorf("dashboard %s of workspace %s: %w", uid, id, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("delete dashboard %s of workspace %s: %w", uid, id, err)
	}
	return nil
}

func nonNilSlice(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
