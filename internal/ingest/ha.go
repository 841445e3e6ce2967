package ingest

import (
	"sync"
	"time"
)

// haTracker elects, per HA cluster, the one replica whose samples a
// workspace accepts, as Cortex's HA tracker does: the first replica seen is
// elected, and another takes over only after the elected one has sent
// nothing for the failover timeout. It is safe for concurrent use.
type haTracker struct {
	mu       sync.Mutex
	clusters map[string]*haElected
}

type haElected struct {
	replica  string
	lastSeen time.Time
}

// accept reports whether samples from replica of cluster are to be stored,
// and records that the replica was seen.
func (t *haTracker) accept(cluster, replica string, now time.Time, failover time.Duration) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.clusters == nil {
		t.clusters = map[string]*haElected{}
	}
	e, ok := t.clusters[cluster]
	switch {
	case !ok:
		t.clusters[cluster] = &haElected{replica: replica, lastSeen: now}
		return true
	case e.replica == replica:
		e.lastSeen = now
		return true
	case now.Sub(e.lastSeen) > failover:
		e.replica, e.lastSeen = replica, now
		return true
	default:
		return false
	}
}
