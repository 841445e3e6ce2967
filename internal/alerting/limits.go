package alerting

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/prometheus/alertmanager/provider/mem"
	"github.com/prometheus/alertmanager/silence"
	"github.com/prometheus/alertmanager/types"
	"github.com/prometheus/common/model"

	"github.com/orrery-dev/orrery/internal/workspace"
)

// ErrLimited is wrapped by errors that refuse alerts over a workspace's
// limits.
var ErrLimited = errors.New("alert manager limit reached")

// alertQuota enforces a workspace's limits on the alerts its Alertmanager
// holds: their number (AMP's "active alerts per alert manager") and the
// total size of their labels and annotations (AMP's "active alert payload
// size"). It is the memory provider's store callback, in front of the
// silencer as cmd/alertmanager installs it, and counts what the provider
// holds: resolved alerts count until the provider's garbage collection
// removes them.
type alertQuota struct {
	id       workspace.ID
	limits   workspace.LimitsSource
	silencer *silence.Silencer

	mu    sync.Mutex
	sizes map[model.Fingerprint]int
	total int
	// rejected counts the alerts refused during the current Put; it is
	// only touched from inside mem.Alerts.Put, which holds putMu.
	rejected int
	lastErr  error
}

var _ mem.AlertStoreCallback = (*alertQuota)(nil)

func alertSize(a *types.Alert) int {
	n := len(a.GeneratorURL)
	for k, v := range a.Labels {
		n += len(k) + len(v)
	}
	for k, v := range a.Annotations {
		n += len(k) + len(v)
	}
	return n
}

// PreStore refuses an alert that would take the workspace over its limits.
func (q *alertQuota) PreStore(a *types.Alert, existing bool) error {
	lim := q.limits.Limits(q.id)
	size := alertSize(a)
	q.mu.Lock()
	defer q.mu.Unlock()
	old, had := q.sizes[a.Fingerprint()]
	var err error
	switch {
	case !existing && !had && lim.AlertmanagerMaxAlerts > 0 && len(q.sizes) >= lim.AlertmanagerMaxAlerts:
		err = fmt.Errorf("workspace %s holds %d alerts, its limit (alertmanager_max_alerts): %w", q.id, len(q.sizes), ErrLimited)
	case lim.AlertmanagerMaxAlertsSizeBytes > 0 && q.total-old+size > lim.AlertmanagerMaxAlertsSizeBytes:
		err = fmt.Errorf("workspace %s: alerts would take %d bytes of labels and annotations, over its limit of %d (alertmanager_max_alerts_size_bytes): %w",
			q.id, q.total-old+size, lim.AlertmanagerMaxAlertsSizeBytes, ErrLimited)
	}
	if err != nil {
		q.rejected++
		q.lastErr = err
		return err
	}
	return q.silencer.PreStore(a, existing)
}

// PostStore records the stored alert's size.
func (q *alertQuota) PostStore(a *types.Alert, existing bool) {
	size := alertSize(a)
	q.mu.Lock()
	fp := a.Fingerprint()
	q.total += size - q.sizes[fp]
	q.sizes[fp] = size
	q.mu.Unlock()
	q.silencer.PostStore(a, existing)
}

// PostDelete implements mem.AlertStoreCallback.
func (q *alertQuota) PostDelete(a *types.Alert) { q.silencer.PostDelete(a) }

// PostGC forgets collected alerts.
func (q *alertQuota) PostGC(fps model.Fingerprints) {
	q.mu.Lock()
	for _, fp := range fps {
		q.total -= q.sizes[fp]
		delete(q.sizes, fp)
	}
	q.mu.Unlock()
	q.silencer.PostGC(fps)
}

// limitedAlerts is the memory provider with Put reporting the alerts its
// quota refused (the provider itself only logs them), so the API and
// SendAlerts can say so. It is safe for concurrent use.
type limitedAlerts struct {
	*mem.Alerts
	quota *alertQuota
	putMu sync.Mutex
}

// Put stores alerts as mem.Alerts.Put does. If the quota refused some, the
// others are stored and the error, wrapping ErrLimited, says how many were
// refused and why.
func (l *limitedAlerts) Put(ctx context.Context, alerts ...*types.Alert) error {
	l.putMu.Lock()
	defer l.putMu.Unlock()
	l.quota.mu.Lock()
	l.quota.rejected, l.quota.lastErr = 0, nil
	l.quota.mu.Unlock()
	if err := l.Alerts.Put(ctx, alerts...); err != nil {
		return err
	}
	l.quota.mu.Lock()
	n, err := l.quota.rejected, l.quota.lastErr
	l.quota.mu.Unlock()
	if n > 0 {
		return &limitError{refused: n, of: len(alerts), err: err}
	}
	return nil
}

// limitError says how many alerts of a Put the quota refused, and why.
type limitError struct {
	refused, of int
	err         error // wraps ErrLimited.
}

func (e *limitError) Error() string {
	return fmt.Sprintf("%d of %d alerts refused: %v", e.refused, e.of, e.err)
}
func (e *limitError) Unwrap() error { return e.err }

// groupLimits gives the dispatcher a workspace's aggregation group limit.
type groupLimits struct {
	id     workspace.ID
	limits workspace.LimitsSource
}

func (g groupLimits) MaxNumberOfAggregationGroups() int {
	return g.limits.Limits(g.id).AlertmanagerMaxAggregationGroups
}
