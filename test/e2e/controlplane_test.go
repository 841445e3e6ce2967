package e2e

import (
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"

	"github.com/orrery-dev/orrery/internal/apptest"
)

// awsCLI runs Debian's awscli against the server and decodes its JSON.
func awsCLI(t *testing.T, o *apptest.Orrery, out any, args ...string) (string, error) {
	t.Helper()
	// Debian's awscli (v2) where installed, else whichever aws is on PATH.
	bin := "/usr/bin/aws"
	if _, err := os.Stat(bin); err != nil {
		bin = apptest.LookPath(t, "aws", "awscli")
	}
	cmd := exec.Command(bin, append(args, "--endpoint-url", "http://"+o.Addr, "--output", "json")...)
	home := t.TempDir()
	cmd.Env = append(os.Environ(), "AWS_ACCESS_KEY_ID=AKIAORRERYTEST", "AWS_SECRET_ACCESS_KEY=secret",
		"AWS_DEFAULT_REGION=us-east-1", "AWS_CONFIG_FILE="+filepath.Join(home, "config"),
		"AWS_SHARED_CREDENTIALS_FILE="+filepath.Join(home, "credentials"), "HOME="+home, "AWS_PAGER=")
	b, err := cmd.CombinedOutput()
	if err == nil && out != nil && len(b) > 0 {
		require.NoError(t, json.Unmarshal(b, out), "%s", b)
	}
	return string(b), err
}

// TestAWSCLIWorkspaceLifecycle drives the control plane with awscli, as a
// user would, and uses the created workspace for remote write and queries.
func TestAWSCLIWorkspaceLifecycle(t *testing.T) {
	dir := t.TempDir()
	o := apptest.StartOrrery(t, dir)
	var created struct {
		WorkspaceID string                      `json:"workspaceId"`
		Arn         string                      `json:"arn"`
		Status      struct{ StatusCode string } `json:"status"`
	}
	out, err := awsCLI(t, o, &created, "amp", "create-workspace", "--alias", "mesh-demo", "--tags", "team=mesh")
	require.NoError(t, err, out)
	require.Equal(t, "ACTIVE", created.Status.StatusCode)
	require.Equal(t, "arn:aws:aps:us-east-1:000000000000:workspace/"+created.WorkspaceID, created.Arn)

	var described struct {
		Workspace struct {
			Alias              string            `json:"alias"`
			PrometheusEndpoint string            `json:"prometheusEndpoint"`
			Tags               map[string]string `json:"tags"`
		} `json:"workspace"`
	}
	out, err = awsCLI(t, o, &described, "amp", "describe-workspace", "--workspace-id", created.WorkspaceID)
	require.NoError(t, err, out)
	require.Equal(t, "mesh-demo", described.Workspace.Alias)
	require.Equal(t, map[string]string{"team": "mesh"}, described.Workspace.Tags)

	out, err = awsCLI(t, o, nil, "amp", "update-workspace-alias", "--workspace-id", created.WorkspaceID, "--alias", "mesh")
	require.NoError(t, err, out)
	var listed struct {
		Workspaces []struct{ Alias, WorkspaceID string } `json:"workspaces"`
	}
	out, err = awsCLI(t, o, &listed, "amp", "list-workspaces", "--alias", "mesh")
	require.NoError(t, err, out)
	require.Len(t, listed.Workspaces, 1)

	// The workspace takes remote write and answers queries at its endpoint.
	now := time.Now()
	code, body := apptest.Write(t, o.RemoteWriteURL(created.WorkspaceID), &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
		ts("envoy_server_live", now.UnixMilli(), 1)}})
	require.Equal(t, http.StatusNoContent, code, body)
	v, err := apptest.QueryVector(t, o.URL(created.WorkspaceID, "/api/v1"), "envoy_server_live", now)
	require.NoError(t, err)
	require.Len(t, v, 1)
	require.DirExists(t, filepath.Join(dir, "workspaces", created.WorkspaceID))

	out, err = awsCLI(t, o, nil, "amp", "delete-workspace", "--workspace-id", created.WorkspaceID)
	require.NoError(t, err, out)
	apptest.Eventually(t, 20*time.Second, func() error {
		out, err := awsCLI(t, o, nil, "amp", "describe-workspace", "--workspace-id", created.WorkspaceID)
		if err == nil {
			return os.ErrExist
		}
		require.Contains(t, out, "ResourceNotFoundException")
		if _, err := os.Stat(filepath.Join(dir, "workspaces", created.WorkspaceID)); !os.IsNotExist(err) {
			return os.ErrExist
		}
		return nil
	})
	o.Stop()
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }
