package alerting

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/alertmanager/alert"
	"github.com/prometheus/alertmanager/notify"
	"github.com/prometheus/common/model"

	"github.com/orrery-dev/orrery/internal/workspace"
)

// IntegrationStatus is the health of one integration of a receiver (a
// contact point's webhook, email, SNS… in Grafana's words): its last
// attempt, how long it took and how it ended, and the notifications sent
// and failed since the workspace's Alertmanager started. Every attempt
// counts, retries included.
type IntegrationStatus struct {
	Receiver     string    `json:"receiver"`
	Integration  string    `json:"integration"`
	Index        int       `json:"index"`
	LastAttempt  time.Time `json:"lastAttempt,omitzero"`
	LastDuration float64   `json:"lastDurationSeconds"`
	// LastError is the error of the last attempt; empty when it succeeded.
	LastError string `json:"lastError"`
	// LastFailure and LastFailureError keep the most recent failure after
	// a later success.
	LastFailure      time.Time `json:"lastFailure,omitzero"`
	LastFailureError string    `json:"lastFailureError"`
	Sent             int       `json:"sent"`
	Failed           int       `json:"failed"`
}

// contactHealth holds the status of every integration an instance built,
// by receiver, integration name and index. It is safe for concurrent use.
type contactHealth struct {
	mu sync.Mutex
	m  map[string]*IntegrationStatus
}

func (c *contactHealth) entry(receiver, integration string, idx int) *IntegrationStatus {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]*IntegrationStatus{}
	}
	k := fmt.Sprintf("%s\xff%s\xff%d", receiver, integration, idx)
	if e, ok := c.m[k]; ok {
		return e
	}
	e := &IntegrationStatus{Receiver: receiver, Integration: integration, Index: idx}
	c.m[k] = e
	return e
}

func (c *contactHealth) record(e *IntegrationStatus, start time.Time, took time.Duration, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e.LastAttempt, e.LastDuration = start, took.Seconds()
	if err != nil {
		e.Failed++
		e.LastError, e.LastFailure, e.LastFailureError = err.Error(), start, err.Error()
		return
	}
	e.Sent++
	e.LastError = ""
}

func (c *contactHealth) snapshot(e *IntegrationStatus) IntegrationStatus {
	c.mu.Lock()
	defer c.mu.Unlock()
	return *e
}

// recordingNotifier wraps an integration and records each attempt's
// outcome in the instance's contact health.
type recordingNotifier struct {
	inner  *notify.Integration
	health *contactHealth
	status *IntegrationStatus
}

func (r recordingNotifier) Notify(ctx context.Context, alerts ...*alert.Alert) (bool, error) {
	start := time.Now()
	retry, err := r.inner.Notify(ctx, alerts...)
	r.health.record(r.status, start, time.Since(start), err)
	return retry, err
}

// recorded wraps every integration of a receiver so that its attempts are
// recorded.
func (in *instance) recorded(receiver string, integrations []notify.Integration) []notify.Integration {
	out := make([]notify.Integration, len(integrations))
	for i := range integrations {
		inner := integrations[i]
		st := in.health.entry(receiver, inner.Name(), inner.Index())
		out[i] = notify.NewIntegration(recordingNotifier{inner: &inner, health: &in.health, status: st}, &inner, inner.Name(), inner.Index(), receiver)
	}
	return out
}

// ErrNoReceiver is returned for a receiver the definition does not route
// to (or does not have).
var ErrNoReceiver = errors.New("no such receiver in use")

// Receivers returns the health of every integration of the receivers the
// workspace's routes use, sorted by receiver, integration and index.
func (m *Manager) Receivers(id workspace.ID) ([]IntegrationStatus, error) {
	in := m.instance(id)
	if in == nil {
		return nil, fmt.Errorf("workspace %s has no alert manager definition: %w", id, ErrNoReceiver)
	}
	in.mu.Lock()
	names := make([]string, 0, len(in.receivers))
	for n := range in.receivers {
		names = append(names, n)
	}
	list := make(map[string][]notify.Integration, len(in.receivers))
	for n, l := range in.receivers {
		list[n] = l
	}
	in.mu.Unlock()
	sort.Strings(names)
	var out []IntegrationStatus
	for _, n := range names {
		for _, integ := range list[n] {
			out = append(out, in.health.snapshot(in.health.entry(n, integ.Name(), integ.Index())))
		}
	}
	return out, nil
}

// TestReceiver sends a test notification through every integration of a
// receiver, as Grafana's "Test" button does, and returns their status
// afterwards. The test alert (alertname TestNotification) does not pass
// through routes, silences or the notification log. An integration that
// fails leaves its error in the status; the call itself fails only when
// the receiver is unknown.
func (m *Manager) TestReceiver(ctx context.Context, id workspace.ID, receiver string) ([]IntegrationStatus, error) {
	in := m.instance(id)
	if in == nil {
		return nil, fmt.Errorf("workspace %s has no alert manager definition: %w", id, ErrNoReceiver)
	}
	in.mu.Lock()
	integrations, ok := in.receivers[receiver]
	in.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("receiver %q: %w (a receiver no route names is not built)", receiver, ErrNoReceiver)
	}
	now := time.Now()
	labels := model.LabelSet{"alertname": "TestNotification", "receiver": model.LabelValue(receiver)}
	a := &alert.Alert{Alert: model.Alert{Labels: labels, StartsAt: now, EndsAt: now.Add(5 * time.Minute),
		Annotations: model.LabelSet{"summary": "Test notification from Orrery", "description": "Sent from the contact points page to check that " + model.LabelValue(receiver) + " delivers."}},
		UpdatedAt: now}
	ctx = notify.WithGroupKey(ctx, fmt.Sprintf("{}:{alertname=\"TestNotification\",receiver=%q}", receiver))
	ctx = notify.WithReceiverName(ctx, receiver)
	ctx = notify.WithGroupLabels(ctx, labels)
	ctx = notify.WithNow(ctx, now)
	ctx = notify.WithRepeatInterval(ctx, time.Hour)
	var out []IntegrationStatus
	for i := range integrations {
		tctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		_, _ = integrations[i].Notify(tctx, a) // The recording wrapper keeps the outcome.
		cancel()
		out = append(out, in.health.snapshot(in.health.entry(receiver, integrations[i].Name(), integrations[i].Index())))
	}
	return out, nil
}
