// Package storage keeps one Prometheus TSDB per workspace on local disk: it
// opens them lazily, closes them when idle, applies each workspace's
// retention and out-of-order window, and exposes them as Prometheus
// storage interfaces scoped to one workspace.
package storage
