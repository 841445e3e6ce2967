package demo

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/orrery-dev/orrery/internal/dashboard"
)

// UIDashboards installs Orrery's Envoy dashboard into the demo's workspace
// and tells how to log in to the web UI with the first admin user, whose
// generated password the server wrote into DataDir.
type UIDashboards struct {
	DataDir string
}

var _ Dashboards = UIDashboards{}

// Install implements Dashboards.
func (d UIDashboards) Install(ctx context.Context, env Environment) ([]string, error) {
	uid, err := env.Admin.InstallDashboard(ctx, env.Workspace, dashboard.EnvoyDashboard())
	if err != nil {
		return nil, err
	}
	lines := []string{
		"Dashboards:",
		fmt.Sprintf("  Envoy:         %s/ui/#/d/%s?ws=%s", env.ServerURL, url.PathEscape(uid), env.Workspace),
	}
	path := filepath.Join(d.DataDir, "ui-admin-password")
	if b, err := os.ReadFile(path); err == nil {
		lines = append(lines, fmt.Sprintf("  log in as:     admin / %s   (in %s)", strings.TrimSpace(string(b)), path))
	} else {
		lines = append(lines, "  log in as:     admin, with the password set by ORRERY_UI_ADMIN_PASSWORD at the first start")
	}
	return lines, nil
}
