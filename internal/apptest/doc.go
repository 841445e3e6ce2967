// Package apptest starts real processes for integration tests: the orrery
// binary built from this tree, and third-party programs (Prometheus,
// node_exporter) from the machine, in the manner of VictoriaMetrics'
// apptest. Nothing is mocked; every process talks HTTP on loopback.
package apptest
