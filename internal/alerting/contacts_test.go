package alerting_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/orrery-dev/orrery/internal/alerting"
	"github.com/orrery-dev/orrery/internal/workspace"
)

// TestContactHealth: a receiver's integration records routed
// notifications and test notifications, and a failing endpoint leaves its
// error; an unknown receiver is ErrNoReceiver.
func TestContactHealth(t *testing.T) {
	hook := &webhook{}
	var failing atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if failing.Load() {
			http.Error(w, "down for maintenance", http.StatusBadRequest)
			return
		}
		hook.ServeHTTP(w, r)
	}))
	defer srv.Close()
	id := workspace.NewID()
	defs := &definitions{data: map[workspace.ID][]byte{id: definition(srv.URL, "alertname")}}
	ov, err := workspace.NewOverrides(workspace.DefaultLimits())
	require.NoError(t, err)
	m, err := alerting.New(alerting.Config{DataDir: t.TempDir(), ExternalURL: "http://orrery.test", Limits: ov}, defs, nil, prometheus.NewRegistry())
	require.NoError(t, err)
	ctx := context.Background()
	require.NoError(t, m.SyncAll(ctx))

	list, err := m.Receivers(id)
	require.NoError(t, err)
	require.Len(t, list, 1)
	require.Equal(t, "hook", list[0].Receiver)
	require.Equal(t, "webhook", list[0].Integration)
	require.True(t, list[0].LastAttempt.IsZero(), "no attempt yet")

	// A routed notification counts.
	m.SendAlerts(id, alert("Down", "a", time.Time{}))
	require.Eventually(t, func() bool {
		l, err := m.Receivers(id)
		return err == nil && l[0].Sent == 1
	}, 10*time.Second, 20*time.Millisecond)

	// A test notification reaches the webhook and counts too.
	got, err := m.TestReceiver(ctx, id, "hook")
	require.NoError(t, err)
	require.Len(t, got, 1)
	require.Equal(t, 2, got[0].Sent)
	require.Empty(t, got[0].LastError)
	last := hook.all()[len(hook.all())-1]
	require.Equal(t, "TestNotification", last.Alerts[0].Labels["alertname"])

	// A failing endpoint: the error as the integration gave it.
	failing.Store(true)
	got, err = m.TestReceiver(ctx, id, "hook")
	require.NoError(t, err)
	require.Equal(t, 1, got[0].Failed)
	require.Contains(t, got[0].LastError, "400")
	require.Equal(t, got[0].LastError, got[0].LastFailureError)

	_, err = m.TestReceiver(ctx, id, "nobody")
	require.True(t, errors.Is(err, alerting.ErrNoReceiver), "%v", err)
	_, err = m.Receivers(workspace.NewID())
	require.True(t, errors.Is(err, alerting.ErrNoReceiver), "%v", err)
}
