// Package migration turns a workspace of the embedded engine (its Prometheus
// TSDB: persisted blocks, WAL and out-of-order WAL) into TSDB blocks laid out
// as Cortex's blocks storage reads them from its bucket, so that the
// workspace's history is served by the Cortex engine.
package migration
