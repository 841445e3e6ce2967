package storage

import (
	"github.com/prometheus/prometheus/tsdb"

	"github.com/orrery-dev/orrery/internal/workspace"
)

// AcquireDB lends the external tests a workspace's TSDB, as acquire does.
func (s *Store) AcquireDB(id workspace.ID) (*tsdb.DB, func(), error) { return s.acquire(id) }
