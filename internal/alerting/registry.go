package alerting

import (
	"log/slog"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// trackingRegisterer registers collectors with the parent registerer and
// remembers them, so that a workspace's Alertmanager metrics can be
// unregistered when it stops and registered again when it starts anew.
// It is safe for concurrent use.
type trackingRegisterer struct {
	inner  prometheus.Registerer
	logger *slog.Logger

	mu         sync.Mutex
	collectors []prometheus.Collector
}

func newTrackingRegisterer(inner prometheus.Registerer, logger *slog.Logger) *trackingRegisterer {
	return &trackingRegisterer{inner: inner, logger: logger}
}

// Register implements prometheus.Registerer.
func (r *trackingRegisterer) Register(c prometheus.Collector) error {
	if err := r.inner.Register(c); err != nil {
		return err
	}
	r.mu.Lock()
	r.collectors = append(r.collectors, c)
	r.mu.Unlock()
	return nil
}

// MustRegister implements prometheus.Registerer. Unlike the registry's, it
// does not panic: a collector that cannot be registered (which would be a
// bug) is logged and left out of /metrics.
func (r *trackingRegisterer) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := r.Register(c); err != nil {
			r.logger.Warn("register alertmanager metric; it is not exported", "err", err)
		}
	}
}

// Unregister implements prometheus.Registerer.
func (r *trackingRegisterer) Unregister(c prometheus.Collector) bool {
	// The collector stays in r.collectors: unregisterAll unregistering it
	// again is harmless, and collectors need not be comparable.
	return r.inner.Unregister(c)
}

// unregisterAll removes every collector registered through r.
func (r *trackingRegisterer) unregisterAll() {
	r.mu.Lock()
	cs := r.collectors
	r.collectors = nil
	r.mu.Unlock()
	for _, c := range cs {
		r.inner.Unregister(c)
	}
}
