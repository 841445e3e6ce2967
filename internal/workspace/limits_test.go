package workspace_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/orrery-dev/orrery/internal/workspace"
)

func TestAlertmanagerLimitsOverride(t *testing.T) {
	id := workspace.NewID()
	path := filepath.Join(t.TempDir(), "limits.yaml")
	require.NoError(t, os.WriteFile(path, []byte("overrides:\n  "+id.String()+":\n    alertmanager_max_alerts: 5000\n    alertmanager_max_silences: 0\n"), 0o600))
	ov, err := workspace.NewOverrides(workspace.DefaultLimits())
	require.NoError(t, err)
	require.NoError(t, ov.LoadFile(path))
	got := ov.Limits(id)
	require.Equal(t, 5000, got.AlertmanagerMaxAlerts)
	require.Equal(t, 0, got.AlertmanagerMaxSilences, "0: unlimited")
	require.Equal(t, 1000, got.AlertmanagerMaxAggregationGroups, "unmentioned limits keep their defaults")
	require.Equal(t, 1000, ov.Limits(workspace.NewID()).AlertmanagerMaxAlerts)

	require.NoError(t, os.WriteFile(path, []byte("overrides:\n  "+id.String()+":\n    alertmanager_max_alerts: -1\n"), 0o600))
	require.ErrorContains(t, ov.LoadFile(path), "alertmanager limits must not be negative")
}
