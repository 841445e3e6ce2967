package workspace_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/common/model"

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

// TestMerge checks the three layers of a workspace's limits: each
// overrides only what it sets.
func TestMerge(t *testing.T) {
	def := workspace.DefaultLimits()
	payments := []workspace.LabelSetLimit{{LabelSet: map[string]string{"job": "payments"}, MaxSeries: 2}}
	cart := []workspace.LabelSetLimit{{LabelSet: map[string]string{"job": "cart"}, MaxSeries: 3}}
	file := []byte("max_active_series: 5\nretention_period: 30d\nlimits_per_label_set:\n- label_set: {job: payments}\n  max_series: 2\n")
	for _, tc := range []struct {
		name    string
		file    []byte
		cfg     workspace.Configuration
		check   func(t *testing.T, l workspace.Limits)
		wantErr string
	}{
		{name: "defaults", cfg: workspace.Unconfigured(), check: func(t *testing.T, l workspace.Limits) {
			require.Equal(t, def, l)
		}},
		{name: "file over defaults", file: file, cfg: workspace.Unconfigured(), check: func(t *testing.T, l workspace.Limits) {
			require.Equal(t, 5, l.MaxActiveSeries)
			require.Equal(t, payments, l.LabelSetLimits)
			require.Equal(t, model.Duration(30*24*time.Hour), l.RetentionPeriod)
			require.Equal(t, def.OutOfOrderWindow, l.OutOfOrderWindow)
		}},
		// The bug: a configuration that sets no label sets dropped the file's.
		{name: "configuration without label sets keeps the file's", file: file,
			cfg: workspace.Configuration{RetentionDays: 7, OutOfOrderWindowSeconds: -1, LabelSetLimits: []workspace.LabelSetLimit{}},
			check: func(t *testing.T, l workspace.Limits) {
				require.Equal(t, payments, l.LabelSetLimits)
				require.Equal(t, model.Duration(7*24*time.Hour), l.RetentionPeriod)
				require.Equal(t, 5, l.MaxActiveSeries)
			}},
		{name: "configuration's label sets replace the file's", file: file,
			cfg: workspace.Configuration{OutOfOrderWindowSeconds: 0, LabelSetLimits: cart},
			check: func(t *testing.T, l workspace.Limits) {
				require.Equal(t, cart, l.LabelSetLimits)
				require.Equal(t, model.Duration(0), l.OutOfOrderWindow, "0 s is a window set")
				require.Equal(t, model.Duration(30*24*time.Hour), l.RetentionPeriod)
			}},
		{name: "unknown field", file: []byte("no_such_limit: 1\n"), cfg: workspace.Unconfigured(), wantErr: "no_such_limit"},
		{name: "invalid result", file: []byte("query_timeout: 0s\n"), cfg: workspace.Unconfigured(), wantErr: "query_timeout must be positive"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, err := workspace.Merge(def, tc.file, tc.cfg)
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			tc.check(t, l)
		})
	}
}

// TestOverridesLayers checks that Overrides keeps the layers apart: a
// reload of the limits file keeps the configurations, a configuration keeps
// the file, and a refused file changes nothing.
func TestOverridesLayers(t *testing.T) {
	id, other := workspace.NewID(), workspace.NewID()
	path := filepath.Join(t.TempDir(), "limits.yaml")
	writeLimits := func(s string) { require.NoError(t, os.WriteFile(path, []byte(s), 0o600)) }
	ov, err := workspace.NewOverrides(workspace.DefaultLimits())
	require.NoError(t, err)

	writeLimits("overrides:\n  " + id.String() + ":\n    max_active_series: 5\n    limits_per_label_set:\n    - {label_set: {job: a}, max_series: 1}\n")
	require.NoError(t, ov.LoadFile(path))
	require.NoError(t, ov.Configure(id, workspace.Configuration{RetentionDays: 7, OutOfOrderWindowSeconds: -1}))
	require.NoError(t, ov.Configure(other, workspace.Configuration{RetentionDays: 9, OutOfOrderWindowSeconds: -1}))
	got := ov.Limits(id)
	require.Equal(t, 5, got.MaxActiveSeries)
	require.Len(t, got.LabelSetLimits, 1)
	require.Equal(t, model.Duration(7*24*time.Hour), got.RetentionPeriod)

	writeLimits("overrides:\n  " + id.String() + ":\n    max_active_series: 6\n")
	require.NoError(t, ov.LoadFile(path))
	got = ov.Limits(id)
	require.Equal(t, 6, got.MaxActiveSeries)
	require.Empty(t, got.LabelSetLimits, "the reloaded file no longer sets label sets")
	require.Equal(t, model.Duration(7*24*time.Hour), got.RetentionPeriod, "a reload keeps the configuration")
	require.Equal(t, model.Duration(9*24*time.Hour), ov.Limits(other).RetentionPeriod, "also of workspaces not in the file")

	writeLimits("overrides:\n  " + id.String() + ":\n    max_active_series: [\n")
	require.Error(t, ov.LoadFile(path))
	require.Equal(t, 6, ov.Limits(id).MaxActiveSeries, "a refused file changes nothing")

	with, err := ov.With(id, workspace.Configuration{RetentionDays: 1, OutOfOrderWindowSeconds: -1})
	require.NoError(t, err)
	require.Equal(t, 6, with.MaxActiveSeries)
	require.Equal(t, model.Duration(24*time.Hour), with.RetentionPeriod)
	require.Equal(t, model.Duration(7*24*time.Hour), ov.Limits(id).RetentionPeriod, "With changes nothing")

	ov.Forget(id)
	require.Equal(t, 6, ov.Limits(id).MaxActiveSeries, "the file's entry stays")
	require.Equal(t, workspace.DefaultLimits().RetentionPeriod, ov.Limits(id).RetentionPeriod)
	ov.Forget(other)
	require.Equal(t, workspace.DefaultLimits(), ov.Limits(other))

	// Set writes a whole Limits into the file layer.
	lim := workspace.DefaultLimits()
	lim.MaxActiveSeries, lim.LabelSetLimits = 3, []workspace.LabelSetLimit{{LabelSet: map[string]string{"a": "b"}, MaxSeries: 2}}
	require.NoError(t, ov.Set(other, lim))
	require.Equal(t, lim, ov.Limits(other))
}
