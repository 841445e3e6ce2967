package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// User is a web UI user as the server's /orrery/v1/users API shows it.
type User struct {
	Name       string    `json:"name"`
	Role       string    `json:"role,omitempty"`
	Workspaces []string  `json:"workspaces"`
	Password   string    `json:"password,omitempty"`
	CreatedAt  time.Time `json:"createdAt,omitzero"`
}

func createUser(ctx context.Context, c *Client, name, role, workspaces, password string, out io.Writer) error {
	if name == "" || role == "" {
		return errors.New("--name and --role are required")
	}
	u := User{Name: name, Role: role, Workspaces: []string{}, Password: password}
	for _, w := range strings.Split(workspaces, ",") {
		if w = strings.TrimSpace(w); w != "" {
			u.Workspaces = append(u.Workspaces, w)
		}
	}
	var got User
	if err := c.Do(ctx, "POST", "/orrery/v1/users", u, &got); err != nil {
		return err
	}
	fmt.Fprintf(out, "created %s user %s (workspaces: %s)\n", got.Role, got.Name, strings.Join(got.Workspaces, ","))
	if got.Password != "" {
		fmt.Fprintf(out, "password (shown once): %s\n", got.Password)
	}
	return nil
}

func listUsers(ctx context.Context, c *Client, out io.Writer) error {
	var us []User
	if err := c.Do(ctx, "GET", "/orrery/v1/users", nil, &us); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tROLE\tWORKSPACES\tCREATED")
	for _, u := range us {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", u.Name, u.Role, strings.Join(u.Workspaces, ","), u.CreatedAt.Format(time.RFC3339))
	}
	return tw.Flush()
}

func passwd(ctx context.Context, c *Client, name, password string, out io.Writer) error {
	in := map[string]any{"password": password, "generatePassword": password == ""}
	var got User
	if err := c.Do(ctx, "PUT", "/orrery/v1/users/"+name, in, &got); err != nil {
		return err
	}
	fmt.Fprintf(out, "changed the password of %s; their sessions ended\n", got.Name)
	if got.Password != "" {
		fmt.Fprintf(out, "password (shown once): %s\n", got.Password)
	}
	return nil
}

// InstallDashboard stores a Grafana dashboard JSON model (for example
// dashboard.EnvoyDashboard()) in a workspace, replacing the dashboard with
// the same uid, and returns its uid.
func (c *Client) InstallDashboard(ctx context.Context, workspaceID string, model []byte) (string, error) {
	var out struct {
		UID string `json:"uid"`
	}
	if err := c.Do(ctx, "POST", "/orrery/v1/workspaces/"+workspaceID+"/dashboards", json.RawMessage(model), &out); err != nil {
		return "", fmt.Errorf("install dashboard in workspace %s: %w", workspaceID, err)
	}
	return out.UID, nil
}
