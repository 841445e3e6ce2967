// Package e2e holds end-to-end tests that start the real orrery binary and
// real third-party programs (Prometheus 2.42 from Debian, a Prometheus 3
// built from the embedded module version, node_exporter) and check what a
// user would see through the HTTP APIs.
package e2e
